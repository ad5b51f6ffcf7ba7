"""Learning-rate schedules, PyTorch's ``torch.optim.lr_scheduler`` classes and rules.

A scheduler writes ``group['lr']`` of its optimizer's param groups (which ``step``
reads every call). Built, it sets epoch 0's rates; each ``scheduler.step()`` (once per
epoch, after ``optimizer.step()``) moves to the next epoch. The rates are the closed
forms of PyTorch's schedules, a function of the epoch and each group's initial rate:

* StepLR(optimizer, step_size, gamma=0.1): lr0 * gamma ** (epoch // step_size)
* MultiStepLR(optimizer, milestones, gamma=0.1): lr0 * gamma ** (milestones passed)
* ExponentialLR(optimizer, gamma): lr0 * gamma ** epoch
* CosineAnnealingLR(optimizer, T_max, eta_min=0.0):
  eta_min + (lr0 - eta_min) * (1 + cos(pi * epoch / T_max)) / 2
* LambdaLR(optimizer, lr_lambda): lr0 * lr_lambda(epoch) (one function, or one per group)
* LinearLR(optimizer, start_factor=1/3, end_factor=1.0, total_iters=5):
  lr0 * (start_factor + (end_factor - start_factor) * min(epoch, total_iters) / total_iters)
* ConstantLR(optimizer, factor=1/3, total_iters=5): lr0 * factor until total_iters, then lr0
* PolynomialLR(optimizer, total_iters=5, power=1.0):
  lr0 * (1 - min(epoch, total_iters) / total_iters) ** power
* CosineAnnealingWarmRestarts(optimizer, T_0, T_mult=1, eta_min=0.0): the cosine of
  CosineAnnealingLR restarted after T_0 epochs, then T_0 * T_mult, T_0 * T_mult ** 2, ...
* OneCycleLR(optimizer, max_lr, total_steps or epochs and steps_per_epoch, ...): stepped
  once per batch; the rate rises from max_lr / div_factor to max_lr over pct_start of the
  steps, then falls to max_lr / (div_factor * final_div_factor) (cosine or linear), the
  momentum (SGD's momentum, Adam's beta1) cycling the other way.

* MultiplicativeLR(optimizer, lr_lambda): each step multiplies the current rate by
  lr_lambda(epoch) (PyTorch's recursive rule)
* CyclicLR(optimizer, base_lr, max_lr, step_size_up, ...): stepped once per batch; the
  rate goes back and forth between base_lr and max_lr (triangular, triangular2,
  exp_range or a scale_fn), the momentum the other way
* SequentialLR(optimizer, schedulers, milestones): one schedule after another, each
  starting from its epoch 0 at its milestone
* ChainedScheduler(schedulers): every schedule each step, composed by PyTorch's
  recursive rules (each scheduler's ``_chain``: the next rate from the current one)

ReduceLROnPlateau is the exception, as in PyTorch: no closed form, ``step(metrics)``
multiplies the rates by ``factor`` when the metric (a validation loss, say) has not
improved for ``patience`` epochs.

``step(epoch)`` is PyTorch's deprecated form (it warns as PyTorch's does): it goes to
that epoch and writes the closed form there. CosineAnnealingWarmRestarts is the
exception, as in PyTorch: its ``step(epoch)``, with fractional epochs too (once per
batch: ``step(epoch + i / iters)``), is its documented use and does not warn.

``state_dict()`` holds every attribute but the optimizer, as PyTorch's: the
hyper-parameters too, which ``load_state_dict`` restores; of user functions (lr_lambda,
scale_fn) only a callable object's attributes, a plain function or lambda as None.
"""
import bisect
import collections
import fractions
import functools
import math
import numbers
import types
import warnings

import numpy as np

from .. import device as _device
from ..errors import KeyValueError
from ..validation import check_number, float_of, plain_number, stacklevel_outside
from .optimizer import Optimizer


def _undone_on_error(step):
    """step, made to leave the scheduler (its inner schedulers too) and its optimizer's
    param groups as they were when it raises, as DESIGN.md's failed calls do (PyTorch's
    step has counted the epoch by then): a rate of the wrong type set by hand, a param
    group added since the scheduler was built."""
    @functools.wraps(step)
    def undoable(self, *args, **kwargs):
        saved = _scheduler_state(self)
        try:
            return step(self, *args, **kwargs)
        except BaseException:
            for attributes, kept in saved:
                attributes.clear()
                attributes.update(kept)
            raise
    return undoable


def _scheduler_state(scheduler):
    """[(a dict, a copy of it)] for its optimizer's param groups and the attributes of
    the scheduler and its inner schedulers (their lists copied, as state_dict's)."""
    saved = [(group, dict(group)) for group in scheduler.optimizer.param_groups]
    todo = [scheduler]
    while todo:
        current = todo.pop()
        saved.append((vars(current), {key: (list(value) if isinstance(value, list) else value)
                                      for key, value in vars(current).items()}))
        todo.extend(getattr(current, "_schedulers", ()))
    return saved


