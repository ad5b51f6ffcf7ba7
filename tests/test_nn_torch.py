"""Every layer and loss of fastnn.nn against PyTorch with the weights copied over.

For each backend and float type: the forward output, the input gradient and every
parameter gradient match ``torch.nn`` on the same numbers; BatchNorm's running
statistics follow PyTorch's over several steps and eval mode uses them; losses match
at the numerical edges (logits of 1e4, probabilities of exactly 0 and 1).
(Sequential/MLP against torch networks: test_nn_mlp.py; dropout: test_nn_dropout.py.)
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastnn
from fastnn import nn
from fastnn.models import MLP

from conftest import assert_close
from nn_torch_helpers import TORCH_DTYPES, run_torch, torch_twin



def t(a, grad=False):
    tensor = torch.from_numpy(np.array(a, copy=True))
    return tensor.requires_grad_(True) if grad else tensor


def compare_with_torch(layer, x, dtype, rng, scale=1.0):
    """Run layer and its torch twin forward and backward on x; compare everything.

    Returns (y, grad_in) of the fastnn layer.
    """
    twin = torch_twin(layer)
    y = layer.forward(x)
    g = rng.standard_normal(y.shape).astype(dtype)
    layer.zero_grad()
    grad_in = layer.backward(g)
    yt, grad_xt, grads_t = run_torch(twin, x, g)
    assert y.shape == yt.shape and y.dtype == dtype
    assert grad_in.shape == x.shape and grad_in.dtype == dtype
    assert_close(y, yt, dtype, scale=scale, err_msg=f"{layer!r} forward")
    assert_close(grad_in, grad_xt, dtype, scale=scale, err_msg=f"{layer!r} input gradient")
    names = [name for name, _ in layer.named_parameters()]
    assert sorted(names) == sorted(grads_t)
    for name, p in layer.named_parameters():
        assert_close(p.grad, grads_t[name], dtype, scale=scale * x.shape[0],
                     err_msg=f"{layer!r} gradient of {name}")
    return y, grad_in


# ------------------------------------------------------------------------ layers
LAYERS = {
    "linear": (lambda: nn.Linear(7, 5), (6, 7)),
    "linear_no_bias": (lambda: nn.Linear(7, 5, bias=False), (6, 7)),
    "linear_batch_of_one": (lambda: nn.Linear(3, 4), (1, 3)),
    "linear_3d_input": (lambda: nn.Linear(7, 5), (2, 3, 7)),
    "linear_unbatched": (lambda: nn.Linear(7, 5), (7,)),
    "sequential_fused_4d_input": (lambda: nn.Sequential(nn.Linear(7, 5), nn.ReLU(),
                                                        nn.Linear(5, 3), nn.Tanh()),
                                  (2, 2, 3, 7)),
    "relu": (nn.ReLU, (6, 9)),
    "leaky_relu": (lambda: nn.LeakyReLU(0.2), (6, 9)),
    "leaky_relu_negative_slope": (lambda: nn.LeakyReLU(-0.3), (6, 9)),
    "sigmoid": (nn.Sigmoid, (6, 9)),
    "tanh": (nn.Tanh, (6, 9)),
    "gelu": (nn.GELU, (6, 9)),
    "silu": (nn.SiLU, (6, 9)),
    "elu": (lambda: nn.ELU(alpha=0.7), (6, 9)),
    "softplus": (lambda: nn.Softplus(beta=2.0, threshold=3.0), (6, 9)),
    "hardtanh": (lambda: nn.Hardtanh(-0.5, 0.8), (6, 9)),
    "relu6": (nn.ReLU6, (6, 9)),
    "softsign": (nn.Softsign, (6, 9)),
    "gelu_tanh": (lambda: nn.GELU(approximate="tanh"), (6, 9)),
    "mish": (nn.Mish, (6, 9)),
    "logsigmoid": (nn.LogSigmoid, (6, 9)),
    "selu": (nn.SELU, (6, 9)),
    "hardsigmoid": (nn.Hardsigmoid, (6, 9)),
    "hardswish": (nn.Hardswish, (6, 9)),
    "celu": (lambda: nn.CELU(0.5), (6, 9)),
    "softmin": (lambda: nn.Softmin(dim=1), (6, 9)),
    "sine": (lambda: nn.Sine(omega=3.0), (6, 9)),
    "identity": (nn.Identity, (6, 9)),
    "softmax": (nn.Softmax, (6, 9)),
    "log_softmax": (lambda: nn.LogSoftmax(dim=1), (6, 9)),
    "log_softmax_nll_classifier": (lambda: nn.Sequential(nn.Linear(9, 4), nn.LogSoftmax()),
                                   (6, 9)),
    "flatten": (nn.Flatten, (4, 3, 2, 5)),
    "activation_4d": (nn.Tanh, (2, 3, 4, 5)),
    "batchnorm1d": (lambda: nn.BatchNorm1d(9), (6, 9)),
    "batchnorm1d_3d_input": (lambda: nn.BatchNorm1d(4), (5, 4, 3)),
    "batchnorm2d": (lambda: nn.BatchNorm2d(3), (4, 3, 5, 2)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_matches_torch(backend, dtype, rng, name):
    make, shape = LAYERS[name]
    fastnn.manual_seed(0)
    layer = make().to_dtype(dtype)
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    compare_with_torch(layer, x, dtype, rng)


def test_logsigmoid_far_from_0_matches_torch(backend, dtype, rng):
    """log sigmoid(x) is x far below 0 and about -e^-x far above it (finite, not
    log(0)); its gradient sigmoid(-x)."""
    x = np.array([[-1e4, -100.0, -30.0, -1.0, 0.0, 1.0, 30.0, 100.0, 1e4]], dtype=dtype)
    compare_with_torch(nn.LogSigmoid(), x, dtype, rng)
    assert np.all(np.isfinite(nn.LogSigmoid().forward(x)))


def test_linear_init_follows_pytorch(dtype):
    fastnn.manual_seed(0)
    layer = nn.Linear(400, 300).to_dtype(dtype)
    bound = 1 / np.sqrt(400)
    for p in (layer.weight.data, layer.bias.data):
        assert p.dtype == dtype
        assert np.abs(p).max() <= bound
        assert np.abs(p).max() > 0.95 * bound  # uniform over the whole interval
        assert abs(p.std() - bound / np.sqrt(3)) < 0.05 * bound
    assert layer.weight.shape == (300, 400) and layer.bias.shape == (300,)
    np.testing.assert_array_equal(layer.weight.grad, 0)


def test_linear_gradients_accumulate_until_zero_grad(backend, dtype, rng):
    layer = nn.Linear(4, 3).to_dtype(dtype)
    x = rng.standard_normal((5, 4)).astype(dtype)
    g = rng.standard_normal((5, 3)).astype(dtype)
    layer.forward(x)
    layer.backward(g)
    once = layer.weight.grad.copy(), layer.bias.grad.copy()
    layer.forward(x)
    layer.backward(g)
    assert_close(layer.weight.grad, 2 * once[0], dtype)
    assert_close(layer.bias.grad, 2 * once[1], dtype)
    layer.zero_grad()
    assert not layer.weight.grad.any() and not layer.bias.grad.any()


@pytest.mark.parametrize("mean_only", [False, True])
@pytest.mark.parametrize("length", [None, 4], ids=["NC", "NCL"])
def test_batchnorm1d_running_stats_and_eval_follow_torch(backend, dtype, rng, mean_only,
                                                         length):
    """(N, C) inputs, and (N, C, L) ones normalised over batch and length."""
    bn = nn.BatchNorm1d(5, momentum=0.3, mean_only=mean_only).to_dtype(dtype)
    tbn = torch.nn.BatchNorm1d(5, momentum=0.3, dtype=TORCH_DTYPES[dtype])
    tail = () if length is None else (length,)
    axes = (0,) if length is None else (0, 2)
    for step in range(3):
        x = (rng.standard_normal((8, 5) + tail) * (step + 1) + step).astype(dtype)
        y = bn.forward(x)
        yt = tbn(t(x))
        assert y.shape == x.shape
        assert_close(bn.running_mean, tbn.running_mean.numpy(), dtype)
        if mean_only:
            assert bn.running_var is None
            assert_close(y, x - x.mean(axis=axes, dtype=np.float64, keepdims=True), dtype)
        else:
            assert_close(bn.running_var, tbn.running_var.numpy(), dtype)
            assert_close(y, yt.detach().numpy(), dtype)
    bn.eval()
    tbn.eval()
    x = rng.standard_normal((3, 5) + tail).astype(dtype)
    xt = t(x, grad=True)
    y = bn.forward(x)
    if mean_only:
        assert_close(y, x - bn.running_mean.reshape((5,) + (1,) * len(tail)), dtype)
    else:
        yt = tbn(xt)
        assert_close(y, yt.detach().numpy(), dtype)
        g = rng.standard_normal((3, 5) + tail).astype(dtype)
        yt.backward(t(g))
        bn.zero_grad()
        assert_close(bn.backward(g), xt.grad.numpy(), dtype)
        assert_close(bn.weight.grad, tbn.weight.grad.numpy(), dtype)
        assert_close(bn.bias.grad, tbn.bias.grad.numpy(), dtype)
    before = bn.running_mean.copy()
    bn.forward(x)
    np.testing.assert_array_equal(bn.running_mean, before)  # eval never updates them


@pytest.mark.parametrize("layer", ["BatchNorm1d", "BatchNorm2d"])
@pytest.mark.parametrize("affine, track", [(False, True), (True, False), (False, False)])
def test_batchnorm_affine_and_track_running_stats_follow_torch(backend, dtype, rng, layer,
                                                                 affine, track):
    """PyTorch's affine=False (no weight or bias: parameters and state dict) and
    track_running_stats=False (no running statistics; batch statistics in eval mode too):
    outputs, input and parameter gradients and state dicts over training and eval steps."""
    shape = (8, 5) if layer == "BatchNorm1d" else (4, 5, 3, 3)
    bn = getattr(nn, layer)(5, momentum=0.2, affine=affine, track_running_stats=track)
    bn.to_dtype(dtype)
    tbn = getattr(torch.nn, layer)(5, momentum=0.2, affine=affine, track_running_stats=track,
                                   dtype=TORCH_DTYPES[dtype])
    if affine:
        with torch.no_grad():
            tbn.weight.uniform_(0.5, 1.5)
            tbn.bias.uniform_(-1, 1)
    bn.load_state_dict({k: v.numpy() for k, v in tbn.state_dict().items()})
    assert len(list(bn.parameters())) == (2 if affine else 0)
    for training in (True, True, False):
        bn.train(training)
        tbn.train(training)
        x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
        g = rng.standard_normal(shape).astype(dtype)
        xt = t(x, grad=True)
        yt = tbn(xt)
        yt.backward(t(g))
        bn.zero_grad()
        assert_close(bn.forward(x), yt.detach().numpy(), dtype)
        assert_close(bn.backward(g), xt.grad.numpy(), dtype, scale=10)
        if affine:
            assert_close(bn.weight.grad, tbn.weight.grad.numpy(), dtype, scale=10)
            assert_close(bn.bias.grad, tbn.bias.grad.numpy(), dtype, scale=10)
            tbn.zero_grad()
        ours = bn.state_dict()
        theirs = {k: v.numpy() for k, v in tbn.state_dict().items()}
        assert list(ours) == list(theirs)
        for k in theirs:
            if k == "num_batches_tracked":
                assert ours[k].dtype == theirs[k].dtype and ours[k] == theirs[k]
            else:
                assert_close(ours[k], theirs[k], dtype)
    if not track:
        with pytest.raises(ValueError, match="track_running_stats=False"):
            bn.eval().forward(np.ones((1, 5) + (1, 1) * (len(shape) == 4), dtype))
    assert ("affine=False" in repr(bn)) != affine
    assert ("track_running_stats=False" in repr(bn)) != track


@pytest.mark.parametrize("layer, shape", [("BatchNorm1d", (6, 3)), ("BatchNorm2d", (4, 3, 2, 5))])
def test_batchnorm_momentum_none_is_the_cumulative_average(backend, dtype, rng, layer, shape):
    """momentum=None: running statistics average every training batch equally (PyTorch's
    1 / num_batches_tracked), eval forwards leave them and the count alone."""
    ours = getattr(nn, layer)(3, momentum=None).to_dtype(dtype)
    theirs = getattr(torch.nn, layer)(3, momentum=None).to(TORCH_DTYPES[np.dtype(dtype)])
    for step in range(5):
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(dtype)
        if step == 3:
            ours.eval(), theirs.eval()
        ours.forward(x)
        theirs(t(x))
        ours.train(), theirs.train()
    assert ours.num_batches_tracked == int(theirs.num_batches_tracked) == 4
    assert_close(ours.running_mean, theirs.running_mean.numpy(), dtype)
    assert_close(ours.running_var, theirs.running_var.numpy(), dtype)
    assert "momentum=None" in repr(ours)


def test_batchnorm_mean_only_gradients(backend, dtype, rng):
    """mean_only: y = x - mean(x) + bias, checked against the same expression in torch."""
    bn = nn.BatchNorm1d(4, mean_only=True).to_dtype(dtype)
    bn.bias.data[...] = rng.standard_normal(4)
    x = rng.standard_normal((6, 4)).astype(dtype)
    g = rng.standard_normal((6, 4)).astype(dtype)
    xt, bt = t(x, True), t(bn.bias.data, True)
    yt = xt - xt.mean(dim=0) + bt
    yt.backward(t(g))
    assert bn.weight is None and [n for n, _ in bn.named_parameters()] == ["bias"]
    assert_close(bn.forward(x), yt.detach().numpy(), dtype)
    assert_close(bn.backward(g), xt.grad.numpy(), dtype)
    assert_close(bn.bias.grad, bt.grad.numpy(), dtype)


def test_batchnorm2d_running_stats_follow_torch(backend, dtype, rng):
    bn = nn.BatchNorm2d(3).to_dtype(dtype)
    tbn = torch.nn.BatchNorm2d(3, dtype=TORCH_DTYPES[dtype])
    for _ in range(2):
        x = (rng.standard_normal((4, 3, 5, 5)) * 3 + 1).astype(dtype)
        bn.forward(x)
        tbn(t(x))
    assert_close(bn.running_mean, tbn.running_mean.numpy(), dtype)
    assert_close(bn.running_var, tbn.running_var.numpy(), dtype)
    bn.eval()
    tbn.eval()
    compare_with_torch(bn, rng.standard_normal((2, 3, 4, 4)).astype(dtype), dtype, rng)


def test_batchnorm_constant_feature_stays_finite(backend, dtype, rng):
    """Zero variance: PyTorch gives finite outputs (x - mean = 0) and gradients."""
    bn = nn.BatchNorm1d(3).to_dtype(dtype)
    x = rng.standard_normal((6, 3)).astype(dtype)
    x[:, 1] = 2.5
    y, grad_in = compare_with_torch(bn, x, dtype, rng)
    assert np.isfinite(y).all() and np.isfinite(grad_in).all()


# ------------------------------------------------------------------------ losses
def test_mse_loss_matches_torch(backend, dtype, rng):
    pred = rng.standard_normal((7, 3)).astype(dtype)
    target = rng.standard_normal((7, 3)).astype(dtype)
    loss = nn.MSELoss()
    value = loss.forward(pred, target)
    pt = t(pred, True)
    lt = F.mse_loss(pt, t(target))
    lt.backward()
    assert isinstance(value, float)
    assert_close(value, lt.item(), dtype)
    assert_close(loss.backward(), pt.grad.numpy(), dtype)


@pytest.mark.parametrize("target_kind", ["labels", "one_hot", "soft"])
@pytest.mark.parametrize("magnitude", [1.0, 1e4])
def test_cross_entropy_matches_torch(backend, dtype, rng, target_kind, magnitude):
    n, c = 9, 5
    logits = (rng.standard_normal((n, c)) * magnitude).astype(dtype)
    labels = rng.integers(0, c, n)
    if target_kind == "labels":
        target, target_t = labels, t(labels)
    elif target_kind == "one_hot":
        target = np.eye(c, dtype=dtype)[labels]
        target_t = t(target)
    else:
        target = rng.dirichlet(np.ones(c), n).astype(dtype)
        target_t = t(target)
    loss = nn.CrossEntropyLoss()
    value = loss.forward(logits, target)
    lt_in = t(logits, True)
    lt = F.cross_entropy(lt_in, target_t)
    lt.backward()
    assert np.isfinite(value)
    assert_close(value, lt.item(), dtype, scale=magnitude)
    grad = loss.backward()
    assert grad.shape == logits.shape and grad.dtype == dtype and np.isfinite(grad).all()
    assert_close(grad, lt_in.grad.numpy(), dtype)


def test_bce_loss_matches_torch_including_exact_zero_and_one(backend, dtype, rng):
    pred = rng.uniform(0.05, 0.95, (4, 6)).astype(dtype)
    target = rng.uniform(0, 1, (4, 6)).astype(dtype)
    pred[0, :4] = [0.0, 1.0, 0.0, 1.0]
    target[0, :4] = [0.0, 1.0, 1.0, 0.0]  # exact hits, then log(0) clamped at -100
    loss = nn.BCELoss()
    value = loss.forward(pred, target)
    pt = t(pred, True)
    lt = F.binary_cross_entropy(pt, t(target))
    lt.backward()
    assert np.isfinite(value)
    assert_close(value, lt.item(), dtype)
    grad = loss.backward()
    expected = pt.grad.numpy()
    assert np.isfinite(grad).all()
    # The clamped elements are about 1e12 / size: compare them relatively.
    np.testing.assert_allclose(grad[0, 2:4], expected[0, 2:4], rtol=1e-5)
    assert_close(grad[1:], expected[1:], dtype)
    assert_close(grad[0, :2], expected[0, :2], dtype)


def test_loss_gradient_is_a_fresh_array(backend, dtype, rng):
    loss = nn.CrossEntropyLoss()
    logits = rng.standard_normal((4, 3)).astype(dtype)
    loss.forward(logits, np.array([0, 1, 2, 0]))
    first = loss.backward()
    kept = first.copy()
    loss.forward(logits * 2, np.array([2, 2, 2, 2]))
    loss.backward()
    np.testing.assert_array_equal(first, kept)


REDUCED_LOSSES = {
    "mse": (nn.MSELoss, torch.nn.MSELoss, "values"),
    "bce": (nn.BCELoss, torch.nn.BCELoss, "probabilities"),
    "bce_with_logits": (nn.BCEWithLogitsLoss, torch.nn.BCEWithLogitsLoss, "logits"),
    "l1": (nn.L1Loss, torch.nn.L1Loss, "values"),
    "smooth_l1": (lambda **kw: nn.SmoothL1Loss(beta=0.5, **kw),
                  lambda **kw: torch.nn.SmoothL1Loss(beta=0.5, **kw), "values"),
    "huber": (lambda **kw: nn.HuberLoss(delta=0.7, **kw),
              lambda **kw: torch.nn.HuberLoss(delta=0.7, **kw), "values"),
    "cross_entropy_labels": (nn.CrossEntropyLoss, torch.nn.CrossEntropyLoss, "labels"),
    "cross_entropy_soft": (nn.CrossEntropyLoss, torch.nn.CrossEntropyLoss, "soft"),
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", sorted(REDUCED_LOSSES))
def test_loss_reduction_matches_torch(backend, dtype, rng, name, reduction):
    """reduction='sum' and 'none' as in PyTorch: the value (a float, or one loss per
    element / per row), the gradient, and backward(grad) with the gradient w.r.t. the
    loss (per element for 'none') against torch's backward of the weighted losses."""
    ours, theirs, kind = REDUCED_LOSSES[name]
    n, c = 6, 4
    pred = rng.standard_normal((n, c)).astype(dtype)
    if kind == "probabilities":
        pred = rng.uniform(0.02, 0.98, (n, c)).astype(dtype)
    if kind == "logits":
        pred *= 5
    target = {"labels": rng.integers(0, c, n),
              "soft": rng.dirichlet(np.ones(c), n).astype(dtype)}.get(
                  kind, rng.uniform(0, 1, (n, c)).astype(dtype))
    loss = ours(reduction=reduction)
    value = loss.forward(pred, target)
    pt = t(pred, True)
    lt = theirs(reduction=reduction)(pt, t(target))
    weights = rng.uniform(0.5, 2.0, tuple(lt.shape)).astype(dtype)
    (lt * t(weights)).sum().backward()
    if reduction == "none":
        assert type(value) is np.ndarray and value.dtype == dtype and value.shape == lt.shape
    else:
        assert isinstance(value, float)
    assert_close(value, lt.detach().numpy(), dtype, scale=n * c)
    plain = loss.backward()
    weighted = loss.backward(weights if reduction == "none" else float(weights))
    assert weighted.dtype == dtype and weighted is not plain
    assert_close(weighted, pt.grad.numpy(), dtype, scale=n * c)
    per_row = reduction == "none" and kind in ("labels", "soft")
    expected_plain = pt.grad.numpy() / (weights[:, None] if per_row else weights)
    assert_close(plain, expected_plain, dtype, scale=n * c)


