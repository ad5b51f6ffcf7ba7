"""Sequence layers against torch.nn, from a randomized probe: Embedding's max_norm,
norm_type, scale_grad_by_freq and from_pretrained arguments, the reprs of Embedding,
EmbeddingBag and MultiheadAttention, MultiheadAttention's positional forward arguments
and its out_proj Linear, generate_square_subsequent_mask's PyTorch signature, and a
seeded sweep of RNN/LSTM/GRU, the cells, MultiheadAttention and the transformer layers
(outputs, final states, gradients of inputs, initial states and every parameter,
state-dict keys)."""
import warnings

import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn

from conftest import BACKENDS, assert_close
from nn_torch_helpers import TORCH_DTYPES

torch.set_num_threads(2)
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")


def _state(twin):
    return {k: v.detach().numpy().copy() for k, v in twin.state_dict().items()}


def _load(ours, theirs):
    """theirs' weights into ours, after checking that the state-dict keys agree."""
    state = _state(theirs)
    assert list(ours.state_dict()) == list(state)
    ours.load_state_dict(state)


def _t(a, grad=False):
    t = torch.from_numpy(np.array(a, copy=True))
    return t.requires_grad_(True) if grad else t


# ------------------------------------------------------------------ Embedding
@pytest.mark.parametrize("kwargs", [
    dict(max_norm=1.0),
    dict(max_norm=0.5, norm_type=1.0, padding_idx=-2),
    dict(max_norm=2, norm_type=3),
    dict(max_norm=0.7, norm_type=float("inf"), padding_idx=1),
    dict(scale_grad_by_freq=True),
    dict(scale_grad_by_freq=True, padding_idx=-1, max_norm=1.5),
])
def test_embedding_max_norm_and_scale_grad_by_freq_match_torch(kwargs, dtype, rng):
    """max_norm renormalises the looked-up rows in place before the lookup (not
    differentiated); scale_grad_by_freq divides each row's gradient by its index's
    count; the repr shows them as PyTorch's does."""
    table = (2 * rng.standard_normal((6, 3))).astype(dtype)
    ours = nn.Embedding(6, 3, dtype=dtype, **kwargs)
    theirs = torch.nn.Embedding(6, 3, **kwargs).to(TORCH_DTYPES[dtype])
    with torch.no_grad():
        theirs.weight.copy_(_t(table))
    _load(ours, theirs)
    assert repr(ours) == repr(theirs)
    assert ours.padding_idx == theirs.padding_idx
    for idx in (np.array([[1, 1, 4], [0, 4, 4]]), np.array([5, 2, 2])):
        out, tout = ours(idx), theirs(_t(idx))
        assert out.dtype == dtype
        assert_close(out, tout.detach().numpy(), dtype)
        assert_close(ours.weight.data, theirs.weight.detach().numpy(), dtype)
        g = rng.standard_normal(out.shape).astype(dtype)
        (tout * _t(g)).sum().backward()
        assert ours.backward(g) is None
        assert_close(ours.weight.grad, theirs.weight.grad.numpy(), dtype)
    if "max_norm" in kwargs and kwargs.get("norm_type", 2.0) == 2.0:
        used = np.linalg.norm(ours.weight.data[[0, 1, 2, 4, 5]].astype(np.float64), axis=1)
        assert used.max() <= kwargs["max_norm"] * (1 + 1e-5)


def test_embedding_from_pretrained_takes_torchs_arguments(rng):
    table = (3 * rng.standard_normal((5, 4))).astype(np.float64)
    kwargs = dict(freeze=False, padding_idx=-1, max_norm=1.0, norm_type=1.5,
                  scale_grad_by_freq=True)
    ours = nn.Embedding.from_pretrained(table.copy(), **kwargs)
    theirs = torch.nn.Embedding.from_pretrained(_t(table), **kwargs)
    assert repr(ours) == repr(theirs) and ours.weight.requires_grad
    idx = np.array([0, 3, 3, 4])
    out, tout = ours(idx), theirs(_t(idx))
    assert_close(out, tout.detach().numpy(), np.float64)
    g = rng.standard_normal(out.shape)
    (tout * _t(g)).sum().backward()
    ours.backward(g)
    assert_close(ours.weight.grad, theirs.weight.grad.numpy(), np.float64)
    frozen = nn.Embedding.from_pretrained(table, max_norm=1.0)
    assert not frozen.weight.requires_grad and "max_norm=1.0" in repr(frozen)


