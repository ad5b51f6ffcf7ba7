"""Row chunks of the (N, C) reductions (BatchNorm's column sums, Linear's bias gradient,
LayerNorm's parameter gradients): a function of N only, never of the thread count, so
chunk partials merged in chunk order give the same bits for any count.

A module of its own because the kernels of batchnorm, dense and layernorm inline these
helpers: it is in cache_stamp.HELPERS, and an edit of batchnorm.py no longer recompiles
every kernel of the backend.
"""
from .config import helper

# rows in at most MAX_CHUNKS chunks of at least MIN_ROWS (the Cython backend's
# MAX_CHUNKS / CHUNK_MIN_ROWS)
MAX_CHUNKS = 32
MIN_ROWS = 32


@helper
def n_chunks(n):
    """The number of row chunks of an (N, C) reduction over n rows (1 to MAX_CHUNKS)."""
    return min(max(n // MIN_ROWS, 1), MAX_CHUNKS)


@helper
def chunk_rows(k, nch, n):
    """(first, stop): the rows of chunk k of nch over n rows."""
    return k * n // nch, (k + 1) * n // nch
