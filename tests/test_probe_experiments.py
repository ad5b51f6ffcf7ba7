"""The course experiments as a user runs them: `python -m fastnn multitask | vae | dream`
(flags, bad values, PNG and JSON outputs, seeds, backends), class visualisation of a
convolutional model against torch autograd, and the defects the probe fixed: dream's options
unchecked (a zero scale divided by zero, a negative clip reversed the ascent, a zero blur
sigma or a NaN lr gave a NaN image with exit 0, --steps 0 still took a step), output paths
that are folders failing only after the run, multitask --batch-size 1 training nothing,
MultiTaskNet.backward accumulating task B's gradients before refusing a grad_a of another
dtype, VAE.sample(dtype=) failing, and downsample refusing channel images."""
import contextlib
import io as stdio
import json
import math

import matplotlib.image
import numpy as np
import pytest

import fastnn
from fastnn import cli, visualize
from fastnn.experiments.multitask import downsample
from fastnn.models import MLP, VAE, MultiTaskNet, SmallCNN

torch = pytest.importorskip("torch")
BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.backends()]


@pytest.fixture(autouse=True)
def _restore_backend():
    before = fastnn.get_backend()
    yield
    fastnn.set_backend(before)


def run_cli(*argv):
    out, err = stdio.StringIO(), stdio.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main([str(a) for a in argv])
        except SystemExit as exc:
            status = exc.code
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An (untrained) 8x8-image classifier and a MultiTaskNet, as `train --save` writes."""
    folder = tmp_path_factory.mktemp("ckpt")
    fastnn.manual_seed(0)
    fastnn.save(MLP(64, [16], 10), folder / "mlp.npz")
    fastnn.save(MultiTaskNet(64, 8, 16, 10), folder / "mt.npz")
    return folder


def assert_png_has_content(path, min_shape):
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] >= min_shape[0] and image.shape[1] >= min_shape[1]
    rgb = image[..., :3]
    assert rgb.std() > 0.02 and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 20  # not blank


def finite_numbers(obj):
    if isinstance(obj, dict):
        return all(finite_numbers(v) for v in obj.values())
    if isinstance(obj, list):
        return all(finite_numbers(v) for v in obj)
    return not isinstance(obj, float) or math.isfinite(obj)


# ---- the commands' outputs, seeds and backends ---------------------------------------------

def test_commands_write_images_and_finite_metrics(tmp_path, checkpoint):
    cases = {
        "multitask": (["multitask", "--dataset", "digits", "--epochs", "2", "--hidden-a", "8"],
                      ["task_a_test_mse", "task_a_mean_predictor_mse", "task_b_test_accuracy",
                       "classifier_alone_test_accuracy", "curves", "config"], (300, 1000)),
        "vae": (["vae", "--epochs", "2", "--n-train", "300", "--n-test", "100"],
                ["test_nelbo_initial", "test_nelbo_final", "test_nelbo_curve",
                 "train_nelbo_curve", "sample_mean_radius", "data_mean_radius"], (400, 1200)),
        "dream": (["dream", "--checkpoint", checkpoint / "mlp.npz", "--target-class", "3",
                   "--steps", "20", "--scales", "2,1"],
                  ["probability_before", "probability_after", "target_class"], (300, 300)),
    }
    for name, (argv, keys, min_shape) in cases.items():
        png, js = tmp_path / f"{name}.png", tmp_path / f"{name}.json"
        status, _, err = run_cli(*argv, "--no-progress", "--seed", "1", "--out", png,
                                 "--metrics", js)
        assert status == 0, err
        assert_png_has_content(png, min_shape)
        metrics = json.loads(js.read_text())
        assert set(keys) <= set(metrics) and finite_numbers(metrics), name
    vae = json.loads((tmp_path / "vae.json").read_text())
    assert len(vae["test_nelbo_curve"]) == 3 and len(vae["train_nelbo_curve"]) == 2
    dream = json.loads((tmp_path / "dream.json").read_text())
    assert dream["probability_after"] > dream["probability_before"]


def test_multitask_same_seed_same_numbers_and_backends_agree(tmp_path):
    """Dropout off: the masks are each backend's own (README), everything else agrees."""
    argv = ["multitask", "--dataset", "digits", "--epochs", "1", "--hidden-a", "8",
            "--dropout", "0", "--seed", "3", "--no-progress", "--out", ""]
    results = []
    for i, backend in enumerate(BACKENDS + BACKENDS[:1]):
        path = tmp_path / f"{i}.json"
        assert run_cli(*argv, "--backend", backend, "--metrics", path)[0] == 0
        results.append(json.loads(path.read_text())["curves"])
    assert results[-1] == results[0]  # the same seed and backend: the same numbers
    for other in results[1:-1]:
        for key in results[0]:
            np.testing.assert_allclose(other[key], results[0][key], rtol=1e-5, atol=1e-6)


