# cython: language_level=3
"""Depthwise convolution (Conv2d with groups = C_in) for the cython backend, one call
without the GIL; the numba backend's design (kernels/numba_cpu/depthwise.py, whose
docstring has the measurements).

Direct loops, no im2col: each input plane is copied once into its stride phases in the
thread's scratch (phase (a, b): the zero-padded plane's cells (r sH + a, s sW + b)), so
that tap (i, j) reads phase (i % sH, j % sW) contiguously from row i // sH and column
j // sW on; the outputs are computed wq = W_out + (kW - 1) // sW to a row, a tap one
contiguous multiply-add over the whole plane (the columns past W_out discarded). The
forward is parallel over chunks of (n, c) input planes; the backward over chunks of
input channels, each channel's weight and bias gradients (float64 sums of per-plane
sums) and input gradient (phases of it, put back in place) in one pass over its samples.

The columns past W_out add nothing: where an inf made a sum NaN (their 0 * inf) it is
taken again over the valid columns, and an infinite tap scatters over the valid columns
only. Padding cells are real zeros, so an infinite tap or gradient meeting them gives
NaN, as in PyTorch. Every value is computed by one thread in a fixed order: results do
not depend on the thread count. kernels/reference/depthwise.py is the specification.

Planes of at most 4 cells (window_shapes.is_direct_depthwise) take the direct kernels
(_forward_direct, _backward_direct), as in the numba backend, whose docstring says why:
1 thread, 3x3 padding 1, float32, 256x512x1x1 forward 8.7 -> 2.2 ms, backward 16 -> 7
ms; 256x256x2x2 forward 4.8 -> 2.9 ms, backward 9.7 -> 5.9 ms (best of 9).
"""
from fastnn.kernels.scratch import scratch
from fastnn.kernels.window_shapes import (is_direct_depthwise, phase_layout, pool_out_shape,
                                          tap_cells)

cimport cython
from cython.parallel cimport prange
from libc.math cimport isfinite
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset

from _common cimport floating, fnn_workspace, thread_stride, thread_workspaces, threads_for

import numpy as np


