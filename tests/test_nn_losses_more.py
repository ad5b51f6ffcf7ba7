"""MultiLabelMarginLoss, TripletMarginWithDistanceLoss, CTCLoss and EmbeddingBag against
PyTorch: values and gradients in float32 and float64, every reduction and mode, the edge
cases (terminators, ties at the hinge, impossible alignments, empty bags)."""

import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn

from conftest import assert_close
from nn_torch_helpers import TORCH_DTYPES
from simulator_runs import in_background

torch.set_num_threads(1)

REDUCTIONS = ["mean", "sum", "none"]


def _t(a, grad=False):
    t = torch.from_numpy(np.array(a, copy=True))
    return t.requires_grad_(True) if grad else t


def _upstream(rng, loss, dtype):
    """A random gradient for a 'none' loss (None for a number)."""
    return rng.standard_normal(tuple(loss.shape)).astype(dtype) if loss.ndim else None


# ----------------------------------------------------------- MultiLabelMarginLoss
def _multilabel_case(rng, dtype, shape):
    x = rng.standard_normal(shape).astype(dtype)
    if not shape:
        return x, np.array(0)
    c = shape[-1]
    rows = x.reshape(-1, c)
    t = np.full(rows.shape, -1, np.int64)
    for i in range(rows.shape[0]):
        k = i % (c + 1)   # 0 labels (first entry -1) up to all C (no terminator)
        t[i, :k] = rng.permutation(c)[:k]
        if k < c:   # entries after the terminator are ignored, whatever they are
            t[i, k + 1:] = rng.integers(-1, c, c - k - 1)
    if rows.shape[0] > 2 and c > 2:   # a label listed twice counts twice
        t[1, :3] = [2, 2, -1]
        # a hinge at exactly 0: 1 - x[0] + x[1] with x[0] = 1.5, x[1] = 0.5
        rows[2, :2] = [1.5, 0.5]
        t[2, :2] = [0, -1]
    return x, t.reshape(shape)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(7, 5), (6,), ()], ids=["batch", "unbatched", "0-d"])
def test_multilabel_margin_matches_torch(dtype, rng, reduction, shape):
    x, t = _multilabel_case(rng, dtype, shape)
    ours = nn.MultiLabelMarginLoss(reduction=reduction)
    tx = _t(x, grad=True)
    tl = torch.nn.MultiLabelMarginLoss(reduction=reduction)(tx, _t(t))
    loss = ours(x, t)
    g = _upstream(rng, tl, dtype)
    tl.backward(None if g is None else _t(g))
    grad = ours.backward(g)
    assert_close(np.asarray(loss), tl.detach().numpy(), dtype)
    assert grad.shape == x.shape and grad.dtype == dtype
    assert_close(grad, tx.grad.numpy(), dtype)
    if reduction == "none":
        assert np.shape(loss) == tuple(tl.shape) and loss.dtype == dtype
    assert repr(ours) == ("MultiLabelMarginLoss()" if reduction == "mean"
                          else f"MultiLabelMarginLoss(reduction={reduction!r})")


def test_multilabel_margin_bad_input():
    loss = nn.MultiLabelMarginLoss()
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"target out of range: expected values in \[-1, 3\)"):
        loss(x, np.array([[0, -2, 1], [0, 1, 2]]))
    with pytest.raises(ValueError, match=r"\[-1, 3\)"):   # also past the terminator
        loss(x, np.array([[0, -1, 3], [0, 1, 2]]))
    with pytest.raises(ValueError, match=r"expected target of shape \(2, 3\)"):
        loss(x, np.zeros((2, 2), np.int64))
    with pytest.raises(TypeError, match="integer class indices"):
        loss(x, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"shape \(N, C\), \(C,\) or \(\)"):
        loss(np.zeros((2, 3, 4)), np.zeros((2, 3, 4), np.int64))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        nn.MultiLabelMarginLoss().backward()


# -------------------------------------------------- TripletMarginWithDistanceLoss
class CosineDistance(nn.Module):
    """1 - cos(a, b): the documented way to use CosineSimilarity as a distance."""

    def __init__(self):
        super().__init__()
        self.cos = nn.CosineSimilarity(dim=-1)

    def forward(self, a, b):
        return 1 - self.cos(a, b)

    def backward(self, grad):
        return self.cos.backward(-grad)


class BilinearScore(nn.Module):
    """A learned 'distance' with parameters: Bilinear(a, b)[..., 0]."""

    def __init__(self, d, dtype):
        super().__init__()
        self.bil = nn.Bilinear(d, d, 1, dtype=dtype)

    def forward(self, a, b):
        return self.bil(a, b)[..., 0]

    def backward(self, grad):
        return self.bil.backward(grad[..., None])