def test_embedding_bad_renorm_arguments_and_sparse_are_refused():
    with pytest.raises(TypeError, match="max_norm"):
        nn.Embedding(4, 2, max_norm="1")
    with pytest.raises(ValueError, match="max_norm"):
        nn.Embedding(4, 2, max_norm=-1.0)
    with pytest.raises(ValueError, match="norm_type"):
        nn.Embedding(4, 2, max_norm=1.0, norm_type=0)
    with pytest.raises(TypeError, match="scale_grad_by_freq"):
        nn.Embedding(4, 2, scale_grad_by_freq="yes")
    with pytest.raises(ValueError, match="sparse"):
        nn.Embedding(4, 2, sparse=True)
    emb = nn.Embedding(4, 2, max_norm=0.1)
    before = emb.weight.data.copy()
    with pytest.raises(IndexError):   # a failed call leaves the table as it was
        emb(np.array([0, 4]))
    np.testing.assert_array_equal(emb.weight.data, before)


@pytest.mark.parametrize("kwargs", [dict(max_norm=1, norm_type=3), dict(max_norm=1.5),
                                    dict(mode="max", padding_idx=-1)])
def test_embedding_bag_repr_is_torchs(kwargs):
    assert repr(nn.EmbeddingBag(5, 3, **kwargs)) == repr(torch.nn.EmbeddingBag(5, 3, **kwargs))


# ---------------------------------------------------------- MultiheadAttention
def test_attention_out_proj_is_a_linear_and_forward_takes_positional_arguments(rng):
    ours = nn.MultiheadAttention(4, 2, kdim=3, vdim=5, add_bias_kv=True, dtype=np.float64)
    theirs = torch.nn.MultiheadAttention(4, 2, kdim=3, vdim=5, add_bias_kv=True).double()
    assert repr(ours) == repr(theirs)
    assert isinstance(ours.out_proj, nn.Linear)
    assert not ours.out_proj.bias.data.any()   # PyTorch zeroes it
    _load(ours, theirs)
    x = rng.standard_normal((3, 4))
    assert_close(ours.out_proj(x), theirs.out_proj(_t(x)).detach().numpy(), np.float64)
    q, k, v = (rng.standard_normal((3, 2, f)) for f in (4, 3, 5))   # (L or S, N, E)
    kpm = np.array([[False, True, False], [True, False, False]])
    out, w = ours(q, k, v, kpm, True, None, False)
    tout, tw = theirs(_t(q), _t(k), _t(v), _t(kpm), True, None, False)
    assert_close(out, tout.detach().numpy(), np.float64)
    assert_close(w, tw.detach().numpy(), np.float64)


def test_square_subsequent_mask_takes_torchs_signature():
    want = torch.nn.Transformer.generate_square_subsequent_mask(4, dtype=torch.float64).numpy()
    for mask in (nn.Transformer.generate_square_subsequent_mask(4, "cpu", np.float64),
                 nn.Transformer.generate_square_subsequent_mask(4, device="cpu",
                                                                dtype=np.float64),
                 nn.Transformer.generate_square_subsequent_mask(4, np.float64)):
        assert mask.dtype == np.float64
        np.testing.assert_array_equal(mask, want)
    assert nn.Transformer.generate_square_subsequent_mask(3).dtype == np.float32
    with pytest.raises(ValueError, match="device"):
        nn.Transformer.generate_square_subsequent_mask(3, "tpu")


# ---------------------------------------------------------- seeded sweeps
def _rnn_config(seed):
    r = np.random.default_rng(seed)
    cls = ["RNN", "LSTM", "GRU"][seed % 3]
    hidden = int(r.integers(2, 6))
    kw = dict(num_layers=int(r.integers(1, 4)), bidirectional=bool(r.integers(2)),
              batch_first=bool(r.integers(2)), bias=bool(r.integers(2)))
    if cls == "RNN":
        kw["nonlinearity"] = ["tanh", "relu"][int(r.integers(2))]
    if cls == "LSTM" and r.integers(2):
        kw["proj_size"] = int(r.integers(1, hidden))
    return r, cls, int(r.integers(1, 5)), hidden, kw


