"""Kernel launches without numba's per-call argument marshalling.

numba launches a compiled kernel (``kernel[grid, block](*args)``) by typing every
argument, looking the overload up, building a ctypes value for each of an array's
5 + 2 * ndim fields and calling the driver: 13-17 us of host time plus 5.5-6.5 us for
each array argument on the stand-in driver of bench/fake_cuda (50-100 us a launch on the
H200 of bench/results/cuda_gpu.json). A training step makes 14 (MLP) to 41 (CNN)
launches between GEMMs that keep the GPU busy for a few hundred microseconds each, so
that host time, not the GPU, set the step's pace.

``Kernel`` wraps a numba dispatcher. The first launch with a combination of argument
types goes through numba, which compiles; later ones reuse numba's compiled kernel and
numba's own argument layout:

* an array's fields (null meminfo and parent, size, itemsize, pointer, shape, strides)
  are marshalled once, by numba, and kept on the device array (whose memory and shape
  never change);
* a scalar is packed by ``struct`` as its numba type;
* the packed values go into a buffer kept for the kernel and argument types, whose
  pointer array the driver's ``cuLaunchKernel`` reads (the driver copies the values
  during the call, so the buffer is free again when it returns).

Every kernel runs on the legacy default stream, as numba's launches without a stream do,
so the order with numba's launches, copies and cuBLAS is kept. Anything else goes
through numba as before: an argument that is not a numba device array or a plain
scalar, a launch with a stream or dynamic shared memory, numba's per-thread default
stream, and the simulator (where ``jit_kernel`` is plain ``cuda.jit``). A direct launch
that fails is made again through numba (which raises the error, if it is one); if none
has worked before, every later launch goes through numba, with a warning.

``config.LAUNCH`` (``FASTNN_CUDA_LAUNCH``) ``"numba"`` launches every kernel through
numba; ``"check"`` launches through this module and compares, at each launch, the packed
values and the compiled kernel with what numba would have used
(tests/test_cuda_fake_driver.py runs training steps in that mode on the stand-in
driver). ``describe()`` says which path launches take (``fastnn.backend_info``).
"""
import ctypes
import struct
import threading
import warnings
import weakref

from numba import cuda
from numba import config as _numba_config

from . import config

SIMULATOR = bool(_numba_config.ENABLE_CUDASIM)

if not SIMULATOR:
    from numba.cuda.cudadrv import driver as _driver
    from numba.cuda.cudadrv.devicearray import DeviceNDArray as _DeviceArray

_SLOT = 8  # every parameter gets an 8-byte slot (numba's are 1, 4 or 8 bytes)

# numba's scalar types (by name, the same in numba and numba-cuda) -> a packer into a slot
_SCALARS = {name: struct.Struct("<" + code + f"{_SLOT - struct.calcsize(code)}x").pack
            for name, code in [("bool", "?"), ("int8", "b"), ("uint8", "B"),
                               ("int16", "h"), ("uint16", "H"), ("int32", "i"),
                               ("uint32", "I"), ("int64", "q"), ("uint64", "Q"),
                               ("float32", "f"), ("float64", "d")]}

_INT64 = struct.Struct("<q").pack
_DOUBLE = struct.Struct("<d").pack

_PROTOTYPE = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint,
    ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p,
    ctypes.c_void_p, ctypes.c_void_p)


def numba_stream():
    """The CUDA stream handle of numba's launches without a stream (fastnn's launches):
    the per-thread default stream (CU_STREAM_PER_THREAD, 2) under
    NUMBA_CUDA_PER_THREAD_DEFAULT_STREAM, else the legacy default stream (0)."""
    return 2 if getattr(_numba_config, "CUDA_PER_THREAD_DEFAULT_STREAM", False) else 0


def _driver_launch():
    """The driver's cuLaunchKernel (legacy default stream semantics for stream 0), or
    None when launches must go through numba (per-thread default stream)."""
    if numba_stream() != 0:
        return None
    library = getattr(_driver.driver, "lib", None)  # numba's ctypes binding
    if not isinstance(library, ctypes.CDLL):
        # NVIDIA's cuda-bindings (numba-cuda) open the system's driver by this name
        library = ctypes.CDLL("libcuda.so.1")
    return _PROTOTYPE(ctypes.cast(library.cuLaunchKernel, ctypes.c_void_p).value)


