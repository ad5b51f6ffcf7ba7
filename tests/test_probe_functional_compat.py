"""Found by probing fastnn.nn.functional against torch.nn.functional 2.13: batch_norm and
instance_norm take strided and read-only running statistics (eval mode only reads them,
training updates strided views in place), threshold, hardshrink and elu take infinite or
NaN parameters, gaussian_nll_loss an integer target, grid_sample an empty batch,
multilabel_soft_margin_loss a weight of any broadcastable shape, linear_cross_entropy
exists, area interpolation and adaptive pools give empty outputs for an output size of
0, avg_pool2d takes a negative divisor_override (and refuses a float with TypeError),
and linear a bias that broadcasts to its output. Where the op reaches a kernel, on every
backend."""
import math

import numpy as np
import pytest

import fastnn
import fastnn.nn.functional as F
from fastnn import nn

import torch  # noqa: E402  (after fastnn: see fastnn's OpenMP warning)
import torch.nn.functional as TF  # noqa: E402

from conftest import assert_close

torch.set_num_threads(2)

INF, NAN = math.inf, math.nan


def _t(a):
    """A torch copy of a NumPy array (None stays None)."""
    return None if a is None else torch.from_numpy(np.array(a, copy=True))


def _equal(ours, theirs):
    """Same shape, dtype and values (NaN where NaN), signed zeros included."""
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, \
        (ours.shape, ours.dtype, theirs.shape, theirs.dtype)
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(np.signbit(ours), np.signbit(theirs))


# ------------------------------------------------- 1. batch_norm's running statistics
def _strided_stats(dtype):
    """running_mean, running_var as strided columns of one (3, 2) array, and that array."""
    stats = np.stack([np.full(3, 0.5, dtype), np.full(3, 2.0, dtype)], 1)
    return stats[:, 0], stats[:, 1], stats


def _read_only(values, dtype):
    a = np.array(values, dtype)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("fn, flag", [("batch_norm", "training"),
                                      ("instance_norm", "use_input_stats")])
def test_norm_reads_strided_and_read_only_running_stats_in_eval(backend, dtype, rng, fn, flag):
    x = rng.standard_normal((4, 3, 5)).astype(dtype)
    expected = getattr(TF, fn)(_t(x), _t(np.full(3, 0.5, dtype)), _t(np.full(3, 2.0, dtype)),
                               **{flag: False})
    mean, var, stats = _strided_stats(dtype)
    before = stats.copy()
    assert_close(getattr(F, fn)(x, mean, var, **{flag: False}), expected.numpy(), dtype)
    np.testing.assert_array_equal(stats, before)   # eval mode only reads them
    for mean, var in [(_read_only([0.5] * 3, dtype), _read_only([2.0] * 3, dtype)),
                      (np.broadcast_to(dtype.type(0.5), (3,)),
                       np.broadcast_to(dtype.type(2.0), (3,)))]:
        assert_close(getattr(F, fn)(x, mean, var, **{flag: False}), expected.numpy(), dtype)


def test_batch_norm_reads_memory_mapped_read_only_stats(backend, tmp_path, rng):
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    np.save(tmp_path / "mean.npy", np.full(3, 0.5, np.float32))
    np.save(tmp_path / "var.npy", np.full(3, 2.0, np.float32))
    mean = np.load(tmp_path / "mean.npy", mmap_mode="r")
    var = np.load(tmp_path / "var.npy", mmap_mode="r")
    expected = TF.batch_norm(_t(x), _t(np.array(mean)), _t(np.array(var)))
    assert_close(F.batch_norm(x, mean, var), expected.numpy(), np.float32)


@pytest.mark.parametrize("fn, flag", [("batch_norm", "training"),
                                      ("instance_norm", "use_input_stats")])
def test_norm_training_updates_strided_running_stats_in_place(backend, dtype, rng, fn, flag):
    x = rng.standard_normal((4, 3, 5)).astype(dtype)
    mean, var, stats = _strided_stats(dtype)
    theirs = _t(stats)
    expected = getattr(TF, fn)(_t(x), theirs[:, 0], theirs[:, 1], momentum=0.3,
                               **{flag: True})
    y = getattr(F, fn)(x, mean, var, momentum=0.3, **{flag: True})
    assert_close(y, expected.numpy(), dtype)
    assert_close(stats, theirs.numpy(), dtype)   # the caller's (3, 2) array, both columns
    assert not np.array_equal(stats[:, 0], np.full(3, 0.5, dtype))


