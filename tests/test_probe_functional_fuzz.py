"""Found by fuzzing fastnn.nn.functional against torch.nn.functional 2.13 (random inputs
and options, float32 and float64, every backend): results that must be arrays of
PyTorch's shape even for 0-d inputs."""
import numpy as np
import pytest

import fastnn.nn.functional as F

import torch  # noqa: E402  (after fastnn)
import torch.nn.functional as TF  # noqa: E402


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
                                  "binary_cross_entropy", "binary_cross_entropy_with_logits",
                                  "soft_margin_loss", "poisson_nll_loss"])
def test_unreduced_loss_of_0d_inputs_is_a_0d_array(name, dtype):
    x, t = np.array(0.25, dtype), np.array(1.0, dtype)
    expected = getattr(TF, name)(torch.tensor(x), torch.tensor(t), reduction="none")
    ours = getattr(F, name)(x, t, reduction="none")
    assert isinstance(ours, np.ndarray) and ours.shape == () and ours.dtype == dtype
    np.testing.assert_allclose(ours, expected.numpy(), rtol=1e-6)


@pytest.mark.parametrize("alpha", [-np.inf, -2.0, -1e-30])
def test_celu_of_a_negative_alpha_keeps_zeros(dtype, alpha):
    x = np.array([0.0, -0.0, -1e-30, 1e-30, -1.0, 2.0, np.nan], dtype)
    expected = TF.celu(torch.tensor(x), alpha).numpy()
    for ours in (F.celu(x, alpha), F.celu_(x.copy(), alpha)):
        np.testing.assert_array_equal(ours, expected)
        np.testing.assert_array_equal(np.signbit(ours), np.signbit(expected))
