"""fastnn.optim against torch.optim 2.13: state dicts both ways (torch's, tensors as given
or as arrays, load and continue as torch's does; ours have torch's layout), parameter
groups, hooks, ``optimizer.state``, mid-run edits, LBFGS and Adafactor trajectories."""
import copy

import numpy as np
import pytest

import fastnn
from fastnn import optim
from fastnn.nn import Parameter

torch = pytest.importorskip("torch")

BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.backends()]
SHAPES = [(4, 3), (5,), (2, 3)]

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.2, weight_decay=1e-2)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, decoupled_weight_decay=True, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01, amsgrad=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.1, initial_accumulator_value=0.2)),
    ("Adamax", dict(lr=0.01, weight_decay=0.1)),
    ("NAdam", dict(lr=0.01)),
    ("NAdam", dict(lr=0.01, decoupled_weight_decay=True, weight_decay=0.1)),
    ("RAdam", dict(lr=0.01, decoupled_weight_decay=True, weight_decay=0.1)),
    ("Adadelta", dict(lr=0.5, weight_decay=0.01)),
    ("Rprop", dict(lr=0.02)),
    ("ASGD", dict(lr=0.05, t0=2)),
    ("Adafactor", dict(lr=0.05, weight_decay=0.1, beta2_decay=-0.5, d=2.0,
                       eps=(1e-30, 1e-3))),
    ("Muon", dict(lr=0.02)),
]
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(CASES)]
TOL = dict(rtol=1e-12, atol=1e-14)


def twins(name, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(4, 3), (3, 5)] if name == "Muon" else SHAPES
    values = [rng.standard_normal(s).astype(dtype) for s in shapes]
    return ([Parameter(v.copy()) for v in values],
            [torch.nn.Parameter(torch.tensor(v)) for v in values])


def grads(step, shapes, dtype=np.float64):
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def steps(opt, ref, ours, theirs, start, stop):
    for s in range(start, stop):
        for p, q, g in zip(ours, theirs, grads(s, [p.data.shape for p in ours],
                                                 ours[0].data.dtype)):
            if opt is not None:
                p.grad[...] = g
            if ref is not None:
                q.grad = torch.tensor(g)
        if opt is not None:
            opt.step()
        if ref is not None:
            ref.step()


def assert_same(ours, theirs, **tol):
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.data, q.detach().numpy(), **(tol or TOL))


def as_numpy(state_dict):
    """torch's state dict with every tensor through .numpy() (0-d ones too)."""
    return {"state": {i: {k: (v.numpy() if torch.is_tensor(v) else v) for k, v in e.items()}
                      for i, e in state_dict["state"].items()},
            "param_groups": state_dict["param_groups"]}


def reloaded_torch(name, kwargs, theirs, saved):
    """A new torch optimizer over copies of theirs, loaded from saved (as torch resumes)."""
    theirs = [torch.nn.Parameter(q.detach().clone()) for q in theirs]
    ref = getattr(torch.optim, name)(theirs, **kwargs)
    ref.load_state_dict(copy.deepcopy(saved))
    return ref, theirs


# ---------------------------------------------------------- torch -> fastnn
@pytest.mark.parametrize("mode", ["given", "numpy"])
@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_torch_state_dict_loads_and_continues_as_torch(name, kwargs, mode):
    """torch's state dict, its tensors as given (float 'step' tensors, 0-d mu_product,
    eta, mu) or through .numpy(), loads; the next steps are torch's (reloaded too)."""
    ours, theirs = twins(name)
    ref = getattr(torch.optim, name)(theirs, **kwargs)
    steps(None, ref, ours, theirs, 0, 3)
    saved = ref.state_dict()
    ref, theirs = reloaded_torch(name, kwargs, theirs, saved)
    for p, q in zip(ours, theirs):
        p.data[...] = q.detach().numpy()
    opt = getattr(optim, name)(ours, **kwargs)
    opt.load_state_dict(copy.deepcopy(saved) if mode == "given" else as_numpy(saved))
    steps(opt, ref, ours, theirs, 3, 6)
    assert_same(ours, theirs)


