"""The trainer end to end on scikit-learn's digits."""
import numpy as np
import pytest

import fastnn
from fastnn import data, models, nn, optim
from fastnn.train import TrainingDiverged, evaluate, fit


@pytest.fixture(scope="module")
def digits():
    return data.load_digits(flatten=True)


def make(hidden=(64,), lr=0.1, seed=0):
    fastnn.manual_seed(seed)
    model = models.MLP(64, list(hidden), 10)
    return model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=lr, momentum=0.9)


def test_mlp_reaches_095_on_digits(digits):
    x_train, y_train, x_test, y_test = digits
    model, loss_fn, optimizer = make()
    with fastnn.use_backend("numpy"):
        metrics = fit(model, loss_fn, optimizer, (x_train, y_train), (x_test, y_test),
                      epochs=15, batch_size=32, seed=0, progress=False, log=False)
        assert metrics["test_accuracy"][-1] >= 0.95
        loss, accuracy = evaluate(model, loss_fn, x_test, y_test, batch_size=50)
    assert accuracy == pytest.approx(metrics["test_accuracy"][-1])
    assert loss == pytest.approx(metrics["test_loss"][-1], rel=1e-5)
    assert metrics["epoch"] == list(range(1, 16))
    assert len(metrics["seconds_per_epoch"]) == 15 and metrics["samples_per_second"] > 0
    assert metrics["train_loss"][-1] < metrics["train_loss"][0]
    assert metrics["steps"] == 15 * int(np.ceil(len(y_train) / 32))
    assert model.training


def test_max_steps_and_eval_freq(digits, capsys):
    x_train, y_train, x_test, y_test = digits
    model, loss_fn, optimizer = make(hidden=(16,))
    with fastnn.use_backend("numpy"):
        metrics = fit(model, loss_fn, optimizer, (x_train, y_train), (x_test, y_test),
                      epochs=None, max_steps=50, eval_freq=20, batch_size=64,
                      progress=False, log=False)
    assert metrics["steps"] == 50
    assert metrics["epoch"] == [1, 2, 3]  # 23 batches per epoch: the third stops early
    assert metrics["step_curve"]["step"] == [20, 40]
    assert len(metrics["step_curve"]["test_accuracy"]) == 2
    assert capsys.readouterr().out == ""          # log=False: no step lines either


def test_same_seed_same_trajectory(digits):
    x_train, y_train, x_test, y_test = digits
    runs = []
    for _ in range(2):
        model, loss_fn, optimizer = make(hidden=(16,), seed=3)
        with fastnn.use_backend("numpy"):
            runs.append(fit(model, loss_fn, optimizer, (x_train, y_train), None, epochs=2,
                            batch_size=64, seed=5, progress=False, log=False)["train_loss"])
    assert runs[0] == runs[1]


def _fit_seed_none(digits, seed, **kw):
    """An MLP trained by fit(seed=None) after fastnn.manual_seed(seed):
    (model, optimizer, metrics)."""
    model, loss_fn, optimizer = make(hidden=(16,), seed=seed)
    with fastnn.use_backend("numpy"):
        metrics = fit(model, loss_fn, optimizer, digits[:2], None, batch_size=64,
                      seed=None, progress=False, log=False, **kw)
    return model, optimizer, metrics


