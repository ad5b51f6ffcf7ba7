# cython: language_level=3
"""Depthwise convolution (Conv2d with groups = C_in) for the cython backend, one call
without the GIL; the numba backend's design (kernels/numba_cpu/depthwise.py).

Direct loops, no im2col: a depthwise layer does kH * kW multiply-adds per output, too few
for a matrix product to pay for building its columns.

* Stride 1: each input plane is copied into a zero border in the thread's scratch
  ((H + 2 ph) rows of W + 2 pw), and its outputs are computed W + 2 pw to a row, so that
  a tap is one contiguous multiply-add over the whole plane (the columns past W_out are
  discarded). The forward is parallel over chunks of (n, c) input planes; the backward
  over chunks of input channels, each channel's weight and bias gradients (float64 sums)
  and input gradient in one pass over its samples, with the output gradient laid out the
  same way (columns past W_out zero): a tap is one dot product and one multiply-add.
* Other strides: row by row, each tap's valid outputs [lo, hi) computed up front; the
  forward parallel over output planes, the input gradient over input planes, the
  weight and bias gradients over output channels.

Every value is computed by one thread in a fixed order: results do not depend on the
thread count. kernels/reference/depthwise.py is the specification.
"""
import numpy as np

from fastnn.kernels.scratch import scratch

cimport cython
from cython.parallel cimport prange, threadid
from libc.math cimport NAN, isfinite
from libc.string cimport memcpy, memset

from _common cimport floating, fnn_max_threads, fnn_workspace, threads_for


@cython.cdivision(True)
cdef inline Py_ssize_t _lo(Py_ssize_t pad, Py_ssize_t tap, Py_ssize_t stride) noexcept nogil:
    """The first output o >= 0 whose cell o * stride - pad + tap is >= 0."""
    cdef Py_ssize_t d = pad - tap
    if d <= 0:
        return 0
    return (d + stride - 1) // stride


@cython.cdivision(True)
cdef inline Py_ssize_t _hi(Py_ssize_t pad, Py_ssize_t tap, Py_ssize_t stride,
                           Py_ssize_t size, Py_ssize_t out) noexcept nogil:
    """One past the last output o < out whose cell o * stride - pad + tap is < size."""
    cdef Py_ssize_t d = size - 1 + pad - tap
    if d < 0:
        return 0
    d = d // stride + 1
    return d if d < out else out


cdef inline void _copy_rows(floating* dst, Py_ssize_t d_pitch, const floating* src,
                            Py_ssize_t s_pitch, Py_ssize_t rows,
                            Py_ssize_t width) noexcept nogil:
    cdef Py_ssize_t r
    for r in range(rows):
        memcpy(dst + r * d_pitch, src + r * s_pitch, width * sizeof(floating))


@cython.cdivision(True)
cdef void _flat_forward(const floating* x, const floating* weight, const floating* bias,
                        Py_ssize_t t0, Py_ssize_t t1, Py_ssize_t c_in, Py_ssize_t h,
                        Py_ssize_t w, Py_ssize_t c_out, Py_ssize_t kh, Py_ssize_t kw,
                        Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t ho, Py_ssize_t wo,
                        floating* xs, Py_ssize_t pad_size, floating* ys,
                        floating* y) noexcept nogil:
    """Stride 1: input planes t0 .. t1 (t = n * C_in + c) into their M output planes."""
    cdef Py_ssize_t m = c_out // c_in, wp = w + 2 * pw, span = ho * wp
    cdef Py_ssize_t t, b, c, co, i, j, q
    cdef floating tap, value
    cdef const floating* inp
    memset(xs, 0, pad_size * sizeof(floating))
    for t in range(t0, t1):
        b = t // c_in
        c = t - b * c_in
        _copy_rows(xs + ph * wp + pw, wp, x + t * h * w, w, h, w)
        for co in range(c * m, c * m + m):
            value = bias[co]
            for q in range(span):
                ys[q] = value
            for i in range(kh):
                for j in range(kw):
                    tap = weight[(co * kh + i) * kw + j]
                    inp = xs + i * wp + j
                    for q in range(span):
                        ys[q] += tap * inp[q]
            _copy_rows(y + (b * c_out + co) * ho * wo, wo, ys, wp, ho, wo)