class LRScheduler:
    """Base class: the epoch counter, the initial rates and state_dict."""

    #: True while step() asks get_lr() for the rates (PyTorch's flag: get_lr() called
    #: from anywhere else warns that get_last_lr() gives the rates)
    _get_lr_called_within_step = False
    #: True during the step a scheduler makes when built (PyTorch 2.13's flag, which its
    #: own schedulers' get_lr() and a user's subclass written for PyTorch may read)
    _is_initial = False

    def __init_subclass__(cls, **kwargs):
        """Every subclass's own step puts everything back when it raises (as the base
        class's step: _undone_on_error)."""
        super().__init_subclass__(**kwargs)
        if "step" in cls.__dict__:
            cls.step = _undone_on_error(cls.__dict__["step"])

    def __init__(self, optimizer, last_epoch=-1):
        where = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{where}: expected a fastnn optimizer, got "
                            f"{type(optimizer).__name__}")
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, numbers.Integral) \
                or last_epoch < -1:
            raise ValueError(f"{where}: expected last_epoch to be an int >= -1, "
                             f"got {last_epoch!r}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"{where}: param group has no 'initial_lr' to resume from "
                               f"(last_epoch={last_epoch}); build it with last_epoch=-1")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = int(last_epoch)
        # PyTorch's count of step() calls, 1 after the step made here: the first step()
        # after it warns when optimizer.step() has not run since a scheduler was built
        # on the optimizer (which from then on marks its steps: Optimizer._opt_called)
        self._step_count = 0
        optimizer._step_watched = True
        self._initial_step()

    # how step() finds the rates: PyTorch's recursive rule from the current rates
    # ("chain"), its first step when built ("initial"), or the closed form ("closed")
    _rule = "chain"

    def lr_at(self, base_lr, epoch, group_index):
        """The rate of a group whose initial rate is base_lr, at epoch (>= 0). (A subclass
        written for PyTorch may define get_lr() instead, as PyTorch's: step() then writes
        the rates it returns.)"""
        raise NotImplementedError

    def _chain(self, lr, epoch, group_index, initial):
        """PyTorch's recursive rule (its get_lr): the group's rate at epoch from its
        current rate lr; ``initial`` on the step a scheduler makes when built. Every step
        follows it, as PyTorch's do: a rate set by hand (or by another scheduler on the
        same optimizer) is carried on from, and ChainedScheduler composes schedules
        through it. Left alone, it gives the closed form ``lr_at``. Schedules with no
        recursive form (LambdaLR, the restarts, the cycles) give their closed form."""
        return self.lr_at(self.base_lrs[group_index], epoch, group_index)

    @_undone_on_error
    def step(self, epoch=None):
        """Advance one epoch and write every group's rate for it.

        epoch: PyTorch's deprecated argument (it warns): go to this epoch (a number >= 0)
        and write the closed form there, as PyTorch's does.
        """
        self._count_step()
        closed = self._rule == "closed"
        if epoch is None:
            self.last_epoch += 1
        else:
            self.last_epoch = _epoch_argument(type(self).__name__, epoch, warn=True)
            closed = True
        if not getattr(type(self).get_lr, "_fastnn_rule", False):
            self._write_rates(self._user_rates(closed))
            return
        if closed:
            rates = [self.lr_at(base, self.last_epoch, i)
                     for i, base in enumerate(self.base_lrs)]
        else:
            rates = self._chained_rates(self._rule == "initial")
        self._write_rates(rates)

    def _user_rates(self, closed):
        """The rates of a user's subclass written for PyTorch at last_epoch: its get_lr()
        (from self.base_lrs or the groups' current rates), or, as PyTorch's step(epoch)
        and SequentialLR's restart at a milestone (closed), its _get_closed_form_lr()
        where it defines one."""
        self._get_lr_called_within_step = True
        try:
            if closed and hasattr(self, "_get_closed_form_lr"):
                return list(self._get_closed_form_lr())
            return list(self.get_lr())
        finally:
            self._get_lr_called_within_step = False

    def _write_rates(self, rates):
        """Set each param group's rate, one of rates each (all computed first), and
        remember them. Rates for fewer groups than the optimizer has (one added with
        add_param_group since the scheduler was built, which a rule from base_lrs or
        per-group functions does not know) are PyTorch's ValueError: no rate is set."""
        groups = self.optimizer.param_groups
        if len(rates) != len(groups):
            raise self._added_group_error()
        for group, lr in zip(groups, rates):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in groups]

    def _added_group_error(self):
        return ValueError(
            f"{type(self).__name__}: the optimizer has {len(self.optimizer.param_groups)} "
            f"param groups but the scheduler knows {len(self.base_lrs)} (a group added "
            f"after it was built), and its rule needs each group's initial rate or "
            f"function; build the scheduler again after add_param_group")

    def _with_rule(self, rule):
        self._rule = rule
        self._is_initial = rule == "initial"
        try:
            self.step()
        finally:
            del self._rule  # back to the class's "chain"
            self._is_initial = False

    def _count_step(self):
        """PyTorch's bookkeeping at the start of a step(): count it (the step made when
        built is the first; a restart within SequentialLR is not counted) and, on the
        first step() after that one, warn when the optimizer has not stepped since a
        scheduler was built on it (PyTorch's order check: its warning, once)."""
        if self._rule == "closed":
            return
        if self._rule == "initial":
            self._step_count = 0
        elif self._step_count == 1 and not getattr(self.optimizer, "_opt_called", False):
            warnings.warn(
                "Detected call of `lr_scheduler.step()` before `optimizer.step()`. In "
                "PyTorch 1.1.0 and later, you should call them in the opposite order: "
                "`optimizer.step()` before `lr_scheduler.step()`.  Failure to do this will "
                "result in PyTorch skipping the first value of the learning rate schedule. "
                "See more details at "
                "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate",
                UserWarning, stacklevel=stacklevel_outside(__file__))
        self._step_count += 1

    def get_last_lr(self):
        """The rates of the last step, one per param group."""
        return list(self._last_lr)

    def get_lr(self):
        """PyTorch's get_lr(): the rates step() computes at ``last_epoch``, each group's
        by the schedule's rule from its current rate (not the rates in use: called
        outside step() it warns, as PyTorch's, that get_last_lr() gives those). A
        subclass written for PyTorch may define its own, which step() then calls."""
        _warn_get_lr(self)
        return self._rates_now()

    get_lr._fastnn_rule = True

    def _rates_now(self):
        """What get_lr() returns: PyTorch's recursive rule at last_epoch from the current
        rates (or the closed form, for the schedules that have no recursive rule)."""
        return self._chained_rates(False)

    def _chained_rates(self, initial):
        """Every group's rate at last_epoch by the recursive rule. A group added with
        add_param_group after the scheduler was built is scheduled too where the rule
        needs only its current rate (StepLR, ExponentialLR, ...), as PyTorch's; where it
        needs the group's initial rate or its own function (LambdaLR, the restarts, ...)
        it is PyTorch's ValueError, not a group silently left out."""
        try:
            return [self._chain(group["lr"], self.last_epoch, i, initial)
                    for i, group in enumerate(self.optimizer.param_groups)]
        except IndexError:
            raise self._added_group_error() from None

    def _initial_step(self):
        """The step a scheduler makes when built (SequentialLR makes it for the first of
        its schedulers after taking the others' back): PyTorch's recursive rule from the
        group's rate, which is the closed form at epoch 0 unless another scheduler on the
        same optimizer moved the rate first."""
        self._with_rule("initial")

    def _chain_step(self):
        """A step of ChainedScheduler's: the recursive rule, as every step."""
        self.step()

    def _restart(self):
        """Go to epoch 0 and write its closed-form rates (SequentialLR, at a milestone,
        as PyTorch's)."""
        self.last_epoch = -1
        self._with_rule("closed")

    def state_dict(self):
        """Every attribute but the optimizer, as PyTorch's (the hyper-parameters too, so
        loading restores them); lists are copied."""
        return {key: (list(value) if isinstance(value, list) else value)
                for key, value in vars(self).items() if key != "optimizer"}

    def load_state_dict(self, state_dict):
        """Take every attribute of state_dict (PyTorch's rule: hyper-parameters too)."""
        self.__dict__.update({key: (list(value) if isinstance(value, list) else value)
                              for key, value in state_dict.items() if key != "optimizer"})
        self.last_epoch = _saved_epoch(self.last_epoch)


def _warn_get_lr(scheduler):
    """PyTorch's warning for get_lr() called outside step()."""
    if not scheduler._get_lr_called_within_step:
        warnings.warn("To get the last learning rate computed by the scheduler, please use "
                      "`get_last_lr()`.", UserWarning, stacklevel=3)


def _no_get_lr(self):
    """PyTorch's base get_lr(): this scheduler has no rule of that form."""
    raise NotImplementedError


_no_get_lr._fastnn_rule = True


