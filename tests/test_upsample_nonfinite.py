"""Upsample / interpolate with one NaN or inf pixel: only the outputs whose taps read it
are non-finite, forward and backward, as PyTorch's (a dense interpolation matrix made
the whole plane NaN)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from fastnn import nn

CASES = [("bilinear", 2, None), ("bicubic", 2, None), ("nearest", 2, None),
         ("area", None, (5, 5)), ("bilinear", None, (8, 11)), ("bicubic", None, (6, 8))]


@pytest.mark.parametrize("mode,factor,size", CASES)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_one_bad_pixel(mode, factor, size, bad, dtype):
    x = np.random.default_rng(0).standard_normal((1, 2, 8, 8)).astype(dtype)
    x[0, 1, 3, 4] = bad
    layer = nn.Upsample(size=size, scale_factor=factor, mode=mode)
    y = layer(x)
    tx = torch.tensor(x, requires_grad=True)
    kwargs = {} if mode in ("nearest", "area") else {"align_corners": False}
    ty = TF.interpolate(tx, size=size, scale_factor=factor, mode=mode, **kwargs)
    np.testing.assert_array_equal(np.isfinite(y), np.isfinite(ty.detach().numpy()))
    np.testing.assert_allclose(y[np.isfinite(y)], ty.detach().numpy()[np.isfinite(y)],
                               rtol=1e-5, atol=1e-5)
    g = np.ones_like(y)
    g[0, 0, 1, 2] = bad
    grad = layer.backward(g)
    ty.backward(torch.tensor(g))
    want = tx.grad.numpy()
    np.testing.assert_array_equal(np.isfinite(grad), np.isfinite(want))
    np.testing.assert_allclose(grad[np.isfinite(grad)], want[np.isfinite(want)], rtol=1e-5,
                               atol=1e-5)
