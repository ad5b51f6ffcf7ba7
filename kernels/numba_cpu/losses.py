"""Losses: the loss and the gradient of the prediction in one parallel pass.

Each kernel splits its rows (or elements) into chunks of a fixed size, sums each
chunk's loss serially in float64 into its own slot of a small partial-sum array,
then adds the slots in order: no shared accumulator across threads, and since chunk
boundaries do not depend on the thread count, the loss is bitwise identical for any
number of threads.
"""
import math
import types

import numba
import numpy as np
from numba import prange

from . import row_exps
from . import vmath
from ._buffers import overlap
from .config import OPTIONS, call_outlined, helper, kernel, serial_kernel

_ROWS = 16        # rows per chunk for softmax-cross-entropy
_ELEMENTS = 4096  # elements per chunk for the elementwise losses
# values per tile of BCE's chunks (their float terms in an L1 scratch): BCE over 16M
# float32 values took 0.88x the time of 512-value tiles prefetched a chunk ahead
# (interleaved, 6 repeats; 1024 and 2048 1.04-1.11x, the prefetch alone 0.98x)
_TILE = 256
_BCE_EPSILON = float(np.float32(1e-12))  # PyTorch's floor of p (1 - p), a float32 1e-12


@helper
def _ordered_sum(partial):
    """Sum in index order. (``partial.sum()`` would become a parfor reduction split by
    thread under parallel=True, and its rounding would depend on the thread count.)"""
    total = 0.0
    for k in range(partial.shape[0]):
        total += partial[k]
    return total


# fastmath=False explicit: a callee inherits an unset fastmath
@numba.njit(cache=OPTIONS["cache"], fastmath=False)
def _exact_difference(a, b):
    """a - b as a value fastmath cannot reassociate into a sum: in shifted += x - m it
    made (shifted + x) - m, which loses shifted wholly where |m| is 1e16 (float64)."""
    return a - b


@serial_kernel
def _labels_chunks(logits, labels, grad, partial, rows, inv_n):
    # IN logits (m, C), labels (m,) int64; OUT grad (m, C), partial (chunks,): each chunk
    # of `rows` rows' loss
    m, c = logits.shape
    wide = c >= row_exps.WIDE
    for k in range(partial.shape[0]):
        # the loss is sum(log s) - sum(x_label - m), each in its own float64 sum: as one
        # expression fastmath reassociated the term to (log s + m) - x_label in
        # float32, which rounds log s off where |m| is large (1e4 logits: 0.69336 for
        # ln 2). (np.float64, not float(): float() of a float32 is a float32 in Numba.)
        log_sums = 0.0
        shifted = 0.0
        for i in range(k * rows, min(m, (k + 1) * rows)):
            x = logits[i]
            g = grad[i]
            mx = vmath.row_max(x)
            if wide:
                row_exps.row_exps(x, mx, g)
            else:
                # (not row_exps.narrow_exps: it writes a block's gradient before these
                # rows read x, and a gradient lying over the logits' earlier rows,
                # test_kernel_rounding_order's, then changed the loss)
                for j in range(c):
                    g[j] = vmath.exp_nonpos(x[j] - mx)
            # the sum in a loop of its own, with no store: in one loop with g's, LLVM
            # versions it on a runtime check that g and x do not overlap, and the two
            # versions add in different orders, so the bits depended on where the
            # arrays lay (g allocated within 256 bytes after x: 1 ulp off)
            s = x.dtype.type(0)
            for j in range(c):
                s += g[j]
            scale = inv_n / s
            for j in range(c):
                g[j] *= scale
            label = labels[i]
            g[label] -= inv_n
            log_sums += math.log(np.float64(s))
            shifted += np.float64(_exact_difference(x[label], mx))
        partial[k] = log_sums - shifted