class _LRScheduler(LRScheduler):
    """PyTorch's deprecated name of LRScheduler (a subclass, as PyTorch's, so that its
    __name__ is _LRScheduler)."""


def _saved_epoch(epoch):
    """A state dict's last_epoch as a Python number (an int stays an int)."""
    return int(epoch) if float(epoch).is_integer() else float(epoch)


def _epoch_argument(where, epoch, warn):
    """The epoch given to step(epoch): a finite number >= 0 (an int stays an int);
    warn: PyTorch's deprecation warning for the schedulers whose step(epoch) has one."""
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Real) \
            or not math.isfinite(epoch) or epoch < 0:
        raise ValueError(f"{where}.step: expected epoch to be a finite number >= 0, "
                         f"got {epoch!r}")
    if warn:
        warnings.warn(f"{where}.step(epoch) is deprecated, as in PyTorch: call step() once "
                      f"per epoch (with an epoch the closed-form rate of that epoch is "
                      f"written)", UserWarning, stacklevel=stacklevel_outside(__file__))
    return int(epoch) if isinstance(epoch, numbers.Integral) else float(epoch)


def _said(message, torch=None):
    """message, then PyTorch's own words for the same error (when given) in brackets, so
    that code matching torch's text matches fastnn's too."""
    return f"{message} ({torch})" if torch else message


def _angle(epoch, period):
    """pi * epoch / period, the cosine schedules' angle, by PyTorch's float arithmetic;
    for an int period no float holds (where that arithmetic raised OverflowError) the
    exact quotient rounded once, as Python's int / int: kept as ints, such periods give
    the schedule's true rates."""
    try:
        return math.pi * epoch / period
    except OverflowError:
        return float(fractions.Fraction(math.pi) * fractions.Fraction(epoch) / period)


def _int_at_least(where, name, value, low=1, torch=None):
    """value as an int >= low (1: a positive int), or a ValueError (torch: PyTorch's
    message, quoted)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        kind = "a positive int" if low == 1 else f"an int >= {low}"
        raise ValueError(_said(f"{where}: expected {name} to be {kind}, got {value!r}",
                               torch))
    return int(value)


def _count(where, name, value, low=1):
    """A count of epochs (step_size, a milestone, total_iters, patience, cooldown): an
    int >= low stays an int; a float, which PyTorch takes too, stays a float (> 0 for
    low 1, >= 0 for low 0, finite), PyTorch's arithmetic running on it as given (a
    fractional one too: milestones=[2.5] is never reached by a whole epoch)."""
    value = plain_number(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return _int_at_least(where, name, value, low)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or (value <= 0 if low == 1 else value < 0):
        kind = "a positive int or number" if low == 1 else "an int or number >= 0"
        raise ValueError(f"{where}: expected {name} to be {kind}, got {value!r}")
    return float(value)


def _positive_period(where, name, value):
    """A period > 0: an int stays an int, a fractional one (PyTorch takes it) a float."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return _int_at_least(where, name, value)
    value = _number(where, name, value)
    if value == 0:
        raise ValueError(f"{where}: expected {name} to be > 0, got {value!r}")
    return value


def _number(where, name, value, low=0.0, torch=None):
    value = plain_number(value)
    number = (float_of(where, name, value) if isinstance(value, numbers.Real)
              and not isinstance(value, bool) else math.nan)
    if not math.isfinite(number) or number < low:
        raise ValueError(_said(f"{where}: expected {name} to be a finite number >= {low}, "
                               f"got {value!r}", torch))
    return number


class StepLR(LRScheduler):
    """lr0 * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size = _count("StepLR", "step_size", step_size)
        self.gamma = _number("StepLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch, group_index):
        return base_lr * self.gamma ** (epoch // self.step_size)

    def _chain(self, lr, epoch, group_index, initial):
        return lr if epoch == 0 or epoch % self.step_size else lr * self.gamma


class MultiStepLR(LRScheduler):
    """lr0 * gamma ** (number of milestones <= epoch)."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        # 0 too: PyTorch's first step then decays at once
        self.milestones = sorted(_count("MultiStepLR", "each milestone", m, low=0)
                                 for m in milestones)
        self.gamma = _number("MultiStepLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch, group_index):
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, epoch)

    def _chain(self, lr, epoch, group_index, initial):
        hits = self.milestones.count(epoch)
        return lr * self.gamma ** hits if hits else lr

    def state_dict(self):
        """LRScheduler.state_dict, with the milestones as PyTorch's MultiStepLR keeps them
        (a Counter: milestone -> how many times it was given), so that torch's
        MultiStepLR can load it (a list made its next step fail: it reads
        ``milestones[epoch]``)."""
        state = super().state_dict()
        state["milestones"] = collections.Counter(self.milestones)
        return state

    def load_state_dict(self, state_dict):
        """LRScheduler.load_state_dict; milestones saved as PyTorch's MultiStepLR keeps
        them (a Counter, milestone -> how many times it was given) come back as fastnn's
        sorted list, each repeated that many times."""
        milestones = state_dict.get("milestones")
        if isinstance(milestones, dict):
            state_dict = dict(state_dict, milestones=sorted(
                m for m, times in milestones.items() for _ in range(int(times))))
        super().load_state_dict(state_dict)


