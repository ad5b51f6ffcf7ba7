"""Activations and their backward passes: one parallel elementwise pass each.

Every kernel takes 1-D views (``x.reshape(-1)``) of C-contiguous arrays, so one loop
serves any shape; softmax works row by row on (N, C). Constants are cast to the array's
dtype (``x.dtype.type``) so float32 kernels never widen to float64.
"""
import math

from numba import prange

from . import vmath
from ._buffers import flat, out_like
from .config import kernel


# ------------------------------------------------------------------ kernels
@kernel
def _relu(x, out):  # IN x (n,); OUT out (n,)
    zero = x.dtype.type(0)
    for i in prange(x.shape[0]):
        v = x[i]
        out[i] = zero if v < zero else v  # NaN is not < 0: it propagates


@kernel
def _relu_backward(grad_out, y, out):  # IN grad_out, y (n,); OUT out (n,)
    one = y.dtype.type(1)
    zero = y.dtype.type(0)
    for i in prange(y.shape[0]):
        out[i] = grad_out[i] * (one if y[i] > zero else zero)


@kernel
def _leaky_relu(x, slope, out):  # IN x (n,); OUT out (n,)
    s = x.dtype.type(slope)
    zero = x.dtype.type(0)
    for i in prange(x.shape[0]):
        v = x[i]
        out[i] = v if v > zero else v * s


@kernel
def _leaky_relu_backward(grad_out, x, slope, out):  # IN grad_out, x (n,); OUT out (n,)
    s = x.dtype.type(slope)
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    for i in prange(x.shape[0]):
        out[i] = grad_out[i] * (one if x[i] > zero else s)


@kernel
def _sigmoid(x, out):  # IN x (n,); OUT out (n,)
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    for i in prange(x.shape[0]):
        v = x[i]
        e = vmath.exp(-abs(v))  # <= 1: neither branch can overflow
        r = one / (one + e)
        out[i] = r if v >= zero else e * r


@kernel
def _sigmoid_backward(grad_out, y, out):  # IN grad_out, y (n,); OUT out (n,)
    one = y.dtype.type(1)
    for i in prange(y.shape[0]):
        out[i] = grad_out[i] * y[i] * (one - y[i])


@kernel
def _tanh(x, out):  # IN x (n,); OUT out (n,)
    for i in prange(x.shape[0]):
        out[i] = vmath.tanh(x[i])


@kernel
def _tanh_backward(grad_out, y, out):  # IN grad_out, y (n,); OUT out (n,)
    one = y.dtype.type(1)
    for i in prange(y.shape[0]):
        out[i] = grad_out[i] * (one - y[i] * y[i])


@kernel
def _gelu(x, out):  # IN x (n,); OUT out (n,)
    half = x.dtype.type(0.5)
    one = x.dtype.type(1)
    inv_sqrt2 = x.dtype.type(1 / math.sqrt(2))
    for i in prange(x.shape[0]):
        v = x[i]
        out[i] = half * v * (one + vmath.erf(v * inv_sqrt2))


@kernel
def _gelu_backward(grad_out, x, out):  # IN grad_out, x (n,); OUT out (n,)
    half = x.dtype.type(0.5)
    one = x.dtype.type(1)
    inv_sqrt2 = x.dtype.type(1 / math.sqrt(2))
    inv_sqrt_2pi = x.dtype.type(1 / math.sqrt(2 * math.pi))
    for i in prange(x.shape[0]):
        v = x[i]
        cdf = half * (one + vmath.erf(v * inv_sqrt2))
        pdf = vmath.exp(-half * v * v) * inv_sqrt_2pi
        out[i] = grad_out[i] * (cdf + v * pdf)


@kernel
def _sine(x, omega, out):  # IN x (n,); OUT out (n,)
    w = x.dtype.type(omega)
    for i in prange(x.shape[0]):
        out[i] = math.sin(w * x[i])


@kernel
def _sine_backward(grad_out, x, omega, out):  # IN grad_out, x (n,); OUT out (n,)
    w = x.dtype.type(omega)
    for i in prange(x.shape[0]):
        out[i] = grad_out[i] * w * math.cos(w * x[i])


