"""Convolutions of one-pixel planes under a 1x1 kernel, run as the Linear they are.

A (N, C_in, 1, 1) input (the map after a global pooling: squeeze-and-excitation blocks,
1x1 heads) under a (C_out, C_in, 1, 1) kernel with no padding gives one output pixel a
sample, whose channels are y = x W^T + b: the Linear's one product over the whole batch.
The conv kernels ran it as any convolution, gathering columns and scattering outputs a
sample and a channel at a time, with inner loops of one value (1024x256x1x1 -> 256,
float32, 1 thread: 2.2-4.3x the NumPy reference, whose im2col is a reshape here).
``route_one_pixel`` wraps a backend's conv2d_forward / conv2d_backward so that such a
call goes to that backend's linear_forward / linear_backward on (N, C) views.
"""
import functools

import numpy as np


def one_pixel(x_shape, weight_shape, padding):
    """Whether conv2d of an input of x_shape (N, C_in, H, W) with a weight of
    weight_shape (C_out, C_in, kH, kW) and this padding is a Linear over (N, C_in): 1x1
    planes, a 1x1 kernel and no padding (any stride gives the one pixel)."""
    return (x_shape[2] == 1 and x_shape[3] == 1 and weight_shape[2] == 1
            and weight_shape[3] == 1 and tuple(padding) == (0, 0))


def _views(*arrays):
    """Whether each array is None or C-contiguous: reshaped, a view of it is written (or
    read: the numba linear kernels take C-ordered arrays only, where the conv kernels
    copy a strided input)."""
    return all(a is None or a.flags.c_contiguous for a in arrays)


def route_one_pixel(conv_forward, conv_backward, linear_forward, linear_backward):
    """(conv2d_forward, conv2d_backward) that run one_pixel calls as linear_forward /
    linear_backward (parameter gradients accumulated, as the conv's are) and every other
    call as conv_forward / conv_backward."""

    @functools.wraps(conv_forward)
    def forward(x, weight, bias=None, stride=(1, 1), padding=(0, 0), out=None):
        if not (one_pixel(x.shape, weight.shape, padding) and _views(x, weight, out)):
            return conv_forward(x, weight, bias, stride, padding, out)
        n, c_in, c_out = x.shape[0], x.shape[1], weight.shape[0]
        if out is None:
            out = np.empty((n, c_out, 1, 1), dtype=x.dtype)
        linear_forward(x.reshape(n, c_in), weight.reshape(c_out, c_in), bias,
                       out=out.reshape(n, c_out))
        return out

    @functools.wraps(conv_backward)
    def backward(grad_out, x, weight, stride=(1, 1), padding=(0, 0), grad_weight=None,
                 grad_bias=None, grad_in=None, need_grad_in=True):
        if not (one_pixel(x.shape, weight.shape, padding)
                and _views(grad_out, x, weight, grad_weight,
                           grad_in if need_grad_in else None)):
            return conv_backward(grad_out, x, weight, stride, padding, grad_weight,
                                 grad_bias, grad_in, need_grad_in)
        n, c_in, c_out = x.shape[0], x.shape[1], weight.shape[0]
        if need_grad_in and grad_in is None:
            grad_in = np.empty(x.shape, dtype=x.dtype)
        linear_backward(grad_out.reshape(n, c_out), x.reshape(n, c_in),
                        weight.reshape(c_out, c_in),
                        grad_weight=(None if grad_weight is None
                                     else grad_weight.reshape(c_out, c_in)),
                        grad_bias=grad_bias,
                        grad_in=grad_in.reshape(n, c_in) if need_grad_in else None,
                        need_grad_in=need_grad_in)
        return grad_in if need_grad_in else None

    return forward, backward
