"""The op table: every kernel fastnn has, named and documented once.

Each function below is a *specification*: its name, parameters and defaults are
what every backend (``fastnn.kernels.reference``, ``numba_cpu``, ``cython``,
``cuda``) must provide, and its docstring gives the shapes. The bodies are empty;
the NumPy reference backend (``kernels/reference``) is the readable implementation.

Conventions shared by all ops:

* Arrays are C-contiguous float32 or float64 (all floating arrays of one call share
  one dtype); labels are int64. ``fastnn.ops`` validates before dispatching, so
  kernels assume valid input.
* ``out=`` (and ``grad_in=``, ``grad=``...) may be given to reuse a buffer; the op
  writes into it and returns it. When omitted the op allocates.
* Parameter gradients (``grad_weight``, ``grad_bias``) are *accumulated*
  (``+=``), as PyTorch accumulates ``.grad`` until ``zero_grad()``
  (``linear_backward(accumulate=False)`` overwrites them instead).
* Activations that a Linear layer can fuse are those whose derivative can be
  computed from the output alone: ``FUSABLE_ACTIVATIONS``.
"""
import inspect

FUSABLE_ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "tanh")

OP_FAMILIES = {}


def _op(family):
    def register(fn):
        OP_FAMILIES.setdefault(family, []).append(fn.__name__)
        fn.family = family
        return fn
    return register


# --------------------------------------------------------------------------- dense
@_op("dense")
def linear_forward(x, weight, bias=None, activation="identity", negative_slope=0.01, out=None):
    """y = act(x @ weight.T + bias), bias add and activation fused.

    x: (N, in); weight: (out_features, in); bias: (out_features,) or None;
    activation: one of FUSABLE_ACTIVATIONS (negative_slope: the slope of 'leaky_relu');
    out: (N, out_features) or None. Returns y: (N, out_features).
    """


@_op("dense")
def linear_backward(grad_out, x, weight, y=None, activation="identity", negative_slope=0.01,
                    grad_weight=None, grad_bias=None, grad_in=None, need_grad_in=True,
                    scratch=None, accumulate=True):
    """Backward of ``linear_forward``.

    grad_out: (N, out_features), gradient of the loss w.r.t. y (not modified);
    x: (N, in); weight: (out_features, in); y: (N, out_features), the forward output,
    needed unless activation is 'identity'; activation, negative_slope: the forward's;
    grad_weight: (out_features, in) and
    grad_bias: (out_features,) or None, accumulated in place (g.T @ x, g.sum(0)) where
    g = grad_out * act'(y), or overwritten with those values when accumulate is False
    (what a gradient zeroed by ``zero_grad()`` needs: the product then never reads the
    old values); grad_in: (N, in) or None, written; scratch: (N, out_features) buffer
    for g, or None. Returns grad_in = g @ weight, or None if not need_grad_in.
    """


# --------------------------------------------------------------------- activations
@_op("activation")
def relu(x, out=None):
    """y = max(x, 0). x: any shape; out: same shape. Returns y."""


@_op("activation")
def relu_backward(grad_out, y, out=None):
    """grad_in = grad_out * (y > 0). grad_out, y: same shape (y is relu's output); out:
    same shape or None. Returns grad_in."""


@_op("activation")
def leaky_relu(x, negative_slope=0.01, out=None):
    """y = x if x > 0 else negative_slope * x. x: any shape; out: same shape or None.
    Returns y."""


@_op("activation")
def leaky_relu_backward(grad_out, x, negative_slope=0.01, out=None):
    """grad_in = grad_out * (1 if x > 0 else negative_slope). grad_out, x: same shape (x
    is the forward input); out: same shape or None. Returns grad_in."""


@_op("activation")
def sigmoid(x, out=None):
    """y = 1 / (1 + exp(-x)), overflow-free for any x. x: any shape; out: same shape or
    None. Returns y."""


@_op("activation")
def sigmoid_backward(grad_out, y, out=None):
    """grad_in = grad_out * y * (1 - y). grad_out, y: same shape (y is sigmoid's
    output); out: same shape or None. Returns grad_in."""


