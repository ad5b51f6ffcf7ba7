"""One thread pool: OpenBLAS runs its parallel work on the kernels' OpenMP pool.

The compiled backends call OpenBLAS for every dense matrix product (SciPy's, and
NumPy's for the Linear layers) and their own OpenMP loops (Cython's prange, numba's
'omp' layer; one libgomp) for everything around it. OpenBLAS's pthreads build keeps a
pool of its own, so a training step hands the cores back and forth between two pools:
each pool's idle workers either spin, taking a core from the other pool's next region,
or sleep, and a sleeping worker on this virtual machine takes 50-100 us to wake. With
GOMP_SPINCOUNT cut to 1000 so that the OpenMP workers got out of BLAS's way, every
product and every fused kernel paid that wake-up, and PyTorch in the same process (its
loops run on the same libgomp) was slowed as much: 784-100-10 batch 128 took 1.5-2.6 ms
in PyTorch against 0.9-1.4 ms with libgomp's default wait.

OpenBLAS >= 0.3.27 runs its jobs through a callback when one is registered
(``openblas_set_threads_callback_function``). kernels/cython/_blas_pool.h is that
callback: it runs the jobs of each call on an OpenMP team. ``use_openmp_pool()``
registers it with SciPy's OpenBLAS, and with NumPy's when that is an ILP64 OpenBLAS
(NumPy's wheels; its ?gemm_64_ then run the Linear products: ``numpy_gemm_addresses``),
when a compiled backend loads; libgomp keeps its default wait (fastnn/threads.py).
Measured on 2 cores against PyTorch in the same process (both on libgomp's default
wait), fastnn/PyTorch step time with SciPy's OpenBLAS on the pool: 784-100-10 b128
0.71-0.76, 784-1024-1024-10 b32 0.75-0.93, b256 0.93-1.05; with the Linear products on
NumPy's too: 0.62-0.68, 0.73-0.79, 0.88-0.91 (BENCHMARKS.md has the suite's numbers).

In a child made by os.fork() the OpenMP pool is unusable (fastnn/threads.py says why):
the child unregisters the callback and OpenBLAS's own threads take over again.

Kernels must call multi-threaded BLAS outside any OpenMP parallel region, even one of a
single thread (OpenMP's ``if`` clause, Cython's ``use_threads_if``, or numba's prange
with one thread's share): inside one, the callback's team is a nested team of new
threads, which compete with the pool's spinning workers; a batch-1 convolution's GEMM
took 6-7.5 ms instead of 0.2 ms that way. The conv kernels run a one-thread plan as a
plain loop (kernels/cython/_conv.pyx, kernels/numba_cpu/conv.py's _run_groups) and
make BLAS serial inside their parallel regions (kernels/blas_threads.py).
"""
import ctypes
import importlib.machinery
import importlib.util
import os
import threading

from . import threads as _threads

_SETTERS = ("openblas_set_threads_callback_function",
            "scipy_openblas_set_threads_callback_function")
_lock = threading.Lock()
_library = None     # ctypes handle of SciPy's cython_blas (and so of its OpenBLAS)
_setter = None      # OpenBLAS's callback setter, when it has one
_bound = False
_installed = False
_numpy = None       # NumPy's OpenBLAS, when it is an ILP64 one: (setter, sgemm, dgemm)
_numpy_installed = False

# NumPy's wheels ship OpenBLAS with 64-bit integers and a '64_' symbol suffix (the
# suffix is what tells the integer width; a library without it is left alone)
_NUMPY_SETTERS = ("scipy_openblas_set_threads_callback_function64_",
                  "openblas_set_threads_callback_function64_")
_NUMPY_GEMMS = (("scipy_sgemm_64_", "scipy_dgemm_64_"), ("sgemm_64_", "dgemm_64_"))


def _extension_path(package_dirs, name):
    for directory in package_dirs or ():
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(directory, name + suffix)
            if os.path.exists(path):
                return path
    return None


def scipy_blas_library():
    """ctypes handle of ``scipy.linalg.cython_blas``'s shared object (its OpenBLAS
    symbols are reachable through it), or None. Found by path: importing
    scipy.linalg costs a tenth of a second, and this runs on ``import fastnn``."""
    global _library, _setter, _bound
    with _lock:
        if not _bound:
            _bound = True
            try:
                spec = importlib.util.find_spec("scipy")
            except (ImportError, ValueError):
                spec = None
            dirs = [os.path.join(d, "linalg")
                    for d in (spec.submodule_search_locations or ())] if spec else []
            path = _extension_path(dirs, "cython_blas")
            if path is not None:
                try:
                    _library = ctypes.CDLL(path)
                except OSError:
                    _library = None
            for name in _SETTERS if _library is not None else ():
                setter = getattr(_library, name, None)
                if setter is not None:
                    setter.restype, setter.argtypes = None, [ctypes.c_void_p]
                    _setter = setter
                    break
    return _library


