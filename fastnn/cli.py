"""``python -m fastnn COMMAND``: the command-line interface.

Commands are registered in ``COMMANDS`` as ``name -> (target, help)``, where target is
either ``"module:configure"`` (``configure(parser)`` adds the arguments and sets
``func`` with ``parser.set_defaults(func=run)``) or ``"module"`` (a module with
``add_arguments(parser)`` and ``run(args)``). Only the module of the command being run
is imported. ``run(args)`` returns the exit status, or a metrics dict / None for
success. To add a command, add one line here.
"""
import argparse
import importlib
import json
import math
import os
import sys
import tempfile

COMMANDS = {
    "train": ("fastnn.cli:configure_train", "train a model on a dataset"),
    "demo": ("fastnn.cli:configure_demo",
             "train an MLP 784-512-512-10 (BatchNorm, dropout) on Fashion-MNIST "
             "(digits if absent)"),
    "multitask": ("fastnn.experiments.multitask",
                  "multi-task network: image regression + classification"),
    "vae": ("fastnn.experiments.vae", "variational autoencoder on a 2-D distribution or images"),
    "dream": ("fastnn.experiments.dream",
              "class visualisation by input optimisation from a checkpoint"),
    "bench": ("fastnn.bench_cli",
              "benchmarks: --quick prints the main table in a minute; with neither "
              "--quick nor -k, the full suite runs (`make bench`, from a checkout) and "
              "rewrites its BENCHMARKS.md"),
    "compile": ("fastnn.precompile",
                "compile the numba kernels now (once per install) instead of at first use"),
}


class CLIError(Exception):
    """A user error the CLI reports in one line (exit status 2)."""


def _resolve(target):
    """The ``configure(parser)`` function that ``target`` names (see the module doc)."""
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    if attr:
        return getattr(module, attr)
    add_arguments, run = module.add_arguments, module.run

    def run_command(args):
        from .data import CIFARError, IDXError
        from .io import CheckpointError
        try:
            result = run(args)  # experiments return their metrics dict
        except (IDXError, CIFARError, CheckpointError):
            raise  # a bad file: exit status 1 in main
        except ValueError as exc:  # an option value the library refused (lr, p, backend...)
            raise CLIError(str(exc)) from None
        return result if isinstance(result, int) else 0

    def configure(parser):
        add_arguments(parser)
        parser.set_defaults(func=run_command)
    return configure


def build_parser(command=None):
    """The top-level parser; only ``command``'s sub-parser gets its arguments."""
    parser = argparse.ArgumentParser(
        prog="fastnn", description="fastnn: neural networks with compiled NumPy-API kernels")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (target, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            try:
                configure = _resolve(target)
            except (ImportError, AttributeError) as exc:
                raise CLIError(f"command {name!r} is not available: {exc}") from None
            configure(command_parser)
            _show_defaults(command_parser)
    return parser


def _show_defaults(parser):
    """Append '(default: X)' to the help of each option with a default (not None or a
    flag's False) whose help does not give it already, so --help says every default."""
    for action in parser._actions:
        default = action.default
        if (not action.option_strings or default is None or default is False
                or default is argparse.SUPPRESS):
            continue
        shown = ",".join(map(str, default)) if isinstance(default, list) else str(default)
        text = action.help or ""
        if "default" in text and shown in text:
            continue
        note = f"(default: {shown.replace('%', '%%')})"
        action.help = f"{text} {note}" if text else note


def _dashed(token):
    """An option written with underscores as the dashed option it names: the course
    scripts' --dnn_hidden_units, --learning_rate, --max_steps, --batch_size, --eval_freq,
    --neg_slope, --data_dir (a value after '=' is kept as written)."""
    if not token.startswith("--"):
        return token
    name, sep, value = token.partition("=")
    return name.replace("_", "-") + sep + value


def main(argv=None):
    """Run the CLI; returns the exit status."""
    from .data import CIFARError, DownloadError, IDXError
    from .errors import MissingDependencyError
    from .io import CheckpointError
    from .train import TrainingDiverged

    argv = [_dashed(a) for a in (sys.argv[1:] if argv is None else argv)]
    command = next((a for a in argv if not a.startswith("-")), None)
    try:
        args = build_parser(command).parse_args(argv)
        status = args.func(args)
        return status if isinstance(status, int) else 0
    except (TrainingDiverged, IDXError, CIFARError, CheckpointError, DownloadError,
            FloatingPointError) as exc:   # (FloatingPointError: an experiment diverged)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (CLIError, FileNotFoundError, MissingDependencyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, CLIError) else 1
    except BrokenPipeError:
        # whatever read our output went away (``| head``): stop quietly, as command-line
        # tools do, with stdout pointed at /dev/null so that Python's flush at exit does
        # not fail again; 141 is the shell's status for a process ended by SIGPIPE
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as exc:   # (writing an output after the run: a full disk)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:   # (Ctrl-C outside training: loading data, writing outputs)
        print("interrupted", file=sys.stderr)
        return 130   # (the shell's status for a process ended by SIGINT)


# ------------------------------------------------------------------------------ train
MODELS = ("mlp", "cnn", "convnet")
DATASETS = ("fashion-mnist", "mnist", "cifar10", "digits")


def hidden_units(text):
    """'100,100' -> [100, 100]; '' or 'none' -> [] (a linear model)."""
    text = text.strip()
    if text.lower() in ("", "none"):
        return []
    try:
        units = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer widths such as 100,100, got {text!r}") from None
    if any(u < 1 for u in units):
        raise argparse.ArgumentTypeError(f"layer widths must be positive, got {text!r}")
    return units


def _int_at_least(text, least, what):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"expected a {what} int, got {value}")
    return value


