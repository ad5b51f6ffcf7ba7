"""Batch normalisation forward and backward in plain NumPy: the specification.

x is (N, C) or (N, C, H, W); statistics are per channel C over every other axis.
"""
import numpy as np


def _axes(x):
    return (0,) if x.ndim == 2 else (0,) + tuple(range(2, x.ndim))


def _per_channel(v, x):
    """Reshape a (C,) vector to broadcast against x."""
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def batchnorm_forward(x, weight, bias, running_mean, running_var, training=True,
                      momentum=0.1, eps=1e-5, mean_only=False, out=None,
                      save_mean=None, save_invstd=None):
    """y = (x - mean) * invstd * weight + bias, or y = x - mean + bias when mean_only; in
    eval (running statistics) y = x * scale + (bias - mean * scale), scale = invstd *
    weight, as PyTorch folds it.

    x: (N, C) or (N, C, H, W); weight, bias, running_mean, running_var: (C,)
    (weight and running_var None when mean_only). Returns (y, save_mean, save_invstd).
    """
    axes = _axes(x)
    count = x.size // max(x.shape[1], 1)  # (no channel: an empty x, as eval may get)
    dt = x.dtype.type
    if training:
        mean = x.mean(axis=axes, dtype=np.float64)
        running_mean *= dt(1 - momentum)
        running_mean += (momentum * mean).astype(x.dtype)
    else:
        mean = running_mean.astype(np.float64)
    if save_mean is None:
        save_mean = np.empty(x.shape[1], dtype=x.dtype)
    save_mean[...] = mean
    if mean_only:
        y = np.add(x - _per_channel(save_mean, x), _per_channel(bias, x), out=out)
        return y, save_mean, None
    if training:   # (eval's folded form below needs no centered copy)
        centered = x - _per_channel(save_mean, x)
        var = np.square(centered, dtype=np.float64).mean(axis=axes)
        unbiased = var * count / max(count - 1, 1)
        running_var *= dt(1 - momentum)
        running_var += (momentum * unbiased).astype(x.dtype)
    else:
        var = running_var.astype(np.float64)
    if save_invstd is None:
        save_invstd = np.empty(x.shape[1], dtype=x.dtype)
    with np.errstate(divide="ignore"):
        save_invstd[...] = 1.0 / np.sqrt(var + eps)
    if training and eps == 0:   # PyTorch's: a constant channel's invstd is 0 (y = bias)
        save_invstd[var == 0] = 0
    with np.errstate(invalid="ignore"):   # (inf * 0: a weight 0 where invstd is inf)
        scale = save_invstd * weight
    if not training:
        # PyTorch's eval form, x * scale + (bias - mean * scale): where running_var + eps
        # is 0 its inf scale gives its inf/NaN per element, not (x - mean) * inf's
        with np.errstate(invalid="ignore"):
            shift = (bias - mean * scale.astype(np.float64)).astype(x.dtype)
            y = np.multiply(x, _per_channel(scale, x), out=out)
            y += _per_channel(shift, x)
        return y, save_mean, save_invstd
    y = np.multiply(centered, _per_channel(scale, x), out=out)
    y += _per_channel(bias, x)
    return y, save_mean, save_invstd


def batchnorm_backward(grad_out, x, weight, save_mean, save_invstd, training=True,
                       mean_only=False, grad_weight=None, grad_bias=None, grad_in=None):
    """Gradient w.r.t. x (returned) and accumulated grad_weight, grad_bias: (C,).

    grad_out, x: (N, C) or (N, C, H, W); save_mean, save_invstd: (C,) from the forward.
    """
    axes = _axes(x)
    count = x.size // max(x.shape[1], 1)  # (no channel: an empty x, as eval may get)
    sum_g = grad_out.sum(axis=axes, dtype=np.float64)
    if grad_bias is not None:
        grad_bias += sum_g.astype(x.dtype)
    if mean_only:
        g = grad_out - _per_channel((sum_g / count).astype(x.dtype), x) if training else grad_out
        return _copy_to(g, grad_in)
    x_hat = (x - _per_channel(save_mean, x)) * _per_channel(save_invstd, x)
    sum_g_xhat = (grad_out * x_hat).sum(axis=axes, dtype=np.float64)
    if grad_weight is not None:
        grad_weight += sum_g_xhat.astype(x.dtype)
    scale = _per_channel(weight * save_invstd, x)
    if not training:
        return np.multiply(grad_out, scale, out=grad_in)
    mean_g = _per_channel((sum_g / count).astype(x.dtype), x)
    mean_g_xhat = _per_channel((sum_g_xhat / count).astype(x.dtype), x)
    g = (grad_out - mean_g - x_hat * mean_g_xhat) * scale
    return _copy_to(g, grad_in)


def _copy_to(value, out):
    if out is None:
        return np.array(value, copy=True)
    out[...] = value
    return out
