"""The functional API: every op of the table, validated, then run on the current backend.

Use these as a faster drop-in for hand-written NumPy code::

    from fastnn import ops
    y = ops.linear_forward(x, w, b, activation="relu")
    loss, dlogits = ops.softmax_cross_entropy(logits, labels)

Each function checks its arguments (rank, shape, dtype float32/float64, matching dtypes,
label range, hyper-parameters) and raises a clear error naming the op before anything is
written. Non-contiguous inputs are copied to contiguous memory; ``out=`` buffers must be
C-contiguous and must not share memory with another argument (as PyTorch refuses
overlapping ``out=``), except that elementwise ops may write in place: an activation or
its backward, dropout, MSE/BCE's grad, BatchNorm's out (over x) and grad_in (over x or
grad_out). Docstrings (with shapes) come from the op table, ``fastnn.optable``.

NumPy arrays run on the current backend. A call given any CUDA device array (a numba
device array, or CuPy) runs on the cuda backend and returns device arrays; host
arguments of that call are copied over, and labels are range-checked on the host.
"""
import numpy as np

from . import device as _device
from . import optable
from .backend import current
from .errors import DtypeError
from .kernels.window_shapes import window_out_size
from .validation import (as_contiguous, as_labels, check_choice, check_flag,
                         check_float_array, check_no_overlap, check_number, check_out,
                         check_positive_int, check_probabilities, check_same_shape,
                         contiguous_float_array, layout, pair)

__all__ = optable.op_names()


def _check(where, name, x, ndim=None, shape=None, dtype=None):
    """check_float_array, device arrays passing as NumPy ones do."""
    return check_float_array(where, name, x, ndim, shape, dtype, True)


def _contiguous_input(where, name, x, ndim=None, shape=None, dtype=None):
    """contiguous_float_array, device arrays passing as NumPy ones do."""
    return contiguous_float_array(where, name, x, ndim, shape, dtype, True)


# the argument types that are neither device arrays nor NumPy scalars (the common ones,
# passed over at one test each)
_PLAIN = frozenset({np.ndarray, type(None), float, int, bool, str, tuple})


def _python_number(value):
    """A NumPy scalar (np.float32(0.9)) as the Python number of its value; anything else
    as it is."""
    return value.item() if isinstance(value, np.generic) else value


def _run(name, *args, **kwargs):
    """Op ``name`` on the cuda backend when any argument is a device array, else on the
    current backend. NumPy scalars go as the Python numbers of their values, as the Cython
    kernels and fastnn.optim (float(group['lr'])) read them: given np.float32
    hyper-parameters, the numpy backend computed 1 - dampening, Adam's bias corrections
    or dropout's 1 / (1 - p) in float32 arithmetic, and numba compiled float32 versions
    of its kernels that did too (float64 parameters up to 8e-6 off the Cython step)."""
    for a in args:
        if type(a) not in _PLAIN:
            return _run_unusual(name, args, kwargs)
    for a in kwargs.values():
        if type(a) not in _PLAIN:
            return _run_unusual(name, args, kwargs)
    return getattr(current(), name)(*args, **kwargs)


def _run_unusual(name, args, kwargs):
    """_run of a call with an argument of a type outside _PLAIN: a device array, a NumPy
    scalar, or anything else (which passes to the kernel as it is)."""
    on_device = scalars = False
    for values in (args, kwargs.values()):
        for a in values:
            if type(a) in _PLAIN:
                continue
            if isinstance(a, np.generic):
                scalars = True
            elif _device.is_device_array(a):
                on_device = True
    if scalars:
        args = tuple(map(_python_number, args))
        kwargs = {key: _python_number(value) for key, value in kwargs.items()}
    return getattr(_device.kernels("cuda") if on_device else current(), name)(*args, **kwargs)


def _array(value):
    """value, or the 0-d array of a NumPy scalar: the numpy backend's NumPy arithmetic
    (np.multiply(x, mask) of 0-d x and mask, a loss's pred - target) gives NumPy
    scalars for 0-d inputs, where the compiled backends, and PyTorch, give 0-d arrays."""
    return np.asarray(value) if isinstance(value, np.generic) else value


def _unary(name, x, out, **params):
    x = _contiguous_input(name, "x", x)
    if out is not None:
        check_out(name, "out", out, x.shape, x.dtype)
        check_no_overlap(name, [("out", out)], [("x", x)], in_place={("out", "x")})
    return _run(name, x, out=out, **params)


def _binary(name, grad_out, saved_name, saved, out, **params):
    grad_out = _contiguous_input(name, "grad_out", grad_out)
    saved = _contiguous_input(name, saved_name, saved, dtype=grad_out.dtype)
    check_same_shape(name, saved_name, saved, "grad_out", grad_out)
    if out is not None:
        check_out(name, "out", out, grad_out.shape, grad_out.dtype)
        check_no_overlap(name, [("out", out)], [("grad_out", grad_out), (saved_name, saved)],
                         in_place={("out", "grad_out"), ("out", saved_name)})
    return _run(name, grad_out, saved, out=out, **params)


# --------------------------------------------------------------------------- dense
def _check_linear(where, x, weight, bias):
    x = _contiguous_input(where, "x", x, ndim=2)
    weight = _contiguous_input(where, "weight", weight, ndim=2, dtype=x.dtype)
    if weight.shape[1] != x.shape[1]:
        raise ValueError(f"{where}: x has {x.shape[1]} features but weight of shape "
                         f"{weight.shape} expects {weight.shape[1]}")
    if bias is not None:
        bias = _contiguous_input(where, "bias", bias,
                                 shape=(weight.shape[0],), dtype=x.dtype)
    return x, weight, bias


def _check_activation(where, activation, negative_slope):
    check_choice(where, "activation", activation, optable.FUSABLE_ACTIVATIONS)
    check_number(where, "negative_slope", negative_slope)
    if activation == "leaky_relu" and negative_slope < 0:
        raise ValueError(f"{where}: a fused leaky_relu needs negative_slope >= 0 (its backward "
                         f"reads the output's sign), got {negative_slope}")


