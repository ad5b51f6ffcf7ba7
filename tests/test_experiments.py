"""The course experiments: MultiTaskNet, VAE, class visualisation, and their commands."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn import nn, optim
from fastnn.models.multitask import MultiTaskLoss, MultiTaskNet
from fastnn.models.vae import VAE


def numeric_vs_analytic(loss_of, params, rng, entries=6, eps=1e-6):
    """Compare each parameter's .grad with central differences of loss_of() at a few entries."""
    worst = 0.0
    for p in params:
        for _ in range(entries):
            i = tuple(int(rng.integers(0, s)) for s in p.data.shape)
            saved = p.data[i]
            p.data[i] = saved + eps
            up = loss_of()
            p.data[i] = saved - eps
            down = loss_of()
            p.data[i] = saved
            numeric = (up - down) / (2 * eps)
            err = abs(numeric - p.grad[i]) / max(1.0, abs(numeric))
            worst = max(worst, err)
    return worst


def test_multitask_gradcheck_float64(backend, rng):
    fastnn.manual_seed(0)
    model = MultiTaskNet(6, 5, 4, 3, omega=2.0, dropout=0.0).double()
    x = rng.standard_normal((8, 6))
    y_a = rng.standard_normal((8, 4))
    y_b = rng.integers(0, 3, 8)
    loss_fn = MultiTaskLoss()

    def loss_of():
        a, logits = model(x)
        return loss_fn(a, logits, y_a, y_b)[0]

    loss_of()
    model.zero_grad()
    grad_x = model.backward(*loss_fn.backward())
    assert grad_x.shape == x.shape
    assert numeric_vs_analytic(loss_of, model.parameters(), rng) < 1e-6
    # the gradient w.r.t. the input, too
    i = (3, 2)
    x[i] += 1e-6
    up = loss_of()
    x[i] -= 2e-6
    down = loss_of()
    x[i] += 1e-6
    assert abs((up - down) / 2e-6 - grad_x[i]) < 1e-6


def test_multitask_task_b_gradient_reaches_task_a(rng):
    """Task A's first layer gets gradient from the classification loss alone."""
    model = MultiTaskNet(6, 5, 4, 3, dropout=0.0).double()
    x = rng.standard_normal((8, 6))
    a, logits = model(x)
    loss_fn = MultiTaskLoss()
    loss_fn(a, logits, a.copy(), rng.integers(0, 3, 8))  # task A's own loss is zero
    grad_a, grad_logits = loss_fn.backward()
    assert np.all(grad_a == 0)
    model.zero_grad()
    model.backward(grad_a, grad_logits)
    assert np.abs(model.fc1a.weight.grad).sum() > 0


def test_vae_gradcheck_float64(backend, rng):
    fastnn.manual_seed(0)
    model = VAE(3, latent_dim=2, hidden=[5], activation="tanh").double()
    x = rng.standard_normal((7, 3))
    eps = rng.standard_normal((7, 2))

    def loss_of():
        return model(x, eps=eps)[0]

    loss_of()
    model.zero_grad()
    model.backward()
    assert numeric_vs_analytic(loss_of, model.parameters(), rng) < 1e-6


def test_vae_loss_terms_match_formula(rng):
    model = VAE(2, latent_dim=2, hidden=[4]).double()
    x = rng.standard_normal((5, 2))
    eps = rng.standard_normal((5, 2))
    loss, nll, kl = model(x, eps=eps)
    enc = model.encoder(x)
    mu_z, log_sz = enc[:, :2], enc[:, 2:]
    dec = model.decoder(mu_z + np.exp(log_sz) * eps)
    mu_x, log_sx = dec[:, :2], dec[:, 2:]
    expected_nll = (0.5 * np.log(2 * np.pi) + log_sx
                    + (x - mu_x) ** 2 / (2 * np.exp(2 * log_sx))).sum() / 5
    expected_kl = (-log_sz - 0.5 + 0.5 * (mu_z ** 2 + np.exp(2 * log_sz))).sum() / 5
    assert nll == pytest.approx(expected_nll) and kl == pytest.approx(expected_kl)
    assert loss == pytest.approx(nll + kl)


