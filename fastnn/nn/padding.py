"""Padding layers (PyTorch's ZeroPad, ConstantPad, ReflectionPad, ReplicationPad and
CircularPad in 1, 2 and 3 dimensions), NumPy on the host.

Each padded axis maps every output index to an input index (np.pad of arange with the
mode; -1 for a constant border): the forward is np.pad itself, the backward adds each
output gradient to its source (np.add.at along the axis), so a reflected or wrapped
border sends its gradient back to the values it copied. A negative padding crops, as
PyTorch's: after the other side is padded, or for 'circular' before the wrap (which then
wraps what is left).
"""
import math
import numbers

import numpy as np

from .. import device as _device
from ..errors import NotImplementedValueError, RuntimeValueError, TypeValueError
from ..validation import check_float_dtype, check_int64, int_items
from .module import Module

_NUMPY_MODE = {"constant": "constant", "reflect": "reflect", "replicate": "edge",
               "circular": "wrap"}


def pad_sizes(where, padding, dims):
    """PyTorch's padding argument as ((before, after), ...) per padded axis, first axis
    first: an int pads every side; a tuple lists (left, right, top, bottom, front, back),
    the last axis first. A negative entry crops."""
    padding = int_items(padding)
    items = (padding,) * (2 * dims) if not isinstance(padding, (tuple, list)) else tuple(padding)
    wrong_type = any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in items)
    if len(items) != 2 * dims or wrong_type:
        error = TypeValueError if wrong_type else ValueError   # (PyTorch's TypeError)
        raise error(f"{where}: expected padding to be an int or a tuple of "
                    f"{2 * dims} ints, got {padding!r}")
    items = check_int64(where, "padding", items)
    pairs = [(items[2 * i], items[2 * i + 1]) for i in range(dims)]
    return tuple(reversed(pairs))


def check_pad_fits(where, mode, spatial, sizes):
    """PyTorch's limits: a reflection needs padding < the size, a wrap padding <= it (and
    what is left after its cropping, here: PyTorch's wrap reads past it); no output size
    below 0, and not all below 1 for a reflection or replication."""
    outs = [n + before + after for n, (before, after) in zip(spatial, sizes)]
    for n, out, (before, after) in zip(spatial, outs, sizes):
        if mode == "reflect" and max(before, after) >= n:
            raise RuntimeValueError(f"{where}: reflection padding {(before, after)} must be "
                                    f"less than the input size {n}")
        if mode == "circular" and wraps_nothing(n, before, after):
            continue
        if mode == "circular" and max(before, after) > n + min(before, 0) + min(after, 0):
            raise RuntimeValueError(f"{where}: circular padding {(before, after)} must be at "
                                    f"most the input size {n} (less what it crops)")
        # (PyTorch's constant padding crops before it pads)
        if out < 0 or mode == "constant" and n + min(before, 0) + min(after, 0) < 0:
            raise RuntimeValueError(f"{where}: padding {(before, after)} crops more than the "
                                    f"input size {n}")
    if mode in ("reflect", "replicate") and outs and max(outs) < 1:
        raise RuntimeValueError(f"{where}: the input of spatial size {tuple(spatial)} is too "
                                f"small for padding {tuple(sizes)} (output {tuple(outs)})")


def wraps_nothing(n, before, after):
    """Whether PyTorch's circular padding takes (before, after) on an axis of size n by
    cropping it to nothing: an output size of 0, padding at most n, and an interior its
    copy can broadcast to that empty axis (the input sliced as ATen slices, a negative
    end counted once from the end: at most 1 long; a longer one is PyTorch's
    size-mismatch error)."""
    if n + before + after != 0 or max(before, after) > n:
        return False
    start, end = max(-before, 0), n - max(-after, 0)
    end = end + n if end < 0 else end
    return min(max(end, 0), n) - min(start, n) <= 1


