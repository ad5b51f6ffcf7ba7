"""optim.lr_scheduler, nn.init and nn.utils' clipping against PyTorch 2.13: random
schedules on 1-3 param groups step by step (rates, momentum/betas), state dicts as
PyTorch's (every attribute, hyper-parameters included), CyclicLR's first step from the
groups' initial_lr, ReduceLROnPlateau as an LRScheduler, calculate_gain's names, init's
range errors, and the norms of empty gradients."""
import math
import pickle
import random

import numpy as np
import pytest

import fastnn
from fastnn import nn, optim
from fastnn.nn import init, utils
from fastnn.optim import lr_scheduler

torch = pytest.importorskip("torch")
T = torch.optim.lr_scheduler

KINDS = ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LambdaLR",
         "LinearLR", "ConstantLR", "PolynomialLR", "CosineAnnealingWarmRestarts", "OneCycleLR",
         "MultiplicativeLR", "CyclicLR", "SequentialLR", "ChainedScheduler"]


def optimizers(lrs, kind):
    """A fastnn and a torch optimizer with one param group per rate."""
    ours = [nn.Parameter(np.zeros(2)) for _ in lrs]
    theirs = [torch.zeros(2, requires_grad=True) for _ in lrs]
    cls, ref_cls, kw = ((optim.SGD, torch.optim.SGD, {"momentum": 0.9}) if kind == "sgd"
                        else (optim.Adam, torch.optim.Adam, {}))
    return (cls([{"params": [p], "lr": lr} for p, lr in zip(ours, lrs)], lr=0.1, **kw),
            ref_cls([{"params": [p], "lr": lr} for p, lr in zip(theirs, lrs)], lr=0.1, **kw))


