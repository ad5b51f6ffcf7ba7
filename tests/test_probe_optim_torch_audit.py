"""fastnn.optim against torch.optim 2.13, cases the other optimizer tests leave out:
Adagrad's state for parameters added by add_param_group (none until their first step,
as torch's lazy one), through state dicts both ways; cycle_momentum on an optimizer
without momentum says what torch's says; OneCycleLR stepped after add_param_group raises
torch's KeyError."""
import copy
import re

import numpy as np
import pytest

from fastnn import optim
from fastnn.nn import Parameter
from fastnn.optim import lr_scheduler

torch = pytest.importorskip("torch")


def _twins(n, seed=0):
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(3 + i) for i in range(n)]
    return ([Parameter(v.copy()) for v in values],
            [torch.nn.Parameter(torch.tensor(v.copy())) for v in values])


def _grads(ours, theirs, which, rng):
    for i in which:
        g = rng.standard_normal(ours[i].data.shape)
        ours[i].grad = g.copy()
        theirs[i].grad = torch.tensor(g)


def _assert_state_like(opt, ref):
    """Same state entries (positions, names, steps, values) as torch's state dict."""
    ours, theirs = opt.state_dict()["state"], ref.state_dict()["state"]
    assert sorted(ours) == sorted(theirs)
    for i, entry in theirs.items():
        assert list(ours[i]) == list(entry)
        assert int(ours[i]["step"]) == int(entry["step"].item())
        np.testing.assert_allclose(ours[i]["sum"], entry["sum"].numpy(), rtol=1e-14)
    assert len(opt.state) == len(ref.state)


def test_adagrad_added_group_has_no_state_until_it_steps_as_torch():
    """torch's Adagrad makes the (step 0, sum) entries of its constructor's parameters
    only; one added by add_param_group gets its entry at its first step (from the
    constructor's initial_accumulator_value, whatever the group says)."""
    ours, theirs = _twins(3)
    kwargs = dict(lr=0.1, initial_accumulator_value=0.5)
    opt, ref = optim.Adagrad(ours[:1], **kwargs), torch.optim.Adagrad(theirs[:1], **kwargs)
    for o, ps in ((opt, ours), (ref, theirs)):
        o.add_param_group({"params": ps[1:], "initial_accumulator_value": 2.0})
    _assert_state_like(opt, ref)                       # {0} alone
    rng = np.random.default_rng(1)
    _grads(ours, theirs, [0, 1], rng)
    opt.step()
    ref.step()
    _assert_state_like(opt, ref)                       # {0, 1}: 2 has not stepped
    saved, tsaved = opt.state_dict(), ref.state_dict()

    # a new optimizer with every parameter from the start (two groups), loading either
    # dict: torch's load replaces the state whole, so 2 has no entry until it steps
    fresh_ours, fresh_theirs = _twins(3, seed=5)
    fresh = optim.Adagrad([{"params": fresh_ours[:1]}, {"params": fresh_ours[1:]}],
                          **kwargs)
    fresh.load_state_dict(copy.deepcopy(saved))
    tfresh = torch.optim.Adagrad([{"params": fresh_theirs[:1]},
                                  {"params": fresh_theirs[1:]}], **kwargs)
    tfresh.load_state_dict(copy.deepcopy(tsaved))
    _assert_state_like(fresh, tfresh)
    _grads(fresh_ours, fresh_theirs, [0, 1, 2], rng)
    fresh.step()
    tfresh.step()
    _assert_state_like(fresh, tfresh)
    for p, q in zip(fresh_ours, fresh_theirs):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-14)

    # the added group's entry-less parameter survives a copy of the optimizer
    clone = copy.deepcopy(opt)
    assert sorted(clone.state_dict()["state"]) == [0, 1]


@pytest.mark.parametrize("name, kwargs", [
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1)),
    ("OneCycleLR", dict(max_lr=0.1, total_steps=10))])
def test_cycle_momentum_without_momentum_quotes_torch(name, kwargs):
    """cycle_momentum=True (the default) on Adagrad, which has neither momentum nor
    betas: torch's ValueError words inside fastnn's message."""
    with pytest.raises(ValueError) as theirs:
        getattr(torch.optim.lr_scheduler, name)(
            torch.optim.Adagrad([torch.nn.Parameter(torch.ones(2))]), **kwargs)
    with pytest.raises(ValueError, match=re.escape(str(theirs.value))):
        getattr(lr_scheduler, name)(optim.Adagrad([Parameter(np.ones(2))]), **kwargs)


def test_one_cycle_after_add_param_group_is_torchs_key_error():
    """A group added after OneCycleLR was built has no 'initial_lr' (nor max_lr, ...):
    torch's step raises KeyError; fastnn's error is a KeyError too (and a ValueError,
    as the other schedulers' for an added group)."""
    opt = optim.SGD([Parameter(np.ones(2))], lr=0.05, momentum=0.9)
    ref = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.05, momentum=0.9)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10)
    tsched = torch.optim.lr_scheduler.OneCycleLR(ref, max_lr=0.1, total_steps=10)
    opt.add_param_group({"params": [Parameter(np.ones(2))], "lr": 0.02})
    ref.add_param_group({"params": [torch.nn.Parameter(torch.ones(2))], "lr": 0.02})
    opt.step()
    ref.step()
    before = [g["lr"] for g in opt.param_groups]
    with pytest.raises(KeyError):
        tsched.step()
    with pytest.raises(KeyError, match="OneCycleLR: the optimizer has 2 param groups") as e:
        sched.step()
    assert isinstance(e.value, ValueError)
    assert [g["lr"] for g in opt.param_groups] == before  # nothing set


def test_adagrad_loads_an_empty_entry_as_torch_does():
    """torch 2.13's Adagrad load reads the first saved entry's 'step': an empty first
    entry is its KeyError: 'step' (fastnn loaded it, restarting the sum), here raised
    before anything changes; an empty entry after the first loads in both, that
    parameter's sum restarting from initial_accumulator_value at its next step."""
    ours, theirs = _twins(2)
    kwargs = dict(lr=0.1, initial_accumulator_value=0.5)
    opt, ref = optim.Adagrad(ours, **kwargs), torch.optim.Adagrad(theirs, **kwargs)
    rng = np.random.default_rng(3)
    _grads(ours, theirs, [0, 1], rng)
    opt.step()
    ref.step()
    saved, tsaved = opt.state_dict(), ref.state_dict()
    first_empty, tfirst_empty = copy.deepcopy(saved), copy.deepcopy(tsaved)
    first_empty["state"][0] = tfirst_empty["state"][0] = {}
    with pytest.raises(KeyError, match="'step'"):
        torch.optim.Adagrad(theirs, **kwargs).load_state_dict(tfirst_empty)
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(KeyError, match="parameter 0: missing state 'step'") as info:
        opt.load_state_dict(first_empty)
    assert isinstance(info.value, ValueError)
    after = opt.state_dict()
    for i in (0, 1):
        np.testing.assert_array_equal(after["state"][i]["sum"], before["state"][i]["sum"])
    later_empty, tlater_empty = copy.deepcopy(saved), copy.deepcopy(tsaved)
    later_empty["state"][1] = tlater_empty["state"][1] = {}
    opt.load_state_dict(later_empty)
    ref.load_state_dict(tlater_empty)
    _grads(ours, theirs, [0, 1], rng)
    opt.step()
    ref.step()
    _assert_state_like(opt, ref)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-14)
