"""The cuda backend as a user without a GPU meets it: README's "On a GPU" section checked
under Numba's CUDA simulator, float32, against the same model on the numba CPU backend.

Every check below (``check_*``) runs in ONE subprocess (NUMBA_ENABLE_CUDASIM must be set
before numba is imported): ``python tests/test_probe_cuda_user.py`` runs them all and
prints {check name: None or its error} as JSON; conftest.py starts it in the background
when collection ends (tests/simulator_runs.py), and each pytest test, at the end of the
session, reads its check's entry. The launch sizes are shrunk further than
tests/cuda_sim_script.py's (simulator_runs.USER_SIM_ENV: one block of 8 threads, 8x8 GEMM
tiles: the simulator starts a Python thread per GPU thread) so the whole run stays within
seconds. tests/test_cuda_modules.py covers the layers in float64
against the numpy backend; these are the user-level promises in float32 against numba.
"""
import json
import os
import tempfile

import numpy as np
import pytest

from simulator_runs import read_check_run, run_checks

ATOL = 1e-5  # float32, the GPU's sums against the CPU's
OPTIMIZERS = {"SGD": {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3},
              "Adam": {"lr": 1e-2}, "RMSprop": {"lr": 1e-2, "momentum": 0.5}}


# ------------------------------------------------------------ run in the subprocess

def _build(dropout=0.0):
    """A (N, 4) -> (N, 3) float32 MLP with BatchNorm; no bias before the BatchNorm, whose
    true gradient is 0 (Adam would turn its rounding noise into steps of +-lr)."""
    from fastnn import nn
    return nn.Sequential(nn.Linear(4, 5, bias=False), nn.BatchNorm1d(5), nn.ReLU(),
                         nn.Dropout(dropout), nn.Linear(5, 3))


def _twins(dropout=0.0):
    """(host model, model moved to 'cuda') with identical float32 parameters."""
    import fastnn
    fastnn.manual_seed(0)
    host, gpu = _build(dropout), _build(dropout)
    gpu.load_state_dict(host.state_dict())
    assert gpu.to("cuda") is gpu and gpu.device == "cuda"
    return host, gpu


def _batch(step):
    """(x (8, 4) float32, labels (8,)) of a step."""
    rng = np.random.default_rng(step)
    return rng.standard_normal((8, 4)).astype(np.float32), rng.integers(0, 3, 8)


def _train_step(model, opt, x, y):
    """zero_grad, forward, loss, backward, step: (the loss, grad_in, the gradients)."""
    from fastnn import device as fd
    from fastnn import nn
    loss_fn = nn.CrossEntropyLoss()
    opt.zero_grad()
    logits = model(x)
    assert type(logits) is np.ndarray, type(logits)  # NumPy in, NumPy out
    loss = loss_fn(logits, y)
    grad_in = model.backward(loss_fn.backward())
    grads = [fd.host_copy(p.grad) for p in model.parameters()]
    opt.step()
    return loss, grad_in, grads


def _assert_states_close(got, expected, what):
    assert sorted(got) == sorted(expected), (what, sorted(got), sorted(expected))
    for key in expected:
        assert isinstance(got[key], np.ndarray), (what, key, type(got[key]))
        np.testing.assert_allclose(got[key], expected[key], atol=ATOL, rtol=0,
                                   err_msg=f"{what} {key}")


_TRAINED = {}


def _trained(opt_name):
    """(host, gpu, host optimizer, gpu optimizer) after two steps of opt_name, the GPU's
    losses, gradients and grad_in checked against the host's at every step."""
    import fastnn
    from fastnn import device as fd
    if opt_name not in _TRAINED:
        host, gpu = _twins()
        opts = [getattr(fastnn.optim, opt_name)(m.parameters(), **OPTIMIZERS[opt_name])
                for m in (host, gpu)]
        for step in range(2):
            x, y = _batch(step)
            ref_loss, ref_grad_in, ref_grads = _train_step(host, opts[0], x, y)
            loss, grad_in, grads = _train_step(gpu, opts[1], x, y)
            assert isinstance(loss, float) and type(loss.item()) is float, type(loss)
            assert abs(loss - ref_loss) < ATOL, (step, loss, ref_loss)
            assert isinstance(grad_in, np.ndarray), type(grad_in)  # NumPy in, NumPy out
            np.testing.assert_allclose(grad_in, ref_grad_in, atol=ATOL, rtol=0)
            for i, (g, ref) in enumerate(zip(grads, ref_grads)):
                np.testing.assert_allclose(g, ref, atol=ATOL, rtol=0,
                                           err_msg=f"step {step} grad {i}")
        assert all(fd.is_device_array(p.data) and fd.is_device_array(p.grad)
                   for p in gpu.parameters())
        _TRAINED[opt_name] = (host, gpu, *opts)
    return _TRAINED[opt_name]


