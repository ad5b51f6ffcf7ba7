"""The layer API on the GPU (``model.to('cuda')``) under Numba's CUDA simulator: every
layer class with cuda kernels, the optimizers and schedulers on device parameters, moves,
checkpoints and the errors of mixed devices and dtypes, against the same model on the
numpy backend (float64 to rounding, float32 loosely) and PyTorch (CPU) where it has the
layer.

As tests/test_probe_cuda_user.py: every check (``check_*``) runs in ONE subprocess
(NUMBA_ENABLE_CUDASIM must be set before numba is imported; ``python
tests/test_probe_cuda_layers.py`` prints {check name: None or its error} as JSON), which
conftest.py starts in the background when collection ends with the launch sizes of
simulator_runs.USER_SIM_ENV; each pytest test reads its check's entry at the end of the
session. Shapes are tiny: the simulator runs each GPU thread as a Python thread.
"""
import json
import os
import tempfile

import numpy as np
import pytest

from simulator_runs import read_check_run, run_checks

TIGHT = dict(rtol=1e-9, atol=1e-11)     # float64, the GPU's sums against the host's
LOOSE = dict(rtol=2e-4, atol=2e-5)      # float32
# float64 after training steps of the CNN: a gradient summed with cancellation (BatchNorm2d's
# bias behind BatchNorm1d) keeps ~1e-8 of its rounding through Adam's normalised steps
TRAINED = dict(rtol=1e-7, atol=1e-10)


# ------------------------------------------------------------ run in the subprocess

def _host(a):
    from fastnn import device as fd
    return None if a is None else fd.host_copy(a)


def _layer_cases():
    """[(id, build() -> fastnn module, input shape, torch build() or None)]: every layer
    class whose forward and backward run cuda kernels on the GPU (README "On a GPU"), and
    the ones that go through the host there."""
    import torch

    from fastnn import nn
    tnn = torch.nn

    def both(name, *args, **kwargs):
        return (lambda: getattr(nn, name)(*args, **kwargs),
                lambda: getattr(tnn, name)(*args, **kwargs))

    cases = [
        ("Linear", (3, 4), *both("Linear", 4, 3)),
        ("Linear-nobias-3d", (2, 3, 4), *both("Linear", 4, 2, bias=False)),
        ("Conv2d", (2, 2, 5, 5), *both("Conv2d", 2, 3, 3, padding=1)),
        ("Conv2d-stride2-rect", (2, 2, 5, 6),
         *both("Conv2d", 2, 2, (3, 2), stride=2, padding=(1, 0))),
        ("Conv2d-dilated", (1, 2, 6, 6), *both("Conv2d", 2, 2, 3, dilation=2, padding=1)),
        ("Conv2d-depthwise", (2, 2, 4, 4), *both("Conv2d", 2, 4, 3, padding=1, groups=2)),
        ("Conv2d-groups", (1, 4, 4, 4), *both("Conv2d", 4, 2, 3, groups=2)),
        ("Conv1d", (2, 2, 7), *both("Conv1d", 2, 3, 3, padding=1, stride=2)),
        ("BatchNorm1d", (4, 3), *both("BatchNorm1d", 3)),
        ("BatchNorm1d-3d", (3, 2, 4), *both("BatchNorm1d", 2, momentum=None)),
        ("BatchNorm2d", (2, 3, 3, 3), *both("BatchNorm2d", 3, eps=1e-3, momentum=0.3)),
        ("LayerNorm", (3, 4), *both("LayerNorm", 4)),
        ("LayerNorm-2d", (2, 3, 4), *both("LayerNorm", (3, 4))),
        ("LayerNorm-nobias", (3, 5), *both("LayerNorm", 5, bias=False)),
        ("MaxPool2d", (2, 2, 4, 4), *both("MaxPool2d", 2)),
        ("MaxPool2d-pad", (1, 2, 5, 5), *both("MaxPool2d", 3, stride=2, padding=1)),
        ("AvgPool2d", (2, 2, 4, 4), *both("AvgPool2d", 2)),
        ("AvgPool2d-pad", (1, 2, 5, 5), *both("AvgPool2d", 3, stride=2, padding=1,
                                              count_include_pad=False)),
        ("MaxPool1d", (2, 2, 6), *both("MaxPool1d", 2)),
        ("AvgPool1d", (2, 2, 6), *both("AvgPool1d", 3, stride=2, padding=1)),
        ("ReLU", (3, 5), *both("ReLU")),
        ("LeakyReLU", (3, 5), *both("LeakyReLU", 0.2)),
        ("Sigmoid", (3, 5), *both("Sigmoid")),
        ("Tanh", (3, 5), *both("Tanh")),
        ("GELU", (3, 5), *both("GELU")),
        ("GELU-tanh", (3, 5), *both("GELU", approximate="tanh")),
        ("SiLU", (3, 5), *both("SiLU")),
        ("Mish", (3, 5), *both("Mish")),
        ("ELU", (3, 5), *both("ELU", 0.5)),
        # (torch: 1/alpha in float32 in its float64 gradient)
        ("CELU", (3, 5), *both("CELU", 0.5)),
        ("SELU", (3, 5), *both("SELU")),
        ("Softplus", (3, 5), *both("Softplus", beta=2.0, threshold=1.0)),
        ("Softsign", (3, 5), *both("Softsign")),
        ("Hardtanh", (3, 5), *both("Hardtanh", -0.5, 0.5)),
        ("ReLU6", (3, 5), *both("ReLU6")),
        ("Hardswish", (3, 5), *both("Hardswish")),
        ("Softmax", (3, 5), *both("Softmax", dim=-1)),
        ("Softmax-dim1", (2, 3, 2, 2), *both("Softmax", dim=1)),
        ("LogSoftmax", (3, 5), *both("LogSoftmax", dim=1)),
        ("Flatten", (2, 2, 3), *both("Flatten")),
        ("Identity", (2, 3), *both("Identity")),
        ("Dropout-p0", (3, 4), *both("Dropout", 0.0)),
        ("Sine", (3, 5), lambda: nn.Sine(2.0), None),
    ]
    return [(name, build, shape, twin) for name, shape, build, twin in cases]


