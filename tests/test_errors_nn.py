"""Bad input to layers, containers and losses: a clear error naming the layer, what it
expected and what it got, raised before anything changes (parameters, gradients and
running statistics stay exactly as they were)."""
import re

import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.models import MLP


def _state(model):
    return ([a.copy() for a in model.state_dict().values()],
            [p.grad.copy() for p in model.parameters()])


def _assert_same(model, before):
    values, grads = before
    for a, b in zip(model.state_dict().values(), values):
        np.testing.assert_array_equal(a, b)
    for p, g in zip(model.parameters(), grads):
        np.testing.assert_array_equal(p.grad, g)


def _trained_layer(layer, x):
    """A layer that has run forward and backward once (non-zero grads and stats)."""
    y = layer(x)
    layer.backward(np.ones_like(y))
    return layer


F32 = np.float32
LINEAR_CASES = [
    (np.zeros((4, 3, 1), F32), ValueError,
     r"Linear\(in_features=3, out_features=2, bias=True\): expected input of shape \(\*, 3\), "
     r"got \(4, 3, 1\)"),
    (np.zeros((4, 5), F32), ValueError, r"expected input of shape \(\*, 3\), got \(4, 5\)"),
    (np.zeros((), F32), ValueError, r"expected input of shape \(\*, 3\), got \(\)"),
    (np.zeros((4, 3), np.int64), TypeError,
     "expected input of dtype float32 or float64, got int64"),
    (np.zeros((4, 3), np.float16), TypeError, "got float16"),
    (np.zeros((4, 3), np.float64), TypeError,
     r"input dtype float64 does not match the layer's parameters \(float32\)"),
    ([[0.0, 0.0, 0.0]], TypeError, "expected input to be a numpy.ndarray, got list"),
]


@pytest.mark.parametrize("x, error, match", LINEAR_CASES,
                         ids=["rank3", "features", "rank0", "int", "float16", "mixed", "list"])
def test_linear_rejects_bad_input_and_changes_nothing(backend, x, error, match):
    layer = _trained_layer(nn.Linear(3, 2), np.ones((4, 3), F32))
    before = _state(layer)
    with pytest.raises(error, match=match):
        layer(x)
    _assert_same(layer, before)
    layer.backward(np.ones((4, 2), F32))  # the saved forward state is still the old one


def test_sequential_checks_every_layer_before_running_any(backend, rng):
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Softmax(),
                          nn.Flatten(), nn.Linear(6, 2))
    before = _state(model)
    with pytest.raises(ValueError, match=r"Sequential layer 5: Linear\(in_features=6, "
                                         r"out_features=2, bias=True\): expected input of "
                                         r"shape \(\*, 6\), got \(8, 5\)"):
        model(rng.standard_normal((8, 4)).astype(F32))
    _assert_same(model, before)  # BatchNorm's running statistics included


def test_mlp_names_the_failing_layer(backend):
    model = MLP(10, [8], 3)
    with pytest.raises(ValueError, match=r"Sequential layer 0: Linear\(in_features=10, "
                                         r"out_features=8, bias=True\).*got \(2, 9\)"):
        model(np.zeros((2, 9), F32))
    with pytest.raises(TypeError, match=r"Sequential layer 0: .*float64 does not match"):
        model(np.zeros((2, 10)))


@pytest.mark.parametrize("make, shape", [(lambda: nn.BatchNorm1d(3), (1, 3)),
                                         (lambda: nn.BatchNorm2d(3), (1, 3, 1, 1))],
                         ids=["1d", "2d"])  # (an empty batch runs, as PyTorch's:
# tests/test_nn_batchnorm.py; mean_only takes one value: test_nn_batchnorm.py)
def test_training_batchnorm_rejects_one_value_per_channel(backend, make, shape):
    layer = make()
    _trained_layer(layer, np.random.default_rng(0).standard_normal((4,) + shape[1:]).astype(F32))
    before = _state(layer)
    with pytest.raises(ValueError, match=r"BatchNorm.d\(3.*\): expected more than 1 value per "
                                         r"channel in training mode"):
        layer(np.ones(shape, F32))
    _assert_same(layer, before)
    if shape[0] == 1:
        layer.eval()
        assert layer(np.ones(shape, F32)).shape == shape  # running statistics: fine


