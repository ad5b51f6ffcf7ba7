"""Work arrays the CPU backends keep between calls (one set per calling thread)."""
import threading

import numpy as np

_local = threading.local()

#: Arrays of one name kept per thread, one per (shape, dtype): a network asks for a
#: name at a different shape in each layer (every BatchNorm width, every conv's patch
#: matrix, every Linear's transposed product), and a single array per name was
#: reallocated at every such call, every step. Past this many shapes the oldest goes.
KEPT_PER_NAME = 16


PAGE = 4096


def thread_stride(values, itemsize):
    """The row length (in values) of a (threads, ...) scratch array whose rows are the
    threads' parts, ``values`` values of ``itemsize`` bytes each: rows a whole page
    longer than they need, rounded to pages, so no two threads' parts share a 4 KB page
    (the Cython kernels' thread_stride in _common.pxd). The L2 streamer prefetches
    within a page: one thread's stores there pulled in the lines the other thread was
    writing. Rows of 210 float32 side by side (even 120 bytes apart) made the numba
    depthwise forward of 32x128x28x28 stride 2 no faster on 2 threads than on one
    (a private-array loop: 302 -> 172 us on 2 threads; the same loop on rows 960
    bytes apart 427 -> 289, on rows 16 KB apart 356 -> 179 us)."""
    nbytes = values * itemsize
    return (-(-nbytes // PAGE) * PAGE + PAGE) // itemsize


def scratch(name, shape, dtype, align=None):
    """A work array kept per calling thread between calls of the same shape and dtype
    (no allocation, no page faults in the steady state). Contents are undefined.
    align: its first byte on a multiple of align bytes (64: a cache line), else wherever
    NumPy puts it (16 bytes past a line, often, which splits every 64-byte vector access
    over two lines: see the numba batchnorm kernels)."""
    store = getattr(_local, "buffers", None)
    if store is None:
        store = _local.buffers = {}
    kept = store.get(name)
    if kept is None:
        kept = store[name] = {}
    key = (shape, dtype) if align is None else (shape, dtype, align)
    buf = kept.get(key)
    if buf is None:
        if len(kept) >= KEPT_PER_NAME:
            del kept[next(iter(kept))]  # the oldest (dicts keep insertion order)
        buf = kept[key] = np.empty(shape, dtype=dtype) if align is None else \
            aligned_empty(shape, dtype, align)
    return buf


def aligned_empty(shape, dtype, align):
    """np.empty(shape, dtype) starting on a multiple of align bytes."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + align, dtype=np.uint8)
    start = -raw.ctypes.data % align
    return raw[start:start + nbytes].view(dtype).reshape(shape)
