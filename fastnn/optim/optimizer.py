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
import math
import numbers
import operator

import numpy as np

from .. import device as _device
from .flat import build_buckets, check_parameter


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

    #: PyTorch keywords taken at the values fastnn implements (name -> accepted values):
    #: implementation switches that change no result, and options at their defaults.
    #: PyTorch's state dicts carry them in every param group; they load ignored.
    torch_flags = {"maximize": (False,), "foreach": (None, False, True),
                   "differentiable": (False,), "fused": (None, False, True),
                   "capturable": (False, True)}

    def __init__(self, params, defaults, flags=None):
        for name, value in (flags or {}).items():
            self._check_flag(name, value)
        self.defaults = dict(defaults)
        self._check(self.defaults)
        if isinstance(params, np.ndarray) or not hasattr(params, "__iter__"):
            raise TypeError(f"{self._name}: params must be an iterable of Parameters or of "
                            f"dicts, got {type(params).__name__}")
        params = list(params)
        if not params:
            raise ValueError(f"{self._name}: got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        groups = [self._make_group(g) for g in params]
        self._check_distinct([p for g in groups for p in g["params"]])
        self._check_names(groups)
        self.param_groups = []
        self._buckets = []
        self._checked = []  # per group: the hyper-parameter values last found valid
        for group in groups:
            self._install_group(group)

    @property
    def _name(self):
        return type(self).__name__

    def __repr__(self):
        lines = [f"{self._name} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        return "\n".join(lines + [")"])

    # ---------------------------------------------------------------- groups
    def _make_group(self, group):
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{self._name}: a parameter group must be a dict with a 'params' "
                            f"entry, got {type(group).__name__}")
        unknown = (set(group) - set(self.defaults) - {"params", "param_names"}
                   - set(SCHEDULER_KEYS))
        if unknown:
            raise ValueError(f"{self._name}: unknown hyper-parameter(s) {sorted(unknown)} in "
                             f"a parameter group; expected {sorted(self.defaults)}")
        plist = group["params"]
        plist = [plist] if hasattr(plist, "data") and hasattr(plist, "grad") else list(plist)
        plist, names = self._split_names(plist)
        if not plist:
            raise ValueError(f"{self._name}: a parameter group has an empty parameter list")
        for i, p in enumerate(plist):
            check_parameter(self._name, p, i)
        full = dict(self.defaults)
        full.update({k: v for k, v in group.items() if k != "params"})
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

    def _group_start(self, gi):
        return sum(len(g["params"]) for g in self.param_groups[:gi])

    def _install_group(self, group):
        self.param_groups.append(group)
        self._checked.append(None)
        gi = len(self.param_groups) - 1
        self._buckets.append(build_buckets(group["params"], self._group_start(gi),
                                           self._scalar_state))

    def add_param_group(self, param_group):
        """Add a group of parameters (a dict with 'params' and optional hyper-parameters)."""
        group = self._make_group(param_group)
        self._check_distinct([p for g in self.param_groups for p in g["params"]]
                             + group["params"])
        self._check_names(self.param_groups + [group])
        self._install_group(group)

    # ------------------------------------------------------- hyper-parameter checks
    def _check(self, group):
        """Raise ValueError naming the optimizer, argument and value for a bad one."""
        raise NotImplementedError

    def _check_flag(self, name, value):
        """A PyTorch keyword of ``torch_flags`` at a value fastnn implements, or an error."""
        if name not in self.torch_flags:
            raise TypeError(f"{self._name}.__init__() got an unexpected keyword argument "
                            f"{name!r}")
        if not _flag_ok(value, self.torch_flags[name]):
            shown = " or ".join(repr(v) for v in self.torch_flags[name])
            raise ValueError(f"{self._name}: {name}={value!r} is not supported (only {shown})")

    def _real(self, name, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{self._name}: expected {name} to be a real number, "
                            f"got {value!r} ({type(value).__name__})")
        return float(value)

    def _at_least(self, name, value, low, low_ok=True):
        v = self._real(name, value)
        if not (v >= low if low_ok else v > low) or math.isinf(v):
            bound = ">=" if low_ok else ">"
            raise ValueError(f"{self._name}: invalid {name}: {value!r} "
                             f"(expected a finite value {bound} {low})")

    def _unit(self, name, value):
        v = self._real(name, value)
        if not 0.0 <= v < 1.0:
            raise ValueError(f"{self._name}: invalid {name}: {value!r} "
                             f"(expected 0 <= {name} < 1)")

    def _betas(self, group):
        """The group's betas, a pair of numbers in [0, 1), as floats."""
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{self._name}: invalid betas: {betas!r} (expected a pair "
                             f"(beta1, beta2))")
        self._unit("betas[0]", betas[0])
        self._unit("betas[1]", betas[1])
        return float(betas[0]), float(betas[1])

    @staticmethod
    def _decoupled_decay(kernels, data, group):
        """p *= 1 - lr * weight_decay (AdamW's decay; NAdam's and RAdam's decoupled one): the
        sgd_update kernel with the parameters as their own gradient, one pass over them."""
        rate = float(group["lr"]) * float(group["weight_decay"])
        if rate:
            kernels.sgd_update(data, data, None, rate, 0.0, 0.0, False)

    def _flag(self, group, name):
        """A bool hyper-parameter of the group, or a TypeError."""
        if not isinstance(group[name], bool):
            raise TypeError(f"{self._name}: expected {name} to be a bool, got {group[name]!r}")
        return group[name]

    # ------------------------------------------------------------------- step
    def zero_grad(self, set_to_none=True):
        """Set every parameter's .grad to zero in place (one fill per flat buffer).

        Gradients are zeroed, not set to None as PyTorch's default does: layers accumulate
        into ``.grad`` in place, so it must stay an array. set_to_none is accepted for
        PyTorch code and changes nothing: the next backward gives every parameter its
        gradient either way.
        """
        for buckets in self._buckets:
            for bucket in buckets:
                bucket.ns.fill_zero(bucket.grad)
                for p, view in zip(bucket.params, bucket.grad_views):
                    if p.grad is not None and p.grad is not view:
                        _device.namespace_of(p.grad).fill_zero(p.grad)

    def step(self, closure=None):
        """Apply one update to every parameter that has a gradient.

        closure: optional callable re-evaluating the model and returning the loss, called
        first. Parameters whose .grad is None or whose requires_grad is False are
        skipped, as in PyTorch. NaN or inf in a
        gradient propagates into the parameters (nothing is skipped silently), except
        through Rprop's sign step (PyTorch's: torch.sign(NaN) is 0).
        Returns the closure's loss, or None.
        """
        loss = closure() if closure is not None else None
        self._check_groups()
        plans = [[bucket.inspect(self._name) for bucket in buckets]
                 for buckets in self._buckets]
        for gi, group in enumerate(self.param_groups):
            if any(dtype_changed for _, dtype_changed, _ in plans[gi]):
                self._regroup(gi)
                plans[gi] = [b.inspect(self._name) for b in self._buckets[gi]]
            ascent = self._maximize_by_negation and group["maximize"]
            for bucket, (intact, _, missing_grad) in zip(self._buckets[gi], plans[gi]):
                kernels = _device.kernels(bucket.ns.name)  # where the bucket lives
                if not intact:
                    bucket.rehome()
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
        values_of = operator.itemgetter(*self.hyperparameters)
        for gi, group in enumerate(self.param_groups):
            try:
                values = values_of(group)
            except KeyError as exc:
                raise ValueError(f"{self._name}: parameter group {gi} lost its "
                                 f"hyper-parameter {exc.args[0]!r}") from None
            if values != self._checked[gi]:
                self._check(group)
                self._checked[gi] = values

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
        bucket.steps = [s + 1 for s in steps]

    def _update_each(self, kernels, bucket, group):
        """Slow path when some .grad is None: update the others one by one."""
        for i, p in enumerate(bucket.params):
            if p.grad is None or not p.requires_grad:
                continue
            if bucket.offsets[i + 1] > bucket.offsets[i]:
                self._update_one(kernels, bucket, i, group)
            else:
                bucket.steps[i] += 1

    def _regroup(self, gi):
        """Rebuild group gi's buckets after a parameter changed dtype, keeping its state."""
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
        """(group index, bucket, index in bucket) of every parameter, in state-dict order."""
        where = {}
        for gi, buckets in enumerate(self._buckets):
            for bucket in buckets:
                for i, p in enumerate(bucket.params):
                    where[id(p)] = (gi, bucket, i)
        return [where[id(p)] for group in self.param_groups for p in group["params"]]

    def _saved_groups(self):
        """The param groups as a state dict holds them: hyper-parameters (lists as
        tuples) and "params" as the parameters' running indices, as in PyTorch."""
        groups, start = [], 0
        for group in self.param_groups:
            entry = {k: (list(v) if k == "param_names" else
                         tuple(v) if isinstance(v, list) else v)
                     for k, v in group.items() if k != "params"}
            entry["params"] = list(range(start, start + len(group["params"])))
            start += len(group["params"])
            groups.append(entry)
        return groups

    def state_dict(self):
        """The optimizer's state (copies): {"type", "state", "param_groups"} as in PyTorch."""
        groups = self._saved_groups()
        state = {}
        for index, (_, bucket, i) in enumerate(self._locate()):
            if bucket.steps[i] > 0:
                state[index] = {"step": bucket.steps[i], **bucket.param_state(i)}
        return {"type": self._name, "state": state, "param_groups": groups}

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
        where, groups, saved_state = self._state_dict_parts(state_dict)
        located = self._locate()
        state = {}
        for key, entry in saved_state.items():
            index = _as_index(key)
            if index is None or not 0 <= index < len(located):
                raise ValueError(f"{where}: state for parameter {key!r}, but the optimizer "
                                 f"has {len(located)} parameters")
            gi, bucket, i = located[index]
            state[index] = self._validate_param_state(f"{where}: parameter {index}", entry,
                                                      bucket.shapes[i], groups[gi])
        return groups, state

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
            if list(saved.get("params", ())) != list(range(start, start + n)):
                raise ValueError(f"{where}: parameter group {gi} holds "
                                 f"{len(saved.get('params', ()))} parameters in the state "
                                 f"dict but {n} in this optimizer")
            start += n
            missing = [k for k in self.hyperparameters if k not in saved]
            flags = {k: v for k, v in saved.items() if k in self.torch_flags}
            unknown = [k for k in saved if k not in self.defaults
                       and k not in ("params", "param_names")
                       and k not in SCHEDULER_KEYS and k not in flags]
            if missing or unknown:
                raise ValueError(f"{where}: parameter group {gi}: missing hyper-parameters "
                                 f"{missing}, unknown {unknown}")
            hyper = {k: (tuple(v) if isinstance(v, list) else v)
                     for k, v in saved.items() if k != "params" and k not in flags}
            if "param_names" in hyper:  # (they replace the group's, as in PyTorch)
                hyper["param_names"] = list(hyper["param_names"])
            try:
                for name, value in flags.items():
                    self._check_flag(name, value)
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
        step = entry.get("step", 1)  # PyTorch's SGD keeps no step: a buffer means >= 1
        if isinstance(step, np.ndarray) and step.ndim == 0:
            step = step.item()
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise ValueError(f"{where}: step must be an int >= 0, got {step!r}")
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

    #: state names accepted on load even when the group's settings do not use them
    _optional_state = ()
    #: per-parameter state that is one number (FlatBucket.scalars), not an array:
    #: {name: its value before the first step}
    _scalar_state = {}

    def load_state_dict(self, state_dict):
        """Load hyper-parameters and state (copied in); a bad state dict changes nothing."""
        groups, state = self.validate_state_dict(state_dict)
        for group, hyper in zip(self.param_groups, groups):
            group.update(hyper)
        for index, (_, bucket, i) in enumerate(self._locate()):
            step, saved = state.get(index, (0, {}))
            bucket.set_param_state(i, step, *self._split_state(saved))


#: Optimizer.torch_flags less ``maximize``: the torch_flags of the optimizers that
#: implement maximize=True, where it is a hyper-parameter.
FLAGS_WITHOUT_MAXIMIZE = {k: v for k, v in Optimizer.torch_flags.items() if k != "maximize"}


def _flag_ok(value, accepted):
    """value is one of accepted: None and bools by identity, numbers by value."""
    if isinstance(value, np.generic):
        value = value.item()
    for a in accepted:
        if a is None or isinstance(a, bool):
            if value is a:
                return True
        elif isinstance(value, numbers.Real) and not isinstance(value, bool) and value == a:
            return True
    return False


def _as_index(key):
    if isinstance(key, bool):
        return None
    if isinstance(key, numbers.Integral):
        return int(key)
    if isinstance(key, str) and key.isdigit():
        return int(key)
    return None
