"""Optimizer and scheduler arguments PyTorch 2.13 accepts, against torch.optim: empty
parameter groups, float counts in the schedulers, a user's Optimizer subclass's own
state in state dicts and checkpoints, get_lr() and _LRScheduler, 0/1 and NumPy bools
for flags (and 0-d arrays for numbers), the warning for scheduler.step() before
optimizer.step(), one-element arrays for ReduceLROnPlateau, and a set as a group's
params (refused, as PyTorch refuses it)."""
import io
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import nn, optim
from fastnn.nn import Parameter
from fastnn.optim import lr_scheduler
from fastnn.validation import check_bool
from conftest import torch_to_numpy

import torch  # noqa: E402 (after fastnn)
from torch.optim import lr_scheduler as torch_sched  # noqa: E402

torch.set_num_threads(2)
TOL = dict(rtol=1e-10, atol=1e-12)
ORDER_WARNING = "Detected call of `lr_scheduler.step()` before `optimizer.step()`"


def twins(shapes, seed=0, dtype=np.float64):
    """fastnn and torch parameters with the same random values."""
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(s).astype(dtype) for s in shapes]
    return ([Parameter(v.copy()) for v in values],
            [torch.nn.Parameter(torch.tensor(v.copy())) for v in values])


def random_grads(ours, theirs, rng):
    for p, q in zip(ours, theirs):
        g = rng.standard_normal(p.data.shape).astype(p.data.dtype)
        p.grad = g.copy()
        q.grad = torch.tensor(g)


def assert_same_params(ours, theirs, **tol):
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.data, q.detach().numpy(), **(tol or TOL))


def step_both(opt, ref, ours, theirs, rng, steps):
    """steps optimizer steps of both on the same random gradients."""
    for _ in range(steps):
        random_grads(ours, theirs, rng)
        opt.step()
        ref.step()


def hyper(groups):
    """The param groups' hyper-parameters (params as given: lists of indices)."""
    return [{k: (tuple(v) if isinstance(v, list) and k != "params" else v)
             for k, v in g.items()} for g in groups]


# ------------------------------------------------------------ 1. empty groups
def test_an_empty_group_is_kept_and_stepped_over_as_in_torch():
    (w, v), (tw, tv) = twins([(3,), (2,)])
    ours = optim.AdamW([{"params": [w]}, {"params": [], "weight_decay": 0.0}], lr=0.1)
    theirs = torch.optim.AdamW([{"params": [tw]}, {"params": [], "weight_decay": 0.0}],
                               lr=0.1)
    rng = np.random.default_rng(1)
    random_grads([w], [tw], rng)
    ours.step()
    theirs.step()
    ours.add_param_group({"params": []})
    theirs.add_param_group({"params": []})
    ours.add_param_group({"params": [v], "lr": 0.05})
    theirs.add_param_group({"params": [tv], "lr": 0.05})
    for _ in range(3):
        random_grads([w, v], [tw, tv], rng)
        ours.step()
        theirs.step()
    assert_same_params([w, v], [tw, tv])
    saved, ref = ours.state_dict(), theirs.state_dict()
    assert [g["params"] for g in saved["param_groups"]] == [[0], [], [], [1]]
    assert [g["params"] for g in saved["param_groups"]] == \
        [g["params"] for g in ref["param_groups"]]
    assert [g["weight_decay"] for g in saved["param_groups"]] == \
        [g["weight_decay"] for g in ref["param_groups"]]
    assert sorted(saved["state"]) == sorted(ref["state"]) == [0, 1]
    assert saved["state"][1]["step"] == int(ref["state"][1]["step"]) == 3
    # a torch state dict with empty groups loads, and the next steps stay equal
    (w2, v2), _ = twins([(3,), (2,)], seed=5)
    fresh = optim.AdamW([{"params": [w2]}, {"params": [], "weight_decay": 0.0}], lr=0.1)
    fresh.add_param_group({"params": []})
    fresh.add_param_group({"params": [v2]})
    w2.data[...] = w.data
    v2.data[...] = v.data
    fresh.load_state_dict({"state": {k: {n: (t.numpy() if isinstance(t, torch.Tensor) else t)
                                          for n, t in e.items()}
                                     for k, e in ref["state"].items()},
                           "param_groups": ref["param_groups"]})
    for _ in range(2):
        random_grads([w, v], [tw, tv], rng)
        w2.grad, v2.grad = w.grad.copy(), v.grad.copy()
        fresh.step()
        theirs.step()
    assert_same_params([w2, v2], [tw, tv])


