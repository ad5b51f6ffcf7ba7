"""README.md read as text and held to the code: every `train` flag and default its table
gives, every FASTNN_* variable it names, every repository path it points to and every
dotted public name it writes (`nn.Foo`, `fastnn.bar`, `F.baz`, ...) exist as written,
and each command's --help says what README says (the help of --download named only
~/.cache/fastnn, which --data-root replaces; that of --plot named only PNG). Also the
names README now documents: fastnn.get_backend, fastnn.gradcheck, fastnn.data's
per-dataset loaders and readers, fastnn.random's state."""
import argparse
import importlib
import inspect
import os
import re

import numpy as np
import pytest

import fastnn
from fastnn import cli, data, nn, ops, optim

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as _f:
    README = _f.read()
PROSE = re.sub(r"```.*?```", "", README, flags=re.S)   # inline code outside the blocks
SPANS = [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", PROSE)]


def _parser(command):
    parser = cli.build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def _options(command):
    return {opt: action for action in _parser(command)._actions
            for opt in action.option_strings}


def _train_table():
    start = README.index("`train` flags (defaults in brackets):")
    rows = README[start:README.index("\n\n", README.index("| flag |", start))]
    return [line for line in rows.splitlines() if line.startswith("| `--")]


def test_every_flag_of_the_train_table_and_course_names_is_an_option():
    options = _options("train")
    named = set()
    for row in _train_table():
        named.update(re.findall(r"`(--[a-z][a-z-]*)", row.split("|")[1]))
    para = README[README.index("The classic course flag names work too"):]
    para = para[:para.index("\n\n")]
    named.update(re.findall(r"`(--[a-z][a-z_-]*)", para))
    assert len(named) > 30
    missing = sorted(flag for flag in named if flag not in options
                     and flag.replace("_", "-") not in options)
    assert not missing


@pytest.mark.parametrize("flag, readme, dest, value", [
    ("--model", "[mlp]", "model", "mlp"),
    ("--dataset", "`fashion-mnist` [default]", "dataset", "fashion-mnist"),
    ("--hidden", "[100]", "hidden", [100]),
    ("--dropout", "dropout probability [0]", "dropout", 0.0),
    ("--dtype", "[float32]", "dtype", "float32"),
    ("--optimizer", "| [sgd];", "optimizer", "sgd"),
    ("--weight-decay", "L2 weight decay [0]", "weight_decay", 0.0),
    ("--lr-schedule", "[constant]", "lr_schedule", "constant"),
    ("--batch-size", "[128], [10]", "batch_size", 128),
    ("--seed", "dropout [0]", "seed", 0),
])
def test_train_defaults_as_the_table_gives(flag, readme, dest, value):
    row = next(r for r in _train_table() if f"`{flag}" in r.split("|")[1])
    assert readme in row
    assert getattr(_parser("train").parse_args([]), dest) == value


def test_train_defaults_resolved_at_run_time_as_the_table_gives():
    """--momentum [0.9], --epochs [10], --lr [0.1 for SGD]: filled in before the run."""
    rows = " ".join(_train_table())
    assert "SGD momentum [0.9]" in rows and "[128], [10]" in rows and "[0.1 for SGD" in rows
    args = _parser("train").parse_args([])
    cli._check_train_args(args)
    assert (args.momentum, args.epochs, args.lr) == (0.9, 10, 0.1)
    assert "[10] (with `--max-steps` alone: as many epochs as its steps take)" in rows
    args = _parser("train").parse_args(["--max-steps", "500"])
    cli._check_train_args(args)
    assert args.epochs is None   # not 10: the run takes the epochs 500 steps need


@pytest.mark.parametrize("command", ["train", "multitask", "vae"])
def test_download_help_names_the_data_root(command):
    help_text = " ".join(_options(command)["--download"].help.split())
    assert "--data-root" in help_text and "~/.cache/fastnn" in help_text
    assert "into `root=` when given, else `~/.cache/fastnn/<name>`" in " ".join(README.split())


def test_plot_help_names_the_formats_readme_gives():
    help_text = " ".join(_options("train")["--plot"].help.split())
    assert "PNG" in help_text and ".svg" in help_text and ".pdf" in help_text
    assert "(PNG, or SVG, PDF, JPEG... when F's extension names one)" in README


def test_every_command_takes_the_options_readme_gives_it():
    assert {"--backend", "--threads", "--seed", "--no-progress", "--metrics"} \
        <= set(_options("multitask")) & set(_options("vae")) & set(_options("dream"))
    assert {"--data-root", "--download"} <= set(_options("multitask"))
    assert {"--checkpoint", "--target-class", "--out", "--scales", "--steps"} \
        <= set(_options("dream"))
    assert _options("vae")["--distribution"].choices == ["moons", "ring"]
    assert {"--epochs", "--backend", "--threads", "--out"} <= set(_options("demo"))
    assert _parser("demo").parse_args([]).epochs == 20
    assert {"--quick", "-k", "--threads"} <= set(_options("bench"))


def test_vae_defaults_and_likelihood_as_readme_gives():
    from fastnn.experiments import vae
    text = " ".join(README.split())
    assert ("With `--dataset` the defaults are those of the run below, `--hidden 512,256 "
            "--epochs 10 --lr 1e-3 --kl-warmup 0` (2-D data: `--hidden 64,64 --epochs 30 "
            "--lr 2e-3 --kl-warmup 5`), `--latent-dim` 2 for both") in text
    assert "`--likelihood gaussian|bernoulli`" in text
    assert "`error: --likelihood bernoulli needs data in [0, 1]; ...`" in text
    for argv, expected in ((["--dataset", "fashion-mnist"], ([512, 256], 10, 1e-3, 0, 2)),
                           ([], ([64, 64], 30, 2e-3, 5, 2))):
        args = vae.resolve_defaults(_parser("vae").parse_args(argv))
        assert (args.hidden, args.epochs, args.lr, args.kl_warmup,
                args.latent_dim) == expected
    assert _options("vae")["--likelihood"].choices == ("gaussian", "bernoulli")


def _source_text():
    chunks = []
    for top in ("fastnn", "kernels", "bench"):   # (bench/: the suite's FASTNN_BENCH_*)
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if name.endswith((".py", ".pyx", ".pxd", ".h")):
                    with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                        chunks.append(f.read())
    with open(os.path.join(ROOT, "setup.py"), encoding="utf-8") as f:
        chunks.append(f.read())
    return "\n".join(chunks)


def test_every_environment_variable_readme_names_is_read():
    names = set(re.findall(r"FASTNN_[A-Z0-9_]*[A-Z0-9]", README))
    assert len(names) >= 10
    source = _source_text()
    unread = sorted(n for n in names
                    if not re.search(r"environ(?:\.get)?\s*[\[(]\s*['\"]" + n, source)
                    and not re.search(r"\b\w+\s*=\s*['\"]" + n + "['\"]", source)
                    and f'getenv("{n}"' not in source)
    assert not unread


def test_every_repository_path_readme_names_exists():
    paths = set(re.findall(r"(?<![\w/.~])((?:fastnn|kernels|bench|tests|docs)/[\w./-]*\w)",
                           README))
    assert len(paths) > 40
    # written by `fastnn bench -k`, and Numba's disk cache in a checkout (made by the
    # first compile: absent in a fresh clone until then); both git-ignored
    generated = {"bench/results/subset", "kernels/numba_cpu/__pycache__"}
    missing = sorted(p for p in paths - generated if not os.path.exists(os.path.join(ROOT, p))
                     and not _is_attribute_path(p))
    assert not missing


def _is_attribute_path(path):
    """`kernels/scratch.thread_stride`: a module's attribute, written as a path."""
    module, _, attr = path.rpartition(".")
    if not attr.isidentifier() or not os.path.exists(os.path.join(ROOT, module + ".py")):
        return False
    with open(os.path.join(ROOT, module + ".py"), encoding="utf-8") as f:
        return re.search(rf"^def {attr}\b", f.read(), re.M) is not None


ROOTS = {"fastnn": fastnn, "nn": nn, "optim": optim, "ops": ops, "data": data,
         "F": nn.functional, "models": fastnn.models}


def _resolve(name):
    parts = name.split(".")
    obj = ROOTS[parts[0]]
    for part in parts[1:]:
        if hasattr(obj, part):
            obj = getattr(obj, part)
        elif inspect.ismodule(obj):
            obj = importlib.import_module(f"{obj.__name__}.{part}")
        else:
            raise AttributeError(f"{name}: no {part}")
    return obj


def test_every_dotted_public_name_readme_writes_exists():
    # (not after a dot: p.data.fill_ is an attribute of a PyTorch parameter's data)
    pattern = re.compile(r"(?<![\w.])((?:fastnn|nn|optim|ops|data|F|models)(?:\.[A-Za-z_]\w*)+)")
    names = {n for span in SPANS for n in pattern.findall(span)}
    assert len(names) > 150
    missing = []
    for name in sorted(names):
        try:
            _resolve(name)
        except (AttributeError, ImportError):
            missing.append(name)
    assert not missing


def test_names_readme_now_documents():
    for text in ("fastnn.get_backend()", "fastnn.gradcheck(module, x)", "GradcheckError",
                 "fastnn.data.DATASETS", "read_idx(path)", "parse_idx(raw)",
                 "read_batch(path)", "CIFARError", "fastnn.random.get_state()",
                 "nn.Sine(omega=1.0)", "ops.__all__"):
        assert text in README
    with fastnn.use_backend("numpy"):
        assert fastnn.get_backend() == "numpy"
    layer = nn.Linear(3, 2, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((4, 3))
    assert fastnn.gradcheck(layer, x) is True
    assert fastnn.gradcheck(nn.CrossEntropyLoss(), (x, np.array([0, 1, 2, 0]))) is True
    assert data.DATASETS["digits"] is data.load_digits
    assert {"root", "download", "flatten", "dtype"} <= set(
        inspect.signature(data.load_mnist).parameters)
    assert list(inspect.signature(data.load_digits).parameters) == [
        "flatten", "seed", "test_fraction", "dtype"]
    assert issubclass(data.IDXError, ValueError) and issubclass(data.CIFARError, ValueError)
    with pytest.raises(data.IDXError):
        data.parse_idx(b"\x00\x00")
    state = fastnn.random.get_state()
    a = fastnn.random.generator().random(3)
    fastnn.random.set_state(state)
    assert np.array_equal(fastnn.random.generator().random(3), a)
    assert {"Sine", "Loss"} <= set(nn.__all__)
    assert list(inspect.signature(nn.Sine).parameters) == ["omega"]


def test_checkpoint_helpers_as_documented(tmp_path):
    """README, Checkpoints: load_checkpoint's signature and Checkpoint fields, and
    read_metadata reading a file's record without building the model."""
    assert "`fastnn.io.read_metadata(path)`" in README
    assert list(inspect.signature(fastnn.io.load_checkpoint).parameters) == [
        "path", "model", "optimizer", "restore_random"]
    model = fastnn.models.MLP(4, [3], 2)
    fastnn.save(model, tmp_path / "m.npz", optimizer=optim.SGD(model.parameters(), lr=0.1),
                extra={"epoch": 3})
    ckpt = fastnn.io.load_checkpoint(tmp_path / "m.npz")
    assert ckpt._fields == ("model", "optimizer", "extra", "format_version")
    assert ckpt.extra == {"epoch": 3}
    meta = fastnn.io.read_metadata(tmp_path / "m.npz")
    assert {"format_version", "model", "optimizer", "extra"} <= set(meta)
    assert meta["model"]["class"] == "MLP" and meta["extra"] == {"epoch": 3}


def test_multitask_loss_as_documented():
    """README, Multi-task network: MultiTaskLoss's forward and backward, which
    MultiTaskNet.backward takes."""
    assert "`fastnn.models.MultiTaskLoss`" in README
    net, loss = fastnn.models.MultiTaskNet(12, 8, 6, 3), fastnn.models.MultiTaskLoss()
    x = np.random.default_rng(0).random((4, 12)).astype(np.float32)
    a, logits = net.forward(x)
    total, regression, classification = loss.forward(a, logits, np.zeros_like(a),
                                                     np.array([0, 1, 2, 0]))
    assert total == pytest.approx(regression + classification)
    grad_a, grad_logits = loss.backward()
    assert net.backward(grad_a, grad_logits).shape == x.shape


def test_cuda_launch_geometry_defaults_as_documented():
    """README, On a GPU: the launch geometry's defaults and the variables that set them,
    read from kernels/cuda/config.py's source (importing it needs numba.cuda)."""
    with open(os.path.join(ROOT, "kernels", "cuda", "config.py"), encoding="utf-8") as f:
        source = f.read()
    defaults = dict(re.findall(r'os\.environ\.get\("(FASTNN_CUDA_\w+)", "?(\w+)"?\)', source))
    assert {k: defaults[k] for k in ("FASTNN_CUDA_THREADS", "FASTNN_CUDA_MAX_BLOCKS",
                                     "FASTNN_CUDA_BN_THREADS", "FASTNN_CUDA_ROW_LANES",
                                     "FASTNN_CUDA_TILE", "FASTNN_CUDA_GEMM_DIRECT")} == {
        "FASTNN_CUDA_THREADS": "256", "FASTNN_CUDA_MAX_BLOCKS": "4096",
        "FASTNN_CUDA_BN_THREADS": "1024", "FASTNN_CUDA_ROW_LANES": "32",
        "FASTNN_CUDA_TILE": "16", "FASTNN_CUDA_GEMM_DIRECT": "1"}
    text = " ".join(README.split())
    assert ("(256 threads a block, at most 4096 blocks, 1024 for BatchNorm, 32 lanes a "
            "softmax row, 16x16 GEMM tiles)") in text
    for name in defaults:
        assert name in README


def test_every_long_option_readme_writes_belongs_to_a_command():
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9_-]*)", README)) - {"--inplace"}
    assert len(flags) > 40                 # (--inplace: setup.py build_ext's)
    options = set()
    for command in cli.COMMANDS:
        options.update(_options(command))
    # python -m bench.report's, and pytest-benchmark's two that README says do not apply
    with open(os.path.join(ROOT, "bench", "report.py"), encoding="utf-8") as f:
        options.update(re.findall(r'add_argument\("(--[a-z][a-z-]*)"', f.read()))
    options.update({"--benchmark-min-rounds", "--benchmark-max-time"})
    assert not sorted(f for f in flags if f not in options
                      and f.replace("_", "-") not in options)


