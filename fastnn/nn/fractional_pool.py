"""Fractional max pooling (PyTorch's FractionalMaxPool2d and FractionalMaxPool3d, Ben
Graham's pseudo-random pooling), computed with NumPy on the host (a device array goes
through the host and comes back).

Each (n, c) plane has one sample u per spatial axis (``_random_samples`` of shape
(N, C, 2) or (N, C, 3), in the input's dtype). Along an axis of input size n, kernel k
and output size o, window i starts at PyTorch's
``int((i + u) * alpha) - int(u * alpha)``, alpha = (n - k) / (o - 1), computed in the
input's dtype and cast to int as C does (toward zero), the last window at n - k. The
2-D layer reads the width's sample first (u[0] for W, u[1] for H), the 3-D layer the
depth's (u[0], u[1], u[2] for T, H, W), as PyTorch's CPU kernels do, so the same samples
give the same windows, outputs and indices.

Forward gathers every window's taps at once: the flat index h * W + w (t * H * W + ...)
of each tap of each window of each plane, built from the per-axis starts by
broadcasting, one ``take_along_axis``, then the winner of each window (PyTorch's: the
first of equal maxima, a NaN wins, the last NaN of a window). Backward adds each output
gradient at its winner's flat index (one ``np.bincount``, MaxPool3d's helper).
"""
import math
import numbers

import numpy as np

from .. import device as _device
from .. import random as _random
from ..errors import DtypeError, RuntimeValueError
from ..validation import FLOAT_DTYPES, check_bool, check_float_dtype
from .conv import pair
from .module import Module
from .pool3d import _scatter
from .pooling import ReturnsIndices, keep_indices

_INT_MIN = -2 ** 31


def _c_int(x):
    """x cast to int as C's static_cast<int> does on x86: toward zero, and a NaN, an
    infinity or a value outside int's range becomes INT_MIN (as int64)."""
    with np.errstate(invalid="ignore"):
        fits = np.abs(x) < 2.0 ** 31  # False for NaN
    return np.where(fits, np.trunc(np.where(fits, x, 0)), _INT_MIN).astype(np.int64)


