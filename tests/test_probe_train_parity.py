"""End-to-end training parity with PyTorch: the same network (weights copied), the same
mini-batches in the same order, the per-step losses and the final weights compared.

float64 runs follow torch to rounding (~1e-12 relative over the run): any systematic
difference in an optimizer's update order, weight decay, BatchNorm's running statistics,
dropout's scaling or a loss's reduction would show far above that. float32 runs of a
smooth network stay within float32 drift. Data: scikit-learn's digits (8x8 images).
"""
import numpy as np
import pytest

import fastnn
from fastnn import nn, optim

torch = pytest.importorskip("torch")
tnn = torch.nn

BACKENDS = [b for b in ("numba", "cython") if b in fastnn.backends()]
MLP = [("Linear", (64, 32)), ("LeakyReLU", ()), ("Linear", (32, 32)), ("LeakyReLU", ()),
       ("Linear", (32, 10))]


@pytest.fixture(scope="module")
def digits():
    x_train, y_train, x_test, y_test = fastnn.data.load("digits", flatten=True)
    return x_train[:640], y_train[:640], x_test[:200], y_test[:200]


class TorchSine(tnn.Module):
    def forward(self, x):
        return torch.sin(x)


class TorchMaskDropout(tnn.Module):
    """Multiplies by the mask fastnn's Dropout drew for the same batch (set per step)."""

    mask = None

    def forward(self, x):
        return x * self.mask if self.training else x


def _layer(spec, torch_side):
    name, args = spec
    if torch_side and name == "Sine":
        return TorchSine()
    if torch_side and name == "Dropout":
        return TorchMaskDropout()
    return getattr(tnn if torch_side else nn, name)(*args)


def _twins(spec, dtype):
    """A fastnn Sequential and its torch twin with fastnn's initial weights."""
    fm = nn.Sequential(*[_layer(s, False) for s in spec])
    tm = tnn.Sequential(*[_layer(s, True) for s in spec])
    if dtype == np.float64:
        fm, tm = fm.double(), tm.double()
    state = fm.state_dict()
    assert list(state) == list(tm.state_dict())
    tm.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    return fm, tm


def _batches(n, batch, steps, seed=0):
    """Index arrays of `steps` shuffled mini-batches; a new epoch flag on each batch."""
    rng = np.random.default_rng(seed)
    perm, pos = rng.permutation(n), 0
    for _ in range(steps):
        epoch_end = pos + batch > n
        if epoch_end:
            perm, pos = rng.permutation(n), 0
        yield perm[pos:pos + batch], epoch_end
        pos += batch


def _train(backend, spec, opt, loss, x, y, dtype=np.float64, steps=15, batch=32,
           clip=None, sched=None, seed=0):
    """Trains both twins; returns (fastnn losses, torch losses, fastnn model, torch model,
    clip norms (fastnn, torch))."""
    fastnn.set_backend(backend)
    fastnn.manual_seed(seed)
    fm, tm = _twins(spec, dtype)
    opt_name, opt_kw = opt
    fo = getattr(optim, opt_name)(fm.parameters(), **opt_kw)
    to = getattr(torch.optim, opt_name)(tm.parameters(), **opt_kw)
    if sched:
        fs = getattr(optim.lr_scheduler, sched[0])(fo, **sched[1])
        ts = getattr(torch.optim.lr_scheduler, sched[0])(to, **sched[1])
    fl, tl = getattr(nn, loss)(), getattr(tnn, loss)()
    curves, norms = ([], []), ([], [])
    for idx, epoch_end in _batches(len(x), batch, steps, seed):
        if epoch_end and sched:
            fs.step()
            ts.step()
        xb = x[idx].astype(dtype)
        yb = y[idx] if loss == "CrossEntropyLoss" else y[idx].astype(dtype)
        fo.zero_grad()
        out = fm(xb)
        for fl_layer, tl_layer in zip(fm, tm):
            if isinstance(tl_layer, TorchMaskDropout):
                tl_layer.mask = torch.from_numpy(np.array(fl_layer._mask))
        curves[0].append(float(fl(out, yb)))
        fm.backward(fl.backward())
        to.zero_grad()
        lt = tl(tm(torch.from_numpy(xb)), torch.from_numpy(yb))
        lt.backward()
        curves[1].append(lt.item())
        if clip:
            norms[0].append(nn.utils.clip_grad_norm_(fm.parameters(), clip).item())
            norms[1].append(tnn.utils.clip_grad_norm_(tm.parameters(), clip).item())
        fo.step()
        to.step()
    return np.array(curves[0]), np.array(curves[1]), fm, tm, norms


