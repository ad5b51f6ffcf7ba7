"""fastnn.nn.init's dirac_, eye_, orthogonal_, sparse_, trunc_normal_ and PyTorch's
deprecated aliases, against torch.nn.init: the deterministic fills exactly, the random
ones by their defining property."""
import math
import warnings

import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn
from fastnn.nn import init


@pytest.mark.parametrize("shape,groups", [((4, 3, 3), 1), ((6, 2, 3, 4), 3),
                                          ((2, 5, 3, 2, 4), 1), ((4, 1, 1, 1), 2)])
def test_dirac_is_torchs(dtype, shape, groups):
    ours = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    theirs = torch.from_numpy(ours.copy())
    assert init.dirac_(ours, groups) is ours
    torch.nn.init.dirac_(theirs, groups)
    assert ours.dtype == dtype
    np.testing.assert_array_equal(ours, theirs.numpy())
    # a Parameter: its data, in place
    param = nn.Conv2d(3, 6, 3, groups=3).weight if len(shape) == 4 else None
    if param is not None:
        data = param.data
        assert init.dirac_(param, 3) is param and param.data is data
        np.testing.assert_array_equal(data, torch.nn.init.dirac_(torch.empty(6, 1, 3, 3), 3))


@pytest.mark.parametrize("shape", [(3, 3), (2, 5), (6, 4), (0, 3)])
def test_eye_is_torchs(dtype, shape):
    ours = np.full(shape, 7, dtype)
    assert init.eye_(ours) is ours
    np.testing.assert_array_equal(ours, torch.nn.init.eye_(torch.empty(shape)).numpy())
    layer = nn.Linear(4, 2).to(dtype)
    init.eye_(layer.weight)
    np.testing.assert_array_equal(layer.weight.data, np.eye(2, 4))


@pytest.mark.parametrize("shape", [(5, 5), (3, 8), (12, 4), (4, 2, 3, 3)])
def test_orthogonal_rows_or_columns_times_gain(dtype, shape):
    fastnn.manual_seed(3)
    ours = np.empty(shape, dtype)
    assert init.orthogonal_(ours, gain=1.7) is ours and ours.dtype == dtype
    rows, cols = shape[0], math.prod(shape[1:])
    flat = ours.reshape(rows, cols).astype(np.float64)
    gram = flat @ flat.T if rows <= cols else flat.T @ flat
    atol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(gram, 1.7 ** 2 * np.eye(min(rows, cols)), atol=atol)
    theirs = torch.nn.init.orthogonal_(torch.empty(shape), gain=1.7).numpy()
    assert np.abs(ours).max() <= 1.7 + 1e-6 and np.abs(theirs).max() <= 1.7 + 1e-6
    # reproducible by seed, and from a caller's generator
    fastnn.manual_seed(3)
    np.testing.assert_array_equal(init.orthogonal_(np.empty(shape, dtype), 1.7), ours)
    a = init.orthogonal_(np.empty(shape, dtype), generator=np.random.default_rng(1))
    b = init.orthogonal_(np.empty(shape, dtype), generator=np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape,sparsity", [((10, 6), 0.25), ((7, 30), 0.5),
                                            ((5, 4), 0.0), ((4, 3), 1.3)])
def test_sparse_zeros_per_column(dtype, shape, sparsity):
    ours = np.empty(shape, dtype)
    assert init.sparse_(ours, sparsity, std=0.5) is ours and ours.dtype == dtype
    theirs = torch.nn.init.sparse_(torch.empty(shape), sparsity, std=0.5).numpy()
    np.testing.assert_array_equal((ours == 0).sum(axis=0), (theirs == 0).sum(axis=0))
    assert ((ours == 0).sum(axis=0) == min(math.ceil(sparsity * shape[0]), shape[0])).all()
    # the nonzero values: N(0, 0.25), zeros at different rows in different columns
    big = init.sparse_(np.empty((400, 300), dtype), 0.1, std=0.5)
    values = big[big != 0].astype(np.float64)
    assert values.size == 360 * 300
    assert abs(values.mean()) < 0.01 and values.std() == pytest.approx(0.5, rel=0.02)
    assert len({tuple(np.flatnonzero(c == 0)) for c in big.T}) > 290