def fractional_starts(samples, size, out, kernel):
    """PyTorch's window starts along one axis for every plane: samples (P,) of the
    input's dtype, the axis's input size, output size and kernel size -> (P, out) int64.
    Start i < out - 1 is int((i + u) * alpha) - int(u * alpha), alpha = (size - kernel)
    / (out - 1), in the samples' dtype; the last start is size - kernel."""
    starts = np.empty((samples.shape[0], out), np.int64)
    if out > 1:
        dt = samples.dtype.type
        alpha = dt(size - kernel) / dt(out - 1)
        steps = np.arange(out - 1, dtype=samples.dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            starts[:, :-1] = (_c_int((steps[None, :] + samples[:, None]) * alpha)
                              - _c_int(samples * alpha)[:, None])
    if out > 0:
        starts[:, -1] = size - kernel
    return starts


def _ratios(name, output_ratio, dims):
    """output_ratio as a tuple of dims numbers, each in (0, 1) (PyTorch's check)."""
    items = (tuple(output_ratio) if isinstance(output_ratio, (tuple, list))
             else (output_ratio,) * dims)
    if len(items) != dims:
        raise ValueError(f"{name}: expected output_ratio to be a number or a tuple of {dims} "
                         f"numbers, got {output_ratio!r}")
    for r in items:
        if isinstance(r, bool) or not isinstance(r, numbers.Real):
            raise TypeError(f"{name}: expected output_ratio to be a number or a tuple of "
                            f"{dims} numbers, got {output_ratio!r}")
        if not 0 < r < 1:
            raise ValueError(f"{name}: output_ratio must be between 0 and 1 (got "
                             f"{output_ratio!r})")
    return items


class _FractionalMaxPool(ReturnsIndices, Module):
    """Shared arguments, checks and kernel of FractionalMaxPool2d / 3d (see the module
    docstring). ``dims``: the spatial axes; ``sample_of_axis``: which sample each spatial
    axis reads (PyTorch's order); ``strict``: PyTorch's 3-D size check
    (o + k - 1 < n) instead of the 2-D one (o + k - 1 <= n)."""

    dims = None
    sample_of_axis = None
    strict = False
    axis_names = None

    def __init__(self, kernel_size, output_size=None, output_ratio=None,
                 return_indices=False, _random_samples=None):
        name, n = type(self).__name__, self.dims
        kernel = pair(name, "kernel_size", kernel_size, 1, n)
        if output_size is None and output_ratio is None:
            raise ValueError(f"{name} requires specifying either an output size, or a "
                             f"pooling ratio")
        if output_size is not None and output_ratio is not None:
            raise ValueError(f"{name}: only one of output_size and output_ratio may be "
                             f"specified")
        sizes = None if output_size is None else pair(name, "output_size", output_size, 0, n)
        ratios = None if output_ratio is None else _ratios(name, output_ratio, n)
        return_indices = check_bool(name, "return_indices", return_indices)
        super().__init__()
        self.kernel_size = kernel
        self.output_size = sizes
        self.output_ratio = ratios
        self.return_indices = return_indices
        self.register_buffer("_random_samples", _random_samples)
        if _random_samples is not None:
            self._check_samples(_random_samples)
        self._indices = None
        self._last_samples = None  # the samples of the last forward (given or drawn)
        self._in_shape = None

    # ------------------------------------------------------------------ checks
    def _where(self):
        # PyTorch's repr is a bare FractionalMaxPool2d(); errors say more
        what = (f"output_size={self.output_size}" if self.output_size is not None
                else f"output_ratio={self.output_ratio}")
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, {what})"

    def _check_samples(self, samples, shape=None, dtype=None):
        """_random_samples: a float (N, C, dims) array; with an input's shape and dtype
        also its dtype, N >= the batch and C the channels (PyTorch's checks)."""
        where = self._where()
        if not _device.is_array(samples) or samples.dtype not in FLOAT_DTYPES:
            got = samples.dtype if _device.is_array(samples) else type(samples).__name__
            raise DtypeError(f"{where}: expected _random_samples to be a float32 or float64 "
                             f"array, got {got}")
        s = tuple(samples.shape)
        if len(s) != 3 or s[2] != self.dims:
            raise ValueError(f"{where}: expected _random_samples of shape (N, C, {self.dims}), "
                             f"got {s}")
        if shape is None:
            return
        batch, channels = (1, shape[0]) if len(shape) == self.dims + 1 else shape[:2]
        if samples.dtype != dtype:
            raise DtypeError(f"{where}: _random_samples of dtype {samples.dtype} do not match "
                             f"the input dtype {dtype}")
        if s[0] < batch or s[1] != channels:
            raise ValueError(f"{where}: expected _random_samples of shape (N >= {batch}, "
                             f"{channels}, {self.dims}) for an input of shape {shape}, got {s}")

    def _out_size(self, spatial):
        """The output's spatial sizes: output_size, or int(size * ratio) (PyTorch's)."""
        if self.output_size is not None:
            return self.output_size
        return tuple(int(n * r) for n, r in zip(spatial, self.output_ratio))

    def infer_shape(self, shape, dtype):
        shape = tuple(shape)
        where, d = self._where(), self.dims
        if len(shape) not in (d + 1, d + 2) or 0 in shape[-d - 1:]:
            axes = ", ".join(self.axis_names)
            raise ValueError(f"{where}: expected input of shape (N, C, {axes}) or "
                             f"(C, {axes}) with non-zero C, {axes}, got {shape}")
        check_float_dtype(where, dtype)
        spatial = shape[-d:]
        out = self._out_size(spatial)
        for axis, (n, k, o) in enumerate(zip(spatial, self.kernel_size, out)):
            if o + k - 1 > n or (self.strict and o + k - 1 == n):
                need = "more than" if self.strict else "at least"
                raise RuntimeValueError(f"{where}: output size {o} with kernel size {k} needs "
                                        f"an input {self.axis_names[axis]} of {need} "
                                        f"{o + k - 1}, got {n} (input shape {shape})")
        if self._random_samples is not None:
            self._check_samples(self._random_samples, shape, dtype)
        return shape[:-d] + tuple(out)

    # ------------------------------------------------------------------ kernel
    def _samples(self, batch, channels, dtype):
        """(batch * channels, dims): the given samples' first rows, or fresh ones drawn
        uniformly in [0, 1) from a seed of fastnn's generator (``manual_seed`` makes
        them reproducible), kept in ``_last_samples`` as (batch, channels, dims)."""
        if self._random_samples is not None:
            samples = _device.to_host(self._random_samples)[:batch]
        else:
            rng = np.random.default_rng(_random.draw_seed())
            samples = rng.random((batch, channels, self.dims), dtype=dtype)
        self._last_samples = samples
        return samples.reshape(batch * channels, self.dims)

    def _flat_taps(self, samples, spatial, out):
        """(P, prod(out), prod(kernel)) int64: the flat index in its plane of every tap of
        every window, taps in PyTorch's order (first axis outermost)."""
        d, planes = self.dims, samples.shape[0]
        strides = [math.prod(spatial[axis + 1:]) for axis in range(d)]
        flat = np.zeros((planes,) + (1,) * (2 * d), np.int64)
        for axis, (n, k, o) in enumerate(zip(spatial, self.kernel_size, out)):
            starts = fractional_starts(samples[:, self.sample_of_axis[axis]], n, o, k)
            if starts.size and (starts.min() < 0 or starts.max() > n - k):
                raise ValueError(f"{self._where()}: _random_samples give windows outside the "
                                 f"input along {self.axis_names[axis]} (samples should lie "
                                 f"in [0, 1))")
            taps = starts[:, :, None] + np.arange(k, dtype=np.int64)  # (P, o, k)
            shape = [planes] + [1] * (2 * d)
            shape[1 + axis], shape[1 + d + axis] = o, k
            flat = flat + taps.reshape(shape) * strides[axis]
        return flat.reshape(planes, math.prod(out), math.prod(self.kernel_size))

    def _forward(self, x, buffered):
        host = _device.to_host(x)
        unbatched = host.ndim == self.dims + 1
        if unbatched:
            host = host[None]
        n, c, *spatial = host.shape
        out = self._out_size(tuple(spatial))
        planes = n * c
        flat = self._flat_taps(self._samples(n, c, host.dtype), tuple(spatial), out)
        taps = flat.reshape(planes, math.prod(flat.shape[1:]))
        values = np.take_along_axis(host.reshape(planes, math.prod(spatial)), taps,
                                    axis=1).reshape(flat.shape)
        best = np.argmax(values, axis=-1)  # the first of equal maxima
        nan = np.isnan(values)
        if nan.any():  # a NaN wins: the last NaN of its window
            last = flat.shape[-1] - 1 - np.argmax(nan[..., ::-1], axis=-1)
            best = np.where(nan.any(axis=-1), last, best)
        pick = best[..., None]
        y = np.take_along_axis(values, pick, axis=-1).reshape((n, c) + tuple(out))
        keep_indices(self, np.take_along_axis(flat, pick, axis=-1).reshape(y.shape))
        self._in_shape = host.shape
        return _device.namespace_of(x).put(y[0] if unbatched else y)

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        g = _device.to_host(grad_out)
        unbatched = g.ndim == self.dims + 1
        grad_in = _scatter(g[None] if unbatched else g, self._indices, self._in_shape)
        return _device.namespace_of(grad_out).put(grad_in[0] if unbatched else grad_in)


