"""SGD (momentum, weight decay, Nesterov), Adam, RMSprop, Adagrad, Adamax, the NAdam /
RAdam step (adaptive_moments_update), Adadelta, Rprop and ASGD, PyTorch's rules, each one
in-place grid-stride pass over the parameter. param, grad and the state: same shape,
NumPy or device arrays; host ones are copied back (``_common.Call``). For a whole model
on the device, pass the flat buffers of ``fastnn.optim.flat`` (one launch for all
parameters) or each parameter's device arrays.
"""
import math

from numba import cuda

from ..moments import denominator_factors
from . import config
from ._common import Call, flat
from .launch import jit_kernel


@jit_kernel
def _sgd(param, grad, velocity, has_velocity, lr, momentum, weight_decay, nesterov, keep):
    """keep: 1 - dampening."""
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        g = grad[i] + weight_decay * param[i] if weight_decay != 0 else grad[i]
        if has_velocity:
            v = momentum * velocity[i] + keep * g
            velocity[i] = v
            g = g + momentum * v if nesterov else v
        param[i] -= lr * g


@jit_kernel
def _adam(param, grad, exp_avg, exp_avg_sq, vmax, amsgrad, small, coeff, beta2, c2, eps,
          weight_decay, step_size, bias2_sqrt):
    """vmax: the running maximum of exp_avg_sq when amsgrad (else an unread stand-in);
    small, coeff: the first moment's lerp (_lerp_coeff); c2: 1 - beta2 (rounded from the
    launcher's float, as PyTorch's)."""
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        g = grad[i] + weight_decay * param[i] if weight_decay != 0 else grad[i]
        m = (exp_avg[i] if small else g) + coeff * (g - exp_avg[i])
        v = beta2 * exp_avg_sq[i] + c2 * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        if amsgrad:
            v = vmax[i] if vmax[i] > v else v  # NaN in v propagates
            vmax[i] = v
        param[i] -= step_size * m / (math.sqrt(v) / bias2_sqrt + eps)


@jit_kernel
def _adagrad(param, grad, state_sum, lr, weight_decay, eps):
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        g = grad[i] + weight_decay * param[i] if weight_decay != 0 else grad[i]
        s = state_sum[i] + g * g
        state_sum[i] = s
        param[i] -= lr * g / (math.sqrt(s) + eps)


@jit_kernel
def _adamax(param, grad, exp_avg, exp_inf, step_size, small, coeff, beta2, eps, weight_decay):
    """small, coeff: the first moment's lerp (_lerp_coeff)."""
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        g = grad[i] + weight_decay * param[i] if weight_decay != 0 else grad[i]
        m = (exp_avg[i] if small else g) + coeff * (g - exp_avg[i])
        u = beta2 * exp_inf[i]
        a = abs(g) + eps
        u = u if u > a or u != u else a  # max, NaN propagating (torch.maximum)
        exp_avg[i] = m
        exp_inf[i] = u
        param[i] -= step_size * m / u


@jit_kernel
def _adaptive_moments(param, grad, exp_avg, exp_avg_sq, avg_rate, grad_rate, small, coeff,
                      beta2, c2, sq_divisor, sq_scale, eps, weight_decay):
    """small, coeff: the first moment's lerp (_lerp_coeff); c2: 1 - beta2; sq_divisor,
    sq_scale: the denominator's factors (kernels/moments.py)."""
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        g = grad[i] + weight_decay * param[i] if weight_decay != 0 else grad[i]
        m = (exp_avg[i] if small else g) + coeff * (g - exp_avg[i])
        v = beta2 * exp_avg_sq[i] + c2 * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        # RAdam's first steps (sq_scale 0): eps alone, even where v overflowed
        denom = math.sqrt(v / sq_divisor) * sq_scale + eps if sq_scale != 0 else eps
        # RAdam: no g term (0 * inf would be NaN); NAdam's two terms in PyTorch's order
        p = param[i] - grad_rate * g / denom if grad_rate != 0 else param[i]
        param[i] = p - avg_rate * m / denom