@pytest.mark.parametrize("make, x, match", [
    (lambda: nn.BatchNorm1d(3), np.zeros((4, 4), F32),
     r"expected input of shape \(N, 3\) or \(N, 3, L\), got \(4, 4\)"),
    (lambda: nn.BatchNorm1d(3), np.zeros((4, 3, 2, 2), F32), r"expected input of shape \(N, 3\)"),
    (lambda: nn.BatchNorm2d(3), np.zeros((4, 3), F32),
     r"expected input of shape \(N, 3, H, W\), got \(4, 3\)"),
    (lambda: nn.Softmax(dim=3), np.zeros((2, 3, 4), F32),
     r"Softmax\(dim=3\): dim 3 is out of range for an input of shape \(2, 3, 4\)"),
    (lambda: nn.Flatten(2, 3), np.zeros((2, 3), F32),
     r"Flatten\(start_dim=2, end_dim=3\): cannot flatten"),
], ids=["bn1d-features", "bn1d-rank", "bn2d-rank", "softmax-rank", "flatten-dims"])
def test_shape_errors(backend, make, x, match):
    with pytest.raises(ValueError, match=match):
        make()(x)


@pytest.mark.parametrize("cls", [nn.ReLU, nn.LeakyReLU, nn.GELU, nn.Sine, nn.Sigmoid,
                                 nn.Tanh, nn.Dropout, nn.Identity],
                         ids=lambda cls: cls.__name__)
def test_activations_reject_integer_input(backend, cls):
    layer = cls()
    with pytest.raises(TypeError, match=rf"{type(layer).__name__}\(.*\): expected input of "
                                        rf"dtype float32 or float64, got int32"):
        layer(np.zeros((2, 2), np.int32))


def test_backward_before_forward_and_bad_grad_out(backend):
    layer = nn.Linear(3, 2)
    with pytest.raises(RuntimeError, match=r"Linear\(.*\): backward called before forward"):
        layer.backward(np.ones((4, 2), F32))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        nn.Sequential(nn.ReLU()).backward(np.ones(2, F32))
    with pytest.raises(RuntimeError, match=r"MSELoss\(\): backward called before forward"):
        nn.MSELoss().backward()
    _trained_layer(layer, np.ones((4, 3), F32))
    before = _state(layer)
    with pytest.raises(ValueError, match=r"expected grad_out of shape \(4, 2\) \(the shape of "
                                         r"the last forward output\), got \(4, 3\)"):
        layer.backward(np.ones((4, 3), F32))
    with pytest.raises(TypeError, match="grad_out is float64 but expected float32"):
        layer.backward(np.ones((4, 2)))
    _assert_same(layer, before)


@pytest.mark.parametrize("logits, target, error, match", [
    (np.zeros((3, 4), F32), np.array([0, 4, 1]), ValueError,
     r"CrossEntropyLoss\(\): labels out of range: expected values in \[0, 4\), "
     r"got min 0 and max 4"),
    (np.zeros((3, 4), F32), np.array([0, -1, 1]), ValueError, "labels out of range"),
    (np.zeros((3, 4), F32), np.array([0, 1]), ValueError,
     r"expected labels of shape \(3,\), got \(2,\)"),
    (np.zeros((3, 4), F32), np.zeros((3, 4)), TypeError, "target is float64 but expected float32"),
    (np.zeros((3, 4), F32), np.zeros((3, 5), F32), ValueError,
     r"expected target of shape \(3, 4\)"),
    (np.zeros(4, F32), np.array([1, 2]), ValueError,   # ((1,): PyTorch's forward takes it)
     r"expected labels of shape \(\) for logits of shape \(4,\), got \(2,\)"),
    (np.zeros((3, 0), F32), np.zeros(3, np.int64), ValueError, "with at least one class"),
    (np.zeros((3, 4), F32), [0, 1, 2], TypeError, "expected target to be integer labels"),
    (np.zeros((3, 4), np.int64), np.array([0, 1, 2]), TypeError,
     "expected logits of dtype float32"),
], ids=["label-high", "label-negative", "label-shape", "prob-dtype", "prob-shape", "rank",
        "empty", "list", "int-logits"])
def test_cross_entropy_rejects_bad_input(backend, logits, target, error, match):
    loss = nn.CrossEntropyLoss()
    loss(np.zeros((2, 2), F32), np.array([0, 1]))
    kept = loss.backward()
    with pytest.raises(error, match=match):
        loss(logits, target)
    # the failed call did not replace the saved gradient (backward hands out a copy)
    np.testing.assert_array_equal(loss.backward(), kept)


