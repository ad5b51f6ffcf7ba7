"""Max and average pooling over NCHW (and NCL) input (PyTorch's semantics, ceil_mode
included)."""
import math
import numbers
import threading

import numpy as np

from .. import device as _device
from ..errors import DtypeError, RuntimeValueError
from ..validation import check_bool, check_float_dtype, check_number
from .conv import As1d, add_batch_axis, check_no_empty_axes, drop_batch_axis, pair, spatial_out
from .module import Module


def with_indices(y, indices):
    """(y, a fresh copy of indices where y lives, in y's shape): the return_indices output
    (the 1-D layers' views drop the height axis the kernels' indices have)."""
    return y, _device.namespace_of(y).put(_device.host_copy(indices).reshape(tuple(y.shape)))


def default_stride(stride):
    """Whether a pool's stride argument means PyTorch's default, the kernel size: None or
    an empty sequence."""
    return stride is None or (isinstance(stride, (tuple, list)) and not stride)


class _Returned(threading.local):
    """The max pool whose ``ReturnsIndices.forward`` this thread is running, and the
    indices its forward gave ``keep_indices``."""
    pool = None
    indices = None


_RETURNED = _Returned()


def keep_indices(module, indices):
    """A max pool's forward keeps indices, this call's, in ``module._indices`` for its
    backward, and when ``ReturnsIndices.forward`` is to return them also in this
    thread's own slot: another thread's forward of the same pool (an inference pool
    sharing a model) may replace ``_indices``, or under no_grad drop it, before this
    call returns."""
    module._indices = indices
    if _RETURNED.pool is module:
        _RETURNED.indices = indices


class ReturnsIndices:
    """Mixin of the max pools: with ``return_indices`` set, ``forward`` returns (output,
    indices), the indices this call's forward gave ``keep_indices``, where the output
    lives."""

    def forward(self, input):
        if not self.return_indices:
            return super().forward(input)
        _RETURNED.pool = self
        try:
            return with_indices(super().forward(input), _RETURNED.indices)
        finally:   # (held no longer than the call)
            _RETURNED.pool = _RETURNED.indices = None


