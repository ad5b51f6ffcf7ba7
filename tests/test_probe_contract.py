"""Acceptance checks of the public contract (shared/DESIGN.md) against PyTorch 2.13, on every
CPU backend, float32 and float64: layers' outputs and gradients (accumulated over two
backward calls) with weights copied from the torch twin, optimizers step for step,
initialisation bounds, state-dict round trips, ops kernels; awkward inputs (batch of one,
Fortran-order and strided arrays, large batches for the parallel paths, 1 and 2 threads).

Fixed here: a Parameter's ``.data`` / ``.grad`` assigned a strided (``W.T``) or read-only
array made the cython kernels raise "ndarray is not C-contiguous" and the numba kernels
silently drop the gradient accumulated into a Fortran ``.grad``; such arrays are now stored
as C-contiguous copies (fastnn/nn/module.py: Parameter.data / Parameter.grad).
"""
import math

import numpy as np
import pytest

import fastnn
from fastnn import nn, ops, optim

torch = pytest.importorskip("torch")
tnn = torch.nn
F = torch.nn.functional

BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.backends()]
DTYPES = [np.float32, np.float64]


@pytest.fixture(params=BACKENDS)
def backend(request):
    with fastnn.use_backend(request.param):
        yield request.param


def tol(dt, scale=1.0):
    return (dict(rtol=2e-4 * scale, atol=2e-5 * scale) if dt == np.float32
            else dict(rtol=1e-9 * scale, atol=1e-10 * scale))


