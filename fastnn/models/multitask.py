"""A two-headed network whose regression head feeds the classification head.

From a shared input x (N, in_features):

* task A (regression): a = FC2A(Dropout(Sine(FC1A(x)))), shape (N, hidden_b), trained with
  ½‖a − y_A‖² per sample;
* task B (classification): h = ReLU(BatchNorm1d_mean_only(FC1B(x))), shape (N, hidden_b),
  s = h + a (so task A's output width equals FC1B's width), logits = FC2B(s), trained with
  softmax cross-entropy.

The loss is the batch mean of the sum of both terms, and task B's gradient flows into task A
through the addition. Everything runs through the layers' explicit backward passes.
"""
import numpy as np

from .. import device as _device
from .. import grad_mode as _grad_mode
from .. import nn
from ..backend import current
from ..nn.loss import per_thread_state
from ..nn.module import backward_in_buffer, checks_sub_forwards, records_sub_forwards
from ..validation import as_contiguous, check_float_array, check_labels


class MultiTaskNet(nn.Module):
    """MultiTaskNet(in_features, hidden_a, hidden_b, num_classes, omega=1.0, dropout=0.1).

    forward(x) -> (a, logits): a (N, hidden_b) regression output, logits (N, num_classes).
    """

    config_name = "multitask"

    def __init__(self, in_features, hidden_a, hidden_b, num_classes, omega=1.0, dropout=0.1):
        super().__init__()
        self.fc1a = nn.Linear(in_features, hidden_a)
        self.sine = nn.Sine(omega)
        self.drop = nn.Dropout(dropout)
        self.fc2a = nn.Linear(hidden_a, hidden_b)
        self.fc1b = nn.Linear(in_features, hidden_b)
        self.bn = nn.BatchNorm1d(hidden_b, mean_only=True)
        self.relu = nn.ReLU()
        self.fc2b = nn.Linear(hidden_b, num_classes)
        # the values the layers validated, as plain ints and floats (JSON in checkpoints)
        self.config = dict(in_features=self.fc1a.in_features, hidden_a=self.fc1a.out_features,
                           hidden_b=self.fc1b.out_features, num_classes=self.fc2b.out_features,
                           omega=float(self.sine.omega), dropout=float(self.drop.p))

    @records_sub_forwards   # (a layer run on its own since is caught at backward)
    def forward(self, x):
        """(a, logits) for x (N, in_features): a (N, hidden_b), logits (N, num_classes)."""
        self._check_input_shape(x)
        inner = self._inner
        a = self.fc2a(inner(self.drop, inner(self.sine, inner(self.fc1a, x))))
        h = inner(self.relu, inner(self.bn, inner(self.fc1b, x)))
        logits = self.fc2b(self._add("s", h, a))
        return a, logits  # (fresh arrays, the caller's)

    def _check_input_shape(self, x):
        """Every layer's check of what it will get, before any layer runs: a refused
        input (a batch of one for the training-mode BatchNorm, a wrong width or dtype)
        leaves every layer with the last forward's context, which backward reads."""
        self.fc1a._check_input(x)
        for branch in ((self.fc1a, self.sine, self.drop, self.fc2a),
                       (self.fc1b, self.bn, self.relu, self.fc2b)):
            shape = tuple(x.shape)
            for layer in branch:
                shape = layer.infer_shape(shape, x.dtype)

    # Arrays no caller sees (a layer's output that only feeds another layer, and the
    # gradients between layers) live in buffers the layers and the model own, reused every
    # step, as inside a Sequential; a layer with hooks (which may keep what they are given)
    # or on the GPU runs through its public call, which returns fresh arrays. Under
    # no_grad they are fresh too, each freed once the next layer has read it (a
    # Sequential's two alternating arrays, nn/output_slots.py, assume a chain; this net
    # branches, and its arrays are small).
    @staticmethod
    def _inner(layer, x):
        """layer(x), the output in the layer's own buffer (with gradients enabled)."""
        if layer._hooked or layer._device != "cpu" or type(x) is not np.ndarray:
            return layer(x)
        # (forward checked the shapes)
        return layer._run_forward(as_contiguous(x), _grad_mode._MODE.enabled)

    def _add(self, key, p, q):
        """p + q in this model's buffer key (host arrays alike on a host model), else a
        fresh array where p lives (a GPU model returns NumPy arrays for NumPy input, and
        device arrays have no +: _device.added)."""
        if (self._device == "cpu" and type(p) is np.ndarray and type(q) is np.ndarray
                and p.shape == q.shape and p.dtype == q.dtype):
            if not _grad_mode._MODE.enabled:   # (see _inner)
                return np.add(p, q)
            return np.add(p, q, out=self._buffer(key, p.shape, p.dtype))
        return _device.added(p, q)

    @checks_sub_forwards
    def backward(self, grad_a, grad_logits, need_grad_in=True):
        """grad_a: (N, hidden_b), gradient w.r.t. task A's output from its own loss;
        grad_logits: (N, num_classes). Returns the gradient w.r.t. x: (N, in_features),
        or None with need_grad_in=False, which skips its two products (one per branch's
        first Linear) and their sum: a training step, whose loop discards it, runs
        22-26% faster (784-256-128-10, batch 32 and 128)."""
        # checked before any gradient accumulates: a wrong grad_a would broadcast in the sum
        check_float_array("MultiTaskNet", "grad_logits", grad_logits, ndim=2, device_ok=True)
        check_float_array("MultiTaskNet", "grad_a", grad_a, device_ok=True,
                          shape=(grad_logits.shape[0], self.fc1b.out_features),
                          dtype=grad_logits.dtype)
        back = backward_in_buffer
        grad_s = back(self.fc2b, grad_logits)
        grad_x_b = back(self.fc1b, back(self.bn, back(self.relu, grad_s)), need_grad_in)
        # the addition s = h + a routes task B's gradient into A
        total_a = self._add("total_a", grad_a, grad_s)
        grad_x_a = back(self.fc1a, back(self.sine, back(self.drop, back(self.fc2a, total_a))),
                        need_grad_in)
        if not need_grad_in:
            return None
        return _device.added(grad_x_a, grad_x_b)  # (fresh, the caller's)


