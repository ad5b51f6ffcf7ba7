"""Losses against PyTorch 2.13: the discrepancies a randomized probe found (values,
gradients, shapes and errors at the edges), each pinned by a test, and a small sweep over
every loss, reduction and dtype.

'none' losses are differentiated with an upstream gradient of the losses' shape, 'mean'
and 'sum' with a number, as ``torch.autograd`` does with ``loss.backward(grad)``.
"""
import numpy as np
import pytest

import fastnn
from fastnn import nn

import torch  # noqa: E402  (after fastnn, as every test here)

pytestmark = pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss")

F32, F64 = np.float32, np.float64
BACKENDS = fastnn.backends()


def _tol(dtype):
    return dict(rtol=2e-4, atol=1e-5) if dtype == F32 else dict(rtol=1e-9, atol=1e-11)


def _close(ours, theirs, dtype):
    ours = np.asarray(ours)
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours.astype(F64), theirs.astype(F64), equal_nan=True,
                               **_tol(dtype))


def _run(ours, theirs, inputs, diff, dtype, reduction, rng, labels=None):
    """Compares the loss and the gradients of the inputs numbered in diff."""
    tins = [torch.tensor(a, requires_grad=i in diff) for i, a in enumerate(inputs)]
    targs = tins + ([torch.tensor(labels.astype(np.int64))] if labels is not None else [])
    t_loss = theirs(*targs)
    loss = ours(*(list(inputs) + ([labels] if labels is not None else [])))
    _close(loss, t_loss, dtype)
    up = (rng.standard_normal(tuple(t_loss.shape)).astype(dtype) if reduction == "none"
          else dtype(1.5))
    t_loss.backward(torch.tensor(up))
    grads = ours.backward(up)
    grads = grads if isinstance(grads, tuple) else (grads,)
    for g, i in zip(grads, diff):
        assert np.asarray(g).dtype == dtype
        _close(g, tins[i].grad, dtype)


# ----------------------------------------------------------------- fixed discrepancies
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [F32, F64])
def test_bce_gradient_floor_is_pytorchs_float32_epsilon(backend, dtype):
    # PyTorch floors p (1 - p) at 1e-12 rounded to float32, also in float64
    p = np.array([1e-30, 0.0, 1.0, 0.5, 1e-13], dtype)
    t = np.array([0.3, 0.2, 0.9, 0.1, 1.0], dtype)
    tp = torch.tensor(p, requires_grad=True)
    torch.nn.BCELoss()(tp, torch.tensor(t)).backward()
    for weight in (None, np.array([2.0])):
        with fastnn.use_backend(backend):
            loss = nn.BCELoss(weight=weight)
            loss(p, t)
            grad = loss.backward()
        scale = 1.0 if weight is None else 2.0
        np.testing.assert_allclose(grad, tp.grad.numpy() * scale,
                                   rtol=1e-6 if dtype == F32 else 1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("make", [
    lambda r: (nn.SoftMarginLoss(reduction=r), torch.nn.SoftMarginLoss(reduction=r)),
    lambda r: (nn.KLDivLoss(reduction=r), torch.nn.KLDivLoss(reduction=r)),
    lambda r: (nn.PoissonNLLLoss(reduction=r), torch.nn.PoissonNLLLoss(reduction=r)),
    lambda r: (nn.HingeEmbeddingLoss(reduction=r), torch.nn.HingeEmbeddingLoss(reduction=r)),
    lambda r: (nn.BCEWithLogitsLoss(weight=np.array(2.0), reduction=r),
               torch.nn.BCEWithLogitsLoss(weight=torch.tensor(2.0, dtype=torch.float64),
                                          reduction=r)),
])
def test_zero_d_pred_gets_a_zero_d_gradient(make, reduction):
    ours, theirs = make(reduction)
    _run(ours, theirs, [np.asarray(0.3), np.asarray(1.0)], [0], F64, reduction,
         np.random.default_rng(0))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weight", [None, [1.0, 2.0, 0.5, 3.0]])
def test_multilabel_soft_margin_takes_k_dimensional_input(reduction, weight):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4)) * 5
    y = (rng.uniform(size=(2, 3, 4)) > 0.5).astype(F64)
    w = None if weight is None else np.array(weight)
    _run(nn.MultiLabelSoftMarginLoss(weight=w, reduction=reduction),
         torch.nn.MultiLabelSoftMarginLoss(
             weight=None if w is None else torch.tensor(w), reduction=reduction),
         [x, y], [0], F64, reduction, rng)


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0])
def test_triplet_swap_splits_the_gradient_at_a_tie(p):
    # positive == anchor: d(p, n) == d(a, n), torch.minimum's gradient goes half to each
    rng = np.random.default_rng(2)
    a, n = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    _run(nn.TripletMarginLoss(p=p, swap=True, margin=3.0, reduction="none"),
         torch.nn.TripletMarginLoss(p=p, swap=True, margin=3.0, reduction="none"),
         [a, a.copy(), n], [0, 1, 2], F64, "none", rng)