def _torch_bilinear(ours, dtype):
    twin = torch.nn.Bilinear(*ours.bil.weight.shape[1:], 1).to(TORCH_DTYPES[np.dtype(dtype)])
    with torch.no_grad():
        twin.weight.copy_(_t(ours.bil.weight.data))
        twin.bias.copy_(_t(ours.bil.bias.data))
    return twin


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("distance, kwargs, shapes", [
    ("default", dict(), [(6, 5)] * 3),
    ("default", dict(swap=True, margin=2.5), [(6, 5)] * 3),
    ("default", dict(swap=True), [(5,)] * 3),
    ("default", dict(), [(6, 5), (1, 5), (6, 5)]),
    ("p1", dict(swap=True, margin=0.5), [(2, 3, 4)] * 3),
    ("cosine", dict(swap=True, margin=0.3), [(6, 5)] * 3),
    ("bilinear", dict(swap=True), [(6, 4)] * 3),
], ids=["default", "swap-margin", "unbatched", "broadcast", "p1-3d", "cosine", "bilinear"])
def test_triplet_with_distance_matches_torch(dtype, rng, reduction, distance, kwargs, shapes):
    xs = [rng.standard_normal(s).astype(dtype) for s in shapes]
    theirs_fn = None
    if distance == "default":
        ours_fn = None
    elif distance == "p1":
        ours_fn, theirs_fn = nn.PairwiseDistance(p=1.0), torch.nn.PairwiseDistance(p=1.0)
    elif distance == "cosine":
        ours_fn = CosineDistance()
        cos = torch.nn.CosineSimilarity(dim=-1)
        theirs_fn = lambda a, b: 1 - cos(a, b)   # noqa: E731
    else:
        ours_fn = BilinearScore(shapes[0][-1], dtype)
        twin = _torch_bilinear(ours_fn, dtype)
        theirs_fn = lambda a, b: twin(a, b)[..., 0]   # noqa: E731
    ours = nn.TripletMarginWithDistanceLoss(distance_function=ours_fn, reduction=reduction,
                                            **kwargs)
    theirs = torch.nn.TripletMarginWithDistanceLoss(distance_function=theirs_fn,
                                                    reduction=reduction, **kwargs)
    txs = [_t(x, grad=True) for x in xs]
    tl = theirs(*txs)
    loss = ours(*xs)
    g = _upstream(rng, tl, dtype)
    tl.backward(None if g is None else _t(g))
    grads = ours.backward(g)
    assert_close(np.asarray(loss), tl.detach().numpy(), dtype)
    if reduction == "none":
        assert loss.shape == tuple(tl.shape) and loss.dtype == dtype
    assert len(grads) == 3
    for ours_g, tx in zip(grads, txs):
        assert ours_g.shape == tuple(tx.shape) and ours_g.dtype == dtype
        assert_close(ours_g, tx.grad.numpy(), dtype)
    if distance == "bilinear":
        assert_close(ours_fn.bil.weight.grad, twin.weight.grad.numpy(), dtype, 10)
        assert_close(ours_fn.bil.bias.grad, twin.bias.grad.numpy(), dtype, 10)
    assert repr(ours).startswith("TripletMarginWithDistanceLoss(")


def test_triplet_with_distance_ties_and_hinge(dtype):
    """torch.minimum's gradient at a tie (half to each distance) and clamp_min's at the
    hinge (passed), with a distance without eps so that both are exact."""
    a = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]], dtype)
    p = np.array([[2.0, 0.0], [1.0, 0.0], [0.0, 3.0]], dtype)
    n = np.array([[1.0, 1.5], [2.0, 0.0], [0.5, 0.0]], dtype)   # tie; z = 0; plain
    for swap in (False, True):
        ours = nn.TripletMarginWithDistanceLoss(distance_function=nn.PairwiseDistance(eps=0.0),
                                                swap=swap, reduction="sum")
        theirs = torch.nn.TripletMarginWithDistanceLoss(
            distance_function=torch.nn.PairwiseDistance(eps=0.0), swap=swap, reduction="sum")
        _summed_triplet_as_torch(ours, theirs, (a, p, n), dtype)


def _summed_triplet_as_torch(ours, theirs, xs, dtype):
    """A 'sum' triplet loss and its three gradients against PyTorch's."""
    txs = [_t(x, grad=True) for x in xs]
    tl = theirs(*txs)
    tl.backward()
    assert_close(ours(*xs), tl.item(), dtype)
    for ours_g, tx in zip(ours.backward(), txs):
        assert_close(ours_g, tx.grad.numpy(), dtype)


@pytest.mark.parametrize("p", [0.5, -1.0, 1.0, 3.0])
def test_distance_gradient_at_a_zero_coordinate(dtype, p):
    """A coordinate where x1 - x2 + eps is exactly 0: its gradient is 0 for every p, as
    PyTorch's norm backward (p < 1 had computed sign(0) * 0**(p - 1) = 0 * inf = NaN),
    in PairwiseDistance and in TripletMarginLoss's own distance (p >= 1 there)."""
    a = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]], dtype)
    b = np.array([[1.0, 0.0, 0.0], [0.5, -1.0, 2.0]], dtype)   # row 1: the same point
    c = np.array([[3.0, 2.0, 1.0], [2.0, 2.0, 2.0]], dtype)
    ours = nn.PairwiseDistance(p=p, eps=0.0)
    theirs = torch.nn.PairwiseDistance(p=p, eps=0.0)
    ta, tb = _t(a, grad=True), _t(b, grad=True)
    td = theirs(ta, tb)
    td.sum().backward()
    assert_close(ours(a, b), td.detach().numpy(), dtype)
    for ours_g, tx in zip(ours.backward(np.ones(2, dtype)), (ta, tb)):
        assert not np.isnan(ours_g).any()
        assert_close(ours_g, tx.grad.numpy(), dtype)
    if p < 1:
        return
    _summed_triplet_as_torch(
        nn.TripletMarginLoss(margin=50.0, p=p, eps=0.0, reduction="sum"),
        torch.nn.TripletMarginLoss(margin=50.0, p=p, eps=0.0, reduction="sum"), (a, b, c),
        dtype)


def test_triplet_with_distance_options_and_errors():
    x = np.zeros((3, 4))
    with pytest.raises(TypeError, match="has no backward, so fastnn cannot differentiate"):
        nn.TripletMarginWithDistanceLoss(distance_function=lambda a, b: np.abs(a - b).sum(-1))
    with pytest.raises(ValueError, match="expected margin to be greater than 0, got 0"):
        nn.TripletMarginWithDistanceLoss(margin=0)
    with pytest.raises(TypeError):
        nn.TripletMarginWithDistanceLoss(None)   # keyword arguments only, as PyTorch's
    loss = nn.TripletMarginWithDistanceLoss()
    with pytest.raises(ValueError, match="same rank, got 2-D, 1-D and 2-D"):
        loss(x, np.zeros(4), x)
    with pytest.raises(ValueError, match="do not broadcast"):
        loss(x, np.zeros((2, 4)), x)
    with pytest.raises(TypeError, match="dtype"):
        loss(x, x.astype(np.float32), x)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        loss.backward()
    assert np.isnan(loss(np.zeros((0, 4)), np.zeros((0, 4)), np.zeros((0, 4))))   # as torch
    assert all(g.shape == (0, 4) for g in loss.backward())
    assert repr(loss) == "TripletMarginWithDistanceLoss()"
    assert repr(nn.TripletMarginWithDistanceLoss(
        distance_function=nn.PairwiseDistance(p=1.0), margin=2.0, swap=True,
        reduction="sum")) == ("TripletMarginWithDistanceLoss(reduction='sum', "
                              "distance_function=PairwiseDistance(), margin=2.0, swap=True)")


