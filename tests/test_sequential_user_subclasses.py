"""A user's subclass of a built-in layer that defines its own forward or backward runs
them inside a Sequential, as PyTorch's Sequential calls module(x): the built-in kernels
under it (and Linear + activation fusion) used to run instead, whatever the override."""
import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn
from tests.conftest import assert_close


class Square(nn.ReLU):
    """Not a ReLU any more: forward and backward of its own."""

    def forward(self, x):
        self._x = x
        return x * x

    def backward(self, grad_out):
        return 2 * self._x * grad_out


class TorchSquare(torch.nn.ReLU):
    def forward(self, x):
        return x * x


class ScaledLinear(nn.Linear):
    """Both methods wrap the built-in ones through super()."""

    def forward(self, x):
        return 10 * super().forward(x)

    def backward(self, grad_out):
        return super().backward(10 * grad_out)


class TorchScaledLinear(torch.nn.Linear):
    def forward(self, x):
        return 10 * super().forward(x)


class HalfGradTanh(nn.Tanh):
    """Only backward overridden: the built-in forward, half the built-in gradient."""

    def backward(self, grad_out):
        return 0.5 * super().backward(grad_out)


class CountingReLU(nn.ReLU):
    """Only forward overridden, around the built-in one."""
    calls = 0

    def forward(self, x):
        type(self).calls += 1
        return super().forward(x)


def _twin(ours, theirs, dtype):
    for name, p in ours.named_parameters():
        theirs.get_parameter(name).data = torch.tensor(p.data)
    return theirs.to(torch.float64 if dtype == np.float64 else torch.float32)


def test_overridden_forward_and_backward_run_inside_sequential(backend, dtype, rng):
    fastnn.manual_seed(0)
    ours = nn.Sequential(nn.Linear(4, 5), Square(), ScaledLinear(5, 3), nn.LeakyReLU(0.1),
                         nn.Linear(3, 2)).to(dtype=dtype)
    theirs = _twin(ours, torch.nn.Sequential(torch.nn.Linear(4, 5), TorchSquare(),
                                             TorchScaledLinear(5, 3), torch.nn.LeakyReLU(0.1),
                                             torch.nn.Linear(3, 2)), dtype)
    x = rng.standard_normal((6, 4)).astype(dtype)
    g = rng.standard_normal((6, 2)).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    ty.backward(torch.tensor(g))
    assert_close(ours(x), ty.detach().numpy(), dtype, 10)
    assert_close(ours.backward(g), tx.grad.numpy(), dtype, 10)
    for name, p in ours.named_parameters():
        assert_close(p.grad, theirs.get_parameter(name).grad.numpy(), dtype, 10, err_msg=name)


def test_one_overridden_method_keeps_the_other_built_in(backend, dtype, rng):
    fastnn.manual_seed(1)
    lin = nn.Linear(3, 4).to(dtype=dtype)
    plain = nn.Sequential(lin, nn.Tanh())
    halved = nn.Sequential(lin, HalfGradTanh())
    x = rng.standard_normal((5, 3)).astype(dtype)
    g = rng.standard_normal((5, 4)).astype(dtype)
    y = plain(x)
    full = plain.backward(g)
    np.testing.assert_array_equal(halved(x), y)
    assert_close(halved.backward(g), 0.5 * full, dtype)

    CountingReLU.calls = 0
    counted = nn.Sequential(lin, CountingReLU())
    reference = nn.Sequential(lin, nn.ReLU())
    y = reference(x)   # (one shared Linear: each forward right before its backward)
    full = reference.backward(g)
    np.testing.assert_array_equal(counted(x), y)
    np.testing.assert_array_equal(counted.backward(g), full)
    assert CountingReLU.calls == 1


def test_forward_hooks_see_the_override(backend):
    seen = []
    square = Square()
    square.register_forward_hook(lambda m, args, out: seen.append(out.copy()))
    model = nn.Sequential(square, nn.Identity())
    x = np.array([[-2.0, 3.0]], np.float32)
    np.testing.assert_array_equal(model(x), [[4.0, 9.0]])
    np.testing.assert_array_equal(seen[0], [[4.0, 9.0]])
    np.testing.assert_array_equal(model.backward(np.ones((1, 2), np.float32)), [[-4.0, 6.0]])


class _SumToScalar(nn.Module):
    def forward(self, x):
        self.shape = x.shape
        return np.asarray(x.sum())

    def backward(self, g):
        return np.broadcast_to(g, self.shape).copy()


class _Square(nn.Module):
    def forward(self, x):
        self.x = x
        return np.asarray(x * x)

    def backward(self, g):
        return np.asarray(2 * self.x * g)


def test_a_user_modules_0d_output_and_gradient_stay_0d_in_a_sequential():
    # (np.ascontiguousarray on a user module's output / gradient made them (1,))
    model = nn.Sequential(_SumToScalar(), nn.Tanh())
    assert model(np.ones((2, 3))).shape == ()
    assert model.backward(np.asarray(1.0)).shape == (2, 3)
    model = nn.Sequential(nn.Tanh(), _Square())
    model(np.asarray(0.5))
    grad = model.backward(np.asarray(1.0))
    assert grad.shape == ()
    assert grad == pytest.approx(2 * np.tanh(0.5) * (1 - np.tanh(0.5) ** 2))
    hooked = nn.Sequential(nn.Tanh(), nn.Sigmoid())
    hooked[0].register_forward_hook(lambda module, inputs, output: output)
    assert hooked(np.asarray(0.5)).shape == () == hooked.backward(np.asarray(1.0)).shape


def test_a_triplet_loss_with_a_distance_function_keeps_0d_inputs_0d():
    class AbsDistance(nn.Module):
        def forward(self, a, b):
            self.d = a - b
            return np.abs(self.d)

        def backward(self, g):
            s = np.sign(self.d) * g
            return s, -s

    loss = nn.TripletMarginWithDistanceLoss(distance_function=AbsDistance(), reduction="none")
    assert np.shape(loss(np.asarray(0.3), np.asarray(1.0), np.asarray(-0.2))) == ()


def test_numpy_integer_arrays_are_taken_as_sizes_as_torch():
    assert nn.Conv2d(2, 3, np.array([3, 2])).weight.shape == (3, 2, 3, 2)
    assert nn.Conv3d(1, 1, np.array([1, 2, 3])).weight.shape == (1, 1, 1, 2, 3)
    assert nn.LayerNorm(np.array([3, 4])).weight.shape == (3, 4)
    assert nn.RMSNorm(np.array([3, 4])).weight.shape == (3, 4)
    assert nn.MaxPool2d(np.array([2, 2]))(np.ones((1, 1, 4, 4))).shape == (1, 1, 2, 2)
    assert nn.AdaptiveAvgPool2d(np.array([2, 3]))(np.ones((1, 1, 4, 6))).shape == (1, 1, 2, 3)
    assert nn.ZeroPad2d(np.array([1, 1, 2, 2]))(np.ones((1, 1, 2, 2))).shape == (1, 1, 6, 4)
    from fastnn.nn import functional as F
    assert F.layer_norm(np.ones((2, 3, 4)), np.array([3, 4])).shape == (2, 3, 4)
    assert F.pad(np.asarray(1.0), []).shape == ()  # an empty pad of a 0-d input: a copy
