"""Backward hooks of modules with several outputs: grad_output has PyTorch's structure
(one entry per output of forward, None where no gradient flows), and the gradients the
module computes are unchanged by it."""
import numpy as np
import pytest

import fastnn.nn as fnn

torch = pytest.importorskip("torch")


def _layout(grads):
    return tuple(None if g is None else tuple(np.shape(g)) for g in grads)


def _mha(lib):
    return lib.MultiheadAttention(4, 2, batch_first=True)


def _rnn(name):
    return lambda lib: getattr(lib, name)(4, 5, batch_first=True)


# (name, factory, input shapes, extra forward args, which outputs the loss uses:
#  "out" = output 0 only, "hn" = h_n only, "hc" = LSTMCell's (h, c) both)
CASES = [
    ("MHA", _mha, [(2, 3, 4)] * 3, (), "out"),
    ("MHA_no_weights", _mha, [(2, 3, 4)] * 3, (None, False), "out"),
    ("RNN", _rnn("RNN"), [(2, 3, 4)], (), "out"),
    ("GRU", _rnn("GRU"), [(2, 3, 4)], (), "out"),
    ("LSTM", _rnn("LSTM"), [(2, 3, 4)], (), "out"),
    ("RNN_hn", _rnn("RNN"), [(2, 3, 4)], (), "hn"),
    ("GRU_hn", _rnn("GRU"), [(2, 3, 4)], (), "hn"),
    ("LSTMCell", lambda lib: lib.LSTMCell(4, 5), [(2, 4)], (), "hc"),
]


def _torch_run(make, shapes, extra, use, seen):
    torch.manual_seed(0)
    m = make(torch.nn)
    m.register_full_backward_pre_hook(lambda mod, go: seen.__setitem__("pre", _layout(go)))
    m.register_full_backward_hook(
        lambda mod, gi, go: seen.__setitem__("post", _layout(go)))
    xs = [torch.randn(*s, requires_grad=True) for s in shapes]
    out = m(*xs, *extra)
    loss = (out[0].sum() if use == "out" else out[1].sum() if use == "hn"
            else out[0].sum() + 2 * out[1].sum())
    loss.backward()
    return m, xs, out


@pytest.mark.parametrize("name,make,shapes,extra,use", CASES, ids=[c[0] for c in CASES])
def test_grad_output_structure_matches_torch(name, make, shapes, extra, use):
    seen_t, seen_f = {}, {}
    tm, txs, tout = _torch_run(make, shapes, extra, use, seen_t)
    m = make(fnn)
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    m.register_full_backward_pre_hook(lambda mod, go: seen_f.__setitem__("pre", _layout(go)))
    m.register_full_backward_hook(
        lambda mod, gi, go: seen_f.__setitem__("post", _layout(go)))
    xs = [x.detach().numpy() for x in txs]
    out = m(*xs, *extra)
    if use == "out":
        gx = m.backward(np.ones_like(out[0]))
    elif use == "hn":
        gx = m.backward(None, np.ones_like(out[1]))
    else:
        gx = m.backward((np.ones_like(out[0]), np.full_like(out[1], 2)))[0]
    assert seen_f == seen_t
    gx = gx if isinstance(gx, tuple) else (gx,)
    for g, x in zip(gx, txs):
        np.testing.assert_allclose(g, x.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_replacement_grad_output_is_used():
    """A pre-hook returning a 2-tuple (PyTorch's length) replaces the gradients: doubled
    grad_output doubles the input gradient; MHA takes no gradient for the weights."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    for m in (fnn.GRU(4, 5, batch_first=True), fnn.MultiheadAttention(4, 2, batch_first=True)):
        args = (x,) if isinstance(m, fnn.GRU) else (x, x, x)
        out = m(*args)
        plain = m.backward(np.ones_like(out[0]))
        plain = plain if isinstance(plain, tuple) else (plain,)
        m.register_full_backward_pre_hook(lambda mod, go: (2 * go[0], go[1]))
        out = m(*args)
        doubled = m.backward(np.ones_like(out[0]))
        doubled = doubled if isinstance(doubled, tuple) else (doubled,)
        for a, b in zip(plain, doubled):
            np.testing.assert_allclose(b, 2 * a, rtol=1e-5, atol=1e-6)
    m = fnn.MultiheadAttention(4, 2, batch_first=True)
    m.register_full_backward_pre_hook(lambda mod, go: (go[0], np.ones((2, 3, 3), np.float32)))
    out = m(x, x, x)
    with pytest.raises(ValueError, match="attn_output_weights"):
        m.backward(np.ones_like(out[0]))


@pytest.mark.parametrize("use", ["loss", "output_and_loss", "output"])
def test_adaptive_log_softmax_grad_output_matches_torch(use):
    """PyTorch's (grad_output, grad_loss), None for the one the loss does not use; the
    input gradient is the same with the hooks as without."""
    seen_t, seen_f = {}, {}
    torch.manual_seed(0)
    tm = torch.nn.AdaptiveLogSoftmaxWithLoss(8, 10, [4])
    tm.register_full_backward_pre_hook(lambda mod, go: seen_t.__setitem__("pre", _layout(go)))
    tm.register_full_backward_hook(lambda mod, gi, go: seen_t.__setitem__("post", _layout(go)))
    tx = torch.randn(3, 8, requires_grad=True)
    target = torch.tensor([1, 5, 9])
    out = tm(tx, target)
    {"loss": out.loss, "output": out.output.sum(),
     "output_and_loss": out.output.sum() + out.loss}[use].backward()
    m = fnn.AdaptiveLogSoftmaxWithLoss(8, 10, [4])
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = tx.detach().numpy()
    args = {"loss": (), "output": (None, np.ones(3, np.float32)),
            "output_and_loss": (1.0, np.ones(3, np.float32))}[use]
    m(x, target.numpy())
    plain = m.backward(*args)
    m.register_full_backward_pre_hook(lambda mod, go: seen_f.__setitem__("pre", _layout(go)))
    m.register_full_backward_hook(lambda mod, gi, go: seen_f.__setitem__("post", _layout(go)))
    m(x, target.numpy())
    g = m.backward(*args)
    assert seen_f == seen_t
    np.testing.assert_array_equal(g, plain)
    np.testing.assert_allclose(g, tx.grad.numpy(), rtol=1e-4, atol=1e-6)