def _numpy_blas():
    """(callback setter, sgemm_64_, dgemm_64_) of NumPy's OpenBLAS when it is an ILP64
    OpenBLAS that takes the callback, else None."""
    global _numpy
    if _numpy is None:
        _numpy = ()
        try:
            from numpy._core import _multiarray_umath as umath
        except ImportError:
            try:
                from numpy.core import _multiarray_umath as umath
            except ImportError:
                return None
        try:
            lib = ctypes.CDLL(umath.__file__)  # dlsym also searches its dependencies
        except OSError:
            return None
        setter = next((getattr(lib, n) for n in _NUMPY_SETTERS if hasattr(lib, n)), None)
        gemms = next(((getattr(lib, s), getattr(lib, d)) for s, d in _NUMPY_GEMMS
                      if hasattr(lib, s) and hasattr(lib, d)), None)
        if setter is not None and gemms is not None:
            setter.restype, setter.argtypes = None, [ctypes.c_void_p]
            i64 = ctypes.POINTER(ctypes.c_int64)
            for gemm in gemms:  # (transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
                gemm.restype = None
                gemm.argtypes = [ctypes.c_char_p, ctypes.c_char_p, i64, i64, i64,
                                 ctypes.c_void_p, ctypes.c_void_p, i64, ctypes.c_void_p, i64,
                                 ctypes.c_void_p, ctypes.c_void_p, i64]
            _numpy = (setter,) + gemms
    return _numpy or None


def _openmp_extension_built():
    """True when the Cython OpenMP helper is on disk, built with OpenMP. Looked up
    without importing it (loading it loads libgomp): an OpenMP build calls into the
    runtime (GOMP_parallel with gcc's libgomp, __kmpc_fork_call with LLVM's libomp)."""
    try:
        spec = importlib.util.find_spec("fastnn.kernels")
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    dirs = [os.path.join(d, "cython") for d in (spec.submodule_search_locations or ())]
    path = _extension_path(dirs, "_openmp")
    return path is not None and built_with_openmp(path)


def built_with_openmp(path):
    """True when the shared object at ``path`` calls into an OpenMP runtime."""
    try:
        with open(path, "rb") as f:
            binary = f.read()
    except OSError:
        return False
    return b"GOMP_parallel" in binary or b"__kmpc_fork_call" in binary


def expected():
    """Whether ``use_openmp_pool()`` can succeed here, decided without loading any
    OpenMP runtime (``import fastnn`` asks, to leave libgomp's wait policy alone)."""
    scipy_blas_library()
    return _setter is not None and _openmp_extension_built()


def use_openmp_pool():
    """Register the OpenMP callback with SciPy's OpenBLAS, and with NumPy's when it is an
    ILP64 OpenBLAS (once; the numba and cython backends call this when they load).
    Returns True when SciPy's OpenBLAS runs on the pool."""
    global _installed, _numpy_installed
    if _installed:
        return True
    scipy_blas_library()
    if _setter is None or _threads._forked_openmp:
        return False
    try:
        from .kernels.cython import _openmp
    except ImportError:  # the Cython extensions are not built
        return False
    if not _openmp.openmp_enabled() or not _openmp.blas_jobs_callback():
        return False
    numpy_blas = _numpy_blas()
    with _lock:
        if not _installed:
            callback = ctypes.c_void_p(_openmp.blas_jobs_callback())
            _setter(callback)
            if numpy_blas is not None:
                numpy_blas[0](callback)
                _numpy_installed = True
            _installed = True
    return True


def numpy_gemm_addresses():
    """(sgemm, dgemm) addresses of NumPy's ILP64 OpenBLAS ?gemm_64_ when that library
    runs on the OpenMP pool too, else None. Its sgemm ran the Linear products of this
    machine 5-22% faster than SciPy's (0.3.31 against 0.3.30, both Haswell kernels,
    interleaved in one process: 32x784 @ 784x1024 0.54 vs 0.83 ms, 256-row products
    2-6% apart), so the compiled backends' Linear layers use it."""
    if not _numpy_installed:
        return None
    return tuple(ctypes.cast(f, ctypes.c_void_p).value for f in _numpy[1:])


def numpy_gemm_functions():
    """(sgemm_64_, dgemm_64_) of NumPy's OpenBLAS as ctypes functions taking the Fortran
    arguments (pointers; 64-bit integers) when ``numpy_gemm_addresses()`` is not None."""
    if not _numpy_installed:
        return None
    return _numpy[1:]


def on_openmp_pool():
    """True while SciPy's OpenBLAS runs its parallel jobs on the OpenMP pool."""
    return _installed


def describe():
    """What runs OpenBLAS's parallel jobs, for ``fastnn.backend_info()``."""
    if _installed:
        return ("the OpenMP pool of the kernels (fastnn/blas_pool.py), for SciPy's"
                + (" and NumPy's" if _numpy_installed else "") + " OpenBLAS")
    return "OpenBLAS's own threads"


def _after_fork_in_child():
    global _installed, _numpy_installed
    if _installed:
        _setter(None)
        _installed = False
    if _numpy_installed:
        _numpy[0](None)
        _numpy_installed = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
