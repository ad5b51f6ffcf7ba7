"""Work arrays the CPU backends keep between calls (one set per calling thread)."""
import threading

import numpy as np

_local = threading.local()

#: Arrays of one name kept per thread, one per (shape, dtype): a network asks for a
#: name at a different shape in each layer (every BatchNorm width, every conv's patch
#: matrix, every Linear's transposed product), and a single array per name was
#: reallocated at every such call, every step. Past this many shapes the oldest goes.
KEPT_PER_NAME = 16


def scratch(name, shape, dtype):
    """A work array kept per calling thread between calls of the same shape and dtype
    (no allocation, no page faults in the steady state). Contents are undefined."""
    store = getattr(_local, "buffers", None)
    if store is None:
        store = _local.buffers = {}
    kept = store.get(name)
    if kept is None:
        kept = store[name] = {}
    key = (shape, dtype)
    buf = kept.get(key)
    if buf is None:
        if len(kept) >= KEPT_PER_NAME:
            del kept[next(iter(kept))]  # the oldest (dicts keep insertion order)
        buf = kept[key] = np.empty(shape, dtype=dtype)
    return buf