@jit_kernel
def _adadelta(param, grad, square_avg, acc_delta, lr, rho, c, eps, weight_decay, sign):
    """c: 1 - rho; sign: -1 to maximize, else 1."""
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        g = sign * grad[i]
        if weight_decay != 0:
            g = g + weight_decay * param[i]
        v = rho * square_avg[i] + c * g * g
        d = math.sqrt(acc_delta[i] + eps) / math.sqrt(v + eps) * g
        square_avg[i] = v
        acc_delta[i] = rho * acc_delta[i] + c * d * d
        param[i] -= lr * d


@jit_kernel
def _rprop(param, grad, prev, step_size, etaminus, etaplus, step_size_min, step_size_max,
           sign):
    """sign: -1 to maximize, else 1. The factor from the sign of g * prev in the dtype
    (1 for 0 or NaN), torch.clamp's lower, then upper bound; the step's direction is
    torch.sign(g), 0 for a NaN."""
    zero = param.dtype.type(0)
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        g = sign * grad[i]
        s = g * prev[i]
        z = step_size[i]
        if s > 0:
            z = z * etaplus
        elif s < 0:
            z = z * etaminus
        if z < step_size_min:
            z = step_size_min
        if z > step_size_max:
            z = step_size_max
        step_size[i] = z
        if s < 0:  # a sign change: no step (direction 0), and g kept as 0
            prev[i] = zero
            param[i] -= zero * z  # 0 * a NaN step size is still NaN, as torch's
        else:
            prev[i] = g
            if g > 0:
                param[i] -= z
            elif g < 0:
                param[i] += z
            else:
                param[i] -= zero * z  # g 0 or NaN: direction 0


@jit_kernel
def _asgd(param, grad, ax, keep, eta, mu, weight_decay, sign, average):
    """keep: 1 - lambd eta; sign: -1 to maximize, else 1; average: mu != 1 (else ax is
    a copy of the new param, as torch's)."""
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        g = sign * grad[i]
        if weight_decay != 0:
            g = g + weight_decay * param[i]
        p = param[i] * keep - eta * g
        param[i] = p
        if average:
            ax[i] = ax[i] + (p - ax[i]) * mu
        else:
            ax[i] = p


@jit_kernel
def _rmsprop(param, grad, square_avg, grad_avg, centered, buf, has_buf, lr, alpha, c, eps,
             weight_decay, momentum):
    """c: 1 - alpha. A centered variance below 0 (square_avg < grad_avg**2: rounding, or a
    loaded state) gives a NaN step, as a GPU's square root and PyTorch's do; the
    simulator's math.sqrt would raise ValueError('math domain error') instead."""
    nan = param.dtype.type(math.nan)
    zero = param.dtype.type(0)
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        g = grad[i] + weight_decay * param[i] if weight_decay != 0 else grad[i]
        s = alpha * square_avg[i] + c * g * g
        square_avg[i] = s
        if centered:
            m = alpha * grad_avg[i] + c * g
            grad_avg[i] = m
            s = s - m * m
        step = g / ((math.sqrt(s) if s >= zero else nan) + eps)
        if has_buf:
            step = momentum * buf[i] + step
            buf[i] = step
        param[i] -= lr * step


def _lerp_coeff(dt, beta1):
    """(small, coeff) of the first moment as PyTorch's exp_avg.lerp_(g, w), w = 1 - beta1
    in the dtype: m + w (g - m) when |w| < 0.5 (small, coeff w), else
    g + (w - 1) (g - m) (coeff w - 1); the kernels compute
    (m if small else g) + coeff (g - m). Not beta1 m + w g: an infinite m turns NaN on
    a finite g (inf - inf), as PyTorch's."""
    w = dt(1.0 - beta1)
    small = bool(abs(w) < 0.5)
    return small, w if small else w - dt(1.0)


