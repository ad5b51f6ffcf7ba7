"""Optimizers and schedulers against torch.optim 2.13 under random gradients: maximize on
every optimizer that has it, Adam(decoupled_weight_decay=True), SGD's default lr, named
parameters, param groups with missing gradients, add_param_group and state dict round
trips mid-training; CosineAnnealingWarmRestarts.step(epoch) with fractional epochs,
PyTorch's deprecated step(epoch) of the other schedulers, and error types."""
import copy
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import nn, optim
from fastnn.nn import Parameter
from fastnn.optim import lr_scheduler

import torch  # noqa: E402 (after fastnn)
from torch.optim import lr_scheduler as torch_sched  # noqa: E402

SHAPES = [(3, 4), (5,), (2, 3, 2), ()]
BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.backends()]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-4, atol=2e-5)}


@pytest.fixture(autouse=True)
def _float64_torch_scalars():
    """torch at its default dtype, float32, in which its NAdam keeps mu_product and its
    ASGD eta and mu, as fastnn does."""
    assert torch.get_default_dtype() == torch.float32
    yield


def twin_groups(specs, dtype, rng):
    """(fastnn groups, torch groups, fastnn params, torch params) from [(shapes, options)]."""
    ours_groups, theirs_groups, ours, theirs = [], [], [], []
    for shapes, options in specs:
        values = [rng.standard_normal(s).astype(dtype) for s in shapes]
        o = [Parameter(v.copy()) for v in values]
        t = [torch.nn.Parameter(torch.tensor(v.copy())) for v in values]
        ours_groups.append(dict(options, params=o))
        theirs_groups.append(dict(options, params=t))
        ours += o
        theirs += t
    return ours_groups, theirs_groups, ours, theirs


def set_random_grads(ours, theirs, rng, none_prob):
    """The same random gradient into both (None for some parameters on some steps);
    fastnn's written in place when it has an array, as layers do."""
    for p, q in zip(ours, theirs):
        if rng.random() < none_prob:
            p.grad = q.grad = None
            continue
        g = rng.standard_normal(p.data.shape).astype(p.data.dtype)
        if p.grad is None:
            p.grad = g.copy()
        else:
            p.grad[...] = g
        q.grad = torch.tensor(g)


def assert_same(ours, theirs, dtype, msg=""):
    for i, (p, q) in enumerate(zip(ours, theirs)):
        assert p.data.dtype == dtype
        np.testing.assert_allclose(p.data, q.detach().numpy(), **TOL[dtype],
                                   err_msg=f"{msg} parameter {i}")


def run_pair(name, kwargs, specs, dtype, steps=12, none_prob=0.25, reload_at=5,
             add_group=None, seed=0):
    """Both optimizers over random gradients, compared after every step; at reload_at
    each is rebuilt from its state dict; add_group: (step, (shapes, options))."""
    rng = np.random.default_rng(seed)
    og, tg, ours, theirs = twin_groups(specs, dtype, rng)
    opt = getattr(optim, name)(og, **kwargs)
    ref = getattr(torch.optim, name)(tg, **kwargs)
    for step in range(steps):
        if add_group is not None and step == add_group[0]:
            og2, tg2, o2, t2 = twin_groups([add_group[1]], dtype, rng)
            opt.add_param_group(og2[0])
            ref.add_param_group(tg2[0])
            og, tg, ours, theirs = og + og2, tg + tg2, ours + o2, theirs + t2
        if step == reload_at:
            saved = copy.deepcopy(opt.state_dict())
            opt = getattr(optim, name)(og, **kwargs)
            opt.load_state_dict(saved)
            saved = copy.deepcopy(ref.state_dict())
            ref = getattr(torch.optim, name)(tg, **kwargs)
            ref.load_state_dict(saved)
        set_random_grads(ours, theirs, rng, none_prob)
        before = [None if p.grad is None else p.grad.copy() for p in ours]
        opt.step()
        ref.step()
        for p, g in zip(ours, before):  # maximize gives the gradients back bit for bit
            if g is not None:
                assert p.grad.tobytes() == g.tobytes()
        assert_same(ours, theirs, dtype, f"{name} {kwargs} step {step}")
    return opt