def T(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def twin(tm, dt):
    return tm.to(torch.float64 if dt == np.float64 else torch.float32)


def awkward(x, kind):
    """x itself ('c'), in Fortran order ('f') or as a strided view ('s')."""
    if kind == "f":
        return np.asfortranarray(x)
    if kind == "s":
        big = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
        big[..., ::2] = x
        return big[..., ::2]
    return x


def check_module(fm, tm, shape, dt, rng, train=True, scale=1.0, kinds=("c", "f", "s"),
                 bias_before_bn=()):
    """fm against its torch twin tm (weights copied through load_state_dict): outputs,
    input gradients, parameter gradients accumulated over two forward/backward pairs,
    and the state dict (keys in order, values)."""
    tm = twin(tm, dt)
    fm.load_state_dict({k: v.detach().numpy().copy() for k, v in tm.state_dict().items()})
    fm.train(train)
    tm.train(train)
    t = tol(dt, scale)
    for kind in kinds:
        fm.zero_grad()
        tm.zero_grad()
        for _ in range(2):
            x = rng.standard_normal(shape).astype(dt)
            xt = T(x).requires_grad_(True)
            yt = tm(xt)
            y = fm.forward(awkward(x, kind))
            assert y.dtype == dt
            np.testing.assert_allclose(y, yt.detach().numpy(), **t)
            g = rng.standard_normal(tuple(yt.shape)).astype(dt)
            yt.backward(T(g))
            np.testing.assert_allclose(fm.backward(awkward(g, kind)), xt.grad.numpy(), **t)
        params = dict(fm.named_parameters())
        for name, p in tm.named_parameters():
            if name in bias_before_bn:  # exactly 0 in theory: both sides are rounding noise
                continue
            np.testing.assert_allclose(params[name].grad, p.grad.numpy(), **tol(dt, 4 * scale))
        state = fm.state_dict()
        assert list(state) == list(tm.state_dict())
        for name, v in tm.state_dict().items():
            np.testing.assert_allclose(np.asarray(state[name]), v.numpy(), **tol(dt, scale))


# ------------------------------------------------------------------------ layers
@pytest.mark.parametrize("dt", DTYPES)
def test_linear_activations_flatten(backend, dt):
    rng = np.random.default_rng(1)
    for n in (1, 4096):
        check_module(nn.Linear(7, 5, dtype=dt), tnn.Linear(7, 5), (n, 7), dt, rng)
    check_module(nn.Linear(6, 3, bias=False, dtype=dt), tnn.Linear(6, 3, bias=False),
                 (9, 6), dt, rng)
    pairs = [(nn.ReLU(), tnn.ReLU()), (nn.LeakyReLU(0.2), tnn.LeakyReLU(0.2)),
             (nn.Sigmoid(), tnn.Sigmoid()), (nn.Tanh(), tnn.Tanh()), (nn.GELU(), tnn.GELU()),
             (nn.Identity(), tnn.Identity()), (nn.Softmax(dim=1), tnn.Softmax(dim=1)),
             (nn.Flatten(), tnn.Flatten())]
    for fa, ta in pairs:
        check_module(fa, ta, (4096, 9), dt, rng, kinds=("c", "s"))  # 36864: parallel path
        check_module(fa, ta, (3, 2, 4, 5), dt, rng, kinds=("f",))

    class TorchSine(tnn.Module):
        def forward(self, x):
            return torch.sin(30.0 * x)
    check_module(nn.Sine(omega=30.0), TorchSine(), (64, 5), dt, rng, scale=30)


@pytest.mark.parametrize("dt", DTYPES)
def test_dropout_train_statistics_and_eval_identity(backend, dt):
    rng = np.random.default_rng(2)
    for p in (0.0, 0.3, 1.0):
        d = nn.Dropout(p)
        y = d.forward(np.full((1024, 64), 3.0, dt))
        keep = y != 0
        assert y.dtype == dt and abs(keep.mean() - (1 - p)) < 0.01
        if p < 1:
            np.testing.assert_allclose(y[keep], 3.0 / (1 - p), rtol=1e-6)
        g = rng.standard_normal(y.shape).astype(dt)
        expected = np.where(keep, g / (1 - p), 0) if p < 1 else np.zeros_like(g)
        np.testing.assert_allclose(d.backward(g), expected, **tol(dt))
        d.eval()
        x = rng.standard_normal((5, 3)).astype(dt)
        np.testing.assert_array_equal(d.forward(x), x)


@pytest.mark.parametrize("dt", DTYPES)
def test_batchnorm_train_steps_eval_and_mean_only(backend, dt):
    rng = np.random.default_rng(3)
    for shape in ((2, 5), (4096, 9), (4, 5, 7), (512, 6, 12)):
        c = shape[1]
        fm, tm = nn.BatchNorm1d(c, momentum=0.3, dtype=dt), tnn.BatchNorm1d(c, momentum=0.3)
        with torch.no_grad():
            tm.weight.uniform_(0.5, 1.5)
            tm.bias.uniform_(-1, 1)
        check_module(fm, tm, shape, dt, rng, scale=10)
        tm = twin(tm, dt)
        for _ in range(3):
            x = (rng.standard_normal(shape) * 2 + 1).astype(dt)
            fm.forward(x)
            tm(T(x))
        assert int(fm.num_batches_tracked) == int(tm.num_batches_tracked) == 9
        np.testing.assert_allclose(fm.running_var, tm.running_var.numpy(), **tol(dt, 10))
        check_module(fm, tm, shape, dt, rng, train=False, scale=10, kinds=("s",))
    for shape in ((1, 2, 3, 3), (128, 4, 8, 8)):
        check_module(nn.BatchNorm2d(shape[1], dtype=dt), tnn.BatchNorm2d(shape[1]), shape, dt,
                     rng, scale=10, kinds=("c", "f"))
    # mean_only: y = x - batch mean + bias; no weight, no running_var
    for shape, axes in (((8, 4), (0,)), ((6, 4, 5), (0, 2))):
        bn = nn.BatchNorm1d(4, mean_only=True, dtype=dt)
        assert bn.weight is None and bn.running_var is None
        bias = rng.standard_normal(4).astype(dt)
        bn.bias.data[...] = bias
        b = bias.reshape((1, 4) + (1,) * (len(shape) - 2))
        x, g = (rng.standard_normal(shape).astype(dt) for _ in range(2))
        np.testing.assert_allclose(bn.forward(x), x - x.mean(axes, keepdims=True) + b, **tol(dt))
        np.testing.assert_allclose(bn.backward(g), g - g.mean(axes, keepdims=True), **tol(dt))
        np.testing.assert_allclose(bn.bias.grad, g.sum(axes), **tol(dt))
        np.testing.assert_allclose(bn.running_mean, 0.1 * x.mean(axes), **tol(dt))
        bn.eval()
        np.testing.assert_allclose(bn.forward(x), x - bn.running_mean.reshape(b.shape) + b,
                                   **tol(dt))


CONV_CASES = [  # in, out, kernel, kwargs, input (N, H, W)
    (2, 4, (3, 2), dict(stride=(2, 1), padding=(1, 2)), (1, 9, 8)),
    (4, 6, 3, dict(groups=2, dilation=2, bias=False), (3, 11, 10)),
    (3, 3, (1, 4), dict(stride=2, padding=1, groups=3), (2, 7, 9)),
    (3, 8, 3, dict(padding=1), (64, 12, 12)),
]


@pytest.mark.parametrize("dt", DTYPES)
def test_conv2d_and_pools(backend, dt):
    rng = np.random.default_rng(4)
    for cin, cout, k, kw, (n, h, w) in CONV_CASES:
        check_module(nn.Conv2d(cin, cout, k, dtype=dt, **kw), tnn.Conv2d(cin, cout, k, **kw),
                     (n, cin, h, w), dt, rng, scale=5, kinds=("c", "f"))
    pools = [((3, 2), None, (1, 1), True, False), (3, 2, 1, False, True),
             (2, (1, 2), 0, True, True)]
    for k, stride, pad, ceil, cip in pools:
        for shape in ((1, 2, 7, 8), (128, 4, 10, 9)):
            check_module(nn.MaxPool2d(k, stride, pad, ceil_mode=ceil),
                         tnn.MaxPool2d(k, stride, pad, ceil_mode=ceil), shape, dt, rng,
                         kinds=("s",))
            check_module(nn.AvgPool2d(k, stride, pad, ceil_mode=ceil, count_include_pad=cip),
                         tnn.AvgPool2d(k, stride, pad, ceil_mode=ceil, count_include_pad=cip),
                         shape, dt, rng, kinds=("f",))
    x = rng.integers(0, 3, (2, 3, 7, 6)).astype(dt)  # ties: the first maximum, as torch
    xt = T(x).requires_grad_(True)
    yt = F.max_pool2d(xt, 3, 2, 1, ceil_mode=True)
    g = rng.standard_normal(tuple(yt.shape)).astype(dt)
    yt.backward(T(g))
    pool = nn.MaxPool2d(3, 2, 1, ceil_mode=True)
    np.testing.assert_array_equal(pool.forward(x), yt.detach().numpy())
    np.testing.assert_allclose(pool.backward(g), xt.grad.numpy(), **tol(dt))


@pytest.mark.parametrize("dt", DTYPES)
def test_sequential_mlp_and_cnn(backend, dt):
    rng = np.random.default_rng(5)
    fm = nn.Sequential(nn.Linear(6, 8, dtype=dt), nn.ReLU(), nn.Linear(8, 7, dtype=dt),
                       nn.BatchNorm1d(7, dtype=dt), nn.Tanh(),
                       nn.Sequential(nn.Linear(7, 5, dtype=dt), nn.GELU()),
                       nn.Linear(5, 3, dtype=dt))
    tm = tnn.Sequential(tnn.Linear(6, 8), tnn.ReLU(), tnn.Linear(8, 7), tnn.BatchNorm1d(7),
                        tnn.Tanh(), tnn.Sequential(tnn.Linear(7, 5), tnn.GELU()),
                        tnn.Linear(5, 3))
    for n in (2, 4096):
        check_module(fm, tm, (n, 6), dt, rng, scale=50, kinds=("c", "f"),
                     bias_before_bn=("2.bias",))
    fm = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, dtype=dt), nn.BatchNorm2d(4, dtype=dt),
                       nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 5, dtype=dt))
    tm = tnn.Sequential(tnn.Conv2d(2, 4, 3, padding=1), tnn.BatchNorm2d(4), tnn.ReLU(),
                        tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(64, 5))
    check_module(fm, tm, (5, 2, 8, 8), dt, rng, scale=20, kinds=("c",),
                 bias_before_bn=("0.bias",))