@pytest.mark.parametrize("seed", range(12))
def test_recurrent_layers_sweep(seed):
    """Every option at once, initial states given or not, unbatched input, gradients of
    output and final states together (or of h_n only)."""
    rng, cls, insz, hidden, kw = _rnn_config(seed)
    dtype = np.dtype([np.float32, np.float64][seed % 2])
    theirs = getattr(torch.nn, cls)(insz, hidden, **kw).to(TORCH_DTYPES[dtype])
    ours = getattr(nn, cls)(insz, hidden, dtype=dtype, **kw)
    _load(ours, theirs)
    unbatched, given = seed % 4 == 3, seed % 5 < 3
    length, n = int(rng.integers(1, 5)), int(rng.integers(1, 4))
    shape = (length, insz) if unbatched else ((n, length, insz) if kw["batch_first"]
                                              else (length, n, insz))
    x = rng.standard_normal(shape).astype(dtype)
    lead = (kw["num_layers"] * (2 if kw["bidirectional"] else 1),) + (() if unbatched
                                                                        else (n,))
    hx = None
    if given:
        h0 = rng.standard_normal(lead + (kw.get("proj_size") or hidden,)).astype(dtype)
        hx = (h0, rng.standard_normal(lead + (hidden,)).astype(dtype)) if cls == "LSTM" else h0
    thx = None if hx is None else (tuple(_t(a, True) for a in hx) if cls == "LSTM"
                                   else _t(hx, True))
    tx = _t(x, True)
    tout, tstate = theirs(tx, thx)
    out, state = ours(x, hx)
    assert_close(out, tout.detach().numpy(), dtype)
    pairs = list(zip(state, tstate)) if cls == "LSTM" else [(state, tstate)]
    for a, b in pairs:
        assert_close(a, b.detach().numpy(), dtype)
    only_h = seed % 6 == 5
    go = None if only_h else rng.standard_normal(out.shape).astype(dtype)
    gs = [rng.standard_normal(a.shape).astype(dtype) for a, _ in pairs]
    loss = sum((b * _t(g)).sum() for (_, b), g in zip(pairs, gs))
    if go is not None:
        loss = loss + (tout * _t(go)).sum()
    loss.backward()
    grad_x = ours.backward(go, tuple(gs) if cls == "LSTM" else gs[0])
    assert_close(grad_x, tx.grad.numpy(), dtype, scale=10)
    if hx is not None:
        for a, b in zip(ours.grad_hx if cls == "LSTM" else [ours.grad_hx],
                        thx if cls == "LSTM" else [thx]):
            assert_close(a, b.grad.numpy(), dtype, scale=10)
    for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert_close(p.grad, tp.grad.numpy(), dtype, scale=10, err_msg=name)


