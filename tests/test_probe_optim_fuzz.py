"""Optimizers and schedulers against torch.optim 2.13, from a seeded fuzz of 3 Dec:
zero-size parameters alone in their group (their state entries and NAdam's
mu_product), LinearLR and PolynomialLR with total_iters=0, Adagrad's step-0 state,
MultiStepLR loading torch's state dict, PyTorch's words in bad hyper-parameter and schedule
argument errors, foreach/maximize in PyTorch's positional order."""
import inspect
import re
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import optim
from fastnn.nn import Parameter
from fastnn.optim import lr_scheduler

import torch  # noqa: E402 (after fastnn)
from torch.optim import lr_scheduler as torch_sched  # noqa: E402

BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.backends()]
EMPTY_STATE = [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(amsgrad=True)),
               ("AdamW", {}), ("NAdam", {}), ("RAdam", {}), ("Adamax", {}),
               ("Adagrad", {}), ("Adadelta", {}),
               ("RMSprop", dict(momentum=0.9, centered=True)), ("Rprop", {}), ("ASGD", {})]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, kwargs", EMPTY_STATE, ids=[n for n, _ in EMPTY_STATE])
def test_a_group_of_zero_size_parameters_has_torchs_state(backend, name, kwargs):
    """A zero-size parameter alone in its group (so in its flat bucket) gets PyTorch's
    state entry: empty state arrays (no kernel ran to allocate them) and, for NAdam, a
    mu_product advanced at every step; with a non-empty one beside it in a second group
    and some steps without its gradient."""
    with fastnn.use_backend(backend):
        ours = [Parameter(np.ones((0, 3))), Parameter(np.arange(4.0))]
        theirs = [torch.nn.Parameter(torch.tensor(p.data)) for p in ours]
        opt = getattr(optim, name)([{"params": [ours[0]]}, {"params": [ours[1]]}], **kwargs)
        ref = getattr(torch.optim, name)([{"params": [theirs[0]]}, {"params": [theirs[1]]}],
                                         **kwargs)
        for step in range(3):
            for p, q in zip(ours, theirs):
                if step == 1 and p.data.size:
                    p.grad = q.grad = None
                else:
                    p.grad = np.full(p.data.shape, 0.5 + step)
                    q.grad = torch.tensor(p.grad)
            opt.step()
            ref.step()
        got, want = opt.state_dict()["state"], ref.state_dict()["state"]
        assert list(got) == list(want)
        for index in want:
            assert list(got[index]) == list(want[index])
            for key, value in want[index].items():
                value = value.numpy() if torch.is_tensor(value) else np.asarray(value)
                np.testing.assert_allclose(np.asarray(got[index][key]), value, rtol=1e-6)
                assert np.shape(got[index][key]) == value.shape
        np.testing.assert_allclose(ours[1].data, theirs[1].detach().numpy(), rtol=1e-6)


def test_nadam_mu_product_of_a_zero_size_parameter_in_a_shared_bucket():
    """A zero-size parameter beside a non-empty one, stepped when the other has no
    gradient (the per-parameter path): its mu_product advances as PyTorch's."""
    ours = [Parameter(np.ones((2, 0))), Parameter(np.arange(3.0))]
    theirs = [torch.nn.Parameter(torch.tensor(p.data)) for p in ours]
    opt, ref = optim.NAdam(ours), torch.optim.NAdam(theirs)
    for step in range(3):
        for p, q in zip(ours, theirs):
            p.grad = q.grad = None
            if p.data.size == 0 or step != 1:
                p.grad = np.ones(p.data.shape)
                q.grad = torch.tensor(p.grad)
        opt.step()
        ref.step()
    for index in (0, 1):
        assert float(opt.state_dict()["state"][index]["mu_product"]) == pytest.approx(
            float(ref.state_dict()["state"][index]["mu_product"]), rel=1e-7)


@pytest.mark.parametrize("build", [
    lambda m, o: m.LinearLR(o, start_factor=0.5, end_factor=0.2, total_iters=0),
    lambda m, o: m.PolynomialLR(o, total_iters=0, power=2.0),
    lambda m, o: m.SequentialLR(o, [m.LinearLR(o, 0.25, total_iters=0),
                                    m.ExponentialLR(o, 0.9)], milestones=[3]),
], ids=["linear", "polynomial", "sequential"])
def test_total_iters_zero_is_taken_as_torch(build):
    """total_iters=0 (no warm-up), which PyTorch takes: its rates, step after step."""
    opt = optim.SGD([Parameter(np.ones(2))], lr=1.0)
    ref = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=1.0)
    ours, theirs = build(lr_scheduler, opt), build(torch_sched, ref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(6):
            assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12)
            opt.step()
            ref.step()
            ours.step()
            theirs.step()


