"""The training loop: mini-batches through explicit forward and backward calls.

``fit`` zeroes the optimizer's gradients, then runs ``model.forward``,
``loss.forward``, ``loss.backward``, ``model.backward``, ``optimizer.step`` and
``optimizer.zero_grad`` per batch (so gradients left from before, a gradient check's,
do not enter the first step, as in PyTorch's loop that zeroes before each backward),
shows a tqdm bar per epoch (loss and samples/s), evaluates on the test set in
eval mode, and returns a metrics dict. A NaN or infinite loss raises
``TrainingDiverged`` before the bad gradient reaches the parameters. Ctrl-C raises
``TrainingInterrupted`` (a KeyboardInterrupt) with the state of the last whole step,
which ``fit(..., resume=...)`` continues.

A model moved to the GPU (``model.to("cuda")``) trains there: each batch is copied to
the device once, activations, gradients and optimizer state stay there, and only the
loss and the logits (for the accuracy) come back.
"""
import copy
import inspect
import math
import signal
import threading
import time

import numpy as np

from . import device as _device
from . import random as _random
from .data.loader import DataLoader, as_generator
from .nn.loss import BCELoss, BCEWithLogitsLoss, _ClassTargets
from .nn.module import evaluating


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite (or the last update left a parameter so: its name
    in ``parameter``). ``step`` (1-based), ``epoch`` and ``loss`` say where."""

    def __init__(self, step, epoch, loss, parameter=None):
        self.step, self.epoch, self.loss, self.parameter = step, epoch, loss, parameter
        if parameter is None:
            what = (f"the loss became {loss} at step {step} (epoch {epoch}); parameters "
                    f"were not updated with that step's gradient, and running statistics "
                    f"are as before it")
        else:
            what = (f"the update of the last step, {step} (epoch {epoch}, loss {loss}), "
                    f"left NaN or infinite values in {parameter}")
        super().__init__(f"training diverged: {what}. Try a smaller learning rate.")

    def __reduce__(self):   # (pickled by its fields: a process pool sends it back)
        return type(self), (self.step, self.epoch, self.loss, self.parameter)


class TrainingInterrupted(KeyboardInterrupt):
    """A KeyboardInterrupt (Ctrl-C) that stopped ``fit``, raised where the run is whole.

    ``step``: the steps whose updates were made (counted from the first run's start when
    resuming); ``epoch``: the epoch the interrupt came in; ``during``: what it stopped
    ('step 5', 'the evaluation after step 4', 'the end of the run'); ``metrics``: what
    ``fit`` would have returned for a run of ``step`` steps, without its evaluations not
    made yet ('train_state', the per-epoch lists and 'step_curve': what ``resume=``
    continues, bit for bit as the uninterrupted run; the model and optimizer hold that
    state); for a call that made no step, the ``resume`` it was given (None for a fresh
    run). (A Ctrl-C outside the main thread, or under a SIGINT handler of the user's, or a
    second one while fit holds the first, may land inside an update: it stays a plain
    KeyboardInterrupt.)"""

    def __init__(self, step, epoch, during, metrics):
        self.step, self.epoch, self.during, self.metrics = step, epoch, during, metrics
        super().__init__(f"training interrupted during {during} (epoch {epoch})")

    def __reduce__(self):
        return type(self), (self.step, self.epoch, self.during, self.metrics)


class _Interrupts:
    """Where a Ctrl-C may stop ``fit``: inside its windows, ``with interrupts.window:``
    (a step's forward and backward, whose changes the step's undo takes back; an
    evaluation, which changes nothing). In the main thread under Python's own SIGINT
    handler, fit's handler (installed by ``with interrupts:`` for the run) raises
    KeyboardInterrupt only there and notes one that comes elsewhere (an optimizer update,
    which a native kernel makes before Python sees the signal, and the bookkeeping after
    it) for the next window, or for the run's end; a second one while it holds one raises
    at once, wherever it lands (a way out of what does not end: an output blocked on a
    pipe nobody reads, which Python retries after the handler). ``landed``: a
    KeyboardInterrupt left a window (the user's code may raise one too)."""

    def __init__(self):
        self.open = self.pending = self.landed = False
        self.previous = None
        self.window = _Window(self)

    def __enter__(self):
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        if self.pending and exc_type is None:   # (a Ctrl-C after the last window)
            raise KeyboardInterrupt

    def _handle(self, signum, frame):
        if self.open:
            self.landed = True
        elif not self.pending:
            self.pending = True
            return
        raise KeyboardInterrupt   # (in a window, or a second one while one is held)



class _Window:
    """_Interrupts' window (a class: a step's, so a few hundred nanoseconds)."""

    __slots__ = ("interrupts",)

    def __init__(self, interrupts):
        self.interrupts = interrupts

    def __enter__(self):
        interrupts = self.interrupts
        interrupts.open = True
        if interrupts.pending:   # (one noted since the last window)
            interrupts.pending = False
            interrupts.landed = True
            raise KeyboardInterrupt

    def __exit__(self, exc_type, exc, tb):
        self.interrupts.open = False
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.interrupts.landed = True


def _check_parameters_finite(model, step, epoch, loss):
    """TrainingDiverged when a parameter holds NaN or inf after the run's last update:
    the loss checked before each update sees every update's result but the last one's
    (a run whose final step blew up returned its NaN weights, and the CLI saved them
    over a good checkpoint). One pass over the parameters a run."""
    for name, p in model.named_parameters():
        if not np.isfinite(_device.to_host(p.data)).all():
            raise TrainingDiverged(step, epoch, loss, parameter=name)


class _StepUndo:
    """What a training step's forward changes besides what it returns: the model's
    buffers (BatchNorm's running statistics and batch counts), kept before each step so
    that a step that fails (its loss NaN or infinite, a bad batch, an interrupt) leaves
    them as they were, as it leaves the parameters (DESIGN.md: a failed call leaves
    parameters and buffers as they were). A NaN batch had left NaN running statistics
    behind, which every later update mixes in: a second fit on clean data gave NaN in
    eval mode for good. (Dropout masks already drawn stay drawn, as in PyTorch and as a
    failing Sequential leaves them.)

    The buffers are listed at the first two steps (a lazy layer makes its own at its
    first input) and copied into the same arrays afterwards (no allocation a step)."""

    def __init__(self, model):
        self.model = model
        self.pairs = ()   # (buffer, its copy before this step's forward)
        self.saved = 0   # steps of this fit so far

    def save(self):
        self.saved += 1
        if self.saved <= 2:
            self.pairs = tuple((buf, _device.host_copy(buf)) for buf in self.model.buffers()
                               if buf is not None)
        else:
            for buf, copy in self.pairs:
                if type(buf) is np.ndarray:
                    np.copyto(copy, buf)
                else:
                    copy[...] = _device.host_copy(buf)

    def restore(self):
        for buf, copy in self.pairs:
            _device.namespace_of(buf).copy_into(buf, copy)


def progress_bar(total, desc, enabled, initial=0, unit="batch"):
    """A tqdm bar of total units (closed by the caller), or None when not enabled."""
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True,
                initial=initial)