# ------------------------------------------------------------------- maximize
MAXIMIZE = [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, maximize=True)),
    ("Adam", dict(lr=0.02, amsgrad=True, weight_decay=0.1, maximize=True)),
    ("AdamW", dict(lr=0.02, weight_decay=0.1, maximize=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.1, maximize=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.1, weight_decay=0.1, maximize=True)),
    ("Adamax", dict(lr=0.02, weight_decay=0.1, maximize=True)),
    ("NAdam", dict(lr=0.02, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", dict(lr=0.02, weight_decay=0.1, maximize=True)),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, kwargs", MAXIMIZE, ids=[f"{n}-{i}" for i, (n, _) in
                                                         enumerate(MAXIMIZE)])
def test_maximize_follows_torch(backend, name, kwargs):
    with fastnn.use_backend(backend):
        opt = run_pair(name, kwargs, [(SHAPES, {})], np.float64)
    assert opt.state_dict()["param_groups"][0]["maximize"] is True


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "NAdam"])
def test_maximize_per_group_float32_with_a_new_group(name):
    """One group ascends, the other descends; a third (ascending) is added mid-run."""
    kwargs = dict(lr=0.01, momentum=0.5) if name in ("SGD", "RMSprop") else dict(lr=0.01)
    specs = [([(3, 4), (5,)], {"maximize": True}), ([(2, 3, 2), ()], {"lr": 0.003})]
    run_pair(name, kwargs, specs, np.float32, add_group=(4, ([(4, 2)], {"maximize": True})))


def test_adam_decoupled_weight_decay_is_adamw():
    for kwargs in (dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True),
                   dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True, amsgrad=True)):
        opt = run_pair("Adam", kwargs, [(SHAPES, {})], np.float64)
        assert opt.param_groups[0]["decoupled_weight_decay"] is True
    params = [Parameter(np.zeros(3))]
    assert optim.AdamW(params).param_groups[0]["decoupled_weight_decay"] is True
    with pytest.raises(TypeError, match="unexpected keyword argument 'decoupled_weight_decay'"):
        optim.AdamW(params, decoupled_weight_decay=True)
    with pytest.raises(TypeError, match="maximize to be a bool"):
        optim.Adam(params, maximize="yes")


def test_state_dicts_without_the_new_flags_load_with_the_defaults():
    """fastnn's earlier state dicts have no maximize / decoupled_weight_decay entries."""
    params = [Parameter(np.ones(3))]
    for name, decoupled in (("SGD", None), ("Adam", False), ("AdamW", True), ("RAdam", False)):
        saved = getattr(optim, name)(params, lr=0.1, maximize=True).state_dict()
        for group in saved["param_groups"]:
            group.pop("maximize")
            group.pop("decoupled_weight_decay", None)
        opt = getattr(optim, name)(params, lr=0.1, maximize=True)
        opt.load_state_dict(saved)
        assert opt.param_groups[0]["maximize"] is False
        assert opt.param_groups[0].get("decoupled_weight_decay") is decoupled


def test_sgd_default_lr_is_torchs():
    rng = np.random.default_rng(3)
    og, tg, ours, theirs = twin_groups([(SHAPES, {})], np.float64, rng)
    opt, ref = optim.SGD(og), torch.optim.SGD(tg)
    assert opt.param_groups[0]["lr"] == ref.param_groups[0]["lr"] == 1e-3
    set_random_grads(ours, theirs, rng, 0.0)
    opt.step()
    ref.step()
    assert_same(ours, theirs, np.float64)


# ------------------------------------------------ random trajectories, every optimizer
TRAJECTORIES = [
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.2, weight_decay=0.01)),
    ("Adam", dict(lr=0.02, betas=(0.5, 0.9), eps=1e-3, amsgrad=True)),
    ("AdamW", dict(lr=0.02, amsgrad=True, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, alpha=0.5, momentum=0.9, centered=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.1, initial_accumulator_value=0.5, eps=1e-6)),
    ("Adadelta", dict(lr=0.5, rho=0.5, weight_decay=0.1, maximize=True)),
    ("Adamax", dict(lr=0.05, betas=(0.5, 0.8), weight_decay=0.1)),
    ("NAdam", dict(lr=0.05, momentum_decay=0.01, weight_decay=0.1)),
    ("RAdam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True)),
    ("ASGD", dict(lr=0.05, lambd=0.01, alpha=0.5, t0=3, weight_decay=0.1)),
    ("Rprop", dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-3, 0.1), maximize=True)),
    ("Adafactor", dict(lr=0.05, beta2_decay=-0.5, d=2.0, weight_decay=0.1, maximize=True)),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, kwargs", TRAJECTORIES, ids=[n for n, _ in TRAJECTORIES])
def test_random_trajectories_with_groups_and_reloads(name, kwargs, dtype, backend):
    specs = [([(3, 4), (5,)], {}), ([(2, 3, 2), ()], {"lr": 0.01})]
    with fastnn.use_backend(backend):
        run_pair(name, kwargs, specs, dtype, add_group=(7, ([(4, 2)], {"lr": 0.02})))


