"""fastnn.no_grad / enable_grad / set_grad_enabled / inference_mode / is_grad_enabled:
the mode switches as PyTorch's (context managers, decorators, per thread), forward
results unchanged, and a module's backward after a forward without gradients refused."""
import threading

import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.models import MLP, SmallCNN

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
