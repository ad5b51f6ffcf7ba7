"""One thread-count setting for every backend: Numba's parallel loops, the Cython
kernels' OpenMP loops and the BLAS library NumPy/SciPy use."""
import contextlib
import numbers
import os
import sys
import warnings

from .errors import RuntimeValueError

_num_threads = None

# libgomp (the OpenMP runtime of the Cython kernels and of Numba's parallel loops) keeps
# an idle worker spinning for GOMP_SPINCOUNT iterations (300000 by default:
# milliseconds) after each parallel region, so back-to-back regions find it awake (on
# this virtual machine a sleeping worker takes 50-100 us to wake). That is right when
# one pool does all the parallel work: the compiled backends hand SciPy's OpenBLAS the
# same OpenMP pool (fastnn/blas_pool.py), and PyTorch's loops run on it too. Where
# that cannot be done (an OpenBLAS older than 0.3.27 or another BLAS, or the Cython
# extensions not built), OpenBLAS keeps its own threads, and a spinning OpenMP worker
# takes a core from every GEMM (an MLP training step ran 2x to 15x slower with 2
# threads on 2 cores); a short spin then still catches back-to-back regions.
# libgomp reads the variable once, when it loads; PyTorch ships a libgomp.so.1 of its
# own that the kernels then share, so it must be set before `import torch`.
SPINCOUNT = "1000"
_spin_too_late = False  # libgomp was already loaded, with the default spin

# OpenBLAS (SciPy's, which runs the compiled backends' matrix products) keeps each idle
# worker spinning for 2**OPENBLAS_THREAD_TIMEOUT cycles after every product: 2**28, about
# 0.1 s, by default. Where its own threads run the products (no shared pool, above), the
# spinning worker takes a core from the fused kernel that follows each product (and from
# PyTorch's threads in the same process). 2**16 cycles (~20 us) still covers
# back-to-back products. Measured on 2 cores, layer API, min of 5-6 runs, before the
# shared pool: SmallCNN step 72-77 -> 40-46 ms (cython), MLP 784-1024-1024-10 batch 32
# step 4.5-4.9 -> 3.5-4.0 ms; batch 256 unchanged. OpenBLAS reads it once, when it loads.
BLAS_THREAD_TIMEOUT = "16"


def _openmp_loaded():
    """True when an OpenMP runtime (libgomp) is already mapped into this process."""
    try:
        with open("/proc/self/maps") as maps:
            return "libgomp" in maps.read()
    except OSError:  # not Linux: nothing to tell
        return False


def limit_openmp_spin():
    """Set GOMP_SPINCOUNT for libgomp before it loads (``import fastnn`` calls this,
    after ``limit_blas_spin``) unless OpenBLAS will run on the OpenMP pool.

    A value the user set (GOMP_SPINCOUNT or OMP_WAIT_POLICY) wins. When libgomp is
    already loaded (``import torch`` came first), setting it is too late: the compiled
    CPU backends then warn once, on load (``warn_if_spin_too_late``)."""
    global _spin_too_late
    if "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
        return
    from . import blas_pool
    # one pool, unless the user moved numba's loops off OpenMP (a 'tbb' or 'workqueue'
    # layer keeps threads of its own next to libgomp's)
    if blas_pool.expected() and os.environ.get("NUMBA_THREADING_LAYER", "omp") == "omp":
        return
    _spin_too_late = _openmp_loaded()
    os.environ["GOMP_SPINCOUNT"] = SPINCOUNT


def limit_blas_spin():
    """Set OPENBLAS_THREAD_TIMEOUT before SciPy's OpenBLAS loads (``import fastnn`` calls
    this); a value the user set (OPENBLAS_THREAD_TIMEOUT or GOTO_THREAD_TIMEOUT) wins."""
    if "OPENBLAS_THREAD_TIMEOUT" in os.environ or "GOTO_THREAD_TIMEOUT" in os.environ:
        return
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = BLAS_THREAD_TIMEOUT


def warn_if_spin_too_late(backend):
    """Warn (once) that ``backend``'s parallel loops will fight OpenBLAS's threads."""
    global _spin_too_late
    if _spin_too_late and get_num_threads() > 1:
        _spin_too_late = False
        warnings.warn(
            f"fastnn's {backend} backend: an OpenMP runtime was loaded before fastnn "
            f"(usually by `import torch`), with its default busy-wait; its idle threads "
            f"then take cores from BLAS and training steps can run many times slower "
            f"with several threads. Import fastnn before torch, or set "
            f"GOMP_SPINCOUNT={SPINCOUNT} (or OMP_WAIT_POLICY=passive) in the environment, "
            f"or use fastnn.set_num_threads(1).", RuntimeWarning, stacklevel=3)


_default_num_threads = None


def _default_threads():
    """FASTNN_NUM_THREADS, else OMP_NUM_THREADS, else the CPU count; read once. Every
    parallel numba kernel asks for the count, and os.cpu_count() reads /sys on each
    call (8 us here: more than a 2x1024 BatchNorm takes)."""
    global _default_num_threads
    if _default_num_threads is None:
        _default_num_threads = os.cpu_count() or 1
        for var in ("OMP_NUM_THREADS", "FASTNN_NUM_THREADS"):
            count = _threads_from_env(var)
            if count is not None:
                _default_num_threads = count
    return _default_num_threads


