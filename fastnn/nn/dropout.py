"""Inverted dropout: zero each element (or each channel) with probability p in training,
scale the rest."""
import math
import warnings

import numpy as np

from .. import device as _device
from .. import random as _random
from ..errors import RuntimeValueError
from ..validation import check_bool, check_number
from .module import Module


_ALL_DROPPED = "all dropped"  # Dropout's mask when p = 1


def _check_p(layer):
    """layer.p checked again when it drops (as PyTorch's F.dropout checks p at each
    call): a p set outside [0, 1] after construction drew a mask of all zeros (NaN: of
    NaNs), before the generator moved on."""
    check_number(type(layer).__name__, "p", layer.p, low=0.0, high=1.0, high_open=False)


class Dropout(Module):
    """y = x * mask, mask = 0 with probability p, else 1 / (1 - p); identity in eval mode;
    p = 1 drops everything (y = x * 0, PyTorch's).

    The mask comes from the backend's ``dropout_forward`` with a seed drawn from fastnn's
    global generator, so ``fastnn.manual_seed`` makes it reproducible on one backend.
    Input: any shape; output: same shape.
    """

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        name = type(self).__name__   # Dropout1d/2d/3d say so
        check_number(name, "p", p, low=0.0, high=1.0, high_open=False)
        self.p = p   # as given (PyTorch's attribute and repr)
        # accepted for PyTorch code; the output is a fresh array
        self.inplace = check_bool(name, "inplace", inplace)
        self._mask = None

    @property
    def passthrough(self):
        return not self.training or self.p == 0.0

    def _forward(self, x, buffered):
        if self.passthrough:
            self._mask = None
            return x
        _check_p(self)
        if self.p == 1.0:  # PyTorch's p = 1: all dropped, x * 0 (a NaN stays NaN)
            self._mask = _ALL_DROPPED
            return _device.scaled(x, 0.0, copy=True)
        mask = self._backward_buffer("mask", x.shape, x.dtype)
        out = self._buffer("y", x.shape, x.dtype) if buffered else None
        y, self._mask = self._kernels().dropout_forward(x, float(self.p), _random.draw_seed(),
                                                          mask=mask, out=out)
        return y

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        if self._mask is None:  # the forward was the identity
            return grad_out
        if self._mask is _ALL_DROPPED:
            return _device.scaled(grad_out, 0.0, copy=True)
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
            raise RuntimeValueError(f"{self._where()}: expected input of shape (N, C, "
                                    f"{spatial}) or (C, {spatial}), got {shape}")
        return shape

    def _mask_shape(self, shape):
        lead = shape[:2] if len(shape) == self.rank else shape[:1]
        return lead + (1,) * (len(shape) - len(lead))

    def _forward(self, x, buffered):
        if self.passthrough:
            self._mask = None
            return x
        _check_p(self)
        shape = tuple(x.shape)
        mask_shape = self._mask_shape(shape)
        if self.p == 1.0:  # every channel dropped
            self._mask = mask = np.zeros(mask_shape, x.dtype)
            return self._times_mask(x, mask, "y" if buffered else None)
        size = (math.prod(mask_shape),)
        kept = self._kept_buffer("ones")
        ones = self._buffer("ones", size, x.dtype)
        if ones is not kept:  # filled once per shape: the kernel only reads it
            _device.namespace_of(ones).copy_into(ones, np.ones(size, x.dtype))
        channels, _ = self._kernels().dropout_forward(
            ones, float(self.p), _random.draw_seed(),
            mask=self._buffer("channel_mask", size, x.dtype),
            out=self._buffer("scaled_ones", size, x.dtype))
        # (the product reads this call's mask, not self._mask: another thread's forward
        # of this layer may replace it, or under no_grad drop it, meanwhile)
        self._mask = mask = _device.to_host(channels).reshape(mask_shape)
        return self._times_mask(x, mask, "y" if buffered else None)

    def _times_mask(self, a, mask, key):
        """a * mask (broadcast) on the host, into the layer's buffer ``key`` if given."""
        if _device.is_device_array(a):
            return _device.namespace_of(a).put(_device.to_host(a) * mask)
        # (out: a 0-d product would otherwise be a NumPy scalar)
        out = np.empty_like(a) if key is None else self._buffer(key, a.shape, a.dtype)
        return np.multiply(a, mask, out=out)

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        if self._mask is None:
            return grad_out
        return self._times_mask(grad_out, self._mask, "grad_in" if buffered else None)


class Dropout1d(_ChannelDropout):
    """Channel dropout of (N, C, L) or (C, L) inputs (PyTorch's Dropout1d)."""

    rank = 3


def warn_deprecated_rank(name, ndim, ranks, spatial, stacklevel=3):
    """PyTorch's warnings for dropout2d / dropout3d (``name``) given an input of rank
    ndim: one of another rank than ``ranks`` (deprecated), and dropout2d's note that it
    reads a 3-D input as (N, C, L)."""
    if ndim not in ranks:
        warnings.warn(f"{name}: Received a {ndim}-D input to {name}, which is deprecated and "
                      f"will result in an error in a future release. To retain the behavior "
                      f"and silence this warning, please use dropout instead. Note that "
                      f"{name} exists to provide channel-wise dropout on inputs with "
                      f"{spatial} spatial dimensions, a channel dimension, and an optional "
                      f"batch dimension (i.e. {ranks[0]}D or {ranks[1]}D inputs).",
                      stacklevel=stacklevel)
    if name == "dropout2d" and ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that "
                      "channel-wise 1D dropout behavior is desired - input is interpreted "
                      "as shape (N, C, L), where C is the channel dim. This behavior will "
                      "change in a future release to interpret the input as one without a "
                      "batch dimension, i.e. shape (C, H, W). To maintain the 1D "
                      "channel-wise dropout behavior, please switch to using dropout1d "
                      "instead.", stacklevel=stacklevel)