def _write(message, bar_enabled):
    if bar_enabled:
        from tqdm.auto import tqdm
        tqdm.write(message)  # keeps an open bar intact
    else:
        print(message, flush=True)


def cosine_schedule(step, total_steps):
    """Learning-rate factor 0.5 * (1 + cos(pi * step / total_steps)): 1 at step 0, 0 at the end."""
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))


LR_SCHEDULES = {"constant": None, "cosine": cosine_schedule}


def _schedule_lr(optimizer, lr_schedule, base_lrs, step, total_steps):
    """Each group's rate for the optimizer step after ``step`` steps: its base rate
    times ``lr_schedule(step, total_steps)`` (nothing without a schedule). fit sets it
    as it starts and after each step, as PyTorch's ``opt.step(); sched.step()`` loop
    does, so the optimizer ends at the rate of step total_steps."""
    if lr_schedule is None:
        return
    factor = lr_schedule(step, total_steps)
    for group, base_lr in zip(optimizer.param_groups, base_lrs):
        group["lr"] = base_lr * factor


def _batch_mover(model):
    """Moves an input batch to where the model's parameters live."""
    return _device.namespace(getattr(model, "device", "cpu")).put


# The binary losses' decision threshold on the model's output, as kinds of accuracy:
# BCEWithLogitsLoss's outputs are logits (class 1 above 0), BCELoss's probabilities.
_BINARY_KINDS = ((BCEWithLogitsLoss, "logits>0"), (BCELoss, "probabilities>0.5"))


def _accuracy_kind(targets, loss_fn=None):
    """How fit and evaluate count correct predictions for these targets: 'labels' (class
    indices: (N,), or (N, d1, ...) for logits (N, C, d1, ...)), 'argmax' (one-hot or
    probability rows, (N, C, ...) with C >= 2, each a distribution over dim 1: compared
    with the logits by argmax), 'logits>0' / 'probabilities>0.5' (targets of 0s and 1s
    for a BCEWithLogitsLoss / BCELoss: each output thresholded, as
    ``(torch.sigmoid(out) > 0.5) == y`` counts) or None (any other target, a
    regression's, or soft BCE targets: accuracy is NaN)."""
    if not hasattr(targets, "dtype"):  # (a list)
        targets = np.asarray(targets)
    if np.issubdtype(targets.dtype, np.integer):  # (before any copy of device labels)
        return "labels"
    targets = np.asarray(_device.to_host(targets))
    for loss_type, kind in _BINARY_KINDS:
        if isinstance(loss_fn, loss_type):
            binary = (np.issubdtype(targets.dtype, np.floating) and targets.size
                      and np.all((targets == 0) | (targets == 1)))
            return kind if binary else None
    if (np.issubdtype(targets.dtype, np.floating) and targets.ndim >= 2
            and targets.shape[1] >= 2 and targets.size and np.all(targets >= 0)
            and np.allclose(targets.sum(axis=1), 1, rtol=0, atol=1e-3)):
        return "argmax"
    return None


