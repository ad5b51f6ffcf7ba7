"""optim.LBFGS against torch.optim.LBFGS: trajectories (parameters, losses, evaluation and
iteration counts) with and without the strong-Wolfe line search, early exits, state
dicts (round trip, torch's into fastnn, fastnn's into torch) and argument errors.

The Rosenbrock cases give both optimizers one NumPy closure (same loss and gradient for
the same parameters), so any difference is the optimizers' own arithmetic: dot products
and sums reduce in another order than torch's, and torch's ``add_(alpha=)`` is fused
(one rounding), so float64 agrees to ~1e-13 and float32 to ~1e-5 over 20 iterations of
an ill-conditioned problem, with identical iteration and evaluation counts.
"""
import inspect
import os

import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn, optim
from fastnn.nn import Parameter

from nn_torch_helpers import torch_twin
from simulator_runs import in_background

torch.set_num_threads(1)

X0 = np.array([-1.2, 1.0, -0.5, 0.8, 0.3])
SPLIT = [(3,), (2, 1)]  # two parameters: the flat vector spans both


def tol(dtype):
    """(rtol, atol) between the two trajectories."""
    return (1e-9, 1e-10) if np.dtype(dtype) == np.float64 else (5e-3, 5e-3)


def rosenbrock(x, c=100.0):
    """sum c (x[i+1] - x[i]^2)^2 + (1 - x[i])^2 and its gradient (NumPy, x's dtype)."""
    a, b = x[:-1], x[1:]
    r = b - a * a
    g = np.zeros_like(x)
    g[:-1] = -4 * c * a * r - 2 * (1 - a)
    g[1:] += 2 * c * r
    return float(np.sum(c * r * r + (1 - a) ** 2)), g


class Pair:
    """The same parameters in fastnn and torch, each framework's closure evaluating
    ``fn`` on its own parameters' values."""

    def __init__(self, dtype, fn=rosenbrock, x0=X0, split=SPLIT):
        self.fn, self.split = fn, split
        sizes = [int(np.prod(s)) for s in split]
        self.offsets = np.cumsum([0] + sizes)
        parts = [x0[a:b].reshape(s).astype(dtype)
                 for a, b, s in zip(self.offsets, self.offsets[1:], split)]
        self.ours = [Parameter(v) for v in parts]
        self.theirs = [torch.tensor(v.copy(), requires_grad=True) for v in parts]

    def _pieces(self, g):
        return [g[a:b].reshape(s) for a, b, s in zip(self.offsets, self.offsets[1:],
                                                     self.split)]

    def closure(self, opt):
        def closure():
            opt.zero_grad()
            loss, g = self.fn(np.concatenate([p.data.ravel() for p in self.ours]))
            for p, piece in zip(self.ours, self._pieces(g)):
                p.grad[...] = piece  # in place, as layers accumulate
            return loss
        return closure

    def torch_closure(self, ref):
        def closure():
            ref.zero_grad()
            loss, g = self.fn(np.concatenate([q.detach().numpy().ravel()
                                              for q in self.theirs]))
            for q, piece in zip(self.theirs, self._pieces(g)):
                if q.requires_grad:
                    q.grad = torch.from_numpy(piece.copy())
            return loss
        return closure

    def assert_close(self, dtype, msg=""):
        rtol, atol = tol(dtype)
        for i, (p, q) in enumerate(zip(self.ours, self.theirs)):
            assert p.data.dtype == dtype
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"{msg} parameter {i}")


def assert_state_like_torch(opt, ref, dtype):
    """Same keys, counts and history length; vectors and scalars close."""
    ours = opt.state_dict()["state"].get(0, {})
    theirs = ref.state_dict()["state"].get(0, {})
    assert sorted(ours) == sorted(theirs)
    rtol, atol = tol(dtype)
    for key, value in theirs.items():
        mine = ours[key]
        if key in ("func_evals", "n_iter"):
            assert mine == value, key
        elif key in ("old_dirs", "old_stps", "ro", "al"):
            assert len(mine) == len(value), key
            for a, b in zip(mine, value):
                assert (a is None) == (b is None), key
                if a is not None:
                    np.testing.assert_allclose(np.asarray(a), np.asarray(b),
                                               rtol=rtol * 100, atol=atol, err_msg=key)
        elif key in ("d", "prev_flat_grad"):
            assert mine.dtype == dtype and mine.shape == tuple(value.shape)
            np.testing.assert_allclose(mine, value.numpy(), rtol=rtol, atol=atol, err_msg=key)
        else:  # t, H_diag, prev_loss
            np.testing.assert_allclose(float(mine), float(value), rtol=rtol * 100, atol=atol,
                                       err_msg=key)


