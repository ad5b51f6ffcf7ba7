"""Batch normalisation, forward and backward.

x is viewed as (N, C, L): L = 1 for (N, C) input, L = H * W for (N, C, H, W).

For (N, C) input the rows are split into fixed chunks (chunks.py: a function of N
only), each streaming whole rows into its own row of float64 partial sums, merged in
chunk order.
Training forward: the column sums, then the squared deviations from the mean (a
second pass that finds the chunk's rows in cache), then y = (x - mean) * scale + bias
(eval: PyTorch's y = x * scale + (bias - mean * scale)).
Backward: the sums of grad_out and grad_out * (x - mean), then PyTorch's grad_in =
(grad_out - mean_g - (x - mean) * k) * scale with per-channel mean_g, k and scale.
Each sum adds four rows in x's type per float64 accumulate, as the Cython backend: the
float64 conversions and read-modify-writes bound these loops, and 256x1024
forward+backward went from 148 to 123 us with 2 threads (263 -> 215 us on one;
4096x1024 6.3 -> 5.0 ms) when the per-element float64 sums (a one-pass shifted sum of
x and x**2) were replaced. (Until an earlier version a prange iteration owned a block
of 64 channels and walked the rows with stride C: 256x1024 took 1.05 ms on one thread.
One contiguous channel range per thread streams half of every row per thread: with 2
threads 4096x1024 took 7.1 vs 4.9 ms, so the row chunks stayed.)
The (N, C) passes read their per-channel vectors (partial sums, mean, scale, shift,
the backward's coefficients) from scratch that starts on a cache line (``_aligned``,
as the Cython backend's workspace): NumPy's arrays start 16-48 bytes past one, and
each 64-byte vector access then straddles two lines. On the 2-core AMD EPYC (AVX-512),
256x1024 float32 forward+backward, 1 thread, process CPU time, every array at each of
the four 16-byte offsets, mean over offsets: 192-202 -> 184-192 us (Cython 175-181);
numba/Cython 1.06-1.13 -> 1.02-1.09. The remaining gap: Cython's serial work (merges,
statistics, coefficients) runs across the threads inside its one parallel region,
numba's between its prange loops.
For (N, C, L) a prange iteration owns whole channels (a one-pass sum of x and x**2
shifted by the channel's first value). Either way there are no shared accumulators and
the results are identical for any thread count.
"""
import math

import numpy as np
from numba import prange

from ._buffers import scratch
from .chunks import chunk_rows, n_chunks
from .config import helper, kernel

# (N, C, L) backward: values per span summed in x's type before a float64 add, as
# PyTorch's float32 accumulators but short: a span's error stays that of a 1024-term
# sum split over the vector's lanes. 32x128x16x16, 2 threads: the sums 191 -> 152 us
# (a float64 conversion and add per value before), the whole backward 393 -> 268-287 us
# (PyTorch 268-312 us, interleaved); 128x64x8x8 248 -> 182 us.
_SPAN = 1024
_EMPTY = {np.dtype(np.float32): np.empty(0, np.float32),
          np.dtype(np.float64): np.empty(0, np.float64)}


@helper
def _statistics(j, count, s1, s2, first, training, mean_only, momentum, eps,
                running_mean, running_var, save_mean, save_invstd):
    """Channel j's mean and invstd from shifted sums (or the running statistics in
    eval mode), stored in save_*; running statistics updated when training."""
    m1 = s1 / count if training else 0.0
    var = 0.0
    if training:
        if not math.isfinite(s1):
            # an inf or NaN in the channel: the two-pass variance of the other
            # backends and PyTorch's is NaN (x - mean is inf - inf or NaN)
            var = np.nan
        elif s2 == np.inf:
            # an overflowed sum of squares of finite values is an infinite variance
            # (inf - inf would be NaN), as the two-pass variance gives
            var = np.inf
        else:
            var = max(s2 / count - m1 * m1, 0.0)
    _store_statistics(j, count, first + m1, var, training, mean_only, momentum, eps,
                      running_mean, running_var, save_mean, save_invstd)