def _hits(logits, targets, kind, ignore_index):
    """(correct, counted) predictions of a batch: logits (N, C, ...), targets as kind
    says (see _accuracy_kind); labels equal to ignore_index are not counted. Targets
    that cannot be read as classes of these outputs count nothing (accuracy NaN): labels
    of another shape than (N, d1, ...) (integer regression targets (N, 1) against a
    single output column) or beside a single output column (argmax is always 0 there),
    probability rows of another shape than the logits'."""
    if kind is None or not _classes_of(logits.shape, np.shape(targets), kind):
        return 0, 0
    targets = np.asarray(_device.to_host(targets))
    if kind in ("logits>0", "probabilities>0.5"):
        outputs = _device.to_host(logits)
        predicted = outputs > 0 if kind == "logits>0" else outputs > 0.5
        return int(np.count_nonzero(predicted == (targets == 1))), predicted.size
    predicted = _device.to_host(logits).argmax(axis=1)
    if kind == "argmax":
        return int(np.count_nonzero(predicted == targets.argmax(axis=1))), predicted.size
    if ignore_index is not None:
        kept = targets != ignore_index
        return int(np.count_nonzero((predicted == targets) & kept)), int(np.count_nonzero(kept))
    return int(np.count_nonzero(predicted == targets)), predicted.size


def _classes_of(logits_shape, targets_shape, kind):
    """Whether targets of targets_shape can be compared with outputs (N, C, d1, ...) as
    kind says: labels (N, d1, ...) with C >= 2 (by argmax over axis 1), or probability
    rows and 0/1 targets of the outputs' own shape."""
    if kind != "labels":
        return tuple(targets_shape) == tuple(logits_shape)
    return (len(logits_shape) >= 2 and logits_shape[1] >= 2
            and tuple(targets_shape) == tuple(logits_shape[:1]) + tuple(logits_shape[2:]))


def _ratio(correct, counted):
    return correct / counted if counted else math.nan


def _loss_share(loss_fn, targets, kind):
    """What a batch's mean loss counts for in the mean over a whole set: the sum of the
    class weights of its labels not equal to ignore_index for a CrossEntropyLoss or
    NLLLoss given class labels (the denominator of PyTorch's mean there), else the batch
    size. Summing loss * share over the batches and dividing by the shares' sum gives the
    loss of the whole set in one batch, whatever the batch size."""
    if kind != "labels" or not isinstance(loss_fn, _ClassTargets):
        return len(targets)
    labels = np.asarray(_device.to_host(targets))
    if loss_fn.weight is None:   # (a count: no array of the kept labels)
        return int(np.count_nonzero(labels != loss_fn.ignore_index))
    kept = labels[labels != loss_fn.ignore_index]
    return float(np.asarray(_device.to_host(loss_fn.weight), np.float64)[kept].sum())


def _nothing_to_learn(loss_fn, logits, targets, kind):
    """Whether a batch's NaN loss is PyTorch's 0 / 0 of a CrossEntropyLoss or NLLLoss
    whose labels are all ignore_index, over finite logits: the gradient is then zero (as
    PyTorch's), and the step goes on instead of stopping as diverged."""
    if kind != "labels" or not isinstance(loss_fn, _ClassTargets):
        return False
    labels = np.asarray(_device.to_host(targets))
    return (not np.any(labels != loss_fn.ignore_index)
            and bool(np.isfinite(_device.to_host(logits)).all()))


def _summed_by(loss_fn, where):
    """Whether loss_fn's value is its batch's sum (reduction='sum') rather than a mean,
    for the per-sample mean fit and evaluate report; 'none' is refused (no number)."""
    reduction = getattr(loss_fn, "reduction", "mean")
    if reduction == "none":
        raise ValueError(f"{where}: the loss must reduce to a number (reduction 'mean' or "
                         f"'sum'), got reduction='none'")
    return reduction == "sum"