def positive_int(text):
    """argparse type: an int >= 1 (epochs, batch sizes, sample counts)."""
    return _int_at_least(text, 1, "positive")


def non_negative_int(text):
    """argparse type: an int >= 0 (seeds: what fastnn.manual_seed takes; step counts)."""
    return _int_at_least(text, 0, "non-negative")


class _Given(argparse.Action):
    """argparse's store (store_true with nargs=0) that also notes the option in the
    namespace's ``given_options``: --resume takes the options left out from the
    checkpoint, and refuses those given with another value than it has."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, True if self.nargs == 0 else values)
        given = getattr(namespace, "given_options", None) or set()
        namespace.given_options = given | {self.dest}


def _given_flag(parser, *flags, **kwargs):
    """A store_true option through _Given."""
    parser.add_argument(*flags, action=_Given, nargs=0, default=False, **kwargs)


def add_runtime_arguments(parser, note_given=False, seed_help=None):
    """--backend, --threads, --seed, --no-progress: shared by commands that compute
    (note_given: --seed through _Given, for train's --resume; seed_help: what --seed
    seeds, when not initialisation, shuffling and dropout)."""
    parser.add_argument("--backend", help="numpy, numba, cython or cuda "
                        "(default: FASTNN_BACKEND or the fastest available)")
    parser.add_argument("--threads", type=int, help="threads for the kernels and BLAS")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        action=_Given if note_given else "store",
                        help=seed_help or "seeds initialisation, shuffling and dropout "
                                               "(default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def apply_runtime_arguments(args):
    """Set the backend, thread count and seed from parsed arguments."""
    import fastnn
    if args.backend:
        try:
            fastnn.set_backend(args.backend)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    if args.threads is not None:
        if args.threads < 1:
            raise CLIError(f"--threads must be positive, got {args.threads}")
        try:
            fastnn.set_num_threads(args.threads)
        except ValueError as exc:  # a count beyond OpenMP's C int
            raise CLIError(f"--threads: {exc}") from None
    fastnn.manual_seed(args.seed)


def add_data_arguments(parser):
    """--data-root (where the dataset's files are) and --download, as every command that
    reads a dataset takes them."""
    parser.add_argument("--data-root", "--data-dir", dest="data_root",
                        help="directory holding the dataset files")
    parser.add_argument("--download", action="store_true",
                        help="download the dataset if missing, into --data-root when "
                             "given, else ~/.cache/fastnn/NAME")


def configure_train(parser):
    parser.add_argument("--model", choices=MODELS, default="mlp", action=_Given)
    parser.add_argument("--dataset", choices=DATASETS, default="fashion-mnist", action=_Given)
    add_data_arguments(parser)
    parser.add_argument("--hidden", "--dnn-hidden-units", dest="hidden", type=hidden_units,
                        default=[100], metavar="UNITS", action=_Given,
                        help="MLP hidden widths, comma-separated (default 100; '' for none)")
    parser.add_argument("--activation", default=None, action=_Given,
                        help="MLP activation: relu (default), leaky_relu, sigmoid, tanh, "
                             "gelu, gelu_tanh, sine, silu, elu, mish")
    parser.add_argument("--neg-slope", dest="negative_slope", type=float, default=None,
                        action=_Given,
                        help="LeakyReLU negative slope (implies --activation leaky_relu)")
    parser.add_argument("--omega", type=float, default=None, action=_Given,
                        help="the Sine activation's frequency, sin(omega x) (implies "
                             "--activation sine; default 1.0)")
    _given_flag(parser, "--batchnorm", help="BatchNorm1d after each hidden Linear layer "
                "of the MLP")
    parser.add_argument("--dropout", type=float, default=0.0, action=_Given,
                        help="MLP dropout probability")
    parser.add_argument("--width", type=float, default=None, action=_Given,
                        help="ConvNet width multiplier (--model convnet only; default 1.0)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        action=_Given, help="the parameters' and the data's dtype "
                        "(default float32)")
    parser.add_argument("--optimizer", choices=("sgd", "adam", "adamw", "rmsprop", "adagrad",
                                                "adamax", "nadam", "radam", "adadelta",
                                                "rprop", "asgd", "adafactor"),
                        default="sgd", action=_Given,
                        help="adamw: decoupled weight decay (--weight-decay); rprop takes "
                             "no weight decay")
    parser.add_argument("--lr", "--learning-rate", dest="lr", type=float, default=None,
                        action=_Given,
                        help="learning rate (default 0.1 for SGD, 1.0 for Adadelta, 0.01 "
                             "for Adagrad, Rprop, ASGD and Adafactor, 0.002 for Adamax and "
                             "NAdam, 0.001 for Adam, AdamW, RAdam and RMSprop: PyTorch's "
                             "defaults but SGD's and RMSprop's)")
    parser.add_argument("--momentum", type=float, default=None, action=_Given,
                        help="SGD momentum (0.9; SGD only: refused with another optimizer)")
    parser.add_argument("--weight-decay", type=float, default=0.0, action=_Given)
    parser.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant",
                        action=_Given,
                        help="constant, or cosine decay to 0 over the run (per step)")
    _given_flag(parser, "--standardize",
                help="subtract the training set's mean pixel, divide by its std")
    parser.add_argument("--batch-size", type=int, default=128, action=_Given)
    parser.add_argument("--epochs", type=int, default=None,
                        help="passes over the training set (default 10, or as many as "
                             "--max-steps needs; with --resume counted from the first "
                             "run's start)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="stop after this many optimizer steps (with --resume counted "
                             "from the first run's start)")
    parser.add_argument("--eval-freq", type=int, default=None,
                        help="also evaluate on the test set every this many steps (0 or "
                             "left out: only after each epoch)")
    add_runtime_arguments(parser, note_given=True)
    parser.add_argument("--metrics", help="write the metrics JSON here")
    parser.add_argument("--plot", help="write the loss/accuracy curves here (PNG, or "
                        "the format the extension names: .svg, .pdf, .jpg...)")
    parser.add_argument("--save", help="save the model, optimizer and training state to "
                        "this .npz")
    parser.add_argument("--resume", metavar="PATH",
                        help="continue the run a --save checkpoint holds (the training "
                             "options left out are the checkpoint's; --epochs, --max-steps "
                             "and --eval-freq take their defaults, and the outputs, "
                             "--data-root and --no-progress are this run's)")
    parser.set_defaults(func=run_train)


#: the options that shape the MLP only (refused with --model cnn or convnet)
MLP_OPTIONS = ("hidden", "activation", "negative_slope", "omega", "batchnorm", "dropout")

#: the activation each activation parameter belongs to (its option implies it)
_PARAMETER_OF = {"negative_slope": "leaky_relu", "omega": "sine"}
_PARAMETER_DEFAULTS = {"negative_slope": 0.01, "omega": 1.0}


def _check_train_args(args):
    for name in ("batch_size", "epochs", "max_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.eval_freq is not None and args.eval_freq < 0:   # (0: off, as fit's eval_freq=0)
        raise CLIError(f"--eval-freq must be 0 (off) or positive, got {args.eval_freq}")
    if args.negative_slope is not None and args.omega is not None:
        raise CLIError("--neg-slope (leaky_relu) and --omega (sine) set two different "
                       "activations; give one")
    for dest, activation in _PARAMETER_OF.items():
        if getattr(args, dest) is not None:
            if args.activation not in (None, activation):
                raise CLIError(f"{_flag(dest)} applies to {activation}, not --activation "
                               f"{args.activation}")
            args.activation = activation
    args.activation = args.activation or "relu"
    for dest, default in _PARAMETER_DEFAULTS.items():
        if getattr(args, dest) is None:
            setattr(args, dest, default)
    if args.lr is None:
        args.lr = {"sgd": 0.1, "adagrad": 1e-2, "adamax": 2e-3, "nadam": 2e-3,
                   "adadelta": 1.0, "rprop": 1e-2, "asgd": 1e-2,
                   "adafactor": 1e-2}.get(args.optimizer, 1e-3)
    if args.momentum is not None and args.optimizer != "sgd":
        raise CLIError(f"--momentum applies to --optimizer sgd, not {args.optimizer}")
    if args.momentum is None and args.optimizer == "sgd":
        args.momentum = 0.9
    if args.optimizer == "rprop" and args.weight_decay:
        raise CLIError("--weight-decay does not apply to --optimizer rprop (PyTorch's Rprop "
                       "has none)")
    if args.epochs is None and args.max_steps is None:
        args.epochs = 10
    given = getattr(args, "given_options", set())
    mlp_only = [dest for dest in MLP_OPTIONS if dest in given
                or (dest in ("batchnorm", "dropout") and getattr(args, dest))
                or (dest == "hidden" and args.hidden != [100])]
    if args.model != "mlp" and mlp_only:   # (they were ignored: the same run without them)
        verb = "applies" if len(mlp_only) == 1 else "apply"
        raise CLIError(f"{', '.join(map(_flag, mlp_only))} {verb} only to --model mlp, "
                       f"not {args.model}")
    if not args.hidden and (args.batchnorm or args.dropout):   # (they were ignored)
        raise CLIError("--batchnorm and --dropout act on hidden layers, and --hidden '' "
                       "gives a linear model without any")
    if args.width is not None and args.model != "convnet":
        raise CLIError("--width applies to --model convnet")
    _check_output_paths(args)


#: options a resumed run takes from its checkpoint when they are left out. Those that
#: shape the model, the data, the batches or the random draws must then be the
#: checkpoint's (one given with another value is refused); the optimizer's
#: hyper-parameters may be changed (set on its param groups after the state is loaded).
RESUME_FIXED = ("model", "dataset", "hidden", "activation", "negative_slope", "omega",
                "batchnorm", "dropout", "width", "dtype", "standardize", "optimizer",
                "lr_schedule", "batch_size", "seed")
RESUME_CHANGEABLE = ("lr", "momentum", "weight_decay")
#: the runtime options a resumed run takes from its checkpoint when left out (any value
#: may be given instead)
RESUME_RUNTIME = ("backend", "threads")


def _flag(dest):
    return "--" + {"negative_slope": "neg-slope"}.get(dest, dest.replace("_", "-"))


def _show(dest, value):
    if dest == "hidden":
        return "''" if not value else ",".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def read_resume(args):
    """The training record of --resume's checkpoint ({'config', 'train_state',
    'history'}), with the options left out of args taken from its config.
    CheckpointError for a file that is missing, damaged or holds no training state;
    CLIError for options given with other values than the checkpoint's."""
    from .io import CheckpointError, read_metadata
    path = args.resume
    if path == "" or os.path.isdir(path):
        raise CLIError(f"--resume expects a checkpoint file, got {path!r}")
    try:
        meta = read_metadata(path)
    except FileNotFoundError:
        raise CheckpointError(f"--resume: no such file {path!r}") from None
    except OSError as exc:
        raise CheckpointError(f"--resume: cannot read {path!r}: "
                              f"{exc.strerror or exc}") from None
    record = meta.get("extra")
    if (not isinstance(record, dict) or not isinstance(record.get("config"), dict)
            or not isinstance(record.get("train_state"), dict)):
        raise CheckpointError(
            f"--resume: {path} holds no training state (epoch and step counters, "
            f"shuffling and dropout generators): it was written by fastnn.save, or by "
            f"`fastnn train --save` before --resume existed. fastnn.load(path) loads its "
            f"model; a run that resumes needs a checkpoint of this version's --save")
    config = record["config"]
    given = getattr(args, "given_options", set())
    # (an activation parameter of an activation the run does not use is no difference)
    differ = [dest for dest in RESUME_FIXED
              if dest in given and dest in config and getattr(args, dest) != config[dest]
              and _PARAMETER_OF.get(dest, config.get("activation")) == config.get("activation")]
    implied = None
    for dest, activation in _PARAMETER_OF.items():
        if (dest in given and "activation" not in given
                and config.get("activation") != activation):
            differ.append("activation")   # (--neg-slope implies leaky_relu, --omega sine)
            args.activation, implied = activation, _flag(dest)
    if differ:
        pairs = ", ".join(f"{_flag(d)} {_show(d, getattr(args, d))}"
                          f"{f' (as {implied} implies)' if d not in given else ''} (the "
                          f"checkpoint's: {_show(d, config[d])})" for d in differ)
        raise CLIError(f"--resume {path}: this run asks {pairs}; a resumed run keeps the "
                       f"checkpoint's model, data, batches and seed (leave these options "
                       f"out to take its values)")
    for dest in RESUME_FIXED + RESUME_CHANGEABLE:
        if dest not in given and dest in config and _PARAMETER_OF.get(
                dest, args.activation) == args.activation:
            setattr(args, dest, config[dest])
    # --backend and --threads left out are the checkpoint's too (a run trained on the GPU
    # resumes there, not on the default CPU backend; bit for bit needs both); given, any
    # value goes (a GPU run may go on on a machine without one)
    taken = [dest for dest in RESUME_RUNTIME
             if getattr(args, dest) is None and config.get(dest) is not None]
    for dest in taken:
        setattr(args, dest, config[dest])
    import fastnn
    if "backend" in taken and args.backend not in fastnn.backends():
        raise CLIError(f"--resume {path}: the checkpoint's run used --backend {args.backend}, "
                       f"which is not available here (available: "
                       f"{', '.join(fastnn.backends())}); give --backend to resume on one "
                       f"of those")
    return record


