"""Volumetric pooling over (N, C, D, H, W) input: PyTorch's MaxPool3d, AvgPool3d, LPPool3d,
AdaptiveAvgPool3d, AdaptiveMaxPool3d and MaxUnpool3d, computed with NumPy on the host (a
device array goes through the host and comes back).

The window layers loop over the kernel offsets only: each offset reads one strided block
of the padded input (one output-sized array), and the blocks are combined elementwise
(a running maximum and its index, or a running sum), in PyTorch's order of the taps
(depth, then height, then width). MaxPool3d on the compiled backends instead runs their
2-D max-pool kernel on every depth slice, then over depth on the slices' winners. Backward
adds each output gradient to the cells it came from: one strided addition per offset
(average), or the backend's max_pool2d_backward over the maxima's flat indices, each
volume one row (maximum). Adaptive average pooling is three small averaging matrices,
one per axis, applied by matrix products.
"""
import math

import numpy as np

from .. import backend, device as _device
from ..errors import RuntimeValueError
from ..kernels.window_shapes import window_out_size
from ..validation import check_bool, check_float_dtype, int_items
from .adaptive import (_AdaptiveMax, _window_matrix, adaptive_sizes, global_mean_shortcut,
                       mean_backward, mean_forward, window_means, window_means_adjoint)
from .conv import check_no_empty_axes
from .conv3d import ALL, _batched, kernel_offsets, tap_slices, triple
from .module import Module
from .pooling import (MaxUnpool2d, ReturnsIndices, _AvgPoolArgs, abs_extreme_backward,
                      abs_extreme_forward, check_norm_type, default_stride, keep_indices,
                      lp_mean_grad, lp_of_mean)


def _scatter(grad_out, indices, in_shape):
    """The gradient of a max pooling: each value of grad_out (N, C, *out) added at its
    flat index (d * H * W + h * W + w) of its (n, c) plane of a zero (N, C, D, H, W)
    (the backend's max_pool2d_backward, each volume one row of cells). An index outside
    the plane (PyTorch's for a window wholly in the padding, whose -inf output no input
    moves) adds nothing."""
    n, c = in_shape[:2]
    volume, windows = math.prod(in_shape[2:]), math.prod(grad_out.shape[2:])
    grad_in = _host_kernels().max_pool2d_backward(
        _device.c_contiguous(grad_out).reshape(n, c, 1, windows),
        _device.c_contiguous(indices).reshape(n, c, 1, windows), (n, c, 1, volume))
    return grad_in.reshape(in_shape)


def _host_kernels():
    """The current backend when it runs on the host, else (the cuda backend: these
    layers compute on the host) the numpy one."""
    kernels = _device.kernels("cpu")
    return kernels if kernels.name != "cuda" else backend.load("numpy")


def _max_pool_by_slices(kernels, host, out, kernel, stride, padding, dilation, ceil_mode,
                        first_cells):
    """(maxima, indices) of a 3-D max pool of host (N, C, D, H, W) to out (D_out, H_out,
    W_out) by two passes of the backend's 2-D kernel: every depth slice's (H, W) windows,
    then the depth windows over those winners, each (n, c) read as a (D, H_out * W_out)
    plane pooled by (kD, 1) windows. A window's slices are consecutive runs of its taps
    (PyTorch's order: depth, height, width), so the first maximum and the last NaN over
    the slices' winners are the window's, and a window of -inf keeps its first slice's
    first cell inside the input; first_cells() gives the (D_out, H_out, W_out) indices
    of windows whose depth taps all miss the input (PyTorch's). kernel, stride, padding,
    dilation: triples. 4x16x32x32x32, 3x3x3 stride 2 padding 1, 2 threads, forward:
    49-50 ms by the loop over offsets, 10-14 ms with the depth pass in NumPy, 4.9-7.1 ms
    with it in the kernel (PyTorch 9.1-9.3 ms)."""
    n, c, depth, h, w = host.shape
    planes, plane_at = kernels.max_pool2d_forward(
        _device.c_contiguous(host).reshape(n, c * depth, h, w), kernel[1:], stride[1:],
        padding[1:], ceil_mode=ceil_mode, dilation=dilation[1:])
    cells = out[1] * out[2]
    best, depth_at = kernels.max_pool2d_forward(
        planes.reshape(n, c, depth, cells), (kernel[0], 1), (stride[0], 1), (padding[0], 0),
        ceil_mode=ceil_mode, dilation=(dilation[0], 1))
    slices = depth_at // cells   # (depth_at % cells is the output cell itself)
    inside = slices < depth      # (none: a window whose depth taps all miss)
    np.minimum(slices, depth - 1, out=depth_at)
    indices = np.take_along_axis(plane_at.reshape(n, c, depth, cells), depth_at, axis=2)
    indices += slices * (h * w)
    if not inside.all():
        first = first_cells().reshape(out[0], cells)
        np.copyto(indices, np.broadcast_to(first, indices.shape), where=~inside)
    return best.reshape((n, c) + tuple(out)), indices.reshape((n, c) + tuple(out))


