"""Infinities and NaNs go where PyTorch's go: an infinite parameter stays infinite
through an optimizer without weight decay (no 0 * inf), eval-mode BatchNorm's input
gradient does not read x, LocalResponseNorm's window sum stays inside the window, and
layers whose slope is 0 or 1 mask the incoming gradient (0, not NaN, where it stops)."""
import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn, optim

BACKENDS = fastnn.backends()

OPTIMIZERS = [
    ("SGD", {}), ("SGD", dict(momentum=0.9)), ("SGD", dict(momentum=0.9, nesterov=True)),
    ("SGD", dict(momentum=0.9, dampening=0.5)), ("Adam", {}), ("Adam", dict(amsgrad=True)),
    ("AdamW", dict(weight_decay=0.0)), ("RMSprop", {}),
    ("RMSprop", dict(centered=True, momentum=0.5)), ("Adagrad", {}), ("Adamax", {}),
    ("NAdam", {}), ("RAdam", {}), ("Adadelta", {}), ("ASGD", {}), ("Rprop", {}),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name,options", OPTIMIZERS,
                         ids=[f"{n}-{'-'.join(o) or 'plain'}" for n, o in OPTIMIZERS])
@pytest.mark.parametrize("backend", BACKENDS)
def test_infinite_parameters_stay_infinite_without_weight_decay(backend, name, options,
                                                                dtype):
    # 40000 values: the compiled kernels' parallel paths; infinities at both ends
    start = np.random.default_rng(0).standard_normal(40000).astype(dtype)
    start[[0, 1, -1]] = [np.inf, -np.inf, np.inf]
    grad = np.random.default_rng(1).standard_normal(40000).astype(dtype)
    twin = torch.nn.Parameter(torch.tensor(start))
    reference = getattr(torch.optim, name)([twin], lr=0.1, **options)
    with fastnn.use_backend(backend):
        param = nn.Parameter(start.copy())
        optimizer = getattr(optim, name)([param], lr=0.1, **options)
        for _ in range(2):
            twin.grad = torch.tensor(grad)
            reference.step()
            param.grad = grad.copy()
            optimizer.step()
    want = twin.detach().numpy()
    assert np.array_equal(np.isnan(param.data), np.isnan(want))
    np.testing.assert_array_equal(param.data[[0, 1, -1]], want[[0, 1, -1]])
    single = dtype == np.float32
    np.testing.assert_allclose(param.data[2:-1], want[2:-1], rtol=2e-5 if single else 1e-10,
                               atol=1e-6 if single else 1e-12)


@pytest.mark.parametrize("shape", [(6, 3), (5, 3, 4), (4, 3, 2, 2)])
@pytest.mark.parametrize("backend", BACKENDS)
def test_eval_batchnorm_gradient_ignores_nonfinite_inputs(backend, shape, rng):
    """In eval mode grad_in = grad_out * weight / sqrt(running_var + eps): x is not in it,
    so an infinite or NaN x leaves its gradient finite, as PyTorch's."""
    x = rng.standard_normal(shape).astype(np.float32)
    x[1, 0], x[2, 1], x[3, 2] = np.inf, np.nan, -np.inf
    g = rng.standard_normal(shape).astype(np.float32)
    cls = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d}[len(shape)]
    twin = getattr(torch.nn, cls.__name__)(3)
    with fastnn.use_backend(backend):
        layer = cls(3)
        layer.running_mean[:] = [0.5, -1.0, 2.0]
        layer.running_var[:] = [2.0, 0.5, 3.0]
        layer.weight.data[:] = [1.5, -0.5, 2.0]
        twin.load_state_dict({k: torch.tensor(v) for k, v in layer.state_dict().items()})
        layer.eval()
        twin.eval()
        layer(x)
        got = layer.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    twin(xt).backward(torch.tensor(g))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, xt.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_local_response_norm_window_stays_local(size, dtype, rng):
    """A NaN, an infinity or a large value reaches only the channels whose window holds
    it (a running sum's differences had carried it to every later channel)."""
    x = rng.standard_normal((2, 7, 3, 2)).astype(dtype)
    x[0, 0, 0, 0], x[1, 2, 1, 1], x[1, 5, 0, 0] = np.nan, 1e4, np.inf
    g = rng.standard_normal(x.shape).astype(dtype)
    layer, twin = nn.LocalResponseNorm(size), torch.nn.LocalResponseNorm(size)
    xt = torch.tensor(x, requires_grad=True)
    want = twin(xt)
    want.backward(torch.tensor(g))
    got = layer(x)
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-5, equal_nan=True)
    np.testing.assert_allclose(layer.backward(g), xt.grad.numpy(), rtol=1e-4, atol=1e-6,
                               equal_nan=True)


