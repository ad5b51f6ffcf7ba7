"""Models on the GPU: ``Module.to('cuda')`` with the nn layers, losses, ``fastnn.optim``
and the trainer, against the same model trained on the host by the numpy backend.

Runs wherever ``numba.cuda.is_available()``: on a real GPU in the main test process,
and without one under Numba's CUDA simulator in the subprocess of
tests/test_cuda_sim.py (small shapes: the simulator runs each GPU thread in Python).
"""
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import device as fdevice
from fastnn import nn

from conftest import assert_close

if "cuda" not in fastnn.backends():
    pytest.skip("no CUDA device: tests/test_cuda_sim.py runs this file under Numba's "
                "CUDA simulator in a subprocess", allow_module_level=True)

from numba import config as numba_config  # noqa: E402
from numba import cuda  # noqa: E402

# The simulator runs every GPU thread as a Python thread: there, the convolutional
# model trains for one step with SGD only, and the train command runs on a real GPU only.
SIMULATOR = bool(numba_config.ENABLE_CUDASIM)


def twins(build):
    """(host model, GPU model) with identical float64 parameters."""
    fastnn.manual_seed(0)
    host = build().double()
    gpu = build().double()
    gpu.load_state_dict(host.state_dict())
    return host, gpu.to("cuda")


def small_cnn():
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(3, 4, 3, stride=2, padding=1),
                         nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4, 3))


def mlp():
    return fastnn.models.MLP(6, [7, 5], 3, activation="leaky_relu", batchnorm=True)


def mlp_without_batchnorm():
    """For Rprop, which steps by the gradient's sign: a Linear's bias before BatchNorm has
    a gradient of 0 up to rounding, whose sign the GPU's and the host's sums decide
    differently."""
    return fastnn.models.MLP(6, [7, 5], 3, activation="leaky_relu")


def assert_on_gpu(model, optimizer=None):
    arrays = [p.data for p in model.parameters()] + [p.grad for p in model.parameters()]
    # every buffer but a norm layer's batch count, a host 0-d array on any device
    arrays += [b for name, b in model.named_buffers() if not name.endswith("num_batches_tracked")]
    if optimizer is not None:
        for buckets in optimizer._buckets:
            for bucket in buckets:
                arrays += [bucket.data, bucket.grad, *bucket.state.values()]
    assert arrays and all(fdevice.is_device_array(a) for a in arrays)


TRAINING_CASES = [(mlp, (8, 6), "SGD"), (mlp, (8, 6), "Adam"), (mlp, (8, 6), "RMSprop"),
                  (mlp, (8, 6), "NAdam"), (mlp, (8, 6), "Adadelta"), (mlp, (8, 6), "ASGD"),
                  (mlp_without_batchnorm, (8, 6), "Rprop"), (small_cnn, (2, 2, 8, 8), "SGD")]
if not SIMULATOR:
    TRAINING_CASES.append((small_cnn, (2, 2, 8, 8), "Adam"))


@pytest.mark.parametrize("build, shape, opt_name", TRAINING_CASES,
                         ids=[f"{b.__name__}-{o}" for b, _, o in TRAINING_CASES])
def test_training_on_the_gpu_matches_the_host(rng, build, shape, opt_name):
    host, gpu = twins(build)
    kwargs = {"SGD": {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3},
              "Adam": {"lr": 1e-2, "weight_decay": 1e-3},
              "NAdam": {"lr": 1e-2, "weight_decay": 1e-3},
              "Adadelta": {"lr": 0.5, "weight_decay": 1e-3},
              "Rprop": {"lr": 1e-2, "etas": (0.4, 1.3)},
              "ASGD": {"lr": 1e-2, "lambd": 1e-2, "t0": 0, "weight_decay": 1e-3},
              # eps well above float64 noise: g / sqrt(mean g^2) turns the last-bit
              # differences of a near-zero gradient (GPU vs host sums) into O(lr) ones
              "RMSprop": {"lr": 1e-2, "momentum": 0.5, "centered": True, "eps": 1e-4}}[opt_name]
    opts = [getattr(fastnn.optim, opt_name)(m.parameters(), **kwargs) for m in (host, gpu)]
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(1 if SIMULATOR and build is small_cnn else 2):
        x = rng.standard_normal(shape)
        y = rng.integers(0, 3, shape[0])
        losses, grads = [], []
        for model, opt, batch in ((host, opts[0], x), (gpu, opts[1], cuda.to_device(x))):
            opt.zero_grad()
            logits = model(batch)
            losses.append(loss_fn(logits, y))
            grads.append(model.backward(loss_fn.backward()))
            opt.step()
        assert fdevice.is_device_array(logits) and fdevice.is_device_array(grads[1])
        np.testing.assert_allclose(losses[1], losses[0], rtol=1e-9)
        assert_close(grads[1].copy_to_host(), grads[0], np.float64)
    assert_on_gpu(gpu, opts[1])
    gpu_state, host_state = gpu.state_dict(), host.state_dict()
    for key in host_state:
        assert isinstance(gpu_state[key], np.ndarray)
        assert_close(gpu_state[key], host_state[key], np.float64, err_msg=key)
    for key, value in opts[0].state_dict()["state"].items():
        for name, array in value.items():
            got = opts[1].state_dict()["state"][key][name]
            if isinstance(array, float):  # NAdam's mu_product, ASGD's eta and mu: host
                assert got == array
            elif name != "step":
                assert isinstance(got, np.ndarray)
                assert_close(got, array, np.float64, err_msg=f"{key} {name}")


def test_arrays_follow_the_caller(rng):
    host, gpu = twins(mlp)
    x = rng.standard_normal((5, 6))
    y_host = host(x)
    y = gpu(x)  # NumPy in, NumPy out
    assert isinstance(y, np.ndarray)
    assert_close(y, y_host, np.float64)
    dy = gpu(cuda.to_device(x))  # device in, device out
    assert fdevice.is_device_array(dy)
    assert_close(dy.copy_to_host(), y_host, np.float64)
    g = np.ones_like(y)
    assert isinstance(gpu.backward(g), np.ndarray)
    host(x)  # the GPU model ran two training forwards: update the same running stats
    gpu.eval()
    host.eval()
    assert_close(gpu(x), host(x), np.float64)


def test_multitask_net_on_the_gpu_takes_host_and_device_arrays(rng):
    """Its own sums (s = h + a, and the two input gradients) ran in a host buffer of a
    GPU model (NumPy input: a TypeError) or with + (device arrays have none)."""
    host, gpu = twins(lambda: fastnn.models.MultiTaskNet(5, 6, 4, 3, dropout=0.0))
    x = rng.standard_normal((4, 5))
    ga, gl = rng.standard_normal((4, 4)), rng.standard_normal((4, 3))
    a_ref, logits_ref = host(x)
    grad_ref = host.backward(ga, gl)
    a, logits = gpu(x)  # NumPy in, NumPy out
    assert isinstance(a, np.ndarray) and isinstance(logits, np.ndarray)
    assert_close(a, a_ref, np.float64)
    assert_close(logits, logits_ref, np.float64)
    grad = gpu.backward(ga, gl)
    assert isinstance(grad, np.ndarray)
    assert_close(grad, grad_ref, np.float64)
    da, dlogits = gpu(cuda.to_device(x))  # device in, device out
    assert fdevice.is_device_array(da) and fdevice.is_device_array(dlogits)
    assert_close(dlogits.copy_to_host(), logits_ref, np.float64)
    dgrad = gpu.backward(cuda.to_device(ga), cuda.to_device(gl))
    assert fdevice.is_device_array(dgrad)
    assert_close(dgrad.copy_to_host(), grad_ref, np.float64)


def test_multitask_loss_takes_the_device_arrays_of_a_gpu_model(rng):
    """Its value as on the host, and its gradients where the model's outputs live, so a
    GPU training step on device input needs no copy by hand."""
    host, gpu = twins(lambda: fastnn.models.MultiTaskNet(5, 6, 4, 3, dropout=0.0))
    x, y_a = rng.standard_normal((4, 5)), rng.standard_normal((4, 4))
    y_b = np.array([0, 2, 1, 2])
    ref_fn, fn = fastnn.models.MultiTaskLoss(), fastnn.models.MultiTaskLoss()
    ref = ref_fn(*host(x), y_a, y_b)
    host.backward(*ref_fn.backward())
    for targets in ((y_a, y_b), (cuda.to_device(y_a), cuda.to_device(y_b))):
        gpu.zero_grad()
        assert_close(np.array(fn(*gpu(cuda.to_device(x)), *targets)), np.array(ref),
                     np.float64)
        grads = fn.backward()
        assert all(map(fdevice.is_device_array, grads))
        gpu.backward(*grads)
        for p, q in zip(gpu.parameters(), host.parameters()):
            assert_close(fdevice.to_host(p.grad), q.grad, np.float64)


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_vae_on_the_gpu_takes_host_and_device_arrays(rng, likelihood):
    """Its terms between the two MLPs are NumPy: a device x (and eps) is brought over,
    and the gradient w.r.t. x goes back to the device; samples and reconstructions come
    back to the host."""
    host, gpu = twins(lambda: fastnn.models.VAE(5, latent_dim=2, hidden=(4,),
                                                likelihood=likelihood))
    x, eps = rng.uniform(0, 1, (3, 5)), rng.standard_normal((3, 2))
    assert_close(gpu.reconstruct(x), host.reconstruct(x), np.float64)
    assert_close(gpu.sample(4, rng=0), host.sample(4, rng=0), np.float64)
    ref = host(x, eps)
    grad_ref = host.backward()
    for x_in, eps_in in ((x, eps), (cuda.to_device(x), cuda.to_device(eps))):
        losses = gpu(x_in, eps_in)
        assert_close(np.array(losses), np.array(ref), np.float64)
        grad = gpu.backward()
        assert fdevice.is_device_array(grad) == fdevice.is_device_array(x_in)
        assert_close(fdevice.to_host(grad), grad_ref, np.float64)


