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

ReduceLROnPlateau is the exception, as in PyTorch: no closed form, ``step(metric)``
multiplies the rates by ``factor`` when the metric (a validation loss, say) has not
improved for ``patience`` epochs.
"""
import bisect
import math
import numbers

from .optimizer import Optimizer


class LRScheduler:
    """Base class: the epoch counter, the initial rates and state_dict."""

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
        self.step()

    def lr_at(self, base_lr, epoch, group_index):
        """The rate of a group whose initial rate is base_lr, at epoch (>= 0)."""
        raise NotImplementedError

    def step(self):
        """Advance one epoch and write every group's rate for it."""
        self.last_epoch += 1
        for i, (group, base) in enumerate(zip(self.optimizer.param_groups, self.base_lrs)):
            group["lr"] = self.lr_at(base, self.last_epoch, i)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        """The rates of the last step, one per param group."""
        return list(self._last_lr)

    def state_dict(self):
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs),
                "_last_lr": list(self._last_lr)}

    def load_state_dict(self, state_dict):
        self.last_epoch = int(state_dict["last_epoch"])
        self.base_lrs = list(state_dict["base_lrs"])
        self._last_lr = list(state_dict["_last_lr"])


def _int_at_least(where, name, value, low=1):
    """value as an int >= low (1: a positive int), or a ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        kind = "a positive int" if low == 1 else f"an int >= {low}"
        raise ValueError(f"{where}: expected {name} to be {kind}, got {value!r}")
    return int(value)


def _number(where, name, value, low=0.0):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not \
            math.isfinite(value) or value < low:
        raise ValueError(f"{where}: expected {name} to be a finite number >= {low}, "
                         f"got {value!r}")
    return float(value)


class StepLR(LRScheduler):
    """lr0 * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size = _int_at_least("StepLR", "step_size", step_size)
        self.gamma = _number("StepLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch, group_index):
        return base_lr * self.gamma ** (epoch // self.step_size)


class MultiStepLR(LRScheduler):
    """lr0 * gamma ** (number of milestones <= epoch)."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        milestones = list(milestones)
        for m in milestones:
            _int_at_least("MultiStepLR", "each milestone", m)
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = _number("MultiStepLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch, group_index):
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, epoch)


class ExponentialLR(LRScheduler):
    """lr0 * gamma ** epoch."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = _number("ExponentialLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch, group_index):
        return base_lr * self.gamma ** epoch


class CosineAnnealingLR(LRScheduler):
    """eta_min + (lr0 - eta_min) * (1 + cos(pi * epoch / T_max)) / 2."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):  # noqa: N803 (PyTorch's name)
        self.T_max = _int_at_least("CosineAnnealingLR", "T_max", T_max)
        self.eta_min = _number("CosineAnnealingLR", "eta_min", eta_min)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch, group_index):
        return self.eta_min + (base_lr - self.eta_min) * (
            1 + math.cos(math.pi * epoch / self.T_max)) / 2


class LambdaLR(LRScheduler):
    """lr0 * lr_lambda(epoch); lr_lambda: a function, or a list of one per group."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        groups = len(optimizer.param_groups) if isinstance(optimizer, Optimizer) else 0
        lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * groups
        if len(lambdas) != groups or not all(callable(f) for f in lambdas):
            raise ValueError(f"LambdaLR: expected a function or a list of {groups} functions "
                             f"(one per param group), got {lr_lambda!r}")
        self.lr_lambdas = lambdas
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch, group_index):
        return base_lr * self.lr_lambdas[group_index](epoch)


class ReduceLROnPlateau:
    """PyTorch's ReduceLROnPlateau: ``step(metric)`` once per epoch; after more than
    ``patience`` epochs without improvement every group's rate becomes
    max(lr * factor, min_lr) (changes smaller than eps are skipped), then ``cooldown``
    epochs pass before bad epochs count again.

    mode 'min' (the metric should fall) or 'max'; improvement means beating the best so
    far by threshold, relative (threshold_mode 'rel': best * (1 -+ threshold)) or
    absolute ('abs': best -+ threshold). min_lr: one number or one per param group.
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8):
        where = "ReduceLROnPlateau"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{where}: expected a fastnn optimizer, got "
                            f"{type(optimizer).__name__}")
        if mode not in ("min", "max"):
            raise ValueError(f"{where}: expected mode 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{where}: expected threshold_mode 'rel' or 'abs', "
                             f"got {threshold_mode!r}")
        self.factor = _number(where, "factor", factor)
        if self.factor >= 1.0:
            raise ValueError(f"{where}: expected factor < 1.0, got {factor!r}")
        groups = len(optimizer.param_groups)
        min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * groups
        if len(min_lrs) != groups:
            raise ValueError(f"{where}: expected {groups} min_lr values (one per param "
                             f"group), got {len(min_lrs)}")
        self.optimizer = optimizer
        self.min_lrs = [_number(where, "min_lr", v) for v in min_lrs]
        self.mode, self.threshold_mode = mode, threshold_mode
        self.patience = _int_at_least(where, "patience", patience, low=0)
        self.cooldown = _int_at_least(where, "cooldown", cooldown, low=0)
        self.threshold = _number(where, "threshold", threshold)
        self.eps = _number(where, "eps", eps)
        self.best = math.inf if mode == "min" else -math.inf
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

    def step(self, metrics):
        """Record one epoch's metric (a number) and lower the rates if it is time."""
        try:
            current = float(metrics)
        except (TypeError, ValueError):
            raise TypeError(f"ReduceLROnPlateau.step: expected the metric as a number, "
                            f"got {metrics!r}") from None
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in cooldown do not count
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                new_lr = max(group["lr"] * self.factor, min_lr)
                if group["lr"] - new_lr > self.eps:
                    group["lr"] = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        """The rates after the last step, one per param group."""
        return list(self._last_lr)

    def state_dict(self):
        """Everything but the optimizer (numbers and lists)."""
        return {key: (list(value) if isinstance(value, list) else value)
                for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict):
        self.__dict__.update({key: value for key, value in state_dict.items()
                              if key != "optimizer"})

