"""Adaptive pooling: PyTorch's AdaptiveAvgPool2d/1d and AdaptiveMaxPool2d/1d, any output
size."""
import math
import numbers

import numpy as np

from .. import device as _device
from ..errors import RuntimeValueError, TypeValueError
from ..kernels.reference.conv import last_nan_or_argmax
from ..validation import check_bool, check_float_dtype, check_int64, int_items
from .conv import As1d, add_batch_axis, drop_batch_axis
from .module import Module
from .pooling import ReturnsIndices, keep_indices


def _window_matrix(size, out, dtype):
    """(out, size) averaging matrix of PyTorch's adaptive windows: row i averages
    [floor(i * size / out), ceil((i + 1) * size / out))."""
    m = np.zeros((out, size), dtype)
    for i in range(out):
        start, end = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, start:end] = 1.0 / (end - start)
    return m


def window_means(x, axis, out):
    """x's means over PyTorch's ``out`` adaptive windows along ``axis``, one window at a
    time, so a NaN or inf reaches only its own windows' outputs (a product with the
    window matrix spreads it through the zero weights: 0 * inf is NaN)."""
    moved = np.moveaxis(x, axis, -1)
    y = np.empty(moved.shape[:-1] + (out,), x.dtype)
    for i, (start, end) in enumerate(_window_bounds(moved.shape[-1], out)):
        y[..., i] = moved[..., start:end].sum(axis=-1) / x.dtype.type(end - start)
    return np.moveaxis(y, -1, axis)


def window_means_adjoint(g, axis, size):
    """The gradient of window_means for g (its output's gradient): each value of g
    divided by its window's cell count, added over the window's ``size``-long axis."""
    moved = np.moveaxis(g, axis, -1)
    grad = np.zeros(moved.shape[:-1] + (size,), g.dtype)
    for i, (start, end) in enumerate(_window_bounds(size, moved.shape[-1])):
        grad[..., start:end] += (moved[..., i] / g.dtype.type(end - start))[..., None]
    return np.moveaxis(grad, -1, axis)


def adaptive_sizes(name, dims, output_size):
    """output_size (an int, or a tuple of ``dims`` ints, None keeping that input size in a
    2-D or 3-D pool) as a tuple of ``dims`` entries. PyTorch's TypeError for None where an
    int belongs (the whole size, or an entry of a 1-D pool's), a ValueError for a wrong
    length or a negative size; 0 is PyTorch's empty output."""
    output_size = int_items(output_size)
    tupled = isinstance(output_size, (tuple, list))
    sizes = tuple(output_size) if tupled else (output_size,) * dims
    if (output_size is None) or (dims == 1 and None in sizes):
        raise TypeValueError(f"{name}: expected output_size to be an int or a tuple of "
                             f"{dims} ints (None only as an entry of a 2-D or 3-D "
                             f"pool's), got {output_size!r}")
    if len(sizes) != dims or any(
            v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Integral)
                               or v < 0) for v in sizes):
        raise ValueError(f"{name}: expected output_size to be a non-negative int, None "
                         f"or a tuple of {dims} of them, got {output_size!r}")
    check_int64(name, "output_size", (v for v in sizes if v is not None))
    return tuple(None if v is None else int(v) for v in sizes)


def global_mean_shortcut(layer, shape):
    """True where PyTorch's adaptive average pooling takes its shortcut for an output of
    ones, the mean over the last ``dims`` axes of an input of any rank (at least dims, more
    for a tuple output_size; an empty axis gives NaN), and the pooling kernels would refuse
    the input (another rank, an empty axis); within their ranks the kernels run as before."""
    dims = layer.dims
    if not layer._mean_shortcut or len(shape) < dims + isinstance(layer.output_size,
                                                                  (tuple, list)):
        return False
    if any((n if t is None else t) != 1 for t, n in zip(layer._sizes, shape[-dims:])):
        return False
    ranks = (dims + 1, dims + 2)
    return len(shape) not in ranks or 0 in shape[len(shape) - dims - (len(shape) == ranks[1]):]


