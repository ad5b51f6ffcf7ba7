"""RMSprop with momentum, centering and L2 weight decay, PyTorch's rule."""
from .optimizer import Optimizer, torch_flags_of


class RMSprop(Optimizer):
    """RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
    centered=False, capturable=False, foreach=None, maximize=False, differentiable=False).

    PyTorch's update: g = (-grad if maximize else grad) + weight_decay * p;
    s = alpha s + (1 - alpha) g^2;
    centered: a = alpha a + (1 - alpha) g and avg = sqrt(s - a^2) + eps, else
    avg = sqrt(s) + eps; with momentum b = momentum b + g / avg and p -= lr b, else
    p -= lr g / avg. State (as PyTorch names it): square_avg, momentum_buffer when
    momentum > 0, grad_avg when centered. One ``rmsprop_update`` kernel call per flat
    (group, dtype) buffer.
    """

    hyperparameters = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered",
                       "maximize")
    torch_flags = torch_flags_of("capturable", "foreach", "differentiable")
    _maximize_by_negation = True
    _optional_state = ("momentum_buffer", "grad_avg")

    # (PyTorch's positional order, its flags and maximize after centered)
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False, **torch_flags):
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps,
                                  "weight_decay": weight_decay, "momentum": momentum,
                                  "centered": centered, "maximize": maximize},
                         dict(torch_flags, capturable=capturable, foreach=foreach,
                              differentiable=differentiable))

    def _check(self, group):
        self._at_least("lr", group["lr"], 0.0)
        self._at_least("alpha", group["alpha"], 0.0)  # PyTorch's only bound
        self._at_least("eps", group["eps"], 0.0)
        self._at_least("weight_decay", group["weight_decay"], 0.0)
        self._at_least("momentum", group["momentum"], 0.0)
        self._flag(group, "centered")
        self._flag(group, "maximize")

    def _state_names(self, group):
        return (("square_avg",) + (("momentum_buffer",) if group["momentum"] else ())
                + (("grad_avg",) if group["centered"] else ()))

    def _arrays(self, bucket, group, view):
        """(square_avg, momentum_buffer or None, grad_avg or None) through view()."""
        buf = view(bucket.buffer("momentum_buffer")) if group["momentum"] else None
        avg = view(bucket.buffer("grad_avg")) if group["centered"] else None
        return view(bucket.buffer("square_avg")), buf, avg

    def _run(self, kernels, data, grad, arrays, group):
        square_avg, buf, avg = arrays
        kernels.rmsprop_update(data, grad, square_avg, float(group["lr"]),
                               float(group["alpha"]), float(group["eps"]),
                               float(group["weight_decay"]), float(group["momentum"]),
                               buf, avg)

    def _update(self, kernels, bucket, group):
        if bucket.size:
            self._run(kernels, bucket.data, bucket.grad,
                      self._arrays(bucket, group, lambda a: a), group)
        bucket.steps = [s + 1 for s in bucket.steps]

    def _update_one(self, kernels, bucket, i, group):
        self._run(kernels, bucket.data_views[i], bucket.grad_views[i],
                  self._arrays(bucket, group, lambda a: bucket.view(a, i)), group)
        bucket.steps[i] += 1
