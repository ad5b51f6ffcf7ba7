"""The numbers the course experiments report, recomputed from what each step computed: the
per-epoch training loss of `multitask` and `vae` is the mean over the epoch's samples (a
short last batch counts by its size, as fit's train_loss does; it was the unweighted mean
of the batch means), and the curves drawn are the curves reported; fit's and evaluate's
losses with class weights or ignored labels are the whole set's, as PyTorch's mean over it."""
import argparse

import numpy as np
import pytest

import fastnn
from fastnn import models, nn, optim
from fastnn.experiments import multitask as mt
from fastnn.experiments import vae as ve
from fastnn.nn.module import evaluating
from fastnn.train import evaluate, fit


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
        def forward(self, x, eps=None, **options):
            result = super().forward(x, eps, **options)
            if eps is None:   # (the held-out evaluations pass their own eps)
                # the negative ELBO, nll + kl (the loss weighs kl less during the warm-up)
                log.append((result[1] + result[2], len(x)))
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


# ---- fit and evaluate: the loss of the whole set --------------------------------------------

@pytest.mark.parametrize("options", [dict(ignore_index=-100), dict(weight=True),
                                     dict(weight=True, ignore_index=3, label_smoothing=0.1),
                                     dict(loss="nll", weight=True, ignore_index=-100)],
                         ids=["ignore", "weight", "weight-ignore-smoothing", "nll"])
def test_evaluate_and_fit_losses_are_the_whole_sets(options):
    """With class weights or ignored labels PyTorch's mean divides by the summed weight of
    the labels kept, not N: evaluate weighed each batch's mean by its size, so its test
    loss moved with eval_batch_size (2.3224 for the whole set's 2.3260 with a third of the
    labels ignored); fit's train_loss likewise."""
    torch = pytest.importorskip("torch")
    options = dict(options)
    x_train, y_train, x_test, y_test = fastnn.data.load("digits", flatten=True)
    x, y = x_test.astype(np.float64), y_test.copy()
    ignore = options.get("ignore_index")
    if ignore is not None:   # ignored labels gathered in the first batches
        head = y[:len(y) // 3]
        head[head < 5] = ignore
    weight = np.linspace(0.2, 3.0, 10) if options.pop("weight", False) else None
    nll = options.pop("loss", None) == "nll"
    fastnn.manual_seed(0)
    model = models.MLP(64, [16], 10).double()
    if nll:
        model.append(nn.LogSoftmax(dim=1))
    loss_fn = (nn.NLLLoss if nll else nn.CrossEntropyLoss)(weight=weight, **options)
    torch_loss = torch.nn.functional.nll_loss if nll else torch.nn.functional.cross_entropy
    torch_options = dict(options, weight=None if weight is None else torch.from_numpy(weight))

    def whole_set(inputs, labels):
        with evaluating(model):
            out = torch.from_numpy(model(inputs))
        return torch_loss(out, torch.from_numpy(labels), **torch_options).item()

    expected = whole_set(x, y)
    for batch_size in (100, 7, 1000):
        loss, _ = evaluate(model, loss_fn, x, y, batch_size=batch_size)
        assert loss == pytest.approx(expected, rel=1e-12), batch_size
    # fit's train_loss: the per-batch losses it saw, weighed as torch's whole-batch mean
    xt, yt = x_train[:150].astype(np.float64), y_train[:150].copy()
    if ignore is not None:
        yt[:60][yt[:60] < 5] = ignore
    seen = []
    forward = loss_fn.forward

    def logged(pred, target):
        value = forward(pred, target)
        seen.append((float(value), np.array(target)))
        return value
    loss_fn.forward = logged
    metrics = fit(model, loss_fn, optim.SGD(model.parameters(), lr=0.01), (xt, yt),
                  epochs=1, batch_size=32, progress=False, log=False)
    kept = [t[t != loss_fn.ignore_index] for _, t in seen]
    shares = [len(k) if weight is None else weight[k].sum() for k in kept]
    expected = sum(v * s for (v, _), s in zip(seen, shares)) / sum(shares)
    assert metrics["train_loss"][0] == pytest.approx(expected, rel=1e-12)


def test_fit_does_not_step_gradients_left_from_before():
    """fit stepped, then zeroed: a gradient an earlier backward left (a gradient check, a
    look at the input gradient) entered the first update (0.0073 off in a weight here);
    PyTorch's loop zeroes before each backward."""
    torch = pytest.importorskip("torch")
    x, y, _, _ = fastnn.data.load("digits", flatten=True)
    x, y = x[:64].astype(np.float64), y[:64]
    fastnn.manual_seed(0)
    model = models.MLP(64, [8], 10).double()
    twin = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.ReLU(),
                               torch.nn.Linear(8, 10)).double()
    twin.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                          model.state_dict().items()})
    loss_fn = nn.CrossEntropyLoss()
    loss_fn(model(x), y)
    model.backward(loss_fn.backward())   # gradients left in .grad
    fit(model, loss_fn, optim.SGD(model.parameters(), lr=0.1), (x, y), epochs=2,
        batch_size=64, progress=False, log=False)
    opt = torch.optim.SGD(twin.parameters(), lr=0.1)
    for _ in range(2):   # (one batch of all 64 rows: its order only rounds differently)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)),
                                          torch.from_numpy(y)).backward()
        opt.step()
    for (name, param), twin_param in zip(model.named_parameters(), twin.parameters()):
        np.testing.assert_allclose(param.data, twin_param.detach().numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=name)


