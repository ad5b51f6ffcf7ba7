"""`python -m fastnn vae`: learn a 2-D distribution (ring or two moons) with the VAE.

Saves a PNG of generated samples beside held-out data and reports the held-out negative
ELBO, which falls during training (its curve is in the metrics).
"""
import time

import numpy as np

from .. import optim
from ..models.vae import VAE
from ..nn.module import evaluating
from ..plotting import integer_epochs, save_figure
from .common import (apply_runtime, add_common_arguments, on_backend_device, progress,
                     write_metrics)


def make_ring(n, rng, radius=2.0, noise=0.1):
    angle = rng.uniform(0, 2 * np.pi, n)
    r = radius + noise * rng.standard_normal(n)
    return np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1).astype(np.float32)


def make_moons(n, rng, noise=0.08):
    n1 = n // 2
    t1, t2 = rng.uniform(0, np.pi, n1), rng.uniform(0, np.pi, n - n1)
    upper = np.stack([np.cos(t1), np.sin(t1)], axis=1)
    lower = np.stack([1 - np.cos(t2), 0.5 - np.sin(t2)], axis=1)
    points = np.concatenate([upper, lower]) + noise * rng.standard_normal((n, 2))
    return rng.permutation(points).astype(np.float32)


DISTRIBUTIONS = {"ring": make_ring, "moons": make_moons}


def held_out_nelbo(model, x, seed=123):
    """Single-sample negative ELBO on held-out points with fixed noise (comparable across epochs)."""
    eps = np.random.default_rng(seed).standard_normal((len(x), model.latent_dim)).astype(x.dtype)
    with evaluating(model):
        loss, _, _ = model(x, eps=eps)
    return loss


def plot_samples(data, samples, path, title, curve=None):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    panels = 2 if curve is None else 3
    fig = Figure(figsize=(5 * panels, 5), dpi=100)
    FigureCanvasAgg(fig)
    limit = 1.2 * np.abs(data).max()
    for i, (points, name) in enumerate(((data, "held-out data"), (samples, "VAE samples"))):
        ax = fig.add_subplot(1, panels, i + 1)
        ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.5,
                   color="tab:blue" if i == 0 else "tab:orange")
        ax.set_title(name)
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
        ax.set_aspect("equal")
    if curve is not None:
        ax = fig.add_subplot(1, 3, 3)
        ax.plot(range(len(curve)), curve, "o-", ms=3)
        ax.set_xlabel("epoch")
        integer_epochs(ax)
        ax.set_title("held-out negative ELBO")
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def add_arguments(parser):
    from ..cli import hidden_units, positive_int
    parser.add_argument("--distribution", choices=sorted(DISTRIBUTIONS), default="ring")
    parser.add_argument("--n-train", type=positive_int, default=20000)
    parser.add_argument("--n-test", type=positive_int, default=2000)
    parser.add_argument("--latent-dim", type=positive_int, default=2)
    parser.add_argument("--hidden", type=hidden_units, default="64,64",
                        help="comma-separated hidden widths (train's --hidden rules)")
    parser.add_argument("--epochs", type=positive_int, default=30)
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    add_common_arguments(parser, "runs/vae/samples.png")


def run(args):
    import fastnn
    apply_runtime(args)
    rng = np.random.default_rng(args.seed)
    make = DISTRIBUTIONS[args.distribution]
    x, x_test = make(args.n_train, rng), make(args.n_test, rng)
    hidden = args.hidden
    model = on_backend_device(VAE(2, args.latent_dim, hidden, seed=args.seed))
    opt = optim.Adam(model.parameters(), lr=args.lr)
    curve = [held_out_nelbo(model, x_test)]
    train_curve = []
    start = time.perf_counter()
    bar = progress(args.epochs, "vae epochs", not args.no_progress)
    for epoch in range(args.epochs):
        order = rng.permutation(len(x))
        total = 0.0   # the epoch's loss summed over samples (batch mean x size)
        for s in range(0, len(x), args.batch_size):
            batch = x[order[s:s + args.batch_size]]
            loss, _, _ = model(batch)
            if not np.isfinite(loss):
                raise FloatingPointError(f"vae: training diverged: the loss became {loss} in "
                                         f"epoch {epoch + 1}; try a smaller learning rate")
            opt.zero_grad()
            model.backward(need_grad_in=False)
            opt.step()
            total += loss * len(batch)
        train_curve.append(total / len(x))   # per sample: a short last batch counts its size
        curve.append(held_out_nelbo(model, x_test))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(test_nelbo=f"{curve[-1]:.3f}")
    if bar is not None:
        bar.close()
    samples = model.sample(len(x_test), np.random.default_rng(args.seed + 1))
    if args.out:
        plot_samples(x_test, samples, args.out,
                     f"VAE on {args.distribution}: held-out negative ELBO {curve[-1]:.3f}", curve)
    metrics = {
        "distribution": args.distribution, "backend": fastnn.get_backend(),
        "test_nelbo_initial": curve[0], "test_nelbo_final": curve[-1],
        "test_nelbo_curve": curve, "train_nelbo_curve": train_curve,
        "seconds": time.perf_counter() - start,
        "sample_mean_radius": float(np.linalg.norm(samples, axis=1).mean()),
        "data_mean_radius": float(np.linalg.norm(x_test, axis=1).mean()),
        "config": {k: v for k, v in vars(args).items() if k != "func"},
    }
    write_metrics(metrics, args.metrics)
    print(f"held-out negative ELBO {curve[0]:.3f} -> {curve[-1]:.3f}; samples in {args.out}")
    return metrics
