"""fastnn.nn.init against torch.nn.init: gains, fans, and the distributions' ranges and
spreads on large arrays; in place on Parameters and arrays, reproducible by seed."""
import math

import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn
from fastnn.nn import init

SHAPES = [(300, 200), (64, 32, 3, 3)]


@pytest.mark.parametrize("nonlinearity,param", [
    ("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
    ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)), ("selu", None)])
def test_calculate_gain_is_pytorchs(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity, param), rel=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_fans_are_pytorchs(shape):
    ours = init._calculate_fan_in_and_fan_out(np.empty(shape, np.float32))
    assert ours == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))


def _torch_filled(name, shape, **kwargs):
    t = torch.empty(shape)
    getattr(torch.nn.init, name)(t, **kwargs)
    return t.numpy()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name,kwargs,uniform", [
    ("xavier_uniform_", dict(gain=1.5), True),
    ("xavier_normal_", dict(), False),
    ("kaiming_uniform_", dict(a=math.sqrt(5)), True),
    ("kaiming_uniform_", dict(mode="fan_out", nonlinearity="relu"), True),
    ("kaiming_normal_", dict(nonlinearity="relu"), False),
    ("uniform_", dict(a=-0.3, b=0.7), True),
    ("normal_", dict(mean=0.5, std=0.1), False),
])
def test_distributions_match_torch(shape, name, kwargs, uniform):
    ours = np.empty(shape, np.float32)
    assert getattr(init, name)(ours, **kwargs) is ours
    theirs = _torch_filled(name, shape, **kwargs).astype(np.float64)
    assert ours.dtype == np.float32
    assert ours.mean() == pytest.approx(theirs.mean(), abs=float(0.03 * theirs.std() + 1e-3))
    assert ours.std() == pytest.approx(theirs.std(), rel=0.03)
    if uniform:  # the same bounds: both samples fill them to within a hair
        span = float(theirs.max() - theirs.min())
        assert ours.min() == pytest.approx(theirs.min(), abs=0.01 * span)
        assert ours.max() == pytest.approx(theirs.max(), abs=0.01 * span)


def test_fills_parameters_in_place_reproducibly(backend):
    layer = nn.Linear(50, 40)
    weight = layer.weight.data
    fastnn.manual_seed(5)
    assert init.xavier_uniform_(layer.weight) is layer.weight
    first = weight.copy()
    assert layer.weight.data is weight and not np.array_equal(first, 0)
    fastnn.manual_seed(5)
    init.xavier_uniform_(layer.weight)
    np.testing.assert_array_equal(weight, first)
    init.zeros_(layer.bias)
    init.constant_(layer.weight, 0.25)
    assert not layer.bias.data.any() and (layer.weight.data == 0.25).all()
    init.ones_(layer.bias)
    assert (layer.bias.data == 1).all()
    # a model initialised with apply, as PyTorch code does
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    model.apply(lambda m: init.kaiming_normal_(m.weight, nonlinearity="relu")
                if isinstance(m, nn.Linear) else None)
    assert model(np.ones((3, 4), np.float32)).shape == (3, 2)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.xavier_uniform_(np.empty(5, np.float32))
    with pytest.raises(ValueError, match="mode 'fan_avg' not supported"):
        init.kaiming_uniform_(np.empty((3, 3), np.float32), mode="fan_avg")
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")
    with pytest.raises(TypeError, match="expected a Parameter or a float array"):
        init.normal_(np.empty((2, 2), np.int64))
