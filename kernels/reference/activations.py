"""Activations and their backward passes in plain NumPy: the specification."""
import math

import numpy as np
from scipy.special import erf as _erf


def _out(x, out):
    return np.empty_like(x) if out is None else out


def relu(x, out=None):
    """y = max(x, 0). x: any shape; out: same shape. -0 stays -0 (PyTorch's relu; its
    threshold(x, 0, 0) gives +0): NumPy's maximum returns its second argument at a tie,
    so 0 goes first (a NaN x still gives NaN)."""
    return np.maximum(x.dtype.type(0), x, out=_out(x, out))


# the integer type of each float type's size, for selecting values by their bits
_SAME_SIZE_INT = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}


def relu_backward(grad_out, y, out=None):
    """grad_in = 0 where y <= 0, else grad_out (PyTorch's threshold_backward: a NaN y
    passes grad_out, an infinite grad_out at y <= 0 gives 0). grad_out, y: same shape."""
    # np.where(y <= 0, 0, grad_out) as bits: grad_out AND all ones (kept) or all zeros
    # (y <= 0). The same values, NaN and inf included (a multiply by the mask is not),
    # in a third of np.where's time (NumPy 2, 128x100 float32: 7 against 23 us).
    ints = _SAME_SIZE_INT[grad_out.dtype]
    keep = np.less_equal(y, 0).astype(ints)
    keep -= 1                    # 1 (y <= 0) -> 0; 0 -> -1, every bit set
    out = _out(grad_out, out)
    np.bitwise_and(grad_out.view(ints), keep, out=out.view(ints))
    return out


def leaky_relu(x, negative_slope=0.01, out=None):
    """y = x if x > 0 else negative_slope * x. x: any shape."""
    return _assign(_out(x, out), np.where(x > 0, x, x * x.dtype.type(negative_slope)))


def _assign(out, value):
    out[...] = value
    return out


def leaky_relu_backward(grad_out, x, negative_slope=0.01, out=None):
    """grad_in = grad_out * (1 if x > 0 else negative_slope). x: the forward input."""
    slope = np.where(x > 0, x.dtype.type(1), x.dtype.type(negative_slope))
    return np.multiply(grad_out, slope, out=_out(grad_out, out))


def sigmoid(x, out=None):
    """y = 1 / (1 + exp(-x)), written so neither branch overflows."""
    e = np.exp(-np.abs(x))
    return _assign(_out(x, out), np.where(x >= 0, 1 / (1 + e), e / (1 + e)))


def sigmoid_backward(grad_out, y, out=None):
    """grad_in = grad_out * y * (1 - y). y: sigmoid's output."""
    return np.multiply(grad_out, y * (1 - y), out=_out(grad_out, out))


def tanh(x, out=None):
    """y = tanh(x)."""
    return np.tanh(x, out=_out(x, out))


def tanh_backward(grad_out, y, out=None):
    """grad_in = grad_out * (1 - y**2). y: tanh's output."""
    return np.multiply(grad_out, 1 - y * y, out=_out(grad_out, out))


def gelu(x, out=None):
    """y = 0.5 * x * (1 + erf(x / sqrt(2)))."""
    return _assign(_out(x, out), 0.5 * x * (1 + _erf(x / math.sqrt(2))))


def gelu_backward(grad_out, x, out=None):
    """grad_in = grad_out * (Phi(x) + x * phi(x)). x: the forward input."""
    cdf = 0.5 * (1 + _erf(x / math.sqrt(2)))
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return np.multiply(grad_out, cdf + x * pdf, out=_out(grad_out, out))


_GELU_TANH_C = math.sqrt(2 / math.pi)
_GELU_TANH_K = 0.044715


def gelu_tanh(x, out=None):
    """y = 0.5 * x * (1 + tanh(u)), u = sqrt(2 / pi) * (x + 0.044715 * x^3), PyTorch's
    GELU(approximate='tanh'), computed as x * sigmoid(2u): 1 + tanh(u) cancels far below
    0, where the sigmoid keeps its relative accuracy (as the compiled kernels)."""
    with np.errstate(over="ignore", invalid="ignore"):  # x^3 beyond the float range
        inner = x.dtype.type(_GELU_TANH_C) * (x + x.dtype.type(_GELU_TANH_K) * x * x * x)
        return _assign(_out(x, out), x * sigmoid(inner + inner))


