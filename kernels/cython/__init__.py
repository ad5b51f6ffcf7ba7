"""The 'cython' backend: every op of ``fastnn.optable`` compiled ahead of time.

Kernels live in one extension per op family (``_dense``, ``_activations``,
``_softmax``, ``_losses``, ``_batchnorm``, ``_layernorm``, ``_dropout``, ``_optim``,
``_conv``, ``_depthwise``), written over the fused type ``floating`` (float32/float64) with
``prange``/OpenMP loops and BLAS from ``scipy.linalg.cython_blas`` called without the
GIL. This module holds the thin wrappers with the op table's exact signatures: they
allocate ``out`` when it is None, hand the kernels contiguous (flat where the op is
elementwise) views, and return what the op table says. Inputs are assumed valid
(``fastnn.ops`` validates).

Building with ``FASTNN_CYTHON_DEBUG=1`` turns bounds, wraparound and
initialisation checks back on in every kernel and fills each work buffer with NaN as it
is handed out (_workspace.h; see setup.py and tests/test_cython_build.py).
"""
from ... import threads as _threads

import functools  # noqa: E402

import numpy as np  # noqa: E402

from ... import blas_pool, mkl_blas  # noqa: E402
from ... import optable as _optable  # noqa: E402
from ..gemm_shapes import transposed_forward  # noqa: E402
from ..moments import denominator_factors  # noqa: E402
from ..numpy_product import numpy_multiplies  # noqa: E402
from ..scratch import scratch  # noqa: E402
from .. import prefetching as _prefetching  # noqa: E402
from .. import streaming as _streaming  # noqa: E402
from . import (_activations, _batchnorm, _dense, _dropout, _layernorm, _losses,  # noqa: E402
               _openmp, _optim, _softmax)
from ._depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward  # noqa: E402

# SciPy's OpenBLAS runs its threads on this OpenMP pool (fastnn/blas_pool.py); where it
# cannot, `import fastnn` set GOMP_SPINCOUNT before libgomp loaded (fastnn/threads.py).
blas_pool.use_openmp_pool()
# the Linear products: Intel MKL when its wheel is installed (fastnn/mkl_blas.py), else
# NumPy's OpenBLAS when it is on the pool too, else SciPy's
_linear_gemm = mkl_blas.gemm_addresses() or blas_pool.numpy_gemm_addresses()
_linear_on_mkl = _linear_gemm is not None and _linear_gemm == mkl_blas.gemm_addresses()
if _linear_gemm is not None:
    _dense.use_ilp64_gemm(*_linear_gemm)
_threads.warn_if_spin_too_late("cython")
# large elementwise outputs are written with streaming stores (kernels/streaming.py)
_streaming.on_change(_activations.set_stream_min_bytes)
# the compute-bound ones prefetch their inputs, except on AMD CPUs (kernels/prefetching.py)
_activations.set_prefetching(_prefetching.enabled())

try:  # noqa: E402  the conv engineer's kernels join when their extension is built
    from ._conv import (avg_pool2d_backward, avg_pool2d_forward, conv2d_backward,
                        conv2d_forward, max_pool2d_backward, max_pool2d_forward)
    from . import _conv
    from ..pixel_conv import route_one_pixel
    _route_convs = True
    # the conv products on MKL too when the Linear ones are (not on NumPy's OpenBLAS:
    # called from the kernels' threads its jobs would start threads of their own)
    if _linear_on_mkl:
        _conv.use_mkl_gemm(*_linear_gemm)
    REUSES = {}
except ImportError:
    _route_convs = False
    REUSES = {op: "reference" for op in (
        "conv2d_forward", "conv2d_backward", "max_pool2d_forward", "max_pool2d_backward",
        "avg_pool2d_forward", "avg_pool2d_backward")}

_ACT = {"identity": 0, "relu": 1, "leaky_relu": 2, "sigmoid": 3, "tanh": 4}

# operation codes of _activations.unary / _activations.binary
(_U_RELU, _U_LEAKY, _U_SIGMOID, _U_TANH, _U_GELU, _U_SINE, _U_SILU, _U_ELU, _U_SOFTPLUS,
 _U_HARDTANH, _U_SOFTSIGN, _U_GELU_TANH, _U_MISH, _U_HARDSIGMOID, _U_HARDSWISH) = range(15)