def test_class_visualisation_raises_probability():
    from fastnn.data import load_digits
    from fastnn.models import MLP
    from fastnn.visualize import visualize_class
    fastnn.manual_seed(0)
    x, y, _, _ = load_digits(flatten=True)
    model = MLP(64, [32], 10)
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(30):
        for s in range(0, len(x), 64):
            loss_fn.forward(model(x[s:s + 64]), y[s:s + 64])
            opt.zero_grad()
            model.backward(loss_fn.backward())
            opt.step()
    image, before, after = visualize_class(model, 3, steps=100)
    assert image.shape == (1, 8, 8) and image.min() >= 0 and image.max() <= 1
    assert after >= 0.9 and after > before


def _cli(*args, cwd):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=600)


@pytest.mark.slow
def test_experiment_commands_end_to_end(tmp_path):
    train = _cli("train", "--dataset", "digits", "--hidden", "32", "--epochs", "15",
                 "--lr", "0.1", "--save", str(tmp_path / "m.npz"), cwd=tmp_path)
    assert train.returncode == 0, train.stderr
    dream = _cli("dream", "--checkpoint", str(tmp_path / "m.npz"), "--target-class", "3",
                 "--steps", "100", "--out", str(tmp_path / "d.png"),
                 "--metrics", str(tmp_path / "d.json"), "--no-progress", cwd=tmp_path)
    assert dream.returncode == 0, dream.stderr
    metrics = json.loads((tmp_path / "d.json").read_text())
    assert metrics["probability_after"] >= 0.9
    assert (tmp_path / "d.png").stat().st_size > 0

    mt = _cli("multitask", "--dataset", "digits", "--epochs", "20", "--hidden-a", "32",
              "--metrics", str(tmp_path / "mt.json"), "--out", str(tmp_path / "mt.png"),
              "--no-progress", cwd=tmp_path)
    assert mt.returncode == 0, mt.stderr
    m = json.loads((tmp_path / "mt.json").read_text())
    assert m["task_a_test_mse"] < m["task_a_mean_predictor_mse"]
    assert m["task_b_test_accuracy"] > 0.9

    vae = _cli("vae", "--epochs", "5", "--n-train", "4000", "--metrics",
               str(tmp_path / "v.json"), "--out", str(tmp_path / "v.png"), "--no-progress",
               cwd=tmp_path)
    assert vae.returncode == 0, vae.stderr
    v = json.loads((tmp_path / "v.json").read_text())
    assert v["test_nelbo_final"] < v["test_nelbo_initial"]
    assert (tmp_path / "v.png").stat().st_size > 0


def test_vae_command_on_digits_trains_the_bernoulli_decoder(tmp_path):
    """--dataset: flattened images, the Bernoulli decoder, a PNG of samples and
    reconstructions and the held-out negative ELBO (nats per image) per epoch."""
    from fastnn import cli
    backend = fastnn.get_backend()
    try:
        assert cli.main(["vae", "--dataset", "digits", "--epochs", "2", "--hidden", "16",
                         "--n-train", "400", "--n-test", "100", "--lr", "1e-2",
                         "--no-progress", "--out", str(tmp_path / "v.png"),
                         "--metrics", str(tmp_path / "v.json")]) == 0
    finally:
        fastnn.set_backend(backend)
    v = json.loads((tmp_path / "v.json").read_text())
    assert v["dataset"] == "digits" and v["likelihood"] == "bernoulli"
    assert v["config"]["likelihood"] == "bernoulli"   # (not given: the images' default)
    assert (v["n_train"], v["n_test"]) == (400, 100)
    assert len(v["test_nelbo_curve"]) == 3 and v["test_nelbo_final"] < v["test_nelbo_initial"]
    assert (tmp_path / "v.png").stat().st_size > 0