# ---- dream: bad values, step counts, a non-classifier checkpoint ---------------------------

@pytest.mark.parametrize("flags, message", [
    (("--scales", "0"), "expected scales to be positive ints"),  # ZeroDivisionError
    (("--scales", "2,-1"), "expected scales to be positive ints"),
    (("--jitter", "-1"), "expected jitter to be a non-negative int"),  # "low >= high"
    (("--blur-every", "-2"), "expected blur_every to be a non-negative int"),
    (("--blur-every", "1", "--blur-sigma", "0"), "expected blur_sigma in (0, inf)"),  # NaN image
    (("--clip", "-1"), "expected clip in [0, inf)"),  # reversed the ascent
    (("--lr", "nan"), "expected a finite lr"),  # NaN image, exit 0
    (("--weight-decay", "inf"), "expected a finite weight_decay"),
])
def test_dream_refuses_bad_options_with_status_2(tmp_path, checkpoint, flags, message):
    status, _, err = run_cli("dream", "--checkpoint", checkpoint / "mlp.npz",
                             "--target-class", "1", "--steps", "3", "--no-progress",
                             "--out", tmp_path / "d.png", *flags)
    assert status == 2 and f"error: visualize: {message}" in err and "Traceback" not in err
    assert not (tmp_path / "d.png").exists()


def test_dream_error_after_its_progress_bar_starts_is_on_a_line_of_its_own(tmp_path,
                                                                          checkpoint):
    # the bar was left open when visualize refused an option, so the error was printed
    # on the bar's line ("class 3:   0%| ... 0/300 [...]error: ..."); --help told that
    # --seed seeds initialisation, shuffling and dropout, train's meaning
    status, _, err = run_cli("dream", "--checkpoint", checkpoint / "mlp.npz",
                             "--target-class", "1", "--steps", "3", "--blur-sigma", "0",
                             "--out", tmp_path / "d.png")
    line = [row for row in err.replace("\r", "\n").splitlines() if "error:" in row]
    assert status == 2 and line and line[0].startswith("error: visualize:"), err
    status, out, _ = run_cli("dream", "--help")
    assert status == 0 and "seeds the start image and the jitter" in " ".join(out.split())


def test_dream_refuses_a_model_that_is_not_a_classifier(tmp_path, checkpoint):
    status, _, err = run_cli("dream", "--checkpoint", checkpoint / "mt.npz", "--target-class",
                             "0", "--steps", "2", "--no-progress", "--out", tmp_path / "d.png")
    assert status == 2 and "returning (N, num_classes) logits, got tuple" in err  # AttributeError


@pytest.mark.parametrize("steps, scales", [(0, (1,)), (0, (4, 2, 1)), (1, (4, 2, 1)),
                                           (5, (2, 1)), (7, (4, 2, 1))])
def test_dream_takes_exactly_the_steps_asked(steps, scales):
    """--steps 0 took a step per scale, and steps not divisible by the scale count fell short
    of the progress bar's total."""
    fastnn.manual_seed(0)
    model = MLP(64, [8], 4)
    calls = []
    image, before, after = visualize.visualize_class(model, 2, steps=steps, scales=scales,
                                                     progress=calls.append)
    assert len(calls) == steps
    if steps == 0:
        initial = np.clip(0.5 + 0.05 * np.random.default_rng(0).standard_normal((1, 8, 8)),
                          0, 1).astype(np.float32)
        np.testing.assert_array_equal(image, initial)
        assert after == before