def test_only_an_optimizer_with_no_group_at_all_is_refused():
    with pytest.raises(ValueError, match="empty parameter list"):
        torch.optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="SGD: got an empty parameter list"):
        optim.SGD([], lr=0.1)
    # one group with no parameters is a group, in both
    assert torch.optim.SGD([{"params": []}], lr=0.1).state_dict()["param_groups"][0][
        "params"] == []
    opt = optim.SGD([{"params": []}], lr=0.1, momentum=0.9)
    opt.step()
    opt.zero_grad()
    saved = opt.state_dict()
    assert saved["state"] == {} and saved["param_groups"][0]["params"] == []
    assert saved["param_groups"][0]["momentum"] == 0.9
    opt.load_state_dict(saved)
    # LBFGS too (one group, PyTorch's): it builds; its step has nothing to optimise
    # (PyTorch's fails on its first parameter with an IndexError)
    lbfgs = optim.LBFGS([{"params": []}])
    assert lbfgs.state_dict()["param_groups"][0]["params"] == []
    with pytest.raises(IndexError):
        torch.optim.LBFGS([{"params": []}]).step(lambda: torch.tensor(0.0))
    with pytest.raises(IndexError, match="LBFGS.step: the parameter group is empty"):
        lbfgs.step(lambda: 0.0)


OPTIMIZERS = {
    "SGD": dict(lr=0.1, momentum=0.9, nesterov=True),
    "Adam": dict(lr=0.01, amsgrad=True),
    "AdamW": dict(lr=0.01),
    "RMSprop": dict(lr=0.01, momentum=0.5, centered=True),
    "Adagrad": dict(lr=0.1),
    "Adamax": dict(lr=0.01),
    "NAdam": dict(lr=0.01),
    "RAdam": dict(lr=0.01),
    "Adadelta": dict(lr=0.5),
    "Rprop": dict(lr=0.01),
    "ASGD": dict(lr=0.01),
    "Adafactor": dict(lr=0.01),
    "Muon": dict(lr=0.01),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_steps_around_an_empty_group(name):
    """An empty group between two others (flat buffers, host optimizers and fused
    kernels alike): the same parameters and state as torch's, a state dict round trip
    and a checkpoint round trip."""
    kwargs = OPTIMIZERS[name]
    shapes = [(3, 4), (2, 3)] if name == "Muon" else [(3, 4), (5,)]
    ours, theirs = twins(shapes)
    spec = lambda ps: [{"params": [ps[0]]}, {"params": [], "lr": 0.5},  # noqa: E731
                       {"params": [ps[1]]}]
    opt = getattr(optim, name)(spec(ours), **kwargs)
    ref = getattr(torch.optim, name)(spec(theirs), **kwargs)
    rng = np.random.default_rng(2)
    step_both(opt, ref, ours, theirs, rng, 3)
    tol = dict(rtol=1e-5, atol=1e-7) if name == "Muon" else TOL
    assert_same_params(ours, theirs, **tol)
    saved = opt.state_dict()
    assert [g["params"] for g in saved["param_groups"]] == [[0], [], [1]]
    assert sorted(saved["state"]) == sorted(ref.state_dict()["state"])
    # a state dict and a checkpoint round trip: the next steps equal torch's
    model = nn.ParameterList(ours)
    buf = io.BytesIO()
    fastnn.save(model, buf, optimizer=opt)
    again = getattr(optim, name)(spec(ours), **kwargs)
    buf.seek(0)
    fastnn.io.load_checkpoint(buf, model=model, optimizer=again)
    reloaded = getattr(optim, name)(spec(ours), **kwargs)
    reloaded.load_state_dict(saved)
    for opt_ in (again, reloaded):
        assert [g["params"] for g in opt_.state_dict()["param_groups"]] == [[0], [], [1]]
    random_grads(ours, theirs, rng)
    again.step()
    ref.step()
    assert_same_params(ours, theirs, **tol)


def test_schedulers_drive_an_optimizer_with_an_empty_group_as_torch():
    (w,), (tw,) = twins([(3,)])
    builds = {
        "step": lambda m, o: m.StepLR(o, 2, 0.5),
        "onecycle": lambda m, o: m.OneCycleLR(o, [1.0, 0.5], total_steps=10),
        "cyclic": lambda m, o: m.CyclicLR(o, 0.01, [0.1, 0.2], step_size_up=2),
        "chained": lambda m, o: m.ChainedScheduler([m.ConstantLR(o, 0.5, 2),
                                                    m.ExponentialLR(o, 0.9)]),
        "plateau": lambda m, o: m.ReduceLROnPlateau(o, patience=0),
    }
    for name, build in builds.items():
        opt = optim.SGD([{"params": [w]}, {"params": [], "lr": 0.2}], lr=0.1, momentum=0.9)
        ref = torch.optim.SGD([{"params": [tw]}, {"params": [], "lr": 0.2}], lr=0.1,
                              momentum=0.9)
        ours, theirs = build(lr_scheduler, opt), build(torch_sched, ref)
        for _ in range(6):
            w.grad, tw.grad = np.ones(3), torch.ones(3, dtype=torch.float64)
            opt.step()
            ref.step()
            if name == "plateau":
                ours.step(1.0)
                theirs.step(1.0)
            else:
                ours.step()
                theirs.step()
            np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12)
            assert [g.get("momentum") for g in opt.param_groups] == pytest.approx(
                [g.get("momentum") for g in ref.param_groups])
        opt.load_state_dict(opt.state_dict())


