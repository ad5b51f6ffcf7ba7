"""ConvTranspose2d and ConvTranspose1d: the adjoint of Conv2d (PyTorch's transposed
convolution), run by the backend's conv2d kernels (the 1-D layer on an (N, C, 1, L)
view)."""
import math
import numbers

import numpy as np

from .. import device as _device
from .. import random as _random
from ..errors import RuntimeValueError, TypeValueError
from ..validation import check_only, check_positive_int
from . import init
from .conv import (As1d, Conv2d, add_batch_axis, check_conv_args, check_no_empty_axes,
                   drop_batch_axis, pair)
from .module import Module, Parameter, live_grad, nothing_to_compute


def output_padding_for(where, output_size, shape, smallest, stride):
    """PyTorch's _output_padding: the output_padding that gives output_size for an input
    of this shape ((N, C, *spatial) or unbatched (C, *spatial)). output_size: one size
    per spatial axis, or the whole output shape (its spatial entries taken); each size
    within [smallest, smallest + stride - 1], smallest being the output at output_padding 0."""
    dims, sizes = len(smallest), tuple(output_size)
    if len(sizes) == len(shape):  # with the batch and channel entries
        sizes = sizes[len(shape) - dims:]
    if len(sizes) != dims:
        raise ValueError(f"{where}: for {len(shape)}D input, output_size must have {dims} "
                         f"or {len(shape)} elements (got {len(sizes)})")
    if not all(isinstance(v, numbers.Integral) for v in sizes):  # (PyTorch's TypeError)
        raise TypeValueError(f"{where}: expected output_size to be ints, got {output_size!r}")
    high = tuple(m + s - 1 for m, s in zip(smallest, stride))
    if any(not lo <= v <= hi for v, lo, hi in zip(sizes, smallest, high)):
        raise ValueError(f"{where}: requested an output size of {list(sizes)}, but valid "
                         f"sizes range from {list(smallest)} to {list(high)} (for an input "
                         f"of {tuple(shape[-dims:])})")
    return tuple(int(v) - m for v, m in zip(sizes, smallest))


def check_output_padding(where, output_padding, stride, dilation):
    """A ValueError unless each output_padding entry is smaller than its stride or its
    dilation (PyTorch checks it in the forward that uses the layer's output_padding, not
    in one given output_size, nor when built)."""
    if any(o >= s and o >= d for o, s, d in zip(output_padding, stride, dilation)):
        raise RuntimeValueError(f"{where}: output padding must be smaller than either stride or "
                                f"dilation, got output_padding {tuple(output_padding)}, stride "
                                f"{tuple(stride)} and dilation {tuple(dilation)}")


class OutputSizeForward:
    """``forward(input, output_size=None)`` of the transposed convolutions: PyTorch's
    output_size is held in ``self._pending`` while the layer's own forward runs, which
    reads it to pick the output padding."""

    def forward(self, input, output_size=None):
        """The transposed convolution of input (the class docstring's shapes); output_size
        (the output's spatial sizes, optionally with batch and channels in front) picks
        the size in place of output_padding, each within one stride of the smallest, as
        PyTorch's."""
        self._pending = output_size
        try:
            return super().forward(input)
        finally:
            self._pending = None