def _flat_index(pos_d, pos_h, pos_w, spatial):
    """The flat index d * H * W + h * W + w of the grid of positions pos_d x pos_h x pos_w
    (each a 1-D array along its axis), as a (D_out, H_out, W_out) array."""
    _, h, w = spatial
    return ((pos_d[:, None, None] * h + pos_h[None, :, None]) * w
            + pos_w[None, None, :]).astype(np.int64)


class _OnHost(Module):
    """A 3-D layer computed on the host: ``_pool(host)`` forward and ``_unpool(g)``
    backward on (N, C, D, H, W) arrays; an unbatched (C, D, H, W) input gets a batch axis
    and a device array goes through the host. A NaN or inf in the input gives NaN or inf
    outputs without NumPy's warnings, as PyTorch's (no warning either)."""

    def _forward(self, x, buffered):
        host, unbatched = _batched(x)
        with np.errstate(invalid="ignore", over="ignore"):
            y = self._pool(host)
        return _device.namespace_of(x).put(y[0] if unbatched else y)

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        g, unbatched = _batched(grad_out)
        with np.errstate(invalid="ignore", over="ignore"):
            grad_in = self._unpool(g)
        return _device.namespace_of(grad_out).put(grad_in[0] if unbatched else grad_in)


class _Pool3d(_OnHost):
    """Shared arguments and checks of the window layers. kernel_size, stride (None:
    kernel_size), padding: an int or a triple, kept as given (PyTorch's repr shows them
    so); padding at most half of the kernel size, as PyTorch requires. ceil_mode=True:
    output sizes rounded up, less one if the last window would start in the far padding
    (PyTorch's rule); the last windows may then run past the padding."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, dilation=1):
        super().__init__()
        name = type(self).__name__
        self.ceil_mode = check_bool(name, "ceil_mode", ceil_mode)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self._derived()   # (checks them)
        self._ctx = None

    _derived_from = frozenset({"kernel_size", "stride", "padding", "dilation"})

    def _derive(self):
        """(kernel_size, stride, padding, dilation) as triples, checked (at construction,
        and at the forward after one was set: PyTorch reads them at each call)."""
        name = type(self).__name__
        k = triple(name, "kernel_size", self.kernel_size, 1, one=True)
        s = k if default_stride(self.stride) else triple(name, "stride", self.stride, 1,
                                                         one=True)
        p = triple(name, "padding", self.padding, 0, one=True)
        d = triple(name, "dilation", getattr(self, "dilation", 1), 1, one=True)
        if any(pad > size // 2 for pad, size in zip(p, k)):
            raise RuntimeValueError(f"{name}: pad should be at most half of kernel size, got "
                                    f"padding {p} and kernel_size {k}")
        return k, s, p, d

    _k = property(lambda self: self._derived()[0])
    _s = property(lambda self: self._derived()[1])
    _p = property(lambda self: self._derived()[2])
    _d = property(lambda self: self._derived()[3])

    def _grid(self, shape):
        """(D_out, H_out, W_out) for an input of this shape; raises when there is none."""
        check_no_empty_axes(self._where(), shape, 4, "channels and spatial sizes")
        spatial = tuple(shape[-3:])
        out = tuple(window_out_size(n, k, s, p, self.ceil_mode, d) for n, k, s, p, d in zip(
            spatial, self._k, self._s, self._p, self._d))
        if min(out) < 1:
            padded = tuple(n + 2 * p for n, p in zip(spatial, self._p))
            raise RuntimeValueError(f"{self._where()}: kernel size {self._k} (dilation {self._d}) "
                                    f"is larger than the padded input {padded} of an input of "
                                    f"shape {tuple(shape)}: output size {out}")
        return out

    def infer_shape(self, shape, dtype):
        shape = tuple(shape)  # (the CUDA simulator's shapes refuse negative indices)
        if len(shape) not in (4, 5):
            raise RuntimeValueError(f"{self._where()}: expected input of shape (N, C, D, H, W) or "
                                    f"(C, D, H, W), got {shape}")
        check_float_dtype(self._where(), dtype)
        return shape[:-3] + self._grid(shape)

    def _padded(self, host, out, value):
        """host with the padding (value) around, and past the far padding as far as the
        last (ceil_mode) windows reach."""
        widths = [(0, 0), (0, 0)]
        for n, k, s, p, d, o in zip(host.shape[2:], self._k, self._s, self._p, self._d, out):
            widths.append((p, max((o - 1) * s + d * (k - 1) + 1 - n - p, 0)))
        if not any(map(any, widths)):
            return host
        return np.pad(host, widths, constant_values=host.dtype.type(value))

    def _starts(self, out):
        """Each axis's window starts in input coordinates (negative in the padding)."""
        return [np.arange(o, dtype=np.int64) * s - p
                for o, s, p in zip(out, self._s, self._p)]

