"""Where arrays live: the host (NumPy) or a CUDA GPU (numba device arrays).

PyTorch's rule, with NumPy arrays in place of CPU tensors: a model moved with
``Module.to("cuda")`` keeps its parameters, gradients, running statistics, layer buffers
and (through ``fastnn.optim``) optimizer state on the GPU, and its layers run the
``cuda`` backend's kernels whatever ``fastnn.set_backend`` says. Arrays follow the
caller: a NumPy input gives a NumPy output (copied in and back), a device array input
(``fastnn.device.to_device(x)``, a numba device array, or a CuPy array) gives a
device array output that stays on the GPU.

``import fastnn`` does not import numba.cuda; the first device array or ``to("cuda")``
does. Each place has an array namespace (``Host`` / ``Cuda`` below) with the few
operations the layers and optimizers need beyond the kernels: allocate, zero, copy.
"""
import ctypes
import math
import mmap
import sys

import numpy as np

from . import backend



def _libc_memset():
    """libc's memset through ctypes, or None where the C library cannot be named."""
    try:
        memset = ctypes.CDLL(None).memset
    except (OSError, AttributeError, TypeError):
        return None
    memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    memset.restype = ctypes.c_void_p
    return memset


_memset = _libc_memset()
_MEMSET_MIN = 1 << 16  # below this a NumPy fill costs less than the ctypes call

DEVICES = ("cpu", "cuda")


def check_device(where, device):
    """'cpu' or 'cuda' (also 'cpu:0', 'cuda:0', a torch.device and the device of an
    array's namespace) -> name."""
    name = None
    if type(device).__name__ == "device":   # a torch.device: device 0 only
        name = device.type if getattr(device, "index", None) in (None, 0) else str(device)
    name = name or getattr(device, "name", device)
    if name in ("cuda:0", "cpu:0"):
        name = name[:-2]
    if name not in DEVICES:
        raise ValueError(f"{where}: expected device 'cpu' or 'cuda', got {device!r}")
    return name


# numba's device array classes (the simulator's has no __cuda_array_interface__; mapped
# arrays are NumPy arrays): known by type, because the interface of a numba array is a
# property that builds a new dict at each access (7 us; a training step asks 30 times)
_NUMBA_DEVICE_ARRAYS = ("DeviceNDArray", "FakeCUDAArray")
_numba_device_types = {}   # type -> whether it is one of them
# np.ndarray and the numba device array types seen so far: arrays whose .shape is a
# tuple and .dtype a NumPy dtype, for the quick checks of the layers
ARRAY_TYPES = {np.ndarray}


def is_device_array(a):
    """True for a numba device array or anything with ``__cuda_array_interface__``.
    (A NumPy array, the common case, answers at the first test.)"""
    if type(a) is np.ndarray or a is None or isinstance(a, np.ndarray):
        return False
    kind = type(a)
    numba_array = _numba_device_types.get(kind)
    if numba_array is None:
        numba_array = (kind.__name__ in _NUMBA_DEVICE_ARRAYS
                       and kind.__module__.startswith("numba"))
        _numba_device_types[kind] = numba_array
        if numba_array:
            ARRAY_TYPES.add(kind)
    return numba_array or hasattr(a, "__cuda_array_interface__")


def is_array(a):
    """A NumPy array or a device array."""
    return isinstance(a, np.ndarray) or is_device_array(a)


def device_of(a):
    """'cuda' for a device array, 'cpu' otherwise."""
    return "cuda" if is_device_array(a) else "cpu"


def to_device(a):
    """A C-contiguous device copy of a host array (a device array is returned as is)."""
    return Cuda.put(a)


def to_host(a):
    """A NumPy copy of a device array (a NumPy array is returned as is); a Parameter's
    values (``p.numpy()``: its data itself on the CPU, a host copy on the GPU)."""
    if is_device_array(a):
        return Cuda._cuda().to_host(a)
    if type(a) is not np.ndarray and hasattr(a, "numpy") and hasattr(a, "grad"):
        return a.numpy()   # (a Parameter: nn imports this module, not the other way)
    return a


def host_copy(a):
    """A new NumPy array with the values of a host or device array (state dicts)."""
    return Cuda._cuda().to_host(a) if is_device_array(a) else np.array(a, copy=True)


def is_contiguous(a):
    """C-contiguity of a host or device array."""
    if isinstance(a, np.ndarray):
        return a.flags.c_contiguous
    if hasattr(a, "is_c_contiguous"):
        return a.is_c_contiguous()
    flags = getattr(a, "flags", None)
    return bool(getattr(flags, "c_contiguous", True))


_ALIGN = 64  # a cache line, and an AVX-512 register