def test_mse_and_bce_reject_bad_input(backend):
    with pytest.raises(ValueError, match=r"MSELoss\(\): expected target of shape \(2, 3\) "
                                         r"\(same as pred\), got \(3, 2\)"):
        nn.MSELoss()(np.zeros((2, 3), F32), np.zeros((3, 2), F32))
    with pytest.raises(TypeError, match="target is float64 but expected float32"):
        nn.MSELoss()(np.zeros(3, F32), np.zeros(3))
    # an empty batch is PyTorch's 0 / 0 (README: "the mean loss over no elements is NaN")
    assert np.isnan(nn.MSELoss()(np.zeros((0, 2), F32), np.zeros((0, 2), F32)))
    with pytest.raises(ValueError, match=r"BCELoss\(\): expected pred to be probabilities in "
                                         r"\[0, 1\], got values in \[-0.5, 1.0\]"):
        nn.BCELoss()(np.array([-0.5, 1.0], F32), np.zeros(2, F32))
    # NaN is not rejected: it propagates so a diverged run reports a NaN loss.
    assert np.isnan(nn.BCELoss()(np.array([np.nan, 0.5], F32), np.zeros(2, F32)))


@pytest.mark.parametrize("build, error, match", [
    (lambda: nn.Linear(-1, 3), ValueError,
     "Linear: expected in_features to be a non-negative int, got -1"),
    (lambda: nn.Linear(3, 2.5), ValueError,
     "expected out_features to be a non-negative int, got 2.5"),
    (lambda: nn.Dropout(1.5), ValueError, r"Dropout: expected p in \[0.0, 1.0\], got 1.5"),
    (lambda: nn.Dropout(-0.1), ValueError, r"Dropout: expected p in \[0.0, 1.0\]"),
    (lambda: nn.LeakyReLU("0.1"), TypeError, "LeakyReLU: expected negative_slope to be a number"),
    (lambda: nn.Sine(float("nan")), ValueError, "Sine: expected a finite omega"),
    (lambda: nn.BatchNorm1d(0), ValueError,
     "BatchNorm1d: expected num_features to be a positive int"),
    (lambda: nn.BatchNorm1d(3, momentum=1.5), ValueError, r"expected momentum in \[0.0, 1.0\]"),
    (lambda: nn.BatchNorm2d(3, eps=-1e-5), ValueError, r"expected eps in \[0.0, inf\)"),
    (lambda: nn.Flatten(1.5), TypeError, "Flatten: expected start_dim to be an int"),
    (lambda: MLP(4, [3, 0], 2), ValueError,
     "MLP: expected each hidden width to be a positive int, got 0"),
    (lambda: MLP(4, "3", 2), TypeError, "MLP: expected hidden to be an int or a list of ints"),
    (lambda: MLP(4, 3, 2, activation="swish"), ValueError, "MLP: expected activation in"),
    (lambda: fastnn.models.VAE(4, 2, activation="swish"), ValueError,
     "VAE: expected activation in"),
    (lambda: MLP(4, 3, 2, dropout=1.5), ValueError, r"MLP: expected dropout in \[0, 1\]"),
    (lambda: fastnn.manual_seed(-1), ValueError, "manual_seed: expected a non-negative int"),
    (lambda: nn.AvgPool2d(2, count_include_pad="no"), TypeError,
     "AvgPool2d: expected count_include_pad to be a bool, got 'no'"),
], ids=["linear-in", "linear-out", "dropout-1", "dropout-neg", "leaky-slope", "sine-omega",
        "bn-features", "bn-momentum", "bn-eps", "flatten", "mlp-width", "mlp-hidden",
        "mlp-activation", "vae-activation", "mlp-dropout", "seed", "avgpool-count-include-pad"])
def test_invalid_hyper_parameters(build, error, match):
    with pytest.raises(error, match=match):
        build()


@pytest.mark.parametrize("make,attr", [
    (lambda: nn.BatchNorm1d(3), "momentum"), (lambda: nn.BatchNorm1d(3), "eps"),
    (lambda: nn.BatchNorm1d(3).eval(), "eps"), (lambda: nn.LeakyReLU(), "negative_slope"),
    (lambda: nn.ELU(), "alpha"), (lambda: nn.Softplus(), "threshold"),
    (lambda: nn.Hardtanh(), "max_val")],
    ids=["bn-momentum", "bn-eps", "bn-eval-eps", "leaky-slope", "elu-alpha",
         "softplus-threshold", "hardtanh-max"])
