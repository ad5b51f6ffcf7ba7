"""The three matrix products of a Linear layer, straight to BLAS ``?gemm``.

SciPy's BLAS wrappers take Fortran-ordered arrays; a C-contiguous (N, F) array is a
Fortran-ordered (F, N) one through ``.T``, so every product here is expressed on
transposes and runs without a copy. ``gemm`` with ``beta=1`` accumulates the weight
gradient in place (``grad_weight += g.T @ x``) with no temporary, which
``np.matmul`` cannot do.
"""
import numpy as np
from scipy.linalg import blas as _blas

_GEMM = {np.dtype(np.float32): _blas.sgemm, np.dtype(np.float64): _blas.dgemm}


def matmul_nt(a, b, out):
    """out = a @ b.T. a: (N, K); b: (M, K); out: (N, M), written."""
    if out.size and a.shape[1]:
        # out.T (M, N) = b (M, K) @ a.T (K, N)
        _GEMM[a.dtype](1.0, b.T, a.T, beta=0.0, c=out.T, trans_a=1, overwrite_c=1)
    else:
        out[...] = 0
    return out


def matmul_nn(a, b, out):
    """out = a @ b. a: (N, K); b: (K, M); out: (N, M), written."""
    if out.size and a.shape[1]:
        # out.T (M, N) = b.T (M, K) @ a.T (K, N)
        _GEMM[a.dtype](1.0, b.T, a.T, beta=0.0, c=out.T, overwrite_c=1)
    else:
        out[...] = 0
    return out


def matmul_tn(a, b, out, accumulate=False):
    """out = a.T @ b, or out += a.T @ b when accumulate. a: (N, M); b: (N, K);
    out: (M, K)."""
    if out.size and a.shape[0]:
        # out.T (K, M) = b.T (K, N) @ a (N, M) [+ out.T]
        _GEMM[a.dtype](1.0, b.T, a.T, beta=1.0 if accumulate else 0.0, c=out.T, trans_b=1,
                       overwrite_c=1)
    elif not accumulate:
        out[...] = 0
    return out
