# cython: language_level=3
"""Convolution and pooling for the cython backend, each op one call without the GIL.

Algorithm (the same as the numba backend's, chosen by measurement): im2col feeding one
BLAS GEMM per chunk of samples. For a chunk of ``nb`` samples the patches are laid out
as ``col: (K, L)`` with ``K = C_in * kH * kW`` and ``L = nb * H_out * W_out``:

* forward: ``yc (C_out, L) = W (C_out, K) @ col``, then a parallel copy to NCHW with the
  bias add fused into it;
* weight gradient: ``grad_weight (C_out, K) += g (C_out, L) @ col.T`` with the whole
  chunk as GEMM's inner dimension;
* input gradient: ``dcol (K, L) = W.T @ g``, then col2im.

One GEMM per chunk (not per sample) keeps the GEMM shapes large where the spatial size
is small (the 2x2 and 1x1 layers at the end of ConvNet). From ``PER_SAMPLE_MIN_P``
output positions per sample up, the forward and both gradient GEMMs instead run per
sample straight into and out of the NCHW arrays, reading their block of ``col`` with a
leading dimension of ``L``: that skips the channel-major copies (and their buffers) at
the same measured speed. The chunk is sized so ``col`` stays near ``COL_BYTES``.
Direct convolution was measured for small channel counts and lost (see the numba
backend's kernels/numba_cpu/conv.py: 1 -> 32 channels at 28x28, batch 128, took 5.3 ms
direct against 1.4 ms for this im2col + GEMM), so there is one code path. im2col is parallel over (patch row, sample), col2im over
(sample, channel) planes (each task owns one input plane: no races), pooling over
(n, c) planes. Row-major arrays go to the column-major BLAS as their transposes.
"""
import numpy as np

from cython.parallel cimport prange
from libc.stdlib cimport malloc, free
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport sgemm, dgemm

from _common cimport floating, row_sum, threads_for

cdef extern from "math.h" nogil:
    double INFINITY

# Bytes of patch matrix per chunk of samples.
cdef Py_ssize_t COL_BYTES = 4 << 20
# From this many output positions per sample up, the GEMMs run per sample straight
# into/out of the NCHW arrays (no copy to and from a channel-major buffer).
cdef Py_ssize_t PER_SAMPLE_MIN_P = 64


cdef inline void gemm(char transa, char transb, int m, int n, int k, floating alpha,
                      const floating* a, int lda, const floating* b, int ldb,
                      floating beta, floating* c, int ldc) noexcept nogil:
    """Column-major C = alpha op(A) op(B) + beta C through SciPy's BLAS."""
    if floating is float:
        sgemm(&transa, &transb, &m, &n, &k, &alpha, <float*>a, &lda, <float*>b, &ldb,
              &beta, c, &ldc)
    else:
        dgemm(&transa, &transb, &m, &n, &k, &alpha, <double*>a, &lda, <double*>b, &ldb,
              &beta, c, &ldc)


cdef inline Py_ssize_t _out_size(Py_ssize_t size, Py_ssize_t k, Py_ssize_t s,
                                 Py_ssize_t p) noexcept nogil:
    return (size + 2 * p - k) // s + 1


cdef inline Py_ssize_t _first_inside(Py_ssize_t wo, Py_ssize_t sw, Py_ssize_t pw,
                                     Py_ssize_t j) noexcept nogil:
    """First output column whose input column ow * sw - pw + j is >= 0."""
    cdef Py_ssize_t lo = 0
    while lo < wo and lo * sw - pw + j < 0:
        lo = lo + 1
    return lo


cdef inline Py_ssize_t _end_inside(Py_ssize_t lo, Py_ssize_t wo, Py_ssize_t sw, Py_ssize_t pw,
                                   Py_ssize_t j, Py_ssize_t w_in) noexcept nogil:
    """One past the last output column whose input column is < w_in."""
    cdef Py_ssize_t hi = wo
    while hi > lo and (hi - 1) * sw - pw + j >= w_in:
        hi = hi - 1
    return hi