@pytest.mark.parametrize("value", ["x", "0.5", [0.1]])
def test_a_hyper_parameter_set_to_no_number_names_the_layer(backend, make, attr, value):
    """Set after construction (as PyTorch's attributes), a value that is no number is
    the constructor's TypeError naming the layer and the attribute at the call (not
    float()'s 'could not convert string to float'), the running statistics unchanged."""
    layer = make()
    model = nn.Sequential(nn.Linear(3, 3), layer)
    setattr(layer, attr, value)
    before = _state(model)
    with pytest.raises(TypeError, match=f"{type(layer).__name__}.*: expected {attr} to be "
                                        f"a number, got {re.escape(repr(value))}"):
        model(np.ones((4, 3), np.float32))
    _assert_same(model, before)



@pytest.mark.parametrize("make,attr,call", [
    (lambda: nn.LocalResponseNorm(2), "alpha", lambda m: m(np.ones((2, 3, 4), np.float32))),
    (lambda: nn.LocalResponseNorm(2), "k", lambda m: m(np.ones((2, 3, 4), np.float32))),
    (lambda: nn.CrossMapLRN2d(3), "beta", lambda m: m(np.ones((2, 3, 4, 4), np.float32))),
    (lambda: nn.PairwiseDistance(), "norm",
     lambda m: m(np.ones((2, 3), np.float32), np.zeros((2, 3), np.float32))),
    (lambda: nn.PairwiseDistance(), "eps",
     lambda m: m(np.ones((2, 3), np.float32), np.zeros((2, 3), np.float32))),
    (lambda: nn.LinearCrossEntropyLoss(3, 4), "label_smoothing",
     lambda m: m(np.ones((2, 3), np.float32), np.array([0, 1]))),
], ids=["lrn-alpha", "lrn-k", "crossmap-beta", "pairwise-norm", "pairwise-eps",
        "linear-ce-smoothing"])
def test_a_host_layer_number_set_to_no_number_names_the_layer(make, attr, call):
    """As for the compiled layers above: set after construction to a string, the
    constructor's TypeError naming the layer and attribute, not float()'s or NumPy's."""
    layer = make()
    setattr(layer, attr, "0.5")
    with pytest.raises(TypeError, match=f"{type(layer).__name__}: expected {attr} to be "
                                        f"a number, got '0.5'"):
        call(layer)


@pytest.mark.parametrize("make,shape", [(lambda: nn.LocalResponseNorm(3), (2, 5, 4)),
                                        (lambda: nn.CrossMapLRN2d(3), (2, 5, 3, 3))])
def test_lrn_backward_takes_the_numbers_its_forward_used(make, shape):
    """PyTorch's graph keeps alpha and beta as the forward saw them: changed between
    forward and backward, the gradient is still that forward's."""
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    g = np.ones(shape, np.float32)
    plain, changed = make(), make()
    plain(x)
    expected = plain.backward(g)
    changed(x)
    changed.alpha, changed.beta = 0.5, 2.0
    np.testing.assert_array_equal(changed.backward(g), expected)


def _x32(*shape):
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


