# cython: language_level=3
# distutils: extra_compile_args = -fno-math-errno
"""SGD (momentum, weight decay, Nesterov), Adam, RMSprop, Adagrad, Adamax, the NAdam /
RAdam step (adaptive_moments_update), Adadelta, Rprop and ASGD in place, one parallel pass
over each parameter with PyTorch's update rules."""
cimport numpy as cnp
from cython.parallel cimport prange

from _ndarrays cimport float_type, values_data
from _common cimport floating, threads_for, f_sqrt

cdef extern from "_flush.h" nogil:
    unsigned int fnn_flush_begin()
    void fnn_flush_end(unsigned int csr)

cdef extern from *:
    """
    #include <math.h>
    /* a * b + c as one explicit fused multiply-add where the CPU has one (a plain
       multiply-add elsewhere, where nothing is contracted): see _fma below */
    #if defined(__FMA__) || defined(FP_FAST_FMA)
    #define FNN_OPT_FMA(a, b, c) fma(a, b, c)
    #define FNN_OPT_FMAF(a, b, c) fmaf(a, b, c)
    #else
    #define FNN_OPT_FMA(a, b, c) ((a) * (b) + (c))
    #define FNN_OPT_FMAF(a, b, c) ((a) * (b) + (c))
    #endif
    """
    double FNN_OPT_FMA(double a, double b, double c) nogil
    float FNN_OPT_FMAF(float a, float b, float c) nogil

DEF BLOCK = 16384