def check_sgd_momentum_matches_numba():
    host, gpu, _, _ = _trained("SGD")
    _assert_states_close(gpu.state_dict(), host.state_dict(), "SGD")


def check_adam_matches_numba():
    host, gpu, _, _ = _trained("Adam")
    _assert_states_close(gpu.state_dict(), host.state_dict(), "Adam")


def check_rmsprop_matches_numba():
    host, gpu, _, _ = _trained("RMSprop")
    _assert_states_close(gpu.state_dict(), host.state_dict(), "RMSprop")


def _device_buffers(model):
    """The buffers a GPU model keeps on the device: all but the norm layers' batch counts
    (0-d int64 host arrays on any device)."""
    return [b for name, b in model.named_buffers() if not name.endswith("num_batches_tracked")]


def check_batchnorm_stats_stay_on_the_device_and_come_back_right():
    from fastnn import device as fd
    host, gpu, _, _ = _trained("SGD")
    bn, ref = gpu[1], host[1]
    assert fd.is_device_array(bn.running_mean) and fd.is_device_array(bn.running_var)
    # the running statistics on the device; the batch count stays a host array (every
    # momentum=None step divides by it)
    assert all(fd.is_device_array(b) for b in _device_buffers(gpu))
    assert not fd.is_device_array(gpu.get_buffer("1.num_batches_tracked"))
    np.testing.assert_allclose(fd.to_host(bn.running_mean), ref.running_mean, atol=ATOL)
    np.testing.assert_allclose(fd.to_host(bn.running_var), ref.running_var, atol=ATOL)
    assert int(fd.to_host(bn.num_batches_tracked)) == int(ref.num_batches_tracked) == 2


def check_eval_mode_device_output_and_dropout_identity():
    """In eval mode (running statistics) a device array in gives a device array out, the
    host's values; an eval Dropout(0.5) on the GPU is the identity (NumPy in and out)."""
    from numba import cuda

    from fastnn import device as fd
    from fastnn import nn
    host, gpu, _, _ = _trained("SGD")
    host.eval()
    gpu.eval()
    x, _ = _batch(5)
    y = gpu(cuda.to_device(x))
    assert fd.is_device_array(y) and y.dtype == np.float32, (type(y), y.dtype)
    np.testing.assert_allclose(y.copy_to_host(), host(x), atol=ATOL, rtol=0)
    host.train()
    gpu.train()
    dropout = nn.Dropout(0.5).to("cuda").eval()
    out = dropout(x)
    assert type(out) is np.ndarray, type(out)
    np.testing.assert_array_equal(out, x)


def check_state_dict_is_numpy_copies():
    from fastnn import device as fd
    _, gpu, _, _ = _trained("SGD")
    state = gpu.state_dict()
    assert all(type(v) is np.ndarray for v in state.values()), \
        {k: type(v).__name__ for k, v in state.items()}
    before = fd.to_host(gpu[0].weight.data).copy()
    state["0.weight"][...] = 7.0  # the caller's copy
    np.testing.assert_array_equal(fd.to_host(gpu[0].weight.data), before)


def check_to_cuda_then_cpu_round_trips():
    """Every parameter, gradient and buffer of the trained cuda model comes back as a
    NumPy array of the same values, and the model then steps on the host as its host
    twin does (runs last of the RMSprop checks: it moves that model)."""
    import fastnn
    host, gpu, _, _ = _trained("RMSprop")
    grads = [p.grad.copy_to_host() for p in gpu.parameters()]
    state = gpu.state_dict()
    assert gpu.to("cpu") is gpu and gpu.device == "cpu"
    assert all(type(p.data) is np.ndarray and type(p.grad) is np.ndarray
               for p in gpu.parameters())
    assert all(type(b) is np.ndarray for b in gpu.buffers())
    for g, p in zip(grads, gpu.parameters()):
        np.testing.assert_array_equal(p.grad, g)
    for key, value in gpu.state_dict().items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)
    opts = [fastnn.optim.SGD(m.parameters(), lr=0.1) for m in (host, gpu)]
    for opt in opts:
        opt.step()
    _assert_states_close(gpu.state_dict(), host.state_dict(), "after to('cpu')")