# ------------------------------------------------------------------------ losses
@pytest.mark.parametrize("dt", DTYPES)
def test_losses_forward_and_gradient(backend, dt):
    rng = np.random.default_rng(6)
    t = tol(dt)
    for n, c in ((1, 3), (4096, 10)):
        logits = rng.standard_normal((n, c)).astype(dt) * 3
        labels = rng.integers(0, c, n)
        probs = rng.random((n, c)).astype(dt)  # rows need not sum to 1
        pred = rng.uniform(0.01, 0.99, (n, c)).astype(dt)
        cases = [(nn.CrossEntropyLoss(), tnn.CrossEntropyLoss(), logits, labels),
                 (nn.CrossEntropyLoss(), tnn.CrossEntropyLoss(), logits, probs),
                 (nn.MSELoss(), tnn.MSELoss(), logits, probs),
                 (nn.BCELoss(), tnn.BCELoss(), pred, probs)]
        for f, tf, p, target in cases:
            pt = T(p).requires_grad_(True)
            loss = tf(pt, T(target))
            loss.backward()
            value = f.forward(awkward(p, "f"),
                              awkward(target, "s") if target.ndim == 2 else target)
            assert isinstance(value, float)
            np.testing.assert_allclose(value, loss.item(), **t)
            np.testing.assert_allclose(f.backward(), pt.grad.numpy(), **t)
    p, target = np.array([[0.0, 1.0, 0.0, 1e-20]], dt), np.array([[1.0, 0.0, 0.5, 1.0]], dt)
    pt = T(p).requires_grad_(True)
    loss = tnn.BCELoss()(pt, T(target))
    loss.backward()
    f = nn.BCELoss()
    np.testing.assert_allclose(f.forward(p, target), loss.item(), **t)  # log clamped at -100
    np.testing.assert_allclose(f.backward(), pt.grad.numpy(), rtol=1e-5)


