# cython: language_level=3
# distutils: extra_compile_args = -fno-math-errno
"""Layer normalisation forward and backward over (N, D) rows.

The numba backend's scheme (kernels/numba_cpu/layernorm.py): the forward's row
statistics in double, one task per row; the backward one pass over g and x in fixed
row chunks (a function of N only), each chunk summing its rows' g * xhat and g into its
own partial in x's type while it computes grad_in, the partials then added in chunk
order in double (the same bits for any thread count). The backward's row sums run in
x's type (compute-bound loop). Optional weight and bias are NULL pointers tested outside
the inner loops (ones stand in for a missing weight in the backward).
"""
cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport NAN, sqrt

from _common cimport floating, fnn_workspace, n_chunks, threads_for
from _ndarrays cimport array_data, dim, float_type, vector_data_or_null


cdef inline void _norm_row(const floating* x, floating* y, const floating* w,
                           const floating* b, Py_ssize_t d, double eps, floating* mean_out,
                           floating* inv_out) noexcept nogil:
    """y = (x - mean) * invstd * w + b for one row of d values; stores mean and invstd."""
    cdef Py_ssize_t j
    cdef double s = 0, q = 0, v
    for j in range(d):
        s += x[j]
    cdef floating mean = <floating>(s / d)
    for j in range(d):
        v = <double>(x[j] - mean)
        q += v * v
    cdef floating inv = <floating>(1.0 / sqrt(q / d + eps))
    mean_out[0] = mean
    inv_out[0] = inv
    if w != NULL and b != NULL:  # one loop per case (PyTorch's default is the first)
        for j in range(d):
            y[j] = (x[j] - mean) * inv * w[j] + b[j]
    elif w != NULL:
        for j in range(d):
            y[j] = (x[j] - mean) * inv * w[j]
    elif b != NULL:
        for j in range(d):
            y[j] = (x[j] - mean) * inv + b[j]
    else:
        for j in range(d):
            y[j] = (x[j] - mean) * inv


cdef inline void _grad_rows(const floating* g, const floating* x, const floating* w,
                            const floating* save_mean, const floating* save_invstd,
                            floating* gi, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t d,
                            floating* pw, floating* pb) noexcept nogil:
    """Rows r0..r1 of gi = inv * (gx - mean(gx) - xhat * mean(gx * xhat)), gx = g * w;
    pw, pb (d,): the chunk's sums of g * xhat and of g (NULL: not wanted)."""
    cdef Py_ssize_t i, j
    cdef floating a, b, gv, gx, xh, mean, inv, ma, mb, zero = 0
    if pw != NULL:
        for j in range(d):
            pw[j] = zero
            pb[j] = zero
    for i in range(r0, r1):
        mean = save_mean[i]
        inv = save_invstd[i]
        a = zero
        b = zero
        if pw != NULL:
            for j in range(d):
                gv = g[i * d + j]
                xh = (x[i * d + j] - mean) * inv
                gx = gv * w[j]
                a += gx
                b += gx * xh
                pw[j] += gv * xh
                pb[j] += gv
        else:
            for j in range(d):
                gx = g[i * d + j] * w[j]
                a += gx
                b += gx * ((x[i * d + j] - mean) * inv)
        ma = a / d
        mb = b / d
        for j in range(d):
            gi[i * d + j] = inv * (g[i * d + j] * w[j] - ma - (x[i * d + j] - mean) * inv * mb)


cdef void _forward(const floating* x, floating* out, const floating* wp,
                   const floating* bp, Py_ssize_t n, Py_ssize_t d, double eps,
                   floating* save_mean, floating* save_invstd) noexcept nogil:
    """x, out: (n, d); wp, bp: (d,) or NULL; save_mean, save_invstd: (n,)."""
    cdef Py_ssize_t i
    if d == 0:  # rows of no values: their mean and invstd are NaN (0 / 0), as the reference's
        for i in range(n):
            save_mean[i] = NAN
            save_invstd[i] = NAN
        return
    for i in prange(n, schedule="static", num_threads=threads_for(n * d)):
        _norm_row(x + i * d, out + i * d, wp, bp, d, eps, save_mean + i, save_invstd + i)