def test_cosine_embedding_epsilon_is_pytorchs_float32_value():
    x1 = np.array([[1.0, 2.0], [0.5, -1.0]])
    x2 = np.array([[0.0, 0.0], [1.0, 1.0]])   # a zero vector: the epsilon decides
    _run(nn.CosineEmbeddingLoss(), torch.nn.CosineEmbeddingLoss(),
         [x1, x2, np.array([1.0, -1.0])], [0, 1], F64, "mean", np.random.default_rng(3))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shapes", [
    ((3,), (3,), ()), ((2, 3, 4), (2, 3, 4), (2, 1, 4)), ((2, 3, 4), (2, 3, 4), (2, 3)),
    ((4, 3), (3,), (4, 1)), ((4, 1), (4, 3), (4, 1)), ((4, 3), (4, 3), 0.7)])
def test_gaussian_nll_takes_pytorchs_var_and_target_shapes(shapes, reduction):
    rng = np.random.default_rng(4)
    xs, ts, vs = shapes
    x, t = rng.standard_normal(xs), np.asarray(rng.standard_normal(ts))
    ours = nn.GaussianNLLLoss(reduction=reduction)
    theirs = torch.nn.GaussianNLLLoss(reduction=reduction)
    if vs == 0.7:   # a number var: PyTorch's ones_like(input) * var
        tx, tt = (torch.tensor(a, requires_grad=True) for a in (x, t))
        t_loss = theirs(tx, tt, 0.7)
        _close(ours(x, t, 0.7), t_loss, F64)
        t_loss.sum().backward()
        gx, gt, gv = ours.backward(None if reduction != "mean" else 1.0) if reduction != "none" \
            else ours.backward(np.ones(tuple(t_loss.shape)))
        _close(gx, tx.grad, F64)
        _close(gt, tt.grad, F64)
        assert gv.shape == ()
        return
    _run(ours, theirs, [x, t, np.asarray(rng.uniform(0.0, 2.0, vs))], [0, 1, 2], F64,
         reduction, rng)


def test_gaussian_nll_var_shape_errors():
    x = np.zeros((4, 3))
    for var in (np.ones((1, 1)), np.ones(()), np.ones((3,)), np.ones((2, 3))):
        with pytest.raises(ValueError, match="expected var of shape"):
            nn.GaussianNLLLoss()(x, x, var)   # PyTorch: 'var is of incorrect size'


def test_bce_with_logits_pos_weight_must_broadcast_to_pred():
    x, t = np.zeros((2, 3)), np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"BCEWithLogitsLoss.*pos_weight of shape \(3, 1\)"):
        nn.BCEWithLogitsLoss(pos_weight=np.ones((3, 1)))(x, t)
    with pytest.raises(ValueError, match=r"pos_weight of shape \(2, 3\) does not broadcast"):
        nn.BCEWithLogitsLoss(pos_weight=np.ones((2, 3)))(x[0], t[0])   # PyTorch refuses
    with pytest.raises(ValueError, match="weight of shape"):
        nn.BCEWithLogitsLoss(weight=np.ones((2, 1, 3)))(x, t)


def test_cross_entropy_probabilities_refuse_a_non_negative_ignore_index():
    x, probs = np.zeros((2, 3)), np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match="ignore_index is not supported"):
        nn.CrossEntropyLoss(ignore_index=1)(x, probs)
    assert np.isfinite(nn.CrossEntropyLoss(ignore_index=-5)(x, probs))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("loss_kw, shapes", [
    ("margin", [(3,), (1,), (3,)]), ("margin", [(2, 3), (2, 3), (2, 3)]),
    ("margin", [(2, 1), (1, 3), (2, 3)]), ("cosine", [(3, 4), (1, 4), (3,)]),
    ("cosine", [(1, 4), (1, 4), (3,)]), ("triplet", [(2, 3, 4), (1, 3, 4), (2, 1, 4)]),
    ("triplet", [(3, 4), (3, 1), (3, 4)]),
    ("triplet", [(1, 1, 3, 4), (2, 1, 1, 4), (1, 5, 1, 1)])])
