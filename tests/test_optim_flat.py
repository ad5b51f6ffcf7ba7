"""The optimizers' flat buffers: re-homing keeps values, one buffer per (group, dtype),
user rebinding of .data/.grad, dtype and shape changes, zero_grad, NaN propagation."""
import numpy as np
import pytest

from fastnn import nn, optim
from fastnn.nn import Parameter

SHAPES = [(4, 3), (4,), (2, 2, 5)]


def make_params(dtype=np.float64, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]


def same_buffer(a, b):
    return a.base is not None and a.base is b.base


def manual_sgd(values, grads, velocities, lr, momentum):
    """PyTorch's SGD with momentum, written out: v = m v + g; p -= lr v."""
    for p, g, v in zip(values, grads, velocities):
        v *= momentum
        v += g
        p -= lr * v


def test_rehoming_keeps_values_and_shares_one_buffer(dtype):
    params = make_params(dtype)
    for p in params:
        p.grad[...] = np.arange(p.size, dtype=dtype).reshape(p.shape)
    before = [(p.data.copy(), p.grad.copy()) for p in params]
    optim.SGD(params, lr=0.1)
    for p, (data, grad) in zip(params, before):
        np.testing.assert_array_equal(p.data, data)
        np.testing.assert_array_equal(p.grad, grad)
        assert p.data.shape == data.shape and p.data.dtype == dtype
        assert same_buffer(p.data, params[0].data) and same_buffer(p.grad, params[0].grad)
    # one contiguous run of memory, starting on a 64-byte boundary (fastnn.device._aligned)
    low = min(p.data.ctypes.data for p in params)
    high = max(p.data.ctypes.data + p.data.nbytes for p in params)
    assert high - low == sum(p.size for p in params) * np.dtype(dtype).itemsize
    assert low % 64 == 0


def test_mixed_dtypes_get_one_buffer_each(backend):
    params = make_params(np.float32) + make_params(np.float64, seed=1)
    values = [p.data.copy() for p in params]
    opt = optim.SGD(params, lr=0.5)
    assert same_buffer(params[0].data, params[2].data)
    assert same_buffer(params[3].data, params[5].data)
    assert params[0].data.base is not params[3].data.base
    for p in params:
        p.grad[...] = 1
    opt.step()
    for p, v in zip(params, values):
        assert p.data.dtype == v.dtype
        np.testing.assert_allclose(p.data, v - 0.5, rtol=1e-6)


def test_layers_train_through_the_flat_buffer(backend, dtype):
    """A Linear layer reads weight.data and accumulates into weight.grad in place, so the
    optimizer's views stay bound across forward/backward/step/zero_grad."""
    layer = nn.Linear(3, 2).to_dtype(dtype)
    opt = optim.SGD(layer.parameters(), lr=0.1)
    views = [(p.data, p.grad) for p in layer.parameters()]
    x = np.ones((4, 3), dtype=dtype)
    w0 = layer.weight.data.copy()
    layer.forward(x)
    layer.backward(np.ones((4, 2), dtype=dtype))
    opt.step()
    opt.zero_grad()
    for p, (data, grad) in zip(layer.parameters(), views):
        assert p.data is data and p.grad is grad
        assert not p.grad.any()
    np.testing.assert_allclose(layer.weight.data, w0 - 0.1 * 4, rtol=1e-6)


def test_user_rebinding_data_and_grad_is_picked_up(backend):
    params = make_params()
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    values = [p.data.copy() for p in params]
    velocities = [np.zeros_like(v) for v in values]
    for step in range(4):
        grads = [np.full(p.shape, step + 1.0) for p in params]
        if step == 1:  # rebind .data to a fresh (non-contiguous) array
            fresh = np.asfortranarray(np.full(params[0].shape, 3.0))
            params[0].data = fresh
            values[0] = fresh.copy()
        if step == 2:  # rebind .grad instead of writing into it
            params[1].grad = grads[1].copy()
        else:
            params[1].grad[...] = grads[1]
        params[0].grad[...] = grads[0]
        params[2].grad[...] = grads[2]
        opt.step()
        manual_sgd(values, grads, velocities, 0.1, 0.9)
        for p, v in zip(params, values):
            np.testing.assert_allclose(p.data, v, rtol=1e-12)
        # after the step every array lives in the flat buffers again
        assert all(same_buffer(p.data, params[0].data) for p in params)
        assert all(same_buffer(p.grad, params[0].grad) for p in params)


def test_dtype_change_regroups_and_keeps_state(backend):
    model = nn.Linear(3, 2)  # float32
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    grads = [np.full(p.shape, 0.5, dtype=np.float32) for p in model.parameters()]
    for p, g in zip(model.parameters(), grads):
        p.grad[...] = g
    opt.step()
    velocity = [opt.state_dict()["state"][i]["momentum_buffer"] for i in range(2)]
    model.double()
    values = [p.data.copy() for p in model.parameters()]
    for p, g in zip(model.parameters(), grads):
        p.grad[...] = g
    opt.step()
    for p, v, g, m in zip(model.parameters(), values, grads, velocity):
        assert p.data.dtype == np.float64 and same_buffer(p.data, model.weight.data)
        np.testing.assert_allclose(p.data, v - 0.1 * (0.9 * m.astype(np.float64) + g), rtol=1e-12)
    assert opt.state_dict()["state"][0]["momentum_buffer"].dtype == np.float64