def test_a_container_of_layers_built_on_the_gpu_runs_there(rng):
    """PyTorch's porting idiom, device='cuda' on each layer: the Sequential (no arrays of
    its own) and its ReLU follow the layers to the GPU."""
    fastnn.manual_seed(0)
    host = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    fastnn.manual_seed(0)
    gpu = nn.Sequential(nn.Linear(3, 4, device="cuda"), nn.ReLU(), nn.Linear(4, 2, device="cuda"))
    assert gpu.device == "cuda" and all(m.device == "cuda" for m in gpu)
    gpu.load_state_dict(host.state_dict())
    x = rng.standard_normal((5, 3)).astype(np.float32)
    y = gpu(cuda.to_device(x))
    assert fdevice.is_device_array(y)
    assert_close(y.copy_to_host(), host(x), np.float32)
    mixed = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2, device="cuda"))
    assert [m.device for m in mixed] == ["cpu", "cuda"]  # left as they are, as in PyTorch


def test_a_gpu_parameter_clones_on_the_gpu():
    weight = nn.Linear(3, 2).to("cuda").weight
    copy = weight.clone()
    assert fdevice.is_device_array(copy)
    np.testing.assert_array_equal(copy.copy_to_host(), weight.data.copy_to_host())
    weight.fill_(0.0)  # a copy, not a view
    assert np.any(copy.copy_to_host() != 0)


def test_a_gpu_parameters_array_methods_read_and_write_it_where_it_lives():
    """p.mean(), p.norm(), p > 0 give host values; p.add_ and p.clamp_ update the device
    array in place (tests/test_parameter_methods.py has the host cases)."""
    weight = nn.Linear(4, 3).to("cuda").weight
    data = weight.data
    values = weight.numpy().copy()
    assert weight.mean() == values.mean() and weight.norm() == np.linalg.norm(values)
    # indexing and .T give NumPy values too (a device array's slice has no arithmetic on
    # a GPU: the simulator's arrays hid it), and to_host a parameter its values
    for got, want in ((weight[0], values[0]), (weight[:, 1], values[:, 1]),
                      (weight.T, values.T), (fdevice.to_host(weight), values)):
        assert type(got) is np.ndarray
        np.testing.assert_array_equal(got + 1, want + 1)
    np.testing.assert_array_equal(weight.reshape(-1), values.reshape(-1))
    np.testing.assert_array_equal(weight > 0, values > 0)
    assert weight.add_(np.ones((3, 4)), alpha=2.0).clamp_(max=2.25) is weight
    assert weight.data is data and fdevice.is_device_array(weight.data)
    np.testing.assert_array_equal(data.copy_to_host(),
                                  np.minimum(values + np.float32(2), np.float32(2.25)))
    # F takes the GPU layer's parameters as their device arrays
    layer = nn.Linear(4, 3).to("cuda")
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    y = nn.functional.linear(fdevice.to_device(x), layer.weight, layer.bias)
    assert fdevice.is_device_array(y)
    assert_close(fdevice.to_host(y), x @ layer.weight.numpy().T + layer.bias.numpy(), np.float32)


def test_a_host_parameter_assigned_to_a_gpu_layer_moves_there(rng):
    """As a buffer does; the layer would otherwise copy it over at every kernel call."""
    host, gpu = twins(lambda: nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)))
    weight = rng.standard_normal((5, 6))
    host[0].weight = nn.Parameter(weight.copy())
    param = nn.Parameter(weight.copy())
    param.grad = np.ones((5, 6))
    gpu[0].weight = param
    assert gpu[0].weight is param
    assert fdevice.is_device_array(param.data) and fdevice.is_device_array(param.grad)
    assert_close(fdevice.to_host(param.grad), np.ones((5, 6)), np.float64)
    x = rng.standard_normal((4, 6))
    assert_close(fdevice.to_host(gpu(cuda.to_device(x))), host(x), np.float64)
    lone = nn.Module().to("cuda")   # nothing on the GPU yet: the parameter stays put
    lone.w = nn.Parameter(weight.copy())
    assert not fdevice.is_device_array(lone.w.data)


def test_values_assigned_to_a_parameters_data_go_to_its_device(rng):
    """``p.data = W`` of a NumPy W puts W on the GPU for a parameter there (its kernels
    would otherwise copy it over at every call, and its optimizer state with it), and a
    device array assigned to a host parameter comes to the host (its kernels read NumPy
    arrays); load_state_dict(assign=True) of host arrays keeps a GPU model there."""
    host, gpu = twins(lambda: nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)))
    weight = rng.standard_normal((5, 6))
    host[0].weight.data = weight.copy()
    gpu[0].weight.data = weight.copy()
    param = gpu[0].weight
    assert fdevice.is_device_array(param.data) and fdevice.is_device_array(param.grad)
    host_opt = fastnn.optim.SGD(host.parameters(), lr=0.1, momentum=0.9)
    gpu_opt = fastnn.optim.SGD(gpu.parameters(), lr=0.1, momentum=0.9)
    x = rng.standard_normal((4, 6))
    grad_out = np.ones((4, 3))
    for model, opt, put in ((host, host_opt, np.asarray), (gpu, gpu_opt, cuda.to_device)):
        opt.zero_grad()
        model(put(x))
        model.backward(put(grad_out))
        opt.step()
    assert fdevice.is_device_array(gpu[0].weight.data)
    assert_close(fdevice.to_host(gpu[0].weight.data), host[0].weight.data, np.float64)
    gpu.load_state_dict({k: fdevice.to_host(v) for k, v in host.state_dict().items()},
                        assign=True)
    assert all(fdevice.is_device_array(p.data) for p in gpu.parameters())
    assert_close(fdevice.to_host(gpu(cuda.to_device(x))), host(x), np.float64)
    layer = nn.Linear(6, 5).double()
    layer.weight.data = cuda.to_device(weight)
    assert isinstance(layer.weight.data, np.ndarray) and isinstance(layer.weight.grad,
                                                                    np.ndarray)
    assert_close(layer(x), x @ weight.T + layer.bias.data, np.float64)


def test_load_state_dict_with_assign_replaces_parameters_on_the_gpu_as_on_the_host(rng):
    """assign=True copied the arrays into the old parameters of a GPU model (cast to its
    dtype), where the host model takes new Parameters holding them (PyTorch's assign):
    an optimizer built before then kept training one and not the other."""
    host, gpu = twins(lambda: nn.Linear(4, 3))
    given = {k: v.astype(np.float32) for k, v in host.state_dict().items()}
    for model in (host, gpu):
        old = model.weight
        model.load_state_dict({k: v.copy() for k, v in given.items()}, assign=True)
        assert model.weight is not old and model.weight.data.dtype == np.float32
    assert fdevice.is_device_array(gpu.weight.data) and fdevice.is_device_array(gpu.bias.grad)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    assert_close(fdevice.to_host(gpu(cuda.to_device(x))), host(x), np.float32)
    source = nn.Linear(4, 3).double().to("cuda")
    gpu.load_state_dict(source.state_dict(keep_vars=True), assign=True)
    assert gpu.weight is source.weight and gpu.bias is source.bias