class _DeprecatedRanks(_ChannelDropout):
    """PyTorch's Dropout2d / Dropout3d: any rank, one of another rank than (rank - 1,
    rank) with PyTorch's deprecation warning. ``lead(ndim)``: the axes one mask value
    covers (the rest broadcast); a draw needs an input of at least that rank (PyTorch's
    RuntimeError), the identity, p = 1 and an empty input not."""

    spatial = None

    def _lead(self, ndim):
        raise NotImplementedError

    def infer_shape(self, shape, dtype):
        shape = tuple(shape)
        warn_deprecated_rank(f"dropout{self.spatial}d", len(shape),
                             (self.rank - 1, self.rank), self.spatial, stacklevel=4)
        if (len(shape) < self._lead(len(shape)) and not self.passthrough and self.p < 1
                and math.prod(shape) > 0):
            raise RuntimeValueError(f"{self._where()}: Feature dropout requires at least 2 "
                                    f"dimensions in the input, got input of shape {shape}")
        return shape

    def _mask_shape(self, shape):
        lead = self._lead(len(shape))
        return shape[:lead] + (1,) * (len(shape) - lead)


class Dropout2d(_DeprecatedRanks):
    """Channel dropout of (N, C, H, W) inputs, or (N, C, L) ones as PyTorch's Dropout2d
    takes a 3-D input (its 1-D channel-wise behaviour, with PyTorch's warning saying so).
    Other ranks, as PyTorch's (deprecated, with its warning): one mask value per (axis 0,
    axis 1) index."""

    rank, spatial = 4, 2

    def _lead(self, ndim):
        return 2


class Dropout3d(_DeprecatedRanks):
    """Channel dropout of (N, C, D, H, W) or (C, D, H, W) inputs (PyTorch's Dropout3d).
    Other ranks, as PyTorch's (deprecated, with its warning), are read as unbatched: one
    mask value per axis-0 index."""

    rank, spatial = 5, 3

    def _lead(self, ndim):
        return 2 if ndim == 5 else 1


# SELU's negative saturation, scale * alpha: AlphaDropout's dropped value is its negative
_SELU_SATURATION = 1.7580993408473766


class AlphaDropout(Module):
    """Dropout that keeps a SELU network's activations at mean 0 and variance 1
    (PyTorch's AlphaDropout): in training each element is kept with probability 1 - p
    or set to SELU's saturation -alpha', then y = a * x' + b with
    a = ((1 - p) (1 + p alpha'^2))^(-1/2) and b = a alpha' p, so y = a (x + alpha' p)
    where kept and -a alpha' (1 - p) where dropped; p = 1 gives zeros. Identity in eval
    mode. Backward: grad * a where kept, 0 where dropped.

    The mask is drawn on the host from a seed of fastnn's generator (``manual_seed``
    makes it reproducible); NumPy on the host (a device array goes through the host).
    Input: any shape.
    """

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        name = type(self).__name__
        check_number(name, "p", p, low=0.0, high=1.0, high_open=False)
        self.p = p   # as given (PyTorch's attribute and repr)
        self.inplace = check_bool(name, "inplace", inplace)
        self._gain = None  # per element (or channel): a where kept, 0 where dropped

    @property
    def passthrough(self):
        return not self.training or self.p == 0.0

    def _mask_shape(self, shape):
        return shape

    def _forward(self, x, buffered):
        if self.passthrough:
            self._gain = None
            return x
        _check_p(self)
        host = _device.to_host(x)
        dt = host.dtype.type
        if self.p == 1.0:
            self._gain = np.zeros((1,) * host.ndim, host.dtype)
            return _device.namespace_of(x).put(host * dt(0))
        rng = np.random.default_rng(_random.draw_seed())
        keep = rng.random(self._mask_shape(tuple(host.shape))) >= self.p
        a = ((1 - self.p) * (1 + self.p * _SELU_SATURATION ** 2)) ** -0.5
        # (the output reads this call's gain, not self._gain: see _ChannelDropout)
        self._gain = gain = np.where(keep, dt(a), dt(0))
        shift = np.where(keep, dt(a * _SELU_SATURATION * self.p),
                         dt(a * _SELU_SATURATION * (self.p - 1)))
        return _device.namespace_of(x).put(_device.c_contiguous(host * gain + shift,
                                                                 host.dtype))

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        if self._gain is None:
            return grad_out
        g = _device.to_host(grad_out)
        return _device.namespace_of(grad_out).put(_device.c_contiguous(g * self._gain,
                                                                       g.dtype))

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class FeatureAlphaDropout(AlphaDropout):
    """AlphaDropout of whole channels (PyTorch's FeatureAlphaDropout): one keep/drop draw
    per (sample, channel) of an (N, C, *) input, broadcast over the other axes."""

    def infer_shape(self, shape, dtype):
        shape = tuple(shape)
        # only a draw needs the channels (PyTorch's: eval, p = 0 or 1 and an empty input
        # take any rank)
        if len(shape) < 2 and not self.passthrough and self.p < 1 and math.prod(shape) > 0:
            raise RuntimeValueError(f"{self._where()}: expected input of shape (N, C, *), "
                                    f"got {shape}")
        return shape

    def _mask_shape(self, shape):
        return shape[:2] + (1,) * (len(shape) - 2)
