"""fastnn.optim.lr_scheduler against torch.optim.lr_scheduler: the rates of every
param group epoch by epoch, the optimizer actually using them, and resuming from state."""
import warnings

import numpy as np
import pytest
import torch

from fastnn import nn, optim
from fastnn.optim import lr_scheduler

from test_optim import fill_grads, make_params

SCHEDULES = {
    "step": lambda m, o: m.StepLR(o, step_size=3, gamma=0.5),
    "multistep": lambda m, o: m.MultiStepLR(o, milestones=[5, 2, 9], gamma=0.3),
    "exponential": lambda m, o: m.ExponentialLR(o, gamma=0.9),
    "cosine": lambda m, o: m.CosineAnnealingLR(o, T_max=7, eta_min=0.001),
    "lambda": lambda m, o: m.LambdaLR(o, lr_lambda=lambda e: 1.0 / (1 + e)),
    "lambda_per_group": lambda m, o: m.LambdaLR(o, [lambda e: 0.9 ** e, lambda e: 1 / (1 + e)]),
    "linear": lambda m, o: m.LinearLR(o, start_factor=0.25, end_factor=0.9, total_iters=6),
    "linear_default": lambda m, o: m.LinearLR(o),
    "constant": lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=4),
    "polynomial": lambda m, o: m.PolynomialLR(o, total_iters=8, power=2.0),
    "warm_restarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=4, eta_min=0.01),
    "warm_restarts_mult": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=3),
    "multiplicative": lambda m, o: m.MultiplicativeLR(o, lr_lambda=lambda e: 0.9 + 0.01 * e),
    "multiplicative_per_group": lambda m, o: m.MultiplicativeLR(
        o, [lambda e: 0.95, lambda e: 1.0 if e % 2 else 0.5]),
    "sequential_warmup_cosine": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.1, total_iters=4), m.CosineAnnealingLR(o, T_max=12)],
        milestones=[4]),
    "sequential_three": lambda m, o: m.SequentialLR(
        o, [m.ConstantLR(o, factor=0.2, total_iters=2), m.ExponentialLR(o, gamma=0.8),
            m.StepLR(o, step_size=3, gamma=0.5)], milestones=[3, 9]),
    "sequential_multiplicative_after": lambda m, o: m.SequentialLR(
        o, [m.ExponentialLR(o, gamma=0.5), m.MultiplicativeLR(o, lambda e: 0.9)],
        milestones=[5]),
    "sequential_nested": lambda m, o: m.SequentialLR(
        o, [m.SequentialLR(o, [m.LinearLR(o, start_factor=0.5, total_iters=2),
                               m.ExponentialLR(o, gamma=0.9)], milestones=[2]),
            m.PolynomialLR(o, total_iters=6)], milestones=[7]),
}


def scheduled_twins(name, ours, theirs, split, **options):
    """(fastnn SGD, torch SGD, their schedules ``name``): two param groups, the parameters
    before ``split`` at lr 0.1 and the rest at 0.3."""
    def groups(params):
        return [{"params": params[:split]}, {"params": params[split:], "lr": 0.3}]
    opt = optim.SGD(groups(ours), lr=0.1, **options)
    ref = torch.optim.SGD(groups(theirs), lr=0.1, **options)
    sched = SCHEDULES[name](lr_scheduler, opt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_sched = SCHEDULES[name](torch.optim.lr_scheduler, ref)
    return opt, ref, sched, ref_sched


def assert_resumes_as_uninterrupted(build, steps_before):
    """A schedule build(optimizer) stepped steps_before times; its optimizer's and its
    own state dicts loaded into fresh ones: their next four rates are the first's."""
    opt_a = optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    sched_a = build(opt_a)
    for _ in range(steps_before):
        sched_a.step()
    opt_b = optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    sched_b = build(opt_b)
    opt_b.load_state_dict(opt_a.state_dict())
    sched_b.load_state_dict(sched_a.state_dict())
    for _ in range(4):
        sched_a.step()
        sched_b.step()
        assert sched_b.get_last_lr() == sched_a.get_last_lr()


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedules_match_torch_and_drive_the_optimizer(backend, name):
    dtype = np.float64
    ours, theirs, offsets = make_params(dtype)
    opt, ref, sched, ref_sched = scheduled_twins(name, ours, theirs, 2, momentum=0.9)
    for epoch in range(20):
        np.testing.assert_allclose(sched.get_last_lr(), ref_sched.get_last_lr(), rtol=1e-12,
                                   err_msg=f"{name}: epoch {epoch}")
        assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr()
        fill_grads(ours, theirs, offsets)
        opt.step()
        ref.step()
        sched.step()
        ref_sched.step()
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-9, atol=1e-12)
    assert sched.last_epoch == ref_sched.last_epoch == 20


