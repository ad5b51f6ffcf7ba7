"""Central-difference gradient checks (float64) of every layer and loss, on every backend.

``fastnn.gradcheck`` compares a module's backward (input gradient and every parameter
gradient) or a loss's backward with numerical derivatives. Here it runs on each layer
and loss in training and eval mode, on composite networks, and on deliberately wrong
backward passes, which it must reject.
"""
import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.gradcheck import GradcheckError, gradcheck
from fastnn.models import MLP


def away_from_zero(rng, shape, low=0.1):
    """Values with |v| >= low, so no finite difference straddles a kink at 0."""
    return rng.uniform(low, 1.5, shape) * rng.choice([-1.0, 1.0], shape)


def batchnorm_eval(layer, rng):
    """A BatchNorm layer in eval mode with non-trivial running statistics."""
    layer.running_mean[...] = rng.standard_normal(layer.num_features)
    if layer.running_var is not None:
        layer.running_var[...] = rng.uniform(0.5, 2.0, layer.num_features)
    return layer.eval()


LAYERS = {
    # name: (make(rng), input shape)
    "linear": (lambda rng: nn.Linear(4, 3), (5, 4)),
    "linear_no_bias": (lambda rng: nn.Linear(4, 3, bias=False), (5, 4)),
    "relu": (lambda rng: nn.ReLU(), (3, 4)),
    "leaky_relu": (lambda rng: nn.LeakyReLU(0.1), (3, 4)),
    "leaky_relu_negative_slope": (lambda rng: nn.LeakyReLU(-0.5), (3, 4)),
    "sigmoid": (lambda rng: nn.Sigmoid(), (3, 4)),
    "tanh": (lambda rng: nn.Tanh(), (3, 4)),
    "gelu": (lambda rng: nn.GELU(), (3, 4)),
    "sine": (lambda rng: nn.Sine(omega=2.0), (3, 4)),
    "identity": (lambda rng: nn.Identity(), (3, 4)),
    "softmax": (lambda rng: nn.Softmax(), (3, 4)),
    "flatten": (lambda rng: nn.Flatten(), (2, 3, 2, 2)),
    "dropout": (lambda rng: nn.Dropout(0.4), (4, 5)),
    "dropout_eval": (lambda rng: nn.Dropout(0.4).eval(), (4, 5)),
    "batchnorm1d": (lambda rng: nn.BatchNorm1d(3), (5, 3)),
    "batchnorm1d_eval": (lambda rng: batchnorm_eval(nn.BatchNorm1d(3), rng), (5, 3)),
    "batchnorm1d_mean_only": (lambda rng: nn.BatchNorm1d(3, mean_only=True), (5, 3)),
    "batchnorm1d_mean_only_eval": (
        lambda rng: batchnorm_eval(nn.BatchNorm1d(3, mean_only=True), rng), (5, 3)),
    "batchnorm2d": (lambda rng: nn.BatchNorm2d(2), (3, 2, 2, 3)),
    "batchnorm2d_eval": (lambda rng: batchnorm_eval(nn.BatchNorm2d(2), rng), (3, 2, 2, 3)),
}


def randomize(module, rng):
    """Non-trivial parameters (BatchNorm starts at weight 1, bias 0)."""
    for p in module.parameters():
        p.data[...] = rng.uniform(0.5, 1.5, p.shape) * rng.choice([-1.0, 1.0], p.shape)
    return module


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_layer_passes_gradcheck(backend, rng, name):
    make, shape = LAYERS[name]
    fastnn.manual_seed(0)
    layer = randomize(make(rng), rng)
    assert gradcheck(layer, away_from_zero(rng, shape)) is True


@pytest.mark.parametrize("batchnorm", [False, True])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "sigmoid", "tanh", "gelu",
                                        "sine"])
