"""The cuda backend on numba's real CUDA path, without a GPU: the stand-in driver of
bench/fake_cuda, in subprocesses (numba must load it before anything initialises CUDA).

The simulator (test_cuda_sim.py) checks what the kernels compute; test_cuda_ptx.py that
they compile. Here numba compiles them with CUDA's libNVVM and launches them through its
real dispatcher and driver calls, as on a GPU, while the kernels themselves do nothing;
the driver's copies are real. So these tests check what happens on the host: that whole
training steps launch (the argument types each launcher passes, the launch sizes), how
many launches, allocations and copies a step makes, and that the copies between host and
device move the right bytes. They are skipped without a C compiler or libNVVM.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fastnn.bench_cli import _import_bench

_import_bench()  # puts the checkout's bench/ package on sys.path

from bench import fake_cuda  # noqa: E402
from bench.fake_cuda import host_time  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    path = fake_cuda.build(tmp_path_factory.mktemp("fake_cuda"))
    if path is None:
        pytest.skip("no C compiler to build the stand-in driver")
    return path


def test_training_steps_launch_with_few_allocations_and_copies(driver):
    results = host_time.run(small=True, repeats=1, directory=driver.parent)
    if results is None:
        pytest.skip("CUDA's libNVVM is not available: numba cannot compile kernels")
    mlp, host_batch, cnn = (results[k]["per_step"]
                            for k in ("mlp", "mlp_host_batch", "cnn"))
    # MLP 784-64-64-10 with a device batch: 3 GEMMs with bias and ReLU in their epilogue,
    # softmax-CE, 3 kernels for act'(y) with the bias gradients, 5 GEMMs (no grad_in for
    # the first layer), one zero fill and one SGD update over the flat buffers
    assert mlp["launches"] == 14, mlp
    # fresh arrays for the caller only: the logits and the loss's gradient; the loss's
    # value and the labels' check are the only copies to the host
    assert mlp["allocs"] <= 2 and mlp["htod"] == 0 and mlp["dtoh"] <= 2, mlp
    assert mlp["dtod"] <= 1, mlp
    # NumPy batches: the input and the labels go in once each
    assert host_batch["htod"] == 2 and host_batch["allocs"] <= 3, host_batch
    # SmallCNN with Adam: convs, BatchNorm2d, pools, Linears, one Adam update
    assert 0 < cnn["launches"] <= 40, cnn
    assert cnn["allocs"] <= 2 and cnn["htod"] == 0 and cnn["dtoh"] <= 2, cnn
    for name, r in results.items():
        assert r["host_us"] > 0, (name, r)


_COPIES = """
import numpy as np
from numba import cuda
import fastnn.device as fd
from fastnn.kernels.cuda import _common as c

assert cuda.is_available()
for dtype in (np.float32, np.float64, np.int64):
    for shape in ((), (0,), (5,), (3, 4), (2, 3, 4)):
        a = (np.arange(int(np.prod(shape))) * 3 - 7).astype(dtype).reshape(shape)
        d = c.to_device(a)
        assert d.shape == a.shape and d.dtype == a.dtype
        assert np.array_equal(c.to_host(d), a)
        out = np.full(shape, 99, dtype)
        assert c.to_host(d, out) is out and np.array_equal(out, a)
        e = cuda.device_array(shape, dtype)
        c.copy_into(e, d)                        # device to device
        assert np.array_equal(e.copy_to_host(), a)
        c.copy_into(e, (a + 1).astype(np.float64))   # host, another dtype: cast
        assert np.array_equal(e.copy_to_host(), (a + 1).astype(dtype))
        assert np.array_equal(fd.to_host(fd.Cuda.put(a)), a)
        assert np.array_equal(fd.host_copy(d), a)
# strided arrays either side take numba's own copies
m = np.arange(12.0).reshape(3, 4)
assert np.array_equal(c.to_host(c.to_device(m.T)), m.T)     # a transposed host array
d = c.to_device(np.arange(10.0))
assert np.array_equal(c.to_host(d[::2]), np.arange(10.0)[::2])  # a strided device view
e = cuda.device_array(5)
for dst, src in ((e, d[::2]), (d[::2], np.arange(5.0))):   # numba copies no strided
    try:                                                    # device memory: its error
        c.copy_into(dst, src)
    except ValueError as exc:
        assert "contiguous" in str(exc)
    else:
        raise AssertionError("a strided device array was copied")
out = np.zeros((4, 3)).T                                    # a strided out=
assert np.array_equal(c.to_host(c.to_device(m), out), m)
fd.Cuda.copy_into(e, np.arange(5))                          # fastnn.device's entry
assert np.array_equal(e.copy_to_host(), np.arange(5.0))
print("copies ok")
"""


def test_copies_between_host_and_device_move_the_right_values(driver):
    env = dict(os.environ, **fake_cuda.environment(driver))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_COPIES)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert "copies ok" in proc.stdout
