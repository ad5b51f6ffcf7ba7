"""The backend registry and thread setting: fastnn.backends, set/get/use_backend, env vars."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn import backend as registry


def test_numpy_backend_always_available():
    assert "numpy" in fastnn.backends()
    assert registry.load("numpy").name == "numpy"


def test_set_and_use_backend_restore():
    before = fastnn.get_backend()
    with fastnn.use_backend("numpy") as b:
        assert fastnn.get_backend() == "numpy" and b.name == "numpy"
    assert fastnn.get_backend() == before
    fastnn.set_backend("numpy")
    assert fastnn.get_backend() == "numpy"
    fastnn.set_backend(before)


def test_use_backend_nests_reenters_decorates_and_restores_after_errors():
    # use_backend is a small class (contextlib's generator cost ~3 us a block): it keeps
    # what the generator gave, nesting, the same object entered twice, use as a
    # decorator, and the backend put back after an exception in the block
    before = fastnn.get_backend()
    block = fastnn.use_backend("numpy")
    with block:
        with fastnn.use_backend(before):
            assert fastnn.get_backend() == before
            with block:
                assert fastnn.get_backend() == "numpy"
            assert fastnn.get_backend() == before
        assert fastnn.get_backend() == "numpy"
    assert fastnn.get_backend() == before
    with pytest.raises(KeyError):
        with fastnn.use_backend("numpy"):
            raise KeyError("inside")
    assert fastnn.get_backend() == before

    @fastnn.use_backend("numpy")
    def current():
        return fastnn.get_backend()
    assert current() == "numpy" and current() == "numpy"
    assert fastnn.get_backend() == before
    # one object entered by two threads at once (a decorated function called from both,
    # or a shared block): each leaves with its own entry's token
    import threading
    barrier, seen = threading.Barrier(2, timeout=30), []

    @fastnn.use_backend("numpy")
    def overlapping():
        barrier.wait()
        seen.append(fastnn.get_backend())
        barrier.wait()

    def shared():
        with block:
            barrier.wait()
            seen.append(fastnn.get_backend())
            barrier.wait()
    for target in (overlapping, shared):
        threads = [threading.Thread(target=target) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert seen == ["numpy"] * 4 and registry._entries.get() == ()
    with pytest.raises(ValueError, match="unknown backend"):
        fastnn.use_backend("jax")
    assert fastnn.get_backend() == before


def test_one_use_backend_block_shared_by_asyncio_tasks():
    # the open blocks are kept per context: two tasks entering one block object and
    # leaving it in turn each reset their own token (kept per thread, each task popped
    # the other's: ValueError "created in a different Context" in both)
    import asyncio
    before = fastnn.get_backend()
    block = fastnn.use_backend("numpy")
    seen = []

    async def task(name):
        with block:
            await asyncio.sleep(0)
            seen.append((name, fastnn.get_backend()))
        seen.append((name, fastnn.get_backend()))

    async def both():
        await asyncio.gather(task("a"), task("b"))

    asyncio.run(both())
    assert sorted(seen) == sorted([("a", "numpy"), ("a", before), ("b", "numpy"), ("b", before)])
    assert fastnn.get_backend() == before and registry._entries.get() == ()


def test_unavailable_or_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown backend 'jax'.*expected one of"):
        fastnn.set_backend("jax")
    with pytest.raises(ValueError, match="unknown backend"):
        fastnn.set_backend(3)


def _run(code, **env):
    full_env = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full_env, timeout=300)


def test_fastnn_backend_env_picks_default():
    result = _run("import fastnn; print(fastnn.get_backend())", FASTNN_BACKEND="numpy")
    assert result.stdout.strip() == "numpy", result.stderr


def test_default_is_fastest_available_cpu_backend():
    env = {k: v for k, v in os.environ.items() if k != "FASTNN_BACKEND"}
    result = subprocess.run([sys.executable, "-c", "import fastnn; print(fastnn.get_backend())"],
                            capture_output=True, text=True, env=env, timeout=300)
    expected = next(n for n in registry._CPU_PREFERENCE if n in fastnn.backends())
    assert result.stdout.strip() == expected, result.stderr


def test_import_is_light():
    """import fastnn loads no backend module and compiles nothing."""
    code = ("import sys, fastnn; "
            "print(any(m.startswith(('numba', 'fastnn.kernels.')) for m in sys.modules))")
    result = _run(code)
    assert result.stdout.strip() == "False", result.stderr


def test_set_num_threads_validates_and_applies():
    with pytest.raises(ValueError, match="positive int"):
        fastnn.set_num_threads(0)
    previous = fastnn.get_num_threads()
    fastnn.set_num_threads(1)
    try:
        assert fastnn.get_num_threads() == 1
        from threadpoolctl import threadpool_info
        blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
        assert all(i["num_threads"] == 1 for i in blas)
    finally:
        fastnn.set_num_threads(previous)


def test_backend_info_lists_reuses():
    info = fastnn.backend_info("numpy")
    assert info["name"] == "numpy" and info["reuses"] == {}


def test_ops_run_on_current_backend(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    for name in fastnn.backends():
        with fastnn.use_backend(name):
            np.testing.assert_allclose(fastnn.ops.relu(x), np.maximum(x, 0))


def test_set_backend_applies_to_new_threads_and_use_backend_stays_local():
    import threading
    before = fastnn.get_backend()
    seen = {}
    try:
        fastnn.set_backend("numpy")
        with fastnn.use_backend("numpy"):
            t = threading.Thread(target=lambda: seen.setdefault("b", fastnn.get_backend()))
            t.start()
            t.join()
    finally:
        fastnn.set_backend(before)
    assert seen["b"] == "numpy"


def test_dir_lists_the_lazy_names():
    # the sub-modules and functions load on first use, but dir() and tab completion
    # list them, as the package's __all__ does
    import fastnn
    names = dir(fastnn)
    assert set(fastnn.__all__) <= set(names)
    assert {"nn", "optim", "ops", "no_grad", "manual_seed", "save"} <= set(names)
    for name in fastnn.__all__:
        getattr(fastnn, name)  # each resolves


@pytest.mark.parametrize("env,expected,warns", [
    ({"FASTNN_NUM_THREADS": "3"}, 3, False),
    ({"OMP_NUM_THREADS": "4,2"}, 4, False),            # OpenMP's list: one count a level
    ({"OMP_NUM_THREADS": "5", "FASTNN_NUM_THREADS": "2"}, 2, False),
    ({"FASTNN_NUM_THREADS": "two"}, None, True),
    ({"FASTNN_NUM_THREADS": "0"}, None, True),
    ({"OMP_NUM_THREADS": "-1"}, None, True),
])
def test_thread_count_from_the_environment(monkeypatch, env, expected, warns):
    import warnings

    from fastnn import threads
    for var in ("OMP_NUM_THREADS", "FASTNN_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setattr(threads, "_default_num_threads", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = threads._default_threads()
    assert got == (expected or (os.cpu_count() or 1))
    messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
    assert bool(messages) == warns
    if warns:
        assert "not a positive int" in messages[0]


@pytest.mark.skipif("numba" not in fastnn.backends(), reason="needs the numba backend")
def test_two_threads_launching_kernels_under_numbas_workqueue_layer_take_turns():
    """numba's workqueue threading layer (forced here, and numba's fallback where neither
    OpenMP nor TBB loads) aborted the process (SIGABRT, 'Concurrent access has been
    detected') when two Python threads ran parallel kernels at once."""
    code = """
import threading
import numpy as np
import fastnn
from fastnn import ops
fastnn.set_backend("numba")
x = np.ones(1 << 20, np.float32)     # above the parallel cut-off
first = ops.relu(x)
def work():
    for _ in range(100):
        assert np.array_equal(ops.relu(x), first)
threads = [threading.Thread(target=work) for _ in range(3)]
for t in threads: t.start()
for t in threads: t.join()
print(fastnn.backend_info("numba")["threading_layer"])
"""
    result = _run(code, NUMBA_THREADING_LAYER="workqueue")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == "workqueue"