def _check_resume_counts(args, resume, num_samples):
    """CheckpointError when the checkpoint's training state does not fit this run's data
    (another number of samples) or is damaged; CLIError when the resumed run has nothing
    left to train (--epochs and --max-steps count from the first run's start)."""
    from .io import CheckpointError
    from .train import check_resume, finished_counts
    try:
        state = check_resume(resume, num_samples, args.batch_size)
    except ValueError as exc:
        why = str(exc).removeprefix("fit: resume: ")
        raise CheckpointError(f"--resume {args.resume}: {why}") from None
    finished, finished_steps = finished_counts(state)
    if args.max_steps is not None and finished_steps >= args.max_steps:
        more = f"--max-steps above {finished_steps}"
    elif args.epochs is not None and finished >= args.epochs:
        more = f"--epochs above {finished}"
    else:
        return
    raise CLIError(f"--resume {args.resume}: the checkpoint's run has made {state['step']} "
                   f"steps ({finished} whole epoch{'s' if finished != 1 else ''}) already, "
                   f"and --epochs and --max-steps count from its start: nothing left to "
                   f"train; ask for more ({more})")


def _existing_ancestor(path):
    """The deepest of path (made absolute) and the folders above it that exists."""
    up = os.path.abspath(path)
    while not os.path.exists(up):
        up = os.path.dirname(up)
    return up


