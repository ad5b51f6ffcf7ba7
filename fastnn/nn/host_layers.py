"""Less common PyTorch layers computed with NumPy on the host (a device array goes through
the host and comes back): the shrink activations, Threshold and GLU, and the
PixelShuffle / PixelUnshuffle rearrangements. Each is a few array operations a call;
none has a kernel of its own in the op table."""
import numbers

import numpy as np

from .. import device as _device
from ..validation import check_bool, check_number, check_positive_int
from .activations import Softmax
from .module import Module


class _HostElementwise(Module):
    """y = f(x) by NumPy on the host; backward grad * f'(x). Input: any shape."""

    def _forward(self, x, buffered):
        host = _device.to_host(x)
        self._x = host
        return _device.namespace_of(x).put(np.asarray(self._f(host), host.dtype))

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        g = _device.to_host(grad_out)
        return _device.namespace_of(grad_out).put(
            np.asarray(g * self._slope(self._x), g.dtype))


class Hardshrink(_HostElementwise):
    """y = x where |x| > lambd, else 0 (a NaN stays NaN, as in PyTorch); slope 1 where
    |x| > lambd, 0 elsewhere (at a NaN too, as PyTorch's)."""

    def __init__(self, lambd=0.5):
        super().__init__()
        check_number(type(self).__name__, "lambd", lambd)
        self.lambd = float(lambd)

    def _inside(self, x):
        lam = x.dtype.type(self.lambd)
        return (x >= -lam) & (x <= lam)

    def _f(self, x):
        return np.where(self._inside(x), x.dtype.type(0), x)

    def _slope(self, x):
        lam = x.dtype.type(self.lambd)
        return ((x < -lam) | (x > lam)).astype(x.dtype)

    def extra_repr(self):
        return f"{self.lambd}"


class Softshrink(Hardshrink):
    """y = x - lambd above lambd, x + lambd below -lambd, 0 between (lambd >= 0, as
    PyTorch requires); slope 1 outside [-lambd, lambd]."""

    def __init__(self, lambd=0.5):
        check_number(type(self).__name__, "lambd", lambd, 0.0)
        super().__init__(lambd)

    def _f(self, x):
        lam = x.dtype.type(self.lambd)
        with np.errstate(invalid="ignore"):  # (inf * 0 in the branch where() drops)
            return np.where(x > lam, x - lam, np.where(x < -lam, x + lam, x * x.dtype.type(0)))


class Tanhshrink(_HostElementwise):
    """y = x - tanh(x); slope tanh(x)^2."""

    def _f(self, x):
        return x - np.tanh(x)

    def _slope(self, x):
        return np.tanh(x) ** 2


class Threshold(_HostElementwise):
    """y = x where x > threshold, else value (PyTorch's Threshold; a NaN stays NaN);
    slope 1 where x > threshold. inplace is accepted (the output is a fresh array)."""

    def __init__(self, threshold, value, inplace=False):
        super().__init__()
        name = type(self).__name__
        check_number(name, "threshold", threshold)
        check_number(name, "value", value)
        self.threshold, self.value = float(threshold), float(value)
        self.inplace = check_bool(name, "inplace", inplace)

    def _f(self, x):
        return np.where(x <= x.dtype.type(self.threshold), x.dtype.type(self.value), x)

    def _slope(self, x):
        return (~(x <= x.dtype.type(self.threshold))).astype(x.dtype)

    def extra_repr(self):
        return (f"threshold={self.threshold}, value={self.value}"
                + (", inplace=True" if self.inplace else ""))


def _axis(layer, dim, ndim):
    axis = dim + ndim if dim < 0 else dim
    if not 0 <= axis < ndim:
        raise ValueError(f"{layer._where()}: dim {dim} is out of range for an input of "
                         f"rank {ndim}")
    return axis


