"""PyTorch's CosineSimilarity, PairwiseDistance and Bilinear: modules of two inputs,
NumPy on the host. ``forward(x1, x2)`` returns the similarity, distance or output;
``backward(grad_out)`` returns (grad_x1, grad_x2). A device input's results go back to
the device."""
import math
import numbers


import numpy as np

from .. import device as _device
from .. import random as _random
from ..errors import IndexValueError, RuntimeValueError, TypeValueError
from ..validation import (as_contiguous, check_bool, check_float_array, check_number,
                          check_positive_int, float_of)
from . import init
from .module import Module, Parameter, check_kept, kept_for_backward, live_grad


class _TwoInputs(Module):
    """Shared checks: two float arrays of one dtype whose shapes broadcast (PyTorch's), of
    rank >= 1; the gradients come back summed to each input's own shape."""

    def _inputs(self, x1, x2):
        """(x1, x2 as host arrays broadcast to one shape, the caller's namespace, their
        own shapes). A 0-d input broadcasts as PyTorch's; two of them are read as (1,)
        arrays (the one value along the reduced axis)."""
        where = self._where()
        x1 = check_float_array(where, "x1", x1, device_ok=True)
        x2 = check_float_array(where, "x2", x2, dtype=x1.dtype, device_ok=True)
        shapes = (tuple(x1.shape), tuple(x2.shape))
        try:
            shape = np.broadcast_shapes(*shapes) or (1,)
        except ValueError:
            raise ValueError(f"{where}: expected x1 and x2 of shapes that broadcast, got "
                             f"{shapes[0]} and {shapes[1]}") from None
        host = (np.broadcast_to(_device.to_host(x), shape) for x in (x1, x2))
        return (*host, _device.namespace_of(x1), shapes)

    def __call__(self, x1, x2):
        return self.forward(x1, x2)

    def backward(self, grad_out):
        """(grad_x1, grad_x2) for grad_out, the gradient w.r.t. the last forward's output
        (its shape)."""
        check_kept(self, getattr(self, "_ctx", None))
        d1, d2, out_shape, axis, caller, shapes = self._ctx
        if isinstance(grad_out, np.generic):   # (-g of a 0-d array is a NumPy scalar)
            grad_out = np.asarray(grad_out)
        g = _device.to_host(check_float_array(self._where(), "grad_out", grad_out,
                                              dtype=d1.dtype, device_ok=True))
        if g.shape != out_shape:
            raise RuntimeValueError(f"{self._where()}: expected grad_out of shape "
                                    f"{out_shape}, got {g.shape}")
        g = np.expand_dims(g, axis) if len(out_shape) < d1.ndim else g
        return tuple(caller.put(summed_to(g * d, shape)) for d, shape in zip((d1, d2), shapes))


def summed_to(g, shape):
    """g (of a broadcast shape) summed over the axes broadcasting added to shape."""
    g = np.asarray(g)
    if g.shape == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(lead))) if lead > 0 else g
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape) if axes else g.reshape(shape)


def _unit(x, norm):
    """x / norm, 0 where norm is 0 (the 2-norm's gradient, as PyTorch's)."""
    return x / np.where(norm > 0, norm, norm.dtype.type(1)) * (norm > 0)