def test_leading_dimensions_and_unbatched_inputs_on_the_gpu(rng):
    """Linear on (*, in), Conv2d/pooling on unbatched (C, H, W), BatchNorm1d on
    (N, C, L), BatchNorm3d, the 1-D conv and pooling layers, LogSoftmax over a middle
    axis, LayerNorm, adaptive pooling (the pooling kernels, and the host's matrices
    for windows that do not divide the input), ConvTranspose2d, Upsample, PReLU,
    GroupNorm, InstanceNorm2d, AdaptiveMaxPool2d, dilated, grouped and circularly padded
    Conv2d and ReflectionPad2d, as on the host."""
    seq = lambda: nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3))  # noqa: E731
    cnn = lambda: nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.MaxPool2d(2),  # noqa: E731
                                nn.Flatten(0), nn.Linear(48, 2))
    bn = lambda: nn.Sequential(nn.BatchNorm1d(2), nn.ReLU())  # noqa: E731
    bn3 = lambda: nn.Sequential(nn.BatchNorm3d(2), nn.ReLU())  # noqa: E731
    conv1 = lambda: nn.Sequential(nn.Conv1d(2, 3, 3, padding=1), nn.MaxPool1d(2),  # noqa: E731
                                  nn.AvgPool1d(2), nn.Flatten(), nn.Linear(6, 2))
    softmax = lambda: nn.Sequential(nn.Linear(2, 2), nn.LogSoftmax(dim=1),  # noqa: E731
                                    nn.Softmin(dim=1), nn.SELU(), nn.CELU(0.5))
    layernorm = lambda: nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6))  # noqa: E731
    grouped = lambda: nn.Sequential(nn.Conv2d(4, 4, 3, padding=2, dilation=2,  # noqa: E731
                                              groups=4), nn.ReLU(), nn.Conv2d(4, 2, 1),
                                    nn.ReflectionPad2d(1),
                                    nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular"))
    adaptive_max = lambda: nn.Sequential(nn.AdaptiveMaxPool2d((2, 3)),  # noqa: E731
                                         nn.AdaptiveMaxPool2d((1, 2)))
    groupnorm = lambda: nn.Sequential(nn.GroupNorm(2, 4), nn.Tanh(),  # noqa: E731
                                      nn.InstanceNorm2d(4, affine=True), nn.InstanceNorm2d(4))
    adaptive = lambda: nn.Sequential(nn.AdaptiveAvgPool2d((2, 3)), nn.Flatten(),  # noqa: E731
                                     nn.AdaptiveAvgPool1d(4))
    upsample = lambda: nn.Sequential(nn.Upsample(scale_factor=2), nn.PReLU(),  # noqa: E731
                                     nn.Upsample(size=(7, 9)), nn.PReLU(2),
                                     nn.UpsamplingBilinear2d(size=(8, 10)),
                                     nn.Upsample(scale_factor=1.5, mode="bilinear"))
    deconv = lambda: nn.Sequential(nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1,  # noqa: E731
                                                      output_padding=1), nn.Tanh(),
                                   nn.ConvTranspose2d(3, 3, 2, dilation=2, groups=3))
    host_layers = lambda: nn.Sequential(nn.PixelShuffle(2), nn.Hardshrink(0.1),  # noqa: E731
                                        nn.GLU(1), nn.Softmax2d())
    blocks = lambda: nn.Sequential(nn.LPPool2d(2, 2, ceil_mode=True),  # noqa: E731
                                   nn.Unfold(2, padding=1), nn.Fold((2, 2), 2, padding=1))
    for build, shape in ((seq, (2, 3, 6)), (host_layers, (2, 8, 3, 3)), (blocks, (2, 8, 3, 3)),
                         (lambda: nn.Sequential(nn.Conv3d(2, 2, 3, padding=1, groups=2),
                                                nn.MaxPool3d(2),
                                                nn.ConvTranspose3d(2, 2, 2, stride=2),
                                                nn.AvgPool3d(2),
                                                nn.AdaptiveMaxPool3d((1, 2, 1))),
                          (2, 2, 4, 4, 4)),
                         (seq, (6,)), (cnn, (2, 8, 8)), (bn, (3, 2, 5)),
                         (bn3, (2, 2, 2, 3, 2)), (conv1, (2, 2, 8)), (softmax, (2, 3, 2)),
                         (layernorm, (2, 3, 4)), (adaptive, (2, 2, 4, 6)),
                         (adaptive, (2, 2, 5, 7)), (deconv, (2, 2, 3, 3)),
                         (upsample, (2, 2, 3, 3)), (groupnorm, (2, 4, 3, 5)),
                         (adaptive_max, (2, 2, 4, 6)), (adaptive_max, (2, 2, 5, 7)),
                         (grouped, (2, 4, 5, 5))):
        host, gpu = twins(build)
        x = rng.standard_normal(shape)
        for xin in (x, cuda.to_device(x)):
            y = gpu(xin)
            assert_close(fdevice.to_host(y), host(x), np.float64)
            g = np.ones(y.shape)
            gin = gpu.backward(g if isinstance(xin, np.ndarray) else cuda.to_device(g))
            assert gin.shape == shape
            assert_close(fdevice.to_host(gin), host.backward(g), np.float64)
        for p_gpu, p_host in zip(gpu.parameters(), host.parameters()):
            assert_close(fdevice.to_host(p_gpu.grad), p_host.grad, np.float64)


def test_pool_indices_and_unpool_on_the_gpu(rng):
    """MaxPool2d(return_indices=True) gives its indices where its output lives (host for
    a NumPy input, device for a device input), and MaxUnpool2d takes them back, as on the
    host."""
    x = rng.standard_normal((2, 3, 4, 6))
    host_pool, host_unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
    y, idx = host_pool(x)
    z = host_unpool(y, idx)
    pool, unpool = nn.MaxPool2d(2, return_indices=True).to("cuda"), nn.MaxUnpool2d(2).to("cuda")
    for xin in (x, cuda.to_device(x)):
        gy, gidx = pool(xin)
        assert fdevice.is_device_array(gidx) == fdevice.is_device_array(xin)
        np.testing.assert_array_equal(fdevice.to_host(gidx), idx)
        gz = unpool(gy, gidx)
        assert_close(fdevice.to_host(gz), z, np.float64)
        g = np.ones(z.shape) if isinstance(xin, np.ndarray) else cuda.to_device(np.ones(z.shape))
        assert_close(fdevice.to_host(unpool.backward(g)), host_unpool.backward(np.ones(z.shape)),
                     np.float64)


def test_parameters_buffers_and_state_dict_move_and_come_back(rng):
    model = mlp()
    before = model.state_dict()
    assert model.to("cuda") is model and model.device == "cuda"
    assert all(p.device == "cuda" for p in model.parameters())
    assert all(m.device == "cuda" for m in model.modules())
    bn = model[1]
    assert fdevice.is_device_array(bn.running_mean)
    assert "device='cuda'" in repr(model.parameters()[0])
    bn.running_var = np.full(7, 2.0, np.float32)  # a host buffer joins the module's device
    assert fdevice.is_device_array(bn.running_var)
    state = model.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    changed = {k: v + 1 for k, v in before.items()}
    model.load_state_dict(changed)  # host arrays copied into device arrays
    assert fdevice.is_device_array(model[0].weight.data)
    model.double()  # converts through the host, stays on the GPU
    assert model.device == "cuda" and model[0].weight.data.dtype == np.float64
    model.cpu()
    assert model.device == "cpu" and isinstance(model[0].weight.data, np.ndarray)
    for key, value in model.state_dict().items():
        np.testing.assert_allclose(value, changed[key])


def test_zero_grad_on_the_gpu(rng):
    _, gpu = twins(mlp)
    loss_fn = nn.CrossEntropyLoss()
    loss_fn(gpu(rng.standard_normal((4, 6))), rng.integers(0, 3, 4))
    gpu.backward(loss_fn.backward())
    assert np.any(gpu[0].weight.grad.copy_to_host() != 0)
    gpu.zero_grad()
    assert all(np.all(p.grad.copy_to_host() == 0) for p in gpu.parameters())


@pytest.mark.parametrize("who, set_to_none", [("model", True), ("model", False),
                                               ("optimizer", True), ("optimizer", False)])
def test_a_held_gradient_across_zero_grad_reads_as_on_the_host(rng, who, set_to_none):
    """g = p.grad; zero_grad(); backward: g shows what the host model's shows at each point
    (the old values until the backward after set_to_none=True, as a PyTorch gradient kept
    across zero_grad() does; the GPU optimizer's zero_grad wrote its zeros at once)."""
    x, g_out = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    seen = {}
    for where in ("cpu", "cuda"):
        fastnn.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)).double().to(where)
        opt = fastnn.optim.SGD(model.parameters(), lr=0.1)
        put = cuda.to_device if where == "cuda" else np.asarray
        model(put(x))
        model.backward(put(g_out))
        held = [p.grad for p in model.parameters()]
        (model if who == "model" else opt).zero_grad(set_to_none=set_to_none)
        after_zero = [fdevice.to_host(h).copy() for h in held]
        model(put(x))
        model.backward(put(2 * g_out))
        seen[where] = after_zero + [fdevice.to_host(h).copy() for h in held]
    for host, gpu in zip(seen["cpu"], seen["cuda"]):
        assert_close(gpu, host, np.float64)