def _host_path_cases():
    """Layers README lists as NumPy on the host, whose arrays a GPU model sends through
    the host (and options of the cuda layers that go there): the same table's form."""
    import torch

    from fastnn import nn
    tnn = torch.nn

    def both(name, *args, **kwargs):
        return (lambda: getattr(nn, name)(*args, **kwargs),
                lambda: getattr(tnn, name)(*args, **kwargs))

    cases = [
        ("GroupNorm", (2, 4, 3), *both("GroupNorm", 2, 4)),
        ("InstanceNorm2d", (2, 3, 3, 3), *both("InstanceNorm2d", 3, affine=True,
                                               track_running_stats=True)),
        ("PReLU", (3, 4), *both("PReLU", 4)),
        ("ConvTranspose2d", (1, 2, 3, 3), *both("ConvTranspose2d", 2, 3, 3, stride=2, padding=1,
                                                output_padding=1)),
        ("AdaptiveAvgPool2d", (1, 2, 5, 5), *both("AdaptiveAvgPool2d", 2)),
        ("ReflectionPad2d", (1, 2, 3, 3), *both("ReflectionPad2d", 1)),
        ("Conv2d-reflect", (1, 2, 4, 4),
         *both("Conv2d", 2, 2, 3, padding=1, padding_mode="reflect")),
        ("Conv2d-same", (1, 2, 4, 4), *both("Conv2d", 2, 2, 3, padding="same")),
        ("MaxPool2d-ceil", (1, 2, 5, 5), *both("MaxPool2d", 2, ceil_mode=True)),
        ("Upsample-bilinear", (1, 2, 2, 2), *both("Upsample", scale_factor=2, mode="bilinear")),
        ("RMSNorm", (3, 4), *both("RMSNorm", 4)),
        ("GLU", (3, 4), *both("GLU")),
        ("BatchNorm3d", (2, 2, 2, 2, 2), *both("BatchNorm3d", 2)),
        ("Conv3d", (1, 2, 3, 3, 3), *both("Conv3d", 2, 2, 2)),
    ]
    return [(name, build, shape, twin) for name, shape, build, twin in cases]


def _run(model, x, g):
    """(output, grad_in, [parameter gradients]) as host arrays."""
    y = model(x)
    grad_in = model.backward(g)
    return y, grad_in, [_host(p.grad) for p in model.parameters()]


def _torch_run(twin, x, g):
    import torch
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    y = twin(t)
    y.backward(torch.from_numpy(g.copy()))
    return y.detach().numpy(), t.grad.numpy(), [p.grad.numpy() for p in twin.parameters()]


def _layer_check(name, build, shape, twin, dtype, tol, training):
    """The layer on 'cuda' (device arrays in) against its host twin on the numpy backend
    and PyTorch's: output, input gradient, parameter gradients, buffers."""
    import torch
    from numba import cuda

    import fastnn
    from fastnn import device as fd
    fastnn.manual_seed(1)
    host, gpu = build().to(dtype), build().to(dtype)
    gpu.load_state_dict(host.state_dict())
    gpu.to("cuda")
    host.train(training)
    gpu.train(training)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    with fastnn.use_backend("numpy"):
        y_ref = host(x)
    g = rng.standard_normal(y_ref.shape).astype(dtype)
    with fastnn.use_backend("numpy"):
        grad_ref = host.backward(g)
    ref_grads = [_host(p.grad) for p in host.parameters()]
    y = gpu(cuda.to_device(x))
    assert fd.is_device_array(y), (name, type(y))
    grad_in = gpu.backward(cuda.to_device(g))
    assert fd.is_device_array(grad_in), (name, type(grad_in))
    where = f"{name} {np.dtype(dtype).name} {'train' if training else 'eval'}"
    np.testing.assert_allclose(_host(y), y_ref, **tol, err_msg=f"{where} output")
    np.testing.assert_allclose(_host(grad_in), grad_ref, **tol, err_msg=f"{where} grad_in")
    for i, (p, ref) in enumerate(zip(gpu.parameters(), ref_grads)):
        assert fd.is_device_array(p.grad) and fd.is_device_array(p.data), (where, i)
        np.testing.assert_allclose(_host(p.grad), ref, **tol, err_msg=f"{where} grad {i}")
    got, ref = gpu.state_dict(), host.state_dict()
    assert sorted(got) == sorted(ref), (where, sorted(got), sorted(ref))
    for key in ref:
        assert type(got[key]) is np.ndarray, (where, key, type(got[key]))
        np.testing.assert_allclose(got[key], ref[key], **tol, err_msg=f"{where} {key}")
    if twin is None:
        return
    t = twin().to(torch.float64 if dtype == np.float64 else torch.float32)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in _initial_state(build, dtype).items()})
    t.train(training)
    t_out, t_grad_in, t_grads = _torch_run(t, x, g)
    np.testing.assert_allclose(_host(y), t_out, **tol, err_msg=f"{where} output vs torch")
    np.testing.assert_allclose(_host(grad_in), t_grad_in, **tol,
                               err_msg=f"{where} grad_in vs torch")
    for i, (p, ref) in enumerate(zip(gpu.parameters(), t_grads)):
        np.testing.assert_allclose(_host(p.grad), ref, **tol,
                                   err_msg=f"{where} grad {i} vs torch")
    for key, value in t.state_dict().items():
        np.testing.assert_allclose(np.asarray(got[key]), value.numpy(), **tol,
                                   err_msg=f"{where} {key} vs torch")


def _initial_state(build, dtype):
    import fastnn
    fastnn.manual_seed(1)
    return {k: np.array(v) for k, v in build().to(dtype).state_dict().items()}


# the layers whose eval mode computes something else (the others: the same kernels)
EVAL_DIFFERS = ("BatchNorm", "InstanceNorm", "Dropout")


def _layer_checks(dtype, tol, names=None, cases=_layer_cases):
    failures = []
    for name, build, shape, twin in cases():
        if names is not None and name not in names:
            continue
        for training in (True, False) if name.startswith(EVAL_DIFFERS) else (True,):
            try:
                _layer_check(name, build, shape, twin, dtype, tol, training)
            except Exception as e:  # noqa: BLE001 - all of them reported at once
                failures.append(f"{name} {'train' if training else 'eval'}: "
                                f"{type(e).__name__}: {str(e)[:600]}")
    assert not failures, "\n".join(failures)


def check_layers_float64_match_numpy_and_torch():
    _layer_checks(np.float64, TIGHT)


