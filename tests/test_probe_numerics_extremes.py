"""Accuracy at extreme and large inputs, against exact sums (math.fsum) and PyTorch:
long float32 reductions and saturated formulas, on every backend."""
import math

import numpy as np
import pytest

import fastnn
from fastnn import nn

BACKENDS = fastnn.backends()


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_bias_gradient_of_a_long_float32_batch_is_accurate(backend):
    # the numpy backend summed the rows of each column one by one in float32: 2^17 rows
    # of values near 1 came out 4e-6 off (PyTorch's cascade sum: 2e-7)
    rng = np.random.default_rng(0)
    n = 1 << 17
    x = rng.standard_normal((n, 2)).astype(np.float32)
    g = (1 + 0.1 * rng.standard_normal((n, 3))).astype(np.float32)
    exact = np.array([math.fsum(g[:, j].astype(np.float64).tolist()) for j in range(3)])
    with fastnn.use_backend(backend):
        layer = nn.Linear(2, 3)
        layer(x)
        layer.backward(g, need_grad_in=False)
        once = layer.bias.grad.astype(np.float64)
        layer.backward(g, need_grad_in=False)      # the accumulating path
        twice = layer.bias.grad.astype(np.float64)
    np.testing.assert_allclose(once, exact, rtol=1e-6)
    np.testing.assert_allclose(twice, 2 * exact, rtol=1e-6)