# ------------------------------------------------------ 2. float counts
FLOAT_COUNTS = {
    "step_25.0": lambda m, o: m.StepLR(o, step_size=2.0, gamma=0.5),
    "step_2.5": lambda m, o: m.StepLR(o, step_size=2.5, gamma=0.5),
    "multistep": lambda m, o: m.MultiStepLR(o, milestones=[2.0, 4.0], gamma=0.5),
    "multistep_frac": lambda m, o: m.MultiStepLR(o, milestones=[2.5, 4.0], gamma=0.5),
    "multistep_twice": lambda m, o: m.MultiStepLR(o, milestones=[2.0, 2], gamma=0.5),
    "linear": lambda m, o: m.LinearLR(o, start_factor=0.5, total_iters=3.0),
    "linear_frac": lambda m, o: m.LinearLR(o, start_factor=0.5, total_iters=2.5),
    "polynomial": lambda m, o: m.PolynomialLR(o, total_iters=4.0, power=2.0),
    "polynomial_frac": lambda m, o: m.PolynomialLR(o, total_iters=2.5),
    "constant": lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=2.0),
    "constant_frac": lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=2.5),
    "sequential": lambda m, o: m.SequentialLR(
        o, [m.ConstantLR(o, factor=0.5, total_iters=10), m.ExponentialLR(o, 0.5)],
        milestones=[3.0]),
    "sequential_frac": lambda m, o: m.SequentialLR(
        o, [m.ConstantLR(o, factor=0.5, total_iters=10), m.ExponentialLR(o, 0.5)],
        milestones=[2.5]),
}


