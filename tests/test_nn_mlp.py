"""MLP: any depth against an equivalent PyTorch network with the same weights, its
config for save/load, and a few training steps that reduce the loss."""
import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.models import MLP

from conftest import assert_close
from nn_torch_helpers import run_torch, torch_twin


def _matches_torch(model, rng, dtype, grad_in_scale=1, grad_scale=10):
    """model's output, input gradient and parameter gradients for a (12, 10) batch
    against its PyTorch twin's."""
    twin = torch_twin(model)
    x = rng.standard_normal((12, 10)).astype(dtype)
    g = rng.standard_normal((12, 4)).astype(dtype)
    y = model(x)
    gx = model.backward(g)
    y_t, gx_t, grads_t = run_torch(twin, x, g)
    assert_close(y, y_t, dtype)
    assert_close(gx, gx_t, dtype, scale=grad_in_scale)
    for name, p in model.named_parameters():
        assert_close(p.grad, grads_t[name], dtype, scale=grad_scale, err_msg=name)


@pytest.mark.parametrize("hidden, activation, batchnorm", [
    ([], "relu", False),
    (7, "relu", False),
    ([9, 6], "leaky_relu", False),
    ([8, 7, 5], "tanh", True),
    ([6, 5], "sigmoid", True),
    ([6], "gelu", False),
    ([6, 4], "sine", False),
    ([6], "gelu_tanh", False),
    ([6, 5], "mish", True),
], ids=["linear", "relu", "leaky_relu-2", "tanh-bn-3", "sigmoid-bn-2", "gelu", "sine-2",
        "gelu_tanh", "mish-bn-2"])
def test_mlp_matches_torch(backend, dtype, rng, hidden, activation, batchnorm):
    model = MLP(10, hidden, 4, activation=activation, negative_slope=0.2,
                batchnorm=batchnorm).to_dtype(dtype)
    _matches_torch(model, rng, dtype)


def test_structure_and_config():
    model = MLP(784, [100, 50], 10, activation="leaky_relu", negative_slope=0.1,
                batchnorm=True, dropout=0.2)
    kinds = [type(layer).__name__ for layer in model]
    assert kinds == ["Linear", "BatchNorm1d", "LeakyReLU", "Dropout"] * 2 + ["Linear"]
    assert model[2].negative_slope == 0.1 and model[3].p == 0.2
    assert model.config_name == "mlp"
    assert model.config == dict(in_features=784, hidden=[100, 50], out_features=10,
                                activation="leaky_relu", negative_slope=0.1, batchnorm=True,
                                dropout=0.2, omega=1.0)
    rebuilt = MLP(**model.config)
    assert [type(layer) for layer in rebuilt] == [type(layer) for layer in model]
    rebuilt.load_state_dict(model.state_dict())
    assert [type(layer).__name__ for layer in MLP(3, 4, 2)] == ["Linear", "ReLU", "Linear"]
    assert len(MLP(3, [], 2)) == 1
    assert isinstance(model, nn.Sequential)


def test_sine_mlp_takes_omega_as_multitasknet_does(backend, dtype, rng):
    """MLP(activation='sine') built nn.Sine() with omega 1 and took no omega, though
    nn.Sine and MultiTaskNet take one: omega reaches every Sine (1.0 by default, as
    nn.Sine's), is in the config, and the network matches PyTorch's with that omega."""
    assert [m.omega for m in MLP(3, [4, 4], 2, activation="sine") if isinstance(m, nn.Sine)
            ] == [nn.Sine().omega] * 2
    model = MLP(10, [6, 4], 4, activation="sine", omega=np.float32(5)).to_dtype(dtype)
    assert [m.omega for m in model if isinstance(m, nn.Sine)] == [5.0, 5.0]
    assert model.config["omega"] == 5.0 and type(model.config["omega"]) is float
    _matches_torch(model, rng, dtype, grad_in_scale=10, grad_scale=50)
    # as negative_slope is: checked whatever the activation, used by the one taking it
    relu = MLP(3, [4], 2, omega=30.0)
    assert [type(m).__name__ for m in relu] == ["Linear", "ReLU", "Linear"]
    assert relu.config["omega"] == 30.0