@helper
def _store_statistics(j, count, mean, var, training, mean_only, momentum, eps,
                      running_mean, running_var, save_mean, save_invstd):
    """Channel j's batch mean and biased variance (training) or its running statistics
    (eval) into save_mean and save_invstd; running statistics updated when training
    (with the unbiased variance)."""
    dt = save_mean.dtype.type
    if training:
        running_mean[j] = running_mean[j] * dt(1.0 - momentum) + dt(momentum * mean)
    else:
        mean = float(running_mean[j])
    save_mean[j] = mean
    if not mean_only:
        if training:
            unbiased = var * count / max(count - 1, 1)
            running_var[j] = running_var[j] * dt(1.0 - momentum) + dt(momentum * unbiased)
        else:
            var = float(running_var[j])
        # PyTorch's: with eps 0 a constant channel's invstd is 0 (y = bias), not inf
        zero_var = training and var == 0.0 and eps == 0.0
        save_invstd[j] = 0.0 if zero_var else 1.0 / math.sqrt(var + eps)


@helper
def _grad_coefficients(j, sum_g, sum_gx, inv_n, weight, save_invstd, training, mean_only,
                       scale, k, mean_g):
    """grad_in = (grad_out - mean_g - (x - mean) * k) * scale for channel j (PyTorch's
    form), from its sums of grad_out and grad_out * (x - mean): k = mean(grad_out *
    x_hat) * invstd, scale = weight * invstd (1 and k 0 when mean_only; eval: mean_g and
    k 0)."""
    # (each branch writes each value once: a store then its overwrite made numba's
    # serial loop 3x slower, 1.1 ns a channel)
    dt = scale.dtype.type
    if mean_only:
        scale[j] = dt(1)
        k[j] = dt(0)
        mean_g[j] = dt(sum_g * inv_n) if training else dt(0)
    else:
        invstd = float(save_invstd[j])
        scale[j] = dt(float(weight[j]) * invstd)
        if training:
            k[j] = dt(sum_gx * invstd * invstd * inv_n)
            mean_g[j] = dt(sum_g * inv_n)
        else:
            k[j] = dt(0)
            mean_g[j] = dt(0)


@helper
def _accumulate_param_grads(sum_g, sum_gx, save_invstd, mean_only, grad_weight, grad_bias):
    """grad_bias += sum of grad_out, grad_weight += sum of grad_out * x_hat (C,)."""
    for j in range(grad_bias.shape[0]):
        grad_bias[j] += sum_g[j]
    if not mean_only:
        for j in range(grad_weight.shape[0]):
            grad_weight[j] += sum_gx[j] * float(save_invstd[j])


# ----------------------------------------------------------------- (N, C) input
@helper
def _merge(partial, nch):
    """partial[0] += partial[1] + ... + partial[nch - 1], added in chunk order."""
    acc = partial[0]
    for k in range(1, nch):
        other = partial[k]
        for j in range(acc.shape[0]):
            acc[j] += other[j]


@helper
def _col_sums(x, s1):  # IN x (rows, C); OUT s1 (C,) float64
    """s1 = sum of x over rows: four rows added in x's type per float64 accumulate (a
    quarter of the float64 conversions and read-modify-writes that bound the loop;
    the grouping depends on the row index only, as the Cython backend's _col_sum)."""
    for j in range(s1.shape[0]):
        s1[j] = 0.0
    rows = x.shape[0]
    r = 0
    while r + 4 <= rows:
        x0, x1, x2, x3 = x[r], x[r + 1], x[r + 2], x[r + 3]
        for j in range(s1.shape[0]):
            s1[j] += float((x0[j] + x1[j]) + (x2[j] + x3[j]))
        r += 4
    for i in range(r, rows):
        row = x[i]
        for j in range(s1.shape[0]):
            s1[j] += float(row[j])


@helper
def _col_sqdev(x, mean, s2):  # IN x (rows, C), mean (C,) in x's type; OUT s2 (C,) float64
    """s2 = sum of (x - mean)**2 over rows (four rows at a time, as _col_sums)."""
    for j in range(s2.shape[0]):
        s2[j] = 0.0
    rows = x.shape[0]
    r = 0
    while r + 4 <= rows:
        x0, x1, x2, x3 = x[r], x[r + 1], x[r + 2], x[r + 3]
        for j in range(s2.shape[0]):
            m = mean[j]
            d0 = x0[j] - m
            d1 = x1[j] - m
            d2 = x2[j] - m
            d3 = x3[j] - m
            s2[j] += float((d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3))
        r += 4
    for i in range(r, rows):
        row = x[i]
        for j in range(s2.shape[0]):
            d0 = row[j] - mean[j]
            s2[j] += float(d0 * d0)


