"""Column-major ?gemm through ctypes, for the ILP64 Fortran entry points that fastnn
holds as ctypes functions (MKL's ``?gemm_64``: fastnn/mkl_blas.py; NumPy's OpenBLAS
``?gemm_64_``: fastnn/blas_pool.py). Used by the benchmarks' MKL sgemm ceiling
(bench/ceilings.py); the compiled backends call the same entry points directly (the
Cython kernels through C function pointers, the numba kernels through
kernels/numba_cpu/blas.py's intrinsic).
"""
import ctypes

import numpy as np

_SCALAR = {np.dtype(np.float32): ctypes.c_float, np.dtype(np.float64): ctypes.c_double}
# the by-reference scalar arguments of each call shape, built once: a ctypes call that
# builds them took 8 us more than np.matmul, one that reuses them 2 us more
_ARGUMENTS = {}


def gemm(gemms, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc):
    """Column-major c (m, n) = op(a) @ op(b) + beta c through an ILP64 Fortran ?gemm
    (``gemms``: its float32 and float64 ctypes functions); a, b, c: C-contiguous arrays
    of one dtype, not empty, read as the column-major matrices with leading dimensions
    lda, ldb, ldc; trans_a, trans_b: b"N" or b"T"."""
    function = gemms[0] if c.dtype == np.float32 else gemms[1]
    key = (id(function), trans_a, trans_b, m, n, k, lda, ldb, beta, ldc)  # function lives on
    arguments = _ARGUMENTS.get(key)
    if arguments is None:
        if len(_ARGUMENTS) > 4096:  # a bound, for a process that sees endless shapes
            _ARGUMENTS.clear()
        scalar = _SCALAR[c.dtype]
        m, n, k, lda, ldb, ldc = (ctypes.c_int64(v) for v in (m, n, k, lda, ldb, ldc))
        one, beta = scalar(1.0), scalar(beta)
        arguments = _ARGUMENTS[key] = (
            function, trans_a, trans_b,
            ctypes.byref(m), ctypes.byref(n), ctypes.byref(k), ctypes.byref(one),
            ctypes.byref(lda), ctypes.byref(ldb), ctypes.byref(beta), ctypes.byref(ldc))
    function, ta, tb, m, n, k, alpha, lda, ldb, beta, ldc = arguments
    function(ta, tb, m, n, k, alpha, _data(a), lda, _data(b), ldb, beta, _data(c), ldc)


def _data(a):
    """A ctypes pointer to a's first element (a: C-contiguous, not empty): 0.5 us where
    ``a.ctypes.data`` takes 1.2 us, for a writeable array."""
    if a.flags.writeable:
        return ctypes.byref(ctypes.c_char.from_buffer(a))
    return ctypes.c_void_p(a.ctypes.data)
