"""Activation, dropout and batch-norm layers and their functional forms against PyTorch
2.13 where a randomized probe found them differing: the channel dropouts' input ranks
(PyTorch's deprecated ranks and warnings), on every CPU backend."""
import math
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.nn import functional as F

torch = pytest.importorskip("torch")


def _lead(name, ndim):
    """The leading axes one mask value of PyTorch's dropout2d / dropout3d covers."""
    return 2 if name == "dropout2d" or ndim == 5 else 1


def _run(call):
    """(result or exception, [warning messages]) of call()."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            out = call()
        except Exception as error:  # noqa: BLE001 (compared with PyTorch's)
            out = error
    return out, [str(w.message) for w in seen]


@pytest.mark.parametrize("name", ["dropout2d", "dropout3d"])
@pytest.mark.parametrize("ndim", range(7))
@pytest.mark.parametrize("form", ["functional", "module", "sequential"])
def test_channel_dropout_takes_every_rank_pytorch_takes(backend, name, ndim, form):
    # nn.Dropout2d refused 2-D, 5-D and 6-D inputs and nn.Dropout3d 1-3-D and 6-D ones
    # (ValueError) that PyTorch runs with a deprecation warning; a 3-D input to
    # Dropout2d / F.dropout2d ran without PyTorch's (N, C, L) warning; F.dropout2d and
    # F.dropout3d refused 0-D / 1-D inputs also where nothing is drawn (eval, p = 0 or 1)
    cls = {"dropout2d": "Dropout2d", "dropout3d": "Dropout3d"}[name]
    x = np.asarray(np.random.default_rng(ndim).standard_normal((5, 6, 3, 2, 2, 2)[:ndim])
                   + 5)
    for p in (0.0, 0.5, 1.0):
        for training in (True, False):
            def ours():
                if form == "functional":
                    return getattr(F, name)(x, p, training)
                layer = getattr(nn, cls)(p)
                model = nn.Sequential(layer, nn.Identity()) if form == "sequential" else layer
                model.train(training)
                y = model(x)
                grad = model.backward(np.ones_like(x))
                np.testing.assert_allclose(grad * x, y)  # the forward's mask
                return y

            def theirs():
                if form == "functional":
                    return getattr(torch.nn.functional, name)(torch.from_numpy(x), p,
                                                               training).numpy()
                layer = getattr(torch.nn, cls)(p).train(training)
                return layer(torch.from_numpy(x)).numpy()

            (y, ours_warned), (expected, torch_warned) = _run(ours), _run(theirs)
            assert ours_warned == torch_warned
            if isinstance(expected, Exception):
                assert isinstance(y, RuntimeError), y
                continue
            assert isinstance(y, np.ndarray) and y.shape == x.shape, y
            if training and 0 < p < 1:
                lead = _lead(name, ndim)
                gain = (y / x).reshape(math.prod(x.shape[:lead]), -1)
                assert np.ptp(gain, axis=1).max() < 1e-12
                assert set(np.unique(gain)) <= {0.0, 2.0}
            else:
                np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("shape", [(), (3,), (0,)])
@pytest.mark.parametrize("p,training", [(0.5, False), (0.0, True), (1.0, True), (0.5, True)])
def test_feature_alpha_dropout_needs_channels_only_to_draw(backend, shape, p, training):
    # FeatureAlphaDropout refused any input of rank < 2 (ValueError); PyTorch's takes
    # one wherever nothing is drawn: eval mode, p = 0, p = 1 (x * 0), an empty input
    x = np.full(shape, 2.0, np.float32)
    try:
        expected = torch.nn.FeatureAlphaDropout(p).train(training)(torch.from_numpy(x))
    except RuntimeError:
        expected = None
    for run in (lambda: nn.FeatureAlphaDropout(p).train(training)(x),
                lambda: F.feature_alpha_dropout(x, p, training)):
        if expected is None:
            with pytest.raises(RuntimeError):
                run()
            continue
        y = run()
        assert isinstance(y, np.ndarray) and y.dtype == np.float32
        np.testing.assert_array_equal(y, expected.numpy())


@pytest.mark.parametrize("call", [
    lambda m, x: m.softshrink(x, float("inf")),
    lambda m, x: m.softshrink(x, float("nan")),
    lambda m, x: m.rrelu(x, float("inf"), float("inf")),
    lambda m, x: m.rrelu(x, float("nan"), 0.3),
    lambda m, x: m.rrelu(x, 0.1, float("nan"), True),
])
def test_nonfinite_bounds_are_pytorchs_runtime_error(call):
    # F.softshrink with an infinite or NaN lambd and F.rrelu with an infinite or NaN
    # bound raised a plain ValueError where PyTorch raises RuntimeError
    x = np.linspace(-2, 2, 5)
    with pytest.raises(RuntimeError):
        call(torch.nn.functional, torch.from_numpy(x))
    with pytest.raises(RuntimeError):
        call(F, x)


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("name", ["lower", "upper"])
def test_rrelu_bounds_as_arrays_as_pytorch(training, name):
    # F.rrelu with a 1-d array bound named leaky_relu's negative_slope (not training) or
    # the RReLU layer (training), and refused a 0-d array in training: PyTorch takes a 0-d
    # tensor bound as its number and refuses any other tensor (TypeError naming it)
    x = np.array([-1.0, 2.0])
    bounds = {"lower": 0.2, "upper": 0.2}
    bounds[name] = np.array(0.2)
    y = F.rrelu(x, **bounds, training=training)
    expected = torch.nn.functional.rrelu(torch.from_numpy(x), 0.2, 0.2, training=training)
    np.testing.assert_allclose(y, expected.numpy())
    bounds[name] = np.array([0.2, 0.2])
    with pytest.raises(TypeError, match=name):
        torch.nn.functional.rrelu(torch.from_numpy(x), **{k: torch.tensor(v) if k == name
                                                          else v for k, v in bounds.items()})
    with pytest.raises(TypeError, match=f"rrelu: expected {name} to be a number"):
        F.rrelu(x, **bounds, training=training)


@pytest.mark.parametrize("bounds", [(1.0, 1.0), (2.0, 1.0)])
def test_hardtanh_bounds_out_of_order_are_pytorchs_assertion(bounds):
    # nn.Hardtanh(min_val >= max_val) raised a plain ValueError: PyTorch's module
    # asserts (AssertionError); the error is both now
    with pytest.raises(AssertionError):
        torch.nn.Hardtanh(*bounds)
    with pytest.raises(AssertionError):
        nn.Hardtanh(*bounds)
    with pytest.raises(ValueError):
        nn.Hardtanh(*bounds)


@pytest.mark.parametrize("cls", ["Softmax", "LogSoftmax", "Softmin"])
@pytest.mark.parametrize("ndim", range(5))
@pytest.mark.parametrize("wrap", [False, True])
def test_softmax_layers_without_dim_warn_as_pytorch(cls, ndim, wrap):
    # nn.Softmax / LogSoftmax / Softmin with dim=None ran silently; PyTorch's warn that
    # the implicit dim is deprecated at each forward (as F.softmax here already did)
    x = np.random.default_rng(ndim).standard_normal((2, 3, 4, 5)[:ndim])
    layer = getattr(nn, cls)()
    model = nn.Sequential(layer) if wrap else layer
    (y, ours), (expected, theirs) = (
        _run(lambda: model(x)), _run(lambda: getattr(torch.nn, cls)()(torch.from_numpy(x))))
    assert ours == theirs and len(ours) == 1
    np.testing.assert_allclose(y, expected.numpy(), rtol=1e-12, atol=1e-15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # backward does not warn again
        model.backward(np.ones_like(x))


@pytest.mark.parametrize("cls,shape", [("BatchNorm1d", (4, 3)), ("BatchNorm2d", (2, 3, 2, 2))])
@pytest.mark.parametrize("dropped", ["running_mean", "running_var"])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_with_one_running_buffer_set_to_none_is_refused(backend, cls, shape,
                                                                   dropped, training):
    # a training-mode forward with only one running statistic set to None ran, updating
    # the other alone and counting the batch; PyTorch refuses it (ValueError; in eval
    # mode RuntimeError): refused before anything changes
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    layer = getattr(nn, cls)(3).train(training)
    setattr(layer, dropped, None)
    kept = "running_var" if dropped == "running_mean" else "running_mean"
    before = getattr(layer, kept).copy()
    twin = getattr(torch.nn, cls)(3).train(training)
    setattr(twin, dropped, None)
    with pytest.raises(ValueError if training else RuntimeError):
        twin(torch.from_numpy(x))
    for model in (layer, nn.Sequential(layer)):
        with pytest.raises(ValueError if training else RuntimeError):
            model(x)
    np.testing.assert_array_equal(getattr(layer, kept), before)
    assert layer.num_batches_tracked == 0


@pytest.mark.parametrize("dropped", ["running_mean", "running_var"])
def test_functional_batch_norm_refuses_one_running_buffer_in_training(dropped):
    # F.batch_norm(training=True) with one running statistic None ran (and updated the
    # other); PyTorch's raises ValueError
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    stats = {"running_mean": np.zeros(3, np.float32), "running_var": np.ones(3, np.float32)}
    stats[dropped] = None
    kept = [v for v in stats.values() if v is not None][0]
    before = kept.copy()
    with pytest.raises(ValueError):
        torch.nn.functional.batch_norm(
            torch.from_numpy(x), *(None if v is None else torch.from_numpy(v.copy())
                                   for v in stats.values()), training=True)
    with pytest.raises(ValueError):
        F.batch_norm(x, stats["running_mean"], stats["running_var"], training=True)
    np.testing.assert_array_equal(kept, before)


@pytest.mark.parametrize("cls", ["Hardsigmoid", "Hardswish", "SiLU", "Mish", "ReLU"])
@pytest.mark.parametrize("inplace", [False, True])
def test_inplace_activation_reprs_are_pytorchs(cls, inplace):
    # Hardsigmoid(inplace=True) / Hardswish(inplace=True) showed the flag, which
    # PyTorch's reprs leave out
    ours, theirs = getattr(nn, cls)(inplace=inplace), getattr(torch.nn, cls)(inplace=inplace)
    assert repr(ours) == repr(theirs)


@pytest.mark.parametrize("name,args", [
    ("LeakyReLU", (1,)), ("ELU", (2,)), ("CELU", (2,)), ("Hardtanh", (-2, 3)),
    ("Hardshrink", (1,)), ("Softshrink", (1,)), ("Softplus", (2, 10)), ("Dropout", (0,)),
    ("Dropout", (1,)), ("Dropout2d", (1,)), ("AlphaDropout", (0,)),
    ("FeatureAlphaDropout", (1,)), ("BatchNorm1d", (3, 1, 1)), ("BatchNorm3d", (3, 0, None))])
def test_arguments_kept_as_given_as_pytorch(backend, name, args):
    # these layers stored float(arg): an int argument came back a float in the attribute
    # and the repr (LeakyReLU(negative_slope=1.0) for PyTorch's negative_slope=1); the
    # kernels still take floats
    ours, theirs = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
    for key, value in vars(theirs).items():
        if key.startswith("_") or key == "training" or isinstance(value, torch.Tensor):
            continue
        got = getattr(ours, key)
        assert got == value and type(got) is type(value), key
    assert repr(ours) == repr(theirs)
    x = np.linspace(-3, 3, 24).reshape((2, 3, 4, 1, 1) if name == "BatchNorm3d" else (2, 3, 4))
    # eval mode (BatchNorm's eps = 0 takes only running statistics); the dropouts' p is 0
    # or 1 here, in training mode: nothing random
    training = "Dropout" in name
    ours.double().train(training), theirs.double().train(training)
    np.testing.assert_allclose(ours(x), theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-6, atol=1e-6)
    if name == "LeakyReLU":   # fused into the Linear before it in a Sequential
        model = nn.Sequential(nn.Linear(4, 4), nn.LeakyReLU(*args)).double()
        expected = nn.LeakyReLU(*args)(model[0](x))
        y = model(x)
        np.testing.assert_allclose(y, expected, rtol=1e-12)
        model.backward(np.ones_like(y))