def output_path_problem(path):
    """Why ``path`` cannot be written as a file, or None: it is a folder, or a folder on
    its way exists as a file (found before a run, not after it). A symbolic link is
    checked as the file it names (written through, as open() does)."""
    if path == "":
        return "expects a file path, got ''"
    if os.path.isdir(path) or path.endswith(tuple(filter(None, (os.sep, os.altsep)))):
        return f"expects a file path, got {path!r} (a folder)"
    from .io import is_special_file, not_creatable
    if is_special_file(path):   # (a device such as /dev/stdout: written in place)
        return None if os.access(path, os.W_OK) else f"cannot be written ({path!r})"
    path = os.path.realpath(path)
    parent = _existing_ancestor(os.path.dirname(path))
    if not os.path.isdir(parent):
        return f"expects a file path, got {path!r} ({parent!r} is a file, not a folder)"
    # the folder is made and a file tried in it, so that one that cannot be made or
    # written is found before training; then the folders made are removed again (they
    # are made for good after the run), so that a run refused later leaves nothing
    folder = os.path.dirname(os.path.abspath(path))
    missing, up = [], folder
    while not os.path.exists(up):
        missing.append(up)
        up = os.path.dirname(up)
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:   # (a file is replaced by a new one, renamed over it)
        replaced = f"{path!r} is replaced by a new file, and " if os.path.exists(path) else ""
        return f"cannot be written: {replaced}{not_creatable(exc, folder)}"
    finally:
        for made in missing:   # (deepest first)
            try:
                os.rmdir(made)
            except OSError:
                pass
    return None


