"""A frozen parameter (requires_grad_(False)) gets no gradient, as in PyTorch: each layer's
backward neither computes nor touches its .grad (optimizers see none: has_no_grad), while
the input gradient and the other parameters' gradients are bit for bit those of the
unfrozen layer; a layer all frozen with no input gradient wanted does nothing; a frozen
gradient cleared to None stays None; unfrozen again, the parameter gets PyTorch's
gradient."""
import collections
import functools

import numpy as np
import pytest
import torch

import fastnn
from fastnn import device as _device
from fastnn import nn, optim
from fastnn.nn import recurrent
from tests.conftest import assert_close

CPU_BACKENDS = [b for b in fastnn.backends() if b != "cuda"]


def _floats(*shape):
    return np.random.default_rng(1).standard_normal(shape).astype(np.float32)


# name: (fastnn layer, PyTorch layer, input, whether the input has a gradient)
CASES = {
    "conv2d": (lambda: nn.Conv2d(3, 4, 3, padding=1),
               lambda: torch.nn.Conv2d(3, 4, 3, padding=1), _floats(2, 3, 6, 6), True),
    "conv2d_grouped": (lambda: nn.Conv2d(4, 6, 3, groups=2),
                       lambda: torch.nn.Conv2d(4, 6, 3, groups=2), _floats(2, 4, 6, 6), True),
    "conv2d_depthwise": (lambda: nn.Conv2d(4, 8, 3, padding=1, groups=4),
                         lambda: torch.nn.Conv2d(4, 8, 3, padding=1, groups=4),
                         _floats(2, 4, 6, 6), True),
    "conv2d_dilated": (lambda: nn.Conv2d(3, 4, 3, dilation=2),
                       lambda: torch.nn.Conv2d(3, 4, 3, dilation=2), _floats(2, 3, 7, 7), True),
    "conv2d_dilated_strided": (lambda: nn.Conv2d(3, 4, 3, stride=2, dilation=2),
                               lambda: torch.nn.Conv2d(3, 4, 3, stride=2, dilation=2),
                               _floats(2, 3, 9, 9), True),
    "conv1d": (lambda: nn.Conv1d(3, 4, 3), lambda: torch.nn.Conv1d(3, 4, 3),
               _floats(2, 3, 8), True),
    "conv_transpose2d": (lambda: nn.ConvTranspose2d(3, 4, 3, stride=2),
                         lambda: torch.nn.ConvTranspose2d(3, 4, 3, stride=2),
                         _floats(2, 3, 4, 4), True),
    "conv_transpose2d_grouped": (lambda: nn.ConvTranspose2d(4, 6, 3, groups=2),
                                 lambda: torch.nn.ConvTranspose2d(4, 6, 3, groups=2),
                                 _floats(2, 4, 4, 4), True),
    "conv_transpose1d": (lambda: nn.ConvTranspose1d(3, 4, 3, stride=2),
                         lambda: torch.nn.ConvTranspose1d(3, 4, 3, stride=2),
                         _floats(2, 3, 5), True),
    "conv3d": (lambda: nn.Conv3d(2, 3, 2), lambda: torch.nn.Conv3d(2, 3, 2),
               _floats(2, 2, 3, 3, 3), True),
    "conv_transpose3d": (lambda: nn.ConvTranspose3d(2, 3, 2, stride=2),
                         lambda: torch.nn.ConvTranspose3d(2, 3, 2, stride=2),
                         _floats(2, 2, 2, 2, 2), True),
    "batchnorm1d": (lambda: nn.BatchNorm1d(5), lambda: torch.nn.BatchNorm1d(5),
                    _floats(6, 5), True),
    "batchnorm2d": (lambda: nn.BatchNorm2d(3), lambda: torch.nn.BatchNorm2d(3),
                    _floats(2, 3, 4, 4), True),
    "layernorm": (lambda: nn.LayerNorm(6), lambda: torch.nn.LayerNorm(6),
                  _floats(4, 3, 6), True),
    "groupnorm": (lambda: nn.GroupNorm(2, 4), lambda: torch.nn.GroupNorm(2, 4),
                  _floats(2, 4, 3, 3), True),
    "instancenorm2d": (lambda: nn.InstanceNorm2d(3, affine=True),
                       lambda: torch.nn.InstanceNorm2d(3, affine=True),
                       _floats(2, 3, 4, 4), True),
    "rmsnorm": (lambda: nn.RMSNorm(6), lambda: torch.nn.RMSNorm(6), _floats(4, 6), True),
    "prelu": (lambda: nn.PReLU(3), lambda: torch.nn.PReLU(3), _floats(2, 3, 4), True),
    "embedding": (lambda: nn.Embedding(7, 4), lambda: torch.nn.Embedding(7, 4),
                  np.array([[1, 3, 3], [6, 0, 1]]), False),
    "bilinear": (lambda: nn.Bilinear(3, 4, 5), lambda: torch.nn.Bilinear(3, 4, 5),
                 (_floats(6, 3), _floats(6, 4)), True),
    "embedding_bag": (lambda: nn.EmbeddingBag(7, 4, mode="sum"),
                      lambda: torch.nn.EmbeddingBag(7, 4, mode="sum"),
                      np.array([[1, 3, 3], [6, 0, 1]]), False),
}


