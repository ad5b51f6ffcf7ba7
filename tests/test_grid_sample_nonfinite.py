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
