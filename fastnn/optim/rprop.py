"""Rprop (resilient backpropagation) with maximize, PyTorch's rule."""
import math

import numpy as np

from .optimizer import Optimizer, check_pair, torch_flags_of


class Rprop(Optimizer):
    """Rprop(params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *, maximize=False).

    PyTorch's update, elementwise: g = -grad if maximize else grad; the sign of g * prev
    picks a factor, etas[1] (same sign), etas[0] (sign change) or 1 (a zero);
    step_size = clamp(step_size * factor, *step_sizes); after a sign change g = 0 (no
    step); p -= sign(g) * step_size; prev = g. State (PyTorch's names): prev (zeros at
    first) and step_size, which starts at the group's lr at the parameter's first step
    (lr is used for nothing else). One ``rprop_update`` kernel call per flat
    (group, dtype) buffer.

    The sign is torch.sign's, 0 for a NaN: unlike fastnn's other optimizers, and as
    PyTorch's Rprop, a NaN gradient element moves neither its parameter nor its step
    size (prev holds the NaN until the next step), and an infinite one steps by
    step_size.
    """

    hyperparameters = ("lr", "etas", "step_sizes", "maximize")
    torch_flags = torch_flags_of("capturable", "foreach", "differentiable")

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *,
                 maximize=False, **torch_flags):
        super().__init__(params, {"lr": lr, "etas": etas, "step_sizes": step_sizes,
                                  "maximize": maximize}, torch_flags)

    def _pair(self, group, name, expected):
        """The group's ``name``, a pair of finite numbers, as floats (PyTorch's error
        types for another value: ``check_pair``; it indexes etas, unpacks step_sizes)."""
        pair = group[name]
        check_pair("Rprop", name, pair, expected, indexed=name == "etas")
        low, high = (self._real(f"{name}[{k}]", v) for k, v in enumerate(pair))
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"Rprop: invalid {name}: {pair!r} (expected finite numbers)")
        return low, high

    def _check(self, group):
        self._at_least("lr", group["lr"], 0.0)
        minus, plus = self._pair(group, "etas", "(etaminus, etaplus)")
        if not 0.0 < minus < 1.0 < plus:
            raise ValueError(f"Rprop: invalid etas: {group['etas']!r} (Invalid eta "
                             f"values: {group['etas'][0]}, {group['etas'][1]}; "
                             f"expected 0 < etas[0] < 1 < etas[1])")
        self._pair(group, "step_sizes", "(min, max)")
        self._flag(group, "maximize")

    def _state_names(self, group):
        return ("prev", "step_size")

    @staticmethod
    def _start(bucket, group, indices):
        """PyTorch's new state for these parameters (at their first step): prev 0,
        step_size the group's lr."""
        lr = float(group["lr"])
        size, prev = bucket.buffer("step_size"), bucket.buffer("prev")
        if len(indices) == len(bucket.params):
            bucket.ns.copy_into(size, np.full(bucket.size, lr, bucket.dtype))
            bucket.ns.fill_zero(prev)
            return
        for i in indices:
            bucket.ns.copy_into(bucket.view(size, i), np.full(bucket.shapes[i], lr, bucket.dtype))
            bucket.ns.fill_zero(bucket.view(prev, i))

    def _run(self, kernels, arrays, group):
        (etaminus, etaplus), (low, high) = group["etas"], group["step_sizes"]
        kernels.rprop_update(*arrays, float(etaminus), float(etaplus), float(low),
                             float(high), group["maximize"])

    def _update(self, kernels, bucket, group):
        fresh = [i for i, s in enumerate(bucket.steps) if s == 0]
        if fresh and bucket.size:
            self._start(bucket, group, fresh)
        if bucket.size:
            self._run(kernels, (bucket.data, bucket.grad, bucket.buffer("prev"),
                                bucket.buffer("step_size")), group)
        bucket.steps = [s + 1 for s in bucket.steps]

    def _update_one(self, kernels, bucket, i, group):
        if bucket.steps[i] == 0:
            self._start(bucket, group, [i])
        self._run(kernels, (bucket.data_views[i], bucket.grad_views[i],
                            bucket.view(bucket.buffer("prev"), i),
                            bucket.view(bucket.buffer("step_size"), i)), group)
        bucket.steps[i] += 1
