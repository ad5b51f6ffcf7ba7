"""One thread-count setting for every backend: Numba's parallel loops, the Cython
kernels' OpenMP loops and the BLAS library NumPy/SciPy use."""
import os
import sys

_num_threads = None


def _default_threads():
    for var in ("FASTNN_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var)
        if value and value.isdigit() and int(value) > 0:
            return int(value)
    return os.cpu_count() or 1


def get_num_threads():
    """The number of threads fastnn's kernels use."""
    return _num_threads if _num_threads is not None else _default_threads()


def set_num_threads(n):
    """Use ``n`` threads in every backend's parallel loops and in BLAS."""
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive int, got {n!r}")
    _num_threads = n
    apply_num_threads()


def apply_num_threads():
    """Push the current thread count to every runtime that is already loaded.

    Backends call this when they load, so a count set before the first op still holds.
    """
    n = get_num_threads()
    if "numba" in sys.modules:
        import numba
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        from .kernels.cython import _openmp
    except ImportError:  # the Cython extensions are not built (a source checkout)
        pass
    else:
        _openmp.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    global _blas_limit
    _blas_limit = threadpool_limits(limits=n, user_api="blas")


_blas_limit = None
