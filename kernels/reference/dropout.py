"""Inverted dropout in plain NumPy: the specification."""
import numpy as np


def dropout_forward(x, p, seed, mask=None, out=None):
    """y = x * mask, mask = (u >= p) / (1 - p) with u uniform from NumPy's PCG64(seed).

    x: any shape; mask, out: same shape as x or None. Returns (y, mask).
    """
    if mask is None:
        mask = np.empty_like(x)
    keep = np.random.default_rng(seed).random(x.shape) >= p
    np.multiply(keep, x.dtype.type(1.0 / (1.0 - p)), out=mask)
    return np.multiply(x, mask, out=out), mask


def dropout_backward(grad_out, mask, out=None):
    """grad_in = grad_out * mask. grad_out, mask: same shape."""
    return np.multiply(grad_out, mask, out=out)