def check_paths_apart(paths, inputs=(), error=CLIError, allowed=()):
    """Refuse, before a run, output paths that cannot be written (a folder, or under a
    file) and two paths naming one file, which the later write would replace (an output
    over another, or over an input that the run reads). paths: (flag, path) pairs in
    order; inputs: the flags of those that are read (not checked as outputs); allowed:
    (flag, earlier flag) pairs that may name one file. Raises error."""
    named = {}
    for flag, path in paths:
        problem = None if flag in inputs else output_path_problem(path)
        if problem:
            raise error(f"--{flag} {problem}")
        key = os.path.realpath(path)
        other = named.get(key)
        if other is not None and (flag, other) not in allowed:
            raise error(f"--{flag} and --{other} name the same file ({path!r}); "
                        f"give each its own")
        named.setdefault(key, flag)


def _check_output_paths(args):
    """Refuse --metrics/--plot/--save paths that cannot be written (a folder, or under a
    file) before training, not after, and two of them (or one and --resume) naming one
    file, which the later write would replace (--metrics over the only checkpoint); --save
    may be --resume's file (a run saved over the checkpoint it resumed)."""
    flags = ("resume", "save", "metrics", "plot")
    check_paths_apart([(flag, getattr(args, flag)) for flag in flags
                       if getattr(args, flag, None) is not None],
                      inputs=("resume",), allowed={("save", "resume")})


def load_dataset(args):
    """The dataset as (x_train, y_train, x_test, y_test), shaped for ``args.model``; with
    --standardize, the training set's pixel mean and std are kept in
    ``args.pixel_mean`` / ``args.pixel_std`` (saved in the config of --save, so that
    ``dream`` feeds its images as training did)."""
    from . import data
    x_train, y_train, x_test, y_test = data.load(
        args.dataset, root=args.data_root, download=args.download, flatten=args.model == "mlp",
        dtype=args.dtype)
    if len(y_train) == 0:   # (an empty test split is allowed: its accuracy is NaN)
        raise CLIError(f"--dataset {args.dataset}: the training split holds no images; "
                       f"there is nothing to train on")
    if args.model != "mlp" and x_train.ndim == 3:  # grey images: add the channel axis
        x_train, x_test = x_train[:, None], x_test[:, None]
    if args.standardize:  # one scalar mean and std, from the training set only
        mean, std = float(x_train.mean()), float(x_train.std())
        if not std > 0:   # (torchvision's Normalize refuses std 0 too)
            raise CLIError(f"--standardize: every training pixel is {mean:.6g} (std 0), "
                           f"so there is no spread to divide by; leave --standardize out")
        args.pixel_mean, args.pixel_std = mean, std
        x_train = (x_train - mean) / std
        x_test = (x_test - mean) / std
    return x_train, y_train, x_test, y_test