def _truncated_moments(mean, std, a, b):
    """Mean and standard deviation of N(mean, std**2) truncated to [a, b]."""
    alpha, beta = (a - mean) / std, (b - mean) / std
    def pdf(z):
        return 0.0 if math.isinf(z) else math.exp(-z * z / 2) / math.sqrt(2 * math.pi)

    def cdf(z):
        return (1 + math.erf(z / math.sqrt(2))) / 2

    mass = cdf(beta) - cdf(alpha)
    m = (pdf(alpha) - pdf(beta)) / mass
    za = 0.0 if math.isinf(alpha) else alpha * pdf(alpha)
    zb = 0.0 if math.isinf(beta) else beta * pdf(beta)
    var = 1 + (za - zb) / mass - m * m
    return mean + std * m, std * math.sqrt(var)


@pytest.mark.parametrize("mean,std,a,b", [
    (0.0, 1.0, -2.0, 2.0),            # most of the normal: redrawn normal draws
    (1.0, 2.0, 0.0, 1.5),             # a narrow window: the uniform proposal
    (0.0, 1.0, 3.0, 8.0),             # a tail: the exponential proposal
    (0.5, 0.1, -math.inf, 0.1)])      # an open tail (PyTorch's sampler cannot take it)
@pytest.mark.filterwarnings("ignore:mean is more than 2 std")
def test_trunc_normal_bounds_and_moments(dtype, mean, std, a, b):
    fastnn.manual_seed(0)
    ours = np.empty((200, 500), dtype)
    assert init.trunc_normal_(ours, mean, std, a, b) is ours and ours.dtype == dtype
    lo, hi = dtype.type(a), dtype.type(b)
    assert ours.min() >= lo and ours.max() <= hi
    expect_mean, expect_std = _truncated_moments(mean, std, a, b)
    values = ours.astype(np.float64)
    # 100,000 draws: the mean's standard error is expect_std / 316
    assert values.mean() == pytest.approx(expect_mean, abs=5 * expect_std / 316)
    assert values.std() == pytest.approx(expect_std, rel=0.02)
    if math.isfinite(a) and math.isfinite(b):
        theirs = torch.nn.init.trunc_normal_(torch.empty(200, 500, dtype=torch.float64),
                                             mean, std, a, b).numpy()
        assert values.mean() == pytest.approx(theirs.mean(), abs=8 * expect_std / 316)
        assert values.std() == pytest.approx(theirs.std(), rel=0.03)


def test_trunc_normal_edges():
    with pytest.warns(UserWarning, match="mean is more than 2 std from"):
        x = init.trunc_normal_(np.empty(1000), mean=10.0, std=1.0, a=-2.0, b=2.0)
    assert x.min() >= -2 and x.max() <= 2 and x.mean() > 1.5
    np.testing.assert_array_equal(init.trunc_normal_(np.empty(4), a=0.5, b=0.5), 0.5)
    gen = np.random.default_rng(4)
    first = init.trunc_normal_(np.empty(50), generator=gen)
    second = init.trunc_normal_(np.empty(50), generator=np.random.default_rng(4))
    np.testing.assert_array_equal(first, second)
    with pytest.raises(ValueError, match="expected a <= b"):
        init.trunc_normal_(np.empty(3), a=1.0, b=0.0)
    with pytest.raises(ValueError, match="std > 0"):
        init.trunc_normal_(np.empty(3), std=0.0)
    with pytest.raises(TypeError, match="np.random.Generator"):
        init.trunc_normal_(np.empty(3), generator=torch.Generator())