# -------------------------------------------------------------------- CTCLoss
def _ctc_case(rng, dtype, t_len, l_len, c, blank=0, normalised=True):
    """(log_probs (T, N, C), padded targets (N, S)): log_softmax of random logits, or the
    logits themselves (PyTorch's formula holds for any log_probs)."""
    x = rng.standard_normal((max(t_len), len(t_len), c)).astype(dtype)
    lp = torch.from_numpy(x).log_softmax(2).numpy() if normalised else x
    labels = [k for k in range(c) if k != blank]
    targets = rng.choice(labels, size=(len(l_len), max(max(l_len), 1))).astype(np.int64)
    return lp, targets


def _ctc_against_torch(rng, dtype, lp, targets, t_len, l_len, reduction="mean", **kwargs):
    tlp = _t(lp, grad=True)
    tl = torch.nn.CTCLoss(reduction=reduction, **kwargs)(
        tlp, _t(targets), torch.tensor(t_len), torch.tensor(l_len))
    ours = nn.CTCLoss(reduction=reduction, **kwargs)
    loss = ours(lp, targets, t_len, l_len)
    g = _upstream(rng, tl, lp.dtype)
    tl.backward(None if g is None else _t(g))
    grad = ours.backward(g)
    np.testing.assert_array_equal(np.isinf(loss), np.isinf(tl.detach().numpy()))
    assert_close(np.where(np.isinf(loss), 0, loss),
                 np.where(np.isinf(tl.detach().numpy()), 0, tl.detach().numpy()), dtype, 10)
    assert grad.shape == lp.shape and grad.dtype == dtype
    np.testing.assert_array_equal(np.isnan(grad), np.isnan(tlp.grad.numpy()))
    assert_close(np.nan_to_num(grad), np.nan_to_num(tlp.grad.numpy()), dtype, 10)
    return ours, loss, grad


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("layout", ["padded", "concatenated"])
def test_ctc_matches_torch(dtype, rng, reduction, layout):
    """Sequences of different input and target lengths (an empty target among them),
    repeated labels (no skip between equal labels), padded or concatenated targets."""
    t_len, l_len = [14, 11, 7, 9, 3], [5, 3, 0, 4, 2]
    lp, targets = _ctc_case(rng, dtype, t_len, l_len, 6)
    targets[0, 1:3] = targets[0, 0]   # a run of one label: needs blanks between
    if layout == "concatenated":
        targets = np.concatenate([row[:n] for row, n in zip(targets, l_len)])
    else:
        targets[2:, :] = np.where(np.arange(targets.shape[1]) < np.array(l_len[2:])[:, None],
                                  targets[2:], -1)   # padding values are never read
    _ctc_against_torch(rng, dtype, lp, targets, t_len, l_len, reduction)


@pytest.mark.parametrize("zero_infinity", [False, True])
def test_ctc_impossible_and_empty_inputs(dtype, rng, zero_infinity):
    """A target too long for its input (inf loss, NaN gradient unless zero_infinity),
    an empty input with an empty target (0) and with a target (inf)."""
    t_len, l_len = [10, 2, 0, 0, 6], [3, 3, 0, 2, 3]
    lp, targets = _ctc_case(rng, dtype, t_len, l_len, 5)
    for reduction in REDUCTIONS:
        ours, loss, grad = _ctc_against_torch(rng, dtype, lp, targets, t_len, l_len, reduction,
                                              zero_infinity=zero_infinity)
    assert np.all(grad[:, 2:4] == 0)
    assert np.all(np.isnan(grad[:2, 1])) != zero_infinity
    assert repr(ours) == ("CTCLoss(reduction='none', zero_infinity=True)" if zero_infinity
                          else "CTCLoss(reduction='none')")


def test_ctc_gradient_through_log_softmax(dtype, rng):
    """PyTorch's CTC gradient is w.r.t. the logits of a log_softmax: with nn.LogSoftmax's
    backward it is autograd's gradient of the logits, and it differs from the plain
    derivative w.r.t. log_probs by exp(log_probs) (the occupancies alone)."""
    t_len, l_len = [9, 8, 5], [3, 4, 1]
    logits = rng.standard_normal((9, 3, 7)).astype(dtype)
    targets = rng.integers(1, 7, (3, 4))
    tx = _t(logits, grad=True)
    tl = torch.nn.CTCLoss()(tx.log_softmax(2), _t(targets), torch.tensor(t_len),
                            torch.tensor(l_len))
    tl.backward()
    log_softmax, ours = nn.LogSoftmax(dim=2), nn.CTCLoss()
    lp = log_softmax(logits)
    assert_close(ours(lp, targets, t_len, l_len), tl.item(), dtype)
    grad_lp = ours.backward()
    assert_close(log_softmax.backward(grad_lp), tx.grad.numpy(), dtype)
    # as PyTorch's direct gradient: exp(lp) per sequence scale minus the occupancies,
    # whose sum over classes is that same scale for each step within the input
    scale = 1 / (3 * np.maximum(np.array(l_len), 1))
    occupancy = np.exp(lp) * scale[None, :, None] - grad_lp
    inside = np.arange(9)[:, None] < np.array(t_len)[None, :]
    assert_close(np.where(inside, occupancy.sum(axis=2), 0),
                 np.where(inside, scale[None, :], 0), dtype)
    assert np.all(grad_lp[~inside] == 0)


