"""fastnn.nn.functional's losses that wrap the nn loss classes (poisson/gaussian NLL, the
margin, ranking, multi-label, cosine-embedding and triplet losses, CTC) against
torch.nn.functional: PyTorch's signatures and defaults, values, shapes and dtypes in float32
and float64 for every reduction, empty inputs, the deprecated size_average/reduce, and
PyTorch's exception types for bad input. Also F.embedding's max_norm through nn's
renorm_rows."""
import inspect
import math
import warnings

import numpy as np
import pytest

import fastnn
from fastnn.nn import functional as F

import torch  # noqa: E402  (after fastnn: see fastnn's OpenMP warning)
import torch.nn.functional as TF  # noqa: E402

from conftest import assert_close

torch.set_num_threads(1)

NEW = ["poisson_nll_loss", "gaussian_nll_loss", "soft_margin_loss", "hinge_embedding_loss",
       "margin_ranking_loss", "multilabel_margin_loss", "multilabel_soft_margin_loss",
       "multi_margin_loss", "cosine_embedding_loss", "triplet_margin_loss",
       "triplet_margin_with_distance_loss", "ctc_loss"]
REDUCTIONS = ["mean", "sum", "none"]


def _t(a):
    """A torch copy of a NumPy array (anything else as it is)."""
    return torch.from_numpy(np.array(a, copy=True)) if isinstance(a, np.ndarray) else a


def _call(name, args, kwargs):
    """(fastnn's result, torch's) for the function name on copies of the arrays."""
    ours = getattr(F, name)(*args, **kwargs)
    theirs = getattr(TF, name)(*map(_t, args), **{k: _t(v) for k, v in kwargs.items()})
    return ours, theirs


def check(name, args, kwargs, dtype):
    """F.name equals TF.name: a NumPy array of torch's shape and dtype, torch's values."""
    ours, theirs = _call(name, args, kwargs)
    expected = theirs.detach().numpy()
    assert isinstance(ours, np.ndarray), type(ours)
    assert (ours.shape, ours.dtype) == (expected.shape, expected.dtype), (ours.shape, ours.dtype)
    assert_close(ours, expected, dtype, err_msg=f"{name} {kwargs}")


def test_signatures_and_defaults_are_pytorchs():
    for name in NEW:
        assert name in F.__all__ and getattr(F, name).__doc__, name
        ours = inspect.signature(getattr(F, name)).parameters
        theirs = inspect.signature(getattr(TF, name)).parameters
        assert list(ours) == list(theirs), name
        for p, q in zip(ours.values(), theirs.values()):
            assert (p.kind, p.default) == (q.kind, q.default), (name, p, q)


def _arrays(rng, dtype):
    def r(*s):
        return np.array(rng.standard_normal(s), dtype)

    def sign(*s):
        return np.array(np.where(rng.random(s) < 0.5, -1, 1), dtype)

    def labels(c, *s):
        return np.array(rng.integers(0, c, s), np.int64)
    return r, sign, labels


