"""Adagrad with learning-rate decay and L2 weight decay, PyTorch's rule."""
import numpy as np

from .optimizer import Optimizer, torch_flags_of


class Adagrad(Optimizer):
    """Adagrad(params, lr=1e-2, lr_decay=0, weight_decay=0,
    initial_accumulator_value=0, eps=1e-10, *, maximize=False).

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
                 initial_accumulator_value=0, eps=1e-10, *, maximize=False,
                 **torch_flags):
        super().__init__(params, {"lr": lr, "lr_decay": lr_decay,
                                  "weight_decay": weight_decay,
                                  "initial_accumulator_value": initial_accumulator_value,
                                  "eps": eps, "maximize": maximize}, torch_flags)

    def _check(self, group):
        self._at_least("lr", group["lr"], 0.0)
        self._at_least("lr_decay", group["lr_decay"], 0.0)
        self._at_least("weight_decay", group["weight_decay"], 0.0)
        self._at_least("initial_accumulator_value", group["initial_accumulator_value"], 0.0)
        self._at_least("eps", group["eps"], 0.0)
        self._flag(group, "maximize")

    def _state_names(self, group):
        return ("sum",)

    def _sum(self, bucket, group):
        """The flat ``sum`` buffer, starting at initial_accumulator_value."""
        fresh = "sum" not in bucket.state
        buf = bucket.buffer("sum")
        # PyTorch's rule: the constructor's value, whatever a group says (torch.optim.Adagrad
        # reads self.defaults when it makes the state)
        start = float(self.defaults["initial_accumulator_value"])
        if fresh and start:
            bucket.ns.copy_into(buf, np.full(bucket.size, start, bucket.dtype))
        return buf

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
