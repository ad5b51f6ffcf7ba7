"""Depthwise convolution (Conv2d with groups = C_in) for the numba backend.

Direct loops, no im2col: a depthwise layer does kH * kW multiply-adds per output, too few
for a matrix product to pay for building its columns.

Each input plane is copied once into its stride phases, in its thread's scratch: phase
(a, b) holds the zero-padded plane's cells (r sH + a, s sW + b), so tap (i, j) reads
phase (i % sH, j % sW) from row i // sH and column j // sW on, contiguously, as a
stride-1 tap would (stride 1: one phase, the padded plane). The outputs are computed
wq = W_out + (kW - 1) // sW to a row, so that a tap is one contiguous multiply-add over
the whole plane (the columns past W_out are discarded). Row by row, the loop setup of a
4- to 32-wide row cost more than its work (8x512x4x4 stride 1, forward + backward, one
thread: 4.0 against 0.9 ms), and a strided tap read with a stride LLVM does not
vectorize (32x128x28x28 stride 2: 8.6 ms forward against PyTorch's 2.1 ms).

* forward: parallel over chunks of (n, c) input planes, each into its M output planes;
* backward: parallel over chunks of input channels, each channel's weight and bias
  gradients (float64 sums of per-plane sums) and input gradient (phases of it, put back
  in place) in one pass over its samples, the output gradient laid out wq to a row
  (the columns past W_out zero): a tap is one dot product and one multiply-add.

The columns past W_out must add nothing: their zeros meet real input cells, so where
an inf made a sum NaN (0 * inf) it is taken again over the valid columns only, and an
infinite tap scatters over the valid columns only. Padding cells are real zeros, so an
infinite tap or gradient meeting them gives NaN, as in PyTorch.

Planes of at most 4 cells (window_shapes.is_direct_depthwise: a CNN's 1x1 and 2x2
stages) take direct kernels instead (_forward_direct, _backward_direct): no phases, each
output's taps read through a table of plane cells (window_shapes.tap_cells), a tap over
the padding multiplying a real 0; the phase copy, row copy and kH kW short loops per
plane had cost 4-47x the NumPy reference there. Their values are the phase kernels'
bit for bit, except the weight gradient's per-plane sums, which run in output order
where the phase kernels' vectorised sums over the span reassociated (a few ulps).

Each value is computed by one thread in a fixed order, so results do not depend on the
thread count. kernels/reference/depthwise.py is the specification.
"""
import math

import numpy as np
from numba import prange

from ..scratch import scratch, thread_stride
from ..window_shapes import is_direct_depthwise, phase_layout, pool_out_shape, tap_cells
from .config import helper, kernel, sync_threads

__all__ = ["depthwise_conv2d_forward", "depthwise_conv2d_backward"]

_F64 = np.dtype(np.float64).itemsize   # the bytes of a weight/bias-gradient partial


