"""Probes of the command-line trainer's data path: DataLoader over arrays and fit."""
import os

import numpy as np
import pytest

from fastnn.data import DataLoader, TensorDataset, default_collate


def _arrays(n=7):
    return np.arange(n * 2, dtype=np.float32).reshape(n, 2), np.arange(n, dtype=np.int64)


@pytest.mark.parametrize("shuffle", [False, True])
def test_array_loader_calls_collate_fn_with_the_batch_samples(shuffle):
    # the array form ignored collate_fn, silently yielding the stacked batch
    x, y = _arrays()
    seen = []
    loader = DataLoader(x, y, batch_size=3, shuffle=shuffle, seed=2,
                        collate_fn=lambda samples: seen.append(samples) or len(samples))
    assert list(loader) == [3, 3, 1]
    plain = list(DataLoader(x, y, batch_size=3, shuffle=shuffle, seed=2))
    for samples, (bx, by) in zip(seen, plain):
        assert [int(s[1]) for s in samples] == by.tolist()   # the same rows, in order
        np.testing.assert_array_equal(np.stack([s[0] for s in samples]), bx)
    # default_collate gives what the TensorDataset form gives (a list of batched fields)
    got = list(DataLoader(x, y, batch_size=3, shuffle=shuffle, seed=2,
                          collate_fn=default_collate))
    ref = list(DataLoader(TensorDataset(x, y), batch_size=3, shuffle=shuffle, seed=2))
    for g, r in zip(got, ref):
        assert isinstance(g, list)
        for a, b in zip(g, r):
            np.testing.assert_array_equal(a, b)


def test_array_loader_collate_fn_samples_follow_the_batch_packing():
    x, y = _arrays(3)
    only_x = list(DataLoader(x, batch_size=2, collate_fn=lambda s: s))
    np.testing.assert_array_equal(only_x[0][1], x[1])
    multi = list(DataLoader(x, (y, -y), batch_size=2, collate_fn=lambda s: s))
    sample = multi[1][0]
    np.testing.assert_array_equal(sample[0], x[2])
    assert sample[1] == (2, -2)


@pytest.mark.parametrize("form", ["arrays", "dataset"])
def test_shuffling_no_samples_is_refused_as_torch(form):
    # PyTorch's RandomSampler: ValueError; the loader yielded no batch, silently
    x = np.zeros((0, 2), np.float32)
    data = (x, np.zeros(0, np.int64)) if form == "arrays" else (TensorDataset(x),)
    with pytest.raises(ValueError, match="num_samples=0"):
        DataLoader(*data, batch_size=2, shuffle=True)
    assert list(DataLoader(*data, batch_size=2)) == []   # in order: no batches, as torch


@pytest.mark.parametrize("drop_last", [1, 0, None, "yes"])
def test_drop_last_must_be_a_bool_as_torch(drop_last):
    x, y = _arrays()
    with pytest.raises(ValueError, match="drop_last should be a boolean"):
        DataLoader(x, y, batch_size=2, drop_last=drop_last)
    with pytest.raises(ValueError, match="drop_last should be a boolean"):
        DataLoader(TensorDataset(x, y), batch_size=2, drop_last=drop_last)


def test_fit_on_no_samples_names_fit():
    from fastnn import models, nn, optim
    from fastnn.train import fit
    model = models.MLP(2, [3], 2)
    with pytest.raises(ValueError, match="fit: no training batches"):
        fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1),
            (np.zeros((0, 2), np.float32), np.zeros(0, np.int64)), progress=False)


def test_batch_size_none_yields_samples_unbatched_as_torch():
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader as TorchLoader, TensorDataset as TorchDataset
    x, y = _arrays(5)
    ref = list(TorchLoader(TorchDataset(torch.from_numpy(x), torch.from_numpy(y)),
                           batch_size=None))
    for loader in (DataLoader(TensorDataset(x, y), batch_size=None),
                   DataLoader(x, y, batch_size=None)):
        got = list(loader)
        assert len(loader) == len(got) == len(ref) == 5
        for g, r in zip(got, ref):
            np.testing.assert_array_equal(g[0], r[0].numpy())
            assert int(g[1]) == int(r[1]) and np.ndim(g[1]) == 0
        assert loader.batch_size is None
    assert isinstance(got[0], tuple)   # the array form packs a sample as it packs a batch
    assert isinstance(list(DataLoader(TensorDataset(x, y), batch_size=None))[0], list)
    # shuffled: the samples of batch_size=1 with the same seed; collate_fn per sample
    one = [int(b[1][0]) for b in DataLoader(x, y, batch_size=1, shuffle=True, seed=4)]
    assert [int(s[1]) for s in DataLoader(x, y, batch_size=None, shuffle=True, seed=4)] == one
    assert list(DataLoader(x, y, batch_size=None, collate_fn=lambda s: int(s[1]))) == \
        list(range(5))
    with pytest.raises(ValueError, match="mutually exclusive with drop_last"):
        DataLoader(x, y, batch_size=None, drop_last=True)


