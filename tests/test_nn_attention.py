"""MultiheadAttention against torch.nn.MultiheadAttention: outputs, attention weights,
the gradients of query, key and value and of every parameter, with masks, heads,
layouts and self-attention; kdim/vdim, add_bias_kv, add_zero_attn, the is_causal hint,
dropout=1, fully masked queries, empty batches and key sequences, and the inputs torch
rejects."""
import warnings

import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn

from conftest import assert_close
from nn_torch_helpers import TORCH_DTYPES

torch.set_num_threads(2)

CASES = [
    dict(heads=1),
    dict(heads=2, batch_first=True, mask="bool"),
    dict(heads=2, bias=False, mask="float", key_padding=True),
    dict(heads=4, mask="per-head", average=False),
    dict(heads=2, self_attention=True, mask="bool", key_padding=True),
    dict(heads=2, unbatched=True, key_padding=True, average=False),
]


def twins(dtype, heads, bias=True, batch_first=False, dropout=0.0, **options):
    theirs = torch.nn.MultiheadAttention(8, heads, bias=bias, batch_first=batch_first,
                                         dropout=dropout, **options).to(
        TORCH_DTYPES[np.dtype(dtype)])
    if bias:   # non-zero biases, so that a wrong use of one shows
        with torch.no_grad():
            theirs.in_proj_bias.normal_()
            theirs.out_proj.bias.normal_()
    ours = nn.MultiheadAttention(8, heads, bias=bias, batch_first=batch_first,
                                 dropout=dropout, dtype=dtype, **options)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def run_both(ours, theirs, q, k, v, self_attention=False, **kwargs):
    """The same call on both (masks as arrays), then backward of a random gradient:
    (out, weights, (grad q, k, v)) of ours and of theirs (NumPy arrays)."""
    dtype = q.dtype
    tq = torch.from_numpy(q.copy()).requires_grad_(True)
    tk, tv = ((tq, tq) if self_attention else
              (torch.from_numpy(k.copy()).requires_grad_(True),
               torch.from_numpy(v.copy()).requires_grad_(True)))
    tkwargs = {name: torch.from_numpy(np.array(a)) if isinstance(a, np.ndarray) else a
               for name, a in kwargs.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's note on mixed mask types
        tout, tweights = theirs(tq, tk, tv, **tkwargs)
    out, weights = ours(q, k, v, **kwargs)
    g = np.random.default_rng(1).standard_normal(tuple(tout.shape)).astype(dtype)
    tout.backward(torch.from_numpy(g))
    grads = ours.backward(g)
    if self_attention:
        grads, tgrads = (sum(grads),), (tq.grad.numpy(),)
    else:
        tgrads = tuple(t.grad.numpy() for t in (tq, tk, tv))
    return ((out, weights, grads),
            (tout.detach().numpy(), None if tweights is None else tweights.detach().numpy(),
             tgrads))


def assert_matches(ours, theirs, result, dtype, scale=10):
    (out, weights, grads), (tout, tweights, tgrads) = result
    assert out.shape == tout.shape and out.dtype == dtype
    assert_close(out, tout, dtype, scale=scale)
    assert (weights is None) == (tweights is None)
    if weights is not None:
        assert weights.shape == tweights.shape
        assert_close(weights, tweights, dtype)
    for ours_g, t in zip(grads, tgrads):
        assert ours_g.shape == t.shape
        assert_close(ours_g, t, dtype, scale=scale)
    named = dict(theirs.named_parameters())
    assert [name for name, _ in ours.named_parameters()] == list(named)
    for name, p in ours.named_parameters():
        assert_close(p.grad, named[name].grad.numpy(), dtype, scale=3 * scale, err_msg=name)


@pytest.mark.parametrize("case", CASES, ids=["1-head", "batch-first-causal",
                                             "no-bias-float-mask-padding", "per-head-mask",
                                             "self-attention", "unbatched"])
def test_multihead_attention_matches_torch(dtype, rng, case):
    heads, unbatched = case["heads"], case.get("unbatched", False)
    ours, theirs = twins(dtype, heads, case.get("bias", True), case.get("batch_first", False))
    n, length, source = 2, 3, (3 if case.get("self_attention") else 5)

    def seq(size):
        shape = ((size, 8) if unbatched else
                 ((n, size, 8) if case.get("batch_first") else (size, n, 8)))
        return rng.standard_normal(shape).astype(dtype)
    q = seq(length)
    k, v = (q, q) if case.get("self_attention") else (seq(source), seq(source))
    mask = {None: None, "bool": np.triu(np.ones((length, source), bool), 1),
            "float": rng.standard_normal((length, source)).astype(dtype),
            "per-head": rng.standard_normal((n * heads, length, source)).astype(dtype)}[
        case.get("mask")]
    padding = None
    if case.get("key_padding"):
        padding = np.zeros((source,) if unbatched else (n, source), bool)
        padding[..., -1] = True
    average = case.get("average", True)
    tq = torch.from_numpy(q.copy()).requires_grad_(True)
    tk, tv = ((tq, tq) if case.get("self_attention") else
              (torch.from_numpy(k.copy()).requires_grad_(True),
               torch.from_numpy(v.copy()).requires_grad_(True)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's note on mixed mask types
        tout, tweights = theirs(tq, tk, tv, key_padding_mask=None if padding is None
                                else torch.from_numpy(padding),
                                attn_mask=None if mask is None else torch.from_numpy(mask),
                                average_attn_weights=average)
    out, weights = ours(q, k, v, key_padding_mask=padding, attn_mask=mask,
                        average_attn_weights=average)
    g = rng.standard_normal(tuple(tout.shape)).astype(dtype)
    tout.backward(torch.from_numpy(g))
    gq, gk, gv = ours.backward(g)
    assert out.shape == tuple(tout.shape) and out.dtype == dtype
    assert_close(out, tout.detach().numpy(), dtype)
    assert_close(weights, tweights.detach().numpy(), dtype)
    if case.get("self_attention"):
        assert_close(gq + gk + gv, tq.grad.numpy(), dtype, scale=10)
    else:
        for ours_g, t in ((gq, tq), (gk, tk), (gv, tv)):
            assert_close(ours_g, t.grad.numpy(), dtype, scale=10)
    named = dict(theirs.named_parameters())
    assert [name for name, _ in ours.named_parameters()] == list(named)
    for name, p in ours.named_parameters():
        assert_close(p.grad, named[name].grad.numpy(), dtype, scale=30, err_msg=name)


def test_attention_dropout_and_need_weights(rng):
    """Dropout on the weights in training mode only (fastnn's generator: a seed repeats
    it), the returned weights after dropout as PyTorch's; need_weights=False gives None."""
    ours, theirs = twins(np.float64, 2, dropout=0.5)
    q = rng.standard_normal((3, 2, 8))
    ours.eval()
    _, kept = ours(q, q, q, average_attn_weights=False)
    ours.train()
    fastnn.manual_seed(1)
    a, w = ours(q, q, q, average_attn_weights=False)
    fastnn.manual_seed(1)
    b, _ = ours(q, q, q)
    np.testing.assert_array_equal(a, b)
    dropped = w == 0
    assert dropped.any() and not dropped.all()
    np.testing.assert_allclose(w[~dropped], 2 * kept[~dropped], rtol=1e-12)
    assert ours.backward(np.ones_like(a))[0].shape == q.shape
    ours.eval()
    theirs.eval()
    out, none = ours(q, q, q, need_weights=False)
    assert none is None
    tout, _ = theirs(*(torch.from_numpy(q),) * 3)
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-10)


def test_attention_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match=r"embed_dim \(6\) must be divisible by num_heads \(4\)"):
        nn.MultiheadAttention(6, 4)
    with pytest.raises(ValueError, match="kdim"):
        nn.MultiheadAttention(8, 2, kdim=0)
    with pytest.raises(ValueError, match=r"dropout in \[0.0, 1.0\]"):
        nn.MultiheadAttention(8, 2, dropout=1.5)
    layer = nn.MultiheadAttention(8, 2)
    q = np.zeros((3, 2, 8), np.float32)
    with pytest.raises(ValueError, match=r"expected key and value of shape \(L, N, E\)"):
        layer(q, np.zeros((3, 2, 7), np.float32), q)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(3, 3\)"):
        layer(q, q, q, attn_mask=np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match=r"key_padding_mask of shape \(2, 3\)"):
        layer(q, q, q, key_padding_mask=np.zeros((3, 2), bool))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        nn.MultiheadAttention(8, 2).backward(q)


def test_attention_rejects_what_torch_rejects():
    """Mixed batched and unbatched inputs (ValueError), integer masks (TypeError) and
    the is_causal hint without its mask (ValueError): torch raises on each too."""
    ours, theirs = twins(np.float32, 2)
    q3, q2 = np.zeros((3, 2, 8), np.float32), np.zeros((3, 8), np.float32)
    t3, t2 = torch.from_numpy(q3), torch.from_numpy(q2)
    for args, targs in (((q2, q3, q3), (t2, t3, t3)), ((q3, q2, q2), (t3, t2, t2)),
                        ((q3, q3, q2), (t3, t3, t2))):
        with pytest.raises(ValueError, match="all batched .3-D. or all unbatched .2-D."):
            ours(*args)
        with pytest.raises(AssertionError):
            theirs(*targs)
    for name, mask in (("attn_mask", np.zeros((3, 3), np.int64)),
                       ("key_padding_mask", np.zeros((2, 3), np.uint8))):
        with pytest.raises(TypeError, match=f"expected {name} of dtype bool .* or float"):
            ours(q3, q3, q3, **{name: mask})
        with pytest.raises(AssertionError, match="only bool and floating types"):
            theirs(t3, t3, t3, **{name: torch.from_numpy(mask)})
    with pytest.raises(ValueError, match="is_causal=True .* needs that attn_mask"):
        ours(q3, q3, q3, is_causal=True)
    with pytest.raises(RuntimeError, match="Need attn_mask"):
        theirs(t3, t3, t3, is_causal=True)


FULLY_MASKED = [dict(kind="padding"), dict(kind="bool"), dict(kind="float", batch_first=True),
                dict(kind="per-head", need_weights=True), dict(kind="padding", need_weights=True),
                dict(kind="bool", unbatched=True)]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("case", FULLY_MASKED, ids=["padding", "bool", "float-batch-first",
                                                    "per-head-weights", "padding-weights",
                                                    "bool-unbatched"])
def test_fully_masked_rows_match_torch(rng, case, training):
    """A query whose keys are all masked: with need_weights=False (PyTorch's
    scaled_dot_product_attention path, the one transformer layers take) zero weights,
    output out_proj.bias and finite gradients; with need_weights=True NaN, as torch
    (autograd on, so torch's inference fast path is not taken, in eval mode too)."""
    need_weights = case.get("need_weights", False)
    first, unbatched = case.get("batch_first", False), case.get("unbatched", False)
    ours, theirs = twins(np.float64, 2, batch_first=first)
    ours.train(training)
    theirs.train(training)
    n, length, source = 2, 3, 4
    shape = (length, 8) if unbatched else ((n, length, 8) if first else (length, n, 8))
    q = rng.standard_normal(shape)
    k = rng.standard_normal((source,) + shape[1:] if not first else (n, source, 8))
    rows = np.zeros((length, source), bool)
    rows[0] = True                           # query 0 sees no key
    kwargs = dict(need_weights=need_weights)
    if case["kind"] == "padding":
        padding = np.zeros((n, source), bool)
        padding[1] = True                    # every key of sample 1 masked
        kwargs["key_padding_mask"] = padding
    elif case["kind"] == "bool":
        kwargs["attn_mask"] = rows
    elif case["kind"] == "float":
        kwargs["attn_mask"] = np.where(rows, -np.inf, rng.standard_normal(rows.shape))
    else:
        kwargs["attn_mask"] = np.where(np.broadcast_to(rows, (n * 2, length, source)),
                                       -np.inf, 0.0)
    result = run_both(ours, theirs, q, k, k.copy(), **kwargs)
    (out, _, grads), (tout, _, _) = result
    assert np.isnan(tout).any() == need_weights
    if need_weights:
        np.testing.assert_array_equal(np.isnan(out), np.isnan(tout))
        return   # (torch's NaN gradients then are NaN everywhere; not compared)
    assert_matches(ours, theirs, result, np.float64)
    assert all(np.isfinite(g).all() for g in grads)
    if case["kind"] == "padding":   # sample 1
        dead = out[1] if first else out[:, 1]
    else:                           # query 0
        dead = out[:, 0] if first and not unbatched else out[0]
    np.testing.assert_allclose(dead, np.broadcast_to(ours.out_proj.bias.data, dead.shape),
                               rtol=1e-12)


EMPTY = [dict(source=0), dict(source=0, need_weights=False), dict(n=0),
         dict(n=0, need_weights=False, batch_first=True), dict(length=0),
         dict(source=0, unbatched=True), dict(source=0, add_bias_kv=True)]


@pytest.mark.parametrize("case", EMPTY, ids=["no-keys", "no-keys-sdpa", "empty-batch",
                                             "empty-batch-sdpa", "no-queries",
                                             "no-keys-unbatched", "no-keys-bias-kv"])
def test_empty_inputs_match_torch(rng, case):
    """No keys (S = 0): zero attention, the output out_proj.bias, weights of shape
    (N, L, 0), zero gradients but out_proj.bias's; an empty batch or no queries: empty
    outputs and zero gradients, as torch."""
    case = dict(case)
    n, length, source = case.pop("n", 2), case.pop("length", 3), case.pop("source", 4)
    unbatched, need_weights = case.pop("unbatched", False), case.pop("need_weights", True)
    first = case.get("batch_first", False)
    ours, theirs = twins(np.float64, 2, **case)

    def seq(size):
        return rng.standard_normal((size, 8) if unbatched else
                                   ((n, size, 8) if first else (size, n, 8)))
    k = seq(source)
    result = run_both(ours, theirs, seq(length), k, k.copy(), need_weights=need_weights)
    assert_matches(ours, theirs, result, np.float64)


OPTIONS = [dict(kdim=4, vdim=6), dict(kdim=4, vdim=6, bias=False, batch_first=True),
           dict(add_bias_kv=True), dict(add_zero_attn=True, mask="bool"),
           dict(add_bias_kv=True, add_zero_attn=True, kdim=5, vdim=5, mask="padding",
                need_weights=False),
           dict(add_bias_kv=True, add_zero_attn=True, unbatched=True, mask="float",
                average=False),
           dict(kdim=4, vdim=6, mask="per-head", need_weights=False)]


@pytest.mark.parametrize("case", OPTIONS, ids=["kdim-vdim", "kdim-vdim-no-bias-batch-first",
                                               "bias-kv", "zero-attn-bool-mask",
                                               "bias-kv-zero-attn-kdim-padding",
                                               "bias-kv-zero-attn-unbatched-float-mask",
                                               "kdim-vdim-per-head-mask"])
def test_attention_options_match_torch(dtype, rng, case):
    """kdim/vdim (q/k/v_proj_weight), add_bias_kv (bias_k, bias_v) and add_zero_attn,
    with masks and layouts: state dict names, outputs, weights, gradients of the inputs
    and of every parameter."""
    case = dict(case)
    mask_kind, unbatched = case.pop("mask", None), case.pop("unbatched", False)
    need_weights, average = case.pop("need_weights", True), case.pop("average", True)
    first = case.get("batch_first", False)
    ours, theirs = twins(dtype, 2, **case)
    n, length, source = 2, 3, 5

    def seq(size, features):
        return rng.standard_normal((size, features) if unbatched else
                                   ((n, size, features) if first else (size, n, features))
                                   ).astype(dtype)
    kwargs = dict(need_weights=need_weights, average_attn_weights=average)
    if mask_kind == "bool":
        kwargs["attn_mask"] = np.triu(np.ones((length, source), bool), 1)
    elif mask_kind == "float":
        kwargs["attn_mask"] = rng.standard_normal((length, source)).astype(dtype)
    elif mask_kind == "per-head":
        kwargs["attn_mask"] = rng.standard_normal((n * 2, length, source)).astype(dtype)
    elif mask_kind == "padding":
        padding = np.zeros((n, source), bool)
        padding[1] = True   # all of sample 1's keys: bias_k and the zero key remain
        kwargs["key_padding_mask"] = padding
    q = seq(length, 8)
    k, v = seq(source, case.get("kdim", 8)), seq(source, case.get("vdim", 8))
    result = run_both(ours, theirs, q, k, v, **kwargs)
    assert_matches(ours, theirs, result, dtype)
    assert (ours.in_proj_weight is None) == (theirs.in_proj_weight is None)


@pytest.mark.parametrize("need_weights, padding", [(False, False), (True, False),
                                                   (False, True)],
                         ids=["sdpa-causal", "weights-mask", "padding-mask"])
def test_is_causal_hint_matches_torch(rng, need_weights, padding):
    """is_causal=True with an attn_mask: without key_padding_mask and need_weights=False
    torch runs scaled_dot_product_attention's causal mask (key j > query i hidden, also
    for L != S) in place of attn_mask; otherwise it uses attn_mask. A deliberately wrong
    hint (a random mask) shows which was used."""
    ours, theirs = twins(np.float64, 2, add_zero_attn=True)
    n, length, source = 2, 3, 5
    q = rng.standard_normal((length, n, 8))
    k = rng.standard_normal((source, n, 8))
    mask = rng.random((length, source)) < 0.3
    mask[:, 0] = False
    kwargs = dict(attn_mask=mask, is_causal=True, need_weights=need_weights)
    if padding:
        kwargs["key_padding_mask"] = np.zeros((n, source), bool)
    result = run_both(ours, theirs, q, k, k.copy(), **kwargs)
    assert_matches(ours, theirs, result, np.float64)
    plain = ours(q, k, k, attn_mask=mask, need_weights=need_weights)[0]
    assert np.allclose(plain, result[0][0]) == (need_weights or padding)


def test_dropout_one_and_init_match_torch(rng):
    """dropout=1.0 (accepted, as torch): every weight dropped in training, the output
    out_proj.bias; new parameters start as torch's (xavier_uniform q/k/v_proj_weight,
    xavier_normal bias_k / bias_v of shape (1, 1, E))."""
    ours, theirs = twins(np.float64, 2, dropout=1.0)
    q = rng.standard_normal((3, 2, 8))
    result = run_both(ours, theirs, q, q, q, self_attention=True)
    assert_matches(ours, theirs, result, np.float64)
    np.testing.assert_array_equal(result[0][1], 0)
    layer = nn.MultiheadAttention(64, 4, kdim=32, vdim=16, add_bias_kv=True)
    assert layer.in_proj_weight is None
    for name, fan in (("q_proj_weight", 64), ("k_proj_weight", 32), ("v_proj_weight", 16)):
        w = getattr(layer, name).data
        bound = np.sqrt(6 / (64 + fan))
        assert w.shape == (64, fan) and np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.9 * bound
    bias_k = np.concatenate([layer.bias_k.data.ravel(), layer.bias_v.data.ravel()])
    assert layer.bias_k.data.shape == (1, 1, 64)
    assert abs(bias_k.std() - np.sqrt(1 / 64)) < 0.3 * np.sqrt(1 / 64)
    np.testing.assert_array_equal(layer.in_proj_bias.data, 0)
