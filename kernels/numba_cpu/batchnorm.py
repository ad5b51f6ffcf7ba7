"""Batch normalisation, forward and backward, in two passes over memory each.

x is viewed as (N, C, L): L = 1 for (N, C) input, L = H * W for (N, C, H, W).
Training forward: pass 1 sums x and x**2 per channel (float64, shifted by the
channel's first value so the variance does not cancel), pass 2 writes
y = (x - mean) * invstd * weight + bias. Backward: pass 1 sums grad_out and
grad_out * x_hat, pass 2 writes grad_in. Eval mode is one pass each way.

Work is split by channel, so each channel's sums are taken serially by one thread in
a fixed order: no shared accumulators, results identical for any thread count.
For (N, C) input a prange iteration owns a block of adjacent channels and walks the
rows (row-major memory); for (N, C, L) it owns whole channels. In both, a block's
second pass finds its data still in cache.
"""
import math

import numpy as np
from numba import prange

from .config import helper, kernel

_BLOCK = 64  # channels per prange iteration for (N, C) input
_EMPTY = {np.dtype(np.float32): np.empty(0, np.float32),
          np.dtype(np.float64): np.empty(0, np.float64)}


@helper
def _statistics(j, count, s1, s2, first, training, mean_only, momentum, eps,
                running_mean, running_var, save_mean, save_invstd):
    """Channel j's mean and invstd from shifted sums (or the running statistics in
    eval mode), stored in save_*; running statistics updated when training."""
    dt = save_mean.dtype.type
    if training:
        m1 = s1 / count
        mean = first + m1
        running_mean[j] = running_mean[j] * dt(1.0 - momentum) + dt(momentum * mean)
    else:
        mean = float(running_mean[j])
    save_mean[j] = mean
    if not mean_only:
        if training:
            var = max(s2 / count - m1 * m1, 0.0)
            unbiased = var * count / max(count - 1, 1)
            running_var[j] = running_var[j] * dt(1.0 - momentum) + dt(momentum * unbiased)
        else:
            var = float(running_var[j])
        save_invstd[j] = 1.0 / math.sqrt(var + eps)


