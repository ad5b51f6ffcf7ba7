"""Less common PyTorch layers computed with NumPy on the host (a device array goes through
the host and comes back): the shrink activations, Threshold and GLU, the PixelShuffle /
PixelUnshuffle / ChannelShuffle rearrangements, RMSNorm, LocalResponseNorm, the legacy
CrossMapLRN2d and RReLU. Each is a few array operations a call;
none has a kernel of its own in the op table."""
import math
import numbers

import numpy as np

from .. import device as _device
from .. import random as _random
from ..errors import IndexValueError, RuntimeValueError, TypeValueError
from ..validation import check_bool, check_number, check_positive_int, float_of
from . import init
from .activations import Softmax
from .layernorm import check_normalized_input, normalized_shape_of
from .module import Module, Parameter, live_grad, nothing_to_compute


def check_real(where, name, value):
    """A real number, infinite or NaN included (PyTorch's Threshold and Hardshrink take
    any: a comparison with NaN is False, so a NaN threshold lets every element pass)."""
    if not (isinstance(value, (float, np.floating)) and np.isnan(value)):
        check_number(where, name, value, infinite_ok=True)


class _HostElementwise(Module):
    """y = f(x) by NumPy on the host; backward grad * f'(x), or for a slope of 0 or 1 the
    grad where it passes and 0 elsewhere (PyTorch's masked gradient: 0, not NaN, where a
    NaN grad meets a zero slope). Input: any shape."""

    #: the number attributes f reads (lambd, threshold, ...): read at each forward (a
    #: user may set them) in the input's dtype, and kept for its backward
    float_attributes = ()

    def _passes(self, x, *values):
        """Where the gradient passes, for a layer whose slope is 1 there and 0 elsewhere;
        None for any other slope (``_slope``)."""
        return None

    def _grad(self, g, x):
        """grad_in where ``_passes`` gives None: g * f'(x)."""
        return g * self._slope(x)

    def _forward(self, x, buffered):
        host = _device.to_host(x)
        values = tuple(host.dtype.type(self._float(name)) for name in self.float_attributes)
        self._x = host
        self._values = values   # (the backward's, as PyTorch's graph keeps them)
        return _device.namespace_of(x).put(np.asarray(self._f(host, *values), host.dtype))

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        g = _device.to_host(grad_out)
        passes = self._passes(self._x, *self._values)
        grad = (self._grad(g, self._x) if passes is None
                else np.where(passes, g, g.dtype.type(0)))
        return _device.namespace_of(grad_out).put(np.asarray(grad, g.dtype))


class Hardshrink(_HostElementwise):
    """y = x where |x| > lambd, else 0 (a NaN stays NaN, as in PyTorch); slope 1 where
    |x| > lambd, 0 elsewhere (at a NaN too, as PyTorch's vectorized backward: its scalar
    tail, the last elements past a multiple of the vector width, gives 1 there, so
    PyTorch's own answer at a NaN depends on where it lies)."""

    def __init__(self, lambd=0.5):
        super().__init__()
        # any real lambd, as PyTorch: inf zeroes every finite element, -inf or NaN none
        check_real(type(self).__name__, "lambd", lambd)
        self.lambd = lambd   # as given (PyTorch's attribute and repr)

    float_attributes = ("lambd",)

    def _f(self, x, lam):
        return np.where((x >= -lam) & (x <= lam), x.dtype.type(0), x)

    def _passes(self, x, lam):
        return (x < -lam) | (x > lam)

    def extra_repr(self):
        return f"{self.lambd}"


class Softshrink(Hardshrink):
    """y = x - lambd above lambd, x + lambd below -lambd, 0 between (lambd >= 0, as
    PyTorch requires); slope 1 outside [-lambd, lambd]."""

    def __init__(self, lambd=0.5):
        try:
            check_number(type(self).__name__, "lambd", lambd, 0.0)
        except ValueError as e:   # (PyTorch's RuntimeError, when called)
            raise RuntimeValueError(str(e)) from None
        super().__init__(lambd)

    def _f(self, x, lam):
        with np.errstate(invalid="ignore"):  # (inf * 0 in the branch where() drops)
            return np.where(x > lam, x - lam, np.where(x < -lam, x + lam, x * x.dtype.type(0)))


