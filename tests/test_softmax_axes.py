"""nn.Softmax / LogSoftmax / Softmin along an axis that is not the last (the channels of
(N, C, H, W)): NumPy's reductions along it, in place of transposing copies; forward
and backward against PyTorch's, non-finite rows included."""
import numpy as np
import pytest

from fastnn import nn

import torch  # noqa: E402  (after fastnn)


@pytest.mark.parametrize("cls", ["Softmax", "LogSoftmax", "Softmin"])
@pytest.mark.parametrize("shape, dim", [((4, 5, 3, 6), 1), ((4, 5, 3, 6), 0), ((4, 5, 3, 6), -2),
                                        ((2, 7, 9), None), ((3, 1, 4), 1), ((0, 3, 2), 1)])
def test_softmax_along_an_inner_axis_as_torch(backend, dtype, cls, shape, dim):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    layer = getattr(nn, cls)(dim)
    twin = getattr(torch.nn, cls)(dim)
    xt = torch.tensor(x, requires_grad=True)
    yt = twin(xt)
    yt.backward(torch.tensor(g))
    y = layer(x)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    assert y.dtype == dtype and y.shape == x.shape and y.flags.c_contiguous
    np.testing.assert_allclose(y, yt.detach().numpy(), **tol)
    np.testing.assert_allclose(layer.backward(g), xt.grad.numpy(), **tol)


@pytest.mark.parametrize("cls", ["Softmax", "LogSoftmax"])
def test_non_finite_channels_as_torch(backend, cls):
    x = np.zeros((2, 3, 4), np.float32)
    x[0, :, 0] = -np.inf          # every channel -inf
    x[0, 1, 1] = np.inf           # one +inf
    x[1, 2, 2] = np.nan           # one NaN
    x[1, 0, 3] = -np.inf          # one -inf among finite values
    expected = getattr(torch.nn, cls)(1)(torch.tensor(x)).numpy()
    np.testing.assert_array_equal(np.isnan(getattr(nn, cls)(1)(x)), np.isnan(expected))
    np.testing.assert_allclose(getattr(nn, cls)(1)(x), expected, rtol=1e-6, atol=1e-7)


def test_an_ndarray_subclass_input_takes_the_row_kernels_both_ways(tmp_path):
    x = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)
    mapped = np.memmap(tmp_path / "x.dat", np.float32, "w+", shape=x.shape)
    mapped[:] = x
    for cls in ("Softmax", "LogSoftmax"):
        layer, twin = getattr(nn, cls)(1), getattr(torch.nn, cls)(1)
        xt = torch.tensor(x, requires_grad=True)
        twin(xt).backward(torch.ones(x.shape))
        np.testing.assert_allclose(layer(mapped), twin(torch.tensor(x)).detach().numpy(),
                                   rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(layer.backward(np.ones(x.shape, np.float32)),
                                   xt.grad.numpy(), rtol=1e-5, atol=1e-6)
