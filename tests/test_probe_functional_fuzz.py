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
    assert isinstance(ours, np.ndarray)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
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


# ------------------------------------------------ a small seeded sweep of the fuzzer's
# (the full fuzzer ran ~18,000 cases; this keeps a sample of its draws as a regression
# check: random shapes with size-1 and empty axes, signed zeros, ties, NaN, and the
# options of each function, float32 and float64, on every backend)
_OPTION = [0.5, 1.0, 2.0, 1e-3, 30.0, -1.0]


def _sweep_input(rng, dtype, specials=(NAN, -0.0, 0.0, 20.0, -20.0, 3.0, -3.0, 1e-30)):
    shape = tuple(int(s) for s in rng.integers(0, 4, rng.integers(0, 4)))
    x = np.asarray(rng.standard_normal(shape) * rng.choice([1, 5, 50]))
    if x.size:
        chosen = rng.random(shape) < 0.3
        x[chosen] = rng.choice(specials, chosen.sum())
    return x.astype(dtype)


_ACTIVATIONS = {
    "relu": lambda r: {}, "relu6": lambda r: {}, "selu": lambda r: {}, "silu": lambda r: {},
    "mish": lambda r: {}, "sigmoid": lambda r: {}, "tanh": lambda r: {},
    "softsign": lambda r: {}, "hardsigmoid": lambda r: {}, "hardswish": lambda r: {},
    "logsigmoid": lambda r: {}, "tanhshrink": lambda r: {},
    "gelu": lambda r: {"approximate": str(r.choice(["none", "tanh"]))},
    "leaky_relu": lambda r: {"negative_slope": float(r.choice(_OPTION + [INF]))},
    "elu": lambda r: {"alpha": float(r.choice(_OPTION + [INF]))},
    "celu": lambda r: {"alpha": float(r.choice(_OPTION + [-INF]))},
    "softplus": lambda r: {"beta": float(r.choice(_OPTION + [INF])),
                           "threshold": float(r.choice([1.0, 20.0, NAN]))},
    "hardtanh": lambda r: {"min_val": -float(r.choice([0.5, 1.0])),
                           "max_val": float(r.choice([0.5, 2.0]))},
    "hardshrink": lambda r: {"lambd": float(r.choice([0.0, 0.5, 3.0]))},
    "softshrink": lambda r: {"lambd": float(r.choice([0.0, 0.5, 3.0]))},
    "threshold": lambda r: {"threshold": float(r.choice(_OPTION)),
                            "value": float(r.choice(_OPTION + [NAN]))},
}


@pytest.mark.parametrize("name", sorted(_ACTIVATIONS))
def test_sweep_activations_against_torch(backend, name):
    rng = np.random.default_rng(sorted(_ACTIVATIONS).index(name))
    for case in range(12):
        dtype = (np.float32, np.float64)[case % 2]
        x, kwargs = _sweep_input(rng, dtype), _ACTIVATIONS[name](rng)
        expected = getattr(TF, name)(torch.tensor(x), **kwargs)
        if name == "softplus":   # (PyTorch's log1p(exp(z)) overflows where fastnn's does not)
            kept = np.isfinite(expected.numpy()) | np.isnan(expected.numpy())
            ours = F.softplus(x, **kwargs)
            np.testing.assert_allclose(ours[kept], expected.numpy()[kept], rtol=2e-6, atol=1e-30)
            continue
        ours = getattr(F, name)(x, **kwargs)
        assert isinstance(ours, np.ndarray) and ours.dtype == dtype
        assert ours.shape == tuple(expected.shape)
        np.testing.assert_allclose(ours, expected.numpy(),
                                   rtol=2e-5 if dtype == np.float32 else 1e-10,
                                   atol=1e-6 if dtype == np.float32 else 1e-12,
                                   err_msg=f"{name} {kwargs} {x}")


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_sweep_losses_against_torch(backend, reduction):
    rng = np.random.default_rng(["none", "sum", "mean"].index(reduction))
    for case in range(16):
        dtype = (np.float32, np.float64)[case % 2]
        shape = tuple(int(s) for s in rng.integers(1, 4, rng.integers(0, 4)))
        x, y = (np.asarray(rng.standard_normal(shape) * 3).astype(dtype) for _ in "xy")
        p, t = (np.asarray(rng.random(shape)).astype(dtype) for _ in "pt")
        sign = np.where(t > 0.5, 1, -1).astype(dtype)
        calls = [("mse_loss", (x, y), {}), ("l1_loss", (x, y), {}),
                 ("smooth_l1_loss", (x, y), {"beta": float(rng.choice([0.0, 0.5, INF]))}),
                 ("huber_loss", (x, y), {"delta": float(rng.choice([0.5, 2.0, INF]))}),
                 ("binary_cross_entropy", (p, t), {}),
                 ("binary_cross_entropy_with_logits", (x, t), {}),
                 ("soft_margin_loss", (x, sign), {}), ("hinge_embedding_loss", (x, sign), {}),
                 ("kl_div", (np.asarray(np.log(p + 0.01), dtype), t), {}),
                 ("poisson_nll_loss", (x, np.asarray(np.round(np.abs(y)), dtype)),
                  {"full": bool(rng.random() < 0.5)})]
        c = int(rng.integers(1, 5))
        logits = np.asarray(rng.standard_normal((3, c)) * 3).astype(dtype)
        labels = np.asarray(rng.integers(0, c, 3))
        labels[0] = -100
        calls.append(("cross_entropy", (logits, labels),
                      {"label_smoothing": float(rng.choice([0.0, 0.2])),
                       "weight": np.asarray(rng.random(c)).astype(dtype)}))
        calls.append(("nll_loss", (logits, labels), {}))
        for name, args, kwargs in calls:
            expected = getattr(TF, name)(
                *map(torch.tensor, args), reduction=reduction,
                **{k: torch.tensor(v) if isinstance(v, np.ndarray) else v
                   for k, v in kwargs.items()})
            ours = getattr(F, name)(*args, reduction=reduction, **kwargs)
            assert isinstance(ours, np.ndarray) and ours.dtype == dtype, name
            assert ours.shape == tuple(expected.shape), name
            np.testing.assert_allclose(ours, expected.numpy(),
                                       rtol=2e-5 if dtype == np.float32 else 1e-10,
                                       atol=1e-6 if dtype == np.float32 else 1e-12,
                                       err_msg=f"{name} {kwargs}")
