"""Losses: ``forward(pred, target) -> float``, ``backward() -> grad of pred``.

Each loss computes its value and gradient in one kernel call during ``forward``;
``backward`` returns that gradient (a fresh array per forward, the caller's to keep).
The kernels run where pred lives: a CUDA device array pred (the output of a model on
the GPU) runs the cuda backend, the target is moved next to it, and the gradient is a
device array; the loss is a number (NumPy float64, a Python float) either way. A NumPy
pred with a device target is refused (PyTorch's error for tensors on two devices).

``reduction`` is PyTorch's: 'mean' (the default, the kernels' own), 'sum' (the mean's
loss and gradient times the element count: N rows for cross-entropy), or 'none':
``forward`` returns the loss of every element (every row for cross-entropy) as a
NumPy array, computed by the reference formulas, and ``backward(grad)`` takes the
gradient w.r.t. those losses (None: all ones, the gradient of their sum).

A loss computed with gradients disabled (``fastnn.no_grad()``: a validation loss taken
between a training forward and its backward) leaves what ``backward`` returns as it was,
the gradient of the last forward run with gradients enabled, as PyTorch's loss tensor
from before keeps its graph.
"""
import functools
import inspect
import math
import os
import threading
import warnings
import weakref

import numpy as np

from .. import backend as _backend
from .. import device as _device
from .. import grad_mode as _grad_mode
from ..kernels.reference import losses as _reference
from ..kernels.reference.activations import log_softmax as _log_softmax
from ..errors import DtypeError, IndexValueError, RuntimeValueError
from ..ops import loss_value
from .distance import summed_to
from ..validation import (_FLOAT32, _FLOAT64, _INT64, LabelsOutOfRange, as_contiguous,
                          as_labels, broadcasts_to, check_flag, check_float_array,
                          check_labels, check_number, check_probabilities, float_of,
                          int_of, labels_in_range, labels_shape_hint, on_two_devices,
                          stacklevel_outside, tensor_hint)
from .module import _is_dtype_like

REDUCTIONS = ("mean", "sum", "none")


def cast_integer_target(target, dtype, kinds="iub"):
    """An integer (or, by kinds, bool) target array as a host array of float dtype: PyTorch
    takes one where the target is otherwise a float array like the prediction (MSE, L1,
    the margin losses' labels, ...). Anything else is returned as it is, for the checks
    after this to judge."""
    if _device.is_array(target) and np.dtype(target.dtype).kind in kinds:
        return np.asarray(_device.to_host(target), dtype)
    return target


# The loss whose no_grad forward runs in this thread (a subclass's forward calls
# Loss.forward: the outermost call keeps the state; _lock_of(loss), below, keeps two
# threads' calls on one shared loss apart).
_WITHOUT_GRAD = threading.local()


def legacy_reduction(size_average, reduce):
    """PyTorch's reduction for its deprecated size_average/reduce (either given; None
    stands for True), which then overrides reduction, with PyTorch's warning: 'none'
    unless reduce, else 'mean' if size_average, else 'sum'. The warning points two calls
    up: at the user's call of a loss class or of F's loss that asked for this."""
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    reduction = "none" if not reduce else ("mean" if size_average else "sum")
    warnings.warn(f"size_average and reduce args will be deprecated, please use "
                  f"reduction='{reduction}' instead.", stacklevel=4)
    return reduction


# A loss keeps what backward needs (its private attributes) between forward and
# backward. One loss object shared by threads that each train a model of their own (a
# hyper-parameter search with one ``criterion``, as PyTorch code has it) gave a thread
# the gradient of another's batch: forward and backward now run under the loss's own
# lock, with the calling thread's private state put in place first (per_thread_state).
# One lock per loss object, not one for all: with one process-wide lock the losses of
# models trained in separate threads took turns, and a child forked while another thread
# held it waited for ever in its first loss (3 of 3 forks), whatever loss it called.
_THREAD_KEYS = ("_thread_owner", "_thread_states", "_thread_base")
_get_ident = threading.get_ident
_LOCKS = {}                        # id(object) -> its RLock, while the object lives
_LOCKS_GUARD = threading.Lock()    # (held only to make a lock)
_SHARED_LOCK = threading.RLock()   # for objects that take no weak reference


def _lock_of(owner):
    """owner's own reentrant lock, made on first use and dropped with owner (kept
    outside owner, so copying or pickling it copies no lock)."""
    lock = _LOCKS.get(id(owner))
    if lock is not None:
        return lock
    with _LOCKS_GUARD:
        lock = _LOCKS.get(id(owner))
        if lock is None:
            try:
                weakref.finalize(owner, _LOCKS.pop, id(owner), None)
            except TypeError:
                return _SHARED_LOCK
            lock = _LOCKS[id(owner)] = threading.RLock()
    return lock


def _locks_after_fork_in_child():
    # the threads that held locks in the parent do not exist here
    global _LOCKS_GUARD, _SHARED_LOCK
    _LOCKS.clear()
    _LOCKS_GUARD, _SHARED_LOCK = threading.Lock(), threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_locks_after_fork_in_child)


def _private_state(state):
    return {k: v for k, v in state.items() if k.startswith("_") and k not in _THREAD_KEYS}


def _make_resident(loss):
    """Put the calling thread's private state in loss.__dict__ (under the lock): the
    state as constructed for a thread that has none yet; the leaving thread's is kept
    for it (dropped once that thread ends)."""
    state = loss.__dict__
    me, owner = _get_ident(), state.get("_thread_owner")
    if owner == me:
        return
    if owner is None:   # (the first call, or a copy: its state is the caller's)
        state.setdefault("_thread_base", _private_state(state))
        state["_thread_owner"] = me
        return
    running = {t.ident for t in threading.enumerate()}
    kept = {k: v for k, v in state.get("_thread_states", {}).items() if k in running}
    if owner in running:
        kept[owner] = _private_state(state)
    mine = kept.pop(me, None)
    for key in list(_private_state(state)):
        del state[key]
    state.update(state["_thread_base"] if mine is None else mine)
    state["_thread_states"], state["_thread_owner"] = kept, me


def per_thread_state(method):
    """method run under the loss lock with the calling thread's private state."""
    @functools.wraps(method)
    def run_with_this_threads_state(self, *args, **kwargs):
        with _lock_of(self):
            if self.__dict__.get("_thread_owner") != _get_ident():
                _make_resident(self)
            return method(self, *args, **kwargs)
    run_with_this_threads_state._per_thread = True
    return run_with_this_threads_state


def _one_device(loss, forward, args, kwargs):
    """PyTorch's error for tensors on two devices when a NumPy input (the first
    argument) comes with a device array (a device target), naming the argument: the
    device array was copied to the host before. (A device input with a NumPy target
    takes the target over to it, as README's GPU example gives its host labels.)"""
    if not args or type(args[0]) is not np.ndarray:
        return
    for key, value in [*enumerate(args[1:], 1), *kwargs.items()]:
        if _device.is_device_array(value):
            if type(key) is int:   # (its index in args: the name forward gives it)
                names = ([*loss.inputs, loss.labels] if getattr(loss, "inputs", None)
                         else list(inspect.signature(forward).parameters)[1:])
                key = names[key] if key < len(names) else f"argument {key + 1}"
            raise on_two_devices(loss._where(), key, False)


def _backward_state_kept_without_grad(forward):
    """forward, run under the loss lock with the calling thread's private state
    (per_thread_state); under no_grad with that state (the gradient backward hands out
    and what backward needs) put back afterwards, a subclass's own public attributes
    left as its forward set them: the kernels write their gradient into a buffer of their
    own there (kept for the next such call), not into the one backward hands out."""
    @functools.wraps(forward)
    def forward_keeping_backward_state(self, *args, **kwargs):
        for name in self.float_attributes:   # (attributes a user may set: see Loss)
            float_of(type(self).__name__, name, getattr(self, name))
        for name in self.int_attributes:
            int_of(type(self).__name__, name, getattr(self, name))
        _one_device(self, forward, args, kwargs)
        with _lock_of(self):
            if self.__dict__.get("_thread_owner") != _get_ident():
                _make_resident(self)
            if _grad_mode._MODE.enabled or getattr(_WITHOUT_GRAD, "loss", None) is self:
                return forward(self, *args, **kwargs)
            state = self.__dict__
            saved = {k: v for k, v in state.items() if k.startswith("_")}
            outer, _WITHOUT_GRAD.loss = getattr(_WITHOUT_GRAD, "loss", None), self
            state["_grad_buf"] = saved.get("_grad_buf_without_grad")
            try:
                return forward(self, *args, **kwargs)
            finally:
                _WITHOUT_GRAD.loss = outer
                buffer = state.get("_grad_buf")
                for key in [k for k in state if k.startswith("_") and k not in saved]:
                    del state[key]
                state.update(saved)
                state["_grad_buf_without_grad"] = buffer
    forward_keeping_backward_state._per_thread = True
    return forward_keeping_backward_state


def _runtime_number(where, name, value, *bounds, **options):
    """check_number, a value out of bounds a RuntimeValueError: PyTorch raises
    RuntimeError for it (when the loss is computed; fastnn at construction)."""
    try:
        check_number(where, name, value, *bounds, **options)
    except TypeError:
        raise
    except ValueError as error:
        raise RuntimeValueError(str(error)) from None


