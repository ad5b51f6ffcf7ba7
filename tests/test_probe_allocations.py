"""Steady-state training steps allocate no arrays beyond the ones the contract hands back.

Probed as users train (layer / model / optimizer level; the kernel-level out= tests are in
test_numba_buffers.py, test_cython_kernels.py and test_dense_transposed.py): after warm-up
steps of one shape, each part of a step is measured with tracemalloc's peak, which sees
every array allocated in between, temporaries included (a snapshot comparison sees only
what is still alive, so a buffer replaced by another of the same size passes it). The
layers here are wide enough that their arrays and the kernels' work arrays are mostly
32 KB or more, against a slack of 16 KB (Python's own small objects). What the contract
makes fresh is allowed for: ``forward``'s output, the loss's gradient, ``backward``'s
input gradient.

Pinned defects: the kernels' scratch store (kernels/scratch.py) kept one array per name,
so a network asking for a name at two shapes reallocated at every call, every step: the
transposed Linear product of each wide layer (both backends), numba's BatchNorm partial
sums and coefficients and every conv's patch matrices (numba ConvNet width 0.25 on 32x32,
batch 16: 10.8 MB a step); MultiTaskNet ran its layers through their public calls, a
fresh array for every intermediate and gradient (19 a step).
"""
import numpy as np
import pytest

import fastnn
from allocation_peaks import peak_bytes
from fastnn import backend, models, nn, optim
from fastnn.kernels.scratch import KEPT_PER_NAME, scratch
from fastnn.models.multitask import MultiTaskLoss, MultiTaskNet

COMPILED = [b for b in ("numba", "cython") if b in fastnn.backends()]
SLACK = 16 * 1024


@pytest.fixture(params=COMPILED)
def compiled(request):
    with fastnn.use_backend(request.param):
        yield request.param


def _nbytes(*arrays):
    return sum(a.nbytes for a in arrays if a is not None)


def _steady_step(model, loss_fn, opt, x, y, zero):
    """One measured training step: {part: (bytes over what the contract makes fresh)}."""
    logits, fwd = peak_bytes(lambda: model(x))
    _, lf = peak_bytes(lambda: loss_fn(logits, y))
    g = loss_fn.backward()
    _, bwd = peak_bytes(lambda: model.backward(g, need_grad_in=False))
    _, step = peak_bytes(opt.step)
    _, zg = peak_bytes(zero)
    return {"forward": fwd - logits.nbytes, "loss": lf - g.nbytes, "backward": bwd,
            "step": step, "zero_grad": zg}


F32 = np.float32
CASES = {
    # wide layers of two widths (the transposed product's scratch at two shapes), numba's
    # BatchNorm partial sums and coefficients at two widths, dropout
    "mlp_bn_dropout": (lambda: models.MLP(256, [512, 256], 10, batchnorm=True, dropout=0.2),
                       (64, 256), 10, nn.CrossEntropyLoss,
                       lambda p: optim.SGD(p, lr=0.01, momentum=0.9, weight_decay=1e-4,
                                           nesterov=True)),
    "mlp_leaky_mse": (lambda: models.MLP(256, [512, 256], 128, activation="leaky_relu"),
                      (64, 256), None, nn.MSELoss, lambda p: optim.AdamW(p, lr=1e-3)),
    "mlp_bce": (lambda: models.MLP(256, [512, 256], 128, batchnorm=True),
                (64, 256), "binary", nn.BCEWithLogitsLoss, lambda p: optim.Adam(p, lr=1e-3)),
    # every conv's patch matrices and partial weight gradients at its own shape
    "smallcnn": (lambda: models.SmallCNN(channels=(8, 16), hidden=64, dropout=0.25),
                 (32, 1, 28, 28), 10, nn.CrossEntropyLoss,
                 lambda p: optim.SGD(p, lr=0.01, momentum=0.9)),
    "convnet": (lambda: models.ConvNet(width=0.125), (8, 3, 32, 32), 10, nn.CrossEntropyLoss,
                lambda p: optim.Adam(p, lr=1e-3)),
    "sequential": (lambda: nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Flatten(),
        nn.Linear(16 * 14 * 14, 128), nn.BatchNorm1d(128), nn.LeakyReLU(0.1),
        nn.Dropout(0.3), nn.Linear(128, 64), nn.Tanh(), nn.Linear(64, 10)),
        (32, 1, 28, 28), 10, nn.CrossEntropyLoss,
        lambda p: optim.SGD(p, lr=0.01, momentum=0.9, weight_decay=1e-4)),
}


