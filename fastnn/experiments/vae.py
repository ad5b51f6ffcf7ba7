"""`python -m fastnn vae`: learn a 2-D distribution (ring or two moons) with the Gaussian
VAE, or images (--dataset fashion-mnist, mnist, digits; flattened, intensities in [0, 1])
with the Bernoulli decoder; --likelihood picks the decoder (Bernoulli only for data in
[0, 1]).

Saves a PNG of generated samples beside held-out data (images: a grid of samples and of
test images above their reconstructions) and reports the held-out negative ELBO (nats per
point or image), which falls during training (its curve is in the metrics).
"""
import time

import numpy as np

from .. import data, optim
from ..models.vae import LIKELIHOODS, VAE
from ..grad_mode import no_grad
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


def held_out_rng(seed):
    """The generator of the 2-D held-out points: a child of seed's SeedSequence, apart
    from the one seeded with seed that draws the training points (then shuffles), so that
    the held-out points depend on seed and their count only and runs with another
    --n-train are scored on the same points (drawn after the training points from one
    generator, they changed with --n-train)."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])


DISTRIBUTIONS = {"ring": make_ring, "moons": make_moons}
IMAGE_DATASETS = ("digits", "fashion-mnist", "mnist")
# The defaults of the options left out: (for 2-D data, for images); the images' are
# those of README's Fashion-MNIST run
DEFAULTS = {"likelihood": ("gaussian", "bernoulli"), "hidden": ([64, 64], [512, 256]),
            "epochs": (30, 10), "lr": (2e-3, 1e-3), "kl_warmup": (5, 0)}


def default_help(dest):
    """'(default: X; images: Y)' for the option dest of DEFAULTS."""
    def shown(value):
        return ",".join(map(str, value)) if isinstance(value, list) else str(value)
    two_d, images = DEFAULTS[dest]
    return f"(default: {shown(two_d)}; images: {shown(images)})"


def resolve_defaults(args):
    """Refuse --dataset with --distribution, and --data-root or --download without
    --dataset (ValueError), then fill in the options left out (None): --distribution ring
    without --dataset, and DEFAULTS for the data, 2-D or images. Changes args in place
    (the metrics' config then says what ran); returns it."""
    if args.dataset is not None and args.distribution is not None:
        raise ValueError("--dataset and --distribution: give one (images or a 2-D "
                         "distribution)")
    if args.dataset is None:
        # (PyTorch's VAE example trains on MNIST unasked: a dataset's folder given
        # without --dataset trained the ring)
        for flag, given in (("--data-root", args.data_root), ("--download", args.download)):
            if given:
                raise ValueError(f"{flag} reads images: add --dataset "
                                 f"{{{','.join(IMAGE_DATASETS)}}} (without it vae "
                                 f"learns a generated 2-D distribution)")
        args.distribution = args.distribution or "ring"
    images = args.dataset is not None
    for dest, defaults in DEFAULTS.items():
        if getattr(args, dest) is None:
            value = defaults[images]
            setattr(args, dest, list(value) if isinstance(value, list) else value)
    return args


def load_images(dataset, n_train=None, n_test=None, root=None, download=False):
    """(x_train, x_test, image shape (H, W)): the dataset's flattened images (N, H W),
    float32 in [0, 1], the first n_train and n_test of each split (None: all of it);
    ValueError for an empty split or an n_train or n_test beyond its split (not cut to
    it: the config would name a count that did not run)."""
    x_train, _, x_test, _ = data.load(dataset, root=root, download=download)
    for split, x, option, n in (("training", x_train, "--n-train", n_train),
                                ("test", x_test, "--n-test", n_test)):
        if len(x) == 0:
            raise ValueError(f"--dataset {dataset}: the {split} split holds no images")
        if n is not None and n > len(x):
            raise ValueError(f"{option} {n}: the {dataset} {split} split holds {len(x)} "
                             f"images; leave {option} out to take all of it")
    shape = x_train.shape[1:]
    x_train, x_test = x_train[:n_train], x_test[:n_test]
    return x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1), shape


def check_likelihood(likelihood, what, *arrays):
    """Refuse (ValueError) the Bernoulli decoder for arrays (the data, named by what)
    outside [0, 1]: its binary cross-entropy takes any target, and would train to a loss
    that is no likelihood of them."""
    if likelihood != "bernoulli":
        return
    low = min(float(x.min()) for x in arrays if x.size)
    high = max(float(x.max()) for x in arrays if x.size)
    if low < 0 or high > 1:
        raise ValueError(f"--likelihood bernoulli needs data in [0, 1]; {what} ranges "
                         f"from {low:.3g} to {high:.3g}: use --likelihood gaussian")