cdef inline Py_ssize_t _block_len(Py_ssize_t n) noexcept nogil:
    """Values per block of an update over n values: at most BLOCK, a multiple of 16 (a
    64-byte line of float32), and as many blocks for every thread, since the static
    schedule hands each thread an equal run of blocks. (Fixed 16384-value blocks gave
    the 79510 parameters of the 784-100-10 MLP 3 blocks to one thread and 2 to the
    other.)"""
    cdef Py_ssize_t threads = threads_for(n)
    cdef Py_ssize_t per_thread = (n + threads - 1) // threads
    cdef Py_ssize_t blocks = (per_thread + BLOCK - 1) // BLOCK
    cdef Py_ssize_t length = (per_thread + blocks - 1) // blocks
    return max(<Py_ssize_t>16, (length + 15) // 16 * 16)


cdef inline floating _decayed(floating g, floating p, floating wd) noexcept nogil:
    """g + wd p (PyTorch's L2 weight decay), and g itself when wd is 0, as PyTorch skips
    the term: an infinite parameter stays infinite instead of 0 * inf = NaN (a select,
    which gcc vectorizes as a blend)."""
    return g + wd * p if wd != 0 else g


cdef inline floating _lerp(floating start, floating end, floating coeff,
                           bint small) noexcept nogil:
    """start.lerp_(end, w) as PyTorch's (Adam's first moment, w = 1 - beta1):
    start + w (end - start) when |w| < 0.5 (small, coeff w), else end + (w - 1)
    (end - start) (coeff w - 1), one fused multiply-add as PyTorch's vectorized lerp.
    Not b1 start + w end: an infinite start turns NaN on a finite end (inf - inf), as
    PyTorch's, instead of staying infinite. A select on a loop-invariant flag: gcc
    vectorizes it as a blend."""
    return (start if small else end) + coeff * (end - start)


cdef inline floating _fma(floating a, floating b, floating c) noexcept nogil:
    """a * b + c with one rounding, written out: for a sum of two products, a b + x y,
    gcc's contraction may fuse either product into the add, and it chose differently in
    the one-thread loop and in the OpenMP region's copy of the same inline block (NAdam's
    ra m + rg d in float64: 1 ulp apart on 1-25% of the values between 1 and 2 threads,
    where README promises the same bits; that sum is now two divided terms, PyTorch's
    order, and _fma forms the denominator)."""
    if floating is float:
        return FNN_OPT_FMAF(a, b, c)
    else:
        return FNN_OPT_FMA(a, b, c)


# 1.0, stored at import: a number gcc cannot fold. _added(x, y) = x + y with x a rounded
# product, where PyTorch rounds it alone (buf.mul_(momentum).addcdiv_(...),
# ax.add_(param.sub(ax).mul_(mu))): gcc's contraction fuses a product written into an
# add, and fma(1, y, x) with a literal 1 could be folded into that add again.
cdef double _ONE = 1.0


cdef inline floating _added(floating product, floating y) noexcept nogil:
    """product + y, the product already rounded (see _ONE)."""
    return _fma(<floating>_ONE, y, product)


cdef inline bint _lerp_small(floating w) noexcept nogil:
    """PyTorch's lerp branch for the weight w: |w| < 0.5."""
    return -0.5 < w < 0.5


# _second_moment_order: Adam's v = b2 v + (1 - b2) d d is written c2 * d * d + b2 * v, so
# that gcc's contraction (-ffp-contract=fast) fuses the (c2 d) d product into the add and
# rounds b2 v alone: fma(c2 d, d, b2 v), PyTorch's v.mul_(b2).addcmul_(d, d, value=c2)
# bit for bit (and the numba backend's). Written b2 * v + ..., gcc fused b2 v instead:
# 25% of the values 1 ulp off PyTorch's. Same operation count either way.


cdef inline void _sgd_block(floating* p, const floating* g, floating* v, Py_ssize_t n,
                            floating lr, floating mom, floating wd, bint nesterov,
                            floating keep) noexcept nogil:
    """p, g: (n,); v: (n,) or NULL when mom == 0; keep: 1 - dampening."""
    cdef unsigned int csr = fnn_flush_begin()   # _flush.h: subnormals to zero
    cdef Py_ssize_t i
    cdef floating d
    if v == NULL:
        for i in range(n):
            p[i] = p[i] - lr * _decayed(g[i], p[i], wd)
    elif nesterov:
        for i in range(n):
            d = _decayed(g[i], p[i], wd)
            v[i] = _fma(keep, d, mom * v[i])
            p[i] = p[i] - lr * (d + mom * v[i])
    else:
        # PyTorch's buf.mul_(momentum).add_(d, alpha=1 - dampening): v mom rounded
        # alone, then d added by a fused multiply-add, written out (gcc's contraction
        # fused v mom into the add instead, and the float32 trajectory left PyTorch's
        # from the second step); keep 1: exactly v mom + d
        for i in range(n):
            v[i] = _fma(keep, _decayed(g[i], p[i], wd), mom * v[i])
            p[i] = p[i] - lr * v[i]
    fnn_flush_end(csr)


cdef inline void _adam_block(floating* p, const floating* g, floating* m, floating* v,
                             Py_ssize_t n, floating step_size, floating b2,
                             floating c1, floating c2, floating sqrt_bc2, floating eps,
                             floating wd) noexcept nogil:
    """p, g, m, v: (n,); c1: 1 - beta1 (the lerp weight, _lerp), c2: 1 - beta2, both
    formed in double (1 - float32(beta) is off by 1e-4 relative at beta2 0.9999).
    sqrt(v) / sqrt_bc2 as a multiplication by its reciprocal (as the numba backend's
    fastmath 'arcp' does): one division per element instead of two, which had made this
    loop 1.4-2.2x slower than numba's."""
    cdef Py_ssize_t i
    cdef floating d, one = 1
    cdef floating inv_root = one / sqrt_bc2
    cdef bint small = _lerp_small(c1)
    cdef floating coeff = c1 if small else c1 - one
    for i in range(n):
        d = _decayed(g[i], p[i], wd)
        m[i] = _lerp(m[i], d, coeff, small)
        v[i] = c2 * d * d + b2 * v[i]   # _second_moment_order
        p[i] = p[i] - step_size * m[i] / (f_sqrt(v[i]) * inv_root + eps)


cdef inline void _amsgrad_block(floating* p, const floating* g, floating* m, floating* v,
                                floating* vmax, Py_ssize_t n, floating step_size,
                                floating b2, floating c1, floating c2, floating sqrt_bc2,
                                floating eps, floating wd) noexcept nogil:
    """_adam_block with the running maximum of v (AMSGrad) in the denominator."""
    cdef Py_ssize_t i
    cdef floating d, w, one = 1
    cdef floating inv_root = one / sqrt_bc2
    cdef bint small = _lerp_small(c1)
    cdef floating coeff = c1 if small else c1 - one
    for i in range(n):
        d = _decayed(g[i], p[i], wd)
        m[i] = _lerp(m[i], d, coeff, small)
        v[i] = c2 * d * d + b2 * v[i]   # _second_moment_order
        w = vmax[i] if vmax[i] > v[i] else v[i]
        vmax[i] = w
        p[i] = p[i] - step_size * m[i] / (f_sqrt(w) * inv_root + eps)


cdef void _sgd(floating* param, const floating* grad, floating* v, Py_ssize_t n,
               floating lr, floating momentum, floating weight_decay, bint nesterov,
               floating keep) noexcept nogil:
    """sgd_update over n >= 1 values; v NULL when momentum == 0."""
    cdef Py_ssize_t blen = _block_len(n), nblocks = (n + blen - 1) // blen, b, start
    if threads_for(n) == 1:     # no OpenMP region for one thread (~0.6-1 us a call)
        for b in range(nblocks):
            start = b * blen
            _sgd_block(param + start, grad + start, v + start if v != NULL else NULL,
                       min(blen, n - start), lr, momentum, weight_decay, nesterov, keep)
        return
    for b in prange(nblocks, schedule="static", num_threads=threads_for(n)):
        start = b * blen
        _sgd_block(param + start, grad + start, v + start if v != NULL else NULL,
                   min(blen, n - start), lr, momentum, weight_decay, nesterov, keep)


def sgd_update(cnp.ndarray param not None, cnp.ndarray grad not None, cnp.ndarray velocity,
               double lr, double momentum, double weight_decay, bint nesterov,
               double dampening=0.0):
    """param, grad: arrays of one float dtype and size, C-contiguous (any shape);
    velocity: the same, or None when momentum == 0."""
    cdef int kind = float_type(param)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(param)
    cdef void* p = values_data(param, kind, n, True, "param")
    cdef void* g = values_data(grad, kind, n, False, "grad")
    cdef void* v = NULL
    if momentum != 0:
        if velocity is None:
            raise ValueError("sgd_update: momentum needs a velocity array")
        v = values_data(velocity, kind, n, True, "velocity")
    if n == 0:
        return
    if kind == cnp.NPY_FLOAT:
        with nogil:
            _sgd(<float*>p, <const float*>g, <float*>v, n, <float>lr, <float>momentum,
                 <float>weight_decay, nesterov, <float>(1.0 - dampening))
    else:
        with nogil:
            _sgd(<double*>p, <const double*>g, <double*>v, n, lr, momentum, weight_decay,
                 nesterov, 1.0 - dampening)


cdef inline void _adam_any_block(floating* p, const floating* g, floating* m, floating* v,
                                 floating* vmax, Py_ssize_t n, floating step_size,
                                 floating b2, floating c1, floating c2,
                                 floating sqrt_bc2, floating eps, floating wd) noexcept nogil:
    """_amsgrad_block when vmax is given, else _adam_block."""
    cdef unsigned int csr = fnn_flush_begin()   # _flush.h: subnormals to zero
    if vmax != NULL:
        _amsgrad_block(p, g, m, v, vmax, n, step_size, b2, c1, c2, sqrt_bc2, eps, wd)
    else:
        _adam_block(p, g, m, v, n, step_size, b2, c1, c2, sqrt_bc2, eps, wd)
    fnn_flush_end(csr)


cdef void _adam(floating* param, const floating* grad, floating* m, floating* v,
                floating* vmax, Py_ssize_t n, floating step_size, floating beta2,
                floating c1, floating c2, floating sqrt_bc2, floating eps,
                floating wd) noexcept nogil:
    """adam_update over n >= 1 values; vmax NULL unless AMSGrad."""
    cdef Py_ssize_t blen = _block_len(n), nblocks = (n + blen - 1) // blen, b, start
    if threads_for(n) == 1:     # no OpenMP region for one thread (~0.6-1 us a call)
        for b in range(nblocks):
            start = b * blen
            _adam_any_block(param + start, grad + start, m + start, v + start,
                            vmax + start if vmax != NULL else NULL, min(blen, n - start),
                            step_size, beta2, c1, c2, sqrt_bc2, eps, wd)
        return
    for b in prange(nblocks, schedule="static", num_threads=threads_for(n)):
        start = b * blen
        _adam_any_block(param + start, grad + start, m + start, v + start,
                        vmax + start if vmax != NULL else NULL, min(blen, n - start),
                        step_size, beta2, c1, c2, sqrt_bc2, eps, wd)


def adam_update(cnp.ndarray param not None, cnp.ndarray grad not None,
                cnp.ndarray exp_avg not None, cnp.ndarray exp_avg_sq not None, long step,
                double lr, double beta1, double beta2, double eps, double weight_decay,
                cnp.ndarray max_exp_avg_sq=None):
    """param, grad, exp_avg, exp_avg_sq: arrays of one float dtype and size, C-contiguous
    (any shape); step: 1-based; max_exp_avg_sq: the same for AMSGrad, or None."""
    cdef int kind = float_type(param)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(param)
    cdef double bc1 = 1.0 - beta1 ** step, bc2 = 1.0 - beta2 ** step
    cdef double sqrt_bc2 = bc2 ** 0.5
    cdef void* p = values_data(param, kind, n, True, "param")
    cdef void* g = values_data(grad, kind, n, False, "grad")
    cdef void* m = values_data(exp_avg, kind, n, True, "exp_avg")
    cdef void* v = values_data(exp_avg_sq, kind, n, True, "exp_avg_sq")
    cdef void* vmax = NULL
    if max_exp_avg_sq is not None:
        vmax = values_data(max_exp_avg_sq, kind, n, True, "max_exp_avg_sq")
    if n == 0:
        return
    if kind == cnp.NPY_FLOAT:
        with nogil:
            _adam(<float*>p, <const float*>g, <float*>m, <float*>v, <float*>vmax, n,
                  <float>(lr / bc1), <float>beta2, <float>(1.0 - beta1),
                  <float>(1.0 - beta2), <float>sqrt_bc2, <float>eps,
                  <float>weight_decay)
    else:
        with nogil:
            _adam(<double*>p, <const double*>g, <double*>m, <double*>v, <double*>vmax, n,
                  lr / bc1, beta2, 1.0 - beta1, 1.0 - beta2, sqrt_bc2, eps, weight_decay)


cdef inline void _adagrad_block(floating* p, const floating* g, floating* ssum,
                                Py_ssize_t n, floating lr, floating wd,
                                floating eps) noexcept nogil:
    """p, g, ssum: (n,)."""
    cdef unsigned int csr = fnn_flush_begin()   # _flush.h: subnormals to zero
    cdef Py_ssize_t i
    cdef floating d, s
    for i in range(n):
        d = _decayed(g[i], p[i], wd)
        s = ssum[i] + d * d
        ssum[i] = s
        p[i] = p[i] - lr * d / (f_sqrt(s) + eps)
    fnn_flush_end(csr)


cdef void _adagrad(floating* param, const floating* grad, floating* ssum, Py_ssize_t n,
                   floating lr, floating wd, floating eps) noexcept nogil:
    """adagrad_update over n >= 1 values."""
    cdef Py_ssize_t blen = _block_len(n), nblocks = (n + blen - 1) // blen, b, start
    if threads_for(n) == 1:     # no OpenMP region for one thread
        for b in range(nblocks):
            start = b * blen
            _adagrad_block(param + start, grad + start, ssum + start, min(blen, n - start),
                           lr, wd, eps)
        return
    for b in prange(nblocks, schedule="static", num_threads=threads_for(n)):
        start = b * blen
        _adagrad_block(param + start, grad + start, ssum + start, min(blen, n - start),
                       lr, wd, eps)


def adagrad_update(cnp.ndarray param not None, cnp.ndarray grad not None,
                   cnp.ndarray state_sum not None, double lr, double weight_decay,
                   double eps):
    """param, grad, state_sum: arrays of one float dtype and size, C-contiguous (any
    shape)."""
    cdef int kind = float_type(param)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(param)
    cdef void* p = values_data(param, kind, n, True, "param")
    cdef void* g = values_data(grad, kind, n, False, "grad")
    cdef void* s = values_data(state_sum, kind, n, True, "state_sum")
    if n == 0:
        return
    if kind == cnp.NPY_FLOAT:
        with nogil:
            _adagrad(<float*>p, <const float*>g, <float*>s, n, <float>lr,
                     <float>weight_decay, <float>eps)
    else:
        with nogil:
            _adagrad(<double*>p, <const double*>g, <double*>s, n, lr, weight_decay, eps)


cdef inline void _rmsprop_block(floating* p, const floating* g, floating* sq, floating* ga,
                                floating* buf, Py_ssize_t n, floating lr, floating alpha,
                                floating c, floating eps, floating wd,
                                floating mom) noexcept nogil:
    """p, g, sq: (n,); ga: (n,) or NULL (not centered); buf: (n,) or NULL (no momentum).
    One loop per variant: with the NULL tests inside one loop gcc kept it scalar (1.3-2x
    numba's time at 16M values). Rounded as torch.optim.RMSprop, each fused
    multiply-add written out (gcc's contraction chose other products): sq.mul_(alpha)
    .addcmul_(d, d, value=c) is fma(c d, d, alpha sq); grad_avg.lerp_(d, c) as Adam's
    first moment; the centered root's square_avg.addcmul(ga, ga, value=-1) fma(-ga, ga,
    sq); buf.mul_(mom).addcdiv_(d, avg) mom buf and d / avg each rounded, then added."""
    cdef unsigned int csr = fnn_flush_begin()   # _flush.h: subnormals to zero
    cdef Py_ssize_t i
    cdef floating d, s, m, b, one = 1
    cdef bint small = _lerp_small(c)
    cdef floating coeff = c if small else c - one
    if ga != NULL and buf != NULL:
        for i in range(n):
            d = _decayed(g[i], p[i], wd)
            s = _fma(c * d, d, alpha * sq[i])
            m = _lerp(ga[i], d, coeff, small)
            b = _added(mom * buf[i], d / (f_sqrt(_fma(-m, m, s)) + eps))
            sq[i] = s
            ga[i] = m
            buf[i] = b
            p[i] = p[i] - lr * b
    elif ga != NULL:
        for i in range(n):
            d = _decayed(g[i], p[i], wd)
            s = _fma(c * d, d, alpha * sq[i])
            m = _lerp(ga[i], d, coeff, small)
            sq[i] = s
            ga[i] = m
            p[i] = p[i] - lr * d / (f_sqrt(_fma(-m, m, s)) + eps)
    elif buf != NULL:
        for i in range(n):
            d = _decayed(g[i], p[i], wd)
            s = _fma(c * d, d, alpha * sq[i])
            b = _added(mom * buf[i], d / (f_sqrt(s) + eps))
            sq[i] = s
            buf[i] = b
            p[i] = p[i] - lr * b
    else:
        for i in range(n):
            d = _decayed(g[i], p[i], wd)
            s = _fma(c * d, d, alpha * sq[i])
            sq[i] = s
            p[i] = p[i] - lr * d / (f_sqrt(s) + eps)
    fnn_flush_end(csr)


cdef void _rmsprop(floating* param, const floating* grad, floating* sq, floating* ga,
                   floating* buf, Py_ssize_t n, floating lr, floating alpha, floating c,
                   floating eps, floating wd, floating mom) noexcept nogil:
    """rmsprop_update over n >= 1 values; ga, buf NULL as in _rmsprop_block."""
    cdef Py_ssize_t blen = _block_len(n), nblocks = (n + blen - 1) // blen, b, start
    if threads_for(n) == 1:     # no OpenMP region for one thread
        for b in range(nblocks):
            start = b * blen
            _rmsprop_block(param + start, grad + start, sq + start,
                           ga + start if ga != NULL else NULL,
                           buf + start if buf != NULL else NULL, min(blen, n - start),
                           lr, alpha, c, eps, wd, mom)
        return
    for b in prange(nblocks, schedule="static", num_threads=threads_for(n)):
        start = b * blen
        _rmsprop_block(param + start, grad + start, sq + start,
                       ga + start if ga != NULL else NULL,
                       buf + start if buf != NULL else NULL, min(blen, n - start),
                       lr, alpha, c, eps, wd, mom)


def rmsprop_update(cnp.ndarray param not None, cnp.ndarray grad not None,
                   cnp.ndarray square_avg not None, cnp.ndarray grad_avg,
                   cnp.ndarray momentum_buffer, double lr, double alpha, double eps,
                   double weight_decay, double momentum):
    """param, grad, square_avg: arrays of one float dtype and size, C-contiguous (any
    shape); grad_avg: the same, or None (not centered); momentum_buffer: the same, or
    None (no momentum)."""
    cdef int kind = float_type(param)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(param)
    cdef void* p = values_data(param, kind, n, True, "param")
    cdef void* g = values_data(grad, kind, n, False, "grad")
    cdef void* sq = values_data(square_avg, kind, n, True, "square_avg")
    cdef void* ga = NULL
    cdef void* buf = NULL
    if grad_avg is not None:
        ga = values_data(grad_avg, kind, n, True, "grad_avg")
    if momentum_buffer is not None and momentum != 0:
        buf = values_data(momentum_buffer, kind, n, True, "momentum_buffer")
    if n == 0:
        return
    if kind == cnp.NPY_FLOAT:
        with nogil:
            _rmsprop(<float*>p, <const float*>g, <float*>sq, <float*>ga, <float*>buf, n,
                     <float>lr, <float>alpha, <float>(1.0 - alpha), <float>eps,
                     <float>weight_decay, <float>momentum)
    else:
        with nogil:
            _rmsprop(<double*>p, <const double*>g, <double*>sq, <double*>ga, <double*>buf,
                     n, lr, alpha, 1.0 - alpha, eps, weight_decay, momentum)


cdef inline void _adamax_block(floating* p, const floating* g, floating* m, floating* u,
                               Py_ssize_t n, floating step_size, floating c1,
                               floating b2, floating eps, floating wd) noexcept nogil:
    """p, g, m, u: (n,); c1: 1 - beta1 (the lerp weight). u = max(b2 u, |d| + eps) as
    selects that keep a NaN."""
    cdef unsigned int csr = fnn_flush_begin()   # _flush.h: subnormals to zero
    cdef Py_ssize_t i
    cdef floating d, a, w, mi, one = 1
    cdef bint small = _lerp_small(c1)
    cdef floating coeff = c1 if small else c1 - one
    for i in range(n):
        d = _decayed(g[i], p[i], wd)
        mi = _lerp(m[i], d, coeff, small)
        a = (d if d >= 0 else -d) + eps
        w = b2 * u[i]
        w = w if (w > a) | (w != w) else a
        m[i] = mi
        u[i] = w
        p[i] = p[i] - step_size * mi / w
    fnn_flush_end(csr)


cdef void _adamax(floating* param, const floating* grad, floating* m, floating* u,
                  Py_ssize_t n, floating step_size, floating c1, floating b2,
                  floating eps, floating wd) noexcept nogil:
    """adamax_update over n >= 1 values."""
    cdef Py_ssize_t blen = _block_len(n), nblocks = (n + blen - 1) // blen, b, start
    if threads_for(n) == 1:     # no OpenMP region for one thread
        for b in range(nblocks):
            start = b * blen
            _adamax_block(param + start, grad + start, m + start, u + start,
                          min(blen, n - start), step_size, c1, b2, eps, wd)
        return
    for b in prange(nblocks, schedule="static", num_threads=threads_for(n)):
        start = b * blen
        _adamax_block(param + start, grad + start, m + start, u + start,
                      min(blen, n - start), step_size, c1, b2, eps, wd)


def adamax_update(cnp.ndarray param not None, cnp.ndarray grad not None,
                  cnp.ndarray exp_avg not None, cnp.ndarray exp_inf not None, long step,
                  double lr, double beta1, double beta2, double eps, double weight_decay):
    """param, grad, exp_avg, exp_inf: arrays of one float dtype and size, C-contiguous
    (any shape); step: 1-based."""
    cdef int kind = float_type(param)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(param)
    cdef double step_size = lr / (1.0 - beta1 ** step)
    cdef void* p = values_data(param, kind, n, True, "param")
    cdef void* g = values_data(grad, kind, n, False, "grad")
    cdef void* m = values_data(exp_avg, kind, n, True, "exp_avg")
    cdef void* u = values_data(exp_inf, kind, n, True, "exp_inf")
    if n == 0:
        return
    if kind == cnp.NPY_FLOAT:
        with nogil:
            _adamax(<float*>p, <const float*>g, <float*>m, <float*>u, n,
                    <float>step_size, <float>(1.0 - beta1), <float>beta2, <float>eps,
                    <float>weight_decay)
    else:
        with nogil:
            _adamax(<double*>p, <const double*>g, <double*>m, <double*>u, n, step_size,
                    1.0 - beta1, beta2, eps, weight_decay)


cdef inline void _moments_block(floating* p, const floating* g, floating* m, floating* v,
                                Py_ssize_t n, floating ra, floating rg,
                                floating b2, floating c1, floating c2, floating divisor,
                                floating scale, floating eps, floating wd) noexcept nogil:
    """p, g, m, v: (n,); c1: 1 - beta1 (the lerp weight); divisor, scale: the
    denominator's factors (kernels/moments.py)."""
    cdef unsigned int csr = fnn_flush_begin()   # _flush.h: subnormals to zero
    cdef Py_ssize_t i
    cdef floating d, mi, vi, pi, denom, one = 1
    cdef bint small = _lerp_small(c1)
    cdef floating coeff = c1 if small else c1 - one
    cdef bint with_g = rg != 0       # RAdam: no g term, as PyTorch's (0 * inf is NaN)
    cdef bint adaptive = scale != 0  # RAdam's first steps: the denominator is eps alone,
    for i in range(n):               # even where v overflowed (0 * sqrt(inf) is NaN)
        d = _decayed(g[i], p[i], wd)
        mi = _lerp(m[i], d, coeff, small)
        vi = c2 * d * d + b2 * v[i]     # _second_moment_order
        m[i] = mi
        v[i] = vi
        # (an explicit fma: scale is 1 but where sq_scale was extreme, and a contraction
        # gcc chose per copy of this block would differ between 1 and 2 threads there)
        denom = _fma(f_sqrt(vi / divisor), scale, eps) if adaptive else eps
        pi = p[i] - rg * d / denom if with_g else p[i]     # PyTorch's order
        p[i] = pi - ra * mi / denom
    fnn_flush_end(csr)


cdef void _moments(floating* param, const floating* grad, floating* m, floating* v,
                   Py_ssize_t n, floating ra, floating rg, floating b2, floating c1,
                   floating c2, floating divisor, floating scale, floating eps,
                   floating wd) noexcept nogil:
    """adaptive_moments_update over n >= 1 values."""
    cdef Py_ssize_t blen = _block_len(n), nblocks = (n + blen - 1) // blen, b, start
    if threads_for(n) == 1:     # no OpenMP region for one thread
        for b in range(nblocks):
            start = b * blen
            _moments_block(param + start, grad + start, m + start, v + start,
                           min(blen, n - start), ra, rg, b2, c1, c2, divisor, scale, eps,
                           wd)
        return
    for b in prange(nblocks, schedule="static", num_threads=threads_for(n)):
        start = b * blen
        _moments_block(param + start, grad + start, m + start, v + start,
                       min(blen, n - start), ra, rg, b2, c1, c2, divisor, scale, eps, wd)


def adaptive_moments_update(cnp.ndarray param not None, cnp.ndarray grad not None,
                            cnp.ndarray exp_avg not None, cnp.ndarray exp_avg_sq not None,
                            double avg_rate, double grad_rate, double beta1, double beta2,
                            double sq_divisor, double sq_scale, double eps,
                            double weight_decay):
    """param, grad, exp_avg, exp_avg_sq: arrays of one float dtype and size, C-contiguous
    (any shape); sq_divisor, sq_scale: the denominator's factors (kernels/moments.py)."""
    cdef int kind = float_type(param)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(param)
    cdef void* p = values_data(param, kind, n, True, "param")
    cdef void* g = values_data(grad, kind, n, False, "grad")
    cdef void* m = values_data(exp_avg, kind, n, True, "exp_avg")
    cdef void* v = values_data(exp_avg_sq, kind, n, True, "exp_avg_sq")
    if n == 0:
        return
    if kind == cnp.NPY_FLOAT:
        with nogil:
            _moments(<float*>p, <const float*>g, <float*>m, <float*>v, n,
                     <float>avg_rate, <float>grad_rate, <float>beta2,
                     <float>(1.0 - beta1), <float>(1.0 - beta2), <float>sq_divisor,
                     <float>sq_scale, <float>eps, <float>weight_decay)
    else:
        with nogil:
            _moments(<double*>p, <const double*>g, <double*>m, <double*>v, n, avg_rate,
                     grad_rate, beta2, 1.0 - beta1, 1.0 - beta2, sq_divisor, sq_scale,
                     eps, weight_decay)


cdef inline void _adadelta_block(floating* p, const floating* g, floating* sq,
                                 floating* acc, Py_ssize_t n, floating lr, floating rho,
                                 floating c, floating eps, floating wd, floating sign,
                                 bint decay) noexcept nogil:
    """p, g, sq, acc: (n,); c: 1 - rho formed in double; sign: -1 to maximize, else 1."""
    cdef unsigned int csr = fnn_flush_begin()   # _flush.h: subnormals to zero
    cdef Py_ssize_t i
    cdef floating d, v, delta, u, w, big, root
    cdef floating scale = 18446744073709551616.0     # 2^64
    cdef floating unscale = 2.3283064365386963e-10   # 2^-32
    cdef floating one = 1       # (a literal 1 made Cython form (1.0 - big) in double)
    for i in range(n):
        d = sign * g[i]
        if decay:
            d = d + wd * p[i]
        v = rho * sq[i] + c * d * d
        # one root of the ratio, as the numba kernel, with the numerator scaled by 2^64
        # and the root back by 2^-32 (exact) where v + eps exceeds 2^64 (acc + eps): the
        # plain ratio is subnormal from 2^126 on, flushed to 0 here, and float
        # parameters with gradients of 3e16 and more stopped moving
        u = acc[i] + eps
        w = v + eps
        big = w > u * scale         # 1 or 0: products, not branches, so gcc vectorizes
        root = f_sqrt(u * (big * scale + (one - big)) / w)
        delta = root * (big * unscale + (one - big)) * d
        sq[i] = v
        acc[i] = rho * acc[i] + c * delta * delta
        p[i] = p[i] - lr * delta
    fnn_flush_end(csr)


cdef void _adadelta(floating* param, const floating* grad, floating* sq, floating* acc,
                    Py_ssize_t n, floating lr, floating rho, floating c, floating eps,
                    floating wd, floating sign, bint decay) noexcept nogil:
    """adadelta_update over n >= 1 values."""
    cdef Py_ssize_t blen = _block_len(n), nblocks = (n + blen - 1) // blen, b, start
    if threads_for(n) == 1:     # no OpenMP region for one thread
        for b in range(nblocks):
            start = b * blen
            _adadelta_block(param + start, grad + start, sq + start, acc + start,
                            min(blen, n - start), lr, rho, c, eps, wd, sign, decay)
        return
    for b in prange(nblocks, schedule="static", num_threads=threads_for(n)):
        start = b * blen
        _adadelta_block(param + start, grad + start, sq + start, acc + start,
                        min(blen, n - start), lr, rho, c, eps, wd, sign, decay)


def adadelta_update(cnp.ndarray param not None, cnp.ndarray grad not None,
                    cnp.ndarray square_avg not None, cnp.ndarray acc_delta not None,
                    double lr, double rho, double eps, double weight_decay, bint maximize):
    """param, grad, square_avg, acc_delta: arrays of one float dtype and size,
    C-contiguous (any shape)."""
    cdef int kind = float_type(param)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(param)
    cdef double sign = -1 if maximize else 1
    cdef bint decay = weight_decay != 0
    cdef void* p = values_data(param, kind, n, True, "param")
    cdef void* g = values_data(grad, kind, n, False, "grad")
    cdef void* sq = values_data(square_avg, kind, n, True, "square_avg")
    cdef void* acc = values_data(acc_delta, kind, n, True, "acc_delta")
    if n == 0:
        return
    if kind == cnp.NPY_FLOAT:
        with nogil:
            _adadelta(<float*>p, <const float*>g, <float*>sq, <float*>acc, n, <float>lr,
                      <float>rho, <float>(1.0 - rho), <float>eps, <float>weight_decay,
                      <float>sign, decay)
    else:
        with nogil:
            _adadelta(<double*>p, <const double*>g, <double*>sq, <double*>acc, n, lr,
                      rho, 1.0 - rho, eps, weight_decay, sign, decay)


cdef inline void _rprop_block(floating* p, const floating* g, floating* prev, floating* size,
                              Py_ssize_t n, floating minus, floating plus, floating lo,
                              floating hi, floating sign) noexcept nogil:
    """p, g, prev, size: (n,); sign: -1 to maximize, else 1. The factor comes from the
    sign of g * prev in the dtype (as torch's grad.mul(prev).sign(): 1 for 0 or NaN);
    the clamp takes lo, then hi, and keeps a NaN; the step's direction is torch.sign(g),
    0 for a NaN. Subnormals are not flushed here: a subnormal gradient (or g * prev) is
    a direction, as PyTorch's, and no state decays into them."""
    cdef Py_ssize_t i
    cdef floating d, s, f, z, direction, zero = 0, one = 1
    for i in range(n):
        d = sign * g[i]
        s = d * prev[i]
        f = plus if s > zero else (minus if s < zero else one)
        z = size[i] * f
        if z < lo:
            z = lo
        if z > hi:
            z = hi
        if s < zero:
            d = zero
        direction = one if d > zero else (-one if d < zero else zero)
        size[i] = z
        prev[i] = d
        p[i] = p[i] - direction * z


cdef void _rprop(floating* param, const floating* grad, floating* prev, floating* size,
                 Py_ssize_t n, floating minus, floating plus, floating lo, floating hi,
                 floating sign) noexcept nogil:
    """rprop_update over n >= 1 values."""
    cdef Py_ssize_t blen = _block_len(n), nblocks = (n + blen - 1) // blen, b, start
    if threads_for(n) == 1:     # no OpenMP region for one thread
        for b in range(nblocks):
            start = b * blen
            _rprop_block(param + start, grad + start, prev + start, size + start,
                         min(blen, n - start), minus, plus, lo, hi, sign)
        return
    for b in prange(nblocks, schedule="static", num_threads=threads_for(n)):
        start = b * blen
        _rprop_block(param + start, grad + start, prev + start, size + start,
                     min(blen, n - start), minus, plus, lo, hi, sign)


def rprop_update(cnp.ndarray param not None, cnp.ndarray grad not None,
                 cnp.ndarray prev not None, cnp.ndarray step_size not None,
                 double etaminus, double etaplus, double step_size_min,
                 double step_size_max, bint maximize):
    """param, grad, prev, step_size: arrays of one float dtype and size, C-contiguous
    (any shape)."""
    cdef int kind = float_type(param)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(param)
    cdef double sign = -1 if maximize else 1
    cdef void* p = values_data(param, kind, n, True, "param")
    cdef void* g = values_data(grad, kind, n, False, "grad")
    cdef void* pr = values_data(prev, kind, n, True, "prev")
    cdef void* s = values_data(step_size, kind, n, True, "step_size")
    if n == 0:
        return
    if kind == cnp.NPY_FLOAT:
        with nogil:
            _rprop(<float*>p, <const float*>g, <float*>pr, <float*>s, n,
                   <float>etaminus, <float>etaplus, <float>step_size_min,
                   <float>step_size_max, <float>sign)
    else:
        with nogil:
            _rprop(<double*>p, <const double*>g, <double*>pr, <double*>s, n, etaminus,
                   etaplus, step_size_min, step_size_max, sign)


cdef inline void _asgd_block(floating* p, const floating* g, floating* ax, Py_ssize_t n,
                             floating keep, floating eta, floating mu, floating wd,
                             floating sign, bint decay, bint average) noexcept nogil:
    """p, g, ax: (n,); keep: 1 - lambd eta; sign: -1 to maximize, else 1; average:
    mu != 1 (else ax is a copy of the new p, as torch's)."""
    cdef unsigned int csr = fnn_flush_begin()   # _flush.h: subnormals to zero
    cdef Py_ssize_t i
    cdef floating d, q
    for i in range(n):
        d = sign * g[i]
        if decay:
            d = _fma(wd, p[i], d)    # grad.add(param, alpha=weight_decay): fused
        # PyTorch's param.mul_(keep).add_(d, alpha=-eta), then ax.add_(param.sub(ax)
        # .mul_(mu)): fused as its add_ with alpha, the average's product rounded alone
        q = _fma(-eta, d, p[i] * keep)
        p[i] = q
        if average:
            ax[i] = _added((q - ax[i]) * mu, ax[i])
        else:
            ax[i] = q
    fnn_flush_end(csr)


cdef void _asgd(floating* param, const floating* grad, floating* ax, Py_ssize_t n,
                floating keep, floating eta, floating mu, floating wd, floating sign,
                bint decay, bint average) noexcept nogil:
    """asgd_update over n >= 1 values."""
    cdef Py_ssize_t blen = _block_len(n), nblocks = (n + blen - 1) // blen, b, start
    if threads_for(n) == 1:     # no OpenMP region for one thread
        for b in range(nblocks):
            start = b * blen
            _asgd_block(param + start, grad + start, ax + start, min(blen, n - start),
                        keep, eta, mu, wd, sign, decay, average)
        return
    for b in prange(nblocks, schedule="static", num_threads=threads_for(n)):
        start = b * blen
        _asgd_block(param + start, grad + start, ax + start, min(blen, n - start),
                    keep, eta, mu, wd, sign, decay, average)


def asgd_update(cnp.ndarray param not None, cnp.ndarray grad not None,
                cnp.ndarray ax not None, double eta, double mu, double lambd,
                double weight_decay, bint maximize):
    """param, grad, ax: arrays of one float dtype and size, C-contiguous (any shape)."""
    cdef int kind = float_type(param)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(param)
    cdef double sign = -1 if maximize else 1
    cdef bint decay = weight_decay != 0, average = mu != 1
    cdef void* p = values_data(param, kind, n, True, "param")
    cdef void* g = values_data(grad, kind, n, False, "grad")
    cdef void* a = values_data(ax, kind, n, True, "ax")
    if n == 0:
        return
    if kind == cnp.NPY_FLOAT:
        with nogil:
            _asgd(<float*>p, <const float*>g, <float*>a, n, <float>(1.0 - lambd * eta),
                  <float>eta, <float>mu, <float>weight_decay, <float>sign, decay, average)
    else:
        with nogil:
            _asgd(<double*>p, <const double*>g, <double*>a, n, 1.0 - lambd * eta, eta, mu,
                  weight_decay, sign, decay, average)