def _data(shape, classes, out_shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(F32)
    if classes == "binary":
        y = (rng.random(out_shape) > 0.5).astype(F32)
    elif classes is None:
        y = rng.standard_normal(out_shape).astype(F32)
    else:
        y = rng.integers(0, classes, shape[0])
    return x, y


@pytest.mark.parametrize("case", list(CASES))
def test_steady_state_step_allocates_only_what_it_returns(compiled, case):
    make_model, shape, classes, make_loss, make_opt = CASES[case]
    fastnn.manual_seed(0)
    model, loss_fn = make_model(), make_loss()
    opt = make_opt(model.parameters())
    out_shape = (shape[0], model[-1].out_features)
    x, y = _data(shape, classes, out_shape)
    zeros = [opt.zero_grad, model.zero_grad]
    for i in range(3):  # warm-up: buffers made, kernels compiled
        _steady_step(model, loss_fn, opt, x, y, zeros[i % 2])
    for zero in zeros:
        extra = _steady_step(model, loss_fn, opt, x, y, zero)
        assert all(v < SLACK for v in extra.values()), (case, extra)


def _multitask(seed=0):
    fastnn.manual_seed(seed)
    model = MultiTaskNet(128, 192, 256, 10)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((64, 128)).astype(F32)
    y_a = rng.standard_normal((64, 256)).astype(F32)
    y_b = rng.integers(0, 10, 64)
    return model, MultiTaskLoss(), optim.SGD(model.parameters(), lr=0.01, momentum=0.9), \
        x, y_a, y_b


def test_multitask_net_keeps_its_intermediates_between_steps(compiled):
    model, loss_fn, opt, x, y_a, y_b = _multitask()

    def step():
        (a, logits), fwd = peak_bytes(lambda: model(x))
        _, lf = peak_bytes(lambda: loss_fn(a, logits, y_a, y_b))
        grads = loss_fn.backward()
        grad_x, bwd = peak_bytes(lambda: model.backward(*grads))
        opt.step()
        opt.zero_grad()
        return (fwd - _nbytes(a, logits), lf - _nbytes(*grads), bwd - grad_x.nbytes,
                (a, logits, grads, grad_x))

    for _ in range(3):
        step()
    *extra, _ = step()
    assert all(v < SLACK for v in extra), extra   # 19 arrays of 64 x 192..256 before

    # what it returns stays the caller's: the next step overwrites none of it
    *_, first = step()
    kept = [np.array(v, copy=True) for v in (first[0], first[1], *first[2], first[3])]
    *_, second = step()
    for old, copy in zip((first[0], first[1], *first[2], first[3]), kept):
        np.testing.assert_array_equal(old, copy)
    for old, new in zip((first[0], first[1], *first[2], first[3]),
                        (second[0], second[1], *second[2], second[3])):
        assert not np.shares_memory(old, new)


def test_multitask_net_buffers_give_the_same_numbers_as_public_layer_calls(compiled):
    """The buffered path against the layers' public calls (what a hook forces) on a twin:
    equal bit for bit over training steps, and a hook on a layer still sees its arrays."""
    fast, loss_fn, opt, x, y_a, y_b = _multitask()
    hooked, loss2, opt2, *_ = _multitask()
    seen = []
    for layer in hooked.children():
        layer.register_forward_hook(lambda m, args, out: seen.append(out))
    for step in range(3):
        outs = []
        for model, loss, o in ((fast, loss_fn, opt), (hooked, loss2, opt2)):
            fastnn.manual_seed(step)  # the same dropout mask in both
            a, logits = model(x)
            total = loss(a, logits, y_a, y_b)[0]
            grad_x = model.backward(*loss.backward())
            outs.append((a, logits, total, grad_x, [p.grad.copy() for p in model.parameters()]))
            o.step()
            o.zero_grad()
        (a1, l1, t1, g1, p1), (a2, l2, t2, g2, p2) = outs
        assert t1 == t2
        for u, v in [(a1, a2), (l1, l2), (g1, g2), *zip(p1, p2)]:
            np.testing.assert_array_equal(u, v)
    # every layer's hook fired each step and was given a fresh array (all kept alive here)
    assert len(seen) == 3 * 8
    assert len({id(v) for v in seen}) == len(seen)


def test_scratch_keeps_one_array_per_shape_and_a_bounded_number():
    a = scratch("probe_allocations", (3, 5), np.float32)
    b = scratch("probe_allocations", (7,), np.float32)
    c = scratch("probe_allocations", (3, 5), np.float64)
    assert scratch("probe_allocations", (3, 5), np.float32) is a   # alternating shapes
    assert scratch("probe_allocations", (7,), np.float32) is b     # reuse their arrays
    assert scratch("probe_allocations", (3, 5), np.float64) is c
    assert len({id(a), id(b), id(c)}) == 3
    for i in range(KEPT_PER_NAME):  # past the bound the oldest shapes go
        scratch("probe_allocations", (100 + i,), np.float32)
    assert scratch("probe_allocations", (3, 5), np.float32) is not a
    assert scratch("probe_allocations", (100 + KEPT_PER_NAME - 1,), np.float32).shape == (
        100 + KEPT_PER_NAME - 1,)


def test_scratch_aligned_on_request():
    """scratch(..., align=64) starts on a cache line, is kept like any other, and is
    another array than the unaligned one of the same shape."""
    plain = scratch("probe_allocations_aligned", (3, 17), np.float32)
    aligned = scratch("probe_allocations_aligned", (3, 17), np.float32, align=64)
    assert aligned.ctypes.data % 64 == 0 and aligned.shape == (3, 17)
    assert aligned.dtype == np.float32 and aligned.flags.c_contiguous
    assert aligned is not plain
    assert scratch("probe_allocations_aligned", (3, 17), np.float32, align=64) is aligned


@pytest.mark.skipif("numba" not in fastnn.backends(), reason="numba missing")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_batchnorm_columns_scratch_is_aligned(dtype):
    """The numba (N, C) batch norm's scratch (the chunk partials, the per-channel
    coefficients and the mean's copy its passes read) starts on cache lines, every row
    of the coefficients too: misaligned, each 64-byte access of its passes straddled two
    lines (the backward's passes over 256x1024 float32 48.8 + 50.3 -> 44.8 + 44.6 us)."""
    from fastnn.kernels.numba_cpu import batchnorm as nb
    be = backend.load("numba")
    x = np.random.default_rng(0).standard_normal((64, 37)).astype(dtype)
    w, b = np.ones(37, dtype), np.zeros(37, dtype)
    y, sm, si = be.batchnorm_forward(x, w, b, np.zeros(37, dtype), np.ones(37, dtype))
    be.batchnorm_backward(x, x, w, sm, si, grad_weight=np.zeros(37, dtype),
                          grad_bias=np.zeros(37, dtype))
    assert nb._partials(64, 37).ctypes.data % 64 == 0
    for rows in (3, 4):
        coef = nb._coefficients("bn_coef", rows, 37, dtype)
        assert coef.shape == (rows, 37)
        assert all(coef[k].ctypes.data % 64 == 0 and coef[k].flags.c_contiguous
                   for k in range(rows))


class _Sigmoided:
    """BCELoss on sigmoid(x) (x's sigmoid made once, outside what is measured)."""

    def __init__(self, loss):
        self.loss, self.memo = loss, {}

    def __call__(self, x, y):
        key = (id(x), float(x.flat[0]))
        if key not in self.memo:
            self.memo[key] = (1 / (1 + np.exp(-x))).astype(x.dtype)
        return self.loss(self.memo[key], y)

    def backward(self):
        return self.loss.backward()


@pytest.mark.parametrize("make, target", [
    (nn.CrossEntropyLoss, lambda rng: rng.integers(0, 64, 256)),
    (nn.MSELoss, lambda rng: rng.standard_normal((256, 64)).astype(np.float32)),
    (lambda: _Sigmoided(nn.BCELoss()),
     lambda rng: rng.uniform(size=(256, 64)).astype(np.float32)),
    (nn.BCEWithLogitsLoss, lambda rng: rng.uniform(size=(256, 64)).astype(np.float32)),
    (nn.L1Loss, lambda rng: rng.standard_normal((256, 64)).astype(np.float32)),
    (nn.SmoothL1Loss, lambda rng: rng.standard_normal((256, 64)).astype(np.float32))],
    ids=["cross_entropy", "mse", "bce", "bce_with_logits", "l1", "smooth_l1"])
def test_loss_forward_writes_its_gradient_into_its_own_array(compiled, make, target):
    """The course losses' forward write the gradient into an array the loss keeps (it
    had been a new one each step, then copied again by backward); backward still hands
    out a fresh copy, which the caller may change."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 64)).astype(np.float32)
    y = target(rng)
    loss_fn = make()
    for _ in range(2):
        loss_fn(x, y)
    _, allocated = peak_bytes(lambda: loss_fn(x, y))
    assert allocated <= SLACK
    first = loss_fn.backward()
    want = first.copy()
    first[...] = 7
    np.testing.assert_array_equal(loss_fn.backward(), want)
    loss_fn(x * 2, y)
    assert not np.array_equal(loss_fn.backward(), want)
    np.testing.assert_array_equal(first, 7)   # the caller's array untouched by the forward