def sgd_update(param, grad, velocity, lr, momentum=0.0, weight_decay=0.0, nesterov=False,
               dampening=0.0):
    """One SGD step in place. param, grad, velocity: same shape (velocity may be None
    when momentum == 0). Returns None."""
    call = Call(param, grad, velocity)
    dp, dg = call.inout(param), call.arg(grad)
    use_velocity = bool(momentum) and velocity is not None
    dv = call.inout(velocity) if use_velocity else None
    if dp.size:
        dt = param.dtype.type
        _sgd[config.blocks(dp.size), config.THREADS](
            flat(dp), flat(dg), flat(dv) if use_velocity else flat(dp), use_velocity,
            dt(lr), dt(momentum), dt(weight_decay), bool(nesterov), dt(1.0 - dampening))
    call.sync()


def adam_update(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999,
                eps=1e-8, weight_decay=0.0, max_exp_avg_sq=None):
    """One Adam step in place (AMSGrad when max_exp_avg_sq is given). param, grad,
    exp_avg, exp_avg_sq, max_exp_avg_sq: same shape; step: the 1-based step count.
    Returns None."""
    call = Call(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq)
    dp, dg = call.inout(param), call.arg(grad)
    dm, dv = call.inout(exp_avg), call.inout(exp_avg_sq)
    amsgrad = max_exp_avg_sq is not None
    dmax = call.inout(max_exp_avg_sq) if amsgrad else dv
    if dp.size:
        dt = param.dtype.type
        _adam[config.blocks(dp.size), config.THREADS](
            flat(dp), flat(dg), flat(dm), flat(dv), flat(dmax), amsgrad,
            *_lerp_coeff(dt, beta1), dt(beta2), dt(1.0 - beta2), dt(eps),
            dt(weight_decay), dt(lr / (1 - beta1 ** step)),
            dt(math.sqrt(1 - beta2 ** step)))
    call.sync()


def rmsprop_update(param, grad, square_avg, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
                   momentum=0.0, momentum_buffer=None, grad_avg=None):
    """One RMSprop step in place (centered when grad_avg is given; momentum_buffer used
    when momentum > 0). Arrays: same shape. Returns None."""
    call = Call(param, grad, square_avg, momentum_buffer, grad_avg)
    dp, dg, ds = call.inout(param), call.arg(grad), call.inout(square_avg)
    centered = grad_avg is not None
    has_buf = bool(momentum) and momentum_buffer is not None
    da = call.inout(grad_avg) if centered else dp  # unread stand-ins keep one signature
    db = call.inout(momentum_buffer) if has_buf else dp
    if dp.size:
        dt = param.dtype.type
        _rmsprop[config.blocks(dp.size), config.THREADS](
            flat(dp), flat(dg), flat(ds), flat(da), centered, flat(db), has_buf, dt(lr),
            dt(alpha), dt(1.0 - alpha), dt(eps), dt(weight_decay), dt(momentum))
    call.sync()


def adagrad_update(param, grad, state_sum, lr=1e-2, weight_decay=0.0, eps=1e-10):
    """One Adagrad step in place at the step's rate lr. Arrays: same shape. Returns None."""
    call = Call(param, grad, state_sum)
    dp, dg, ds = call.inout(param), call.arg(grad), call.inout(state_sum)
    if dp.size:
        dt = param.dtype.type
        _adagrad[config.blocks(dp.size), config.THREADS](
            flat(dp), flat(dg), flat(ds), dt(lr), dt(weight_decay), dt(eps))
    call.sync()