def check_layers_float32_match_numpy_and_torch():
    _layer_checks(np.float32, LOOSE, names=("Linear-nobias-3d", "Conv2d-stride2-rect",
                                            "Conv2d-depthwise", "BatchNorm2d", "LayerNorm",
                                            "MaxPool2d-pad", "AvgPool2d-pad", "GELU",
                                            "Softmax-dim1", "LogSoftmax", "SELU", "Dropout-p0"))



def check_host_path_layers_on_a_gpu_model_match_numpy_and_torch():
    """Device arrays in and out of the layers that compute on the host, float64."""
    _layer_checks(np.float64, TIGHT, cases=_host_path_cases)


def check_lazy_layers_and_to_forms_on_the_gpu():
    """Lazy layers moved (and converted) before their dry run make their parameters on
    the GPU in that dtype; to(device, dtype), to(array) and to(device array) take the
    array's device and dtype, as PyTorch's to(tensor)."""
    import fastnn
    from fastnn import device as fd
    from fastnn import nn
    gpu = nn.Sequential(nn.LazyLinear(3), nn.LazyBatchNorm1d()).to("cuda").double()
    host = nn.Sequential(nn.LazyLinear(3), nn.LazyBatchNorm1d()).double()
    x, _ = _batch(0, (4, 5))
    fastnn.manual_seed(3)
    y = gpu(fd.to_device(x))
    fastnn.manual_seed(3)
    with fastnn.use_backend("numpy"):
        ref = host(x)
    assert all(fd.is_device_array(p.data) and p.data.dtype == np.float64
               for p in gpu.parameters()), [type(p.data) for p in gpu.parameters()]
    np.testing.assert_allclose(_host(y), ref, **TIGHT)
    model = _net()
    assert model.to("cuda", np.float64) is model
    assert all(fd.is_device_array(p.data) and p.data.dtype == np.float64
               for p in model.parameters())
    model.to(np.ones(2, np.float32))
    assert model.device == "cpu" and model[0].weight.dtype == np.float32
    model.to(fd.to_device(np.ones(2)))
    assert model.device == "cuda" and model[0].weight.dtype == np.float64


def _net():
    """A small net with parameters and BatchNorm buffers (each forward and backward of a
    layer costs the simulator 0.1-0.5 s: kept to a few layers)."""
    from fastnn import nn
    return nn.Sequential(nn.Linear(4, 3, bias=False), nn.BatchNorm1d(3), nn.Tanh(),
                         nn.Linear(3, 3))


def _params():
    """Parameters of every shape an optimizer sees (2-D weight, biases, BatchNorm's
    weight and bias), with its buffers, for the optimizer checks: their gradients are set
    by hand (no forward on the simulator)."""
    from fastnn import nn
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def _set_grads(model, step):
    """The same gradients of a step for every model of _params() (on its device)."""
    from fastnn import device as fd
    rng = np.random.default_rng(100 + step)
    for p in model.parameters():
        g = rng.standard_normal(p.shape).astype(p.dtype)
        p.grad = fd.namespace(p.device).put(g)


def _hand_step(model, opt, step, sched=None):
    """zero_grad, gradients by hand, step (and sched.step())."""
    opt.zero_grad()
    _set_grads(model, step)
    opt.step()
    if sched is not None:
        sched.step()


def _twins(build, dtype=np.float64):
    """(host model, model moved to 'cuda') with identical parameters of dtype."""
    import fastnn
    fastnn.manual_seed(0)
    host, gpu = build().to(dtype), build().to(dtype)
    gpu.load_state_dict(host.state_dict())
    return host, gpu.to("cuda")


def _batch(step, shape, dtype=np.float64):
    rng = np.random.default_rng(10 + step)
    return rng.standard_normal(shape).astype(dtype), rng.integers(0, 3, shape[0])


def _step(model, opt, x, y, backend=None, zero=True, sched=None):
    """One training step on model (its backend numpy on the host); the loss."""
    import contextlib

    import fastnn
    from fastnn import nn
    loss_fn = nn.CrossEntropyLoss()
    with fastnn.use_backend(backend) if backend else contextlib.nullcontext():
        if zero:
            opt.zero_grad()
        loss = loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        opt.step()
        if sched is not None:
            sched.step()
    return float(loss)


def _assert_models_close(gpu, host, tol, what):
    got, ref = gpu.state_dict(), host.state_dict()
    assert sorted(got) == sorted(ref), (what, sorted(got), sorted(ref))
    for key in ref:
        assert type(got[key]) is np.ndarray, (what, key, type(got[key]))
        np.testing.assert_allclose(got[key], ref[key], **tol, err_msg=f"{what} {key}")


def _assert_opt_states_close(gpu_opt, host_opt, tol, what):
    got, ref = gpu_opt.state_dict(), host_opt.state_dict()
    assert sorted(got["state"]) == sorted(ref["state"]), what
    for key, entry in ref["state"].items():
        assert sorted(got["state"][key]) == sorted(entry), (what, key)
        for name, value in entry.items():
            mine = got["state"][key][name]
            if isinstance(value, np.ndarray) and value.ndim:
                assert type(mine) is np.ndarray, (what, key, name, type(mine))
            np.testing.assert_allclose(np.asarray(mine, np.float64), np.asarray(value, np.float64),
                                       **tol, err_msg=f"{what} state {key} {name}")
    for mine, theirs in zip(got["param_groups"], ref["param_groups"]):
        assert mine["lr"] == theirs["lr"], (what, mine["lr"], theirs["lr"])


