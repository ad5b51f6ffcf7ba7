"""Flat buffers: the parameters of one group and one dtype live in one contiguous array.

An optimizer re-homes each parameter's ``.data`` and ``.grad`` into a slot of a flat
buffer (values copied, then ``p.data`` / ``p.grad`` rebound to reshaped views of it),
so one kernel call updates every parameter of the bucket in one parallel pass. The
optimizer state (momentum buffer, Adam moments) is one flat buffer per name too, and
per-parameter views of it serve ``state_dict``.

A user may rebind ``p.data`` or ``p.grad`` after that; ``FlatBucket.inspect`` notices it
(one identity check per array) and ``FlatBucket.rehome`` copies the new values back in.

Parameters on the GPU (``Module.to("cuda")``) get flat buffers on the GPU: the bucket's
array namespace (``fastnn.device``) allocates, zeroes and copies, and the cuda backend's
update kernels run on them, so optimizer state never leaves the device. State dicts are
NumPy copies either way.
"""
import numpy as np

from .. import device as _device
from ..errors import DtypeError
from ..nn.module import Parameter, _picklable, _unpickled


def _rebind_grad(p, view):
    """p.grad = view, the same values moved: a Parameter's own rebinding, so a frozen
    one's noted gradient stands (a parameter-like object's plain assignment)."""
    rebind = getattr(p, "_set_grad", None)
    if rebind is None:
        p.grad = view
    else:
        rebind(view)