class ConvTranspose2d(OutputSizeForward, Module):
    """y = conv_transpose(x, weight) + bias, NCHW (a decoder's upsampling layer).

    weight: (in_channels, out_channels, kH, kW) and bias (out_channels,), PyTorch's
    layout and default initialisation (fan_in = out_channels / groups * kH * kW);
    padding_mode 'zeros' only, as PyTorch's.
    kernel_size, stride, padding, output_padding: an int or a pair (all but kernel_size
    also a 1-tuple for both, as PyTorch expands it); output_padding < stride. Input (N,
    in_channels, H, W) or unbatched (in_channels, H, W); output (N, out_channels, H_out,
    W_out) with H_out = (H - 1) * stride - 2 * padding + kH + output_padding.

    groups: in_channels and out_channels divisible by it, weight (in_channels,
    out_channels / groups, kH, kW); dilation: an int or a pair, H_out = (H - 1) * stride -
    2 * padding + dilation * (kH - 1) + output_padding + 1.

    On the host the forward is the input gradient of the strided convolution whose weight
    this is (the backends' conv2d_backward with x as its output gradient), the weight
    gradient that convolution's weight gradient with the roles swapped, and the input
    gradient a plain strided conv2d of grad_out with the weight: each one product and
    an im2col or col2im. On the GPU the forward is a stride-1 convolution of x spread
    out by the stride (zeros between the values, dilation * (k - 1) - padding of zero
    border) with the flipped, channel-swapped kernel (stride**2 times the products;
    the spread input and flipped kernel built on the host). With groups or dilation
    both convolutions are Conv2d's (its host path for those).

    ``forward(input, output_size)`` picks the output size instead of output_padding (the
    spatial entries of output_size, each within one stride of the smallest), as PyTorch's.
    """

    dims = 2  # spatial dimensions (ConvTranspose1d: 1)
    transposed = True  # PyTorch's _ConvNd attribute

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 dtype=np.float32):
        super().__init__()
        name = f"ConvTranspose{self.dims}d"
        check_only(name, "padding_mode", padding_mode, ("zeros",))  # as PyTorch's
        self.padding_mode = padding_mode
        self.in_channels, self.out_channels = check_conv_args(
            name, in_channels, out_channels, 2, None, None, padding_mode)
        groups = check_positive_int(name, "groups", groups)
        if self.in_channels % groups or self.out_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels "
                             f"({out_channels}) must be divisible by groups ({groups})")
        self.groups = groups
        self.dilation = pair(name, "dilation", dilation, 1, one=True)
        self.kernel_size = pair(name, "kernel_size", kernel_size, 1)
        self.stride = pair(name, "stride", stride, 1, one=True)
        self.padding = pair(name, "padding", padding, 0, one=True)
        # (checked by the forward that uses it, as PyTorch's: forward(x, output_size=)
        # makes its own)
        self.output_padding = pair(name, "output_padding", output_padding, 0, one=True)
        fan_in = self.out_channels // groups * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)
        rng = _random.generator()
        shape = (self.in_channels, self.out_channels // groups) + self.kernel_size
        self.weight = Parameter(rng.uniform(-bound, bound, shape).astype(dtype))
        self.bias = (Parameter(rng.uniform(-bound, bound, self.out_channels).astype(dtype))
                     if bias else None)
        self._ctx = None  # what the last forward leaves its backward (see _forward)
        self._pending = None  # the output_size of the forward being run

    def reset_parameters(self):
        """Draw weight and bias again as the constructor does (PyTorch's), in place."""
        init.reset_fan_in_uniform(self.weight, self.bias)

    _derived_from = frozenset({"stride", "padding", "output_padding", "dilation"})

    def _derive(self):
        """(stride, padding, output_padding, dilation) as pairs (ConvTranspose1d: its
        1-tuples with a height entry), checked (at the forward after one was set, as
        PyTorch reads them at each call)."""
        name, n = f"ConvTranspose{self.dims}d", self.dims
        lead = {1: (1,), 0: (0,)} if n == 1 else {1: (), 0: ()}
        return tuple(lead[low] + pair(name, attr, getattr(self, attr), low, n, one=True)
                     for attr, low in (("stride", 1), ("padding", 0), ("output_padding", 0),
                                       ("dilation", 1)))

    def _pairs(self):
        """(kernel_size, stride, padding, output_padding, dilation) as the 2-D kernels take
        them, pairs (ConvTranspose1d: its 1-tuples with a height entry)."""
        kernel = self.kernel_size
        return ((1,) + kernel if self.dims == 1 else kernel,) + self._derived()

    def _output_padding_2d(self, shape):
        """The output_padding pair for an (N, C, H, W) or (C, H, W) input: the layer's, or
        the one that gives the output_size of the forward being run."""
        kernel, stride, padding, output_padding, dilation = self._pairs()
        n = self.dims
        if self._pending is None:
            check_output_padding(self._where(), output_padding[-n:], stride[-n:],
                                 dilation[-n:])
            return output_padding
        smallest = tuple((size - 1) * s - 2 * p + d * (k - 1) + 1 for size, s, p, d, k in zip(
            shape[-2:], stride, padding, dilation, kernel))
        own = shape[:-2] + shape[-n:]  # the input's shape at the layer's rank
        return output_padding[:2 - n] + output_padding_for(
            self._where(), self._pending, own, smallest[-n:], stride[-n:])

    def infer_shape(self, shape, dtype):
        return self._shape_2d(shape, dtype)

    def _shape_2d(self, shape, dtype):
        """Output shape for an (N, C, H, W) or (C, H, W) input; raises on a bad one."""
        shape = tuple(shape)
        where = self._where()
        if len(shape) not in (3, 4) or shape[-3] != self.in_channels:
            raise RuntimeValueError(f"{where}: expected input of shape (N, {self.in_channels}, "
                                    f"H, W) or ({self.in_channels}, H, W), got {shape}")
        self._check_params((
            ("weight", self.weight,
             (self.in_channels, self.out_channels // self.groups) + tuple(self.kernel_size)),
            ("bias", self.bias, (self.out_channels,))))
        self._check_dtype(dtype, self.weight.data.dtype)
        check_no_empty_axes(where, shape, 2)
        kernel, stride, padding, _, dilation = self._pairs()
        out = tuple((size - 1) * s - 2 * p + d * (k - 1) + 1 + o for size, s, p, d, k, o in zip(
            shape[-2:], stride, padding, dilation, kernel, self._output_padding_2d(shape)))
        if min(out) < 1:
            n = self.dims  # (a 1-D layer's message shows its (N, C, L) shapes)
            raise RuntimeValueError(f"{where}: the output of an input of shape "
                                    f"{shape[:-2] + shape[-n:]} would have size {out[-n:]}")
        return shape[:-3] + (self.out_channels,) + out

    def _spread(self, x, output_padding):
        """x (N, C, H, W) with stride - 1 zeros between values and d (k - 1) - padding of
        zero border (+ output_padding at the end), cropped where that border is negative."""
        n, c, h, w = x.shape
        kernel, stride, padding, _, dilation = self._pairs()
        lead = [d * (k - 1) - p for d, k, p in zip(dilation, kernel, padding)]
        sizes = [(size - 1) * s + 1 + 2 * q + o for size, s, q, o in zip(
            (h, w), stride, lead, output_padding)]
        room = [max(q, 0) for q in lead]  # allocate the border, then crop a negative one
        full = np.zeros((n, c, sizes[0] + 2 * (room[0] - lead[0]),
                         sizes[1] + 2 * (room[1] - lead[1])), x.dtype)
        (sh, sw), (rh, rw) = stride, room
        full[:, :, rh:rh + (h - 1) * sh + 1:sh, rw:rw + (w - 1) * sw + 1:sw] = x
        ch, cw = room[0] - lead[0], room[1] - lead[1]
        return _device.c_contiguous(full[:, :, ch:ch + sizes[0], cw:cw + sizes[1]])

    def _weight_2d(self, array):
        """The weight (or an array of its shape) as the 2-D kernels take it, (in, out /
        groups, kH, kW) (ConvTranspose1d: its (in, out / groups, k) viewed with kH = 1)."""
        return array

    def _flipped(self):
        """The weight as the forward convolution's, on the host: (out_channels,
        in_channels / groups, kH, kW), each group's channels swapped, taps reversed."""
        g, (kh, kw) = self.groups, self._pairs()[0]
        w = _device.to_host(self._weight_2d(self.weight.data))
        w = w.reshape((g, self.in_channels // g, self.out_channels // g, kh, kw))
        return _device.c_contiguous(
            w.transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1].reshape(
                (self.out_channels, self.in_channels // g, kh, kw)))

    def _convs(self):
        """(forward, input-gradient) Conv2d layers of the grouped or dilated case, made once
        (without drawing from fastnn's generator); their weights are set each step."""
        convs = self._scratch.get("convs")
        if convs is None:
            dtype = self.weight.data.dtype
            kernel, stride, padding, _, dilation = self._pairs()
            with _random.fork(0):
                convs = (Conv2d(self.in_channels, self.out_channels, kernel,
                                bias=self.bias is not None, dtype=dtype,
                                dilation=dilation, groups=self.groups),
                         Conv2d(self.out_channels, self.in_channels, kernel, stride, padding,
                                bias=False, dtype=dtype, dilation=dilation,
                                groups=self.groups))
            self._scratch["convs"] = convs
        return convs

    def _forward(self, x, buffered):
        if self.groups != 1 or any(d != 1 for d in self._pairs()[4]):
            return self._general_forward(x)
        if not _device.is_device_array(x):
            return self._adjoint_forward(x, buffered)
        return self._spread_forward(x, buffered)

    def _adjoint_forward(self, x, buffered):
        """y = the input gradient of the convolution (stride, padding) whose weight is
        this layer's, taken at y's size with x as that convolution's output gradient
        (the backends' conv2d_backward: one product and a col2im, no zeros multiplied;
        the spread input's stride-1 convolution did stride**2 times the products), then
        + bias. The weight gradient is likewise that convolution's with the roles
        swapped (grad_out as its input, x as its output gradient)."""
        unbatched = x.ndim == 3
        out_shape = (1,) * unbatched + self._shape_2d(x.shape, x.dtype)
        x = add_batch_axis(x)
        _, stride, padding, _, _ = self._pairs()
        y = (self._buffer("y", out_shape, x.dtype) if buffered
             else np.empty(out_shape, x.dtype))
        # (y stands in for the convolution's input too: only its shape is read when no
        # weight gradient is asked for)
        self._kernels().conv2d_backward(x, y, self._weight_2d(self.weight.data), stride,
                                        padding, grad_in=y)
        if self.bias is not None:
            y += self.bias.data.reshape(1, -1, 1, 1)
        self._ctx = ("adjoint", x, unbatched)
        return drop_batch_axis(y, unbatched)

    def _adjoint_backward(self, grad_out, buffered, need_grad_in):
        _, x, unbatched = self._ctx
        grad_out = add_batch_axis(grad_out)
        _, stride, padding, _, _ = self._pairs()
        weight = self._weight_2d(self.weight.data)
        if self.weight.requires_grad:   # (a frozen one's neither computed nor touched)
            self._kernels().conv2d_backward(x, grad_out, weight, stride, padding,
                                            grad_weight=self._weight_2d(self.weight.grad),
                                            need_grad_in=False)
        if live_grad(self.bias) is not None:
            self.bias.grad += grad_out.sum(axis=(0, 2, 3), dtype=np.float64)   # as conv2d's
        if not need_grad_in:
            return None
        out = self._buffer("grad_in", tuple(x.shape), x.dtype) if buffered else None
        grad_in = self._kernels().conv2d_forward(grad_out, weight, None, stride, padding,
                                                 out=out)
        return drop_batch_axis(grad_in, unbatched)

    def _spread_forward(self, x, buffered):
        """The forward on the GPU: a stride-1 convolution of the spread input (see the
        class docstring)."""
        unbatched = x.ndim == 3
        out_shape = (1,) * unbatched + self._shape_2d(x.shape, x.dtype)
        output_padding = self._output_padding_2d(tuple(x.shape))
        x = add_batch_axis(x)
        ns = _device.namespace_of(x)
        spread = ns.put(self._spread(_device.to_host(x), output_padding))
        flipped = ns.put(self._flipped())
        out = self._buffer("y", out_shape, x.dtype) if buffered else None
        y = self._kernels().conv2d_forward(
            spread, flipped, None if self.bias is None else self.bias.data, (1, 1), (0, 0),
            out=out)
        self._ctx = (spread, flipped, unbatched)
        return drop_batch_axis(y, unbatched)

    def _general_forward(self, x):
        unbatched = x.ndim == 3
        output_padding = self._output_padding_2d(tuple(x.shape))
        x = add_batch_axis(x)
        conv, _ = self._convs()
        conv.weight.data = self._flipped()
        if self.bias is not None:
            conv.bias.data = _device.to_host(self.bias.data)
        spread = self._spread(_device.to_host(x), output_padding)
        y = conv._forward(_device.namespace_of(x).put(spread), False)
        conv._x = None   # (the spread input: the backward runs the other helper, not this)
        self._ctx = ("general", x, unbatched)
        return drop_batch_axis(y, unbatched)

    def _general_backward(self, grad_out, need_grad_in, x):
        """The input gradient is the forward of conv_in (the strided convolution whose
        input gradient this layer's forward is) on grad_out; the weight gradient is
        conv_in's with the roles swapped (grad_out its input, x its output gradient), as
        PyTorch's: each tap pairs x with grad_out's zero border too, so an inf or NaN in
        x makes NaN there as in PyTorch (the forward's spread input left those pairs out)."""
        _, conv_in = self._convs()
        conv_in.weight.data = self._weight_2d(_device.to_host(self.weight.data))
        grad_in = conv_in._forward(grad_out, False)
        in_shape = tuple(x.shape)
        if tuple(grad_in.shape) != in_shape:
            # output_padding >= stride (allowed below the dilation): conv_in's output
            # runs past the input's last positions, which have no gradient (zeros)
            h, w = in_shape[2:]
            padded = np.zeros(tuple(grad_in.shape), x.dtype)
            padded[:, :, :h, :w] = _device.to_host(x)
            x = _device.namespace_of(grad_in).put(padded)
        if self.weight.requires_grad:   # (a frozen one's neither computed nor touched)
            conv_in.zero_grad()
            conv_in._backward(x, False, False)
            taps = _device.to_host(conv_in.weight.grad).reshape(self.weight.grad.shape)
            _device.update_on_host(self.weight.grad, lambda w: np.add(w, taps, out=w))
        if live_grad(self.bias) is not None:
            sums = _device.to_host(grad_out).sum(axis=(0, 2, 3), dtype=np.float64)
            _device.update_on_host(self.bias.grad, lambda b: np.add(b, sums, out=b))
        if not need_grad_in:
            return None
        if tuple(grad_in.shape) == in_shape:
            return grad_in
        # output_padding >= stride: positions past the input's last; their correlations
        # are not gradients of any input cell
        h, w = in_shape[2:]
        return _device.namespace_of(grad_in).put(
            _device.c_contiguous(_device.to_host(grad_in)[:, :, :h, :w]))

    def _backward(self, grad_out, buffered, need_grad_in):
        if nothing_to_compute(need_grad_in, self.weight, self.bias):
            return None   # (all frozen: PyTorch's backward neither computes nor touches them)
        kind = self._ctx[0]
        if isinstance(kind, str) and kind == "adjoint":  # ("adjoint", x, unbatched)
            return self._adjoint_backward(grad_out, buffered, need_grad_in)
        if isinstance(kind, str):  # ("general", x, unbatched): groups or dilation
            _, x, unbatched = self._ctx
            return drop_batch_axis(
                self._general_backward(add_batch_axis(grad_out), need_grad_in, x), unbatched)
        spread, flipped, unbatched = self._ctx
        grad_out = add_batch_axis(grad_out)
        ns = _device.namespace_of(grad_out)
        weight_live, grad_bias = self.weight.requires_grad, live_grad(self.bias)
        grad_flipped = ns.zeros(tuple(flipped.shape), flipped.dtype) if weight_live else None
        if weight_live or grad_bias is not None:
            self._kernels().conv2d_backward(
                grad_out, spread, flipped, (1, 1), (0, 0), grad_weight=grad_flipped,
                grad_bias=grad_bias, need_grad_in=False)
        if weight_live:
            g = _device.to_host(grad_flipped)[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
            g = g.reshape(self.weight.grad.shape)
            _device.update_on_host(self.weight.grad, lambda w: np.add(w, g, out=w))
        if not need_grad_in:
            return None
        _, stride, padding, _, _ = self._pairs()
        grad_in = self._kernels().conv2d_forward(grad_out, self._weight_2d(self.weight.data),
                                                 None, stride, padding)
        return drop_batch_axis(grad_in, unbatched)

    def extra_repr(self):
        text = (f"{self.in_channels}, {self.out_channels}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}")
        if any(np.ravel(self.padding)):   # (as set: an int too)
            text += f", padding={self.padding}"
        if any(d != 1 for d in np.ravel(self.dilation)):
            text += f", dilation={self.dilation}"
        if any(np.ravel(self.output_padding)):
            text += f", output_padding={self.output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text + ("" if self.bias is not None else ", bias=False")


class ConvTranspose1d(As1d, ConvTranspose2d):
    """ConvTranspose2d over (N, C, L) or unbatched (C, L) input (PyTorch's
    ConvTranspose1d): weight (in_channels, out_channels / groups, k), L_out = (L - 1) s -
    2 p + d (k - 1) + output_padding + 1; the 2-D layer's work on an (N, C, 1, L) view
    with the weight viewed as (in, out / groups, 1, k). kernel_size, stride, padding,
    output_padding and dilation are 1-tuples, as PyTorch's."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 dtype=np.float32):
        name = "ConvTranspose1d"
        def as_2d(arg, value, low):   # the height axis: kernel 1, no padding
            return (1 if low else 0,) + pair(name, arg, value, low, 1)
        super().__init__(in_channels, out_channels, as_2d("kernel_size", kernel_size, 1),
                         as_2d("stride", stride, 1), as_2d("padding", padding, 0),
                         as_2d("output_padding", output_padding, 0), groups, bias,
                         as_2d("dilation", dilation, 1), padding_mode, dtype)
        w = self.weight.data
        self.weight = Parameter(np.ascontiguousarray(w.reshape(w.shape[:2] + w.shape[3:])))
        (self.kernel_size, self.stride, self.padding, self.output_padding,
         self.dilation) = (getattr(self, attr)[1:] for attr in (
             "kernel_size", "stride", "padding", "output_padding", "dilation"))

    def _weight_2d(self, array):
        shape = tuple(array.shape)
        return array.reshape(shape[:2] + (1,) + shape[2:])
