"""Where the compiled kernels' fast-math once changed results: a huge logit cancelling
the BCE-with-logits sum (float64, numba), in-place softmax summed by one scalar float32
accumulator (numba), the optimizers' (1 - beta2) g g formed as (1 - beta2) (g g) (inf in
float32 past |g| = 1.8e19), 1 - beta formed in float32 (Cython), and a loss's bits that
depended on where its gradient array lay (numba). Each as the reference and PyTorch, or
bit for bit, on every backend."""
import numpy as np
import pytest
import torch

import fastnn
from fastnn import ops, optim, nn


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_bce_with_logits_large_and_infinite_logits(backend, dt):
    x = np.array([100.0, -1e20] + [0.0] * 30, dt)
    t = np.zeros(32, dt)
    want = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(x), torch.tensor(t)).item()
    assert ops.bce_with_logits_loss(x, t)[0] == pytest.approx(want, rel=1e-6)
    x = np.array([1e20, 0.5, -3e19], dt)
    t = np.array([1.0, 0.3, 0.0], dt)
    want = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(x), torch.tensor(t)).item()
    assert ops.bce_with_logits_loss(x, t)[0] == pytest.approx(want, rel=1e-6)
    with np.errstate(all="ignore"):
        for xi, ti in [(np.inf, 0.0), (np.inf, 0.5), (np.inf, 1.0), (-np.inf, 0.0),
                       (-np.inf, 0.5), (-np.inf, 1.0)]:
            xs, ts = np.array([xi, 0.3], dt), np.array([ti, 1.0], dt)
            want = torch.nn.functional.binary_cross_entropy_with_logits(
                torch.tensor(xs), torch.tensor(ts)).item()
            got = ops.bce_with_logits_loss(xs, ts)[0]
            assert (np.isnan(got) and np.isnan(want)) or got == want, (xi, ti, got, want)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_in_place_wide_row_as_out_of_place(backend, op):
    x = np.random.default_rng(0).standard_normal((1, 400_000)).astype(np.float32)
    out = getattr(ops, op)(x.copy())
    inplace = x.copy()
    getattr(ops, op)(inplace, out=inplace)
    exact = getattr(torch, op)(torch.tensor(x, dtype=torch.float64), dim=1).numpy()
    if op == "softmax":
        err = np.abs(inplace / exact - 1).max()
        assert err < 5e-5 and np.abs(out / exact - 1).max() < 5e-5
    else:
        assert np.abs(inplace - exact).max() < 5e-5 and np.abs(out - exact).max() < 5e-5


def _twins(name, kwargs, grads, dtype=np.float32):
    p = nn.Parameter(np.full(len(grads[0]), 0.5, dtype))
    q = torch.tensor(np.full(len(grads[0]), 0.5, dtype), requires_grad=True)
    opt = getattr(optim, name)([p], **kwargs)
    topt = getattr(torch.optim, name)([q], **kwargs)
    for g in grads:
        p.grad[...] = g
        q.grad = torch.tensor(np.asarray(g, dtype))
        opt.step()
        topt.step()
    return p, q, opt, topt


@pytest.mark.parametrize("name,kwargs,key", [
    ("Adam", {"lr": 0.1}, "exp_avg_sq"), ("Adam", {"lr": 0.1, "amsgrad": True}, "exp_avg_sq"),
    ("AdamW", {"lr": 0.1}, "exp_avg_sq"), ("RMSprop", {"lr": 0.1}, "square_avg"),
    ("RMSprop", {"lr": 0.1, "centered": True, "momentum": 0.5}, "square_avg"),
    ("RAdam", {"lr": 0.1}, "exp_avg_sq")])
def test_huge_gradients_keep_second_moments_finite(backend, name, kwargs, key):
    p, q, opt, topt = _twins(name, kwargs, [[-1e20, 3e19, 1.0]])
    want = topt.state_dict()["state"][0][key].numpy()
    got = opt.state_dict()["state"][0][key]
    assert np.all(np.isfinite(want))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name,kwargs,key", [
    ("Adam", {"lr": 0.01, "betas": (0.9, 0.99999)}, "exp_avg_sq"),
    ("Adamax", {"lr": 0.01, "betas": (0.99999, 0.999)}, "exp_avg"),
    ("RMSprop", {"lr": 0.01, "alpha": 0.9999}, "square_avg"),
    ("Adadelta", {"lr": 0.5, "rho": 0.99999}, "square_avg")])
def test_one_minus_beta_formed_in_double(backend, name, kwargs, key):
    grads = np.random.default_rng(1).standard_normal((3, 64)).astype(np.float32)
    p, q, opt, topt = _twins(name, kwargs, grads)
    np.testing.assert_allclose(opt.state_dict()["state"][0][key],
                               topt.state_dict()["state"][0][key].numpy(), rtol=1e-5)
    np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-5, atol=1e-7)


