"""TransformerEncoderLayer and TransformerEncoder against torch.nn: outputs, the
gradient of the input and of every parameter (post-norm and norm_first, relu and gelu,
masks, layouts, a final norm), and eval mode with dropout; the decoder and the full
Transformer likewise, with fully masked queries, empty inputs, the is_causal hints,
zero layers, activation layers and functions, dropout=1 and the inputs torch rejects."""
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


def torch_transformer(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # torch's note on nested tensors
        return torch.nn.Transformer(*args, **kwargs).double()


def load_twin(ours, theirs):
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})


def compare_run(ours, theirs, inputs, kwargs, dtype=np.float64, scale=100):
    """ours(*inputs, **kwargs) and theirs(...) (masks as tensors), the backward of one
    random gradient: outputs, gradients of every input and every parameter compared."""
    tensors = [torch.from_numpy(a.copy()).requires_grad_(True) for a in inputs]
    tkwargs = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
               for k, v in kwargs.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ty = theirs(*tensors, **tkwargs)
    y = ours(*inputs, **kwargs)
    g = np.random.default_rng(1).standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.from_numpy(g))
    grads = ours.backward(g)
    grads = grads if isinstance(grads, tuple) else (grads,)
    if isinstance(ours, nn.Transformer):
        grads = grads[:2]
    assert y.shape == tuple(ty.shape)
    assert_close(y, ty.detach().numpy(), dtype, scale=scale)
    for grad, t in zip(grads, tensors):
        assert np.isfinite(grad).all()
        assert_close(grad, t.grad.numpy(), dtype, scale=scale)
    named = dict(theirs.named_parameters())
    assert [name for name, _ in ours.named_parameters()] == list(named)
    for name, p in ours.named_parameters():
        assert np.isfinite(p.grad).all(), name
        assert_close(p.grad, named[name].grad.numpy(), dtype, scale=scale, err_msg=name)
    return y


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_fully_masked_rows_keep_transformer_finite(rng, training):
    """Every key of one sample padded (encoder) and a memory mask row hiding all memory
    (decoder): attention of zero weights, as torch's layers (need_weights=False), so the
    outputs and every gradient stay finite and equal torch's (autograd on: in eval mode
    too, torch's inference fast path is not taken)."""
    theirs = torch_transformer(8, 2, 1, 1, 16, 0.0)
    ours = nn.Transformer(8, 2, 1, 1, 16, 0.0, dtype=np.float64)
    load_twin(ours, theirs)
    ours.train(training)
    theirs.train(training)
    src, tgt = rng.standard_normal((5, 2, 8)), rng.standard_normal((4, 2, 8))
    padding = np.zeros((2, 5), bool)
    padding[1] = True
    memory_mask = np.zeros((4, 5), bool)
    memory_mask[2] = True
    compare_run(ours, theirs, (src, tgt), dict(src_key_padding_mask=padding,
                                               memory_mask=memory_mask))


def test_transformer_rejects_what_torch_rejects():
    """Mixed batched and unbatched tgt / memory / src (ValueError), batch or feature
    sizes that differ (ValueError), integer masks (TypeError); torch raises on each."""
    layer = nn.TransformerDecoderLayer(8, 2, 16, 0.0)
    decoder = nn.TransformerDecoder(layer, 1)
    model = nn.Transformer(8, 2, 1, 1, 16, 0.0)
    x2, x3 = np.zeros((3, 8), np.float32), np.zeros((3, 2, 8), np.float32)
    for module in (layer, decoder):
        for tgt, memory in ((x2, x3), (x3, x2)):
            with pytest.raises(ValueError, match="tgt and memory both batched .3-D. or both"):
                module(tgt, memory)
    with pytest.raises(ValueError, match="src and tgt both batched .3-D. or both"):
        model(x2, x3)
    with pytest.raises(ValueError, match="src and tgt of one batch size"):   # as PyTorch
        model(x3, x2)
    with pytest.raises(ValueError, match="src and tgt of one batch size"):
        model(x3, np.zeros((3, 4, 8), np.float32))
    with pytest.raises(ValueError, match="d_model = 8 features"):
        model(x3, np.zeros((3, 2, 6), np.float32))
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 1)
    with pytest.raises(TypeError, match="expected mask of dtype bool .* or float"):
        encoder(x3, mask=np.zeros((3, 3), np.int64))
    with pytest.raises(TypeError, match="expected src_key_padding_mask of dtype bool"):
        encoder.layers[0](x3, src_key_padding_mask=np.zeros((2, 3), np.uint8))
    with pytest.raises(TypeError, match="expected memory_mask of dtype bool"):
        model(x3, x3, memory_mask=np.zeros((3, 3), np.int32))
    with pytest.raises(TypeError, match="plain callable, whose derivative"):
        nn.TransformerEncoderLayer(8, 2, activation=np.tanh)
    with pytest.raises(ValueError, match="num_layers to be a non-negative int"):
        nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), -1)