def build(m, opt, kind, r, groups, steps):
    """A random scheduler of this kind from module m (fastnn's or torch's); r: a
    random.Random seeded the same for both."""
    u = r.uniform
    if kind == "StepLR":
        return m.StepLR(opt, r.randint(1, 20), gamma=u(0.1, 1.0))
    if kind == "MultiStepLR":
        return m.MultiStepLR(opt, [r.randint(0, 60) for _ in range(r.randint(1, 4))], u(0.1, 1))
    if kind == "ExponentialLR":
        return m.ExponentialLR(opt, gamma=u(0.9, 1.0))
    if kind == "CosineAnnealingLR":
        return m.CosineAnnealingLR(opt, T_max=r.choice([r.randint(1, 60), u(1, 30)]),
                                   eta_min=r.choice([0.0, u(0, 0.01)]))
    if kind in ("LambdaLR", "MultiplicativeLR"):
        a = [u(0.9, 1.0) for _ in range(groups)]
        fns = [lambda e, a=x: a ** (e % 7) for x in a]
        return getattr(m, kind)(opt, fns if r.random() < 0.5 else fns[0])
    if kind == "LinearLR":
        return m.LinearLR(opt, start_factor=u(0.01, 1), end_factor=u(0, 1),
                          total_iters=r.randint(1, 50))
    if kind == "ConstantLR":
        return m.ConstantLR(opt, factor=u(0, 1), total_iters=r.randint(0, 50))
    if kind == "PolynomialLR":
        return m.PolynomialLR(opt, total_iters=r.randint(1, 80), power=u(0.1, 3))
    if kind == "CosineAnnealingWarmRestarts":
        return m.CosineAnnealingWarmRestarts(opt, T_0=r.randint(1, 20), T_mult=r.randint(1, 3),
                                             eta_min=u(0, 1e-3))
    if kind == "OneCycleLR":
        max_lr = [u(0.01, 1) for _ in range(groups)]
        kw = dict(max_lr=max_lr if r.random() < 0.5 else max_lr[0], pct_start=u(0.05, 0.9),
                  anneal_strategy=r.choice(["cos", "linear"]), three_phase=r.random() < 0.5,
                  div_factor=u(2, 50), final_div_factor=u(10, 1e4),
                  cycle_momentum=r.random() < 0.7, base_momentum=u(0.5, 0.85),
                  max_momentum=u(0.86, 0.99))
        if r.random() < 0.5:
            kw["total_steps"] = steps
        else:
            kw.update(epochs=5, steps_per_epoch=steps // 5 + 1)
        return m.OneCycleLR(opt, **kw)
    if kind == "CyclicLR":
        base = [u(1e-4, 1e-2) for _ in range(groups)]
        kw = dict(base_lr=base, max_lr=[b + u(0.01, 1) for b in base],
                  step_size_up=r.randint(1, 40), step_size_down=r.choice([None, r.randint(1, 40)]),
                  cycle_momentum=r.random() < 0.7, base_momentum=u(0.5, 0.85),
                  max_momentum=u(0.86, 0.99))
        mode = r.choice(["triangular", "triangular2", "exp_range", "cycle", "iterations"])
        if mode in ("cycle", "iterations"):
            kw.update(scale_fn=lambda x: 1 / (1 + 0.01 * x), scale_mode=mode)
        else:
            kw.update(mode=mode, gamma=u(0.99, 1.0))
        return m.CyclicLR(opt, **kw)
    inner = ["StepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR", "ConstantLR",
             "PolynomialLR", "MultiStepLR"]
    scheds = [build(m, opt, r.choice(inner), r, groups, steps) for _ in range(r.randint(2, 3))]
    if kind == "SequentialLR":
        return m.SequentialLR(opt, scheds, sorted(r.sample(range(1, 100), len(scheds) - 1)))
    return m.ChainedScheduler(scheds)


def rates(opt, kind):
    """Every group's (lr, momentum or beta1)."""
    return [(g["lr"], g["momentum"] if kind == "sgd" else g["betas"][0])
            for g in opt.param_groups]


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("kind", KINDS)
def test_random_schedules_and_state_dict_round_trips_match_torch(kind):
    """Each step the rates (and the cycled momentum/beta1) equal torch's; mid-run the
    state goes through pickle into a scheduler built with other hyper-parameters, which
    carries on as torch's (PyTorch's state dicts hold the hyper-parameters)."""
    for seed in range(4):
        r0 = random.Random(1000 * KINDS.index(kind) + seed)
        groups = r0.randint(1, 3)
        lrs = [r0.uniform(0.001, 1) for _ in range(groups)]
        okind = r0.choice(["sgd", "adam"])
        steps = r0.randint(40, 150)
        opt, ref = optimizers(lrs, okind)
        ours = build(lr_scheduler, opt, kind, random.Random(seed), groups, steps)
        theirs = build(T, ref, kind, random.Random(seed), groups, steps)
        split = r0.randint(1, steps - 5)
        for step in range(theirs.total_steps - 1 if kind == "OneCycleLR" else steps):
            got, want = rates(opt, okind), rates(ref, okind)
            np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-9,
                                       err_msg=f"{kind} seed {seed} step {step}")
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)
            if step == split:
                saved = pickle.loads(pickle.dumps((opt.state_dict(), ours.state_dict())))
                opt, _ = optimizers(lrs, okind)
                # other hyper-parameters, but the same user functions (never saved)
                # and nesting
                same = ("SequentialLR", "ChainedScheduler", "CyclicLR", "LambdaLR",
                        "MultiplicativeLR")
                other = random.Random(seed if kind in same else seed + 99)
                ours = build(lr_scheduler, opt, kind, other, groups, steps)
                opt.load_state_dict(saved[0])
                ours.load_state_dict(saved[1])
            ours.step()
            theirs.step()
        if kind == "OneCycleLR":
            ours.step()
            with pytest.raises(ValueError, match="total_steps"):
                ours.step()


def test_state_dict_keys_and_hyper_parameters_as_torch():
    opt, ref = optimizers([0.1, 0.2], "sgd")
    for make in (lambda m, o: m.StepLR(o, 3, gamma=0.5),
                 lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2),
                 lambda m, o: m.CyclicLR(o, 0.01, 0.1, step_size_up=4),
                 lambda m, o: m.ReduceLROnPlateau(o, mode="max", min_lr=0.01)):
        ours, theirs = make(lr_scheduler, opt), make(T, ref)
        torch_keys = set(theirs.state_dict()) - {"_step_count", "_is_initial",
                                                 "_get_lr_called_within_step"}
        assert torch_keys <= set(ours.state_dict())
    step = lr_scheduler.StepLR(opt, 3, gamma=0.5)
    step.load_state_dict(lr_scheduler.StepLR(opt, 7, gamma=0.25).state_dict())
    assert (step.step_size, step.gamma) == (7, 0.25)


