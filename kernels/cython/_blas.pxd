# cython: language_level=3
"""BLAS for the kernels that run matrix products (_dense, _conv): inline functions,
kept out of _common.pxd because cimporting them makes a module import
scipy.linalg.cython_blas when it loads."""
from libc.stdint cimport int64_t
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv

from _common cimport floating

# Fortran ILP64 ?gemm_64 entry points (Intel MKL's, or NumPy's OpenBLAS's), which a
# module holds as a GemmPair set from Python (fastnn/mkl_blas.py, fastnn/blas_pool.py)
ctypedef void (*sgemm64_t)(char*, char*, int64_t*, int64_t*, int64_t*, float*, float*,
                           int64_t*, float*, int64_t*, float*, float*, int64_t*) noexcept nogil
ctypedef void (*dgemm64_t)(char*, char*, int64_t*, int64_t*, int64_t*, double*, double*,
                           int64_t*, double*, int64_t*, double*, double*, int64_t*) noexcept nogil


cdef struct GemmPair:
    # a module's ILP64 products, float32 and float64; both NULL: SciPy's BLAS
    sgemm64_t sgemm64
    dgemm64_t dgemm64


cdef inline int set_gemm_pair(GemmPair* pair, size_t sgemm_address, size_t dgemm_address,
                              str caller) except -1:
    """Point pair at the ?gemm_64 entry points at these addresses (both or neither;
    0, 0: back to SciPy's BLAS)."""
    if (sgemm_address == 0) != (dgemm_address == 0):
        raise ValueError(f"{caller}: give both addresses or neither")
    pair.sgemm64 = <sgemm64_t>sgemm_address
    pair.dgemm64 = <dgemm64_t>dgemm_address
    return 0


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


cdef inline void ilp64_or_blas_gemm(const GemmPair* pair, char transa,
                                    char transb, int m, int n, int k, floating alpha,
                                    const floating* a, int lda, const floating* b, int ldb,
                                    floating beta, floating* c, int ldc) noexcept nogil:
    """Column-major C = alpha op(A) op(B) + beta C through pair's ILP64 ?gemm_64 of x's
    type when its pointer is set, else SciPy's BLAS (blas_gemm). An empty C is left alone;
    with k = 0, C becomes beta C (BLAS's rule, without handing MKL the leading
    dimension of 0 it refuses, leaving C unwritten)."""
    cdef int64_t m64 = m, n64 = n, k64 = k, lda64 = lda, ldb64 = ldb, ldc64 = ldc
    cdef Py_ssize_t i, j
    if m <= 0 or n <= 0:
        return
    if k <= 0:
        for j in range(n):
            for i in range(m):
                c[j * ldc + i] = 0 if beta == 0 else beta * c[j * ldc + i]
        return
    if floating is float and pair.sgemm64 != NULL:
        pair.sgemm64(&transa, &transb, &m64, &n64, &k64, &alpha, <float*>a, &lda64,
                <float*>b, &ldb64, &beta, c, &ldc64)
    elif floating is double and pair.dgemm64 != NULL:
        pair.dgemm64(&transa, &transb, &m64, &n64, &k64, &alpha, <double*>a, &lda64,
                <double*>b, &ldb64, &beta, c, &ldc64)
    else:
        blas_gemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
