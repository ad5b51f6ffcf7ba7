"""Activations and their backward passes: one parallel elementwise pass each.

Every kernel takes 1-D views (``x.reshape(-1)``) of C-contiguous arrays, so one loop
serves any shape; softmax works row by row on (N, C). Constants are cast to the array's
dtype (``x.dtype.type``) so float32 kernels never widen to float64.
"""
import math

import numba
import numpy as np
from numba import prange

from . import row_exps, vmath
from ._buffers import copy_into, flat, out_like, overlap
from .config import (OPTIONS, ORDERED_OPTIONS, call_outlined, elementwise, helper, kernel,
                     serial_kernel)

_GELU_TANH_C = math.sqrt(2 / math.pi)
_GELU_TANH_K = 0.044715


# Values per tile of the two-pass kernels (softplus, GELU, mish): x's and out's tiles
# stay in L1 between the passes.
_TILE = 1024


# ------------------------------------------------------------------ kernels
@helper
def _scratch_tile(a, out, in_place):
    """A tile-sized buffer for copies of a's tiles when out is a (in place), else an
    empty view of out (no allocation; out's, not a's: a may be read-only, and the
    buffer's type must be writable for the copy in _input_tile to compile)."""
    return np.empty(min(a.shape[0], _TILE), a.dtype) if in_place else out[:0]


@helper
def _tile_stop(out, start, n):
    """The end of the tile of out that begins at start: start + _TILE where out[start]
    starts a 64-byte line, else the end of that line, so that the tiles after it start
    on lines (NumPy's large arrays start 16 bytes past one, and 512-bit accesses that
    straddle two lines cost: 16M float32 values, 1 thread, CPU time, x and out both 16
    bytes past a line against both on a line: GELU 0.49 / 0.40 ns a value, mish 0.57 /
    0.48; softplus 0.66 / 0.56)."""
    ahead = (64 - (out.ctypes.data + start * out.itemsize) % 64) % 64 // out.itemsize
    return min(n, start + (ahead if ahead > 0 else _TILE))


@helper
def _input_tile(a, start, stop, scratch, in_place):
    """a[start:stop], or a copy of it in scratch when out is a: the first pass writes
    out's tile before the second reads a's. The same two compiled passes then run in
    place and out of place, so the two give the same bits (a one-pass loop for the in-
    place case did not: fastmath reassociates a fused expression differently)."""
    if in_place:
        m = stop - start
        copy_into(scratch, a[start:stop])   # memcpy: the slice assignment went a value
        return scratch[:m]                  # at a time (0.28 ns each)
    return a[start:stop]


@elementwise(streams=True)
def _relu(x, out):  # IN x (n,); OUT out (n,)
    zero = x.dtype.type(0)
    for i in prange(x.shape[0]):
        v = x[i]
        out[i] = zero if v < zero else v  # NaN is not < 0: it propagates


@elementwise(streams=True)
def _relu_backward(grad_out, y, out):  # IN grad_out, y (n,); OUT out (n,)
    zero = y.dtype.type(0)
    for i in prange(y.shape[0]):
        # selected, as PyTorch's threshold_backward: NaN y passes grad_out, y <= 0 gives 0
        out[i] = zero if y[i] <= zero else grad_out[i]


@elementwise(streams=True)
def _leaky_relu(x, slope, out):  # IN x (n,); OUT out (n,)
    s = x.dtype.type(slope)
    zero = x.dtype.type(0)
    for i in prange(x.shape[0]):
        v = x[i]
        out[i] = v if v > zero else v * s


@elementwise(streams=True)
def _leaky_relu_backward(grad_out, x, slope, out):  # IN grad_out, x (n,); OUT out (n,)
    s = x.dtype.type(slope)
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    for i in prange(x.shape[0]):
        out[i] = grad_out[i] * (one if x[i] > zero else s)


@elementwise
def _sigmoid(x, out):  # IN x (n,); OUT out (n,)
    one = x.dtype.type(1)
    lo, hi = vmath.exp_limits(one)   # (-87, 88) in float32; float64's own range
    zero = x.dtype.type(0)
    for i in prange(x.shape[0]):
        # 1 / (1 + e**-x) with -x clamped to exp_core's range: in float32 1 for x > 87,
        # and 0 for x < -88 (PyTorch's 0 at -inf; the exact value is below 6e-39 there,
        # where the clamped formula would stop). No abs: one exp and one division.
        v = -x[i]
        s = one / (one + vmath.exp_core(min(max(v, lo), hi)))
        out[i] = zero if v > hi else s