# ----------------------------------------------------------------- (N, C) input
@kernel
def _forward_columns(x, weight, bias, running_mean, running_var, training, mean_only,
                     momentum, eps, out, save_mean, save_invstd, block):
    # IN x (N, C), weight, bias (C,); INOUT running_mean, running_var (C,);
    # OUT out (N, C), save_mean, save_invstd (C,)
    # Rows are sliced to the block so inner loops start at 0: no wraparound checks,
    # and LLVM vectorizes them.
    n, c = x.shape
    sums = np.zeros((2, c))
    for b in prange((c + block - 1) // block):
        j0 = b * block
        j1 = min(c, j0 + block)
        m = j1 - j0
        s1 = sums[0, j0:j1]
        s2 = sums[1, j0:j1]
        if training and n > 0:
            first = x[0, j0:j1]
            for i in range(n):
                row = x[i, j0:j1]
                for j in range(m):
                    d = float(row[j]) - float(first[j])
                    s1[j] += d
                    s2[j] += d * d
        for j in range(j0, j1):
            first_j = float(x[0, j]) if n > 0 else 0.0
            _statistics(j, n, sums[0, j], sums[1, j], first_j, training, mean_only, momentum,
                        eps, running_mean, running_var, save_mean, save_invstd)
        mean = save_mean[j0:j1]
        beta = bias[j0:j1]
        if mean_only:
            for i in range(n):
                row = x[i, j0:j1]
                y = out[i, j0:j1]
                for j in range(m):
                    y[j] = row[j] - mean[j] + beta[j]
        else:
            invstd = save_invstd[j0:j1]
            gamma = weight[j0:j1]
            for i in range(n):
                row = x[i, j0:j1]
                y = out[i, j0:j1]
                for j in range(m):
                    y[j] = (row[j] - mean[j]) * (invstd[j] * gamma[j]) + beta[j]


@kernel
def _backward_columns(grad_out, x, weight, save_mean, save_invstd, training, mean_only,
                      grad_weight, grad_bias, accumulate, grad_in, block):
    # IN grad_out, x (N, C), weight, save_mean, save_invstd (C,);
    # INOUT grad_weight, grad_bias (C,) (when accumulate); OUT grad_in (N, C)
    n, c = x.shape
    dt = x.dtype.type
    inv_n = 1.0 / max(n, 1)
    sums = np.zeros((2, c))
    for b in prange((c + block - 1) // block):
        j0 = b * block
        j1 = min(c, j0 + block)
        m = j1 - j0
        sum_g = sums[0, j0:j1]
        sum_gx = sums[1, j0:j1]
        mean = save_mean[j0:j1]
        if mean_only:
            for i in range(n):
                go = grad_out[i, j0:j1]
                for j in range(m):
                    sum_g[j] += float(go[j])
        else:
            for i in range(n):
                go = grad_out[i, j0:j1]
                row = x[i, j0:j1]
                for j in range(m):
                    g = float(go[j])
                    sum_g[j] += g
                    sum_gx[j] += g * float(row[j] - mean[j])
        for j in range(j0, j1):
            if not mean_only:
                sums[1, j] *= float(save_invstd[j])  # now the sum of grad_out * x_hat
            if accumulate:
                grad_bias[j] += sums[0, j]
                if not mean_only:
                    grad_weight[j] += sums[1, j]
        if mean_only:
            for i in range(n):
                go = grad_out[i, j0:j1]
                gi = grad_in[i, j0:j1]
                for j in range(m):
                    gi[j] = go[j] - (dt(sum_g[j] * inv_n) if training else dt(0))
        else:
            invstd = save_invstd[j0:j1]
            gamma = weight[j0:j1]
            for i in range(n):
                go = grad_out[i, j0:j1]
                row = x[i, j0:j1]
                gi = grad_in[i, j0:j1]
                if training:
                    for j in range(m):
                        mean_g = dt(sum_g[j] * inv_n)
                        mean_gx = dt(sum_gx[j] * inv_n) * invstd[j]
                        gi[j] = (go[j] - mean_g - (row[j] - mean[j]) * mean_gx) * (
                            gamma[j] * invstd[j])
                else:
                    for j in range(m):
                        gi[j] = go[j] * (gamma[j] * invstd[j])


# -------------------------------------------------------------- (N, C, L) input
@kernel
def _forward_planes(x, weight, bias, running_mean, running_var, training, mean_only,
                    momentum, eps, out, save_mean, save_invstd):
    # IN x (N, C, L), weight, bias (C,); INOUT running_mean, running_var (C,);
    # OUT out (N, C, L), save_mean, save_invstd (C,)
    n, c, length = x.shape
    for j in prange(c):
        s1 = 0.0
        s2 = 0.0
        first = float(x[0, j, 0]) if n * length > 0 else 0.0
        if training:
            for i in range(n):
                plane = x[i, j]
                for k in range(length):
                    d = float(plane[k]) - first
                    s1 += d
                    s2 += d * d
        _statistics(j, n * length, s1, s2, first, training, mean_only, momentum, eps,
                    running_mean, running_var, save_mean, save_invstd)
        mean = save_mean[j]
        beta = bias[j]
        scale = x.dtype.type(1) if mean_only else save_invstd[j] * weight[j]
        for i in range(n):
            plane = x[i, j]
            y = out[i, j]
            for k in range(length):
                y[k] = (plane[k] - mean) * scale + beta


@kernel
def _backward_planes(grad_out, x, weight, save_mean, save_invstd, training, mean_only,
                     grad_weight, grad_bias, accumulate, grad_in):
    # IN grad_out, x (N, C, L), weight, save_mean, save_invstd (C,);
    # INOUT grad_weight, grad_bias (C,) (when accumulate); OUT grad_in (N, C, L)
    n, c, length = x.shape
    dt = x.dtype.type
    for j in prange(c):
        mean = save_mean[j]
        sum_g = 0.0
        sum_gx = 0.0
        for i in range(n):
            go = grad_out[i, j]
            plane = x[i, j]
            if mean_only:
                for k in range(length):
                    sum_g += float(go[k])
            else:
                for k in range(length):
                    g = float(go[k])
                    sum_g += g
                    sum_gx += g * float(plane[k] - mean)
        inv_count = 1.0 / max(n * length, 1)
        if mean_only:
            if accumulate:
                grad_bias[j] += sum_g
            shift = dt(sum_g * inv_count) if training else dt(0)
            for i in range(n):
                go = grad_out[i, j]
                gi = grad_in[i, j]
                for k in range(length):
                    gi[k] = go[k] - shift
        else:
            invstd = save_invstd[j]
            sum_gx *= float(invstd)
            if accumulate:
                grad_bias[j] += sum_g
                grad_weight[j] += sum_gx
            scale = weight[j] * invstd
            if training:
                mean_g = dt(sum_g * inv_count)
                mean_gx = dt(sum_gx * inv_count) * invstd
            else:
                mean_g = dt(0)
                mean_gx = dt(0)
            for i in range(n):
                go = grad_out[i, j]
                plane = x[i, j]
                gi = grad_in[i, j]
                for k in range(length):
                    gi[k] = (go[k] - mean_g - (plane[k] - mean) * mean_gx) * scale


def _planes(a):
    """(N, C, ...) -> (N, C, L) view."""
    return a.reshape(a.shape[0], a.shape[1], -1)


def batchnorm_forward(x, weight, bias, running_mean, running_var, training=True,
                      momentum=0.1, eps=1e-5, mean_only=False, out=None,
                      save_mean=None, save_invstd=None):
    """Batch normalisation over the batch (and spatial) axes, per channel.

    x: (N, C) or (N, C, H, W); weight, bias: (C,) (weight None when mean_only);
    running_mean, running_var: (C,), updated in place when training (running_var None
    when mean_only); out: like x or None; save_mean, save_invstd: (C,) or None.
    Returns (y, save_mean, save_invstd); save_invstd is None when mean_only.
    """
    c = x.shape[1]
    empty = _EMPTY[x.dtype]
    if out is None:
        out = np.empty_like(x)
    if save_mean is None:
        save_mean = np.empty(c, dtype=x.dtype)
    if save_invstd is None and not mean_only:
        save_invstd = np.empty(c, dtype=x.dtype)
    args = (weight if weight is not None else empty, bias,
            running_mean, running_var if running_var is not None else empty,
            bool(training), bool(mean_only), float(momentum), float(eps))
    stats = (save_mean, save_invstd if save_invstd is not None else empty)
    if x.ndim == 2:
        _forward_columns(x.size, x, *args, out, *stats, _BLOCK)
    else:
        _forward_planes(x.size, _planes(x), *args, _planes(out), *stats)
    return out, save_mean, (None if mean_only else save_invstd)


def batchnorm_backward(grad_out, x, weight, save_mean, save_invstd, training=True,
                       mean_only=False, grad_weight=None, grad_bias=None, grad_in=None):
    """Backward of ``batchnorm_forward``.

    grad_out, x: (N, C) or (N, C, H, W); weight: (C,) or None when mean_only;
    save_mean, save_invstd: (C,) from the forward (save_invstd None when mean_only);
    grad_weight, grad_bias: (C,) or None, accumulated in place; grad_in: like x or None.
    Returns grad_in.
    """
    empty = _EMPTY[x.dtype]
    if grad_in is None:
        grad_in = np.empty_like(x)
    # Either both parameter gradients are wanted or neither is; a missing one gets a
    # throwaway buffer so the kernel has a single accumulate flag.
    accumulate = grad_bias is not None or grad_weight is not None
    c = x.shape[1]
    if accumulate and grad_bias is None:
        grad_bias = np.zeros(c, dtype=x.dtype)
    if accumulate and grad_weight is None and not mean_only:
        grad_weight = np.zeros(c, dtype=x.dtype)
    args = (weight if weight is not None else empty, save_mean,
            save_invstd if save_invstd is not None else empty, bool(training), bool(mean_only),
            grad_weight if grad_weight is not None else empty,
            grad_bias if grad_bias is not None else empty, accumulate)
    if x.ndim == 2:
        _backward_columns(x.size, grad_out, x, *args, grad_in, _BLOCK)
    else:
        _backward_planes(x.size, _planes(grad_out), _planes(x), *args, _planes(grad_in))
    return grad_in
