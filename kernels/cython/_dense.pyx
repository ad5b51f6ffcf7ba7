# cython: language_level=3
# distutils: extra_compile_args = -fno-math-errno
"""Linear layer forward and backward: BLAS GEMM plus fused bias and activation,
each a single call that runs from the first GEMM to the last without the GIL.

Row-major arrays are handed to the column-major BLAS as their transposes:
a C-contiguous (R, K) array is a Fortran (K, R) matrix with leading dimension K.
"""
cimport numpy as cnp
from cython.parallel cimport prange
from libc.string cimport memset
from libc.limits cimport INT_MAX
from libc.stdint cimport int64_t

from _ndarrays cimport array_data, dim, float_type
from _blas cimport GemmPair, blas_gemv, ilp64_or_blas_gemm, set_gemm_pair
from _common cimport (floating, fnn_workspace, threads_for, n_chunks, f_sigmoid, f_tanh,
                      ACT_IDENTITY, ACT_RELU, ACT_LEAKY_RELU, ACT_SIGMOID, ACT_TANH)

# Intel MKL (fastnn/mkl_blas.py), else NumPy's OpenBLAS when fastnn/blas_pool.py found it
# on the OpenMP pool (64-bit integers both): NumPy's sgemm ran this machine's Linear
# products 5-22% faster than SciPy's (set by use_ilp64_gemm; NULL: SciPy's cython_blas).
cdef GemmPair _gemms
_gemms.sgemm64 = NULL
_gemms.dgemm64 = NULL


def use_ilp64_gemm(size_t sgemm_address, size_t dgemm_address):
    """Run the Linear products through these Fortran ILP64 ?gemm_64 entry points (MKL's
    or NumPy's OpenBLAS's); 0, 0 goes back to SciPy's BLAS."""
    set_gemm_pair(&_gemms, sgemm_address, dgemm_address, "use_ilp64_gemm")


def ilp64_gemm_in_use():
    """True while the Linear products run through use_ilp64_gemm's entry points."""
    return _gemms.sgemm64 != NULL


# BLAS takes 32-bit sizes (SciPy's LP64 ?gemm/?gemv, and the gemm wrappers' int
# arguments): a batch is handed over in pieces of at most this many rows, so no size
# is cut to 32 bits (a batch of 2^31 rows had given silently wrong rows).
# _set_blas_rows lowers it so tests reach the pieces with small arrays.
cdef Py_ssize_t _blas_rows = 1 << 30


def _set_blas_rows(Py_ssize_t rows):
    """Set the most rows one BLAS call takes (tests only); returns the previous."""
    global _blas_rows
    if rows < 1 or rows > (1 << 30):
        raise ValueError(f"rows must be in [1, 2**30], got {rows}")
    previous, _blas_rows = _blas_rows, rows
    return previous


cdef inline void gemm(char transa, char transb, int m, int n, int k, floating alpha,
                      const floating* a, int lda, const floating* b, int ldb,
                      floating beta, floating* c, int ldc) noexcept nogil:
    """Column-major C = alpha op(A) op(B) + beta C (see use_ilp64_gemm)."""
    ilp64_or_blas_gemm(&_gemms, transa, transb, m, n, k, alpha, a, lda, b, ldb,
                       beta, c, ldc)


cdef inline void _bias_act_row(floating* y, const floating* bias, Py_ssize_t m, int act,
                               floating slope) noexcept nogil:
    """y[j] = act(y[j] + bias[j]) in place. y: (m,); bias: (m,) or NULL."""
    cdef Py_ssize_t j
    cdef floating v
    if bias != NULL:
        for j in range(m):
            y[j] = y[j] + bias[j]
    if act == ACT_RELU:
        for j in range(m):
            y[j] = 0 if y[j] < 0 else y[j]
    elif act == ACT_LEAKY_RELU:
        for j in range(m):
            y[j] = y[j] if y[j] > 0 else y[j] * slope
    elif act == ACT_SIGMOID:
        for j in range(m):
            y[j] = f_sigmoid(y[j])
    elif act == ACT_TANH:
        for j in range(m):
            y[j] = f_tanh(y[j])