def test_torch_state_dict_on_every_backend():
    for backend in BACKENDS:
        with fastnn.use_backend(backend):
            for name, kwargs in [CASES[4], CASES[9], CASES[14]]:
                test_torch_state_dict_loads_and_continues_as_torch(name, kwargs, "given")


def test_bad_steps_are_refused():
    ours, _ = twins("Adam")
    opt = optim.Adam(ours)
    steps(opt, None, ours, ours, 0, 1)
    for bad in (2.5, -1.0, torch.tensor([1.0, 2.0]), True, "3"):
        saved = opt.state_dict()
        saved["state"][0]["step"] = bad
        with pytest.raises(ValueError, match="step must be an int >= 0"):
            opt.load_state_dict(saved)
    saved = opt.state_dict()
    saved["state"][0]["step"] = torch.tensor(7.0)
    opt.load_state_dict(saved)
    assert opt.state_dict()["state"][0]["step"] == 7


# ---------------------------------------------------------- fastnn's layout
@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_state_dict_has_torchs_structure(name, kwargs):
    """The same group keys and values (defaults' types too), state indices, state names
    in torch's order, values; fastnn's dict (arrays as tensors) loads into torch, which
    continues as fastnn reloaded from it does."""
    ours, theirs = twins(name)
    opt = getattr(optim, name)(ours, **kwargs)
    ref = getattr(torch.optim, name)(theirs, **kwargs)
    steps(opt, ref, ours, theirs, 0, 2)
    mine, torchs = opt.state_dict(), ref.state_dict()
    for a, b in zip(mine["param_groups"], torchs["param_groups"]):
        assert set(a) == set(b)
        for key, value in b.items():
            assert a[key] == value and type(a[key]) is type(value), key
    assert opt.defaults == ref.defaults
    assert list(mine["state"]) == list(torchs["state"])
    for index, entry in torchs["state"].items():
        assert list(mine["state"][index]) == list(entry), index
        for key, value in entry.items():
            got = mine["state"][index][key]
            if key == "step":
                assert got == value.item()
            else:
                assert np.shape(got) == tuple(value.shape)
                np.testing.assert_allclose(got, value.numpy(), **TOL)
    as_tensors = {"param_groups": mine["param_groups"], "state": {
        i: {k: (torch.as_tensor(v) if isinstance(v, np.ndarray) else v) for k, v in e.items()}
        for i, e in mine["state"].items()}}
    ref, theirs = reloaded_torch(name, kwargs, theirs, as_tensors)
    opt = getattr(optim, name)(ours, **kwargs)
    opt.load_state_dict(mine)
    steps(opt, ref, ours, theirs, 2, 5)
    assert_same(ours, theirs)


def test_sgd_state_is_a_momentum_buffer_alone():
    ours, _ = twins("SGD")
    plain, heavy = optim.SGD(ours[:1], lr=0.1), optim.SGD(ours[1:], lr=0.1, momentum=0.9)
    steps(plain, None, ours[:1], ours, 0, 2)
    steps(heavy, None, ours[1:], ours, 0, 2)
    assert plain.state_dict()["state"] == {} and len(plain.state) == 0
    assert [list(e) for e in heavy.state_dict()["state"].values()] == [["momentum_buffer"]] * 2


