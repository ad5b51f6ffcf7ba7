"""fastnn.no_grad / enable_grad / set_grad_enabled / inference_mode / is_grad_enabled:
the mode switches as PyTorch's (context managers, decorators, per thread), forward
results unchanged, and a module's backward after a forward without gradients refused."""
import threading
import weakref

import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.models import MLP, SmallCNN
from held_arrays import arrays_held_in_tree

torch = pytest.importorskip("torch")

BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.backends()]


def _trace(lib):
    """The gradient mode seen at each point of the same program, in fastnn or torch."""
    seen = [lib.is_grad_enabled()]
    with lib.no_grad():
        seen.append(lib.is_grad_enabled())
        with lib.enable_grad():
            seen.append(lib.is_grad_enabled())
        seen.append(lib.is_grad_enabled())
        with lib.set_grad_enabled(True):
            seen.append(lib.is_grad_enabled())
        seen.append(lib.is_grad_enabled())
    seen.append(lib.is_grad_enabled())
    lib.set_grad_enabled(False)
    seen.append(lib.is_grad_enabled())
    lib.set_grad_enabled(True)
    with lib.set_grad_enabled(False):
        seen.append(lib.is_grad_enabled())
    seen.append(lib.is_grad_enabled())

    @lib.set_grad_enabled(False)
    def decorated_off():
        return lib.is_grad_enabled()

    seen += [lib.is_grad_enabled(), decorated_off(), lib.is_grad_enabled()]

    @lib.no_grad()
    def called():
        return lib.is_grad_enabled()

    @lib.no_grad
    def bare():
        return lib.is_grad_enabled()

    seen += [called(), bare(), lib.is_grad_enabled()]
    with lib.inference_mode():
        seen.append(lib.is_grad_enabled())
    with lib.inference_mode(False):
        seen.append(lib.is_grad_enabled())
    with lib.no_grad():
        with lib.inference_mode(False):
            seen.append(lib.is_grad_enabled())
    try:
        with lib.no_grad():
            raise KeyError
    except KeyError:
        seen.append(lib.is_grad_enabled())
    other = []
    with lib.no_grad():
        worker = threading.Thread(target=lambda: other.append(lib.is_grad_enabled()))
        worker.start()
        worker.join()
    return seen + other


def test_the_mode_follows_pytorchs():
    assert _trace(fastnn) == _trace(torch)
    assert fastnn.is_grad_enabled() and torch.is_grad_enabled()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make,shape", [
    (lambda: nn.Linear(12, 5), (3, 12)),
    (lambda: nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.Linear(8, 5)),
     (3, 12)),
    (lambda: MLP(12, [6, 6], 5, batchnorm=True), (3, 12)),
    (lambda: SmallCNN(in_channels=1, input_size=8, num_classes=3, channels=[2, 4], hidden=6),
     (2, 1, 8, 8))])
def test_backward_after_a_forward_without_gradients_is_refused(backend, make, shape):
    with fastnn.use_backend(backend):
        fastnn.manual_seed(0)
        model = make().eval()
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        y = model(x)
        with fastnn.no_grad():
            y_off = model(x)
        np.testing.assert_array_equal(y, y_off)
        grads = [p.grad.copy() for p in model.parameters()]
        with pytest.raises(RuntimeError, match="gradients disabled"):
            model.backward(np.ones_like(y_off))
        for p, g in zip(model.parameters(), grads):
            np.testing.assert_array_equal(p.grad, g)
        model.backward(np.ones_like(model(x)))  # a forward with gradients: backward runs
        assert any(np.any(p.grad != g) for p, g in zip(model.parameters(), grads))


def test_decorating_a_non_function_is_a_type_error():
    with pytest.raises(TypeError):
        fastnn.no_grad()(3)
    with pytest.raises(TypeError):
        fastnn.set_grad_enabled("no")


@pytest.mark.parametrize("switch", [fastnn.no_grad, fastnn.inference_mode])
def test_decorated_generator_runs_in_the_mode_at_each_resume(switch):
    # PyTorch's decorators wrap a generator function: its body runs when resumed, not
    # when called, and the caller's mode is back at each yield
    @switch()
    def gen():
        sent = yield fastnn.is_grad_enabled()
        try:
            yield sent, fastnn.is_grad_enabled()
        except ValueError:
            yield "caught", fastnn.is_grad_enabled()
        return "done"

    g = gen()
    assert next(g) is False and fastnn.is_grad_enabled()
    assert g.send("x") == ("x", False) and fastnn.is_grad_enabled()
    assert g.throw(ValueError()) == ("caught", False) and fastnn.is_grad_enabled()
    with pytest.raises(StopIteration) as stop:
        next(g)
    assert stop.value.value == "done" and fastnn.is_grad_enabled()


