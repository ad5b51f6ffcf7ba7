"""Max pooling whose window is wider than its output row (global and adaptive pools to a
few columns) runs a per-output scan in the Cython kernel: values and indices against
PyTorch on every backend, with padding, dilation, ceil_mode, ties and NaNs."""
import numpy as np
import pytest
import torch

from fastnn import nn

CASES = [  # input shape, kernel, stride, padding, dilation, ceil_mode
    ((2, 3, 16, 16), 16, 16, 0, 1, False), ((2, 3, 9, 9), 5, 4, 2, 1, False),
    ((1, 2, 7, 11), (3, 6), (2, 5), (1, 3), 1, True), ((1, 2, 8, 10), (2, 4), 3, 1, 2, False),
    ((2, 1, 5, 12), (1, 7), (1, 5), (0, 3), (1, 2), True)]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_wide_windows_match_torch_values_and_indices(backend, dtype, case):
    shape, kernel, stride, padding, dilation, ceil_mode = case
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, shape).astype(dtype)   # ties
    x.reshape(-1)[::17] = np.nan
    layer = nn.MaxPool2d(kernel, stride, padding, dilation, return_indices=True,
                         ceil_mode=ceil_mode)
    y, idx = layer(x)
    ty, tidx = torch.nn.functional.max_pool2d(torch.tensor(x), kernel, stride, padding,
                                              dilation, ceil_mode, return_indices=True)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    g = rng.standard_normal(y.shape).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(tx, kernel, stride, padding, dilation,
                                   ceil_mode).backward(torch.tensor(g))
    np.testing.assert_allclose(layer.backward(g), tx.grad.numpy(), rtol=1e-6)


def test_global_max_pool_matches_torch(backend):
    x = np.random.default_rng(1).standard_normal((4, 5, 6, 7)).astype(np.float32)
    y = nn.AdaptiveMaxPool2d(1)(x)
    np.testing.assert_array_equal(y, torch.nn.AdaptiveMaxPool2d(1)(torch.tensor(x)).numpy())