def test_functional_on_device_arrays_runs_on_the_gpu(rng):
    """fastnn.nn.functional on CUDA device arrays (a GPU model's activations and
    parameters), as torch.nn.functional on CUDA tensors: the functions with cuda kernels
    give device arrays with the host's values, the losses the host's 0-d value; the rest
    a clear error naming the function (all refused the device arrays with a TypeError)."""
    from fastnn.nn import functional as F
    x2, x3, x4 = (rng.standard_normal(s) for s in ((4, 5), (2, 4, 5), (2, 3, 5, 5)))
    w, b, cw, cb = (rng.standard_normal(s) for s in ((3, 5), (3,), (4, 3, 3, 3), (4,)))
    labels = np.array([0, 2, 1, 4])
    calls = {
        "relu": lambda a: F.relu(a(x2)), "selu": lambda a: F.selu(a(x2)),
        "celu": lambda a: F.celu(a(x2), 0.5), "logsigmoid": lambda a: F.logsigmoid(a(x2)),
        "softmax": lambda a: F.softmax(a(x3), dim=1),
        "log_softmax": lambda a: F.log_softmax(a(x2), dim=-1),
        "softmin": lambda a: F.softmin(a(x2), dim=1),
        "linear": lambda a: F.linear(a(x3), a(w), a(b)),
        "conv2d": lambda a: F.conv2d(a(x4), a(cw), a(cb), padding=1),
        "conv1d": lambda a: F.conv1d(a(x3), a(cw.reshape(4, 9, 3)[:2, :4]), stride=2),
        "max_pool2d": lambda a: F.max_pool2d(a(x4), 2),
        "avg_pool2d": lambda a: F.avg_pool2d(a(x4), 3, stride=2, padding=1),
        "layer_norm": lambda a: F.layer_norm(a(x3), (5,), a(x2[0]), a(x2[1])),
        "batch_norm": lambda a: F.batch_norm(a(x4), a(np.zeros(3)), a(np.ones(3)),
                                             training=False),
    }
    for name, call in calls.items():
        got = call(fdevice.to_device)
        assert fdevice.is_device_array(got), name
        assert_close(got.copy_to_host(), call(np.asarray), np.float64)
    # in place on the device array itself; training batch_norm updates the device stats
    y = cuda.to_device(x2)
    assert F.relu(y, inplace=True) is y
    assert_close(y.copy_to_host(), np.maximum(x2, 0), np.float64)
    stats = {"cpu": [np.zeros(3), np.ones(3)],
             "cuda": [cuda.to_device(np.zeros(3)), cuda.to_device(np.ones(3))]}
    host_y = F.batch_norm(x4, *stats["cpu"], training=True, momentum=0.3)
    gpu_y = F.batch_norm(cuda.to_device(x4), *stats["cuda"], training=True, momentum=0.3)
    assert_close(gpu_y.copy_to_host(), host_y, np.float64)
    for host, gpu in zip(stats["cpu"], stats["cuda"]):
        assert_close(gpu.copy_to_host(), host, np.float64)
    kept = F.dropout(cuda.to_device(x2), 0.5).copy_to_host()
    assert np.all((kept == 0) | np.isclose(kept, 2 * x2))
    # the losses: the loss classes' host values on the device input
    losses = {
        "cross_entropy": lambda a: F.cross_entropy(a(x2), labels),
        "mse_loss": lambda a: F.mse_loss(a(x2), a(x2[::-1].copy()), reduction="sum"),
        "bce_with_logits": lambda a: F.binary_cross_entropy_with_logits(
            a(x2), a(np.abs(x2) / 3), reduction="none"),
    }
    for name, call in losses.items():
        got = call(cuda.to_device)
        assert isinstance(got, np.ndarray), name
        assert_close(got, call(np.asarray), np.float64)
    with pytest.warns(UserWarning, match="target size"):   # broadcast, as on the host
        got = F.l1_loss(cuda.to_device(x2), x2[0], reduction="none")
    assert_close(got, np.abs(x2 - x2[0]), np.float64)
    # a device array with a host input: PyTorch's error for two devices, named
    with pytest.raises(RuntimeError, match="batch_norm: expected all arrays on one device"):
        F.batch_norm(x4, *stats["cuda"], training=True)
    # (linear, conv and layer_norm moved the host input over and gave a device array)
    d = fdevice.to_device
    for name, call in {"weight": lambda: F.linear(x3, d(w), b),
                       "bias": lambda: F.linear(x3, w, d(b)),
                       "weight ": lambda: F.conv2d(x4, d(cw), cb, padding=1),
                       "weight  ": lambda: F.conv1d(x3, d(cw.reshape(4, 9, 3)[:2, :4])),
                       "bias ": lambda: F.layer_norm(x3, (5,), x2[0], d(x2[1]))}.items():
        with pytest.raises(RuntimeError, match=rf"one device, got a CUDA device array for "
                                               rf"{name.strip()} with a NumPy input"):
            call()
    # and a NumPy weight, bias or statistic with a device input (linear, conv, batch_norm
    # and layer_norm copied it over), but a 0-d one, as PyTorch's CPU scalar tensor
    dx3, dx4 = d(x3), d(x4)
    for name, call in {
            "weight": lambda: F.linear(dx3, w, d(b)), "bias": lambda: F.linear(dx3, d(w), b),
            "weight ": lambda: F.conv1d(dx3, cw.reshape(4, 9, 3)[:2, :4].copy()),
            "bias ": lambda: F.conv2d(dx4, d(cw), cb, padding=1),
            "running_var": lambda: F.batch_norm(dx4, stats["cuda"][0], np.ones(3)),
            "weight  ": lambda: F.batch_norm(dx4, None, None, np.ones(3), training=True),
            "weight   ": lambda: F.layer_norm(dx3, (5,), x2[0])}.items():
        with pytest.raises(RuntimeError, match=rf"one device, got a NumPy array for "
                                               rf"{name.strip()} with a CUDA device input"):
            call()
    assert_close(F.linear(dx3, d(w), np.array(0.5)).copy_to_host(), x3 @ w.T + 0.5,
                 np.float64)
    # no cuda kernel: a clear error naming the function
    device = cuda.to_device(x4)
    for name, call in {"kl_div": lambda: F.kl_div(device, device, reduction="sum"),
                       "normalize": lambda: F.normalize(device),
                       "conv2d": lambda: F.conv2d(device, d(np.ones((3, 1, 3, 3))),
                                                  groups=3),
                       "one_hot": lambda: F.one_hot(cuda.to_device(labels)),
                       "grid_sample": lambda: F.grid_sample(device, device, align_corners=False),
                       }.items():
        with pytest.raises(NotImplementedError, match=rf"functional\.{name} .*no CUDA "
                                                      rf"kernel.*move the data to the CPU"):
            call()


def test_losses_run_where_pred_lives(rng):
    pred = rng.uniform(0.05, 0.95, (4, 3))
    target = rng.uniform(0, 1, (4, 3))
    for loss_fn in (nn.MSELoss(), nn.BCELoss()):
        host_loss = loss_fn(pred, target)
        host_grad = loss_fn.backward()
        gpu_loss = loss_fn(cuda.to_device(pred), target)
        assert isinstance(gpu_loss, float)
        np.testing.assert_allclose(gpu_loss, host_loss, rtol=1e-12)
        assert fdevice.is_device_array(loss_fn.backward())
        assert_close(loss_fn.backward().copy_to_host(), host_grad, np.float64)
    ce = nn.CrossEntropyLoss()
    labels = np.array([0, 2, 1, 2])
    expected = ce(pred, labels)
    np.testing.assert_allclose(ce(cuda.to_device(pred), cuda.to_device(labels)), expected)
    np.testing.assert_allclose(ce(cuda.to_device(pred), labels.astype(np.int32)), expected)
    with pytest.raises(ValueError, match="labels out of range"):
        ce(cuda.to_device(pred), cuda.to_device(np.array([0, 3, 1, 2])))
    with pytest.raises(ValueError, match="probabilities in"):
        nn.BCELoss()(cuda.to_device(pred + 1), target)


@pytest.mark.parametrize("bad", [[0, 3, 1, 2, 0], [0, -1, 1, 2, 0], [7, 7, 7, 7, 7]])
def test_device_labels_out_of_range_raise_what_host_labels_raise(rng, bad):
    """Device labels beside device logits are checked by the cross-entropy kernel (no
    copy to the host that would wait for the GPU): the same ValueError, word for word,
    as the host check of the same labels, from the loss and from the op."""
    pred = rng.standard_normal((5, 3))
    labels = np.array(bad)
    for make in (nn.CrossEntropyLoss, lambda: nn.CrossEntropyLoss(reduction="none"),
                 lambda: nn.CrossEntropyLoss(ignore_index=5)):
        with pytest.raises(ValueError) as host:
            make()(pred, labels)
        with pytest.raises(ValueError) as device:
            make()(cuda.to_device(pred), cuda.to_device(labels))
        assert str(device.value) == str(host.value)
        assert "labels out of range" in str(host.value)
    with pytest.raises(ValueError) as host:
        fastnn.ops.softmax_cross_entropy(pred, labels)
    with pytest.raises(ValueError) as device:
        fastnn.ops.softmax_cross_entropy(cuda.to_device(pred), cuda.to_device(labels))
    assert str(device.value) == str(host.value)
    # labels in range after a refusal: the loss and its gradient are the host's
    good = np.array([0, 2, 1, 2, 0])
    ce = nn.CrossEntropyLoss()
    np.testing.assert_allclose(ce(cuda.to_device(pred), cuda.to_device(good)),
                               nn.CrossEntropyLoss()(pred, good), rtol=1e-12)


def test_device_labels_refused_by_the_kernel_leave_the_last_gradient(rng):
    """The kernel has written its gradient buffer when it finds a label out of range: the
    loss's last gradient is in the other buffer, and an op's grad= gets nothing."""
    pred, other = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    good, bad = np.array([0, 2, 1, 2, 0]), np.array([0, 2, 7, 2, 0])
    ce = nn.CrossEntropyLoss()
    ce(cuda.to_device(pred), cuda.to_device(good))
    expected = fdevice.to_host(ce.backward())
    for _ in range(2):   # (either buffer holding the last gradient)
        with pytest.raises(ValueError, match="labels out of range"):
            ce(cuda.to_device(other), cuda.to_device(bad))
        np.testing.assert_array_equal(fdevice.to_host(ce.backward()), expected)
        ce(cuda.to_device(pred), cuda.to_device(good))
    grad = cuda.to_device(np.full((5, 3), 7.0))
    with pytest.raises(ValueError, match="labels out of range"):
        fastnn.ops.softmax_cross_entropy(cuda.to_device(other), cuda.to_device(bad), grad=grad)
    assert (grad.copy_to_host() == 7.0).all()
    loss, got = fastnn.ops.softmax_cross_entropy(cuda.to_device(pred), cuda.to_device(good),
                                                 grad=grad)
    assert got is grad
    np.testing.assert_allclose(grad.copy_to_host(), expected, rtol=1e-12)


@pytest.mark.parametrize("ignore_index", [-100, -1])
def test_device_labels_holding_ignore_index_are_ignored(rng, ignore_index):
    pred = rng.standard_normal((4, 3))
    labels = np.array([0, ignore_index, 2, 1])
    loss = nn.CrossEntropyLoss(ignore_index=ignore_index)
    expected = loss(pred, labels), loss.backward()
    got = loss(cuda.to_device(pred), cuda.to_device(labels))
    np.testing.assert_allclose(got, expected[0], rtol=1e-12)
    np.testing.assert_allclose(fdevice.to_host(loss.backward()), expected[1], rtol=1e-12)