def test_ctc_options_and_edge_cases(dtype, rng):
    """blank other than 0, blank inside a target (computed as PyTorch computes it, its
    last-step quirk included), -inf log-probabilities (NaN gradients as PyTorch's),
    log_probs that are not normalised, one unbatched sequence."""
    t_len, l_len = [10, 8, 6], [3, 3, 2]
    lp, targets = _ctc_case(rng, dtype, t_len, l_len, 5, blank=4)
    _ctc_against_torch(rng, dtype, lp, targets, t_len, l_len, "none", blank=4)
    with_blank = np.array([[1, 0, 2], [2, 2, 0], [0, 3, 3]])   # blank inside and last
    _ctc_against_torch(rng, dtype, lp, with_blank, t_len, l_len, "sum")
    masked = lp.copy()
    masked[:, :, 3] = -np.inf   # a class not in the targets: NaN gradient (PyTorch's)
    _ctc_against_torch(rng, dtype, masked, np.array([[1, 2, 1], [1, 1, 2], [2, 2, 0]]),
                       t_len, l_len, "none")
    raw, targets = _ctc_case(rng, dtype, t_len, l_len, 5, normalised=False)
    _ctc_against_torch(rng, dtype, raw, targets, t_len, l_len, "mean")
    for reduction in REDUCTIONS:   # unbatched: (T, C), targets (S,), lengths as ints
        tlp = _t(lp[:, 0], grad=True)
        tl = torch.nn.CTCLoss(reduction=reduction)(tlp, _t(targets[0]), torch.tensor(10),
                                                   torch.tensor(3))
        tl.backward()
        ours = nn.CTCLoss(reduction=reduction)
        loss = ours(lp[:, 0], targets[0], 10, 3)
        assert np.shape(loss) == ()
        assert_close(loss, tl.item(), dtype)
        assert_close(ours.backward(), tlp.grad.numpy(), dtype)
        assert_close(ours(lp[:, 0], targets[:1], [10], [3]), tl.item(), dtype)


def test_ctc_longer_sequences(rng):
    """T = 60, N = 8, C = 20, targets up to 20 long (float64)."""
    t_len = [60, 55, 50, 45, 60, 30, 41, 25]
    l_len = [20, 15, 18, 3, 0, 12, 20, 10]
    lp, targets = _ctc_case(rng, np.float64, t_len, l_len, 20)
    _ctc_against_torch(rng, np.float64, lp, targets, t_len, l_len, "mean")


def test_ctc_bad_input():
    lp = np.log(np.full((5, 2, 4), 0.25))
    tg = np.array([[1, 2], [3, 3]])
    loss = nn.CTCLoss()
    with pytest.raises(ValueError, match=r"blank 4 is not a class index \(C = 4\)"):
        nn.CTCLoss(blank=4)(lp, tg, [5, 5], [2, 2])
    with pytest.raises(ValueError, match="at most 5"):
        loss(lp, tg, [6, 5], [2, 2])
    with pytest.raises(ValueError, match="at least 0"):
        loss(lp, tg, [5, 5], [-1, 2])
    with pytest.raises(ValueError, match="one length per sequence"):
        loss(lp, tg, [5], [2, 2])
    with pytest.raises(TypeError, match="input_lengths to be integers"):
        loss(lp, tg, np.array([5.0, 5.0]), [2, 2])
    with pytest.raises(ValueError, match=r"S >= max\(target_lengths\) = 3"):
        loss(lp, tg, [5, 5], [3, 2])
    with pytest.raises(ValueError, match=r"sum\(target_lengths\) = 4, got 3"):
        loss(lp, np.array([1, 2, 3]), [5, 5], [2, 2])
    with pytest.raises(ValueError, match=r"targets out of range: expected class indices in "
                                         r"\[0, 4\)"):
        loss(lp, np.array([[1, 4], [3, 3]]), [5, 5], [2, 2])
    with pytest.raises(TypeError, match="integer array"):
        loss(lp, tg.astype(np.float64), [5, 5], [2, 2])
    with pytest.raises(ValueError, match="must not be empty"):
        loss(lp[:0], tg, [0, 0], [2, 2])
    with pytest.raises(ValueError, match="2-D or 3-D"):
        loss(lp[None], tg, [5, 5], [2, 2])
    with pytest.raises(RuntimeError, match="backward called before forward"):
        loss.backward()
    loss = nn.CTCLoss(reduction="none")
    loss(lp, tg, [5, 5], [2, 2])
    with pytest.raises(ValueError, match=r"number or of shape \(2,\)"):
        loss.backward(np.ones(3))


# --------------------------------------------------------------- EmbeddingBag
def _bag_twin(bag, **kwargs):
    return torch.nn.EmbeddingBag.from_pretrained(
        _t(bag.weight.data), freeze=False, mode=bag.mode, padding_idx=bag.padding_idx,
        include_last_offset=bag.include_last_offset, **kwargs)


def _bag_against_torch(rng, bag, x, offsets=None, psw=None, twin_kwargs=None, check_w=False):
    twin = _bag_twin(bag, **(twin_kwargs or {}))
    dtype = bag.weight.data.dtype
    tpsw = None if psw is None else _t(psw, grad=True)
    ty = twin(_t(x), None if offsets is None else _t(offsets), per_sample_weights=tpsw)
    y = bag(x, offsets, per_sample_weights=psw)
    g = rng.standard_normal(y.shape).astype(dtype)
    ty.backward(_t(g))
    grad_psw = bag.backward(g)
    assert y.shape == tuple(ty.shape) and y.dtype == dtype
    assert_close(y, ty.detach().numpy(), dtype)
    assert_close(bag.weight.grad, twin.weight.grad.numpy(), dtype, 10)
    if check_w:
        assert_close(bag.weight.data, twin.weight.detach().numpy(), dtype)
    if psw is None:
        assert grad_psw is None
    else:
        assert grad_psw.shape == psw.shape
        assert_close(grad_psw, tpsw.grad.numpy(), dtype, 10)
    return y


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("padding_idx", [None, 3])
def test_embedding_bag_matches_torch(dtype, rng, mode, padding_idx):
    """2-D bags, 1-D input with offsets (empty bags, bags of padding only, repeated
    indices), include_last_offset, and max's first-of-equal-maxima rule."""
    bag = nn.EmbeddingBag(8, 5, mode=mode, padding_idx=padding_idx, dtype=dtype)
    bag.weight.data[6] = bag.weight.data[1]   # equal rows: max picks the first
    x2 = rng.integers(0, 8, (4, 6))
    x2[0, :2] = [1, 6]
    _bag_against_torch(rng, bag, x2)
    bag.zero_grad()
    x1 = np.array([3, 3, 2, 5, 5, 5, 0, 7, 3, 1, 6, 4], np.int64)
    offsets = np.array([0, 2, 2, 6, 12], np.int64)   # [3 3] [] [2 5 5 5] [0 ... 4] []
    y = _bag_against_torch(rng, bag, x1, offsets)
    assert np.all(y[[1, 4]] == 0) and (padding_idx is None or np.all(y[0] == 0))
    bag.zero_grad()
    ilo = nn.EmbeddingBag.from_pretrained(bag.weight.data, freeze=False, mode=mode,
                                          padding_idx=padding_idx, include_last_offset=True)
    _bag_against_torch(rng, ilo, x1, np.array([0, 2, 2, 6, 12], np.int64))
    assert repr(bag) == repr(_bag_twin(bag))