def _threads_from_env(var):
    """The thread count environment variable var sets, None when it is unset or empty.
    OMP_NUM_THREADS may list one count per nesting level ('4,2'): its first counts. A
    value that is no positive int is ignored with a RuntimeWarning (OpenMP ignores it
    too, with a message)."""
    value = os.environ.get(var, "").strip()
    if not value:
        return None
    first = value.split(",")[0].strip() if var == "OMP_NUM_THREADS" else value
    # ASCII digits only ('²'.isdigit() holds, int('²') raises), and an OpenMP C int
    if first.isascii() and first.isdigit() and 0 < int(first) < 2**31:
        return int(first)
    warnings.warn(f"{var}={value!r} is not a positive int below 2**31; fastnn ignores it",
                  RuntimeWarning, stacklevel=4)
    return None


def get_num_threads():
    """The number of threads fastnn's kernels use."""
    return _num_threads if _num_threads is not None else _default_threads()


# Fork. GNU libgomp, the OpenMP runtime of the Cython kernels and of numba's 'omp'
# threading layer, is not fork-safe: a child made by os.fork() (multiprocessing's 'fork'
# start method, Linux's default before Python 3.14) inherits the bookkeeping of the
# forking thread's OpenMP pool but not its threads, so that thread's next parallel region
# waits forever for them (measured: ops.relu on 2**18 floats hung in the child after one
# 2-thread region in the parent). Numba's omp layer refuses instead: any parallel kernel
# in the child kills it with SIGTERM ("Terminating: fork() called from a process already
# using GNU OpenMP, this is unsafe."). So in a child forked from a process where libgomp is
# loaded, fastnn's own parallel loops run on one thread (a one-thread region does not
# touch the pool; kernels/numba_cpu/config.py runs the serial compiles), whatever
# set_num_threads says; BLAS keeps the count (OpenBLAS re-creates its threads in the
# child). 'spawn' and 'forkserver' children start a fresh runtime and keep every thread.
_forked_openmp = False


def _after_fork_in_child():
    global _forked_openmp
    if not _forked_openmp:
        _forked_openmp = _openmp_loaded()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def openmp_num_threads():
    """The thread count of fastnn's own parallel loops (OpenMP, numba): get_num_threads(),
    or 1 in a child forked from a process that had loaded OpenMP (see above)."""
    return 1 if _forked_openmp else get_num_threads()


def set_num_threads(n):
    """Use ``n`` threads in every backend's parallel loops and in BLAS.

    n: a positive int (a NumPy integer too, as PyTorch takes) below 2**31, OpenMP's C
    int; anything else raises before the count changes: a RuntimeValueError, a
    ValueError that is PyTorch's RuntimeError too."""
    global _num_threads
    # numbers.Integral takes NumPy's integers and leaves out np.bool_ (but not bool)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 1 <= n < 2**31:
        raise RuntimeValueError(f"set_num_threads: expected a positive int below 2**31, "
                                f"got {n!r}")
    _num_threads = int(n)
    apply_num_threads()


def apply_num_threads():
    """Push the current thread count to every runtime that is already loaded.

    Backends call this when they load, so a count set before the first op still holds.
    """
    n = get_num_threads()
    if "numba" in sys.modules:
        import numba
        numba.set_num_threads(min(openmp_num_threads(), numba.config.NUMBA_NUM_THREADS))
    try:
        from .kernels.cython import _openmp
    except ImportError:  # the Cython extensions are not built (a source checkout)
        pass
    else:
        # this thread's count only (OpenMP's is per thread): the backend's ops apply the
        # setting in every other thread that calls them (kernels/cython/__init__.py)
        _openmp.set_num_threads(openmp_num_threads())
    _limit_blas(n)
    # after threadpoolctl, which sets every BLAS it finds loaded (MKL too) to n
    mkl_blas = sys.modules.get(__package__ + ".mkl_blas")
    if mkl_blas is not None:
        mkl_blas.apply_num_threads()


def _limit_blas(n):
    """Every BLAS threadpoolctl finds loaded (OpenBLAS, and MKL's calling thread) to n."""
    try:
        import threadpoolctl
    except ImportError:
        return
    global _blas_limit
    # threadpoolctl (3.8 on) lets only the first thread that limits OpenBLAS's
    # process-wide pool change it and silently ignores every other thread, so
    # set_num_threads from a worker thread left BLAS alone. fastnn's count is process-wide:
    # the calling thread takes control for this call and gives it back.
    release = getattr(getattr(threadpoolctl, "OpenBLASController", None),
                      "clear_controlling_thread", None)
    # a conv call in another thread may hold SciPy's BLAS at one thread right now: the
    # count must become the one it restores when it ends, not the one it saved
    serial = sys.modules.get(__package__ + ".kernels.blas_threads")
    with serial.changing_count(n) if serial is not None else contextlib.nullcontext():
        if release is not None:
            release(force=True)
        try:
            _blas_limit = threadpoolctl.threadpool_limits(limits=n, user_api="blas")
        finally:
            if release is not None:
                release(force=True)


_blas_limit = None