def gelu_tanh_backward(grad_out, x, out=None):
    """grad_in = grad_out * (s + 2 x s (1 - s) c (1 + 3 k x^2)), s = sigmoid(2u) =
    (1 + tanh(u)) / 2, the forward's (1 - tanh(u)^2 / 2 is 2 s (1 - s): no cancellation
    far below 0). x: the forward input; beyond |x| = 100 the second term is 0, and x is
    clipped there so that x^3 cannot overflow into inf * 0."""
    c, k = x.dtype.type(_GELU_TANH_C), x.dtype.type(_GELU_TANH_K)
    xc = np.clip(x, -100, 100)
    inner = c * (xc + k * xc * xc * xc)
    s = sigmoid(inner + inner)
    slope = s + 2 * xc * s * (1 - s) * c * (1 + 3 * k * xc * xc)
    return np.multiply(grad_out, slope, out=_out(grad_out, out))


def mish(x, out=None):
    """y = x * tanh(softplus(x)), with tanh(softplus(x)) = n / (n + 2), n = e^x (e^x + 2)
    (one exp), and x itself beyond 20, where the ratio rounds to 1."""
    e = np.exp(np.minimum(x, 20))
    n = e * (e + 2)
    return _assign(_out(x, out), np.where(x > 20, x, x * (n / (n + 2))))


def mish_backward(grad_out, x, out=None):
    """grad_in = grad_out * (t + x (1 - t^2) sigmoid(x)), t = tanh(softplus(x)). x: the
    forward input; 1 beyond 20 (x clipped there, so that inf gives no inf * 0)."""
    xc = np.minimum(x, 20)
    e = np.exp(xc)
    n = e * (e + 2)
    t = n / (n + 2)
    slope = np.where(x > 20, x.dtype.type(1), t + xc * (1 - t * t) * (e / (1 + e)))
    return np.multiply(grad_out, slope, out=_out(grad_out, out))


def sine(x, omega=1.0, out=None):
    """y = sin(omega * x)."""
    return np.sin(x * x.dtype.type(omega), out=_out(x, out))


def sine_backward(grad_out, x, omega=1.0, out=None):
    """grad_in = grad_out * omega * cos(omega * x). x: the forward input."""
    w = x.dtype.type(omega)
    return np.multiply(grad_out, w * np.cos(w * x), out=_out(grad_out, out))


def silu(x, out=None):
    """y = x * sigmoid(x)."""
    return np.multiply(x, sigmoid(x), out=_out(x, out))


def silu_backward(grad_out, x, out=None):
    """grad_in = grad_out * s * (1 + x * (1 - s)), s = sigmoid(x). x: the forward input."""
    s = sigmoid(x)
    return np.multiply(grad_out, s * (1 + x * (1 - s)), out=_out(grad_out, out))


def elu(x, alpha=1.0, out=None):
    """y = x if x >= 0 else alpha * (exp(x) - 1) (expm1: exact near 0; x itself at
    +-0, as PyTorch's ELU for any alpha)."""
    negative = x.dtype.type(alpha) * np.expm1(np.minimum(x, 0))
    return _assign(_out(x, out), np.where(x >= 0, x, negative))


def elu_backward(grad_out, x, alpha=1.0, out=None):
    """grad_in = grad_out * (1 if x > 0 else alpha * exp(x)). x: the forward input; a
    NaN x gives NaN (PyTorch's vectorised CPU kernel)."""
    slope = np.where(x > 0, x.dtype.type(1), x.dtype.type(alpha) * np.exp(np.minimum(x, 0)))
    return np.multiply(grad_out, slope, out=_out(grad_out, out))


def softplus(x, beta=1.0, threshold=20.0, out=None):
    """y = log(1 + exp(beta x)) / beta, or x where beta x > threshold (PyTorch's).
    Written as max(z, 0) + log1p(exp(-|z|)), z = beta x, so that nothing overflows
    whatever the threshold (PyTorch's own kernel gives inf for z above 88 in float32)."""
    z = x * x.dtype.type(beta)
    smooth = (np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))) / x.dtype.type(beta)
    return _assign(_out(x, out), np.where(z > threshold, x, smooth))