@elementwise(streams=True)
def _sigmoid_backward(grad_out, y, out):  # IN grad_out, y (n,); OUT out (n,)
    one = y.dtype.type(1)
    for i in prange(y.shape[0]):
        out[i] = grad_out[i] * y[i] * (one - y[i])


@elementwise
def _silu(x, out):  # IN x (n,); OUT out (n,)
    one = x.dtype.type(1)
    lo, hi = vmath.exp_limits(one)   # (-87, 88) in float32; float64's own range
    zero = x.dtype.type(0)
    for i in prange(x.shape[0]):
        v = x[i]
        # x * sigmoid(x); below -88 it underflows: x * 0 (not x / (1 + e**88), which is
        # far from 0 near the float's max; -inf gives NaN, as PyTorch's x * sigmoid(x))
        out[i] = (v if -v <= hi else v * zero) / (one + vmath.exp_core(min(max(-v, lo), hi)))


@elementwise
def _silu_backward(grad_out, x, out):  # IN grad_out, x (n,); OUT out (n,)
    one = x.dtype.type(1)
    lo, hi = vmath.exp_limits(one)   # (-87, 88) in float32; float64's own range
    zero = x.dtype.type(0)
    for i in prange(x.shape[0]):
        v = x[i]
        s = one / (one + vmath.exp_core(min(max(-v, lo), hi)))
        s = s if -v <= hi else zero     # as the forward: 0 below -88
        out[i] = grad_out[i] * s * (one + v * (one - s))


@elementwise
def _gelu_tanh(x, out):  # IN x (n,); OUT out (n,)
    # 0.5 x (1 + tanh(u)) = x sigmoid(2u): one exp and one division, and no cancellation
    # where tanh(u) is near -1 (far below 0 the product stays relatively accurate)
    one = x.dtype.type(1)
    c2 = x.dtype.type(2 * _GELU_TANH_C)
    k = x.dtype.type(_GELU_TANH_K)
    lo, hi = vmath.exp_limits(one)   # (-87, 88) in float32; float64's own range
    zero = x.dtype.type(0)
    for i in prange(x.shape[0]):
        v = x[i]
        u = -c2 * (v + k * v * v * v)
        # where sigmoid(2u) underflows, v * 0 (as _silu: -inf gives NaN, as PyTorch's)
        out[i] = (v if u <= hi else v * zero) / (one + vmath.exp_core(min(max(u, lo), hi)))


@numba.njit(parallel=False, **ORDERED_OPTIONS)
def _gelu_tanh_backward_tile(grad_out, x, out):  # IN grad_out, x (m,); OUT out (m,)
    # in the written order (no reassociation), the adds explicit fmas: under reassoc
    # LLVM multiplied v c2 by (1 + 3 k v^2) first in the 512-bit body and by s first
    # in the scalar remainder (inspect_asm), so a value's bits depended on its place
    one = x.dtype.type(1)
    c2 = x.dtype.type(2 * _GELU_TANH_C)
    neg_c2k = x.dtype.type(-2 * _GELU_TANH_C * _GELU_TANH_K)
    k3 = x.dtype.type(3 * _GELU_TANH_K)
    lo, hi = vmath.exp_limits(one)   # (-87, 88) in float32; float64's own range
    bound = x.dtype.type(100.0)
    zero = x.dtype.type(0)
    for i in range(x.shape[0]):
        v = min(max(x[i], -bound), bound)   # beyond 100 s (1 - s) is 0: no x^3 overflow
        v2 = v * v
        a = v * vmath._fma(neg_c2k, v2, -c2)     # -c2 (v + k v^3)
        s = one / (one + vmath.exp_core(min(max(a, lo), hi)))
        s = zero if a > hi else s   # (sigmoid's 0 where it underflows, as _sigmoid)
        w = c2 * v * vmath._fma(k3, v2, one)     # c2 v (1 + 3 k v^2)
        slope = vmath._fma(w * s, one - s, s)
        out[i] = grad_out[i] * slope


@elementwise
def _gelu_tanh_backward(grad_out, x, out):  # IN grad_out, x (n,); OUT out (n,)
    # by tiles, an overlapped input's tile copied first (_input_tile): one loop over
    # the arrays themselves gave 1-ulp differences in place from out of place (fastmath
    # code compiled for out aliasing an input differs), as the two-pass kernels did
    n = x.shape[0]
    x_in_place = overlap(x, out)
    g_in_place = overlap(grad_out, out)
    x_scratch = _scratch_tile(x, out, x_in_place)
    g_scratch = _scratch_tile(grad_out, out, g_in_place)
    for start in range(0, n, _TILE):
        stop = min(n, start + _TILE)
        xs = _input_tile(x, start, stop, x_scratch, x_in_place)
        gs = _input_tile(grad_out, start, stop, g_scratch, g_in_place)
        _gelu_tanh_backward_tile(gs, xs, out[start:stop])


