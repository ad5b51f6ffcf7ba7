"""zero_grad(set_to_none=True) writes its zeros lazily, and a Linear layer's backward then
overwrites its gradients (linear_backward(accumulate=False)) instead of adding them to
zeros: the results must be those of eager zeroing on every CPU backend, whatever reads
.grad in between (another layer, an optimizer step, the user)."""
import numpy as np
import pytest

import fastnn
from fastnn import nn, ops, optim

BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.backends()]
DTYPES = (np.float32, np.float64)


def _tol(dtype):
    return dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["identity", "leaky_relu", "tanh"])
@pytest.mark.parametrize("n, fin, fout", [(37, 19, 23), (70, 200, 300), (0, 5, 4), (6, 0, 4),
                                          (6, 5, 0)])
def test_linear_backward_overwrites_when_not_accumulating(backend, dtype, activation, n, fin,
                                                          fout):
    rng = np.random.default_rng(n + fin + fout)
    x = rng.standard_normal((n, fin)).astype(dtype)
    w = rng.standard_normal((fout, fin)).astype(dtype)
    b = rng.standard_normal(fout).astype(dtype)
    g = rng.standard_normal((n, fout)).astype(dtype)
    with fastnn.use_backend("numpy"):
        y = ops.linear_forward(x, w, b, activation)
    with fastnn.use_backend("numpy"):
        want_w, want_b = np.zeros_like(w), np.zeros_like(b)
        want_in = ops.linear_backward(g, x, w, y, activation, grad_weight=want_w,
                                      grad_bias=want_b)
    with fastnn.use_backend(backend):
        got_w, got_b = np.full_like(w, 7.0), np.full_like(b, -3.0)   # stale values
        got_in = ops.linear_backward(g, x, w, y, activation, grad_weight=got_w,
                                     grad_bias=got_b, accumulate=False)
        acc_w, acc_b = np.ones_like(w), np.ones_like(b)
        ops.linear_backward(g, x, w, y, activation, grad_weight=acc_w, grad_bias=acc_b)
    np.testing.assert_allclose(got_w, want_w, **_tol(dtype))
    np.testing.assert_allclose(got_b, want_b, **_tol(dtype))
    np.testing.assert_allclose(got_in, want_in, **_tol(dtype))
    np.testing.assert_allclose(acc_w, want_w + 1, **_tol(dtype))
    np.testing.assert_allclose(acc_b, want_b + 1, **_tol(dtype))


def test_linear_backward_bias_gradient_without_input_features():
    """Linear(0, out): the bias gradient is still the column sums of grad_out (cython
    returned early and left it unchanged)."""
    g = np.arange(15, dtype=np.float32).reshape(3, 5)
    x, w = np.zeros((3, 0), np.float32), np.zeros((5, 0), np.float32)
    for backend in BACKENDS:
        with fastnn.use_backend(backend):
            gb = np.ones(5, np.float32)
            gi = ops.linear_backward(g, x, w, grad_weight=np.zeros((5, 0), np.float32),
                                     grad_bias=gb)
        np.testing.assert_array_equal(gb, 1 + g.sum(0), err_msg=backend)
        assert gi.shape == (3, 0)


def _mlp(dtype, seed=3):
    fastnn.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 16), nn.LeakyReLU(), nn.BatchNorm1d(16),
                         nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 5)).to(dtype)


def _train(model, opt, batches, zero):
    loss_fn = nn.CrossEntropyLoss()
    for x, labels in batches:
        zero()
        loss_fn(model(x), labels)
        model.backward(loss_fn.backward())
        opt.step()
    return [p.grad.copy() for p in model.parameters()], [p.data.copy() for p in
                                                         model.parameters()]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make_opt", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                      lambda ps: optim.Adam(ps, lr=1e-2)], ids=["sgd", "adam"])