def test_output_folders_and_batch_size_1_are_refused_before_the_run(tmp_path, checkpoint):
    runs = [("multitask", "--dataset", "digits", "--epochs", "1"),
            ("vae", "--epochs", "1", "--n-train", "50"),
            ("dream", "--checkpoint", checkpoint / "mlp.npz", "--target-class", "1")]
    for argv in runs:
        for flag in ("--out", "--metrics"):
            status, out, err = run_cli(*argv, "--no-progress", flag, tmp_path)
            assert status == 2 and f"error: {flag} expects a file path" in err, (argv, err)
            assert out == ""  # refused before training (it used to fail after it)
    status, _, err = run_cli(*runs[2], "--no-progress", "--out", "")
    assert status == 2 and "--out expects a file path" in err
    status, out, err = run_cli(*runs[0], "--no-progress", "--batch-size", "1")
    assert status == 2 and "--batch-size must be at least 2" in err and out == ""


# ---- class visualisation of a CNN against torch autograd -----------------------------------

def torch_bilinear(img, size):
    """visualize._resize (end points kept) with torch ops, for autograd."""
    h = img.shape[1]
    pos = np.linspace(0, h - 1, size)
    lo = np.floor(pos).astype(int)
    hi, frac = np.minimum(lo + 1, h - 1), torch.from_numpy(pos - lo)
    rows = img[:, lo] * (1 - frac)[None, :, None] + img[:, hi] * frac[None, :, None]
    return rows[:, :, lo] * (1 - frac) + rows[:, :, hi] * frac


def test_cnn_class_visualisation_matches_autograd():
    """SmallCNN with BatchNorm (running statistics) and dropout, in eval mode, 16x16 images,
    three scales, the default jitter (1 pixel), weight decay, clipping and blur: every step's
    input gradient from autograd (test_probe_models covers flat MLPs only)."""
    fastnn.set_backend(BACKENDS[0])
    fastnn.manual_seed(0)
    rng = np.random.default_rng(0)
    model = SmallCNN(1, 16, 5, channels=(3, 4), hidden=8, dropout=0.3).double()
    for layer in (model[1], model[5]):
        layer.running_mean[...] = 0.1 * rng.standard_normal(layer.running_mean.shape)
        layer.running_var[...] = rng.uniform(0.5, 2, layer.running_var.shape)
    twin = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.BatchNorm2d(3), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(64, 8),
        torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(8, 5)).double().eval()
    twin.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                          model.state_dict().items()})
    kw = dict(steps=12, lr=0.3, weight_decay=2e-3, clip=0.5, blur_every=4, blur_sigma=0.7,
              scales=(4, 2, 1), seed=5)
    model.train()
    image, before, after = visualize.visualize_class(model, 2, **kw)
    assert model.training and all(np.all(p.grad == 0) for p in model.parameters())

    rng = np.random.default_rng(5)
    h, jitter = 16, 1  # the default: 16 // 14
    ref = np.clip(0.5 + 0.05 * rng.standard_normal((1, h, h)), 0, 1).astype(np.float32)
    for scale in kw["scales"]:
        size = max(4, h // scale)
        small = visualize._resize(ref, size) if size != h else ref
        jitter_here = round(jitter * size / h)  # image pixels: 0 at the coarse scales
        for step in range(4):
            dy, dx = rng.integers(-jitter_here, jitter_here + 1, 2) if jitter_here else (0, 0)
            s = torch.from_numpy(np.asarray(small, np.float64)).requires_grad_(True)
            full = torch.roll(s, (int(dy), int(dx)), dims=(1, 2))
            full = torch_bilinear(full, h) if size != h else full
            objective = twin(full[None])[0, 2]
            (objective - 0.5 * kw["weight_decay"] * (s ** 2).sum()).backward()
            grad = s.grad.numpy()
            norm = np.linalg.norm(grad)
            if norm > kw["clip"]:
                grad *= kw["clip"] / norm
            small = np.clip(small + kw["lr"] * grad, 0, 1)
            if (step + 1) % kw["blur_every"] == 0:
                small = np.clip(visualize._blur(small, kw["blur_sigma"]), 0, 1)
        ref = (visualize._resize(small, h) if size != h else small).astype(np.float32)
    np.testing.assert_allclose(image, ref, atol=1e-6)
    # without the regularisers (whose smoothing costs an untrained net some score) each
    # ascent step raises the class score
    scores = [twin(torch.from_numpy(visualize.visualize_class(
        model, 2, steps=steps, lr=0.3, clip=0.5, weight_decay=0, blur_every=0, jitter=0)[0][
            None].astype(np.float64)))[0, 2].item() for steps in (0, 3, 6, 9)]
    assert all(b > a for a, b in zip(scores, scores[1:])), scores


# ---- models --------------------------------------------------------------------------------

def test_multitask_backward_refuses_grad_a_of_another_dtype_before_accumulating():
    model = MultiTaskNet(6, 5, 4, 3)
    model(np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32))
    with pytest.raises(TypeError, match="MultiTaskNet: dtype mismatch: grad_a is float64"):
        model.backward(np.ones((5, 4)), np.ones((5, 3), np.float32))
    assert all(np.all(p.grad == 0) for p in model.parameters())  # fc2b, fc1b had gradients