cdef void _backward(const floating* g, const floating* x, const floating* w,
                    const floating* save_mean, const floating* save_invstd,
                    floating* grad_weight, floating* grad_bias, floating* gi, Py_ssize_t n,
                    Py_ssize_t d, floating* work) noexcept nogil:
    """g, x, gi: (n, d), n, d > 0; w: (d,) or NULL; grad_weight, grad_bias: (d,) or
    NULL; work: (2 n_chunks(n) d + d,) scratch when a parameter gradient is wanted,
    else (d,)."""
    cdef Py_ssize_t nch = n_chunks(n), k, j
    cdef bint want = grad_weight != NULL or grad_bias != NULL
    cdef Py_ssize_t ones = 2 * nch * d if want else 0
    cdef double sw, sb
    if w == NULL:
        for j in range(d):
            work[ones + j] = 1
        w = work + ones
    for k in prange(nch, schedule="static", num_threads=threads_for(n * d)):
        _grad_rows(g, x, w, save_mean, save_invstd, gi, k * n // nch, (k + 1) * n // nch, d,
                   work + 2 * k * d if want else NULL,
                   work + 2 * k * d + d if want else NULL)
    if want:
        for j in range(d):   # the partials in chunk order, in double
            sw = 0
            sb = 0
            for k in range(nch):
                sw += work[2 * k * d + j]
                sb += work[2 * k * d + d + j]
            if grad_weight != NULL:
                grad_weight[j] += <floating>sw
            if grad_bias != NULL:
                grad_bias[j] += <floating>sb


# The entries take the ndarrays themselves (_ndarrays.pxd: the checks the fused
# memoryviews made, in C, and the shapes too).

def layer_norm_forward(cnp.ndarray x not None, cnp.ndarray weight, cnp.ndarray bias,
                       double eps, cnp.ndarray out not None, cnp.ndarray save_mean not None,
                       cnp.ndarray save_invstd not None):
    """x, out: (N, D); weight, bias: (D,) or None; save_mean, save_invstd: (N,). One
    float dtype, C-contiguous."""
    cdef int kind = float_type(x)
    cdef Py_ssize_t n = dim(x, 0, 2, "x"), d = dim(x, 1, 2, "x")
    cdef void* xp = array_data(x, kind, n, d, False, "x")
    cdef void* yp = array_data(out, kind, n, d, True, "out")
    cdef void* wp = vector_data_or_null(weight, kind, d, False, "weight")
    cdef void* bp = vector_data_or_null(bias, kind, d, False, "bias")
    cdef void* mp = array_data(save_mean, kind, n, -1, True, "save_mean")
    cdef void* sp = array_data(save_invstd, kind, n, -1, True, "save_invstd")
    if n == 0:
        return
    if kind == cnp.NPY_FLOAT:
        with nogil:
            _forward(<const float*>xp, <float*>yp, <const float*>wp, <const float*>bp, n,
                     d, eps, <float*>mp, <float*>sp)
    else:
        with nogil:
            _forward(<const double*>xp, <double*>yp, <const double*>wp, <const double*>bp,
                     n, d, eps, <double*>mp, <double*>sp)


def layer_norm_backward(cnp.ndarray grad_out not None, cnp.ndarray x not None,
                        cnp.ndarray weight, cnp.ndarray save_mean not None,
                        cnp.ndarray save_invstd not None, cnp.ndarray grad_weight,
                        cnp.ndarray grad_bias, cnp.ndarray grad_in not None):
    """grad_out, x, grad_in: (N, D); weight, grad_weight, grad_bias: (D,) or None;
    save_mean, save_invstd: (N,). The gradients are accumulated, grad_in written. One
    float dtype, C-contiguous."""
    cdef int kind = float_type(x)
    cdef Py_ssize_t n = dim(x, 0, 2, "x"), d = dim(x, 1, 2, "x")
    cdef size_t size = 4 if kind == cnp.NPY_FLOAT else 8
    cdef void* gp = array_data(grad_out, kind, n, d, False, "grad_out")
    cdef void* xp = array_data(x, kind, n, d, False, "x")
    cdef void* wp = vector_data_or_null(weight, kind, d, False, "weight")
    cdef void* mp = array_data(save_mean, kind, n, -1, False, "save_mean")
    cdef void* sp = array_data(save_invstd, kind, n, -1, False, "save_invstd")
    cdef void* gw = vector_data_or_null(grad_weight, kind, d, True, "grad_weight")
    cdef void* gb = vector_data_or_null(grad_bias, kind, d, True, "grad_bias")
    cdef void* gi = array_data(grad_in, kind, n, d, True, "grad_in")
    cdef bint want = gw != NULL or gb != NULL
    cdef void* work
    if n == 0 or d == 0:
        return
    # the chunks' partial sums (nch, 2, d), then ones for a missing weight
    work = fnn_workspace(0, ((2 * n_chunks(n) * d) if want else 0) * size + d * size)
    if work == NULL:
        raise MemoryError("layer_norm_backward: no memory for the partial sums")
    if kind == cnp.NPY_FLOAT:
        with nogil:
            _backward(<const float*>gp, <const float*>xp, <const float*>wp,
                      <const float*>mp, <const float*>sp, <float*>gw, <float*>gb,
                      <float*>gi, n, d, <float*>work)
    else:
        with nogil:
            _backward(<const double*>gp, <const double*>xp, <const double*>wp,
                      <const double*>mp, <const double*>sp, <double*>gw, <double*>gb,
                      <double*>gi, n, d, <double*>work)
