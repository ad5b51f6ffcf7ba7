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

SIMULATOR = bool(_numba_config.ENABLE_CUDASIM)

if SIMULATOR:
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray as _DeviceArray
else:
    from numba.cuda.cudadrv.devicearray import DeviceNDArray as _DeviceArray


def block_jit(threads):
    """``cuda.jit`` for a kernel always launched with ``threads`` threads per block:
    registers capped so that such a block fits on a multiprocessor (64K registers),
    as __launch_bounds__ would (a 1024-thread block of a kernel compiled for more than
    64 registers per thread fails to launch). The simulator takes no such option."""
    if SIMULATOR:
        return cuda.jit
    return cuda.jit(max_registers=min(255, 65536 // threads))


def is_device(a):
    """True for a numba device array or any object exposing __cuda_array_interface__."""
    return isinstance(a, _DeviceArray) or hasattr(a, "__cuda_array_interface__")


def as_device(a):
    """A numba device array viewing ``a`` (no copy) when ``a`` is on the device."""
    if isinstance(a, _DeviceArray):
        return a
    return cuda.as_cuda_array(a)


# Python's min and max of two values, for device code: the builtins with two arguments do
# not compile on every numba CUDA target (numba 0.68's bundled one cannot type them). Same
# results as the builtins, NaN included (max(a, b) is a unless b > a).
@cuda.jit(device=True)
def dmin(a, b):
    return b if b < a else a


@cuda.jit(device=True)
def dmax(a, b):
    return b if b > a else a


_flat_views = weakref.WeakKeyDictionary()


def flat(d):
    """A 1-D view of a C-contiguous device array, kept for as long as the array lives:
    reshaping a numba device array costs tens of microseconds of host time, and a
    training step flattens the same layer buffers every step. (The view references the
    memory, not the array, so it does not keep the array alive.)"""
    if d.ndim == 1:
        return d
    try:
        view = _flat_views.get(d)
    except TypeError:  # the simulator's arrays compare elementwise: not hashable
        return d.reshape(d.size)
    if view is None:
        view = d.reshape(d.size)
        _flat_views[d] = view
    return view


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
        return cuda.to_device(np.ascontiguousarray(a))

    def inout(self, a):
        if a is None or is_device(a):
            return self.arg(a)
        d = cuda.to_device(np.ascontiguousarray(a))
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
            if host.flags.c_contiguous:
                d.copy_to_host(host)
            else:
                host[...] = d.copy_to_host()
        self._copy_back = []

    def result(self, d, buf=None):
        """What the caller gets for device result ``d`` (after ``sync``): the caller's
        buffer if one was given, else ``d`` in device mode and a new NumPy array
        otherwise."""
        if d is None:
            return None
        if buf is not None:
            return buf
        return d if self.device else d.copy_to_host()

    def done(self, d, buf=None):
        self.sync()
        return self.result(d, buf)
