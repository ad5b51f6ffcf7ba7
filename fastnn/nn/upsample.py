"""Upsample (PyTorch's Upsample, UpsamplingNearest2d and UpsamplingBilinear2d, and the
interpolation behind ``functional.interpolate``): modes 'nearest', 'nearest-exact',
'linear', 'bilinear', 'bicubic', 'trilinear' and 'area' over 1, 2 or 3 spatial axes."""
import math
import numbers

import numpy as np

from .. import device as _device
from ..errors import NotImplementedValueError, RuntimeValueError, TypeValueError
from ..validation import check_float_dtype, check_int64, check_only
from .module import Module

# the input ranks (N, C and 1, 2 or 3 spatial axes) each mode takes, as PyTorch's
MODE_RANKS = {"nearest": (3, 4, 5), "nearest-exact": (3, 4, 5), "area": (3, 4, 5),
              "linear": (3,), "bilinear": (4,), "bicubic": (4,), "trilinear": (5,)}
_CORNER_MODES = ("linear", "bilinear", "bicubic", "trilinear")  # take align_corners
_CUBIC_A = -0.75


def output_geometry(spatial, size, scale_factor, recompute_scale_factor):
    """(output sizes, per-axis scale factors PyTorch's kernels get) for an input of spatial
    sizes ``spatial``: ``size`` (a tuple, one per axis), or ``int(n * factor)`` for the
    ``scale_factor`` tuple; the factors are None where the size was given or
    recompute_scale_factor asks for in / out instead."""
    if size is not None:
        return tuple(int(v) for v in size), (None,) * len(spatial)
    out = tuple(int(n * float(f)) for n, f in zip(spatial, scale_factor))
    if recompute_scale_factor:
        return out, (None,) * len(spatial)
    return out, tuple(float(f) for f in scale_factor)


def _ratio(size, out, factor, dtype):
    """PyTorch's compute_scales_value in dtype: 1 / factor when given, else in / out."""
    if factor is not None and factor > 0:
        return dtype.type(1.0 / factor)
    return dtype.type(size) / dtype.type(out)


def nearest_indices(size, out, factor, exact=False, shortcuts=True):
    """The input index of each output index along one axis: PyTorch's 'nearest'
    (floor(i * scale); with shortcuts its exact copy for out == in and halving for
    out == 2 in, whatever the factor) or 'nearest-exact' (floor((i + 0.5) * scale)),
    scale in float32, clamped to the input."""
    i = np.arange(out)
    if shortcuts and not exact and out == size:
        return i
    if shortcuts and not exact and out == 2 * size:
        return i >> 1
    scale = _ratio(size, out, factor, np.dtype(np.float32))
    if exact:  # (i + 0.5) * scale in double, then floorf's float
        src = np.floor(((i + 0.5) * np.float64(scale)).astype(np.float32))
    else:
        src = np.floor(i.astype(np.float32) * scale)
    return np.minimum(src.astype(np.int64), size - 1)


def generic_nearest_indices(size, out, factor, exact, dtype):
    """The input index of each output index along one axis in PyTorch's 1-D and 3-D
    nearest forwards (its generic kernel, not the 2-D one of ``nearest_indices``): the
    source coordinate in the input's dtype (float32 or float64, its opmath), i * scale
    ('nearest') or max((i + 0.5) scale - 0.5, 0) + 0.5 ('nearest-exact', the product and
    difference rounded once, as the compiled kernel's fused multiply-add, and the last
    0.5 added in double), then floorf's float32 floor, clamped to the input."""
    dt = np.dtype(dtype).type
    scale = _ratio(size, out, factor, np.dtype(dtype))
    i = np.arange(out).astype(dtype)
    if exact:
        fused = (np.float64(scale) * (i + dt(0.5)).astype(np.float64) - 0.5).astype(dtype)
        src = np.maximum(fused, dt(0)).astype(np.float64) + 0.5
    else:
        src = i * scale
    return np.minimum(np.floor(src.astype(np.float32)).astype(np.int64), size - 1)


def _scale(size, out, factor, align_corners, dtype):
    """PyTorch's area_pixel_compute_scale in dtype: (in - 1) / (out - 1) with
    align_corners (0 for one output), else ``_ratio``."""
    dt = dtype.type
    if align_corners:
        return dt(size - 1) / dt(out - 1) if out > 1 else dt(0)
    return _ratio(size, out, factor, dtype)