def test_sine_mlp_omega_survives_save_and_load(tmp_path, rng):
    model = MLP(5, [6], 3, activation="sine", omega=30.0)
    fastnn.save(model, tmp_path / "sine.npz")
    loaded = fastnn.load(tmp_path / "sine.npz")
    assert loaded.config == model.config and loaded[1].omega == 30.0
    x = rng.standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), model(x))


def test_sgd_steps_reduce_the_loss(backend, rng):
    fastnn.manual_seed(0)
    model = MLP(4, [16], 3, batchnorm=True, dropout=0.1)
    loss_fn = nn.CrossEntropyLoss()
    x = rng.standard_normal((64, 4)).astype(np.float32)
    labels = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    losses = []
    for _ in range(60):
        losses.append(loss_fn(model(x), labels))
        model.zero_grad()
        model.backward(loss_fn.backward(), need_grad_in=False)
        for p in model.parameters():
            p.data -= 0.5 * p.grad
    assert losses[-1] < 0.5 * losses[0]
    model.eval()
    accuracy = (model(x).argmax(1) == labels).mean()
    assert accuracy > 0.9


def test_non_contiguous_empty_and_single_row_batches(backend, dtype, rng):
    model = MLP(5, [4], 3).to_dtype(dtype)
    x = np.asfortranarray(rng.standard_normal((6, 5)).astype(dtype))
    g = rng.standard_normal((3, 6)).astype(dtype).T  # a transposed view
    y = model(x)
    gx = model.backward(g)
    y_ref = model(np.ascontiguousarray(x))
    gx_ref = model.backward(np.ascontiguousarray(g))
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(gx, gx_ref)
    model.zero_grad()
    assert model(np.zeros((0, 5), dtype)).shape == (0, 3)
    assert model.backward(np.zeros((0, 3), dtype)).shape == (0, 5)
    assert not any(p.grad.any() for p in model.parameters())
    assert model(x[:1]).shape == (1, 3)


@pytest.mark.parametrize("hidden", [[], [3]])
@pytest.mark.parametrize("kwargs,error,match", [
    (dict(batchnorm="no"), TypeError, "expected batchnorm to be a bool"),
    (dict(batchnorm=1), TypeError, "expected batchnorm to be a bool"),
    (dict(negative_slope="a"), TypeError, "expected negative_slope to be a number"),
    (dict(dropout=1.5), ValueError, r"expected dropout in \[0, 1\]"),
    (dict(dropout=-0.1), ValueError, r"expected dropout in \[0, 1\]"),
    (dict(dropout=float("nan")), ValueError, "expected a finite dropout"),
    (dict(omega="30"), TypeError, "expected omega to be a number"),
    (dict(omega=True), TypeError, "expected omega to be a number"),
    (dict(omega=float("nan")), ValueError, "expected a finite omega"),
    (dict(omega=float("inf"), activation="sine"), ValueError, "expected a finite omega"),
])
def test_bad_options_are_refused_naming_the_mlp_with_or_without_hidden_layers(
        hidden, kwargs, error, match):
    """A string batchnorm was read as True, and with no hidden layer (no layer to check
    them) a bad dropout or slope was kept in the config that fastnn.save writes."""
    with pytest.raises(error, match="MLP: " + match):
        MLP(4, hidden, 2, **kwargs)


def test_good_options_still_build_the_same_layers():
    model = MLP(4, [3], 2, activation="leaky_relu", negative_slope=np.float32(0.2),
                batchnorm=np.bool_(True), dropout=1)
    assert [type(m).__name__ for m in model] == ["Linear", "BatchNorm1d", "LeakyReLU",
                                                 "Dropout", "Linear"]
    assert model.config["batchnorm"] is True and model.config["dropout"] == 1.0
