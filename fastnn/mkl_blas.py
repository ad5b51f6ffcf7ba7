"""Intel MKL for the Linear layers' matrix products, when its wheel is installed.

The MLP training steps of issues 3 and 4 are GEMM-bound, and on the 2-core AVX-512 Xeon
the benchmarks target, OpenBLAS (NumPy's and SciPy's) runs the products of these
layers up to 2.2x slower than the MKL inside PyTorch (bench/gemm_libraries.py). MKL
from its pip wheel (``pip install mkl``, or ``fastnn[mkl]``; the Makefile installs it)
runs them as fast as PyTorch does. Measured on that Xeon, Cython backend against
PyTorch in the same process, interleaved (bench.overhead.interleaved_ratio), step time
ratio with NumPy's OpenBLAS / with MKL: 784-100-10 batch 128 0.74-0.77 / 0.66;
784-1024-1024-10 batch 32 0.87-0.88 / 0.68-0.69; batch 256 0.95-1.06 / 0.90.

MKL is loaded with its GNU threading layer, so its threads are libgomp's: the same
OpenMP pool as the Cython kernels and numba's 'omp' layer (fastnn/blas_pool.py says why
one pool matters). A user's MKL_THREADING_LAYER wins. fastnn.set_num_threads sets MKL's
count; in a child made by os.fork() from a process that had loaded libgomp, MKL runs on
one thread (libgomp's pool does not survive fork: a 2-thread MKL product hung there).

Only the products of ``linear_forward``/``linear_backward`` (and the layers built on
them) go to MKL; everything else keeps SciPy's OpenBLAS. By default MKL is used on
Intel CPUs only: it was measured there. ``FASTNN_BLAS=mkl`` uses it on any CPU,
``FASTNN_BLAS=openblas`` never (read when a compiled backend loads).

Not on AMD, and not per product there either: on the 2-core AMD EPYC (AVX-512) MKL
2026.2 ran the MLPs' products no faster than NumPy's OpenBLAS 0.3.31 on the OpenMP pool,
each in the form the kernels call it (the forward transposed where
kernels/gemm_shapes.py says; the weight gradient overwriting, as a step after
zero_grad does). Process CPU time of one thread, microseconds, OpenBLAS / MKL, median
of 9 interleaved blocks, 7 Dec 2026 (the machine shared with two other jobs, which made
2-thread wall times 5-50x these and useless); layers in order:

    784-1024-1024-10 b32   forward 589/607 873/879 9/35      weight grad 591/632
                           1089/866 (accumulating 1019/763) 11/20   input grad 1055/1055 10/21
                     b128  forward 2275/2343 3183/3762 63/139   weight grad 2147/2528
                           3159/3354 87/84     input grad 3077/3105 63/47
                     b256  forward 4686/5318 6118/5866 115/270  weight grad 4175/4475
                           5595/5659 177/182   input grad 5752/5762 121/97
    784-100-10 b128        forward 246/213 (MKL's plain form 234) 7/13   weight grad
                           205/213 4/6   input grad 4/5

MKL's clear wins are OpenBLAS meeting a 1024-float leading dimension with a short inner
one (the batch-32 1024 -> 1024 weight gradient; 1024 -> 10's input gradient at batch
128 and 256: tens of microseconds). Yet the whole step did not gain from them: the
784-1024-1024-10 batch-32 step with that weight gradient alone on MKL, against all on
OpenBLAS, in one process, interleaved (3 runs of 25-41 blocks): numba 1.007-1.027x,
cython 1.003-1.035x; with every Linear product on MKL: 1.015-1.043x for the three
bench MLPs, both backends. So off Intel every product stays on OpenBLAS.
"""
import ctypes
import glob
import os
import sys
import threading
import warnings

from . import threads as _threads

ENV = "FASTNN_BLAS"
_GNU_LAYER = 3          # MKL_THREADING_GNU of mkl_service.h
_LAYERS = {0: "Intel OpenMP", 1: "sequential", 2: "PGI OpenMP", 3: "GNU OpenMP", 4: "TBB"}
_lock = threading.Lock()
_mkl = None             # None: not looked for yet; (): not in use; else a _Mkl


class _Mkl:
    """The loaded runtime: path, threading layer and the ILP64 Fortran ?gemm_64."""

    def __init__(self, path, library, layer):
        self.path, self.library, self.layer = path, library, layer
        self.gemms = []
        for name in ("sgemm_64", "dgemm_64"):
            # (transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), every one a
            # pointer. No argtypes: ctypes's conversion through them took 3.6 us a call
            # here, a call with ready pointers 1.2 us
            gemm = library[name]
            gemm.restype = None
            self.gemms.append(gemm)
        self.set_global_threads = library.MKL_Set_Num_Threads
        self.set_global_threads.restype = None
        self.set_global_threads.argtypes = [ctypes.c_int]
        self.set_local_threads = library.MKL_Set_Num_Threads_Local
        self.set_local_threads.restype = ctypes.c_int
        self.set_local_threads.argtypes = [ctypes.c_int]
        self.max_threads = library.MKL_Get_Max_Threads
        self.max_threads.restype, self.max_threads.argtypes = ctypes.c_int, []

    def set_threads(self, n):
        """n threads for every thread's products: MKL's process-wide count, and the
        calling thread back on it (0 clears a count of its own, which threadpoolctl
        sets and a forked child inherits)."""
        self.set_global_threads(n)
        self.set_local_threads(0)