class Tanhshrink(_HostElementwise):
    """y = x - tanh(x); slope tanh(x)^2."""

    def _f(self, x):
        return x - np.tanh(x)

    def _slope(self, x):
        return np.tanh(x) ** 2

    def _grad(self, g, x):
        # + 0: a zero gradient is +0, as PyTorch's autograd sums g and -g (1 - tanh^2)
        return g * self._slope(x) + g.dtype.type(0)


class Threshold(_HostElementwise):
    """y = x where x > threshold, else value (PyTorch's Threshold; a NaN stays NaN);
    slope 1 where x > threshold. inplace is accepted (the output is a fresh array)."""

    def __init__(self, threshold, value, inplace=False):
        super().__init__()
        name = type(self).__name__
        check_real(name, "threshold", threshold)   # infinite or NaN too, as PyTorch
        check_real(name, "value", value)
        self.threshold, self.value = threshold, value   # as given (PyTorch's repr)
        self.inplace = check_bool(name, "inplace", inplace)

    float_attributes = ("threshold", "value")

    def _f(self, x, threshold, value):
        return np.where(x <= threshold, value, x)

    def _passes(self, x, threshold, value):
        return ~(x <= threshold)

    def extra_repr(self):
        return (f"threshold={self.threshold}, value={self.value}"
                + (", inplace=True" if self.inplace else ""))


class RReLU(Module):
    """Randomized leaky ReLU (PyTorch's RReLU): in training each element x <= 0 gets its
    own slope drawn uniformly from [lower, upper] (y = slope * x, the slope kept for
    backward), x > 0 passes; in eval mode a leaky ReLU of slope (lower + upper) / 2.
    The slopes come from a seed of fastnn's generator (``manual_seed`` makes them
    reproducible). Input: any shape. NumPy on the host. A bool bound is its number (0 or
    1) as PyTorch takes it; lower=upper=True is slope 1 in eval mode as in training
    (PyTorch's eval slope is then 0.5: True + True adds as bools there).
    lower > upper is refused here, where PyTorch's forward refuses it."""

    def __init__(self, lower=1.0 / 8, upper=1.0 / 3, inplace=False):
        super().__init__()
        name = type(self).__name__
        for bound_name, bound in (("lower", lower), ("upper", upper)):
            check_number(name, bound_name, int(bound) if isinstance(bound, bool) else bound)
        if lower > upper:
            raise RuntimeValueError(f"{name}: expected lower <= upper, got lower={lower}, "
                                    f"upper={upper}")
        self.lower, self.upper = lower, upper  # as given (PyTorch's repr shows them so)
        self.inplace = check_bool(name, "inplace", inplace)
        self._slope = None

    def _forward(self, x, buffered):
        # (bounds a user may set: read at each forward; a bool is its number, 0 or 1)
        lower, upper = (self._float(name) for name in ("lower", "upper"))
        if self.training and lower > upper:   # (PyTorch's forward refuses it)
            raise RuntimeValueError(f"{self._where()}: expected lower <= upper, got "
                                    f"lower={self.lower}, upper={self.upper}")
        host = _device.to_host(x)
        dt = host.dtype.type
        if self.training:
            rng = np.random.default_rng(_random.draw_seed())
            drawn = rng.uniform(lower, upper, host.shape).astype(host.dtype)
            slope = np.where(host <= 0, drawn, dt(1))
        else:
            slope = np.where(host > 0, dt(1), dt((lower + upper) / 2))
        self._slope = slope   # (for backward; no_grad drops it: forget_forward)
        # (np.asarray: ascontiguousarray makes a 0-d input 1-d)
        return _device.namespace_of(x).put(np.asarray(host * slope, order="C"))

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        g = _device.to_host(grad_out)
        return _device.namespace_of(grad_out).put(np.asarray(g * self._slope, order="C"))

    def extra_repr(self):
        return f"lower={self.lower}, upper={self.upper}" + (", inplace=True"
                                                           if self.inplace else "")


def _axis(layer, dim, ndim):
    axis = dim + ndim if dim < 0 else dim
    if not 0 <= axis < ndim:
        raise IndexValueError(f"{layer._where()}: dim {dim} is out of range for an input of "
                              f"rank {ndim}")
    return axis


