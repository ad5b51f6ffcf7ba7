"""``python -m fastnn`` in a subprocess, on scikit-learn's digits."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn import cli, data


@pytest.fixture(autouse=True)
def restore_backend():
    """In-process CLI calls set the backend; later tests get the one they started with."""
    backend = fastnn.get_backend()
    yield
    fastnn.set_backend(backend)


def run_cli(*args, cwd=None):
    env = dict(os.environ, FASTNN_BACKEND="numpy")
    return subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300)


def test_train_writes_metrics_plot_and_checkpoint(tmp_path):
    metrics_path, plot_path = tmp_path / "m.json", tmp_path / "curves.png"
    result = run_cli("train", "--model", "mlp", "--dataset", "digits", "--hidden", "32",
                     "--lr", "0.1", "--momentum", "0.9", "--batch-size", "32", "--epochs", "3",
                     "--backend", "numpy", "--seed", "0", "--metrics", str(metrics_path),
                     "--plot", str(plot_path), "--save", str(tmp_path / "model.npz"),
                     "--threads", "1")
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("test accuracy: ")
    metrics = json.loads(metrics_path.read_text())
    assert float(last.split()[-1]) == pytest.approx(metrics["test_accuracy"], abs=5e-5)
    assert metrics["test_accuracy"] > 0.85
    for key in ("train_accuracy", "seconds_per_epoch", "samples_per_second", "config"):
        assert key in metrics
    assert metrics["backend"] == "numpy" and metrics["threads"] == 1
    assert len(metrics["curves"]["train_loss"]) == len(metrics["curves"]["test_accuracy"]) == 3
    assert metrics["config"]["hidden"] == [32] and metrics["config"]["epochs"] == 3
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = fastnn.load(tmp_path / "model.npz")  # rebuilt from the checkpoint's config
    x_train, y_train, x_test, y_test = data.load_digits(flatten=True)
    accuracy = float((model.eval().forward(x_test).argmax(1) == y_test).mean())
    assert accuracy == pytest.approx(metrics["test_accuracy"])


def test_classic_course_flag_names(tmp_path):
    metrics_path = tmp_path / "m.json"
    result = run_cli("train", "--dataset", "digits", "--dnn-hidden-units", "32,16",
                     "--learning-rate", "0.05", "--max-steps", "30", "--eval-freq", "10",
                     "--neg-slope", "0.02", "--batch-size", "64", "--no-progress",
                     "--metrics", str(metrics_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("test accuracy: ")
    metrics = json.loads(metrics_path.read_text())
    config = metrics["config"]
    assert config["hidden"] == [32, 16] and config["lr"] == 0.05
    assert config["activation"] == "leaky_relu" and config["negative_slope"] == 0.02
    assert metrics["steps"] == 30
    assert metrics["step_curve"]["step"] == [10, 20, 30]
    assert "MLP 64-32-16-10" in result.stdout


def test_course_flags_with_underscores(tmp_path, capsys):
    """The course scripts' spelling (--dnn_hidden_units, --learning_rate, --max_steps,
    --batch_size, --eval_freq, --neg_slope, --data_dir=...) names the same options."""
    metrics_path = tmp_path / "m.json"
    status = cli.main(["train", "--dataset", "digits", "--dnn_hidden_units", "32,16",
                       "--learning_rate", "0.05", "--max_steps", "20", "--eval_freq", "10",
                       "--neg_slope=0.02", "--batch_size", "64", "--no_progress",
                       f"--data_dir={tmp_path}", "--metrics", str(metrics_path)])
    assert status == 0
    config = json.loads(metrics_path.read_text())["config"]
    assert config["hidden"] == [32, 16] and config["lr"] == 0.05
    assert config["negative_slope"] == 0.02 and config["batch_size"] == 64
    assert "test accuracy" in capsys.readouterr().out


def test_eval_freq_0_is_off_as_fits(tmp_path, capsys):
    # --eval-freq 0 was refused ('must be positive', exit 2), where fit(eval_freq=0)
    # means no evaluation by steps
    metrics_path = tmp_path / "m.json"
    assert cli.main(["train", "--dataset", "digits", "--hidden", "16", "--epochs", "1",
                     "--eval-freq", "0", "--no-progress", "--metrics", str(metrics_path)]) == 0
    metrics = json.loads(metrics_path.read_text())
    assert "step_curve" not in metrics and len(metrics["curves"]["test_accuracy"]) == 1
    assert "test accuracy" in capsys.readouterr().out


def test_omega_trains_a_sine_mlp_and_the_metrics_name_the_loss(tmp_path):
    # --omega is to the sine activation what --neg-slope is to leaky_relu: it implies it,
    # reaches nn.Sine(omega), and is recorded (and kept by --resume, as the model's shape)
    metrics_path, checkpoint = tmp_path / "m.json", tmp_path / "run.npz"
    assert cli.main(["train", "--dataset", "digits", "--hidden", "16", "--omega", "3",
                     "--max-steps", "5", "--no-progress", "--backend", "numpy",
                     "--metrics", str(metrics_path), "--save", str(checkpoint)]) == 0
    metrics = json.loads(metrics_path.read_text())
    assert metrics["config"]["activation"] == "sine" and metrics["config"]["omega"] == 3.0
    assert metrics["loss_name"] == "CrossEntropyLoss"
    model = fastnn.load(checkpoint)
    assert [layer.omega for layer in model if type(layer).__name__ == "Sine"] == [3.0]
    again = tmp_path / "again.json"
    assert cli.main(["train", "--resume", str(checkpoint), "--max-steps", "6",
                     "--no-progress", "--metrics", str(again)]) == 0
    assert json.loads(again.read_text())["config"]["omega"] == 3.0
    assert cli.main(["train", "--resume", str(checkpoint), "--max-steps", "7",
                     "--no-progress", "--omega", "2"]) == 2


def test_divergence_exits_1_with_message(tmp_path):
    result = run_cli("train", "--dataset", "digits", "--lr", "1e30", "--max-steps", "40",
                     "--no-progress")
    assert result.returncode == 1
    assert "training diverged: the loss became" in result.stderr


@pytest.mark.parametrize("argv,message", [
    (["--activation", "tanh", "--neg-slope", "0.1"], "--neg-slope applies to leaky_relu"),
    (["--activation", "relu", "--omega", "2"], "--omega applies to sine"),
    (["--neg-slope", "0.1", "--omega", "2"], "--neg-slope (leaky_relu) and --omega (sine)"),
    (["--omega", "inf"], "MLP: expected a finite omega"),
    (["--backend", "nosuch"], "unknown backend 'nosuch'"),
    (["--batch-size", "0"], "--batch-size must be positive"),
    (["--eval-freq", "-1"], "--eval-freq must be 0 (off) or positive"),
    (["--lr", "-1"], "SGD"),
    (["--dropout", "1.5"], "MLP: expected dropout in [0, 1], got 1.5"),
    (["--activation", "swish"], "MLP: expected activation"),
    (["--optimizer", "rprop", "--weight-decay", "0.1"], "--weight-decay does not apply"),
    (["--optimizer", "adam", "--momentum", "0.5"], "--momentum applies to --optimizer sgd"),
    # (/proc answers 'No such file or directory', which the message said, naming '/proc')
    (["--save", "/proc/fastnn-test/m.npz"], "--save cannot be written: nothing can be "
     "created in '/proc' (its file system does not allow it)"),
    (["--metrics", "/proc/m.json"], "--metrics cannot be written: nothing can be created "
     "in '/proc' (its file system does not allow it)"),
    (["--save", "/proc/version"], "--save cannot be written: '/proc/version' is replaced "
     "by a new file, and nothing can be created in '/proc'"),
    # digits has 1438 training samples: a last batch of one, which BatchNorm cannot
    # train on, is found before any training (the model is tried on a copy)
    (["--batchnorm", "--batch-size", "1437"], "the last batch of each epoch holds one sample"),
    (["--batchnorm", "--batch-size", "3"], "BatchNorm1d"),
    (["--batchnorm", "--batch-size", "1"], "every batch holds one sample (--batch-size 1)"),
    (["--model", "convnet", "--batch-size", "1"], "every batch holds one sample"),
])
def test_user_errors_are_one_line(capsys, argv, message):
    assert cli.main(["train", "--dataset", "digits", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize("model", ["cnn", "convnet"])
@pytest.mark.parametrize("argv,named", [
    (["--activation", "tanh"], "--activation applies"),
    (["--neg-slope", "0.1"], "--neg-slope applies"),
    (["--omega", "2"], "--omega applies"),
    (["--hidden", "100"], "--hidden applies"),   # (the default's value, given)
    (["--hidden", "50", "--batchnorm"], "--hidden, --batchnorm apply"),
    (["--dropout", "0.3"], "--dropout applies"),
])
def test_mlp_options_are_refused_with_a_conv_model(capsys, model, argv, named):
    """--activation and --neg-slope with --model cnn or convnet trained the convolutional
    model as if they were not there (exit 0); so did --hidden given its default's value.
    One option named said 'apply' ('--dropout apply only to ...'); it says 'applies'."""
    assert cli.main(["train", "--dataset", "digits", "--model", model, "--max-steps", "1",
                     "--no-progress", *argv]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {named} only to --model mlp, not {model}\n"


def test_demo_out_under_a_file_names_out(tmp_path, capsys):
    """demo --out a_file/sub was refused as '--metrics expects a file path, got
    .../a_file/sub/metrics.json': a flag the user never gave."""
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    assert cli.main(["demo", "--out", str(a_file / "sub"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: --out expects a folder, got {str(a_file / 'sub')!r} "
                   f"({str(a_file)!r} is a file, not a folder)\n")
    assert cli.main(["demo", "--out", str(a_file), "--no-progress"]) == 2
    assert (capsys.readouterr().err
            == f"error: --out expects a folder, got {str(a_file)!r} (a file)\n")


@pytest.mark.parametrize("flag", ["--save", "--metrics", "--plot"])
def test_a_path_ending_in_a_slash_is_refused_before_training(tmp_path, capsys, flag):
    """'out/' names a folder even before it exists: refused up front, not after the run."""
    folder = str(tmp_path / "not_yet") + "/"
    assert cli.main(["train", "--dataset", "digits", "--max-steps", "1", "--no-progress",
                     flag, folder]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "(a folder)" in err and err.count("\n") == 1
    assert not (tmp_path / "not_yet").exists()


def test_a_failed_download_is_one_line(tmp_path, capsys, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert cli.main(["train", "--dataset", "mnist", "--download", "--data-root",
                     str(tmp_path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: could not download train-images-idx3-ubyte.gz")
    assert "no network" in err and "Traceback" not in err
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # no partial files left


def test_bad_flag_value_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--dnn-hidden-units", "10,x"])
    assert info.value.code == 2 and "comma-separated" in capsys.readouterr().err


def test_missing_dataset_is_reported(tmp_path, capsys):
    assert cli.main(["train", "--dataset", "mnist", "--data-root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "mnist not found" in err and str(tmp_path) in err


def test_missing_scikit_learn_is_one_line(monkeypatch, capsys):
    """The digits set without scikit-learn (a plain pip install): the CLI says what to
    install, no traceback."""
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import raises
    assert cli.main(["train", "--dataset", "digits", "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "pip install scikit-learn" in err


def test_commands_are_registered_lazily(monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "broken", ("fastnn.no_such_module:configure", "x"))
    assert cli.main(["broken"]) == 2
    parser = cli.build_parser("train")  # builds without importing the broken command
    assert parser.parse_args(["train", "--dataset", "digits"]).dataset == "digits"


def test_demo_falls_back_to_digits(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("fastnn.data.paths.SYSTEM_DATA_DIR", str(tmp_path / "none"))
    out = tmp_path / "demo"
    status = cli.main(["demo", "--epochs", "2", "--out", str(out), "--no-progress",
                       "--backend", "numpy"])
    assert status == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"]["name"] == "digits" and metrics["backend"] == "numpy"
    assert (out / "curves.png").exists()


@pytest.mark.parametrize("model,extra,optimizer", [
    ("cnn", [], "adam"), ("convnet", ["--width", "0.125"], "adam"),
    ("cnn", ["--weight-decay", "0.01"], "adamw"), ("cnn", [], "rmsprop"),
    ("cnn", [], "adagrad"), ("cnn", [], "adamax"), ("cnn", [], "nadam"), ("cnn", [], "radam"),
    ("cnn", [], "adadelta"), ("cnn", [], "rprop"), ("cnn", ["--weight-decay", "0.01"], "asgd"),
    ("cnn", [], "adafactor")])
def test_conv_models_train_in_process(tmp_path, capsys, model, extra, optimizer):
    metrics_path = tmp_path / "m.json"
    status = cli.main(["train", "--model", model, "--dataset", "digits", "--max-steps", "2",
                       "--optimizer", optimizer, "--backend", "numpy", "--no-progress",
                       "--metrics", str(metrics_path), *extra])
    assert status == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("test accuracy: ")
    assert "on 1x8x8 inputs" in out[0]
    metrics = json.loads(metrics_path.read_text())
    assert metrics["steps"] == 2 and metrics["config"]["optimizer"] == optimizer


def test_a_last_batch_of_one_trains_without_batchnorm(tmp_path, capsys):
    """The batch-of-one check refuses only what cannot train: the same batch size trains
    an MLP without BatchNorm."""
    assert cli.main(["train", "--dataset", "digits", "--batch-size", "1437", "--epochs", "1",
                     "--no-progress", "--metrics", str(tmp_path / "m.json")]) == 0


def _write_mnist(root, train_images, train_labels, test_images, test_labels):
    """MNIST's four IDX files (uint8 images (N, rows, cols), uint8 labels) under root."""
    import struct

    import numpy as np

    def idx(array):
        array = np.ascontiguousarray(array, dtype=np.uint8)
        return (struct.pack(">HBB", 0, 0x08, array.ndim)
                + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes())
    root.mkdir(parents=True, exist_ok=True)
    for name, array in (("train-images-idx3-ubyte", train_images),
                        ("train-labels-idx1-ubyte", train_labels),
                        ("t10k-images-idx3-ubyte", test_images),
                        ("t10k-labels-idx1-ubyte", test_labels)):
        (root / name).write_bytes(idx(array))


def test_a_cnn_on_non_square_images_is_a_one_line_error(tmp_path, capsys):
    import numpy as np
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 10, 12))
    _write_mnist(tmp_path, images, rng.integers(0, 10, 20), images[:6],
                 rng.integers(0, 10, 6))
    status = cli.main(["train", "--model", "cnn", "--dataset", "mnist", "--data-root",
                       str(tmp_path), "--epochs", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: --model cnn takes square images")
    assert "10x12" in err and "Traceback" not in err


def test_mnist_labels_are_ten_classes(tmp_path, capsys):
    """Labels above 9 in an MNIST file are refused (not a 201-way classifier); labels that
    stop short of 9 still train a 10-way one."""
    import numpy as np
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 28, 28))
    _write_mnist(tmp_path / "bad", images, np.full(40, 200), images[:8], np.full(8, 200))
    assert cli.main(["train", "--dataset", "mnist", "--data-root", str(tmp_path / "bad"),
                     "--epochs", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "expected class labels 0..9" in err and "got 200" in err
    _write_mnist(tmp_path / "few", images, rng.integers(0, 4, 40), images[:8],
                 rng.integers(0, 4, 8))
    assert cli.main(["train", "--dataset", "mnist", "--data-root", str(tmp_path / "few"),
                     "--epochs", "1", "--no-progress", "--hidden", "8"]) == 0
    assert "MLP 784-8-10 " in capsys.readouterr().out


def test_plot_takes_the_format_its_extension_names(tmp_path):
    result = run_cli("train", "--dataset", "digits", "--hidden", "8", "--epochs", "2",
                     "--no-progress", "--plot", str(tmp_path / "c.svg"))
    assert result.returncode == 0, result.stderr
    assert b"<svg" in (tmp_path / "c.svg").read_bytes()[:400]


def test_plot_svg_and_unknown_extensions(tmp_path):
    from fastnn.plotting import plot_curves
    metrics = {"epoch": [1, 2], "train_loss": [1.0, 0.5], "train_accuracy": [0.5, 0.7]}
    assert b"<svg" in open(plot_curves(metrics, str(tmp_path / "c.svg")), "rb").read(400)
    for name in ("c.png", "c", "c.curves"):
        assert open(plot_curves(metrics, str(tmp_path / name)), "rb").read(4) == b"\x89PNG"


def test_curves_tick_whole_epochs_only():
    """A 20-epoch run's curves had ticks at epochs 2.5, 7.5, 12.5 and 17.5."""
    from fastnn.plotting import curves_figure
    n = 20
    metrics = {"epoch": list(range(1, n + 1)), "train_loss": [1 / k for k in range(1, n + 1)],
               "train_accuracy": [1 - 1 / k for k in range(1, n + 1)],
               "test_loss": [1.1 / k for k in range(1, n + 1)],
               "test_accuracy": [0.9 - 1 / k for k in range(1, n + 1)]}
    fig = curves_figure(metrics)
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert len(ticks) >= 3 and all(float(t).is_integer() for t in ticks), ticks


def test_curves_of_one_epoch_tick_it_and_draw_the_eval_freq_curve():
    """A run shorter than two epochs had ticks at 0.95, 0.975... and --plot drew the
    --eval-freq test curve (kept in the metrics' step_curve) nowhere: it is drawn on the
    epoch axis, a last epoch cut short by --max-steps at its fraction."""
    from fastnn.plotting import curves_figure
    metrics = {"epoch": [1, 2], "train_loss": [1.0, 0.5], "train_accuracy": [0.5, 0.7],
               "test_loss": [0.9, 0.6], "test_accuracy": [0.55, 0.72], "steps": 30,
               "train_state": {"batches_per_epoch": 20},
               "step_curve": {"step": [10, 20, 30], "test_loss": [1.2, 0.9, 0.6],
                              "test_accuracy": [0.4, 0.55, 0.72]}}
    fig = curves_figure(metrics)
    fig.canvas.draw()
    for ax, key in zip(fig.axes, ("loss", "accuracy")):
        train, test, steps = ax.get_lines()
        assert list(train.get_xdata()) == [1.0, 1.5] == list(test.get_xdata())
        assert list(steps.get_xdata()) == [0.5, 1.0, 1.5]
        assert list(steps.get_ydata()) == metrics["step_curve"][f"test_{key}"]
        assert steps.get_label() == "test, every 10 steps"
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    one = curves_figure({"epoch": [1], "train_loss": [1.0], "train_accuracy": [0.5]})
    one.canvas.draw()
    for ax in one.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks == [1.0], ticks


def test_curves_of_a_run_shorter_than_one_epoch_show_that_epoch():
    """--max-steps 5 of a 469-batch epoch put the one point at epoch 0.0107 and the
    integer-epoch locator wrote ticks 0.0102, 0.01035... over each other: the axis now
    spans the first epoch, ticked in fractions of it."""
    from fastnn.plotting import curves_figure
    metrics = {"epoch": [1], "train_loss": [2.1], "test_loss": [2.0],
               "train_accuracy": [0.3], "test_accuracy": [0.35], "steps": 5,
               "train_state": {"batches_per_epoch": 469}}
    fig = curves_figure(metrics)
    fig.canvas.draw()
    for ax in fig.axes:
        assert [list(line.get_xdata()) for line in ax.get_lines()] == [[5 / 469]] * 2
        low, high = ax.get_xlim()
        assert low < 0 and 1 <= high < 1.1
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks[0] == 0 and abs(ticks[-1] - 1) < 1e-9 and 3 <= len(ticks) <= 11, ticks


def _panels(fig):
    """(y label, legend labels) of each panel of a curves figure."""
    return [(ax.get_ylabel(), [line.get_label() for line in ax.get_lines()])
            for ax in fig.axes]


def test_curves_of_a_regression_name_its_loss_and_leave_out_accuracy(tmp_path):
    """A regression fit (MSELoss) was plotted with a 'cross-entropy loss' axis beside an
    empty accuracy panel: the loss axis names the loss fit ran (its 'loss_name'), and
    NaN accuracies (fit's for targets that are not classes) draw no panel."""
    from fastnn import models, nn, optim
    from fastnn.plotting import curves_figure, plot_curves
    from fastnn.train import fit
    fastnn.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True).astype(np.float32)
    model = models.MLP(3, [8], 1)
    with fastnn.use_backend("numpy"):
        metrics = fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.05), (x, y),
                      (x, y), epochs=3, batch_size=16, eval_freq=2, progress=False,
                      log=False)
    assert metrics["loss_name"] == "MSELoss"
    fig = curves_figure(metrics)
    assert _panels(fig) == [("mean squared error", ["train", "test", "test, every 2 steps"])]
    assert open(plot_curves(metrics, str(tmp_path / "r.png")), "rb").read(4) == b"\x89PNG"
    # another loss: its class name; a dict without one: a neutral "loss"
    named = dict(metrics, loss_name="PoissonNLLLoss")
    assert _panels(curves_figure(named))[0][0] == "PoissonNLLLoss"
    assert _panels(curves_figure({"epoch": [1], "train_loss": [0.5]})) == [("loss", ["train"])]


def test_cli_plot_of_a_classifier_keeps_both_panels(tmp_path, monkeypatch):
    """--plot (CrossEntropyLoss) still draws 'cross-entropy loss' and accuracy panels."""
    from fastnn import plotting
    figures = []
    made = plotting.curves_figure

    def keep(*args, **kwargs):
        figures.append(made(*args, **kwargs))
        return figures[-1]
    monkeypatch.setattr(plotting, "curves_figure", keep)
    assert cli.main(["train", "--dataset", "digits", "--hidden", "8", "--epochs", "2",
                     "--backend", "numpy", "--no-progress", "--plot",
                     str(tmp_path / "c.png")]) == 0
    (fig,) = figures
    assert _panels(fig) == [("cross-entropy loss", ["train", "test"]),
                            ("accuracy", ["train", "test"])]
    assert fig.get_size_inches().tolist() == [10, 4]
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_curves_of_a_hand_made_dict_draw_what_is_given(tmp_path):
    """{'train_loss': ..., 'test_loss': ...} raised KeyError ('epoch', then
    'train_accuracy'): the lists given are drawn (at epochs 1, 2, ... without 'epoch'),
    and a dict with nothing to draw is a ValueError naming the keys."""
    from fastnn.plotting import curves_figure, plot_curves
    losses = {"train_loss": [1.0, 0.6, 0.4], "test_loss": [1.1, 0.7, 0.5]}
    fig = curves_figure(losses)
    assert _panels(fig) == [("loss", ["train", "test"])]
    assert list(fig.axes[0].get_lines()[1].get_xdata()) == [1.0, 2.0, 3.0]
    assert open(plot_curves(losses, str(tmp_path / "l.png")), "rb").read(4) == b"\x89PNG"
    fig = curves_figure({"epoch": [2, 3], "test_accuracy": [0.5, 0.7]})
    assert _panels(fig) == [("accuracy", ["test"])]
    assert list(fig.axes[0].get_lines()[0].get_xdata()) == [2.0, 3.0]
    for nothing in ({}, {"epoch": [1, 2]}, {"train_loss": []},
                    {"train_loss": [math.nan], "train_accuracy": [math.nan]}):
        with pytest.raises(ValueError, match="nothing to draw.*'train_loss', 'test_loss', "
                                             "'train_accuracy', 'test_accuracy'"):
            plot_curves(nothing, str(tmp_path / "n.png"))
    assert not (tmp_path / "n.png").exists()
    with pytest.raises(ValueError, match=r"metrics\['test_loss'\] has 2 entries, 'epoch' 3"):
        curves_figure({"epoch": [1, 2, 3], "train_loss": [1, 2, 3], "test_loss": [1, 2]})
    with pytest.raises(ValueError, match=r"metrics\['train_loss'\] must be a list of numbers"):
        curves_figure({"train_loss": "high"})
    with pytest.raises(TypeError, match="metrics must be a dict"):
        curves_figure([1.0, 0.5])


def test_the_model_description_names_batchnorm_and_dropout(tmp_path):
    """The plot title and the metrics' "model" said 'MLP 784-128-64-10 (tanh)' with or
    without --batchnorm and --dropout."""
    import json
    for flags, want in (([], "MLP 64-8-10 (tanh)"),
                        (["--batchnorm", "--dropout", "0.25"],
                         "MLP 64-8-10 (tanh, BatchNorm, dropout 0.25)")):
        result = run_cli("train", "--dataset", "digits", "--hidden", "8", "--activation",
                         "tanh", "--max-steps", "2", "--no-progress", "--metrics",
                         str(tmp_path / "m.json"), *flags)
        assert result.returncode == 0, result.stderr
        assert json.loads((tmp_path / "m.json").read_text())["model"] == want


def test_a_closed_pipe_ends_quietly():
    """``python -m fastnn train ... | head -1``: no BrokenPipeError traceback, status 141."""
    env = dict(os.environ, FASTNN_BACKEND="numpy")
    proc = subprocess.Popen([sys.executable, "-m", "fastnn", "train", "--dataset", "digits",
                             "--hidden", "8", "--epochs", "30", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.readline()
    proc.stdout.close()   # the reader goes away
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 141, err
    assert b"Traceback" not in err and b"BrokenPipeError" not in err


# ------------------------------------------------------------------ --resume, --dtype
CPU_BACKENDS = [b for b in fastnn.backends() if b != "cuda"]
TRAIN = ["train", "--dataset", "digits", "--no-progress", "--threads", "1"]


def _train(*argv):
    status = cli.main([*TRAIN, *argv])
    assert status == 0


def _arrays(path):
    """A checkpoint's model and optimizer arrays (fastnn.io's layout), by name."""
    from fastnn.io import read_checkpoint
    return {k: v for k, v in read_checkpoint(path)[1].items()
            if k.startswith(("model/", "optimizer/"))}


def _assert_same_run(full, resumed):
    """Two checkpoints whose model and optimizer arrays are equal bit for bit."""
    a, b = _arrays(full), _arrays(resumed)
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _curves(metrics_path):
    curves = json.loads(metrics_path.read_text())["curves"]
    return {k: v for k, v in curves.items() if k != "seconds_per_epoch"}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_resume_continues_a_run_bit_for_bit(tmp_path, capsys, backend, dtype):
    """train 8 steps, --save, --resume to 14 (the first part stops inside epoch 2 of six
    batches): the same parameters, BatchNorm statistics, Adam moments and metrics as 14
    steps in one run (the batches' order and the dropout masks continue)."""
    options = ["--hidden", "16", "--batchnorm", "--dropout", "0.2", "--optimizer", "adam",
               "--batch-size", "256", "--backend", backend, "--dtype", dtype]
    _train(*options, "--max-steps", "14", "--save", str(tmp_path / "full.npz"),
           "--metrics", str(tmp_path / "full.json"))
    _train(*options, "--max-steps", "8", "--save", str(tmp_path / "part.npz"))
    # the options left out are the checkpoint's (model, optimizer, dtype, batch size...)
    _train("--resume", str(tmp_path / "part.npz"), "--backend", backend, "--max-steps", "14",
           "--save", str(tmp_path / "resumed.npz"), "--metrics", str(tmp_path / "res.json"),
           "--plot", str(tmp_path / "res.png"))
    out = capsys.readouterr().out
    assert "resuming" in out and "after step 8 (epoch 2, in part)" in out
    _assert_same_run(tmp_path / "full.npz", tmp_path / "resumed.npz")
    assert _arrays(tmp_path / "resumed.npz")["model/0.weight"].dtype == dtype
    # the metrics continue the first part's: epoch 2's numbers over all its batches
    assert _curves(tmp_path / "res.json") == _curves(tmp_path / "full.json")
    metrics = json.loads((tmp_path / "res.json").read_text())
    assert metrics["steps"] == 14 and metrics["config"]["dtype"] == dtype
    assert metrics["config"]["hidden"] == [16] and metrics["config"]["optimizer"] == "adam"
    assert (tmp_path / "res.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("model,optimizer,split", [
    ("cnn", "nadam", "--max-steps"), ("convnet", "asgd", "--max-steps"),
    ("mlp", "sgd", "--epochs")])
def test_resume_bit_for_bit_with_every_model(tmp_path, model, optimizer, split):
    """Resuming inside an epoch (--max-steps 2 of 4) or at its end (--epochs 1 of 2); in
    float64 NAdam's and ASGD's float32-rounded scalar state goes on rounding as in one
    run (loading casts it to float64, as PyTorch's load_state_dict does)."""
    options = ["--model", model, "--optimizer", optimizer, "--backend", "numpy",
               "--dtype", "float64", "--batch-size", "64" if split == "--max-steps" else "512"]
    if model == "convnet":
        options += ["--width", "0.125"]
    total, part = ("4", "2") if split == "--max-steps" else ("2", "1")
    _train(*options, split, total, "--save", str(tmp_path / "full.npz"))
    _train(*options, split, part, "--save", str(tmp_path / "part.npz"))
    _train(*options, "--resume", str(tmp_path / "part.npz"), split, total,
           "--save", str(tmp_path / "resumed.npz"))
    _assert_same_run(tmp_path / "full.npz", tmp_path / "resumed.npz")


@pytest.mark.parametrize("model", ["mlp", "cnn", "convnet"])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_dtype_float64_trains_and_saves_float64(tmp_path, backend, model):
    options = ["--model", model, "--backend", backend, "--max-steps", "2", "--batch-size",
               "64"]
    if model == "convnet":
        options += ["--width", "0.125"]
    _train(*options, "--dtype", "float64", "--save", str(tmp_path / "m.npz"),
           "--metrics", str(tmp_path / "m.json"))
    arrays = _arrays(tmp_path / "m.npz")
    assert {a.dtype for a in arrays.values() if a.dtype.kind == "f" and a.ndim} == {
        np.dtype(np.float64)}
    assert any(k.startswith("optimizer/") for k in arrays)   # (SGD's momentum buffers)
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["config"]["dtype"] == "float64" and math.isfinite(metrics["test_loss"])
    loaded = fastnn.load(tmp_path / "m.npz")   # rebuilt in float64
    assert {p.data.dtype for p in loaded.parameters()} == {np.dtype(np.float64)}
    # the same training as in float32, up to float32's rounding
    _train(*options, "--save", str(tmp_path / "m32.npz"))
    for key, value in _arrays(tmp_path / "m32.npz").items():
        assert value.dtype != np.float64
        np.testing.assert_allclose(value, arrays[key], rtol=1e-3, atol=1e-4, err_msg=key)


def test_resume_changes_the_learning_rate_when_given(tmp_path):
    _train("--hidden", "8", "--max-steps", "3", "--backend", "numpy",
           "--save", str(tmp_path / "a.npz"))
    _train("--resume", str(tmp_path / "a.npz"), "--max-steps", "5", "--lr", "0.01",
           "--metrics", str(tmp_path / "m.json"), "--save", str(tmp_path / "b.npz"))
    config = json.loads((tmp_path / "m.json").read_text())["config"]
    assert config["lr"] == 0.01 and config["momentum"] == 0.9 and config["hidden"] == [8]
    from fastnn.io import read_metadata
    assert read_metadata(tmp_path / "b.npz")["optimizer"]["param_groups"][0]["lr"] == 0.01


def test_resume_takes_the_checkpoints_backend_and_threads_when_left_out(tmp_path, capsys,
                                                                      monkeypatch):
    """A run trained with --backend cuda resumed without --backend went on on the default
    (CPU) backend, though options left out are the checkpoint's: no longer the same run
    bit for bit, and off the GPU. Now the checkpoint's --backend and --threads; one the
    machine lacks is refused by name (status 2), and a given one is kept."""
    first = "numpy"
    other = next(b for b in CPU_BACKENDS if b != first) if len(CPU_BACKENDS) > 1 else None
    options = ["--hidden", "8", "--batch-size", "256", "--backend", first]
    _train(*options, "--max-steps", "5", "--save", str(tmp_path / "full.npz"))
    _train(*options, "--max-steps", "3", "--save", str(tmp_path / "part.npz"))
    if other is not None:
        fastnn.set_backend(other)   # the default the resumed run would otherwise take
    capsys.readouterr()
    assert cli.main(["train", "--dataset", "digits", "--no-progress",   # (no --threads)
                     "--resume", str(tmp_path / "part.npz"), "--max-steps", "5",
                     "--save", str(tmp_path / "resumed.npz"),
                     "--metrics", str(tmp_path / "m.json")]) == 0
    assert f"backend {first}, 1 thread\n" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["backend"] == first and metrics["config"]["backend"] == first
    assert metrics["threads"] == 1 and metrics["config"]["threads"] == 1
    _assert_same_run(tmp_path / "full.npz", tmp_path / "resumed.npz")
    if other is not None:   # given, another backend goes
        _train("--resume", str(tmp_path / "part.npz"), "--max-steps", "4", "--backend", other,
               "--metrics", str(tmp_path / "m2.json"))
        assert json.loads((tmp_path / "m2.json").read_text())["backend"] == other
    monkeypatch.setattr(fastnn, "backends", lambda: [b for b in CPU_BACKENDS if b != first])
    assert cli.main(["train", "--dataset", "digits", "--no-progress", "--resume",
                     str(tmp_path / "part.npz"), "--max-steps", "5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --resume {tmp_path / 'part.npz'}: the checkpoint's run "
                          f"used --backend {first}, which is not available here")
    assert "give --backend" in err and err.count("\n") == 1


@pytest.mark.skipif(len(CPU_BACKENDS) < 2, reason="needs two CPU backends")
def test_a_run_on_the_default_backend_resumes_on_it(tmp_path, capsys):
    """A run whose backend was not given (FASTNN_BACKEND's, or the default) recorded
    backend None, so a resume in a shell with another default went on on that one: not
    the run bit for bit. The checkpoint now names the backend used, which --resume takes."""
    first, other = CPU_BACKENDS[-1], CPU_BACKENDS[0]
    backend = fastnn.get_backend()
    try:
        fastnn.set_backend(first)   # as FASTNN_BACKEND=first would (no --backend given)
        _train("--hidden", "8", "--batch-size", "256", "--max-steps", "3",
               "--save", str(tmp_path / "part.npz"))
        fastnn.set_backend(other)   # the resuming shell's default
        capsys.readouterr()
        _train("--resume", str(tmp_path / "part.npz"), "--max-steps", "5",
               "--metrics", str(tmp_path / "m.json"))
    finally:
        fastnn.set_backend(backend)
    assert f"backend {first}, " in capsys.readouterr().out
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["backend"] == first and metrics["config"]["backend"] == first


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A checkpoint of `train --hidden 8 --max-steps 3` on the digits."""
    path = tmp_path_factory.mktemp("resume") / "run.npz"
    backend = fastnn.get_backend()
    try:
        _train("--hidden", "8", "--max-steps", "3", "--backend", "numpy", "--save", str(path))
    finally:
        fastnn.set_backend(backend)
    return path


@pytest.mark.parametrize("argv,status,message", [
    (["--hidden", "16"], 2, "this run asks --hidden 16 (the checkpoint's: 8)"),
    (["--model", "cnn"], 2, "--model cnn (the checkpoint's: mlp)"),
    (["--dtype", "float64"], 2, "--dtype float64 (the checkpoint's: float32)"),
    (["--batch-size", "64"], 2, "--batch-size 64 (the checkpoint's: 128)"),
    (["--neg-slope", "0.1"], 2, "--activation leaky_relu (as --neg-slope implies)"),
    (["--max-steps", "3"], 2, "nothing left to train; ask for more (--max-steps above 3)"),
    (["--optimizer", "adam"], 2, "--optimizer adam (the checkpoint's: sgd)"),
])
def test_resume_refuses_options_the_checkpoint_contradicts(saved_run, capsys, argv, status,
                                                           message):
    assert cli.main([*TRAIN, "--resume", str(saved_run), *argv]) == status
    err = capsys.readouterr().err
    assert err.startswith("error: --resume") and message in err and err.count("\n") == 1


def _edited_record(run, path, **changes):
    """run's checkpoint saved again to path with entries of its training record changed."""
    from fastnn.io import load_checkpoint
    model = fastnn.load(run)
    opt = fastnn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    extra = load_checkpoint(run, model=model, optimizer=opt).extra
    for key, entries in changes.items():
        extra[key] = {**extra[key], **entries}
    fastnn.save(model, path, optimizer=opt, extra=extra)


@pytest.mark.parametrize("make,status,message", [
    (lambda path, run: None, 1, "no such file"),
    (lambda path, run: path.write_bytes(run.read_bytes()[:300]), 1,
     "is not a fastnn checkpoint"),
    (lambda path, run: path.write_text("not a checkpoint"), 1, "is not a fastnn checkpoint"),
    # a model saved by fastnn.save, and a --save checkpoint of a version before --resume
    (lambda path, run: fastnn.save(fastnn.models.MLP(64, [8], 10), path), 1,
     "holds no training state"),
    (lambda path, run: fastnn.save(fastnn.load(run), path, extra={"config": {"hidden": [8]}}),
     1, "holds no training state"),
    (lambda path, run: path.mkdir(), 2, "--resume expects a checkpoint file"),
    # a training record edited or damaged: its counters, or its curves
    (lambda path, run: _edited_record(run, path, train_state={"step": -1}), 1,
     "inconsistent train_state counters"),
    (lambda path, run: _edited_record(run, path, history={"train_loss": 0.5}), 1,
     "'train_loss' must be a list"),
])
def test_resume_refuses_files_it_cannot_continue(tmp_path, saved_run, capsys, make, status,
                                                 message):
    path = tmp_path / "c.npz"
    make(path, saved_run)
    assert cli.main([*TRAIN, "--resume", str(path), "--epochs", "2"]) == status
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_an_old_checkpoint_still_loads_and_a_new_one_keeps_its_training_record(saved_run):
    """--save's training record rides in the checkpoint's extra: fastnn.load and
    load_checkpoint read the file as before."""
    from fastnn.io import load_checkpoint
    model = fastnn.load(saved_run)
    assert next(iter(model.parameters())).shape == (8, 64)
    extra = load_checkpoint(saved_run).extra
    assert extra["config"]["hidden"] == [8] and extra["train_state"]["step"] == 3
    assert extra["history"]["epoch"] == [1]


def test_other_commands_keep_a_plain_seed_option(saved_run, tmp_path):
    """train notes which options were given (for --resume); the commands sharing its
    --seed option do not, and their metrics JSON (config included) is written."""
    metrics = tmp_path / "m.json"
    assert cli.main(["dream", "--checkpoint", str(saved_run), "--target-class", "1",
                     "--steps", "1", "--seed", "1", "--no-progress", "--backend", "numpy",
                     "--out", str(tmp_path / "d.png"), "--metrics", str(metrics)]) == 0
    config = json.loads(metrics.read_text())["config"]
    assert config["seed"] == 1 and "given_options" not in config


@pytest.mark.parametrize("command", ["train", "demo", "multitask", "vae", "dream"])
def test_help_shows_every_default(command, capsys):
    """--help showed no default for 30 options (dream --steps 300, vae --epochs 30,
    multitask --epochs 5, demo --epochs 20, train --batch-size 128...): only the source
    said them."""
    import argparse
    parser = cli.build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for action in sub.choices[command]._actions:
        if (not action.option_strings or action.default is None or action.default is False
                or action.default is argparse.SUPPRESS):
            continue
        shown = (",".join(map(str, action.default)) if isinstance(action.default, list)
                 else str(action.default))
        if not action.help or shown not in action.help or "default" not in action.help:
            missing.append((action.option_strings[0], action.default, action.help))
    assert missing == []
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    expected = {"train": "--batch-size BATCH_SIZE (default: 128)",
                "demo": "--epochs EPOCHS (default: 20)",
                "multitask": "--epochs EPOCHS (default: 5)",
                "vae": "--epochs EPOCHS (default: 30; images: 10)",
                "dream": "--steps STEPS (default: 300)"}[command]
    assert expected in text


def test_a_last_update_that_blows_up_is_divergence_and_keeps_the_checkpoint(tmp_path):
    # the loss is checked before each update, so the last update's NaN weights went
    # unseen: the run exited 0 and saved them over a good checkpoint
    good = tmp_path / "good.npz"
    base = ("train", "--dataset", "digits", "--hidden", "8", "--no-progress",
            "--max-steps", "1")
    assert run_cli(*base, "--save", str(good)).returncode == 0
    before = good.read_bytes()
    result = run_cli(*base, "--lr", "1e40", "--save", str(good),
                     "--metrics", str(tmp_path / "m.json"))
    assert result.returncode == 1, result.stdout
    assert "training diverged" in result.stderr and "last step" in result.stderr
    assert good.read_bytes() == before and not (tmp_path / "m.json").exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_failed_output_after_the_run_is_one_line_and_keeps_the_checkpoint(tmp_path):
    # a full disk on --metrics or --plot was a traceback, and as they were written
    # before --save, the trained model was lost
    for flag in ("--metrics", "--plot"):
        ck = tmp_path / f"ck{flag}.npz"
        result = run_cli("train", "--dataset", "digits", "--hidden", "8", "--no-progress",
                         "--max-steps", "2", "--save", str(ck), flag, "/dev/full")
        assert result.returncode == 1
        assert result.stderr.strip().startswith("error:") and "Traceback" not in result.stderr
        assert "No space left" in result.stderr and ck.exists()


def test_outputs_naming_one_file_are_refused_before_training(tmp_path):
    # --metrics over --resume's checkpoint replaced the only checkpoint with JSON
    ck = tmp_path / "ck.npz"
    assert run_cli("train", "--dataset", "digits", "--hidden", "8", "--no-progress",
                   "--max-steps", "1", "--save", str(ck)).returncode == 0
    before = ck.read_bytes()
    for args in (("--resume", str(ck), "--metrics", str(ck)),
                 ("--save", str(ck), "--plot", str(ck)),
                 ("--metrics", str(tmp_path / "m"), "--plot", str(tmp_path / "m"))):
        result = run_cli("train", "--dataset", "digits", "--hidden", "8", "--no-progress",
                         "--max-steps", "1", *args)
        assert result.returncode == 2 and "name the same file" in result.stderr
    assert ck.read_bytes() == before


def test_json_and_pictures_are_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    # --metrics used a fixed '<path>.tmp' left behind by a failed write; --plot wrote in
    # place, so a failed write left a truncated picture
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from fastnn.plotting import save_figure
    picture = tmp_path / "p.png"
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    save_figure(fig, picture)
    before = picture.read_bytes()

    def full(f, **kwargs):
        f.write(b"partial")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(fig, "savefig", full)
    with pytest.raises(OSError):
        save_figure(fig, picture)
    assert picture.read_bytes() == before and os.listdir(tmp_path) == ["p.png"]
    target = tmp_path / "m.json"
    cli._write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        cli._write_json(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(os.listdir(tmp_path)) == ["m.json", "p.png"]


# ------------------------------------------------------------------------------ Ctrl-C
# SIGINT sent from inside a CLI run at a known moment: when the n-th call of a function
# returns (Python sees a Ctrl-C that comes during a native kernel once it returns). The
# run takes Python's default handler, a terminal's: a suite started with SIGINT ignored
# (`make test &` in a script, nohup) passed SIG_IGN on, and the Ctrl-C never came.
_INTERRUPTED_RUN = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
import numpy as np
import fastnn
from fastnn import backend, cli, train
def sigint_at(module, name, n, before=None):
    original, calls = getattr(module, name), []
    def call(*args, **kwargs):
        if before is not None:
            before(*args)
        out = original(*args, **kwargs)
        calls.append(None)
        if len(calls) == n:
            os.kill(os.getpid(), signal.SIGINT)
        return out
    setattr(module, name, call)
{hooks}
sys.exit(cli.main({argv!r}))
"""
INTERRUPTIBLE = ["train", "--dataset", "digits", "--hidden", "16", "--batchnorm", "--dropout",
                 "0.2", "--optimizer", "adam", "--batch-size", "256", "--no-progress",
                 "--backend", "numpy", "--threads", "1"]


def run_interrupted(hooks, *argv):
    """The CLI with argv in a subprocess, after hooks (calls of sigint_at)."""
    from subprocess_helpers import run_python
    return run_python(_INTERRUPTED_RUN.format(hooks=hooks, argv=list(argv)))


@pytest.mark.parametrize("hook,stopped", [
    # Adam's 5th update: the checkpoint of step 5, inside epoch 1 (of 6 batches)
    ("sigint_at(backend.load('numpy'), 'adam_update', 5)",
     "during step 6 (epoch 1): the checkpoint of step 5"),
    # the 4th update, which eval-freq 4 evaluates after: that evaluation is made on resume
    ("sigint_at(backend.load('numpy'), 'adam_update', 4)",
     "during the evaluation after step 4 (epoch 1): the checkpoint of step 4"),
    # epoch 1's evaluation (after step 4's): made on resume, all 6 batches skipped
    ("sigint_at(train, 'evaluate', 2)",
     "during the evaluation after step 6 (epoch 1): the checkpoint of step 6"),
])
def test_ctrl_c_saves_the_last_whole_step_which_resumes_as_one_run(tmp_path, hook, stopped):
    """Ctrl-C was a KeyboardInterrupt traceback and wrote no checkpoint (--save wrote at
    the end only). Now one line, status 130, and --save's checkpoint of the last whole
    step, whose --resume gives the uninterrupted run's parameters and curves."""
    plan = ["--epochs", "2", "--eval-freq", "4"]
    _train(*INTERRUPTIBLE[1:], *plan, "--save", str(tmp_path / "full.npz"),
           "--metrics", str(tmp_path / "full.json"))
    result = run_interrupted(hook, *INTERRUPTIBLE, *plan, "--save", str(tmp_path / "ck.npz"))
    assert result.returncode == 130, result.stderr
    assert result.stderr == (f"interrupted {stopped} written to {tmp_path / 'ck.npz'}; "
                             f"--resume {tmp_path / 'ck.npz'} --epochs 2 --eval-freq 4 "
                             f"goes on\n")
    assert sorted(os.listdir(tmp_path)) == ["ck.npz", "full.json", "full.npz"]
    _train("--resume", str(tmp_path / "ck.npz"), *plan, "--save", str(tmp_path / "ck.npz"),
           "--metrics", str(tmp_path / "resumed.json"))
    _assert_same_run(tmp_path / "full.npz", tmp_path / "ck.npz")
    assert _curves(tmp_path / "resumed.json") == _curves(tmp_path / "full.json")
    steps = [json.loads((tmp_path / f).read_text())["step_curve"]
             for f in ("full.json", "resumed.json")]
    assert steps[0] == steps[1] and steps[0]["step"] == [4, 8, 12]


def test_ctrl_c_without_save_and_a_second_one_while_saving(tmp_path):
    """Without --save, one line; a second Ctrl-C while the checkpoint is written leaves
    the file that was there whole (and no temporary file)."""
    result = run_interrupted("sigint_at(backend.load('numpy'), 'adam_update', 2)",
                             *INTERRUPTIBLE, "--epochs", "2")
    assert result.returncode == 130
    assert result.stderr == "interrupted during step 3 (epoch 1); nothing saved (no --save)\n"
    ck = tmp_path / "ck.npz"
    _train(*INTERRUPTIBLE[1:], "--max-steps", "1", "--save", str(ck))
    before = ck.read_bytes()

    hooks = ("sigint_at(backend.load('numpy'), 'adam_update', 2)\n"
             "sigint_at(np, 'savez', 1, before=lambda f: f.write(b'partial'))")
    result = run_interrupted(hooks, *INTERRUPTIBLE, "--epochs", "2", "--save", str(ck))
    assert result.returncode == 130
    assert result.stderr == (f"interrupted during step 3 (epoch 1), and again while {ck} "
                             f"was written: not written (a file there is left as it was)\n")
    assert ck.read_bytes() == before and os.listdir(tmp_path) == ["ck.npz"]


def test_resume_takes_no_display_or_output_option_from_the_checkpoint(tmp_path, capsys):
    """--resume takes the training options left out from the checkpoint; --no-progress
    and the outputs are this run's: the bars show unless it says --no-progress (its
    first run's did), and only the files it names are written (not the first run's
    --save, --metrics or --plot again)."""
    first = [str(tmp_path / name) for name in ("a.npz", "a.json", "a.png")]
    assert cli.main(["train", "--dataset", "digits", "--hidden", "8", "--backend", "numpy",
                     "--max-steps", "2", "--no-progress", "--save", first[0],
                     "--metrics", first[1], "--plot", first[2]]) == 0
    written = {path: os.stat(path).st_mtime_ns for path in first}
    capsys.readouterr()
    assert cli.main(["train", "--resume", first[0], "--max-steps", "4"]) == 0
    assert "epoch 1/1:" in capsys.readouterr().err   # (tqdm's bar)
    assert cli.main(["train", "--resume", first[0], "--max-steps", "4", "--no-progress",
                     "--metrics", str(tmp_path / "b.json")]) == 0
    assert capsys.readouterr().err == ""
    assert {path: os.stat(path).st_mtime_ns for path in first} == written
    assert sorted(os.listdir(tmp_path)) == ["a.json", "a.npz", "a.png", "b.json"]
    config = json.loads((tmp_path / "b.json").read_text())["config"]
    assert config["no_progress"] and config["metrics"] == str(tmp_path / "b.json")
    assert config["save"] is None and config["plot"] is None


def test_a_second_ctrl_c_before_training_stops_saves_nothing(tmp_path):
    """A Ctrl-C during an update waits for the step's end; a second one before then stops
    at once (fit's way out of an output that blocks): the line `interrupted`, status
    130, and no checkpoint (the model may be amid an update)."""
    hooks = ("sigint_at(backend.load('numpy'), 'adam_update', 2)\n"   # (held)
             "sigint_at(train._StepUndo, 'save', 3)")   # (step 3's, before its window)
    result = run_interrupted(hooks, *INTERRUPTIBLE, "--epochs", "2", "--save",
                             str(tmp_path / "ck.npz"))
    assert result.returncode == 130
    assert result.stderr == "interrupted\n"
    assert os.listdir(tmp_path) == []


def test_ctrl_c_after_the_last_step_offers_no_resume(tmp_path):
    """A Ctrl-C after the run's last evaluation (during its last line) saves the
    checkpoint of the last step, the finished run's; the line had offered `--resume ...
    --epochs 2 goes on`, which answers that nothing is left to train."""
    full, ck = tmp_path / "full.npz", tmp_path / "ck.npz"
    _train(*INTERRUPTIBLE[1:], "--epochs", "2", "--save", str(full))
    result = run_interrupted("sigint_at(train, '_write', 2)",   # (epoch 2's line)
                             *INTERRUPTIBLE, "--epochs", "2", "--save", str(ck))
    assert result.returncode == 130
    assert result.stderr == (f"interrupted during the end of the run (epoch 2): the "
                             f"checkpoint of step 12, the run's last, written to {ck}\n")
    _assert_same_run(full, ck)


def test_a_resumed_run_stopped_before_its_first_update_still_saves(tmp_path):
    """A --resume'd run interrupted in the evaluation the checkpoint owed (before any
    update) wrote nothing ("before this run's first update: F not written"), though the
    line asked for --save F; it now writes the state it resumed, which goes on as the
    uninterrupted run."""
    plan = ["--epochs", "2", "--eval-freq", "4"]
    full, first, second = (tmp_path / name for name in ("full.npz", "a.npz", "b.npz"))
    _train(*INTERRUPTIBLE[1:], *plan, "--save", str(full))
    result = run_interrupted("sigint_at(backend.load('numpy'), 'adam_update', 4)",
                             *INTERRUPTIBLE, *plan, "--save", str(first))
    assert result.returncode == 130, result.stderr
    result = run_interrupted("sigint_at(train, 'evaluate', 1)", "train", "--resume",
                             str(first), *plan, "--save", str(second), "--no-progress")
    assert result.returncode == 130, result.stderr
    assert result.stderr == (f"interrupted during the evaluation after step 4 (epoch 1): "
                             f"the checkpoint of step 4 written to {second}; --resume "
                             f"{second} --epochs 2 --eval-freq 4 goes on\n")
    _train("--resume", str(second), *plan, "--save", str(second))
    _assert_same_run(full, second)