def test_resume_from_state_dicts():
    model = nn.Sequential(nn.Linear(3, 2))
    opt = optim.Adam(model.parameters(), lr=0.1)
    sched = lr_scheduler.StepLR(opt, step_size=2)
    for _ in range(3):
        sched.step()
    saved_opt, saved_sched = opt.state_dict(), sched.state_dict()
    opt2 = optim.Adam(model.parameters(), lr=0.1)
    opt2.load_state_dict(saved_opt)  # 'initial_lr' travels with the param groups
    assert opt2.param_groups[0]["initial_lr"] == 0.1
    sched2 = lr_scheduler.StepLR(opt2, step_size=2, last_epoch=saved_sched["last_epoch"] - 1)
    sched2.load_state_dict(saved_sched)
    sched.step()
    sched2.step()
    assert sched2.get_last_lr() == sched.get_last_lr() == [pytest.approx(0.001)]


def test_bad_arguments_raise_clear_errors():
    opt = optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="StepLR: expected step_size to be a positive int"):
        lr_scheduler.StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="ExponentialLR: expected gamma to be a finite"):
        lr_scheduler.ExponentialLR(opt, gamma=float("nan"))
    with pytest.raises(ValueError, match="LambdaLR: expected a function or a list of 1"):
        lr_scheduler.LambdaLR(opt, [lambda e: 1, lambda e: 2])
    with pytest.raises(TypeError, match="expected a fastnn optimizer"):
        lr_scheduler.StepLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), 2)
    with pytest.raises(KeyError, match="no 'initial_lr'"):
        lr_scheduler.StepLR(optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1), 2, last_epoch=3)


@pytest.mark.parametrize("kwargs", [
    dict(), dict(mode="max", factor=0.5, patience=2, threshold=0.05, cooldown=1),
    dict(threshold_mode="abs", threshold=0.2, patience=1, min_lr=[0.05, 0.1]),
    dict(patience=0, factor=0.5, eps=0.02),
], ids=["defaults", "max_cooldown", "abs_min_lr", "eps"])
def test_reduce_lr_on_plateau_matches_torch(backend, kwargs):
    """The same noisy, flattening metric drives both: the rates epoch by epoch and the
    parameters the optimizer moves with them."""
    dtype = np.float64
    ours, theirs, offsets = make_params(dtype)
    opt = optim.SGD([{"params": ours[:2]}, {"params": ours[2:], "lr": 0.3}], lr=0.1)
    ref = torch.optim.SGD([{"params": theirs[:2]}, {"params": theirs[2:], "lr": 0.3}], lr=0.1)
    sched = lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    ref_sched = torch.optim.lr_scheduler.ReduceLROnPlateau(ref, **kwargs)
    metrics = 1.0 / (1 + np.arange(40)) + 0.05 * np.random.default_rng(0).random(40)
    for epoch, metric in enumerate(metrics):
        fill_grads(ours, theirs, offsets)
        opt.step()
        ref.step()
        sched.step(np.float64(metric))
        ref_sched.step(metric)
        np.testing.assert_allclose(sched.get_last_lr(), ref_sched.get_last_lr(), rtol=1e-12,
                                   err_msg=f"epoch {epoch}")
    assert sched.get_last_lr() != [0.1, 0.3]  # the rates did come down
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-9, atol=1e-12)
    resumed = lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    resumed.load_state_dict(sched.state_dict())
    assert resumed.best == sched.best and resumed.num_bad_epochs == sched.num_bad_epochs


