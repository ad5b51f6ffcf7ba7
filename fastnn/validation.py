"""Input checks shared by fastnn.ops and the layers: one wording for every error.

Every check raises before anything is written, so a failed call changes nothing.
Messages name the caller (op or layer), what it expected and what it got.
"""
import math
import numbers
import sys

import numpy as np

from .device import is_contiguous, is_device_array, to_host
from .errors import DtypeError, NotImplementedValueError, RuntimeValueError, TypeValueError

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# native dtypes are these very objects: 'dtype is _FLOAT32' tests one in a few
# instructions ('dtype in FLOAT_DTYPES' compares by value, ~1 us); nn imports them too
_FLOAT32, _FLOAT64 = FLOAT_DTYPES
_INT64 = np.dtype(np.int64)
_FLOAT_MAX = sys.float_info.max   # (a Python int past it has no float: check_number)


def stacklevel_outside(filename):
    """The stacklevel of a warning issued by the caller of this function that points at
    the first caller outside the file ``filename`` (the user's call, however many of
    that file's functions and wrappers lie between)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename == filename:
        frame, level = frame.f_back, level + 1
    return level


def tensor_hint(x):
    """For a PyTorch tensor given where an array belongs (known by its type, torch is
    not imported): how to get its array."""
    kind = type(x)
    if kind.__module__.split(".")[0] == "torch" and hasattr(x, "numpy"):
        return " (a PyTorch tensor: its .detach().cpu().numpy() is the array)"
    return ""


def check_float_array(where, name, x, ndim=None, shape=None, dtype=None, device_ok=False):
    """Check that x is a float32/float64 ndarray of the given rank, shape and dtype.

    ndim: int or tuple of allowed ranks; shape: tuple with None for free axes;
    device_ok: a CUDA device array passes too (layers and losses of a model on the GPU).
    Returns x (unchanged).
    """
    if type(x) is np.ndarray:
        # the usual call, an ndarray of native float32/float64 (whose dtypes are these very
        # objects) that meets the demands, at a fraction of the checks below (``dtype in
        # FLOAT_DTYPES`` compares dtypes by value: ~1 us alone). contiguous_float_array
        # repeats this test (a call would cost as much as the test)
        kind = x.dtype
        if ((kind is _FLOAT32 or kind is _FLOAT64) and (dtype is None or dtype is kind)
                and (ndim is None or ndim == x.ndim) and (shape is None or shape == x.shape)):
            return x
    if not isinstance(x, np.ndarray) and not (device_ok and is_device_array(x)):
        if isinstance(x, np.generic):   # 'got float32' would read as an array's dtype
            raise TypeError(f"{where}: expected {name} to be a numpy.ndarray, got a NumPy "
                            f"scalar, numpy.{type(x).__name__}({x}) (np.asarray({name}) is its "
                            f"0-d array)")
        if isinstance(getattr(x, "data", None), np.ndarray) and hasattr(x, "grad"):
            # a Parameter: fastnn.ops takes arrays, as the kernels it calls
            raise TypeError(f"{where}: expected {name} to be a numpy.ndarray, got "
                            f"{type(x).__name__} (its .data is the array)")
        raise TypeError(f"{where}: expected {name} to be a numpy.ndarray, got "
                        f"{type(x).__name__}{tensor_hint(x)}")
    if isinstance(x, np.ma.MaskedArray):   # the kernels would read the masked values
        raise TypeError(f"{where}: expected {name} to be a plain numpy.ndarray, got a masked "
                        f"array (.filled(value) fills the masked entries, .data drops the mask)")
    if isinstance(x, np.matrix):   # always 2-D, * is a matrix product: not an array kernel
        raise TypeError(f"{where}: expected {name} to be a plain numpy.ndarray, got a "
                        f"numpy.matrix (np.asarray({name}) is its array)")
    if x.dtype not in FLOAT_DTYPES:
        raise DtypeError(f"{where}: expected {name} of dtype float32 or float64, got {x.dtype}"
                         f"{_conversion_hint(name, dtype, x)}")
    if dtype is not None and x.dtype != dtype:
        raise DtypeError(f"{where}: dtype mismatch: {name} is {x.dtype} but expected {dtype} "
                         f"(all arrays of one call must share one dtype: "
                         f"{_conversion(name, dtype, x)} converts it)")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{where}: expected {name} to be {want}, got shape {x.shape}")
    if shape is not None:
        if len(shape) != x.ndim or any(s is not None and s != d for s, d in zip(shape, x.shape)):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + (
                ",)" if len(shape) == 1 else ")")   # (a tuple's (5,), as x.shape prints)
            raise ValueError(f"{where}: expected {name} of shape {want}, got {x.shape}")
    return x


def contiguous_float_array(where, name, x, ndim=None, shape=None, dtype=None,
                           device_ok=False):
    """as_contiguous(check_float_array(...)) in one call, and in a few hundred
    instructions for the usual argument, a C-contiguous, aligned ndarray that passes
    check_float_array's quick test (repeated here), where the two calls took ~4,500."""
    if type(x) is np.ndarray:
        kind = x.dtype
        if ((kind is _FLOAT32 or kind is _FLOAT64) and (dtype is None or dtype is kind)
                and (ndim is None or ndim == x.ndim) and (shape is None or shape == x.shape)):
            flags = x.flags
            if flags.c_contiguous and flags.aligned:
                return x
    return as_contiguous(check_float_array(where, name, x, ndim, shape, dtype, device_ok))