CASES = {
    "fixed": dict(max_iter=5),
    "lr_history2": dict(lr=0.5, history_size=2, max_iter=6),
    "wolfe": dict(max_iter=5, line_search_fn="strong_wolfe"),
    "wolfe_max_eval": dict(max_iter=6, max_eval=7, history_size=3,
                           line_search_fn="strong_wolfe"),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", list(CASES))
def test_rosenbrock_matches_torch(dtype, case):
    kwargs = CASES[case]
    pair = Pair(dtype)
    opt = optim.LBFGS(pair.ours, **kwargs)
    ref = torch.optim.LBFGS(pair.theirs, **kwargs)
    closure, tclosure = pair.closure(opt), pair.torch_closure(ref)
    rtol, atol = tol(dtype)
    for step in range(4):
        loss = opt.step(closure)
        expected = ref.step(tclosure)
        np.testing.assert_allclose(loss, expected, rtol=rtol, atol=atol)
        pair.assert_close(dtype, f"{case} step {step + 1}")
        assert_state_like_torch(opt, ref, dtype)
    # the loss went down (the problem is not trivial) and the history is in use (its
    # length equals torch's: pairs with y.s <= 1e-10 are skipped)
    assert loss < 0.5 * rosenbrock(X0)[0]
    state = opt.state_dict()["state"][0]
    assert 0 < len(state["old_dirs"]) <= kwargs.get("history_size", 100)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"], ids=["fixed", "wolfe"])
def test_mlp_regression_matches_torch(dtype, line_search_fn):
    """A 3-8-1 tanh MLP on a regression problem, each framework's closure running its own
    forward and backward (MSE loss)."""
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)).to_dtype(dtype)
    twin = torch_twin(model)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((32, 3)).astype(dtype)
    y = (np.sin(x[:, :1]) + 0.5 * x[:, 1:2] * x[:, 2:]).astype(dtype)
    crit = nn.MSELoss()
    kwargs = dict(lr=1, max_iter=6, history_size=4, line_search_fn=line_search_fn)
    opt = optim.LBFGS(model.parameters(), **kwargs)
    ref = torch.optim.LBFGS(twin.parameters(), **kwargs)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def closure():
        opt.zero_grad()
        loss = crit(model(x), y)
        model.backward(crit.backward())
        return loss

    def tclosure():
        ref.zero_grad()
        loss = torch.nn.functional.mse_loss(twin(xt), yt)
        loss.backward()
        return loss

    rtol, atol = (1e-8, 1e-9) if dtype == np.float64 else (1e-3, 1e-3)
    first = None
    for step in range(3):
        loss = opt.step(closure)
        expected = ref.step(tclosure).item()
        first = first if first is not None else loss
        np.testing.assert_allclose(loss, expected, rtol=rtol, atol=atol)
        for (name, p), q in zip(model.named_parameters(), twin.parameters()):
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"{name} after step {step + 1}")
        ours, theirs = opt.state_dict()["state"][0], ref.state[twin[0].weight]
        assert (ours["func_evals"], ours["n_iter"]) == (theirs["func_evals"], theirs["n_iter"])
    assert float(closure()) < 0.5 * float(first)


def test_mixed_dtypes_none_grad_and_frozen_parameter_match_torch():
    """float32 and float64 parameters (one float64 flat vector, as torch.cat), a parameter
    whose .grad is None (a zero gradient) and a frozen one (its gradient ignored, never
    written, even though the fastnn closure fills it)."""
    x0 = np.array([-1.2, 1.0, -0.5, 0.8, 0.3, 0.7])
    split = [(2,), (2,), (1,), (1,)]
    ours, theirs = [], []
    dtypes = [np.float32, np.float64, np.float64, np.float64]
    for i, (s, dt) in enumerate(zip(split, dtypes)):
        v = x0[2 * i if i < 2 else 4 + (i - 2):][:int(np.prod(s))].reshape(s).astype(dt)
        ours.append(Parameter(v))
        theirs.append(torch.tensor(v.copy(), requires_grad=True))
    ours[3].requires_grad = False
    theirs[3].requires_grad_(False)
    kwargs = dict(max_iter=4, line_search_fn="strong_wolfe")
    opt = optim.LBFGS(ours, **kwargs)
    ref = torch.optim.LBFGS(theirs, **kwargs)

    def values(ps):
        return np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in ps])

    def closure():
        opt.zero_grad()
        loss, g = rosenbrock(values([p.data for p in ours]))
        ours[0].grad[...] = g[:2]
        ours[1].grad[...] = g[2:4]
        ours[2].grad = None  # no gradient: counts as zeros, as torch's
        ours[3].grad[...] = g[5:]  # frozen: filled, yet ignored
        return loss

    def tclosure():
        ref.zero_grad()
        loss, g = rosenbrock(values([q.detach().numpy() for q in theirs]))
        theirs[0].grad = torch.from_numpy(g[:2].astype(np.float32))
        theirs[1].grad = torch.from_numpy(g[2:4].copy())
        return loss

    frozen = ours[3].data.copy()
    for step in range(3):
        np.testing.assert_allclose(opt.step(closure), ref.step(tclosure), rtol=1e-5)
        for i, (p, q) in enumerate(zip(ours, theirs)):
            assert p.data.dtype == dtypes[i]
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-5, atol=1e-5,
                                       err_msg=f"parameter {i} step {step + 1}")
    assert np.array_equal(ours[3].data, frozen)
    state = opt.state_dict()["state"][0]
    assert state["d"].dtype == np.float64 and state["d"].shape == (6,)
    assert state["func_evals"] == ref.state[theirs[0]]["func_evals"]