def test_embedding_bag_max_nan_and_signed_zeros(dtype):
    """'max' as PyTorch's CPU loop: NaN where a bag starts with NaN, later NaNs passed
    over, the first of equal maxima kept (-0.0 before 0.0 stays -0.0), its row given the
    gradient."""
    w = np.array([[np.nan, 1.0], [2.0, np.nan], [0.0, -0.0], [-0.0, 0.0], [3.0, 5.0]], dtype)
    x, offsets = np.array([0, 1, 4, 1, 0, 4, 2, 3, 3, 2]), np.array([0, 3, 6, 8])
    bag = nn.EmbeddingBag.from_pretrained(w, freeze=False, mode="max")
    twin = _bag_twin(bag)
    y, ty = bag(x, offsets), twin(_t(x), _t(offsets))
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(np.signbit(y), np.signbit(ty.detach().numpy()))
    g = np.arange(1, 9, dtype=dtype).reshape(4, 2)
    bag.backward(g)
    ty.backward(_t(g))
    np.testing.assert_array_equal(bag.weight.grad, twin.weight.grad.numpy())


def test_embedding_bag_per_sample_weights(dtype, rng):
    """mode='sum' with per_sample_weights: the output, weight.grad and their gradient (0
    for padding), 1-D and 2-D."""
    bag = nn.EmbeddingBag(9, 4, mode="sum", padding_idx=2, dtype=dtype)
    x = np.array([1, 2, 2, 8, 4, 4, 0], np.int64)
    psw = rng.standard_normal(7).astype(dtype)
    _bag_against_torch(rng, bag, x, np.array([0, 3, 3], np.int64), psw)
    bag.zero_grad()
    x2 = rng.integers(0, 9, (3, 4))
    _bag_against_torch(rng, bag, x2, None, rng.standard_normal((3, 4)).astype(dtype))


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_max_norm(dtype, rng, mode):
    """max_norm: the rows looked up (padding's too) renormalised in place, as PyTorch's
    embedding_renorm_, for the 2- and 1-norms and the max norm."""
    for norm_type in (2.0, 1.0, np.inf):
        bag = nn.EmbeddingBag(6, 3, max_norm=1.2, norm_type=norm_type, mode=mode,
                              padding_idx=0, dtype=dtype)
        bag.weight.data[:] = rng.standard_normal((6, 3)) * 2
        x = np.array([[1, 1, 0], [3, 4, 1]])
        _bag_against_torch(rng, bag, x, twin_kwargs=dict(max_norm=1.2, norm_type=norm_type),
                           check_w=True)
        assert "max_norm=1.2" in repr(bag)