@helper
def _span(pad, tap, stride, size, out):  # pragma: no cover - compiled
    """[lo, hi): the indices o < out whose cell o * stride - pad + tap lies in [0, size)."""
    lo = max(0, (pad - tap + stride - 1) // stride)
    hi = max(lo, min(out, (size - 1 + pad - tap) // stride + 1))
    return lo, hi


@helper
def _halves(src, s0, dst, d0, h, w, ph, pw, sh, hq, wq, to_phases):  # pragma: no cover
    """_phase_copy's column stride 2 when every column of a row lands in a phase (the
    usual 'same' padding): each input row goes to its two phases as the pairs (2q,
    2q + 1) in one loop, or back. Returns False (nothing copied) otherwise. The loop
    over each phase separately read every row twice with stride-2 loads; 32x128x28x28
    stride 2, forward, 1 thread: 2.36 -> 1.45 ms."""
    b_even = pw % 2   # the phase column of the even input columns
    lo_even, hi_even = _span(pw, b_even, 2, w, wq)
    lo_odd, hi_odd = _span(pw, 1 - b_even, 2, w, wq)
    pairs = w // 2
    if hi_even - lo_even != w - pairs or hi_odd - lo_odd != pairs:
        return False
    plane, phases = (s0, d0) if to_phases else (d0, s0)
    for a in range(sh):
        for r in range(hq):
            ih = r * sh + a - ph
            if ih < 0 or ih >= h:
                continue
            cell = plane + ih * w
            even = phases + ((a * 2 + b_even) * hq + r) * wq + lo_even
            odd = phases + ((a * 2 + 1 - b_even) * hq + r) * wq + lo_odd
            # (unsigned indices: no wraparound code in the loops)
            if to_phases:
                for q in range(pairs):
                    dst[np.uint64(even + q)] = src[np.uint64(cell + 2 * q)]
                    dst[np.uint64(odd + q)] = src[np.uint64(cell + 2 * q + 1)]
                if w > 2 * pairs:
                    dst[np.uint64(even + pairs)] = src[np.uint64(cell + w - 1)]
            else:
                for q in range(pairs):
                    dst[np.uint64(cell + 2 * q)] = src[np.uint64(even + q)]
                    dst[np.uint64(cell + 2 * q + 1)] = src[np.uint64(odd + q)]
                if w > 2 * pairs:
                    dst[np.uint64(cell + w - 1)] = src[np.uint64(even + pairs)]
    return True


@helper
def _phase_copy(src, s0, dst, d0, h, w, ph, pw, sh, sw, hq, wq,
                to_phases):  # pragma: no cover - compiled
    """Copy between a plane (H W values) and its stride phases (sH sW hq wq values):
    phase (a, b) at (a sW + b) hq wq, its cell (r, s) the zero-padded plane's cell
    (r sH + a, s sW + b). to_phases: src[s0:] is the plane and dst[d0:] the phases, else
    the other way round (src only read: an input may be read-only). Only the input cells
    are copied: into the phases (every plane has the same padding cells, so the kernels
    zero them once), or back into the plane (a cell no phase holds, past every window,
    set to 0 first)."""
    if not to_phases and (hq * sh - ph < h or wq * sw - pw < w):
        for q in range(h * w):
            dst[d0 + q] = 0
    if sw == 2 and _halves(src, s0, dst, d0, h, w, ph, pw, sh, hq, wq, to_phases):
        return
    for a in range(sh):
        for b in range(sw):
            lo, hi = _span(pw, b, sw, w, wq)
            for r in range(hq):
                ih = r * sh + a - ph
                if ih < 0 or ih >= h:
                    continue
                phase = ((a * sw + b) * hq + r) * wq + lo
                cell = ih * w + lo * sw + b - pw
                inp_at, out_at = (s0 + cell, d0 + phase) if to_phases else (s0 + phase,
                                                                           d0 + cell)
                if sw == 1:
                    inp = src[inp_at:inp_at + hi - lo]
                    out = dst[out_at:out_at + hi - lo]
                    for q in range(hi - lo):
                        out[q] = inp[q]
                elif to_phases:   # (unsigned indices: no wraparound code in the loop)
                    for q in range(hi - lo):
                        dst[np.uint64(out_at + q)] = src[np.uint64(inp_at + q * sw)]
                else:
                    for q in range(hi - lo):
                        dst[np.uint64(out_at + q * sw)] = src[np.uint64(inp_at + q)]


@helper
def _copy_rows(dst, d0, d_pitch, src, s0, s_pitch, rows, width):  # pragma: no cover
    """dst[d0 + r * d_pitch + q] = src[s0 + r * s_pitch + q], r < rows, q < width."""
    for r in range(rows):   # (unsigned indices: no wraparound code, no view per row)
        out_at = d0 + r * d_pitch
        inp_at = s0 + r * s_pitch
        for q in range(width):
            dst[np.uint64(out_at + q)] = src[np.uint64(inp_at + q)]


@kernel
def _forward(x, weight, bias, n, c_in, h, w, c_out, kh, kw, sh, sw, ph, pw, ho, wo, hq, wq,
             offsets, chunks, phases, rows, y):  # pragma: no cover - compiled
    """Flat NCHW arrays: x (N C_in H W,) IN; weight (C_out kH kW,) IN; bias (C_out,) IN;
    y (N C_out H_out W_out,) OUT. offsets: (kH kW,) where each tap reads in the phases
    (window_shapes.phase_layout); phases: (chunks, >= sH sW hq wq) and rows: (chunks,
    >= H_out wq) scratch, a row of each per chunk of input planes (rows padded apart:
    scratch.thread_stride)."""
    m = c_out // c_in
    span = ho * wq
    planes = n * c_in
    for k in prange(chunks):
        xq = phases[k]
        ys = rows[k, :span]
        xq[:] = 0  # the padding cells (the same in every plane)
        for t in range(k * planes // chunks, (k + 1) * planes // chunks):
            b = t // c_in
            c = t - b * c_in
            _phase_copy(x, t * h * w, xq, 0, h, w, ph, pw, sh, sw, hq, wq, True)
            for co in range(c * m, c * m + m):
                ys[:] = bias[co]
                for i in range(kh):
                    for j in range(kw):
                        tap = weight[(co * kh + i) * kw + j]
                        start = offsets[i * kw + j]
                        for q in range(span):
                            ys[q] += tap * xq[np.uint64(start + q)]
                _copy_rows(y, (b * c_out + co) * ho * wo, wo, ys, 0, wq, ho, wo)


@kernel
def _backward(grad_out, x, weight, n, c_in, h, w, c_out, kh, kw, sh, sw, ph, pw, ho, wo,
              hq, wq, offsets, want_in, want_weight, want_bias, zero, chunks, phases,
              grad_phases, rows, sums, grad_in, grad_weight, grad_bias):  # pragma: no cover
    """Every gradient in one pass over grad_out and x, parallel over chunks of input
    channels (each channel's kernels and input gradient belong to one thread). Flat NCHW
    arrays: grad_out (N C_out H_out W_out,) IN; x (N C_in H W,) IN; weight (C_out kH kW,)
    IN; grad_in (N C_in H W,) OUT; grad_weight (C_out kH kW,), grad_bias (C_out,)
    IN/OUT, accumulated (each when wanted, else any array); zero: 0 in their type;
    offsets as _forward's. Scratch, rows padded apart: phases, grad_phases (chunks,
    >= sH sW hq wq), rows (chunks, >= H_out wq), sums (chunks, >= M (kH kW + 1))
    float64."""
    m = c_out // c_in
    span = ho * wq
    taps = kh * kw
    for k in prange(chunks):
        xq = phases[k]
        gq = grad_phases[k]
        gs = rows[k, :span]
        acc = sums[k]
        xq[:] = 0  # the padding cells (the same in every plane)
        gs[:] = 0  # the columns past W_out stay 0
        for c in range(k * c_in // chunks, (k + 1) * c_in // chunks):
            acc[:] = 0
            for b in range(n):
                if want_weight:
                    _phase_copy(x, (b * c_in + c) * h * w, xq, 0, h, w, ph, pw, sh, sw, hq,
                                wq, True)
                if want_in:
                    gq[:] = 0
                for mm in range(m):
                    co = c * m + mm
                    _copy_rows(gs, 0, wq, grad_out, (b * c_out + co) * ho * wo, wo, ho, wo)
                    if want_bias:
                        part = zero
                        for q in range(span):
                            part += gs[q]
                        acc[m * taps + mm] += part
                    for i in range(kh):
                        for j in range(kw):
                            start = offsets[i * kw + j]
                            if want_weight:
                                inp = xq[start:start + span]
                                part = zero
                                for q in range(span):
                                    part += gs[q] * inp[q]
                                if part != part:  # NaN: again without the columns past
                                    part = zero   # W_out (their 0 times an inf in x)
                                    for oh in range(ho):
                                        for q in range(oh * wq, oh * wq + wo):
                                            part += gs[q] * inp[q]
                                acc[mm * taps + i * kw + j] += part
                            if want_in:
                                tap = weight[(co * kh + i) * kw + j]
                                out = gq[start:start + span]
                                if math.isfinite(tap):
                                    for q in range(span):
                                        out[q] += tap * gs[q]
                                else:  # not over the columns past W_out (inf times 0)
                                    for oh in range(ho):
                                        for q in range(oh * wq, oh * wq + wo):
                                            out[q] += tap * gs[q]
                if want_in:
                    _phase_copy(gq, 0, grad_in, (b * c_in + c) * h * w, h, w, ph, pw, sh, sw,
                                hq, wq, False)
            for mm in range(m):
                co = c * m + mm
                if want_weight:
                    for tap in range(taps):
                        grad_weight[co * taps + tap] += acc[mm * taps + tap]
                if want_bias:
                    grad_bias[co] += acc[m * taps + mm]


@kernel
def _forward_direct(x, weight, bias, c_in, p_in, c_out, taps, p_out, cells,
                    y):  # pragma: no cover - compiled
    """_forward for tiny planes (window_shapes.is_direct_depthwise), parallel over (n, c)
    input planes, no stride phases: each output is its bias plus its taps in _forward's
    order, a tap over the padding a multiply by a real 0 (an infinite tap there gives
    NaN, as in _forward), so the same values bit for bit. Flat NCHW arrays as
    _forward's; p_in, p_out: the cells of an input and an output plane; cells:
    window_shapes.tap_cells. 1 thread (CPU time), 3x3 padding 1, float32, 256x512x1x1:
    11.4 -> 1.5 ms (the NumPy reference 1.7), 256x256x2x2: 7.3 -> 3.1 ms; backward
    (_backward_direct) 41 -> 6.6 and 25 -> 5.0 ms."""
    m = c_out // c_in
    zero = x.dtype.type(0)
    for t in prange(x.size // p_in):
        b = t // c_in
        c = t - b * c_in
        at = t * p_in
        for co in range(c * m, c * m + m):
            out = (b * c_out + co) * p_out
            w0 = co * taps
            for o in range(p_out):
                acc = bias[co]
                for k in range(taps):
                    cell = cells[o * taps + k]
                    v = x[np.uint64(at + cell)] if cell >= 0 else zero
                    acc += weight[np.uint64(w0 + k)] * v
                y[np.uint64(out + o)] = acc


@kernel
def _backward_direct(grad_out, x, weight, n, c_in, p_in, c_out, taps, p_out, cells, want_in,
                     want_weight, want_bias, zero, chunks, sums, grad_in, grad_weight,
                     grad_bias):  # pragma: no cover - compiled
    """_backward for tiny planes (window_shapes.is_direct_depthwise), parallel over
    chunks of input channels as _backward, no stride phases: each sum taken in
    _backward's order over the outputs (a tap over the padding a multiply by a real 0),
    the input gradient scattered tap by tap (the same order per cell; _backward's
    columns past W_out only added zeros). Arguments as _backward's; p_in, p_out, cells
    as _forward_direct's; sums (chunks, >= the chunk's channels M (kH kW + 1)) float64
    scratch."""
    m = c_out // c_in
    per = m * (taps + 1)   # a channel's sums
    for k in prange(chunks):
        acc = sums[k]
        c0, c1 = k * c_in // chunks, (k + 1) * c_in // chunks
        for q in range((c1 - c0) * per):
            acc[q] = 0
        for b in range(n):   # (samples outermost: the chunk's planes of a sample are
            for c in range(c0, c1):   # adjacent; each sum still runs over b in order)
                at = (b * c_in + c) * p_in
                s0 = (c - c0) * per
                if want_in:
                    for q in range(p_in):
                        grad_in[np.uint64(at + q)] = zero
                for mm in range(m):
                    co = c * m + mm
                    g0 = (b * c_out + co) * p_out
                    if want_bias:
                        part = zero
                        for o in range(p_out):
                            part += grad_out[np.uint64(g0 + o)]
                        acc[s0 + m * taps + mm] += part
                    for tap in range(taps):
                        if want_weight:
                            part = zero
                            for o in range(p_out):
                                cell = cells[o * taps + tap]
                                v = x[np.uint64(at + cell)] if cell >= 0 else zero
                                part += grad_out[np.uint64(g0 + o)] * v
                            acc[s0 + mm * taps + tap] += part
                        if want_in:
                            w = weight[co * taps + tap]
                            for o in range(p_out):
                                cell = cells[o * taps + tap]
                                if cell >= 0:
                                    grad_in[np.uint64(at + cell)] += w * grad_out[
                                        np.uint64(g0 + o)]
        for c in range(c0, c1):
            s0 = (c - c0) * per
            for mm in range(m):
                co = c * m + mm
                if want_weight:
                    for tap in range(taps):
                        grad_weight[co * taps + tap] += acc[s0 + mm * taps + tap]
                if want_bias:
                    grad_bias[co] += acc[s0 + m * taps + mm]


def _layout(x, weight, stride, padding, ho, wo, units):
    """(the kernels' scalar arguments and tap offsets, chunks, phases and rows scratch):
    window_shapes' phase layout, one chunk of the units (planes or channels) per thread."""
    n, c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    hq, wq, offsets = phase_layout((ho, wo), (kh, kw), stride)
    chunks = max(1, min(sync_threads(), units))   # (the count in effect for this call)
    item = x.dtype.itemsize
    phases = scratch("depthwise_phases", (chunks, thread_stride(sh * sw * hq * wq, item)),
                     x.dtype)
    rows = scratch("depthwise_rows", (chunks, thread_stride(ho * wq, item)), x.dtype)
    return ((n, c_in, h, w, c_out, kh, kw, sh, sw, ph, pw, ho, wo, hq, wq, offsets), chunks,
            phases, rows)


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
    if is_direct_depthwise(x.shape):
        _forward_direct(out.size * kh * kw, x.reshape(-1), weight.reshape(-1), bias,
                        x.shape[1], x.shape[2] * x.shape[3], c_out, kh * kw,
                        shape[2] * shape[3],
                        tap_cells(x.shape[2:], shape[2:], (kh, kw), stride, padding),
                        out.reshape(-1))
        return out
    geometry, chunks, phases, rows = _layout(x, weight, stride, padding, *shape[2:],
                                             x.shape[0] * x.shape[1])
    _forward(out.size * kh * kw, x.reshape(-1), weight.reshape(-1), bias, *geometry, chunks,
             phases, rows, out.reshape(-1))
    return out


def depthwise_conv2d_backward(grad_out, x, weight, stride=(1, 1), padding=(0, 0),
                              grad_weight=None, grad_bias=None, grad_in=None,
                              need_grad_in=True):
    """Backward of depthwise_conv2d_forward.

    grad_out: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_out, 1, kH, kW);
    grad_weight: like weight, grad_bias: (C_out,), each None or accumulated in place;
    grad_in: (N, C_in, H, W) or None. Returns grad_in, or None if not need_grad_in.
    """
    if need_grad_in and grad_in is None:
        grad_in = np.empty(x.shape, dtype=x.dtype)
    want_in = need_grad_in and grad_in.size > 0
    want_params = (grad_weight is not None or grad_bias is not None) and weight.shape[0] > 0
    if not (want_in or want_params):
        return grad_in if need_grad_in else None
    c_out, _, kh, kw = weight.shape
    unused = scratch("depthwise_unused", (1,), x.dtype)
    sums_per_chunk = c_out // x.shape[1] * (kh * kw + 1)
    if is_direct_depthwise(x.shape):
        n, c_in, h, w = x.shape
        chunks = max(1, min(sync_threads(), c_in))
        per_chunk = -(-c_in // chunks) * sums_per_chunk   # the sums of a chunk's channels
        sums = scratch("depthwise_sums", (chunks, thread_stride(per_chunk, _F64)), np.float64)
        _backward_direct(grad_out.size * kh * kw, grad_out.reshape(-1), x.reshape(-1),
                         weight.reshape(-1), n, c_in, h * w, c_out, kh * kw,
                         grad_out.shape[2] * grad_out.shape[3],
                         tap_cells((h, w), grad_out.shape[2:], (kh, kw), stride, padding),
                         want_in, grad_weight is not None, grad_bias is not None,
                         x.dtype.type(0), chunks, sums,
                         grad_in.reshape(-1) if want_in else unused,
                         grad_weight.reshape(-1) if grad_weight is not None else unused,
                         grad_bias if grad_bias is not None else unused)
        return grad_in if need_grad_in else None
    geometry, chunks, phases, rows = _layout(x, weight, stride, padding,
                                             *grad_out.shape[2:], x.shape[1])
    grad_phases = scratch("depthwise_grad_phases", phases.shape, x.dtype)
    sums = scratch("depthwise_sums", (chunks, thread_stride(sums_per_chunk, _F64)), np.float64)
    _backward(grad_out.size * kh * kw, grad_out.reshape(-1), x.reshape(-1),
              weight.reshape(-1), *geometry, want_in, grad_weight is not None,
              grad_bias is not None, x.dtype.type(0), chunks, phases, grad_phases, rows,
              sums, grad_in.reshape(-1) if want_in else unused,
              grad_weight.reshape(-1) if grad_weight is not None else unused,
              grad_bias if grad_bias is not None else unused)
    return grad_in if need_grad_in else None