@_op("activation")
def tanh(x, out=None):
    """y = tanh(x). x: any shape; out: same shape or None. Returns y."""


@_op("activation")
def tanh_backward(grad_out, y, out=None):
    """grad_in = grad_out * (1 - y**2). grad_out, y: same shape (y is tanh's output);
    out: same shape or None. Returns grad_in."""


@_op("activation")
def gelu(x, out=None):
    """y = x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))), PyTorch's exact GELU. x: any
    shape; out: same shape or None. Returns y."""


@_op("activation")
def gelu_backward(grad_out, x, out=None):
    """grad_in = grad_out * (Phi(x) + x * phi(x)). grad_out, x: same shape (x is the
    forward input); out: same shape or None. Returns grad_in."""


@_op("activation")
def gelu_tanh(x, out=None):
    """y = 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))), PyTorch's
    GELU(approximate='tanh'). x: any shape; out: same shape or None. Returns y."""


@_op("activation")
def gelu_tanh_backward(grad_out, x, out=None):
    """grad_in = grad_out * (0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2 / pi) (1 + 0.134145
    x^2)), t = tanh(sqrt(2 / pi) (x + 0.044715 x^3)). grad_out, x: same shape (x is the
    forward input); out: same shape or None. Returns grad_in."""


@_op("activation")
def mish(x, out=None):
    """y = x * tanh(softplus(x)) (Mish). x: any shape; out: same shape or None. Returns
    y."""


@_op("activation")
def mish_backward(grad_out, x, out=None):
    """grad_in = grad_out * (t + x (1 - t^2) sigmoid(x)), t = tanh(softplus(x)).
    grad_out, x: same shape (x is the forward input); out: same shape or None. Returns
    grad_in."""


@_op("activation")
def sine(x, omega=1.0, out=None):
    """y = sin(omega * x). x: any shape; out: same shape or None. Returns y."""


@_op("activation")
def sine_backward(grad_out, x, omega=1.0, out=None):
    """grad_in = grad_out * omega * cos(omega * x). grad_out, x: same shape (x is the
    forward input); out: same shape or None. Returns grad_in."""


@_op("activation")
def silu(x, out=None):
    """y = x * sigmoid(x) (SiLU, also called swish), overflow-free. x: any shape; out:
    same shape or None. Returns y."""


@_op("activation")
def silu_backward(grad_out, x, out=None):
    """grad_in = grad_out * s * (1 + x * (1 - s)), s = sigmoid(x). grad_out, x: same
    shape (x is the forward input); out: same shape or None. Returns grad_in."""


@_op("activation")
def elu(x, alpha=1.0, out=None):
    """y = x if x > 0 else alpha * (exp(x) - 1). x: any shape; out: same shape or None.
    Returns y."""


@_op("activation")
def elu_backward(grad_out, x, alpha=1.0, out=None):
    """grad_in = grad_out * (1 if x > 0 else alpha * exp(x)) (NaN where x is NaN).
    grad_out, x: same shape (x is the forward input); out: same shape or None. Returns
    grad_in."""


@_op("activation")
def softplus(x, beta=1.0, threshold=20.0, out=None):
    """y = log(1 + exp(beta * x)) / beta, or x where beta * x > threshold. x: any shape;
    out: same shape or None. Returns y."""


@_op("activation")
def softplus_backward(grad_out, x, beta=1.0, threshold=20.0, out=None):
    """grad_in = grad_out * sigmoid(beta * x), or grad_out where beta * x > threshold.
    grad_out, x: same shape (x is the forward input); out: same shape or None. Returns
    grad_in."""


@_op("activation")
def hardsigmoid(x, out=None):
    """y = min(max(x + 3, 0), 6) / 6 (Hardsigmoid). x: any shape; out: same shape or
    None. Returns y."""


@_op("activation")
def hardsigmoid_backward(grad_out, x, out=None):
    """grad_in = grad_out / 6 where -3 < x < 3, else 0. grad_out, x: same shape (x is
    the forward input); out: same shape or None. Returns grad_in."""


