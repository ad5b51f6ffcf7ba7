"""Flatten: merge the axes start_dim..end_dim into one (a view, no copy)."""
import math
import numbers

from .module import Module


class Flatten(Module):
    """(N, d1, ..., dk) -> (N, d1 * ... * dk) with the defaults start_dim=1, end_dim=-1."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"Flatten: expected {name} to be an int, got {value!r}")
        self.start_dim = int(start_dim)
        self.end_dim = int(end_dim)
        self._in_shape = None

    def _span(self, ndim):
        start = self.start_dim + ndim if self.start_dim < 0 else self.start_dim
        end = self.end_dim + ndim if self.end_dim < 0 else self.end_dim
        return start, end

    def infer_shape(self, shape, dtype):
        start, end = self._span(len(shape))
        if not 0 <= start <= end < len(shape):
            raise ValueError(f"{self._where()}: cannot flatten dims "
                             f"{self.start_dim}..{self.end_dim} of an input of shape {shape}")
        return shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:]

    @property
    def passthrough(self):
        return True

    def _forward(self, x, buffered):
        self._in_shape = x.shape
        return x.reshape(self.infer_shape(x.shape, x.dtype))

    def _backward(self, grad_out, buffered, need_grad_in):
        return grad_out.reshape(self._in_shape) if need_grad_in else None

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