@pytest.mark.parametrize("name", sorted(FLOAT_COUNTS))
def test_float_counts_give_torchs_rates(name):
    (w,), (tw,) = twins([(3,)])
    opt, ref = optim.SGD([w], lr=1.0), torch.optim.SGD([tw], lr=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = FLOAT_COUNTS[name](lr_scheduler, opt), FLOAT_COUNTS[name](torch_sched, ref)
    rates, ref_rates = [opt.param_groups[0]["lr"]], [ref.param_groups[0]["lr"]]
    for epoch in range(9):
        opt.step()
        ref.step()
        ours.step()
        theirs.step()
        rates.append(opt.param_groups[0]["lr"])
        ref_rates.append(ref.param_groups[0]["lr"])
    np.testing.assert_allclose(rates, ref_rates, rtol=1e-12, atol=1e-15)
    # the closed form at an epoch (PyTorch's deprecated step(epoch)) too
    if not name.startswith("sequential"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours.step(5)
            theirs.step(5)
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12)


@pytest.mark.parametrize("patience, cooldown", [(5.0, 0), (2.5, 0), (0, 1.5), (2.0, 1.0)])
def test_plateau_float_patience_and_cooldown_as_torch(patience, cooldown):
    (w,), (tw,) = twins([(3,)])
    opt, ref = optim.SGD([w], lr=1.0), torch.optim.SGD([tw], lr=1.0)
    ours = lr_scheduler.ReduceLROnPlateau(opt, patience=patience, cooldown=cooldown)
    theirs = torch_sched.ReduceLROnPlateau(ref, patience=patience, cooldown=cooldown)
    metrics = [1.0, 0.9] + [0.95] * 12
    for m in metrics:
        ours.step(m)
        theirs.step(m)
        assert ours.get_last_lr() == theirs.get_last_lr()
        assert ours.num_bad_epochs == theirs.num_bad_epochs
    assert ours.get_last_lr() != [1.0]


def test_counts_torch_refuses_as_floats_are_refused():
    (w,), (tw,) = twins([(3,)])
    for module, opt in ((torch_sched, torch.optim.SGD([tw], lr=0.1)),
                        (lr_scheduler, optim.SGD([w], lr=0.1))):
        with pytest.raises(ValueError, match="T_0"):
            module.CosineAnnealingWarmRestarts(opt, T_0=10.0)
        with pytest.raises(ValueError, match="T_mult"):
            module.CosineAnnealingWarmRestarts(opt, T_0=10, T_mult=2.0)
        with pytest.raises(ValueError, match="epochs"):
            module.OneCycleLR(opt, 0.1, epochs=10.0, steps_per_epoch=5)
        with pytest.raises(ValueError, match="total_steps"):
            module.OneCycleLR(opt, 0.1, total_steps=10.0)
    opt = optim.SGD([w], lr=0.1)
    for bad in (0, 0.0, -1.5, float("nan"), float("inf"), True, "2"):
        with pytest.raises(ValueError, match="StepLR: expected step_size"):
            lr_scheduler.StepLR(opt, step_size=bad)
    with pytest.raises(ValueError, match="MultiStepLR: expected each milestone"):
        lr_scheduler.MultiStepLR(opt, milestones=[-0.5])
    assert lr_scheduler.StepLR(opt, step_size=25.0).state_dict()["step_size"] == 25.0
    # 0-d arrays are taken as their numbers (PyTorch takes 0-d tensors)
    (w2,), (tw2,) = twins([(3,)])
    opt, ref = optim.SGD([w2], lr=1.0), torch.optim.SGD([tw2], lr=1.0)
    ours = lr_scheduler.StepLR(opt, step_size=np.array(2), gamma=np.array(0.5))
    theirs = torch_sched.StepLR(ref, step_size=2, gamma=0.5)
    for _ in range(5):
        opt.step()
        ref.step()
        ours.step()
        theirs.step()
        assert ours.get_last_lr() == theirs.get_last_lr()
    assert lr_scheduler.MultiStepLR(opt, milestones=[3, 1.5]).milestones == [1.5, 3]


# ------------------------------------------- 3. a user's subclass and its state
def momentum_class(base):
    """PyTorch's documented pattern: a subclass keeping its state in self.state[p]."""
    is_torch = base is torch.optim.Optimizer

    class MomentumSGD(base):
        def __init__(self, params, lr=0.1, momentum=0.9):
            super().__init__(params, dict(lr=lr, momentum=momentum))

        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    state = self.state[p]
                    grad = p.grad.detach().clone() if is_torch else p.grad.copy()
                    buf = state.get("buf")
                    buf = grad if buf is None else group["momentum"] * buf + grad
                    state["buf"] = buf
                    state["count"] = state.get("count", 0) + 1
                    state["scale"] = 0.5 * state["count"]
                    state["history"] = [buf * 2, {"n": state["count"]}]
                    if is_torch:
                        with torch.no_grad():
                            p -= group["lr"] * buf * state["scale"]
                    else:
                        p.data -= group["lr"] * buf * state["scale"]
    return MomentumSGD


def assert_same_state(ours, theirs):
    assert type(ours) is type(theirs) or isinstance(ours, np.ndarray)
    if isinstance(ours, dict):
        assert list(ours) == list(theirs)
        for k in ours:
            assert_same_state(ours[k], theirs[k])
    elif isinstance(ours, (list, tuple)):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert_same_state(a, b)
    elif isinstance(ours, np.ndarray):
        np.testing.assert_allclose(ours, theirs.numpy(), **TOL)
    else:
        assert ours == theirs


def test_a_user_subclass_state_dict_holds_its_state_as_torchs():
    Ours, Theirs = momentum_class(optim.Optimizer), momentum_class(torch.optim.Optimizer)
    ours, theirs = twins([(3, 2), (2,)])
    opt, ref = Ours(ours), Theirs(theirs)
    # no flags added to its defaults and groups (PyTorch's base class adds none)
    assert opt.defaults == ref.defaults == {"lr": 0.1, "momentum": 0.9}
    assert sorted(opt.param_groups[0]) == sorted(ref.param_groups[0])
    rng = np.random.default_rng(3)
    step_both(opt, ref, ours, theirs, rng, 3)
    assert_same_params(ours, theirs)
    saved, ref_saved = opt.state_dict(), ref.state_dict()
    assert sorted(saved["state"]) == sorted(ref_saved["state"]) == [0, 1]
    assert_same_state(saved["state"], ref_saved["state"])
    assert hyper(saved["param_groups"]) == hyper(ref_saved["param_groups"])
    # a copy: stepping on leaves the saved state as it was
    buf = saved["state"][0]["buf"].copy()
    opt.step()
    np.testing.assert_array_equal(saved["state"][0]["buf"], buf)


@pytest.mark.parametrize("route", ["state_dict", "torch_state_dict", "checkpoint"])
def test_a_user_subclass_resumes_from_its_state(route):
    """load_state_dict (of its own state dict, or of torch's through .numpy()) and
    fastnn.save / load_checkpoint with optimizer=: the next steps equal torch's."""
    Ours, Theirs = momentum_class(optim.Optimizer), momentum_class(torch.optim.Optimizer)
    ours, theirs = twins([(3, 2), (2,)])
    opt, ref = Ours(ours), Theirs(theirs)
    rng = np.random.default_rng(4)
    step_both(opt, ref, ours, theirs, rng, 2)
    model = nn.ParameterList(ours)
    fresh = Ours(ours, lr=0.3)  # the hyper-parameters come back with the state
    if route == "state_dict":
        fresh.load_state_dict(opt.state_dict())
    elif route == "torch_state_dict":
        fresh.load_state_dict(torch_to_numpy(ref.state_dict()))
    else:
        buf = io.BytesIO()
        fastnn.save(model, buf, optimizer=opt)
        buf.seek(0)
        fastnn.io.load_checkpoint(buf, model=model, optimizer=fresh)
    assert fresh.param_groups[0]["lr"] == 0.1
    assert_same_state(fresh.state_dict()["state"], ref.state_dict()["state"])
    assert set(fresh.state) == set(ours)
    step_both(fresh, ref, ours, theirs, rng, 2)
    assert_same_params(ours, theirs)


def test_a_user_subclass_load_casts_arrays_as_torch_and_checks_indices():
    Ours, Theirs = momentum_class(optim.Optimizer), momentum_class(torch.optim.Optimizer)
    p = Parameter(np.zeros(2, np.float32))
    tp = torch.nn.Parameter(torch.zeros(2))
    state = {"state": {0: {"buf": np.ones(2), "step": np.array(3.0), "count": 3}},
             "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": [0]}]}
    opt, ref = Ours([p]), Theirs([tp])
    opt.load_state_dict(state)
    ref.load_state_dict({"state": {0: {"buf": torch.ones(2, dtype=torch.float64),
                                       "step": torch.tensor(3.0, dtype=torch.float64),
                                       "count": 3}},
                         "param_groups": state["param_groups"]})
    ours, theirs = opt.state[p], ref.state[tp]
    assert ours["buf"].dtype == np.float32 and theirs["buf"].dtype == torch.float32
    assert ours["step"].dtype == np.float64 and theirs["step"].dtype == torch.float64
    assert ours["count"] == theirs["count"] == 3
    assert ours["buf"] is not state["state"][0]["buf"]   # copied in
    with pytest.raises(ValueError, match="state for parameter 5"):
        opt.load_state_dict({"state": {5: {"buf": np.ones(2)}},
                             "param_groups": state["param_groups"]})
    with pytest.raises(ValueError, match="1 parameter group"):
        opt.load_state_dict({"state": {}, "param_groups": state["param_groups"] * 2})
    assert opt.state[p]["count"] == 3  # a refused state dict changed nothing