@_op("activation")
def hardswish(x, out=None):
    """y = x * min(max(x + 3, 0), 6) / 6 (Hardswish, MobileNetV3). x: any shape; out:
    same shape or None. Returns y."""


@_op("activation")
def hardswish_backward(grad_out, x, out=None):
    """grad_in = 0 where x <= -3, grad_out where x >= 3, grad_out (x / 3 + 1/2) between
    (NaN where x is NaN). grad_out, x: same shape (x is the forward input); out: same
    shape or None. Returns grad_in."""


@_op("activation")
def softsign(x, out=None):
    """y = x / (1 + |x|). x: any shape; out: same shape or None. Returns y."""


@_op("activation")
def softsign_backward(grad_out, x, out=None):
    """grad_in = grad_out / (1 + |x|)^2. grad_out, x: same shape (x is the forward
    input); out: same shape or None. Returns grad_in."""


@_op("activation")
def hardtanh(x, min_val=-1.0, max_val=1.0, out=None):
    """y = min(max(x, min_val), max_val) (ReLU6 is min_val=0, max_val=6). x: any shape;
    out: same shape or None. Returns y."""


@_op("activation")
def hardtanh_backward(grad_out, x, min_val=-1.0, max_val=1.0, out=None):
    """grad_in = grad_out where min_val < x < max_val, else 0 (0 at the edges and where
    x is NaN, as PyTorch's CPU kernel). grad_out, x: same shape (x is the forward
    input); out: same shape or None. Returns grad_in."""


@_op("activation")
def softmax(x, out=None):
    """Row-wise softmax along the last axis. x: (N, C); out: (N, C) or None. Returns
    y."""


@_op("activation")
def softmax_backward(grad_out, y, out=None):
    """grad_in = y * (grad_out - sum(grad_out * y, axis=1)). grad_out, y: (N, C) (y is
    softmax's output); out: (N, C) or None. Returns grad_in."""


@_op("activation")
def log_softmax(x, out=None):
    """Row-wise log(softmax(x)) = x - max - log(sum(exp(x - max))) along the last axis,
    finite for logits of any magnitude (no log of an underflowed probability).
    x: (N, C); out: (N, C) or None. Returns y."""


@_op("activation")
def log_softmax_backward(grad_out, y, out=None):
    """grad_in = grad_out - exp(y) * sum(grad_out, axis=1). grad_out, y: (N, C); y is
    log_softmax's output; out: (N, C) or None. Returns grad_in."""


# ------------------------------------------------------------------------ dropout
@_op("dropout")
def dropout_forward(x, p, seed, mask=None, out=None):
    """Inverted dropout. x: any shape; p: drop probability in [0, 1) (``fastnn.ops``
    also takes 1, PyTorch's all-dropped y = x * 0 with a mask of zeros, without a
    kernel); seed: int that fixes the random mask (each backend has its own generator,
    so masks differ between backends but are reproducible within one). mask: same
    shape as x, filled with 0 or 1/(1-p) in x's dtype; out: same shape as x or None.
    Returns (y, mask) with y = x * mask."""


@_op("dropout")
def dropout_backward(grad_out, mask, out=None):
    """grad_in = grad_out * mask. grad_out, mask: same shape; out: same shape or None.
    Returns grad_in."""


# -------------------------------------------------------------------------- losses
@_op("loss")
def softmax_cross_entropy(logits, target, grad=None):
    """Mean cross-entropy of softmax(logits) and its gradient in one pass.

    logits: (N, C); target: (N,) int64 class labels, or (N, C) probabilities
    (one-hot or soft) in logits' dtype; grad: (N, C) or None. Stable for logits of
    any magnitude (log-sum-exp). Returns (loss: float, grad: (N, C)) with
    grad = (softmax(logits) - onehot(target)) / N, and for probabilities
    (softmax(logits) * target.sum(1) - target) / N, PyTorch's gradient also for rows
    that do not sum to 1.
    """


@_op("loss")
def mse_loss(pred, target, grad=None):
    """Mean squared error over all elements and its gradient.

    pred, target: same shape; grad: same shape or None.
    Returns (loss: float, grad = 2 * (pred - target) / pred.size).
    """