def test_errors_as_torchs():
    cases = [("dirac_", (4, 4), {}, "Only tensors with 3, 4, or 5 dimensions"),
             ("dirac_", (3, 2, 3), {"groups": 2}, "dim 0 must be divisible by groups"),
             ("eye_", (2, 2, 2), {}, "Only tensors with 2 dimensions"),
             ("orthogonal_", (5,), {}, "Only tensors with 2 or more dimensions"),
             ("sparse_", (2, 2, 2), {"sparsity": 0.5}, "Only tensors with 2 dimensions")]
    for name, shape, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            getattr(torch.nn.init, name)(torch.empty(shape), **kwargs)
        with pytest.raises(ValueError, match=message):
            getattr(init, name)(np.empty(shape, np.float32), **kwargs)
    with pytest.raises(ValueError, match="groups to be a positive int"):
        init.dirac_(np.empty((2, 2, 3)), groups=0)
    with pytest.raises(ValueError, match="sparsity to be a number >= 0"):
        init.sparse_(np.empty((2, 2)), -0.1)
    with pytest.raises(TypeError, match="expected a Parameter or a float array"):
        init.normal_(np.zeros((2, 2), np.int32))
    # PyTorch's no-op with a warning on an empty array, for the kaiming fills
    with pytest.warns(UserWarning, match="zero-element tensors is a no-op"):
        assert init.kaiming_uniform_(np.empty((0, 3))).shape == (0, 3)
    with pytest.warns(UserWarning, match="zero-element tensors is a no-op"):
        init.kaiming_normal_(np.empty(0))


@pytest.mark.parametrize("old,args", [
    ("uniform", ()), ("normal", ()), ("constant", (0.5,)), ("eye", ()), ("dirac", ()),
    ("xavier_uniform", ()), ("xavier_normal", ()), ("kaiming_uniform", ()),
    ("kaiming_normal", ()), ("orthogonal", ()), ("sparse", (0.5,))])
def test_deprecated_aliases_warn_as_torch(old, args):
    shape = (4, 4, 3) if old == "dirac" else (4, 6)
    with pytest.warns(FutureWarning) as theirs:
        getattr(torch.nn.init, old)(torch.empty(shape), *args)
    ours = np.empty(shape, np.float32)
    with pytest.warns(FutureWarning) as record:
        assert getattr(init, old)(ours, *args) is ours
    assert str(record[0].message) == str(theirs[0].message)
    assert record[0].filename == __file__  # pointing at the caller, as PyTorch's
    assert getattr(init, old).__name__ == old
    if old in ("eye", "dirac", "constant"):
        np.testing.assert_array_equal(ours, getattr(torch.nn.init, old + "_")(
            torch.empty(shape), *args).numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        getattr(init, old + "_")(ours, *args)  # the new name does not warn


def test_the_fills_that_draw_nothing_take_any_dtype_as_pytorchs():
    """PyTorch's constant_, zeros_, ones_, eye_ and dirac_ fill integer, bool and complex
    tensors (constant_ casting its value as fill_ does); fastnn's refused every array
    but a float one."""
    for dtype in (np.int32, np.int64, np.uint8, bool, np.complex64):
        tdtype = torch.from_numpy(np.zeros(1, dtype)).dtype
        for name, shape, args in (("constant_", (3,), (2.7,)), ("zeros_", (2, 2), ()),
                                  ("ones_", (2,), ()), ("eye_", (2, 3), ()),
                                  ("dirac_", (2, 2, 3), ())):
            ours = getattr(init, name)(np.full(shape, 5, dtype), *args)
            theirs = getattr(torch.nn.init, name)(torch.full(shape, 5, dtype=tdtype), *args)
            assert ours.dtype == dtype
            np.testing.assert_array_equal(ours, theirs.numpy())
    with pytest.raises(TypeError, match="expected a Parameter or an array, got list"):
        init.zeros_([1.0, 2.0])


def test_a_nan_std_is_an_error_as_in_pytorch():
    """PyTorch's normal_ refuses std NaN (RuntimeError, as std < 0); fastnn's filled the
    array with NaN. xavier_normal_ with a NaN gain reaches the same check."""
    with pytest.raises(RuntimeError, match="std >= 0"):
        torch.nn.init.normal_(torch.zeros(2, 3), 0.0, float("nan"))
    w = np.ones((2, 3), np.float32)
    with pytest.raises(RuntimeError, match="std >= 0"):
        init.normal_(w, 0.0, float("nan"))
    with pytest.raises(RuntimeError, match="std >= 0"):
        init.xavier_normal_(w, gain=float("nan"))
    np.testing.assert_array_equal(w, 1.0)
