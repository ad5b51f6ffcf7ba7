"""A module's forward/backward lifecycle: a forward that fails part-way, a move or a
conversion between forward and backward, hooks, as PyTorch's modules behave."""
import copy

import numpy as np
import pytest

import fastnn
from fastnn import nn


def _grads(model):
    return [None if p.grad is None else np.array(p.grad, copy=True) for p in model.parameters()]


def _assert_same(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second):
        assert (a is None and b is None) or np.array_equal(a, b)


class _Picky(nn.Module):
    """A user module that refuses a batch holding a NaN (after the layers before it ran)."""

    def forward(self, x):
        if np.isnan(x).any():
            raise ValueError("bad batch")
        return 2 * x

    def backward(self, grad_out):
        return 2 * grad_out


class _PickyLayer(nn.Module):
    """The same, written as a built-in layer is (_forward / _backward)."""

    def _forward(self, x, buffered):
        if np.isnan(x).any():
            raise ValueError("bad batch")
        return 2 * x

    def _backward(self, grad_out, buffered, need_grad_in):
        return 2 * grad_out


@pytest.mark.parametrize("picky", [_Picky, _PickyLayer])
@pytest.mark.parametrize("last", [True, False])
def test_a_failed_forward_changes_nothing_the_next_step_sees(picky, last, rng):
    # (a user module last in the Sequential, or one written with _forward, left the
    # BatchNorm's running statistics and batch count updated by the failed call)
    def build():
        fastnn.manual_seed(0)
        tail = [picky()] if last else [picky(), nn.Linear(6, 3), nn.Tanh()]
        return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Dropout(0.3),
                             *tail).double()
    x = rng.standard_normal((5, 4))
    bad = x.copy()
    bad[2, 1] = np.nan
    failed, twin = build(), build()
    state = fastnn.random.get_state()
    with pytest.raises(ValueError, match="bad batch"):
        failed(bad)
    bn = failed[1]
    assert np.array_equal(bn.running_mean, np.zeros(6))
    assert np.array_equal(bn.running_var, np.ones(6))
    assert int(bn.num_batches_tracked) == 0
    # the dropout that ran drew its mask, as PyTorch's does: with the generator where it
    # was, the next step is the twin's step exactly
    steps = []
    for model in (failed, twin):
        fastnn.random.set_state(state)
        y = model(x)
        steps.append((y, model.backward(np.ones_like(y)), _grads(model),
                      [np.array(b, copy=True) for b in model.buffers()]))
    (y, grad_x, grads, bufs), (y_t, grad_x_t, grads_t, bufs_t) = steps
    np.testing.assert_array_equal(y, y_t)
    np.testing.assert_array_equal(grad_x, grad_x_t)
    _assert_same(grads, grads_t)
    _assert_same(bufs, bufs_t)


def test_a_forward_hook_that_raises_after_forward_refuses_that_calls_backward(rng):
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh()).double()
    x, g = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))

    def check(module, args, output):
        if not np.isfinite(output).all():
            raise ValueError("non-finite output")
    model.register_forward_hook(check)
    model(x)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        model(bad)
    before = _grads(model)
    # it silently gave the NaN gradients of the failed call
    with pytest.raises(RuntimeError, match=r"last call failed in a forward hook "
                                           r"\(ValueError\) after its forward ran"):
        model.backward(g)
    _assert_same(_grads(model), before)
    model(x)
    assert np.isfinite(model.backward(g)).all()


def _seq():
    fastnn.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3),
                         nn.Tanh()).double()


@pytest.mark.parametrize("same", [lambda m: m.to("cpu"), lambda m: m.cpu(),
                                  lambda m: m.double(), lambda m: m.to(np.float64),
                                  lambda m: m.to(dtype=np.float64), lambda m: m[0].double(),
                                  lambda m: m.train(), lambda m: m.eval()],
                         ids=["to_cpu", "cpu", "double", "to_f64", "to_dtype", "layer",
                              "train", "eval"])
def test_a_move_that_changes_nothing_keeps_the_backward(same, rng):
    # (PyTorch's backward runs; fastnn's said "backward called before forward")
    x, g = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    moved, twin = _seq(), _seq()
    moved(x)
    twin(x)
    same(moved)
    np.testing.assert_array_equal(moved.backward(g), twin.backward(g))
    _assert_same(_grads(moved), _grads(twin))


