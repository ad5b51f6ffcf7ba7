"""Conv3d and ConvTranspose3d: PyTorch's volumetric convolutions over (N, C, D, H, W)
input, computed with NumPy on the host (a device array goes through the host and comes
back).

Both are im2col plus one matrix product per group (NumPy's matmul, so BLAS):

* im2col copies, for every kernel offset (a, b, c), the strided block of the padded
  input that offset reads, into columns of shape (groups, C / groups * kD * kH * kW,
  N * D_out * H_out * W_out) (one copy through a strided view, no loop over positions);
* col2im is its adjoint: each kernel offset's block added back into the padded volume,
  one strided addition per offset (overlapping windows add up).

Conv3d's forward is weight @ im2col(x), its backward grad @ cols^T (weight) and col2im
of weight^T @ grad (input). ConvTranspose3d swaps them: its forward is col2im of
weight^T @ x, its backward im2col of the gradient.
"""
import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import device as _device
from .. import random as _random
from ..errors import RuntimeValueError
from ..validation import check_only, check_positive_int
from . import init
from .conv import PADDING_MODES, check_no_empty_axes, input_error, pair
from .conv_transpose import OutputSizeForward, check_output_padding, output_padding_for
from .module import Module, Parameter, live_grad, nothing_to_compute
from .padding import check_pad_fits, pad_backward, pad_forward


def triple(layer, name, value, minimum, one=False):
    """An int or 3 ints, each >= minimum, as a tuple of 3 ints (PyTorch's _triple)."""
    return pair(layer, name, value, minimum, 3, one)


ALL = (slice(None), slice(None))  # every sample and channel: ALL + tap_slices(...)


def tap_slices(offset, dilation, stride, out):
    """The slices (depth, height, width) of a padded volume that the kernel offset
    (a, b, c) reads for the out windows along each axis."""
    return tuple(slice(o * d, o * d + s * (n - 1) + 1, s)
                 for o, d, s, n in zip(offset, dilation, stride, out))


def kernel_offsets(kernel):
    """Every kernel offset (a, b, c), depth first (PyTorch's order of the taps)."""
    return np.ndindex(*kernel)


def im2col(xp, groups, kernel, dilation, stride, out):
    """xp (N, C, D, H, W) -> columns (groups, C / groups * kD * kH * kW, N * L), L =
    D_out * H_out * W_out; rows ordered channel, then kernel depth, row, column (the
    weight's order), columns ordered sample, then output position."""
    n, c = xp.shape[:2]
    sn, sc, *spatial = xp.strides
    view = as_strided(xp, (c,) + tuple(kernel) + (n,) + tuple(out),
                      (sc,) + tuple(d * s for d, s in zip(dilation, spatial)) + (sn,)
                      + tuple(st * s for st, s in zip(stride, spatial)), writeable=False)
    return _device.c_contiguous(view).reshape(groups, c // groups * math.prod(kernel),
                                              n * math.prod(out))


def col2im(cols, shape, kernel, dilation, stride, out):
    """The adjoint of im2col: columns (groups, C / groups * kD * kH * kW, N * L) added
    back into a zero volume of shape (N, C, D, H, W); returns an (N, C, D, H, W) view."""
    n, c = shape[:2]
    blocks = cols.reshape((c,) + tuple(kernel) + (n,) + tuple(out))
    total = np.zeros((c, n) + tuple(shape[2:]), cols.dtype)
    for offset in kernel_offsets(kernel):
        total[ALL + tap_slices(offset, dilation, stride, out)] += \
            blocks[(slice(None),) + offset]
    return total.transpose(1, 0, 2, 3, 4)


def _batched(x):
    """(x on the host as (N, C, D, H, W), True when x was unbatched (C, D, H, W))."""
    host = _device.to_host(x)
    return (host[None], True) if host.ndim == 4 else (host, False)


