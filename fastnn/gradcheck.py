"""Gradient check by central differences in float64.

``gradcheck(layer, x)`` compares a module's ``backward`` (the input gradient and every
parameter gradient) with numerical derivatives of the scalar ``sum(forward(x) * g)``
for a fixed random ``g``; ``gradcheck(loss, (pred, target))`` compares a loss's
``backward()`` with numerical derivatives of ``forward(pred, target)`` (with
``reduction='none'``, of ``sum(forward(pred, target) * g)``).
The check runs on a float64 deep copy, so the module passed in is not changed, and
every forward pass sees the same dropout mask.
"""
import copy
import sys
import types

import numpy as np

from . import random as _random
from .nn.loss import Loss
from .nn.module import Module


class GradcheckError(AssertionError, RuntimeError):
    """An analytic gradient disagrees with the numerical one beyond the tolerance
    (PyTorch's GradcheckError is a RuntimeError)."""


def gradcheck(module_or_loss, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, *,
              raise_exception=True):
    """Return True when every analytic gradient matches central differences, else raise
    (with ``raise_exception=False``, return False, as torch.autograd.gradcheck does).

    module_or_loss: a Module (one input, one output) or a Loss.
    inputs: for a Module, x (any shape the module takes); for a Loss, (pred, target)
    (target is not differentiated; integer labels stay integers).
    eps: finite-difference step; an element passes when
    |analytic - numeric| <= atol + rtol * |numeric|.
    seed: fixes the random output weighting g (a Module's, a 'none'-reduced Loss's) and
    the dropout masks.
    Raises GradcheckError naming the worst element (which gradient, index, both values).
    Bad arguments (not a Module or Loss, integer inputs) raise TypeError either way.
    """
    if isinstance(module_or_loss, Loss):
        check = _check_loss
    elif isinstance(module_or_loss, Module):
        check = _check_module
    else:
        raise TypeError(f"gradcheck: expected a fastnn Module or Loss, "
                        f"got {type(module_or_loss).__name__}")
    try:
        return check(module_or_loss, inputs, eps, atol, rtol, seed)
    except GradcheckError:
        if raise_exception:
            raise
        return False


def _float64(name, array):
    if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
        raise TypeError(f"gradcheck: expected {name} to be a float numpy.ndarray, "
                        f"got {getattr(array, 'dtype', type(array).__name__)}")
    return np.array(array, dtype=np.float64, order="C")


def _numeric(f, array, eps):
    """Central differences of the scalar f() w.r.t. each element of array (in place)."""
    grad = np.empty_like(array)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        plus = f()
        flat[i] = orig - eps
        minus = f()
        flat[i] = orig
        gflat[i] = plus - minus
    with np.errstate(divide="ignore", invalid="ignore"):  # eps=0: NaN, as PyTorch's
        grad /= 2 * eps
    return grad


def _compare(checks, atol, rtol, what):
    """checks: [(name, analytic, numeric)]. Raise on the worst excess over tolerance."""
    worst = None
    for name, analytic, numeric in checks:
        if analytic is None or analytic.shape != numeric.shape:
            got = None if analytic is None else analytic.shape
            raise GradcheckError(f"gradcheck {what}: {name}: expected an analytic gradient "
                                 f"of shape {numeric.shape}, got {got}")
        excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        excess = np.where(np.isnan(excess), np.inf, excess)
        if excess.size and (worst is None or excess.max() > worst[0]):
            idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(excess)), excess.shape))
            worst = (excess.max(), name, idx, float(analytic[idx]), float(numeric[idx]))
    if worst is not None and worst[0] > 0:
        _, name, idx, a, n = worst
        raise GradcheckError(f"gradcheck {what}: {name}{list(idx)}: analytic {a:.10g} vs "
                             f"numeric {n:.10g} (atol={atol}, rtol={rtol})")
    return True


def _check_module(module, x, eps, atol, rtol, seed):
    if isinstance(x, (tuple, list)):
        if len(x) != 1:
            raise TypeError("gradcheck: a Module takes one input array")
        x = x[0]
    model = copy.deepcopy(module).double()
    x = _float64("the input", x)

    def run():
        with _random.fork(seed):
            return model.forward(x)

    out = run()
    if not isinstance(out, np.ndarray):  # (an LSTM's (output, (h, c)), say)
        raise TypeError(f"gradcheck: a Module with one output array, got "
                        f"{type(module).__name__} returning {type(out).__name__}")
    weights = np.random.default_rng(seed).standard_normal(out.shape)
    model.zero_grad()
    run()
    grad_x = model.backward(weights.copy())
    checks = [("input", None if grad_x is None else np.array(grad_x), None)]
    params = model.named_parameters()
    analytic = [p.grad.copy() for _, p in params]

    def f():
        return float(np.dot(run().reshape(-1), weights.reshape(-1)))

    checks[0] = (checks[0][0], checks[0][1], _numeric(f, x, eps))
    for (name, param), grad in zip(params, analytic):
        checks.append((f"parameter {name}", grad, _numeric(f, param.data, eps)))
    name = repr(module)   # (a module with children: its class, not a first line "Net(")
    return _compare(checks, atol, rtol, name if "\n" not in name else type(module).__name__)


def _check_loss(loss, inputs, eps, atol, rtol, seed):
    if not isinstance(inputs, (tuple, list)) or len(inputs) != 2:
        raise TypeError("gradcheck: a Loss takes inputs=(pred, target)")
    pred = _float64("pred", inputs[0])
    target = inputs[1]
    if isinstance(target, np.ndarray) and target.dtype.kind == "f":
        target = target.astype(np.float64)
    loss = copy.deepcopy(loss)
    value = loss.forward(pred, target)
    # reduction='none': check the scalar sum(loss * g) for a fixed random g, as for a Module
    weights = None if np.ndim(value) == 0 else \
        np.random.default_rng(seed).standard_normal(np.shape(value))
    analytic = np.array(loss.backward() if weights is None else loss.backward(weights.copy()))

    def f():
        out = loss.forward(pred, target)
        return float(out) if weights is None else float(np.dot(np.ravel(out), weights.ravel()))

    numeric = _numeric(f, pred, eps)
    return _compare([("pred", analytic, numeric)], atol, rtol, repr(loss))


class _CallableModule(types.ModuleType):
    """Importing ``fastnn.gradcheck`` (the module) makes Python bind the package attribute
    ``fastnn.gradcheck`` to this module, shadowing the function of the same name that
    ``fastnn.gradcheck(...)`` promises; calling the module calls the function."""

    def __call__(self, *args, **kwargs):
        return gradcheck(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
