"""Max and average pooling over NCHW (and NCL) input (PyTorch's semantics, floor output
sizes)."""
from ..validation import FLOAT_DTYPES, check_only
from .conv import As1d, add_batch_axis, drop_batch_axis, pair, spatial_out
from .module import Module


class _Pool2d(Module):
    """Shared arguments and checks. kernel_size, stride (None: kernel_size), padding: an
    int or a pair; padding at most half the kernel, as PyTorch requires."""

    dims = 2  # spatial dimensions of the window (the 1-D layers: 1)

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        name, n = type(self).__name__, self.dims
        check_only(name, "ceil_mode", ceil_mode, (False,))
        self.kernel_size = pair(name, "kernel_size", kernel_size, 1, n)
        self.stride = (self.kernel_size if stride is None
                       else pair(name, "stride", stride, 1, n))
        self.padding = pair(name, "padding", padding, 0, n)
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{name}: padding {self.padding} must be at most half of "
                             f"kernel_size {self.kernel_size}")
        self._in_shape = None  # the (N, C, H, W) shape of the last forward's input
        self._unbatched = False

    def infer_shape(self, shape, dtype):
        return self._shape_2d(shape, dtype)

    def _shape_2d(self, shape, dtype):
        """Output shape of the 2-D kernels for an (N, C, H, W) or (C, H, W) input (the
        1-D layers' views come through here too); raises on a bad input."""
        shape = tuple(shape)  # (the CUDA simulator's shapes refuse negative indices)
        where = self._where()
        if len(shape) not in (3, 4):
            raise ValueError(f"{where}: expected input of shape (N, C, H, W) or (C, H, W), "
                             f"got {shape}")
        if dtype not in FLOAT_DTYPES:
            raise TypeError(f"{where}: expected input of dtype float32 or float64, got {dtype}")
        ho, wo = spatial_out(where, shape, *self._window())
        return tuple(shape[:-2]) + (ho, wo)

    def _window(self):
        """(kernel_size, stride, padding) of the 2-D kernels, each a pair."""
        return self.kernel_size, self.stride, self.padding

    def _forward(self, x, buffered):
        self._unbatched = x.ndim == 3
        x = add_batch_axis(x)
        self._in_shape = x.shape
        return drop_batch_axis(self._pool(x, buffered), self._unbatched)

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        grad_in = (self._buffer("grad_in", self._in_shape, grad_out.dtype)
                   if buffered else None)
        grad_in = self._unpool(add_batch_axis(grad_out), grad_in)
        return drop_batch_axis(grad_in, self._unbatched)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Maximum over each window; padding counts as -inf (it never wins).

    Input (N, C, H, W) or unbatched (C, H, W); output (N, C, H_out, W_out) (without N for
    an unbatched input), H_out = (H + 2 p - k) // s + 1.
    Backward sends each output gradient to its window's argmax (the first maximum).
    PyTorch's dilation, return_indices and ceil_mode are taken at their defaults only.
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices=False, ceil_mode=False):
        name = type(self).__name__
        check_only(name, "dilation", dilation, (1, (1,) * self.dims))
        check_only(name, "return_indices", return_indices, (False,))
        super().__init__(kernel_size, stride, padding, ceil_mode)

    def _pool(self, x, buffered):
        shape = self._shape_2d(x.shape, x.dtype)
        out = self._buffer("y", shape, x.dtype) if buffered else None
        indices = self._buffer("indices", shape, "int64")
        y, self._indices = self._kernels().max_pool2d_forward(
            x, *self._window(), out=out, indices=indices)
        return y

    def _unpool(self, grad_out, grad_in):
        return self._kernels().max_pool2d_backward(grad_out, self._indices, self._in_shape,
                                                     grad_in=grad_in)


class AvgPool2d(_Pool2d):
    """Mean over each window, zero padding. count_include_pad=True (PyTorch's default)
    divides by kH * kW; False divides by the number of unpadded cells in the window.

    Input (N, C, H, W) or unbatched (C, H, W); output (N, C, H_out, W_out) (without N
    for an unbatched input).
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        check_only(type(self).__name__, "divisor_override", divisor_override, (None,))
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def _pool(self, x, buffered):
        out = self._buffer("y", self._shape_2d(x.shape, x.dtype), x.dtype) if buffered else None
        return self._kernels().avg_pool2d_forward(
            x, *self._window(), self.count_include_pad, out=out)

    def _unpool(self, grad_out, grad_in):
        return self._kernels().avg_pool2d_backward(
            grad_out, self._in_shape, *self._window(), self.count_include_pad,
            grad_in=grad_in)

    def extra_repr(self):
        return super().extra_repr() + f", count_include_pad={self.count_include_pad}"


class MaxPool1d(As1d, MaxPool2d):
    """Maximum over windows of (N, C, L) or unbatched (C, L) input (PyTorch's MaxPool1d),
    by the 2-D kernels on an (N, C, 1, L) view. kernel_size, stride (None: kernel_size),
    padding: an int (or a 1-tuple); L_out = (L + 2 p - k) // s + 1."""

    dims = 1


class AvgPool1d(As1d, AvgPool2d):
    """Mean over windows of (N, C, L) or unbatched (C, L) input (PyTorch's AvgPool1d),
    by the 2-D kernels on an (N, C, 1, L) view; count_include_pad as AvgPool2d's."""

    dims = 1

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