def warn_target_size(target_shape, input_shape, stacklevel):
    """PyTorch's warning for a target of another shape than the input's, which MSE, L1,
    smooth L1 and Huber broadcast; stacklevel counts from the caller of this function."""
    warnings.warn(f"Using a target size ({target_shape}) that is different to the input "
                  f"size ({input_shape}). This will likely lead to incorrect results due to "
                  f"broadcasting. Please ensure they have the same size.",
                  stacklevel=stacklevel + 1)


def deprecated_mean(reduction, takes_it=True):
    """PyTorch's deprecated reduction='elementwise_mean' as 'mean', with its warning, for
    a loss PyTorch reduces through _Reduction.get_enum (takes_it); any other value as it
    is."""
    if takes_it and isinstance(reduction, str) and reduction == "elementwise_mean":
        warnings.warn("reduction='elementwise_mean' is deprecated. Please use "
                      "reduction='mean' instead.", stacklevel=4)
        return "mean"
    return reduction


def _broadcast_pair(pred, target, full):
    """(pred, target) broadcast to the shape full: NumPy views for a host pred; for a
    device pred, device copies made on the host (a device array has no broadcast_to; a
    target of another shape is the uncommon case PyTorch warns about, off the hot path)."""
    if not _device.is_device_array(pred):
        return np.broadcast_to(pred, full), np.broadcast_to(_device.to_host(target), full)
    ns = _device.namespace_of(pred)
    if pred.shape != full:
        pred = ns.put(np.ascontiguousarray(np.broadcast_to(_device.to_host(pred), full)))
    return pred, ns.put(np.ascontiguousarray(np.broadcast_to(_device.to_host(target), full)))


class Loss:
    """Base class: validation, the reduction, the saved gradient and repr."""

    #: True where PyTorch takes integer (and bool) targets, cast to pred's dtype, for a
    #: loss whose target is otherwise a float array like pred
    integer_target = False
    #: False where PyTorch takes integer targets but refuses a bool one (its formula
    #: subtracts from the target, which a bool tensor refuses: L1, multilabel soft margin)
    bool_target = True
    #: False for the losses whose functional form checks the reduction itself, refusing
    #: PyTorch's deprecated 'elementwise_mean' (Poisson/Gaussian NLL, multilabel soft margin)
    takes_elementwise_mean = True
    #: how a target of another shape is taken, as PyTorch's loss takes it: None (an
    #: error), 'warn' (pred and target broadcast to one shape, with PyTorch's warning:
    #: MSE, L1, smooth L1, Huber), 'both' (broadcast, no warning), 'rank' (the same to
    #: pred's rank only) or 'target' (the target broadcast to pred's shape only); the
    #: gradient is summed back to pred's shape
    broadcast_target = None
    #: the loss's number hyper-parameters (margin, eps, ...), attributes a user may set
    #: after construction: checked at each forward, no number (a string, even '0.5')
    #: being the constructor's TypeError naming the loss and attribute (float_of)
    float_attributes = ()
    #: the same for int hyper-parameters (ignore_index): no int is the constructor's
    #: TypeError naming the loss and attribute (int_of)
    int_attributes = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "forward" in cls.__dict__:
            cls.forward = _backward_state_kept_without_grad(cls.__dict__["forward"])
        method = cls.__dict__.get("backward")
        if callable(method) and not getattr(method, "_per_thread", False):
            cls.backward = per_thread_state(method)

    def __getstate__(self):
        # (pickle, deepcopy) the state of the thread that holds it, as before; the other
        # threads' and their ids stay behind
        return {k: v for k, v in self.__dict__.items()
                if k not in ("_thread_owner", "_thread_states")}

    def __init__(self, reduction="mean", size_average=None, reduce=None):
        if size_average is not None or reduce is not None:
            reduction = legacy_reduction(size_average, reduce)
        reduction = deprecated_mean(reduction, self.takes_elementwise_mean)
        if not isinstance(reduction, str) or reduction not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: expected reduction 'mean', 'sum' or "
                             f"'none', got {reduction!r}")
        self.reduction = reduction
        self._grad = None

    @_backward_state_kept_without_grad
    def forward(self, pred, target):
        """Loss of pred against target: a number ('mean', 'sum'; a NumPy float64, which
        is a Python float with PyTorch's ``loss.item()``) or a NumPy array of
        per-element losses ('none': pred's shape, or the shape pred and target broadcast
        to where the loss takes broadcasting targets; (N,) for cross-entropy)."""
        pred, target = self._check(pred, target)
        if pred.size == 0:
            return self._empty(pred)
        kernels = (_backend.current() if type(pred) is np.ndarray
                   else _device.kernels(_device.device_of(pred)))
        into = self._kernel_into(kernels)
        if into is not None:   # the gradient into the loss's own array: no allocation
            loss, grad = into(pred, target, grad=self._grad_buffer(pred))
        else:
            loss, grad = self._kernel(kernels)(pred, target)
        count = self._count(pred)
        if self.reduction in ("mean", "batchmean"):  # (batchmean: KLDivLoss's count is N)
            return np.float64(loss_value(self._mean(loss, grad, count), pred.dtype))
        # the mean's gradient times the count: d(sum)/d(pred), also for 'none' (where
        # backward weights it by the gradient of each element's loss)
        self._grad = _device.scaled(grad, count)
        if self.reduction == "sum":
            return np.float64(loss_value(loss * count, pred.dtype))
        return self._losses(_device.to_host(pred), _device.to_host(target))

    def __call__(self, pred, target):
        return self.forward(pred, target)

    # PyTorch's losses are Modules, and its idioms on them (``criterion.to(device)``,
    # ``.cuda()``, ``.eval()``) work here too: a loss has no parameters and follows its
    # input's device and dtype, so they check their argument and return the loss.
    training = True

    def to(self, device=None, dtype=None):
        """self; a device other than 'cpu' / 'cuda' (or 'cuda' with no GPU) is an error,
        as Module.to's, and a dtype (in either place) changes nothing."""
        if device is not None and not _is_dtype_like(device):
            if _device.check_device(f"{type(self).__name__}.to", device) == "cuda":
                _device.kernels("cuda")  # a clear error where CUDA is unavailable
        return self

    def cpu(self):
        return self

    def cuda(self, device=None):
        return self.to("cuda")

    def float(self):
        return self

    def double(self):
        return self

    def train(self, mode=True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def parameters(self, recurse=True):
        """No parameters (an empty iterator), as a PyTorch loss."""
        return iter(())

    def named_parameters(self, prefix="", recurse=True):
        return iter(())

    def _mean(self, loss, grad, count):
        """The 'mean' loss from the kernel's mean over count elements; saves the gradient."""
        self._grad = grad
        return loss

    def _empty(self, pred):
        """PyTorch's loss of an empty batch pred (no kernel runs): the mean over no
        elements NaN (0 / 0), the sum 0, no per-element losses; the gradient pred's
        empty shape."""
        host = np.zeros(tuple(pred.shape), pred.dtype)
        self._grad = (_device.namespace_of(pred).put(host) if _device.is_device_array(pred)
                      else host)
        if self.reduction == "batchmean" and pred.ndim and pred.shape[0]:
            return np.float64(0.0)   # (a sum over no features, over N > 0 samples)
        if self.reduction in ("mean", "batchmean"):
            return np.float64(np.nan)
        if self.reduction == "sum":
            return np.float64(0.0)
        return np.zeros(self._loss_shape(tuple(pred.shape)), pred.dtype)

    @per_thread_state
    def backward(self, grad=None):
        """Gradient of the last forward's loss w.r.t. pred (same shape and dtype as pred;
        a fresh array, the caller's: changing it changes no later call's).

        grad: the gradient w.r.t. the loss, None for 1: a number for 'mean' and 'sum',
        for 'none' an array of the per-element losses' shape (or a number)."""
        if self._grad is None:
            raise RuntimeError(f"{self._where()}: backward called before forward")
        shape = self.__dict__.get("_broadcast_from")  # (an instance attribute, when set)
        if shape is not None:   # (a pred broadcast against its target)
            g = self._grad if grad is None else self._weighted(grad)
            summed = np.array(summed_to(_device.to_host(g), shape), g.dtype, order="C")
            return _device.namespace_of(g).put(summed) if _device.is_device_array(g) else summed
        if grad is None:
            if type(self._grad) is np.ndarray:   # (the caller's array: not a buffer of
                return self._grad.copy()         # fastnn's, so no 64-byte alignment)
            ns = _device.namespace_of(self._grad)    # (a device copy on the GPU)
            out = ns.empty(self._grad.shape, self._grad.dtype)
            ns.copy_into(out, self._grad)
            return out
        return self._weighted(grad)

    def _weighted(self, grad):
        """self._grad times grad (a number, or per element/row for 'none')."""
        where = f"{self._where()}.backward"
        g = self._grad
        dtype = g.dtype.type
        if np.ndim(grad) == 0:
            return _device.scaled(g, float(grad), copy=True)
        if self.reduction != "none":
            raise ValueError(f"{where}: expected a number as the gradient of a "
                             f"{self.reduction!r}-reduced loss, got shape {np.shape(grad)}")
        grad = _device.to_host(grad)
        expected = self._loss_shape(g.shape)
        if np.shape(grad) != expected:
            raise ValueError(f"{where}: expected grad of shape {expected} (one per loss), "
                             f"got {np.shape(grad)}")
        grad = np.asarray(grad, dtype=dtype).reshape(expected + (1,) * (g.ndim - len(expected)))
        # (reshaped: a 0-d pred's losses may be (1,), MultiMarginLoss's with labels (1,))
        out = (_device.to_host(g) * grad).reshape(g.shape)
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
        return check_float_array(self._where(), "pred", pred, device_ok=True)

    def _check_same(self, pred, target):
        where = self._where()
        if self.integer_target:
            target = cast_integer_target(target, pred.dtype, "iub" if self.bool_target else "iu")
        target = check_float_array(where, "target", target, dtype=pred.dtype, device_ok=True)
        before = None
        if target.shape != pred.shape:
            full = self._broadcast_shape(pred, target)
            if full is None:
                raise RuntimeValueError(f"{where}: expected target of shape {pred.shape} (same "
                                        f"as pred), got {target.shape}")
            if self.broadcast_target == "warn":
                warn_target_size(target.shape, pred.shape, stacklevel_outside(__file__))
            before = pred.shape
            pred, target = _broadcast_pair(pred, target, full)
        pred, target = self._beside(pred, target)
        self._broadcast_from = before   # (pred's shape, for backward's sum, once checked)
        return pred, target

    def _broadcast_shape(self, pred, target):
        """The shape pred and target broadcast to where this loss takes a target of
        another shape (host or device arrays), else None."""
        if self.broadcast_target is None or not (_device.is_array(pred)
                                                 and _device.is_array(target)):
            return None
        try:
            full = np.broadcast_shapes(pred.shape, target.shape)
        except ValueError:
            return None
        if self.broadcast_target == "target" and full != pred.shape:
            return None
        return None if self.broadcast_target == "rank" and len(full) != pred.ndim else full

    def _beside(self, pred, target):
        """(pred, target) C-contiguous, target moved to where pred lives."""
        pred = as_contiguous(pred)
        target = _device.namespace_of(pred).put(as_contiguous(target))
        return pred, target

    def _kernel_into(self, k):
        """The op of backend k when this loss is it as is, taking grad= (pred, target,
        grad=) -> (loss, grad), or None (then ``_kernel``'s result allocates)."""
        return None

    def _kernel(self, k):
        """(pred, target) -> (loss, grad of the mean) on backend k: ``_kernel_into``'s
        op unless a loss defines another way (host formulas, options)."""
        return self._kernel_into(k)

    def _grad_buffer(self, pred):
        """The array the kernel writes the gradient into, kept between calls of pred's
        shape, dtype and device (backward hands the caller a copy of it). On the GPU two
        take turns, the one not holding the last gradient: the cuda cross-entropy checks
        device labels inside its kernel, so a refused call has written its buffer by then,
        and the last gradient must not be that one."""
        state = self.__dict__
        buf = state.get("_grad_buf")
        if (type(buf) is np.ndarray and type(pred) is np.ndarray and buf.shape == pred.shape
                and buf.dtype is pred.dtype):
            return buf   # (the usual call: a host buffer kept from the last one)
        if buf is not None and buf is state.get("_grad") and _device.is_device_array(buf):
            state["_grad_buf"], state["_grad_buf_spare"] = state.get("_grad_buf_spare"), buf
            buf = state["_grad_buf"]
        if (buf is None or buf.shape != pred.shape or buf.dtype != pred.dtype
                or _device.device_of(buf) != _device.device_of(pred)):
            buf = self._grad_buf = _device.namespace_of(pred).empty(pred.shape, pred.dtype)
        return buf

    def _where(self):
        options = [f"reduction={self.reduction!r}"] if self.reduction != "mean" else []
        return f"{type(self).__name__}({', '.join(options + self._options())})"

    def _options(self):
        """The loss's own settings that differ from their defaults, as 'name=value'."""
        return []

    def __repr__(self):
        return self._where()


class _TorchOrder(Loss):
    """A loss whose constructor takes PyTorch's positional order (size_average, reduce,
    reduction): the base class's reduction-first order made nn.MSELoss(None, None,
    'sum') an error."""

    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__(reduction, size_average, reduce)


class MSELoss(_TorchOrder):
    """mean((pred - target)**2) over all elements. pred, target: one dtype, shapes that
    broadcast (PyTorch's warning when they differ; the gradient summed to pred's shape)."""

    broadcast_target = "warn"

    integer_target = True

    def _kernel_into(self, k):
        return k.mse_loss

    def _losses(self, pred, target):
        return _reference.mse_losses(pred, target)


class L1Loss(_TorchOrder):
    """mean(|pred - target|) over all elements (the gradient sign(d) / size, 0 at d = 0).
    pred, target: one dtype (an integer target is cast, as PyTorch takes one), shapes that
    broadcast as MSELoss's. The smooth_l1_loss op at beta = 0."""

    broadcast_target = "warn"

    integer_target = True
    bool_target = False    # (PyTorch's |pred - target| refuses a bool target)

    def _kernel_into(self, k):
        return lambda pred, target, grad=None: k.smooth_l1_loss(pred, target, 0.0, grad=grad)

    def _losses(self, pred, target):
        return _reference.smooth_l1_losses(pred, target, 0.0)


class SmoothL1Loss(Loss):
    """Mean of 0.5 d^2 / beta where |d| < beta, else |d| - beta / 2 (d = pred - target),
    PyTorch's SmoothL1Loss; beta = 0 is the L1 loss. pred, target: one dtype, shapes that
    broadcast as MSELoss's."""

    broadcast_target = "warn"

    integer_target = True

    float_attributes = ("beta",)

    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        super().__init__(reduction, size_average, reduce)
        _runtime_number(type(self).__name__, "beta", beta, 0.0, None)
        self.beta = float(beta)

    def _kernel_into(self, k):
        return lambda pred, target, grad=None: k.smooth_l1_loss(pred, target, self.beta,
                                                                grad=grad)

    def _options(self):
        return [f"beta={self.beta}"] if getattr(self, "beta", 1.0) != 1.0 else []

    def _losses(self, pred, target):
        return _reference.smooth_l1_losses(pred, target, self.beta)


class HuberLoss(Loss):
    """Mean of 0.5 d^2 where |d| <= delta, else delta (|d| - delta / 2), PyTorch's
    HuberLoss: delta times SmoothL1Loss(beta=delta) (the op smooth_l1_loss, rescaled).
    pred, target: one dtype, shapes that broadcast as MSELoss's; delta > 0."""

    broadcast_target = "warn"

    integer_target = True

    float_attributes = ("delta",)

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction)
        _runtime_number(type(self).__name__, "delta", delta, 0.0, None, low_open=True)
        self.delta = float(delta)

    def _kernel(self, k):
        def huber(pred, target):
            loss, grad = k.smooth_l1_loss(pred, target, self.delta)
            return loss * self.delta, _device.scaled(grad, self.delta)
        return huber

    def _losses(self, pred, target):
        return _reference.smooth_l1_losses(pred, target, self.delta) * pred.dtype.type(
            self.delta)

    def _options(self):
        return [f"delta={self.delta}"] if getattr(self, "delta", 1.0) != 1.0 else []