def test_refused_vae_forward_keeps_where_the_gradient_goes(rng):
    vae = fastnn.models.VAE(4, 2, hidden=(5,)).to("cuda")
    x = rng.standard_normal((3, 4)).astype(np.float32)
    vae(cuda.to_device(x))
    with pytest.raises(TypeError):
        vae(x.astype(np.float64))   # refused by the encoder (float32 parameters)
    assert fdevice.is_device_array(vae.backward())


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_loss_reductions_and_logits_loss_on_the_gpu(rng, reduction):
    """reduction 'sum'/'none', BCEWithLogitsLoss, L1Loss and HuberLoss on device
    predictions: the host's values, device gradients."""
    pred = rng.standard_normal((4, 3))
    target = rng.uniform(0, 1, (4, 3))
    for make in (nn.MSELoss, nn.BCEWithLogitsLoss, nn.CrossEntropyLoss, nn.L1Loss,
                 nn.HuberLoss):
        tgt = np.array([0, 2, 1, 2]) if make is nn.CrossEntropyLoss else target
        host_fn, gpu_fn = make(reduction=reduction), make(reduction=reduction)
        expected = host_fn(pred, tgt)
        got = gpu_fn(cuda.to_device(pred), tgt)
        np.testing.assert_allclose(got, expected, rtol=1e-12)
        weights = rng.uniform(0.5, 2, np.shape(expected)) if reduction == "none" else 1.5
        grad = gpu_fn.backward(weights)
        assert fdevice.is_device_array(grad)
        assert_close(grad.copy_to_host(), host_fn.backward(weights), np.float64)


BROADCASTING_LOSSES = (nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss, nn.KLDivLoss,
                       nn.HingeEmbeddingLoss, nn.PoissonNLLLoss, nn.SoftMarginLoss,
                       nn.MultiLabelSoftMarginLoss)


@pytest.mark.parametrize("make", BROADCASTING_LOSSES, ids=lambda m: m.__name__)
def test_a_target_of_another_shape_broadcasts_on_the_gpu_as_on_the_host(rng, make):
    """A target that broadcasts against a device pred (PyTorch's CUDA losses take it,
    with the same 'Using a target size' warning as on the CPU): the host's losses,
    warnings and gradients (summed back to pred's shape, on the device); the GPU raised
    'expected target of shape (4, 3) (same as pred)'. MultiLabelSoftMarginLoss raised an
    IndexError for any device pred under the simulator, whose shapes refuse shape[-1]."""
    for pred_shape, target_shape in (((4, 3), (3,)), ((4, 1), (4, 3)), ((4, 3), (4, 3))):
        if make is nn.SoftMarginLoss and pred_shape == (4, 1):
            continue   # (a target broadcast to pred's shape only: refused on both)
        pred = rng.standard_normal(pred_shape)
        target = np.sign(rng.standard_normal(target_shape))
        if make is nn.MultiLabelSoftMarginLoss:
            target = (target > 0).astype(np.float64)
        for reduction in ("mean", "none"):
            fns, results = [make(reduction=reduction), make(reduction=reduction)], []
            for fn, device in zip(fns, (False, True)):
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    results.append((fn(cuda.to_device(pred) if device else pred, target),
                                    len(caught)))
            (expected, host_warnings), (loss, gpu_warnings) = results
            weights = rng.uniform(0.5, 2, np.shape(expected)) if reduction == "none" else 1.5
            host_grad, grad = (fn.backward(weights) for fn in fns)
            np.testing.assert_allclose(loss, expected, rtol=1e-12)
            assert gpu_warnings == host_warnings
            assert fdevice.is_device_array(grad) and grad.shape == pred_shape
            assert_close(grad.copy_to_host(), host_grad, np.float64)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_class_weighted_smoothed_and_nll_losses_on_the_gpu(rng, reduction):
    """CrossEntropyLoss with weight/ignore_index/label_smoothing and NLLLoss on device
    predictions and labels: the host's values, device gradients."""
    pred = rng.standard_normal((5, 3))
    labels = np.array([0, 2, -100, 1, 2])
    weight = np.array([0.5, 1.0, 2.0])
    for make in (lambda: nn.CrossEntropyLoss(weight=weight, label_smoothing=0.1,
                                             reduction=reduction),
                 lambda: nn.NLLLoss(weight=weight, reduction=reduction)):
        host_fn, gpu_fn = make(), make()
        expected = host_fn(pred, labels)
        got = gpu_fn(cuda.to_device(pred), cuda.to_device(labels))
        np.testing.assert_allclose(got, expected, rtol=1e-12)
        grad = gpu_fn.backward()
        assert fdevice.is_device_array(grad)
        assert_close(grad.copy_to_host(), host_fn.backward(), np.float64)
    for make, target in ((lambda: nn.BCEWithLogitsLoss(pos_weight=np.array([0.5, 1.0, 3.0]),
                                                       reduction=reduction),
                          rng.uniform(0, 1, pred.shape)),
                         (lambda: nn.KLDivLoss(reduction="batchmean" if reduction == "mean"
                                               else reduction),
                          rng.dirichlet(np.ones(3), size=pred.shape[0]))):
        host_fn, gpu_fn = make(), make()
        expected = host_fn(pred, target)
        np.testing.assert_allclose(gpu_fn(cuda.to_device(pred), target), expected, rtol=1e-12)
        grad = gpu_fn.backward()
        assert fdevice.is_device_array(grad)
        assert_close(grad.copy_to_host(), host_fn.backward(), np.float64)
    for shape in ((3,), (2, 3, 2)):  # one sample, and a (N, C, L) map of scores
        pred, labels = rng.standard_normal(shape), rng.integers(0, 3, shape[:1] + shape[2:]
                                                                if len(shape) > 1 else ())
        host_fn, gpu_fn = nn.CrossEntropyLoss(reduction=reduction), \
            nn.CrossEntropyLoss(reduction=reduction)
        expected = host_fn(pred, labels)
        np.testing.assert_allclose(gpu_fn(cuda.to_device(pred), labels), expected, rtol=1e-12)
        grad = gpu_fn.backward()
        assert fdevice.is_device_array(grad) and grad.shape == shape
        assert_close(grad.copy_to_host(), host_fn.backward(), np.float64)
    pred = rng.standard_normal((5, 3))
    host_head, gpu_head = nn.LogSoftmax().double(), nn.LogSoftmax().double().to("cuda")
    logp = gpu_head(cuda.to_device(pred))
    assert fdevice.is_device_array(logp)
    assert_close(logp.copy_to_host(), host_head(pred), np.float64)
    g = rng.standard_normal(pred.shape)
    assert_close(gpu_head.backward(cuda.to_device(g)).copy_to_host(), host_head.backward(g),
                 np.float64)


def test_gradient_clipping_on_the_gpu(rng):
    host, gpu = twins(mlp)
    x = rng.standard_normal((8, 6))
    for model in (host, gpu):
        model(x)
        model.backward(np.full((8, 3), 40.0))
    totals = [fastnn.nn.utils.clip_grad_norm_(m.parameters(), 0.5) for m in (host, gpu)]
    np.testing.assert_allclose(totals[1], totals[0], rtol=1e-12)
    for model in (host, gpu):
        fastnn.nn.utils.clip_grad_value_(model.parameters(), 0.01)
    for p_gpu, p_host in zip(gpu.parameters(), host.parameters()):
        assert fdevice.is_device_array(p_gpu.grad)
        assert_close(p_gpu.grad.copy_to_host(), p_host.grad, np.float64)
    gpu[0].weight.grad = cuda.to_device(np.full(gpu[0].weight.shape, np.inf))
    with pytest.raises(RuntimeError, match="^clip_grad_norm_: the total norm of order 2.0 "
                                           "of the gradients is non-finite"):
        fastnn.nn.utils.clip_grad_norm_(gpu.parameters(), 0.5, error_if_nonfinite=True)


def test_batchnorm_options_adamw_scheduler_and_init_on_the_gpu(rng):
    """BatchNorm without affine parameters or running statistics, AdamW with a StepLR
    schedule and a frozen layer, and nn.init on device parameters, against the host."""
    def build():
        return nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5, affine=False),
                             nn.ReLU(inplace=True), nn.Linear(5, 4, bias=False),
                             nn.BatchNorm1d(4, track_running_stats=False), nn.Linear(4, 3))
    # (no bias before a BatchNorm: its true gradient is 0, and Adam turns the rounding
    # noise there into steps of +-lr that differ between any two implementations)
    host, gpu = twins(build)
    for model in (host, gpu):
        model[0].requires_grad_(False)
    opts = [fastnn.optim.AdamW(m.parameters(), lr=0.05, weight_decay=0.1) for m in (host, gpu)]
    scheds = [fastnn.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5) for o in opts]
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(2):
        x, y = rng.standard_normal((8, 6)), rng.integers(0, 3, 8)
        for model, opt, sched, batch in ((host, opts[0], scheds[0], x),
                                         (gpu, opts[1], scheds[1], cuda.to_device(x))):
            opt.zero_grad()
            loss_fn(model(batch), y)
            model.backward(loss_fn.backward())
            opt.step()
            sched.step()
    host_state, gpu_state = host.state_dict(), gpu.state_dict()
    assert sorted(gpu_state) == sorted(host_state)
    for key in host_state:
        assert_close(gpu_state[key], host_state[key], np.float64, err_msg=key)
    for model in (host, gpu):
        model.eval()
    x = rng.standard_normal((3, 6))
    assert_close(gpu(x), host(x), np.float64)
    fastnn.manual_seed(4)
    nn.init.kaiming_uniform_(gpu[3].weight, nonlinearity="relu")
    fastnn.manual_seed(4)
    nn.init.kaiming_uniform_(host[3].weight, nonlinearity="relu")
    assert fdevice.is_device_array(gpu[3].weight.data)
    np.testing.assert_array_equal(gpu[3].weight.data.copy_to_host(), host[3].weight.data)