def test_lazy_zeroing_trains_as_eager_zeroing(backend, dtype, make_opt):
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((9, 12)).astype(dtype), rng.integers(0, 5, 9))
               for _ in range(4)]
    results = []
    with fastnn.use_backend(backend):
        for how in ("module_lazy", "opt_lazy", "module_eager", "opt_eager"):
            model = _mlp(dtype)
            opt = make_opt(model.parameters())
            zero = {"module_lazy": model.zero_grad, "opt_lazy": opt.zero_grad,
                    "module_eager": lambda: model.zero_grad(set_to_none=False),
                    "opt_eager": lambda: opt.zero_grad(set_to_none=False)}[how]
            results.append(_train(model, opt, batches, zero))
    for grads, params in results[1:]:
        for a, b in zip(grads + params, results[0][0] + results[0][1]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_grad_reads_as_zeros_after_zero_grad(backend):
    with fastnn.use_backend(backend):
        model = _mlp(np.float32)
        x = np.random.default_rng(1).standard_normal((4, 12)).astype(np.float32)
        model(x)
        model.backward(np.ones((4, 5), np.float32))
        held = model[0].weight.grad
        assert np.abs(held).sum() > 0
        model.zero_grad()
        for p in model.parameters():
            assert not np.any(p.grad)
        assert held is model[0].weight.grad and not np.any(held)   # in place once read
        # two backwards after one zero_grad accumulate, as in PyTorch
        model(x)
        model.backward(np.ones((4, 5), np.float32))
        once = [p.grad.copy() for p in model.parameters()]
        model.zero_grad()
        for _ in range(2):
            model(x)
            model.backward(np.ones((4, 5), np.float32))
        for p, g in zip(model.parameters(), once):
            np.testing.assert_allclose(p.grad, 2 * g, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name,kwargs", [
    ("SGD", {"lr": 0.1, "momentum": 0.9}), ("SGD", {"lr": 0.1, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01}), ("AdamW", {"lr": 0.01}), ("RMSprop", {"lr": 0.01}),
    ("Adagrad", {"lr": 0.1}), ("ASGD", {"lr": 0.1})])
def test_step_without_backward_after_zero_grad_as_pytorch(backend, name, kwargs):
    """Parameters no backward reached since zero_grad: set_to_none=True leaves them
    alone (PyTorch's grad is None: skipped), set_to_none=False steps them with zero
    gradients (momentum, weight decay and Adam's moments move them); both as PyTorch.
    Here the second layer's backward is skipped: only the first layer has gradients."""
    import torch
    for set_to_none in (True, False):
        model = _mlp(np.float32)
        tparams = [torch.tensor(p.data.copy(), requires_grad=True)
                   for p in model.parameters()]
        opt = getattr(optim, name)(model.parameters(), **kwargs)
        topt = getattr(torch.optim, name)(tparams, **kwargs)
        x = np.ones((3, 12), np.float32)
        for step in range(3):
            opt.zero_grad(set_to_none=set_to_none)
            topt.zero_grad(set_to_none=set_to_none)
            if step != 1:   # step 1: no backward at all
                model(x)
                model.backward(np.ones((3, 5), np.float32))
                for p, q in zip(model.parameters(), tparams):
                    q.grad = torch.tensor(p.grad.copy())
            opt.step()
            topt.step()
            for p, q in zip(model.parameters(), tparams):
                np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,kwargs", [("Adam", {"lr": 0.1}),
                                         ("SGD", {"lr": 0.1, "momentum": 0.9,
                                                  "weight_decay": 0.1})])
def test_reading_grads_outside_backward_does_not_make_them_gradients(backend, name, kwargs):
    """Two heads, the second unused in a step: reading every .grad between the backward
    and the step (logging norms) leaves the unused head's zeros no gradient, so the step
    skips it as PyTorch skips its None grad; a gradient written into them in place after
    the read counts (PyTorch's p.grad = g)."""
    import torch
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    with fastnn.use_backend(backend):
        heads = [nn.Linear(3, 2).to(dtype=np.float64) for _ in range(2)]
        twins = [torch.nn.Linear(3, 2).double() for _ in range(2)]
        for head, twin in zip(heads, twins):
            twin.load_state_dict({k: torch.from_numpy(v.copy())
                                  for k, v in head.state_dict().items()})
        params = [p for h in heads for p in h.parameters()]
        tparams = [p for t in twins for p in t.parameters()]
        opt = getattr(optim, name)(params, **kwargs)
        topt = getattr(torch.optim, name)(tparams, **kwargs)
        xt, gt = torch.from_numpy(x), torch.from_numpy(g)
        for used in ((0, 1), (0,), (0,)):
            opt.zero_grad()
            topt.zero_grad()
            for i in used:
                heads[i](x)
                heads[i].backward(g)
                (twins[i](xt) * gt).sum().backward()
            norms = [float(np.linalg.norm(p.grad)) for p in params]   # reads every .grad
            assert norms[2:] == [0.0, 0.0] or 1 in used
            opt.step()
            topt.step()
            for p, q in zip(params, tparams):
                np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-12,
                                           atol=1e-14)
        opt.zero_grad()
        topt.zero_grad()
        heads[1].weight.grad[...] = 1.0     # a gradient written in place after a read
        tparams[2].grad = torch.ones_like(tparams[2])
        opt.step()
        topt.step()
        for p, q in zip(params, tparams):
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_tied_weight_accumulates_both_uses():
    """A Parameter shared by two Linear layers: the first backward overwrites the pending
    zeros, the second adds to them."""
    fastnn.manual_seed(0)
    a, b = nn.Linear(6, 6), nn.Linear(6, 6)
    b.weight, b.bias = a.weight, a.bias
    x = np.random.default_rng(2).standard_normal((5, 6)).astype(np.float32)
    grads = []
    for set_to_none in (True, False):
        a.zero_grad(set_to_none=set_to_none)
        h = a(x)
        b(h)
        a.backward(b.backward(np.ones((5, 6), np.float32)))
        grads.append((a.weight.grad.copy(), a.bias.grad.copy()))
    np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-6)
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-6)