class _OnHost(Loss):
    """A loss computed by NumPy formulas on the host (a device pred comes to the host,
    its gradient goes back): ``_losses`` per element and ``_grad_terms``, the derivative
    of each element's loss w.r.t. its pred; ``_host`` returns them as a kernel does (the
    mean over ``_count`` elements and its gradient), so Loss.forward reduces them.
    NLLLoss, KLDivLoss and the weighted binary losses run this way."""

    def _host(self, pred, target):
        """(mean loss, its gradient on pred's device), the kernels' convention."""
        p, t = _device.to_host(pred), _device.to_host(target)
        losses = self._losses(p, t)
        count = self._count(p)
        # (asarray: a 0-d pred's gradient stays a 0-d array, not a NumPy scalar)
        grad = np.asarray(self._grad_terms(p, t) * p.dtype.type(1.0 / count), p.dtype)
        return (float(losses.sum(dtype=np.float64) / count),
                _device.namespace_of(pred).put(grad))


class _Weighted(_OnHost):
    """PyTorch's optional per-element ``weight`` of the binary losses (broadcast against
    pred): without it the loss kernel runs; with it (or BCEWithLogitsLoss's pos_weight)
    the host formulas of ``_OnHost``, reduced as the kernels' ('mean' over every
    element)."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(reduction, size_average, reduce)
        self.weight = _host_factor(type(self).__name__, "weight", weight)

    def _plain(self):
        return self.weight is None

    def _weights(self, pred):
        """weight broadcast to pred's shape, in pred's dtype (1 without one): a read-only
        view, for the formulas' products."""
        if self.weight is None:
            return pred.dtype.type(1)
        return self._broadcast("weight", self.weight, pred)

    def _broadcast(self, name, factor, pred):
        """factor (a weight) broadcast to pred's shape, in pred's dtype, as a view with
        zero strides (astype of a broadcast view made a copy laid out column-major,
        which made each product with pred 30x slower); one that does not broadcast to it
        (or would enlarge it, as PyTorch refuses too) is an error."""
        try:
            return np.broadcast_to(np.asarray(factor, pred.dtype), pred.shape)
        except ValueError:
            raise RuntimeValueError(f"{self._where()}: {name} of shape {factor.shape} does "
                                    f"not broadcast to pred's shape {pred.shape}") from None

    def _kernel_into(self, k):
        return self._plain_kernel(k) if self._plain() else None

    def _kernel(self, k):
        return self._kernel_into(k) or self._host

    def _options(self):
        return ["weight=<array>"] if getattr(self, "weight", None) is not None else []


