"""The numbers the course experiments report, recomputed from what each step computed: the
per-epoch training loss of `multitask` and `vae` is the mean over the epoch's samples (a
short last batch counts by its size, as fit's train_loss does; it was the unweighted mean
of the batch means), and the curves drawn are the curves reported."""
import argparse

import numpy as np
import pytest

from fastnn.experiments import multitask as mt
from fastnn.experiments import vae as ve


def parse(module, argv):
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(argv)


def figure_lines(monkeypatch, module):
    """Capture the figures the module would save; returns the list they go to."""
    figures = []
    monkeypatch.setattr(module, "save_figure", lambda fig, path: figures.append(fig))
    return figures


def per_epoch(log, epochs):
    """Per-epoch sample-weighted means of the (loss, batch size) pairs in log."""
    per = len(log) // epochs
    assert per * epochs == len(log)
    return [sum(l * n for l, n in log[e * per:(e + 1) * per])
            / sum(n for _, n in log[e * per:(e + 1) * per]) for e in range(epochs)]


def test_multitask_train_loss_is_the_mean_over_samples(monkeypatch, tmp_path):
    log = []

    class LoggedLoss(mt.MultiTaskLoss):
        def forward(self, a, logits, y_a, y_b):
            result = super().forward(a, logits, y_a, y_b)
            log.append((result[0], len(a)))
            return result
        __call__ = forward

    monkeypatch.setattr(mt, "MultiTaskLoss", LoggedLoss)
    figures = figure_lines(monkeypatch, mt)
    # digits: 1438 training images in batches of 100, the last one 38
    args = parse(mt, ["--dataset", "digits", "--epochs", "2", "--batch-size", "100",
                      "--hidden-a", "8", "--no-progress", "--out", str(tmp_path / "curves.png")])
    metrics = mt.run(args)
    assert sorted({n for _, n in log}) == [38, 100]
    expected = per_epoch(log, 2)
    np.testing.assert_allclose(metrics["curves"]["train_loss"], expected, rtol=1e-12)
    assert abs(expected[0] - np.mean([l for l, _ in log[:15]])) > 1e-4  # the two differ
    drawn = figures[0].axes[0].get_lines()[0].get_ydata()
    np.testing.assert_array_equal(drawn, metrics["curves"]["train_loss"])


def test_vae_train_curve_is_the_mean_over_samples(monkeypatch, tmp_path):
    log = []

    class LoggedVAE(ve.VAE):
        def forward(self, x, eps=None):
            result = super().forward(x, eps)
            if eps is None:   # (the held-out evaluations pass their own eps)
                log.append((result[0], len(x)))
            return result
        __call__ = forward

    monkeypatch.setattr(ve, "VAE", LoggedVAE)
    figures = figure_lines(monkeypatch, ve)
    args = parse(ve, ["--n-train", "300", "--n-test", "50", "--epochs", "2",
                      "--batch-size", "128", "--hidden", "8", "--no-progress",
                      "--out", str(tmp_path / "curves.png")])
    metrics = ve.run(args)
    assert sorted({n for _, n in log}) == [44, 128]
    expected = per_epoch(log, 2)
    np.testing.assert_allclose(metrics["train_nelbo_curve"], expected, rtol=1e-12)
    assert abs(expected[0] - np.mean([l for l, _ in log[:3]])) > 1e-4
    drawn = figures[0].axes[2].get_lines()[0].get_ydata()
    np.testing.assert_array_equal(drawn, metrics["test_nelbo_curve"])
    assert metrics["test_nelbo_final"] == pytest.approx(metrics["test_nelbo_curve"][-1])