@cython.cdivision(True)
cdef void _flat_backward(const floating* g, const floating* x, const floating* weight,
                         Py_ssize_t c0, Py_ssize_t c1, Py_ssize_t n, Py_ssize_t c_in,
                         Py_ssize_t h, Py_ssize_t w, Py_ssize_t c_out, Py_ssize_t kh,
                         Py_ssize_t kw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t ho,
                         Py_ssize_t wo, floating* xs, floating* gxs, Py_ssize_t pad_size,
                         floating* gs, double* acc, floating* grad_in,
                         floating* grad_weight, floating* grad_bias) noexcept nogil:
    """Stride 1: every gradient of input channels c0 .. c1 (grad_in, grad_weight or
    grad_bias NULL: not wanted)."""
    cdef Py_ssize_t m = c_out // c_in, wp = w + 2 * pw, span = ho * wp, taps = kh * kw
    cdef Py_ssize_t c, b, mm, co, i, j, q, window, oh
    cdef floating part, tap
    cdef const floating* inp
    cdef floating* out
    memset(xs, 0, pad_size * sizeof(floating))
    memset(gs, 0, span * sizeof(floating))
    for c in range(c0, c1):
        memset(acc, 0, m * (taps + 1) * sizeof(double))
        for b in range(n):
            if grad_weight != NULL:
                _copy_rows(xs + ph * wp + pw, wp, x + (b * c_in + c) * h * w, w, h, w)
            if grad_in != NULL:
                memset(gxs, 0, pad_size * sizeof(floating))
            for mm in range(m):
                co = c * m + mm
                _copy_rows(gs, wp, g + (b * c_out + co) * ho * wo, wo, ho, wo)
                if grad_bias != NULL:
                    part = 0
                    for q in range(span):
                        part = part + gs[q]
                    acc[m * taps + mm] += part
                for i in range(kh):
                    for j in range(kw):
                        window = i * wp + j
                        if grad_weight != NULL:
                            inp = xs + window
                            part = 0
                            for q in range(span):
                                part = part + gs[q] * inp[q]
                            if part != part:  # NaN: again without the columns past
                                part = 0      # W_out (their 0 times an inf in x)
                                for oh in range(ho):
                                    for q in range(oh * wp, oh * wp + wo):
                                        part = part + gs[q] * inp[q]
                            acc[mm * taps + i * kw + j] += part
                        if grad_in != NULL:
                            tap = weight[(co * kh + i) * kw + j]
                            out = gxs + window
                            if isfinite(tap):
                                for q in range(span):
                                    out[q] += tap * gs[q]
                            else:  # not over the columns past W_out (inf times 0)
                                for oh in range(ho):
                                    for q in range(oh * wp, oh * wp + wo):
                                        out[q] += tap * gs[q]
            if grad_in != NULL:
                _copy_rows(grad_in + (b * c_in + c) * h * w, w, gxs + ph * wp + pw, wp, h, w)
        for mm in range(m):
            co = c * m + mm
            if grad_weight != NULL:
                for q in range(taps):
                    grad_weight[co * taps + q] += <floating>acc[mm * taps + q]
            if grad_bias != NULL:
                grad_bias[co] += <floating>acc[m * taps + mm]


