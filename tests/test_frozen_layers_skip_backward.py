"""Frozen parameters cost no backward work, as in PyTorch: a Sequential's backward stops
at its first layer with a parameter to train (the frozen backbone of fine-tuning is not
differentiated at all), and a frozen Linear inside the network computes its input
gradient only. Their .grad is left alone (PyTorch's stays None), and the trainable
parameters get PyTorch's gradients."""
import numpy as np
import pytest
import torch

import fastnn
from fastnn import device as _device
from fastnn import nn, optim
from tests.conftest import assert_close

RNG = np.random.default_rng(0)
X = RNG.standard_normal((8, 6))
Y = RNG.integers(0, 3, 8)


def _twins():
    fastnn.manual_seed(0)
    ours = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.Tanh(),
                         nn.Linear(4, 3)).double()
    theirs = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 4),
                                 torch.nn.Tanh(), torch.nn.Linear(4, 3)).double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    return ours, theirs


class _Spy:
    """Records each linear_backward call of the current backend's kernels (grad_weight
    given, grad_bias given, need_grad_in)."""

    def __init__(self, monkeypatch):
        kernels = _device.kernels("cpu")
        real = kernels.linear_backward
        self.calls = []

        def spy(*args, **kwargs):
            self.calls.append((kwargs.get("grad_weight") is not None,
                               kwargs.get("grad_bias") is not None,
                               kwargs.get("need_grad_in", True)))
            return real(*args, **kwargs)
        monkeypatch.setattr(kernels, "linear_backward", spy)


def _step(ours, theirs, need_grad_in=False):
    loss_fn = nn.CrossEntropyLoss()
    loss_fn(ours(X), Y)
    got = ours.backward(loss_fn.backward(), need_grad_in=need_grad_in)
    torch.nn.functional.cross_entropy(theirs(torch.tensor(X)), torch.tensor(Y)).backward()
    return got


def _check_grads(ours, theirs):
    for p, q in zip(ours.parameters(), theirs.parameters()):
        if q.grad is None:   # frozen: PyTorch's None, fastnn's untouched zeros
            assert not p.requires_grad and optim.has_no_grad(p)
            assert not np.any(p.grad)
        else:
            assert_close(p.grad, q.grad.numpy(), np.float64)


@pytest.mark.parametrize("frozen, calls", [
    # a frozen first layer is not differentiated; the first trainable one computes no
    # input gradient
    ((0,), [(True, True, True), (True, True, False)]),
    ((0, 2), [(True, True, False)]),                           # a frozen backbone of two
    ((2,), [(True, True, True), (False, False, True), (True, True, False)]),  # the middle
])
def test_frozen_linears_skip_their_gradient_work(backend, monkeypatch, frozen, calls):
    """The linear_backward calls (grad_weight given, grad_bias given, need_grad_in), last
    layer first: a frozen Linear before the first trainable one is skipped, one after it
    computes its input gradient only."""
    ours, theirs = _twins()
    for model in (ours, theirs):
        for i in frozen:
            model[i].requires_grad_(False)
    with fastnn.use_backend(backend):
        spy = _Spy(monkeypatch)
        assert _step(ours, theirs) is None
    assert spy.calls == calls
    _check_grads(ours, theirs)


def test_a_frozen_weight_with_a_trainable_bias(backend):
    """Only the bias is trained: its gradient is PyTorch's, the weight's left alone,
    with gradients pending from zero_grad() and accumulated ones alike."""
    ours, theirs = _twins()
    for model in (ours, theirs):
        model[0].weight.requires_grad_(False)
    with fastnn.use_backend(backend):
        got = _step(ours, theirs, need_grad_in=True)
        _check_grads(ours, theirs)
        _step(ours, theirs)   # (accumulating into the bias)
    _check_grads(ours, theirs)
    assert got.shape == X.shape


def test_the_input_gradient_through_a_frozen_network_is_pytorchs(backend):
    ours, theirs = _twins()
    ours.requires_grad_(False)
    theirs.requires_grad_(False)
    x = torch.tensor(X, requires_grad=True)
    with fastnn.use_backend(backend):
        loss_fn = nn.CrossEntropyLoss()
        loss_fn(ours(X), Y)
        got = ours.backward(loss_fn.backward())
    torch.nn.functional.cross_entropy(theirs(x), torch.tensor(Y)).backward()
    assert_close(got, x.grad.numpy(), np.float64)
    _check_grads(ours, theirs)


def test_unfrozen_again_the_layers_train(backend):
    """The backbone unfrozen after frozen steps: its next gradient is that batch's, as
    PyTorch's, and the layers before it are differentiated again."""
    ours, theirs = _twins()
    for model in (ours, theirs):
        model[0].requires_grad_(False)
    with fastnn.use_backend(backend):
        _step(ours, theirs)
        for model in (ours, theirs):
            model[0].requires_grad_(True)
        ours.zero_grad()
        theirs.zero_grad()
        _step(ours, theirs)
    _check_grads(ours, theirs)


@pytest.mark.parametrize("set_to_none", [True, False])
def test_a_head_trained_on_a_frozen_backbone_steps_as_pytorchs(backend, set_to_none):
    ours, theirs = _twins()
    for model in (ours, theirs):
        model[0].requires_grad_(False)
    opts = (optim.SGD(ours.parameters(), lr=0.1, momentum=0.9),
            torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9))
    with fastnn.use_backend(backend):
        for _ in range(3):
            for opt in opts:
                opt.zero_grad(set_to_none=set_to_none)
            _step(ours, theirs)
            for opt in opts:
                opt.step()
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert_close(p.data, q.detach().numpy(), np.float64)