def _assert_weights(fm, tm, rtol):
    ref = tm.state_dict()
    for key, value in fm.state_dict().items():
        np.testing.assert_allclose(np.asarray(value, dtype=np.float64),
                                   ref[key].double().numpy(), rtol=rtol,
                                   atol=rtol * float(ref[key].double().abs().max()),
                                   err_msg=key)


def _assert_eval(fm, tm, x, dtype, rtol):
    fm.eval()
    tm.eval()
    xe = x[:100].astype(dtype)
    with torch.no_grad():
        expected = tm(torch.from_numpy(xe)).numpy()
    np.testing.assert_allclose(fm(xe), expected, rtol=rtol, atol=rtol * np.abs(expected).max())


def _check(result, x, rtol=1e-10, dtype=np.float64):
    f, t, fm, tm, _ = result
    np.testing.assert_allclose(f, t, rtol=rtol)
    _assert_weights(fm, tm, rtol)
    _assert_eval(fm, tm, x, dtype, rtol)


SGD = ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=True))

OPTIMIZERS = [
    SGD,
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-3)),
    ("Adam", dict(lr=1e-3, weight_decay=1e-3)),
    ("Adam", dict(lr=1e-3, amsgrad=True)),
    ("AdamW", dict(lr=1e-3, weight_decay=0.05)),
    ("AdamW", dict(lr=1e-3, weight_decay=0.05, amsgrad=True)),
    ("RMSprop", dict(lr=1e-3, momentum=0.9, centered=True, weight_decay=1e-3)),
    ("RMSprop", dict(lr=1e-3)),
    ("Adagrad", dict(lr=1e-2, lr_decay=1e-3, weight_decay=1e-3)),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("opt", OPTIMIZERS, ids=lambda o: f"{o[0]}-{'-'.join(o[1])}")
