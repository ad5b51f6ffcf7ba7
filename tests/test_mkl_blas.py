"""Intel MKL for the Linear and conv products (fastnn/mkl_blas.py): found and used by
both compiled backends, on fastnn's thread count, on one thread in a forked child (2 threads
there hang in libgomp), kept out by FASTNN_BLAS=openblas. The products' values against
SciPy's OpenBLAS are checked in test_blas_pool.py."""
import os

import numpy as np
import pytest

import fastnn
from fastnn import mkl_blas
from subprocess_helpers import run_python

pytestmark = pytest.mark.skipif(
    not mkl_blas.library_paths() or not mkl_blas.wanted(),
    reason="the mkl wheel is not installed (the Makefile installs it on x86-64 Linux) "
           "or FASTNN_BLAS=openblas")


def _run(code, timeout=120, **env):
    """``code`` in a fresh interpreter with FASTNN_BLAS as ``env`` says (None: unset);
    without it in ``env``, as this process has it (tests/conftest.py: mkl)."""
    drop = (mkl_blas.ENV,) if env.get(mkl_blas.ENV, "") is None else ()
    env = {k: v for k, v in env.items() if v is not None}
    return run_python(code, timeout, drop=drop, **env)


@pytest.mark.parametrize("choice", [None, "mkl"])
@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_a_compiled_backend_runs_the_linear_products_on_mkl(backend, choice):
    # FASTNN_BLAS unset: MKL on an Intel CPU only; =mkl: on any
    env = {mkl_blas.ENV: choice}
    proc = _run(f"""
        import fastnn
        with open('/proc/self/maps') as maps:
            print('libmkl' in maps.read())
        fastnn.set_backend({backend!r})
        print(fastnn.backend_info()['blas'])
        """, **env)
    assert proc.returncode == 0, proc.stderr
    before, blas = proc.stdout.splitlines()
    assert before == "False"  # import fastnn loads no MKL
    if choice or mkl_blas.intel_cpu():
        assert blas.startswith("Intel MKL (libmkl_rt.so.") and "GNU OpenMP threads" in blas
    else:
        assert "MKL" not in blas


def test_fastnn_blas_decides_whether_mkl_is_wanted(monkeypatch):
    for choice, intel, want in [("openblas", True, False), ("mkl", False, True),
                                ("", True, True), ("", False, False), ("OpenBLAS", True, False)]:
        monkeypatch.setenv(mkl_blas.ENV, choice)
        monkeypatch.setattr(mkl_blas, "intel_cpu", lambda: intel)
        assert mkl_blas.wanted() is want, (choice, intel)


def test_fastnn_blas_openblas_keeps_mkl_out():
    proc = _run("""
        import numpy as np
        import fastnn
        fastnn.set_backend('cython')
        x = np.ones((4, 3), np.float32)
        w = np.ones((2, 3), np.float32)
        y = fastnn.ops.linear_forward(x, w, None)
        from fastnn import mkl_blas
        print(mkl_blas.load(), fastnn.backend_info()['blas'], y[0, 0])
        with open('/proc/self/maps') as maps:
            print('libmkl' in maps.read())
        """, FASTNN_BLAS="openblas")
    assert proc.returncode == 0, proc.stderr
    first, loaded = proc.stdout.splitlines()
    assert first.startswith("None ") and "MKL" not in first and first.endswith(" 3.0")
    assert loaded == "False"


def test_mkl_follows_set_num_threads():
    from fastnn import backend
    backend.load("cython")
    assert mkl_blas.load() is not None
    old = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(64)
        cap = mkl_blas.num_threads()  # MKL runs no more threads than physical cores
        assert 1 <= cap <= 64
        for n in (1, 3, 2):
            fastnn.set_num_threads(n)
            assert mkl_blas.num_threads() == min(n, cap)
    finally:
        fastnn.set_num_threads(old)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_linear_layer_on_mkl_matches_float64_numpy_with_any_thread_count(backend, threads):
    from fastnn import backend as backends
    be = backends.load(backend)
    rng = np.random.default_rng(threads)
    old = fastnn.get_num_threads()
    fastnn.set_num_threads(threads)
    try:
        for n, fin, fout in [(32, 784, 1024), (128, 784, 100), (5, 7, 3)]:
            x = rng.standard_normal((n, fin)).astype(np.float32)
            w = rng.standard_normal((fout, fin)).astype(np.float32)
            x.flags.writeable = False  # read-only inputs take another pointer path (numba)
            g = rng.standard_normal((n, fout)).astype(np.float32)
            y = be.linear_forward(x, w, None)
            gw = np.zeros_like(w)
            gi = be.linear_backward(g, x, w, y, grad_weight=gw, accumulate=False)
            x64, w64, g64 = (a.astype(np.float64) for a in (x, w, g))
            tol = 1e-4 * np.sqrt(fin)
            np.testing.assert_allclose(y, x64 @ w64.T, rtol=1e-4, atol=tol)
            np.testing.assert_allclose(gw, g64.T @ x64, rtol=1e-4, atol=1e-4 * np.sqrt(n))
            np.testing.assert_allclose(gi, g64 @ w64, rtol=1e-4, atol=1e-4 * np.sqrt(fout))
    finally:
        fastnn.set_num_threads(old)


