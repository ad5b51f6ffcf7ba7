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


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("options", ["weight", "pos_weight"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_bce_with_logits_gradient_of_saturated_logits(backend, options, dtype):
    # with a weight or pos_weight the gradient was (1 - y) - L sigmoid(-x): for y = 0
    # and x far below 0 that is 1 - (1 - sigmoid(x)), 0 in float32 from x = -17 on
    # (PyTorch: sigmoid(x), exact); for y = 1 and x far above 0 it keeps -p sigmoid(-x)
    torch = pytest.importorskip("torch")
    x = np.array([-10, -20, -40, -80, 10, 20, 40, 80, -3, 3], dtype)
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0.25, 0.75], dtype)
    factor = np.linspace(0.5, 2, x.size).astype(dtype)
    kwargs = {options: factor}
    xd, yd = x.astype(np.float64), y.astype(np.float64)
    p = factor.astype(np.float64) if options == "pos_weight" else 1.0
    w = factor.astype(np.float64) if options == "weight" else 1.0
    exact = w * ((1 - yd) / (1 + np.exp(-xd)) - p * yd / (1 + np.exp(xd))) / x.size
    xt = torch.from_numpy(x).requires_grad_()
    factors = {k: torch.from_numpy(v) for k, v in kwargs.items()}
    torch.nn.functional.binary_cross_entropy_with_logits(
        xt, torch.from_numpy(y), **factors).backward()
    with fastnn.use_backend(backend):
        loss = nn.BCEWithLogitsLoss(**kwargs)
        loss(x, y)
        grad = loss.backward()
    np.testing.assert_allclose(grad, exact, rtol=2e-6 if dtype == np.float32 else 1e-13)
    # where PyTorch's own form is exact (y = 0: sigmoid(x) times the weight), the same
    np.testing.assert_allclose(grad[:4], xt.grad.numpy()[:4], rtol=2e-6)


@pytest.mark.parametrize("n", [7, 40000])   # the serial and the parallel update
@pytest.mark.parametrize("backend", BACKENDS)
def test_adadelta_steps_with_huge_float32_gradients(backend, n):
    # the compiled updates took sqrt((acc + eps) / (v + eps)) in float32: from
    # gradients of about 3e16 that ratio is subnormal, flushed to 0, and the parameters
    # stopped moving where PyTorch's (and numpy's) step on
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(n).astype(np.float32)
    sign = rng.choice([-1, 1], n)
    grads = [(sign * rng.uniform(1e17, 1e19, n)).astype(np.float32) for _ in range(3)]
    param = nn.Parameter(p0.copy())
    twin = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    theirs = torch.optim.Adadelta([twin], lr=1.0)
    with fastnn.use_backend(backend):
        ours = fastnn.optim.Adadelta([param], lr=1.0)
        for g in grads:
            param.grad, twin.grad = g.copy(), torch.from_numpy(g.copy())
            ours.step()
            theirs.step()
    want = twin.detach().numpy()
    assert np.all(np.abs(want - p0) > 1e-3)          # PyTorch's parameters moved
    np.testing.assert_allclose(param.data, want, rtol=1e-5, atol=1e-6)
