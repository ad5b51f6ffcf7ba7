"""The base of the optimizers that update each parameter on the host (Adafactor, Muon):
their updates reduce a parameter along its rows and columns or multiply matrices, per
parameter, so they are NumPy on the host, one parameter at a time, vectorised over its
elements (no kernel-table op, as LBFGS). The state lives on the host, one dict per
parameter under PyTorch's names. Scratch arrays come from one workspace per optimizer (a
flat buffer per name and dtype, grown to the largest parameter and reused), so a step
allocates no parameter-sized array after the first. A parameter on the GPU
(``Module.to("cuda")``) has its data and gradient copied to host scratch, updated there
and its data copied back, as LBFGS does; its state stays on the host.
"""
import collections
import math

import numpy as np

from .. import device as _device
from .flat import has_no_grad
from .optimizer import Optimizer, _state_index


class Workspace:
    """Reused scratch arrays: one flat buffer per (name, dtype), grown on demand."""

    def __init__(self):
        self._buffers = {}

    def get(self, name, shape, dtype):
        """A C-contiguous array of this shape and dtype (a view of the name's buffer;
        its values are whatever the last user left)."""
        dtype = np.dtype(dtype)
        shape = tuple(shape)
        size = math.prod(shape)
        buf = self._buffers.get((name, dtype))
        if buf is None or buf.size < size:
            buf = self._buffers[(name, dtype)] = _device.Host.empty(max(size, 1), dtype)
        return buf[:size].reshape(shape)


def lerp_(start, end, weight, tmp=None, out=None):
    """out = torch.lerp(start, end, weight) with PyTorch's formula: start + w (end - start)
    when |w| < 0.5, else end - (end - start) (1 - w), w in the arrays' dtype.

    out: None (in place into start; ``tmp``, an array like start, is needed when
    |w| < 0.5 and may be end when end is not needed after) or another array (neither
    start nor end).
    """
    w = start.dtype.type(weight)
    small = abs(float(w)) < 0.5
    if out is None:
        if small:
            np.subtract(end, start, out=tmp)
            tmp *= w
            start += tmp
        else:  # start - end is -(end - start) exactly, so this is end - (end - start)(1 - w)
            start -= end
            start *= 1 - w
            start += end
        return start
    if small:
        np.subtract(end, start, out=out)
        out *= w
        out += start
    else:
        np.subtract(start, end, out=out)
        out *= 1 - w
        out += end
    return out


def vector_norm(a):
    """The 2-norm of all of a's elements, a float computed in a's dtype."""
    flat = a.reshape(-1)
    return float(np.sqrt(np.dot(flat, flat)))


