"""Losses: ``forward(pred, target) -> float`` (mean reduction), ``backward() -> grad of pred``.

Each loss computes its value and gradient in one kernel call during ``forward``;
``backward`` returns that gradient (a fresh array per forward, the caller's to keep).
The kernels run where pred lives: a CUDA device array pred (the output of a model on
the GPU) runs the cuda backend, the target is moved next to it, and the gradient is a
device array; the loss is a Python float either way.
"""
import numpy as np

from .. import device as _device
from ..validation import as_contiguous, as_labels, check_float_array


class Loss:
    """Base class: validation, the saved gradient and repr."""

    def __init__(self):
        self._grad = None

    def forward(self, pred, target):
        """Mean loss of pred against target as a Python float."""
        pred, target = self._check(pred, target)
        kernels = _device.kernels(_device.device_of(pred))
        loss, self._grad = self._kernel(kernels)(pred, target)
        return loss

    def __call__(self, pred, target):
        return self.forward(pred, target)

    def backward(self):
        """Gradient of the last forward's loss w.r.t. pred (same shape and dtype as pred)."""
        if self._grad is None:
            raise RuntimeError(f"{self._where()}: backward called before forward")
        return self._grad

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
        return f"{type(self).__name__}()"

    def __repr__(self):
        return self._where()


class MSELoss(Loss):
    """mean((pred - target)**2) over all elements. pred, target: same shape and dtype."""

    def _check(self, pred, target):
        return self._check_same(self._check_pred(pred), target)

    def _kernel(self, k):
        return k.mse_loss


class BCELoss(Loss):
    """Mean binary cross-entropy of probabilities pred in [0, 1] against target (same
    shape and dtype); logs are clamped at -100 as in PyTorch, so 0 and 1 stay finite."""

    def _check(self, pred, target):
        pred, target = self._check_same(self._check_pred(pred), target)
        # NaN passes (comparisons are False) so a diverged run reports a NaN loss.
        # (On the GPU this check copies pred to the host.)
        values = _device.to_host(pred)
        if np.any(values < 0) or np.any(values > 1):
            raise ValueError(f"{self._where()}: expected pred to be probabilities in [0, 1], "
                             f"got values in [{np.nanmin(values)}, {np.nanmax(values)}]")
        return pred, target

    def _kernel(self, k):
        return k.bce_loss


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
