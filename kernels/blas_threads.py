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
"""
import contextlib
import ctypes
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


def available():
    """True when SciPy's BLAS thread count can be set (an OpenBLAS)."""
    return _set is not None


class _SerialBlas:
    def __enter__(self):
        global _depth, _saved
        if _set is None:
            return self
        with _lock:
            if _depth == 0:
                _saved = _get()
                _set(1)
            _depth += 1
        return self

    def __exit__(self, *exc):
        global _depth
        if _set is None:
            return False
        with _lock:
            _depth -= 1
            if _depth == 0:
                _set(_saved)
        return False


_SERIAL = _SerialBlas()


def serial_blas():
    """Context manager: SciPy's BLAS runs on the calling thread inside the block."""
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