def test_reduce_lr_on_plateau_bad_arguments():
    opt = optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="expected factor < 1.0"):
        lr_scheduler.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="expected mode 'min' or 'max'"):
        lr_scheduler.ReduceLROnPlateau(opt, mode="lowest")
    with pytest.raises(ValueError, match="expected 1 min_lr values"):
        lr_scheduler.ReduceLROnPlateau(opt, min_lr=[0.1, 0.2])
    with pytest.raises(ValueError, match="metric as a number"):
        lr_scheduler.ReduceLROnPlateau(opt).step("low")


ONE_CYCLE = {
    "sgd": (lambda m, p: m.SGD(p, lr=0.1, momentum=0.9), dict(max_lr=0.5, total_steps=30)),
    "sgd_no_momentum_cycle": (lambda m, p: m.SGD(p, lr=0.1),
                              dict(max_lr=[0.5, 0.2], epochs=3, steps_per_epoch=10,
                                   cycle_momentum=False, anneal_strategy="linear")),
    "adam_three_phase": (lambda m, p: m.Adam(p, lr=1e-3),
                         dict(max_lr=0.05, total_steps=25, three_phase=True, pct_start=0.2,
                              div_factor=10, final_div_factor=100)),
    "rmsprop": (lambda m, p: m.RMSprop(p, lr=1e-3, momentum=0.5),
                dict(max_lr=0.01, total_steps=20, base_momentum=0.5, max_momentum=0.8)),
}


@pytest.mark.parametrize("name", sorted(ONE_CYCLE))
def test_one_cycle_matches_torch(name):
    """Rates, momentum (beta1) and parameters batch by batch, to the last step; one
    step more is an error, as in PyTorch."""
    build, kwargs = ONE_CYCLE[name]
    ours, theirs, offsets = make_params(np.float64)
    opt = build(optim, [{"params": ours[:2]}, {"params": ours[2:]}])
    ref = build(torch.optim, [{"params": theirs[:2]}, {"params": theirs[2:]}])
    sched = lr_scheduler.OneCycleLR(opt, **kwargs)
    ref_sched = torch.optim.lr_scheduler.OneCycleLR(ref, **kwargs)
    total = kwargs.get("total_steps") or kwargs["epochs"] * kwargs["steps_per_epoch"]
    key = "betas" if "betas" in opt.defaults else "momentum"
    for batch in range(total):
        np.testing.assert_allclose(sched.get_last_lr(), ref_sched.get_last_lr(), rtol=1e-12,
                                   err_msg=f"{name}: batch {batch}")
        for g, h in zip(opt.param_groups, ref.param_groups):
            np.testing.assert_allclose(g[key], h[key], rtol=1e-12)
        fill_grads(ours, theirs, offsets)
        opt.step()
        ref.step()
        if batch < total - 1:
            sched.step()
            ref_sched.step()
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-9, atol=1e-12)
    sched.step()
    ref_sched.step()
    with pytest.raises(ValueError, match="total_steps"):
        sched.step()
    with pytest.raises(ValueError):
        ref_sched.step()


def test_one_cycle_bad_arguments():
    opt = optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="expected total_steps, or epochs and steps_per_epoch"):
        lr_scheduler.OneCycleLR(opt, max_lr=0.1)
    with pytest.raises(ValueError, match="anneal_strategy"):
        lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10, anneal_strategy="step")
    with pytest.raises(ValueError, match="pct_start"):
        lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10, pct_start=1.5)
    with pytest.raises(ValueError, match="expected 1 max_lr values"):
        lr_scheduler.OneCycleLR(opt, max_lr=[0.1, 0.2], total_steps=10)
    with pytest.raises(ValueError, match="T_0"):
        lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=0)
    with pytest.raises(ValueError, match="start_factor"):
        lr_scheduler.LinearLR(opt, start_factor=0.0)


def test_one_cycle_state_survives_an_optimizer_state_dict():
    """The keys OneCycleLR adds to the param groups travel with the optimizer's state."""
    model = nn.Sequential(nn.Linear(3, 2))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10)
    for _ in range(4):
        sched.step()
    opt2 = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt2.load_state_dict(opt.state_dict())
    sched2 = lr_scheduler.OneCycleLR(opt2, max_lr=1.0, total_steps=10, last_epoch=3)
    sched2.load_state_dict(sched.state_dict())
    sched.step()
    sched2.step()
    assert sched2.get_last_lr() == sched.get_last_lr()
    assert opt2.param_groups[0]["momentum"] == opt.param_groups[0]["momentum"]