# ----------------------------------------------- 4. get_lr() and _LRScheduler
GET_LR = {
    "StepLR": lambda m, o: m.StepLR(o, 2, 0.5),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, [1, 3], 0.5),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, 0.5),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, 4),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lambda e: 1 / (e + 1)),
    "MultiplicativeLR": lambda m, o: m.MultiplicativeLR(o, lambda e: 0.5),
    "LinearLR": lambda m, o: m.LinearLR(o, 0.5, total_iters=3),
    "ConstantLR": lambda m, o: m.ConstantLR(o, 0.5, total_iters=2),
    "PolynomialLR": lambda m, o: m.PolynomialLR(o, total_iters=4),
    "CosineAnnealingWarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, 3, 2),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, 1.0, total_steps=8),
    "CyclicLR": lambda m, o: m.CyclicLR(o, 0.1, 1.0, step_size_up=2),
    "ReduceLROnPlateau": lambda m, o: m.ReduceLROnPlateau(o),
    "SequentialLR": lambda m, o: m.SequentialLR(
        o, [m.ConstantLR(o, 0.5, 2), m.ExponentialLR(o, 0.5)], [2]),
    "ChainedScheduler": lambda m, o: m.ChainedScheduler(
        [m.ConstantLR(o, 0.5, 2), m.ExponentialLR(o, 0.5)]),
}


def get_lr_trace(module, opt, build, plateau):
    """get_lr()'s result, warnings and the rate in use, at each of 7 epochs."""
    sched = build(module, opt)
    out = []
    for _ in range(7):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                rates = [float(r) for r in sched.get_lr()]
            except NotImplementedError:
                rates = "NotImplementedError"
        out.append((rates, [(w.category, str(w.message)) for w in caught],
                    opt.param_groups[0]["lr"]))
        opt.step()
        sched.step(1.0) if plateau else sched.step()
    return out


@pytest.mark.parametrize("name", sorted(GET_LR))
def test_get_lr_outside_step_as_torch(name):
    """What step() would compute at last_epoch from the current rates (not the rates
    in use), with PyTorch's warning pointing to get_last_lr(); NotImplementedError for
    the schedulers that have no such rule."""
    (w,), (tw,) = twins([(3,)])
    opt, ref = optim.SGD([w], lr=1.0, momentum=0.9), torch.optim.SGD([tw], lr=1.0,
                                                                       momentum=0.9)
    plateau = name == "ReduceLROnPlateau"
    ours = get_lr_trace(lr_scheduler, opt, GET_LR[name], plateau)
    theirs = get_lr_trace(torch_sched, ref, GET_LR[name], plateau)
    assert len(ours) == len(theirs)
    for (rates, warned, lr), (ref_rates, ref_warned, ref_lr) in zip(ours, theirs):
        if isinstance(ref_rates, str):
            assert rates == ref_rates
        else:
            np.testing.assert_allclose(rates, ref_rates, rtol=1e-12, atol=1e-15)
        assert warned == ref_warned
        assert lr == pytest.approx(ref_lr, rel=1e-12)


