"""Found by probing: an output or input gradient a Sequential returns stays the caller's
(as a PyTorch tensor does) when its last layer (first, for backward) hands back its
input or a view of it without being a known passthrough layer: a user module, a nested
Sequential of passthrough layers, eval-mode AlphaDropout, PixelShuffle(1) or a
ChannelShuffle that moves nothing. Before, the array was the previous layer's buffer,
overwritten by the next call."""
import numpy as np
import pytest

from fastnn import nn


class View(nn.Module):
    def forward(self, x):
        self.shape = x.shape
        return x.reshape(len(x), 4, 4)

    def backward(self, grad_out):
        return grad_out.reshape(self.shape)


class Same(nn.Module):
    def forward(self, x):
        return x

    def backward(self, grad_out):
        return grad_out


FORWARD = {
    "user-view": lambda: nn.Sequential(nn.Linear(16, 16), View()),
    "user-identity": lambda: nn.Sequential(nn.Linear(16, 16), Same()),
    "alpha-dropout-eval": lambda: nn.Sequential(nn.Linear(16, 16), nn.AlphaDropout(0.1)).eval(),
    "feature-alpha-dropout-p0": lambda: nn.Sequential(nn.Linear(16, 16), nn.Unflatten(1, (16, 1)),
                                                      nn.FeatureAlphaDropout(0.0)),
    "nested-flatten": lambda: nn.Sequential(nn.Linear(16, 16), nn.Sequential(nn.Flatten())),
    "nested-dropout-eval": lambda: nn.Sequential(nn.Linear(16, 16),
                                                 nn.Sequential(nn.Dropout(0.3))).eval(),
    "pixel-shuffle-1": lambda: nn.Sequential(nn.Linear(16, 16), nn.Unflatten(1, (1, 16, 1)),
                                             nn.PixelShuffle(1)),
    "channel-shuffle-1": lambda: nn.Sequential(nn.Linear(16, 16), nn.Unflatten(1, (16, 1)),
                                               nn.ChannelShuffle(1)),
    "channel-shuffle-all": lambda: nn.Sequential(nn.Linear(16, 16), nn.Unflatten(1, (16, 1)),
                                                 nn.ChannelShuffle(16)),
}

BACKWARD = {
    "user-identity": lambda: nn.Sequential(Same(), nn.Linear(16, 16)),
    "alpha-dropout-eval": lambda: nn.Sequential(nn.AlphaDropout(0.1), nn.Linear(16, 16)).eval(),
    "nested-flatten": lambda: nn.Sequential(nn.Sequential(nn.Flatten()), nn.Linear(16, 16)),
}


@pytest.mark.parametrize("make", FORWARD.values(), ids=FORWARD.keys())
def test_sequential_output_is_not_overwritten_by_the_next_call(backend, make):
    model = make()
    x = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
    y1 = model.forward(x)
    kept = y1.copy()
    model.forward(-x)
    np.testing.assert_array_equal(y1, kept)


@pytest.mark.parametrize("make", BACKWARD.values(), ids=BACKWARD.keys())
def test_sequential_input_gradient_is_not_overwritten_by_the_next_call(backend, make):
    model = make()
    x = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
    model.forward(x)
    g1 = model.backward(np.ones((2, 16), np.float32))
    kept = g1.copy()
    model.forward(-x)
    model.backward(np.full((2, 16), 5, np.float32))
    np.testing.assert_array_equal(g1, kept)


def test_a_sequential_of_passthrough_layers_is_passthrough():
    assert nn.Sequential(nn.Flatten(), nn.Dropout(0.5).eval()).passthrough
    assert not nn.Sequential(nn.Flatten(), nn.ReLU()).passthrough
    assert not nn.Sequential(Same()).passthrough
    assert nn.AlphaDropout(0.2).eval().passthrough and not nn.AlphaDropout(0.2).passthrough