def test_mlp_optimizers_float64(digits, backend, opt):
    x, y = digits[0], digits[1]
    _check(_train(backend, MLP, opt, "CrossEntropyLoss", x, y), x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batchnorm_running_stats_and_eval(digits, backend):
    x, y = digits[0], digits[1]
    spec = [("Linear", (64, 32)), ("BatchNorm1d", (32,)), ("LeakyReLU", ()),
            ("Linear", (32, 32)), ("BatchNorm1d", (32, 1e-5, None)), ("LeakyReLU", ()),
            ("Linear", (32, 10))]
    result = _train(backend, spec, SGD, "CrossEntropyLoss", x, y)
    _check(result, x)  # state dicts: running_mean/var (unbiased) and num_batches_tracked
    assert int(result[2].state_dict()["1.num_batches_tracked"]) == 15


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_training_with_the_same_mask(digits, backend):
    x, y = digits[0], digits[1]
    spec = [("Linear", (64, 32)), ("LeakyReLU", ()), ("Dropout", (0.3,)),
            ("Linear", (32, 32)), ("LeakyReLU", ()), ("Dropout", (0.5,)), ("Linear", (32, 10))]
    _check(_train(backend, spec, SGD, "CrossEntropyLoss", x, y), x)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("loss", ["MSELoss", "BCEWithLogitsLoss"])
def test_regression_and_multilabel_heads(digits, backend, loss):
    x, y = digits[0], np.eye(10)[digits[1]]
    _check(_train(backend, MLP, SGD, loss, x, y), x)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("act", ["GELU", "Sine"])
def test_gelu_and_sine_mlp(digits, backend, act):
    x, y = digits[0], digits[1]
    spec = [(act if name == "LeakyReLU" else name, args) for name, args in MLP]
    _check(_train(backend, spec, ("SGD", dict(lr=0.05, momentum=0.9)),
                  "CrossEntropyLoss", x, y), x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_small_vgg_cnn(digits, backend):
    x, y = digits[0].reshape(-1, 1, 8, 8), digits[1]
    spec = [("Conv2d", (1, 4, 3, 1, 1)), ("BatchNorm2d", (4,)), ("ReLU", ()),
            ("MaxPool2d", (2,)), ("Conv2d", (4, 8, 3, 1, 1)), ("BatchNorm2d", (8,)),
            ("ReLU", ()), ("MaxPool2d", (2,)), ("Flatten", ()), ("Linear", (32, 10))]
    _check(_train(backend, spec, ("SGD", dict(lr=0.05, momentum=0.9)), "CrossEntropyLoss",
                  x, y, steps=15), x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_clip_grad_norm_in_the_loop(digits, backend):
    x, y = digits[0], digits[1]
    result = _train(backend, MLP, ("SGD", dict(lr=0.5, momentum=0.9)), "CrossEntropyLoss",
                    x, y, clip=0.1)
    _check(result, x)
    fastnn_norms, torch_norms = result[4]
    np.testing.assert_allclose(fastnn_norms, torch_norms, rtol=1e-10)
    assert min(torch_norms) > 0.1  # every step was clipped


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sched", [("StepLR", dict(step_size=1, gamma=0.5)),
                                   ("CosineAnnealingLR", dict(T_max=3))], ids=lambda s: s[0])
def test_lr_scheduler_per_epoch(digits, backend, sched):
    x, y = digits[0][:96], digits[1][:96]  # 3 batches an epoch: 4 scheduler steps
    _check(_train(backend, MLP, ("Adam", dict(lr=1e-2)), "CrossEntropyLoss", x, y,
                  sched=sched), x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_smooth_mlp_stays_within_float32_drift(digits, backend):
    x, y = digits[0], digits[1]
    f, t, fm, tm, _ = _train(backend, MLP, SGD, "CrossEntropyLoss", x, y,
                             dtype=np.float32, steps=30)
    np.testing.assert_allclose(f, t, rtol=1e-4)
    _assert_weights(fm, tm, 1e-4)
    assert all(p.data.dtype == np.float32 for p in fm.parameters())


@pytest.mark.parametrize("backend", BACKENDS)
def test_accumulation_set_to_none_and_plateau_scheduler(digits, backend):
    """torch's loop: zero_grad(set_to_none=True), two micro-batches accumulated (loss / 2),
    clipping, step; ReduceLROnPlateau stepped on a metric each epoch."""
    fastnn.set_backend(backend)
    fastnn.manual_seed(1)
    x, y = digits[0][:256].astype(np.float64), digits[1][:256]
    fm, tm = _twins(MLP, np.float64)
    fo = optim.SGD(fm.parameters(), lr=0.1, momentum=0.9)
    to = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9)
    fs = optim.lr_scheduler.ReduceLROnPlateau(fo, patience=0, factor=0.5)
    ts = torch.optim.lr_scheduler.ReduceLROnPlateau(to, patience=0, factor=0.5)
    fl, tl = nn.CrossEntropyLoss(), tnn.CrossEntropyLoss()
    for epoch in range(3):
        for start in range(0, 256, 64):
            fo.zero_grad(set_to_none=True)
            to.zero_grad(set_to_none=True)
            for half in (start, start + 32):
                xb, yb = x[half:half + 32], y[half:half + 32]
                loss = fl(fm(xb), yb) / 2
                fm.backward(fl.backward() / 2)
                lt = tl(tm(torch.from_numpy(xb)), torch.from_numpy(yb)) / 2
                lt.backward()
                assert loss.item() == pytest.approx(lt.item(), rel=1e-12)
            norm = nn.utils.clip_grad_norm_(fm.parameters(), 1.0)
            assert norm.item() == pytest.approx(
                tnn.utils.clip_grad_norm_(tm.parameters(), 1.0).item(), rel=1e-12)
            fo.step()
            to.step()
        metric = 1.0  # a plateau from the second epoch: the rate halves
        fs.step(metric)
        ts.step(metric)
        assert fs.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-15)
    assert fo.param_groups[0]["lr"] == pytest.approx(0.025)
    _assert_weights(fm, tm, 1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("opt_name", ["SGD", "AdamW"])
def test_frozen_layer_param_groups_and_clipping(digits, backend, opt_name):
    """Fine-tuning: the first Linear frozen (requires_grad False), no decay on biases, a
    smaller rate for the head, clip_grad_norm_ over model.parameters(). A frozen
    parameter's gradient (filled by backward, None in torch) is out of the norm."""
    fastnn.set_backend(backend)
    fastnn.manual_seed(2)
    x, y = digits[0].astype(np.float64), digits[1]
    fm, tm = _twins(MLP, np.float64)
    frozen = fm[0].weight.data.copy()

    def groups(model):
        for p in model[0].parameters():
            p.requires_grad = False
        named = list(model.named_parameters())
        return [dict(params=[p for k, p in named if k.endswith("weight") and k != "4.weight"]),
                dict(params=[p for k, p in named if k.endswith("bias")], weight_decay=0.0),
                dict(params=[model[4].weight], lr=0.01)]

    fo = getattr(optim, opt_name)(groups(fm), lr=0.1, momentum=0.9, weight_decay=1e-2) \
        if opt_name == "SGD" else optim.AdamW(groups(fm), lr=1e-2, weight_decay=0.1)
    to = getattr(torch.optim, opt_name)(groups(tm), lr=0.1, momentum=0.9, weight_decay=1e-2) \
        if opt_name == "SGD" else torch.optim.AdamW(groups(tm), lr=1e-2, weight_decay=0.1)
    fl, tl = nn.CrossEntropyLoss(), tnn.CrossEntropyLoss()
    for idx, _ in _batches(len(x), 32, 20, seed=2):
        fo.zero_grad()
        to.zero_grad()
        fl(fm(x[idx]), y[idx])
        fm.backward(fl.backward())
        tl(tm(torch.from_numpy(x[idx])), torch.from_numpy(y[idx])).backward()
        norm = nn.utils.clip_grad_norm_(fm.parameters(), 0.1)
        assert norm == pytest.approx(tnn.utils.clip_grad_norm_(tm.parameters(), 0.1).item(),
                                     rel=1e-10)
        fo.step()
        to.step()
    np.testing.assert_array_equal(fm[0].weight.data, frozen)
    _assert_weights(fm, tm, 1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_train_mode_statistics(backend, dtype):
    fastnn.set_backend(backend)
    fastnn.manual_seed(0)
    x = np.random.default_rng(0).random((256, 512)).astype(dtype) + 0.5
    for p in (0.2, 0.5):
        layer = nn.Dropout(p)
        y = layer(x)
        keep = y != 0
        assert y.dtype == dtype
        assert abs((1 - keep.mean()) - p) < 0.01
        np.testing.assert_allclose(y[keep], x[keep] / (1 - p), rtol=1e-6)
        assert abs(y.mean() / x.mean() - 1) < 0.01  # inverted dropout keeps the mean
        grad = layer.backward(np.ones_like(x))
        np.testing.assert_array_equal(grad != 0, keep)
        np.testing.assert_allclose(grad[keep], 1 / (1 - p), rtol=1e-6)
        assert not np.array_equal(layer(x) != 0, keep)  # a new mask each call
        layer.eval()
        np.testing.assert_array_equal(layer(x), x)