def test_pair_losses_broadcast_as_pytorchs(loss_kw, shapes, reduction):
    rng = np.random.default_rng(5)
    arrays = [np.asarray(rng.standard_normal(s)) for s in shapes]
    if loss_kw == "triplet":
        ours = nn.TripletMarginLoss(swap=True, margin=2.0, reduction=reduction)
        theirs = torch.nn.TripletMarginLoss(swap=True, margin=2.0, reduction=reduction)
        _run(ours, theirs, arrays, [0, 1, 2], F64, reduction, rng)
        return
    arrays[2] = np.where(arrays[2] >= 0, 1.0, -1.0)
    pair = {"margin": (nn.MarginRankingLoss, torch.nn.MarginRankingLoss),
            "cosine": (nn.CosineEmbeddingLoss, torch.nn.CosineEmbeddingLoss)}[loss_kw]
    _run(pair[0](margin=0.2, reduction=reduction), pair[1](margin=0.2, reduction=reduction),
         arrays, [0, 1], F64, reduction, rng)


def test_pair_losses_rank_errors():
    x = np.zeros((3, 4))
    with pytest.raises(ValueError, match="of the rank of anchor"):
        nn.TripletMarginLoss()(x, x, x[0])
    with pytest.raises(ValueError, match=r"expected negative of shape \(3, 4\)"):
        nn.TripletMarginLoss()(x, x, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="rank 2 or 1"):
        nn.CosineEmbeddingLoss()(x[None], x[None], np.ones((1, 3)))
    # a broadcast feature axis (PyTorch's cosine of it leaves [-1, 1]) is refused
    with pytest.raises(ValueError, match="one feature size"):
        nn.CosineEmbeddingLoss()(x, x[:, :1], np.ones(3))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kw, labels", [
    (dict(weight=[1.0, 2.0, 3.0]), [0, 2, 1]),
    (dict(ignore_index=0), [0, 2, 0]),
    (dict(ignore_index=5), [2, 2, 5]),
    (dict(ignore_index=5, label_smoothing=0.2, weight=[1.0, 2.0, 3.0]), [2, 2, 5])])
def test_cross_entropy_with_minus_inf_logits_off_the_labels(kw, labels, reduction, backend):
    # PyTorch gathers each label's term: a -inf logit elsewhere (or in an ignored row)
    # leaves the loss finite where the dense target would give 0 * -inf
    x = np.array([[0.0, -np.inf, 1.0], [2.0, 1.0, 0.0], [-np.inf, 1.0, 2.0]], F32)
    y = np.array(labels)
    tkw = {k: (torch.tensor(v, dtype=torch.float32) if k == "weight" else v)
           for k, v in kw.items()}
    okw = {k: (np.array(v, F32) if k == "weight" else v) for k, v in kw.items()}
    with fastnn.use_backend(backend):
        _run(nn.CrossEntropyLoss(reduction=reduction, **okw),
             torch.nn.CrossEntropyLoss(reduction=reduction, **tkw),
             [x], [0], F32, reduction, np.random.default_rng(6), labels=y)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [F32, F64])
