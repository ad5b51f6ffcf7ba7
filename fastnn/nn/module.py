"""``Parameter`` and ``Module``: the base of every layer.

A built-in layer implements four hooks; the public methods wrap them:

* ``infer_shape(shape, dtype) -> out_shape`` checks an input by its shape and dtype
  only and raises a clear error naming the layer. ``forward`` calls it before any
  state is touched, and ``Sequential`` calls it on every layer before running any,
  so a bad input leaves parameters, gradients and running statistics as they were.
* ``_forward(x, buffered) -> y`` runs the kernels on a validated, C-contiguous x
  and saves what backward needs. ``buffered=True`` lets the layer write y into a
  buffer it owns and reuses next step (``Sequential`` asks for that for outputs no
  caller sees); ``buffered=False`` returns a fresh array, the caller's to keep.
* ``_backward(grad_out, buffered, need_grad_in) -> grad_in`` accumulates parameter
  gradients in place into ``param.grad`` and returns the input gradient (or None
  when ``need_grad_in`` is False and skipping it saves work).
* ``extra_repr()``, the text inside ``Layer(...)`` in ``repr``.

A user-defined module may instead override ``forward(x)`` and ``backward(grad_out)``
directly (as in PyTorch); it still works inside ``Sequential``.

Arrays passed to ``forward`` and returned by it are referenced until ``backward``:
modifying them in place in between changes the gradients computed.

``to("cuda")`` moves a module's parameters, gradients and buffers to the GPU; its layers
then run the cuda backend's kernels on device arrays, and arrays follow the caller: a
NumPy input gives a NumPy output, a device array input a device array output (see
``fastnn.device``).

Hooks (PyTorch's ``register_forward_pre_hook``, ``register_forward_hook``,
``register_full_backward_pre_hook``, ``register_full_backward_hook``; each returns a
``RemovableHandle``):

* Forward hooks run where PyTorch runs them: in ``module(x)`` (``__call__``), not in a
  direct ``module.forward(x)``. A pre-hook ``hook(module, args)`` may return new args (a
  single value is wrapped in a tuple); a hook ``hook(module, args, output)`` may return a
  new output. ``with_kwargs=True`` passes kwargs too; ``always_call=True`` runs the hook
  even when forward raises. A subclass that defines its own ``__call__`` (attention,
  recurrent, transformer and distance layers) runs them the same way.
* Backward hooks run around ``module.backward(...)``, the explicit counterpart of
  PyTorch's autograd pass through the module: ``hook(module, grad_output)`` sees
  ``(grad_out,)`` and may return a replacement tuple; ``hook(module, grad_input,
  grad_output)`` sees ``(grad_in,)`` (``(None,)`` when ``need_grad_in=False``, and then may
  only return None or all-None, as PyTorch's for inputs that need no gradient) and may
  return a replacement (same shapes and dtypes; None cuts the gradient there). A module
  with its own ``backward(*grads)`` passes its positional arguments as grad_output and
  its return value (a tuple, or one value) as grad_input; a built-in layer with several
  outputs gives PyTorch's grad_output instead, one entry per output, None where no
  gradient flows (``_hook_grad_outputs``: MultiheadAttention, RNN/LSTM/GRU, LSTMCell,
  AdaptiveLogSoftmaxWithLoss), and the recurrent layers and cells give PyTorch's
  grad_input, one entry per positional argument of the call (``_hook_grad_inputs``).
  Hooks registered when ``backward`` runs are the ones that fire (PyTorch binds them at
  forward time).
* ``Sequential`` runs its layers' hooks as PyTorch's, whose forward calls each layer:
  a layer with hooks is never fused with its neighbour (the hooks see its real input,
  output and gradients), its arrays are fresh (hooks may keep them), and the layers after
  one with forward hooks are checked as they run (a hook may change the shape).
* What a hook returns in place of an input or output is not differentiated through
  (fastnn has no autograd): ``backward`` takes the gradient w.r.t. a forward hook's
  replacement output as the gradient w.r.t. the layer's output, and returns the gradient
  w.r.t. a pre-hook's replacement input. Exact for a replacement whose derivative is the
  identity (adding a constant, a copy); for another, a backward pre-hook can apply its
  derivative to grad_output (e.g. the same mask).
  With no hook registered nothing of this runs: the fast path is unchanged.
"""
import collections
import contextlib
import functools
import inspect
import numbers
import operator
import threading
import types
import warnings
import weakref
from collections import OrderedDict

import numpy as np

from .. import device as _device
from .. import grad_mode as _grad_mode
from ..errors import AssertionValueError, DtypeError, RuntimeValueError
from ..validation import (_FLOAT32, _FLOAT64, FLOAT_DTYPES, as_contiguous, check_float_array,
                          float_of, int_items)
from . import plain_values
from .output_slots import lent_output, lent_scratch
from .parameter_ops import ParameterArithmetic


# Parameter._zero_pending's values for zeros already written (see Parameter)
_ZEROS_WRITTEN = "written"
_ZEROS_READ = "read"

# How many module backward calls are running in this thread: a read of .grad inside one
# is the backward making a gradient, a read outside it is not (Parameter._get_grad).
class _BackwardDepth(threading.local):
    """The backward calls running in this thread (a class default: read as 0 in a thread
    that never ran one, without a failed attribute lookup)."""
    depth = 0


_backward_calls = _BackwardDepth()


def _in_backward():
    return _backward_calls.depth > 0


def _counts_as_backward(backward):
    """backward, made to count itself as a running backward of this thread."""
    @functools.wraps(backward)
    def counted(*args, **kwargs):
        _backward_calls.depth += 1
        try:
            return backward(*args, **kwargs)
        finally:
            _backward_calls.depth -= 1
    return counted


def _outside_backward(hook, *args):
    """hook(*args), a user's backward (pre-)hook, run as code outside any backward: a
    .grad it reads (a gradient norm for logging) that no backward has made yet is zeros
    that are no gradient, as PyTorch's hook reads None there, not one the optimizer then
    steps (Parameter._get_grad; weight decay moved a parameter no loss reached)."""
    depth = _backward_calls.depth
    _backward_calls.depth = 0
    try:
        return hook(*args)
    finally:
        _backward_calls.depth = depth


def _kernel_ready(value):
    """value, or a C-contiguous writeable copy of a strided or read-only NumPy array
    (device arrays and None pass as they are). An ndarray subclass (np.memmap, a
    user's) becomes a plain ndarray: a view of it where it is C-contiguous and
    writeable (shared, as a plain array is), else a copy."""
    if isinstance(value, np.ndarray):
        if not (value.flags.c_contiguous and value.flags.writeable):
            return np.array(value, order="C", subok=False)
        if type(value) is not np.ndarray:
            return value.view(np.ndarray)
    return value


class _DeviceValues:
    """A device array's values inside a pickled or deep-copied Parameter or Module: a host
    copy, put back on the GPU when loaded (numba's device arrays can be neither pickled
    nor deep-copied)."""

    __slots__ = ("host",)

    def __init__(self, host):
        self.host = host

    def __reduce__(self):
        return _DeviceValues, (self.host,)


def _swapped(value, is_leaf, make, memo):
    """value with make(leaf) in place of each leaf in it (through tuples, lists and dicts);
    memo (id -> made) makes a leaf held twice one made value."""
    if is_leaf(value):
        if id(value) not in memo:
            memo[id(value)] = make(value)
        return memo[id(value)]
    if type(value) in (tuple, list):
        return type(value)(_swapped(v, is_leaf, make, memo) for v in value)
    if isinstance(value, dict):
        return type(value)((k, _swapped(v, is_leaf, make, memo)) for k, v in value.items())
    return value


def _picklable(value):
    """value with each device array in it a _DeviceValues (an array held twice is one
    marker, so that it is one array again when loaded)."""
    return _swapped(value, _device.is_device_array,
                    lambda a: _DeviceValues(np.asarray(_device.to_host(a))), {})


def backward_in_buffer(layer, grad, need_grad_in=True):
    """layer.backward(grad, need_grad_in) for a model that runs its layers itself
    (MultiTaskNet, VAE): on the host, the input gradient in the layer's own buffer (read
    it before the layer's next backward; None without need_grad_in); a layer with hooks,
    on the GPU or given a non-ndarray runs its public call (a fresh array)."""
    if layer._hooked or layer._device != "cpu" or type(grad) is not np.ndarray:
        return layer.backward(grad, need_grad_in)
    layer._check_grad_out(grad)   # (a forward under no_grad, or stale: as backward says)
    return layer._backward(as_contiguous(grad), True, need_grad_in)


def live_grad(param):
    """param.grad for a layer's backward to add its gradient to, or None where there is
    no parameter (None) or it is frozen (requires_grad False): PyTorch's backward neither
    computes nor touches a frozen parameter's gradient, and a layer passes None to its
    kernel for it (see ``nothing_to_compute``)."""
    return None if param is None or not param.requires_grad else param.grad


def trains(param):
    """True for a parameter whose gradient a backward computes: present (not None) and
    not frozen; reads nothing (``param.grad``'s read would start a pending gradient)."""
    return param is not None and param.requires_grad


def nothing_to_compute(need_grad_in, *params):
    """True when a backward has nothing to do: no input gradient wanted and each of
    params (None for a missing one) frozen."""
    return not need_grad_in and not any(trains(p) for p in params)


def _unpickled(value):
    """The inverse of _picklable: each _DeviceValues back on the GPU."""
    return _swapped(value, lambda v: type(v) is _DeviceValues,
                    lambda marker: _device.namespace("cuda").put(marker.host), {})


def zero_grads_lazily(params):
    """``zero_grad(set_to_none=True)`` of each Parameter in params: pending zeros (see
    ``Parameter._zero_grad_lazily``), except for a gradient array that two distinct
    Parameters hold (``q.grad = p.grad``), zeroed now: a Linear backward overwriting it
    for each of them would keep only the last one's gradient."""
    owner = {}
    for p in params:
        first = owner.setdefault(id(p._grad), p) if p._grad is not None else p
        if first is p:
            p._zero_grad_lazily()
        else:
            first.zero_grad()
            p.zero_grad()


