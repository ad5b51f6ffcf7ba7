"""Depthwise convolution in plain NumPy: the specification the compiled backends follow.

PyTorch's Conv2d with groups = C_in: input channel c is convolved with its own M =
C_out / C_in kernels, giving output channels c * M, ..., c * M + M - 1. The window view
of the padded input (conv.py's ``_windows``, no copy) meets the kernels in one einsum per
direction; the input gradient goes back through conv.py's window adjoint (col2im).
"""
import numpy as np

from ..window_shapes import pool_out_shape
from .conv import _pad, _window_adjoint, _windows, _write

__all__ = ["depthwise_conv2d_forward", "depthwise_conv2d_backward"]


def _kernels_by_channel(weight, c_in):
    """weight (C_out, 1, kH, kW) -> (C_in, M, kH, kW), a view."""
    c_out, _, kh, kw = weight.shape
    return weight.reshape(c_in, c_out // c_in, kh, kw)


def depthwise_conv2d_forward(x, weight, bias=None, stride=(1, 1), padding=(0, 0), out=None):
    """Depthwise 2-D cross-correlation, zero padding.

    x: (N, C_in, H, W); weight: (C_out, 1, kH, kW), C_out = M * C_in; bias: (C_out,) or
    None; out: (N, C_out, H_out, W_out) or None. Returns y: (N, C_out, H_out, W_out).
    """
    n, c_in = x.shape[:2]
    c_out, _, kh, kw = weight.shape
    ho, wo = pool_out_shape(x.shape, (kh, kw), stride, padding)[2:]
    win = _windows(_pad(x, padding), (kh, kw), stride, (ho, wo))  # (N, C, Ho, Wo, kH, kW)
    y = np.einsum("nchwij,cmij->ncmhw", win, _kernels_by_channel(weight, c_in))
    y = y.reshape(n, c_out, ho, wo)
    if bias is not None:
        y += bias.reshape(c_out, 1, 1)
    return _write(y, out)


def depthwise_conv2d_backward(grad_out, x, weight, stride=(1, 1), padding=(0, 0),
                              grad_weight=None, grad_bias=None, grad_in=None,
                              need_grad_in=True):
    """Backward of depthwise_conv2d_forward.

    grad_out: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_out, 1, kH, kW);
    grad_weight: like weight, grad_bias: (C_out,), each None or accumulated in place;
    grad_in: (N, C_in, H, W) or None. Returns grad_in, or None if not need_grad_in.
    """
    n, c_in = x.shape[:2]
    c_out, _, kh, kw = weight.shape
    ho, wo = grad_out.shape[2:]
    g = grad_out.reshape(n, c_in, c_out // c_in, ho, wo)
    if grad_weight is not None:
        win = _windows(_pad(x, padding), (kh, kw), stride, (ho, wo))
        grad_weight += np.einsum("nchwij,ncmhw->cmij", win, g).reshape(weight.shape)
    if grad_bias is not None:
        grad_bias += grad_out.sum(axis=(0, 2, 3), dtype=np.float64)   # as dense.py's
    if not need_grad_in:
        return None
    grad_win = np.einsum("ncmhw,cmij->nchwij", g, _kernels_by_channel(weight, c_in))
    return _write(_window_adjoint(grad_win, x.shape, stride, padding), grad_in)