def _source(size, out, factor, align_corners, dtype, cubic):
    """PyTorch's source coordinate of each output index along one axis, in dtype (its
    opmath): i (in - 1) / (out - 1) with align_corners, else (i + 0.5) scale - 0.5,
    clamped at 0 except for cubic."""
    dt = dtype.type
    i = np.arange(out).astype(dtype)
    scale = _scale(size, out, factor, align_corners, dtype)
    if align_corners:
        return i * scale
    src = scale * (i + dt(0.5)) - dt(0.5)
    return src if cubic else np.maximum(src, dt(0))


def _cubic_weights(t):
    """The four cubic-convolution weights (A = -0.75) of the inputs at floor - 1 ..
    floor + 2 for fractions t: (out, 4)."""
    a = t.dtype.type(_CUBIC_A)

    def near(x):   # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):    # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    one = t.dtype.type(1)
    return np.stack([far(t + one), near(t), near(one - t), far(one - t + one)], axis=1)


def interpolation_matrix(mode, size, out, factor, align_corners, dtype):
    """(out, size) sparse matrix (SciPy CSR) of one axis's weights in a separable mode
    ('linear', 'bilinear', 'trilinear', 'bicubic' or 'area'): row i weighs the inputs
    output i reads (PyTorch's indices and weights: two around the source coordinate, four
    for cubic with the indices clamped to the input, or the adaptive-average window for
    'area'; the linear modes copy where out == size, even with a scale factor other than
    1). Only those taps are stored (a zero-weight tap PyTorch computes too, at t = 0,
    included): a dense product would multiply every other input by 0 too, and one NaN or
    inf pixel would make the whole output plane NaN."""
    from scipy import sparse
    rows = np.arange(out)
    if mode == "area":  # adaptive average pooling's windows
        start = rows * size // out
        end = ((rows + 1) * size + out - 1) // out
        counts = end - start
        cols = np.concatenate([np.arange(s, e) for s, e in zip(start, end)])
        weights = np.repeat(1.0 / counts, counts)
        indptr = np.concatenate([[0], np.cumsum(counts)])
        return sparse.csr_matrix((weights.astype(dtype), cols, indptr), shape=(out, size))
    cubic = mode == "bicubic"
    if out == size and not cubic:
        # PyTorch's linear kernels read input i twice, with weights 1 and 0 (whatever the
        # factor): a copy for finite values, NaN for an infinite one (inf * 0)
        cols = np.stack([rows, rows], axis=1)
        weights = np.stack([np.ones(out, dtype), np.zeros(out, dtype)], axis=1)
        return sparse.csr_matrix((weights.reshape(-1), cols.reshape(-1),
                                  np.arange(0, 2 * out + 1, 2)), shape=(out, size))
    src = _source(size, out, factor, bool(align_corners), dtype, cubic)
    low = np.minimum(np.floor(src).astype(np.int64), size - 1)
    t = np.clip(src - low.astype(dtype), 0, 1).astype(dtype)
    if cubic:
        weights = _cubic_weights(t)                                    # (out, 4)
        cols = np.clip(low[:, None] - 1 + np.arange(4), 0, size - 1)   # (out, 4)
    else:
        weights = np.stack([1 - t, t], axis=1)
        cols = np.stack([low, low + (low < size - 1)], axis=1)
    # repeated columns (clamped cubic taps, the last input) stay separate entries, each
    # multiplied on its own as in PyTorch (inf * w + inf * 0 is NaN there; a summed
    # weight gave inf)
    taps = cols.shape[1]
    return sparse.csr_matrix((weights.reshape(-1).astype(dtype), cols.reshape(-1),
                              np.arange(0, taps * out + 1, taps)), shape=(out, size))


def _aa_filter(x, cubic):
    """PyTorch's anti-aliasing filters (Pillow's): the triangle for bilinear, Keys' cubic
    convolution with A = -0.5 (not the -0.75 of plain bicubic) for bicubic."""
    x = np.abs(x)
    if not cubic:
        return np.where(x < 1, 1 - x, 0)
    a = -0.5
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x < 1, near, np.where(x < 2, far, 0))


