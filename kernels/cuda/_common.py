"""What every op module shares: the guarded numba.cuda import, host/device staging.

Each op accepts NumPy arrays or device arrays (numba device arrays, or anything with
``__cuda_array_interface__`` such as CuPy arrays). ``Call`` moves host arguments to
the device, runs the kernels, copies host in-place arguments and ``out=`` buffers back,
and returns NumPy arrays when the call got no device array, device arrays otherwise.
"""
import math
import threading
import weakref

import numpy as np

try:
    from numba import cuda
except ImportError as exc:  # numba itself is missing
    raise ImportError("fastnn's cuda backend needs numba (pip install numba)") from exc

if not cuda.is_available():
    raise ImportError(
        "fastnn's cuda backend needs a CUDA GPU with a working driver "
        "(numba.cuda.is_available() is False); set NUMBA_ENABLE_CUDASIM=1 before "
        "importing numba to run it on the CPU simulator")

from numba import config as _numba_config

from .launch import ensure_context

SIMULATOR = bool(_numba_config.ENABLE_CUDASIM)

if SIMULATOR:
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray as _DeviceArray
else:
    from numba.cuda.cudadrv import driver as _driver
    from numba.cuda.cudadrv.devicearray import DeviceNDArray as _DeviceArray


def is_device(a):
    """True for a numba device array or any object exposing __cuda_array_interface__."""
    return isinstance(a, _DeviceArray) or hasattr(a, "__cuda_array_interface__")


def as_device(a):
    """A numba device array viewing ``a`` (no copy) when ``a`` is on the device."""
    if isinstance(a, _DeviceArray):
        return a
    return cuda.as_cuda_array(a)


# Copies between host and device. numba's own (cuda.to_device, copy_to_device,
# copy_to_host) spend 30-160 us of host time a call on checks and staging where the
# driver's copy takes 3 us (measured on the stand-in driver of bench/fake_cuda), and a
# training step makes several: its input batch, its labels, the loss, the loss's
# gradient. The three below call the driver's copies directly on C-contiguous arrays of
# matching shape and dtype (numba's copies for anything else, and in the simulator).

def _c_contiguous(d):
    return isinstance(d, _DeviceArray) and d.is_c_contiguous()