@pytest.mark.parametrize("case", ["empty-batch", "no-source", "no-memory"])
def test_empty_inputs_match_torch(rng, case):
    """An empty batch, an empty src (the decoder then attends to no memory: zero
    attention) and an empty memory: torch's outputs and gradients."""
    theirs = torch_transformer(8, 2, 1, 1, 16, 0.0)
    ours = nn.Transformer(8, 2, 1, 1, 16, 0.0, dtype=np.float64)
    load_twin(ours, theirs)
    if case == "no-memory":
        theirs, ours = theirs.decoder, ours.decoder
    n, source = (0, 5) if case == "empty-batch" else (2, 0)
    inputs = (rng.standard_normal((source, n, 8)), rng.standard_normal((4, n, 8)))
    compare_run(ours, theirs, inputs if case != "no-memory" else inputs[::-1],
                dict(tgt_mask=nn.Transformer.generate_square_subsequent_mask(4, np.float64)))


@pytest.mark.parametrize("padding", [False, True], ids=["sdpa-causal", "with-padding"])
def test_is_causal_hints_match_torch(rng, padding):
    """src_is_causal / tgt_is_causal / memory_is_causal passed down as torch does: each
    layer's attention takes the causal mask in place of the given one unless a padding
    mask comes with it (the memory mask here is not causal: a wrong hint, which shows
    which mask was used; for L != S the causal mask is top-left aligned)."""
    theirs = torch_transformer(8, 2, 2, 1, 16, 0.0, batch_first=True)
    ours = nn.Transformer(8, 2, 2, 1, 16, 0.0, batch_first=True, dtype=np.float64)
    load_twin(ours, theirs)
    src, tgt = rng.standard_normal((2, 5, 8)), rng.standard_normal((2, 4, 8))
    memory_mask = rng.random((4, 5)) < 0.3
    memory_mask[:, 0] = False
    kwargs = dict(src_mask=nn.Transformer.generate_square_subsequent_mask(5, np.float64),
                  tgt_mask=np.triu(np.ones((4, 4), bool), 1), memory_mask=memory_mask,
                  src_is_causal=True, tgt_is_causal=True, memory_is_causal=True)
    if padding:
        kwargs["memory_key_padding_mask"] = np.zeros((2, 5), bool)
    y = compare_run(ours, theirs, (src, tgt), kwargs)
    kwargs["memory_is_causal"] = False
    assert np.allclose(ours(src, tgt, **kwargs), y) == padding
    with pytest.raises(ValueError, match="needs that attn_mask"):
        ours.encoder(src, is_causal=True)


def test_zero_layers_as_torch():
    """num_layers=0 builds, the state dict holds the norm's entries only, and forward
    raises IndexError, as torch's encoder and decoder do."""
    x = np.zeros((3, 2, 8), np.float32)
    for ours, theirs, args in (
            (nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 0, nn.LayerNorm(8)),
             torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, 16), 0,
                                         torch.nn.LayerNorm(8), enable_nested_tensor=False),
             (x,)),
            (nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16), 0),
             torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(8, 2, 16), 0),
             (x, x))):
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert ours.num_layers == 0
        with pytest.raises(IndexError, match="no layers"):
            ours(*args)
        with pytest.raises(IndexError):
            theirs(*(torch.from_numpy(a) for a in args))
    model = nn.Transformer(8, 2, 0, 1, 16)
    assert [n for n, _ in model.named_parameters()] == [
        n for n, _ in torch_transformer(8, 2, 0, 1, 16).named_parameters()]


