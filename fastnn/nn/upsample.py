"""Upsample (nearest neighbour and (bi)linear), PyTorch's Upsample,
UpsamplingNearest2d and UpsamplingBilinear2d semantics."""
import math
import numbers

import numpy as np

from .. import device as _device
from ..validation import check_float_dtype, check_only
from .module import Module


def _linear_matrix(size, out, scale, align_corners, dtype):
    """(out, size) interpolation matrix of PyTorch's linear modes along one axis: row i
    weighs the two inputs around its source coordinate, (i + 0.5) scale - 0.5 (clamped
    at 0) without align_corners, i (size - 1) / (out - 1) with it."""
    i = np.arange(out, dtype=np.float64)
    if align_corners:
        src = i * ((size - 1) / (out - 1)) if out > 1 else np.zeros(out)
    else:
        src = np.maximum((i + 0.5) * float(scale) - 0.5, 0.0)
    low = np.minimum(np.floor(src).astype(np.int64), size - 1)
    high = np.minimum(low + 1, size - 1)
    frac = src - low
    m = np.zeros((out, size), np.float64)
    np.add.at(m, (np.arange(out), low), 1.0 - frac)
    np.add.at(m, (np.arange(out), high), frac)
    return m.astype(dtype)


class Upsample(Module):
    """Upsampling of (N, C, H, W) or (N, C, L) input (a decoder's upsampling layer
    before a convolution), PyTorch's modes 'nearest', 'bilinear' (4-D input) and
    'linear' (3-D input).

    size: the output's spatial size (an int or a tuple), or scale_factor: a number or one
    per spatial axis (output = floor(input * scale_factor)).

    'nearest': output pixel i copies input pixel min(floor(i * scale), in - 1), scale =
    1 / scale_factor or in / out, as PyTorch's. Integer factors (every output size a
    multiple of the input's) are one broadcast copy (the backward one block sum) in
    NumPy, and on the GPU the backend's avg_pool2d backward (each value spread over its
    block) times the block size and, backward, an average pooling times it; other sizes
    gather (and scatter-add back) on the host.

    'bilinear' / 'linear' (align_corners False, PyTorch's default, or True): each axis is
    a small (out, in) interpolation matrix A with two weights a row, y = A_h x A_w^T and
    grad_x = A_h^T grad_y A_w, two matrix products on the host (BLAS; a device array goes
    through the host).
    """

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        name = type(self).__name__
        check_only(name, "mode", mode, ("nearest", "linear", "bilinear"))
        if mode == "nearest":
            check_only(name, "align_corners", align_corners, (None,))
        elif align_corners is not None and not isinstance(align_corners, (bool, np.bool_)):
            raise ValueError(f"{name}: expected align_corners to be a bool or None, got "
                             f"{align_corners!r}")
        self.align_corners = None if align_corners is None else bool(align_corners)
        check_only(name, "recompute_scale_factor", recompute_scale_factor, (None, False))
        if (size is None) == (scale_factor is None):
            raise ValueError(f"{name}: expected exactly one of size and scale_factor")
        values = size if size is not None else scale_factor
        items = tuple(values) if isinstance(values, (tuple, list)) else (values,)
        integral = size is not None
        if not items or any(isinstance(v, bool) or not isinstance(
                v, numbers.Integral if integral else numbers.Real) or v <= 0 for v in items):
            kind = "positive ints" if integral else "positive numbers"
            raise ValueError(f"{name}: expected {'size' if integral else 'scale_factor'} to "
                             f"be one or a tuple of {kind}, got {values!r}")
        self.size = size
        self.scale_factor = (None if scale_factor is None else  # floats, as PyTorch keeps them
                             tuple(float(v) for v in items) if isinstance(values, (tuple, list))
                             else float(scale_factor))
        self.mode = mode
        self._ctx = None  # (input (N, C, H, W) shape, plan) of the last forward

    def _per_axis(self, value, n):
        items = tuple(value) if isinstance(value, (tuple, list)) else (value,) * n
        if len(items) != n:
            raise ValueError(f"{self._where()}: expected {n} sizes or factors for "
                             f"{n} spatial axes, got {value!r}")
        return items

    def _geometry(self, spatial):
        """(output sizes, per-axis float32 scales from output to input index)."""
        n = len(spatial)
        if self.size is not None:
            out = tuple(int(v) for v in self._per_axis(self.size, n))
            scales = tuple(np.float32(i / o) for i, o in zip(spatial, out))
        else:
            factors = self._per_axis(self.scale_factor, n)
            out = tuple(int(math.floor(i * float(f))) for i, f in zip(spatial, factors))
            scales = tuple(np.float32(1.0 / float(f)) for f in factors)
        return out, scales

    def infer_shape(self, shape, dtype):
        shape = tuple(shape)
        if len(shape) not in (3, 4):
            raise ValueError(f"{self._where()}: expected input of shape (N, C, H, W) or "
                             f"(N, C, L), got {shape}")
        wanted = {"bilinear": 4, "linear": 3}.get(self.mode)
        if wanted is not None and len(shape) != wanted:
            raise ValueError(f"{self._where()}: mode '{self.mode}' expects a "
                             f"{wanted}-D input, got input of shape {shape}")
        check_float_dtype(self._where(), dtype)
        out, _ = self._geometry(shape[2:])
        if min(out) < 1:
            raise ValueError(f"{self._where()}: the output of an input of shape {shape} would "
                             f"have size {out}")
        return shape[:2] + out

    @staticmethod
    def _indices(size, out, scale):
        """Input index of every output index along one axis (PyTorch's nearest)."""
        src = np.floor(np.arange(out, dtype=np.float32) * scale).astype(np.int64)
        return np.minimum(src, size - 1)

    def _forward(self, x, buffered):
        if self.mode != "nearest":
            return self._linear_forward(x)
        shape = tuple(x.shape)
        x4 = x.reshape(shape[:2] + (1, shape[2])) if len(shape) == 3 else x
        h, w = tuple(x4.shape)[2:]
        out, scales = self._geometry(shape[2:])
        oh, ow = out if len(out) == 2 else (1, out[0])
        sh, sw = scales if len(scales) == 2 else (np.float32(1), scales[0])
        ih, iw = self._indices(h, oh, sh), self._indices(w, ow, sw)
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
                np.ascontiguousarray(_device.to_host(x4)[:, :, ih[:, None], iw[None, :]]))
        self._ctx = (tuple(x4.shape), repeat, blocks, ih, iw, shape)
        return y.reshape(shape[:2] + out)

    def _linear_matrices(self, spatial, dtype):
        """The per-axis interpolation matrices for this input size, kept while the size
        and dtype stay the same (a training loop builds them once)."""
        key = (spatial, np.dtype(dtype))
        cached = self._scratch.get("linear_matrices")
        if cached is not None and cached[0] == key:
            return cached[1]
        out, _ = self._geometry(spatial)
        if self.size is None:  # PyTorch's scale: 1 / scale_factor, in the input's float
            factors = self._per_axis(self.scale_factor, len(spatial))
            scales = tuple(dtype.type(1.0 / float(f)) for f in factors)
        else:
            scales = tuple(dtype.type(i / o) for i, o in zip(spatial, out))
        mats = [_linear_matrix(i, o, s, self.align_corners, dtype)
                for i, o, s in zip(spatial, out, scales)]
        self._scratch["linear_matrices"] = (key, mats)
        return mats

    def _linear_forward(self, x):
        mats = self._linear_matrices(tuple(x.shape)[2:], x.dtype)
        host = _device.to_host(x)
        y = host @ mats[-1].T                       # along the last axis (W, or L)
        if len(mats) == 2:
            y = np.matmul(mats[0], y)               # along H: (oh, h) @ (N, C, h, ow)
        self._ctx = ("linear", mats)
        return _device.namespace_of(x).put(np.ascontiguousarray(y))

    def _linear_backward(self, grad_out):
        mats = self._ctx[1]
        g = _device.to_host(grad_out)
        if len(mats) == 2:
            g = np.matmul(mats[0].T, g)
        return _device.namespace_of(grad_out).put(np.ascontiguousarray(g @ mats[-1]))

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        if self.mode != "nearest":
            return self._linear_backward(grad_out)
        in4, repeat, blocks, ih, iw, shape = self._ctx
        g4 = grad_out.reshape(tuple(grad_out.shape)[:2] + (len(ih), len(iw)))
        if repeat and not _device.is_device_array(g4):
            n, c, h, w = in4
            buf = self._buffer("grad_in", in4, grad_out.dtype) if buffered else None
            grad_in = np.sum(g4.reshape(n, c, h, blocks[0], w, blocks[1]), axis=(3, 5),
                             out=buf)
        elif repeat:
            grad_in = self._kernels().avg_pool2d_forward(g4, blocks, blocks, (0, 0), True)
            grad_in = _device.scaled(grad_in, blocks[0] * blocks[1])
        else:
            host = np.zeros(in4, grad_out.dtype)
            np.add.at(host, (slice(None), slice(None), ih[:, None], iw[None, :]),
                      _device.to_host(g4))
            grad_in = _device.namespace_of(grad_out).put(host)
        return grad_in.reshape(shape)

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