_launch_kernel = None  # resolved at the first launch (the driver initialises then)

# launches so far: direct (through the driver) and through numba (first launches with a
# combination of argument types, and those this module leaves to numba)
counts = {"direct": 0, "numba": 0}
_thread = threading.local()


def _slot(value):
    """One of numba's marshalled kernel arguments (a ctypes scalar, or for numba-cuda's
    cuda-core launches a Python int, bool or float) as an 8-byte slot."""
    if isinstance(value, ctypes._SimpleCData):
        raw = bytes(value)
    elif isinstance(value, bool) or type(value).__name__ == "bool_":
        raw = bytes([bool(value)])
    elif isinstance(value, int):
        raw = _INT64(value)  # cuda-core passes a Python int as intptr_t
    elif isinstance(value, float):
        raw = _DOUBLE(value)
    else:
        raw = value.tobytes()  # a NumPy scalar
    if len(raw) > _SLOT:
        raise TypeError(f"a kernel argument of {len(raw)} bytes: {value!r}")
    return raw.ljust(_SLOT, b"\0")


def _numba_slots(compiled, ty, value):
    """numba's marshalling of one argument of compiled kernel ``compiled``, as slots."""
    marshalled = []
    compiled._prepare_args(ty, value, 0, [], marshalled)
    return b"".join(_slot(v) for v in marshalled)


def _dims(d):
    """A launch's grid or block as 3 ints, as numba takes them: n or a 1-3 tuple."""
    if isinstance(d, (tuple, list)):
        return tuple(int(n) for n in d) + (1,) * (3 - len(d))
    return (int(d), 1, 1)


_type_codes = {}  # numba array type -> a small int (numba's types hash slowly)


def _array_type(kernel, a):
    """A code for numba's type of device array a, kept on a."""
    ty = kernel.dispatcher.typeof_pyval(a)
    a._fastnn_type = code = _type_codes.setdefault(ty, len(_type_codes))
    return code


class _Signature:
    """What the launches of one kernel with one combination of argument types share:
    numba's compiled kernel, the driver's handle of it, the packers of its scalars and a
    parameter buffer with its pointer array. ``handle`` is None when these launches go
    through numba."""

    def __init__(self, dispatcher, args):
        self.handle = None
        argtypes = tuple(dispatcher.typeof_pyval(a) for a in args)
        self.compiled = dispatcher.overloads.get(argtypes)
        if (self.compiled is None or getattr(self.compiled, "debug", False)
                or getattr(self.compiled, "cooperative", False)
                or getattr(self.compiled, "launch_config_sensitive", False)
                or getattr(dispatcher, "_launch_config_sensitive", False)
                or dispatcher.targetoptions.get("extensions")):
            return
        self.argtypes = argtypes
        self.scalars = []  # (position, packer)
        slots = 0
        for i, (a, ty) in enumerate(zip(args, argtypes)):
            if type(a) is _DeviceArray:
                slots += 5 + 2 * a.ndim
            elif str(ty) in _SCALARS and type(a).__name__ in (
                    "int", "float", "bool", "bool_", str(ty)):
                self.scalars.append((i, _SCALARS[str(ty)]))
                slots += 1
            else:
                return  # a host array, a tuple, a record...: numba's launch
        self.buffer = ctypes.create_string_buffer(max(1, slots * _SLOT))
        base = ctypes.addressof(self.buffer)
        self.pointers = (ctypes.c_void_p * max(1, slots))(
            *[base + _SLOT * k for k in range(slots)])
        self.size = slots * _SLOT
        self.lock = threading.Lock()
        cufunc = self.compiled._codelibrary.get_cufunc()
        handle = cufunc.handle
        self.handle = handle.value if isinstance(handle, ctypes.c_void_p) else int(handle)

    def array_slots(self, position, a):
        """The slots of device array a as argument ``position``, kept on a."""
        a._fastnn_slots = slots = _numba_slots(self.compiled, self.argtypes[position], a)
        return slots


