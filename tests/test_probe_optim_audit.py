"""Optimizers and schedulers against torch.optim 2.13, from an audit of 5 Dec: a user's
LRScheduler subclass written for PyTorch (its _get_closed_form_lr() taken by the
deprecated step(epoch) and by SequentialLR's restart at a milestone, its get_lr()
reading _is_initial at the step made when built), and state dicts whose parameter ids
are not 0, 1, ... (PyTorch maps them to the parameters by position)."""
import math
import warnings

import numpy as np
import pytest

from fastnn import optim
from fastnn.nn import Parameter
from fastnn.optim import lr_scheduler

import torch  # noqa: E402 (after fastnn)
from torch.optim import lr_scheduler as torch_sched  # noqa: E402

torch.set_num_threads(2)


def sgd_twins(lr=0.1):
    """A fastnn and a torch SGD, each over two param groups (rates lr and lr / 4)."""
    ours = [Parameter(np.ones(3)), Parameter(np.ones(2))]
    theirs = [torch.nn.Parameter(torch.ones(3, dtype=torch.float64)),
              torch.nn.Parameter(torch.ones(2, dtype=torch.float64))]
    opt = optim.SGD([{"params": ours[:1]}, {"params": ours[1:], "lr": lr / 4}], lr=lr,
                    momentum=0.9)
    ref = torch.optim.SGD([{"params": theirs[:1]}, {"params": theirs[1:], "lr": lr / 4}],
                          lr=lr, momentum=0.9)
    return opt, ref


def rates(opt):
    return [group["lr"] for group in opt.param_groups]


def step_alike(opt, ref, ours, theirs, steps):
    """steps optimizer and scheduler steps on both sides, the rates equal after each."""
    for _ in range(steps):
        opt.step()
        ref.step()
        ours.step()
        theirs.step()
        np.testing.assert_allclose(rates(opt), rates(ref), rtol=1e-14)


def decay_with_closed_form(module):
    """A user's schedule in PyTorch's chainable style: get_lr() from the current rates,
    _get_closed_form_lr() from base_lrs (what PyTorch's step(epoch) takes)."""
    class Decay(module.LRScheduler):
        def get_lr(self):
            if self.last_epoch == 0:
                return [group["lr"] for group in self.optimizer.param_groups]
            return [group["lr"] * 0.9 for group in self.optimizer.param_groups]

        def _get_closed_form_lr(self):
            return [base * 0.9 ** self.last_epoch for base in self.base_lrs]
    return Decay


def warmup_reading_is_initial(module):
    """A user's warm-up written as PyTorch 2.13's LinearLR: the step made when built
    (_is_initial) scales the rate by the start factor, later ones by the ratio."""
    class Warmup(module.LRScheduler):
        def get_lr(self):
            if self._is_initial:
                return [group["lr"] * 0.25 for group in self.optimizer.param_groups]
            if self.last_epoch > 3:
                return [group["lr"] for group in self.optimizer.param_groups]
            factor = (0.25 + 0.25 * self.last_epoch) / (0.25 + 0.25 * (self.last_epoch - 1))
            return [group["lr"] * factor for group in self.optimizer.param_groups]
    return Warmup


def test_user_subclass_step_epoch_takes_its_closed_form_as_torch():
    """PyTorch's step(epoch) uses the scheduler's _get_closed_form_lr() when it has one
    (else get_lr()); fastnn's called get_lr(), one recursive step from the current rate
    (0.1 * 0.9**6 at epoch 9, not 0.1 * 0.9**9)."""
    opt, ref = sgd_twins()
    ours, theirs = decay_with_closed_form(lr_scheduler)(opt), \
        decay_with_closed_form(torch_sched)(ref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the deprecation warning of step(epoch))
        for epoch in (None, None, None, None, None, 9, None, None, 2, None):
            opt.step()
            ref.step()
            ours.step(epoch)
            theirs.step(epoch)
            assert ours.last_epoch == theirs.last_epoch
            np.testing.assert_allclose(rates(opt), rates(ref), rtol=1e-14)
            np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-14)
    np.testing.assert_allclose(rates(opt), [0.1 * 0.9 ** 3, 0.025 * 0.9 ** 3], rtol=1e-14)


def test_sequential_restarts_a_user_subclass_by_its_closed_form_as_torch():
    """SequentialLR starts the next scheduler at a milestone by PyTorch's step(0), its
    closed form: the decay restarts from the initial rates, not from the warm-up's."""
    opt, ref = sgd_twins()

    def build(module, optimizer):
        warm = module.ConstantLR(optimizer, factor=0.5, total_iters=3)
        return module.SequentialLR(optimizer, [warm, decay_with_closed_form(module)(
            optimizer)], milestones=[2])
    ours, theirs = build(lr_scheduler, opt), build(torch_sched, ref)
    step_alike(opt, ref, ours, theirs, 8)
    np.testing.assert_allclose(rates(opt), [0.1 * 0.9 ** 6, 0.025 * 0.9 ** 6], rtol=1e-14)


