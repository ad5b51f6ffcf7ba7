"""MultiheadAttention against torch.nn.MultiheadAttention: outputs, attention weights,
the gradients of query, key and value and of every parameter, with masks, heads,
layouts and self-attention."""
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


def twins(dtype, heads, bias=True, batch_first=False, dropout=0.0):
    theirs = torch.nn.MultiheadAttention(8, heads, bias=bias, batch_first=batch_first,
                                         dropout=dropout).to(TORCH_DTYPES[np.dtype(dtype)])
    ours = nn.MultiheadAttention(8, heads, bias=bias, batch_first=batch_first,
                                 dropout=dropout, dtype=dtype)
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    return ours, theirs


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
        nn.MultiheadAttention(8, 2, kdim=4)
    layer = nn.MultiheadAttention(8, 2)
    q = np.zeros((3, 2, 8), np.float32)
    with pytest.raises(ValueError, match=r"expected key of shape \(L, N, E\)"):
        layer(q, np.zeros((3, 2, 7), np.float32), q)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(3, 3\)"):
        layer(q, q, q, attn_mask=np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match=r"key_padding_mask of shape \(2, 3\)"):
        layer(q, q, q, key_padding_mask=np.zeros((3, 2), bool))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        nn.MultiheadAttention(8, 2).backward(q)