# ---------------------------------------------------------------------- optimizers
OPTIM_CASES = [("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
               ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
               ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3)),
               ("Adam", dict(lr=0.01, weight_decay=0.1)),
               ("Adam", dict(lr=0.02, betas=(0.8, 0.9), eps=1e-6, amsgrad=True))]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_optimizers_step_for_step(backend, dt, threads):
    rng = np.random.default_rng(7)
    before = fastnn.get_num_threads() if hasattr(fastnn, "get_num_threads") else None
    fastnn.set_num_threads(threads)
    try:
        for name, kw in OPTIM_CASES:
            values = [rng.standard_normal(s).astype(dt) for s in ((7, 5), (7,), (300, 200))]
            fp = [nn.Parameter(v.copy()) for v in values]
            tp = [torch.nn.Parameter(T(v.copy())) for v in values]
            fo, to = getattr(optim, name)(fp, **kw), getattr(torch.optim, name)(tp, **kw)
            for it in range(4):
                for a, b in zip(fp, tp):
                    g = rng.standard_normal(a.data.shape).astype(dt)
                    a.grad = np.asfortranarray(g) if it % 2 else g.copy()
                    b.grad = T(g.copy())
                fo.step()
                to.step()
            for a, b in zip(fp, tp):
                np.testing.assert_allclose(a.data, b.detach().numpy(), **tol(dt, 10))
    finally:
        if before is not None:
            fastnn.set_num_threads(before)


# ------------------------------------------------------------ init and state dicts
def test_default_init_is_torchs_kaiming_uniform():
    rng_layers = [(nn.Linear(3, 2000), 1 / math.sqrt(3)),
                  (nn.Conv2d(4, 64, (2, 5), groups=2), 1 / math.sqrt(2 * 2 * 5))]
    for layer, bound in rng_layers:
        w = layer.weight.data
        assert w.dtype == np.float32
        assert 0.95 * bound < np.abs(w).max() <= bound * (1 + 1e-6)
        assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound
        assert np.abs(layer.bias.data).max() <= bound * (1 + 1e-6)
    assert nn.Conv2d(4, 64, (2, 5), groups=2).weight.data.shape == (64, 2, 2, 5)


@pytest.mark.parametrize("dt", DTYPES)
def test_state_dict_round_trip_with_torch(dt):
    rng = np.random.default_rng(8)
    fm = nn.Sequential(nn.Conv2d(2, 3, 3, bias=False, dtype=dt), nn.BatchNorm2d(3, dtype=dt),
                       nn.Flatten(), nn.Linear(12, 2, dtype=dt))
    tm = twin(tnn.Sequential(tnn.Conv2d(2, 3, 3, bias=False), tnn.BatchNorm2d(3), tnn.Flatten(),
                             tnn.Linear(12, 2)), dt)
    for _ in range(2):
        fm.forward(rng.standard_normal((4, 2, 4, 4)).astype(dt))
    state = fm.state_dict()
    tm.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in state.items()}, strict=True)
    for k, v in tm.state_dict().items():
        np.testing.assert_array_equal(np.asarray(state[k]), v.numpy())
    fresh = nn.Sequential(nn.Conv2d(2, 3, 3, bias=False, dtype=dt), nn.BatchNorm2d(3, dtype=dt),
                          nn.Flatten(), nn.Linear(12, 2, dtype=dt))
    fresh.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    x = rng.standard_normal((3, 2, 4, 4)).astype(dt)
    np.testing.assert_array_equal(fresh.eval().forward(x), fm.eval().forward(x))


