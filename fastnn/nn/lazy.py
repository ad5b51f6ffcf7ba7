"""Lazy layers (PyTorch's LazyLinear, LazyConv1d/2d/3d, LazyConvTranspose1d/2d/3d,
LazyBatchNorm1d/2d/3d, LazyInstanceNorm1d/2d/3d): the input size (in_features,
in_channels, num_features) comes from the first input, whose
shape check makes the parameters; the module then becomes the regular layer (its class
changes, as PyTorch's ``cls_to_become``) and trains like one.

Until then it has no parameters: asking for them (building an optimizer) is an error
that says to run one forward first (PyTorch's advice: a dry run before the optimizer).
A state dict loaded into a lazy module makes its parameters from the saved shapes (and
a norm's batch counter from its num_batches_tracked). Its own state dict is empty until
then (PyTorch's holds uninitialized parameters, which have no NumPy form); afterwards it
is the regular layer's, the norms' num_batches_tracked included.
"""
import numpy as np

from .. import random as _random
from .batchnorm import BatchNorm1d, BatchNorm2d, BatchNorm3d
from .conv import Conv1d, Conv2d, bool_bias_at
from .conv3d import Conv3d, ConvTranspose3d
from .conv_transpose import ConvTranspose1d, ConvTranspose2d
from .groupnorm import InstanceNorm1d, InstanceNorm2d, InstanceNorm3d
from .linear import Linear
from .module import _HOOK_TABLES, Module


# the regular layer's parameters and buffers: none until the first input
_STATE_NAMES = ("training", "weight", "bias", "running_mean", "running_var")


class _Lazy:
    """Mixin before the regular layer class ``cls_to_become``. A subclass gives
    ``_size_from_state(state_dict, prefix)`` (the input size from saved arrays, or None)
    and, where the input size is not the channel axis of a batched or unbatched input
    with ``dims`` spatial axes, ``_in_size(shape)``."""

    cls_to_become = None

    def _lazy_init(self, dtype, **args):
        Module.__init__(self)
        self._lazy, self._lazy_dtype = args, dtype
        # checks the arguments (dtype too) now, as PyTorch does
        template = self._template()
        self._shown = self._lazy_repr(template.extra_repr())
        self._lazy_dtype = np.dtype(dtype)
        # the regular layer's hyper-parameters as attributes now (kernel_size,
        # out_features, eps, ...), the input size 0 until the first input: PyTorch's
        for name, value in vars(template).items():
            if (not name.startswith("_") and name not in _STATE_NAMES
                    and (value is None or isinstance(value, (bool, int, float, str, tuple)))):
                object.__setattr__(self, name, value)
        for name in ("in_features", "in_channels", "num_features"):
            if name in vars(template):
                object.__setattr__(self, name, 0)

    def _template(self):
        """The regular layer with an input size its arguments accept (the generator's
        state is left as it was)."""
        with _random.fork(0):
            return self.cls_to_become(self._lazy.get("groups", 1), dtype=self._lazy_dtype,
                                      **self._lazy)

    @staticmethod
    def _lazy_repr(text):
        """The regular layer's repr with the input size shown as 0 (PyTorch's)."""
        head, sep, rest = text.partition(", ")
        if "=" in head:  # in_features=1
            return head.split("=")[0] + "=0" + sep + rest
        return "0" + sep + rest

    def extra_repr(self):
        return self._shown

    def has_uninitialized_params(self):
        return True

    def reset_parameters(self):
        """PyTorch's: nothing to reset before the first input makes the parameters."""

    def infer_shape(self, shape, dtype):
        self._materialize(self._in_size(tuple(shape)))
        return self.infer_shape(shape, dtype)  # the regular layer's, now

    def _lazy_from_state(self, state_dict, prefix):
        """Make the parameters from a state dict's arrays (load_state_dict calls it)."""
        size = self._size_from_state(state_dict, prefix)
        if size is not None:
            self._materialize(size)

    def _lazy_state_names(self):
        """The state dict names (no prefix) the layer will have once made: PyTorch's
        lazy module lists them before, so a strict load misses them."""
        return [name for name in self._template().state_dict()
                if name != "num_batches_tracked"]

    # the least input size the regular layer takes (Linear: 0, PyTorch's empty layer)
    _min_in_size = 1

    def _materialize(self, in_size):
        where = type(self).__name__
        if in_size < self._min_in_size:
            raise ValueError(f"{where}: the input size (from the first input) must be "
                             f"positive, got {in_size}")
        regular = self.cls_to_become(in_size, dtype=self._lazy_dtype, **self._lazy)
        training, device = self.training, self._device
        # the hooks registered on the lazy module stay (PyTorch's do)
        hooks = {name: value for name, value in self.__dict__.items()
                 if name in _HOOK_TABLES or name == "_hooked"}
        self.__dict__.clear()
        self.__dict__.update(regular.__dict__)
        self.__dict__.update(hooks)
        self.__class__ = self.cls_to_become
        self.train(training)
        if device != "cpu":
            self.to(device)

    def _in_size(self, shape):
        """The input size from the first input's shape: its channel axis."""
        self._check_rank(shape, (self.dims + 1, self.dims + 2))
        return shape[-self.dims - 1]

    def _check_rank(self, shape, ranks):
        if len(shape) not in ranks:
            raise ValueError(f"{self._where()}: cannot take its input size from an input of "
                             f"shape {shape}")


def _saved_size(state_dict, key, axis, factor=1):
    value = state_dict.get(key)
    return None if value is None else int(np.shape(value)[axis]) * factor


