"""Losses of two or three inputs (PyTorch's MarginRankingLoss, CosineEmbeddingLoss,
TripletMarginLoss, TripletMarginWithDistanceLoss and GaussianNLLLoss), NumPy on the host.

``forward(*inputs)`` returns the loss as the other losses do (a float for 'mean' and
'sum', the per-sample losses for 'none'); ``backward(grad=None)`` returns a tuple with
the gradient of each float input, in the order given (the label input of the first two
gets none). A device input's gradient goes back to the device.
"""
import numpy as np

from .. import device as _device
from .. import grad_mode as _grad_mode
from ..errors import RuntimeValueError
from ..validation import check_bool
from ..validation import check_float_array, check_number
from .distance import PairwiseDistance, check_norm_order, norm_and_grad, summed_to
from .loss import Loss, cast_integer_target


class _MultiInputLoss(Loss):
    """Per-sample losses and their gradients w.r.t. each float input, computed by
    ``_per_sample`` on host arrays of N samples, then reduced.

    The inputs broadcast against each other as PyTorch's do (one rank for all; each
    gradient summed back to its input's shape); the samples are every position of the
    broadcast shape but its last ``sample_ndim`` axes (the losses' shape for 'none')."""

    #: names of the float inputs, then of the label input (or None)
    inputs = ()
    labels = None
    #: the ranks the float inputs may have (None: any from sample_ndim on)
    ranks = None

    def forward(self, *args):
        """The loss of the inputs the class docstring names, in its order (e.g.
        MarginRankingLoss: x1, x2, y; TripletMarginLoss: anchor, positive, negative): a
        number ('mean', 'sum'; a NumPy float64) or the per-sample losses ('none')."""
        names = self.inputs + ((self.labels,) if self.labels else ())
        if len(args) != len(names):
            raise TypeError(f"{self._where()}: expected {len(names)} inputs "
                            f"({', '.join(names)}), got {len(args)}")
        where = self._where()
        first = check_float_array(where, names[0], args[0], device_ok=True)
        arrays = [_device.to_host(first)]
        for name, a in zip(names[1:], args[1:]):
            if name == self.labels:  # as PyTorch: integer labels
                a = cast_integer_target(a, first.dtype, kinds="iu")
            a = check_float_array(where, name, a, dtype=first.dtype, device_ok=True)
            arrays.append(_device.to_host(a))
        shapes = [a.shape for a in arrays]
        full, samples = self._broadcast_shapes(shapes)
        n = int(np.prod(samples))
        flat = [np.broadcast_to(a, full).reshape((n,) + full[len(samples):])
                for a in arrays[:len(self.inputs)]]
        if self.labels:
            flat.append(np.broadcast_to(arrays[-1], samples).reshape(n))
        losses, grads = self._per_sample(*flat)
        self._ctx = (grads, samples, shapes, full, _device.namespace_of(first))
        if self.reduction == "none":
            return np.asarray(losses).reshape(samples)
        total = losses.sum(dtype=np.float64)
        if self.reduction == "sum":
            return np.float64(total)
        return np.float64(total / n if n else np.nan)

    def __call__(self, *args):
        return self.forward(*args)

    def backward(self, grad=None):
        """(gradient w.r.t. each float input), scaled by grad: a number for 'mean' and
        'sum', for 'none' an array of the losses' shape (None: ones)."""
        if getattr(self, "_ctx", None) is None:
            raise RuntimeError(f"{self._where()}: backward called before forward")
        grads, samples, shapes, full, namespace = self._ctx
        dtype = grads[0].dtype
        n = int(np.prod(samples))
        if grad is None:
            scale = np.ones(n, dtype)
        elif np.ndim(grad) == 0:
            scale = np.full(n, grad, dtype)
        elif self.reduction == "none" and np.shape(grad) == samples:
            scale = np.asarray(_device.to_host(grad), dtype).reshape(n)
        else:
            raise ValueError(f"{self._where()}.backward: expected grad to be a number"
                             + (f" or of shape {samples}" if self.reduction == "none" else "")
                             + f", got shape {np.shape(grad)}")
        if self.reduction == "mean":
            scale = scale / dtype.type(max(n, 1))
        out = []
        for g, shape in zip(grads, shapes):
            g = (g * scale.reshape((n,) + (1,) * (g.ndim - 1))).reshape(full)
            # (np.array, not ascontiguousarray: a 0-d input's gradient stays 0-d)
            out.append(namespace.put(np.array(summed_to(g, shape), dtype, order="C")))
        return tuple(out)

    def _broadcast_shapes(self, shapes):
        """(the float inputs' broadcast shape, the samples' shape: its leading axes, with
        the labels' shape broadcast in) for the inputs' shapes; PyTorch's rank rules."""
        where = self._where()
        floats = shapes[:len(self.inputs)]
        rank = len(floats[0])
        if rank not in self.ranks if self.ranks else rank < self.sample_ndim:
            ranks = (" or ".join(str(r) for r in sorted(self.ranks, reverse=True))
                     if self.ranks else f"{self.sample_ndim} or more")
            raise RuntimeValueError(f"{where}: expected {self.inputs[0]} of rank {ranks}, got "
                                    f"shape {floats[0]}")
        for name, shape in zip(self.inputs[1:], floats[1:]):
            if len(shape) != rank:
                raise RuntimeValueError(f"{where}: expected {name} of the rank of "
                                        f"{self.inputs[0]} ({rank}), got shape {shape}")
            try:
                np.broadcast_shapes(floats[0], shape)
            except ValueError:
                raise RuntimeValueError(f"{where}: expected {name} of shape {floats[0]} (as "
                                        f"{self.inputs[0]}, or broadcasting with it), got "
                                        f"{shape}") from None
        try:
            full = np.broadcast_shapes(*floats)
        except ValueError:
            raise RuntimeValueError(f"{where}: {', '.join(self.inputs)} of shapes "
                                    f"{', '.join(map(str, floats))} do not "
                                    f"broadcast") from None
        samples = full[:rank - self.sample_ndim]
        if self.labels:
            y = shapes[-1]
            if len(y) != len(samples):
                raise RuntimeValueError(f"{where}: expected {self.labels} of shape {samples}, "
                                        f"got {y}")
            try:
                samples = np.broadcast_shapes(samples, y)
            except ValueError:
                raise RuntimeValueError(f"{where}: expected {self.labels} of shape {samples}, "
                                        f"got {y}") from None
            full = samples + full[len(samples):]
        return full, samples

    def _per_sample(self, *arrays):
        """(losses (N,), the gradient of each loss w.r.t. each float input, (N, ...)),
        the labels checked; arrays: the float inputs (N, ...) then the labels (N,)."""
        if self.labels and not np.isin(arrays[-1], (-1.0, 1.0)).all():
            raise ValueError(f"{self._where()}: expected {self.labels} values of 1 or -1")
        return self._losses_and_grads(*arrays)


