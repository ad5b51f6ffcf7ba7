"""Small helpers the op wrappers share: output allocation, flat views, scratch."""
import threading

import numpy as np

_scratch = threading.local()


def out_like(x, out):
    """``out`` if given, else a new array of x's shape and dtype."""
    return np.empty_like(x) if out is None else out


def flat(a):
    """A 1-D view of a C-contiguous array (no copy)."""
    return a.reshape(-1)


def scratch(name, shape, dtype):
    """A work array kept per calling thread between calls of the same shape and dtype
    (no allocation, no page faults in the steady state). Contents are undefined."""
    store = getattr(_scratch, "buffers", None)
    if store is None:
        store = _scratch.buffers = {}
    buf = store.get(name)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = store[name] = np.empty(shape, dtype=dtype)
    return buf
