"""Losses: ``forward(pred, target) -> float``, ``backward() -> grad of pred``.

Each loss computes its value and gradient in one kernel call during ``forward``;
``backward`` returns that gradient (a fresh array per forward, the caller's to keep).
The kernels run where pred lives: a CUDA device array pred (the output of a model on
the GPU) runs the cuda backend, the target is moved next to it, and the gradient is a
device array; the loss is a Python float either way.

``reduction`` is PyTorch's: 'mean' (the default, the kernels' own), 'sum' (the mean's
loss and gradient times the element count: N rows for cross-entropy), or 'none':
``forward`` returns the loss of every element (every row for cross-entropy) as a
NumPy array, computed by the reference formulas, and ``backward(grad)`` takes the
gradient w.r.t. those losses (None: all ones, the gradient of their sum).
"""
import numpy as np

from .. import device as _device
from ..kernels.reference import losses as _reference
from ..validation import as_contiguous, as_labels, check_float_array

REDUCTIONS = ("mean", "sum", "none")


class Loss:
    """Base class: validation, the reduction, the saved gradient and repr."""

    def __init__(self, reduction="mean"):
        if not isinstance(reduction, str) or reduction not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: expected reduction 'mean', 'sum' or "
                             f"'none', got {reduction!r}")
        self.reduction = reduction
        self._grad = None

    def forward(self, pred, target):
        """Loss of pred against target: a Python float ('mean', 'sum') or a NumPy array
        of per-element losses ('none': pred's shape; (N,) for cross-entropy)."""
        pred, target = self._check(pred, target)
        kernels = _device.kernels(_device.device_of(pred))
        loss, grad = self._kernel(kernels)(pred, target)
        if self.reduction == "mean":
            self._grad = grad
            return loss
        count = self._count(pred)
        # the mean's gradient times the count: d(sum)/d(pred), also for 'none' (where
        # backward weights it by the gradient of each element's loss)
        self._grad = _scaled(grad, count)
        if self.reduction == "sum":
            return loss * count
        return self._losses(_device.to_host(pred), _device.to_host(target))

    def __call__(self, pred, target):
        return self.forward(pred, target)

    def backward(self, grad=None):
        """Gradient of the last forward's loss w.r.t. pred (same shape and dtype as pred;
        a fresh array when grad is given).

        grad: the gradient w.r.t. the loss, None for 1: a number for 'mean' and 'sum',
        for 'none' an array of the per-element losses' shape (or a number)."""
        if self._grad is None:
            raise RuntimeError(f"{self._where()}: backward called before forward")
        if grad is None:
            return self._grad
        return self._weighted(grad)

    def _weighted(self, grad):
        """self._grad times grad (a number, or per element/row for 'none')."""
        where = f"{self._where()}.backward"
        g = self._grad
        dtype = g.dtype.type
        if np.ndim(grad) == 0:
            return _scaled(g, float(grad), copy=True)
        if self.reduction != "none":
            raise ValueError(f"{where}: expected a number as the gradient of a "
                             f"{self.reduction!r}-reduced loss, got shape {np.shape(grad)}")
        grad = _device.to_host(grad)
        expected = self._loss_shape(g.shape)
        if np.shape(grad) != expected:
            raise ValueError(f"{where}: expected grad of shape {expected} (one per loss), "
                             f"got {np.shape(grad)}")
        grad = np.asarray(grad, dtype=dtype).reshape(expected + (1,) * (g.ndim - len(expected)))
        out = _device.to_host(g) * grad
        return _device.namespace_of(g).put(out) if _device.is_device_array(g) else out

    def _count(self, pred):
        """The mean's denominator: every element."""
        return pred.size

    def _loss_shape(self, pred_shape):
        return pred_shape

    def _check(self, pred, target):
        """(pred, target) checked: by default float arrays of one shape and dtype."""
        return self._check_same(self._check_pred(pred), target)

    def _check_pred(self, pred):
        pred = check_float_array(self._where(), "pred", pred, device_ok=True)
        if pred.size == 0:
            raise ValueError(f"{self._where()}: expected a non-empty pred, got shape {pred.shape}")
        return pred

    def _check_same(self, pred, target):
        where = self._where()
        target = check_float_array(where, "target", target, dtype=pred.dtype, device_ok=True)
        if target.shape != pred.shape:
            raise ValueError(f"{where}: expected target of shape {pred.shape} (same as pred), "
                             f"got {target.shape}")
        return self._beside(pred, target)

    def _beside(self, pred, target):
        """(pred, target) C-contiguous, target moved to where pred lives."""
        where = self._where()
        pred = as_contiguous(pred, where, "pred")
        target = _device.namespace_of(pred).put(as_contiguous(target, where, "target"))
        return pred, target

    def _where(self):
        if self.reduction == "mean":
            return f"{type(self).__name__}()"
        return f"{type(self).__name__}(reduction={self.reduction!r})"

    def __repr__(self):
        return self._where()


