"""Parameter initialisation in place, PyTorch's ``torch.nn.init`` functions and formulas.

Each function takes a Parameter (its ``.data`` is filled) or an array, fills it in
place from fastnn's generator (``fastnn.manual_seed`` fixes the draws) and returns it.
A parameter on the GPU is filled on the host and copied over.

Fans follow PyTorch: for a weight of shape (out, in, *kernel), fan_in = in * prod(kernel)
and fan_out = out * prod(kernel); a 1-D array has no fans (an error, as in PyTorch).
"""
import math
import numbers

import numpy as np

from .. import device as _device
from .. import random as _random
from .module import Parameter

_GAINS = {"linear": 1.0, "identity": 1.0, "conv1d": 1.0, "conv2d": 1.0, "sigmoid": 1.0,
          "tanh": 5.0 / 3, "relu": math.sqrt(2.0), "selu": 0.75}


def calculate_gain(nonlinearity, param=None):
    """PyTorch's recommended gain for a nonlinearity: 1 (linear, conv, sigmoid), 5/3
    (tanh), sqrt(2) (relu), sqrt(2 / (1 + slope**2)) (leaky_relu, slope param or 0.01),
    3/4 (selu)."""
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, numbers.Real):
            raise ValueError(f"calculate_gain: negative_slope {slope!r} is not a number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity not in _GAINS:
        raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; "
                         f"expected one of {sorted(_GAINS) + ['leaky_relu']}")
    return _GAINS[nonlinearity]


def _calculate_fan_in_and_fan_out(array):
    shape = _array(array, "fans").shape
    if len(shape) < 2:
        raise ValueError(f"init: fan in and fan out need an array of at least 2 dimensions, "
                         f"got shape {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fan(array, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode {mode!r} not supported, expected 'fan_in' or 'fan_out'")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(array)
    return fan_in if mode == "fan_in" else fan_out


def _array(target, where):
    data = target.data if isinstance(target, Parameter) else target
    if not _device.is_array(data) or np.dtype(data.dtype).kind != "f":
        raise TypeError(f"init.{where}: expected a Parameter or a float array, "
                        f"got {type(target).__name__}")
    return data


def _fill(target, where, values):
    """Write values (a NumPy array or scalar) into the target's array in place; target."""
    data = _array(target, where)
    if _device.is_device_array(data):
        host = np.empty(data.shape, data.dtype)
        host[...] = values
        _device.namespace_of(data).copy_into(data, host)
    else:
        data[...] = values
    return target


def _shape(target, where):
    return _array(target, where).shape


def uniform_(tensor, a=0.0, b=1.0):
    """Fill with U(a, b)."""
    return _fill(tensor, "uniform_", _random.generator().uniform(a, b, _shape(tensor, "uniform_")))


def normal_(tensor, mean=0.0, std=1.0):
    """Fill with N(mean, std**2)."""
    return _fill(tensor, "normal_",
                 _random.generator().normal(mean, std, _shape(tensor, "normal_")))


def constant_(tensor, val):
    """Fill with val."""
    return _fill(tensor, "constant_", val)


def zeros_(tensor):
    return _fill(tensor, "zeros_", 0)


def ones_(tensor):
    return _fill(tensor, "ones_", 1)


def xavier_uniform_(tensor, gain=1.0):
    """Glorot: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain=1.0):
    """Glorot: N(0, std**2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """He: U(-bound, bound), bound = gain * sqrt(3 / fan) (gain of nonlinearity with
    slope a). PyTorch's Linear/Conv2d default is a = sqrt(5)."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """He: N(0, std**2), std = gain / sqrt(fan)."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std)
