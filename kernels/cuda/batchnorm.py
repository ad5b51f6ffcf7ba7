"""Batch normalisation, forward and backward, one block per channel.

Each block (config.BN_THREADS threads) owns a channel (grid-stride over channels): its
threads stride over the channel's N * H * W values, reduce in shared memory (float64),
and the same block then writes the normalised output (forward: two reads of x for mean
and variance, one for the output; backward: one read of grad_out and x for both sums,
one for grad_in).

A 2-D input (N, C) has its channels contiguous, so a block per channel would read
with a stride of C; there a block owns WIDTH2D neighbouring channels instead
(threadIdx.x the channel, threadIdx.y striding over rows: every warp reads whole
32-byte row segments) and reduces over threadIdx.y in shared memory. Its forward
takes the mean and variance from one read (float64 sums of x - x[0] and their
squares), and every row loop keeps four loads in flight per thread.

Both forwards write y = (x - mean) * scale + bias (scale = invstd * weight, 1 when
mean_only) in training and when mean_only, as the reference and the CPU backends,
and PyTorch's eval form x * scale + (bias - mean * scale) in eval; all in float64,
rounded once to x's type. (PyTorch's CPU kernel folds a contiguous training input the
eval way too, with FMAs; its CUDA kernel and its CPU kernel for other layouts do not.)

x: (N, C) or (N, C, H, W), viewed as (N, C, S); per-channel vectors: (C,).
NumPy or device arrays (``_common.Call``).
"""
import math

import numpy as np
from numba import cuda

from . import config
from ._common import Call, copy_into, dmax, drsqrt, reshaped, to_host
from ._reduce import block_sum, cached_factory, column_sum
from .gemm import dummy
from .launch import jit_kernel


