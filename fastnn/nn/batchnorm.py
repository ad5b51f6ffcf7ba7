"""Batch normalisation layers (PyTorch's semantics), run by the batchnorm kernels."""
import math
import numbers

import numpy as np

from ..validation import check_number
from .module import Module, Parameter


class _BatchNorm(Module):
    """Shared body of BatchNorm1d and BatchNorm2d; ``ndim`` is the input rank."""

    ndim = None

    ignores_batch_count = True  # PyTorch's num_batches_tracked loads as ignored

    def __init__(self, num_features, eps=1e-5, momentum=0.1, mean_only=False,
                 dtype=np.float32):
        super().__init__()
        name = type(self).__name__
        if (isinstance(num_features, bool) or not isinstance(num_features, numbers.Integral)
                or num_features < 1):
            raise ValueError(f"{name}: expected num_features to be a positive int, "
                             f"got {num_features!r}")
        check_number(name, "eps", eps, low=0.0, low_open=True, high=None)
        check_number(name, "momentum", momentum, low=0.0, high=1.0, high_open=False)
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.mean_only = bool(mean_only)
        c = self.num_features
        self.weight = None if self.mean_only else Parameter(np.ones(c, dtype=dtype))
        self.bias = Parameter(np.zeros(c, dtype=dtype))
        self.register_buffer("running_mean", np.zeros(c, dtype=dtype))
        self.register_buffer("running_var", None if self.mean_only else np.ones(c, dtype=dtype))
        self._ctx = None  # (x, save_mean, save_invstd, training) of the last forward

    def _expected_shape(self):
        return "(N, C)" if self.ndim == 2 else "(N, C, H, W)"

    def infer_shape(self, shape, dtype):
        where = self._where()
        if len(shape) != self.ndim or shape[1] != self.num_features:
            want = self._expected_shape().replace("C", str(self.num_features))
            raise ValueError(f"{where}: expected input of shape {want}, got {shape}")
        if dtype != self.bias.data.dtype:
            raise TypeError(f"{where}: input dtype {dtype} does not match the layer's "
                            f"parameters ({self.bias.data.dtype}); convert the input or call "
                            f".float()/.double() on the model")
        if self.training and math.prod(shape) // self.num_features <= 1:
            raise ValueError(f"{where}: expected more than 1 value per channel in training "
                             f"mode (batch statistics), got input of shape {shape}; use a "
                             f"larger batch or eval()")
        return shape

    def _forward(self, x, buffered):
        c, dtype = self.num_features, x.dtype
        out = self._buffer("y", x.shape, dtype) if buffered else None
        save_mean = self._buffer("save_mean", (c,), dtype)
        save_invstd = None if self.mean_only else self._buffer("save_invstd", (c,), dtype)
        y, save_mean, save_invstd = self._kernels().batchnorm_forward(
            x, None if self.weight is None else self.weight.data, self.bias.data,
            self.running_mean, self.running_var, training=self.training,
            momentum=self.momentum, eps=self.eps, mean_only=self.mean_only, out=out,
            save_mean=save_mean, save_invstd=save_invstd)
        self._ctx = (x, save_mean, save_invstd, self.training)
        return y

    def _backward(self, grad_out, buffered, need_grad_in):
        # The kernel always produces grad_in (its reductions are needed anyway).
        grad_in = self._buffer("grad_in", grad_out.shape, grad_out.dtype) if buffered else None
        x, save_mean, save_invstd, training = self._ctx
        grad_in = self._kernels().batchnorm_backward(
            grad_out, x, None if self.weight is None else self.weight.data,
            save_mean, save_invstd, training=training,
            mean_only=self.mean_only,
            grad_weight=None if self.weight is None else self.weight.grad,
            grad_bias=self.bias.grad, grad_in=grad_in)
        return grad_in if need_grad_in else None

    def extra_repr(self):
        text = f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
        return text + (", mean_only=True" if self.mean_only else "")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) inputs over the batch, per feature.

    .weight (gamma) and .bias (beta): (C,) parameters; .running_mean, .running_var: (C,)
    buffers updated in training (unbiased variance, PyTorch's momentum rule) and used in
    eval mode. mean_only=True: y = x - batch mean + bias (no weight, no running_var).
    """

    ndim = 2


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs over batch and space, per channel."""

    ndim = 4

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=np.float32):
        super().__init__(num_features, eps=eps, momentum=momentum, mean_only=False,
                         dtype=dtype)