@pytest.mark.parametrize("option,value,message", [
    ("--n-train", "100000", "--n-train 100000: the digits training split holds 1438 images"),
    ("--n-test", "5000", "--n-test 5000: the digits test split holds 359 images"),
])
def test_vae_refuses_more_images_than_the_split_holds(tmp_path, capsys, option, value,
                                                      message):
    """--n-train or --n-test beyond the split: refused before training (exit 2, nothing
    written), not cut to the split (trained on 1438 images while the config said
    100000); the split's size itself is taken."""
    from fastnn import cli
    backend = fastnn.get_backend()
    argv = ["vae", "--dataset", "digits", "--epochs", "1", "--hidden", "8", "--no-progress",
            "--out", str(tmp_path / "v.png"), "--metrics", str(tmp_path / "v.json")]
    try:
        assert cli.main([*argv, option, value]) == 2
        out, err = capsys.readouterr()
        assert err == f"error: {message}; leave {option} out to take all of it\n"
        assert out == "" and not list(tmp_path.iterdir())
        assert cli.main([*argv, "--n-train", "1438", "--n-test", "359"]) == 0
    finally:
        fastnn.set_backend(backend)
    v = json.loads((tmp_path / "v.json").read_text())
    assert (v["n_train"], v["n_test"]) == (1438, 359)


def test_vae_2d_held_out_points_depend_on_seed_and_n_test_only(tmp_path):
    """The held-out points (seen through data_mean_radius and the untrained model's
    NELBO on them) are the same whatever --n-train; they were drawn after the training
    points from one generator, so held-out NELBOs of runs with different --n-train were
    on different points. The training points do not depend on --n-test, and --seed
    changes both."""
    from fastnn import cli
    backend = fastnn.get_backend()

    def run(*argv):
        path = tmp_path / "v.json"
        assert cli.main(["vae", "--distribution", "ring", "--hidden", "4", "--epochs", "1",
                         "--no-progress", "--out", "", "--metrics", str(path), *argv]) == 0
        v = json.loads(path.read_text())
        return v["data_mean_radius"], v["test_nelbo_initial"], v["train_nelbo_curve"]

    try:
        base = run("--n-train", "50", "--n-test", "40")
        more_train = run("--n-train", "90", "--n-test", "40")
        more_test = run("--n-train", "50", "--n-test", "60")
        other_seed = run("--n-train", "50", "--n-test", "40", "--seed", "1")
    finally:
        fastnn.set_backend(backend)
    assert more_train[:2] == base[:2]
    assert more_test[2] == base[2]
    assert other_seed[0] != base[0] and other_seed[2] != base[2]


def test_vae_kl_warmup_changes_training_only_while_it_lasts(tmp_path, monkeypatch):
    """--kl-warmup E: the KL weight rises step by step to 1 over E epochs (then stays), 0
    leaves it 1 throughout; the training curve stays the negative ELBO, not the weighted
    loss."""
    from fastnn import cli
    from fastnn.models.vae import VAE
    backend = fastnn.get_backend()
    weights = []
    forward = VAE.forward

    def noting(self, x, eps=None, kl_weight=1.0):
        weights.append(kl_weight)
        return forward(self, x, eps, kl_weight)

    monkeypatch.setattr(VAE, "forward", noting)
    monkeypatch.setattr(VAE, "__call__", noting)

    def run(warmup):
        weights.clear()
        path = tmp_path / "v.json"
        assert cli.main(["vae", "--hidden", "4", "--epochs", "3", "--n-train", "40",
                         "--n-test", "20", "--batch-size", "10", "--no-progress", "--out",
                         "", "--metrics", str(path), "--kl-warmup", str(warmup)]) == 0
        return json.loads(path.read_text()), list(weights)

    try:
        none, none_weights = run(0)
        warm, warm_weights = run(2)
    finally:
        fastnn.set_backend(backend)
    # held-out NELBOs (weight 1) between the training steps: 4 steps an epoch
    assert [w for w in none_weights if w != 1] == []
    steps = [w for i, w in enumerate(warm_weights) if i % 5 != 0]   # (every 5th: held out)
    assert steps == pytest.approx([k / 8 for k in range(1, 9)] + [1.0] * 4)
    assert warm["test_nelbo_initial"] == none["test_nelbo_initial"]
    assert warm["test_nelbo_final"] != none["test_nelbo_final"]
    assert warm["config"]["kl_warmup"] == 2 and all(c > 0 for c in warm["train_nelbo_curve"])