class CosineSimilarity(_TwoInputs):
    """sum(x1 x2) / (max(||x1||, eps) max(||x2||, eps)) along ``dim`` (PyTorch's: each
    norm clamped at eps, the gradient through the norm that of the unclamped norm,
    x / ||x||, 0 for a zero x). x1, x2: shapes that broadcast; the output drops the dim
    axis."""

    def __init__(self, dim=1, eps=1e-8):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise TypeValueError(f"CosineSimilarity: expected dim to be an int, got {dim!r}")
        check_number("CosineSimilarity", "eps", eps, 0.0, infinite_ok=True)   # (PyTorch's)
        self.dim, self.eps = int(dim), float(eps)

    def forward(self, x1, x2):
        """The similarity along dim of x1 and x2 (shapes that broadcast): the broadcast
        shape without dim."""
        x1, x2, caller, shapes = self._inputs(x1, x2)
        axis = self.dim + x1.ndim if self.dim < 0 else self.dim
        if not 0 <= axis < x1.ndim:
            raise IndexValueError(f"{self._where()}: dim {self.dim} is out of range for inputs of "
                                  f"shape {x1.shape}")
        eps = x1.dtype.type(self._float("eps"))   # (an attribute a user may set)
        with np.errstate(over="ignore", invalid="ignore"):   # (inf and NaN as PyTorch's)
            return self._similarity(x1, x2, axis, eps, caller, shapes)

    def _similarity(self, x1, x2, axis, eps, caller, shapes):
        """The similarity of x1 and x2 (one broadcast shape) along axis, the gradients'
        factors kept for backward."""
        r1 = np.sqrt((x1 * x1).sum(axis=axis, keepdims=True))
        r2 = np.sqrt((x2 * x2).sum(axis=axis, keepdims=True))
        n1, n2 = np.maximum(r1, eps), np.maximum(r2, eps)
        cos = ((x1 / n1) * (x2 / n2)).sum(axis=axis, keepdims=True)
        # d cos / d x1 = x2 / (n1 n2) - cos / n1 * d||x1|| / d x1, with the unclamped
        # norm's x1 / ||x1|| (PyTorch clamps the norms' values outside autograd)
        d1 = x2 / (n1 * n2) - cos / n1 * _unit(x1, r1)
        d2 = x1 / (n1 * n2) - cos / n2 * _unit(x2, r2)
        out = np.squeeze(cos, axis=axis)
        self._ctx = kept_for_backward((d1, d2, out.shape, axis, caller, shapes))
        return caller.put(np.array(out))  # (a copy; 0-d stays 0-d)

    def extra_repr(self):
        return ""


def check_norm_order(where, p):
    """p as a float: any number, 0, negative and +-inf included (torch.norm's); a
    TypeError for anything else (NaN too)."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or math.isnan(p):
        raise TypeError(f"{where}: expected p to be a number (0, negative and +-inf "
                        f"included, as torch.norm's), got {p!r}")
    return float(p)


def norm_and_grad(diff, p):
    """(||diff||_p along the last axis, keepdims, and its gradient w.r.t. diff) for
    any p as torch.norm: 0 counts the nonzero entries (gradient 0), +-inf is the largest
    (smallest) |entry| (the gradient shared by the tied entries), others the usual
    formula. diff: (..., D)."""
    a = np.abs(diff)
    if p == 2.0:
        dist = np.sqrt((diff * diff).sum(axis=-1, keepdims=True))
        grad = diff / np.where(dist == 0, 1, dist)  # (a NaN distance: a NaN row)
    elif p == 0.0:
        dist = (a != 0).sum(axis=-1, keepdims=True).astype(diff.dtype)
        grad = np.zeros_like(diff)
    elif math.isinf(p):
        with np.errstate(invalid="ignore"):
            dist = a.max(axis=-1, keepdims=True) if p > 0 else a.min(axis=-1, keepdims=True)
            # PyTorch's: shared by the entries equal to the norm and the NaN ones, times
            # sgn (0 at NaN)
            hit = (a == dist) | np.isnan(a)
            grad = _sgn(diff) * (hit / hit.sum(axis=-1, keepdims=True))
    elif p == 1.0:   # PyTorch's sgn(diff), 0 at a NaN entry (and at 0)
        dist = a.sum(axis=-1, keepdims=True)
        grad = _sgn(diff)
    else:   # PyTorch's norm backward, term for term (its NaN and inf where it has them)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            dist = (a ** p).sum(axis=-1, keepdims=True) ** (1 / p)
            if p < 1.0:
                grad = _sgn(diff) * np.where(a == 0, 0, a ** (p - 1)) * dist ** (1 - p)
            else:
                scale = np.where(dist == 0, 0, 1 / dist ** (p - 1))
                grad = (_sgn(diff) * a ** (p - 1) if p < 2.0 else diff * a ** (p - 2)) * scale
    return dist, grad.astype(diff.dtype, copy=False)


def _sgn(x):
    """PyTorch's sgn: -1, 0 or 1, and 0 (not NaN) at NaN."""
    return np.sign(np.where(np.isnan(x), 0, x)).astype(x.dtype, copy=False)