def test_fit_refuses_batch_size_none():
    from fastnn import models, nn, optim
    from fastnn.train import fit
    model = models.MLP(2, [3], 2)
    with pytest.raises(ValueError, match="fit: batch_size"):
        fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1),
            (np.zeros((4, 2), np.float32), np.zeros(4, np.int64)), batch_size=None,
            progress=False)


@pytest.fixture
def restore_backend():
    """In-process CLI calls set the backend and seed; later tests get theirs back."""
    import fastnn
    from fastnn import random as fastnn_random
    backend, state = fastnn.get_backend(), fastnn_random.get_state()
    yield
    fastnn.set_backend(backend)
    fastnn_random.set_state(state)


def test_cli_batch_of_one_check_leaves_the_dropout_draws_alone(tmp_path, capsys,
                                                                restore_backend):
    # digits: 1438 training samples, so --batch-size 479 leaves one sample in the last
    # batch and the CLI tries a one-sample forward first; its dropout draw moved every
    # later mask, so the run differed from the same fit in Python
    import fastnn
    from fastnn import data, models, nn, optim
    from fastnn.cli import main
    from fastnn.train import fit
    path = str(tmp_path / "m.npz")
    assert main(["train", "--dataset", "digits", "--hidden", "16", "--dropout", "0.3",
                 "--batch-size", "479", "--max-steps", "4", "--backend", "numpy",
                 "--no-progress", "--save", path]) == 0
    got = fastnn.load(path).state_dict()
    fastnn.manual_seed(0)
    x_train, y_train, x_test, y_test = data.load("digits", flatten=True)
    assert len(x_train) % 479 == 1
    model = models.MLP(64, [16], 10, dropout=0.3)
    fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        (x_train, y_train), (x_test, y_test), epochs=None, max_steps=4, batch_size=479,
        seed=0, progress=False, log=False)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_default_collate_of_unequal_arrays_is_torch_runtime_error():
    torch = pytest.importorskip("torch")
    from torch.utils.data import default_collate as torch_collate
    batch = [np.ones(2), np.ones(2), np.ones(3)]
    with pytest.raises(RuntimeError) as ref:
        torch_collate(batch)
    with pytest.raises(RuntimeError, match="equal size") as got:
        default_collate(batch)
    assert str(got.value) == str(ref.value)
    with pytest.raises(RuntimeError, match="equal size"):   # through the loader too
        list(DataLoader([(np.ones(2), 0), (np.ones(3), 1)], batch_size=2))


def test_fit_and_evaluate_report_per_sample_loss_for_reduction_sum():
    # a 'sum' loss was multiplied by the batch size again (train_loss 224 for 2.24)
    import fastnn
    from fastnn import data, models, nn, optim
    from fastnn.train import evaluate, fit
    x_train, y_train, x_test, y_test = data.load("digits", flatten=True)
    runs = {}
    for reduction, lr in (("mean", 0.1), ("sum", 0.001)):
        fastnn.manual_seed(0)
        model = models.MLP(64, [16], 10)
        loss_fn = nn.CrossEntropyLoss(reduction=reduction)
        history = fit(model, loss_fn, optim.SGD(model.parameters(), lr=lr),
                      (x_train, y_train), (x_test, y_test), epochs=1, batch_size=100,
                      progress=False, log=False)
        ref = evaluate(model, nn.CrossEntropyLoss(), x_test, y_test, batch_size=100)[0]
        assert evaluate(model, loss_fn, x_test, y_test, batch_size=100)[0] == \
            pytest.approx(ref, rel=1e-6)
        assert history["test_loss"][-1] == pytest.approx(ref, rel=1e-6)
        runs[reduction] = history["train_loss"][0]
    assert runs["sum"] == pytest.approx(runs["mean"], rel=1e-3)   # lr 0.1 / batch 100


def test_fit_refuses_reduction_none_before_changing_the_optimizer():
    from fastnn import models, nn, optim
    from fastnn.train import fit
    model = models.MLP(2, [3], 2)
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="reduction='none'"):
        fit(model, nn.CrossEntropyLoss(reduction="none"), opt,
            (np.zeros((4, 2), np.float32), np.zeros(4, np.int64)), lr_schedule="cosine",
            progress=False)
    assert "initial_lr" not in opt.param_groups[0]