def linear_forward(x, weight, bias=None, activation="identity", negative_slope=0.01, out=None):
    where = "linear_forward"
    x, weight, bias = _check_linear(where, x, weight, bias)
    _check_activation(where, activation, negative_slope)
    if out is not None:
        check_out(where, "out", out, (x.shape[0], weight.shape[0]), x.dtype)
        check_no_overlap(where, [("out", out)], [("x", x), ("weight", weight), ("bias", bias)])
    return _run("linear_forward", x, weight, bias, activation, negative_slope, out=out)


def linear_backward(grad_out, x, weight, y=None, activation="identity", negative_slope=0.01,
                    grad_weight=None, grad_bias=None, grad_in=None, need_grad_in=True,
                    scratch=None, accumulate=True):
    where = "linear_backward"
    need_grad_in = check_flag(where, "need_grad_in", need_grad_in)
    accumulate = check_flag(where, "accumulate", accumulate)
    x, weight, _ = _check_linear(where, x, weight, None)
    _check_activation(where, activation, negative_slope)
    out_shape = (x.shape[0], weight.shape[0])
    grad_out = _contiguous_input(where, "grad_out", grad_out, shape=out_shape,
                                 dtype=x.dtype)
    if activation != "identity":
        if y is None:
            raise ValueError(f"{where}: activation {activation!r} needs the forward output y")
        y = _contiguous_input(where, "y", y, shape=out_shape, dtype=x.dtype)
    check_out(where, "grad_weight", grad_weight, weight.shape, x.dtype)
    check_out(where, "grad_bias", grad_bias, (weight.shape[0],), x.dtype)
    check_out(where, "grad_in", grad_in, x.shape, x.dtype)
    check_out(where, "scratch", scratch, out_shape, x.dtype)
    check_no_overlap(where, [("grad_weight", grad_weight), ("grad_bias", grad_bias),
                             ("grad_in", grad_in), ("scratch", scratch)],
                     [("grad_out", grad_out), ("x", x), ("weight", weight), ("y", y)])
    return _run("linear_backward", grad_out, x, weight, y, activation, negative_slope,
                                grad_weight, grad_bias, grad_in, need_grad_in, scratch,
                                accumulate)


# --------------------------------------------------------------------- activations
def relu(x, out=None):
    return _unary("relu", x, out)


def relu_backward(grad_out, y, out=None):
    return _binary("relu_backward", grad_out, "y", y, out)


def leaky_relu(x, negative_slope=0.01, out=None):
    check_number("leaky_relu", "negative_slope", negative_slope)
    return _unary("leaky_relu", x, out, negative_slope=negative_slope)


def leaky_relu_backward(grad_out, x, negative_slope=0.01, out=None):
    check_number("leaky_relu_backward", "negative_slope", negative_slope)
    return _binary("leaky_relu_backward", grad_out, "x", x, out, negative_slope=negative_slope)


def sigmoid(x, out=None):
    return _unary("sigmoid", x, out)


def sigmoid_backward(grad_out, y, out=None):
    return _binary("sigmoid_backward", grad_out, "y", y, out)


def tanh(x, out=None):
    return _unary("tanh", x, out)


def tanh_backward(grad_out, y, out=None):
    return _binary("tanh_backward", grad_out, "y", y, out)


def gelu(x, out=None):
    return _unary("gelu", x, out)


def gelu_backward(grad_out, x, out=None):
    return _binary("gelu_backward", grad_out, "x", x, out)


def gelu_tanh(x, out=None):
    return _unary("gelu_tanh", x, out)


def gelu_tanh_backward(grad_out, x, out=None):
    return _binary("gelu_tanh_backward", grad_out, "x", x, out)


def mish(x, out=None):
    return _unary("mish", x, out)


def mish_backward(grad_out, x, out=None):
    return _binary("mish_backward", grad_out, "x", x, out)


def silu(x, out=None):
    return _unary("silu", x, out)


def silu_backward(grad_out, x, out=None):
    return _binary("silu_backward", grad_out, "x", x, out)


def elu(x, alpha=1.0, out=None):
    check_number("elu", "alpha", alpha)
    return _unary("elu", x, out, alpha=alpha)


def elu_backward(grad_out, x, alpha=1.0, out=None):
    check_number("elu_backward", "alpha", alpha)
    return _binary("elu_backward", grad_out, "x", x, out, alpha=alpha)


def _check_softplus(where, beta, threshold):
    check_number(where, "beta", beta)   # any, as PyTorch and nn.Softplus (0: inf)
    check_number(where, "threshold", threshold, infinite_ok=True)   # (inf: never linear)


def softplus(x, beta=1.0, threshold=20.0, out=None):
    _check_softplus("softplus", beta, threshold)
    return _unary("softplus", x, out, beta=beta, threshold=threshold)


def softplus_backward(grad_out, x, beta=1.0, threshold=20.0, out=None):
    _check_softplus("softplus_backward", beta, threshold)
    return _binary("softplus_backward", grad_out, "x", x, out, beta=beta, threshold=threshold)


def hardsigmoid(x, out=None):
    return _unary("hardsigmoid", x, out)


def hardsigmoid_backward(grad_out, x, out=None):
    return _binary("hardsigmoid_backward", grad_out, "x", x, out)


def hardswish(x, out=None):
    return _unary("hardswish", x, out)


def hardswish_backward(grad_out, x, out=None):
    return _binary("hardswish_backward", grad_out, "x", x, out)


def softsign(x, out=None):
    return _unary("softsign", x, out)


def softsign_backward(grad_out, x, out=None):
    return _binary("softsign_backward", grad_out, "x", x, out)


def _check_hardtanh(where, min_val, max_val):
    check_number(where, "min_val", min_val, infinite_ok=True)   # (an infinite bound: no clamp)
    check_number(where, "max_val", max_val, infinite_ok=True)
    if max_val < min_val:
        raise ValueError(f"{where}: expected min_val <= max_val, got {min_val} and {max_val}")


def hardtanh(x, min_val=-1.0, max_val=1.0, out=None):
    _check_hardtanh("hardtanh", min_val, max_val)
    return _unary("hardtanh", x, out, min_val=min_val, max_val=max_val)


def hardtanh_backward(grad_out, x, min_val=-1.0, max_val=1.0, out=None):
    _check_hardtanh("hardtanh_backward", min_val, max_val)
    return _binary("hardtanh_backward", grad_out, "x", x, out, min_val=min_val,
                   max_val=max_val)