class MarginRankingLoss(_MultiInputLoss):
    """max(0, -y (x1 - x2) + margin) per sample: x1, x2 scores of shape (N,) (or (), or
    any one rank, broadcasting), y of that rank with 1 where x1 should rank higher, -1
    where x2 should. backward returns (grad_x1, grad_x2)."""

    inputs, labels, sample_ndim = ("input1", "input2"), "target", 0

    float_attributes = ("margin",)

    def __init__(self, margin=0.0, size_average=None, reduce=None, reduction="mean"):
        super().__init__(reduction, size_average, reduce)
        check_number(type(self).__name__, "margin", margin)
        self.margin = float(margin)

    def _losses_and_grads(self, x1, x2, y):
        z = -y * (x1 - x2) + x1.dtype.type(self.margin)
        active = (z >= 0).astype(x1.dtype)  # PyTorch's clamp_min passes the gradient at 0
        return np.maximum(z, 0), (-y * active, y * active)

    def _options(self):
        return [f"margin={self.margin}"] if getattr(self, "margin", 0.0) else []


class CosineEmbeddingLoss(_MultiInputLoss):
    """1 - cos(x1, x2) where y = 1, max(0, cos(x1, x2) - margin) where y = -1, per
    sample: x1, x2 (N, D) (or (D,); broadcasting), y (N,) (or ()); cos with PyTorch's
    1e-12 added to each
    squared norm (its float32 value, as PyTorch adds in float64 too). backward returns
    (grad_x1, grad_x2)."""

    inputs, labels, sample_ndim, ranks = ("input1", "input2"), "target", 1, (1, 2)

    float_attributes = ("margin",)

    def __init__(self, margin=0.0, size_average=None, reduce=None, reduction="mean"):
        super().__init__(reduction, size_average, reduce)
        check_number(type(self).__name__, "margin", margin, -1.0, 1.0, high_open=False)
        self.margin = float(margin)

    def _broadcast_shapes(self, shapes):
        # one feature size: PyTorch takes the norm of a broadcast feature axis before
        # broadcasting it (a "cosine" beyond [-1, 1]); that is refused here
        if shapes[0][-1:] != shapes[1][-1:]:
            raise RuntimeValueError(f"{self._where()}: expected input1 and input2 of one "
                                    f"feature size (last axis), got shapes {shapes[0]} and "
                                    f"{shapes[1]}")
        return super()._broadcast_shapes(shapes)

    def _losses_and_grads(self, x1, x2, y):
        dt = x1.dtype.type
        dot = (x1 * x2).sum(axis=1)
        tiny = dt(np.float32(1e-12))
        sq1 = (x1 * x1).sum(axis=1) + tiny
        sq2 = (x2 * x2).sum(axis=1) + tiny
        denom = np.sqrt(sq1 * sq2)
        cos = dot / denom
        d1 = x2 / denom[:, None] - (cos / sq1)[:, None] * x1   # d cos / d x1
        d2 = x1 / denom[:, None] - (cos / sq2)[:, None] * x2
        neg = cos - dt(self.margin)
        losses = np.where(y == 1, 1 - cos, np.maximum(neg, 0)).astype(x1.dtype)
        factor = np.where(y == 1, dt(-1), (neg >= 0).astype(x1.dtype)).astype(x1.dtype)
        return losses, (d1 * factor[:, None], d2 * factor[:, None])

    def _options(self):
        return [f"margin={self.margin}"] if getattr(self, "margin", 0.0) else []