@serial_kernel
def _probs_chunks(logits, target, grad, partial, rows, inv_n):
    # IN logits, target (m, C); OUT grad (m, C), partial (chunks,): each chunk of `rows`
    # rows' loss
    m, c = logits.shape
    wide = c >= row_exps.WIDE
    for k in range(partial.shape[0]):
        total = 0.0
        for i in range(k * rows, min(m, (k + 1) * rows)):
            x = logits[i]
            t = target[i]
            g = grad[i]
            # (these six lines are _labels_chunks' too, on purpose: as one inline helper
            # of both, the narrow rows took 1.2-1.7x the time, 1024 x 10 labels 40 ->
            # 70 us at 1 thread, with the same finite bits; measured 7 Dec 2026)
            mx = vmath.row_max(x)
            if wide:
                row_exps.row_exps(x, mx, g)
            else:
                for j in range(c):
                    g[j] = vmath.exp_nonpos(x[j] - mx)
            s = x.dtype.type(0)   # (sums apart from the store: see _labels_chunks)
            t_sum = x.dtype.type(0)
            # the loss's sums of t and t (x - m) in float64, as Cython's: in float32 they
            # drifted over many classes (label smoothing's eps / C over 2^18 classes:
            # the loss 3e-5 off, PyTorch's 2e-9)
            t_total = 0.0
            tx = 0.0
            for j in range(c):
                s += g[j]
                t_sum += t[j]
                t_total += np.float64(t[j])
                tx += np.float64(t[j]) * np.float64(x[j] - mx)
            scale = inv_n * t_sum / s  # softmax * sum(t) - t: rows need not sum to 1
            for j in range(c):
                g[j] = g[j] * scale - t[j] * inv_n
            # -sum_j t_j log p_j = sum_j t_j (log s - (x_j - m))
            total += math.log(np.float64(s)) * t_total - tx
        partial[k] = total