def sine(x, omega=1.0, out=None):
    check_number("sine", "omega", omega)
    return _unary("sine", x, out, omega=omega)


def sine_backward(grad_out, x, omega=1.0, out=None):
    check_number("sine_backward", "omega", omega)
    return _binary("sine_backward", grad_out, "x", x, out, omega=omega)


def softmax(x, out=None):
    _check("softmax", "x", x, ndim=2)
    return _unary("softmax", x, out)


def softmax_backward(grad_out, y, out=None):
    _check("softmax_backward", "grad_out", grad_out, ndim=2)
    return _binary("softmax_backward", grad_out, "y", y, out)


def log_softmax(x, out=None):
    _check("log_softmax", "x", x, ndim=2)
    return _unary("log_softmax", x, out)


def log_softmax_backward(grad_out, y, out=None):
    _check("log_softmax_backward", "grad_out", grad_out, ndim=2)
    return _binary("log_softmax_backward", grad_out, "y", y, out)


# ------------------------------------------------------------------------ dropout
def dropout_forward(x, p, seed, mask=None, out=None):
    where = "dropout_forward"
    x = _contiguous_input(where, "x", x)
    check_number(where, "p", p, 0.0, 1.0, high_open=False)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(f"{where}: expected seed to be a non-negative int, got {seed!r}")
    if seed >= 2 ** 64:  # the compiled kernels' generators take 64 bits
        raise ValueError(f"{where}: expected seed in [0, 2**64), got {seed!r}")
    check_out(where, "mask", mask, x.shape, x.dtype)
    check_out(where, "out", out, x.shape, x.dtype)
    check_no_overlap(where, [("mask", mask), ("out", out)], [("x", x)],
                     in_place={("out", "x")})
    if p == 1:   # PyTorch's dropout(x, 1): all dropped, y = x * 0 (NaN and inf give NaN)
        return _all_dropped(x, mask, out)
    y, mask = _run("dropout_forward", x, p, int(seed), mask=mask, out=out)
    return _array(y), mask


def _all_dropped(x, mask, out):
    """(x * 0, a mask of zeros), into out and mask when given: dropout at p = 1."""
    ns = _device.namespace_of(x)
    y = _device.scaled(x, 0.0, copy=True)
    zeros = ns.zeros(x.shape, x.dtype)
    if out is not None:
        ns.copy_into(out, y)
        y = out
    if mask is not None:
        ns.copy_into(mask, zeros)
        zeros = mask
    return y, zeros


def dropout_backward(grad_out, mask, out=None):
    return _array(_binary("dropout_backward", grad_out, "mask", mask, out))


# -------------------------------------------------------------------------- losses
def softmax_cross_entropy(logits, target, grad=None):
    where = "softmax_cross_entropy"
    logits = _contiguous_input(where, "logits", logits, ndim=2)
    n, c = logits.shape
    if _device.is_array(target) and target.ndim == 2:
        if target.dtype.kind in "biu":   # (PyTorch: "multi-target not supported")
            raise ValueError(f"{where}: expected target of shape ({n},) (class labels) or "
                             f"{(n, c)} (float probabilities), got integer labels of shape "
                             f"{tuple(target.shape)}")
        target = _contiguous_input(where, "target", target, shape=(n, c),
                                   dtype=logits.dtype)
    elif _device.is_array(target) and target.ndim > 2:
        raise ValueError(f"{where}: expected target of shape ({n},) (class labels) or {(n, c)} "
                         f"(probabilities), got {target.shape}")
    else:  # device labels beside device logits: the cuda kernel checks their range
        target = as_labels(where, target, n, c,
                           kernel_checks=_device.is_device_array(logits))
    if grad is not None:
        check_out(where, "grad", grad, logits.shape, logits.dtype)
        check_no_overlap(where, [("grad", grad)], [("logits", logits), ("target", target)])
    if logits.size == 0:  # no rows, or (probability targets) rows of no class
        return _empty_loss(logits, grad)
    if grad is not None and _device.is_device_array(target) and target.ndim == 1:
        # device labels the kernel checks as it writes the gradient: the caller's buffer
        # gets it only once they passed (a refused call writes nothing of theirs)
        loss, fresh = _loss("softmax_cross_entropy", logits, target)
        _device.namespace_of(grad).copy_into(grad, fresh)
        return loss, grad
    return _loss("softmax_cross_entropy", logits, target, grad=grad)


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def loss_value(loss, dtype):
    """A loss the kernels summed in float64, as a Python float rounded to dtype, the
    value PyTorch's loss tensor of that dtype holds: a float32 loss past float32's range
    is inf (what the trainer's divergence check looks for), not a float64 number."""
    if -_FLOAT32_MAX <= loss <= _FLOAT32_MAX:   # (no overflow to silence: a quick path)
        return float(np.dtype(dtype).type(loss))
    with np.errstate(over="ignore"):
        return float(np.dtype(dtype).type(loss))


def _loss(name, pred, *args, grad=None):
    """(loss rounded to pred's dtype, gradient) of loss op ``name``."""
    loss, grad = _run(name, pred, *args, grad=grad)
    return loss_value(loss, pred.dtype), _array(grad)


def _empty_loss(pred, grad):
    """The mean over no elements: NaN as in PyTorch, and an empty gradient."""
    if grad is None:
        grad = _device.namespace_of(pred).empty(pred.shape, pred.dtype)
    return float("nan"), grad


def _check_pred_target(where, pred, target, grad, name="pred"):
    pred = _contiguous_input(where, name, pred)
    target = _contiguous_input(where, "target", target, dtype=pred.dtype)
    check_same_shape(where, "target", target, name, pred)
    if grad is not None:
        check_out(where, "grad", grad, pred.shape, pred.dtype)
        check_no_overlap(where, [("grad", grad)], [(name, pred), ("target", target)],
                         in_place={("grad", name), ("grad", "target")})
    return pred, target


def mse_loss(pred, target, grad=None):
    pred, target = _check_pred_target("mse_loss", pred, target, grad)
    if pred.size == 0:
        return _empty_loss(pred, grad)
    return _loss("mse_loss", pred, target, grad=grad)