def test_device_input_to_a_host_model_and_unknown_devices_are_errors(rng):
    model = mlp()
    with pytest.raises(ValueError, match="cuda device array but the module is on the cpu"):
        model(cuda.to_device(rng.standard_normal((4, 6)).astype(np.float32)))
    with pytest.raises(ValueError, match="expected device 'cpu' or 'cuda'"):
        model.to("tpu")


@pytest.mark.parametrize("make", [lambda ps: fastnn.optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: fastnn.optim.Adam(ps, lr=0.01)])
def test_an_optimizer_built_before_the_model_moved_steps_it_where_it_went(rng, make):
    """PyTorch's optimizer keeps the moved parameters (moved in place); fastnn's step
    raised 'build the optimizer after moving the model'. The optimizer now rebuilds its
    flat buffers on the new device, its state (momentum, Adam's moments, step counts)
    copied along, and the run is the host-only run's, there and back again."""
    fastnn.manual_seed(0)
    moved, host = mlp_without_batchnorm().double(), mlp_without_batchnorm().double()
    host.load_state_dict(moved.state_dict())
    opts = make(moved.parameters()), make(host.parameters())
    loss = nn.CrossEntropyLoss()
    for step in range(4):
        if step in (1, 3):
            moved.to("cuda" if step == 1 else "cpu")
        x, y = rng.standard_normal((5, 6)), rng.integers(0, 3, 5)
        for model, opt in zip((moved, host), opts):
            opt.zero_grad()
            loss(model(x), y)
            model.backward(loss.backward())
            opt.step()
        if step == 1:
            assert_on_gpu(moved, opts[0])
    for a, b in zip(moved.parameters(), host.parameters()):
        assert fdevice.device_of(a.data) == "cpu"
        assert_close(a.data, b.data, np.float64)
    for key, value in opts[1].state_dict()["state"][0].items():
        assert_close(opts[0].state_dict()["state"][0][key], value, np.float64, err_msg=key)


def test_embedding_on_the_gpu(rng):
    """Indices in (host or device), the table and its gradient on the GPU."""
    host, gpu = twins(lambda: nn.Sequential(nn.Embedding(7, 3), nn.Flatten(), nn.Linear(6, 2)))
    idx = rng.integers(0, 7, (4, 2))
    for given in (idx, cuda.to_device(idx)):
        y = gpu(given)
        assert_close(fdevice.to_host(y), host(idx), np.float64)
    g = np.ones((4, 2))
    assert gpu.backward(cuda.to_device(g)) is None and host.backward(g) is None
    for p_gpu, p_host in zip(gpu.parameters(), host.parameters()):
        assert fdevice.is_device_array(p_gpu.grad)
        assert_close(fdevice.to_host(p_gpu.grad), p_host.grad, np.float64)


def test_recurrent_layers_on_the_gpu(rng):
    """LSTM and GRU (2 layers, bidirectional) moved to the GPU: outputs, states and
    gradients where the input lives, parameters' gradients on the device, as on the host."""
    for build in (lambda: nn.LSTM(3, 4, num_layers=2, bidirectional=True),
                  lambda: nn.GRU(3, 4, num_layers=2, batch_first=True)):
        host, gpu = twins(build)
        x = rng.standard_normal((5, 2, 3))
        out, state = gpu(cuda.to_device(x))
        ref, ref_state = host(x)
        assert fdevice.is_device_array(out)
        assert_close(out.copy_to_host(), ref, np.float64)
        h, h_ref = (state[0], ref_state[0]) if isinstance(state, tuple) else (state, ref_state)
        assert_close(fdevice.to_host(h), h_ref, np.float64)
        g = rng.standard_normal(ref.shape)
        grad = gpu.backward(cuda.to_device(g))
        assert fdevice.is_device_array(grad)
        assert_close(grad.copy_to_host(), host.backward(g), np.float64)
        for p_gpu, p_host in zip(gpu.parameters(), host.parameters()):
            assert fdevice.is_device_array(p_gpu.grad)
            assert_close(fdevice.to_host(p_gpu.grad), p_host.grad, np.float64)


def test_multihead_attention_on_the_gpu(rng):
    host, gpu = twins(lambda: nn.MultiheadAttention(4, 2, batch_first=True))
    q, kv = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))
    out, weights = gpu(cuda.to_device(q), cuda.to_device(kv), cuda.to_device(kv))
    ref, ref_weights = host(q, kv, kv)
    assert fdevice.is_device_array(out) and fdevice.is_device_array(weights)
    assert_close(out.copy_to_host(), ref, np.float64)
    assert_close(weights.copy_to_host(), ref_weights, np.float64)
    g = rng.standard_normal(ref.shape)
    for ours, theirs in zip(gpu.backward(cuda.to_device(g)), host.backward(g)):
        assert fdevice.is_device_array(ours)
        assert_close(ours.copy_to_host(), theirs, np.float64)
    for p_gpu, p_host in zip(gpu.parameters(), host.parameters()):
        assert_close(fdevice.to_host(p_gpu.grad), p_host.grad, np.float64)


def test_transformer_encoder_on_the_gpu(rng):
    host, gpu = twins(lambda: nn.TransformerEncoder(
        nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, norm_first=True), 2))
    x = rng.standard_normal((4, 2, 8))
    y = gpu(cuda.to_device(x))
    assert fdevice.is_device_array(y)
    assert_close(y.copy_to_host(), host(x), np.float64)
    g = rng.standard_normal((4, 2, 8))
    grad = gpu.backward(cuda.to_device(g))
    assert_close(grad.copy_to_host(), host.backward(g), np.float64)
    for p_gpu, p_host in zip(gpu.parameters(), host.parameters()):
        assert_close(fdevice.to_host(p_gpu.grad), p_host.grad, np.float64)


def test_dropout_on_the_gpu_masks_and_scales():
    layer = nn.Dropout(0.5).to("cuda")
    y = layer(np.ones((16, 64), np.float32))
    assert set(np.unique(y)) <= {0.0, 2.0}
    assert 0.3 < np.mean(y == 0) < 0.7
    grad = layer.backward(np.ones_like(y))
    np.testing.assert_array_equal(grad, y)  # the same mask and scale
    layer.eval()
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(layer(x), x)
    channels = nn.Dropout2d(0.5).to("cuda")
    y = channels(cuda.to_device(np.ones((4, 8, 2, 2), np.float32)))
    assert fdevice.is_device_array(y)
    y = y.copy_to_host()
    assert np.all(y == y[:, :, :1, :1]) and set(np.unique(y)) <= {0.0, 2.0}
    np.testing.assert_array_equal(channels.backward(np.ones_like(y)), y)


def test_fit_and_evaluate_train_a_gpu_model_like_a_host_one(rng):
    from fastnn.train import fit
    x = rng.standard_normal((24, 6))
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    results = []
    host, gpu = twins(mlp)
    for model in (host, gpu):
        opt = fastnn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        results.append(fit(model, nn.CrossEntropyLoss(), opt, (x, y), (x[:8], y[:8]),
                           epochs=2, batch_size=12, progress=False, log=False))
    for key in ("train_loss", "test_loss", "test_accuracy", "train_accuracy"):
        np.testing.assert_allclose(results[1][key], results[0][key], rtol=1e-9, err_msg=key)
    assert_on_gpu(gpu)


@pytest.mark.gpu  # minutes under the simulator: tests/test_cuda_sim.py deselects it
def test_the_train_command_with_backend_cuda(tmp_path):
    import json
    from fastnn import cli
    metrics = tmp_path / "m.json"
    code = cli.main(["train", "--dataset", "digits", "--backend", "cuda", "--hidden", "16",
                     "--max-steps", "3", "--batch-size", "16", "--no-progress",
                     "--metrics", str(metrics)])
    assert code in (0, None)
    result = json.loads(metrics.read_text())
    assert result["backend"] == "cuda" and result["steps"] == 3
    assert 0.0 <= result["test_accuracy"] <= 1.0


def test_sequential_with_layers_on_two_devices_names_the_layer():
    for move in (lambda m: m[0].to("cuda"), lambda m: m.to("cuda") and m[2].to("cpu")):
        model = nn.Sequential(nn.Linear(5, 3), nn.ReLU(), nn.Linear(3, 2))
        move(model)
        with pytest.raises(ValueError, match=r"Sequential layer \d: Linear.* is on c"):
            model(np.ones((2, 5), np.float32))


def test_fastnn_save_stores_a_gpu_models_keep_vars_state_and_device_arrays(tmp_path):
    """torch.save takes CUDA tensors anywhere in what it saves; fastnn.save refused a GPU
    model's state_dict(keep_vars=True) (its buffers are device arrays) and device arrays
    in a dict ('cannot store state of type DeviceNDArray'). Their values are stored now
    (NumPy on load), and load_state_dict puts them back on the GPU."""
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).to("cuda")
    model(np.arange(9, dtype=np.float32).reshape(3, 3))
    state = model.state_dict()
    saved = {"keep_vars": model.state_dict(keep_vars=True),
             "checkpoint": {"model": model.state_dict(keep_vars=True), "epoch": 3},
             "device": {k: model.get_parameter(k).data if k.endswith(("weight", "bias"))
                        else model.get_buffer(k) for k in state}}
    for name, value in saved.items():
        fastnn.save(value, tmp_path / f"{name}.npz")
        loaded = fastnn.load(tmp_path / f"{name}.npz")
        loaded = loaded.get("model", loaded)
        assert sorted(loaded) == sorted(state), name
        for key, array in state.items():
            assert type(loaded[key]) is np.ndarray, (name, key)
            np.testing.assert_array_equal(loaded[key], array, err_msg=f"{name} {key}")
        twin = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).to("cuda")
        twin.load_state_dict(loaded)
        assert fdevice.is_device_array(twin[1].running_mean)


