"""The three matrix products of a Linear layer, straight to BLAS ``?gemm``.

Which BLAS, best first: Intel MKL when its wheel is installed (fastnn/mkl_blas.py: it
runs these shapes up to 2.2x faster than OpenBLAS on AVX-512 Xeons), through its
``?gemm_64`` by ctypes; for products of at least MKL_MIN_WORK multiply-adds, NumPy's
OpenBLAS when it runs on the kernels' OpenMP pool (fastnn/blas_pool.py; its sgemm ran
the MLPs' large products 5-22% faster than SciPy's), through
``np.matmul`` when the product overwrites its output and through its ``?gemm_64_`` with
beta = 1 when it accumulates (so that overwriting equals adding to zeros bit for bit);
else SciPy's.

SciPy's BLAS wrappers take Fortran-ordered arrays; a C-contiguous (N, F) array is a
Fortran-ordered (F, N) one through ``.T``, so every product here is expressed on
transposes and runs without a copy. ``gemm`` with ``beta=1`` accumulates the weight
gradient in place (``grad_weight += g.T @ x``) with no temporary, which
``np.matmul`` cannot do.
"""
import numpy as np
from scipy.linalg import blas as _blas

from fastnn import blas_pool as _blas_pool
from fastnn import mkl_blas as _mkl_blas

from ..fortran_gemm import gemm as _fortran_gemm

_GEMM = {np.dtype(np.float32): _blas.sgemm, np.dtype(np.float64): _blas.dgemm}
_numpy_products = False
_mkl_products = None    # (sgemm_64, dgemm_64) of MKL while the products run there
# Products of fewer multiply-adds (rows x inner x outputs) stay on the NumPy/SciPy path:
# a ctypes call costs 2-3 us more than np.matmul, and MKL did not win them back below
# this (2 threads, Xeon, us, MKL / NumPy's OpenBLAS, x @ W.T: 1x100->10 3.7 / 1.3,
# 8x784->100 15-21 / 11-15 (weight gradient 20-24 / 12-15), 128x100->10 7.6 / 8.2;
# 16x784->100 22.8 / 58.7 and up MKL)
MKL_MIN_WORK = 1_000_000
# Below it SciPy's sgemm, not NumPy's, computes the product (both OpenBLAS on the pool):
# the accumulating weight gradient through NumPy's ?gemm_64_ by ctypes cost 3-4 us more
# (Xeon, 2 threads, us, NumPy's / SciPy's, grad_weight += g.T @ x: 128x10 by 100 5.8 /
# 2.4, 32x10 by 100 4.3 / 1.3, 8x100 by 784 14.5 / 10.5, 128x64 by 64 9.8 / 6.4; from
# 1.3M multiply-adds either wins by shape), and np.matmul's overwriting products were
# level with SciPy's there. All three products of a small layer take the same library,
# so overwriting equals accumulating into zeros bit for bit.


def _on_numpy(work):
    """Whether a product of ``work`` multiply-adds goes to NumPy's OpenBLAS."""
    return _numpy_products and work >= MKL_MIN_WORK


def use_numpy_products(flag):
    """Products through NumPy's OpenBLAS when flag (it must be on the pool:
    ``blas_pool.numpy_gemm_functions()``), else through SciPy's."""
    global _numpy_products
    _numpy_products = bool(flag) and _blas_pool.numpy_gemm_functions() is not None


def use_mkl_products(flag):
    """Products through MKL when flag and MKL is in use (``mkl_blas.load()``); else
    as ``use_numpy_products`` says."""
    global _mkl_products
    _mkl_products = _mkl_blas.gemm_functions() if flag else None


def on_mkl(work, *arrays):
    """Whether a product of ``work`` multiply-adds on these arrays goes to MKL (never an
    empty one: the callers' other paths write its zeros)."""
    return (_mkl_products is not None and work > 0 and work >= MKL_MIN_WORK
            and all(a.flags.c_contiguous for a in arrays))


def _numpy_gemm_tn(a, b, out, accumulate):
    """out = a.T @ b (+ out when accumulate) through NumPy's ?gemm_64_."""
    (n, m), k = a.shape, b.shape[1]
    # column-major out.T (K, M) = b.T (K, N) @ a (N, M) [+ out.T]
    _fortran_gemm(_blas_pool.numpy_gemm_functions(), b"N", b"T", k, m, n, b, k, a, m,
                  1.0 if accumulate else 0.0, out, k)


def matmul_nt(a, b, out):
    """out = a @ b.T. a: (N, K); b: (M, K); out: (N, M), written."""
    work = out.size * a.shape[1]
    if on_mkl(work, a, b, out):
        # column-major out.T (M, N) = b (M, K) @ a.T (K, N)
        (n, k), m = a.shape, b.shape[0]
        _fortran_gemm(_mkl_products, b"T", b"N", m, n, k, b, k, a, k, 0.0, out, m)
    elif out.size and a.shape[1] and _on_numpy(work):
        np.matmul(a, b.T, out=out)
    elif out.size and a.shape[1]:
        # out.T (M, N) = b (M, K) @ a.T (K, N)
        _GEMM[a.dtype](1.0, b.T, a.T, beta=0.0, c=out.T, trans_a=1, overwrite_c=1)
    else:
        out[...] = 0
    return out


def matmul_nn(a, b, out):
    """out = a @ b. a: (N, K); b: (K, M); out: (N, M), written."""
    work = out.size * a.shape[1]
    if on_mkl(work, a, b, out):
        # column-major out.T (M, N) = b.T (M, K) @ a.T (K, N)
        (n, k), m = a.shape, b.shape[1]
        _fortran_gemm(_mkl_products, b"N", b"N", m, n, k, b, m, a, k, 0.0, out, m)
    elif out.size and a.shape[1] and _on_numpy(work):
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
    work = out.size * a.shape[0]
    if on_mkl(work, a, b, out):
        # column-major out.T (K, M) = b.T (K, N) @ a (N, M) [+ out.T]
        (n, m), k = a.shape, b.shape[1]
        _fortran_gemm(_mkl_products, b"N", b"T", k, m, n, b, k, a, m,
                      1.0 if accumulate else 0.0, out, k)
    elif out.size and a.shape[0] and _on_numpy(work):
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
