"""Losses with their gradients: softmax-cross-entropy in one kernel (a group of
config.ROW_LANES threads per row, two reads of it: an online max and sum of
exponentials, then loss and gradient), MSE, BCE and BCE on logits as grid-stride
passes writing per-thread partial sums.

The loss comes back as a Python float: the per-block (softmax-CE) or per-thread
(MSE, BCE) partial sums, at most config.MAX_BLOCKS or blocks * threads float64 values,
are copied to the host and summed there in a fixed order (the one device-to-host copy
of a training step besides metrics).
"""
import math

import numba
import numpy as np
from numba import cuda

from ...validation import check_labels
from . import config
from ._common import Call, dlog, dmax, flat, scratch, to_host
from ._reduce import cached_factory, group_sum, row_max_sumexp
from .launch import jit_kernel


@cuda.jit(device=True)
def _ce_term(v, m, log_sum, j, label, soft, probs, row, one, t_sum):
    """(softmax * sum(target) - target, -target * log softmax) of logit v = logits[row, j]
    (t_sum is the row's sum of probabilities, 1 for labels)."""
    log_p = v - m - log_sum
    p = math.exp(log_p)
    part = np.float64(0.0)
    if soft:
        target = probs[row, j]
        part = -(target * log_p)
        p = p * t_sum - target
    elif j == label:
        part = -log_p
        p -= one
    return p, part