def _layer(name):
    make, _, _, _ = CASES[name]
    fastnn.manual_seed(0)
    layer = make()
    # affine parameters away from ones and zeros, so that their gradients matter
    for p in layer.parameters():
        p.data = p.data + _floats(*p.data.shape) * 0.5
    return layer


def _run(layer, name, need_grad_in=True):
    _, _, x, _ = CASES[name]
    y = layer(*x) if isinstance(x, tuple) else layer(x)
    grad_out = np.random.default_rng(2).standard_normal(y.shape).astype(np.float32)
    if isinstance(layer, nn.EmbeddingBag):   # (its backward takes grad_out alone)
        return layer.backward(grad_out), grad_out
    if isinstance(layer, nn.Bilinear):   # (two inputs, and both their gradients)
        return layer.backward(grad_out), grad_out
    return layer.backward(grad_out, need_grad_in=need_grad_in), grad_out


def _frozen_names(name):
    layer = _layer(name)
    return [n for n, _ in layer.named_parameters()]


PAIRS = [(case, frozen) for case in CASES for frozen in _frozen_names(case)]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case,frozen", PAIRS)
def test_a_frozen_parameter_gets_no_gradient(backend, case, frozen):
    with fastnn.use_backend(backend):
        reference = _layer(case)
        reference.zero_grad()
        want_in, _ = _run(reference, case, CASES[case][3])
        layer = _layer(case)
        layer.zero_grad()
        param = dict(layer.named_parameters())[frozen]
        param.requires_grad_(False)
        got_in, _ = _run(layer, case, CASES[case][3])
        assert optim.has_no_grad(param)
        assert param.grad is None or not np.any(param.grad)
        if CASES[case][3]:
            for got, want in zip(*(v if isinstance(v, tuple) else (v,)
                                   for v in (got_in, want_in))):
                np.testing.assert_array_equal(got, want)
        for n, p in layer.named_parameters():
            if n != frozen:
                np.testing.assert_array_equal(p.grad, dict(reference.named_parameters())[n].grad)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case", [c for c in CASES if c != "bilinear"])  # (no need_grad_in)
def test_an_all_frozen_layer_without_input_gradient_does_nothing(backend, case):
    with fastnn.use_backend(backend):
        layer = _layer(case)
        layer.zero_grad()
        layer.requires_grad_(False)
        got, _ = _run(layer, case, need_grad_in=False)
        assert got is None
        for p in layer.parameters():
            assert optim.has_no_grad(p)
            assert p.grad is None or not np.any(p.grad)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case", list(CASES))
def test_all_frozen_the_gradients_cleared_to_none_stay_none(backend, case):
    with fastnn.use_backend(backend):
        reference = _layer(case)
        reference.zero_grad()
        want_in, _ = _run(reference, case, CASES[case][3])
        layer = _layer(case)
        for p in layer.parameters():
            p.grad = None   # (PyTorch's way of clearing it; a backward would make zeros)
        layer.requires_grad_(False)
        got_in, _ = _run(layer, case, CASES[case][3])
        for p in layer.parameters():
            assert p.grad is None and optim.has_no_grad(p)
        if CASES[case][3]:
            for got, want in zip(*(v if isinstance(v, tuple) else (v,)
                                   for v in (got_in, want_in))):
                _assert_same_input_gradient(layer, got, want, np.float32)