@pytest.mark.parametrize("activation", ["silu-layer", "gelu-tanh-layer", "ops-gelu",
                                        "ops-relu"])
def test_activation_layers_and_functions_match_torch(rng, activation):
    """activation as a fastnn layer (its backward is the layer's) or a fastnn.ops
    function (mapped to its layer), against torch's module / functional."""
    ours_act, theirs_act = {
        "silu-layer": (nn.SiLU(), torch.nn.SiLU()),
        "gelu-tanh-layer": (nn.GELU("tanh"), torch.nn.GELU("tanh")),
        "ops-gelu": (fastnn.ops.gelu, torch.nn.functional.gelu),
        "ops-relu": (fastnn.ops.relu, torch.nn.functional.relu)}[activation]
    theirs = torch.nn.TransformerDecoderLayer(8, 2, 16, 0.0, activation=theirs_act).double()
    ours = nn.TransformerDecoderLayer(8, 2, 16, 0.0, activation=ours_act, dtype=np.float64)
    assert isinstance(ours.activation, nn.Module)
    load_twin(ours, theirs)
    compare_run(ours, theirs, (rng.standard_normal((4, 2, 8)), rng.standard_normal((5, 2, 8))),
                {})


def test_dropout_one_matches_torch(rng):
    """dropout=1.0 (accepted, as torch): in training every dropout zeroes (attention
    weights too), so the layer is deterministic and equals torch's, gradients included;
    eval mode is unaffected."""
    theirs = torch.nn.TransformerEncoderLayer(8, 2, 16, 1.0).double()
    ours = nn.TransformerEncoderLayer(8, 2, 16, 1.0, dtype=np.float64)
    load_twin(ours, theirs)
    assert repr(ours.dropout) == repr(theirs.dropout)
    x = rng.standard_normal((4, 2, 8))
    compare_run(ours, theirs, (x,), dict(src_mask=np.triu(np.ones((4, 4), bool), 1)))
    ours.eval()
    theirs.eval()
    np.testing.assert_allclose(ours(x), theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-9, atol=1e-11)


def test_stacks_pass_masks_to_their_layers_as_keywords():
    """PyTorch's TransformerEncoder/Decoder call each layer with keyword masks, so a
    with_kwargs forward pre-hook on a layer sees the same arguments."""
    import torch
    seen, tseen = [], []
    hook = lambda into: lambda m, a, k: into.append((len(a), sorted(k)))  # noqa: E731
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0), 2,
                                enable_nested_tensor=False)
    enc.layers[0].register_forward_pre_hook(hook(seen), with_kwargs=True)
    enc(np.ones((3, 2, 4), np.float32), mask=nn.Transformer.generate_square_subsequent_mask(3))
    dec = nn.TransformerDecoder(nn.TransformerDecoderLayer(4, 2, 8, dropout=0.0), 1)
    dec.layers[0].register_forward_pre_hook(hook(seen), with_kwargs=True)
    dec(np.ones((3, 2, 4), np.float32), np.ones((5, 2, 4), np.float32))
    tenc = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0),
                                       2, enable_nested_tensor=False)
    tenc.layers[0].register_forward_pre_hook(hook(tseen), with_kwargs=True)
    tenc(torch.ones(3, 2, 4), mask=torch.nn.Transformer.generate_square_subsequent_mask(3))
    tdec = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(4, 2, 8, dropout=0.0), 1)
    tdec.layers[0].register_forward_pre_hook(hook(tseen), with_kwargs=True)
    tdec(torch.ones(3, 2, 4), torch.ones(5, 2, 4))
    assert seen == tseen