def test_bce_with_logits_infinite_logits(backend, dtype):
    # PyTorch's (1 - t) x - log sigmoid(x): inf for x = inf, NaN for x = -inf (t > 0)
    x = np.array([np.inf, -np.inf, 1e30, -1e30, np.inf, -np.inf], dtype)
    t = np.array([0.3, 0.3, 0.5, 0.5, 1.0, 0.0], dtype)
    expected = torch.nn.BCEWithLogitsLoss(reduction="none")(torch.tensor(x), torch.tensor(t))
    with fastnn.use_backend(backend):
        _close(nn.BCEWithLogitsLoss(reduction="none")(x, t), expected, dtype)
        keep = [0, 2, 3, 4, 5]   # the sum: inf
        loss = nn.BCEWithLogitsLoss(reduction="sum")(x[keep], t[keep])
        np.testing.assert_equal(loss, expected[keep].sum().item())
        # -inf with t > 0: PyTorch's -inf - (-inf); gcc's reassociation (the Cython
        # build's -fassociative-math) may fold it to the limit, +inf: not finite either way
        loss = nn.BCEWithLogitsLoss(reduction="sum")(x[[1, 2]], t[[1, 2]])
        if backend == "cython":
            assert not np.isfinite(loss)
        else:
            np.testing.assert_equal(loss, np.nan)


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_kl_div_zero_target_times_infinite_pred_is_nan(reduction):
    x = np.array([[np.inf, -np.inf, 0.2, 0.3]])
    t = np.array([[0.0, 0.0, 0.5, -0.1]])
    _run(nn.KLDivLoss(reduction=reduction), torch.nn.KLDivLoss(reduction=reduction),
         [x, t], [0], F64, reduction, np.random.default_rng(7))


# ----------------------------------------------------------------- a small sweep
def _elementwise_cases(rng, dtype, shape):
    normal = lambda: rng.standard_normal(shape).astype(dtype)  # noqa: E731
    ties = lambda: (rng.integers(-2, 3, shape) * 0.5).astype(dtype)  # noqa: E731
    sign = lambda: rng.choice([-1.0, 1.0], shape).astype(dtype)  # noqa: E731
    prob = rng.uniform(0, 1, shape).astype(dtype)
    prob.reshape(-1)[:2] = [0.0, 1.0]
    return [
        ("MSELoss", {}, normal(), normal()), ("L1Loss", {}, ties(), ties()),
        ("SmoothL1Loss", {"beta": 0.0}, ties(), ties()),
        ("SmoothL1Loss", {"beta": 0.5}, ties(), ties()),
        ("HuberLoss", {"delta": 0.5}, ties(), ties()),
        ("BCELoss", {}, prob, rng.uniform(0, 1, shape).astype(dtype)),
        ("BCEWithLogitsLoss", {}, normal() * 30, rng.uniform(0, 1, shape).astype(dtype)),
        ("SoftMarginLoss", {}, normal() * 20, sign()),
        ("HingeEmbeddingLoss", {"margin": 0.5}, ties(), sign()),
        ("PoissonNLLLoss", {"full": True}, normal(),
         rng.integers(0, 5, shape).astype(dtype)),
        ("KLDivLoss", {"log_target": True}, normal(), normal()),
    ]


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_sweep_elementwise_losses(dtype, reduction):
    rng = np.random.default_rng(8)
    for backend in BACKENDS:
        for shape in [(3, 5), (2, 3, 2)]:
            for name, kw, pred, target in _elementwise_cases(rng, dtype, shape):
                with fastnn.use_backend(backend):
                    _run(getattr(nn, name)(reduction=reduction, **kw),
                         getattr(torch.nn, name)(reduction=reduction, **kw),
                         [pred, target], [0], dtype, reduction, rng)


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_sweep_class_losses(dtype, reduction):
    rng = np.random.default_rng(9)
    c = 4
    w = rng.uniform(0.2, 2.0, c).astype(dtype)
    for shape in [(5, c), (c,), (2, c, 3)]:
        x = (rng.standard_normal(shape) * 10).astype(dtype)
        y = rng.integers(0, c, shape[:1] + shape[2:] if len(shape) > 1 else ()).astype(np.int32)
        y = np.asarray(y)
        for kw in [dict(weight=True, ignore_index=1), dict(label_smoothing=0.3, weight=True)]:
            okw = dict(kw, weight=w) if kw.get("weight") else kw
            tkw = dict(kw, weight=torch.tensor(w)) if kw.get("weight") else kw
            _run(nn.CrossEntropyLoss(reduction=reduction, **okw),
                 torch.nn.CrossEntropyLoss(reduction=reduction, **tkw),
                 [x], [0], dtype, reduction, rng, labels=y)
        lp = torch.log_softmax(torch.tensor(x), dim=1 if len(shape) > 1 else 0).numpy()
        _run(nn.NLLLoss(weight=w, reduction=reduction),
             torch.nn.NLLLoss(weight=torch.tensor(w), reduction=reduction),
             [lp], [0], dtype, reduction, rng, labels=y)
        if len(shape) <= 2:
            _run(nn.MultiMarginLoss(p=2, margin=0.7, weight=w, reduction=reduction),
                 torch.nn.MultiMarginLoss(p=2, margin=0.7, weight=torch.tensor(w),
                                          reduction=reduction),
                 [x], [0], dtype, reduction, rng, labels=np.asarray(y, np.int64))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [F32, F64])