@cython.cdivision(True)
cdef inline void _span(Py_ssize_t pad, Py_ssize_t tap, Py_ssize_t stride, Py_ssize_t size,
                       Py_ssize_t out, Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """[lo, hi): the indices o < out whose cell o * stride - pad + tap lies in [0, size)."""
    cdef Py_ssize_t d = pad - tap, e = size - 1 + pad - tap
    lo[0] = (d + stride - 1) // stride if d > 0 else 0
    hi[0] = e // stride + 1 if e >= 0 else 0
    if hi[0] > out:
        hi[0] = out
    if hi[0] < lo[0]:
        hi[0] = lo[0]


@cython.cdivision(True)
cdef bint _halves(floating* plane, Py_ssize_t h, Py_ssize_t w, Py_ssize_t ph,
                  Py_ssize_t pw, Py_ssize_t sh, Py_ssize_t hq, Py_ssize_t wq,
                  floating* phases, bint to_phases) noexcept nogil:
    """_phase_copy's column stride 2 when every column of a row lands in a phase (the
    usual 'same' padding): each input row goes to its two phases as the pairs (2q,
    2q + 1) in one loop, or back. Returns False (nothing copied) otherwise. The loop
    over each phase separately read every row twice with stride-2 loads (the numba
    backend's forward of 32x128x28x28 stride 2 on 1 thread: 2.36 -> 1.45 ms)."""
    cdef Py_ssize_t b_even = pw % 2, lo_even, hi_even, lo_odd, hi_odd, pairs = w // 2
    cdef Py_ssize_t a, r, ih, q
    cdef floating* cells
    cdef floating* even
    cdef floating* odd
    _span(pw, b_even, 2, w, wq, &lo_even, &hi_even)
    _span(pw, 1 - b_even, 2, w, wq, &lo_odd, &hi_odd)
    if hi_even - lo_even != w - pairs or hi_odd - lo_odd != pairs:
        return False
    for a in range(sh):
        for r in range(hq):
            ih = r * sh + a - ph
            if ih < 0 or ih >= h:
                continue
            cells = plane + ih * w
            even = phases + ((a * 2 + b_even) * hq + r) * wq + lo_even
            odd = phases + ((a * 2 + 1 - b_even) * hq + r) * wq + lo_odd
            if to_phases:
                for q in range(pairs):
                    even[q] = cells[2 * q]
                    odd[q] = cells[2 * q + 1]
                if w > 2 * pairs:
                    even[pairs] = cells[w - 1]
            else:
                for q in range(pairs):
                    cells[2 * q] = even[q]
                    cells[2 * q + 1] = odd[q]
                if w > 2 * pairs:
                    cells[w - 1] = even[pairs]
    return True


@cython.cdivision(True)
cdef void _phase_copy(floating* plane, Py_ssize_t h, Py_ssize_t w, Py_ssize_t ph,
                      Py_ssize_t pw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t hq,
                      Py_ssize_t wq, floating* phases, bint to_phases) noexcept nogil:
    """Copy between a plane (H W) and its stride phases (sH sW hq wq): phase (a, b) at
    (a sW + b) hq wq, its cell (r, s) the zero-padded plane's cell (r sH + a, s sW + b).
    Only the input cells are copied: into the phases (to_phases; every plane has the
    same padding cells, so the kernels zero them once), or back into the plane (a cell
    no phase holds, past every window, set to 0 first)."""
    cdef Py_ssize_t a, b, r, q, ih, lo, hi
    cdef floating* cells
    cdef floating* phase
    if not to_phases and (hq * sh - ph < h or wq * sw - pw < w):
        memset(plane, 0, h * w * sizeof(floating))
    if sw == 2 and _halves(plane, h, w, ph, pw, sh, hq, wq, phases, to_phases):
        return
    for a in range(sh):
        for b in range(sw):
            _span(pw, b, sw, w, wq, &lo, &hi)
            for r in range(hq):
                ih = r * sh + a - ph
                if ih < 0 or ih >= h or lo >= hi:
                    continue
                phase = phases + ((a * sw + b) * hq + r) * wq + lo
                cells = plane + ih * w + lo * sw + b - pw
                if sw == 1 and to_phases:
                    memcpy(phase, cells, (hi - lo) * sizeof(floating))
                elif sw == 1:
                    memcpy(cells, phase, (hi - lo) * sizeof(floating))
                elif to_phases:
                    for q in range(hi - lo):
                        phase[q] = cells[q * sw]
                else:
                    for q in range(hi - lo):
                        cells[q * sw] = phase[q]


cdef inline void _copy_rows(floating* dst, Py_ssize_t d_pitch, const floating* src,
                            Py_ssize_t s_pitch, Py_ssize_t rows,
                            Py_ssize_t width) noexcept nogil:
    cdef Py_ssize_t r
    for r in range(rows):
        memcpy(dst + r * d_pitch, src + r * s_pitch, width * sizeof(floating))


@cython.cdivision(True)
cdef void _forward_planes(const floating* x, const floating* weight, const floating* bias,
                          Py_ssize_t t0, Py_ssize_t t1, Py_ssize_t c_in, Py_ssize_t h,
                          Py_ssize_t w, Py_ssize_t c_out, Py_ssize_t kh, Py_ssize_t kw,
                          Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                          Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t hq, Py_ssize_t wq,
                          const int64_t* offsets, floating* xq, floating* ys,
                          floating* y) noexcept nogil:
    """Input planes t0 .. t1 (t = n * C_in + c) into their M output planes; offsets
    (kH kW): where each tap reads in the phases."""
    cdef Py_ssize_t m = c_out // c_in, span = ho * wq
    cdef Py_ssize_t t, b, c, co, i, j, q
    cdef floating tap, value
    cdef const floating* inp
    memset(xq, 0, sh * sw * hq * wq * sizeof(floating))
    for t in range(t0, t1):
        b = t // c_in
        c = t - b * c_in
        _phase_copy(<floating*>(x + t * h * w), h, w, ph, pw, sh, sw, hq, wq, xq, True)
        for co in range(c * m, c * m + m):
            value = bias[co]
            for q in range(span):
                ys[q] = value
            for i in range(kh):
                for j in range(kw):
                    tap = weight[(co * kh + i) * kw + j]
                    inp = xq + offsets[i * kw + j]
                    for q in range(span):
                        ys[q] += tap * inp[q]
            _copy_rows(y + (b * c_out + co) * ho * wo, wo, ys, wq, ho, wo)


@cython.cdivision(True)
cdef void _backward_channels(const floating* g, const floating* x, const floating* weight,
                             Py_ssize_t c0, Py_ssize_t c1, Py_ssize_t n, Py_ssize_t c_in,
                             Py_ssize_t h, Py_ssize_t w, Py_ssize_t c_out, Py_ssize_t kh,
                             Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
                             Py_ssize_t pw, Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t hq,
                             Py_ssize_t wq, const int64_t* offsets, floating* xq,
                             floating* gq, floating* gs,
                             double* acc, floating* grad_in, floating* grad_weight,
                             floating* grad_bias) noexcept nogil:
    """Every gradient of input channels c0 .. c1 (grad_in, grad_weight or grad_bias
    NULL: not wanted)."""
    cdef Py_ssize_t m = c_out // c_in, span = ho * wq, taps = kh * kw
    cdef Py_ssize_t size = sh * sw * hq * wq
    cdef Py_ssize_t c, b, mm, co, i, j, q, oh, start
    cdef floating part, tap
    cdef const floating* inp
    cdef floating* out
    memset(xq, 0, size * sizeof(floating))   # the padding cells, the same in every plane
    memset(gs, 0, span * sizeof(floating))   # the columns past W_out stay 0
    for c in range(c0, c1):
        memset(acc, 0, m * (taps + 1) * sizeof(double))
        for b in range(n):
            if grad_weight != NULL:
                _phase_copy(<floating*>(x + (b * c_in + c) * h * w), h, w, ph, pw, sh, sw,
                            hq, wq, xq, True)
            if grad_in != NULL:
                memset(gq, 0, size * sizeof(floating))
            for mm in range(m):
                co = c * m + mm
                _copy_rows(gs, wq, g + (b * c_out + co) * ho * wo, wo, ho, wo)
                if grad_bias != NULL:
                    part = 0
                    for q in range(span):
                        part = part + gs[q]
                    acc[m * taps + mm] += part
                for i in range(kh):
                    for j in range(kw):
                        start = offsets[i * kw + j]
                        if grad_weight != NULL:
                            inp = xq + start
                            part = 0
                            for q in range(span):
                                part = part + gs[q] * inp[q]
                            if part != part:  # NaN: again without the columns past
                                part = 0      # W_out (their 0 times an inf in x)
                                for oh in range(ho):
                                    for q in range(oh * wq, oh * wq + wo):
                                        part = part + gs[q] * inp[q]
                            acc[mm * taps + i * kw + j] += part
                        if grad_in != NULL:
                            tap = weight[(co * kh + i) * kw + j]
                            out = gq + start
                            if isfinite(tap):
                                for q in range(span):
                                    out[q] += tap * gs[q]
                            else:  # not over the columns past W_out (inf times 0)
                                for oh in range(ho):
                                    for q in range(oh * wq, oh * wq + wo):
                                        out[q] += tap * gs[q]
            if grad_in != NULL:
                _phase_copy(grad_in + (b * c_in + c) * h * w, h, w, ph, pw, sh, sw, hq, wq,
                            gq, False)
        for mm in range(m):
            co = c * m + mm
            if grad_weight != NULL:
                for q in range(taps):
                    grad_weight[co * taps + q] += <floating>acc[mm * taps + q]
            if grad_bias != NULL:
                grad_bias[co] += <floating>acc[m * taps + mm]


@cython.cdivision(True)  # (every divisor is positive: strides, C_in, thread counts)
def _forward(const floating[::1] x, const floating[::1] weight, const floating[::1] bias,
             Py_ssize_t n, Py_ssize_t c_in, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c_out,
             Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
             Py_ssize_t pw, Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t hq, Py_ssize_t wq,
             const int64_t[::1] offsets, floating[::1] y):
    """Flat NCHW arrays: x (N C_in H W,), weight (C_out kH kW,), bias (C_out,), y
    (N C_out H_out W_out,), y written."""
    cdef Py_ssize_t planes = n * c_in, k
    cdef Py_ssize_t size = sh * sw * hq * wq, span = ho * wq
    cdef Py_ssize_t size_stride = thread_stride(size, sizeof(floating))
    cdef Py_ssize_t span_stride = thread_stride(span, sizeof(floating))
    cdef int nthreads = threads_for(y.shape[0] * kh * kw)
    cdef floating* xq
    cdef floating* ys
    cdef const floating* xptr = &x[0] if x.shape[0] else NULL
    if y.shape[0] == 0:
        return
    if nthreads > planes:
        nthreads = <int>planes
    with nogil:
        if not thread_workspaces(nthreads, size_stride * sizeof(floating), <void**>&xq,
                                 span_stride * sizeof(floating), <void**>&ys):
            with gil:
                raise MemoryError("depthwise_conv2d_forward: cannot allocate its scratch")
        for k in prange(nthreads, schedule="static", num_threads=nthreads):
            _forward_planes(xptr, &weight[0], &bias[0], k * planes // nthreads,
                            (k + 1) * planes // nthreads, c_in, h, w, c_out, kh, kw, sh, sw,
                            ph, pw, ho, wo, hq, wq, &offsets[0], xq + k * size_stride,
                            ys + k * span_stride, &y[0])


@cython.cdivision(True)  # (every divisor is positive: strides, C_in, thread counts)
def _backward(const floating[::1] g, const floating[::1] x, const floating[::1] weight,
              Py_ssize_t n, Py_ssize_t c_in, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c_out,
              Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
              Py_ssize_t pw, Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t hq, Py_ssize_t wq,
              const int64_t[::1] offsets, floating[::1] grad_in, floating[::1] grad_weight,
              floating[::1] grad_bias, bint want_in, bint want_weight, bint want_bias):
    """Flat NCHW arrays: g (N C_out H_out W_out,), x and grad_in (N C_in H W,), weight
    and grad_weight (C_out kH kW,), grad_bias (C_out,); grad_in written, grad_weight and
    grad_bias accumulated, each only when wanted (else any array, not touched)."""
    cdef Py_ssize_t k
    cdef Py_ssize_t size = sh * sw * hq * wq, span = ho * wq
    cdef Py_ssize_t sums = c_out // c_in * (kh * kw + 1) if c_in else 0
    cdef Py_ssize_t size_stride = thread_stride(size, sizeof(floating))
    cdef Py_ssize_t span_stride = thread_stride(span, sizeof(floating))
    cdef Py_ssize_t sums_stride = thread_stride(sums, sizeof(double))
    cdef int nthreads = threads_for(g.shape[0] * kh * kw)
    cdef floating* xq
    cdef floating* gq
    cdef floating* gs
    cdef double* acc
    cdef bint ok
    cdef const floating* gptr = &g[0] if g.shape[0] else NULL
    cdef const floating* xptr = &x[0] if x.shape[0] else NULL
    cdef floating* gin = &grad_in[0] if want_in else NULL
    cdef floating* gw = &grad_weight[0] if want_weight else NULL
    cdef floating* gb = &grad_bias[0] if want_bias else NULL
    if c_in == 0 or c_out == 0:
        return
    if nthreads > c_in:
        nthreads = <int>c_in
    with nogil:
        ok = thread_workspaces(nthreads, size_stride * sizeof(floating), <void**>&xq,
                               size_stride * sizeof(floating), <void**>&gq,
                               span_stride * sizeof(floating), <void**>&gs)
        acc = <double*>fnn_workspace(3, nthreads * sums_stride * sizeof(double))
        if not ok or acc == NULL:
            with gil:
                raise MemoryError("depthwise_conv2d_backward: cannot allocate its scratch")
        for k in prange(nthreads, schedule="static", num_threads=nthreads):
            _backward_channels(gptr, xptr, &weight[0], k * c_in // nthreads,
                               (k + 1) * c_in // nthreads, n, c_in, h, w, c_out, kh, kw, sh,
                               sw, ph, pw, ho, wo, hq, wq, &offsets[0],
                               xq + k * size_stride, gq + k * size_stride,
                               gs + k * span_stride, acc + k * sums_stride, gin, gw, gb)


@cython.cdivision(True)  # (every divisor is positive: C_in, plane sizes, thread counts)
def _forward_direct(const floating[::1] x, const floating[::1] weight,
                    const floating[::1] bias, Py_ssize_t c_in, Py_ssize_t p_in,
                    Py_ssize_t c_out, Py_ssize_t taps, Py_ssize_t p_out,
                    const int64_t[::1] cells, floating[::1] y):
    """_forward for tiny planes (window_shapes.is_direct_depthwise), parallel over (n, c)
    input planes, no stride phases: each output its bias plus its taps in _forward's
    order, a tap over the padding a multiply by a real 0 (an infinite tap there gives
    NaN, as in _forward). p_in, p_out: the cells of an input and an output plane;
    cells: window_shapes.tap_cells."""
    cdef Py_ssize_t planes = x.shape[0] // p_in, m = c_out // c_in
    cdef Py_ssize_t t, b, c, co, o, k, cell
    cdef floating acc, v
    # (outside the prange: y.shape in its num_threads, under initializedcheck, made the
    # bounds-checked build's C jump into the OpenMP block, which gcc refuses)
    cdef int nthreads = threads_for(y.shape[0] * taps)
    cdef const floating* xp = &x[0]
    cdef const floating* wp = &weight[0]
    cdef const int64_t* tab = &cells[0]
    cdef floating* yp = &y[0]
    if y.shape[0] == 0:
        return
    for t in prange(planes, nogil=True, schedule="static", num_threads=nthreads):
        b = t // c_in
        c = t - b * c_in
        for co in range(c * m, c * m + m):
            for o in range(p_out):
                acc = bias[co]
                for k in range(taps):
                    cell = tab[o * taps + k]
                    v = xp[t * p_in + cell] if cell >= 0 else 0
                    acc = acc + wp[co * taps + k] * v
                yp[(b * c_out + co) * p_out + o] = acc


@cython.cdivision(True)
cdef void _backward_direct_channels(const floating* g, const floating* x,
                                    const floating* weight, Py_ssize_t c0, Py_ssize_t c1,
                                    Py_ssize_t n, Py_ssize_t c_in, Py_ssize_t p_in,
                                    Py_ssize_t c_out, Py_ssize_t taps, Py_ssize_t p_out,
                                    const int64_t* cells, double* acc, floating* grad_in,
                                    floating* grad_weight,
                                    floating* grad_bias) noexcept nogil:
    """_backward_channels for tiny planes: every gradient of input channels c0 .. c1,
    no stride phases, each sum in _backward_channels' order over the outputs (a tap
    over the padding a multiply by a real 0), the input gradient scattered tap by tap
    (the same order per cell); the samples outermost, so that the chunk's planes of a
    sample are adjacent (each sum still runs over the samples in order). acc: (c1 - c0)
    M (kH kW + 1) float64 sums."""
    cdef Py_ssize_t m = c_out // c_in, per = m * (taps + 1)
    cdef Py_ssize_t b, c, mm, co, o, k, q, cell, at, g0, s0
    cdef floating part, w, v
    memset(acc, 0, (c1 - c0) * per * sizeof(double))
    for b in range(n):
        for c in range(c0, c1):
            at = (b * c_in + c) * p_in
            s0 = (c - c0) * per
            if grad_in != NULL:
                for q in range(p_in):
                    grad_in[at + q] = 0
            for mm in range(m):
                co = c * m + mm
                g0 = (b * c_out + co) * p_out
                if grad_bias != NULL:
                    part = 0
                    for o in range(p_out):
                        part = part + g[g0 + o]
                    acc[s0 + m * taps + mm] += part
                for k in range(taps):
                    if grad_weight != NULL:
                        part = 0
                        for o in range(p_out):
                            cell = cells[o * taps + k]
                            v = x[at + cell] if cell >= 0 else 0
                            part = part + g[g0 + o] * v
                        acc[s0 + mm * taps + k] += part
                    if grad_in != NULL:
                        w = weight[co * taps + k]
                        for o in range(p_out):
                            cell = cells[o * taps + k]
                            if cell >= 0:
                                grad_in[at + cell] += w * g[g0 + o]
    for c in range(c0, c1):
        s0 = (c - c0) * per
        for mm in range(m):
            co = c * m + mm
            if grad_weight != NULL:
                for q in range(taps):
                    grad_weight[co * taps + q] += <floating>acc[s0 + mm * taps + q]
            if grad_bias != NULL:
                grad_bias[co] += <floating>acc[s0 + m * taps + mm]


@cython.cdivision(True)  # (every divisor is positive: C_in, thread counts)
def _backward_direct(const floating[::1] g, const floating[::1] x,
                     const floating[::1] weight, Py_ssize_t n, Py_ssize_t c_in,
                     Py_ssize_t p_in, Py_ssize_t c_out, Py_ssize_t taps, Py_ssize_t p_out,
                     const int64_t[::1] cells, floating[::1] grad_in,
                     floating[::1] grad_weight, floating[::1] grad_bias, bint want_in,
                     bint want_weight, bint want_bias):
    """_backward for tiny planes (window_shapes.is_direct_depthwise), parallel over
    chunks of input channels as _backward; arguments as _backward's and
    _forward_direct's."""
    cdef Py_ssize_t k, per_chunk, sums_stride
    cdef int nthreads = threads_for(g.shape[0] * taps)
    cdef double* acc
    cdef const floating* gptr = &g[0] if g.shape[0] else NULL
    cdef const floating* xptr = &x[0] if x.shape[0] else NULL
    cdef floating* gin = &grad_in[0] if want_in else NULL
    cdef floating* gw = &grad_weight[0] if want_weight else NULL
    cdef floating* gb = &grad_bias[0] if want_bias else NULL
    if c_in == 0 or c_out == 0:
        return
    if nthreads > c_in:
        nthreads = <int>c_in
    per_chunk = (c_in + nthreads - 1) // nthreads * (c_out // c_in) * (taps + 1)
    sums_stride = thread_stride(per_chunk, sizeof(double))
    with nogil:
        acc = <double*>fnn_workspace(3, nthreads * sums_stride * sizeof(double))
        if acc == NULL:
            with gil:
                raise MemoryError("depthwise_conv2d_backward: cannot allocate its scratch")
        for k in prange(nthreads, schedule="static", num_threads=nthreads):
            _backward_direct_channels(gptr, xptr, &weight[0], k * c_in // nthreads,
                                      (k + 1) * c_in // nthreads, n, c_in, p_in, c_out,
                                      taps, p_out, &cells[0], acc + k * sums_stride, gin,
                                      gw, gb)


def depthwise_conv2d_forward(x, weight, bias=None, stride=(1, 1), padding=(0, 0), out=None):
    """Depthwise 2-D cross-correlation, zero padding.

    x: (N, C_in, H, W); weight: (C_out, 1, kH, kW), C_out = M * C_in; bias: (C_out,) or
    None; out: (N, C_out, H_out, W_out) or None. Returns y: (N, C_out, H_out, W_out).
    """
    n, c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    ho, wo = pool_out_shape(x.shape, (kh, kw), stride, padding)[2:]
    if out is None:
        out = np.empty((n, c_out, ho, wo), dtype=x.dtype)
    if out.size == 0:
        return out
    if bias is None:
        bias = scratch("depthwise_zero_bias", (c_out,), x.dtype)
        bias[:] = 0
    if is_direct_depthwise(x.shape):
        _forward_direct(x.reshape(-1), weight.reshape(-1), bias, c_in, h * w, c_out, kh * kw,
                        ho * wo, tap_cells((h, w), (ho, wo), (kh, kw), stride, padding),
                        out.reshape(-1))
        return out
    _forward(x.reshape(-1), weight.reshape(-1), bias, n, c_in, h, w, c_out, kh, kw, sh, sw,
             ph, pw, ho, wo, *phase_layout((ho, wo), (kh, kw), stride), out.reshape(-1))
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
        if is_direct_depthwise(x.shape):
            _backward_direct(grad_out.reshape(-1), x.reshape(-1), weight.reshape(-1), n, c_in,
                             h * w, c_out, kh * kw, ho * wo,
                             tap_cells((h, w), (ho, wo), (kh, kw), stride, padding),
                             grad_in.reshape(-1) if want_in else unused,
                             grad_weight.reshape(-1) if grad_weight is not None else unused,
                             grad_bias if grad_bias is not None else unused, want_in,
                             grad_weight is not None, grad_bias is not None)
            return grad_in if need_grad_in else None
        _backward(grad_out.reshape(-1), x.reshape(-1), weight.reshape(-1), n, c_in, h, w,
                  c_out, kh, kw, stride[0], stride[1], padding[0], padding[1], ho, wo,
                  *phase_layout((ho, wo), (kh, kw), stride),
                  grad_in.reshape(-1) if want_in else unused,
                  grad_weight.reshape(-1) if grad_weight is not None else unused,
                  grad_bias if grad_bias is not None else unused, want_in,
                  grad_weight is not None, grad_bias is not None)
    return grad_in if need_grad_in else None