def _aligned(alloc, shape, dtype):
    """``alloc(shape, dtype)`` starting on a 64-byte boundary: the buffers fastnn owns
    (optimizer flat buffers and state, layer buffers). NumPy's large arrays start 16 bytes
    past a page, so every 512-bit load and store of a kernel streaming several of them
    straddles two cache lines: Adam's update over 78400 floats took 62-66 us with its four
    arrays at such offsets and 22 us aligned (gcc's AVX-512 loop; one thread).
    From ``_HUGE_MIN`` bytes up (Linux), a mapping of its own in huge pages instead
    (``_huge_page_array``)."""
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    nbytes = math.prod(map(int, shape)) * dtype.itemsize   # (np.prod: 4 us a call)
    if nbytes >= _HUGE_MIN and _HUGE_PAGES:
        # a fresh anonymous mapping reads as zeros: np.zeros needs no fill
        return _huge_page_array(nbytes).view(dtype).reshape(shape)
    raw = alloc(nbytes + _ALIGN, dtype=np.uint8)
    start = -raw.ctypes.data % _ALIGN
    return raw[start:start + nbytes].view(dtype).reshape(shape)


_HUGE_PAGE = 2 << 20
_HUGE_MIN = 4 << 20
# Linux with transparent huge pages on request (madvise) or always
_HUGE_PAGES = sys.platform.startswith("linux") and hasattr(mmap, "MADV_HUGEPAGE")


