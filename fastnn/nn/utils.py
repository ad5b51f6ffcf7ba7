"""Gradient clipping, PyTorch's ``torch.nn.utils.clip_grad_norm_`` and
``clip_grad_value_``: in place on the ``.grad`` arrays, between ``backward`` and
``optimizer.step()``.

Gradients on the GPU are clipped through the host (a copy each way): clipping is not
the GPU's hot path.
"""
import math

import numpy as np

from .. import device as _device
from .module import Parameter


def _grads(where, parameters):
    """The .grad arrays of a Parameter or an iterable of them."""
    params = [parameters] if isinstance(parameters, Parameter) else list(parameters)
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(f"{where}: expected Parameters (model.parameters()), got "
                            f"{type(p).__name__}")
    return [p.grad for p in params if p.grad is not None]


def _positive(where, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or math.isnan(value) or value < 0:
        raise ValueError(f"{where}: expected {name} to be a number >= 0, got {value!r}")
    return float(value)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                    foreach=None):
    """Scale every gradient by max_norm / (total_norm + 1e-6) when that is below 1, where
    total_norm is the norm_type-norm of all gradients taken together (inf: the largest
    magnitude; a NaN or infinite total turns the gradients to NaN, as in PyTorch). Returns total_norm (a float) before clipping. error_if_nonfinite: raise
    RuntimeError, changing nothing, when total_norm is NaN or infinite. foreach is
    accepted for PyTorch code and changes nothing."""
    where = "clip_grad_norm_"
    grads = _grads(where, parameters)
    max_norm = _positive(where, "max_norm", max_norm)
    norm_type = _positive(where, "norm_type", norm_type)
    if not grads:
        return 0.0
    # the norm of the per-array norms, as PyTorch takes it (for order 0 that counts the
    # arrays with a nonzero element)
    norms = [np.linalg.norm(_device.to_host(g).ravel().astype(np.float64), ord=norm_type)
             for g in grads]
    total = float(np.linalg.norm(np.array(norms), ord=norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"{where}: the total norm of order {norm_type} of the gradients "
                           f"is non-finite ({total}), so it cannot be clipped; pass "
                           f"error_if_nonfinite=False to clip anyway")
    coef = max_norm / (total + 1e-6)
    if coef < 1.0 or math.isnan(coef):
        with np.errstate(invalid="ignore"):  # an infinite element times 0: NaN, as torch
            for g in grads:
                _device.scaled(g, coef)
    return total


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient element to [-clip_value, clip_value], in place."""
    where = "clip_grad_value_"
    grads = _grads(where, parameters)
    clip_value = _positive(where, "clip_value", clip_value)
    for g in grads:
        if _device.is_device_array(g):
            _device.namespace_of(g).copy_into(
                g, np.clip(_device.to_host(g), -clip_value, clip_value))
        else:
            np.clip(g, -clip_value, clip_value, out=g)