def evaluate(model, loss_fn, x, y=None, batch_size=1000):
    """Mean loss and accuracy of ``model`` on (x, y), in eval mode, in batches.

    ``evaluate(model, loss_fn, (x, y))`` takes the pair as ``fit``'s ``test_data`` is
    given. x: (N, ...) inputs; y: (N,) int64 class labels (or what the loss takes: labels
    (N, d1, ...) for logits (N, C, d1, ...), one-hot or probability rows, regression
    targets). The model is left in the mode it was in. Returns (loss, accuracy) as
    floats: the loss of the whole set, what loss_fn gives for all of it in one batch,
    whatever batch_size (each batch's mean weighted by its size, or for a
    CrossEntropyLoss or NLLLoss given class weights or ignored labels by the summed
    weight of its labels not ignored, the denominator of PyTorch's mean; for
    reduction='sum' the sums over N), accuracy over the labels not equal to the loss's
    ignore_index, by argmax for one-hot or probability targets, by the output's threshold
    for 0/1 targets of a BCEWithLogitsLoss (0) or BCELoss (0.5), NaN for targets that are
    not classes.
    """
    if y is None:
        if not (isinstance(x, (tuple, list)) and len(x) == 2):
            raise TypeError("evaluate: expected x and y, or one (x, y) pair as fit's "
                            "test_data, got x alone")
        x, y = x
    _check_batch_size("evaluate", "batch_size", batch_size)
    total_loss, loss_weight, correct, counted = 0.0, 0.0, 0, 0
    summed = _summed_by(loss_fn, "evaluate")
    kind, ignore_index = _accuracy_kind(y, loss_fn), getattr(loss_fn, "ignore_index", None)
    move = _batch_mover(model)
    with evaluating(model):   # (every submodule's own mode given back)
        for bx, by in DataLoader(x, y, batch_size=batch_size):
            logits = model.forward(move(bx))
            loss = float(loss_fn.forward(logits, by))
            if summed:
                total_loss += loss
            else:
                share = _loss_share(loss_fn, by, kind)
                if share:   # (a batch of ignored labels only: its mean is 0 / 0)
                    total_loss, loss_weight = total_loss + loss * share, loss_weight + share
            hits = _hits(logits, by, kind, ignore_index)
            correct, counted = correct + hits[0], counted + hits[1]
    mean_loss = _ratio(total_loss, len(y) if summed else loss_weight)
    return mean_loss, _ratio(correct, counted)   # (NaN, NaN) for no data


def _check_batch_size(where, name, value):
    """A batch size of fit or evaluate: an int >= 1 (not the loader's None, unbatched
    samples), checked before any training."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")


def _check_count(name, value, least=1):
    """fit's epochs, max_steps and eval_freq: None or an int >= least."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        kind = "a positive" if least == 1 else "a non-negative"
        raise ValueError(f"fit: {name} must be {kind} int or None, got {value!r}")


def _check_pair(name, pair):
    """fit's ``train_data``/``test_data``: an (x, y) tuple or list, returned as it is;
    TypeError for anything else (a DataLoader, a Dataset: fit batches the arrays itself)."""
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        got = (f"tuple of {len(pair)}" if isinstance(pair, tuple) else
               f"list of {len(pair)}" if isinstance(pair, list) else type(pair).__name__)
        raise TypeError(f"fit: {name} must be an (x, y) pair of arrays, got a {got} (fit "
                        f"makes the batches itself: pass the arrays)")
    return pair


def _shuffle_generator(seed):
    """fit's shuffling generator: for seed None, one seeded by a draw from fastnn's
    generator (so ``fastnn.manual_seed`` repeats the order, as it does a DataLoader's
    with seed=None; before, None was fresh entropy from the OS); else ``as_generator``'s
    (an int seed, or the np.random.Generator given)."""
    return as_generator(_random.draw_seed() if seed is None else seed, "fit")


