"""Convolution and pooling in plain NumPy: the specification the compiled backends follow.

Layout is NCHW throughout. Convolution is im2col (a strided window view of the padded
input, no copy until the reshape) followed by one matrix product; its backward is the
transposed product and a col2im that adds each kernel offset's slice back in place.
Pooling uses the same window view. Semantics are PyTorch's: zero padding for
convolution and average pooling, -inf padding for max pooling (a padded cell never
wins), ``count_include_pad``, ``ceil_mode`` and ``divisor_override`` as in
``torch.nn.AvgPool2d`` and ``MaxPool2d`` (output sizes: kernels/window_shapes.py).
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..window_shapes import pool_out_shape

__all__ = ["conv2d_forward", "conv2d_backward", "max_pool2d_forward", "max_pool2d_backward",
           "avg_pool2d_forward", "avg_pool2d_backward"]


def _pad(x, padding, value=0.0, extra=(0, 0)):
    """x: (N, C, H, W) -> (N, C, H + 2 ph + eh, W + 2 pw + ew), the border filled with
    ``value``; extra = (eh, ew) more cells after the bottom and right padding (where
    ceil-mode windows run past it)."""
    (ph, pw), (eh, ew) = padding, extra
    if ph == pw == eh == ew == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph + eh), (pw, pw + ew)), constant_values=value)


def _overhang(input_hw, kernel_size, stride, padding, out_hw):
    """(eh, ew): how far the last windows of an out_hw output reach past the padded input
    (0 in floor mode)."""
    return tuple(max(0, (o - 1) * s + k - (n + 2 * p)) for n, k, s, p, o in
                 zip(input_hw, kernel_size, stride, padding, out_hw))


def _windows(xp, kernel_size, stride, out_hw):
    """Window view of a padded input, no copy.

    xp: (N, C, Hp, Wp). Returns (N, C, H_out, W_out, kH, kW).
    """
    (kh, kw), (sh, sw), (ho, wo) = kernel_size, stride, out_hw
    view = sliding_window_view(xp, (kh, kw), axis=(2, 3))
    return view[:, :, : (ho - 1) * sh + 1 : sh, : (wo - 1) * sw + 1 : sw]


def _im2col(x, kernel_size, stride, padding):
    """x: (N, C, H, W) -> cols: (N * H_out * W_out, C * kH * kW), rows in (n, ho, wo) order."""
    n, c = x.shape[:2]
    ho, wo = pool_out_shape(x.shape, kernel_size, stride, padding)[2:]
    win = _windows(_pad(x, padding), kernel_size, stride, (ho, wo))
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo,
                                                   c * kernel_size[0] * kernel_size[1])
    return cols, (ho, wo)


def _window_adjoint(grad_win, input_shape, stride, padding, window_order=False):
    """The adjoint of ``_windows`` on the padded input, then cropped: col2im.

    grad_win: (N, C, H_out, W_out, kH, kW). Returns (N, C, H, W): every window cell's
    gradient added to the input position it was read from. window_order: each position's
    gradients added window by window in row-major order (PyTorch's average-pooling
    backward's: the taps taken last to first), so that sums that overflow a float32
    overflow as there.
    """
    n, c, h, w = input_shape
    ph, pw = padding
    sh, sw = stride
    _, _, ho, wo, kh, kw = grad_win.shape
    eh, ew = _overhang((h, w), (kh, kw), stride, padding, (ho, wo))
    grad_p = np.zeros((n, c, h + 2 * ph + eh, w + 2 * pw + ew), dtype=grad_win.dtype)
    taps = [(i, j) for i in range(kh) for j in range(kw)]
    for i, j in reversed(taps) if window_order else taps:
        grad_p[:, :, i : i + (ho - 1) * sh + 1 : sh, j : j + (wo - 1) * sw + 1 : sw] += \
            grad_win[:, :, :, :, i, j]
    return grad_p[:, :, ph : ph + h, pw : pw + w]


def _write(result, out):
    if out is None:
        return np.ascontiguousarray(result)
    out[...] = result
    return out


# ----------------------------------------------------------------------- convolution
def conv2d_forward(x, weight, bias=None, stride=(1, 1), padding=(0, 0), out=None):
    """2-D cross-correlation, zero padding.

    x: (N, C_in, H, W); weight: (C_out, C_in, kH, kW); bias: (C_out,) or None;
    out: (N, C_out, H_out, W_out) or None. Returns y: (N, C_out, H_out, W_out).
    """
    n = x.shape[0]
    c_out = weight.shape[0]
    cols, (ho, wo) = _im2col(x, weight.shape[2:], stride, padding)
    # sizes spelled out, not -1: with C_out = 0 there is no size to infer
    y = cols @ weight.reshape(c_out, cols.shape[1]).T     # (N * H_out * W_out, C_out)
    if bias is not None:
        y += bias
    return _write(y.reshape(n, ho, wo, c_out).transpose(0, 3, 1, 2), out)


def conv2d_backward(grad_out, x, weight, stride=(1, 1), padding=(0, 0), grad_weight=None,
                    grad_bias=None, grad_in=None, need_grad_in=True):
    """Backward of conv2d_forward.

    grad_out: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_out, C_in, kH, kW);
    grad_weight: like weight, grad_bias: (C_out,), each None or accumulated in place;
    grad_in: (N, C_in, H, W) or None. Returns grad_in, or None if not need_grad_in.
    """
    n, c_in = x.shape[:2]
    c_out, _, kh, kw = weight.shape
    ho, wo = grad_out.shape[2:]
    # sizes spelled out, not -1: with C_out = 0 there is no size to infer
    g = grad_out.transpose(0, 2, 3, 1).reshape(n * ho * wo, c_out)  # (N * H_out * W_out, C_out)
    if grad_weight is not None:
        cols, _ = _im2col(x, (kh, kw), stride, padding)
        grad_weight += (g.T @ cols).reshape(weight.shape)
    if grad_bias is not None:
        grad_bias += grad_out.sum(axis=(0, 2, 3), dtype=np.float64)   # as dense.py's
    if not need_grad_in:
        return None
    grad_cols = g @ weight.reshape(c_out, c_in * kh * kw)  # (N * H_out * W_out, C_in*kH*kW)
    grad_win = grad_cols.reshape(n, ho, wo, c_in, kh, kw).transpose(0, 3, 1, 2, 4, 5)
    return _write(_window_adjoint(grad_win, x.shape, stride, padding), grad_in)


# ----------------------------------------------------------------------- max pooling
def last_nan_or_argmax(values):
    """Index along the last axis of values (..., K) of PyTorch's window maximum: the last
    NaN where there is one (its kernels take every NaN they meet), else the first of
    the equal maxima."""
    nan = np.isnan(values)
    last_nan = values.shape[-1] - 1 - np.argmax(nan[..., ::-1], axis=-1)
    return np.where(nan.any(axis=-1), last_nan, np.argmax(values, axis=-1))


def max_pool2d_forward(x, kernel_size, stride, padding=(0, 0), out=None, indices=None,
                       ceil_mode=False, dilation=(1, 1)):
    """Max pooling with -inf padding.

    x: (N, C, H, W); out, indices: (N, C, H_out, W_out) or None. ceil_mode: PyTorch's
    (H_out rounded up; the last windows may run past the padding, never start in it);
    dilation: a pair, the window's taps that far apart (it spans d (k - 1) + 1 cells).
    Returns (y, indices) where indices holds the int64 flat position h * W + w of each
    window's maximum in its (n, c) plane (the first one in row-major window order on
    ties; a NaN wins, the window's last one, as in PyTorch).
    """
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    ho, wo = pool_out_shape(x.shape, kernel_size, stride, padding, ceil_mode, dilation)[2:]
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    extra = _overhang((h, w), span, stride, padding, (ho, wo))
    win = _windows(_pad(x, padding, -np.inf, extra), span, stride, (ho, wo))[..., ::dh, ::dw]
    flat = win.reshape(n, c, ho, wo, kh * kw)
    arg = last_nan_or_argmax(flat)
    y = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    top, left = np.arange(ho)[:, None] * sh - ph, np.arange(wo)[None, :] * sw - pw
    rows, cols = top + arg // kw * dh, left + arg % kw * dw
    # a window whose every value is -inf (padding or input) points, as PyTorch's, at its
    # first tap at or past row 0 and column 0 (even one beyond the input)
    empty = y == -np.inf
    rows = np.where(empty, np.where(top < 0, top % dh, top), rows)
    cols = np.where(empty, np.where(left < 0, left % dw, left), cols)
    return _write(y, out), _write((rows * w + cols).astype(np.int64), indices)


def max_pool2d_backward(grad_out, indices, input_shape, grad_in=None):
    """grad_out, indices: (N, C, H_out, W_out); input_shape: (N, C, H, W).

    Returns grad_in: input_shape, each grad_out value added at its argmax (windows that
    overlap may share one, so contributions sum). An index outside the plane (PyTorch's
    for a window wholly in the padding, whose -inf output no input moves) adds nothing.
    """
    n, c, h, w = input_shape
    result = np.zeros((n * c, h * w + 1), dtype=grad_out.dtype)  # + 1: a bin for those
    planes = np.arange(n * c)[:, None]
    p = grad_out.shape[2] * grad_out.shape[3]  # not -1: an empty batch has no size to infer
    flat = indices.reshape(n * c, p)
    flat = np.where((flat >= 0) & (flat < h * w), flat, h * w)
    np.add.at(result, (planes, flat), grad_out.reshape(n * c, p))
    result = result[:, :h * w]
    return _write(result.reshape(input_shape), grad_in)


# ------------------------------------------------------------------- average pooling
def _avg_divisor(input_shape, kernel_size, stride, padding, count_include_pad, out_hw,
                 divisor_override, dtype):
    """The number each window's sum is divided by: (H_out, W_out), or a scalar.

    divisor_override when given; else the window's cells inside the padded input
    (count_include_pad: kH * kW except where a ceil-mode window runs past the padding)
    or inside the input itself.
    """
    if divisor_override:
        return dtype.type(divisor_override)
    counted = np.ones((1, 1) + tuple(input_shape[2:]), dtype=dtype)
    if count_include_pad:
        counted = _pad(counted, padding, 1.0)
        padding = (0, 0)
    extra = _overhang(counted.shape[2:], kernel_size, stride, padding, out_hw)
    return _windows(_pad(counted, padding, 0.0, extra), kernel_size, stride,
                    out_hw).sum(axis=(-2, -1))[0, 0]


def _window_sums(win):
    """win: (N, C, H_out, W_out, kH, kW) -> each window's sum, its cells added one by one
    in row-major order from 0 in win's dtype (PyTorch's and the compiled kernels' order:
    a float32 window near the max overflows to the same inf, or NaN, as theirs)."""
    sums = np.zeros(win.shape[:4], win.dtype)
    for i in range(win.shape[4]):
        for j in range(win.shape[5]):
            sums += win[..., i, j]
    return sums


def avg_pool2d_forward(x, kernel_size, stride, padding=(0, 0), count_include_pad=True,
                       out=None, ceil_mode=False, divisor_override=None):
    """Average pooling with zero padding.

    x: (N, C, H, W); out: (N, C, H_out, W_out) or None. Each window's sum is divided by
    divisor_override when given (a positive int); else, with count_include_pad, by the
    number of its cells inside the padded input (kH * kW unless ceil_mode's last windows
    run past the padding); without it, by the number of input cells it covers.
    """
    out_hw = pool_out_shape(x.shape, kernel_size, stride, padding, ceil_mode)[2:]
    extra = _overhang(x.shape[2:], kernel_size, stride, padding, out_hw)
    sums = _window_sums(_windows(_pad(x, padding, 0.0, extra), kernel_size, stride,
                                 out_hw))
    divisor = _avg_divisor(x.shape, kernel_size, stride, padding, count_include_pad, out_hw,
                           divisor_override, x.dtype)
    return _write(sums / divisor, out)


def avg_pool2d_backward(grad_out, input_shape, kernel_size, stride, padding=(0, 0),
                        count_include_pad=True, grad_in=None, ceil_mode=False,
                        divisor_override=None):
    """grad_out: (N, C, H_out, W_out); input_shape: (N, C, H, W); the window arguments
    as avg_pool2d_forward's (grad_out's shape gives the output size).

    Returns grad_in: input_shape, each window's grad_out / divisor spread over its cells.
    """
    kh, kw = kernel_size
    divisor = _avg_divisor(input_shape, kernel_size, stride, padding, count_include_pad,
                           grad_out.shape[2:], divisor_override, grad_out.dtype)
    share = grad_out / divisor                              # (N, C, H_out, W_out)
    grad_win = np.broadcast_to(share[..., None, None], share.shape + (kh, kw))
    return _write(_window_adjoint(grad_win, input_shape, stride, padding, True), grad_in)