CYCLIC = {
    "triangular_sgd": (lambda m, p: m.SGD(p, lr=0.1, momentum=0.9),
                       dict(base_lr=0.01, max_lr=0.1, step_size_up=4)),
    "triangular2_uneven": (lambda m, p: m.SGD(p, lr=0.1, momentum=0.5),
                           dict(base_lr=[0.01, 0.02], max_lr=[0.1, 0.3], step_size_up=3,
                                step_size_down=5, mode="triangular2", base_momentum=0.4,
                                max_momentum=0.6)),
    "exp_range_adam": (lambda m, p: m.Adam(p, lr=1e-3),
                       dict(base_lr=1e-3, max_lr=1e-2, step_size_up=2, mode="exp_range",
                            gamma=0.9)),
    "scale_fn_iterations_no_momentum": (
        lambda m, p: m.SGD(p, lr=0.1),
        dict(base_lr=0.05, max_lr=0.2, step_size_up=3, scale_fn=lambda x: 1 / (1 + x),
             scale_mode="iterations", cycle_momentum=False)),
    "scale_fn_cycle": (lambda m, p: m.RMSprop(p, lr=0.01, momentum=0.3),
                       dict(base_lr=0.001, max_lr=0.01, step_size_up=2, step_size_down=1,
                            scale_fn=lambda c: 0.5 ** c)),
}


@pytest.mark.parametrize("name", sorted(CYCLIC))
def test_cyclic_matches_torch(name):
    """Rates, momentum (beta1) and parameters batch by batch over several cycles."""
    build, kwargs = CYCLIC[name]
    ours, theirs, offsets = make_params(np.float64)
    opt = build(optim, [{"params": ours[:2]}, {"params": ours[2:]}])
    ref = build(torch.optim, [{"params": theirs[:2]}, {"params": theirs[2:]}])
    sched = lr_scheduler.CyclicLR(opt, **kwargs)
    ref_sched = torch.optim.lr_scheduler.CyclicLR(ref, **kwargs)
    key = "betas" if "betas" in opt.defaults else "momentum"
    for batch in range(25):
        np.testing.assert_allclose(sched.get_last_lr(), ref_sched.get_last_lr(), rtol=1e-12,
                                   err_msg=f"{name}: batch {batch}")
        assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr()
        for g, h in zip(opt.param_groups, ref.param_groups):
            np.testing.assert_allclose(g[key], h[key], rtol=1e-12)
        fill_grads(ours, theirs, offsets)
        opt.step()
        ref.step()
        sched.step()
        ref_sched.step()
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_new_schedulers_bad_arguments_and_state():
    opt = optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="mode"):
        lr_scheduler.CyclicLR(opt, 0.01, 0.1, mode="sawtooth")
    with pytest.raises(ValueError, match="momentum or betas"):
        lr_scheduler.CyclicLR(optim.Adagrad(nn.Linear(2, 2).parameters()), 0.01, 0.1)
    with pytest.raises(ValueError, match="expected 1 lr_lambdas"):
        lr_scheduler.MultiplicativeLR(opt, [lambda e: 1, lambda e: 1])
    with pytest.raises(TypeError, match="functions"):
        lr_scheduler.MultiplicativeLR(opt, 0.9)
    first = lr_scheduler.ExponentialLR(opt, gamma=0.9)
    with pytest.raises(ValueError, match="milestones"):
        lr_scheduler.SequentialLR(opt, [first], milestones=[3])
    other = optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="another optimizer"):
        lr_scheduler.SequentialLR(opt, [first, lr_scheduler.StepLR(other, 2)], milestones=[3])
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        lr_scheduler.SequentialLR(opt, [first, lr_scheduler.ReduceLROnPlateau(opt)], [3])
    # a SequentialLR's state resumes the rates of an uninterrupted run
    assert_resumes_as_uninterrupted(lambda o: lr_scheduler.SequentialLR(
        o, [lr_scheduler.LinearLR(o, 0.5, total_iters=2), lr_scheduler.StepLR(o, 2, 0.5)],
        milestones=[2]), steps_before=3)