def test_closure_rebinding_grads_and_returning_a_numpy_scalar():
    """A closure may rebind p.grad to a new array (re-homed into the flat buffer) and
    return a NumPy scalar; the result equals torch's."""
    pair = Pair(np.float64)
    opt = optim.LBFGS(pair.ours, max_iter=5)
    ref = torch.optim.LBFGS(pair.theirs, max_iter=5)

    def closure():
        loss, g = rosenbrock(np.concatenate([p.data.ravel() for p in pair.ours]))
        for p, piece in zip(pair.ours, pair._pieces(g)):
            p.grad = piece.copy()
        return np.float64(loss)

    for _ in range(2):
        assert opt.step(closure) == pytest.approx(ref.step(pair.torch_closure(ref)))
    pair.assert_close(np.float64)


# ----------------------------------------------------------------- early exits
def run_both(kwargs, steps=1, dtype=np.float64, x0=X0, compare_state=True):
    pair = Pair(dtype, x0=x0)
    opt = optim.LBFGS(pair.ours, **kwargs)
    ref = torch.optim.LBFGS(pair.theirs, **kwargs)
    for _ in range(steps):
        loss = opt.step(pair.closure(opt))
        expected = ref.step(pair.torch_closure(ref))
        assert loss == pytest.approx(expected, rel=1e-12)
    pair.assert_close(dtype)
    if compare_state:
        assert_state_like_torch(opt, ref, dtype)
    ours, theirs = opt.state_dict()["state"][0], ref.state_dict()["state"][0]
    assert (ours["func_evals"], ours["n_iter"]) == (theirs["func_evals"], theirs["n_iter"])
    return pair, opt, ref


def test_tolerance_grad_returns_after_one_evaluation():
    pair, opt, _ = run_both(dict(tolerance_grad=1e4), steps=2)
    assert opt.state_dict()["state"][0] == {"func_evals": 2, "n_iter": 0}
    assert np.array_equal(np.concatenate([p.data.ravel() for p in pair.ours]), X0)


def test_tolerance_change_stops_after_one_iteration():
    # step 1: one iteration, then max|t d| <= tolerance_change stops it (2 evaluations);
    # step 2: g.d > -tolerance_change before any move (1 evaluation)
    _, opt, _ = run_both(dict(tolerance_change=1e3), steps=2)
    state = opt.state_dict()["state"][0]
    assert (state["n_iter"], state["func_evals"]) == (2, 3)


def test_directional_derivative_check_breaks():
    # near the minimum with a huge tolerance_change the first g.d > -tolerance_change
    x0 = np.ones(5) + 1e-3 * np.arange(5)
    _, opt, _ = run_both(dict(tolerance_change=10.0), steps=2, x0=x0)
    state = opt.state_dict()["state"][0]
    assert state["n_iter"] == 2 and state["func_evals"] == 2


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_max_eval_bounds_evaluations(line_search_fn):
    _, opt, _ = run_both(dict(max_iter=50, max_eval=6, line_search_fn=line_search_fn),
                         steps=2)
    state = opt.state_dict()["state"][0]
    assert state["func_evals"] <= 2 * 6 + 2 and state["n_iter"] < 2 * 50


def test_max_eval_one_with_line_search():
    """max_eval=1: the line search gets max_ls=0 (one evaluation, the [0, t] bracket)."""
    _, opt, _ = run_both(dict(max_iter=3, max_eval=1, line_search_fn="strong_wolfe"),
                         steps=3)
    assert opt.state_dict()["state"][0]["n_iter"] == 3