@pytest.mark.parametrize("backend", BACKENDS)
def test_adagrad_state_of_a_parameter_not_yet_stepped_as_torch(backend):
    """PyTorch's Adagrad makes every parameter's state (step 0, sum at
    initial_accumulator_value) in its constructor: fastnn's state dict holds it too, so
    torch loads it (its step needs the sum) and both continue alike; a state dict
    without it (fastnn's earlier ones) resumes a parameter not yet stepped from
    initial_accumulator_value, not from zeros."""
    kwargs = dict(lr=0.1, lr_decay=0.1, initial_accumulator_value=0.5)
    with fastnn.use_backend(backend):
        ours = [Parameter(np.ones(2)), Parameter(np.arange(3.0))]
        theirs = [torch.nn.Parameter(torch.tensor(p.data)) for p in ours]
        opt, ref = optim.Adagrad(ours, **kwargs), torch.optim.Adagrad(theirs, **kwargs)
        ours[0].grad = np.full(2, 0.5)
        theirs[0].grad = torch.tensor(ours[0].grad)
        opt.step()
        ref.step()
        saved, want = opt.state_dict(), ref.state_dict()
        assert list(saved["state"]) == list(want["state"]) == [0, 1]
        for index, entry in want["state"].items():
            assert saved["state"][index]["step"] == entry["step"].item()
            np.testing.assert_array_equal(saved["state"][index]["sum"], entry["sum"].numpy())
        ref = torch.optim.Adagrad(theirs, **kwargs)
        ref.load_state_dict({"param_groups": saved["param_groups"], "state": {
            i: {k: torch.as_tensor(np.asarray(v, np.float64)) for k, v in e.items()}
            for i, e in saved["state"].items()}})
        older = {"param_groups": saved["param_groups"],
                 "state": {0: saved["state"][0]}}
        opt = optim.Adagrad(ours, **kwargs)
        opt.load_state_dict(older)
        for p, q in zip(ours, theirs):
            p.grad = np.full(p.data.shape, 0.25)
            q.grad = torch.tensor(p.grad)
        opt.step()
        ref.step()
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-12)


def _step_alike(opt, ref, ours, theirs, steps=9):
    """Step both optimizers and both schedulers, their learning rates equal each step."""
    for _ in range(steps):
        opt.step()
        ref.step()
        ours.step()
        theirs.step()
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12)


@pytest.mark.parametrize("inside", [False, True], ids=["alone", "in_sequential"])
def test_multisteplr_loads_torchs_state_dict(inside):
    """PyTorch's MultiStepLR keeps its milestones as a Counter (a milestone given twice
    decays twice): its state dict, which holds no tensors, loads into fastnn's (alone or
    inside SequentialLR) and the rates go on as torch's resumed from it."""
    def build(m, o):
        multi = m.MultiStepLR(o, milestones=[6, 3, 3, 8], gamma=0.5)
        return m.SequentialLR(o, [m.ConstantLR(o, 0.5, total_iters=1), multi],
                              milestones=[1]) if inside else multi

    ref = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=1.0)
    theirs = build(torch_sched, ref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2):
            ref.step()
            theirs.step()
        saved, groups = theirs.state_dict(), ref.state_dict()["param_groups"]
        opt = optim.SGD([Parameter(np.ones(2))], lr=1.0)
        ref = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=1.0)
        opt.load_state_dict({"state": {}, "param_groups": groups})
        ref.load_state_dict({"state": {}, "param_groups": groups})
        ours, theirs = build(lr_scheduler, opt), build(torch_sched, ref)
        ours.load_state_dict(saved)
        theirs.load_state_dict(saved)
        _step_alike(opt, ref, ours, theirs)



