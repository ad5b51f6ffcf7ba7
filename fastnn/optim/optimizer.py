"""The Optimizer base: parameter groups, hyper-parameter checks, flat buffers, state.

Subclasses declare their hyper-parameters (``defaults``), check them (``_check``), name
their state buffers (``_state_names``) and apply one update to a flat bucket
(``_update``). Everything else lives here:

* parameter groups as in PyTorch (``params`` is an iterable of Parameters, or of dicts
  ``{"params": [...], "lr": ...}`` overriding the defaults per group; parameters may come
  as (name, parameter) pairs, ``model.named_parameters()``, whose names the group keeps
  under "param_names", in the state dict too);
* flat buffers: within each group, parameters of one dtype share one contiguous data
  buffer, one grad buffer and one buffer per state name (see ``flat.py``), so a step is
  one kernel call per (group, dtype);
* ``state_dict()`` / ``load_state_dict()`` in PyTorch's layout: ``{"state": {index:
  {"step": int, name: array}}, "param_groups": [{hyper-parameters..., "params":
  [indices]}]}``, indices counting parameters across groups in order.

Every check runs before anything is written: a bad hyper-parameter, a bad state dict or a
parameter that changed shape raises and leaves parameters and state as they were.
"""
import collections
import functools
import math
import numbers
import operator

import numpy as np

from .. import device as _device
from ..errors import IndexValueError, KeyValueError, RuntimeValueError, TypeValueError
from ..nn.module import Parameter, zero_grads_lazily
from ..validation import as_bool, float_of, plain_number
from .flat import build_buckets, check_parameter, check_untied, has_no_grad, raw_grad


#: Keys a learning-rate scheduler keeps in a param group beside the hyper-parameters
#: (as PyTorch's schedulers do): saved and loaded with the optimizer's state.
SCHEDULER_KEYS = ("initial_lr", "max_lr", "min_lr", "base_momentum", "max_momentum")