# the float hyper-parameters the commits above left: layers (and the losses, which read
# theirs through Loss.float_attributes), each called as it takes its input
NUMBER_ATTRIBUTES = [
    (lambda: nn.LayerNorm(4), "eps", lambda m: m(_x32(2, 4))),
    (lambda: nn.GroupNorm(2, 4), "eps", lambda m: m(_x32(2, 4, 3))),
    (lambda: nn.InstanceNorm1d(3), "eps", lambda m: m(_x32(2, 3, 4))),
    (lambda: nn.InstanceNorm1d(3, track_running_stats=True), "momentum",
     lambda m: m(_x32(2, 3, 4))),
    (lambda: nn.InstanceNorm2d(3, track_running_stats=True).eval(), "eps",
     lambda m: m(_x32(2, 3, 4, 4))),
    (lambda: nn.RMSNorm(4), "eps", lambda m: m(_x32(2, 4))),
    (lambda: nn.CELU(), "alpha", lambda m: m(_x32(2, 4))),
    (lambda: nn.Sine(), "omega", lambda m: m(_x32(2, 4))),
    (lambda: nn.Hardshrink(), "lambd", lambda m: m(_x32(2, 4))),
    (lambda: nn.Softshrink(), "lambd", lambda m: m(_x32(2, 4))),
    (lambda: nn.Threshold(0.1, 2.0), "value", lambda m: m(_x32(2, 4))),
    (lambda: nn.RReLU(), "lower", lambda m: m(_x32(2, 4))),
    (lambda: nn.CosineSimilarity(), "eps", lambda m: m(_x32(2, 4), _x32(2, 4))),
    (lambda: nn.Embedding(5, 3, max_norm=1.0), "max_norm", lambda m: m(np.array([0, 2]))),
    (lambda: nn.Embedding(5, 3, max_norm=1.0), "norm_type", lambda m: m(np.array([0, 2]))),
    (lambda: nn.EmbeddingBag(5, 3, max_norm=1.0), "max_norm",
     lambda m: m(np.array([[0, 2]]))),
    (lambda: nn.LPPool2d(2, 2), "norm_type", lambda m: m(_x32(1, 2, 4, 4))),
    (lambda: nn.SmoothL1Loss(), "beta", lambda m: m(_x32(2, 3), _x32(2, 3))),
    (lambda: nn.HuberLoss(), "delta", lambda m: m(_x32(2, 3), _x32(2, 3))),
    (lambda: nn.HingeEmbeddingLoss(), "margin",
     lambda m: m(_x32(2, 3), np.ones((2, 3), np.float32))),
    (lambda: nn.MultiMarginLoss(), "margin", lambda m: m(_x32(2, 3), np.array([0, 2]))),
    (lambda: nn.PoissonNLLLoss(), "eps", lambda m: m(_x32(2, 3), np.ones((2, 3), np.float32))),
    (lambda: nn.CrossEntropyLoss(), "label_smoothing", lambda m: m(_x32(2, 3), np.array([0, 2]))),
    (lambda: nn.MarginRankingLoss(), "margin",
     lambda m: m(_x32(3), _x32(3), np.ones(3, np.float32))),
    (lambda: nn.CosineEmbeddingLoss(), "margin",
     lambda m: m(_x32(2, 3), _x32(2, 3), np.ones(2, np.float32))),
    (lambda: nn.TripletMarginLoss(), "p", lambda m: m(_x32(2, 3), _x32(2, 3), _x32(2, 3))),
    (lambda: nn.GaussianNLLLoss(), "eps",
     lambda m: m(_x32(2, 3), _x32(2, 3), np.ones((2, 3), np.float32))),
]


@pytest.mark.parametrize("make,attr,call", NUMBER_ATTRIBUTES,
                         ids=[f"{i}-{c[1]}" for i, c in enumerate(NUMBER_ATTRIBUTES)])
@pytest.mark.parametrize("value", ["0.5", None])
def test_every_float_hyper_parameter_set_to_no_number_names_the_layer(make, attr, call,
                                                                       value, backend):
    """LayerNorm, GroupNorm, InstanceNorm, RMSNorm, CELU, Sine, the shrinks, Threshold,
    RReLU, CosineSimilarity, Embedding(Bag), LPPool and the losses' numbers, set after
    construction to a string (which float() or NumPy read silently) or None (where None
    is no default), raise the constructor's TypeError naming the layer and attribute,
    the layer's state unchanged."""
    layer = make()
    if value is None and getattr(layer, attr) is None:
        return
    before = [np.array(p.data) for p in getattr(layer, "parameters", lambda: [])()]
    setattr(layer, attr, value)
    nones = {("RMSNorm", "eps"), ("Embedding", "max_norm"), ("EmbeddingBag", "max_norm"),
             ("InstanceNorm1d", "momentum")}
    if value is None and (type(layer).__name__, attr) in nones:
        call(layer)   # (None is a value these take: RMSNorm's default eps, ...)
        return
    with pytest.raises(TypeError, match=f"{type(layer).__name__}: expected {attr} to be "
                                        f"a number, got {re.escape(repr(value))}"):
        call(layer)
    for p, b in zip(getattr(layer, "parameters", lambda: [])(), before):
        np.testing.assert_array_equal(p.data, b)