class MSELoss(Loss):
    """mean((pred - target)**2) over all elements. pred, target: same shape and dtype."""

    def _kernel(self, k):
        return k.mse_loss

    def _losses(self, pred, target):
        return _reference.mse_losses(pred, target)


class BCELoss(Loss):
    """Mean binary cross-entropy of probabilities pred in [0, 1] against target (same
    shape and dtype); logs are clamped at -100 as in PyTorch, so 0 and 1 stay finite."""

    def _check(self, pred, target):
        pred, target = super()._check(pred, target)
        # NaN passes (comparisons are False) so a diverged run reports a NaN loss.
        # (On the GPU this check copies pred to the host.)
        values = _device.to_host(pred)
        lo, hi = values.min(), values.max()  # two reductions, no temporaries
        if lo < 0 or hi > 1 or (lo != lo and (np.any(values < 0) or np.any(values > 1))):
            raise ValueError(f"{self._where()}: expected pred to be probabilities in [0, 1], "
                             f"got values in [{np.nanmin(values)}, {np.nanmax(values)}]")
        return pred, target

    def _kernel(self, k):
        return k.bce_loss

    def _losses(self, pred, target):
        return _reference.bce_losses(pred, target)


class BCEWithLogitsLoss(Loss):
    """Mean binary cross-entropy of sigmoid(logits) against target (same shape and dtype),
    stable for logits of any magnitude (PyTorch's BCEWithLogitsLoss, without its weight
    and pos_weight): the layer to pair with a final Linear instead of Sigmoid + BCELoss,
    whose float32 probability rounds to exactly 1 from a logit of about 17 on (the clamped
    log then caps the loss and zeroes the gradient's information)."""

    def _kernel(self, k):
        return k.bce_with_logits_loss

    def _losses(self, pred, target):
        return _reference.bce_with_logits_losses(pred, target)


class CrossEntropyLoss(Loss):
    """Mean cross-entropy of softmax(logits), stable for logits of any magnitude.

    pred: logits (N, C); target: integer class labels (N,) in [0, C), or probabilities
    (N, C) (one-hot or soft) in pred's dtype; as in PyTorch, rows need not sum to 1.
    """

    def _check(self, pred, target):
        where = self._where()
        pred = check_float_array(where, "logits", pred, ndim=2, device_ok=True)
        n, c = pred.shape
        if n == 0 or c == 0:
            raise ValueError(f"{where}: expected non-empty logits (N, C), got shape {pred.shape}")
        kind = target.dtype.kind if _device.is_array(target) else None
        if kind is not None and kind in "iu":
            return self._beside(pred, as_labels(where, target, n, c))
        if kind == "f":
            return self._check_same(pred, target)
        got = target.dtype if _device.is_array(target) else type(target).__name__
        raise TypeError(f"{where}: expected target to be integer labels (N,) or "
                        f"probabilities (N, C) as a numpy.ndarray, got {got}")

    def _kernel(self, k):
        return k.softmax_cross_entropy

    def _losses(self, pred, target):
        return _reference.cross_entropy_losses(pred, target)

    def _count(self, pred):
        return pred.shape[0]  # PyTorch's mean is over rows

    def _loss_shape(self, pred_shape):
        return pred_shape[:1]


def _scaled(grad, factor, copy=False):
    """grad * factor in grad's dtype, in place unless copy (a device array goes through
    the host: the reductions other than 'mean' are not the GPU's hot path)."""
    if _device.is_device_array(grad):
        host = _device.to_host(grad) * grad.dtype.type(factor)
        return _device.namespace_of(grad).put(host)
    if copy:
        return grad * grad.dtype.type(factor)
    grad *= grad.dtype.type(factor)
    return grad