def test_shape_change_raises_and_changes_nothing(backend):
    params = make_params()
    for p in params:   # (a new parameter's gradient is PyTorch's None: not stepped)
        p.grad = np.ones_like(p.data)
    opt = optim.Adam(params, lr=0.1)
    opt.step()
    state = opt.state_dict()
    params[2].data = np.zeros((3, 3))
    kept = [p.data.copy() for p in params[:2]]
    with pytest.raises(ValueError, match=r"Adam: parameter 2 changed shape from \(2, 2, 5\)"):
        opt.step()
    for p, v in zip(params[:2], kept):
        np.testing.assert_array_equal(p.data, v)
    after = opt.state_dict()
    for i in range(3):
        assert after["state"][i]["step"] == state["state"][i]["step"] == 1
        np.testing.assert_array_equal(after["state"][i]["exp_avg"], state["state"][i]["exp_avg"])


def test_zero_grad_zeroes_in_place_including_rebound_grads():
    params = make_params()
    opt = optim.SGD(params, lr=0.1)
    grads = [p.grad for p in params]
    for p in params:
        p.grad[...] = 7
    params[1].grad = np.full(params[1].shape, 5.0)
    rebound = params[1].grad
    opt.zero_grad()
    assert params[0].grad is grads[0] and params[1].grad is rebound
    assert all(not p.grad.any() for p in params)


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9)),
                                         ("Adam", dict(lr=0.1)),
                                         ("Adadelta", dict(lr=1.0)),
                                         ("ASGD", dict(lr=0.01))])
def test_nan_and_inf_gradients_propagate(backend, dtype, name, kwargs):
    """(Rprop is the exception, as PyTorch's: its step is sign(g) * step_size with
    torch.sign(NaN) = 0; tests/test_conformance.py follows torch's there.)"""
    params = make_params(dtype)
    opt = getattr(optim, name)(params, **kwargs)
    params[0].grad[0, 0] = np.nan
    params[1].grad[2] = np.inf
    with np.errstate(invalid="ignore", over="ignore"):  # the reference kernel warns
        opt.step()
    assert np.isnan(params[0].data[0, 0])
    assert not np.isfinite(params[1].data[2])
    assert np.isfinite(params[0].data[1:]).all() and np.isfinite(params[2].data).all()


def test_zero_size_parameter_is_carried(backend):
    params = make_params(shapes=[(3,), (0, 4), (2,)])
    opt = optim.Adam(params, lr=0.1)
    for p in params:
        p.grad[...] = 1
    opt.step()
    assert params[1].data.shape == (0, 4)
    np.testing.assert_allclose(params[0].data, make_params(shapes=[(3,)])[0].data - 0.1,
                               rtol=1e-6)


class CountingKernels:
    """Wraps a backend and records the size of every optimizer kernel call."""

    def __init__(self, kernels):
        self.kernels, self.calls = kernels, []

    def sgd_update(self, param, *args):
        self.calls.append(param.size)
        return self.kernels.sgd_update(param, *args)

    def adam_update(self, param, *args):
        self.calls.append(param.size)
        return self.kernels.adam_update(param, *args)

    def adadelta_update(self, param, *args):
        self.calls.append(param.size)
        return self.kernels.adadelta_update(param, *args)

    def rprop_update(self, param, *args):
        self.calls.append(param.size)
        return self.kernels.rprop_update(param, *args)

    def asgd_update(self, param, *args):
        self.calls.append(param.size)
        return self.kernels.asgd_update(param, *args)


@pytest.mark.parametrize("name", ["SGD", "Adam", "Adadelta", "Rprop", "ASGD"])
def test_one_kernel_call_per_flat_buffer(backend, monkeypatch, name):
    from fastnn import backend as registry
    counting = CountingKernels(registry.current())
    monkeypatch.setattr(registry, "current", lambda: counting)
    params = make_params(np.float32) + make_params(np.float64, seed=1)
    for p in params:   # (a new parameter's gradient is PyTorch's None: not stepped)
        p.grad = np.ones_like(p.data)
    opt = getattr(optim, name)(params, lr=0.1)
    opt.step()
    total = sum(p.size for p in params[:3])
    assert counting.calls == [total, total]  # one call per dtype, all parameters at once
    counting.calls.clear()
    params[4].grad = None  # the slow path: one call per parameter that has a gradient
    opt.step()
    assert counting.calls == [total] + [params[3].size, params[5].size]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("shape", [(5,), (300, 257)])
def test_host_fill_zero_zeroes_small_large_and_strided_arrays(dtype, shape):
    """Host.fill_zero: memset for large contiguous arrays, a NumPy fill otherwise."""
    from fastnn.device import Host
    a = np.full(shape, 3, dtype=dtype)
    Host.fill_zero(a)
    assert not a.any()
    b = np.full((600, 257), 3, dtype=dtype)
    Host.fill_zero(b[::2])
    assert not b[::2].any() and (b[1::2] == 3).all()
    c = np.full(shape, 3, dtype=dtype)
    c.flags.writeable = False
    with pytest.raises(ValueError):
        Host.fill_zero(c)