def test_networks_pass_gradcheck(backend, rng, activation, batchnorm):
    """Fused Linear+activation pairs, BatchNorm and dropout, composed by Sequential."""
    fastnn.manual_seed(0)
    model = MLP(3, [4, 4], 2, activation=activation, batchnorm=batchnorm, dropout=0.25)
    assert gradcheck(model, rng.standard_normal((5, 3)))


def test_gradcheck_of_a_flattening_network(backend, rng):
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3),
                          nn.Softmax())
    assert gradcheck(model, rng.standard_normal((3, 2, 3)))


LOSSES = {
    "mse": (nn.MSELoss, lambda rng: (rng.standard_normal((4, 3)),
                                     rng.standard_normal((4, 3)))),
    "cross_entropy_labels": (nn.CrossEntropyLoss, lambda rng: (
        rng.standard_normal((5, 4)) * 3, rng.integers(0, 4, 5))),
    "cross_entropy_probabilities": (nn.CrossEntropyLoss, lambda rng: (
        rng.standard_normal((5, 4)) * 3, rng.dirichlet(np.ones(4), 5))),
    "bce": (nn.BCELoss, lambda rng: (rng.uniform(0.1, 0.9, (4, 3)),
                                     rng.uniform(0, 1, (4, 3)))),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_passes_gradcheck(backend, rng, name):
    make, inputs = LOSSES[name]
    assert gradcheck(make(), inputs(rng)) is True


def test_gradcheck_accepts_float32_and_leaves_the_module_unchanged(backend, rng):
    fastnn.manual_seed(0)
    model = MLP(3, [4], 2, batchnorm=True).float()
    model.parameters()[0].grad[...] = 7.0
    before = {name: value.copy() for name, value in model.state_dict().items()}
    grad_before = [p.grad.copy() for p in model.parameters()]
    assert gradcheck(model, rng.standard_normal((4, 3)).astype(np.float32))
    for name, value in model.state_dict().items():
        assert value.dtype == (np.int64 if name.endswith("num_batches_tracked")
                               else np.float32), name
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    for p, g in zip(model.parameters(), grad_before):
        np.testing.assert_array_equal(p.grad, g)


# ------------------------------------------------------ wrong backward passes are caught
class _WrongInputGrad(nn.Module):
    """y = 2 x, with a backward that returns 3 * grad_out."""

    def forward(self, x):
        return 2 * x

    def backward(self, grad_out):
        return 3 * grad_out


class _WrongParamGrad(nn.Module):
    """y = x * w (w: (C,)), with a backward that forgets a factor in w's gradient."""

    def __init__(self, c):
        super().__init__()
        self.w = nn.Parameter(np.linspace(0.5, 1.5, c))

    def forward(self, x):
        self._x = x
        return x * self.w.data

    def backward(self, grad_out):
        self.w.grad += grad_out.sum(axis=0)  # should be (grad_out * x).sum(axis=0)
        return grad_out * self.w.data


def test_gradcheck_rejects_a_wrong_input_gradient(rng):
    with pytest.raises(GradcheckError, match=r"input.*analytic.*numeric"):
        gradcheck(_WrongInputGrad(), rng.standard_normal((3, 2)))


def test_gradcheck_rejects_a_wrong_parameter_gradient(rng):
    with pytest.raises(GradcheckError, match=r"parameter w"):
        gradcheck(_WrongParamGrad(3), rng.uniform(2, 3, (4, 3)))


def test_gradcheck_rejects_a_wrong_loss_gradient(backend, rng):
    class HalfMSE(nn.MSELoss):
        def backward(self):
            return super().backward() / 2

    with pytest.raises(GradcheckError, match="pred"):
        gradcheck(HalfMSE(), (rng.standard_normal((3, 2)), rng.standard_normal((3, 2))))


def test_gradcheck_rejects_what_it_cannot_check(rng):
    with pytest.raises(TypeError, match="gradcheck"):
        gradcheck(lambda x: x, rng.standard_normal(3))
    with pytest.raises(TypeError, match="gradcheck"):
        gradcheck(nn.Linear(2, 2), np.ones((2, 2), dtype=np.int64))