class MaxPool3d(ReturnsIndices, _Pool3d):
    """Maximum over each window of (N, C, D, H, W) or unbatched (C, D, H, W) input
    (PyTorch's MaxPool3d); padding counts as -inf (it never wins).

    kernel_size, stride (None: kernel_size), padding, dilation: an int or a triple;
    D_out = (D + 2 padding - dilation (kD - 1) - 1) // stride + 1 (ceil_mode: rounded
    up, see _Pool3d). The maximum is PyTorch's: the first of equal maxima, a NaN wins
    (the last NaN of a window). return_indices=True: ``forward`` returns (output,
    indices), indices an int64 array of the output's shape holding each maximum's flat
    position d * H * W + h * W + w in its (n, c) volume (PyTorch's; the input of
    MaxUnpool3d); inside a Sequential only the output passes on. Backward sends each
    output gradient to its window's maximum (overlapping windows add).
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices=False, ceil_mode=False):
        return_indices = check_bool(type(self).__name__, "return_indices", return_indices)
        self.dilation = dilation   # (before _Pool3d's checks, which read it)
        super().__init__(kernel_size, stride, padding, ceil_mode, dilation)
        self.return_indices = return_indices
        self._indices = None

    def _pool(self, host):
        out = self._grid(host.shape)
        kernels = _host_kernels()
        if kernels.name == "numpy":   # (its 2-D kernel is itself a loop over offsets)
            best, indices = self._pool_by_offsets(host, out)
        else:
            best, indices = _max_pool_by_slices(
                kernels, host, out, self._k, self._s, self._p, self._d, self.ceil_mode,
                lambda: self._first_cells(out, host.shape[2:]))
        keep_indices(self, indices)
        self._ctx = host.shape
        return best

    def _pool_by_offsets(self, host, out):
        """(maxima, indices): one strided block of the padded input per kernel offset,
        combined elementwise."""
        padded = self._padded(host, out, -np.inf)
        starts = self._starts(out)
        best = np.full(host.shape[:2] + out, -np.inf, host.dtype)
        indices = np.empty(best.shape, np.int64)
        indices[...] = self._first_cells(out, host.shape[2:])
        for offset in kernel_offsets(self._k):
            v = padded[ALL + tap_slices(offset, self._d, self._s, out)]
            wins = v > best
            wins |= np.isnan(v)
            np.copyto(best, v, where=wins)
            taps = [b + o * d for b, o, d in zip(starts, offset, self._d)]
            np.copyto(indices, _flat_index(*taps, host.shape[2:]), where=wins)
        return best, indices

    def _first_cells(self, out, spatial):
        """(D_out, H_out, W_out): the flat index of each window's first cell inside the
        input, past its end on an axis where the window holds none (PyTorch's index
        for a window of -inf)."""
        starts = self._starts(out)
        first = [np.where(b < 0, b + (-b + d - 1) // d * d, b) for b, d in zip(starts, self._d)]
        return _flat_index(*first, spatial)

    def _unpool(self, g):
        return _scatter(g, self._indices, self._ctx)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool3d(_AvgPoolArgs, _Pool3d):
    """Mean over each window of (N, C, D, H, W) or unbatched (C, D, H, W) input
    (PyTorch's AvgPool3d), zero padding. The window's sum (in PyTorch's order of the
    taps) is divided by kD * kH * kW with count_include_pad=True (PyTorch's default;
    fewer where a ceil_mode window runs past the padding), by the number of input cells
    in the window with False, or by divisor_override (a non-zero int) when given.
    kernel_size, stride (None: kernel_size), padding: an int or a triple.
    """

    def infer_shape(self, shape, dtype):
        out = super().infer_shape(shape, dtype)
        spatial = tuple(shape)[-3:]
        if any(n < k for n, k in zip(spatial, self._k)):  # PyTorch's avg_pool3d check
            raise RuntimeValueError(f"{self._where()}: the input {spatial} (padding aside) is "
                                    f"smaller than the kernel size {self._k}")
        return out

    def _divisor(self, spatial, out, dtype):
        """Each window's divisor, an array broadcasting to (D_out, H_out, W_out)."""
        if self.divisor_override is not None:
            return dtype.type(self.divisor_override)
        counts = []
        for n, k, p, b in zip(spatial, self._k, self._p, self._starts(out)):
            end = np.minimum(b + k, n + p)
            counts.append(end - b if self.count_include_pad
                          else np.minimum(end, n) - np.maximum(b, 0))
        d, h, w = counts
        return (d[:, None, None] * h[None, :, None] * w[None, None, :]).astype(dtype)

    def _pool(self, host):
        out = self._grid(host.shape)
        padded = self._padded(host, out, 0.0)
        total = None
        for offset in kernel_offsets(self._k):
            v = padded[ALL + tap_slices(offset, self._d, self._s, out)]
            if total is None:
                total = v.copy()
            else:
                total += v
        self._ctx = (host.shape, padded.shape, out)
        return total / self._divisor(host.shape[2:], out, host.dtype)

    def _unpool(self, g):
        shape, padded_shape, out = self._ctx
        share = g / self._divisor(shape[2:], out, g.dtype)
        grad = np.zeros(padded_shape, g.dtype)
        for offset in kernel_offsets(self._k):
            grad[ALL + tap_slices(offset, self._d, self._s, out)] += share
        crop = tuple(slice(p, p + n) for p, n in zip(self._p, shape[2:]))
        return _device.c_contiguous(grad[ALL + crop])

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class LPPool3d(AvgPool3d):
    """Power-average pooling (PyTorch's LPPool3d): y = (sum of x^p over each window)^(1/p),
    computed as PyTorch computes it: the average pooling of x^p (no padding; ceil_mode
    windows cut at the edge and averaged over their cells) times kD * kH * kW, to the
    power 1/p. So p = 2 with negative inputs is the windows' Euclidean norm, a
    non-integer p with a negative input or window sum gives NaN, and a window whose sum
    is 0 has gradient 0; p = +-inf: the windows' largest (least) |x|, as PyTorch 2.13.
    norm_type: p (a non-zero number or +-inf); kernel_size, stride (None:
    kernel_size): an int or a triple. Input (N, C, D, H, W) or unbatched (C, D, H, W).
    """

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False):
        check_norm_type(type(self).__name__, norm_type)
        # PyTorch unpacks the kernel size into its three sizes: no 1-tuple for all
        triple(type(self).__name__, "kernel_size", kernel_size, 1)
        super().__init__(kernel_size, stride, 0, ceil_mode)
        self.norm_type = norm_type
        self.stride = stride  # PyTorch's LPPool keeps (and shows) the stride as given

    def infer_shape(self, shape, dtype):
        if np.isinf(self.norm_type):
            # PyTorch's +-inf runs max_pool3d, without avg_pool3d's input >= kernel check
            return _Pool3d.infer_shape(self, shape, dtype)
        return super().infer_shape(shape, dtype)

    def _pool(self, host):
        p = host.dtype.type(self.norm_type)
        if np.isinf(p):
            pool = MaxPool3d(self._k, self._s, ceil_mode=self.ceil_mode)
            y, ctx = abs_extreme_forward(host, lambda a: (pool._pool(a), pool), p)
            self._lp = ctx
            return y
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            mean = super()._pool(host ** p)
            total, y = lp_of_mean(mean, p, np.prod(self._k))
        self._lp = (host, mean, total)
        return np.asarray(y, host.dtype)

    def _unpool(self, g):
        if np.isinf(self.norm_type):
            return abs_extreme_backward(g, self._lp, lambda a, pool: pool._unpool(a))
        host, mean, total = self._lp
        dt = host.dtype.type
        p = dt(self.norm_type)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            grad_mean = lp_mean_grad(g, mean, total, p, np.prod(self._k))
            grad = super()._unpool(grad_mean) * p * host ** (p - dt(1))
        return _device.c_contiguous(grad, host.dtype)

    def extra_repr(self):
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, ceil_mode={self.ceil_mode}")