def check_border_input(where, mode, shape, dims):
    """PyTorch's check_valid_input of reflection and replication padding of the last
    ``dims`` axes: every size non-zero but the batch size N of rank dims + 2 input."""
    if mode in ("reflect", "replicate") and 0 in shape[len(shape) - dims - 1:]:
        raise ValueError(f"{where}: expected {dims + 1}D or {dims + 2}D (batch mode) input "
                         f"with possibly 0 batch size and other non-zero dimensions, got "
                         f"shape {tuple(shape)}")


def check_fill_value(where, value, dtype, name="value"):
    """value (a number, or a 0-d array of one) as PyTorch's checked conversion of a fill
    value to dtype takes it (F.pad's value, nn.ConstantPad*d's, pad_sequence's
    padding_value): a TypeError (also a ValueError) for anything else; NaN, an infinity
    or a value outside an integer dtype's range is PyTorch's RuntimeError (also a
    ValueError), as is a finite value beyond a float dtype's largest (1e40 or 3.4028236e38
    in float32: compared before any rounding), while NaN and inf fill a float dtype and a
    bool dtype takes anything. Returns the number."""
    if isinstance(value, (np.ndarray, np.generic)) and np.ndim(value) == 0:
        value = value.item()
    if not isinstance(value, numbers.Real):
        raise TypeValueError(f"{where}: expected {name} to be a number, got "
                             f"{type(value).__name__}")
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return value
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        exact = value if isinstance(value, numbers.Integral) else float(value)
        fits = int(info.min) <= exact <= int(info.max)   # (False for NaN)
    else:
        try:
            real = float(value)
        except OverflowError:   # (an int beyond any float)
            real = None
        fits = real is not None and (not math.isfinite(real)
                                     or abs(real) <= float(np.finfo(dtype).max))
    if not fits:
        raise RuntimeValueError(f"{where}: {name} {value!r} cannot be converted to type "
                                f"{dtype} without overflow")
    return value


def _crop(shape, sizes):
    """The index of what a negative size keeps along the last len(sizes) axes of an array
    of that shape."""
    first = len(shape) - len(sizes)
    return (slice(None),) * first + tuple(
        slice(max(-before, 0), n - max(-after, 0))
        for n, (before, after) in zip(shape[first:], sizes))


def _grown(sizes):
    return tuple((max(before, 0), max(after, 0)) for before, after in sizes)


def pad_forward(x, sizes, mode, value=0.0):
    """x (host array) padded on its last len(sizes) axes; negative sizes crop (the
    padded array, or for 'circular' the input first)."""
    first = x.ndim - len(sizes)
    outs = tuple(n + b + a for n, (b, a) in zip(x.shape[first:], sizes))
    if mode == "circular" and 0 in outs:   # (cropped to nothing: nothing to wrap)
        return np.zeros(x.shape[:first] + outs, x.dtype)
    if mode == "circular" and any(min(pair) < 0 for pair in sizes):
        return pad_forward(np.ascontiguousarray(x[_crop(x.shape, sizes)]), _grown(sizes), mode)
    width = [(0, 0)] * (x.ndim - len(sizes)) + list(_grown(sizes))
    if mode == "constant":
        y = np.pad(x, width, mode="constant", constant_values=x.dtype.type(value))
    else:
        y = np.pad(x, width, mode=_NUMPY_MODE[mode])
    if any(min(pair) < 0 for pair in sizes):
        y = np.ascontiguousarray(y[_crop(y.shape, sizes)])
    return y


def _embed(g, sizes):
    """g put back where a crop by the negative sizes took it from, zeros around it."""
    first = g.ndim - len(sizes)
    shape = g.shape[:first] + tuple(n - min(before, 0) - min(after, 0)
                                    for n, (before, after) in zip(g.shape[first:], sizes))
    full = np.zeros(shape, g.dtype)
    full[_crop(shape, sizes)] = g
    return full