def _assert_same_input_gradient(layer, got, want, dtype):
    """got == want bit for bit; close only where layer has a LayerNorm, whose kernels, all
    its parameters frozen, take a path of their own (the numba and Cython ones' input
    gradient then differs from the unfrozen one's in the last bit)."""
    if any(isinstance(m, nn.LayerNorm) for m in layer.modules()):
        assert_close(got, want, dtype)
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case,frozen", PAIRS)
def test_unfrozen_again_the_parameter_gets_pytorchs_gradient(backend, case, frozen):
    _, make_torch, x, has_grad_in = CASES[case]
    with fastnn.use_backend(backend):
        layer = _layer(case)
        layer.zero_grad()
        param = dict(layer.named_parameters())[frozen]
        param.requires_grad_(False)
        _run(layer, case, has_grad_in)
        param.requires_grad_(True)
        layer.zero_grad()
        _, grad_out = _run(layer, case, has_grad_in)
    theirs = make_torch()
    theirs.load_state_dict({k: torch.tensor(np.array(v)) for k, v in layer.state_dict().items()})
    inputs = x if isinstance(x, tuple) else (x,)
    (theirs(*map(torch.tensor, inputs)) * torch.tensor(grad_out)).sum().backward()
    for n, q in theirs.named_parameters():
        assert_close(dict(layer.named_parameters())[n].grad, q.grad.numpy(), np.float32)


# Layers whose backward has its own signature: name -> (fastnn layer, PyTorch layer,
# run(layer, dtype) -> (the output the gradient flows into, backward(grad) -> its
# results), run_torch(layer) -> that output). Each backward leaves a frozen parameter's
# .grad alone and skips computing it.
def _x(dtype, *shape):
    return _floats(*shape).astype(dtype)


def _t(*shape):
    return torch.tensor(_floats(*shape))


def _sequence(m, dtype):
    out, _ = m(_x(dtype, 5, 2, 3))
    return out, m.backward


def _packed(m, dtype):
    seq = nn.utils.rnn.pack_padded_sequence(_x(dtype, 5, 3, 3), [5, 2, 4],
                                            enforce_sorted=False)
    out, _ = m(seq)
    return out.data, lambda g: m.backward(g).data


def _torch_packed(m):
    seq = torch.nn.utils.rnn.pack_padded_sequence(_t(5, 3, 3), [5, 2, 4], enforce_sorted=False)
    return m(seq)[0].data


def _cell(m, dtype):
    # (a state given: from zeros, weight_hh's gradient would be zeros)
    if isinstance(m, nn.LSTMCell):
        h = m(_x(dtype, 2, 3), (_x(dtype, 2, 4), _x(dtype, 2, 4) * 0.5))[0]
        return h, lambda g: m.backward((g, None))
    return m(_x(dtype, 2, 3), _x(dtype, 2, 4)), m.backward


def _torch_cell(m):
    if isinstance(m, torch.nn.LSTMCell):
        return m(_t(2, 3), (_t(2, 4), _t(2, 4) * 0.5))[0]
    return m(_t(2, 3), _t(2, 4))


def _attention(m, dtype):
    kdim = m.kdim
    out, _ = m(_x(dtype, 3, 2, 4), _x(dtype, 5, 2, kdim), _x(dtype, 5, 2, kdim))
    return out, m.backward


def _torch_attention(m):
    return m(_t(3, 2, 4), _t(5, 2, m.kdim), _t(5, 2, m.kdim))[0]


_LCE_TARGET = np.array([0, 3, 1, 2, 3, 0])


def _linear_cross_entropy(m, dtype):
    # (frozen before the forward, which computes the training-mode gradients)
    m(_x(dtype, 6, 5), _LCE_TARGET)
    return None, lambda g: m.backward()


_ALS_TARGET = np.array([0, 2, 4, 5, 7, 9])


def _adaptive_log_softmax(m, dtype):
    return m(_x(dtype, 6, 16), _ALS_TARGET).output, lambda g: m.backward(grad_output=g)