def test_batch_size_none_converts_samples_as_torch_default_convert():
    # tuples inside a dict sample became lists only at the top level
    torch = pytest.importorskip("torch")
    from torch.utils.data import default_convert as torch_convert
    from fastnn.data import Dataset, default_convert

    class Samples(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return {"x": np.full(2, i, np.float32), "t": (i, [float(i), (i,)])}

    def shape(v):
        if isinstance(v, dict):
            return {k: shape(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return (type(v).__name__, [shape(x) for x in v])
        return "array" if isinstance(v, (np.ndarray, torch.Tensor)) else v

    got = list(DataLoader(Samples(), batch_size=None))
    ref = [torch_convert(Samples()[i]) for i in range(2)]
    assert [shape(g) for g in got] == [shape(r) for r in ref]
    assert shape(default_convert(((1, 2), "s"))) == shape(torch_convert(((1, 2), "s")))


def test_outputs_write_through_links_and_fifos(tmp_path, restore_backend):
    # --metrics and --save renamed a new file over the path: a symbolic link became a
    # regular file (its target untouched) and so did a FIFO or, for root, /dev/stdout
    import json
    import os
    import threading

    import fastnn
    from fastnn.cli import main
    target, link = tmp_path / "target.json", tmp_path / "m.json"
    target.write_text("{}")
    link.symlink_to(target.name)
    ckpt, ckpt_link = tmp_path / "t.npz", tmp_path / "s.npz"
    ckpt.write_bytes(b"")
    ckpt_link.symlink_to(ckpt.name)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    read = {}
    reader = threading.Thread(target=lambda: read.update(text=fifo.read_text()),
                              daemon=True)   # (left blocked if the FIFO is never written)
    reader.start()
    argv = ["train", "--dataset", "digits", "--hidden", "8", "--max-steps", "1",
            "--backend", "numpy", "--no-progress"]
    assert main(argv + ["--metrics", str(link), "--save", str(ckpt_link)]) == 0
    assert main(argv + ["--metrics", str(fifo)]) == 0
    reader.join(timeout=30)
    assert link.is_symlink() and ckpt_link.is_symlink() and fifo.is_fifo()
    assert json.loads(target.read_text())["steps"] == 1
    assert json.loads(read["text"])["steps"] == 1
    assert type(fastnn.load(str(ckpt))).__name__ == "MLP"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "m.json", "s.npz",
                                                           "t.npz", "target.json"]


@pytest.mark.parametrize("kwargs", [{"eval_batch_size": 0}, {"eval_batch_size": None},
                                    {"batch_size": 2.0}])
def test_fit_checks_batch_sizes_before_training(kwargs):
    # eval_batch_size=0 was refused by the first evaluation, after an epoch of training
    from fastnn import models, nn, optim
    from fastnn.train import evaluate, fit
    model = models.MLP(2, [3], 2)
    before = [p.data.copy() for p in model.parameters()]
    data = (np.ones((4, 2), np.float32), np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="fit: (eval_)?batch_size must be a positive int"):
        fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), data, data,
            progress=False, log=False, **kwargs)
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.data, b)
    with pytest.raises(ValueError, match="evaluate: batch_size must be a positive int"):
        evaluate(model, nn.CrossEntropyLoss(), *data, batch_size=None)


def test_fit_checks_test_data_before_training():
    # test targets of another length were refused by the first evaluation, after an
    # epoch had updated the parameters
    from fastnn import models, nn, optim
    from fastnn.train import fit
    model = models.MLP(2, [3], 2)
    before = [p.data.copy() for p in model.parameters()]
    train = (np.ones((4, 2), np.float32), np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="samples"):
        fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), train,
            (np.ones((5, 2), np.float32), np.zeros(4, np.int64)), progress=False, log=False)
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.data, b)


@pytest.mark.parametrize("flag", [["--batchnorm"], ["--dropout", "0.5"]])
def test_train_refuses_hidden_layer_options_for_a_linear_model(flag, capsys,
                                                               restore_backend):
    # --hidden '' builds no hidden layer: --batchnorm and --dropout were silently ignored
    from fastnn.cli import main
    assert main(["train", "--dataset", "digits", "--hidden", "", "--max-steps", "1",
                 "--no-progress"] + flag) == 2
    assert "linear model" in capsys.readouterr().err


