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


AA_SPECS = [dict(size=(3, 2)), dict(size=(2, 5)), dict(size=(14, 6)), dict(size=(1, 1)),
            dict(scale_factor=0.5), dict(scale_factor=(0.3, 0.7)), dict(scale_factor=1.7),
            dict(scale_factor=0.5, recompute_scale_factor=True), dict(size=(8, 3))]


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("spec", AA_SPECS, ids=str)
def test_interpolate_antialias_matches_pytorch(mode, align_corners, spec, dtype):
    """antialias=True: Pillow's filters stretched when downscaling (and plain resampling
    when upscaling), each axis on its own, width first; an axis of unchanged size is
    left as it is."""
    from fastnn.nn import functional as F
    x = np.random.default_rng(1).standard_normal((2, 3, 7, 6)).astype(dtype)
    y = F.interpolate(x, mode=mode, antialias=True, align_corners=align_corners, **spec)
    want = TF.interpolate(torch.tensor(x), mode=mode, antialias=True,
                          align_corners=align_corners, **spec).numpy()
    assert y.shape == want.shape and y.dtype == want.dtype
    tol = 1e-12 if dtype == np.float64 else 5e-6
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol)


def test_interpolate_antialias_nan_reaches_only_its_taps(dtype):
    from fastnn.nn import functional as F
    x = np.random.default_rng(2).standard_normal((1, 1, 16, 16)).astype(dtype)
    x[0, 0, 3, 12] = np.nan
    y = F.interpolate(x, scale_factor=0.25, mode="bilinear", antialias=True)
    want = TF.interpolate(torch.tensor(x), scale_factor=0.25, mode="bilinear",
                          antialias=True).numpy()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    assert 0 < np.isnan(y).sum() < y.size
