"""What no kernel can beat on this machine, for the two targets the backends miss.

* BatchNorm1d 256x1024 forward+backward (issues 3 and 4: at most 0.3x PyTorch). Any
  training-mode implementation reads x for the statistics before it can normalise, and
  reads grad_out and x for the two sums before it can write grad_in: four passes over
  (256, 1024) float32 arrays (x; x -> y; grad_out, x; grad_out, x -> grad_in), none of
  which fits L1 across the passes. ``batchnorm_traffic`` makes exactly those passes with
  one add or multiply per value (no statistics, no float64, the kernels' row chunks and
  prange), and is timed against PyTorch's pair as the backends are
  (bench/overhead.py's interleaved blocks). Its ratio is the floor of the target's ratio.
* Fused Linear 256x1024->1024 at least 2x faster than the NumPy reference (the large
  linear_forward and linear_backward cases). The products alone, through the fastest of
  NumPy's BLAS, MKL (as fastnn calls it) and PyTorch's ``mm``, timed against the
  reference's whole call: reference / products is the largest speed-up any fused kernel
  around those products can have.
"""
import os

import numpy as np

from . import overhead

FLOORS_JSON = os.path.join(os.path.dirname(overhead.OVERHEAD_JSON), "floors.json")
# the BatchNorm kernels' row chunks for 256 rows (kernels/numba_cpu/chunks.py
# n_chunks: 256 // 32)
_CHUNKS = 8

_traffic_kernel = None


def _compile_traffic():
    from numba import njit, prange

    chunks = _CHUNKS

    @njit(parallel=True, cache=True, fastmath=True)
    def traffic(x, g, y, gi, s):
        # IN x, g (N, C); OUT y, gi (N, C); scratch s (chunks, C)
        n, c = x.shape
        for k in prange(chunks):             # x: the statistics' read
            acc = s[k]
            acc[:] = 0.0
            for i in range(k * n // chunks, (k + 1) * n // chunks):
                for j in range(c):
                    acc[j] += x[i, j]
        for k in prange(chunks):             # x -> y
            for i in range(k * n // chunks, (k + 1) * n // chunks):
                for j in range(c):
                    y[i, j] = x[i, j] * s[0, j]
        for k in prange(chunks):             # grad_out, x: the two sums' read
            acc = s[k]
            for i in range(k * n // chunks, (k + 1) * n // chunks):
                for j in range(c):
                    acc[j] += g[i, j] * x[i, j]
        for k in prange(chunks):             # grad_out, x -> grad_in
            for i in range(k * n // chunks, (k + 1) * n // chunks):
                for j in range(c):
                    gi[i, j] = g[i, j] + x[i, j] * s[0, j]
    return traffic


def batchnorm_traffic_runner(arrays):
    """fn() making the four passes of a BatchNorm1d forward+backward over the case's
    arrays (x, g -> out, gi) with one operation a value."""
    global _traffic_kernel
    if _traffic_kernel is None:
        _traffic_kernel = _compile_traffic()
    x, g, y, gi = arrays["x"], arrays["g"], arrays["out"], arrays["gi"]
    s = np.zeros((_CHUNKS, x.shape[1]), np.float32)
    return lambda: _traffic_kernel(x, g, y, gi, s)


def _gemm_runners(op, a):
    """({library: fn} computing the products of the linear case's arrays a alone, the
    output arrays they write)."""
    x, w, g = a["x"], a["w"], a["g"]
    n, fin = x.shape
    fout = w.shape[0]
    y = np.empty((n, fout), np.float32)
    gw, gx = np.empty_like(w), np.empty_like(x)
    if op == "linear_forward":
        runners = {"numpy": lambda: np.matmul(x, w.T, out=y)}
    else:
        runners = {"numpy": lambda: (np.matmul(g.T, x, out=gw), np.matmul(g, w, out=gx))}
    from fastnn import mkl_blas
    gemms = mkl_blas.gemm_functions()
    if gemms is not None:
        from fastnn.kernels.fortran_gemm import gemm
        # row-major arrays read as column-major are their transposes
        if op == "linear_forward":   # y.T = w @ x.T
            runners["mkl"] = lambda: gemm(gemms, b"T", b"N", fout, n, fin, w, fin, x, fin,
                                          0.0, y, fout)
        else:                         # gw.T = x.T @ g, gx.T = w.T @ g.T
            runners["mkl"] = lambda: (
                gemm(gemms, b"N", b"T", fin, fout, n, x, fin, g, fout, 0.0, gw, fin),
                gemm(gemms, b"N", b"N", fin, n, fout, w, fin, g, fout, 0.0, gx, fin))
    from . import contenders
    if contenders.torch_available():
        import torch
        tx, tw, tg, ty, tgw, tgx = map(torch.from_numpy, (x, w, g, y, gw, gx))
        if op == "linear_forward":
            runners["torch"] = lambda: torch.mm(tx, tw.t(), out=ty)
        else:
            runners["torch"] = lambda: (torch.mm(tg.t(), tx, out=tgw),
                                        torch.mm(tg, tw, out=tgx))
    for fn in runners.values():   # every library computes the same products
        fn()
    return runners, (y,) if op == "linear_forward" else (gw, gx)


def measure(blocks=15):
    """{'batchnorm': {...}, 'linear_forward': {...}, 'linear_backward': {...}}; see the
    module's docstring."""
    import fastnn
    from fastnn import backend

    from . import cases, contenders
    contenders.set_threads(contenders.all_threads())
    results = {}
    if contenders.torch_available():
        case = cases.get_case(*overhead.CASE_TARGETS[overhead.BATCHNORM_TARGET])
        torch_s, floor_s, ratio = overhead.interleaved_ratio(
            case.torch(), batchnorm_traffic_runner(case.arrays()), blocks=blocks)
        results["batchnorm"] = {"torch": torch_s, "traffic": floor_s, "ratio": ratio,
                                "blocks": blocks, "threads": fastnn.get_num_threads()}
    numpy_backend = backend.load("numpy")
    for op in ("linear_forward", "linear_backward"):
        case = cases.get_case(op, "large")
        reference = case.fastnn(numpy_backend)
        runners, _ = _gemm_runners(op, case.arrays())
        best = None
        for library, fn in runners.items():
            ref_s, gemm_s, ratio = overhead.interleaved_ratio(reference, fn, blocks=blocks)
            if best is None or gemm_s < best["products"]:
                best = {"reference": ref_s, "products": gemm_s, "library": library,
                        "bound": 1.0 / ratio, "blocks": blocks,
                        "threads": fastnn.get_num_threads()}
        results[op] = best
    return results