@kernel
def _softmax(x, out):  # IN x (N, C); OUT out (N, C)
    n, c = x.shape
    one = x.dtype.type(1)
    for i in prange(n):
        m = x[i, 0]
        for j in range(1, c):
            m = max(m, x[i, j])
        s = x.dtype.type(0)
        for j in range(c):
            e = vmath.exp(x[i, j] - m)
            out[i, j] = e
            s += e
        inv = one / s
        for j in range(c):
            out[i, j] *= inv


@kernel
def _softmax_backward(grad_out, y, out):  # IN grad_out, y (N, C); OUT out (N, C)
    n, c = y.shape
    for i in prange(n):
        dot = y.dtype.type(0)
        for j in range(c):
            dot += grad_out[i, j] * y[i, j]
        for j in range(c):
            out[i, j] = y[i, j] * (grad_out[i, j] - dot)


# ------------------------------------------------------------------ op wrappers
def relu(x, out=None):
    """y = max(x, 0). x: any shape; out: same shape. Returns y."""
    out = out_like(x, out)
    _relu(x.size, flat(x), flat(out))
    return out


def relu_backward(grad_out, y, out=None):
    """grad_in = grad_out * (y > 0). grad_out, y, out: same shape."""
    out = out_like(grad_out, out)
    _relu_backward(y.size, flat(grad_out), flat(y), flat(out))
    return out


def leaky_relu(x, negative_slope=0.01, out=None):
    """y = x if x > 0 else negative_slope * x. x: any shape; out: same shape."""
    out = out_like(x, out)
    _leaky_relu(x.size, flat(x), float(negative_slope), flat(out))
    return out


def leaky_relu_backward(grad_out, x, negative_slope=0.01, out=None):
    """grad_in = grad_out * (1 if x > 0 else negative_slope). x: the forward input."""
    out = out_like(grad_out, out)
    _leaky_relu_backward(x.size, flat(grad_out), flat(x), float(negative_slope), flat(out))
    return out


def sigmoid(x, out=None):
    """y = 1 / (1 + exp(-x)), overflow-free for any x. x: any shape."""
    out = out_like(x, out)
    _sigmoid(x.size, flat(x), flat(out))
    return out


def sigmoid_backward(grad_out, y, out=None):
    """grad_in = grad_out * y * (1 - y). y: sigmoid's output, same shape."""
    out = out_like(grad_out, out)
    _sigmoid_backward(y.size, flat(grad_out), flat(y), flat(out))
    return out


def tanh(x, out=None):
    """y = tanh(x). x: any shape."""
    out = out_like(x, out)
    _tanh(x.size, flat(x), flat(out))
    return out


def tanh_backward(grad_out, y, out=None):
    """grad_in = grad_out * (1 - y**2). y: tanh's output, same shape."""
    out = out_like(grad_out, out)
    _tanh_backward(y.size, flat(grad_out), flat(y), flat(out))
    return out


def gelu(x, out=None):
    """y = 0.5 * x * (1 + erf(x / sqrt(2))), PyTorch's exact GELU. x: any shape."""
    out = out_like(x, out)
    _gelu(x.size, flat(x), flat(out))
    return out


def gelu_backward(grad_out, x, out=None):
    """grad_in = grad_out * (Phi(x) + x * phi(x)). x: the forward input, same shape."""
    out = out_like(grad_out, out)
    _gelu_backward(x.size, flat(grad_out), flat(x), flat(out))
    return out


def sine(x, omega=1.0, out=None):
    """y = sin(omega * x). x: any shape."""
    out = out_like(x, out)
    _sine(x.size, flat(x), float(omega), flat(out))
    return out


def sine_backward(grad_out, x, omega=1.0, out=None):
    """grad_in = grad_out * omega * cos(omega * x). x: the forward input."""
    out = out_like(grad_out, out)
    _sine_backward(x.size, flat(grad_out), flat(x), float(omega), flat(out))
    return out


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
