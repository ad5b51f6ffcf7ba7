"""``fastnn compile`` (fastnn/precompile.py): every op exercised, every variant of a
kernel compiled, and the disk cache's lock for processes compiling at once
(kernels/numba_cpu/cache_lock.py)."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastnn
import fastnn.cli
from fastnn import ops, optable, precompile

HAS_NUMBA = "numba" in fastnn.backends()
needs_numba = pytest.mark.skipif(not HAS_NUMBA, reason="needs the numba backend")


@pytest.mark.parametrize("dtype", precompile.DTYPES)
def test_the_exercises_run_every_op_of_the_table(monkeypatch, dtype):
    called = set()
    run = ops._run

    def recording_run(name, *args, **kwargs):
        called.add(name)
        return run(name, *args, **kwargs)

    monkeypatch.setattr(ops, "_run", recording_run)
    rng = np.random.default_rng(0)
    with fastnn.use_backend("numpy"), np.errstate(all="ignore"):
        for family, exercise in precompile.EXERCISES.items():
            before = set(called)
            exercise(rng, np.dtype(dtype))
            assert called - before == set(optable.OP_FAMILIES[family]), family
    assert set(precompile.EXERCISES) == set(optable.OP_FAMILIES)


@needs_numba
def test_every_variant_is_compiled_for_a_small_call():
    import numba
    from fastnn.kernels.numba_cpu import config

    def _triple(x, out):   # a kernel of this test's own, compiled here for the first time
        for i in range(x.shape[0]):
            out[i] = 3 * x[i]

    kernel = config.ElementwiseKernel(_triple, streams=True, options={"cache": False})
    x = np.arange(5, dtype=np.float32)
    out = np.empty_like(x)
    kernel(x.size, x, out)
    assert len(kernel.parallel.signatures) == 0 and len(kernel.streamed.signatures) == 0
    with config.compiling_every_variant():
        kernel(x.size, x, out)
        kernel.run_serial(x.astype(np.float64), out.astype(np.float64))
    assert not config._every_variant
    np.testing.assert_array_equal(out, 3 * x)
    array = numba.typeof(x)
    for variant, prefix in kernel.variants():
        # (the streamed variant takes the thread count first)
        assert (*map(numba.typeof, prefix), array, array) in variant.signatures, variant
        assert len(variant.signatures) == 2   # float32 and float64


def test_compile_refuses_a_job_count_below_one(capsys):
    assert fastnn.cli.main(["compile", "--jobs", "0"]) == 2
    assert "expected --jobs >= 1, got 0" in capsys.readouterr().err


@needs_numba
def test_compile_fills_the_disk_cache_for_a_fresh_process(tmp_path, monkeypatch):
    """One family compiled by the command's own process; a second process then runs it
    without compiling."""
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    lines = []
    assert precompile.compile_all(jobs=1, families=["dropout"], log=lines.append) == 0
    assert len(lines) == 1 and lines[0].startswith("compiled dropout")
    cached = {name.split("-")[0] for _, _, files in os.walk(tmp_path) for name in files
              if name.endswith(".nbi")}
    assert {"dropout._dropout", "dropout._dropout_serial"} <= cached
    check = ("import numpy as np, fastnn\n"
             "from fastnn.kernels.numba_cpu import dropout\n"
             "with fastnn.use_backend('numba'):\n"
             "    for dt in (np.float32, np.float64):\n"
             "        x = np.ones((300, 300), dt)\n"   # large: the parallel variant
             "        fastnn.ops.dropout_forward(x, 0.5, 1)\n"
             "        fastnn.ops.dropout_forward(x[:2], 0.5, 1)\n"
             "kernel = dropout._dropout\n"
             "print(sum(len(v.stats.cache_misses) for v in (kernel.serial, kernel.parallel)))\n")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                            env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "0"


@needs_numba
def test_a_failing_family_gives_its_exit_status(monkeypatch):
    class Failing:
        def __init__(self, args):
            self.args = args

        def poll(self):
            return 3

    monkeypatch.setattr(precompile.subprocess, "Popen", Failing)
    lines = []
    assert precompile.compile_all(jobs=2, families=["loss", "conv"], log=lines.append) == 3
    # the longest family starts first
    assert lines == ["compiling conv failed (exit status 3)",
                     "compiling loss failed (exit status 3)"]


# ------------------------------------------------------------------ the cache's lock
@needs_numba
def test_the_cache_lock_is_installed():
    from numba.core import caching
    import fastnn.kernels.numba_cpu  # noqa: F401 (its config installs the lock)
    assert caching.IndexDataCacheFile.save._fastnn_locked
    assert caching.IndexDataCacheFile.load._fastnn_locked


@needs_numba
@pytest.mark.skipif(not hasattr(os, "fork"), reason="flock is POSIX")
def test_saves_of_one_function_at_once_keep_every_entry(tmp_path):
    """Threads saving signatures of one function at once, as processes compiling
    together do: each key keeps its own data file. Without the lock two saves take one
    free name, and the index of the last points at the other's data."""
    from numba.core import caching
    from fastnn.kernels.numba_cpu import cache_lock   # (config installs the lock)
    directory = tmp_path / "numba_cpu"
    directory.mkdir()
    load_index = caching.IndexDataCacheFile._load_index
    start = threading.Barrier(4)

    def slow_load_index(self):
        overloads = load_index(self)
        threading.Event().wait(0.002)   # widen the window between reading and writing
        return overloads

    def saver(t):
        cache_file = caching.IndexDataCacheFile(str(directory), "f-1.py311", "stamp")
        start.wait()
        for i in range(10):
            cache_file.save(f"key{t}.{i}", f"data{t}.{i}")

    original = caching.IndexDataCacheFile._load_index
    caching.IndexDataCacheFile._load_index = slow_load_index
    try:
        threads = [threading.Thread(target=saver, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        caching.IndexDataCacheFile._load_index = original
    cache_file = caching.IndexDataCacheFile(str(directory), "f-1.py311", "stamp")
    for t in range(4):
        for i in range(10):
            assert cache_file.load(f"key{t}.{i}") == f"data{t}.{i}"
    assert (directory / cache_lock.LOCK_NAME).exists()


@needs_numba
def test_the_lock_leaves_other_caches_alone(tmp_path):
    from fastnn.kernels.numba_cpu import cache_lock
    from numba.core import caching
    cache_file = caching.IndexDataCacheFile(str(tmp_path), "g-1.py311", "stamp")
    cache_file.save("k", "v")
    assert cache_file.load("k") == "v"
    assert not (tmp_path / cache_lock.LOCK_NAME).exists()


@needs_numba
@pytest.mark.skipif(not hasattr(os, "fork"), reason="flock is POSIX")
def test_a_file_system_without_locks_still_caches(tmp_path, monkeypatch):
    from numba.core import caching
    from fastnn.kernels.numba_cpu import cache_lock

    def no_locks(fd, operation):
        raise OSError(37, "No locks available")

    monkeypatch.setattr(cache_lock.fcntl, "flock", no_locks)
    directory = tmp_path / "numba_cpu"
    directory.mkdir()
    cache_file = caching.IndexDataCacheFile(str(directory), "h-1.py311", "stamp")
    cache_file.save("k", "v")
    assert cache_file.load("k") == "v"
