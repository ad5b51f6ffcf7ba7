"""grid_sample with non-finite values, as PyTorch: a NaN coordinate is pixel 0 under
border and reflection padding; an inf or NaN pixel never reaches a sample taken outside
the image under zero padding."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from fastnn.nn import functional as F


def _both(image, grid, mode, padding_mode):
    ours = F.grid_sample(image, grid, mode=mode, padding_mode=padding_mode,
                         align_corners=False)
    theirs = TF.grid_sample(torch.from_numpy(image), torch.from_numpy(grid), mode=mode,
                            padding_mode=padding_mode, align_corners=False).numpy()
    return ours, theirs


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_nan_coordinates(mode, padding_mode):
    image = np.arange(1, 10, dtype=np.float32).reshape(1, 1, 3, 3)
    grid = np.array([[[[np.nan, 0.0], [0.0, 0.0]]]], np.float32)
    ours, theirs = _both(image, grid, mode, padding_mode)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_non_finite_edge_pixel_outside_samples(mode, bad):
    image = np.ones((1, 1, 3, 3), np.float64)
    image[0, 0, :, 0] = bad
    grid = np.array([[[[-2.0, 0.0], [-0.9, 0.0], [0.5, 0.5]]]])
    ours, theirs = _both(image, grid, mode, "zeros")
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_coordinates_5d(mode, padding_mode, bad):
    # 5-D input takes PyTorch's scalar kernel: a NaN clipped to the last pixel, and a
    # coordinate still not finite after padding a zero sample (not NaN)
    image = np.arange(1, 28, dtype=np.float64).reshape(1, 1, 3, 3, 3)
    grid = np.zeros((1, 1, 1, 3, 3))
    for axis in range(3):
        grid[0, 0, 0, axis, axis] = bad
    ours, theirs = _both(image, grid, mode, padding_mode)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