@cached_factory
def _cross_entropy_kernel(threads, lanes, dtype):
    groups = threads // lanes
    cast = numba.from_dtype(np.dtype(dtype))  # a cast in device code

    @jit_kernel(threads=threads)
    def kernel(logits, labels, probs, soft, grad, block_loss):
        """logits, grad: (N, C); labels: (N,) int64 when not soft, else probs: (N, C).
        block_loss: (2 gridDim.x,) float64: [b] the sum over block b's rows of
        -sum(target * log softmax), in a fixed order; [gridDim.x + b] how many of its
        rows have a label outside [0, C) (such a row adds no loss term). A group of
        `lanes` threads per row and two reads of it: max and sum of exponentials
        together (``row_max_sumexp``), then loss and gradient; exp and log in the
        logits' type, sums in float64, four loads in flight per lane."""
        sh = cuda.shared.array((groups, lanes), np.float64)
        bad = cuda.shared.array(groups, np.float64)
        n, c = logits.shape
        inv_n = cast(1.0 / n)
        one = cast(1.0)
        step = 4 * lanes
        rows_loss = 0.0  # this group's rows, the same in each of its lanes
        bad_rows = 0.0   # this group's rows with a label out of range
        for first in range(cuda.blockIdx.x * groups, n, cuda.gridDim.x * groups):
            row = first + cuda.threadIdx.x // lanes
            valid = row < n
            label = labels[row] if valid and not soft else -1
            if valid and not soft and (label < 0 or label >= c):
                bad_rows += 1.0
            m, s = row_max_sumexp(sh, logits, row, valid, cast(-math.inf))
            m = cast(m)
            log_sum = cast(dlog(s)) if valid else one  # -inf: a row of -inf
            t_sum = one
            if soft:  # PyTorch's gradient also holds for rows that do not sum to 1
                ts = np.float64(0.0)
                if valid:
                    for j in range(cuda.threadIdx.x % lanes, c, lanes):
                        ts += probs[row, j]
                t_sum = cast(group_sum(sh, ts))
            part = np.float64(0.0)
            if valid:
                j = cuda.threadIdx.x % lanes
                while j + 3 * lanes < c:
                    v0 = logits[row, j]
                    v1 = logits[row, j + lanes]
                    v2 = logits[row, j + 2 * lanes]
                    v3 = logits[row, j + 3 * lanes]
                    p0, q0 = _ce_term(v0, m, log_sum, j, label, soft, probs, row, one, t_sum)
                    p1, q1 = _ce_term(v1, m, log_sum, j + lanes, label, soft, probs, row, one,
                                      t_sum)
                    p2, q2 = _ce_term(v2, m, log_sum, j + 2 * lanes, label, soft, probs, row,
                                      one, t_sum)
                    p3, q3 = _ce_term(v3, m, log_sum, j + 3 * lanes, label, soft, probs, row,
                                      one, t_sum)
                    grad[row, j] = p0 * inv_n
                    grad[row, j + lanes] = p1 * inv_n
                    grad[row, j + 2 * lanes] = p2 * inv_n
                    grad[row, j + 3 * lanes] = p3 * inv_n
                    part += (q0 + q1) + (q2 + q3)
                    j += step
                while j < c:
                    p0, q0 = _ce_term(logits[row, j], m, log_sum, j, label, soft, probs, row,
                                      one, t_sum)
                    grad[row, j] = p0 * inv_n
                    part += q0
                    j += lanes
            part = group_sum(sh, part)
            if valid:
                rows_loss += part
        # the block's total: group g's sum in sh[g, 0], added in order by thread 0
        if cuda.threadIdx.x % lanes == 0:
            sh[cuda.threadIdx.x // lanes, 0] = rows_loss
            bad[cuda.threadIdx.x // lanes] = bad_rows
        cuda.syncthreads()
        if cuda.threadIdx.x == 0:
            total = 0.0
            bad_total = 0.0
            for g in range(groups):
                total += sh[g, 0]
                bad_total += bad[g]
            block_loss[cuda.blockIdx.x] = total
            block_loss[cuda.gridDim.x + cuda.blockIdx.x] = bad_total

    return kernel


@jit_kernel
def _mse(pred, target, scale, grad, partial):
    """grad = scale * (pred - target); partial[thread] = its sum of squared differences."""
    i0 = cuda.grid(1)
    s = np.float64(0.0)
    for i in range(i0, pred.size, cuda.gridsize(1)):
        d = pred[i] - target[i]
        s += d * d
        grad[i] = d * scale
    partial[i0] = s


_BCE_EPSILON = float(np.float32(1e-12))  # PyTorch's floor of p (1 - p), a float32 1e-12


@jit_kernel
def _bce(pred, target, inv_size, grad, partial):
    """grad = (p - t) / max(p (1 - p), 1e-12) / size; partial: per-thread -log-likelihood,
    logs clamped at -100 as PyTorch does; the elementwise terms in pred's type."""
    f = pred.dtype.type
    zero, one, floor, lowest = f(0), f(1), f(_BCE_EPSILON), f(-100)
    i0 = cuda.grid(1)
    s = np.float64(0.0)
    for i in range(i0, pred.size, cuda.gridsize(1)):
        p = pred[i]
        t = target[i]
        # (a NaN p takes neither log: it stays NaN through the clamp, the loss NaN)
        log_p = math.log(p) if p > zero else (f(-math.inf) if p <= zero else p)
        log_1mp = math.log1p(-p) if p < one else (f(-math.inf) if p >= one else p)
        log_p = dmax(log_p, lowest)
        log_1mp = dmax(log_1mp, lowest)
        s -= t * log_p + (one - t) * log_1mp
        grad[i] = (p - t) / dmax(p * (one - p), floor) * inv_size
    partial[i0] = s


@jit_kernel
def _bce_logits(logits, target, inv_size, grad, partial):
    """grad = (sigmoid(x) - t) / size; partial: per-thread sum of
    (1 - t) x - min(x, 0) + log1p(exp(-|x|)) (PyTorch's (1 - t) x - log sigmoid(x)),
    finite for any finite logit; the elementwise terms in the logits' type."""
    zero, one = logits.dtype.type(0), logits.dtype.type(1)
    i0 = cuda.grid(1)
    s = np.float64(0.0)
    for i in range(i0, logits.size, cuda.gridsize(1)):
        x = logits[i]
        t = target[i]
        e = math.exp(-abs(x))  # in (0, 1]
        r = one / (one + e)
        sig = r if x >= zero else e * r
        s += (one - t) * x - (x if x < zero else zero) + math.log1p(e)
        grad[i] = (sig - t) * inv_size
    partial[i0] = s


@jit_kernel
def _smooth_l1(pred, target, inv_size, beta, grad, partial):
    """grad = (d / beta where |d| < beta, else sign(d)) / size; partial: per-thread sum
    of 0.5 d^2 / beta or |d| - beta / 2 (|d| at beta = 0); elementwise in pred's type."""
    zero, half = pred.dtype.type(0), pred.dtype.type(0.5)
    i0 = cuda.grid(1)
    s = np.float64(0.0)
    for i in range(i0, pred.size, cuda.gridsize(1)):
        d = pred[i] - target[i]
        ad = abs(d)
        sign = inv_size if d > zero else (-inv_size if d < zero else zero * inv_size)
        if beta == zero or ad >= beta:  # NaN: the quadratic side, NaN as PyTorch (beta > 0)
            s += ad - half * beta
            grad[i] = sign
        else:
            s += half * d * d / beta
            grad[i] = d / beta * inv_size
    partial[i0] = s


def _host_sum(d):
    return float(to_host(d).sum(dtype=np.float64))


def softmax_cross_entropy(logits, target, grad=None):
    """Mean cross-entropy of softmax(logits) and its gradient, one kernel.

    logits: (N, C); target: (N,) int64 labels or (N, C) probabilities; grad: (N, C) or None.
    Returns (loss: float, grad = (softmax(logits) - onehot(target)) / N; for
    probabilities (softmax(logits) * target.sum(1) - target) / N). Labels outside [0, C)
    raise fastnn.validation's LabelsOutOfRange (a ValueError), found by the kernel.
    """
    n = logits.shape[0]
    call = Call(logits, target, grad)
    dl, dt = call.arg(logits), call.arg(target)
    dgrad = call.out(grad, logits.shape, logits.dtype)
    if logits.size == 0:
        return 0.0, call.done(dgrad, grad)
    soft = dt.ndim == 2
    labels = dt if not soft else scratch("no_labels", (1,), np.int64)
    probs = dt if soft else dl
    lanes, groups = config.row_groups()
    blocks = config.blocks(n, groups)
    block_loss = scratch("block_loss", (2 * blocks,), np.float64)
    kernel = _cross_entropy_kernel(config.THREADS, lanes, dl.dtype)
    kernel[blocks, config.THREADS](dl, labels, probs, soft, dgrad, block_loss)
    sums = to_host(block_loss)  # the losses and the label check in one copy
    if sums[blocks:].any():  # raises its LabelsOutOfRange
        check_labels("softmax_cross_entropy", to_host(dt), n, logits.shape[1])
    loss = float(sums[:blocks].sum(dtype=np.float64)) / max(n, 1)
    return loss, call.done(dgrad, grad)


def _elementwise_loss(kernel, pred, target, grad, scale, *params):
    call = Call(pred, target, grad)
    dp, dt = call.arg(pred), call.arg(target)
    dgrad = call.out(grad, pred.shape, pred.dtype)
    size = pred.size
    if size == 0:
        return 0.0, call.done(dgrad, grad)
    blocks = config.blocks(size)
    partial = scratch("loss_partial", (blocks * config.THREADS,), np.float64)
    kernel[blocks, config.THREADS](flat(dp), flat(dt), pred.dtype.type(scale),
                                   *[pred.dtype.type(v) for v in params], flat(dgrad), partial)
    loss = _host_sum(partial) / size
    return loss, call.done(dgrad, grad)


def mse_loss(pred, target, grad=None):
    """Mean of (pred - target)**2 and its gradient 2 (pred - target) / size.

    pred, target, grad: same shape. Returns (loss: float, grad)."""
    return _elementwise_loss(_mse, pred, target, grad, 2.0 / max(pred.size, 1))


def bce_loss(pred, target, grad=None):
    """Mean binary cross-entropy of probabilities, logs clamped at -100.

    pred, target, grad: same shape. Returns (loss: float, grad)."""
    return _elementwise_loss(_bce, pred, target, grad, 1.0 / max(pred.size, 1))


def bce_with_logits_loss(logits, target, grad=None):
    """Mean binary cross-entropy of sigmoid(logits), stable for any logit.

    logits, target, grad: same shape. Returns (loss: float, grad)."""
    return _elementwise_loss(_bce_logits, logits, target, grad, 1.0 / max(logits.size, 1))


def smooth_l1_loss(pred, target, beta=1.0, grad=None):
    """Mean smooth-L1 loss (L1 at beta = 0) and its gradient.

    pred, target, grad: same shape. Returns (loss: float, grad)."""
    return _elementwise_loss(_smooth_l1, pred, target, grad, 1.0 / max(pred.size, 1), beta)
