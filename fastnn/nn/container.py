"""Containers: Sequential (layers run in order, with Linear + activation fusion and reused
buffers), and PyTorch's ModuleList, ModuleDict, ParameterList and ParameterDict, which
only hold modules or parameters for the module that owns them."""
import collections.abc
import operator
from collections import OrderedDict

import numpy as np

from .. import device as _device
from .. import grad_mode as _grad_mode
from ..errors import IndexValueError, MissingKeyError
from .linear import Linear
from .module import FUSED, Module, Parameter, _Stale
from .output_slots import OutputSlots


# (callers check Module._hooks_seen and module._hooked first: with no hook ever
# registered, nothing here runs)
def _elsewhere(module, device):
    """The first module under module (depth first) that is not on device, or None."""
    for child in module._modules.values():
        if child is not None:
            if child._device != device:
                return child
            found = _elsewhere(child, device) if child._modules else None
            if found is not None:
                return found
    return None


def _has_forward_hooks(module):
    return bool(module._forward_pre_hooks or module._forward_hooks)


def _has_hooks(module):
    return bool(module._forward_pre_hooks or module._forward_hooks
                or module._backward_pre_hooks or module._backward_hooks)


def _may_fail_part_way(layer):
    """True when layer runs code of the user's (a method of its own, a hook, also inside a
    nested container) or has an output shape known only by running it: its forward or
    backward may fail after the layers before it ran. Class flags first (quick)."""
    return (layer._opaque or type(layer)._user_code or (layer._hooked and _has_hooks(layer))
            or (layer._modules and layer._runs_user_code))


