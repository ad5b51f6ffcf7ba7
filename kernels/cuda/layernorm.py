"""Layer normalisation forward and backward over (N, D) rows, the softmax row layout:
a group of ``config.ROW_LANES`` threads per row, its sums in float64 (``group_sum``).
The weight and bias gradients are the dense layer's deterministic column sums
(``column_sums_add``) of g * xhat, which the backward row kernel writes to a scratch
buffer, and of g.

x: (N, D); weight, bias: (D,) or None; NumPy or device arrays (``_common.Call``).
"""

import numba
import numpy as np
from numba import cuda

from . import config
from ._common import Call, drsqrt
from ._common import scratch as temporary
from ._reduce import cached_factory, group_sum
from .dense import column_sums_add
from .launch import jit_kernel


@cached_factory
def _layer_norm_kernels(threads, lanes, dtype):
    """(forward, backward) for blocks of `threads` threads, `lanes` per row."""
    groups = threads // lanes
    cast = numba.from_dtype(np.dtype(dtype))

    @jit_kernel(threads=threads)
    def forward(x, weight, bias, has_weight, has_bias, eps, out, save_mean, save_invstd):
        """out = (x - mean) * invstd * weight + bias per row; x, out: (N, D)."""
        sh = cuda.shared.array((groups, lanes), np.float64)
        n, d = x.shape
        lane = cuda.threadIdx.x % lanes
        for first in range(cuda.blockIdx.x * groups, n, cuda.gridDim.x * groups):
            row = first + cuda.threadIdx.x // lanes
            valid = row < n
            s = np.float64(0.0)
            if valid:
                for j in range(lane, d, lanes):
                    s += x[row, j]
            mean = cast(group_sum(sh, s) / d)
            q = np.float64(0.0)
            if valid:
                for j in range(lane, d, lanes):
                    v = np.float64(x[row, j] - mean)
                    q += v * v
            inv = cast(drsqrt(group_sum(sh, q) / d + eps))  # inf: eps 0, a constant row
            if valid:
                if lane == 0:
                    save_mean[row] = mean
                    save_invstd[row] = inv
                for j in range(lane, d, lanes):
                    v = (x[row, j] - mean) * inv
                    if has_weight:
                        v = v * weight[j]
                    if has_bias:
                        v = v + bias[j]
                    out[row, j] = v

    @jit_kernel(threads=threads)
    def backward(g, x, weight, has_weight, save_mean, save_invstd, grad_in, gxhat,
                 want_gxhat):
        """grad_in = invstd * (gx - mean(gx) - xhat * mean(gx * xhat)) per row, gx =
        g * weight; gxhat = g * xhat when want_gxhat (for the weight gradient)."""
        sh = cuda.shared.array((groups, lanes), np.float64)
        n, d = x.shape
        lane = cuda.threadIdx.x % lanes
        for first in range(cuda.blockIdx.x * groups, n, cuda.gridDim.x * groups):
            row = first + cuda.threadIdx.x // lanes
            valid = row < n
            a = np.float64(0.0)
            b = np.float64(0.0)
            mean = cast(0)
            inv = cast(0)
            if valid:
                mean = save_mean[row]
                inv = save_invstd[row]
                for j in range(lane, d, lanes):
                    xh = (x[row, j] - mean) * inv
                    gx = g[row, j] * weight[j] if has_weight else g[row, j]
                    a += gx
                    b += gx * xh
                    if want_gxhat:
                        gxhat[row, j] = g[row, j] * xh
            ma = cast(group_sum(sh, a) / d)
            mb = cast(group_sum(sh, b) / d)
            if valid:
                for j in range(lane, d, lanes):
                    xh = (x[row, j] - mean) * inv
                    gx = g[row, j] * weight[j] if has_weight else g[row, j]
                    grad_in[row, j] = inv * (gx - ma - xh * mb)

    return forward, backward


def _kernels(dtype, rows):
    lanes, groups = config.row_groups()
    forward, backward = _layer_norm_kernels(config.THREADS, lanes, np.dtype(dtype))
    return forward, backward, config.blocks(rows, groups), config.THREADS


def layer_norm_forward(x, weight=None, bias=None, eps=1e-5, out=None, save_mean=None,
                       save_invstd=None):
    """Layer normalisation of each row. x, out: (N, D); weight, bias: (D,) or None;
    save_mean, save_invstd: (N,) or None. Returns (y, save_mean, save_invstd)."""
    call = Call(x, weight, bias, out, save_mean, save_invstd)
    dx, dw, db = call.arg(x), call.arg(weight), call.arg(bias)
    n = x.shape[0]
    dout = call.out(out, x.shape, x.dtype)
    dmean = call.out(save_mean, (n,), x.dtype)
    dinv = call.out(save_invstd, (n,), x.dtype)
    if n:   # (also for D = 0: the rows' statistics are then NaN, never left unwritten)
        forward, _, blocks, threads = _kernels(x.dtype, n)
        # an absent weight or bias: a placeholder of their rank and dtype (dmean), never
        # read; x's rank would not compile (weight[j] a row: numba types both branches)
        forward[blocks, threads](dx, dmean if dw is None else dw, dmean if db is None else db,
                                 dw is not None, db is not None, float(eps), dout, dmean, dinv)
    call.sync()
    return (call.result(dout, out), call.result(dmean, save_mean),
            call.result(dinv, save_invstd))


def layer_norm_backward(grad_out, x, weight, save_mean, save_invstd, grad_weight=None,
                        grad_bias=None, grad_in=None):
    """Backward of layer_norm_forward; accumulates grad_weight, grad_bias (D,) and
    returns grad_in (N, D)."""
    call = Call(grad_out, x, weight, save_mean, save_invstd, grad_weight, grad_bias, grad_in)
    dg, dx, dw = call.arg(grad_out), call.arg(x), call.arg(weight)
    dmean, dinv = call.arg(save_mean), call.arg(save_invstd)
    dgi = call.out(grad_in, x.shape, x.dtype)
    if dx.size:
        want = grad_weight is not None
        gxhat = temporary("layer_norm_gxhat", x.shape if want else (1, 1), x.dtype)
        _, backward, blocks, threads = _kernels(x.dtype, x.shape[0])
        backward[blocks, threads](dg, dx, dmean if dw is None else dw, dw is not None, dmean,
                                  dinv, dgi, gxhat, want)
        if want:
            column_sums_add(gxhat, call.inout(grad_weight))
        if grad_bias is not None:
            column_sums_add(dg, call.inout(grad_bias))
    return call.done(dgi, grad_in)