def no_cuda_kernel(where, option=None):
    """The error of a ``fastnn.nn.functional`` function without a CUDA kernel (for option,
    when given: 'groups > 1') given a CUDA device array (PyTorch's NotImplementedError for
    an op a device lacks)."""
    with_option = f" with {option}" if option else ""
    return NotImplementedValueError(
        f"fastnn.nn.functional.{where}{with_option} has no CUDA kernel and got a CUDA "
        f"device array; "
        f"move the data to the CPU first (fastnn.device.to_host of each device array, "
        f"model.cpu()) and call it on NumPy arrays")


def check_host_float_array(where, name, x, dtype=None):
    """check_float_array of a host-only function: a CUDA device array gets
    ``no_cuda_kernel``'s error (tested only once x failed as a NumPy array)."""
    try:
        return check_float_array(where, name, x, dtype=dtype)
    except TypeError:
        if is_device_array(x):
            raise no_cuda_kernel(where) from None
        raise


def layout(a):
    """How an array lies in memory, for the errors that refuse its layout: 'an array of
    shape (4, 6) and strides (4, 32)' (strides in bytes, as NumPy gives them)."""
    strides = getattr(a, "strides", None)
    return (f"an array of shape {tuple(a.shape)} and strides "
            f"{None if strides is None else tuple(strides)}")


def check_probabilities(where, name, values):
    """Refuse values outside [0, 1] (BCE's pred and target). values: a NumPy array of
    any shape. NaN passes: a diverged network's loss is NaN, which training reports
    (PyTorch raises)."""
    if values.size == 0:
        return
    lo, hi = values.min(), values.max()  # two reductions, no temporaries
    if lo < 0 or hi > 1 or (lo != lo and (np.any(values < 0) or np.any(values > 1))):
        raise RuntimeValueError(f"{where}: expected {name} to be probabilities in [0, 1], got "
                                f"values in [{np.nanmin(values)}, {np.nanmax(values)}]")


def check_same_shape(where, name, x, ref_name, ref):
    if x.shape != ref.shape:
        raise ValueError(f"{where}: expected {name} of shape {ref.shape} (same as {ref_name}), "
                         f"got {x.shape}")


def check_out(where, name, out, shape, dtype):
    """Check an optional out= buffer: None, or a C-contiguous array (NumPy or device) of
    shape and dtype."""
    if out is None:
        return None
    # the usual case, a NumPy buffer of the right dtype and shape, without the generic
    # checks (~1 us of a small op's call); anything else takes them for their message
    if not (type(out) is np.ndarray and out.dtype == dtype and out.shape == tuple(shape)):
        check_float_array(where, name, out, shape=tuple(shape), dtype=dtype, device_ok=True)
    if not is_contiguous(out):
        raise ValueError(f"{where}: expected {name} to be C-contiguous, got {layout(out)}")
    if isinstance(out, np.ndarray) and not out.flags.writeable:
        raise ValueError(f"{where}: expected {name} to be writeable (the op writes it), "
                         f"got a read-only array")
    return out


_TOO_HARD = getattr(np, "exceptions", np).TooHardError  # np.TooHardError before 1.25