def test_lambda_state_keeps_callable_objects_only():
    class Decay:
        def __init__(self, rate):
            self.rate = rate

        def __call__(self, epoch):
            return self.rate ** epoch

    opt, _ = optimizers([0.1, 0.2], "sgd")
    sched = lr_scheduler.LambdaLR(opt, [Decay(0.5), lambda e: 1.0])
    state = sched.state_dict()
    assert state["lr_lambdas"] == [{"rate": 0.5}, None]
    pickle.dumps(state)
    other = lr_scheduler.LambdaLR(opt, [Decay(0.9), lambda e: 1.0])
    other.load_state_dict(state)
    assert other.lr_lambdas[0].rate == 0.5


def test_cyclic_after_another_scheduler_starts_from_initial_lr_as_torch():
    """PyTorch's CyclicLR makes its first step from the groups' initial_lr (set by a
    scheduler built before), its later ones from base_lr."""
    opt, ref = optimizers([0.1, 0.37], "sgd")
    for m, o in ((lr_scheduler, opt), (T, ref)):
        m.ChainedScheduler([m.ConstantLR(o, 0.5, total_iters=4),
                            m.CyclicLR(o, 0.01, 0.1, step_size_up=3)])
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in ref.param_groups] \
        == [0.1, 0.37]


@pytest.mark.filterwarnings("ignore")
def test_milestone_zero_and_fractional_t_max_as_torch():
    opt, ref = optimizers([0.1, 0.3], "sgd")
    for make in (lambda m, o: m.MultiStepLR(o, [0, 3, 3], gamma=0.5),
                 lambda m, o: m.CosineAnnealingLR(o, T_max=5.5, eta_min=0.01)):
        ours, theirs = make(lr_scheduler, opt), make(T, ref)
        for _ in range(25):
            np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12)
            ours.step()
            theirs.step()
    with pytest.raises(ValueError):
        lr_scheduler.CosineAnnealingLR(opt, T_max=0.0)


def test_reduce_lr_on_plateau_is_a_scheduler_and_covers_new_groups():
    opt = optim.SGD([nn.Parameter(np.zeros(2))], lr=0.1)
    sched = lr_scheduler.ReduceLROnPlateau(opt, patience=0, min_lr=0.01)
    assert isinstance(sched, lr_scheduler.LRScheduler)
    assert sched.mode_worse == math.inf and sched.default_min_lr == 0.01
    sched.step(1.0)
    opt.add_param_group({"params": [nn.Parameter(np.zeros(2))], "lr": 0.5})
    for _ in range(4):
        sched.step(2.0)
    assert sched.get_last_lr() == [pytest.approx(0.01), 0.01]
    listed = lr_scheduler.ReduceLROnPlateau(opt, patience=0, min_lr=[0.0, 0.0])
    listed.step(1.0)
    opt.add_param_group({"params": [nn.Parameter(np.zeros(2))], "lr": 0.5})
    with pytest.raises(RuntimeError, match="param groups"):
        listed.step(2.0)
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        lr_scheduler.SequentialLR(opt, [lr_scheduler.StepLR(opt, 2), sched], milestones=[2])


def test_plateau_random_against_torch():
    for seed in range(20):
        r = random.Random(seed)
        opt, ref = optimizers([r.uniform(0.01, 1) for _ in range(2)], "sgd")
        kw = dict(mode=r.choice(["min", "max"]), factor=r.uniform(0.05, 0.95),
                  patience=r.randint(0, 5), threshold=r.choice([0.0, r.uniform(0, 0.3)]),
                  threshold_mode=r.choice(["rel", "abs"]), cooldown=r.randint(0, 3),
                  eps=r.choice([1e-8, 1e-3]),
                  min_lr=r.choice([r.uniform(0, 1e-2), [r.uniform(0, 1e-2), 0.0]]))
        ours, theirs = lr_scheduler.ReduceLROnPlateau(opt, **kw), T.ReduceLROnPlateau(ref, **kw)
        for i in range(80):
            metric = r.choice([r.uniform(-1, 1), 1.0 / (1 + i), 0.5])
            ours.step(np.float32(metric))
            theirs.step(np.float32(metric))
            assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12)
            assert (ours.best, ours.num_bad_epochs, ours.cooldown_counter) == \
                (theirs.best, theirs.num_bad_epochs, theirs.cooldown_counter)


# ------------------------------------------------------------------------- nn.init
@pytest.mark.parametrize("name", ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                                  "conv_transpose2d", "conv_transpose3d", "sigmoid", "tanh",
                                  "relu", "leaky_relu", "selu"])