class GLU(Module):
    """Gated linear unit: the input split in halves a, b along ``dim`` (even size there),
    y = a * sigmoid(b), half the size along dim."""

    def __init__(self, dim=-1):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise TypeError(f"GLU: expected dim to be an int, got {dim!r}")
        self.dim = int(dim)

    def infer_shape(self, shape, dtype):
        shape = tuple(shape)
        axis = _axis(self, self.dim, len(shape))
        if shape[axis] % 2:
            raise ValueError(f"{self._where()}: the size along dim {self.dim} must be even, "
                             f"got an input of shape {shape}")
        return shape[:axis] + (shape[axis] // 2,) + shape[axis + 1:]

    def _forward(self, x, buffered):
        host = _device.to_host(x)
        a, b = np.split(host, 2, axis=_axis(self, self.dim, host.ndim))
        gate = (1 / (1 + np.exp(-b))).astype(host.dtype)
        self._ctx = (a, gate)
        return _device.namespace_of(x).put(np.ascontiguousarray(a * gate))

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        a, gate = self._ctx
        g = _device.to_host(grad_out)
        grad = np.concatenate([g * gate, g * a * gate * (1 - gate)],
                              axis=_axis(self, self.dim, g.ndim))
        return _device.namespace_of(grad_out).put(grad.astype(g.dtype, copy=False))

    def extra_repr(self):
        return f"dim={self.dim}"


class Softmax2d(Softmax):
    """Softmax over the channels of each position: (N, C, H, W) or (C, H, W) input,
    Softmax(dim=-3)."""

    def __init__(self):
        super().__init__(dim=-3)

    def infer_shape(self, shape, dtype):
        if len(tuple(shape)) not in (3, 4):
            raise ValueError(f"{self._where()}: expected input of shape (N, C, H, W) or "
                             f"(C, H, W), got {tuple(shape)}")
        return super().infer_shape(shape, dtype)

    def extra_repr(self):
        return ""


def _shuffle(x, r):
    """(*, C r^2, H, W) -> (*, C, H r, W r), PyTorch's pixel shuffle order."""
    *lead, c, h, w = x.shape
    y = x.reshape(tuple(lead) + (c // (r * r), r, r, h, w))
    k = len(lead)
    y = y.transpose(tuple(range(k)) + (k, k + 3, k + 1, k + 4, k + 2))
    return np.ascontiguousarray(y).reshape(tuple(lead) + (c // (r * r), h * r, w * r))


def _unshuffle(x, r):
    """(*, C, H r, W r) -> (*, C r^2, H, W), the inverse of _shuffle."""
    *lead, c, hr, wr = x.shape
    h, w = hr // r, wr // r
    y = x.reshape(tuple(lead) + (c, h, r, w, r))
    k = len(lead)
    y = y.transpose(tuple(range(k)) + (k, k + 2, k + 4, k + 1, k + 3))
    return np.ascontiguousarray(y).reshape(tuple(lead) + (c * r * r, h, w))


class _Rearrange(Module):
    """A layer that only moves values (PixelShuffle, PixelUnshuffle): ``_there`` forward,
    its inverse ``_back`` backward, with ``factor``."""

    def _forward(self, x, buffered):
        return _device.namespace_of(x).put(self._there(_device.to_host(x), self.factor))

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        return _device.namespace_of(grad_out).put(self._back(_device.to_host(grad_out),
                                                             self.factor))


class PixelShuffle(_Rearrange):
    """(*, C r^2, H, W) -> (*, C, H r, W r) (sub-pixel convolution's upsampling,
    PyTorch's element order); backward the inverse rearrangement."""

    _there, _back = staticmethod(_shuffle), staticmethod(_unshuffle)

    def __init__(self, upscale_factor):
        super().__init__()
        self.upscale_factor = self.factor = check_positive_int(
            type(self).__name__, "upscale_factor", upscale_factor)

    def infer_shape(self, shape, dtype):
        shape, r = tuple(shape), self.factor
        if len(shape) < 3 or shape[-3] % (r * r):
            raise ValueError(f"{self._where()}: expected input of shape (*, C * {r * r}, H, W), "
                             f"got {shape}")
        return shape[:-3] + (shape[-3] // (r * r), shape[-2] * r, shape[-1] * r)

    def extra_repr(self):
        return f"upscale_factor={self.factor}"


class PixelUnshuffle(_Rearrange):
    """(*, C, H r, W r) -> (*, C r^2, H, W), the inverse of PixelShuffle."""

    _there, _back = staticmethod(_unshuffle), staticmethod(_shuffle)

    def __init__(self, downscale_factor):
        super().__init__()
        self.downscale_factor = self.factor = check_positive_int(
            type(self).__name__, "downscale_factor", downscale_factor)

    def infer_shape(self, shape, dtype):
        shape, r = tuple(shape), self.factor
        if len(shape) < 3 or shape[-2] % r or shape[-1] % r:
            raise ValueError(f"{self._where()}: expected input of shape (*, C, H, W) with H "
                             f"and W divisible by {r}, got {shape}")
        return shape[:-3] + (shape[-3] * r * r, shape[-2] // r, shape[-1] // r)

    def extra_repr(self):
        return f"downscale_factor={self.factor}"