def test_vae_sample_in_another_dtype():
    model = VAE(3, 2, [5])  # float32
    own = model.sample(4, np.random.default_rng(1))
    wide = model.sample(4, np.random.default_rng(1), dtype=np.float64)  # a TypeError before
    assert own.dtype == np.float32 and wide.dtype == np.float64
    np.testing.assert_array_equal(wide, own.astype(np.float64))


def test_downsample_pools_every_channel():
    """The multitask target of colour images (N, 3, 32, 32): 'too many values to unpack'."""
    x = np.random.default_rng(0).random((2, 3, 6, 7)).astype(np.float32)
    expected = np.stack([[[[x[n, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean() for j in range(3)]
                           for i in range(3)] for c in range(3)] for n in range(2)])
    np.testing.assert_allclose(downsample(x), expected.reshape(2, -1), rtol=1e-6)
    np.testing.assert_allclose(downsample(x[:, 0]), expected[:, 0].reshape(2, -1), rtol=1e-6)


@pytest.mark.parametrize("command", ["multitask", "vae", "dream"])
def test_experiments_take_the_train_commands_runtime_flags(command):
    required = ["--checkpoint", "m.npz", "--target-class", "0"] if command == "dream" else []
    args = cli.build_parser(command).parse_args(
        [command, *required, "--threads", "1", "--backend", "numpy", "--seed", "3",
         "--no-progress"])
    assert (args.threads, args.backend, args.seed, args.no_progress) == (1, "numpy", 3, True)
    assert cli.main([command, *required, "--threads", "0"]) == 2


@pytest.mark.parametrize("empty", ["train", "test"])
def test_multitask_refuses_an_empty_split_in_one_line(tmp_path, empty):
    """An MNIST whose training or test files hold no images ended in NumPy's 'cannot
    reshape array of size 0 into shape (0,newaxis)' (train's one-line error names the split)."""
    import struct

    def idx(array):
        array = np.ascontiguousarray(array, dtype=np.uint8)
        return (struct.pack(">HBB", 0, 0x08, array.ndim)
                + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes())
    sizes = {"train": 0 if empty == "train" else 12, "t10k": 0 if empty == "test" else 5}
    for prefix, n in sizes.items():
        images = np.random.default_rng(0).integers(0, 256, (n, 28, 28))
        (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(idx(images))
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(idx(np.arange(n) % 10))
    status, _, err = run_cli("multitask", "--dataset", "mnist", "--data-root", tmp_path,
                             "--no-progress", "--out", "")
    assert status == 2
    split = "training" if empty == "train" else "test"
    assert err.strip() == (f"error: --dataset mnist: the {split} split holds no images; "
                           f"there is nothing to " + ("train on" if empty == "train" else
                                                      "evaluate on"))