def pad_backward(grad_out, sizes, mode):
    """The gradient w.r.t. the unpadded input of pad_forward (host arrays): a cropped
    value gets 0."""
    if mode == "circular" and grad_out.size == 0:   # (pad_forward's empty output)
        first = grad_out.ndim - len(sizes)
        return np.zeros(grad_out.shape[:first] + tuple(
            n - b - a for n, (b, a) in zip(grad_out.shape[first:], sizes)), grad_out.dtype)
    if all(min(pair) >= 0 for pair in sizes):
        return _grown_backward(grad_out, sizes, mode)
    if mode == "circular":  # cropped, then wrapped
        return _embed(_grown_backward(grad_out, _grown(sizes), mode), sizes)
    return _grown_backward(_embed(grad_out, sizes), _grown(sizes), mode)


def _grown_backward(grad_out, sizes, mode):
    """pad_backward for non-negative sizes: on one copy of the gradient, each padded
    axis in turn adds its border cells to the cells they copied (np.add.at's sums, each
    target's border values in the same order after its own), then the interior is cut
    out. (Per axis, a zero array and moved copies took 23 ms of a 107 ms reflect-padded
    conv step.)"""
    first = grad_out.ndim - len(sizes)
    folded = [(axis, before, after) for axis, (before, after) in enumerate(sizes, start=first)
              if mode != "constant" and (before or after)]
    g = np.array(grad_out, copy=True, order="C") if folded else grad_out
    lead = (slice(None),) * first
    for axis, before, after in folded:
        n = g.shape[axis] - before - after
        source = np.pad(np.arange(n), (before, after), mode=_NUMPY_MODE[mode])
        at = (slice(None),) * axis
        for k in list(range(before)) + list(range(before + n, before + n + after)):
            g[at + (before + source[k],)] += g[at + (k,)]
    interior = lead + tuple(slice(before, g.shape[axis] - after)
                            for axis, (before, after) in enumerate(sizes, start=first))
    return _device.c_contiguous(g[interior])


class _Pad(Module):
    """Pads the last ``dims`` axes of (N, C, *spatial) or unbatched (C, *spatial) input."""

    dims = None
    mode = None

    def __init__(self, padding, value=0.0):
        super().__init__()
        name = type(self).__name__
        # PyTorch's attribute: the full tuple (left, right, top, bottom, ...)
        self.padding = tuple(v for pair in reversed(pad_sizes(name, padding, self.dims))
                             for v in pair)
        if self.mode == "constant" and not isinstance(value, numbers.Real):
            raise TypeValueError(f"{name}: expected value to be a number, got {value!r}")
        self.value = value   # as given (PyTorch's repr shows it so; NaN, inf, True pad too)

    def infer_shape(self, shape, dtype):
        shape = tuple(shape)
        if self.mode == "constant":  # PyTorch's constant pads take any rank >= dims
            if len(shape) < self.dims:
                raise RuntimeValueError(f"{self._where()}: expected input of rank "
                                        f"{self.dims} or more, got shape {shape}")
        elif len(shape) not in (self.dims + 1, self.dims + 2):
            # (PyTorch's F.pad refuses the rank with NotImplementedError; its CircularPad
            # checks the rank first, with a ValueError)
            error = ValueError if self.mode == "circular" else NotImplementedValueError
            raise error(f"{self._where()}: expected input of rank {self.dims + 1} or "
                        f"{self.dims + 2}, got shape {shape}")
        check_float_dtype(self._where(), dtype)
        check_border_input(self._where(), self.mode, shape, self.dims)
        if self.mode == "constant":
            check_fill_value(self._where(), self.value, dtype)
        spatial = shape[len(shape) - self.dims:]
        check_pad_fits(self._where(), self.mode, spatial, self._sizes)
        return shape[:len(shape) - self.dims] + tuple(
            n + b + a for n, (b, a) in zip(spatial, self._sizes))

    def _forward(self, x, buffered):
        y = pad_forward(_device.to_host(x), self._sizes, self.mode, self.value)
        return _device.namespace_of(x).put(y)

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        g = pad_backward(_device.to_host(grad_out), self._sizes, self.mode)
        return _device.namespace_of(grad_out).put(g)

    _derived_from = frozenset({"padding"})

    def _derive(self):
        """((before, after) for each padded axis), from padding (read at the forward
        after it was set, as PyTorch's F.pad takes it at each call)."""
        return pad_sizes(type(self).__name__, self.padding, self.dims)

    _sizes = property(Module._derived)

    def _sizes_repr(self):
        """The padding as PyTorch shows it: (left, right, top, bottom, ...)."""
        return tuple(v for pair in reversed(self._sizes) for v in pair)

    def extra_repr(self):
        return f"{self._sizes_repr()}"


