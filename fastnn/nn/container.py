"""Containers: Sequential (layers run in order, with Linear + activation fusion and reused
buffers), and PyTorch's ModuleList, ModuleDict, ParameterList and ParameterDict, which
only hold modules or parameters for the module that owns them."""
import collections.abc

from .. import device as _device
from .linear import Linear
from .module import FUSED, Module, Parameter


class Sequential(Module):
    """Runs ``layers`` in order; indexable, ``len``, iterable. ``Sequential(OrderedDict(
    name=layer, ...))`` names the layers (state dict keys 'name.weight', as in PyTorch).

    Every layer's input is checked (shape and dtype) before any layer runs, so a bad
    input changes nothing (after a user module, whose output shape is known only by
    running it, the later layers are checked as they run, and a failure puts the running
    statistics back as they were). A Linear immediately followed by an activation whose
    ``fused_name`` is set (Identity, ReLU, LeakyReLU with slope >= 0, Sigmoid, Tanh) runs
    as one fused ``linear_forward``/``linear_backward`` call, with results identical to
    the unfused pair. Outputs no caller sees live in layer-owned buffers reused every step;
    the arrays ``forward`` and ``backward`` return are fresh.
    A layer instance may appear only once (it keeps one forward's state for backward).
    """

    def __init__(self, *layers):
        super().__init__()
        self._layers = []
        self._steps = None
        if len(layers) == 1 and isinstance(layers[0], collections.abc.Mapping):
            for name, layer in layers[0].items():  # PyTorch's Sequential(OrderedDict(...))
                self.add_module(name, layer)
            return
        for layer in layers:
            self.append(layer)

    def append(self, layer):
        """Add a layer at the end (named by its index); returns self."""
        return self._add(str(len(self._layers)), layer)

    def add_module(self, name, module):
        """Add a layer at the end under name (PyTorch's Sequential runs it too)."""
        self._check_name("add_module", name)
        if name in self._modules:
            raise KeyError(f"Sequential.add_module: a layer named {name!r} exists already")
        self._add(name, module)

    register_module = add_module

    def _add(self, name, layer):
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential: expected a Module, got {type(layer).__name__}")
        if any(layer is other for other in self.modules()):
            raise ValueError(f"Sequential: layer {layer!r} is already in this Sequential; "
                             f"use a separate instance for each position")
        setattr(self, name, layer)
        self._layers.append(layer)
        return self

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(*self._layers[index])
        return self._layers[index]

    def __len__(self):
        return len(self._layers)

    def __iter__(self):
        return iter(self._layers)

    @property
    def takes_indices(self):
        """True when the first layer takes integer indices (an Embedding)."""
        return bool(self._layers) and self._layers[0].takes_indices

    def output_dtype(self, dtype):
        for layer in self._layers:
            dtype = layer.output_dtype(dtype)
        return dtype

    def infer_shape(self, shape, dtype):
        """Checks every layer in turn; None once a layer's output shape is unknown (a
        user module with its own forward): the layers after it are checked as they run."""
        for i, layer in enumerate(self._layers):
            shape = self._check_layer(i, layer, shape, dtype)
            if shape is None:
                return None
            dtype = layer.output_dtype(dtype)
        return shape

    @staticmethod
    def _check_layer(i, layer, shape, dtype):
        try:
            return layer.infer_shape(shape, dtype)
        except (ValueError, TypeError) as err:
            raise type(err)(f"Sequential layer {i}: {err}") from None

    def _plan(self):
        """[(layer, fused activation or None, passthrough)] for this forward."""
        steps = []
        layers = self._layers
        i = 0
        while i < len(layers):
            layer = layers[i]
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if (type(layer) is Linear and nxt is not None
                    and getattr(nxt, "fused_name", None) is not None):
                steps.append((layer, nxt, False))
                i += 2
            else:
                steps.append((layer, None, layer.passthrough))
                i += 1
        return steps

    def _forward(self, x, buffered):
        steps = self._plan()
        if any(layer._opaque for layer, _, _ in steps[:-1]):
            # layers after a user module are checked only as they run: should one fail,
            # the buffers (running statistics) of those before it are put back
            saved = [(buf, _device.host_copy(buf)) for buf in self.buffers()]
            try:
                return self._run_steps(steps, x, buffered)
            except Exception:
                for buf, copy in saved:
                    _device.namespace_of(buf).copy_into(buf, copy)
                raise
        return self._run_steps(steps, x, buffered)

    def _run_steps(self, steps, x, buffered):
        # Layers from the last one that computes a new array onward return fresh arrays.
        fresh_from = len(steps) if buffered else max(
            (j for j, (_, _, through) in enumerate(steps) if not through), default=0)
        unchecked = False  # True after a layer whose output shape was not known upfront
        for j, (layer, act, _) in enumerate(steps):
            if unchecked:
                self._check_layer(self._layers.index(layer), layer, x.shape, x.dtype)
            unchecked = unchecked or layer._opaque
            keep = buffered or j < fresh_from
            if act is None:
                x = layer._run_forward(x, keep)
            else:
                x = layer._run_fused(x, keep, act.fused_name,
                                     getattr(act, "negative_slope", 0.01))
                object.__setattr__(act, "_out_meta", FUSED)  # the Linear did its work
        object.__setattr__(self, "_steps", steps)
        return x

    def _backward(self, grad_out, buffered, need_grad_in):
        steps = self._steps
        n = len(steps)
        first_param = next((j for j, (layer, _, _) in enumerate(steps)
                            if layer.has_parameters()), n)
        # Layers up to the first one that computes a new array return fresh arrays.
        fresh_upto = -1 if buffered else min(
            (j for j, (_, _, through) in enumerate(steps) if not through), default=n)
        g = grad_out
        for j in range(n - 1, -1, -1):
            need = need_grad_in or j > first_param
            if not need and j < first_param:
                return None
            g = steps[j][0]._backward(g, buffered or j > fresh_upto, need)
        return g