def test_converges_to_rosenbrock_minimum_like_torch():
    # (at the minimum the history's al and ro are rounding noise: counts compared only)
    pair, opt, _ = run_both(dict(line_search_fn="strong_wolfe", max_iter=100), steps=2,
                            compare_state=False)
    np.testing.assert_allclose(np.concatenate([p.data.ravel() for p in pair.ours]),
                               np.ones(5), atol=1e-6)


def quadratic(x):
    w = np.arange(1.0, len(x) + 1)
    return float(0.5 * np.sum(w * x * x)), w * x


@pytest.mark.parametrize("kwargs", [dict(tolerance_grad=1e-2, lr=0.3),
                                    dict(tolerance_grad=1e-4, line_search_fn="strong_wolfe")],
                         ids=["fixed", "wolfe"])
def test_tolerance_grad_reached_inside_the_loop(kwargs):
    pair = Pair(np.float64, fn=quadratic)
    opt = optim.LBFGS(pair.ours, **kwargs)
    ref = torch.optim.LBFGS(pair.theirs, **kwargs)
    opt.step(pair.closure(opt))
    ref.step(pair.torch_closure(ref))
    pair.assert_close(np.float64)
    assert_state_like_torch(opt, ref, np.float64)
    state = opt.state_dict()["state"][0]
    assert state["n_iter"] < 20  # stopped by max|g| <= tolerance_grad
    assert np.abs(quadratic(np.concatenate([p.data.ravel() for p in pair.ours]))[1]).max() \
        <= kwargs["tolerance_grad"]


def test_history_size_raised_between_steps():
    """torch's al keeps the length of the first history_size (an IndexError there once the
    history outgrows it); fastnn extends it. al's values are always written before they
    are read, so the trajectory is torch's with its al rebuilt."""
    pair = Pair(np.float64)
    opt = optim.LBFGS(pair.ours, max_iter=4, history_size=2)
    ref = torch.optim.LBFGS(pair.theirs, max_iter=4, history_size=2)
    for history in (2, 6, 6):
        opt.param_groups[0]["history_size"] = ref.param_groups[0]["history_size"] = history
        ref.state[pair.theirs[0]].pop("al", None)
        opt.step(pair.closure(opt))
        ref.step(pair.torch_closure(ref))
    pair.assert_close(np.float64)
    assert len(opt.state_dict()["state"][0]["old_dirs"]) > 2


def test_parameter_dtype_changed_between_steps():
    pair = Pair(np.float64)
    opt = optim.LBFGS(pair.ours, max_iter=3)
    closure = pair.closure(opt)
    opt.step(closure)
    for p in pair.ours:
        p.data = p.data.astype(np.float32)
        p.grad = p.grad.astype(np.float32)
    before = rosenbrock(np.concatenate([p.data.ravel() for p in pair.ours]))[0]
    opt.step(closure)
    assert all(p.data.dtype == np.float32 for p in pair.ours)
    assert opt.state_dict()["state"][0]["prev_flat_grad"].shape == (5,)
    assert rosenbrock(np.concatenate([p.data.ravel() for p in pair.ours]))[0] < before


# ------------------------------------------------------------- the line search
def _line_cases():
    """1-D objectives with start points and first trial steps reaching the line search's
    branches: bracketing, zoom, an interpolation near a bracket end (moved 0.1 inside),
    a bracket shrunk below tolerance_change."""
    def expo(k, c):
        return lambda x: (float(np.sum(np.exp(k * x) - (k + c) * x)),
                          k * np.exp(k * x) - (k + c))

    def sine(k, c):
        return lambda x: (float(np.sum(np.sin(k * x) + c * x * x)),
                          k * np.cos(k * x) + 2 * c * x)

    return [
        (expo(17.86034986409345, -1.6370544387997217), 0.6652882953067956, 0.021680104655789),
        (expo(18.849050768776806, 0.30364728741046054), 0.5286395426353201,
         0.22194013679568447),
        (sine(8.620095025923815, -0.8227911175252856), 0.17970207576309205,
         3.8784995528207054),
        (sine(3.0, 0.1), 0.4, 1.0),
        (expo(2.0, 1.0), -0.3, 5.0),
        (rosenbrock, X0, 1e-3),
        (rosenbrock, X0, 1.0),
    ]