def test_nadam_and_asgd_scalars_are_torchs_float32():
    """torch keeps mu_product, eta and mu in float32 0-d tensors (its default dtype), a
    loaded tensor in the parameter's dtype: a float64 trajectory matches bit for bit in
    those scalars, across a reload of both."""
    for name in ("NAdam", "ASGD"):
        ours, theirs = twins(name)
        opt, ref = getattr(optim, name)(ours, lr=0.05), getattr(torch.optim, name)(theirs, lr=0.05)
        steps(opt, ref, ours, theirs, 0, 4)
        for key in ("mu_product",) if name == "NAdam" else ("eta", "mu"):
            got, want = opt.state_dict()["state"][0][key], ref.state_dict()["state"][0][key]
            assert got.dtype == np.float32 and got == want.numpy()
        ref, theirs = reloaded_torch(name, dict(lr=0.05), theirs, ref.state_dict())
        saved = opt.state_dict()
        opt = getattr(optim, name)(ours, lr=0.05)
        opt.load_state_dict(saved)
        steps(opt, ref, ours, theirs, 4, 8)
        assert_same(ours, theirs, rtol=1e-14, atol=1e-15)


# ------------------------------------------------------------------- groups
def test_groups_keep_torchs_flags():
    ours, theirs = twins("Adam")
    opt = optim.Adam(ours[:1], lr=0.1, foreach=False)
    ref = torch.optim.Adam(theirs[:1], lr=0.1, foreach=False)
    opt.add_param_group({"params": ours[1:2], "weight_decay": 0.5, "foreach": True})
    ref.add_param_group({"params": theirs[1:2], "weight_decay": 0.5, "foreach": True})
    for a, b in zip(opt.param_groups, ref.param_groups):
        assert {k: v for k, v in a.items() if k != "params"} == \
               {k: v for k, v in b.items() if k != "params"}
    assert repr(opt).splitlines()[2:] == repr(ref).splitlines()[2:]
    with pytest.raises(ValueError, match="more than once"):
        opt.add_param_group({"params": ours[:1]})
    with pytest.raises(ValueError, match="differentiable=True is not supported"):
        opt.add_param_group({"params": ours[2:], "differentiable": True})
    with pytest.raises(TypeError, match="unexpected keyword argument 'capturable'"):
        optim.SGD(ours, lr=0.1, capturable=False)  # as torch's SGD
    saved = ref.state_dict()
    saved["param_groups"][0]["foreach"] = None
    opt.load_state_dict(saved)
    assert opt.param_groups[0]["foreach"] is None


EDITS = {3: ("lr", 0.003), 5: ("weight_decay", 0.05), 6: ("lr", 0.2)}


