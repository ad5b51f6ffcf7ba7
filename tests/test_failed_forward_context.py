"""A forward that is refused leaves what the last good forward kept for backward: its
backward still gives that forward's gradients (PyTorch: the earlier graph still
backpropagates), or, where layers already ran the failed call, is refused before any
gradient changes, with a message saying why."""
import numpy as np
import pytest

import fastnn
from fastnn import models, nn


def _multitask_run(bad_inputs, x, y_a, y_b):
    fastnn.random.manual_seed(3)
    model = models.MultiTaskNet(4, 7, 5, 3, dropout=0.2).double()
    loss = models.MultiTaskLoss()
    a, logits = model.forward(x)
    loss.forward(a, logits, y_a, y_b)
    for bad in bad_inputs:
        with pytest.raises((ValueError, TypeError)):
            model.forward(bad)
    grad_x = model.backward(*loss.backward())
    return grad_x, [p.grad.copy() for p in model.parameters()]


def test_multitask_refused_forward_keeps_the_last_forwards_backward(rng):
    x = rng.standard_normal((6, 4))
    y_a, y_b = rng.standard_normal((6, 5)), rng.integers(0, 3, 6)
    # a wrong width, float32 and integer inputs are refused (a batch of one is not: the
    # mean-only BatchNorm needs no variance)
    bad = [x[:, :3], x.astype(np.float32), x.astype(np.int64)]
    expected_x, expected = _multitask_run([], x, y_a, y_b)
    got_x, got = _multitask_run(bad, x, y_a, y_b)
    np.testing.assert_array_equal(got_x, expected_x)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


def test_multitask_layer_run_alone_refuses_backward_before_any_gradient(rng):
    x = rng.standard_normal((6, 4))
    model = models.MultiTaskNet(4, 7, 5, 3).double()
    loss = models.MultiTaskLoss()
    a, logits = model.forward(x)
    loss.forward(a, logits, rng.standard_normal((6, 5)), rng.integers(0, 3, 6))
    model.fc1b(x[:3])
    with pytest.raises(RuntimeError, match="sub-module fc1b .* ran a forward of its own"):
        model.backward(*loss.backward())
    for p in model.parameters():
        assert p.grad is None or not p.grad.any()


class _Narrowing(nn.Module):
    """A user module with a forward and backward of its own; narrow: a bad output."""
    narrow = False

    def forward(self, x):
        return x[:, :3] if self.narrow else x * 0.5

    def backward(self, grad_out):
        return grad_out * 0.5


def test_sequential_failed_part_way_says_so_at_backward(rng):
    x, y = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)
    user = _Narrowing()
    model = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU(), user,
                          nn.Linear(6, 3)).double()
    loss = nn.CrossEntropyLoss()
    loss.forward(model.forward(x), y)
    user.narrow = True
    with pytest.raises(ValueError, match="Sequential layer 4"):
        model.forward(x)
    user.narrow = False
    with pytest.raises(RuntimeError, match="failed part-way .*ValueError.*forward again"):
        model.backward(loss.backward())
    for p in model.parameters():
        assert p.grad is None or not p.grad.any()
    loss.forward(model.forward(x), y)   # a good forward clears it
    model.backward(loss.backward())



def _grads(model):
    return [None if p.grad is None else np.array(p.grad, copy=True) for p in model.parameters()]


def _assert_same(first, second):
    for a, b in zip(first, second):
        assert (a is None and b is None) or np.array_equal(a, b)


def test_transformer_layer_sub_module_run_alone_refuses_backward(rng):
    src, other, g = (rng.standard_normal((5, 3, 8)) for _ in range(3))
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, dtype=np.float64)
    layer(src)
    layer.self_attn(other, other, other)   # e.g. to look at an attention map
    before = _grads(layer)
    with pytest.raises(RuntimeError, match="sub-module self_attn .* ran a forward of its own"):
        layer.backward(g)
    _assert_same(_grads(layer), before)
    layer(src)
    assert layer.backward(g).shape == src.shape


def test_encoder_final_norm_refuses_before_any_layer_runs(rng):
    x, g = rng.standard_normal((3, 5, 8)), rng.standard_normal((3, 5, 8))

    def build():
        fastnn.manual_seed(0)
        return nn.TransformerEncoder(nn.TransformerEncoderLayer(
            8, 2, 16, dropout=0.0, batch_first=True, dtype=np.float64), 2,
            norm=nn.LayerNorm([5, 8], dtype=np.float64))
    refused, twin = build(), build()
    refused(x)
    twin(x)
    with pytest.raises(ValueError, match="LayerNorm"):
        refused(x[:, :4])   # the norm's shape is (5, 8): refused before the layers run
    np.testing.assert_array_equal(refused.backward(g), twin.backward(g))
    _assert_same(_grads(refused), _grads(twin))


def test_sequential_checks_a_transformer_layer_before_its_batchnorm_runs(rng):
    model = nn.Sequential(nn.BatchNorm1d(8), nn.TransformerEncoderLayer(8, 2, 16,
                                                                        dropout=0.0))
    x = rng.standard_normal((3, 8, 5)).astype(np.float32)   # BatchNorm takes (N, C, L)
    bn = model[0]
    state = [np.array(a, copy=True) for a in (bn.running_mean, bn.running_var)]
    with pytest.raises(Exception, match="Sequential layer 1"):
        model(x)   # the layer wants d_model = 8 last
    np.testing.assert_array_equal(bn.running_mean, state[0])
    np.testing.assert_array_equal(bn.running_var, state[1])
    assert int(bn.num_batches_tracked) == 0


def test_transformer_custom_encoder_refused_by_the_decoder_refuses_backward(rng):
    class Encoder(nn.TransformerEncoderLayer):   # a custom encoder: memory unknown up front
        pass
    fastnn.manual_seed(0)
    model = nn.Transformer(8, 2, 1, 1, 16, dropout=0.0, dtype=np.float64,
                           custom_encoder=Encoder(8, 2, 16, dropout=0.0, dtype=np.float64))
    src, tgt = rng.standard_normal((5, 2, 8)), rng.standard_normal((4, 2, 8))
    model(src, tgt)
    with pytest.raises(Exception):
        model(src, tgt, tgt_mask=np.zeros((3, 3)))   # the decoder refuses, after the encoder
    before = _grads(model)
    with pytest.raises(RuntimeError, match="failed part-way"):
        model.backward(rng.standard_normal((4, 2, 8)))
    _assert_same(_grads(model), before)


def test_vae_sample_between_forward_and_backward_refuses_backward(rng):
    vae = models.VAE(10, 2, hidden=(8,)).double()
    vae(rng.random((6, 10)))
    vae.sample(6)
    with pytest.raises(RuntimeError, match="sub-module decoder .* ran a forward of its own"):
        vae.backward()
    for p in vae.parameters():
        assert p.grad is None or not p.grad.any()