@pytest.mark.parametrize("name", ["CrossEntropyLoss", "NLLLoss"])
@pytest.mark.parametrize("value", ["1", 1.0, None, True])
def test_ignore_index_set_to_no_int_names_the_loss_and_attribute(name, value):
    """ignore_index is an int (PyTorch's forward refuses any other type with a TypeError):
    set after construction to a string, float, None or bool it is the constructor's
    TypeError naming the loss and attribute at the call (it was '<' between str and
    int, or a silent float compare), the last gradient kept; a NumPy int is an int."""
    import torch
    x = _x32(4, 3)
    y = np.array([0, 2, 1, 2])
    ref = getattr(torch.nn, name)()
    ref.ignore_index = value
    with pytest.raises(TypeError):
        ref(torch.from_numpy(x), torch.from_numpy(y))
    message = f"{name}: expected ignore_index to be an int, got {re.escape(repr(value))}"
    with pytest.raises(TypeError, match=message):
        getattr(nn, name)(ignore_index=value)
    loss = getattr(nn, name)()
    loss(x, y)
    grad = loss.backward()
    loss.ignore_index = value
    with pytest.raises(TypeError, match=message):
        loss(x, y)
    np.testing.assert_array_equal(loss.backward(), grad)
    loss.ignore_index = np.int64(2)
    loss(x, y)
    t = torch.from_numpy(x).requires_grad_()
    getattr(torch.nn, name)(ignore_index=2)(t, torch.from_numpy(y)).backward()
    np.testing.assert_allclose(loss.backward(), t.grad.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("value", ["1", 1.0])
def test_linear_cross_entropy_ignore_index_set_to_no_int_names_it(value):
    """As CrossEntropyLoss's: the constructor's error naming LinearCrossEntropyLoss (it
    named the CrossEntropyLoss it builds inside), the parameters and gradients kept."""
    loss = nn.LinearCrossEntropyLoss(3, 4)
    x, y = _x32(2, 3), np.array([0, 1])
    loss(x, y)
    before = [(np.array(p.data), None if p.grad is None else np.array(p.grad))
              for p in loss.parameters()]
    loss.ignore_index = value
    with pytest.raises(TypeError, match=f"LinearCrossEntropyLoss: expected ignore_index to "
                                        f"be an int or None, got {re.escape(repr(value))}"):
        loss(x, y)
    for p, (data, grad) in zip(loss.parameters(), before):
        np.testing.assert_array_equal(p.data, data)
        assert (p.grad is None) == (grad is None)


@pytest.mark.parametrize("make,attr,value", [
    (lambda: nn.LeakyReLU(0.1), "negative_slope", 0.7), (lambda: nn.ELU(), "alpha", 0.3),
    (lambda: nn.CELU(-0.5), "alpha", 2.0), (lambda: nn.Softplus(), "beta", 3.0),
    (lambda: nn.Hardtanh(), "min_val", 0.2), (lambda: nn.Sine(), "omega", 3.0),
    (lambda: nn.GELU(), "approximate", "tanh"), (lambda: nn.Hardshrink(), "lambd", 0.05),
    (lambda: nn.Threshold(0.1, 2.0), "threshold", -1.0)],
    ids=["leaky", "elu", "celu", "softplus", "hardtanh", "sine", "gelu", "hardshrink",
         "threshold"])
def test_an_activation_backward_takes_the_numbers_its_forward_used(make, attr, value,
                                                                   backend):
    """PyTorch's graph keeps the forward's negative_slope, alpha, ...: changed between
    forward and backward, the gradient is still that forward's (it was the new value's)."""
    x = _x32(3, 5) * 2
    g = np.cos(np.arange(15, dtype=np.float32)).reshape(3, 5)
    plain, changed = make(), make()
    plain(x)
    expected = plain.backward(g)
    changed(x)
    setattr(changed, attr, value)
    np.testing.assert_array_equal(changed.backward(g), expected)

class _Concat(nn.Module):
    """A user module: its output shape is known only by running it."""

    def forward(self, x):
        return np.concatenate([x, 2 * x], axis=1)

    def backward(self, grad_out):
        half = grad_out.shape[1] // 2
        return grad_out[:, :half] + 2 * grad_out[:, half:]


@pytest.mark.parametrize("name", fastnn.backends())
def test_failure_after_a_user_module_puts_running_statistics_back(name):
    """Layers after a user module are checked as they run; when one fails, the
    BatchNorm before the user module has already updated its running statistics, and
    Sequential restores them."""
    with fastnn.use_backend(name):
        model = nn.Sequential(nn.BatchNorm1d(4), _Concat(), nn.Linear(5, 2))
        before = _state(model)
        with pytest.raises(ValueError, match=r"Sequential layer 2: .*got \(3, 8\)"):
            model(np.random.default_rng(0).standard_normal((3, 4)).astype(F32))
        _assert_same(model, before)


@pytest.mark.parametrize("make, match", [
    (lambda: nn.GELU(approximate="sigmoid"),
     r"GELU: approximate='sigmoid' is not supported \(only 'none' or 'tanh'\)"),
    (lambda: nn.Conv2d(3, 4, 3, groups=2), r"Conv2d: in_channels \(3\) and out_channels \(4\) "
     r"must be divisible by groups \(2\)"),
    (lambda: nn.Conv2d(4, 4, 3, groups=0), r"Conv2d: expected groups to be a positive int"),
    (lambda: nn.Conv2d(4, 4, 3, dilation=0), r"Conv2d: expected dilation to be an int >= 1"),
    (lambda: nn.Conv2d(4, 4, 2, stride=2, padding="same"),
     r"Conv2d: padding='same' is not supported for strided convolutions"),
    (lambda: nn.Conv2d(3, 4, 3, padding_mode="mirror"), r"padding_mode='mirror'"),
    (lambda: nn.ConvTranspose2d(3, 4, 3, padding_mode="reflect"), r"padding_mode='reflect'"),
    (lambda: nn.MaxPool2d(2, dilation=0), r"MaxPool2d: expected dilation to be an int >= 1"),
    (lambda: nn.AvgPool2d(2, divisor_override=0),
     r"AvgPool2d: expected divisor_override to be a non-zero int or None, got 0"),
])
def test_pytorch_keywords_beyond_their_defaults_are_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_pytorch_keywords_at_their_defaults_are_accepted(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(F32)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, dilation=1, groups=1, padding_mode="zeros"), nn.ReLU(inplace=True),
        nn.MaxPool2d(2, dilation=(1, 1), return_indices=False, ceil_mode=False),
        nn.AvgPool2d(1, ceil_mode=False, divisor_override=None), nn.Flatten(),
        nn.Dropout(0.1, inplace=True), nn.Linear(16, 3), nn.LeakyReLU(0.1, inplace=True),
        nn.GELU(approximate="none"))
    kept = x.copy()
    assert model(x).shape == (2, 3)
    np.testing.assert_array_equal(x, kept)  # "inplace" never overwrites the caller's input
    assert repr(nn.ReLU(inplace=True)) == "ReLU(inplace=True)" and repr(nn.ReLU()) == "ReLU()"
    with pytest.raises(TypeError, match="expected inplace to be a bool"):
        nn.ReLU(inplace="yes")