cdef inline void _act_grad_rows(const floating* gout, const floating* y, floating* g,
                                floating* bias_acc, Py_ssize_t rows, Py_ssize_t m,
                                int act, floating slope) noexcept nogil:
    """g = gout * act'(y) for `rows` rows of width m, and bias_acc[j] = sum of g[:, j].

    gout, y, g: (rows, m); bias_acc: (m,) or NULL. With act identity g is gout and
    only the bias sums are taken.
    """
    cdef Py_ssize_t r, j
    cdef floating one = 1
    if bias_acc != NULL:
        for j in range(m):
            bias_acc[j] = 0
    for r in range(rows):
        if act == ACT_RELU:
            for j in range(m):
                g[j] = 0 if y[j] <= 0 else gout[j]  # NaN y passes gout, as PyTorch's
        elif act == ACT_LEAKY_RELU:
            for j in range(m):
                g[j] = gout[j] if y[j] > 0 else gout[j] * slope
        elif act == ACT_SIGMOID:
            for j in range(m):
                g[j] = gout[j] * y[j] * (one - y[j])
        elif act == ACT_TANH:
            for j in range(m):
                g[j] = gout[j] * (one - y[j] * y[j])
        if bias_acc != NULL:
            for j in range(m):
                bias_acc[j] += g[j]
        gout += m
        y += m
        g += m


cdef void linear_forward_kernel(const floating* x, const floating* w, const floating* bias,
                                int act, floating slope, floating* y, Py_ssize_t n,
                                Py_ssize_t fin, Py_ssize_t fout,
                                floating* yt) noexcept nogil:
    """y = act(x @ w.T + bias). x: (n, fin); w: (fout, fin); bias: (fout,) or NULL;
    y: (n, fout); yt: (fout, n) scratch, or NULL. With yt BLAS computes y.T into it
    (faster for a short batch of a wide layer: kernels/gemm_shapes.py) and the fused
    pass reads it transposed into y."""
    cdef Py_ssize_t i, j, r0, rows
    if n == 1 and fin > 0:
        # A matrix-vector product: gemv. OpenBLAS's gemm packs the whole matrix even
        # for one column (784 -> 100 at batch 1: 23 -> 8 us a call). (With no input
        # features gemv returns without writing y; gemm below writes zeros.)
        # y (fout,) = w (fout, fin) @ x (fin,), w column-major (fin, fout)
        blas_gemv(c"T", <int>fin, <int>fout, 1, w, <int>fin, x, 0, y)
    elif yt != NULL and not (fout == 1 and fin > 0) and n <= _blas_rows:
        # Column-major: yt.T (n, fout) = x (n, fin) @ w.T (fin, fout).
        gemm(c"T", c"N", <int>n, <int>fout, <int>fin, 1, x, <int>max(fin, 1), w,
             <int>max(fin, 1), 0, yt, <int>n)
        for i in prange(n, schedule="static", num_threads=threads_for(n * fout)):
            for j in range(fout):
                y[i * fout + j] = yt[j * n + i]
            _bias_act_row(y + i * fout, bias, fout, act, slope)
        return
    else:
        r0 = 0
        while r0 < n:
            rows = min(_blas_rows, n - r0)
            if fout == 1 and fin > 0:
                # y (rows,) = x (rows, fin) @ w (fin,), x column-major (fin, rows)
                blas_gemv(c"T", <int>fin, <int>rows, 1, x + r0 * fin, <int>fin, w, 0,
                          y + r0)
            else:
                # Column-major: y.T (fout, rows) = w (fout, fin) @ x.T (fin, rows).
                gemm(c"T", c"N", <int>fout, <int>rows, <int>fin, 1, w, <int>max(fin, 1),
                     x + r0 * fin, <int>max(fin, 1), 0, y + r0 * fout, <int>fout)
            r0 += rows
    if bias == NULL and act == ACT_IDENTITY:
        return
    for i in prange(n, schedule="static", num_threads=threads_for(n * fout)):
        _bias_act_row(y + i * fout, bias, fout, act, slope)