CLASS_OPTIONS = [dict(label_smoothing=0.1), dict(label_smoothing=1.0), dict(weight=True),
                 dict(ignore_index=2), dict(ignore_index=9), dict(ignore_index=-1, weight=True),
                 dict(weight=True, label_smoothing=0.2, ignore_index=3)]


# (kind, options) where PyTorch has them: NLLLoss has no label_smoothing, and
# ignore_index applies to labels only
CLASS_CASES = [(kind, options) for kind in ("cross_entropy_labels", "cross_entropy_soft", "nll")
               for options in CLASS_OPTIONS
               if not (kind == "nll" and "label_smoothing" in options)
               and not (kind == "cross_entropy_soft" and "ignore_index" in options)]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kind, options", CLASS_CASES, ids=[
    kind + ":" + "-".join(f"{k}={v}" for k, v in options.items())
    for kind, options in CLASS_CASES])
def test_class_weights_ignore_index_and_label_smoothing_match_torch(
        backend, dtype, rng, kind, options, reduction):
    """CrossEntropyLoss's weight, ignore_index and label_smoothing and NLLLoss's weight
    and ignore_index: values and gradients (backward(grad) for 'none') equal torch's."""
    n, c = 7, 5
    pred = (rng.standard_normal((n, c)) * 3).astype(dtype)
    if kind == "nll":
        pred = torch.log_softmax(t(pred), 1).numpy()
    target = rng.dirichlet(np.ones(c), n).astype(dtype)
    if kind != "cross_entropy_soft":
        target = rng.integers(0, c, n)
        target[[1, 4]] = options.get("ignore_index", target[1])
    kwargs = dict(options, reduction=reduction)
    weight = rng.uniform(0.1, 2.0, c).astype(dtype) if options.get("weight") else None
    kwargs["weight"] = weight
    ours, theirs = ((nn.NLLLoss, torch.nn.NLLLoss) if kind == "nll"
                    else (nn.CrossEntropyLoss, torch.nn.CrossEntropyLoss))
    loss = ours(**kwargs)
    value = loss.forward(pred, target)
    pt = t(pred, True)
    lt = theirs(**dict(kwargs, weight=None if weight is None else t(weight)))(pt, t(target))
    grad = rng.uniform(0.5, 2.0, tuple(lt.shape)).astype(dtype)
    (lt * t(grad)).sum().backward()
    if reduction == "none":
        assert type(value) is np.ndarray and value.dtype == dtype and value.shape == (n,)
    else:
        assert isinstance(value, float)
    assert_close(value, lt.detach().numpy(), dtype, scale=n * c)
    weighted = loss.backward(grad if reduction == "none" else float(grad))
    assert weighted.dtype == dtype and weighted.shape == pred.shape
    assert_close(weighted, pt.grad.numpy(), dtype, scale=n * c)