# ---------------------------------------------------------------- fit(resume=...)
def _digits_run(**kwargs):
    """fit of a small MLP with BatchNorm and dropout (it draws from fastnn's generator)
    on 300 digits, in batches of 64 (five per epoch): (model, optimizer, metrics)."""
    import fastnn
    from fastnn import data, models, nn, optim
    from fastnn.train import fit
    x, y, x_test, y_test = data.load("digits", flatten=True)
    fastnn.manual_seed(0)
    model = models.MLP(64, [16], 10, batchnorm=True, dropout=0.3)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    resume = kwargs.pop("resume", None)
    if resume is not None:   # the earlier run's model and optimizer, as a checkpoint has them
        model.load_state_dict(resume[0].state_dict())
        opt.load_state_dict(resume[1].state_dict())
        fastnn.manual_seed(123)   # (the generator's state comes from the metrics)
        kwargs["resume"] = resume[2]
    metrics = fit(model, nn.CrossEntropyLoss(), opt, (x[:300], y[:300]),
                  (x_test[:50], y_test[:50]), batch_size=64, seed=3, eval_freq=4,
                  progress=False, log=False, **kwargs)
    return model, opt, metrics


@pytest.mark.parametrize("first,then", [
    ({"epochs": 2}, {"epochs": 4}),                                  # at an epoch's end
    ({"epochs": 3, "max_steps": 7}, {"epochs": 3}),                  # inside epoch 2
    ({"epochs": None, "max_steps": 7}, {"epochs": None, "max_steps": 13})])
def test_fit_resume_continues_bit_for_bit(first, then, restore_backend):
    import json

    import fastnn
    fastnn.set_backend("numpy")
    model, opt, ref = _digits_run(**then)
    earlier = _digits_run(**first)
    # what a checkpoint's extra holds: the metrics through JSON
    earlier = earlier[:2] + (json.loads(json.dumps(earlier[2])),)
    resumed, resumed_opt, metrics = _digits_run(resume=earlier, **then)
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    for a, b in zip(opt.state_dict()["state"].values(),
                    resumed_opt.state_dict()["state"].values()):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    for key in ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
                "step_curve", "steps"):
        assert metrics[key] == ref[key], key
    assert len(metrics["seconds_per_epoch"]) == len(ref["epoch"])


def test_fit_resume_refuses_what_does_not_fit_before_changing_anything(restore_backend):
    import fastnn
    from fastnn import data, nn
    from fastnn import random as fastnn_random
    from fastnn.train import fit
    fastnn.set_backend("numpy")
    model, opt, metrics = _digits_run(epochs=1)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    x, y = data.load("digits", flatten=True)[:2]
    generator = fastnn_random.get_state()

    def resume(resume, **kwargs):
        return fit(model, nn.CrossEntropyLoss(), opt, (x[:300], y[:300]),
                   **{"batch_size": 64, "epochs": 2, "progress": False, "log": False,
                      "lr_schedule": "cosine", "resume": resume, **kwargs})
    with pytest.raises(ValueError, match="resuming needs the same batches"):
        resume(metrics, batch_size=32)
    with pytest.raises(ValueError, match="and 300 training samples, this one"):
        fit(model, nn.CrossEntropyLoss(), opt, (x[:200], y[:200]), batch_size=64, epochs=2,
            progress=False, resume=metrics)
    with pytest.raises(ValueError, match="nothing to resume"):
        resume(metrics, epochs=1)
    with pytest.raises(ValueError, match="metrics dict of an earlier fit"):
        resume({"epoch": [1]})
    broken = dict(metrics, train_state=dict(metrics["train_state"], shuffle_state={}))
    with pytest.raises(ValueError, match="shuffle_state is not a PCG64 state"):
        resume(broken)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    assert "initial_lr" not in opt.param_groups[0]
    assert fastnn_random.get_state() == generator


# ------------------------------------------- what --resume relies on: fastnn.save/load
def _steps(model, opt, x, n):
    for _ in range(n):
        y = model(x)
        model.backward(np.ones_like(y))
        opt.step()
        opt.zero_grad()