@helper
def _mish_value(v, e, two, cap):
    """mish(v) given e = exp(min(v, cap)): tanh(softplus(v)) = n / (n + 2) with
    n = e (e + 2); exactly v beyond cap."""
    n = e * (e + two)
    return v if v > cap else v * (n / (n + two))


@serial_kernel
def _mish_exps(x, out):  # IN x (m,); OUT out (m,) = exp(min(x, 20))
    cap = x.dtype.type(20.0)
    for i in range(x.shape[0]):
        out[i] = vmath.exp(min(x[i], cap))


@serial_kernel
def _mish_finish(x, out):  # IN x (m,); INOUT out (m,): exps -> mish
    two = x.dtype.type(2)
    cap = x.dtype.type(20.0)
    for i in range(x.shape[0]):
        out[i] = _mish_value(x[i], out[i], two, cap)


@elementwise
def _mish(x, out):  # IN x (n,); OUT out (n,)
    # one exp; two passes per tile (see _softplus)
    n = x.shape[0]
    in_place = overlap(x, out)
    scratch = _scratch_tile(x, out, in_place)
    start = 0
    while start < n:   # tiles of out aligned to its cache lines after the first
        stop = _tile_stop(out, start, n)
        xs = _input_tile(x, start, stop, scratch, in_place)
        _mish_exps(xs, out[start:stop])
        _mish_finish(xs, out[start:stop])
        start = stop


@helper
def _mish_slope(v, e, one, two):
    """d mish / dv at v <= 20 given e = exp(v): t + v (1 - t^2) e / (1 + e) with
    t = n / (n + 2), n = e (e + 2), over one denominator (1 - t^2 = 4 (1 + e)^2 / (n + 2)^2):
    (n (n + 2) + 4 v e (1 + e)) / (n + 2)^2, one division for the two-term form's two
    ((n + 2)^2 stays finite in float32 up to v = 22)."""
    n = e * (e + two)
    m = n + two
    return (n * m + two * two * v * e * (one + e)) / (m * m)


@serial_kernel
def _mish_backward_finish(grad_out, x, out):  # IN grad_out, x (m,); INOUT out (m,): exps
    one = x.dtype.type(1)
    two = x.dtype.type(2)
    cap = x.dtype.type(20.0)
    low = x.dtype.type(-1e4)
    minus_inf = x.dtype.type(-np.inf)
    for i in range(x.shape[0]):
        # beyond 20 the slope is 1 (and inf gives 1, not inf * 0); below -1e4 it is 0
        # (e = 0), but 4 v of a finite v past -max / 4 is -inf and -inf * e NaN: v is
        # -1e4 there (-inf keeps PyTorch's NaN)
        v = min(x[i], cap)
        if v < low and v > minus_inf:
            v = low
        slope = _mish_slope(v, out[i], one, two)
        out[i] = grad_out[i] * (one if x[i] > cap else slope)


@elementwise
def _mish_backward(grad_out, x, out):  # IN grad_out, x (n,); OUT out (n,)
    # two passes per tile as the forward
    n = x.shape[0]
    x_in_place = overlap(x, out)
    g_in_place = overlap(grad_out, out)
    x_scratch = _scratch_tile(x, out, x_in_place)
    g_scratch = _scratch_tile(grad_out, out, g_in_place)
    for start in range(0, n, _TILE):
        stop = min(n, start + _TILE)
        xs = _input_tile(x, start, stop, x_scratch, x_in_place)
        gs = _input_tile(grad_out, start, stop, g_scratch, g_in_place)
        _mish_exps(xs, out[start:stop])
        _mish_backward_finish(gs, xs, out[start:stop])


@elementwise(streams=True)
def _hardsigmoid(x, out):  # IN x (n,); OUT out (n,)
    zero = x.dtype.type(0)
    three = x.dtype.type(3)
    six = x.dtype.type(6)
    for i in prange(x.shape[0]):
        t = x[i] + three
        t = zero if t < zero else t    # selects: NaN stays NaN
        t = six if t > six else t
        out[i] = t / six


@elementwise(streams=True)
def _hardsigmoid_backward(grad_out, x, out):  # IN grad_out, x (n,); OUT out (n,)
    zero = x.dtype.type(0)
    three = x.dtype.type(3)
    sixth = x.dtype.type(1 / 6)
    for i in prange(x.shape[0]):
        v = x[i]
        # selected, as PyTorch's: an infinite grad_out outside (-3, 3) gives 0
        out[i] = grad_out[i] * sixth if (v > -three) & (v < three) else zero