def test_deprecated_lrscheduler_alias_and_a_subclass_of_it():
    assert lr_scheduler._LRScheduler.__name__ == torch_sched._LRScheduler.__name__
    assert issubclass(lr_scheduler._LRScheduler, lr_scheduler.LRScheduler)

    def warmup(module):
        class Warmup(module._LRScheduler):
            def get_lr(self):
                return [base * min(1.0, (self.last_epoch + 1) / 4) for base in self.base_lrs]
        return Warmup

    (w,), (tw,) = twins([(3,)])
    opt, ref = optim.SGD([w], lr=0.1), torch.optim.SGD([tw], lr=0.1)
    ours, theirs = warmup(lr_scheduler)(opt), warmup(torch_sched)(ref)
    for _ in range(5):
        assert ours.get_last_lr() == theirs.get_last_lr()
        opt.step()
        ref.step()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # (no warning: the optimizer stepped first)
            ours.step()
            theirs.step()
    assert ours.get_last_lr() == pytest.approx([0.1])


# ------------------------------------------------ 5. flags and 0-d numbers
def test_check_bool_takes_0_1_and_numpy_bools():
    for value, expected in ((True, True), (False, False), (1, True), (0, False),
                            (np.True_, True), (np.False_, False), (np.int64(1), True),
                            (np.uint8(0), False)):
        got = check_bool("where", "flag", value)
        assert got is expected, value
    for bad in (2, -1, 1.0, "yes", None, np.array(1), [1]):
        with pytest.raises(TypeError, match="where: expected flag to be a bool"):
            check_bool("where", "flag", bad)


@pytest.mark.parametrize("name, kwargs", [
    ("Adam", dict(amsgrad=1, maximize=np.True_, foreach=1)),
    ("Adam", dict(amsgrad=np.True_, capturable=0, fused=0)),
    ("AdamW", dict(amsgrad=1, maximize=1)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=1, maximize=1, foreach=0)),
    ("RMSprop", dict(centered=1, maximize=np.True_)),
    ("NAdam", dict(decoupled_weight_decay=1, weight_decay=0.1)),
    ("Adadelta", dict(maximize=1)),
    ("Adafactor", dict(maximize=1, foreach=np.False_)),
])
def test_int_and_numpy_bool_flags_as_torch(name, kwargs):
    ours, theirs = twins([(3, 2), (4,)])
    opt = getattr(optim, name)(ours, **kwargs)
    ref = getattr(torch.optim, name)(theirs, **{k: (bool(v) if isinstance(v, np.bool_) else v)
                                                for k, v in kwargs.items()})
    for key, value in kwargs.items():
        assert opt.param_groups[0][key] == ref.param_groups[0][key] == value
        if key not in ("lr", "momentum", "weight_decay"):
            assert type(opt.param_groups[0][key]) is bool   # kept as the Python bool
    rng = np.random.default_rng(6)
    step_both(opt, ref, ours, theirs, rng, 3)
    assert_same_params(ours, theirs)


# every bool option each torch.optim optimizer takes that PyTorch 2.13 reads as False when
# given None (foreach and fused keep None as their own default)
NONE_FLAGS = [
    ("SGD", dict(lr=0.1, momentum=0.9), ("maximize", "nesterov")),
    ("Adam", {}, ("maximize", "amsgrad", "capturable", "decoupled_weight_decay")),
    ("AdamW", {}, ("maximize", "amsgrad", "capturable")),
    ("Adamax", {}, ("maximize", "capturable")),
    ("NAdam", {}, ("maximize", "capturable", "decoupled_weight_decay")),
    ("RAdam", {}, ("maximize", "capturable", "decoupled_weight_decay")),
    ("Adagrad", {}, ("maximize",)),
    ("Adadelta", {}, ("maximize", "capturable")),
    ("RMSprop", dict(momentum=0.5), ("maximize", "capturable", "centered")),
    ("Rprop", {}, ("maximize", "capturable")),
    ("ASGD", {}, ("maximize", "capturable")),
    ("Adafactor", {}, ("maximize",)),
    ("Muon", {}, ("nesterov",)),
]


