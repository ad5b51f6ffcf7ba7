"""Found by probing fastnn.nn.functional against torch.nn.functional: celu keeps x where
x > 0 (x / alpha overflowed), empty last axes (layer_norm over 0 features, attention
with no keys or E = 0) give PyTorch's results, linear takes a one-value bias, and
hardtanh's bounds and softplus's threshold may be infinite (no clamp; never linear), on
every backend."""
import numpy as np
import pytest

import fastnn.nn.functional as F
from fastnn import nn, ops

import torch  # noqa: E402  (after fastnn)
import torch.nn.functional as TF  # noqa: E402

INF = float("inf")


@pytest.mark.parametrize("x, alpha", [
    (np.array([3e38, -1.0, 0.5], np.float32), 0.01), (np.array([1e300, -2.0]), 1e-9),
    (np.array([1.0, -1.0]), INF), (np.array([2.5, -0.3], np.float32), 0.7)])
def test_celu_keeps_positive_inputs(backend, x, alpha):
    expected = TF.celu(torch.tensor(x), alpha).numpy()
    np.testing.assert_allclose(F.celu(x, alpha), expected, rtol=1e-6)


def test_layer_norm_over_no_features():
    assert F.layer_norm(np.ones((2, 0)), (0,)).shape == (2, 0)


def test_attention_with_no_keys_or_no_features():
    v = np.arange(30.0).reshape(2, 5, 3)
    ours = F.scaled_dot_product_attention(np.ones((2, 4, 0)), np.ones((2, 5, 0)), v)
    theirs = TF.scaled_dot_product_attention(torch.ones(2, 4, 0, dtype=torch.float64),
                                             torch.ones(2, 5, 0, dtype=torch.float64),
                                             torch.tensor(v))
    np.testing.assert_allclose(ours, theirs.numpy())
    out = F.scaled_dot_product_attention(np.ones((2, 4, 8)), np.ones((2, 0, 8)),
                                         np.ones((2, 0, 5)))
    assert out.shape == (2, 4, 5) and not out.any()


@pytest.mark.parametrize("bias", [np.array(1.5), np.array([1.5]), np.array([1.0, 2.0])])
def test_linear_bias_of_one_value_broadcasts(bias):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((2, 3))
    expected = TF.linear(torch.tensor(x), torch.tensor(w), torch.tensor(bias)).numpy()
    np.testing.assert_allclose(F.linear(x, w, bias), expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_infinite_hardtanh_bounds_and_softplus_threshold(backend, dtype):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(40000) * 30).astype(dtype)   # (the parallel kernels too)
    g = rng.standard_normal(x.shape).astype(dtype)
    xt, gt = torch.tensor(x), torch.tensor(g)
    for lo, hi in ((-INF, INF), (-INF, 1.0), (-1.0, INF)):
        expected = TF.hardtanh(xt, lo, hi).numpy()
        grad = torch.ops.aten.hardtanh_backward(gt, xt, lo, hi).numpy()
        np.testing.assert_array_equal(ops.hardtanh(x, lo, hi), expected)
        np.testing.assert_array_equal(ops.hardtanh_backward(g, x, lo, hi), grad)
        layer = nn.Hardtanh(lo, hi).to(dtype=dtype)
        np.testing.assert_array_equal(layer(x), expected)
        np.testing.assert_array_equal(layer.backward(g), grad)
    for beta in (1.0, 2.0):
        # PyTorch's log1p(exp(beta x)) overflows past 88 / beta (inf, and NaN gradients);
        # fastnn's stable form does not: compared where PyTorch's is finite
        expected = TF.softplus(xt, beta, INF).numpy()
        grad = torch.ops.aten.softplus_backward(gt, xt, beta, INF).numpy()
        y, gi = ops.softplus(x, beta, INF), ops.softplus_backward(g, x, beta, INF)
        assert np.isfinite(y).all() and np.isfinite(gi).all()
        for ours, theirs in ((y, expected), (gi, grad), (nn.Softplus(beta, INF).to(dtype=dtype)(x),
                                                         expected)):
            kept = np.isfinite(theirs)
            np.testing.assert_allclose(ours[kept], theirs[kept], rtol=2e-6, atol=1e-37)
    with pytest.raises(ValueError, match="min_val to be a number"):
        ops.hardtanh(x, float("nan"), 1.0)


def test_gumbel_softmax_of_one_value():
    for hard in (False, True):
        y = F.gumbel_softmax(np.array(1.5, np.float32), hard=hard)
        assert isinstance(y, np.ndarray) and y.shape == () and y.dtype == np.float32
        assert y == 1.0


def test_attention_flags_take_only_bools():
    q = np.ones((2, 3, 4))
    for flag in ("is_causal", "enable_gqa"):
        with pytest.raises(TypeError):
            TF.scaled_dot_product_attention(*(torch.tensor(q),) * 3, **{flag: 1})
        with pytest.raises(TypeError, match=f"expected {flag} to be a bool"):
            F.scaled_dot_product_attention(q, q, q, **{flag: 1})


def test_affine_grid_size_must_be_ints():
    theta = np.zeros((2, 2, 3), np.float32)
    with pytest.raises(TypeError):
        TF.affine_grid(torch.tensor(theta), (2, 1, 3.5, 4), align_corners=False)
    with pytest.raises(TypeError, match="affine_grid: expected size to be a sequence of ints"):
        F.affine_grid(theta, (2, 1, 3.5, 4), align_corners=False)
    for size in ((2, 1, 3, 4), [2, 1, 3, 4], np.array([2, 1, 3, 4])):
        assert F.affine_grid(theta, size, align_corners=False).shape == (2, 3, 4, 2)


def test_review_followups():
    np.testing.assert_array_equal(F.celu(np.array([0.0, 1.0]), INF), [0.0, 1.0])
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((2, 3))
    for bias in (np.ones((1, 2)), np.ones((1, 1))):
        expected = TF.linear(torch.tensor(x), torch.tensor(w), torch.tensor(bias)).numpy()
        np.testing.assert_allclose(F.linear(x, w, bias), expected, rtol=1e-12)
    for flag in ("sparse", "scale_grad_by_freq"):
        with pytest.raises(TypeError, match=f"expected {flag} to be a bool"):
            F.embedding_bag(np.array([1, 2]), np.ones((3, 2)), np.array([0]), **{flag: 1})
    with pytest.raises(TypeError, match="align_corners"):
        F.interpolate(np.ones((1, 1, 2, 2)), scale_factor=2, mode="bilinear", align_corners=1)
