"""`python -m fastnn dream`: visualise a class of a trained classifier checkpoint."""
import os

import numpy as np

from ..plotting import save_figure
from ..visualize import visualize_class
from .common import (apply_runtime, add_common_arguments, on_backend_device, progress,
                     write_metrics)


def save_image(image, path, title=None):
    """(C, H, W) in [0, 1] -> PNG, upscaled for viewing: grey for one channel, colour for
    three, else each channel in grey, side by side."""
    import os
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(4, 4.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if image.shape[0] == 3:
        ax.imshow(np.transpose(image, (1, 2, 0)), interpolation="nearest")
    else:
        ax.imshow(np.concatenate(list(image), axis=1), cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def _pixel_standardization(extra):
    """(mean, std) a checkpoint's model was trained on, from its ``extra``: those
    ``train --standardize`` saved in its config, else (0, 1) (raw pixels in [0, 1])."""
    config = extra.get("config") if isinstance(extra, dict) else None
    if isinstance(config, dict) and config.get("standardize"):
        mean, std = config.get("pixel_mean"), config.get("pixel_std")
        if isinstance(mean, (int, float)) and isinstance(std, (int, float)) and std > 0:
            return float(mean), float(std)
    return 0.0, 1.0


def add_arguments(parser):
    from ..cli import non_negative_int
    parser.add_argument("--checkpoint", required=True, help="classifier saved by `train --save`")
    parser.add_argument("--target-class", type=non_negative_int, required=True,
                        help="the class index whose logit the image is optimised for")
    parser.add_argument("--steps", type=non_negative_int, default=300)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--jitter", type=int, default=None,
                        help="largest random shift in pixels (default: image size // 14)")
    parser.add_argument("--weight-decay", type=float, default=1e-3)
    parser.add_argument("--clip", type=float, default=1.0,
                        help="largest L2 norm of a step's gradient (0: no clipping)")
    parser.add_argument("--blur-every", type=int, default=10)
    parser.add_argument("--blur-sigma", type=float, default=0.5)
    parser.add_argument("--scales", default="1", help="coarse-to-fine divisors, e.g. 4,2,1")
    parser.add_argument("--image-shape", default=None, metavar="C,H,W",
                        help="the image shape the model takes, e.g. 3,32,32 (default: from "
                             "the checkpoint's model)")
    add_common_arguments(parser, "runs/dream/class.png",
                         seed_help="seeds the start image and the jitter (default 0)")


def run(args):
    import fastnn
    if not args.out:
        raise ValueError("--out expects a file path for the image, got ''")
    apply_runtime(args)   # (first: it refuses bad --out/--metrics paths)
    if os.path.isdir(args.checkpoint):
        raise ValueError(f"--checkpoint expects a checkpoint file, got {args.checkpoint!r} "
                         f"(a folder)")
    if not os.path.exists(args.checkpoint):
        raise ValueError(f"--checkpoint: no such file: {args.checkpoint!r}")
    from ..io import CheckpointError, load_checkpoint
    try:
        checkpoint = load_checkpoint(args.checkpoint)   # (the file read once: model, extra)
    except CheckpointError:
        if isinstance(fastnn.load(args.checkpoint), dict):   # fastnn.save(state_dict, path)
            raise ValueError(f"--checkpoint {args.checkpoint!r} holds a state dict, not a "
                             f"model: save the model itself (fastnn.save(model, path), or "
                             f"train --save)") from None
        raise
    model = on_backend_device(checkpoint.model)
    mean, std = _pixel_standardization(checkpoint.extra)
    try:
        scales = tuple(int(s) for s in str(args.scales).split(","))
    except ValueError:
        raise ValueError(f"--scales expects comma-separated integers such as 4,2,1, got "
                         f"{args.scales!r}") from None
    shape = None
    if args.image_shape is not None:
        try:
            shape = tuple(int(s) for s in str(args.image_shape).split(","))
        except ValueError:
            shape = ()
        if len(shape) != 3 or min(shape) <= 0:
            raise ValueError(f"--image-shape expects three positive integers C,H,W such as "
                             f"3,32,32, got {args.image_shape!r}")
    bar = progress(args.steps, f"class {args.target_class}", not args.no_progress)
    try:
        image, before, after = visualize_class(
            model, args.target_class, steps=args.steps, lr=args.lr, jitter=args.jitter,
            weight_decay=args.weight_decay, clip=args.clip, blur_every=args.blur_every,
            blur_sigma=args.blur_sigma, scales=scales, seed=args.seed,
            progress=bar.update if bar is not None else None, mean=mean, std=std,
            shape=shape)
    finally:
        if bar is not None:   # (closed before an error is printed: on a line of its own)
            bar.close()
    save_image(image, args.out, f"class {args.target_class}: p {before:.3f} -> {after:.3f}")
    metrics = {"target_class": args.target_class, "probability_before": before,
               "probability_after": after, "checkpoint": args.checkpoint, "out": args.out,
               "pixel_mean": mean, "pixel_std": std,
               "backend": fastnn.get_backend(),
               "config": {k: v for k, v in vars(args).items() if k != "func"}}
    write_metrics(metrics, args.metrics)
    print(f"class {args.target_class} probability {before:.4f} -> {after:.4f}; "
          f"image in {args.out}")
    return metrics
