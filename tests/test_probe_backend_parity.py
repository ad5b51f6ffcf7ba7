"""One fix, every path: a defect fixed in one backend or layer checked (and fixed) in the
others (numpy, numba, Cython; the layer and the functional API; float32 and float64)."""
import math

import numpy as np
import pytest

import fastnn
from fastnn import nn

BACKENDS = fastnn.backends()


def _long_gradient(rng, shape):
    """float32 values near 1 of shape (N, C, 1...) and their exact float64 sums per C."""
    g = (1 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    rows = np.moveaxis(g, 1, -1).reshape(-1, shape[1]).astype(np.float64)
    return g, np.array([math.fsum(rows[:, j].tolist()) for j in range(shape[1])])


@pytest.mark.parametrize("make, spatial", [
    (lambda: nn.Conv3d(2, 2, 1), 3),
    (lambda: nn.Conv2d(2, 2, 1, stride=2, dilation=2), 2),   # strided dilation: conv3d's taps
    (lambda: nn.ConvTranspose1d(2, 2, 1), 1),
    (lambda: nn.ConvTranspose2d(2, 2, 1), 2),
    (lambda: nn.ConvTranspose3d(2, 2, 1), 3),
], ids=["Conv3d", "Conv2d-tapped", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_bias_gradients_of_a_long_float32_batch_are_accurate(backend, make, spatial):
    # Conv2d's kernels sum the bias in float64 (ce9530e); these layers' host code summed
    # grad_out over the batch in float32: 2^17 1x1 planes 5e-6 to 1e-5 off (PyTorch's
    # Conv3d 1.5e-6, its transposed convolutions as far off as fastnn's were)
    rng = np.random.default_rng(0)
    n = 1 << 17
    g, exact = _long_gradient(rng, (n, 2) + (1,) * spatial)
    with fastnn.use_backend(backend):
        layer = make()
        layer(rng.standard_normal((n, 2) + (1,) * spatial).astype(np.float32))
        layer.backward(g, need_grad_in=False)
        once = layer.bias.grad.astype(np.float64)
        layer.backward(g, need_grad_in=False)
    np.testing.assert_allclose(once, exact, rtol=1e-6)
    np.testing.assert_allclose(layer.bias.grad, 2 * exact, rtol=1e-6)


def test_bilinear_weight_gradient_of_a_long_float32_batch_is_accurate():
    # 57cf246 summed Bilinear's bias gradient in float64; its weight gradient, a
    # three-operand einsum, still added the N rows one by one in float32: 2^16 rows 1e-5
    # off (PyTorch's 3e-7). Host code: the same on every backend
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    n = 1 << 16
    a, b, g = ((1 + 0.1 * rng.standard_normal((n, k))).astype(np.float32) for k in (8, 6, 4))
    exact = np.einsum("no,ni,nj->oij", g.astype(np.float64), a.astype(np.float64),
                      b.astype(np.float64), optimize=True)
    layer = nn.Bilinear(8, 6, 4)
    layer(a, b)
    layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad, exact, rtol=2e-6)
    twin = torch.nn.Bilinear(8, 6, 4).double()      # and in float64 PyTorch's to the last bits
    with torch.no_grad():
        twin.weight.copy_(torch.from_numpy(layer.weight.data))
        twin.bias.copy_(torch.from_numpy(layer.bias.data))
    ad, bd = (torch.from_numpy(v[:64].astype(np.float64)).requires_grad_() for v in (a, b))
    twin(ad, bd).backward(torch.from_numpy(g[:64].astype(np.float64)))
    layer = layer.double()
    layer.zero_grad()
    layer(ad.detach().numpy(), bd.detach().numpy())
    grad_a, grad_b = layer.backward(g[:64].astype(np.float64))
    for got, want in ((layer.weight.grad, twin.weight.grad), (grad_a, ad.grad), (grad_b, bd.grad)):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("backend", BACKENDS)
def test_multilabel_soft_margin_gradient_of_saturated_logits(backend, weighted, dtype):
    # BCEWithLogitsLoss's gradient lost its cancellation in 9e99d1a; this loss's,
    # sigmoid(x) - t, was 0 for t = 1 from x = 17 on in float32 (37 in float64), where
    # PyTorch's (autograd through log-sigmoid) is -sigmoid(-x)
    torch = pytest.importorskip("torch")
    x = np.array([[-10, -20, -40, -80, 10, 20, 40, 80, -3, 3, 0.5, -0.5]], dtype)
    y = np.array([[0, 0, 0, 0, 1, 1, 1, 1, 0.25, 0.75, 1, 0]], dtype)
    w = np.linspace(0.5, 2, x.shape[1]).astype(dtype) if weighted else None
    xd, yd = x.astype(np.float64), y.astype(np.float64)
    exact = (1 if w is None else w.astype(np.float64)) * (
        (1 - yd) / (1 + np.exp(-xd)) - yd / (1 + np.exp(xd))) / x.shape[1]
    xt = torch.from_numpy(x).requires_grad_()
    torch.nn.functional.multilabel_soft_margin_loss(
        xt, torch.from_numpy(y), weight=None if w is None else torch.from_numpy(w)).backward()
    with fastnn.use_backend(backend):
        loss = nn.MultiLabelSoftMarginLoss(weight=w)
        loss(x, y)
        grad = loss.backward()
    rtol = 4e-7 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(grad, exact, rtol=rtol)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=rtol)
