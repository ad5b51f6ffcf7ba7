"""Convolution and pooling, NCHW, PyTorch's semantics (see kernels/reference/conv.py).

Convolution is an im2col kernel feeding the GEMM (bias fused into the GEMM epilogue),
then a kernel that lays the (N*H_out*W_out, C_out) product out as NCHW. Its backward
transposes grad_out to rows, runs two GEMMs (weight gradient accumulated in place,
column gradient), sums the bias gradient by columns and folds the columns back with
a gather kernel (col2im), so no atomics and a fixed summation order. Pooling runs one
thread per output element forward; average pooling's backward one per input element
(gather over the windows that contain it), max pooling's one per plane (scatter).

x: (N, C, H, W); weight: (C_out, C_in, kH, kW); NumPy or device arrays (``_common.Call``).
"""
import math

import numpy as np
from numba import cuda

from ..window_shapes import pool_out_shape
from . import config
from ._common import Call, dmax, dmin, reshaped, scratch
from .dense import column_sums_add
from .gemm import gemm
from .launch import jit_kernel


def _launch(kernel, n, *args):
    if n:
        kernel[config.blocks(n), config.THREADS](*args)


# ----------------------------------------------------------------------- kernels
@jit_kernel
def _im2col(x, kh, kw, sh, sw, ph, pw, ho_n, wo_n, cols):
    """cols[(n, ho, wo), (c, i, j)] = x[n, c, ho*sh - ph + i, wo*sw - pw + j] or 0."""
    _, _, h_n, w_n = x.shape
    k2 = cols.shape[1]
    for idx in range(cuda.grid(1), cols.size, cuda.gridsize(1)):
        r = idx // k2
        q = idx % k2
        n = r // (ho_n * wo_n)
        ho = (r // wo_n) % ho_n
        wo = r % wo_n
        c = q // (kh * kw)
        i = (q // kw) % kh
        j = q % kw
        h = ho * sh - ph + i
        w = wo * sw - pw + j
        if 0 <= h < h_n and 0 <= w < w_n:
            cols[r, q] = x[n, c, h, w]
        else:
            cols[r, q] = 0


@jit_kernel
def _col2im(grad_cols, kh, kw, sh, sw, ph, pw, ho_n, wo_n, grad_in):
    """grad_in[n, c, h, w] = sum of grad_cols entries read from (h, w) by im2col."""
    _, c_n, h_n, w_n = grad_in.shape
    for idx in range(cuda.grid(1), grad_in.size, cuda.gridsize(1)):
        n = idx // (c_n * h_n * w_n)
        c = (idx // (h_n * w_n)) % c_n
        h = (idx // w_n) % h_n
        w = idx % w_n
        acc = np.float64(0.0)
        for i in range(kh):
            hh = h + ph - i
            if hh < 0 or hh % sh != 0 or hh // sh >= ho_n:
                continue
            ho = hh // sh
            for j in range(kw):
                ww = w + pw - j
                if ww < 0 or ww % sw != 0 or ww // sw >= wo_n:
                    continue
                acc += grad_cols[(n * ho_n + ho) * wo_n + ww // sw, (c * kh + i) * kw + j]
        grad_in[n, c, h, w] = acc


@jit_kernel
def _rows_to_nchw(rows, out):
    """out[n, c, ho, wo] = rows[(n * H_out + ho) * W_out + wo, c]."""
    n_n, c_n, ho_n, wo_n = out.shape
    for idx in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        n = idx // (c_n * ho_n * wo_n)
        c = (idx // (ho_n * wo_n)) % c_n
        hw = idx % (ho_n * wo_n)
        out[n, c, hw // wo_n, hw % wo_n] = rows[n * ho_n * wo_n + hw, c]


@jit_kernel
def _nchw_to_rows(x, rows):
    """rows[(n * H + h) * W + w, c] = x[n, c, h, w]."""
    n_n, c_n, h_n, w_n = x.shape
    for idx in range(cuda.grid(1), rows.size, cuda.gridsize(1)):
        r = idx // c_n
        c = idx % c_n
        n = r // (h_n * w_n)
        hw = r % (h_n * w_n)
        rows[r, c] = x[n, c, hw // w_n, hw % w_n]


@jit_kernel
def _max_pool(x, kh, kw, sh, sw, ph, pw, dh, dw, out, indices):
    """Window maximum (first on ties; a NaN wins, the last one in the window, as
    PyTorch's kernels take every NaN they meet) and its flat index h * W + w; the
    window's taps dh (dw) apart."""
    _, c_n, h_n, w_n = x.shape
    _, _, ho_n, wo_n = out.shape
    for idx in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        n = idx // (c_n * ho_n * wo_n)
        c = (idx // (ho_n * wo_n)) % c_n
        ho = (idx // wo_n) % ho_n
        wo = idx % wo_n
        best = x.dtype.type(-math.inf)
        # PyTorch's index for a window of -inf: its first taps at or past row and
        # column 0, also where those fall past the input (a dilated window wholly in
        # the padding, whose index is then outside the plane)
        h0 = ho * sh - ph
        w0 = wo * sw - pw
        first_h = h0 if h0 >= 0 else h0 + (dh - 1 - h0) // dh * dh
        first_w = w0 if w0 >= 0 else w0 + (dw - 1 - w0) // dw * dw
        best_at = first_h * w_n + first_w
        for i in range(kh):
            h = h0 + i * dh
            if h < 0 or h >= h_n:
                continue
            for j in range(kw):
                w = w0 + j * dw
                if w < 0 or w >= w_n:
                    continue
                v = x[n, c, h, w]
                if v > best or v != v:
                    best = v
                    best_at = h * w_n + w
        out[n, c, ho, wo] = best
        indices[n, c, ho, wo] = best_at


@jit_kernel
def _max_pool_backward(grad_out, indices, grad_in):
    """One thread per (n, c) plane, in a fixed order over the plane's outputs: each
    grad_out value is added at its argmax. grad_out, indices: (P, H_out * W_out);
    grad_in: (P, H * W), zeroed here first. An index outside the plane (PyTorch's for a
    window wholly in the padding, whose -inf output no input moves) adds nothing."""
    planes, outs = grad_out.shape
    cells = grad_in.shape[1]
    for p in range(cuda.grid(1), planes, cuda.gridsize(1)):
        for k in range(cells):
            grad_in[p, k] = 0
        for k in range(outs):
            i = indices[p, k]
            if 0 <= i < cells:
                grad_in[p, i] += grad_out[p, k]


@cuda.jit(device=True)
def _avg_divisor(ho, wo, h_n, w_n, kh, kw, sh, sw, ph, pw, count_include_pad, divisor):
    """kernels/reference/conv.py's rule: divisor when > 0; else the window's cells inside
    the padded input (count_include_pad) or inside the input."""
    if divisor > 0:
        return divisor
    h0 = ho * sh - ph
    w0 = wo * sw - pw
    if count_include_pad:
        return (dmin(h0 + kh, h_n + ph) - h0) * (dmin(w0 + kw, w_n + pw) - w0)
    rows = dmin(h0 + kh, h_n) - dmax(h0, 0)
    cols = dmin(w0 + kw, w_n) - dmax(w0, 0)
    return rows * cols


@jit_kernel
def _avg_pool(x, kh, kw, sh, sw, ph, pw, count_include_pad, divisor, out):
    """Window sums and divisions in x's type, as PyTorch's GPU kernel."""
    f = x.dtype.type
    _, c_n, h_n, w_n = x.shape
    _, _, ho_n, wo_n = out.shape
    for idx in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        n = idx // (c_n * ho_n * wo_n)
        c = (idx // (ho_n * wo_n)) % c_n
        ho = (idx // wo_n) % ho_n
        wo = idx % wo_n
        acc = f(0)
        for i in range(kh):
            h = ho * sh - ph + i
            if h < 0 or h >= h_n:
                continue
            for j in range(kw):
                w = wo * sw - pw + j
                if 0 <= w < w_n:
                    acc += x[n, c, h, w]
        out[n, c, ho, wo] = acc / f(_avg_divisor(ho, wo, h_n, w_n, kh, kw, sh, sw, ph, pw,
                                                 count_include_pad, divisor))


@jit_kernel
def _avg_pool_backward(grad_out, kh, kw, sh, sw, ph, pw, count_include_pad, divisor,
                       grad_in):
    """Each input cell's sum of grad_out / divisor over the windows holding it, in the
    gradient's type."""
    f = grad_in.dtype.type
    _, c_n, h_n, w_n = grad_in.shape
    _, _, ho_n, wo_n = grad_out.shape
    for idx in range(cuda.grid(1), grad_in.size, cuda.gridsize(1)):
        n = idx // (c_n * h_n * w_n)
        c = (idx // (h_n * w_n)) % c_n
        h = (idx // w_n) % h_n
        w = idx % w_n
        ho_lo = dmax(0, (h + ph - kh + sh) // sh)
        ho_hi = dmin(ho_n - 1, (h + ph) // sh)
        wo_lo = dmax(0, (w + pw - kw + sw) // sw)
        wo_hi = dmin(wo_n - 1, (w + pw) // sw)
        acc = f(0)
        for ho in range(ho_lo, ho_hi + 1):
            for wo in range(wo_lo, wo_hi + 1):
                acc += grad_out[n, c, ho, wo] / f(_avg_divisor(
                    ho, wo, h_n, w_n, kh, kw, sh, sw, ph, pw, count_include_pad, divisor))
        grad_in[n, c, h, w] = acc


# --------------------------------------------------------------------- launchers
def _cols(dx, kernel_size, stride, padding, out_hw):
    n, c = dx.shape[:2]
    kh, kw = kernel_size
    cols = scratch("cols", (n * out_hw[0] * out_hw[1], c * kh * kw), dx.dtype)
    _launch(_im2col, cols.size, dx, kh, kw, stride[0], stride[1], padding[0], padding[1],
            out_hw[0], out_hw[1], cols)
    return cols


def conv2d_forward(x, weight, bias=None, stride=(1, 1), padding=(0, 0), out=None):
    """2-D cross-correlation, zero padding.

    x: (N, C_in, H, W); weight: (C_out, C_in, kH, kW); bias: (C_out,) or None;
    out: (N, C_out, H_out, W_out) or None. Returns y: (N, C_out, H_out, W_out).
    """
    n = x.shape[0]
    c_out, _, kh, kw = weight.shape
    ho, wo = pool_out_shape(x.shape, (kh, kw), stride, padding)[2:]
    call = Call(x, weight, bias, out)
    dx, dw, db = call.arg(x), call.arg(weight), call.arg(bias)
    dy = call.out(out, (n, c_out, ho, wo), x.dtype)
    if dy.size:
        cols = _cols(dx, (kh, kw), stride, padding, (ho, wo))
        rows = scratch("rows", (n * ho * wo, c_out), x.dtype)
        gemm(cols, reshaped(dw, (c_out, dw.size // c_out)), rows, trans_b=True, bias=db)
        _launch(_rows_to_nchw, dy.size, rows, dy)
    return call.done(dy, out)


def conv2d_backward(grad_out, x, weight, stride=(1, 1), padding=(0, 0), grad_weight=None,
                    grad_bias=None, grad_in=None, need_grad_in=True):
    """Backward of conv2d_forward.

    grad_out: (N, C_out, H_out, W_out); x, grad_in: (N, C_in, H, W); weight and
    grad_weight: (C_out, C_in, kH, kW); grad_bias: (C_out,); gradients accumulated in
    place. Returns grad_in, or None if not need_grad_in.
    """
    c_out, c_in, kh, kw = weight.shape
    ho, wo = grad_out.shape[2:]
    k2 = c_in * kh * kw   # (not weight.size // c_out: C_out may be 0)
    call = Call(grad_out, x, weight, grad_weight, grad_bias, grad_in)
    dgo, dx, dw = call.arg(grad_out), call.arg(x), call.arg(weight)
    rows = scratch("rows", (grad_out.shape[0] * ho * wo, c_out), x.dtype)
    _launch(_nchw_to_rows, rows.size, dgo, rows)
    if grad_weight is not None:
        cols = _cols(dx, (kh, kw), stride, padding, (ho, wo))
        gemm(rows, cols, reshaped(call.inout(grad_weight), (c_out, k2)), trans_a=True,
             accumulate=True)
    if grad_bias is not None:
        column_sums_add(rows, call.inout(grad_bias))
    if not need_grad_in:
        call.sync()
        return None
    din = call.out(grad_in, x.shape, x.dtype)
    grad_cols = scratch("grad_cols", (rows.shape[0], k2), x.dtype)
    gemm(rows, reshaped(dw, (c_out, k2)), grad_cols)
    _launch(_col2im, din.size, grad_cols, kh, kw, stride[0], stride[1], padding[0],
            padding[1], ho, wo, din)
    return call.done(din, grad_in)


def max_pool2d_forward(x, kernel_size, stride, padding=(0, 0), out=None, indices=None,
                       ceil_mode=False, dilation=(1, 1)):
    """Max pooling with -inf padding. x: (N, C, H, W); out, indices: (N, C, H_out, W_out)
    or None; ceil_mode, dilation: PyTorch's. Returns (y, indices) with indices the int64
    flat h * W + w of each maximum."""
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    shape = pool_out_shape(tuple(x.shape), kernel_size, stride, padding, ceil_mode, dilation)
    call = Call(x, out, indices)
    dx = call.arg(x)
    dy = call.out(out, shape, x.dtype)
    di = call.out(indices, shape, np.int64)
    _launch(_max_pool, dy.size, dx, kh, kw, sh, sw, ph, pw, dilation[0], dilation[1], dy, di)
    call.sync()
    return call.result(dy, out), call.result(di, indices)


def max_pool2d_backward(grad_out, indices, input_shape, grad_in=None):
    """grad_out, indices: (N, C, H_out, W_out); input_shape: (N, C, H, W).
    Returns grad_in of input_shape, each grad_out value added at its argmax.

    The op's signature carries no window geometry, so this scatters rather than
    gathers: one thread per plane keeps the sums in a fixed order (deterministic, no
    atomics), parallel over N * C planes."""
    n, c, h, w = input_shape
    call = Call(grad_out, indices, grad_in)
    dg, di = call.arg(grad_out), call.arg(indices)
    din = call.out(grad_in, (n, c, h, w), grad_out.dtype)
    planes = n * c
    if planes:
        _launch(_max_pool_backward, planes, reshaped(dg, (planes, dg.size // planes)),
                reshaped(di, (planes, di.size // planes)), reshaped(din, (planes, h * w)))
    return call.done(din, grad_in)


def avg_pool2d_forward(x, kernel_size, stride, padding=(0, 0), count_include_pad=True,
                       out=None, ceil_mode=False, divisor_override=None):
    """Average pooling with zero padding. x: (N, C, H, W); out: (N, C, H_out, W_out) or
    None. Returns (N, C, H_out, W_out)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    shape = pool_out_shape(tuple(x.shape), kernel_size, stride, padding, ceil_mode)
    call = Call(x, out)
    dx = call.arg(x)
    dy = call.out(out, shape, x.dtype)
    _launch(_avg_pool, dy.size, dx, kh, kw, sh, sw, ph, pw, bool(count_include_pad),
            int(divisor_override or 0), dy)
    return call.done(dy, out)


def avg_pool2d_backward(grad_out, input_shape, kernel_size, stride, padding=(0, 0),
                        count_include_pad=True, grad_in=None, ceil_mode=False,
                        divisor_override=None):
    """grad_out: (N, C, H_out, W_out); input_shape: (N, C, H, W). Returns grad_in of
    input_shape, each window's grad_out / divisor spread over its cells."""
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    call = Call(grad_out, grad_in)
    dg = call.arg(grad_out)
    din = call.out(grad_in, tuple(input_shape), grad_out.dtype)
    _launch(_avg_pool_backward, din.size, dg, kh, kw, sh, sw, ph, pw,
            bool(count_include_pad), int(divisor_override or 0), din)
    return call.done(din, grad_in)
