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
import math

import numpy as np

# dtype -> (its scalar type, its smallest normal number, its largest finite number),
# read once: np.finfo per call made this a 2.6 us part of every NAdam step
_NORMAL_RANGE = {np.dtype(t): (t, float(np.finfo(t).tiny), float(np.finfo(t).max))
                 for t in (np.float32, np.float64)}


def denominator_factors(sq_scale, dtype):
    """(divisor, scale) with sqrt(v / divisor) * scale = sq_scale * sqrt(v) as numbers.

    sq_scale: a float >= 0 (0, or a number that is 0 in the dtype: the kernels use eps
    alone); dtype: the arrays' dtype.
    """
    sq_scale = float(sq_scale)
    if sq_scale == 0.0 or sq_scale == 1.0:
        return 1.0, sq_scale
    kind, tiny, largest = _NORMAL_RANGE[np.dtype(dtype)]
    if float(kind(sq_scale)) == 0.0:
        return 1.0, 0.0   # 0 in the dtype: eps alone on every backend (the reference's
        #                   product had been 0 * inf = NaN where v overflowed)
    square = sq_scale * sq_scale
    divisor = 1.0 / square if square else math.inf   # (a tiny sq_scale's square is 0)
    if divisor <= largest:   # rounded to the dtype: no overflow, maybe below normal
        normal = float(kind(divisor)) >= tiny
    else:                    # normal only where it rounds down to the largest number
        with np.errstate(over="ignore"):
            normal = float(kind(divisor)) <= largest
    return (divisor, 1.0) if normal else (1.0, sq_scale)