@pytest.mark.parametrize("make", [
    lambda: nn.Linear(4.0, 3), lambda: nn.BatchNorm1d(3.0), lambda: nn.RNN(3, 3.0),
    lambda: nn.Embedding(4.0, 3), lambda: nn.Conv2d(1, 1, 2.5), lambda: nn.MaxPool2d(2.5),
    lambda: nn.Conv2d(1.0, 1, 3)])
def test_a_float_size_is_a_type_error_too(make):
    # PyTorch raises TypeError for a float where a size belongs; fastnn's ValueError
    # (its convention for a bad argument) is one too, so code catching either works
    with pytest.raises(ValueError) as info:
        make()
    assert isinstance(info.value, TypeError)


def test_a_size_out_of_range_is_a_value_error_only():
    for make in (lambda: nn.Linear(-1, 3), lambda: nn.Conv2d(1, 1, 0)):
        with pytest.raises(ValueError) as info:
            make()
        assert not isinstance(info.value, TypeError)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_given_the_loss_says_to_pass_its_gradient(dtype):
    """model.backward(loss) by mistake: in float32 the error was a dtype mismatch
    ('grad_out is float64 but expected float32'), now in every dtype it says what
    backward takes; nothing changes."""
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(dtype)
    labels = np.array([0, 1, 0, 1])
    for model in (nn.Sequential(nn.Linear(3, 2, dtype=dtype), nn.ReLU()),
                  nn.Linear(3, 2, dtype=dtype)):
        loss_fn = nn.CrossEntropyLoss()
        loss = loss_fn(model(x), labels)
        before = _state(model)
        for given in (loss, float(loss), np.asarray(loss)):
            with pytest.raises(RuntimeError, match=r"expected grad_out of shape \(4, 2\).*"
                                                   r"got the single number .*model\.backward"
                                                   r"\(loss_fn\.backward\(\)\), not the loss"):
                model.backward(given)
        _assert_same(model, before)
        model.backward(loss_fn.backward())   # (the forward is still there)