# -------------------------------------------------------------- named parameters
def test_named_parameters_as_torch():
    model, ref_model = nn.Linear(3, 2), torch.nn.Linear(3, 2)
    opt = optim.Adam(model.named_parameters(), lr=0.1)
    ref = torch.optim.Adam(ref_model.named_parameters(), lr=0.1)
    assert opt.param_groups[0]["param_names"] == ref.param_groups[0]["param_names"]
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["weight", "bias"]
    lbfgs = optim.LBFGS(model.named_parameters())
    assert lbfgs.state_dict()["param_groups"][0]["param_names"] == ["weight", "bias"]
    # a named torch state dict loads, its names with it (PyTorch's rule)
    for q in ref_model.parameters():
        q.grad = torch.ones_like(q)
    ref.step()
    saved = ref.state_dict()
    state = {i: {k: (v.numpy() if v.ndim else int(v.item())) for k, v in entry.items()}
             for i, entry in saved["state"].items()}
    plain = optim.Adam(nn.Linear(3, 2).parameters(), lr=0.1)
    plain.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    assert plain.param_groups[0]["param_names"] == ["weight", "bias"]
    assert plain.state_dict()["state"][0]["step"] == 1
    p, q = Parameter(np.zeros(2)), Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="some names are missing"):
        optim.SGD([("a", p), q], lr=0.1)
    with pytest.raises(ValueError, match="cannot mix"):
        optim.SGD([("a", p)], lr=0.1).add_param_group({"params": [q]})
    opt = optim.SGD([("a", p)], lr=0.1)
    opt.add_param_group({"params": [("b", q)], "lr": 0.2})
    assert [g["param_names"] for g in opt.state_dict()["param_groups"]] == [["a"], ["b"]]


# -------------------------------------------------------------------- schedulers
def sched_pair(opt_name="SGD"):
    kwargs = {"momentum": 0.9} if opt_name == "SGD" else {}
    groups = [([(3,)], {"lr": 0.1}), ([(2,)], {"lr": 0.02})]
    og, tg, _, _ = twin_groups(groups, np.float64, np.random.default_rng(0))
    return (getattr(optim, opt_name)(og, lr=0.1, **kwargs),
            getattr(torch.optim, opt_name)(tg, lr=0.1, **kwargs))


def step_both(ours, theirs, args, opt, ref):
    """Step both schedulers with args; the rates equal bit for bit; returns whether each
    warned (a UserWarning other than torch's optimizer.step() order check)."""
    warned = []
    for sched in (ours, theirs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sched.step(*args)
        warned.append(any(issubclass(w.category, UserWarning)
                          and "optimizer.step()" not in str(w.message) for w in caught))
    assert ours.get_last_lr() == theirs.get_last_lr(), args
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in ref.param_groups]
    assert ours.last_epoch == theirs.last_epoch
    return warned


@pytest.mark.parametrize("t_mult", [1, 2, 3])
def test_warm_restarts_fractional_and_interleaved_epochs(t_mult):
    opt, ref = sched_pair()
    ours = lr_scheduler.CosineAnnealingWarmRestarts(opt, 2, T_mult=t_mult, eta_min=0.005)
    theirs = torch_sched.CosineAnnealingWarmRestarts(ref, 2, T_mult=t_mult, eta_min=0.005)
    batches = [(e + i / 7,) for e in range(5) for i in range(7)]
    calls = batches + [()] * 6 + [(26,)] + [()] * 4 + [(3.5,)] + [()] * 3 + [(0,)] + [()] * 3
    for k, args in enumerate(calls):
        assert step_both(ours, theirs, args, opt, ref) == [False, False]
        if k == 20:  # a round trip at a fractional epoch continues the same way
            saved = copy.deepcopy(ours.state_dict())
            ours = lr_scheduler.CosineAnnealingWarmRestarts(opt, 2, T_mult=t_mult,
                                                            eta_min=0.005)
            ours.load_state_dict(saved)
            saved = theirs.state_dict()
            theirs = torch_sched.CosineAnnealingWarmRestarts(ref, 2, T_mult=t_mult,
                                                             eta_min=0.005)
            theirs.load_state_dict(saved)
    with pytest.raises(ValueError, match="epoch"):
        ours.step(-1)


