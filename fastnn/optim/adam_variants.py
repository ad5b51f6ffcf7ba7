"""Adamax, NAdam and RAdam with PyTorch's rules: Adamax by the ``adamax_update`` kernel,
NAdam and RAdam by ``adaptive_moments_update`` with the step's rates computed here."""
import math

from .optimizer import Optimizer, torch_flags_of


class _AdamVariant(Optimizer):
    """Shared shape of the three: state (exp_avg, a second moment), one kernel call per
    flat bucket whose parameters share a step count, else one per parameter.
    Subclasses give ``_second`` (the second state's name) and ``_run_kernel``.
    maximize=True (PyTorch's keyword, after the others) negates the gradient first."""

    _second = "exp_avg_sq"
    torch_flags = torch_flags_of("foreach", "capturable", "differentiable")
    _maximize_by_negation = True

    def _check_common(self, group):
        self._at_least("lr", group["lr"], 0.0)
        self._betas(group)
        self._at_least("eps", group["eps"], 0.0)
        self._at_least("weight_decay", group["weight_decay"], 0.0)
        self._flag(group, "maximize")

    def _state_names(self, group):
        return ("exp_avg", self._second)

    def _decay_and_rate(self, kernels, data, group):
        """PyTorch's weight decay: decoupled (p *= 1 - lr * weight_decay) before the
        update, giving the kernel no decay; else the L2 term the kernel adds to the
        gradient."""
        if group.get("decoupled_weight_decay"):
            self._decoupled_decay(kernels, data, group)
            return 0.0
        return float(group["weight_decay"])

    _update = Optimizer._update_at_step

    def _step_bucket(self, kernels, bucket, group, step):
        self._run_kernel(kernels, bucket, None, group, step)

    def _update_one(self, kernels, bucket, i, group):
        self._run_kernel(kernels, bucket, i, group, bucket.steps[i] + 1)
        bucket.steps[i] += 1

    def _arrays(self, bucket, i):
        """(param, grad, exp_avg, second moment) of the whole bucket (i None) or of
        parameter i (views)."""
        names = ("exp_avg", self._second)
        if i is None:
            return (bucket.data, bucket.grad) + tuple(bucket.buffer(n) for n in names)
        return ((bucket.data_views[i], bucket.grad_views[i])
                + tuple(bucket.view(bucket.buffer(n), i) for n in names))


class Adamax(_AdamVariant):
    """Adamax(params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None,
    *, maximize=False).

    PyTorch's update at a parameter's step t: g = (-grad if maximize else grad)
    + weight_decay * p;
    m = lerp(m, g, 1 - b1) (Adam's); u = max(b2 u, |g| + eps); p -= lr / (1 - b1^t) m / u.
    State: exp_avg, exp_inf.
    """

    hyperparameters = ("lr", "betas", "eps", "weight_decay", "maximize")
    _second = "exp_inf"

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 foreach=None, *, maximize=False, **torch_flags):  # (as PyTorch's order)
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps,
                                  "weight_decay": weight_decay, "maximize": maximize},
                         dict(torch_flags, foreach=foreach))

    def _check(self, group):
        self._check_common(group)

    def _run_kernel(self, kernels, bucket, i, group, step):
        beta1, beta2 = self._betas(group)
        kernels.adamax_update(*self._arrays(bucket, i), step, float(group["lr"]), beta1,
                              beta2, float(group["eps"]), float(group["weight_decay"]))


class RAdam(_AdamVariant):
    """RAdam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
    decoupled_weight_decay=False, *, maximize=False).

    PyTorch's rectified Adam at a parameter's step t: m and v as Adam's;
    rho_inf = 2 / (1 - b2) - 1, rho_t = rho_inf - 2 t b2^t / (1 - b2^t); while rho_t <= 5
    p -= lr m / (1 - b1^t) (no adaptive term), after that p -= lr r sqrt(1 - b2^t) /
    (1 - b1^t) * m / (sqrt(v) + eps) with r = sqrt((rho_t - 4)(rho_t - 2) rho_inf /
    ((rho_inf - 4)(rho_inf - 2) rho_t)). decoupled_weight_decay: p *= 1 - lr wd first
    (AdamW's), else wd p is added to the gradient. State: exp_avg, exp_avg_sq.
    """

    hyperparameters = ("lr", "betas", "eps", "weight_decay", "decoupled_weight_decay",
                       "maximize")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 decoupled_weight_decay=False, *, maximize=False, **torch_flags):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps,
                                  "weight_decay": weight_decay,
                                  "decoupled_weight_decay": decoupled_weight_decay,
                                  "maximize": maximize}, torch_flags)

    def _check(self, group):
        self._check_common(group)
        self._flag(group, "decoupled_weight_decay")

    @staticmethod
    def rates(lr, beta1, beta2, eps, step):
        """(avg_rate, sq_scale, eps) of adaptive_moments_update at this step."""
        bc1, bc2 = 1.0 - beta1 ** step, 1.0 - beta2 ** step
        rho_inf = 2.0 / (1.0 - beta2) - 1.0
        rho_t = rho_inf - 2.0 * step * beta2 ** step / bc2
        if rho_t <= 5.0:
            return lr / bc1, 0.0, 1.0  # the denominator is 0 * sqrt(v) + 1
        rect = math.sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                         / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
        return lr * rect * math.sqrt(bc2) / bc1, 1.0, eps

    def _run_kernel(self, kernels, bucket, i, group, step):
        arrays = self._arrays(bucket, i)
        wd = self._decay_and_rate(kernels, arrays[0], group)
        beta1, beta2 = self._betas(group)
        avg_rate, sq_scale, eps = self.rates(float(group["lr"]), beta1, beta2,
                                             float(group["eps"]), step)
        kernels.adaptive_moments_update(*arrays, avg_rate, 0.0, beta1, beta2, sq_scale, eps,
                                        wd)