cdef void linear_backward_kernel(const floating* gout, const floating* x, const floating* w,
                                 const floating* y, int act, floating slope,
                                 floating* grad_w, floating* grad_b, floating* grad_in,
                                 floating* g, floating* partial, Py_ssize_t n,
                                 Py_ssize_t fin, Py_ssize_t fout,
                                 bint accumulate) noexcept nogil:
    """Backward of linear_forward_kernel.

    gout, y, g: (n, fout) (g is gout when act is identity); x: (n, fin);
    w, grad_w: (fout, fin); grad_b: (fout,) or NULL; grad_in: (n, fin) or NULL;
    partial: (n_chunks(n), fout) scratch when grad_b is given. n, fout >= 1; grad_w and
    grad_in are NULL when fin == 0. grad_w and grad_b are accumulated (overwritten when
    not accumulate); grad_in is written.
    """
    cdef Py_ssize_t nch = n_chunks(n), c, r0, r1, j, rows
    cdef floating beta = 1 if accumulate else 0
    if act != ACT_IDENTITY or grad_b != NULL:
        for c in prange(nch, schedule="static", num_threads=threads_for(n * fout)):
            r0 = c * n // nch
            r1 = (c + 1) * n // nch
            _act_grad_rows(gout + r0 * fout, y + r0 * fout, g + r0 * fout,
                           partial + c * fout if grad_b != NULL else NULL,
                           r1 - r0, fout, act, slope)
        if grad_b != NULL:
            # chunk sums added in chunk order, vectorized along j
            for c in range(1, nch):
                for j in range(fout):
                    partial[j] = partial[j] + partial[c * fout + j]
            if accumulate:
                for j in range(fout):
                    grad_b[j] += partial[j]
            else:
                for j in range(fout):
                    grad_b[j] = partial[j]
    # matrix-vector products go to gemv, as in the forward; the batch in pieces of at
    # most _blas_rows rows, each piece's grad_w product added to the last
    r0 = 0
    while r0 < n:
        rows = min(_blas_rows, n - r0)
        if grad_w != NULL and fout == 1:
            # grad_w (fin,) = beta grad_w + x.T (fin, rows) @ g (rows,)
            blas_gemv(c"N", <int>fin, <int>rows, 1, x + r0 * fin, <int>fin, g + r0, beta,
                      grad_w)
        elif grad_w != NULL:
            # grad_w.T (fin, fout) = beta grad_w.T + x.T (fin, rows) @ g (rows, fout)
            gemm(c"N", c"T", <int>fin, <int>fout, <int>rows, 1, x + r0 * fin,
                 <int>max(fin, 1), g + r0 * fout, <int>max(fout, 1), beta, grad_w,
                 <int>max(fin, 1))
        beta = 1
        if grad_in != NULL and n == 1:
            # grad_in (fin,) = w.T (fin, fout) @ g (fout,)
            blas_gemv(c"N", <int>fin, <int>fout, 1, w, <int>fin, g, 0, grad_in)
        elif grad_in != NULL:
            # grad_in.T (fin, rows) = w.T (fin, fout) @ g.T (fout, rows)
            gemm(c"N", c"N", <int>fin, <int>rows, <int>fout, 1, w, <int>max(fin, 1),
                 g + r0 * fout, <int>max(fout, 1), 0, grad_in + r0 * fin, <int>max(fin, 1))
        r0 += rows


# ------------------------------------------------------------------ entry points
# The entries take the ndarrays themselves (_ndarrays.pxd: the checks a fused
# memoryview made, in C, and the shapes too): 2.5 -> 1.1 us a call for a 1x1 layer.

cdef int _check_features(Py_ssize_t fin, Py_ssize_t fout, str op) except -1:
    """A clear error for a feature count BLAS's 32-bit sizes cannot hold (the batch is
    split instead: _blas_rows)."""
    if fin > INT_MAX or fout > INT_MAX:
        raise ValueError(f"{op}: in_features {fin} and out_features {fout} must each be "
                         f"at most {INT_MAX} (the BLAS's 32-bit sizes)")
    return 0


