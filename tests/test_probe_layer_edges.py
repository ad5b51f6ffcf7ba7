"""Layer edges found by probing fastnn.nn against PyTorch 2.13: Linear (and LazyLinear)
with 0 input or output features, PyTorch's empty layers (the output is the bias, or has
no columns), Unflatten into a size-0 axis, the linear and cubic interpolations at an
infinite pixel, and AvgPool2d with a negative divisor_override."""
import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn, optim

BACKENDS = [b for b in fastnn.backends() if b != "cuda"]
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("fin,fout", [(0, 3), (3, 0), (0, 0)])
def test_linear_with_no_features_is_torchs_empty_layer(name, dtype, fin, fout, rng):
    with fastnn.use_backend(name):
        layer = nn.Linear(fin, fout, dtype=dtype)
        assert not layer.bias.data.any()     # bound 1 / sqrt(0) taken as 0, as PyTorch
        layer.bias.data[...] = rng.standard_normal(fout)
        x = rng.standard_normal((2, fin)).astype(dtype)
        y = layer(x)
        g = rng.standard_normal(y.shape).astype(dtype)
        grad_in = layer.backward(g)
        tl = torch.nn.Linear(fin, fout, dtype=TORCH_DTYPE[dtype])
        with torch.no_grad():
            tl.bias.copy_(torch.from_numpy(layer.bias.data))
        tx = torch.from_numpy(x).requires_grad_()
        ty = tl(tx)
        ty.backward(torch.from_numpy(g))
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-6)
        np.testing.assert_allclose(grad_in, tx.grad.numpy(), rtol=1e-6)
        np.testing.assert_allclose(layer.bias.grad, tl.bias.grad.numpy(), rtol=1e-6)
        assert layer.weight.grad.shape == (fout, fin)
        optim.SGD(layer.parameters(), lr=0.1, momentum=0.9).step()
        np.testing.assert_allclose(layer.bias.data, (tl.bias - 0.1 * tl.bias.grad).detach(),
                                   rtol=1e-6)
        # in a Sequential, where the activation is fused into the layer's kernels
        model = nn.Sequential(nn.Linear(4, fin, dtype=dtype), nn.ReLU(),
                              nn.Linear(fin, fout, dtype=dtype))
        out = model(rng.standard_normal((3, 4)).astype(dtype))
        assert out.shape == (3, fout)
        assert model.backward(np.ones_like(out)).shape == (3, 4)


def test_lazy_linear_takes_no_features_too():
    layer = nn.LazyLinear(3)
    assert layer(np.zeros((2, 0), np.float32)).shape == (2, 3)
    assert layer.in_features == 0
    assert nn.LazyLinear(0)(np.zeros((2, 4), np.float32)).shape == (2, 0)


def test_unflatten_into_a_size_zero_axis():
    layer = nn.Unflatten(1, (0, 5))
    y = layer(np.zeros((2, 0), np.float32))
    assert y.shape == tuple(torch.nn.Unflatten(1, (0, 5))(torch.zeros(2, 0)).shape)
    assert layer.backward(np.zeros_like(y)).shape == (2, 0)
    with pytest.raises(ValueError, match="non-negative"):
        nn.Unflatten(1, (-2, 5))


@pytest.mark.parametrize("mode,shape,kwargs", [
    ("linear", (1, 1, 3), dict(size=3)),
    ("linear", (1, 1, 3), dict(size=7)),
    ("bilinear", (1, 1, 1, 3), dict(scale_factor=2, align_corners=True)),
    ("bilinear", (1, 1, 2, 3), dict(size=(2, 5))),
    ("bicubic", (1, 1, 1, 3), dict(size=(1, 5))),
    ("bicubic", (1, 1, 3, 3), dict(scale_factor=1.5)),
    ("trilinear", (1, 1, 1, 2, 3), dict(size=(1, 2, 4))),
])
def test_interpolation_reads_an_infinite_pixel_as_torch(mode, shape, kwargs):
    """Every tap multiplies its pixel on its own, as PyTorch's kernels do: an inf read
    with weight 0 (a copy where out == in, a clamped edge tap) gives NaN there; summed
    weights gave inf."""
    from fastnn.nn import functional as F
    x = np.zeros(shape)
    x.reshape(-1)[x.size // 2] = np.inf
    x.reshape(-1)[-1] = -np.inf
    got = F.interpolate(x, mode=mode, **kwargs)
    want = torch.nn.functional.interpolate(torch.from_numpy(x), mode=mode, **kwargs).numpy()
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("args,shape", [((2, None, 0, False, True, -3), (2, 3, 4, 5)),
                                        ((3, 2, 1, True, False, -2), (3, 7, 6))])
def test_avg_pool_takes_a_negative_divisor_as_torch(name, args, shape, rng):
    x = rng.standard_normal(shape)
    x.reshape((-1,) + shape[-2:])[0] = 0.0    # windows summing to 0: +0, as PyTorch's
    with fastnn.use_backend(name):
        pool = nn.AvgPool2d(*args)
        y = pool(x)
        g = rng.standard_normal(y.shape)
        grad_in = pool.backward(g)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.nn.AvgPool2d(*args)(tx)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-15)
    assert not np.signbit(y.reshape((-1,) + y.shape[-2:])[0]).any()
    np.testing.assert_allclose(grad_in, tx.grad.numpy(), rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="non-zero int"):
        nn.AvgPool2d(2, divisor_override=0)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("layer,torch_layer,size,shape", [
    (nn.AdaptiveAvgPool2d, torch.nn.AdaptiveAvgPool2d, 0, (2, 3, 4, 5)),
    (nn.AdaptiveAvgPool2d, torch.nn.AdaptiveAvgPool2d, (None, 0), (3, 4, 5)),
    (nn.AdaptiveMaxPool2d, torch.nn.AdaptiveMaxPool2d, (0, 2), (2, 3, 4, 5)),
    (nn.AdaptiveAvgPool1d, torch.nn.AdaptiveAvgPool1d, 0, (2, 3, 5)),
])
def test_adaptive_pool_layers_take_an_output_size_of_0(name, layer, torch_layer, size, shape):
    """PyTorch's layers give an empty output, as fastnn's functional forms did already
    (PyTorch's backward then refuses; fastnn's gives the zero gradient)."""
    x = np.random.default_rng(0).standard_normal(shape)
    with fastnn.use_backend(name):
        pool = layer(size)
        y = pool(x)
        grad_in = pool.backward(np.ones_like(y))
    assert y.shape == tuple(torch_layer(size)(torch.from_numpy(x)).shape)
    np.testing.assert_array_equal(grad_in, np.zeros_like(x))
    with pytest.raises(ValueError, match="non-negative"):
        layer(-1)