@kernel
def _softmax_ce(logits, target, grad, rows):
    # IN logits (N, C), target (N,) int64 labels or (N, C) probabilities; OUT grad (N, C).
    # Returns the summed loss. Blocks of whole chunks of about row_exps.ROW_BLOCK values,
    # each a call of _labels_chunks or _probs_chunks kept out of line
    # (config.call_outlined; row_exps.py says why)
    n, c = logits.shape
    inv_n = logits.dtype.type(1.0 / max(n, 1))
    chunks = (n + rows - 1) // rows
    partial = np.zeros(chunks)
    per_block = max(1, row_exps.rows_per_block(c) // rows)
    for b in prange((chunks + per_block - 1) // per_block):
        k0 = b * per_block
        lo = k0 * rows
        hi = (k0 + per_block) * rows
        args = (logits[lo:hi], target[lo:hi], grad[lo:hi], partial[k0:k0 + per_block],
                rows, inv_n)
        # target.ndim is a constant of its type: Numba prunes the other branch before
        # typing (each chunks function types for one kind of target only)
        if target.ndim == 1:
            call_outlined(_labels_chunks, args)
        else:
            call_outlined(_probs_chunks, args)
    return _ordered_sum(partial)


@kernel
def _mse(pred, target, grad, chunk):
    # IN pred, target (n,); OUT grad (n,) = 2 (pred - target) / n. Returns sum of squares.
    n = pred.shape[0]
    scale = pred.dtype.type(2.0 / max(n, 1))
    chunks = (n + chunk - 1) // chunk
    partial = np.zeros(chunks)
    for k in prange(chunks):
        # slices, so the inner index starts at 0 (no wraparound check, vectorizes)
        p = pred[k * chunk:(k + 1) * chunk]
        t = target[k * chunk:(k + 1) * chunk]
        g = grad[k * chunk:(k + 1) * chunk]
        # the sum first, in a loop with no store (see _labels_chunks), then the
        # gradient: grad may be pred or target itself (in place), read here before
        total = 0.0
        for i in range(p.shape[0]):
            d = np.float64(p[i] - t[i])   # (float() keeps a float32 a float32 in Numba)
            total += d * d
        for i in range(p.shape[0]):   # (the chunk's values from L2)
            g[i] = (p[i] - t[i]) * scale
        partial[k] = total
    return _ordered_sum(partial)


@kernel
def _smooth_l1(pred, target, beta, grad, chunk):
    # IN pred, target (n,); OUT grad (n,). Returns the summed loss (L1 at beta = 0).
    n = pred.shape[0]
    dt = pred.dtype.type
    inv_n = dt(1.0 / max(n, 1))
    zero = dt(0)
    b = dt(beta)
    half_b = dt(0.5 * beta)
    scale = dt(1.0 / beta if beta else 0.0) * inv_n  # d / beta / n
    half_inv = 0.5 / beta if beta else 0.0
    l1 = beta == 0.0
    chunks = (n + chunk - 1) // chunk
    partial = np.zeros(chunks)
    for k in prange(chunks):
        p = pred[k * chunk:(k + 1) * chunk]
        t = target[k * chunk:(k + 1) * chunk]
        g = grad[k * chunk:(k + 1) * chunk]
        total = 0.0   # the sum first, with no store, then the gradient: as _mse
        for i in range(p.shape[0]):
            d = p[i] - t[i]
            ad = abs(d)
            if l1 or ad >= b:
                total += np.float64(ad if l1 else ad - half_b)
            else:
                total += np.float64(d) * np.float64(d) * half_inv
        for i in range(p.shape[0]):
            d = p[i] - t[i]
            # sign(d) / n: 0 for d = 0 and for NaN, as PyTorch's L1 gradient
            sign = inv_n if d > zero else (-inv_n if d < zero else zero)
            # NaN fails the comparison: d / beta, NaN as PyTorch
            g[i] = sign if l1 or abs(d) >= b else d * scale
        partial[k] = total
    return _ordered_sum(partial)


@numba.njit(**OPTIONS)
def _terms_sum(terms):
    """Sum of a tile's float terms in float64 (a loop of its own over an L1 tile: with
    the conversion in the loop that computes the terms, LLVM vectorized the whole loop
    at eight float64 lanes, half the float32 width, and the logs and exps ran at that
    width: 1.7 ns a value for BCE on one thread, in cache, against 0.73)."""
    total = 0.0
    for i in range(terms.shape[0]):
        total += np.float64(terms[i])
    return total


@helper
def _bce_grad(p, t, one, eps, inv_n):
    """BCE's gradient of one value: (p - t) / max(p (1 - p), eps) / n."""
    return (p - t) / max(p * (one - p), eps) * inv_n


@helper
def _bce_binary_term(p, t, one, zero, lo):
    """log(p) where t = 1, else log1p(-p) (as log(q) + one_plus_err(-p, q), q = 1 - p:
    vmath.log1p(-p)'s bits for p in [0, 1]), clamped at lo: the log term of a 0/1 target."""
    q = one - p
    err = vmath.one_plus_err(-p, q)
    return max(vmath.log(p if t == one else q) + (zero if t == one else err), lo)


@serial_kernel
def _bce_soft_terms(ps, ts, terms, lo):
    """terms[:m] = t log(p) + (1 - t) log1p(-p), both logs clamped at lo (any target).
    ps, ts: (m,)."""
    for i in range(ps.shape[0]):
        p = ps[i]
        log_p = max(vmath.log(p), lo)
        log_1mp = max(vmath.log1p(-p), lo)
        # as written: reassoc's t (log_p - log_1mp) + log_1mp cancels at t = 1
        terms[i] = vmath.lerp_written(ts[i], log_p, log_1mp)


@numba.njit(**OPTIONS)
def _bce_tile(ps, ts, gs, terms, inv_n):
    """The summed BCE terms of one tile and its gradient. ps, ts, gs: (m,); terms: an L1
    scratch of >= m values. In float32, where every target of the tile is 0 or 1
    (binary labels, the usual case) one log a value: log(p) where t = 1, log1p(-p)
    where t = 0, the same bits as the two-log form t log p + (1 - t) log1p(-p) there
    (the other product is 0 times a finite clamped log), at about half its cost.
    log1p(-p), not log(1 - p): 1 - p rounds, and a confident p = 1e-7 gave 1.19e-7 for
    PyTorch's 1.0e-7 (1e-20: 0).

    float32 with gs apart from ps and ts runs one loop: the one-log terms, the gradient
    and whether every target is 0 or 1, the two-log terms rewritten after it where one
    is not. The targets were checked in a pass of their own before (kept for gs = ps or
    ts, in place, where the gradient overwrites what the two-log terms read): it read
    them from memory apart from the loop that uses them (1 thread, process CPU time, AMD
    EPYC AVX-512: 16M float32 values 1.23 -> 0.99 ns a value, 64K in cache 0.84 ->
    0.78). The same bits: the same expressions in the same loops' shapes."""
    one = ps.dtype.type(1)
    zero = ps.dtype.type(0)
    eps = ps.dtype.type(_BCE_EPSILON)
    lo = ps.dtype.type(-100.0)
    m = ps.shape[0]
    terms = terms[:m]
    # float64: always the two logs, log1p(-p) by libm; the logs in pred's type, clamped
    # as PyTorch does (float32: the vectorizable logs; libm's made this loop NumPy's
    # speed, 10 ns per value)
    soft = ps.itemsize != 4
    if not soft and not (overlap(gs, ps) or overlap(gs, ts)):
        for i in range(m):
            p = ps[i]
            t = ts[i]
            soft |= (t != zero) & (t != one)
            terms[i] = _bce_binary_term(p, t, one, zero, lo)
            gs[i] = _bce_grad(p, t, one, eps, inv_n)
        if soft:
            _bce_soft_terms(ps, ts, terms, lo)
        return -_terms_sum(terms)
    for i in range(m):   # (before any store: gs may be ts itself)
        t = ts[i]
        soft |= (t != zero) & (t != one)
    # gs may be ps or ts (in place): each value is read before its own gradient is stored
    if soft:
        _bce_soft_terms(ps, ts, terms, lo)
        for i in range(m):
            gs[i] = _bce_grad(ps[i], ts[i], one, eps, inv_n)
    else:
        for i in range(m):
            p = ps[i]
            t = ts[i]
            terms[i] = _bce_binary_term(p, t, one, zero, lo)
            gs[i] = _bce_grad(p, t, one, eps, inv_n)
    return -_terms_sum(terms)


@numba.njit(**OPTIONS)
def _bce_logits_tile(xs, ts, gs, terms, inv_n):
    """The summed BCE-with-logits terms of one tile and its gradient. xs, ts, gs: (m,);
    terms: an L1 scratch of >= m values."""
    one = xs.dtype.type(1)
    zero = xs.dtype.type(0)
    lowest = xs.dtype.type(-np.inf)
    nan = xs.dtype.type(np.nan)
    m = xs.shape[0]
    terms = terms[:m]
    for i in range(m):
        x = xs[i]
        t = ts[i]
        e = vmath.exp_nonpos(-abs(x))  # in (0, 1]: no overflow for any logit
        r = one / (one + e)
        sig = r if x >= zero else e * r
        # (1 - t) x - min(x, 0) + log1p(e): as -t x for x < 0, (1 - t) x for x >= 0,
        # so that no two large terms of opposite sign meet: under reassociation
        # LLVM formed (total + x) - x for x = -1e20, t = 0 in float64, which rounds
        # the loss summed so far away (PyTorch: 50, it gave 0). x = inf gives
        # PyTorch's inf (NaN at t = 1); x = -inf its (1 - t)(-inf) + inf, NaN for
        # t <= 1 (and a NaN t) and inf for t > 1, where -t x is inf too
        lin = (one - t) * x if x >= zero else -(t * x)
        lin = lin if x > lowest or t > one else nan
        # log1p of e in (0, 1]: the polynomial without a log or a division (softplus's)
        terms[i] = lin + vmath.log1p_small(e)
        gs[i] = (sig - t) * inv_n   # (gs may be xs or ts: both read above)
    return _terms_sum(terms)


def _bce_driver(pred, target, grad, chunk):
    # IN pred (probabilities or logits), target (n,); OUT grad (n,). Returns the summed
    # loss, a tile at a time: _tile is the kernel's tile function (_tiled_kernel)
    n = pred.shape[0]
    inv_n = pred.dtype.type(1.0 / max(n, 1))
    chunks = (n + chunk - 1) // chunk
    partial = np.zeros(chunks)
    for k in prange(chunks):
        terms = np.empty(_TILE, pred.dtype)
        total = 0.0
        for s in range(k * chunk, min(n, (k + 1) * chunk), _TILE):
            e = min(n, (k + 1) * chunk, s + _TILE)
            total += _tile(pred[s:e], target[s:e], grad[s:e], terms, inv_n)  # noqa: F821
        partial[k] = total
    return _ordered_sum(partial)


def _tiled_kernel(tile, name):
    """kernel(_bce_driver) with tile as its _tile, named name (so its own disk cache
    entry): one source for the BCE drivers. tile is a global of the copy, not an
    argument: a jitted function's type holds the process's dispatcher, so such an
    argument missed the disk cache in every process, and a bool flag choosing the tile
    cost 0.06-0.2 us of dispatch a call (a 1-value BCE's 0.9 us)."""
    fn = types.FunctionType(_bce_driver.__code__, {**globals(), "_tile": tile}, name)
    fn.__qualname__ = name
    return kernel(fn)


_bce = _tiled_kernel(_bce_tile, "_bce")
_bce_logits = _tiled_kernel(_bce_logits_tile, "_bce_logits")


def softmax_cross_entropy(logits, target, grad=None):
    """Mean cross-entropy of softmax(logits) and its gradient in one pass.

    logits: (N, C); target: (N,) int64 class labels or (N, C) probabilities in
    logits' dtype; grad: (N, C) or None. Returns (loss: float,
    grad = (softmax(logits) - onehot(target)) / N; for probabilities
    (softmax(logits) * target.sum(1) - target) / N).
    """
    if grad is None:
        grad = np.empty_like(logits)
    n = logits.shape[0]
    total = _softmax_ce(logits.size, logits, target, grad, _ROWS)
    return float(total / max(n, 1)), grad


def _flat_mean(kernel, pred, target, grad, *params):
    """(mean of an elementwise loss kernel's summed terms, grad): the kernel runs on flat
    views of pred, target (same shape) and grad (allocated when None); params go between
    target and grad, as the kernels take them."""
    if grad is None:
        grad = np.empty_like(pred)
    total = kernel(pred.size, pred.reshape(-1), target.reshape(-1), *params, grad.reshape(-1),
                   _ELEMENTS)
    return float(total / max(pred.size, 1)), grad


def mse_loss(pred, target, grad=None):
    """Mean squared error over all elements and its gradient.

    pred, target, grad: same shape (grad may be None).
    Returns (loss, grad = 2 * (pred - target) / pred.size).
    """
    return _flat_mean(_mse, pred, target, grad)


def smooth_l1_loss(pred, target, beta=1.0, grad=None):
    """Mean smooth-L1 loss (L1 at beta = 0) and its gradient in one pass.

    pred, target, grad: same shape (grad may be None). Returns (loss,
    grad = (d / beta where |d| < beta, else sign(d)) / size), d = pred - target.
    """
    return _flat_mean(_smooth_l1, pred, target, grad, float(beta))


def bce_loss(pred, target, grad=None):
    """Mean binary cross-entropy of probabilities and its gradient.

    pred: probabilities in [0, 1], any shape; target, grad: same shape (grad may be None).
    Logs are clamped at -100 as PyTorch does. Returns (loss,
    grad = (pred - target) / max(pred * (1 - pred), 1e-12) / size).
    """
    return _flat_mean(_bce, pred, target, grad)


def bce_with_logits_loss(logits, target, grad=None):
    """Mean binary cross-entropy of sigmoid(logits) and its gradient in one pass.

    logits, target, grad: same shape (grad may be None); each term is
    max(x, 0) - x * t + log1p(exp(-|x|)), finite for any logit.
    Returns (loss, grad = (sigmoid(logits) - target) / size).
    """
    return _flat_mean(_bce_logits, logits, target, grad)
