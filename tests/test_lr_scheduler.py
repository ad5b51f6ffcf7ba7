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
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedules_match_torch_and_drive_the_optimizer(backend, name):
    dtype = np.float64
    ours, theirs, offsets = make_params(dtype)
    opt = optim.SGD([{"params": ours[:2]}, {"params": ours[2:], "lr": 0.3}], lr=0.1,
                    momentum=0.9)
    ref = torch.optim.SGD([{"params": theirs[:2]}, {"params": theirs[2:], "lr": 0.3}], lr=0.1,
                          momentum=0.9)
    sched = SCHEDULES[name](lr_scheduler, opt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_sched = SCHEDULES[name](torch.optim.lr_scheduler, ref)
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
    with pytest.raises(TypeError, match="metric as a number"):
        lr_scheduler.ReduceLROnPlateau(opt).step("low")
