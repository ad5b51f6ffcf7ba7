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


# grad_input of the recurrent layers, PyTorch's: one entry per positional argument of the
# call, None for one that is no tensor: (grad_x,) for m(x) or m(x, hx=...), (grad_x, None)
# for m(x, None) or LSTM's pair, (grad_x, grad_hx) for m(x, hx)
RECURRENT = [("RNNCell", (2, 4), (2, 5)), ("GRUCell", (2, 4), (2, 5)),
             ("LSTMCell", (2, 4), (2, 5)), ("RNN", (2, 3, 4), (1, 2, 5)),
             ("GRU", (2, 3, 4), (1, 2, 5)), ("LSTM", (2, 3, 4), (1, 2, 5))]
HX_MODES = ["absent", "none", "positional", "keyword"]


def _recurrent(lib, name):
    cls = getattr(lib, name)
    return cls(4, 5) if name.endswith("Cell") else cls(4, 5, batch_first=True)


def _call(m, name, x, h, mode):
    hx = (h, 2 * h) if "LSTM" in name else h
    return {"absent": lambda: m(x), "none": lambda: m(x, None),
            "positional": lambda: m(x, hx), "keyword": lambda: m(x, hx=hx)}[mode]()


def _fastnn_recurrent_run(m, name, x, h, mode):
    """backward's input gradient and the state gradient (backward's second entry for a
    cell, grad_hx for a sequence layer; LSTM: w.r.t. h), for the loss sum(h')
    (+ 2 sum(c'))."""
    out = _call(m, name, x, h, mode)
    if name.endswith("Cell"):
        grad = ((np.ones_like(out[0]), np.full_like(out[1], 2)) if name == "LSTMCell"
                else np.ones_like(out))
        gx, ghx = m.backward(grad)
    else:
        gx, ghx = m.backward(np.ones_like(out[0])), m.grad_hx
    return gx, (ghx[0] if "LSTM" in name and ghx is not None else ghx)


@pytest.mark.parametrize("mode", HX_MODES)
@pytest.mark.parametrize("name,x_shape,h_shape", RECURRENT, ids=[c[0] for c in RECURRENT])
def test_recurrent_grad_input_structure_matches_torch(name, x_shape, h_shape, mode):
    seen_t, seen_f = {}, {}
    torch.manual_seed(0)
    tm = _recurrent(torch.nn, name)
    tm.register_full_backward_hook(lambda mod, gi, go: seen_t.__setitem__("gi", _layout(gi)))
    tx = torch.randn(*x_shape, requires_grad=True)
    th = torch.randn(*h_shape, requires_grad=True)
    out = _call(tm, name, tx, th, mode)
    if name == "LSTMCell":
        (out[0].sum() + 2 * out[1].sum()).backward()
    else:
        (out if name.endswith("Cell") else out[0]).sum().backward()
    m = _recurrent(fnn, name)
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x, h = tx.detach().numpy(), th.detach().numpy()
    plain = _fastnn_recurrent_run(m, name, x, h, mode)
    m.register_full_backward_hook(lambda mod, gi, go: seen_f.__setitem__("gi", _layout(gi)))
    hooked = _fastnn_recurrent_run(m, name, x, h, mode)
    assert seen_f == seen_t
    for a, b in zip(plain, hooked):  # the hooks change no gradient
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(hooked[0], tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    if mode in ("positional", "keyword") and "LSTM" not in name:
        # (LSTM's h0 also feeds c0 = 2 h0 in torch's graph)
        np.testing.assert_allclose(hooked[1], th.grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", [c[0] for c in RECURRENT])
@pytest.mark.parametrize("mode", HX_MODES)
def test_recurrent_replacement_grad_input_is_returned(name, mode):
    """A hook's replacement tuple (PyTorch's length) is what backward returns, its
    grad_hx entry grad_hx (None cuts it); the gradients the hook does not see (a cell's
    state gradient without hx, LSTM's pair) stay as computed."""
    rng = np.random.default_rng(0)
    cell = name.endswith("Cell")
    x = rng.standard_normal((2, 4) if cell else (2, 3, 4)).astype(np.float32)
    h = rng.standard_normal((2, 5) if cell else (1, 2, 5)).astype(np.float32)
    m = _recurrent(fnn, name)
    plain = _fastnn_recurrent_run(m, name, x, h, mode)
    m.register_full_backward_hook(
        lambda mod, gi, go: tuple(None if g is None else 3 * g for g in gi))
    tripled = _fastnn_recurrent_run(m, name, x, h, mode)
    np.testing.assert_allclose(tripled[0], 3 * plain[0], rtol=1e-6)
    seen_hx = mode == "positional" and "LSTM" not in name
    np.testing.assert_allclose(tripled[1], (3 if seen_hx else 1) * plain[1], rtol=1e-6)
    if seen_hx:
        m2 = _recurrent(fnn, name)
        m2.register_full_backward_hook(lambda mod, gi, go: (gi[0], None))
        assert _fastnn_recurrent_run(m2, name, x, h, mode)[1] is None