class PairwiseDistance(_TwoInputs):
    """||x1 - x2 + eps||_p along the last axis (PyTorch's; keepdim keeps that axis as 1),
    for any p as torch.norm: p = 0 counts the nonzero entries, +-inf is the largest
    (smallest) |entry|, a negative p the same formula as a positive one.
    x1, x2: (N, D) or (D,)."""

    def __init__(self, p=2.0, eps=1e-6, keepdim=False):
        super().__init__()
        check_norm_order("PairwiseDistance", p)
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real):   # (any, as PyTorch)
            raise TypeError(f"PairwiseDistance: expected eps to be a number, got {eps!r}")
        self.norm, self.eps = p, eps   # as given, PyTorch's attributes
        self.keepdim = check_bool("PairwiseDistance", "keepdim", keepdim)

    def forward(self, x1, x2):
        """The distances along the last axis of x1 and x2 ((N, D) or (D,), or shapes that
        broadcast): the broadcast shape without that axis (keepdim: with it as 1)."""
        # (attributes a user may set: no number gets the error naming the layer)
        eps, norm = (float_of(type(self).__name__, name, getattr(self, name))
                     for name in ("eps", "norm"))
        x1, x2, caller, shapes = self._inputs(x1, x2)
        with np.errstate(over="ignore", invalid="ignore"):   # (inf and NaN as PyTorch's)
            dist, grad = norm_and_grad(x1 - x2 + x1.dtype.type(eps), norm)
        out = dist if self.keepdim and shapes != ((), ()) else dist[..., 0]
        self._ctx = kept_for_backward((grad, -grad, out.shape, x1.ndim - 1, caller, shapes))
        return caller.put(np.array(out))  # (a copy; 0-d stays 0-d)

    def extra_repr(self):
        return ""


