"""Small helpers the op wrappers share: output allocation, flat views, scratch."""
import numpy as np

from ..scratch import scratch  # noqa: F401  (re-exported for the kernels)
from .config import helper


def out_like(x, out):
    """``out`` if given, else a new array of x's shape and dtype."""
    return np.empty_like(x) if out is None else out


def flat(a):
    """A 1-D view of a C-contiguous array (no copy)."""
    return a.reshape(-1)


@helper
def overlap(a, b):
    """True when the memory of 1-D contiguous arrays a and b overlaps (compiled code)."""
    pa = a.ctypes.data
    pb = b.ctypes.data
    return pa < pb + b.size * b.itemsize and pb < pa + a.size * a.itemsize