def antialias_matrix(mode, size, out, factor, align_corners, dtype):
    """(out, size) SciPy CSR matrix of one axis's weights for interpolate(...,
    antialias=True) in 'bilinear' or 'bicubic': PyTorch's (and Pillow's) resampling, whose
    filter is stretched by the downscaling factor so that every input under it counts.
    Output i is centred at scale (i + 0.5) in input coordinates; the inputs within
    ``support`` (1 or 2 taps, times the factor when downscaling) are weighed by the
    filter at their distance (divided by the factor when downscaling), normalised to sum
    to 1. Weights are rounded to dtype where PyTorch's kernel holds them in it."""
    from scipy import sparse
    dt = dtype.type
    cubic = mode == "bicubic"
    scale = _scale(size, out, factor, align_corners, dtype)
    taps = 4 if cubic else 2
    support = dt(taps * 0.5 * scale) if scale >= 1 else dt(taps * 0.5)
    invscale = dt(1.0 / scale) if scale >= 1 else dt(1)
    widest = int(np.ceil(support)) * 2 + 1
    rows, cols, weights = [], [], []
    for i in range(out):
        center = dt(float(scale) * (i + 0.5))
        low = max(int(float(center) - float(support) + 0.5), 0)
        count = min(int(float(center) + float(support) + 0.5), size) - low
        count = min(max(count, 0), widest)
        j = np.arange(count)
        w = _aa_filter(((j + low - float(center) + 0.5) * float(invscale)).astype(dtype),
                       cubic).astype(dtype)
        total = dt(0)
        for v in w:   # PyTorch's running sum, in dtype
            total = dt(total + v)
        if total != 0:
            w = (w / total).astype(dtype)
        rows.append(np.full(count, i))
        cols.append(j + low)
        weights.append(w)
    return sparse.csr_matrix((np.concatenate(weights).astype(dtype), (np.concatenate(rows),
                              np.concatenate(cols))), shape=(out, size))


def along_axis(a, m, axis):
    """a with axis ``axis`` (of size m.shape[1]) mapped through the sparse m (out, in):
    that axis becomes m.shape[0] long."""
    moved = np.moveaxis(a, axis, 0)
    rest = moved.shape[1:]
    y = m @ moved.reshape(moved.shape[0], -1)
    return np.moveaxis(np.asarray(y, dtype=a.dtype).reshape((m.shape[0],) + rest), 0, axis)


def block_sums(blocks, out):
    """out (N, C, H, W) = the sums of blocks (N, C, H, bh, W, bw) over bh and bw: one
    strided addition per block offset, in offset order (NumPy's np.sum over the axes
    (3, 5) of that view ran 13x slower: a reduction over non-contiguous axes)."""
    bh, bw = blocks.shape[3], blocks.shape[5]
    out[...] = blocks[:, :, :, 0, :, 0]
    for i in range(bh):
        for j in range(bw):
            if i or j:
                np.add(out, blocks[:, :, :, i, :, j], out=out)
    return out


