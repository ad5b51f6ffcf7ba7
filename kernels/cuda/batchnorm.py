"""Batch normalisation, forward and backward, one block per channel.

Each block owns a channel (grid-stride over channels): its threads stride over the
channel's N * H * W values, reduce in shared memory (float64), and the same block then
writes the normalised output (forward: two reads of x for mean and variance, one for
the output; backward: one read of grad_out and x for both sums, one for grad_in).

x: (N, C) or (N, C, H, W), viewed as (N, C, S); per-channel vectors: (C,).
NumPy or device arrays (``_common.Call``).
"""
import math

import numpy as np
from numba import cuda

from . import config
from ._common import Call
from ._reduce import block_sum, cached_factory
from .gemm import dummy


@cached_factory
def _kernels(threads):
    @cuda.jit
    def forward(x, weight, bias, running_mean, running_var, training, momentum, eps,
                mean_only, out, save_mean, save_invstd):
        sh = cuda.shared.array(threads, np.float64)
        n, channels, s = x.shape
        count = n * s
        t = cuda.threadIdx.x
        for c in range(cuda.blockIdx.x, channels, cuda.gridDim.x):
            if training:
                acc = 0.0
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
                shift = bias[c] - mean
                for k in range(t, count, threads):
                    out[k // s, c, k % s] = x[k // s, c, k % s] + shift
                continue
            if training:
                acc = 0.0
                for k in range(t, count, threads):
                    d = x[k // s, c, k % s] - mean
                    acc += d * d
                var = block_sum(sh, acc) / count
            else:
                var = running_var[c] * 1.0
            invstd = 1.0 / math.sqrt(var + eps)
            if t == 0:
                save_mean[c] = mean
                save_invstd[c] = invstd
                if training:
                    unbiased = var * count / max(count - 1, 1)
                    running_mean[c] = (1 - momentum) * running_mean[c] + momentum * mean
                    running_var[c] = (1 - momentum) * running_var[c] + momentum * unbiased
            scale = invstd * weight[c]
            shift = bias[c]
            for k in range(t, count, threads):
                out[k // s, c, k % s] = (x[k // s, c, k % s] - mean) * scale + shift

    @cuda.jit
    def backward(g, x, weight, save_mean, save_invstd, training, mean_only, grad_weight,
                 has_grad_weight, grad_bias, has_grad_bias, out):
        sh = cuda.shared.array(threads, np.float64)
        n, channels, s = x.shape
        count = n * s
        t = cuda.threadIdx.x
        for c in range(cuda.blockIdx.x, channels, cuda.gridDim.x):
            mean = save_mean[c] * 1.0
            invstd = 1.0 if mean_only else save_invstd[c] * 1.0
            acc_g = 0.0
            acc_gx = 0.0
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
            mean_g = sum_g / count if training else 0.0
            mean_gx = sum_gx / count if training else 0.0
            for k in range(t, count, threads):
                x_hat = (x[k // s, c, k % s] - mean) * invstd
                out[k // s, c, k % s] = (g[k // s, c, k % s] - mean_g - x_hat * mean_gx) * scale

    return forward, backward


def _as3d(d):
    n, c = d.shape[:2]
    return d.reshape(n, c, d.size // max(n * c, 1))


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
        forward, _ = _kernels(config.THREADS)
        forward[config.blocks(c, 1), config.THREADS](
            _as3d(dx), _or_dummy(dw, dt), db, drm, _or_dummy(drv, dt), training,
            float(momentum), float(eps), mean_only, _as3d(dy), dmean, _or_dummy(dinv, dt))
    call.sync()
    return (call.result(dy, out), call.result(dmean, save_mean),
            call.result(dinv, save_invstd))


def batchnorm_backward(grad_out, x, weight, save_mean, save_invstd, training=True,
                       mean_only=False, grad_weight=None, grad_bias=None, grad_in=None):
    """Gradient w.r.t. x (returned, same shape as x) and grad_weight, grad_bias: (C,)
    accumulated in place. grad_out, x: (N, C) or (N, C, H, W); weight, save_mean,
    save_invstd: (C,) from the forward (weight and save_invstd None when mean_only)."""
    dt = x.dtype
    c = x.shape[1]
    call = Call(grad_out, x, weight, save_mean, save_invstd, grad_weight, grad_bias, grad_in)
    dg, dx, dw = call.arg(grad_out), call.arg(x), call.arg(weight)
    dmean, dinv = call.arg(save_mean), call.arg(save_invstd)
    dgw, dgb = call.inout(grad_weight), call.inout(grad_bias)
    din = call.out(grad_in, x.shape, dt)
    if dx.size:
        _, backward = _kernels(config.THREADS)
        backward[config.blocks(c, 1), config.THREADS](
            _as3d(dg), _as3d(dx), _or_dummy(dw, dt), dmean, _or_dummy(dinv, dt), training,
            mean_only, _or_dummy(dgw, dt), dgw is not None, _or_dummy(dgb, dt),
            dgb is not None, _as3d(din))
    return call.done(din, grad_in)