def test_deepcopy_and_pickle_of_a_gpu_optimizer_step_the_copies():
    import copy
    import pickle
    x = np.ones((2, 3), np.float32)
    for make in (lambda p: fastnn.optim.SGD(p, lr=0.1, momentum=0.9),
                 lambda p: fastnn.optim.Adam(p, lr=0.1)):
        model = nn.Linear(3, 2).to("cuda")
        opt = make(model.parameters())
        model(x)
        model.backward(np.ones((2, 2), np.float32))
        opt.step()
        for copier in (copy.deepcopy, lambda v: pickle.loads(pickle.dumps(v))):
            twin, twin_opt = copier((model, opt))
            for m, o in ((model, opt), (twin, twin_opt)):   # one more step each
                o.zero_grad()
                m(x)
                m.backward(np.ones((2, 2), np.float32))
                o.step()
            assert twin.weight.device == "cuda"
            np.testing.assert_array_equal(twin.weight.data.copy_to_host(),
                                          model.weight.data.copy_to_host())


def test_a_host_gradient_for_a_gpu_parameter_is_refused_where_assigned():
    layer = nn.Linear(3, 2).to("cuda")
    with pytest.raises(ValueError, match="gradient on cpu to a parameter on cuda"):
        layer.weight.grad = np.zeros((2, 3), np.float32)
    layer.weight.grad = cuda.to_device(np.ones((2, 3), np.float32))


@pytest.mark.parametrize("name,options", [("SGD", {}), ("SGD", dict(momentum=0.9)),
                                          ("Adam", {}), ("Adagrad", {}), ("RMSprop", {}),
                                          ("Adamax", {}), ("NAdam", {})])
def test_infinite_parameters_stay_infinite_on_the_gpu(name, options):
    """No weight decay: no 0 * inf = NaN in the update, as PyTorch's (and the host's)."""
    start = np.array([np.inf, -np.inf, 1.0, -2.0], np.float32)
    grad = np.array([1.0, -1.0, 0.5, 0.25], np.float32)
    results = []
    for device in ("cpu", "cuda"):
        layer = nn.Linear(4, 1, bias=False).to(device)
        layer.weight.data = fdevice.namespace(device).put(start[None].copy())
        opt = getattr(fastnn.optim, name)(layer.parameters(), lr=0.1, **options)
        for _ in range(2):
            layer.weight.grad = fdevice.namespace(device).put(grad[None].copy())
            opt.step()
        results.append(fdevice.to_host(layer.weight.data)[0])
    np.testing.assert_array_equal(results[1][:2], start[:2])
    assert_close(results[1], results[0], np.float32)


def test_a_move_between_forward_and_backward_is_named_and_a_same_device_one_kept(rng):
    # (both said "backward called before forward"; PyTorch's graph survives .to('cuda')
    # of a model already there)
    host, gpu = twins(lambda: nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(),
                                            nn.Linear(3, 2)))
    x, g = rng.standard_normal((3, 4)), rng.standard_normal((3, 2))
    host(x)
    gpu(x)
    gpu.to("cuda")
    gpu.cuda()
    assert_close(gpu.backward(g), host.backward(g), np.float64)
    gpu(x)
    gpu.cpu()
    with pytest.raises(RuntimeError, match="moved to cpu after its last forward"):
        gpu.backward(g)
    host(x)
    host.to("cuda")
    with pytest.raises(RuntimeError, match="moved to cuda after its last forward"):
        host.backward(g)
    # a conversion on the GPU (made on the host and moved back) is named as one, and one
    # to the dtype the model has keeps the backward
    y = gpu(x)
    gpu.double()
    kept = gpu.backward(g)
    gpu(x)
    gpu.float()
    with pytest.raises(RuntimeError, match="converted to float32 after its last forward"):
        gpu.backward(g)
    assert y.shape == (3, 2) and kept.shape == x.shape


def test_a_copy_of_a_gpu_layer_converted_after_its_forward_refuses_that_backward(rng):
    # (the marker held the forward's device arrays: a deepcopy or pickle lost the refusal,
    # and the copy's backward failed on a dtype mismatch instead)
    import copy
    import pickle
    q = rng.standard_normal((3, 2, 4)).astype(np.float32)
    layer = nn.MultiheadAttention(4, 2).to("cuda")
    out = layer(q, q, q)[0]
    layer.double()
    for model in (layer, copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        with pytest.raises(RuntimeError, match="converted to float64 after its last forward"):
            model.backward(np.ones_like(out, dtype=np.float64))


def test_a_zero_size_parameter_on_the_gpu_steps_as_on_the_host():
    """nn.Linear(0, 3) (PyTorch accepts it: a weight of no elements, y = bias) on the GPU:
    an optimizer over it builds and steps as on the host. Fixed: under the simulator,
    copying the weight into the optimizer's flat buffer raised 'incompatible strides'."""
    results = []
    for device in ("cpu", "cuda"):
        fastnn.manual_seed(0)
        layer = nn.Linear(0, 3).to(device)
        opt = fastnn.optim.Adam(layer.parameters(), lr=0.1)
        opt.zero_grad()
        y = layer(np.zeros((2, 0), np.float32))
        assert layer.backward(np.ones((2, 3), np.float32)).shape == (2, 0)
        opt.step()
        results.append((y, fdevice.to_host(layer.bias.data)))
    np.testing.assert_array_equal(results[1][0], results[0][0])
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-6)


def test_the_experiment_commands_with_backend_cuda_put_their_models_on_the_gpu(tmp_path,
                                                                              monkeypatch):
    """vae, dream and multitask with --backend cuda, as train: the models (and so their
    optimizers' state) on the GPU, NumPy batches in and out. They ran host models under
    the cuda backend, every kernel copying the parameters over and back; the results
    were the same, as they still are (dream: the numba backend's probabilities)."""
    from fastnn import cli
    from fastnn.experiments import dream, multitask, vae
    devices = []

    def recording(move):
        def on_backend_device(model):
            model = move(model)
            devices.append((type(model).__name__, model.device,
                            all(fdevice.is_device_array(p.data) for p in model.parameters())))
            return model
        return on_backend_device

    for module in (dream, multitask, vae):
        monkeypatch.setattr(module, "on_backend_device", recording(module.on_backend_device))
    backend = fastnn.get_backend()   # (the commands set the process's backend)
    try:
        _run_the_experiment_commands(tmp_path, dream, multitask, cli)
    finally:
        fastnn.set_backend(backend)
    assert devices == [("VAE", "cuda", True), ("MLP", "cuda", True), ("MLP", "cpu", False),
                       ("Sequential", "cuda", True)]


def _run_the_experiment_commands(tmp_path, dream, multitask, cli):
    import json
    assert cli.main(["vae", "--n-train", "16", "--n-test", "8", "--epochs", "1", "--hidden",
                     "4", "--batch-size", "8", "--backend", "cuda", "--no-progress",
                     "--out", str(tmp_path / "v.png")]) == 0
    fastnn.manual_seed(0)
    fastnn.save(fastnn.models.MLP(64, [4], 10), tmp_path / "c.npz")
    probabilities = []
    for backend in ("cuda", "numba"):
        assert cli.main(["dream", "--checkpoint", str(tmp_path / "c.npz"), "--target-class",
                         "1", "--steps", "1", "--scales", "1", "--backend", backend,
                         "--no-progress", "--out", str(tmp_path / f"{backend}.png"),
                         "--metrics", str(tmp_path / f"{backend}.json")]) == 0
        metrics = json.loads((tmp_path / f"{backend}.json").read_text())
        probabilities.append((metrics["probability_before"], metrics["probability_after"]))
    np.testing.assert_allclose(probabilities[0], probabilities[1], rtol=1e-5)
    fastnn.set_backend("cuda")   # (the multitask command's classifier trained alone)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 4)).astype(np.float32), rng.integers(0, 3, 6)
    args = type("Args", (), {"epochs": 1, "batch_size": 3, "lr": 0.1, "momentum": 0.9})
    accuracy = multitask.train_classifier_alone(x, y, x, y, 5, 3, args,
                                                np.random.default_rng(0))
    assert 0.0 <= accuracy <= 1.0


def test_dtype_errors_of_device_arrays_say_how_to_convert_them():
    """A device array has no .astype: the hint goes through the host."""
    logits = cuda.to_device(np.zeros((4, 3), np.float32))
    target = cuda.to_device(np.eye(3)[[0, 1, 2, 0]])   # float64, as np.eye gives
    hint = (r"fastnn\.device\.to_device\(fastnn\.device\.to_host\(target\)"
            r"\.astype\(np\.float32\)\) converts it")
    with pytest.raises(TypeError, match="target is float64 but expected float32.*" + hint):
        nn.MSELoss()(logits, target)
    layer = nn.Linear(3, 2).to("cuda")
    with pytest.raises(TypeError, match=r"got int64 \(fastnn\.device\.to_device\(fastnn\."
                                        r"device\.to_host\(input\)\.astype\(np\.float32\)\)"):
        layer(cuda.to_device(np.ones((2, 3), np.int64)))
    converted = fdevice.to_device(fdevice.to_host(target).astype(np.float32))
    assert float(nn.MSELoss()(logits, converted)) == pytest.approx(1 / 3)


