"""LinearCrossEntropyLoss: cross-entropy of a linear layer's logits (PyTorch's
LinearCrossEntropyLoss / F.linear_cross_entropy), the batch in row chunks so the
(N, num_classes) logits are never held whole: per chunk the backend's ``linear_forward``,
fastnn's CrossEntropyLoss (its fused softmax cross-entropy kernel, with its weight,
ignore_index and label-smoothing handling) and ``linear_backward``."""
import math
import numbers

import numpy as np

from .. import device as _device
from .. import grad_mode as _grad_mode
from ..errors import DtypeError, RuntimeValueError, TypeValueError
from ..validation import (FLOAT_DTYPES, LabelsOutOfRange, check_float_array,
                          check_positive_int, float_of)
from .linear import Linear
from .loss import REDUCTIONS, CrossEntropyLoss, class_weights, deprecated_mean
from .module import Module, check_kept, kept_for_backward, live_grad, trains


class LinearCrossEntropyLoss(Module):
    """cross_entropy(linear(input), target), PyTorch's LinearCrossEntropyLoss.

    ``loss(input, target)``: input (N, in_features) or one sample (in_features,);
    target integer labels (N,) (() unbatched) or, with out_features = (d1, ..., dk),
    (N, d1, ..., dk) (a class per position: the K-dimensional loss, batched input only);
    or probabilities of the logits' shape, (N, C, d1, ..., dk) ((C,) unbatched), in
    input's dtype. Returns a NumPy float64 for 'mean' and 'sum', for 'none' the array of
    per-element losses ((N, d1, ..., dk), or () unbatched).

    The internal ``linear`` is a Linear(in_features, num_classes * prod(out_features),
    bias) with PyTorch's flat storage: row c * prod(out_features) + j of linear.weight
    is class c at flat position j (state dict keys 'weight' (the class weights, when
    given), 'linear.weight', 'linear.bias').

    weight (C,), ignore_index (None: -100 for labels; not allowed with probabilities) and
    label_smoothing are CrossEntropyLoss's, computed by it: the 'mean' divides by the
    summed weight of the labels counted (NaN and a zero gradient when none counts; NaN
    gradients when the counted labels' weights sum to 0).

    ``backward(grad=None)`` -> the gradient w.r.t. input (its shape and dtype), and
    accumulates linear.weight.grad (and linear.bias.grad). grad: the gradient w.r.t. the
    loss, None for 1: a number for 'mean' and 'sum', for 'none' one per loss (the losses'
    shape) or a number. In training mode a 'mean' or 'sum' forward computes the gradients
    with the loss (each chunk's logits are used once), and backward only scales them; in
    eval mode, and always for 'none', forward computes the loss only and backward
    recomputes each chunk's logits from the input and the weights (so the weights must
    not change in between).

    ``chunk_elements``: the most logits one chunk holds (rows per chunk =
    max(1, chunk_elements // (num_classes * prod(out_features)))); a class attribute,
    set it on an instance to trade memory for fewer, larger products.
    options: PyTorch's LinearCrossEntropyOptions configure PyTorch's own chunked
    implementation (its chunk size, accumulation dtype, retain_graph); fastnn takes only
    None (it always works in chunks of ``chunk_elements``).
    """

    chunk_elements = 1 << 20

    def __init__(self, in_features, num_classes, *, out_features=(), bias=False, dtype=None,
                 reduction="mean", weight=None, ignore_index=None, label_smoothing=0.0,
                 options=None, _linear=None, _name=None):
        super().__init__()
        # (_name: how errors name the loss, F.linear_cross_entropy's name from ``around``)
        name = _name or "LinearCrossEntropyLoss"
        in_features = check_positive_int(name, "in_features", in_features)
        num_classes = check_positive_int(name, "num_classes", num_classes)
        if not isinstance(out_features, (tuple, list)):
            raise TypeError(f"{name}: expected out_features to be a tuple of ints, got "
                            f"{out_features!r}")
        for size in out_features:
            check_positive_int(name, "each of out_features", size)
        if weight is not None and np.shape(_device.to_host(weight) if _device.is_array(weight)
                                            else weight) != (num_classes,):
            shape = np.shape(_device.to_host(weight) if _device.is_array(weight) else weight)
            raise RuntimeValueError(
                f"expected weight shape to be {(num_classes,)}, got {shape}")
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real):
            raise TypeError(f"{name}: expected label_smoothing to be a number, got "
                            f"{label_smoothing!r}")
        if not 0.0 <= label_smoothing <= 1.0:
            raise RuntimeValueError(f"expected label_smoothing to be in range [0, 1], got "
                                    f"{label_smoothing}")
        reduction = deprecated_mean(reduction)
        if not isinstance(reduction, str) or reduction not in REDUCTIONS:
            raise ValueError(f"{name}: expected reduction 'mean', 'sum' or 'none', got "
                             f"{reduction!r}")
        _ignore_index(name, ignore_index)
        if options is not None:
            raise ValueError(f"{name}: options={options!r} is not supported: "
                             f"LinearCrossEntropyOptions configure PyTorch's own chunked "
                             f"implementation (chunk size, accumulation dtype, "
                             f"retain_graph); fastnn always computes in row chunks (see "
                             f"chunk_elements) and takes options=None only")
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        if dtype not in FLOAT_DTYPES:
            raise DtypeError(f"{name}: expected dtype float32 or float64, got {dtype}")
        weights = class_weights(name, weight)
        self.num_classes = num_classes
        self.out_features = tuple(out_features) if isinstance(out_features, tuple) \
            else list(out_features)
        self.reduction = reduction
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self.label_smoothing = label_smoothing
        self.options = None
        self._name = _name
        self.register_buffer("weight", None if weights is None else weights.astype(dtype))
        # (_linear: a Linear of those sizes holding given weights, from ``around``)
        self.linear = (Linear(in_features, math.prod(out_features, start=num_classes),
                              bias=bias, dtype=dtype) if _linear is None else _linear)
        # the last forward: (x as (N, in), host target with a batch axis, batched,
        # probabilities, the factor of the summed losses' gradient (1 / the mean's
        # denominator), precomputed (grad_in, grad_weight, grad_bias) or None, the losses'
        # shape, the caller's namespace)
        self._ctx = None

    @classmethod
    def around(cls, linear_weight, linear_bias=None, *, where=None, **kwargs):
        """The loss computed with the given linear weights, as F.linear_cross_entropy
        takes them: linear_weight (num_classes, *out_features, in_features), linear_bias
        (num_classes, *out_features) or None, float arrays of one dtype, held (not copied,
        where C-contiguous and writeable) as linear.weight / linear.bias in their flat
        layout; nothing is drawn from the global generator. where: the caller's name in
        errors (the layer's by default). kwargs: the constructor's reduction, weight,
        ignore_index, label_smoothing and options."""
        shape = linear_weight.shape
        num_classes, out_features, in_features = shape[0], tuple(shape[1:-1]), shape[-1]
        width = math.prod(out_features, start=num_classes)
        linear = Linear.around(linear_weight.reshape(width, in_features),
                               None if linear_bias is None else linear_bias.reshape(width))
        return cls(in_features, num_classes, out_features=out_features,
                   bias=linear_bias is not None, dtype=linear_weight.dtype, _linear=linear,
                   _name=where, **kwargs)

    # --------------------------------------------------------------- forward
    def forward(self, input, target):
        """The loss of the logits linear(input) against target (see the class
        docstring); a number for 'mean' and 'sum', per-element losses for 'none'."""
        x, target, caller, batched, probabilities = self._check(input, target)
        n = x.shape[0]
        loss_shape = ((n,) + tuple(self.out_features)) if batched else ()
        # (no gradients under no_grad: nothing written into the buffers an earlier forward
        # filled for its backward)
        precompute = self.training and self.reduction != "none" and _grad_mode._MODE.enabled
        grads = self._grad_buffers(x) if precompute and n else None
        criterion = self._criterion("sum" if self.reduction == "mean" else self.reduction,
                                    probabilities)
        total, denominator, losses = 0.0, 0.0, []
        for start, stop, pred, labels in self._chunks(x, target, batched):
            value = criterion.forward(pred, labels)
            if self.reduction == "none":
                losses.append(np.reshape(value, -1))
                continue
            total += float(value)
            denominator += _denominator(criterion, pred, batched)
            if grads is not None:
                self._linear_backward(criterion.backward(), x[start:stop], grads[1], grads[2],
                                      grads[0][start:stop])
        if self.reduction == "none":
            result = (np.concatenate(losses) if losses else np.zeros(0, x.dtype))
            self._ctx = kept_for_backward((x, target, batched, probabilities, 1.0, None,
                                           loss_shape, caller))
            return caller.put(result.reshape(loss_shape))
        if self.reduction == "sum":
            scale, loss = 1.0, total
        else:   # PyTorch's weighted mean: x / 0 when nothing counts (NaN gradients)
            with np.errstate(divide="ignore", invalid="ignore"):
                scale = 1.0 / np.float64(denominator)
                loss = total / np.float64(denominator)
            if not denominator and (probabilities or np.all(target == self._ignore())):
                scale = 0.0   # no row counted: PyTorch's NaN loss and zero gradient
            scale = float(scale) if np.isfinite(scale) else float("nan")
        if grads is not None and scale != 1.0:
            for g in grads:
                if g is not None:
                    _device.scaled(g, scale)
            if scale != scale and not probabilities:
                _zero_ignored_rows(grads[0], target, self._ignore())
        self._ctx = kept_for_backward((x, target, batched, probabilities, scale, grads, loss_shape,
                                       caller))
        return np.float64(loss)

    def _check(self, input, target):
        """(x (N, in_features) on the module's device, the host target with a batch axis,
        the caller's namespace, batched, probabilities), or PyTorch's errors."""
        where = self._where()
        check_float_array(where, "input", input, device_ok=True)
        shape = tuple(input.shape)   # (the CUDA simulator's shapes refuse negative indices)
        if len(shape) not in (1, 2):
            raise RuntimeValueError(
                f"expected input with dimensionality 1 or 2, got {len(shape)}")
        in_features = self.linear.in_features
        if shape[-1] != in_features:
            raise RuntimeValueError(f"expected equal input and linear_weight last dimensions "
                                    f"(in_features), got {shape[-1]} and {in_features}, "
                                    f"respectively")
        self._check_dtype(input.dtype, self.linear.weight.data.dtype)
        batched = len(shape) == 2
        out = tuple(self.out_features)
        if out and not batched:
            raise RuntimeValueError(
                f"K-dimensional loss defined by linear_weight shape "
                f"{(self.num_classes,) + out + (in_features,)} requires batched "
                f"input, (N, {in_features}), got unbatched input with shape "
                f"{shape}")
        x, caller = self._arrive("input", input)
        batch = shape[:1] if batched else ()
        logits_shape = batch + (self.num_classes,) + out
        if not _device.is_array(target):
            target = np.asarray(target)   # a Python int as one sample's label
        target = _device.to_host(target)
        probabilities = tuple(target.shape) == logits_shape
        if probabilities:
            if self.ignore_index is not None:
                raise RuntimeValueError(
                    "ignore_index cannot be specified when target contains "
                    "probabilities")
            if target.dtype.kind != "f":
                raise RuntimeValueError(f"Expected floating point type for target with class "
                                        f"probabilities, got {target.dtype}")
            check_float_array(where, "target", target, dtype=x.dtype)
        else:
            want = batch + out
            if not (batched or self.label_smoothing) and tuple(target.shape) == (1,):
                want = (1,)   # one sample's label as (1,), as PyTorch's forward takes it
            if target.dtype.kind not in "iu":
                raise DtypeError(f"{where}: expected target to be integer class labels of "
                                 f"shape {want} or probabilities of shape {logits_shape}, got "
                                 f"{target.dtype} of shape {tuple(target.shape)}")
            if tuple(target.shape) != want:
                raise ValueError(f"{where}: expected target to be integer class labels of "
                                 f"shape {want} or probabilities of shape {logits_shape}, got "
                                 f"shape {tuple(target.shape)}")
            ignore = self._ignore()
            valid = target[target != ignore]
            if valid.size and (valid.min() < 0 or valid.max() >= self.num_classes):
                raise LabelsOutOfRange(f"{where}: labels out of range: expected values in "
                                       f"[0, {self.num_classes}) (or ignore_index {ignore}), "
                                       f"got min {valid.min()} and max {valid.max()}")
        x = x if batched else x.reshape(1, in_features)
        if not batched:   # (probabilities (1, C), a label () or (1,) as (1,))
            target = target[None] if probabilities else target.reshape(1)
        return x, target, caller, batched, probabilities

    def _criterion(self, reduction, probabilities):
        """The CrossEntropyLoss each chunk's logits go through."""
        ignore = -100 if probabilities else self._ignore()
        return CrossEntropyLoss(weight=self.weight, ignore_index=ignore, reduction=reduction,
                                label_smoothing=float_of(type(self).__name__, "label_smoothing",
                                                         self.label_smoothing))

    def _chunks(self, x, target, batched):
        """(start, stop, logits of rows start:stop in CrossEntropyLoss's form
        ((rows, C, d1, ..., dk), (C,) unbatched), their targets) per chunk of rows."""
        n = x.shape[0]
        width = self.linear.out_features
        step = max(1, int(self.chunk_elements) // width)
        k = self._kernels()
        weight = self.linear.weight.data
        bias = None if self.linear.bias is None else self.linear.bias.data
        for start in range(0, n, step):
            stop = min(n, start + step)
            logits = k.linear_forward(x[start:stop], weight, bias, "identity", 0.01)
            if batched:
                yield (start, stop,
                       logits.reshape((stop - start, self.num_classes)
                                      + tuple(self.out_features)),
                       target[start:stop])
            else:
                yield start, stop, logits.reshape(self.num_classes), target[0]

    def _grad_buffers(self, x):
        """(grad_in (N, in), grad_weight, grad_bias), zeroed where accumulated: the
        gradients a training-mode forward computes (None for an absent or frozen
        parameter's: PyTorch's backward does not compute it)."""
        ns = _device.namespace(self._device)
        weight = self.linear.weight.data
        grad_weight = grad_bias = None
        if trains(self.linear.weight):
            grad_weight = self._buffer("grad_weight", weight.shape, weight.dtype)
            ns.fill_zero(grad_weight)
        if trains(self.linear.bias):
            grad_bias = self._buffer("grad_bias", self.linear.bias.data.shape, weight.dtype)
            ns.fill_zero(grad_bias)
        return ns.empty(x.shape, x.dtype), grad_weight, grad_bias

    def _linear_backward(self, grad_logits, x, grad_weight, grad_bias, grad_in):
        """linear_backward of one chunk: grad_logits (CrossEntropyLoss's form) as
        (rows, C * prod(out_features)); accumulates grad_weight/grad_bias, writes grad_in."""
        rows = x.shape[0]
        grad_logits = grad_logits.reshape(rows, self.linear.out_features)
        self._kernels().linear_backward(grad_logits, x, self.linear.weight.data,
                                        grad_weight=grad_weight, grad_bias=grad_bias,
                                        grad_in=grad_in)

    # -------------------------------------------------------------- backward
    def backward(self, grad=None):
        """The gradient w.r.t. the last forward's input (its shape and dtype); accumulates
        linear.weight.grad and linear.bias.grad. grad: w.r.t. the loss, None for 1 (see
        the class docstring)."""
        check_kept(self, self._ctx)
        x, target, batched, probabilities, scale, grads, loss_shape, caller = self._ctx
        where = f"{self._where()}.backward"
        if grad is not None and _device.is_array(grad):
            grad = _device.to_host(grad)
        if grad is not None and np.ndim(grad) != 0:
            if self.reduction != "none":
                raise ValueError(f"{where}: expected a number as the gradient of a "
                                 f"{self.reduction!r}-reduced loss, got shape "
                                 f"{np.shape(grad)}")
            if np.shape(grad) != loss_shape:
                raise ValueError(f"{where}: expected grad of shape {loss_shape} (one per "
                                 f"loss), got {np.shape(grad)}")
        if grads is not None:
            grad_in, grad_weight, grad_bias = grads
            factor = 1.0 if grad is None else float(grad)
            # (a parameter frozen since the forward: its .grad left untouched)
            for param, value in ((self.linear.weight, grad_weight),
                                 (self.linear.bias, grad_bias)):
                if value is not None and trains(param):
                    _accumulate(param.grad, value, factor)
            if grad is not None:
                grad_in = _device.scaled(grad_in, factor, copy=True)
        else:
            grad_in = self._recompute(x, target, batched, probabilities, scale, grad)
        return caller.put(grad_in if batched else grad_in.reshape(-1))

    def _recompute(self, x, target, batched, probabilities, scale, grad):
        """The input gradient from each chunk's logits computed again (grad: None, a
        number, or for 'none' an array of the losses' shape); accumulates the linear
        layer's gradients."""
        grad_in = _device.namespace(self._device).zeros(x.shape, x.dtype)
        reduction = "none" if self.reduction == "none" else "sum"
        criterion = self._criterion(reduction, probabilities)
        per_loss = grad is not None and np.ndim(grad) != 0   # ('none' batched only)
        factor = None if per_loss else scale * (1.0 if grad is None else float(grad))
        # (None for a frozen parameter: the kernel neither computes nor touches it)
        weight_grad, bias_grad = live_grad(self.linear.weight), live_grad(self.linear.bias)
        for start, stop, pred, labels in self._chunks(x, target, batched):
            criterion.forward(pred, labels)
            g = criterion.backward(grad[start:stop] if per_loss
                                   else None if factor == 1.0 else factor)
            self._linear_backward(g, x[start:stop], weight_grad, bias_grad,
                                  grad_in[start:stop])
        if factor is not None and factor != factor and not probabilities:
            _zero_ignored_rows(grad_in, target, self._ignore())
        return grad_in

    def _ignore(self):
        """The label value that is not counted (ignore_index, -100 by default), read at
        each call (a user may set it): no int is the constructor's TypeError."""
        return _ignore_index(type(self).__name__, self.ignore_index)

    def extra_repr(self):
        return (f"in_features={self.linear.in_features}, num_classes={self.num_classes}, "
                f"out_features={self.out_features}, bias={self.linear.bias is not None}, "
                f"reduction={self.reduction}, ignore_index={self.ignore_index}, "
                f"label_smoothing={self.label_smoothing}, options={self.options}")

    def _where(self):
        if self._name:
            return self._name
        return (f"LinearCrossEntropyLoss(in_features={self.linear.in_features}, "
                f"num_classes={self.num_classes})")


def _ignore_index(where, value):
    """ignore_index as an int (None: -100), else the TypeError naming where."""
    if value is None:
        return -100
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeValueError(f"{where}: expected ignore_index to be an int or None, got "
                             f"{value!r}")
    return int(value)


def _denominator(criterion, pred, batched):
    """The weight one chunk adds to the 'mean''s denominator: what CrossEntropyLoss divided
    its mean by (the labels' summed weight), or its count of losses."""
    if criterion._denominator is not None:
        return criterion._denominator
    if not batched:
        return 1.0
    return float(pred.size // pred.shape[1])


def _accumulate(grad, value, factor):
    """grad += factor * value, in place (a device array's through the host)."""
    def add(host):
        v = _device.to_host(value)
        np.add(host, v if factor == 1.0 else v * host.dtype.type(factor), out=host)
    _device.update_on_host(grad, add)


def _zero_ignored_rows(grad_in, target, ignore):
    """Rows of grad_in (N, in_features) whose labels (N, d1, ..., dk) all equal ignore set
    back to 0 after a NaN scale (a 'mean' whose counted labels' weights sum to 0): PyTorch
    masks an ignored label's gradient, so only the counted rows' gradients are NaN."""
    ignored = np.all(np.reshape(target == ignore, (target.shape[0], -1)), axis=1)
    if ignored.any():
        def zero(host):
            host[ignored] = 0
        _device.update_on_host(grad_in, zero)