@pytest.mark.parametrize("inside", [False, True], ids=["alone", "in_sequential"])
def test_torchs_multisteplr_loads_fastnns_state_dict(inside):
    """fastnn's MultiStepLR state dict holds the milestones as PyTorch's does (a
    Counter), so torch's MultiStepLR (alone or inside SequentialLR) loads it and goes on
    as fastnn's; the sorted list it held made torch's next step raise IndexError (it
    reads milestones[epoch]) or decay by the wrong power."""
    def build(m, o):
        multi = m.MultiStepLR(o, milestones=[6, 3, 3, 8], gamma=0.5)
        return m.SequentialLR(o, [m.ConstantLR(o, 0.5, total_iters=1), multi],
                              milestones=[1]) if inside else multi

    opt = optim.SGD([Parameter(np.ones(2))], lr=1.0)
    ours = build(lr_scheduler, opt)
    for _ in range(2):
        opt.step()
        ours.step()
    saved, groups = ours.state_dict(), opt.state_dict()["param_groups"]
    ref = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = build(torch_sched, ref)  # (built, then both states loaded: a resume)
        ref.load_state_dict({"state": {}, "param_groups": groups})
        theirs.load_state_dict(saved)
        _step_alike(opt, ref, ours, theirs)

BAD_HYPER = [("SGD", dict(lr=-1.0)), ("SGD", dict(momentum=-0.1)),
             ("SGD", dict(weight_decay=-0.1)), ("SGD", dict(nesterov=True)),
             ("Adam", dict(eps=-1.0)), ("Adam", dict(betas=(1.0, 0.9))),
             ("AdamW", dict(betas=(0.9, 1.5))), ("NAdam", dict(momentum_decay=-1.0)),
             ("RAdam", dict(betas=(-0.1, 0.9))), ("Adamax", dict(weight_decay=-1.0)),
             ("Adagrad", dict(lr_decay=-1.0)), ("Adagrad", dict(initial_accumulator_value=-1)),
             ("Adadelta", dict(rho=1.5)), ("RMSprop", dict(alpha=-1.0)),
             ("RMSprop", dict(momentum=-1.0)), ("Rprop", dict(etas=(1.2, 0.5))),
             ("ASGD", dict(lr=-1.0)), ("LBFGS", dict(lr=-1.0))]


@pytest.mark.parametrize("name, kwargs", BAD_HYPER,
                         ids=[f"{n}-{next(iter(k))}" for n, k in BAD_HYPER])
def test_bad_hyper_parameter_messages_quote_torchs(name, kwargs):
    """A bad hyper-parameter's ValueError holds PyTorch's message ("Invalid learning
    rate: -1.0", "Invalid beta parameter at index 0: 1.0", ...) beside fastnn's
    (the optimizer, the argument, what it expected)."""
    with pytest.raises(ValueError) as theirs:
        getattr(torch.optim, name)([torch.nn.Parameter(torch.ones(2))], **kwargs)
    with pytest.raises(ValueError, match=re.escape(str(theirs.value))) as ours:
        getattr(optim, name)([Parameter(np.ones(2))], **kwargs)
    assert str(ours.value).startswith(f"{name}: invalid ")


BAD_SCHEDULES = [
    ("LinearLR", dict(start_factor=0.0)), ("LinearLR", dict(end_factor=1.5)),
    ("ConstantLR", dict(factor=1.5)), ("CosineAnnealingWarmRestarts", dict(T_0=0)),
    ("CosineAnnealingWarmRestarts", dict(T_0=2, T_mult=0)),
    ("CosineAnnealingWarmRestarts", dict(T_0=2, eta_min="0.1")),
    ("CosineAnnealingWarmRestarts", dict(T_0=2, eta_min=None)),
    ("OneCycleLR", dict(max_lr=0.1)), ("OneCycleLR", dict(max_lr=0.1, total_steps=0)),
    ("OneCycleLR", dict(max_lr=0.1, epochs=0, steps_per_epoch=2)),
    ("OneCycleLR", dict(max_lr=0.1, total_steps=10, pct_start=1.5)),
    ("OneCycleLR", dict(max_lr=0.1, total_steps=10, anneal_strategy="foo")),
    ("OneCycleLR", dict(max_lr=[0.1, 0.2], total_steps=10)),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, mode="foo")),
    ("CyclicLR", dict(base_lr=[0.01, 0.02], max_lr=0.1)),
    ("ReduceLROnPlateau", dict(mode="foo")), ("ReduceLROnPlateau", dict(factor=1.0)),
    ("ReduceLROnPlateau", dict(threshold_mode="foo")),
    ("ReduceLROnPlateau", dict(min_lr=[0.1, 0.2])),
    ("LambdaLR", dict(lr_lambda=[abs, abs])), ("MultiplicativeLR", dict(lr_lambda=[abs, abs])),
]