# ---------------------------------------------------------------------- ops kernels
@pytest.mark.parametrize("dt", DTYPES)
def test_ops_kernels(backend, dt):
    rng = np.random.default_rng(9)
    t = tol(dt, 5)
    x, w, b = (rng.standard_normal(s).astype(dt) for s in ((4096, 13), (11, 13), (11,)))
    xt, wt, bt = (T(a).requires_grad_(True) for a in (x, w, b))
    yt = torch.tanh(F.linear(xt, wt, bt))
    y = ops.linear_forward(np.asfortranarray(x), w, b, activation="tanh")
    np.testing.assert_allclose(y, yt.detach().numpy(), **t)
    g = rng.standard_normal(y.shape).astype(dt)
    yt.backward(T(g))
    gw, gb = np.ones_like(w), np.ones_like(b)  # accumulated into
    gx = ops.linear_backward(g, x, w, y=y, activation="tanh", grad_weight=gw, grad_bias=gb)
    np.testing.assert_allclose(gx, xt.grad.numpy(), **t)
    np.testing.assert_allclose(gw - 1, wt.grad.numpy(), **tol(dt, 50))
    np.testing.assert_allclose(gb - 1, bt.grad.numpy(), **tol(dt, 50))
    for name, tf, saved in (("relu", F.relu, "y"), ("sigmoid", torch.sigmoid, "y"),
                            ("gelu", F.gelu, "x"), ("leaky_relu", F.leaky_relu, "x"),
                            ("sine", torch.sin, "x"), ("softmax", lambda z: F.softmax(z, 1), "y")):
        xt = T(x).requires_grad_(True)
        yt = tf(xt)
        yt.backward(T(g[:, :1].repeat(13, 1)))
        y = getattr(ops, name)(x)
        np.testing.assert_allclose(y, yt.detach().numpy(), **t)
        grad = getattr(ops, name + "_backward")(g[:, :1].repeat(13, 1), y if saved == "y" else x)
        np.testing.assert_allclose(grad, xt.grad.numpy(), **t)
    labels = rng.integers(0, 13, 4096)
    xt = T(x).requires_grad_(True)
    F.cross_entropy(xt, torch.from_numpy(labels)).backward()
    value, grad = ops.softmax_cross_entropy(x, labels)
    np.testing.assert_allclose(value, F.cross_entropy(T(x), torch.from_numpy(labels)).item(), **t)
    np.testing.assert_allclose(grad, xt.grad.numpy(), **t)
    value, grad = ops.mse_loss(x, np.zeros_like(x))
    np.testing.assert_allclose(value, (x ** 2).mean(), **t)
    # batchnorm, conv2d, pooling, optimizer updates
    x4 = rng.standard_normal((3, 5, 6, 7)).astype(dt)
    gamma, beta = rng.uniform(0.5, 1.5, 5).astype(dt), rng.standard_normal(5).astype(dt)
    rm, rv = np.zeros(5, dt), np.ones(5, dt)
    xt, gt, bt2 = (T(a).requires_grad_(True) for a in (x4, gamma, beta))
    trm, trv = torch.zeros(5, dtype=xt.dtype), torch.ones(5, dtype=xt.dtype)
    yt = F.batch_norm(xt, trm, trv, gt, bt2, True, 0.1, 1e-5)
    out, mean, invstd = ops.batchnorm_forward(x4, gamma, beta, rm, rv, True)
    np.testing.assert_allclose(out, yt.detach().numpy(), **t)
    np.testing.assert_allclose(rv, trv.numpy(), **t)
    g4 = rng.standard_normal(x4.shape).astype(dt)
    yt.backward(T(g4))
    ggamma, gbeta = np.zeros(5, dt), np.zeros(5, dt)
    gin = ops.batchnorm_backward(g4, x4, gamma, mean, invstd, True, grad_weight=ggamma,
                                 grad_bias=gbeta)
    np.testing.assert_allclose(gin, xt.grad.numpy(), **t)
    np.testing.assert_allclose(ggamma, gt.grad.numpy(), **tol(dt, 20))
    kernel = rng.standard_normal((4, 5, 3, 2)).astype(dt)
    xt, kt = T(x4).requires_grad_(True), T(kernel).requires_grad_(True)
    yt = F.conv2d(xt, kt, None, stride=(2, 1), padding=(1, 2))
    y = ops.conv2d_forward(x4, kernel, None, (2, 1), (1, 2))
    np.testing.assert_allclose(y, yt.detach().numpy(), **t)
    gy = rng.standard_normal(y.shape).astype(dt)
    yt.backward(T(gy))
    gk = np.zeros_like(kernel)
    np.testing.assert_allclose(ops.conv2d_backward(gy, x4, kernel, (2, 1), (1, 2), grad_weight=gk),
                               xt.grad.numpy(), **t)
    np.testing.assert_allclose(gk, kt.grad.numpy(), **tol(dt, 20))
    y, idx = ops.max_pool2d_forward(x4, 3, 2, 1)
    np.testing.assert_array_equal(y, F.max_pool2d(T(x4), 3, 2, 1).numpy())
    y = ops.avg_pool2d_forward(x4, 3, 2, 1, count_include_pad=False)
    np.testing.assert_allclose(y, F.avg_pool2d(T(x4), 3, 2, 1, count_include_pad=False).numpy(),
                               **t)
    p, v = rng.standard_normal(50).astype(dt), np.zeros(50, dt)
    tp = torch.nn.Parameter(T(p.copy()))
    to = torch.optim.SGD([tp], lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True)
    for _ in range(3):
        grad = rng.standard_normal(50).astype(dt)
        tp.grad = T(grad)
        to.step()
        ops.sgd_update(p, grad, v, 0.1, 0.9, 0.01, True)
    np.testing.assert_allclose(p, tp.detach().numpy(), **t)