def fit(model, loss_fn, optimizer, train_data, test_data=None, epochs=1, batch_size=128,
        seed=0, max_steps=None, eval_freq=None, eval_batch_size=1000, lr_schedule=None,
        progress=True, log=True, resume=None):
    """Train ``model`` on ``train_data`` = (x_train, y_train) with mini-batch updates
    (the optimizer's gradients zeroed first: what an earlier backward left is not stepped).

    x_train: (N, ...) float inputs in the model's dtype; y_train: (N,) int64 labels, or
    any target the loss takes (accuracy as ``evaluate`` counts it: NaN for targets that
    are not classes); test_data: (x_test, y_test) or None. Batches are shuffled by a
    generator seeded with ``seed`` (an int or a np.random.Generator; None: a seed drawn
    from fastnn's generator as fit starts, so ``fastnn.manual_seed`` repeats it).
    ``max_steps`` stops after that many optimizer steps (with ``epochs=None`` the number
    of epochs follows from it); ``eval_freq`` also
    evaluates on the test set every that many steps. ``lr_schedule`` ('constant',
    'cosine' or a function (step, total_steps) -> factor) scales every parameter
    group's initial learning rate (its 'initial_lr', set from 'lr' on first use as
    PyTorch's schedulers do, so a second fit starts from it again): the rate is set
    for step 0 as fit starts and for step k after k steps, as a PyTorch loop's
    ``optimizer.step(); scheduler.step()``, so the optimizer is left at the factor of
    step total_steps (0 for 'cosine').
    ``progress`` shows a tqdm bar per epoch; ``log`` prints one line per epoch (and one
    per ``eval_freq`` evaluation).

    ``resume``: the metrics dict an earlier fit returned (after the model and optimizer
    were saved and loaded, or as they are), to continue that run: its 'train_state'
    says where it stopped (epoch, step, the batch within the epoch, the shuffling
    generator's and fastnn's generator's states), and training goes on as if it had
    never stopped: the same batches, dropout masks and schedule, so the parameters come
    out bit for bit as one run's (same backend and threads). ``epochs`` and
    ``max_steps`` are then totals counted from the first run's start (as the PyTorch
    ImageNet example's ``--epochs`` with ``--resume``), and the per-epoch lists and
    'step_curve' continue the earlier ones. The batch size and the number of training
    samples must be the earlier run's; a run with nothing left to do is a ValueError.

    Ctrl-C (SIGINT) stops a step before its update or after it, never inside (fit, in
    the main thread under Python's default handler, holds the signal while the optimizer
    updates, which a native kernel would otherwise do before Python sees it), and raises
    ``TrainingInterrupted``, a KeyboardInterrupt whose ``metrics`` is ``resume``'s value
    for the last whole step: the model and optimizer hold that step's state (the
    interrupted step's running statistics put back), and a resumed run makes the
    evaluations the interrupt stopped before going on. A second Ctrl-C while fit holds
    the first stops it at once, wherever it is (a plain KeyboardInterrupt: the way out of
    an output that blocks, to a pipe nobody reads).

    Returns a metrics dict: per-epoch lists 'epoch', 'train_loss', 'train_accuracy'
    (running means over the epoch's batches, in training mode; the loss weighted as
    ``evaluate`` weighs it), 'test_loss',
    'test_accuracy', 'seconds_per_epoch' (training time, evaluation excluded);
    'steps' (counted from the first run's start when resuming), 'samples_per_second'
    (this call's), final 'train_accuracy_final', 'test_accuracy_final', 'loss_name'
    (loss_fn's class name, 'MSELoss' say: what ``fastnn.plotting.plot_curves`` labels the
    loss axis with), with eval_freq 'step_curve' (step, test_loss, test_accuracy every
    eval_freq steps), and 'train_state' (JSON-serialisable: what ``resume`` takes).
    Raises TrainingDiverged when the loss becomes NaN or infinite; not for a batch whose
    labels are all the loss's ignore_index (PyTorch's mean over none is NaN too, with a
    zero gradient): that step is taken, and the batch is left out of 'train_loss'.
    """
    _check_count("epochs", epochs)
    _check_count("max_steps", max_steps)
    _check_batch_size("fit", "batch_size", batch_size)
    _check_batch_size("fit", "eval_batch_size", eval_batch_size)
    _check_pair("train_data", train_data)
    if test_data is not None:   # its lengths checked now, not by the first evaluation
        x_test, y_test = _check_pair("test_data", test_data)
        DataLoader(x_test, y_test, batch_size=eval_batch_size)
    _check_count("eval_freq", eval_freq, least=0)  # 0, like None: no evaluation by steps
    summed = _summed_by(loss_fn, "fit")
    x_train, y_train = train_data
    if len(x_train) == 0:   # (before the shuffling loader, which refuses it less clearly)
        raise ValueError(f"fit: no training batches ({len(y_train)} samples)")
    # (checked, and its length known, before seed=None draws from fastnn's generator, so
    # a call refused below leaves that generator where it was)
    loader = DataLoader(x_train, y_train, batch_size=batch_size)
    if epochs is None:
        if max_steps is None:
            raise ValueError("fit: give epochs or max_steps")
        epochs = math.ceil(max_steps / len(loader))
    total_steps = epochs * len(loader) if max_steps is None else min(max_steps,
                                                                     epochs * len(loader))
    if resume is not None:
        state = check_resume(resume, len(x_train), batch_size)
        finished, finished_steps = finished_counts(state)
        if finished >= epochs or (max_steps is not None and finished_steps >= max_steps):
            raise ValueError(f"fit: nothing to resume: the earlier run stopped at epoch "
                             f"{state['epoch']}, step {state['step']}; epochs={epochs} and "
                             f"max_steps={max_steps} count from its start")
    if isinstance(lr_schedule, str):
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"fit: unknown lr_schedule {lr_schedule!r}; expected one of "
                             f"{sorted(LR_SCHEDULES)} or a function")
        lr_schedule = LR_SCHEDULES[lr_schedule]
    base_lrs = None if lr_schedule is None else [
        group.setdefault("initial_lr", group["lr"]) for group in optimizer.param_groups]
    kind, ignore_index = _accuracy_kind(y_train, loss_fn), getattr(loss_fn, "ignore_index", None)
    # the shuffling generator, handed to the loader: its state is what a resumed run needs
    shuffle_rng = _shuffle_generator(seed)
    loader = DataLoader(x_train, y_train, batch_size=batch_size, shuffle=True,
                        seed=shuffle_rng)
    history = {key: [] for key in EPOCH_KEYS}
    step_curve = {"step": [], "test_loss": [], "test_accuracy": []}
    step, train_seconds, train_samples = 0, 0.0, 0
    first_epoch, skip, sums = 1, 0, None
    if resume is not None:   # (checked above, before anything changed)
        step, first_epoch, skip, sums = _continue_history(resume, state, history,
                                                          step_curve, len(loader))
        shuffle_rng.bit_generator.state = (state["epoch_shuffle_state"] if skip
                                           else state["shuffle_state"])
        _random.set_state(state["random_state"])
    skip_input_grad = "need_grad_in" in inspect.signature(model.backward).parameters
    move = _batch_mover(model)
    optimizer.zero_grad()   # (what an earlier backward left would enter the first step)
    _schedule_lr(optimizer, lr_schedule, base_lrs, step, total_steps)
    model.train()
    undo = _StepUndo(model)
    # what a Ctrl-C leaves (TrainingInterrupted): the batches of the epoch whose updates
    # are made, whether the evaluations after the last are still owed, and fastnn's
    # generator after the last update or evaluation (a layer may draw in eval mode)
    interrupts = _Interrupts()
    first_step, owed = step, resume is not None and _owed(state)
    random_state, finished, bar, seconds = _random.get_state(), False, None, None
    made = (first_epoch, None)
    epoch, done = first_epoch - 1, len(loader)

    def evaluate_at_step():
        """eval_freq's evaluation after this step, when due and not made yet (one an
        interrupted run owes); returns its seconds."""
        nonlocal random_state
        if (not (eval_freq and test_data is not None and step % eval_freq == 0)
                or step_curve["step"][-1:] == [step]):
            return 0.0
        t0 = time.perf_counter()
        with interrupts.window:
            test_loss, test_acc = evaluate(model, loss_fn, *test_data, eval_batch_size)
        step_curve["step"].append(step)
        step_curve["test_loss"].append(test_loss)
        step_curve["test_accuracy"].append(test_acc)
        random_state = _random.get_state()
        if log:
            _write(f"step {step}: test loss {test_loss:.4f}  test accuracy "
                   f"{test_acc:.4f}", progress)
        return time.perf_counter() - t0

    try:
        with interrupts:
            for epoch in range(first_epoch, epochs + 1):
                bar = progress_bar(len(loader), f"epoch {epoch}/{epochs}", progress,
                                   initial=skip)
                loss_sum, correct, counted, seen, seconds_before = (
                    (sums["loss_sum"], sums["correct"], sums["counted"], sums["seen"],
                     sums["seconds"]) if skip else (0.0, 0, 0, 0, 0.0))
                # what loss_sum is divided by: the samples for reduction='sum', else the
                # batches' _loss_share (their sizes, unless class weights or ignored
                # labels); a state saved before it was kept is one of the batch sizes
                loss_weight = sums.get("loss_weight", sums["seen"]) if skip else 0.0
                # (before the epoch's draw)
                epoch_shuffle_state = shuffle_rng.bit_generator.state
                whole, seconds = skip, None
                start = time.perf_counter()
                eval_seconds = 0.0
                seen_before = seen   # (the resumed epoch's samples of the earlier run)
                for done, (bx, by) in enumerate(loader, start=1):
                    if done <= skip:   # (the batches the resumed run had trained on)
                        if done == skip:   # (their loading is no training time of this run)
                            start = time.perf_counter()
                            if owed:   # (what an interrupted run had not evaluated yet)
                                eval_seconds += evaluate_at_step()
                                if max_steps is not None and step >= max_steps:
                                    break
                        continue
                    undo.save()
                    owed = False
                    try:
                        with interrupts.window:   # (a Ctrl-C here is undone below)
                            logits = model.forward(move(bx))
                            loss = float(loss_fn.forward(logits, by))
                            n = len(by)
                            share = n if summed else _loss_share(loss_fn, by, kind)
                            if not math.isfinite(loss) and not _nothing_to_learn(
                                    loss_fn, logits, by, kind):
                                if bar is not None:
                                    bar.close()
                                raise TrainingDiverged(step + 1, epoch, loss)
                            if skip_input_grad:  # (the first layer's input gradient:
                                # never used here)
                                model.backward(loss_fn.backward(), need_grad_in=False)
                            else:
                                model.backward(loss_fn.backward())
                        # a Ctrl-C from here to the next window waits for it: a native
                        # kernel's update would be made before Python saw the signal
                        optimizer.step()
                    except BaseException:
                        # a step that fails before its update (labels out of range in
                        # this batch, a NaN loss, an interrupt) leaves the running
                        # statistics of the steps before it, as it leaves their
                        # parameters (optimizer.step changes nothing when it fails)
                        undo.restore()
                        raise
                    step += 1
                    _schedule_lr(optimizer, lr_schedule, base_lrs, step, total_steps)
                    optimizer.zero_grad()
                    if share:   # (a batch of ignored labels only: its mean is 0 / 0, left out)
                        loss_sum += loss if summed else loss * share
                        loss_weight += share
                    hits = _hits(logits, by, kind, ignore_index)
                    correct, counted = correct + hits[0], counted + hits[1]
                    seen += n
                    whole, owed, random_state = done, True, _random.get_state()
                    made = (epoch, loss)   # (the last whole step's, for an interrupt)
                    if bar is not None:
                        bar.update(1)
                        last = seen == len(y_train)
                        if step % 10 == 0 or last:
                            elapsed = time.perf_counter() - start - eval_seconds
                            rate = (seen - seen_before) / max(elapsed, 1e-9)
                            bar.set_postfix(loss=f"{_ratio(loss_sum, loss_weight):.4f}",
                                            samples_s=f"{rate:,.0f}", refresh=last)
                    eval_seconds += evaluate_at_step()
                    if max_steps is not None and step >= max_steps:
                        break
                seconds = time.perf_counter() - start - eval_seconds
                if bar is not None:
                    bar.close()
                train_seconds += seconds
                train_samples += seen - seen_before
                # (this run's samples and time)
                rate = (seen - seen_before) / max(seconds, 1e-9)
                resumed_part, seconds_here = skip > 0, seconds
                seconds += seconds_before   # a resumed epoch's time: both runs' parts
                # (before the lists grow: a Ctrl-C leaves them whole)
                if test_data is not None:
                    with interrupts.window:
                        test_loss, test_acc = evaluate(model, loss_fn, *test_data,
                                                       eval_batch_size)
                skip = 0
                history["epoch"].append(epoch)
                history["train_loss"].append(_ratio(loss_sum, loss_weight))
                history["train_accuracy"].append(_ratio(correct, counted))
                history["seconds_per_epoch"].append(seconds)
                line = (f"epoch {epoch}/{epochs}  train loss {history['train_loss'][-1]:.4f} "
                        f"acc {history['train_accuracy'][-1]:.4f}")
                if test_data is not None:
                    history["test_loss"].append(test_loss)
                    history["test_accuracy"].append(test_acc)
                    line += f"  test loss {test_loss:.4f} acc {test_acc:.4f}"
                    random_state = _random.get_state()
                owed = False
                line += f"  {seconds:.2f} s"
                if resumed_part and seen == seen_before:   # (an evaluation owed, no batch)
                    line += " (only its evaluation in this run)"
                else:
                    if resumed_part:
                        line += f" ({seconds_here:.2f} s in this run)"
                    line += f"  {rate:,.0f} samples/s"
                if log:
                    _write(line, progress)
                if max_steps is not None and step >= max_steps:
                    break
            finished = True
    except KeyboardInterrupt as exc:
        if bar is not None:
            bar.close()
        if not (interrupts.landed or finished):
            raise   # (outside a window: a second Ctrl-C, or another handler's or thread's)
        during = ("the end of the run" if finished else
                  f"the evaluation after step {step}" if owed else f"step {step + 1}")
        if step == first_step:   # (the model and optimizer as this call found them)
            metrics = copy.deepcopy(resume)   # (None for a fresh run)
        else:
            _check_parameters_finite(model, step, *made)   # (saved over a good one)
            metrics = {key: list(values) for key, values in history.items()}
            metrics["steps"] = step
            metrics["loss_name"] = type(loss_fn).__name__
            if eval_freq or step_curve["step"]:
                metrics["step_curve"] = {k: list(v) for k, v in step_curve.items()}
            if whole:   # (in this epoch)
                if seconds is None:   # (before the epoch's end)
                    seconds = time.perf_counter() - start - eval_seconds + seconds_before
                sums = _epoch_sums(loss_sum, correct, counted, seen, seconds, loss_weight)
                metrics["train_state"] = _train_state(
                    epoch, step, whole, len(loader), batch_size, len(x_train), sums,
                    epoch_shuffle_state, shuffle_rng.bit_generator.state, random_state, owed)
            else:   # (before this epoch's first update: the end of the one before)
                metrics["train_state"] = _train_state(
                    epoch - 1, step, len(loader), len(loader), batch_size, len(x_train),
                    _epoch_sums(0.0, 0, 0, 0, 0.0, 0.0), epoch_shuffle_state,
                    epoch_shuffle_state, random_state, False)
        raise TrainingInterrupted(step, epoch, during, metrics).with_traceback(
            exc.__traceback__) from None
    if step > first_step:   # (a resumed run may only make the evaluations it owed)
        _check_parameters_finite(model, step, epoch, loss)
    metrics = dict(history)
    metrics["steps"] = step
    metrics["samples_per_second"] = train_samples / max(train_seconds, 1e-9)
    metrics["loss_name"] = type(loss_fn).__name__   # (what plot_curves labels the loss by)
    metrics["train_accuracy_final"] = history["train_accuracy"][-1]
    metrics["test_accuracy_final"] = (history["test_accuracy"][-1] if test_data is not None
                                      else None)
    if eval_freq or step_curve["step"]:
        metrics["step_curve"] = step_curve
    metrics["train_state"] = _train_state(
        epoch, step, done, len(loader), batch_size, len(x_train),
        _epoch_sums(loss_sum, correct, counted, seen, seconds, loss_weight),
        epoch_shuffle_state, shuffle_rng.bit_generator.state, random_state)
    return metrics


