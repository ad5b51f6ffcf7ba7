"""Training curves as PNG, drawn with matplotlib's Agg canvas (no display needed)."""
import os


def save_figure(fig, path):
    """Save matplotlib figure ``fig`` to ``path``, creating its folder: in the format its
    extension names when matplotlib writes that format (.svg, .pdf, .jpg...), else PNG
    (so 'curves', 'curves.png' and 'curves.out' are PNG files, 'curves.svg' an SVG)."""
    from .io import make_parent_folder
    make_parent_folder(path)   # (a symbolic link's target folder)
    suffix = os.path.splitext(str(path))[1][1:].lower()
    fmt = suffix if suffix in fig.canvas.get_supported_filetypes() else "png"
    fig.savefig(path, format=fmt)
    return path


def plot_curves(metrics, path, title=None):
    """Save loss and accuracy curves (train and test, per epoch) to ``path`` (PNG, or the
    format its extension names: ``save_figure``).

    metrics: a dict as ``fastnn.train.fit`` returns, with lists 'epoch',
    'train_loss', 'train_accuracy' and, if present, 'test_loss', 'test_accuracy', and
    the test curve of ``eval_freq`` ('step_curve', drawn on the same epoch axis with
    'train_state''s batches per epoch).
    """
    return save_figure(curves_figure(metrics, title), path)


def integer_epochs(ax):
    """Ticks at whole epochs only on ``ax``'s x axis (matplotlib's default put them at
    2.5, 7.5, ... for a 20-epoch run; a one-epoch run gets its one tick, where the
    default of two integers in view fell back to ticks at 0.95, 0.975...)."""
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _epoch_positions(metrics):
    """(x of each per-epoch entry, (x, step curve) or None) in epochs: a last epoch that
    --max-steps cut short sits at its fraction (its running means are over those
    batches), the eval_freq evaluations at step / batches per epoch."""
    epochs = [float(e) for e in metrics["epoch"]]
    state = metrics.get("train_state") or {}
    per_epoch = state.get("batches_per_epoch")
    if not per_epoch:
        return epochs, None
    steps = metrics.get("steps")
    if epochs and isinstance(steps, int) and steps < epochs[-1] * per_epoch:
        epochs[-1] = max(epochs[-1] - 1 + 1e-9, steps / per_epoch)
    curve = metrics.get("step_curve") or {}
    if not curve.get("step"):
        return epochs, None
    return epochs, ([s / per_epoch for s in curve["step"]], curve)


def curves_figure(metrics, title=None):
    """The matplotlib Figure ``plot_curves`` saves."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    epochs, step_curve = _epoch_positions(metrics)
    for ax, key, label in ((fig.add_subplot(1, 2, 1), "loss", "cross-entropy loss"),
                           (fig.add_subplot(1, 2, 2), "accuracy", "accuracy")):
        ax.plot(epochs, metrics[f"train_{key}"], "o-", label="train")
        if metrics.get(f"test_{key}"):
            ax.plot(epochs, metrics[f"test_{key}"], "s-", label="test")
        if step_curve is not None:
            x, curve = step_curve
            every = curve["step"][0]
            ax.plot(x, curve[f"test_{key}"], ".-", alpha=0.7,
                    label=f"test, every {every} steps")
            ax.set_xlim(left=0)   # (the step curve starts within the first epoch)
        ax.set_xlabel("epoch")
        integer_epochs(ax)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
