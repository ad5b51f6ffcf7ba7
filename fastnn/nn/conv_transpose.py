"""ConvTranspose2d and ConvTranspose1d: the adjoint of Conv2d (PyTorch's transposed
convolution), run by the backend's conv2d kernels (the 1-D layer on an (N, C, 1, L)
view)."""
import math

import numpy as np

from .. import device as _device
from .. import random as _random
from ..validation import check_only, check_positive_int
from .conv import As1d, Conv2d, add_batch_axis, check_conv_args, drop_batch_axis, pair
from .module import Module, Parameter


class ConvTranspose2d(Module):
    """y = conv_transpose(x, weight) + bias, NCHW (a decoder's upsampling layer).

    weight: (in_channels, out_channels, kH, kW) and bias (out_channels,), PyTorch's
    layout and default initialisation (fan_in = out_channels * kH * kW).
    kernel_size, stride, padding, output_padding: an int or a pair; output_padding <
    stride. Input (N, in_channels, H, W) or unbatched (in_channels, H, W); output
    (N, out_channels, H_out, W_out) with H_out = (H - 1) * stride - 2 * padding + kH +
    output_padding.

    groups: in_channels and out_channels divisible by it, weight (in_channels,
    out_channels / groups, kH, kW); dilation: an int or a pair, H_out = (H - 1) * stride -
    2 * padding + dilation * (kH - 1) + output_padding + 1.

    The forward is a stride-1 convolution of x spread out by the stride (zeros between
    the values, dilation * (k - 1) - padding of zero border) with the flipped,
    channel-swapped kernel, so the conv2d kernels of every backend do the work (and give
    the bias and weight gradients); the input gradient is a plain strided conv2d of
    grad_out with the weight. The spread input costs stride**2 times x's memory and
    products with zeros; on the GPU it and the flipped kernel are built on the host.
    With groups or dilation both convolutions are Conv2d's (its host path for those).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 dtype=np.float32):
        super().__init__()
        name = "ConvTranspose2d"
        check_only(name, "padding_mode", padding_mode, ("zeros",))  # as PyTorch's
        self.in_channels, self.out_channels = check_conv_args(
            name, in_channels, out_channels, 2, None, None, padding_mode)
        groups = check_positive_int(name, "groups", groups)
        if self.in_channels % groups or self.out_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels "
                             f"({out_channels}) must be divisible by groups ({groups})")
        self.groups = groups
        self.dilation = pair(name, "dilation", dilation, 1)
        self.kernel_size = pair(name, "kernel_size", kernel_size, 1)
        self.stride = pair(name, "stride", stride, 1)
        self.padding = pair(name, "padding", padding, 0)
        self.output_padding = pair(name, "output_padding", output_padding, 0)
        if any(o >= max(s, d) for o, s, d in zip(self.output_padding, self.stride,
                                                 self.dilation)):
            raise ValueError(f"{name}: output_padding {self.output_padding} must be smaller "
                             f"than stride {self.stride} or dilation {self.dilation}")
        fan_in = self.out_channels // groups * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)
        rng = _random.generator()
        shape = (self.in_channels, self.out_channels // groups) + self.kernel_size
        self.weight = Parameter(rng.uniform(-bound, bound, shape).astype(dtype))
        self.bias = (Parameter(rng.uniform(-bound, bound, self.out_channels).astype(dtype))
                     if bias else None)
        self._ctx = None  # (spread input, flipped kernel, unbatched) of the last forward

    def infer_shape(self, shape, dtype):
        return self._shape_2d(shape, dtype)

    def _shape_2d(self, shape, dtype):
        """Output shape for an (N, C, H, W) or (C, H, W) input; raises on a bad one."""
        shape = tuple(shape)
        where = self._where()
        if len(shape) not in (3, 4) or shape[-3] != self.in_channels:
            raise ValueError(f"{where}: expected input of shape (N, {self.in_channels}, H, W) "
                             f"or ({self.in_channels}, H, W), got {shape}")
        self._check_dtype(dtype, self.weight.data.dtype)
        out = tuple((size - 1) * s - 2 * p + d * (k - 1) + 1 + o for size, s, p, d, k, o in zip(
            shape[-2:], self.stride, self.padding, self.dilation, self.kernel_size,
            self.output_padding))
        if min(out) < 1:
            raise ValueError(f"{where}: the output of an input of shape {shape} would have "
                             f"size {out}")
        return shape[:-3] + (self.out_channels,) + out

    def _spread(self, x):
        """x (N, C, H, W) with stride - 1 zeros between values and d (k - 1) - padding of
        zero border (+ output_padding at the end), cropped where that border is negative."""
        n, c, h, w = x.shape
        lead = [d * (k - 1) - p for d, k, p in zip(self.dilation, self.kernel_size,
                                                   self.padding)]
        sizes = [(size - 1) * s + 1 + 2 * q + o for size, s, q, o in zip(
            (h, w), self.stride, lead, self.output_padding)]
        room = [max(q, 0) for q in lead]  # allocate the border, then crop a negative one
        full = np.zeros((n, c, sizes[0] + 2 * (room[0] - lead[0]),
                         sizes[1] + 2 * (room[1] - lead[1])), x.dtype)
        (sh, sw), (rh, rw) = self.stride, room
        full[:, :, rh:rh + (h - 1) * sh + 1:sh, rw:rw + (w - 1) * sw + 1:sw] = x
        ch, cw = room[0] - lead[0], room[1] - lead[1]
        return np.ascontiguousarray(full[:, :, ch:ch + sizes[0], cw:cw + sizes[1]])

    def _weight_2d(self, array):
        """The weight (or an array of its shape) as the 2-D kernels take it, (in, out /
        groups, kH, kW) (ConvTranspose1d: its (in, out / groups, k) viewed with kH = 1)."""
        return array

    def _flipped(self):
        """The weight as the forward convolution's, on the host: (out_channels,
        in_channels / groups, kH, kW), each group's channels swapped, taps reversed."""
        g, (kh, kw) = self.groups, self.kernel_size
        w = _device.to_host(self.weight.data)
        w = w.reshape((g, self.in_channels // g, self.out_channels // g, kh, kw))
        return np.ascontiguousarray(
            w.transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1].reshape(
                (self.out_channels, self.in_channels // g, kh, kw)))

    def _convs(self):
        """(forward, input-gradient) Conv2d layers of the grouped or dilated case, made once
        (without drawing from fastnn's generator); their weights are set each step."""
        convs = self._scratch.get("convs")
        if convs is None:
            dtype = self.weight.data.dtype
            with _random.fork(0):
                convs = (Conv2d(self.in_channels, self.out_channels, self.kernel_size,
                                bias=self.bias is not None, dtype=dtype,
                                dilation=self.dilation, groups=self.groups),
                         Conv2d(self.out_channels, self.in_channels, self.kernel_size,
                                self.stride, self.padding, bias=False, dtype=dtype,
                                dilation=self.dilation, groups=self.groups))
            self._scratch["convs"] = convs
        return convs

    def _forward(self, x, buffered):
        if self.groups != 1 or self.dilation != (1, 1):
            return self._general_forward(x)
        unbatched = x.ndim == 3
        x = add_batch_axis(x)
        ns = _device.namespace_of(x)
        spread = ns.put(self._spread(_device.to_host(x)))
        flipped = ns.put(self._flipped())
        out_shape = self._shape_2d(x.shape, x.dtype)
        out = self._buffer("y", out_shape, x.dtype) if buffered else None
        y = self._kernels().conv2d_forward(
            spread, flipped, None if self.bias is None else self.bias.data, (1, 1), (0, 0),
            out=out)
        self._ctx = (spread, flipped, unbatched)
        return drop_batch_axis(y, unbatched)

    def _general_forward(self, x):
        unbatched = x.ndim == 3
        x = add_batch_axis(x)
        self._shape_2d(x.shape, x.dtype)
        conv, _ = self._convs()
        conv.weight.data = self._flipped()
        if self.bias is not None:
            conv.bias.data = _device.to_host(self.bias.data)
        y = conv._forward(_device.namespace_of(x).put(self._spread(_device.to_host(x))), False)
        self._ctx = (None, tuple(x.shape), unbatched)
        return drop_batch_axis(y, unbatched)

    def _general_backward(self, grad_out, need_grad_in, in_shape):
        conv, conv_in = self._convs()
        conv.zero_grad()
        conv._backward(grad_out, False, False)
        g, (kh, kw) = self.groups, self.kernel_size
        taps = conv.weight.grad.reshape((g, self.out_channels // g, self.in_channels // g,
                                         kh, kw))[..., ::-1, ::-1].transpose(0, 2, 1, 3, 4)
        taps = taps.reshape(self.weight.grad.shape)
        _device.update_on_host(self.weight.grad, lambda w: np.add(w, taps, out=w))
        if self.bias is not None:
            _device.update_on_host(self.bias.grad,
                                   lambda b: np.add(b, conv.bias.grad, out=b))
        if not need_grad_in:
            return None
        conv_in.weight.data = self._weight_2d(_device.to_host(self.weight.data))
        grad_in = conv_in._forward(grad_out, False)
        if tuple(grad_in.shape) == in_shape:
            return grad_in
        # output_padding >= stride (allowed below the dilation) gives positions past the
        # input's last; their correlations are not gradients of any input cell
        h, w = in_shape[2:]
        return _device.namespace_of(grad_in).put(
            np.ascontiguousarray(_device.to_host(grad_in)[:, :, :h, :w]))

    def _backward(self, grad_out, buffered, need_grad_in):
        spread, flipped, unbatched = self._ctx
        if spread is None:  # (flipped: the input's shape)
            return drop_batch_axis(
                self._general_backward(add_batch_axis(grad_out), need_grad_in, flipped),
                unbatched)
        grad_out = add_batch_axis(grad_out)
        ns = _device.namespace_of(grad_out)
        grad_flipped = ns.zeros(tuple(flipped.shape), flipped.dtype)
        self._kernels().conv2d_backward(
            grad_out, spread, flipped, (1, 1), (0, 0), grad_weight=grad_flipped,
            grad_bias=None if self.bias is None else self.bias.grad, need_grad_in=False)
        g = _device.to_host(grad_flipped)[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
        g = g.reshape(self.weight.grad.shape)
        _device.update_on_host(self.weight.grad, lambda w: np.add(w, g, out=w))
        if not need_grad_in:
            return None
        grad_in = self._kernels().conv2d_forward(grad_out, self._weight_2d(self.weight.data),
                                                 None, self.stride,
                                                 self.padding)
        return drop_batch_axis(grad_in, unbatched)

    @staticmethod
    def _shown(pair_):
        """A geometry pair as PyTorch's repr shows it (the 1-D layer: its width only)."""
        return pair_

    def extra_repr(self):
        shown = self._shown
        text = (f"{self.in_channels}, {self.out_channels}, "
                f"kernel_size={shown(self.kernel_size)}, stride={shown(self.stride)}")
        if self.padding != (0, 0):
            text += f", padding={shown(self.padding)}"
        if self.dilation != (1, 1):
            text += f", dilation={shown(self.dilation)}"
        if self.output_padding != (0, 0):
            text += f", output_padding={shown(self.output_padding)}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text + ("" if self.bias is not None else ", bias=False")


class ConvTranspose1d(As1d, ConvTranspose2d):
    """ConvTranspose2d over (N, C, L) or unbatched (C, L) input (PyTorch's
    ConvTranspose1d): weight (in_channels, out_channels / groups, k), L_out = (L - 1) s -
    2 p + d (k - 1) + output_padding + 1; the 2-D layer's work on an (N, C, 1, L) view
    with the weight viewed as (in, out / groups, 1, k)."""

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

    def _weight_2d(self, array):
        shape = tuple(array.shape)
        return array.reshape(shape[:2] + (1,) + shape[2:])

    @staticmethod
    def _shown(pair_):
        return (pair_[1],)