def _cases(rng, dtype):
    """(name, args, kwargs) of each new loss on a few shapes and options."""
    r, sign, labels = _arrays(rng, dtype)
    pos = np.abs(r(3, 4)) + dtype.type(0.1)
    counts = np.array(rng.poisson(2.0, (3, 4)), dtype)
    var = np.abs(r(3, 4))
    var[0, 0] = 0   # clamped at eps
    ml_target = np.array([[2, 0, -1, 1, 3], [4, -1, 0, 0, 0], [0, 1, 2, 3, 4]])
    yield "poisson_nll_loss", (r(3, 4), counts), {}
    yield "poisson_nll_loss", (pos, counts[0]), {"log_input": False, "full": True, "eps": 0.3}
    yield "poisson_nll_loss", (r(3, 4), counts), {"full": True, "eps": 0.0}
    yield "gaussian_nll_loss", (r(3, 4), r(3, 4), var), {}
    yield "gaussian_nll_loss", (r(3, 4), r(4), var[:, 0]), {"full": True, "eps": 0.5}
    yield "gaussian_nll_loss", (r(3, 4), r(2, 3, 4), var[:, :1]), {}
    yield "gaussian_nll_loss", (r(3, 4), r(3, 4), 0.7), {}
    yield "gaussian_nll_loss", (r(), r(), np.abs(r(1)).reshape(())), {}
    yield "soft_margin_loss", (r(3, 4) * dtype.type(3), sign(3, 4)), {}
    yield "soft_margin_loss", (r(3, 4), sign(4)), {}
    yield "hinge_embedding_loss", (r(3, 4), sign(3, 4)), {}
    yield "hinge_embedding_loss", (r(4), sign(3, 4)), {"margin": -0.5}
    yield "hinge_embedding_loss", (r(), np.array([0.5, -1, 1, 0], dtype)), {"margin": 0.3}
    yield "margin_ranking_loss", (r(5), r(5), sign(5)), {}
    yield "margin_ranking_loss", (r(2, 3), r(1, 3), sign(2, 3)), {"margin": 0.5}
    yield "margin_ranking_loss", (r(), r(), sign()), {"margin": -0.2}
    yield "multilabel_margin_loss", (r(3, 5), ml_target), {}
    yield "multilabel_margin_loss", (r(5), ml_target[0]), {}
    yield "multilabel_margin_loss", (r(), np.array(0)), {}
    yield "multilabel_soft_margin_loss", (r(3, 5), sign(3, 5) > 0), {}
    yield "multilabel_soft_margin_loss", (r(2, 3, 5), np.array(sign(5) > 0, dtype)),\
        {"weight": np.abs(r(5))}
    yield "multilabel_soft_margin_loss", (r(5), np.array(sign(5) > 0, dtype)), {}
    yield "multi_margin_loss", (r(4, 5), labels(5, 4)), {}
    yield "multi_margin_loss", (r(4, 5), labels(5, 4)), {"p": 2, "margin": 0.5,
                                                         "weight": np.abs(r(5))}
    yield "multi_margin_loss", (r(5), labels(5, 1)), {"margin": -0.3, "weight": np.abs(r(5))}
    yield "multi_margin_loss", (r(1, 5), labels(5)), {"p": 2.0}
    yield "multi_margin_loss", (r(), labels(1)), {}
    yield "cosine_embedding_loss", (r(4, 6), r(4, 6), sign(4)), {}
    yield "cosine_embedding_loss", (r(4, 6), r(1, 6), sign(1)), {"margin": 0.3}
    yield "cosine_embedding_loss", (r(6), r(6), sign()), {"margin": -0.5}
    for p, eps, swap in [(2, 1e-6, False), (1, 1e-3, True), (3.0, 0.0, True),
                         (math.inf, 1e-6, False), (0.5, 1e-6, True), (0, 1e-6, False)]:
        yield "triplet_margin_loss", (r(4, 6), r(4, 6), r(4, 6)), {"p": p, "eps": eps,
                                                                   "swap": swap}
    yield "triplet_margin_loss", (r(2, 3, 6), r(1, 3, 6), r(2, 3, 6)), {"margin": 0.5}
    yield "triplet_margin_loss", (r(6), r(6), r(6)), {"margin": 2.0, "swap": True}
    yield "triplet_margin_loss", (r(), r(), r()), {}
    yield "triplet_margin_with_distance_loss", (r(4, 6), r(4, 6), r(4, 6)), {}
    yield "triplet_margin_with_distance_loss", (r(4, 6), r(1, 6), r(4, 6)),\
        {"margin": 0.3, "swap": True}
    yield "triplet_margin_with_distance_loss", (r(), r(), r()), {}


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_values_shapes_and_dtypes_as_pytorchs(reduction, dtype, rng):
    for name, args, kwargs in _cases(rng, dtype):
        args = tuple(np.array(a, dtype) if isinstance(a, np.ndarray) and a.dtype == bool
                     else a for a in args)
        check(name, args, dict(kwargs, reduction=reduction), dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_triplet_distance_functions(reduction, dtype, rng):
    r, _, _ = _arrays(rng, dtype)
    a, p, n = r(4, 6), r(4, 6), r(4, 6)
    for swap in (False, True):
        kw = {"margin": 0.4, "swap": swap, "reduction": reduction}
        # a plain callable (forward only: no backward needed) and an nn module
        ours = F.triplet_margin_with_distance_loss(
            a, p, n, distance_function=lambda u, v: 1 - F.cosine_similarity(u, v), **kw)
        theirs = TF.triplet_margin_with_distance_loss(
            _t(a), _t(p), _t(n), distance_function=lambda u, v: 1 - TF.cosine_similarity(u, v),
            **kw)
        assert ours.dtype == dtype
        assert_close(ours, theirs.numpy(), dtype)
        ours = F.triplet_margin_with_distance_loss(
            a, p, n, distance_function=fastnn.nn.PairwiseDistance(1.0), **kw)
        theirs = TF.triplet_margin_with_distance_loss(
            _t(a), _t(p), _t(n), distance_function=torch.nn.PairwiseDistance(1.0), **kw)
        assert_close(ours, theirs.numpy(), dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ctc_loss(reduction, dtype, rng):
    steps, n, c = 7, 3, 5
    log_probs = np.log(rng.dirichlet(np.ones(c), (steps, n))).astype(dtype)
    targets = rng.integers(1, c, (n, 4))
    target_lengths = np.array([3, 0, 2])
    concatenated = np.concatenate([targets[i, :k] for i, k in enumerate(target_lengths)])
    for kwargs in ({}, {"zero_infinity": True}):
        for lengths in (np.array([7, 5, 3]), np.array([7, 5, 1])):  # (1: impossible)
            for tg in (targets, concatenated):
                check("ctc_loss", (log_probs, tg, lengths, target_lengths),
                      dict(kwargs, reduction=reduction), dtype)
    blank_last = rng.integers(0, c - 1, (n, 4))
    check("ctc_loss", (log_probs, blank_last, [7, 5, 3], (3, 0, 2)),
          {"blank": c - 1, "reduction": reduction}, dtype)
    check("ctc_loss", (log_probs[:, 0], targets[0, :3], np.array(7), np.array(3)),
          {"reduction": reduction}, dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_empty_inputs(reduction, rng):
    f = np.float32
    e, ei = np.zeros((0, 4), f), np.zeros((0,), np.int64)
    cases = [("poisson_nll_loss", (e, e)), ("gaussian_nll_loss", (e, e, e)),
             ("soft_margin_loss", (e, e)), ("hinge_embedding_loss", (e, e)),
             ("margin_ranking_loss", (e[:, 0], e[:, 0], e[:, 0])),
             ("multilabel_soft_margin_loss", (e, e)),
             ("multilabel_soft_margin_loss", (np.zeros((3, 0), f), np.zeros((3, 0), f))),
             ("cosine_embedding_loss", (e, e, e[:, 0])),
             ("triplet_margin_loss", (e, e, e)),
             ("triplet_margin_with_distance_loss", (e, e, e))]
    for name, args in cases:
        check(name, args, {"reduction": reduction}, f)
    # PyTorch returns an uninitialised value for these two: fastnn NaN / 0 / empty
    for name, args in [("multilabel_margin_loss", (e, np.zeros((0, 4), np.int64))),
                       ("multi_margin_loss", (e, ei))]:
        ours = getattr(F, name)(*args, reduction=reduction)
        assert ours.dtype == f
        if reduction == "none":
            assert ours.shape == (0,)
        else:
            assert ours.shape == () and (np.isnan(ours) if reduction == "mean" else ours == 0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name, function, target", [
    ("MultiMarginLoss", "multi_margin_loss", np.zeros((0,), np.int64)),
    ("MultiLabelMarginLoss", "multilabel_margin_loss", np.zeros((0, 4), np.int64))])
def test_empty_batch_margin_loss_layers(name, function, target, reduction):
    """The nn layers of the two losses above on an empty batch: PyTorch 2.13's forward
    there is an uninitialised value ('mean' and 'sum'; it varies from call to call), so
    fastnn gives what every other PyTorch loss gives (mean over no samples NaN, sum 0, no
    per-sample losses) and the F functions give; backward, as PyTorch's, an empty
    gradient of pred's shape, with or without an incoming gradient."""
    x = np.zeros((0, 4), np.float32)
    loss = getattr(fastnn.nn, name)(reduction=reduction)
    value = loss(x, target)
    np.testing.assert_array_equal(value, getattr(F, function)(x, target, reduction=reduction))
    if reduction == "none":
        assert value.shape == (0,) and value.dtype == np.float32
    else:
        assert np.isnan(value) if reduction == "mean" else value == 0
    tx = torch.zeros((0, 4), requires_grad=True)
    theirs = getattr(torch.nn, name)(reduction=reduction)(tx, _t(target))
    theirs.sum().backward()
    incoming = np.zeros(np.shape(value), np.float32) if reduction == "none" else 2.0
    for grad in (loss.backward(), loss.backward(incoming)):
        assert (grad.shape, grad.dtype) == (tuple(tx.grad.shape), np.float32)


def test_deprecated_size_average_and_reduce(rng):
    x = rng.standard_normal((3, 4)).astype(np.float64)
    y = np.sign(x[::-1].copy())
    calls = [("poisson_nll_loss", (x, np.abs(y))), ("soft_margin_loss", (x, y)),
             ("hinge_embedding_loss", (x, y)), ("margin_ranking_loss", (x[0], x[1], y[0])),
             ("multilabel_soft_margin_loss", (x, np.abs(y))),
             ("multi_margin_loss", (x, np.array([0, 3, 1]))),
             ("multilabel_margin_loss", (x, np.array([[1, -1, 0, 0]] * 3))),
             ("cosine_embedding_loss", (x, x[::-1].copy(), y[:, 0])),
             ("triplet_margin_loss", (x, x[::-1].copy(), -x))]
    for name, args in calls:
        for legacy in ({"size_average": False}, {"reduce": False},
                       {"size_average": True, "reduce": True}):
            with pytest.warns(UserWarning, match="size_average and reduce"):
                ours = getattr(F, name)(*args, **legacy)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                theirs = getattr(TF, name)(*map(_t, args), **legacy)
            assert ours.shape == tuple(theirs.shape), (name, legacy)
            assert_close(ours, theirs.numpy(), np.float64)


def _errors(rng):
    """(fastnn call, torch call or None, exception type, match)."""
    f = np.float32
    x = rng.standard_normal((3, 4)).astype(f)
    v, ones = np.abs(x), np.ones(3, f)
    i3 = np.array([0, 1, 2])
    lp = np.log(rng.dirichlet(np.ones(5), (6, 2))).astype(f)
    tg, il, tl = np.array([[1, 2, 2], [3, 1, 0]]), np.array([6, 5]), np.array([3, 2])
    return [
        ("poisson_nll_loss", (x, x[:, :3]), {}, RuntimeError, "broadcast"),
        ("poisson_nll_loss", (x, x), {"reduction": "avg"}, ValueError, "not a valid"),
        ("poisson_nll_loss", (x, x), {"log_input": 1}, TypeError, "log_input"),
        ("gaussian_nll_loss", (x, x, -v), {}, ValueError, "negative"),
        ("gaussian_nll_loss", (x, x, -1.0), {}, ValueError, "negative"),
        ("gaussian_nll_loss", (x, x, v[0]), {}, ValueError, "var"),
        ("gaussian_nll_loss", (x, x[:, :3], v), {}, RuntimeError, "broadcast"),
        ("gaussian_nll_loss", (x, x, v), {"reduction": "avg"}, ValueError, "not a valid"),
        ("gaussian_nll_loss", (x, x, 1), {}, TypeError, "var"),
        ("soft_margin_loss", (x[0], x), {}, RuntimeError, "broadcast shape"),
        ("hinge_embedding_loss", (x, x[:, :3]), {}, RuntimeError, "broadcast"),
        ("margin_ranking_loss", (x[0], x, x[0]), {}, RuntimeError, "rank"),
        ("margin_ranking_loss", (x[0], x[0, :3], x[0]), {}, RuntimeError, "input2"),
        ("multilabel_margin_loss", (x[None], np.zeros((1, 3, 4), np.int64)), {},
         RuntimeError, "pred of shape"),
        ("multilabel_margin_loss", (x, np.zeros((3, 3), np.int64)), {}, RuntimeError,
         "target of shape"),
        ("multilabel_margin_loss", (x, np.full((3, 4), 4)), {}, RuntimeError, "out of range"),
        ("multilabel_margin_loss", (x[:, :0], np.zeros((3, 0), np.int64)), {}, RuntimeError,
         "non-empty"),
        ("multilabel_soft_margin_loss", (x[0, 0, ...], x[0, 0, ...]), {}, IndexError, "Dimension"),
        ("multilabel_soft_margin_loss", (x, x[:, :3]), {}, RuntimeError, "broadcast"),
        ("multilabel_soft_margin_loss", (x, x), {"weight": ones}, RuntimeError, "weight"),
        ("multilabel_soft_margin_loss", (x, x), {"reduction": "avg"}, ValueError, "not"),
        ("multi_margin_loss", (x, i3), {"p": 3}, ValueError, "only p == 1 and p == 2"),
        ("multi_margin_loss", (x, i3), {"weight": x[:1]}, ValueError, "one-dimensional"),
        ("multi_margin_loss", (x, i3), {"weight": ones}, RuntimeError, "weight"),
        ("multi_margin_loss", (x, np.array([0, 1, 4])), {}, RuntimeError, "out of range"),
        ("multi_margin_loss", (x, np.array([0, 1])), {}, RuntimeError, "target tensor"),
        ("multi_margin_loss", (x, i3[:, None]), {}, RuntimeError, "target tensor"),
        ("multi_margin_loss", (x[None], i3), {}, RuntimeError, "non-empty vector"),
        ("multi_margin_loss", (x[:, :0], i3), {}, RuntimeError, "non-empty vector"),
        ("cosine_embedding_loss", (x[0], x[0], ones[:1]), {}, RuntimeError, "target"),
        ("cosine_embedding_loss", (x[None], x[None], x[:, :1].T), {}, RuntimeError, "rank"),
        ("cosine_embedding_loss", (x, x, ones[:2]), {}, RuntimeError, "target"),
        ("cosine_embedding_loss", (x, x[0], ones), {}, RuntimeError, "rank"),
        ("triplet_margin_loss", (x, x[0], x), {}, RuntimeError, "rank"),
        ("triplet_margin_loss", (x, x[:2], x), {}, RuntimeError, "broadcast"),
        ("triplet_margin_loss", (x, x, x), {"margin": 0}, ValueError, "greater than 0"),
        ("triplet_margin_loss", (x, x, x), {"swap": 1}, TypeError, "swap"),
        ("triplet_margin_with_distance_loss", (x, x[0], x), {}, RuntimeError, "dimensions"),
        ("triplet_margin_with_distance_loss", (x, x[:2], x), {}, RuntimeError, "broadcast"),
        ("triplet_margin_with_distance_loss", (x, x, x), {"margin": 0.0}, ValueError,
         "greater than 0"),
        ("triplet_margin_with_distance_loss", (x, x, x), {"reduction": "avg"}, ValueError,
         "not a valid"),
        ("ctc_loss", (lp, tg, np.array([7, 5]), tl), {}, RuntimeError, "at most 6"),
        ("ctc_loss", (lp, tg, np.array([-1, 5]), tl), {}, RuntimeError, "at least 0"),
        ("ctc_loss", (lp, tg, il, np.array([-1, 2])), {}, RuntimeError, "at least 0"),
        ("ctc_loss", (lp, tg, il, np.array([4, 2])), {}, RuntimeError, "S >="),
        ("ctc_loss", (lp, tg, np.array([6]), tl), {}, RuntimeError, "one length"),
        ("ctc_loss", (lp, tg, il, tl), {"blank": 5}, RuntimeError, "blank"),
        ("ctc_loss", (lp, tg, il, tl), {"blank": -1}, RuntimeError, "blank"),
        ("ctc_loss", (lp, np.array([1, 2, 2, 3]), il, tl), {}, RuntimeError, "concatenated"),
        ("ctc_loss", (lp[None], tg, il, tl), {}, RuntimeError, "2-D or 3-D"),
        ("ctc_loss", (lp, tg[None], il, tl), {}, RuntimeError, "targets"),
        ("ctc_loss", (lp[:0], tg, np.zeros(2, np.int64), np.zeros(2, np.int64)), {},
         RuntimeError, "empty"),
        ("ctc_loss", (lp, tg, il, tl), {"reduction": "avg"}, ValueError, "not a valid"),
        ("ctc_loss", (lp, tg, il, tl), {"zero_infinity": 1}, TypeError, "zero_infinity"),
    ]


def test_errors_as_pytorch_raises_them(rng):
    for name, args, kwargs, exc, match in _errors(rng):
        with pytest.raises(exc):
            getattr(TF, name)(*map(_t, args), **{k: _t(v) for k, v in kwargs.items()})
        with pytest.raises(exc, match=match):
            getattr(F, name)(*args, **kwargs)


def test_fastnn_type_errors(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    with pytest.raises(TypeError, match="integer"):
        F.multi_margin_loss(x, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(TypeError, match="integer"):
        F.multilabel_margin_loss(x, x)
    with pytest.raises(TypeError, match="dtype mismatch"):
        F.soft_margin_loss(x, x.astype(np.float64))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        F.hinge_embedding_loss(list(x[0]), x[0])
    with pytest.raises(TypeError, match="blank"):
        F.ctc_loss(np.log(np.full((2, 1, 3), 1 / 3, np.float32)), np.array([[1]]), [2], [1],
                   blank=0.0)


def test_embedding_max_norm_is_nn_embeddings_renorm(dtype, rng, monkeypatch):
    weight = rng.standard_normal((6, 4)).astype(dtype) * 3
    idx = np.array([[0, 2, 2], [5, 1, 0]])
    for norm_type in (2.0, 1, math.inf):
        ours_w, torch_w = weight.copy(), torch.from_numpy(weight.copy())
        out = F.embedding(idx, ours_w, max_norm=1.5, norm_type=norm_type)
        ref = TF.embedding(torch.from_numpy(idx), torch_w, max_norm=1.5, norm_type=norm_type)
        assert_close(out, ref.numpy(), dtype)
        assert_close(ours_w, torch_w.numpy(), dtype)   # the rows renormalised in place
    seen = []
    monkeypatch.setattr(F, "renorm_rows", lambda *args: seen.append(args))
    F.embedding(idx, weight.copy(), max_norm=1.0)
    assert len(seen) == 1 and seen[0][2:] == (1.0, 2.0)


@pytest.mark.parametrize("name, args", [
    ("mse_loss", ([0.2, -1.0, 0.7, 1.5], [1, -1, 1, 1])),
    ("l1_loss", ([0.2, -1.0, 0.7, 1.5], [1, -1, 1, 1])),
    ("smooth_l1_loss", ([0.2, -1.0, 0.7, 1.5], [1, -1, 1, 1])),
    ("huber_loss", ([0.2, -1.0, 0.7, 1.5], [1, -1, 1, 1])),
    ("poisson_nll_loss", ([0.2, -1.0, 0.7, 1.5], [1, 0, 2, 3])),
    ("soft_margin_loss", ([0.2, -1.0, 0.7, 1.5], [1, -1, 1, 1])),
    ("hinge_embedding_loss", ([0.2, -1.0, 0.7, 1.5], [1, -1, 1, 1])),
    ("multilabel_soft_margin_loss", ([[0.2, -1.0], [0.7, 1.5]], [[1, 0], [0, 1]])),
    ("margin_ranking_loss", ([0.2, -1.0, 0.7], [1.5, 0.3, -0.2], [1, -1, 1])),
    ("cosine_embedding_loss", ([[0.2, -1.0], [0.7, 1.5]], [[1.5, 0.3], [-0.2, 0.4]], [1, -1])),
])
def test_integer_targets_are_taken_as_torch_and_the_nn_losses_take_them(name, args):
    arrays = [np.array(a, np.float64) for a in args[:-1]] + [np.array(args[-1], np.int64)]
    expected = getattr(torch.nn.functional, name)(*[torch.tensor(a) for a in arrays]).item()
    assert getattr(F, name)(*arrays) == pytest.approx(expected, rel=1e-12)


def test_weighted_binary_losses_keep_their_weights_broadcast_views(rng):
    # (astype of a broadcast weight made a column-major copy: every product with pred
    # strode across memory, BCEWithLogitsLoss(pos_weight) 6.7 ms for 1024x100)
    loss = fastnn.nn.BCEWithLogitsLoss(pos_weight=np.full(100, 2.0))
    pred = np.zeros((4, 100), np.float32)
    pw = loss._broadcast("pos_weight", loss.pos_weight, pred)
    assert pw.dtype == np.float32 and pw.strides == (0, 4)
    assert loss._weights(pred) == 1  # no weight: a scalar 1, not an array of ones