class FlatBucket:
    """Parameters of one dtype and device whose data, grad and optimizer state are flat
    buffers on that device.

    params: list of Parameters (``.data`` float32/float64 arrays of this dtype, all on
    one device; ``.grad`` None or an array of the same shape, dtype and device).
    Attributes: data, grad: (size,) flat buffers; state: name -> (size,) buffer;
    steps: per-parameter count of updates applied (int list); scalars: name -> a float
    per parameter (state that is one number a parameter, as NAdam's mu_product).
    """

    def __init__(self, params, dtype, indices=None, scalars=None):
        self.params = list(params)
        # each parameter's index in the optimizer (for error messages and state dicts)
        self.indices = list(indices) if indices is not None else list(range(len(self.params)))
        self.dtype = np.dtype(dtype)
        self.ns = _device.namespace_of(self.params[0].data) if self.params else _device.Host
        self.shapes = [tuple(p.data.shape) for p in self.params]
        sizes = [int(np.prod(shape, dtype=np.int64)) for shape in self.shapes]
        self.offsets = [0]
        for size in sizes:
            self.offsets.append(self.offsets[-1] + size)
        self.size = self.offsets[-1]
        self.data = self.ns.empty(self.size, self.dtype)
        self.grad = self.ns.zeros(self.size, self.dtype)
        self.state = {}
        # scalars: {name: starting value} of the optimizer's per-parameter numbers
        self._scalar_starts = dict(scalars or {})
        self.scalars = {name: [float(v)] * len(self.params)
                        for name, v in self._scalar_starts.items()}
        self.steps = [0] * len(self.params)
        self.data_views = [self.view(self.data, i) for i in range(len(self.params))]
        self.grad_views = [self.view(self.grad, i) for i in range(len(self.params))]
        for i in range(len(self.params)):
            self._home_data(i)
            self._home_grad(i)

    def __len__(self):
        return len(self.params)

    def __getstate__(self):
        # (deepcopy, pickle) the views are made anew by __setstate__; device buffers
        # travel as host copies (numba's device arrays can be neither copied nor pickled)
        return {name: value if name == "params" else _picklable(value)
                for name, value in self.__dict__.items()
                if name not in ("data_views", "grad_views")}

    def __setstate__(self, state):
        # A copy (deepcopy, pickle) copies each view apart from the flat buffer it was
        # a view of: made anew here, the views are no longer the parameters' arrays, so
        # inspect finds the parameters away from home and rehome copies them back in
        # (the copied optimizer then updates the copied parameters, as in PyTorch).
        self.__dict__.update(_unpickled(state))
        self.data_views = [self.view(self.data, i) for i in range(len(self.params))]
        self.grad_views = [self.view(self.grad, i) for i in range(len(self.params))]

    def view(self, flat, i):
        """Parameter i's slot of a flat buffer, shaped like the parameter (a view)."""
        return flat[self.offsets[i]:self.offsets[i + 1]].reshape(self.shapes[i])

    def buffer(self, name):
        """The flat state buffer ``name``, allocated as zeros on first use."""
        buf = self.state.get(name)
        if buf is None:
            buf = self.state[name] = self.ns.zeros(self.size, self.dtype)
        return buf

    # ------------------------------------------------------------------ re-homing
    def _home_data(self, i):
        p, view = self.params[i], self.data_views[i]
        if p.data is not view:
            self.ns.copy_into(view, p.data)
            p.data = view

    def _home_grad(self, i):
        p, view = self.params[i], self.grad_views[i]
        if grad_not_written(p):
            # skipped at step time; keep the view clean, and pending zeros pending
            pending = getattr(p, "_zero_pending", False) and p._grad is not None
            self.ns.fill_zero(view)
            if pending and p._grad is not view:
                _rebind_grad(p, view)
                p._zero_grad_lazily()
        elif p.grad is not view:
            self.ns.copy_into(view, p.grad)
            _rebind_grad(p, view)

    def inspect(self, where):
        """Compare every parameter with its flat home, changing nothing.

        Returns (intact, regroup, missing_grad): intact when every .data and .grad is its
        view; regroup when a parameter now holds another dtype or lives on another device
        (the group's buckets must be rebuilt); missing_grad when some parameter has no
        gradient (None, or zeros pending from zero_grad that no backward touched:
        ``Parameter._no_grad_yet``) or is frozen (requires_grad False): those parameters
        are skipped.
        Raises ValueError when a parameter changed shape, TypeError on a bad rebinding.
        """
        intact, regroup, missing_grad = True, False, False
        data_views, grad_views = self.data_views, self.grad_views
        for i, p in enumerate(self.params):
            if (type(p) is Parameter and p._zero_pending is False and p._requires_grad
                    and p._data is data_views[i] and p._grad is grad_views[i]):
                continue   # (the usual parameter: at home, a gradient written, trained)
            data, grad = p.data, raw_grad(p)
            if has_no_grad(p):
                missing_grad = True  # frozen or no gradient: skipped
            if data is self.data_views[i] and grad is self.grad_views[i]:
                continue
            intact = False
            if _device.is_array(data) and tuple(data.shape) != self.shapes[i]:
                raise ValueError(
                    f"{where}: parameter {self.indices[i]} changed shape from {self.shapes[i]} to "
                    f"{tuple(data.shape)} after the optimizer was built; build a new optimizer")
            check_parameter(where, p, self.indices[i])
            # moved (model.to('cuda')) or converted (model.double()) since the buckets
            # were built: the optimizer rebuilds them there, its state going along
            if _device.device_of(data) != self.ns.name or data.dtype != self.dtype:
                regroup = True
        return intact, regroup, missing_grad

    def rehome(self, where="the optimizer"):
        """Copy rebound .data / .grad arrays back into the flat buffers and rebind them
        (where: the optimizer's name, for errors). A .data rebound to another
        parameter's (``c.weight.data = a.weight.data`` after the optimizer was built, a
        view of a's slot) is a ValueError before anything is copied: copying it into
        c's own slot would untie them."""
        check_untied(where, self.params, self.indices)
        for i in range(len(self.params)):
            self._home_data(i)
            self._home_grad(i)

    # ---------------------------------------------------------------- state views
    def param_state(self, i):
        """Copies of parameter i's state: {name: array of the parameter's shape, or a
        float for a scalar state}."""
        state = {name: _device.host_copy(self.view(buf, i)) for name, buf in self.state.items()}
        state.update((name, values[i]) for name, values in self.scalars.items())
        return state

    def set_param_state(self, i, step, arrays, scalars=None):
        """Set parameter i's step count, state slots (absent names are zeroed) and scalar
        states ({name: float}; absent ones back to their first value)."""
        self.steps[i] = int(step)
        for name, value in arrays.items():
            self.ns.copy_into(self.view(self.buffer(name), i), value)
        for name, buf in self.state.items():
            if name not in arrays:
                self.ns.fill_zero(self.view(buf, i))
        scalars = scalars or {}
        for name, values in self.scalars.items():
            values[i] = float(scalars.get(name, self._scalar_starts[name]))


def raw_grad(p):
    """p's gradient array as it is: a Parameter's ._grad, since reading .grad writes the
    zeros zero_grad left pending, and the step would then update a parameter it should
    skip; .grad of a Parameter-like object."""
    return p._grad if isinstance(p, Parameter) else p.grad


def grad_not_written(p):
    """True where no backward has written p's gradient: a Parameter's ``_no_grad_yet``
    (None, or zeros pending from zero_grad that no backward touched), a Parameter-like
    object's .grad None."""
    return p._no_grad_yet() if isinstance(p, Parameter) else p.grad is None


