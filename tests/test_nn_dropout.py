"""Dropout: inverted scaling, identity in eval mode and for p=0, reproducible masks from
fastnn's global generator, and a backward that reuses the forward's mask."""
import warnings

import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_mask_is_zero_or_inverse_keep_probability(backend, dtype, rng, p):
    layer = nn.Dropout(p)
    x = rng.uniform(1.0, 2.0, (200, 50)).astype(dtype)
    y = layer(x)
    assert y.dtype == dtype and y.shape == x.shape
    scale = y / x
    kept = scale != 0
    np.testing.assert_allclose(scale[kept], 1 / (1 - p), rtol=1e-6)
    assert abs((~kept).mean() - p) < 0.02  # 10,000 draws: 5 standard deviations
    grad_out = rng.standard_normal(x.shape).astype(dtype)
    np.testing.assert_allclose(layer.backward(grad_out), grad_out * scale, rtol=1e-6)


def test_eval_mode_and_p_zero_are_the_identity(backend, rng):
    x = rng.standard_normal((4, 5)).astype(np.float32)
    for layer in (nn.Dropout(0.5).eval(), nn.Dropout(0.0)):
        assert layer.passthrough
        np.testing.assert_array_equal(layer(x), x)
        g = rng.standard_normal((4, 5)).astype(np.float32)
        np.testing.assert_array_equal(layer.backward(g), g)


def test_masks_are_reproducible_with_manual_seed_and_differ_between_steps(backend, rng):
    x = np.ones((30, 30), np.float32)
    layer = nn.Dropout(0.5)
    fastnn.manual_seed(5)
    first, second = layer(x), layer(x)
    fastnn.manual_seed(5)
    again = layer(x)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)


def test_dropout_inside_sequential_trains_the_kept_units_only(backend, rng):
    model = nn.Sequential(nn.Linear(6, 40), nn.Dropout(0.5), nn.Linear(40, 1))
    model(rng.standard_normal((1, 6)).astype(np.float32))
    mask = model[1]._mask.copy()
    model.backward(np.ones((1, 1), np.float32))
    dropped = mask[0] == 0
    assert dropped.any() and (~dropped).any()
    np.testing.assert_array_equal(model[2].weight.grad[0, dropped], 0)
    np.testing.assert_array_equal(model[0].weight.grad[dropped], 0)
    assert np.all(model[0].bias.grad[~dropped] != 0)


@pytest.mark.parametrize("cls", ["Dropout", "Dropout1d", "Dropout2d"])
def test_p_one_drops_everything_as_torch(cls):
    """PyTorch's p = 1: x * 0 (NaN stays NaN), gradient 0; eval mode the identity."""
    x = np.arange(24, dtype=np.float64).reshape(2, 3, 4) - 5
    x[0, 0, 0] = np.nan
    layer = getattr(nn, cls)(1.0)
    y = layer(x)
    with warnings.catch_warnings():  # torch's note on a 3-D input to Dropout2d
        warnings.simplefilter("ignore")
        expected = getattr(torch.nn, cls)(1.0)(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), np.zeros_like(x))
    layer.eval()
    np.testing.assert_array_equal(layer(x), x)


@pytest.mark.parametrize("cls", ["Dropout", "AlphaDropout"])
@pytest.mark.parametrize("p", [0.3, 1.0])
def test_a_0d_input_keeps_its_shape_as_torch(backend, cls, p):
    # np.ascontiguousarray made a 0-d result 1-d: Dropout gave (1,) (numpy backend, and
    # every backend at p = 1) and AlphaDropout's backward then refused a 0-d gradient
    layer = getattr(nn, cls)(p)
    y = layer(np.array(2.0))
    assert y.shape == getattr(torch.nn, cls)(p)(torch.tensor(2.0)).shape == ()
    assert layer.backward(np.array(1.0)).shape == ()


@pytest.mark.parametrize("cls", ["Dropout", "Dropout2d", "AlphaDropout", "FeatureAlphaDropout"])
@pytest.mark.parametrize("p", [1.5, -0.5, float("nan"), "0.5"])
def test_a_p_set_out_of_range_after_construction_is_refused_as_torch(backend, cls, p):
    # (it dropped every element, NaN p poisoned them all, with the generator moved on;
    # PyTorch's F.dropout checks p at each call)
    model = nn.Sequential(nn.Linear(3, 3), getattr(nn, cls)(0.5))
    model[1].p = p
    x = np.ones((2, 3), np.float32)
    state = fastnn.random.get_state()
    with pytest.raises(TypeError if isinstance(p, str) else ValueError, match=cls):
        model(x)
    assert fastnn.random.get_state() == state
    with pytest.raises((ValueError, TypeError, RuntimeError)):   # (NaN: RuntimeError)
        torch.nn.functional.dropout(torch.ones(2, 3), p)
    model.eval()
    np.testing.assert_array_equal(model(x), model[0](x))   # eval: the identity, unchecked