class Upsample(Module):
    """Upsampling (or resampling) of (N, C, L), (N, C, H, W) or (N, C, D, H, W) input
    (a decoder's upsampling layer before a convolution), PyTorch's modes:

    * 'nearest' (any of the three ranks): output i copies input min(floor(i * scale),
      in - 1), scale = 1 / scale_factor or in / out in float32 (PyTorch's, with its exact
      copy when out == in and i // 2 when out == 2 in); 'nearest-exact': floor((i + 0.5)
      scale) instead (Pillow's and scikit-image's).
    * 'linear' (3-D input), 'bilinear' (4-D), 'trilinear' (5-D), 'bicubic' (4-D, cubic
      convolution with A = -0.75): align_corners False (PyTorch's default) or True.
    * 'area' (any rank): adaptive average pooling to the output size.

    size: the output's spatial size (an int or a tuple), or scale_factor: a number or one
    per spatial axis (output = floor(input * scale_factor)); recompute_scale_factor=True
    interpolates as if that output size had been given (in / out instead of the factor).

    'nearest' with integer factors (every output size a multiple of the input's, 3-D and
    4-D input) is one broadcast copy (the backward one block sum) in NumPy, and on the
    GPU the backend's avg_pool2d backward (each value spread over its block) times the
    block size and, backward, an average pooling times it; other sizes gather (and
    scatter-add back) on the host. The other modes are separable: each spatial axis is a
    small (out, in) matrix A, y = x times A along each axis and grad_x = grad_y times A^T
    along each, matrix products on the host (BLAS; a device array goes through the host).
    """

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        name = type(self).__name__
        self.name = name   # (PyTorch's attribute)
        check_only(name, "mode", mode, tuple(MODE_RANKS))
        if mode not in _CORNER_MODES:
            check_only(name, "align_corners", align_corners, (None,))
        elif align_corners is not None and not isinstance(align_corners, (bool, np.bool_)):
            raise TypeError(f"{name}: expected align_corners to be a bool or None, got "
                            f"{align_corners!r}")
        self.align_corners = None if align_corners is None else bool(align_corners)
        if recompute_scale_factor is not None and not isinstance(recompute_scale_factor,
                                                                 (bool, np.bool_)):
            raise ValueError(f"{name}: expected recompute_scale_factor to be a bool or "
                             f"None, got {recompute_scale_factor!r}")
        self.recompute_scale_factor = (None if recompute_scale_factor is None
                                       else bool(recompute_scale_factor))
        if (size is None) == (scale_factor is None):
            raise ValueError(f"{name}: expected exactly one of size and scale_factor")
        if self.recompute_scale_factor and size is not None:
            raise ValueError(f"{name}: recompute_scale_factor is not meaningful with an "
                             f"explicit size.")
        values = size if size is not None else scale_factor
        items = tuple(values) if isinstance(values, (tuple, list)) else (values,)
        integral = size is not None
        kind = "non-negative ints" if integral else "positive numbers"
        if any(isinstance(v, bool) or not isinstance(
                v, numbers.Integral if integral else numbers.Real) for v in items):
            raise TypeValueError(f"{name}: expected {'size' if integral else 'scale_factor'} "
                                 f"to be one or a tuple of {kind}, got {values!r}")
        if not items or any(v < 0 if integral else v <= 0 for v in items):
            # (a size of 0: 'area' gives PyTorch's empty output, the other modes its
            # RuntimeError when called)
            raise ValueError(f"{name}: expected {'size' if integral else 'scale_factor'} to "
                             f"be one or a tuple of {kind}, got {values!r}")
        if integral:
            check_int64(name, "size", items)
        self.size = size
        self.scale_factor = (None if scale_factor is None else  # floats, as PyTorch keeps them
                             tuple(float(v) for v in items) if isinstance(values, (tuple, list))
                             else float(scale_factor))
        self.mode = mode
        self._ctx = None  # what the last forward's backward needs

    def _per_axis(self, value, n):
        items = tuple(value) if isinstance(value, (tuple, list)) else (value,) * n
        if len(items) != n:
            raise ValueError(f"{self._where()}: expected {n} sizes or factors for "
                             f"{n} spatial axes, got {value!r}")
        return items

    def _geometry(self, spatial):
        """(output sizes, per-axis scale factors for the kernels, None for in / out)."""
        n = len(spatial)
        size = None if self.size is None else self._per_axis(self.size, n)
        factors = None if self.scale_factor is None else self._per_axis(self.scale_factor, n)
        recompute = self.recompute_scale_factor or (self.mode == "area" and size is None)
        if factors is not None and not recompute and not all(
                math.isfinite(n * float(f)) and n * float(f) < 2 ** 63
                for n, f in zip(spatial, factors)):
            # PyTorch's kernels take this output size as an int64 (its error); with
            # recompute_scale_factor (or 'area') Python's math.floor gives OverflowError
            # or ValueError, as int() does below
            raise RuntimeValueError(f"{self._where()}: value cannot be converted to type "
                                    f"int64_t without overflow (scale_factor "
                                    f"{self.scale_factor})")
        return output_geometry(spatial, size, factors, recompute)

    def infer_shape(self, shape, dtype):
        shape = tuple(shape)
        if len(shape) not in (3, 4, 5):
            raise NotImplementedValueError(f"{self._where()}: expected input of shape "
                                           f"(N, C, H, W), (N, C, L) or (N, C, D, H, W), got "
                                           f"{shape}")
        wanted = MODE_RANKS[self.mode]
        if len(shape) not in wanted:
            raise NotImplementedValueError(f"{self._where()}: mode '{self.mode}' expects a "
                                           f"{wanted[0]}-D input, got input of shape {shape}")
        check_float_dtype(self._where(), dtype)
        out, _ = self._geometry(shape[2:])
        # 'area' (adaptive average pooling) gives an output size of 0 as PyTorch's empty
        # output; the other modes refuse it
        if min(out) < (0 if self.mode == "area" else 1) or min(shape[2:]) < 1:
            raise RuntimeValueError(f"{self._where()}: the output of an input of shape "
                                    f"{shape} would have size {out}")
        if shape[1] == 0 and (self.mode != "area" or len(shape) == 5):  # (PyTorch's kernels)
            raise RuntimeValueError(f"{self._where()}: expected input with channels, got "
                                    f"shape {shape}")
        return shape[:2] + out

    def _forward(self, x, buffered):
        if self.mode in ("nearest", "nearest-exact"):
            return self._nearest_forward(x, buffered)
        return self._separable_forward(x)

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        if self._ctx[0] == "empty":   # (nothing flowed back through an empty output)
            return _device.namespace_of(grad_out).put(np.zeros(self._ctx[1], grad_out.dtype))
        if self._ctx[0] == "separable":
            return self._separable_backward(grad_out)
        if self._ctx[0] == "gather":
            return self._gather_backward(grad_out)
        return self._nearest_backward(grad_out, buffered)

    # ---------------------------------------------------------------- nearest
    def _nearest_forward(self, x, buffered):
        shape = tuple(x.shape)
        out, factors = self._geometry(shape[2:])
        exact = self.mode == "nearest-exact"
        # PyTorch's 1-D and 3-D forwards, and 2-D ones whose output height + width
        # exceeds 128 (its threshold for its vectorised kernel), compute their indices in
        # the input's dtype, without the other 2-D forwards' (and every backward's)
        # out == in and out == 2 in shortcuts: there (3 * 1.3333 -> 3, or a float64
        # index rounding another way) those backwards are not their forward's adjoint
        vectorised = len(shape) == 4 and sum(out) <= 128
        idx = [nearest_indices(n, o, f, exact) if vectorised else
               generic_nearest_indices(n, o, f, exact, x.dtype)
               for n, o, f in zip(shape[2:], out, factors)]
        back = [nearest_indices(n, o, f, exact) for n, o, f in zip(shape[2:], out, factors)]
        if len(shape) == 5 or any(not np.array_equal(a, b) for a, b in zip(idx, back)):
            return self._gather_forward(x, idx, back)
        x4 = x.reshape(shape[:2] + (1, shape[2])) if len(shape) == 3 else x
        h, w = tuple(x4.shape)[2:]
        ih, iw = idx if len(idx) == 2 else (np.zeros(1, np.int64), idx[0])
        oh, ow = len(ih), len(iw)
        blocks = (oh // h, ow // w)
        repeat = (oh % h == 0 and ow % w == 0 and np.array_equal(ih, np.arange(oh) // blocks[0])
                  and np.array_equal(iw, np.arange(ow) // blocks[1]))
        full = tuple(x4.shape)[:2] + (oh, ow)
        if repeat and not _device.is_device_array(x4):  # exact copies, one NumPy pass
            n, c = full[:2]
            y = self._buffer("y", full, x.dtype) if buffered else np.empty(full, x.dtype)
            y.reshape(n, c, h, blocks[0], w, blocks[1])[...] = x4[:, :, :, None, :, None]
        elif repeat:
            y = self._kernels().avg_pool2d_backward(x4, full, blocks, blocks, (0, 0), True)
            y = _device.scaled(y, blocks[0] * blocks[1])
        else:
            y = _device.namespace_of(x).put(
                _device.c_contiguous(_device.to_host(x4)[:, :, ih[:, None], iw[None, :]]))
        self._ctx = ("nearest", tuple(x4.shape), repeat, blocks, ih, iw, shape)
        return y.reshape(shape[:2] + out)

    def _nearest_backward(self, grad_out, buffered):
        _, in4, repeat, blocks, ih, iw, shape = self._ctx
        g4 = grad_out.reshape(tuple(grad_out.shape)[:2] + (len(ih), len(iw)))
        if repeat and not _device.is_device_array(g4):
            n, c, h, w = in4
            buf = (self._buffer("grad_in", in4, grad_out.dtype) if buffered
                   else np.empty(in4, grad_out.dtype))
            grad_in = block_sums(g4.reshape(n, c, h, blocks[0], w, blocks[1]), buf)
        elif repeat:
            grad_in = self._kernels().avg_pool2d_forward(g4, blocks, blocks, (0, 0), True)
            grad_in = _device.scaled(grad_in, blocks[0] * blocks[1])
        else:
            host = np.zeros(in4, grad_out.dtype)
            np.add.at(host, (slice(None), slice(None), ih[:, None], iw[None, :]),
                      _device.to_host(g4))
            grad_in = _device.namespace_of(grad_out).put(host)
        return grad_in.reshape(shape)

    def _gather_forward(self, x, idx, back):
        """Nearest of any rank on the host: the input at the outer product of the
        per-axis indices idx; the backward adds the gradient back at those of back."""
        host = _device.to_host(x)
        lead = (slice(None), slice(None))
        self._ctx = ("gather", tuple(host.shape), lead + np.ix_(*back))
        return _device.namespace_of(x).put(host[lead + np.ix_(*idx)])

    def _gather_backward(self, grad_out):
        _, shape, where = self._ctx
        grad_in = np.zeros(shape, grad_out.dtype)
        np.add.at(grad_in, where, _device.to_host(grad_out))
        return _device.namespace_of(grad_out).put(grad_in)

    # ------------------------------------------------------------- separable
    def _matrices(self, spatial, dtype):
        """The per-axis interpolation matrices for this input size, kept while the size,
        dtype and the layer's attributes stay the same (a training loop builds them
        once; a user may set size, scale_factor, mode, ... as PyTorch's reads them at
        each call)."""
        key = (spatial, np.dtype(dtype), self.mode, self.size, self.scale_factor,
               self.align_corners, self.recompute_scale_factor)
        cached = self._scratch.get("interpolation_matrices")
        if cached is not None and cached[0] == key:
            return cached[1]
        out, factors = self._geometry(spatial)
        mats = [interpolation_matrix(self.mode, n, o, f, self.align_corners, np.dtype(dtype))
                for n, o, f in zip(spatial, out, factors)]
        self._scratch["interpolation_matrices"] = (key, mats)
        return mats

    def _separable_forward(self, x):
        if self.mode == "area":
            shape = tuple(x.shape)
            out_shape = shape[:2] + self._geometry(shape[2:])[0]
            if 0 in out_shape[2:]:   # (an output size of 0: PyTorch's empty output)
                self._ctx = ("empty", shape)
                return _device.namespace_of(x).put(np.zeros(out_shape, x.dtype))
        mats = self._matrices(tuple(x.shape)[2:], x.dtype)
        y = _device.to_host(x)
        for axis, m in zip(range(2, y.ndim), mats):
            y = along_axis(y, m, axis)
        self._ctx = ("separable", mats)
        return _device.namespace_of(x).put(y)

    def _separable_backward(self, grad_out):
        g = _device.to_host(grad_out)
        mats = self._ctx[1]
        if self.mode == "bicubic" and all(m.shape[0] == m.shape[1] for m in mats):
            # PyTorch's bicubic backward copies the gradient when no size changes, even
            # where the forward's scale factor made it interpolate
            return _device.namespace_of(grad_out).put(np.array(g))
        for axis, m in zip(range(2, g.ndim), mats):
            g = along_axis(g, m.T, axis)
        return _device.namespace_of(grad_out).put(g)

    def extra_repr(self):
        if self.size is not None:  # PyTorch's repr: align_corners not shown
            return f"size={self.size}, mode='{self.mode}'"
        return f"scale_factor={self.scale_factor}, mode='{self.mode}'"


class UpsamplingNearest2d(Upsample):
    """Upsample(size, scale_factor, mode='nearest') (PyTorch's older name)."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor)


class UpsamplingBilinear2d(Upsample):
    """Upsample(size, scale_factor, mode='bilinear', align_corners=True) (PyTorch's older
    name, with its align_corners)."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)