def bce_loss(pred, target, grad=None):
    where = "bce_loss"
    pred, target = _check_pred_target(where, pred, target, grad)
    check_probabilities(where, "pred", _device.to_host(pred))
    check_probabilities(where, "target", _device.to_host(target))
    if pred.size == 0:
        return _empty_loss(pred, grad)
    return _loss("bce_loss", pred, target, grad=grad)


def bce_with_logits_loss(logits, target, grad=None):
    logits, target = _check_pred_target("bce_with_logits_loss", logits, target, grad,
                                        name="logits")
    if logits.size == 0:
        return _empty_loss(logits, grad)
    return _loss("bce_with_logits_loss", logits, target, grad=grad)


def smooth_l1_loss(pred, target, beta=1.0, grad=None):
    where = "smooth_l1_loss"
    check_number(where, "beta", beta, 0.0)
    pred, target = _check_pred_target(where, pred, target, grad)
    if pred.size == 0:
        return _empty_loss(pred, grad)
    return _loss(where, pred, target, float(beta), grad=grad)


# ---------------------------------------------------------------------- batchnorm
def _check_batchnorm(where, x, weight, bias, mean_only, training):
    x = _contiguous_input(where, "x", x, ndim=(2, 4))
    c = x.shape[1]
    if not mean_only:
        _check(where, "weight", weight, shape=(c,), dtype=x.dtype)
    if bias is not None:
        _check(where, "bias", bias, shape=(c,), dtype=x.dtype)
    # PyTorch's rule: one value per channel is an error, an empty batch is not; mean_only
    # takes no variance, so one value is fine there (y = bias)
    if training and not mean_only and x.size // max(c, 1) == 1:
        raise ValueError(f"{where}: training-mode batch normalisation needs more than one value "
                         f"per channel, got input of shape {x.shape}")
    return x


def batchnorm_forward(x, weight, bias, running_mean, running_var, training=True,
                      momentum=0.1, eps=1e-5, mean_only=False, out=None,
                      save_mean=None, save_invstd=None):
    where = "batchnorm_forward"
    training = check_flag(where, "training", training)
    mean_only = check_flag(where, "mean_only", mean_only)
    x = _check_batchnorm(where, x, weight, bias, mean_only, training)
    c = x.shape[1]
    _check(where, "bias", bias, shape=(c,), dtype=x.dtype)
    if running_mean is None:
        raise ValueError(f"{where}: running_mean is required")
    if not mean_only and running_var is None:
        raise ValueError(f"{where}: running_var is required unless mean_only")
    # training updates the running statistics in place (out= buffers); eval only reads
    # them, so a read-only or strided pair is fine there (as weight and bias are)
    for name, stat in (("running_mean", running_mean),) + (
            () if mean_only else (("running_var", running_var),)):
        if training:
            check_out(where, name, stat, (c,), x.dtype)
        else:
            _check(where, name, stat, shape=(c,), dtype=x.dtype)
    check_number(where, "momentum", momentum, 0.0, 1.0, high_open=False)
    check_number(where, "eps", eps, 0.0)
    check_out(where, "out", out, x.shape, x.dtype)
    check_out(where, "save_mean", save_mean, (c,), x.dtype)
    check_out(where, "save_invstd", save_invstd, (c,), x.dtype)
    stats = [("running_mean", running_mean), ("running_var", running_var)]
    check_no_overlap(where, [("out", out), ("save_mean", save_mean),
                             ("save_invstd", save_invstd)] + (stats if training else []),
                     [("x", x), ("weight", weight), ("bias", bias)] + ([] if training else stats),
                     in_place={("out", "x")})
    if training and x.size == 0:
        return _empty_batchnorm(x, mean_only, out, save_mean, save_invstd)
    weight, bias = _vectors(weight=weight, bias=bias)
    if not training:  # the kernels' running-statistics parameters are writeable [::1]
        running_mean, running_var = _stats_copies(running_mean,
                                                  None if mean_only else running_var)
    return _run("batchnorm_forward", x, weight, bias, running_mean, running_var, training,
                                  momentum, eps, mean_only, out=out, save_mean=save_mean,
                                  save_invstd=save_invstd)


def _stats_copies(*stats):
    """Eval mode's running statistics as the kernels take them (C-contiguous memory that
    the compiled kernels' signatures type as writeable, though eval only reads it): each
    itself, or a copy (C values) of a read-only or strided one."""
    return [np.array(v, order="C") if isinstance(v, np.ndarray) and not v.flags.writeable
            else None if v is None else as_contiguous(v) for v in stats]


def _empty_batchnorm(x, mean_only, out, save_mean, save_invstd):
    """An empty batch in training, as PyTorch's F.batch_norm: an empty output and the
    running statistics left alone (no batch statistics exist); the saved ones read 0."""
    xp = _device.namespace_of(x)
    out = xp.empty(x.shape, x.dtype) if out is None else out
    saved = []
    for buf in (save_mean, None if mean_only else save_invstd):
        if buf is None:
            buf = xp.zeros((x.shape[1],), x.dtype)
        xp.fill_zero(buf)
        saved.append(buf)
    return (out, saved[0], None) if mean_only else (out, *saved)


def batchnorm_backward(grad_out, x, weight, save_mean, save_invstd, training=True,
                       mean_only=False, grad_weight=None, grad_bias=None, grad_in=None):
    where = "batchnorm_backward"
    training = check_flag(where, "training", training)
    mean_only = check_flag(where, "mean_only", mean_only)
    x = _check_batchnorm(where, x, weight, None, mean_only, False)
    c = x.shape[1]
    grad_out = _contiguous_input(where, "grad_out", grad_out, dtype=x.dtype)
    check_same_shape(where, "grad_out", grad_out, "x", x)
    _check(where, "save_mean", save_mean, shape=(c,), dtype=x.dtype)
    if not mean_only:
        _check(where, "save_invstd", save_invstd, shape=(c,), dtype=x.dtype)
        check_out(where, "grad_weight", grad_weight, (c,), x.dtype)
    check_out(where, "grad_bias", grad_bias, (c,), x.dtype)
    check_out(where, "grad_in", grad_in, x.shape, x.dtype)
    check_no_overlap(where, [("grad_weight", grad_weight), ("grad_bias", grad_bias),
                             ("grad_in", grad_in)],
                     [("grad_out", grad_out), ("x", x), ("weight", weight),
                      ("save_mean", save_mean), ("save_invstd", save_invstd)],
                     in_place={("grad_in", "grad_out"), ("grad_in", "x")})
    if x.size == 0:  # no values: nothing to accumulate (and no mean over them)
        return _device.namespace_of(x).empty(x.shape, x.dtype) if grad_in is None else grad_in
    weight, save_mean, save_invstd = _vectors(weight=weight, save_mean=save_mean,
                                              save_invstd=save_invstd)
    return _run("batchnorm_backward", grad_out, x, weight, save_mean, save_invstd, training,
                                   mean_only, grad_weight, grad_bias, grad_in)