(_B_RELU, _B_LEAKY, _B_SIGMOID, _B_TANH, _B_GELU, _B_SINE, _B_MUL, _B_SILU, _B_ELU, _B_SOFTPLUS,
 _B_HARDTANH, _B_SOFTSIGN, _B_GELU_TANH, _B_MISH, _B_HARDSIGMOID, _B_HARDSWISH) = range(16)
_R_SOFTMAX, _R_LOG_SOFTMAX = range(2)  # _softmax.rows_forward / rows_backward


def backend_info():
    """Build facts of this backend: OpenMP on or off, the thread count in use,
    whether this is the FASTNN_CYTHON_DEBUG=1 build (bounds checks on), and the CPU
    features it was compiled for: 'fma' and 'simd' (False and 'sse4.2' in a portable
    FASTNN_NATIVE=0 build on x86-64, for x86-64-v2; 'sse2' where the compiler that
    built it lacked that target)."""
    # OpenMP's count is per thread: read it as an op runs (_per_thread_count applies
    # fastnn's first), so the count reported is the one this thread's next op runs with
    count = (_per_thread_count(_openmp.get_max_threads) if _openmp.openmp_enabled()
             else _openmp.get_max_threads)
    return {"openmp": bool(_openmp.openmp_enabled()),
            "num_threads": int(count()),
            "debug": bool(_openmp.bounds_checked()),
            "fma": _openmp.hardware_fma(),
            "simd": _openmp.simd(),
            "blas": _linear_blas(),
            "blas_threads": blas_pool.describe()}


def _linear_blas():
    if not _dense.ilp64_gemm_in_use():
        return "scipy.linalg.cython_blas"
    if _linear_on_mkl:
        return mkl_blas.describe() + " for Linear and conv"
    return "NumPy's OpenBLAS (ILP64) for Linear, scipy.linalg.cython_blas for conv"


def _like(x, out):
    return np.empty_like(x) if out is None else out


# --------------------------------------------------------------------------- dense
def linear_forward(x, weight, bias=None, activation="identity", negative_slope=0.01, out=None):
    """y = act(x @ weight.T + bias): one GEMM and one fused bias/activation pass.

    x: (N, in); weight: (out_features, in); bias: (out_features,) or None;
    out: (N, out_features) or None. Returns y.
    """
    n, fout = x.shape[0], weight.shape[0]
    if out is None:
        out = np.empty((n, fout), dtype=x.dtype)
    transposed = None
    if n and fout and transposed_forward(n, fout, _linear_on_mkl):  # kernels/gemm_shapes.py
        transposed = scratch("linear_forward_t", (fout, n), x.dtype)
    _dense.linear_forward(x, weight, bias, _ACT[activation], negative_slope, out, transposed)
    return out


def linear_backward(grad_out, x, weight, y=None, activation="identity", negative_slope=0.01,
                    grad_weight=None, grad_bias=None, grad_in=None, need_grad_in=True,
                    scratch=None, accumulate=True):
    """Backward of linear_forward: act' and the bias sum fused, then two GEMMs, the
    first accumulating into grad_weight (beta = 1; beta = 0, overwriting grad_weight and
    grad_bias, when not accumulate).

    grad_out, y, scratch: (N, out_features); x, grad_in: (N, in);
    weight, grad_weight: (out_features, in); grad_bias: (out_features,).
    Returns grad_in (N, in), or None when not need_grad_in.
    """
    act = _ACT[activation]
    if act and scratch is None:
        scratch = np.empty_like(grad_out)
    if need_grad_in and grad_in is None:
        grad_in = np.empty_like(x)
    _dense.linear_backward(grad_out, x, weight, y if act else None, act, negative_slope,
                           grad_weight, grad_bias, grad_in if need_grad_in else None,
                           scratch if act else None, bool(accumulate))
    return grad_in if need_grad_in else None


if _route_convs:   # a conv of 1x1 planes under a 1x1 kernel is a Linear (pixel_conv.py)
    conv2d_forward, conv2d_backward = route_one_pixel(conv2d_forward, conv2d_backward,
                                                      linear_forward, linear_backward)


# --------------------------------------------------------------------- activations
def _unary(op, x, out, a=0.0, b=0.0):
    if type(x) is not np.ndarray:   # (a layer's arithmetic on a 0-d array: a NumPy scalar)
        x = np.asarray(x)
    out = _like(x, out)
    _activations.unary(op, x, out, a, b)
    return out


