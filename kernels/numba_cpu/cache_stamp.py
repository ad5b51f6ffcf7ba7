"""Numba's disk cache made to forget kernels built from other helper sources.

Numba stamps each function's cache index with its own source file (a SHA-256 of it in
Numba 0.68, its mtime and size before), and serves the cached machine code for as long
as that file is unchanged. A kernel of this
backend also carries code from other modules of it, compiled into its own: the inlined
``helper`` functions, intrinsics and overloads of ``vmath``, ``blas``, ``select``,
``flush``, ``prefetch``, ``nt_store``, ``chunks`` (the chunking of the (N, C)
reductions) and ``row_exps`` (the row kernels' exps), and ``config``'s generated block
loops and options. After an edit to one of those, the cache kept serving the old code.

Each index of this backend's caches is therefore stamped with Numba's stamp and a
digest of those modules' sources (``HELPERS``, hashed once per process). An index saved
under another digest is stale to Numba's own check, as after an edit of the kernel's
file: the kernel compiles again and its save replaces the index (its data files
numbered from 1 again, the stale ones overwritten as they are reused). Nothing is
deleted, so nothing can vanish under a process loading at the same time, and two
processes of different sources (an edit while one runs) each load only their own
entries; a load reads the index and its data under the cache directory's lock
(cache_lock.py), so it never pairs one process's index with the other's data.
"""
import hashlib
import os

# The modules of this backend whose code or constants are compiled into kernels of the
# others (every module another one imports: tests/test_numba_cache_stamp.py checks).
# A kernel module's own edits are Numba's stamp's business.
HELPERS = ("blas", "chunks", "config", "flush", "nt_store", "prefetch", "row_exps", "select",
           "vmath")

_digest = None


def helpers_digest(directory=os.path.dirname(os.path.abspath(__file__)), names=HELPERS):
    """SHA-256 (hex) of the helper modules' sources in directory (a missing file counts
    as empty)."""
    digest = hashlib.sha256()
    for name in names:
        try:
            with open(os.path.join(directory, name + ".py"), "rb") as f:
                source = f.read()
        except OSError:
            source = b""
        digest.update(b"%s %d\n" % (name.encode(), len(source)))
        digest.update(source)
    return digest.hexdigest()


def current_digest():
    """helpers_digest() of this process, computed at its first use (the sources as
    imported: the backend imports them all at once)."""
    global _digest
    if _digest is None:
        _digest = helpers_digest()
    return _digest


def _ours(cache_path):
    return "numba_cpu" in cache_path   # as cache_lock's test: this backend's caches


def install():
    """Wrap Numba's ``IndexDataCacheFile.__init__`` (once per process) so that this
    backend's indexes carry the helpers' digest in their source stamp. Returns True when
    the stamp is in place."""
    from numba.core import caching
    cls = getattr(caching, "IndexDataCacheFile", None)
    if cls is None:
        return False
    if getattr(cls.__init__, "_fastnn_stamped", False):
        return True
    init = cls.__init__

    def __init__(self, cache_path, filename_base, source_stamp):
        if _ours(cache_path):
            source_stamp = (source_stamp, current_digest())
        init(self, cache_path, filename_base, source_stamp)

    __init__._fastnn_stamped = True
    cls.__init__ = __init__
    return True