def _placed(raw, offset, values):
    """values copied into raw's bytes from offset on (a view of raw)."""
    out = raw[offset:offset + values.nbytes].view(values.dtype).reshape(values.shape)
    out[...] = values
    return out


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("op", ["ce_labels", "ce_probs", "mse", "smooth_l1"])
def test_results_do_not_depend_on_where_the_gradient_lies(backend, dt, op):
    """A loop that stored the gradient and summed the loss was versioned by LLVM on a
    runtime check that the gradient does not overlap the input, and the two versions
    summed in different orders: with the gradient allocated within 256 bytes after the
    logits (as two Python threads' allocations happened to place them), numba's
    softmax-CE of (5, 5) float64 and (6, 10) float32 logits came out 1 ulp off. The same
    bits now wherever the arrays lie. (The backend's kernels themselves: ops refuses
    arrays cut from one buffer.)"""
    kernels = fastnn.backend.current()
    rng = np.random.default_rng(3)
    shape = {"ce_labels": (6, 10), "ce_probs": (5, 7)}.get(op, (5, 5))
    for _ in range(8):
        x = rng.standard_normal(shape).astype(dt)
        other = rng.standard_normal(shape).astype(dt)
        results = set()
        for gap in (-512, -256, x.nbytes, x.nbytes + 8, x.nbytes + 24, x.nbytes + 56, 4096):
            raw = np.zeros(16384, np.uint8)
            xs = _placed(raw, 8192, x)
            grad = raw[8192 + gap:8192 + gap + x.nbytes].view(dt).reshape(shape)
            if op == "ce_labels":
                loss, g = kernels.softmax_cross_entropy(xs, np.arange(shape[0]) % shape[1],
                                                        grad=grad)
            elif op == "ce_probs":
                loss, g = kernels.softmax_cross_entropy(xs, np.abs(other), grad=grad)
            elif op == "mse":
                loss, g = kernels.mse_loss(xs, other, grad=grad)
            else:
                loss, g = kernels.smooth_l1_loss(xs, other, grad=grad)
            results.add(np.float64(loss).tobytes() + g.tobytes())
        assert len(results) == 1


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("op", ["mse_loss", "smooth_l1_loss", "bce_loss"])
def test_losses_in_place_as_out_of_place(backend, dt, op):
    """grad=pred and grad=target (which the losses allow) give the out-of-place loss and
    gradient bit for bit: a gradient stored before the loss was summed from the same
    arrays had once made numba's in-place MSE and smooth-L1 losses wrong, and numba's
    BCE summed in place in another order (its stores and sum in one loop)."""
    kernels = fastnn.backend.current()
    rng = np.random.default_rng(5)
    for n in (7, 100, 3000):
        p = rng.uniform(0.02, 0.98, n).astype(dt)
        t = rng.uniform(0.0, 1.0, n).astype(dt)
        want_loss, want_grad = getattr(kernels, op)(p, t, grad=np.empty_like(p))
        for which in ("pred", "target"):
            a, b = p.copy(), t.copy()
            loss, grad = getattr(kernels, op)(a, b, grad=a if which == "pred" else b)
            assert np.float64(loss).tobytes() == np.float64(want_loss).tobytes(), which
            np.testing.assert_array_equal(grad, want_grad)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("op", ["ce_labels", "ce_probs", "softmax"])
def test_wide_rows_and_row_blocks_with_the_gradient_over_earlier_rows(backend, dt, op):
    """As above for the row kernels' blocks (numba: ~1024 values a block, rows of 128
    values or more one exp call each): a gradient (softmax: out) lying over the logits'
    earlier rows, whole rows or rows and a value behind, gives the bits of a separate
    one, for rows of 127 to 1025 values and several blocks of narrow rows."""
    kernels = fastnn.backend.current()
    rng = np.random.default_rng(4)
    for shape in [(17, 129), (5, 300), (3, 1025), (9, 127), (70, 64)]:
        x = (rng.standard_normal(shape) * 10).astype(dt)
        t = np.abs(rng.standard_normal(shape)).astype(dt)
        labels = np.arange(shape[0]) % shape[1]
        row = x.nbytes // shape[0]

        def call(xs, grad):
            if op == "softmax":
                return kernels.softmax(xs, out=grad).tobytes()
            loss, g = kernels.softmax_cross_entropy(
                xs, labels if op == "ce_labels" else t, grad=grad)
            return np.float64(loss).tobytes() + g.tobytes()
        want = call(x.copy(), np.empty_like(x))
        for gap in (-row, -row - x.itemsize, -2 * row, -x.nbytes + row):
            raw = np.zeros(4 * x.nbytes, np.uint8)
            xs = _placed(raw, 2 * x.nbytes, x)
            grad = raw[2 * x.nbytes + gap:3 * x.nbytes + gap].view(dt).reshape(shape)
            assert call(xs, grad) == want, (shape, gap)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_rows_do_not_depend_on_their_block(backend, dt, name):
    """Each row of softmax and log-softmax has the bits it has alone, whatever block of
    rows (numba: ~1024 values, a flat exp pass over the block below 128 values a row)
    and kernel variant (serial, or parallel from 32768 values) it falls in: widths and
    row counts about the block's edges, rows with inf, NaN and all -inf."""
    rng = np.random.default_rng(6)
    for n, c in [(65, 1), (17, 63), (65, 127), (17, 128), (9, 129), (3, 1023), (3, 1025),
                 (2049, 16), (257, 127), (33, 1025)]:
        x = (rng.standard_normal((n, c)) * 30).astype(dt)
        x.reshape(-1)[::97] = np.inf
        x.reshape(-1)[13::89] = np.nan
        x[n // 2] = -np.inf
        with np.errstate(invalid="ignore"):   # (the NumPy backend's inf - inf)
            y = getattr(ops, name)(x)
            for i in sorted({0, 1, n // 2, n - 2, n - 1}):
                np.testing.assert_array_equal(getattr(ops, name)(x[i:i + 1]), y[i:i + 1],
                                              err_msg=f"{(n, c)} row {i}")