def _vae_args(*argv):
    """The vae command's parsed argv, its left-out options resolved as run() does."""
    from fastnn import cli
    from fastnn.experiments import vae
    return vae.resolve_defaults(cli.build_parser("vae").parse_args(["vae", *argv]))


@pytest.mark.parametrize("argv,expected", [
    ([], ("ring", "gaussian", [64, 64], 30, 2e-3, 2, 5)),
    (["--distribution", "moons"], ("moons", "gaussian", [64, 64], 30, 2e-3, 2, 5)),
    # images: README's Fashion-MNIST run (--hidden 512,256 --epochs 10 --lr 1e-3)
    (["--dataset", "fashion-mnist"], (None, "bernoulli", [512, 256], 10, 1e-3, 2, 0)),
    (["--dataset", "digits", "--likelihood", "gaussian", "--hidden", "32", "--epochs",
      "3", "--lr", "0.01", "--latent-dim", "20", "--kl-warmup", "2"],
     (None, "gaussian", [32], 3, 0.01, 20, 2)),
    (["--likelihood", "bernoulli", "--epochs", "4", "--kl-warmup", "0"],
     ("ring", "bernoulli", [64, 64], 4, 2e-3, 2, 0)),
])
def test_vae_defaults_depend_on_the_data(argv, expected):
    """Left out, --hidden, --epochs, --lr, --likelihood and --kl-warmup take the 2-D
    data's defaults, or with --dataset the images'; given ones are kept."""
    args = _vae_args(*argv)
    assert (args.distribution, args.likelihood, args.hidden, args.epochs, args.lr,
            args.latent_dim, args.kl_warmup) == expected