OWN_BACKWARD = {
    "rnn_relu": (lambda: nn.RNN(3, 4, nonlinearity="relu"),
                 lambda: torch.nn.RNN(3, 4, nonlinearity="relu"), _sequence,
                 lambda m: m(_t(5, 2, 3))[0]),
    "lstm": (lambda: nn.LSTM(3, 4), lambda: torch.nn.LSTM(3, 4), _sequence,
             lambda m: m(_t(5, 2, 3))[0]),
    "lstm_projected": (lambda: nn.LSTM(3, 4, bidirectional=True, proj_size=2),
                       lambda: torch.nn.LSTM(3, 4, bidirectional=True, proj_size=2), _sequence,
                       lambda m: m(_t(5, 2, 3))[0]),
    "gru": (lambda: nn.GRU(3, 4, num_layers=2, bidirectional=True),
            lambda: torch.nn.GRU(3, 4, num_layers=2, bidirectional=True), _sequence,
            lambda m: m(_t(5, 2, 3))[0]),
    "gru_packed": (lambda: nn.GRU(3, 4), lambda: torch.nn.GRU(3, 4), _packed, _torch_packed),
    "rnn_cell": (lambda: nn.RNNCell(3, 4), lambda: torch.nn.RNNCell(3, 4), _cell, _torch_cell),
    "lstm_cell": (lambda: nn.LSTMCell(3, 4), lambda: torch.nn.LSTMCell(3, 4), _cell,
                  _torch_cell),
    "gru_cell": (lambda: nn.GRUCell(3, 4), lambda: torch.nn.GRUCell(3, 4), _cell, _torch_cell),
    "multihead_attention": (lambda: nn.MultiheadAttention(4, 2),
                            lambda: torch.nn.MultiheadAttention(4, 2), _attention,
                            _torch_attention),
    "multihead_attention_kdim": (
        lambda: nn.MultiheadAttention(4, 2, kdim=3, vdim=3, add_bias_kv=True,
                                      add_zero_attn=True),
        lambda: torch.nn.MultiheadAttention(4, 2, kdim=3, vdim=3, add_bias_kv=True,
                                            add_zero_attn=True),
        _attention, _torch_attention),
    "encoder_layer": (lambda: nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0),
                      lambda: torch.nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0),
                      lambda m, dtype: (m(_x(dtype, 3, 2, 4)), m.backward),
                      lambda m: m(_t(3, 2, 4))),
    "decoder_layer": (lambda: nn.TransformerDecoderLayer(4, 2, 8, dropout=0.0, norm_first=True),
                      lambda: torch.nn.TransformerDecoderLayer(4, 2, 8, dropout=0.0,
                                                               norm_first=True),
                      lambda m, dtype: (m(_x(dtype, 3, 2, 4), _x(dtype, 5, 2, 4)), m.backward),
                      lambda m: m(_t(3, 2, 4), _t(5, 2, 4))),
    "transformer": (lambda: nn.Transformer(4, 2, 1, 1, 8, dropout=0.0),
                    lambda: torch.nn.Transformer(4, 2, 1, 1, 8, dropout=0.0),
                    lambda m, dtype: (m(_x(dtype, 5, 2, 4), _x(dtype, 3, 2, 4)), m.backward),
                    lambda m: m(_t(5, 2, 4), _t(3, 2, 4))),
    "linear_cross_entropy": (lambda: nn.LinearCrossEntropyLoss(5, 4, bias=True),
                             lambda: torch.nn.LinearCrossEntropyLoss(5, 4, bias=True),
                             _linear_cross_entropy,
                             lambda m: m(_t(6, 5), torch.tensor(_LCE_TARGET))),
    "adaptive_log_softmax": (
        lambda: nn.AdaptiveLogSoftmaxWithLoss(16, 10, [3, 6], head_bias=True),
        lambda: torch.nn.AdaptiveLogSoftmaxWithLoss(16, 10, [3, 6], head_bias=True),
        _adaptive_log_softmax, lambda m: m(_t(6, 16), torch.tensor(_ALS_TARGET)).output),
}


def _own_layer(name, dtype=np.float32):
    fastnn.manual_seed(0)
    layer = OWN_BACKWARD[name][0]()
    return layer.double() if dtype == np.float64 else layer


def _arrays(value):
    """The arrays in a backward's result (nested tuples; None left out)."""
    if value is None:
        return []
    if isinstance(value, tuple):
        return [a for v in value for a in _arrays(v)]
    return [value]


def _grad_out(y):
    """The gradient w.r.t. the output y (None for a loss, whose backward takes none)."""
    if y is None:
        return None
    return np.random.default_rng(2).standard_normal(y.shape).astype(y.dtype)


def _own_run(layer, name, dtype=np.float32):
    y, backward = OWN_BACKWARD[name][2](layer, dtype)
    grad = _grad_out(y)
    return _arrays(backward(grad)), grad


