"""The scaling plots (matplotlib, Agg): MLP step time against batch size, against layer
width, and with 1 against all threads."""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {"numpy": ("tab:gray", "o"), "numba": ("tab:blue", "s"), "cython": ("tab:orange", "^"),
         "cuda": ("tab:green", "v"), "student": ("tab:brown", "x"), "torch": ("tab:red", "D")}


def _series(all_rows, kind):
    """{contender: [(x, median seconds)]} sorted by x."""
    out = {}
    for r in all_rows:
        if r["kind"] == kind:
            out.setdefault(r["contender"], []).append((r["x"], r["median"]))
    return {c: sorted(v) for c, v in out.items()}


def _line_plot(series, path, title, xlabel, per_sample=False):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for contender, points in series.items():
        color, marker = STYLE.get(contender, (None, "."))
        xs = [p[0] for p in points]
        ys = [p[1] * 1e3 / (p[0] if per_sample else 1) for p in points]
        ax.plot(xs, ys, marker=marker, color=color, label=contender)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("ms per sample" if per_sample else "ms per step (median)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _thread_plot(series, path, title):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    contenders = list(series)
    counts = sorted({x for pts in series.values() for x, _ in pts})
    width = 0.8 / max(len(counts), 1)
    for k, n in enumerate(counts):
        ys = [dict(series[c]).get(n, float("nan")) * 1e3 for c in contenders]
        ax.bar([i + k * width for i in range(len(contenders))], ys, width,
               label=f"{n} thread{'s' if n > 1 else ''}")
    ax.set_xticks([i + width * (len(counts) - 1) / 2 for i in range(len(contenders))])
    ax.set_xticklabels(contenders)
    ax.set_ylabel("ms per step (median)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def make_plots(all_rows, out_dir):
    """Write the scaling PNGs that have data into out_dir; returns {name: path}."""
    os.makedirs(out_dir, exist_ok=True)
    made = {}
    batch = _series(all_rows, "scaling-batch")
    if batch:
        path = os.path.join(out_dir, "scaling_batch.png")
        _line_plot(batch, path, "MLP 784-1024-1024-10 LeakyReLU step: time per sample",
                   "batch size", per_sample=True)
        made["batch"] = path
    width = _series(all_rows, "scaling-width")
    if width:
        path = os.path.join(out_dir, "scaling_width.png")
        _line_plot(width, path, "MLP 784-W-W-10 LeakyReLU step, batch 128", "hidden width W")
        made["width"] = path
    threads = _series(all_rows, "scaling-threads")
    if threads:
        path = os.path.join(out_dir, "scaling_threads.png")
        _thread_plot(threads, path, "MLP 784-1024-1024-10 step, batch 256: threads")
        made["threads"] = path
    return made