@pytest.mark.parametrize("name, kwargs", BAD_SCHEDULES,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(BAD_SCHEDULES)])
def test_bad_schedule_messages_quote_torchs(name, kwargs):
    """A scheduler's ValueError for a bad argument holds PyTorch's message beside
    fastnn's (which names the scheduler and what it expected)."""
    with pytest.raises(ValueError) as theirs:
        getattr(torch_sched, name)(torch.optim.SGD([torch.nn.Parameter(torch.ones(2))],
                                                   lr=0.1, momentum=0.9), **kwargs)
    with pytest.raises(ValueError, match=re.escape(str(theirs.value))) as ours:
        getattr(lr_scheduler, name)(optim.SGD([Parameter(np.ones(2))], lr=0.1,
                                              momentum=0.9), **kwargs)
    assert str(ours.value).startswith(f"{name}: ")


def _overstep(sched, opt):
    s = sched.OneCycleLR(opt, max_lr=0.1, total_steps=2)
    for _ in range(3):
        s.step()


BAD_COMPOSITES = {
    "one-cycle-overstep": ("OneCycleLR", _overstep),
    "sequential-milestones": ("SequentialLR", lambda sched, opt: sched.SequentialLR(
        opt, [sched.StepLR(opt, 2), sched.StepLR(opt, 3)], milestones=[1, 2])),
    "sequential-empty": ("SequentialLR",
                         lambda sched, opt: sched.SequentialLR(opt, [], milestones=[])),
    "sequential-plateau": ("SequentialLR", lambda sched, opt: sched.SequentialLR(
        opt, [sched.StepLR(opt, 2), sched.ReduceLROnPlateau(opt)], milestones=[1])),
    "chained-empty": ("ChainedScheduler", lambda sched, opt: sched.ChainedScheduler([])),
    "chained-plateau": ("ChainedScheduler", lambda sched, opt: sched.ChainedScheduler(
        [sched.StepLR(opt, 2), sched.ReduceLROnPlateau(opt)])),
}


@pytest.mark.parametrize("case", list(BAD_COMPOSITES))
def test_bad_composite_and_overstep_messages_quote_torchs(case):
    """SequentialLR's and ChainedScheduler's ValueErrors for a bad list of schedulers,
    and OneCycleLR's for a step past total_steps, hold PyTorch's message beside
    fastnn's."""
    name, build = BAD_COMPOSITES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # (the step-order warning of the overstep)
        with pytest.raises(ValueError) as theirs:
            build(torch_sched, torch.optim.SGD([torch.nn.Parameter(torch.ones(2))],
                                               lr=0.1, momentum=0.9))
        with pytest.raises(ValueError, match=re.escape(str(theirs.value))) as ours:
            build(lr_scheduler, optim.SGD([Parameter(np.ones(2))], lr=0.1, momentum=0.9))
    assert str(ours.value).startswith(f"{name}: ")


@pytest.mark.parametrize("name", ["Adamax", "Adagrad", "Adadelta", "RMSprop", "ASGD"])
def test_positional_parameters_in_torchs_order(name):
    """The optimizers whose PyTorch signature takes foreach (RMSprop and ASGD also
    maximize) positionally take them there too, with PyTorch's names and defaults, and
    a positional maximize=True maximizes."""
    def positional(cls):
        return [(p.name, p.default) for p in inspect.signature(cls).parameters.values()
                if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional(getattr(optim, name)) == positional(getattr(torch.optim, name))
    if name in ("RMSprop", "ASGD"):
        names = [n for n, _ in positional(getattr(optim, name))][1:]
        args = [dict(positional(getattr(optim, name)))[n] for n in names]
        args[names.index("maximize")] = True
        p, q = Parameter(np.arange(3.0)), torch.nn.Parameter(torch.arange(3.0,
                                                                          dtype=torch.float64))
        opt, ref = getattr(optim, name)([p], *args), getattr(torch.optim, name)([q], *args)
        assert opt.param_groups[0]["maximize"] is True
        p.grad = np.ones(3)
        q.grad = torch.ones(3, dtype=torch.float64)
        opt.step()
        ref.step()
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-12)


