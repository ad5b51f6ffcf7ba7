"""Linear (fully connected) layer with PyTorch's layout and initialisation."""
import math

import numpy as np

from .. import random as _random
from ..errors import RuntimeValueError
from ..validation import check_non_negative_int
from . import init
from .module import Module, Parameter, forget_forward, kept_for_backward


class Linear(Module):
    """y = x @ weight.T + bias.

    weight: (out_features, in_features); bias: (out_features,) or None (bias=False).
    Both start U(-1/sqrt(in_features), 1/sqrt(in_features)), PyTorch's default
    (kaiming_uniform with a=sqrt(5)), drawn from fastnn's global generator.
    Input x: (*, in_features), any number of leading dimensions (none for a single
    sample), as in PyTorch; output: (*, out_features). The kernels see the leading
    dimensions flattened into one batch axis (a view: no copy).
    ``Sequential`` fuses a following activation into this layer's kernels.
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32):
        super().__init__()
        # 0 features are PyTorch's empty layer: (N, 0) in gives the bias, 0 out an (N, 0)
        # (a negative size: PyTorch's RuntimeError for a tensor of a negative dimension)
        self.in_features = check_non_negative_int("Linear", "in_features", in_features,
                                                  RuntimeValueError)
        self.out_features = check_non_negative_int("Linear", "out_features", out_features,
                                                   RuntimeValueError)
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features else 0.0
        rng = _random.generator()
        self.weight = Parameter(
            rng.uniform(-bound, bound, (self.out_features, self.in_features)).astype(dtype))
        self.bias = (Parameter(rng.uniform(-bound, bound, self.out_features).astype(dtype))
                     if bias else None)
        # (x as (N, in), y or None, activation, negative_slope, x's own shape) of the
        # last forward
        self._ctx = None

    @classmethod
    def around(cls, weight, bias=None):
        """A Linear whose parameters hold the given arrays, nothing drawn (the global
        generator is left alone): weight (out_features, in_features), bias (out_features,)
        or None, float arrays of one dtype, kept themselves where C-contiguous and writeable
        (else as a copy, as ``Parameter.data`` stores them). For functions that run a
        layer's computation with the caller's weights (F.linear_cross_entropy)."""
        layer = cls.__new__(cls)
        Module.__init__(layer)
        layer.in_features = check_non_negative_int("Linear", "in_features", weight.shape[1])
        layer.out_features = check_non_negative_int("Linear", "out_features", weight.shape[0])
        layer.weight = _parameter_holding(weight)
        layer.bias = None if bias is None else _parameter_holding(bias)
        layer._ctx = None
        return layer

    def reset_parameters(self):
        """Draw weight and bias again as the constructor does (PyTorch's), in place."""
        init.reset_fan_in_uniform(self.weight, self.bias)

    def infer_shape(self, shape, dtype):
        if type(shape) is tuple and shape and shape[-1] == self.in_features:
            # the usual call: host parameters of the input's dtype and their shapes (the
            # checks below, a few times faster; anything else goes through them)
            fout, weight, bias = self.out_features, self.weight, self.bias
            if (_fits(weight, (fout, self.in_features), dtype)
                    and (bias is None or _fits(bias, (fout,), dtype))):
                return shape[:-1] + (fout,)
        shape = tuple(shape)  # (the CUDA simulator's shapes refuse negative indices)
        if len(shape) == 0 or shape[-1] != self.in_features:
            raise ValueError(f"{self._where()}: expected input of shape "
                             f"(*, {self.in_features}), got {shape}")
        self._check_params((("weight", self.weight, (self.out_features, self.in_features)),
                            ("bias", self.bias, (self.out_features,))))
        self._check_dtype(dtype, self.weight.data.dtype)
        return tuple(shape[:-1]) + (self.out_features,)

    def _forward(self, x, buffered, activation="identity", negative_slope=0.01):
        """activation, negative_slope: a fused activation (``Sequential`` passes them)."""
        shape = tuple(x.shape)
        if x.ndim != 2:
            x = x.reshape(math.prod(shape[:-1]), self.in_features)
        out = (self._buffer("y", (x.shape[0], self.out_features), x.dtype)
               if buffered else None)
        bias = None if self.bias is None else self.bias.data
        y = self._kernels().linear_forward(x, self.weight.data, bias, activation,
                                             negative_slope, out=out)
        # (a plain attribute: set past Module.__setattr__'s parameter and buffer checks)
        object.__setattr__(self, "_ctx", (x, None if activation == "identity" else y,
                                          activation, negative_slope, shape))
        return y if len(shape) == 2 else y.reshape(shape[:-1] + (self.out_features,))

    def _run_fused(self, x, buffered, activation, negative_slope):
        y = self._forward(x, buffered, activation, negative_slope)
        forget_forward(self)
        object.__setattr__(self, "_out_meta", kept_for_backward((y.shape, y.dtype)))
        return y

    def _backward(self, grad_out, buffered, need_grad_in):
        x, y, activation, negative_slope, shape = self._ctx
        if grad_out.ndim != 2:
            grad_out = grad_out.reshape(x.shape[0], self.out_features)
        dtype = grad_out.dtype
        scratch = (None if activation == "identity"
                   else self._buffer("scratch", grad_out.shape, dtype))
        grad_in = (self._buffer("grad_in", x.shape, dtype)
                   if buffered and need_grad_in else None)
        # a frozen parameter's gradient is neither computed nor touched (PyTorch's)
        weight_live = self.weight.requires_grad
        bias_live = self.bias is not None and self.bias.requires_grad
        if not (weight_live or bias_live or need_grad_in):
            return None
        # After zero_grad() the kernel writes the gradients rather than adding them to
        # zeros (one pass over grad_weight fewer, and no fill): all must be pending
        grad_weight = self.weight._grad_to_overwrite() if weight_live else None
        grad_bias = self.bias._grad_to_overwrite() if bias_live else None
        overwrite = ((grad_weight is not None or not weight_live)
                     and (grad_bias is not None or not bias_live))
        if not overwrite:
            grad_weight = self.weight.grad if weight_live else None
            grad_bias = self.bias.grad if bias_live else None
        grad_in = self._kernels().linear_backward(
            grad_out, x, self.weight.data, y=y, activation=activation,
            negative_slope=negative_slope, grad_weight=grad_weight, grad_bias=grad_bias,
            grad_in=grad_in, need_grad_in=need_grad_in, scratch=scratch,
            accumulate=not overwrite)
        if overwrite:
            if weight_live:
                self.weight._grad_overwritten()
            if bias_live:
                self.bias._grad_overwritten()
        return grad_in if grad_in is None or len(shape) == 2 else grad_in.reshape(shape)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


def _fits(param, shape, dtype):
    """True when param is a Parameter whose data (and .grad, unless None) are ndarrays of
    this shape and of the very dtype object dtype."""
    if type(param) is not Parameter:
        return False
    data, grad = param._data, param._grad
    return (type(data) is np.ndarray and data.dtype is dtype and data.shape == shape
            and (grad is None or (type(grad) is np.ndarray and grad.dtype is dtype
                                  and grad.shape == shape)))


def _parameter_holding(value):
    """A Parameter whose data is value itself (a copy where strided or read-only) and
    whose gradient is zeros of its shape."""
    param = Parameter(np.zeros((1,) * value.ndim, value.dtype))
    param._rebind_data(value)
    return param
