"""ASGD (averaged stochastic gradient descent) with L2 weight decay and maximize,
PyTorch's rule."""
import math

import numpy as np

from .flat import has_no_grad
from .optimizer import Optimizer, torch_flags_of


class ASGD(Optimizer):
    """ASGD(params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, foreach=None,
    maximize=False, differentiable=False, capturable=False).

    PyTorch's update at a parameter's step t, with its eta and mu from the step before:
    g = (-grad if maximize else grad) + weight_decay * p; p = p (1 - lambd eta) - eta g;
    ax = p while mu == 1, else ax += (p - ax) mu; then eta = lr / (1 + lambd lr t)^alpha
    and mu = 1 / max(1, t - t0). State (PyTorch's names): ax, and eta and mu, one number
    per parameter (eta starts at the group's lr at the parameter's first step, mu at 1);
    both are float32 values whatever the parameters' dtype, as PyTorch computes them
    into 0-d tensors of its default dtype, float32 (a loaded value is taken as given). One
    ``asgd_update`` kernel call per flat (group, dtype) buffer whose parameters share a
    step count, eta and mu (always, unless partial steps or a loaded state dict mixed
    them), else one per parameter.
    """

    hyperparameters = ("lr", "lambd", "alpha", "t0", "weight_decay", "maximize")
    torch_flags = torch_flags_of("foreach", "capturable", "differentiable")
    #: eta is the group's lr at the parameter's first step (set then, as PyTorch creates
    #: its state): NaN until then, so that no update can use it unset
    _scalar_state = {"eta": math.nan, "mu": 1.0}

    # (PyTorch's positional order: foreach, maximize, differentiable, capturable)
    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0,
                 foreach=None, maximize=False, differentiable=False, capturable=False,
                 **torch_flags):
        super().__init__(params, {"lr": lr, "lambd": lambd, "alpha": alpha, "t0": t0,
                                  "weight_decay": weight_decay, "maximize": maximize},
                         dict(torch_flags, foreach=foreach, differentiable=differentiable,
                              capturable=capturable))

    def _check(self, group):
        self._at_least("lr", group["lr"], 0.0)
        self._at_least("lambd", group["lambd"], 0.0)
        for name in ("alpha", "t0"):
            if not math.isfinite(self._real(name, group[name])):
                raise ValueError(f"ASGD: invalid {name}: {group[name]!r} "
                                 f"(expected a finite number)")
        self._at_least("weight_decay", group["weight_decay"], 0.0)
        self._flag(group, "maximize")

    def _state_names(self, group):
        return ("eta", "mu", "ax")

    @staticmethod
    def rates(lr, lambd, alpha, t0, step):
        """(eta, mu) after a parameter's step ``step`` (1-based), as PyTorch computes
        them (Python floats; PyTorch then stores them in 0-d tensors)."""
        return lr / ((1 + lambd * lr * step) ** alpha), 1 / max(1, step - t0)

    @staticmethod
    def _start(bucket, group, indices):
        """PyTorch's new state for these parameters (at their first step): eta the
        group's lr, mu 1 (ax, zeros, is overwritten by the first step: mu is 1)."""
        etas, mus = bucket.scalars["eta"], bucket.scalars["mu"]
        for i in indices:
            etas[i], mus[i] = float(np.float32(group["lr"])), 1.0

    def _update(self, kernels, bucket, group):
        steps = bucket.steps
        self._start(bucket, group, [i for i, s in enumerate(steps) if s == 0])
        etas, mus = bucket.scalars["eta"], bucket.scalars["mu"]
        if steps and (min(steps) != max(steps) or min(etas) != max(etas)
                      or min(mus) != max(mus)):
            self._update_each(kernels, bucket, group)
        elif steps:
            self._run(kernels, bucket, None, group)

    def _update_each(self, kernels, bucket, group):
        """Each parameter with a gradient alone; zero-size ones too (their eta and mu
        advance, as PyTorch's)."""
        for i, p in enumerate(bucket.params):
            if not has_no_grad(p):
                self._update_one(kernels, bucket, i, group)

    def _update_one(self, kernels, bucket, i, group):
        if bucket.steps[i] == 0:
            self._start(bucket, group, [i])
        self._run(kernels, bucket, i, group)

    def _run(self, kernels, bucket, i, group):
        """The kernel on the whole bucket (i None: its parameters share step, eta, mu)
        or on parameter i, then the next eta and mu and the step count."""
        etas, mus = bucket.scalars["eta"], bucket.scalars["mu"]
        first = 0 if i is None else i
        if i is None:
            arrays = (bucket.data, bucket.grad, bucket.buffer("ax"))
        else:
            arrays = (bucket.data_views[i], bucket.grad_views[i],
                      bucket.view(bucket.buffer("ax"), i))
        if arrays[0].size:
            kernels.asgd_update(*arrays, etas[first], mus[first], float(group["lambd"]),
                                float(group["weight_decay"]), group["maximize"])
        step = bucket.steps[first] + 1
        eta, mu = self.rates(float(group["lr"]), float(group["lambd"]),
                             float(group["alpha"]), float(group["t0"]), step)
        # PyTorch's eta.copy_(torch.as_tensor(eta)): a float32 tensor (its default dtype)
        # copied in, so float32 values even where a load made eta a float64 tensor
        eta, mu = float(np.float32(eta)), float(np.float32(mu))
        if i is None:
            n = len(bucket.params)
            etas[:], mus[:], bucket.steps = [eta] * n, [mu] * n, [step] * n
        else:
            etas[i], mus[i], bucket.steps[i] = eta, mu, step