@cached_factory
def _kernels(threads):
    @jit_kernel(threads=threads)
    def forward(x, weight, bias, running_mean, running_var, training, momentum, eps,
                mean_only, out, save_mean, save_invstd):
        sh = cuda.shared.array(threads, np.float64)
        n, channels, s = x.shape
        count = n * s
        t = cuda.threadIdx.x
        for c in range(cuda.blockIdx.x, channels, cuda.gridDim.x):
            if training:
                acc = np.float64(0.0)
                for k in range(t, count, threads):
                    acc += x[k // s, c, k % s]
                mean = block_sum(sh, acc) / count
            else:
                mean = running_mean[c] * 1.0
            if mean_only:
                if t == 0:
                    save_mean[c] = mean
                    if training:
                        running_mean[c] = (1 - momentum) * running_mean[c] + momentum * mean
                # (x - mean) + bias, the CPU backends' and the reference's order
                shift = bias[c] * 1.0
                for k in range(t, count, threads):
                    out[k // s, c, k % s] = (x[k // s, c, k % s] - mean) + shift
                continue
            if training:
                acc = np.float64(0.0)
                for k in range(t, count, threads):
                    d = x[k // s, c, k % s] - mean
                    acc += d * d
                var = block_sum(sh, acc) / count
            else:
                var = running_var[c] * 1.0
            # PyTorch's: with eps 0 a constant channel's invstd is 0 (y = bias)
            zero_var = training and var == 0.0 and eps == 0.0
            invstd = 0.0 if zero_var else drsqrt(var + eps)  # eval: inf for var + eps 0
            if t == 0:
                save_mean[c] = mean
                save_invstd[c] = invstd
                if training:
                    unbiased = var * count / dmax(count - 1, 1)
                    running_mean[c] = (1 - momentum) * running_mean[c] + momentum * mean
                    running_var[c] = (1 - momentum) * running_var[c] + momentum * unbiased
            scale = invstd * weight[c]
            shift = bias[c] * 1.0
            if not training:
                # PyTorch's eval form x * scale + (bias - mean * scale), as the (N, C)
                # kernel's: where var + eps is 0 its inf scale gives PyTorch's inf/NaN
                # per element, which (x - mean) * inf + bias does not
                shift -= mean * scale
                mean = 0.0
            for k in range(t, count, threads):
                out[k // s, c, k % s] = (x[k // s, c, k % s] - mean) * scale + shift

    @jit_kernel(threads=threads)
    def backward(g, x, weight, save_mean, save_invstd, training, mean_only, grad_weight,
                 has_grad_weight, grad_bias, has_grad_bias, out):
        sh = cuda.shared.array(threads, np.float64)
        n, channels, s = x.shape
        count = n * s
        t = cuda.threadIdx.x
        for c in range(cuda.blockIdx.x, channels, cuda.gridDim.x):
            mean = save_mean[c] * 1.0
            invstd = 1.0 if mean_only else save_invstd[c] * 1.0
            acc_g = np.float64(0.0)
            acc_gx = np.float64(0.0)
            for k in range(t, count, threads):
                gv = g[k // s, c, k % s]
                acc_g += gv
                acc_gx += gv * (x[k // s, c, k % s] - mean) * invstd
            sum_g = block_sum(sh, acc_g)
            sum_gx = 0.0 if mean_only else block_sum(sh, acc_gx)
            if t == 0:
                if has_grad_bias:
                    grad_bias[c] += sum_g
                if has_grad_weight and not mean_only:
                    grad_weight[c] += sum_gx
            if mean_only:
                sub = sum_g / count if training else 0.0
                for k in range(t, count, threads):
                    out[k // s, c, k % s] = g[k // s, c, k % s] - sub
                continue
            scale = weight[c] * invstd
            if not training:   # x unread: a non-finite x gives no 0 * inf = NaN
                for k in range(t, count, threads):
                    out[k // s, c, k % s] = g[k // s, c, k % s] * scale
                continue
            mean_g = sum_g / count
            mean_gx = sum_gx / count
            for k in range(t, count, threads):
                x_hat = (x[k // s, c, k % s] - mean) * invstd
                out[k // s, c, k % s] = (g[k // s, c, k % s] - mean_g - x_hat * mean_gx) * scale

    return forward, backward


# Channels per block of the (N, C) kernels. A warp then reads 32 / WIDTH2D rows of
# WIDTH2D floats (whole 32-byte sectors), and C / WIDTH2D blocks fill the GPU: with 32
# channels a block, BatchNorm1d(1024) ran on 32 of the H200's 132 multiprocessors.
WIDTH2D = 8


def _shape2d(threads):
    """(rows, channels) of a block for the 2-D kernels."""
    width = min(WIDTH2D, threads)
    return threads // width, width


# The (N, C) kernels are bound by loads in flight: BatchNorm1d(1024) has only 128
# channel groups, so each block is config.BN_THREADS threads (1024: 128 rows of 8
# channels) and every row loop reads UNROLL rows before using any (4 independent loads
# per thread). With 256-thread blocks and one load at a time the H200 ran
# 65536x1024 forward+backward at 13% of its copy bandwidth.

@cached_factory
def _kernels2d(threads):
    rows, width = _shape2d(threads)

    @jit_kernel(threads=threads)
    def forward(x, weight, bias, running_mean, running_var, training, momentum, eps,
                mean_only, out, save_mean, save_invstd):
        """x, out: (N, C), N >= 1. Training: one read of x for the sums of x - x[0] and
        their squares (float64, shifted by the channel's first value so the variance
        does not cancel), one more for the output."""
        sh = cuda.shared.array((rows, width), np.float64)
        n, channels = x.shape
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        step = 4 * rows
        for c0 in range(cuda.blockIdx.x * width, channels, cuda.gridDim.x * width):
            c = c0 + tx
            valid = c < channels
            mean = 0.0
            var = 0.0
            if training:
                first = x[0, c] * 1.0 if valid else 0.0
                if not math.isfinite(first):  # (inf - inf: an infinite mean NaN)
                    first = 0.0
                s1 = np.float64(0.0)
                s2 = np.float64(0.0)
                if valid:
                    i = ty
                    while i + 3 * rows < n:
                        d0 = x[i, c] - first
                        d1 = x[i + rows, c] - first
                        d2 = x[i + 2 * rows, c] - first
                        d3 = x[i + 3 * rows, c] - first
                        s1 += (d0 + d1) + (d2 + d3)
                        s2 += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
                        i += step
                    while i < n:
                        d0 = x[i, c] - first
                        s1 += d0
                        s2 += d0 * d0
                        i += rows
                m1 = column_sum(sh, s1) / n
                mean = first + m1
                if not mean_only:
                    var = dmax(column_sum(sh, s2) / n - m1 * m1, 0.0)
            elif valid:
                mean = running_mean[c] * 1.0
                if not mean_only:
                    var = running_var[c] * 1.0
            if not valid:
                continue
            # PyTorch's: with eps 0 a constant channel's invstd is 0 (y = bias)
            zero_var = training and var == 0.0 and eps == 0.0
            invstd = 0.0 if zero_var else drsqrt(var + eps)  # eval: inf for var + eps 0
            if ty == 0:
                save_mean[c] = mean
                if training:
                    running_mean[c] = (1 - momentum) * running_mean[c] + momentum * mean
                if not mean_only:
                    save_invstd[c] = invstd
                    if training:
                        unbiased = var * n / dmax(n - 1, 1)
                        running_var[c] = (1 - momentum) * running_var[c] + momentum * unbiased
            scale = 1.0 if mean_only else invstd * weight[c]
            shift = bias[c] * 1.0
            if not training and not mean_only:
                # PyTorch's eval form x * scale + (bias - mean * scale), as the (N, C, L)
                # kernel's: where var + eps is 0 its inf scale gives PyTorch's inf/NaN
                shift -= mean * scale
                mean = 0.0
            # training and mean_only: (x - mean) * scale + bias, the (N, C, L) kernel's,
            # the CPU backends' and PyTorch's CUDA kernel's form. Folded as x * scale +
            # (bias - mean * scale), an infinite weight gave NaN where x and -mean have
            # one sign (not +-inf), x * scale overflowed where (x - mean) * scale does
            # not, and where |mean| >> std the fold's rounding reached float64 outputs
            # (x = 2**27 + k / 4: 4e-9 off)
            i = ty
            while i + 3 * rows < n:
                v0 = x[i, c]
                v1 = x[i + rows, c]
                v2 = x[i + 2 * rows, c]
                v3 = x[i + 3 * rows, c]
                out[i, c] = (v0 - mean) * scale + shift
                out[i + rows, c] = (v1 - mean) * scale + shift
                out[i + 2 * rows, c] = (v2 - mean) * scale + shift
                out[i + 3 * rows, c] = (v3 - mean) * scale + shift
                i += step
            while i < n:
                out[i, c] = (x[i, c] - mean) * scale + shift
                i += rows

    @jit_kernel(threads=threads)
    def backward(g, x, weight, save_mean, save_invstd, training, mean_only, grad_weight,
                 has_grad_weight, grad_bias, has_grad_bias, out):
        """g, x, out: (N, C), N >= 1: one read of g and x for both sums, one for out."""
        sh = cuda.shared.array((rows, width), np.float64)
        n, channels = x.shape
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        step = 4 * rows
        for c0 in range(cuda.blockIdx.x * width, channels, cuda.gridDim.x * width):
            c = c0 + tx
            valid = c < channels
            mean = 0.0
            invstd = 1.0
            if valid:
                mean = save_mean[c] * 1.0
                if not mean_only:
                    invstd = save_invstd[c] * 1.0
            acc_g = np.float64(0.0)
            acc_gx = np.float64(0.0)
            if valid:
                i = ty
                while i + 3 * rows < n:
                    g0 = g[i, c]
                    g1 = g[i + rows, c]
                    g2 = g[i + 2 * rows, c]
                    g3 = g[i + 3 * rows, c]
                    x0 = x[i, c]
                    x1 = x[i + rows, c]
                    x2 = x[i + 2 * rows, c]
                    x3 = x[i + 3 * rows, c]
                    acc_g += (g0 + g1) + (g2 + g3)
                    acc_gx += ((g0 * (x0 - mean) + g1 * (x1 - mean))
                               + (g2 * (x2 - mean) + g3 * (x3 - mean)))
                    i += step
                while i < n:
                    gv = g[i, c]
                    acc_g += gv
                    acc_gx += gv * (x[i, c] - mean)
                    i += rows
            sum_g = column_sum(sh, acc_g)
            sum_gx = 0.0 if mean_only else column_sum(sh, acc_gx) * invstd
            if not valid:
                continue
            if ty == 0:
                if has_grad_bias:
                    grad_bias[c] += sum_g
                if has_grad_weight and not mean_only:
                    grad_weight[c] += sum_gx
            a = 1.0 if mean_only else weight[c] * invstd
            mean_g = sum_g / n
            i = ty
            if mean_only or not training:   # x unread (no 0 * inf = NaN where x is inf)
                d = -mean_g if training else 0.0
                while i < n:
                    out[i, c] = a * g[i, c] + d
                    i += rows
                continue
            # out = (g - mean(g) - x_hat mean(g x_hat)) * weight * invstd, PyTorch's form
            # (and the (N, C, L) kernel's): folded into a * g + b * x + d, an infinite g
            # or weight made every row of its channel NaN where PyTorch has infinities
            k = sum_gx * invstd / n
            while i + 3 * rows < n:
                g0 = g[i, c]
                g1 = g[i + rows, c]
                g2 = g[i + 2 * rows, c]
                g3 = g[i + 3 * rows, c]
                x0 = x[i, c]
                x1 = x[i + rows, c]
                x2 = x[i + 2 * rows, c]
                x3 = x[i + 3 * rows, c]
                out[i, c] = (g0 - mean_g - (x0 - mean) * k) * a
                out[i + rows, c] = (g1 - mean_g - (x1 - mean) * k) * a
                out[i + 2 * rows, c] = (g2 - mean_g - (x2 - mean) * k) * a
                out[i + 3 * rows, c] = (g3 - mean_g - (x3 - mean) * k) * a
                i += step
            while i < n:
                out[i, c] = (g[i, c] - mean_g - (x[i, c] - mean) * k) * a
                i += rows

    return forward, backward


def _launch(which, x, *args):
    """Run the forward (which=0) or backward (1) kernel suited to x's layout.

    args: the kernel's arguments with every (N, C[, H, W]) array given as is."""
    c = x.shape[1]
    config.check()
    threads = config.BN_THREADS
    if x.ndim == 2:
        rows, width = _shape2d(threads)
        kernel = _kernels2d(threads)[which]
        blocks = max(1, min(config.MAX_BLOCKS, (c + width - 1) // width))
        kernel[blocks, (width, rows)](*args)
    else:
        kernel = _kernels(threads)[which]
        args = [_as3d(a) if getattr(a, "ndim", 0) == x.ndim else a for a in args]
        kernel[config.blocks(c, 1), threads](*args)


def _as3d(d):
    n, c = d.shape[:2]
    return reshaped(d, (n, c, d.size // max(n * c, 1)))


def _or_dummy(d, dtype):
    return d if d is not None else dummy(dtype)


def batchnorm_forward(x, weight, bias, running_mean, running_var, training=True,
                      momentum=0.1, eps=1e-5, mean_only=False, out=None,
                      save_mean=None, save_invstd=None):
    """y = (x - mean) * invstd * weight + bias, or y = x - mean + bias when mean_only.

    x, out: (N, C) or (N, C, H, W); weight, bias, running_mean, running_var, save_mean,
    save_invstd: (C,) (weight, running_var and save_invstd None when mean_only);
    running statistics updated in place when training. Returns (y, save_mean, save_invstd).
    """
    dt = x.dtype
    c = x.shape[1]
    call = Call(x, weight, bias, running_mean, running_var, out, save_mean, save_invstd)
    dx, dw, db = call.arg(x), call.arg(weight), call.arg(bias)
    drm, drv = call.inout(running_mean), call.inout(running_var)
    dy = call.out(out, x.shape, dt)
    dmean = call.out(save_mean, (c,), dt)
    dinv = None if mean_only else call.out(save_invstd, (c,), dt)
    if dx.size:
        _launch(0, dx, dx, _or_dummy(dw, dt), db, drm, _or_dummy(drv, dt), training,
                float(momentum), float(eps), mean_only, dy, dmean, _or_dummy(dinv, dt))
    elif not training and c:   # no values: the saved statistics are the running ones
        copy_into(dmean, drm)
        if dinv is not None:
            with np.errstate(divide="ignore"):
                copy_into(dinv, 1.0 / np.sqrt(to_host(drv).astype(np.float64) + eps))
    call.sync()
    return (call.result(dy, out), call.result(dmean, save_mean),
            call.result(dinv, save_invstd))


def batchnorm_backward(grad_out, x, weight, save_mean, save_invstd, training=True,
                       mean_only=False, grad_weight=None, grad_bias=None, grad_in=None):
    """Gradient w.r.t. x (returned, same shape as x) and grad_weight, grad_bias: (C,)
    accumulated in place. grad_out, x: (N, C) or (N, C, H, W); weight, save_mean,
    save_invstd: (C,) from the forward (weight and save_invstd None when mean_only)."""
    dt = x.dtype
    call = Call(grad_out, x, weight, save_mean, save_invstd, grad_weight, grad_bias, grad_in)
    dg, dx, dw = call.arg(grad_out), call.arg(x), call.arg(weight)
    dmean, dinv = call.arg(save_mean), call.arg(save_invstd)
    dgw, dgb = call.inout(grad_weight), call.inout(grad_bias)
    din = call.out(grad_in, x.shape, dt)
    if dx.size:
        _launch(1, dx, dg, dx, _or_dummy(dw, dt), dmean, _or_dummy(dinv, dt), training,
                mean_only, _or_dummy(dgw, dt), dgw is not None, _or_dummy(dgb, dt),
                dgb is not None, din)
    return call.done(din, grad_in)