# ---------------------------------------------------------------------- im2col/col2im
cdef void _im2col(const floating* x, Py_ssize_t nb, Py_ssize_t c_in, Py_ssize_t h_in,
                  Py_ssize_t w_in, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                  Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t ho, Py_ssize_t wo,
                  floating* col) noexcept nogil:
    """x: (nb, C, H, W) IN, the chunk's samples; col: (C * kh * kw, nb * ho * wo) OUT."""
    cdef Py_ssize_t rows = c_in * kh * kw, p = ho * wo, L = nb * ho * wo
    cdef Py_ssize_t t, r, b, c, i, j, lo, hi, oh, ow, h
    cdef floating* dst
    cdef const floating* src
    for t in prange(rows * nb, schedule="static", num_threads=threads_for(rows * L)):
        r = t // nb
        b = t - r * nb
        c = r // (kh * kw)
        i = (r // kw) % kh
        j = r % kw
        lo = _first_inside(wo, sw, pw, j)
        hi = _end_inside(lo, wo, sw, pw, j, w_in)
        for oh in range(ho):
            h = oh * sh - ph + i
            dst = col + r * L + b * p + oh * wo
            if h < 0 or h >= h_in:
                for ow in range(wo):
                    dst[ow] = 0
            else:
                src = x + ((b * c_in + c) * h_in + h) * w_in - pw + j
                for ow in range(lo):
                    dst[ow] = 0
                if sw == 1:  # contiguous: a straight copy
                    memcpy(dst + lo, src + lo, (hi - lo) * sizeof(floating))
                else:
                    for ow in range(lo, hi):
                        dst[ow] = src[ow * sw]
                for ow in range(hi, wo):
                    dst[ow] = 0


cdef void _col2im(const floating* dcol, Py_ssize_t nb, Py_ssize_t c_in, Py_ssize_t h_in,
                  Py_ssize_t w_in, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                  Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t ho, Py_ssize_t wo,
                  floating* grad_in) noexcept nogil:
    """dcol: (C * kh * kw, nb * ho * wo) IN; grad_in: (nb, C, H, W) OUT (overwritten)."""
    cdef Py_ssize_t p = ho * wo, L = nb * ho * wo
    cdef Py_ssize_t t, b, c, i, j, r, lo, hi, oh, ow, h
    cdef floating* plane
    cdef floating* dst
    cdef const floating* src
    for t in prange(nb * c_in, schedule="static",
                    num_threads=threads_for(c_in * kh * kw * L)):
        b = t // c_in
        c = t - b * c_in
        plane = grad_in + t * h_in * w_in
        memset(plane, 0, h_in * w_in * sizeof(floating))
        for i in range(kh):
            for j in range(kw):
                r = (c * kh + i) * kw + j
                lo = _first_inside(wo, sw, pw, j)
                hi = _end_inside(lo, wo, sw, pw, j, w_in)
                for oh in range(ho):
                    h = oh * sh - ph + i
                    if h < 0 or h >= h_in:
                        continue
                    src = dcol + r * L + b * p + oh * wo
                    dst = plane + h * w_in - pw + j
                    if sw == 1:  # unit stride lets the compiler vectorise the adds
                        for ow in range(lo, hi):
                            dst[ow] += src[ow]
                    else:
                        for ow in range(lo, hi):
                            dst[ow * sw] += src[ow]


# ------------------------------------------------------------------------ conv bodies
cdef inline Py_ssize_t _chunk(Py_ssize_t n, Py_ssize_t k, Py_ssize_t p,
                              Py_ssize_t itemsize) noexcept nogil:
    cdef Py_ssize_t per_sample = k * p * itemsize
    cdef Py_ssize_t nb = COL_BYTES // per_sample if per_sample > 0 else n
    if nb < 1:
        nb = 1
    return nb if nb < n else n


def _forward(const floating[:, :, :, ::1] x,            # IN  (N, C_in, H, W)
             const floating[:, :, :, ::1] weight,       # IN  (C_out, C_in, kH, kW)
             const floating[::1] bias,                  # IN  (C_out,)
             Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
             floating[:, :, :, ::1] y):                 # OUT (N, C_out, H_out, W_out)
    cdef Py_ssize_t n = x.shape[0], c_in = x.shape[1], h_in = x.shape[2], w_in = x.shape[3]
    cdef Py_ssize_t c_out = weight.shape[0], kh = weight.shape[2], kw = weight.shape[3]
    cdef Py_ssize_t ho = y.shape[2], wo = y.shape[3], p = ho * wo, k = c_in * kh * kw
    cdef Py_ssize_t nb = _chunk(n, k, p, sizeof(floating))
    cdef Py_ssize_t n0, m, L, t, b, co, q
    cdef floating* col
    cdef floating* yc
    cdef floating* dst
    cdef floating add
    cdef bint per_sample = p >= PER_SAMPLE_MIN_P
    if n == 0 or c_out == 0 or p == 0:
        return
    with nogil:
        col = <floating*>malloc(k * nb * p * sizeof(floating))
        yc = NULL if per_sample else <floating*>malloc(c_out * nb * p * sizeof(floating))
        if col == NULL or (yc == NULL and not per_sample):
            free(col)
            free(yc)
            with gil:
                raise MemoryError("conv2d_forward: cannot allocate the im2col buffer")
        n0 = 0
        while n0 < n:
            m = nb if n0 + nb <= n else n - n0
            L = m * p
            _im2col(&x[n0, 0, 0, 0], m, c_in, h_in, w_in, kh, kw, sh, sw, ph, pw, ho, wo,
                    col)
            if per_sample:
                for b in range(m):
                    # y[n] (C_out, P) = bias + W (C_out, K) @ col[:, b * P:(b + 1) * P]
                    dst = &y[n0 + b, 0, 0, 0]
                    for co in range(c_out):
                        add = bias[co]
                        for q in range(p):
                            dst[co * p + q] = add
                    gemm(c"N", c"N", <int>p, <int>c_out, <int>k, 1, col + b * p, <int>L,
                         &weight[0, 0, 0, 0], <int>k, 1, dst, <int>p)
            else:
                # yc (C_out, L) = W (C_out, K) @ col (K, L), then to NCHW with the bias
                gemm(c"N", c"N", <int>L, <int>c_out, <int>k, 1, col, <int>L,
                     &weight[0, 0, 0, 0], <int>k, 0, yc, <int>L)
                for t in prange(m * c_out, schedule="static",
                                num_threads=threads_for(c_out * L)):
                    b = t // c_out
                    co = t - b * c_out
                    add = bias[co]
                    dst = &y[n0 + b, co, 0, 0]
                    for q in range(p):
                        dst[q] = yc[co * L + b * p + q] + add
            n0 = n0 + m
        free(col)
        free(yc)


def _backward(const floating[:, :, :, ::1] grad_out,     # IN  (N, C_out, H_out, W_out)
              const floating[:, :, :, ::1] x,            # IN  (N, C_in, H, W)
              const floating[:, :, :, ::1] weight,       # IN  (C_out, C_in, kH, kW)
              Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
              floating[:, :, :, ::1] grad_weight,        # IN/OUT like weight, or None
              floating[::1] grad_bias,                   # IN/OUT (C_out,), or None
              floating[:, :, :, ::1] grad_in):           # OUT (N, C_in, H, W), or None
    cdef Py_ssize_t n = x.shape[0], c_in = x.shape[1], h_in = x.shape[2], w_in = x.shape[3]
    cdef Py_ssize_t c_out = weight.shape[0], kh = weight.shape[2], kw = weight.shape[3]
    cdef Py_ssize_t ho = grad_out.shape[2], wo = grad_out.shape[3]
    cdef Py_ssize_t p = ho * wo, k = c_in * kh * kw
    cdef Py_ssize_t nb = _chunk(n, k, p, sizeof(floating))
    cdef bint want_w = grad_weight is not None, want_b = grad_bias is not None
    cdef bint want_in = grad_in is not None
    cdef Py_ssize_t n0, m, L, t, b, co, q
    cdef floating* col = NULL
    cdef floating* g = NULL
    cdef floating* dcol = NULL
    cdef floating* gw = NULL
    cdef const floating* src
    cdef double acc
    cdef bint per_sample = p >= PER_SAMPLE_MIN_P
    if want_b:
        for co in prange(c_out, nogil=True, schedule="static",
                         num_threads=threads_for(n * c_out * p)):
            acc = 0
            for b in range(n):
                acc = acc + row_sum(&grad_out[b, co, 0, 0], p)
            grad_bias[co] += <floating>acc
    if not (want_w or want_in) or n == 0 or p == 0:
        return
    if want_w:
        gw = &grad_weight[0, 0, 0, 0]
    with nogil:
        if not per_sample:
            g = <floating*>malloc(c_out * nb * p * sizeof(floating))
        if want_w:
            col = <floating*>malloc(k * nb * p * sizeof(floating))
        if want_in:
            dcol = <floating*>malloc(k * nb * p * sizeof(floating))
        if ((g == NULL and not per_sample) or (want_w and col == NULL)
                or (want_in and dcol == NULL)):
            free(g)
            free(col)
            free(dcol)
            with gil:
                raise MemoryError("conv2d_backward: cannot allocate the im2col buffers")
        n0 = 0
        while n0 < n:
            m = nb if n0 + nb <= n else n - n0
            L = m * p
            if want_w:
                _im2col(&x[n0, 0, 0, 0], m, c_in, h_in, w_in, kh, kw, sh, sw, ph, pw, ho, wo,
                        col)
            if per_sample:
                for b in range(m):
                    src = &grad_out[n0 + b, 0, 0, 0]
                    if want_w:
                        # grad_weight (C_out, K) += g[n] (C_out, P) @ col[:, b block].T
                        gemm(c"T", c"N", <int>k, <int>c_out, <int>p, 1, col + b * p, <int>L,
                             src, <int>p, 1, gw, <int>k)
                    if want_in:
                        # dcol[:, b block] (K, P) = W.T (K, C_out) @ g[n] (C_out, P)
                        gemm(c"N", c"T", <int>p, <int>k, <int>c_out, 1, src, <int>p,
                             &weight[0, 0, 0, 0], <int>k, 0, dcol + b * p, <int>L)
            else:
                # g (C_out, L): the chunk's output gradient, channel-major
                for t in prange(m * c_out, schedule="static",
                                num_threads=threads_for(c_out * L)):
                    b = t // c_out
                    co = t - b * c_out
                    src = &grad_out[n0 + b, co, 0, 0]
                    for q in range(p):
                        g[co * L + b * p + q] = src[q]
                if want_w:
                    # grad_weight (C_out, K) += g (C_out, L) @ col.T
                    gemm(c"T", c"N", <int>k, <int>c_out, <int>L, 1, col, <int>L, g, <int>L,
                         1, gw, <int>k)
                if want_in:
                    # dcol (K, L) = W.T (K, C_out) @ g (C_out, L)
                    gemm(c"N", c"T", <int>L, <int>k, <int>c_out, 1, g, <int>L,
                         &weight[0, 0, 0, 0], <int>k, 0, dcol, <int>L)
            if want_in:
                _col2im(dcol, m, c_in, h_in, w_in, kh, kw, sh, sw, ph, pw, ho, wo,
                        &grad_in[n0, 0, 0, 0])
            n0 = n0 + m
        free(g)
        free(col)
        free(dcol)


# --------------------------------------------------------------------------- pooling
def _max_pool_fwd(const floating[:, :, :, ::1] x,        # IN  (N, C, H, W)
                  Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                  Py_ssize_t ph, Py_ssize_t pw,
                  floating[:, :, :, ::1] y,              # OUT (N, C, H_out, W_out)
                  int64_t[:, :, :, ::1] indices):      # OUT (N, C, H_out, W_out)
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h_in = x.shape[2], w_in = x.shape[3]
    cdef Py_ssize_t ho = y.shape[2], wo = y.shape[3]
    cdef Py_ssize_t t, b, ch, oh, ow, h0, w0, ha, hb, wa, wb, hh, ww, arg
    cdef floating best, v
    cdef const floating* plane
    for t in prange(n * c, nogil=True, schedule="static", num_threads=threads_for(n * c * h_in * w_in)):
        b = t // c
        ch = t - b * c
        plane = &x[b, ch, 0, 0]
        for oh in range(ho):
            h0 = oh * sh - ph
            ha = h0 if h0 > 0 else 0
            hb = h0 + kh if h0 + kh < h_in else h_in
            for ow in range(wo):
                w0 = ow * sw - pw
                wa = w0 if w0 > 0 else 0
                wb = w0 + kw if w0 + kw < w_in else w_in
                best = -INFINITY
                arg = ha * w_in + wa
                for hh in range(ha, hb):
                    for ww in range(wa, wb):
                        v = plane[hh * w_in + ww]
                        # PyTorch's rule: first maximum in window order, a NaN wins
                        if v > best or v != v:
                            best = v
                            arg = hh * w_in + ww
                y[b, ch, oh, ow] = best
                indices[b, ch, oh, ow] = arg


def _max_pool_bwd(const floating[:, :, ::1] grad_out,    # IN  (N, C, P_out)
                  const int64_t[:, :, ::1] indices,    # IN  (N, C, P_out)
                  floating[:, :, ::1] grad_in):          # OUT (N, C, P_in)
    cdef Py_ssize_t n = grad_in.shape[0], c = grad_in.shape[1], p_in = grad_in.shape[2]
    cdef Py_ssize_t p_out = grad_out.shape[2]
    cdef Py_ssize_t t, b, ch, q
    cdef floating* plane
    for t in prange(n * c, nogil=True, schedule="static", num_threads=threads_for(n * c * p_in)):
        b = t // c
        ch = t - b * c
        plane = &grad_in[b, ch, 0]
        memset(plane, 0, p_in * sizeof(floating))
        for q in range(p_out):
            plane[indices[b, ch, q]] += grad_out[b, ch, q]


def _avg_pool_fwd(const floating[:, :, :, ::1] x,        # IN  (N, C, H, W)
                  Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                  Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad,
                  floating[:, :, :, ::1] y):             # OUT (N, C, H_out, W_out)
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h_in = x.shape[2], w_in = x.shape[3]
    cdef Py_ssize_t ho = y.shape[2], wo = y.shape[3]
    cdef Py_ssize_t t, b, ch, oh, ow, h0, w0, ha, hb, wa, wb, hh, ww, count
    cdef floating acc
    cdef const floating* plane
    for t in prange(n * c, nogil=True, schedule="static", num_threads=threads_for(n * c * h_in * w_in)):
        b = t // c
        ch = t - b * c
        plane = &x[b, ch, 0, 0]
        for oh in range(ho):
            h0 = oh * sh - ph
            ha = h0 if h0 > 0 else 0
            hb = h0 + kh if h0 + kh < h_in else h_in
            for ow in range(wo):
                w0 = ow * sw - pw
                wa = w0 if w0 > 0 else 0
                wb = w0 + kw if w0 + kw < w_in else w_in
                acc = 0
                for hh in range(ha, hb):
                    for ww in range(wa, wb):
                        acc = acc + plane[hh * w_in + ww]
                count = kh * kw if count_include_pad else (hb - ha) * (wb - wa)
                y[b, ch, oh, ow] = acc / count


def _avg_pool_bwd(const floating[:, :, :, ::1] grad_out,  # IN  (N, C, H_out, W_out)
                  Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                  Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad,
                  floating[:, :, :, ::1] grad_in):        # OUT (N, C, H, W)
    cdef Py_ssize_t n = grad_in.shape[0], c = grad_in.shape[1]
    cdef Py_ssize_t h_in = grad_in.shape[2], w_in = grad_in.shape[3]
    cdef Py_ssize_t ho = grad_out.shape[2], wo = grad_out.shape[3]
    cdef Py_ssize_t t, b, ch, oh, ow, h0, w0, ha, hb, wa, wb, hh, ww, count
    cdef floating share
    cdef floating* plane
    for t in prange(n * c, nogil=True, schedule="static", num_threads=threads_for(n * c * h_in * w_in)):
        b = t // c
        ch = t - b * c
        plane = &grad_in[b, ch, 0, 0]
        memset(plane, 0, h_in * w_in * sizeof(floating))
        for oh in range(ho):
            h0 = oh * sh - ph
            ha = h0 if h0 > 0 else 0
            hb = h0 + kh if h0 + kh < h_in else h_in
            for ow in range(wo):
                w0 = ow * sw - pw
                wa = w0 if w0 > 0 else 0
                wb = w0 + kw if w0 + kw < w_in else w_in
                count = kh * kw if count_include_pad else (hb - ha) * (wb - wa)
                share = grad_out[b, ch, oh, ow] / count
                for hh in range(ha, hb):
                    for ww in range(wa, wb):
                        plane[hh * w_in + ww] += share


# ------------------------------------------------------- the op table's entry points
def _pool_out_shape(shape, kernel_size, stride, padding):
    n, c, h, w = shape
    return (n, c, _out_size(h, kernel_size[0], stride[0], padding[0]),
            _out_size(w, kernel_size[1], stride[1], padding[1]))


def conv2d_forward(x, weight, bias=None, stride=(1, 1), padding=(0, 0), out=None):
    """2-D cross-correlation, zero padding.

    x: (N, C_in, H, W); weight: (C_out, C_in, kH, kW); bias: (C_out,) or None;
    out: (N, C_out, H_out, W_out) or None. Returns y: (N, C_out, H_out, W_out).
    """
    n, _, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    if out is None:
        out = np.empty((n, c_out, _out_size(h, kh, stride[0], padding[0]),
                        _out_size(w, kw, stride[1], padding[1])), dtype=x.dtype)
    if bias is None:
        bias = np.zeros(c_out, dtype=x.dtype)
    _forward(x, weight, bias, stride[0], stride[1], padding[0], padding[1], out)
    return out


def conv2d_backward(grad_out, x, weight, stride=(1, 1), padding=(0, 0), grad_weight=None,
                    grad_bias=None, grad_in=None, need_grad_in=True):
    """Backward of conv2d_forward.

    grad_out: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_out, C_in, kH, kW);
    grad_weight: like weight, grad_bias: (C_out,), each None or accumulated in place;
    grad_in: (N, C_in, H, W) or None. Returns grad_in, or None if not need_grad_in.
    """
    if need_grad_in and grad_in is None:
        grad_in = np.empty(x.shape, dtype=x.dtype)
    _backward(grad_out, x, weight, stride[0], stride[1], padding[0], padding[1],
              grad_weight, grad_bias, grad_in if need_grad_in else None)
    return grad_in if need_grad_in else None


def max_pool2d_forward(x, kernel_size, stride, padding=(0, 0), out=None, indices=None):
    """Max pooling with -inf padding. x: (N, C, H, W); out, indices: (N, C, H_out, W_out)
    or None. Returns (y, indices), indices the int64 flat h * W + w of each maximum."""
    shape = _pool_out_shape(x.shape, kernel_size, stride, padding)
    if out is None:
        out = np.empty(shape, dtype=x.dtype)
    if indices is None:
        indices = np.empty(shape, dtype=np.int64)
    _max_pool_fwd(x, kernel_size[0], kernel_size[1], stride[0], stride[1], padding[0],
                  padding[1], out, indices)
    return out, indices


def max_pool2d_backward(grad_out, indices, input_shape, grad_in=None):
    """grad_out, indices: (N, C, H_out, W_out); input_shape: (N, C, H, W).
    Returns grad_in of input_shape with each grad_out value added at its argmax."""
    n, c, h, w = input_shape
    if grad_in is None:
        grad_in = np.empty(tuple(input_shape), dtype=grad_out.dtype)
    _max_pool_bwd(grad_out.reshape(n, c, -1), indices.reshape(n, c, -1),
                  grad_in.reshape(n, c, h * w))
    return grad_in


def avg_pool2d_forward(x, kernel_size, stride, padding=(0, 0), count_include_pad=True,
                       out=None):
    """Average pooling, zero padding. x: (N, C, H, W). Returns (N, C, H_out, W_out)."""
    if out is None:
        out = np.empty(_pool_out_shape(x.shape, kernel_size, stride, padding), dtype=x.dtype)
    _avg_pool_fwd(x, kernel_size[0], kernel_size[1], stride[0], stride[1], padding[0],
                  padding[1], bool(count_include_pad), out)
    return out


def avg_pool2d_backward(grad_out, input_shape, kernel_size, stride, padding=(0, 0),
                        count_include_pad=True, grad_in=None):
    """grad_out: (N, C, H_out, W_out); input_shape: (N, C, H, W). Returns grad_in."""
    if grad_in is None:
        grad_in = np.empty(tuple(input_shape), dtype=grad_out.dtype)
    _avg_pool_bwd(grad_out, kernel_size[0], kernel_size[1], stride[0], stride[1],
                  padding[0], padding[1], bool(count_include_pad), grad_in)
    return grad_in