def test_calculate_gain_every_torch_nonlinearity(name):
    for param in (None, 0.2, 1, 0):
        assert init.calculate_gain(name, param) == pytest.approx(
            torch.nn.init.calculate_gain(name, param), rel=1e-15)
    with pytest.raises(ValueError):
        init.calculate_gain("gelu")


def test_correct_fan_and_range_errors():
    weight = np.zeros((4, 3, 5))
    assert init._calculate_correct_fan(weight, "fan_in") == 15
    assert init._calculate_correct_fan(weight, "fan_out") == 20
    for call in (lambda: init.uniform_(weight, 1.0, 0.0), lambda: init.normal_(weight, 0, -1),
                 lambda: init.trunc_normal_(weight, a=1.0, b=0.0)):
        with pytest.raises(RuntimeError) as info:  # PyTorch's type, and a ValueError
            call()
        assert isinstance(info.value, ValueError)
    assert np.all(weight == 0)


def test_random_inits_statistics_seeding_and_identity():
    for dtype in (np.float32, np.float64):
        x = np.zeros((256, 64, 3), dtype)
        fastnn.manual_seed(7)
        assert init.kaiming_normal_(x, a=0.2, mode="fan_out", nonlinearity="leaky_relu") is x
        std = init.calculate_gain("leaky_relu", 0.2) / math.sqrt(256 * 3)
        assert x.dtype == dtype and abs(x.std() / std - 1) < 0.02 and abs(x.mean()) < 4 * std / 220
        y = np.zeros_like(x)
        fastnn.manual_seed(7)
        init.kaiming_normal_(y, a=0.2, mode="fan_out", nonlinearity="leaky_relu")
        np.testing.assert_array_equal(x, y)
        init.xavier_uniform_(x, gain=2.0)
        bound = 2.0 * math.sqrt(6.0 / (64 * 3 + 256 * 3))
        assert np.abs(x).max() <= bound and np.abs(x).max() > 0.99 * bound
        init.trunc_normal_(x, mean=0.5, std=1.0, a=0.0, b=0.75)
        assert x.min() >= 0 and x.max() <= dtype(0.75)
    wide = init.orthogonal_(nn.Parameter(np.zeros((3, 2, 4))), gain=1.5)
    flat = wide.data.reshape(3, -1)
    np.testing.assert_allclose(flat @ flat.T, 2.25 * np.eye(3), atol=1e-5)
    sparse = init.sparse_(np.ones((10, 6)), 0.35)
    assert np.all((sparse == 0).sum(axis=0) == 4)


# ------------------------------------------------------------------- nn.utils clipping
def test_clip_grad_norm_random_against_torch():
    rng = np.random.default_rng(0)
    for case in range(60):
        dtype = (np.float32, np.float64)[case % 2]
        shapes = [tuple(rng.integers(1, 5, size=rng.integers(0, 4)))
                  for _ in range(rng.integers(1, 4))]
        norm_type = [1, 2, float("inf"), "inf", 0.5, 3, 0][case % 7]
        ours, theirs = [], []
        for i, shape in enumerate(shapes):
            grad = np.asarray(rng.standard_normal(shape) * 3).astype(dtype)
            p = nn.Parameter(np.zeros(shape, dtype))
            t = torch.zeros(shape, dtype=torch.float64 if dtype == np.float64 else torch.float32,
                            requires_grad=True)
            if i != 1:  # the second has no gradient: skipped
                p.grad, t.grad = grad.copy(), torch.tensor(grad)
            else:
                p.grad = None
            ours.append(p)
            theirs.append(t)
        total = utils.clip_grad_norm_(ours, 1.0, norm_type, foreach=bool(case % 3))
        ref = torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type)
        assert isinstance(total, float) and total.item() == pytest.approx(ref.item(), rel=1e-5)
        for p, t in zip(ours, theirs):
            if t.grad is None:
                assert p.grad is None
            else:
                np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-5)


def test_inf_norm_of_an_empty_gradient_is_an_error_as_torch():
    grads = [np.ones(3), np.zeros((0, 2))]
    with pytest.raises(RuntimeError, match="empty"):
        utils.get_total_norm(grads, "inf")
    assert utils.get_total_norm(grads, 2) == pytest.approx(math.sqrt(3))
    with pytest.raises(ValueError, match="non-empty"):
        utils.parameters_to_vector([])