def _adaptive_bounds(size, out):
    """PyTorch's adaptive windows along one axis: (starts, ends), window i covering
    [floor(i * size / out), ceil((i + 1) * size / out))."""
    i = np.arange(out, dtype=np.int64)
    return (i * size) // out, -((-(i + 1) * size) // out)


class AdaptiveAvgPool3d(_OnHost):
    """Mean over PyTorch's adaptive windows of (N, C, D, H, W) or unbatched (C, D, H, W)
    input, giving an output of ``output_size``: an int or a triple (depth, height,
    width), an entry None keeping that input size; 1 is global average pooling, 0 an
    empty output (PyTorch's). Three small averaging matrices (one per axis) applied by
    matrix products."""

    _derived_from = frozenset({"output_size"})

    def _derive(self):
        """output_size as a triple of ints or None (read at the forward after it was
        set)."""
        return adaptive_sizes(type(self).__name__, 3, self.output_size)

    _sizes = property(Module._derived)

    def __init__(self, output_size):
        super().__init__()
        adaptive_sizes(type(self).__name__, 3, output_size)   # (checks it)
        self.output_size = int_items(output_size)  # as given, as PyTorch keeps it
        self._ctx = None

    dims = 3
    _mean_shortcut = True   # PyTorch's mean for an output of ones (global_mean_shortcut)

    def infer_shape(self, shape, dtype):
        shape = tuple(shape)
        where = self._where()
        if global_mean_shortcut(self, shape):
            check_float_dtype(where, dtype)
            return shape[:-3] + (1, 1, 1)
        if len(shape) not in (4, 5) or 0 in shape[1:]:   # (PyTorch's: C may be 0 unbatched)
            raise RuntimeValueError(f"{where}: expected input of shape (N, C, D, H, W) or "
                                    f"(C, D, H, W) with non-zero D, H, W (and C, "
                                    f"batched), got {shape}")
        check_float_dtype(where, dtype)
        return shape[:-3] + tuple(n if t is None else t
                                  for t, n in zip(self._sizes, shape[-3:]))

    def _forward(self, x, buffered):
        if global_mean_shortcut(self, tuple(x.shape)):
            self._ctx = ("mean", tuple(x.shape))
            return mean_forward(x, 3)
        return super()._forward(x, buffered)

    def _backward(self, grad_out, buffered, need_grad_in):
        if need_grad_in and self._ctx[0] == "mean":
            return mean_backward(grad_out, self._ctx[1], 3)
        return super()._backward(grad_out, buffered, need_grad_in)

    def _out(self, host):
        """The output's (D, H, W) for a batched host input."""
        return tuple(n if t is None else t for t, n in zip(self._sizes, host.shape[2:]))

    def _pool(self, host):
        n, c, d, h, w = host.shape
        out = self._out(host)
        if 0 in out:   # PyTorch's empty output (an output_size entry 0)
            self._ctx = (host.shape, None)
            return np.zeros((n, c) + tuple(out), host.dtype)
        a_d, a_h, a_w = (_window_matrix(size, o, host.dtype)
                         for size, o in zip(host.shape[2:], out))
        t = (host.reshape(-1, w) @ a_w.T).reshape(n * c * d, h, out[2])  # width
        t = (a_h @ t).reshape(n * c, d, out[1] * out[2])                   # height
        y = (a_d @ t).reshape((n, c) + tuple(out))                         # depth
        if not np.isfinite(y).all():  # a NaN or inf in host: window by window
            y = host
            for axis in (4, 3, 2):
                y = window_means(y, axis, out[axis - 2])
        self._ctx = (host.shape, (a_d, a_h, a_w))
        return y

    def _unpool(self, g):
        shape, matrices = self._ctx
        if matrices is None:   # (an empty output: nothing flows back)
            return np.zeros(shape, g.dtype)
        a_d, a_h, a_w = matrices
        n, c, d, h, w = shape
        do, ho, wo = g.shape[2:]
        t = (a_d.T @ g.reshape(n * c, do, ho * wo)).reshape(n * c * d, ho, wo)
        t = (a_h.T @ t).reshape(-1, wo)
        grad = (t @ a_w).reshape(shape)
        if not np.isfinite(grad).all():  # a NaN or inf in g: window by window
            grad = g
            for axis in (2, 3, 4):
                grad = window_means_adjoint(grad, axis, shape[axis])
        return _device.c_contiguous(grad)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool3d(_AdaptiveMax, AdaptiveAvgPool3d):
    """Maximum over PyTorch's adaptive windows of (N, C, D, H, W) or unbatched
    (C, D, H, W) input (output_size as AdaptiveAvgPool3d's). The maximum is PyTorch's
    (the first of equal maxima; a NaN wins, the last NaN of a window); windows of
    different sizes are read as the largest one's taps, a tap past a window's end not
    counting (sizes that divide the input's, on the compiled backends: MaxPool3d's two
    passes of the 2-D kernel). return_indices=True: ``forward`` returns (output,
    indices), the flat d * H * W + h * W + w of each maximum in its volume, as
    MaxPool3d's."""

    def _pool(self, host):
        spatial, out = host.shape[2:], self._out(host)
        if 0 in out:   # PyTorch's empty output and indices (an output_size entry 0)
            keep_indices(self, np.zeros(host.shape[:2] + tuple(out), np.int64))
            self._ctx = host.shape
            return np.zeros(host.shape[:2] + tuple(out), host.dtype)
        kernels = _host_kernels()
        if kernels.name != "numpy" and all(size % o == 0 for size, o in zip(spatial, out)):
            # windows that tile the input: MaxPool3d's two passes of the 2-D kernel
            size = tuple(s // o for s, o in zip(spatial, out))
            best, indices = _max_pool_by_slices(kernels, host, tuple(out), size, size,
                                                (0, 0, 0), (1, 1, 1), False, None)
            keep_indices(self, indices)
            self._ctx = host.shape
            return best
        bounds = [_adaptive_bounds(size, o) for size, o in zip(spatial, out)]
        widest = tuple(int((end - start).max()) for start, end in bounds)
        best = np.full(host.shape[:2] + tuple(out), -np.inf, host.dtype)
        indices = np.empty(best.shape, np.int64)
        indices[...] = _flat_index(*(start for start, _ in bounds), spatial)
        for offset in kernel_offsets(widest):
            taps = [start + o for (start, _), o in zip(bounds, offset)]
            inside = [t < end for t, (_, end) in zip(taps, bounds)]
            pos = [np.minimum(t, end - 1) for t, (_, end) in zip(taps, bounds)]
            v = host[:, :, pos[0][:, None, None], pos[1][None, :, None], pos[2][None, None, :]]
            wins = v > best
            wins |= np.isnan(v)
            if not all(i.all() for i in inside):
                wins &= (inside[0][:, None, None] & inside[1][None, :, None]
                         & inside[2][None, None, :])
            np.copyto(best, v, where=wins)
            np.copyto(indices, _flat_index(*pos, spatial), where=wins)
        keep_indices(self, indices)
        self._ctx = host.shape
        return best

    def _unpool(self, g):
        return _scatter(g, self._indices, self._ctx)


class MaxUnpool3d(MaxUnpool2d):
    """The partial inverse of MaxPool3d (PyTorch's MaxUnpool3d): ``forward(input, indices,
    output_size=None)`` puts each value of input at its flat position d * H * W + h * W + w
    (MaxPool3d's return_indices output) of a zero (N, C, D, H, W) output; the other
    positions stay 0. D, H, W = (D_in - 1) stride - 2 padding + kernel_size by default,
    or output_size (3 entries, or 5 with batch and channels; each within stride of the
    default, PyTorch's check). Backward gathers grad_out at the indices. Input
    (N, C, D_in, H_in, W_in) or unbatched (C, D_in, H_in, W_in)."""

    dims = 3