def test_dataloader_array_form_default_batch_size_as_documented():
    """README, Data: the array form's batch_size defaults to 32 (a dataset's to 1)."""
    assert "`fastnn.data.DataLoader(x, y, batch_size=32," in README
    assert "`DataLoader(dataset, batch_size=1," in " ".join(README.split())
    x = np.zeros((100, 2), np.float32)
    assert data.DataLoader(x, np.zeros(100)).batch_size == 32
    assert data.DataLoader(data.TensorDataset(x)).batch_size == 1


def test_fit_keyword_defaults_as_documented():
    """README, Ten lines: fit's keywords and defaults as it lists them."""
    text = " ".join(README.split())
    listed = re.search(r"its other keywords and their defaults: (.*?)\)\. `fit", text).group(1)
    documented = dict(re.findall(r"`(\w+)=([^`]+)`", listed))
    params = inspect.signature(fastnn.train.fit).parameters
    assert len(documented) == 8
    assert {k: repr(params[k].default) for k in documented} == documented


def test_fit_divergence_is_the_documented_exception():
    assert "`fastnn.train.TrainingDiverged`, a `RuntimeError` with `step`, `epoch` and " \
        "`loss`" in " ".join(README.split())
    model = fastnn.models.MLP(4, [3], 2)
    x = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
    with pytest.raises(RuntimeError) as info:
        fastnn.train.fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=1e30),
                         (x, np.zeros(20, np.int64)), epochs=3, progress=False, log=False)
    assert isinstance(info.value, fastnn.train.TrainingDiverged)
    assert info.value.step >= 1 and info.value.epoch >= 1 and not np.isfinite(info.value.loss)