# --------------------------------------------------------- the fix: strided .data/.grad
@pytest.mark.parametrize("dt", DTYPES)
def test_strided_parameter_data_and_grad(backend, dt):
    rng = np.random.default_rng(10)
    tl, fl = twin(tnn.Linear(6, 4), dt), nn.Linear(6, 4, dtype=dt)
    w_in_out = np.ascontiguousarray(tl.weight.detach().numpy().T)
    fl.weight.data = w_in_out.T  # a Fortran-order view, as when porting (in, out) weights
    fl.bias.data = np.repeat(tl.bias.detach().numpy(), 2)[::2]
    fl.weight.grad = np.asfortranarray(np.ones((4, 6), dt))
    assert fl.weight.data.flags.c_contiguous and fl.weight.grad.flags.c_contiguous
    x, g = rng.standard_normal((5, 6)).astype(dt), rng.standard_normal((5, 4)).astype(dt)
    xt = T(x).requires_grad_(True)
    yt = tl(xt)
    yt.backward(T(g))
    np.testing.assert_allclose(fl.forward(x), yt.detach().numpy(), **tol(dt))
    np.testing.assert_allclose(fl.backward(g), xt.grad.numpy(), **tol(dt))
    np.testing.assert_allclose(fl.weight.grad, 1 + tl.weight.grad.numpy(), **tol(dt))
    tc, fc = twin(tnn.Conv2d(3, 4, 3, padding=1), dt), nn.Conv2d(3, 4, 3, padding=1, dtype=dt)
    fc.load_state_dict({"weight": np.asfortranarray(tc.weight.detach().numpy()),
                        "bias": tc.bias.detach().numpy()}, assign=True)
    x = rng.standard_normal((2, 3, 5, 5)).astype(dt)
    np.testing.assert_allclose(fc.forward(x), tc(T(x)).detach().numpy(), **tol(dt, 5))
    same = np.zeros((4, 6), dt)
    fl.weight.data = same  # a C-contiguous array is kept itself (shared)
    assert fl.weight.data is same