@pytest.mark.parametrize("frozen", ["first", "middle", "middle.bias", "middle.weight"])
def test_frozen_linears_on_the_device_train_as_on_the_host(rng, frozen):
    """A frozen Linear on the GPU: the kernels get no gradient to write for it (the
    first one is skipped, a middle one gives its input gradient only; a frozen bias or
    weight alone takes the split or the combined activation-backward kernel), and two
    SGD steps move the parameters as on the host."""
    def build():
        return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4), nn.ReLU(),
                             nn.Linear(4, 3))
    host, gpu = twins(build)
    for model in (host, gpu):
        target = {"first": model[0], "middle": model[2], "middle.bias": model[2].bias,
                  "middle.weight": model[2].weight}[frozen]
        target.requires_grad_(False)
    opts = [fastnn.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in (host, gpu)]
    for _ in range(2):
        x, y = rng.standard_normal((4, 6)), rng.integers(0, 3, 4)
        grads_in = []
        for model, opt, xb in ((host, opts[0], x), (gpu, opts[1], cuda.to_device(x))):
            opt.zero_grad()
            loss_fn = nn.CrossEntropyLoss()
            loss_fn(model(xb), y)
            grads_in.append(model.backward(loss_fn.backward()))
            opt.step()
        assert_close(fdevice.to_host(grads_in[1]), grads_in[0], np.float64)
        for p, q in zip(gpu.parameters(), host.parameters()):
            assert p.requires_grad == q.requires_grad
            assert_close(fdevice.to_host(p.grad), q.grad, np.float64)
            assert_close(fdevice.to_host(p.data), q.data, np.float64)
    frozen_grads = [fdevice.to_host(p.grad) for p in gpu.parameters() if not p.requires_grad]
    assert frozen_grads and not any(g.any() for g in frozen_grads)   # left alone


@pytest.mark.parametrize("case", ["lstm", "multihead_attention"])
def test_frozen_recurrent_and_attention_parameters_on_the_gpu(rng, monkeypatch, case):
    """A GPU LSTM (2 layers, bidirectional) or MultiheadAttention with some parameters
    frozen: their device .grad left as it was (the same array), their gradients never
    computed (the host backward's weight products and attention gradients, which both
    run, skip them), the input and other gradients as on the host."""
    from fastnn.nn import recurrent
    computed = []
    weight_grad, accumulate = recurrent._weight_grad, nn.MultiheadAttention._accumulate
    monkeypatch.setattr(recurrent, "_weight_grad",
                        lambda da, x: computed.append(x.shape) or weight_grad(da, x))
    monkeypatch.setattr(nn.MultiheadAttention, "_accumulate", staticmethod(
        lambda param, gradient: accumulate(
            param, lambda: computed.append(id(param)) or gradient())))
    if case == "lstm":
        build, frozen = (lambda: nn.LSTM(3, 4, num_layers=2, bidirectional=True),
                         ("weight_ih_l0", "weight_hh_l1_reverse", "bias_ih_l1"))
        x = rng.standard_normal((5, 2, 3))
    else:
        build, frozen = lambda: nn.MultiheadAttention(4, 2), ("in_proj_weight", "out_proj.bias")
        x = rng.standard_normal((3, 2, 4))
    host, gpu = twins(build)
    held = {}
    for model in (host, gpu):
        model.zero_grad()
        for name in frozen:
            dict(model.named_parameters())[name].requires_grad_(False)
    for name in frozen:
        held[name] = dict(gpu.named_parameters())[name].grad
    g = rng.standard_normal(x.shape[:2] + ((8,) if case == "lstm" else (4,)))
    results = []
    for model, put in ((host, lambda a: a), (gpu, cuda.to_device)):
        computed.clear()
        args = (put(x),) if case == "lstm" else (put(x),) * 3
        model(*args)
        grads = model.backward(put(g))
        results.append(([fdevice.to_host(a) for a in
                         (grads if isinstance(grads, tuple) else (grads,))], list(computed)))
    (host_grads, host_work), (gpu_grads, gpu_work) = results
    for ours, theirs in zip(gpu_grads, host_grads):
        assert_close(ours, theirs, np.float64)
    params = dict(gpu.named_parameters())
    trained = [p for p in params.values() if p.requires_grad]
    if case == "lstm":   # (one product a trained weight: no W_hr, one backward)
        assert len(gpu_work) == sum(1 for n in params if "weight" in n and n not in frozen)
    else:
        assert set(gpu_work) == {id(p) for p in trained}
    assert len(gpu_work) == len(host_work)
    for name, p in params.items():
        if name in frozen:
            assert p.grad is held[name] and not fdevice.to_host(p.grad).any()
        else:
            assert_close(fdevice.to_host(p.grad),
                         dict(host.named_parameters())[name].grad, np.float64)


# Layers whose backward runs a cuda kernel with a None gradient for a frozen parameter
# (8445f42 ran those paths on the CPU backends only): (layer, input shape), small for
# the simulator
FROZEN_KERNEL_CASES = {
    "conv2d": (lambda: nn.Conv2d(2, 3, 3, padding=1), (2, 2, 3, 3)),
    "conv2d_depthwise": (lambda: nn.Conv2d(2, 4, 3, padding=1, groups=2), (2, 2, 3, 3)),
    "batchnorm1d": (lambda: nn.BatchNorm1d(3), (4, 3)),
    "batchnorm2d": (lambda: nn.BatchNorm2d(3), (2, 3, 2, 2)),
    "layernorm": (lambda: nn.LayerNorm(4), (3, 4)),
}


@pytest.mark.parametrize("case", list(FROZEN_KERNEL_CASES))
def test_a_frozen_parameter_of_a_gpu_layer_keeps_its_gradient_as_on_the_host(rng, case):
    """Each parameter frozen in turn (after a gradient was set, which must stay as it is):
    the kernels get None for it, and the input gradient and the other parameter's
    gradient are the host's; all frozen with no input gradient wanted, backward does
    nothing and returns None."""
    make, shape = FROZEN_KERNEL_CASES[case]
    x, grad_out = rng.standard_normal(shape), None
    names = [name for name, _ in make().named_parameters()]
    for frozen in names + [None]:
        host, gpu = twins(make)
        for model, put in ((host, np.asarray), (gpu, cuda.to_device)):
            for i, p in enumerate(model.parameters()):
                p.grad = put(np.full(p.shape, 0.5 + i))
            for name, p in model.named_parameters():
                if frozen in (None, name):
                    p.requires_grad_(False)
        y = host(x)
        grad_out = rng.standard_normal(y.shape)
        want = host.backward(grad_out, need_grad_in=frozen is not None)
        gpu(cuda.to_device(x))
        got = gpu.backward(cuda.to_device(grad_out), need_grad_in=frozen is not None)
        if frozen is None:
            assert got is None and want is None
        else:
            assert fdevice.is_device_array(got)
            assert_close(got.copy_to_host(), want, np.float64)
        for i, ((name, p), q) in enumerate(zip(gpu.named_parameters(), host.parameters())):
            assert fdevice.is_device_array(p.grad)
            if frozen in (None, name):
                assert fastnn.optim.has_no_grad(p)
                np.testing.assert_array_equal(p.grad.copy_to_host(), np.full(p.shape, 0.5 + i))
            else:
                assert_close(p.grad.copy_to_host(), q.grad, np.float64,
                             err_msg=f"{case} {name}")


@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_optimizers_on_the_gpu_skip_a_frozen_batchnorm_weight_as_on_the_host(rng, opt_name):
    """Momentum, Adam's moments and weight decay leave a frozen parameter (its kernel
    given no gradient) where it was, and step the others as on the host."""
    def build():   # (no bias before BatchNorm: see test_batchnorm_options_adamw_...)
        return nn.Sequential(nn.Linear(4, 5, bias=False), nn.BatchNorm1d(5), nn.ReLU(),
                             nn.Linear(5, 3))
    host, gpu = twins(build)
    start = fdevice.to_host(gpu[1].weight.data).copy()
    for model in (host, gpu):
        model[1].weight.requires_grad_(False)
    kwargs = {"SGD": {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1},
              "Adam": {"lr": 0.01, "weight_decay": 0.1}}[opt_name]
    opts = [getattr(fastnn.optim, opt_name)(m.parameters(), **kwargs) for m in (host, gpu)]
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(2):
        x, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
        for model, opt, batch in ((host, opts[0], x), (gpu, opts[1], cuda.to_device(x))):
            opt.zero_grad()
            loss_fn(model(batch), y)
            model.backward(loss_fn.backward(), need_grad_in=False)
            opt.step()
    np.testing.assert_array_equal(fdevice.to_host(gpu[1].weight.data), start)
    host_state = host.state_dict()
    for key, value in gpu.state_dict().items():
        assert_close(value, host_state[key], np.float64, err_msg=key)


def test_fit_trains_a_gpu_model_with_a_frozen_first_layer_as_the_host(rng):
    from fastnn.train import fit

    def build():
        return nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    x = rng.standard_normal((16, 6))
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    host, gpu = twins(build)
    start = fdevice.to_host(gpu[0].weight.data).copy()
    results = []
    for model in (host, gpu):
        model[0].requires_grad_(False)
        opt = fastnn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        results.append(fit(model, nn.CrossEntropyLoss(), opt, (x, y), epochs=1,
                           batch_size=8, progress=False, log=False))
    np.testing.assert_allclose(results[1]["train_loss"], results[0]["train_loss"], rtol=1e-9)
    np.testing.assert_array_equal(fdevice.to_host(gpu[0].weight.data), start)
    assert_on_gpu(gpu)
    host_state = host.state_dict()
    for key, value in gpu.state_dict().items():
        assert_close(value, host_state[key], np.float64, err_msg=key)