@pytest.mark.parametrize("name, kwargs, flags", NONE_FLAGS, ids=[c[0] for c in NONE_FLAGS])
def test_none_flags_are_false_as_torch(name, kwargs, flags):
    """PyTorch reads a bool option by its truth, so None is False (its groups keep
    None; fastnn's keep False); fastnn refused None as not a bool, or as unsupported."""
    shapes = [(3, 2)] if name == "Muon" else [(3, 2), (4,)]
    ours, theirs = twins(shapes)
    given = dict(kwargs, **dict.fromkeys(flags))
    opt = getattr(optim, name)(ours, **given)
    ref = getattr(torch.optim, name)(theirs, **given)
    for flag in flags:
        assert opt.param_groups[0][flag] is False and ref.param_groups[0][flag] is None
    step_both(opt, ref, ours, theirs, np.random.default_rng(8), 3)
    assert_same_params(ours, theirs)


def test_differentiable_none_stays_refused():
    """PyTorch's step fails on differentiable=None (set_grad_enabled takes a bool only)."""
    with pytest.raises(RuntimeError, match="differentiable=None is not supported"):
        optim.SGD(twins([(2,)])[0], lr=0.1, differentiable=None)


def test_0d_arrays_are_taken_as_numbers():
    ours, theirs = twins([(3, 2)])
    opt = optim.Adam(ours, lr=np.array(0.01), eps=np.array(1e-8), weight_decay=np.array(0))
    ref = torch.optim.Adam(theirs, lr=0.01, eps=1e-8, weight_decay=0)
    torch.optim.Adam(twins([(1,)])[1], lr=torch.tensor(0.01))  # (torch takes a tensor lr)
    assert opt.param_groups[0]["lr"] == 0.01 and type(opt.param_groups[0]["lr"]) is float
    sgd = optim.SGD(twins([(2,)])[0], lr=np.array(0.1, np.float32), momentum=np.array(0.5))
    assert type(sgd.param_groups[0]["momentum"]) is float
    opt.add_param_group({"params": twins([(2,)], seed=1)[0], "lr": np.array(0.02)})
    assert opt.param_groups[1]["lr"] == 0.02
    rng = np.random.default_rng(7)
    step_both(opt, ref, ours, theirs, rng, 2)
    assert_same_params(ours, theirs)
    with pytest.raises(TypeError, match="lr to be a real number"):
        optim.Adam(ours, lr=np.array([0.01, 0.02]))


@pytest.mark.parametrize("build, attr", [
    (lambda m: m.LSTM(2, 3, bidirectional=1), "bidirectional"),
    (lambda m: m.LSTMCell(2, 3, bias=0), "bias"),
    (lambda m: m.MultiheadAttention(4, 2, batch_first=1), "batch_first"),
    (lambda m: m.TransformerEncoderLayer(4, 2, dim_feedforward=8, norm_first=1), "norm_first"),
    (lambda m: m.Embedding(3, 2, scale_grad_by_freq=1), "scale_grad_by_freq"),
    (lambda m: m.EmbeddingBag(3, 2, scale_grad_by_freq=np.True_), "scale_grad_by_freq"),
    (lambda m: m.AdaptiveLogSoftmaxWithLoss(8, 10, [4], head_bias=1), "head_bias"),
])
def test_layers_take_0_1_flags_as_torch_and_keep_bools(build, attr):
    ours, theirs = build(nn), build(torch.nn)
    assert getattr(ours, attr) == getattr(theirs, attr)
    assert type(getattr(ours, attr)) is bool
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    assert [tuple(v.shape) for v in ours.state_dict().values()] == \
        [tuple(v.shape) for v in theirs.state_dict().values()]


# ------------------------------- 6. scheduler.step() before optimizer.step()
ORDER_CASES = {
    "step": lambda m, o: m.StepLR(o, 2, 0.5),
    "multiplicative": lambda m, o: m.MultiplicativeLR(o, lambda e: 0.5),
    "warm_restarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, 3),
    "onecycle": lambda m, o: m.OneCycleLR(o, 1.0, total_steps=30),
    "cyclic": lambda m, o: m.CyclicLR(o, 0.1, 1.0, step_size_up=2),
    "plateau": lambda m, o: m.ReduceLROnPlateau(o),
    "sequential": lambda m, o: m.SequentialLR(
        o, [m.ConstantLR(o, 0.5, 2), m.ExponentialLR(o, 0.5), m.StepLR(o, 2)], [2, 4]),
    "nested": lambda m, o: m.SequentialLR(o, [m.SequentialLR(
        o, [m.LinearLR(o, 0.5, total_iters=2), m.ExponentialLR(o, 0.9)], milestones=[2]),
        m.PolynomialLR(o, total_iters=6)], milestones=[7]),
    "chained": lambda m, o: m.ChainedScheduler([m.ConstantLR(o, 0.5, 2),
                                                m.ExponentialLR(o, 0.5)]),
    "two_on_one": lambda m, o: (m.StepLR(o, 2), m.ExponentialLR(o, 0.9))[1],
}