# fastmath=False explicit: a callee inherits an unset fastmath
@numba.njit(cache=OPTIONS["cache"], fastmath=False)
def _divide(a, b):
    """a / b that fastmath cannot turn into a * (1 / b) nor reassociate."""
    return a / b


@elementwise(streams=True)
def _hardswish(x, out):  # IN x (n,); OUT out (n,)
    zero = x.dtype.type(0)
    three = x.dtype.type(3)
    six = x.dtype.type(6)
    for i in prange(x.shape[0]):
        v = x[i]
        t = v + three
        t = zero if t < zero else t
        t = six if t > six else t
        # PyTorch's (v t) / 6, the division kept: times 1/6 was 1 ulp off it for a third
        # of float32 inputs, and fastmath compiled v t / 6 differently in the serial and
        # parallel versions
        out[i] = _divide(v * t, six)


@elementwise(streams=True)
def _hardswish_backward(grad_out, x, out):  # IN grad_out, x (n,); OUT out (n,)
    zero = x.dtype.type(0)
    half = x.dtype.type(0.5)
    three = x.dtype.type(3)
    for i in prange(x.shape[0]):
        v = x[i]
        g = grad_out[i]
        out[i] = zero if v <= -three else (g if v >= three else g * (v / three + half))


@elementwise
def _elu(x, alpha, out):  # IN x (n,); OUT out (n,)
    a = x.dtype.type(alpha)
    zero = x.dtype.type(0)
    for i in prange(x.shape[0]):
        v = x[i]
        # x itself at +-0 (>=), as PyTorch's ELU for any alpha: alpha expm1(-0) loses -0
        out[i] = v if v >= zero else a * vmath.expm1_nonpos(min(v, zero))


# (ordered: under reassoc LLVM regrouped grad_out (a e**x) around the float64 exp's last
# product, fma(s1, q, s1) 2**-k: an infinite grad_out times e**x = 0 (x = -inf, or below
# -745.13) gave inf instead of PyTorch's inf * 0 = NaN)
@elementwise(ordered=True)
def _elu_backward(grad_out, x, alpha, out):  # IN grad_out, x (n,); OUT out (n,)
    a = x.dtype.type(alpha)
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    for i in prange(x.shape[0]):
        v = x[i]
        # (NaN: the exp's side, whose min keeps the NaN, as PyTorch's CPU kernel)
        out[i] = grad_out[i] * (one if v > zero else a * vmath.exp_nonpos(min(v, zero)))


@helper
def _softplus_value(v, b, t, inv_b, e, zero):
    """softplus of v = z / b given e = exp(-|z|): max(z, 0) + log1p(e), v beyond the
    threshold."""
    z = v * b
    return v if z > t else vmath.add_log1p_small(z if z > zero else zero, e) * inv_b


@serial_kernel
def _softplus_exps(x, b, out):  # IN x (m,); OUT out (m,) = exp(-|b x|)
    for i in range(x.shape[0]):
        out[i] = vmath.exp_nonpos_horner(-abs(x[i] * b))


@serial_kernel
def _softplus_finish(x, b, t, inv_b, out):  # IN x (m,); INOUT out (m,): exps -> softplus
    zero = x.dtype.type(0)
    for i in range(x.shape[0]):
        out[i] = _softplus_value(x[i], b, t, inv_b, out[i], zero)


@serial_kernel
def _softplus_exps_beta1(x, out):  # _softplus_exps at beta = 1 (a constant: no multiply)
    one = x.dtype.type(1)
    for i in range(x.shape[0]):
        out[i] = vmath.exp_nonpos_horner(-abs(x[i] * one))


@serial_kernel
def _softplus_finish_beta1(x, t, out):  # _softplus_finish at beta = 1 (x * 1, r * 1 gone)
    zero = x.dtype.type(0)
    one = x.dtype.type(1)
    for i in range(x.shape[0]):
        out[i] = _softplus_value(x[i], one, t, one, out[i], zero)


