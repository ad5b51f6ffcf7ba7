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
    'train_loss', 'train_accuracy' and, if present, 'test_loss', 'test_accuracy'.
    """
    return save_figure(curves_figure(metrics, title), path)


def integer_epochs(ax):
    """Ticks at whole epochs only on ``ax``'s x axis (matplotlib's default put them at
    2.5, 7.5, ... for a 20-epoch run)."""
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def curves_figure(metrics, title=None):
    """The matplotlib Figure ``plot_curves`` saves."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    epochs = metrics["epoch"]
    for ax, key, label in ((fig.add_subplot(1, 2, 1), "loss", "cross-entropy loss"),
                           (fig.add_subplot(1, 2, 2), "accuracy", "accuracy")):
        ax.plot(epochs, metrics[f"train_{key}"], "o-", label="train")
        if metrics.get(f"test_{key}"):
            ax.plot(epochs, metrics[f"test_{key}"], "s-", label="test")
        ax.set_xlabel("epoch")
        integer_epochs(ax)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
