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


def _long_gradient(rng, shape):
    """Values near 1 over many rows (whose float32 sum NumPy's row-by-row reduction
    along axis 0 drifts on) and the exact sums of their last axis's columns."""
    g = (1 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    rows = g.reshape(-1, shape[-1]).astype(np.float64)
    return g, np.array([math.fsum(rows[:, j].tolist()) for j in range(shape[-1])])


def test_bilinear_bias_gradient_of_a_long_float32_batch_is_accurate():
    # the host layers summed bias gradients over rows in float32 (2^17 rows: 1e-5 off,
    # PyTorch's 7e-8)
    rng = np.random.default_rng(1)
    n = 1 << 17
    g, exact = _long_gradient(rng, (n, 3))
    layer = nn.Bilinear(2, 2, 3)
    layer(rng.standard_normal((n, 2)).astype(np.float32),
          rng.standard_normal((n, 2)).astype(np.float32))
    layer.backward(g)
    np.testing.assert_allclose(layer.bias.grad, exact, rtol=1e-6)


def test_attention_output_bias_gradient_of_a_long_float32_batch_is_accurate():
    rng = np.random.default_rng(2)
    length, n, e = 16, 1 << 13, 8
    g, exact = _long_gradient(rng, (length, n, e))
    layer = nn.MultiheadAttention(e, 2)
    x = rng.standard_normal((length, n, e)).astype(np.float32)
    layer(x, x, x, need_weights=False)
    layer.backward(g)
    np.testing.assert_allclose(layer.out_proj.bias.grad, exact, rtol=1e-6)


@pytest.mark.parametrize("name", ["RNN", "GRU"])
def test_recurrent_bias_gradients_of_a_long_float32_sequence_are_accurate(name):
    # the bias sums ran in float32 over length * batch rows (2^17: 4e-6 off). With every
    # weight and bias 0 the hidden states stay 0, and an RNN's bias gradients are the
    # sums of grad_output over steps and batch, exactly known
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    length, n = 512, 256
    g, exact = _long_gradient(rng, (length, n, 4))
    layer = getattr(nn, name)(2, 4)
    twin = getattr(torch.nn, name)(2, 4)
    for p in layer.parameters():
        p.data[...] = 0
    for p in twin.parameters():
        torch.nn.init.zeros_(p)
    x = rng.standard_normal((length, n, 2)).astype(np.float32)
    layer(x)
    layer.backward(g)
    out, _ = twin(torch.from_numpy(x))
    out.backward(torch.from_numpy(g))
    for bias in ("bias_ih_l0", "bias_hh_l0"):
        want = getattr(twin, bias).grad.numpy()
        if name == "RNN":
            np.testing.assert_allclose(want, exact, rtol=1e-6)    # PyTorch's: exact too
        np.testing.assert_allclose(getattr(layer, bias).grad, want, rtol=1e-6, atol=1e-3)


def test_rms_norm_weight_gradient_of_a_long_float32_batch_is_accurate():
    # summed over the batch in float32: 2^17 rows 7e-6 off, PyTorch's 1e-7
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x = (1 + 0.1 * rng.standard_normal((1 << 17, 4))).astype(np.float32)
    g = (1 + 0.1 * rng.standard_normal((1 << 17, 4))).astype(np.float32)
    twin = torch.nn.RMSNorm(4).double()
    twin(torch.from_numpy(x).double()).backward(torch.from_numpy(g).double())
    layer = nn.RMSNorm(4)
    layer(x)
    layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad, twin.weight.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("groups", [1, 2])   # the im2col and the depthwise kernels
@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_bias_gradient_of_a_long_float32_batch_is_accurate(backend, groups):
    # numpy's kernels summed grad_out over (N, H, W) in float32: 2^17 1x1 planes 9e-6
    # off (PyTorch's 3e-6, numba and Cython 3e-8)
    rng = np.random.default_rng(5)
    n = 1 << 17
    g, exact = _long_gradient(rng, (n, 1, 1, 2))
    g = np.ascontiguousarray(g.transpose(0, 3, 1, 2))
    with fastnn.use_backend(backend):
        layer = nn.Conv2d(2, 2, 1, groups=groups)
        layer(rng.standard_normal((n, 2, 1, 1)).astype(np.float32))
        layer.backward(g, need_grad_in=False)
    np.testing.assert_allclose(layer.bias.grad, exact, rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_label_smoothing_loss_over_many_classes_is_accurate(backend):
    # numba's probability-target kernel summed t and t (x - m) in float32: with label
    # smoothing's eps / C over 2^17 classes the loss came out 1.5e-5 off (PyTorch 3e-8)
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    c = 1 << 17
    x = (0.01 * rng.standard_normal((4, c))).astype(np.float32)
    y = rng.integers(0, c, 4)
    want = torch.nn.functional.cross_entropy(torch.from_numpy(x).double(), torch.from_numpy(y),
                                              label_smoothing=0.1).item()
    with fastnn.use_backend(backend):
        got = nn.CrossEntropyLoss(label_smoothing=0.1)(x, y)
    assert abs(got - want) <= 5e-7 * want
