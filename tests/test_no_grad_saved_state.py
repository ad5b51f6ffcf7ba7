"""A forward under fastnn.no_grad() never changes what the next backward computes.

Losses: a validation loss taken between a training forward and its backward leaves the
gradient backward hands out as it was (PyTorch's loss tensor from before keeps its
graph). Layers with a forward of their own (two inputs, a target, attention): the
backward after a no_grad forward raises, as every layer's does, instead of mixing that
call's inputs into the gradient of the earlier forward."""
import numpy as np
import pytest

import fastnn
from fastnn import nn


def _loss_cases(rng):
    n, c = 4, 3
    x1, x2 = rng.random((n, c)), rng.random((n, c))
    labels = np.array([0, 1, 2, 0])
    signs, row_signs = np.sign(rng.standard_normal((n, c))), np.array([1.0, -1.0, 1.0, -1.0])
    binary = (x2 > 0.5) * 1.0
    return {
        "MSELoss": (x1, x2), "L1Loss": (x1, x2), "SmoothL1Loss": (x1, x2),
        "HuberLoss": (x1, x2), "BCELoss": (x1 * 0.5, binary),
        "BCEWithLogitsLoss": (x1, binary), "CrossEntropyLoss": (x1, labels),
        "NLLLoss": (np.log(x1), labels), "KLDivLoss": (np.log(x1), x2),
        "PoissonNLLLoss": (x1, x2), "GaussianNLLLoss": (x1, x2, x2 + 0.1),
        "SoftMarginLoss": (x1, signs), "MultiLabelSoftMarginLoss": (x1, binary),
        "MultiMarginLoss": (x1, labels), "HingeEmbeddingLoss": (x1, signs),
        "CosineEmbeddingLoss": (x1, x2, row_signs),
        "MarginRankingLoss": (x1[:, 0].copy(), x2[:, 0].copy(), row_signs),
        "TripletMarginLoss": (x1, x2, x2[::-1].copy()),
        "MultiLabelMarginLoss": (x1, np.array([[0, -1, 0]] * n)),
    }


def _as_list(grads):
    return [np.array(g, copy=True) for g in (grads if isinstance(grads, tuple) else (grads,))]


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", sorted(_loss_cases(np.random.default_rng(0))))
def test_no_grad_loss_keeps_the_last_gradient(name, reduction, rng):
    args = _loss_cases(rng)[name]
    other = (args[0] * 0.9 + 0.05,) + args[1:]   # a second batch: another gradient
    criterion = getattr(nn, name)(reduction=reduction)
    value = criterion(*args)
    expected = _as_list(criterion.backward())
    criterion(*args)
    with fastnn.no_grad():
        other_value = criterion(*other)
    assert other_value != value
    for got, want in zip(_as_list(criterion.backward()), expected):
        np.testing.assert_array_equal(got, want)
    # and the no_grad call's value is the one a forward with gradients gives
    assert criterion(*other) == other_value


def test_no_grad_loss_before_any_forward_has_no_gradient(rng):
    criterion = nn.CrossEntropyLoss()
    with fastnn.no_grad():
        criterion(rng.standard_normal((4, 3)), np.array([0, 1, 2, 0]))
    with pytest.raises(RuntimeError, match="before forward"):
        criterion.backward()


def test_class_losses_keep_their_layout_under_no_grad(rng):
    """(N, C, d) predictions: the layout backward moves the gradient back with is the
    training forward's, not the no_grad call's (N, C)."""
    criterion = nn.CrossEntropyLoss(ignore_index=1)
    pred, labels = rng.standard_normal((2, 3, 5)), rng.integers(0, 3, (2, 5))
    criterion(pred, labels)
    expected = criterion.backward()
    criterion(pred, labels)
    with fastnn.no_grad():
        criterion(rng.standard_normal((4, 3)), np.array([0, 1, 2, 0]))
    np.testing.assert_array_equal(criterion.backward(), expected)


def _modules(rng):
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    labels = np.array([0, 1, 2, 0])
    return {
        "Bilinear": (lambda: nn.Bilinear(3, 3, 2, dtype=np.float64), (a, a), (b, b),
                     (rng.standard_normal((4, 2)),)),
        "CosineSimilarity": (nn.CosineSimilarity, (a, b), (b, a), (rng.standard_normal(4),)),
        "PairwiseDistance": (nn.PairwiseDistance, (a, b), (b, a), (rng.standard_normal(4),)),
        "AdaptiveLogSoftmaxWithLoss": (
            lambda: nn.AdaptiveLogSoftmaxWithLoss(3, 6, [2, 4], dtype=np.float64),
            (a, labels), (b, labels), ()),
        "LinearCrossEntropyLoss": (
            lambda: nn.LinearCrossEntropyLoss(3, 3, dtype=np.float64), (a, labels),
            (b, labels), ()),
        "MultiheadAttention": (
            lambda: nn.MultiheadAttention(3, 1, dtype=np.float64), (a, a, a), (b, b, b),
            (rng.standard_normal((4, 3)),)),
        "EmbeddingBag": (lambda: nn.EmbeddingBag(5, 3, dtype=np.float64),
                         (np.array([[0, 1]]),), (np.array([[2, 3]]),), (np.ones((1, 3)),)),
        "LSTM": (lambda: nn.LSTM(3, 2, dtype=np.float64), (a[:, None],), (b[:, None],),
                 (rng.standard_normal((4, 1, 2)),)),
    }