@_op("loss")
def bce_loss(pred, target, grad=None):
    """Mean binary cross-entropy of probabilities and its gradient.

    pred: probabilities in [0, 1], any shape; target: same shape, in [0, 1] too; grad:
    same shape. Values outside [0, 1] are refused; NaN passes (the loss is NaN, which the
    trainer reports as divergence; PyTorch raises). Logs are clamped at -100 as PyTorch
    does, so pred of exactly 0 or 1 stays finite.
    Returns (loss: float, grad = (pred - target) / max(pred * (1 - pred), 1e-12) / size).
    """


@_op("loss")
def bce_with_logits_loss(logits, target, grad=None):
    """Mean binary cross-entropy of sigmoid(logits) and its gradient in one pass.

    logits: any shape; target: same shape (probabilities, usually 0 or 1); grad: same
    shape or None. Stable for logits of any magnitude: each term is
    max(x, 0) - x * t + log1p(exp(-|x|)), sigmoid is never rounded to 0 or 1 first.
    Returns (loss: float, grad = (sigmoid(logits) - target) / size).
    """


@_op("loss")
def smooth_l1_loss(pred, target, beta=1.0, grad=None):
    """Mean smooth-L1 (Huber-shaped) loss over all elements and its gradient in one pass.

    pred, target: same shape; grad: same shape or None; beta >= 0. With d = pred - target:
    0.5 d^2 / beta where |d| < beta, else |d| - beta / 2, and beta = 0 gives the L1 loss
    |d| (PyTorch's smooth_l1_loss; HuberLoss(delta) is delta times it at beta = delta).
    Returns (loss: float, grad = (d / beta where |d| < beta, else sign(d)) / size).
    """


# ---------------------------------------------------------------------- batchnorm
@_op("batchnorm")
def batchnorm_forward(x, weight, bias, running_mean, running_var, training=True,
                      momentum=0.1, eps=1e-5, mean_only=False, out=None,
                      save_mean=None, save_invstd=None):
    """Batch normalisation over the batch (and spatial) axes, per channel.

    x: (N, C) or (N, C, H, W); weight, bias: (C,) (weight is None when mean_only);
    running_mean, running_var: (C,), updated in place when training
    (new = (1 - momentum) * old + momentum * batch_stat, variance unbiased);
    running_var is None when mean_only. Training uses batch statistics
    (biased variance) and eval uses the running ones.
    Full: y = (x - mean) * invstd * weight + bias, invstd = 1 / sqrt(var + eps).
    mean_only: y = x - mean + bias. Training takes one value per channel only when
    mean_only (y = bias), as PyTorch refuses it for the variance.
    save_mean, save_invstd: (C,) buffers receiving the statistics used; out: x's shape
    or None. Returns (y, save_mean, save_invstd); save_invstd is None when mean_only.
    """


@_op("batchnorm")
def batchnorm_backward(grad_out, x, weight, save_mean, save_invstd, training=True,
                       mean_only=False, grad_weight=None, grad_bias=None, grad_in=None):
    """Backward of ``batchnorm_forward``.

    grad_out, x: (N, C) or (N, C, H, W); weight: (C,) or None when mean_only;
    save_mean, save_invstd: (C,) as returned by the forward (in eval mode, the running
    mean and 1/sqrt(running_var + eps), which are then constants); training, mean_only:
    the forward's; grad_weight, grad_bias: (C,) or None, accumulated in place; grad_in:
    x's shape or None. Returns grad_in, same shape as x.
    """


# ------------------------------------------------------------------------ conv
@_op("layernorm")
def layer_norm_forward(x, weight=None, bias=None, eps=1e-5, out=None, save_mean=None,
                       save_invstd=None):
    """Layer normalisation of each row over its D values (biased variance).

    x: (N, D); weight, bias: (D,) or None (no scale, no shift); out: (N, D) or None;
    save_mean, save_invstd: (N,) buffers or None.
    y = (x - mean) * invstd * weight + bias with invstd = 1 / sqrt(var + eps).
    Returns (y, save_mean, save_invstd).
    """