def test_vae_help_gives_both_defaults(capsys):
    """(and what --seed seeds here: train's help said dropout, which the VAE has not)"""
    from fastnn import cli
    with pytest.raises(SystemExit):
        cli.main(["vae", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("(default: 64,64; images: 512,256)", "(default: 30; images: 10)",
                   "(default: 0.002; images: 0.001)", "(default: gaussian; images: bernoulli)",
                   "(default: 5; images: 0)",
                   "seeds the initial weights, the training noise, the shuffling and the "
                   "2-D data (default 0)"):
        assert phrase in text


def test_vae_command_takes_the_likelihood_and_records_it(tmp_path):
    """--likelihood picks the decoder (images: bernoulli, 2-D data: gaussian, when not
    given); the metrics and their config say which one trained."""
    from fastnn import cli
    backend = fastnn.get_backend()
    runs = {"gaussian-images": ["--dataset", "digits", "--likelihood", "gaussian",
                                "--hidden", "16", "--n-train", "200", "--n-test", "50"],
            "default-2d": ["--hidden", "8", "--n-train", "200", "--n-test", "50"]}
    try:
        for name, argv in runs.items():
            assert cli.main(["vae", *argv, "--epochs", "1", "--no-progress",
                             "--out", str(tmp_path / f"{name}.png"),
                             "--metrics", str(tmp_path / f"{name}.json")]) == 0
    finally:
        fastnn.set_backend(backend)
    for name in runs:
        v = json.loads((tmp_path / f"{name}.json").read_text())
        assert v["likelihood"] == v["config"]["likelihood"] == "gaussian"
        assert v["config"]["epochs"] == 1 and v["config"]["lr"] == (
            1e-3 if name == "gaussian-images" else 2e-3)   # (left out: the data's default)
        assert np.isfinite(v["test_nelbo_final"]) and (tmp_path / f"{name}.png").exists()


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_vae_overflow_gives_inf_without_numpy_warnings(likelihood):
    """A diverging VAE (weights so large that exp overflows) gives a non-finite loss and
    gradient silently, as PyTorch's exp does: forward, backward and sample had NumPy
    RuntimeWarnings (overflow in exp and multiply, inf * 0), which reached the terminal
    above `vae`'s one-line 'training diverged' error (seen on Fashion-MNIST, --lr 10)."""
    import warnings
    import torch
    model = VAE(4, 2, [8], likelihood=likelihood, seed=0)
    signs = np.random.default_rng(0)
    for p in model.parameters():
        p.data[...] = 40.0 * np.sign(signs.standard_normal(p.data.shape))
    x = np.random.default_rng(1).random((5, 4)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, _, _ = model(x)
        grad_x = model.backward()
        model.sample(3, 0)
    # PyTorch's exp of the same encoder output overflows to inf too, without a warning
    enc = model.encoder(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sigma_z = torch.exp(torch.from_numpy(enc[:, 2:]))
    assert torch.isinf(sigma_z).any() and not np.isfinite(loss)
    assert not np.isfinite(grad_x).all()


@pytest.mark.filterwarnings("error::RuntimeWarning")   # (a warning is a second line too)
@pytest.mark.parametrize("argv,status,message", [
    (["multitask", "--dataset", "digits", "--epochs", "1", "--lr", "1e6", "--no-progress"],
     1, "multitask: training diverged"),
    (["vae", "--epochs", "2", "--lr", "1e6", "--n-train", "200", "--no-progress"], 1,
     "vae: training diverged"),
    (["vae", "--dataset", "digits", "--distribution", "moons"], 2, "give one"),
    (["vae", "--likelihood", "bernoulli", "--n-train", "50", "--epochs", "1"], 2,
     "--likelihood bernoulli needs data in [0, 1]; --distribution ring ranges from"),
    (["vae", "--distribution", "moons", "--likelihood", "bernoulli", "--n-train", "50"], 2,
     "use --likelihood gaussian"),
    (["vae", "--data-root", "{tmp}"], 2, "--data-root reads images: add --dataset"),
    (["vae", "--distribution", "ring", "--download"], 2, "--download reads images"),
    (["dream", "--checkpoint", "{tmp}", "--target-class", "3"], 2, "(a folder)"),
    (["dream", "--checkpoint", "{tmp}/missing.npz", "--target-class", "3"], 2,
     "no such file"),
    (["dream", "--checkpoint", "{tmp}/state.npz", "--target-class", "1"], 2,
     "holds a state dict, not a model"),
    (["train", "--dataset", "digits", "--model", "convnet", "--width", "inf"], 2,
     "expected width to be a positive number, got inf"),
])
def test_experiment_errors_are_one_line(tmp_path, capsys, argv, status, message):
    from fastnn import cli, models
    fastnn.save(models.MLP(64, [8], 10).state_dict(), tmp_path / "state.npz")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    argv += ["--out", str(tmp_path / "out.png")] if argv[0] in ("multitask", "vae") else []
    backend = fastnn.get_backend()
    try:
        assert cli.main(argv) == status
    finally:
        fastnn.set_backend(backend)
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err


@pytest.mark.parametrize("argv", [
    ["vae", "--out", "{tmp}/same", "--metrics", "{tmp}/same"],
    ["multitask", "--dataset", "digits", "--out", "{tmp}/same", "--metrics", "{run}/../same"],
    ["dream", "--target-class", "3", "--checkpoint", "{tmp}/same", "--out", "{tmp}/x.png",
     "--metrics", "{tmp}/same"],
    ["dream", "--target-class", "3", "--checkpoint", "{tmp}/same", "--out", "{tmp}/same"],
], ids=["vae", "multitask", "dream-metrics", "dream-out"])
def test_experiments_refuse_two_paths_naming_one_file(tmp_path, capsys, argv):
    """--out and --metrics naming one file (however spelled), or either naming the
    --checkpoint dream reads: refused before the run, as train's --plot and --metrics
    are (the later write replaced the PNG, or the checkpoint, and vae said 'samples in'
    what was then a JSON file)."""
    from fastnn import cli
    (tmp_path / "run").mkdir()
    (tmp_path / "same").write_bytes(b"kept")
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{run}", str(tmp_path / "run"))
            for a in argv]
    argv += ["--steps" if argv[0] == "dream" else "--epochs", "1", "--no-progress"]
    backend = fastnn.get_backend()
    try:
        assert cli.main(argv) == 2
    finally:
        fastnn.set_backend(backend)
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "name the same file" in err and err.count("\n") == 1
    assert (tmp_path / "same").read_bytes() == b"kept"