def _vectors(**vectors):
    """The per-channel (or per-row) input vectors, each itself when C-contiguous or None,
    else a contiguous copy (the kernels take [::1] memory), in the order given."""
    return [None if v is None else as_contiguous(v) for v in vectors.values()]


# ------------------------------------------------------------------- layernorm
def _check_layer_norm(where, x, weight):
    x = _contiguous_input(where, "x", x, ndim=2)
    if weight is not None:
        _check(where, "weight", weight, shape=(x.shape[1],), dtype=x.dtype)
    return x


def layer_norm_forward(x, weight=None, bias=None, eps=1e-5, out=None, save_mean=None,
                       save_invstd=None):
    where = "layer_norm_forward"
    x = _check_layer_norm(where, x, weight)
    n, d = x.shape
    if bias is not None:
        _check(where, "bias", bias, shape=(d,), dtype=x.dtype)
    check_number(where, "eps", eps, 0.0)
    check_out(where, "out", out, x.shape, x.dtype)
    check_out(where, "save_mean", save_mean, (n,), x.dtype)
    check_out(where, "save_invstd", save_invstd, (n,), x.dtype)
    check_no_overlap(where, [("out", out), ("save_mean", save_mean),
                             ("save_invstd", save_invstd)],
                     [("x", x), ("weight", weight), ("bias", bias)], in_place={("out", "x")})
    weight, bias = _vectors(weight=weight, bias=bias)
    return _run("layer_norm_forward", x, weight, bias, float(eps), out=out,
                save_mean=save_mean, save_invstd=save_invstd)


def layer_norm_backward(grad_out, x, weight, save_mean, save_invstd, grad_weight=None,
                        grad_bias=None, grad_in=None):
    where = "layer_norm_backward"
    x = _check_layer_norm(where, x, weight)
    n, d = x.shape
    grad_out = _contiguous_input(where, "grad_out", grad_out, dtype=x.dtype)
    check_same_shape(where, "grad_out", grad_out, "x", x)
    _check(where, "save_mean", save_mean, shape=(n,), dtype=x.dtype)
    _check(where, "save_invstd", save_invstd, shape=(n,), dtype=x.dtype)
    check_out(where, "grad_weight", grad_weight, (d,), x.dtype)
    check_out(where, "grad_bias", grad_bias, (d,), x.dtype)
    check_out(where, "grad_in", grad_in, x.shape, x.dtype)
    check_no_overlap(where, [("grad_weight", grad_weight), ("grad_bias", grad_bias),
                             ("grad_in", grad_in)],
                     [("grad_out", grad_out), ("x", x), ("weight", weight),
                      ("save_mean", save_mean), ("save_invstd", save_invstd)])
    weight, save_mean, save_invstd = _vectors(weight=weight, save_mean=save_mean,
                                              save_invstd=save_invstd)
    return _run("layer_norm_backward", grad_out, x, weight, save_mean, save_invstd,
                grad_weight, grad_bias, grad_in)


# ------------------------------------------------------------------------ conv
def _conv_out_size(where, size, kernel, stride, padding, ceil_mode=False, dilation=1):
    if kernel < 1:
        raise ValueError(f"{where}: expected a kernel size >= 1, got {kernel}")
    if stride < 1 or padding < 0 or dilation < 1:
        raise ValueError(f"{where}: expected stride >= 1, padding >= 0 and dilation >= 1, "
                         f"got stride {stride}, padding {padding} and dilation {dilation}")
    span = dilation * (kernel - 1) + 1
    out = window_out_size(size, kernel, stride, padding, ceil_mode, dilation)
    # ceil_mode keeps a first window that runs past the padded input (PyTorch's rule)
    if span > size + 2 * padding and not (ceil_mode and out >= 1):
        what = "kernel size" if dilation == 1 else "dilated kernel span"
        raise ValueError(f"{where}: {what} {span} is larger than the padded input "
                         f"size {size + 2 * padding}")
    return out


def _check_conv(where, x, weight, stride, padding, depthwise=False):
    """(x, weight, stride, padding, output shape) checked: weight (C_out, C_in, kH, kW),
    or for a depthwise op (C_out, 1, kH, kW) with C_out a multiple of C_in."""
    x = _contiguous_input(where, "x", x, ndim=4)
    weight = _contiguous_input(where, "weight", weight, ndim=4, dtype=x.dtype)
    c_in, c_out = x.shape[1], weight.shape[0]
    if depthwise and (weight.shape[1] != 1 or c_in == 0 or c_out % c_in):
        raise ValueError(f"{where}: expected weight of shape (M * {c_in}, 1, kH, kW) for x "
                         f"with {c_in} channels (M >= 0 kernels each), got {weight.shape}")
    if not depthwise and weight.shape[1] != c_in:
        raise ValueError(f"{where}: x has {c_in} channels but weight of shape "
                         f"{weight.shape} expects {weight.shape[1]}")
    stride, padding = pair(where, "stride", stride), pair(where, "padding", padding)
    out_hw = tuple(_conv_out_size(where, x.shape[2 + i], weight.shape[2 + i], stride[i],
                                  padding[i]) for i in range(2))
    return x, weight, stride, padding, (x.shape[0], c_out) + out_hw


def _conv_forward(where, depthwise, x, weight, bias, stride, padding, out):
    """Validate and run a convolution op's forward (depthwise: the weight's layout, as
    _check_conv takes it)."""
    x, weight, stride, padding, out_shape = _check_conv(where, x, weight, stride, padding,
                                                        depthwise)
    if bias is not None:
        bias = _contiguous_input(where, "bias", bias, shape=(weight.shape[0],),
                                 dtype=x.dtype)
    check_out(where, "out", out, out_shape, x.dtype)
    check_no_overlap(where, [("out", out)], [("x", x), ("weight", weight), ("bias", bias)])
    return _run(where, x, weight, bias, stride, padding, out=out)