def check_batchnorm_running_statistics_and_count_after_steps():
    """Three training forwards of BatchNorm2d and BatchNorm1d (momentum 0.1 and None): running
    statistics on the device equal the numpy backend's and PyTorch's, num_batches_tracked
    counts 3 (a host 0-d int64), and eval uses them."""
    import torch

    import fastnn
    from fastnn import device as fd
    from fastnn import nn
    for momentum in (0.1, None):
        def build():
            return nn.Sequential(nn.BatchNorm2d(2, momentum=momentum), nn.Flatten(),
                                 nn.Linear(8, 4), nn.BatchNorm1d(4, momentum=momentum))
        host, gpu = _twins(build)
        twin = torch.nn.Sequential(torch.nn.BatchNorm2d(2, momentum=momentum), torch.nn.Flatten(),
                                   torch.nn.Linear(8, 4),
                                   torch.nn.BatchNorm1d(4, momentum=momentum)).double()
        twin.load_state_dict({k: torch.from_numpy(v) for k, v in host.state_dict().items()})
        for step in range(3):
            x, _ = _batch(step, (3, 2, 2, 2))
            with fastnn.use_backend("numpy"):
                host(x)
            gpu(fd.to_device(x))
            twin(torch.from_numpy(x))
        for i in (0, 3):
            bn = gpu[i]
            assert fd.is_device_array(bn.running_mean) and fd.is_device_array(bn.running_var)
            count = gpu.get_buffer(f"{i}.num_batches_tracked")
            assert type(count) is np.ndarray and count.dtype == np.int64 and count.shape == (), \
                (type(count), getattr(count, "dtype", None))
            assert int(count) == 3, int(count)
        _assert_models_close(gpu, host, TIGHT, f"momentum={momentum}")
        state = gpu.state_dict()
        for key, value in twin.state_dict().items():
            np.testing.assert_allclose(state[key], value.numpy(), **TIGHT,
                                       err_msg=f"momentum={momentum} {key} vs torch")
        gpu.eval(), host.eval(), twin.eval()
        x, _ = _batch(7, (2, 2, 2, 2))
        with fastnn.use_backend("numpy"):
            ref = host(x)
        np.testing.assert_allclose(gpu(x), ref, **TIGHT)
        np.testing.assert_allclose(gpu(x), twin(torch.from_numpy(x)).detach().numpy(), **TIGHT)
        assert int(gpu[0].num_batches_tracked) == 3  # eval does not count


def check_dropout_masks_on_the_gpu():
    """README: dropout on the GPU draws its mask from the cuda kernel (a hash of a seed
    that fastnn's generator draws): values 0 or 1 / (1 - p), the backward applies the
    same mask, fastnn.manual_seed repeats it, each call draws a new one, eval and p = 0
    are the identity, p = 1 zeros everything, on device and host inputs alike."""
    import fastnn
    from fastnn import device as fd
    from fastnn import nn
    x = np.ones((6, 16), np.float32)
    layer = nn.Dropout(0.25).to("cuda")
    fastnn.manual_seed(5)
    y1 = layer(fd.to_device(x))
    assert fd.is_device_array(y1)
    y1 = _host(y1)
    scale = np.float32(1 / 0.75)
    assert set(np.unique(y1)) <= {0.0, scale}, np.unique(y1)
    assert 0.05 < np.mean(y1 == 0) < 0.5, np.mean(y1 == 0)
    g = np.arange(96, dtype=np.float32).reshape(6, 16)
    np.testing.assert_array_equal(_host(layer.backward(fd.to_device(g))), g * (y1 != 0) * scale)
    y2 = layer(x)
    assert type(y2) is np.ndarray
    assert not np.array_equal(y1, y2), "the second call drew the same mask"
    fastnn.manual_seed(5)
    np.testing.assert_array_equal(_host(layer(fd.to_device(x))), y1)
    layer.eval()
    np.testing.assert_array_equal(_host(layer(fd.to_device(x))), x)
    all_dropped = nn.Dropout(1.0).to("cuda")
    np.testing.assert_array_equal(_host(all_dropped(fd.to_device(x))), 0 * x)
    np.testing.assert_array_equal(_host(all_dropped.backward(fd.to_device(g))), 0 * g)
    # float64 with a scale that float32 would round
    layer64 = nn.Dropout(0.3).to("cuda")
    y = _host(layer64(fd.to_device(np.ones((4, 8)))))
    assert y.dtype == np.float64 and set(np.unique(y)) <= {0.0, 1 / 0.7}, np.unique(y)


def check_dropout_inside_a_gpu_model_is_torchs_with_that_mask():
    """Linear, ReLU, Dropout(0.5), Linear on the GPU: output, input and parameter
    gradients are PyTorch's with the layer's mask (a device array) in place of its
    dropout, float64."""
    import torch

    from fastnn import device as fd
    from fastnn import nn
    host, gpu = _twins(lambda: nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Dropout(0.5),
                                             nn.Linear(6, 3)))
    x, _ = _batch(0, (5, 4))
    out = _host(gpu(fd.to_device(x)))
    assert fd.is_device_array(gpu[2]._mask)
    mask = _host(gpu[2]._mask)
    assert set(np.unique(mask)) == {0.0, 2.0}, np.unique(mask)
    twin = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Identity(),
                               torch.nn.Linear(6, 3)).double()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in host.state_dict().items()})
    tx = torch.from_numpy(x).requires_grad_(True)
    expected = twin[3](twin[1](twin[0](tx)) * torch.from_numpy(mask))
    np.testing.assert_allclose(out, expected.detach().numpy(), **TIGHT)
    g = np.random.default_rng(0).standard_normal(out.shape)
    grad_in = _host(gpu.backward(fd.to_device(g)))
    expected.backward(torch.from_numpy(g))
    np.testing.assert_allclose(grad_in, tx.grad.numpy(), **TIGHT)
    for p, q in zip(gpu.parameters(), twin.parameters()):
        np.testing.assert_allclose(_host(p.grad), q.grad.numpy(), **TIGHT)


def check_channel_dropout_on_the_gpu():
    from fastnn import device as fd
    from fastnn import nn
    for cls, shape in ((nn.Dropout1d, (3, 4, 5)), (nn.Dropout2d, (3, 4, 2, 2))):
        layer = cls(0.5).to("cuda")
        x = np.ones(shape)
        y = _host(layer(fd.to_device(x)))
        first = y[(slice(None), slice(None)) + (slice(0, 1),) * (len(shape) - 2)]
        assert np.all(y == first) and set(np.unique(y)) <= {0.0, 2.0}, (cls.__name__, y)
        np.testing.assert_array_equal(_host(layer.backward(fd.to_device(x))), y)


