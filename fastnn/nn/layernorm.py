"""LayerNorm (PyTorch's semantics), run by the layer_norm kernels on an (rows, D) view."""
import math
import numbers

import numpy as np

from ..errors import RuntimeValueError, TypeValueError
from ..validation import check_int64, check_number, int_items
from . import init
from .module import Module, Parameter, live_grad, nothing_to_compute


def normalized_shape_of(name, normalized_shape):
    """normalized_shape (a non-negative int or a tuple of them; 0: PyTorch's empty
    layer, over no features) as a tuple of ints."""
    shape = int_items(normalized_shape)
    shape = shape if isinstance(shape, (tuple, list)) else (shape,)
    if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in shape):
        raise TypeValueError(f"{name}: expected normalized_shape to be a non-negative int "
                             f"or a tuple of them, got {normalized_shape!r}")  # (PyTorch's type)
    if any(v < 0 for v in shape):   # (PyTorch's RuntimeError: a negative dimension)
        raise RuntimeValueError(f"{name}: expected normalized_shape to be a non-negative "
                                f"int or a tuple of them, got {normalized_shape!r}")
    if not shape:
        raise ValueError(f"{name}: expected normalized_shape to be a non-negative int or a "
                         f"tuple of them, got {normalized_shape!r}")
    return check_int64(name, "normalized_shape", shape)


def check_normalized_input(layer, shape):
    """An input shape of LayerNorm or RMSNorm (``layer``) as a tuple, checked to end in
    layer.normalized_shape (a RuntimeValueError naming the layer otherwise)."""
    shape = tuple(shape)
    k = len(layer.normalized_shape)
    if shape[len(shape) - k:] != layer.normalized_shape:
        raise RuntimeValueError(f"{layer._where()}: expected input of shape (*, "
                                f"{', '.join(map(str, layer.normalized_shape))}), got {shape}")
    return shape


class LayerNorm(Module):
    """Normalise each sample over its last dimensions: y = (x - mean) / sqrt(var + eps)
    * weight + bias, mean and (biased) variance over ``normalized_shape``.

    normalized_shape: an int or a tuple, the trailing shape of the input;
    .weight (ones) and .bias (zeros): parameters of that shape, absent with
    elementwise_affine=False (bias=False drops the bias only). Input (*,
    *normalized_shape), output the same shape; the kernels see it as (rows, D) with D the
    product of normalized_shape (a view: no copy). The same in training and eval mode.
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 dtype=np.float32):
        super().__init__()
        self.normalized_shape = normalized_shape_of("LayerNorm", normalized_shape)
        check_number("LayerNorm", "eps", eps, low=0.0, high=None)
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        affine = self.elementwise_affine
        self.weight = Parameter(np.ones(self.normalized_shape, dtype)) if affine else None
        self.bias = (Parameter(np.zeros(self.normalized_shape, dtype))
                     if affine and bias else None)
        self._ctx = None  # (x as (rows, D), save_mean, save_invstd) of the last forward

    def reset_parameters(self):
        """PyTorch's: weight 1 and bias 0 (where present), in place."""
        init.reset_affine(self.weight, self.bias)

    def infer_shape(self, shape, dtype):
        shape = check_normalized_input(self, shape)
        self._check_params((("weight", self.weight, self.normalized_shape),
                            ("bias", self.bias, self.normalized_shape)))
        self._check_dtype(dtype, None if self.weight is None else self.weight.data.dtype)
        return shape

    @staticmethod
    def _vector(param, grad=False):
        """A parameter's data (or grad) as the kernels take it, (D,) (a view); or None (also
        the grad of a frozen parameter: neither computed nor touched, as PyTorch's)."""
        values = live_grad(param) if grad else None if param is None else param.data
        return None if values is None else values.reshape(-1)

    def _forward(self, x, buffered):
        shape = tuple(x.shape)
        d = math.prod(self.normalized_shape)
        if d == 0:   # no features: an empty output, and no gradients to give
            self._ctx = None
            return x.copy()
        rows = x.reshape(math.prod(shape) // d, d)
        n = rows.shape[0]
        out = self._buffer("y", rows.shape, x.dtype) if buffered else None
        y, save_mean, save_invstd = self._kernels().layer_norm_forward(
            rows, self._vector(self.weight), self._vector(self.bias), self._float("eps"),
            out=out,
            save_mean=self._buffer("save_mean", (n,), x.dtype),
            save_invstd=self._buffer("save_invstd", (n,), x.dtype))
        self._ctx = (rows, save_mean, save_invstd)
        return y.reshape(shape)

    def _backward(self, grad_out, buffered, need_grad_in):
        if self._ctx is None:   # (no features)
            return grad_out.copy() if need_grad_in else None
        if nothing_to_compute(need_grad_in, self.weight, self.bias):
            return None   # (all frozen: PyTorch's backward neither computes nor touches them)
        rows, save_mean, save_invstd = self._ctx
        shape = tuple(grad_out.shape)
        grad_rows = grad_out.reshape(rows.shape)
        grad_in = self._buffer("grad_in", rows.shape, rows.dtype) if buffered else None
        grad_in = self._kernels().layer_norm_backward(
            grad_rows, rows, self._vector(self.weight), save_mean, save_invstd,
            grad_weight=self._vector(self.weight, grad=True),
            grad_bias=self._vector(self.bias, grad=True), grad_in=grad_in)
        return grad_in.reshape(shape) if need_grad_in else None

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")