_kernels = weakref.WeakSet()  # every Kernel (to forget their signatures)


class Kernel:
    """A numba CUDA kernel (a dispatcher from ``cuda.jit``) launched as numba's are,
    ``kernel[grid, block](*args)``, through the driver directly once compiled."""

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher
        self.py_func = dispatcher.py_func
        self.__doc__ = dispatcher.__doc__
        self.__name__ = getattr(dispatcher, "__name__", self.py_func.__name__)
        self._signatures = {}  # tuple of argument keys -> _Signature
        _kernels.add(self)

    def __getitem__(self, launch):
        if len(launch) != 2 or config.LAUNCH == "numba":
            counts["numba"] += 1
            return self.dispatcher[launch]
        return _Launch(self, launch[0], launch[1])

    def __getattr__(self, name):  # the rest of numba's dispatcher (overloads, ...)
        if name == "dispatcher":  # (not set yet: copying, unpickling)
            raise AttributeError(name)
        return getattr(self.dispatcher, name)

    def __repr__(self):
        return f"<fastnn cuda kernel {self.__name__}>"


class _Launch:
    __slots__ = ("kernel", "grid", "block")

    def __init__(self, kernel, grid, block):
        self.kernel, self.grid, self.block = kernel, grid, block

    def __call__(self, *args):
        global _worked
        kernel = self.kernel
        keys = []
        parts = []  # each argument's slots (None: not yet kept), or the scalar itself
        for a in args:
            if type(a) is _DeviceArray:
                kept = a.__dict__
                code = kept.get("_fastnn_type")
                keys.append(code if code is not None else _array_type(kernel, a))
                parts.append(kept.get("_fastnn_slots"))
            else:
                keys.append(type(a))
                parts.append(a)
        keys = tuple(keys)
        signature = kernel._signatures.get(keys)
        if signature is None:
            _first_launch(kernel, self.grid, self.block, args, keys)
            return
        if signature.handle is None:
            _numba_launch(kernel, self.grid, self.block, args)
            return
        try:
            for i, pack in signature.scalars:
                parts[i] = pack(parts[i])
        except struct.error:  # an int out of its type's range: numba's conversion says
            _numba_launch(kernel, self.grid, self.block, args)
            return
        if None in parts:
            parts = [signature.array_slots(i, a) if p is None else p
                     for i, (p, a) in enumerate(zip(parts, args))]
        data = b"".join(parts)
        if config.LAUNCH == "check":
            _check(kernel, signature, args, data)
        if not getattr(_thread, "context", False):
            cuda.current_context()  # the context current on this thread, as numba makes it
            _thread.context = True
        grid, block = self.grid, self.block
        gx, gy, gz = (grid, 1, 1) if type(grid) is int else _dims(grid)
        bx, by, bz = (block, 1, 1) if type(block) is int else _dims(block)
        with signature.lock:
            ctypes.memmove(signature.buffer, data, signature.size)
            status = _launch_kernel(signature.handle, gx, gy, gz, bx, by, bz, 0, None,
                                    signature.pointers, None)
        if status:
            _failed(kernel, grid, block, args, status)
            return
        counts["direct"] += 1
        if not _worked:
            _worked = True


def ensure_context():
    """Make numba's CUDA context current on the calling thread, once a thread, as numba's
    own calls do before theirs: the driver's launches and copies that fastnn makes
    itself (here and in _common's copies) need a current context, and a thread that has
    not called numba yet has none (CUDA_ERROR_INVALID_CONTEXT)."""
    if not getattr(_thread, "context", False):
        cuda.current_context()
        _thread.context = True


def _first_launch(kernel, grid, block, args, keys):
    """Launch through numba, which compiles, and keep what later launches with these
    argument types need."""
    global _launch_kernel
    _numba_launch(kernel, grid, block, args)
    if _launch_kernel is None:
        _launch_kernel = _driver_launch() or False
    kernel._signatures[keys] = (_Signature(kernel.dispatcher, args)
                                if _launch_kernel and not _given_up else _NUMBA)


_worked = False  # whether a direct launch has succeeded in this process
_given_up = False  # whether a direct launch failed before any worked (numba's since)