@pytest.mark.parametrize("case", range(len(_line_cases())))
def test_strong_wolfe_matches_torch(case):
    from torch.optim.lbfgs import _strong_wolfe as torch_strong_wolfe
    from fastnn.optim.lbfgs import _strong_wolfe
    fn, x0, t0 = _line_cases()[case]
    x = np.atleast_1d(np.asarray(x0, dtype=np.float64))
    f, g = fn(x)
    d = -g
    with np.errstate(all="ignore"):
        f_new, g_new, t, evals = _strong_wolfe(lambda x, t, d: fn(x + t * d), x, t0, d, f, g,
                                               g.dot(d))

    def torch_obj(x, t, d):
        loss, grad = fn(x + float(t) * d.numpy())
        return loss, torch.from_numpy(grad)

    dt = torch.from_numpy(d)
    tf, tg, tt, tevals = torch_strong_wolfe(torch_obj, x, t0, dt, f, torch.from_numpy(g),
                                            torch.from_numpy(g).dot(dt))
    assert evals == tevals
    np.testing.assert_allclose(float(t), float(tt), rtol=1e-12)
    np.testing.assert_allclose(f_new, tf, rtol=1e-12)
    np.testing.assert_allclose(g_new, tg.numpy(), rtol=1e-10, atol=1e-12)


def test_cubic_interpolate_matches_torch():
    from torch.optim.lbfgs import _cubic_interpolate as torch_cubic
    from fastnn.optim.lbfgs import _cubic_interpolate
    rng = np.random.default_rng(3)
    for _ in range(200):
        x1, f1, g1, x2, f2, g2 = rng.standard_normal(6) * [1, 3, 3, 1, 3, 3]
        bounds = None if rng.random() < 0.5 else tuple(sorted(rng.standard_normal(2)))
        ours = _cubic_interpolate(x1, f1, np.float64(g1), x2, f2, np.float64(g2), bounds)
        theirs = torch_cubic(x1, f1, torch.tensor(g1), x2, f2, torch.tensor(g2), bounds)
        assert float(ours) == pytest.approx(float(theirs), rel=1e-12, abs=1e-15)


# ------------------------------------------------------------------ state dicts
def to_arrays(value):
    """A torch state value with tensors as NumPy arrays (0-dim ones as 0-d arrays)."""
    if torch.is_tensor(value):
        return value.numpy().copy()
    if isinstance(value, list):
        return [to_arrays(v) for v in value]
    return value


def to_tensors(value):
    if isinstance(value, (np.ndarray, np.generic)):
        return torch.from_numpy(np.array(value))
    if isinstance(value, list):
        return [to_tensors(v) for v in value]
    return value


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_state_dict_round_trip_mid_run(dtype, line_search_fn):
    """Resuming from a state dict (into a new optimizer over copied parameters) continues
    exactly the trajectory of the original optimizer."""
    kwargs = dict(max_iter=4, history_size=3, line_search_fn=line_search_fn)
    pair = Pair(dtype)
    opt = optim.LBFGS(pair.ours, **kwargs)
    assert opt.state_dict()["state"] == {}
    for _ in range(2):
        opt.step(pair.closure(opt))
    saved = opt.state_dict()
    assert list(saved["state"]) == [0]
    assert sorted(saved["state"][0]) == sorted(
        ["func_evals", "n_iter", "d", "t", "old_dirs", "old_stps", "ro", "H_diag",
         "prev_flat_grad", "prev_loss", "al"])
    assert saved["param_groups"][0] == dict(lr=1, max_iter=4, max_eval=5,
                                            tolerance_grad=1e-7, tolerance_change=1e-9,
                                            history_size=3, line_search_fn=line_search_fn,
                                            params=[0, 1])
    twin = Pair(dtype)
    for p, q in zip(twin.ours, pair.ours):
        p.data[...] = q.data
    resumed = optim.LBFGS(twin.ours, lr=0.1, max_iter=2)
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["max_iter"] == 4
    saved["state"][0]["d"][:] = 7  # the optimizer holds copies
    saved["state"][0]["old_dirs"][0][:] = 7
    for _ in range(2):
        assert opt.step(pair.closure(opt)) == resumed.step(twin.closure(resumed))
    for p, q in zip(pair.ours, twin.ours):
        assert np.array_equal(p.data, q.data)
    a, b = opt.state_dict()["state"][0], resumed.state_dict()["state"][0]
    assert a["func_evals"] == b["func_evals"] and np.array_equal(a["d"], b["d"])


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_torch_state_dict_loads_and_ours_loads_into_torch(dtype):
    """torch's state dict (tensors as arrays) resumes torch's trajectory in fastnn, and
    fastnn's state dict (arrays as tensors) resumes fastnn's in torch."""
    kwargs = dict(max_iter=4, history_size=3, line_search_fn="strong_wolfe")
    pair = Pair(dtype)
    opt = optim.LBFGS(pair.ours, **kwargs)
    ref = torch.optim.LBFGS(pair.theirs, **kwargs)
    for _ in range(2):
        opt.step(pair.closure(opt))
        ref.step(pair.torch_closure(ref))
    theirs = ref.state_dict()
    mine = opt.state_dict()

    # torch -> fastnn: continue from torch's parameters and state
    other = Pair(dtype)
    for p, q in zip(other.ours, pair.theirs):
        p.data[...] = q.detach().numpy()
    fresh = optim.LBFGS(other.ours)
    fresh.load_state_dict({"state": {k: {n: to_arrays(v) for n, v in e.items()}
                                     for k, e in theirs["state"].items()},
                           "param_groups": theirs["param_groups"]})
    state = fresh.state_dict()["state"][0]
    assert state["d"].dtype == dtype and all(np.asarray(r).dtype == dtype for r in state["ro"])
    for _ in range(2):
        fresh.step(other.closure(fresh))
        ref.step(pair.torch_closure(ref))
    rtol, atol = tol(dtype)
    for p, q in zip(other.ours, pair.theirs):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=rtol, atol=atol)

    # fastnn -> torch
    back = Pair(dtype)
    with torch.no_grad():
        for q, p in zip(back.theirs, pair.ours):
            q.copy_(torch.from_numpy(p.data.copy()))
    tref = torch.optim.LBFGS(back.theirs)
    tref.load_state_dict({"state": {k: {n: to_tensors(v) for n, v in e.items()}
                                    for k, e in mine["state"].items()},
                          "param_groups": mine["param_groups"]})
    for _ in range(2):
        opt.step(pair.closure(opt))
        tref.step(back.torch_closure(tref))
    for p, q in zip(pair.ours, back.theirs):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=rtol, atol=atol)


