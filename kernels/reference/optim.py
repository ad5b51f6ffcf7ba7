"""Optimizer updates in plain NumPy (in place): the specification."""
import math

import numpy as np

from ..moments import denominator_factors


def sgd_update(param, grad, velocity, lr, momentum=0.0, weight_decay=0.0, nesterov=False,
               dampening=0.0):
    """PyTorch's SGD. param, grad, velocity: same shape, updated in place."""
    g = grad + param.dtype.type(weight_decay) * param if weight_decay else grad
    if momentum:
        velocity *= param.dtype.type(momentum)
        velocity += param.dtype.type(1 - dampening) * g if dampening else g
        step = g + param.dtype.type(momentum) * velocity if nesterov else velocity
    else:
        step = g
    param -= param.dtype.type(lr) * step


def rmsprop_update(param, grad, square_avg, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
                   momentum=0.0, momentum_buffer=None, grad_avg=None):
    """PyTorch's RMSprop (centered when grad_avg is given). Arrays: same shape, updated
    in place."""
    dt = param.dtype.type
    g = grad + dt(weight_decay) * param if weight_decay else grad
    square_avg *= dt(alpha)
    square_avg += dt(1 - alpha) * g * g
    if grad_avg is not None:
        grad_avg *= dt(alpha)
        grad_avg += dt(1 - alpha) * g
        # as a fused multiply-add (the compiled kernels', PyTorch's addcmul): an overflowed
        # square_avg stays inf where grad_avg**2 alone overflows too (not inf - inf)
        with np.errstate(over="ignore", invalid="ignore"):
            variance = np.where(np.isposinf(square_avg) & np.isfinite(grad_avg), np.inf,
                                square_avg - grad_avg * grad_avg)
        avg = np.sqrt(variance) + dt(eps)
    else:
        avg = np.sqrt(square_avg) + dt(eps)
    if momentum:
        momentum_buffer *= dt(momentum)
        momentum_buffer += g / avg
        param -= dt(lr) * momentum_buffer
    else:
        param -= dt(lr) * (g / avg)


def adagrad_update(param, grad, state_sum, lr=1e-2, weight_decay=0.0, eps=1e-10):
    """PyTorch's Adagrad at the step's rate lr. Arrays: same shape, updated in place."""
    dt = param.dtype.type
    g = grad + dt(weight_decay) * param if weight_decay else grad
    state_sum += g * g
    param -= dt(lr) * g / (np.sqrt(state_sum) + dt(eps))


def _decayed(grad, param, weight_decay):
    """grad + weight_decay * param (PyTorch's L2 term), or grad itself without decay."""
    return grad + param.dtype.type(weight_decay) * param if weight_decay else grad


def _lerp(start, end, weight):
    """start.lerp_(end, weight) in place, PyTorch's form: start + w (end - start) for
    |w| < 0.5, else end - (end - start) (1 - w), w the weight in the dtype. Not
    b start + w end: an infinite start becomes NaN on a finite end (inf - inf), as
    PyTorch's."""
    dt = start.dtype.type
    w = dt(weight)
    if abs(w) < 0.5:
        start += w * (end - start)
    else:
        start[...] = end - (end - start) * (dt(1) - w)


def _moments(g, exp_avg, exp_avg_sq, beta1, beta2):
    """Adam's moving averages in place: m = lerp(m, g, 1 - b1) (_lerp),
    v = b2 v + (1 - b2) g^2 (v skipped when exp_avg_sq is None)."""
    dt = g.dtype.type
    _lerp(exp_avg, g, 1 - beta1)
    if exp_avg_sq is not None:
        exp_avg_sq *= dt(beta2)
        exp_avg_sq += dt(1 - beta2) * g * g


def adam_update(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999,
                eps=1e-8, weight_decay=0.0, max_exp_avg_sq=None):
    """PyTorch's Adam (AMSGrad when max_exp_avg_sq is given). param, grad, exp_avg,
    exp_avg_sq, max_exp_avg_sq: same shape, updated in place."""
    dt = param.dtype.type
    g = _decayed(grad, param, weight_decay)
    _moments(g, exp_avg, exp_avg_sq, beta1, beta2)
    step_size = lr / (1 - beta1 ** step)
    second = exp_avg_sq
    if max_exp_avg_sq is not None:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        second = max_exp_avg_sq
    denom = np.sqrt(second) / dt(math.sqrt(1 - beta2 ** step)) + dt(eps)
    param -= dt(step_size) * exp_avg / denom


