"""The pointwise losses' faster paths on every backend, past the compiled backends'
parallel threshold: BCE's one-log path for tiles whose targets are all 0 or 1 (soft
targets, NaN and exact 0 and 1 probabilities in tiles of their own or mixed in), and
BCE with logits' polynomial log1p, against float64 PyTorch; in place bit for bit as out
of place."""
import numpy as np
import pytest

import fastnn

torch = pytest.importorskip("torch")
F = torch.nn.functional

N = 40000   # past the compiled backends' parallel threshold (32768), several tiles


def _bce_inputs(dtype, rng):
    pred = (1 / (1 + np.exp(-3 * rng.standard_normal(N)))).astype(dtype)
    pred[:6] = [0.0, 1.0, 0.0, 1.0, 1e-30, 1 - 2.0 ** -24]
    target = (rng.random(N) > 0.5).astype(dtype)
    target[:4] = [0.0, 1.0, 1.0, 0.0]   # log(0) clamped at -100 on both paths
    target[5000] = 0.3                  # one soft target: its tile takes the two logs
    target[20000:20600] = rng.random(600)   # soft over a tile boundary
    return pred, target


def _torch_bce(fn, x, t):
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    loss = fn(xt, torch.tensor(t.astype(np.float64)))
    loss.backward()
    return loss.item(), xt.grad.numpy()


def test_bce_binary_and_soft_target_tiles_as_pytorch(backend, dtype, rng):
    pred, target = _bce_inputs(dtype, rng)
    kernels = fastnn.backend.current()
    loss, grad = kernels.bce_loss(pred, target)
    want, want_grad = _torch_bce(F.binary_cross_entropy, pred, target)
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-6)
    hard = target.copy()
    hard[5000] = 1.0
    hard[20000:20600] = 0.0
    loss, grad = kernels.bce_loss(pred, hard)
    want, want_grad = _torch_bce(F.binary_cross_entropy, pred, hard)
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-6)


def test_bce_nan_target_in_a_binary_tile_gives_nan(backend, dtype, rng):
    """A NaN target is not 0 or 1: its tile takes the two-log form, and the loss is NaN
    (PyTorch's), not the log of p or 1 - p."""
    pred, target = _bce_inputs(dtype, rng)
    target[20000:20600] = 1.0
    target[5000] = np.nan
    loss, grad = fastnn.backend.current().bce_loss(pred, target)
    assert np.isnan(loss) and np.isnan(grad[5000])
    assert np.isfinite(np.delete(grad, 5000)).all()


@pytest.mark.parametrize("loss_name", ["bce_loss", "bce_with_logits_loss"])
def test_bce_in_place_as_out_of_place_past_the_parallel_threshold(backend, dtype, rng,
                                                                  loss_name):
    pred, target = _bce_inputs(dtype, rng)
    pred[:6] = 0.5
    kernels = fastnn.backend.current()
    fn = getattr(kernels, loss_name)
    want_loss, want_grad = fn(pred, target, grad=np.empty_like(pred))
    for which in ("pred", "target"):
        a, b = pred.copy(), target.copy()
        loss, grad = fn(a, b, grad=a if which == "pred" else b)
        assert np.float64(loss).tobytes() == np.float64(want_loss).tobytes(), which
        np.testing.assert_array_equal(grad, want_grad)


def test_bce_with_logits_as_pytorch_past_the_parallel_threshold(backend, dtype, rng):
    logits = (rng.standard_normal(N) * 8).astype(dtype)
    logits[:8] = [1e4, -1e4, 90.0, -90.0, 1e-8, -1e-8, 0.0, -0.0]
    target = rng.random(N).astype(dtype)
    target[N // 2:] = rng.random(N - N // 2) > 0.5
    loss, grad = fastnn.backend.current().bce_with_logits_loss(logits, target)
    want, want_grad = _torch_bce(F.binary_cross_entropy_with_logits, logits, target)
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-10)