def held_out_nelbo(model, x, seed=123, batch_size=2000):
    """Single-sample negative ELBO on held-out points with fixed noise (comparable across
    epochs), the mean over x's rows, taken batch_size rows at a time."""
    eps = np.random.default_rng(seed).standard_normal((len(x), model.latent_dim)).astype(x.dtype)
    total = 0.0
    with evaluating(model), no_grad():   # (fresh arrays: the step's kept ones stay)
        for s in range(0, len(x), batch_size):
            loss, _, _ = model(x[s:s + batch_size], eps=eps[s:s + batch_size])
            total += loss * len(x[s:s + batch_size])
    return total / len(x) if len(x) else float("nan")


def image_samples(model, n, rng):
    """n generated images (n, data_dim): the mean of p(x | z) at z ~ N(0, I) drawn from
    rng, the pixel probabilities (bernoulli, as model.sample gives them) or mu_x
    (gaussian: sample() would add its per-pixel noise, which hides the image)."""
    z = rng.standard_normal((n, model.latent_dim)).astype(model.decoder[0].weight.data.dtype)
    with evaluating(model), no_grad():
        return model._decoded_mean(model.decoder(z))


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
    _finish(fig, curve, "held-out negative ELBO", title, path)


def _finish(fig, curve, curve_title, title, path):
    """Add the per-epoch curve (a list, or None for none) as the third panel of fig, then
    title fig and save it to path."""
    if curve is not None:
        ax = fig.add_subplot(1, 3, 3)
        ax.plot(range(len(curve)), curve, "o-", ms=3)
        ax.set_xlabel("epoch")
        integer_epochs(ax)
        ax.set_title(curve_title)
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def tile(images, shape, columns):
    """(n, H W) images in [0, 1] -> one (rows H, columns W) picture, rows filled left to
    right, a 1-pixel grey (0.5) line between the images."""
    h, w = shape
    rows = -(-len(images) // columns)
    canvas = np.full((rows * (h + 1) - 1, columns * (w + 1) - 1), 0.5, np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        canvas[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = image.reshape(h, w)
    return canvas


def plot_images(samples, originals, reconstructions, shape, path, title, curve=None,
                columns=10, samples_title="VAE samples (pixel probabilities)"):
    """A grid of generated samples, one of test images with their reconstructions below
    (row by row) and, when given, the held-out negative ELBO per epoch; every array
    (n, H W), shown in [0, 1] (values outside are clipped)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    panels = 2 if curve is None else 3
    fig = Figure(figsize=(5 * panels, 5.4), dpi=100)
    FigureCanvasAgg(fig)
    pairs = []   # rows of test images each above its reconstructions
    for s in range(0, len(originals), columns):
        pairs += [tile(originals[s:s + columns], shape, columns),
                  tile(reconstructions[s:s + columns], shape, columns)]
    for i, (picture, name) in enumerate((
            (tile(samples, shape, columns), samples_title),
            (np.concatenate(pairs), "test images, reconstructions below"))):
        ax = fig.add_subplot(1, panels, i + 1)
        ax.imshow(picture, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(name)
        ax.axis("off")
    _finish(fig, curve, "held-out negative ELBO (nats per image)", title, path)


def add_arguments(parser):
    from ..cli import add_data_arguments, hidden_units, non_negative_int, positive_int
    parser.add_argument("--distribution", choices=sorted(DISTRIBUTIONS), default=None,
                        help="a 2-D distribution (default: ring)")
    parser.add_argument("--dataset", choices=IMAGE_DATASETS, default=None,
                        help="images instead (flattened, intensities in [0, 1])")
    parser.add_argument("--likelihood", choices=LIKELIHOODS, default=None,
                        help="the decoder's p(x | z): a Gaussian with learned mean and "
                             "sigma per dimension (unstable on images, see README), or "
                             "Bernoulli logits per pixel, for data in [0, 1] "
                             + default_help("likelihood"))
    add_data_arguments(parser)
    parser.add_argument("--n-train", type=positive_int, default=None,
                        help="training points (default: 20000; images: the whole split; "
                             "more is refused)")
    parser.add_argument("--n-test", type=positive_int, default=None,
                        help="held-out points (default: 2000; images: the whole split; "
                             "more is refused)")
    parser.add_argument("--latent-dim", type=positive_int, default=2)
    parser.add_argument("--hidden", type=hidden_units, default=None,
                        help="comma-separated hidden widths (train's --hidden rules) "
                             + default_help("hidden"))
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help=default_help("epochs"))
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--lr", type=float, default=None, help="Adam's learning rate "
                        + default_help("lr"))
    parser.add_argument("--kl-warmup", type=non_negative_int, default=None,
                        help="epochs over which the KL term's weight rises linearly, step "
                             "by step, from 0 to 1 (0: none; without it some 2-D seeds "
                             "stall with samples filling the disc inside the ring) "
                             + default_help("kl_warmup"))
    add_common_arguments(parser, "runs/vae/samples.png",
                         seed_help="seeds the initial weights, the training noise, the "
                                   "shuffling and the 2-D data (default 0)")


def run(args):
    import fastnn
    resolve_defaults(args)
    apply_runtime(args)
    rng = np.random.default_rng(args.seed)
    if args.dataset is None:
        make = DISTRIBUTIONS[args.distribution]
        x = make(args.n_train or 20000, rng)
        x_test = make(args.n_test or 2000, held_out_rng(args.seed))
        shape = None
    else:
        x, x_test, shape = load_images(args.dataset, args.n_train, args.n_test,
                                       root=args.data_root, download=args.download)
    what = (f"--distribution {args.distribution}" if args.dataset is None
            else f"--dataset {args.dataset}")
    check_likelihood(args.likelihood, what, x, x_test)
    model = on_backend_device(VAE(x.shape[1], args.latent_dim, args.hidden, seed=args.seed,
                                  likelihood=args.likelihood))
    opt = optim.Adam(model.parameters(), lr=args.lr)
    curve = [held_out_nelbo(model, x_test)]
    train_curve = []
    warmup_steps = args.kl_warmup * -(-len(x) // args.batch_size)
    step = 0
    start = time.perf_counter()
    bar = progress(args.epochs, "vae epochs", not args.no_progress)
    for epoch in range(args.epochs):
        order = rng.permutation(len(x))
        total = 0.0   # the epoch's negative ELBO summed over samples (batch mean x size)
        for s in range(0, len(x), args.batch_size):
            batch = x[order[s:s + args.batch_size]]
            step += 1
            beta = min(1.0, step / warmup_steps) if warmup_steps else 1.0
            loss, nll, kl = model(batch, kl_weight=beta)
            if not np.isfinite(loss):
                raise FloatingPointError(f"vae: training diverged: the loss became {loss} in "
                                         f"epoch {epoch + 1}; try a smaller learning rate")
            opt.zero_grad()
            model.backward(need_grad_in=False)
            opt.step()
            total += (loss if beta == 1 else nll + kl) * len(batch)   # (the NELBO)
        train_curve.append(total / len(x))   # per sample: a short last batch counts its size
        curve.append(held_out_nelbo(model, x_test))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(test_nelbo=f"{curve[-1]:.3f}")
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - start
    if shape is None:
        samples = model.sample(len(x_test), np.random.default_rng(args.seed + 1))
        if args.out:
            plot_samples(x_test, samples, args.out, f"VAE on {args.distribution}: held-out "
                         f"negative ELBO {curve[-1]:.3f}", curve)
        extra = {"distribution": args.distribution, "likelihood": args.likelihood,
                 "sample_mean_radius": float(np.linalg.norm(samples, axis=1).mean()),
                 "data_mean_radius": float(np.linalg.norm(x_test, axis=1).mean())}
    else:
        extra = {"dataset": args.dataset, "likelihood": args.likelihood,
                 "n_train": len(x), "n_test": len(x_test)}
        if args.out:
            samples = image_samples(model, 50, np.random.default_rng(args.seed + 1))
            shown = x_test[:30]
            plot_images(samples, shown, model.reconstruct(shown), shape, args.out,
                        f"VAE on {args.dataset} (latent {args.latent_dim}, "
                        f"{args.likelihood}): held-out negative ELBO {curve[-1]:.1f} "
                        f"nats per image", curve,
                        samples_title=("VAE samples (pixel probabilities)"
                                       if args.likelihood == "bernoulli"
                                       else "VAE samples (decoder means μx)"))
    metrics = {
        **extra, "backend": fastnn.get_backend(),
        "test_nelbo_initial": curve[0], "test_nelbo_final": curve[-1],
        "test_nelbo_curve": curve, "train_nelbo_curve": train_curve,
        "seconds": seconds,
        "config": {k: v for k, v in vars(args).items() if k != "func"},
    }
    write_metrics(metrics, args.metrics)
    unit = "nats per point" if shape is None else "nats per image"
    print(f"held-out negative ELBO {curve[0]:.3f} -> {curve[-1]:.3f} {unit}"
          + (f"; samples in {args.out}" if args.out else ""))
    return metrics
