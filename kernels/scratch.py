"""Work arrays the CPU backends keep between calls (one set per calling thread)."""
import threading

import numpy as np

_local = threading.local()


def scratch(name, shape, dtype):
    """A work array kept per calling thread between calls of the same shape and dtype
    (no allocation, no page faults in the steady state). Contents are undefined."""
    store = getattr(_local, "buffers", None)
    if store is None:
        store = _local.buffers = {}
    buf = store.get(name)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = store[name] = np.empty(shape, dtype=dtype)
    return buf
