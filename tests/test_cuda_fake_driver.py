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
import functools
import tempfile
import textwrap

import pytest

from fastnn.bench_cli import _import_bench
from simulator_runs import BackgroundRun, script_run

_import_bench()  # puts the checkout's bench/ package on sys.path

from bench import fake_cuda  # noqa: E402
from bench.fake_cuda import host_time  # noqa: E402

# Each test's process runs in the background from the end of collection, and the test,
# moved to the end of the session, reads its output (tests/simulator_runs.py: the
# processes compile kernels on one core, for 1 to 20 s each)


@functools.cache
def _driver():
    """(the stand-in driver's path or None without a C compiler, its folder): built once,
    in a folder removed when the session's process exits."""
    folder = tempfile.TemporaryDirectory(prefix="fastnn-fake-cuda-")
    return fake_cuda.build(folder.name), folder


def on_the_driver(script, **env):
    """The mark of a test that reads script's run in a new process on the stand-in driver
    (its background_run fixture; None without a C compiler)."""
    check = ("from bench.fake_cuda.host_time import _has_nvvm\n"
             "if not _has_nvvm():\n    raise SystemExit(77)\n")

    def start():
        path = _driver()[0]
        if path is None:
            return None
        return script_run(("-c", check + textwrap.dedent(script)),
                          {**fake_cuda.environment(path), **env})
    return pytest.mark.background_run.with_args(start)


def _output(run, timeout=600):
    """The output of a run on the stand-in driver (skip without a C compiler or libNVVM)."""
    if run is None:
        pytest.skip("no C compiler to build the stand-in driver")
    code, output = run.result(timeout=timeout)
    if code == 77:
        pytest.skip("CUDA's libNVVM is not available: numba cannot compile kernels")
    assert code == 0, output[-9000:]
    return output


def _start_training_steps():
    """host_time's small measuring run on the stand-in driver, launch="check" (None
    without a C compiler)."""
    path = _driver()[0]
    if path is None:
        return None
    process = host_time.command(small=True, repeats=1, directory=path.parent, launch="check")
    return None if process is None else BackgroundRun(*process)


@pytest.mark.background_run.with_args(_start_training_steps)
def test_training_steps_launch_with_few_allocations_and_copies(background_run):
    # launch="check": every direct launch also compares its packed arguments and its
    # compiled kernel with numba's (kernels/cuda/launch.py), and fails the step if not
    results = host_time.results(0, _output(background_run, timeout=1200))
    mlp, host_batch, cnn = (results[k]["per_step"]
                            for k in ("mlp", "mlp_host_batch", "cnn"))
    for step in (mlp, host_batch, cnn):
        # after the warm-up steps every launch goes through the driver directly, and
        # on the legacy default stream (in order with cuBLAS and the copies)
        assert step["direct_launches"] == step["launches"], step
        assert step["numba_launches"] == 0 and step["stream_launches"] == 0, step
    # MLP 784-64-64-10 with a device batch: 3 GEMMs with bias and ReLU in their epilogue,
    # softmax-CE, 3 kernels for act'(y) with the bias gradients, 5 GEMMs (no grad_in for
    # the first layer) and one SGD update over the flat buffers (zero_grad leaves lazy
    # zeros, which the Linear backwards overwrite: no fill)
    assert mlp["launches"] == 13, mlp
    # fresh arrays for the caller only: the logits and the loss's gradient; the loss's
    # value (with the kernel's check of the device labels) is the only copy to the host
    assert mlp["allocs"] <= 2 and mlp["htod"] == 0 and mlp["dtoh"] == 1, mlp
    assert mlp["dtod"] <= 1, mlp
    # NumPy batches: the input and the labels go in once each
    assert host_batch["htod"] == 2 and host_batch["allocs"] <= 3, host_batch
    # SmallCNN with Adam: convs, BatchNorm2d, pools, Linears, one Adam update, and a
    # zero fill for each gradient a layer other than Linear reads after the lazy
    # zero_grad (the held .grad arrays keep their values until then, as on the CPU)
    assert 0 < cnn["launches"] <= 47, cnn
    assert cnn["allocs"] <= 2 and cnn["htod"] == 0 and cnn["dtoh"] == 1, cnn
    one = results.pop("one_launch")
    assert one["direct_us"] > 0 and one["numba_us"] > 0, one
    for name, r in results.items():
        assert r["host_us"] > 0, (name, r)