OPTIMIZER_CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-2)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2)),
    ("SGD", dict(lr=0.1, momentum=0.5, maximize=True)),
    ("Adam", dict(lr=1e-2, weight_decay=1e-2)),
    ("Adam", dict(lr=1e-2, amsgrad=True)),
    ("Adam", dict(lr=1e-2, maximize=True)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
    ("RMSprop", dict(lr=1e-2, momentum=0.5, centered=True, eps=1e-4, weight_decay=1e-2)),
    ("RMSprop", dict(lr=1e-2, alpha=0.9)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=1e-2, initial_accumulator_value=0.1)),
    ("Adamax", dict(lr=1e-2, weight_decay=1e-2)),
    ("NAdam", dict(lr=1e-2, weight_decay=1e-2)),
    ("NAdam", dict(lr=1e-2, decoupled_weight_decay=True, weight_decay=1e-2)),
    ("RAdam", dict(lr=1e-2)),
    ("Adadelta", dict(lr=0.5, weight_decay=1e-2)),
    ("Rprop", dict(lr=1e-2)),
    ("ASGD", dict(lr=1e-2, t0=0, weight_decay=1e-3)),
    ("Adafactor", dict(lr=1e-2)),
]


def check_optimizers_on_device_parameters_match_numpy():
    """Four steps of each optimizer (options included) over GPU parameters against the
    numpy backend's over host ones, the same gradients, float64: parameters and
    optimizer state."""
    import fastnn
    from fastnn import device as fd
    failures = []
    for name, kwargs in OPTIMIZER_CASES:
        try:
            host, gpu = _twins(_params)
            opts = [getattr(fastnn.optim, name)(m.parameters(), **kwargs) for m in (host, gpu)]
            for step in range(4):
                with fastnn.use_backend("numpy"):
                    _hand_step(host, opts[0], step)
                _hand_step(gpu, opts[1], step)
            assert all(fd.is_device_array(p.data) for p in gpu.parameters())
            _assert_models_close(gpu, host, TIGHT, name)
            _assert_opt_states_close(opts[1], opts[0], TIGHT, name)
        except Exception as e:  # noqa: BLE001 - all of them reported at once
            failures.append(f"{name} {kwargs}: {type(e).__name__}: {str(e)[:500]}")
    assert not failures, "\n".join(failures)


def check_lbfgs_and_muon_on_device_parameters():
    """The host optimizers (LBFGS with a closure, Muon on 2-D weights) over GPU
    parameters step as over host ones."""
    import fastnn
    from fastnn import device as fd
    from fastnn import nn
    host, gpu = _twins(lambda: nn.Linear(4, 3))
    x, y = _batch(0, (6, 4))
    for model, batch, backend in ((host, x, "numpy"), (gpu, fd.to_device(x), None)):
        opt = fastnn.optim.LBFGS(model.parameters(), lr=0.5, max_iter=3)
        loss_fn = nn.CrossEntropyLoss()

        def closure():
            opt.zero_grad()
            loss = loss_fn(model(batch), y)
            model.backward(loss_fn.backward())
            return loss
        with fastnn.use_backend(backend or fastnn.get_backend()):
            opt.step(closure)
    assert all(fd.is_device_array(p.data) for p in gpu.parameters())
    _assert_models_close(gpu, host, TIGHT, "LBFGS")
    host, gpu = _twins(lambda: nn.Linear(3, 4, bias=False))
    opts = [fastnn.optim.Muon(m.parameters(), lr=0.02) for m in (host, gpu)]
    for step in range(2):
        with fastnn.use_backend("numpy"):
            _hand_step(host, opts[0], step)
        _hand_step(gpu, opts[1], step)
    _assert_models_close(gpu, host, dict(rtol=1e-7, atol=1e-9), "Muon")


SCHEDULERS = [
    ("StepLR", dict(step_size=2, gamma=0.5)),
    ("CosineAnnealingLR", dict(T_max=3)),
    ("OneCycleLR", dict(max_lr=0.1, total_steps=6)),
    ("ExponentialLR", dict(gamma=0.7)),
    ("LinearLR", dict(start_factor=0.5, total_iters=2)),
]


def check_lr_schedulers_on_gpu_optimizers():
    import fastnn
    from fastnn import device as fd
    failures = []
    for name, kwargs in SCHEDULERS:
        try:
            host, gpu = _twins(_params)
            opts = [fastnn.optim.SGD(m.parameters(), lr=0.05, momentum=0.9) for m in (host, gpu)]
            scheds = [getattr(fastnn.optim.lr_scheduler, name)(o, **kwargs) for o in opts]
            for step in range(4):
                with fastnn.use_backend("numpy"):
                    _hand_step(host, opts[0], step, scheds[0])
                _hand_step(gpu, opts[1], step, scheds[1])
                assert scheds[1].get_last_lr() == scheds[0].get_last_lr(), name
            _assert_models_close(gpu, host, TIGHT, name)
        except Exception as e:  # noqa: BLE001
            failures.append(f"{name}: {type(e).__name__}: {str(e)[:500]}")
    host, gpu = _twins(_params)
    opts = [fastnn.optim.Adam(m.parameters(), lr=0.05) for m in (host, gpu)]
    scheds = [fastnn.optim.lr_scheduler.ReduceLROnPlateau(o, patience=0, factor=0.5) for o in opts]
    for step in range(4):
        with fastnn.use_backend("numpy"):
            _hand_step(host, opts[0], step)
        _hand_step(gpu, opts[1], step)
        for sched in scheds:
            sched.step(1.0)   # no improvement: the lr halves from the second step on
    if not opts[1].param_groups[0]["lr"] == opts[0].param_groups[0]["lr"] < 0.05:
        failures.append(f"ReduceLROnPlateau lr {opts[1].param_groups[0]['lr']}")
    _assert_models_close(gpu, host, TIGHT, "ReduceLROnPlateau")
    assert not failures, "\n".join(failures)


def check_zero_grad_both_ways_and_accumulation():
    """Two backward calls accumulate into .grad on the GPU as on the host; zero_grad
    with set_to_none True and False (module's and optimizer's) give zeros that read as
    zeros, and the next backward writes fresh gradients."""
    import fastnn
    from fastnn import device as fd
    from fastnn import nn
    host, gpu = _twins(lambda: nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)))
    opts = [fastnn.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in (host, gpu)]
    loss_fn = nn.CrossEntropyLoss()
    for how in ("module-none", "module-zeros", "opt-none", "opt-zeros"):
        for model, opt in zip((host, gpu), opts):
            target = model if how.startswith("module") else opt
            target.zero_grad(set_to_none=how.endswith("none"))
        for p in gpu.parameters():
            np.testing.assert_array_equal(_host(p.grad), 0, err_msg=how)
        for k in range(2):
            x, y = _batch(k, (4, 4))
            for model, batch, backend in ((host, x, "numpy"), (gpu, fd.to_device(x), "numba")):
                with fastnn.use_backend(backend):
                    loss_fn(model(batch), y)
                    model.backward(loss_fn.backward())
        for i, (p, q) in enumerate(zip(gpu.parameters(), host.parameters())):
            np.testing.assert_allclose(_host(p.grad), q.grad, **TIGHT, err_msg=f"{how} grad {i}")
        with fastnn.use_backend("numpy"):
            opts[0].step()
        opts[1].step()
        _assert_models_close(gpu, host, TIGHT, how)


