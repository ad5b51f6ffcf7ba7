"""Regression tests from a seeded differential fuzz of the losses (fastnn.nn and
fastnn.nn.functional) against PyTorch: values, the gradients backward returns, and the
exception types of refused inputs."""
import warnings

import numpy as np
import pytest

from fastnn import nn
from fastnn.nn import functional as F

torch = pytest.importorskip("torch")

_LP = np.log(np.full((4, 2, 3), 1 / 3))
_ONES = np.ones((2, 1), np.int64)


@pytest.mark.parametrize("log_probs, targets, input_lengths, target_lengths, blank", [
    (np.zeros((0, 2, 3)), _ONES, [0, 0], [1, 1], 0),          # empty log_probs
    (_LP, _ONES, [4, 4], [1, 1], 3),                          # blank >= C
    (_LP, _ONES, [5, 4], [1, 1], 0),                          # input length > T
    (_LP, np.ones(3, np.int64), [4, 4], [1, 1], 0),           # concatenated: wrong length
    (_LP, _ONES, [4, 4], [2, 1], 0),                          # padded: too short
    (_LP, np.ones((3, 2), np.int64), [4, 4], [1, 1], 0),      # padded: wrong batch
    (_LP, _ONES, [4, 4, 4], [1, 1], 0),                       # one length too many
    (_LP, _ONES, [-1, 4], [1, 1], 0),                         # negative lengths
    (_LP, _ONES, [4, 4], [-1, 1], 0),
    (_LP, np.ones((2, 1, 1), np.int64), [4, 4], [1, 1], 0),   # 3-D targets
    (_LP[0, 0], np.ones(1, np.int64), [4], [1], 0),           # 1-D log_probs
])
def test_ctc_bad_shapes_and_lengths_are_torchs_runtime_error(log_probs, targets, input_lengths,
                                                             target_lengths, blank):
    # PyTorch raises RuntimeError for each; fastnn raised a bare ValueError
    with pytest.raises(RuntimeError):
        torch.nn.functional.ctc_loss(torch.from_numpy(log_probs), torch.from_numpy(targets),
                                     input_lengths, target_lengths, blank=blank)
    with pytest.raises(ValueError) as caught:
        nn.CTCLoss(blank=blank)(log_probs, targets, input_lengths, target_lengths)
    assert isinstance(caught.value, RuntimeError)
    with pytest.raises(RuntimeError):
        F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=blank)


@pytest.mark.parametrize("name, warns, target", [
    ("MSELoss", True, None), ("L1Loss", True, None), ("SmoothL1Loss", True, None),
    ("HuberLoss", True, None), ("HingeEmbeddingLoss", False, "sign"),
    ("KLDivLoss", False, "prob"), ("PoissonNLLLoss", False, "count"),
    ("SoftMarginLoss", False, "sign")])
@pytest.mark.parametrize("shapes", [((2, 3), (1, 3)), ((2, 3), (3,)), ((2, 3), (2, 1)),
                                    ((1, 3), (2, 3)), ((3,), (2, 3))])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_elementwise_losses_broadcast_target_as_torch(name, warns, target, shapes, reduction):
    # PyTorch's losses broadcast a target of another shape against the input (MSE, L1,
    # smooth L1 and Huber with a UserWarning), the input's gradient summed back to its
    # shape; fastnn's classes refused it (their functional forms already broadcast)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shapes[0])
    t = rng.standard_normal(shapes[1])
    if target == "sign":
        t = np.where(t > 0, 1.0, -1.0)
    elif target == "prob":
        t = rng.random(shapes[1])
    elif target == "count":
        t = np.round(np.abs(t) * 2)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    try:
        want = getattr(torch.nn, name)(reduction=reduction)(xt, torch.from_numpy(t))
    except RuntimeError:   # (SoftMarginLoss: only the target broadcasts)
        assert name == "SoftMarginLoss" and len(shapes[1]) >= len(shapes[0])
        with pytest.raises(RuntimeError):
            getattr(nn, name)(reduction=reduction)(x, t)
        return
    grad_out = rng.standard_normal(tuple(want.shape))
    want.backward(torch.from_numpy(grad_out) if reduction == "none" else None)
    loss = getattr(nn, name)(reduction=reduction)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = loss(x, t)
    assert [w.filename for w in caught if "target size" in str(w.message)] == (
        [__file__] if warns else [])   # (the warning points at the caller's line)
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-12, atol=1e-12)
    grad = loss.backward(grad_out if reduction == "none" else None)
    assert grad.shape == x.shape
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", ["bce_pred", "bce_target", "nll_rank", "ce_rank",
                                  "multi_margin_batch", "multi_margin_rank", "ops_bce"])
