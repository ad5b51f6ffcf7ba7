"""Convolution and pooling for the numba backend.

Algorithm (chosen by measurement; the same design as the cython backend, whose module
docstring in kernels/cython/_conv.pyx has the full table): compiled im2col feeding BLAS
GEMMs, the batch split over Numba's threads in groups of ``nb`` samples (one sample
once it has ``_GROUP_MIN_COLS`` output positions). Each thread runs whole groups in its
own scratch, with ``col: (C_in * kH * kW, nb * H_out * W_out)``:

* forward: ``W (C_out, K) @ col`` straight into the NCHW output, then the bias add
  (nb == 1), or into a channel-major buffer copied to NCHW with the bias (nb > 1);
* weight gradient: ``g (C_out, nb * P) @ col.T`` into the thread's partial, the
  partials added in thread order afterwards;
* input gradient: ``W.T @ g -> dcol`` into the same scratch, then col2im into the
  group's own samples (no races).

The kernels call ``?gemm`` by address (blas.gemm, ``conv_target``: MKL when the Linear
products use it, else SciPy's BLAS, as the Cython conv kernels), which lets BLAS add
into the output (the bias filled first, a thread's weight-gradient partial) where
``np.dot`` could only overwrite; each call runs on its calling thread (MKL nested in the
parallel region, with nesting turned off, and SciPy's OpenBLAS held at one thread, both
by kernels/blas_threads.py), so only Numba's pool runs. One GEMM per chunk on OpenBLAS's
threads between parallel im2col/col2im loops (the previous design) made the two pools
fight over the cores. im2col and col2im of
stride-1 "same" layers move each patch row as one span of the shifted image plane
(edge columns fixed up).
Measured on 32x64x16x16 -> 128, 3x3 pad 1, forward + backward (old and new kernels
interleaved in one process with PyTorch): 1 thread (CPU time) 56.3-56.7 -> 45.9-48.3 ms
(PyTorch 34.9-35.5 ms); 2 threads on a quiet machine 148 -> 24.4-26.8 ms (PyTorch
25.6-28.2 ms); 2 threads loaded 589 -> 110 ms (PyTorch 117 ms); bench/ median 1.37x
PyTorch (target 1.5x). SmallCNN step, batch 128, 1 thread: 120-159 -> 84-106 ms
(PyTorch 102 ms). The cython backend's docstring has where the time goes.

Direct convolution was measured against im2col for small channel counts (forward, batch
128, 3x3 padding 1, one thread, CPU time): 1 -> 32 channels at 28x28 took 5.3 ms
direct against 6.8 ms here (1.4 ms in the cython backend's im2col); 3 -> 16 at 32x32 6.1 against
6.4 ms; 8 -> 16 at 14x14 10.5 against 3.7 ms; 32 -> 64 at 14x14 147 against 29 ms. The
direct loop wins only by a little and only at one input channel, so one code path is
kept.

Pooling is parallel over (n, c) planes; max-pool backward scatters into its own plane
only, so it needs no atomics. Small planes (a CNN's last stages) take kernels without
the general ones' per-plane fixed cost, chosen by shape in kernels/window_shapes.py:
max-pool backward of planes of at most 64 cells by flat indices (_max_pool_bwd_small),
and the average-pool backward of tiling windows as wide as the plane as runs of cells
(_avg_pool_runs_bwd); 1 thread, 1024x256x2x2 float32: 2.3 -> 0.9 and 3.4 -> 0.75 ms.
The commonest windows take loops across an output row's windows, each window's cells
still in its own order (window_shapes.is_2x2_pool, is_3x3s2_pool, is_3x3s1_pool):
2x2 stride-2 average pools (_avg_pool_2x2_fwd / _bwd: 5.7x / 2.5x at 128x32x28x28, 1
thread), 3x3 stride-2 and stride-1 max pools (_max_pool_3x3: 2.4-5x and 3-6.5x) and
3x3 stride-2 average pools (_avg_pool_3x3s2_fwd / _bwd: 4-5x), their docstrings have
the numbers.
"""

import numba
import numpy as np
from numba import prange

from .. import blas_threads
from ..window_shapes import (exact_reciprocal, is_2x2_pool as _is_2x2_pool, is_3x3s1_pool,
                             is_3x3s2_pool, is_global_pool, is_plane_wide_window,
                             is_small_plane, is_tiling_pool, pool_out_shape)
from . import blas
from ._buffers import scratch
from .config import (OPTIONS, ORDERED_OPTIONS, PARALLEL_MIN, Kernel, helper, kernel,
                     serial_kernel, sync_threads)
from .select import unpredictable_select
from .vmath import _fma

__all__ = ["conv2d_forward", "conv2d_backward", "max_pool2d_forward", "max_pool2d_backward",
           "avg_pool2d_forward", "avg_pool2d_backward"]

# Most bytes of patch matrix per thread (one group of samples).
_COL_BYTES = 4 << 20
# Samples are grouped until a group's GEMMs have this many columns; groups of one
# sample (P >= _GROUP_MIN_COLS) run their GEMMs straight into/out of the NCHW arrays.
_GROUP_MIN_COLS = 128