def test_bad_state_dicts_change_nothing():
    pair = Pair(np.float64)
    opt = optim.LBFGS(pair.ours, max_iter=3)
    for _ in range(2):
        opt.step(pair.closure(opt))
    good = opt.state_dict()
    before = opt.state_dict()

    def broken(**changes):
        sd = opt.state_dict()
        for key, value in changes.items():
            if value is None:
                del sd["state"][0][key]
            else:
                sd["state"][0][key] = value
        return sd

    bad = [
        broken(d=np.zeros(4)),  # wrong length
        broken(d=np.zeros((5, 1))),
        broken(prev_flat_grad=np.zeros(5, dtype=np.int64)),
        broken(old_dirs=good["state"][0]["old_dirs"][:-1]),  # lengths differ
        broken(ro="x"),
        broken(t=np.zeros(2)),
        broken(n_iter=-1),
        broken(func_evals=1.5),
        broken(H_diag=None),
        broken(d=None),  # missing with n_iter > 0
        broken(momentum_buffer=np.zeros(5)),
        {"state": {1: good["state"][0]}, "param_groups": good["param_groups"]},
        {"state": good["state"], "param_groups": [dict(good["param_groups"][0],
                                                       history_size=0)]},
        {"state": good["state"], "param_groups": [dict(good["param_groups"][0],
                                                       params=[0])]},
        {"type": "SGD", "state": good["state"], "param_groups": good["param_groups"]},
        {"state": good["state"]},
    ]
    for sd in bad:
        with pytest.raises((ValueError, TypeError)):
            opt.load_state_dict(sd)
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    assert np.array_equal(after["state"][0]["d"], before["state"][0]["d"])
    more_bad = [broken(func_evals=None), broken(prev_loss="x"), broken(al=[None, "x"])]
    more_bad.append({"state": {0: "x"}, "param_groups": good["param_groups"]})
    more_bad.append({"state": [good["state"][0]], "param_groups": good["param_groups"]})
    for sd in more_bad:
        with pytest.raises((ValueError, TypeError)):
            opt.load_state_dict(sd)
    # other array forms load as the same state: 0-d arrays for numbers, a 2-D array
    # for a list of vectors, a 1-D array for a list of numbers
    entry = good["state"][0]
    forms = dict(entry, func_evals=np.array(entry["func_evals"]),
                 n_iter=np.array(entry["n_iter"]), prev_loss=np.array(entry["prev_loss"]),
                 t=np.array(entry["t"], dtype=np.float32), H_diag=np.asarray(entry["H_diag"]),
                 old_dirs=np.stack(entry["old_dirs"]), old_stps=tuple(entry["old_stps"]),
                 ro=np.array(entry["ro"]))
    other = optim.LBFGS(Pair(np.float64).ours, max_iter=3)
    other.load_state_dict({"state": {"0": forms}, "param_groups": good["param_groups"]})
    loaded = other.state_dict()["state"][0]
    assert loaded["func_evals"] == entry["func_evals"] and isinstance(loaded["n_iter"], int)
    assert isinstance(loaded["old_dirs"], list) and len(loaded["ro"]) == len(entry["ro"])
    assert loaded["t"] == np.float32(entry["t"]) and loaded["t"].dtype == np.float64
    for a, b in zip(loaded["old_dirs"], entry["old_dirs"]):
        assert np.array_equal(a, b)
    opt.load_state_dict({"state": {}, "param_groups": good["param_groups"]})
    assert opt.state_dict()["state"] == {}