class _DeviceSpan:
    """A device array's bytes as an interval, for check_no_overlap: from its
    ``__cuda_array_interface__`` (pointer, shape, strides; None strides: C-contiguous)."""

    def __init__(self, a):
        face = a.__cuda_array_interface__
        self.start = face["data"][0]
        self.shape = tuple(face["shape"])
        itemsize = np.dtype(face["typestr"]).itemsize
        strides = face.get("strides") or tuple(
            int(np.prod(self.shape[i + 1:], dtype=np.int64)) * itemsize
            for i in range(len(self.shape)))
        self.strides = tuple(strides)
        low = sum(min(0, (d - 1) * st) for d, st in zip(self.shape, strides))
        high = sum(max(0, (d - 1) * st) for d, st in zip(self.shape, strides)) + itemsize
        empty = any(d == 0 for d in self.shape)
        self.low, self.high = (self.start, self.start) if empty else (
            self.start + low, self.start + high)


def _comparable(a):
    """What the overlap checks compare: a NumPy array as it is, a CUDA simulator array as
    the NumPy array it wraps, a device array as its _DeviceSpan; None for anything else."""
    if isinstance(a, np.ndarray):
        return a
    if type(a).__name__ == "FakeCUDAArray":
        return getattr(a, "_ary", None)
    if hasattr(a, "__cuda_array_interface__"):
        return _DeviceSpan(a)
    return None


def _same_memory(a, b):
    if isinstance(a, _DeviceSpan):
        return (a.start, a.shape, a.strides) == (b.start, b.shape, b.strides)
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.shape == b.shape and a.strides == b.strides)


def _overlap(a, b):
    if isinstance(a, _DeviceSpan) or isinstance(b, _DeviceSpan):
        # device memory: by bounds (the device kernels take C-contiguous arrays, whose
        # bounds are exact); a host array never meets a device one
        if not (isinstance(a, _DeviceSpan) and isinstance(b, _DeviceSpan)):
            return False
        return a.low < b.high and b.low < a.high
    if not np.may_share_memory(a, b):  # bounds only: cheap
        return False
    try:
        return np.shares_memory(a, b, max_work=10_000)
    except _TOO_HARD:  # interleaved views: assume they meet
        return True


def _comparables(pairs):
    """[(name, _comparable(array))] of the (name, array) pairs with an array to compare;
    NumPy arrays as they are (a training step makes tens of these checks)."""
    out = []
    for name, a in pairs:
        if type(a) is not np.ndarray:
            if a is None:
                continue
            a = _comparable(a)
            if a is None:
                continue
        out.append((name, a))
    return out


def check_no_overlap(where, written, read, in_place=()):
    """Raise ValueError when an array an op writes shares memory with another array of the
    call (PyTorch refuses such out= tensors too): the results would depend on the order
    the kernel reads and writes in. The pairs (written name, read name) in ``in_place``
    may be the very same array (an elementwise op in place), never partly overlapping.
    written, read: sequences of (name, array or None), NumPy or device arrays."""
    written = _comparables(written)
    if not written:  # no out= buffer given: nothing to check
        return
    others = written + _comparables(read)
    for i, (name, w) in enumerate(written):
        for other, a in others[i + 1:]:
            if not _overlap(w, a):
                continue
            if ((name, other) in in_place
                    and isinstance(w, np.ndarray) == isinstance(a, np.ndarray)
                    and _same_memory(w, a)):   # (a np.memmap out= and its ndarray view too)
                continue
            allowed = " (it may be the same array, in place)" if (name, other) in in_place else ""
            raise ValueError(f"{where}: {name} shares memory with {other}; pass separate "
                             f"arrays{allowed}")


class LabelsOutOfRange(ValueError, IndexError):
    """``check_labels``' error for labels outside [0, num_classes): also an IndexError,
    PyTorch's error for a cross-entropy or NLL target out of bounds. The cuda
    cross-entropy kernel raises it too, through ``check_labels``, when it meets such
    labels on the device (the callers that leave the check to it: ``as_labels``'
    kernel_checks)."""


def labels_shape_hint(shape, want):
    """The end of a message refusing class labels of shape ``shape`` where ``want`` was
    expected: how to fix a column of labels (N, 1), a common way to hold them; else ''."""
    if tuple(shape) == tuple(want) + (1,):
        return " (a column of labels: y.squeeze(-1) gives the labels' shape)"
    return ""