def adamax_update(param, grad, exp_avg, exp_inf, step, lr=2e-3, beta1=0.9, beta2=0.999,
                  eps=1e-8, weight_decay=0.0):
    """One Adamax step in place; step: 1-based. Arrays: same shape. Returns None."""
    call = Call(param, grad, exp_avg, exp_inf)
    dp, dg = call.inout(param), call.arg(grad)
    dm, du = call.inout(exp_avg), call.inout(exp_inf)
    if dp.size:
        dt = param.dtype.type
        _adamax[config.blocks(dp.size), config.THREADS](
            flat(dp), flat(dg), flat(dm), flat(du), dt(lr / (1 - beta1 ** step)),
            *_lerp_coeff(dt, beta1), dt(beta2), dt(eps), dt(weight_decay))
    call.sync()


def adaptive_moments_update(param, grad, exp_avg, exp_avg_sq, avg_rate, grad_rate=0.0,
                            beta1=0.9, beta2=0.999, sq_scale=1.0, eps=1e-8,
                            weight_decay=0.0):
    """NAdam's and RAdam's step in place with the rates their optimizers computed
    (fastnn.optable). Arrays: same shape. Returns None."""
    call = Call(param, grad, exp_avg, exp_avg_sq)
    dp, dg = call.inout(param), call.arg(grad)
    dm, dv = call.inout(exp_avg), call.inout(exp_avg_sq)
    if dp.size:
        dt = param.dtype.type
        divisor, scale = denominator_factors(sq_scale, param.dtype)
        _adaptive_moments[config.blocks(dp.size), config.THREADS](
            flat(dp), flat(dg), flat(dm), flat(dv), dt(avg_rate), dt(grad_rate),
            *_lerp_coeff(dt, beta1), dt(beta2), dt(1.0 - beta2), dt(divisor), dt(scale),
            dt(eps), dt(weight_decay))
    call.sync()


def adadelta_update(param, grad, square_avg, acc_delta, lr=1.0, rho=0.9, eps=1e-6,
                    weight_decay=0.0, maximize=False):
    """One Adadelta step in place. param, grad, square_avg, acc_delta: same shape.
    Returns None."""
    call = Call(param, grad, square_avg, acc_delta)
    dp, dg = call.inout(param), call.arg(grad)
    ds, da = call.inout(square_avg), call.inout(acc_delta)
    if dp.size:
        dt = param.dtype.type
        _adadelta[config.blocks(dp.size), config.THREADS](
            flat(dp), flat(dg), flat(ds), flat(da), dt(lr), dt(rho), dt(1.0 - rho), dt(eps),
            dt(weight_decay), dt(-1.0 if maximize else 1.0))
    call.sync()


def rprop_update(param, grad, prev, step_size, etaminus=0.5, etaplus=1.2,
                 step_size_min=1e-6, step_size_max=50.0, maximize=False):
    """One Rprop step in place. param, grad, prev, step_size: same shape. Returns None."""
    call = Call(param, grad, prev, step_size)
    dp, dg = call.inout(param), call.arg(grad)
    dprev, dsize = call.inout(prev), call.inout(step_size)
    if dp.size:
        dt = param.dtype.type
        _rprop[config.blocks(dp.size), config.THREADS](
            flat(dp), flat(dg), flat(dprev), flat(dsize), dt(etaminus), dt(etaplus),
            dt(step_size_min), dt(step_size_max), dt(-1.0 if maximize else 1.0))
    call.sync()


def asgd_update(param, grad, ax, eta, mu, lambd=1e-4, weight_decay=0.0, maximize=False):
    """One ASGD step in place at the parameter's eta and mu. param, grad, ax: same
    shape. Returns None."""
    call = Call(param, grad, ax)
    dp, dg, dax = call.inout(param), call.arg(grad), call.inout(ax)
    if dp.size:
        dt = param.dtype.type
        _asgd[config.blocks(dp.size), config.THREADS](
            flat(dp), flat(dg), flat(dax), dt(1.0 - lambd * eta), dt(eta), dt(mu),
            dt(weight_decay), dt(-1.0 if maximize else 1.0), bool(mu != 1))
    call.sync()