@pytest.mark.parametrize("fn, flag", [("batch_norm", "training"),
                                      ("instance_norm", "use_input_stats")])
def test_norm_training_refuses_read_only_running_stats(backend, rng, fn, flag):
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    var = np.ones(3, np.float32)
    with pytest.raises(ValueError, match=f"running_mean is updated in place when {flag}=True "
                                         f"and must be writeable"):
        getattr(F, fn)(x, _read_only([0.0] * 3, np.float32), var, **{flag: True})
    np.testing.assert_array_equal(var, np.ones(3))   # nothing written before the refusal


# ------------------------------------------------------ 2. threshold's non-finite values
A = np.array([[-1.0, 0.5, 2.0, NAN, INF, -INF, 0.0, -0.0, -1e-40] + [0.3] * 9], np.float32)
THRESHOLDS = [(0.0, -INF), (0.0, INF), (0.0, NAN), (INF, 1.0), (-INF, 1.0), (NAN, 1.0),
              (NAN, NAN)]


@pytest.mark.parametrize("threshold, value", THRESHOLDS)
def test_threshold_takes_non_finite_threshold_and_value(threshold, value):
    expected = TF.threshold(_t(A), threshold, value)
    _equal(F.threshold(A, threshold, value), expected)
    ours = A.copy()
    assert F.threshold_(ours, threshold, value) is ours
    _equal(ours, expected)
    layer = nn.Threshold(threshold, value)
    x = _t(A).requires_grad_(True)
    y = torch.nn.Threshold(threshold, value)(x)
    y.backward(torch.ones_like(y))
    _equal(layer(A), y)
    _equal(layer.backward(np.ones_like(A)), x.grad)


# ------------------------------------------------------- 3. gaussian_nll_loss's target
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gaussian_nll_loss_casts_an_integer_target(dtype, reduction):
    x = np.array([0.0, 0.5, -1.0], dtype)
    target, var = np.array([1, 0, 2]), np.array([1.0, 0.5, 2.0], dtype)
    expected = TF.gaussian_nll_loss(_t(x), _t(target), _t(var), reduction=reduction)
    ours = F.gaussian_nll_loss(x, target, var, reduction=reduction)
    assert ours.dtype == dtype
    assert_close(ours, expected.numpy(), dtype)
    loss = nn.GaussianNLLLoss(reduction=reduction)
    p = _t(x).requires_grad_(True)
    theirs = torch.nn.GaussianNLLLoss(reduction=reduction)(p, _t(target), _t(var))
    theirs.backward(torch.ones_like(theirs))
    assert_close(loss(x, target, var), theirs.detach().numpy(), dtype)
    assert_close(loss.backward(None if reduction != "none" else np.ones(3, dtype))[0],
                 p.grad.numpy(), dtype)
    assert F.gaussian_nll_loss(np.zeros(3, np.float32), np.array([1, 0, 2]),
                               np.ones(3, np.float32)) == pytest.approx(0.8333333)


def test_gaussian_nll_loss_refuses_a_bool_target_as_torch():
    with pytest.raises(RuntimeError):
        TF.gaussian_nll_loss(torch.zeros(3), torch.tensor([True, False, True]), torch.ones(3))
    with pytest.raises(TypeError, match="target"):
        F.gaussian_nll_loss(np.zeros(3), np.array([True, False, True]), np.ones(3))


# ---------------------------------------------------------- 4. grid_sample's empty batch
@pytest.mark.parametrize("x_shape, grid_shape", [
    ((0, 3, 4, 5), (0, 2, 2, 2)), ((2, 0, 4, 5), (2, 2, 2, 2)), ((2, 3, 4, 5), (2, 0, 2, 2)),
    ((0, 0, 4, 5), (0, 2, 2, 2)), ((0, 3, 4, 5, 2), (0, 2, 2, 2, 3)),
    ((2, 3, 4, 5, 2), (2, 2, 0, 2, 3))])
@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
def test_grid_sample_of_an_empty_batch_or_grid(x_shape, grid_shape, mode):
    x, grid = np.zeros(x_shape, np.float32), np.zeros(grid_shape, np.float32)
    if mode == "bicubic" and len(x_shape) == 5:
        with pytest.raises(RuntimeError, match="bicubic"):
            F.grid_sample(x, grid, mode=mode, align_corners=False)
        return
    expected = TF.grid_sample(_t(x), _t(grid), mode=mode, align_corners=False)
    _equal(F.grid_sample(x, grid, mode=mode, align_corners=False), expected)