class _Holder(Module):
    """A container with no forward of its own: the owning module calls what it holds."""

    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} has no forward: use its contents "
                                  f"from the owning module's forward")

    def backward(self, grad_out, need_grad_in=True):
        raise NotImplementedError(f"{type(self).__name__} has no backward: use its contents "
                                  f"from the owning module's backward")

    holds = None  # the class of what it holds: Module or Parameter

    def _checked(self, value):
        if not isinstance(value, self.holds):
            raise TypeError(f"{type(self).__name__}: expected a {self.holds.__name__}, got "
                            f"{type(value).__name__}")
        return value


class _List(_Holder):
    """The list behaviour of ModuleList and ParameterList: items named '0', '1', ...
    under the owner."""

    def __init__(self, values=()):
        super().__init__()
        self._list = []
        self.extend(values or ())

    def append(self, value):
        """Add an item at the end; returns self."""
        setattr(self, str(len(self._list)), self._checked(value))
        self._list.append(value)
        return self

    def extend(self, values):
        for value in values:
            self.append(value)
        return self

    def __getitem__(self, index):
        if isinstance(index, slice):
            return type(self)(self._list[index])
        return self._list[index]

    def __len__(self):
        return len(self._list)

    def __iter__(self):
        return iter(self._list)


class ModuleList(_List):
    """A list of modules whose parameters and buffers belong to the owner (PyTorch's
    ModuleList): indexable, ``len``, iterable, ``append``/``extend``; no forward of its
    own (the owning module's forward and backward call the layers). Its repr writes a
    run of consecutive children with the same repr once, as PyTorch's:
    ``(0-2): 3 x Linear(...)``."""

    holds = Module

    def __repr__(self):
        runs = []  # [first index, last index, repr] of each run of equal reprs
        for i, child in enumerate(self):
            text = repr(child)
            if runs and runs[-1][2] == text:
                runs[-1][1] = i
            else:
                runs.append([i, i, text])
        if not runs:
            return f"{type(self).__name__}()"
        lines = [f"{type(self).__name__}("]
        for first, last, text in runs:
            text = text.replace("\n", "\n  ")
            label = (f"({first})" if first == last
                     else f"({first}-{last}): {last - first + 1} x")
            lines.append(f"  {label}: {text}" if first == last else f"  {label} {text}")
        return "\n".join(lines) + "\n)"


class ParameterList(_List):
    """A list of Parameters (PyTorch's ParameterList), named '0', '1', ... in the owner's
    parameters() and state dict; indexable, ``len``, iterable, ``append``/``extend``."""

    holds = Parameter


class _Dict(_Holder):
    """The mapping behaviour of ModuleDict and ParameterDict (insertion order kept)."""

    def _table(self):
        """The owner's table of what it holds (_modules or _parameters)."""
        raise NotImplementedError

    def __init__(self, items=None):
        super().__init__()
        if items is not None:
            self.update(items)

    def __getitem__(self, key):
        return self._table()[key]

    def __setitem__(self, key, value):
        self._check_name(f"{type(self).__name__}[...]", key)
        setattr(self, key, self._checked(value))

    def __delitem__(self, key):
        del self._table()[key]
        object.__delattr__(self, key)

    def __len__(self):
        return len(self._table())

    def __iter__(self):
        return iter(self._table())

    def __contains__(self, key):
        return key in self._table()

    def keys(self):
        return self._table().keys()

    def values(self):
        return self._table().values()

    def items(self):
        return self._table().items()

    def pop(self, key):
        value = self._table()[key]
        del self[key]
        return value

    def clear(self):
        for key in list(self._table()):
            del self[key]

    def update(self, items):
        """Add (name, value) pairs from a mapping or an iterable of pairs."""
        pairs = items.items() if isinstance(items, collections.abc.Mapping) else items
        for key, value in pairs:
            self[key] = value


class ModuleDict(_Dict):
    """Modules by name (PyTorch's ModuleDict): their parameters and buffers belong to the
    owner under 'name.weight' etc.; ``d[name]``, ``keys()``, ``items()``, ``update``."""

    def _table(self):
        return self._modules

    holds = Module


class ParameterDict(_Dict):
    """Parameters by name (PyTorch's ParameterDict), in the owner's parameters() and
    state dict; ``d[name]``, ``keys()``, ``items()``, ``update``."""

    def _table(self):
        return self._parameters

    holds = Parameter