def adamax_update(param, grad, exp_avg, exp_inf, step, lr=2e-3, beta1=0.9, beta2=0.999,
                  eps=1e-8, weight_decay=0.0):
    """PyTorch's Adamax. param, grad, exp_avg, exp_inf: same shape, updated in place."""
    dt = param.dtype.type
    g = _decayed(grad, param, weight_decay)
    _moments(g, exp_avg, None, beta1, beta2)
    np.maximum(exp_inf * dt(beta2), np.abs(g) + dt(eps), out=exp_inf)  # NaN propagates
    param -= dt(lr / (1 - beta1 ** step)) * exp_avg / exp_inf


def adaptive_moments_update(param, grad, exp_avg, exp_avg_sq, avg_rate, grad_rate=0.0,
                            beta1=0.9, beta2=0.999, sq_scale=1.0, eps=1e-8,
                            weight_decay=0.0):
    """NAdam's and RAdam's step with the rates their optimizers computed. Arrays: same
    shape, updated in place. Rounded as PyTorch's NAdam: the denominator
    sqrt(v / divisor) * scale + eps (kernels/moments.py), then the g term and the m term
    each divided by it and subtracted, in that order."""
    dt = param.dtype.type
    g = _decayed(grad, param, weight_decay)
    _moments(g, exp_avg, exp_avg_sq, beta1, beta2)
    divisor, scale = denominator_factors(sq_scale, param.dtype)
    # sq_scale 0 (RAdam's first steps): eps alone, even where v overflowed to inf
    denom = (np.sqrt(exp_avg_sq / dt(divisor)) * dt(scale) + dt(eps) if scale != 0
             else dt(eps))
    # grad_rate 0 (RAdam): no g term, as PyTorch's (0 * inf would be NaN)
    if grad_rate != 0:
        param -= dt(grad_rate) * g / denom
    param -= dt(avg_rate) * exp_avg / denom


def adadelta_update(param, grad, square_avg, acc_delta, lr=1.0, rho=0.9, eps=1e-6,
                    weight_decay=0.0, maximize=False):
    """PyTorch's Adadelta. param, grad, square_avg, acc_delta: same shape, updated in
    place."""
    dt = param.dtype.type
    g = _decayed(-grad if maximize else grad, param, weight_decay)
    square_avg *= dt(rho)
    square_avg += dt(1 - rho) * g * g
    delta = np.sqrt(acc_delta + dt(eps)) / np.sqrt(square_avg + dt(eps)) * g
    acc_delta *= dt(rho)
    acc_delta += dt(1 - rho) * delta * delta
    param -= dt(lr) * delta


def rprop_update(param, grad, prev, step_size, etaminus=0.5, etaplus=1.2,
                 step_size_min=1e-6, step_size_max=50.0, maximize=False):
    """PyTorch's Rprop. param, grad, prev, step_size: same shape, updated in place."""
    dt = param.dtype.type
    g = np.negative(grad, out=np.empty_like(grad)) if maximize else grad.copy()  # 0-d too
    s = g * prev                       # its sign picks the factor: 1 for 0 or NaN
    step_size *= np.where(s > 0, dt(etaplus), np.where(s < 0, dt(etaminus), dt(1)))
    # torch.clamp(min, max): the lower bound first, then the upper; NaN propagates
    np.minimum(np.maximum(step_size, dt(step_size_min)), dt(step_size_max), out=step_size)
    g[s < 0] = 0                       # a sign change: no step, and no memory of it
    # torch.sign: (g > 0) - (g < 0), 0 for a NaN (np.sign would give NaN)
    direction = (g > 0).astype(param.dtype) - (g < 0).astype(param.dtype)
    param -= direction * step_size
    prev[...] = g


def asgd_update(param, grad, ax, eta, mu, lambd=1e-4, weight_decay=0.0, maximize=False):
    """PyTorch's ASGD at the parameter's eta and mu. param, grad, ax: same shape,
    updated in place."""
    dt = param.dtype.type
    g = _decayed(-grad if maximize else grad, param, weight_decay)
    param *= dt(1 - lambd * eta)
    param -= dt(eta) * g
    if mu == 1:
        ax[...] = param
    else:
        ax += (param - ax) * dt(mu)
