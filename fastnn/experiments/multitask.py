"""`python -m fastnn multitask`: train MultiTaskNet on Fashion-MNIST (or digits).

Task B is the class; task A regresses a 2x-downsampled copy of the image (14x14 = 196 values
for Fashion-MNIST), whose width is FC1B's width. The same classifier alone (FC1B, mean-only
BatchNorm, ReLU, FC2B) is trained with the same settings for comparison.
"""
import time

import numpy as np

from .. import data, nn, optim
from ..models.multitask import MultiTaskLoss, MultiTaskNet
from ..nn.module import evaluating
from ..plotting import integer_epochs, save_figure
from .common import (apply_runtime, add_common_arguments, on_backend_device, progress,
                     write_metrics)


def downsample(images):
    """(N, [C,] H, W) -> (N, [C *] H//2 * W//2) by 2x2 average pooling (task A's target)."""
    *lead, h, w = images.shape
    pooled = images[..., :h - h % 2, :w - w % 2].reshape(*lead, h // 2, 2, w // 2, 2)
    return pooled.mean(axis=(-3, -1)).reshape(images.shape[0], -1).astype(np.float32)


def load_multitask(dataset, root=None, download=False):
    """((x, y_a, y_b), (x_test, y_a_test, y_b_test)): flat images (N, features), task A's
    targets (N, features // 4) and the labels (N,); ValueError for an empty split."""
    x_train, y_train, x_test, y_test = data.load(dataset, root=root, download=download)
    for split, x, purpose in (("training", x_train, "train"), ("test", x_test, "evaluate")):
        if len(x) == 0:   # (NumPy's reshape error otherwise)
            raise ValueError(f"--dataset {dataset}: the {split} split holds no images; "
                             f"there is nothing to {purpose} on")
    return ((x_train.reshape(len(x_train), -1), downsample(x_train), y_train),
            (x_test.reshape(len(x_test), -1), downsample(x_test), y_test))


def _batches(n, batch_size, rng):
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def evaluate(model, x, y_a, y_b, batch_size=1000):
    sq_err, correct = 0.0, 0
    with evaluating(model):
        for start in range(0, len(x), batch_size):
            a, logits = model(x[start:start + batch_size])
            sq_err += float(np.square(a - y_a[start:start + batch_size], dtype=np.float64).sum())
            correct += int((logits.argmax(axis=1) == y_b[start:start + batch_size]).sum())
    return sq_err / y_a.size, correct / len(x)


def train_classifier_alone(x, y, x_test, y_test, hidden, num_classes, args, rng):
    """FC1B -> mean-only BatchNorm -> ReLU -> FC2B, trained like the multi-task net."""
    model = on_backend_device(nn.Sequential(
        nn.Linear(x.shape[1], hidden), nn.BatchNorm1d(hidden, mean_only=True), nn.ReLU(),
        nn.Linear(hidden, num_classes)))
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    for _ in range(args.epochs):
        for idx in _batches(len(x), args.batch_size, rng):
            if len(idx) < 2:
                continue
            loss_fn.forward(model(x[idx]), y[idx])
            opt.zero_grad()
            model.backward(loss_fn.backward(), need_grad_in=False)
            opt.step()
    model.eval()
    pred = np.concatenate([model(x_test[i:i + 1000]).argmax(axis=1)
                           for i in range(0, len(x_test), 1000)])
    return float((pred == y_test).mean())


def plot_multitask(curves, mean_baseline, alone_accuracy, path):
    """Three panels: training loss, task A test MSE (against the mean predictor), task B
    accuracy (against the classifier trained alone)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(13, 4), dpi=100)
    FigureCanvasAgg(fig)
    epochs = list(range(1, len(curves["train_loss"]) + 1))
    ax = fig.add_subplot(1, 3, 1)
    ax.plot(epochs, curves["train_loss"], "o-")
    ax.set_title("training loss (½‖a − y_A‖² + CE, per sample)")
    ax = fig.add_subplot(1, 3, 2)
    ax.plot(epochs, curves["test_loss"], "s-", color="tab:orange", label="MultiTaskNet")
    ax.axhline(mean_baseline, color="gray", ls="--", label="predict the mean")
    ax.set_yscale("log")
    ax.set_title("task A: test MSE per pixel")
    ax.legend()
    ax = fig.add_subplot(1, 3, 3)
    ax.plot(epochs, curves["train_accuracy"], "o-", label="train")
    ax.plot(epochs, curves["test_accuracy"], "s-", label="test")
    ax.axhline(alone_accuracy, color="gray", ls="--", label="classifier alone (test)")
    ax.set_title("task B: accuracy")
    ax.legend()
    for ax in fig.axes:
        ax.set_xlabel("epoch")
        integer_epochs(ax)
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def add_arguments(parser):
    from ..cli import add_data_arguments, positive_int
    parser.add_argument("--dataset", default="fashion-mnist",
                        help="fashion-mnist, mnist, cifar10 or digits")
    add_data_arguments(parser)
    parser.add_argument("--hidden-a", type=positive_int, default=256)
    parser.add_argument("--omega", type=float, default=1.0, help="sine frequency of task A")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--epochs", type=positive_int, default=5)
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--momentum", type=float, default=0.9)
    add_common_arguments(parser, "runs/multitask/curves.png")


def run(args):
    import fastnn
    if args.batch_size < 2:  # batches of one are skipped: nothing would train
        raise ValueError(f"--batch-size must be at least 2 (the mean-only BatchNorm needs "
                         f"two samples), got {args.batch_size}")
    apply_runtime(args)
    rng = np.random.default_rng(args.seed)
    (x, y_a, y_b), (x_test, y_a_test, y_b_test) = load_multitask(
        args.dataset, root=args.data_root, download=args.download)
    num_classes = int(y_b.max()) + 1
    model = on_backend_device(MultiTaskNet(x.shape[1], args.hidden_a, y_a.shape[1],
                                           num_classes, omega=args.omega,
                                           dropout=args.dropout))
    loss_fn = MultiTaskLoss()
    opt = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    curves = {"train_loss": [], "test_loss": [], "train_accuracy": [], "test_accuracy": []}
    start = time.perf_counter()
    for epoch in range(args.epochs):
        bar = progress(len(x), f"epoch {epoch + 1}/{args.epochs}", not args.no_progress)
        total, seen = 0.0, 0   # the epoch's loss summed over samples (batch mean x size)
        for idx in _batches(len(x), args.batch_size, rng):
            if len(idx) < 2:
                continue
            a, logits = model(x[idx])
            loss, _, _ = loss_fn(a, logits, y_a[idx], y_b[idx])
            if not np.isfinite(loss):
                raise FloatingPointError(f"multitask: training diverged: the loss became "
                                         f"{loss} in epoch {epoch + 1}; try a smaller "
                                         f"learning rate")
            opt.zero_grad()
            model.backward(*loss_fn.backward(), need_grad_in=False)
            opt.step()
            total, seen = total + loss * len(idx), seen + len(idx)
            if bar is not None:
                bar.update(len(idx))
                bar.set_postfix(loss=f"{loss:.4f}")
        if bar is not None:
            bar.close()
        mse_a, acc_b = evaluate(model, x_test, y_a_test, y_b_test)
        _, train_acc = evaluate(model, x[:10000], y_a[:10000], y_b[:10000])
        train_loss = total / max(seen, 1)   # per sample: a short last batch counts its size
        curves["train_loss"].append(train_loss)
        curves["test_loss"].append(mse_a)
        curves["train_accuracy"].append(train_acc)
        curves["test_accuracy"].append(acc_b)
        print(f"epoch {epoch + 1}: loss {train_loss:.4f}  task A test MSE "
              f"{mse_a:.5f}  task B test accuracy {acc_b:.4f}", flush=True)
    seconds = time.perf_counter() - start
    mean_baseline = float(np.square(y_a_test - y_a.mean(axis=0), dtype=np.float64).mean())
    alone = train_classifier_alone(x, y_b, x_test, y_b_test, y_a.shape[1], num_classes, args,
                                   np.random.default_rng(args.seed))
    metrics = {
        "dataset": args.dataset, "backend": fastnn.get_backend(), "epochs": args.epochs,
        "task_a_test_mse": curves["test_loss"][-1], "task_a_mean_predictor_mse": mean_baseline,
        "task_b_test_accuracy": curves["test_accuracy"][-1],
        "classifier_alone_test_accuracy": alone, "seconds": seconds,
        "curves": curves, "config": {k: v for k, v in vars(args).items() if k != "func"},
    }
    write_metrics(metrics, args.metrics)
    if args.out:
        plot_multitask(curves, mean_baseline, alone, args.out)
    print(f"task A test MSE {metrics['task_a_test_mse']:.5f} "
          f"(mean predictor {mean_baseline:.5f}); "
          f"task B test accuracy {metrics['task_b_test_accuracy']:.4f} "
          f"(classifier alone {alone:.4f})")
    return metrics
