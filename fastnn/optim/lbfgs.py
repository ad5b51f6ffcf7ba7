"""L-BFGS with PyTorch's algorithm (torch.optim.LBFGS): the two-loop recursion over a
limited history, an optional strong-Wolfe line search, ``step(closure)``.

The algorithm works on one flat vector of every parameter's data and gradient, in
parameter order: the optimizer's flat bucket itself when the parameters share one dtype
and device (one bucket), otherwise a concatenation in the parameters' common dtype
(float64 when float32 and float64 mix, as ``torch.cat``). The vector algebra is NumPy on
the host: a GPU model's gradient is copied to the host once per evaluation and each move
of the parameters is copied back (L-BFGS evaluates the model a few times per step; its
own work is a few dot products per history entry).

Scalars (step length, ``ro``, ``H_diag``, dot products) are NumPy scalars of the vector's
dtype and Python floats where PyTorch's are Python numbers: with NumPy 2's promotion rules
(NEP 50) float32 arithmetic and comparisons stay in float32 where PyTorch's 0-dim float32
tensors do.
"""
import collections
import numbers

import numpy as np

from .. import device as _device
from ..errors import IndexValueError, RuntimeValueError
from .optimizer import Optimizer, _as_index

#: the per-optimizer state PyTorch keeps (under the first parameter), in its order
STATE_KEYS = ("func_evals", "n_iter", "d", "t", "old_dirs", "old_stps", "ro", "H_diag",
              "prev_flat_grad", "prev_loss", "al")
#: state a step leaves once its loop ran (``al`` comes with the second iteration)
_LOOP_KEYS = ("d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad",
              "prev_loss")


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """Minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to bounds
    (the interval's ends by default); the middle when the cubic has no minimum.
    PyTorch's ``_cubic_interpolate`` (from torch/optim's polyinterp.lua)."""
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square >= 0:
        d2 = np.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def _strong_wolfe(obj_func, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9,
                  max_ls=25):
    """PyTorch's ``_strong_wolfe`` (from torch/optim's lswolfe.lua): bracket a step length
    satisfying the strong Wolfe conditions along d, then zoom in by cubic interpolation.
    obj_func(x, t, d) -> (loss, flat gradient) at x + t d. Returns (loss, gradient, t,
    number of evaluations)."""
    d_norm = np.abs(d).max()
    g = g.copy()
    f_new, g_new = obj_func(x, t, d)
    ls_func_evals = 1
    gtd_new = g_new.dot(d)

    # bracket an interval containing a point satisfying the Wolfe criteria
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket = [t_prev, t]
            bracket_f = [f_prev, f_new]
            bracket_g = [g_prev, g_new.copy()]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket = [t]
            bracket_f = [f_new]
            bracket_g = [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket = [t_prev, t]
            bracket_f = [f_prev, f_new]
            bracket_g = [g_prev, g_new.copy()]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        # interpolate
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                               bounds=(min_step, max_step))
        # next step
        t_prev = tmp
        f_prev = f_new
        g_prev = g_new.copy()
        gtd_prev = gtd_new
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1

    # reached the maximum number of iterations?
    if ls_iter == max_ls:
        bracket = [0, t]
        bracket_f = [f, f_new]
        bracket_g = [g, g_new]

    # zoom phase: refine the bracket until a point satisfies the criteria
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0],
                               bracket[1], bracket_f[1], bracket_gtd[1])
        # t too close to a boundary (twice, or on it): move it 0.1 * the bracket inside
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                if abs(t - max(bracket)) < abs(t - min(bracket)):
                    t = max(bracket) - eps
                else:
                    t = min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False

        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1

        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            # Armijo condition not satisfied or not lower than the lowest point
            bracket[high_pos] = t
            bracket_f[high_pos] = f_new
            bracket_g[high_pos] = g_new.copy()
            bracket_gtd[high_pos] = gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True  # Wolfe conditions satisfied
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                # old high becomes new low
                bracket[high_pos] = bracket[low_pos]
                bracket_f[high_pos] = bracket_f[low_pos]
                bracket_g[high_pos] = bracket_g[low_pos]
                bracket_gtd[high_pos] = bracket_gtd[low_pos]
            # new point becomes new low
            bracket[low_pos] = t
            bracket_f[low_pos] = f_new
            bracket_g[low_pos] = g_new.copy()
            bracket_gtd[low_pos] = gtd_new

    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals


class LBFGS(Optimizer):
    """LBFGS(params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7,
    tolerance_change=1e-9, history_size=100, line_search_fn=None).

    PyTorch's L-BFGS: each ``step(closure)`` runs up to max_iter iterations (max_eval
    model evaluations, max_iter * 5 // 4 by default) of the two-loop recursion over the
    last history_size (s, y) pairs, the first direction scaled by min(1, 1/|g|_1) * lr,
    with a fixed step lr or, line_search_fn='strong_wolfe', PyTorch's strong-Wolfe line
    search; it stops early when max|g| <= tolerance_grad, when g.d > -tolerance_change,
    or when the step or the loss change falls below tolerance_change.

    closure: re-evaluates the model and returns the loss, e.g.
    ``def closure(): opt.zero_grad(); loss = crit(model(x), y);
    model.backward(crit.backward()); return loss``. step returns the closure's first loss.

    One parameter group only, as PyTorch's. State (``state_dict()["state"][0]``, under the
    first parameter as PyTorch keeps it): func_evals, n_iter, d, t, old_dirs, old_stps,
    ro, H_diag, prev_flat_grad, prev_loss, al; PyTorch's state dicts load (tensors
    as arrays, 0-dim tensors as 0-d arrays or scalars). Frozen parameters
    (requires_grad False) count with a zero gradient and are never written.
    """

    hyperparameters = ("lr", "max_iter", "max_eval", "tolerance_grad", "tolerance_change",
                       "history_size", "line_search_fn")
    torch_flags = {}  # PyTorch's LBFGS takes none of maximize, foreach, ...

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7,
                 tolerance_change=1e-9, history_size=100, line_search_fn=None):
        if max_eval is None:
            self._integer("max_iter", max_iter)
            max_eval = max_iter * 5 // 4
        super().__init__(params, {"lr": lr, "max_iter": max_iter, "max_eval": max_eval,
                                  "tolerance_grad": tolerance_grad,
                                  "tolerance_change": tolerance_change,
                                  "history_size": history_size,
                                  "line_search_fn": line_search_fn})
        if len(self.param_groups) != 1:
            raise ValueError(f"LBFGS doesn't support per-parameter options (parameter "
                             f"groups): got {len(self.param_groups)} groups; pass one")
        self._params = self.param_groups[0]["params"]
        self._sizes = [int(np.prod(p.data.shape, dtype=np.int64)) for p in self._params]
        self._numel = sum(self._sizes)
        self._state = {}  # PyTorch's self.state[first parameter]
        self._fast = None  # the single bucket serving as the flat vectors, or None
        # (a group with no parameters builds, as PyTorch's; its step is refused)
        self._dtype = np.result_type(*[b.dtype for b in self._buckets[0]] or [np.float32])

    # ------------------------------------------------------------------ checks
    def _integer(self, name, value, low=1):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"LBFGS: expected {name} to be an int, got {value!r} "
                            f"({type(value).__name__})")
        if value < low:
            raise ValueError(f"LBFGS: invalid {name}: {value!r} (expected an int >= {low})")

    def _check(self, group):
        self._at_least("lr", group["lr"], 0.0)
        self._integer("max_iter", group["max_iter"])
        self._integer("max_eval", group["max_eval"])
        self._at_least("tolerance_grad", group["tolerance_grad"], 0.0)
        self._at_least("tolerance_change", group["tolerance_change"], 0.0)
        self._integer("history_size", group["history_size"])
        fn = group["line_search_fn"]
        if fn is not None and fn != "strong_wolfe":
            # (PyTorch's RuntimeError, which it raises at the step)
            raise RuntimeValueError(f"LBFGS: invalid line_search_fn: {fn!r} (only "
                                    f"'strong_wolfe' is supported; expected None or "
                                    f"'strong_wolfe')")

    def add_param_group(self, param_group):
        raise ValueError("LBFGS doesn't support per-parameter options (parameter groups): "
                         "it optimises one group")

    # ------------------------------------------------------------ flat vectors
    def _prepare(self):
        """Re-home rebound .data/.grad into the flat bucket(s) (after each closure call,
        which may rebind them) and choose the flat path: the single bucket's own buffers
        when every parameter shares it and has a gradient, else per-parameter gathering."""
        if len(self.param_groups) != 1:
            raise ValueError(f"LBFGS doesn't support per-parameter options (parameter "
                             f"groups): found {len(self.param_groups)} groups")
        plans = [b.inspect(self._name) for b in self._buckets[0]]
        if any(regroup for _, regroup, _ in plans):
            self._regroup(0)
            plans = [b.inspect(self._name) for b in self._buckets[0]]
        for bucket, (intact, _, _) in zip(self._buckets[0], plans):
            if not intact:
                bucket.rehome(self._name)
        buckets = self._buckets[0]
        self._fast = buckets[0] if len(buckets) == 1 and not plans[0][2] else None
        self._dtype = np.result_type(*[b.dtype for b in buckets])

    def _evaluate(self, closure, errstate):
        """closure()'s value, called under the caller's floating-point error settings;
        then the flat buffers are checked again (the closure may rebind .data/.grad)."""
        with np.errstate(**errstate):
            loss = closure()
        self._prepare()
        return loss

    def _gather_flat_grad(self):
        """A new host vector of every gradient in parameter order (zeros for a None
        .grad and for frozen parameters)."""
        if self._fast is not None:
            return _device.host_copy(self._fast.grad)
        parts = []
        for p, size in zip(self._params, self._sizes):
            if p.grad is None or not p.requires_grad:
                parts.append(np.zeros(size, self._dtype))
            else:
                parts.append(np.asarray(_device.to_host(p.grad)).reshape(-1))
        return np.concatenate(parts).astype(self._dtype, copy=False)

    def _clone_param(self):
        """A new host vector of every parameter's values, in parameter order."""
        if self._fast is not None:
            return _device.host_copy(self._fast.data)
        return np.concatenate([np.asarray(_device.to_host(p.data)).reshape(-1)
                               for p in self._params]).astype(self._dtype, copy=False)

    def _each_param(self, flat, write):
        """write(host array of p, flat slice of p shaped like it) for every trainable
        parameter: in place on the host, through a host copy on the GPU."""
        offset = 0
        for p, size in zip(self._params, self._sizes):
            if p.requires_grad:
                part = flat[offset:offset + size].reshape(p.data.shape)
                _device.update_on_host(p.data, lambda h, part=part: write(h, part))
            offset += size

    def _add_grad(self, step_size, update):
        """params += step_size * update (PyTorch's p.add_(update, alpha=step_size))."""
        if self._fast is not None:
            _device.update_on_host(self._fast.data,
                                   lambda h: h.__iadd__(step_size * update))
        else:
            self._each_param(update, lambda h, u: h.__setitem__(..., h + step_size * u))

    def _set_param(self, flat):
        if self._fast is not None:
            self._fast.ns.copy_into(self._fast.data, flat)
        else:
            self._each_param(flat, lambda h, x: h.__setitem__(..., x))

    def _directional_evaluate(self, closure, errstate, x, t, d):
        self._add_grad(t, d)
        loss = _loss_value(self._evaluate(closure, errstate))
        flat_grad = self._gather_flat_grad()
        self._set_param(x)
        return loss, flat_grad

    # ------------------------------------------------------------------- step
    def step(self, closure=None):
        """Run one L-BFGS step (up to max_iter iterations); returns the closure's first loss.

        closure: required; re-evaluates the model (zero_grad, forward, backward) and
        returns the loss. Raises TypeError without one.
        """
        if closure is None or not callable(closure):
            raise TypeError(f"LBFGS.step: needs a closure (a callable that zeroes the "
                            f"gradients, re-evaluates the model, runs backward and returns "
                            f"the loss), got {closure!r}")
        if not self._params:  # (PyTorch's fails on its first parameter: an IndexError)
            raise IndexValueError("LBFGS.step: the parameter group is empty: there is nothing "
                                  "to optimise")
        self._prepare()
        self._check_groups()
        errstate = np.geterr()
        with np.errstate(all="ignore"):  # PyTorch's scalar tensors divide silently
            return self._step(closure, errstate)

    def _step(self, closure, errstate):
        group = self.param_groups[0]
        lr = group["lr"]
        lr = lr.item() if isinstance(lr, np.generic) else lr
        max_iter = group["max_iter"]
        max_eval = group["max_eval"]
        tolerance_grad = group["tolerance_grad"]
        tolerance_change = group["tolerance_change"]
        line_search_fn = group["line_search_fn"]
        history_size = group["history_size"]

        state = self._state
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        # evaluate initial f(x) and df/dx
        orig_loss = self._evaluate(closure, errstate)
        loss = _loss_value(orig_loss)
        current_evals = 1
        state["func_evals"] += 1

        flat_grad = self._gather_flat_grad()
        opt_cond = np.abs(flat_grad).max() <= tolerance_grad
        if opt_cond:
            return orig_loss

        d = state.get("d")
        t = state.get("t")
        old_dirs = state.get("old_dirs")
        old_stps = state.get("old_stps")
        ro = state.get("ro")
        H_diag = state.get("H_diag")
        prev_flat_grad = state.get("prev_flat_grad")
        prev_loss = state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1

            # ---- descent direction
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs = []
                old_stps = []
                ro = []
                H_diag = 1
            else:
                # update the memory
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = y.dot(s)
                if ys > 1e-10:
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / y.dot(y)

                # two-loop recursion: d = -H g
                num_old = len(old_dirs)
                if "al" not in state:
                    state["al"] = [None] * history_size
                al = state["al"]
                if len(al) < num_old:  # history_size raised between steps
                    al.extend([None] * (num_old - len(al)))

                q = -flat_grad
                for i in range(num_old - 1, -1, -1):
                    al[i] = old_stps[i].dot(q) * ro[i]
                    q += (-al[i]) * old_dirs[i]
                d = r = q * H_diag
                for i in range(num_old):
                    be_i = old_dirs[i].dot(r) * ro[i]
                    r += (al[i] - be_i) * old_stps[i]

            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.copy()
            else:
                prev_flat_grad[...] = flat_grad
            prev_loss = loss

            # ---- step length
            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / np.abs(flat_grad).sum()) * lr
            else:
                t = lr

            gtd = flat_grad.dot(d)
            if gtd > -tolerance_change:
                break

            ls_func_evals = 0
            if line_search_fn is not None:
                x_init = self._clone_param()

                def obj_func(x, t, d):
                    return self._directional_evaluate(closure, errstate, x, t, d)

                loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                    obj_func, x_init, t, d, loss, flat_grad, gtd,
                    max_ls=max_eval - current_evals)
                self._add_grad(t, d)
                opt_cond = np.abs(flat_grad).max() <= tolerance_grad
            else:
                # fixed step; re-evaluate unless this is the last iteration
                self._add_grad(t, d)
                if n_iter != max_iter:
                    loss = _loss_value(self._evaluate(closure, errstate))
                    flat_grad = self._gather_flat_grad()
                    opt_cond = np.abs(flat_grad).max() <= tolerance_grad
                    ls_func_evals = 1

            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals

            # ---- stopping conditions
            if n_iter == max_iter:
                break
            if current_evals >= max_eval:
                break
            if opt_cond:
                break
            if np.abs(d * t).max() <= tolerance_change:
                break
            if abs(loss - prev_loss) < tolerance_change:
                break

        state["d"] = d
        state["t"] = t
        state["old_dirs"] = old_dirs
        state["old_stps"] = old_stps
        state["ro"] = ro
        state["H_diag"] = H_diag
        state["prev_flat_grad"] = prev_flat_grad
        state["prev_loss"] = prev_loss
        return orig_loss

    # ------------------------------------------------------------------ state
    @property
    def state(self):
        """PyTorch's ``optimizer.state``: a defaultdict(dict) holding the state under the
        first parameter once a step ran (the optimizer's own dict)."""
        out = collections.defaultdict(dict)
        if self._state:
            out[self._params[0]] = self._state
        return out

    def state_dict(self):
        """{"type", "state", "param_groups"}: PyTorch's layout, the state (copies) under
        parameter 0 once a step ran."""
        # in the order PyTorch's dict has them: as the steps (or a load) inserted them
        state = {0: {k: _copied(v) for k, v in self._state.items() if k in STATE_KEYS}}
        return {"type": self._name, "state": state if self._state else {},
                "param_groups": self._saved_groups()}

    def validate_state_dict(self, state_dict):
        """Check a state dict (this optimizer's or PyTorch's with tensors as arrays)
        against this optimizer; raise, change nothing. Returns (groups, state): the
        hyper-parameters and the state converted to the parameters' dtype."""
        where, groups, saved = self._state_dict_parts(state_dict)
        if not saved:
            return groups, {}
        if len(saved) != 1 or _as_index(next(iter(saved))) != 0:
            raise ValueError(f"{where}: LBFGS keeps its state under parameter 0, got state "
                             f"for parameters {sorted(map(str, saved))}")
        entry = next(iter(saved.values()))
        return groups, self._validate_lbfgs_state(where, entry)

    def _validate_lbfgs_state(self, where, entry):
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: the state is not a dict")
        unknown = [k for k in entry if k not in STATE_KEYS]
        if unknown:
            raise ValueError(f"{where}: unexpected state {unknown}; expected "
                             f"{list(STATE_KEYS)}")
        dtype = np.result_type(*[p.data.dtype for p in self._params])
        out = {}
        for name in ("func_evals", "n_iter"):
            if name not in entry:
                raise ValueError(f"{where}: missing state {name!r}")
            value = entry[name]
            if isinstance(value, np.ndarray) and value.ndim == 0:
                value = value.item()
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
                    or value < 0:
                raise ValueError(f"{where}: state {name!r} must be an int >= 0, "
                                 f"got {value!r}")
            out[name] = int(value)
        missing = [k for k in _LOOP_KEYS if k not in entry]
        if out["n_iter"] > 0 and missing:
            raise ValueError(f"{where}: missing state {missing} (n_iter is "
                             f"{out['n_iter']})")

        def vector(name, value):
            array = np.asarray(value)
            if array.dtype.kind != "f" or array.shape != (self._numel,):
                raise ValueError(f"{where}: state {name!r} must be a float vector of shape "
                                 f"({self._numel},), got {array.dtype} {array.shape}")
            return np.array(array, dtype=dtype, copy=True)

        def scalar(name, value):
            if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.generic)):
                return value  # a Python number stays one, as in PyTorch's state
            array = np.asarray(value)
            if array.shape != () or array.dtype.kind not in "fiu":
                raise ValueError(f"{where}: state {name!r} must be a number, got {value!r}")
            return dtype.type(array.item())

        def sequence(name, value, item):
            if isinstance(value, np.ndarray) and value.ndim >= 1:
                value = list(value)
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"{where}: state {name!r} must be a list, "
                                 f"got {type(value).__name__}")
            return [item(f"{name}[{i}]", v) for i, v in enumerate(value)]

        for name in ("d", "prev_flat_grad"):
            if name in entry:
                out[name] = vector(name, entry[name])
        for name in ("t", "H_diag"):
            if name in entry:
                out[name] = scalar(name, entry[name])
        if "prev_loss" in entry:
            value = entry["prev_loss"]
            if isinstance(value, np.ndarray) and value.ndim == 0:
                value = value.item()
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"{where}: state 'prev_loss' must be a number, "
                                 f"got {value!r}")
            out["prev_loss"] = float(value)
        for name in ("old_dirs", "old_stps"):
            if name in entry:
                out[name] = sequence(name, entry[name], vector)
        if "ro" in entry:
            out["ro"] = sequence("ro", entry["ro"], scalar)
        lengths = {k: len(out[k]) for k in ("old_dirs", "old_stps", "ro") if k in out}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"{where}: old_dirs, old_stps and ro must have one length, "
                             f"got {lengths}")
        if "al" in entry:
            out["al"] = sequence("al", entry["al"],
                                 lambda n, v: None if v is None else scalar(n, v))
        return {k: out[k] for k in entry}  # the saved order, as PyTorch's load keeps it

    def load_state_dict(self, state_dict):
        """Load hyper-parameters and state (copied in); a bad state dict changes nothing."""
        groups, state = self.validate_state_dict(state_dict)
        self.param_groups[0].update(groups[0])
        self._state = state


def _loss_value(loss):
    """The closure's loss as a Python float (PyTorch's float(closure()))."""
    if loss is None:
        raise TypeError("LBFGS.step: the closure returned None; it must return the loss")
    return float(_device.to_host(loss))


def _copied(value):
    """A copy of a state value: arrays copied, lists copied item by item."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return [_copied(v) for v in value]
    return value