class GLU(Module):
    """Gated linear unit: the input split in halves a, b along ``dim`` (even size there),
    y = a * sigmoid(b), half the size along dim."""

    def __init__(self, dim=-1):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise TypeValueError(f"GLU: expected dim to be an int, got {dim!r}")
        self.dim = int(dim)

    def infer_shape(self, shape, dtype):
        shape = tuple(shape)
        if not shape:  # PyTorch's RuntimeError before its dim check
            raise RuntimeValueError(f"{self._where()}: glu does not support scalars (0-d "
                                    f"input)")
        axis = _axis(self, self.dim, len(shape))
        if shape[axis] % 2:
            raise RuntimeValueError(f"{self._where()}: the size along dim {self.dim} must be "
                                    f"even, got an input of shape {shape}")
        return shape[:axis] + (shape[axis] // 2,) + shape[axis + 1:]

    def _forward(self, x, buffered):
        host = _device.to_host(x)
        a, b = np.split(host, 2, axis=_axis(self, self.dim, host.ndim))
        gate = (1 / (1 + np.exp(-b))).astype(host.dtype)
        self._ctx = (a, gate)
        return _device.namespace_of(x).put(a * gate)

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        a, gate = self._ctx
        g = _device.to_host(grad_out)
        # a (1 - s) s g in PyTorch's order: where the gate saturates (s (1 - s) = 0) a
        # huge a times g first overflowed to inf, times 0 NaN where PyTorch's is 0
        grad = np.concatenate([g * gate, a * (1 - gate) * gate * g],
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
    return _device.c_contiguous(y).reshape(tuple(lead) + (c // (r * r), h * r, w * r))


def _unshuffle(x, r):
    """(*, C, H r, W r) -> (*, C r^2, H, W), the inverse of _shuffle."""
    *lead, c, hr, wr = x.shape
    h, w = hr // r, wr // r
    y = x.reshape(tuple(lead) + (c, h, r, w, r))
    k = len(lead)
    y = y.transpose(tuple(range(k)) + (k, k + 2, k + 4, k + 1, k + 3))
    return _device.c_contiguous(y).reshape(tuple(lead) + (c * r * r, h, w))


class _Rearrange(Module):
    """A layer that only moves values (PixelShuffle, PixelUnshuffle, ChannelShuffle):
    ``_there`` forward, its inverse ``_back`` backward, with ``factor``: the attribute
    ``factor_name`` (the constructor's one argument, a positive int, and the repr's),
    read at each forward (a user may set it, as PyTorch's layers read theirs at each
    call) and kept for its backward."""

    factor_name = None

    def __init__(self, factor):
        super().__init__()
        setattr(self, self.factor_name,
                check_positive_int(type(self).__name__, self.factor_name, factor))

    @property
    def factor(self):
        return check_positive_int(type(self).__name__, self.factor_name,
                                  getattr(self, self.factor_name))

    def _forward(self, x, buffered):
        self._factor = factor = self.factor
        return _device.namespace_of(x).put(_moved(self._there, _device.to_host(x), factor))

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        return _device.namespace_of(grad_out).put(_moved(self._back,
                                                         _device.to_host(grad_out),
                                                         self._factor))

    def extra_repr(self):
        return f"{self.factor_name}={getattr(self, self.factor_name)}"


def _moved(rearrange, x, factor):
    """rearrange(x, factor) as a new array: a factor that moves nothing (PixelShuffle(1),
    ChannelShuffle of 1 group) gives a view of x, which in a Sequential is the layer
    before's buffer, overwritten by its next call."""
    y = rearrange(x, factor)
    return y.copy() if np.may_share_memory(y, x) else y


class PixelShuffle(_Rearrange):
    """(*, C r^2, H, W) -> (*, C, H r, W r) (sub-pixel convolution's upsampling,
    PyTorch's element order); backward the inverse rearrangement."""

    _there, _back = staticmethod(_shuffle), staticmethod(_unshuffle)
    factor_name = "upscale_factor"

    def __init__(self, upscale_factor):
        super().__init__(upscale_factor)

    def infer_shape(self, shape, dtype):
        shape, r = tuple(shape), self.factor
        if len(shape) < 3 or shape[-3] % (r * r):
            raise RuntimeValueError(f"{self._where()}: expected input of shape (*, C * {r * r}, "
                                    f"H, W), got {shape}")
        return shape[:-3] + (shape[-3] // (r * r), shape[-2] * r, shape[-1] * r)


class PixelUnshuffle(_Rearrange):
    """(*, C, H r, W r) -> (*, C r^2, H, W), the inverse of PixelShuffle."""

    _there, _back = staticmethod(_unshuffle), staticmethod(_shuffle)
    factor_name = "downscale_factor"

    def __init__(self, downscale_factor):
        super().__init__(downscale_factor)

    def infer_shape(self, shape, dtype):
        shape, r = tuple(shape), self.factor
        if len(shape) < 3 or shape[-2] % r or shape[-1] % r:
            raise RuntimeValueError(f"{self._where()}: expected input of shape (*, C, H, W) "
                                    f"with H and W divisible by {r}, got {shape}")
        return shape[:-3] + (shape[-3] * r * r, shape[-2] // r, shape[-1] // r)


class ChannelShuffle(_Rearrange):
    """(N, C, *) with C = groups * k: the channels read as (groups, k) and transposed
    (ShuffleNet's channel shuffle, PyTorch's order); backward the inverse."""

    factor_name = "groups"

    def __init__(self, groups):
        super().__init__(groups)

    @staticmethod
    def _there(x, groups):
        n, c = x.shape[:2]
        y = x.reshape((n, groups, c // groups) + x.shape[2:]).swapaxes(1, 2)
        return _device.c_contiguous(y).reshape(x.shape)

    @staticmethod
    def _back(x, groups):
        return ChannelShuffle._there(x, x.shape[1] // groups)

    def infer_shape(self, shape, dtype):
        shape = tuple(shape)
        if len(shape) < 3 or shape[1] % self.factor:
            raise RuntimeValueError(f"{self._where()}: expected input of shape (N, C, *) with C "
                                    f"divisible by {self.groups}, got {shape}")
        return shape


class RMSNorm(Module):
    """y = x / sqrt(mean(x^2) + eps) * weight over the trailing ``normalized_shape``
    (PyTorch's RMSNorm; eps None: the dtype's machine epsilon). weight: ones of
    normalized_shape (absent with elementwise_affine=False). NumPy on the host."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, dtype=np.float32):
        super().__init__()
        self.normalized_shape = normalized_shape_of("RMSNorm", normalized_shape)
        if eps is not None:
            check_number("RMSNorm", "eps", eps, 0.0)
        self.eps = None if eps is None else float(eps)
        self.elementwise_affine = check_bool("RMSNorm", "elementwise_affine",
                                             elementwise_affine)
        self.weight = (Parameter(np.ones(self.normalized_shape, dtype))
                       if elementwise_affine else None)

    def reset_parameters(self):
        """PyTorch's: weight back to ones, in place."""
        if self.weight is not None:
            init.ones_(self.weight)

    def infer_shape(self, shape, dtype):
        shape = check_normalized_input(self, shape)
        if self.weight is not None:
            self._check_dtype(dtype, self.weight.data.dtype)
        return shape

    def _forward(self, x, buffered):
        host = _device.to_host(x)
        axes = tuple(range(host.ndim - len(self.normalized_shape), host.ndim))
        eps = self._float("eps", none=True)   # (an attribute a user may set)
        eps = np.finfo(host.dtype).eps if eps is None else eps
        if not math.prod(self.normalized_shape):   # (no features: NumPy's empty mean warns)
            self._ctx = (host, host, host, axes)
            return _device.namespace_of(x).put(host.copy())
        with np.errstate(divide="ignore", invalid="ignore"):   # (zeros with eps 0: NaN)
            inv = 1 / np.sqrt((host * host).mean(axis=axes, keepdims=True)
                              + host.dtype.type(eps))
            normed = host * inv
        self._ctx = (host, inv, normed, axes)
        y = normed if self.weight is None else normed * _device.to_host(self.weight.data)
        return _device.namespace_of(x).put(_device.c_contiguous(y, host.dtype))

    def _backward(self, grad_out, buffered, need_grad_in):
        if nothing_to_compute(need_grad_in, self.weight):
            return None   # (frozen: PyTorch's backward neither computes nor touches it)
        host, inv, normed, axes = self._ctx
        g = _device.to_host(grad_out)
        if self.weight is not None:
            if live_grad(self.weight) is not None:
                lead = tuple(range(host.ndim - len(axes)))
                grad_w = (g * normed).sum(axis=lead, dtype=np.float64)  # float32 drifts on rows
                _device.update_on_host(self.weight.grad, lambda a: np.add(a, grad_w, out=a))
            g = g * _device.to_host(self.weight.data)
        if not need_grad_in:
            return None
        if not host.size:   # (no features, or no rows: nothing to take a mean of)
            return _device.namespace_of(grad_out).put(g.copy())
        with np.errstate(invalid="ignore"):
            grad = inv * (g - normed * (g * normed).mean(axis=axes, keepdims=True))
        return _device.namespace_of(grad_out).put(_device.c_contiguous(grad, host.dtype))

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class _AcrossChannels(Module):
    """The arguments and repr LocalResponseNorm and CrossMapLRN2d share: size (a
    positive int), alpha, beta and k (numbers, kept as given, as PyTorch's repr shows
    them)."""

    def __init__(self, size, alpha, beta, k):
        super().__init__()
        name = type(self).__name__
        self.size = check_positive_int(name, "size", size)
        for arg, value in (("alpha", alpha), ("beta", beta), ("k", k)):
            check_number(name, arg, value)
        self.alpha, self.beta, self.k = alpha, beta, k

    def _numbers(self):
        """(alpha, beta, k) as floats, read at each forward (attributes a user may set;
        no number: the constructor's TypeError naming the layer), kept for its backward
        as PyTorch's graph keeps them."""
        name = type(self).__name__
        return tuple(float_of(name, arg, getattr(self, arg)) for arg in ("alpha", "beta", "k"))

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class LocalResponseNorm(_AcrossChannels):
    """AlexNet's normalisation across channels: b_c = a_c / (k + alpha / size *
    sum of a_j^2 over the ``size`` channels around c)^beta (PyTorch's window: size // 2
    before, (size - 1) // 2 after). Input (N, C, *). NumPy on the host."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__(size, alpha, beta, k)

    def infer_shape(self, shape, dtype):
        if len(tuple(shape)) < 3:
            raise ValueError(f"{self._where()}: expected input of shape (N, C, *), got "
                             f"{tuple(shape)}")
        return tuple(shape)

    def _window_sum(self, a, mirrored=False):
        """For each channel c of a (N, C, *): the sum of a over its window (size // 2
        channels before, (size - 1) // 2 after; zero beyond the ends), or mirrored, over
        the channels whose window contains c."""
        before, after = self.size // 2, (self.size - 1) // 2
        pad = [(0, 0)] * a.ndim
        pad[1] = (after, before) if mirrored else (before, after)
        padded = np.pad(a, pad)
        c = a.shape[1]
        # the window's own values added, as PyTorch's pooled sum: a running sum's
        # differences would carry a NaN, an infinity or a large value's rounding to
        # every later channel
        total = padded[:, :c].copy()
        for j in range(1, self.size):
            total += padded[:, j:j + c]
        return total

    def _forward(self, x, buffered):
        alpha, beta, k = self._numbers()
        host = _device.to_host(x)
        dt = host.dtype.type
        # (inf and NaN inputs, and a zero scale where k = 0: torch's inf and NaN)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            scale = dt(k) + dt(alpha / self.size) * self._window_sum(host * host)
            y = host * scale ** dt(-beta)
        self._ctx = (host, scale, y, alpha, beta)
        return _device.namespace_of(x).put(_device.c_contiguous(y, host.dtype))

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        host, scale, y, alpha, beta = self._ctx
        g = _device.to_host(grad_out)
        dt = host.dtype.type
        # d b_c / d a_j = scale_c^-beta [c = j] - 2 alpha beta / size a_c a_j scale_c^(-beta-1)
        # summed over the windows that contain j (the same window, mirrored)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            t = g * y / scale                                # g_c a_c scale_c^(-beta-1)
            mirrored = self._window_sum(t, mirrored=True)
            grad = g * scale ** dt(-beta) - dt(2 * alpha * beta / self.size) * host * mirrored
        return _device.namespace_of(grad_out).put(_device.c_contiguous(grad, host.dtype))


class CrossMapLRN2d(_AcrossChannels):
    """PyTorch's legacy cross-channel LRN (``nn.CrossMapLRN2d``, from Lua Torch) over
    (N, C, H, W) input: b_c = a_c / (k + alpha / size * s_c)^beta, with its own window
    and its own backward, both reproduced as PyTorch computes them (its running sums,
    in its order of operations):

    * forward: with p = (size - 1) // 2 + 1, s_c is the sum of a_j^2 over channels
      max(0, c - p + 1) .. min(C - 1, c + p - 1), plus a_0^2 once c >= p (PyTorch's
      running sum never drops channel 0). An even size spans size - 1 channels.
      LocalResponseNorm's window differs (size channels, size // 2 before).
    * backward: PyTorch's formula, which is not the exact gradient of that forward:
      grad_c = g_c scale_c^-beta - 2 alpha beta / size a_c sum_j r_j with r_j = g_j b_j /
      scale_j over j in c - q .. c + size - 1 - q, q = (size + 1) // 2 (an odd size
      reads its window one channel early). Size 1 has no backward: PyTorch's fails
      there, and so does this one (RuntimeError).

    The arguments are kept as given (the repr shows them so, ``k=1`` by default, as
    PyTorch's). NumPy on the host.
    """

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1):
        super().__init__(size, alpha, beta, k)

    def infer_shape(self, shape, dtype):
        shape = tuple(shape)
        if len(shape) != 4:
            raise ValueError(f"{self._where()}: expected input to be 4D (N, C, H, W), got "
                             f"{len(shape)}D input of shape {shape}")
        if shape[1] == 0:
            raise ValueError(f"{self._where()}: expected at least one channel, got input of "
                             f"shape {shape}")
        return shape

    def _forward(self, x, buffered):
        alpha, beta, k = self._numbers()
        host = _device.to_host(x)
        dt = host.dtype.type
        square = host * host
        channels, pre = host.shape[1], (self.size - 1) // 2 + 1
        scale = np.empty_like(host)
        running = np.zeros_like(host[:, 0])
        for c in range(min(pre, channels)):
            running += square[:, c]
        scale[:, 0] = running
        for c in range(1, channels):  # PyTorch's running sum: the next channel in ...
            if c + pre - 1 < channels:
                running += square[:, c + pre - 1]
            if c > pre:  # ... and the one before the window out (never channel 0)
                running -= square[:, c - pre]
            scale[:, c] = running
        scale *= dt(alpha / self.size)
        scale += dt(k)
        y = scale ** dt(-beta) * host
        self._ctx = (host, scale, y, alpha, beta)
        return _device.namespace_of(x).put(_device.c_contiguous(y, host.dtype))

    def _backward(self, grad_out, buffered, need_grad_in):
        if self.size == 1:
            raise RuntimeValueError(f"{self._where()}: no backward for size 1 (PyTorch's "
                                    f"CrossMapLRN2d backward fails for it too)")
        if not need_grad_in:
            return None
        host, scale, y, alpha, beta = self._ctx
        g = _device.to_host(grad_out)
        dt = host.dtype.type
        n, channels = host.shape[:2]
        size, early = self.size, (self.size + 1) // 2
        grad = scale ** dt(-beta) * g
        # the ratios g b / scale with early zero channels before and size - 1 - early after
        ratio = np.zeros((n, channels + size - 1) + host.shape[2:], host.dtype)
        ratio[:, early:early + channels] = g * y / scale
        running = ratio[:, :size - 1].sum(axis=1)
        factor = dt(-2 * alpha * beta / size)
        for c in range(channels):
            running += ratio[:, c + size - 1]
            grad[:, c] += factor * host[:, c] * running
            running -= ratio[:, c]
        return _device.namespace_of(grad_out).put(_device.c_contiguous(grad, host.dtype))