def test_inference_mode_as_a_bare_decorator():
    @fastnn.inference_mode
    def evaluate(a):
        return fastnn.is_grad_enabled(), a

    assert evaluate(3) == (False, 3) and evaluate.__name__ == "evaluate"
    assert fastnn.is_grad_enabled()
    with pytest.raises(TypeError, match="expected a bool"):
        fastnn.inference_mode(1)


class _Custom(nn.Module):
    """A user's model calling its layers one by one (each call a fresh output)."""

    def __init__(self):
        super().__init__()
        self.fc1, self.bn, self.act = nn.Linear(12, 9), nn.BatchNorm1d(9), nn.Tanh()
        self.drop, self.fc2 = nn.Dropout(0.3), nn.Linear(9, 5)

    def forward(self, x):
        return self.fc2(self.drop(self.act(self.bn(self.fc1(x)))))

    def backward(self, grad_out):
        for layer in (self.fc2, self.drop, self.act, self.bn, self.fc1):
            grad_out = layer.backward(grad_out)
        return grad_out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make,shape", [
    (lambda: nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.Dropout(0.2),
                           nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 5)), (37, 12)),
    (lambda: SmallCNN(in_channels=1, input_size=8, num_classes=3, channels=[2, 4], hidden=6,
                      dropout=0.5), (37, 1, 8, 8)),
    (_Custom, (37, 12))])
@pytest.mark.parametrize("training", [False, True])
def test_a_forward_without_gradients_keeps_no_intermediate_array(backend, make, shape,
                                                                 training):
    # Every layer kept its input (and a Sequential its own buffer for each output) for a
    # backward that no_grad refuses anyway: one big batch held every layer's output at
    # once, 2-3x PyTorch's peak (SmallCNN on 4,000 images: 2.1 GB against 0.77 GB),
    # where PyTorch frees each intermediate once the next layer has read it
    def build():
        fastnn.manual_seed(0)
        return make().train(training)

    with fastnn.use_backend(backend):
        model, twin = build(), build()
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        state = fastnn.get_rng_state()
        expected = twin(x.copy())   # (the same dropout mask as the no_grad call's)
        fastnn.set_rng_state(state)
        given = x.copy()
        kept = weakref.ref(given)
        with fastnn.no_grad():
            out = model(given)
        del given
        np.testing.assert_array_equal(out, expected)
        assert kept() is None
        assert arrays_held_in_tree(model, shape[0]) == []
        with pytest.raises(RuntimeError, match="gradients disabled"):
            model.backward(np.ones_like(out))
        with pytest.raises(RuntimeError, match="gradients disabled|ran fused"):
            next(m for m in model.modules() if isinstance(m, nn.Linear)).backward(
                np.ones((shape[0], 8 if make is not _Custom else 9), np.float32))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pool,tpool", [
    (lambda: nn.MaxPool2d(2, return_indices=True),
     lambda: torch.nn.MaxPool2d(2, return_indices=True)),
    (lambda: nn.AdaptiveMaxPool2d(3, return_indices=True),
     lambda: torch.nn.AdaptiveMaxPool2d(3, return_indices=True)),
    (lambda: nn.MaxPool3d(2, return_indices=True),
     lambda: torch.nn.MaxPool3d(2, return_indices=True))])
def test_max_pools_return_their_indices_under_no_grad_and_keep_none(backend, pool, tpool):
    layer = pool()
    x = np.random.default_rng(2).standard_normal((3, 2, 6, 6, 6)[:4 + (
        type(layer).__name__ == "MaxPool3d")]).astype(np.float32)
    with fastnn.use_backend(backend), fastnn.no_grad():
        y, indices = layer(x)
    with torch.no_grad():
        ty, tindices = tpool()(torch.from_numpy(x))
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(indices, tindices.numpy())
    assert arrays_held_in_tree(layer, 3) == []


