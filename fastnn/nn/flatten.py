"""Flatten and Unflatten: merge axes into one, or split one into several (views, no
copies)."""
import math
import numbers

from ..errors import IndexValueError, RuntimeValueError, TypeValueError
from ..validation import check_int64
from .module import Module


class _Reshape(Module):
    """A view of the input in the shape ``infer_shape`` gives (no copy); backward views
    the gradient back."""

    @property
    def passthrough(self):
        return True

    def _forward(self, x, buffered):
        self._in_shape = x.shape
        return x.reshape(self.infer_shape(x.shape, x.dtype))

    def _backward(self, grad_out, buffered, need_grad_in):
        return grad_out.reshape(self._in_shape) if need_grad_in else None


class Flatten(_Reshape):
    """(N, d1, ..., dk) -> (N, d1 * ... * dk) with the defaults start_dim=1, end_dim=-1."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeValueError(f"Flatten: expected {name} to be an int, got {value!r}")
            check_int64("Flatten", name, (value,))
        self.start_dim = int(start_dim)
        self.end_dim = int(end_dim)
        self._in_shape = None

    def _span(self, ndim):
        start = self.start_dim + ndim if self.start_dim < 0 else self.start_dim
        end = self.end_dim + ndim if self.end_dim < 0 else self.end_dim
        return start, end

    def infer_shape(self, shape, dtype):
        if len(shape) == 0:  # PyTorch's: a 0-D input (dims 0 or -1) flattens to (1,)
            start, end = self._span(1)
            if start == end == 0:
                return (1,)
        start, end = self._span(len(shape))
        if not (0 <= start < len(shape) and 0 <= end < len(shape)):
            raise IndexValueError(f"{self._where()}: cannot flatten dims {self.start_dim}.."
                                  f"{self.end_dim} of an input of shape {shape} (out of "
                                  f"range)")
        if start > end:
            raise RuntimeValueError(f"{self._where()}: cannot flatten dims "
                                    f"{self.start_dim}..{self.end_dim} of an input of shape "
                                    f"{shape} (start_dim comes after end_dim)")
        return shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:]

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(_Reshape):
    """Split axis ``dim`` into ``unflattened_size`` (a tuple of ints, one of them may be
    -1), PyTorch's Unflatten: (N, 12) -> (N, 3, 4) with dim=1, unflattened_size=(3, 4)."""

    def __init__(self, dim, unflattened_size):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise TypeValueError(f"Unflatten: expected dim to be an int, got {dim!r}")
        check_int64("Unflatten", "dim", (dim,))
        if not isinstance(unflattened_size, (tuple, list)):
            raise TypeError(f"unflattened_size must be a tuple of ints, but found type "
                            f"{type(unflattened_size).__name__}")
        sizes = tuple(unflattened_size)
        for i, v in enumerate(sizes):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise TypeError(f"unflattened_size must be tuple of ints, but found element "
                                f"of type {type(v).__name__} at pos {i}")
        if (not sizes or any(v < 0 and v != -1 for v in sizes)
                or sum(v == -1 for v in sizes) > 1):
            # (PyTorch's RuntimeError, raised when it unflattens; fastnn's here)
            raise RuntimeValueError(f"Unflatten: expected unflattened_size to be a tuple of "
                                    f"non-negative ints (at most one -1), got "
                                    f"{unflattened_size!r}")
        check_int64("Unflatten", "unflattened_size", sizes)
        self.dim = int(dim)
        # a list stays a list, as PyTorch's (its repr shows it)
        kind = list if isinstance(unflattened_size, list) else tuple
        self.unflattened_size = kind(int(v) for v in sizes)
        self._in_shape = None

    def infer_shape(self, shape, dtype):
        shape = tuple(shape)
        dim = self.dim + len(shape) if self.dim < 0 else self.dim
        if not 0 <= dim < len(shape):
            raise IndexValueError(f"{self._where()}: dim {self.dim} is out of range for an "
                                  f"input of shape {shape}")
        sizes, known = list(self.unflattened_size), math.prod(
            v for v in self.unflattened_size if v != -1)
        if -1 in sizes and known > 0 and shape[dim] % known == 0:
            sizes[sizes.index(-1)] = shape[dim] // known
        if math.prod(sizes) != shape[dim] or -1 in sizes:
            raise RuntimeValueError(f"{self._where()}: cannot split dim {self.dim} of size "
                                    f"{shape[dim]} into {self.unflattened_size} (input "
                                    f"shape {shape})")
        return shape[:dim] + tuple(sizes) + shape[dim + 1:]

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
