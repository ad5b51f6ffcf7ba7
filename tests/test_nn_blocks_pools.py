"""Unfold/Fold, LPPool1d/2d, RReLU, AlphaDropout and FeatureAlphaDropout against PyTorch
(outputs, input gradients; the random layers by their eval mode exactly and their
training mode by the properties PyTorch's have), float32 and float64."""
import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn

from conftest import assert_close
from nn_torch_helpers import TORCH_DTYPES

torch.set_num_threads(2)


def _against(layer, twin, x, rng, dtype, scale=10.0):
    """Forward and backward of both on x: outputs and input gradients agree."""
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = twin(tx)
    g = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.from_numpy(g))
    y = layer(x)
    assert y.shape == tuple(ty.shape) and y.dtype == dtype
    assert_close(y, ty.detach().numpy(), dtype, scale)
    grad = layer.backward(g)
    assert grad.shape == x.shape and grad.dtype == dtype
    assert_close(grad, tx.grad.numpy(), dtype, scale)
    return y, grad


BLOCKS = [dict(kernel_size=2), dict(kernel_size=(2, 3), stride=(1, 2)),
          dict(kernel_size=3, dilation=2, padding=1, stride=2),
          dict(kernel_size=(3, 1), dilation=(1, 2), padding=(1, 0), stride=(2, 1))]


@pytest.mark.parametrize("args", BLOCKS, ids=["k2", "k23s12", "k3d2p1s2", "mixed"])
@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
def test_unfold_and_fold_match_torch(dtype, rng, args, unbatched):
    shape = (3, 7, 8) if unbatched else (2, 3, 7, 8)
    x = rng.standard_normal(shape).astype(dtype)
    cols, _ = _against(nn.Unfold(**args), torch.nn.Unfold(**args), x, rng, dtype)
    blocks = rng.standard_normal(cols.shape).astype(dtype)
    _against(nn.Fold((7, 8), **args), torch.nn.Fold((7, 8), **args), blocks, rng, dtype)
    assert repr(nn.Fold((7, 8), **args)) == repr(torch.nn.Fold((7, 8), **args))
    assert repr(nn.Unfold(**args)) == repr(torch.nn.Unfold(**args))


def test_fold_of_unfold_counts_the_windows_covering_each_pixel():
    x = np.ones((1, 2, 5, 6))
    unfold, fold = nn.Unfold(3, padding=1), nn.Fold((5, 6), 3, padding=1)
    counts = fold(unfold(x))
    expected = torch.nn.Fold((5, 6), 3, padding=1)(torch.nn.Unfold(3, padding=1)(
        torch.ones(1, 2, 5, 6, dtype=torch.float64)))
    np.testing.assert_array_equal(counts, expected.numpy())
    assert counts[0, 0, 2, 2] == 9 and counts[0, 0, 0, 0] == 4


def test_fold_and_unfold_reject_what_torch_rejects():
    with pytest.raises(ValueError, match="blocks"):
        nn.Fold((4, 5), 2)(np.zeros((1, 12, 11), np.float32))
    with pytest.raises(ValueError, match="divisible"):
        nn.Fold((4, 5), 2)(np.zeros((1, 10, 12), np.float32))
    with pytest.raises(ValueError, match="shape"):
        nn.Unfold(2)(np.zeros((5, 6), np.float32))
    with pytest.raises(ValueError, match="fit"):
        nn.Unfold(4)(np.zeros((1, 1, 3, 3), np.float32))
    with pytest.raises(ValueError):
        nn.Unfold(0)


@pytest.mark.parametrize("norm_type", [1, 2, 3, 1.5])
@pytest.mark.parametrize("args", [dict(kernel_size=2), dict(kernel_size=3, stride=2),
                                  dict(kernel_size=(2, 3), stride=(2, 1), ceil_mode=True),
                                  dict(kernel_size=2, stride=2, ceil_mode=True)],
                         ids=["k2", "k3s2", "k23ceil", "k2s2ceil"])
def test_lppool2d_matches_torch(backend, dtype, rng, norm_type, args):
    x = rng.standard_normal((2, 3, 5, 7)).astype(dtype)
    if norm_type == 1.5:  # a non-integer power of a negative number is NaN in both
        x = np.abs(x) + dtype.type(0.1)
    layer = nn.LPPool2d(norm_type, **args)
    _against(layer, torch.nn.LPPool2d(norm_type, **args), x, rng, dtype)
    assert repr(layer) == repr(torch.nn.LPPool2d(norm_type, **args))
    _against(layer, torch.nn.LPPool2d(norm_type, **args), x[0], rng, dtype)  # unbatched


@pytest.mark.parametrize("args", [dict(kernel_size=2),
                                  dict(kernel_size=3, stride=2, ceil_mode=True)])
