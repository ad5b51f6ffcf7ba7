"""Found by fuzzing fastnn.nn.functional against torch.nn.functional 2.13 (random inputs
and options, float32 and float64, every backend): results that must be arrays of
PyTorch's shape even for 0-d inputs."""
import warnings

import numpy as np
import pytest

import fastnn.nn.functional as F

import torch  # noqa: E402  (after fastnn)
import torch.nn.functional as TF  # noqa: E402


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
                                  "binary_cross_entropy", "binary_cross_entropy_with_logits",
                                  "soft_margin_loss", "poisson_nll_loss"])
def test_unreduced_loss_of_0d_inputs_is_a_0d_array(name, dtype):
    x, t = np.array(0.25, dtype), np.array(1.0, dtype)
    expected = getattr(TF, name)(torch.tensor(x), torch.tensor(t), reduction="none")
    ours = getattr(F, name)(x, t, reduction="none")
    assert isinstance(ours, np.ndarray) and ours.shape == () and ours.dtype == dtype
    np.testing.assert_allclose(ours, expected.numpy(), rtol=1e-6)


@pytest.mark.parametrize("alpha", [-np.inf, -2.0, -1e-30])
def test_celu_of_a_negative_alpha_keeps_zeros(dtype, alpha):
    x = np.array([0.0, -0.0, -1e-30, 1e-30, -1.0, 2.0, np.nan], dtype)
    expected = TF.celu(torch.tensor(x), alpha).numpy()
    for ours in (F.celu(x, alpha), F.celu_(x.copy(), alpha)):
        np.testing.assert_array_equal(ours, expected)
        np.testing.assert_array_equal(np.signbit(ours), np.signbit(expected))


INF, NAN = float("inf"), float("nan")
EDGES = np.array([0.0, -0.0, 1.0, -1.0, INF, -INF, NAN, 1e-30, -1e-30, 30.0, -30.0, 0.5])


def _same(ours, theirs):
    theirs = theirs.numpy()
    assert isinstance(ours, np.ndarray) and ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=0)   # NaN where NaN
    kept = ~np.isnan(theirs)
    np.testing.assert_array_equal(np.signbit(ours)[kept], np.signbit(theirs)[kept])


@pytest.mark.parametrize("slope", [INF, -INF, NAN])
def test_leaky_relu_takes_a_non_finite_slope(backend, dtype, slope):
    x = EDGES.astype(dtype)
    expected = TF.leaky_relu(torch.tensor(x), slope)
    _same(F.leaky_relu(x, slope), expected)
    ours = x.copy()
    assert F.leaky_relu_(ours, slope) is ours
    _same(ours, expected)
    ours = x.copy()
    assert F.leaky_relu(ours, slope, inplace=True) is ours
    _same(ours, expected)


@pytest.mark.parametrize("lo, hi", [(NAN, 1.0), (-1.0, NAN), (NAN, NAN), (1.0, -1.0),
                                    (-1.0, -INF), (INF, -INF)])
def test_hardtanh_takes_nan_bounds_and_hardtanh_inverted_ones(backend, dtype, lo, hi):
    x = EDGES.astype(dtype)
    expected = TF.hardtanh_(torch.tensor(x), lo, hi)
    ours = x.copy()
    assert F.hardtanh_(ours, lo, hi) is ours
    _same(ours, expected)
    for shape in ((), (0,)):
        zero_d = np.full(shape, 0.5, dtype)
        _same(F.hardtanh_(zero_d.copy(), lo, hi), TF.hardtanh_(torch.tensor(zero_d), lo, hi))
        _same(F.leaky_relu(zero_d, lo), TF.leaky_relu(torch.tensor(zero_d), lo))
        if not lo > hi:
            _same(F.hardtanh(zero_d, lo, hi), TF.hardtanh(torch.tensor(zero_d), lo, hi))
    if lo > hi:   # (PyTorch's F.hardtanh checks the order, its hardtanh_ does not)
        with pytest.raises(ValueError, match="min_val cannot be greater than max_val"):
            F.hardtanh(x, lo, hi)
    else:
        _same(F.hardtanh(x, lo, hi), TF.hardtanh(torch.tensor(x), lo, hi))


@pytest.mark.parametrize("beta, threshold", [(INF, 1.0), (-INF, 1.0), (NAN, 1.0), (1.0, NAN),
                                             (-2.0, NAN), (INF, INF), (INF, NAN)])
def test_softplus_takes_a_non_finite_beta_or_a_nan_threshold(backend, dtype, beta, threshold):
    x = EDGES.astype(dtype)
    _same(F.softplus(x, beta, threshold), TF.softplus(torch.tensor(x), beta, threshold))


@pytest.mark.parametrize("steps, k, pad", [(1, 2, 0), (2, 5, 1), (3, 2, 0)])
def test_conv_tbc_gives_an_output_of_no_time_steps(dtype, steps, k, pad):
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in ((steps, 2, 3), (k, 3, 4), (4,)))
    expected = TF.conv_tbc(*map(torch.tensor, (x, w, b)), pad).numpy()
    ours = F.conv_tbc(x, w, b, pad)
    assert ours.shape == expected.shape and ours.dtype == dtype
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match="bias"):
        F.conv_tbc(x, w, b[:3], pad)