def test_a_one_axis_shape_prints_as_a_tuple():
    """'expected bias of shape (5), got (4,)': the expected shape now prints as (5,)."""
    x, w = np.ones((2, 3), np.float32), np.ones((5, 3), np.float32)
    with pytest.raises(ValueError, match=r"expected bias of shape \(5,\), got \(4,\)"):
        fastnn.ops.linear_forward(x, w, np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"expected velocity of shape \(3,\)"):
        fastnn.ops.sgd_update(np.ones(3, np.float32), np.ones(3, np.float32),
                              np.ones(2, np.float32), 0.1, momentum=0.9)


class _ReusedActivation(nn.Module):
    """A custom module calling one ReLU twice, as PyTorch code does (ResNet's self.relu)."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.relu = nn.Linear(4, 6), nn.Linear(6, 6), nn.ReLU()

    def forward(self, x):
        return self.relu(self.fc2(self.relu(self.fc1(x))))

    def backward(self, g):
        g = self.fc2.backward(self.relu.backward(g))
        return self.fc1.backward(self.relu.backward(g))


def test_a_layer_called_twice_refuses_the_backward_for_its_earlier_call():
    """The second backward of a layer called twice used the second call's saved output
    for the first: gradcheck found fc1's gradient wrong (analytic -1.37 vs numeric
    0.14), with no error. It now raises before anything changes."""
    model = _ReusedActivation()
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    y = model(x)
    before = [p.grad.copy() for p in model.fc1.parameters()]
    with pytest.raises(RuntimeError, match=r"ReLU\(\): backward called 2 times after 2 "
                                           r"forward calls.*one instance per use"):
        model.backward(np.ones_like(y))
    for p, g in zip(model.fc1.parameters(), before):
        np.testing.assert_array_equal(p.grad, g)


def test_what_a_layer_called_once_per_backward_does_still_passes():
    relu = nn.ReLU()
    x = np.random.default_rng(1).standard_normal((2, 3))
    g = np.ones_like(x)
    for _ in range(3):          # forward, backward, as a training loop
        relu(x)
        relu.backward(g)
    relu(x)                     # a forward whose output is dropped, then the one used
    relu(x)
    relu.backward(g)
    relu(x)                     # one forward's backward taken twice (retain_graph)
    first = relu.backward(g)
    np.testing.assert_array_equal(relu.backward(g), first)
    with fastnn.no_grad():      # forwards under no_grad keep nothing: not counted
        relu(x)
        relu(x)
    relu(x)
    relu.backward(g)
    relu.backward(g)
    assert fastnn.gradcheck(nn.Sequential(nn.Linear(3, 2, dtype=np.float64), nn.ReLU()), x)


def test_linears_quick_shape_check_falls_through_to_the_full_checks():
    # Linear.infer_shape reads the parameters in place for the usual call (host arrays of
    # the input's dtype and their shapes); every other case must still get the full
    # checks' errors, alone and inside a Sequential, before anything runs
    x = np.ones((4, 3), F32)
    for wrap in (lambda layer: layer, lambda layer: nn.Sequential(layer, nn.ReLU())):
        layer = nn.Linear(3, 2)
        model = wrap(layer)
        model(x)
        with pytest.raises(TypeError, match="input dtype float64 does not match"):
            model(x.astype(np.float64))
        layer.weight.data = np.ones((2, 3), np.float64)   # (bias still float32)
        with pytest.raises(TypeError, match="bias has dtype float32 but weight has float64"):
            model(x)
        layer.weight.data = np.ones((3, 2), F32)          # transposed
        with pytest.raises(ValueError, match=r"expected weight of shape \(2, 3\)"):
            model(x)
        layer.weight.data = np.ones((2, 3), F32)
        layer.bias.data = np.ones(3, F32)
        with pytest.raises(ValueError, match=r"expected bias of shape \(2,\)"):
            model(x)
        layer.bias.data = np.ones(2, F32)
        np.testing.assert_array_equal(layer(x), np.full((4, 2), 4, F32))