def test_bce_binary_targets_keep_log1p_in_float64(backend):
    """float64 takes log1p(-p) for t = 0 as PyTorch does, binary targets or not: the
    one-log path's log(1 - p) rounded 1 - p to 1 and gave a loss of 0 for p = 1e-20
    (PyTorch: 1e-20)."""
    p = 10.0 ** np.random.default_rng(0).uniform(-30, -10, N)
    t = np.zeros(N)
    loss, grad = fastnn.backend.current().bce_loss(p, t)
    want, want_grad = _torch_bce(F.binary_cross_entropy, p, t)
    np.testing.assert_allclose(loss, want, rtol=1e-9)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-9)


@pytest.mark.parametrize("threads", [1, 2])
def test_bce_float32_log1p_of_a_confident_prediction_as_pytorch(backend, threads):
    """float32 takes log1p(-p) for t = 0 as PyTorch does, to its per-term accuracy, on
    the one-log path (binary targets) and the two-log one (a soft target in each tile):
    the compiled kernels took log(1 - p), which rounds 1 - p, so a confident p = 1e-7
    gave a term of 1.19e-7 (PyTorch 1.0e-7) and p = 1e-20 one of 0. And t = 1 with
    p = 1 - 2^-24 on the numba two-log path: its t log p + (1 - t) log(1 - p), regrouped
    by fastmath as t (log p - log(1 - p)) + log(1 - p), gave 0 for PyTorch's 6e-8."""
    before = fastnn.get_num_threads()
    fastnn.set_num_threads(threads)
    try:
        kernels = fastnn.backend.current()
        for p0 in (1e-7, 1e-20, 1e-30, 2.0 ** -25, 0.03125, 0.3, 0.5, 1 - 2.0 ** -24, 1.0):
            for t0, soft in ((0.0, False), (0.0, True), (1.0, True)):
                p = np.full(N, p0, np.float32)
                t = np.full(N, t0, np.float32)
                if soft:   # a soft target in every tile, its own term 1e-28 (p = 0)
                    p[::97] = 0.0
                    t[::97] = 1e-30
                want = F.binary_cross_entropy(torch.tensor(p), torch.tensor(t),
                                              reduction="none").double().mean().item()
                loss, _ = kernels.bce_loss(p, t)
                np.testing.assert_allclose(loss, want, rtol=2e-6, atol=0,
                                           err_msg=f"p={p0} t={t0} soft={soft}")
        # a near-perfect model's mean over log-spaced confidences
        rng = np.random.default_rng(0)
        e = (10.0 ** rng.uniform(-30, -2, N)).astype(np.float32)
        t = (rng.random(N) > 0.5).astype(np.float32)
        p = np.where(t == 1, 1 - e, e).astype(np.float32)
        want = F.binary_cross_entropy(torch.tensor(p), torch.tensor(t),
                                      reduction="none").double().mean().item()
        np.testing.assert_allclose(kernels.bce_loss(p, t)[0], want, rtol=2e-6)
    finally:
        fastnn.set_num_threads(before)


def test_bce_with_logits_minus_inf_logit_as_pytorch_for_any_target(backend, dtype):
    """Logits take any target (PyTorch checks none): at x = -inf PyTorch's
    (1 - t) x - log sigmoid(x), (1 - t)(-inf) + inf, is inf for t > 1 and NaN for t <= 1
    (a NaN t too). The compiled kernels gave NaN for every t (the numpy backend inf).
    Serial and parallel sizes, the -inf at a tile's start, inside and at the end."""
    for n in (8, N):
        x = np.full(n, 0.5, dtype)
        t = np.full(n, 0.25, dtype)
        where = [0, n // 2 + 1, n - 1]
        x[where] = -np.inf
        for tv in (2.0, np.inf, 1.0, 0.5, 0.0, -1.0, np.nan):
            t[where] = tv
            xt = torch.tensor(x, requires_grad=True)
            want = F.binary_cross_entropy_with_logits(xt, torch.tensor(t))
            want.backward()
            loss, grad = fastnn.ops.bce_with_logits_loss(x, t)
            np.testing.assert_equal(loss, want.item())   # (inf as inf, NaN as NaN)
            np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-6, atol=1e-7 / n)
            total = fastnn.nn.BCEWithLogitsLoss(reduction="sum")(x, t)
            np.testing.assert_equal(np.isnan(total), np.isnan(want.item()))
            assert np.isnan(total) or total == np.inf
