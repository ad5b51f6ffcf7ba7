"""Depthwise convolution (Conv2d with groups = C_in) for the numba backend.

Direct loops, no im2col: a depthwise layer does kH * kW multiply-adds per output, too few
for a matrix product to pay for building its columns.

* Stride 1 (``_forward_flat``, ``_backward_flat``): each input plane is copied into a
  zero border in its thread's scratch and the outputs are computed W + 2 pw to a row,
  so that a tap is one contiguous multiply-add over the whole plane (the columns past
  W_out are discarded): row by row, the loop setup of a 4- to 32-wide row cost more
  than its work (8x512x4x4 forward + backward, one thread: 4.0 against 0.9 ms). The forward is parallel over
  chunks of input planes; the backward over chunks of input channels, each channel's
  weight and bias gradients and its input gradient in one pass over its samples.
* Other strides (``_forward``, ``_input_grad``, ``_param_grads``): row by row, each
  tap's valid outputs [lo, hi) from ``_span`` (no bounds test inside the loop); the
  forward parallel over output planes, the input gradient over input planes (each
  gathered from its M output channels by one thread: no races, no atomics), the weight
  and bias gradients over output channels.

Sums of products run in the arrays' type along a row or plane and in float64 across
them. Each value is computed by one thread in a fixed order, so results do not depend on
the thread count. kernels/reference/depthwise.py is the specification.
"""
import math

import numba
import numpy as np
from numba import prange

from ..scratch import scratch
from ..window_shapes import pool_out_shape
from .config import helper, kernel

__all__ = ["depthwise_conv2d_forward", "depthwise_conv2d_backward"]


