"""Activations and their backward passes: grid-stride elementwise kernels, and row-wise
softmax with a group of config.ROW_LANES threads (a warp) per row (shared-memory max
and sum).

Arrays: any shape (softmax: (N, C)), C-contiguous; NumPy or device arrays (see
``_common.Call``).
"""
import math

import numba
import numpy as np
from numba import cuda

from . import config
from ._common import Call, dcos, dlog, dsin, flat
from ._reduce import cached_factory, group_sum, row_max_sumexp
from .launch import jit_kernel

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_TANH_C2 = 2.0 * math.sqrt(2.0 / math.pi)  # 0.5 (1 + tanh(u)) = sigmoid(2u)
_GELU_TANH_K = 0.044715


# ------------------------------------------------------------------ device functions
@cuda.jit(device=True)
def sigmoid_scalar(z):
    """1 / (1 + exp(-z)) with neither branch overflowing, in z's type."""
    one = type(z)(1)
    if z >= 0:
        return one / (one + math.exp(-z))
    e = math.exp(z)
    return e / (one + e)


@cuda.jit(device=True)
def gelu_scalar(z):
    f = type(z)
    return f(0.5) * z * (f(1) + math.erf(z * f(_SQRT1_2)))


@cuda.jit(device=True)
def gelu_grad_scalar(z):
    f = type(z)
    return (f(0.5) * (f(1) + math.erf(z * f(_SQRT1_2)))
            + z * math.exp(f(-0.5) * z * z) * f(_INV_SQRT_2PI))