def test_grid_sample_still_refuses_empty_input_planes():
    with pytest.raises(RuntimeError, match="non-empty spatial"):
        F.grid_sample(np.zeros((0, 3, 0, 5), np.float32), np.zeros((0, 2, 2, 2), np.float32),
                      align_corners=False)


# ----------------------------------------- 5. multilabel_soft_margin_loss's weight shapes
@pytest.mark.parametrize("x_shape, w_shape", [
    ((4, 3), (3,)), ((4, 3), (4, 3)), ((4, 3), (1, 3)), ((4, 3), (4, 1)), ((4, 3), ()),
    ((4, 3), (1,)), ((4, 3), (2, 4, 3)), ((4, 3), (5, 1, 1)), ((4, 1), (4, 3)),
    ((3,), (4, 3)), ((2, 4, 3), (4, 3)), ((2, 4, 3), (2, 1, 3))])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_multilabel_soft_margin_loss_broadcasts_its_weight(rng, x_shape, w_shape, reduction):
    x = rng.standard_normal(x_shape)
    target = (rng.random(x_shape) > 0.5).astype(np.float64)
    weight = rng.random(w_shape)
    expected = TF.multilabel_soft_margin_loss(_t(x), _t(target), weight=_t(weight),
                                              reduction=reduction)
    ours = F.multilabel_soft_margin_loss(x, target, weight=weight, reduction=reduction)
    assert ours.shape == tuple(expected.shape)
    assert_close(ours, expected.numpy(), np.float64)
    if np.broadcast_shapes(x_shape, w_shape) != x_shape:
        return   # (the layer takes weights that keep pred's shape: those it can train)
    loss = nn.MultiLabelSoftMarginLoss(weight=weight, reduction=reduction)
    p = _t(x).requires_grad_(True)
    theirs = torch.nn.MultiLabelSoftMarginLoss(weight=_t(weight), reduction=reduction)(
        p, _t(target))
    theirs.backward(torch.ones_like(theirs))
    assert_close(loss(x, target), theirs.detach().numpy(), np.float64)
    grad = loss.backward(None if reduction != "none" else np.ones(x_shape[:-1]))
    assert_close(grad, p.grad.numpy(), np.float64)


def test_multilabel_soft_margin_loss_refuses_a_weight_that_does_not_broadcast():
    x = np.zeros((3, 4))
    with pytest.raises(RuntimeError, match="weight of shape"):
        F.multilabel_soft_margin_loss(x, x, weight=np.ones(3))
    with pytest.raises(ValueError, match="weight of shape"):
        nn.MultiLabelSoftMarginLoss(weight=np.ones(3))(x, x)
    with pytest.raises(ValueError, match="weight of shape"):   # one that enlarges pred's
        nn.MultiLabelSoftMarginLoss(weight=np.ones((2, 3, 4)))(x, x)


# ------------------------------------------------------------ 6. linear_cross_entropy
def test_linear_cross_entropy_has_torchs_signature():
    import inspect
    ours = inspect.signature(F.linear_cross_entropy)
    theirs = inspect.signature(TF.linear_cross_entropy)
    assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == \
        [(p.name, p.kind, p.default) for p in theirs.parameters.values()]
    assert "linear_cross_entropy" in F.__all__


