"""Functional normalisations on empty inputs, as PyTorch: an empty output of the input's
shape, running statistics untouched (they raised, or failed to reshape)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from fastnn.nn import functional as F


@pytest.mark.parametrize("shape", [(0, 4), (0, 4, 3), (0, 4, 3, 3)])
def test_group_norm(shape):
    x = np.zeros(shape, np.float32)
    w, b = np.ones(4, np.float32), np.zeros(4, np.float32)
    y = F.group_norm(x, 2, w, b)
    assert y.shape == tuple(TF.group_norm(torch.tensor(x), 2, torch.tensor(w),
                                          torch.tensor(b)).shape)


@pytest.mark.parametrize("shape", [(0, 4), (0, 4, 3), (2, 4, 0)])
def test_batch_norm_training(shape):
    x = np.zeros(shape, np.float32)
    mean, var = np.full(4, 0.5, np.float32), np.full(4, 2.0, np.float32)
    tmean, tvar = torch.tensor(mean), torch.tensor(var)
    y = F.batch_norm(x, mean, var, training=True)
    ty = TF.batch_norm(torch.tensor(x), tmean, tvar, training=True)
    assert y.shape == tuple(ty.shape)
    np.testing.assert_array_equal(mean, tmean.numpy())
    np.testing.assert_array_equal(var, tvar.numpy())


def test_instance_norm_and_one_value_still_refused():
    assert F.instance_norm(np.zeros((0, 4, 3), np.float32)).shape == (0, 4, 3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(np.zeros((1, 4), np.float32), np.zeros(4, np.float32),
                     np.ones(4, np.float32), training=True)