class TripletMarginLoss(_MultiInputLoss):
    """max(d(a, p) - d(a, n) + margin, 0) per sample, d(u, v) = ||u - v + eps||_p
    (PyTorch's pairwise distance); swap: d(p, n) replaces d(a, n) where smaller (the
    gradient split half to each at a tie, as PyTorch's torch.minimum).
    anchor, positive, negative: (N, D) (or (D,), or (N, d1, ..., D): the distance along
    the last axis), one rank, broadcasting. backward returns (grad_anchor,
    grad_positive, grad_negative)."""

    inputs, sample_ndim = ("anchor", "positive", "negative"), 1

    float_attributes = ("margin", "p", "eps")

    def __init__(self, margin=1.0, p=2.0, eps=1e-6, swap=False, size_average=None,
                 reduce=None, reduction="mean"):
        super().__init__(reduction, size_average, reduce)
        name = type(self).__name__
        check_number(name, "margin", margin, 0.0, low_open=True)
        p = check_norm_order(name, p)
        check_number(name, "eps", eps, 0.0)
        self.margin, self.p, self.eps, self.swap = float(margin), float(p), float(eps), bool(swap)

    def _distance(self, u, v):
        """(||u - v + eps||_p, its gradient w.r.t. u), one a row (PairwiseDistance's)."""
        dist, grad = norm_and_grad(u - v + u.dtype.type(self.eps), self.p)
        return dist[:, 0], grad

    def _losses_and_grads(self, a, pos, neg):
        d_ap, g_ap = self._distance(a, pos)
        d_an, g_an = self._distance(a, neg)
        # the shares of d(a, n) and d(p, n) in the negative distance, one a row
        w_an, w_pn = np.ones((len(a), 1), a.dtype), np.zeros((len(a), 1), a.dtype)
        g_pn = np.zeros_like(a)
        if self.swap:   # PyTorch's torch.minimum: at a tie its gradient goes half to each
            d_pn, g_pn = self._distance(pos, neg)
            w_pn = np.where(d_pn == d_an, 0.5, d_pn < d_an).astype(a.dtype)[:, None]
            w_an = 1 - w_pn
            d_an = np.minimum(d_an, d_pn)
        z = d_ap - d_an + a.dtype.type(self.margin)
        active = (z >= 0).astype(a.dtype)[:, None]  # (clamp_min's gradient at 0, PyTorch's)
        grad_a = (g_ap - w_an * g_an) * active
        grad_p = (-g_ap - w_pn * g_pn) * active
        grad_n = (w_an * g_an + w_pn * g_pn) * active
        return np.maximum(z, 0).astype(a.dtype), (grad_a, grad_p, grad_n)

    def _options(self):
        options = [f"margin={self.margin}"] if getattr(self, "margin", 1.0) != 1.0 else []
        options += [f"p={self.p}"] if getattr(self, "p", 2.0) != 2.0 else []
        options += [f"eps={self.eps}"] if getattr(self, "eps", 1e-6) != 1e-6 else []
        return options + (["swap=True"] if getattr(self, "swap", False) else [])