@contextlib.contextmanager
def evaluating(module):
    """``with evaluating(model):`` runs the block with every submodule in eval mode, then
    gives each its own mode back (``model.train(was)`` would set a submodule the user had
    put in eval, a frozen BatchNorm, back to training)."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            object.__setattr__(m, "training", training)


class _CallableSize(int):
    """An element count (NumPy's ``a.size``) that called gives the shape, or one
    dimension's length (PyTorch's ``size()`` / ``size(dim)``)."""

    def __new__(cls, count, shape):
        size = super().__new__(cls, count)
        size._shape = shape
        return size

    def __call__(self, dim=None):
        return self._shape if dim is None else self._shape[dim]

    def __reduce__(self):
        return int, (int(self),)  # (pickled as the plain int)


class Parameter(ParameterArithmetic):
    """A trainable array and its gradient.

    data: float32/float64 array of any shape; grad: same shape and dtype, zeros at first,
    accumulated into in place by ``backward`` until ``Module.zero_grad()``. Until a backward
    writes it (at first, after ``zero_grad()`` and after ``p.grad = None``) the gradient is
    PyTorch's None to an optimizer, which skips the parameter; ``.grad`` reads as zeros.
    An optimizer rebinds ``.data``/``.grad`` to views of its flat buffer when it is built
    (and again after a user rebinds them): an array bound to ``.data``/``.grad`` is then
    copied in, not shared, so a reference taken to it before goes stale; re-read
    ``p.data``/``p.grad``. Layers read them at call time.
    A NumPy array assigned to ``.data`` or ``.grad`` that is strided (e.g. ``W.T``) or
    read-only is stored as a C-contiguous copy, because the kernels read and write them
    as such; a C-contiguous writeable array is kept itself (shared, as in PyTorch, until
    an optimizer homes it, above).
    Float values of another dtype or shape assigned to ``.data`` bring ``.grad`` along
    (cast, or zeros of the new shape), as PyTorch's grad follows the data's dtype.
    Arithmetic, indexing, ``item()`` and in-place updates (``p -= lr * p.grad``) work
    on the values as on a PyTorch parameter (``parameter_ops.py``).
    """

    # _zero_pending: zero_grad(set_to_none=True) ran and .grad's zeros are not written
    # yet (see _grad_to_overwrite); _ZEROS_WRITTEN: they are (zero_grad(set_to_none=False)
    # of pending zeros), but no backward has made a gradient yet; _ZEROS_READ: they
    # are, and were read outside any backward (logging gradient norms, say): the reader
    # may have written a gradient into them in place, so they count as one only if some
    # value is no longer 0 (_no_grad_yet)
    # _frozen_grad: while requires_grad is False, the scratch array a backward's read of
    # .grad gets (None until one reads it; see _set_requires_grad)
    _state_slots = ("_data", "_grad", "_requires_grad", "_zero_pending", "_frozen_grad")
    # __weakref__: weakly referenced as a PyTorch tensor (weakref.ref(p), a
    # WeakKeyDictionary keyed by parameters)
    __slots__ = _state_slots + ("__weakref__",)

    def __init__(self, data=None, requires_grad=True):
        # no data: PyTorch's empty float32 parameter (torch.empty(0))
        data = np.empty(0, np.float32) if data is None else np.array(data, copy=True,
                                                                     order="C")
        if data.dtype not in FLOAT_DTYPES:
            raise DtypeError(f"Parameter: expected float32 or float64 data, got {data.dtype}")
        self.data = data
        self.grad = np.zeros_like(data)
        # zeros that no backward wrote yet: PyTorch's None grad of a new parameter,
        # which an optimizer skips (weight decay would otherwise move an unused one)
        self._zero_grad_lazily()
        #: False freezes the parameter: optimizers leave it (and its state) untouched
        #: (PyTorch's skip it while its grad is None); no backward computes or touches
        #: its .grad (a custom layer's that reads it gets a scratch array).
        self.requires_grad = bool(requires_grad)

    def _get_requires_grad(self):
        return self._requires_grad

    def _set_requires_grad(self, value):
        """requires_grad = value. PyTorch's backward leaves a frozen gradient alone: its
        .grad is the user's, kept as it stands and as any edit (an assignment, a
        zero_grad, clipping, ``p.grad[...] = 0``) leaves it. fastnn's layers skip a
        frozen parameter; a custom layer's backward that does not (see
        ``optim.has_no_grad``) and reads .grad gets a scratch array instead, so that what
        it adds is dropped (unfrozen, the parameter would otherwise step by every frozen
        step's gradient summed: fine-tuning with the backbone unfrozen mid-training).
        The .grad array itself is never swapped or copied, so freezing costs nothing."""
        object.__setattr__(self, "_requires_grad", bool(value))
        object.__setattr__(self, "_frozen_grad", None)

    requires_grad = property(
        _get_requires_grad, _set_requires_grad,
        doc="""Whether optimizers train this parameter (a bool; False freezes it, as
        PyTorch's; see ``requires_grad_``).""")

    def _frozen_scratch(self):
        """What a backward reading a frozen parameter's .grad gets: an array of the
        data's shape and dtype on its device, whose values nobody reads (made on the
        first such read, again after the data changed shape, dtype or device)."""
        data, scratch = self._data, self._frozen_grad
        if (scratch is None or tuple(scratch.shape) != tuple(data.shape)
                or scratch.dtype != data.dtype
                or _device.device_of(scratch) != _device.device_of(data)):
            scratch = _device.namespace_of(data).zeros(data.shape, data.dtype)
            object.__setattr__(self, "_frozen_grad", scratch)
        return scratch

    def _set_data(self, value):
        """``p.data = value``: value on the parameter's device (a NumPy array assigned to a
        parameter on the GPU is put there, a device array assigned to one on the CPU comes
        to the host), as an assigned buffer or Parameter follows its module's device;
        PyTorch's parameter would move with the data instead, and then fail at the
        forward next to its layer's other tensors."""
        data = getattr(self, "_data", None)
        if (data is not None and _device.is_array(value)
                and _device.device_of(value) != _device.device_of(data)):
            value = _device.namespace(_device.device_of(data)).put(value)
        self._rebind_data(value)

    def _rebind_data(self, value):
        """Bind value to .data on its own device (moving the parameter there); the
        gradient follows it (see the class docstring)."""
        value = _kernel_ready(value)
        object.__setattr__(self, "_data", value)
        grad = getattr(self, "_grad", None)
        if (_device.is_array(grad) and _device.is_array(value) and value.dtype in FLOAT_DTYPES
                and (grad.dtype != value.dtype or tuple(grad.shape) != tuple(value.shape)
                     or _device.device_of(grad) != _device.device_of(value))):
            # values of another float dtype, shape or device (``p.data = W``, a float64 W
            # in a float32 layer, a host W in a layer on the GPU): the gradient follows
            # them, as PyTorch's, None until a backward makes it in the data's dtype;
            # accumulated values are kept, cast
            ns = _device.namespace_of(value)
            if tuple(grad.shape) == tuple(value.shape):
                grad = ns.put(np.asarray(_device.to_host(grad), dtype=value.dtype))
                object.__setattr__(self, "_grad", grad)
            else:
                object.__setattr__(self, "_grad", ns.zeros(value.shape, value.dtype))
                self._zero_grad_lazily()   # (PyTorch's None: no backward made it yet)

    def _get_grad(self):
        if not self._requires_grad and _in_backward():
            return self._frozen_scratch()
        pending = self._zero_pending
        if pending:
            if pending is True:
                self.zero_grad()
            # read by a backward: a gradient from now on; by anyone else: zeros that
            # are none yet, as PyTorch's None, unless the reader writes one into them
            object.__setattr__(self, "_zero_pending", False if _in_backward() else _ZEROS_READ)
        return self._grad

    def _set_grad(self, value):
        if value is not None:
            self._check_grad(value)
        object.__setattr__(self, "_grad", _kernel_ready(value))
        object.__setattr__(self, "_zero_pending", False)
        if value is None:   # PyTorch's way of clearing a gradient: see _fill_no_grads
            Module._none_grads_seen = True

    def _set_grad_by_hand(self, value):
        """``p.grad = value`` (fastnn's own rebinding calls _set_grad). The scratch array
        a backward's read of a frozen parameter's .grad got, assigned back (``p.grad +=
        g`` assigns what it read), changes nothing."""
        if value is None or value is not getattr(self, "_frozen_grad", None):
            self._set_grad(value)

    def _check_grad(self, value):
        """PyTorch's checks of an assigned gradient: an array of the data's shape, dtype
        and device (TypeError, RuntimeValueError before anything changes)."""
        data = getattr(self, "_data", None)
        if not _device.is_array(value):
            raise TypeError(f"Parameter.grad: expected an array (or None), got "
                            f"{type(value).__name__}")
        if data is None:
            return
        if tuple(value.shape) != tuple(data.shape):   # (PyTorch's RuntimeError, as below)
            raise RuntimeValueError(f"Parameter.grad: attempting to assign a gradient of "
                                    f"shape {tuple(value.shape)} to a parameter of shape "
                                    f"{tuple(data.shape)}")
        if value.dtype != data.dtype:
            raise DtypeError(f"Parameter.grad: attempting to assign a gradient of dtype "
                             f"{value.dtype} to a parameter of dtype {data.dtype}")
        if _device.device_of(value) != _device.device_of(data):
            raise RuntimeValueError(f"Parameter.grad: attempting to assign a gradient on "
                                    f"{_device.device_of(value)} to a parameter on "
                                    f"{_device.device_of(data)}")

    data = property(
        operator.attrgetter("_data"), _set_data,
        doc="""The values: a C-contiguous float32/float64 array (a device array on the
        GPU). Assigning copies a strided or read-only array (see the class docstring).""")
    grad = property(
        _get_grad, _set_grad_by_hand,
        doc="""The gradient: an array of data's shape and dtype that backward accumulates
        into; reads as zeros until a backward writes it (and after ``zero_grad()``).
        Assign an array of that shape and dtype, or None (PyTorch's cleared gradient).""")

    def _zero_grad_lazily(self):
        """zero_grad(set_to_none=True): .grad reads as zeros from now on, but the zeros are
        written only when something reads .grad; a Linear layer's backward instead
        overwrites the gradient it would have added to them (``_grad_to_overwrite``),
        saving a pass over memory, as PyTorch's set_to_none saves it."""
        object.__setattr__(self, "_zero_pending", True)

    def _zeroed_without_grad(self):
        """After zeros were written into .grad (zero_grad(set_to_none=False)): no
        gradient yet for step(), as after zero_grad(set_to_none=True), and none to
        write when .grad is read."""
        object.__setattr__(self, "_zero_pending", _ZEROS_WRITTEN)

    def _grad_to_overwrite(self):
        """The .grad array when zero_grad(set_to_none=True) left it pending, for a kernel to
        overwrite rather than accumulate into (the caller then calls
        ``_grad_overwritten``); None otherwise (also for zeros a reader holds, who may
        have written into them: the kernel adds to them)."""
        pending = self._zero_pending
        return self._grad if pending is True or pending is _ZEROS_WRITTEN else None

    def _no_grad_yet(self):
        """True where PyTorch's .grad would be None: None here, or zeros from
        zero_grad(set_to_none=True) that no backward has touched since, and that a
        reader outside a backward (who got them through .grad) left all 0. Optimizers
        skip such a parameter, as PyTorch's skip a None grad. Pending zeros stay
        unwritten."""
        grad, pending = self._grad, self._zero_pending
        if grad is None:
            return True
        if pending is _ZEROS_READ:
            if not np.any(_device.to_host(grad)):
                return True
            object.__setattr__(self, "_zero_pending", False)  # a gradient was written
            return False
        return bool(pending)

    def _has_grad(self):
        """True where PyTorch's .grad would not be None, frozen or not (what its
        clip_grad_norm_ counts and scales): a gradient written since zero_grad (not
        _no_grad_yet); while frozen, its stale gradient, which no backward touches."""
        return not self._no_grad_yet()

    def _replace_grad(self, grad):
        """Bind grad (the same values moved or converted) to .grad, keeping a gradient
        no backward has written yet as such (``.grad = `` would count as one)."""
        pending = self._zero_pending
        self._set_grad(grad)
        if pending:   # (a reader's zeros stay theirs: they may hold a gradient)
            object.__setattr__(self, "_zero_pending", _ZEROS_READ if pending is _ZEROS_READ
                               else True)

    def _grad_snapshot(self):
        """What _restore_grad puts back: the pending state and a host copy of the gradient
        (None while zeros are pending), taken without reading .grad (a read would write
        the pending zeros)."""
        pending = self._zero_pending
        kept = None if pending is True or self._grad is None else _device.host_copy(self._grad)
        return pending, kept

    def _restore_grad(self, snapshot):
        """Put back the gradient (and its pending state) of a _grad_snapshot."""
        pending, kept = snapshot
        if kept is not None:
            _device.namespace_of(self._grad).copy_into(self._grad, kept)
        object.__setattr__(self, "_zero_pending", pending)

    def _grad_overwritten(self):
        object.__setattr__(self, "_zero_pending", False)

    def __getstate__(self):
        # (pickle, deepcopy) a parameter on the GPU travels with host copies
        state = {name: getattr(self, name) for name in Parameter._state_slots
                 if hasattr(self, name)}
        if _device.is_device_array(state.get("_data")):
            state = _picklable(state)
        return None, state

    def __copy__(self):
        # copy.copy: PyTorch's shares the data and has no gradient (grad None); not
        # __setstate__'s pending zeros, which a read would write into the shared .grad
        new = object.__new__(type(self))
        if hasattr(self, "__dict__"):  # (a subclass without __slots__)
            new.__dict__.update(self.__dict__)
        for name in Parameter._state_slots:
            if hasattr(self, name):
                object.__setattr__(new, name, getattr(self, name))
        new.grad = None
        return new

    def __setstate__(self, state):
        state = state[1] if isinstance(state, tuple) else state
        for name, value in _unpickled(state).items():
            object.__setattr__(self, name, value)
        # a copy (deepcopy, pickle) has no gradient yet, as PyTorch's (its grad is None):
        # zeros, skipped by optimizers until a backward reaches it
        object.__setattr__(self, "_zero_pending", getattr(self, "_grad", None) is not None)
        if getattr(self, "_grad", None) is None:  # None (p.grad = None before pickling):
            Module._none_grads_seen = True        # backward makes it, as in this process
        if not hasattr(self, "_requires_grad"):   # (pickled before requires_grad was kept)
            object.__setattr__(self, "_requires_grad", True)
        object.__setattr__(self, "_frozen_grad", None)

    def requires_grad_(self, requires_grad=True):
        """Set requires_grad in place; self."""
        self.requires_grad = bool(requires_grad)
        return self

    @property
    def shape(self):
        """data's shape (a tuple)."""
        return self.data.shape

    @property
    def dtype(self):
        """data's dtype (float32 or float64)."""
        return self.data.dtype

    @property
    def size(self):
        """NumPy's element count, an int that is also PyTorch's ``size()`` when called:
        ``p.size()`` the shape, ``p.size(0)`` one dimension's length."""
        return _CallableSize(self.data.size, tuple(self.data.shape))

    def numel(self):
        """The number of elements (PyTorch's ``numel()``)."""
        return self.data.size

    nelement = numel

    def __len__(self):
        """The first dimension's length, as ``len`` of a PyTorch tensor (a TypeError for a
        0-d parameter, as PyTorch's)."""
        shape = self.data.shape
        if not shape:
            raise TypeError("len() of a 0-d parameter")
        return shape[0]

    def __bool__(self):
        # a Parameter stays truthy (``if layer.bias:`` as before); with __len__ alone an
        # empty first dimension would make it false
        return True

    def dim(self):
        """The number of dimensions (PyTorch's ``dim()``: the init idiom ``if p.dim() > 1:
        init.xavier_uniform_(p)``)."""
        return self.data.ndim

    def detach(self):
        """The data array itself (PyTorch's detach(): the same memory, no gradient)."""
        return self.data

    def clone(self):
        """A copy of the data on its device (an array, as PyTorch's clone of a parameter
        is a tensor; a device array for a parameter on the GPU)."""
        space = _device.namespace_of(self.data)
        copy = space.empty(self.data.shape, self.data.dtype)
        space.copy_into(copy, self.data)
        return copy

    def copy_(self, src):
        """Write src (broadcast to the shape) into the data in place; self."""
        _device.namespace_of(self.data).copy_into(
            self.data, np.broadcast_to(_device.to_host(src), self.shape).astype(self.dtype))
        return self

    def fill_(self, value):
        """Every element set to value, in place; self."""
        from . import init  # (init imports this module)
        init.constant_(self, value)
        return self

    def zero_(self):
        """Every element set to 0, in place; self."""
        return self.fill_(0.0)

    @property
    def ndim(self):
        """data's number of dimensions."""
        return self.data.ndim

    @property
    def device(self):
        """'cpu' or 'cuda': where ``data`` lives."""
        return _device.device_of(self.data)

    def zero_grad(self):
        """Write zeros into .grad (unless it is None), in place, now."""
        grad = self._grad
        if grad is not None:
            _device.namespace_of(grad).fill_zero(grad)
        object.__setattr__(self, "_zero_pending", False)

    def _write_zero_grad(self):
        """``Module.zero_grad(set_to_none=False)``: zeros written into .grad now, a
        gradient no backward has written since the last zero_grad() staying none for
        step() (PyTorch's None grad stays None there, and optimizers skip it)."""
        grad = self._grad
        if grad is None:
            return
        _device.namespace_of(grad).fill_zero(grad)
        if self._zero_pending is True:
            self._zeroed_without_grad()

    def numpy(self):
        """The values as a NumPy array: ``data`` itself on the CPU, a host copy of it on
        a GPU (PyTorch's ``p.detach().numpy()``)."""
        return _device.to_host(self.data)

    def __array__(self, dtype=None, copy=None):
        # NumPy functions take a Parameter as its values: np.sum(p), np.asarray(p)
        values = self.numpy()
        if dtype is not None and values.dtype != dtype:
            return values.astype(dtype)
        return values.copy() if copy else values

    def __repr__(self):
        """PyTorch's 'Parameter containing:' and the values (NumPy's repr, summarised
        past 1000 elements; a host copy for a parameter on the GPU)."""
        values = np.array_repr(self.numpy())
        extra = [f"device='cuda'"] if self.device == "cuda" else []
        if not self.requires_grad:
            extra.append("requires_grad=False")
        if extra:
            values = values[:-1] + ", " + ", ".join(extra) + ")"
        return f"Parameter containing:\n{values}"


class _Marker:
    """A named marker compared by identity that stays itself through pickle and deepcopy
    (a plain string comes back from pickle as another object)."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __reduce__(self):
        return self.name   # this module's global of that name

    def __repr__(self):
        return self.name


#: ``_out_meta`` of an activation whose forward a Sequential ran inside a Linear's kernel.
FUSED = _Marker("FUSED")
#: ``_out_meta`` after a forward run with gradients disabled (fastnn.no_grad()).
NO_GRAD = _Marker("NO_GRAD")

class _Stale:
    """What a module kept of its last forward for backward, once ``to()`` / ``.float()``
    / ``.double()`` / ``load_state_dict`` / a parameter's replacement changed its arrays
    since, or a forward hook raised after its forward ran (``reason`` says which): it
    takes the place of the record (``_out_meta``; for a layer that keeps none, its
    ``_ctx`` or a composite's ``_sub_records``), which the next forward replaces, so its
    backward raises instead of mixing that forward's saved arrays with the new ones
    (PyTorch's backward fails too: a dtype mismatch, or an in-place modification). It
    holds no arrays: the old ones are freed, and it pickles as it is."""

    def __init__(self, reason, changed=True):
        self.reason = reason
        self.changed = changed   # False: reason is complete (not a change of arrays)

    def error(self, module, where=None):
        why = (f"{self.reason} after its last forward, so its backward would mix that "
               f"forward's saved arrays with the new ones" if self.changed else self.reason)
        return RuntimeError(f"{where or module._where()}: {why}; run forward again before "
                            f"backward")

    def __repr__(self):
        return f"_Stale({self.reason!r})"


def _kept_for_failure(module):
    """What a forward of module may change besides its output, to put back should the
    call fail after the forward ran (a forward hook raising): copies of its buffers
    (running statistics, the batch counters among them) and the batch counts of the
    layers that count without listing a counter. Dropout masks already drawn stay drawn,
    as in PyTorch (README). Taken only on the hooked path: unhooked calls pay nothing."""
    return ([(buf, _device.host_copy(buf)) for buf in module.buffers()],
            [(m, m.num_batches_tracked) for m in module.modules()
             if getattr(type(m), "counts_batches", False)])


def _put_back(kept):
    """Restore what _kept_for_failure took."""
    buffers, counts = kept
    for buf, copy in buffers:
        _device.namespace_of(buf).copy_into(buf, copy)
    for m, count in counts:
        m.num_batches_tracked = count


def _has_forward_record(module):
    """True when module kept something of a forward for its backward."""
    state = module.__dict__
    return any(state.get(name) not in (None, NO_GRAD)
               for name in ("_out_meta", "_ctx", "_sub_records"))


def _mark_stale(modules, reason, changed=True):
    """Each of modules that kept a forward for backward refuses that backward, saying
    reason (a _Stale in place of its record); their scratch buffers are dropped."""
    for module in modules:
        module._scratch.clear()
        state = module.__dict__
        stale = _Stale(reason, changed)
        if state.get("_out_meta") not in (None, NO_GRAD):   # a layer's: Module.backward
            object.__setattr__(module, "_out_meta", stale)  # (and check_kept) check it
        elif state.get("_ctx") not in (None, NO_GRAD):      # a forward of its own:
            object.__setattr__(module, "_ctx", stale)       # check_kept checks it
        if state.get("_sub_records") is not None:           # a composite's records
            object.__setattr__(module, "_sub_records", stale)


def _with_ancestors(root, changed):
    """The modules of root's tree (root included) that are in changed (ids) or hold one."""
    return [m for m in root.modules()
            if id(m) in changed or any(id(sub) in changed for sub in m.modules())]


def no_grad_backward_error(module):
    """The RuntimeError of a backward after a forward run with gradients disabled."""
    return RuntimeError(f"{module._where()}: its last forward ran with gradients disabled "
                        f"(fastnn.no_grad() or inference_mode()); run the forward again "
                        f"outside it before backward")


# The instance attributes in which built-in layers keep what their backward reads (the
# forward's input, output, mask, statistics, max-pool indices, RReLU's slopes, LPPool3d's
# context): dropped after a forward run under no_grad. (A forward reads what it needs of
# them from its own variables: another thread's no_grad forward of the same layer may
# drop them meanwhile.)
_FORWARD_STATE = ("_ctx", "_x", "_saved", "_mask", "_gain", "_eval_ctx", "_indices",
                  "_slope", "_lp")


def forget_forward(module):
    """After a forward run with gradients disabled: drop what module kept for the
    backward that is refused anyway (its input, its output), so a forward pass under
    ``no_grad`` frees each intermediate array once the next layer has read it, as
    PyTorch's does, instead of holding every layer's input until the next call."""
    if _grad_mode._MODE.enabled:
        return
    state = module.__dict__
    for name in _FORWARD_STATE:
        if state.get(name) is not None and state[name] is not NO_GRAD:
            object.__setattr__(module, name, None)


def kept_for_backward(ctx):
    """What a layer with a forward of its own keeps for its backward: ctx, or NO_GRAD
    under no_grad (a backward then raises instead of mixing that call's inputs into the
    gradient of an earlier forward)."""
    return ctx if _grad_mode._MODE.enabled else NO_GRAD


def _sub_forward_records(module):
    """What each sub-module of module (not itself) keeps of its last forward for its
    backward: (its output record, its saved context), objects made anew every forward."""
    return tuple((m.__dict__.get("_out_meta"), m.__dict__.get("_ctx"))
                 for m in module.modules() if m is not module)


def records_sub_forwards(forward):
    """The forward of a module that runs its sub-modules itself (a Transformer layer, the
    VAE, MultiTaskNet): each sub-module's record of this forward is kept, for
    ``checks_sub_forwards``; a forward that fails leaves the records and notes that it
    failed (sub-modules it ran hold that call's context then)."""
    @functools.wraps(forward)
    def forward_recording(self, *args, **kwargs):
        try:
            out = forward(self, *args, **kwargs)
        except Exception as error:
            object.__setattr__(self, "_failed_forward", type(error).__name__)
            raise
        object.__setattr__(self, "_sub_records", _sub_forward_records(self))
        object.__setattr__(self, "_failed_forward", None)
        return out
    return forward_recording


def checks_sub_forwards(backward):
    """The backward of a ``records_sub_forwards`` module: a RuntimeError, before any
    gradient is touched, when a sub-module ran a forward since the module's forward (on
    its own, or in a forward of the module that failed part-way): its backward would
    differentiate that call. (Without a forward the sub-modules' backward says so.)"""
    @functools.wraps(backward)
    def backward_checked(self, *args, **kwargs):
        kept = self.__dict__.get("_sub_records")
        if type(kept) is _Stale:
            raise kept.error(self)
        if kept is not None:
            _check_sub_records(self, kept)
        return backward(self, *args, **kwargs)
    return backward_checked


def _check_sub_records(module, kept):
    """Raise unless each sub-module's record is the kept one (compared by identity: a
    saved context holds arrays), or None (reset by a move, no forward since)."""
    named = [(name, m) for name, m in module.named_modules() if m is not module]
    for (name, m), (meta, ctx) in zip(named, kept):
        now_meta, now_ctx = m.__dict__.get("_out_meta"), m.__dict__.get("_ctx")
        if ((now_meta is meta or now_meta is None) and (now_ctx is ctx or now_ctx is None)):
            continue
        for now in (now_meta, now_ctx):
            if type(now) is _Stale:
                raise now.error(m, f"{module._where()}: its sub-module {name} ({m._where()})")
        failed = module.__dict__.get("_failed_forward")
        cls = type(module).__name__
        if failed:
            how = f"ran in {cls}'s last forward, which failed part-way ({failed})"
        elif now_meta is NO_GRAD or now_ctx is NO_GRAD:
            how = (f"ran a forward with gradients disabled (fastnn.no_grad() or "
                   f"inference_mode()) after {cls}'s forward")
        else:
            how = f"ran a forward of its own after {cls}'s forward"
        raise RuntimeError(f"{module._where()}: its sub-module {name} ({m._where()}) {how}, "
                           f"so its backward would differentiate that call; run {cls}'s "
                           f"forward again")


def check_kept(module, ctx):
    """Raise unless ctx, what module's forward kept (kept_for_backward), serves a
    backward: RuntimeError before any forward, or after one under no_grad."""
    if type(ctx) is _Stale:   # (moved, converted or loaded since; see _mark_stale)
        raise ctx.error(module)
    if ctx is None:
        raise RuntimeError(f"{module._where()}: backward called before forward")
    if ctx is NO_GRAD:
        raise no_grad_backward_error(module)


class _IncompatibleKeys(collections.namedtuple("_IncompatibleKeys",
                                               ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns (PyTorch's ``_IncompatibleKeys``, its repr too)."""

    __slots__ = ()

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


LoadResult = _IncompatibleKeys  # (fastnn's earlier name)


class StateDictError(RuntimeValueError):
    """A state dict that does not fit the model (PyTorch raises RuntimeError; fastnn's
    earlier ValueError is kept as a base)."""


class _Items(list):
    """What the traversal methods (``parameters()``, ``modules()``, ...) return: a list
    (walk it twice, index it, ``len``) that ``next()`` also steps through, as PyTorch's
    generators (``next(model.parameters())``)."""

    __slots__ = ("_next",)

    def __next__(self):
        i = getattr(self, "_next", 0)
        if i >= len(self):
            raise StopIteration
        self._next = i + 1
        return self[i]


#: the state_dict key (after the module's prefix) of ``get_extra_state()``, as PyTorch's
EXTRA_STATE_KEY = "_extra_state"

#: the state_dict key (after the module's prefix) of a norm layer's batch counter
BATCH_COUNT_KEY = "num_batches_tracked"


def _has_batch_count(module):
    """True for a norm layer whose state dict holds ``num_batches_tracked`` as PyTorch's
    does: a class with ``counts_batches`` that tracks running statistics (a lazy layer
    before its first input has no state at all)."""
    return (getattr(type(module), "counts_batches", False)
            and getattr(module, "track_running_stats", False))


class BatchCounter:
    """Mixin of the norm layers that count their training forwards (PyTorch's
    ``num_batches_tracked``). The count lives in a 0-d int64 array on the host (on any
    device: momentum=None divides by it every step), which ``named_buffers()``,
    ``buffers()`` and ``get_buffer()`` give as PyTorch's buffer where the layer tracks
    running statistics (a live array: writing it sets the count); the attribute reads
    and sets it as an int. Also PyTorch's reset_running_stats and reset_parameters of
    these layers (their running_mean, running_var, weight and bias)."""

    #: state_dict carries num_batches_tracked after running_var when
    #: track_running_stats (PyTorch's entry; Module.state_dict writes it)
    counts_batches = True

    def _batch_count(self):
        count = self.__dict__.get("_batch_count_array")
        if count is None:  # first use (or a module pickled when the count was an int)
            count = np.array(self.__dict__.pop(BATCH_COUNT_KEY, 0), np.int64)
            object.__setattr__(self, "_batch_count_array", count)
        return count

    @property
    def num_batches_tracked(self):
        return int(self._batch_count()[()])

    @num_batches_tracked.setter
    def num_batches_tracked(self, value):
        self._batch_count()[()] = value

    def reset_running_stats(self):
        """PyTorch's: running_mean 0, running_var 1 and the count 0, in place (nothing
        without running statistics)."""
        from . import init
        if getattr(self, "track_running_stats", False):
            init.zeros_(self.running_mean)
            if self.running_var is not None:
                init.ones_(self.running_var)
            self.num_batches_tracked = 0

    def reset_parameters(self):
        """PyTorch's: reset_running_stats, then weight 1 and bias 0 (where present)."""
        from . import init
        self.reset_running_stats()
        init.reset_affine(self.weight, self.bias)


def _buffer_items(module):
    """(name, array) of a module's buffers, its batch counter last where it has one in
    the state dict (PyTorch's order: running_mean, running_var, num_batches_tracked)."""
    items = list(module._buffers.items())
    if _has_batch_count(module):
        items.append((BATCH_COUNT_KEY, module._batch_count()))
    return items


class _ThreadBuffers:
    """The modules holding ``_buffer`` arrays of one thread other than the main one (held
    weakly), kept in a ``threading.local``: when the thread ends its locals go, and this
    then removes that thread's arrays from those modules. An inference pool shut down
    left each worker's intermediate arrays in the model until some thread made a buffer
    of a new shape (4 workers' 5000-row batches through 784-1024-1024-10: 156 MB kept
    while the main thread went on at its own batch size)."""

    __slots__ = ("ident", "modules")

    def __init__(self, ident):
        self.ident = ident
        self.modules = weakref.WeakValueDictionary()   # id(module) -> module

    def __del__(self):
        try:
            for module in list(self.modules.values()):
                _drop_thread_slots(module.__dict__.get("_scratch", {}),
                                   lambda ident: ident == self.ident)
        except Exception:   # (at interpreter shutdown the modules may be half torn down)
            pass


_THREAD_BUFFERS = threading.local()


def _note_thread_buffer(module):
    """Record that module holds a ``_buffer`` array of the calling thread, to drop it
    when the thread ends (the main thread's stay)."""
    owner = getattr(_THREAD_BUFFERS, "owner", None)
    if owner is None:
        if threading.current_thread() is threading.main_thread():
            return
        owner = _THREAD_BUFFERS.owner = _ThreadBuffers(threading.get_ident())
    owner.modules[id(module)] = module


def _drop_ended_threads(scratch):
    """Remove from a module's scratch the per-thread buffers (keys (name, thread id)) of
    threads no longer running."""
    running = {t.ident for t in threading.enumerate()}
    _drop_thread_slots(scratch, lambda ident: ident not in running)


def _drop_thread_slots(scratch, dropped):
    """Remove from a module's scratch the per-thread buffers (keys (name, thread id))
    whose thread id ``dropped(ident)`` is true for."""
    # (list(scratch) copies the keys in one step: other threads add theirs meanwhile, and
    # two threads may drop the same one)
    for slot in list(scratch):
        if (isinstance(slot, tuple) and len(slot) == 2 and isinstance(slot[1], int)
                and dropped(slot[1])):
            scratch.pop(slot, None)


class RemovableHandle:
    """What every ``register_*hook`` returns (PyTorch's ``torch.utils.hooks.RemovableHandle``):
    ``remove()`` unregisters the hook (again: nothing happens); ``with handle: ...`` removes
    it when the block ends. ``id`` is unique in the process; the handle holds the hook
    tables weakly, so it does not keep a module alive."""

    next_id = 0

    def __init__(self, hooks_dict, *, extra_dict=None):
        self.hooks_dict_ref = weakref.ref(hooks_dict)
        self.id = RemovableHandle.next_id
        RemovableHandle.next_id += 1
        self.extra_dict_ref = ()
        if isinstance(extra_dict, dict):
            self.extra_dict_ref = (weakref.ref(extra_dict),)
        elif isinstance(extra_dict, list):
            self.extra_dict_ref = tuple(weakref.ref(d) for d in extra_dict)

    def remove(self):
        hooks_dict = self.hooks_dict_ref()
        if hooks_dict is not None and self.id in hooks_dict:
            del hooks_dict[self.id]
        for ref in self.extra_dict_ref:
            extra_dict = ref()
            if extra_dict is not None and self.id in extra_dict:
                del extra_dict[self.id]

    def __getstate__(self):
        return (self.hooks_dict_ref(), self.id, tuple(ref() for ref in self.extra_dict_ref))

    def __setstate__(self, state):
        self.hooks_dict_ref = weakref.ref(OrderedDict() if state[0] is None else state[0])
        self.id = state[1]
        RemovableHandle.next_id = max(RemovableHandle.next_id, self.id + 1)
        self.extra_dict_ref = (() if len(state) < 3 or state[2] is None
                               else tuple(weakref.ref(d) for d in state[2]))

    def __enter__(self):
        return self

    def __exit__(self, type, value, tb):
        self.remove()


#: the hook tables of a Module (PyTorch's attribute names); each an OrderedDict id -> hook
#: (or id -> True for the flag tables)
_HOOK_TABLES = ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks",
                "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
                "_backward_pre_hooks", "_backward_hooks", "_state_dict_pre_hooks",
                "_state_dict_hooks", "_load_state_dict_pre_hooks",
                "_load_state_dict_post_hooks")
_NO_HOOKS = types.MappingProxyType({})  # a module's tables until its first hook


def _runs_forward_hooks(call):
    """A subclass's own ``__call__``, made to run the forward hooks as Module's does."""
    @functools.wraps(call)
    def __call__(self, *args, **kwargs):
        if (self._hooked and (self._forward_pre_hooks or self._forward_hooks)
                and not self.__dict__.get("_in_call_hooks")):
            return self._call_impl(functools.partial(call, self), args, kwargs, guard=True)
        return call(self, *args, **kwargs)
    __call__._runs_hooks = True
    return __call__


def _runs_backward_hooks(backward):
    """A subclass's own ``backward(*grads)``, made to run the backward hooks: grad_output
    is its positional arguments, grad_input its return value."""
    @functools.wraps(backward)
    @_counts_as_backward
    def wrapper(self, *args, **kwargs):
        if Module._none_grads_seen:
            self._fill_no_grads()
        if (self._hooked and (self._backward_pre_hooks or self._backward_hooks)
                and not self.__dict__.get("_in_backward_hooks")):
            kwargs = dict(kwargs)
            grads, to_args = self._hook_grad_outputs(args, kwargs)
            inputs = self._hook_grad_inputs()
            if to_args is None:
                return self._backward_hooked(grads, lambda *g: backward(self, *g, **kwargs),
                                             grad_inputs=inputs)
            return self._backward_hooked(grads,
                                         lambda *g: backward(self, *to_args(g), **kwargs),
                                         grad_inputs=inputs)
        return backward(self, *args, **kwargs)
    wrapper._runs_hooks = True
    return wrapper


def _defined_in_fastnn(method):
    """True for a method fastnn defines (not a user's override)."""
    return (getattr(method, "__module__", None) or "").startswith("fastnn.")


def _move_parameter(param, device):
    """param's data and gradient to device ('cpu' or 'cuda'), in place."""
    ns = _device.namespace(device)
    if _device.device_of(param.data) != device:
        param._rebind_data(ns.put(param.data))
    if param._grad is not None and _device.device_of(param._grad) != device:
        param._replace_grad(ns.put(param._grad))


def _is_device_like(value):
    """True for a device name ('cpu', 'cuda', 'cuda:0', ...) or a torch.device."""
    if type(value).__name__ == "device":
        return True
    return isinstance(value, str) and value.split(":")[0] in ("cpu", "cuda", "mps", "meta")


def _warn_forward_without_backward(cls):
    """A UserWarning for a user's subclass of a built-in layer (or container) that
    defines forward and no backward: the inherited backward differentiates the built-in
    forward, so a forward computing anything else (PyTorch's Scaled(nn.Linear) returning
    super().forward(x) * 2) gets silently wrong gradients. A plain Module subclass has no
    inherited backward (its backward says so)."""
    forward = cls.__dict__.get("forward")
    if forward is None or _defined_in_fastnn(forward):
        return
    backward, _backward = cls.backward, cls._backward
    if not (_defined_in_fastnn(backward) and _defined_in_fastnn(_backward)):
        return   # (a backward of the user's, here or in a base)
    if backward is Module.backward and _backward is Module._backward:
        return
    base = next(b for b in cls.__mro__[1:] if not b.__name__.startswith("_")
                and _defined_in_fastnn(b))   # (ReLU, not its private base _Elementwise)
    warnings.warn(f"{cls.__name__} defines forward but not backward: the backward it "
                  f"inherits is {base.__name__}'s, which differentiates {base.__name__}'s "
                  f"own forward; if {cls.__name__}.forward computes anything else, define "
                  f"backward(grad_out) too (fastnn has no autograd; fastnn.gradcheck "
                  f"checks it)", UserWarning, stacklevel=3)


def _records_init_args(init):
    """A fastnn.nn class's own ``__init__``, made to keep the arguments of the outermost
    call as ``_init_args`` = (class, args, kwargs) in ``plain_values``' JSON form, so
    ``fastnn.save`` can record how to rebuild the module (``fastnn.io``). Encoded, a
    module keeps no reference to its layers, arrays or functions through them (pickle and
    deepcopy are unchanged); with an argument that is not plain, (class, None, what it
    was).

    It also takes PyTorch's factory keywords where the class does not itself: dtype=None
    is the class's default dtype (float32; torch.get_default_dtype()), not NumPy's
    float64, and device= builds the layer on the host and moves it there (None and 'cpu'
    leave it), as ``nn.Linear(3, 4, device=None, dtype=None)`` in ported code expects."""
    params = inspect.signature(init).parameters
    default_dtype = params["dtype"].default if "dtype" in params else None
    if default_dtype is inspect.Parameter.empty:  # (a dtype the caller must give)
        default_dtype = None
    takes_device = "device" in params
    names = list(params)[1:]   # (after self)
    dtype_at = (names.index("dtype") if "dtype" in names
                and params["dtype"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD else None)

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if "_init_args" in self.__dict__:  # a super().__init__(...) inside the outer call
            return init(self, *args, **kwargs)
        if "dtype" in kwargs and kwargs["dtype"] is None and default_dtype is not None:
            kwargs["dtype"] = default_dtype
        if "dtype" in kwargs and _is_torch_dtype(kwargs["dtype"]):
            kwargs["dtype"] = _layer_dtype(self, kwargs["dtype"])
        elif dtype_at is not None and len(args) > dtype_at and _is_torch_dtype(args[dtype_at]):
            args = (*args[:dtype_at], _layer_dtype(self, args[dtype_at]), *args[dtype_at + 1:])
        if dtype_at is not None and len(args) > dtype_at and _is_device_like(args[dtype_at]):
            raise TypeError(f"{type(self).__name__}: got the device {args[dtype_at]!r} as "
                            f"positional argument {dtype_at + 1}, where fastnn takes dtype "
                            f"(PyTorch's device); pass it by keyword: device=...")
        device = None if takes_device else kwargs.pop("device", None)
        object.__setattr__(self, "_init_args", None)
        init(self, *args, **kwargs)
        try:
            # (a size given as a 1-D integer array is recorded as the tuple it stands for)
            record = (type(self), [plain_values.encode(int_items(a)) for a in args],
                      {k: plain_values.encode(int_items(v)) for k, v in kwargs.items()})
        except plain_values.NotPlain as exc:
            record = (type(self), None, str(exc))
        object.__setattr__(self, "_init_args", record)
        if device is not None and str(device) != "cpu":
            self.to(device)
    __init__._records_args = True
    if not takes_device and "dtype" in params:
        # what help() and inspect.signature show: PyTorch's pair of factory keywords
        # (the layers without a dtype take device= too, where PyTorch's take none)
        shown = list(inspect.signature(init).parameters.values())
        at = next((i for i, p in enumerate(shown) if p.kind is inspect.Parameter.VAR_KEYWORD),
                  len(shown))
        shown.insert(at, inspect.Parameter("device", inspect.Parameter.KEYWORD_ONLY,
                                           default=None))
        __init__.__signature__ = inspect.signature(init).replace(parameters=shown)
    return __init__


class Module:
    """Base class of layers and containers (see the module docstring for the hooks)."""

    #: True once any module has had a hook registered: containers look for hooks on
    #: their layers only then (and only on a layer whose own ``_hooked`` is True: one
    #: that has had a hook registered). A module's hook tables (PyTorch's names) are
    #: made by its first registration; until then they read as empty.
    _hooks_seen = False
    #: True once a Parameter's .grad was set to None (PyTorch's way of clearing it): a
    #: backward then first gives such parameters zeros to write into (_fill_no_grads)
    _none_grads_seen = False
    _forward_pre_hooks = _forward_pre_hooks_with_kwargs = _forward_hooks = _NO_HOOKS
    _forward_hooks_with_kwargs = _forward_hooks_always_called = _NO_HOOKS
    _backward_pre_hooks = _backward_hooks = _NO_HOOKS
    _state_dict_pre_hooks = _state_dict_hooks = _NO_HOOKS
    _load_state_dict_pre_hooks = _load_state_dict_post_hooks = _NO_HOOKS
    #: True on a user's subclass of a built-in layer that defines its own forward
    #: (backward): containers then call that method, as PyTorch's call module(x), not
    #: the built-in kernels under it (set by __init_subclass__)
    _user_forward = _user_backward = False
    #: True on a subclass whose forward, _forward, __call__, backward or _backward is the
    #: user's (set by __init_subclass__): see _runs_user_code
    _user_code = False

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_scratch", {})
        object.__setattr__(self, "_out_meta", None)
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_device", "cpu")
        object.__setattr__(self, "_hooked", False)  # True from its first hook on

    def __getstate__(self):
        # (pickle, deepcopy) a module on the GPU travels with host copies of its device
        # arrays (buffers, caches), put back on the GPU by __setstate__; scratch is dropped
        state = self.__dict__
        if state.get("_device", "cpu") == "cpu":
            return state
        return _picklable(dict(state, _scratch={}))

    def __setstate__(self, state):
        # (pickle, deepcopy) a module saved before hooks existed gets its _hooked flag
        state, slots = state if isinstance(state, tuple) else (state, None)
        if state and state.get("_device", "cpu") != "cpu":
            state = _unpickled(state)
        self.__dict__.update(state or {})
        for name, value in (slots or {}).items():
            object.__setattr__(self, name, value)
        if "_hooked" not in self.__dict__:
            object.__setattr__(self, "_hooked", any(name in self.__dict__
                                                    for name in _HOOK_TABLES))

    def __init_subclass__(cls, **kwargs):
        # A subclass's own __call__ or backward runs the hooks too (see the docstring).
        super().__init_subclass__(**kwargs)
        for name, wrap in (("__call__", _runs_forward_hooks), ("backward", _runs_backward_hooks)):
            method = cls.__dict__.get(name)
            if isinstance(method, types.FunctionType) and not getattr(method, "_runs_hooks",
                                                                       False):
                setattr(cls, name, wrap(method))
        cls._user_forward = (cls._forward is not Module._forward
                             and not _defined_in_fastnn(cls.forward))
        cls._user_backward = (cls._backward is not Module._backward
                              and not _defined_in_fastnn(cls.backward))
        cls._user_code = not all(_defined_in_fastnn(getattr(cls, name)) for name in
                                 ("forward", "_forward", "__call__", "backward", "_backward"))
        _warn_forward_without_backward(cls)
        # fastnn.nn's own layers keep their constructor arguments (fastnn.save records
        # them so that fastnn.load(path) can rebuild a tree of built-in layers)
        init = cls.__dict__.get("__init__")
        if init is None and cls.__init__ is not Module.__init__:
            init = cls.__init__  # (from a mixin that is no Module: the lazy layers')
        if (cls.__module__.startswith("fastnn.nn.") and isinstance(init, types.FunctionType)
                and not getattr(init, "_records_args", False)):
            cls.__init__ = _records_init_args(init)

    # ------------------------------------------------------------ registration
    def __getattr__(self, name):
        # (only for a name found nowhere) a module whose __init__ did not call
        # super().__init__() failed on Module's internals: "no attribute '_hooked'"
        if "_parameters" not in self.__dict__ and not name.startswith("__"):
            raise AttributeError(f"'{type(self).__name__}' object has no attribute {name!r}: "
                                 f"its __init__ did not call super().__init__(), which "
                                 f"sets up the Module (as PyTorch's)")
        raise AttributeError(f"'{type(self).__name__}' object has no attribute {name!r}")

    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if params is None:  # before Module.__init__: plain attributes only (PyTorch's)
            if isinstance(value, (Parameter, Module)):
                kind = "parameters" if isinstance(value, Parameter) else "module"
                raise AttributeError(f"cannot assign {kind} before Module.__init__() call "
                                     f"({type(self).__name__}: call super().__init__() "
                                     f"first)")
            object.__setattr__(self, name, value)
            return
        if isinstance(value, Parameter):
            if (_device.device_of(value.data) != self._device
                    and self._holds_arrays()):
                # to the device of the arrays the module holds, as a buffer goes (PyTorch
                # would fail at the forward; here every kernel call would copy it over)
                _move_parameter(value, self._device)
            self._modules.pop(name, None)
            self._drop_buffer(name)
            old = params.get(name)
            params[name] = value
            if old is not None and old is not value and _has_forward_record(self):
                # (PyTorch's graph keeps the old one; here backward would mix the two)
                _mark_stale([self], f"its parameter {name!r} was replaced")
        elif isinstance(value, Module):
            if name in params:  # (PyTorch's: a parameter's slot takes a Parameter or None)
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter "
                                f"'{name}' (fastnn.nn.Parameter or None expected)")
            self._drop_buffer(name)
            self._modules[name] = value
            self._adopt_device(value)
        elif name in self._buffers:
            if value is not None and not _device.is_array(value):
                raise TypeError(f"{type(self).__name__}: buffer {name!r} must be a numpy "
                                f"array, a device array or None, got {type(value).__name__}")
            if value is not None and _device.device_of(value) != self._device:
                value = _device.namespace(self._device).put(value)  # to the module's device
            # a strided or read-only array becomes a copy the kernels can update in place,
            # as a parameter's data does
            value = _kernel_ready(value)
            self._buffers[name] = value
        elif name in params or name in self._modules:
            if value is not None:
                kind = type(value).__name__
                wanted = ("fastnn.nn.Parameter or None expected: assign the array to "
                          f"{name}.data, or wrap it, nn.Parameter(array)" if name in params
                          else "a Module or None expected")
                raise TypeError(f"{type(self).__name__}: cannot replace {name!r} by "
                                f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} ({wanted})")
            # None keeps the slot, as PyTorch's: a value set later takes the same place in
            # parameters(), state_dict() and the optimizer's positions
            (params if name in params else self._modules)[name] = None
        elif name in self._derived_from:
            self._drop_derived(name, value)
        object.__setattr__(self, name, value)

    #: public attributes (kernel_size, padding, ...) the layer turns into what its
    #: kernels take (``_derive``, kept by ``_derived``): setting one to another value
    #: drops that, so the next forward reads the new value, as PyTorch's modules read
    #: theirs at each call
    _derived_from = frozenset()

    def _derive(self):
        """What the layer keeps of its ``_derived_from`` attributes (checked)."""
        raise NotImplementedError

    def _derived(self):
        """``_derive()``'s value, made again after one of those attributes was set."""
        derived = self.__dict__.get("_derived_value")
        if derived is None:
            derived = self._derive()
            object.__setattr__(self, "_derived_value", derived)
        return derived

    def _drop_derived(self, name, value):
        """Attribute name set to value: forget what was made of the old value; a forward
        kept for backward is refused by that backward (it ran with the old value)."""
        state = self.__dict__
        try:
            same = name in state and bool(state[name] == value) and \
                type(state[name]) is type(value)
        except Exception:   # (arrays and the like: taken as changed)
            same = False
        if same:
            return
        state.pop("_derived_value", None)
        if _has_forward_record(self):
            _mark_stale([self], f"its {name} was set to {value!r} after its last forward, "
                                f"whose saved context its backward cannot differentiate "
                                f"with the new value", changed=False)

    def _holds_arrays(self, leave_out=()):
        """True when this module or a submodule (but those in leave_out) has a parameter
        or a buffer."""
        skip = {id(m) for m in leave_out}
        return any(any(v is not None for v in (*m._parameters.values(), *m._buffers.values()))
                   for m in self.modules() if id(m) not in skip)

    def _adopt_device(self, child):
        """Registering a child on another device: a parent holding no arrays (a container
        of layers built with device='cuda', PyTorch's porting idiom) moves to the child's
        device, and a child holding none (a ReLU) to the parent's, so the model runs where
        its parameters are. Parameters on two devices are left as they are (a clear error
        at the forward, as in PyTorch)."""
        if child._device == self._device:
            return
        if not self._holds_arrays(leave_out=list(child.modules())):
            self.to(child._device)
        elif child._device == "cpu" and not child._holds_arrays():
            child.to(self._device)

    def __delattr__(self, name):
        # as PyTorch's: a parameter, buffer or child leaves its table too
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                self.__dict__.get("_non_persistent_buffers_set", set()).discard(name)
                self.__dict__.pop(name, None)
                return
        object.__delattr__(self, name)

    def _drop_buffer(self, name):
        """Forget the buffer name (persistent or not), if there is one."""
        if name in self._buffers:
            del self._buffers[name]
            self.__dict__.get("_non_persistent_buffers_set", set()).discard(name)

    def register_buffer(self, name, tensor, persistent=True):
        """Register a non-trainable array (running statistics) that state_dict includes
        (PyTorch's API; ``persistent=False``: kept out of the state dict).

        tensor: a NumPy array, or None for an absent buffer (skipped by state_dict); it is
        moved to the module's device. PyTorch's errors for a bad name (KeyError for '.',
        '' or an attribute that is not a buffer; TypeError for a name that is not a str).
        """
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        self._check_name("buffer", name, self._buffers)
        if tensor is not None and not _device.is_array(tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer "
                            f"'{name}' (numpy array or None required)")
        if tensor is not None:
            tensor = _kernel_ready(_device.namespace(self._device).put(tensor))
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        self._buffers[name] = tensor
        hidden = self._non_persistent()
        if persistent:
            hidden.discard(name)
        else:
            hidden.add(name)
        object.__setattr__(self, name, tensor)

    def _non_persistent(self):
        """The names of the buffers state_dict leaves out (PyTorch's
        ``_non_persistent_buffers_set``; made on first use, for modules pickled before)."""
        hidden = self.__dict__.get("_non_persistent_buffers_set")
        if hidden is None:
            hidden = set()
            object.__setattr__(self, "_non_persistent_buffers_set", hidden)
        return hidden

    def register_parameter(self, name, param):
        """Add a Parameter (or None) under name, as ``setattr`` does (PyTorch's API and
        errors)."""
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        self._check_name("parameter", name, self._parameters)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter "
                            f"'{name}' (expected a Parameter or None)")
        self._set_or_clear(name, param, self._parameters)

    def add_module(self, name, module):
        """Add a child module (or None) under name, as ``setattr`` does (PyTorch's API and
        errors; a Sequential's ``append`` is the way to add a layer it runs)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass (expected a "
                            f"Module or None)")
        self._check_name("module", name, self._modules)
        self._set_or_clear(name, module, self._modules)

    def register_module(self, name, module):
        """``add_module`` (PyTorch's alias)."""
        self.add_module(name, module)

    def _set_or_clear(self, name, value, table):
        if value is None:   # (a slot, as PyTorch's register_parameter(name, None))
            table[name] = None
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, value)

    def _check_name(self, kind, name, table):
        """PyTorch's checks of a name to register (kind: 'parameter', 'buffer' or
        'module'): a str, not empty, without '.', not an attribute of another sort (a
        plain attribute that is None is free)."""
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
        if "." in name:
            raise KeyError(f"{kind} name can't contain '.', got: {name}; use a name "
                           f"without '.'")
        if name == "":
            raise KeyError(f"{kind} name can't be empty string \"\"")
        others = (t for t in (self._parameters, self._buffers, self._modules) if t is not table)
        if name not in table and (getattr(self, name, None) is not None
                                  or any(name in t for t in others)):   # (a None slot too)
            raise KeyError(f"attribute '{name}' already exists")

    # ---------------------------------------------------------------- traversal
    def named_children(self):
        """(name, child) for each direct child, a child held under two names once."""
        seen, out = set(), _Items()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                out.append((name, module))
        return out

    def children(self):
        """Each direct child module once, in registration order (``named_children``'s)."""
        return _Items(module for _, module in self.named_children())

    def modules(self, remove_duplicate=True):
        """This module and every module under it, depth first, each once
        (remove_duplicate=False: a module held under two names twice, as PyTorch's)."""
        return _Items(module for _, module in
                      self.named_modules(remove_duplicate=remove_duplicate))

    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """(dotted name, module) for this module (named prefix) and every module under
        it, depth first, each once (PyTorch's order and arguments: memo, a set of
        modules not to list, is added to; remove_duplicate=False lists a module held
        under two names twice)."""
        out = _Items()
        self._walk_modules(set() if memo is None else memo, prefix, remove_duplicate, out)
        return out

    def _walk_modules(self, memo, prefix, remove_duplicate, out):
        if self in memo:
            return
        if remove_duplicate:
            memo.add(self)
        out.append((prefix, self))
        for name, module in self._modules.items():
            if module is not None:
                module._walk_modules(memo, prefix + ("." if prefix else "") + name,
                                     remove_duplicate, out)

    def requires_grad_(self, requires_grad=True):
        """Freeze (False) or unfreeze every parameter for the optimizers; self. A lazy
        layer that has not seen an input yet is an error (as PyTorch's), not skipped."""
        for _, param in self.named_parameters():
            param.requires_grad_(requires_grad)
        return self

    def apply(self, fn):
        """Call fn(module) on every child's modules, then on this one (PyTorch's order,
        e.g. to initialise weights); self. A child held under two names is visited
        once (``children()``, as PyTorch's)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def get_submodule(self, target):
        """The module at the dotted path target ('' is self), as PyTorch's; AttributeError
        naming the first part of the path that is missing or not a Module."""
        if target == "":
            return self
        mod = self
        for item in target.split("."):
            if not hasattr(mod, item):
                raise AttributeError(f"{type(mod).__name__} has no attribute `{item}`")
            mod = getattr(mod, item)
            if not isinstance(mod, Module):
                raise AttributeError(f"`{item}` is not an nn.Module")
        return mod

    def set_submodule(self, target, module, strict=False):
        """Put module at the dotted path target (PyTorch's): it replaces the module there,
        or (strict=False) becomes a new child of the module the path's head names.
        ValueError for an empty target or a module that is not a Module; AttributeError
        for a path that does not lead to a module (or, strict=True, to an existing one)."""
        if target == "":
            raise ValueError("Cannot set the submodule without a target name!")
        atoms = target.split(".")
        if not isinstance(module, Module):
            raise ValueError(f"`module` is not an nn.Module, found {type(module)}")
        parent = self if len(atoms) == 1 else self.get_submodule(".".join(atoms[:-1]))
        name = atoms[-1]
        if strict and not hasattr(parent, name):
            raise AttributeError(f"{type(parent).__name__} has no attribute `{name}`")
        if hasattr(parent, name) and not isinstance(getattr(parent, name), Module):
            raise AttributeError(f"`{name}` is not an nn.Module")
        setattr(parent, name, module)

    def get_parameter(self, target):
        """The Parameter at the dotted path target ('0.weight'), as PyTorch's;
        AttributeError for a bad path or something that is not a Parameter."""
        mod, name, param = self._attribute_at(target)
        if not isinstance(param, Parameter):
            raise AttributeError(f"`{name}` is not an nn.Parameter")
        return param

    def get_buffer(self, target):
        """The buffer (the live array, or None for an absent one) at the dotted path
        target ('1.running_mean'), as PyTorch's; AttributeError for a bad path or a name
        that is not a registered buffer."""
        mod, name, buf = self._attribute_at(target)
        if name == BATCH_COUNT_KEY and _has_batch_count(mod):
            return mod._batch_count()
        if name not in mod._buffers:
            raise AttributeError(f"`{name}` is not a buffer")
        return buf

    def _attribute_at(self, target):
        """(owning module, name, value) of the dotted path target ('0.weight'), or
        PyTorch's AttributeError for a path that leads nowhere."""
        module_path, _, name = target.rpartition(".")
        mod = self.get_submodule(module_path)
        if not hasattr(mod, name):
            raise AttributeError(f"{type(mod).__name__} has no attribute `{name}`")
        return mod, name, getattr(mod, name)

    # -------------------------------------------------------------------- hooks
    def _add_hook(self, method, name, hook, prepend, flags=()):
        """Register hook in the table name, with the flag tables of flags (table name,
        set?) listing it; the handle removes it from all of them."""
        if not callable(hook):
            raise TypeError(f"{type(self).__name__}.{method}: expected a callable hook, got "
                            f"{type(hook).__name__}")
        if not self._hooked:
            for table_name in _HOOK_TABLES:
                object.__setattr__(self, table_name, OrderedDict())
        table = self.__dict__[name]
        extra = [self.__dict__[flag] for flag, _ in flags]
        handle = RemovableHandle(table, extra_dict=extra)
        table[handle.id] = hook
        for (_, on), flag_table in zip(flags, extra):
            if on:
                flag_table[handle.id] = True
        if prepend:
            table.move_to_end(handle.id, last=False)
        object.__setattr__(self, "_hooked", True)
        Module._hooks_seen = True
        return handle

    def register_forward_pre_hook(self, hook, *, prepend=False, with_kwargs=False):
        """hook(module, args) -> None or new args (a single value is made a 1-tuple), or
        with_kwargs=True: hook(module, args, kwargs) -> None or (new args, new kwargs);
        called by ``module(...)`` before forward. prepend=True: before the hooks already
        registered. Returns a RemovableHandle."""
        return self._add_hook("register_forward_pre_hook", "_forward_pre_hooks", hook,
                              prepend, [("_forward_pre_hooks_with_kwargs", with_kwargs)])

    def register_forward_hook(self, hook, *, prepend=False, with_kwargs=False,
                              always_call=False):
        """hook(module, args, output) -> None or a new output (with_kwargs=True:
        hook(module, args, kwargs, output)); called by ``module(...)`` after forward, and
        with always_call=True also when forward (or an earlier hook) raised, with output
        None. Returns a RemovableHandle."""
        return self._add_hook("register_forward_hook", "_forward_hooks", hook, prepend,
                              [("_forward_hooks_with_kwargs", with_kwargs),
                               ("_forward_hooks_always_called", always_call)])

    def register_full_backward_pre_hook(self, hook, prepend=False):
        """hook(module, grad_output) -> None or a replacement tuple of the same length;
        called by ``backward`` before the module's backward runs (grad_output is
        ``(grad_out,)`` for a layer). Returns a RemovableHandle."""
        return self._add_hook("register_full_backward_pre_hook", "_backward_pre_hooks",
                              hook, prepend)

    def register_full_backward_hook(self, hook, prepend=False):
        """hook(module, grad_input, grad_output) -> None or a replacement grad_input tuple
        of the same length (each gradient None or of the same shape and dtype); called by
        ``backward`` after the module's backward (grad_input is ``(grad_in,)`` for a layer,
        ``(None,)`` with need_grad_in=False). Returns a RemovableHandle."""
        return self._add_hook("register_full_backward_hook", "_backward_hooks", hook,
                              prepend)

    def register_state_dict_pre_hook(self, hook):
        """hook(module, prefix, keep_vars), called by ``state_dict`` before it saves this
        module's entries (PyTorch's). Returns a RemovableHandle."""
        return self._add_hook("register_state_dict_pre_hook", "_state_dict_pre_hooks",
                              hook, False)

    def register_state_dict_post_hook(self, hook):
        """hook(module, state_dict, prefix, local_metadata) -> None, called by
        ``state_dict`` after this module's entries and its children's are in state_dict,
        which it may edit in place (PyTorch's). Returns a RemovableHandle."""
        return self._add_hook("register_state_dict_post_hook", "_state_dict_hooks", hook,
                              False)

    def register_load_state_dict_pre_hook(self, hook):
        """hook(module, state_dict, prefix, local_metadata, strict, missing_keys,
        unexpected_keys, error_msgs), called by ``load_state_dict`` before anything is
        loaded; it may edit state_dict (a copy of the one given) and append to the lists
        (an error message makes the load fail). Returns a RemovableHandle."""
        return self._add_hook("register_load_state_dict_pre_hook",
                              "_load_state_dict_pre_hooks", hook, False)

    def register_load_state_dict_post_hook(self, hook):
        """hook(module, incompatible_keys) -> None, called by ``load_state_dict`` after
        the arrays are loaded; it may edit incompatible_keys.missing_keys and
        .unexpected_keys in place before strict=True checks them (PyTorch's). Returns a
        RemovableHandle."""
        return self._add_hook("register_load_state_dict_post_hook",
                              "_load_state_dict_post_hooks", hook, False)

    def _call_impl(self, forward_call, args, kwargs, guard=False):
        """PyTorch's ``Module._call_impl``: forward pre-hooks, forward_call, forward hooks,
        and on an exception the always_call hooks not yet run. guard: a subclass's own
        __call__ runs: a Module.__call__ it reaches runs no hooks a second time."""
        result = None
        called_always = set()
        ran = False   # True once forward_call returned: a forward hook may still raise
        # what the forward changes besides its output, put back should a forward hook
        # fail after it ran (as a Sequential does for the hooks of its layers)
        kept = _kept_for_failure(self) if self._forward_hooks else None
        try:
            if self._forward_pre_hooks:
                with_kwargs = self._forward_pre_hooks_with_kwargs
                for hook_id, hook in list(self._forward_pre_hooks.items()):
                    if hook_id in with_kwargs:
                        out = hook(self, args, kwargs)
                        if out is not None:
                            if isinstance(out, tuple) and len(out) == 2:
                                args, kwargs = out
                            else:
                                raise RuntimeValueError(
                                    "forward pre-hook must return None or a "
                                    "tuple of (new_args, new_kwargs), but "
                                    f"got {out}.")
                    else:
                        out = hook(self, args)
                        if out is not None:
                            args = out if isinstance(out, tuple) else (out,)
            if guard:
                was = self.__dict__.get("_in_call_hooks", False)
                object.__setattr__(self, "_in_call_hooks", True)
                try:
                    result = forward_call(*args, **kwargs)
                finally:
                    object.__setattr__(self, "_in_call_hooks", was)
            else:
                result = forward_call(*args, **kwargs)
            ran = True
            if self._forward_hooks:
                for hook_id, hook in list(self._forward_hooks.items()):
                    if hook_id in self._forward_hooks_always_called:
                        called_always.add(hook_id)
                    result = self._run_forward_hook(hook_id, hook, args, kwargs, result)
            return result
        except Exception as error:
            if ran and kept is not None:
                _put_back(kept)
            if ran and _has_forward_record(self):
                # the forward ran (its layers keep this call for backward) but the caller
                # gets no output: backward would differentiate the failed call
                _mark_stale([self], f"its last call failed in a forward hook "
                                    f"({type(error).__name__}) after its forward ran, so its "
                                    f"backward would differentiate that call", changed=False)
            for hook_id, hook in list(self._forward_hooks.items()):
                if (hook_id in self._forward_hooks_always_called
                        and hook_id not in called_always):
                    try:
                        result = self._run_forward_hook(hook_id, hook, args, kwargs, result)
                    except Exception as err:
                        warnings.warn("module forward hook with ``always_call=True`` raised "
                                      "an exception that was silenced as another error was "
                                      f"raised in forward: {err}", stacklevel=2)
            raise

    def _run_forward_hook(self, hook_id, hook, args, kwargs, result):
        """One forward hook called as it was registered (with kwargs or not); its
        non-None return replaces result (PyTorch's rule). Returns the result."""
        if hook_id in self._forward_hooks_with_kwargs:
            out = hook(self, args, kwargs, result)
        else:
            out = hook(self, args, result)
        return result if out is None else out

    def _hook_grad_outputs(self, args, kwargs):
        """grad_output as the backward hooks see it, for the positional arguments args of
        this module's own ``backward`` (and its keyword arguments kwargs, a copy it may
        take some from): PyTorch's tuple, one entry per output of forward, None where no
        gradient flows; and a function from such a tuple back to backward's positional
        arguments (None: the tuple is them). Default: the arguments as they are."""
        return args, None

    def _hook_grad_inputs(self):
        """grad_input as the backward hooks see it, asked before this module's own
        ``backward`` runs (it may drop what forward recorded): None (the return value, a
        tuple or one value as one entry) or a pair of functions, ``to_hook(result)`` ->
        PyTorch's tuple (one entry per input of forward, None for one that gets no
        gradient) and ``from_hook(result, grads)`` -> what backward returns for the
        hooks' tuple grads (it may also set what backward stores, e.g. ``grad_hx``)."""
        return None

    def _backward_hooked(self, grad_outputs, run, need_grad_in=True, grad_inputs=None):
        """The backward pre-hooks on grad_outputs (a tuple), run(*grad_outputs) -> the
        input gradient (one array or None, or a tuple), then the backward hooks; returns
        the input gradient as the hooks left it. need_grad_in=False (one input, no
        gradient for it): the backward hooks run before run, with grad_input (None,), as
        PyTorch's fire as soon as grad_output is known when no input needs a gradient.
        grad_inputs: ``_hook_grad_inputs()``'s conversion (None: the result as it is).
        While run runs, this module's own backward (a subclass's, or Module's through
        super()) runs no hooks again."""
        for hook in list(self._backward_pre_hooks.values()):
            out = _outside_backward(hook, self, grad_outputs)
            if out is None:
                continue
            self._check_hook_grads(out, len(grad_outputs), "pre-hook", "output",
                                   "Backward pre hook")
            grad_outputs = tuple(out)
        if not need_grad_in:
            self._no_input_grad_hooks((None,), grad_outputs)
        was = self.__dict__.get("_in_backward_hooks", False)
        object.__setattr__(self, "_in_backward_hooks", True)
        try:
            result = run(*grad_outputs)
        finally:
            object.__setattr__(self, "_in_backward_hooks", was)
        if not need_grad_in or not self._backward_hooks:
            return result
        if grad_inputs is not None:
            to_hook, from_hook = grad_inputs
            grad_inputs = originals = to_hook(result)
        else:
            single = not isinstance(result, tuple)
            grad_inputs = originals = (result,) if single else result
            from_hook = lambda _, grads: grads[0] if single else grads  # noqa: E731
        if all(g is None for g in originals):
            self._no_input_grad_hooks(grad_inputs, grad_outputs)
            return result
        for hook in list(self._backward_hooks.values()):
            out = _outside_backward(hook, self, grad_inputs, grad_outputs)
            if out is None:
                continue
            self._check_hook_grads(out, len(grad_inputs), "hook", "input", "Backward hook")
            for i, (old, new) in enumerate(zip(originals, out)):
                if new is not None and _device.is_array(old):
                    self._check_replacement(f"grad_input[{i}]", new, old)
            grad_inputs = tuple(out)
        return from_hook(result, grad_inputs)

    def _check_hook_grads(self, out, expected, kind, side, torch_name):
        """A backward (pre-)hook's returned gradients: a tuple or list of one per
        input/output (PyTorch's message for a wrong count)."""
        if not isinstance(out, (tuple, list)):
            raise TypeError(f"{self._where()}: a backward {kind} must return None or a "
                            f"tuple of gradients (one per {side}), got {type(out).__name__}")
        if len(out) != expected:
            raise RuntimeValueError(f"{torch_name} returned an invalid number of grad_{side}, "
                                    f"got {len(out)}, but expected {expected}")

    def _no_input_grad_hooks(self, grad_inputs, grad_outputs):
        """The backward hooks when no input gets a gradient: each may return only None or
        all None (PyTorch's rule and message)."""
        for hook in list(self._backward_hooks.values()):
            out = _outside_backward(hook, self, grad_inputs, grad_outputs)
            if out is not None and not (isinstance(out, tuple)
                                        and all(el is None for el in out)):
                raise RuntimeValueError("Backward hook for Modules where no input requires "
                                        "gradient should always return None or None for all "
                                        "gradients.")

    def _check_replacement(self, name, new, old):
        """A gradient a hook returned in place of old: an array of old's shape and dtype."""
        if not _device.is_array(new):
            raise TypeError(f"{self._where()}: a backward hook returned {name} as a "
                            f"{type(new).__name__}, expected an array or None")
        if tuple(new.shape) != tuple(old.shape):
            raise RuntimeValueError(f"{self._where()}: a backward hook returned {name} of "
                                    f"shape {tuple(new.shape)}, expected {tuple(old.shape)}")
        if new.dtype != old.dtype:
            raise DtypeError(f"{self._where()}: a backward hook returned {name} of dtype "
                             f"{new.dtype}, expected {old.dtype}")

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, Parameter) pairs in registration order, recursing into children
        (recurse=False: this module's own); a parameter shared by two modules (or held by
        a module under two names) is listed once unless remove_duplicate=False, as in
        PyTorch. A lazy layer that has not seen an input yet has none to give: that is
        an error (run one forward first)."""
        return self._named_parameters(prefix, False, recurse, remove_duplicate)

    def _named_parameters(self, prefix="", lazy_ok=True, recurse=True, remove_duplicate=True):
        def members(module, mprefix):
            if not lazy_ok and "_lazy" in module.__dict__:
                # (PyTorch's uninitialised parameters raise ValueError when used)
                raise RuntimeValueError(f"{type(module).__name__} ({mprefix or 'the model'}) "
                                        f"has no parameters until it sees an input: run one "
                                        f"forward (a dry run) before asking for them, e.g. "
                                        f"before building the optimizer")
            return module._parameters.items()
        return self._named_members(members, prefix, recurse, remove_duplicate)

    def _named_members(self, members, prefix, recurse, remove_duplicate):
        """PyTorch's ``_named_members``: (dotted name, value) of members(module, name)
        for this module (and with recurse its descendants), each value once unless
        remove_duplicate is False."""
        modules = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
                   if recurse else [(prefix, self)])
        out, seen = _Items(), set()
        for mprefix, module in modules:
            for name, value in members(module, mprefix):
                if value is None or id(value) in seen:
                    continue
                if remove_duplicate:
                    seen.add(id(value))
                out.append((mprefix + ("." if mprefix else "") + name, value))
        return out

    def parameters(self, recurse=True):
        """Every Parameter in registration order (a list, so it can be walked twice, that
        ``next()`` steps through as PyTorch's generator)."""
        return _Items(param for _, param in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, array) pairs of registered buffers (running statistics), the
        non-persistent ones too; arguments as ``named_parameters``'s."""
        return self._named_members(lambda module, _: _buffer_items(module), prefix,
                                   recurse, remove_duplicate)

    def buffers(self, recurse=True):
        """Every registered buffer array (``named_buffers``'s), recursing into children
        unless recurse=False."""
        return _Items(buf for _, buf in self.named_buffers(recurse=recurse))

    def has_parameters(self, trainable=False):
        """Whether this module or one inside it has a Parameter (with requires_grad, when
        trainable)."""
        return (any(p is not None and (p.requires_grad or not trainable)
                    for p in self._parameters.values())
                or any(m is not None and m.has_parameters(trainable)
                       for m in self._modules.values()))

    # ------------------------------------------------------------------- modes
    def train(self, mode=True):
        """Training mode (BatchNorm batch statistics, dropout on), recursively; self.
        mode must be a bool (PyTorch's ValueError otherwise)."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        object.__setattr__(self, "training", mode)
        for module in self.children():   # through each child's own train(), as PyTorch:
            module.train(mode)           # an override (a frozen BatchNorm) takes effect
        return self

    def eval(self):
        """Evaluation mode: BatchNorm uses running statistics, dropout is the identity."""
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        """Set every parameter gradient to zero: ``.grad`` stays an array (layers
        accumulate into it) and reads as zeros.

        set_to_none=True (the default, as in PyTorch) writes the zeros lazily: the next
        backward of a Linear layer writes its weight and bias gradients instead of adding
        them to zeros (PyTorch's set_to_none saves the same pass over memory), and any
        other read of ``.grad`` writes the zeros first. An array taken from ``.grad``
        before the call keeps its values until then (and no longer: ``.grad`` stays one
        array, where PyTorch's next backward makes a new tensor; keep ``p.grad.copy()``
        to log gradients). set_to_none=False writes the zeros now, in place.
        """
        params = [param for _, param in self._named_parameters()]
        if set_to_none:
            zero_grads_lazily(params)
        else:
            for param in params:
                param._write_zero_grad()

    # ------------------------------------------------------------------ devices
    @property
    def device(self):
        """'cpu' or 'cuda': where the parameters and buffers live (set by ``to``)."""
        return self._device

    def to(self, device=None, dtype=None, non_blocking=False, memory_format=None):
        """Move parameters (data and grad) and buffers to 'cuda' or 'cpu', and/or convert
        them to dtype (float32 or float64), in place; self.

        As in PyTorch, ``to(np.float64)`` (a dtype in place of the device) converts only,
        and ``to(array)`` takes the array's device and dtype. On 'cuda' the layers run the
        cuda backend's kernels and keep their buffers on the GPU (``fastnn.device``).
        An optimizer built before moves (converts) its flat buffers and state to the
        parameters' new device (dtype) at its next step. non_blocking and memory_format are
        accepted for PyTorch code and change nothing (copies complete before it returns).
        """
        if _device.is_array(device) and dtype is None:   # PyTorch's to(tensor)
            device, dtype = _device.device_of(device), device.dtype
        if device is not None and dtype is None and _is_dtype_like(device):
            device, dtype = None, device
        if device is None and dtype is None and memory_format is not None:
            return self   # (PyTorch's to(memory_format=...): NumPy arrays have one layout)
        if device is None and dtype is None:
            raise TypeError(f"{type(self).__name__}.to: expected a device ('cpu', 'cuda') "
                            f"or a dtype (float32, float64)")
        if dtype is not None:
            self.to_dtype(dtype)
        if device is None:
            return self
        device = _device.check_device(f"{type(self).__name__}.to", device)
        ns = _device.namespace(device)
        if device == "cuda":
            _device.kernels("cuda")  # raises a clear error where CUDA is unavailable
        # the modules that move refuse the backward of a forward run where they were (a
        # move to where they are changes nothing: that backward still runs, as PyTorch's)
        moving = [m for m in self.modules() if m._device != device]
        for module in moving:
            for param in module._parameters.values():
                if param is not None:
                    _move_parameter(param, device)
            for name, buf in list(module._buffers.items()):
                if buf is not None and _device.device_of(buf) != device:
                    module._buffers[name] = ns.put(buf)
                    object.__setattr__(module, name, module._buffers[name])
            object.__setattr__(module, "_device", device)
        _mark_stale(moving, f"it was moved to {device}")
        return self

    def cuda(self, device=None):
        """``to('cuda')`` (device: None, 0 or 'cuda:0': fastnn runs on one GPU)."""
        if isinstance(device, str):
            index = 0 if device in ("cuda", "cuda:0") else -1
        else:
            index = device if isinstance(device, int) else getattr(device, "index", None)
        if index not in (None, 0):
            raise ValueError(f"{type(self).__name__}.cuda: fastnn uses one GPU, device 0; "
                             f"got {device!r}")
        return self.to("cuda")

    def cpu(self):
        """``to('cpu')``."""
        return self.to("cpu")

    def _kernels(self):
        """The backend whose kernels this module's layers call: the cuda backend on the
        GPU, the current backend on the host."""
        return _device.kernels(self._device)

    # -------------------------------------------------------------- state dict
    def _all_modules(self, prefix=""):
        """(prefix ending in '.' or '', module) for this module and every module under it
        under every name it is held by: state dict's walk (PyTorch's: a module held
        twice is saved, and loaded, under both names)."""
        found = [(prefix, self)]
        for name, child in self._modules.items():
            if child is not None:
                found.extend(child._all_modules(f"{prefix}{name}."))
        return found

    def _own_state(self):
        """(name, live Parameter or array) of this module's own state dict arrays: its
        parameters, then its persistent buffers (PyTorch's order)."""
        hidden = self.__dict__.get("_non_persistent_buffers_set", ())
        return ([(name, p) for name, p in self._parameters.items() if p is not None]
                + [(name, b) for name, b in self._buffers.items()
                   if b is not None and name not in hidden])

    def state_dict(self, *args, destination=None, prefix="", keep_vars=False):
        """An ordered dict: dotted name -> copy of every parameter and persistent buffer
        (NumPy arrays, also for a model on the GPU; keep_vars=True: the Parameters and
        live buffers themselves), then a norm layer's PyTorch batch counter
        'prefix.num_batches_tracked' (a 0-d int64 array, where PyTorch has one: running
        statistics tracked), and for a module that overrides ``get_extra_state`` its
        value under 'prefix._extra_state' (after the module's own arrays, before its
        children's: PyTorch's order). A module held under two names is saved under both.
        destination (a mapping, returned) and prefix (put before every key) as in
        PyTorch, also positionally (its deprecated ``state_dict(destination, prefix,
        keep_vars)``). Runs the state dict pre- and post-hooks."""
        if args:
            if len(args) > 3:
                raise TypeError(f"state_dict() takes at most 3 positional arguments, got "
                                f"{len(args)}")
            destination, prefix, keep_vars = (
                list(args) + [destination, prefix, keep_vars][len(args):])
        if destination is None:
            destination = OrderedDict()
        for hook in list(self._state_dict_pre_hooks.values()):
            hook(self, prefix, keep_vars)
        self._save_to_state_dict(destination, prefix, keep_vars)
        for name, child in self._modules.items():
            if child is not None:
                child.state_dict(destination=destination, prefix=f"{prefix}{name}.",
                                 keep_vars=keep_vars)
        for hook in list(self._state_dict_hooks.values()):
            if hook(self, destination, prefix, {}) is not None:
                raise RuntimeValueError("state_dict post-hook must return None")
        return destination

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        """This module's own entries (not its children's) into destination."""
        for name, value in self._own_state():
            if not keep_vars:
                value = _device.host_copy(value.data if isinstance(value, Parameter)
                                          else value)
            destination[prefix + name] = value
        if _has_batch_count(self):
            destination[prefix + BATCH_COUNT_KEY] = np.array(self.num_batches_tracked,
                                                             dtype=np.int64)
        if type(self).get_extra_state is not Module.get_extra_state:
            destination[prefix + EXTRA_STATE_KEY] = self.get_extra_state()

    def get_extra_state(self):
        """The extra state (any object) state_dict stores under '_extra_state' for this
        module: override it and ``set_extra_state`` to keep state that is not an array
        (PyTorch's API). The base method is never called by state_dict."""
        raise RuntimeError(f"{type(self).__name__}.get_extra_state: this module has no extra "
                           f"state (a module with some overrides get_extra_state and "
                           f"set_extra_state)")

    def set_extra_state(self, state):
        """Restore what ``get_extra_state`` returned (load_state_dict calls it with the
        '_extra_state' entry). Override it together with ``get_extra_state``."""
        raise RuntimeError(f"{type(self).__name__}.set_extra_state: this module has no extra "
                           f"state (a module with some overrides get_extra_state and "
                           f"set_extra_state)")

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Copy arrays in place (``param.data[...] = value``, converted to the model's
        dtype, as PyTorch's ``copy_``) into parameters and persistent buffers; values
        are NumPy arrays, or anything ``np.asarray`` takes that has ``__array__`` (a
        Parameter, a CPU tensor). assign=True (PyTorch's) instead makes each parameter a
        new Parameter holding the state dict's array (its dtype, no copy), or the state
        dict's Parameter itself (a keep_vars state dict: shared, as PyTorch's, taking
        the requires_grad of the one it replaces), and each buffer that array.

        Every name, shape and value is checked before anything is written, so a failed
        load changes nothing (except that lazy layers first take their sizes from the
        saved arrays, as PyTorch's do); the error is a StateDictError, a RuntimeError
        (PyTorch's type) and a ValueError. strict=False ignores missing and unexpected
        names. A norm layer's ``num_batches_tracked`` entry (an integer count, 0-d) sets
        its batch counter (momentum None's divisor; the counter itself stays a host int,
        on any device); where the entry is absent (a state dict or checkpoint written
        before fastnn's state dicts carried it) the counter keeps its value and
        strict=True accepts the absence, not listing it in missing_keys: PyTorch's rule
        for a state dict without version metadata (a plain dict). A module that
        overrides ``set_extra_state`` gets its '_extra_state' entry (any object) after
        the arrays are copied; for one that does not, such an entry is an unexpected key.
        Load pre-hooks run first (on a copy of state_dict, which they may edit), post
        hooks after the copy (they may edit the key lists strict=True then checks).
        Returns LoadResult(missing_keys, unexpected_keys) (PyTorch's _IncompatibleKeys).
        """
        where = type(self).__name__
        if not isinstance(state_dict, collections.abc.Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        modules = self._all_modules("")
        missing, unexpected, problems = [], [], []
        if any(module._load_state_dict_pre_hooks for _, module in modules):
            state_dict = OrderedDict(state_dict)  # the hooks edit this copy
            for mprefix, module in modules:
                for hook in list(module._load_state_dict_pre_hooks.values()):
                    hook(module, state_dict, mprefix, {}, strict, missing, unexpected,
                         problems)
        unmade = set()  # the names of lazy layers still without sizes (not unexpected)
        for mprefix, module in modules:
            if "_lazy" in module.__dict__:  # a lazy layer takes its size from the arrays
                module._lazy_from_state(state_dict, mprefix)
                if "_lazy" in module.__dict__:  # none saved: its arrays are missing
                    names = [mprefix + name for name in module._lazy_state_names()]
                    unmade.update(names)
                    missing += names
        entries = self._load_entries(modules)
        missing += [k for k, (_, _, kind) in entries.items()
                    if k not in state_dict and kind != "count"]
        unexpected += [k for k in state_dict if k not in entries and k not in unmade]
        post_hooks = [m for _, m in modules if m._load_state_dict_post_hooks]
        if strict and missing and not post_hooks:
            problems.append(f"missing keys {missing}")
        if strict and unexpected and not post_hooks:
            problems.append(f"unexpected keys {unexpected}")
        values = self._loadable_values(entries, state_dict, problems)
        if problems:
            raise StateDictError(f"Error(s) in loading state_dict for {where}: nothing was "
                                 f"loaded: " + "; ".join(problems))
        loaded = set()
        for key, value in values.items():
            module, name, kind = entries[key]
            if kind == "count":
                module.num_batches_tracked = int(value)
            elif kind == "extra":
                module.set_extra_state(value)
            else:
                self._load_array(module, name, value, assign, state_dict[key])
                loaded.add(id(module))
        # a backward of a forward before would mix its saved arrays with the loaded ones
        # (PyTorch's fails: the copy is an in-place change of what its graph saved)
        _mark_stale(_with_ancestors(self, loaded), "load_state_dict loaded new values "
                    "into its parameters or buffers")
        result = LoadResult(missing, unexpected)
        for module in post_hooks:
            for hook in list(module._load_state_dict_post_hooks.values()):
                if hook(module, result) is not None:
                    raise AssertionValueError(   # (PyTorch's assert)
                        "Hooks registered with ``register_load_state_dict_post_hook`` are "
                        "not expected to return new values")
        if strict and post_hooks and (result.missing_keys or result.unexpected_keys):
            raise StateDictError(f"Error(s) in loading state_dict for {where}: missing keys "
                                 f"{result.missing_keys}; unexpected keys "
                                 f"{result.unexpected_keys}")
        return result

    @staticmethod
    def _load_entries(modules):
        """key -> (module, name, kind) of what load_state_dict takes, in state_dict's
        order; kind: 'array' (a parameter or persistent buffer), 'count' (a norm layer's
        num_batches_tracked) or 'extra' (a module that overrides set_extra_state)."""
        entries = OrderedDict()
        for prefix, module in modules:
            for name, _ in module._own_state():
                entries[prefix + name] = (module, name, "array")
            if _has_batch_count(module):
                entries[prefix + BATCH_COUNT_KEY] = (module, BATCH_COUNT_KEY, "count")
            if type(module).set_extra_state is not Module.set_extra_state:
                entries[prefix + EXTRA_STATE_KEY] = (module, EXTRA_STATE_KEY, "extra")
        return entries

    @staticmethod
    def _loadable_values(entries, state_dict, problems):
        """key -> the value to load for every entry state_dict has (arrays as arrays);
        what does not fit (type, shape, a count that is not an integer) goes to
        problems."""
        values = OrderedDict()
        for key, (module, name, kind) in entries.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            if kind == "extra":
                values[key] = value
                continue
            if kind == "count":
                values[key] = _loadable_count(key, value, problems)
                continue
            target = getattr(module, name)
            target = target.data if isinstance(target, Parameter) else target
            array = _as_loadable(value)
            if array is not None and len(target.shape) == 0 and tuple(array.shape) == (1,):
                array = array.reshape(())  # PyTorch 0.3's one-element arrays load (as there)
            if array is None:
                problems.append(f"{key!r}: expected a numpy.ndarray, got "
                                f"{type(value).__name__}")
            elif tuple(array.shape) != tuple(target.shape):
                problems.append(f"{key!r}: the model has shape {tuple(target.shape)}, the "
                                f"state dict has {tuple(array.shape)} (size mismatch)")
            elif np.dtype(array.dtype).kind not in "fiub":
                problems.append(f"{key!r}: expected real numbers, got dtype {array.dtype}")
            values[key] = array
        return values

    @staticmethod
    def _load_array(module, name, array, assign, given=None):
        """Write array into the parameter or buffer name of module: a cast copy, or
        (assign) the array itself, put on the module's device (a copy there where it
        lives elsewhere), in a new Parameter; a Parameter given for a parameter (a
        keep_vars state dict) becomes the module's, its requires_grad the one it replaces
        (PyTorch's assign: the two modules then share that Parameter). On the GPU as on
        the host: assign copied into the old parameters there, so an optimizer built
        before kept training a GPU model and stopped training a host one."""
        current = getattr(module, name)
        is_param = isinstance(current, Parameter)
        target = current.data if is_param else current
        if not assign:
            _device.namespace_of(target).copy_into(target, array)
            return
        if (is_param and isinstance(given, Parameter) and given.data is array
                and np.dtype(array.dtype) in FLOAT_DTYPES):
            given.requires_grad = current.requires_grad
            setattr(module, name, given)   # (to the module's device, as a Parameter goes)
            return
        if np.dtype(array.dtype) not in FLOAT_DTYPES:
            array = np.asarray(_device.to_host(array), dtype=target.dtype)
        ns = _device.namespace(module._device)
        array = ns.put(array if _device.is_device_array(array) else _device.Host.put(array))
        if is_param:
            new = Parameter.__new__(Parameter)
            new.data, new.grad = array, ns.zeros(tuple(array.shape), array.dtype)
            new._zero_grad_lazily()  # a new parameter: no backward made its gradient yet
            new.requires_grad = current.requires_grad
            setattr(module, name, new)
        else:
            setattr(module, name, array)

    # ------------------------------------------------------------------ dtypes
    def to_dtype(self, dtype):
        """Convert every parameter (data and grad) and floating-point buffer to dtype, in
        place; self. Integer and bool buffers (indices, masks, counters) keep their dtype,
        as PyTorch's ``.float()``, ``.double()`` and ``.to(dtype)`` keep them (``.type``
        keeps them here too, where PyTorch's would convert them)."""
        if not _is_dtype_like(dtype) or _as_dtype(dtype) not in FLOAT_DTYPES:
            got = _as_dtype(dtype) if _is_dtype_like(dtype) else repr(dtype)
            raise DtypeError(f"{type(self).__name__}.to_dtype: expected float32 or float64, "
                             f"got {got}")
        dtype = _as_dtype(dtype)
        # the modules whose arrays change dtype (and those holding them) refuse the
        # backward of a forward before (a conversion to the dtype they have changes
        # nothing: that backward still runs, as PyTorch's)
        changed = {id(m) for m in self.modules()
                   if any(p is not None and p.data.dtype != dtype
                          for p in m._parameters.values())
                   or any(b is not None and np.dtype(b.dtype).kind == "f" and b.dtype != dtype
                          for b in m._buffers.values())}
        if changed and self._device != "cpu":  # convert on the host, then move back
            device = self._device
            self.to("cpu").to_dtype(dtype).to(device)
            stale = _Stale(f"it was converted to {dtype}")   # (not the moves' reason)
            for module in self.modules():
                for name in ("_out_meta", "_ctx", "_sub_records"):
                    if type(module.__dict__.get(name)) is _Stale:
                        object.__setattr__(module, name, stale)
            return self
        for module in self.modules():
            if "_lazy" in module.__dict__:  # its parameters, once made, take this dtype
                module._lazy_dtype = dtype
            if id(module) not in changed:
                continue
            for param in module._parameters.values():
                if param is None:
                    continue
                param.data = _device.c_contiguous(param.data, dtype=dtype)
                if param._grad is not None:
                    param._replace_grad(_device.c_contiguous(param._grad, dtype=dtype))
            for name, buf in list(module._buffers.items()):
                if buf is not None and np.dtype(buf.dtype).kind == "f":
                    setattr(module, name, _device.c_contiguous(buf, dtype=dtype))
        _mark_stale(_with_ancestors(self, changed), f"it was converted to {dtype}")
        return self

    def type(self, dst_type):
        """Convert every parameter and buffer to dst_type, in place; self (PyTorch's
        ``Module.type``). dst_type: float32 or float64 as a NumPy dtype or its name, or
        PyTorch's names ('torch.FloatTensor', 'torch.float64', ...). float16 and bfloat16
        are TypeErrors: fastnn's kernels run float32 and float64 only."""
        where = f"{type(self).__name__}.type"
        name = dst_type if isinstance(dst_type, str) else str(dst_type)
        if name in _HALF_NAMES or (_is_dtype_like(dst_type)
                                    and _as_dtype(dst_type) == np.float16):
            label = (name if _is_torch_dtype(dst_type) or not _is_dtype_like(dst_type)
                     else np.dtype(dst_type).name)
            raise DtypeError(f"{where}: {label} is not supported: fastnn runs float32 and "
                             f"float64 only (use .float() or .double())")
        if name in _TORCH_FLOAT_NAMES:
            return self.to_dtype(_TORCH_FLOAT_NAMES[name])
        if not _is_dtype_like(dst_type) or _as_dtype(dst_type) not in FLOAT_DTYPES:
            got = _as_dtype(dst_type) if _is_dtype_like(dst_type) else repr(dst_type)
            raise DtypeError(f"{where}: expected float32 or float64, got {got}")
        return self.to_dtype(dst_type)

    def half(self):
        """PyTorch's float16 conversion: a TypeError here (fastnn runs float32 and
        float64 only)."""
        return self.type("float16")

    def bfloat16(self):
        """PyTorch's bfloat16 conversion: a TypeError here, as ``half``."""
        return self.type("bfloat16")

    def share_memory(self):
        """PyTorch's ``share_memory``: nothing to do for NumPy arrays; self."""
        return self

    def _get_name(self):
        """The class name, as repr shows it (PyTorch's)."""
        return type(self).__name__

    def float(self):
        """Convert parameters and buffers to float32 (in place); returns self."""
        return self.to_dtype(np.float32)

    def double(self):
        """Convert parameters and buffers to float64 (in place); returns self."""
        return self.to_dtype(np.float64)

    # ------------------------------------------------------ forward / backward
    def forward(self, input):
        """Output of the layer for input x (a fresh array, the caller's to keep); the
        argument's name is PyTorch's (``model(input=x)``).

        On a module moved to 'cuda', a NumPy x gives a NumPy output and a device array x
        a device array output."""
        x = input
        if (type(x) is not np.ndarray or (x.dtype is not _FLOAT32 and x.dtype is not _FLOAT64)
                or self.takes_indices):   # (dtypes by identity: 'in FLOAT_DTYPES' costs ~1 us)
            self._check_input(x)
        self.infer_shape(x.shape, x.dtype)
        x, caller = self._arrive("input", x)
        y = caller.put(self._run_forward(x, False))
        self._count_forward()
        return y

    def _count_forward(self):
        """Count a forward kept for backward since this module's last backward: a layer
        called twice in one forward pass (a custom module's ``self.relu`` used twice)
        keeps only its last call, and ``_count_backward`` refuses the backward that
        would read it for the earlier one."""
        d = self.__dict__
        if self._out_meta is NO_GRAD:
            return
        if d.get("_backwards_since"):   # a new forward pass
            d["_forwards_since"] = d["_backwards_since"] = 0
        d["_forwards_since"] = d.get("_forwards_since", 0) + 1

    def _count_backward(self):
        """A backward of this module: the second one after two forwards or more is the
        reused layer's (PyTorch's graph keeps each call; this layer kept its last), so it
        raises before anything changes. One forward's backward taken again (PyTorch's
        retain_graph) passes."""
        d = self.__dict__
        forwards, backwards = d.get("_forwards_since", 0), d.get("_backwards_since", 0) + 1
        if forwards >= 2 and backwards >= 2:
            raise RuntimeError(
                f"{self._where()}: backward called {backwards} times after {forwards} "
                f"forward calls: this layer keeps only its last forward, so this backward "
                f"would use that call's saved values for an earlier call. Use one instance "
                f"per use in forward (self.act1 = nn.ReLU(), self.act2 = nn.ReLU(), not "
                f"one self.act called twice)")
        d["_backwards_since"] = backwards

    def _check_input(self, x):
        """A TypeError naming the layer unless x is an array it takes (float, or integer
        indices for an Embedding)."""
        if self.takes_indices:  # an Embedding (or a Sequential starting with one)
            if not _device.is_array(x) or x.dtype.kind not in "iu":
                got = x.dtype if _device.is_array(x) else type(x).__name__
                raise DtypeError(f"{self._where()}: expected integer indices as a "
                                 f"numpy.ndarray, got {got}")
        elif type(x) is not np.ndarray or x.dtype not in FLOAT_DTYPES:
            check_float_array(self._where(), "input", x, device_ok=True)

    def __call__(self, *args, **kwargs):
        if (self._hooked and (self._forward_pre_hooks or self._forward_hooks)
                and not self.__dict__.get("_in_call_hooks")):
            return self._call_impl(self.forward, args, kwargs)
        return self.forward(*args, **kwargs)

    @_counts_as_backward
    def backward(self, grad_out, need_grad_in=True):
        """Accumulate parameter gradients for grad_out (the gradient of the loss w.r.t.
        the last forward's output, same shape and dtype) and return the gradient w.r.t.
        the input (a fresh array), or None when need_grad_in is False. Runs this module's
        backward hooks around it."""
        if isinstance(grad_out, np.generic):  # (arithmetic on a 0-d output gives one)
            grad_out = np.asarray(grad_out)
        if (self._hooked and (self._backward_pre_hooks or self._backward_hooks)
                and not self.__dict__.get("_in_backward_hooks")):
            self._check_grad_out(grad_out)  # before the hooks see it
            return self._backward_hooked(
                (grad_out,), lambda grad: Module.backward(self, grad, need_grad_in),
                need_grad_in)
        meta = self._out_meta
        if (type(meta) is not tuple or type(grad_out) is not np.ndarray
                or grad_out.dtype is not meta[1] or grad_out.shape != meta[0]):
            self._check_grad_out(grad_out)
        self._count_backward()
        grad_out, caller = self._arrive("grad_out", grad_out)
        if Module._none_grads_seen:
            self._fill_no_grads()
        grad_in = self._backward(grad_out, False, need_grad_in)
        return None if grad_in is None else caller.put(grad_in)

    def _fill_no_grads(self):
        """Zeros, pending as after zero_grad(), for each parameter of this module whose
        .grad is None (``p.grad = None``, PyTorch's way of clearing it): the backward about
        to run writes a fresh gradient there, as PyTorch's makes one (layers read and
        write .grad arrays); one it does not reach stays skipped by optimizers. A frozen
        parameter's None stays None: no backward computes or touches its gradient."""
        for p in self.parameters():
            if (type(p) is Parameter and p._grad is None and p.requires_grad
                    and _device.is_array(p._data)):
                data = p._data
                object.__setattr__(p, "_grad", _device.namespace_of(data).zeros(
                    data.shape, data.dtype))
                p._zero_grad_lazily()

    def _check_grad_out(self, grad_out):
        """Raise unless grad_out fits the last forward's output (shape and dtype)."""
        if self._out_meta is None:
            cls = type(self)
            if (cls.forward is not Module.forward and cls.backward is Module.backward
                    and cls._backward is Module._backward):
                # a PyTorch-style subclass: its forward ran, but it has no backward
                raise NotImplementedError(
                    f"{cls.__name__} defines forward() but not backward(grad_out): fastnn "
                    f"has no autograd, so a Module subclass defines backward, calling its "
                    f"layers' backward in the reverse order of forward and returning the "
                    f"gradient w.r.t. its input")
            if not _defined_in_fastnn(cls.forward) and _defined_in_fastnn(cls.backward):
                # (a subclass of a built-in layer whose own forward never ran the
                # built-in one: F.conv2d of a standardised weight, say)
                raise RuntimeError(f"{self._where()}: backward called before forward: "
                                   f"{cls.__name__}.forward did not run the built-in "
                                   f"forward whose backward it inherits; define "
                                   f"backward(grad_out) for it")
            raise RuntimeError(f"{self._where()}: backward called before forward")
        if type(self._out_meta) is _Stale:
            raise self._out_meta.error(self)
        if self._out_meta is NO_GRAD:
            raise no_grad_backward_error(self)
        if self._out_meta is FUSED:
            raise RuntimeError(f"{self._where()}: its last forward ran fused into the "
                               f"preceding Linear inside a Sequential; call the "
                               f"Sequential's backward")
        shape, dtype = self._out_meta
        if type(grad_out) is not np.ndarray or grad_out.dtype != dtype:
            if shape != () and (isinstance(grad_out, (numbers.Number, np.generic))
                                or getattr(grad_out, "shape", None) == ()):
                raise self._loss_given_error(grad_out, shape)   # (before its dtype or type)
            check_float_array(self._where(), "grad_out", grad_out, dtype=dtype, device_ok=True)
        if grad_out.shape != shape:
            if grad_out.shape == ():
                raise self._loss_given_error(grad_out, shape)
            # (PyTorch's backward: RuntimeError "Mismatch in shape: grad_output[0] ...")
            raise RuntimeValueError(f"{self._where()}: expected grad_out of shape {shape} (the "
                                    f"shape of the last forward output), got {grad_out.shape}")

    def _loss_given_error(self, grad_out, shape):
        """The error for a single number given as grad_out where the output has shape:
        the loss itself, given by mistake."""
        number = grad_out.item() if isinstance(grad_out, (np.ndarray, np.generic)) else grad_out
        return RuntimeValueError(
            f"{self._where()}: expected grad_out of shape {shape} (the shape of the last "
            f"forward output), got the single number {number!r}: backward takes the "
            f"gradient of the loss w.r.t. the output, model.backward(loss_fn.backward()), "
            f"not the loss")

    def _arrive(self, name, x):
        """(x on this module's device, C-contiguous; the caller's array namespace).

        A host array is copied to a module on the GPU (and its result copied back); a
        device array given to a module on the host is an error, as in PyTorch."""
        if type(x) is np.ndarray and self._device == "cpu":   # (the usual call: quick)
            flags = x.flags
            if flags.c_contiguous and flags.aligned:
                return x, _device.Host
        caller = _device.namespace_of(x)
        if caller.name == self._device:
            return as_contiguous(x), caller   # (a strided device array copied on the device)
        if self._device == "cpu":
            raise ValueError(f"{self._where()}: {name} is a cuda device array but the module "
                             f"is on the cpu; call .to('cuda') on the model or pass a NumPy "
                             f"array")
        return _device.namespace(self._device).put(x), caller

    def _run_forward(self, x, buffered):
        y = self._forward(x, buffered)
        forget_forward(self)
        if type(y) is tuple:   # (an RNN's (output, h_n) where one array is passed on)
            raise TypeError(
                f"{self._where()} returns {len(y)} outputs (a tuple), and a Sequential "
                f"passes one array from layer to layer: call it in a Module of your own "
                f"that passes its output on (PyTorch's Sequential fails at the next "
                f"layer)")
        object.__setattr__(self, "_out_meta", kept_for_backward((y.shape, y.dtype)))
        return y

    def infer_shape(self, shape, dtype):
        """Output shape for an input of this shape and dtype; raises on a bad input.

        Module's own (which elementwise layers keep) accepts any input and keeps its
        shape; for a user module that overrides forward() it returns None (unknown until
        run). Layers that change the shape override it with their own rule.
        """
        return None if self._opaque else shape

    @property
    def _opaque(self):
        """A user module whose forward() is its own: its output shape is known only by
        running it (and what it returns, or its own backward returns, is checked as it
        arrives)."""
        cls = type(self)
        return (cls._user_forward or cls._user_backward
                or (cls.forward is not Module.forward and cls.infer_shape is Module.infer_shape))

    @property
    def _runs_user_code(self):
        """True when this module's forward or backward runs code of the user's (a method of
        its own, a hook), here or in a sub-module: code that may raise after layers before
        it ran (Sequential then puts their running statistics, or gradients, back)."""
        if type(self)._user_code or (self._hooked and (
                self._forward_pre_hooks or self._forward_hooks or self._backward_pre_hooks
                or self._backward_hooks)):
            return True
        return any(m is not None and m._runs_user_code for m in self._modules.values())

    def _forward(self, x, buffered):
        # A user module that overrides forward() runs through it (always fresh output).
        if type(self).forward is Module.forward:
            raise NotImplementedError(f"{type(self).__name__} defines neither forward() "
                                      f"nor _forward()")
        return self.forward(x)

    def _backward(self, grad_out, buffered, need_grad_in):
        if type(self).backward is Module.backward:
            raise NotImplementedError(f"{type(self).__name__} defines neither backward() "
                                      f"nor _backward()")
        return self.backward(grad_out)

    # ----------------------------------------------------------------- helpers
    @property
    def passthrough(self):
        """True when forward returns its input (or a view of it) unchanged."""
        return False

    #: True for a layer whose input is integer indices (Embedding), not floats
    takes_indices = False

    def output_dtype(self, dtype):
        """The dtype of the output for an input of dtype (Embedding: its weight's)."""
        return dtype

    def _buffer(self, key, shape, dtype):
        """A layer-owned array of this shape and dtype, reused while they stay the same.

        One per calling thread: a model shared by threads (an inference pool calling
        one model, as PyTorch allows) must not have one thread's forward write the
        intermediate array another thread's next layer is reading. A thread's buffers
        are dropped when it ends (and, as a fallback, a new buffer drops those of threads
        that have ended). Under no_grad a Sequential may lend a layer its output ("y")
        from two arrays it alternates (``output_slots``)."""
        if key == "y":
            lent = lent_output(self, shape, dtype)
            if lent is not None:
                return lent
        slot = (key, threading.get_ident())
        buf = self._scratch.get(slot)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = _device.namespace(self._device).empty(shape, dtype)
            if self._scratch:
                _drop_ended_threads(self._scratch)
            self._scratch[slot] = buf
            _note_thread_buffer(self)
        return buf

    def _backward_buffer(self, key, shape, dtype):
        """``_buffer(key, shape, dtype)`` for an array kept only for the backward (a max
        pool's indices); under no_grad, where nothing is kept, an array a Sequential
        lends for this forward (``output_slots``), or None (the kernel makes a fresh one,
        freed with the forward pass, as ``forget_forward`` frees the saved inputs)."""
        if _grad_mode._MODE.enabled:
            return self._buffer(key, shape, dtype)
        return lent_scratch(self, key, shape, dtype)

    def _kept_buffer(self, key):
        """The calling thread's ``_buffer(key, ...)`` array as it stands, or None."""
        return self._scratch.get((key, threading.get_ident()))

    def _check_dtype(self, dtype, param_dtype):
        """A DtypeError unless an input of dtype suits parameters of param_dtype (None: a
        layer without parameters takes either float type)."""
        if param_dtype is not None and dtype != param_dtype:
            raise DtypeError(f"{self._where()}: input dtype {dtype} does not match the layer's "
                             f"parameters ({param_dtype}); convert the input or call "
                             f".float()/.double() on the model")

    def _check_params(self, entries):
        """A ValueError / TypeError naming the layer unless each (name, Parameter or
        array, shape) of entries (None skipped) has that shape, a Parameter's .grad (when
        not None) too, and all share one dtype: arrays a user rebinds (``p.data = W``, a
        transposed or float64 W) are checked before the kernels read or write them."""
        dtype = None
        for _, value, shape in entries:  # the usual case, host arrays that fit: quick
            if value is None:
                continue
            if type(value) is Parameter:
                data, grad = value._data, value._grad
                if (type(data) in _device.ARRAY_TYPES and data.shape == shape
                        and (dtype is None or data.dtype == dtype)
                        and (grad is None or (type(grad) in _device.ARRAY_TYPES
                                              and grad.shape == shape
                                              and grad.dtype == data.dtype))):
                    dtype = data.dtype
                    continue
            elif (type(value) in _device.ARRAY_TYPES and value.shape == shape
                  and (dtype is None or value.dtype == dtype)):
                dtype = value.dtype
                continue
            self._explain_params(entries)  # raises, unless device arrays that fit
            return

    def _explain_params(self, entries):
        dtype = first = None
        for name, value, shape in entries:
            if value is None:
                continue
            pairs = (((name, value.data), (name + ".grad", value.grad))
                     if isinstance(value, Parameter) else ((name, value),))
            for label, a in pairs:
                if a is None:
                    continue
                if not _device.is_array(a):
                    raise TypeError(f"{self._where()}: expected {label} to be a "
                                    f"numpy.ndarray, got {type(a).__name__}")
                if tuple(a.shape) != shape:
                    raise ValueError(f"{self._where()}: expected {label} of shape {shape}, "
                                     f"got {tuple(a.shape)}")
                if dtype is None:
                    dtype, first = a.dtype, label
                elif a.dtype != dtype:
                    raise DtypeError(f"{self._where()}: {label} has dtype {a.dtype} but "
                                     f"{first} has {dtype}; a layer's parameters and buffers "
                                     f"must share one dtype (call .float()/.double())")

    def _float(self, name, none=False):
        """The hyper-parameter attribute ``name`` as a float, read at each call (a user
        may set it after construction, as PyTorch's modules read theirs at each forward):
        no number (a string, even '0.5') is the constructor's TypeError naming the layer
        and attribute (validation.float_of). none=True: None stays None."""
        value = getattr(self, name)
        if none and value is None:
            return None
        return float_of(type(self).__name__, name, value)

    def _where(self):
        """How error messages name this layer: its one-line repr, or for a container
        with nothing of its own to show its children's class names (Sequential(Linear,
        ReLU, ...), not Sequential(), which reads as an empty one)."""
        extra = self.extra_repr()
        if not extra and self._modules:
            names = [type(child).__name__ for child in self._modules.values()
                     if child is not None]
            extra = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        return f"{type(self).__name__}({extra})"

    def extra_repr(self):
        """The text inside the parentheses of repr (layers override it)."""
        return ""

    def __repr__(self):
        # PyTorch's layout: one extra_repr line and no children inline, else one line each
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): " + repr(child).replace("\n", "\n  ")
                       for name, child in self._modules.items()]   # (a None slot too)
        if len(extra_lines) == 1 and not child_lines:
            return f"{type(self).__name__}({extra})"
        if not extra_lines and not child_lines:
            return f"{type(self).__name__}()"
        return (f"{type(self).__name__}(\n  " + "\n  ".join(extra_lines + child_lines)
                + "\n)")


#: PyTorch's names of the two float types (str of its dtypes, and its tensor type names)
_TORCH_FLOAT_NAMES = {"torch.float32": np.dtype(np.float32), "torch.float": np.dtype(np.float32),
                      "torch.FloatTensor": np.dtype(np.float32),
                      "torch.float64": np.dtype(np.float64), "torch.double": np.dtype(np.float64),
                      "torch.DoubleTensor": np.dtype(np.float64)}
_HALF_NAMES = {"float16", "half", "bfloat16", "torch.float16", "torch.half", "torch.bfloat16",
               "torch.HalfTensor", "torch.BFloat16Tensor", "torch.cuda.HalfTensor",
               "torch.cuda.BFloat16Tensor"}


def _is_dtype_like(value):
    """True for what np.dtype accepts (np.float64, 'float32', a dtype) and PyTorch's two
    float dtypes (torch.float64: ``model.to(torch.float64)`` in ported code), except
    device names and device objects."""
    if value is None or (isinstance(value, str)
                         and (value in _device.DEVICES or value.startswith("cuda"))):
        return False
    if _is_torch_dtype(value):
        return True
    try:
        np.dtype(value)
    except TypeError:
        return False
    return True


def _is_torch_dtype(value):
    """Whether value is a PyTorch dtype object (known by its type, without importing
    torch)."""
    kind = type(value)
    return kind.__module__ == "torch" and kind.__name__ == "dtype"


def _layer_dtype(module, value):
    """A layer constructor's dtype= given as PyTorch's dtype (ported code's
    ``nn.Linear(3, 4, dtype=torch.float64)``): NumPy's float dtype, or a DtypeError naming
    it (fastnn's parameters are float32 or float64)."""
    dtype = _as_dtype(value)
    if dtype not in FLOAT_DTYPES:
        raise DtypeError(f"{type(module).__name__}: expected dtype float32 or float64, got "
                         f"{value}")
    return dtype.type


def _as_dtype(value):
    """np.dtype(value), PyTorch's float dtypes taken as NumPy's; any other PyTorch dtype
    as itself (no float dtype of fastnn's: the caller's error names it)."""
    if _is_torch_dtype(value):
        return _TORCH_FLOAT_NAMES.get(str(value), value)
    return np.dtype(value)


def _loadable_count(key, value, problems):
    """A norm layer's num_batches_tracked from a state dict value (a number, or an array
    of one element: a 0-d one, or PyTorch 0.3's shape (1,)) as an int. A whole float
    (a state dict cast to float as a whole) loads, as PyTorch copies it into its int64
    buffer; a fractional or non-finite one, or anything else, goes to problems (None
    returned), where PyTorch would truncate it."""
    array = _as_loadable(value)
    if array is None and isinstance(value, numbers.Real):
        array = np.asarray(value)
    if array is not None and tuple(array.shape) in ((), (1,)) \
            and np.dtype(array.dtype).kind in "iufb":
        count = _device.to_host(array).reshape(())
        if np.isfinite(count) and count == np.trunc(count):
            return int(count)
    problems.append(f"{key!r}: expected an integer count, got {value!r}")
    return None


def _as_loadable(value):
    """value as an array load_state_dict can copy from (a host or device array; a
    Parameter's data; what has ``__array__``, such as a CPU tensor), or None."""
    if isinstance(value, Parameter):
        return value.data
    if _device.is_array(value):
        return value
    if hasattr(value, "__array__") and not isinstance(value, (str, bytes)):
        # a PyTorch tensor as torch's load_state_dict takes it: a Parameter (one that
        # requires grad) detached, a GPU one copied to the host, bfloat16 (which NumPy
        # lacks) widened to float32
        for method in ("detach", "cpu"):
            if callable(getattr(value, method, None)):
                value = getattr(value, method)()
        if str(getattr(value, "dtype", "")) == "torch.bfloat16":
            value = value.float()
        try:
            return np.asarray(value)
        except Exception:  # not an array as it is
            return None
    return None