def _group(n, k, p, itemsize):
    """Samples per group: enough for _GROUP_MIN_COLS GEMM columns, within _COL_BYTES."""
    nb = -(-_GROUP_MIN_COLS // p) if p > 0 else n
    per_sample = k * p * itemsize
    if per_sample > 0 and nb * per_sample > _COL_BYTES:
        nb = _COL_BYTES // per_sample
    return int(max(1, min(nb, n)))


def _plan(n, k, c_out, p, itemsize):
    """(samples per group, threads): the batch is split over at most one thread per
    group, and runs on one thread when the work is too small for a parallel region or
    when SciPy's BLAS thread count cannot be set (BLAS then keeps its own threads)."""
    nb = _group(n, k, p, itemsize)
    groups = -(-n // nb)
    threads = sync_threads()
    if n * p * max(k, c_out) < PARALLEL_MIN or not blas_threads.available():
        threads = 1
    return nb, max(1, min(threads, groups))


# --------------------------------------------------------------------- conv kernels
@serial_kernel
def _im2col(x, n0, nb, c_in, h_in, w_in, kh, kw, sh, sw, ph, pw, ho, wo, col):  # pragma: no cover
    """x: (N * C * H * W,) IN, flat NCHW; col: (C * kh * kw, nb * ho * wo) OUT, the patch
    matrix of samples n0 .. n0 + nb. Serial: the calling thread owns the group.

    With stride 1 and W_out == W (same padding) a patch row is the image plane shifted
    by (i - ph, j - pw): one copy of the whole valid span, then the few edge columns
    the shift wrapped around are zeroed. Otherwise row by row."""
    rows = c_in * kh * kw
    p = ho * wo
    flat = sh == 1 and sw == 1 and wo == w_in
    flat_col = col.reshape(-1)
    for r in range(rows):
        c = r // (kh * kw)
        i = (r // kw) % kh
        j = r % kw
        # output columns whose input column is inside the image
        lo = 0
        while lo < wo and lo * sw - pw + j < 0:
            lo += 1
        hi = wo
        while hi > lo and (hi - 1) * sw - pw + j >= w_in:
            hi -= 1
        if flat:
            oh_lo = max(ph - i, 0)
            oh_hi = min(h_in + ph - i, ho)
            shift = (i - ph) * w_in + (j - pw)
            # flat unsigned indices (no views, no negative-index code), and the wrapped
            # columns zeroed column by column down the rows (one strided loop each, not
            # two short loops per output row): one sample of 64 -> 576 x 256 27 -> 20 us
            for b in range(nb):
                at = np.uint64(r * col.shape[1] + b * p)
                if oh_lo >= oh_hi or lo >= hi:
                    for q in range(np.uint64(p)):
                        flat_col[at + q] = 0
                    continue
                d0 = np.uint64(oh_lo * wo + lo)
                d1 = np.uint64((oh_hi - 1) * wo + hi)
                start = np.uint64(((n0 + b) * c_in + c) * h_in * w_in + shift + d0)
                for q in range(d0):
                    flat_col[at + q] = 0
                for q in range(d1 - d0):
                    flat_col[at + d0 + q] = x[start + q]
                for q in range(d1, np.uint64(p)):
                    flat_col[at + q] = 0
                for ow in range(lo):   # the columns the shift wrapped around
                    for oh in range(oh_lo, oh_hi):
                        flat_col[at + np.uint64(oh * wo + ow)] = 0
                for ow in range(hi, wo):
                    for oh in range(oh_lo, oh_hi):
                        flat_col[at + np.uint64(oh * wo + ow)] = 0
            continue
        # flat unsigned indices, as above: the slices and views of each output row
        # had cost more than the copy (stride 2, one sample of 64 at 16x16 -> 576 x 64:
        # 58 -> 20 us; 'valid' 5x5 on 6 x 28 x 28: 65 -> 12 us)
        span = np.uint64(hi - lo)
        for b in range(nb):
            plane = ((n0 + b) * c_in + c) * h_in * w_in
            for oh in range(ho):
                h = oh * sh - ph + i
                d = np.uint64(r * col.shape[1] + b * p + oh * wo)
                if h < 0 or h >= h_in:
                    for q in range(np.uint64(wo)):
                        flat_col[d + q] = 0
                    continue
                for q in range(np.uint64(lo)):
                    flat_col[d + q] = 0
                src = np.uint64(plane + h * w_in + lo * sw - pw + j)
                at = d + np.uint64(lo)
                if sw == 1:  # contiguous source
                    for q in range(span):
                        flat_col[at + q] = x[src + q]
                else:
                    step = np.uint64(sw)
                    for q in range(span):
                        flat_col[at + q] = x[src + q * step]
                for q in range(np.uint64(hi), np.uint64(wo)):
                    flat_col[d + q] = 0


@serial_kernel
def _col2im(dcol, n0, nb, c_in, h_in, w_in, kh, kw, sh, sw, ph, pw, ho, wo,
            grad_in):  # pragma: no cover
    """dcol: (C * kh * kw, nb * ho * wo) IN (scratch: its out-of-image entries are
    zeroed); grad_in: flat (N * C * H * W,) OUT, planes of samples n0 .. n0 + nb
    overwritten. Serial: the calling thread owns the group.

    With stride 1 and W_out == W, as in _im2col, each patch row is added to the plane
    as one span: the entries whose input column falls outside the image (which the
    span would wrap onto the neighbouring row) are zeroed in dcol first."""
    p = ho * wo
    flat = sh == 1 and sw == 1 and wo == w_in
    flat_dcol = dcol.reshape(-1)
    for t in range(nb * c_in):
        b = t // c_in
        c = t - b * c_in
        plane = ((n0 + b) * c_in + c) * h_in * w_in
        grad_in[plane:plane + h_in * w_in] = 0
        for i in range(kh):
            for j in range(kw):
                r = (c * kh + i) * kw + j
                lo = 0
                while lo < wo and lo * sw - pw + j < 0:
                    lo += 1
                hi = wo
                while hi > lo and (hi - 1) * sw - pw + j >= w_in:
                    hi -= 1
                if flat:
                    oh_lo = max(ph - i, 0)
                    oh_hi = min(h_in + ph - i, ho)
                    if oh_lo >= oh_hi or lo >= hi:
                        continue
                    # flat unsigned indices, the wrapped columns zeroed column by
                    # column down the rows, as in _im2col
                    at = np.uint64(r * dcol.shape[1] + b * p)
                    for ow in range(lo):
                        for oh in range(oh_lo, oh_hi):
                            flat_dcol[at + np.uint64(oh * wo + ow)] = 0
                    for ow in range(hi, wo):
                        for oh in range(oh_lo, oh_hi):
                            flat_dcol[at + np.uint64(oh * wo + ow)] = 0
                    d0 = np.uint64(oh_lo * wo + lo)
                    d1 = np.uint64((oh_hi - 1) * wo + hi)
                    start = np.uint64(plane + oh_lo * wo + lo + (i - ph) * w_in + (j - pw))
                    for q in range(d1 - d0):
                        grad_in[start + q] += flat_dcol[at + d0 + q]
                    continue
                # flat unsigned indices (no views, no negative-index code), as in
                # _im2col: stride 2, one sample of 64 at 16x16: 55 -> 18 us
                span = np.uint64(hi - lo)
                for oh in range(ho):
                    h = oh * sh - ph + i
                    if h < 0 or h >= h_in:
                        continue
                    src = np.uint64(r * dcol.shape[1] + b * p + oh * wo + lo)
                    dst = np.uint64(plane + h * w_in + lo * sw - pw + j)
                    if sw == 1:
                        for q in range(span):
                            grad_in[dst + q] += flat_dcol[src + q]
                    else:
                        step = np.uint64(sw)
                        for q in range(span):
                            grad_in[dst + q * step] += flat_dcol[src + q]


@kernel
def _forward_groups(gemm, ilp64, x, w_mat, bias, nb, c_in, h_in, w_in, kh, kw, sh, sw, ph,
                    pw, cols, ycs, y):  # pragma: no cover - compiled
    """x: flat NCHW IN; w_mat: (C_out, K) IN; bias: (C_out,) IN; y: (N, C_out, P) OUT.
    cols: (T, K * nb * P), ycs: (T, C_out * nb * P) scratch, one row per thread; the
    groups of nb samples are split over the T threads in order. gemm, ilp64:
    blas.conv_target (one thread's product per call: _run_groups)."""
    n, c_out, p = y.shape
    k = w_mat.shape[1]
    ho = (h_in + 2 * ph - kh) // sh + 1
    wo = (w_in + 2 * pw - kw) // sw + 1
    nthreads = cols.shape[0]
    groups = (n + nb - 1) // nb
    for t in prange(nthreads):
        for gi in range(t * groups // nthreads, (t + 1) * groups // nthreads):
            n0 = gi * nb
            m = min(nb, n - n0)
            L = m * p
            col = cols[t, :k * L].reshape(k, L)
            _im2col(x, n0, m, c_in, h_in, w_in, kh, kw, sh, sw, ph, pw, ho, wo, col)
            # column-major out.T (L, C_out) = col.T (L, K) @ w_mat.T (K, C_out) [+ out.T]
            if m == 1:  # straight into NCHW: the bias first, BLAS adding to it (beta 1)
                yb = y[n0]
                for co in range(c_out):
                    add = bias[co]
                    for q in range(p):
                        yb[co, q] = add
                blas.gemm(gemm, ilp64, blas.N, blas.N, L, c_out, k, col, L, w_mat, k, 1.0,
                          yb, L)
            else:  # channel-major, then to NCHW with the bias
                yc = ycs[t, :c_out * L].reshape(c_out, L)
                blas.gemm(gemm, ilp64, blas.N, blas.N, L, c_out, k, col, L, w_mat, k, 0.0,
                          yc, L)
                for b in range(m):
                    for co in range(c_out):
                        add = bias[co]
                        for q in range(p):
                            y[n0 + b, co, q] = yc[co, b * p + q] + add


@kernel
def _backward_groups(gemm, ilp64, grad_out, x, w_mat, nb, c_in, h_in, w_in, kh, kw, sh, sw,
                     ph, pw, want_w, want_in, cols, gs, parts, grad_in):  # pragma: no cover
    """grad_out: (N, C_out, P) IN; x: flat NCHW IN; w_mat: (C_out, K) IN.
    parts: (T, C_out, K) OUT, each thread's weight gradient (when want_w);
    grad_in: flat NCHW OUT (when want_in). cols: (T, K * nb * P), gs: (T, C_out * nb * P)
    scratch. gemm, ilp64: blas.conv_target (one thread's product per call:
    _run_groups)."""
    n, c_out, p = grad_out.shape
    k = w_mat.shape[1]
    ho = (h_in + 2 * ph - kh) // sh + 1
    wo = (w_in + 2 * pw - kw) // sw + 1
    nthreads = cols.shape[0]
    groups = (n + nb - 1) // nb
    for t in prange(nthreads):
        first = True
        for gi in range(t * groups // nthreads, (t + 1) * groups // nthreads):
            n0 = gi * nb
            m = min(nb, n - n0)
            L = m * p
            if m == 1:
                g = grad_out[n0]
            else:  # channel-major copy of the group's output gradient
                g = gs[t, :c_out * L].reshape(c_out, L)
                for b in range(m):
                    for co in range(c_out):
                        for q in range(p):
                            g[co, b * p + q] = grad_out[n0 + b, co, q]
            col = cols[t, :k * L].reshape(k, L)
            if want_w:
                # parts[t] (C_out, K) = (first) or += g (C_out, L) @ col.T: BLAS adds
                # into the partial itself (beta 1), as the Cython kernel does, where
                # np.dot needed a temporary and a pass adding it (column-major
                # parts[t].T (K, C_out) = col (K, L) @ g.T (L, C_out))
                _im2col(x, n0, m, c_in, h_in, w_in, kh, kw, sh, sw, ph, pw, ho, wo, col)
                blas.gemm(gemm, ilp64, blas.T, blas.N, k, c_out, L, col, L, g, L,
                          0.0 if first else 1.0, parts[t], k)
            first = False
            if want_in:
                # dcol (K, L) = W.T @ g, into col's buffer, then col2im (column-major
                # dcol.T (L, K) = g.T (L, C_out) @ w_mat (C_out, K))
                blas.gemm(gemm, ilp64, blas.N, blas.T, L, k, c_out, g, L, w_mat, k, 0.0, col, L)
                _col2im(col, n0, m, c_in, h_in, w_in, kh, kw, sh, sw, ph, pw, ho, wo, grad_in)


@kernel
def _add_parts(parts, used, grad_weight):  # pragma: no cover - compiled
    """grad_weight: (C_out, K) IN/OUT += parts[0] + ... + parts[used - 1], in order."""
    c_out, k = grad_weight.shape
    for co in prange(c_out):
        # part by part over contiguous rows (vectorized; the same order of additions per
        # element as a loop over parts innermost, which strode by C_out * K: 2.3x slower)
        row = grad_weight[co]
        for t in range(used):
            part = parts[t, co]
            for q in range(k):
                row[q] += part[q]


@kernel
def _bias_grad(grad_out, grad_bias):  # pragma: no cover - compiled
    """grad_out: (N, C_out, P) IN; grad_bias: (C_out,) IN/OUT, += sum over n and p."""
    n, c_out, p = grad_out.shape
    for co in prange(c_out):
        acc = 0.0
        for b in range(n):
            for q in range(p):
                acc += grad_out[b, co, q]
        grad_bias[co] += acc


def _run_groups(groups_kernel, threads, size, args):
    """Run _forward_groups or _backward_groups on the plan's threads, each calling BLAS
    on one thread. A plan of one thread (one group of samples, as at batch 1, or one
    thread set) runs the kernel's serial variant instead, so that its GEMMs call BLAS
    outside any parallel region and BLAS gets every thread: called from inside Numba's
    parallel region (one thread working while the others wait at its end), BLAS ran its
    jobs nested on new threads that competed with the waiting ones (32 -> 64 channels at
    14x14, batch 1, forward 6.0 ms against 0.19 ms). The kernels' loops are copies and
    adds in a fixed order, so both variants give the same bits."""
    if threads > 1:
        with blas_threads.serial_blas():
            groups_kernel(size, *args)
    else:
        groups_kernel.run_serial(*args)


def conv2d_forward(x, weight, bias=None, stride=(1, 1), padding=(0, 0), out=None):
    """2-D cross-correlation, zero padding.

    x: (N, C_in, H, W); weight: (C_out, C_in, kH, kW); bias: (C_out,) or None;
    out: (N, C_out, H_out, W_out) or None. Returns y: (N, C_out, H_out, W_out).
    """
    n, c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    ho, wo = pool_out_shape(x.shape, (kh, kw), stride, padding)[2:]
    p, k = ho * wo, c_in * kh * kw
    if out is None:
        out = np.empty((n, c_out, ho, wo), dtype=x.dtype)
    if out.size == 0:
        return out
    bias_arr = bias if bias is not None else scratch("conv_zero_bias", (c_out,), x.dtype)
    if bias is None:
        bias_arr[:] = 0
    nb, threads = _plan(n, k, c_out, p, x.itemsize)
    cols = scratch("conv_cols", (threads, k * nb * p), x.dtype)
    ycs = scratch("conv_ycs", (threads, c_out * nb * p if nb > 1 else 1), x.dtype)
    args = (*blas.conv_target(x.dtype), x.reshape(-1), weight.reshape(c_out, k), bias_arr,
            nb, c_in, h, w, kh, kw, sh, sw, ph, pw, cols, ycs, out.reshape(n, c_out, p))
    _run_groups(_forward_groups, threads, n * p * max(k, c_out), args)
    return out


def conv2d_backward(grad_out, x, weight, stride=(1, 1), padding=(0, 0), grad_weight=None,
                    grad_bias=None, grad_in=None, need_grad_in=True):
    """Backward of conv2d_forward.

    grad_out: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_out, C_in, kH, kW);
    grad_weight: like weight, grad_bias: (C_out,), each None or accumulated in place;
    grad_in: (N, C_in, H, W) or None. Returns grad_in, or None if not need_grad_in.
    """
    n, c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    ho, wo = grad_out.shape[2], grad_out.shape[3]
    p, k = ho * wo, c_in * kh * kw
    g3 = grad_out.reshape(n, c_out, p)
    if grad_bias is not None:
        _bias_grad(grad_out.size, g3, grad_bias)
    if grad_weight is None and not need_grad_in:
        return None
    if need_grad_in and grad_in is None:
        grad_in = np.empty(x.shape, dtype=x.dtype)
    if n == 0 or p == 0:
        if need_grad_in:
            grad_in[...] = 0
        return grad_in if need_grad_in else None
    want_w = grad_weight is not None
    nb, threads = _plan(n, k, c_out, p, x.itemsize)
    groups = -(-n // nb)
    cols = scratch("conv_cols", (threads, k * nb * p), x.dtype)
    gs = scratch("conv_gs", (threads, c_out * nb * p if nb > 1 else 1), x.dtype)
    wshape = (threads, c_out, k) if want_w else (1, 1, 1)
    parts = scratch("conv_parts", wshape, x.dtype)
    gi_flat = (grad_in.reshape(-1) if need_grad_in
               else scratch("conv_no_grad_in", (1,), x.dtype))
    args = (*blas.conv_target(x.dtype), g3, x.reshape(-1), weight.reshape(c_out, k), nb,
            c_in, h, w, kh, kw, sh, sw, ph, pw, want_w, need_grad_in, cols, gs, parts,
            gi_flat)
    _run_groups(_backward_groups, threads, n * p * max(k, c_out), args)
    if want_w:
        # threads whose share of groups is empty left their partial unwritten
        used = min(threads, groups)
        _add_parts(c_out * k * used, parts, used, grad_weight.reshape(c_out, k))
    return grad_in if need_grad_in else None


# -------------------------------------------------------------------------- pooling
@helper
def _taps(start, k, d, size):  # pragma: no cover - compiled
    """(first, end) of the taps i of a window starting at ``start`` (cells start + i d)
    that fall inside [0, size)."""
    if d == 1:  # (no divisions: most pooling layers)
        lo = max(-start, 0)
        return lo, max(min(k, size - start), lo)
    lo = (d - 1 - start) // d if start < 0 else 0
    hi = min(k, (size - 1 - start) // d + 1) if start < size else 0
    return lo, max(hi, lo)


@helper
def _greater(best, arg, v, at):  # pragma: no cover - compiled
    """(best, arg) after the cell at ``at`` holding v: v wins when it is greater (a NaN
    never does; _last_nan tracks those apart).

    PyTorch's rule in one condition, "greater or a NaN", is an OR of two float
    compares; LLVM compiled the float select on it as a branch (x86 has no scalar float
    cmov: only a select on one compare becomes a max or a blend) and, on the index's
    cmov, its cmov-conversion pass made another branch. Which cell wins is random on
    real data, so both mispredicted: the 3x3 stride-2 pool ran 14.8 ns an output on
    zeros and 35-39 on normal noise (1 thread). Here the value select is on one compare
    (vmaxss) and the index select an unpredictable_select (a cmov LLVM keeps)."""
    take = v > best
    return (v if take else best), unpredictable_select(take, at, arg)


@helper
def _last_nan(nan_at, v, at):  # pragma: no cover - compiled
    """``at`` if v is a NaN, else nan_at: over a window in order, the last NaN's cell
    (-1 while there is none)."""
    return at if v != v else nan_at


@helper
def _nan_wins(plane, best, arg, nan_at):  # pragma: no cover - compiled
    """(best, arg) of a window after its scan by _greater: PyTorch's rule, its last NaN
    if it holds one (nan_at >= 0)."""
    if nan_at >= 0:
        return plane[np.uint64(nan_at)], nan_at
    return best, arg


@kernel
def _max_pool_fwd(x, kh, kw, sh, sw, ph, pw, dh, dw, y, indices):  # pragma: no cover
    """x: (N, C, H, W) IN; y, indices: (N, C, H_out, W_out) OUT; taps dh, dw apart.

    Each output scans its window's taps in order for the first maximum (_greater) and
    for the last NaN (_last_nan), which wins if there is one: PyTorch's rule, without a
    branch on the data; the index starts at the window's first cell inside the input
    (PyTorch's, for a window of -inf). Loops run over tap numbers, not over
    ``range(start, stop, d)`` (a division per loop to count its trips), and planes are
    indexed flat with unsigned indices (no wraparound code). 3x3 stride 2 padding 1,
    float32 normal noise, 2 threads: 32x64x16x16 2.17 -> 0.71 ms, 128x64x8x8 2.18 ->
    0.76 ms, 64x64x32x32 16.8 -> 6.5 ms; 1 thread, 128x32x28x28: 35.7 -> 5.5 ns an
    output (14.8 on zeros before). Cython's
    order (window positions outermost, the output row as the running maximum) ran 2x
    slower compiled by Numba. (Without nnan in fastmath: with it the NaN test folds
    away, wrongly.)"""
    n, c, h_in, w_in = x.shape
    ho, wo = y.shape[2], y.shape[3]
    planes = x.reshape(n * c, h_in * w_in)
    y_planes = y.reshape(n * c, ho * wo)
    index_planes = indices.reshape(n * c, ho * wo)
    lowest = x.dtype.type(-np.inf)
    for t in prange(n * c):
        plane = planes[t]
        y_plane = y_planes[t]
        index_plane = index_planes[t]
        for oh in range(ho):
            h0 = oh * sh - ph
            ia, ib = _taps(h0, kh, dh, h_in)
            for ow in range(wo):
                w0 = ow * sw - pw
                ja, jb = _taps(w0, kw, dw, w_in)
                best = lowest
                arg = (h0 + ia * dh) * w_in + w0 + ja * dw
                nan_at = -1
                for i in range(ia, ib):
                    row = (h0 + i * dh) * w_in + w0
                    for j in range(ja, jb):
                        cell = row + j * dw
                        v = plane[np.uint64(cell)]
                        best, arg = _greater(best, arg, v, cell)
                        nan_at = _last_nan(nan_at, v, cell)
                best, arg = _nan_wins(plane, best, arg, nan_at)
                q = np.uint64(oh * wo + ow)
                y_plane[q] = best
                index_plane[q] = arg


@helper
def _pair_max(plane, a, b):  # pragma: no cover - compiled
    """(max, index) of a window of cells a, b (in window order), PyTorch's rule: a 2x2
    window's part inside x, where ceil mode's last row or column runs past the edge."""
    va, vb = plane[np.uint64(a)], plane[np.uint64(b)]
    best, arg = _greater(va, a, vb, b)
    return _nan_wins(plane, best, arg, _last_nan(_last_nan(-1, va, a), vb, b))


@kernel
def _max_pool_2x2(x, y, indices):  # pragma: no cover - compiled
    """_max_pool_fwd for 2x2 windows, stride 2, no padding, dilation 1 (VGG's pooling):
    x (N, C, H, W) IN; y, indices (N, C, H_out, W_out) OUT, H // 2 x W // 2 windows
    inside x, and in ceil mode a last row and column of windows past an odd H or W.
    Each row pair's maxima are a tree of _greater (upper pair, lower pair, then the
    two), which picks what the window-order scan does (the first maximum), then the
    window's last NaN if it holds one: branch-free in one loop over the output row.
    1 thread, 128x32x28x28 float32: 2.2 ns an output on zeros but 6.5-13 on normal noise
    while the selects compiled to branches (see _greater), 1.5 on both now. The windows
    past the edge, 2 cells or the corner's 1, take _pair_max after the row's loop."""
    n, c, h_in, w_in = x.shape
    ho, wo = y.shape[2], y.shape[3]
    hf, wf = min(ho, h_in // 2), min(wo, w_in // 2)   # the windows inside x
    planes = x.reshape(n * c, h_in * w_in)
    y_planes = y.reshape(n * c, ho * wo)
    index_planes = indices.reshape(n * c, ho * wo)
    for t in prange(n * c):
        plane = planes[t]
        y_plane = y_planes[t]
        index_plane = index_planes[t]
        for oh in range(hf):
            top = 2 * oh * w_in
            row = oh * wo
            if wo > wf:   # (ceil mode: the last window has the last column only)
                best, arg = _pair_max(plane, top + 2 * wf, top + w_in + 2 * wf)
                y_plane[np.uint64(row + wf)] = best
                index_plane[np.uint64(row + wf)] = arg
            for ow in range(wf):   # (unsigned indices: no wraparound code)
                a = top + 2 * ow
                b = a + w_in
                va, va1 = plane[np.uint64(a)], plane[np.uint64(a + 1)]
                vb, vb1 = plane[np.uint64(b)], plane[np.uint64(b + 1)]
                upper, upper_at = _greater(va, a, va1, a + 1)
                lower, lower_at = _greater(vb, b, vb1, b + 1)
                best, arg = _greater(upper, upper_at, lower, lower_at)
                nan_at = _last_nan(_last_nan(_last_nan(_last_nan(-1, va, a), va1, a + 1),
                                             vb, b), vb1, b + 1)
                best, arg = _nan_wins(plane, best, arg, nan_at)
                y_plane[np.uint64(row + ow)] = best
                index_plane[np.uint64(row + ow)] = arg
        if ho > hf:       # (ceil mode: the last row of windows has the last input row)
            top = 2 * hf * w_in
            row = hf * wo
            for ow in range(wf):
                best, arg = _pair_max(plane, top + 2 * ow, top + 2 * ow + 1)
                y_plane[np.uint64(row + ow)] = best
                index_plane[np.uint64(row + ow)] = arg
            if wo > wf:
                y_plane[np.uint64(row + wf)] = plane[np.uint64(top + 2 * wf)]
                index_plane[np.uint64(row + wf)] = top + 2 * wf


@helper
def _take(best, code, v, at):  # pragma: no cover - compiled
    """(best, code) after a window's cell v (its code ``at``) in window order: v wins
    when greater or a NaN (PyTorch's rule: the first maximum, a later NaN over it). In
    a loop across windows this is one compare, one unordered compare and two blends a
    vector of windows, no branch."""
    take = (v > best) | (v != v)
    return (v if take else best), (at if take else code)


#: the windows the 2x2 average-pool backward computes at a time (LLVM's 512-bit vector
#: of float32)
_LANES = 16

@helper
def _split_phases(xf, src, w_in, rows, cols, ph, pw, hq, wq, pad):  # pragma: no cover
    """Copies the plane at xf[src:] (rows x cols of its cells, row length w_in) into the
    4 stride-2 phases of its padded plane (padding ph, pw), hq x wq each at pad[(a 2 +
    b) hq wq:] for phase (a, b) (even/odd rows x even/odd columns), leaving the rest of
    pad (its border) as it is: the 3x3 stride-2 pools' layout."""
    size = hq * wq
    for r in range(rows):
        rr = r + ph
        row = ((rr & 1) * 2 * hq + (rr >> 1)) * wq   # phase (rr & 1, 0)'s row
        # input column 2 k lands in column phase pw at k, 2 k + 1 in phase 1 - pw at
        # k + pw
        even = row + pw * size
        odd = row + (1 - pw) * size + pw
        at = src + r * w_in
        for k in range(cols >> 1):
            pad[np.uint64(even + k)] = xf[np.uint64(at + 2 * k)]
            pad[np.uint64(odd + k)] = xf[np.uint64(at + 2 * k + 1)]
        if cols & 1:
            pad[np.uint64(even + (cols >> 1))] = xf[np.uint64(at + cols - 1)]


@helper
def _pad_plane(xf, src, w_in, ph, pw, wq, pad, rows):  # pragma: no cover - compiled
    """Copies the plane at xf[src:] (rows x w_in cells) into pad, rows wq long, its cell
    (r, c) at (r + ph) wq + c + pw, leaving the rest of pad (its border) as it is: the
    3x3 stride-1 max pool's layout."""
    for r in range(rows):
        at = src + r * w_in
        to = (r + ph) * wq + pw
        for c in range(w_in):
            pad[np.uint64(to + c)] = xf[np.uint64(at + c)]


#: planes to a block of the 3x3 max pools (each block copies its planes into one
#: scratch plane padded with -inf). The scratch is allocated in each block on purpose:
#: arrays made in a prange body are no alias to Numba, a row of a scratch passed in is
#: one (taken as a view it made the plane copies 1.5-3x slower); per-thread rows kept
#: between calls and indexed by offset (5fe3f03, reverted) ran 3-6% slower than this
#: (1 thread, CPU time, alternating processes, 3x3/2 pad 1 64x256x7x7 1.28-1.45 against
#: 1.41-1.46 ms, 64x64x15x15 pad 0 0.82-0.84 against 0.86-0.88 ms).
_POOL_BLOCKS = 64


@kernel
def _max_pool_3x3(x, s, ph, pw, y, indices):  # pragma: no cover - compiled
    """_max_pool_fwd for 3x3 windows of stride s = 2 (ResNet's stem pool,
    window_shapes.is_3x3s2_pool) or 1 (Inception's, is_3x3s1_pool), dilation 1: x (N, C,
    H, W) IN; y, indices (N, C, H_out, W_out) OUT; ph, pw: the padding (0 or 1), ceil
    mode's windows past the edge allowed.

    Each plane is split into its 4 stride phases (even/odd rows x even/odd columns of
    the padded plane, hq x wq each, inside a border of -inf: the padding, and what a
    ceil-mode window reads past the edge), where tap (i, j) of every window of the plane
    lies at one offset from the window's lane q = oh wq + ow (a column of junk lanes, ow
    = W_out, between rows). One loop over the plane's lanes then takes each window's 9
    taps in order (_take), vectorised across the windows, into scratch; the outputs are
    copied from it. A -inf cell never wins, so the border changes no result; a window
    that nothing won (all its cells -inf) gets its first cell inside the input, as in
    _max_pool_fwd. 1 thread, float32 normal noise, CPU time, _max_pool_fwd -> here:
    32x64x16x16 pad 1 1.17 -> 0.37 ms (2.8 ns an output), 16x32x28x28 pad 1 0.89 ->
    0.26 ms, 16x8x112x112 pad 1 3.58 -> 0.70 ms, 64x64x15x15 pad 0 1.89 -> 0.80 ms.
    Reading the windows' stride-2 columns straight from a padded copy of the plane,
    one output row a loop, ran 5.1 ns an output: rows of 8 windows are shorter than
    LLVM's vector loop (16 lanes x its unroll), so they ran scalar.

    Stride 1 takes the same loop on the -inf-bordered plane itself (_pad_plane: rows wq
    = W_out + 2 long, two columns of junk lanes between rows), tap (i, j) at i wq + j
    from the lane. 1 thread, normal noise, padding 1, CPU time, interleaved, median of
    15 runs of 5 calls, _max_pool_fwd -> here (PyTorch's max_pool2d with indices):
    float32 32x64x28x28 14.3 -> 2.2 ms (39), 8x192x28x28 11.2 -> 1.8 ms (30); float64
    14.6 -> 4.8 ms (51), 10.4 -> 3.5 ms (29)."""
    n, c, h_in, w_in = x.shape
    ho, wo = y.shape[2], y.shape[3]
    planes = n * c
    if s == 2:
        hq, wq = ho + 1, wo + 1
        size = hq * wq                    # a phase
        fill = 4 * size + wq + 1          # (+ the junk lanes' last reads)
        o = (0, size, 1, 2 * size, 3 * size, 2 * size + 1, wq, size + wq, wq + 1)
    else:
        hq, wq = ho + 2, wo + 2
        size = hq * wq
        fill = size + 2
        o = (0, 1, 2, wq, wq + 1, wq + 2, 2 * wq, 2 * wq + 1, 2 * wq + 2)
    lanes = ho * wq
    rows = min(h_in, 2 * hq - ph)         # the input rows and columns windows reach
    cols = min(w_in, 2 * wq - pw)
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    index = indices.reshape(-1)
    lowest = x.dtype.type(-np.inf)
    blocks = min(planes, _POOL_BLOCKS)
    o1, o2 = np.int32(w_in), np.int32(2 * w_in)   # taps' offsets from a window's first cell
    for blk in prange(blocks):
        pad = np.full(fill, lowest)
        best = np.empty(lanes, x.dtype)
        code = np.empty(lanes, np.int32)
        for t in range(blk * planes // blocks, (blk + 1) * planes // blocks):
            if s == 2:
                _split_phases(xf, t * h_in * w_in, w_in, rows, cols, ph, pw, hq, wq, pad)
            else:
                _pad_plane(xf, t * h_in * w_in, w_in, ph, pw, wq, pad, h_in)
            for q in range(lanes):
                b, k = lowest, np.int32(-1)
                b, k = _take(b, k, pad[np.uint64(o[0] + q)], np.int32(0))
                b, k = _take(b, k, pad[np.uint64(o[1] + q)], np.int32(1))
                b, k = _take(b, k, pad[np.uint64(o[2] + q)], np.int32(2))
                b, k = _take(b, k, pad[np.uint64(o[3] + q)], o1)
                b, k = _take(b, k, pad[np.uint64(o[4] + q)], o1 + 1)
                b, k = _take(b, k, pad[np.uint64(o[5] + q)], o1 + 2)
                b, k = _take(b, k, pad[np.uint64(o[6] + q)], o2)
                b, k = _take(b, k, pad[np.uint64(o[7] + q)], o2 + 1)
                b, k = _take(b, k, pad[np.uint64(o[8] + q)], o2 + 2)
                best[np.uint64(q)] = b
                code[np.uint64(q)] = k
            out = t * ho * wo
            for oh in range(ho):
                h0 = s * oh - ph
                for ow in range(wo):
                    w0 = s * ow - pw
                    k = code[np.uint64(oh * wq + ow)]
                    at = np.uint64(out + oh * wo + ow)
                    yf[at] = best[np.uint64(oh * wq + ow)]
                    index[at] = (h0 * w_in + w0 + k if k >= 0
                                 else max(h0, 0) * w_in + max(w0, 0))


@kernel
def _max_pool_bwd(grad_out, indices, grad_in):  # pragma: no cover - compiled
    """grad_out, indices: (N, C, P_out) IN; grad_in: (N, C, P_in) OUT. An index outside
    the plane (PyTorch's for a window wholly in the padding, whose -inf output no input
    moves) adds nothing."""
    n, c, p_out = grad_out.shape
    p_in = grad_in.shape[2]
    for t in prange(n * c):
        b = t // c
        ch = t - b * c
        grad_in[b, ch, :] = 0
        for q in range(p_out):
            i = indices[b, ch, q]
            if 0 <= i < p_in:
                grad_in[b, ch, i] += grad_out[b, ch, q]


@kernel
def _max_pool_bwd_small(grad_out, indices, grad_in):  # pragma: no cover - compiled
    """_max_pool_bwd for small planes (window_shapes.is_small_plane): flat arrays,
    grad_out, indices (N C P_out,) IN; grad_in (N C P_in,) OUT; p_in, p_out: the plane
    sizes. Each plane zeroed and scattered into by flat unsigned indices, in the same
    order (the same sums), without _max_pool_bwd's slice and 3-D indexing per plane: a
    fixed cost that a plane of 4 cells never paid back."""
    n, c, p_out = grad_out.shape
    p_in = grad_in.shape[2]
    g = grad_out.reshape(-1)
    index = indices.reshape(-1)
    gi = grad_in.reshape(-1)
    zero = grad_in.dtype.type(0.0)
    for t in prange(n * c):
        plane = np.uint64(t * p_in)
        at = np.uint64(t * p_out)
        for q in range(np.uint64(p_in)):
            gi[plane + q] = zero
        for q in range(np.uint64(p_out)):
            i = index[at + q]
            if 0 <= i < p_in:
                gi[plane + np.uint64(i)] += g[at + q]


@helper
def _avg_count(h0, w0, ha, hb, wa, wb, kh, kw, h_in, w_in, ph, pw, count_include_pad,
               divisor):  # pragma: no cover - compiled
    """The divisor of the window at (h0, w0) (kernels/reference/conv.py's rule): divisor
    when > 0; else its cells inside the padded input (count_include_pad; kH * kW except
    where a ceil-mode window runs past the padding) or inside the input [ha, hb) x [wa, wb)."""
    if divisor > 0:
        return divisor
    if count_include_pad:
        return (min(h0 + kh, h_in + ph) - h0) * (min(w0 + kw, w_in + pw) - w0)
    return (hb - ha) * (wb - wa)


def _in_order_kernel(fn):
    """A ``Kernel`` compiled without reassociation (ORDERED_OPTIONS): average pooling's
    window sums add their cells in row-major order, PyTorch's and the reference's, so a
    float32 window near the max overflows to the same inf (or NaN) as theirs (reassoc
    vectorised a window row into partial sums, which overflowed elsewhere)."""
    return Kernel(fn, ORDERED_OPTIONS)


@_in_order_kernel
def _avg_pool_fwd(x, kh, kw, sh, sw, ph, pw, count_include_pad, divisor, y):  # pragma: no cover
    """x: (N, C, H, W) IN; y: (N, C, H_out, W_out) OUT."""
    n, c, h_in, w_in = x.shape
    ho, wo = y.shape[2], y.shape[3]
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    # the window sums in x's dtype, as PyTorch's and the other backends': a float32
    # window of values near the max overflows to inf there (float64 gave their mean)
    zero = x.dtype.type(0.0)
    # flat unsigned indices (no 4-D indexing with its negative-index code in the inner
    # loop): the same sums, bit for bit; 1 thread, a global pool of 64x64x8x8 267 ->
    # 123 us, of 64x64x16x16 1134 -> 277 us
    for t in prange(n * c):
        plane = np.uint64(t * h_in * w_in)
        out = np.uint64(t * ho * wo)
        for oh in range(ho):
            h0 = oh * sh - ph
            ha, hb = max(h0, 0), min(h0 + kh, h_in)
            for ow in range(wo):
                w0 = ow * sw - pw
                wa, wb = max(w0, 0), min(w0 + kw, w_in)
                acc = zero
                for hh in range(ha, hb):
                    row = plane + np.uint64(hh * w_in)
                    for ww in range(np.uint64(wa), np.uint64(wb)):
                        acc += xf[row + ww]
                yf[out + np.uint64(oh * wo + ow)] = acc / _avg_count(
                    h0, w0, ha, hb, wa, wb, kh, kw, h_in, w_in, ph, pw, count_include_pad,
                    divisor)


@kernel
def _avg_pool_bwd(grad_out, kh, kw, sh, sw, ph, pw, count_include_pad, divisor,
                  grad_in):  # pragma: no cover - compiled
    """grad_out: (N, C, H_out, W_out) IN; grad_in: (N, C, H, W) OUT."""
    n, c, h_in, w_in = grad_in.shape
    ho, wo = grad_out.shape[2], grad_out.shape[3]
    gf = grad_out.reshape(-1)
    gi = grad_in.reshape(-1)
    zero = grad_in.dtype.type(0.0)
    # flat unsigned indices, as the forward: a global pool's gradient to 64x64x8x8
    # 221 -> 75 us, to 64x64x16x16 652 -> 203 us (1 thread)
    for t in prange(n * c):
        plane = np.uint64(t * h_in * w_in)
        g = np.uint64(t * ho * wo)
        for q in range(plane, plane + np.uint64(h_in * w_in)):
            gi[q] = zero
        for oh in range(ho):
            h0 = oh * sh - ph
            ha, hb = max(h0, 0), min(h0 + kh, h_in)
            for ow in range(wo):
                w0 = ow * sw - pw
                wa, wb = max(w0, 0), min(w0 + kw, w_in)
                # in grad_in's dtype, as PyTorch's (an int count made it a float64
                # share, whose sums overflowed a float32 gradient elsewhere)
                share = _exact_quotient(gf[g + np.uint64(oh * wo + ow)], grad_in.dtype.type(
                    _avg_count(h0, w0, ha, hb, wa, wb, kh, kw, h_in, w_in, ph, pw,
                               count_include_pad, divisor)))
                for hh in range(ha, hb):
                    row = plane + np.uint64(hh * w_in)
                    for ww in range(np.uint64(wa), np.uint64(wb)):
                        gi[row + ww] += share


# (fastmath explicit: a callee inherits an unset fastmath)
@numba.njit(cache=OPTIONS["cache"], fastmath=False)
def _exact_quotient(a, b):  # pragma: no cover - compiled
    """a / b as a true division, where arcp would multiply by the rounded reciprocal of a
    loop-invariant b (1 / 3 is inexact): a window's average as PyTorch's and the other
    backends' give it, to the bit."""
    return a / b


# (fastmath explicit, without nsz: under it LLVM folds fma(x, y, 0) to x * y)
@numba.njit(cache=OPTIONS["cache"], fastmath=False)
def _mean_by_inverse(acc, inverse, zero):  # pragma: no cover - compiled
    """acc / d for inverse = 1 / d exact (window_shapes.exact_reciprocal), as one
    fma(acc, inverse, +0): the quotient's bits (one rounding of the exact acc / d, -0
    where a negative one underflows), and +0 for acc = -0, as PyTorch's window sums
    from 0 give it."""
    return _fma(acc, inverse, zero)


# (fastmath explicit, without nsz: under it LLVM folds x + 0 to x)
@numba.njit(cache=OPTIONS["cache"], fastmath=False)
def _unsigned_zero(x, zero):  # pragma: no cover - compiled
    """x + zero (0 of x's type): -0 -> +0, every other value's bits kept (NaN stays
    NaN). An average pool's gradient share as PyTorch's and the reference's sums into a
    zeroed gradient give it (0 + -0 = +0), where the kernels' nsz dropped the add, and
    a window's sum as their sums from 0 give it (the 2x2 and 3x3 stride-2 pools). The
    add has no contract flag, so a share g * inv is not fused into fma(g, inv, 0),
    which keeps -0 where g * inv underflows."""
    return x + zero


@_in_order_kernel
def _avg_pool_tiles_fwd(x, kh, kw, divisor, y):  # pragma: no cover - compiled
    """_avg_pool_fwd for windows that tile x (window_shapes.is_tiling_pool): x (N, C, H,
    W) IN; y (N, C, H_out, W_out) OUT. Each output row sums its kh input rows, tap by
    tap, across the row (the window's cells in _avg_pool_fwd's order), instead of a loop
    of kh x kw per window. 1 thread, float32 2x2, 128x32x14x14: 1.46 -> 0.68 ms,
    64x16x28x28: 1.40 -> 0.45 ms."""
    n, c, h_in, w_in = x.shape
    ho, wo = y.shape[2], y.shape[3]
    planes = x.reshape(n * c, h_in, w_in)
    out_planes = y.reshape(n * c, ho, wo)
    zero = x.dtype.type(0.0)
    d = x.dtype.type(divisor)
    for t in prange(n * c):
        plane = planes[t]
        out_plane = out_planes[t]
        for oh in range(ho):
            out = out_plane[oh]
            out[:] = zero
            for i in range(kh):
                row = plane[oh * kh + i]
                for j in range(kw):
                    for ow in range(wo):
                        out[ow] += row[ow * kw + j]
            for ow in range(wo):
                out[ow] = _exact_quotient(out[ow], d)


@_in_order_kernel
def _avg_pool_planes_fwd(x, divisor, y):  # pragma: no cover - compiled
    """_avg_pool_fwd for a global pool (window_shapes.is_global_pool): x (N, C, H, W) IN;
    y (N, C, 1, 1) OUT. Each plane's cells added in order from 0, but 8 planes at a time,
    one accumulator each: a single in-order chain is bound by the add's latency (1
    thread, 64x64x8x8 float32: 0.21-0.33 ms with _avg_pool_fwd's, 0.11 ms here)."""
    hw = x.shape[2] * x.shape[3]
    planes = x.shape[0] * x.shape[1]
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    zero = x.dtype.type(0.0)
    d = x.dtype.type(divisor)
    for blk in prange((planes + 7) // 8):
        p = blk * 8
        if p + 8 <= planes:
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero
            for q in range(p * hw, (p + 1) * hw):
                a0 += xf[q]
                a1 += xf[q + hw]
                a2 += xf[q + 2 * hw]
                a3 += xf[q + 3 * hw]
                a4 += xf[q + 4 * hw]
                a5 += xf[q + 5 * hw]
                a6 += xf[q + 6 * hw]
                a7 += xf[q + 7 * hw]
            yf[p] = _exact_quotient(a0, d)
            yf[p + 1] = _exact_quotient(a1, d)
            yf[p + 2] = _exact_quotient(a2, d)
            yf[p + 3] = _exact_quotient(a3, d)
            yf[p + 4] = _exact_quotient(a4, d)
            yf[p + 5] = _exact_quotient(a5, d)
            yf[p + 6] = _exact_quotient(a6, d)
            yf[p + 7] = _exact_quotient(a7, d)
        else:
            for t in range(p, planes):
                acc = zero
                for q in range(t * hw, (t + 1) * hw):
                    acc += xf[q]
                yf[t] = _exact_quotient(acc, d)


@kernel
def _avg_pool_tiles_bwd(grad_out, kh, kw, divisor, grad_in):  # pragma: no cover - compiled
    """_avg_pool_bwd for windows that tile grad_in: grad_out (N, C, H_out, W_out) IN;
    grad_in (N, C, H, W) OUT. Each cell of a window is written once with its share, a
    window row's first row at a time and copied to its others, and only the cells no
    window covers (the last rows and columns of an odd size) zeroed. 1 thread, float32
    2x2, to 128x32x14x14: 1.65 -> 0.46 ms, to 64x16x28x28: 1.66 -> 0.34 ms."""
    n, c, h_in, w_in = grad_in.shape
    ho, wo = grad_out.shape[2], grad_out.shape[3]
    g_planes = grad_out.reshape(n * c, ho, wo)
    planes = grad_in.reshape(n * c, h_in, w_in)
    zero = grad_in.dtype.type(0.0)
    d = grad_in.dtype.type(divisor)
    covered = wo * kw
    for t in prange(n * c):
        g_plane = g_planes[t]
        plane = planes[t]
        for oh in range(ho):
            g = g_plane[oh]
            first = plane[oh * kh]
            for ow in range(wo):
                share = _unsigned_zero(_exact_quotient(g[ow], d), zero)
                for j in range(kw):
                    first[ow * kw + j] = share
            first[covered:] = zero
            for i in range(1, kh):   # the window's other rows: copies of its first
                plane[oh * kh + i] = first
        plane[ho * kh:] = zero


@kernel
def _avg_pool_runs_bwd(grad_out, kh, divisor, grad_in):  # pragma: no cover - compiled
    """_avg_pool_tiles_bwd for tiling windows as wide as the plane (W == kW: a CNN's
    last 2x2 planes pooled to 1x1, window_shapes.is_plane_wide_window): grad_out (N, C, H_out,
    1) IN; grad_in (N, C, H, W) OUT. A window's cells are one run of kH W cells, each
    set to its share in one loop (the same share, bit for bit), and the rows no window
    covers zeroed; _avg_pool_tiles_bwd's row slices cost more than a 2x2 plane's work
    (1 thread, float32, to 1024x256x2x2: 3.3 -> 0.4 ns a value)."""
    n, c, h_in, w_in = grad_in.shape
    ho = grad_out.shape[2]
    g = grad_out.reshape(-1)
    gi = grad_in.reshape(-1)
    zero = grad_in.dtype.type(0.0)
    d = grad_in.dtype.type(divisor)
    run = np.uint64(kh * w_in)
    for t in prange(n * c):
        plane = np.uint64(t * h_in * w_in)
        for oh in range(ho):
            share = _unsigned_zero(_exact_quotient(g[np.uint64(t * ho + oh)], d), zero)
            at = plane + np.uint64(oh) * run
            for q in range(run):
                gi[at + q] = share
        for q in range(plane + np.uint64(ho) * run, plane + np.uint64(h_in * w_in)):
            gi[q] = zero


@_in_order_kernel
def _avg_pool_2x2_fwd(x, divisor, inverse, edge, corner, y):  # pragma: no cover - compiled
    """_avg_pool_tiles_fwd for 2x2 windows of stride 2 (window_shapes.is_2x2_pool): x (N,
    C, H, W) IN; y (N, C, H_out, W_out) OUT; divisor, edge, corner: the divisors of the
    windows inside x, of ceil mode's 2-cell windows past an odd H or W and of its corner
    window (divisor_override, else 4, 2, 1). One loop across an output row sums each
    window's 4 cells in order (upper pair, lower pair: _avg_pool_fwd's sums) and divides:
    vectorised across the windows (stride-2 loads), where _avg_pool_tiles_fwd passed
    over the row 4 times and then once more to divide. 1 thread, float32, CPU time,
    _avg_pool_tiles_fwd -> here: 16x32x28x28 0.23 -> 0.040 ms, 128x32x28x28 1.83 ->
    0.32 ms. The windows past the edge are summed after the row's loop. A window of
    -0s averages to +0, PyTorch's sum from 0 (nsz dropped the zero +): where 1 / divisor
    is exact (inverse, window_shapes.exact_reciprocal: the default 4) the mean is
    fma(sum, inverse, +0) (_mean_by_inverse: the same quotient, +0 for -0, no division;
    1 thread, float32, interleaved, 16x32x28x28 0.0558 -> 0.0566 ms, 128x32x28x28 0.339
    -> 0.335, where (sum + 0) / divisor cost 7%), else (sum + 0) / divisor
    (_unsigned_zero)."""
    n, c, h_in, w_in = x.shape
    ho, wo = y.shape[2], y.shape[3]
    hf, wf = min(ho, h_in // 2), min(wo, w_in // 2)   # the windows inside x
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    zero = x.dtype.type(0.0)
    d = x.dtype.type(divisor)
    inv = x.dtype.type(inverse)
    d2 = x.dtype.type(edge)
    d1 = x.dtype.type(corner)
    for t in prange(n * c):
        for oh in range(hf):
            top = (t * h_in + 2 * oh) * w_in
            out = (t * ho + oh) * wo
            if wo > wf:   # (ceil mode: the last window has the last column only)
                a = top + 2 * wf
                acc = zero + xf[np.uint64(a)]
                acc += xf[np.uint64(a + w_in)]
                yf[np.uint64(out + wf)] = _exact_quotient(_unsigned_zero(acc, zero), d2)
            for ow in range(wf):
                a = top + 2 * ow
                acc = zero + xf[np.uint64(a)]
                acc += xf[np.uint64(a + 1)]
                acc += xf[np.uint64(a + w_in)]
                acc += xf[np.uint64(a + w_in + 1)]
                yf[np.uint64(out + ow)] = (_mean_by_inverse(acc, inv, zero) if inverse > 0
                                           else _exact_quotient(_unsigned_zero(acc, zero), d))
        if ho > hf:       # (ceil mode: the last row of windows has the last input row)
            top = (t * h_in + 2 * hf) * w_in
            out = (t * ho + hf) * wo
            for ow in range(wf):
                acc = zero + xf[np.uint64(top + 2 * ow)]
                acc += xf[np.uint64(top + 2 * ow + 1)]
                yf[np.uint64(out + ow)] = _exact_quotient(_unsigned_zero(acc, zero), d2)
            if wo > wf:
                yf[np.uint64(out + wf)] = _exact_quotient(
                    _unsigned_zero(xf[np.uint64(top + 2 * wf)], zero), d1)


@kernel
def _avg_pool_2x2_bwd(grad_out, divisor, inverse, edge, corner, grad_in):  # pragma: no cover
    """_avg_pool_tiles_bwd for 2x2 windows of stride 2 (window_shapes.is_2x2_pool):
    grad_out (N, C, H_out, W_out) IN; grad_in (N, C, H, W) OUT; inverse: 1 / divisor
    where exact (window_shapes.exact_reciprocal; the same shares as a division), else
    0; edge, corner: _avg_pool_2x2_fwd's. A loop across an output row writes each
    window's share into its 2 upper cells, another into its 2 lower ones, then ceil
    mode's windows past an odd H or W write theirs, and the cells no window covers (an
    odd size's last row and column in floor mode) are zeroed.

    The loops run _LANES-multiple trip counts (junk windows past the row end): LLVM's
    vector loop takes 16 windows at a time and left shorter rows (14 windows at
    128x32x28x28) scalar, bound by 4 stores a window. The junk stores land in the next
    input row, which the next loop (or the next output row) rewrites after them, so
    only where the junk fits in that row, and never in a plane's last output row (the
    junk would reach the next plane, another thread's). 1 thread, float32, CPU time,
    _avg_pool_tiles_bwd -> here: to 16x32x28x28 0.176 -> 0.053 ms (0.115 with exact
    trip counts), to 128x32x28x28 1.43 -> 0.56 ms."""
    n, c, h_in, w_in = grad_in.shape
    ho, wo = grad_out.shape[2], grad_out.shape[3]
    hf, wf = min(ho, h_in // 2), min(wo, w_in // 2)   # the windows inside grad_in
    g = grad_out.reshape(-1)
    gi = grad_in.reshape(-1)
    zero = grad_in.dtype.type(0.0)
    d = grad_in.dtype.type(divisor)
    inv = grad_in.dtype.type(inverse)
    d2 = grad_in.dtype.type(edge)
    d1 = grad_in.dtype.type(corner)
    lanes = -(-wf // _LANES) * _LANES
    junk = 2 * (lanes - wf) <= w_in     # (the junk cells fit in the next row)
    for t in prange(n * c):
        for oh in range(hf):
            top = (t * h_in + 2 * oh) * w_in
            at = (t * ho + oh) * wo
            m = lanes if junk and oh < hf - 1 else wf
            # the upper cells, then the lower (over the upper's junk)
            for i in range(2):
                row = top + i * w_in
                for ow in range(m):
                    v = g[np.uint64(at + ow)]
                    share = v * inv if inverse > 0 else _exact_quotient(v, d)
                    gi[np.uint64(row + 2 * ow)] = share
                    gi[np.uint64(row + 2 * ow + 1)] = share
            if wo > wf:   # (ceil mode: the last window has the last column only)
                share = _exact_quotient(g[np.uint64(at + wf)], d2)
                gi[np.uint64(top + w_in - 1)] = share
                gi[np.uint64(top + 2 * w_in - 1)] = share
            for q in range(2 * wo, w_in):
                gi[np.uint64(top + q)] = zero
                gi[np.uint64(top + w_in + q)] = zero
        top = (t * h_in + 2 * hf) * w_in
        if ho > hf:       # (ceil mode: the last row of windows has the last input row)
            at = (t * ho + hf) * wo
            for ow in range(wf):
                share = _exact_quotient(g[np.uint64(at + ow)], d2)
                gi[np.uint64(top + 2 * ow)] = share
                gi[np.uint64(top + 2 * ow + 1)] = share
            if wo > wf:
                gi[np.uint64(top + w_in - 1)] = _exact_quotient(g[np.uint64(at + wf)], d1)
            for q in range(min(2 * wo, w_in), w_in):
                gi[np.uint64(top + q)] = zero
            top += w_in
        for q in range(top, (t + 1) * h_in * w_in):
            gi[np.uint64(q)] = zero

@helper
def _lane_divisors(h_in, w_in, ph, pw, count_include_pad, divisor, ho, wo, wq,
                   dv):  # pragma: no cover
    """dv[oh wq + ow] = the divisor of 3x3 stride-2 window (oh, ow) (_avg_count's), 1 in
    the junk lanes (ow = wo)."""
    for oh in range(ho):
        h0 = 2 * oh - ph
        ha, hb = max(h0, 0), min(h0 + 3, h_in)
        for ow in range(wo + 1):
            w0 = 2 * ow - pw
            wa, wb = max(w0, 0), min(w0 + 3, w_in)
            dv[oh * wq + ow] = 1 if ow == wo else _avg_count(
                h0, w0, ha, hb, wa, wb, 3, 3, h_in, w_in, ph, pw, count_include_pad, divisor)


@_in_order_kernel
def _avg_pool_3x3s2_fwd(x, ph, pw, count_include_pad, divisor, y):  # pragma: no cover
    """_avg_pool_fwd for 3x3 windows of stride 2 (window_shapes.is_3x3s2_pool): x (N, C,
    H, W) IN; y (N, C, H_out, W_out) OUT; ph, pw: the padding (0 or 1), ceil mode's
    windows past the edge allowed; count_include_pad, divisor: _avg_count's.

    _max_pool_3x3's stride-2 layout with a border of zeros: each plane split into the 4 stride
    phases of its padded plane (_split_phases), where tap (i, j) of every window lies
    at one offset from the window's lane; one loop over the plane's lanes sums each
    window's 9 taps in row-major order from 0 and divides by the lane's divisor
    (_lane_divisors, once a block), vectorised across the windows. The padded cells add
    zeros the general kernel skips: a sum from +0 is never -0 (_unsigned_zero: nsz
    dropped the zero +, and a window of -0s averaged to -0 where PyTorch's is +0), and
    x + 0 is x (inf and NaN too), so every window's sum is _avg_pool_fwd's, bit for bit.
    1 thread, float32, CPU time, pad 1, _avg_pool_fwd -> here: 32x64x16x16 1.05 ->
    0.20 ms, 16x32x28x28 0.79 -> 0.16 ms."""
    n, c, h_in, w_in = x.shape
    ho, wo = y.shape[2], y.shape[3]
    planes = n * c
    hq, wq = ho + 1, wo + 1
    size = hq * wq
    lanes = ho * wq
    rows = min(h_in, 2 * hq - ph)
    cols = min(w_in, 2 * wq - pw)
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    zero = x.dtype.type(0.0)
    blocks = min(planes, _POOL_BLOCKS)
    for blk in prange(blocks):
        pad = np.zeros(4 * size + wq + 1, x.dtype)
        mean = np.empty(lanes, x.dtype)
        dv = np.empty(lanes, x.dtype)
        _lane_divisors(h_in, w_in, ph, pw, count_include_pad, divisor, ho, wo, wq, dv)
        p01, p10, p11 = size, 2 * size, 3 * size
        for t in range(blk * planes // blocks, (blk + 1) * planes // blocks):
            _split_phases(xf, t * h_in * w_in, w_in, rows, cols, ph, pw, hq, wq, pad)
            for q in range(lanes):
                acc = zero + pad[np.uint64(q)]
                acc += pad[np.uint64(p01 + q)]
                acc += pad[np.uint64(q + 1)]
                acc += pad[np.uint64(p10 + q)]
                acc += pad[np.uint64(p11 + q)]
                acc += pad[np.uint64(p10 + q + 1)]
                acc += pad[np.uint64(q + wq)]
                acc += pad[np.uint64(p01 + q + wq)]
                acc += pad[np.uint64(q + wq + 1)]
                mean[np.uint64(q)] = _exact_quotient(_unsigned_zero(acc, zero), dv[np.uint64(q)])
            out = t * ho * wo
            for oh in range(ho):
                for ow in range(wo):
                    yf[np.uint64(out + oh * wo + ow)] = mean[np.uint64(oh * wq + ow)]


@kernel
def _avg_pool_3x3s2_bwd(grad_out, ph, pw, count_include_pad, divisor, grad_in):  # pragma: no cover
    """_avg_pool_bwd for 3x3 windows of stride 2 (window_shapes.is_3x3s2_pool): grad_out
    (N, C, H_out, W_out) IN; grad_in (N, C, H, W) OUT; the rest as _avg_pool_3x3s2_fwd.

    Each window's share (g / its divisor, a true division) goes to a lane of a scratch
    with a border of zeros (the junk lanes and a leading lane row zero); then each cell
    of the padded plane's 4 stride phases gathers the shares of the windows over it, in
    window order as _avg_pool_bwd's scatter adds them (phase (0, 0): the windows up-left,
    up, left, its own; (0, 1): up, own; (1, 0): left, own; (1, 1): own), from 0, one loop
    over a phase's cells each, vectorised; the input's cells are copied out of the phases
    (the rows and columns no window reaches zeroed). Zero shares added change no sum (a
    sum from +0 is never -0), so each cell is _avg_pool_bwd's, bit for bit. 1 thread,
    float32, CPU time, pad 1, _avg_pool_bwd -> here: to 32x64x16x16 0.91 -> 0.24 ms, to
    16x32x28x28 0.70 -> 0.18 ms."""
    n, c, h_in, w_in = grad_in.shape
    ho, wo = grad_out.shape[2], grad_out.shape[3]
    planes = n * c
    hq, wq = ho + 1, wo + 1
    size = hq * wq
    lanes = ho * wq
    base = wq + 1                       # lane q's share at share[base + q]
    rows = min(h_in, 2 * hq - ph)
    cols = min(w_in, 2 * wq - pw)
    g = grad_out.reshape(-1)
    gi = grad_in.reshape(-1)
    zero = grad_in.dtype.type(0.0)
    blocks = min(planes, _POOL_BLOCKS)
    for blk in prange(blocks):
        share = np.zeros(base + size, grad_in.dtype)
        pad = np.empty(4 * size, grad_in.dtype)
        dv = np.empty(lanes, grad_in.dtype)
        _lane_divisors(h_in, w_in, ph, pw, count_include_pad, divisor, ho, wo, wq, dv)
        for t in range(blk * planes // blocks, (blk + 1) * planes // blocks):
            at = t * ho * wo
            for oh in range(ho):
                for ow in range(wo):
                    q = oh * wq + ow
                    share[np.uint64(base + q)] = _unsigned_zero(_exact_quotient(
                        g[np.uint64(at + oh * wo + ow)], dv[np.uint64(q)]), zero)
            s = base - wq - 1
            for m in range(size):      # phase (0, 0)
                acc = zero + share[np.uint64(s + m)]
                acc += share[np.uint64(s + m + 1)]
                acc += share[np.uint64(s + m + wq)]
                acc += share[np.uint64(s + m + wq + 1)]
                pad[np.uint64(m)] = acc
            for m in range(size):      # phase (0, 1)
                acc = zero + share[np.uint64(base - wq + m)]
                acc += share[np.uint64(base + m)]
                pad[np.uint64(size + m)] = acc
            for m in range(size):      # phase (1, 0)
                acc = zero + share[np.uint64(base - 1 + m)]
                acc += share[np.uint64(base + m)]
                pad[np.uint64(2 * size + m)] = acc
            for m in range(size):      # phase (1, 1)
                pad[np.uint64(3 * size + m)] = zero + share[np.uint64(base + m)]
            dst = t * h_in * w_in
            for r in range(rows):
                rr = r + ph
                row = ((rr & 1) * 2 * hq + (rr >> 1)) * wq
                even = row + pw * size
                odd = row + (1 - pw) * size + pw
                o = dst + r * w_in
                for k in range(cols >> 1):
                    gi[np.uint64(o + 2 * k)] = pad[np.uint64(even + k)]
                    gi[np.uint64(o + 2 * k + 1)] = pad[np.uint64(odd + k)]
                if cols & 1:
                    gi[np.uint64(o + cols - 1)] = pad[np.uint64(even + (cols >> 1))]
                for k in range(cols, w_in):
                    gi[np.uint64(o + k)] = zero
            for q in range(dst + rows * w_in, dst + h_in * w_in):
                gi[np.uint64(q)] = zero


def max_pool2d_forward(x, kernel_size, stride, padding=(0, 0), out=None, indices=None,
                       ceil_mode=False, dilation=(1, 1)):
    """Max pooling with -inf padding. x: (N, C, H, W); out, indices: (N, C, H_out, W_out)
    or None; ceil_mode, dilation: PyTorch's. Returns (y, indices), indices the int64 flat
    h * W + w of each maximum."""
    shape = pool_out_shape(x.shape, kernel_size, stride, padding, ceil_mode, dilation)
    if out is None:
        out = np.empty(shape, dtype=x.dtype)
    if indices is None:
        indices = np.empty(shape, dtype=np.int64)
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    if _is_2x2_pool(x.shape, shape, kernel_size, stride, padding, dilation):
        _max_pool_2x2(x.size, x, out, indices)
    elif (is_3x3s2_pool(kernel_size, stride, padding, dilation)
          or is_3x3s1_pool(kernel_size, stride, padding, dilation)):
        _max_pool_3x3(x.size, x, sh, ph, pw, out, indices)
    else:
        _max_pool_fwd(x.size, x, kh, kw, sh, sw, ph, pw, dilation[0], dilation[1], out,
                      indices)
    return out, indices


def max_pool2d_backward(grad_out, indices, input_shape, grad_in=None):
    """grad_out, indices: (N, C, H_out, W_out); input_shape: (N, C, H, W).
    Returns grad_in of input_shape with each grad_out value added at its argmax."""
    n, c, h, w = input_shape
    if grad_in is None:
        grad_in = np.empty(tuple(input_shape), dtype=grad_out.dtype)
    p = grad_out.shape[2] * grad_out.shape[3]  # not -1: an empty batch has no size to infer
    bwd = _max_pool_bwd_small if is_small_plane(input_shape) else _max_pool_bwd
    bwd(grad_in.size, grad_out.reshape(n, c, p), indices.reshape(n, c, p),
        grad_in.reshape(n, c, h * w))
    return grad_in


def avg_pool2d_forward(x, kernel_size, stride, padding=(0, 0), count_include_pad=True,
                       out=None, ceil_mode=False, divisor_override=None):
    """Average pooling, zero padding. x: (N, C, H, W). Returns (N, C, H_out, W_out)."""
    if out is None:
        out = np.empty(pool_out_shape(x.shape, kernel_size, stride, padding, ceil_mode),
                       dtype=x.dtype)
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    if is_global_pool(x.shape, out.shape, kernel_size, padding):
        _avg_pool_planes_fwd(x.size, x, float(divisor_override or kh * kw), out)
        return out
    if _is_2x2_pool(x.shape, out.shape, kernel_size, stride, padding):
        divisor = float(divisor_override or 4)
        _avg_pool_2x2_fwd(x.size, x, divisor, exact_reciprocal(divisor, x.dtype),
                          float(divisor_override or 2), float(divisor_override or 1), out)
        return out
    if is_tiling_pool(x.shape, out.shape, kernel_size, stride, padding):
        _avg_pool_tiles_fwd(x.size, x, kh, kw, float(divisor_override or kh * kw), out)
        return out
    if is_3x3s2_pool(kernel_size, stride, padding):
        _avg_pool_3x3s2_fwd(x.size, x, ph, pw, bool(count_include_pad),
                            int(divisor_override or 0), out)
        return out
    _avg_pool_fwd(x.size, x, kh, kw, sh, sw, ph, pw, bool(count_include_pad),
                  int(divisor_override or 0), out)
    return out


def avg_pool2d_backward(grad_out, input_shape, kernel_size, stride, padding=(0, 0),
                        count_include_pad=True, grad_in=None, ceil_mode=False,
                        divisor_override=None):
    """grad_out: (N, C, H_out, W_out) (its shape gives the output size, so ceil_mode is
    not needed here); input_shape: (N, C, H, W). Returns grad_in."""
    if grad_in is None:
        grad_in = np.empty(tuple(input_shape), dtype=grad_out.dtype)
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    tiling = is_tiling_pool(grad_in.shape, grad_out.shape, kernel_size, stride, padding)
    if tiling and is_plane_wide_window(grad_in.shape, kernel_size):
        _avg_pool_runs_bwd(grad_in.size, grad_out, kh, float(divisor_override or kh * kw),
                           grad_in)
        return grad_in
    if _is_2x2_pool(grad_in.shape, grad_out.shape, kernel_size, stride, padding):
        divisor = float(divisor_override or 4)
        _avg_pool_2x2_bwd(grad_in.size, grad_out, divisor,
                          exact_reciprocal(divisor, grad_in.dtype),
                          float(divisor_override or 2), float(divisor_override or 1), grad_in)
        return grad_in
    if tiling:
        _avg_pool_tiles_bwd(grad_in.size, grad_out, kh, kw,
                            float(divisor_override or kh * kw), grad_in)
        return grad_in
    if is_3x3s2_pool(kernel_size, stride, padding):
        _avg_pool_3x3s2_bwd(grad_in.size, grad_out, ph, pw, bool(count_include_pad),
                            int(divisor_override or 0), grad_in)
        return grad_in
    _avg_pool_bwd(grad_in.size, grad_out, kh, kw, sh, sw, ph, pw, bool(count_include_pad),
                  int(divisor_override or 0), grad_in)
    return grad_in