def check_labels(where, labels, n, num_classes):
    """Integer class labels of shape (n,) within [0, num_classes) (LabelsOutOfRange when
    not)."""
    if not isinstance(labels, np.ndarray) or labels.dtype.kind not in "iu":
        got = (labels.dtype if isinstance(labels, np.ndarray)
               else type(labels).__name__ + tensor_hint(labels))
        raise DtypeError(f"{where}: expected integer class labels, got {got}")
    if labels.shape != (n,):
        raise RuntimeValueError(f"{where}: expected labels of shape ({n},), got "
                                f"{labels.shape}{labels_shape_hint(labels.shape, (n,))}")
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise LabelsOutOfRange(f"{where}: labels out of range: expected values in "
                               f"[0, {num_classes}), got min {labels.min()} and max "
                               f"{labels.max()}")


def labels_in_range(labels, num_classes):
    """Whether the int64 NumPy array labels (C-contiguous) lies in [0, num_classes): one
    pass, where ``check_labels`` takes two (read as unsigned, a negative label is above
    every class count). The Cython extension's loop once the Cython backend is loaded
    (NumPy's max reduction took ~9 us of a training step at batch 16: see
    _losses.labels_in_range)."""
    compiled = _compiled_labels_in_range()
    if compiled is not None:
        return compiled(labels, num_classes)
    return labels.size == 0 or int(labels.view(np.uint64).max()) < num_classes


def _compiled_labels_in_range():
    """The Cython labels_in_range when the Cython backend is loaded (the default backend,
    loaded by the first op), else None: a process on another backend does not load that
    package and its OpenMP runtime for a label check."""
    module = sys.modules.get("fastnn.kernels.cython._losses")
    return None if module is None else module.labels_in_range


def as_labels(where, labels, n, num_classes, kernel_checks=False):
    """Class labels checked as ``check_labels`` does (a device array's on a host copy),
    returned as int64: the array itself when it is already an int64 device array, else a
    C-contiguous int64 NumPy array.

    kernel_checks: the caller's kernel checks the range itself (the cuda cross-entropy,
    which raises check_labels' LabelsOutOfRange): an int64 device array of shape (n,) is
    then returned unread, sparing a copy to the host that would wait for the GPU."""
    if (type(labels) is np.ndarray and labels.dtype is _INT64 and labels.shape == (n,)
            and labels.flags.c_contiguous and labels_in_range(labels, num_classes)):
        return labels   # the usual labels, in one pass where the checks below take two
    if (kernel_checks and is_device_array(labels) and labels.dtype == np.int64
            and tuple(labels.shape) == (n,)):
        return labels
    host = to_host(labels)
    check_labels(where, host, n, num_classes)
    if is_device_array(labels) and labels.dtype == np.int64:
        return labels
    return np.ascontiguousarray(host, dtype=np.int64)


def check_choice(where, name, value, choices):
    if value not in choices:
        raise ValueError(f"{where}: expected {name} in {list(choices)}, got {value!r}")


def check_float_dtype(where, dtype, name="input"):
    """A DtypeError (a TypeError) unless dtype is float32 or float64 (a layer's input
    dtype)."""
    if dtype not in FLOAT_DTYPES:
        raise DtypeError(f"{where}: expected {name} of dtype float32 or float64, got {dtype}"
                         f"{_conversion_hint(name)}")


def _conversion_hint(name, dtype=None, x=None):
    """' (x.astype(np.float32) converts it)': the way out of a dtype error for integer,
    bool or float16 data (features read from a table, uint8 images), in the dtype the
    call expects (float32 when any float would do)."""
    return f" ({_conversion(name, dtype, x)} converts it)"


def _conversion(name, dtype, x=None):
    """The expression that gives array ``name`` (x, when known) the dtype (float32 when
    None): ``.astype`` on the host; a numba device array has none, so through the host."""
    target = f"np.{np.dtype(dtype).name if dtype is not None else 'float32'}"
    if x is not None and is_device_array(x):
        return (f"fastnn.device.to_device(fastnn.device.to_host({name}).astype({target}))")
    return f"{name}.astype({target})"


def check_positive_int(where, name, value, negative=ValueError):
    """value as an int when it is an integer >= 1 (not a bool) within int64, else a
    ValueError (for a value that is no integer, or one past int64, one that is a
    TypeError too, as PyTorch raises: ``check_int64``).
    negative: the error for a negative int (RuntimeValueError for a size PyTorch makes a
    tensor of at construction: its RuntimeError for a negative dimension)."""
    if not isinstance(value, bool) and isinstance(value, numbers.Integral) and value < 0:
        raise negative(f"{where}: expected {name} to be a positive int, got {value!r}")
    return _check_int_from(where, name, value, 1, "a positive int", True)


