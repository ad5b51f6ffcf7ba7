"""Training trajectories against PyTorch: a BatchNorm MLP and a small CNN trained on the
digits for many steps with the same initial weights and batches, in float64, with an
optimizer, an LR scheduler, gradient clipping or accumulation and a loss with options.

A difference too small to see in one step (where weight decay or eps enters an update, a
scheduler one step early, BatchNorm's running-variance momentum) grows over a trajectory;
the loss is compared at every step, then the parameters, running statistics and
eval-mode outputs at the end. The Linear and Conv2d layers before a BatchNorm have no
bias: its gradient is rounding noise, which an adaptive optimizer turns into full-size
steps of either sign, so it would differ between any two implementations.
"""
import numpy as np
import pytest
import torch

from fastnn import data, nn, optim
from fastnn.optim import lr_scheduler

torch.set_num_threads(2)

STEPS = 60
BATCH = 32


def mlp(lib):
    return lib.Sequential(lib.Linear(64, 48, bias=False), lib.BatchNorm1d(48),
                          lib.LeakyReLU(0.1), lib.Dropout(0.0),
                          lib.Linear(48, 32, bias=False), lib.BatchNorm1d(32, affine=False),
                          lib.LeakyReLU(0.1), lib.Linear(32, 10))


def cnn(lib):
    return lib.Sequential(lib.Conv2d(1, 6, 3, padding=1, bias=False), lib.BatchNorm2d(6),
                          lib.ReLU(), lib.MaxPool2d(3, 2, 1),
                          lib.Conv2d(6, 8, 3, padding=1), lib.ReLU(), lib.AvgPool2d(2),
                          lib.Flatten(), lib.Linear(32, 10))


WEIGHTS = np.linspace(0.5, 2.0, 10)


def sgd_onecycle_clip(lib, sched, params):
    opt = lib.SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
    return opt, sched.OneCycleLR(opt, 0.1, total_steps=STEPS), dict(clip=0.5)


def adamw_warmup_accumulate(lib, sched, params):
    opt = lib.AdamW(params, lr=3e-3, weight_decay=0.05, amsgrad=True)
    warmup = sched.SequentialLR(opt, [sched.LinearLR(opt, 0.1, 1.0, 10),
                                      sched.CosineAnnealingLR(opt, STEPS - 10)], [10])
    return opt, warmup, dict(accumulate=2)


def rmsprop_steplr(lib, sched, params):
    opt = lib.RMSprop(params, lr=5e-4, centered=True, momentum=0.9, weight_decay=1e-3)
    return opt, sched.StepLR(opt, 15, 0.5), {}


def nadam_plateau(lib, sched, params):
    opt = lib.NAdam(params, lr=2e-3, weight_decay=1e-2, decoupled_weight_decay=True)
    return opt, sched.ReduceLROnPlateau(opt, factor=0.5, patience=0, threshold=0.3), {}


CASES = {   # name: (model, optimizer and schedule, loss options)
    "sgd-onecycle-clip": (mlp, sgd_onecycle_clip, dict(label_smoothing=0.1)),
    "adamw-warmup-accumulate": (mlp, adamw_warmup_accumulate, dict(weight=WEIGHTS)),
    "rmsprop-steplr-cnn": (cnn, rmsprop_steplr, dict(weight=WEIGHTS, label_smoothing=0.2)),
    "nadam-plateau": (mlp, nadam_plateau, {}),
}


@pytest.fixture(scope="module")
def digits():
    x_train, y_train, x_test, y_test = data.load("digits", dtype="float64")
    order = np.random.default_rng(0).permutation(len(x_train))
    return x_train[order], y_train[order], x_test, y_test


def torch_loss_options(options):
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
            for k, v in options.items()}


@pytest.mark.parametrize("case", CASES)
def test_trajectory_follows_pytorch(backend, digits, case):
    make_model, make_optimizer, loss_options = CASES[case]
    x_train, y_train, x_test, y_test = digits
    if make_model is cnn:
        x_train, x_test = x_train[:, None], x_test[:, None]
    else:
        x_train, x_test = x_train.reshape(-1, 64), x_test.reshape(-1, 64)
    torch.manual_seed(0)
    reference = make_model(torch.nn).double()
    model = make_model(nn).double()
    model.load_state_dict({k: v.numpy().copy() for k, v in reference.state_dict().items()})
    t_opt, t_sched, how = make_optimizer(torch.optim, torch.optim.lr_scheduler,
                                         reference.parameters())
    f_opt, f_sched, _ = make_optimizer(optim, lr_scheduler, model.parameters())
    t_loss = torch.nn.CrossEntropyLoss(**torch_loss_options(loss_options))
    f_loss = nn.CrossEntropyLoss(**loss_options)
    accumulate = how.get("accumulate", 1)
    plateau = isinstance(t_sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
    start = 0
    for step in range(STEPS):
        t_total = f_total = 0.0
        for _ in range(accumulate):
            rows = np.arange(start, start + BATCH) % len(x_train)
            start += BATCH
            x, y = x_train[rows], y_train[rows]
            t_value = t_loss(reference(torch.from_numpy(x)), torch.from_numpy(y))
            (t_value / accumulate).backward()
            f_value = f_loss.forward(model.forward(x), y)
            model.backward(f_loss.backward() / accumulate, need_grad_in=False)
            t_total += t_value.item()
            f_total += float(f_value)
        np.testing.assert_allclose(f_total, t_total, rtol=1e-10, err_msg=f"step {step}")
        if "clip" in how:
            torch.nn.utils.clip_grad_norm_(reference.parameters(), how["clip"])
            nn.utils.clip_grad_norm_(model.parameters(), how["clip"])
        t_opt.step()
        t_opt.zero_grad()
        f_opt.step()
        f_opt.zero_grad()
        if plateau:
            if step % 10 == 9:
                t_sched.step(t_total)
                f_sched.step(f_total)
        else:
            t_sched.step()
            f_sched.step()
        assert f_opt.param_groups[0]["lr"] == pytest.approx(t_opt.param_groups[0]["lr"],
                                                            rel=1e-14)
    state = model.state_dict()
    for name, value in reference.state_dict().items():
        np.testing.assert_allclose(np.asarray(state[name]), value.numpy(), rtol=1e-9,
                                   atol=1e-12, err_msg=name)
    reference.eval()
    model.eval()
    with torch.no_grad():
        expected = reference(torch.from_numpy(np.ascontiguousarray(x_test))).numpy()
    np.testing.assert_allclose(model.forward(np.ascontiguousarray(x_test)), expected,
                               rtol=1e-9, atol=1e-11)
