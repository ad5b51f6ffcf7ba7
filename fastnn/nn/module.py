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
"""
import collections
from collections import OrderedDict

import numpy as np

from .. import device as _device
from ..validation import FLOAT_DTYPES, as_contiguous, check_float_array


class Parameter:
    """A trainable array and its gradient.

    data: float32/float64 array of any shape; grad: same shape and dtype, zeros at first,
    accumulated into in place by ``backward`` until ``Module.zero_grad()``. An optimizer may
    rebind ``.data``/``.grad`` to views of a flat buffer; layers read them at call time.
    """

    __slots__ = ("data", "grad", "requires_grad")

    def __init__(self, data, requires_grad=True):
        data = np.array(data, copy=True, order="C")
        if data.dtype not in FLOAT_DTYPES:
            raise TypeError(f"Parameter: expected float32 or float64 data, got {data.dtype}")
        self.data = data
        self.grad = np.zeros_like(data)
        #: False freezes the parameter: optimizers leave it (and its state) untouched, as
        #: PyTorch's do; backward still accumulates its .grad (layers do not skip it).
        self.requires_grad = bool(requires_grad)

    def requires_grad_(self, requires_grad=True):
        """Set requires_grad in place; self."""
        self.requires_grad = bool(requires_grad)
        return self

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    def numel(self):
        """The number of elements (PyTorch's ``numel()``)."""
        return self.data.size

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def device(self):
        """'cpu' or 'cuda': where ``data`` lives."""
        return _device.device_of(self.data)

    def zero_grad(self):
        _device.namespace_of(self.grad).fill_zero(self.grad)

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
        where = ", device='cuda'" if self.device == "cuda" else ""
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype}{where})"


#: ``_out_meta`` of an activation whose forward a Sequential ran inside a Linear's kernel.
FUSED = "fused"