class Optimizer:
    """Base class of the optimizers. params: iterable of Parameters, of (name, Parameter)
    pairs or of group dicts."""

    #: hyper-parameter names a state dict's groups must carry (set by subclasses)
    hyperparameters = ()

    #: hyper-parameters fastnn's older state dicts may lack, with the values those had
    #: (filled in on load)
    _later_hyperparameters = {"maximize": False, "decoupled_weight_decay": False}

    #: maximize=True by negating the flat gradients around the update kernel, which take
    #: no such flag (PyTorch's rules negate the gradient first); optimizers whose kernels
    #: take maximize (Adadelta, Rprop, ASGD) leave it False
    _maximize_by_negation = False

    #: PyTorch keywords taken at the values fastnn implements (name -> accepted values,
    #: PyTorch's default first): implementation switches that change no result, and
    #: options at their defaults. Each group keeps them, as PyTorch's do (the value
    #: given, else the default); a group or a loaded state dict may set them too.
    torch_flags = {"maximize": (False,), "foreach": (None, False, True),
                   "differentiable": (False,), "fused": (None, False, True),
                   "capturable": (False, True)}

    def __init_subclass__(cls, **kwargs):
        """Every subclass's own step, state_dict and load_state_dict run the hooks
        registered with ``register_*_hook`` (as PyTorch patches its optimizers' step)."""
        super().__init_subclass__(**kwargs)
        for name, wrap in _HOOKED.items():
            if name in cls.__dict__:
                setattr(cls, name, wrap(cls.__dict__[name]))

    def __init__(self, params, defaults, flags=None):
        for name in _HOOK_TABLES:
            setattr(self, name, collections.OrderedDict())
        if _written_for_torch(type(self)):
            # a user's subclass written for PyTorch: as PyTorch's base class, no flags
            # added to its defaults and groups, and none checked (its own to read)
            self.torch_flags = {}
        flags = {name: self._check_flag(name, value) for name, value in (flags or {}).items()}
        if flags.get("fused") and flags.get("foreach"):  # (PyTorch's check, its words)
            raise RuntimeValueError(f"{self._name}: `fused` and `foreach` cannot be `True` "
                                    f"together.")
        self.defaults = _plain_numbers(defaults)
        self.defaults.update((name, flags.get(name, accepted[0]))
                             for name, accepted in self.torch_flags.items()
                             if name not in self.defaults)
        self._check(self.defaults)
        if isinstance(params, np.ndarray) or not hasattr(params, "__iter__"):
            raise TypeError(f"{self._name}: params must be an iterable of Parameters or of "
                            f"dicts, got {type(params).__name__}")
        params = list(params)
        if not params:  # (a group with no parameters is fine, as in PyTorch)
            raise ValueError(f"{self._name}: got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        groups = [self._make_group(g) for g in params]
        self._check_distinct([p for g in groups for p in g["params"]])
        self._check_untied([p for g in groups for p in g["params"]])
        self._check_names(groups)
        self.param_groups = []
        self._buckets = []
        self._installed = []  # per group: its parameters as its buckets hold them
        self._checked = []  # per group: the hyper-parameter values last found valid
        # ids of the parameters whose scalar state (_scalar_state) is in their own dtype
        # (loaded as arrays), not float32: see _scalar_type
        self._exact_scalars = set()
        for group in groups:
            self._install_group(group)

    @property
    def _name(self):
        return type(self).__name__

    # ------------------------------------------------------------------ hooks
    def _register(self, table, hook, prepend=False):
        from ..nn.module import RemovableHandle  # (fastnn.nn imports nothing of optim)
        hooks = getattr(self, table)
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        if prepend:
            hooks.move_to_end(handle.id, last=False)
        return handle

    def register_step_pre_hook(self, hook):
        """hook(optimizer, args, kwargs) -> None or (args, kwargs), called before each
        step with step's arguments, the optimizer first in args as in PyTorch (a result
        replaces them). Returns a handle whose remove() unregisters the hook."""
        return self._register("_optimizer_step_pre_hooks", hook)

    def register_step_post_hook(self, hook):
        """hook(optimizer, args, kwargs) -> None, called after each step."""
        return self._register("_optimizer_step_post_hooks", hook)

    def register_state_dict_pre_hook(self, hook, prepend=False):
        """hook(optimizer) -> None, called before state_dict() builds the state dict."""
        return self._register("_optimizer_state_dict_pre_hooks", hook, prepend)

    def register_state_dict_post_hook(self, hook, prepend=False):
        """hook(optimizer, state_dict) -> None or a state dict returned instead."""
        return self._register("_optimizer_state_dict_post_hooks", hook, prepend)

    def register_load_state_dict_pre_hook(self, hook, prepend=False):
        """hook(optimizer, state_dict) -> None or a state dict loaded instead."""
        return self._register("_optimizer_load_state_dict_pre_hooks", hook, prepend)

    def register_load_state_dict_post_hook(self, hook, prepend=False):
        """hook(optimizer) -> None, called after load_state_dict()."""
        return self._register("_optimizer_load_state_dict_post_hooks", hook, prepend)

    @property
    def state(self):
        """PyTorch's ``optimizer.state``: a defaultdict(dict) {parameter: its state}
        holding each parameter that has state, as the state dict does; its arrays are
        views of the optimizer's buffers (writing into them changes its state), the step
        and scalar states copies."""
        if _written_for_torch(type(self)):
            # a user's subclass written for PyTorch (its own step() keeping
            # self.state[p]): a dict that keeps what it is given
            return self.__dict__.setdefault("_user_state", collections.defaultdict(dict))
        out = collections.defaultdict(dict)
        for _, param, entry in self._state_entries(views=True):
            out[param] = entry
        return out

    def __repr__(self):
        lines = [f"{self._name} ("]
        for i, group in enumerate(self.param_groups):
            lines += [""] if i else []  # (PyTorch's blank line between groups)
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        return "\n".join(lines + [")"])

    # ---------------------------------------------------------------- groups
    def _make_group(self, group):
        if not isinstance(group, dict):
            raise TypeError(f"{self._name}: a parameter group must be a dict with a 'params' "
                            f"entry, got {type(group).__name__}")
        if "params" not in group:   # (PyTorch's KeyError: 'params')
            raise KeyValueError(f"{self._name}: a parameter group must be a dict with a "
                                f"'params' entry, got one with keys {sorted(map(str, group))}")
        # keys that are no hyper-parameter of this optimizer (a group's name, a tag) are
        # kept as the group's own data, as PyTorch keeps them, and saved with it
        plist = group["params"]
        if isinstance(plist, set):  # (PyTorch's TypeError: a set has no stable order)
            raise TypeError(f"{self._name}: optimizer parameters need to be organized in "
                            f"ordered collections, but the ordering of tensors in sets will "
                            f"change between runs. Please use a list instead.")
        plist = [plist] if hasattr(plist, "data") and hasattr(plist, "grad") else list(plist)
        plist, names = self._split_names(plist)
        # an empty list is a group too (PyTorch's: its hyper-parameters kept, nothing
        # stepped); only an optimizer with no group at all is refused, in __init__
        for i, p in enumerate(plist):
            check_parameter(self._name, p, i)
        full = dict(self.defaults)
        full.update(_plain_numbers({k: v for k, v in group.items() if k != "params"}))
        for name in self.torch_flags:
            if name in group:
                full[name] = self._check_flag(name, group[name])
        self._check(full)
        full["params"] = plist
        if names is not None:
            full["param_names"] = names
        elif "param_names" in full:
            full["param_names"] = list(full["param_names"])
        return full

    def _split_names(self, plist):
        """(parameters, names or None) of a group's list: PyTorch's named form, (name,
        parameter) pairs as ``model.named_parameters()`` gives, or parameters alone."""
        named = [isinstance(p, tuple) and len(p) == 2 for p in plist]
        if not any(named):
            return plist, None
        if not all(named):
            raise ValueError(f"{self._name}: all parameters of a group should be with names, "
                             f"(name, parameter) pairs, or without; some names are missing")
        return [p for _, p in plist], [name for name, _ in plist]

    def _check_names(self, groups):
        """Every group with names (a 'param_names' entry) or none, as PyTorch's."""
        if len({"param_names" in g for g in groups}) > 1:
            raise ValueError(f"{self._name}: all parameter groups should be with names or "
                             f"without; cannot mix the two")

    def _check_distinct(self, params):
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{self._name}: some parameters appear more than once "
                             f"(in one group or across groups)")

    def _check_untied(self, params):
        # before any group is installed: installing one copies its parameters into
        # flat buffers, which unties them from the next group's
        check_untied(self._name, params, range(len(params)))

    def _group_start(self, gi):
        return sum(len(g["params"]) for g in self.param_groups[:gi])

    def _install_group(self, group):
        self.param_groups.append(group)
        self._installed.append(list(group["params"]))
        self._checked.append(None)
        gi = len(self.param_groups) - 1
        self._buckets.append(build_buckets(group["params"], self._group_start(gi),
                                           self._scalar_state))

    def add_param_group(self, param_group):
        """Add a group of parameters (a dict with 'params', a list that may be empty, and
        optional hyper-parameters)."""
        group = self._make_group(param_group)
        self._check_distinct([p for g in self.param_groups for p in g["params"]]
                             + group["params"])
        self._check_untied([p for g in self.param_groups for p in g["params"]]
                           + group["params"])
        self._check_names(self.param_groups + [group])
        self._install_group(group)

    # ------------------------------------------------------- hyper-parameter checks
    def _check(self, group):
        """Raise ValueError naming the optimizer, argument and value for a bad one (each
        of fastnn's optimizers checks its own; a user's subclass may leave it)."""

    def _check_flag(self, name, value):
        """A PyTorch keyword of ``torch_flags`` at a value fastnn implements (an int 0 or
        1 or a NumPy bool read as the bool, as PyTorch reads it by its truth), returned
        as that value; else an error."""
        if name not in self.torch_flags:
            raise TypeError(f"{self._name}.__init__() got an unexpected keyword argument "
                            f"{name!r}")
        accepted = self.torch_flags[name]
        if value is None and None not in accepted and name != "differentiable":
            # PyTorch reads None by its truth, as False (differentiable=None fails in
            # its step: set_grad_enabled takes only a bool)
            value = False
        found = _flag_value(value, accepted)
        if found is _MISSING:
            shown = " or ".join(repr(v) for v in self.torch_flags[name])
            # differentiable=True: PyTorch's step raises RuntimeError on leaf parameters
            # (a leaf Variable ... used in an in-place operation), as every trained one is
            error = RuntimeValueError if name == "differentiable" else ValueError
            raise error(f"{self._name}: {name}={value!r} is not supported (only {shown})")
        return found

    def _real(self, name, value):
        value = plain_number(value)
        if isinstance(value, np.ndarray):
            raise _array_error(self._name, name, value)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{self._name}: expected {name} to be a real number, "
                            f"got {value!r} ({type(value).__name__})")
        return float_of(self._name, name, value)

    def _at_least(self, name, value, low, low_ok=True):
        v = self._real(name, value)
        if not (v >= low if low_ok else v > low) or math.isinf(v):
            bound = ">=" if low_ok else ">"
            raise ValueError(f"{self._name}: invalid {name}: {value!r} "
                             f"({torch_invalid(name, value)}; expected a finite value "
                             f"{bound} {low})")

    def _unit(self, name, value):
        v = self._real(name, value)
        if not 0.0 <= v < 1.0:
            raise ValueError(f"{self._name}: invalid {name}: {value!r} "
                             f"({torch_invalid(name, value)}; expected 0 <= {name} < 1)")

    def _betas(self, group):
        """The group's betas, a pair of numbers in [0, 1), as floats."""
        betas = group["betas"]
        check_pair(self._name, "betas", betas, "(beta1, beta2)")
        self._unit("betas[0]", betas[0])
        self._unit("betas[1]", betas[1])
        return float(betas[0]), float(betas[1])

    @staticmethod
    def _decoupled_decay(kernels, data, group):
        """p *= 1 - lr * weight_decay (AdamW's decay; NAdam's and RAdam's decoupled one), as
        PyTorch's p.mul_(1 - lr wd): an infinite parameter stays infinite (p - rate p, the
        sgd_update kernel with the parameters as their own gradient, made it NaN; that
        kernel still runs it on device arrays)."""
        rate = float(group["lr"]) * float(group["weight_decay"])
        if rate and isinstance(data, np.ndarray):
            data *= data.dtype.type(1.0 - rate)
        elif rate:
            kernels.sgd_update(data, data, None, rate, 0.0, 0.0, False)

    def _flag(self, group, name):
        """A bool hyper-parameter of the group (a bool, a NumPy bool, the int 0 or 1 or
        None, which PyTorch reads by its truth: kept in the group as the Python bool,
        None as False), or a TypeError."""
        value = False if group[name] is None else as_bool(group[name])
        if value is None:
            raise TypeError(f"{self._name}: expected {name} to be a bool, got {group[name]!r}")
        if group[name] is not value:
            group[name] = value
        return value

    # ------------------------------------------------------------------- step
    def zero_grad(self, set_to_none=True):
        """Set every parameter's .grad to zero.

        Gradients stay arrays (layers accumulate into ``.grad`` in place), not None as
        PyTorch's default makes them; they read as zeros either way. After
        set_to_none=True, ``step`` skips a parameter no backward has reached since (as
        PyTorch skips a None grad); reading its ``.grad`` first writes the zeros, and it
        is then stepped with them. set_to_none=True
        (the default) writes the zeros lazily, as ``Module.zero_grad`` does: the next
        Linear backward overwrites its gradients instead of adding to zeros, and any
        other read of ``.grad`` (a layer's backward, ``step``) writes the zeros first.
        On the GPU too: an array the user took from ``.grad`` before the call keeps its
        values until a backward or a read writes it, as on the CPU (a PyTorch gradient
        kept across ``zero_grad()`` keeps its values for good, since PyTorch makes a new
        one: keep ``p.grad.copy()`` here), at the cost of a fill launch for each
        parameter a layer other than Linear reads. set_to_none=False writes them
        now (one fill per flat buffer).
        """
        lazy_params = []
        for buckets in self._buckets:
            for bucket in buckets:
                if set_to_none:
                    lazy_params.extend(bucket.params)
                    continue
                bucket.ns.fill_zero(bucket.grad)
                for p, view in zip(bucket.params, bucket.grad_views):
                    grad = raw_grad(p)
                    if grad is not None and grad is not view:
                        _device.namespace_of(grad).fill_zero(grad)
        zero_grads_lazily(lazy_params)

    def step(self, closure=None):
        """Apply one update to every parameter that has a gradient.

        closure: optional callable re-evaluating the model and returning the loss, called
        first. Parameters no backward gave a gradient since they were made, since
        zero_grad() or since ``p.grad = None`` are skipped, as PyTorch skips a None
        grad; so are those whose requires_grad is False (PyTorch, which does not look at
        requires_grad, would still move them by momentum or weight decay when their grad
        is a zero array, after zero_grad(set_to_none=False)). NaN or inf in a
        gradient propagates into the parameters (nothing is skipped silently), except
        through Rprop's sign step (PyTorch's: torch.sign(NaN) is 0).
        Returns the closure's loss, or None. On the base class itself (no update rule),
        NotImplementedError, as PyTorch's ``Optimizer.step``.
        """
        if type(self)._update is Optimizer._update:
            raise NotImplementedError(f"{self._name}.step: the base class has no update "
                                      f"rule; a subclass defines step()")
        loss = closure() if closure is not None else None
        self._check_groups()
        plans = [[bucket.inspect(self._name) for bucket in buckets]
                 for buckets in self._buckets]
        for gi, group in enumerate(self.param_groups):
            if any(regroup for _, regroup, _ in plans[gi]):
                self._regroup(gi)
                plans[gi] = [b.inspect(self._name) for b in self._buckets[gi]]
            ascent = self._maximize_by_negation and group["maximize"]
            for bucket, (intact, _, missing_grad) in zip(self._buckets[gi], plans[gi]):
                kernels = _device.kernels(bucket.ns.name)  # where the bucket lives
                if not intact:
                    bucket.rehome(self._name)
                if ascent:
                    _device.scaled(bucket.grad, -1.0)
                try:
                    if missing_grad:
                        self._update_each(kernels, bucket, group)
                    else:
                        self._update(kernels, bucket, group)
                finally:
                    if ascent:  # negation is exact: the gradients are restored bit for bit
                        _device.scaled(bucket.grad, -1.0)
        return loss

    def _check_groups(self):
        """Check every group's hyper-parameters, skipping groups unchanged since last time.

        A user (or a learning-rate schedule) may edit ``param_groups`` between steps; the
        full check costs microseconds, a tuple comparison much less. NaN never compares
        equal, so a NaN is always re-checked (and rejected).
        """
        self._check_installed()
        values_of = _values_getter(tuple(self.hyperparameters))   # (a subclass's list too)
        for gi, group in enumerate(self.param_groups):
            try:
                values = values_of(group)
            except KeyError as exc:
                raise ValueError(f"{self._name}: parameter group {gi} lost its "
                                 f"hyper-parameter {exc.args[0]!r}") from None
            if values != self._checked[gi]:
                self._check(group)
                self._checked[gi] = values

    def _check_installed(self):
        """RuntimeError when param_groups no longer lists the parameters the optimizer's
        flat buffers were built for (a group removed, a parameter appended to or removed
        from a group's list): PyTorch steps whatever the lists hold, and a step of the
        buffers would silently update the old ones."""
        groups, installed = self.param_groups, self._installed
        if len(groups) == len(installed):
            for group, params in zip(groups, installed):
                now = group["params"]
                if len(now) != len(params) or not all(map(operator.is_, now, params)):
                    break
            else:
                return
        raise RuntimeError(
            f"{self._name}: param_groups no longer hold the parameters the optimizer "
            f"was built with (fastnn's optimizers keep flat buffers per group): add "
            f"parameters with add_param_group(), or build a new optimizer")

    def _update(self, kernels, bucket, group):
        """One kernel call updating the whole bucket, then advance its step counts."""
        raise NotImplementedError

    def _update_one(self, kernels, bucket, i, group):
        """Update parameter i of the bucket alone (its views), then advance its step."""
        raise NotImplementedError

    def _update_at_step(self, kernels, bucket, group):
        """``_update`` of optimizers whose rule depends on the step count (Adam, Adagrad):
        one ``_step_bucket`` call for the whole bucket when its parameters share a step
        count, else one update per parameter (after partial steps or a mixed state load)."""
        steps = bucket.steps
        if steps and min(steps) != max(steps):
            self._update_each(kernels, bucket, group)
            return
        if bucket.size:
            self._step_bucket(kernels, bucket, group, (steps[0] if steps else 0) + 1)
        else:  # (no kernel call for zero-size parameters alone)
            for i, step in enumerate(steps):
                self._step_empty(bucket, i, group, step + 1)
        bucket.steps = [s + 1 for s in steps]

    def _update_each(self, kernels, bucket, group):
        """Slow path when some parameter has no gradient (None, or zeros pending from
        zero_grad that no backward touched) or is frozen: update the others one by one."""
        for i, p in enumerate(bucket.params):
            if has_no_grad(p):
                continue
            if bucket.offsets[i + 1] > bucket.offsets[i]:
                self._update_one(kernels, bucket, i, group)
            else:
                self._step_empty(bucket, i, group, bucket.steps[i] + 1)
                bucket.steps[i] += 1

    def _step_empty(self, bucket, i, group, step):
        """Step ``step`` of parameter i, a zero-size one, which no kernel updates: its
        scalar state advances as PyTorch's does (NAdam's mu_product); else nothing."""

    def _regroup(self, gi):
        """Rebuild group gi's buckets after a parameter changed dtype or device, keeping
        its state (converted, and copied to the new device)."""
        saved = {}
        for bucket in self._buckets[gi]:
            for i, p in enumerate(bucket.params):
                saved[id(p)] = (bucket.steps[i], bucket.param_state(i))
        buckets = build_buckets(self.param_groups[gi]["params"], self._group_start(gi),
                                self._scalar_state)
        for bucket in buckets:
            for i, p in enumerate(bucket.params):
                step, state = saved[id(p)]
                bucket.set_param_state(i, step, *self._split_state(state))
        self._buckets[gi] = buckets

    # ------------------------------------------------------------------ state
    def _state_names(self, group):
        """Names of the per-parameter state arrays this optimizer keeps for a group."""
        raise NotImplementedError

    def _locate(self):
        """(group index, bucket, index in bucket) of every parameter, in state-dict order
        (the RuntimeError of _check_installed where param_groups were edited by hand: a
        KeyError of a parameter's id before)."""
        self._check_installed()
        where = {}
        for gi, buckets in enumerate(self._buckets):
            for bucket in buckets:
                for i, p in enumerate(bucket.params):
                    where[id(p)] = (gi, bucket, i)
        return [where[id(p)] for group in self.param_groups for p in group["params"]]

    def _saved_groups(self):
        """The param groups as a state dict holds them: hyper-parameters (lists copied,
        still lists: betas=[0.9, 0.99] stays a list, as in PyTorch's) and "params" as the
        parameters' running indices, as in PyTorch."""
        groups, start = [], 0
        for group in self.param_groups:
            entry = {k: (list(v) if isinstance(v, list) else v)
                     for k, v in group.items() if k != "params"}
            entry["params"] = list(range(start, start + len(group["params"])))
            start += len(group["params"])
            groups.append(entry)
        return groups

    def state_dict(self):
        """The optimizer's state (copies): {"state", "param_groups"} as in PyTorch, and
        "type", the class name, which load_state_dict checks (PyTorch's has no such key)."""
        groups = self._saved_groups()
        if _written_for_torch(type(self)):
            state = self._user_state_dict()
        else:
            state = {index: entry for index, _, entry in self._state_entries(views=False)}
        return {"type": self._name, "state": state, "param_groups": groups}

    def _user_state_dict(self):
        """A user's subclass's ``self.state`` as PyTorch's state_dict packs it: each
        parameter's entry (whatever it holds: arrays copied, numbers, nested lists and
        dicts) under the parameter's position; a key that is no parameter as it is."""
        position = {id(p): i for i, p in enumerate(
            p for group in self.param_groups for p in group["params"])}
        state = {}
        for key, entry in self.state.items():
            if id(key) in position:
                state[position[id(key)]] = _copied(entry)
            elif hasattr(key, "data") and hasattr(key, "grad"):
                raise ValueError(f"{self._name}.state_dict: self.state holds a parameter "
                                 f"that is in none of the param groups")
            else:
                state[key] = _copied(entry)
        return state

    def _state_entries(self, views):
        """(position, parameter, state entry) of each parameter with a non-empty entry
        (it has taken a step): its arrays views of the optimizer's buffers (views) or
        copies, its scalar states 0-d arrays, as PyTorch's 0-d tensors."""
        for index, (gi, bucket, i) in enumerate(self._locate()):
            if bucket.steps[i] == 0 and not self._listed_before_step(index):
                continue
            if views:
                values = {name: bucket.view(buf, i) for name, buf in bucket.state.items()}
                values.update((name, v[i]) for name, v in bucket.scalars.items())
            else:
                values = bucket.param_state(i)
            for name in bucket.scalars:
                values[name] = np.array(values[name], self._scalar_type(bucket, i))
            if not bucket.offsets[i + 1] > bucket.offsets[i]:
                # zero-size parameters alone in their bucket, which no kernel call
                # allocated state for: PyTorch's entry still holds their empty arrays
                values.update((name, np.zeros(bucket.shapes[i], bucket.dtype))
                              for name in self._state_names(self.param_groups[gi])
                              if name not in values)
            entry = self._saved_state(bucket.steps[i], values, self.param_groups[gi])
            if entry:
                yield index, bucket.params[i], entry

    def _saved_state(self, step, state, group):
        """A parameter's state-dict entry: its step, then its state in PyTorch's order
        (that of ``_state_names``)."""
        order = ("step",) + tuple(self._state_names(group)) + tuple(self._optional_state)
        entry = {"step": step, **state}
        return {k: entry[k] for k in sorted(entry, key=lambda k: (
            order.index(k) if k in order else len(order)))}

    def _state_dict_parts(self, state_dict):
        """(where, groups, state) of a state dict whose outer layout, optimizer type and
        param groups are checked (the groups' hyper-parameters validated)."""
        where = f"{self._name}.load_state_dict"
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            raise ValueError(f"{where}: expected a dict with 'state' and 'param_groups', "
                             f"got {type(state_dict).__name__}")
        kind = state_dict.get("type", self._name)
        if kind != self._name:
            raise ValueError(f"{where}: the state dict belongs to a {kind} optimizer, "
                             f"not to {self._name}")
        groups = self._validate_groups(where, state_dict["param_groups"])
        state = state_dict["state"]
        if not isinstance(state, dict):
            raise ValueError(f"{where}: 'state' must be a dict, got {type(state).__name__}")
        return where, groups, state

    def validate_state_dict(self, state_dict):
        """Check a state dict against this optimizer's parameters; raise, change nothing.

        Returns the normalised (groups, state) load_state_dict applies: groups is a list of
        hyper-parameter dicts, state maps index -> (step, {name: array}).
        """
        where, groups, saved_state = self._state_dict_parts(_positional_ids(state_dict))
        if _written_for_torch(type(self)):
            return groups, self._validate_user_state(where, saved_state)
        located = self._locate()
        state = {}
        for key, entry in saved_state.items():
            index = _state_index(where, key, len(located))
            gi, bucket, i = located[index]
            state[index] = self._validate_param_state(f"{where}: parameter {index}", entry,
                                                      bucket.shapes[i], groups[gi])
        return groups, state

    def _validate_user_state(self, where, saved_state):
        """A user's subclass's saved state as its ``self.state`` will hold it: {parameter
        or other key: entry}, PyTorch's rule: the entry of the parameter at each index
        (an int, or its string as a checkpoint holds it) with its arrays cast to the
        parameter's dtype (new arrays) but a 'step' kept as saved; other keys as they
        are. An index past the parameters is a ValueError."""
        params = [p for group in self.param_groups for p in group["params"]]
        state = {}
        for key, entry in saved_state.items():
            if _as_index(key) is None:
                state[key] = _copied(entry)
                continue
            index = _state_index(where, key, len(params))
            try:
                state[params[index]] = _cast_state(params[index], entry)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{where}: parameter {index}: its state cannot be cast to "
                                 f"the parameter's dtype: {exc}") from None
        return state

    def _validate_groups(self, where, saved_groups):
        """The saved groups' hyper-parameters, checked against this optimizer's groups."""
        if not isinstance(saved_groups, (list, tuple)):
            raise ValueError(f"{where}: 'param_groups' must be a list, "
                             f"got {type(saved_groups).__name__}")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{where}: expected {len(self.param_groups)} parameter group(s), "
                             f"got {len(saved_groups)}")
        groups, start = [], 0
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            n = len(group["params"])
            if not isinstance(saved, dict):
                raise ValueError(f"{where}: parameter group {gi} is not a dict")
            saved = {**{k: v for k, v in self._later_hyperparameters.items()
                        if k in self.hyperparameters}, **saved}
            ids = list(saved.get("params", ()))
            if len(ids) != n:
                raise ValueError(f"{where}: parameter group {gi} holds {len(ids)} "
                                 f"parameters in the state dict but {n} in this optimizer")
            if ids != list(range(start, start + n)):
                # (ids other than 0, 1, ... are renumbered by position before, as
                # PyTorch maps them: these are ids listed twice)
                raise ValueError(f"{where}: parameter group {gi} lists parameter ids "
                                 f"{ids} in the state dict; expected distinct ids, one "
                                 f"per parameter across the groups")
            start += n
            missing = [k for k in self.hyperparameters if k not in saved]
            flags = {k: v for k, v in saved.items() if k in self.torch_flags}
            if missing:   # (other keys are the group's own data: kept, as PyTorch keeps them)
                raise ValueError(f"{where}: parameter group {gi}: missing hyper-parameters "
                                 f"{missing}")
            # (lists stay lists, copied, as PyTorch's deepcopy of the saved groups; the
            # param_names they hold replace the group's, as in PyTorch)
            hyper = {k: (list(v) if isinstance(v, list) else plain_number(v))
                     for k, v in saved.items() if k != "params"}
            try:
                for name, value in flags.items():
                    hyper[name] = self._check_flag(name, value)
                self._check(hyper)
                if "initial_lr" in hyper:
                    self._at_least("initial_lr", hyper["initial_lr"], 0.0)
            except (ValueError, TypeError) as exc:
                raise type(exc)(f"{where}: parameter group {gi}: {exc}") from None
            groups.append(hyper)
        return groups

    def _split_state(self, state):
        """({name: array}, {name: float}) of a parameter's state: arrays and scalars."""
        return ({k: v for k, v in state.items() if k not in self._scalar_state},
                {k: v for k, v in state.items() if k in self._scalar_state})

    def _validate_param_state(self, where, entry, shape, group):
        """(step, {name: array or float}) of one parameter's saved state, checked."""
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: its state is not a dict")
        if "step" not in entry and entry and self._step_saved:
            # (PyTorch's load raises KeyError: 'step'; a default of 1 would restart the
            # bias corrections and schedules that count steps)
            raise KeyValueError(f"{where}: missing state 'step' ({self._name} keeps each "
                                f"parameter's step count with its state)")
        step = as_count(entry.get("step", 1 if entry else 0))  # (SGD's: a buffer is >= 1)
        if step is None:
            raise ValueError(f"{where}: step must be an int >= 0, got {entry['step']!r}")
        allowed = (set(self._state_names(group)) | set(self._optional_state)
                   | set(self._scalar_state))
        arrays = {}
        for name, value in entry.items():
            if name == "step":
                continue
            if name in self._scalar_state:
                value = np.asarray(value)
                if value.size != 1 or value.dtype.kind not in "fiu" \
                        or not np.isfinite(value).all():
                    raise ValueError(f"{where}: state {name!r} must be a finite number, "
                                     f"got {value!r}")
                arrays[name] = float(value.reshape(()))
                continue
            if name not in allowed:
                raise ValueError(f"{where}: unexpected state {name!r}; "
                                 f"expected {sorted(allowed)}")
            value = np.asarray(value)
            if value.dtype.kind != "f" or value.shape != shape:
                raise ValueError(f"{where}: state {name!r} must be a float array of shape "
                                 f"{shape}, got {value.dtype} {value.shape}")
            arrays[name] = value
        required = [n for n in self._state_names(group) if n not in arrays]
        if required and step > 0 and math.prod(shape):  # (an empty parameter has none)
            raise ValueError(f"{where}: missing state {required}")
        return int(step), arrays

    #: whether a parameter's state-dict entry holds its 'step' (PyTorch's SGD's does not);
    #: loading a non-empty entry without one is then an error, as in PyTorch
    _step_saved = True
    #: state names accepted on load even when the group's settings do not use them
    _optional_state = ()
    #: whether every parameter has a state entry from the start (step 0), as PyTorch's
    #: Adagrad makes it in its constructor; else only those that have stepped
    _eager_state = False

    def _listed_before_step(self, index):
        """Whether parameter ``index`` (its position) has a state entry before its first
        step: ``_eager_state``'s rule for every parameter, unless a subclass says
        otherwise for some."""
        return self._eager_state

    #: per-parameter state that is one number (FlatBucket.scalars), not an array:
    #: {name: its value before the first step}
    _scalar_state = {}

    def load_state_dict(self, state_dict):
        """Load hyper-parameters and state (copied in); a bad state dict changes nothing."""
        groups, state = self.validate_state_dict(state_dict)
        for group, hyper in zip(self.param_groups, groups):
            group.update(hyper)
        if _written_for_torch(type(self)):  # (PyTorch's: the state replaced as a whole)
            self._user_state = collections.defaultdict(dict, state)
            return
        raw = {_as_index(k): v for k, v in state_dict["state"].items()}
        exact = set()
        for index, (_, bucket, i) in enumerate(self._locate()):
            step, saved = state.get(index, (0, {}))
            arrays, scalars = self._split_state(saved)
            if scalars and all(not isinstance(raw[index][k], numbers.Number) for k in scalars):
                exact.add(id(bucket.params[i]))
            else:
                scalars = {k: float(np.float32(v)) for k, v in scalars.items()}
            bucket.set_param_state(i, step, arrays, scalars)
        self._exact_scalars = exact

    def _scalar_type(self, bucket, i):
        """The NumPy type parameter i's scalar state (NAdam's mu_product, ASGD's eta and
        mu) is rounded to after each update, as PyTorch keeps it in a 0-d tensor: of its
        default dtype, float32, when the optimizer creates it (or loads it from a number);
        of the parameter's dtype once loaded from a tensor (an array here), which its
        load_state_dict casts to the parameter's dtype."""
        return bucket.dtype.type if id(bucket.params[i]) in self._exact_scalars else np.float32

    def _uniform_scalar_type(self, bucket):
        """Whether every parameter of the bucket rounds its scalar state alike."""
        return len({self._scalar_type(bucket, i) for i in range(len(bucket.params))}) <= 1