def test_user_subclass_reads_is_initial_as_torch():
    """PyTorch 2.13's schedulers set _is_initial during the step made when built (its
    own LinearLR reads it); a subclass written that way failed with an AttributeError."""
    opt, ref = sgd_twins()
    ours, theirs = warmup_reading_is_initial(lr_scheduler)(opt), \
        warmup_reading_is_initial(torch_sched)(ref)
    assert ours._is_initial is False and theirs._is_initial is False
    np.testing.assert_allclose(rates(opt), rates(ref), rtol=1e-14)
    step_alike(opt, ref, ours, theirs, 6)
    assert ours._is_initial is False
    np.testing.assert_allclose(rates(opt), [0.1, 0.025], rtol=1e-14)


def test_is_initial_is_false_outside_the_first_step_of_builtin_schedulers():
    """The flag is set only while the scheduler is built (and its state dict, as
    PyTorch's, carries it False)."""
    opt, ref = sgd_twins()
    ours, theirs = lr_scheduler.LinearLR(opt, 0.5), torch_sched.LinearLR(ref, 0.5)
    assert ours.state_dict()["_is_initial"] is False
    assert theirs.state_dict()["_is_initial"] is False
    assert math.isclose(rates(opt)[0], rates(ref)[0], rel_tol=1e-14)


if __name__ == "__main__":
    pytest.main([__file__, "-q"])


# ------------------------------------------- state dicts numbering parameters otherwise
def renumbered(state_dict, ids):
    """A copy of a torch optimizer's state dict whose parameter ids 0, 1, ... are
    ids[0], ids[1], ... (in its groups and its state)."""
    out = {"state": {ids[k]: dict(v) for k, v in state_dict["state"].items()},
           "param_groups": [dict(g, params=[ids[i] for i in g["params"]])
                            for g in state_dict["param_groups"]]}
    return out


@pytest.mark.parametrize("name, kwargs", [("Adam", dict(lr=0.1, amsgrad=True)),
                                          ("SGD", dict(lr=0.1, momentum=0.9)),
                                          ("Adagrad", dict(lr=0.1)),
                                          ("Adafactor", dict(lr=0.1))])
@pytest.mark.parametrize("ids", [[10, 4, 7], [1, 0, 2]], ids=["sparse", "permuted"])
def test_state_dict_ids_name_parameters_by_position_as_torch(name, kwargs, ids):
    """PyTorch's load_state_dict maps the saved groups' parameter ids to the optimizer's
    parameters by position, whatever the ids; fastnn refused any but 0, 1, ... with a
    message that the group 'holds 2 parameters in the state dict but 2'."""
    rng = np.random.default_rng(0)
    values = [rng.standard_normal(shape) for shape in ((2, 3), (4,), (3, 2))]
    ref_params = [torch.nn.Parameter(torch.tensor(v)) for v in values]
    ref = getattr(torch.optim, name)([{"params": ref_params[:2]},
                                      {"params": ref_params[2:]}], **kwargs)
    for _ in range(3):
        for q in ref_params:
            q.grad = torch.tensor(rng.standard_normal(tuple(q.shape)))
        ref.step()
    saved = renumbered(ref.state_dict(), ids)
    ours = [Parameter(q.detach().numpy().copy()) for q in ref_params]
    opt = getattr(optim, name)([{"params": ours[:2]}, {"params": ours[2:]}], **kwargs)
    opt.load_state_dict(saved)
    ref2 = getattr(torch.optim, name)([{"params": ref_params[:2]},
                                       {"params": ref_params[2:]}], **kwargs)
    ref2.load_state_dict(saved)
    got, want = opt.state_dict()["state"], ref2.state_dict()["state"]
    for index in want:
        for key, value in want[index].items():
            np.testing.assert_allclose(np.asarray(got[index][key], dtype=np.float64),
                                       np.asarray(value, dtype=np.float64), rtol=1e-12)
    for _ in range(3):
        for p, q in zip(ours, ref_params):
            p.grad = rng.standard_normal(p.data.shape)
            q.grad = torch.tensor(p.grad)
        opt.step()
        ref2.step()
    for p, q in zip(ours, ref_params):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_state_dict_with_an_id_listed_twice_is_refused_saying_so():
    ours = [Parameter(np.ones(2)) for _ in range(3)]
    opt = optim.Adam([{"params": ours[:2]}, {"params": ours[2:]}])
    saved = {"state": {}, "param_groups": [dict(opt.state_dict()["param_groups"][0],
                                                params=[4, 7]),
                                           dict(opt.state_dict()["param_groups"][1],
                                                params=[7])]}
    with pytest.raises(ValueError, match=r"lists parameter ids \[4, 7\].*distinct ids"):
        opt.load_state_dict(saved)
    assert opt.state_dict()["state"] == {}


def test_lbfgs_loads_a_state_dict_whose_parameter_id_is_not_0():
    ref_params = [torch.nn.Parameter(torch.tensor([1.5, -0.5], dtype=torch.float64))]
    ref = torch.optim.LBFGS(ref_params, max_iter=3)

    def closure():
        ref.zero_grad()
        loss = ((ref_params[0] - 1.0) ** 4).sum()
        loss.backward()
        return loss
    ref.step(closure)
    saved = renumbered(ref.state_dict(), [3])
    opt = optim.LBFGS([Parameter(ref_params[0].detach().numpy().copy())], max_iter=3)
    opt.load_state_dict(saved)
    assert opt.state_dict()["state"][0]["n_iter"] == ref.state_dict()["state"][0]["n_iter"]