OWN_PAIRS = [(c, n) for c in OWN_BACKWARD for n, _ in _own_layer(c).named_parameters()]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case,frozen", OWN_PAIRS)
def test_a_frozen_parameter_of_these_layers_keeps_its_gradient(backend, case, frozen):
    with fastnn.use_backend(backend):
        reference = _own_layer(case)
        reference.zero_grad()
        want, _ = _own_run(reference, case)
        layer = _own_layer(case)
        layer.zero_grad()
        param = dict(layer.named_parameters())[frozen]
        param.grad = np.full(param.data.shape, 0.25, param.data.dtype)
        held = param.grad
        param.requires_grad_(False)
        got, _ = _own_run(layer, case)
        assert optim.has_no_grad(param)
        assert param.grad is held   # (the same array, its values as they were)
        np.testing.assert_array_equal(held, np.full(held.shape, 0.25, held.dtype))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
        for n, p in layer.named_parameters():
            if n != frozen:
                np.testing.assert_array_equal(p.grad, dict(reference.named_parameters())[n].grad)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", list(OWN_BACKWARD))
def test_these_layers_all_frozen_keep_none_gradients(backend, dtype, case):
    with fastnn.use_backend(backend):
        reference = _own_layer(case, dtype)
        reference.zero_grad()
        want, _ = _own_run(reference, case, dtype)
        layer = _own_layer(case, dtype)
        for p in layer.parameters():
            p.grad = None
        layer.requires_grad_(False)
        got, _ = _own_run(layer, case, dtype)
        for p in layer.parameters():
            assert p.grad is None
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _assert_same_input_gradient(layer, g, w, dtype)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case,frozen", OWN_PAIRS)
def test_unfrozen_again_these_layers_get_pytorchs_gradients(backend, case, frozen):
    with fastnn.use_backend(backend):
        layer = _own_layer(case)
        layer.zero_grad()
        param = dict(layer.named_parameters())[frozen]
        param.requires_grad_(False)
        _own_run(layer, case)
        param.requires_grad_(True)
        layer.zero_grad()
        _own_run(layer, case)
    ours = dict(layer.named_parameters())
    for n, want in _torch_grads(case).items():
        assert_close(ours[n].grad, want, np.float32)


@functools.lru_cache(maxsize=None)
def _torch_grads(case):
    """{name: PyTorch's gradient} of the case's layer (its fastnn twin's values, the
    same gradient w.r.t. the output), computed once for every backend and frozen name."""
    layer = _own_layer(case)
    _, grad_out = _own_run(layer, case)
    theirs = OWN_BACKWARD[case][1]()
    theirs.load_state_dict({k: torch.tensor(np.array(v)) for k, v in layer.state_dict().items()})
    y = OWN_BACKWARD[case][3](theirs)
    (y if grad_out is None else (y * torch.tensor(grad_out)).sum()).backward()
    return {n: q.grad.numpy() for n, q in theirs.named_parameters()}


# The work skipped. The results above cannot tell a frozen parameter's gradient never
# computed from one computed and dropped; these spies see the computations themselves.
RECURRENT = ["rnn_relu", "lstm", "lstm_projected", "gru", "gru_packed", "rnn_cell",
             "lstm_cell", "gru_cell"]
ATTENTION = ["multihead_attention", "multihead_attention_kdim", "encoder_layer",
             "decoder_layer", "transformer"]


def _frozen_run(case, frozen, dtype=np.float32):
    """_own_run of a fresh case layer with the named parameters frozen: (the layer, the
    arrays its backward returned)."""
    layer = _own_layer(case, dtype)
    layer.zero_grad()
    params = dict(layer.named_parameters())
    for name in frozen:
        params[name].requires_grad_(False)
    got, _ = _own_run(layer, case, dtype)
    return layer, got


def _recurrent_work(monkeypatch, case, frozen):
    """{helper: Counter of the shapes it computed} for recurrent's weight and bias
    gradient helpers during a _frozen_run, and the arrays its backward returned."""
    work = {}
    with monkeypatch.context() as patch:
        for name in ("_weight_grad", "_bias_grad"):
            real, shapes = getattr(recurrent, name), collections.Counter()

            def spy(*args, real=real, shapes=shapes):
                value = real(*args)
                shapes[value.shape] += 1
                return value
            patch.setattr(recurrent, name, spy)
            work[name] = shapes
        _, got = _frozen_run(case, frozen)
    return work, got