@pytest.mark.parametrize("cls", ["RNNCell", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cells_backward_through_three_steps(cls, dtype, rng):
    kw = dict(bias=dtype == np.float64)
    if cls == "RNNCell":
        kw["nonlinearity"] = "relu"
    ours = getattr(nn, cls)(3, 4, dtype=dtype, **kw)
    theirs = getattr(torch.nn, cls)(3, 4, **kw).to(TORCH_DTYPES[np.dtype(dtype)])
    _load(ours, theirs)
    lstm = cls == "LSTMCell"
    xs = [rng.standard_normal((2, 3)).astype(dtype) for _ in range(3)]
    h0 = rng.standard_normal((2, 4)).astype(dtype)
    hx = (h0, h0[::-1].copy()) if lstm else h0
    txs = [_t(x, True) for x in xs]
    thx = tuple(_t(a, True) for a in hx) if lstm else _t(hx, True)
    state, tstate, loss, grads = hx, thx, 0, []
    for x, tx in zip(xs, txs):
        state, tstate = ours(x, state), theirs(tx, tstate)
        g = (tuple(rng.standard_normal((2, 4)).astype(dtype) for _ in range(2)) if lstm
             else rng.standard_normal((2, 4)).astype(dtype))
        grads.append(g)
        for a, b, gi in zip(state if lstm else [state], tstate if lstm else [tstate],
                            g if lstm else [g]):
            assert_close(a, b.detach().numpy(), dtype)
            loss = loss + (b * _t(gi)).sum()
    loss.backward()
    carry = None
    for i in (2, 1, 0):
        g = grads[i]
        if carry is not None:
            g = tuple(a + b for a, b in zip(g, carry)) if lstm else g + carry
        grad_x, carry = ours.backward(g)
        assert_close(grad_x, txs[i].grad.numpy(), dtype, scale=10)
    for a, b in zip(carry if lstm else [carry], thx if lstm else [thx]):
        assert_close(a, b.grad.numpy(), dtype, scale=10)
    for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert_close(p.grad, tp.grad.numpy(), dtype, scale=10, err_msg=name)


def _masks(rng, seed, length, source, n, heads, unbatched, dtype):
    kind = seed % 5
    attn = None
    if kind in (1, 2):
        attn = rng.random((length, source)) < 0.3
    elif kind == 3:
        attn = rng.standard_normal(((1 if unbatched else n) * heads, length, source))
    padding = None
    if seed % 3 == 1:
        padding = rng.random((source,) if unbatched else (n, source)) < 0.3
    elif seed % 3 == 2:
        padding = rng.standard_normal((source,) if unbatched else (n, source))
    if attn is not None and padding is not None and (attn.dtype == bool) != (
            padding.dtype == bool):   # (torch deprecates mixing bool and float masks)
        padding = np.where(padding, -np.inf, 0) if padding.dtype == bool else padding > 0.5
    cast = lambda m: None if m is None else (m if m.dtype == bool else m.astype(dtype))  # noqa
    return cast(attn), cast(padding)


@pytest.mark.parametrize("seed", range(12))
def test_attention_sweep(seed):
    """kdim/vdim, add_bias_kv, add_zero_attn, bias, batch_first, unbatched, bool and
    float masks (2-D and per head), need_weights and average_attn_weights."""
    rng = np.random.default_rng(100 + seed)
    dtype = np.dtype([np.float32, np.float64][seed % 2])
    heads = 1 + seed % 2
    e = 2 * heads
    kw = dict(bias=seed % 4 != 0, add_bias_kv=seed % 3 == 0, add_zero_attn=seed % 4 == 1,
              kdim=3 if seed % 3 == 1 else None, vdim=5 if seed % 5 == 2 else None,
              batch_first=seed % 2 == 1)
    ours = nn.MultiheadAttention(e, heads, dtype=dtype, **kw)
    theirs = torch.nn.MultiheadAttention(e, heads, **kw).to(TORCH_DTYPES[dtype])
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(_t(rng.standard_normal(tuple(p.shape))))
    _load(ours, theirs)
    unbatched = seed % 6 == 5
    length, source, n = 3, 4, 2

    def shaped(size, features):
        if unbatched:
            return rng.standard_normal((size, features)).astype(dtype)
        return rng.standard_normal((n, size, features) if kw["batch_first"]
                                   else (size, n, features)).astype(dtype)
    q, k, v = shaped(length, e), shaped(source, kw["kdim"] or e), shaped(source, kw["vdim"] or e)
    attn, padding = _masks(rng, seed, length, source, n, heads, unbatched, dtype)
    options = dict(need_weights=seed % 4 != 2, average_attn_weights=seed % 3 != 0)
    tq, tk, tv = _t(q, True), _t(k, True), _t(v, True)
    tout, tw = theirs(tq, tk, tv, key_padding_mask=None if padding is None else _t(padding),
                      attn_mask=None if attn is None else _t(attn), **options)
    out, w = ours(q, k, v, key_padding_mask=padding, attn_mask=attn, **options)
    assert_close(out, tout.detach().numpy(), dtype)
    assert (w is None) == (tw is None)
    if w is not None:
        assert_close(w, tw.detach().numpy(), dtype)
    g = rng.standard_normal(out.shape).astype(dtype)
    (tout * _t(g)).sum().backward()
    for a, b in zip(ours.backward(g), (tq, tk, tv)):
        assert_close(a, b.grad.numpy(), dtype, scale=10)
    params = dict(ours.named_parameters())
    assert list(params) == [name for name, _ in theirs.named_parameters()]
    for name, tp in theirs.named_parameters():
        assert_close(params[name].grad, tp.grad.numpy(), dtype, scale=10, err_msg=name)


def _transformer_pair(kind, dtype, seed, **kw):
    if kind == "encoder":
        layer = dict(dim_feedforward=5, dropout=0.0, **kw)
        ours = nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, dtype=dtype, **layer), 2,
                                     nn.LayerNorm(4, dtype=dtype))
        theirs = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(4, 2, **layer), 2,
                                             torch.nn.LayerNorm(4), enable_nested_tensor=False)
    elif kind == "decoder":
        layer = dict(dim_feedforward=5, dropout=0.0, **kw)
        ours = nn.TransformerDecoder(nn.TransformerDecoderLayer(4, 2, dtype=dtype, **layer), 2)
        theirs = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(4, 2, **layer), 2)
    else:
        args = (4, 2, 1, 2, 5, 0.0)
        ours = nn.Transformer(*args, dtype=dtype, **kw)
        theirs = torch.nn.Transformer(*args, **kw)
    theirs = theirs.to(TORCH_DTYPES[np.dtype(dtype)])
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(_t(0.5 * rng.standard_normal(tuple(p.shape))))
    _load(ours, theirs)
    return ours, theirs, rng


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind, kw", [
    ("encoder", dict(activation="gelu", norm_first=True, batch_first=True)),
    ("decoder", dict(activation="relu", norm_first=False)),
    ("transformer", dict(activation="gelu", norm_first=True, bias=False)),
])
def test_transformer_stacks_sweep(backend, kind, kw, dtype):
    """Stacks with masks of every kind (a causal float mask, bool key padding, a float
    memory mask), gradients of their inputs and every parameter, on each backend."""
    with fastnn.use_backend(backend):
        ours, theirs, rng = _transformer_pair(kind, dtype, 7, **kw)
        bf = kw.get("batch_first", False)
        shape = lambda size: (2, size, 4) if bf else (size, 2, 4)  # noqa: E731
        causal = nn.Transformer.generate_square_subsequent_mask(3, dtype=dtype)
        padding = np.array([[False, False, True], [False, False, False]])
        a, b = (rng.standard_normal(shape(s)).astype(dtype) for s in (3, 4))
        ta, tb = _t(a, True), _t(b, True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if kind == "encoder":
                out = ours(a, causal, padding)
                tout = theirs(ta, _t(causal), _t(padding))
            else:
                memory_mask = rng.standard_normal((3, 4)).astype(dtype)
                masks = dict(tgt_mask=causal, memory_mask=memory_mask,
                             tgt_key_padding_mask=padding)
                tmasks = {k: _t(m) for k, m in masks.items()}
                if kind == "decoder":
                    out, tout = ours(a, b, **masks), theirs(ta, tb, **tmasks)
                else:   # src b (length 4), tgt a (length 3)
                    out, tout = ours(b, a, **masks), theirs(tb, ta, **tmasks)
        assert_close(out, tout.detach().numpy(), dtype)
        g = rng.standard_normal(out.shape).astype(dtype)
        (tout * _t(g)).sum().backward()
        grads = ours.backward(g)
        if kind == "encoder":
            assert_close(grads, ta.grad.numpy(), dtype, scale=20)
        elif kind == "decoder":
            assert_close(grads[0], ta.grad.numpy(), dtype, scale=20)
            assert_close(grads[1], tb.grad.numpy(), dtype, scale=20)
        else:
            assert_close(grads[0], tb.grad.numpy(), dtype, scale=20)
            assert_close(grads[1], ta.grad.numpy(), dtype, scale=20)
        params = dict(ours.named_parameters())
        assert list(params) == [name for name, _ in theirs.named_parameters()]
        for name, tp in theirs.named_parameters():
            assert_close(params[name].grad, tp.grad.numpy(), dtype, scale=20, err_msg=name)