#: PyTorch's words for a bad hyper-parameter in its ValueError (``Invalid learning rate:
#: -1.0``), which fastnn's message quotes; other names: ``Invalid <name> value: <value>``
_TORCH_INVALID = {"lr": "Invalid learning rate: {}", "eps": "Invalid epsilon value: {}",
                  "betas[0]": "Invalid beta parameter at index 0: {}",
                  "betas[1]": "Invalid beta parameter at index 1: {}"}


def check_pair(where, name, value, expected, indexed=True):
    """Nothing when value is a pair (a tuple or list of two); else PyTorch's error
    type for it: TypeValueError for a value that is no sequence (PyTorch's ``betas[0]``
    on a number is a TypeError), IndexValueError for one of fewer than two items when
    PyTorch indexes it (``indexed``: betas, etas, Adafactor's eps; its IndexError), else
    ValueError (PyTorch's unpacking ``a, b = value`` at the step)."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return
    message = f"{where}: invalid {name}: {value!r} (expected a pair {expected})"
    if not isinstance(value, (tuple, list)):
        raise TypeValueError(message)
    if indexed and len(value) < 2:
        raise IndexValueError(message)
    raise ValueError(message)


def _array_error(where, name, value):
    """The error for an array hyper-parameter that is not one number: PyTorch's
    ValueError for an lr tensor of another size ("Tensor lr must be 1-element"), and
    fastnn's TypeError for a value that is no real number."""
    torch_words = "; Tensor lr must be 1-element" if name == "lr" else ""
    return TypeValueError(f"{where}: expected {name} to be a real number, got an array of "
                          f"shape {value.shape}{torch_words}")