@_op("layernorm")
def layer_norm_backward(grad_out, x, weight, save_mean, save_invstd, grad_weight=None,
                        grad_bias=None, grad_in=None):
    """Backward of ``layer_norm_forward``.

    grad_out, x: (N, D); weight: (D,) or None; save_mean, save_invstd: (N,) as returned
    by the forward; grad_weight, grad_bias: (D,) or None, accumulated in place
    (column sums of grad_out * xhat and of grad_out); grad_in: (N, D) or None.
    Returns grad_in = invstd * (gx - mean(gx) - xhat * mean(gx * xhat)) per row, where
    gx = grad_out * weight and xhat = (x - mean) * invstd.
    """


@_op("conv")
def conv2d_forward(x, weight, bias=None, stride=(1, 1), padding=(0, 0), out=None):
    """2-D cross-correlation, NCHW, zero padding.

    x: (N, C_in, H, W); weight: (C_out, C_in, kH, kW); bias: (C_out,) or None;
    stride, padding: (int, int); out: (N, C_out, H_out, W_out) or None. Returns y:
    (N, C_out, H_out, W_out) with
    H_out = (H + 2 * padding[0] - kH) // stride[0] + 1 (and likewise W_out).
    """


@_op("conv")
def conv2d_backward(grad_out, x, weight, stride=(1, 1), padding=(0, 0), grad_weight=None,
                    grad_bias=None, grad_in=None, need_grad_in=True):
    """Backward of ``conv2d_forward``.

    grad_out: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_out, C_in, kH, kW);
    stride, padding: the forward's; grad_weight: same shape as weight, grad_bias:
    (C_out,) or None, accumulated in place; grad_in: x's shape or None.
    Returns grad_in: (N, C_in, H, W), or None if not need_grad_in.
    """


@_op("conv")
def depthwise_conv2d_forward(x, weight, bias=None, stride=(1, 1), padding=(0, 0), out=None):
    """Depthwise 2-D cross-correlation, NCHW, zero padding: PyTorch's Conv2d with
    groups = C_in, each input channel convolved with its own M = C_out / C_in kernels.

    x: (N, C_in, H, W); weight: (C_out, 1, kH, kW), C_out a multiple of C_in, output
    channel c * M + m reading input channel c; bias: (C_out,) or None; stride, padding:
    (int, int); out: (N, C_out, H_out, W_out) or None. Returns y: (N, C_out, H_out,
    W_out), sizes as ``conv2d_forward``'s.
    """


@_op("conv")
def depthwise_conv2d_backward(grad_out, x, weight, stride=(1, 1), padding=(0, 0),
                              grad_weight=None, grad_bias=None, grad_in=None,
                              need_grad_in=True):
    """Backward of ``depthwise_conv2d_forward``.

    grad_out: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_out, 1, kH, kW);
    stride, padding: the forward's; grad_weight: same shape as weight, grad_bias:
    (C_out,) or None, accumulated in place; grad_in: x's shape or None.
    Returns grad_in: (N, C_in, H, W), or None if not need_grad_in.
    """


@_op("conv")
def max_pool2d_forward(x, kernel_size, stride, padding=(0, 0), out=None, indices=None,
                       ceil_mode=False, dilation=(1, 1)):
    """Max pooling, NCHW, padding with -inf as PyTorch does.

    x: (N, C, H, W); kernel_size, stride, padding, dilation: (int, int); ceil_mode:
    PyTorch's (output sizes rounded up, kernels/window_shapes.py); out, indices: buffers
    of y's shape (float, int64) or None.
    Returns (y: (N, C, H_out, W_out), indices: same shape, int64 flat index h * W + w
    of each maximum in its (n, c) plane, as PyTorch's return_indices gives).
    """


@_op("conv")
def max_pool2d_backward(grad_out, indices, input_shape, grad_in=None):
    """Scatter grad_out: (N, C, H_out, W_out) to the argmax positions in indices.

    input_shape: (N, C, H, W). Returns grad_in of that shape.
    """