def _binary(op, grad_out, saved, out, a=0.0, b=0.0):
    if type(grad_out) is not np.ndarray:
        grad_out = np.asarray(grad_out)
    if type(saved) is not np.ndarray:
        saved = np.asarray(saved)
    out = _like(grad_out, out)
    _activations.binary(op, grad_out, saved, out, a, b)
    return out


def relu(x, out=None):
    """y = max(x, 0). x: any shape; out: same shape."""
    return _unary(_U_RELU, x, out)


def relu_backward(grad_out, y, out=None):
    """grad_in = grad_out * (y > 0). grad_out, y: same shape."""
    return _binary(_B_RELU, grad_out, y, out)


def leaky_relu(x, negative_slope=0.01, out=None):
    """y = x if x > 0 else negative_slope * x. x: any shape."""
    return _unary(_U_LEAKY, x, out, negative_slope)


def leaky_relu_backward(grad_out, x, negative_slope=0.01, out=None):
    """grad_in = grad_out * (1 if x > 0 else negative_slope). x: the forward input."""
    return _binary(_B_LEAKY, grad_out, x, out, negative_slope)


def sigmoid(x, out=None):
    """y = 1 / (1 + exp(-x)), overflow-free. x: any shape."""
    return _unary(_U_SIGMOID, x, out)


def sigmoid_backward(grad_out, y, out=None):
    """grad_in = grad_out * y * (1 - y). y: sigmoid's output."""
    return _binary(_B_SIGMOID, grad_out, y, out)


def tanh(x, out=None):
    """y = tanh(x). x: any shape."""
    return _unary(_U_TANH, x, out)


def tanh_backward(grad_out, y, out=None):
    """grad_in = grad_out * (1 - y**2). y: tanh's output."""
    return _binary(_B_TANH, grad_out, y, out)


def gelu(x, out=None):
    """y = 0.5 * x * (1 + erf(x / sqrt(2))). x: any shape."""
    return _unary(_U_GELU, x, out)


def gelu_backward(grad_out, x, out=None):
    """grad_in = grad_out * (Phi(x) + x * phi(x)). x: the forward input."""
    return _binary(_B_GELU, grad_out, x, out)


def sine(x, omega=1.0, out=None):
    """y = sin(omega * x). x: any shape."""
    return _unary(_U_SINE, x, out, omega)


def sine_backward(grad_out, x, omega=1.0, out=None):
    """grad_in = grad_out * omega * cos(omega * x). x: the forward input."""
    return _binary(_B_SINE, grad_out, x, out, omega)


def silu(x, out=None):
    """y = x * sigmoid(x). x: any shape."""
    return _unary(_U_SILU, x, out)


def silu_backward(grad_out, x, out=None):
    """grad_in = grad_out * s * (1 + x * (1 - s)), s = sigmoid(x). x: the forward input."""
    return _binary(_B_SILU, grad_out, x, out)


def elu(x, alpha=1.0, out=None):
    """y = x if x > 0 else alpha * (exp(x) - 1). x: any shape."""
    return _unary(_U_ELU, x, out, alpha)


def elu_backward(grad_out, x, alpha=1.0, out=None):
    """grad_in = grad_out * (1 if x > 0 else alpha * exp(x)). x: the forward input."""
    return _binary(_B_ELU, grad_out, x, out, alpha)


def softplus(x, beta=1.0, threshold=20.0, out=None):
    """y = log(1 + exp(beta x)) / beta, or x where beta x > threshold. x: any shape."""
    return _unary(_U_SOFTPLUS, x, out, beta, threshold)


def softplus_backward(grad_out, x, beta=1.0, threshold=20.0, out=None):
    """grad_in = grad_out * sigmoid(beta x), or grad_out where beta x > threshold."""
    return _binary(_B_SOFTPLUS, grad_out, x, out, beta, threshold)


def gelu_tanh(x, out=None):
    """y = 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))). x: any shape."""
    return _unary(_U_GELU_TANH, x, out)


def gelu_tanh_backward(grad_out, x, out=None):
    """The gradient of gelu_tanh; x: the forward input."""
    return _binary(_B_GELU_TANH, grad_out, x, out)


def mish(x, out=None):
    """y = x tanh(softplus(x)). x: any shape."""
    return _unary(_U_MISH, x, out)


def mish_backward(grad_out, x, out=None):
    """grad_in = grad_out (t + x (1 - t^2) sigmoid(x)), t = tanh(softplus(x))."""
    return _binary(_B_MISH, grad_out, x, out)


