"""Dilated convolutions read only their taps: an inf or NaN input the dilated kernel
skips reaches no output, with a stride too (Conv1d/Conv2d layers, forward and backward,
and functional conv), as PyTorch's; values as PyTorch's elsewhere."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import fastnn
from fastnn import nn
from fastnn.nn import functional as F

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf and NaN in products

GEOMETRIES = [dict(kernel_size=3, dilation=2, stride=2),
              dict(kernel_size=3, dilation=2, stride=1),
              dict(kernel_size=(3, 2), dilation=(2, 1), stride=(2, 1), padding=1),
              dict(kernel_size=3, dilation=3, stride=2, groups=2, padding=2,
                   padding_mode="reflect")]


def _twins(layer_kwargs, dtype):
    fastnn.manual_seed(0)
    ours = nn.Conv2d(4, 6, **layer_kwargs).to(dtype)
    theirs = torch.nn.Conv2d(4, 6, **layer_kwargs).to(torch.float64 if dtype == np.float64
                                                       else torch.float32)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.weight.data))
        theirs.bias.copy_(torch.from_numpy(ours.bias.data))
    return ours, theirs


@pytest.mark.parametrize("kwargs", GEOMETRIES)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_conv2d_skipped_pixels(backend, dtype, kwargs, bad):
    x = np.random.default_rng(1).standard_normal((2, 4, 9, 10)).astype(dtype)
    x[:, :, 1, 1] = bad     # between the taps of the first windows
    ours, theirs = _twins(kwargs, dtype)
    y = ours(x)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    want = ty.detach().numpy()
    np.testing.assert_array_equal(np.isfinite(y), np.isfinite(want))
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(y[np.isfinite(y)], want[np.isfinite(want)], rtol=tol, atol=tol)
    g = np.random.default_rng(2).standard_normal(y.shape).astype(dtype)
    grad = ours.backward(g)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=tol, atol=tol)
    finite = np.isfinite(theirs.weight.grad.numpy())
    np.testing.assert_array_equal(np.isfinite(ours.weight.grad), finite)
    np.testing.assert_allclose(ours.weight.grad[finite], theirs.weight.grad.numpy()[finite],
                               rtol=tol, atol=tol)


@pytest.mark.parametrize("stride", [1, 2])
def test_conv1d_and_functional(stride):
    x = np.random.default_rng(3).standard_normal((1, 2, 11)).astype(np.float32)
    x[0, 0, 1] = np.inf
    w = np.random.default_rng(4).standard_normal((3, 2, 3)).astype(np.float32)
    want = TF.conv1d(torch.from_numpy(x), torch.from_numpy(w), stride=stride,
                     dilation=2).numpy()
    np.testing.assert_allclose(F.conv1d(x, w, stride=stride, dilation=2), want, rtol=1e-5,
                               atol=1e-5)
    x2 = np.random.default_rng(5).standard_normal((1, 2, 7, 7)).astype(np.float32)
    x2[0, 1, 1, 1] = np.nan
    w2 = np.random.default_rng(6).standard_normal((2, 1, 2, 2)).astype(np.float32)
    want2 = TF.conv2d(torch.from_numpy(x2), torch.from_numpy(w2), stride=stride, dilation=2,
                      groups=2).numpy()
    got2 = F.conv2d(x2, w2, stride=stride, dilation=2, groups=2)
    np.testing.assert_array_equal(np.isnan(got2), np.isnan(want2))
    np.testing.assert_allclose(got2[~np.isnan(got2)], want2[~np.isnan(want2)], rtol=1e-5,
                               atol=1e-5)