def has_no_grad(p):
    """True where PyTorch's .grad would be None, which optimizers skip (a custom one's
    ``if p.grad is None: continue`` is ``if optim.has_no_grad(p): continue``): no
    backward wrote it (``grad_not_written``), or p is frozen (requires_grad False:
    PyTorch never computes its gradient, and neither do the backwards of fastnn's
    layers: Linear, Conv1d/2d/3d, ConvTranspose1d/2d/3d, BatchNorm1d/2d/3d, LayerNorm,
    GroupNorm, InstanceNorm1d/2d/3d, RMSNorm, PReLU, Embedding, EmbeddingBag,
    Bilinear, AdaptiveLogSoftmaxWithLoss, RNN, LSTM, GRU and their cells,
    MultiheadAttention, the Transformer layers and LinearCrossEntropyLoss leave it
    alone; a custom layer's backward may still fill it)."""
    return grad_not_written(p) or not getattr(p, "requires_grad", True)


def check_parameter(where, p, index):
    """A Parameter-like object: float32/float64 .data (a NumPy or device array), .grad
    None or an array of the same shape, dtype and device."""
    data = getattr(p, "data", None)
    if not _device.is_array(data) or not (isinstance(p, Parameter) or hasattr(p, "grad")):
        raise TypeError(f"{where}: expected Parameters (objects with .data and .grad arrays), "
                        f"got {type(p).__name__} at position {index}")
    if data.dtype not in (np.float32, np.float64):
        raise DtypeError(f"{where}: parameter {index} has dtype {data.dtype}; "
                         f"expected float32 or float64")
    grad = raw_grad(p)
    if grad is not None:
        if not _device.is_array(grad):
            raise TypeError(f"{where}: parameter {index} has a .grad of type "
                            f"{type(grad).__name__}; expected a numpy.ndarray or None")
        if _device.device_of(grad) != _device.device_of(data):
            raise ValueError(f"{where}: parameter {index} has .data on "
                             f"{_device.device_of(data)} but .grad on "
                             f"{_device.device_of(grad)}; they must be on one device")
        if grad.shape != data.shape or grad.dtype != data.dtype:
            raise ValueError(f"{where}: parameter {index} has .grad {grad.shape} {grad.dtype} "
                             f"but .data {data.shape} {data.dtype}; they must match")


try:
    from numpy.lib.array_utils import byte_bounds as _byte_bounds   # NumPy 2
except ImportError:   # pragma: no cover - NumPy 1
    _byte_bounds = np.byte_bounds


def check_untied(where, params, indices):
    """A ValueError naming the first two of params (host arrays; numbered by indices)
    whose .data share memory: the flat buffers would copy each into a slot of its own,
    untying them without a word (PyTorch's optimizers update such tied tensors in place,
    one after the other)."""
    spans = []
    for index, p in zip(indices, params):
        data = getattr(p, "data", None)
        if isinstance(data, np.ndarray) and data.size:
            low, high = _byte_bounds(data)
            spans.append((low, high, index, data))
    spans.sort(key=lambda span: span[0])
    open_spans = []   # the spans seen so far that reach past the current one's start
    for span in spans:
        open_spans = [seen for seen in open_spans if seen[1] > span[0]]
        for seen in open_spans:
            if np.shares_memory(span[3], seen[3]):
                first, second = sorted((seen[2], span[2]))
                raise ValueError(
                    f"{where}: parameters {first} and {second} share the memory of their "
                    f".data (tied through .data, as `b.weight.data = a.weight.data` ties "
                    f"them); fastnn's optimizers update each parameter in a slot of its "
                    f"own, which would silently untie them. Tie the Parameter itself "
                    f"(`b.weight = a.weight`), which trains one set of values, or give "
                    f"each parameter its own array")
        open_spans.append(span)


def build_buckets(params, start=0, scalars=None):
    """Group params by device and dtype (first-seen order) into FlatBuckets.

    start: the optimizer index of params[0] (parameters are numbered across groups);
    scalars: {name: starting value} of per-parameter scalar state (FlatBucket.scalars).
    """
    by_dtype = {}
    for index, p in enumerate(params, start):
        by_dtype.setdefault((_device.device_of(p.data), p.data.dtype), []).append((index, p))
    return [FlatBucket([p for _, p in members], dtype, [i for i, _ in members], scalars)
            for (_, dtype), members in by_dtype.items()]