def build_model(args, input_shape, num_classes):
    """The network ``args`` describes for inputs of ``input_shape`` (no batch axis)."""
    from . import models
    if args.model == "mlp":
        return models.MLP(int(math.prod(input_shape)), args.hidden, num_classes,
                          activation=args.activation, negative_slope=args.negative_slope,
                          batchnorm=args.batchnorm, dropout=args.dropout, omega=args.omega)
    class_name = {"cnn": "SmallCNN", "convnet": "ConvNet"}[args.model]
    cls = getattr(models, class_name, None)
    if cls is None:
        raise CLIError(f"--model {args.model} needs fastnn.models.{class_name}, "
                       f"which this installation does not have")
    channels, size = input_shape[0], input_shape[1]
    if len(input_shape) == 3 and input_shape[1] != input_shape[2]:
        raise CLIError(f"--model {args.model} takes square images ({class_name} is built "
                       f"for input_size x input_size), got {input_shape[1]}x"
                       f"{input_shape[2]}; --model mlp takes any size")
    kwargs = {"in_channels": channels, "input_size": size, "num_classes": num_classes}
    if args.width is not None:
        kwargs["width"] = args.width
    return cls(**kwargs)


def _check_batch_of_one(model, x_train, batch_size):
    """A CLIError, before any training, when a batch of one sample (every batch with
    --batch-size 1, else each epoch's last batch when one sample is left over) is one
    the model cannot train on: a BatchNorm over a single value per channel (PyTorch
    raises there too). Tried on a copy of the model, with fastnn's random generator put
    back after it (a dropout layer draws from it), so nothing is changed."""
    import copy

    from . import random as _random
    if batch_size != 1 and len(x_train) % batch_size != 1:
        return
    state = _random.get_state()
    try:
        copy.deepcopy(model).train()(x_train[:1])
    except ValueError as exc:
        which = ("every batch holds one sample (--batch-size 1)" if batch_size == 1 else
                 f"the last batch of each epoch holds one sample ({len(x_train)} training "
                 f"samples, --batch-size {batch_size})")
        raise CLIError(f"{which}, which this model cannot train on: {exc}; choose another "
                       f"--batch-size") from None
    finally:
        _random.set_state(state)


def _load_resumed(args, model, optimizer):
    """Load --resume's model and optimizer state (CheckpointError when they do not fit),
    then set the optimizer hyper-parameters given on the command line."""
    from .io import load_checkpoint
    load_checkpoint(args.resume, model=model, optimizer=optimizer)
    given = getattr(args, "given_options", set())
    for group in optimizer.param_groups:
        if "lr" in given:
            group["lr"] = args.lr
            if "initial_lr" in group:   # (what --lr-schedule scales)
                group["initial_lr"] = args.lr
        for dest in ("momentum", "weight_decay"):
            if dest in given and dest in group:
                group[dest] = getattr(args, dest)


def build_optimizer(args, parameters):
    from . import optim
    if args.optimizer == "sgd":
        return optim.SGD(parameters, lr=args.lr, momentum=args.momentum,
                         weight_decay=args.weight_decay)
    if args.optimizer == "adamw":
        return optim.AdamW(parameters, lr=args.lr, weight_decay=args.weight_decay)
    if args.optimizer == "rmsprop":
        return optim.RMSprop(parameters, lr=args.lr, weight_decay=args.weight_decay)
    if args.optimizer == "adagrad":
        return optim.Adagrad(parameters, lr=args.lr, weight_decay=args.weight_decay)
    if args.optimizer == "rprop":
        return optim.Rprop(parameters, lr=args.lr)
    named = {"adamax": optim.Adamax, "nadam": optim.NAdam, "radam": optim.RAdam,
             "adadelta": optim.Adadelta, "asgd": optim.ASGD, "adafactor": optim.Adafactor}
    return named.get(args.optimizer, optim.Adam)(parameters, lr=args.lr,
                                                 weight_decay=args.weight_decay)


def _write_json(path, payload):
    """Write payload as JSON to path: through a temporary file renamed over the file a
    symbolic link names (the link stays), or in place for a device or FIFO."""
    from .io import make_parent_folder, write_atomically
    make_parent_folder(path)

    def dump(f):
        json.dump(payload, f, indent=2)
        f.write("\n")
    # (a temporary name of its own, removed when the write fails or is interrupted)
    write_atomically(path, dump, text=True)


def _describe(args, input_shape, num_classes):
    if args.model == "mlp":
        widths = [int(math.prod(input_shape))] + args.hidden + [num_classes]
        parts = [args.activation]   # (what tells two runs' curves apart in a plot title)
        if args.hidden and args.batchnorm:
            parts.append("BatchNorm")
        if args.hidden and args.dropout:
            parts.append(f"dropout {args.dropout:g}")
        return f"MLP {'-'.join(map(str, widths))} ({', '.join(parts)})"
    name = {"cnn": "SmallCNN", "convnet": "ConvNet"}[args.model]
    return f"{name} on {'x'.join(map(str, input_shape))} inputs"