def test_fit_steps_on_through_a_batch_whose_labels_are_all_ignored():
    """PyTorch's mean over no kept label is NaN with a zero gradient, and its loop goes on;
    fit raised TrainingDiverged ('try a smaller learning rate'). The step is taken (the
    momentum still moves the weights) and the batch is left out of train_loss."""
    torch = pytest.importorskip("torch")
    x, y, _, _ = fastnn.data.load("digits", flatten=True)
    x, y = x[:24].astype(np.float64), y[:24].copy()
    y[:12] = -100
    fastnn.manual_seed(0)
    model = models.MLP(64, [8], 10).double()
    twin = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.ReLU(),
                               torch.nn.Linear(8, 10)).double()
    twin.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                          model.state_dict().items()})
    loss_fn, batches = nn.CrossEntropyLoss(), []
    forward = loss_fn.forward

    def logged(pred, target):
        batches.append(np.array(target))
        return forward(pred, target)
    loss_fn.forward = logged
    inputs = []
    model_forward = model.forward

    def logged_model(batch):
        inputs.append(np.array(batch))
        return model_forward(batch)
    model.forward = logged_model
    metrics = fit(model, loss_fn, optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                  (x, y), epochs=2, batch_size=3, seed=0, progress=False, log=False)
    assert any(np.all(t == -100) for t in batches)
    opt = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    sums = [[0.0, 0], [0.0, 0]]
    for i, (bx, by) in enumerate(zip(inputs, batches)):
        loss = torch.nn.functional.cross_entropy(twin(torch.from_numpy(bx)),
                                                 torch.from_numpy(by))
        opt.zero_grad()
        loss.backward()
        opt.step()
        kept = int(np.sum(by != -100))
        if kept:
            sums[i // 8][0] += loss.item() * kept
            sums[i // 8][1] += kept
    np.testing.assert_allclose(metrics["train_loss"], [s / k for s, k in sums], rtol=1e-12)
    for (name, param), twin_param in zip(model.named_parameters(), twin.parameters()):
        np.testing.assert_allclose(param.data, twin_param.detach().numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=name)


def test_class_probability_runs_the_model_in_eval_mode():
    """A model left in training mode (fit leaves it so) gave a dropout draw per call and
    moved its BatchNorm running statistics; torch's probability is the eval-mode one."""
    torch = pytest.importorskip("torch")
    from fastnn.visualize import class_probability
    fastnn.manual_seed(0)
    model = models.SmallCNN(1, 8, 4, channels=(2, 3), hidden=5, dropout=0.5).double()
    model(np.random.default_rng(1).random((6, 1, 8, 8)))   # running statistics not 0, 1
    state = {k: np.array(v) for k, v in model.state_dict().items()}
    twin = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.BatchNorm2d(2), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.BatchNorm2d(3),
        torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(12, 5),
        torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(5, 4)).double().eval()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    image = np.random.default_rng(0).random((1, 8, 8)).astype(np.float32)
    mean, std = 0.2, 0.5
    with torch.no_grad():
        logits = twin(torch.from_numpy(((image[None] - mean) / std).astype(np.float64)))
    expected = torch.softmax(logits, 1)[0, 3].item()
    model.train()
    for _ in range(3):
        assert class_probability(model, image, 3, mean, std) == pytest.approx(expected,
                                                                             rel=1e-12)
    assert model.training
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)