def mean_forward(x, dims):
    """x's mean over its last dims axes, kept as axes of size 1 (NaN for an empty one)."""
    host = _device.to_host(x)
    count = host.dtype.type(math.prod(host.shape[host.ndim - dims:]))
    with np.errstate(invalid="ignore", divide="ignore"):   # (0 / 0: NaN, as PyTorch)
        y = host.sum(axis=tuple(range(-dims, 0)), keepdims=True) / count
    return _device.namespace_of(x).put(np.ascontiguousarray(y, dtype=x.dtype))


def mean_backward(grad_out, shape, dims):
    """The gradient of mean_forward: grad_out spread evenly over each mean's cells."""
    count = math.prod(shape[len(shape) - dims:])
    g = _device.to_host(grad_out)
    with np.errstate(invalid="ignore", divide="ignore"):
        grad = np.broadcast_to(g / g.dtype.type(max(count, 1)), shape)
    return _device.namespace_of(grad_out).put(np.array(grad, dtype=g.dtype))


class AdaptiveAvgPool2d(Module):
    """Mean over PyTorch's adaptive windows, giving an output of ``output_size``.

    output_size: an int or a pair (height, width), an entry None keeping that input
    size; 1 is global average pooling. Input (N, C, H, W) or unbatched (C, H, W);
    output (N, C, H_out, W_out). When the output sizes divide the input sizes the
    windows are a plain average pooling (kernel = stride = H // H_out, the avg_pool2d
    kernels of the backend, on the GPU too); otherwise windows overlap or differ in size
    and the layer averages with two small matrices, on the host (NumPy; a device array
    goes through the host).
    """

    dims = 2
    _mean_shortcut = True   # PyTorch's mean for an output of ones (global_mean_shortcut)

    def __init__(self, output_size):
        super().__init__()
        adaptive_sizes(type(self).__name__, self.dims, output_size)   # (checks it)
        self.output_size = int_items(output_size)  # as given, as PyTorch keeps it
        self._ctx = None  # (input (N, C, H, W) shape, plan) of the last forward

    _derived_from = frozenset({"output_size"})

    def _derive(self):
        """output_size as a tuple of ints or None (read at the forward after it was set)."""
        return adaptive_sizes(type(self).__name__, self.dims, self.output_size)

    _sizes = property(Module._derived)

    def _target(self):
        """(H_out, W_out) of the 2-D computation, None entries keeping the input size."""
        return self._sizes

    def infer_shape(self, shape, dtype):
        shape = tuple(shape)
        if global_mean_shortcut(self, shape):
            check_float_dtype(self._where(), dtype)
            return shape[:-2] + (1, 1)
        return self._shape_2d(shape, dtype)

    def _shape_2d(self, shape, dtype):
        shape = tuple(shape)
        where = self._where()
        if len(shape) not in (3, 4) or 0 in shape[-2:]:
            raise RuntimeValueError(f"{where}: expected input of shape (N, C, H, W) or "
                                    f"(C, H, W) with H, W > 0, got {shape}")
        check_float_dtype(where, dtype)
        oh, ow = (s if t is None else t for t, s in zip(self._target(), shape[-2:]))
        return shape[:-2] + (oh, ow)

    def _plan(self, shape):
        """('pool', kernel) when the output sizes divide the input's, else 'matrices'."""
        shape = tuple(shape)  # (the CUDA simulator's shapes refuse negative indices)
        h, w = shape[-2:]
        oh, ow = self._shape_2d(shape, np.float32)[-2:]
        if oh and ow and h % oh == 0 and w % ow == 0:   # (0: PyTorch's empty output)
            return ("pool", (h // oh, w // ow))
        return ("matrices", None)

    def _forward(self, x, buffered):
        if global_mean_shortcut(self, tuple(x.shape)):
            self._ctx = ("mean", tuple(x.shape))
            return mean_forward(x, 2)
        unbatched = x.ndim == 3
        x = add_batch_axis(x)
        plan = self._plan(x.shape)
        self._ctx = (tuple(x.shape), plan, unbatched)
        out_shape = self._shape_2d(x.shape, x.dtype)
        if plan[0] == "pool":
            out = self._buffer("y", out_shape, x.dtype) if buffered else None
            y = self._pool_forward(x, plan[1], out_shape, out)
        else:
            y = _device.namespace_of(x).put(self._windows_forward(_device.to_host(x),
                                                                  out_shape))
        return drop_batch_axis(y, unbatched)

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        if self._ctx[0] == "mean":
            return mean_backward(grad_out, self._ctx[1], 2)
        shape, plan, unbatched = self._ctx
        grad_out = add_batch_axis(grad_out)
        if plan[0] == "pool":
            grad_in = self._buffer("grad_in", shape, grad_out.dtype) if buffered else None
            grad_in = self._pool_backward(grad_out, shape, plan[1], grad_in)
        else:
            grad_in = _device.namespace_of(grad_out).put(
                self._windows_backward(_device.to_host(grad_out), shape))
        return drop_batch_axis(grad_in, unbatched)

    # The two plans: windows that tile the input (a pooling kernel with kernel = stride,
    # on the layer's device) and any others (NumPy on host arrays, (N, C, H, W)).
    def _pool_forward(self, x, kernel, out_shape, out):
        return self._kernels().avg_pool2d_forward(x, kernel, kernel, (0, 0), True, out=out)

    def _pool_backward(self, grad_out, shape, kernel, grad_in):
        return self._kernels().avg_pool2d_backward(grad_out, shape, kernel, kernel, (0, 0),
                                                   True, grad_in=grad_in)

    def _windows_forward(self, x, out_shape):
        a_h, a_w = self._matrices(x.shape, x.dtype)
        with np.errstate(invalid="ignore", over="ignore"):  # NaN and inf as PyTorch's
            y = np.einsum("ih,nchw,jw->ncij", a_h, x, a_w, optimize=True)
            if not np.isfinite(y).all():  # a NaN or inf in x: window by window
                y = window_means(window_means(x, 3, out_shape[3]), 2, out_shape[2])
        return y

    def _windows_backward(self, grad_out, shape):
        a_h, a_w = self._matrices(shape, grad_out.dtype)
        with np.errstate(invalid="ignore", over="ignore"):
            grad = np.einsum("ih,ncij,jw->nchw", a_h, grad_out, a_w, optimize=True)
            if not np.isfinite(grad).all():
                grad = window_means_adjoint(window_means_adjoint(grad_out, 2, shape[2]), 3,
                                            shape[3])
        return grad

    def _matrices(self, shape, dtype):
        shape = tuple(shape)
        oh, ow = self._shape_2d(shape, dtype)[-2:]
        key = (tuple(shape[-2:]), oh, ow, np.dtype(dtype))
        cached = self._scratch.get("matrices")
        if cached is None or cached[0] != key:
            cached = (key, (_window_matrix(shape[-2], oh, dtype),
                            _window_matrix(shape[-1], ow, dtype)))
            self._scratch["matrices"] = cached
        return cached[1]

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(As1d, AdaptiveAvgPool2d):
    """Mean over PyTorch's adaptive windows of (N, C, L) or unbatched (C, L) input:
    AdaptiveAvgPool2d on an (N, C, 1, L) view. output_size: an int (or a 1-tuple)."""

    dims = 1
    _mean_shortcut = False   # (PyTorch's 1-D pools take (N, C, L) or (C, L) only)

    def _target(self):
        return (1,) + self._sizes

    def _empty_mean(self, shape):
        """True for an output of 1 from an empty L: PyTorch's mean shortcut of its 2-D
        pool on the (N, C, 1, L) view, NaN (the kernels refuse an empty axis)."""
        return self._sizes == (1,) and len(shape) in (2, 3) and shape[-1] == 0

    def infer_shape(self, shape, dtype):
        shape = self._check_1d(shape)
        if self._empty_mean(shape):
            check_float_dtype(self._where(), dtype)
            return shape[:-1] + (1,)
        return super().infer_shape(shape, dtype)

    def _forward(self, x, buffered):
        if self._empty_mean(tuple(x.shape)):   # (N, C, 0) -> (N, C, 1) of NaN
            self._ctx = ("mean", tuple(x.shape[:-1]) + (1, 0))   # (the backward's view)
            return mean_forward(x, 1)
        return super()._forward(x, buffered)


def _check_batched_channels(layer, shape):
    """PyTorch's adaptive max pools refuse a batched input without channels (an
    unbatched one may have none)."""
    if len(shape) == layer.dims + 2 and shape[1] == 0:
        raise RuntimeValueError(f"{layer._where()}: expected input with non-zero channels, "
                                f"got {tuple(shape)}")


def _window_bounds(size, out):
    """PyTorch's adaptive windows along one axis: [(start, end)] for each output index."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


class _AdaptiveMax(ReturnsIndices):
    """Mixin of AdaptiveMaxPool2d and AdaptiveMaxPool3d, before their AdaptiveAvgPool
    base: PyTorch's constructor arguments (return_indices checked first) and
    ReturnsIndices' forward; no mean shortcut for a global window."""

    _mean_shortcut = False

    def __init__(self, output_size, return_indices=False):
        return_indices = check_bool(type(self).__name__, "return_indices", return_indices)
        super().__init__(output_size)
        self.return_indices = return_indices
        self._indices = None


class AdaptiveMaxPool2d(_AdaptiveMax, AdaptiveAvgPool2d):
    """Maximum over PyTorch's adaptive windows, giving an output of ``output_size`` (an int
    or a pair, None keeping that input size). Output sizes that divide the input's run the
    backend's max_pool2d kernels (kernel = stride = H // H_out; on the GPU too); other
    sizes (overlapping windows) loop over the output positions with NumPy on the host.
    return_indices=True: ``forward`` returns (output, indices), the flat h * W + w of each
    maximum in its plane, as MaxPool2d's. Input (N, C, H, W) or unbatched (C, H, W)."""

    def infer_shape(self, shape, dtype):
        _check_batched_channels(self, shape)
        return super().infer_shape(shape, dtype)

    def _pool_forward(self, x, kernel, out_shape, out):
        y, indices = self._kernels().max_pool2d_forward(
            x, kernel, kernel, (0, 0), out=out,
            indices=self._backward_buffer("indices", out_shape, "int64"))
        keep_indices(self, indices)
        return y

    def _pool_backward(self, grad_out, shape, kernel, grad_in):
        return self._kernels().max_pool2d_backward(grad_out, self._indices, shape,
                                                   grad_in=grad_in)

    def _windows_forward(self, x, out_shape):
        """The maximum of each window by a loop over the output positions, and its flat
        index h * W + w (PyTorch's: the first maximum, or the last NaN)."""
        n, c, h, w = x.shape
        y = np.empty(out_shape, x.dtype)
        indices = np.empty(out_shape, np.int64)
        for i, (h0, h1) in enumerate(_window_bounds(h, out_shape[2])):
            for j, (w0, w1) in enumerate(_window_bounds(w, out_shape[3])):
                window = x[:, :, h0:h1, w0:w1].reshape(n, c, (h1 - h0) * (w1 - w0))
                best = last_nan_or_argmax(window)
                y[:, :, i, j] = np.take_along_axis(window, best[..., None], 2)[..., 0]
                indices[:, :, i, j] = (h0 + best // (w1 - w0)) * w + w0 + best % (w1 - w0)
        keep_indices(self, indices)
        return y

    def _windows_backward(self, grad_out, shape):
        """Each output gradient added at its maximum (overlapping windows add)."""
        n, c = shape[:2]
        grad_in = np.zeros((n * c, shape[2] * shape[3]), grad_out.dtype)
        cells = grad_out.shape[-2] * grad_out.shape[-1]  # (explicit: n may be 0)
        np.add.at(grad_in, (np.arange(n * c)[:, None], self._indices.reshape(n * c, cells)),
                  grad_out.reshape(n * c, cells))
        return grad_in.reshape(shape)


class AdaptiveMaxPool1d(As1d, AdaptiveMaxPool2d):
    """Maximum over PyTorch's adaptive windows of (N, C, L) or unbatched (C, L) input:
    AdaptiveMaxPool2d on an (N, C, 1, L) view (indices are positions along L)."""

    dims = 1

    def infer_shape(self, shape, dtype):
        _check_batched_channels(self, shape)
        return super().infer_shape(shape, dtype)

    def _target(self):
        return (1,) + self._sizes