def _conv_backward(where, depthwise, grad_out, x, weight, stride, padding, grad_weight,
                   grad_bias, grad_in, need_grad_in):
    """Validate and run a convolution op's backward (depthwise as _conv_forward's)."""
    need_grad_in = check_flag(where, "need_grad_in", need_grad_in)
    x, weight, stride, padding, out_shape = _check_conv(where, x, weight, stride, padding,
                                                        depthwise)
    grad_out = _contiguous_input(where, "grad_out", grad_out, shape=out_shape,
                                 dtype=x.dtype)
    check_out(where, "grad_weight", grad_weight, weight.shape, x.dtype)
    check_out(where, "grad_bias", grad_bias, (weight.shape[0],), x.dtype)
    check_out(where, "grad_in", grad_in, x.shape, x.dtype)
    check_no_overlap(where, [("grad_weight", grad_weight), ("grad_bias", grad_bias),
                             ("grad_in", grad_in)],
                     [("grad_out", grad_out), ("x", x), ("weight", weight)])
    return _run(where, grad_out, x, weight, stride, padding, grad_weight, grad_bias,
                grad_in, need_grad_in)


def conv2d_forward(x, weight, bias=None, stride=(1, 1), padding=(0, 0), out=None):
    return _conv_forward("conv2d_forward", False, x, weight, bias, stride, padding, out)


def conv2d_backward(grad_out, x, weight, stride=(1, 1), padding=(0, 0), grad_weight=None,
                    grad_bias=None, grad_in=None, need_grad_in=True):
    return _conv_backward("conv2d_backward", False, grad_out, x, weight, stride, padding,
                          grad_weight, grad_bias, grad_in, need_grad_in)


def depthwise_conv2d_forward(x, weight, bias=None, stride=(1, 1), padding=(0, 0), out=None):
    return _conv_forward("depthwise_conv2d_forward", True, x, weight, bias, stride, padding,
                         out)


def depthwise_conv2d_backward(grad_out, x, weight, stride=(1, 1), padding=(0, 0),
                              grad_weight=None, grad_bias=None, grad_in=None,
                              need_grad_in=True):
    return _conv_backward("depthwise_conv2d_backward", True, grad_out, x, weight, stride,
                          padding, grad_weight, grad_bias, grad_in, need_grad_in)


def _check_pool(where, shape, kernel_size, stride, padding, ceil_mode=False,
                dilation=(1, 1)):
    kernel_size = pair(where, "kernel_size", kernel_size)
    dilation = pair(where, "dilation", dilation)
    stride = kernel_size if stride is None else pair(where, "stride", stride)
    padding = pair(where, "padding", padding)
    for k, p in zip(kernel_size, padding):
        if k < 1 or p > k // 2:
            raise ValueError(f"{where}: expected kernel_size >= 1 and padding <= kernel_size / 2, "
                             f"got kernel_size {kernel_size} and padding {padding}")
    out_hw = tuple(_conv_out_size(where, shape[2 + i], kernel_size[i], stride[i], padding[i],
                                  ceil_mode, dilation[i]) for i in range(2))
    return kernel_size, stride, padding, tuple(shape[:2]) + out_hw


def _check_divisor(where, divisor_override):
    """None, or divisor_override as a positive int."""
    if divisor_override is None:
        return None
    return check_positive_int(where, "divisor_override", divisor_override)


def max_pool2d_forward(x, kernel_size, stride, padding=(0, 0), out=None, indices=None,
                       ceil_mode=False, dilation=(1, 1)):
    where = "max_pool2d_forward"
    x = _contiguous_input(where, "x", x, ndim=4)
    ceil_mode = check_flag(where, "ceil_mode", ceil_mode)
    kernel_size, stride, padding, out_shape = _check_pool(where, x.shape, kernel_size, stride,
                                                          padding, ceil_mode, dilation)
    dilation = pair(where, "dilation", dilation)
    check_out(where, "out", out, out_shape, x.dtype)
    if indices is not None:
        _check_indices(where, indices, out_shape)
        if not _device.is_contiguous(indices):
            raise ValueError(f"{where}: expected indices to be C-contiguous, got "
                             f"{layout(indices)}")
        if isinstance(indices, np.ndarray) and not indices.flags.writeable:
            raise ValueError(f"{where}: expected indices to be writeable (the op writes it), "
                             f"got a read-only array")
    check_no_overlap(where, [("out", out), ("indices", indices)], [("x", x)])
    return _run("max_pool2d_forward", x, kernel_size, stride, padding, out=out, indices=indices,
                ceil_mode=ceil_mode, dilation=dilation)


def _check_indices(where, indices, shape):
    """int64 argmax indices of the pooled shape: TypeError for something that is no
    array, DtypeError (a TypeError and a ValueError, as the float arrays' and the labels'
    dtype errors) for another dtype, ValueError for the shape (as for the float arrays)."""
    if not _device.is_array(indices):
        raise TypeError(f"{where}: expected indices to be an int64 array, got "
                        f"{type(indices).__name__}")
    if indices.dtype != np.int64:
        raise DtypeError(f"{where}: expected indices to be an int64 array, got "
                         f"{indices.dtype}")
    if indices.shape != tuple(shape):
        raise ValueError(f"{where}: expected indices of shape {tuple(shape)}, "
                         f"got {indices.shape}")


def _check_input_shape(where, input_shape):
    if len(input_shape) != 4 or not all(isinstance(s, (int, np.integer)) for s in input_shape):
        raise ValueError(f"{where}: expected input_shape (N, C, H, W), got {input_shape!r}")
    return tuple(int(s) for s in input_shape)