def test_bad_probabilities_and_label_shapes_are_torchs_runtime_error(case):
    # PyTorch raises RuntimeError for each ("all elements of input should be between 0 and
    # 1", "0D or 1D target tensor expected, multi-target not supported", "target tensor
    # should be 1-D with size equal to the number of input samples"); fastnn raised a bare
    # ValueError
    from fastnn import ops
    x = np.zeros((2, 3))
    p = np.full((2, 3), 0.5)
    calls = {
        "bce_pred": (lambda M: M.BCELoss()(p + 1, p)),
        "bce_target": (lambda M: M.BCELoss()(p, p + 1)),
        "nll_rank": (lambda M: M.NLLLoss()(x, np.zeros((2, 2), np.int64))),
        "ce_rank": (lambda M: M.CrossEntropyLoss()(x, np.zeros((2, 2), np.int64))),
        "multi_margin_batch": (lambda M: M.MultiMarginLoss()(x, np.zeros(3, np.int64))),
        "multi_margin_rank": (lambda M: M.MultiMarginLoss()(x, np.zeros((2, 2), np.int64))),
    }
    if case == "ops_bce":
        with pytest.raises(ValueError) as caught:
            ops.bce_loss(p + 1, p)
        assert isinstance(caught.value, RuntimeError)
        return
    with pytest.raises(RuntimeError):
        calls[case](_TorchArrays(torch.nn))
    with pytest.raises(ValueError) as caught:
        calls[case](nn)
    assert isinstance(caught.value, RuntimeError)


class _TorchArrays:
    """torch.nn's losses called with NumPy arrays (as tensors), for the calls above."""

    def __init__(self, module):
        self.module = module

    def __getattr__(self, name):
        cls = getattr(self.module, name)

        def make(*args, **kwargs):
            loss = cls(*args, **kwargs)
            return lambda *arrays: loss(*[torch.from_numpy(a) for a in arrays])
        return make


@pytest.mark.parametrize("shapes", [((2, 3), (1, 3)), ((1, 3), (2, 3)), ((2, 3), (2, 1)),
                                    ((2, 1), (2, 3)), ((2, 2, 3), (2, 1, 3))])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_multilabel_soft_margin_broadcasts_target_as_torch(shapes, reduction, weighted):
    # PyTorch broadcasts a target of pred's rank and another shape, the mean over pred's
    # own classes; fastnn's class refused it
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shapes[0])
    t = (rng.random(shapes[1]) > 0.5).astype(np.float64)
    w = rng.random(3) if weighted else None
    xt = torch.from_numpy(x.copy()).requires_grad_()
    want = torch.nn.MultiLabelSoftMarginLoss(
        weight=None if w is None else torch.from_numpy(w), reduction=reduction)(
        xt, torch.from_numpy(t))
    grad_out = rng.standard_normal(tuple(want.shape))
    want.backward(torch.from_numpy(grad_out))
    loss = nn.MultiLabelSoftMarginLoss(weight=w, reduction=reduction)
    np.testing.assert_allclose(loss(x, t), want.detach().numpy(), rtol=1e-12, atol=1e-12)
    grad = loss.backward(grad_out)
    assert grad.shape == x.shape
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shapes", [((1, 3), (2, 3)), ((2, 1), (2, 3)), ((3,), (2, 3)),
                                    ((2, 3), (2, 2, 3)), ((1, 3), (2, 1))])
@pytest.mark.parametrize("weight", [None, (3,), (2, 1, 3)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_functional_multilabel_soft_margin_target_enlarging_input(shapes, weight, reduction):
    # a target that enlarges input's shape gives PyTorch's formula as it is (the terms of
    # the broadcast shape summed over axis input.ndim - 1, over input's C), as an
    # enlarging weight already did; fastnn refused it
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shapes[0])
    t = (rng.random(shapes[1]) > 0.5).astype(np.float64)
    w = None if weight is None else rng.random(weight)
    want = torch.nn.functional.multilabel_soft_margin_loss(
        torch.from_numpy(x), torch.from_numpy(t),
        weight=None if w is None else torch.from_numpy(w), reduction=reduction)
    got = F.multilabel_soft_margin_loss(x, t, weight=w, reduction=reduction)
    assert np.shape(got) == tuple(want.shape)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("p", [1.0, 0.5, 1.5, 3.0, np.inf, -np.inf, -1.0])
def test_p_norm_distance_gradient_at_nan_and_inf_is_torchs(p):
    # PyTorch's norm backward, term for term: sgn(diff) (0 at a NaN entry) for p = 1, the
    # max/min entries and the NaN ones sharing it for +-inf, NaN rows where its formula
    # gives them for other p (TripletMarginLoss, PairwiseDistance); fastnn's gave NaN at a
    # NaN entry for p = 1 and other NaN patterns for the other p
    nan, inf = np.nan, np.inf
    a = np.array([[nan, 1.0, -2.0], [inf, 0.5, 0.0]])
    b = np.array([[0.0, 2.0, 1.0], [inf, -1.0, 3.0]])
    n = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    ts = [torch.from_numpy(x.copy()).requires_grad_() for x in (a, b, n)]
    torch.nn.TripletMarginLoss(margin=2.0, p=p, reduction="sum")(*ts).backward()
    loss = nn.TripletMarginLoss(margin=2.0, p=p, reduction="sum")
    loss(a, b, n)
    for got, t in zip(loss.backward(), ts):
        np.testing.assert_array_equal(got, t.grad.numpy())
    x1 = torch.from_numpy(a.copy()).requires_grad_()
    torch.nn.PairwiseDistance(p=p)(x1, torch.from_numpy(b)).sum().backward()
    dist = nn.PairwiseDistance(p=p)
    dist(a, b)
    grad = dist.backward(np.ones(2))
    np.testing.assert_array_equal(grad[0] if isinstance(grad, tuple) else grad, x1.grad.numpy())