def check_optimizer_state_dict_round_trip_on_cuda():
    """A cuda optimizer's state_dict is NumPy; loaded into a new optimizer over the cuda
    model, the next step is the host's."""
    import fastnn
    host, gpu, host_opt, gpu_opt = _trained("Adam")
    state = gpu_opt.state_dict()
    ref = host_opt.state_dict()
    for key, entry in ref["state"].items():
        for name, value in entry.items():
            got = state["state"][key][name]
            if name == "step" or isinstance(value, (int, float)):
                assert np.asarray(got) == np.asarray(value), (key, name, got, value)
            else:
                assert type(got) is np.ndarray, (key, name, type(got))
                np.testing.assert_allclose(got, value, atol=ATOL, err_msg=f"{key} {name}")
    fresh = fastnn.optim.Adam(gpu.parameters(), **OPTIMIZERS["Adam"])
    fresh.load_state_dict(state)
    x, y = _batch(2)
    _train_step(host, host_opt, x, y)
    _train_step(gpu, fresh, x, y)
    _assert_states_close(gpu.state_dict(), host.state_dict(), "Adam after reload")


def check_save_and_load_a_cuda_model():
    """fastnn.save of a cuda model (and optimizer); load into a cuda model keeps it on the
    device with the saved values; load without a model gives a host model."""
    import fastnn
    from fastnn import device as fd
    _, gpu, _, gpu_opt = _trained("SGD")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "gpu.npz")
        fastnn.save(gpu, path, optimizer=gpu_opt)
        target = _build().to("cuda")
        target_opt = fastnn.optim.SGD(target.parameters(), **OPTIMIZERS["SGD"])
        fastnn.load(path, model=target, optimizer=target_opt)
        rebuilt = fastnn.load(path)
    assert target.device == "cuda"
    assert all(fd.is_device_array(p.data) for p in target.parameters())
    assert all(fd.is_device_array(b) for b in _device_buffers(target))
    _assert_states_close(target.state_dict(), gpu.state_dict(), "loaded into cuda")
    assert rebuilt.device == "cpu"
    _assert_states_close(rebuilt.state_dict(), gpu.state_dict(), "loaded on the host")
    for key, entry in gpu_opt.state_dict()["state"].items():
        np.testing.assert_array_equal(target_opt.state_dict()["state"][key]["momentum_buffer"],
                                      entry["momentum_buffer"])


def check_errors_name_the_device_and_dtype():
    from numba import cuda
    host, gpu = _twins()
    x, _ = _batch(0)
    try:
        host(cuda.to_device(x))
    except ValueError as e:
        assert "cuda device array but the module is on the cpu" in str(e), str(e)
        assert ".to('cuda')" in str(e), str(e)
    else:
        raise AssertionError("a device array into a host model did not raise")
    for given in (x.astype(np.float64), cuda.to_device(x.astype(np.float64))):
        try:
            gpu(given)
        except TypeError as e:
            assert "float64" in str(e) and "float32" in str(e), str(e)
        else:
            raise AssertionError("float64 input into a float32 cuda model did not raise")


def check_backend_info_reports_the_simulator():
    import fastnn
    info = fastnn.backend_info("cuda")
    assert info["name"] == "cuda" and info["simulator"] is True, info
    assert info["gemm"] == "numba" and info["reuses"] == {}, info
    with fastnn.use_backend("cuda"):
        assert fastnn.backend_info()["name"] == "cuda"
    assert fastnn.backend_info()["name"] == "numba"