class NAdam(_AdamVariant):
    """NAdam(params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
    momentum_decay=4e-3, decoupled_weight_decay=False, *, maximize=False).

    PyTorch's Nesterov Adam at a parameter's step t: mu_t = b1 (1 - 0.5 * 0.96^(t psi)),
    psi the momentum_decay, mu_product the product of mu_1 .. mu_t (per-parameter state);
    m and v as Adam's; with d = sqrt(v / (1 - b2^t)) + eps,
    p -= lr (1 - mu_t) / (1 - mu_product) * g / d
         + lr mu_{t+1} / (1 - mu_product mu_{t+1}) * m / d.
    decoupled_weight_decay as RAdam's. State: mu_product (float32, as PyTorch's 0-d
    tensor of its default dtype; the parameter's dtype once loaded from an array, as
    PyTorch casts a loaded tensor: ``Optimizer._scalar_type``), exp_avg, exp_avg_sq.
    """

    hyperparameters = ("lr", "betas", "eps", "weight_decay", "momentum_decay",
                       "decoupled_weight_decay", "maximize")
    _scalar_state = {"mu_product": 1.0}

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 momentum_decay=4e-3, decoupled_weight_decay=False, *, maximize=False,
                 **torch_flags):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps,
                                  "weight_decay": weight_decay,
                                  "momentum_decay": momentum_decay,
                                  "decoupled_weight_decay": decoupled_weight_decay,
                                  "maximize": maximize}, torch_flags)

    def _check(self, group):
        self._check_common(group)
        self._at_least("momentum_decay", group["momentum_decay"], 0.0)
        self._flag(group, "decoupled_weight_decay")

    def _state_names(self, group):
        return ("mu_product", "exp_avg", "exp_avg_sq")  # PyTorch's order

    def _update(self, kernels, bucket, group):
        """One kernel call for the bucket when its parameters share a step count and a
        mu_product (always, unless a loaded state dict mixed them)."""
        products = bucket.scalars["mu_product"]
        if products and (min(products) != max(products)
                         or not self._uniform_scalar_type(bucket)):
            self._update_each(kernels, bucket, group)
            return
        super()._update(kernels, bucket, group)

    @staticmethod
    def _mu(group, step):
        """mu_t = b1 (1 - 0.5 * 0.96^(t psi)) at step t."""
        beta1 = float(group["betas"][0])
        return beta1 * (1.0 - 0.5 * 0.96 ** (step * float(group["momentum_decay"])))

    def _advance_product(self, bucket, i, mu):
        """mu_product *= mu for parameter i (every parameter when i is None), as
        PyTorch's on its 0-d tensor: mu and the product in its dtype; the new product."""
        products = bucket.scalars["mu_product"]
        real = self._scalar_type(bucket, 0 if i is None else i)
        product = float(real(products[0] if i is None else products[i]) * real(mu))
        if i is None:
            products[:] = [product] * len(products)
        else:
            products[i] = product
        return product

    def _step_empty(self, bucket, i, group, step):
        self._advance_product(bucket, i, self._mu(group, step))

    def _run_kernel(self, kernels, bucket, i, group, step):
        arrays = self._arrays(bucket, i)
        wd = self._decay_and_rate(kernels, arrays[0], group)
        beta1, beta2 = self._betas(group)
        lr = float(group["lr"])
        mu, mu_next = self._mu(group, step), self._mu(group, step + 1)
        product = self._advance_product(bucket, i, mu)
        kernels.adaptive_moments_update(
            *arrays, lr * mu_next / (1.0 - product * mu_next), lr * (1.0 - mu) / (1.0 - product),
            beta1, beta2, 1.0 / math.sqrt(1.0 - beta2 ** step), float(group["eps"]), wd)
