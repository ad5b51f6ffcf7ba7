"""TransformerEncoderLayer and TransformerEncoder against torch.nn: outputs, the
gradient of the input and of every parameter (post-norm and norm_first, relu and gelu,
masks, layouts, a final norm), and eval mode with dropout."""
import warnings

import numpy as np
import pytest
import torch

from fastnn import nn

from conftest import assert_close
from nn_torch_helpers import TORCH_DTYPES

torch.set_num_threads(2)

CASES = [
    dict(),
    dict(norm_first=True, activation="gelu", batch_first=True),
    dict(mask=True, layers=2, final_norm=True),
    dict(norm_first=True, unbatched=True, layers=2),
]


def twins(dtype, layers=1, final_norm=False, dropout=0.0, **kwargs):
    kwargs = dict(dim_feedforward=16, dropout=dropout, **kwargs)
    tdtype = TORCH_DTYPES[np.dtype(dtype)]
    theirs = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(8, 2, **kwargs), layers,
        norm=torch.nn.LayerNorm(8) if final_norm else None,
        enable_nested_tensor=False).to(tdtype)
    ours = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, dtype=dtype, **kwargs),
                                 layers, norm=nn.LayerNorm(8, dtype=dtype) if final_norm else None)
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    return ours, theirs


@pytest.mark.parametrize("case", CASES, ids=["post-norm", "norm-first-gelu-batch-first",
                                             "causal-2-layers-final-norm",
                                             "norm-first-unbatched"])
def test_transformer_encoder_matches_torch(dtype, rng, case):
    case = dict(case)
    mask, unbatched = case.pop("mask", False), case.pop("unbatched", False)
    ours, theirs = twins(dtype, **case)
    shape = (5, 8) if unbatched else ((2, 5, 8) if case.get("batch_first") else (5, 2, 8))
    x = rng.standard_normal(shape).astype(dtype)
    causal = np.triu(np.ones((5, 5), bool), 1) if mask else None
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ty = theirs(tx, mask=None if causal is None else torch.from_numpy(causal))
    y = ours(x, mask=causal)
    g = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.from_numpy(g))
    grad = ours.backward(g)
    assert_close(y, ty.detach().numpy(), dtype, scale=10)
    assert_close(grad, tx.grad.numpy(), dtype, scale=30)
    named = dict(theirs.named_parameters())
    assert [name for name, _ in ours.named_parameters()] == list(named)
    for name, p in ours.named_parameters():
        assert_close(p.grad, named[name].grad.numpy(), dtype, scale=100, err_msg=name)


def test_eval_mode_with_dropout_matches_torch(rng):
    ours, theirs = twins(np.float64, layers=2, dropout=0.1)
    x = rng.standard_normal((4, 3, 8))
    train_out = ours(x)
    ours.eval()
    theirs.eval()
    y = ours(x)
    np.testing.assert_allclose(y, theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-9,
                               atol=1e-11)
    assert not np.allclose(train_out, y)


def test_transformer_bad_arguments():
    with pytest.raises(ValueError, match="activation should be 'relu' or 'gelu'"):
        nn.TransformerEncoderLayer(8, 2, activation="tanh")
    with pytest.raises(TypeError, match="expected a TransformerEncoderLayer"):
        nn.TransformerEncoder(nn.Linear(2, 2), 2)


@pytest.mark.parametrize("case", [dict(), dict(norm_first=True, batch_first=True, layers=2,
                                                final_norm=True, activation="gelu")],
                         ids=["post-norm", "norm-first-2-layers"])
def test_transformer_decoder_matches_torch(dtype, rng, case):
    """tgt with a causal mask attending to memory with a padding mask: output and the
    gradients of tgt, memory (summed over the layers) and every parameter."""
    case = dict(case)
    layers, final_norm = case.pop("layers", 1), case.pop("final_norm", False)
    kwargs = dict(dim_feedforward=16, dropout=0.0, **case)
    tdtype = TORCH_DTYPES[np.dtype(dtype)]
    theirs = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(8, 2, **kwargs),
                                         layers, norm=torch.nn.LayerNorm(8) if final_norm
                                         else None).to(tdtype)
    ours = nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, dtype=dtype, **kwargs),
                                 layers, norm=nn.LayerNorm(8, dtype=dtype) if final_norm
                                 else None)
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    first = case.get("batch_first", False)
    tgt = rng.standard_normal((2, 4, 8) if first else (4, 2, 8)).astype(dtype)
    memory = rng.standard_normal((2, 6, 8) if first else (6, 2, 8)).astype(dtype)
    causal = np.triu(np.ones((4, 4), bool), 1)
    padding = np.zeros((2, 6), bool)
    padding[:, -2:] = True
    tt, tm = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (tgt, memory))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ty = theirs(tt, tm, tgt_mask=torch.from_numpy(causal),
                    memory_key_padding_mask=torch.from_numpy(padding))
    y = ours(tgt, memory, tgt_mask=causal, memory_key_padding_mask=padding)
    g = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.from_numpy(g))
    grad_tgt, grad_memory = ours.backward(g)
    assert_close(y, ty.detach().numpy(), dtype, scale=10)
    assert_close(grad_tgt, tt.grad.numpy(), dtype, scale=30)
    assert_close(grad_memory, tm.grad.numpy(), dtype, scale=30)
    named = dict(theirs.named_parameters())
    assert [name for name, _ in ours.named_parameters()] == list(named)
    for name, p in ours.named_parameters():
        assert_close(p.grad, named[name].grad.numpy(), dtype, scale=100, err_msg=name)


@pytest.mark.parametrize("norm_first, batch_first", [(False, False), (True, True)])
def test_full_transformer_matches_torch(rng, norm_first, batch_first):
    """Encoder-decoder with the causal mask of generate_square_subsequent_mask: output
    and the gradients of src, tgt and every parameter (float64); xavier init bounds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # torch's note on nested tensors with norm_first
        theirs = torch.nn.Transformer(8, 2, 2, 2, 16, 0.0, batch_first=batch_first,
                                      norm_first=norm_first).double()
    ours = nn.Transformer(8, 2, 2, 2, 16, 0.0, batch_first=batch_first, norm_first=norm_first,
                          dtype=np.float64)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    src = rng.standard_normal((2, 6, 8) if batch_first else (6, 2, 8))
    tgt = rng.standard_normal((2, 4, 8) if batch_first else (4, 2, 8))
    mask = nn.Transformer.generate_square_subsequent_mask(4, np.float64)
    np.testing.assert_array_equal(
        mask, torch.nn.Transformer.generate_square_subsequent_mask(4, dtype=torch.float64))
    ts, tt = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (src, tgt))
    ty = theirs(ts, tt, tgt_mask=torch.from_numpy(mask))
    y = ours(src, tgt, tgt_mask=mask)
    g = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.from_numpy(g))
    grad_src, grad_tgt = ours.backward(g)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(grad_src, ts.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(grad_tgt, tt.grad.numpy(), rtol=1e-8, atol=1e-10)
    named = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, named[name].grad.numpy(), rtol=1e-8, atol=1e-10,
                                   err_msg=name)
    fresh = nn.Transformer(16, 4, 1, 1, 32)
    w = fresh.encoder.layers[0].linear1.weight.data
    assert np.abs(w).max() <= np.sqrt(6 / (16 + 32))   # xavier_uniform, as PyTorch's