def max_pool2d_backward(grad_out, indices, input_shape, grad_in=None):
    where = "max_pool2d_backward"
    grad_out = _contiguous_input(where, "grad_out", grad_out, ndim=4)
    input_shape = _check_input_shape(where, input_shape)
    if tuple(grad_out.shape[:2]) != input_shape[:2]:
        n, c = input_shape[:2]
        raise ValueError(f"{where}: expected grad_out of shape ({n}, {c}, H_out, W_out) (N and C "
                         f"of input_shape {input_shape}), got {grad_out.shape}")
    _check_indices(where, indices, grad_out.shape)
    check_out(where, "grad_in", grad_in, input_shape, grad_out.dtype)
    check_no_overlap(where, [("grad_in", grad_in)], [("grad_out", grad_out), ("indices", indices)])
    return _run("max_pool2d_backward", grad_out, as_contiguous(indices), input_shape,
                                    grad_in=grad_in)


def avg_pool2d_forward(x, kernel_size, stride, padding=(0, 0), count_include_pad=True,
                       out=None, ceil_mode=False, divisor_override=None):
    where = "avg_pool2d_forward"
    x = _contiguous_input(where, "x", x, ndim=4)
    ceil_mode = check_flag(where, "ceil_mode", ceil_mode)
    count_include_pad = check_flag(where, "count_include_pad", count_include_pad)
    divisor_override = _check_divisor(where, divisor_override)
    kernel_size, stride, padding, out_shape = _check_pool(where, x.shape, kernel_size, stride,
                                                          padding, ceil_mode)
    check_out(where, "out", out, out_shape, x.dtype)
    check_no_overlap(where, [("out", out)], [("x", x)])
    return _run("avg_pool2d_forward", x, kernel_size, stride, padding, count_include_pad,
                out=out, ceil_mode=ceil_mode, divisor_override=divisor_override)


def avg_pool2d_backward(grad_out, input_shape, kernel_size, stride, padding=(0, 0),
                        count_include_pad=True, grad_in=None, ceil_mode=False,
                        divisor_override=None):
    where = "avg_pool2d_backward"
    grad_out = _contiguous_input(where, "grad_out", grad_out, ndim=4)
    input_shape = _check_input_shape(where, input_shape)
    ceil_mode = check_flag(where, "ceil_mode", ceil_mode)
    count_include_pad = check_flag(where, "count_include_pad", count_include_pad)
    divisor_override = _check_divisor(where, divisor_override)
    kernel_size, stride, padding, out_shape = _check_pool(where, input_shape, kernel_size,
                                                          stride, padding, ceil_mode)
    _check(where, "grad_out", grad_out, shape=out_shape)
    check_out(where, "grad_in", grad_in, input_shape, grad_out.dtype)
    check_no_overlap(where, [("grad_in", grad_in)], [("grad_out", grad_out)])
    return _run("avg_pool2d_backward", grad_out, input_shape, kernel_size, stride, padding,
                count_include_pad, grad_in=grad_in, ceil_mode=ceil_mode,
                divisor_override=divisor_override)


# --------------------------------------------------------------------- optimizers
def _check_param_arrays(where, param, grad, optional=(), **state):
    """Check an update's arrays; returns grad, C-contiguous (a strided grad is only read,
    so it is copied; param and the state are written in place and must be contiguous).
    Every state buffer is required but those named in optional (None where unused)."""
    _check(where, "param", param)
    if not _device.is_contiguous(param):
        raise ValueError(f"{where}: param is updated in place and must be C-contiguous, got "
                         f"{layout(param)}")
    if isinstance(param, np.ndarray) and not param.flags.writeable:
        raise ValueError(f"{where}: param is updated in place and must be writeable, got a "
                         f"read-only array")
    if grad is None:
        raise ValueError(f"{where}: grad is required")
    grad = _contiguous_input(where, "grad", grad, dtype=param.dtype)
    check_same_shape(where, "grad", grad, "param", param)
    for name, arr in state.items():
        if arr is None and name not in optional:
            raise ValueError(f"{where}: {name} is required (a buffer of param's shape and "
                             f"dtype, updated in place)")
        check_out(where, name, arr, param.shape, param.dtype)
    return grad


def sgd_update(param, grad, velocity, lr, momentum=0.0, weight_decay=0.0, nesterov=False,
               dampening=0.0):
    where = "sgd_update"
    nesterov = check_flag(where, "nesterov", nesterov)
    grad = _check_param_arrays(where, param, grad, optional=("velocity",), velocity=velocity)
    check_number(where, "lr", lr, 0.0)
    check_number(where, "momentum", momentum, 0.0)   # torch.optim.SGD's only bound
    check_number(where, "weight_decay", weight_decay, 0.0)
    if momentum and velocity is None:
        raise ValueError(f"{where}: momentum {momentum} needs a velocity buffer")
    if nesterov and not momentum:
        raise ValueError(f"{where}: nesterov needs momentum > 0")
    check_number(where, "dampening", dampening, 0.0, 1.0, high_open=False)
    if nesterov and dampening:
        raise ValueError(f"{where}: nesterov needs dampening 0")
    check_no_overlap(where, [("param", param), ("velocity", velocity)], [("grad", grad)])
    return _run("sgd_update", param, grad, velocity, lr, momentum, weight_decay, nesterov,
                dampening)


def adam_update(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999,
                eps=1e-8, weight_decay=0.0, max_exp_avg_sq=None):
    where = "adam_update"
    grad = _check_param_arrays(where, param, grad, optional=("max_exp_avg_sq",),
                               exp_avg=exp_avg, exp_avg_sq=exp_avg_sq,
                               max_exp_avg_sq=max_exp_avg_sq)
    _check_step(where, step)
    check_number(where, "lr", lr, 0.0)
    _check_betas(where, beta1, beta2)
    check_number(where, "eps", eps, 0.0)
    check_number(where, "weight_decay", weight_decay, 0.0)
    check_no_overlap(where, [("param", param), ("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq),
                             ("max_exp_avg_sq", max_exp_avg_sq)], [("grad", grad)])
    return _run("adam_update", param, grad, exp_avg, exp_avg_sq, int(step), lr, beta1, beta2, eps,
                weight_decay, max_exp_avg_sq)


def _check_step(where, step):
    # (the compiled kernels take the step count as an int64)
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) \
            or not 1 <= step <= np.iinfo(np.int64).max:
        raise ValueError(f"{where}: expected step to be an int in [1, 2**63 - 1], got "
                         f"{step!r}")


