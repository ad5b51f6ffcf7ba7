"""BatchNorm semantics beyond the PyTorch comparison: the mean-only variant, running
statistics over several steps and eval mode, and zero-variance features."""
import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn

from conftest import assert_close
from nn_torch_helpers import run_torch, torch_twin


def test_mean_only_subtracts_the_batch_mean_and_adds_the_bias(backend, dtype, rng):
    layer = nn.BatchNorm1d(4, mean_only=True).to_dtype(dtype)
    assert layer.weight is None and layer.running_var is None
    assert [n for n, _ in layer.named_parameters()] == ["bias"]
    layer.bias.data[...] = np.arange(4)
    x = rng.standard_normal((6, 4)).astype(dtype)
    y = layer(x)
    assert_close(y, x - x.mean(0) + np.arange(4), dtype)
    assert_close(layer.running_mean, 0.1 * x.mean(0), dtype)
    g = rng.standard_normal((6, 4)).astype(dtype)
    assert_close(layer.backward(g), g - g.mean(0), dtype)
    assert_close(layer.bias.grad, g.sum(0), dtype)

    layer.eval()  # running mean, constant: the input gradient passes through unchanged
    y_eval = layer(x)
    assert_close(y_eval, x - layer.running_mean + np.arange(4), dtype)
    assert_close(layer.backward(g), g, dtype)


@pytest.mark.parametrize("shape", [(1, 4), (1, 4, 1)])
def test_mean_only_trains_on_one_value_per_channel(backend, dtype, rng, shape):
    """y = x - batch mean + bias needs no variance (PyTorch refuses one value per channel
    for the full form because its variance is undefined): one value gives y = bias, no
    gradient to x, the bias's gradient g and the running mean's momentum step to x. It
    was refused as the full form is ('expected more than 1 value per channel'), the
    layer and ops.batchnorm_forward alike."""
    layer = nn.BatchNorm1d(4, mean_only=True).to_dtype(dtype)
    layer.bias.data[...] = np.arange(4)
    x = rng.standard_normal(shape).astype(dtype)
    y = layer(x)
    np.testing.assert_array_equal(y, np.arange(4, dtype=dtype).reshape(shape))
    assert_close(layer.running_mean, 0.1 * x.reshape(4), dtype)
    g = rng.standard_normal(shape).astype(dtype)
    np.testing.assert_array_equal(layer.backward(g), np.zeros(shape, dtype))
    assert_close(layer.bias.grad, g.reshape(4), dtype)
    y, mean, invstd = fastnn.ops.batchnorm_forward(x.reshape(1, 4), None, np.zeros(4, dtype),
                                                   np.zeros(4, dtype), None, mean_only=True)
    assert invstd is None
    np.testing.assert_array_equal(y, np.zeros((1, 4), dtype))
    np.testing.assert_array_equal(mean, x.reshape(4))


def test_running_statistics_follow_pytorch_over_steps_then_eval(backend, dtype, rng):
    layer = nn.BatchNorm2d(3, momentum=0.3).to_dtype(dtype)
    layer.weight.data[...] = rng.uniform(0.5, 1.5, 3)
    layer.bias.data[...] = rng.standard_normal(3)
    twin = torch_twin(layer)
    for step in range(3):
        x = (rng.standard_normal((4, 3, 2, 3)) * (step + 1) + step).astype(dtype)
        layer(x)
        twin(torch.from_numpy(x))
        assert_close(layer.running_mean, twin.running_mean.numpy(), dtype)
        assert_close(layer.running_var, twin.running_var.numpy(), dtype)
    layer.eval()
    twin.eval()
    x = rng.standard_normal((2, 3, 2, 3)).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    y = layer(x)
    gx = layer.backward(g)
    y_t, gx_t, grads_t = run_torch(twin, x, g)
    assert_close(y, y_t, dtype)
    assert_close(gx, gx_t, dtype)
    assert_close(layer.weight.grad, grads_t["weight"], dtype, scale=10)
    assert_close(layer.bias.grad, grads_t["bias"], dtype, scale=10)


