"""VAE.sample's generator: fastnn's own by default (manual_seed repeats a draw, two
calls differ), a seed or a Generator when given, the training noise left alone."""
import numpy as np
import pytest

import fastnn
from fastnn.models import VAE


def _model():
    return VAE(4, latent_dim=2, hidden=(8,))


def test_default_draws_from_fastnn_generator():
    model = _model()
    fastnn.manual_seed(3)
    first = model.sample(5)
    fastnn.manual_seed(3)
    again = model.sample(5)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, model.sample(5))  # a later call draws anew


def test_seed_or_generator():
    model = _model()
    np.testing.assert_array_equal(model.sample(3, rng=7),
                                  model.sample(3, rng=np.random.default_rng(7)))
    gen = np.random.default_rng(1)
    assert not np.array_equal(model.sample(3, rng=gen), model.sample(3, rng=gen))


def test_training_noise_untouched():
    model = _model()
    before = model.get_extra_state()
    model.sample(4)
    model.sample(4, rng=2)
    assert model.get_extra_state() == before


def test_bad_arguments_and_mode_kept():
    model = _model()
    with pytest.raises(TypeError, match="VAE.sample: expected rng"):
        model.sample(2, rng="x")
    with pytest.raises(ValueError, match="VAE.sample: expected n"):
        model.sample(-1)
    assert model.training
    assert model.sample(0).shape == (0, 4)
    model.eval()
    model.sample(2)
    assert not model.training