def run_train(args):
    """Train as ``args`` says; print per-epoch lines, end with the test accuracy."""
    import numpy as np

    import fastnn
    from . import nn
    from .train import TrainingInterrupted, fit

    record = read_resume(args) if args.resume is not None else None
    _check_train_args(args)
    apply_runtime_arguments(args)
    x_train, y_train, x_test, y_test = load_dataset(args)
    resume = None
    if record is not None:   # (what fit continues: the earlier curves and train_state)
        history = record.get("history")
        resume = {**(history if isinstance(history, dict) else {}),
                  "train_state": record["train_state"]}
        _check_resume_counts(args, resume, len(y_train))
    # every dataset of --dataset has ten classes: a split whose labels stop short of 9
    # still trains a 10-way classifier (the readers refuse labels above 9); the test split
    # may be empty
    num_classes = max(10, int(max(y_train.max(), y_test.max(initial=0))) + 1)
    input_shape = x_train.shape[1:]
    try:  # the constructors check hyper-parameters (widths, dropout p, lr...)
        model = build_model(args, input_shape, num_classes)
        if args.dtype != "float32":   # (the models are built in float32)
            model.to_dtype(args.dtype)
        if fastnn.get_backend() == "cuda":  # parameters and optimizer state on the GPU
            model.to("cuda")
        optimizer = build_optimizer(args, model.parameters())
    except (ValueError, TypeError) as exc:
        raise CLIError(str(exc)) from None
    if record is not None:
        _load_resumed(args, model, optimizer)
    _check_batch_of_one(model, x_train, args.batch_size)
    loss_fn = nn.CrossEntropyLoss()
    backend, threads = fastnn.get_backend(), fastnn.get_num_threads()
    description = _describe(args, input_shape, num_classes)
    print(f"{description} on {args.dataset} ({len(y_train)} train, {len(y_test)} test), "
          f"{args.optimizer} lr {args.lr}, batch {args.batch_size}, backend {backend}, "
          f"{threads} thread{'s' if threads != 1 else ''}"
          f"{'' if args.dtype == 'float32' else ', ' + args.dtype}", flush=True)
    if record is not None:
        state = record["train_state"]
        print(f"resuming {args.resume} after step {state['step']} (epoch {state['epoch']}"
              f"{'' if state['batches_done'] == state['batches_per_epoch'] else ', in part'}"
              f"{', its evaluation still to make' if state.get('evaluated') is False else ''})",
              flush=True)
    config = {k: v for k, v in vars(args).items() if k not in ("func", "given_options")}
    # the backend the run used, given or not (FASTNN_BACKEND, the default): --resume takes
    # it, so the run goes on as one (the thread count left out stays the machine's own)
    config["backend"] = backend
    try:
        history = fit(model, loss_fn, optimizer, (x_train, y_train), (x_test, y_test),
                      epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                      max_steps=args.max_steps, eval_freq=args.eval_freq,
                      lr_schedule=args.lr_schedule, progress=not args.no_progress,
                      resume=resume)
    except TrainingInterrupted as exc:
        return _stop_interrupted(args, exc, model, optimizer, config)
    test_loss, test_accuracy = history["test_loss"][-1], history["test_accuracy"][-1]
    metrics = {
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "train_accuracy": history["train_accuracy_final"],
        "train_loss": history["train_loss"][-1],
        "curves": {k: history[k] for k in ("epoch", "train_loss", "train_accuracy",
                                           "test_loss", "test_accuracy")},
        "seconds_per_epoch": history["seconds_per_epoch"],
        "mean_seconds_per_epoch": float(np.mean(history["seconds_per_epoch"])),
        "samples_per_second": history["samples_per_second"],
        "steps": history["steps"],
        "loss_name": history.get("loss_name"),   # (the loss the curves' 'loss' is)
        "backend": backend,
        "threads": threads,
        "model": description,
        "parameters": int(sum(p.data.size for p in model.parameters())),
        "dataset": {"name": args.dataset, "train": len(y_train), "test": len(y_test)},
        "versions": {"fastnn": fastnn.__version__, "numpy": np.__version__,
                     "python": sys.version.split()[0]},
        "config": config,
    }
    if "step_curve" in history:
        metrics["step_curve"] = history["step_curve"]
    # the checkpoint first: a cheaper output that fails (a full disk) must not lose the
    # trained model
    if args.save:
        _save_checkpoint(args, model, optimizer, config, history)
        print(f"model written to {args.save}")
    if args.metrics:
        _write_json(args.metrics, metrics)
        print(f"metrics written to {args.metrics}")
    if args.plot:
        from .plotting import plot_curves
        plot_curves(history, args.plot, title=f"{description}, {args.dataset}, {backend}")
        print(f"curves written to {args.plot}")
    print(f"train accuracy {metrics['train_accuracy']:.4f}, "
          f"{metrics['mean_seconds_per_epoch']:.2f} s/epoch, "
          f"{metrics['samples_per_second']:,.0f} samples/s")
    print(f"test accuracy: {test_accuracy:.4f}")
    return 0