def _epoch_sums(loss_sum, correct, counted, seen, seconds, loss_weight):
    """train_state's 'epoch_sums': the epoch's running sums, for a resumed run to finish
    an epoch cut short."""
    return {"loss_sum": float(loss_sum), "correct": int(correct), "counted": int(counted),
            "seen": int(seen), "seconds": seconds, "loss_weight": float(loss_weight)}


def _train_state(epoch, step, batches_done, batches_per_epoch, batch_size, num_samples,
                 epoch_sums, epoch_shuffle_state, shuffle_state, random_state, owed=False):
    """fit's 'train_state' (JSON-serialisable): what ``resume`` takes. 'evaluated' False
    (an interrupted run's, left out otherwise): the evaluations due after its last step
    (eval_freq's, the epoch's end) were not made; the resumed run makes them first."""
    state = {
        "epoch": epoch, "step": step, "batches_done": batches_done,
        "batches_per_epoch": batches_per_epoch, "batch_size": int(batch_size),
        "num_samples": num_samples, "epoch_sums": epoch_sums,
        "epoch_shuffle_state": epoch_shuffle_state, "shuffle_state": shuffle_state,
        "random_state": random_state,
    }
    if owed:
        state["evaluated"] = False
    return state


def _owed(state):
    """Whether a train_state owes the evaluations after its last step (see _train_state)."""
    return state.get("evaluated", True) is False