@helper
def _grad_sums(g, x, mean, sg, sgx):  # IN g, x (rows, C), mean (C,); OUT sg, sgx (C,)
    """sg = sum of g, sgx = sum of g * (x - mean) over rows, in float64 (four rows at a
    time in x's type, as _col_sums)."""
    for j in range(sg.shape[0]):
        sg[j] = 0.0
        sgx[j] = 0.0
    rows = x.shape[0]
    r = 0
    while r + 4 <= rows:
        g0, g1, g2, g3 = g[r], g[r + 1], g[r + 2], g[r + 3]
        x0, x1, x2, x3 = x[r], x[r + 1], x[r + 2], x[r + 3]
        for j in range(sg.shape[0]):
            m = mean[j]
            sg[j] += float((g0[j] + g1[j]) + (g2[j] + g3[j]))
            sgx[j] += float((g0[j] * (x0[j] - m) + g1[j] * (x1[j] - m))
                            + (g2[j] * (x2[j] - m) + g3[j] * (x3[j] - m)))
        r += 4
    for i in range(r, rows):
        go = g[i]
        row = x[i]
        for j in range(sg.shape[0]):
            sg[j] += float(go[j])
            sgx[j] += float(go[j] * (row[j] - mean[j]))


@helper
def _column_statistics(n, partial, training, mean_only, momentum, eps, running_mean,
                       running_var, save_mean, save_invstd, weight, bias, scale, shift):
    """Every channel's statistics from the merged sums partial[:, 0] (N, C input) into
    save_*, the running statistics, scale = invstd * weight (1 when mean_only) and the
    eval fold's shift (``_eval_shift``)."""
    one = scale.dtype.type(1)
    for j in range(scale.shape[0]):
        mean_j = partial[0, 0, j] / n if training and n > 0 else 0.0
        var_j = partial[1, 0, j] / n if training and n > 0 else 0.0
        _store_statistics(j, n, mean_j, var_j, training, mean_only, momentum, eps,
                          running_mean, running_var, save_mean, save_invstd)
        scale[j] = one if mean_only else save_invstd[j] * weight[j]
        shift[j] = _eval_shift(bias[j], save_mean[j], scale[j])


@helper
def _eval_shift(beta, mean, scale):
    """bias - mean * scale of PyTorch's eval form y = x * scale + shift, in float64 (a
    caller stores it in x's type): where running_var + eps is 0 its inf scale gives
    PyTorch's inf/NaN per element, which (x - mean) * scale + bias does not (x == mean:
    NaN, else +-inf)."""
    return np.float64(beta) - np.float64(mean) * np.float64(scale)


@kernel
def _forward_columns(x, weight, bias, running_mean, running_var, training, mean_only,
                     momentum, eps, out, save_mean, save_invstd, scale, shift, mean, partial):
    # IN x (N, C), weight, bias (C,); INOUT running_mean, running_var (C,);
    # OUT out (N, C), save_mean, save_invstd (C,); scratch scale, shift, mean (C,),
    # partial (2, n_chunks(N), C) float64, all four 64-byte aligned (_aligned)
    # Rows are split into chunks, each streaming whole rows (contiguous, vectorized)
    # into its own row of partial sums; the partials are merged in chunk order. The
    # passes over x read the per-channel values from the aligned scratch (mean, scale,
    # shift: a copy of bias unless folded), not from save_mean and bias.
    n, c = x.shape
    nch = n_chunks(n)
    if training and n > 0:
        for k in prange(nch):
            r0, r1 = chunk_rows(k, nch, n)
            _col_sums(x[r0:r1], partial[0, k])
        _merge(partial[0], nch)
        for j in range(c):
            save_mean[j] = partial[0, 0, j] / n
            mean[j] = save_mean[j]
        if not mean_only:
            for k in prange(nch):
                r0, r1 = chunk_rows(k, nch, n)
                _col_sqdev(x[r0:r1], mean, partial[1, k])
            _merge(partial[1], nch)
    else:
        partial[:, 0] = 0.0
    # one loop per flag combination: with the flags tested inside the channel loop,
    # numba's serial compile ran ~15 ns per channel (2x1024: 19 us against 5 us)
    if training and mean_only:
        _column_statistics(n, partial, True, True, momentum, eps, running_mean, running_var,
                           save_mean, save_invstd, weight, bias, scale, shift)
    elif training:
        _column_statistics(n, partial, True, False, momentum, eps, running_mean, running_var,
                           save_mean, save_invstd, weight, bias, scale, shift)
    elif mean_only:
        _column_statistics(n, partial, False, True, momentum, eps, running_mean, running_var,
                           save_mean, save_invstd, weight, bias, scale, shift)
    else:
        _column_statistics(n, partial, False, False, momentum, eps, running_mean, running_var,
                           save_mean, save_invstd, weight, bias, scale, shift)
    fold = not training and not mean_only   # (PyTorch's eval form)
    copied = training and n > 0   # (mean holds save_mean since the variance pass)
    for j in range(c):
        if not copied:
            mean[j] = save_mean[j]
        if not fold:
            shift[j] = bias[j]
    for k in prange(nch):
        r0, r1 = chunk_rows(k, nch, n)
        for i in range(r0, r1):
            row = x[i]
            y = out[i]
            if fold:
                for j in range(c):
                    y[j] = row[j] * scale[j] + shift[j]
            else:
                for j in range(c):
                    y[j] = (row[j] - mean[j]) * scale[j] + shift[j]