def check_assigning_host_data_keeps_data_and_grad_on_one_device():
    """``p.data = W`` (a NumPy W) on a cuda model: .grad follows .data, as the Parameter
    docstring promises for dtype and shape, so an optimizer can still be built. Fixed:
    .grad stayed on the GPU ('.data on cpu but .grad on cuda' from the optimizer)."""
    import fastnn
    from fastnn import device as fd
    _, gpu = _twins()
    gpu[0].weight.data = np.ones((5, 4), np.float32)
    weight = gpu[0].weight
    assert fd.device_of(weight.data) == fd.device_of(weight.grad), \
        (type(weight.data).__name__, type(weight.grad).__name__)
    fastnn.optim.SGD(gpu.parameters(), lr=0.1)


def check_deepcopy_of_a_cuda_model_stays_on_the_device():
    """``best = copy.deepcopy(model)`` (PyTorch's idiom for keeping the best weights) and a
    pickle round trip: the copy is on 'cuda' and so are its parameters, gradients and
    buffers, with the values (gradients none yet, as PyTorch's; Parameter and Module carry
    host copies of their device arrays: fastnn/nn/module.py's _picklable). Fixed: the
    deepcopy's arrays came back as NumPy arrays under a module saying 'cuda', and pickle
    recursed without end."""
    import copy
    import pickle

    from fastnn import device as fd
    _, gpu, _, _ = _trained("SGD")
    for how, clone in (("deepcopy", copy.deepcopy(gpu)),
                       ("pickle", pickle.loads(pickle.dumps(gpu)))):
        assert clone.device == "cuda", how
        # no gradient yet, as PyTorch's copy (grad None): zeros that step() skips
        assert all(p._no_grad_yet() for p in clone.parameters()), how
        _assert_states_close(clone.state_dict(), gpu.state_dict(), how)
        arrays = [p.data for p in clone.parameters()] + [p.grad for p in clone.parameters()]
        arrays += _device_buffers(clone)
        assert all(fd.is_device_array(a) for a in arrays), \
            (how, [type(a).__name__ for a in arrays])
        for mine, theirs in zip(clone.parameters(), gpu.parameters()):
            np.testing.assert_array_equal(fd.to_host(mine.grad), 0, err_msg=how)
            assert mine.data is not theirs.data, how


def check_gpu_zero_grad_skips_an_unused_head_without_extra_fills():
    """On the GPU zero_grad leaves lazy zeros, as on the CPU: it launches no fill (an
    array held from .grad keeps its values, as a PyTorch gradient does), a backward
    fills only the gradients its layers add into (LayerNorm's weight and bias; Linear
    overwrites its own), each once, and step() fills none; the unused head is still
    PyTorch's None to step() (weight decay does not move it)."""
    from fastnn import device as fd
    from fastnn import nn, optim
    fills = []
    fill = fd.Cuda.fill_zero

    def counting(a):
        fills.append(a.shape)
        fill(a)

    used = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4)).to("cuda")
    unused = nn.Linear(3, 2).to("cuda")
    kept = fd.to_host(unused.weight.data).copy()
    opt = optim.SGD(list(used.parameters()) + list(unused.parameters()), lr=0.1,
                    weight_decay=0.5)
    x = fd.namespace("cuda").put(np.ones((2, 3), np.float32))
    fd.Cuda.fill_zero = staticmethod(counting)
    try:
        for _ in range(2):
            del fills[:]
            opt.zero_grad()
            assert fills == [], fills
            used(x)
            used.backward(fd.namespace("cuda").put(np.ones((2, 4), np.float32)))
            assert fills == [(4,), (4,)], fills
            opt.step()
            assert fills == [(4,), (4,)], fills
    finally:
        fd.Cuda.fill_zero = staticmethod(fill)
    np.testing.assert_array_equal(fd.to_host(unused.weight.data), kept)


# -------------------------------------------------------------------- pytest side

CHECKS = sorted(name for name in dir() if name.startswith("check_"))


@pytest.fixture(scope="module")
def results(request):
    """The run's {check name: None or its error}: conftest.py starts the run (in the
    background, tests/simulator_runs.py's USER_SIM_ENV) when collection ends and moves
    these tests to the end of the session."""
    return read_check_run(request, "test_cuda_user_check")


@pytest.mark.parametrize("name", CHECKS)
def test_cuda_user_check(results, name):
    assert name in results, sorted(results)
    assert results[name] is None, results[name]


if __name__ == "__main__":
    import sys
    print(json.dumps(run_checks(globals(), sys.argv[1:])))
