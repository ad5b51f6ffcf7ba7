"""The denominator of ``adaptive_moments_update`` in the form its backends compute it.

The op divides by ``sq_scale * sqrt(v) + eps``. NAdam's sq_scale is
1 / sqrt(1 - beta2^t), and PyTorch forms that denominator as
``sqrt(v / (1 - beta2^t)) + eps``: the division rounds where the product does not, and
NAdam over 500 float32 steps drifted 7e-6 from PyTorch with the product (Adam, whose
form we follow, 5e-7). So the kernels compute ``sqrt(v / divisor) * scale + eps`` with
the pair this module gives: (1 / sq_scale^2, 1) where that divisor is a normal number of
the arrays' dtype (NAdam's: 1 - beta2^t itself, to within a float64 rounding), else
(1, sq_scale), the product form, so that no sq_scale a caller may pass turns v / divisor
into 0 / 0 or inf / inf. sq_scale 1 (RAdam) gives (1, 1): sqrt(v) exactly.
"""
import numpy as np


def denominator_factors(sq_scale, dtype):
    """(divisor, scale) with sqrt(v / divisor) * scale = sq_scale * sqrt(v) as numbers.

    sq_scale: a float >= 0 (0: the kernels use eps alone); dtype: the arrays' dtype.
    """
    sq_scale = float(sq_scale)
    if sq_scale == 0.0 or sq_scale == 1.0:
        return 1.0, sq_scale
    info = np.finfo(dtype)
    with np.errstate(over="ignore", under="ignore"):
        divisor = 1.0 / (sq_scale * sq_scale)
        rounded = float(np.dtype(dtype).type(divisor))
    if float(info.tiny) <= rounded <= float(info.max):
        return divisor, 1.0
    return 1.0, sq_scale