def test_numba_linear_runs_every_product_on_mkl_and_ops_take_strided_arrays():
    # the products go to MKL's address from compiled code, every size (as the Cython
    # kernels'; one-row and one-output products to SciPy's gemv, as theirs); the
    # kernels take C-contiguous arrays (a strided one is refused when it would compile,
    # not read wrongly), and fastnn.ops makes strided inputs contiguous
    from fastnn import backend, ops
    nb = backend.load("numba")
    from fastnn.kernels.numba_cpu import blas
    assert blas.library() == "mkl"
    assert blas.target(np.float32) == (mkl_blas.gemm_addresses()[0], True)
    assert blas.target(np.float64) == (mkl_blas.gemm_addresses()[1], True)
    rng = np.random.default_rng(0)
    for n, fin, fout in [(200, 150, 90), (8, 100, 10)]:
        x = rng.standard_normal((n, 2 * fin)).astype(np.float32)[:, ::2]   # strided
        w = rng.standard_normal((fin, fout)).astype(np.float32).T          # Fortran order
        b = rng.standard_normal(2 * fout).astype(np.float32)[::2]
        with pytest.raises(Exception, match="(?s)No implementation.*_fortran_gem[mv]"):
            nb.linear_forward(x, w, b, "relu")
        with fastnn.use_backend("numba"):
            y = ops.linear_forward(x, w, b, "relu")
            g = rng.standard_normal((n, 2 * fout)).astype(np.float32)[:, ::2]
            gw = np.zeros((fout, fin), np.float32)
            gi = ops.linear_backward(g, x, w, y, "relu", grad_weight=gw, accumulate=False)
        want = np.maximum(x.astype(np.float64) @ w.T + b, 0)
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
        g64 = np.where(y > 0, g, 0).astype(np.float64)
        np.testing.assert_allclose(gw, g64.T @ x, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(gi, g64 @ w, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_a_forked_child_runs_mkl_on_one_thread(backend):
    proc = _run(f"""
        import multiprocessing as mp
        import numpy as np
        import fastnn
        from fastnn import mkl_blas
        fastnn.set_backend({backend!r})
        fastnn.set_num_threads(2)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((256, 600)).astype(np.float32)
        w = rng.standard_normal((700, 600)).astype(np.float32)
        want = x.astype(np.float64) @ w.T.astype(np.float64)
        err = lambda: float(np.abs(fastnn.ops.linear_forward(x, w, None) - want).max())
        assert err() < 1e-2 and mkl_blas.num_threads() == 2  # MKL's pool has run
        def child(q):
            q.put((mkl_blas.num_threads(), err()))
        q = mp.get_context('fork').Queue()
        p = mp.get_context('fork').Process(target=child, args=(q,))
        p.start()
        threads, child_err = q.get(timeout=60)
        p.join(60)
        print(threads, child_err < 1e-2, p.exitcode, mkl_blas.num_threads(), err() < 1e-2)
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "True", "0", "2", "True"]


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_conv_products_run_on_mkl_on_each_thread(backend):
    # with the Linear products on MKL the conv products are too, each called from one
    # of the kernels' threads (MKL then runs it on that thread alone); forward and
    # backward against PyTorch on 1 and 2 threads, and a conv with no input channels
    # (k = 0, which MKL refuses as a leading dimension) giving the bias
    import torch
    import torch.nn.functional as F
    from fastnn import backend as backends
    be = backends.load(backend)
    if backend == "numba":
        from fastnn.kernels.numba_cpu import blas
        assert blas.conv_target(np.float32) == blas.target(np.float32)
        assert blas.conv_target(np.float64) == (mkl_blas.gemm_addresses()[1], True)
    else:
        from fastnn.kernels.cython import _conv
        assert _conv.mkl_gemm_in_use()
    # what backend_info says is where the products go (numba's had said OpenBLAS)
    assert fastnn.backend_info(backend)["blas"].endswith("for Linear and conv")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 8, 12, 12)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32) * 0.2
    b = rng.standard_normal(16).astype(np.float32)
    g = rng.standard_normal((16, 16, 12, 12)).astype(np.float32)
    tx, tw, tb = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (x, w, b))
    ty = F.conv2d(tx, tw, tb, 1, 1)
    ty.backward(torch.from_numpy(g))
    previous = fastnn.get_num_threads()
    try:
        for threads in (1, 2):
            fastnn.set_num_threads(threads)
            y = be.conv2d_forward(x, w, b, (1, 1), (1, 1))
            gw, gb = np.zeros_like(w), np.zeros_like(b)
            gi = be.conv2d_backward(g, x, w, (1, 1), (1, 1), gw, gb)
            np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(gi, tx.grad.numpy(), rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(gw, tw.grad.numpy(), rtol=1e-4, atol=1e-3)
            np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=1e-4, atol=1e-3)
            empty = be.conv2d_forward(x[:, :0], w[:, :0], b, (1, 1), (1, 1))
            np.testing.assert_array_equal(empty, np.broadcast_to(b[:, None, None], y.shape))
    finally:
        fastnn.set_num_threads(previous)