def hardsigmoid(x, out=None):
    """y = min(max(x + 3, 0), 6) / 6. x: any shape."""
    return _unary(_U_HARDSIGMOID, x, out)


def hardsigmoid_backward(grad_out, x, out=None):
    """grad_in = grad_out / 6 where -3 < x < 3, else 0."""
    return _binary(_B_HARDSIGMOID, grad_out, x, out)


def hardswish(x, out=None):
    """y = x * min(max(x + 3, 0), 6) / 6. x: any shape."""
    return _unary(_U_HARDSWISH, x, out)


def hardswish_backward(grad_out, x, out=None):
    """grad_in = 0 (x <= -3), grad_out (x >= 3), grad_out (x / 3 + 1/2) between."""
    return _binary(_B_HARDSWISH, grad_out, x, out)


def softsign(x, out=None):
    """y = x / (1 + |x|). x: any shape."""
    return _unary(_U_SOFTSIGN, x, out)


def softsign_backward(grad_out, x, out=None):
    """grad_in = grad_out / (1 + |x|)^2."""
    return _binary(_B_SOFTSIGN, grad_out, x, out)


def hardtanh(x, min_val=-1.0, max_val=1.0, out=None):
    """y = min(max(x, min_val), max_val). x: any shape."""
    return _unary(_U_HARDTANH, x, out, min_val, max_val)


def hardtanh_backward(grad_out, x, min_val=-1.0, max_val=1.0, out=None):
    """grad_in = 0 where x <= min_val or x >= max_val, else grad_out."""
    return _binary(_B_HARDTANH, grad_out, x, out, min_val, max_val)


def softmax(x, out=None):
    """Row-wise softmax. x, out: (N, C)."""
    out = _like(x, out)
    _softmax.rows_forward(_R_SOFTMAX, x, out)
    return out


def softmax_backward(grad_out, y, out=None):
    """grad_in = y * (grad_out - sum(grad_out * y, axis=1)). grad_out, y, out: (N, C)."""
    out = _like(grad_out, out)
    _softmax.rows_backward(_R_SOFTMAX, grad_out, y, out)
    return out


def log_softmax(x, out=None):
    """Row-wise log-softmax. x, out: (N, C)."""
    out = _like(x, out)
    _softmax.rows_forward(_R_LOG_SOFTMAX, x, out)
    return out


def log_softmax_backward(grad_out, y, out=None):
    """grad_in = grad_out - exp(y) * sum(grad_out, axis=1). grad_out, y, out: (N, C)."""
    out = _like(grad_out, out)
    _softmax.rows_backward(_R_LOG_SOFTMAX, grad_out, y, out)
    return out


# ------------------------------------------------------------------------ dropout
def dropout_forward(x, p, seed, mask=None, out=None):
    """Inverted dropout with a counter-based hash mask of (seed, index).

    x, mask, out: same shape. Returns (y, mask), mask holding 0 or 1/(1-p).
    """
    mask = _like(x, mask)
    out = _like(x, out)
    _dropout.dropout_forward(x, p, seed, mask, out)
    return out, mask


def dropout_backward(grad_out, mask, out=None):
    """grad_in = grad_out * mask. grad_out, mask, out: same shape."""
    if numpy_multiplies(grad_out.nbytes, grad_out.size):  # the same bits, sooner
        return np.multiply(grad_out, mask, out=out)
    return _binary(_B_MUL, grad_out, mask, out)


# -------------------------------------------------------------------------- losses
def softmax_cross_entropy(logits, target, grad=None):
    """Mean softmax cross-entropy and its gradient in one pass over each row.

    logits, grad: (N, C); target: (N,) int64 labels or (N, C) probabilities.
    Returns (loss, grad) with grad = (softmax(logits) - onehot(target)) / N (for
    probabilities (softmax(logits) * target.sum(1) - target) / N).
    """
    grad = _like(logits, grad)
    if target.ndim == 1:
        loss = _losses.softmax_cross_entropy_labels(logits, target, grad)
    else:
        loss = _losses.softmax_cross_entropy_probs(logits, target, grad)
    return float(loss), grad


def mse_loss(pred, target, grad=None):
    """Mean squared error and its gradient 2 (pred - target) / size. All same shape."""
    grad = _like(pred, grad)
    return float(_losses.mse_loss(pred, target, grad)), grad


def bce_loss(pred, target, grad=None):
    """Mean binary cross-entropy (logs clamped at -100) and its gradient. Same shapes."""
    grad = _like(pred, grad)
    return float(_losses.bce_loss(pred, target, grad)), grad


