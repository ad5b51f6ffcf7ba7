"""The three matrix products of a Linear layer, straight to BLAS ``?gemm``.

When NumPy's OpenBLAS runs on the kernels' OpenMP pool (fastnn/blas_pool.py), the
products go to it instead of SciPy's (its sgemm ran these shapes 5-22% faster here):
through ``np.matmul`` when they overwrite their output, through its ``?gemm_64_`` (by
ctypes: 8 us more per call than np.matmul) with beta = 1 when they accumulate, so that
overwriting equals adding to zeros bit for bit.

SciPy's BLAS wrappers take Fortran-ordered arrays; a C-contiguous (N, F) array is a
Fortran-ordered (F, N) one through ``.T``, so every product here is expressed on
transposes and runs without a copy. ``gemm`` with ``beta=1`` accumulates the weight
gradient in place (``grad_weight += g.T @ x``) with no temporary, which
``np.matmul`` cannot do.
"""
import ctypes

import numpy as np
from scipy.linalg import blas as _blas

from fastnn import blas_pool as _blas_pool

_GEMM = {np.dtype(np.float32): _blas.sgemm, np.dtype(np.float64): _blas.dgemm}
_numpy_products = False
_SCALAR = {np.dtype(np.float32): ctypes.c_float, np.dtype(np.float64): ctypes.c_double}


def use_numpy_products(flag):
    """Products through NumPy's OpenBLAS when flag (it must be on the pool:
    ``blas_pool.numpy_gemm_functions()``), else through SciPy's."""
    global _numpy_products
    _numpy_products = bool(flag) and _blas_pool.numpy_gemm_functions() is not None


def _numpy_gemm_tn(a, b, out, accumulate):
    """out = a.T @ b (+ out when accumulate) through NumPy's ?gemm_64_: column-major
    out.T (K, M) = b.T (K, N) @ a (N, M) [+ out.T]."""
    (n, m), k = a.shape, b.shape[1]
    sgemm, dgemm = _blas_pool.numpy_gemm_functions()
    gemm = sgemm if a.dtype == np.float32 else dgemm
    scalar = _SCALAR[a.dtype]
    i64 = ctypes.c_int64
    gemm(b"N", b"T", ctypes.byref(i64(k)), ctypes.byref(i64(m)), ctypes.byref(i64(n)),
         ctypes.byref(scalar(1.0)), b.ctypes.data, ctypes.byref(i64(k)), a.ctypes.data,
         ctypes.byref(i64(m)), ctypes.byref(scalar(1.0 if accumulate else 0.0)),
         out.ctypes.data, ctypes.byref(i64(k)))


def matmul_nt(a, b, out):
    """out = a @ b.T. a: (N, K); b: (M, K); out: (N, M), written."""
    if out.size and a.shape[1] and _numpy_products:
        np.matmul(a, b.T, out=out)
    elif out.size and a.shape[1]:
        # out.T (M, N) = b (M, K) @ a.T (K, N)
        _GEMM[a.dtype](1.0, b.T, a.T, beta=0.0, c=out.T, trans_a=1, overwrite_c=1)
    else:
        out[...] = 0
    return out


def matmul_nn(a, b, out):
    """out = a @ b. a: (N, K); b: (K, M); out: (N, M), written."""
    if out.size and a.shape[1] and _numpy_products:
        np.matmul(a, b, out=out)
    elif out.size and a.shape[1]:
        # out.T (M, N) = b.T (M, K) @ a.T (K, N)
        _GEMM[a.dtype](1.0, b.T, a.T, beta=0.0, c=out.T, overwrite_c=1)
    else:
        out[...] = 0
    return out


def matmul_tn(a, b, out, accumulate=False):
    """out = a.T @ b, or out += a.T @ b when accumulate. a: (N, M); b: (N, K);
    out: (M, K)."""
    if out.size and a.shape[0] and _numpy_products:
        if accumulate or min(out.shape) == 1 or a.shape[0] == 1:
            # np.matmul takes a dot or gemv path for a vector result, which would not
            # equal the accumulating gemm bit for bit; and for one row (an outer
            # product, batch 1) its own loop instead of BLAS: (1, 100) x (1, 784)
            # 176 us against 23 us here
            _numpy_gemm_tn(a, b, out, accumulate)
        else:  # the gemm that _numpy_gemm_tn runs, with beta = 0
            np.matmul(a.T, b, out=out)
    elif out.size and a.shape[0]:
        # out.T (K, M) = b.T (K, N) @ a (N, M) [+ out.T]
        _GEMM[a.dtype](1.0, b.T, a.T, beta=1.0 if accumulate else 0.0, c=out.T, trans_b=1,
                       overwrite_c=1)
    elif not accumulate:
        out[...] = 0
    return out