RECURRENT_PAIRS = [(c, n) for c in RECURRENT for n, _ in _own_layer(c).named_parameters()]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case,frozen", RECURRENT_PAIRS)
def test_a_frozen_recurrent_parameter_is_not_differentiated(backend, monkeypatch, case,
                                                            frozen):
    """Frozen, exactly its own products (W_hr's: one a step) or sum are not computed;
    every other parameter's still is."""
    with fastnn.use_backend(backend):
        everything, _ = _recurrent_work(monkeypatch, case, ())
        work, _ = _recurrent_work(monkeypatch, case, (frozen,))
    shape = dict(_own_layer(case).named_parameters())[frozen].data.shape
    kind, other = (("_bias_grad", "_weight_grad") if frozen.startswith("bias")
                   else ("_weight_grad", "_bias_grad"))
    skipped = everything[kind] - work[kind]
    assert list(skipped) == [shape] and not work[kind] - everything[kind]
    assert work[other] == everything[other]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case", RECURRENT)
def test_recurrent_layers_all_frozen_compute_only_the_input_gradient(backend, monkeypatch,
                                                                     case):
    with fastnn.use_backend(backend):
        _, want = _recurrent_work(monkeypatch, case, ())
        names = [n for n, _ in _own_layer(case).named_parameters()]
        work, got = _recurrent_work(monkeypatch, case, names)
    assert not work["_weight_grad"] and not work["_bias_grad"]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


class _AttentionWork:
    """Spies on MultiheadAttention._accumulate and the Linear kernels: ``computed``, the
    ids of the parameters whose attention gradient was computed; ``linear``, each
    linear_backward call's (grad_weight given, grad_bias given)."""

    def __init__(self, patch):
        self.computed, self.linear = set(), []
        accumulate = nn.MultiheadAttention._accumulate

        def spy_accumulate(param, gradient):
            def counted():
                self.computed.add(id(param))
                return gradient()
            accumulate(param, counted)
        patch.setattr(nn.MultiheadAttention, "_accumulate", staticmethod(spy_accumulate))
        kernels = _device.kernels("cpu")
        linear_backward = kernels.linear_backward

        def spy_linear(*args, **kwargs):
            self.linear.append((kwargs.get("grad_weight") is not None,
                                kwargs.get("grad_bias") is not None))
            return linear_backward(*args, **kwargs)
        patch.setattr(kernels, "linear_backward", spy_linear)


def _attention_work(monkeypatch, case, frozen):
    with monkeypatch.context() as patch:
        work = _AttentionWork(patch)
        layer, got = _frozen_run(case, frozen)
    return work, layer, got


ATTENTION_PAIRS = [(c, n) for c in ATTENTION for n, _ in _own_layer(c).named_parameters()]


def _attention_params(layer):
    """The parameters of the MultiheadAttention modules in layer (their ids)."""
    return {id(p) for m in layer.modules() if isinstance(m, nn.MultiheadAttention)
            for p in m.parameters()}


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case,frozen", ATTENTION_PAIRS)
def test_a_frozen_attention_parameter_is_not_differentiated(backend, monkeypatch, case,
                                                            frozen):
    """MultiheadAttention computes the gradient of exactly its parameters that train."""
    with fastnn.use_backend(backend):
        work, layer, _ = _attention_work(monkeypatch, case, (frozen,))
    trained = {id(p) for p in layer.parameters() if p.requires_grad}
    assert work.computed == _attention_params(layer) & trained


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case", ATTENTION)
def test_attention_layers_all_frozen_compute_only_the_input_gradient(backend, monkeypatch,
                                                                     case):
    """All frozen: no attention parameter's gradient computed, the Linears (the
    Transformer layers' feed-forward) pass no weight or bias gradient to their kernel,
    and the input gradients are those of the unfrozen layer (see
    _assert_same_input_gradient)."""
    with fastnn.use_backend(backend):
        _, _, want = _attention_work(monkeypatch, case, ())
        names = [n for n, _ in _own_layer(case).named_parameters()]
        work, layer, got = _attention_work(monkeypatch, case, names)
    assert not work.computed
    assert all(call == (False, False) for call in work.linear)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        _assert_same_input_gradient(layer, g, w, np.float32)