def _channels_first(a, groups):
    """(N, C, *spatial) -> (groups, C / groups, N * L), a contiguous copy."""
    c = a.shape[1]
    return _device.c_contiguous(a.swapaxes(0, 1)).reshape(
        groups, c // groups, a.shape[0] * math.prod(a.shape[2:]))


def _samples_first(a, n, spatial, bias=None):
    """(groups, C / groups, N * L) -> a fresh (N, C, *spatial) array, plus bias (C,)."""
    c = a.shape[0] * a.shape[1]
    view = a.reshape((c, n) + tuple(spatial)).swapaxes(0, 1)
    y = np.empty((n, c) + tuple(spatial), a.dtype)
    if bias is None:
        y[...] = view
    else:
        np.add(view, bias.reshape(c, 1, 1, 1), out=y)
    return y


def conv3d_forward(x, weight, bias, stride, pads, dilation, groups, mode="constant"):
    """conv3d of host arrays: x (N, C, D, H, W), weight (C_out, C / groups, kD, kH, kW),
    bias (C_out,) or None; pads ((before, after),) * 3, the border pad_forward builds in
    this mode (the dilated kernel must fit the padded input). Returns (y (N, C_out, D_out,
    H_out, W_out), the columns of im2col, the padded input's shape)."""
    padded = pad_forward(x, pads, mode) if any(map(any, pads)) else x
    kernel = weight.shape[2:]
    out = tuple((n - d * (k - 1) - 1) // s + 1
                for n, k, d, s in zip(padded.shape[2:], kernel, dilation, stride))
    cols = im2col(padded, groups, kernel, dilation, stride, out)
    y = np.matmul(weight.reshape(groups, weight.shape[0] // groups, -1), cols)
    return _samples_first(y, x.shape[0], out, bias), cols, padded.shape


def conv3d_backward(g, weight, cols, padded_shape, stride, pads, dilation, groups,
                    mode="constant", need_grad_in=True, want_weight=True, want_bias=True):
    """The adjoint of conv3d_forward on host arrays: g (N, C_out, D_out, H_out, W_out),
    weight (C_out, C / groups, kD, kH, kW), cols and padded_shape as conv3d_forward
    returned them. Returns (grad_weight (weight's shape), grad_bias (C_out,), grad_in
    (N, C, D, H, W) or None): the weight's gradient from the columns, the input's
    through col2im and the border's adjoint; want_weight, want_bias False: that
    gradient is not computed (None: a frozen parameter's)."""
    out = g.shape[2:]
    gm = _channels_first(g, groups)  # (groups, out / groups, N * L)
    grad_weight = (np.matmul(gm, cols.transpose(0, 2, 1)).reshape(weight.shape)
                   if want_weight else None)
    # the bias sums in float64, as the kernels' conv2d: NumPy adds the N samples one by
    # one, which in float32 drifts (2^17 1x1x1 planes: 1e-5 off, PyTorch's 1.5e-6)
    grad_bias = g.sum(axis=(0, 2, 3, 4), dtype=np.float64) if want_bias else None
    if not need_grad_in:
        return grad_weight, grad_bias, None
    w = weight.reshape(groups, weight.shape[0] // groups, -1)
    grad_cols = np.matmul(w.transpose(0, 2, 1), gm)
    grad_padded = col2im(grad_cols, padded_shape, weight.shape[2:], dilation, stride, out)
    return grad_weight, grad_bias, pad_backward(grad_padded, pads, mode)


def _accumulate(param, value):
    """param.grad += value (a host array of its shape), on the device the param lives."""
    _device.update_on_host(param.grad, lambda a: np.add(a, value, out=a))


class _Conv3dBase(Module):
    """Arguments, parameters and the input check shared by Conv3d and ConvTranspose3d."""

    def _setup(self, in_channels, out_channels, kernel_size, stride, dilation, groups, bias,
               dtype, transposed):
        name = type(self).__name__
        self.in_channels = check_positive_int(name, "in_channels", in_channels,
                                              RuntimeValueError)
        self.out_channels = check_positive_int(name, "out_channels", out_channels,
                                               RuntimeValueError)
        self.groups = check_positive_int(name, "groups", groups)
        if self.in_channels % self.groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) must be divisible by "
                             f"groups ({groups})")
        if self.out_channels % self.groups:
            raise ValueError(f"{name}: out_channels ({out_channels}) must be divisible by "
                             f"groups ({groups})")
        self.kernel_size = triple(name, "kernel_size", kernel_size, 1)
        self.stride = triple(name, "stride", stride, 1, one=True)
        self.dilation = triple(name, "dilation", dilation, 1, one=True)
        self.transposed = transposed  # PyTorch's _ConvNd attribute
        # PyTorch's kaiming_uniform(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in
        # from the weight's second axis times the kernel volume; the bias likewise
        lead = ((self.in_channels, self.out_channels // self.groups) if transposed
                else (self.out_channels, self.in_channels // self.groups))
        bound = 1.0 / math.sqrt(lead[1] * math.prod(self.kernel_size))
        rng = _random.generator()
        self.weight = Parameter(rng.uniform(-bound, bound, lead + self.kernel_size)
                                .astype(dtype))
        self.bias = (Parameter(rng.uniform(-bound, bound, self.out_channels).astype(dtype))
                     if bias else None)
        self._ctx = None

    def reset_parameters(self):
        """Draw weight and bias again as the constructor does (PyTorch's), in place."""
        init.reset_fan_in_uniform(self.weight, self.bias)

    def _checked_shape(self, shape, dtype):
        """shape as a tuple after the rank, channel and dtype checks."""
        shape = tuple(shape)  # (the CUDA simulator's shapes refuse negative indices)
        c = self.in_channels
        if len(shape) not in (4, 5) or shape[-4] != c:
            raise input_error(self, len(shape) in (4, 5))(
                f"{self._where()}: expected input of shape (N, {c}, D, H, W) or "
                f"({c}, D, H, W), got {shape}")
        lead = ((self.in_channels, self.out_channels // self.groups) if self.transposed
                else (self.out_channels, self.in_channels // self.groups))
        self._check_params((("weight", self.weight, lead + tuple(self.kernel_size)),
                            ("bias", self.bias, (self.out_channels,))))
        self._check_dtype(dtype, self.weight.data.dtype)
        check_no_empty_axes(self._where(), shape, 3)
        return shape

    def _weight_groups(self):
        """The weight on the host as (groups, its first axis / groups, the rest)."""
        w = _device.to_host(self.weight.data)
        return w.reshape(self.groups, w.shape[0] // self.groups, -1)

    def _repr_geometry(self, padding, output_padding=(0, 0, 0)):
        """PyTorch's _ConvNd.extra_repr."""
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if padding != (0, 0, 0):
            text += f", padding={padding}"
        if self.dilation != (1, 1, 1):
            text += f", dilation={self.dilation}"
        if output_padding != (0, 0, 0):
            text += f", output_padding={output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text + ("" if self.bias is not None else ", bias=False")


class Conv3d(_Conv3dBase):
    """y = conv3d(x, weight) + bias over (N, C, D, H, W) input (PyTorch's Conv3d).

    weight: (out_channels, in_channels / groups, kD, kH, kW); bias: (out_channels,) or
    None; both U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in_channels / groups * kD *
    kH * kW (PyTorch's default), from fastnn's generator. kernel_size, stride, dilation:
    an int or a triple (depth, height, width) (stride, dilation and zeros padding also a
    1-tuple for all three, as PyTorch expands it); padding: an int, a triple, 'valid'
    (none) or 'same' (stride 1; output size = input size, the odd cell of an even total
    on the far side, as PyTorch). padding_mode: 'zeros', 'reflect', 'replicate' or
    'circular' (the border built first, PyTorch's limits: a reflection below the size, a
    wrap at most the size). groups: in_channels and out_channels divisible by it
    (depthwise: groups = in_channels).

    Input (N, in_channels, D, H, W) or unbatched (in_channels, D, H, W); output
    (N, out_channels, D_out, H_out, W_out), D_out = (D + 2 padding - dilation (kD - 1) -
    1) // stride + 1 (likewise H_out, W_out). NumPy on the host: im2col and one matrix
    product per group (the columns are kept for backward: kD kH kW times the input).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", dtype=np.float32):
        super().__init__()
        name = type(self).__name__
        check_only(name, "padding_mode", padding_mode, PADDING_MODES)
        self.padding_mode = padding_mode
        self._setup(in_channels, out_channels, kernel_size, stride, dilation, groups, bias,
                    dtype, transposed=False)
        self.padding = self._padding(padding, self.stride, self.dilation)[0]
        self.output_padding = (0, 0, 0)  # PyTorch's _ConvNd attribute (no effect here)

    _derived_from = frozenset({"stride", "padding", "dilation", "padding_mode"})

    def _derive(self):
        """(stride, dilation, ((before, after),) * 3) from the attributes, checked (at the
        forward after one was set: PyTorch reads them at each call)."""
        name = type(self).__name__
        stride = triple(name, "stride", self.stride, 1, one=True)
        dilation = triple(name, "dilation", self.dilation, 1, one=True)
        return (stride, dilation) + self._padding(self.padding, stride, dilation)[1:]

    _stride = property(lambda self: self._derived()[0])
    _dilation = property(lambda self: self._derived()[1])
    _pads = property(lambda self: self._derived()[2])

    def _padding(self, padding, stride, dilation):
        """(padding as PyTorch keeps it, ((before, after),) * 3 of the padded input)."""
        name = type(self).__name__
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"{name}: invalid padding string {padding!r}, should be one "
                                 f"of ['valid', 'same']")
            if padding == "valid":
                return padding, ((0, 0),) * 3
            if stride != (1, 1, 1):
                raise ValueError(f"{name}: padding='same' is not supported for strided "
                                 f"convolutions, got stride {self.stride}")
            totals = [d * (k - 1) for d, k in zip(dilation, self.kernel_size)]
            return padding, tuple((t // 2, t - t // 2) for t in totals)
        padding = triple(name, "padding", padding, 0, one=self.padding_mode == "zeros")
        return padding, tuple((p, p) for p in padding)

    def _grid(self, shape):
        """(D_out, H_out, W_out) for an input of this shape; raises when the dilated
        kernel does not fit the padded input."""
        padded = tuple(n + b + a for n, (b, a) in zip(shape[-3:], self._pads))
        spans = tuple(d * (k - 1) + 1 for d, k in zip(self._dilation, self.kernel_size))
        if any(s > n for s, n in zip(spans, padded)):
            raise RuntimeValueError(f"{self._where()}: kernel size {self.kernel_size} (dilated: "
                                    f"{spans}) is larger than the padded input {padded} of an "
                                    f"input of shape {tuple(shape)}")
        return tuple((n - s) // st + 1 for n, s, st in zip(padded, spans, self._stride))

    def infer_shape(self, shape, dtype):
        shape = self._checked_shape(shape, dtype)
        if self.padding_mode != "zeros":
            check_pad_fits(self._where(), self.padding_mode, shape[-3:], self._pads)
        return shape[:-4] + (self.out_channels,) + self._grid(shape)

    def _forward(self, x, buffered):
        host, unbatched = _batched(x)
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        bias = None if self.bias is None else _device.to_host(self.bias.data)
        y, cols, padded_shape = conv3d_forward(
            host, _device.to_host(self.weight.data), bias, self._stride, self._pads,
            self._dilation, self.groups, mode)
        self._ctx = (cols, padded_shape, unbatched)
        return _device.namespace_of(x).put(y[0] if unbatched else y)

    def _backward(self, grad_out, buffered, need_grad_in):
        if nothing_to_compute(need_grad_in, self.weight, self.bias):
            return None   # (all frozen: PyTorch's backward neither computes nor touches them)
        cols, padded_shape, unbatched = self._ctx
        g, _ = _batched(grad_out)
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        # (a frozen parameter's gradient is neither computed nor touched)
        weight_live, bias_live = self.weight.requires_grad, live_grad(self.bias) is not None
        grad_weight, grad_bias, grad_in = conv3d_backward(
            g, _device.to_host(self.weight.data), cols, padded_shape, self._stride,
            self._pads, self._dilation, self.groups, mode, need_grad_in, weight_live,
            bias_live)
        if weight_live:
            _accumulate(self.weight, grad_weight)
        if bias_live:
            _accumulate(self.bias, grad_bias)
        if not need_grad_in:
            return None
        return _device.namespace_of(grad_out).put(grad_in[0] if unbatched else grad_in)

    def extra_repr(self):
        return self._repr_geometry(self.padding) + (
            f", padding_mode={self.padding_mode}" if self.padding_mode != "zeros" else "")


class ConvTranspose3d(OutputSizeForward, _Conv3dBase):
    """The adjoint of Conv3d (PyTorch's ConvTranspose3d), a volumetric decoder's
    upsampling layer.

    weight: (in_channels, out_channels / groups, kD, kH, kW) and bias (out_channels,),
    PyTorch's layout and init (fan_in = out_channels / groups * kD * kH * kW).
    kernel_size, stride, padding, output_padding, dilation: an int or a triple (all but
    kernel_size also a 1-tuple, as PyTorch expands it); output_padding below the stride
    or the dilation (PyTorch's rule); padding_mode 'zeros' only, as PyTorch. Input (N,
    in_channels, D, H, W) or unbatched (in_channels, D, H, W); output (N, out_channels,
    D_out, H_out, W_out), D_out = (D - 1) stride - 2 padding + dilation (kD - 1) +
    output_padding + 1.
    ``forward(input, output_size)`` picks the output size instead of output_padding (the
    last 3 entries of output_size, PyTorch's range check), as PyTorch's.

    NumPy on the host: weight^T @ x per group, then col2im (one strided addition per
    kernel offset) and the padding cropped; backward im2col of the gradient.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 dtype=np.float32):
        super().__init__()
        name = type(self).__name__
        check_only(name, "padding_mode", padding_mode, ("zeros",))
        self.padding_mode = padding_mode
        self._setup(in_channels, out_channels, kernel_size, stride, dilation, groups, bias,
                    dtype, transposed=True)
        self.padding = triple(name, "padding", padding, 0, one=True)
        # (checked by the forward that uses it, as PyTorch's)
        self.output_padding = triple(name, "output_padding", output_padding, 0, one=True)
        self._pending = None  # the output_size of the forward being run

    _derived_from = frozenset({"stride", "padding", "output_padding", "dilation"})

    def _derive(self):
        """(stride, padding, output_padding, dilation) as triples, checked (at the
        forward after one was set: PyTorch reads them at each call, an int too)."""
        name = type(self).__name__
        return tuple(triple(name, attr, getattr(self, attr), low, one=True)
                     for attr, low in (("stride", 1), ("padding", 0), ("output_padding", 0),
                                       ("dilation", 1)))

    _geometry = Module._derived

    def _smallest(self, spatial):
        """The output sizes at output_padding 0."""
        return tuple((n - 1) * s - 2 * p + d * (k - 1) + 1 for n, s, p, d, k in zip(
            spatial, self._geometry()[0], self._geometry()[1], self._geometry()[3],
            self.kernel_size))

    def _output_padding(self, shape):
        """output_padding, or the one that gives the requested output_size (PyTorch's
        _output_padding: the 3 last entries, each within [smallest, smallest + stride))."""
        if self._pending is None:
            check_output_padding(self._where(), self._geometry()[2], self._geometry()[0],
                                 self._geometry()[3])
            return self._geometry()[2]
        return output_padding_for(self._where(), self._pending, shape,
                                  self._smallest(shape[-3:]), self._geometry()[0])

    def infer_shape(self, shape, dtype):
        shape = self._checked_shape(shape, dtype)
        out = tuple(m + o for m, o in zip(self._smallest(shape[-3:]),
                                          self._output_padding(shape)))
        if min(out) < 1:
            raise RuntimeValueError(f"{self._where()}: the output of an input of shape {shape} "
                                    f"would have size {out}")
        return shape[:-4] + (self.out_channels,) + out

    def _forward(self, x, buffered):
        host, unbatched = _batched(x)
        n, grid = host.shape[0], host.shape[2:]
        out = self.infer_shape(tuple(x.shape), host.dtype)[-3:]  # (output_size as given)
        # the uncropped output: every window whole, output_padding added at the far end
        full = tuple(m + 2 * p for m, p in zip(out, self._geometry()[1]))
        xm = _channels_first(host, self.groups)  # (groups, in / groups, N * L)
        cols = np.matmul(self._weight_groups().transpose(0, 2, 1), xm)
        volume = col2im(cols, (n, self.out_channels) + full, self.kernel_size, self._geometry()[3],
                        self._geometry()[0], grid)
        crop = tuple(slice(p, p + m) for p, m in zip(self._geometry()[1], out))
        bias = None if self.bias is None else _device.to_host(self.bias.data)
        y = np.empty((n, self.out_channels) + out, host.dtype)
        view = volume[(slice(None), slice(None)) + crop]
        if bias is None:
            y[...] = view
        else:
            np.add(view, bias.reshape(-1, 1, 1, 1), out=y)
        self._ctx = (xm, full, crop, grid, unbatched)
        return _device.namespace_of(x).put(y[0] if unbatched else y)

    def _backward(self, grad_out, buffered, need_grad_in):
        if nothing_to_compute(need_grad_in, self.weight, self.bias):
            return None   # (all frozen: PyTorch's backward neither computes nor touches them)
        xm, full, crop, grid, unbatched = self._ctx
        g, _ = _batched(grad_out)
        n = g.shape[0]
        padded = np.zeros((n, self.out_channels) + full, g.dtype)
        padded[(slice(None), slice(None)) + crop] = g
        gcols = im2col(padded, self.groups, self.kernel_size, self._geometry()[3],
                       self._geometry()[0], grid)  # (groups, out / groups * kernel volume, N * L)
        if self.weight.requires_grad:   # (a frozen one's neither computed nor touched)
            _accumulate(self.weight, np.matmul(xm, gcols.transpose(0, 2, 1))
                        .reshape(self.weight.grad.shape))
        if live_grad(self.bias) is not None:
            _accumulate(self.bias, g.sum(axis=(0, 2, 3, 4), dtype=np.float64))  # as above
        if not need_grad_in:
            return None
        grad_in = _samples_first(np.matmul(self._weight_groups(), gcols), n, grid)
        return _device.namespace_of(grad_out).put(grad_in[0] if unbatched else grad_in)

    def extra_repr(self):
        return self._repr_geometry(self.padding, self.output_padding)