_COPIES = """
import ctypes, os
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
# a strided device view is gathered on the device first (one launch; the stand-in runs no
# kernels: tests/test_cuda_ops.py checks the values under the simulator)
lib = ctypes.CDLL(os.environ["NUMBA_CUDA_DRIVER"])
launches = ctypes.c_ulonglong.in_dll(lib, "fake_launches")
before = launches.value
assert c.to_host(d[::2]).shape == (5,) and launches.value == before + 1
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


@on_the_driver(_COPIES)
def test_copies_between_host_and_device_move_the_right_values(background_run):
    assert "copies ok" in _output(background_run)


_THREAD_COPIES = """
import threading
import numpy as np
from numba import cuda
import fastnn.device as fd
from fastnn.kernels.cuda import _common as c

a = np.arange(6.0)
d, e = c.to_device(a), cuda.device_array(6)
done = {}


def work():   # a thread that has made no numba call yet: no current context
    out = np.zeros(6)
    assert np.array_equal(fd.to_host(d), a) and c.to_host(d, out) is out
    c.copy_into(e, d)
    c.copy_into(d, a + 1)
    done["values"] = out, e.copy_to_host(), d.copy_to_host()


thread = threading.Thread(target=work)
thread.start()
thread.join()
out, copied, put = done["values"]
assert np.array_equal(out, a) and np.array_equal(copied, a) and np.array_equal(put, a + 1)
print("thread copies ok")
"""


@on_the_driver(_THREAD_COPIES)
def test_copies_from_a_thread_that_made_no_numba_call(background_run):
    # the stand-in driver, as a real one, refuses copies without a current context
    # (CUDA_ERROR_INVALID_CONTEXT): fastnn's own driver copies make numba's current first
    assert "thread copies ok" in _output(background_run)


_LAUNCHES = """
import ctypes, os, struct, threading
import numpy as np
from numba import cuda
from fastnn.kernels.cuda import launch
from fastnn.kernels.cuda.launch import jit_kernel

lib = ctypes.CDLL(os.environ["NUMBA_CUDA_DRIVER"])
launches = ctypes.c_ulonglong.in_dll(lib, "fake_launches")
dims = (ctypes.c_uint * 6).in_dll(lib, "fake_last_dims")
params = ctypes.c_void_p.in_dll(lib, "fake_last_params")


@jit_kernel
def probe(a, b, s, t, flag):
    if cuda.grid(1) < a.size + b.size and flag:
        s = s + t


def array_slots(d):
    # numba's array argument: meminfo, parent, size, itemsize, pointer, shape, strides
    pointer = d.__cuda_array_interface__["data"][0] if d.size else 0
    return [struct.pack("<q", v) for v in (0, 0, d.size, d.dtype.itemsize, pointer,
                                           *d.shape, *d.strides)]


SCALAR = {float: "<d", np.float32: "<f", np.float64: "<d", int: "<q", np.int32: "<i",
          np.int64: "<q", bool: "<?", np.bool_: "<?"}


def driver_saw(n_slots, widths):
    # the values behind the driver's last parameter pointers
    pointers = ctypes.cast(params.value, ctypes.POINTER(ctypes.c_void_p))
    return [ctypes.string_at(pointers[k], widths[k]) for k in range(n_slots)]


base = cuda.to_device(np.arange(24.0))
arrays = [cuda.device_array(7, np.float32), cuda.to_device(np.ones((3, 4))),
          cuda.to_device(np.ones((3, 4))).T, base[::3], base.reshape(2, 3, 4)[:, 1:, ::2],
          cuda.device_array((2, 0, 3), np.int64), cuda.device_array((), np.float64),
          cuda.device_array((2, 3, 4, 5), np.int32)]
