"""Optimizer updates in place, one parallel pass over a parameter each.

The arrays are flat views of the parameter, its gradient and its state; each element
is read once and written once. Constants are cast to the parameter's dtype first, as
the reference does, so float32 updates round exactly like it; the loops are compiled
without reassociation (``update_kernel``), so each product runs in its written order,
and run with subnormal numbers flushed to zero (flush.py says why; Rprop's, which
steps by signs, without).

The first moment of Adam and its variants is PyTorch's ``exp_avg.lerp_(g, 1 - beta1)``:
m + w (g - m) for a weight w = 1 - beta1 under 0.5, else g + (w - 1) (g - m), one
fused multiply-add each as PyTorch's vectorized lerp (``contract``), not b1 m + w g: an
infinite m turns NaN on the next finite g (inf - inf), as PyTorch's, instead of staying
infinite.
"""
import math

import numpy as np
from llvmlite import ir
from numba import prange
from numba.core import types
from numba.extending import intrinsic

from ..moments import denominator_factors
from ._buffers import flat
from .config import (dividing_update_kernel, sign_update_kernel, unfused_update_kernel,
                     update_kernel)


@intrinsic
def _muladd(typingctx, a, b, c):
    """a * b + c as llvm.fmuladd: one fused multiply-add where the target has FMA (as
    ``contract`` would fuse it), and this product the fused one. Written for PyTorch's
    ``x.mul_(beta).addcmul_(g, g, value=c)`` (and ``add_(g, alpha=...)``): x beta rounded
    alone, (c g) g fused into the add. Left to ``contract``, which of the two products
    of x beta + c g g LLVM fuses is its choice, and it chose the other one after Numba
    re-optimized a kernel's module (config._own_copies_of_callees)."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        ty = context.get_value_type(signature.return_type)
        fn = builder.module.declare_intrinsic("llvm.fmuladd", [ty],
                                              ir.FunctionType(ty, [ty] * 3))
        return builder.call(fn, list(args))
    return a(a, b, c), codegen


_EMPTY = {np.dtype(np.float32): np.empty(0, np.float32),
          np.dtype(np.float64): np.empty(0, np.float64)}


@update_kernel
def _sgd(param, grad, velocity, lr, momentum, weight_decay, nesterov, dampening):
    # INOUT param (n,), velocity (n,) (unused when momentum == 0); IN grad (n,)
    dt = param.dtype.type
    lr_ = dt(lr)
    mu = dt(momentum)
    wd = dt(weight_decay)
    keep = dt(1.0 - dampening)
    decay = weight_decay != 0.0
    use_momentum = momentum != 0.0
    for i in prange(param.shape[0]):
        g = grad[i] + wd * param[i] if decay else grad[i]
        if use_momentum:
            # PyTorch's buf.mul_(momentum).add_(g, alpha=1 - dampening): the product
            # rounded alone, then g added by a fused multiply-add (with 1 - dampening 1,
            # exactly v mu + g, where contract had fused v mu into the add: the float32
            # trajectory left PyTorch's from the second step)
            v = _muladd(keep, g, velocity[i] * mu)
            velocity[i] = v
            step = g + mu * v if nesterov else v
        else:
            step = g
        param[i] -= lr_ * step


@update_kernel
def _adagrad(param, grad, state_sum, lr, weight_decay, eps):
    # INOUT param, state_sum (n,); IN grad (n,)
    dt = param.dtype.type
    lr_ = dt(lr)
    wd = dt(weight_decay)
    eps_ = dt(eps)
    decay = weight_decay != 0.0
    for i in prange(param.shape[0]):
        g = grad[i] + wd * param[i] if decay else grad[i]
        s = state_sum[i] + g * g
        state_sum[i] = s
        param[i] -= lr_ * g / (np.sqrt(s) + eps_)


@update_kernel
def _amsgrad(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step_size,
             bias_correction2_sqrt, beta1, beta2, eps, weight_decay):
    # INOUT param, exp_avg, exp_avg_sq, max_exp_avg_sq (n,); IN grad (n,). Adam's loop
    # with the running maximum of v in the denominator (its own kernel: an optional
    # array in one loop defeats vectorization, see _rmsprop).
    dt = param.dtype.type
    w = dt(1.0 - beta1)
    small = abs(w) < dt(0.5)   # the first moment as PyTorch's lerp_ (module docstring)
    coeff = w if small else w - dt(1.0)
    b2 = dt(beta2)
    c2 = dt(1.0 - beta2)
    wd = dt(weight_decay)
    eps_ = dt(eps)
    size = dt(step_size)
    root = dt(bias_correction2_sqrt)
    decay = weight_decay != 0.0
    for i in prange(param.shape[0]):
        g = grad[i] + wd * param[i] if decay else grad[i]
        m = (exp_avg[i] if small else g) + coeff * (g - exp_avg[i])
        v = _muladd(c2 * g, g, exp_avg_sq[i] * b2)
        # a NaN v is kept, as torch.maximum and the other backends (max() dropped it)
        vmax = max_exp_avg_sq[i] if max_exp_avg_sq[i] > v else v
        exp_avg[i] = m
        exp_avg_sq[i] = v
        max_exp_avg_sq[i] = vmax
        param[i] -= size * m / (math.sqrt(vmax) / root + eps_)


@update_kernel
def _adam(param, grad, exp_avg, exp_avg_sq, step_size, bias_correction2_sqrt, beta1, beta2,
          eps, weight_decay):
    # INOUT param, exp_avg, exp_avg_sq (n,); IN grad (n,)
    dt = param.dtype.type
    w = dt(1.0 - beta1)
    small = abs(w) < dt(0.5)   # the first moment as PyTorch's lerp_ (module docstring)
    coeff = w if small else w - dt(1.0)
    b2 = dt(beta2)
    c2 = dt(1.0 - beta2)
    wd = dt(weight_decay)
    eps_ = dt(eps)
    size = dt(step_size)
    root = dt(bias_correction2_sqrt)
    decay = weight_decay != 0.0
    for i in prange(param.shape[0]):
        g = grad[i] + wd * param[i] if decay else grad[i]
        m = (exp_avg[i] if small else g) + coeff * (g - exp_avg[i])
        v = _muladd(c2 * g, g, exp_avg_sq[i] * b2)
        exp_avg[i] = m
        exp_avg_sq[i] = v
        param[i] -= size * m / (math.sqrt(v) / root + eps_)


@unfused_update_kernel
def _rmsprop(param, grad, square_avg, grad_avg, buf, lr, alpha, eps, weight_decay, momentum):
    # INOUT param, square_avg (n,), grad_avg (n,) or empty (not centered), buf (n,) or
    # empty (no momentum); IN grad (n,)
    # One loop per (centered, momentum) variant, each touching only its arrays: a single
    # loop branching per element vectorizes only behind LLVM's runtime alias checks,
    # which fail on the empty stand-ins (their address range spans n elements), and the
    # scalar fallback ran 20x slower.
    # Rounded as torch.optim.RMSprop, compiled without contraction, each fused
    # multiply-add written out (_muladd): g + wd param (grad.add(param, alpha=wd); the
    # select on the parameter, 0 without weight decay, so that an infinite parameter
    # stays one: a select on the _muladd itself ran the centered loop 1.35x slower);
    # square_avg.mul_(alpha).addcmul_(g, g, value=1 - alpha); grad_avg.lerp_(g,
    # 1 - alpha) as Adam's first moment; the centered root's square_avg.addcmul(m, m,
    # value=-1); param.add_(buf, alpha=-lr). buf.mul_(momentum).addcdiv_(g, avg): buf
    # momentum and g / avg each rounded, then added (contract had fused the product in)
    dt = param.dtype.type
    lr_ = dt(lr)
    a = dt(alpha)
    c = dt(1.0 - alpha)
    small = abs(c) < dt(0.5)
    coeff = c if small else c - dt(1.0)
    eps_ = dt(eps)
    wd = dt(weight_decay)
    mu = dt(momentum)
    zero = dt(0.0)
    decay = weight_decay != 0.0
    n = param.shape[0]
    if grad_avg.shape[0] != 0 and buf.shape[0] != 0:
        for i in prange(n):
            g = _muladd(wd, param[i] if decay else zero, grad[i])
            s = _muladd(c * g, g, square_avg[i] * a)
            m = _muladd(coeff, g - grad_avg[i], grad_avg[i] if small else g)
            b = buf[i] * mu + g / (math.sqrt(_muladd(-m, m, s)) + eps_)
            square_avg[i] = s
            grad_avg[i] = m
            buf[i] = b
            param[i] = _muladd(-lr_, b, param[i])
    elif grad_avg.shape[0] != 0:
        for i in prange(n):
            g = _muladd(wd, param[i] if decay else zero, grad[i])
            s = _muladd(c * g, g, square_avg[i] * a)
            m = _muladd(coeff, g - grad_avg[i], grad_avg[i] if small else g)
            square_avg[i] = s
            grad_avg[i] = m
            param[i] -= lr_ * g / (math.sqrt(_muladd(-m, m, s)) + eps_)
    elif buf.shape[0] != 0:
        for i in prange(n):
            g = _muladd(wd, param[i] if decay else zero, grad[i])
            s = _muladd(c * g, g, square_avg[i] * a)
            b = buf[i] * mu + g / (math.sqrt(s) + eps_)
            square_avg[i] = s
            buf[i] = b
            param[i] = _muladd(-lr_, b, param[i])
    else:
        for i in prange(n):
            g = _muladd(wd, param[i] if decay else zero, grad[i])
            s = _muladd(c * g, g, square_avg[i] * a)
            square_avg[i] = s
            param[i] -= lr_ * g / (math.sqrt(s) + eps_)


@update_kernel
def _adamax(param, grad, exp_avg, exp_inf, step_size, beta1, beta2, eps, weight_decay):
    # INOUT param, exp_avg, exp_inf (n,); IN grad (n,)
    dt = param.dtype.type
    w = dt(1.0 - beta1)
    small = abs(w) < dt(0.5)   # the first moment as PyTorch's lerp_ (module docstring)
    coeff = w if small else w - dt(1.0)
    b2 = dt(beta2)
    eps_ = dt(eps)
    wd = dt(weight_decay)
    size = dt(step_size)
    decay = weight_decay != 0.0
    for i in prange(param.shape[0]):
        g = grad[i] + wd * param[i] if decay else grad[i]
        m = (exp_avg[i] if small else g) + coeff * (g - exp_avg[i])
        u = exp_inf[i] * b2
        a = abs(g) + eps_
        u = u if u > a or u != u else a   # max, NaN propagating (torch.maximum)
        exp_avg[i] = m
        exp_inf[i] = u
        param[i] -= size * m / u


@dividing_update_kernel
def _adaptive_moments(param, grad, exp_avg, exp_avg_sq, avg_rate, grad_rate, beta1, beta2,
                      sq_divisor, sq_scale, eps, weight_decay):
    # INOUT param, exp_avg, exp_avg_sq (n,); IN grad (n,); sq_divisor, sq_scale: the
    # denominator's factors (kernels/moments.py)
    dt = param.dtype.type
    w = dt(1.0 - beta1)
    small = abs(w) < dt(0.5)   # the first moment as PyTorch's lerp_ (module docstring)
    coeff = w if small else w - dt(1.0)
    b2 = dt(beta2)
    c2 = dt(1.0 - beta2)
    ra = dt(avg_rate)
    rg = dt(grad_rate)
    divisor = dt(sq_divisor)
    scale = dt(sq_scale)
    eps_ = dt(eps)
    wd = dt(weight_decay)
    decay = weight_decay != 0.0
    with_g = grad_rate != 0.0   # RAdam: no g term, as PyTorch's (0 * inf would be NaN)
    adaptive = sq_scale != 0.0  # RAdam's first steps: the denominator is eps alone, even
    for i in prange(param.shape[0]):  # where v overflowed (0 * sqrt(inf) would be NaN)
        g = grad[i] + wd * param[i] if decay else grad[i]
        m = (exp_avg[i] if small else g) + coeff * (g - exp_avg[i])
        v = _muladd(c2 * g, g, exp_avg_sq[i] * b2)
        exp_avg[i] = m
        exp_avg_sq[i] = v
        denom = np.sqrt(v / divisor) * scale + eps_ if adaptive else eps_
        p = param[i] - rg * g / denom if with_g else param[i]   # PyTorch's order
        param[i] = p - ra * m / denom


@update_kernel
def _adadelta(param, grad, square_avg, acc_delta, lr, rho, eps, weight_decay, maximize):
    # INOUT param, square_avg, acc_delta (n,); IN grad (n,)
    dt = param.dtype.type
    lr_ = dt(lr)
    r = dt(rho)
    c = dt(1.0 - rho)
    eps_ = dt(eps)
    wd = dt(weight_decay)
    decay = weight_decay != 0.0
    scale = dt(2.0 ** 64)      # exact powers of two (see the ratio below)
    unscale = dt(2.0 ** -32)
    for i in prange(param.shape[0]):
        g = -grad[i] if maximize else grad[i]
        if decay:
            g = g + wd * param[i]
        v = _muladd(c * g, g, square_avg[i] * r)
        # sqrt(u + eps) / sqrt(v + eps) as one root of the ratio: LLVM turns a division
        # by a root into an approximate reciprocal root (+ a Newton step) in vectorized
        # float32 code only, so elements at the end of a thread's range (scalar) would
        # round differently with another thread count. Where v + eps exceeds 2^64 (u +
        # eps) the numerator is scaled by 2^64 and the root back by 2^-32 (both exact):
        # the plain ratio is subnormal from 2^126 on, flushed to 0 here, and float32
        # parameters with gradients of 3e16 and more stopped moving
        u = acc_delta[i] + eps_
        w = v + eps_
        big = w > u * scale
        root = np.sqrt((u * scale if big else u) / w)
        d = (root * unscale if big else root) * g
        square_avg[i] = v
        acc_delta[i] = _muladd(c * d, d, acc_delta[i] * r)
        param[i] -= lr_ * d


@sign_update_kernel
def _rprop(param, grad, prev, step_size, etaminus, etaplus, step_size_min, step_size_max,
           maximize):
    # INOUT param, prev, step_size (n,); IN grad (n,)
    dt = param.dtype.type
    minus = dt(etaminus)
    plus = dt(etaplus)
    lo = dt(step_size_min)
    hi = dt(step_size_max)
    one = dt(1.0)
    zero = dt(0.0)
    for i in prange(param.shape[0]):
        g = -grad[i] if maximize else grad[i]
        s = g * prev[i]   # in the dtype, as torch's grad.mul(prev); 0 or NaN: factor 1
        f = plus if s > zero else (minus if s < zero else one)
        size = step_size[i] * f
        if size < lo:     # torch.clamp: the lower bound, then the upper; NaN kept
            size = lo
        if size > hi:
            size = hi
        if s < zero:
            g = zero
        direction = one if g > zero else (-one if g < zero else zero)  # torch.sign(NaN) 0
        step_size[i] = size
        prev[i] = g
        param[i] -= direction * size


@unfused_update_kernel
def _asgd(param, grad, ax, keep, eta, mu, weight_decay, maximize):
    # INOUT param, ax (n,); IN grad (n,). keep: 1 - lambd * eta. Without contraction
    # (config.UNFUSED_OPTIONS), as PyTorch rounds: grad.add(param, alpha=wd) and
    # param.mul_(keep).add_(g, alpha=-eta) fused, ax.add_(param.sub(ax).mul_(mu)) not
    dt = param.dtype.type
    k = dt(keep)
    rate = dt(eta)
    m = dt(mu)
    wd = dt(weight_decay)
    decay = weight_decay != 0.0
    average = mu != 1.0
    for i in prange(param.shape[0]):
        g = -grad[i] if maximize else grad[i]
        if decay:
            g = _muladd(wd, param[i], g)
        p = _muladd(-rate, g, param[i] * k)
        param[i] = p
        if average:
            ax[i] = ax[i] + (p - ax[i]) * m
        else:
            ax[i] = p


def sgd_update(param, grad, velocity, lr, momentum=0.0, weight_decay=0.0, nesterov=False,
               dampening=0.0):
    """One SGD step in place, PyTorch's rule.

    param, grad, velocity: same shape (velocity may be None when momentum == 0).
    g = grad + weight_decay * param; velocity = momentum * velocity + (1 - dampening) g;
    param -= lr * (g + momentum * velocity if nesterov else velocity). Returns None.
    """
    v = flat(velocity) if velocity is not None else _EMPTY[param.dtype]
    _sgd(param.size, flat(param), flat(grad), v, float(lr), float(momentum),
         float(weight_decay), bool(nesterov), float(dampening))


def adam_update(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999,
                eps=1e-8, weight_decay=0.0, max_exp_avg_sq=None):
    """One Adam step in place, PyTorch's rule (L2 weight decay added to the gradient;
    AMSGrad when max_exp_avg_sq is given).

    param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq: same shape; step: the 1-based
    step count. Returns None.
    """
    step_size = lr / (1 - beta1 ** step)
    args = (step_size, math.sqrt(1 - beta2 ** step), float(beta1), float(beta2), float(eps),
            float(weight_decay))
    if max_exp_avg_sq is not None:
        _amsgrad(param.size, flat(param), flat(grad), flat(exp_avg), flat(exp_avg_sq),
                 flat(max_exp_avg_sq), *args)
        return
    _adam(param.size, flat(param), flat(grad), flat(exp_avg), flat(exp_avg_sq), *args)


def adagrad_update(param, grad, state_sum, lr=1e-2, weight_decay=0.0, eps=1e-10):
    """One Adagrad step in place at the step's rate lr, PyTorch's rule. Arrays: same
    shape. Returns None."""
    _adagrad(param.size, flat(param), flat(grad), flat(state_sum), float(lr),
             float(weight_decay), float(eps))


def rmsprop_update(param, grad, square_avg, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
                   momentum=0.0, momentum_buffer=None, grad_avg=None):
    """One RMSprop step in place, PyTorch's rule (centered when grad_avg is given;
    momentum_buffer used when momentum > 0). Arrays: same shape. Returns None."""
    empty = _EMPTY[param.dtype]
    buf = flat(momentum_buffer) if momentum and momentum_buffer is not None else empty
    _rmsprop(param.size, flat(param), flat(grad), flat(square_avg),
             empty if grad_avg is None else flat(grad_avg), buf, float(lr), float(alpha),
             float(eps), float(weight_decay), float(momentum))


def adamax_update(param, grad, exp_avg, exp_inf, step, lr=2e-3, beta1=0.9, beta2=0.999,
                  eps=1e-8, weight_decay=0.0):
    """One Adamax step in place, PyTorch's rule. param, grad, exp_avg, exp_inf: same
    shape; step: the 1-based step count. Returns None."""
    _adamax(param.size, flat(param), flat(grad), flat(exp_avg), flat(exp_inf),
            lr / (1 - beta1 ** step), float(beta1), float(beta2), float(eps),
            float(weight_decay))


def adaptive_moments_update(param, grad, exp_avg, exp_avg_sq, avg_rate, grad_rate=0.0,
                            beta1=0.9, beta2=0.999, sq_scale=1.0, eps=1e-8,
                            weight_decay=0.0):
    """NAdam's and RAdam's step in place with the rates their optimizers computed
    (fastnn.optable). Arrays: same shape. Returns None."""
    divisor, scale = denominator_factors(sq_scale, param.dtype)
    _adaptive_moments(param.size, flat(param), flat(grad), flat(exp_avg), flat(exp_avg_sq),
                      float(avg_rate), float(grad_rate), float(beta1), float(beta2),
                      divisor, scale, float(eps), float(weight_decay))


def adadelta_update(param, grad, square_avg, acc_delta, lr=1.0, rho=0.9, eps=1e-6,
                    weight_decay=0.0, maximize=False):
    """One Adadelta step in place, PyTorch's rule. param, grad, square_avg, acc_delta:
    same shape. Returns None."""
    _adadelta(param.size, flat(param), flat(grad), flat(square_avg), flat(acc_delta),
              float(lr), float(rho), float(eps), float(weight_decay), bool(maximize))


def rprop_update(param, grad, prev, step_size, etaminus=0.5, etaplus=1.2,
                 step_size_min=1e-6, step_size_max=50.0, maximize=False):
    """One Rprop step in place, PyTorch's rule. param, grad, prev, step_size: same
    shape. Returns None."""
    _rprop(param.size, flat(param), flat(grad), flat(prev), flat(step_size), float(etaminus),
           float(etaplus), float(step_size_min), float(step_size_max), bool(maximize))


def asgd_update(param, grad, ax, eta, mu, lambd=1e-4, weight_decay=0.0, maximize=False):
    """One ASGD step in place at the parameter's eta and mu, PyTorch's rule. param,
    grad, ax: same shape. Returns None."""
    _asgd(param.size, flat(param), flat(grad), flat(ax), 1.0 - float(lambd) * float(eta),
          float(eta), float(mu), float(weight_decay), bool(maximize))