def _lce_cases(rng, dtype):
    def r(*shape):
        return rng.standard_normal(shape).astype(dtype)
    x, w, b = r(5, 4), r(3, 4), r(3)
    labels = rng.integers(0, 3, 5)
    labels[1] = -100
    w3, b3, labels3 = r(3, 2, 4), r(3, 2), rng.integers(0, 3, (5, 2))
    probs, probs3 = rng.random((5, 3)).astype(dtype), rng.random((5, 3, 2)).astype(dtype)
    return [
        ((x, w, labels), {}),
        ((x, w, labels), dict(linear_bias=b, weight=rng.random(3).astype(dtype),
                              label_smoothing=0.1)),
        ((x, w, np.where(labels < 0, 2, labels)), dict(ignore_index=2)),
        ((x[0], w, np.array(labels[0])), dict(linear_bias=b)),
        ((x, w3, labels3), dict(linear_bias=b3, weight=rng.random(3).astype(dtype))),
        ((x, w, probs), dict(linear_bias=b, label_smoothing=0.2)),
        ((x, w3, probs3), {}),
        ((x[0], w, probs[0]), {}),
        ((x[:0], w, labels[:0]), {}),
    ]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_linear_cross_entropy_matches_torch(backend, dtype, rng, reduction):
    for args, kwargs in _lce_cases(rng, dtype):
        expected = TF.linear_cross_entropy(*map(_t, args), reduction=reduction,
                                           **{k: _t(v) if isinstance(v, np.ndarray) else v
                                              for k, v in kwargs.items()})
        ours = F.linear_cross_entropy(*args, reduction=reduction, **kwargs)
        assert isinstance(ours, np.ndarray) and ours.dtype == dtype
        assert ours.shape == tuple(expected.shape), (args[1].shape, kwargs)
        assert_close(ours, expected.numpy(), dtype, err_msg=str(kwargs))


def test_linear_cross_entropy_leaves_the_generator_and_weights_alone(backend, rng):
    x, w = rng.standard_normal((6, 4)), rng.standard_normal((3, 4))
    labels = rng.integers(0, 3, 6)
    fastnn.manual_seed(7)
    F.linear_cross_entropy(x, w, labels)
    after_call = fastnn.random.generator().random(4)
    fastnn.manual_seed(7)
    assert np.array_equal(after_call, fastnn.random.generator().random(4))
    w_before = w.copy()
    F.linear_cross_entropy(x, w, labels)
    np.testing.assert_array_equal(w, w_before)


