"""Small pieces the experiment commands share: progress bars and metric files."""
import json
import os


def progress(total, desc, enabled=True):
    """A tqdm bar (or None when disabled) for a long loop."""
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


def write_metrics(metrics, path):
    """Write metrics as JSON, creating the folder."""
    if not path:
        return
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)


def add_common_arguments(parser, default_out):
    from ..cli import non_negative_int
    parser.add_argument("--backend", default=None, help="fastnn backend (default: fastest)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--metrics", default=None, help="write metrics JSON here")
    parser.add_argument("--out", default=default_out, help="PNG output path")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")



def apply_runtime(args):
    """Use the backend and seed the command line asked for, after refusing --out and
    --metrics paths that are folders (they failed only after the whole run)."""
    import fastnn
    for flag in ("out", "metrics"):
        path = getattr(args, flag, None)
        if path and os.path.isdir(path):
            raise ValueError(f"--{flag} expects a file path, got {path!r} (a folder)")
    if args.backend:
        fastnn.set_backend(args.backend)
    fastnn.manual_seed(args.seed)