def test_softmax_cross_entropy_keeps_its_precision_at_large_logits(backend, dtype):
    """log s - (x_label - max) stays in the loss's precision where |max| is large (numba's
    fastmath once folded max into a float32 log s: 0.69336 for ln 2 at 1e4 logits)."""
    x = np.array([[1e4, 1e4, -3.0], [1e4, 1e4 - 1, 1e4 - 2], [-1e4, -1e4, -1e4 - 5]], dtype)
    labels = np.array([0, 1, 2])
    expected = torch.nn.functional.cross_entropy(torch.tensor(x, dtype=torch.float64),
                                                 torch.tensor(labels)).item()
    with fastnn.use_backend(backend):
        loss, grad = fastnn.ops.softmax_cross_entropy(x, labels)
    np.testing.assert_allclose(loss, expected, rtol=1e-6 if dtype == F32 else 1e-12)


@pytest.mark.parametrize("labels", [[0, 2, 1], [0, 3, 1], [-1, 0, 1], [0, -100, 2]])
def test_cross_entropy_quick_label_check_refuses_what_the_full_one_does(labels):
    # int64 labels in range take a one-pass check (validation.labels_in_range); any other
    # label goes through the full check: ignore_index's -100 ignored, as PyTorch's, the
    # rest refused with its ValueError naming the range
    from fastnn.validation import labels_in_range
    pred = np.random.default_rng(0).standard_normal((3, 3)).astype(F32)
    target = np.array(labels, np.int64)
    fits = all(0 <= v < 3 for v in labels)
    assert labels_in_range(target, 3) == fits
    loss = nn.CrossEntropyLoss()
    if fits or -100 in labels:
        want = torch.nn.functional.cross_entropy(torch.from_numpy(pred), torch.from_numpy(target))
        np.testing.assert_allclose(loss(pred, target), want.item(), rtol=1e-6)
        for other in (target.astype(np.int32), target[::-1].copy()[::-1]):  # the full check
            np.testing.assert_allclose(loss(pred, other), want.item(), rtol=1e-6)
    else:
        with pytest.raises(ValueError, match=r"labels out of range: expected values in \[0, 3\)"):
            loss(pred, target)
    assert labels_in_range(np.empty(0, np.int64), 3)


@pytest.mark.parametrize("kw", [dict(), dict(reduction="sum"), dict(reduction="none"),
                                dict(weight=np.full(3, 0.5)),
                                dict(weight=np.full(3, 0.5), reduction="none")])
def test_functional_bce_refuses_probabilities_outside_0_1_on_every_path(kw):
    """F.binary_cross_entropy with weight= or reduction='none' (the host formulas, not
    ops.bce_loss) checked neither the target (a target of 1.5 gave a negative loss) nor an
    input holding a NaN (min and max are NaN then, so 2.0 beside it passed); PyTorch
    refuses both on every path. A NaN alone passes, as in ops.bce_loss and BCELoss."""
    F = nn.functional
    tkw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    p, t = np.array([0.5, 0.2, 0.3]), np.array([0.5, 1.5, 0.0])
    with pytest.raises(RuntimeError, match="all elements of target should be between 0 and 1"):
        torch.nn.functional.binary_cross_entropy(torch.tensor(p), torch.tensor(t), **tkw)
    for bad_target in (t, np.array([np.nan, -0.5, 0.0])):
        with pytest.raises(RuntimeError, match="all elements of target should be between 0 "
                                               "and 1"):
            F.binary_cross_entropy(p, bad_target, **kw)
    with pytest.raises(RuntimeError, match="all elements of input should be between 0 and 1"):
        F.binary_cross_entropy(np.array([0.5, np.nan, 2.0]), np.full(3, 0.5), **kw)
    losses = F.binary_cross_entropy(np.array([0.5, np.nan, 0.3]), np.array([1.0, 0.5, 0.0]),
                                    **kw)
    losses = np.asarray(losses)   # NaN where the NaN input is ('none'), else the loss
    assert np.isnan(losses).any() and (losses.ndim == 0 or np.isfinite(losses[[0, 2]]).all())