def test_step_closure_zero_grad_and_mid_run_edits_as_torch():
    """step(closure) returns the closure's loss; a group added at step 2 and lr and
    weight_decay edited in param_groups between steps act as in torch."""
    for name, kwargs in [("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1)),
                         ("Adam", dict(lr=0.01, amsgrad=True)), ("RMSprop", dict(lr=0.01)),
                         ("Adagrad", dict(lr=0.1, lr_decay=0.01)), ("ASGD", dict(lr=0.01)),
                         ("NAdam", dict(lr=0.01)), ("Adafactor", dict(lr=0.01))]:
        ours, theirs = twins(name)
        opt = getattr(optim, name)(ours[:2], **kwargs)
        ref = getattr(torch.optim, name)(theirs[:2], **kwargs)
        for s in range(8):
            if s == 1:  # (gradients of step 0 again)
                assert opt.step(lambda: 2.5) == ref.step(lambda: 2.5) == 2.5
            if s == 2:
                opt.add_param_group({"params": ours[2:], "lr": 0.02})
                ref.add_param_group({"params": theirs[2:], "lr": 0.02})
            if s in EDITS:
                for group in opt.param_groups + ref.param_groups:
                    group[EDITS[s][0]] = EDITS[s][1]
            n = 3 if s >= 2 else 2
            steps(opt, ref, ours[:n], theirs[:n], s, s + 1)
        assert_same(ours, theirs)
        opt.zero_grad()
        assert all(not p.grad.any() for p in ours)


# -------------------------------------------------------------------- hooks
def _hook_log(mod, params, grad):
    opt = mod.Adam(params, lr=0.1)
    log = []
    first = opt.register_step_pre_hook(
        lambda o, args, kwargs: log.append(("pre", len(args), args[0] is o, sorted(kwargs))))
    opt.register_step_post_hook(lambda o, args, kwargs: log.append("post"))
    opt.register_state_dict_pre_hook(lambda o: log.append("sd_pre"))
    opt.register_state_dict_post_hook(lambda o, sd: {**sd, "extra": 1})
    opt.register_state_dict_post_hook(lambda o, sd: log.append("sd_post_first"), prepend=True)
    opt.register_load_state_dict_pre_hook(
        lambda o, sd: {k: v for k, v in sd.items() if k != "extra"})
    opt.register_load_state_dict_post_hook(lambda o: log.append("load_post"))
    grad(params)
    opt.step()
    opt.step(closure=lambda: 1.0)
    first.remove()
    first.remove()
    opt.step()
    saved = opt.state_dict()
    log.append("extra" in saved)
    opt.load_state_dict(saved)
    state = opt.state
    log.append((len(state), [list(v) for v in state.values()], params[0] in state))
    return log


def test_hooks_and_state_as_torch():
    ours, theirs = twins("Adam")

    def fill(params):
        for p in params:
            p.grad[...] = 1.0

    def fill_torch(params):
        for q in params:
            q.grad = torch.ones_like(q)

    assert _hook_log(optim, ours, fill) == _hook_log(torch.optim, theirs, fill_torch)


def test_state_arrays_are_live_views():
    ours, _ = twins("SGD")
    opt = optim.SGD(ours, lr=0.1, momentum=0.9)
    steps(opt, None, ours, ours, 0, 1)
    opt.state[ours[0]]["momentum_buffer"][...] = 0.0
    assert not opt.state_dict()["state"][0]["momentum_buffer"].any()
    lbfgs = optim.LBFGS(ours[:1])
    assert len(lbfgs.state) == 0


# -------------------------------------------------------------------- LBFGS
def _problem(kind, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((40, 6))
    if kind == "ls":
        y = X @ rng.standard_normal(6) + 0.1 * rng.standard_normal(40)
    else:
        y = (rng.random(40) < 1 / (1 + np.exp(-X @ rng.standard_normal(6)))).astype(float)
    return torch.tensor(X), torch.tensor(y), 0.1 * rng.standard_normal(6)


def _torch_loss(kind, X, y, w, b):
    z = X @ w + b[0]
    if kind == "ls":
        return 0.5 * ((z - y) ** 2).mean() + 0.05 * (w @ w)
    return (torch.nn.functional.softplus(z) - y * z).mean()


def _closures(kind, seed, ours, theirs, opt, ref):
    X, y, _ = _problem(kind, seed)
    counts = [0, 0]

    def closure():  # the same loss, evaluated by torch on fastnn's values
        opt.zero_grad()
        counts[0] += 1
        w, b = (torch.tensor(p.data, requires_grad=True) for p in ours)
        loss = _torch_loss(kind, X, y, w, b)
        loss.backward()
        ours[0].grad[...], ours[1].grad[...] = w.grad.numpy(), b.grad.numpy()
        return loss.item()

    def tclosure():
        ref.zero_grad()
        counts[1] += 1
        loss = _torch_loss(kind, X, y, *theirs)
        loss.backward()
        return loss
    return closure, tclosure, counts


LBFGS_CASES = [
    dict(), dict(line_search_fn="strong_wolfe"), dict(history_size=2, max_iter=7),
    dict(history_size=1, line_search_fn="strong_wolfe", max_iter=9, max_eval=11),
    dict(lr=0.5, tolerance_grad=1e-3, tolerance_change=1e-4),
    dict(max_iter=1), dict(tolerance_grad=1e-12, tolerance_change=1e-14, max_eval=6),
]


@pytest.mark.parametrize("kind", ["ls", "logreg"])
@pytest.mark.parametrize("case", range(len(LBFGS_CASES)))
def test_lbfgs_iterates_are_torchs(kind, case):
    kwargs = LBFGS_CASES[case]
    _, _, w0 = _problem(kind, case)
    ours = [Parameter(w0.copy()), Parameter(np.array([0.05]))]
    theirs = [torch.nn.Parameter(torch.tensor(p.data)) for p in ours]
    opt, ref = optim.LBFGS(ours, **kwargs), torch.optim.LBFGS(theirs, **kwargs)
    closure, tclosure, counts = _closures(kind, case, ours, theirs, opt, ref)
    for _ in range(3):
        assert opt.step(closure) == pytest.approx(ref.step(tclosure).item(), rel=1e-13)
        assert_same(ours, theirs, rtol=1e-13, atol=1e-15)
    assert counts[0] == counts[1]
    mine, torchs = opt.state_dict()["state"][0], ref.state_dict()["state"][0]
    assert list(mine) == list(torchs)
    assert (mine["func_evals"], mine["n_iter"]) == (torchs["func_evals"], torchs["n_iter"])


def test_lbfgs_torch_state_dict_as_given_continues():
    for line_search_fn in (None, "strong_wolfe"):
        kwargs = dict(max_iter=4, history_size=3, line_search_fn=line_search_fn)
        _, _, w0 = _problem("ls", 9)
        ours = [Parameter(w0.copy()), Parameter(np.array([0.05]))]
        theirs = [torch.nn.Parameter(torch.tensor(p.data)) for p in ours]
        ref = torch.optim.LBFGS(theirs, **kwargs)
        _, tclosure, _ = _closures("ls", 9, ours, theirs, None, ref)
        ref.step(tclosure)
        for p, q in zip(ours, theirs):
            p.data[...] = q.detach().numpy()
        opt = optim.LBFGS(ours, **kwargs)
        opt.load_state_dict(copy.deepcopy(ref.state_dict()))
        closure, tclosure, _ = _closures("ls", 9, ours, theirs, opt, ref)
        for _ in range(3):
            opt.step(closure)
            ref.step(tclosure)
        assert_same(ours, theirs, rtol=1e-13, atol=1e-15)
        assert list(opt.state_dict()["state"][0]) == list(ref.state_dict()["state"][0])


# ---------------------------------------------------------------- Adafactor
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adafactor_random_configurations_follow_torch(dtype):
    shapes = [(5, 4), (7,), (3, 2, 4), (), (1, 6), (6, 1)]
    for seed in range(16):
        rng = np.random.default_rng(seed)
        kwargs = {"lr": float(rng.choice([1e-2, 0.1, 0.0])),
                  "beta2_decay": float(rng.choice([-0.8, -0.5, 0.0])),
                  "eps": (None if seed % 2 else float(rng.choice([1e-30, 1e-3])),
                          float(rng.choice([1e-3, 0.0]))),
                  "d": float(rng.choice([1.0, 2.0])),
                  "weight_decay": float(rng.choice([0.0, 0.1])),
                  "foreach": [None, False, True][seed % 3], "maximize": seed % 4 == 1}
        picked = [shapes[j] for j in rng.choice(len(shapes), 3, replace=False)]
        values = [rng.standard_normal(s).astype(dtype) for s in picked]
        ours = [Parameter(v.copy()) for v in values]
        theirs = [torch.nn.Parameter(torch.tensor(v)) for v in values]
        opt, ref = optim.Adafactor(ours, **kwargs), torch.optim.Adafactor(theirs, **kwargs)
        for s in range(5):
            for k, (p, q) in enumerate(zip(ours, theirs)):
                g = rng.standard_normal(p.data.shape).astype(dtype) * (s != 2 or k != 0)
                p.grad[...] = g
                q.grad = torch.tensor(g)
            opt.step()
            ref.step()
        # (a few ulps: torch's norms and fused add sum in another order)
        tol = dict(rtol=1e-13, atol=1e-15) if dtype == np.float64 else dict(rtol=1e-5,
                                                                              atol=1e-6)
        assert_same(ours, theirs, **tol)
        assert opt.param_groups[0]["foreach"] is kwargs["foreach"]
