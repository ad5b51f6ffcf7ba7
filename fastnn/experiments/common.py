"""Small pieces the experiment commands share: progress bars and metric files."""
import json


def progress(total, desc, enabled=True):
    """A tqdm bar (or None when disabled) for a long loop."""
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


def write_metrics(metrics, path):
    """Write metrics as JSON, creating the folder (a symbolic link's target's)."""
    if not path:
        return
    from ..io import make_parent_folder
    make_parent_folder(path)
    with open(path, "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)


def add_common_arguments(parser, default_out, seed_help=None):
    """The train command's --backend, --threads, --seed and --no-progress, plus --metrics
    and --out (the PNG); seed_help: what --seed seeds, when not train's."""
    from ..cli import add_runtime_arguments
    add_runtime_arguments(parser, seed_help=seed_help)
    parser.add_argument("--metrics", default=None, help="write metrics JSON here")
    parser.add_argument("--out", default=default_out, help="PNG output path")


def on_backend_device(model):
    """The model, moved to the GPU when the backend is cuda (--backend cuda), as the train
    command moves its model: its parameters and optimizer state then live there and
    NumPy batches go in and out; on a CPU backend it stays where it is. Returns model."""
    import fastnn
    if fastnn.get_backend() == "cuda":
        model.to("cuda")
    return model


def apply_runtime(args):
    """Use the backend, thread count and seed the command line asked for, after refusing
    --out and --metrics paths that are folders or under a file (they failed only after
    the whole run), and two of --checkpoint (dream's input), --out and --metrics naming
    one file, as train refuses its outputs': the later write replaced the earlier one,
    or the checkpoint."""
    from ..cli import apply_runtime_arguments, check_paths_apart
    # (an empty --out writes no figure)
    paths = [(flag, getattr(args, flag, None)) for flag in ("checkpoint", "out", "metrics")]
    check_paths_apart([(flag, path) for flag, path in paths if path],
                      inputs=("checkpoint",), error=ValueError)
    apply_runtime_arguments(args)