def smooth_l1_loss(pred, target, beta=1.0, grad=None):
    """Mean smooth-L1 loss (L1 at beta = 0) and its gradient. pred, target, grad: same
    shape. Returns (loss, grad)."""
    grad = _like(pred, grad)
    return float(_losses.smooth_l1_loss(pred, target, float(beta), grad)), grad


def bce_with_logits_loss(logits, target, grad=None):
    """Mean binary cross-entropy of sigmoid(logits). logits, target, grad: same shape.
    Returns (loss, grad)."""
    grad = _like(logits, grad)
    return float(_losses.bce_with_logits_loss(logits, target, grad)), grad


# ---------------------------------------------------------------------- layernorm
def layer_norm_forward(x, weight=None, bias=None, eps=1e-5, out=None, save_mean=None,
                       save_invstd=None):
    """Layer normalisation of each row. x, out: (N, D); weight, bias: (D,) or None;
    save_mean, save_invstd: (N,) or None. Returns (y, save_mean, save_invstd)."""
    n = x.shape[0]
    out = _like(x, out)
    save_mean = np.empty(n, x.dtype) if save_mean is None else save_mean
    save_invstd = np.empty(n, x.dtype) if save_invstd is None else save_invstd
    _layernorm.layer_norm_forward(x, weight, bias, float(eps), out, save_mean, save_invstd)
    return out, save_mean, save_invstd


def layer_norm_backward(grad_out, x, weight, save_mean, save_invstd, grad_weight=None,
                        grad_bias=None, grad_in=None):
    """Backward of layer_norm_forward; accumulates grad_weight, grad_bias (D,) and
    returns grad_in (N, D)."""
    grad_in = _like(x, grad_in)
    _layernorm.layer_norm_backward(grad_out, x, weight, save_mean, save_invstd, grad_weight,
                                   grad_bias, grad_in)
    return grad_in


# ---------------------------------------------------------------------- batchnorm
def batchnorm_forward(x, weight, bias, running_mean, running_var, training=True,
                      momentum=0.1, eps=1e-5, mean_only=False, out=None,
                      save_mean=None, save_invstd=None):
    """Batch normalisation per channel. x, out: (N, C) or (N, C, H, W); weight, bias,
    running_mean, running_var, save_mean, save_invstd: (C,) (weight, running_var and
    save_invstd are None when mean_only). Returns (y, save_mean, save_invstd)."""
    c = x.shape[1]
    out = _like(x, out)
    if save_mean is None:
        save_mean = np.empty(c, dtype=x.dtype)
    if mean_only:
        save_invstd = None
    elif save_invstd is None:
        save_invstd = np.empty(c, dtype=x.dtype)
    _batchnorm.batchnorm_forward(x, weight, bias, running_mean, running_var, training,
                                 momentum, eps, mean_only, out, save_mean, save_invstd)
    return out, save_mean, save_invstd


def batchnorm_backward(grad_out, x, weight, save_mean, save_invstd, training=True,
                       mean_only=False, grad_weight=None, grad_bias=None, grad_in=None):
    """Backward of batchnorm_forward. grad_out, x, grad_in: (N, C) or (N, C, H, W);
    weight, save_mean, save_invstd, grad_weight, grad_bias: (C,), the gradients
    accumulated in place. Returns grad_in."""
    grad_in = _like(x, grad_in)
    _batchnorm.batchnorm_backward(grad_out, x, weight, save_mean, save_invstd, training,
                                  mean_only, grad_weight, grad_bias, grad_in)
    return grad_in


# --------------------------------------------------------------------- optimizers
def sgd_update(param, grad, velocity, lr, momentum=0.0, weight_decay=0.0, nesterov=False,
               dampening=0.0):
    """One SGD step in place (PyTorch's rule). param, grad, velocity: same shape
    (velocity may be None when momentum == 0). Returns None."""
    _optim.sgd_update(param, grad, velocity, float(lr), float(momentum),
                      float(weight_decay), bool(nesterov), float(dampening))


def adam_update(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999,
                eps=1e-8, weight_decay=0.0, max_exp_avg_sq=None):
    """One Adam step in place (PyTorch's rule; AMSGrad when max_exp_avg_sq is given).
    param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq: same shape; step: 1-based.
    Returns None."""
    _optim.adam_update(param, grad, exp_avg, exp_avg_sq, int(step), float(lr), float(beta1),
                       float(beta2), float(eps), float(weight_decay), max_exp_avg_sq)