@pytest.mark.parametrize("args, kwargs, error, match", [
    (((5, 4, 2), (3, 2), None), {}, RuntimeError, "dimensionality 1 or 2"),
    (((5, 4), (3,), None), {}, RuntimeError, "linear_weight with dimensionality"),
    (((5, 4), (3, 3), None), {}, RuntimeError, "in_features"),
    (((5, 4), (3, 4), None), {"linear_bias": (3, 2)}, RuntimeError, "linear_bias shape"),
    (((4,), (3, 2, 4), None), {}, RuntimeError, "requires batched input"),
    (((5, 4), (3, 4), "probs"), {"ignore_index": 1}, RuntimeError, "ignore_index"),
    (((5, 4), (3, 4), "out"), {}, IndexError, "out of bounds"),
    (((5, 4), (3, 4), None), {"reduction": "avg"}, ValueError, "not a valid value"),
])
def test_linear_cross_entropy_errors_as_torch(rng, args, kwargs, error, match):
    x, w = rng.standard_normal(args[0]), rng.standard_normal(args[1])
    target = {None: np.zeros(args[0][:-1] + args[1][1:-1], np.int64),
              "probs": rng.random((5, 3)), "out": np.array([0, 1, 5, 2, 0])}[args[2]]
    kwargs = {k: rng.standard_normal(v) if isinstance(v, tuple) else v
              for k, v in kwargs.items()}
    tk = {k: _t(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    with pytest.raises(error, match=match):
        TF.linear_cross_entropy(_t(x), _t(w), _t(target), **tk)
    with pytest.raises(error, match=match):
        F.linear_cross_entropy(x, w, target, **kwargs)


@pytest.mark.parametrize("target, kwargs", [
    (np.zeros(3, np.int64), {}), (np.zeros(5), {}), (np.zeros((5, 4)), {}),
    (np.zeros(5, np.int64), {"label_smoothing": "a"}),
    (np.zeros(5, np.int64), {"ignore_index": 1.5}),
])
def test_linear_cross_entropy_errors_name_the_function(rng, target, kwargs):
    # a bad target's error named the LinearCrossEntropyLoss(in_features=4, num_classes=3)
    # layer the function computes with, and 'labels'; a bad label_smoothing or
    # ignore_index the layer too: they name linear_cross_entropy and its parameter
    x, w = rng.standard_normal((5, 4)), rng.standard_normal((3, 4))
    with pytest.raises((TypeError, ValueError)) as got:
        F.linear_cross_entropy(x, w, target, **kwargs)
    message = str(got.value)
    assert message.startswith("linear_cross_entropy: expected "), message
    assert (list(kwargs) or ["target"])[0] in message and "LinearCrossEntropyLoss" not in message


# ------------------------------------------------- 7. outputs with a zero-sized axis
@pytest.mark.parametrize("shape", [(1, 2, 3), (1, 2, 3, 8), (1, 2, 3, 8, 4), (0, 2, 3, 8)])
@pytest.mark.parametrize("kwargs", [dict(scale_factor=0.3), dict(scale_factor=0.0),
                                    dict(scale_factor=0.3, recompute_scale_factor=True),
                                    dict(size=0)])
def test_area_interpolation_to_an_empty_output(backend, shape, kwargs):
    x = np.ones(shape, np.float32)
    expected = TF.interpolate(_t(x), mode="area", **kwargs)
    _equal(F.interpolate(x, mode="area", **kwargs), expected)


@pytest.mark.parametrize("mode, shape", [
    ("nearest", (1, 1, 3, 8)), ("nearest-exact", (1, 1, 3)), ("linear", (1, 1, 3)),
    ("bilinear", (1, 1, 3, 8)), ("bicubic", (1, 1, 3, 8)), ("trilinear", (1, 1, 3, 8, 4))])
def test_other_interpolation_modes_refuse_an_empty_output_as_torch(mode, shape):
    x = np.ones(shape, np.float32)
    for call in (lambda: TF.interpolate(_t(x), scale_factor=0.3, mode=mode),
                 lambda: F.interpolate(x, scale_factor=0.3, mode=mode)):
        with pytest.raises(RuntimeError, match="greater than 0"):
            call()


def test_interpolation_checks_the_modes_rank_before_the_output_size():
    x = np.ones((1, 1, 3), np.float32)
    for call in (lambda: TF.interpolate(_t(x), scale_factor=0.3, mode="bilinear"),
                 lambda: F.interpolate(x, scale_factor=0.3, mode="bilinear")):
        with pytest.raises(NotImplementedError, match="bilinear"):
            call()


def _empty_sizes(dims):
    return [0, (0,) * dims, (0,) + (2,) * (dims - 1), (2,) * (dims - 1) + (0,),
            (None,) * (dims - 1) + (0,)]


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("batched", [True, False])
def test_adaptive_pools_to_an_empty_output(backend, rng, dims, kind, batched):
    x = rng.standard_normal(((2,) if batched else ()) + (3,) + (5, 6, 4)[:dims])
    name = f"adaptive_{kind}_pool{dims}d"
    for size in _empty_sizes(dims):
        _equal(getattr(F, name)(x, size), getattr(TF, name)(_t(x), size))
        if kind == "max":
            ours = getattr(F, name)(x, size, return_indices=True)
            theirs = getattr(TF, name)(_t(x), size, return_indices=True)
            _equal(ours[0], theirs[0])
            _equal(ours[1], theirs[1])


def test_adaptive_pools_still_refuse_negative_sizes_and_bad_inputs():
    x = np.ones((1, 2, 4, 4), np.float32)
    with pytest.raises(ValueError, match="output_size"):
        F.adaptive_avg_pool2d(x, (0, -1))
    with pytest.raises(TypeError, match="output_size"):   # (PyTorch's TypeError)
        F.adaptive_max_pool2d(x, (0, 1.5))
    for fn in (TF.adaptive_max_pool3d, TF.adaptive_avg_pool3d):
        with pytest.raises(RuntimeError):
            fn(_t(x[0, 0]), 0)   # a 2-D input
    for fn in (F.adaptive_max_pool3d, F.adaptive_avg_pool3d):
        with pytest.raises(RuntimeError, match="input of shape"):
            fn(x[0, 0], 0)


# ------------------------------------------------------ 8. avg_pool2d's divisor_override
@pytest.mark.parametrize("divisor", [-2, -1, -3, np.int64(-3), 2, 3])
@pytest.mark.parametrize("kwargs", [dict(padding=1, count_include_pad=False),
                                    dict(ceil_mode=True, stride=3), {}])
def test_avg_pool2d_divides_by_a_negative_divisor_override(backend, dtype, divisor, kwargs):
    x = np.arange(32, dtype=dtype).reshape(1, 2, 4, 4)
    x[0, 0, 1, 1], x[0, 1, 2, 2] = np.nan, -0.0
    for sample in (x, x[0]):
        expected = TF.avg_pool2d(_t(sample), 2, divisor_override=int(divisor), **kwargs)
        ours = F.avg_pool2d(sample, 2, divisor_override=divisor, **kwargs)
        assert ours.shape == tuple(expected.shape) and ours.dtype == dtype
        np.testing.assert_array_equal(ours, expected.numpy())
        np.testing.assert_array_equal(np.signbit(ours), np.signbit(expected.numpy()))


@pytest.mark.parametrize("fn, x", [("avg_pool2d", np.ones((1, 1, 4, 4))),
                                   ("avg_pool3d", np.ones((1, 1, 4, 4, 4)))])
@pytest.mark.parametrize("divisor, error, match", [
    (2.0, TypeError, "must be int, not float"), (True, TypeError, "must be int, not bool"),
    (0, RuntimeError, "divisor must be not zero")])
def test_avg_pool_divisor_override_errors_as_torch(fn, x, divisor, error, match):
    with pytest.raises(error, match=match):
        getattr(TF, fn)(_t(x), 2, divisor_override=divisor)
    with pytest.raises(error, match=match):
        getattr(F, fn)(x, 2, divisor_override=divisor)


def test_avg_pool3d_takes_a_negative_divisor_override():
    x = np.arange(64.0).reshape(1, 1, 4, 4, 4)
    assert_close(F.avg_pool3d(x, 2, divisor_override=-3),
                 TF.avg_pool3d(_t(x), 2, divisor_override=-3).numpy(), np.float64)


# -------------------------------------------------------- 9. infinite hardshrink and elu
@pytest.mark.parametrize("lambd", [INF, -INF, NAN, -1.0])
def test_hardshrink_takes_any_lambda(lambd):
    expected = TF.hardshrink(_t(A), lambd)
    _equal(F.hardshrink(A, lambd), expected)
    x = _t(A).requires_grad_(True)
    y = torch.nn.Hardshrink(lambd)(x)
    layer = nn.Hardshrink(lambd)
    _equal(layer(A), y)


@pytest.mark.parametrize("alpha", [INF, -INF, NAN])
def test_elu_takes_a_non_finite_alpha(dtype, alpha):
    x = A.astype(dtype)
    expected = TF.elu(_t(x), alpha=alpha)
    _equal(F.elu(x, alpha=alpha), expected)
    ours = x.copy()
    assert F.elu_(ours, alpha) is ours
    _equal(ours, expected)
    ours = x.copy()
    assert F.elu(ours, alpha, inplace=True) is ours
    _equal(ours, expected)


def test_softshrink_still_refuses_an_infinite_lambda():
    with pytest.raises(RuntimeError):
        TF.softshrink(_t(A), INF)
    with pytest.raises((RuntimeError, ValueError)):
        F.softshrink(A, INF)


# -------------------------------------------------------- 10. linear's broadcast bias
@pytest.mark.parametrize("x_shape, bias_shape", [
    ((2, 3), (2, 4)), ((2, 3), (1, 4)), ((2, 3), (2, 1)), ((2, 3), (4,)), ((2, 3), ()),
    ((5, 2, 3), (2, 4)), ((5, 2, 3), (5, 2, 4)), ((5, 2, 3), (5, 1, 4)),
    ((5, 2, 3), (5, 2, 1)), ((3,), (1,))])
def test_linear_takes_a_bias_that_broadcasts_to_its_output(backend, dtype, rng, x_shape,
                                                           bias_shape):
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal((4, 3)).astype(dtype)
    b = rng.standard_normal(bias_shape).astype(dtype)
    expected = TF.linear(_t(x), _t(w), _t(b))
    ours = F.linear(x, w, b)
    assert ours.shape == tuple(expected.shape) and ours.dtype == dtype
    assert_close(ours, expected.numpy(), dtype)


@pytest.mark.parametrize("x_shape, bias_shape", [((2, 3), (3, 2, 4)), ((2, 3), (2, 5)),
                                                 ((3,), (2, 4)), ((5, 2, 3), (3, 5, 2, 4))])
def test_linear_refuses_a_bias_that_would_enlarge_its_output(rng, x_shape, bias_shape):
    x, w, b = (rng.standard_normal(s) for s in (x_shape, (4, 3), bias_shape))
    with pytest.raises(RuntimeError):
        TF.linear(_t(x), _t(w), _t(b))
    with pytest.raises(RuntimeError, match="bias"):
        F.linear(x, w, b)
