"""Inverted dropout: zero each element (or each channel) with probability p in training,
scale the rest."""
import math

import numpy as np

from .. import device as _device
from .. import random as _random
from ..validation import check_bool, check_number
from .module import Module


class Dropout(Module):
    """y = x * mask, mask = 0 with probability p, else 1 / (1 - p); identity in eval mode.

    The mask comes from the backend's ``dropout_forward`` with a seed drawn from fastnn's
    global generator, so ``fastnn.manual_seed`` makes it reproducible on one backend.
    Input: any shape; output: same shape.
    """

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        check_number("Dropout", "p", p, low=0.0, high=1.0)
        self.p = float(p)
        # accepted for PyTorch code; the output is a fresh array
        self.inplace = check_bool("Dropout", "inplace", inplace)
        self._mask = None

    @property
    def passthrough(self):
        return not self.training or self.p == 0.0

    def _forward(self, x, buffered):
        if self.passthrough:
            self._mask = None
            return x
        mask = self._buffer("mask", x.shape, x.dtype)
        out = self._buffer("y", x.shape, x.dtype) if buffered else None
        y, self._mask = self._kernels().dropout_forward(x, self.p, _random.draw_seed(),
                                                          mask=mask, out=out)
        return y

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        if self._mask is None:  # the forward was the identity
            return grad_out
        out = self._buffer("grad_in", grad_out.shape, grad_out.dtype) if buffered else None
        return self._kernels().dropout_backward(grad_out, self._mask, out=out)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"  # PyTorch's repr


class _ChannelDropout(Dropout):
    """Zero whole channels: one mask value per (sample, channel), broadcast over the
    remaining axes (PyTorch's Dropout1d/2d/3d). ``rank``: the batched input rank; one
    less is an unbatched input (C, ...), one mask value per channel.

    The mask is the backend's ``dropout_forward`` of a (N, C) array of ones (the seed from
    fastnn's generator, as Dropout's); the broadcast product is NumPy on the host (a
    device array goes through the host).
    """

    rank = None

    def infer_shape(self, shape, dtype):
        shape = tuple(shape)
        if len(shape) not in (self.rank - 1, self.rank):
            spatial = {3: "L", 4: "H, W", 5: "D, H, W"}[self.rank]
            raise ValueError(f"{self._where()}: expected input of shape (N, C, {spatial}) or "
                             f"(C, {spatial}), got {shape}")
        return shape

    def _mask_shape(self, shape):
        lead = shape[:2] if len(shape) == self.rank else shape[:1]
        return lead + (1,) * (len(shape) - len(lead))

    def _forward(self, x, buffered):
        if self.passthrough:
            self._mask = None
            return x
        shape = tuple(x.shape)
        mask_shape = self._mask_shape(shape)
        size = (math.prod(mask_shape),)
        kept = self._scratch.get("ones")
        ones = self._buffer("ones", size, x.dtype)
        if ones is not kept:  # filled once per shape: the kernel only reads it
            _device.namespace_of(ones).copy_into(ones, np.ones(size, x.dtype))
        mask, _ = self._kernels().dropout_forward(
            ones, self.p, _random.draw_seed(), mask=self._buffer("channel_mask", size, x.dtype),
            out=self._buffer("scaled_ones", size, x.dtype))
        self._mask = _device.to_host(mask).reshape(mask_shape)
        return self._times_mask(x, "y" if buffered else None)

    def _times_mask(self, a, key):
        """a * mask (broadcast) on the host, into the layer's buffer ``key`` if given."""
        if _device.is_device_array(a):
            return _device.namespace_of(a).put(_device.to_host(a) * self._mask)
        out = None if key is None else self._buffer(key, a.shape, a.dtype)
        return np.multiply(a, self._mask, out=out)

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        if self._mask is None:
            return grad_out
        return self._times_mask(grad_out, "grad_in" if buffered else None)


class Dropout1d(_ChannelDropout):
    """Channel dropout of (N, C, L) or (C, L) inputs (PyTorch's Dropout1d)."""

    rank = 3


class Dropout2d(_ChannelDropout):
    """Channel dropout of (N, C, H, W) inputs, or (N, C, L) ones as PyTorch's Dropout2d
    takes a 3-D input (its 1-D channel-wise behaviour)."""

    rank = 4

    def infer_shape(self, shape, dtype):
        if len(tuple(shape)) == 3:  # PyTorch reads a 3-D input as (N, C, L)
            return tuple(shape)
        return super().infer_shape(shape, dtype)

    def _mask_shape(self, shape):
        if len(shape) == 3:
            return shape[:2] + (1,)
        return super()._mask_shape(shape)


class Dropout3d(_ChannelDropout):
    """Channel dropout of (N, C, D, H, W) or (C, D, H, W) inputs (PyTorch's Dropout3d)."""

    rank = 5