def test_embedding_bag_scale_grad_by_freq(dtype, rng):
    """Each entry's gradient divided by its index's count in input: PyTorch's CPU kernel
    agrees where every index occurs equally often; where not, its divisor is another
    index's count (pytorch/pytorch#190063) and the documented value is checked instead."""
    for mode in ("sum", "mean"):
        bag = nn.EmbeddingBag(6, 3, mode=mode, scale_grad_by_freq=True, dtype=dtype)
        _bag_against_torch(rng, bag, np.array([[1, 1, 4], [4, 3, 3]]),
                           twin_kwargs=dict(scale_grad_by_freq=True))
    bag = nn.EmbeddingBag(4, 3, mode="sum", scale_grad_by_freq=True, dtype=dtype)
    bag(np.array([1, 1, 3]), np.array([0]))
    bag.backward(np.ones((1, 3), dtype))
    np.testing.assert_array_equal(bag.weight.grad[:, 0], [0.0, 1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="max mode does not support scaling the gradient"):
        nn.EmbeddingBag(4, 3, mode="max", scale_grad_by_freq=True)


def test_embedding_bag_trailing_indices_and_sequential(dtype, rng):
    """include_last_offset with entries past the last offset: they belong to no bag, in
    every mode and dtype (the CSR rule; PyTorch 2.13's CPU kernel keeps it only in the
    float32 'sum' forward, pytorch/pytorch#191965, so that output is compared with it;
    its gradient there sends the trailing entries' rows a bag's gradient picked by
    uninitialised memory, varying from run to run). In a Sequential, 2-D bags."""
    weight = rng.standard_normal((5, 3)).astype(dtype)
    x, offsets = np.array([0, 1, 2, 4]), np.array([0, 2])
    if dtype == np.float32:
        bag = nn.EmbeddingBag.from_pretrained(weight, mode="sum", include_last_offset=True)
        twin = _bag_twin(bag)
        assert_close(bag(x, offsets), twin(_t(x), _t(offsets)).detach().numpy(), dtype)
    for mode, reduce in (("sum", np.sum), ("mean", np.mean), ("max", np.max)):
        bag = nn.EmbeddingBag.from_pretrained(weight, mode=mode, include_last_offset=True)
        assert_close(bag(x, offsets), reduce(weight[[0, 1]], axis=0)[None], dtype)
        bag.backward(np.ones((1, 3), dtype))
        assert np.all(bag.weight.grad[2:] == 0)
    model = nn.Sequential(nn.EmbeddingBag(7, 4, mode="sum", dtype=dtype),
                          nn.Linear(4, 2).to_dtype(dtype))
    x2 = rng.integers(0, 7, (5, 3))
    y = model(x2)
    expected = model[0].weight.data[x2].sum(axis=1) @ model[1].weight.data.T + model[1].bias.data
    assert_close(y, expected, dtype)
    assert model.backward(np.ones_like(y)) is None
    grad = np.zeros_like(model[0].weight.data)
    np.add.at(grad, x2.reshape(-1), np.repeat(model[1].weight.data.sum(axis=0)[None], 15, 0))
    assert_close(model[0].weight.grad, grad, dtype)


def test_embedding_bag_init_repr_and_errors():
    torch_bag = torch.nn.EmbeddingBag(6, 2, max_norm=1.0, norm_type=1.0,
                                      scale_grad_by_freq=True, padding_idx=-1)
    bag = nn.EmbeddingBag(6, 2, max_norm=1.0, norm_type=1.0, scale_grad_by_freq=True,
                          padding_idx=-1)
    assert repr(bag) == repr(torch_bag)
    assert np.all(bag.weight.data[5] == 0) and bag.weight.data.dtype == np.float32
    pretrained = nn.EmbeddingBag.from_pretrained(np.ones((4, 3)), padding_idx=1)
    assert not pretrained.weight.requires_grad and np.all(pretrained.weight.data == 1)
    assert repr(pretrained) == "EmbeddingBag(4, 3, mode='mean', padding_idx=1)"
    assert pretrained(np.array([[1, 1]])).tolist() == [[0.0, 0.0, 0.0]]
    with pytest.raises(RuntimeError, match=r"out of range \[0, 4\)") as err:   # as PyTorch's
        nn.EmbeddingBag(4, 3, mode="sum")(np.array([[-1, 0]]))
    assert isinstance(err.value, ValueError)
    x = np.array([1, 2, 3])
    with pytest.raises(ValueError, match="offsets has to be None"):
        bag(np.zeros((2, 2), np.int64), np.array([0, 1]))
    with pytest.raises(ValueError, match="offsets has to be a 1-D integer array"):
        bag(x)
    with pytest.raises(ValueError, match=r"offsets\[0\] has to be 0"):
        bag(x, np.array([1, 2]))
    with pytest.raises(ValueError, match="non-decreasing"):
        bag(x, np.array([0, 2, 1]))
    with pytest.raises(ValueError, match="can not be greater than input's length 3"):
        bag(x, np.array([0, 4]))
    with pytest.raises(ValueError, match="1-D or 2-D"):
        bag(np.zeros((1, 2, 2), np.int64))
    with pytest.raises(IndexError, match="out of range"):   # (PyTorch's, with max_norm)
        bag(np.array([[6]]))
    with pytest.raises(TypeError, match="integer indices"):
        bag(np.zeros((2, 2)))
    with pytest.raises(NotImplementedError, match="only supported for mode='sum'"):
        bag(np.array([[1]]), per_sample_weights=np.ones((1, 1), np.float32))
    with pytest.raises(ValueError, match="per_sample_weights of input's shape"):
        nn.EmbeddingBag(6, 2, mode="sum")(np.array([[1, 2]]),
                                          per_sample_weights=np.ones(2, np.float32))
    with pytest.raises(TypeError, match="dtype"):
        nn.EmbeddingBag(6, 2, mode="sum")(np.array([[1, 2]]),
                                          per_sample_weights=np.ones((1, 2)))
    with pytest.raises(ValueError, match="expected mode 'sum', 'mean' or 'max'"):
        nn.EmbeddingBag(6, 2, mode="min")
    with pytest.raises(ValueError, match="sparse=True is not supported"):
        nn.EmbeddingBag(6, 2, sparse=True)
    with pytest.raises(ValueError, match="padding_idx must be within num_embeddings"):
        nn.EmbeddingBag(6, 2, padding_idx=6)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        nn.EmbeddingBag(6, 2).backward(np.zeros((1, 2), np.float32))
    y = bag(np.zeros((3, 0), np.int64))   # empty bags (PyTorch: "step must be nonzero")
    assert y.shape == (3, 2) and np.all(y == 0)
    assert bag(x, np.zeros(0, np.int64)).shape == (0, 2)
    with pytest.raises(ValueError, match=r"grad_out of shape \(0, 2\)"):
        bag.backward(np.zeros((1, 2), np.float32))


# --------------------------------------------------------- device arrays (simulator)
_DEVICE_SCRIPT = r"""
import numpy as np
import fastnn
from fastnn import nn, device as fd

rng = np.random.default_rng(0)
def same(a, b):
    assert type(b).__name__ != "ndarray", type(b)
    np.testing.assert_allclose(fd.to_host(b), a, rtol=1e-12, atol=1e-14)

lp = np.log(rng.dirichlet(np.ones(5), size=(6, 2)))
tg = np.array([[1, 2], [3, 3]])
host, dev = nn.CTCLoss(), nn.CTCLoss()
assert host(lp, tg, [6, 5], [2, 2]) == dev(fd.to_device(lp), fd.to_device(tg), [6, 5], [2, 2])
same(host.backward(), dev.backward())

x, t = rng.standard_normal((3, 4)), np.array([[0, 1, -1, 0], [3, -1, 0, 0], [2, 1, 0, 3]])
host, dev = nn.MultiLabelMarginLoss(reduction="sum"), nn.MultiLabelMarginLoss(reduction="sum")
assert host(x, t) == dev(fd.to_device(x), fd.to_device(t))
same(host.backward(2.0), dev.backward(2.0))

for shape, labels in (((3, 4), [1, 0, 3]), ((1, 4), 2), ((4,), [2])):
    x, t = rng.standard_normal(shape), np.array(labels)
    host = nn.MultiMarginLoss(reduction="none")
    dev = nn.MultiMarginLoss(reduction="none")
    np.testing.assert_array_equal(host(x, t), fd.to_host(dev(fd.to_device(x),
                                                             fd.to_device(t))))
    g = np.full(t.shape, 2.0)
    same(host.backward(g), dev.backward(fd.to_device(g) if g.ndim else g))

xs = [rng.standard_normal((4, 3)) for _ in range(3)]
host = nn.TripletMarginWithDistanceLoss(swap=True)
dev = nn.TripletMarginWithDistanceLoss(swap=True)
assert host(*xs) == dev(*[fd.to_device(v) for v in xs])
for a, b in zip(host.backward(), dev.backward()):
    same(a, b)

fastnn.manual_seed(0)
bag = nn.EmbeddingBag(6, 3, mode="max").double()
gpu = nn.EmbeddingBag(6, 3, mode="max").double()
gpu.load_state_dict(bag.state_dict())
gpu.to("cuda")
x, off = np.array([1, 2, 3, 1, 5]), np.array([0, 2])
y = bag(x, off)
np.testing.assert_array_equal(gpu(x, off), y)        # host in, host out
same(y, gpu(fd.to_device(x), fd.to_device(off)))    # device in, device out
bag.backward(np.ones_like(y))
gpu.backward(fd.to_device(np.ones_like(y)))
same(bag.weight.grad, gpu.weight.grad)
renorm = nn.EmbeddingBag(6, 3, mode="sum", max_norm=0.5).double().to("cuda")
renorm(np.array([[1, 2]]), per_sample_weights=np.ones((1, 2)))
np.testing.assert_allclose(np.linalg.norm(fd.to_host(renorm.weight.data)[[1, 2]], axis=1),
                           0.5, rtol=1e-6)
print("device ok")
"""


@in_background(("-c", _DEVICE_SCRIPT), {"NUMBA_ENABLE_CUDASIM": "1", "FASTNN_BACKEND": "numpy"})
def test_device_arrays_under_the_cuda_simulator(background_run):
    """Device-array inputs give device-array gradients (through the host), and an
    EmbeddingBag on a GPU model keeps its weight and gradient there: Numba's CUDA
    simulator in a subprocess (NUMBA_ENABLE_CUDASIM is read when numba is imported), run
    in the background from the end of collection (tests/simulator_runs.py)."""
    pytest.importorskip("numba")
    code, output = background_run.result(timeout=120)
    assert code == 0 and "device ok" in output, output


@pytest.mark.parametrize("swap", [False, True])
def test_triplet_with_distance_gives_each_pair_to_the_distance_unbroadcast(swap):
    """PyTorch computes d(a, p) and d(a, n) on the inputs as given (the distance
    broadcasts each pair), not on all three broadcast to one shape."""
    rng = np.random.default_rng(0)
    a, p, n = rng.standard_normal((2, 1)), rng.standard_normal((2, 1)), rng.standard_normal((2, 3))
    ta, tp, tn = (torch.tensor(x, requires_grad=True) for x in (a, p, n))
    expected = torch.nn.TripletMarginWithDistanceLoss(swap=swap, reduction="none")(ta, tp, tn)
    expected.sum().backward()
    crit = nn.TripletMarginWithDistanceLoss(swap=swap, reduction="none")
    np.testing.assert_allclose(crit(a, p, n), expected.detach().numpy())
    for ours, t in zip(crit.backward(), (ta, tp, tn)):
        np.testing.assert_allclose(ours, t.grad.numpy())


def test_losses_take_pytorchs_module_idioms():
    """criterion.to(device), .cpu(), .eval(), .train(), .float(), .parameters(): a loss
    follows its input, so they return it unchanged (a bad device is still an error)."""
    crit = nn.CrossEntropyLoss()
    assert crit.to("cpu") is crit and crit.cpu() is crit and crit.to(np.float64) is crit
    assert crit.float() is crit and crit.double() is crit
    assert crit.eval() is crit and crit.training is False and crit.train().training
    assert list(crit.parameters()) == [] and list(crit.named_parameters()) == []
    with pytest.raises(ValueError, match="expected device 'cpu' or 'cuda'"):
        nn.MSELoss().to("tpu")
    logits = np.array([[1.0, 2.0, 0.5]], np.float32)
    assert crit(logits, np.array([1])) == nn.CrossEntropyLoss()(logits, np.array([1]))


def test_a_numpy_scalar_gradient_of_a_zero_dimensional_output_is_taken(rng):
    # -g of a 0-d array is a NumPy scalar: the cosine-distance recipe of
    # TripletMarginWithDistanceLoss, backward(g) = cos.backward(-g), on unbatched inputs
    anchor, positive, negative = (rng.standard_normal(3) for _ in range(3))
    batched = nn.TripletMarginWithDistanceLoss(distance_function=CosineDistance(), margin=2.0)
    single = nn.TripletMarginWithDistanceLoss(distance_function=CosineDistance(), margin=2.0)
    assert batched(anchor[None], positive[None], negative[None]) == pytest.approx(
        single(anchor, positive, negative))
    for b, s in zip(batched.backward(), single.backward()):
        np.testing.assert_allclose(b[0], s, rtol=1e-12)
    tanh = nn.Tanh()
    tanh(np.array(0.5))
    np.testing.assert_allclose(tanh.backward(np.float64(2.0)), 2 * (1 - np.tanh(0.5) ** 2))


def test_losses_over_no_features_or_classes_are_torchs():
    # KLDivLoss 'batchmean' over N > 0 samples of no features: a sum over nothing / N = 0;
    # MultiLabelSoftMarginLoss of no classes: each sample's mean over none is NaN
    for shape in ((2, 0), (3, 0, 2)):
        x = np.zeros(shape)
        expected = torch.nn.KLDivLoss(reduction="batchmean")(torch.tensor(x), torch.tensor(x))
        assert nn.KLDivLoss(reduction="batchmean")(x, x) == expected.item() == 0.0
    x, y = np.zeros((3, 0)), np.zeros((3, 0))
    for reduction in ("none", "sum", "mean"):
        expected = torch.nn.MultiLabelSoftMarginLoss(reduction=reduction)(
            torch.tensor(x), torch.tensor(y)).numpy()
        got = nn.MultiLabelSoftMarginLoss(reduction=reduction)(x, y)
        np.testing.assert_array_equal(got, expected)


def test_smoothed_cross_entropy_over_a_zero_weight_is_torchs_sum_of_quotients():
    # the counted labels' weights sum to 0: PyTorch divides its two terms by 0 one at a
    # time ((1 - eps) nll / 0 + eps / C smooth / 0: inf - inf, NaN, here)
    x = np.array([[1.0, 2.0, 0.5], [0.3, -1.0, 2.0]])
    y, w = np.array([0, 1]), np.array([1.0, -1.0, 2.0])
    for eps in (0.2, 0.0):
        expected = torch.nn.CrossEntropyLoss(weight=torch.tensor(w), label_smoothing=eps)(
            torch.tensor(x), torch.tensor(y)).item()
        got = nn.CrossEntropyLoss(weight=w, label_smoothing=eps)(x, y)
        np.testing.assert_array_equal(got, expected)


def test_empty_weights_are_taken_for_inputs_of_no_features():
    x, w = np.full((2, 0), 0.5), np.ones(0)
    for cls, key in (("BCELoss", "weight"), ("BCEWithLogitsLoss", "weight"),
                     ("BCEWithLogitsLoss", "pos_weight"),
                     ("MultiLabelSoftMarginLoss", "weight")):
        expected = getattr(torch.nn, cls)(**{key: torch.tensor(w)}, reduction="sum")(
            torch.tensor(x), torch.tensor(x)).item()
        got = getattr(nn, cls)(**{key: w}, reduction="sum")(x, x)
        np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="does not broadcast"):
        nn.BCELoss(weight=w)(np.full((2, 3), 0.5), np.full((2, 3), 0.5))