@_op("conv")
def avg_pool2d_forward(x, kernel_size, stride, padding=(0, 0), count_include_pad=True,
                       out=None, ceil_mode=False, divisor_override=None):
    """Average pooling, NCHW. x: (N, C, H, W); kernel_size, stride, padding: (int, int);
    out: (N, C, H_out, W_out) or None. Returns (N, C, H_out, W_out).

    Each window's sum is divided by divisor_override (a positive int) when given, else by
    its cells inside the padded input (count_include_pad) or inside the input; ceil_mode
    as max_pool2d_forward's."""


@_op("conv")
def avg_pool2d_backward(grad_out, input_shape, kernel_size, stride, padding=(0, 0),
                        count_include_pad=True, grad_in=None, ceil_mode=False,
                        divisor_override=None):
    """Backward of ``avg_pool2d_forward``. grad_out: (N, C, H_out, W_out);
    input_shape: (N, C, H, W); kernel_size, stride, padding, count_include_pad,
    ceil_mode, divisor_override: the forward's; grad_in: input_shape or None. Returns
    grad_in of input_shape."""


# --------------------------------------------------------------------- optimizers
@_op("optim")
def sgd_update(param, grad, velocity, lr, momentum=0.0, weight_decay=0.0, nesterov=False,
               dampening=0.0):
    """One SGD step in place, PyTorch's rule.

    param, grad, velocity: same shape (velocity may be None when momentum == 0; it
    starts at zeros). g = grad + weight_decay * param;
    velocity = momentum * velocity + (1 - dampening) * g;
    param -= lr * (g + momentum * velocity if nesterov else velocity). PyTorch's first
    step sets velocity = g undamped: pass dampening 0 on a parameter's first step.
    Returns None.
    """


@_op("optim")
def adam_update(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999,
                eps=1e-8, weight_decay=0.0, max_exp_avg_sq=None):
    """One Adam step in place, PyTorch's rule (L2 weight decay added to the gradient).

    param, grad, exp_avg, exp_avg_sq and (AMSGrad) max_exp_avg_sq: same shape; step: the
    1-based step count; b1, b2: beta1, beta2. g = grad + weight_decay * param;
    m = lerp(m, g, 1 - b1), PyTorch's m.lerp_(g, 1 - b1):
    m + (1 - b1) (g - m) for b1 > 0.5, else g - b1 (g - m) (an infinite m turns NaN on
    a finite g, as PyTorch's); v = b2 v + (1 - b2) g^2;
    param -= lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps). With
    max_exp_avg_sq given (amsgrad): vmax = max(vmax, v) takes v's place in the
    denominator. Returns None.
    """


@_op("optim")
def rmsprop_update(param, grad, square_avg, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
                   momentum=0.0, momentum_buffer=None, grad_avg=None):
    """One RMSprop step in place, PyTorch's rule.

    param, grad, square_avg and (when given) momentum_buffer, grad_avg: same shape.
    g = grad + weight_decay * param; square_avg = alpha square_avg + (1 - alpha) g^2;
    centered (grad_avg given): grad_avg = alpha grad_avg + (1 - alpha) g and
    avg = sqrt(square_avg - grad_avg^2) + eps, else avg = sqrt(square_avg) + eps;
    momentum > 0 (momentum_buffer given): buf = momentum buf + g / avg, param -= lr buf;
    else param -= lr g / avg. Returns None.
    """


@_op("optim")
def adagrad_update(param, grad, state_sum, lr=1e-2, weight_decay=0.0, eps=1e-10):
    """One Adagrad step in place, PyTorch's rule.

    param, grad, state_sum: same shape. g = grad + weight_decay * param;
    state_sum += g^2; param -= lr * g / (sqrt(state_sum) + eps). lr is the step's rate
    (the optimizer divides its lr by 1 + (step - 1) * lr_decay). Returns None.
    """