LoadResult = collections.namedtuple("LoadResult", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of layers and containers (see the module docstring for the hooks)."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_scratch", {})
        object.__setattr__(self, "_out_meta", None)
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_device", "cpu")

    # ------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if params is None:
            raise RuntimeError(f"{type(self).__name__}: call Module.__init__() before "
                               f"assigning attributes")
        if isinstance(value, Parameter):
            self._modules.pop(name, None)
            self._buffers.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            self._buffers.pop(name, None)
            self._modules[name] = value
        elif name in self._buffers:
            if value is not None and not _device.is_array(value):
                raise TypeError(f"{type(self).__name__}: buffer {name!r} must be a numpy "
                                f"array, a device array or None, got {type(value).__name__}")
            if value is not None and _device.device_of(value) != self._device:
                value = _device.namespace(self._device).put(value)  # to the module's device
            self._buffers[name] = value
        elif name in params or name in self._modules:
            if value is not None:
                raise TypeError(f"{type(self).__name__}: cannot replace {name!r} by a "
                                f"{type(value).__name__}")
            params.pop(name, None)
            self._modules.pop(name, None)
        object.__setattr__(self, name, value)

    def register_buffer(self, name, array):
        """Register a non-trainable array (running statistics) that state_dict includes.

        array: a NumPy array, or None for an absent buffer (skipped by state_dict); it is
        moved to the module's device.
        """
        if array is not None and not _device.is_array(array):
            raise TypeError(f"{type(self).__name__}: buffer {name!r} must be a numpy array "
                            f"or None, got {type(array).__name__}")
        if array is not None:
            array = _device.namespace(self._device).put(array)
        self._buffers[name] = array
        object.__setattr__(self, name, array)

    def register_parameter(self, name, param):
        """Add a Parameter (or None) under name, as ``setattr`` does (PyTorch's API)."""
        self._register("register_parameter", name, param, Parameter, self._parameters)

    def add_module(self, name, module):
        """Add a child module (or None) under name, as ``setattr`` does (PyTorch's API;
        a Sequential's ``append`` is the way to add a layer it runs)."""
        self._register("add_module", name, module, Module, self._modules)

    register_module = add_module

    def _register(self, method, name, value, kind, table):
        if value is not None and not isinstance(value, kind):
            raise TypeError(f"{type(self).__name__}.{method}: expected a {kind.__name__} or "
                            f"None, got {type(value).__name__}")
        self._check_name(method, name)
        if value is None:
            table.pop(name, None)
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, value)

    def _check_name(self, method, name):
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"{type(self).__name__}.{method}: expected a non-empty name "
                           f"without '.', got {name!r}")

    # ---------------------------------------------------------------- traversal
    def named_children(self):
        return list(self._modules.items())

    def children(self):
        return list(self._modules.values())

    def modules(self):
        """This module and every module under it, depth first, each once."""
        return [module for _, module in self._named_modules("")]

    def named_modules(self, prefix=""):
        """(dotted name, module) for this module ('' or prefix) and every module under
        it, depth first, each once (PyTorch's order)."""
        return [(name[:-1] if name.endswith(".") else name, module)
                for name, module in self._named_modules(f"{prefix}." if prefix else "")]

    def requires_grad_(self, requires_grad=True):
        """Freeze (False) or unfreeze every parameter for the optimizers; self."""
        for _, param in self._named_parameters():
            param.requires_grad_(requires_grad)
        return self

    def apply(self, fn):
        """Call fn(module) on every child's modules, then on this one (PyTorch's order,
        e.g. to initialise weights); self."""
        for child in self._modules.values():
            child.apply(fn)
        fn(self)
        return self

    def _named_modules(self, prefix, seen=None):
        """(prefix ending in '.' or '', module) for this module and its descendants."""
        seen = set() if seen is None else seen
        if id(self) in seen:
            return []
        seen.add(id(self))
        found = [(prefix, self)]
        for name, child in self._modules.items():
            found.extend(child._named_modules(f"{prefix}{name}.", seen))
        return found

    def named_parameters(self, prefix=""):
        """(dotted name, Parameter) pairs in registration order, recursing into children;
        a parameter shared by two modules is listed once. A lazy layer that has not seen
        an input yet has none to give: that is an error (run one forward first)."""
        return self._named_parameters(prefix, lazy_ok=False)

    def _named_parameters(self, prefix="", lazy_ok=True):
        out, seen = [], set()
        for mprefix, module in self._named_modules(prefix):
            if not lazy_ok and "_lazy" in module.__dict__:
                raise RuntimeError(f"{type(module).__name__} ({mprefix.rstrip('.') or 'the model'}) "
                                   f"has no parameters until it sees an input: run one "
                                   f"forward (a dry run) before asking for them, e.g. "
                                   f"before building the optimizer")
            for name, param in module._parameters.items():
                if id(param) not in seen:
                    seen.add(id(param))
                    out.append((mprefix + name, param))
        return out

    def parameters(self):
        """Every Parameter in registration order (a list, so it can be walked twice)."""
        return [param for _, param in self.named_parameters()]

    def named_buffers(self, prefix=""):
        """(dotted name, array) pairs of registered buffers (running statistics)."""
        return [(mprefix + name, buf) for mprefix, module in self._named_modules(prefix)
                for name, buf in module._buffers.items() if buf is not None]

    def buffers(self):
        return [buf for _, buf in self.named_buffers()]

    def has_parameters(self):
        return bool(self._parameters) or any(m.has_parameters() for m in self._modules.values())

    # ------------------------------------------------------------------- modes
    def train(self, mode=True):
        """Training mode (BatchNorm batch statistics, dropout on), recursively; self."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        """Evaluation mode: BatchNorm uses running statistics, dropout is the identity."""
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        """Set every parameter gradient to zero, in place (set_to_none is accepted for
        PyTorch code and changes nothing, as in ``Optimizer.zero_grad``)."""
        for _, param in self._named_parameters():
            param.zero_grad()

    # ------------------------------------------------------------------ devices
    @property
    def device(self):
        """'cpu' or 'cuda': where the parameters and buffers live (set by ``to``)."""
        return self._device

    def to(self, device=None, dtype=None):
        """Move parameters (data and grad) and buffers to 'cuda' or 'cpu', and/or convert
        them to dtype (float32 or float64), in place; self.

        As in PyTorch, ``to(np.float64)`` (a dtype in place of the device) converts only.
        On 'cuda' the layers run the cuda backend's kernels and keep their buffers on
        the GPU (``fastnn.device``). Build optimizers after moving or converting the
        model (as in PyTorch); an optimizer built before keeps the old arrays.
        """
        if device is not None and dtype is None and _is_dtype_like(device):
            device, dtype = None, device
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
        for module in self.modules():
            for param in module._parameters.values():
                if param is None:
                    continue
                if _device.device_of(param.data) != device:
                    param.data = ns.put(param.data)
                if param.grad is not None and _device.device_of(param.grad) != device:
                    param.grad = ns.put(param.grad)
            for name, buf in list(module._buffers.items()):
                if buf is not None and _device.device_of(buf) != device:
                    module._buffers[name] = ns.put(buf)
                    object.__setattr__(module, name, module._buffers[name])
            module._scratch.clear()
            object.__setattr__(module, "_out_meta", None)
            object.__setattr__(module, "_device", device)
        return self

    def cuda(self):
        """``to('cuda')``."""
        return self.to("cuda")

    def cpu(self):
        """``to('cpu')``."""
        return self.to("cpu")

    def _kernels(self):
        """The backend whose kernels this module's layers call: the cuda backend on the
        GPU, the current backend on the host."""
        return _device.kernels(self._device)

    # -------------------------------------------------------------- state dict
    def _state_arrays(self):
        """name -> the live array a state_dict entry copies (and load_state_dict writes):
        per module its parameters, then its buffers, then its children (PyTorch's order)."""
        live = OrderedDict()
        for prefix, module in self._named_modules(""):
            for name, param in module._parameters.items():
                live[prefix + name] = param.data
            for name, buf in module._buffers.items():
                if buf is not None:
                    live[prefix + name] = buf
        return live

    def state_dict(self):
        """An ordered dict: dotted name -> copy of every parameter and buffer (NumPy
        arrays, also for a model on the GPU)."""
        return OrderedDict((name, _device.host_copy(array))
                           for name, array in self._state_arrays().items())

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays in place (``param.data[...] = value``) into parameters and buffers.

        Every name, shape and dtype is checked before anything is written, so a failed
        load changes nothing (except that lazy layers first take their sizes from the
        saved arrays, as PyTorch's do). strict=False ignores missing and unexpected names. PyTorch's
        BatchNorm ``num_batches_tracked`` entries are skipped (a PyTorch state dict, its
        tensors turned into arrays, loads as it is).
        Returns LoadResult(missing_keys, unexpected_keys).
        """
        where = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, collections.abc.Mapping):
            raise TypeError(f"{where}: expected a mapping of names to arrays, "
                            f"got {type(state_dict).__name__}")
        for mprefix, module in self._named_modules(""):
            if "_lazy" in module.__dict__:  # a lazy layer takes its size from the arrays
                module._lazy_from_state(state_dict, mprefix)
        live = self._state_arrays()
        missing = [k for k in live if k not in state_dict]
        modules = dict(self._named_modules(""))
        unexpected = [k for k in state_dict
                      if k not in live and not self._foreign_counter(k, modules)]
        problems = []
        if strict and missing:
            problems.append(f"missing keys {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys {unexpected}")
        for name, target in live.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            if not isinstance(value, np.ndarray):
                problems.append(f"{name!r}: expected a numpy.ndarray, got "
                                f"{type(value).__name__}")
            elif value.shape != target.shape:
                problems.append(f"{name!r}: the model has shape {target.shape}, the state "
                                f"dict has {value.shape}")
            elif value.dtype != target.dtype:
                problems.append(f"{name!r}: the model has dtype {target.dtype}, the state "
                                f"dict has {value.dtype} (convert with .float()/.double())")
        if problems:
            raise ValueError(f"{where}: nothing was loaded: " + "; ".join(problems))
        for name, target in live.items():
            if name in state_dict:
                _device.namespace_of(target).copy_into(target, state_dict[name])
        return LoadResult(missing, unexpected)

    @staticmethod
    def _foreign_counter(key, modules):
        """True for PyTorch's BatchNorm ``num_batches_tracked``: it only serves momentum
        None, which fastnn does not have, so a PyTorch state dict loads with it ignored."""
        head, _, last = key.rpartition(".")
        module = modules.get(head + "." if head else "")
        return last == "num_batches_tracked" and getattr(module, "ignores_batch_count", False)

    # ------------------------------------------------------------------ dtypes
    def to_dtype(self, dtype):
        """Convert every parameter (data and grad) and buffer to dtype, in place; self."""
        if not _is_dtype_like(dtype) or np.dtype(dtype) not in FLOAT_DTYPES:
            got = np.dtype(dtype) if _is_dtype_like(dtype) else repr(dtype)
            raise TypeError(f"{type(self).__name__}.to_dtype: expected float32 or float64, "
                            f"got {got}")
        dtype = np.dtype(dtype)
        if self._device != "cpu":  # convert on the host, then move back
            device = self._device
            return self.to("cpu").to_dtype(dtype).to(device)
        for module in self.modules():
            if "_lazy" in module.__dict__:  # its parameters, once made, take this dtype
                module._lazy_dtype = dtype
            for param in module._parameters.values():
                param.data = np.ascontiguousarray(param.data, dtype=dtype)
                param.grad = np.ascontiguousarray(param.grad, dtype=dtype)
            for name, buf in list(module._buffers.items()):
                if buf is not None:
                    setattr(module, name, np.ascontiguousarray(buf, dtype=dtype))
            module._scratch.clear()
            object.__setattr__(module, "_out_meta", None)
        return self

    def float(self):
        """Convert parameters and buffers to float32 (in place); returns self."""
        return self.to_dtype(np.float32)

    def double(self):
        """Convert parameters and buffers to float64 (in place); returns self."""
        return self.to_dtype(np.float64)

    # ------------------------------------------------------ forward / backward
    def forward(self, x):
        """Output of the layer for input x (a fresh array, the caller's to keep).

        On a module moved to 'cuda', a NumPy x gives a NumPy output and a device array x
        a device array output."""
        if self.takes_indices:  # an Embedding (or a Sequential starting with one)
            if not _device.is_array(x) or x.dtype.kind not in "iu":
                got = x.dtype if _device.is_array(x) else type(x).__name__
                raise TypeError(f"{self._where()}: expected integer indices as a "
                                f"numpy.ndarray, got {got}")
        elif type(x) is not np.ndarray or x.dtype not in FLOAT_DTYPES:
            check_float_array(self._where(), "input", x, device_ok=True)
        self.infer_shape(x.shape, x.dtype)
        x, caller = self._arrive("input", x)
        return caller.put(self._run_forward(x, False))

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def backward(self, grad_out, need_grad_in=True):
        """Accumulate parameter gradients for grad_out (the gradient of the loss w.r.t.
        the last forward's output, same shape and dtype) and return the gradient w.r.t.
        the input (a fresh array), or None when need_grad_in is False."""
        if self._out_meta is None:
            raise RuntimeError(f"{self._where()}: backward called before forward")
        if self._out_meta is FUSED:
            raise RuntimeError(f"{self._where()}: its last forward ran fused into the "
                               f"preceding Linear inside a Sequential; call the "
                               f"Sequential's backward")
        shape, dtype = self._out_meta
        if type(grad_out) is not np.ndarray or grad_out.dtype != dtype:
            check_float_array(self._where(), "grad_out", grad_out, dtype=dtype, device_ok=True)
        if grad_out.shape != shape:
            raise ValueError(f"{self._where()}: expected grad_out of shape {shape} (the shape "
                             f"of the last forward output), got {grad_out.shape}")
        grad_out, caller = self._arrive("grad_out", grad_out)
        grad_in = self._backward(grad_out, False, need_grad_in)
        return None if grad_in is None else caller.put(grad_in)

    def _arrive(self, name, x):
        """(x on this module's device, C-contiguous; the caller's array namespace).

        A host array is copied to a module on the GPU (and its result copied back); a
        device array given to a module on the host is an error, as in PyTorch."""
        caller = _device.namespace_of(x)
        if caller.name == self._device:
            if caller is _device.Host or _device.is_contiguous(x):
                return as_contiguous(x), caller
            return as_contiguous(x, self._where(), name), caller  # raises, naming the layer
        if self._device == "cpu":
            raise ValueError(f"{self._where()}: {name} is a cuda device array but the module "
                             f"is on the cpu; call .to('cuda') on the model or pass a NumPy "
                             f"array")
        return _device.namespace(self._device).put(x), caller

    def _run_forward(self, x, buffered):
        y = self._forward(x, buffered)
        object.__setattr__(self, "_out_meta", (y.shape, y.dtype))
        return y

    def infer_shape(self, shape, dtype):
        """Output shape for an input of this shape and dtype; raises on a bad input.

        The default accepts any input and keeps its shape (elementwise layers); for a
        user module that overrides forward() it returns None (unknown until run).
        """
        return None if self._opaque else shape

    @property
    def _opaque(self):
        """A user module whose forward() is its own: its output shape is known only by
        running it."""
        cls = type(self)
        return cls.forward is not Module.forward and cls.infer_shape is Module.infer_shape

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
        """A layer-owned array of this shape and dtype, reused while they stay the same."""
        buf = self._scratch.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = _device.namespace(self._device).empty(shape, dtype)
            self._scratch[key] = buf
        return buf

    def _check_dtype(self, dtype, param_dtype):
        """A TypeError unless an input of dtype suits parameters of param_dtype (None: a
        layer without parameters takes either float type)."""
        if param_dtype is not None and dtype != param_dtype:
            raise TypeError(f"{self._where()}: input dtype {dtype} does not match the layer's "
                            f"parameters ({param_dtype}); convert the input or call "
                            f".float()/.double() on the model")

    def _where(self):
        """How error messages name this layer: its one-line repr."""
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self):
        """The text inside the parentheses of repr (layers override it)."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        if not self._modules:
            return f"{type(self).__name__}({extra})"
        lines = [f"{type(self).__name__}("] + ([f"  {extra}"] if extra else [])
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        return "\n".join(lines) + "\n)"


def _is_dtype_like(value):
    """True for what np.dtype accepts (np.float64, 'float32', a dtype), except device
    names and device objects."""
    if value is None or (isinstance(value, str)
                         and (value in _device.DEVICES or value.startswith("cuda"))):
        return False
    try:
        np.dtype(value)
    except TypeError:
        return False
    return True