class BCELoss(_Weighted):
    """Mean binary cross-entropy of probabilities pred in [0, 1] against target (same
    shape and dtype); logs are clamped at -100 as in PyTorch, so 0 and 1 stay finite.
    weight: PyTorch's per-element rescaling, broadcast against pred (host formulas)."""

    def _check(self, pred, target):
        pred, target = super()._check(pred, target)
        # NaN passes (comparisons are False) so a diverged run reports a NaN loss.
        # (On the GPU this check copies pred to the host.)
        if pred.size == 0:
            return pred, target
        for name, array in (("pred", pred), ("target", target)):   # (PyTorch checks both)
            check_probabilities(self._where(), name, _device.to_host(array))
        return pred, target

    def _plain_kernel(self, k):
        return k.bce_loss

    def _losses(self, pred, target):
        losses = _reference.bce_losses(pred, target)
        return losses if self.weight is None else losses * self._weights(pred)

    def _grad_terms(self, pred, target):
        """d(loss)/d(pred) per element: w (p - y) / max(p (1 - p), 1e-12), as PyTorch's."""
        denom = np.maximum(pred * (1 - pred), pred.dtype.type(_reference.BCE_EPSILON))
        return self._weights(pred) * (pred - target) / denom


class BCEWithLogitsLoss(_Weighted):
    """Mean binary cross-entropy of sigmoid(logits) against target (same shape and dtype),
    stable for logits of any magnitude (PyTorch's BCEWithLogitsLoss): the layer to pair
    with a final Linear instead of Sigmoid + BCELoss, whose float32 probability rounds to
    exactly 1 from a logit of about 17 on (the clamped log then caps the loss and zeroes
    the gradient's information).

    weight: per-element rescaling, broadcast against the logits; pos_weight: the weight of
    the positive term per class (broadcast along the last axis), PyTorch's
    (1 - y) x + (1 + (pos_weight - 1) y) log(1 + exp(-x)). Either option computes on the
    host; without them the fused kernel runs.
    """

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean",
                 pos_weight=None):
        super().__init__(weight, size_average, reduce, reduction)
        self.pos_weight = _host_factor(type(self).__name__, "pos_weight", pos_weight)

    def _plain(self):
        return self.weight is None and self.pos_weight is None

    def _plain_kernel(self, k):
        return k.bce_with_logits_loss

    def _log_weight(self, logits, target):
        if self.pos_weight is None:
            return np.ones_like(logits)
        pw = self._broadcast("pos_weight", self.pos_weight, logits)
        return 1 + (pw - 1) * target

    def _losses(self, pred, target):
        if self._plain():
            return _reference.bce_with_logits_losses(pred, target)
        softplus_neg = np.log1p(np.exp(-np.abs(pred))) + np.maximum(-pred, 0)
        losses = (1 - target) * pred + self._log_weight(pred, target) * softplus_neg
        return losses * self._weights(pred) if self.weight is not None else losses

    def _grad_terms(self, pred, target):
        """w ((1 - y) sigmoid(x) - p y sigmoid(-x)) per element, p the pos_weight (1
        without one): the derivative (1 - y) - (1 + (p - 1) y) sigmoid(-x) rearranged so
        that nothing cancels (for y = 0 that form was 1 - sigmoid(-x), 0 from x = -17 down
        in float32 and 1e-3 off at x = -10, where sigmoid(x) is exact)."""
        with np.errstate(over="ignore"):
            sig = 1 / (1 + np.exp(-pred))
            sig_neg = 1 / (1 + np.exp(pred))
        positive = target if self.pos_weight is None else (
            self._broadcast("pos_weight", self.pos_weight, pred) * target)
        return self._weights(pred) * ((1 - target) * sig - positive * sig_neg)

    def _options(self):
        return super()._options() + (
            ["pos_weight=<array>"] if getattr(self, "pos_weight", None) is not None else [])


class KLDivLoss(_OnHost):
    """PyTorch's KLDivLoss: target * (log(target) - pred) per element (0 where target is
    0 and pred finite), pred the log-probabilities (a LogSoftmax's output) and target
    probabilities, or log-probabilities with log_target=True (exp(target) (target - pred)).

    reduction: 'mean' (over every element, PyTorch's default), 'batchmean' (the sum over
    the batch size, the KL divergence proper), 'sum' or 'none'. Computed with NumPy on the
    host (a device pred comes to the host; its gradient goes back).
    """

    broadcast_target = "both"

    def __init__(self, size_average=None, reduce=None, reduction="mean", log_target=False):
        super().__init__("mean" if reduction == "batchmean" else reduction, size_average,
                         reduce)
        if reduction == "batchmean" and size_average is None and reduce is None:
            self.reduction = reduction   # (with size_average/reduce: the legacy one)
        if not isinstance(log_target, bool):
            raise TypeError(f"KLDivLoss: expected log_target to be a bool, got {log_target!r}")
        self.log_target = log_target

    def _kernel(self, k):
        return self._host

    def _count(self, pred):
        """The mean's denominator: the batch size for 'batchmean', else every element."""
        if self.reduction == "batchmean":   # (input's, before any broadcast, as PyTorch)
            shape = getattr(self, "_broadcast_from", None) or pred.shape
            return shape[0] if len(shape) else 1
        return pred.size

    def _grad_terms(self, pred, target):
        return -np.exp(target) if self.log_target else -target

    def _losses(self, pred, target):
        if self.log_target:
            return np.exp(target) * (target - pred)
        # PyTorch's xlogy(target, target) - target * pred: 0 log 0 is 0, but 0 times an
        # infinite pred NaN; a negative target's log NaN
        with np.errstate(divide="ignore", invalid="ignore"):
            xlogx = np.where(target == 0, pred.dtype.type(0), target * np.log(target))
            return (xlogx - target * pred).astype(pred.dtype)

    def _options(self):
        return ["log_target=True"] if getattr(self, "log_target", False) else []


class _ElementwiseOnHost(_OnHost):
    """A per-element loss of pred against a target of its shape, NumPy on the host."""

    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__(reduction, size_average, reduce)

    def _kernel(self, k):
        return self._host


class SoftMarginLoss(_ElementwiseOnHost):
    """log(1 + exp(-target * pred)) per element (two-class logistic loss), target in
    {-1, 1}; computed as softplus(-target pred) (finite for any pred), the gradient
    -target sigmoid(-target pred)."""

    broadcast_target = "target"

    integer_target = True

    def _losses(self, pred, target):
        z = -target * pred
        return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))

    def _grad_terms(self, pred, target):
        z = -target * pred
        e = np.exp(-np.abs(z))
        return -target * np.where(z >= 0, 1 / (1 + e), e / (1 + e))