def test_lppool1d_matches_torch(backend, dtype, rng, args):
    x = rng.standard_normal((2, 3, 8)).astype(dtype)
    _against(nn.LPPool1d(2, **args), torch.nn.LPPool1d(2, **args), x, rng, dtype)
    _against(nn.LPPool1d(3, **args), torch.nn.LPPool1d(3, **args), x[0], rng, dtype)


def test_lppool_all_zero_window_has_zero_gradient_as_torch():
    x = np.array([[[0.0, 0.0, 1.0, -2.0]]])
    layer = nn.LPPool1d(2, 2)
    y = layer(x)
    np.testing.assert_allclose(y, [[[0.0, np.sqrt(5.0)]]])
    grad = layer.backward(np.ones_like(y))
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.LPPool1d(2, 2)(tx).sum().backward()
    np.testing.assert_allclose(grad, tx.grad.numpy())
    assert not np.isnan(grad).any()


def test_lppool_rejects_bad_arguments():
    with pytest.raises(TypeError):
        nn.LPPool2d("2", 2)
    with pytest.raises(ValueError):
        nn.LPPool2d(0, 2)
    with pytest.raises(ValueError):
        nn.LPPool2d(2, 0)


def test_rrelu_eval_is_torch_leaky_relu(dtype, rng):
    x = rng.standard_normal((4, 5)).astype(dtype)
    layer, twin = nn.RReLU(0.1, 0.3).eval(), torch.nn.RReLU(0.1, 0.3).eval()
    _against(layer, twin, x, rng, dtype)
    assert repr(nn.RReLU()) == repr(torch.nn.RReLU())
    assert repr(nn.RReLU(inplace=True)) == repr(torch.nn.RReLU(inplace=True))


@pytest.mark.parametrize("bounds", [(False,), (False, True), (0.25, True)])
def test_rrelu_takes_bool_bounds_as_their_numbers_as_torch(bounds, rng):
    """PyTorch's RReLU takes a bool bound as 0 or 1 (and shows it as given); fastnn's
    refused it as not a number."""
    x = rng.standard_normal((4, 5))
    layer, twin = nn.RReLU(*bounds).eval(), torch.nn.RReLU(*bounds).eval()
    assert repr(layer) == repr(twin)
    assert_close(layer(x), twin(torch.from_numpy(x)).numpy(), np.float64)
    fastnn.random.manual_seed(0)
    slopes = layer.train()(-np.ones(500)) / -1
    assert slopes.min() >= float(twin.lower) and slopes.max() <= float(twin.upper)


def test_rrelu_both_bounds_true_is_slope_one_in_eval_and_training():
    """PyTorch's slope for lower=upper=True is 1 in training but 0.5 in eval (its bools
    add as bools); fastnn's is their numbers' mean, 1, in both, as F.rrelu's."""
    layer = nn.RReLU(True, True)
    assert repr(layer) == repr(torch.nn.RReLU(True, True))
    for mode in (layer.train, layer.eval):
        np.testing.assert_array_equal(mode()(np.array([-2.0, 3.0])), [-2.0, 3.0])
    with pytest.raises(ValueError, match="lower <= upper"):   # (PyTorch: at forward)
        nn.RReLU(True)


def test_rrelu_training_draws_a_slope_per_negative_element(dtype, rng):
    x = rng.standard_normal((200, 50)).astype(dtype)
    layer = nn.RReLU(0.1, 0.3)
    fastnn.random.manual_seed(3)
    y = layer(x)
    neg = x <= 0
    np.testing.assert_array_equal(y[~neg], x[~neg])
    slopes = y[neg] / x[neg]
    assert slopes.min() >= 0.1 - 1e-6 and slopes.max() <= 0.3 + 1e-6
    assert abs(slopes.mean() - 0.2) < 0.01 and slopes.std() > 0.05  # uniform on [0.1, 0.3]
    g = rng.standard_normal(x.shape).astype(dtype)
    grad = layer.backward(g)
    assert_close(grad[neg], g[neg] * slopes, dtype)  # the same slopes as the forward
    np.testing.assert_array_equal(grad[~neg], g[~neg])
    fastnn.random.manual_seed(3)
    np.testing.assert_array_equal(nn.RReLU(0.1, 0.3)(x), y)  # reproducible
    with pytest.raises(ValueError, match="lower <= upper"):
        nn.RReLU(0.5, 0.1)


