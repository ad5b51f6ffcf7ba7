"""Stochastic gradient descent with momentum, weight decay and Nesterov, PyTorch's rule."""
import numpy as np

from .optimizer import Optimizer


class SGD(Optimizer):
    """SGD(params, lr, momentum=0.0, weight_decay=0.0, nesterov=False).

    PyTorch's update (dampening 0): g = grad + weight_decay * p;
    v = momentum * v + g (v starts at g); p -= lr * (g + momentum * v if nesterov else v).
    One ``sgd_update`` kernel call per flat (group, dtype) buffer. PyTorch's keywords
    dampening (0 only), maximize, foreach, ... are taken at the values implemented
    (``Optimizer.torch_flags``).
    """

    hyperparameters = ("lr", "momentum", "weight_decay", "nesterov")
    _optional_state = ("momentum_buffer",)

    torch_flags = dict(Optimizer.torch_flags, dampening=(0,))

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False,
                 **torch_flags):
        super().__init__(params, {"lr": lr, "momentum": momentum,
                                  "weight_decay": weight_decay, "nesterov": nesterov},
                         torch_flags)

    def _check(self, group):
        self._at_least("lr", group["lr"], 0.0)
        self._unit("momentum", group["momentum"])
        self._at_least("weight_decay", group["weight_decay"], 0.0)
        nesterov = group["nesterov"]
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"SGD: expected nesterov to be a bool, got {nesterov!r}")
        if nesterov and group["momentum"] == 0:
            raise ValueError(f"SGD: invalid nesterov: {nesterov!r} "
                             f"(Nesterov momentum requires momentum > 0)")

    def _state_names(self, group):
        return ("momentum_buffer",) if group["momentum"] else ()

    def _update(self, kernels, bucket, group):
        if bucket.size:
            velocity = bucket.buffer("momentum_buffer") if group["momentum"] else None
            kernels.sgd_update(bucket.data, bucket.grad, velocity, float(group["lr"]),
                               float(group["momentum"]), float(group["weight_decay"]),
                               bool(group["nesterov"]))
        bucket.steps = [s + 1 for s in bucket.steps]

    def _update_one(self, kernels, bucket, i, group):
        velocity = (bucket.view(bucket.buffer("momentum_buffer"), i)
                    if group["momentum"] else None)
        kernels.sgd_update(bucket.data_views[i], bucket.grad_views[i], velocity,
                           float(group["lr"]), float(group["momentum"]),
                           float(group["weight_decay"]), bool(group["nesterov"]))
        bucket.steps[i] += 1
