"""Unfold (im2col) and Fold (col2im), PyTorch's sliding-block layers, computed with NumPy
on the host (a device array goes through the host and comes back).

Unfold takes (N, C, H, W) (or unbatched (C, H, W)) to the blocks (N, C * kH * kW, L),
one column per window position (L = H_out * W_out, row-major), each column's entries
ordered channel, then kernel row, then kernel column (PyTorch's order). Fold is its
adjoint: it adds each column's entries back at their window positions of an
(N, C, *output_size) image (overlaps add up). Each is the other's backward.
"""
import numpy as np

from .. import device as _device
from ..errors import RuntimeValueError
from ..kernels.window_shapes import window_out_size
from .conv import check_no_empty_axes, pair
from .conv3d import ALL, kernel_offsets, tap_slices
from .module import Module


def _block_grid(where, size, kernel, dilation, padding, stride):
    """(H_out, W_out): the window positions over an image of size (H, W)."""
    check_no_empty_axes(where, size, len(size))
    grid = []
    for n, k, d, p, s in zip(size, kernel, dilation, padding, stride):
        span = d * (k - 1) + 1
        if n + 2 * p < span:
            raise RuntimeValueError(f"{where}: the kernel (span {span} with dilation {d}) "
                                    f"does not fit an image of size {tuple(size)} padded by "
                                    f"{p}")
        grid.append(window_out_size(n, k, s, p, dilation=d))
    return tuple(grid)


def unfold(x, kernel, dilation, padding, stride):
    """x (N, C, H, W) -> blocks (N, C * kH * kW, H_out * W_out)."""
    n, c, h, w = x.shape
    (ph, pw) = padding
    grid = _block_grid("unfold", (h, w), kernel, dilation, padding, stride)
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    cols = np.empty((n, c) + tuple(kernel) + grid, x.dtype)
    for offset in kernel_offsets(kernel):
        cols[ALL + offset] = padded[ALL + tap_slices(offset, dilation, stride, grid)]
    return cols.reshape(n, c * kernel[0] * kernel[1], grid[0] * grid[1])


def fold(cols, size, kernel, dilation, padding, stride):
    """blocks (N, C * kH * kW, L) -> image (N, C, H, W), overlapping entries added."""
    n = cols.shape[0]
    (h, w), (ph, pw) = size, padding
    grid = _block_grid("fold", size, kernel, dilation, padding, stride)
    c = cols.shape[1] // (kernel[0] * kernel[1])
    blocks = cols.reshape((n, c) + tuple(kernel) + grid)
    padded = np.zeros((n, c, h + 2 * ph, w + 2 * pw), cols.dtype)
    for offset in kernel_offsets(kernel):
        padded[ALL + tap_slices(offset, dilation, stride, grid)] += blocks[ALL + offset]
    return _device.c_contiguous(padded[:, :, ph:ph + h, pw:pw + w])


class _Blocks(Module):
    """kernel_size, dilation, padding, stride: an int or a pair each (PyTorch's)."""

    def __init__(self, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.kernel_size, self.dilation = kernel_size, dilation
        self.padding, self.stride = padding, stride
        self._derived()   # (checks them)
        self._unbatched = False

    _derived_from = frozenset({"kernel_size", "dilation", "padding", "stride",
                               "output_size"})

    def _derive(self):
        """(kernel_size, dilation, padding, stride) as pairs, checked (at the forward after
        one was set, as PyTorch reads them at each call)."""
        name = type(self).__name__
        return (pair(name, "kernel_size", self.kernel_size, 1),
                pair(name, "dilation", self.dilation, 1),
                pair(name, "padding", self.padding, 0), pair(name, "stride", self.stride, 1))

    _window = property(lambda self: self._derived()[:4])

    def _run(self, fn, x, *size):
        """fn on x's host copy with a batch axis (when the forward's input had none); the
        result back where x lives, without it."""
        host = _device.to_host(x)
        if self._unbatched:
            host = host[None]
        y = fn(host, *size, *self._window)
        return _device.namespace_of(x).put(y[0] if self._unbatched else y)

    def extra_repr(self):
        size = (f"output_size={self.output_size}, "
                if hasattr(self, "output_size") else "")
        return (f"{size}kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"padding={self.padding}, stride={self.stride}")


class Unfold(_Blocks):
    """The sliding blocks of an image: (N, C, H, W) -> (N, C * kH * kW, L) (unbatched
    (C, H, W) -> (C * kH * kW, L)), L the number of window positions; backward Fold's
    sum of the gradient's blocks back into the image."""

    def infer_shape(self, shape, dtype):
        shape = tuple(shape)
        where = self._where()
        if len(shape) not in (3, 4):
            raise RuntimeValueError(f"{where}: expected input of shape (N, C, H, W) or "
                                    f"(C, H, W), got {shape}")
        check_no_empty_axes(where, shape, 3, "channels and spatial sizes")   # (PyTorch's)
        kernel, dilation, padding, stride = self._window
        grid = _block_grid(where, shape[-2:], kernel, dilation, padding, stride)
        return shape[:-3] + (shape[-3] * kernel[0] * kernel[1], grid[0] * grid[1])

    def _forward(self, x, buffered):
        self._size = tuple(x.shape)[-2:]
        self._unbatched = x.ndim == 3
        return self._run(unfold, x)

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        return self._run(fold, grad_out, self._size)


class Fold(_Blocks):
    """Blocks back into an image: (N, C * kH * kW, L) -> (N, C, *output_size) (unbatched
    (C * kH * kW, L) -> (C, *output_size)), the entries of overlapping windows added; L
    must be the number of window positions over output_size. Backward: Unfold."""

    def __init__(self, output_size, kernel_size, dilation=1, padding=0, stride=1):
        self.output_size = output_size   # (before _Blocks' checks, which read it)
        super().__init__(kernel_size, dilation, padding, stride)

    def _derive(self):
        return super()._derive() + (pair("Fold", "output_size", self.output_size, 1),)

    _size = property(lambda self: self._derived()[4])

    def infer_shape(self, shape, dtype):
        shape = tuple(shape)
        where = self._where()
        kernel, dilation, padding, stride = self._window
        if len(shape) not in (2, 3):
            raise RuntimeValueError(f"{where}: expected input of shape (N, C * kH * kW, L) or "
                                    f"(C * kH * kW, L), got {shape}")
        check_no_empty_axes(where, shape, 2, "channels and block counts")   # (PyTorch's)
        area = kernel[0] * kernel[1]
        if shape[-2] % area:
            raise RuntimeValueError(f"{where}: expected the size of dimension {len(shape) - 2} "
                                    f"({shape[-2]}) to be divisible by the kernel's "
                                    f"{kernel[0]} * {kernel[1]} = {area}")
        grid = _block_grid(where, self._size, kernel, dilation, padding, stride)
        if shape[-1] != grid[0] * grid[1]:
            blocks = grid[0] * grid[1]
            raise RuntimeValueError(f"{where}: expected {grid[0]} * {grid[1]} = {blocks} "
                                    f"blocks (output_size={self._size}) along the last "
                                    f"dimension, got {shape[-1]}")
        return shape[:-2] + (shape[-2] // area,) + self._size

    def _forward(self, x, buffered):
        self._unbatched = x.ndim == 2
        return self._run(fold, x, self._size)

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        return self._run(unfold, grad_out)
