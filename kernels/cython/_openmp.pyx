# cython: language_level=3
"""OpenMP thread-count helper: the one place the Cython kernels' thread count is set.

Builds without OpenMP still import and run single-threaded (openmp_enabled() is False);
the switch is the compiler's own _OPENMP macro, read in _fastnn_math.h.
"""
cdef extern from "_fastnn_math.h" nogil:
    int fnn_openmp_enabled()
    int fnn_max_threads()
    void fnn_set_num_threads(int n)
    int FNN_HAVE_FMA
    const char* FNN_SIMD


def openmp_enabled():
    """True when the extensions were compiled with OpenMP."""
    return bool(fnn_openmp_enabled())


def hardware_fma():
    """True when the extensions were compiled for a CPU with FMA (the -march=native
    build on any recent x86-64): False in a FASTNN_NATIVE=0 build, whose float64
    exp, log, log1p, tanh, sigmoid, GELU, sin and cos then call libm (_common.pxd)."""
    return bool(FNN_HAVE_FMA)


def simd():
    """The widest vector instruction set the extensions were compiled for, e.g.
    'avx512f', 'avx2', 'sse4.2' (a FASTNN_NATIVE=0 build for x86-64-v2) or 'sse2'
    (x86-64's baseline, that build's where the compiler lacks x86-64-v2)."""
    return FNN_SIMD.decode()


def set_num_threads(int n):
    """Set the number of OpenMP threads the Cython kernels' prange loops use."""
    fnn_set_num_threads(n)


def get_max_threads():
    """The number of threads the next parallel region uses."""
    return fnn_max_threads()


def bounds_checked():
    """True when the extensions were built with FASTNN_CYTHON_DEBUG=1 (bounds,
    wraparound and initialisation checks on). Probed, not recorded: index one past
    the end of a view whose buffer continues, which raises only under boundscheck."""
    cdef double[2] storage
    cdef double[::1] view = storage
    cdef Py_ssize_t i = 1
    view = view[:1]
    try:
        view[i]
    except IndexError:
        return True
    return False


cdef extern from "_blas_pool.h" nogil:
    int FNN_BLAS_POOL
    ctypedef void (*fnn_dojob_t)(int, void *, int)
    void fnn_blas_jobs(int sync, fnn_dojob_t dojob, int numjobs, size_t elsize,
                       void *jobdata, int dojob_data)


def blas_jobs_callback():
    """The address of the C function that runs OpenBLAS's parallel jobs on this OpenMP
    pool (kernels/cython/_blas_pool.h), for openblas_set_threads_callback_function; 0 in
    a build without OpenMP (or on Windows), where there is no pool to run them on."""
    return <size_t>&fnn_blas_jobs if FNN_BLAS_POOL else 0
