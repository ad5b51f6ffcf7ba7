"""PyTorch's reset_parameters / reset_running_stats: the constructor's draws again, in
place (Linear, the convolutions, Embedding), ones and zeros for the norm layers, and
zeroed running statistics and batch count."""
import numpy as np
import pytest

import fastnn
from fastnn import nn

DRAWN = [lambda: nn.Linear(5, 3), lambda: nn.Linear(5, 3, bias=False),
         lambda: nn.Conv1d(2, 4, 3), lambda: nn.Conv2d(2, 4, 3, groups=2),
         lambda: nn.Conv3d(2, 4, 2), lambda: nn.ConvTranspose1d(2, 4, 3),
         lambda: nn.ConvTranspose2d(2, 4, 3), lambda: nn.ConvTranspose3d(2, 4, 2),
         lambda: nn.Embedding(6, 3, padding_idx=2)]


@pytest.mark.parametrize("make", DRAWN, ids=lambda f: None)
def test_reset_parameters_draws_what_the_constructor_draws(make):
    fastnn.manual_seed(11)
    layer = make()
    fresh = [p.data.copy() for p in layer.parameters()]
    arrays = [p.data for p in layer.parameters()]
    for p in layer.parameters():
        p.data[...] = 7
    fastnn.manual_seed(11)
    layer.reset_parameters()
    for before, array, p in zip(fresh, arrays, layer.parameters()):
        assert p.data is array                          # in place, as PyTorch's
        np.testing.assert_array_equal(p.data, before)


def test_the_reinitialise_idiom_changes_every_drawn_parameter():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.BatchNorm1d(3), nn.Linear(3, 2))
    before = [p.data.copy() for p in model.parameters()]
    for p in model.parameters():
        p.data[...] = 0.5
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    after = [p.data for p in model.parameters()]
    assert not np.array_equal(after[0], before[0]) and not np.array_equal(after[0], 0.5)
    np.testing.assert_array_equal(after[2], np.ones(3))     # BatchNorm's weight
    np.testing.assert_array_equal(after[3], np.zeros(3))    # and bias


@pytest.mark.parametrize("make", [
    lambda: nn.BatchNorm1d(4), lambda: nn.BatchNorm1d(4, momentum=None),
    lambda: nn.InstanceNorm1d(4, affine=True, track_running_stats=True)])
def test_reset_running_stats_and_parameters_of_the_norm_layers(make):
    layer = make()
    x = np.random.default_rng(0).standard_normal((6, 4, 5)).astype(np.float32)
    layer.forward(x)
    layer.weight.data[...] = 3
    assert not np.array_equal(layer.running_mean, np.zeros(4))
    layer.num_batches_tracked = 3     # (instance norm's never moves, as PyTorch's)
    layer.reset_running_stats()
    np.testing.assert_array_equal(layer.running_mean, np.zeros(4))
    np.testing.assert_array_equal(layer.running_var, np.ones(4))
    assert layer.num_batches_tracked == 0
    np.testing.assert_array_equal(layer.weight.data, 3)      # parameters untouched
    layer.reset_parameters()
    np.testing.assert_array_equal(layer.weight.data, np.ones(4))
    np.testing.assert_array_equal(layer.bias.data, np.zeros(4))


@pytest.mark.parametrize("layer", [nn.LayerNorm(4), nn.GroupNorm(2, 4),
                                   nn.BatchNorm1d(4, track_running_stats=False)])
def test_reset_parameters_of_affine_norms(layer):
    for p in layer.parameters():
        p.data[...] = 5
    layer.reset_parameters()
    assert [p.data.tolist() for p in layer.parameters()] == [[1.0] * 4, [0.0] * 4]
