"""Arguments PyTorch 2.13 takes that fastnn refused (a constructor-argument fuzz found
them): integer targets of the regression and margin losses, constant pads of any rank,
TripletMarginLoss with any norm order, Softplus with beta <= 0. Each now gives
PyTorch's values and gradients."""
import warnings

import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn

BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.backends()]
RNG = np.random.default_rng(0)
PRED = RNG.uniform(0.1, 0.9, (4, 3))
SIGNS = np.where(RNG.integers(0, 2, (4, 3)) == 0, -1, 1)
COUNTS = RNG.integers(0, 3, (4, 3))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,target", [
    ("MSELoss", COUNTS), ("L1Loss", COUNTS), ("SmoothL1Loss", SIGNS), ("HuberLoss", SIGNS),
    ("SoftMarginLoss", SIGNS), ("HingeEmbeddingLoss", SIGNS),
    ("MultiLabelSoftMarginLoss", COUNTS.clip(0, 1)), ("PoissonNLLLoss", COUNTS)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_integer_targets_are_taken_as_pred_dtype(backend, name, target, reduction, dtype):
    with fastnn.use_backend(backend):
        loss = getattr(nn, name)(reduction=reduction)
        value = loss(PRED.astype(dtype), target)
        grad = loss.backward() if reduction != "none" else loss.backward(np.ones_like(value))
    pt = torch.tensor(PRED.astype(dtype), requires_grad=True)
    # (PyTorch's forward takes the integer target; a float one for its backward, which
    # refuses an integer target for HuberLoss)
    tv = getattr(torch.nn, name)(reduction=reduction)(pt, torch.tensor(target.astype(dtype)))
    tv.backward(torch.ones_like(tv))
    assert grad.dtype == dtype
    np.testing.assert_allclose(value, tv.detach().numpy(), rtol=1e-5)
    np.testing.assert_allclose(grad, pt.grad.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("cls,dims", [("ZeroPad1d", 1), ("ConstantPad1d", 1),
                                      ("ZeroPad2d", 2), ("ConstantPad3d", 3)])
@pytest.mark.parametrize("extra", [0, 3])
def test_constant_pads_take_any_rank_from_their_own(cls, dims, extra):
    shape = (2,) * extra + (3,) * dims
    pad = tuple(range(-1, 2 * dims - 1))
    args = (pad,) if "Zero" in cls else (pad, 1.5)
    x = RNG.standard_normal(shape)
    m = getattr(nn, cls)(*args)
    y = m(x)
    g = RNG.standard_normal(y.shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = getattr(torch.nn, cls)(*args)(xt)
    yt.backward(torch.tensor(g))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(m.backward(g), xt.grad.numpy())


@pytest.mark.parametrize("p", [0.5, 0.0, -1.0, float("inf"), 3.0])
@pytest.mark.parametrize("swap", [False, True])
def test_triplet_margin_loss_takes_any_norm_order(p, swap):
    a, pos, neg = (RNG.standard_normal((5, 4)) for _ in range(3))
    pos[1, 2] = a[1, 2] - 1e-6  # an entry of 0 in a - p + eps
    loss = nn.TripletMarginLoss(p=p, swap=swap)
    value = loss(a, pos, neg)
    grads = loss.backward()
    ts = [torch.tensor(v, requires_grad=True) for v in (a, pos, neg)]
    tv = torch.nn.TripletMarginLoss(p=p, swap=swap)(*ts)
    if tv.grad_fn is not None:
        tv.backward()
    np.testing.assert_allclose(value, tv.item(), rtol=1e-12)
    for g, t in zip(grads, ts):
        expected = t.grad.numpy() if t.grad is not None else np.zeros_like(g)  # p = 0
        np.testing.assert_allclose(g, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("beta", [-2.0, -0.5, 0.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softplus_takes_a_beta_of_zero_or_below(backend, beta, dtype):
    x = np.array([-50.0, -30.0, -5.0, -1.0, -0.0, 0.3, 2.0, 25.0, 60.0], dtype)
    with fastnn.use_backend(backend), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (beta 0: log 2 / 0)
        m = nn.Softplus(beta, 1.0)
        y = m(x)
        g = m.backward(np.ones_like(y))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.Softplus(beta, 1.0)(xt)
    yt.sum().backward()
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5)
    # (float32 sigmoid's floor of 1 / (1 + e**88) = 6e-39 where PyTorch's is 0)
    np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-5, atol=1e-37)


@pytest.mark.parametrize("name,functional", [
    ("MSELoss", "mse_loss"), ("L1Loss", "l1_loss"), ("SmoothL1Loss", "smooth_l1_loss"),
    ("HuberLoss", "huber_loss"), ("SoftMarginLoss", "soft_margin_loss"),
    ("HingeEmbeddingLoss", "hinge_embedding_loss"), ("PoissonNLLLoss", "poisson_nll_loss"),
    ("MultiLabelSoftMarginLoss", "multilabel_soft_margin_loss")])
def test_bool_targets_are_taken_where_torch_takes_them(name, functional):
    """A bool target is cast to pred's dtype where PyTorch's loss takes one, and refused
    where PyTorch's refuses it (L1 and multilabel soft margin, whose formulas subtract
    from the target: a RuntimeError there, fastnn's DtypeError). Both took it before (the
    coverage audit of 6 Dec 2026)."""
    target = COUNTS.clip(0, 1).astype(bool)
    try:
        expected = getattr(torch.nn, name)()(torch.tensor(PRED), torch.tensor(target)).item()
    except RuntimeError:
        expected = None
    assert (expected is None) == (name in ("L1Loss", "MultiLabelSoftMarginLoss"))
    for call in (lambda: getattr(nn, name)()(PRED, target),
                 lambda: getattr(nn.functional, functional)(PRED, target)):
        if expected is None:
            with pytest.raises(RuntimeError, match="expected target of dtype float32 or "
                                                   "float64, got bool"):
                call()
        else:
            assert call() == pytest.approx(expected, rel=1e-12)