def test_constant_feature_has_zero_output_and_finite_gradient(backend, dtype, rng):
    layer = nn.BatchNorm1d(2).to_dtype(dtype)
    x = np.stack([np.full(5, 3.0), rng.standard_normal(5)], axis=1).astype(dtype)
    g = rng.standard_normal((5, 2)).astype(dtype)
    y = layer(x)
    gx = layer.backward(g)
    y_t, gx_t, _ = run_torch(torch_twin(nn.BatchNorm1d(2).to_dtype(dtype)), x, g)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(gx))
    # PyTorch's float32 mean is off by a rounding error here, amplified by 1/sqrt(eps).
    loose = 10.0 if dtype == np.float32 else 1.0
    assert np.abs(y[:, 0]).max() <= 1e-4 * loose
    assert_close(y, y_t, dtype, scale=loose)
    assert_close(gx, gx_t, dtype, scale=100 * loose)


def test_a_pytorch_state_dict_loads_with_its_batch_counter():
    """PyTorch's BatchNorm keeps num_batches_tracked (momentum=None's divisor): its state
    dict, tensors turned into arrays, loads strictly (the counter with it) and the model
    then gives PyTorch's outputs; the key is still refused where no BatchNorm is."""
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3),
                                    torch.nn.ReLU(), torch.nn.Linear(3, 2))
    reference(torch.randn(8, 4))  # training mode: running statistics move
    reference.eval()
    state = {k: v.detach().numpy() for k, v in reference.state_dict().items()}
    assert "1.num_batches_tracked" in state
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2))
    assert model.load_state_dict(state) == ([], [])
    model.eval()
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(model(x), reference(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"unexpected keys \['3.num_batches_tracked'\]"):
        model.load_state_dict({**state, "3.num_batches_tracked": np.array(1)})


@pytest.mark.parametrize("cls, shape", [("BatchNorm1d", (8, 5)), ("BatchNorm1d", (4, 5, 3)),
                                        ("BatchNorm2d", (3, 5, 4, 4)),
                                        ("BatchNorm3d", (2, 5, 2, 3, 3))])
def test_bias_false_has_a_weight_and_no_bias_as_torch(backend, dtype, rng, cls, shape):
    """PyTorch 2.13's BatchNorm(bias=False): training steps then eval, outputs, input and
    weight gradients, running statistics, state dict keys and repr."""
    twin = getattr(torch.nn, cls)(5, bias=False).to(
        torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        twin.weight.uniform_(0.5, 1.5)
    ours = getattr(nn, cls)(5, bias=False, dtype=dtype)
    ours.load_state_dict({k: v.numpy().copy() for k, v in twin.state_dict().items()})
    assert ours.bias is None and "bias" not in ours.state_dict()
    assert repr(ours) == repr(twin)
    for mode in ("train", "train", "eval"):
        twin.train(mode == "train")
        ours.train(mode == "train")
        twin.zero_grad()
        ours.zero_grad()
        x = rng.standard_normal(shape).astype(dtype)
        tx = torch.from_numpy(x.copy()).requires_grad_(True)
        ty = twin(tx)
        g = rng.standard_normal(shape).astype(dtype)
        ty.backward(torch.from_numpy(g))
        assert_close(ours(x), ty.detach().numpy(), dtype, 10, err_msg=mode)
        assert_close(ours.backward(g), tx.grad.numpy(), dtype, 10, err_msg=mode)
        assert_close(ours.weight.grad, twin.weight.grad.numpy(), dtype, 100, err_msg=mode)
        assert_close(ours.running_var, twin.running_var.numpy(), dtype, 10)


@pytest.mark.parametrize("name", fastnn.backends())
@pytest.mark.parametrize("cls, shape", [("BatchNorm1d", (0, 3)), ("BatchNorm1d", (0, 3, 5)),
                                        ("BatchNorm2d", (0, 3, 4, 4)),
                                        ("BatchNorm2d", (2, 3, 0, 4)),
                                        ("BatchNorm3d", (0, 3, 2, 2, 2))])
def test_an_empty_training_batch_runs_as_in_pytorch(name, cls, shape):
    """PyTorch: an empty output, running statistics untouched, the batch counted, zero
    parameter gradients; fastnn's kernels would average over no values (NaN)."""
    with fastnn.use_backend(name):
        layer = getattr(nn, cls)(3, dtype=np.float64)
        y = layer.forward(np.zeros(shape))
        grad_in = layer.backward(np.zeros(shape))
    ref = getattr(torch.nn, cls)(3).double()
    x = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    ref(x).sum().backward()
    assert y.shape == grad_in.shape == shape
    np.testing.assert_array_equal(layer.running_mean, ref.running_mean.numpy())
    np.testing.assert_array_equal(layer.running_var, ref.running_var.numpy())
    assert layer.num_batches_tracked == int(ref.num_batches_tracked) == 1
    np.testing.assert_array_equal(layer.weight.grad, ref.weight.grad.numpy())
    np.testing.assert_array_equal(layer.bias.grad, ref.bias.grad.numpy())


@pytest.mark.parametrize("backend", fastnn.backends())
@pytest.mark.parametrize("how", ["strided", "read-only", "read-only assign"])
def test_running_buffers_of_any_layout_train_as_torch(backend, how, rng):
    """A strided or read-only running buffer (set as an attribute, or loaded with
    assign=True) trains as PyTorch's on every backend: it becomes a copy the kernels
    update in place, as a parameter's data does."""
    x = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    twin = torch.nn.BatchNorm2d(3)
    twin(torch.from_numpy(x))
    with fastnn.use_backend(backend):
        bn = nn.BatchNorm2d(3)
        value = np.zeros(6, np.float32)[::2] if how == "strided" else np.zeros(3, np.float32)
        if how != "strided":
            value.flags.writeable = False
        if how == "read-only assign":
            state = bn.state_dict()
            state["running_mean"] = value
            bn.load_state_dict(state, assign=True)
        else:
            bn.running_mean = value
        bn(x)
    np.testing.assert_allclose(bn.running_mean, twin.running_mean.numpy(), rtol=1e-5,
                               atol=1e-7)
    assert bn.num_batches_tracked == 1


def test_failed_batchnorm_forward_counts_no_batch(monkeypatch):
    """A forward whose kernel fails moves neither the running statistics nor the counter
    (momentum=None's divisor)."""
    bn = nn.BatchNorm1d(3, momentum=None)

    class Failing:
        def batchnorm_forward(self, *args, **kwargs):
            raise MemoryError("kernel failed")
    monkeypatch.setattr(bn, "_kernels", lambda: Failing())
    with pytest.raises(MemoryError):
        bn(np.ones((4, 3), np.float32))
    assert bn.num_batches_tracked == 0
    monkeypatch.undo()
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    bn(x)   # the first counted batch: momentum 1, the batch's statistics
    np.testing.assert_allclose(bn.running_mean, x.mean(axis=0))
    assert bn.num_batches_tracked == 1


@pytest.mark.parametrize("name", ["numba", "cython"])
@pytest.mark.parametrize("training", [True, False])
def test_planes_of_one_value_run_as_columns(name, training):
    # (N, C, 1, 1), the map after a global pooling, is an (N, C) batch laid out alike:
    # numba's plane kernels took a channel's loop over one strided value a sample (6-9x
    # the columns' time a value, 1.3-3.3x the NumPy reference); it now runs the columns'
    # kernels, as Cython's rows path already did, with the same bits as the (N, C) call
    if name not in fastnn.backends():
        pytest.skip(f"no {name} backend")
    from fastnn import ops
    rng = np.random.default_rng(3)
    n, c = 70, 300
    x, g = (rng.standard_normal((n, c, 1, 1)).astype(np.float32) for _ in range(2))
    w, b = (rng.standard_normal(c).astype(np.float32) for _ in range(2))
    results = []
    with fastnn.use_backend(name):
        for shape in ((n, c, 1, 1), (n, c)):
            rm, rv = np.full(c, 0.5, np.float32), np.full(c, 2.0, np.float32)
            y, mean, invstd = ops.batchnorm_forward(x.reshape(shape), w, b, rm, rv, training)
            gw, gb = np.zeros(c, np.float32), np.zeros(c, np.float32)
            gi = ops.batchnorm_backward(g.reshape(shape), x.reshape(shape), w, mean, invstd,
                                        training, grad_weight=gw, grad_bias=gb)
            results.append([y.reshape(n, c), gi.reshape(n, c), gw, gb, rm, rv])
    for got, want in zip(*results):
        np.testing.assert_array_equal(got, want)
    # an empty batch called on the kernels directly (ops and the layers stop it before)
    # keeps the plane path's NaN statistics, as the reference's
    empty = np.zeros((0, c, 1, 1), np.float32)
    rm = np.zeros(c, np.float32)
    kernels = fastnn.backend.load(name)
    _, mean, _ = kernels.batchnorm_forward(empty, w, b, rm, np.ones(c, np.float32), True)
    assert np.isnan(mean).all() and np.isnan(rm).all()


@pytest.mark.parametrize("cls, spatial", [("BatchNorm1d", ()), ("BatchNorm1d", (3,)),
                                          ("BatchNorm2d", (1, 2)), ("BatchNorm3d", (2, 1, 2))])
@pytest.mark.parametrize("affine", [True, False])
def test_eval_with_a_zero_running_var_and_eps_0_gives_torchs_inf_and_nan(backend, dtype, cls,
                                                                        spatial, affine):
    """PyTorch's eval is x * scale + (bias - mean * scale), scale = weight / sqrt(var +
    eps): with var + eps 0 a channel of mean 0 or weight 0 is NaN everywhere, else an
    element is +-inf where x and -mean have one sign, NaN elsewhere. fastnn's
    (x - mean) * scale + bias gave NaN where x == mean and +-inf everywhere else."""
    values = np.array([-2.0, 0.0, 3.0, 1.0, -1.0, np.inf, -np.inf])
    x = np.broadcast_to(values.reshape((-1, 1) + (1,) * len(spatial)),
                        (7, 5) + spatial).astype(dtype)
    layer = getattr(nn, cls)(5, eps=0.0, affine=affine).to_dtype(dtype)
    twin = getattr(torch.nn, cls)(5, eps=0.0, affine=affine, dtype=torch.float64
                                  if dtype == np.float64 else torch.float32)
    mean = np.array([0.0, 0.0, 1.0, 3.0, -2.0])
    layer.running_mean[...], layer.running_var[...] = mean, 0.0
    twin.running_mean.copy_(torch.from_numpy(mean))
    twin.running_var.zero_()
    if affine:
        weight, bias = np.array([2.0, 1.0, -1.0, 0.0, 1.0]), np.array([0.5, 0.0, 1.0, -1.0, 0.0])
        layer.weight.data[...], layer.bias.data[...] = weight, bias
        with torch.no_grad():
            twin.weight.copy_(torch.from_numpy(weight))
            twin.bias.copy_(torch.from_numpy(bias))
    layer.eval()
    twin.eval()
    with np.errstate(invalid="ignore"):
        got = layer(x)
    want = twin(torch.from_numpy(np.ascontiguousarray(x))).detach().numpy()
    np.testing.assert_array_equal(got, want)
    params = (layer.weight.data, layer.bias.data) if affine else (None, None)
    with np.errstate(invalid="ignore"):
        got = nn.functional.batch_norm(x, mean.astype(dtype), np.zeros(5, dtype), *params,
                                       training=False, eps=0.0)
    np.testing.assert_array_equal(got, want)