class Bilinear(_TwoInputs):
    """y = x1^T A x2 + b for each output: weight A (out_features, in1_features,
    in2_features), bias (out_features,), both U(-1/sqrt(in1), 1/sqrt(in1)) (PyTorch's).
    x1 (*, in1_features), x2 (*, in2_features) with the same leading dimensions;
    y (*, out_features). backward(grad_out) returns (grad_x1, grad_x2) and accumulates
    the parameters' gradients. NumPy on the host (two matrix products each way)."""

    def __init__(self, in1_features, in2_features, out_features, bias=True,
                 dtype=np.float32):
        super().__init__()
        name = "Bilinear"
        self.in1_features = check_positive_int(name, "in1_features", in1_features)
        self.in2_features = check_positive_int(name, "in2_features", in2_features)
        self.out_features = check_positive_int(name, "out_features", out_features)
        bound = 1.0 / np.sqrt(self.in1_features)
        rng = _random.generator()
        shape = (self.out_features, self.in1_features, self.in2_features)
        self.weight = Parameter(rng.uniform(-bound, bound, shape).astype(dtype))
        self.bias = (Parameter(rng.uniform(-bound, bound, self.out_features).astype(dtype))
                     if bias else None)

    def reset_parameters(self):
        """PyTorch's: weight and bias drawn from U(-1/sqrt(in1), 1/sqrt(in1)) again, in
        place."""
        bound = 1.0 / np.sqrt(self.in1_features)
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def _inputs(self, x1, x2):
        where = self._where()
        x1 = check_float_array(where, "x1", x1, device_ok=True)
        x2 = check_float_array(where, "x2", x2, dtype=x1.dtype, device_ok=True)
        s1, s2 = tuple(x1.shape), tuple(x2.shape)
        if (not s1 or s1[-1] != self.in1_features or not s2 or s2[-1] != self.in2_features
                or s1[:-1] != s2[:-1]):
            raise RuntimeValueError(f"{where}: expected x1 (*, {self.in1_features}) and x2 "
                                    f"(*, {self.in2_features}) with the same leading "
                                    f"dimensions, got {s1} and {s2}")
        self._check_dtype(x1.dtype, self.weight.data.dtype)
        # contiguous: einsum sums a strided operand in another order (other bits)
        return (as_contiguous(_device.to_host(x1)).reshape(-1, self.in1_features),
                as_contiguous(_device.to_host(x2)).reshape(-1, self.in2_features), s1[:-1],
                _device.namespace_of(x1))

    def forward(self, x1, x2):
        """y (*, out_features) for x1 (*, in1_features) and x2 (*, in2_features) of the
        same leading dimensions."""
        a, b, lead, caller = self._inputs(x1, x2)
        w = _device.to_host(self.weight.data)
        # (N, in1) @ (in1, out * in2) -> (N, out, in2), then contract in2 with x2
        t = (a @ w.transpose(1, 0, 2).reshape(self.in1_features, -1)).reshape(
            a.shape[0], self.out_features, self.in2_features)
        y = np.einsum("noj,nj->no", t, b)
        if self.bias is not None:
            y += _device.to_host(self.bias.data)
        self._ctx = kept_for_backward((a, b, t, lead, caller))
        return caller.put(y.reshape(lead + (self.out_features,)))

    def backward(self, grad_out):
        """(grad_x1, grad_x2) for grad_out (*, out_features); parameter gradients
        accumulate."""
        check_kept(self, getattr(self, "_ctx", None))
        a, b, t, lead, caller = self._ctx
        g = _device.to_host(check_float_array(self._where(), "grad_out", grad_out,
                                              dtype=a.dtype, device_ok=True))
        if g.shape != lead + (self.out_features,):
            raise RuntimeValueError(f"{self._where()}: expected grad_out of shape "
                                    f"{lead + (self.out_features,)}, got {g.shape}")
        g = as_contiguous(g).reshape(-1, self.out_features)
        w = _device.to_host(self.weight.data)
        grad_x2 = np.einsum("no,noj->nj", g, t)
        u = np.einsum("no,oij->nij", g, w)                    # (N, in1, in2)
        grad_x1 = np.einsum("nij,nj->ni", u, b)
        # one matrix product (BLAS) of the (N, out * in1) products g a with x2: the
        # three-operand einsum summed the N rows one by one in float32 (2^16 rows: 1e-5
        # off, PyTorch's 3e-7) and ran 5-20x slower
        # (a frozen parameter's gradient is neither computed nor touched, as PyTorch's)
        o, i = self.out_features, self.in1_features
        if self.weight.requires_grad:
            grad_w = ((g[:, :, None] * a[:, None, :]).reshape(-1, o * i).T @ b).reshape(
                self.weight.data.shape)
            _device.update_on_host(self.weight.grad, lambda x: np.add(x, grad_w, out=x))
        if live_grad(self.bias) is not None:
            # summed in float64: NumPy adds a column's rows one by one, which in float32
            # drifts over many rows (2^17: 1e-5 off, PyTorch's 7e-8)
            grad_b = g.sum(axis=0, dtype=np.float64)
            _device.update_on_host(self.bias.grad, lambda x: np.add(x, grad_b, out=x))
        put = lambda x, n: caller.put(x.reshape(lead + (n,)))  # noqa: E731
        return put(grad_x1, self.in1_features), put(grad_x2, self.in2_features)

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")
