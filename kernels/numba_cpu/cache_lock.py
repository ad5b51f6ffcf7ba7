"""Numba's disk cache made safe for processes that compile at the same time.

Numba keeps one index per function (its signatures -> data file names) and saves a new
signature by reading the index, taking the first free name ``<function>.N.nbc``, writing
the index, then the data. Two processes saving two signatures of one function at once
(``fastnn compile --jobs 2``, the suite's CUDA-simulator runs beside the main one, two
training scripts started together) both take the same free name: the index one of them
leaves can then point at the other's machine code, which a later process loads for the
wrong argument types. A reader between the two writes finds an index entry whose data
file is missing or stale.

Each save and load of a cache file in this backend's cache directories therefore holds
an ``flock`` on a lock file in that directory: exclusive while saving (index and data
together), shared while loading. The lock is advisory and local; where ``fcntl`` is
missing (Windows) Numba runs as before. Only this backend's caches (directories named
for ``numba_cpu``) take the lock; a user's own jitted code keeps Numba's behaviour.
"""
import contextlib
import os

try:
    import fcntl
except ImportError:   # Windows
    fcntl = None

LOCK_NAME = "fastnn-cache.lock"


def _ours(cache_file):
    return "numba_cpu" in getattr(cache_file, "_cache_path", "")


@contextlib.contextmanager
def locked(directory, exclusive):
    """The cache directory's lock, held for the block (exclusive or shared)."""
    path = os.path.join(directory, LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:   # a directory we cannot write: Numba cannot save there either
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except OSError:   # a file system without locks (some NFS mounts): as before
            pass
        yield
    finally:
        os.close(fd)   # closing releases the lock


def install():
    """Wrap Numba's ``IndexDataCacheFile.save`` and ``load`` (once per process).
    Returns True when the lock is in place."""
    from numba.core import caching
    cls = getattr(caching, "IndexDataCacheFile", None)
    if fcntl is None or cls is None:
        return False
    if getattr(cls.save, "_fastnn_locked", False):
        return True
    cls.save = _locking(cls.save, exclusive=True)
    cls.load = _locking(cls.load, exclusive=False)
    return True


def _locking(method, exclusive):
    """method (save or load) holding the cache directory's lock, in this backend's
    caches."""
    def wrapped(self, *args):
        if not _ours(self):
            return method(self, *args)
        with locked(self._cache_path, exclusive):
            return method(self, *args)

    wrapped._fastnn_locked = True
    return wrapped