def linear_forward(cnp.ndarray x not None, cnp.ndarray weight not None, cnp.ndarray bias,
                   int act, double negative_slope, cnp.ndarray out not None,
                   cnp.ndarray transposed=None):
    """x: (N, in); weight: (out, in); bias: (out,) or None; out: (N, out);
    transposed: (out, N) scratch to compute the product transposed, or None.
    One float dtype, C-contiguous."""
    cdef int kind = float_type(x)
    cdef Py_ssize_t n = dim(x, 0, 2, "x"), fin = dim(x, 1, 2, "x")
    cdef Py_ssize_t fout = dim(weight, 0, 2, "weight")
    cdef void* xp = array_data(x, kind, n, fin, False, "x")
    cdef void* wp = array_data(weight, kind, fout, fin, False, "weight")
    cdef void* yp = array_data(out, kind, n, fout, True, "out")
    cdef void* b = NULL
    cdef void* yt = NULL
    if bias is not None:
        b = array_data(bias, kind, fout, -1, False, "bias")
    if transposed is not None:
        yt = array_data(transposed, kind, fout, n, True, "transposed scratch")
    _check_features(fin, fout, "linear_forward")
    if n == 0 or fout == 0:
        return
    if kind == cnp.NPY_FLOAT:
        with nogil:
            linear_forward_kernel(<const float*>xp, <const float*>wp, <const float*>b, act,
                                  <float>negative_slope, <float*>yp, n, fin, fout,
                                  <float*>yt)
    else:
        with nogil:
            linear_forward_kernel(<const double*>xp, <const double*>wp, <const double*>b,
                                  act, negative_slope, <double*>yp, n, fin, fout,
                                  <double*>yt)


def linear_backward(cnp.ndarray grad_out not None, cnp.ndarray x not None,
                    cnp.ndarray weight not None, cnp.ndarray y, int act,
                    double negative_slope, cnp.ndarray grad_weight, cnp.ndarray grad_bias,
                    cnp.ndarray grad_in, cnp.ndarray scratch, bint accumulate=True):
    """grad_out, y, scratch: (N, out); x, grad_in: (N, in); weight, grad_weight: (out, in);
    grad_bias: (out,). One float dtype, C-contiguous. y and scratch may be None for the
    identity activation; the gradients may be None when not wanted. grad_weight and
    grad_bias are accumulated, or overwritten when not accumulate."""
    cdef int kind = float_type(grad_out)
    cdef Py_ssize_t n = dim(x, 0, 2, "x"), fin = dim(x, 1, 2, "x")
    cdef Py_ssize_t fout = dim(weight, 0, 2, "weight")
    cdef size_t size = 4 if kind == cnp.NPY_FLOAT else 8
    cdef void* gp = array_data(grad_out, kind, n, fout, False, "grad_out")
    cdef void* xp = array_data(x, kind, n, fin, False, "x")
    cdef void* wp = array_data(weight, kind, fout, fin, False, "weight")
    cdef void* yp = NULL
    cdef void* g = gp     # only read: the identity writes no g
    cdef void* gw = NULL
    cdef void* gb = NULL
    cdef void* gi = NULL
    cdef void* partial = NULL
    if act != ACT_IDENTITY:
        if y is None or scratch is None:
            raise ValueError("linear_backward: an activation needs y and scratch")
        yp = array_data(y, kind, n, fout, False, "y")
        g = array_data(scratch, kind, n, fout, True, "scratch")
    if grad_weight is not None:
        gw = array_data(grad_weight, kind, fout, fin, True, "grad_weight")
    if grad_bias is not None:
        gb = array_data(grad_bias, kind, fout, -1, True, "grad_bias")
    if grad_in is not None:
        gi = array_data(grad_in, kind, n, fin, True, "grad_in")
    _check_features(fin, fout, "linear_backward")
    if n == 0 or fout == 0:   # empty products: zero gradients (no sums to add when accumulating)
        if gi != NULL:
            memset(gi, 0, n * fin * size)
        if not accumulate:
            if gw != NULL:
                memset(gw, 0, fout * fin * size)
            if gb != NULL:
                memset(gb, 0, fout * size)
        return
    if fin == 0:   # with no input features only the bias gradient is defined
        xp = wp = gw = gi = NULL
    if gb != NULL:
        # kept per thread between calls (_workspace.h)
        partial = fnn_workspace(0, n_chunks(n) * fout * size)
        if partial == NULL:
            raise MemoryError("linear_backward: no memory for the bias-gradient partials")
    if kind == cnp.NPY_FLOAT:
        with nogil:
            linear_backward_kernel(<const float*>gp, <const float*>xp, <const float*>wp,
                                   <const float*>yp, act, <float>negative_slope,
                                   <float*>gw, <float*>gb, <float*>gi, <float*>g,
                                   <float*>partial, n, fin, fout, accumulate)
    else:
        with nogil:
            linear_backward_kernel(<const double*>gp, <const double*>xp, <const double*>wp,
                                   <const double*>yp, act, negative_slope,
                                   <double*>gw, <double*>gb, <double*>gi, <double*>g,
                                   <double*>partial, n, fin, fout, accumulate)