def order_warnings(lib, name, pattern):
    """How many times the order warning comes, building the scheduler and at each of
    8 scheduler steps, the optimizer stepping before each (normal), never (none), from
    the third (late), or once before the scheduler is built (before_build)."""
    if lib is torch:
        p = torch.nn.Parameter(torch.ones(2))
        opt, module, grad = torch.optim.SGD([p], lr=0.1, momentum=0.9), torch_sched, torch.ones
    else:
        p = Parameter(np.ones(2))
        opt, module, grad = optim.SGD([p], lr=0.1, momentum=0.9), lr_scheduler, np.ones

    def count(call):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = call()
        return result, sum(ORDER_WARNING in str(w.message) for w in caught)

    if pattern == "before_build":
        p.grad = grad(2)
        opt.step()
    sched, built = count(lambda: ORDER_CASES[name](module, opt))
    counts = [built]
    for k in range(8):
        if pattern == "normal" or (pattern == "late" and k >= 2):
            p.grad = grad(2)
            opt.step()
        counts.append(count(lambda: sched.step(1.0) if name == "plateau" else sched.step())[1])
    return counts


@pytest.mark.parametrize("pattern", ["normal", "none", "late", "before_build"])
@pytest.mark.parametrize("name", sorted(ORDER_CASES))
def test_the_step_order_warning_comes_where_torchs_does(name, pattern):
    assert order_warnings(fastnn, name, pattern) == order_warnings(torch, name, pattern)


def test_no_order_warning_in_the_usual_loop_and_one_without_optimizer_steps():
    (w,), _ = twins([(3,)])
    opt = optim.SGD([w], lr=0.1, momentum=0.9)
    sched = lr_scheduler.StepLR(opt, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(4):
            w.grad = np.ones(3)
            opt.step()
            sched.step()
    opt = optim.SGD([w], lr=0.1)
    sched = lr_scheduler.CosineAnnealingLR(opt, 10)
    with pytest.warns(UserWarning, match=r"Detected call of `lr_scheduler.step\(\)`"):
        sched.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched.step()   # once only


# ----------------------------------------- 7. ReduceLROnPlateau's metric as an array
def test_plateau_takes_one_element_arrays_and_numpy_scalars():
    (w,), (tw,) = twins([(3,)])
    opt, ref = optim.SGD([w], lr=1.0), torch.optim.SGD([tw], lr=1.0)
    ours = lr_scheduler.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    theirs = torch_sched.ReduceLROnPlateau(ref, patience=1, factor=0.5)
    values = [1.0, 0.5, 0.6, 0.7, 0.4, 0.45, 0.5, 0.55]
    wraps = [lambda v: np.array([v]), lambda v: np.array([[v]], np.float32),
             lambda v: np.array(v), np.float32, np.float64, lambda v: np.array([v], np.int64),
             lambda v: np.array([v]), float]
    for v, wrap in zip(values, wraps):
        metric = wrap(v)
        ours.step(metric)
        # torch: the same value as a one-element tensor of the same dtype
        theirs.step(v if isinstance(metric, float)
                    else torch.as_tensor(np.asarray(metric)).reshape(1))
        assert ours.get_last_lr() == theirs.get_last_lr()
        assert ours.best == theirs.best
    assert ours.get_last_lr() != [1.0]
    with pytest.raises(ValueError):
        theirs.step(torch.tensor([1.0, 2.0]))
    for bad in (np.array([1.0, 2.0]), np.zeros((0,))):
        with pytest.raises(ValueError, match="ReduceLROnPlateau.step: expected the metric"):
            ours.step(bad)
    with pytest.raises(TypeError, match="expected the metric as a number"):
        ours.step([1.0])


# --------------------------------------------------- 8. a set as a group's params
def test_a_set_of_parameters_in_a_group_is_a_type_error_as_in_torch():
    (w, v), (tw, tv) = twins([(3,), (2,)])
    message = "ordered collections"
    with pytest.raises(TypeError, match=message):
        torch.optim.SGD([{"params": {tw, tv}}], lr=0.1)
    with pytest.raises(TypeError, match=message):
        optim.SGD([{"params": {w, v}}], lr=0.1)
    ref, opt = torch.optim.SGD([tw], lr=0.1), optim.SGD([w], lr=0.1)
    with pytest.raises(TypeError, match=message):
        ref.add_param_group({"params": {tv}})
    with pytest.raises(TypeError, match=message):
        opt.add_param_group({"params": {v}})
    assert len(opt.param_groups) == 1   # nothing added
    # ordered collections are fine in both, a frozenset too, and a plain set of
    # parameters given as params (PyTorch lists it)
    for params in (frozenset([w]), {w: 1}.keys(), (p for p in [w])):
        assert optim.SGD([{"params": params}], lr=0.1).param_groups[0]["params"] == [w]
    assert len(optim.SGD({w, v}, lr=0.1).param_groups[0]["params"]) == 2
    assert len(torch.optim.SGD({tw, tv}, lr=0.1).param_groups[0]["params"]) == 2