class _Pool2d(Module):
    """Shared arguments and checks. kernel_size, stride (None or (): kernel_size), padding:
    an int or a pair (or a 1-tuple for both, as PyTorch's); padding at most half the
    kernel, as PyTorch requires. ceil_mode=True:
    output sizes rounded up, ceil((H + 2 p - k) / s) + 1, less one if that last window
    would start in the bottom (right) padding; the last windows may run past the padding
    and cover fewer cells."""

    dims = 2  # spatial dimensions of the window (the 1-D layers: 1)

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        self.ceil_mode = check_bool(type(self).__name__, "ceil_mode", ceil_mode)
        # PyTorch's attributes and repr keep the arguments as given (stride None: the
        # kernel size); the windows use the n-tuples _derive makes of them
        self.kernel_size, self.padding = kernel_size, padding
        self.stride = kernel_size if stride is None else stride
        self._derived()   # (checks them)
        self._in_shape = None  # the (N, C, H, W) shape of the last forward's input
        self._unbatched = False

    _derived_from = frozenset({"kernel_size", "stride", "padding", "dilation"})

    def _derive(self):
        """(kernel_size, stride, padding) as n-tuples, checked (at construction, and at
        the forward after one was set)."""
        name, n = type(self).__name__, self.dims
        kernel = pair(name, "kernel_size", self.kernel_size, 1, n, one=True)
        stride, padding = self.stride, self.padding
        pairs = (kernel, kernel if default_stride(stride)
                 else pair(name, "stride", stride, 1, n, one=True),
                 pair(name, "padding", padding, 0, n, one=True))
        if any(p > k // 2 for p, k in zip(pairs[2], kernel)):
            raise RuntimeValueError(f"{name}: padding {pairs[2]} must be at most half of "
                                    f"kernel_size {kernel}")
        return pairs

    def infer_shape(self, shape, dtype):
        return self._shape_2d(shape, dtype)

    def _shape_2d(self, shape, dtype):
        """Output shape of the 2-D kernels for an (N, C, H, W) or (C, H, W) input (the
        1-D layers' views come through here too); raises on a bad input."""
        shape = tuple(shape)  # (the CUDA simulator's shapes refuse negative indices)
        where = self._where()
        if len(shape) not in (3, 4):
            raise RuntimeValueError(f"{where}: expected input of shape (N, C, H, W) or (C, H, W), "
                                    f"got {shape}")
        check_float_dtype(where, dtype)
        check_no_empty_axes(where, shape, 3, "channels and spatial sizes")   # (PyTorch's)
        ho, wo = spatial_out(where, shape, *self._extent(), self.ceil_mode, self.dims)
        return tuple(shape[:-2]) + (ho, wo)

    def _window(self):
        """(kernel_size, stride, padding) of the 2-D kernels, each a pair."""
        return self._derived()

    def _extent(self):
        """_window() with the kernel size as the cells a window spans (MaxPool's
        dilation), which give the output size."""
        return self._window()

    def _forward(self, x, buffered):
        self._unbatched = x.ndim == 3
        x = add_batch_axis(x)
        self._in_shape = x.shape
        return drop_batch_axis(self._pool(x, buffered), self._unbatched)

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        grad_in = (self._buffer("grad_in", self._in_shape, grad_out.dtype)
                   if buffered else None)
        grad_in = self._unpool(add_batch_axis(grad_out), grad_in)
        return drop_batch_axis(grad_in, self._unbatched)

    def extra_repr(self):
        """PyTorch's (AvgPool2d's: kernel size, stride and padding only)."""
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(ReturnsIndices, _Pool2d):
    """Maximum over each window; padding counts as -inf (it never wins).

    Input (N, C, H, W) or unbatched (C, H, W); output (N, C, H_out, W_out) (without N for
    an unbatched input), H_out = (H + 2 p - k) // s + 1 (ceil_mode: see _Pool2d).
    Backward sends each output gradient to its window's argmax (the first maximum).
    return_indices=True: ``forward`` returns (output, indices), indices an int64 array of
    the output's shape holding each maximum's flat position h * W + w in its (n, c) plane
    (PyTorch's; the input of MaxUnpool2d); inside a Sequential only the output passes on.
    dilation: an int or a pair, the window's taps that far apart (H_out as a kernel of
    d (k - 1) + 1 cells; padding still at most half of k, as PyTorch requires).
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices=False, ceil_mode=False):
        name = type(self).__name__
        return_indices = check_bool(name, "return_indices", return_indices)
        self.dilation = dilation  # (as given, PyTorch's attribute and repr)
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.return_indices = return_indices

    def _derive(self):
        """The windows (_Pool2d's) and the dilation as an n-tuple."""
        return super()._derive() + (pair(type(self).__name__, "dilation", self.dilation, 1,
                                         self.dims, one=True),)

    def _window(self):
        return self._derived()[:3]

    def _dilation_2d(self):
        dilation = self._derived()[3]
        return dilation if self.dims == 2 else (1,) + dilation

    def _extent(self):
        (kh, kw), stride, padding = self._window()
        (dh, dw) = self._dilation_2d()
        return ((kh - 1) * dh + 1, (kw - 1) * dw + 1), stride, padding

    def extra_repr(self):
        return (super().extra_repr() + f", dilation={self.dilation}, "
                f"ceil_mode={self.ceil_mode}")

    def _pool(self, x, buffered):
        shape = self._shape_2d(x.shape, x.dtype)
        out = self._buffer("y", shape, x.dtype) if buffered else None
        indices = self._backward_buffer("indices", shape, "int64")
        y, indices = self._kernels().max_pool2d_forward(
            x, *self._window(), out=out, indices=indices, ceil_mode=self.ceil_mode,
            dilation=self._dilation_2d())
        keep_indices(self, indices)
        return y

    def _unpool(self, grad_out, grad_in):
        return self._kernels().max_pool2d_backward(grad_out, self._indices, self._in_shape,
                                                     grad_in=grad_in)


def check_divisor_override(where, value):
    """An average pool layer's divisor_override: None, or a non-zero int (a negative one
    too, as PyTorch's) as an int; anything else a ValueError."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)
                              or value == 0):
        error = RuntimeValueError if value == 0 else ValueError   # (PyTorch's for 0)
        raise error(f"{where}: expected divisor_override to be a non-zero int or None, "
                         f"got {value!r}")
    return None if value is None else int(value)


class _AvgPoolArgs:
    """Mixin of AvgPool2d and AvgPool3d: PyTorch's constructor arguments. divisor_override
    is checked first, then the window's arguments by the base class, then
    count_include_pad."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        name = type(self).__name__
        divisor_override = check_divisor_override(name, divisor_override)
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = check_bool(name, "count_include_pad", count_include_pad)
        self.divisor_override = divisor_override


class AvgPool2d(_AvgPoolArgs, _Pool2d):
    """Mean over each window, zero padding. count_include_pad=True (PyTorch's default)
    divides by kH * kW (fewer where a ceil_mode window runs past the padding); False
    divides by the number of unpadded cells in the window; divisor_override (a non-zero
    int; a negative one too, as PyTorch's) divides every window's sum by that number
    instead.

    Input (N, C, H, W) or unbatched (C, H, W); output (N, C, H_out, W_out) (without N
    for an unbatched input).
    """

    def _divisor(self):
        """(the kernels' positive divisor or None, whether the result is negated)."""
        d = self.divisor_override
        return (None, False) if d is None else (abs(d), d < 0)

    def _pool(self, x, buffered):
        out = self._buffer("y", self._shape_2d(x.shape, x.dtype), x.dtype) if buffered else None
        divisor, negated = self._divisor()
        y = self._kernels().avg_pool2d_forward(
            x, *self._window(), self.count_include_pad, out=out, ceil_mode=self.ceil_mode,
            divisor_override=divisor)
        if negated and isinstance(y, np.ndarray):
            np.subtract(y.dtype.type(0), y, out=y)   # 0 - y: +0 for a zero sum, as PyTorch's
        elif negated:
            _device.scaled(y, -1.0)
        return y

    def _unpool(self, grad_out, grad_in):
        divisor, negated = self._divisor()
        if negated:
            grad_out = _device.scaled(grad_out, -1.0, copy=True)
        return self._kernels().avg_pool2d_backward(
            grad_out, self._in_shape, *self._window(), self.count_include_pad,
            grad_in=grad_in, ceil_mode=self.ceil_mode, divisor_override=divisor)


class MaxPool1d(As1d, MaxPool2d):
    """Maximum over windows of (N, C, L) or unbatched (C, L) input (PyTorch's MaxPool1d),
    by the 2-D kernels on an (N, C, 1, L) view. kernel_size, stride (None: kernel_size),
    padding, dilation: an int (or a 1-tuple); L_out = (L + 2 p - d (k - 1) - 1) // s + 1
    (ceil_mode: rounded up, as MaxPool2d's); return_indices as MaxPool2d's (indices
    along L)."""

    dims = 1


class AvgPool1d(As1d, AvgPool2d):
    """Mean over windows of (N, C, L) or unbatched (C, L) input (PyTorch's AvgPool1d),
    by the 2-D kernels on an (N, C, 1, L) view; count_include_pad as AvgPool2d's."""

    dims = 1

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
        # PyTorch's AvgPool1d keeps (and shows) its arguments as 1-tuples
        self.kernel_size, self.stride, self.padding = (
            tuple(v) if isinstance(v, (tuple, list)) else (v,)
            for v in (self.kernel_size, self.stride, self.padding))


def lp_of_mean(mean, p, size):
    """PyTorch's LPPool from the windows' mean of x^p: (total, y), total = mean * size (the
    window sum, mean times the window's cell count) and y = total^(1/p). p: a scalar of
    mean's dtype. Call under np.errstate (NaN and inf are meant)."""
    total = mean * mean.dtype.type(size)
    return total, total ** (mean.dtype.type(1) / p)


def lp_mean_grad(g, mean, total, p, size):
    """The gradient w.r.t. the windows' mean of x^p for grad g of lp_of_mean's y:
    through the power 1/p, then PyTorch's sign(m) * relu(|m|) (the gradient times sign(m)
    twice, blocked by relu where |m| <= 0 but not at a NaN m: sign(NaN) is 0, times a NaN
    gradient), then times size. Under np.errstate, as lp_of_mean."""
    dt = mean.dtype.type
    grad_total = g * (dt(1) / p) * total ** (dt(1) / p - dt(1))
    sign = np.where(np.isnan(mean), dt(0), np.sign(mean))
    return _device.c_contiguous(
        np.where(np.abs(mean) <= 0, dt(0), grad_total * dt(size) * sign) * sign, mean.dtype)


def check_norm_type(where, norm_type):
    """LPPool's p: a non-zero number, or +-inf (PyTorch 2.13's max / min of |x|)."""
    if not (isinstance(norm_type, (float, np.floating)) and np.isinf(norm_type)):
        check_number(where, "norm_type", norm_type)
    if norm_type == 0:
        raise ValueError(f"{where}: norm_type must not be 0")


def abs_extreme_forward(host, pool, p):
    """PyTorch's LPPool for p = +-inf: max_pool(|x|), or -max_pool(-|x|) (the windows'
    least |x|), pool(a) -> (maximum, where the backward sends it) on host (N, C, *)
    arrays. Returns (y, ctx for abs_extreme_backward)."""
    sign = host.dtype.type(1 if p > 0 else -1)
    y, where = pool(sign * np.abs(host))
    return _device.c_contiguous(sign * y, host.dtype), (host, where, sign)


def abs_extreme_backward(g, ctx, unpool):
    """The gradient of abs_extreme_forward: g sent to each window's chosen cell by
    unpool(g, where), times sign(x) (the gradient of |x|: 0 at 0, and at NaN, as
    PyTorch's sgn)."""
    host, where, sign = ctx
    grad = unpool(np.ascontiguousarray(g * sign, host.dtype), where) * sign
    slope = np.sign(np.where(np.isnan(host), host.dtype.type(0), host))
    return _device.c_contiguous(grad * slope, host.dtype)


class LPPool2d(AvgPool2d):
    """Power-average pooling (PyTorch's LPPool2d): y = (sum of x^p over each window)^(1/p),
    computed as PyTorch computes it: the mean of x^p over the window (no padding;
    ceil_mode windows cut at the edge) times kH * kW, to the power 1/p. So p = 2 with
    negative inputs is the windows' Euclidean norm, a non-integer p with a negative
    input or window sum gives NaN, and an all-zero window has gradient 0. p = inf is
    the windows' largest |x|, p = -inf their least (PyTorch's max pooling of |x|, its
    gradient to the first such cell).

    norm_type: p (a non-zero number or +-inf); kernel_size, stride (None: kernel_size): an
    int or a pair. Input (N, C, H, W) or unbatched (C, H, W). The powers are NumPy on the host, the
    windows the CPU backend's average-pooling kernels (a device array goes through the
    host).
    """

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False):
        check_norm_type(type(self).__name__, norm_type)
        # PyTorch unpacks the kernel size into its dims sizes: no 1-tuple for all
        pair(type(self).__name__, "kernel_size", kernel_size, 1, self.dims)
        super().__init__(kernel_size, stride, 0, ceil_mode)
        self.norm_type = norm_type
        # PyTorch's LPPool keeps stride None (the windows use the pairs)
        self.stride = stride
        self._ctx = None

    def _area(self):
        (kh, kw), _, _ = self._window()
        return kh * kw

    def _pool(self, x, buffered):
        host = _device.to_host(x)
        # (norm_type: an attribute a user may set, read at each forward and kept for the
        # backward)
        p = host.dtype.type(self._float("norm_type"))
        if np.isinf(p):
            kernels = _device.kernels("cpu")
            y, ctx = abs_extreme_forward(host, lambda a: kernels.max_pool2d_forward(
                a, *self._window(), ceil_mode=self.ceil_mode), p)
            self._ctx = ctx + (p,)
            return _device.namespace_of(x).put(y)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            mean = _device.kernels("cpu").avg_pool2d_forward(
                host ** p, *self._window(), True, ceil_mode=self.ceil_mode)
            total, y = lp_of_mean(mean, p, self._area())
        self._ctx = (host, mean, total, p)
        return _device.namespace_of(x).put(_device.c_contiguous(y, host.dtype))

    def _unpool(self, grad_out, grad_in):
        g = _device.to_host(grad_out)
        if np.isinf(self._ctx[-1]):
            kernels = _device.kernels("cpu")
            grad = abs_extreme_backward(g, self._ctx[:-1], lambda a, where: (
                kernels.max_pool2d_backward(a, where, self._ctx[0].shape)))
            return _device.namespace_of(grad_out).put(grad)
        host, mean, total, p = self._ctx
        dt = host.dtype.type
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            grad_power = _device.kernels("cpu").avg_pool2d_backward(
                lp_mean_grad(g, mean, total, p, self._area()), host.shape, *self._window(),
                True, ceil_mode=self.ceil_mode)
            grad = grad_power * p * host ** (p - dt(1))
        return _device.namespace_of(grad_out).put(_device.c_contiguous(grad, host.dtype))

    def extra_repr(self):
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, ceil_mode={self.ceil_mode}")


class LPPool1d(As1d, LPPool2d):
    """Power-average pooling over (N, C, L) or unbatched (C, L) input (PyTorch's
    LPPool1d), LPPool2d's rule on an (N, C, 1, L) view; the window sum is the mean
    times kernel_size."""

    dims = 1

    def _window(self):
        (k,), (s,), _ = self._derived()[:3]
        return (1, k), (1, s), (0, 0)


class MaxUnpool2d(Module):
    """The partial inverse of MaxPool2d (PyTorch's MaxUnpool2d): ``forward(input, indices,
    output_size=None)`` puts each value of input at its position in indices (MaxPool2d's
    return_indices output, flat h * W + w per (n, c) plane) of a zero (N, C, H, W)
    output; the other positions stay 0. H, W = (H_in - 1) s - 2 p + k by default, or
    output_size (2 entries, or 4 with batch and channels, each within one stride of the
    default: PyTorch's check). Backward gathers grad_out at the indices. NumPy on
    the host (a device array goes through the host). Input (N, C, H_in, W_in) or
    unbatched (C, H_in, W_in)."""

    dims = 2

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        name, n = type(self).__name__, self.dims
        self.kernel_size = pair(name, "kernel_size", kernel_size, 1, n)
        self.stride = self.kernel_size if stride is None else pair(name, "stride", stride, 1, n)
        self.padding = pair(name, "padding", padding, 0, n)
        self._pending = None  # (indices, output_size) of the forward being run
        self._ctx = None

    def forward(self, input, indices, output_size=None):
        """The unpooled (N, C, H, W) output (no N unbatched) for input (N, C, H_in, W_in)
        and indices of input's shape (MaxPool's return_indices output); output_size as
        the class docstring says."""
        x, where = input, self._where()
        if not _device.is_array(x):
            self._check_input(x)   # (a list: the TypeError other layers give)
        if not _device.is_array(indices) or indices.dtype.kind not in "iu":
            got = indices.dtype if _device.is_array(indices) else type(indices).__name__
            raise DtypeError(f"{where}: expected integer indices (MaxPool's "
                             f"return_indices output), got {got}")
        if tuple(indices.shape) != tuple(x.shape):
            raise RuntimeValueError(f"{where}: expected indices of the input's shape "
                                    f"{tuple(x.shape)}, got {tuple(indices.shape)}")
        self._pending = (_device.to_host(indices), output_size)
        try:
            return super().forward(x)
        finally:
            self._pending = None

    def _out_spatial(self, shape):
        """The output's spatial sizes for an input of this shape: the default, or
        output_size (dims entries, or dims + 2 with batch and channels), each within one
        stride of the default (PyTorch's _unpool_output_size)."""
        n = self.dims
        default = tuple((i - 1) * s - 2 * p + k for i, s, p, k in zip(
            shape[len(shape) - n:], self.stride, self.padding, self.kernel_size))
        output_size = self._pending[1] if self._pending else None
        if output_size is None:
            return default
        sizes = tuple(output_size)
        if len(sizes) == n + 2:
            sizes = sizes[2:]
        if len(sizes) != n or any(isinstance(v, bool) or not isinstance(v, numbers.Integral)
                                  for v in sizes):
            raise ValueError(f"{self._where()}: output_size should be a sequence of {n} or "
                             f"{n + 2} ints, got {output_size!r}")
        for axis, (v, m, s) in enumerate(zip(sizes, default, self.stride)):
            if not m - s < v < m + s:
                raise ValueError(f"{self._where()}: invalid output_size {output_size!r} (dim "
                                 f"{axis} must be between {m - s} and {m + s})")
        return tuple(int(v) for v in sizes)

    def infer_shape(self, shape, dtype):
        shape = tuple(shape)
        if len(shape) not in (self.dims + 1, self.dims + 2):
            raise RuntimeValueError(f"{self._where()}: expected input of rank {self.dims + 2} "
                                    f"(batched) or {self.dims + 1}, got shape {shape}")
        if 0 in shape[1:]:   # (PyTorch's: every size but the first non-zero)
            raise RuntimeValueError(f"{self._where()}: expected input with non-zero sizes "
                                    f"after the first, got shape {shape}")
        check_float_dtype(self._where(), dtype)
        return shape[:len(shape) - self.dims] + self._out_spatial(shape)

    def _forward(self, x, buffered):
        shape = tuple(x.shape)
        out_shape = self.infer_shape(shape, x.dtype)
        lead = len(shape) - self.dims
        indices = self._pending[0].reshape(math.prod(shape[:lead]), math.prod(shape[lead:]))
        plane = math.prod(out_shape[len(out_shape) - self.dims:])
        if plane == 0:   # PyTorch's: an empty output, no index checked
            self._ctx = (indices, shape)
            return _device.namespace_of(x).put(np.zeros(out_shape, x.dtype))
        if indices.size and (indices.min() < 0 or indices.max() >= plane):
            raise RuntimeValueError(f"{self._where()}: an index is outside the output plane of "
                                    f"{plane} values")
        values = _device.to_host(x).reshape(indices.shape)
        y = np.zeros((indices.shape[0], plane), x.dtype)
        np.put_along_axis(y, indices, values, axis=1)
        self._ctx = (indices, shape)
        return _device.namespace_of(x).put(y.reshape(out_shape))

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        indices, shape = self._ctx
        spatial = tuple(grad_out.shape)[grad_out.ndim - self.dims:]
        g = _device.to_host(grad_out).reshape(indices.shape[0], math.prod(spatial))
        if g.shape[1] == 0:   # (an empty output plane: nothing flowed back)
            grad_in = np.zeros(shape, g.dtype)
        else:
            grad_in = np.take_along_axis(g, indices, axis=1).reshape(shape)
        return _device.namespace_of(grad_out).put(grad_in)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(MaxUnpool2d):
    """MaxUnpool2d for (N, C, L) or unbatched (C, L) input (MaxPool1d's indices);
    L = (L_in - 1) s - 2 p + k, or output_size (1 entry, or 3)."""

    dims = 1