def library_paths():
    """Paths of libmkl_rt.so.* that the ``mkl`` wheel installed, best first: the one in
    this environment's prefix, then any the package metadata names."""
    paths = sorted(glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so.*")),
                   reverse=True)
    try:
        from importlib import metadata
        files = metadata.distribution("mkl").files or ()
    except Exception:  # no such distribution, or unreadable metadata
        files = ()
    for entry in files:
        if os.path.basename(str(entry)).startswith("libmkl_rt.so."):
            path = os.path.abspath(str(entry.locate()))
            if path not in paths and os.path.exists(path):
                paths.append(path)
    return paths


def cpu_vendor():
    """The vendor_id /proc/cpuinfo names ("GenuineIntel", "AuthenticAMD"), or "" where
    it names none (other systems; kernels/prefetching.py also asks)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def intel_cpu():
    """True when /proc/cpuinfo names an Intel CPU."""
    return cpu_vendor() == "GenuineIntel"


def wanted():
    """Whether to use MKL when it is installed: FASTNN_BLAS=mkl says yes, =openblas no;
    unset, yes on an Intel CPU (see the module doc)."""
    choice = os.environ.get(ENV, "").strip().lower()
    if choice in ("openblas", "scipy", "0"):
        return False
    if choice not in ("", "mkl"):  # a misspelt choice would silently pick the default
        warnings.warn(f"{ENV}={os.environ[ENV]!r} is neither 'mkl' nor 'openblas'; "
                      f"fastnn ignores it", RuntimeWarning, stacklevel=2)
    return choice == "mkl" or intel_cpu()


def load():
    """The MKL runtime in use for the Linear products, loading it on the first call, or
    None (not installed, an MKL without ILP64 entry points, or not ``wanted()``)."""
    global _mkl
    if _mkl is None:
        with _lock:
            if _mkl is None:
                _mkl = _open() or ()
                if _mkl:
                    apply_num_threads()
    return _mkl or None


def _open():
    if not wanted():
        return None
    for path in library_paths():
        try:
            library = ctypes.CDLL(path)
            if "MKL_THREADING_LAYER" in os.environ:
                layer = None  # MKL reads the user's choice itself
            else:
                setter = library.MKL_Set_Threading_Layer
                setter.restype, setter.argtypes = ctypes.c_int, [ctypes.c_int]
                # returns the layer in effect: an MKL already initialised keeps its own
                layer = setter(_GNU_LAYER)
            return _Mkl(path, library, layer)
        except (OSError, AttributeError):
            continue
    return None


def gemm_functions():
    """(sgemm_64, dgemm_64) of MKL as ctypes functions without argtypes, or None when
    MKL is not in use. Fortran arguments: every one a ctypes pointer (``byref`` of a
    c_int64, c_float/c_double or the data; ``b"N"``/``b"T"`` for the two flags)."""
    mkl = load()
    return tuple(mkl.gemms) if mkl else None


def gemm_addresses():
    """(sgemm_64, dgemm_64) addresses, for the Cython kernels, or None."""
    functions = gemm_functions()
    if functions is None:
        return None
    return tuple(ctypes.cast(f, ctypes.c_void_p).value for f in functions)


def apply_num_threads():
    """Give MKL fastnn's thread count (one thread in a child forked from a process with
    libgomp loaded: see the module doc). A no-op until MKL is loaded."""
    if _mkl:
        _mkl.set_threads(_threads.openmp_num_threads())


def num_threads():
    """MKL's current thread count, or None when MKL is not in use."""
    return _mkl.max_threads() if _mkl else None


def describe():
    """What runs the Linear products, for ``fastnn.backend_info()``."""
    if not _mkl:
        return None
    layer = (_LAYERS.get(_mkl.layer, str(_mkl.layer)) if _mkl.layer is not None
             else "MKL_THREADING_LAYER=" + os.environ.get("MKL_THREADING_LAYER", ""))
    return f"Intel MKL ({os.path.basename(_mkl.path)}, {layer} threads)"


def _after_fork_in_child():
    if _mkl and _threads._openmp_loaded():
        _mkl.set_threads(1)


if hasattr(os, "register_at_fork"):
    # the condition of threads.py's own handler (fastnn's loops go to one thread there);
    # tested here again, since the order of the two handlers is not relied on
    os.register_at_fork(after_in_child=_after_fork_in_child)