@pytest.mark.parametrize("name", ["NAdam", "ASGD"])
@pytest.mark.parametrize("from_arrays", [False, True], ids=["made", "loaded-float64"])
def test_float64_optimizer_scalars_resume_bit_for_bit(tmp_path, backend, name, from_arrays):
    """NAdam's mu_product and ASGD's eta and mu are float32-rounded in a float64 run (made
    in PyTorch's default dtype); fastnn.load put them back as float64 arrays, which
    load_state_dict keeps in float64 from then on: the resumed run drifted (5e-12). A
    state loaded in float64 (as PyTorch's load_state_dict casts it) stays float64."""
    import fastnn
    from fastnn import nn, optim
    x = np.random.default_rng(0).standard_normal((8, 4))

    def start():
        fastnn.manual_seed(0)
        model = nn.Linear(4, 3).double()
        opt = getattr(optim, name)(model.parameters(), lr=0.01)
        if from_arrays:   # scalar states from 0-d float64 arrays: rounded in float64
            _steps(model, opt, x, 1)
            state = opt.state_dict()
            for entry in state["state"].values():
                for key in entry:
                    if key != "step" and np.ndim(entry[key]) == 0:
                        entry[key] = np.asarray(entry[key], np.float64)
            opt.load_state_dict(state)
        return model, opt
    model, opt = start()
    _steps(model, opt, x, 6)
    resumed, resumed_opt = start()
    _steps(resumed, resumed_opt, x, 3)
    fastnn.save(resumed, tmp_path / "c.npz", optimizer=resumed_opt)
    resumed, resumed_opt = start()
    fastnn.load(tmp_path / "c.npz", model=resumed, optimizer=resumed_opt)
    _steps(resumed, resumed_opt, x, 3)
    np.testing.assert_array_equal(resumed.weight.data, model.weight.data)
    np.testing.assert_array_equal(resumed.bias.data, model.bias.data)


def test_fit_resumed_epoch_reports_this_runs_samples_per_second(monkeypatch, capsys,
                                                                 restore_backend):
    """An epoch cut short and finished by a resumed run: its line gives both runs' seconds
    and the samples per second of this run (its samples over its own time). It divided
    all the epoch's samples by both runs' seconds, so an earlier part on a slow device
    (the CUDA simulator: 6.3 s for 2 steps) showed '5 samples/s' for a cython run."""
    import re
    import types

    import fastnn
    from fastnn import data, nn, train
    fastnn.set_backend("numpy")
    model, opt, earlier = _digits_run(epochs=3, max_steps=7)   # 2 of epoch 2's 5 batches
    earlier["train_state"]["epoch_sums"]["seconds"] = 1000.0   # a slow earlier part
    clock = iter(range(0, 10_000, 3))   # 3 s between any two readings
    monkeypatch.setattr(train, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    x, y = data.load("digits", flatten=True)[:2]
    metrics = train.fit(model, nn.CrossEntropyLoss(), opt, (x[:300], y[:300]),
                        batch_size=64, seed=3, epochs=2, progress=False, resume=earlier)
    # clock readings: the epoch's start, after the skipped batches, its end
    assert metrics["seconds_per_epoch"][1] == 1000.0 + 3
    assert metrics["samples_per_second"] == (64 + 64 + 44) / 3
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("epoch 2/2")]
    assert line and re.search(r"  1003\.00 s \(3\.00 s in this run\)  57 samples/s$",
                              line[0]), line


def test_outputs_through_links_into_missing_folders(tmp_path, restore_backend):
    # a symbolic link naming a file in a folder not made yet passed the check before
    # training, but --plot and --save made the link's own folder, not the target's, and
    # failed after the run (status 1); --metrics made the target's folder
    import json

    import fastnn
    from fastnn.cli import main
    links = {}
    for flag, name in (("--metrics", "m.json"), ("--plot", "c.png"), ("--save", "s.npz")):
        links[flag] = tmp_path / name
        links[flag].symlink_to(os.path.join("out", flag[2:], name))
    argv = ["train", "--dataset", "digits", "--hidden", "8", "--max-steps", "1",
            "--backend", "numpy", "--no-progress"]
    assert main(argv + [a for flag, link in links.items() for a in (flag, str(link))]) == 0
    assert all(link.is_symlink() for link in links.values())
    assert json.loads((tmp_path / "out/metrics/m.json").read_text())["steps"] == 1
    assert (tmp_path / "out/plot/c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert type(fastnn.load(str(tmp_path / "out/save/s.npz"))).__name__ == "MLP"
    # the experiments' --out and --metrics the same way
    out, metrics = tmp_path / "v.png", tmp_path / "v.json"
    out.symlink_to(os.path.join("vae", "out", "v.png"))
    metrics.symlink_to(os.path.join("vae", "metrics", "v.json"))
    assert main(["vae", "--n-train", "64", "--n-test", "32", "--epochs", "1", "--backend",
                 "numpy", "--no-progress", "--out", str(out), "--metrics", str(metrics)]) == 0
    assert out.is_symlink() and metrics.is_symlink()
    assert (tmp_path / "vae/out/v.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "vae/metrics/v.json").read_text())["config"]["n_train"] == 64