def _lent_arrays(model):
    """The arrays model (a Sequential) lends its layers under no_grad, by key."""
    return {slot[0]: a for slot, a in model._scratch.items()
            if isinstance(slot, tuple) and slot[0].startswith("lent_")}


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_grad_passes_alternate_two_output_arrays_reused_call_after_call(backend):
    # Fresh intermediates in every no_grad call (4c02327) were allocated and page-faulted
    # anew each call: a loop of SmallCNN calls ran 1.2-1.6x the time with gradients on.
    # The Sequential lends its layers two output arrays (and one per kind of saved
    # array: a pool's indices, dropout's mask), reused call after call
    def build():
        fastnn.manual_seed(0)
        inner = nn.Sequential(nn.Linear(6, 6), nn.Identity(), nn.Tanh())
        return inner, nn.Sequential(
            nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Identity(), nn.Linear(3 * 4 * 4, 6), nn.Dropout(0.5),
            inner, nn.Linear(6, 6), nn.ReLU(), nn.Flatten(), nn.Linear(6, 4)).eval()

    with fastnn.use_backend(backend):
        inner, model = build()
        x = np.random.default_rng(3).standard_normal((37, 1, 8, 8)).astype(np.float32)
        expected = build()[1](x)
        with fastnn.no_grad():
            first = model(x)
            lent = _lent_arrays(model)
            again = model(x)
        np.testing.assert_array_equal(first, expected)
        np.testing.assert_array_equal(again, expected)
        assert sorted(lent) == ["lent_output_a", "lent_output_b", "lent_scratch_indices"]
        assert all(_lent_arrays(model)[k] is a for k, a in lent.items())   # reused
        assert not any(np.may_share_memory(again, a) for a in lent.values())  # fresh output
        for layer in model.modules():   # (no layer's own buffer for its output)
            if layer is not model and layer is not inner:
                assert not any(slot[0] == "y" for slot in layer._scratch)
        # a forward far smaller than the arrays drops them; a huge output is not lent
        with fastnn.no_grad():
            small = model(x[:2])
        np.testing.assert_array_equal(small, build()[1](x[:2]))   # (its own batch size's)
        assert all(a.size < lent["lent_output_a"].size
                   for a in _lent_arrays(model).values())


def test_no_grad_outputs_over_the_cap_are_fresh(monkeypatch):
    from fastnn.nn import output_slots
    monkeypatch.setattr(output_slots, "SLOT_CAP_BYTES", 37 * 9 * 4)
    def build():
        fastnn.manual_seed(0)
        return nn.Sequential(nn.Linear(5, 9), nn.Tanh(), nn.Linear(9, 30), nn.Sigmoid(),
                             nn.Linear(30, 9), nn.Tanh(), nn.Linear(9, 2))

    model = build()
    x = np.random.default_rng(4).standard_normal((37, 5)).astype(np.float32)
    expected = build()(x)
    with fastnn.no_grad():
        np.testing.assert_array_equal(model(x), expected)
    assert max(a.size for a in _lent_arrays(model).values()) == 37 * 9 * 4


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("training", [False, True])
def test_group_and_instance_norm_keep_no_output_buffer_under_no_grad(backend, training):
    # An affine GroupNorm (and InstanceNorm, computed by it) normalized into the output
    # array its Sequential lends (1bd6d23), then wrote the affine output into a buffer of
    # its own: an array of the layer's output size held after every no_grad pass
    def build():
        fastnn.manual_seed(0)
        return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.ReLU(),
                             nn.InstanceNorm2d(4, affine=True), nn.Tanh(), nn.Flatten(),
                             nn.Linear(4 * 5 * 5, 3)).train(training)

    def torch_build(model):
        twin = torch.nn.Sequential(
            torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.GroupNorm(2, 4), torch.nn.ReLU(),
            torch.nn.InstanceNorm2d(4, affine=True), torch.nn.Tanh(), torch.nn.Flatten(),
            torch.nn.Linear(4 * 5 * 5, 3)).train(training)
        twin.load_state_dict({k: torch.from_numpy(np.array(v))
                              for k, v in model.state_dict().items()})
        return twin

    with fastnn.use_backend(backend):
        model, twin = build(), build()
        x = np.random.default_rng(2).standard_normal((37, 2, 5, 5)).astype(np.float32)
        with fastnn.no_grad():
            out = model(x)
        np.testing.assert_array_equal(out, twin(x))
        assert arrays_held_in_tree(model, 37) == []
        # a training step afterwards: PyTorch's gradients
        reference = torch_build(model)
        tx = torch.from_numpy(x)
        g = np.random.default_rng(3).standard_normal((37, 3)).astype(np.float32)
        reference(tx).backward(torch.from_numpy(g))
        model.zero_grad()
        model(x)
        model.backward(g)
        grads = dict(reference.named_parameters())
        for name, p in model.named_parameters():
            np.testing.assert_allclose(p.grad, grads[name].grad.numpy(), rtol=2e-4,
                                       atol=2e-5, err_msg=name)