_SAME_SHAPE = Module.infer_shape    # (the inherited rules of elementwise layers)
_SAME_DTYPE = Module.output_dtype


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

    Its layers' hooks run as in PyTorch's Sequential, whose forward calls each layer (see
    ``fastnn.nn.module``): a Linear or activation with a hook is not fused, so its hooks
    see its own input, output and gradients. ``append``, ``extend``, ``insert``, ``pop``,
    ``seq[i] = layer``, ``del seq[i]`` follow PyTorch's (deleting renumbers the layers
    '0', '1', ...); after a change, run forward again before backward.
    """

    def __init__(self, *layers):
        super().__init__()
        self._layers = []  # the layers in the order they run: _modules' values
        self._steps = None
        self._step_metas = ()
        self._hooked_steps = ()  # steps whose layer had forward hooks in the last forward
        if len(layers) == 1 and isinstance(layers[0], collections.abc.Mapping):
            for name, layer in layers[0].items():  # PyTorch's Sequential(OrderedDict(...))
                self.add_module(name, layer)
            return
        for layer in layers:
            self.append(layer)

    def __setattr__(self, name, value):
        # a module set as an attribute is a layer, as in PyTorch's: it replaces the layer
        # of that name in place or runs last
        if "_modules" not in self.__dict__:
            return super().__setattr__(name, value)  # (raises: Module.__init__ first)
        if isinstance(value, Module):
            old = self._modules.get(name)
            if value is not old and self._holds_one_of(value, skip=name):
                raise ValueError(f"Sequential: layer {value!r} is already in this "
                                 f"Sequential; use a separate instance for each position")
            super().__setattr__(name, value)
            self._relayer()
        elif name in self._modules:
            super().__setattr__(name, value)
            if value is None:   # (None removes the layer: a Sequential runs what it holds)
                self._modules.pop(name, None)
            self._relayer()
        else:
            super().__setattr__(name, value)

    def __delattr__(self, name):
        layer = name in self._modules
        super().__delattr__(name)
        if layer:
            self._relayer()

    def _relayer(self):
        """_layers from _modules after a change; the last forward no longer counts."""
        object.__setattr__(self, "_layers", list(self._modules.values()))
        if self._out_meta is not None:   # (was "backward called before forward")
            object.__setattr__(self, "_out_meta", _Stale("its layers were changed (append, "
                                                          "insert, pop, del or seq[i] = ...)"))

    def append(self, module):   # (PyTorch's keyword name)
        """Add a layer at the end (named by its index); returns self."""
        name = str(len(self._layers))
        if name in self._modules:   # (a layer removed from the middle: the next free index)
            name = str(1 + max(int(k) for k in self._modules if k.isdigit()))
        return self._add(name, module)

    def extend(self, sequential):
        """Append every layer of an iterable of modules (another Sequential, a list);
        returns self. Every layer is checked before any is added."""
        layers = list(sequential)
        for layer in layers:
            self._check_module(layer)
        run = [id(m) for layer in layers for m in _runs(layer)]
        if len(set(run)) != len(run) or any(self._holds_one_of(layer) for layer in layers):
            raise ValueError("Sequential.extend: a layer appears twice (in the layers given "
                             "or already in this Sequential); use a separate instance for "
                             "each position")
        for layer in layers:
            self.append(layer)
        return self

    def insert(self, index, module):
        """Put module at position index (-len <= index <= len, negative counting from the
        end, PyTorch's), moving the layers from there one place on and renaming them
        '{index + 1}', ...; returns self. As in PyTorch, the layers from index on must be
        named by their positions (KeyError otherwise, before anything changes)."""
        self._check_module(module)
        n = len(self._modules)
        index = _insert_position(index, n)
        names = list(self._modules)
        if names[index:] != [str(i) for i in range(index, n)]:
            raise KeyError(f"Sequential.insert: the layers from position {index} on are named "
                           f"{names[index:]}, not by their positions, so they cannot move "
                           f"up one place (PyTorch's insert fails there too)")
        if self._holds_one_of(module):
            raise ValueError(f"Sequential: layer {module!r} is already in this Sequential; "
                             f"use a separate instance for each position")
        self._rename(names[:index], [module] + self._layers[index:], index)
        return self

    def pop(self, key):
        """Remove the layer at index key (or the layers of a slice, as a Sequential) and
        return it; the layers after it are renumbered, as in PyTorch."""
        value = self[key] if isinstance(key, slice) else self._modules[self._key_at(key)]
        del self[key]
        return value

    def __setitem__(self, index, module):
        self._check_module(module)
        setattr(self, self._key_at(index), module)

    def __delitem__(self, index):
        keys = (list(self._modules)[index] if isinstance(index, slice)
                else [self._key_at(index)])
        for key in keys:
            Module.__delattr__(self, key)
        self._rename([], list(self._modules.values()), 0)  # PyTorch's: '0', '1', ...

    def _key_at(self, index):
        """The name of the layer at index (PyTorch's index checks and messages)."""
        size = len(self._modules)
        index = operator.index(index)
        if not -size <= index < size:
            raise IndexValueError(f"index {index} is out of range")
        return list(self._modules)[index % size]

    def _rename(self, keep, layers, start):
        """Keep the layers named keep, then name layers str(start), str(start + 1), ..."""
        for name in [name for name in self._modules if name not in keep]:
            del self._modules[name]
            self.__dict__.pop(name, None)
        for i, layer in enumerate(layers, start):
            self._modules[str(i)] = layer
            object.__setattr__(self, str(i), layer)
        self._relayer()

    def _holds_one_of(self, module, skip=None):
        """True when module, or a layer it runs as a Sequential (nested ones too), is in
        this Sequential already (outside its layer named skip, which module replaces):
        the two positions would share that layer's buffers and saved forward (a nested
        Sequential's Linear wrote its output over its input, a pool's backward wrote
        past its buffer)."""
        held = {id(self)}
        for name, layer in self._modules.items():
            if name != skip and layer is not None:
                held.update(id(m) for m in layer.modules())
        return any(id(m) in held for m in _runs(module))

    @staticmethod
    def _check_module(layer):
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential: expected a Module, got {type(layer).__name__}")

    def add_module(self, name, module):
        """Add a layer at the end under name (PyTorch's Sequential runs it too); a name
        the Sequential has already replaces that layer in its place, as PyTorch's."""
        self._check_module(module)
        self._check_name("module", name, self._modules)
        self._add(name, module)

    register_module = add_module

    def _add(self, name, layer):
        self._check_module(layer)
        setattr(self, name, layer)  # (refuses a layer already in this Sequential)
        return self

    def __getitem__(self, index):
        if isinstance(index, slice):  # the layers keep their names (PyTorch's)
            # (a subclass with a constructor of its own, such as fastnn.models.MLP, whose
            # arguments are not layers: a plain Sequential of the slice's layers)
            cls = type(self) if type(self).__init__ is Sequential.__init__ else Sequential
            return cls(OrderedDict(list(self._modules.items())[index]))
        try:
            return self._layers[index]
        except IndexError:   # (PyTorch's message)
            raise IndexValueError(f"index {index} is out of range") from None

    def __len__(self):
        return len(self._layers)

    def __add__(self, other):
        """A new Sequential of this one's layers, then other's (the same instances)."""
        return Sequential(*self, *_sequential_operand(other))

    def __iadd__(self, other):
        """Append other's layers (a Sequential); self."""
        return self.extend(_sequential_operand(other))

    def __mul__(self, other):
        """PyTorch's repetition of the layers (the same instances): only ``* 1`` works in
        fastnn, whose layers may appear once (ValueError for more, as for any
        repeated layer)."""
        return Sequential().extend(list(self) * self._factor(other))

    __rmul__ = __mul__

    def __imul__(self, other):
        return self.extend(list(self) * (self._factor(other) - 1))

    def _factor(self, other):
        """other, a repetition count >= 1, checked as PyTorch does."""
        if not isinstance(other, int) or isinstance(other, bool):
            raise TypeError(f"unsupported operand type(s) for *: {type(self)} and "
                            f"{type(other)}")
        if other <= 0:
            raise ValueError(f"Non-positive multiplication factor {other} for {type(self)}")
        return other

    def __dir__(self):
        return [key for key in super().__dir__() if not key.isdigit()]

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

    @property
    def _opaque(self):
        """True when some layer's output shape is known only by running it: a user module
        with its own forward, or a layer with forward hooks (also in a nested Sequential)."""
        hooks = Module._hooks_seen
        return any(layer._opaque or (hooks and layer._hooked and _has_forward_hooks(layer))
                   for layer in self._layers)

    @property
    def passthrough(self):
        """True when every layer hands its input back (Flatten, eval-mode Dropout, ...):
        then so does this Sequential, and a Sequential around it must give fresh arrays."""
        return all(layer.passthrough and not layer._opaque for layer in self._layers)

    def infer_shape(self, shape, dtype):
        """Checks every layer in turn; None once a layer's output shape is unknown (a
        user module with its own forward, or a layer with forward hooks, which may change
        its input and output): the layers from there on are checked as they run."""
        hooks = Module._hooks_seen
        for i, layer in enumerate(self._layers):
            if hooks and layer._hooked and _has_forward_hooks(layer):
                return None
            shape = self._check_layer(i, layer, shape, dtype)
            if shape is None:
                return None
            if type(layer).output_dtype is not _SAME_DTYPE:
                dtype = layer.output_dtype(dtype)
        return shape

    @staticmethod
    def _check_layer(i, layer, shape, dtype):
        if layer._user_forward:   # what the user's own forward accepts is its own affair
            return None
        if type(layer).infer_shape is _SAME_SHAPE and not layer._opaque:
            return shape   # (an elementwise layer: Module.infer_shape, without the call)
        try:
            return layer.infer_shape(shape, dtype)
        except (ValueError, TypeError) as err:
            raise type(err)(f"Sequential layer {i}: {err}") from None

    def _plan(self):
        """([(layer, fused activation or None, passthrough)], the indices of the steps
        whose layer has forward hooks) for this forward. A Linear and an activation with
        hooks are not fused: the hooks see each on its own."""
        steps = []
        layers = self._layers
        hooks = Module._hooks_seen
        hooked_steps = ()
        i = 0
        while i < len(layers):
            layer = layers[i]
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if (type(layer) is Linear and nxt is not None
                    and getattr(nxt, "fused_name", None) is not None and not nxt._opaque
                    and not type(nxt)._user_code   # (a user's _forward / _backward runs)
                    and not (hooks and ((layer._hooked and _has_hooks(layer))
                                        or (nxt._hooked and _has_hooks(nxt))))):
                steps.append((layer, nxt, False))
                i += 2
            else:
                if hooks and layer._hooked and _has_forward_hooks(layer):
                    hooked_steps += (len(steps),)
                steps.append((layer, None, layer.passthrough and not layer._user_forward))
                i += 1
        return steps, hooked_steps

    def _forward(self, x, buffered):
        steps, hooked = self._plan()
        checked_as_they_run = hooked or any(_may_fail_part_way(layer) for layer, _, _ in steps)
        if checked_as_they_run:
            # layers after a user module (or one with hooks) are checked only as they
            # run, and the user's code may raise in any of them (the last one too): should
            # one fail, the buffers (running statistics) and batch counters of those
            # before it are put back
            saved = [(buf, _device.host_copy(buf)) for buf in self.buffers()]
            counts = [(m, m.num_batches_tracked) for m in self.modules()
                      if getattr(type(m), "counts_batches", False)]
        try:
            return self._run_steps(steps, x, buffered, hooked)
        except Exception as error:
            # the layers that ran hold this call's context now: backward says so
            object.__setattr__(self, "_failed_forward", type(error).__name__)
            if checked_as_they_run:
                for buf, copy in saved:
                    _device.namespace_of(buf).copy_into(buf, copy)
                for module, count in counts:
                    module.num_batches_tracked = count
            raise

    def _run_steps(self, steps, x, buffered, hooked):
        # Layers from the last one that computes a new array onward return fresh arrays
        # (a user module may return its input, or a view of it); with hooks every array
        # is fresh (a hook may keep what it is given). Under no_grad on the host, the
        # layers that would write into buffers of their own write into two arrays this
        # Sequential alternates (output_slots): no layer keeps its input then
        # (forget_forward), so two intermediates at a time is all a pass needs.
        if hooked:
            buffered, fresh_from = False, 0
        else:
            fresh_from = len(steps) if buffered else _last_computing(steps, 0)
        slots = (OutputSlots(self) if not hooked and not _grad_mode._MODE.enabled
                 and self._device == "cpu" else None)
        opaque = [layer._opaque for layer, _, _ in steps]
        feeds_user, feeds_user_back = _feeding_opaque(steps, opaque)
        unchecked = False  # True after a layer whose output shape was not known upfront
        self._check_devices(steps)
        for j, (layer, act, _) in enumerate(steps):
            if hooked and j in hooked:
                x = self._call_layer(layer, x)
                unchecked = True
                continue
            if unchecked:
                self._check_layer(self._layers.index(layer), layer, x.shape, x.dtype)
                if type(x) is np.ndarray:  # a user module may return a strided view
                    x = _device.c_contiguous(x)
            unchecked = unchecked or opaque[j]
            keep = (buffered or j < fresh_from) and j not in feeds_user
            if layer._user_forward:
                x = layer.forward(x)
            elif slots is not None and keep:
                with slots.lend_to(layer, x):
                    x = _run_step(layer, act, x, keep)
            else:
                x = _run_step(layer, act, x, keep)
        if slots is not None:
            slots.trim()
        object.__setattr__(self, "_steps", steps)
        object.__setattr__(self, "_feeds_user_back", feeds_user_back)
        object.__setattr__(self, "_failed_forward", None)
        # each layer's record of this forward (a new object every forward): a layer run
        # again on its own before backward is caught there
        object.__setattr__(self, "_step_metas", tuple([step[0]._out_meta for step in steps]))
        if hooked or self._hooked_steps:
            object.__setattr__(self, "_hooked_steps", hooked)
        return x

    def _check_devices(self, steps):
        """Every layer (and every module inside one) on this Sequential's device, checked
        before any layer runs: a layer moved alone used to be found only when its turn
        came, after the BatchNorm layers before it had updated their running statistics
        for a forward that then failed. (PyTorch: "Expected all tensors to be on the same
        device"; the kernels would fail obscurely.) An activation fused into the Linear
        before it is checked too: it would otherwise run on the Linear's device silently,
        where the same activation unfused is refused."""
        here = self._device   # (x arrived here: Module's forward moved it)
        for layer in [m for step in steps for m in step[:2] if m is not None]:
            elsewhere = (layer if layer._device != here else
                         _elsewhere(layer, here) if layer._modules else None)
            if elsewhere is not None:
                raise ValueError(
                    f"Sequential layer {self._layers.index(layer)}: {elsewhere._where()} is "
                    f"on {elsewhere._device} but the Sequential (and its input) is on {here}; "
                    f"move the whole model, e.g. model.to('{elsewhere._device}')")

    def _call_layer(self, layer, x):
        """layer(x) with its forward hooks, as PyTorch's Sequential calls it: a fresh
        output; an input a pre-hook gave is checked as ``forward`` checks one."""
        i = self._layers.index(layer)

        def run(*args, **kwargs):
            if len(args) != 1 or kwargs or layer._user_forward:
                return layer.forward(*args, **kwargs)
            x = args[0]
            layer._check_input(x)
            self._check_layer(i, layer, x.shape, x.dtype)
            return layer._run_forward(layer._arrive("input", x)[0], False)

        y = layer._call_impl(run, (x,), {})
        if not _device.is_array(y):
            raise TypeError(f"Sequential layer {i}: a forward hook of {layer._where()} "
                            f"returned a {type(y).__name__}; expected an array")
        return layer._arrive("output", y)[0]

    def _backward(self, grad_out, buffered, need_grad_in):
        if not any(_may_fail_part_way(layer) for layer, _, _ in self._steps):
            return self._backward_steps(grad_out, buffered, need_grad_in)
        # the gradient a user module returns is checked only as it arrives, and the user's
        # code (a backward of its own, a hook) may raise: should the layer before it refuse
        # it, or the code fail, the gradients the later layers added are taken back
        # (not through .grad: a read would make pending zeros a gradient for the optimizer)
        saved = [(p, p._grad_snapshot()) for p in self.parameters()]
        try:
            return self._backward_steps(grad_out, buffered, need_grad_in)
        except Exception:
            for p, snapshot in saved:
                p._restore_grad(snapshot)
            raise

    def _check_no_forward_since(self, steps):
        """A RuntimeError (before any gradient is touched) when a layer ran a forward
        of its own since this Sequential's forward: its backward would differentiate
        that one (and a Linear fused with its activation would drop the activation's
        derivative). A passthrough layer (Flatten, Identity, eval-mode Dropout) needs
        only its shapes, so one run again with the same shapes passes; so does an
        activation fused into its Linear (the Linear keeps what its backward reads)."""
        for (layer, _, through), meta in zip(steps, self._step_metas):
            now = layer._out_meta
            if now is meta or (through and now == meta):
                continue
            if type(now) is _Stale:   # the layer alone was moved, converted or loaded
                raise now.error(layer, f"Sequential layer {self._layers.index(layer)}: "
                                       f"{layer._where()}")
            failed = self.__dict__.get("_failed_forward")
            if failed:
                raise RuntimeError(
                    f"Sequential layer {self._layers.index(layer)}: {layer._where()} ran in "
                    f"the Sequential's last forward, which failed part-way ({failed}), so "
                    f"its backward would differentiate that call; run the Sequential's "
                    f"forward again")
            raise RuntimeError(
                f"Sequential layer {self._layers.index(layer)}: {layer._where()} ran a "
                f"forward of its own after the Sequential's forward, so its backward would "
                f"differentiate that one; run the Sequential's forward again (or "
                f"copy.deepcopy the layer to inspect it)")

    def _backward_steps(self, grad_out, buffered, need_grad_in):
        steps = self._steps
        self._check_no_forward_since(steps)
        n = len(steps)
        hooked = self._backward_hooked_steps(steps) if Module._hooks_seen else ()
        # the layers before the first one with a parameter to train need no gradient
        # (PyTorch's autograd reaches no further back: frozen ones are skipped)
        first_param = n
        for j, step in enumerate(steps):
            if step[0].has_parameters(trainable=True):
                first_param = j
                break
        # Layers up to the first one that computes a new array return fresh arrays (a
        # user module's backward may return its grad_out, or a view of it); with hooks
        # every array is fresh (a hook may keep what it is given).
        if hooked:
            buffered, fresh_upto = False, n
        else:
            fresh_upto = -1 if buffered else _first_computing(steps, n)
        feeds_user = self.__dict__.get("_feeds_user_back", ())
        reshaped = self._hooked_steps  # a forward hook may have changed the output
        g = grad_out
        for j in range(n - 1, -1, -1):
            need = need_grad_in or j > first_param
            if not need and j < first_param:
                return None
            layer = steps[j][0]
            if layer._user_forward:
                pass   # g goes to the user's method (Module.backward under it checks g)
            elif reshaped and j in reshaped:
                layer._check_grad_out(g)
            elif j + 1 < n and steps[j + 1][0]._opaque:
                self._check_grad_from_user(layer, g, steps[j + 1][0])
                if type(g) is np.ndarray:  # a user module may return a strided view
                    g = _device.c_contiguous(g)
            if hooked and j in hooked:
                g = self._backward_layer(layer, g, need)
                if g is None:  # (a hook cut the gradient: the layers before get none)
                    return None
            elif layer._user_forward or layer._user_backward:
                g = layer.backward(g)
            else:
                g = layer._backward(g, (buffered or j > fresh_upto) and j not in feeds_user,
                                    need)
        return g

    def _check_grad_from_user(self, layer, grad, source):
        """Raise, naming the layer and the user module after it (source, whose backward
        returned grad), unless grad fits layer's last forward output."""
        try:
            layer._check_grad_out(grad)
        except (ValueError, TypeError) as err:
            raise type(err)(
                f"Sequential layer {self._layers.index(source)}: the gradient the backward "
                f"of {type(source).__name__} returned does not fit the output of layer "
                f"{self._layers.index(layer)}: {err}") from None

    @staticmethod
    def _backward_hooked_steps(steps):
        """The steps whose layer has backward hooks; a RuntimeError for hooks registered
        on a Linear + activation pair after the forward that ran them fused (before any
        gradient is touched)."""
        hooked = set()
        for j, (layer, act, _) in enumerate(steps):
            if not ((layer._hooked and (layer._backward_pre_hooks or layer._backward_hooks))
                    or (act is not None and act._hooked
                        and (act._backward_pre_hooks or act._backward_hooks))):
                continue
            if act is not None:
                raise RuntimeError(f"Sequential layer {j}: {layer._where()} and "
                                   f"{act._where()} ran fused in the last forward, before a "
                                   f"backward hook was registered on them; run forward "
                                   f"again (a layer with hooks is not fused)")
            hooked.add(j)
        return hooked

    @staticmethod
    def _backward_layer(layer, g, need):
        """layer's backward for g with its backward hooks; fresh arrays."""
        def run(grad):
            if grad is not g and not layer._user_forward:
                # a pre-hook's replacement: checked as backward checks one
                layer._check_grad_out(grad)
                grad = layer._arrive("grad_out", grad)[0]
            if layer._user_forward or layer._user_backward:
                return layer.backward(grad)
            return layer._backward(grad, False, need)

        grad_in = layer._backward_hooked((g,), run, need)
        return None if grad_in is None else layer._arrive("grad_in", grad_in)[0]


def _sequential_operand(other):
    """other, the right side of a Sequential's ``+``, checked as PyTorch does."""
    if not isinstance(other, Sequential):
        raise ValueError(f"add operator supports only objects of Sequential class, but "
                         f"{type(other)} is given.")
    return other



class _Holder(Module):
    """A container with no forward of its own: the owning module calls what it holds."""

    def forward(self, x):
        """A NotImplementedError: a ModuleList, ModuleDict, ParameterList or ParameterDict
        has no forward (PyTorch's neither); the owning module's forward uses what it
        holds."""
        raise NotImplementedError(f"{type(self).__name__} has no forward: use its contents "
                                  f"from the owning module's forward")

    def backward(self, grad_out, need_grad_in=True):
        """A NotImplementedError, as forward: the owning module's backward calls the
        layers held."""
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
    under the owner. The items are read from the owner's attributes each time (as
    PyTorch's), so ``setattr(lst, '0', x)``, ``set_submodule``, ``delattr`` and
    ``load_state_dict(assign=True)`` show in indexing and iteration too."""

    def __init__(self, values=None):
        super().__init__()
        if values is not None:
            self.extend(values)

    def _items(self):
        """The items, in order (a new list)."""
        raise NotImplementedError

    def append(self, value):
        """Add an item at the end; returns self."""
        value = self._checked(value)
        setattr(self, self._next_name(), value)
        return self

    def _next_name(self):
        """The name of an item appended now: its position."""
        return str(len(self))

    def extend(self, values):
        """Append every item of an iterable; returns self."""
        if not isinstance(values, collections.abc.Iterable):
            raise TypeError(f"{type(self).__name__}.extend should be called with an "
                            f"iterable, but got {type(values).__name__}")
        for value in values:
            self.append(value)
        return self

    def __iadd__(self, parameters):   # (PyTorch's ParameterList keyword name)
        return self.extend(parameters)

    def __add__(self, other):
        """A new list of this one's items, then other's (renumbered; PyTorch's): a plain
        ModuleList or ParameterList, also from a subclass (whose constructor may take
        other arguments)."""
        if not isinstance(other, collections.abc.Iterable):
            return NotImplemented
        plain = ModuleList if isinstance(self, ModuleList) else ParameterList
        return plain(list(self) + list(other))

    def __dir__(self):
        return [key for key in super().__dir__() if not key.isdigit()]

    def __getitem__(self, index):
        if isinstance(index, slice):
            return type(self)(self._items()[index])
        return self._items()[self._abs_index(index)]

    def __setitem__(self, index, value):
        i = self._abs_index(index)
        value = self._checked(value)
        setattr(self, self._name_at(i), value)

    def _name_at(self, i):
        """The attribute name of the item at position i."""
        return str(i)

    def _abs_index(self, index):
        """index as a position 0 <= i < len (PyTorch's checks and message)."""
        index = operator.index(index)
        size = len(self)
        if not -size <= index < size:
            raise IndexValueError(f"index {index} is out of range")
        return index + size if index < 0 else index

    def __iter__(self):
        return iter(self._items())


class ModuleList(_List):
    """A list of modules whose parameters and buffers belong to the owner (PyTorch's
    ModuleList): indexable, ``len``, iterable, ``append``/``extend``; no forward of its
    own (the owning module's forward and backward call the layers). Its repr writes a
    run of consecutive children with the same repr once, as PyTorch's:
    ``(0-2): 3 x Linear(...)``."""

    def __init__(self, modules=None):  # (PyTorch's keyword names, here and below)
        super().__init__(modules)

    def append(self, module):
        """Add a module at the end; returns self."""
        return super().append(module)

    def extend(self, modules):
        """Append every module of an iterable; returns self."""
        return super().extend(modules)

    def __iadd__(self, modules):
        return self.extend(modules)

    holds = Module

    def _table(self):
        return self._modules

    def _items(self):
        # (PyTorch's: the modules registered under the list, in their order)
        return list(self._modules.values())

    def __len__(self):
        return len(self._modules)

    def _next_name(self):
        # (a free name when a module was removed by delattr from the middle)
        name = str(len(self._modules))
        if name in self._modules:
            name = str(1 + max(int(k) for k in self._modules if k.isdigit()))
        return name

    def _name_at(self, i):
        return list(self._modules)[i]

    def _reset(self, modules):
        """Hold modules, named '0', '1', ... again (after a deletion or an insertion)."""
        for name in list(self._modules):
            del self._modules[name]
            self.__dict__.pop(name, None)
        self.extend(modules)

    def __delitem__(self, index):
        """Remove the module at index (or those of a slice); the rest are renumbered
        '0', '1', ... (PyTorch's)."""
        items = self._items()
        drop = (set(range(len(items))[index]) if isinstance(index, slice)
                else {self._abs_index(index)})
        self._reset([m for i, m in enumerate(items) if i not in drop])

    def pop(self, key):
        """Remove the module at index key (or the modules of a slice, as a ModuleList)
        and return it; the rest are renumbered (PyTorch's)."""
        value = self[key]
        del self[key]
        return value

    def insert(self, index, module):
        """Put module before position index, renumbering those after it; returns None
        (PyTorch's). index as in Sequential.insert: -len <= index <= len, negative counting
        from the end (PyTorch's ModuleList.insert breaks on those two cases: KeyError for a
        negative index, a gap in the numbering past the end)."""
        module = self._checked(module)
        items = self._items()
        index = _insert_position(index, len(items))
        self._reset(items[:index] + [module] + items[index:])

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
    parameters() and state dict; indexable, ``len``, iterable, ``append``/``extend``.
    As PyTorch's, it also holds other objects (None, numbers, ...) as plain attributes,
    outside parameters() and the state dict."""

    holds = Parameter

    def __init__(self, values=None):
        object.__setattr__(self, "_size", 0)  # (PyTorch's: items are attributes '0', ...)
        super().__init__(values)

    def __setstate__(self, state):
        super().__setstate__(state)
        if "_size" not in self.__dict__:   # (pickled when the items were kept in a list)
            object.__setattr__(self, "_size", len(self.__dict__.pop("_list", ())))

    def _table(self):
        return self._parameters

    def _items(self):
        return [getattr(self, str(i)) for i in range(self._size)]

    def __len__(self):
        return self._size

    def append(self, value):
        super().append(value)
        object.__setattr__(self, "_size", self._size + 1)
        return self

    def _checked(self, value):
        return _parameter_or_object(self, value)

    def extra_repr(self):
        return _parameter_lines(enumerate(self))


def _parameter_or_object(holder, value):
    """What a ParameterList/ParameterDict holds for value: a plain array (PyTorch's
    tensor) made a Parameter, a Parameter or any other object but a module as it is
    (PyTorch's)."""
    if isinstance(value, np.ndarray):
        return Parameter(value)
    if isinstance(value, Module):
        raise TypeError(f"{type(holder).__name__}: expected a Parameter, got "
                        f"{type(value).__name__}")
    return value


def _parameter_lines(items):
    """PyTorch's lines for a ParameterList/ParameterDict repr: '  (key): Parameter
    containing: [float32 of size 2x3]' (the device added on the GPU), '  (key): Object of
    type: NoneType' for what is not a Parameter."""
    lines = []
    for key, p in items:
        if not isinstance(p, Parameter):
            lines.append(f"  ({key}): Object of type: {type(p).__name__}")
            continue
        size = "x".join(str(n) for n in p.shape)
        where = " (cuda)" if p.device == "cuda" else ""
        lines.append(f"  ({key}): Parameter containing: [{p.dtype} of size {size}{where}]")
    return "\n".join(lines)


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
        table = self._table()
        if key not in table:
            raise MissingKeyError(key)
        return table[key]

    def __setitem__(self, key, value):
        value = self._checked(value)
        self._check_name(self._kind, key, self._table())
        setattr(self, key, value)

    def __delitem__(self, key):
        if key not in self._table():
            raise MissingKeyError(key)
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
        value = self[key]
        del self[key]
        return value

    def __reversed__(self):
        return reversed(list(self._table()))

    def clear(self):
        for key in list(self._table()):
            del self[key]

    def update(self, items):
        """Add (name, value) pairs from a mapping (or another ModuleDict/ParameterDict)
        or an iterable of pairs (PyTorch's errors for anything else)."""
        name = type(self).__name__
        if isinstance(items, (collections.abc.Mapping, _Dict)):
            pairs = list(items.items())
        elif isinstance(items, collections.abc.Iterable):
            pairs = []
            for j, pair in enumerate(items):
                if not isinstance(pair, collections.abc.Iterable):
                    raise TypeError(f"{name} update sequence element #{j} should be "
                                    f"Iterable; is {type(pair).__name__}")
                pair = tuple(pair)
                if len(pair) != 2:
                    raise ValueError(f"{name} update sequence element #{j} has length "
                                     f"{len(pair)}; 2 is required")
                pairs.append(pair)
        else:
            raise TypeError(f"{name}.update should be called with an iterable of key/value "
                            f"pairs, but got {type(items).__name__}")
        for key, value in pairs:
            self[key] = value


class ModuleDict(_Dict):
    """Modules by name (PyTorch's ModuleDict): their parameters and buffers belong to the
    owner under 'name.weight' etc.; ``d[name]``, ``keys()``, ``items()``, ``update``."""

    def __init__(self, modules=None):  # (PyTorch's keyword names, here and in update)
        super().__init__(modules)

    def update(self, modules):
        """Add (name, module) pairs from a mapping (or another ModuleDict) or an iterable
        of pairs (PyTorch's errors for anything else)."""
        super().update(modules)

    def _table(self):
        return self._modules

    holds = Module
    _kind = "module"


class ParameterDict(_Dict):
    """Parameters by name (PyTorch's ParameterDict), in the owner's parameters() and
    state dict; ``d[name]``, ``keys()``, ``items()``, ``update``. As PyTorch's, it also
    holds other objects (None, numbers, ...) as plain attributes, outside parameters()
    and the state dict; ``_keys`` keeps every key's place."""

    def __init__(self, parameters=None):  # (PyTorch's keyword name)
        _Holder.__init__(self)
        self._keys = OrderedDict()
        if parameters is not None:
            self.update(parameters)

    def _table(self):
        return OrderedDict((key, getattr(self, key)) for key in self._keys)

    holds = Parameter
    _kind = "parameter"

    def _checked(self, value):
        return _parameter_or_object(self, value)

    def __getitem__(self, key):
        if key not in self._keys:
            raise MissingKeyError(key)
        return getattr(self, key)

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self._keys[key] = None

    def __len__(self):
        return len(self._keys)

    def __iter__(self):
        return iter(self._keys)

    def __contains__(self, key):
        return key in self._keys

    def __delitem__(self, key):
        if key not in self._keys:
            raise MissingKeyError(key)
        del self._keys[key]
        self._parameters.pop(key, None)
        object.__delattr__(self, key)

    def extra_repr(self):
        return _parameter_lines(self.items())

    def __or__(self, other):
        """A copy updated with other (PyTorch's)."""
        out = self.copy()
        out.update(other)
        return out

    def __ror__(self, other):
        out = ParameterDict(other)
        out.update(self)
        return out

    def __ior__(self, other):
        self.update(other)
        return self

    def update(self, parameters):   # (PyTorch's keyword name)
        """As _Dict.update, but a plain dict's entries are added in sorted key order, as
        PyTorch's ParameterDict does (an OrderedDict, a ParameterDict or pairs keep
        theirs)."""
        if isinstance(parameters, dict) and not isinstance(parameters, OrderedDict):
            parameters = sorted(parameters.items())
        super().update(parameters)

    def copy(self):
        """A new ParameterDict holding the same Parameters (PyTorch's)."""
        return ParameterDict(OrderedDict((key, self[key]) for key in self))

    def get(self, key, default=None):
        """The Parameter under key, or default."""
        return self[key] if key in self else default

    def fromkeys(self, keys, default=None):
        """A new ParameterDict with default (a Parameter) under every key of keys
        (PyTorch's: an instance method, one shared Parameter)."""
        return ParameterDict((key, default) for key in keys)

    def popitem(self):
        """Remove and return the last inserted (key, Parameter) pair."""
        if not self._keys:
            raise KeyError("popitem(): dictionary is empty")
        key = next(reversed(self._keys))
        value = self[key]
        del self[key]
        return key, value

    def setdefault(self, key, default=None):
        """The Parameter under key; when there is none, default (a Parameter) is put
        there first."""
        if key not in self:
            self[key] = default
        return self[key]


def _insert_position(index, n):
    """An insert position into n items: -n <= index <= n (an IndexError otherwise),
    negative counting from the end, as a non-negative position."""
    index = operator.index(index)
    if not -n <= index <= n:
        raise IndexValueError(f"Index out of range: {index}")
    return index + n if index < 0 else index


def _feeding_opaque(steps, opaque):
    """(forward, backward): the steps whose output (forward) or input gradient
    (backward) reaches a user module (an opaque step; opaque: each step's flag) through
    passthrough steps only.
    They give fresh arrays, not their reused buffers: a user module may keep what it is
    given (a feature bank appending x, as PyTorch code keeps a tensor), which the next
    step would have overwritten. So does an opaque step that is no user module itself (a
    nested Sequential holding one): its layers would write into reused buffers too."""
    if True not in opaque:
        return (), ()
    found = []
    for towards in (-1, 1):
        fresh = set()
        for u in (u for u, o in enumerate(opaque) if o):
            j = u + towards
            while 0 <= j < len(steps):
                if opaque[j] or not steps[j][2]:   # (a user module's own array: its affair)
                    if not steps[j][0]._user_forward:
                        fresh.add(j)
                    break
                j += towards
        found.append(fresh)
    return tuple(found)


def _runs(module):
    """module and, for a Sequential, every layer it runs (those of nested ones too)."""
    yield module
    if isinstance(module, Sequential):
        for layer in module._layers:
            yield from _runs(layer)


def _run_step(layer, act, x, buffered):
    """One step of a Sequential's forward: layer on x, with the activation act fused into
    it (a Linear's) unless act is None."""
    if act is None:
        return layer._run_forward(x, buffered)
    name = act.fused_name
    # (only leaky_relu reads the slope; the other activations have none to read)
    y = layer._run_fused(x, buffered, name,
                         float(act.negative_slope) if name == "leaky_relu" else 0.01)
    object.__setattr__(act, "_out_meta", FUSED)  # the Linear did its work
    return y


def _last_computing(steps, default):
    """The index of the last step whose layer computes a new array (neither passes its
    input through nor is a user module), else default. (A loop: it runs every forward.)"""
    for j in range(len(steps) - 1, -1, -1):
        layer, _, through = steps[j]
        if not (through or layer._opaque):
            return j
    return default


def _first_computing(steps, default):
    """The index of the first such step (``_last_computing``), else default."""
    for j, (layer, _, through) in enumerate(steps):
        if not (through or layer._opaque):
            return j
    return default