def test_warm_restarts_inside_sequential_and_chained():
    for build in (
            lambda m, o: m.SequentialLR(o, [m.LinearLR(o, 0.1, total_iters=4),
                                            m.CosineAnnealingWarmRestarts(o, 3, 2)], [4]),
            lambda m, o: m.SequentialLR(o, [m.CosineAnnealingWarmRestarts(o, 3, 2),
                                            m.ExponentialLR(o, 0.9)], [10]),
            lambda m, o: m.ChainedScheduler([m.CosineAnnealingWarmRestarts(o, 3, 2),
                                             m.ExponentialLR(o, 0.95)])):
        opt, ref = sched_pair()
        ours, theirs = build(lr_scheduler, opt), build(torch_sched, ref)
        assert ours.get_last_lr() == theirs.get_last_lr()
        for _ in range(25):
            opt.step()
            ref.step()
            ours.step()
            theirs.step()
            assert ours.get_last_lr() == theirs.get_last_lr()


DEPRECATED_EPOCH = [
    ("StepLR", lambda m, o: m.StepLR(o, 3, 0.5), "SGD"),
    ("MultiStepLR", lambda m, o: m.MultiStepLR(o, [2, 5, 9], 0.5), "SGD"),
    ("ExponentialLR", lambda m, o: m.ExponentialLR(o, 0.9), "SGD"),
    ("CosineAnnealingLR", lambda m, o: m.CosineAnnealingLR(o, 10, 0.001), "SGD"),
    ("LinearLR", lambda m, o: m.LinearLR(o, 0.2, 0.9, 8), "SGD"),
    ("ConstantLR", lambda m, o: m.ConstantLR(o, 0.3, 6), "SGD"),
    ("PolynomialLR", lambda m, o: m.PolynomialLR(o, 10, 2.0), "SGD"),
    ("LambdaLR", lambda m, o: m.LambdaLR(o, lambda e: 1 / (1 + e)), "SGD"),
    ("MultiplicativeLR", lambda m, o: m.MultiplicativeLR(o, lambda e: 0.9), "SGD"),
    ("OneCycleLR", lambda m, o: m.OneCycleLR(o, 1.0, total_steps=20, three_phase=True), "Adam"),
    ("CyclicLR", lambda m, o: m.CyclicLR(o, 0.01, 0.1, step_size_up=3), "SGD"),
]


@pytest.mark.parametrize("name, build, opt_name", DEPRECATED_EPOCH,
                         ids=[n for n, _, _ in DEPRECATED_EPOCH])
def test_deprecated_step_epoch_as_torch(name, build, opt_name):
    opt, ref = sched_pair(opt_name)
    ours, theirs = build(lr_scheduler, opt), build(torch_sched, ref)
    calls = [()] * 4 + [(12,)] + [()] * 2 + [(2,)] + [()] * 2 + [(7.5,)] + [()] * 2
    for args in calls:
        warned = step_both(ours, theirs, args, opt, ref)
        assert warned == [bool(args)] * 2
        momentum = [g.get("momentum", g.get("betas", (None,))[0]) for g in opt.param_groups]
        assert momentum == [g.get("momentum", g.get("betas", (None,))[0])
                            for g in ref.param_groups]


def test_plateau_epoch_argument_and_metric_errors():
    opt, ref = sched_pair()
    ours = lr_scheduler.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    theirs = torch_sched.ReduceLROnPlateau(ref, patience=1, factor=0.5)
    for e, value in enumerate([1, 0.9, 0.95, 0.95, 0.95, 0.7, 0.8, 0.8, 0.8]):
        args = (value, 2 * e) if e % 3 == 0 else (value,)
        assert step_both(ours, theirs, args, opt, ref) == [len(args) == 2] * 2
    with pytest.raises(ValueError, match="metric as a number"):  # float("low"): ValueError
        ours.step("low")
    with pytest.raises(TypeError, match="metric as a number"):
        ours.step(None)


def test_scheduler_error_types_as_torch():
    opt, ref = sched_pair()
    for module, o, error in ((lr_scheduler, opt, TypeError), (torch_sched, ref, TypeError)):
        with pytest.raises(error):
            sched = module.LambdaLR(o, 3)
            sched.step()  # (torch's fails when it calls the lambda)
    plateau = lr_scheduler.ReduceLROnPlateau(opt)
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        lr_scheduler.ChainedScheduler([plateau])
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        lr_scheduler.SequentialLR(opt, [plateau, lr_scheduler.StepLR(opt, 2)], [2])
    with pytest.raises(ValueError):
        torch_sched.ChainedScheduler([torch_sched.ReduceLROnPlateau(ref)])
    with pytest.raises(ValueError, match="total_steps=3"):
        lr_scheduler.OneCycleLR(opt, 0.1, total_steps=3).step(4)