def test_seed_none_shuffles_from_fastnns_generator(digits):
    # seed=None drew fresh OS entropy: two runs after the same fastnn.manual_seed took
    # different batches, where a DataLoader's seed=None follows fastnn.manual_seed (as
    # PyTorch's shuffle follows torch.manual_seed)
    first, again = (_fit_seed_none(digits, 3, epochs=1) for _ in range(2))
    assert first[2]["train_loss"] == again[2]["train_loss"]
    for p, q in zip(first[0].parameters(), again[0].parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert _fit_seed_none(digits, 4, epochs=1)[2]["train_loss"] != first[2]["train_loss"]
    # the order of a fit given the int that seed=None draws from fastnn's generator
    model, loss_fn, optimizer = make(hidden=(16,), seed=3)
    state = fastnn.random.get_state()
    drawn = fastnn.random.draw_seed()
    fastnn.random.set_state(state)
    with fastnn.use_backend("numpy"):
        same = fit(model, loss_fn, optimizer, digits[:2], None, epochs=1, batch_size=64,
                   seed=drawn, progress=False, log=False)
    assert same["train_loss"] == first[2]["train_loss"]


@pytest.mark.parametrize("bad", [dict(epochs=None), dict(lr_schedule="cosin"),
                                 dict(epochs=1, resume="finished")])
def test_seed_none_refused_fit_leaves_fastnns_generator(digits, bad):
    # seed=None drew its seed before these checks: a refused call moved fastnn's
    # generator, so the next model's initialisation differed from a script without it
    if bad.get("resume") == "finished":
        bad["resume"] = _fit_seed_none(digits, 1, epochs=1)[2]
    model, loss_fn, optimizer = make(hidden=(16,), seed=6)
    state = fastnn.random.get_state()
    with fastnn.use_backend("numpy"), pytest.raises(ValueError):
        fit(model, loss_fn, optimizer, digits[:2], None, batch_size=64, seed=None,
            progress=False, log=False, **bad)
    assert fastnn.random.get_state() == state


def test_seed_none_resumes_bit_for_bit(digits):
    whole = _fit_seed_none(digits, 2, epochs=2)[0]
    model, optimizer, metrics = _fit_seed_none(digits, 2, epochs=None, max_steps=30)
    fastnn.manual_seed(99)   # (the resumed run takes both generators from metrics)
    with fastnn.use_backend("numpy"):
        fit(model, nn.CrossEntropyLoss(), optimizer, digits[:2], None, epochs=2,
            batch_size=64, seed=None, progress=False, log=False, resume=metrics)
    for p, q in zip(whole.parameters(), model.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_nan_loss_stops_training_before_the_update(digits):
    x_train, y_train = digits[0][:100].copy(), digits[1][:100]
    x_train[:] = np.nan
    model, loss_fn, optimizer = make(hidden=(8,))
    before = [p.data.copy() for p in model.parameters()]
    with fastnn.use_backend("numpy"), pytest.raises(TrainingDiverged) as info:
        fit(model, loss_fn, optimizer, (x_train, y_train), None, epochs=1, batch_size=10,
            progress=False, log=False)
    assert info.value.step == 1 and info.value.epoch == 1
    assert "loss became nan at step 1 (epoch 1)" in str(info.value)
    for old, p in zip(before, model.parameters()):
        np.testing.assert_array_equal(old, p.data)


def test_progress_bar_and_epoch_lines(digits, capsys):
    x_train, y_train, x_test, y_test = digits
    model, loss_fn, optimizer = make(hidden=(8,))
    with fastnn.use_backend("numpy"):
        fit(model, loss_fn, optimizer, (x_train, y_train), (x_test, y_test), epochs=1,
            batch_size=64, progress=True)
    captured = capsys.readouterr()
    assert "epoch 1/1" in captured.err  # the tqdm bar
    assert "samples_s" in captured.err
    assert "test loss" in captured.out and "samples/s" in captured.out


def _rates_stepped(optimizer):
    """The list each optimizer.step() appends its first group's rate to."""
    rates, step = [], optimizer.step

    def recording_step(*args, **kwargs):
        rates.append(optimizer.param_groups[0]["lr"])
        return step(*args, **kwargs)
    optimizer.step = recording_step
    return rates


def _torch_lambda_rates(factor, steps):
    """The rates a PyTorch loop ``opt.step(); sched.step()`` with LambdaLR(factor) and
    lr 0.2 steps with, and the rate it leaves."""
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    rates = []
    for _ in range(steps):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return rates, opt.param_groups[0]["lr"]


def _inverse_step(step, total_steps):
    return 1.0 / (step + 1)


def test_lr_schedule_scales_every_step(digits):
    """fit's rates are a PyTorch loop's ``opt.step(); sched.step()``: the factor of step
    k for the (k+1)-th step, and the optimizer is left at step 8's (it was left at step
    7's, the last one used)."""
    x_train, y_train = digits[0][:256], digits[1][:256]
    model, loss_fn, optimizer = make(hidden=(8,), lr=0.2)
    seen = []

    def schedule(step, total_steps):
        seen.append((step, total_steps))
        return _inverse_step(step, total_steps)
    rates = _rates_stepped(optimizer)
    with fastnn.use_backend("numpy"):
        fit(model, loss_fn, optimizer, (x_train, y_train), None, epochs=2, batch_size=64,
            lr_schedule=schedule, progress=False, log=False)
    assert seen == [(s, 8) for s in range(9)]
    expected_rates, expected_last = _torch_lambda_rates(lambda e: 1.0 / (e + 1), 8)
    assert rates == pytest.approx(expected_rates, rel=1e-15)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(expected_last, rel=1e-15)


def test_a_resumed_scheduled_fit_steps_with_one_runs_rates(digits):
    """A run resumed after its first epoch steps with the rates of one run from the
    group's 'initial_lr' (not from the rate the first part left), and ends at the same
    rate and parameters."""
    x_train, y_train = digits[0][:256], digits[1][:256]
    kwargs = dict(batch_size=64, lr_schedule=_inverse_step, progress=False, log=False)
    runs = []
    for parts in ((2,), (1, 2)):
        model, loss_fn, optimizer = make(hidden=(8,), lr=0.2)
        rates, metrics = _rates_stepped(optimizer), None
        with fastnn.use_backend("numpy"):
            for epochs in parts:
                metrics = fit(model, loss_fn, optimizer, (x_train, y_train), None,
                              epochs=epochs, resume=metrics, **kwargs)
        runs.append((rates, optimizer.param_groups[0]["lr"], model.parameters()))
    (rates, last, params), (rates2, last2, params2) = runs
    assert rates2 == rates and last2 == last == pytest.approx(0.2 / 9, rel=1e-15)
    for p, q in zip(params, params2):
        np.testing.assert_array_equal(p.data, q.data)
    with pytest.raises(ValueError, match="unknown lr_schedule 'linear'"):
        fit(model, loss_fn, optimizer, (x_train, y_train), None, lr_schedule="linear")


def test_cosine_schedule_endpoints():
    from fastnn.train import cosine_schedule
    assert cosine_schedule(0, 10) == 1.0
    assert cosine_schedule(5, 10) == pytest.approx(0.5)
    assert cosine_schedule(10, 10) == pytest.approx(0.0)


def test_one_hot_targets_train_and_count_as_their_labels(digits):
    """CrossEntropyLoss takes one-hot (probability) targets: fit and evaluate count a
    prediction correct by argmax, the same counts as with the labels."""
    x_train, y_train, x_test, y_test = digits
    runs = []
    for one_hot in (False, True):
        model, loss_fn, optimizer = make(hidden=(16,), seed=1)
        eye = np.eye(10, dtype=np.float32)
        train = (x_train, eye[y_train] if one_hot else y_train)
        test = (x_test, eye[y_test] if one_hot else y_test)
        with fastnn.use_backend("numpy"):
            runs.append(fit(model, loss_fn, optimizer, train, test, epochs=2, batch_size=64,
                            progress=False, log=False))
    labels, one_hot = runs
    assert one_hot["test_accuracy"] == labels["test_accuracy"]
    assert one_hot["train_accuracy"] == labels["train_accuracy"]
    np.testing.assert_allclose(one_hot["train_loss"], labels["train_loss"], rtol=1e-5)


def test_regression_targets_train_with_nan_accuracy(digits):
    """Targets that are not classes (MSELoss on values) train; accuracy is NaN."""
    x_train, _, x_test, _ = digits
    fastnn.manual_seed(0)
    model = models.MLP(64, [16], 2)
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((64, 2)).astype(np.float32)
    with fastnn.use_backend("numpy"):
        metrics = fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.01),
                      (x_train, x_train @ mix), (x_test, x_test @ mix), epochs=3,
                      batch_size=64, progress=False, log=False)
    assert np.isnan(metrics["train_accuracy"]).all() and np.isnan(metrics["test_accuracy"]).all()
    assert metrics["test_loss"][-1] < metrics["test_loss"][0]
    # the loss it ran, by name (what plot_curves labels the loss axis with)
    assert metrics["loss_name"] == "MSELoss"