CHAINED = {
    "constant_exponential": lambda m, o: [m.ConstantLR(o, factor=0.1, total_iters=2),
                                          m.ExponentialLR(o, gamma=0.9)],
    "linear_cosine": lambda m, o: [m.LinearLR(o, 0.2, total_iters=4),
                                   m.CosineAnnealingLR(o, T_max=6, eta_min=0.001)],
    "step_poly_multistep": lambda m, o: [m.StepLR(o, 2, 0.7),
                                         m.PolynomialLR(o, total_iters=12, power=1.5),
                                         m.MultiStepLR(o, [3, 3, 8], 0.5)],
    "exponential_then_lambda": lambda m, o: [m.ExponentialLR(o, 0.95),
                                             m.LambdaLR(o, lambda e: 1 / (1 + e))],
    "multiplicative_linear": lambda m, o: [m.MultiplicativeLR(o, lambda e: 0.97),
                                           m.LinearLR(o, 0.5, 1.0, total_iters=5)],
    "sequential_inside": lambda m, o: [
        m.ExponentialLR(o, 0.9),
        m.SequentialLR(o, [m.ConstantLR(o, 0.5, total_iters=2), m.StepLR(o, 3, 0.5)],
                       milestones=[4])],
}


@pytest.mark.parametrize("name", sorted(CHAINED))
def test_chained_scheduler_matches_torch(name):
    """Each step every scheduler by PyTorch's recursive rule, in order; 25 epochs of
    rates and parameters, then a state dict resumed mid-run."""
    ours, theirs, offsets = make_params(np.float64)
    opt = optim.SGD([{"params": ours[:2]}, {"params": ours[2:], "lr": 0.3}], lr=0.1,
                    momentum=0.9)
    ref = torch.optim.SGD([{"params": theirs[:2]}, {"params": theirs[2:], "lr": 0.3}],
                          lr=0.1, momentum=0.9)
    sched = lr_scheduler.ChainedScheduler(CHAINED[name](lr_scheduler, opt))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_sched = torch.optim.lr_scheduler.ChainedScheduler(
            CHAINED[name](torch.optim.lr_scheduler, ref))
    for epoch in range(25):
        np.testing.assert_allclose(sched.get_last_lr(), ref_sched.get_last_lr(), rtol=1e-12,
                                   err_msg=f"{name}: epoch {epoch}")
        assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr()
        fill_grads(ours, theirs, offsets)
        opt.step()
        ref.step()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sched.step()
            ref_sched.step()
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_chained_scheduler_state_and_errors():
    assert_resumes_as_uninterrupted(lambda o: lr_scheduler.ChainedScheduler(
        [lr_scheduler.ConstantLR(o, 0.5, total_iters=3), lr_scheduler.ExponentialLR(o, 0.8)]),
        steps_before=2)
    with pytest.raises(ValueError, match="at least one"):
        lr_scheduler.ChainedScheduler([])
    opt = optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    other = optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="another optimizer"):
        lr_scheduler.ChainedScheduler([lr_scheduler.StepLR(opt, 2),
                                       lr_scheduler.StepLR(other, 2)])


COMPOSED = {
    # OneCycleLR rewrites initial_lr, which SequentialLR starts the first schedule from
    "sequential_step_then_one_cycle": lambda m, o: [m.SequentialLR(
        o, [m.StepLR(o, 3, 0.5), m.OneCycleLR(o, 0.5, total_steps=60)], milestones=[5])],
    # two schedulers stepped by hand on one optimizer compose through their rates
    "two_by_hand": lambda m, o: [m.ExponentialLR(o, 0.9), m.StepLR(o, 3, 0.5)],
}