# ----------------------------------------------------------------------- errors
def test_errors():
    pair = Pair(np.float64)
    p, q = pair.ours
    opt = optim.LBFGS([p, q])
    with pytest.raises(TypeError, match="closure"):
        opt.step()
    with pytest.raises(TypeError, match="closure"):
        opt.step(3.0)
    with pytest.raises(TypeError, match="returned None"):
        opt.step(lambda: None)
    with pytest.raises(ValueError, match="parameter groups"):
        optim.LBFGS([{"params": [p]}, {"params": [q]}])
    with pytest.raises(ValueError, match="parameter groups"):
        opt.add_param_group({"params": [Parameter(np.zeros(2))]})
    optim.LBFGS([{"params": [p, q], "lr": 0.5}])  # one group dict is fine
    bad = [
        (dict(lr=-1), ValueError, "lr"),
        (dict(lr=float("nan")), ValueError, "lr"),
        (dict(lr="1"), TypeError, "lr"),
        (dict(max_iter=0), ValueError, "max_iter"),
        (dict(max_iter=2.5), TypeError, "max_iter"),
        (dict(max_eval=0), ValueError, "max_eval"),
        (dict(max_eval=True), TypeError, "max_eval"),
        (dict(history_size=0), ValueError, "history_size"),
        (dict(tolerance_grad=-1e-3), ValueError, "tolerance_grad"),
        (dict(tolerance_change=float("inf")), ValueError, "tolerance_change"),
        (dict(line_search_fn="armijo"), ValueError, "line_search_fn"),
    ]
    for kwargs, exc, match in bad:
        with pytest.raises(exc, match=match):
            optim.LBFGS([p, q], **kwargs)
    with pytest.raises(TypeError):
        optim.LBFGS([p, q], momentum=0.9)
    with pytest.raises(ValueError, match="empty"):
        optim.LBFGS([])
    # a hyper-parameter broken between steps is caught before anything moves
    values = p.data.copy()
    opt.param_groups[0]["history_size"] = -2
    with pytest.raises(ValueError, match="history_size"):
        opt.step(pair.closure(opt))
    assert np.array_equal(p.data, values)
    # a parameter that changed shape
    opt.param_groups[0]["history_size"] = 5
    p.data = np.zeros(4)
    with pytest.raises(ValueError, match="changed shape"):
        opt.step(pair.closure(opt))


def test_default_max_eval_repr_and_export():
    p = Parameter(np.zeros(3))
    assert optim.LBFGS([p]).param_groups[0]["max_eval"] == 25
    assert optim.LBFGS([p], max_iter=7).param_groups[0]["max_eval"] == 8
    assert optim.LBFGS([p], max_iter=7).param_groups[0]["max_eval"] == \
        torch.optim.LBFGS([torch.zeros(3, requires_grad=True)], max_iter=7) \
        .param_groups[0]["max_eval"]
    assert "LBFGS" in optim.__all__ and "history_size: 100" in repr(optim.LBFGS([p]))


def test_lr_scheduler_drives_lbfgs():
    pair = Pair(np.float64)
    opt = optim.LBFGS(pair.ours, lr=1, max_iter=3)
    ref = torch.optim.LBFGS(pair.theirs, lr=1, max_iter=3)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    tsched = torch.optim.lr_scheduler.StepLR(ref, step_size=1, gamma=0.5)
    for _ in range(3):
        opt.step(pair.closure(opt))
        ref.step(pair.torch_closure(ref))
        sched.step()
        tsched.step()
    assert opt.param_groups[0]["lr"] == ref.param_groups[0]["lr"]
    pair.assert_close(np.float64)