@elementwise
def _softplus(x, beta, threshold, out):  # IN x (n,); OUT out (n,)
    # max(z, 0) + log1p(exp(-|z|)), z = beta x: no overflow, exact where exp(z) is tiny
    # (a VAE's softplus std must not round to 0), and in float32 vectorized (libm's
    # log1p is scalar: 26 ns a value); NaN propagates. Two passes per tile of out (the
    # exps, then the log1ps: each element's exp chain feeding its log1p chain in one
    # loop is longer than the out-of-order window covers; 1.44 -> 0.85 ns a value, 1
    # thread in cache); in place through a copy of each tile of x (_input_tile). beta = 1
    # (PyTorch's default) runs copies of the passes with the constant 1, whose multiplies
    # (z = x beta, the result by 1 / beta) LLVM drops: x * 1 is x, the same bits (as the
    # Cython backend's, 157eea9). The exp and the log1p are the Cython backend's
    # (Horner's rule, max(z, 0) + log1p(e) in one explicit fma: vmath.exp_nonpos_horner,
    # add_log1p_small), the same bits as it, and a value's bits do not depend on its
    # place in a tile, so the tiles start on out's cache lines as GELU's and mish's.
    b = x.dtype.type(beta)
    t = x.dtype.type(threshold)
    inv_b = x.dtype.type(1) / b
    beta1 = b == x.dtype.type(1)
    n = x.shape[0]
    in_place = overlap(x, out)
    scratch = _scratch_tile(x, out, in_place)
    start = 0
    while start < n:   # tiles of out aligned to its cache lines after the first
        stop = _tile_stop(out, start, n)
        xs = _input_tile(x, start, stop, scratch, in_place)
        if beta1:
            _softplus_exps_beta1(xs, out[start:stop])
            _softplus_finish_beta1(xs, t, out[start:stop])
        else:
            _softplus_exps(xs, b, out[start:stop])
            _softplus_finish(xs, b, t, inv_b, out[start:stop])
        start = stop


@elementwise
def _softplus_backward(grad_out, x, beta, threshold, out):  # IN grad_out, x (n,); OUT out
    b = x.dtype.type(beta)
    t = x.dtype.type(threshold)
    one = x.dtype.type(1)
    for i in prange(x.shape[0]):
        z = x[i] * b            # sigmoid(z) as 1 / (1 + exp(-z)): exp(88+) = inf gives 0
        out[i] = grad_out[i] if z > t else grad_out[i] / (one + vmath.exp(-z))


@elementwise(streams=True)
def _softsign(x, out):  # IN x (n,); OUT out (n,)
    one = x.dtype.type(1)
    for i in prange(x.shape[0]):
        v = x[i]
        out[i] = v / (one + abs(v))


@elementwise(streams=True)
def _softsign_backward(grad_out, x, out):  # IN grad_out, x (n,); OUT out (n,)
    one = x.dtype.type(1)
    for i in prange(x.shape[0]):
        d = one + abs(x[i])
        out[i] = grad_out[i] / (d * d)


@elementwise(streams=True)
def _hardtanh(x, lo, hi, out):  # IN x (n,); OUT out (n,)
    a = x.dtype.type(lo)
    b = x.dtype.type(hi)
    for i in prange(x.shape[0]):
        v = x[i]
        out[i] = a if v < a else (b if v > b else v)  # NaN: both false, stays NaN


@elementwise(streams=True)
def _hardtanh_backward(grad_out, x, lo, hi, out):  # IN grad_out, x (n,); OUT out (n,)
    a = x.dtype.type(lo)
    b = x.dtype.type(hi)
    zero = x.dtype.type(0)
    for i in prange(x.shape[0]):
        v = x[i]
        out[i] = grad_out[i] if (v > a and v < b) else zero  # NaN: 0


@elementwise
def _tanh(x, out):  # IN x (n,); OUT out (n,)
    for i in prange(x.shape[0]):
        out[i] = vmath.tanh(x[i])


@elementwise(streams=True)
def _tanh_backward(grad_out, y, out):  # IN grad_out, y (n,); OUT out (n,)
    one = y.dtype.type(1)
    for i in prange(y.shape[0]):
        out[i] = grad_out[i] * (one - y[i] * y[i])


@serial_kernel
def _gelu_heads(x, out):  # IN x (m,); OUT out (m,) = gelu_head(x)
    for i in range(x.shape[0]):
        out[i] = vmath.gelu_head(x[i])


@serial_kernel
def _gelu_tails(x, out):  # IN x (m,); INOUT out (m,): heads -> gelu
    for i in range(x.shape[0]):
        out[i] = vmath.gelu_tail(x[i], out[i])


@elementwise
def _gelu(x, out):  # IN x (n,); OUT out (n,)
    # two passes per tile (see _softplus; 0.74 -> 0.58 ns a value, 1 thread in cache)
    n = x.shape[0]
    in_place = overlap(x, out)
    scratch = _scratch_tile(x, out, in_place)
    start = 0
    while start < n:   # tiles of out aligned to its cache lines after the first
        stop = _tile_stop(out, start, n)
        xs = _input_tile(x, start, stop, scratch, in_place)
        _gelu_heads(xs, out[start:stop])
        _gelu_tails(xs, out[start:stop])
        start = stop


