"""PyTorch's CosineSimilarity and PairwiseDistance: modules of two inputs, NumPy on the
host. ``forward(x1, x2)`` returns the similarity or distance; ``backward(grad_out)``
returns (grad_x1, grad_x2). A device input's results go back to the device."""
import numbers

import numpy as np

from .. import device as _device
from ..validation import check_bool, check_float_array, check_number
from .module import Module


class _TwoInputs(Module):
    """Shared checks: two float arrays of one shape and dtype (PyTorch broadcasts them;
    fastnn takes equal shapes)."""

    def _inputs(self, x1, x2):
        where = self._where()
        x1 = check_float_array(where, "x1", x1, device_ok=True)
        x2 = check_float_array(where, "x2", x2, dtype=x1.dtype, device_ok=True)
        if x1.shape != x2.shape or x1.ndim == 0:
            raise ValueError(f"{where}: expected x1 and x2 of one shape (rank >= 1), got "
                             f"{x1.shape} and {x2.shape}")
        self._namespace = _device.namespace_of(x1)
        return _device.to_host(x1), _device.to_host(x2)

    def __call__(self, x1, x2):
        return self.forward(x1, x2)

    def backward(self, grad_out):
        """(grad_x1, grad_x2) for grad_out, the gradient w.r.t. the last forward's output
        (its shape)."""
        if getattr(self, "_ctx", None) is None:
            raise RuntimeError(f"{self._where()}: backward called before forward")
        d1, d2, out_shape, axis = self._ctx
        g = np.asarray(_device.to_host(grad_out), d1.dtype)
        if g.shape != out_shape:
            raise ValueError(f"{self._where()}: expected grad_out of shape {out_shape}, got "
                             f"{g.shape}")
        g = np.expand_dims(g, axis) if len(out_shape) < d1.ndim else g
        return tuple(self._namespace.put(np.ascontiguousarray(g * d)) for d in (d1, d2))


class CosineSimilarity(_TwoInputs):
    """sum(x1 x2) / (max(||x1||, eps) max(||x2||, eps)) along ``dim`` (PyTorch's: each
    norm clamped at eps, the gradient that of the unclamped norms). x1, x2: one shape;
    the output drops the dim axis."""

    def __init__(self, dim=1, eps=1e-8):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise TypeError(f"CosineSimilarity: expected dim to be an int, got {dim!r}")
        check_number("CosineSimilarity", "eps", eps, 0.0)
        self.dim, self.eps = int(dim), float(eps)

    def forward(self, x1, x2):
        x1, x2 = self._inputs(x1, x2)
        axis = self.dim + x1.ndim if self.dim < 0 else self.dim
        if not 0 <= axis < x1.ndim:
            raise ValueError(f"{self._where()}: dim {self.dim} is out of range for inputs of "
                             f"shape {x1.shape}")
        eps = x1.dtype.type(self.eps)
        n1 = np.maximum(np.sqrt((x1 * x1).sum(axis=axis, keepdims=True)), eps)
        n2 = np.maximum(np.sqrt((x2 * x2).sum(axis=axis, keepdims=True)), eps)
        cos = ((x1 / n1) * (x2 / n2)).sum(axis=axis, keepdims=True)
        d1 = x2 / (n1 * n2) - cos * x1 / (n1 * n1)
        d2 = x1 / (n1 * n2) - cos * x2 / (n2 * n2)
        out = np.squeeze(cos, axis=axis)
        self._ctx = (d1, d2, out.shape, axis)
        return self._namespace.put(np.array(out))  # (a copy; 0-d stays 0-d)

    def extra_repr(self):
        return ""


class PairwiseDistance(_TwoInputs):
    """||x1 - x2 + eps||_p along the last axis (PyTorch's; keepdim keeps that axis as 1).
    x1, x2: (N, D) or (D,)."""

    def __init__(self, p=2.0, eps=1e-6, keepdim=False):
        super().__init__()
        check_number("PairwiseDistance", "p", p, 0.0, low_open=True)
        check_number("PairwiseDistance", "eps", eps, 0.0)
        self.norm, self.eps = float(p), float(eps)
        self.keepdim = check_bool("PairwiseDistance", "keepdim", keepdim)

    def forward(self, x1, x2):
        x1, x2 = self._inputs(x1, x2)
        diff = x1 - x2 + x1.dtype.type(self.eps)
        p = self.norm
        if p == 2.0:
            dist = np.sqrt((diff * diff).sum(axis=-1, keepdims=True))
            grad = diff / np.where(dist > 0, dist, 1)
        else:
            a = np.abs(diff)
            dist = (a ** p).sum(axis=-1, keepdims=True) ** (1 / p)
            grad = np.sign(diff) * (a / np.where(dist > 0, dist, 1)) ** (p - 1)
        out = dist if self.keepdim else dist[..., 0]
        self._ctx = (grad, -grad, out.shape, x1.ndim - 1)
        return self._namespace.put(np.array(out))  # (a copy; 0-d stays 0-d)

    def extra_repr(self):
        return ""