def check_non_negative_int(where, name, value, negative=ValueError, int64=True):
    """value as an int when it is an integer >= 0 (not a bool), else a ValueError (for
    a value that is no integer, one that is a TypeError too, as PyTorch raises).
    negative: the error for a negative int, as in ``check_positive_int``; int64: refuse
    an int past int64 too, as ``check_positive_int`` (False for a seed, which NumPy's
    generators take of any size)."""
    if not isinstance(value, bool) and isinstance(value, numbers.Integral) and value < 0:
        raise negative(f"{where}: expected {name} to be a non-negative int, got {value!r}")
    return _check_int_from(where, name, value, 0, "a non-negative int", int64)


def _check_int_from(where, name, value, least, kind, int64):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeValueError(f"{where}: expected {name} to be {kind}, got {value!r}")
    if value < least:
        raise ValueError(f"{where}: expected {name} to be {kind}, got {value!r}")
    if int64:   # a layer's size or factor: past int64 its forward failed (PyTorch's too)
        return check_int64(where, name, (value,))[0]
    return int(value)


def broadcasts_to(shape, target):
    """Whether an array of shape broadcasts to target's shape without enlarging it."""
    try:
        return np.broadcast_shapes(shape, target) == tuple(target)
    except ValueError:
        return False


def as_bool(value):
    """value as a Python bool when it is one, a NumPy bool or the integer 0 or 1 (a
    Python int or a NumPy integer: PyTorch reads a flag by its truth, so 1 and 0 pass
    there), else None."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (numbers.Integral, np.integer)) and value in (0, 1):
        return bool(value)
    return None


def check_bool(where, name, value):
    """value as a Python bool when it is a bool, a NumPy bool or the integer 0 or 1,
    else a TypeError (a string, None, 2 ...). Callers keep the returned bool."""
    checked = as_bool(value)
    if checked is None:
        raise TypeError(f"{where}: expected {name} to be a bool, got {value!r}")
    return checked


def check_flag(where, name, value):
    """A bool or NumPy bool as a Python bool, else a TypeError (PyTorch's functions take
    only bools for their flags: a string such as 'eval' is not read as True)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: expected {name} to be a bool, got {value!r}")
    return bool(value)


def check_only(where, name, value, supported):
    """A PyTorch keyword fastnn takes at the value(s) it implements (PyTorch's default):
    anything else is a clear error rather than an unexpected-keyword TypeError.
    supported: the accepted values (compared with ==; a pair like (1, 1) as a tuple)."""
    probe = tuple(value) if isinstance(value, list) else value
    probe = probe.item() if isinstance(probe, np.generic) else probe
    try:
        ok = isinstance(probe, bool) == isinstance(supported[0], bool) and probe in supported
    except (TypeError, ValueError):  # an array's ambiguous ==
        ok = False
    if not ok:
        shown = " or ".join(repr(v) for v in supported)
        raise ValueError(f"{where}: {name}={value!r} is not supported (only {shown})")


