"""Losses with their gradients in plain NumPy: the specification.

Each returns (loss as a Python float, gradient of the mean loss w.r.t. the prediction).
"""
import numpy as np


def softmax_cross_entropy(logits, target, grad=None):
    """Mean cross-entropy of softmax(logits).

    logits: (N, C); target: (N,) int64 labels or (N, C) probabilities; grad: (N, C) or None.
    Returns (loss, grad) with grad = (softmax(logits) - onehot(target)) / N, and for
    probabilities (softmax(logits) * target.sum(1) - target) / N.
    """
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_prob = shifted - log_sum
    if grad is None:
        grad = np.empty_like(logits)
    np.exp(log_prob, out=grad)
    if target.ndim == 1:
        rows = np.arange(n)
        loss = -log_prob[rows, target].sum(dtype=np.float64)
        grad[rows, target] -= 1
    else:
        # d/dx of -sum(t log softmax x) is softmax(x) * sum(t) - t: PyTorch's gradient,
        # also for rows of target that do not sum to 1
        loss = -(target * log_prob).sum(dtype=np.float64)
        grad *= target.sum(axis=1, keepdims=True)
        grad -= target
    grad /= n
    return float(loss / max(n, 1)), grad


def mse_loss(pred, target, grad=None):
    """Mean of (pred - target)**2 over all elements. pred, target, grad: same shape."""
    diff = np.subtract(pred, target, out=grad)
    loss = float(np.square(diff, dtype=np.float64).sum() / max(pred.size, 1))
    diff *= pred.dtype.type(2.0 / max(pred.size, 1))
    return loss, diff


def bce_loss(pred, target, grad=None):
    """Mean binary cross-entropy, logs clamped at -100 as in PyTorch.

    pred (probabilities), target, grad: same shape.
    """
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(pred), -100)
        log_1mp = np.maximum(np.log1p(-pred), -100)
    loss = float(-(target * log_p + (1 - target) * log_1mp).sum(dtype=np.float64)
                 / max(pred.size, 1))
    eps = pred.dtype.type(1e-12)
    g = (pred - target) / np.maximum(pred * (1 - pred), eps) / pred.dtype.type(max(pred.size, 1))
    if grad is None:
        return loss, g.astype(pred.dtype, copy=False)
    grad[...] = g
    return loss, grad