@pytest.mark.parametrize("column", [True, False])
def test_integer_regression_targets_have_nan_accuracy(column):
    """Integer regression targets (counts) beside a single output unit are no class
    labels: the accuracy is NaN (with (N, 1) targets argmax (N,) broadcast against them
    to (N, N), an 'accuracy' of 17.0; with (N,) targets it was the share of zeros)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 5)).astype(np.float32)
    counts = rng.poisson(2.0, 120).astype(np.int64)
    y = counts[:, None] if column else counts
    fastnn.manual_seed(0)
    model = models.MLP(5, [8], 1)
    with fastnn.use_backend("numpy"):
        metrics = fit(model, nn.PoissonNLLLoss(), optim.Adam(model.parameters(), lr=0.01),
                      (x, y), (x, y), epochs=2, batch_size=32, progress=False, log=False)
        loss, accuracy = evaluate(model, nn.PoissonNLLLoss(), x, y, batch_size=50)
    assert np.isnan(metrics["train_accuracy"]).all() and np.isnan(metrics["test_accuracy"]).all()
    assert np.isnan(accuracy)
    if column:   # ((N,) targets broadcast against (N, 1) outputs, with a warning)
        with fastnn.no_grad():
            expected = nn.PoissonNLLLoss()(model.eval()(x), y)
        assert loss == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize("with_logits", [True, False])
@pytest.mark.parametrize("outputs", [1, 3])
def test_binary_targets_of_a_bce_loss_count_thresholded_outputs(with_logits, outputs):
    """0/1 targets of a BCEWithLogitsLoss (BCELoss) count an output above 0 (0.5) as
    class 1, each element of a multi-label target on its own, as
    ((torch.sigmoid(out) > 0.5) == y).double().mean() does; before, the accuracy was NaN
    (a tabular binary classifier got none from fit). Soft targets stay NaN."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((150, 4)).astype(np.float32)
    y = (x[:, :outputs] + 0.3 * rng.standard_normal((150, outputs)) > 0).astype(np.float32)
    fastnn.manual_seed(0)
    layers = [nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, outputs)]
    model = nn.Sequential(*(layers if with_logits else layers + [nn.Sigmoid()]))
    loss_fn = nn.BCEWithLogitsLoss() if with_logits else nn.BCELoss()
    with fastnn.use_backend("numpy"):
        metrics = fit(model, loss_fn, optim.Adam(model.parameters(), lr=0.05), (x, y),
                      (x, y), epochs=3, batch_size=32, progress=False, log=False)
        _, accuracy = evaluate(model, loss_fn, x, y, batch_size=40)
    with fastnn.no_grad():
        out = model.eval()(x)
    import torch
    probabilities = torch.sigmoid(torch.from_numpy(out)) if with_logits else torch.from_numpy(out)
    expected = ((probabilities > 0.5).float() == torch.from_numpy(y)).double().mean().item()
    assert accuracy == pytest.approx(expected, abs=1e-12)
    assert metrics["test_accuracy"][-1] == pytest.approx(expected, abs=1e-12)
    assert 0.8 < accuracy <= 1.0 and np.all(np.isfinite(metrics["train_accuracy"]))
    soft = np.clip(y * 0.8 + 0.1, 0, 1).astype(np.float32)   # (label smoothing by hand)
    with fastnn.use_backend("numpy"):
        assert np.isnan(evaluate(model, loss_fn, x, soft)[1])


