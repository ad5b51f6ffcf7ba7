"""Training curves as PNG, drawn with matplotlib's Agg canvas (no display needed)."""
import os
from collections.abc import Mapping

import numpy as np


def save_figure(fig, path):
    """Save matplotlib figure ``fig`` to ``path``, creating its folder: in the format its
    extension names when matplotlib writes that format (.svg, .pdf, .jpg...), else PNG
    (so 'curves', 'curves.png' and 'curves.out' are PNG files, 'curves.svg' an SVG).
    Written to a temporary file renamed over path (the file a symbolic link names), so
    a failed write (a full disk) leaves the previous picture whole; a device or FIFO is
    written in place."""
    from .io import make_parent_folder, write_atomically
    make_parent_folder(path)   # (a symbolic link's target folder)
    suffix = os.path.splitext(str(path))[1][1:].lower()
    fmt = suffix if suffix in fig.canvas.get_supported_filetypes() else "png"
    write_atomically(path, lambda f: fig.savefig(f, format=fmt))
    return path


def plot_curves(metrics, path, title=None):
    """Save the loss curves and, when there are any, the accuracy curves (train and test,
    per epoch) to ``path`` (PNG, or the format its extension names: ``save_figure``).

    metrics: a dict as ``fastnn.train.fit`` returns, or one made by hand, with lists of
    numbers under any of 'train_loss', 'test_loss', 'train_accuracy', 'test_accuracy'
    (one entry per epoch, at 'epoch''s values if given, else at 1, 2, ...), and with
    ``eval_freq`` the test curves of 'step_curve' (drawn on the same epoch axis with
    'train_state''s batches per epoch). A list that is absent, empty or all NaN (fit's
    accuracy of a regression) is not drawn, nor a panel left with nothing: a regression
    gets the loss panel only. The loss axis is labelled with fit's 'loss_name' (the loss
    class, 'cross-entropy loss' for CrossEntropyLoss), or 'loss' without one. A dict with
    nothing to draw is a ValueError naming these keys. ``title``: the figure's title.
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


#: the loss axis's label for fit's 'loss_name' (the loss's class name); another name is
#: shown as it is
LOSS_LABELS = {
    "CrossEntropyLoss": "cross-entropy loss",
    "NLLLoss": "negative log-likelihood loss",
    "BCELoss": "binary cross-entropy loss",
    "BCEWithLogitsLoss": "binary cross-entropy loss",
    "MSELoss": "mean squared error",
    "L1Loss": "mean absolute error (L1 loss)",
    "SmoothL1Loss": "smooth L1 loss",
    "HuberLoss": "Huber loss",
}

#: the per-epoch lists plot_curves draws, by panel
CURVE_KEYS = ("train_loss", "test_loss", "train_accuracy", "test_accuracy")


def _values(key, values):
    """values (a list of numbers) as a float array, or None when absent, empty or all
    NaN (nothing to draw)."""
    if values is None:
        return None
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.ndim != 1:
        raise ValueError(f"plot_curves: metrics[{key!r}] must be a list of numbers, got "
                         f"{repr(values)[:80]}")
    return array if np.isfinite(array).any() else None


def _loss_label(metrics):
    name = metrics.get("loss_name")
    if not isinstance(name, str) or not name:
        return "loss"
    return LOSS_LABELS.get(name, name)


def curves_figure(metrics, title=None):
    """The matplotlib Figure ``plot_curves`` saves: a loss panel and an accuracy panel,
    either left out when it has nothing to draw."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not isinstance(metrics, Mapping):
        raise TypeError(f"plot_curves: metrics must be a dict (as fastnn.train.fit "
                        f"returns), got {type(metrics).__name__}")
    curves = {key: _values(key, metrics.get(key)) for key in CURVE_KEYS}
    drawn = [key for key, values in curves.items() if values is not None]
    if "epoch" in metrics:
        epochs, step_curve = _epoch_positions(metrics)
        counted_by = "'epoch'"
    else:   # (a dict made by hand: epochs 1, 2, ... as many as its first list's entries)
        epochs = [float(e) for e in range(1, len(curves[drawn[0]]) + 1)] if drawn else []
        step_curve, counted_by = None, f"{drawn[0]!r}" if drawn else ""
    for key in drawn:
        if len(curves[key]) != len(epochs):
            raise ValueError(f"plot_curves: metrics[{key!r}] has {len(curves[key])} "
                             f"entries, {counted_by} {len(epochs)}: give one per epoch")
    panels = []
    for key, label in (("loss", _loss_label(metrics)), ("accuracy", "accuracy")):
        lines = [(epochs, curves[f"{split}_{key}"], marker, split)
                 for split, marker in (("train", "o-"), ("test", "s-"))
                 if curves[f"{split}_{key}"] is not None]
        if step_curve is not None:
            x, curve = step_curve
            values = _values(f"step_curve's test_{key}", curve.get(f"test_{key}"))
            if values is not None:
                lines.append((x, values, ".-", f"test, every {curve['step'][0]} steps"))
        if lines:
            panels.append((label, lines))
    if not panels:
        raise ValueError(f"plot_curves: nothing to draw: metrics needs a list of numbers "
                         f"(not all NaN) under at least one of {list(CURVE_KEYS)} (as "
                         f"fastnn.train.fit returns); got keys {sorted(map(str, metrics))}")

    fig = Figure(figsize=(10, 4) if len(panels) == 2 else (6, 4), dpi=100)
    FigureCanvasAgg(fig)
    for i, (label, lines) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), i)
        for x, values, marker, name in lines:
            style = {"alpha": 0.7} if marker == ".-" else {}
            ax.plot(x, values, marker, label=name, **style)
        if step_curve is not None and any(m == ".-" for _, _, m, _ in lines):
            ax.set_xlim(left=0)   # (the step curve starts within the first epoch)
        ax.set_xlabel("epoch")
        if max(max(x) for x, _, _, _ in lines) < 1:
            # a run shorter than one epoch (--max-steps): the whole first epoch in view,
            # ticked in fractions of it (integer ticks around a point at 0.0107 were
            # 0.0102, 0.01035, ... written over each other)
            ax.set_xlim(-0.025, 1.025)   # (a margin, as matplotlib leaves, for the markers)
        else:
            integer_epochs(ax)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
