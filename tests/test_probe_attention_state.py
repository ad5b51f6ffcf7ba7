"""Saved state of the attention, transformer and EmbeddingBag layers: a forward under
no_grad, or one that fails on a bad argument, never changes what the next backward
computes (PyTorch's graph of the earlier forward is untouched by either)."""
import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn


def test_attention_backward_after_no_grad_forward_raises(rng):
    mha = nn.MultiheadAttention(4, 2, dtype=np.float64)
    x1, x2, g = (rng.standard_normal((3, 2, 4)) for _ in range(3))
    mha(x1, x1, x1)
    with fastnn.no_grad():   # e.g. looking at attention maps between forward and backward
        mha(x2, x2, x2)
    with pytest.raises(RuntimeError, match="gradients disabled"):
        mha.backward(g)
    mha(x1, x1, x1)   # a forward with gradients makes backward work again
    assert mha.backward(g)[0].shape == x1.shape


def test_transformer_layer_backward_after_no_grad_attention_raises(rng):
    layer = nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, dtype=np.float64)
    x, other, g = (rng.standard_normal((3, 2, 4)) for _ in range(3))
    layer(x)
    with fastnn.no_grad():
        layer.self_attn(other, other, other)
    with pytest.raises(RuntimeError, match="gradients disabled"):
        layer.backward(g)


def test_embedding_bag_backward_after_no_grad_forward_raises():
    bag = nn.EmbeddingBag(5, 3, mode="sum", dtype=np.float64)
    bag(np.array([[0, 1]]))
    with fastnn.no_grad():
        bag(np.array([[2, 3]]))
    with pytest.raises(RuntimeError, match="gradients disabled"):
        bag.backward(np.ones((1, 3)))
    assert not bag.weight.grad.any()


@pytest.mark.parametrize("grad", [np.ones((3, 2, 4)), np.ones((3, 2, 4), np.int64),
                                  np.ones((3, 2, 4)).tolist()],
                         ids=["float64", "int64", "list"])
def test_attention_backward_checks_grad_dtype(grad):
    mha = nn.MultiheadAttention(4, 2)   # float32, as torch's: a float64 gradient is refused
    x = np.ones((3, 2, 4), np.float32)
    mha(x, x, x)
    with pytest.raises(TypeError, match="grad_output"):
        mha.backward(grad)
    assert mha.out_proj.weight.grad is None or not mha.out_proj.weight.grad.any()


def test_attention_errors_name_the_layer():
    mha = nn.MultiheadAttention(4, 2)
    with pytest.raises(Exception, match=r"MultiheadAttention\(embed_dim=4, num_heads=2\)"):
        mha(np.ones((3, 2, 5), np.float32), np.ones((3, 2, 4), np.float32),
            np.ones((3, 2, 4), np.float32))


def _gradients(module):
    return [None if p.grad is None else p.grad.copy() for p in module.parameters()]


@pytest.mark.parametrize("norm_first", [False, True])
def test_failed_decoder_forward_leaves_the_last_backward_intact(rng, norm_first):
    layer = nn.TransformerDecoderLayer(4, 2, 8, dropout=0.0, dtype=np.float64,
                                       norm_first=norm_first)
    tgt, other = rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 2, 4))
    memory, g = rng.standard_normal((5, 2, 4)), rng.standard_normal((3, 2, 4))
    layer(tgt, memory)
    expected = [a.copy() for a in layer.backward(g)]
    layer.zero_grad()
    layer(tgt, memory)
    with pytest.raises(RuntimeError, match="batch"):   # memory of another batch: torch fails
        layer(other, rng.standard_normal((5, 3, 4)))
    with pytest.raises(RuntimeError, match="memory_mask|attn_mask"):
        layer(other, memory, memory_mask=np.zeros((4, 4)))
    for got, want in zip(layer.backward(g), expected):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("norm_first", [False, True])
def test_failed_transformer_forward_leaves_the_last_backward_intact(rng, norm_first):
    model = nn.Transformer(4, 2, 1, 1, 8, dropout=0.0, dtype=np.float64,
                           norm_first=norm_first)
    src, tgt = rng.standard_normal((5, 2, 4)), rng.standard_normal((3, 2, 4))
    g = rng.standard_normal((3, 2, 4))
    model(src, tgt)
    expected = [a.copy() for a in model.backward(g)]
    model.zero_grad()
    model(src, tgt)
    # the decoder's mask is wrong: refused before the encoder runs
    with pytest.raises(RuntimeError, match="attn_mask"):
        model(rng.standard_normal((5, 2, 4)), tgt, tgt_mask=np.zeros((4, 4)))
    for got, want in zip(model.backward(g), expected):
        np.testing.assert_array_equal(got, want)


def test_encoder_layer_errors_as_torch(rng):
    """norm_first: LayerNorm's error for the wrong width (torch's norm1 runs first);
    post-norm: the attention's."""
    x = rng.standard_normal((3, 2, 5))
    for norm_first, error in ((True, ValueError), (False, AssertionError)):
        layer = nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, dtype=np.float64,
                                           norm_first=norm_first)
        twin = torch.nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, dtype=torch.float64,
                                                norm_first=norm_first)
        with pytest.raises((RuntimeError, AssertionError)):
            twin(torch.from_numpy(x))
        with pytest.raises(error):
            layer(x)


def test_transformer_with_a_custom_encoder_takes_its_memory_length(rng):
    """A custom encoder's memory need not have src's length: the decoder's arguments are
    checked against the memory it returns, not src (torch's behaviour)."""
    class EveryOther(nn.Module):
        def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
            return src[::2]

        def backward(self, grad):
            out = np.zeros((2 * grad.shape[0],) + grad.shape[1:], grad.dtype)
            out[::2] = grad
            return out
    model = nn.Transformer(8, 2, 1, 1, 16, dropout=0.0, custom_encoder=EveryOther())
    src = rng.standard_normal((6, 2, 8)).astype(np.float32)
    tgt = rng.standard_normal((5, 2, 8)).astype(np.float32)
    assert model(src, tgt, memory_mask=np.zeros((5, 3), np.float32)).shape == (5, 2, 8)
    assert model(src, tgt, memory_key_padding_mask=np.zeros((2, 3), bool)).shape == (5, 2, 8)


def test_a_replaced_layer_without_check_inputs_runs(rng):
    class Identity(nn.Module):
        def forward(self, x, src_mask=None, is_causal=None, src_key_padding_mask=None):
            return x

        def backward(self, grad):
            return grad
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0), 2)
    encoder.layers[1] = Identity()
    x = rng.standard_normal((5, 2, 8)).astype(np.float32)
    assert encoder(x).shape == (5, 2, 8)
    assert encoder.backward(np.ones((5, 2, 8), np.float32)).shape == (5, 2, 8)
