"""Losses with their gradients in plain NumPy: the specification.

Each returns (loss as a Python float, gradient of the mean loss w.r.t. the prediction);
the ``*_losses`` functions give the loss of every element (every row for cross-entropy),
which the loss layers return for ``reduction='none'``.
"""
import numpy as np

from .activations import log_softmax

# PyTorch's floor of p (1 - p) in the BCE gradient: 1e-12 as a float32, in float64 too
BCE_EPSILON = float(np.float32(1e-12))


def softmax_cross_entropy(logits, target, grad=None):
    """Mean cross-entropy of softmax(logits).

    logits: (N, C); target: (N,) int64 labels or (N, C) probabilities; grad: (N, C) or None.
    Returns (loss, grad) with grad = (softmax(logits) - onehot(target)) / N, and for
    probabilities (softmax(logits) * target.sum(1) - target) / N.
    """
    n = logits.shape[0]
    log_prob = log_softmax(logits)
    if grad is None:
        grad = np.empty_like(logits)
    np.exp(log_prob, out=grad)
    loss = _cross_entropy_rows(log_prob, target).sum(dtype=np.float64)
    if target.ndim == 1:
        grad[np.arange(n), target] -= 1
    else:
        # d/dx of -sum(t log softmax x) is softmax(x) * sum(t) - t: PyTorch's gradient,
        # also for rows of target that do not sum to 1
        grad *= target.sum(axis=1, keepdims=True)
        grad -= target
    grad /= n
    return float(loss / max(n, 1)), grad


def cross_entropy_losses(logits, target):
    """Cross-entropy of each row (reduction 'none'). logits: (N, C); target: (N,) int64
    labels or (N, C) probabilities. Returns (N,) in logits' dtype."""
    return _cross_entropy_rows(log_softmax(logits), target)


def _cross_entropy_rows(log_prob, target):  # (N, C), (N,) or (N, C) -> (N,)
    if target.ndim == 1:
        return -log_prob[np.arange(log_prob.shape[0]), target]
    return -(target * log_prob).sum(axis=1)


def mse_loss(pred, target, grad=None):
    """Mean of (pred - target)**2 over all elements. pred, target, grad: same shape."""
    diff = np.subtract(pred, target, out=grad)
    loss = float(np.square(diff, dtype=np.float64).sum() / max(pred.size, 1))
    diff *= pred.dtype.type(2.0 / max(pred.size, 1))
    return loss, diff


def mse_losses(pred, target):
    """(pred - target)**2 per element (reduction 'none'). pred, target: same shape."""
    return np.square(pred - target)


def bce_loss(pred, target, grad=None):
    """Mean binary cross-entropy, logs clamped at -100 as in PyTorch.

    pred (probabilities), target, grad: same shape.
    """
    loss = float(bce_losses(pred, target).sum(dtype=np.float64) / max(pred.size, 1))
    eps = pred.dtype.type(BCE_EPSILON)
    g = (pred - target) / np.maximum(pred * (1 - pred), eps) / pred.dtype.type(max(pred.size, 1))
    if grad is None:
        return loss, g.astype(pred.dtype, copy=False)
    grad[...] = g
    return loss, grad


def bce_losses(pred, target):
    """Binary cross-entropy per element (reduction 'none'), logs clamped at -100 as in
    PyTorch. pred (probabilities), target: same shape. Returns pred's shape and dtype."""
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(pred), -100)
        log_1mp = np.maximum(np.log1p(-pred), -100)
    return -(target * log_p + (1 - target) * log_1mp)


def smooth_l1_loss(pred, target, beta=1.0, grad=None):
    """Mean smooth-L1 loss (L1 at beta = 0) and its gradient. pred, target, grad: same
    shape. Returns (loss, grad = (d / beta where |d| < beta, else sign(d)) / size)."""
    loss = float(smooth_l1_losses(pred, target, beta).sum(dtype=np.float64)
                 / max(pred.size, 1))
    d = pred - target
    sign = (d > 0).astype(d.dtype) - (d < 0)  # 0 for d = 0, and for NaN as PyTorch's L1
    if beta:
        # NaN fails the comparison and takes d / beta: NaN, as in PyTorch
        sign = np.where(np.abs(d) >= beta, sign, d / d.dtype.type(beta))
    g = sign * d.dtype.type(1.0 / max(pred.size, 1))
    if grad is None:
        return loss, g.astype(pred.dtype, copy=False)
    grad[...] = g
    return loss, grad


def smooth_l1_losses(pred, target, beta=1.0):
    """The smooth-L1 loss of every element (reduction 'none'); beta = 0: |d|."""
    d = pred - target
    ad = np.abs(d)
    if not beta:
        return ad
    return np.where(ad >= beta, ad - d.dtype.type(0.5 * beta),
                    d.dtype.type(0.5 / beta) * d * d).astype(d.dtype, copy=False)


def bce_with_logits_loss(logits, target, grad=None):
    """Mean binary cross-entropy of sigmoid(logits), stable for logits of any magnitude.

    logits, target, grad: same shape (grad may be None).
    Returns (loss, grad = (sigmoid(logits) - target) / size).
    """
    loss = float(bce_with_logits_losses(logits, target).sum(dtype=np.float64)
                 / max(logits.size, 1))
    e = np.exp(-np.abs(logits))  # in (0, 1]: no overflow for any logit
    sig = np.where(logits >= 0, 1 / (1 + e), e / (1 + e))
    g = (sig - target) * logits.dtype.type(1.0 / max(logits.size, 1))
    if grad is None:
        return loss, g.astype(logits.dtype, copy=False)
    grad[...] = g
    return loss, grad


def bce_with_logits_losses(logits, target):
    """(1 - t) x - log sigmoid(x) = (1 - t) x - min(x, 0) + log1p(exp(-|x|)) per element
    (reduction 'none'): the binary cross-entropy of sigmoid(x) against t without forming
    sigmoid(x), in PyTorch's order (so an infinite logit gives its inf or NaN too)."""
    with np.errstate(invalid="ignore"):   # (-inf - -inf: NaN, as PyTorch's)
        return ((1 - target) * logits - np.minimum(logits, 0)
                + np.log1p(np.exp(-np.abs(logits))))