@kernel
def _backward_columns(grad_out, x, weight, save_mean, save_invstd, training, mean_only,
                      grad_weight, grad_bias, accumulate, grad_in, scale, k, mean_g,
                      mean, partial):
    # IN grad_out, x (N, C), weight, save_mean, save_invstd (C,);
    # INOUT grad_weight, grad_bias (C,) (when accumulate); OUT grad_in (N, C);
    # scratch scale, k, mean_g (C,): grad_in = (grad_out - mean_g - (x - mean) * k) *
    # scale (_grad_coefficients); mean (C,): a copy of save_mean; partial (2,
    # n_chunks(N), C) float64; all 64-byte aligned
    n, c = x.shape
    inv_n = 1.0 / max(n, 1)
    nch = n_chunks(n)
    if n == 0:
        partial[:, 0] = 0.0
    for j in range(c):
        mean[j] = save_mean[j]
    for ch in prange(nch):
        r0, r1 = chunk_rows(ch, nch, n)
        _grad_sums(grad_out[r0:r1], x[r0:r1], mean, partial[0, ch], partial[1, ch])
    _merge(partial[0], nch)
    _merge(partial[1], nch)
    # the parameter gradients in a loop of their own: with an `if accumulate` inside the
    # coefficient loop, numba's serial compile ran ~35 ns per channel (2x1024: 38 us
    # against 5 us for the whole call)
    for j in range(c):
        _grad_coefficients(j, partial[0, 0, j], partial[1, 0, j], inv_n, weight, save_invstd,
                           training, mean_only, scale, k, mean_g)
    if accumulate:
        _accumulate_param_grads(partial[0, 0], partial[1, 0], save_invstd, mean_only,
                                grad_weight, grad_bias)
    # PyTorch's form, not the fold a * grad_out + b * (x - mean) + d it equals: with an
    # infinite weight (or grad_out) a, b and d are infinite and the fold's sum is NaN
    # in every row of the channel, where PyTorch's gives +-inf in most rows
    with_x = training and not mean_only   # (else k is 0: x unread, no 0 * inf = NaN)
    for ch in prange(nch):
        r0, r1 = chunk_rows(ch, nch, n)
        for i in range(r0, r1):
            go = grad_out[i]
            row = x[i]
            gi = grad_in[i]
            if with_x:
                for j in range(c):
                    gi[j] = (go[j] - mean_g[j] - (row[j] - mean[j]) * k[j]) * scale[j]
            else:
                for j in range(c):
                    gi[j] = (go[j] - mean_g[j]) * scale[j]


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
        # (np.float64: float() of a float32 is a float32 in Numba)
        first = np.float64(x[0, j, 0]) if n * length > 0 else 0.0
        if not math.isfinite(first):  # (inf - inf would make an infinite mean NaN)
            first = 0.0
        if training:
            for i in range(n):
                plane = x[i, j]
                for k in range(length):
                    d = np.float64(plane[k]) - first
                    s1 += d
                    s2 += d * d
        _statistics(j, n * length, s1, s2, first, training, mean_only, momentum, eps,
                    running_mean, running_var, save_mean, save_invstd)
        mean = save_mean[j]
        beta = bias[j]
        scale = x.dtype.type(1) if mean_only else save_invstd[j] * weight[j]
        if not training and not mean_only:   # PyTorch's eval form: x * scale + shift
            beta = x.dtype.type(_eval_shift(beta, mean, scale))
            mean = x.dtype.type(0)
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
        # each plane's sums in spans of _SPAN values in x's type, each span's total
        # added in float64
        for i in range(n):
            go = grad_out[i, j]
            plane = x[i, j]
            for k0 in range(0, length, _SPAN):
                # (views indexed from 0: no wraparound code, so the loops vectorize)
                g_span = go[k0:k0 + _SPAN]
                x_span = plane[k0:k0 + _SPAN]
                span_g = dt(0)
                span_gx = dt(0)
                if mean_only:
                    for k in range(g_span.shape[0]):
                        span_g += g_span[k]
                else:
                    for k in range(g_span.shape[0]):
                        g = g_span[k]
                        span_g += g
                        span_gx += g * (x_span[k] - mean)
                sum_g += float(span_g)
                sum_gx += float(span_gx)
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
                for i in range(n):
                    go = grad_out[i, j]
                    plane = x[i, j]
                    gi = grad_in[i, j]
                    for k in range(length):
                        gi[k] = (go[k] - mean_g - (plane[k] - mean) * mean_gx) * scale
            else:   # eval: x unread (a non-finite x gives no 0 * inf = NaN)
                for i in range(n):
                    go = grad_out[i, j]
                    gi = grad_in[i, j]
                    for k in range(length):
                        gi[k] = go[k] * scale


