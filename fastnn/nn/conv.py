"""Conv2d: 2-D convolution (cross-correlation) over NCHW input, PyTorch's layout and init."""
import math
import numbers

import numpy as np

from .. import random as _random
from ..validation import check_only
from .module import Module, Parameter


def pair(layer, name, value, minimum):
    """An int or a pair of ints, each >= minimum, as a tuple (a, b)."""
    items = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(items) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral)
                              or v < minimum for v in items):
        raise ValueError(f"{layer}: expected {name} to be an int >= {minimum} or a pair of "
                         f"them, got {value!r}")
    return int(items[0]), int(items[1])


def spatial_out(where, shape, kernel_size, stride, padding):
    """(H_out, W_out) of a window op on an input of shape (..., H, W); raises when the
    kernel does not fit the padded input."""
    h, w = tuple(shape)[-2:]
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    if kh > h + 2 * ph or kw > w + 2 * pw:
        raise ValueError(f"{where}: kernel size ({kh}, {kw}) is larger than the padded input "
                         f"({h + 2 * ph}, {w + 2 * pw}) of an input of shape {shape}")
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def add_batch_axis(x):
    """x (C, H, W) as (1, C, H, W), a view; an (N, C, H, W) x as it is."""
    return x.reshape((1,) + tuple(x.shape)) if x.ndim == 3 else x


def drop_batch_axis(y, unbatched):
    """y (1, C, H, W) as (C, H, W) (a view) when the input was unbatched; else y."""
    return y.reshape(tuple(y.shape)[1:]) if unbatched and y is not None else y


class Conv2d(Module):
    """y = conv(x, weight) + bias, NCHW, zero padding.

    weight: (out_channels, in_channels, kH, kW); bias: (out_channels,) or None.
    Both start U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = in_channels * kH * kW,
    PyTorch's default (kaiming_uniform with a=sqrt(5)), from fastnn's global generator.
    kernel_size, stride, padding: an int or a pair (height, width); padding may also be
    'valid' (0) or 'same' (stride 1, odd kernel sizes: H_out = H, W_out = W).
    Input x: (N, in_channels, H, W), or (in_channels, H, W) for one unbatched sample as in
    PyTorch; output: (N, out_channels, H_out, W_out) (without N for an unbatched input)
    with H_out = (H + 2 * padding - kH) // stride + 1 (likewise W_out).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 dtype=np.float32, dilation=1, groups=1, padding_mode="zeros"):
        super().__init__()
        check_only("Conv2d", "dilation", dilation, (1, (1, 1)))
        check_only("Conv2d", "groups", groups, (1,))
        check_only("Conv2d", "padding_mode", padding_mode, ("zeros",))
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"Conv2d: expected {name} to be a positive int, got {value!r}")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = pair("Conv2d", "kernel_size", kernel_size, 1)
        self.stride = pair("Conv2d", "stride", stride, 1)
        self.padding = self._padding(padding)
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)
        rng = _random.generator()
        shape = (self.out_channels, self.in_channels) + self.kernel_size
        self.weight = Parameter(rng.uniform(-bound, bound, shape).astype(dtype))
        self.bias = (Parameter(rng.uniform(-bound, bound, self.out_channels).astype(dtype))
                     if bias else None)
        self._x = None
        self._unbatched = False

    def _padding(self, padding):
        """An int, a pair, or PyTorch's 'valid' (none) and 'same' (output size = input
        size; stride 1 and odd kernel sizes, whose padding is symmetric)."""
        if padding == "valid":
            return (0, 0)
        if padding == "same":
            if self.stride != (1, 1) or any(k % 2 == 0 for k in self.kernel_size):
                raise ValueError(f"Conv2d: padding='same' needs stride 1 and odd kernel "
                                 f"sizes (symmetric padding), got stride {self.stride} and "
                                 f"kernel_size {self.kernel_size}")
            return tuple((k - 1) // 2 for k in self.kernel_size)
        return pair("Conv2d", "padding", padding, 0)

    def infer_shape(self, shape, dtype):
        shape = tuple(shape)  # (the CUDA simulator's shapes refuse negative indices)
        where = self._where()
        if len(shape) not in (3, 4) or shape[-3] != self.in_channels:
            raise ValueError(f"{where}: expected input of shape (N, {self.in_channels}, H, W) "
                             f"or ({self.in_channels}, H, W), got {shape}")
        if dtype != self.weight.data.dtype:
            raise TypeError(f"{where}: input dtype {dtype} does not match the layer's "
                            f"parameters ({self.weight.data.dtype}); convert the input or "
                            f"call .float()/.double() on the model")
        ho, wo = spatial_out(where, shape[-2:], self.kernel_size, self.stride, self.padding)
        return tuple(shape[:-3]) + (self.out_channels, ho, wo)

    def _forward(self, x, buffered):
        self._unbatched = x.ndim == 3
        x = add_batch_axis(x)
        out = self._buffer("y", self.infer_shape(x.shape, x.dtype), x.dtype) if buffered else None
        y = self._kernels().conv2d_forward(
            x, self.weight.data, None if self.bias is None else self.bias.data,
            self.stride, self.padding, out=out)
        self._x = x
        return drop_batch_axis(y, self._unbatched)

    def _backward(self, grad_out, buffered, need_grad_in):
        grad_out = add_batch_axis(grad_out)
        grad_in = (self._buffer("grad_in", self._x.shape, grad_out.dtype)
                   if buffered and need_grad_in else None)
        grad_in = self._kernels().conv2d_backward(
            grad_out, self._x, self.weight.data, self.stride, self.padding,
            grad_weight=self.weight.grad,
            grad_bias=None if self.bias is None else self.bias.grad,
            grad_in=grad_in, need_grad_in=need_grad_in)
        return drop_batch_axis(grad_in, self._unbatched)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}")