@_op("optim")
def adamax_update(param, grad, exp_avg, exp_inf, step, lr=2e-3, beta1=0.9, beta2=0.999,
                  eps=1e-8, weight_decay=0.0):
    """One Adamax step in place, PyTorch's rule.

    param, grad, exp_avg, exp_inf: same shape; step: the 1-based step count; b1, b2:
    beta1, beta2. g = grad + weight_decay * param; m = lerp(m, g, 1 - b1) as
    adam_update's;
    u = max(b2 u, |g| + eps) (a NaN propagates); param -= lr / (1 - b1^step) * m / u.
    Returns None.
    """


@_op("optim")
def adaptive_moments_update(param, grad, exp_avg, exp_avg_sq, avg_rate, grad_rate=0.0,
                            beta1=0.9, beta2=0.999, sq_scale=1.0, eps=1e-8,
                            weight_decay=0.0):
    """One step of the Adam variants whose step-dependent factors the optimizer computes
    (NAdam, RAdam), in place.

    param, grad, exp_avg, exp_avg_sq: same shape; b1, b2: beta1, beta2.
    g = grad + weight_decay * param; m = lerp(m, g, 1 - b1) as adam_update's;
    v = b2 v + (1 - b2) g^2;
    param -= (avg_rate m + grad_rate g) / (sq_scale sqrt(v) + eps), rounded as PyTorch's
    NAdam: d = sqrt(v / sq_scale^-2) + eps, then param -= grad_rate g / d and
    param -= avg_rate m / d in turn (kernels/moments.py).
    NAdam: avg_rate = lr mu' / (1 - prod mu mu'), grad_rate = lr (1 - mu) / (1 - prod mu),
    sq_scale = 1 / sqrt(1 - b2^step); RAdam: grad_rate = 0 and avg_rate = lr r
    sqrt(1 - b2^step) / (1 - b1^step) with its rectification r, sq_scale 1, or in its
    first steps avg_rate = lr / (1 - b1^step), sq_scale = 0, eps = 1. Returns None.
    """


@_op("optim")
def adadelta_update(param, grad, square_avg, acc_delta, lr=1.0, rho=0.9, eps=1e-6,
                    weight_decay=0.0, maximize=False):
    """One Adadelta step in place, PyTorch's rule.

    param, grad, square_avg, acc_delta: same shape (the state starts at zeros).
    g = (-grad if maximize else grad) + weight_decay * param;
    square_avg = rho square_avg + (1 - rho) g^2;
    delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g;
    acc_delta = rho acc_delta + (1 - rho) delta^2; param -= lr * delta. Returns None.
    """


@_op("optim")
def rprop_update(param, grad, prev, step_size, etaminus=0.5, etaplus=1.2,
                 step_size_min=1e-6, step_size_max=50.0, maximize=False):
    """One Rprop step in place, PyTorch's rule.

    param, grad, prev, step_size: same shape (prev starts at zeros, step_size at the
    optimizer's lr). g = -grad if maximize else grad; s = g * prev (in the arrays'
    dtype); step_size *= etaplus where s > 0, etaminus where s < 0, else 1 (s zero or
    NaN), then clamped to [step_size_min, step_size_max] (min first, then max, a NaN
    kept); where s < 0, g = 0; param -= sign(g) * step_size with PyTorch's sign, 0 for a
    NaN (a NaN gradient moves nothing but prev); prev = g. Returns None.
    """


@_op("optim")
def asgd_update(param, grad, ax, eta, mu, lambd=1e-4, weight_decay=0.0, maximize=False):
    """One ASGD step in place at the parameter's current eta and mu, PyTorch's rule.

    param, grad, ax: same shape; eta, mu: the parameter's scalar state (the optimizer
    computes the next ones: eta = lr / (1 + lambd lr step)^alpha, mu = 1 / max(1,
    step - t0)). g = (-grad if maximize else grad) + weight_decay * param;
    param = param * (1 - lambd eta) - eta g; ax = param when mu == 1, else
    ax += (param - ax) mu. Returns None.
    """


def op_names():
    """Every op name in table order."""
    return [name for names in OP_FAMILIES.values() for name in names]


def op_spec(name):
    """The specification function of an op."""
    return globals()[name]


def op_signature(name):
    return inspect.signature(op_spec(name))