class MultiTaskLoss:
    """Batch mean of ½‖a − y_A‖² + cross-entropy(logits, y_B), and both gradients.

    forward(a, logits, y_a, y_b) -> (total, regression, classification) as floats;
    backward() -> (grad_a, grad_logits), on the device of a. Device arrays (a GPU model's
    outputs for device input, device targets) are worked on the host, as the model's own
    sum of the two heads is: the arrays are (N, hidden_b) and (N, num_classes).
    """

    @per_thread_state   # (one loss shared by threads: each its own gradients, as nn's)
    def forward(self, a, logits, y_a, y_b):
        where = "MultiTaskLoss"
        for name, value in (("a", a), ("logits", logits), ("y_a", y_a)):
            check_float_array(where, name, value, device_ok=True)
        device = _device.device_of(a)
        if device != "cpu" or any(map(_device.is_device_array, (logits, y_a, y_b))):
            losses = self._forward_on_host(*map(_device.to_host, (a, logits, y_a, y_b)))
            self._grads = tuple(map(_device.namespace(device).put, self._grads))
            return losses
        return self._forward_on_host(a, logits, y_a, y_b)

    def _forward_on_host(self, a, logits, y_a, y_b):
        where = "MultiTaskLoss"
        check_float_array(where, "a", a, ndim=2)
        check_float_array(where, "y_a", y_a, shape=a.shape, dtype=a.dtype)
        check_float_array(where, "logits", logits, ndim=2, shape=(a.shape[0], None),
                          dtype=a.dtype)
        check_labels(where, y_b, logits.shape[0], logits.shape[1])
        n = a.shape[0]
        grad_a = np.subtract(a, y_a)  # (divided by n below, in place: the caller's)
        squares = getattr(self, "_squares", None)  # float64 scratch kept between steps
        if squares is None or squares.shape != a.shape:
            squares = self._squares = np.empty(a.shape, np.float64)
        squares[...] = grad_a  # (squared in place: a ufunc's own cast takes a buffer)
        np.square(squares, out=squares)
        with np.errstate(invalid="ignore"):  # an empty batch's mean is NaN, as in PyTorch
            regression = float(0.5 * squares.sum() / n)
        classification, grad_logits = current().softmax_cross_entropy(
            np.ascontiguousarray(logits), y_b.astype(np.int64, copy=False))
        if n == 0:  # the kernel's sum over no rows is 0; the mean over no rows is NaN
            classification = float("nan")
        grad_a /= a.dtype.type(n)
        self._grads = (grad_a, grad_logits)
        return regression + classification, regression, classification

    __call__ = forward

    @per_thread_state
    def backward(self):
        if getattr(self, "_grads", None) is None:
            raise RuntimeError("MultiTaskLoss: backward() called before forward()")
        return self._grads