@pytest.mark.parametrize("name", sorted(_modules(np.random.default_rng(0))))
def test_backward_after_no_grad_forward_raises(name, rng):
    make, inputs, other, grads = _modules(rng)[name]
    module = make()
    module(*inputs)
    before = [p.grad.copy() for p in module.parameters()]
    with fastnn.no_grad():
        module(*other)
    with pytest.raises(RuntimeError, match="gradients disabled"):
        module.backward(*grads)
    for p, grad in zip(module.parameters(), before):
        np.testing.assert_array_equal(p.grad, grad)
    module(*inputs)   # a forward with gradients enabled serves backward again
    module.backward(*grads)


@pytest.mark.parametrize("name", ["Bilinear", "CosineSimilarity", "PairwiseDistance"])
def test_two_input_modules_check_grad_out_dtype(name, rng):
    make, inputs, _, grads = _modules(rng)[name]
    module = make()
    module(*inputs)
    with pytest.raises(TypeError, match="grad_out"):
        module.backward(grads[0].astype(np.float32))
    with pytest.raises(TypeError, match="grad_out"):
        module.backward(grads[0].tolist())


def test_failed_two_input_forward_leaves_the_last_backward_intact(rng):
    """CosineSimilarity's dim checked after its inputs: the refused call's shapes must
    not reach the backward of the forward before it."""
    module = nn.CosineSimilarity(dim=1)
    x1, x2 = rng.standard_normal((4, 3)), rng.standard_normal((1, 3))   # x2 broadcast
    g = rng.standard_normal(4)
    module(x1, x2)
    expected = [a.copy() for a in module.backward(g)]
    module(x1, x2)
    with pytest.raises(ValueError, match="dim"):
        module(rng.standard_normal((5,)), rng.standard_normal((5,)))   # dim 1 of 1-D
    for got, want in zip(module.backward(g), expected):
        np.testing.assert_array_equal(got, want)


def test_a_loss_shared_by_threads_under_no_grad_keeps_working(rng):
    """Four threads computing one shared loss under no_grad: each call returns the loss
    (a restore of the whole state had let one thread wipe another's attributes)."""
    import sys
    import threading
    criterion = nn.CrossEntropyLoss()
    x, labels = rng.standard_normal((8, 4)), np.arange(8) % 4
    expected = criterion(x, labels)
    gradient = criterion.backward()
    errors, values = [], []

    def work():
        try:
            for _ in range(300):
                with fastnn.no_grad():
                    values.append(criterion(x, labels))
        except Exception as exc:   # noqa: BLE001 (reported below)
            errors.append(exc)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors
    assert len(values) == 1200 and all(v == expected for v in values)
    np.testing.assert_array_equal(criterion.backward(), gradient)


def test_a_loss_subclass_keeps_its_own_attributes_under_no_grad():
    """Only the loss's saved gradient state is put back: a subclass's own (public)
    attributes stay as its forward set them, as in PyTorch."""
    class Counting(nn.MSELoss):
        def __init__(self):
            super().__init__()
            self.calls, self.last = 0, None

        def forward(self, pred, target):
            self.calls += 1
            self.last = super().forward(pred, target)
            return self.last
    criterion = Counting()
    criterion(np.ones(3), np.zeros(3))
    gradient = criterion.backward()
    with fastnn.no_grad():
        criterion(2 * np.ones(3), np.zeros(3))
    assert criterion.calls == 2 and criterion.last == 4.0
    np.testing.assert_array_equal(criterion.backward(), gradient)


def test_triplet_loss_backward_runs_under_no_grad(rng):
    """Its backward runs the distance's forward again: under no_grad too (as PyTorch's
    loss.backward() inside torch.no_grad())."""
    anchor, positive, negative = (rng.standard_normal((4, 3)) for _ in range(3))
    criterion = nn.TripletMarginWithDistanceLoss()
    criterion(anchor, positive, negative)
    expected = criterion.backward()
    with fastnn.no_grad():
        got = criterion.backward()
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
