"""The machine's ceilings, measured in the same run as everything else.

* GEMM: single-precision matrix product of two n x n float32 matrices with each BLAS
  at hand (all BLAS threads): NumPy's, and Intel MKL when fastnn runs its Linear
  products there (fastnn/mkl_blas.py); 2 n^3 FLOP per call. The ceiling is the faster
  of the two: with MKL in use, fastnn's products beat NumPy's BLAS.
* Memory bandwidth: copy of one float32 array of ``nbytes`` into another with a
  Numba ``prange`` loop (all Numba threads), counted as 2 * nbytes moved per call
  (one read stream, one write stream, as STREAM's Copy counts it). ``np.copyto``
  (one thread) is measured too, for comparison.

Each function returns a *runner*: a zero-argument callable doing one measured call,
plus the amount of work of that call, so pytest-benchmark can time it and the report
can divide. ``measure_*`` time a runner's fastest call (``bench.timing.fastest_time``,
as the suite takes its ceilings from the fastest round) for the quick CLI.
"""
import numpy as np

from .timing import fastest_time

GEMM_N = 2048
COPY_BYTES = 256 * 2**20


def gemm_libraries():
    """The BLAS libraries to measure: 'numpy', and 'mkl' when fastnn uses MKL here."""
    from fastnn import mkl_blas
    return ["numpy"] + (["mkl"] if mkl_blas.load() is not None else [])


def gemm_runner(n=GEMM_N, seed=0, library="numpy"):
    """(fn, flops): fn() does one float32 (n, n) @ (n, n) product into a kept buffer,
    with NumPy's BLAS ('numpy') or MKL's sgemm_64 ('mkl')."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    if library == "numpy":
        def fn():
            np.matmul(a, b, out=c)
    elif library == "mkl":
        from fastnn import mkl_blas
        from fastnn.kernels.fortran_gemm import gemm
        gemms = mkl_blas.gemm_functions()

        def fn():  # column-major c.T = b.T @ a.T
            gemm(gemms, b"N", b"N", n, n, n, b, n, a, n, 0.0, c, n)
    else:
        raise ValueError(f"gemm_runner: library must be 'numpy' or 'mkl', got {library!r}")
    fn.arrays = (a, b, c)  # (a, b, out), for checking what fn computed
    return fn, 2.0 * n ** 3


def _numba_copy():
    from numba import njit, prange

    # cached as fastnn's own kernels are (kernels/numba_cpu/config.py picks a writable
    # directory, or none): an installed fastnn._bench sits in a site-packages numba may
    # not write, and cache=True raised 'no locator available' there without a home cache
    from fastnn.kernels.numba_cpu.config import OPTIONS

    @njit(parallel=True, cache=OPTIONS["cache"])
    def _copy(src, dst):  # src: IN (n,), dst: OUT (n,)
        for i in prange(src.shape[0]):
            dst[i] = src[i]
    return _copy


_copy_kernel = None


def copy_runner(nbytes=COPY_BYTES, method="numba"):
    """(fn, bytes_moved): fn() copies an nbytes float32 array ('numba': prange, all
    threads; 'numpy': np.copyto, one thread). bytes_moved = 2 * nbytes."""
    global _copy_kernel
    n = max(nbytes // 4, 1)
    src = np.ones(n, dtype=np.float32)
    dst = np.zeros(n, dtype=np.float32)
    if method == "numba":
        if _copy_kernel is None:
            _copy_kernel = _numba_copy()
        kernel = _copy_kernel

        def fn():
            kernel(src, dst)
    elif method == "numpy":
        def fn():
            np.copyto(dst, src)
    else:
        raise ValueError(f"copy_runner: method must be 'numba' or 'numpy', got {method!r}")
    return fn, 2.0 * n * 4


def measure_gemm_gflops(n=GEMM_N, max_time=0.5, library=None):
    """sgemm GFLOP/s of an (n, n) @ (n, n) float32 product in ``library`` (its fastest
    call, as the suite's ceiling), or the best of ``gemm_libraries()`` when None."""
    best = 0.0
    for name in [library] if library else gemm_libraries():
        fn, flops = gemm_runner(n, library=name)
        seconds, _ = fastest_time(fn, min_runs=3, max_time=max_time)
        best = max(best, flops / seconds / 1e9)
    return best


def measure_copy_gbps(nbytes=COPY_BYTES, method="numba", max_time=0.5):
    """Copy bandwidth in GB/s (10^9 bytes per second, 2 * nbytes per copy) of the
    fastest copy, as the suite's ceiling."""
    fn, moved = copy_runner(nbytes, method)
    seconds, _ = fastest_time(fn, min_runs=3, max_time=max_time)
    return moved / seconds / 1e9