@pytest.mark.parametrize("make", [nn.CrossEntropyLoss, nn.MSELoss, nn.BCEWithLogitsLoss,
                                  lambda: nn.MultiMarginLoss(margin=0.5)],
                         ids=["ce", "mse", "bce_logits", "multi_margin"])
def test_one_loss_shared_by_threads_gives_each_its_own_gradient(make):
    """One criterion shared by threads that each train a model (PyTorch's losses keep no
    state): thread B's forward between thread A's forward and backward gave A B's
    gradient (of B's batch size, when it differed). Events force that interleaving."""
    import threading
    rng = np.random.default_rng(0)
    criterion = make()

    def batch(n):
        x = rng.standard_normal((n, 3)).astype(np.float32)
        if isinstance(criterion, (nn.CrossEntropyLoss, nn.MultiMarginLoss)):
            return x, rng.integers(0, 3, n)
        return x, rng.uniform(0, 1, (n, 3)).astype(np.float32)

    (xa, ya), (xb, yb) = batch(4), batch(6)
    expected = {}
    for name, (x, y) in (("a", (xa, ya)), ("b", (xb, yb))):
        alone = make()
        expected[name] = (alone(x, y), alone.backward())
    a_ran, b_ran, got = threading.Event(), threading.Event(), {}

    def thread_a():
        loss = criterion(xa, ya)
        a_ran.set()
        b_ran.wait(10)
        got["a"] = (loss, criterion.backward())

    def thread_b():
        a_ran.wait(10)
        loss = criterion(xb, yb)
        b_ran.set()
        got["b"] = (loss, criterion.backward())

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for name in "ab":
        assert got[name][0] == expected[name][0]
        np.testing.assert_array_equal(got[name][1], expected[name][1])
    with pytest.raises(RuntimeError, match="backward called before forward"):
        threading.Thread(target=lambda: got.update(c=criterion.backward())).run()