def _huge_page_array(nbytes):
    """(nbytes,) uint8 zeros in a fresh anonymous mapping, starting on a 2 MB boundary and
    advised for transparent huge pages before its first touch. NumPy's big buffers come
    from heap memory that may already be mapped in 4 KB pages, depending on what the
    process freed before. On that memory the same 784-1024-1024-10 training step at
    batch 32 (its parameters, gradients and momentum are three 7.3 MB flat buffers) ran
    3.5 or 5.0 ms from one process to the next (Cython; PyTorch's step 5 ms both
    times); with its buffers here, 3.4-3.6 ms in every process tried (8 of 8). Page
    sizes were not traced in the slow processes: the 4 KB pages are the likely cause.
    The unused head of the mapping (at most 2 MB before the aligned start) is never
    touched, so it costs address space only."""
    size = -(-nbytes // _HUGE_PAGE) * _HUGE_PAGE + _HUGE_PAGE
    region = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        region.madvise(mmap.MADV_HUGEPAGE)
    except OSError:  # a kernel without transparent huge pages: 4 KB pages then
        pass
    raw = np.frombuffer(region, dtype=np.uint8)  # keeps the mapping alive
    start = -raw.ctypes.data % _HUGE_PAGE
    return raw[start:start + nbytes]


def c_contiguous(a, dtype=None):
    """a as a C-contiguous NumPy array (of dtype when given; a itself when it already is
    one), a 0-d array staying 0-d (np.ascontiguousarray makes it 1-d, so a layer given a
    0-d input would hand back shape (1,))."""
    return np.asarray(a, dtype=dtype, order="C")


class Host:
    """The host's array namespace (NumPy)."""

    name = "cpu"

    @staticmethod
    def put(a):
        """a as a C-contiguous host array (copied back when on the device)."""
        if type(a) is np.ndarray and a.flags.c_contiguous:
            return a
        return c_contiguous(to_host(a))

    @staticmethod
    def empty(shape, dtype):
        """An uninitialised array starting on a 64-byte boundary (see ``_aligned``)."""
        return _aligned(np.empty, shape, dtype)

    @staticmethod
    def zeros(shape, dtype):
        """A zero-filled array of shape and dtype on a 64-byte boundary."""
        return _aligned(np.zeros, shape, dtype)

    @staticmethod
    def fill_zero(a):
        """a[...] = 0; a large contiguous array through libc's memset (all-zero bytes are
        0 and 0.0), which writes 7 MB in 77 us where NumPy's scalar fill takes 128 us:
        an optimizer's zero_grad of 784-1024-1024-10's gradients every step."""
        if (_memset is not None and a.nbytes >= _MEMSET_MIN and a.flags.c_contiguous
                and a.flags.writeable):
            _memset(a.ctypes.data, 0, a.nbytes)
        else:
            a.fill(0)  # (a[...] = 0 allocates a 0-d array for the 0 at every call)

    @staticmethod
    def copy_into(dst, src):
        """dst[...] = src, src from either place (same shape)."""
        dst[...] = to_host(src)


class Cuda:
    """The GPU's array namespace (numba device arrays, imported on first use)."""

    name = "cuda"

    @staticmethod
    def _cuda():
        from .kernels.cuda import device as cuda_device  # raises ImportError without CUDA
        return cuda_device

    @staticmethod
    def put(a):
        """a as a device array: a host array copied over, a device array (numba's, or
        one with ``__cuda_array_interface__`` such as CuPy's) as a numba view of it."""
        if is_device_array(a):
            return Cuda._cuda().as_device(a)
        return Cuda._cuda().to_device(a)

    @staticmethod
    def empty(shape, dtype):
        """An uninitialised device array of shape and dtype."""
        return Cuda._cuda().cuda.device_array(shape, dtype=dtype)

    @staticmethod
    def zeros(shape, dtype):
        """A zero-filled device array of shape and dtype (filled on the device)."""
        a = Cuda.empty(shape, dtype)
        Cuda.fill_zero(a)
        return a

    @staticmethod
    def fill_zero(a):
        """a[...] = 0 for a C-contiguous device array, by a kernel on the device."""
        Cuda._cuda().fill_zero(a)

    @staticmethod
    def contiguous(a):
        """A C-contiguous device copy of a strided device array (made on the device)."""
        return Cuda._cuda().contiguous_copy(a)

    @staticmethod
    def copy_into(dst, src):
        """dst[...] = src, src a host array or a device array of the same shape."""
        Cuda._cuda().copy_into(dst, src)


def scaled(a, factor, copy=False):
    """a * factor in a's dtype: a itself scaled in place, or a new array when copy. A
    device array goes through the host (a copy each way): for work off the GPU's hot
    path (loss reductions other than 'mean', gradient clipping); a 0-d a gives a 0-d
    array, not a NumPy scalar. No warning where an inf times 0 gives NaN, as PyTorch
    gives none."""
    with np.errstate(invalid="ignore", over="ignore"):
        if is_device_array(a):
            host = to_host(a) * a.dtype.type(factor)
            if copy:
                return Cuda.put(host)
            Cuda.copy_into(a, host)
            return a
        if copy:   # (into a new array: a 0-d a times a number is a NumPy scalar)
            return np.multiply(a, a.dtype.type(factor), out=np.empty(a.shape, a.dtype))
        a *= a.dtype.type(factor)
        return a


def added(*arrays):
    """The sum of arrays of one shape, where the first lives (a new array); device arrays
    go through the host (off the GPU's hot path: the residuals of the transformer layers
    and the summed gradients of self-attention)."""
    if not any(is_device_array(a) for a in arrays):
        total = arrays[0] + arrays[1]
        for a in arrays[2:]:
            total += a
        return total
    total = to_host(arrays[0]).copy()
    for a in arrays[1:]:
        total += to_host(a)
    return namespace_of(arrays[0]).put(total)


def update_on_host(a, update):
    """Call update(h) on a host view of a, changing it in place: a itself for a NumPy
    array; for a device array a host copy, written back after (off the GPU's hot path: the
    host-side gradients of PReLU, ConvTranspose2d and Embedding on a GPU model)."""
    if is_device_array(a):
        host = to_host(a)
        update(host)
        Cuda.copy_into(a, host)
    else:
        update(a)


def moved_axis(a, source, destination):
    """A C-contiguous copy of a with axis source moved to destination (np.moveaxis), on
    a's device; a device array goes through the host (off the GPU's hot path: softmax
    over an axis other than the last)."""
    return namespace_of(a).put(np.ascontiguousarray(np.moveaxis(to_host(a), source,
                                                                destination)))


def rows_along(a, axis):
    """(a as 2-D rows along axis: (everything else, a.shape[axis]), the shape of a with
    that axis moved last): a view when axis is the last one, else a moved copy. The row
    kernels (softmax, cross-entropy) then run over any axis."""
    if axis != a.ndim - 1:
        a = moved_axis(a, axis, -1)
    shape = tuple(a.shape)
    return a.reshape(math.prod(shape[:-1]), shape[-1]), shape


def from_rows(rows, shape, axis):
    """Undo ``rows_along``: rows viewed as shape (the moved shape it returned), the last
    axis put back at axis."""
    y = rows.reshape(shape)
    return y if axis == len(shape) - 1 else moved_axis(y, -1, axis)


def namespace(device):
    """The array namespace of 'cpu' or 'cuda'."""
    return Cuda if device == "cuda" else Host


def namespace_of(a):
    """The array namespace of the place array ``a`` lives in."""
    return Cuda if is_device_array(a) else Host


def kernels(device):
    """The backend module whose kernels run on ``device``: the cuda backend for 'cuda',
    the current backend (``fastnn.set_backend`` / ``use_backend``) for 'cpu'."""
    return backend.load("cuda") if device == "cuda" else backend.current()
