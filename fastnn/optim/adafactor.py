"""Adafactor with PyTorch's rule (torch.optim.Adafactor): factored second moments,
relative step sizes, update clipping; NumPy on the host per parameter (``host.py``).
"""

import numpy as np

from ..errors import KeyValueError
from .host import HostOptimizer, lerp_, vector_norm
from .optimizer import as_count, check_pair


class Adafactor(HostOptimizer):
    """Adafactor(params, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0,
    weight_decay=0.0, *, foreach=None, maximize=False).

    PyTorch's update (torch.optim.Adafactor), per parameter at its step t (from 1):
    G = -grad if maximize else grad; beta2 weight w = t ** beta2_decay;
    rho = min(lr, 1 / sqrt(t)); alpha = max(eps2, RMS(p)) * rho (before the decay);
    p *= 1 - lr * weight_decay. A parameter of 2 or more dimensions keeps factored
    second moments over its last two: row_var (..., m, 1) and col_var (..., 1, n), each
    lerped by w towards the mean of G^2 along the last (rows) or second-to-last
    (columns) dimension, and V = row_var col_var / max(mean of row_var over the rows,
    eps1); a 0-D or 1-D one keeps ``variance`` (its shape), lerped towards G^2, and V is
    it. U = G / sqrt(max(V, eps1^2)); p -= alpha / max(1, RMS(U) / d) * U.

    eps1 None means the machine epsilon of the dtype of the group's first parameter with
    a gradient, for every parameter of the group (PyTorch's rule: its loop fills eps1
    once). State (PyTorch's names): step, and row_var and col_var, or variance; on the
    host, in the parameter's dtype. ``foreach`` changes nothing (it is PyTorch's choice
    of implementation) and is kept in the groups as PyTorch keeps it.
    """

    hyperparameters = ("lr", "beta2_decay", "eps", "d", "weight_decay", "foreach",
                       "maximize")
    torch_flags = {}  # foreach and maximize are hyper-parameters (in the groups) here

    def __init__(self, params, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0,
                 weight_decay=0.0, *, foreach=None, maximize=False):
        super().__init__(params, {"lr": lr, "beta2_decay": beta2_decay, "eps": eps, "d": d,
                                  "weight_decay": weight_decay, "foreach": foreach,
                                  "maximize": maximize})

    # ------------------------------------------------------------------ checks
    def _bad(self, name, value, message):
        return ValueError(f"Adafactor: invalid {name}: {value!r} ({message})")

    def _check(self, group):
        """PyTorch's checks, with its messages; NaN fails them as in PyTorch."""
        lr = group["lr"]
        if not 0.0 <= self._real("lr", lr):
            raise self._bad("lr", lr, f"Learning rate should be >= 0 but is: {lr}")
        beta2_decay = group["beta2_decay"]
        if not 0.0 >= self._real("beta2_decay", beta2_decay):
            raise self._bad("beta2_decay", beta2_decay,
                            f"beta2_decay should be <= 0 but is: {beta2_decay}")
        eps = group["eps"]
        check_pair("Adafactor", "eps", eps, "(eps1, eps2), eps1 None or a number")
        if eps[0] is not None and not 0.0 <= self._real("eps[0]", eps[0]):
            raise self._bad("eps[0]", eps[0], f"epsilon1 should be >= 0 but is: {eps[0]}")
        if not 0.0 <= self._real("eps[1]", eps[1]):
            raise self._bad("eps[1]", eps[1], f"epsilon2 should be >= 0 but is: {eps[1]}")
        d = group["d"]
        if not 1.0 <= self._real("d", d):
            raise self._bad("d", d, f"Clipping threshold d should be >= 1 but is: {d}")
        weight_decay = group["weight_decay"]
        if not 0.0 <= self._real("weight_decay", weight_decay):
            raise self._bad("weight_decay", weight_decay,
                            f"weight_decay should be >= 0 but is: {weight_decay}")
        if group["foreach"] is not None:
            self._flag(group, "foreach")   # (None or a bool, as PyTorch's)
        self._flag(group, "maximize")

    # ------------------------------------------------------------------- state
    @staticmethod
    def _factored_shapes(shape):
        """(row_var shape, col_var shape) of a parameter of 2 or more dimensions."""
        return shape[:-1] + (1,), shape[:-2] + (1,) + shape[-1:]

    def _new_state(self, shape, dtype):
        shape = tuple(shape)
        if len(shape) > 1:
            row, col = self._factored_shapes(shape)
            return {"step": 0, "row_var": np.zeros(row, dtype), "col_var": np.zeros(col, dtype)}
        return {"step": 0, "variance": np.zeros(shape, dtype)}

    def _validate_entry(self, where, entry, shape, dtype):
        names = (("row_var", "col_var") if len(shape) > 1 else ("variance",))
        unknown = [k for k in entry if k != "step" and k not in names]
        if unknown:
            raise ValueError(f"{where}: unexpected state {unknown}; expected "
                             f"{['step', *names]} for a parameter of shape {shape}")
        if "step" not in entry:
            # (PyTorch's load raises KeyError: 'step', as for the other optimizers that
            # count steps: Optimizer._validate_param_state)
            raise KeyValueError(f"{where}: missing state 'step' ({self._name} keeps each "
                                f"parameter's step count with its state)")
        missing = [k for k in names if k not in entry]
        if missing:
            raise ValueError(f"{where}: missing state {missing}")
        step = as_count(entry["step"])  # PyTorch keeps the step as a float tensor
        if step is None:
            raise ValueError(f"{where}: step must be an int >= 0, got {entry['step']!r}")
        shapes = (dict(zip(names, self._factored_shapes(shape))) if len(shape) > 1
                  else {"variance": shape})
        state = {"step": int(step)}
        for name in names:
            state[name] = self._state_array(where, name, entry[name], shapes[name], dtype)
        return state

    # -------------------------------------------------------------------- step
    def _group_hyper(self, group):
        eps1, eps2 = group["eps"]
        return {"lr": float(group["lr"]), "beta2_decay": float(group["beta2_decay"]),
                "eps1": None if eps1 is None else float(eps1), "eps2": float(eps2),
                "d": float(group["d"]), "weight_decay": float(group["weight_decay"]),
                "maximize": group["maximize"]}

    def _update_param(self, hyper, data, grad, state):
        if hyper["eps1"] is None:  # PyTorch fills it once per group and step
            hyper["eps1"] = float(np.finfo(data.dtype).eps)
        state["step"] += 1
        if data.size:  # (PyTorch divides by the size of an empty parameter)
            self._update(data, grad, state, **hyper)

    def _update(self, data, grad, state, lr, beta2_decay, eps1, eps2, d, weight_decay,
                maximize):
        """One Adafactor update of data (in place) from grad, PyTorch's operation by
        operation, in data's dtype, through workspace scratch."""
        dtype = data.dtype
        work = self._work
        step = float(state["step"])
        one_minus_beta2 = step ** beta2_decay
        rho = min(lr, 1 / (step ** 0.5))
        numel = data.size
        alpha = max(eps2, vector_norm(data) / (numel ** 0.5)) * rho

        if weight_decay != 0:
            data *= 1 - lr * weight_decay

        update = work.get("update", data.shape, dtype)
        if data.ndim > 1:
            row_var, col_var = state["row_var"], state["col_var"]
            # (g * g).mean(dim=-1) as PyTorch computes it: norm, squared, divided by n
            row_mean = work.get("row_mean", row_var.shape, dtype)
            np.einsum("...ij,...ij->...i", grad, grad, out=row_mean[..., 0])
            np.sqrt(row_mean, out=row_mean)
            np.square(row_mean, out=row_mean)
            row_mean /= grad.shape[-1]
            lerp_(row_var, row_mean, one_minus_beta2, tmp=row_mean)
            col_mean = work.get("col_mean", col_var.shape, dtype)
            np.einsum("...ij,...ij->...j", grad, grad, out=col_mean[..., 0, :])
            np.sqrt(col_mean, out=col_mean)
            np.square(col_mean, out=col_mean)
            col_mean /= grad.shape[-2]
            lerp_(col_var, col_mean, one_minus_beta2, tmp=col_mean)
            np.multiply(row_var, col_var, out=update)  # row_var @ col_var (an outer product)
            row_var_mean = work.get("row_var_mean", row_var.shape[:-2] + (1, 1), dtype)
            np.mean(row_var, axis=-2, keepdims=True, out=row_var_mean)
            np.maximum(row_var_mean, eps1, out=row_var_mean)
            update /= row_var_mean
        else:
            variance = state["variance"]
            np.multiply(grad, grad, out=update)
            lerp_(variance, update, one_minus_beta2, tmp=update)
            np.copyto(update, variance)
        np.maximum(update, eps1 * eps1, out=update)  # eps1 squared: sqrt follows
        np.sqrt(update, out=update)
        np.divide(1, update, out=update)  # PyTorch's rsqrt is 1 / sqrt
        update *= grad  # -update when maximize: the sign goes into the step below
        denom = max(1.0, vector_norm(update) / ((numel ** 0.5) * d))
        scale = alpha / denom
        update *= scale if maximize else -scale
        data += update