# ------------------------------------------------------------------------- GPU
HAS_CUDA = "cuda" in fastnn.backends()
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def gpu_parameters_run(line_search_fn, frozen):
    """Parameters on the GPU (a Linear moved there; the closure fills the gradients): the
    flat vectors go through the host, parameters and flat buffers stay on the device, and
    the trajectory is the host's exactly (the same NumPy arithmetic). frozen: the bias is
    frozen, so the vectors are gathered parameter by parameter. (Needs no torch: the
    simulator test runs it in a subprocess.)"""
    from fastnn import device as fdevice
    fastnn.manual_seed(0)
    host = nn.Linear(3, 2).double()
    gpu = nn.Linear(3, 2).double()
    gpu.load_state_dict(host.state_dict())
    gpu.to("cuda")
    runs = []
    for model in (host, gpu):
        params = list(model.parameters())
        if frozen:
            params[1].requires_grad = False
        opt = optim.LBFGS(params, max_iter=4, history_size=3, line_search_fn=line_search_fn)

        def closure(params=params, opt=opt):
            opt.zero_grad()
            flat = np.concatenate([fdevice.host_copy(p.data).ravel() for p in params])
            loss, g = rosenbrock(flat - 0.5)
            offset = 0
            for p in params:
                n = p.data.size
                fdevice.namespace_of(p.grad).copy_into(
                    p.grad, np.ascontiguousarray(g[offset:offset + n].reshape(p.data.shape)))
                offset += n
            return loss

        losses = [opt.step(closure) for _ in range(3)]
        runs.append((losses, [fdevice.host_copy(p.data) for p in params], opt))
    assert runs[1][0] == runs[0][0]
    for a, b in zip(runs[1][1], runs[0][1]):
        assert np.array_equal(a, b)
    assert np.array_equal(runs[1][2].state_dict()["state"][0]["d"],
                          runs[0][2].state_dict()["state"][0]["d"])
    assert all(fdevice.is_device_array(p.data) and fdevice.is_device_array(p.grad)
               for p in gpu.parameters())
    assert all(fdevice.is_device_array(b.data) for b in runs[1][2]._buckets[0])
    if frozen:
        assert np.array_equal(fdevice.host_copy(gpu.bias.data), host.bias.data)


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA backend here")
@pytest.mark.parametrize("frozen", [False, True], ids=["one_bucket", "per_parameter"])
@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_gpu_parameters_match_the_host(line_search_fn, frozen):
    gpu_parameters_run(line_search_fn, frozen)


@pytest.mark.skipif(not HAS_CUDA or SIMULATOR,
                    reason="needs a GPU (too slow under the CUDA simulator)")
@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_gpu_model_matches_the_host(line_search_fn):
    """A model on the GPU (forward and backward kernels there) against its host twin."""
    from fastnn import device as fdevice
    fastnn.manual_seed(0)
    host = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    gpu = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    gpu.load_state_dict(host.state_dict())
    gpu.to("cuda")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((10, 3))
    y = rng.standard_normal((10, 2))
    runs = []
    for model, batch, target in ((host, x, y), (gpu, fdevice.to_device(x),
                                               fdevice.to_device(y))):
        opt = optim.LBFGS(model.parameters(), max_iter=4, line_search_fn=line_search_fn)
        crit = nn.MSELoss()

        def closure(model=model, opt=opt, crit=crit, batch=batch, target=target):
            opt.zero_grad()
            loss = crit(model(batch), target)
            model.backward(crit.backward())
            return loss

        losses = [float(opt.step(closure)) for _ in range(2)]
        runs.append((losses, [fdevice.host_copy(p.data) for p in model.parameters()]))
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-9)
    for a, b in zip(runs[1][1], runs[0][1]):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


# gpu_parameters_run as a script, without torch or pytest to import there
GPU_SCRIPT = "\n".join(["import numpy as np", "import fastnn", "from fastnn import nn, optim",
                        inspect.getsource(rosenbrock), inspect.getsource(gpu_parameters_run),
                        "for fn in (None, 'strong_wolfe'):",
                        "    for frozen in (False, True):",
                        "        gpu_parameters_run(fn, frozen)",
                        "print('gpu runs ok')"])


@pytest.mark.skipif(SIMULATOR, reason="already under the simulator")
@in_background(("-c", GPU_SCRIPT), {"NUMBA_ENABLE_CUDASIM": "1", "FASTNN_CUDA_THREADS": "32",
                                    "FASTNN_CUDA_MAX_BLOCKS": "2"})
def test_gpu_parameters_under_the_cuda_simulator(background_run):
    """gpu_parameters_run in a subprocess under Numba's CUDA simulator (the simulator must
    be chosen before numba is imported), run in the background from the end of collection
    (tests/simulator_runs.py)."""
    code, output = background_run.result(timeout=300)
    assert code == 0 and "gpu runs ok" in output, output[-4000:]
