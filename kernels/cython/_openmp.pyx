# cython: language_level=3
"""OpenMP thread-count helper: the one place the Cython kernels' thread count is set.

Builds without OpenMP still import and run single-threaded (openmp_enabled() is False).
"""
IF FASTNN_OPENMP:
    cimport openmp


def openmp_enabled():
    """True when the extensions were compiled with OpenMP."""
    IF FASTNN_OPENMP:
        return True
    ELSE:
        return False


def set_num_threads(int n):
    """Set the number of OpenMP threads the Cython kernels' prange loops use."""
    IF FASTNN_OPENMP:
        openmp.omp_set_num_threads(n)


def get_max_threads():
    """The number of threads the next parallel region uses."""
    IF FASTNN_OPENMP:
        return openmp.omp_get_max_threads()
    ELSE:
        return 1