@pytest.mark.parametrize("name", sorted(COMPOSED))
def test_schedules_carry_on_from_the_current_rate_as_torch(name):
    opt = optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1, momentum=0.9)
    ref = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1, momentum=0.9)
    ours = COMPOSED[name](lr_scheduler, opt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = COMPOSED[name](torch.optim.lr_scheduler, ref)
    for epoch in range(30):
        np.testing.assert_allclose([g["lr"] for g in opt.param_groups],
                                   [g["lr"] for g in ref.param_groups], rtol=1e-12,
                                   err_msg=f"{name}: epoch {epoch}")
        if epoch == 12:  # a rate set by hand is carried on from
            opt.param_groups[0]["lr"] = ref.param_groups[0]["lr"] = 0.05
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for s in ours:
                s.step()
            for s in theirs:
                s.step()


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_a_group_added_after_the_scheduler_is_scheduled_as_torch_does(name):
    # unfreezing a backbone mid-training: PyTorch's recursive rules (StepLR, ...) decay
    # the new group too; those that need its initial rate or function raise ValueError
    ours, theirs, offsets = make_params(np.float64)
    opt, ref, sched, ref_sched = scheduled_twins(name, ours[:2], theirs[:2], 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for epoch in range(12):
            if epoch == 3:
                opt.add_param_group({"params": ours[2:], "lr": 0.04})
                ref.add_param_group({"params": theirs[2:], "lr": 0.04})
            fill_grads(ours, theirs, offsets)
            opt.step()
            ref.step()
            try:
                ref_sched.step()
            except ValueError:   # PyTorch's rule needs the new group's initial rate
                with pytest.raises(ValueError, match="param groups .* added after"):
                    sched.step()
                return
            sched.step()
            np.testing.assert_allclose([g["lr"] for g in opt.param_groups],
                                       [g["lr"] for g in ref.param_groups], rtol=1e-12,
                                       err_msg=f"{name}: epoch {epoch}")
            np.testing.assert_allclose(sched.get_last_lr(), ref_sched.get_last_lr(),
                                       rtol=1e-12)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-9, atol=1e-12)


def _schedule_state(sched, opt):
    return repr(sched.state_dict()), [{k: v for k, v in g.items() if k != "params"}
                                      for g in opt.param_groups]


@pytest.mark.parametrize("name", sorted(SCHEDULES) + ["plateau", "one_cycle", "cyclic"])
def test_a_step_that_raises_leaves_the_schedule_as_it_was(name):
    # (the epoch counter, the step count, SequentialLR's inner schedulers, the restarts'
    # T_cur and the first group's rate had moved on before the error: PyTorch's step
    # counts the epoch before get_lr() raises; DESIGN.md's failed call changes nothing)
    params = [nn.Parameter(np.ones(3)) for _ in range(3)]
    opt = optim.SGD([{"params": params[:1]}, {"params": params[1:2], "lr": 0.3}], lr=0.1,
                    momentum=0.9)
    sched = {"plateau": lambda: lr_scheduler.ReduceLROnPlateau(opt, patience=0,
                                                               min_lr=[0.0, 0.0]),
             "one_cycle": lambda: lr_scheduler.OneCycleLR(opt, 1.0, total_steps=20),
             "cyclic": lambda: lr_scheduler.CyclicLR(opt, 0.01, 0.1, step_size_up=2),
             }.get(name, lambda: SCHEDULES[name](lr_scheduler, opt))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = sched()
        step = (lambda: sched.step(1.0)) if name == "plateau" else sched.step
        step()
        for bad in ("added group", "rate set to a string"):
            if bad == "added group":
                opt.add_param_group({"params": params[2:], "lr": 0.04})
            else:
                opt.param_groups[-1]["lr"] = "0.04"
            before = _schedule_state(sched, opt)
            try:
                step()
            except (ValueError, TypeError, RuntimeError):
                assert _schedule_state(sched, opt) == before, bad
            if bad == "added group":   # (a rule that takes the new group stepped on)
                opt.param_groups.pop()


@pytest.mark.parametrize("make,where,arg", [
    (lambda o: lr_scheduler.StepLR(o, 2, gamma=10 ** 400), "StepLR", "gamma"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, min_lr=10 ** 400), "ReduceLROnPlateau",
     "min_lr"),
    (lambda o: lr_scheduler.LinearLR(o, end_factor=10 ** 400), "LinearLR", "end_factor"),
    (lambda o: lr_scheduler.OneCycleLR(o, 1.0, total_steps=10, div_factor=10 ** 400),
     "OneCycleLR", "div_factor"),
    (lambda o: lr_scheduler.CyclicLR(o, 0.1, 1.0, mode="exp_range", gamma=10 ** 400,
                                     cycle_momentum=False), "CyclicLR", "gamma"),
])
def test_an_int_no_float_holds_is_a_value_error_naming_the_scheduler(make, where, arg):
    """math.isfinite() or float() of it raised OverflowError, naming neither."""
    opt = optim.SGD([nn.Parameter(np.ones(3, np.float32))], lr=0.1)
    with pytest.raises(ValueError, match=f"{where}: expected {arg} to be a number a float "
                                         f"can hold"):
        make(opt)
    assert opt.param_groups[0]["lr"] == 0.1 and "initial_lr" not in opt.param_groups[0]


