"""Integer pixel values to floating-point images in [0, 1]."""
import math

import numpy as np

from ..validation import FLOAT_DTYPES


def float_dtype(dtype):
    """np.dtype of ``dtype`` (float32 or float64, as a dtype, type or name); ValueError else."""
    try:  # np.dtype(None) is float64: refuse None rather than guess
        resolved = np.dtype(dtype) if dtype is not None else None
    except TypeError:
        resolved = None
    if resolved is None or resolved not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return resolved


def to_unit_float(images, max_value, dtype=np.float32, flatten=False):
    """images / max_value in ``dtype``, computed in that dtype (so float32 values equal
    torchvision's ``ToTensor``: a division, not a multiplication by 1/255).

    images: integer array of shape (N, ...). Returns a new C-contiguous array of
    shape (N, ...), or (N, features) with ``flatten``.
    """
    dtype = float_dtype(dtype)
    x = images.astype(dtype)
    x /= dtype.type(max_value)
    return x.reshape(x.shape[0], math.prod(x.shape[1:])) if flatten else x  # (N = 0 too)