@pytest.mark.parametrize("change, what", [
    (lambda m: m.float(), "converted to float32"),
    (lambda m: m.to(np.float32), "converted to float32"),
    (lambda m: m.load_state_dict(m.state_dict()), "load_state_dict loaded"),
    (lambda m: m.load_state_dict(copy.deepcopy(m.state_dict()), assign=True),
     "load_state_dict loaded"),
], ids=["float", "to_f32", "load", "load_assign"])
def test_a_change_of_arrays_between_forward_and_backward_is_named(change, what, rng):
    # (PyTorch's backward fails too: a dtype mismatch, or an in-place change of a saved
    # tensor; fastnn said "backward called before forward", or for assign=True that a
    # layer "ran a forward of its own")
    x, g = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    for model, grad in ((_seq(), g), (_seq()[0], rng.standard_normal((5, 6)))):
        model(x)
        before = _grads(model)
        change(model)
        with pytest.raises(RuntimeError, match=f"{what}.* after its last forward"):
            model.backward(grad)
        _assert_same(_grads(model), before)
        dtype = next(model.parameters()).dtype
        model(x.astype(dtype))
        assert model.backward(grad.astype(dtype)).shape == x.shape


def test_a_layer_converted_alone_is_named_by_its_sequential(rng):
    model = _seq()
    model(rng.standard_normal((5, 4)))
    model[3].float()
    with pytest.raises(RuntimeError, match=r"Sequential layer 3: Linear.*converted to "
                                           r"float32 after its last forward"):
        model.backward(np.ones((5, 3)))


@pytest.mark.parametrize("build, run, back", [
    (lambda: nn.LSTM(4, 3), lambda m, x: m(x)[0], lambda m, g: m.backward(g, None)),
    (lambda: nn.MultiheadAttention(4, 2), lambda m, x: m(x, x, x)[0],
     lambda m, g: m.backward(g)),
    (lambda: nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0), lambda m, x: m(x),
     lambda m, g: m.backward(g)),
], ids=["LSTM", "MultiheadAttention", "TransformerEncoderLayer"])
def test_layers_with_a_forward_of_their_own_refuse_after_a_conversion(build, run, back, rng):
    # (the LSTM raised a dtype mismatch of grad_output; MultiheadAttention mixed a float32
    # forward with float64 weights silently)
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)
    model = build()
    y = run(model, x)
    model.double()
    with pytest.raises(RuntimeError, match="converted to float64 after its last forward"):
        back(model, np.ones_like(y, dtype=np.float64))
    for _ in range(2):   # a forward since: backward runs (and again after the next one)
        y = run(model, x.astype(np.float64))
        back(model, np.ones_like(y))
    model.to("cpu")   # nothing moves
    back(model, np.ones_like(y))


def test_a_failure_inside_a_nested_sequential_puts_the_outer_statistics_back(rng):
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6),
                          nn.Sequential(nn.ReLU(), _PickyLayer())).double()
    bad = rng.standard_normal((5, 4))
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="bad batch"):
        model(bad)
    assert not model[1].running_mean.any() and int(model[1].num_batches_tracked) == 0


def _two(m, x):
    return m(x, x)


@pytest.mark.parametrize("build, run, back", [
    (lambda: nn.Linear(4, 3), None, None),
    (lambda: nn.Sequential(nn.Linear(4, 3), nn.ReLU()), None, None),
    (lambda: nn.Sequential(nn.Linear(4, 3), _Picky(), nn.Tanh()), None, None),
    (lambda: nn.LSTM(4, 3), lambda m, x: m(x)[0], lambda m, g: m.backward(g, None)),
    (lambda: nn.MultiheadAttention(4, 2), lambda m, x: m(x, x, x)[0], None),
    (lambda: nn.Bilinear(4, 4, 3), _two, None),
    (lambda: nn.PairwiseDistance(), _two, None),
    (lambda: nn.EmbeddingBag(10, 3, mode="sum"),
     lambda m, x: m(np.arange(8).reshape(2, 4)), None),
], ids=["Linear", "Sequential", "after-user-module", "LSTM", "MultiheadAttention",
        "Bilinear", "PairwiseDistance", "EmbeddingBag"])
def test_a_gradient_of_the_wrong_shape_is_pytorchs_runtime_error(build, run, back, rng):
    # (a bare ValueError; PyTorch's backward raises RuntimeError "Mismatch in shape")
    model = build().double()
    x = rng.standard_normal((2, 3, 4))
    y = run(model, x) if run else model(x)
    back = back or (lambda m, g: m.backward(g))
    for bad in (np.ones(y.shape[:-1] + (y.shape[-1] + 1,)), np.ones(y.shape + (1,))):
        with pytest.raises(RuntimeError, match="of shape") as info:
            back(model, bad)
        assert isinstance(info.value, ValueError)
    for p in model.parameters():
        assert p.grad is None or not p.grad.any()
    back(model, np.ones_like(y))