class HostOptimizer(Optimizer):
    """Base of optimizers updating each parameter in NumPy on the host, with PyTorch's
    per-parameter state dicts.

    Subclasses define ``_group_hyper(group)`` (the group's hyper-parameters for one
    step), ``_update_param(hyper, data, grad, state)`` (called for each parameter with a
    gradient, in order, with host arrays), ``_new_state(shape, dtype)`` and
    ``_validate_entry(where, entry, shape, dtype)``. Parameter groups,
    hyper-parameter checks, ``zero_grad`` and the flat data/grad buffers are
    ``Optimizer``'s.
    """

    def __init__(self, params, defaults, flags=None):
        super().__init__(params, defaults, flags)
        self._state = {}  # id(parameter) -> its state (PyTorch's optimizer.state[p])
        self._work = Workspace()

    def __getstate__(self):
        # (deepcopy, pickle) the state by parameter position: the copied parameters have
        # new ids, so states keyed by id would match none of them
        state = self.__dict__.copy()
        state["_state"] = {i: self._state[id(p)] for i, p in enumerate(self._all_params())
                           if id(p) in self._state}
        return state

    def __setstate__(self, state):
        by_position = state.pop("_state", {})
        self.__dict__.update(state)
        params = self._all_params()
        self._state = {id(params[i]): entry for i, entry in by_position.items()}

    # ------------------------------------------------------------------- step
    def _prepare(self):
        """Re-home rebound .data/.grad into the flat buffers (regrouping a group whose
        parameter changed dtype or device); raises, changing nothing, on a parameter that
        changed shape."""
        plans = [[b.inspect(self._name) for b in buckets] for buckets in self._buckets]
        for gi in range(len(self.param_groups)):
            if any(regroup for _, regroup, _ in plans[gi]):
                self._regroup(gi)
                plans[gi] = [b.inspect(self._name) for b in self._buckets[gi]]
            for bucket, (intact, _, _) in zip(self._buckets[gi], plans[gi]):
                if not intact:
                    bucket.rehome(self._name)

    def step(self, closure=None):
        """Apply one update to every parameter that has a gradient (others are skipped,
        as in PyTorch). closure: optional callable re-evaluating the model and returning
        the loss, called first. Returns the closure's loss, or None."""
        loss = closure() if closure is not None else None
        self._check_groups()
        self._prepare()
        with np.errstate(all="ignore"):  # PyTorch's tensors overflow and divide silently
            for group in self.param_groups:
                hyper = self._group_hyper(group)
                for p in group["params"]:
                    if has_no_grad(p):
                        continue
                    state = self._state.get(id(p))
                    if not state:
                        state = self._state[id(p)] = self._new_state(p.data.shape,
                                                                      p.data.dtype)
                    else:
                        self._cast_state(state, p.data.dtype)
                    data = self._host(p.data, "host_data")
                    self._update_param(hyper, data, self._host(p.grad, "host_grad"), state)
                    if data is not p.data:  # a device parameter: its host copy goes back
                        _device.Cuda.copy_into(p.data, data)
        return loss

    def _host(self, a, name):
        """a on the host: a itself, or a device array's values in host scratch."""
        if not _device.is_device_array(a):
            return a
        out = self._work.get(name, a.shape, a.dtype)
        if hasattr(a, "copy_to_host"):
            a.copy_to_host(out)
        else:
            out[...] = _device.to_host(a)
        return out

    def _group_hyper(self, group):
        """The group's hyper-parameters as the update uses them (a dict it may fill)."""
        raise NotImplementedError

    def _update_param(self, hyper, data, grad, state):
        """Update one parameter's host data in place from its host grad and state."""
        raise NotImplementedError

    def _cast_state(self, state, dtype):
        """State arrays follow the parameter's dtype (after ``Module.double()``)."""
        for name, value in state.items():
            if isinstance(value, np.ndarray) and value.dtype != dtype:
                state[name] = value.astype(dtype)

    def _new_state(self, shape, dtype):
        raise NotImplementedError

    # ------------------------------------------------------------------ state
    @property
    def state(self):
        """PyTorch's ``optimizer.state``: a defaultdict(dict) {parameter: its state dict}
        (the optimizer's own dicts: changes to them change its state)."""
        out = collections.defaultdict(dict)
        for p in self._all_params():
            if self._state.get(id(p)):
                out[p] = self._state[id(p)]
        return out

    def _all_params(self):
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self):
        """{"type", "state", "param_groups"}: PyTorch's layout; state (copies) for every
        parameter that had a gradient at some step, under PyTorch's names."""
        groups = self._saved_groups()
        state = {}
        for index, p in enumerate(self._all_params()):
            saved = self._state.get(id(p))
            if saved:
                state[index] = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                                for k, v in saved.items()}
        return {"type": self._name, "state": state, "param_groups": groups}

    def validate_state_dict(self, state_dict):
        """Check a state dict (this optimizer's, or PyTorch's with tensors as arrays)
        against this optimizer's parameters; raise, change nothing. Returns (groups,
        state): the hyper-parameter dicts and index -> state converted to the
        parameters' dtypes (new arrays)."""
        where, groups, saved = self._state_dict_parts(state_dict)
        params = self._all_params()
        state = {}
        for key, entry in saved.items():
            index = _state_index(where, key, len(params))
            if not isinstance(entry, dict):
                raise ValueError(f"{where}: parameter {index}: its state is not a dict")
            if entry:
                p = params[index]
                state[index] = self._validate_entry(f"{where}: parameter {index}", entry,
                                                    tuple(p.data.shape), p.data.dtype)
        return groups, state

    def _state_array(self, where, name, value, shape, dtype):
        """A saved state array checked (a float array of this shape), copied to dtype."""
        array = np.asarray(_device.to_host(value))
        if array.dtype.kind != "f" or array.shape != tuple(shape):
            raise ValueError(f"{where}: state {name!r} must be a float array of shape "
                             f"{tuple(shape)}, got {array.dtype} {array.shape}")
        return np.array(array, dtype=dtype, copy=True)

    def load_state_dict(self, state_dict):
        """Load hyper-parameters and state (copied in); a bad state dict changes nothing."""
        groups, state = self.validate_state_dict(state_dict)
        for group, hyper in zip(self.param_groups, groups):
            group.update(hyper)
        self._state = {id(p): state[i] for i, p in enumerate(self._all_params())
                       if i in state}