def _torch_error(name, kwargs, closure=False):
    """The exception torch.optim's optimizer raises for kwargs, at construction or at its
    first step (None when neither raises)."""
    p = torch.nn.Parameter(torch.ones(2, 3))
    try:
        opt = getattr(torch.optim, name)([p], **kwargs)
        p.grad = torch.ones(2, 3)
        opt.step((lambda: (p * p).sum()) if closure else None)
    except Exception as exc:  # noqa: BLE001 (whatever torch raises is the reference)
        return exc
    return None


# (optimizer, keywords): PyTorch refuses each, with the exception type fastnn's
# ValueError must also be (a pair of the wrong shape: TypeError for a number, IndexError
# for one item where PyTorch indexes it; fused with foreach, differentiable and an
# unknown line search: RuntimeError; an lr tensor of two elements: ValueError)
TORCH_TYPED = [("Adam", dict(betas=0.9)), ("Adam", dict(betas=(0.9,))),
               ("NAdam", dict(betas=(0.9,))), ("Adamax", dict(betas=0.5)),
               ("Rprop", dict(etas=(0.5,))), ("Rprop", dict(etas=1.2)),
               ("Rprop", dict(step_sizes=1.0)), ("Adafactor", dict(eps=(None,))),
               ("Adafactor", dict(eps=1e-3)),
               ("SGD", dict(fused=True, foreach=True)), ("Adam", dict(fused=True, foreach=True)),
               ("AdamW", dict(fused=True, foreach=True)),
               ("Adagrad", dict(fused=True, foreach=True)),
               ("RMSprop", dict(differentiable=True)), ("Adam", dict(differentiable=True)),
               ("LBFGS", dict(line_search_fn="wolfe")),
               ("SGD", dict(lr=[0.1, 0.2])), ("Adam", dict(lr=[0.1, 0.2])),
               ("Muon", dict(lr=[0.1, 0.2]))]


@pytest.mark.parametrize("name, kwargs", TORCH_TYPED,
                         ids=[f"{n}-{'-'.join(k)}" for n, k in TORCH_TYPED])
def test_bad_arguments_raise_torchs_exception_type_too(name, kwargs):
    """A bad argument is fastnn's ValueError and also the type PyTorch raises for it
    (they were a ValueError alone, or accepted: fused with foreach)."""
    theirs = _torch_error(name, {k: (torch.tensor(v) if k == "lr" else v)
                                 for k, v in kwargs.items()}, closure=name == "LBFGS")
    assert theirs is not None
    ours = {k: (np.array(v) if k == "lr" else v) for k, v in kwargs.items()}
    with pytest.raises(ValueError) as caught:
        getattr(optim, name)([Parameter(np.ones((2, 3), np.float32))], **ours)
    assert isinstance(caught.value, type(theirs)), (caught.value, theirs)


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "Rprop", "Adafactor", "LBFGS"])
def test_lr_of_one_element_of_any_shape_as_torch(name):
    """lr as a one-element array of shape (1,) (PyTorch takes a tensor lr of one
    element, any shape) steps as the number; it was a TypeError."""
    p = Parameter(np.arange(6.0).reshape(2, 3))
    q = torch.nn.Parameter(torch.arange(6.0, dtype=torch.float64).reshape(2, 3))
    opt = getattr(optim, name)([p], lr=np.array([0.25]))
    ref = getattr(torch.optim, name)([q], lr=torch.tensor([0.25], dtype=torch.float64))
    assert opt.param_groups[0]["lr"] == 0.25
    for _ in range(3):
        p.grad = p.data * 0.5 - 1
        q.grad = torch.tensor(p.grad)
        if name == "LBFGS":
            def ours():
                p.grad = p.data * 0.5 - 1
                return float((p.data ** 2).sum())

            def theirs():
                q.grad = q.detach() * 0.5 - 1
                return (q.detach() ** 2).sum()
            opt.step(ours)
            ref.step(theirs)
        else:
            opt.step()
            ref.step()
    np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-12, atol=1e-12)


def _one_cycle_pair(**kwargs):
    p, q = Parameter(np.ones(2)), torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    ref = torch.optim.SGD([q], lr=0.1, momentum=0.9)
    return (opt, lr_scheduler.OneCycleLR(opt, **kwargs),
            ref, torch_sched.OneCycleLR(ref, **kwargs))