def finished_counts(state):
    """(epochs, steps) a train_state has finished: an epoch cut short, or one whose
    evaluations (or its last step's) are owed, does not count yet, nor is its last step."""
    owed = _owed(state)
    return (state["epoch"] - (state["batches_done"] < state["batches_per_epoch"] or owed),
            state["step"] - owed)


#: fit's per-epoch lists
EPOCH_KEYS = ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
               "seconds_per_epoch")
_TRAIN_STATE_KEYS = ("epoch", "step", "batches_done", "batches_per_epoch", "batch_size",
                     "num_samples", "epoch_sums", "epoch_shuffle_state", "shuffle_state",
                     "random_state")


def check_resume(resume, num_samples, batch_size):
    """resume's 'train_state' (see ``fit``), checked against a run over num_samples
    training samples in batches of batch_size: a ValueError says what does not fit
    (another batch size or training set, or not a fit's state); returns the state."""
    state = resume.get("train_state") if isinstance(resume, dict) else None
    if not isinstance(state, dict) or not all(k in state for k in _TRAIN_STATE_KEYS):
        got = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"fit: resume must be the metrics dict of an earlier fit, with "
                         f"its 'train_state' {list(_TRAIN_STATE_KEYS)}; got {got}")
    if state["batch_size"] != batch_size or state["num_samples"] != num_samples:
        raise ValueError(f"fit: resume: the earlier run had batch_size {state['batch_size']} "
                         f"and {state['num_samples']} training samples, this one "
                         f"batch_size {batch_size} and {num_samples}: resuming needs the "
                         f"same batches")
    counts = [state[k] for k in ("epoch", "step", "batches_done", "batches_per_epoch")]
    if (not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)
            or state["batches_per_epoch"] != math.ceil(num_samples / batch_size)
            or not 0 < state["batches_done"] <= state["batches_per_epoch"]
            or state["epoch"] < 1):
        raise ValueError(f"fit: resume: inconsistent train_state counters "
                         f"(epoch, step, batches_done, batches_per_epoch) = {counts}")
    if not isinstance(state.get("evaluated", True), bool):
        raise ValueError(f"fit: resume: train_state's evaluated must be a bool, got "
                         f"{state['evaluated']!r}")
    sums = state["epoch_sums"]
    if not isinstance(sums, dict) or not all(
            isinstance(sums.get(k), (int, float)) for k in _SUM_KEYS) or not isinstance(
                sums.get("loss_weight", 0), (int, float)):   # (optional: see fit)
        raise ValueError(f"fit: resume: train_state's epoch_sums must hold the numbers "
                         f"{list(_SUM_KEYS)}, got {sums!r}")
    for key in EPOCH_KEYS:
        if not isinstance(resume.get(key, []), list):
            raise ValueError(f"fit: resume: {key!r} must be a list (the earlier run's), got "
                             f"{type(resume[key]).__name__}")
    for key in ("epoch_shuffle_state", "shuffle_state", "random_state"):
        try:   # (a state numpy's PCG64 takes)
            np.random.PCG64().state = state[key]
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"fit: resume: train_state's {key} is not a PCG64 state "
                             f"({type(exc).__name__}: {exc})") from None
    return state


_SUM_KEYS = ("loss_sum", "correct", "counted", "seen", "seconds")


def _continue_history(resume, state, history, step_curve, batches_per_epoch):
    """Fill history and step_curve with the earlier run's; (step, first epoch, batches
    of it to skip, its running sums or None) to continue from. An epoch cut short (by
    max_steps) is taken out of the lists: the resumed run finishes and reports it; so
    does it an epoch whose end an interrupted run owes (all its batches skipped)."""
    for key in history:
        history[key].extend(resume.get(key) or [])
    for key, values in (resume.get("step_curve") or {}).items():
        if key in step_curve:
            step_curve[key].extend(values)
    skip = state["batches_done"]   # (all of them: an interrupted run's evaluations owed)
    if skip < batches_per_epoch or _owed(state):
        epochs_listed = len(history["epoch"])
        if epochs_listed and history["epoch"][-1] == state["epoch"]:   # (one cut short)
            for key in history:
                if len(history[key]) == epochs_listed:
                    history[key].pop()
        return state["step"], state["epoch"], skip, state["epoch_sums"]
    return state["step"], state["epoch"] + 1, 0, None
