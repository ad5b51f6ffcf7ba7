"""Stochastic gradient descent with momentum, dampening, weight decay and Nesterov,
PyTorch's rule."""
from .optimizer import Optimizer, torch_flags_of


class SGD(Optimizer):
    """SGD(params, lr=1e-3, momentum=0, weight_decay=0, nesterov=False, dampening=0,
    *, maximize=False).

    PyTorch's update: g = (-grad if maximize else grad) + weight_decay * p;
    v = momentum * v + (1 - dampening) g,
    v = g (undamped) on a parameter's first step; p -= lr * (g + momentum * v if nesterov
    else v). One ``sgd_update`` kernel call per flat (group, dtype) buffer. (PyTorch's
    positional order puts dampening before weight_decay: pass it by name.) PyTorch's
    keywords foreach, fused, ... are taken at the values implemented
    (``Optimizer.torch_flags``).
    """

    hyperparameters = ("lr", "momentum", "weight_decay", "nesterov", "dampening",
                       "maximize")
    torch_flags = torch_flags_of("foreach", "differentiable", "fused")
    _maximize_by_negation = True
    _optional_state = ("momentum_buffer",)
    _step_saved = False

    # DESIGN.md's public order (params, lr, momentum, weight_decay); PyTorch's fourth
    # positional is dampening, taken here by keyword
    def __init__(self, params, lr=1e-3, momentum=0, weight_decay=0, nesterov=False,
                 dampening=0, *, maximize=False, **torch_flags):
        super().__init__(params, {"lr": lr, "momentum": momentum,
                                  "weight_decay": weight_decay, "nesterov": nesterov,
                                  "dampening": dampening, "maximize": maximize},
                         torch_flags)

    def _check(self, group):
        self._at_least("lr", group["lr"], 0.0)
        self._at_least("momentum", group["momentum"], 0.0)  # PyTorch's only bound
        self._at_least("weight_decay", group["weight_decay"], 0.0)
        dampening = self._real("dampening", group["dampening"])
        if not 0.0 <= dampening <= 1.0:
            raise ValueError(f"SGD: invalid dampening: {group['dampening']!r} "
                             f"(expected 0 <= dampening <= 1)")
        nesterov = self._flag(group, "nesterov")
        if nesterov and (group["momentum"] == 0 or dampening != 0):
            raise ValueError(f"SGD: invalid nesterov: {nesterov!r} "
                             f"(Nesterov momentum requires a momentum and zero dampening)")
        self._flag(group, "maximize")

    def _state_names(self, group):
        return ("momentum_buffer",) if group["momentum"] else ()

    def _saved_state(self, step, state, group):
        """PyTorch's SGD entry: the momentum buffer alone (no step, which a buffer
        implies on load), and no entry without one (momentum 0)."""
        return {k: v for k, v in state.items() if k == "momentum_buffer"}

    def _args(self, group, first):
        """The kernel's hyper-parameters; no dampening on a first step (v = g)."""
        return (float(group["lr"]), float(group["momentum"]), float(group["weight_decay"]),
                bool(group["nesterov"]), 0.0 if first else float(group["dampening"]))

    def _update(self, kernels, bucket, group):
        steps = bucket.steps
        if group["dampening"] and steps and min(steps) == 0 < max(steps):
            self._update_each(kernels, bucket, group)  # first steps and later ones mixed
            return
        if bucket.size:
            velocity = bucket.buffer("momentum_buffer") if group["momentum"] else None
            kernels.sgd_update(bucket.data, bucket.grad, velocity,
                               *self._args(group, not steps or steps[0] == 0))
        # steps count momentum steps only: the first step with momentum (v = g, undamped)
        # is the first one taken with it on, as PyTorch's first buffer, whenever that is
        if group["momentum"]:
            bucket.steps = [s + 1 for s in steps]

    def _update_one(self, kernels, bucket, i, group):
        velocity = (bucket.view(bucket.buffer("momentum_buffer"), i)
                    if group["momentum"] else None)
        kernels.sgd_update(bucket.data_views[i], bucket.grad_views[i], velocity,
                           *self._args(group, bucket.steps[i] == 0))
        if group["momentum"]:
            bucket.steps[i] += 1