@pytest.mark.parametrize("cls", ["AlphaDropout", "FeatureAlphaDropout"])
def test_alpha_dropout_eval_and_p0_are_identity(cls, dtype, rng):
    x = rng.standard_normal((4, 3, 5)).astype(dtype)
    layer = getattr(nn, cls)(0.3).eval()
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer.backward(x), x)
    layer = getattr(nn, cls)(0.0)
    np.testing.assert_array_equal(layer(x), x)
    assert repr(getattr(nn, cls)(0.3)) == repr(getattr(torch.nn, cls)(0.3))


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_alpha_dropout_keeps_selu_statistics_like_torch(dtype, p):
    """Standard normal in: mean 0 and variance 1 out, the kept values a * x and the
    dropped ones one constant, as PyTorch's."""
    x = np.random.default_rng(1).standard_normal((400, 500)).astype(dtype)
    layer = nn.AlphaDropout(p)
    y = layer(x)
    a = ((1 - p) * (1 + p * 1.7580993408473766 ** 2)) ** -0.5
    dropped_value = -a * 1.7580993408473766 * (1 - p)
    ty = torch.nn.AlphaDropout(p)(torch.from_numpy(x)).numpy()
    for out in (y, ty):
        kept = np.isclose(out, a * x + a * 1.7580993408473766 * p, atol=1e-5)
        assert abs(out.mean()) < 0.01 and abs(out.var() - 1) < 0.02
        assert abs((~kept).mean() - p) < 0.01
    grad = layer.backward(np.ones_like(x))
    kept = grad != 0  # the layer's own mask: the gradient is a where kept, 0 where dropped
    assert_close(grad[kept], np.full(kept.sum(), a), dtype)
    assert abs((~kept).mean() - p) < 0.01
    assert_close(y[kept], a * x[kept] + a * 1.7580993408473766 * p, dtype)
    assert_close(y[~kept], np.full((~kept).sum(), dropped_value), dtype)


def test_alpha_dropout_p1_gives_zeros_as_torch(rng):
    x = rng.standard_normal((3, 4))
    layer = nn.AlphaDropout(1.0)
    np.testing.assert_array_equal(layer(x), torch.nn.AlphaDropout(1.0)(torch.from_numpy(x)))
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), 0)


def test_feature_alpha_dropout_drops_whole_channels(rng):
    x = rng.standard_normal((50, 20, 3, 4))
    layer = nn.FeatureAlphaDropout(0.5)
    y = layer(x)
    a = (0.5 * (1 + 0.5 * 1.7580993408473766 ** 2)) ** -0.5
    dropped = np.isclose(y, -a * 1.7580993408473766 * 0.5).all(axis=(2, 3))
    kept = np.isclose(y, a * x + a * 1.7580993408473766 * 0.5).all(axis=(2, 3))
    assert (dropped ^ kept).all()  # every channel wholly one or the other
    assert 0.4 < dropped.mean() < 0.6
    with pytest.raises(ValueError):
        layer(np.zeros(5))


@pytest.mark.parametrize("shape, k, s, pad", [((1, 1), 2, 2, 0), ((2, 3), 3, 2, 1),
                                              ((2, 2), 3, 2, 0), ((1, 5), (2, 3), 2, 0)])
@pytest.mark.parametrize("kind", ["max", "avg", "avg_no_pad", "lp"])
def test_ceil_mode_windows_larger_than_the_input_as_torch(backend, rng, shape, k, s, pad,
                                                          kind):
    """ceil_mode keeps a first window running past a small input (PyTorch's rule)."""
    if kind == "lp" and pad:
        return  # LPPool has no padding
    build = {"max": lambda m: m.MaxPool2d(k, s, pad, ceil_mode=True),
             "avg": lambda m: m.AvgPool2d(k, s, pad, ceil_mode=True),
             "avg_no_pad": lambda m: m.AvgPool2d(k, s, pad, ceil_mode=True,
                                                 count_include_pad=False),
             "lp": lambda m: m.LPPool2d(2, k, s, ceil_mode=True)}[kind]
    x = rng.standard_normal((2, 3) + shape)
    _against(build(nn), build(torch.nn), x, rng, np.dtype(np.float64))


@pytest.mark.parametrize("p", [np.inf, -np.inf])
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_lppool_at_infinite_p_gives_a_nan_cell_torchs_zero_gradient(backend, p, dims):
    # p = +-inf is max pooling of |x|: the gradient of |x| at a NaN is PyTorch's sgn,
    # 0 (it was NaN, at the NaN and, through 0 * NaN, wherever the window had one)
    x = np.array([np.nan, 1.0, 2.0, -3.0, 4.0, np.nan, 0.0, -5.0]).reshape(
        {1: (1, 2, 4), 2: (1, 2, 2, 2), 3: (1, 1, 2, 2, 2)}[dims])
    name = f"LPPool{dims}d"
    tx = torch.tensor(x, requires_grad=True)
    ty = getattr(torch.nn, name)(p, 2)(tx)
    ty.sum().backward()
    layer = getattr(nn, name)(p, 2)
    y = layer(x)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(layer.backward(np.ones_like(y)), tx.grad.numpy())


def test_lppool_nan_windows_give_nan_gradients_as_torch():
    for x, p in [([1.0, np.nan], 2), ([1.0, -1.0], 0.5), ([1.0, np.nan], 1)]:
        x = np.array([[x]])
        tx = torch.tensor(x, requires_grad=True)
        torch.nn.LPPool1d(p, 2)(tx).backward(torch.ones(1, 1, 1, dtype=torch.float64))
        layer = nn.LPPool1d(p, 2)
        layer(x)
        np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 1))), tx.grad.numpy())