def test_ignored_labels_are_not_counted(digits):
    x_train, y_train, x_test, y_test = digits
    model, _, optimizer = make(hidden=(16,))
    loss_fn = nn.CrossEntropyLoss(ignore_index=-100)
    y_masked = y_test.copy()
    y_masked[::2] = -100
    with fastnn.use_backend("numpy"):
        fit(model, loss_fn, optimizer, (x_train, y_train), None, epochs=1, batch_size=64,
            progress=False, log=False)
        _, accuracy = evaluate(model, loss_fn, x_test, y_masked)
        predicted = model(x_test).argmax(axis=1)
    assert accuracy == pytest.approx(np.mean(predicted[1::2] == y_test[1::2]))


def test_a_second_cosine_fit_starts_from_the_initial_lr(digits):
    """As with PyTorch's schedulers, the schedule scales the group's 'initial_lr': the
    optimizer ends at the decayed lr, and a second fit starts from 0.1 again."""
    x_train, y_train, _, _ = digits
    model, loss_fn, optimizer = make(hidden=(16,))
    seen = []

    def schedule(step, total):
        factor = 0.5 * (1 + np.cos(np.pi * step / total))
        seen.append(factor)
        return factor
    with fastnn.use_backend("numpy"):
        for _ in range(2):
            fit(model, loss_fn, optimizer, (x_train, y_train), None, max_steps=10, epochs=None,
                batch_size=64, lr_schedule=schedule, progress=False, log=False)
            assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * seen[-1])
            assert optimizer.param_groups[0]["initial_lr"] == 0.1
    model2, _, optimizer2 = make(hidden=(16,))
    optimizer2.load_state_dict(optimizer.state_dict())  # the key survives a round trip
    assert optimizer2.param_groups[0]["initial_lr"] == 0.1


