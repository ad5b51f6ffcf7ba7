"""Adam with L2 weight decay and AdamW with decoupled decay, PyTorch's rules
(bias-corrected moments)."""
from .optimizer import Optimizer, torch_flags_of


class Adam(Optimizer):
    """Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
    *, maximize=False, decoupled_weight_decay=False).

    PyTorch's update: g = (-grad if maximize else grad) + weight_decay * p
    (decoupled_weight_decay: p *= 1 - lr * weight_decay first, AdamW's, and no L2 term);
    m = m + (1 - b1) (g - m) (PyTorch's m.lerp_(g, 1 - b1): an infinite m turns NaN on
    a finite g, as PyTorch's);
    v = b2 v + (1 - b2) g^2; p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps),
    t counting each parameter's steps from 1; amsgrad: the running maximum of v
    (state 'max_exp_avg_sq') replaces v in the denominator. One ``adam_update`` kernel
    call per flat (group, dtype) buffer whenever its parameters share one step count.
    """

    hyperparameters = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize",
                       "decoupled_weight_decay")
    torch_flags = torch_flags_of("foreach", "capturable", "differentiable", "fused")
    _maximize_by_negation = True
    _optional_state = ("max_exp_avg_sq",)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False,
                 **torch_flags):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps,
                                  "weight_decay": weight_decay, "amsgrad": amsgrad,
                                  "maximize": maximize,
                                  "decoupled_weight_decay": decoupled_weight_decay},
                         torch_flags)

    def _check(self, group):
        self._at_least("lr", group["lr"], 0.0)
        self._betas(group)
        self._at_least("eps", group["eps"], 0.0)
        self._at_least("weight_decay", group["weight_decay"], 0.0)
        self._flag(group, "amsgrad")
        self._flag(group, "maximize")
        self._flag(group, "decoupled_weight_decay")

    def _state_names(self, group):
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())

    def _decay(self, kernels, data, group):
        """Decoupled weight decay before the update (AdamW's); else the decay is in g."""
        if group["decoupled_weight_decay"]:
            self._decoupled_decay(kernels, data, group)

    def _args(self, group):
        beta1, beta2 = group["betas"]
        decay = 0.0 if group["decoupled_weight_decay"] else float(group["weight_decay"])
        return (float(group["lr"]), float(beta1), float(beta2), float(group["eps"]), decay)

    _update = Optimizer._update_at_step

    def _step_bucket(self, kernels, bucket, group, step):
        self._decay(kernels, bucket.data, group)
        vmax = bucket.buffer("max_exp_avg_sq") if group["amsgrad"] else None
        kernels.adam_update(bucket.data, bucket.grad, bucket.buffer("exp_avg"),
                            bucket.buffer("exp_avg_sq"), step, *self._args(group), vmax)

    def _update_one(self, kernels, bucket, i, group):
        self._decay(kernels, bucket.data_views[i], group)
        vmax = (bucket.view(bucket.buffer("max_exp_avg_sq"), i) if group["amsgrad"]
                else None)
        kernels.adam_update(bucket.data_views[i], bucket.grad_views[i],
                            bucket.view(bucket.buffer("exp_avg"), i),
                            bucket.view(bucket.buffer("exp_avg_sq"), i),
                            bucket.steps[i] + 1, *self._args(group), vmax)
        bucket.steps[i] += 1


class AdamW(Adam):
    """AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
    amsgrad=False, *, maximize=False).

    PyTorch's decoupled weight decay: p -= lr * weight_decay * p, then Adam's update
    with g = grad (no L2 term): Adam with decoupled_weight_decay=True, as PyTorch's
    (its groups carry the flag). The decay is the ``sgd_update`` kernel with the
    parameters as their own gradient (one more pass over them, on any backend;
    Optimizer._decoupled_decay).
    """

    _later_hyperparameters = {"maximize": False, "decoupled_weight_decay": True}

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, **torch_flags):
        if "decoupled_weight_decay" in torch_flags:
            raise TypeError("AdamW.__init__() got an unexpected keyword argument "
                            "'decoupled_weight_decay' (AdamW's decay is decoupled; "
                            "Adam(decoupled_weight_decay=...) chooses)")
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=True,
                         **torch_flags)
