"""Conv2d: 2-D convolution (cross-correlation) over NCHW input, PyTorch's layout and init."""
import functools
import math
import numbers

import numpy as np

from .. import device as _device
from .. import random as _random
from ..errors import NotImplementedValueError, RuntimeValueError, TypeValueError
from ..kernels.window_shapes import pool_out_shape
from ..validation import check_int64, check_only, check_positive_int, int_items
from . import init
from .module import Module, Parameter, live_grad, nothing_to_compute
from .padding import check_pad_fits, pad_backward, pad_forward


def pair(layer, name, value, minimum, n=2, one=False):
    """An int or n ints (a pair by default), each >= minimum, as a tuple of n ints;
    one=True: also a sequence of one int, for every axis (PyTorch's conv and pooling
    kernels expand a one-element stride, padding, ... so)."""
    value = int_items(value)  # (a 1-D integer array, as PyTorch takes)
    items = (value,) * n if not isinstance(value, (tuple, list)) else tuple(value)
    if one and len(items) == 1:
        items *= n
    not_ints = any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in items)
    if len(items) != n or not_ints or any(v < minimum for v in items):
        what = "a pair of them" if n == 2 else f"a tuple of {n}"
        # a float: PyTorch's TypeError; a size out of range or a tuple of another length:
        # the RuntimeError its kernels (or its tensor of a negative size) raise
        error = TypeValueError if not_ints else RuntimeValueError
        raise error(f"{layer}: expected {name} to be an int >= {minimum} or {what}, "
                    f"got {value!r}")
    return check_int64(layer, name, items)   # (at construction, not the kernels' call)


def check_conv_args(name, in_channels, out_channels, dims, dilation, groups, padding_mode):
    """(in_channels, out_channels) as ints after the checks every convolution layer makes;
    dilation, groups (None: not checked here, the layer takes any) and padding_mode are
    taken at PyTorch's defaults only."""
    if dilation is not None:
        check_only(name, "dilation", dilation, (1, (1,) * dims))
    if groups is not None:
        check_only(name, "groups", groups, (1,))
    check_only(name, "padding_mode", padding_mode,
               ("zeros",) if dilation is not None else PADDING_MODES)
    # (a negative count: PyTorch's RuntimeError for a weight of a negative dimension)
    return (check_positive_int(name, "in_channels", in_channels, RuntimeValueError),
            check_positive_int(name, "out_channels", out_channels, RuntimeValueError))


PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def bool_bias_at(place):
    """Decorator of a convolution's __init__ for DESIGN.md's Conv2d(in, out, k, stride,
    padding, bias): a bool given by position at place (counted after self), where
    PyTorch has dilation (an int), is the bias, the dilation 1. Only by position: a
    keyword dilation=True/False stays the dilation, which refuses a bool (PyTorch takes
    it as 1 or 0), so it is no silent bias=False; a bias given as well is a TypeError."""
    def decorate(init):
        @functools.wraps(init)
        def init_taking_a_bool_bias(self, *args, **kwargs):
            if len(args) > place and isinstance(args[place], bool):
                if "bias" in kwargs or len(args) > place + 2:
                    raise TypeError(f"{type(self).__name__}: got the bias twice: the bool "
                                    f"{args[place]!r} in place {place + 1} (DESIGN.md's "
                                    f"Conv2d(in, out, k, stride, padding, bias)) and bias=")
                kwargs["bias"] = args[place]
                args = args[:place] + (1,) + args[place + 1:]
            return init(self, *args, **kwargs)
        return init_taking_a_bool_bias
    return decorate


def check_no_empty_axes(where, shape, count, what="spatial sizes"):
    """Raise unless the last ``count`` axes of shape are all non-empty: PyTorch's
    convolutions, pools and unfold take an empty batch only (an empty image has no
    windows; padding alone would make up values)."""
    shape = tuple(shape)
    if 0 in shape[len(shape) - count:]:
        raise RuntimeValueError(f"{where}: expected an input with non-zero {what} (only the batch "
                                f"may be empty, as in PyTorch), got shape {shape}")