# --------------------------------------------------------------------------- kernels
@jit_kernel
def _relu(x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        out[i] = v if v > 0 or v != v else 0  # NaN propagates as in torch.relu


@jit_kernel
def _relu_backward(g, y, out):
    zero = g.dtype.type(0)
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        out[i] = zero if y[i] <= 0 else g[i]  # NaN y passes g, as PyTorch's


@jit_kernel
def _leaky_relu(x, slope, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        out[i] = v if v > 0 else v * slope


@jit_kernel
def _leaky_relu_backward(g, x, slope, out):
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        out[i] = g[i] if x[i] > 0 else g[i] * slope


@jit_kernel
def _sigmoid(x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = sigmoid_scalar(x[i])


@jit_kernel
def _sigmoid_backward(g, y, out):
    one = y.dtype.type(1)
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        out[i] = g[i] * y[i] * (one - y[i])


@jit_kernel
def _tanh(x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = math.tanh(x[i])


@jit_kernel
def _tanh_backward(g, y, out):
    one = y.dtype.type(1)
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        out[i] = g[i] * (one - y[i] * y[i])


@jit_kernel
def _gelu(x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = gelu_scalar(x[i])


@jit_kernel
def _gelu_backward(g, x, out):
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        out[i] = g[i] * gelu_grad_scalar(x[i])


@jit_kernel
def _silu(x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = x[i] * sigmoid_scalar(x[i])


@jit_kernel
def _silu_backward(g, x, out):
    one = x.dtype.type(1)
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        s = sigmoid_scalar(x[i])
        out[i] = g[i] * s * (one + x[i] * (one - s))


@jit_kernel
def _gelu_tanh(x, out):
    c2, k = x.dtype.type(_GELU_TANH_C2), x.dtype.type(_GELU_TANH_K)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        out[i] = v * sigmoid_scalar(c2 * (v + k * v * v * v))


@jit_kernel
def _gelu_tanh_backward(g, x, out):
    f = x.dtype.type
    c2, k, k3, one, lim = f(_GELU_TANH_C2), f(_GELU_TANH_K), f(3 * _GELU_TANH_K), f(1), f(100)
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        v = x[i]   # clamped to +-100 (NaN stays): beyond, s (1 - s) is 0; no x^3 overflow
        v = -lim if v < -lim else (lim if v > lim else v)
        s = sigmoid_scalar(c2 * (v + k * v * v * v))
        out[i] = g[i] * (s + v * s * (one - s) * c2 * (one + k3 * v * v))


@jit_kernel
def _mish(x, out):
    two, cap = x.dtype.type(2), x.dtype.type(20)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]   # tanh(softplus(v)) = n / (n + 2), n = e^v (e^v + 2); 1 beyond 20
        e = math.exp(cap if v > cap else v)
        n = e * (e + two)
        out[i] = v if v > cap else v * (n / (n + two))   # exactly x beyond 20


@jit_kernel
def _mish_backward(g, x, out):
    one, two, cap = x.dtype.type(1), x.dtype.type(2), x.dtype.type(20)
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        v = x[i]   # beyond 20, 1 - t^2 is 0: inf gives 1, not inf * 0 (NaN stays NaN)
        v = cap if v > cap else v
        e = math.exp(v)
        n = e * (e + two)
        t = n / (n + two)
        out[i] = g[i] if x[i] > cap else g[i] * (t + v * (one - t * t) * e / (one + e))


@jit_kernel
def _hardsigmoid(x, out):
    zero, three, six = x.dtype.type(0), x.dtype.type(3), x.dtype.type(6)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        t = x[i] + three
        t = zero if t < zero else t     # selects: NaN stays NaN
        t = six if t > six else t
        out[i] = t / six


@jit_kernel
def _hardsigmoid_backward(g, x, out):
    zero, three, six = x.dtype.type(0), x.dtype.type(3), x.dtype.type(6)
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        v = x[i]
        out[i] = g[i] / six if v > -three and v < three else zero


@jit_kernel
def _hardswish(x, out):
    zero, three, six = x.dtype.type(0), x.dtype.type(3), x.dtype.type(6)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        t = v + three
        t = zero if t < zero else t
        t = six if t > six else t
        out[i] = v * t / six


@jit_kernel
def _hardswish_backward(g, x, out):
    zero, half, three = x.dtype.type(0), x.dtype.type(0.5), x.dtype.type(3)
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        v = x[i]
        # NaN: NaN, as PyTorch's CPU kernel
        out[i] = zero if v <= -three else (g[i] if v >= three else g[i] * (v / three + half))


@jit_kernel
def _elu(x, alpha, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        # x itself at +-0 (>=), as PyTorch's ELU for any alpha; expm1 takes v < 0 or NaN
        out[i] = v if v >= 0 else alpha * math.expm1(v)


@jit_kernel
def _elu_backward(g, x, alpha, out):
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        v = x[i]
        out[i] = g[i] if v > 0 else g[i] * alpha * math.exp(v)  # NaN: NaN, as PyTorch's CPU


@jit_kernel
def _softplus(x, beta, threshold, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        z = v * beta            # max(z, 0) + log1p(exp(-|z|)): no overflow; NaN propagates
        lp = math.log1p(math.exp(-abs(z)))
        smooth = z + lp if z > 0 else lp
        out[i] = v if z > threshold else smooth / beta


@jit_kernel
def _softplus_backward(g, x, beta, threshold, out):
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        z = x[i] * beta
        out[i] = g[i] if z > threshold else g[i] * sigmoid_scalar(z)


@jit_kernel
def _softsign(x, out):
    one = x.dtype.type(1)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = x[i] / (one + abs(x[i]))


@jit_kernel
def _softsign_backward(g, x, out):
    one = x.dtype.type(1)
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        d = one + abs(x[i])
        out[i] = g[i] / (d * d)


@jit_kernel
def _hardtanh(x, lo, hi, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        out[i] = lo if v < lo else (hi if v > hi else v)  # NaN stays NaN


@jit_kernel
def _hardtanh_backward(g, x, lo, hi, out):
    zero = g.dtype.type(0)
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        v = x[i]
        out[i] = g[i] if (v > lo and v < hi) else zero  # NaN: 0, as PyTorch's CPU


@jit_kernel
def _sine(x, omega, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = dsin(omega * x[i])  # NaN for an infinite x


@jit_kernel
def _sine_backward(g, x, omega, out):
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        out[i] = g[i] * omega * dcos(omega * x[i])


@cached_factory
def _softmax_kernels(threads, lanes, dtype, log=False):
    """(forward, backward) of softmax, or of log-softmax when log is True."""
    groups = threads // lanes
    cast = numba.from_dtype(np.dtype(dtype))  # a cast in device code

    @jit_kernel(threads=threads)
    def forward(x, out):
        """x, out: (N, C). A group of `lanes` threads per row (grid-stride over rows),
        two reads of it (``row_max_sumexp``, then the output); exp in x's type, the sum
        in float64. out = exp(x - m) / s, or (x - m) - log s for log-softmax."""
        sh = cuda.shared.array((groups, lanes), np.float64)
        n, c = x.shape
        lane = cuda.threadIdx.x % lanes
        for first in range(cuda.blockIdx.x * groups, n, cuda.gridDim.x * groups):
            row = first + cuda.threadIdx.x // lanes
            valid = row < n
            m, s = row_max_sumexp(sh, x, row, valid, cast(-math.inf))
            if valid and log:
                # (x - m) - log(s): a rounded m + log(s) loses log(s)'s digits for large m
                log_s = dlog(s)  # -inf for a row of -inf: NaN out, as the CPU's
                for j in range(lane, c, lanes):
                    out[row, j] = cast((x[row, j] - m) - log_s)
            elif valid:
                m = cast(m)
                inv_s = cast(1.0 / s)
                for j in range(lane, c, lanes):
                    out[row, j] = math.exp(x[row, j] - m) * inv_s

    @jit_kernel(threads=threads)
    def backward(g, y, out):
        """out = y * (g - sum(g * y, axis=1)), or g - exp(y) * sum(g, axis=1) for
        log-softmax; g, y, out: (N, C), as forward."""
        sh = cuda.shared.array((groups, lanes), np.float64)
        n, c = g.shape
        lane = cuda.threadIdx.x % lanes
        for first in range(cuda.blockIdx.x * groups, n, cuda.gridDim.x * groups):
            row = first + cuda.threadIdx.x // lanes
            valid = row < n
            d = np.float64(0.0)
            if valid:
                for j in range(lane, c, lanes):
                    d += g[row, j] if log else g[row, j] * y[row, j]
            d = cast(group_sum(sh, d))
            if valid and log:
                for j in range(lane, c, lanes):
                    out[row, j] = g[row, j] - math.exp(y[row, j]) * d
            elif valid:
                for j in range(lane, c, lanes):
                    out[row, j] = y[row, j] * (g[row, j] - d)

    return forward, backward


# ------------------------------------------------------------------------ launchers
def _unary(kernel, x, out, *params):
    call = Call(x, out)
    dx = call.arg(x)
    dout = call.out(out, x.shape, x.dtype)
    n = dx.size
    if n:
        kernel[config.blocks(n), config.THREADS](flat(dx), *params, flat(dout))
    return call.done(dout, out)


def _binary(kernel, a, b, out, *params):
    call = Call(a, b, out)
    da, db = call.arg(a), call.arg(b)
    dout = call.out(out, a.shape, a.dtype)
    n = da.size
    if n:
        kernel[config.blocks(n), config.THREADS](flat(da), flat(db), *params, flat(dout))
    return call.done(dout, out)


def relu(x, out=None):
    """y = max(x, 0). x: any shape; out: same shape."""
    return _unary(_relu, x, out)


def relu_backward(grad_out, y, out=None):
    """grad_in = grad_out * (y > 0). grad_out, y: same shape."""
    return _binary(_relu_backward, grad_out, y, out)


def leaky_relu(x, negative_slope=0.01, out=None):
    """y = x if x > 0 else negative_slope * x. x: any shape."""
    return _unary(_leaky_relu, x, out, x.dtype.type(negative_slope))


def leaky_relu_backward(grad_out, x, negative_slope=0.01, out=None):
    """grad_in = grad_out * (1 if x > 0 else negative_slope). x: the forward input."""
    return _binary(_leaky_relu_backward, grad_out, x, out, grad_out.dtype.type(negative_slope))


def sigmoid(x, out=None):
    """y = 1 / (1 + exp(-x)), overflow-free. x: any shape."""
    return _unary(_sigmoid, x, out)


def sigmoid_backward(grad_out, y, out=None):
    """grad_in = grad_out * y * (1 - y). y: sigmoid's output."""
    return _binary(_sigmoid_backward, grad_out, y, out)


def tanh(x, out=None):
    """y = tanh(x). x: any shape."""
    return _unary(_tanh, x, out)


def tanh_backward(grad_out, y, out=None):
    """grad_in = grad_out * (1 - y**2). y: tanh's output."""
    return _binary(_tanh_backward, grad_out, y, out)


def gelu(x, out=None):
    """y = 0.5 * x * (1 + erf(x / sqrt(2))). x: any shape."""
    return _unary(_gelu, x, out)


def gelu_backward(grad_out, x, out=None):
    """grad_in = grad_out * (Phi(x) + x * phi(x)). x: the forward input."""
    return _binary(_gelu_backward, grad_out, x, out)


def silu(x, out=None):
    """y = x * sigmoid(x). x: any shape."""
    return _unary(_silu, x, out)


def silu_backward(grad_out, x, out=None):
    """grad_in = grad_out * s * (1 + x * (1 - s)), s = sigmoid(x). x: the forward input."""
    return _binary(_silu_backward, grad_out, x, out)


def elu(x, alpha=1.0, out=None):
    """y = x if x > 0 else alpha * (exp(x) - 1). x: any shape."""
    return _unary(_elu, x, out, x.dtype.type(alpha))


def elu_backward(grad_out, x, alpha=1.0, out=None):
    """grad_in = grad_out * (1 if x > 0 else alpha * exp(x)). x: the forward input."""
    return _binary(_elu_backward, grad_out, x, out, grad_out.dtype.type(alpha))


def softplus(x, beta=1.0, threshold=20.0, out=None):
    """y = log(1 + exp(beta x)) / beta, or x where beta x > threshold. x: any shape."""
    t = x.dtype.type
    return _unary(_softplus, x, out, t(beta), t(threshold))


def softplus_backward(grad_out, x, beta=1.0, threshold=20.0, out=None):
    """grad_in = grad_out * sigmoid(beta x), or grad_out where beta x > threshold."""
    t = grad_out.dtype.type
    return _binary(_softplus_backward, grad_out, x, out, t(beta), t(threshold))


def gelu_tanh(x, out=None):
    """y = 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))). x: any shape."""
    return _unary(_gelu_tanh, x, out)


def gelu_tanh_backward(grad_out, x, out=None):
    """The gradient of gelu_tanh; x: the forward input."""
    return _binary(_gelu_tanh_backward, grad_out, x, out)


def mish(x, out=None):
    """y = x tanh(softplus(x)). x: any shape."""
    return _unary(_mish, x, out)


def mish_backward(grad_out, x, out=None):
    """grad_in = grad_out (t + x (1 - t^2) sigmoid(x)), t = tanh(softplus(x))."""
    return _binary(_mish_backward, grad_out, x, out)


def hardsigmoid(x, out=None):
    """y = min(max(x + 3, 0), 6) / 6. x: any shape."""
    return _unary(_hardsigmoid, x, out)


def hardsigmoid_backward(grad_out, x, out=None):
    """grad_in = grad_out / 6 where -3 < x < 3, else 0."""
    return _binary(_hardsigmoid_backward, grad_out, x, out)


def hardswish(x, out=None):
    """y = x * min(max(x + 3, 0), 6) / 6. x: any shape."""
    return _unary(_hardswish, x, out)


def hardswish_backward(grad_out, x, out=None):
    """grad_in = 0 (x <= -3), grad_out (x >= 3), grad_out (x / 3 + 1/2) between."""
    return _binary(_hardswish_backward, grad_out, x, out)


def softsign(x, out=None):
    """y = x / (1 + |x|). x: any shape."""
    return _unary(_softsign, x, out)


def softsign_backward(grad_out, x, out=None):
    """grad_in = grad_out / (1 + |x|)^2."""
    return _binary(_softsign_backward, grad_out, x, out)


def hardtanh(x, min_val=-1.0, max_val=1.0, out=None):
    """y = min(max(x, min_val), max_val). x: any shape."""
    t = x.dtype.type
    return _unary(_hardtanh, x, out, t(min_val), t(max_val))


def hardtanh_backward(grad_out, x, min_val=-1.0, max_val=1.0, out=None):
    """grad_in = 0 where x <= min_val or x >= max_val, else grad_out."""
    t = grad_out.dtype.type
    return _binary(_hardtanh_backward, grad_out, x, out, t(min_val), t(max_val))


def sine(x, omega=1.0, out=None):
    """y = sin(omega * x). x: any shape."""
    return _unary(_sine, x, out, x.dtype.type(omega))


def sine_backward(grad_out, x, omega=1.0, out=None):
    """grad_in = grad_out * omega * cos(omega * x). x: the forward input."""
    return _binary(_sine_backward, grad_out, x, out, grad_out.dtype.type(omega))


def _row_kernels(x, log=False):
    """(forward, backward, blocks, threads) of the (log-)softmax kernels for x: (N, C)."""
    lanes, groups = config.row_groups()
    forward, backward = _softmax_kernels(config.THREADS, lanes, x.dtype, log)
    return forward, backward, config.blocks(x.shape[0], groups), config.THREADS


def _rows_forward(x, out, log):
    call = Call(x, out)
    dx = call.arg(x)
    dout = call.out(out, x.shape, x.dtype)
    if dx.size:
        forward, _, blocks, threads = _row_kernels(dx, log)
        forward[blocks, threads](dx, dout)
    return call.done(dout, out)


def _rows_backward(grad_out, y, out, log):
    call = Call(grad_out, y, out)
    dg, dy = call.arg(grad_out), call.arg(y)
    dout = call.out(out, grad_out.shape, grad_out.dtype)
    if dg.size:
        _, backward, blocks, threads = _row_kernels(dg, log)
        backward[blocks, threads](dg, dy, dout)
    return call.done(dout, out)


def softmax(x, out=None):
    """Row-wise softmax. x: (N, C); out: (N, C) or None."""
    return _rows_forward(x, out, False)


def softmax_backward(grad_out, y, out=None):
    """grad_in = y * (grad_out - sum(grad_out * y, axis=1)). grad_out, y: (N, C)."""
    return _rows_backward(grad_out, y, out, False)


def log_softmax(x, out=None):
    """Row-wise log-softmax. x: (N, C); out: (N, C) or None."""
    return _rows_forward(x, out, True)


def log_softmax_backward(grad_out, y, out=None):
    """grad_in = grad_out - exp(y) * sum(grad_out, axis=1). grad_out, y: (N, C)."""
    return _rows_backward(grad_out, y, out, True)
