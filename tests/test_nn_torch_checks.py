"""Checks PyTorch makes that fastnn makes too, and loss gradients that are the caller's."""
import numpy as np
import pytest
import torch

from fastnn import nn


def test_bce_loss_refuses_targets_outside_0_1():
    pred, target = np.array([0.5, 0.5]), np.array([2.0, 0.0])
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        torch.nn.BCELoss()(torch.tensor(pred), torch.tensor(target))
    with pytest.raises(ValueError, match="expected target to be probabilities in"):
        nn.BCELoss().forward(pred, target)
    nn.BCELoss().forward(pred, np.array([1.0, 0.0]))   # the edges are fine


def test_batchnorm_needs_a_positive_eps_in_training_only():
    x = np.array([[1.0, 2.0], [1.0, 4.0]], np.float32)
    with pytest.raises(ValueError, match="eps must be positive"):
        torch.nn.BatchNorm1d(2, eps=0.0)(torch.tensor(x))
    with pytest.raises(ValueError, match="eps must be positive"):
        nn.BatchNorm1d(2, eps=0.0).forward(x)
    layer = nn.BatchNorm1d(2, eps=0.0)
    layer.eval()                                        # running statistics: allowed
    expected = torch.nn.BatchNorm1d(2, eps=0.0).eval()(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(layer.forward(x), expected)


def test_hardtanh_module_needs_max_above_min():
    with pytest.raises(AssertionError):
        torch.nn.Hardtanh(0.0, 0.0)
    with pytest.raises(ValueError, match="min_val < max_val"):
        nn.Hardtanh(0.0, 0.0)


@pytest.mark.parametrize("loss,pred,target", [
    (nn.MSELoss(), np.ones(3), np.zeros(3)),
    (nn.CrossEntropyLoss(), np.ones((2, 3)), np.array([0, 2])),
    (nn.BCEWithLogitsLoss(), np.ones(3), np.zeros(3))])
def test_loss_backward_returns_the_callers_array(loss, pred, target):
    loss.forward(pred, target)
    first = loss.backward()
    expected = first.copy()
    first *= 100
    second = loss.backward()
    assert second is not first
    np.testing.assert_array_equal(second, expected)