def to_device(host):
    """A new device array holding a NumPy array's values: (any shape) in, same out."""
    host = np.asarray(host, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
    if SIMULATOR:
        return cuda.to_device(host)
    d = cuda.device_array(host.shape, dtype=host.dtype)
    if host.nbytes:
        _driver.host_to_device(d, host, host.nbytes)
    return d


def to_host(d, out=None):
    """A NumPy copy of device array d, written into out when given (a NumPy array of d's
    shape and dtype) and returned."""
    d = as_device(d)
    if out is not None and out.shape == d.shape and (out.dtype != d.dtype
                                                     or not out.flags.c_contiguous):
        out[...] = to_host(d)  # a cast, or a strided out: through a fresh copy
        return out
    if not _c_contiguous(d):
        # gathered on the device first: numba's copy_to_host refuses negative strides on a
        # GPU (NotImplementedError, where the simulator's copies any), copies a strided
        # array's whole span, and takes no out= of other strides
        from .device import contiguous_copy
        d = contiguous_copy(d)
    if SIMULATOR or (out is not None and (out.shape != d.shape or not out.flags.writeable)):
        return d.copy_to_host() if out is None else d.copy_to_host(out)
    if out is None:
        out = np.empty(d.shape, d.dtype)
    if out.nbytes:
        ensure_context()  # (a thread that has only read arrays made elsewhere has none)
        _driver.device_to_host(out, d, out.nbytes)
    return out


def copy_into(dst, src):
    """dst[...] = src: dst a device array, src a device array of its shape and dtype or a
    NumPy array of its shape (cast to its dtype)."""
    dst = as_device(dst)
    on_device = is_device(src)
    src = as_device(src) if on_device else np.asarray(src, dtype=dst.dtype, order="C")
    if not dst.size and tuple(src.shape) == tuple(dst.shape):
        return  # nothing to copy (the simulator's copy refuses a view of no elements)
    if (SIMULATOR or not _c_contiguous(dst) or tuple(src.shape) != tuple(dst.shape)
            or src.dtype != dst.dtype or (on_device and not _c_contiguous(src))):
        dst.copy_to_device(src)
        return
    nbytes = dst.size * dst.dtype.itemsize
    if not nbytes:
        return
    ensure_context()
    if on_device:
        _driver.device_to_device(dst, src, nbytes)
    else:
        _driver.host_to_device(dst, src, nbytes)


# Python's min and max of two values, for device code: the builtins with two arguments do
# not compile on every numba CUDA target (numba 0.68's bundled one cannot type them). Same
# results as the builtins, NaN included (max(a, b) is a unless b > a).
@cuda.jit(device=True)
def dmin(a, b):
    return b if b < a else a


@cuda.jit(device=True)
def dmax(a, b):
    return b if b > a else a


# math.sin, math.cos, math.log and 1 / math.sqrt of the values where a GPU gives NaN or
# an infinity (an infinite argument, a log or reciprocal root of 0): the simulator runs
# Python's math functions and division, which raise ValueError('math domain error') and
# ZeroDivisionError there instead.
@cuda.jit(device=True)
def dsin(v):
    """sin(v), NaN for an infinite v (v - v: inf - inf, NaN stays NaN)."""
    return math.sin(v) if abs(v) < math.inf else v - v


@cuda.jit(device=True)
def dcos(v):
    """cos(v), NaN for an infinite v."""
    return math.cos(v) if abs(v) < math.inf else v - v


@cuda.jit(device=True)
def dlog(v):
    """log(v) of a float64 v: -inf for 0, NaN below 0 and for NaN."""
    return math.log(v) if v > 0.0 else (-math.inf if v == 0.0 else math.nan)


@cuda.jit(device=True)
def drsqrt(v):
    """1 / sqrt(v) of a float64 v: inf for 0, NaN below 0 and for NaN."""
    return 1.0 / math.sqrt(v) if v > 0.0 else (math.inf if v == 0.0 else math.nan)


_views = weakref.WeakKeyDictionary()   # device array -> {shape: view of it}


def reshaped(d, shape):
    """A view of C-contiguous device array d in another shape (of d's size), kept for as
    long as d lives: reshaping a numba device array costs 13 us of host time, and a
    training step reshapes the same layer buffers every step (flattened for elementwise
    kernels, (N, C, H*W) for BatchNorm2d, a conv's weight as a matrix). (The view
    references the memory, not the array, so it does not keep the array alive.)"""
    shape = tuple(shape)
    if tuple(d.shape) == shape:
        return d
    try:
        views = _views.get(d)
    except TypeError:  # the simulator's arrays compare elementwise: not hashable
        return d.reshape(shape)
    if views is None:
        views = _views[d] = {}
    view = views.get(shape)
    if view is None:
        view = views[shape] = d.reshape(shape)
    return view


def flat(d):
    """A 1-D view of C-contiguous device array d (``reshaped``)."""
    return d if d.ndim == 1 else reshaped(d, (d.size,))


_scratch = threading.local()


def scratch(name, shape, dtype):
    """A device array for a temporary inside one op call (im2col columns, partial sums),
    reused by this thread's later calls instead of a cudaMalloc each time.

    Every kernel and cuBLAS call runs in order on the default stream, so a later call
    cannot overwrite the buffer while an earlier one still reads it; each thread has its
    own buffers. The buffer grows to the largest size asked for under ``name``; the
    view of each shape asked for is kept too (slicing a numba device array costs tens
    of microseconds of Python, a large share of a small op's call)."""
    local = _scratch.__dict__
    views = local.setdefault("views", {})
    dtype = np.dtype(dtype)
    key = (name, dtype, tuple(shape))
    view = views.get(key)
    if view is not None:
        return view
    buffers = local.setdefault("buffers", {})
    size = math.prod(shape)
    buf = buffers.get((name, dtype))
    if buf is None or buf.size < size:
        buf = cuda.device_array(max(size, 1), dtype=dtype)
        buffers[(name, dtype)] = buf
        for stale in [k for k in views if k[:2] == (name, dtype)]:
            del views[stale]
    view = buf[:size].reshape(shape)
    views[key] = view
    return view


class Call:
    """Staging for one op call.

    ``Call(*arrays)`` decides the mode: device mode if any argument is a device array.
    ``arg(a)`` gives a device array for an input; ``inout(a)`` the same for an argument
    updated in place (a host one is copied back by ``done``); ``out(buf, shape, dtype)``
    a device buffer for a result (the caller's if given). ``done(d)`` finishes and
    turns a device result into what the caller gets.
    """

    def __init__(self, *arrays):
        self.device = any(a is not None and is_device(a) for a in arrays)
        self._copy_back = []  # (device array, host array)

    def arg(self, a):
        if a is None:
            return None
        if is_device(a):
            return as_device(a)
        return to_device(a)

    def inout(self, a):
        if a is None or is_device(a):
            return self.arg(a)
        d = to_device(a)
        self._copy_back.append((d, a))
        return d

    def out(self, buf, shape, dtype):
        if buf is None:
            return cuda.device_array(shape, dtype=dtype)
        if is_device(buf):
            return as_device(buf)
        d = cuda.device_array(buf.shape, dtype=buf.dtype)
        self._copy_back.append((d, buf))
        return d

    def sync(self):
        """Copy every host in-place argument and out= buffer back from the device."""
        for d, host in self._copy_back:
            to_host(d, host)  # (a strided host array through a fresh copy)
        self._copy_back = []

    def result(self, d, buf=None):
        """What the caller gets for device result ``d`` (after ``sync``): the caller's
        buffer if one was given, else ``d`` in device mode and a new NumPy array
        otherwise."""
        if d is None:
            return None
        if buf is not None:
            return buf
        return d if self.device else to_host(d)

    def done(self, d, buf=None):
        self.sync()
        return self.result(d, buf)
