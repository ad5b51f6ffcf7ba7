"""A forward that is refused leaves what the last good forward kept for backward: its
backward still gives that forward's gradients (PyTorch: the earlier graph still
backpropagates), or, where layers already ran the failed call, is refused before any
gradient changes, with a message saying why."""
import numpy as np
import pytest

import fastnn
from fastnn import models, nn


def _multitask_run(bad_inputs, x, y_a, y_b):
    fastnn.random.manual_seed(3)
    model = models.MultiTaskNet(4, 7, 5, 3, dropout=0.2).double()
    loss = models.MultiTaskLoss()
    a, logits = model.forward(x)
    loss.forward(a, logits, y_a, y_b)
    for bad in bad_inputs:
        with pytest.raises((ValueError, TypeError)):
            model.forward(bad)
    grad_x = model.backward(*loss.backward())
    return grad_x, [p.grad.copy() for p in model.parameters()]


def test_multitask_refused_forward_keeps_the_last_forwards_backward(rng):
    x = rng.standard_normal((6, 4))
    y_a, y_b = rng.standard_normal((6, 5)), rng.integers(0, 3, 6)
    # a batch of one reaches the training-mode BatchNorm only after the task-A layers and
    # FC1B would have run; a wrong width, float32 and integer inputs are refused too
    bad = [x[:1], x[:, :3], x.astype(np.float32), x.astype(np.int64)]
    expected_x, expected = _multitask_run([], x, y_a, y_b)
    got_x, got = _multitask_run(bad, x, y_a, y_b)
    np.testing.assert_array_equal(got_x, expected_x)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


def test_multitask_layer_run_alone_refuses_backward_before_any_gradient(rng):
    x = rng.standard_normal((6, 4))
    model = models.MultiTaskNet(4, 7, 5, 3).double()
    loss = models.MultiTaskLoss()
    a, logits = model.forward(x)
    loss.forward(a, logits, rng.standard_normal((6, 5)), rng.integers(0, 3, 6))
    model.fc1b(x[:3])
    with pytest.raises(RuntimeError, match="layer fc1b .* ran a forward of its own"):
        model.backward(*loss.backward())
    for p in model.parameters():
        assert p.grad is None or not p.grad.any()


class _Narrowing(nn.Module):
    """A user module with a forward and backward of its own; narrow: a bad output."""
    narrow = False

    def forward(self, x):
        return x[:, :3] if self.narrow else x * 0.5

    def backward(self, grad_out):
        return grad_out * 0.5


def test_sequential_failed_part_way_says_so_at_backward(rng):
    x, y = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)
    user = _Narrowing()
    model = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU(), user,
                          nn.Linear(6, 3)).double()
    loss = nn.CrossEntropyLoss()
    loss.forward(model.forward(x), y)
    user.narrow = True
    with pytest.raises(ValueError, match="Sequential layer 4"):
        model.forward(x)
    user.narrow = False
    with pytest.raises(RuntimeError, match="failed part-way .*ValueError.*forward again"):
        model.backward(loss.backward())
    for p in model.parameters():
        assert p.grad is None or not p.grad.any()
    loss.forward(model.forward(x), y)   # a good forward clears it
    model.backward(loss.backward())

