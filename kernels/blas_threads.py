"""Run SciPy's BLAS on the calling thread only, while our own threads call it in parallel.

The conv kernels of the numba and cython backends split the batch across their own
thread pool and call ``?gemm`` from every thread on that thread's samples (see
kernels/cython/_conv.pyx). OpenBLAS's pthreads build, which SciPy wheels ship, would
otherwise hand each of those calls to its own second pool: two pools on the same cores
spin against each other (measured: the 32x64x16x16 -> 128 conv forward took 64 ms with
2 threads against 15 ms with one). ``serial_blas()`` sets SciPy's OpenBLAS to one thread
for the duration of a ``with`` block and restores the previous count when the last of
any concurrent blocks ends (a process-wide count, so two Python threads in conv kernels
at once cannot leave BLAS stuck at one thread).

``available()`` is False when SciPy's BLAS is not an OpenBLAS with the thread-count
functions (another BLAS, or an unexpected build); the kernels then keep BLAS's own
threading and run their per-sample loop on one thread.

When MKL runs the conv products (fastnn/mkl_blas.py, on libgomp like the kernels), a
product called from a thread of the kernels' parallel region runs on that thread only
if the region cannot nest: libgomp's max-active-levels must be 1, its default. Numba's
'omp' threading layer raises it to 255 when it starts, and then every MKL product
opened a team of its own inside each conv thread: 32x64x16x16 -> 128 forward+backward
took 48 ms against 12-13 ms (2 threads; PyTorch 12 ms). The same ``with`` block sets it
to 1 and puts back the value it found (unless something changed it meanwhile).
"""
import contextlib
import ctypes
import os
import threading

from fastnn import blas_pool

_lock = threading.Lock()
_depth = 0
_saved = None
_get = _set = None


def _bind():
    global _get, _set
    lib = blas_pool.scipy_blas_library()  # dlsym also searches its dependencies
    if lib is None:
        return
    for prefix in ("scipy_openblas_", "openblas_"):
        try:
            get = getattr(lib, prefix + "get_num_threads")
            set_ = getattr(lib, prefix + "set_num_threads")
        except AttributeError:
            continue
        get.restype, get.argtypes = ctypes.c_int, []
        set_.restype, set_.argtypes = None, [ctypes.c_int]
        _get, _set = get, set_
        return


_bind()


_gomp = None   # libgomp's handle once it is loaded (it is never loaded from here)
_saved_levels = None


def _openmp():
    """libgomp's handle when this process has loaded it, else None."""
    global _gomp
    if _gomp is None:
        try:
            lib = ctypes.CDLL("libgomp.so.1", mode=os.RTLD_NOLOAD | os.RTLD_GLOBAL)
        except (OSError, AttributeError):
            return None
        lib.omp_get_max_active_levels.restype = ctypes.c_int
        lib.omp_get_max_active_levels.argtypes = []
        lib.omp_set_max_active_levels.restype = None
        lib.omp_set_max_active_levels.argtypes = [ctypes.c_int]
        _gomp = lib
    return _gomp


def _no_nesting():
    """Make libgomp's parallel regions unable to nest; returns the count it had."""
    gomp = _openmp()
    if gomp is None:
        return None
    levels = gomp.omp_get_max_active_levels()
    if levels != 1:
        gomp.omp_set_max_active_levels(1)
    return levels


def _restore_nesting(levels):
    gomp = _openmp()
    if gomp is not None and levels is not None and levels != 1 \
            and gomp.omp_get_max_active_levels() == 1:
        gomp.omp_set_max_active_levels(levels)


def available():
    """True when SciPy's BLAS thread count can be set (an OpenBLAS)."""
    return _set is not None


class _SerialBlas:
    def __enter__(self):
        global _depth, _saved, _saved_levels
        with _lock:
            if _depth == 0:
                if _set is not None:
                    _saved = _get()
                    _set(1)
                _saved_levels = _no_nesting()
            _depth += 1
        return self

    def __exit__(self, *exc):
        global _depth
        with _lock:
            _depth -= 1
            if _depth == 0:
                if _set is not None:
                    _set(_saved)
                _restore_nesting(_saved_levels)
        return False


_SERIAL = _SerialBlas()


# Fork. A child forked while another thread was inside a serial_blas block inherited
# _lock held (a later set_num_threads in the child, in a worker initializer, waited for
# ever: 25 of 400 children forked during conv calls) and _depth > 0 (BLAS stuck at one
# thread, set_num_threads unable to change it). The lock is taken around the fork, so
# the child's copy of the bookkeeping is whole; the child, which has none of those
# threads, gets a fresh lock and the count and nesting levels the blocks had saved.
def _before_fork():
    _lock.acquire()


def _after_fork_in_parent():
    _lock.release()


def _after_fork_in_child():
    global _lock, _depth
    _lock = threading.Lock()
    if _depth:
        _depth = 0
        if _set is not None and _saved is not None:
            _set(_saved)
        _restore_nesting(_saved_levels)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)


def serial_blas():
    """Context manager: SciPy's BLAS runs on the calling thread inside the block, and
    OpenMP regions do not nest (so MKL does the same)."""
    return _SERIAL


@contextlib.contextmanager
def changing_count(n):
    """Context manager around a change of BLAS's thread count to ``n`` (what
    ``fastnn.set_num_threads`` does): while ``serial_blas`` blocks run in other threads,
    they keep BLAS at one thread, and the last to end restores ``n``, not the count it
    saved (which would undo the change)."""
    global _saved
    with _lock:
        yield
        if _set is not None and _depth:
            _saved = n
            _set(1)