class HingeEmbeddingLoss(_ElementwiseOnHost):
    """pred where target is 1, max(0, margin - pred) where it is -1 (PyTorch's
    HingeEmbeddingLoss, pred typically a distance)."""

    broadcast_target = "both"

    integer_target = True

    float_attributes = ("margin",)

    def __init__(self, margin=1.0, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        check_number("HingeEmbeddingLoss", "margin", margin)
        self.margin = float(margin)

    def _losses(self, pred, target):
        m = pred.dtype.type(self.margin)
        return (np.where(target != -1, pred, 0) +
                np.where(target != 1, np.maximum(m - pred, 0), 0)).astype(pred.dtype)

    def _grad_terms(self, pred, target):
        m = pred.dtype.type(self.margin)
        return (np.where(target != -1, 1, 0) -
                np.where((target != 1) & (m - pred >= 0), 1, 0)).astype(pred.dtype)

    def _options(self):
        return [f"margin={self.margin}"] if getattr(self, "margin", 1.0) != 1.0 else []


class MultiLabelSoftMarginLoss(_OnHost):
    """Multi-label one-vs-all logistic loss: pred (N, C) logits (or (C,), or
    (N, d1, ..., dk, C) as PyTorch takes it, the classes last), target of that shape with
    1 for each label present and 0 otherwise; per sample
    -mean_c w_c [t log sigmoid(x) + (1 - t) log sigmoid(-x)] (weight optional: (C,) or
    any shape that broadcasts to pred's, as PyTorch's (N, C) or (1, C)),
    then the reduction over the samples ('none': pred's shape without C). Computed as
    softplus terms (finite for any logit); the gradient w_c (sigmoid(x) - t) / C."""

    takes_elementwise_mean = False

    integer_target = True
    bool_target = False    # (PyTorch's 1 - target refuses a bool target)

    # (a target broadcasting with pred to pred's rank; the mean over pred's own C, as
    # PyTorch's. A target of a higher rank is refused: PyTorch then sums over axis
    # pred.ndim - 1 of the broadcast terms, a batch axis, not the classes)
    broadcast_target = "rank"

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(reduction, size_average, reduce)
        self.weight = _host_factor(type(self).__name__, "weight", weight)

    def _kernel(self, k):
        return self._host

    def _check(self, pred, target):
        pred, target = super()._check(pred, target)
        if len(self._classes_of(pred)) == 0 or not self._weight_fits(pred.shape):
            # (PyTorch: an IndexError for a 0-d pred, a RuntimeError for the weight)
            error = IndexValueError if not self._classes_of(pred) else RuntimeValueError
            raise error(f"{self._where()}: expected pred of shape (N, C), (C,) or "
                        f"(N, ..., C) and a weight of shape (C,) or any shape that "
                        f"broadcasts to pred's ((N, C), (1, C), ...), got "
                        f"{self._classes_of(pred)} "
                        f"and a weight of shape "
                        f"{None if self.weight is None else self.weight.shape}")
        return pred, target

    def _classes_of(self, pred):
        """pred's shape as given (before a broadcast against the target)."""
        shape = getattr(self, "_broadcast_from", None)
        return tuple(pred.shape if shape is None else shape)

    def _weight_fits(self, shape):
        """Whether the weight (if any) broadcasts to pred's shape without enlarging it
        (PyTorch multiplies it into the (N, ..., C) loss terms; the functional
        multilabel_soft_margin_loss also takes one that enlarges them)."""
        return self.weight is None or broadcasts_to(self.weight.shape, shape)

    def _w(self, pred):
        return pred.dtype.type(1) if self.weight is None else self.weight.astype(pred.dtype)

    @staticmethod
    def label_terms(pred, target):
        """Each label's -(t log sigmoid(x) + (1 - t) log sigmoid(-x)), as softplus terms
        (finite for any logit); pred's and target's broadcast shape."""
        def softplus(z):
            return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))
        return target * softplus(-pred) + (1 - target) * softplus(pred)

    def _losses(self, pred, target):
        per_label = self.label_terms(pred, target)
        classes = self._classes_of(pred)[-1]
        return ((per_label * self._w(pred)).sum(axis=-1) / pred.dtype.type(classes)).astype(
            pred.dtype)

    def _grad_terms(self, pred, target):
        # (1 - t) sigmoid(x) - t sigmoid(-x), which is sigmoid(x) - t with nothing
        # cancelling, as BCEWithLogitsLoss's (9e99d1a): sigmoid(x) - 1 for t = 1 was 0
        # from x = 17 on in float32 (37 in float64), where PyTorch's is -sigmoid(-x)
        e = np.exp(-np.abs(pred))
        big, small = 1 / (1 + e), e / (1 + e)   # sigmoid(|x|), sigmoid(-|x|)
        positive = pred >= 0
        sigmoid, sigmoid_neg = np.where(positive, big, small), np.where(positive, small, big)
        grad = (1 - target) * sigmoid - target * sigmoid_neg
        return (grad * self._w(pred) / self._classes_of(pred)[-1]).astype(pred.dtype)

    def _count(self, pred):
        # the samples: every position but the classes (tuple: the simulator's device
        # arrays refuse a negative index into their shape, as numba.cuda kernels do)
        return pred.size // tuple(pred.shape)[-1]

    def _empty(self, pred):
        """As Loss's, but a sample of no classes has PyTorch's loss, the mean over none:
        NaN (each one for 'none', their sum for 'sum')."""
        losses = super()._empty(pred)
        if pred.ndim and tuple(pred.shape)[-1] == 0 and math.prod(pred.shape[:-1]):
            if self.reduction == "none":
                return np.full(self._loss_shape(tuple(pred.shape)), np.nan, pred.dtype)
            return np.float64(np.nan)
        return losses

    def _loss_shape(self, pred_shape):
        return tuple(pred_shape)[:-1]

    def _options(self):
        return ["weight=<array>"] if getattr(self, "weight", None) is not None else []


class MultiMarginLoss(_OnHost):
    """Multi-class hinge loss: pred (N, C) scores (or (C,), or a 0-d score: C = 1),
    target integer labels (N,) (or a 0-d label: N = 1); per sample sum over i != y of
    w_y max(0, margin - x_y + x_i)^p / C, p 1 or 2, weight (C,) optional; 'none' gives
    one loss a sample in target's shape (PyTorch's: (1, C) scores and a 0-d label give a
    0-d loss, (C,) scores and labels (1,) losses (1,))."""

    float_attributes = ("margin",)

    def __init__(self, p=1, margin=1.0, weight=None, size_average=None, reduce=None,
                 reduction="mean"):
        super().__init__(reduction, size_average, reduce)
        name = type(self).__name__
        if p not in (1, 2) or isinstance(p, bool):
            raise ValueError(f"{name}: only p = 1 and p = 2 are supported, got {p!r}")
        check_number(name, "margin", margin)
        self.p, self.margin = int(p), float(margin)
        self.weight = _host_factor(name, "weight", weight)

    def _kernel(self, k):
        return self._host

    def _check(self, pred, target):
        pred = as_contiguous(self._check_pred(pred))
        if pred.ndim > 2:
            raise RuntimeValueError(f"{self._where()}: expected pred of shape (N, C), (C,) or "
                                    f"(), got {pred.shape}")
        rows = self._rows(pred)
        if getattr(target, "ndim", 0) > 1:   # (PyTorch's check; flattening took (1, N))
            raise RuntimeValueError(
                f"{self._where()}: target tensor should be 1-D with size equal to the number "
                f"of input samples (batch size). Expected target size [{rows.shape[0]}], but "
                f"got {list(target.shape)}")
        try:
            labels = as_labels(self._where(), np.reshape(_device.to_host(target), -1),
                               rows.shape[0], rows.shape[1])
        except LabelsOutOfRange as error:   # (PyTorch's "target out of range")
            raise RuntimeValueError(str(error)) from None
        if self.weight is not None and self.weight.shape != (rows.shape[1],):
            raise RuntimeValueError(f"{self._where()}: expected a weight of shape "
                                    f"({rows.shape[1]},), got {self.weight.shape}")
        # the 'none' losses' shape (and backward's grad's): target's, as PyTorch's
        self._labels_shape = tuple(np.shape(target))
        return pred, labels

    @staticmethod
    def _rows(pred):
        """pred as (N, C) scores: (C,) one row, a 0-d score one class (tuple: the CUDA
        simulator's shapes refuse negative indices)."""
        return pred.reshape((-1, tuple(pred.shape)[-1] if pred.ndim else 1))

    def _margins(self, pred, target):
        rows = self._rows(pred)
        n = rows.shape[0]
        picked = rows[np.arange(n), target][:, None]
        z = pred.dtype.type(self.margin) - picked + rows
        z[np.arange(n), target] = 0
        w = (np.ones(n, pred.dtype) if self.weight is None
             else self.weight.astype(pred.dtype)[target])
        return rows, z, w

    def _losses(self, pred, target):
        rows, z, w = self._margins(pred, target)
        # PyTorch's kernel adds a term where z > 0: a NaN margin (from NaN or inf - inf
        # scores) counts for nothing, as there (np.maximum would carry it)
        hinge = np.where(z > 0, z, pred.dtype.type(0)) ** self.p
        losses = (hinge.sum(axis=1) * w / rows.shape[1]).astype(pred.dtype)
        return losses.reshape(self._loss_shape(pred.shape))

    def _grad_terms(self, pred, target):
        rows, z, w = self._margins(pred, target)
        n = rows.shape[0]
        active = z > 0
        scale = (w / rows.shape[1])[:, None]
        # p = 2: (2 w / C) z, PyTorch's order (2 z first overflowed near the float's max)
        grad = (active.astype(pred.dtype) * scale if self.p == 1
                else np.where(active, z, pred.dtype.type(0)) * (2 * scale))
        grad[np.arange(n), target] = -grad.sum(axis=1)
        return grad.reshape(pred.shape).astype(pred.dtype)

    def _count(self, pred):
        return pred.shape[0] if pred.ndim == 2 else 1

    def _loss_shape(self, pred_shape):
        # (the last checked target's shape; pred's without C before any)
        return self.__dict__.get("_labels_shape", tuple(pred_shape)[:-1])

    def _options(self):
        options = [f"p={self.p}"] if getattr(self, "p", 1) != 1 else []
        if getattr(self, "margin", 1.0) != 1.0:
            options.append(f"margin={self.margin}")
        return options + (["weight=<array>"] if getattr(self, "weight", None) is not None
                          else [])