def torch_invalid(name, value):
    """PyTorch's message for the bad hyper-parameter ``name`` (its value as str())."""
    return _TORCH_INVALID.get(name, "Invalid " + name + " value: {}").format(value)


#: Optimizer.torch_flags less ``maximize``: the torch_flags of the optimizers that
#: implement maximize=True, where it is a hyper-parameter.
FLAGS_WITHOUT_MAXIMIZE = {k: v for k, v in Optimizer.torch_flags.items() if k != "maximize"}


def torch_flags_of(*names):
    """The torch_flags of an optimizer whose PyTorch counterpart takes (and keeps in its
    groups) these keywords: any other is an unexpected keyword, as in PyTorch."""
    return {name: Optimizer.torch_flags[name] for name in names}


_MISSING = object()


def _flag_value(value, accepted):
    """The value of accepted that value stands for, or _MISSING: None by identity; a bool
    as given, as a NumPy bool or as the int 0 or 1 (PyTorch reads its flags by their
    truth); a number by value."""
    as_flag = as_bool(value)
    if isinstance(value, np.generic):
        value = value.item()
    for a in accepted:
        if a is None:
            if value is None:
                return a
        elif isinstance(a, bool):
            if as_flag is a:
                return a
        elif isinstance(value, numbers.Real) and not isinstance(value, bool) and value == a:
            return a
    return _MISSING


