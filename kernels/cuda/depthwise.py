"""Depthwise convolution (Conv2d with groups = C_in), NCHW, PyTorch's semantics (see
kernels/reference/depthwise.py).

No GEMM: a depthwise layer does kH * kW multiply-adds per output. The forward runs one
thread per output element; the input gradient one thread per input element, gathering
from the outputs whose windows hold it (no atomics, a fixed order); the weight and bias
gradients one block per (output channel, tap) sum, its threads striding over the batch
and the plane and reducing in shared memory in float64. A padding cell counts as a zero
multiplied, as in PyTorch (an infinite tap or gradient meeting it gives NaN).

x: (N, C_in, H, W); weight: (C_out, 1, kH, kW), output channel c * M + m reading input
channel c; NumPy or device arrays (``_common.Call``).
"""
import numpy as np
from numba import cuda

from ..window_shapes import pool_out_shape
from . import config
from ._common import Call
from ._reduce import block_sum, cached_factory
from .gemm import dummy
from .launch import jit_kernel


@jit_kernel
def _forward(x, weight, bias, has_bias, sh, sw, ph, pw, out):
    """out[n, co] = bias[co] + the taps of weight[co] over input channel co // M."""
    f = out.dtype.type
    _, c_out, ho_n, wo_n = out.shape
    _, c_in, h_n, w_n = x.shape
    kh = weight.shape[2]
    kw = weight.shape[3]
    m = c_out // c_in
    for idx in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        n = idx // (c_out * ho_n * wo_n)
        co = (idx // (ho_n * wo_n)) % c_out
        ho = (idx // wo_n) % ho_n
        wo = idx % wo_n
        c = co // m
        acc = bias[co] if has_bias else f(0)
        for i in range(kh):
            h = ho * sh - ph + i
            for j in range(kw):
                w = wo * sw - pw + j
                # a padding cell is a zero multiplied too (an inf tap gives NaN, as PyTorch)
                value = x[n, c, h, w] if 0 <= h < h_n and 0 <= w < w_n else f(0)
                acc += weight[co, 0, i, j] * value
        out[n, co, ho, wo] = acc


@jit_kernel
def _input_grad(grad_out, weight, sh, sw, ph, pw, grad_in):
    """grad_in[n, c, h, w] = the sum over c's M kernels and their taps of weight * the
    grad_out value whose window read (h, w) through that tap."""
    f = grad_in.dtype.type
    _, c_in, h_n, w_n = grad_in.shape
    _, c_out, ho_n, wo_n = grad_out.shape
    kh = weight.shape[2]
    kw = weight.shape[3]
    m = c_out // c_in
    for idx in range(cuda.grid(1), grad_in.size, cuda.gridsize(1)):
        n = idx // (c_in * h_n * w_n)
        c = (idx // (h_n * w_n)) % c_in
        h = (idx // w_n) % h_n
        w = idx % w_n
        acc = f(0)
        for co in range(c * m, c * m + m):
            for i in range(kh):
                t = h + ph - i
                if t >= 0 and t % sh == 0 and t // sh < ho_n:
                    for j in range(kw):
                        u = w + pw - j
                        if u >= 0 and u % sw == 0 and u // sw < wo_n:
                            acc += weight[co, 0, i, j] * grad_out[n, co, t // sh, u // sw]
        grad_in[n, c, h, w] = acc


@cached_factory
def _param_grads(threads):
    @jit_kernel(threads=threads)
    def param_grads(grad_out, x, kh, kw, sh, sw, ph, pw, want_weight, want_bias,
                    grad_weight, grad_bias):
        """grad_weight: (C_out, 1, kH, kW), grad_bias: (C_out,) (one-element stand-ins
        when not wanted). Block item q < C_out * (kH kW + 1): q // (kH kW + 1) the
        output channel, the rest its tap (kH kW: the bias), each summed over N * H_out *
        W_out in float64 and added to grad_weight / grad_bias."""
        sh_mem = cuda.shared.array(threads, np.float64)
        f = x.dtype.type
        n_n, c_out, ho_n, wo_n = grad_out.shape
        _, c_in, h_n, w_n = x.shape
        taps = kh * kw
        m = c_out // c_in
        count = n_n * ho_n * wo_n
        t = cuda.threadIdx.x
        for q in range(cuda.blockIdx.x, c_out * (taps + 1), cuda.gridDim.x):
            co = q // (taps + 1)
            tap = q % (taps + 1)
            is_bias = tap == taps
            if (is_bias and not want_bias) or (not is_bias and not want_weight):
                continue  # (the same for the whole block: no thread skips a syncthreads)
            c = co // m
            i = tap // kw
            j = tap % kw
            acc = np.float64(0.0)
            for k in range(t, count, threads):
                n = k // (ho_n * wo_n)
                ho = (k // wo_n) % ho_n
                wo = k % wo_n
                g = grad_out[n, co, ho, wo]
                if is_bias:
                    acc += g
                else:
                    h = ho * sh - ph + i
                    w = wo * sw - pw + j
                    # times a padding cell's zero too (an inf gradient gives NaN)
                    value = x[n, c, h, w] if 0 <= h < h_n and 0 <= w < w_n else f(0)
                    acc += g * value
            total = block_sum(sh_mem, acc)
            if t == 0:
                if is_bias:
                    grad_bias[co] += total
                else:
                    grad_weight[co, 0, i, j] += total
    return param_grads


def depthwise_conv2d_forward(x, weight, bias=None, stride=(1, 1), padding=(0, 0), out=None):
    """Depthwise 2-D cross-correlation, zero padding.

    x: (N, C_in, H, W); weight: (C_out, 1, kH, kW), C_out = M * C_in; bias: (C_out,) or
    None; out: (N, C_out, H_out, W_out) or None. Returns y: (N, C_out, H_out, W_out).
    """
    c_out, _, kh, kw = weight.shape
    shape = (x.shape[0], c_out) + pool_out_shape(tuple(x.shape), (kh, kw), stride,
                                                 padding)[2:]
    call = Call(x, weight, bias, out)
    dx, dw = call.arg(x), call.arg(weight)
    db = call.arg(bias) if bias is not None else dummy(x.dtype)
    dy = call.out(out, shape, x.dtype)
    if dy.size:
        _forward[config.blocks(dy.size), config.THREADS](
            dx, dw, db, bias is not None, stride[0], stride[1], padding[0], padding[1], dy)
    return call.done(dy, out)


def depthwise_conv2d_backward(grad_out, x, weight, stride=(1, 1), padding=(0, 0),
                              grad_weight=None, grad_bias=None, grad_in=None,
                              need_grad_in=True):
    """Backward of depthwise_conv2d_forward.

    grad_out: (N, C_out, H_out, W_out); x, grad_in: (N, C_in, H, W); weight and
    grad_weight: (C_out, 1, kH, kW); grad_bias: (C_out,); gradients accumulated in
    place. Returns grad_in, or None if not need_grad_in.
    """
    (sh, sw), (ph, pw) = stride, padding
    c_out, _, kh, kw = weight.shape
    call = Call(grad_out, x, weight, grad_weight, grad_bias, grad_in)
    dg, dx, dw = call.arg(grad_out), call.arg(x), call.arg(weight)
    want_weight, want_bias = grad_weight is not None, grad_bias is not None
    if (want_weight or want_bias) and c_out:
        dgw = (call.inout(grad_weight) if want_weight
               else dummy(x.dtype).reshape(1, 1, 1, 1))
        dgb = call.inout(grad_bias) if want_bias else dummy(x.dtype)
        items = c_out * (kh * kw + 1)
        config.check()  # block_sum halves the block: THREADS a power of two
        threads = config.THREADS
        _param_grads(threads)[max(1, min(config.MAX_BLOCKS, items)), threads](
            dg, dx, kh, kw, sh, sw, ph, pw, want_weight, want_bias, dgw, dgb)
    if not need_grad_in:
        call.sync()
        return None
    din = call.out(grad_in, tuple(x.shape), x.dtype)
    if din.size:
        _input_grad[config.blocks(din.size), config.THREADS](dg, dw, sh, sw, ph, pw, din)
    return call.done(din, grad_in)