@helper
def _span(pad, tap, stride, size, out):  # pragma: no cover - compiled
    """[lo, hi): the outputs o < out whose cell o * stride - pad + tap lies in [0, size)."""
    lo = max(0, (pad - tap + stride - 1) // stride)
    hi = min(out, (size - 1 + pad - tap) // stride + 1)
    return lo, hi


@helper
def _inside(ih, h, lo, hi, wo):  # pragma: no cover - compiled
    """(lo, hi) of a tap's outputs that read the input, the rest reading the zero
    padding: (wo, wo) when its input row ih is padding or no column is inside."""
    if ih < 0 or ih >= h or lo >= hi:
        return wo, wo
    return lo, hi


# The loops below index views sliced to the span (no offset inside the loop) and keep
# stride 1 apart: LLVM vectorizes neither an index d0 + q (numba's negative-index
# wraparound on it) nor a runtime stride; measured 0.74 against 0.13 ns a value.

@helper
def _add_scaled(dst, d0, src, s0, count, stride, scale):  # pragma: no cover - compiled
    """dst[d0 + q] += scale * src[s0 + q * stride] for q < count (flat arrays)."""
    out = dst[d0:d0 + count]
    if stride == 1:
        inp = src[s0:s0 + count]
        for q in range(count):
            out[q] += scale * inp[q]
    else:
        for q in range(count):
            out[q] += scale * src[s0 + q * stride]


@helper
def _scatter_scaled(dst, d0, src, s0, count, stride, scale):  # pragma: no cover - compiled
    """dst[d0 + q * stride] += scale * src[s0 + q] for q < count (flat arrays)."""
    inp = src[s0:s0 + count]
    if stride == 1:
        out = dst[d0:d0 + count]
        for q in range(count):
            out[q] += scale * inp[q]
    else:
        for q in range(count):
            dst[d0 + q * stride] += scale * inp[q]


@helper
def _dot(a, a0, b, b0, count, stride, zero):  # pragma: no cover - compiled
    """The sum of a[a0 + q] * b[b0 + q * stride] for q < count (flat arrays), in the
    arrays' type (zero: 0 of it; a row is short, the caller adds rows in float64)."""
    acc = zero
    u = a[a0:a0 + count]
    if stride == 1:
        v = b[b0:b0 + count]
        for q in range(count):
            acc += u[q] * v[q]
    else:
        for q in range(count):
            acc += u[q] * b[b0 + q * stride]
    return acc


@kernel
def _forward(x, weight, bias, n, c_in, h, w, c_out, kh, kw, sh, sw, ph, pw, ho, wo,
             y):  # pragma: no cover - compiled
    """Flat NCHW arrays: x (N * C_in * H * W,) IN; weight (C_out * kH * kW,) IN; bias
    (C_out,) IN; y (N * C_out * H_out * W_out,) OUT."""
    m = c_out // c_in
    for t in prange(n * c_out):
        b = t // c_out
        co = t - b * c_out
        plane = (b * c_in + co // m) * h * w
        for oh in range(ho):
            row = (t * ho + oh) * wo
            for ow in range(wo):
                y[row + ow] = bias[co]
            for i in range(kh):
                ih = oh * sh - ph + i
                for j in range(kw):
                    lo, hi = _span(pw, j, sw, w, wo)
                    lo, hi = _inside(ih, h, lo, hi, wo)
                    tap = weight[(co * kh + i) * kw + j]
                    if lo < hi:
                        _add_scaled(y, row + lo, x, plane + ih * w + lo * sw - pw + j,
                                    hi - lo, sw, tap)
                    if not math.isfinite(tap):  # times the zero padding: NaN, as PyTorch
                        for ow in range(lo):
                            y[row + ow] += tap * 0
                        for ow in range(hi, wo):
                            y[row + ow] += tap * 0


@kernel
def _input_grad(grad_out, weight, n, c_in, h, w, c_out, kh, kw, sh, sw, ph, pw, ho, wo,
                grad_in):  # pragma: no cover - compiled
    """Flat NCHW arrays: grad_out (N * C_out * H_out * W_out,) IN; weight
    (C_out * kH * kW,) IN; grad_in (N * C_in * H * W,) OUT."""
    m = c_out // c_in
    for t in prange(n * c_in):
        b = t // c_in
        c = t - b * c_in
        plane = t * h * w
        for q in range(h * w):
            grad_in[plane + q] = 0
        for co in range(c * m, c * m + m):
            for oh in range(ho):
                row = ((b * c_out + co) * ho + oh) * wo
                for i in range(kh):
                    ih = oh * sh - ph + i
                    if ih < 0 or ih >= h:
                        continue
                    for j in range(kw):
                        lo, hi = _span(pw, j, sw, w, wo)
                        if lo < hi:
                            _scatter_scaled(grad_in, plane + ih * w + lo * sw - pw + j,
                                            grad_out, row + lo, hi - lo, sw,
                                            weight[(co * kh + i) * kw + j])


@kernel
def _param_grads(grad_out, x, n, c_in, h, w, c_out, kh, kw, sh, sw, ph, pw, ho, wo,
                 want_weight, want_bias, zero, grad_weight, grad_bias):  # pragma: no cover
    """Flat NCHW arrays: grad_out (N * C_out * H_out * W_out,) IN; x (N * C_in * H * W,)
    IN; grad_weight (C_out * kH * kW,) IN/OUT, += each tap's sum of grad_out * x (when
    want_weight, else any array); grad_bias (C_out,) IN/OUT, += the sums of grad_out
    (when want_bias); zero: 0 in the arrays' type. Taps and bias sum in float64."""
    m = c_out // c_in
    for co in prange(c_out):
        if want_weight:
            for i in range(kh):
                for j in range(kw):
                    span_lo, span_hi = _span(pw, j, sw, w, wo)
                    acc = 0.0
                    for b in range(n):
                        plane = (b * c_in + co // m) * h * w
                        for oh in range(ho):
                            ih = oh * sh - ph + i
                            lo, hi = _inside(ih, h, span_lo, span_hi, wo)
                            row = ((b * c_out + co) * ho + oh) * wo
                            if lo < hi:
                                acc += _dot(grad_out, row + lo, x,
                                            plane + ih * w + lo * sw - pw + j, hi - lo, sw,
                                            zero)
                            # the outputs that read the zero padding: 0, or NaN where the
                            # gradient is infinite or NaN (PyTorch's product)
                            for ow in range(lo):
                                acc += grad_out[row + ow] * zero
                            for ow in range(hi, wo):
                                acc += grad_out[row + ow] * zero
                    grad_weight[(co * kh + i) * kw + j] += acc
        if want_bias:
            total = 0.0
            for b in range(n):
                start = (b * c_out + co) * ho * wo
                plane_grad = grad_out[start:start + ho * wo]
                part = zero
                for q in range(ho * wo):
                    part += plane_grad[q]
                total += part
            grad_bias[co] += total


@helper
def _copy_rows(dst, d0, d_pitch, src, s0, s_pitch, rows, width):  # pragma: no cover
    """dst[d0 + r * d_pitch + q] = src[s0 + r * s_pitch + q], r < rows, q < width."""
    for r in range(rows):
        out = dst[d0 + r * d_pitch:d0 + r * d_pitch + width]
        inp = src[s0 + r * s_pitch:s0 + r * s_pitch + width]
        for q in range(width):
            out[q] = inp[q]


@kernel
def _forward_flat(x, weight, bias, n, c_in, h, w, c_out, kh, kw, ph, pw, ho, wo, chunks,
                  pads, rows, y):  # pragma: no cover - compiled
    """Stride 1. Flat NCHW arrays as _forward's; pads: (chunks, (H + 2 ph) (W + 2 pw) +
    kW) and rows: (chunks, H_out (W + 2 pw)) scratch, a row of each per chunk of input
    planes. A plane is copied into the zero border of its chunk's pads; its outputs are
    computed W + 2 pw to a row, so that each tap is one contiguous multiply-add over the
    whole plane (the columns past W_out are discarded)."""
    m = c_out // c_in
    wp = w + 2 * pw
    span = ho * wp
    planes = n * c_in
    for k in prange(chunks):
        xs = pads[k]
        ys = rows[k, :span]
        xs[:] = 0
        for t in range(k * planes // chunks, (k + 1) * planes // chunks):
            b = t // c_in
            c = t - b * c_in
            _copy_rows(xs, ph * wp + pw, wp, x, t * h * w, w, h, w)
            for co in range(c * m, c * m + m):
                ys[:] = bias[co]
                for i in range(kh):
                    for j in range(kw):
                        tap = weight[(co * kh + i) * kw + j]
                        inp = xs[i * wp + j:i * wp + j + span]
                        for q in range(span):
                            ys[q] += tap * inp[q]
                _copy_rows(y, (b * c_out + co) * ho * wo, wo, ys, 0, wp, ho, wo)


@kernel
def _backward_flat(grad_out, x, weight, n, c_in, h, w, c_out, kh, kw, ph, pw, ho, wo,
                   want_in, want_weight, want_bias, zero, chunks, pads, grad_pads, rows,
                   sums, grad_in, grad_weight, grad_bias):  # pragma: no cover - compiled
    """Stride 1, every gradient in one pass over grad_out and x, parallel over chunks of
    input channels (each channel's kernels and input gradient belong to one thread).
    Flat NCHW arrays as _input_grad's and _param_grads'; pads, grad_pads: (chunks,
    (H + 2 ph) (W + 2 pw) + kW), rows: (chunks, H_out (W + 2 pw)) scratch; sums:
    (chunks, M (kH kW + 1)) float64 scratch. Per sample, the input plane goes into pads
    and each of its M output gradients into rows in _forward_flat's layout (the columns
    past W_out zero), then each tap is one dot product (weight gradient) and one
    multiply-add into grad_pads (input gradient, cropped out of its border)."""
    m = c_out // c_in
    wp = w + 2 * pw
    span = ho * wp
    taps = kh * kw
    for k in prange(chunks):
        xs = pads[k]
        gxs = grad_pads[k]
        gs = rows[k, :span]
        acc = sums[k]
        xs[:] = 0
        gs[:] = 0
        for c in range(k * c_in // chunks, (k + 1) * c_in // chunks):
            acc[:] = 0
            for b in range(n):
                if want_weight:
                    _copy_rows(xs, ph * wp + pw, wp, x, (b * c_in + c) * h * w, w, h, w)
                if want_in:
                    gxs[:] = 0
                for mm in range(m):
                    co = c * m + mm
                    _copy_rows(gs, 0, wp, grad_out, (b * c_out + co) * ho * wo, wo, ho, wo)
                    if want_bias:
                        part = zero
                        for q in range(span):
                            part += gs[q]
                        acc[m * taps + mm] += part
                    for i in range(kh):
                        for j in range(kw):
                            window = i * wp + j
                            if want_weight:
                                inp = xs[window:window + span]
                                part = zero
                                for q in range(span):
                                    part += gs[q] * inp[q]
                                if part != part:  # NaN: again without the columns past
                                    part = zero   # W_out (their 0 times an inf in x)
                                    for oh in range(ho):
                                        for q in range(oh * wp, oh * wp + wo):
                                            part += gs[q] * inp[q]
                                acc[mm * taps + i * kw + j] += part
                            if want_in:
                                tap = weight[(co * kh + i) * kw + j]
                                out = gxs[window:window + span]
                                if math.isfinite(tap):
                                    for q in range(span):
                                        out[q] += tap * gs[q]
                                else:  # not over the columns past W_out (inf times 0)
                                    for oh in range(ho):
                                        for q in range(oh * wp, oh * wp + wo):
                                            out[q] += tap * gs[q]
                if want_in:
                    _copy_rows(grad_in, (b * c_in + c) * h * w, w, gxs, ph * wp + pw, wp, h, w)
            for mm in range(m):
                co = c * m + mm
                if want_weight:
                    for tap in range(taps):
                        grad_weight[co * taps + tap] += acc[mm * taps + tap]
                if want_bias:
                    grad_bias[co] += acc[m * taps + mm]


def _geometry(x, weight, stride, padding, ho, wo):
    """The scalar arguments the kernels share."""
    n, c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    return (n, c_in, h, w, c_out, kh, kw, stride[0], stride[1], padding[0], padding[1],
            ho, wo)


def _flat_scratch(prefix, units, h, w, kw, ph, pw, ho, dtype):
    """(chunks, pads, rows) for the stride-1 kernels: one chunk of the units (planes or
    channels) per thread, at least one."""
    chunks = max(1, min(numba.get_num_threads(), units))
    wp = w + 2 * pw
    pads = scratch(prefix + "_pads", (chunks, (h + 2 * ph) * wp + kw), dtype)
    rows = scratch(prefix + "_rows", (chunks, ho * wp), dtype)
    return chunks, pads, rows


def depthwise_conv2d_forward(x, weight, bias=None, stride=(1, 1), padding=(0, 0), out=None):
    """Depthwise 2-D cross-correlation, zero padding.

    x: (N, C_in, H, W); weight: (C_out, 1, kH, kW), C_out = M * C_in; bias: (C_out,) or
    None; out: (N, C_out, H_out, W_out) or None. Returns y: (N, C_out, H_out, W_out).
    """
    c_out, _, kh, kw = weight.shape
    shape = (x.shape[0], c_out) + pool_out_shape(x.shape, (kh, kw), stride, padding)[2:]
    if out is None:
        out = np.empty(shape, dtype=x.dtype)
    if out.size == 0:
        return out
    if bias is None:
        bias = scratch("depthwise_zero_bias", (c_out,), x.dtype)
        bias[:] = 0
    geometry = _geometry(x, weight, stride, padding, *shape[2:])
    if tuple(stride) == (1, 1):
        n, c_in, h, w = x.shape
        chunks, pads, rows = _flat_scratch("depthwise", n * c_in, h, w, kw, *padding,
                                           shape[2], x.dtype)
        n, c_in, h, w, c_out, kh, kw, _, _, ph, pw, ho, wo = geometry
        _forward_flat(out.size * kh * kw, x.reshape(-1), weight.reshape(-1), bias, n, c_in,
                      h, w, c_out, kh, kw, ph, pw, ho, wo, chunks, pads, rows,
                      out.reshape(-1))
    else:
        _forward(out.size * kh * kw, x.reshape(-1), weight.reshape(-1), bias, *geometry,
                 out.reshape(-1))
    return out


def depthwise_conv2d_backward(grad_out, x, weight, stride=(1, 1), padding=(0, 0),
                              grad_weight=None, grad_bias=None, grad_in=None,
                              need_grad_in=True):
    """Backward of depthwise_conv2d_forward.

    grad_out: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_out, 1, kH, kW);
    grad_weight: like weight, grad_bias: (C_out,), each None or accumulated in place;
    grad_in: (N, C_in, H, W) or None. Returns grad_in, or None if not need_grad_in.
    """
    kh, kw = weight.shape[2:]
    work = grad_out.size * kh * kw
    geometry = _geometry(x, weight, stride, padding, *grad_out.shape[2:])
    if need_grad_in and grad_in is None:
        grad_in = np.empty(x.shape, dtype=x.dtype)
    want_in = need_grad_in and grad_in.size > 0
    want_params = (grad_weight is not None or grad_bias is not None) and weight.shape[0] > 0
    gw = (grad_weight.reshape(-1) if grad_weight is not None
          else scratch("depthwise_no_grad_weight", (1,), x.dtype))
    gb = grad_bias if grad_bias is not None else scratch("depthwise_no_grad_bias", (1,),
                                                         x.dtype)
    if tuple(stride) == (1, 1) and (want_in or want_params):
        n, c_in, h, w, c_out, kh, kw, _, _, ph, pw, ho, wo = geometry
        chunks, pads, rows = _flat_scratch("depthwise", c_in, h, w, kw, ph, pw, ho, x.dtype)
        grad_pads = scratch("depthwise_grad_pads", pads.shape, x.dtype)
        sums = scratch("depthwise_sums", (chunks, c_out // c_in * (kh * kw + 1)), np.float64)
        _backward_flat(work, grad_out.reshape(-1), x.reshape(-1), weight.reshape(-1), n,
                       c_in, h, w, c_out, kh, kw, ph, pw, ho, wo, want_in,
                       grad_weight is not None, grad_bias is not None, x.dtype.type(0),
                       chunks, pads, grad_pads, rows, sums,
                       grad_in.reshape(-1) if want_in else gb, gw, gb)
        return grad_in if need_grad_in else None
    if want_params:
        _param_grads(work, grad_out.reshape(-1), x.reshape(-1), *geometry,
                     grad_weight is not None, grad_bias is not None, x.dtype.type(0), gw, gb)
    if want_in:
        _input_grad(work, grad_out.reshape(-1), weight.reshape(-1), *geometry,
                    grad_in.reshape(-1))
    return grad_in if need_grad_in else None