class GaussianNLLLoss(Loss):
    """Gaussian negative log-likelihood of target under N(input, var): per element
    0.5 (log v + (input - target)^2 / v) with v = max(var, eps) (+ 0.5 log(2 pi) when
    full), then the reduction over all elements ('none': the broadcast shape, input's
    as a rule). PyTorch's shapes: target broadcasts against input; var is input's shape,
    input.shape[:-1] (one value a row), input's shape with one axis of 1 (shared along
    it), or a number. forward(input, target, var); backward(grad=None) -> (grad_input,
    grad_target, grad_var), each of its input's shape (a 0-d one for a number var), var's
    gradient taken as PyTorch's (through the clamp unchanged)."""

    takes_elementwise_mean = False

    float_attributes = ("eps",)

    def __init__(self, full=False, eps=1e-6, reduction="mean"):
        super().__init__(reduction)
        self.full = check_bool("GaussianNLLLoss", "full", full)
        check_number("GaussianNLLLoss", "eps", eps, 0.0)   # (0: PyTorch takes it too)
        self.eps = float(eps)
        self._ctx = None

    def __call__(self, input, target, var):
        return self.forward(input, target, var)

    def forward(self, input, target, var):
        """The loss (a NumPy float64; 'none': the broadcast shape) of input, target and
        var of the shapes the class docstring gives."""
        where = self._where()
        x = check_float_array(where, "input", input, device_ok=True)
        namespace = _device.namespace_of(x)
        # an integer target is taken in input's dtype, as PyTorch's (a bool one is refused)
        t = check_float_array(where, "target", cast_integer_target(target, x.dtype, "iu"),
                              dtype=x.dtype, device_ok=True)
        number = isinstance(var, (int, float, np.integer, np.floating)) and not isinstance(
            var, bool)
        if number:
            var = np.asarray(var, x.dtype)   # PyTorch's float var: one for every element
        v = check_float_array(where, "var", var, dtype=x.dtype, device_ok=True)
        x, t, v = (_device.to_host(a) for a in (x, t, v))
        if (v < 0).any():
            raise ValueError(f"{where}: var has negative entries")
        var_shape = v.shape
        v = v.reshape(v.shape if number else _var_shape(where, x.shape, v.shape))
        try:
            shape = np.broadcast_shapes(x.shape, t.shape, v.shape)
        except ValueError:
            raise RuntimeValueError(f"{where}: input, target and var of shapes {x.shape}, "
                                    f"{t.shape} and {var_shape} do not broadcast") from None
        clamped = np.maximum(v, x.dtype.type(self.eps))
        diff = x - t
        with np.errstate(divide="ignore", invalid="ignore"):   # (a var of 0 with eps = 0)
            losses = np.broadcast_to(0.5 * (np.log(clamped) + diff * diff / clamped), shape)
            grad_x = np.broadcast_to(diff / clamped, shape)
            grad_v = np.broadcast_to(
                0.5 * (1 / clamped - diff * diff / (clamped * clamped)), shape)
        if self.full:
            losses = losses + x.dtype.type(0.5 * np.log(2 * np.pi))
        self._ctx = (grad_x, grad_v, (x.shape, t.shape, v.shape, var_shape), namespace,
                     losses.size)
        if self.reduction == "none":
            return namespace.put(_device.c_contiguous(losses, x.dtype))
        total = losses.sum(dtype=np.float64)
        with np.errstate(invalid="ignore"):  # an empty batch's mean is NaN, as in PyTorch
            return np.float64(total / losses.size if self.reduction == "mean" else total)

    def backward(self, grad=None):
        """(grad_input, grad_target, grad_var) for grad: a number ('mean', 'sum'), or for
        'none' an array of the losses' shape (None: ones)."""
        if self._ctx is None:
            raise RuntimeError(f"{self._where()}: backward called before forward")
        grad_x, grad_v, (x_shape, t_shape, v_shape, var_shape), namespace, count = self._ctx
        scale = np.asarray(1.0 if grad is None else _device.to_host(grad), grad_x.dtype)
        if scale.ndim and (self.reduction != "none" or scale.shape != grad_x.shape):
            raise ValueError(f"{self._where()}.backward: expected grad to be a number"
                             + (f" or of shape {grad_x.shape}" if self.reduction == "none"
                                else "") + f", got shape {scale.shape}")
        if self.reduction == "mean":
            with np.errstate(divide="ignore"):  # (count 0: an empty batch's gradient)
                scale = scale / grad_x.dtype.type(count)
        gx, gv = grad_x * scale, grad_v * scale
        # each summed over the axes it was broadcast along (np.array, not
        # ascontiguousarray: a 0-d gradient stays 0-d)
        grads = summed_to(gx, x_shape), summed_to(-gx, t_shape), summed_to(
            gv, v_shape).reshape(var_shape)
        return tuple(namespace.put(np.array(g, grad_x.dtype, order="C")) for g in grads)

    def _options(self):
        return ((["full=True"] if getattr(self, "full", False) else [])
                + ([f"eps={self.eps}"] if getattr(self, "eps", 1e-6) != 1e-6 else []))