def check_frozen_parameters_on_the_gpu():
    """requires_grad_(False) on a GPU layer's weight and on a whole BatchNorm: those keep
    their values and no gradient is written; the rest trains as on the host."""
    import fastnn
    from fastnn import device as fd
    host, gpu = _twins(_net)
    for model in (host, gpu):
        model[0].weight.requires_grad_(False)
        model[1].requires_grad_(False)
    frozen = [_host(gpu[0].weight.data), _host(gpu[1].weight.data)]
    opts = [fastnn.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=0.01)
            for m in (host, gpu)]
    for step in range(2):
        x, y = _batch(step, (4, 4))
        _step(host, opts[0], x, y, backend="numpy")
        _step(gpu, opts[1], fd.to_device(x), y)
    np.testing.assert_array_equal(_host(gpu[0].weight.data), frozen[0])
    np.testing.assert_array_equal(_host(gpu[1].weight.data), frozen[1])
    _assert_models_close(gpu, host, TRAINED, "frozen")


def check_moves_mid_training_carry_the_optimizer_state():
    """An optimizer built on the host steps the model after .to('cuda'), .to('cpu') and
    .to('cuda') again between steps, its state following (README: 'an optimizer built
    before to() moves its buffers and state along at its next step'), as the host-only
    run: every optimizer with per-parameter state."""
    import fastnn
    failures = []
    for name, kwargs in OPTIMIZER_CASES:
        try:
            fastnn.manual_seed(0)
            moved, host = _params().double(), _params().double()
            host.load_state_dict(moved.state_dict())
            opts = [getattr(fastnn.optim, name)(m.parameters(), **kwargs) for m in (moved, host)]
            for step in range(4):
                if step:
                    moved.to("cuda" if step % 2 else "cpu")
                _hand_step(moved, opts[0], step)
                _hand_step(host, opts[1], step)
            _assert_models_close(moved, host, TIGHT, name)
            _assert_opt_states_close(opts[0], opts[1], TIGHT, name)
        except Exception as e:  # noqa: BLE001
            failures.append(f"{name} {kwargs}: {type(e).__name__}: {str(e)[:500]}")
    assert not failures, "\n".join(failures)


def check_optimizer_state_dict_moves_with_load_state_dict():
    """PyTorch's other way: a new optimizer built after the move loads the old one's
    state_dict (NumPy arrays) and continues as the host run."""
    import fastnn
    from fastnn import device as fd
    for name, kwargs in (("Adam", dict(lr=1e-2, amsgrad=True)),
                         ("SGD", dict(lr=0.1, momentum=0.9)),
                         ("Adagrad", dict(lr=0.1)), ("ASGD", dict(lr=1e-2, t0=0))):
        host, gpu = _twins(_params)
        gpu.to("cpu")
        opts = [getattr(fastnn.optim, name)(m.parameters(), **kwargs) for m in (host, gpu)]
        with fastnn.use_backend("numpy"):
            for step in range(2):
                _hand_step(host, opts[0], step)
                _hand_step(gpu, opts[1], step)
        state = opts[1].state_dict()
        gpu.to("cuda")
        fresh = getattr(fastnn.optim, name)(gpu.parameters(), **kwargs)
        fresh.load_state_dict(state)
        assert all(fd.is_device_array(p.data) for p in gpu.parameters())
        for step in range(2, 4):
            with fastnn.use_backend("numpy"):
                _hand_step(host, opts[0], step)
            _hand_step(gpu, fresh, step)
        _assert_models_close(gpu, host, TIGHT, name)
        _assert_opt_states_close(fresh, opts[0], TIGHT, name)


def check_checkpoint_from_cuda_into_cpu_and_back():
    """fastnn.save of a GPU model and optimizer, loaded into a CPU model and optimizer
    (which continue as the GPU pair would), saved again and loaded into a GPU pair."""
    import fastnn
    from fastnn import device as fd
    host, gpu = _twins(_net)
    opts = [fastnn.optim.Adam(m.parameters(), lr=1e-2) for m in (host, gpu)]
    for step in range(2):
        x, y = _batch(step, (4, 4))
        _step(host, opts[0], x, y, backend="numpy")
        _step(gpu, opts[1], fd.to_device(x), y)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "gpu.npz")
        fastnn.save(gpu, path, optimizer=opts[1])
        cpu_model = _net().double()
        cpu_opt = fastnn.optim.Adam(cpu_model.parameters(), lr=1e-2)
        fastnn.load(path, model=cpu_model, optimizer=cpu_opt)
        assert cpu_model.device == "cpu"
        assert all(type(p.data) is np.ndarray for p in cpu_model.parameters())
        x, y = _batch(2, (4, 4))
        _step(cpu_model, cpu_opt, x, y, backend="numpy")
        _step(host, opts[0], x, y, backend="numpy")
        _assert_models_close(cpu_model, host, TRAINED, "cpu from gpu")
        back = os.path.join(tmp, "cpu.npz")
        fastnn.save(cpu_model, back, optimizer=cpu_opt)
        gpu2 = _net().double().to("cuda")
        gpu2_opt = fastnn.optim.Adam(gpu2.parameters(), lr=1e-2)
        fastnn.load(back, model=gpu2, optimizer=gpu2_opt)
        assert gpu2.device == "cuda" and all(fd.is_device_array(p.data) for p in gpu2.parameters())
        x, y = _batch(3, (4, 4))
        _step(gpu2, gpu2_opt, fd.to_device(x), y)
        _step(host, opts[0], x, y, backend="numpy")
        _assert_models_close(gpu2, host, TRAINED, "gpu from cpu")
        _assert_opt_states_close(gpu2_opt, opts[0], TRAINED, "gpu from cpu")