def _save_checkpoint(args, model, optimizer, config, record):
    """--save: the model, the optimizer and the training record --resume continues from
    (fastnn.io.load_checkpoint's extra), of record: what fit returned, or a
    TrainingInterrupted's metrics (the resumed record, for a resumed run stopped before
    its first update)."""
    import fastnn
    from .io import make_parent_folder
    from .train import EPOCH_KEYS
    make_parent_folder(args.save)   # (made like --metrics' and --plot's folders)
    curves = {k: record.get(k, []) for k in EPOCH_KEYS}   # (a resumed record may lack one)
    if "step_curve" in record:
        curves["step_curve"] = record["step_curve"]
    fastnn.save(model, args.save, optimizer=optimizer,
                extra={"config": config, "train_state": record["train_state"],
                       "history": curves})


def _stop_interrupted(args, exc, model, optimizer, config):
    """Ctrl-C during training: with --save, the checkpoint of the last whole step first
    (a second Ctrl-C while it is written leaves the file as it was); one line on stderr
    saying where the run stopped and what was saved; status 130, the shell's for SIGINT.
    (--metrics and --plot are written by a run that ends.)"""
    where = f"interrupted during {exc.during} (epoch {exc.epoch})"
    if not args.save:
        print(f"{where}; nothing saved (no --save)", file=sys.stderr)
        return 130
    if exc.metrics is None:   # (a fresh run's)
        print(f"{where}, before this run's first update: {args.save} not written",
              file=sys.stderr)
        return 130
    try:
        _save_checkpoint(args, model, optimizer, config, exc.metrics)
    except KeyboardInterrupt:
        print(f"{where}, and again while {args.save} was written: not written (a file "
              f"there is left as it was)", file=sys.stderr)
        return 130
    if exc.during == "the end of the run":   # (its steps all made: no --resume goes on)
        print(f"{where}: the checkpoint of step {exc.step}, the run's last, written to "
              f"{args.save}", file=sys.stderr)
        return 130
    # (--epochs, --max-steps and --eval-freq are not taken from the checkpoint)
    plan = "".join(f" --{name.replace('_', '-')} {getattr(args, name)}"
                   for name in ("epochs", "max_steps", "eval_freq")
                   if getattr(args, name) is not None)
    print(f"{where}: the checkpoint of step {exc.step} written to {args.save}; "
          f"--resume {args.save}{plan} goes on", file=sys.stderr)
    return 130


# ------------------------------------------------------------------------------- demo
# The course's floor, above 0.90 on Fashion-MNIST: an MLP 784-512-512-10 with BatchNorm
# and dropout, SGD with momentum, cosine decay and standardized pixels (0.9044-0.9054
# for seeds 0, 1, 2 in 20 epochs; the 784-100-10 MLP stops near 0.887).
DEMO_ARGS = ["--model", "mlp", "--hidden", "512,512", "--batchnorm", "--dropout", "0.2",
             "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9", "--batch-size", "128",
             "--lr-schedule", "cosine", "--standardize"]


def configure_demo(parser):
    parser.add_argument("--out", default=os.path.join("runs", "demo"),
                        help="directory for metrics.json and curves.png")
    parser.add_argument("--epochs", type=int, default=20)
    add_runtime_arguments(parser)
    parser.set_defaults(func=run_demo)


def run_demo(args):
    """MLP 784-512-512-10 with BatchNorm and dropout on Fashion-MNIST with SGD; the
    digits when Fashion-MNIST is absent."""
    from .data.mnist import find_files
    from .data.paths import cache_dir, search_dirs

    if args.out == "":
        raise CLIError("--out expects a folder, got ''")
    up = _existing_ancestor(args.out)   # the deepest part of --out that exists: a folder?
    if not os.path.isdir(up):   # (else --metrics OUT/metrics.json would be the flag named)
        raise CLIError(f"--out expects a folder, got {args.out!r} " + (
            "(a file)" if up == os.path.abspath(args.out) else
            f"({up!r} is a file, not a folder)"))
    dataset = "fashion-mnist"
    if find_files(dataset) is None:
        print("Fashion-MNIST not found (looked in " + ", ".join(search_dirs(dataset)) +
              "; Debian's dataset-fashion-mnist package installs it, `make data` in a "
              "checkout; `fastnn.data.load('fashion-mnist', download=True)` downloads it "
              f"into {cache_dir()}; or set FASTNN_DATA). "
              "Using scikit-learn's bundled digits instead.", flush=True)
        dataset = "digits"
    argv = DEMO_ARGS + ["--dataset", dataset, "--epochs", str(args.epochs),
                        "--seed", str(args.seed),
                        "--metrics", os.path.join(args.out, "metrics.json"),
                        "--plot", os.path.join(args.out, "curves.png")]
    if args.backend:
        argv += ["--backend", args.backend]
    if args.threads is not None:
        argv += ["--threads", str(args.threads)]
    if args.no_progress:
        argv.append("--no-progress")
    train_parser = argparse.ArgumentParser(prog="fastnn demo")
    configure_train(train_parser)
    return run_train(train_parser.parse_args(argv))
