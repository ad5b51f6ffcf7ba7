"""SciPy's OpenBLAS on the kernels' OpenMP pool (fastnn/blas_pool.py,
kernels/cython/_blas_pool.h): products stay right with any thread count, from several
Python threads at once, on a team too small for the jobs, and in a forked child."""
import os

import numpy as np
import pytest

import fastnn
from fastnn import blas_pool
from subprocess_helpers import run_python

pytestmark = pytest.mark.skipif(not blas_pool.expected(),
                                reason="SciPy's BLAS takes no threads callback here "
                                       "(not an OpenBLAS >= 0.3.27) or no Cython build")


def _run(code, timeout=120, **env):
    return run_python(code, timeout,
                      drop=("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "OMP_THREAD_LIMIT"), **env)


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_a_compiled_backend_puts_blas_on_the_pool(backend):
    proc = _run(f"""
        import fastnn
        from fastnn import blas_pool
        print(blas_pool.on_openmp_pool())
        fastnn.set_backend({backend!r})
        info = fastnn.backend_info()  # loads the backend
        print(blas_pool.on_openmp_pool(), info['blas_threads'])
        """)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "False"  # import fastnn alone installs nothing
    assert lines[1].startswith("True the OpenMP pool")


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_products_on_the_pool_match_numpy(threads, dtype):
    from scipy.linalg import blas

    from fastnn import backend
    backend.load("cython")
    assert blas_pool.on_openmp_pool()
    gemm = blas.sgemm if dtype == np.float32 else blas.dgemm
    rng = np.random.default_rng(threads)
    old = fastnn.get_num_threads()
    fastnn.set_num_threads(threads)
    try:
        for m, k, n in [(1, 1, 1), (3, 700, 5), (512, 300, 400), (32, 784, 1024),
                        (1024, 1024, 256), (257, 129, 1031)]:
            a = rng.standard_normal((m, k)).astype(dtype)
            b = rng.standard_normal((k, n)).astype(dtype)
            got = gemm(1.0, a, b)
            tol = 1e-4 if dtype == np.float32 else 1e-11
            np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=tol,
                                       atol=tol * np.sqrt(k))
    finally:
        fastnn.set_num_threads(old)


def test_products_from_several_python_threads_at_once():
    # each calling thread gets its own OpenMP team; none waits on another's jobs
    proc = _run("""
        import threading
        import numpy as np
        import fastnn
        from scipy.linalg import blas
        fastnn.set_backend('cython')
        fastnn.set_num_threads(2)
        errors = []
        def work(seed):
            rng = np.random.default_rng(seed)
            for _ in range(20):
                a = rng.standard_normal((300, 400)).astype(np.float32)
                b = rng.standard_normal((400, 350)).astype(np.float32)
                err = np.abs(blas.sgemm(1.0, a, b) - a.astype(np.float64) @ b).max()
                if err > 1e-3:
                    errors.append(err)
        ts = [threading.Thread(target=work, args=(s,)) for s in range(4)]
        for t in ts: t.start()
        for t in ts: t.join()
        print('errors', errors)
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "errors []"


@pytest.mark.parametrize("backend", ["cython", "numba"])
def test_numpy_products_from_two_python_threads_are_right(backend):
    # NumPy's OpenBLAS on the pool: OpenBLAS gives every call through the callback the
    # same per-thread buffers, so two threads' products at once corrupted each other's
    # (about half wrong, errors of order 100) until the callback ran one call at a time
    proc = _run(f"""
        import threading
        import numpy as np
        import fastnn
        fastnn.set_backend({backend!r})
        fastnn.set_num_threads(2)
        fastnn.ops.relu(np.ones(3))
        def products(seed):
            rng = np.random.default_rng(seed)
            x = rng.standard_normal((200, 180))
            w = rng.standard_normal((180, 64))
            g = rng.standard_normal((200, 64))
            return x @ w, g.T @ x
        expected = [products(seed) for seed in range(2)]
        wrong = [0, 0]
        def work(seed):
            for _ in range(40):
                for got, want in zip(products(seed), expected[seed]):
                    wrong[seed] += not np.allclose(got, want)
        ts = [threading.Thread(target=work, args=(s,)) for s in range(2)]
        for t in ts: t.start()
        for t in ts: t.join()
        print('wrong', wrong)
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "wrong [0, 0]"


def test_a_team_smaller_than_the_jobs_runs_them_on_new_threads():
    # OMP_THREAD_LIMIT=1 gives every parallel region one thread while OpenBLAS splits a
    # product into 3 jobs that wait on each other: run on one thread they would hang
    proc = _run("""
        import numpy as np
        import fastnn
        from fastnn import blas_pool
        from scipy.linalg import blas
        fastnn.set_backend('cython')
        fastnn.set_num_threads(3)
        assert blas_pool.on_openmp_pool()
        rng = np.random.default_rng(0)
        a = rng.standard_normal((600, 500)).astype(np.float32)
        b = rng.standard_normal((500, 700)).astype(np.float32)
        print(np.abs(blas.sgemm(1.0, a, b) - a.astype(np.float64) @ b).max() < 1e-3)
        """, timeout=60, OMP_THREAD_LIMIT="1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"


def test_the_callback_runs_every_job_at_the_same_time():
    # fnn_blas_jobs called directly with jobs that meet at a barrier: any job left to
    # run after another has finished would time out at the barrier
    proc = _run("""
        import ctypes, threading
        from fastnn.kernels.cython import _openmp
        DOJOB = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
        RUN = ctypes.CFUNCTYPE(None, ctypes.c_int, DOJOB, ctypes.c_int, ctypes.c_size_t,
                               ctypes.c_void_p, ctypes.c_int)
        run = RUN(_openmp.blas_jobs_callback())
        for jobs in (1, 2, 3, 5):
            barrier = threading.Barrier(jobs, timeout=20)
            seen = []
            data = (ctypes.c_int * jobs)(*range(100, 100 + jobs))
            def job(index, ptr, extra):
                value = ctypes.cast(ptr, ctypes.POINTER(ctypes.c_int))[0]
                seen.append((index, value, extra))
                barrier.wait()
            run(1, DOJOB(job), jobs, ctypes.sizeof(ctypes.c_int), ctypes.addressof(data), 7)
            assert sorted(seen) == [(i, 100 + i, 7) for i in range(jobs)], seen
        print('ok')
        """, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_runs_products_on_openblas_threads():
    # libgomp's pool does not survive fork(): the child unregisters the callback
    proc = _run("""
        import multiprocessing as mp
        import numpy as np
        import fastnn
        from fastnn import blas_pool
        from scipy.linalg import blas
        fastnn.set_backend('cython')
        fastnn.set_num_threads(2)
        rng = np.random.default_rng(0)
        a = rng.standard_normal((600, 500)).astype(np.float32)
        b = rng.standard_normal((500, 700)).astype(np.float32)
        want = a.astype(np.float64) @ b
        blas.sgemm(1.0, a, b)  # the pool has run in the parent
        def child(q):
            q.put((blas_pool.on_openmp_pool(),
                   float(np.abs(blas.sgemm(1.0, a, b) - want).max())))
        q = mp.get_context('fork').Queue()
        p = mp.get_context('fork').Process(target=child, args=(q,))
        p.start()
        on_pool, err = q.get(timeout=60)
        p.join(60)
        print(on_pool, err < 1e-3, p.exitcode, blas_pool.on_openmp_pool(),
              float(np.abs(blas.sgemm(1.0, a, b) - want).max()) < 1e-3)
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True", "0", "True", "True"]


def test_import_fastnn_leaves_libgomps_wait_alone_when_blas_shares_the_pool():
    proc = _run("""
        import os, torch, fastnn
        fastnn.set_num_threads(2)
        fastnn.set_backend('cython')
        import numpy as np
        fastnn.ops.relu(np.ones(1 << 16, np.float32))
        print(os.environ.get('GOMP_SPINCOUNT'))
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "None"
    assert "OpenMP runtime was loaded" not in proc.stderr


# ------------------------------------------- the Linear products on NumPy's OpenBLAS
needs_numpy_blas = pytest.mark.skipif(
    blas_pool._numpy_blas() is None,
    reason="NumPy's BLAS is not an ILP64 OpenBLAS that takes the callback")


def _linear_case(rng, dtype, n, fin, fout):
    x = rng.standard_normal((n, fin)).astype(dtype)
    w = rng.standard_normal((fout, fin)).astype(dtype)
    b = rng.standard_normal(fout).astype(dtype)
    g = rng.standard_normal((n, fout)).astype(dtype)
    return x, w, b, g


def _linear_both_ways(be, x, w, b, g, accumulate):
    y = be.linear_forward(x, w, b, "leaky_relu", 0.01)
    gw = np.full_like(w, 0.5)
    gb = np.full_like(b, 0.25)
    gi = be.linear_backward(g, x, w, y, "leaky_relu", 0.01, grad_weight=gw, grad_bias=gb,
                            accumulate=accumulate)
    return y, gw, gb, gi


def _library_switch(name, library):
    """(switch, restore) for backend ``name``'s Linear products: switch(True) puts them
    on ``library`` ('numpy': NumPy's OpenBLAS, 'mkl': fastnn/mkl_blas.py), switch(False)
    on SciPy's OpenBLAS; restore() puts back what the backend chose when it loaded."""
    from fastnn import mkl_blas
    if name == "cython":
        from fastnn.kernels import cython as kernels
        from fastnn.kernels.cython import _dense
        assert _dense.ilp64_gemm_in_use()
        addresses = (blas_pool.numpy_gemm_addresses() if library == "numpy"
                     else mkl_blas.gemm_addresses())
        return (lambda on: _dense.use_ilp64_gemm(*(addresses if on else (0, 0))),
                lambda: _dense.use_ilp64_gemm(*kernels._linear_gemm))
    from fastnn.kernels.numba_cpu import blas
    if library == "numpy":
        def switch(on):
            blas.use_mkl_products(False)
            blas.use_numpy_products(on)
    else:
        def switch(on):
            blas.use_numpy_products(False)
            blas.use_mkl_products(on)

    def restore():
        blas.use_numpy_products(True)
        blas.use_mkl_products(True)
    return switch, restore


def _mkl_installed():
    from fastnn import mkl_blas
    return bool(mkl_blas.library_paths()) and mkl_blas.wanted()


@pytest.mark.parametrize("library", [
    pytest.param("numpy", marks=needs_numpy_blas),
    pytest.param("mkl", marks=pytest.mark.skipif(
        not _mkl_installed(), reason="the mkl wheel is not installed (Makefile installs it "
                                     "on x86-64 Linux) or FASTNN_BLAS=openblas"))])
@pytest.mark.parametrize("name", ["numba", "cython"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_products_on_another_blas_match_scipys(library, name, dtype):
    from fastnn import backend
    be = backend.load(name)
    switch, restore = _library_switch(name, library)
    rng = np.random.default_rng(3)
    tol = 2e-4 if dtype == np.float32 else 1e-11
    try:
        # batch 32 of a wide layer takes the transposed forward (kernels/gemm_shapes.py)
        for shape in [(32, 784, 1024), (256, 100, 10), (1, 3, 2), (0, 5, 4), (7, 0, 3)]:
            case = _linear_case(rng, dtype, *shape)
            for accumulate in (False, True):
                switch(False)
                want = _linear_both_ways(be, *case, accumulate)
                switch(True)
                got = _linear_both_ways(be, *case, accumulate)
                for a, b in zip(got, want):
                    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.sqrt(shape[1] + 1))
    finally:
        restore()


def test_use_ilp64_gemm_takes_both_addresses_or_neither():
    from fastnn import backend
    backend.load("cython")
    from fastnn.kernels.cython import _dense
    with pytest.raises(ValueError):
        _dense.use_ilp64_gemm(1, 0)


def test_a_numba_layer_off_openmp_keeps_the_short_openmp_wait():
    # numba's 'workqueue' threads beside libgomp's: two pools again, so the OpenMP
    # workers must not spin on the cores the other pool needs
    proc = _run("import os, fastnn\nprint(os.environ.get('GOMP_SPINCOUNT'))\n",
                NUMBA_THREADING_LAYER="workqueue")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1000"