def spatial_out(where, shape, kernel_size, stride, padding, ceil_mode=False, dims=2):
    """(H_out, W_out) of a window op on an input of shape (..., H, W) (ceil_mode: pooling's,
    PyTorch's rule); raises when the kernel does not fit the padded input (the message
    names the last ``dims`` axes, and a 1-D layer's (..., 1, L) view as the (..., L) input
    it came from), or when H or W is 0."""
    shown = tuple(shape) if dims == 2 else drop_height_shape(shape)  # (the caller's input)
    check_no_empty_axes(where, shown, dims)
    h, w = tuple(shape)[-2:]
    (kh, kw), (ph, pw) = kernel_size, padding
    out = pool_out_shape((0, 0, h, w), kernel_size, stride, padding, ceil_mode)[2:]
    # ceil_mode keeps a first window that runs past the input (PyTorch's rule)
    if (kh > h + 2 * ph or kw > w + 2 * pw) and not (ceil_mode and min(out) >= 1):
        raise RuntimeValueError(f"{where}: kernel size {(kh, kw)[2 - dims:]} is larger than "
                                f"the padded input {(h + 2 * ph, w + 2 * pw)[2 - dims:]} of "
                                f"an input of shape {shown}")
    return out


def drop_height_shape(shape):
    """A 1-D layer's (..., 1, L) view's shape as its input's, (..., L)."""
    shape = tuple(shape)
    return shape[:-2] + shape[-1:]


def add_batch_axis(x):
    """x (C, H, W) as (1, C, H, W), a view; an (N, C, H, W) x as it is."""
    return x.reshape((1,) + tuple(x.shape)) if x.ndim == 3 else x


def drop_batch_axis(y, unbatched):
    """y (1, C, H, W) as (C, H, W) (a view) when the input was unbatched; else y."""
    return y.reshape(tuple(y.shape)[1:]) if unbatched and y is not None else y


def add_height_axis(x):
    """x (..., L) as (..., 1, L), a view: a 1-D layer's input for its 2-D kernels."""
    shape = tuple(x.shape)
    return x.reshape(shape[:-1] + (1, shape[-1]))


def drop_height_axis(y):
    """y (..., 1, L) as (..., L) (a view); None stays None."""
    if y is None:
        return None
    shape = tuple(y.shape)
    return y.reshape(shape[:-2] + shape[-1:])


def input_error(layer, rank_ok):
    """The error class for an input a conv layer refuses: PyTorch's NotImplementedError
    (from F.pad, which runs first) for a wrong rank under a padding_mode other than
    'zeros', its RuntimeError otherwise."""
    if not rank_ok and getattr(layer, "padding_mode", "zeros") != "zeros":
        return NotImplementedValueError
    return RuntimeValueError


class As1d:
    """Mixin running a 2-D layer (Conv2d, pooling, ConvTranspose2d) on (N, C, L) or
    unbatched (C, L) inputs, as PyTorch's 1-D layers: the input viewed as (N, C, 1, L),
    the 2-D kernels' output viewed back (no copies). The 2-D layer's kernel geometry
    comes from ``_window()``, which the 1-D layer defines as (1, k), (1, s), (0, p)
    (ConvTranspose1d keeps height-1 pairs itself and has no window)."""

    dims = 1

    def _window(self):
        if not isinstance(self, Conv2d):
            # (pooling: its n-tuples; max pooling passes its dilation to the kernels)
            (k,), (s,), (p,) = self._derived()[:3]
            return (1, k), (1, s), (0, p)
        # a convolution's dilation widens the kernel it gives the 2-D kernels (zeros
        # between taps)
        (k,), ((s,), (d,), ((p, _),)) = self.kernel_size, self._derived()
        return (1, d * (k - 1) + 1), (1, s), (0, p)

    def _check_1d(self, shape):
        shape = tuple(shape)
        channels = getattr(self, "in_channels", None)
        c = "C" if channels is None else str(channels)
        if len(shape) not in (2, 3) or (channels is not None and shape[-2] != channels):
            raise input_error(self, len(shape) in (2, 3))(
                f"{self._where()}: expected input of shape (N, {c}, L) or ({c}, L), got "
                f"{shape}")
        return shape

    def infer_shape(self, shape, dtype):
        shape = self._check_1d(shape)
        out = self._shape_2d(shape[:-1] + (1, shape[-1]), dtype)
        return out[:-2] + out[-1:]

    def _forward(self, x, buffered):
        return drop_height_axis(super()._forward(add_height_axis(x), buffered))

    def _backward(self, grad_out, buffered, need_grad_in):
        return drop_height_axis(super()._backward(add_height_axis(grad_out), buffered,
                                                  need_grad_in))