scalars = [1.5, np.float32(2.5), 3, np.int32(-4), np.int64(2**40), True, np.bool_(False)]
grids = [(5, 64), ((3, 2), (32, 4)), ((2, 2, 2), (8, 8, 2)), ((7,), (128,))]
checked = 0
for k, a in enumerate(arrays):
    b = arrays[(k + 3) % len(arrays)]
    for s in scalars[:5]:
        for t in scalars[:5]:
            for flag in scalars[5:]:
                grid, block = grids[(k + checked) % len(grids)]
                args = (a, b, s, t, flag)
                before = launch.counts["direct"]
                for _ in range(2):   # the first goes through numba (it compiles)
                    probe[grid, block](*args)
                assert launch.counts["direct"] == before + 1, (k, s, t, flag)
                expected = array_slots(a) + array_slots(b) + [
                    struct.pack(SCALAR[type(v)], v) for v in (s, t, flag)]
                widths = [len(e) for e in expected]
                assert driver_saw(len(expected), widths) == expected, (k, s, t, flag)
                g = grid if isinstance(grid, tuple) else (int(grid),)
                bl = block if isinstance(block, tuple) else (block,)
                assert list(dims) == list(g + (1,) * (3 - len(g)) + bl + (1,) * (3 - len(bl)))
                checked += 1

# launches numba makes: host arrays (it copies them), a stream, an int beyond int64
host = np.zeros(4)
for args in [(host, arrays[0], 1.0, 2.0, True)] * 2:
    before = dict(launch.counts)
    probe[1, 32](*args)
    assert launch.counts["numba"] == before["numba"] + 1
stream = cuda.stream()
probe[1, 32, stream, 0](arrays[0], arrays[1], 1.0, 2.0, True)
probe[1, 32](arrays[0], arrays[1], 1.0, 2**63 + 5, True)   # numba types it uint64
count = launches.value
# another thread launches directly too
thread = threading.Thread(target=lambda: probe[1, 32](arrays[0], arrays[1], 1.0, 2.0, True))
thread.start()
thread.join()
assert launches.value == count + 1
import fastnn
assert "cuLaunchKernel" in fastnn.backend_info("cuda")["launch"]
print("launches ok", checked)
"""


@pytest.mark.parametrize("mode", [
    pytest.param(mode, marks=on_the_driver(_LAUNCHES, FASTNN_CUDA_LAUNCH=mode))
    for mode in ("direct", "check")])
def test_direct_launches_pass_numbas_arguments_to_the_driver(background_run, mode):
    # every combination of these argument types compiles once (numba's launch) and then
    # launches directly; check mode also compares each with numba's marshalling
    assert "launches ok 400" in _output(background_run)


_FAILURES = """
import ctypes, os, warnings
import numpy as np
from numba import cuda
from numba.cuda.cudadrv.driver import CudaAPIError
from fastnn.kernels.cuda import launch
from fastnn.kernels.cuda.launch import jit_kernel

lib = ctypes.CDLL(os.environ["NUMBA_CUDA_DRIVER"])
failing = ctypes.c_int.in_dll(lib, "fake_failing_launches")


@jit_kernel
def fill(a, v):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        a[i] = v


a = cuda.device_array(10)
fill[1, 32](a, 1.0)             # numba compiles and launches
if os.environ["CASE"] == "first":
    failing.value = 1           # the first direct launch fails: numba's from then on
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fill[1, 32](a, 2.0)
    assert any("through numba" in str(w.message) for w in caught), caught
    before = dict(launch.counts)
    fill[1, 32](a, 3.0)
    assert launch.counts["numba"] == before["numba"] + 1, launch.counts
    assert launch.counts["direct"] == before["direct"] == 0, launch.counts
else:
    fill[1, 32](a, 2.0)         # a direct launch works
    failing.value = 1           # a later one fails alone: numba makes it again, and
    before = dict(launch.counts)    # later launches go direct once more
    for _ in range(3):
        fill[1, 32](a, 3.0)
    assert launch.counts["numba"] == before["numba"] + 2, launch.counts  # + 1 to prepare
    assert launch.counts["direct"] == before["direct"] + 1, launch.counts
    failing.value = 2           # the error persists: numba's launch raises it
    try:
        fill[1, 32](a, 4.0)
    except CudaAPIError as exc:
        assert "400" in str(exc), exc
    else:
        raise AssertionError("a failed launch passed silently")
