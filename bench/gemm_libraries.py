"""The MLP steps' matrix products in each BLAS at hand: NumPy's OpenBLAS (fastnn's
Linear products without MKL), Intel MKL when its ``mkl`` wheel is installed (fastnn's
Linear products then run there: fastnn/mkl_blas.py; the default --mkl is the one it
finds), and PyTorch.

    .venv/bin/python bench/gemm_libraries.py [--mkl PATH/libmkl_rt.so.N] [--threads 2]

The MLP targets of issues 3 and 4 are GEMM-bound. On the 2-core Xeon (Emerald Rapids)
PyTorch's products ran 10-55% faster than OpenBLAS's SkylakeX kernels, and MKL 2026.2
(``pip install --prefix P mkl``, loaded with MKL_THREADING_LAYER=GNU, so on the same
libgomp pool as fastnn's kernels) matched PyTorch's within noise (microseconds, 30 Nov
2026 23:59 UTC, median of 1000 calls, 2 threads; forward x @ W.T, weight gradient
g.T @ x):

    shape (rows, in, out)   forward: OpenBLAS  MKL  torch   weight grad: OpenBLAS  MKL  torch
    128, 784, 100                     172      167   161                  173      135   132
    32, 784, 1024                     689      313   326                  289      306   290
    32, 1024, 1024                   1068      486   486                  673      306   304
    256, 1024, 1024                  2360     2038  2004                 2012     1811  1720

(fastnn computes the batch-32 forward as the transposed product, 0.36 ms for the
784 -> 1024 layer.) Not part of the suite.
"""
import argparse
import ctypes
import os
import time

import numpy as np

SHAPES = [(128, 784, 100), (32, 784, 1024), (32, 1024, 1024), (256, 1024, 1024)]
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


def _median_us(fn, calls=1000):
    for _ in range(20):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


def _mkl_products(path, threads):
    """(forward, weight_grad) through MKL's cblas_sgemm: forward(x, w, out) writes
    x @ w.T; weight_grad(g, x, out) writes g.T @ x."""
    os.environ.setdefault("MKL_THREADING_LAYER", "GNU")
    mkl = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    mkl.MKL_Set_Num_Threads(threads)
    sgemm = mkl.cblas_sgemm
    sgemm.restype = None
    i, f, p = ctypes.c_int, ctypes.c_float, ctypes.c_void_p
    sgemm.argtypes = [i, i, i, i, i, i, f, p, i, p, i, f, p, i]

    def forward(x, w, out):  # out (m, n) = x (m, k) @ w (n, k).T
        (m, k), n = x.shape, w.shape[0]
        sgemm(_ROW_MAJOR, _NO_TRANS, _TRANS, m, n, k, 1.0, x.ctypes.data, k,
              w.ctypes.data, k, 0.0, out.ctypes.data, n)

    def weight_grad(g, x, out):  # out (n, k) = g (m, n).T @ x (m, k)
        (m, n), k = g.shape, x.shape[1]
        sgemm(_ROW_MAJOR, _TRANS, _NO_TRANS, n, k, m, 1.0, g.ctypes.data, n,
              x.ctypes.data, k, 0.0, out.ctypes.data, k)
    return forward, weight_grad


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mkl", help="path of libmkl_rt.so.N (from the mkl wheel); "
                                      "default: the one fastnn/mkl_blas.py finds")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.mkl is None:
        from fastnn import mkl_blas
        args.mkl = next(iter(mkl_blas.library_paths()), None)
    mkl = _mkl_products(args.mkl, args.threads) if args.mkl else None
    import torch  # after MKL: its threading layer is chosen when it loads
    from threadpoolctl import threadpool_limits
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    rng = np.random.default_rng(0)
    for m, k, n in SHAPES:
        x = rng.standard_normal((m, k), dtype=np.float32)
        w = rng.standard_normal((n, k), dtype=np.float32)
        g = rng.standard_normal((m, n), dtype=np.float32)
        y, dw = np.empty((m, n), np.float32), np.empty((n, k), np.float32)
        tx, tw, ty, tg, tdw = map(torch.from_numpy, (x, w, y, g, dw))
        row = {"forward openblas": _median_us(lambda: np.matmul(x, w.T, out=y)),
               "forward torch": _median_us(lambda: torch.mm(tx, tw.t(), out=ty)),
               "weight grad openblas": _median_us(lambda: np.matmul(g.T, x, out=dw)),
               "weight grad torch": _median_us(lambda: torch.mm(tg.t(), tx, out=tdw))}
        if mkl:
            forward, weight_grad = mkl
            forward(x, w, y)
            np.testing.assert_allclose(y, x @ w.T, rtol=1e-3, atol=1e-3)
            weight_grad(g, x, dw)
            np.testing.assert_allclose(dw, g.T @ x, rtol=1e-3, atol=1e-3)
            row["forward mkl"] = _median_us(lambda: forward(x, w, y))
            row["weight grad mkl"] = _median_us(lambda: weight_grad(g, x, dw))
        print(f"{m}x{k} -> {n}: " + ", ".join(f"{name} {us:.0f} us"
                                               for name, us in sorted(row.items())), flush=True)


if __name__ == "__main__":
    main()