@elementwise
def _gelu_backward(grad_out, x, out):  # IN grad_out, x (n,); OUT out (n,)
    for i in prange(x.shape[0]):
        out[i] = grad_out[i] * vmath.gelu_grad(x[i])


# sin/cos go block by block: the branch-free vmath.sin_fast in a loop LLVM vectorizes,
# and vmath.sin (libm beyond its range, |arg| > 2**20 in float32) for a block that has
# such an argument, so each element's value does not depend on its neighbours.
# A block of input that out overlaps (in place) is range-tested before it is written.
# The per-block helpers take slices: a loop over range(lo, hi) indexing the whole
# array does not vectorize (Numba cannot prove i >= 0 and keeps the wraparound code).
_TRIG_BLOCK = 16384


@helper
def _sine_span(x, w, out, in_place):  # IN x (m,); OUT out (m,)
    beyond = False
    if in_place:
        for i in range(x.shape[0]):
            beyond |= vmath.trig_beyond(w * x[i])
        if not beyond:
            for i in range(x.shape[0]):
                out[i] = vmath.sin_fast(w * x[i])
    else:
        for i in range(x.shape[0]):
            v = w * x[i]
            out[i] = vmath.sin_fast(v)
            beyond |= vmath.trig_beyond(v)
    if beyond:
        for i in range(x.shape[0]):
            out[i] = vmath.sin(w * x[i])


@helper
def _sine_backward_span(grad_out, x, w, out, in_place):  # IN grad_out, x (m,); OUT out (m,)
    beyond = False
    if in_place:
        for i in range(x.shape[0]):
            beyond |= vmath.trig_beyond(w * x[i])
        if not beyond:
            for i in range(x.shape[0]):
                out[i] = grad_out[i] * w * vmath.cos_fast(w * x[i])
    else:
        for i in range(x.shape[0]):
            v = w * x[i]
            out[i] = grad_out[i] * w * vmath.cos_fast(v)
            beyond |= vmath.trig_beyond(v)
    if beyond:
        for i in range(x.shape[0]):
            out[i] = grad_out[i] * w * vmath.cos(w * x[i])