@pytest.mark.parametrize("which", ["train_data", "test_data"])
def test_fit_says_it_takes_an_x_y_pair(digits, which):
    """A DataLoader (or a TensorDataset, or (x, y, w)) given as fit's data ended in Python's
    'too many values to unpack (expected 2)'; nothing is trained before the error."""
    x_train, y_train, x_test, y_test = digits
    model, loss_fn, optimizer = make()
    before = [p.data.copy() for p in model.parameters()]
    for bad, named in ((data.DataLoader(x_train, y_train, batch_size=32), "DataLoader"),
                       (data.TensorDataset(x_train, y_train), "TensorDataset"),
                       ((x_train, y_train, y_train), "tuple of 3")):
        kwargs = {"train_data": (x_train, y_train), "test_data": (x_test, y_test), which: bad}
        with pytest.raises(TypeError, match=rf"fit: {which} must be an \(x, y\) pair of "
                                            rf"arrays, got a {named}"):
            fit(model, loss_fn, optimizer, epochs=1, progress=False, log=False, **kwargs)
    assert all(np.array_equal(p.data, b) for p, b in zip(model.parameters(), before))


def test_fit_calls_a_last_update_that_leaves_nan_parameters_divergence():
    # each loss is checked before its update, so only the next step would see what an
    # update did: a run whose last update blew up returned NaN weights as a result
    fastnn.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 5)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    opt = optim.SGD(model.parameters(), lr=1e40)
    with pytest.raises(TrainingDiverged, match="update of the last step, 1") as info:
        fit(model, nn.CrossEntropyLoss(), opt, (x, y), max_steps=1, batch_size=32,
            progress=False, log=False)
    assert info.value.parameter is not None and info.value.step == 1
