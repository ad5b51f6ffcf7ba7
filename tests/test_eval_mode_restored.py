"""Helpers that switch a model to eval mode for a while (evaluate, visualize_class,
VAE.sample, the experiments' evaluations) give every submodule its own mode back: a
layer the user froze in eval inside a training model stays frozen."""
import numpy as np

import fastnn
from fastnn import nn
from fastnn.models import MLP, VAE
from fastnn.nn.module import evaluating
from fastnn.train import evaluate
from fastnn.visualize import visualize_class


def _modes(model):
    return [m.training for m in model.modules()]


def _frozen_bn_mlp():
    fastnn.manual_seed(0)
    model = MLP(16, [6], 3, batchnorm=True, dropout=0.5)
    model.train()
    model[1].eval()   # the BatchNorm1d frozen
    return model


def test_evaluating_restores_each_submodule_and_runs_in_eval():
    model = _frozen_bn_mlp()
    before = _modes(model)
    assert before.count(False) == 1
    with evaluating(model):
        assert not any(_modes(model))
    assert _modes(model) == before
    try:
        with evaluating(model):
            raise KeyError("inside")
    except KeyError:
        pass
    assert _modes(model) == before


def test_evaluate_visualize_and_sample_keep_frozen_layers_frozen():
    model = _frozen_bn_mlp()
    before = _modes(model)
    x = np.random.default_rng(0).standard_normal((10, 16)).astype(np.float32)
    evaluate(model, nn.CrossEntropyLoss(), x, np.arange(10) % 3)
    assert _modes(model) == before
    image_model = MLP(64, [8], 3, batchnorm=True)
    image_model[1].eval()
    kept = _modes(image_model)
    visualize_class(image_model, 1, steps=2)
    assert _modes(image_model) == kept
    vae = VAE(2, 2, hidden=[4])
    vae.train()
    vae.encoder.eval()
    kept = _modes(vae)
    vae.sample(3, rng=0)
    assert _modes(vae) == kept
