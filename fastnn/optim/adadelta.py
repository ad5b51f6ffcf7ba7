"""Adadelta with L2 weight decay and maximize, PyTorch's rule."""
from .optimizer import Optimizer, torch_flags_of, torch_invalid


class Adadelta(Optimizer):
    """Adadelta(params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *,
    maximize=False).

    PyTorch's update: g = (-grad if maximize else grad) + weight_decay * p;
    v = rho v + (1 - rho) g^2; delta = sqrt(u + eps) / sqrt(v + eps) * g;
    u = rho u + (1 - rho) delta^2; p -= lr delta. State (PyTorch's names): square_avg (v)
    and acc_delta (u), zeros at first. One ``adadelta_update`` kernel call per flat
    (group, dtype) buffer.
    """

    hyperparameters = ("lr", "rho", "eps", "weight_decay", "maximize")
    torch_flags = torch_flags_of("capturable", "foreach", "differentiable")

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *,
                 maximize=False, **torch_flags):  # (foreach positional, as PyTorch's)
        super().__init__(params, {"lr": lr, "rho": rho, "eps": eps,
                                  "weight_decay": weight_decay, "maximize": maximize},
                         dict(torch_flags, foreach=foreach))

    def _check(self, group):
        self._at_least("lr", group["lr"], 0.0)
        rho = self._real("rho", group["rho"])
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Adadelta: invalid rho: {group['rho']!r} "
                             f"({torch_invalid('rho', group['rho'])}; "
                             f"expected 0 <= rho <= 1)")
        self._at_least("eps", group["eps"], 0.0)
        self._at_least("weight_decay", group["weight_decay"], 0.0)
        self._flag(group, "maximize")

    def _state_names(self, group):
        return ("square_avg", "acc_delta")

    @staticmethod
    def _run(kernels, arrays, group):
        kernels.adadelta_update(*arrays, float(group["lr"]), float(group["rho"]),
                                float(group["eps"]), float(group["weight_decay"]),
                                group["maximize"])

    def _update(self, kernels, bucket, group):
        if bucket.size:
            self._run(kernels, (bucket.data, bucket.grad, bucket.buffer("square_avg"),
                                bucket.buffer("acc_delta")), group)
        bucket.steps = [s + 1 for s in bucket.steps]

    def _update_one(self, kernels, bucket, i, group):
        self._run(kernels, (bucket.data_views[i], bucket.grad_views[i],
                            bucket.view(bucket.buffer("square_avg"), i),
                            bucket.view(bucket.buffer("acc_delta"), i)), group)
        bucket.steps[i] += 1
