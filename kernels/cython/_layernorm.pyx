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
from cython.parallel cimport prange
from libc.math cimport NAN, sqrt

from _common cimport floating, fnn_workspace, n_chunks, threads_for


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


def layer_norm_forward(const floating[:, ::1] x, const floating[::1] weight,
                       const floating[::1] bias, double eps, floating[:, ::1] out,
                       floating[::1] save_mean, floating[::1] save_invstd):
    """x, out: (N, D); weight, bias: (D,) or None; save_mean, save_invstd: (N,)."""
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1], i
    cdef const floating* wp = NULL
    cdef const floating* bp = NULL
    if n == 0:
        return
    if d == 0:  # rows of no values: their mean and invstd are NaN (0 / 0), as the reference's
        for i in range(n):
            save_mean[i] = NAN
            save_invstd[i] = NAN
        return
    if weight is not None:
        wp = &weight[0]
    if bias is not None:
        bp = &bias[0]
    with nogil:
        for i in prange(n, schedule="static", num_threads=threads_for(n * d)):
            _norm_row(&x[i, 0], &out[i, 0], wp, bp, d, eps, &save_mean[i], &save_invstd[i])


def layer_norm_backward(const floating[:, ::1] grad_out, const floating[:, ::1] x,
                        const floating[::1] weight, const floating[::1] save_mean,
                        const floating[::1] save_invstd, floating[::1] grad_weight,
                        floating[::1] grad_bias, floating[:, ::1] grad_in):
    """grad_out, x, grad_in: (N, D); weight, grad_weight, grad_bias: (D,) or None;
    save_mean, save_invstd: (N,). The gradients are accumulated, grad_in written."""
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1], nch = n_chunks(n), k, j
    cdef bint want = grad_weight is not None or grad_bias is not None
    cdef floating* work
    cdef const floating* wp
    cdef double sw, sb
    if n == 0 or d == 0:
        return
    # the chunks' partial sums (nch, 2, d), then ones for a missing weight
    work = <floating*>fnn_workspace(0, ((2 * nch * d) if want else 0) * sizeof(floating)
                                    + d * sizeof(floating))   # kept per thread
    if work == NULL:
        raise MemoryError("layer_norm_backward: no memory for the partial sums")
    with nogil:
        if weight is not None:
            wp = &weight[0]
        else:
            for j in range(d):
                work[(2 * nch * d if want else 0) + j] = 1
            wp = work + (2 * nch * d if want else 0)
        for k in prange(nch, schedule="static", num_threads=threads_for(n * d)):
            _grad_rows(&grad_out[0, 0], &x[0, 0], wp, &save_mean[0], &save_invstd[0],
                       &grad_in[0, 0], k * n // nch, (k + 1) * n // nch, d,
                       work + 2 * k * d if want else NULL,
                       work + 2 * k * d + d if want else NULL)
        if want:
            for j in range(d):   # the partials in chunk order, in double
                sw = 0
                sb = 0
                for k in range(nch):
                    sw += work[2 * k * d + j]
                    sb += work[2 * k * d + d + j]
                if grad_weight is not None:
                    grad_weight[j] += <floating>sw
                if grad_bias is not None:
                    grad_bias[j] += <floating>sb