class MultiLabelMarginLoss(_OnHost):
    """Multi-label hinge loss (PyTorch's MultiLabelMarginLoss): pred (N, C) scores (or
    (C,), or a 0-d score), target integer class indices of pred's shape, each row's
    labels listed first and ended by -1 (the entries after the first -1 are ignored; a row
    without -1 uses all C). Per sample, over each listed label j (a label listed twice
    counts twice) and each class i not listed,
    sum max(0, 1 - (x[j] - x[i])) / C, then the reduction over the samples ('none': (N,),
    or () for one sample). The gradient: -1/C at j and +1/C at i for each term with
    1 - x[j] + x[i] > 0 (0 at the hinge, as PyTorch's). Every target entry must lie in
    [-1, C), as PyTorch checks; any integer dtype is taken (PyTorch: int64 only)."""

    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__(reduction, size_average, reduce)

    def _kernel(self, k):
        return self._host

    def _host(self, pred, target):
        loss, grad = super()._host(pred, target)
        return loss, grad.reshape(pred.shape)   # (a 0-d pred's gradient stays 0-d)

    def backward(self, grad=None):
        out = super().backward(grad)
        return out if _device.is_array(out) else np.asarray(out)   # (0-d: an array)

    def _check(self, pred, target):
        where = self._where()
        self._last = None   # (the losses kept by _hinges are this forward's only)
        pred = self._check_pred(pred)
        if tuple(pred.shape)[-1:] == (0,):   # (no samples is an empty batch)
            raise RuntimeValueError(f"{where}: expected pred with a non-empty class "
                                    f"dimension, got shape {tuple(pred.shape)}")
        if pred.ndim > 2:
            raise RuntimeValueError(f"{where}: expected pred of shape (N, C), (C,) or (), "
                                    f"got {pred.shape}")
        if not _device.is_array(target) or target.dtype.kind not in "iu":
            got = target.dtype if _device.is_array(target) else type(target).__name__
            raise DtypeError(f"{where}: expected target to be integer class indices ended by "
                             f"-1, got {got}")
        target = _device.to_host(target)
        if target.shape != tuple(pred.shape):
            raise RuntimeValueError(f"{where}: expected target of shape {tuple(pred.shape)} "
                                    f"(as pred), got {target.shape}")
        c = tuple(pred.shape)[-1] if pred.ndim else 1
        if target.size and (target.min() < -1 or target.max() >= c):
            raise RuntimeValueError(f"{where}: target out of range: expected values in [-1, "
                                    f"{c}), got min {target.min()} and max {target.max()}")
        return as_contiguous(pred), np.ascontiguousarray(target, np.int64)

    def _hinges(self, pred, target):
        """(per-sample losses, d(loss)/d(pred) per sample) in one pass over the label
        positions k (each vectorised over the samples and classes); kept for the 'none'
        losses of the same forward."""
        last = getattr(self, "_last", None)
        if last is not None and last[0] is pred and last[1] is target:
            return last[2]
        c = tuple(pred.shape)[-1] if pred.ndim else 1
        x = pred.reshape(-1, c)
        t = target.reshape(x.shape)
        n = x.shape[0]
        negative = t < 0
        listed = np.arange(c) < np.where(negative.any(axis=1), negative.argmax(axis=1),
                                         c)[:, None]  # (N, C): positions before the first -1
        rows = np.arange(n)
        is_target = np.zeros((n, c), bool)
        is_target[rows[:, None].repeat(c, 1)[listed], t[listed]] = True
        one, step = x.dtype.type(1), x.dtype.type(1.0 / c)
        total = np.zeros(n)
        grad = np.zeros((n, c), x.dtype)
        for k in range(int(listed.sum(axis=1).max(initial=0))):
            labels = np.where(listed[:, k], t[:, k], 0)
            z = one - x[rows, labels][:, None] + x   # PyTorch's 1 - x[j] + x[i]
            active = (z > 0) & ~is_target & listed[:, k:k + 1]
            total += np.where(active, z, 0).sum(axis=1, dtype=np.float64)
            grad += active * step
            grad[rows, labels] -= active.sum(axis=1) * step
        result = ((total / c).astype(x.dtype).reshape(pred.shape[:-1]),
                  grad.reshape(pred.shape))
        self._last = (pred, target, result)
        return result

    def _losses(self, pred, target):
        return self._hinges(pred, target)[0]

    def _grad_terms(self, pred, target):
        return self._hinges(pred, target)[1]

    def _count(self, pred):
        return pred.shape[0] if pred.ndim == 2 else 1

    def _loss_shape(self, pred_shape):
        return tuple(pred_shape)[:-1]