class Conv2d(Module):
    """y = conv(x, weight) + bias, NCHW.

    weight: (out_channels, in_channels / groups, kH, kW); bias: (out_channels,) or None.
    Both start U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = in_channels / groups *
    kH * kW, PyTorch's default (kaiming_uniform with a=sqrt(5)), from fastnn's global
    generator. kernel_size, stride, padding, dilation: an int or a pair (height, width)
    (stride, dilation and zeros padding also a 1-tuple for both, as PyTorch expands it);
    padding may also be 'valid' (0) or 'same' (stride 1: H_out = H, W_out = W; an even
    dilated kernel span pads one more at the bottom/right, as PyTorch). ``padding`` keeps
    the value given (the string, or the pair), as PyTorch's attribute. padding_mode:
    'zeros' (the default), 'reflect', 'replicate' or 'circular' (the border built on the
    host first, within PyTorch's limits: a reflection below the size, a wrap at most it).
    Input x: (N, in_channels, H, W), or (in_channels, H, W) for one unbatched sample as in
    PyTorch; output: (N, out_channels, H_out, W_out) (without N for an unbatched input)
    with H_out = (H + 2 * padding - dilation * (kH - 1) - 1) // stride + 1 (likewise W_out).

    dilation 1 and groups 1 (the defaults) run the backend's conv kernels on the arrays
    as they are (on the GPU too), and so does a depthwise layer (groups = in_channels,
    out_channels a multiple of it) with the backend's depthwise kernels. Other values run
    the same kernels on the host: dilation with stride 1 as one undilated convolution per
    phase of the zero-padded input (rows i, i + d, ..., columns j, j + d, ...; the outputs
    interleave), strided dilation as im2col of the taps the kernel reads (``_tapped``),
    other groups as one kernel call per group on contiguous copies of its input
    channels; a device array goes through the host.
    """

    dims = 2  # spatial dimensions of the kernel (Conv1d: 1)

    @bool_bias_at(5)
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", dtype=np.float32):
        super().__init__()
        name, n = type(self).__name__, self.dims
        self.in_channels, self.out_channels = check_conv_args(
            name, in_channels, out_channels, n, None, None, padding_mode)
        groups = check_positive_int(name, "groups", groups)
        if self.in_channels % groups or self.out_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels "
                             f"({out_channels}) must be divisible by groups ({groups})")
        self.groups = int(groups)
        self.padding_mode = padding_mode
        self.kernel_size = pair(name, "kernel_size", kernel_size, 1, n)
        self.stride = pair(name, "stride", stride, 1, n, one=True)
        self.dilation = pair(name, "dilation", dilation, 1, n, one=True)
        self.padding = self._padding(padding, self.stride, self.dilation)[0]
        self.output_padding = (0,) * n  # PyTorch's _ConvNd attributes (no effect here)
        self.transposed = False
        fan_in = self.in_channels // self.groups * math.prod(self.kernel_size)
        bound = 1.0 / math.sqrt(fan_in)
        rng = _random.generator()
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = Parameter(rng.uniform(-bound, bound, shape).astype(dtype))
        self.bias = (Parameter(rng.uniform(-bound, bound, self.out_channels).astype(dtype))
                     if bias else None)
        self._x = None
        self._unbatched = False

    def reset_parameters(self):
        """Draw weight and bias again as the constructor does (PyTorch's), in place."""
        init.reset_fan_in_uniform(self.weight, self.bias)

    _derived_from = frozenset({"stride", "padding", "dilation", "padding_mode"})

    def _derive(self):
        """(stride, dilation, ((before, after),) per spatial axis) from the attributes,
        checked (at the forward after one was set: PyTorch reads them at each call)."""
        name, n = type(self).__name__, self.dims
        stride = pair(name, "stride", self.stride, 1, n, one=True)
        dilation = pair(name, "dilation", self.dilation, 1, n, one=True)
        return (stride, dilation) + self._padding(self.padding, stride, dilation)[1:]

    _stride = property(lambda self: self._derived()[0])
    _dilation = property(lambda self: self._derived()[1])
    _pads = property(lambda self: self._derived()[2])

    def _padding(self, padding, stride, dilation):
        """(padding as PyTorch keeps it, ((before, after),) per spatial axis) for an int, a
        tuple, or PyTorch's 'valid' (none) and 'same' (stride 1, output size = input size;
        an even dilated kernel span puts the odd cell of the border after, as PyTorch)."""
        name, n = type(self).__name__, self.dims
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"{name}: invalid padding string {padding!r}, should be one "
                                 f"of ['valid', 'same']")
            if padding == "valid":
                return padding, ((0, 0),) * n
            if any(s != 1 for s in stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided "
                                 f"convolutions, got stride {self.stride}")
            totals = tuple(d * (k - 1) for d, k in zip(dilation, self.kernel_size))
            return padding, tuple((t // 2, t - t // 2) for t in totals)
        # (PyTorch pads the other modes by the tuple as given: one entry is an error)
        pads = pair(name, "padding", padding, 0, n, one=self.padding_mode == "zeros")
        return pads, tuple((p, p) for p in pads)

    def _window(self):
        """(kernel_size, stride, padding) of the 2-D kernels, each a pair; the kernel size
        is the dilated span d (k - 1) + 1."""
        stride, dilation, pads = self._derived()
        spans = tuple(d * (k - 1) + 1 for d, k in zip(dilation, self.kernel_size))
        return spans, stride, tuple(before for before, _ in pads)

    def _symmetric(self):
        """False for 'same' padding of an even dilated kernel span (one more after)."""
        return all(before == after for before, after in self._pads)

    def _simple(self):
        """True when the kernels run on the arrays as they are (symmetric zero padding,
        no dilation; no groups, or depthwise: groups = in_channels)."""
        return (self.groups in (1, self.in_channels) and all(d == 1 for d in self._dilation)
                and self.padding_mode == "zeros" and self._symmetric())

    def _op(self, direction):
        """The backend's conv2d or depthwise_conv2d op (forward or backward)."""
        kind = "conv2d" if self.groups == 1 else "depthwise_conv2d"
        return getattr(self._kernels(), f"{kind}_{direction}")

    def _border(self):
        """((top, bottom), (left, right)) of the padding, built on the host (a padding_mode
        other than 'zeros', an asymmetric 'same' border, or the zero border of a dilated
        convolution's phases)."""
        return self._pads if self.dims == 2 else ((0, 0),) + self._pads

    def _dilation_2d(self):
        return self._dilation if self.dims == 2 else (1,) + self._dilation

    def _kernel_weight(self, array):
        """The weight's data or grad as the 2-D kernels take it: (out, in, kH, kW)."""
        return array

    def infer_shape(self, shape, dtype):
        return self._shape_2d(shape, dtype)

    def _shape_2d(self, shape, dtype):
        """Output shape of the 2-D kernels for an input of this (N, C, H, W) or (C, H, W)
        shape; raises on a bad input (the 1-D layers' views come through here too)."""
        shape = tuple(shape)  # (the CUDA simulator's shapes refuse negative indices)
        where = self._where()
        if len(shape) not in (3, 4) or shape[-3] != self.in_channels:
            raise input_error(self, len(shape) in (3, 4))(
                f"{where}: expected input of shape (N, {self.in_channels}, H, W) or "
                f"({self.in_channels}, H, W), got {shape}")
        self._check_params((
            ("weight", self.weight,
             (self.out_channels, self.in_channels // self.groups) + tuple(self.kernel_size)),
            ("bias", self.bias, (self.out_channels,))))
        self._check_dtype(dtype, self.weight.data.dtype)
        if self._symmetric():
            ho, wo = spatial_out(where, shape, *self._window(), dims=self.dims)
        else:  # 'same' (stride 1) with an even span: the input's size
            check_no_empty_axes(where, shape, 2)
            ho, wo = shape[-2:]
        return tuple(shape[:-3]) + (self.out_channels, ho, wo)

    def _forward(self, x, buffered):
        self._unbatched = x.ndim == 3
        x = add_batch_axis(x)
        if not self._simple():
            return drop_batch_axis(self._general_forward(x), self._unbatched)
        out = self._buffer("y", self._shape_2d(x.shape, x.dtype), x.dtype) if buffered else None
        _, stride, padding = self._window()
        y = self._op("forward")(
            x, self._kernel_weight(self.weight.data),
            None if self.bias is None else self.bias.data, stride, padding, out=out)
        self._x = x
        return drop_batch_axis(y, self._unbatched)

    def _backward(self, grad_out, buffered, need_grad_in):
        if nothing_to_compute(need_grad_in, self.weight, self.bias):
            return None   # (all frozen: PyTorch's backward neither computes nor touches them)
        grad_out = add_batch_axis(grad_out)
        if not self._simple():
            return drop_batch_axis(self._general_backward(grad_out, need_grad_in),
                                   self._unbatched)
        grad_in = (self._buffer("grad_in", self._x.shape, grad_out.dtype)
                   if buffered and need_grad_in else None)
        _, stride, padding = self._window()
        grad_weight = live_grad(self.weight)
        grad_in = self._op("backward")(
            grad_out, self._x, self._kernel_weight(self.weight.data), stride, padding,
            grad_weight=None if grad_weight is None else self._kernel_weight(grad_weight),
            grad_bias=live_grad(self.bias),
            grad_in=grad_in, need_grad_in=need_grad_in)
        return drop_batch_axis(grad_in, self._unbatched)

    def _groups_of(self, channels):
        size = channels // self.groups
        return [slice(g * size, (g + 1) * size) for g in range(self.groups)]

    def _phased(self, stride):
        """True for a dilated stride-1 convolution: run as one undilated convolution per
        phase (the input's rows i, i + d, ... and columns j, j + d, ...), which skips the
        spread kernel's zero taps."""
        return stride == (1, 1) and self._dilation_2d() != (1, 1)

    def _tapped(self, stride):
        """True for a dilated convolution with a stride: run as im2col of the taps the
        kernel reads (conv3d.py's, on a depth-1 volume) and one product per group. A
        kernel spread with zeros between its taps would multiply the inputs between them
        by 0, and an inf or NaN there would reach outputs PyTorch keeps finite."""
        return stride != (1, 1) and self._dilation_2d() != (1, 1)

    def _depth_one(self, stride):
        """conv3d's (stride, pads, dilation) of this 2-D geometry on a depth-1 volume."""
        return ((1,) + tuple(stride), ((0, 0),) + tuple(self._border()),
                (1,) + tuple(self._dilation_2d()))

    def _tapped_forward(self, host, stride):
        """(y, what _tapped_backward needs) of host x (N, C, H, W)."""
        from .conv3d import conv3d_forward
        weight = _device.to_host(self._kernel_weight(self.weight.data))
        bias = None if self.bias is None else _device.to_host(self.bias.data)
        check_pad_fits(self._where(), self.padding_mode, host.shape[2:], self._border())
        y, cols, padded_shape = conv3d_forward(
            host[:, :, None], weight[:, :, None], bias, *self._depth_one(stride),
            self.groups, self._pad_mode())
        return y[:, :, 0], (weight, cols, padded_shape, stride)

    def _tapped_backward(self, g, saved, need_grad_in):
        """(grad of the 2-D kernel weight, of the bias, of the input or None)"""
        from .conv3d import conv3d_backward
        weight, cols, padded_shape, stride = saved
        grad_weight, grad_bias, grad_in = conv3d_backward(
            g[:, :, None], weight[:, :, None], cols, padded_shape, *self._depth_one(stride),
            self.groups, self._pad_mode(), need_grad_in, self.weight.requires_grad,
            live_grad(self.bias) is not None)   # (a frozen one's not computed)
        return (None if grad_weight is None else grad_weight[:, :, 0], grad_bias,
                None if grad_in is None else grad_in[:, :, 0])

    def _general_forward(self, x):
        """Dilation or groups: the current CPU backend's kernels on host arrays, one call
        per group (a group's input channels copied to a contiguous array) and, dilated
        with stride 1, per phase of the input; strided dilation runs on its taps
        (``_tapped``)."""
        kernels = _device.kernels("cpu")
        host = _device.to_host(x)
        _, stride, padding = self._window()
        if self._tapped(stride):
            y, saved = self._tapped_forward(host, stride)
            # (namespace, not read back from self._x: another thread's forward of this
            # layer may replace it, or under no_grad drop it, meanwhile)
            namespace = _device.namespace_of(x)
            self._x = ("taps", saved, namespace)
            return namespace.put(y)
        phased = self._phased(stride)
        weight = _device.to_host(self._kernel_weight(self.weight.data))
        bias = None if self.bias is None else _device.to_host(self.bias.data)
        out_shape = self._shape_2d(host.shape, host.dtype)
        # the border built first, then no padding: another padding_mode, an asymmetric
        # border, or the zero border the phases need in place
        bordered = (self.padding_mode != "zeros" or not self._symmetric()
                    or (phased and padding != (0, 0)))
        if bordered:
            check_pad_fits(self._where(), self.padding_mode, host.shape[2:], self._border())
            host = pad_forward(host, self._border(), self._pad_mode())
            padding = (0, 0)
        y = np.empty(out_shape, host.dtype)
        inputs = []
        for gi, go in zip(self._groups_of(self.in_channels), self._groups_of(self.out_channels)):
            xg = np.ascontiguousarray(host[:, gi])
            bg = None if bias is None else bias[go]
            if phased:
                dh, dw = self._dilation_2d()
                parts = self._phases(xg, weight.shape[2:])
                for (i, j), sub in parts:
                    y[:, go, i::dh, j::dw] = kernels.conv2d_forward(sub, weight[go], bg,
                                                                     (1, 1), (0, 0))
                inputs.append(parts)
            else:
                inputs.append(xg)
                y[:, go] = kernels.conv2d_forward(xg, weight[go], bg, stride, padding)
        namespace = _device.namespace_of(x)
        self._x = (host, inputs, weight, namespace, phased, padding, bordered)
        return namespace.put(y)

    def _pad_mode(self):
        """pad_forward's name for the padding_mode."""
        return "constant" if self.padding_mode == "zeros" else self.padding_mode

    def _phases(self, xg, kernel_size):
        """[((i, j), contiguous xg[:, :, i::dh, j::dw])] for the phases with outputs."""
        (dh, dw), (kh, kw) = self._dilation_2d(), kernel_size
        parts = []
        for i in range(dh):
            for j in range(dw):
                sub = np.ascontiguousarray(xg[:, :, i::dh, j::dw])
                if sub.shape[2] >= kh and sub.shape[3] >= kw:
                    parts.append(((i, j), sub))
        return parts

    def _general_backward(self, grad_out, need_grad_in):
        kernels = _device.kernels("cpu")
        g = _device.to_host(grad_out)
        if isinstance(self._x[0], str):   # ("taps", saved, namespace): _tapped_forward ran
            grad_weight, grad_bias, grad_in = self._tapped_backward(g, self._x[1],
                                                                    need_grad_in)
            return self._accumulate_grads(grad_weight, grad_bias, grad_in, self._x[2])
        host, inputs, weight, namespace, phased, padding, bordered = self._x
        _, stride, _ = self._window()
        dh, dw = self._dilation_2d()
        # a frozen parameter's gradient is neither computed nor added (PyTorch's)
        grad_weight = np.zeros_like(weight) if self.weight.requires_grad else None
        grad_bias = (np.zeros(self.out_channels, g.dtype)
                     if live_grad(self.bias) is not None else None)
        grad_in = np.zeros_like(host) if need_grad_in else None
        for xg, gi, go in zip(inputs, self._groups_of(self.in_channels),
                              self._groups_of(self.out_channels)):
            gb = None if grad_bias is None else grad_bias[go]
            if not phased:
                gw = None if grad_weight is None else grad_weight[go]
                result = kernels.conv2d_backward(
                    np.ascontiguousarray(g[:, go]), xg, weight[go], stride, padding,
                    grad_weight=gw, grad_bias=gb, need_grad_in=need_grad_in)
                if need_grad_in:
                    grad_in[:, gi] = result
                continue
            gw = None if grad_weight is None else grad_weight[go]
            for (i, j), sub in xg:
                result = kernels.conv2d_backward(
                    np.ascontiguousarray(g[:, go, i::dh, j::dw]), sub, weight[go], (1, 1),
                    (0, 0), grad_weight=gw, grad_bias=gb,
                    need_grad_in=need_grad_in)
                if need_grad_in:
                    grad_in[:, gi, i::dh, j::dw] = result
        if grad_in is not None and bordered:  # the border's gradient back to what it copied
            grad_in = pad_backward(grad_in, self._border(), self._pad_mode())
        return self._accumulate_grads(grad_weight, grad_bias, grad_in, namespace)

    def _accumulate_grads(self, grad_weight, grad_bias, grad_in, namespace):
        """Add the host gradients of the kernel weight and the bias (None without one) to
        .grad wherever they live, a frozen one's left untouched; grad_in (host, or None)
        back where the input came from."""
        if self.weight.requires_grad:
            taps = grad_weight.reshape(self.weight.grad.shape)
            _device.update_on_host(self.weight.grad, lambda a: np.add(a, taps, out=a))
        if live_grad(self.bias) is not None:
            _device.update_on_host(self.bias.grad, lambda a: np.add(a, grad_bias, out=a))
        return None if grad_in is None else namespace.put(grad_in)

    def extra_repr(self):
        """PyTorch's: the defaults left out ('same' / 'valid' padding shown as given)."""
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        padding, dilation = self.padding, self.dilation   # (as set: an int too)
        if isinstance(padding, str) or any(p != 0 for p in np.ravel(padding)):
            text += f", padding={padding}"
        if any(d != 1 for d in np.ravel(dilation)):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text + (f", padding_mode={self.padding_mode}" if self.padding_mode != "zeros"
                       else "")


class Conv1d(As1d, Conv2d):
    """y = conv(x, weight) + bias over (N, C, L) input (PyTorch's Conv1d), run by the
    2-D kernels on an (N, C, 1, L) view.

    weight: (out_channels, in_channels / groups, k); bias: (out_channels,) or None;
    PyTorch's default initialisation (fan_in = in_channels / groups * k). kernel_size,
    stride, padding, dilation: an int (or a 1-tuple); padding may be 'valid' or 'same'
    (stride 1; an even dilated span pads one more on the right, as PyTorch);
    padding_mode as Conv2d's.
    Input x: (N, in_channels, L) or unbatched (in_channels, L); output
    (N, out_channels, L_out), L_out = (L + 2 * padding - dilation * (k - 1) - 1) //
    stride + 1.
    """

    def _kernel_weight(self, array):
        shape = tuple(array.shape)
        return array.reshape(shape[:2] + (1, shape[2]))