@pytest.mark.parametrize("name", ["layer_norm", "rms_norm"])
@pytest.mark.parametrize("normalized_shape", [(), []])
def test_an_empty_normalized_shape_is_refused_as_torch(name, normalized_shape):
    x = np.ones((2, 3))
    with pytest.raises(RuntimeError, match="at least 1-dimensional"):
        getattr(TF, name)(torch.tensor(x), normalized_shape)
    with pytest.raises(RuntimeError, match="at least 1-dimensional") as error:
        getattr(F, name)(x, normalized_shape)
    assert isinstance(error.value, ValueError)


@pytest.mark.parametrize("name", ["nll_loss", "cross_entropy"])
@pytest.mark.parametrize("ignore_index", [1.5, 1.0, float("inf"), None, True])
def test_ignore_index_must_be_an_int_as_torch(name, ignore_index):
    x, target = np.zeros((4, 3)), np.array([0, 1, 2, 1])
    with pytest.raises(TypeError, match="ignore_index"):
        getattr(TF, name)(torch.tensor(x), torch.tensor(target), ignore_index=ignore_index)
    with pytest.raises(TypeError, match="argument 'ignore_index' must be int") as error:
        getattr(F, name)(x, target, ignore_index=ignore_index)
    assert isinstance(error.value, ValueError)
    expected = getattr(TF, name)(torch.tensor(x), torch.tensor(target), ignore_index=1)
    np.testing.assert_allclose(getattr(F, name)(x, target, ignore_index=np.int64(1)),
                               expected.numpy())


@pytest.mark.parametrize("name, key", [("smooth_l1_loss", "beta"), ("huber_loss", "delta")])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_infinite_beta_and_delta_as_torch_and_nan_refused(backend, dtype, name, key, reduction):
    x = np.array([0.0, 1.0, -3.0, 1e3, INF, NAN], dtype)
    t = np.zeros_like(x)
    for part in (slice(0, 4), slice(None)):   # (finite losses; with inf - inf = NaN)
        expected = getattr(TF, name)(torch.tensor(x[part]), torch.tensor(t[part]),
                                     reduction=reduction, **{key: INF})
        _same(getattr(F, name)(x[part], t[part], reduction=reduction, **{key: INF}), expected)
    with pytest.raises(RuntimeError, match="values for"):
        getattr(TF, name)(torch.tensor(x), torch.tensor(t), **{key: NAN})
    with pytest.raises(RuntimeError, match="values for") as error:
        getattr(F, name)(x, t, reduction=reduction, **{key: NAN})
    assert isinstance(error.value, ValueError)


def _loss_calls():
    rng = np.random.default_rng(0)
    x, t = rng.random((4, 3)), rng.random((4, 3))
    s, lab = np.sign(rng.standard_normal((4, 3))), np.array([0, 1, 2, 1])
    log_probs = np.log(np.full((5, 1, 3), 1 / 3))
    return {
        "mse_loss": (x, t), "l1_loss": (x, t), "smooth_l1_loss": (x, t), "huber_loss": (x, t),
        "soft_margin_loss": (x, s), "binary_cross_entropy": (x, t),
        "binary_cross_entropy_with_logits": (x, t), "kl_div": (x, t),
        "hinge_embedding_loss": (x, s), "margin_ranking_loss": (x[0], t[0], s[0]),
        "multilabel_margin_loss": (x, np.array([[0, 1, -1]] * 4)),
        "multi_margin_loss": (x, lab), "cosine_embedding_loss": (x, t, np.ones(4)),
        "triplet_margin_loss": (x, t, x), "cross_entropy": (x, lab), "nll_loss": (x, lab),
        "ctc_loss": (log_probs, np.array([[1, 2]]), np.array([5]), np.array([2])),
        # PyTorch checks these against its own list: 'elementwise_mean' is refused
        "poisson_nll_loss": (x, t), "gaussian_nll_loss": (x, t, t + 0.1),
        "multilabel_soft_margin_loss": (x, np.round(t)),
        "triplet_margin_with_distance_loss": (x, t, x)}


@pytest.mark.parametrize("name", sorted(_loss_calls()))
def test_deprecated_elementwise_mean_reduction_as_torch(name):
    args = _loss_calls()[name]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = getattr(TF, name)(*map(torch.tensor, args), reduction="elementwise_mean")
    except ValueError:
        with pytest.raises(ValueError, match="elementwise_mean"):
            getattr(F, name)(*args, reduction="elementwise_mean")
        return
    with pytest.warns(UserWarning, match="'elementwise_mean' is deprecated"):
        ours = getattr(F, name)(*args, reduction="elementwise_mean")
    np.testing.assert_allclose(ours, expected.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours, getattr(F, name)(*args, reduction="mean"), rtol=0)