@cython.cdivision(True)
cdef void _rows_forward(const floating* x, const floating* weight, const floating* bias,
                        Py_ssize_t t, Py_ssize_t c_in, Py_ssize_t h, Py_ssize_t w,
                        Py_ssize_t c_out, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                        Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t ho,
                        Py_ssize_t wo, floating* y) noexcept nogil:
    """Any stride: output plane t = n * C_out + co."""
    cdef Py_ssize_t m = c_out // c_in, b = t // c_out, co = t - b * c_out
    cdef Py_ssize_t oh, ow, i, j, ih, lo, hi
    cdef floating tap
    cdef const floating* plane = x + (b * c_in + co // m) * h * w
    cdef const floating* src
    cdef floating* row
    for oh in range(ho):
        row = y + (t * ho + oh) * wo
        for ow in range(wo):
            row[ow] = bias[co]
        for i in range(kh):
            ih = oh * sh - ph + i
            for j in range(kw):
                lo = _lo(pw, j, sw)
                hi = _hi(pw, j, sw, w, wo)
                if ih < 0 or ih >= h or lo >= hi:  # the tap reads only padding
                    lo = wo
                    hi = wo
                tap = weight[(co * kh + i) * kw + j]
                src = plane + ih * w - pw + j
                for ow in range(lo, hi):
                    row[ow] += tap * src[ow * sw]
                if not isfinite(tap):  # times the zero padding: NaN, as PyTorch (NAN
                    for ow in range(lo):  # itself: under -fassociative-math gcc folds
                        row[ow] = NAN     # x * 0 to 0)
                    for ow in range(hi, wo):
                        row[ow] = NAN


@cython.cdivision(True)
cdef void _rows_input_grad(const floating* g, const floating* weight, Py_ssize_t t,
                           Py_ssize_t c_in, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c_out,
                           Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                           Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t ho, Py_ssize_t wo,
                           floating* grad_in) noexcept nogil:
    """Any stride: input plane t = n * C_in + c."""
    cdef Py_ssize_t m = c_out // c_in, b = t // c_in, c = t - b * c_in
    cdef Py_ssize_t co, oh, ow, i, j, ih, lo, hi
    cdef floating tap
    cdef floating* plane = grad_in + t * h * w
    cdef floating* dst
    cdef const floating* row
    memset(plane, 0, h * w * sizeof(floating))
    for co in range(c * m, c * m + m):
        for oh in range(ho):
            row = g + ((b * c_out + co) * ho + oh) * wo
            for i in range(kh):
                ih = oh * sh - ph + i
                if ih < 0 or ih >= h:
                    continue
                for j in range(kw):
                    lo = _lo(pw, j, sw)
                    hi = _hi(pw, j, sw, w, wo)
                    tap = weight[(co * kh + i) * kw + j]
                    dst = plane + ih * w - pw + j
                    for ow in range(lo, hi):
                        dst[ow * sw] += tap * row[ow]


@cython.cdivision(True)
cdef void _rows_param_grads(const floating* g, const floating* x, Py_ssize_t co,
                            Py_ssize_t n, Py_ssize_t c_in, Py_ssize_t h, Py_ssize_t w,
                            Py_ssize_t c_out, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                            Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t ho,
                            Py_ssize_t wo, floating* grad_weight,
                            floating* grad_bias) noexcept nogil:
    """Any stride: output channel co's weight and bias gradients (NULL: not wanted),
    each a float64 sum of per-row sums."""
    cdef Py_ssize_t m = c_out // c_in, c = co // m
    cdef Py_ssize_t b, oh, ow, i, j, ih, lo, hi, q, span_lo, span_hi
    cdef double total
    cdef floating part
    cdef const floating* row
    cdef const floating* src
    if grad_weight != NULL:
        for i in range(kh):
            for j in range(kw):
                span_lo = _lo(pw, j, sw)
                span_hi = _hi(pw, j, sw, w, wo)
                total = 0
                for b in range(n):
                    for oh in range(ho):
                        ih = oh * sh - ph + i
                        lo = span_lo
                        hi = span_hi
                        if ih < 0 or ih >= h or lo >= hi:  # only padding
                            lo = wo
                            hi = wo
                        row = g + ((b * c_out + co) * ho + oh) * wo
                        src = x + (b * c_in + c) * h * w + ih * w - pw + j
                        part = 0
                        for ow in range(lo, hi):
                            part = part + row[ow] * src[ow * sw]
                        # the outputs that read the zero padding: 0, or NaN where the
                        # gradient is infinite or NaN (PyTorch's product; tested, since
                        # under -fassociative-math gcc folds x * 0 to 0)
                        for ow in range(lo):
                            if not isfinite(row[ow]):
                                part = NAN
                        for ow in range(hi, wo):
                            if not isfinite(row[ow]):
                                part = NAN
                        total += part
                grad_weight[(co * kh + i) * kw + j] += <floating>total
    if grad_bias != NULL:
        total = 0
        for b in range(n):
            row = g + (b * c_out + co) * ho * wo
            part = 0
            for q in range(ho * wo):
                part = part + row[q]
            total += part
        grad_bias[co] += <floating>total


@cython.cdivision(True)  # (every divisor is positive: strides, C_in, thread counts)
def _forward(const floating[::1] x, const floating[::1] weight, const floating[::1] bias,
             Py_ssize_t n, Py_ssize_t c_in, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c_out,
             Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
             Py_ssize_t pw, Py_ssize_t ho, Py_ssize_t wo, floating[::1] y):
    """Flat NCHW arrays: x (N C_in H W,), weight (C_out kH kW,), bias (C_out,), y
    (N C_out H_out W_out,), y written."""
    cdef Py_ssize_t planes = n * c_in, wp = w + 2 * pw, k, t
    cdef Py_ssize_t pad_size = (h + 2 * ph) * wp + kw, span = ho * wp
    cdef int nthreads = threads_for(y.shape[0] * kh * kw)
    cdef floating* xs
    cdef floating* ys
    cdef const floating* xptr = &x[0] if x.shape[0] else NULL
    if y.shape[0] == 0:
        return
    if sh == 1 and sw == 1:
        if nthreads > planes:
            nthreads = <int>planes
        with nogil:
            xs = <floating*>fnn_workspace(0, nthreads * pad_size * sizeof(floating))
            ys = <floating*>fnn_workspace(1, nthreads * span * sizeof(floating))
            if xs == NULL or ys == NULL:
                with gil:
                    raise MemoryError("depthwise_conv2d_forward: cannot allocate its scratch")
            for k in prange(nthreads, schedule="static", num_threads=nthreads):
                _flat_forward(xptr, &weight[0], &bias[0], k * planes // nthreads,
                              (k + 1) * planes // nthreads, c_in, h, w, c_out, kh, kw, ph,
                              pw, ho, wo, xs + k * pad_size, pad_size, ys + k * span, &y[0])
        return
    for t in prange(n * c_out, nogil=True, schedule="static", num_threads=nthreads):
        _rows_forward(xptr, &weight[0], &bias[0], t, c_in, h, w, c_out, kh, kw, sh, sw, ph,
                      pw, ho, wo, &y[0])


@cython.cdivision(True)  # (every divisor is positive: strides, C_in, thread counts)
def _backward(const floating[::1] g, const floating[::1] x, const floating[::1] weight,
              Py_ssize_t n, Py_ssize_t c_in, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c_out,
              Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
              Py_ssize_t pw, Py_ssize_t ho, Py_ssize_t wo, floating[::1] grad_in,
              floating[::1] grad_weight, floating[::1] grad_bias, bint want_in,
              bint want_weight, bint want_bias):
    """Flat NCHW arrays: g (N C_out H_out W_out,), x and grad_in (N C_in H W,), weight
    and grad_weight (C_out kH kW,), grad_bias (C_out,); grad_in written, grad_weight and
    grad_bias accumulated, each only when wanted (else any array, not touched)."""
    cdef Py_ssize_t wp = w + 2 * pw, k, t, co
    cdef Py_ssize_t pad_size = (h + 2 * ph) * wp + kw, span = ho * wp
    cdef Py_ssize_t sums = c_out // c_in * (kh * kw + 1) if c_in else 0
    cdef int nthreads = threads_for(g.shape[0] * kh * kw)
    cdef floating* xs
    cdef floating* gxs
    cdef floating* gs
    cdef double* acc
    cdef const floating* gptr = &g[0] if g.shape[0] else NULL
    cdef const floating* xptr = &x[0] if x.shape[0] else NULL
    cdef floating* gin = &grad_in[0] if want_in else NULL
    cdef floating* gw = &grad_weight[0] if want_weight else NULL
    cdef floating* gb = &grad_bias[0] if want_bias else NULL
    if c_in == 0 or c_out == 0:
        return
    if sh == 1 and sw == 1:
        if nthreads > c_in:
            nthreads = <int>c_in
        with nogil:
            xs = <floating*>fnn_workspace(0, nthreads * pad_size * sizeof(floating))
            gxs = <floating*>fnn_workspace(1, nthreads * pad_size * sizeof(floating))
            gs = <floating*>fnn_workspace(2, nthreads * span * sizeof(floating))
            acc = <double*>fnn_workspace(3, nthreads * sums * sizeof(double))
            if xs == NULL or gxs == NULL or gs == NULL or acc == NULL:
                with gil:
                    raise MemoryError("depthwise_conv2d_backward: cannot allocate its scratch")
            for k in prange(nthreads, schedule="static", num_threads=nthreads):
                _flat_backward(gptr, xptr, &weight[0], k * c_in // nthreads,
                               (k + 1) * c_in // nthreads, n, c_in, h, w, c_out, kh, kw, ph,
                               pw, ho, wo, xs + k * pad_size, gxs + k * pad_size, pad_size,
                               gs + k * span, acc + k * sums, gin, gw, gb)
        return
    if want_weight or want_bias:
        for co in prange(c_out, nogil=True, schedule="static", num_threads=nthreads):
            _rows_param_grads(gptr, xptr, co, n, c_in, h, w, c_out, kh, kw, sh, sw, ph, pw,
                              ho, wo, gw, gb)
    if want_in:
        for t in prange(n * c_in, nogil=True, schedule="static", num_threads=nthreads):
            _rows_input_grad(gptr, &weight[0], t, c_in, h, w, c_out, kh, kw, sh, sw, ph, pw,
                             ho, wo, gin)


def depthwise_conv2d_forward(x, weight, bias=None, stride=(1, 1), padding=(0, 0), out=None):
    """Depthwise 2-D cross-correlation, zero padding.

    x: (N, C_in, H, W); weight: (C_out, 1, kH, kW), C_out = M * C_in; bias: (C_out,) or
    None; out: (N, C_out, H_out, W_out) or None. Returns y: (N, C_out, H_out, W_out).
    """
    n, c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    ho = (h + 2 * ph - kh) // sh + 1
    wo = (w + 2 * pw - kw) // sw + 1
    if out is None:
        out = np.empty((n, c_out, ho, wo), dtype=x.dtype)
    if out.size == 0:
        return out
    if bias is None:
        bias = scratch("depthwise_zero_bias", (c_out,), x.dtype)
        bias[:] = 0
    _forward(x.reshape(-1), weight.reshape(-1), bias, n, c_in, h, w, c_out, kh, kw, sh, sw,
             ph, pw, ho, wo, out.reshape(-1))
    return out


def depthwise_conv2d_backward(grad_out, x, weight, stride=(1, 1), padding=(0, 0),
                              grad_weight=None, grad_bias=None, grad_in=None,
                              need_grad_in=True):
    """Backward of depthwise_conv2d_forward.

    grad_out: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_out, 1, kH, kW);
    grad_weight: like weight, grad_bias: (C_out,), each None or accumulated in place;
    grad_in: (N, C_in, H, W) or None. Returns grad_in, or None if not need_grad_in.
    """
    n, c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    ho, wo = grad_out.shape[2:]
    if need_grad_in and grad_in is None:
        grad_in = np.empty(x.shape, dtype=x.dtype)
    want_in = bool(need_grad_in) and grad_in.size > 0
    if want_in or grad_weight is not None or grad_bias is not None:
        unused = scratch("depthwise_unused", (1,), x.dtype)
        _backward(grad_out.reshape(-1), x.reshape(-1), weight.reshape(-1), n, c_in, h, w,
                  c_out, kh, kw, stride[0], stride[1], padding[0], padding[1], ho, wo,
                  grad_in.reshape(-1) if want_in else unused,
                  grad_weight.reshape(-1) if grad_weight is not None else unused,
                  grad_bias if grad_bias is not None else unused, want_in,
                  grad_weight is not None, grad_bias is not None)
    return grad_in if need_grad_in else None