def softplus_backward(grad_out, x, beta=1.0, threshold=20.0, out=None):
    """grad_in = grad_out * sigmoid(beta x), or grad_out where beta x > threshold."""
    z = x * x.dtype.type(beta)
    return _assign(_out(grad_out, out), np.where(z > threshold, grad_out, grad_out * sigmoid(z)))


def hardsigmoid(x, out=None):
    """y = min(max(x + 3, 0), 6) / 6 (PyTorch's Hardsigmoid; NaN propagates)."""
    return _assign(_out(x, out), np.clip(x + 3, 0, 6) / x.dtype.type(6))


def hardsigmoid_backward(grad_out, x, out=None):
    """grad_in = grad_out / 6 where -3 < x < 3, else 0 (selected, as PyTorch's: an
    infinite grad_out outside gives 0). x: the forward input."""
    inside = grad_out * x.dtype.type(1 / 6)
    return _assign(_out(grad_out, out), np.where((x > -3) & (x < 3), inside, x.dtype.type(0)))


def hardswish(x, out=None):
    """y = x * min(max(x + 3, 0), 6) / 6 (PyTorch's Hardswish)."""
    return _assign(_out(x, out), x * np.clip(x + 3, 0, 6) / x.dtype.type(6))


def hardswish_backward(grad_out, x, out=None):
    """grad_in = 0 where x <= -3, grad_out where x >= 3, grad_out (x / 3 + 1/2)
    elsewhere, so NaN where x is NaN (PyTorch's edges and vectorised CPU kernel).
    x: the forward input."""
    inside = grad_out * (x / 3 + x.dtype.type(0.5))
    grad = np.where(x <= -3, x.dtype.type(0), np.where(x >= 3, grad_out, inside))
    return _assign(_out(grad_out, out), grad)


def softsign(x, out=None):
    """y = x / (1 + |x|)."""
    return np.divide(x, 1 + np.abs(x), out=_out(x, out))


def softsign_backward(grad_out, x, out=None):
    """grad_in = grad_out / (1 + |x|)^2."""
    d = 1 + np.abs(x)
    return np.divide(grad_out, d * d, out=_out(grad_out, out))


def hardtanh(x, min_val=-1.0, max_val=1.0, out=None):
    """y = min(max(x, min_val), max_val); NaN stays NaN."""
    lo, hi = x.dtype.type(min_val), x.dtype.type(max_val)
    return _assign(_out(x, out), np.where(x < lo, lo, np.where(x > hi, hi, x)))


def hardtanh_backward(grad_out, x, min_val=-1.0, max_val=1.0, out=None):
    """grad_in = grad_out where min_val < x < max_val, else 0: 0 at the edges and where
    x is NaN (PyTorch's vectorised CPU kernel)."""
    inside = (x > x.dtype.type(min_val)) & (x < x.dtype.type(max_val))
    return _assign(_out(grad_out, out), np.where(inside, grad_out, grad_out.dtype.type(0)))


def softmax(x, out=None):
    """Row-wise softmax along the last axis. x: (N, C)."""
    if x.shape[-1] == 0:  # no classes: nothing to normalise (max has no identity)
        return _out(x, out)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return np.divide(e, e.sum(axis=-1, keepdims=True), out=_out(x, out))


def softmax_backward(grad_out, y, out=None):
    """grad_in = y * (grad_out - sum(grad_out * y, axis=-1)). grad_out, y: (N, C)."""
    dot = (grad_out * y).sum(axis=-1, keepdims=True)
    return np.multiply(y, grad_out - dot, out=_out(grad_out, out))


def log_softmax(x, out=None):
    """Row-wise log-softmax along the last axis. x: (N, C)."""
    if x.shape[-1] == 0:
        return _out(x, out)
    shifted = x - x.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return np.subtract(shifted, lse, out=_out(x, out))


def log_softmax_backward(grad_out, y, out=None):
    """grad_in = grad_out - exp(y) * sum(grad_out, axis=-1). y: log_softmax's output."""
    total = grad_out.sum(axis=-1, keepdims=True)
    return np.subtract(grad_out, np.exp(y) * total, out=_out(grad_out, out))