def test_failed_backward_leaves_gradients_reading_zero():
    layer = nn.Linear(4, 3)
    layer(np.ones((2, 4), np.float32))
    layer.backward(np.ones((2, 3), np.float32))
    layer.zero_grad()
    layer(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError):
        layer.backward(np.ones((2, 7), np.float32))
    assert not np.any(layer.weight.grad) and not np.any(layer.bias.grad)


def test_linear_after_zero_grad_overwrites_without_filling(monkeypatch):
    """The fast path is the one taken: after zero_grad() the Linear kernels are told to
    overwrite, and nothing writes the zeros first."""
    from fastnn import backend
    from fastnn.nn import module
    calls, fills = [], []
    numpy_backend = backend.load("numpy")
    real_backward = numpy_backend.linear_backward

    def spy(*args, **kwargs):
        calls.append(kwargs["accumulate"])
        return real_backward(*args, **kwargs)

    monkeypatch.setattr(numpy_backend, "linear_backward", spy)
    real_fill = module.Parameter.zero_grad
    monkeypatch.setattr(module.Parameter, "zero_grad",
                        lambda p: fills.append(p) or real_fill(p))
    with fastnn.use_backend("numpy"):
        model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(2):
            opt.zero_grad()
            model(np.ones((2, 3), np.float32))
            model.backward(np.ones((2, 2), np.float32))
            opt.step()
    assert calls == [False, False, False, False] and fills == []


def test_skipped_after_rebinding_data_too():
    """A step that re-homes a rebound parameter (not intact) still skips the parameters
    no backward reached since zero_grad."""
    model = _mlp(np.float32)
    params = list(model.parameters())
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    model(np.ones((3, 12), np.float32))
    model.backward(np.ones((3, 5), np.float32))
    opt.step()
    opt.zero_grad()
    params[0].data = params[0].data.copy()       # rebound: the bucket re-homes it
    before = [p.data.copy() for p in params]
    opt.step()
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.data, b)


def test_parameter_like_objects_still_step():
    """Objects with .data and .grad (not Parameters) step as before, a None grad skipped."""
    from types import SimpleNamespace
    p = SimpleNamespace(data=np.ones(3, np.float32), grad=np.ones(3, np.float32),
                        requires_grad=True)
    q = SimpleNamespace(data=np.ones(3, np.float32), grad=None, requires_grad=True)
    optim.SGD([p, q], lr=0.1).step()
    np.testing.assert_allclose(p.data, 0.9)
    np.testing.assert_array_equal(q.data, 1.0)


def test_sequential_around_a_user_module_steps_only_what_backward_reached(backend):
    """The rollback copy a Sequential takes before a user module's backward reads the
    gradients as they are: an unused head stays without a gradient (PyTorch's None)."""
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(5, 3), nn.Linear(5, 3)

        def forward(self, x):
            return self.a(x)

        def backward(self, grad_out):
            return self.a.backward(grad_out)

    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    model = nn.Sequential(nn.Linear(4, 5), TwoHeads())
    opt = optim.AdamW(model.parameters(), lr=0.1)
    before = model[1].b.weight.data.copy()
    for _ in range(2):
        opt.zero_grad()
        out = model(x)
        model.backward(np.ones_like(out))
        opt.step()
    np.testing.assert_array_equal(model[1].b.weight.data, before)
    assert not np.array_equal(model[1].a.weight.data, before)