class PoissonNLLLoss(_ElementwiseOnHost):
    """Poisson negative log-likelihood of counts target with rate exp(pred) (log_input,
    the default: exp(pred) - target pred) or pred (pred - target log(pred + eps));
    full=True adds Stirling's target log(target) - target + log(2 pi target) / 2 where
    target > 1 (a constant: no gradient)."""

    broadcast_target = "both"

    takes_elementwise_mean = False

    integer_target = True

    float_attributes = ("eps",)

    def __init__(self, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None,
                 reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.log_input = check_flag("PoissonNLLLoss", "log_input", log_input)
        self.full = check_flag("PoissonNLLLoss", "full", full)
        check_number("PoissonNLLLoss", "eps", eps, low=0.0, high=None)  # (0: PyTorch's too)
        self.eps = float(eps)

    def _losses(self, pred, target):
        if self.log_input:
            loss = np.exp(pred) - target * pred
        else:
            with np.errstate(divide="ignore", invalid="ignore"):   # (eps = 0, pred = 0)
                loss = pred - target * np.log(pred + pred.dtype.type(self.eps))
        if self.full:
            with np.errstate(divide="ignore", invalid="ignore"):
                stirling = (target * np.log(target) - target
                            + 0.5 * np.log(2 * np.pi * target))
            loss = loss + np.where(target > 1, stirling, 0)
        return loss.astype(pred.dtype)

    def _grad_terms(self, pred, target):
        if self.log_input:
            return np.exp(pred) - target
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1 - target / (pred + pred.dtype.type(self.eps))

    def _options(self):
        options = [] if getattr(self, "log_input", True) else ["log_input=False"]
        return options + (["full=True"] if getattr(self, "full", False) else [])


def _host_factor(where, name, value):
    """None, or a weight given as an array (NumPy or device) or a list, as a float64 NumPy
    array (cast to pred's dtype when used)."""
    if value is None:
        return None
    array = np.asarray(_device.to_host(value) if _device.is_array(value) else value)
    if array.dtype.kind not in "iuf":   # (an empty one is PyTorch's for no features)
        raise ValueError(f"{where}: expected {name} to be a numeric array, got "
                         f"{array.dtype} of shape {array.shape}")
    return array.astype(np.float64)


class _ClassTargets(Loss):
    """What CrossEntropyLoss and NLLLoss share: PyTorch's per-class weight (C,) and
    ignore_index, the (N, C) target they describe (``dense_target``), and the mean over the
    rows' summed weight instead of N. When that weight is 0 the loss is PyTorch's x / 0
    (NaN, or an infinity when negative weights cancel) and the gradient of every row not
    ignored is NaN (PyTorch's holds NaN and infinities there); all rows ignored: NaN and
    a zero gradient (NaN where CrossEntropyLoss's log-softmax of a row is NaN)."""

    label_smoothing = 0.0
    _pred_name, _pred_what = "pred", "pred"  # how error messages name pred
    int_attributes = ("ignore_index",)

    def __init__(self, weight, size_average, ignore_index, reduce, reduction):
        super().__init__(reduction, size_average, reduce)
        self.weight = class_weights(type(self).__name__, weight)
        self.ignore_index = int_of(type(self).__name__, "ignore_index", ignore_index)
        self._denominator = None  # the last forward's mean denominator when not N
        self._ignored = None  # host mask (N,) of the rows ignore_index dropped, or None
        # host labels (N,) (0 where ignored) when the dense target holds one term a row
        # (labels without smoothing), whose loss is then that term alone: else None
        self._labels = None
        self._layout = None  # (moved shape, losses' shape, class axis) when pred is not (N, C)

    def forward(self, pred, target):
        """As ``Loss.forward``; pred may also be one unbatched sample (C,) with a label
        () (or (1,) without label smoothing, as PyTorch's forward takes it: a 0-d loss for
        'none' either way) (or, CrossEntropyLoss only, probabilities (C,)), or
        (N, C, d1, ..., dk) with labels (N, d1, ..., dk) (or, CrossEntropyLoss only,
        probabilities of pred's shape): PyTorch's K-dimensional form, a class score per
        pixel; the kernels see (rows, C), the class axis moved last in a copy. NLLLoss
        takes labels only."""
        layout = None
        if (not (type(pred) is np.ndarray and pred.ndim == 2) and _device.is_array(pred)
                and pred.ndim != 2 and pred.ndim >= 1
                and pred.dtype.kind == "f"):   # (else _check_pred names the bad dtype)
            pred, target, layout = self._as_rows(pred, target)
        try:
            losses = super().forward(pred, target)
        except LabelsOutOfRange:
            if not _device.is_device_array(pred):
                raise
            # the cuda kernel's check of device labels: rows holding ignore_index take the
            # host path that drops them (as host labels do); else the error, our name on it
            host = _device.to_host(target)
            if not np.any(host == self.ignore_index):
                check_labels(self._where(), host, *pred.shape)
                raise
            losses = super().forward(pred, host)
        self._layout = layout  # (a failed call keeps the last gradient and its layout)
        if layout is not None and self.reduction == "none":
            return losses.reshape(layout[1])
        return losses

    def backward(self, grad=None):
        if self._layout is None:
            return super().backward(grad)
        moved_shape, loss_shape, axis = self._layout
        if grad is not None and np.ndim(grad) > 0:
            if np.shape(grad) != loss_shape:
                raise ValueError(f"{self._where()}.backward: expected grad of shape "
                                 f"{loss_shape} (one per loss), got {np.shape(grad)}")
            grad = np.reshape(_device.to_host(grad), (-1,))
        return _device.from_rows(super().backward(grad), moved_shape, axis)

    def _as_rows(self, pred, target):
        """(pred as (rows, C), target as (rows,) labels or (rows, C) probabilities,
        (pred's shape with the class axis moved last, the per-element losses' shape, the
        class axis))."""
        where, shape = self._where(), tuple(pred.shape)
        if not _device.is_array(target):
            target = np.asarray(target)  # a label given as a Python int
        labels = target.dtype.kind in "iu"
        if len(shape) == 1:
            want, loss_shape = ((), ()) if labels else (shape, ())
        else:
            loss_shape = shape[:1] + shape[2:]
            want = loss_shape if labels else shape
        if labels and tuple(target.shape) == shape:
            self._integer_probabilities(where, target, loss_shape, 0 if len(shape) == 1 else 1)
        if (labels and len(shape) == 1 and tuple(target.shape) == (1,)
                and not self.label_smoothing):
            want = (1,)   # one sample's label as (1,), as PyTorch's forward takes it
        if tuple(target.shape) != want:
            kind = "labels" if labels else "probabilities"
            raise RuntimeValueError(f"{where}: expected {kind} of shape {want} for "
                                    f"{self._pred_what} of shape {shape}, got "
                                    f"{tuple(target.shape)}"
                                    f"{labels_shape_hint(target.shape, want) if labels else ''}")
        axis = 0 if len(shape) == 1 else 1
        rows, moved_shape = _device.rows_along(pred, axis)
        target = (target.reshape(rows.shape[0]) if labels
                  else _device.rows_along(target, axis)[0])
        return rows, target, (moved_shape, loss_shape, axis)

    def _dense(self, pred, target):
        """The (N, C) target in pred's dtype for host labels or probabilities, and the
        mean's denominator saved for ``_mean``."""
        target = _device.to_host(target)
        dense, self._denominator = dense_target(
            self._where(), target, pred.shape[1], self.weight,
            self.ignore_index, self.label_smoothing, pred.dtype)
        labels = target.dtype.kind in "iu"
        self._ignored = target == self.ignore_index if labels else None
        self._labels = (np.where(self._ignored, 0, target)
                        if labels and not self.label_smoothing else None)
        self._terms_over_zero = (self._smoothing_terms(pred, target)
                                 if labels and self.label_smoothing and self._denominator == 0
                                 else None)
        return dense

    def _smoothing_terms(self, pred, labels):
        """(1 - eps) * nll and eps / C * smooth, PyTorch's two sums over the rows kept
        (nll: sum of w_y (-log p_y); smooth: sum over classes of w_c (-log p_c)), which its
        'mean' divides by the counted weight one at a time: for a weight of 0, x / 0 each."""
        x = _device.to_host(pred).astype(np.float64)
        logp = _log_softmax(x)
        kept = labels != self.ignore_index
        rows, y = np.flatnonzero(kept), labels[kept]
        w = (np.ones(x.shape[1]) if self.weight is None
             else np.asarray(self.weight, np.float64))
        nll = -(w[y] * logp[rows, y]).sum()
        smooth = -(logp[rows] * w).sum()
        eps = self.label_smoothing
        return (1 - eps) * nll, eps / x.shape[1] * smooth

    def _mean(self, loss, grad, count):
        denominator = self._denominator
        if denominator is None:
            return super()._mean(loss, grad, count)
        # the kernel's mean divides by N, PyTorch's by the weight of the rows counted
        if denominator:
            factor = count / denominator
            self._grad = _device.scaled(grad, factor)
            return loss * factor
        host = self._grad_over_zero_weight(grad)
        self._grad = _device.namespace_of(grad).put(host) if _device.is_device_array(
            grad) else host
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = self.__dict__.get("_terms_over_zero")
            if terms is not None:   # (inf - inf is NaN there, not the sum's infinity)
                return float(np.float64(terms[0]) / 0.0 + np.float64(terms[1]) / 0.0)
            return float(np.float64(loss) * count / np.float64(0.0))

    def _grad_over_zero_weight(self, grad):
        """The gradient (a host array of grad's shape) when the counted rows' weights sum
        to 0: NaN on each row not ignored (PyTorch's is NaN at the label and -+inf on the
        other classes: fastnn does not copy that pattern of its 0 / 0; README says so). An
        ignored row keeps the kernel's softmax * 0: 0, or NaN where its log-softmax is
        NaN (a NaN or +inf logit, a row of -inf), as PyTorch's backward through it."""
        host = np.full(tuple(grad.shape), np.nan, grad.dtype)
        if self._ignored is not None:
            host[self._ignored] = _device.to_host(grad)[self._ignored]
        return host

    def _integer_probabilities(self, where, target, label_shape, axis=1):
        """Integer targets of pred's shape (one-hot rows along the class axis), where
        this loss takes labels of label_shape: left to the shape check (CrossEntropyLoss
        refuses them by dtype)."""

    def _check_pred(self, pred):
        where = self._where()
        pred = check_float_array(where, self._pred_name, pred, ndim=2, device_ok=True)
        if pred.shape[1] == 0:   # (no rows is an empty batch: PyTorch's NaN mean)
            raise ValueError(f"{where}: expected {self._pred_what} (N, C) with at least one "
                             f"class, got shape {pred.shape}")
        self._denominator = self._labels = self._ignored = None
        return pred

    def _ignores_some(self, target):
        """True when target holds integer labels equal to ignore_index."""
        if not _device.is_array(target) or target.dtype.kind not in "iu":
            return False
        return bool(np.any(_device.to_host(target) == self.ignore_index))

    def _count(self, pred):
        return pred.shape[0]  # PyTorch's mean is over rows

    def _loss_shape(self, pred_shape):
        return pred_shape[:1]

    def _options(self):
        options = []
        if getattr(self, "weight", None) is not None:
            options.append(f"weight=<{self.weight.size} class weights>")
        if getattr(self, "ignore_index", -100) != -100:
            options.append(f"ignore_index={self.ignore_index}")
        if getattr(self, "label_smoothing", 0.0):
            options.append(f"label_smoothing={self.label_smoothing}")
        return options


class CrossEntropyLoss(_ClassTargets):
    """Mean cross-entropy of softmax(logits), stable for logits of any magnitude.

    pred: logits (N, C); target: integer class labels (N,) in [0, C), or probabilities
    (N, C) (one-hot or soft) in pred's dtype; as in PyTorch, rows need not sum to 1.
    Also PyTorch's other forms: one sample (C,) with a label () or probabilities (C,),
    and (N, C, d1, ..., dk) with labels (N, d1, ..., dk) (see ``forward``).

    PyTorch's options, with its formulas: weight (C,) rescales each class's term (for
    labels, the mean divides by the summed weight of the labels instead of N);
    ignore_index: rows whose label equals it add nothing (labels only; the mean is over
    the other rows, NaN when none is left); label_smoothing ε in [0, 1] mixes the target
    with the uniform distribution, (1 - ε) target + ε / C. With the defaults the kernel
    takes the labels as they are; otherwise the (N, C) target that the options describe
    is built on the host and the kernel runs on it, its mean rescaled.

    A zero 'sum' or 'mean' loss of probability targets (all-zero targets, or an empty
    batch's sum) is 0.0, where PyTorch's is -0.0, the sign its formula -(sum of
    target * log_softmax) gives a zero: the two compare equal, and the gradient's
    zeros have PyTorch's signs.
    """

    _pred_name = _pred_what = "logits"

    float_attributes = ("label_smoothing",)

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", label_smoothing=0.0):
        super().__init__(weight, size_average, ignore_index, reduce, reduction)
        _runtime_number(type(self).__name__, "label_smoothing", label_smoothing, 0.0, 1.0,
                        high_open=False)
        self.label_smoothing = float(label_smoothing)

    def _check(self, pred, target):
        if (type(pred) is np.ndarray and type(target) is np.ndarray and pred.ndim == 2
                and target.dtype is _INT64 and (pred.dtype is _FLOAT32 or pred.dtype is _FLOAT64)
                and target.shape == pred.shape[:1] and pred.shape[1]
                and pred.flags.c_contiguous and target.flags.c_contiguous
                and self.weight is None and self.label_smoothing == 0.0
                and self.ignore_index < 0 and labels_in_range(target, pred.shape[1])):
            # the training loop's call (logits and int64 labels in range, no options):
            # what the checks below find, without building their messages
            self._denominator = self._labels = self._ignored = None
            return pred, target
        where = self._where()
        pred = self._check_pred(pred)
        n, c = pred.shape
        plain = self.weight is None and self.label_smoothing == 0.0
        kind = target.dtype.kind if _device.is_array(target) else None
        if kind is not None and kind in "iu":
            if target.shape == (n, c):
                self._integer_probabilities(where, target, (n,))
            if plain and (self.ignore_index < 0 or not self._ignores_some(target)):
                try:  # (device labels beside device logits: the kernel checks them)
                    return self._beside(pred, as_labels(
                        where, target, n, c, kernel_checks=_device.is_device_array(pred)))
                except ValueError:
                    # labels out of range: fine where they are the ignored ones
                    if not self._ignores_some(target):
                        raise
            if target.shape != (n,):
                raise RuntimeValueError(f"{where}: expected labels of shape ({n},), got "
                                        f"{target.shape}{labels_shape_hint(target.shape, (n,))}")
            return self._beside(pred, self._dense(pred, target))
        if kind == "f":
            if target.ndim == 1:  # (N,) class labels of a float dtype, as PyTorch refuses
                raise DtypeError(f"{where}: expected integer class labels ({n},) or "
                                 f"probabilities ({n}, {c}), got a {target.dtype} target of "
                                 f"shape {tuple(target.shape)}; class labels need an integer "
                                 f"dtype (y.astype(np.int64))")
            if self.ignore_index >= 0:   # (a negative one never matches: PyTorch's rule)
                raise RuntimeValueError(f"{where}: ignore_index is not supported for "
                                        f"probability targets, got ignore_index="
                                        f"{self.ignore_index}")
            pred, target = self._check_same(pred, target)
            return (pred, target) if plain else self._beside(pred, self._dense(pred, target))
        got = (f"a {'CUDA device array' if _device.is_device_array(target) else 'numpy.ndarray'}"
               f" of dtype {target.dtype}" if _device.is_array(target)
               else type(target).__name__ + tensor_hint(target))
        raise DtypeError(f"{where}: expected target to be integer labels (N,) or "
                         f"probabilities (N, C), got {got}")

    def _integer_probabilities(self, where, target, label_shape, axis=1):
        """Refuse integer targets of the logits' shape (one-hot rows of np.eye(C,
        dtype=int)): probabilities, which take a float dtype, as PyTorch's RuntimeError
        ("Expected floating point type for target with class probabilities")."""
        raise DtypeError(f"{where}: expected integer class labels of shape {label_shape} or "
                         f"float probabilities of the logits' shape {tuple(target.shape)}, got "
                         f"a target of dtype {target.dtype} and the logits' shape: probabilities "
                         f"(one-hot rows) need a float dtype (y.astype(np.float32)), or give "
                         f"the class labels (y.argmax({axis}))")

    def _kernel_into(self, k):
        return k.softmax_cross_entropy if self._ignored is None else None

    def _kernel(self, k):
        if self._ignored is None:
            return self._kernel_into(k)

        def from_labels(pred, dense):
            with np.errstate(invalid="ignore"):   # (the NumPy kernel's 0 * -inf)
                loss, grad = k.softmax_cross_entropy(pred, dense)
            if loss != loss:  # NaN: perhaps a 0 in the dense target times a -inf log-prob
                loss = float(self._losses(_device.to_host(pred), _device.to_host(dense)).sum(
                    dtype=np.float64) / pred.shape[0])
            return loss, grad
        return from_labels

    def _losses(self, pred, target):
        if self._ignored is None:
            return _reference.cross_entropy_losses(pred, target)
        # the dense target of labels: as PyTorch, an ignored row adds 0 and a row without
        # smoothing its label's term alone (a gather), where a -inf logit elsewhere in the
        # row would give 0 * -inf in the row's sum
        with np.errstate(invalid="ignore"):   # (0 * -inf in ignored rows, dropped)
            if self._labels is None:
                terms = _reference.cross_entropy_losses(pred, target)
            else:
                rows = np.arange(pred.shape[0])
                terms = -target[rows, self._labels] * _log_softmax(pred)[rows, self._labels]
        return np.where(self._ignored, pred.dtype.type(0), terms).astype(pred.dtype)


class NLLLoss(_ClassTargets, _OnHost):
    """Mean negative log-likelihood: -pred[i, target[i]] averaged over the rows, for
    log-probabilities pred (N, C) (a LogSoftmax's output) and integer labels (N,).

    weight (C,) and ignore_index as in CrossEntropyLoss (the mean divides by the summed
    weight of the rows counted; NaN when none is). LogSoftmax + NLLLoss computes what
    CrossEntropyLoss computes in one fused kernel; this loss is a gather of N values, done
    with NumPy on the host (for a device pred too, whose values come to the host).
    """

    _pred_what = "log-probabilities"

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean"):
        super().__init__(weight, size_average, ignore_index, reduce, reduction)
        self._row_coef = None  # the last forward's (N,) weight of -pred at each row's label

    def _check(self, pred, target):
        where = self._where()
        pred = self._check_pred(pred)
        if not _device.is_array(target) or target.dtype.kind not in "iu":
            got = (target.dtype if _device.is_array(target)
                   else type(target).__name__ + tensor_hint(target))
            raise DtypeError(f"{where}: expected target to be integer class labels (N,), "
                             f"got {got}")
        if target.shape != pred.shape[:1]:
            raise RuntimeValueError(f"{where}: expected labels of shape ({pred.shape[0]},), "
                                    f"got {target.shape}"
                                    f"{labels_shape_hint(target.shape, pred.shape[:1])}")
        target = _device.to_host(target)
        self._row_coef = self._row_weights(pred, target)
        return pred, target

    def _row_weights(self, pred, labels):
        """Each row's weight of -pred at its label, (N,) in pred's dtype (0 where
        ignored): the rows of dense_target's (N, C) target, which hold one term each,
        without building it. Saves the mean's denominator (None when it is N), the
        ignored rows and the labels (0 where ignored), as ``_dense`` does."""
        self._labels, self._ignored, row_weights, denominator = label_weights(
            self._where(), labels, pred.shape[1], self.weight, self.ignore_index)
        plain = self.weight is None and not self._ignored.any()
        self._denominator = None if plain else denominator
        return row_weights.astype(pred.dtype)

    def _host(self, pred, target):
        """(mean loss, its gradient on pred's device): a gather of the N label entries
        and a gradient of zeros with -weight / N scattered there."""
        p = _device.to_host(pred)
        n = p.shape[0]
        rows = np.arange(n)
        losses = self._losses(p, target)
        grad = np.zeros(p.shape, p.dtype)
        grad[rows, self._labels] = -self._row_coef * p.dtype.type(1.0 / n)
        return (float(losses.sum(dtype=np.float64) / n),
                _device.namespace_of(pred).put(grad))

    def _kernel(self, k):
        return self._host

    def _grad_over_zero_weight(self, grad):
        """PyTorch's NLL backward: -w / 0 at each kept row's label entry (NaN for a
        weight of 0, else -+inf) and 0 elsewhere (no softmax spreads it over the row)."""
        if self._labels is None:
            return super()._grad_over_zero_weight(grad)
        host = np.zeros(tuple(grad.shape), grad.dtype)
        kept = np.flatnonzero(~self._ignored)
        labels = self._labels[kept]
        w = (np.ones(len(kept)) if self.weight is None
             else np.asarray(self.weight, np.float64)[labels])
        with np.errstate(divide="ignore", invalid="ignore"):
            host[kept, labels] = -w / 0.0
        return host

    def _losses(self, pred, labels):
        # a gather, not a row sum: -inf log-probabilities elsewhere stay out
        picked = pred[np.arange(pred.shape[0]), self._labels]
        return np.where(self._ignored, pred.dtype.type(0), -self._row_coef * picked)


def class_weights(where, weight):
    """None, or PyTorch's per-class weight as a 1-D float64 NumPy array of finite values
    (negative ones too, as PyTorch takes them; cast to pred's dtype when used)."""
    if weight is None:
        return None
    array = np.asarray(_device.to_host(weight) if _device.is_array(weight) else weight)
    if array.dtype.kind not in "iuf" or array.ndim != 1 or array.size == 0:
        raise ValueError(f"{where}: expected weight to be a non-empty 1-D array of class "
                         f"weights, got {array.dtype} of shape {array.shape}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{where}: expected finite weights, got {array}")
    return array


def dense_target(where, target, num_classes, weight, ignore_index, label_smoothing, dtype):
    """(q, denominator): the (N, C) target in dtype whose plain cross-entropy (rows' sum
    of -q log softmax) is PyTorch's loss with these options, and the mean's denominator.

    target: host labels (N,) (entries equal to ignore_index are ignored) or probabilities
    (N, C); weight: (C,) float64 or None; label_smoothing: ε in [0, 1].
    """
    n = target.shape[0]
    eps = label_smoothing
    _check_weight_size(where, weight, num_classes)
    w = np.ones(num_classes) if weight is None else weight
    if target.dtype.kind == "f":
        dense = target.astype(np.float64) * (1.0 - eps) + eps / num_classes
        dense *= w
        return dense.astype(dtype), float(n)
    labels, ignored, row_weights, denominator = label_weights(where, target, num_classes,
                                                              weight, ignore_index)
    if not eps:   # one term a row: zeros and the label's weight, built in dtype
        dense = np.zeros((n, num_classes), dtype)
        dense[np.arange(n), labels] = row_weights   # (0 in an ignored row)
        return dense, denominator
    dense = np.full((n, num_classes), eps / num_classes)
    dense[np.arange(n), labels] += 1.0 - eps
    dense *= w
    dense[ignored] = 0.0
    return dense.astype(dtype), denominator


def _check_weight_size(where, weight, num_classes):
    if weight is not None and weight.size != num_classes:
        raise RuntimeValueError(f"{where}: expected weight of shape ({num_classes},) (one per "
                                f"class), got {weight.shape}")


def label_weights(where, target, num_classes, weight, ignore_index):
    """(labels, ignored, row_weights, denominator) for host labels target (N,): the labels
    with 0 where ignored (checked within [0, num_classes)), the mask of the rows equal to
    ignore_index, each row's class weight (N,) float64 (1 without weight, 0 where
    ignored), and the mean's denominator, the kept rows' summed weight. weight: (C,)
    float64 or None."""
    _check_weight_size(where, weight, num_classes)
    ignored = target == ignore_index
    labels = np.where(ignored, 0, target)
    check_labels(where, labels, target.shape[0], num_classes)
    row_weights = np.ones(target.shape[0]) if weight is None else weight[labels]
    row_weights[ignored] = 0.0
    kept = ~ignored
    denominator = float(row_weights[kept].sum()) if weight is not None else float(kept.sum())
    return labels, ignored, row_weights, denominator
