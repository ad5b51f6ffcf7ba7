"""Layer normalisation forward and backward in plain NumPy: the specification.

x is (N, D): each row is normalised over its D values (the layer views any input
(*, normalized_shape) this way); weight and bias are per column.
"""
import numpy as np


def layer_norm_forward(x, weight=None, bias=None, eps=1e-5, out=None, save_mean=None,
                       save_invstd=None):
    """y = (x - mean) * invstd * weight + bias, statistics per row (biased variance).

    x: (N, D); weight, bias: (D,) or None. Returns (y, save_mean, save_invstd) with
    save_mean, save_invstd: (N,).
    """
    mean = x.mean(axis=1, dtype=np.float64)
    var = np.square(x - mean[:, None].astype(x.dtype), dtype=np.float64).mean(axis=1)
    if save_mean is None:
        save_mean = np.empty(x.shape[0], dtype=x.dtype)
    if save_invstd is None:
        save_invstd = np.empty(x.shape[0], dtype=x.dtype)
    save_mean[...] = mean
    # (a constant row with eps 0: invstd inf and y NaN, as the compiled kernels and
    # PyTorch give them, without NumPy's warnings)
    with np.errstate(divide="ignore", invalid="ignore"):
        save_invstd[...] = 1.0 / np.sqrt(var + eps)
        y = np.multiply(x - save_mean[:, None], save_invstd[:, None], out=out)
    if weight is not None:
        y *= weight
    if bias is not None:
        y += bias
    return y, save_mean, save_invstd


def layer_norm_backward(grad_out, x, weight, save_mean, save_invstd, grad_weight=None,
                        grad_bias=None, grad_in=None):
    """Gradient w.r.t. x (returned) and accumulated grad_weight, grad_bias: (D,).

    With xhat = (x - mean) * invstd and gx = grad_out * weight:
    grad_in = invstd * (gx - mean(gx) - xhat * mean(gx * xhat)) per row;
    grad_weight += sum over rows of grad_out * xhat; grad_bias += sum of grad_out.
    """
    with np.errstate(invalid="ignore"):   # (0 * inf: a constant row with eps 0)
        xhat = (x - save_mean[:, None]) * save_invstd[:, None]
    if grad_weight is not None:
        grad_weight += (grad_out * xhat).sum(axis=0, dtype=np.float64).astype(x.dtype)
    if grad_bias is not None:
        grad_bias += grad_out.sum(axis=0, dtype=np.float64).astype(x.dtype)
    gx = grad_out if weight is None else grad_out * weight
    mean_gx = gx.mean(axis=1, dtype=np.float64).astype(x.dtype)[:, None]
    mean_gx_xhat = (gx * xhat).mean(axis=1, dtype=np.float64).astype(x.dtype)[:, None]
    with np.errstate(invalid="ignore"):
        result = save_invstd[:, None] * (gx - mean_gx - xhat * mean_gx_xhat)
    if grad_in is None:
        return np.ascontiguousarray(result)
    grad_in[...] = result
    return grad_in