def adagrad_update(param, grad, state_sum, lr=1e-2, weight_decay=0.0, eps=1e-10):
    """One Adagrad step in place at the step's rate lr (PyTorch's rule). param, grad,
    state_sum: same shape. Returns None."""
    _optim.adagrad_update(param, grad, state_sum, float(lr), float(weight_decay),
                          float(eps))


def adamax_update(param, grad, exp_avg, exp_inf, step, lr=2e-3, beta1=0.9, beta2=0.999,
                  eps=1e-8, weight_decay=0.0):
    """One Adamax step in place (PyTorch's rule). param, grad, exp_avg, exp_inf: same
    shape; step: 1-based. Returns None."""
    _optim.adamax_update(param, grad, exp_avg, exp_inf, int(step), float(lr), float(beta1),
                         float(beta2), float(eps), float(weight_decay))


def adaptive_moments_update(param, grad, exp_avg, exp_avg_sq, avg_rate, grad_rate=0.0,
                            beta1=0.9, beta2=0.999, sq_scale=1.0, eps=1e-8,
                            weight_decay=0.0):
    """NAdam's and RAdam's step in place with the rates their optimizers computed
    (fastnn.optable). Arrays: same shape. Returns None."""
    divisor, scale = denominator_factors(sq_scale, param.dtype)
    _optim.adaptive_moments_update(param, grad, exp_avg, exp_avg_sq, float(avg_rate),
                                   float(grad_rate), float(beta1), float(beta2), divisor,
                                   scale, float(eps), float(weight_decay))


def rmsprop_update(param, grad, square_avg, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
                   momentum=0.0, momentum_buffer=None, grad_avg=None):
    """One RMSprop step in place (PyTorch's rule; centered when grad_avg is given).
    param, grad, square_avg, momentum_buffer, grad_avg: same shape. Returns None."""
    _optim.rmsprop_update(param, grad, square_avg, grad_avg, momentum_buffer, float(lr),
                          float(alpha), float(eps), float(weight_decay), float(momentum))


def adadelta_update(param, grad, square_avg, acc_delta, lr=1.0, rho=0.9, eps=1e-6,
                    weight_decay=0.0, maximize=False):
    """One Adadelta step in place (PyTorch's rule). param, grad, square_avg, acc_delta:
    same shape. Returns None."""
    _optim.adadelta_update(param, grad, square_avg, acc_delta, float(lr), float(rho),
                           float(eps), float(weight_decay), bool(maximize))


def rprop_update(param, grad, prev, step_size, etaminus=0.5, etaplus=1.2,
                 step_size_min=1e-6, step_size_max=50.0, maximize=False):
    """One Rprop step in place (PyTorch's rule). param, grad, prev, step_size: same
    shape. Returns None."""
    _optim.rprop_update(param, grad, prev, step_size, float(etaminus), float(etaplus),
                        float(step_size_min), float(step_size_max), bool(maximize))


def asgd_update(param, grad, ax, eta, mu, lambd=1e-4, weight_decay=0.0, maximize=False):
    """One ASGD step in place at the parameter's eta and mu (PyTorch's rule). param,
    grad, ax: same shape. Returns None."""
    _optim.asgd_update(param, grad, ax, float(eta), float(mu), float(lambd),
                       float(weight_decay), bool(maximize))


# OpenMP's thread count is per calling thread: omp_set_num_threads (what
# fastnn.set_num_threads calls) sets the calling thread's count only, and every other
# Python thread's regions kept OpenMP's start-up default (all cores), so after
# set_num_threads(1) a worker thread's kernels still ran on every core, and the conv ops,
# whose per-thread partial sums follow the thread count, gave other bits there than in
# the main thread. Each op applies fastnn's count to the thread that calls it (as the
# numba backend's sync_threads does); one C call when nothing changed.
def _per_thread_count(op, wanted=_threads.openmp_num_threads, get=_openmp.get_max_threads,
                      set_=_openmp.set_num_threads):
    @functools.wraps(op)
    def run(*args, **kwargs):
        n = wanted()
        if get() != n:
            set_(n)
        return op(*args, **kwargs)
    return run


if _openmp.openmp_enabled():
    for _name in _optable.op_names():
        if _name not in REUSES and _name in globals():
            globals()[_name] = _per_thread_count(globals()[_name])
    del _name

_threads.apply_num_threads()