def _copied(value):
    """A copy of a user's state value: arrays (host copies of device ones) copied, dicts,
    lists and tuples rebuilt around copies, anything else (numbers, strings) as it is."""
    if isinstance(value, np.ndarray) or _device.is_device_array(value):
        return np.array(_device.to_host(value), copy=True)
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copied(v) for v in value)
    return value


def _cast_state(param, value, key=None):
    """PyTorch's load_state_dict rule for a user's state value: an array (or anything
    with ``__array__``, a torch tensor say) becomes a new array on the parameter's
    device, of the parameter's dtype unless it is a 'step'; dicts, lists and tuples are
    cast item by item; anything else (numbers, strings) is kept."""
    if isinstance(value, dict):
        return {k: _cast_state(param, v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cast_state(param, v, key) for v in value)
    if isinstance(value, (str, bytes, numbers.Number, np.generic)) or value is None \
            or not (hasattr(value, "__array__") or _device.is_device_array(value)):
        return value
    array = np.asarray(_device.to_host(value))
    if key != "step" and array.dtype.kind in "biuf":
        array = array.astype(param.data.dtype)
    array = np.array(array, copy=True)
    return _device.namespace_of(param.data).put(array)


def _written_for_torch(cls):
    """Whether cls is a user's subclass written for PyTorch: no fastnn optimizer but the
    base Optimizer among its classes (its own step() keeping ``self.state[p]``)."""
    return not any(c is not Optimizer and c.__module__.startswith("fastnn.")
                   for c in cls.__mro__[:-1])


def _plain_numbers(hyper):
    """A copy of a dict of hyper-parameters with its 0-d numeric arrays as numbers, and
    an lr that is a one-element array of any shape too (PyTorch's check on a tensor lr
    is its size, 1: ``lr=torch.tensor([0.1])`` steps as 0.1)."""
    out = {k: plain_number(v) for k, v in hyper.items()}
    lr = out.get("lr")
    if isinstance(lr, np.ndarray) and lr.size == 1 and lr.dtype.kind in "biuf":
        out["lr"] = lr.item()
    return out


_HOOK_TABLES = ("_optimizer_step_pre_hooks", "_optimizer_step_post_hooks",
                "_optimizer_state_dict_pre_hooks", "_optimizer_state_dict_post_hooks",
                "_optimizer_load_state_dict_pre_hooks",
                "_optimizer_load_state_dict_post_hooks")


def _hooks(opt, table):
    hooks = opt.__dict__.get(table)   # (made by __init__; an empty one: no hooks)
    return list(hooks.values()) if hooks else ()


@functools.lru_cache(maxsize=None)
def _values_getter(hyperparameters):
    """A function giving a group's values of these hyper-parameter names (a tuple, or
    the one value), made once per tuple of names."""
    if not hyperparameters:
        return lambda group: ()
    return operator.itemgetter(*hyperparameters)


def _outermost(method):
    """method(self, ...) that, called again inside itself (a subclass's method calling
    super()'s), runs the inner call bare: hooks run once per user call."""
    def decorate(wrapper):
        @functools.wraps(method)
        def guarded(self, *args, **kwargs):
            running = self.__dict__.get("_hooks_running")
            if running is None:
                running = self.__dict__["_hooks_running"] = set()
            if method.__name__ in running:
                return method(self, *args, **kwargs)
            running.add(method.__name__)
            try:
                return wrapper(self, *args, **kwargs)
            finally:
                running.discard(method.__name__)
        return guarded
    return decorate


def _hooked_step(step):
    @_outermost(step)
    def wrapper(self, *args, **kwargs):
        if self.__dict__.get("_step_watched"):
            # a scheduler was built on this optimizer: PyTorch's mark that step() ran,
            # which the scheduler's first step() looks for (lr_scheduler's warning)
            self._opt_called = True
        args = (self,) + args  # PyTorch's hooks see step's arguments with the optimizer
        for hook in _hooks(self, "_optimizer_step_pre_hooks"):
            result = hook(self, args, kwargs)
            if result is not None:
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise RuntimeValueError(
                        f"{type(self).__name__}: a step pre-hook must return "
                        f"None or a tuple (new_args, new_kwargs), "
                        f"got {result!r}")
                args, kwargs = result
        out = step(*args, **kwargs)
        for hook in _hooks(self, "_optimizer_step_post_hooks"):
            hook(self, args, kwargs)
        return out
    return wrapper


def _hooked_state_dict(state_dict):
    @_outermost(state_dict)
    def wrapper(self):
        for hook in _hooks(self, "_optimizer_state_dict_pre_hooks"):
            hook(self)
        out = state_dict(self)
        for hook in _hooks(self, "_optimizer_state_dict_post_hooks"):
            result = hook(self, out)
            if result is not None:
                out = result
        return out
    return wrapper


def _hooked_load_state_dict(load_state_dict):
    @_outermost(load_state_dict)
    def wrapper(self, state_dict):
        for hook in _hooks(self, "_optimizer_load_state_dict_pre_hooks"):
            result = hook(self, state_dict)
            if result is not None:
                state_dict = result
        out = load_state_dict(self, _positional_ids(state_dict))
        for hook in _hooks(self, "_optimizer_load_state_dict_post_hooks"):
            hook(self)
        return out
    return wrapper


def _positional_ids(state_dict):
    """PyTorch's rule for a state dict's parameter ids: whatever they are, the saved
    groups' ids name the optimizer's parameters in order (the first id its first
    parameter, ...). A state dict numbering them otherwise than 0, 1, ... comes back
    renumbered so, in a new dict (its state entries under the new numbers); any other,
    a malformed one or one with an id listed twice included (which load_state_dict
    reports), as given."""
    try:
        groups, state = state_dict["param_groups"], state_dict["state"]
        ids = [i for group in groups for i in group["params"]]
        position = {i: n for n, i in enumerate(ids)}
        renumbered = {position.get(k, k): v for k, v in state.items()}
    except (TypeError, KeyError, AttributeError):
        return state_dict
    if ids == list(range(len(ids))) or len(position) != len(ids):
        return state_dict
    groups = [dict(group, params=[position[i] for i in group["params"]]) for group in groups]
    return dict(state_dict, param_groups=groups, state=renumbered)


_HOOKED = {"step": _hooked_step, "state_dict": _hooked_state_dict,
           "load_state_dict": _hooked_load_state_dict}
for _name, _wrap in _HOOKED.items():
    setattr(Optimizer, _name, _wrap(getattr(Optimizer, _name)))


def as_count(value):
    """value as an int if it is a whole number >= 0, else None: an int, or PyTorch's
    step as it saves it (a float tensor), converted (a 0-d array, a NumPy scalar, a
    float) or as given (anything with ``__array__``)."""
    if isinstance(value, bool):
        return None
    if not isinstance(value, numbers.Number):
        try:
            value = np.asarray(value)
        except Exception:  # noqa: BLE001 (any object that is not array-like)
            return None
        if value.shape != () or value.dtype.kind not in "fiu":
            return None
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        return None
    return int(value)


def _as_index(key):
    if isinstance(key, bool):
        return None
    if isinstance(key, numbers.Integral):
        return int(key)
    if isinstance(key, str) and key.isdigit():
        return int(key)
    return None


def _state_index(where, key, count):
    """The parameter index a saved state's key names (an int, or its string as a
    checkpoint holds it); any other key, or an index past the optimizer's ``count``
    parameters, is a ValueError."""
    index = _as_index(key)
    if index is None or not 0 <= index < count:
        raise ValueError(f"{where}: state for parameter {key!r}, but the optimizer "
                         f"has {count} parameters")
    return index