print("failures ok")
"""


@pytest.mark.parametrize("case", [pytest.param(case, marks=on_the_driver(_FAILURES, CASE=case))
                                  for case in ("first", "later")])
def test_a_failing_direct_launch_is_made_again_through_numba(background_run, case):
    # numba 0.68's own launches go through cuLaunchKernel as the direct ones do (the
    # stand-in driver fails those on demand); numba-cuda's through cuLaunchKernelEx
    assert "failures ok" in _output(background_run)


_LAYER_NORM_WITHOUT_AFFINE = """
import numpy as np
from numba import cuda
from fastnn import nn
from fastnn.nn import functional as F

x = cuda.to_device(np.ones((4, 5), np.float32))
layer = nn.LayerNorm(5, elementwise_affine=False).to("cuda")
y = layer(x)
g = layer.backward(cuda.to_device(np.ones((4, 5), np.float32)))
assert y.shape == (4, 5) and g.shape == (4, 5)
assert F.layer_norm(x, (5,)).shape == (4, 5)
print("layer norm ok")
"""


@on_the_driver(_LAYER_NORM_WITHOUT_AFFINE)
def test_layer_norm_without_weight_or_bias_compiles_for_the_gpu(background_run):
    """The cuda layer_norm kernels passed x (2-D) for an absent weight or bias: numba
    types the branch that reads them too, so LayerNorm(elementwise_affine=False) on a
    GPU failed to compile (the simulator, which runs Python, never types it)."""
    assert "layer norm ok" in _output(background_run)


_FUNCTIONAL_ON_DEVICE_ARRAYS = """
import numpy as np
from numba import cuda
from fastnn.nn import functional as F

rng = np.random.default_rng(0)
D = lambda shape: cuda.to_device(rng.standard_normal(shape).astype(np.float32))
x2, x3, x4 = D((4, 5)), D((2, 4, 5)), D((2, 3, 5, 5))
shapes = {
    "selu": F.selu(x2), "celu": F.celu(x2, 0.5), "softmin": F.softmin(x3, dim=1),
    "relu_": F.relu(x2, inplace=True), "logsigmoid": F.logsigmoid(x2),
    "linear": F.linear(x3, D((3, 5)), D((3,))), "linear_1d": F.linear(x2, D((5,))),
    "linear_bias_n1": F.linear(x2, D((3, 5)), D((4, 1))),
    "conv1d": F.conv1d(D((4, 6)), D((2, 4, 3))), "conv2d": F.conv2d(x4, D((4, 3, 3, 3))),
    "avg_pool2d": F.avg_pool2d(x4, 2, divisor_override=-2),
    "batch_norm": F.batch_norm(x3, cuda.to_device(np.zeros(4, np.float32)),
                               cuda.to_device(np.ones(4, np.float32)), training=True),
    "dropout": F.dropout(x2, 1.0),
}
want = {"softmin": (2, 4, 5), "linear": (2, 4, 3), "linear_1d": (4,), "linear_bias_n1": (4, 3),
        "conv1d": (2, 4), "conv2d": (2, 4, 3, 3), "avg_pool2d": (2, 3, 2, 2),
        "batch_norm": (2, 4, 5)}
for name, y in shapes.items():
    assert cuda.is_cuda_array(y) and tuple(y.shape) == want.get(name, (4, 5)), name
assert float(F.cross_entropy(x2, np.array([0, 1, 2, 3]))) == float(
    F.cross_entropy(x2, np.array([0, 1, 2, 3])))
print("functional ok")
"""


@on_the_driver(_FUNCTIONAL_ON_DEVICE_ARRAYS)
def test_functional_on_numbas_device_arrays(background_run):
    """fastnn.nn.functional on numba's own device arrays, which have no arithmetic (the
    simulator's do): F.selu scaled its output with *= and failed on a GPU."""
    assert "functional ok" in _output(background_run)