@pytest.mark.parametrize("make", [lambda m: m.Hardshrink(), lambda m: m.Softshrink(0.3),
                                  lambda m: m.Threshold(0.5, -2.0)],
                         ids=["Hardshrink", "Softshrink", "Threshold"])
def test_zero_slopes_mask_nan_gradients(make):
    x = np.array([0.1, -0.2, 2.0, -3.0, 0.5, 0.7], np.float32)
    g = np.array([np.nan, np.nan, 1.0, np.nan, np.nan, 2.0], np.float32)
    layer, twin = make(nn), make(torch.nn)
    layer(x)
    xt = torch.tensor(x, requires_grad=True)
    twin(xt).backward(torch.tensor(g))
    np.testing.assert_array_equal(layer.backward(g), xt.grad.numpy())


@pytest.mark.parametrize("backend", BACKENDS)
def test_batchnorm_variance_overflow_is_infinite(backend):
    """float64 values of 1e300: the variance overflows to inf (PyTorch's), output 0, not
    NaN from inf - inf in a one-pass variance."""
    x = np.zeros((2, 1, 4))
    x[0, 0, 0], x[1, 0, 1] = 1e300, -1e300
    with fastnn.use_backend(backend), np.errstate(over="ignore"):
        layer = nn.BatchNorm1d(1).double()
        y = layer(x)
    np.testing.assert_array_equal(y, np.zeros_like(x))
    assert layer.running_var[0] == np.inf


@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 2), (2, 3, 2, 2)])
@pytest.mark.parametrize("backend", BACKENDS)
def test_batchnorm_infinite_input_gives_torch_running_statistics(backend, shape):
    """An inf in a channel: its variance is NaN (x - mean is inf - inf), as PyTorch's;
    numba's one-pass (N, C, L) kernel took the infinite sum of squares for an overflow
    and kept an infinite running_var."""
    x = np.linspace(-1.0, 1.0, int(np.prod(shape)), dtype=np.float32).reshape(shape)
    x[1, 0], x[0, 1] = np.inf, -np.inf  # channels 0 and 1; channel 2 finite
    cls = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d"}[len(shape)]
    twin = getattr(torch.nn, cls)(3)
    twin(torch.tensor(x))
    with fastnn.use_backend(backend):
        layer = getattr(nn, cls)(3)
        layer(x)
    np.testing.assert_allclose(layer.running_mean, twin.running_mean.numpy(), rtol=1e-6)
    np.testing.assert_allclose(layer.running_var, twin.running_var.numpy(), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_sigmoid_of_very_negative_inputs_is_zero(backend, dtype):
    # below -88 (float32) / -708 (float64) the exact value underflows: PyTorch's 0, not
    # the value at the edge of the exponential's range; 33 values reach the vector loops
    x = np.full(33, -1e30, dtype)
    x[:4] = [-np.inf, -800.0, -89.0, np.nan]
    expected = torch.sigmoid(torch.tensor(x)).numpy()
    with fastnn.use_backend(backend):
        y = fastnn.ops.sigmoid(x)
        fused = fastnn.ops.linear_forward(x[:, None], np.ones((1, 1), dtype),
                                          activation="sigmoid")[:, 0]
        silu = fastnn.ops.silu(x[4:])
        gelu_grad = fastnn.ops.gelu_tanh_backward(np.ones(29, dtype), x[4:] * 0 - 200)
    for got in (y, fused):
        np.testing.assert_array_equal(got[4:], 0)
        np.testing.assert_array_equal(got[:2], 0)
        assert np.isnan(got[3])
        np.testing.assert_allclose(got[2], expected[2], rtol=0, atol=1e-38)
    np.testing.assert_array_equal(silu, torch.nn.functional.silu(torch.tensor(x[4:])).numpy())
    np.testing.assert_array_equal(gelu_grad, 0)   # (sigmoid's floor had made it -1e-33)