def check_double_and_float_on_the_device_mid_training():
    """.float() then .double() of a GPU model with an optimizer built before: parameters
    stay on the device in the new dtype, and training continues as the host model
    converted the same way."""
    import fastnn
    from fastnn import device as fd
    host, gpu = _twins(_net)
    opts = [fastnn.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in (host, gpu)]
    for step, dtype in enumerate((np.float64, np.float32, np.float64)):
        for model in (host, gpu):
            model.float() if dtype == np.float32 else model.double()
        assert gpu.device == "cuda"
        assert all(fd.is_device_array(p.data) and p.data.dtype == dtype for p in gpu.parameters())
        assert all(fd.is_device_array(b) and b.dtype == dtype
                   for n, b in gpu.named_buffers() if "num_batches" not in n)
        x, y = _batch(step, (4, 4), dtype)
        ref = _step(host, opts[0], x, y, backend="numpy")
        got = _step(gpu, opts[1], fd.to_device(x), y)
        # (float64 to rounding before the first float32 step, float32's after)
        np.testing.assert_allclose(got, ref, **(TIGHT if step == 0 else LOOSE))
    _assert_models_close(gpu, host, LOOSE, "after float/double")


def check_device_cuda_construction():
    """Layers built with device='cuda' (and dtype=) start on the GPU and compute as one
    moved there."""
    from fastnn import device as fd
    from fastnn import nn
    builds = [lambda **kw: nn.Linear(4, 3, **kw), lambda **kw: nn.Conv2d(2, 3, 3, **kw),
              lambda **kw: nn.BatchNorm1d(3, **kw), lambda **kw: nn.BatchNorm2d(3, **kw),
              lambda **kw: nn.LayerNorm(4, **kw), lambda **kw: nn.Conv1d(2, 3, 3, **kw),
              lambda **kw: nn.Embedding(5, 3, **kw)]
    for build in builds:
        layer = build(device="cuda", dtype=np.float64)
        assert layer.device == "cuda", layer
        arrays = [p.data for p in layer.parameters()] + [p.grad for p in layer.parameters()]
        arrays += [b for n, b in layer.named_buffers() if "num_batches" not in n]
        assert all(fd.is_device_array(a) and a.dtype in (np.float64, np.int64) for a in arrays), \
            (layer, [(type(a).__name__, a.dtype) for a in arrays])
    seq = nn.Sequential(nn.Linear(4, 3, device="cuda"), nn.ReLU(), nn.Linear(3, 2, device="cuda"))
    assert seq.device == "cuda"
    y = seq(np.ones((2, 4), np.float32))
    assert type(y) is np.ndarray and y.shape == (2, 2)


def _snapshot(model):
    return ([_host(p.data) for p in model.parameters()],
            [_host(p.grad) for p in model.parameters()],
            {n: _host(b) for n, b in model.named_buffers()})


def _assert_unchanged(model, before, what):
    after = _snapshot(model)
    for i, (a, b) in enumerate(zip(after[0], before[0])):
        np.testing.assert_array_equal(a, b, err_msg=f"{what}: parameter {i} changed")
    for i, (a, b) in enumerate(zip(after[1], before[1])):
        np.testing.assert_array_equal(a, b, err_msg=f"{what}: gradient {i} changed")
    for name in before[2]:
        np.testing.assert_array_equal(after[2][name], before[2][name],
                                      err_msg=f"{what}: buffer {name} changed")


def _raises(call, types, words, what):
    """call() raises one of types (not a numba error), its message holding every word."""
    try:
        call()
    except types as e:
        message = str(e)
        assert "numba" not in type(e).__module__, (what, type(e), message)
        for word in words:
            assert word in message, (what, word, message)
        return e
    except Exception as e:  # noqa: BLE001
        raise AssertionError(f"{what}: {type(e).__module__}.{type(e).__name__}: {e}") from e
    raise AssertionError(f"{what}: no error")


def check_errors_name_the_problem_and_change_nothing():
    """A device batch into a CPU model, wrong dtypes (float64 into a float32 GPU model,
    integer input), a wrong shape reaching a later layer, mixed devices in one
    Sequential: clear errors, parameters, gradients and buffers (BatchNorm's running
    statistics and count) as they were."""
    from fastnn import device as fd
    from fastnn import nn
    host, gpu = _twins(_net, np.float32)
    x, y = _batch(0, (4, 4), np.float32)
    loss_fn = nn.CrossEntropyLoss()
    loss_fn(gpu(fd.to_device(x)), y)
    gpu.backward(loss_fn.backward())
    before = _snapshot(gpu)
    _raises(lambda: host(fd.to_device(x)), ValueError, ["cuda", "cpu"], "device into host")
    for bad, words in ((x.astype(np.float64), ["float64", "float32"]),
                       (fd.to_device(x.astype(np.float64)), ["float64", "float32"]),
                       (fd.to_device(x.astype(np.int64)), ["int64"]),
                       (x.astype(np.int32), ["int32"]),
                       (fd.to_device(x[:, :3].copy()), ["4", "3"]),
                       (fd.to_device(np.ones((4,), np.float32)), ["BatchNorm1d", "(3,)"])):
        _raises(lambda: gpu(bad), (TypeError, ValueError), words, f"bad input {words}")
        _assert_unchanged(gpu, before, f"bad input {words}")
    # a bad gradient into backward: refused before any layer adds to a gradient
    gpu(fd.to_device(x))
    before = _snapshot(gpu)
    for bad, words in ((fd.to_device(np.ones((4, 2), np.float32)), ["(4, 2)"]),
                       (fd.to_device(np.ones((4, 3), np.float64)), ["float64"]),
                       (fd.to_device(np.ones((4, 3), np.int64)), ["int64"])):
        _raises(lambda: gpu.backward(bad), (TypeError, ValueError), words, f"bad grad {words}")
        _assert_unchanged(gpu, before, f"bad grad {words}")
    # a layer moved alone, after the BatchNorm: found before the BatchNorm runs (fixed:
    # the running statistics took this failed forward's batch)
    gpu[3].to("cpu")
    _raises(lambda: gpu(fd.to_device(x)), ValueError, ["Sequential layer 3", "Linear"],
            "two devices")
    _assert_unchanged(gpu, before, "two devices")
    gpu[3].to("cuda")
    nested = nn.Sequential(gpu, nn.Sequential(nn.Linear(3, 2)))   # (cpu: moved alone)
    assert nested.device == "cuda" and nested[1][0].device == "cpu"
    _raises(lambda: nested(fd.to_device(x)), ValueError, ["Sequential layer 1", "Linear"],
            "nested two devices")
    _assert_unchanged(gpu, before, "nested two devices")