# ----------------------------------------------------------------- MultiMarginLoss
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("shapes", [((1, 4), ()), ((4,), ()), ((1, 4), (1,)), ((4,), (1,)),
                                    ((3, 4), (3,)), ((), ()), ((), (1,))])
def test_multi_margin_losses_take_the_targets_shape(dtype, rng, reduction, p, shapes):
    # PyTorch's 'none' losses have target's shape: (1, C) scores and a 0-d label give a 0-d
    # loss (fastnn's gave (1,)), (C,) scores and labels (1,) one of shape (1,)
    shape, target_shape = shapes
    x = np.asarray(rng.standard_normal(shape), dtype)
    t = np.asarray(rng.integers(0, shape[-1] if shape else 1, target_shape), np.int64)
    ours = nn.MultiMarginLoss(p=p, reduction=reduction)
    tx = _t(x, grad=True)
    tl = torch.nn.MultiMarginLoss(p=p, reduction=reduction)(tx, _t(t))
    loss = ours(x, t)
    g = rng.standard_normal(tuple(tl.shape)).astype(dtype) if reduction == "none" else None
    tl.backward(None if g is None else _t(g))
    grad = ours.backward(g)
    assert np.shape(loss) == tuple(tl.shape)
    assert_close(np.asarray(loss), tl.detach().numpy(), dtype)
    assert grad.shape == x.shape and grad.dtype == dtype
    assert_close(grad, tx.grad.numpy(), dtype)
    if reduction == "none":
        wrong = np.ones(tuple(tl.shape) + (1,), dtype)
        with pytest.raises(ValueError, match="expected grad of shape"):
            ours.backward(wrong)


def test_multi_margin_none_backward_keeps_its_forwards_target_shape_under_no_grad():
    loss = nn.MultiMarginLoss(reduction="none")
    x = np.array([[0.5, 1.0, -0.5]])
    loss(x, np.array(1))
    with fastnn.no_grad():
        assert loss(x, np.array([1])).shape == (1,)
    assert loss.backward(np.array(2.0)).shape == (1, 3)   # the 0-d loss's grad: ()
    with pytest.raises(ValueError, match=r"expected grad of shape \(\)"):
        loss.backward(np.array([2.0]))