def _failed(kernel, grid, block, args, status):
    """A direct launch failed. Every kernel forgets its signatures (a compiled kernel's
    handle belongs to a context, which may be gone) and this launch goes through numba,
    which raises the error when it is this launch's or an earlier asynchronous one's.
    When no direct launch has worked yet, the driver may not take them at all: every
    later launch goes through numba too, with a warning."""
    global _given_up
    for k in list(_kernels):
        k._signatures.clear()
    if not _worked:
        _given_up = True
        warnings.warn(f"fastnn: launching {kernel.__name__} through the CUDA driver "
                      f"failed (CUDA error {status}); every kernel now launches through "
                      f"numba", RuntimeWarning, stacklevel=3)
    _numba_launch(kernel, grid, block, args)


def _numba_launch(kernel, grid, block, args):
    kernel.dispatcher[grid, block](*args)
    counts["numba"] += 1


class _NumbaOnly:
    handle = None


_NUMBA = _NumbaOnly()


def _check(kernel, signature, args, data):
    """FASTNN_CUDA_LAUNCH=check: the packed arguments and the compiled kernel are numba's."""
    argtypes = tuple(kernel.dispatcher.typeof_pyval(a) for a in args)
    if argtypes != signature.argtypes:
        raise AssertionError(f"{kernel.__name__}: argument types {argtypes}, "
                             f"launching the kernel for {signature.argtypes}")
    expected = b"".join(_numba_slots(signature.compiled, ty, a)
                        for ty, a in zip(argtypes, args))
    if expected != data:
        raise AssertionError(f"{kernel.__name__}: packed arguments differ from numba's:\n"
                             f"{data.hex()}\n{expected.hex()}")


def register_cap(threads):
    """The max_registers a kernel launched with ``threads`` threads a block needs, or None.

    Up to 256 threads any register count fits a multiprocessor's 65,536 (255 at most a
    thread): no cap, so the compiler keeps its own choice (an explicit cap, even 255,
    makes ptxas 13.0 allocate more: the softmax forward 69 -> 92, LayerNorm's float64
    backward 128 -> 140). Beyond, 65,536 // threads: the count the GPU's linker (the
    driver's PTX JIT or nvJitLink, not the ptxas that counted the row kernels at 69-128)
    gives a kernel is not known here, and a 512-thread block of one given more than 128
    fails to launch (CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES) where the simulator and the PTX
    check pass."""
    return 65536 // threads if threads > 256 else None


def jit_kernel(fn=None, threads=None, **options):
    """``cuda.jit`` for a kernel (``@jit_kernel``, ``@jit_kernel(max_registers=...)`` or
    ``@jit_kernel(threads=...)``), launched through ``Kernel`` on a GPU and as numba's own
    kernel in the simulator. Without a max_registers of its own, a kernel is capped
    (``register_cap``) for its blocks: ``threads`` threads (the kernel factories' block
    sizes), else config.THREADS when the kernel is made (FASTNN_CUDA_THREADS for the
    module-level kernels, which every launcher runs with config.THREADS threads)."""
    if fn is None:
        return lambda f: jit_kernel(f, threads, **options)
    if not SIMULATOR and "max_registers" not in options:
        cap = register_cap(threads or config.THREADS)
        if cap:
            options["max_registers"] = cap
    dispatcher = cuda.jit(**options)(fn) if options else cuda.jit(fn)
    if SIMULATOR:
        return dispatcher
    return Kernel(dispatcher)


def describe():
    """How kernels launch in this process, in words (for ``backend_info``)."""
    if SIMULATOR:
        return "numba's CUDA simulator"
    if config.LAUNCH == "numba":
        return "numba's dispatcher (FASTNN_CUDA_LAUNCH=numba)"
    if _given_up:
        return "numba's dispatcher (the driver refused a direct launch)"
    if _launch_kernel is False:
        return "numba's dispatcher (per-thread default stream)"
    return ("the driver's cuLaunchKernel once numba has compiled a kernel for its "
            "argument types" + (", checked against numba's marshalling"
                                if config.LAUNCH == "check" else ""))