def check_an_activation_moved_alone_is_refused_fused_or_not():
    """README: a Sequential whose layers sit on two devices is a ValueError naming the
    layer, before any layer runs. An activation that runs fused into the Linear before
    it (ReLU here) is such a layer too: moved alone to the CPU it ran on the GPU silently
    (fixed), where Tanh after a BatchNorm (unfused) was refused; likewise a fused one
    moved alone to the GPU in a CPU model. The running statistics stay as they were."""
    from fastnn import device as fd
    from fastnn import nn

    def build():
        return nn.Sequential(nn.Linear(4, 3, bias=False), nn.BatchNorm1d(3), nn.Tanh(),
                             nn.Linear(3, 3), nn.ReLU())
    host, gpu = _twins(build, np.float32)
    x, _ = _batch(0, (4, 4), np.float32)
    for model, device, batch in ((gpu, "cpu", fd.to_device(x)), (host, "cuda", x)):
        model(batch)
        before = _snapshot(model)
        for i, name in ((2, "Tanh"), (4, "ReLU")):
            model[i].to(device)
            _raises(lambda: model(batch), ValueError,
                    [f"Sequential layer {i}", name, f"is on {device}"],
                    f"{name} moved alone to {device}")
            _assert_unchanged(model, before, f"{name} moved alone to {device}")
            model[i].to(model.device)
        model(batch)   # (all on one device again: runs)


def check_labels_on_either_device_and_wrong_label_dtypes():
    """GPU logits with host or device labels give the same loss and gradient (README's GPU
    example gives host labels); host logits with device labels (or any host pred with a
    device target) are refused as PyTorch refuses tensors on two devices, naming both
    (they were copied to the host: fixed), the loss's last gradient kept; float and
    out-of-range labels are errors naming them, the model unchanged."""
    import fastnn
    from fastnn import device as fd
    from fastnn import nn
    from fastnn.nn import functional as F
    host, gpu = _twins(_net, np.float32)
    x, y = _batch(0, (5, 4), np.float32)
    loss_fn = nn.CrossEntropyLoss()
    logits = gpu(fd.to_device(x))
    ref = loss_fn(logits, y)
    ref_grad = _host(loss_fn.backward())
    got = loss_fn(logits, fd.to_device(y))
    np.testing.assert_allclose(float(got), float(ref), rtol=1e-6)
    np.testing.assert_allclose(_host(loss_fn.backward()), ref_grad, rtol=1e-6)
    with fastnn.use_backend("numpy"):
        host_logits = host(x)
        loss_fn(host_logits, y)
        kept = loss_fn.backward()
        for loss, pred, target, name in (
                (loss_fn, host_logits, fd.to_device(y), "target"),
                (nn.NLLLoss(), host_logits, fd.to_device(y), "target"),
                (nn.MSELoss(), x, fd.to_device(x), "target"),
                (nn.BCEWithLogitsLoss(), x, fd.to_device((x > 0).astype(np.float32)),
                 "target"),
                (nn.MarginRankingLoss(), x[:, 0].copy(), fd.to_device(x[:, 1].copy()),
                 "input2")):
            _raises(lambda: loss(pred, target), RuntimeError,
                    ["CUDA device array", f"for {name}", "NumPy input"],
                    f"{type(loss).__name__}: host pred, device {name}")
        # (F.cross_entropy, which has a cuda kernel, said "expected target to be a
        # numpy.ndarray, got FakeCUDAArray"; F's losses without one say so)
        _raises(lambda: F.cross_entropy(host_logits, fd.to_device(y)), RuntimeError,
                ["CUDA device array", "for target", "NumPy input"],
                "F.cross_entropy: host input, device target")
        np.testing.assert_array_equal(loss_fn.backward(), kept)
    before = _snapshot(gpu)
    for bad, words in ((y.astype(np.float32), ["float32"]),
                       (fd.to_device(y.astype(np.float32)), ["float32"]),
                       (fd.to_device(y[:3].copy()), ["3"]),
                       (np.array([0, 1, 2, 3, 0]), ["3"]),
                       (fd.to_device(np.array([0, 1, 2, 3, 0])), ["3"])):
        _raises(lambda: loss_fn(logits, bad), (TypeError, ValueError, IndexError), words,
                f"labels {words}")
        _assert_unchanged(gpu, before, f"labels {words}")


def check_bool_labels_name_what_was_given():
    """Bool labels are refused (PyTorch's too) naming what was given: a device array for
    device labels (the message said 'as a numpy.ndarray' for both), the last gradient
    kept."""
    from fastnn import device as fd
    from fastnn import nn
    _, gpu = _twins(_net, np.float32)
    x, y = _batch(0, (5, 4), np.float32)
    loss_fn = nn.CrossEntropyLoss()
    logits = gpu(fd.to_device(x))
    loss_fn(logits, y)
    kept = _host(loss_fn.backward())
    for labels, what in ((y.astype(bool), "numpy.ndarray of dtype bool"),
                         (fd.to_device(y.astype(bool)), "CUDA device array of dtype bool")):
        e = _raises(lambda: loss_fn(logits, labels), TypeError, [what], f"bool {what}")
        assert "as a numpy.ndarray" not in str(e), str(e)
    np.testing.assert_array_equal(_host(loss_fn.backward()), kept)


# -------------------------------------------------------------------- pytest side

CHECKS = sorted(name for name in dir() if name.startswith("check_"))


@pytest.fixture(scope="module")
def results(request):
    """The run's {check name: None or its error}: conftest.py starts the run (in the
    background, tests/simulator_runs.py's USER_SIM_ENV) when collection ends and moves
    these tests to the end of the session."""
    return read_check_run(request, "test_cuda_layers_check")


@pytest.mark.parametrize("name", CHECKS)
def test_cuda_layers_check(results, name):
    assert name in results, sorted(results)
    assert results[name] is None, results[name]


if __name__ == "__main__":
    import sys
    print(json.dumps(run_checks(globals(), sys.argv[1:])))