def test_a_backward_hook_changing_a_gradients_shape_is_pytorchs_runtime_error():
    layer = nn.Linear(4, 2).double()
    layer.register_full_backward_hook(lambda module, grad_in, grad_out: (np.ones((3, 5)),))
    layer(np.ones((3, 4)))
    with pytest.raises(RuntimeError, match=r"grad_input\[0\] of shape \(3, 5\)") as info:
        layer.backward(np.ones((3, 2)))
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("build, run, back", [
    (lambda: nn.LSTM(4, 4), lambda m, x: m(x)[0], lambda m, g: m.backward(g, None)),
    (lambda: nn.MultiheadAttention(4, 2), lambda m, x: m(x, x, x)[0],
     lambda m, g: m.backward(g)),
    (lambda: nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0), lambda m, x: m(x),
     lambda m, g: m.backward(g)),
], ids=["LSTM", "MultiheadAttention", "TransformerEncoderLayer"])
def test_a_forward_hook_that_raises_on_a_layer_with_a_forward_of_its_own(build, run, back,
                                                                         rng):
    # (the TransformerEncoderLayer differentiated the failed call silently)
    model = build().double()
    x = rng.standard_normal((5, 2, 4))
    y = run(model, x)
    handle = model.register_forward_hook(lambda module, args, output: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        run(model, 2 * x)
    handle.remove()
    with pytest.raises(RuntimeError, match="failed in a forward hook"):
        back(model, np.ones_like(y))
    for p in model.parameters():
        assert p.grad is None or not p.grad.any()
    y = run(model, x)
    back(model, np.ones_like(y))


def test_a_parameter_replaced_between_forward_and_backward_is_named(rng):
    # (backward took the new weight for the input gradient and the old input for the
    # weight gradient; PyTorch's graph keeps the old parameter)
    x, g = rng.standard_normal((3, 4)), rng.standard_normal((3, 2))
    model = nn.Sequential(nn.Linear(4, 2), nn.Tanh()).double()
    model(x)
    model[0].weight = nn.Parameter(np.zeros((2, 4)))
    with pytest.raises(RuntimeError, match=r"Sequential layer 0: Linear.*parameter 'weight' "
                                           r"was replaced after its last forward"):
        model.backward(g)
    assert not model[0].weight.grad.any()
    model(x)
    assert model.backward(g).shape == x.shape
    model[0].weight = model[0].weight   # the same one: nothing changes
    model.backward(g)


class _FailingBackward(nn.Module):
    fail = False

    def forward(self, x):
        return 2 * x

    def backward(self, grad_out):
        if _FailingBackward.fail:
            raise ValueError("bad gradient")
        return 2 * grad_out


class _FailingBackwardLayer(nn.Module):
    def _forward(self, x, buffered):
        return 2 * x

    def _backward(self, grad_out, buffered, need_grad_in):
        if _FailingBackward.fail:
            raise ValueError("bad gradient")
        return 2 * grad_out


def _failing_hook(module, grad_input, grad_output):
    if _FailingBackward.fail:
        raise ValueError("bad gradient")


@pytest.mark.parametrize("where", ["user-module-first", "user-layer", "hook"])
def test_a_backward_that_fails_part_way_takes_the_gradients_back(where, rng):
    # (the gradients of the layers after the failure stayed added, unless a user module
    # other than the first was there: a retry added them twice)
    def build():
        fastnn.manual_seed(0)
        layers = [nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3), nn.ReLU()]
        if where == "user-module-first":
            layers.insert(0, _FailingBackward())
        elif where == "user-layer":
            layers.insert(2, _FailingBackwardLayer())
        model = nn.Sequential(*layers).double()
        if where == "hook":
            model[1].register_full_backward_hook(_failing_hook)
        return model
    x, g = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    failed, twin = build(), build()
    failed(x)
    twin(x)
    _FailingBackward.fail = True
    try:
        with pytest.raises(ValueError, match="bad gradient"):
            failed.backward(g)
    finally:
        _FailingBackward.fail = False
    for p in failed.parameters():
        assert not p.grad.any()
    np.testing.assert_array_equal(failed.backward(g), twin.backward(g))
    _assert_same(_grads(failed), _grads(twin))


class _NegatedReLU(nn.ReLU):
    """A user's activation written as built-in layers are: -relu(x)."""

    def _forward(self, x, buffered):
        self._mask = x > 0
        return -np.maximum(x, 0)

    def _backward(self, grad_out, buffered, need_grad_in):
        return -grad_out * self._mask


def test_a_users_activation_with_its_own_forward_kernel_is_not_fused(rng):
    # (the Sequential ran a fused Linear + ReLU kernel instead of the user's _forward)
    linear = nn.Linear(4, 3).double()
    model = nn.Sequential(linear, _NegatedReLU())
    x, g = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    h = x @ linear.weight.data.T + linear.bias.data
    np.testing.assert_allclose(model(x), -np.maximum(h, 0))
    np.testing.assert_allclose(model.backward(g), (-g * (h > 0)) @ linear.weight.data)