def _check_betas(where, beta1, beta2):
    check_number(where, "beta1", beta1, 0.0, 1.0)
    check_number(where, "beta2", beta2, 0.0, 1.0)


def adamax_update(param, grad, exp_avg, exp_inf, step, lr=2e-3, beta1=0.9, beta2=0.999,
                  eps=1e-8, weight_decay=0.0):
    where = "adamax_update"
    grad = _check_param_arrays(where, param, grad, exp_avg=exp_avg, exp_inf=exp_inf)
    _check_step(where, step)
    check_number(where, "lr", lr, 0.0)
    _check_betas(where, beta1, beta2)
    check_number(where, "eps", eps, 0.0)
    check_number(where, "weight_decay", weight_decay, 0.0)
    check_no_overlap(where, [("param", param), ("exp_avg", exp_avg), ("exp_inf", exp_inf)],
                     [("grad", grad)])
    return _run("adamax_update", param, grad, exp_avg, exp_inf, int(step), lr, beta1, beta2,
                eps, weight_decay)


def adaptive_moments_update(param, grad, exp_avg, exp_avg_sq, avg_rate, grad_rate=0.0,
                            beta1=0.9, beta2=0.999, sq_scale=1.0, eps=1e-8,
                            weight_decay=0.0):
    where = "adaptive_moments_update"
    grad = _check_param_arrays(where, param, grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq)
    check_number(where, "avg_rate", avg_rate, 0.0)
    check_number(where, "grad_rate", grad_rate, 0.0)
    _check_betas(where, beta1, beta2)
    check_number(where, "sq_scale", sq_scale, 0.0)
    check_number(where, "eps", eps, 0.0)
    check_number(where, "weight_decay", weight_decay, 0.0)
    check_no_overlap(where, [("param", param), ("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)],
                     [("grad", grad)])
    return _run("adaptive_moments_update", param, grad, exp_avg, exp_avg_sq, avg_rate,
                grad_rate, beta1, beta2, sq_scale, eps, weight_decay)


def rmsprop_update(param, grad, square_avg, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
                   momentum=0.0, momentum_buffer=None, grad_avg=None):
    where = "rmsprop_update"
    grad = _check_param_arrays(where, param, grad, optional=("momentum_buffer", "grad_avg"),
                               square_avg=square_avg, momentum_buffer=momentum_buffer,
                               grad_avg=grad_avg)
    check_number(where, "lr", lr, 0.0)
    # torch.optim.RMSprop's bounds: alpha and momentum at least 0
    check_number(where, "alpha", alpha, 0.0)
    check_number(where, "eps", eps, 0.0)
    check_number(where, "weight_decay", weight_decay, 0.0)
    check_number(where, "momentum", momentum, 0.0)
    if momentum and momentum_buffer is None:
        raise ValueError(f"{where}: momentum {momentum} needs a momentum_buffer")
    check_no_overlap(where, [("param", param), ("square_avg", square_avg),
                             ("momentum_buffer", momentum_buffer), ("grad_avg", grad_avg)],
                     [("grad", grad)])
    return _run("rmsprop_update", param, grad, square_avg, lr, alpha, eps, weight_decay,
                momentum, momentum_buffer, grad_avg)


def adagrad_update(param, grad, state_sum, lr=1e-2, weight_decay=0.0, eps=1e-10):
    where = "adagrad_update"
    grad = _check_param_arrays(where, param, grad, state_sum=state_sum)
    check_number(where, "lr", lr, 0.0)
    check_number(where, "weight_decay", weight_decay, 0.0)
    check_number(where, "eps", eps, 0.0)
    check_no_overlap(where, [("param", param), ("state_sum", state_sum)], [("grad", grad)])
    return _run("adagrad_update", param, grad, state_sum, lr, weight_decay, eps)


def adadelta_update(param, grad, square_avg, acc_delta, lr=1.0, rho=0.9, eps=1e-6,
                    weight_decay=0.0, maximize=False):
    where = "adadelta_update"
    grad = _check_param_arrays(where, param, grad, square_avg=square_avg, acc_delta=acc_delta)
    check_number(where, "lr", lr, 0.0)
    check_number(where, "rho", rho, 0.0, 1.0, high_open=False)
    check_number(where, "eps", eps, 0.0)
    check_number(where, "weight_decay", weight_decay, 0.0)
    maximize = check_flag(where, "maximize", maximize)
    check_no_overlap(where, [("param", param), ("square_avg", square_avg),
                             ("acc_delta", acc_delta)], [("grad", grad)])
    return _run("adadelta_update", param, grad, square_avg, acc_delta, lr, rho, eps,
                weight_decay, maximize)


def rprop_update(param, grad, prev, step_size, etaminus=0.5, etaplus=1.2,
                 step_size_min=1e-6, step_size_max=50.0, maximize=False):
    where = "rprop_update"
    grad = _check_param_arrays(where, param, grad, prev=prev, step_size=step_size)
    check_number(where, "etaminus", etaminus, 0.0, 1.0, low_open=True)
    check_number(where, "etaplus", etaplus, 1.0, low_open=True)
    check_number(where, "step_size_min", step_size_min)
    check_number(where, "step_size_max", step_size_max)
    maximize = check_flag(where, "maximize", maximize)
    check_no_overlap(where, [("param", param), ("prev", prev), ("step_size", step_size)],
                     [("grad", grad)])
    return _run("rprop_update", param, grad, prev, step_size, etaminus, etaplus,
                step_size_min, step_size_max, maximize)


def asgd_update(param, grad, ax, eta, mu, lambd=1e-4, weight_decay=0.0, maximize=False):
    where = "asgd_update"
    grad = _check_param_arrays(where, param, grad, ax=ax)
    check_number(where, "eta", eta, 0.0)
    check_number(where, "mu", mu, 0.0, 1.0, high_open=False)
    check_number(where, "lambd", lambd, 0.0)
    check_number(where, "weight_decay", weight_decay, 0.0)
    maximize = check_flag(where, "maximize", maximize)
    check_no_overlap(where, [("param", param), ("ax", ax)], [("grad", grad)])
    return _run("asgd_update", param, grad, ax, eta, mu, lambd, weight_decay, maximize)


def _attach_docs():
    for name in optable.op_names():
        globals()[name].__doc__ = optable.op_spec(name).__doc__


_attach_docs()