class ExponentialLR(LRScheduler):
    """lr0 * gamma ** epoch."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = _number("ExponentialLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch, group_index):
        return base_lr * self.gamma ** epoch

    def _chain(self, lr, epoch, group_index, initial):
        return lr if initial else lr * self.gamma


class CosineAnnealingLR(LRScheduler):
    """eta_min + (lr0 - eta_min) * (1 + cos(pi * epoch / T_max)) / 2."""

    # T_max (not t_max): PyTorch's name
    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):  # noqa: N803
        self.T_max = _positive_period("CosineAnnealingLR", "T_max", T_max)
        self.eta_min = _number("CosineAnnealingLR", "eta_min", eta_min)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch, group_index):
        return self.eta_min + (base_lr - self.eta_min) * (
            1 + math.cos(_angle(epoch, self.T_max))) / 2

    def _rates_now(self):
        """PyTorch's get_lr(): after the step made when built with last_epoch > 0 (a
        resumed schedule), the closed form; else the recursive rule."""
        if self._step_count == 1 and self.last_epoch > 0:
            return [self.lr_at(base, self.last_epoch, i) for i, base in enumerate(self.base_lrs)]
        return super()._rates_now()

    def _chain(self, lr, epoch, group_index, initial):
        if initial:
            return lr
        if (epoch - 1 - self.T_max) % (2 * self.T_max) == 0:
            return lr + (self.base_lrs[group_index] - self.eta_min) * (
                1 - math.cos(_angle(1, self.T_max))) / 2
        return ((1 + math.cos(_angle(epoch, self.T_max)))
                / (1 + math.cos(_angle(epoch - 1, self.T_max)))
                * (lr - self.eta_min) + self.eta_min)


def _per_group_lambdas(where, optimizer, lr_lambda, mismatch):
    """LambdaLR's and MultiplicativeLR's lr_lambda as a list of one function per param
    group (one function is every group's). A list of another length is the ValueError
    ``where: mismatch`` (a format of groups, lr_lambda and count, the list's length) with
    PyTorch's words after it; anything not callable is a TypeError."""
    groups = len(optimizer.param_groups) if isinstance(optimizer, Optimizer) else 0
    lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * groups
    if len(lambdas) != groups:
        raise ValueError(_said(f"{where}: " + mismatch.format(groups=groups, lr_lambda=lr_lambda,
                                                              count=len(lambdas)),
                               f"Expected {groups} lr_lambdas, but got {len(lambdas)}"))
    if not all(callable(f) for f in lambdas):
        raise TypeError(f"{where}: expected functions, got {lr_lambda!r}")
    return lambdas


class LambdaLR(LRScheduler):
    """lr0 * lr_lambda(epoch); lr_lambda: a function, or a list of one per group."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        self.lr_lambdas = _per_group_lambdas(
            "LambdaLR", optimizer, lr_lambda,
            "expected a function or a list of {groups} functions (one per param group), "
            "got {lr_lambda!r}")
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch, group_index):
        return base_lr * self.lr_lambdas[group_index](epoch)

    def state_dict(self):
        """PyTorch's: every attribute but the optimizer; of lr_lambdas only the
        attributes of callable objects (a plain function or lambda: None)."""
        state = {k: v for k, v in LRScheduler.state_dict(self).items() if k != "lr_lambdas"}
        state["lr_lambdas"] = [_callable_state(fn) for fn in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict):
        """PyTorch's: the attributes, and those saved of callable-object lr_lambdas."""
        LRScheduler.load_state_dict(
            self, {k: v for k, v in state_dict.items() if k != "lr_lambdas"})
        for fn, saved in zip(self.lr_lambdas, state_dict.get("lr_lambdas", ())):
            if saved is not None:
                fn.__dict__.update(saved)


def _callable_state(fn):
    """What a state dict keeps of a user function: None for a plain function or lambda,
    a copy of the attributes of a callable object (PyTorch's rule)."""
    if fn is None or isinstance(fn, types.FunctionType):
        return None
    return dict(getattr(fn, "__dict__", {}))


_lambdas_state_dict = LambdaLR.state_dict
_lambdas_load_state_dict = LambdaLR.load_state_dict


class ReduceLROnPlateau(LRScheduler):
    """PyTorch's ReduceLROnPlateau: ``step(metrics)`` once per epoch (metrics: one
    number, a validation loss say); after more than ``patience`` epochs without
    improvement every group's rate becomes max(lr * factor, min_lr) (changes smaller
    than eps are skipped), then ``cooldown`` epochs pass before bad epochs count again.

    mode 'min' (the metric should fall) or 'max'; improvement means beating the best so
    far by threshold, relative (threshold_mode 'rel': best * (1 -+ threshold)) or
    absolute ('abs': best -+ threshold). min_lr: one number or one per param group (one
    number also covers groups added to the optimizer later). An LRScheduler, as
    PyTorch's, but with no epoch-based schedule: ChainedScheduler and SequentialLR
    refuse it.
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8):
        where = "ReduceLROnPlateau"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{where}: expected a fastnn optimizer, got "
                            f"{type(optimizer).__name__}")
        if mode not in ("min", "max"):
            raise ValueError(_said(f"{where}: expected mode 'min' or 'max', got {mode!r}",
                                   f"mode {mode} is unknown!"))
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(_said(f"{where}: expected threshold_mode 'rel' or 'abs', "
                                   f"got {threshold_mode!r}",
                                   f"threshold mode {threshold_mode} is unknown!"))
        self.factor = _number(where, "factor", factor)
        if self.factor >= 1.0:
            raise ValueError(_said(f"{where}: expected factor < 1.0, got {factor!r}",
                                   "Factor should be < 1.0."))
        self.optimizer = optimizer
        self.min_lrs = _per_group(where, "min_lr", min_lr, len(optimizer.param_groups))
        self.default_min_lr = None if isinstance(min_lr, (list, tuple)) else self.min_lrs[0]
        self.mode, self.threshold_mode = mode, threshold_mode
        self.patience = _count(where, "patience", patience, low=0)
        self.cooldown = _count(where, "cooldown", cooldown, low=0)
        self.threshold = _number(where, "threshold", threshold)
        self.eps = _number(where, "eps", eps)
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.best = self.mode_worse
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = [group["lr"] for group in optimizer.param_groups]

    def is_better(self, value, best):
        """True when value improves on best by the threshold."""
        if self.mode == "min":
            bar = best * (1.0 - self.threshold) if self.threshold_mode == "rel" \
                else best - self.threshold
            return value < bar
        bar = best * (1.0 + self.threshold) if self.threshold_mode == "rel" \
            else best + self.threshold
        return value > bar

    def step(self, metrics, epoch=None):
        """Record one epoch's metric (a number) and lower the rates if it is time.
        epoch: PyTorch's deprecated argument (it warns): the epoch number to record."""
        current = _metric_value(metrics)
        if epoch is None:
            self.last_epoch += 1
        else:
            self.last_epoch = _epoch_argument("ReduceLROnPlateau", epoch, warn=True)
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._match_groups()
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                new_lr = max(group["lr"] * self.factor, min_lr)
                if group["lr"] - new_lr > self.eps:
                    group["lr"] = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    get_lr = _no_get_lr

    def _match_groups(self):
        """min_lrs for a param group added since: PyTorch's rule (one min_lr given: it,
        for every group; a list: RuntimeError)."""
        groups = len(self.optimizer.param_groups)
        if groups == len(self.min_lrs):
            return
        if self.default_min_lr is None:
            raise RuntimeError(f"ReduceLROnPlateau: the optimizer has {groups} param groups "
                               f"but min_lr gave {len(self.min_lrs)} (a param group added "
                               f"since?); set min_lrs to one value per group")
        self.min_lrs = [self.default_min_lr] * groups

    def load_state_dict(self, state_dict):
        """Every attribute of state_dict (PyTorch's rule); a state dict without
        mode_worse (fastnn's before) gets it from its mode."""
        super().load_state_dict(state_dict)
        self.mode_worse = math.inf if self.mode == "min" else -math.inf



def _metric_value(metrics):
    """ReduceLROnPlateau's metric as a float: a number (or what float() takes, as
    PyTorch's), or an array of one element of any shape (a NumPy scalar, a 0-d array,
    np.array([v]), a device array), as PyTorch takes a one-element tensor."""
    where = "ReduceLROnPlateau.step"
    if _device.is_device_array(metrics) or (
            isinstance(metrics, np.ndarray) and not isinstance(metrics, np.generic)):
        values = np.asarray(_device.to_host(metrics))
        if values.size != 1:  # (PyTorch's error type for a tensor of several elements)
            raise ValueError(f"{where}: expected the metric as a number or an array of one "
                             f"element, got an array of shape {values.shape}")
        metrics = values.reshape(()).item()
    try:
        return float(metrics)
    except (TypeError, ValueError) as exc:  # float()'s own type, as PyTorch's
        raise type(exc)(f"{where}: expected the metric as a number, got {metrics!r}") from None


def _per_group(where, name, value, groups):
    """One finite number >= 0 per param group: value itself (a list or tuple of them) or
    value repeated."""
    values = list(value) if isinstance(value, (list, tuple)) else [value] * groups
    if len(values) != groups:
        torch = (f"expected {groups} min_lrs, got {len(values)}" if name == "min_lr" else
                 f"{name} must have the same length as optimizer.param_groups. {name} has "
                 f"{len(values)} values, param_groups has {groups}.")
        raise ValueError(_said(f"{where}: expected {groups} {name} values (one per param "
                               f"group), got {len(values)}", torch))
    return [_number(where, name, v) for v in values]


def _fraction(where, name, value, low=0.0, high=1.0, torch=None):
    value = _number(where, name, value, low, torch)
    if value > high:
        raise ValueError(_said(f"{where}: expected {name} to be at most {high}, "
                               f"got {value!r}", torch))
    return value


class LinearLR(LRScheduler):
    """lr0 times a factor going linearly from start_factor to end_factor over
    total_iters epochs, then end_factor."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5,
                 last_epoch=-1):
        where = "LinearLR"
        torch = ("Starting multiplicative factor expected to be greater than 0 and less or "
                 "equal to 1.")
        self.start_factor = _fraction(where, "start_factor", start_factor, torch=torch)
        if self.start_factor == 0.0:
            raise ValueError(_said(f"{where}: expected start_factor > 0, "
                                   f"got {start_factor!r}", torch))
        self.end_factor = _fraction(where, "end_factor", end_factor, torch=(
            "Ending multiplicative factor expected to be between 0 and 1."))
        # 0 (no warm-up) as PyTorch takes it: start_factor from then on
        self.total_iters = _count(where, "total_iters", total_iters, low=0)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch, group_index):
        done = min(epoch, self.total_iters) / self.total_iters
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * done)

    def _chain(self, lr, epoch, group_index, initial):
        if epoch == 0:
            return lr * self.start_factor
        if initial or epoch > self.total_iters:
            return lr
        change = self.end_factor - self.start_factor
        # the ratio of two factors >= 0, so >= 0; at end_factor=0 PyTorch's arithmetic
        # rounds the last one to about -1e-16, a negative rate (-4e-18 for lr 0.1) that
        # the optimizer's step refuses: 0 here, as the closed form gives
        try:
            ratio = 1.0 + change / (self.total_iters * self.start_factor + (epoch - 1) * change)
        except OverflowError:  # an int total_iters no float holds: the exact ratio
            change = fractions.Fraction(change)
            ratio = float(1 + change / (self.total_iters * fractions.Fraction(self.start_factor)
                                        + (epoch - 1) * change))
        return lr * max(ratio, 0.0)


class ConstantLR(LRScheduler):
    """lr0 * factor for the first total_iters epochs, lr0 after."""

    def __init__(self, optimizer, factor=1.0 / 3, total_iters=5, last_epoch=-1):
        self.factor = _fraction("ConstantLR", "factor", factor, torch=(
            "Constant multiplicative factor expected to be between 0 and 1."))
        self.total_iters = _count("ConstantLR", "total_iters", total_iters, low=0)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch, group_index):
        return base_lr * (self.factor if epoch < self.total_iters else 1.0)

    def _chain(self, lr, epoch, group_index, initial):
        if epoch == 0:
            return lr * self.factor
        return lr * (1.0 / self.factor) if epoch == self.total_iters else lr


class PolynomialLR(LRScheduler):
    """lr0 * (1 - min(epoch, total_iters) / total_iters) ** power."""

    def __init__(self, optimizer, total_iters=5, power=1.0, last_epoch=-1):
        # 0 as PyTorch takes it: lr0 from then on
        self.total_iters = _count("PolynomialLR", "total_iters", total_iters, low=0)
        self.power = _number("PolynomialLR", "power", power)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch, group_index):
        return base_lr * (1.0 - min(epoch, self.total_iters) / self.total_iters) ** self.power

    def _chain(self, lr, epoch, group_index, initial):
        if initial or epoch > self.total_iters:
            return lr
        return lr * ((1.0 - epoch / self.total_iters)
                     / (1.0 - (epoch - 1) / self.total_iters)) ** self.power


class CosineAnnealingWarmRestarts(LRScheduler):
    """eta_min + (lr0 - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2, where the i-th run
    lasts T_i = T_0 * T_mult ** i epochs and T_cur counts the epochs since its start.

    PyTorch's stateful rule: ``step()`` adds 1 to T_cur (a restart when it reaches T_i);
    ``step(epoch)`` (no warning: PyTorch's documented use) goes to any epoch >= 0,
    fractional too, e.g. ``step(epoch + i / iters)`` after every batch; a later
    ``step()`` carries on from there (T_cur + 1). T_cur and T_i are in the state dict.
    """

    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0, last_epoch=-1):  # noqa: N803
        where = "CosineAnnealingWarmRestarts"
        self.T_0 = _int_at_least(where, "T_0", T_0,
                                 torch=f"Expected positive integer T_0, but got {T_0}")
        self.T_mult = _int_at_least(where, "T_mult", T_mult,
                                    torch=f"Expected integer T_mult >= 1, but got {T_mult}")
        number = isinstance(plain_number(eta_min), numbers.Real)  # (PyTorch's only check)
        self.eta_min = _number(where, "eta_min", eta_min, torch=None if number else (
            f"Expected float or int eta_min, but got {eta_min} of type {type(eta_min)}"))
        self.T_i = self.T_0
        self.T_cur = last_epoch  # PyTorch's start: the first step() adds 1
        super().__init__(optimizer, last_epoch)

    def _position(self, epoch):
        """(T_cur, T_i) at this epoch (a number >= 0)."""
        t0, mult = self.T_0, self.T_mult
        if epoch < t0:  # (a fractional epoch % an int no float holds raised OverflowError)
            return epoch, t0
        if mult == 1:
            return epoch % t0, t0
        start, length = 0, t0  # integer walk over the runs: no log() rounding at restarts
        while epoch >= start + length:
            start, length = start + length, length * mult
        return epoch - start, length

    def lr_at(self, base_lr, epoch, group_index):
        t_cur, t_i = self._position(epoch)
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(_angle(t_cur, t_i))) / 2

    def step(self, epoch=None):
        """Advance one epoch (T_cur + 1), or go to ``epoch``; write every group's rate."""
        if epoch is None and self.last_epoch < 0:
            epoch = 0  # the step made when built, and a restart within SequentialLR
        if epoch is None:
            self.T_cur += 1
            if self.T_cur >= self.T_i:
                self.T_cur %= self.T_i
                self.T_i *= self.T_mult
            self.last_epoch += 1
        else:
            epoch = _epoch_argument(type(self).__name__, epoch, warn=False)
            self.T_cur, self.T_i = self._position(epoch)
            self.last_epoch = math.floor(epoch)
        self._write_rates(self._rates_now())

    def _rates_now(self):
        """PyTorch's get_lr(): the rates at T_cur of the current run."""
        wave = 1 + math.cos(_angle(self.T_cur, self.T_i))
        return [self.eta_min + (base - self.eta_min) * wave / 2 for base in self.base_lrs]

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if "T_cur" not in state_dict:  # an older fastnn state dict: its epoch's position
            self.T_cur, self.T_i = self._position(max(self.last_epoch, 0))


def _cycles_beta1(where, optimizer):
    """For cycle_momentum: True when the optimizer's momentum is Adam's beta1 (betas),
    False for SGD's momentum; an error when it has neither."""
    if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
        raise ValueError(_said(f"{where}: cycle_momentum=True needs an optimizer with "
                               f"momentum or betas ({type(optimizer).__name__} has "
                               f"neither); pass cycle_momentum=False",
                               "optimizer must support momentum or beta1 with "
                               "`cycle_momentum` option enabled"))
    return "betas" in optimizer.defaults


#: the keys of a OneCycleLR phase (PyTorch's ``_schedule_phases`` entries): the step it
#: ends at, and the param-group keys it moves the rate and the momentum between
_PHASE_KEYS = ("end_step", "start_lr", "end_lr", "start_momentum", "end_momentum")


class OneCycleLR(LRScheduler):
    """The 1cycle policy (PyTorch's OneCycleLR), ``step()`` after every batch.

    max_lr: one number or one per param group; the schedule lasts total_steps, or
    epochs * steps_per_epoch. Two phases (three_phase=False): over the first
    pct_start * total_steps steps the rate goes from max_lr / div_factor up to max_lr,
    then down to max_lr / div_factor / final_div_factor; three_phase=True climbs, comes
    back to max_lr / div_factor symmetrically, then anneals to the minimum. Each move
    follows a half cosine (anneal_strategy='cos') or a line ('linear'). With
    cycle_momentum, SGD's momentum (Adam's beta1) moves from max_momentum to
    base_momentum and back, against the rate. Stepping past total_steps is an error.
    """

    def _added_group_error(self):
        """A group added since the scheduler was built lacks the keys OneCycleLR put in
        the others (initial_lr, max_lr, ...): PyTorch's step raises KeyError."""
        return KeyValueError(str(super()._added_group_error()))

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None,
                 steps_per_epoch=None, pct_start=0.3, anneal_strategy="cos",
                 cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
                 div_factor=25.0, final_div_factor=1e4, three_phase=False, last_epoch=-1):
        where = "OneCycleLR"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{where}: expected a fastnn optimizer, got "
                            f"{type(optimizer).__name__}")
        groups = optimizer.param_groups
        def count(name, value):
            return _int_at_least(where, name, value,
                                 torch=f"Expected positive integer {name}, but got {value}")

        if total_steps is not None:
            self.total_steps = count("total_steps", total_steps)
            name = "total_steps"
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = count("epochs", epochs) * count("steps_per_epoch",
                                                               steps_per_epoch)
            name = "epochs * steps_per_epoch"
        else:
            raise ValueError(_said(
                f"{where}: expected total_steps, or epochs and steps_per_epoch",
                "You must define either total_steps OR (epochs AND steps_per_epoch)"))
        # the phases end at float steps (PyTorch's, which its state dicts hold), so one
        # no float holds is refused here (PyTorch's first step raised OverflowError)
        float_of(where, name, self.total_steps)
        pct_start = _fraction(where, "pct_start", pct_start, torch=(
            f"Expected float between 0 and 1 pct_start, but got {pct_start}"))
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(_said(
                f"{where}: expected anneal_strategy 'cos' or 'linear', got "
                f"{anneal_strategy!r}", f"anneal_strategy must be one of 'cos' or "
                f"'linear', instead got {anneal_strategy}"))
        # (PyTorch's attribute names and layouts, which its state dict holds: a state
        # dict of either library loads into the other's OneCycleLR)
        self._anneal_func_type = anneal_strategy
        div_factor = _number(where, "div_factor", div_factor)
        final_div_factor = _number(where, "final_div_factor", final_div_factor)
        if div_factor == 0 or final_div_factor == 0:
            raise ValueError(f"{where}: expected div_factor and final_div_factor > 0")
        max_lrs = _per_group(where, "max_lr", max_lr, len(groups))
        self.cycle_momentum = bool(cycle_momentum)
        if self.cycle_momentum:
            self.use_beta1 = _cycles_beta1(where, optimizer)
            base_ms = _per_group(where, "base_momentum", base_momentum, len(groups))
            max_ms = _per_group(where, "max_momentum", max_momentum, len(groups))
        one = float(pct_start * self.total_steps)
        if three_phase:
            phases = ((one - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                      (2 * one - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                      (self.total_steps - 1, "initial_lr", "min_lr", "max_momentum",
                       "max_momentum"))
        else:
            phases = ((one - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                      (self.total_steps - 1, "max_lr", "min_lr", "base_momentum",
                       "max_momentum"))
        self._schedule_phases = [dict(zip(_PHASE_KEYS, phase)) for phase in phases]
        if last_epoch == -1:
            for i, group in enumerate(groups):
                group["initial_lr"] = max_lrs[i] / div_factor
                group["max_lr"] = max_lrs[i]
                group["min_lr"] = group["initial_lr"] / final_div_factor
                if self.cycle_momentum:
                    group["base_momentum"], group["max_momentum"] = base_ms[i], max_ms[i]
                    self._set_momentum(group, max_ms[i])
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group, momentum):
        if self.use_beta1:
            group["betas"] = (momentum, group["betas"][1])
        else:
            group["momentum"] = momentum

    def load_state_dict(self, state_dict):
        """LRScheduler's, also taking fastnn's older state dicts (which kept the phases
        as tuples under '_phases' and the strategy as 'anneal_strategy')."""
        state = dict(state_dict)
        if "_phases" in state and "_schedule_phases" not in state:
            state["_schedule_phases"] = [dict(zip(_PHASE_KEYS, phase))
                                         for phase in state["_phases"]]
        if "anneal_strategy" in state and "_anneal_func_type" not in state:
            state["_anneal_func_type"] = state["anneal_strategy"]
        for old in ("_phases", "anneal_strategy"):
            state.pop(old, None)
        super().load_state_dict(state)

    def _anneal(self, start, end, pct):
        if self._anneal_func_type == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _at(self, group, step, lr_or_momentum):
        """group's rate (0) or momentum (1) at this step."""
        start_step = 0.0
        kind = "lr" if lr_or_momentum == 0 else "momentum"
        for i, phase in enumerate(self._schedule_phases):
            end_step = phase["end_step"]
            if step <= end_step or i == len(self._schedule_phases) - 1:
                pct = (step - start_step) / (end_step - start_step)
                return self._anneal(group[phase["start_" + kind]], group[phase["end_" + kind]],
                                    pct)
            start_step = end_step
        raise AssertionError("unreachable")

    def step(self, epoch=None):
        """Advance one batch and write every group's rate (and momentum) for it (epoch:
        as LRScheduler.step's)."""
        target = (self.last_epoch + 1 if epoch is None
                  else _epoch_argument("OneCycleLR", epoch, warn=False))
        if target > self.total_steps:
            raise ValueError(_said(f"OneCycleLR: tried to step {target} times; the "
                                   f"schedule has total_steps={self.total_steps}",
                                   f"Tried to step {target} times. The specified number "
                                   f"of total steps is {self.total_steps}"))
        super().step(epoch)
        if self.cycle_momentum:
            for group in self.optimizer.param_groups:
                self._set_momentum(group, self._at(group, self.last_epoch, 1))

    def lr_at(self, base_lr, epoch, group_index):
        return self._at(self.optimizer.param_groups[group_index], epoch, 0)


class MultiplicativeLR(LRScheduler):
    """Each epoch after the first multiplies every group's current rate by
    lr_lambda(epoch) (one function, or one per group): PyTorch's recursive rule, so a
    rate changed by hand between steps is multiplied from there."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        self.lr_lambdas = _per_group_lambdas(
            "MultiplicativeLR", optimizer, lr_lambda,
            "expected {groups} lr_lambdas (one per param group), got {count}")
        super().__init__(optimizer, last_epoch)

    def step(self, epoch=None):
        """Advance one epoch: every group's rate times its factor for the new epoch (none
        on the step made when the scheduler is built). epoch: PyTorch's deprecated
        argument (it warns): the epoch whose factor multiplies the rates."""
        self._count_step()
        if epoch is None:
            self.last_epoch += 1
        else:
            self.last_epoch = _epoch_argument("MultiplicativeLR", epoch, warn=True)
        if self._rule != "initial":
            self._multiply(self.last_epoch)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _rates_now(self):
        return [group["lr"] * factor(self.last_epoch)
                for group, factor in zip(self.optimizer.param_groups, self.lr_lambdas)]

    def _multiply(self, epoch):
        self._write_rates([group["lr"] * factor(epoch) for group, factor
                           in zip(self.optimizer.param_groups, self.lr_lambdas)])

    def _restart(self):
        self.last_epoch = 0
        self._multiply(0)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    state_dict = _lambdas_state_dict
    load_state_dict = _lambdas_load_state_dict


class CyclicLR(LRScheduler):
    """The cyclical learning rate policy (PyTorch's CyclicLR), ``step()`` after every
    batch: the rate climbs linearly from base_lr to max_lr over step_size_up batches and
    comes back over step_size_down (None: the same), the cycle's height scaled by mode:
    'triangular' (constant), 'triangular2' (halved each cycle), 'exp_range'
    (gamma ** batch), or scale_fn(x) with scale_mode 'cycle' (x the cycle, from 1) or
    'iterations' (x the batch). base_lr, max_lr: one number or one per group; building
    it sets every group's rate to base_lr. With cycle_momentum SGD's momentum (Adam's
    beta1) moves the other way, between max_momentum and base_momentum.
    """

    def __init__(self, optimizer, base_lr, max_lr, step_size_up=2000, step_size_down=None,
                 mode="triangular", gamma=1.0, scale_fn=None, scale_mode="cycle",
                 cycle_momentum=True, base_momentum=0.8, max_momentum=0.9, last_epoch=-1):
        where = "CyclicLR"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{where}: expected a fastnn optimizer, got "
                            f"{type(optimizer).__name__}")
        groups = optimizer.param_groups
        base_lrs = _per_group(where, "base_lr", base_lr, len(groups))
        self.max_lrs = _per_group(where, "max_lr", max_lr, len(groups))
        up = _number(where, "step_size_up", step_size_up)
        down = up if step_size_down is None else _number(where, "step_size_down",
                                                         step_size_down)
        if up + down <= 0:
            raise ValueError(f"{where}: expected step_size_up + step_size_down > 0")
        # (an infinite cycle made the first step divide 0 by 0, as PyTorch's)
        check_number(where, "step_size_up + step_size_down", up + down)
        self.total_size = up + down
        self.step_ratio = up / self.total_size
        if scale_fn is None and mode not in ("triangular", "triangular2", "exp_range"):
            raise ValueError(_said(f"{where}: expected mode 'triangular', 'triangular2' or "
                                   f"'exp_range' (or a scale_fn), got {mode!r}",
                                   "mode is invalid and scale_fn is None"))
        if scale_fn is not None and not callable(scale_fn):
            raise TypeError(f"{where}: expected scale_fn to be a function, got {scale_fn!r}")
        if scale_fn is not None and scale_mode not in ("cycle", "iterations"):
            raise ValueError(f"{where}: expected scale_mode 'cycle' or 'iterations', got "
                             f"{scale_mode!r}")
        self.mode, self.gamma = mode, float_of(where, "gamma", gamma)
        self._scale_fn_custom = scale_fn
        self.scale_mode = (scale_mode if scale_fn is not None
                           else "iterations" if mode == "exp_range" else "cycle")
        if last_epoch == -1:
            for lr, group in zip(base_lrs, groups):
                group["lr"] = lr
        self.cycle_momentum = bool(cycle_momentum)
        if self.cycle_momentum:
            self.use_beta1 = _cycles_beta1(where, optimizer)
            self.base_momentums = _per_group(where, "base_momentum", base_momentum,
                                             len(groups))
            self.max_momentums = _per_group(where, "max_momentum", max_momentum, len(groups))
            if last_epoch == -1:
                for group, low, high in zip(groups, self.base_momentums, self.max_momentums):
                    self._set_momentum(group, high)
                    group["max_momentum"], group["base_momentum"] = high, low
        # as PyTorch's, the step made when built runs from the groups' initial_lr (the
        # base_lr, unless a scheduler built before set another), the later ones from base_lr
        super().__init__(optimizer, last_epoch)
        self.base_lrs = list(base_lrs)

    def scale_fn(self, x):
        """The height factor at x (a cycle number or a batch index, by scale_mode)."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma ** x

    def _set_momentum(self, group, momentum):
        if self.use_beta1:
            group["betas"] = (momentum,) + tuple(group["betas"][1:])
        else:
            group["momentum"] = momentum

    def _position(self, batch):
        """(the height factor in [0, 1] at this batch, the scale_fn's argument)."""
        cycle = math.floor(1 + batch / self.total_size)
        x = 1.0 + batch / self.total_size - cycle
        height = x / self.step_ratio if x <= self.step_ratio else (x - 1) / (self.step_ratio - 1)
        return height, self.scale_fn(cycle if self.scale_mode == "cycle" else batch)

    def lr_at(self, base_lr, epoch, group_index):
        height, scale = self._position(epoch)
        low = self.base_lrs[group_index]
        return low + (self.max_lrs[group_index] - low) * height * scale

    def step(self, epoch=None):
        """Advance one batch: every group's rate (and momentum) for it (epoch: as
        LRScheduler.step's)."""
        super().step(epoch)
        if self.cycle_momentum:
            height, scale = self._position(self.last_epoch)
            for group, low, high in zip(self.optimizer.param_groups, self.base_momentums,
                                        self.max_momentums):
                self._set_momentum(group, high - (high - low) * height * scale)

    def state_dict(self):
        """PyTorch's: every attribute but the optimizer; of a custom scale_fn only a
        callable object's attributes (a function or lambda: None)."""
        state = super().state_dict()
        state["_scale_fn_custom"] = _callable_state(self._scale_fn_custom)
        return state

    def load_state_dict(self, state_dict):
        saved = state_dict.get("_scale_fn_custom")
        super().load_state_dict({k: v for k, v in state_dict.items()
                                 if k not in ("_scale_fn_custom", "_scale_fn_ref")})
        if saved is not None and self._scale_fn_custom is not None:
            self._scale_fn_custom.__dict__.update(saved)


#: PyTorch's words for SequentialLR's and ChainedScheduler's empty list of schedulers
_TORCH_NONE = {"SequentialLR": "SequentialLR expects at least one scheduler, but got no "
                               "scheduler.",
               "ChainedScheduler": "ChainedScheduler expects at least one scheduler to be "
                                   "chained, but got no scheduler."}


def _check_schedulers(where, schedulers, optimizer):
    """schedulers as a list: at least one, each an epoch-based scheduler of optimizer."""
    schedulers = list(schedulers)
    if not schedulers:
        raise ValueError(_said(f"{where}: expected at least one scheduler", _TORCH_NONE[where]))
    for i, scheduler in enumerate(schedulers):
        if isinstance(scheduler, ReduceLROnPlateau):  # (PyTorch's error type)
            raise ValueError(_said(
                f"{where}: scheduler {i} is a ReduceLROnPlateau, whose step needs the "
                f"metric; expected an epoch-based scheduler",
                f"{where} does not support `ReduceLROnPlateau` scheduler as it requires "
                f"additional kwargs to be specified when calling `step`, but got one at "
                f"index {i} in the given schedulers sequence."))
        if not isinstance(scheduler, LRScheduler):
            raise TypeError(f"{where}: scheduler {i} must be an epoch-based scheduler "
                            f"(not ReduceLROnPlateau), got {type(scheduler).__name__}")
        if scheduler.optimizer is not optimizer:
            raise ValueError(f"{where}: scheduler {i} ({type(scheduler).__name__}) belongs "
                             f"to another optimizer")
    return schedulers


class SequentialLR(LRScheduler):
    """Schedulers one after another (PyTorch's SequentialLR): schedulers[0] runs until
    the first milestone, where schedulers[1] starts from its epoch 0, and so on; e.g. a
    LinearLR warm-up then a CosineAnnealingLR. Build the schedulers on the same optimizer
    first (their own first steps are undone here); ``step()`` once per epoch."""

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        where = "SequentialLR"
        schedulers = _check_schedulers(where, schedulers, optimizer)
        milestones = list(milestones)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(_said(
                f"{where}: expected {len(schedulers) - 1} milestones (one fewer than the "
                f"schedulers), got {len(milestones)}",
                f"Sequential Schedulers expects number of schedulers provided to be one more "
                f"than the number of milestone points, but got number of schedulers "
                f"{len(schedulers)} and the number of milestones to be equal to "
                f"{len(milestones)}"))
        milestones = [_count(where, "milestones", m, low=0) for m in milestones]
        self._schedulers, self._milestones = schedulers, milestones
        self.optimizer = optimizer
        self.last_epoch = last_epoch + 1
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        self._undo(self)
        first = schedulers[bisect.bisect_right(milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    get_lr = _no_get_lr

    @staticmethod
    def _undo(scheduler):
        """Take back the step every (nested) scheduler made when it was built."""
        if isinstance(scheduler, SequentialLR):
            for inner in scheduler._schedulers:
                SequentialLR._undo(inner)
        else:
            scheduler.last_epoch -= 1

    def step(self):
        """Advance one epoch: the scheduler of this epoch steps, or starts at a milestone
        (PyTorch's: no epoch argument)."""
        self._advance(chain=False)

    def _advance(self, chain):
        """step; chain=True: as a ChainedScheduler's member (its schedulers step by the
        recursive rule from the rate the one before left)."""
        self.last_epoch += 1
        i = bisect.bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[i]
        if i > 0 and self._milestones[i - 1] == self.last_epoch:
            scheduler._restart()
        elif chain:
            scheduler._chain_step()
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def _chain_step(self):
        self._advance(chain=True)

    def _initial_step(self):
        self.step()

    def _restart(self):
        self.last_epoch = 0
        self._schedulers[0]._restart()
        self._last_lr = self._schedulers[0].get_last_lr()

    def state_dict(self):
        return {"last_epoch": self.last_epoch, "_milestones": list(self._milestones),
                "_last_lr": list(self._last_lr),
                "_schedulers": [s.state_dict() for s in self._schedulers]}

    def load_state_dict(self, state_dict):
        self.last_epoch = int(state_dict["last_epoch"])
        self._milestones = list(state_dict["_milestones"])
        self._last_lr = list(state_dict["_last_lr"])
        for scheduler, state in zip(self._schedulers, state_dict["_schedulers"]):
            scheduler.load_state_dict(state)


class ChainedScheduler(LRScheduler):
    """Schedulers composed (PyTorch's ChainedScheduler): each ``step()`` steps every one
    of them in order, each by PyTorch's recursive rule from the rate the one before left,
    so multiplicative schedules multiply (a warm-up factor times a decay). Build the
    schedulers on the same optimizer first; their first steps compose the same way."""

    def __init__(self, schedulers, optimizer=None):
        where = "ChainedScheduler"
        schedulers = list(schedulers)
        if schedulers and optimizer is None:
            optimizer = getattr(schedulers[0], "optimizer", None)
        self._schedulers = _check_schedulers(where, schedulers, optimizer)
        self.optimizer = optimizer
        self._last_lr = [group["lr"] for group in optimizer.param_groups]

    get_lr = _no_get_lr

    def step(self):
        """Every scheduler's step, in order."""
        for scheduler in self._schedulers:
            scheduler._chain_step()
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    _chain_step = step

    def state_dict(self):
        return {"_last_lr": list(self._last_lr),
                "_schedulers": [s.state_dict() for s in self._schedulers]}

    def load_state_dict(self, state_dict):
        self._last_lr = list(state_dict["_last_lr"])
        for scheduler, state in zip(self._schedulers, state_dict["_schedulers"]):
            scheduler.load_state_dict(state)
