"""Hardshrink / Softshrink at NaN: the value stays NaN and the gradient passes, as
PyTorch's backward (0 only inside [-lambd, lambd])."""
import numpy as np
import pytest
import torch

from fastnn import nn


@pytest.mark.parametrize("name", ["Hardshrink", "Softshrink"])
def test_nan_and_band_edges_as_pytorch(backend, dtype, name):
    x = np.array([np.nan, 0.2, -0.5, 0.5, 2.0, -3.0, np.inf], dtype)
    g = np.arange(1, 8, dtype=dtype)
    layer = getattr(nn, name)(0.5)
    y = layer(x)
    grad = layer.backward(g)
    tx = torch.tensor(x, requires_grad=True)
    ty = getattr(torch.nn, name)(0.5)(tx)
    ty.backward(torch.tensor(g))
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(grad, tx.grad.numpy())