@pytest.mark.parametrize("ours, theirs", [(nn.CrossEntropyLoss, torch.nn.CrossEntropyLoss),
                                          (nn.NLLLoss, torch.nn.NLLLoss)])
def test_every_row_ignored_gives_nan_and_zero_gradient_as_torch(backend, ours, theirs):
    pred = np.log(np.full((3, 4), 0.25, np.float32))
    labels = np.array([-100, -100, -100])
    expected = theirs()(t(pred), t(labels)).item()
    loss = ours()
    assert np.isnan(expected) and np.isnan(loss.forward(pred, labels))
    np.testing.assert_array_equal(loss.backward(), 0)


@pytest.mark.parametrize("name", ["CrossEntropyLoss", "NLLLoss"])
def test_negative_and_zero_total_class_weights_as_torch(name):
    """PyTorch takes negative class weights; when the counted rows' weights sum to 0 the
    mean is x / 0: PyTorch's loss (NaN or inf); cross-entropy's gradient NaN on each row
    not ignored (PyTorch's has NaN or inf there), 0 on ignored ones; NLL's exactly
    PyTorch's, -w / 0 at each counted row's label and 0 elsewhere."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3))
    if name == "NLLLoss":
        x = x - np.log(np.exp(x).sum(1, keepdims=True))
    for weight, labels in [(np.array([1.0, -0.5, 2.0]), np.array([0, 1, 2, 1])),
                           (np.array([1.0, 0.0, 0.0]), np.array([1, -100, 2, 1])),
                           (np.array([1.0, 2.0, -1.0]), np.array([1, 2, 2, -100]))]:
        crit = getattr(nn, name)(weight=weight)
        loss = crit(x, labels)
        grad = crit.backward()
        xt = torch.tensor(x, requires_grad=True)
        tl = getattr(torch.nn, name)(weight=torch.tensor(weight))(xt, torch.tensor(labels))
        tl.backward()
        np.testing.assert_allclose(loss, tl.item(), rtol=1e-12)
        expected = xt.grad.numpy()
        if np.isfinite(tl.item()):
            np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-15)
        elif name == "NLLLoss":   # -w / 0 at the labels (NaN or -+inf), 0 elsewhere
            np.testing.assert_array_equal(grad, expected)
        else:
            broken = ~np.isfinite(expected).all(axis=1)
            assert np.isnan(grad[broken]).all() and (grad[~broken] == 0).all()
            assert broken.tolist() == (labels != -100).tolist()


def test_class_option_errors():
    logits, labels = np.zeros((3, 4), np.float32), np.array([0, 1, 5])
    with pytest.raises(ValueError, match=r"labels out of range.*max 5"):
        nn.CrossEntropyLoss(ignore_index=7).forward(logits, labels)
    with pytest.raises(ValueError, match=r"labels out of range.*max 5"):
        nn.NLLLoss().forward(logits, labels)
    with pytest.raises(ValueError, match=r"weight of shape \(4,\).*got \(3,\)"):
        nn.CrossEntropyLoss(weight=np.ones(3)).forward(logits, labels % 4)
    with pytest.raises(ValueError, match=r"finite weights"):
        nn.NLLLoss(weight=np.array([1.0, np.inf]))
    with pytest.raises(ValueError, match=r"1-D array of class weights"):
        nn.CrossEntropyLoss(weight=np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"label_smoothing in \[0.0, 1.0\], got 1.5"):
        nn.CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(TypeError, match="ignore_index to be an int"):
        nn.NLLLoss(ignore_index=1.5)
    with pytest.warns(UserWarning, match="size_average and reduce"):  # (PyTorch's legacy)
        assert nn.CrossEntropyLoss(size_average=False).reduction == "sum"
    with pytest.raises(TypeError, match="integer class labels"):
        nn.NLLLoss().forward(logits, logits)
    assert repr(nn.CrossEntropyLoss(ignore_index=0, label_smoothing=0.1)) == \
        "CrossEntropyLoss(ignore_index=0, label_smoothing=0.1)"


def test_log_softmax_with_nll_equals_cross_entropy(backend, dtype, rng):
    """PyTorch's MNIST-example head: LogSoftmax + NLLLoss gives CrossEntropyLoss's loss
    and input gradient (finite at logits of 1e3, where log(Softmax) is -inf)."""
    logits = (rng.standard_normal((8, 5)) * 3).astype(dtype)
    logits[0, 0] = 1e3
    labels = rng.integers(0, 5, 8)
    ce = nn.CrossEntropyLoss()
    head, nll = nn.LogSoftmax(dim=1), nn.NLLLoss()
    loss = nll(head(logits), labels)
    grad = head.backward(nll.backward())
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    assert_close(loss, ce(logits, labels), dtype, scale=1e3)
    assert_close(grad, ce.backward(), dtype)


def test_loss_reduction_errors():
    with pytest.raises(ValueError, match="reduction 'mean', 'sum' or 'none', got 'avg'"):
        nn.MSELoss(reduction="avg")
    loss = nn.CrossEntropyLoss(reduction="none")
    loss.forward(np.zeros((3, 2), np.float32), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match=r"expected grad of shape \(3,\)"):
        loss.backward(np.ones((3, 2), np.float32))
    summed = nn.MSELoss(reduction="sum")
    summed.forward(np.zeros((3, 2), np.float32), np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="expected a number"):
        summed.backward(np.ones(3))
    assert repr(summed) == "MSELoss(reduction='sum')" and repr(nn.BCELoss()) == "BCELoss()"


# ------------------------------------------- BatchNorm inside a network, several steps
def test_batchnorm_network_trains_like_torch(backend, dtype, rng):
    """Three SGD steps (written out here) on an MLP with BatchNorm against its torch twin:
    losses, then every parameter and running statistic, then eval-mode outputs."""
    fastnn.manual_seed(0)
    model = MLP(6, [10, 7], 3, activation="leaky_relu", batchnorm=True).to_dtype(dtype)
    tmodel = torch_twin(model)
    loss, lr = nn.CrossEntropyLoss(), 0.1
    for _ in range(3):
        x = rng.standard_normal((8, 6)).astype(dtype)
        labels = rng.integers(0, 3, 8)
        model.zero_grad()
        value = loss.forward(model.forward(x), labels)
        model.backward(loss.backward())
        for p in model.parameters():
            p.data -= dtype.type(lr) * p.grad
        tmodel.zero_grad()
        lt = F.cross_entropy(tmodel(t(x)), t(labels))
        lt.backward()
        with torch.no_grad():
            for p in tmodel.parameters():
                p -= lr * p.grad
        assert_close(value, lt.item(), dtype)
    tstate = tmodel.state_dict()
    for name, value in model.state_dict().items():
        assert_close(value, tstate[name].numpy(), dtype, err_msg=name)
    model.eval()
    tmodel.eval()
    x = rng.standard_normal((4, 6)).astype(dtype)
    assert_close(model.forward(x), tmodel(t(x)).detach().numpy(), dtype)