@pytest.mark.parametrize("make,where,arg", [
    (lambda o: lr_scheduler.OneCycleLR(o, 1.0, total_steps=10 ** 400), "OneCycleLR",
     "total_steps"),
    (lambda o: lr_scheduler.OneCycleLR(o, 1.0, epochs=10 ** 200, steps_per_epoch=10 ** 200),
     "OneCycleLR", r"epochs \* steps_per_epoch"),
    (lambda o: lr_scheduler.CyclicLR(o, 0.1, 1.0, step_size_up=10 ** 400), "CyclicLR",
     "step_size_up"),
])
def test_a_period_no_float_holds_where_torch_makes_it_a_float_is_refused(make, where, arg):
    """OneCycleLR's phases end at float steps, CyclicLR's step sizes are floats (as
    PyTorch's): its first step raised OverflowError."""
    test_an_int_no_float_holds_is_a_value_error_naming_the_scheduler(make, where, arg)


def test_an_infinite_cyclic_period_is_refused():
    """Two step sizes a float holds but whose sum it does not: the first step divided 0
    by 0 (PyTorch's too)."""
    opt = optim.SGD([nn.Parameter(np.ones(3, np.float32))], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="CyclicLR: expected a finite step_size_up "
                                         r"\+ step_size_down"):
        lr_scheduler.CyclicLR(opt, 0.1, 1.0, step_size_up=1e308, step_size_down=1e308)
    assert opt.param_groups[0]["lr"] == 0.1


@pytest.mark.parametrize("build", [
    lambda m, o, n: m.CosineAnnealingLR(o, T_max=n, eta_min=0.001),
    lambda m, o, n: m.CosineAnnealingWarmRestarts(o, T_0=n),
    lambda m, o, n: m.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=n),
    lambda m, o, n: m.LinearLR(o, start_factor=0.25, total_iters=n),
    lambda m, o, n: m.PolynomialLR(o, total_iters=n),
    lambda m, o, n: m.ConstantLR(o, total_iters=n),
    lambda m, o, n: m.StepLR(o, step_size=n),
    lambda m, o, n: m.MultiStepLR(o, milestones=[n]),
])
def test_an_int_period_no_float_holds_schedules_exactly(build):
    """Periods kept as ints (as PyTorch keeps them) whose float arithmetic raised
    OverflowError at the first step (PyTorch's too): the exact rates, which at these
    lengths are those of PyTorch's run with a period of 10 ** 300 (a float holds it)."""
    opt = optim.SGD([nn.Parameter(np.ones(3))], lr=0.1)
    ref = torch.optim.SGD([torch.ones(3, dtype=torch.float64, requires_grad=True)], lr=0.1)
    sched, ref_sched = build(lr_scheduler, opt, 10 ** 400), build(
        torch.optim.lr_scheduler, ref, 10 ** 300)
    for _ in range(5):
        opt.step()
        ref.step()
        sched.step()
        ref_sched.step()
        assert sched.get_last_lr() == ref_sched.get_last_lr()
    if isinstance(sched, lr_scheduler.CosineAnnealingWarmRestarts):
        sched.step(2.5)   # a fractional epoch (PyTorch's documented use)
        ref_sched.step(2.5)
        assert sched.get_last_lr() == ref_sched.get_last_lr()