@kernel
def _sine(x, omega, out):  # IN x (n,); OUT out (n,)
    w = x.dtype.type(omega)
    n = x.shape[0]
    in_place = overlap(x, out)
    for b in prange((n + _TRIG_BLOCK - 1) // _TRIG_BLOCK):
        lo = b * _TRIG_BLOCK
        hi = min(lo + _TRIG_BLOCK, n)
        _sine_span(x[lo:hi], w, out[lo:hi], in_place)


@kernel
def _sine_backward(grad_out, x, omega, out):  # IN grad_out, x (n,); OUT out (n,)
    w = x.dtype.type(omega)
    n = x.shape[0]
    in_place = overlap(x, out) or overlap(grad_out, out)
    for b in prange((n + _TRIG_BLOCK - 1) // _TRIG_BLOCK):
        lo = b * _TRIG_BLOCK
        hi = min(lo + _TRIG_BLOCK, n)
        _sine_backward_span(grad_out[lo:hi], x[lo:hi], w, out[lo:hi], in_place)


# Softmax runs blocks of about row_exps.ROW_BLOCK values (whole rows, at least one) in a
# prange, each block a call of a serial loop over its rows (config.call_outlined, as
# the elementwise kernels), whose exps go out of line too (row_exps.py says why). Rows are
# independent: the split changes no bits. (log_softmax in this form: 10-33 wide rows
# 0.66-0.84x Cython's time, but the sums of the flat pass's exps vectorized in another
# order, 1 ulp off for 33 columns, and wide rows 5-15% slower: it stays as it was.)
@serial_kernel
def _softmax_rows(x, out):  # IN x (m, C); OUT out (m, C)
    m, c = x.shape
    one = x.dtype.type(1)
    if c >= row_exps.WIDE:
        for i in range(m):
            row_exps.row_exps(x[i], vmath.row_max(x[i]), out[i])
    else:
        row_exps.narrow_exps(x, out)
    for i in range(m):
        # summed in a loop of its own that only reads out: one loop writing out and
        # summing stays scalar where out is x (in place), and a single float32 running
        # sum of a 10^6-wide row is off by 2e-3 relative; this one vectorizes either way
        s = x.dtype.type(0)
        for j in range(c):
            s += out[i, j]
        inv = one / s
        for j in range(c):
            out[i, j] *= inv


@kernel
def _softmax(x, out):  # IN x (N, C); OUT out (N, C)
    n = x.shape[0]
    block = row_exps.rows_per_block(x.shape[1])
    for b in prange((n + block - 1) // block):
        lo = b * block
        call_outlined(_softmax_rows, (x[lo:lo + block], out[lo:lo + block]))


@kernel
def _softmax_backward(grad_out, y, out):  # IN grad_out, y (N, C); OUT out (N, C)
    n, c = y.shape
    for i in prange(n):
        dot = y.dtype.type(0)
        for j in range(c):
            dot += grad_out[i, j] * y[i, j]
        for j in range(c):
            out[i, j] = y[i, j] * (grad_out[i, j] - dot)


@kernel
def _log_softmax(x, out):  # IN x (N, C); OUT out (N, C)
    n, c = x.shape
    for i in prange(n):
        m = vmath.row_max(x[i])
        for j in range(c):
            # x - m stored here, log(s) taken off in a second pass: in one expression
            # fastmath's reassociation makes (x - m) - log(s) into x - (m + log(s)), and
            # m + log(s) rounds log(s) off where |m| is large (1e4 in float32: -0.69336
            # for log(1/2))
            out[i, j] = x[i, j] - m
        s = x.dtype.type(0)
        for j in range(c):  # its own loop, reading out only: see _softmax
            s += vmath.exp_nonpos(out[i, j])
        log_s = math.log(s)  # scalar: one libm log per row
        for j in range(c):
            out[i, j] -= log_s


@kernel
def _log_softmax_backward(grad_out, y, out):  # IN grad_out, y (N, C); OUT out (N, C)
    n, c = y.shape
    for i in prange(n):
        total = y.dtype.type(0)
        for j in range(c):
            total += grad_out[i, j]
        for j in range(c):
            out[i, j] = grad_out[i, j] - vmath.exp(y[i, j]) * total


# ------------------------------------------------------------------ op wrappers
def _unary(kernel, x, out, *params):
    """out = kernel over the flat views of x (params between x and out); out allocated
    when None."""
    out = out_like(x, out)
    kernel(x.size, flat(x), *params, flat(out))
    return out


def _binary(kernel, grad_out, saved, out, *params):
    """out = kernel over grad_out and the saved forward input or output, flat."""
    out = out_like(grad_out, out)
    kernel(saved.size, flat(grad_out), flat(saved), *params, flat(out))
    return out


def relu(x, out=None):
    """y = max(x, 0). x: any shape; out: same shape. Returns y."""
    return _unary(_relu, x, out)


def relu_backward(grad_out, y, out=None):
    """grad_in = grad_out * (y > 0). grad_out, y, out: same shape."""
    return _binary(_relu_backward, grad_out, y, out)


def leaky_relu(x, negative_slope=0.01, out=None):
    """y = x if x > 0 else negative_slope * x. x: any shape; out: same shape."""
    return _unary(_leaky_relu, x, out, float(negative_slope))


def leaky_relu_backward(grad_out, x, negative_slope=0.01, out=None):
    """grad_in = grad_out * (1 if x > 0 else negative_slope). x: the forward input."""
    return _binary(_leaky_relu_backward, grad_out, x, out, float(negative_slope))


def sigmoid(x, out=None):
    """y = 1 / (1 + exp(-x)), overflow-free for any x. x: any shape."""
    return _unary(_sigmoid, x, out)


def sigmoid_backward(grad_out, y, out=None):
    """grad_in = grad_out * y * (1 - y). y: sigmoid's output, same shape."""
    return _binary(_sigmoid_backward, grad_out, y, out)


def tanh(x, out=None):
    """y = tanh(x). x: any shape."""
    return _unary(_tanh, x, out)


def tanh_backward(grad_out, y, out=None):
    """grad_in = grad_out * (1 - y**2). y: tanh's output, same shape."""
    return _binary(_tanh_backward, grad_out, y, out)


def gelu(x, out=None):
    """y = 0.5 * x * (1 + erf(x / sqrt(2))), PyTorch's exact GELU. x: any shape."""
    return _unary(_gelu, x, out)


def gelu_backward(grad_out, x, out=None):
    """grad_in = grad_out * (Phi(x) + x * phi(x)). x: the forward input, same shape."""
    return _binary(_gelu_backward, grad_out, x, out)


def sine(x, omega=1.0, out=None):
    """y = sin(omega * x). x: any shape."""
    return _unary(_sine, x, out, float(omega))


def sine_backward(grad_out, x, omega=1.0, out=None):
    """grad_in = grad_out * omega * cos(omega * x). x: the forward input."""
    return _binary(_sine_backward, grad_out, x, out, float(omega))


def gelu_tanh(x, out=None):
    """y = 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))), PyTorch's
    GELU(approximate='tanh'). x: any shape."""
    return _unary(_gelu_tanh, x, out)


def gelu_tanh_backward(grad_out, x, out=None):
    """The gradient of gelu_tanh. x: the forward input, same shape."""
    return _binary(_gelu_tanh_backward, grad_out, x, out)


def mish(x, out=None):
    """y = x tanh(softplus(x)). x: any shape."""
    return _unary(_mish, x, out)


def mish_backward(grad_out, x, out=None):
    """grad_in = grad_out (t + x (1 - t^2) sigmoid(x)), t = tanh(softplus(x)). x: the
    forward input, same shape."""
    return _binary(_mish_backward, grad_out, x, out)


def hardsigmoid(x, out=None):
    """y = min(max(x + 3, 0), 6) / 6. x: any shape."""
    return _unary(_hardsigmoid, x, out)


def hardsigmoid_backward(grad_out, x, out=None):
    """grad_in = grad_out / 6 where -3 < x < 3, else 0. x: the forward input."""
    return _binary(_hardsigmoid_backward, grad_out, x, out)


def hardswish(x, out=None):
    """y = x * min(max(x + 3, 0), 6) / 6. x: any shape."""
    return _unary(_hardswish, x, out)


def hardswish_backward(grad_out, x, out=None):
    """grad_in = 0 (x <= -3), grad_out (x >= 3), grad_out (x / 3 + 1/2) between."""
    return _binary(_hardswish_backward, grad_out, x, out)


def silu(x, out=None):
    """y = x * sigmoid(x). x: any shape."""
    return _unary(_silu, x, out)


def silu_backward(grad_out, x, out=None):
    """grad_in = grad_out * s * (1 + x * (1 - s)), s = sigmoid(x). x: the forward input."""
    return _binary(_silu_backward, grad_out, x, out)


def elu(x, alpha=1.0, out=None):
    """y = x if x > 0 else alpha * (exp(x) - 1). x: any shape."""
    return _unary(_elu, x, out, float(alpha))


def elu_backward(grad_out, x, alpha=1.0, out=None):
    """grad_in = grad_out * (1 if x > 0 else alpha * exp(x)). x: the forward input."""
    return _binary(_elu_backward, grad_out, x, out, float(alpha))


def softplus(x, beta=1.0, threshold=20.0, out=None):
    """y = log(1 + exp(beta x)) / beta, or x where beta x > threshold. x: any shape."""
    return _unary(_softplus, x, out, float(beta), float(threshold))


def softplus_backward(grad_out, x, beta=1.0, threshold=20.0, out=None):
    """grad_in = grad_out * sigmoid(beta x), or grad_out where beta x > threshold."""
    return _binary(_softplus_backward, grad_out, x, out, float(beta), float(threshold))


def softsign(x, out=None):
    """y = x / (1 + |x|). x: any shape."""
    return _unary(_softsign, x, out)


def softsign_backward(grad_out, x, out=None):
    """grad_in = grad_out / (1 + |x|)^2."""
    return _binary(_softsign_backward, grad_out, x, out)


def hardtanh(x, min_val=-1.0, max_val=1.0, out=None):
    """y = min(max(x, min_val), max_val). x: any shape."""
    return _unary(_hardtanh, x, out, float(min_val), float(max_val))


def hardtanh_backward(grad_out, x, min_val=-1.0, max_val=1.0, out=None):
    """grad_in = 0 where x <= min_val or x >= max_val, else grad_out."""
    return _binary(_hardtanh_backward, grad_out, x, out, float(min_val), float(max_val))


def softmax(x, out=None):
    """Row-wise softmax along the last axis. x: (N, C); out: (N, C)."""
    out = out_like(x, out)
    _softmax(x.size, x, out)
    return out


def softmax_backward(grad_out, y, out=None):
    """grad_in = y * (grad_out - sum(grad_out * y, axis=1)). grad_out, y: (N, C)."""
    out = out_like(grad_out, out)
    _softmax_backward(y.size, grad_out, y, out)
    return out


def log_softmax(x, out=None):
    """Row-wise log-softmax along the last axis. x: (N, C); out: (N, C)."""
    out = out_like(x, out)
    _log_softmax(x.size, x, out)
    return out


def log_softmax_backward(grad_out, y, out=None):
    """grad_in = grad_out - exp(y) * sum(grad_out, axis=1). grad_out, y: (N, C)."""
    out = out_like(grad_out, out)
    _log_softmax_backward(y.size, grad_out, y, out)
    return out