class LazyLinear(_Lazy, Linear):
    """Linear whose in_features is the last axis of the first input."""

    cls_to_become = Linear
    _min_in_size = 0

    def __init__(self, out_features, bias=True, dtype=np.float32):
        self._lazy_init(dtype, out_features=out_features, bias=bias)

    def _in_size(self, shape):
        self._check_rank(shape, range(1, 64))
        return shape[-1]

    def _size_from_state(self, state_dict, prefix):
        return _saved_size(state_dict, prefix + "weight", 1)


class _LazyConv(_Lazy):
    """in_channels from the channel axis of the first input, batched or not."""

    def __init__(self, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", dtype=np.float32):
        self._lazy_init(dtype, out_channels=out_channels, kernel_size=kernel_size,
                        stride=stride, padding=padding, dilation=dilation, groups=groups,
                        bias=bias, padding_mode=padding_mode)

    def _size_from_state(self, state_dict, prefix):
        # weight (out, in / groups, *kernel)
        return _saved_size(state_dict, prefix + "weight", 1, self._lazy["groups"])


class LazyConv1d(_LazyConv, Conv1d):
    cls_to_become = Conv1d
    __doc__ = "Conv1d whose in_channels is the channel axis of the first input."
    __init__ = bool_bias_at(4)(_LazyConv.__init__)   # (Conv1d's bool bias, no in_channels)


class LazyConv2d(_LazyConv, Conv2d):
    cls_to_become = Conv2d
    __doc__ = "Conv2d whose in_channels is the channel axis of the first input."
    __init__ = bool_bias_at(4)(_LazyConv.__init__)   # (Conv2d's bool bias, no in_channels)


class LazyConv3d(_LazyConv, Conv3d):
    cls_to_become = Conv3d
    dims = 3
    __doc__ = "Conv3d whose in_channels is the channel axis of the first input."


class _LazyConvTranspose(_LazyConv):
    def __init__(self, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 groups=1, bias=True, dilation=1, padding_mode="zeros", dtype=np.float32):
        self._lazy_init(dtype, out_channels=out_channels, kernel_size=kernel_size,
                        stride=stride, padding=padding, output_padding=output_padding,
                        groups=groups, bias=bias, dilation=dilation, padding_mode=padding_mode)

    def _size_from_state(self, state_dict, prefix):
        # weight (in, out / groups, *kernel)
        return _saved_size(state_dict, prefix + "weight", 0)

    def _materialize(self, in_size):
        pending = self.__dict__.get("_pending")  # the output_size of the forward being run
        super()._materialize(in_size)
        self._pending = pending


class LazyConvTranspose1d(_LazyConvTranspose, ConvTranspose1d):
    cls_to_become = ConvTranspose1d
    __doc__ = "ConvTranspose1d whose in_channels is the channel axis of the first input."


class LazyConvTranspose2d(_LazyConvTranspose, ConvTranspose2d):
    cls_to_become = ConvTranspose2d
    dims = 2
    __doc__ = "ConvTranspose2d whose in_channels is the channel axis of the first input."


class LazyConvTranspose3d(_LazyConvTranspose, ConvTranspose3d):
    """ConvTranspose3d whose in_channels is the channel axis of the first input (the
    dry run may pass ``output_size`` too, as PyTorch's)."""

    cls_to_become = ConvTranspose3d
    dims = 3


class _LazyNorm(_Lazy):
    """num_features from the channel axis of the first input. PyTorch's lazy norms
    default to affine=True and track_running_stats=True (its regular instance norms to
    False)."""

    counts_batches = False   # (no num_batches_tracked entry before the first input)

    def __init__(self, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 dtype=np.float32, *, bias=True):
        self._lazy_init(dtype, eps=eps, momentum=momentum, affine=affine,
                        track_running_stats=track_running_stats, bias=bias)

    def reset_running_stats(self):
        """Nothing to reset before the first input makes the running statistics."""

    def _size_from_state(self, state_dict, prefix):
        for key in ("weight", "running_mean", "bias"):
            size = _saved_size(state_dict, prefix + key, 0)
            if size is not None:
                return size
        return None


class _LazyBatchNorm(_LazyNorm):
    def _in_size(self, shape):
        self._check_rank(shape, self.ranks)
        return shape[1]


class LazyBatchNorm1d(_LazyBatchNorm, BatchNorm1d):
    cls_to_become = BatchNorm1d
    ranks = (2, 3)
    __doc__ = "BatchNorm1d whose num_features is axis 1 of the first (N, C) or (N, C, L) input."


class LazyBatchNorm2d(_LazyBatchNorm, BatchNorm2d):
    cls_to_become = BatchNorm2d
    ranks = (4,)
    __doc__ = "BatchNorm2d whose num_features is axis 1 of the first (N, C, H, W) input."


class LazyBatchNorm3d(_LazyBatchNorm, BatchNorm3d):
    cls_to_become = BatchNorm3d
    ranks = (5,)
    __doc__ = "BatchNorm3d whose num_features is axis 1 of the first (N, C, D, H, W) input."


class LazyInstanceNorm1d(_LazyNorm, InstanceNorm1d):
    cls_to_become = InstanceNorm1d
    __doc__ = "InstanceNorm1d whose num_features is the channel axis of the first input."


class LazyInstanceNorm2d(_LazyNorm, InstanceNorm2d):
    cls_to_become = InstanceNorm2d
    __doc__ = "InstanceNorm2d whose num_features is the channel axis of the first input."


class LazyInstanceNorm3d(_LazyNorm, InstanceNorm3d):
    cls_to_become = InstanceNorm3d
    __doc__ = "InstanceNorm3d whose num_features is the channel axis of the first input."