def _partials(n, c):
    """Float64 chunk partials for an (N, C) reduction, reused between calls."""
    return _aligned("bn_partial", (2, n_chunks.py_func(n), c), np.float64)


def _aligned(name, shape, dtype):
    """Scratch starting on a cache line. NumPy's arrays start 16 to 48 bytes past one,
    and then every 64-byte vector load and store of the (N, C) passes straddles two
    lines: aligning the scratch the passes read and write (the partial sums, the
    per-channel coefficients and a copy of the mean), as the Cython backend's workspace
    is, took the backward's two passes over 256x1024 float32 from 48.8 + 50.3 to 44.8 +
    44.6 us (1 thread, process CPU time, loops timed alone). Same arithmetic, same bits."""
    return scratch(name, shape, dtype, align=64)


def _coefficients(name, rows, c, dtype):
    """rows aligned vectors of c values (``_aligned``; each row padded to whole lines)."""
    per_line = 64 // np.dtype(dtype).itemsize
    return _aligned(name, (rows, -(-c // per_line) * per_line), dtype)[:, :c]


def _planes(a):
    """(N, C, ...) -> (N, C, L) view."""
    return a.reshape(a.shape[0], a.shape[1], math.prod(a.shape[2:]))  # N may be 0


def _columns(a):
    """(N, C) or (N, C, 1, ...) -> an (N, C) view, else None. Planes of one value (the
    (N, C, 1, 1) after a global pooling) are the columns' layout: the plane kernels
    spent a channel's loop on one strided value a sample, 6-9x the columns' time a
    value (256x1000x1x1 float32, 1 thread: 1.3-3.3x the NumPy reference), as
    Cython's rows path (s == 1) had not."""
    if a.ndim == 2:
        return a
    if math.prod(a.shape[2:]) == 1 and a.shape[0] > 0:   # (an empty batch: as before)
        return a.reshape(a.shape[0], a.shape[1])
    return None


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
    if _columns(x) is not None:
        coef = _coefficients("bn_coef", 3, c, x.dtype)
        _forward_columns(x.size, _columns(x), *args, _columns(out), *stats,
                         coef[0], coef[1], coef[2], _partials(x.shape[0], c))
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
    if _columns(x) is not None:
        coef = _coefficients("bn_coef", 4, c, x.dtype)
        _backward_columns(x.size, _columns(grad_out), _columns(x), *args, _columns(grad_in),
                          coef[0], coef[1], coef[2], coef[3], _partials(x.shape[0], c))
    else:
        _backward_planes(x.size, _planes(grad_out), _planes(x), *args, _planes(grad_in))
    return grad_in