class _ZeroPad(_Pad):
    mode = "constant"

    def __init__(self, padding):
        super().__init__(padding, 0.0)


class _ConstantPad(_Pad):
    mode = "constant"

    def __init__(self, padding, value):
        super().__init__(padding, value)

    def extra_repr(self):
        return f"padding={self._sizes_repr()}, value={self.value}"


class _BorderPad(_Pad):
    def __init__(self, padding):
        super().__init__(padding)


class ZeroPad1d(_ZeroPad):
    """Pads the last axis of (N, C, W) or (C, W) input with zeros; padding: an int or
    (left, right)."""
    dims = 1


class ZeroPad2d(_ZeroPad):
    """Pads the last two axes of (N, C, H, W) or (C, H, W) input with zeros; padding: an
    int or (left, right, top, bottom)."""
    dims = 2


class ZeroPad3d(_ZeroPad):
    """Pads the last three axes of (N, C, D, H, W) or (C, D, H, W) input with zeros;
    padding: an int or (left, right, top, bottom, front, back)."""
    dims = 3


class ConstantPad1d(_ConstantPad):
    """Pads the last axis with ``value`` (as ZeroPad1d's padding)."""
    dims = 1


class ConstantPad2d(_ConstantPad):
    """Pads the last two axes with ``value`` (as ZeroPad2d's padding)."""
    dims = 2


class ConstantPad3d(_ConstantPad):
    """Pads the last three axes with ``value`` (as ZeroPad3d's padding)."""
    dims = 3


class ReflectionPad1d(_BorderPad):
    """Pads the last axis with its reflection, the border value not repeated (padding
    below the size); as ZeroPad1d's padding."""
    dims, mode = 1, "reflect"


class ReflectionPad2d(_BorderPad):
    """Pads the last two axes with their reflection (style-transfer and CycleGAN
    networks); as ZeroPad2d's padding."""
    dims, mode = 2, "reflect"


class ReflectionPad3d(_BorderPad):
    """Pads the last three axes with their reflection; as ZeroPad3d's padding."""
    dims, mode = 3, "reflect"


class ReplicationPad1d(_BorderPad):
    """Pads the last axis by repeating its border value; as ZeroPad1d's padding."""
    dims, mode = 1, "replicate"


class ReplicationPad2d(_BorderPad):
    """Pads the last two axes by repeating their border values; as ZeroPad2d's padding."""
    dims, mode = 2, "replicate"


class ReplicationPad3d(_BorderPad):
    """Pads the last three axes by repeating their border values; as ZeroPad3d's."""
    dims, mode = 3, "replicate"


class CircularPad1d(_BorderPad):
    """Pads the last axis by wrapping around (padding at most the size); as ZeroPad1d's."""
    dims, mode = 1, "circular"


class CircularPad2d(_BorderPad):
    """Pads the last two axes by wrapping around; as ZeroPad2d's padding."""
    dims, mode = 2, "circular"


class CircularPad3d(_BorderPad):
    """Pads the last three axes by wrapping around; as ZeroPad3d's padding."""
    dims, mode = 3, "circular"
