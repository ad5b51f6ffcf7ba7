# cython: language_level=3
"""SciPy's BLAS for the kernels that run matrix products (_dense, _conv): an inline
function, kept out of _common.pxd because cimporting it makes a module import
scipy.linalg.cython_blas when it loads."""
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv

from _common cimport floating


cdef inline void blas_gemm(char transa, char transb, int m, int n, int k, floating alpha,
                           const floating* a, int lda, const floating* b, int ldb,
                           floating beta, floating* c, int ldc) noexcept nogil:
    """Column-major C = alpha op(A) op(B) + beta C through SciPy's BLAS (LP64)."""
    if floating is float:
        sgemm(&transa, &transb, &m, &n, &k, &alpha, <float*>a, &lda, <float*>b, &ldb,
              &beta, c, &ldc)
    else:
        dgemm(&transa, &transb, &m, &n, &k, &alpha, <double*>a, &lda, <double*>b, &ldb,
              &beta, c, &ldc)


cdef inline void blas_gemv(char trans, int m, int n, floating alpha, const floating* a,
                           int lda, const floating* x, floating beta,
                           floating* y) noexcept nogil:
    """Column-major y = alpha op(A) x + beta y, A (m, n), x and y with unit stride,
    through SciPy's BLAS (LP64). With beta = 0, y is not read."""
    cdef int one = 1
    if floating is float:
        sgemv(&trans, &m, &n, &alpha, <float*>a, &lda, <float*>x, &one, &beta, y, &one)
    else:
        dgemv(&trans, &m, &n, &alpha, <double*>a, &lda, <double*>x, &one, &beta, y, &one)
