"""Adagrad with learning-rate decay and L2 weight decay, PyTorch's rule."""
import numpy as np

from ..errors import KeyValueError
from .optimizer import Optimizer, _as_index, torch_flags_of


class Adagrad(Optimizer):
    """Adagrad(params, lr=1e-2, lr_decay=0, weight_decay=0,
    initial_accumulator_value=0, eps=1e-10, foreach=None, *, maximize=False).

    PyTorch's update at a parameter's step t (from 1): clr = lr / (1 + (t - 1) lr_decay);
    g = (-grad if maximize else grad) + weight_decay * p; sum += g^2;
    p -= clr * g / (sqrt(sum) + eps). The state ``sum`` starts at
    initial_accumulator_value (PyTorch's name). One ``adagrad_update`` kernel call per
    flat (group, dtype) buffer whenever its parameters share one step count.
    """

    hyperparameters = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps",
                       "maximize")
    torch_flags = torch_flags_of("foreach", "differentiable", "fused")
    _maximize_by_negation = True

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0,
                 initial_accumulator_value=0, eps=1e-10, foreach=None, *, maximize=False,
                 **torch_flags):  # (foreach positional, as PyTorch's)
        super().__init__(params, {"lr": lr, "lr_decay": lr_decay,
                                  "weight_decay": weight_decay,
                                  "initial_accumulator_value": initial_accumulator_value,
                                  "eps": eps, "maximize": maximize},
                         dict(torch_flags, foreach=foreach))

    def _check(self, group):
        self._at_least("lr", group["lr"], 0.0)
        self._at_least("lr_decay", group["lr_decay"], 0.0)
        self._at_least("weight_decay", group["weight_decay"], 0.0)
        self._at_least("initial_accumulator_value", group["initial_accumulator_value"], 0.0)
        self._at_least("eps", group["eps"], 0.0)
        self._flag(group, "maximize")

    # PyTorch's Adagrad makes every parameter's state (step 0, sum) in its constructor:
    # its state dict holds them before any step, and loads only with them; a parameter
    # added by add_param_group gets its entry at its first step (_unlisted)
    _eager_state = True

    def _listed_before_step(self, index):
        return index not in self.__dict__.get("_unlisted", ())

    def add_param_group(self, param_group):
        """Optimizer.add_param_group; the new parameters have no state entry until their
        first step, as torch's (its constructor alone makes the step-0 entries)."""
        start = sum(len(g["params"]) for g in self.param_groups)
        super().add_param_group(param_group)
        end = sum(len(g["params"]) for g in self.param_groups)
        self._unlisted = set(self.__dict__.get("_unlisted", ())) | set(range(start, end))

    def _state_names(self, group):
        return ("sum",)

    def _install_group(self, group):
        super()._install_group(group)
        for bucket in self._buckets[-1]:
            self._sum(bucket, group)

    def _start(self, bucket, i):
        """Parameter i's sum back to its start, initial_accumulator_value (PyTorch's
        rule: the constructor's value, whatever a group says: torch.optim.Adagrad reads
        self.defaults when it makes the state)."""
        start = float(self.defaults["initial_accumulator_value"])
        if start:
            bucket.ns.copy_into(bucket.view(bucket.buffer("sum"), i),
                                np.full(bucket.shapes[i], start, bucket.dtype))

    def _sum(self, bucket, group):
        """The flat ``sum`` buffer, starting at initial_accumulator_value."""
        fresh = "sum" not in bucket.state
        buf = bucket.buffer("sum")
        if fresh:
            for i in range(len(bucket)):
                self._start(bucket, i)
        return buf

    def load_state_dict(self, state_dict):
        """Optimizer.load_state_dict; a parameter the state dict holds no sum for (one
        that had not stepped, in a state dict without PyTorch's step-0 entries) starts
        again from initial_accumulator_value, not from zeros, and one it holds no entry
        for has none until its first step (as torch's, whose load replaces the state)."""
        entries = state_dict.get("state") if isinstance(state_dict, dict) else None
        if isinstance(entries, dict) and entries:
            key, first = next(iter(entries.items()))
            if isinstance(first, dict) and not first:
                # PyTorch 2.13's load reads the first saved entry's step (its
                # __setstate__): an empty one is KeyError: 'step' there, raised before
                # anything loads; an empty entry after it loads, its sum restarting
                raise KeyValueError(f"Adagrad.load_state_dict: parameter {key!r}: missing "
                                    f"state 'step' (PyTorch's load reads the first entry's "
                                    f"step; an empty entry loads only after it)")
        super().load_state_dict(state_dict)
        saved = {_as_index(k): entry for k, entry in state_dict["state"].items()}
        unlisted = set()
        for index, (_, bucket, i) in enumerate(self._locate()):
            if "sum" not in saved.get(index, {}):
                self._start(bucket, i)
            if index not in saved:  # (torch's load replaces its state whole)
                unlisted.add(index)
        self._unlisted = unlisted

    @staticmethod
    def _rate(group, step):
        """The rate of a parameter's step (1-based)."""
        return float(group["lr"]) / (1.0 + (step - 1) * float(group["lr_decay"]))

    _update = Optimizer._update_at_step

    def _step_bucket(self, kernels, bucket, group, step):
        kernels.adagrad_update(bucket.data, bucket.grad, self._sum(bucket, group),
                               self._rate(group, step), float(group["weight_decay"]),
                               float(group["eps"]))

    def _update_one(self, kernels, bucket, i, group):
        kernels.adagrad_update(bucket.data_views[i], bucket.grad_views[i],
                               bucket.view(self._sum(bucket, group), i),
                               self._rate(group, bucket.steps[i] + 1),
                               float(group["weight_decay"]), float(group["eps"]))
        bucket.steps[i] += 1
