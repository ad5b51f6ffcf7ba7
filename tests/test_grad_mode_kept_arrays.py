"""RReLU and LPPool3d under no_grad keep no array of the batch's size: RReLU kept its
per-element slopes (the input's size, eval mode too) and LPPool3d its input in ``_lp``,
where forget_forward dropped the other layers' saved arrays; outputs as PyTorch's, the
backward refused, then a training step with PyTorch's gradients."""
import numpy as np
import pytest

import fastnn
from fastnn import nn
from held_arrays import arrays_held, arrays_held_in_tree

torch = pytest.importorskip("torch")

BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.backends()]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make,tmake,shape", [
    (lambda: nn.RReLU(0.1, 0.3).eval(), lambda: torch.nn.RReLU(0.1, 0.3).eval(), (7, 5, 3)),
    (lambda: nn.LPPool3d(2, 2), lambda: torch.nn.LPPool3d(2, 2), (7, 2, 4, 4, 4)),
    (lambda: nn.LPPool3d(float("inf"), 2), lambda: torch.nn.LPPool3d(float("inf"), 2),
     (7, 2, 4, 4, 4))])
def test_no_batch_array_kept_after_a_forward_without_gradients(backend, make, tmake, shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    g = np.random.default_rng(1).standard_normal(tmake()(torch.from_numpy(x)).shape)
    g = g.astype(np.float32)
    with fastnn.use_backend(backend):
        layer = make()
        with fastnn.no_grad():
            y = layer(x)
        np.testing.assert_allclose(y, tmake()(torch.from_numpy(x)).numpy(), rtol=1e-5,
                                   atol=1e-6)
        assert arrays_held(layer, shape[0]) == []
        with pytest.raises(RuntimeError, match="gradients disabled"):
            layer.backward(g)
        y = layer(x)
        grad = layer.backward(g)
    tx = torch.from_numpy(x).requires_grad_()
    ty = tmake()(tx)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rrelu_in_training_keeps_no_slopes_under_no_grad(backend):
    # (random slopes: the gradient after is checked against the output, y = slope * x)
    x = np.random.default_rng(0).standard_normal((9, 6)).astype(np.float32)
    with fastnn.use_backend(backend):
        layer = nn.RReLU()
        with fastnn.no_grad():
            layer(x)
        assert arrays_held(layer, 9) == []
        with pytest.raises(RuntimeError, match="gradients disabled"):
            layer.backward(np.ones_like(x))
        y = layer(x)
        grad = layer.backward(np.ones_like(x))
    np.testing.assert_allclose(grad * x, y, rtol=1e-6)
    assert np.all((grad >= 0.125 - 1e-7) & (grad <= 1))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kwargs", [{"groups": 2}, {"dilation": 2}])
@pytest.mark.parametrize("no_grad", [True, False])
def test_grouped_or_dilated_conv_transpose_keeps_no_spread_input(backend, kwargs, no_grad):
    # its forward runs a helper Conv2d on the input spread with zeros (stride^2 times the
    # input's size and more), whose _x nothing reads (the backward runs the other helper
    # on grad_out): it stayed, under no_grad too
    x = np.random.default_rng(0).standard_normal((6, 4, 5, 5)).astype(np.float32)
    fastnn.manual_seed(0)
    layer = nn.ConvTranspose2d(4, 4, 3, stride=2, **kwargs)
    tlayer = torch.nn.ConvTranspose2d(4, 4, 3, stride=2, **kwargs)
    tlayer.load_state_dict({k: torch.from_numpy(np.array(v))
                            for k, v in layer.state_dict().items()})
    with fastnn.use_backend(backend):
        with fastnn.set_grad_enabled(not no_grad):
            y = layer(x)
        helpers = layer._scratch["convs"]
        assert [shape for conv in helpers for shape in arrays_held(conv, 6)] == []
        if no_grad:
            assert arrays_held(layer, 6) == []
        y = layer(x)
        g = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
        grad = layer.backward(g)
    tx = torch.from_numpy(x).requires_grad_()
    ty = tlayer(tx)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.weight.grad, tlayer.weight.grad.numpy(), rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_allclose(layer.bias.grad, tlayer.bias.grad.numpy(), rtol=1e-4,
                               atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("training", [True, False])
def test_multitask_net_under_no_grad_writes_no_layer_owned_buffers(backend, training):
    # MultiTaskNet runs its layers into their own buffers (as a Sequential does with
    # gradients on): under no_grad every intermediate stayed there, 8-10x the input
    from fastnn.models import MultiTaskNet
    x = np.random.default_rng(0).standard_normal((37, 12)).astype(np.float32)

    def run(no_grad):
        fastnn.manual_seed(0)
        model = MultiTaskNet(12, 10, 6, 3).train(training)
        fastnn.manual_seed(1)
        with fastnn.set_grad_enabled(not no_grad):
            out = model(x)
        held = arrays_held_in_tree(model, 37)
        fastnn.manual_seed(2)
        a, logits = model(x)
        grad_x = model.backward(np.ones_like(a), np.ones_like(logits))
        return out, held, grad_x, [p.grad.copy() for p in model.parameters()], model

    with fastnn.use_backend(backend):
        out, held, grad_x, grads, model = run(True)
        want_out, _, want_grad_x, want_grads, _ = run(False)
        with fastnn.no_grad():
            a, logits = model(x)
        with pytest.raises(RuntimeError, match="gradients disabled"):
            model.backward(np.ones_like(a), np.ones_like(logits))
    assert held == []
    for got, want in zip(list(out) + [grad_x] + grads, list(want_out) + [want_grad_x]
                         + want_grads):
        np.testing.assert_array_equal(got, want)