def test_one_cycle_state_dicts_load_across_libraries():
    """OneCycleLR keeps its phases and strategy under PyTorch's names and layout
    (_schedule_phases, _anneal_func_type), so torch's state dict loaded into fastnn's
    scheduler (and fastnn's into torch's) restores them: a scheduler built with another
    strategy, length or phase count continues as the saved one. They were fastnn's own
    '_phases' and 'anneal_strategy', which torch's state dict lacks: fastnn went on with
    the phases it was built with."""
    saved = dict(max_lr=0.5, total_steps=40, anneal_strategy="linear", three_phase=True)
    other = dict(max_lr=0.5, total_steps=90, anneal_strategy="cos")
    opt, ours, ref, theirs = _one_cycle_pair(**saved)
    for _ in range(7):
        opt.step()
        ours.step()
        ref.step()
        theirs.step()
    assert set(theirs.state_dict()) - {"_is_initial", "_get_lr_called_within_step"} \
        <= set(ours.state_dict())
    opt2, ours2, ref2, theirs2 = _one_cycle_pair(**other)
    ours2.load_state_dict(theirs.state_dict())     # torch's into fastnn
    theirs2.load_state_dict(ours.state_dict())     # fastnn's into torch
    opt2.load_state_dict(opt.state_dict())
    ref2.load_state_dict(ref.state_dict())
    for _ in range(30):
        for o in (opt2, ref2):
            o.step()
        ours2.step()
        theirs2.step()
        got = (opt2.param_groups[0]["lr"], opt2.param_groups[0]["momentum"])
        want = (ref2.param_groups[0]["lr"], ref2.param_groups[0]["momentum"])
        np.testing.assert_allclose(got, want, rtol=1e-12)
        np.testing.assert_allclose(ours2.get_last_lr(), theirs2.get_last_lr(), rtol=1e-12)


def test_one_cycle_loads_fastnns_older_state_dict():
    """A state dict saved before the rename (phases as tuples under '_phases', the
    strategy under 'anneal_strategy') still loads and continues."""
    opt, ours, ref, theirs = _one_cycle_pair(max_lr=0.5, total_steps=30,
                                             anneal_strategy="linear")
    for _ in range(5):
        opt.step()
        ours.step()
        ref.step()
        theirs.step()
    old = ours.state_dict()
    old["_phases"] = tuple(tuple(phase.values()) for phase in old.pop("_schedule_phases"))
    old["anneal_strategy"] = old.pop("_anneal_func_type")
    opt2, ours2, _, _ = _one_cycle_pair(max_lr=0.5, total_steps=60)
    opt2.load_state_dict(opt.state_dict())
    ours2.load_state_dict(old)
    for _ in range(20):
        opt2.step()
        ours2.step()
        ref.step()
        theirs.step()
        assert opt2.param_groups[0]["lr"] == pytest.approx(ref.param_groups[0]["lr"],
                                                            rel=1e-12)


@pytest.mark.parametrize("start_factor, total_iters", [(1 / 3, 7), (0.1, 35), (0.7, 4)])
def test_linear_lr_to_zero_trains_to_the_end(start_factor, total_iters):
    """LinearLR(end_factor=0), a decay to zero: PyTorch's recursive rule rounds the last
    factor to about -1e-16 for a third of such schedules, so the rate became -4e-18 and
    the next optimizer.step() raised 'invalid lr' (fastnn checks the groups' rates at each
    step; PyTorch's optimizer steps with it). The rate is 0 there (and PyTorch's where
    that is positive), and the schedule before it PyTorch's."""
    p, q = Parameter(np.ones(3)), torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt, ref = optim.SGD([p], lr=0.1, momentum=0.9), torch.optim.SGD([q], lr=0.1,
                                                                       momentum=0.9)
    ours = lr_scheduler.LinearLR(opt, start_factor, 0.0, total_iters)
    theirs = torch_sched.LinearLR(ref, start_factor, 0.0, total_iters)
    for _ in range(total_iters + 3):
        p.grad = np.full(3, 0.5)
        q.grad = torch.full((3,), 0.5, dtype=torch.float64)
        opt.step()
        ref.step()
        ours.step()
        theirs.step()
        np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12,
                                   atol=1e-15)
    assert 0.0 <= opt.param_groups[0]["lr"] < 1e-15  # (0, or PyTorch's +1e-17 where it is)
    np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-12)