def _var_shape(where, input_shape, var_shape):
    """var's shape as it broadcasts against input (PyTorch's rules): input's shape;
    input.shape[:-1], given a last axis of 1; or input's rank with the sizes differing at
    one axis only, where var's is 1."""
    if var_shape == input_shape:
        return var_shape
    if var_shape == input_shape[:-1]:
        return var_shape + (1,)
    if len(var_shape) == len(input_shape) and sum(
            v for i, v in zip(input_shape, var_shape) if i != v) == 1:
        return var_shape
    raise ValueError(f"{where}: expected var of shape {input_shape}, {input_shape[:-1]} or "
                     f"{input_shape} with one axis of 1, got {var_shape}")


class TripletMarginWithDistanceLoss(Loss):
    """max(d(a, p) - d(a, n) + margin, 0) for a distance function d of your choice
    (PyTorch's TripletMarginWithDistanceLoss; keyword arguments only, as there).

    distance_function: None for ``nn.PairwiseDistance()`` (p = 2, eps = 1e-6, PyTorch's
    default), or a fastnn module of two inputs with ``forward(x1, x2)`` and
    ``backward(grad) -> (grad_x1, grad_x2)``: ``nn.PairwiseDistance(p, eps)``,
    ``nn.CosineSimilarity`` inside a small Module subclass (``forward`` returns
    ``1 - self.cos(a, b)``, ``backward(g)`` returns ``self.cos.backward(-g)``), or any
    module written that way, with parameters of its own if it likes (their gradients
    accumulate). A plain callable (``lambda a, b: 1 - cos(a, b)``) has no backward, so
    fastnn cannot differentiate through it: it is a TypeError here, where PyTorch's
    autograd takes it.

    margin > 0; swap: d(p, n) replaces d(a, n) where smaller (PyTorch's torch.minimum,
    whose gradient at a tie goes half to each). anchor, positive, negative: arrays of one
    float dtype and the same rank, broadcast against each other as PyTorch does (each
    gradient summed back to its input's shape); the losses have the distances' shape
    ('none'), 'mean' and 'sum' reduce over them (an empty batch: 'mean' NaN, 'sum' 0).

    ``backward(grad=None)`` -> (grad_anchor, grad_positive, grad_negative). A module keeps
    only its last forward, so backward runs the distance's forward again on each pair
    before that pair's backward: the distance must be deterministic between the two calls
    (no dropout in training mode). NumPy on the host; a device input's gradients go back
    to the device.
    """

    takes_elementwise_mean = False

    float_attributes = ("margin",)

    def __init__(self, *, distance_function=None, margin=1.0, swap=False, reduction="mean"):
        super().__init__(reduction)
        name = type(self).__name__
        if distance_function is None:
            distance_function = PairwiseDistance()
        elif not callable(distance_function) or not callable(
                getattr(distance_function, "backward", None)):
            raise TypeError(
                f"{name}: expected distance_function to be None or a fastnn module of two "
                f"inputs with forward(x1, x2) and backward(grad) -> (grad_x1, grad_x2) (e.g. "
                f"nn.PairwiseDistance(), or a Module subclass wrapping nn.CosineSimilarity); "
                f"{distance_function!r} has no backward, so fastnn cannot differentiate "
                f"through it")
        check_number(name, "margin", margin)
        if margin <= 0:
            raise ValueError(f"{name}: expected margin to be greater than 0, got {margin} "
                             f"instead")
        self.distance_function = distance_function
        self.margin, self.swap = float(margin), check_bool(name, "swap", swap)
        self._ctx = None

    def __call__(self, anchor, positive, negative):
        return self.forward(anchor, positive, negative)

    def forward(self, anchor, positive, negative):
        """The loss (a NumPy float64; 'none': the distances' shape) of anchor, positive
        and negative, arrays of one rank whose shapes broadcast."""
        where = self._where()
        first = check_float_array(where, "anchor", anchor, device_ok=True)
        namespace = _device.namespace_of(first)
        arrays = [_device.to_host(first)]
        for name, a in (("positive", positive), ("negative", negative)):
            a = check_float_array(where, name, a, dtype=first.dtype, device_ok=True)
            arrays.append(_device.to_host(a))
        ranks = [a.ndim for a in arrays]
        if len(set(ranks)) != 1:
            raise RuntimeValueError(f"{where}: expected anchor, positive and negative of the "
                                    f"same rank, got {ranks[0]}-D, {ranks[1]}-D and "
                                    f"{ranks[2]}-D inputs")
        shapes = [a.shape for a in arrays]
        try:
            shape = np.broadcast_shapes(*shapes)
        except ValueError:
            raise RuntimeValueError(f"{where}: anchor, positive and negative of shapes "
                                    f"{shapes[0]}, {shapes[1]} and {shapes[2]} do not "
                                    f"broadcast") from None
        del shape  # only checked: each pair goes to the distance as given (PyTorch's)
        a, p, n = (_device.c_contiguous(x) for x in arrays)
        dtype = a.dtype
        pairs = [(a, p), (a, n)] + ([(p, n)] if self.swap else [])
        dists = [self._distance(x1, x2, dtype) for x1, x2 in pairs]
        d_pos, d_neg = dists[0], dists[1]
        weights = None
        if self.swap:   # torch.minimum, its gradient split at a tie
            d_an, d_pn = dists[1], dists[2]
            d_neg = np.minimum(d_an, d_pn)
            half = dtype.type(0.5)
            weights = (np.where(d_an == d_pn, half, (d_an < d_pn).astype(dtype)),
                       np.where(d_an == d_pn, half, (d_pn < d_an).astype(dtype)))
        with np.errstate(invalid="ignore"):
            z = np.asarray(dtype.type(self.margin) + d_pos - d_neg, dtype)
            active = (z >= 0).astype(dtype)   # clamp_min passes the gradient at 0
        losses = np.asarray(np.maximum(z, dtype.type(0)))
        self._ctx = (pairs, [d.shape for d in dists], weights, active, shapes, namespace)
        if self.reduction == "none":
            return losses
        total = losses.sum(dtype=np.float64)
        if self.reduction == "sum":
            return np.float64(total)
        return np.float64(total / losses.size if losses.size else np.nan)

    def _distance(self, x1, x2, dtype):
        d = self.distance_function(x1, x2)
        if isinstance(d, np.floating):  # a distance of two vectors, as a NumPy scalar
            d = np.asarray(d)
        if not _device.is_array(d) or np.dtype(d.dtype).kind != "f":
            raise TypeError(f"{self._where()}: expected the distance function to return a "
                            f"float array, got {type(d).__name__}")
        return np.asarray(_device.to_host(d), dtype)

    def backward(self, grad=None):
        """(grad_anchor, grad_positive, grad_negative) for grad: a number for 'mean' and
        'sum', for 'none' one per loss (None: ones)."""
        if self._ctx is None:
            raise RuntimeError(f"{self._where()}: backward called before forward")
        pairs, dist_shapes, weights, active, shapes, namespace = self._ctx
        dtype = active.dtype
        if grad is None:
            scale = np.ones(active.shape, dtype)
        elif np.ndim(grad) == 0:
            scale = np.full(active.shape, grad, dtype)
        elif self.reduction == "none" and np.shape(grad) == active.shape:
            scale = np.asarray(_device.to_host(grad), dtype)
        else:
            raise ValueError(f"{self._where()}.backward: expected grad to be a number"
                             + (f" or of shape {active.shape}" if self.reduction == "none"
                                else "") + f", got shape {np.shape(grad)}")
        if self.reduction == "mean":
            scale = scale / dtype.type(active.size)
        g = scale * active   # d loss / d (margin + d_pos - d_neg)
        grads_d = [g, -g] if weights is None else [g, -g * weights[0], -g * weights[1]]
        totals = [np.zeros(shape, dtype) for shape in shapes]  # a, p, n
        slots = [(0, 1), (0, 2), (1, 2)]
        for (x1, x2), gd, d_shape, (i, j) in zip(pairs, grads_d, dist_shapes, slots):
            with _grad_mode.enable_grad():   # (a backward under no_grad: torch's runs too)
                self.distance_function(x1, x2)   # its forward again, for its backward
                result = self.distance_function.backward(
                    np.array(summed_to(gd, d_shape), dtype, order="C"))
            if not isinstance(result, tuple) or len(result) != 2:
                raise TypeError(f"{self._where()}: expected the distance function's backward "
                                f"to return (grad_x1, grad_x2), got {type(result).__name__}")
            totals[i] += summed_to(_device.to_host(result[0]), shapes[i])
            totals[j] += summed_to(_device.to_host(result[1]), shapes[j])
        return tuple(namespace.put(np.array(summed_to(t, s), dtype, order="C"))
                     for t, s in zip(totals, shapes))

    def _options(self):
        options = []
        fn = getattr(self, "distance_function", None)
        if fn is not None and not (type(fn) is PairwiseDistance and fn.norm == 2.0
                                   and fn.eps == 1e-6 and not fn.keepdim):
            options.append(f"distance_function={fn!r}")
        if getattr(self, "margin", 1.0) != 1.0:
            options.append(f"margin={self.margin}")
        return options + (["swap=True"] if getattr(self, "swap", False) else [])