def plain_number(value):
    """A 0-d numeric array as its Python value (PyTorch takes a 0-d tensor for a number,
    an lr say); anything else as it is."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "biuf":
        return value.item()
    return value


def check_number(where, name, value, low=None, high=None, low_open=False, high_open=True,
                 infinite_ok=False):
    """A real number within [low, high) (or the bounds given by *_open flags); finite
    unless infinite_ok (a clamp's or threshold's bound that is never reached), never NaN."""
    kind = type(value)
    if kind is float:   # (math's tests: NumPy's on a Python float cost 0.8 us each)
        nan, finite = value != value, math.isfinite(value)
    elif kind is int:
        if not -_FLOAT_MAX <= value <= _FLOAT_MAX:
            # no float holds it: the kernels' conversion raised OverflowError, and the
            # numpy backend's after writing the first of its state updates
            raise ValueError(f"{where}: expected {name} to be a number a float can hold, "
                             f"got an int beyond +-{_FLOAT_MAX:.4g}")
        nan, finite = False, True
    elif isinstance(value, bool) or not isinstance(value, (int, float, np.floating,
                                                           np.integer)):
        raise TypeError(f"{where}: expected {name} to be a number, got {value!r}")
    else:
        nan, finite = np.isnan(value), np.isfinite(value)
    if nan or not (infinite_ok or finite):
        if infinite_ok:
            raise ValueError(f"{where}: expected {name} to be a number (not NaN), got "
                             f"{value!r}")
        raise ValueError(f"{where}: expected a finite {name}, got {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        interval = ("(" if low_open else "[") + f"{lo}, {hi}" + (")" if high_open else "]")
        raise ValueError(f"{where}: expected {name} in {interval}, got {value!r}")


def float_of(where, name, value):
    """float(value) of a real number, with check_number's errors naming where and name:
    its ValueError for an int that no float holds (float() raised OverflowError), its
    TypeError for a value that is no number (a string, even one float() reads, as
    PyTorch's kernels take none). A layer's hyper-parameter set after construction is
    read through it at each call: a float costs two isinstance tests and float()."""
    if isinstance(value, int) and not isinstance(value, bool):
        check_number(where, name, int(value))
    elif isinstance(value, (str, bytes)):
        check_number(where, name, value)  # (raises; float() would read '0.5')
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        refused = exc
    check_number(where, name, value)  # (raises its TypeError naming where and name)
    raise refused


def int_of(where, name, value):
    """int(value) of an integer (not a bool; a NumPy integer too), else the TypeValueError
    naming where and name: a layer's int hyper-parameter (a loss's ignore_index) checked
    at construction and read through it at each call, as ``float_of`` reads float ones."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeValueError(f"{where}: expected {name} to be an int, got {value!r}")
    return int(value)


def on_two_devices(where, name, gpu):
    """The error of an array given on the other device than the input (PyTorch's
    RuntimeError for tensors on two devices), naming it; gpu: whether the input is a
    device array."""
    if gpu:
        got = (f"a NumPy array for {name} with a CUDA device input (fastnn.device.to_device "
               f"moves it to the GPU, fastnn.device.to_host the input to the CPU)")
    else:
        got = (f"a CUDA device array for {name} with a NumPy input (fastnn.device.to_host "
               f"moves it to the CPU, fastnn.device.to_device the input to the GPU)")
    return RuntimeValueError(f"{where}: expected all arrays on one device, got {got}")


def as_contiguous(x):
    """x itself when C-contiguous, else a contiguous copy (kernels need [::1] memory): a
    strided device array is copied on the device, as a strided NumPy array on the host.

    A host array also comes back aligned (NumPy's matmul runs its unaligned operands
    through another loop than BLAS, which rounds differently) and as a plain ndarray (a
    np.memmap viewed without a copy), so the results do not depend on how the values lie.
    """
    if isinstance(x, np.ndarray):
        if type(x) is np.ndarray:
            flags = x.flags
            if flags.c_contiguous and flags.aligned:
                return x
        return np.require(x, requirements="CAE")
    if not is_contiguous(x):
        from .device import Cuda
        return Cuda.contiguous(x)
    return x


def int_items(value):
    """A 1-D NumPy integer array as a tuple of its ints (PyTorch takes any sequence of ints
    for a size); any other value as it is."""
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iu":
        return tuple(int(v) for v in value)
    return value


def pair(where, name, value):
    """An int or a pair of ints (a tuple, list or 1-D integer array) -> (int, int), each
    within int64 (``check_int64``)."""
    value = int_items(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        a = b = int(value)
    elif (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
        a, b = int(value[0]), int(value[1])
    else:
        raise TypeError(f"{where}: expected {name} to be an int or a pair of ints, got "
                        f"{value!r}")
    return check_int64(where, name, (a, b))


def check_int64(where, name, values):
    """values (ints) as a tuple of ints when each lies within int64, the compiled kernels'
    sizes (past it numba failed to type the call and Cython raised OverflowError), else
    an error naming where and name: a TypeError as PyTorch's (its conv, pad, unfold and
    interpolate arguments fail to unpack) and a ValueError as its pooling arguments'."""
    values = tuple(int(v) for v in values)
    if all(-2 ** 63 <= v < 2 ** 63 for v in values):
        return values
    bits = [str(v.bit_length()) for v in values]
    shown = " and ".join([", ".join(bits[:-1]), bits[-1]] if len(bits) > 1 else bits)
    raise TypeValueError(f"{where}: expected {name} to be ints within int64, got ints of "
                         f"{shown} bits")