class FractionalMaxPool2d(_FractionalMaxPool):
    """Fractional max pooling of (N, C, H, W) or unbatched (C, H, W) input (PyTorch's
    FractionalMaxPool2d): the maximum over kH x kW windows whose starts step
    pseudo-randomly so that the output is (H_out, W_out).

    kernel_size: an int or a pair. Exactly one of output_size (an int or a pair; each
    o + k - 1 <= the input size) and output_ratio (a number or a pair in (0, 1); the
    output is int(H * ratio) x int(W * ratio)). _random_samples: None (each forward
    draws (N, C, 2) samples in [0, 1) of the input's dtype from fastnn's generator) or
    an (N', C, 2) array of the input's dtype, N' >= N (a buffer, in the state dict as
    PyTorch's); sample [0] steers the width, [1] the height, as PyTorch's. The maximum
    is PyTorch's (the first of equal maxima; a NaN wins). return_indices=True:
    ``forward`` returns (output, indices), each maximum's flat h * W + w in its plane
    (int64; the input of MaxUnpool2d with output_size=(H, W)). Backward sends each
    output gradient to its window's maximum (overlapping windows add).
    """

    dims = 2
    sample_of_axis = (1, 0)
    axis_names = ("H", "W")


class FractionalMaxPool3d(_FractionalMaxPool):
    """Fractional max pooling of (N, C, T, H, W) or unbatched (C, T, H, W) input
    (PyTorch's FractionalMaxPool3d), as FractionalMaxPool2d over kT x kH x kW windows.

    kernel_size, output_size: an int or a triple; output_ratio: a number or a triple in
    (0, 1). PyTorch's 3-D check is stricter than its 2-D one: o + k - 1 < the input
    size on each axis. _random_samples: (N', C, 3), samples [0], [1], [2] steering T, H,
    W (PyTorch's order). Indices: flat t * H * W + h * W + w (MaxUnpool3d's input).
    """

    dims = 3
    sample_of_axis = (0, 1, 2)
    strict = True
    axis_names = ("T", "H", "W")
