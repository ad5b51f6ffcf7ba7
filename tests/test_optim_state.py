"""Optimizer hyper-parameter checks and state dicts: bad input raises a clear error and
changes nothing; a state dict round trip continues the same trajectory bitwise."""
import copy

import numpy as np
import pytest

from fastnn import optim
from fastnn.nn import Parameter

SHAPES = [(4, 3), (4,), (2, 5)]


def make_params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal(s).astype(dtype)) for s in SHAPES]


def fill_grads(params, step):
    for i, p in enumerate(params):
        p.grad[...] = np.cos(p.data * (i + 1)) + 0.1 * step


def train(opt, params, steps, start=0):
    for step in range(start, start + steps):
        fill_grads(params, step)
        opt.step()


def snapshot(params, opt):
    return [p.data.copy() for p in params], copy.deepcopy(opt.state_dict())


def assert_unchanged(params, opt, snap):
    values, sd = snap
    for p, v in zip(params, values):
        np.testing.assert_array_equal(p.data, v)
    now = opt.state_dict()
    assert [{k: v for k, v in g.items()} for g in now["param_groups"]] == sd["param_groups"]
    assert now["state"].keys() == sd["state"].keys()
    for index, entry in sd["state"].items():
        assert now["state"][index].keys() == entry.keys()
        for key, value in entry.items():
            np.testing.assert_array_equal(now["state"][index][key], value)


# ------------------------------------------------------------ hyper-parameters
BAD = [
    ("SGD", dict(lr=-0.1), "lr", "-0.1"),
    ("SGD", dict(lr=float("nan")), "lr", "nan"),
    ("SGD", dict(lr=float("inf")), "lr", "inf"),
    ("SGD", dict(lr=0.1, momentum=-0.5), "momentum", "-0.5"),
    ("SGD", dict(lr=0.1, weight_decay=-1e-4), "weight_decay", "-0.0001"),
    ("SGD", dict(lr=0.1, nesterov=True), "nesterov", "True"),
    ("Adam", dict(lr=-1e-3), "lr", "-0.001"),
    ("Adam", dict(betas=(1.0, 0.999)), r"betas\[0\]", "1.0"),
    ("Adam", dict(betas=(0.9, -0.1)), r"betas\[1\]", "-0.1"),
    ("Adam", dict(betas=(0.9,)), "betas", r"\(0.9,\)"),
    ("Adam", dict(eps=-1e-8), "eps", "-1e-08"),
    ("Adam", dict(weight_decay=-0.1), "weight_decay", "-0.1"),
]


@pytest.mark.parametrize("name,kwargs,arg,value", BAD,
                         ids=[f"{n}-{a}={v}" for n, _, a, v in BAD])
def test_invalid_hyperparameters_raise_and_change_nothing(name, kwargs, arg, value):
    params = make_params()
    before = [(p.data, p.grad) for p in params]
    with pytest.raises(ValueError, match=rf"{name}: invalid {arg}: {value}"):
        getattr(optim, name)(params, **kwargs)
    # nothing was re-homed into a flat buffer
    assert all(p.data is d and p.grad is g for p, (d, g) in zip(params, before))


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr="0.1")), ("Adam", dict(lr=None)),
                                         ("SGD", dict(lr=0.1, nesterov="yes"))])
def test_non_numeric_hyperparameters_raise_type_error(name, kwargs):
    with pytest.raises(TypeError, match=name):
        getattr(optim, name)(make_params(), **kwargs)


def test_invalid_hyperparameter_set_between_steps_raises_at_step(backend):
    params = make_params()
    opt = optim.SGD([{"params": params[:1]}, {"params": params[1:], "lr": 0.01}],
                    lr=0.1, momentum=0.9)
    train(opt, params, 2)
    snap = snapshot(params, opt)
    opt.param_groups[1]["momentum"] = -0.5  # the second group is bad: the first must not move
    fill_grads(params, 5)
    with pytest.raises(ValueError, match="SGD: invalid momentum: -0.5"):
        opt.step()
    opt.param_groups[1]["momentum"] = 0.9
    assert_unchanged(params, opt, snap)


def test_bad_parameter_lists():
    params = make_params()
    with pytest.raises(ValueError, match="SGD: got an empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD(params + params[:1], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        optim.Adam([{"params": params[:2]}, {"params": params[1:]}])
    with pytest.raises(TypeError, match="expected Parameters"):
        optim.SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(TypeError, match="iterable"):
        optim.SGD(np.zeros(3), lr=0.1)
    # a key that is no hyper-parameter of the optimizer is the group's own data, kept and
    # unused, as in PyTorch (Adam has no momentum)
    assert optim.Adam([{"params": params, "momentum": 0.9}]).param_groups[0]["momentum"] == 0.9
    int_param = make_params()[0]
    int_param.data = np.zeros(3, dtype=np.int64)
    with pytest.raises(TypeError, match="int64"):
        optim.SGD([int_param], lr=0.1)


def test_add_param_group(backend):
    params = make_params()
    opt = optim.SGD(params[:2], lr=0.1)
    opt.add_param_group({"params": params[2:], "lr": 0.5})
    before = params[2].data.copy()
    params[2].grad[...] = 1
    opt.step()
    np.testing.assert_allclose(params[2].data, before - 0.5)
    with pytest.raises(ValueError, match="more than once"):
        opt.add_param_group({"params": params[:1]})


def test_repr_lists_groups():
    text = repr(optim.Adam(make_params(), lr=0.01))
    assert text.startswith("Adam (") and "lr: 0.01" in text and "betas: (0.9, 0.999)" in text


# ------------------------------------------------------------------ state dicts
@pytest.mark.parametrize("name,kwargs", [
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True)),
    ("SGD", dict(lr=0.1)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.95), weight_decay=0.01)),
    ("Adadelta", dict(lr=0.5, rho=0.8, weight_decay=0.01, maximize=True)),
    ("Rprop", dict(lr=0.05, etas=(0.4, 1.3), step_sizes=(1e-3, 0.2))),
    ("ASGD", dict(lr=0.05, lambd=1e-2, t0=1, weight_decay=0.01)),
])
def test_state_dict_round_trip_continues_bitwise(backend, dtype, name, kwargs):
    params = make_params(dtype)
    opt = getattr(optim, name)(params, **kwargs)
    train(opt, params, 3)
    sd = opt.state_dict()
    if name == "SGD":  # torch's layout: a momentum buffer alone, no entry without one
        assert set(sd["state"]) == ({0, 1, 2} if kwargs.get("momentum") else set())
        assert all(list(e) == ["momentum_buffer"] for e in sd["state"].values())
    else:
        assert set(sd["state"]) == {0, 1, 2}
        assert all(e["step"] == 3 for e in sd["state"].values())
    assert sd["type"] == name and sd["param_groups"][0]["params"] == [0, 1, 2]

    # a second optimizer over copies of the parameters, with default hyper-parameters
    clones = [Parameter(p.data.copy()) for p in params]
    other = getattr(optim, name)(clones, lr=0.5)
    other.load_state_dict(copy.deepcopy(sd))
    assert other.param_groups[0]["lr"] == kwargs["lr"]
    train(opt, params, 3, start=3)
    train(other, clones, 3, start=3)
    for p, q in zip(params, clones):
        np.testing.assert_array_equal(p.data, q.data)


def test_state_dict_returns_copies(backend):
    params = make_params()
    opt = optim.Adam(params, lr=0.1)
    train(opt, params, 1)
    sd = opt.state_dict()
    sd["state"][0]["exp_avg"][...] = 123.0
    sd["param_groups"][0]["lr"] = 9.0
    assert not (opt.state_dict()["state"][0]["exp_avg"] == 123.0).any()
    assert opt.param_groups[0]["lr"] == 0.1


def test_state_dict_before_any_step_is_empty():
    sd = optim.SGD(make_params(), lr=0.1, momentum=0.9).state_dict()
    assert sd["state"] == {}


def _adam_state():
    params = make_params()
    opt = optim.Adam(params, lr=0.1)
    train(opt, params, 2)
    return opt.state_dict()


BAD_STATES = {
    "not a dict": lambda sd: [1, 2],
    "wrong type": lambda sd: dict(sd, type="SGD"),
    "group count": lambda sd: dict(sd, param_groups=sd["param_groups"] * 2),
    "group size": lambda sd: dict(sd, param_groups=[dict(sd["param_groups"][0],
                                                         params=[0, 1])]),
    "bad lr": lambda sd: dict(sd, param_groups=[dict(sd["param_groups"][0], lr=-1.0)]),
    "missing eps": lambda sd: dict(sd, param_groups=[{k: v for k, v in
                                                      sd["param_groups"][0].items()
                                                      if k != "eps"}]),
    "index out of range": lambda sd: dict(sd, state={**sd["state"], 7: sd["state"][0]}),
    "wrong shape": lambda sd: dict(sd, state={**sd["state"], 1: dict(
        sd["state"][1], exp_avg=np.zeros((5,)))}),
    "unknown name": lambda sd: dict(sd, state={**sd["state"], 1: dict(
        sd["state"][1], momentum_buffer=np.zeros((4,)))}),
    "missing moment": lambda sd: dict(sd, state={**sd["state"], 2: {
        "step": 2, "exp_avg": sd["state"][2]["exp_avg"]}}),
    "negative step": lambda sd: dict(sd, state={**sd["state"], 0: dict(sd["state"][0],
                                                                        step=-1)}),
}


@pytest.mark.parametrize("case", list(BAD_STATES))
def test_bad_state_dict_raises_and_changes_nothing(backend, case):
    params = make_params(seed=1)
    opt = optim.Adam(params, lr=0.05, weight_decay=0.01)
    train(opt, params, 1)
    snap = snapshot(params, opt)
    with pytest.raises(ValueError, match="Adam.load_state_dict"):
        opt.load_state_dict(BAD_STATES[case](_adam_state()))
    assert_unchanged(params, opt, snap)
    train(opt, params, 1)  # and it still works


@pytest.mark.parametrize("name,kwargs", [
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=1e-3)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.2)),
    ("Adam", dict(lr=0.01, weight_decay=1e-3)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.005, momentum=0.9, centered=True)),
    ("Adagrad", dict(lr=0.05, lr_decay=0.2, initial_accumulator_value=0.1)),
    ("Adadelta", dict(lr=0.5, weight_decay=1e-3, maximize=True)),
    ("Rprop", dict(lr=0.02, etas=(0.4, 1.3))),
])
def test_torch_state_dicts_load_and_resume_the_same_trajectory(backend, name, kwargs):
    """A torch optimizer's state dict (tensors turned into arrays) loads, its flags
    (maximize, foreach, amsgrad, dampening, ...) at the values fastnn implements, and the
    trajectory continues as torch's does."""
    import torch
    from test_optim import fill_grads, make_params
    ours, theirs, offsets = make_params(np.float64)
    ref = getattr(torch.optim, name)(theirs, **kwargs)
    for _ in range(3):
        fill_grads(ours, theirs, offsets)
        ref.step()
    for p, q in zip(ours, theirs):
        p.data[...] = q.detach().numpy()
    saved = ref.state_dict()
    state = {i: {k: (v.numpy() if v.ndim else int(v.item())) for k, v in entry.items()}
             for i, entry in saved["state"].items()}
    opt = getattr(optim, name)(ours, **kwargs)
    opt.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    for _ in range(3):
        fill_grads(ours, theirs, offsets)
        opt.step()
        ref.step()
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_torch_flags_at_other_values_are_clear_errors():
    params = [Parameter(np.zeros(3))]
    optim.SGD(params, lr=0.1, dampening=0, maximize=False, foreach=None)
    optim.Adam(params, amsgrad=True, fused=None, capturable=False)
    with pytest.raises(ValueError, match=r"SGD: invalid dampening: 1.5"):
        optim.SGD(params, lr=0.1, momentum=0.9, dampening=1.5)
    with pytest.raises(ValueError, match=r"zero dampening"):
        optim.SGD(params, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Adam: differentiable=True is not supported"):
        optim.Adam(params, differentiable=True)
    with pytest.raises(TypeError, match="unexpected keyword argument 'decoupled_weight_decay'"):
        optim.AdamW(params, decoupled_weight_decay=False)
    with pytest.raises(TypeError, match="unexpected keyword argument 'betas'"):
        optim.SGD(params, lr=0.1, betas=(0.9, 0.99))
    opt = optim.Adam(params)
    saved = opt.state_dict()
    saved["param_groups"][0]["differentiable"] = True
    with pytest.raises(ValueError, match="parameter group 0: Adam: differentiable=True"):
        opt.load_state_dict(saved)
    for name in ("Adadelta", "Rprop", "ASGD"):  # maximize is theirs: a hyper-parameter
        opt = getattr(optim, name)(params, maximize=True, foreach=None, capturable=False)
        assert opt.param_groups[0]["maximize"] is True
        with pytest.raises(ValueError, match=f"{name}: differentiable=True is not supported"):
            getattr(optim, name)(params, differentiable=True)


def test_asgd_state_dict_needs_its_eta_and_mu():
    """A parameter with steps but no eta (or mu) is a bad state dict, not a NaN start."""
    params = make_params()
    opt = optim.ASGD(params, lr=0.1, t0=1)
    train(opt, params, 2)
    snap = snapshot(params, opt)
    saved = opt.state_dict()
    assert sorted(saved["state"][0]) == ["ax", "eta", "mu", "step"]
    bad = copy.deepcopy(saved)
    del bad["state"][1]["eta"]
    with pytest.raises(ValueError, match=r"ASGD.load_state_dict: parameter 1: missing "
                                         r"state \['eta'\]"):
        opt.load_state_dict(bad)
    bad = copy.deepcopy(saved)
    bad["state"][0]["mu"] = float("nan")
    with pytest.raises(ValueError, match="'mu' must be a finite number"):
        opt.load_state_dict(bad)
    assert_unchanged(params, opt, snap)


@pytest.mark.parametrize("name", ["Adam", "AdamW", "NAdam", "RAdam", "Adamax", "Adagrad",
                                  "Adadelta", "RMSprop", "Rprop", "ASGD", "Adafactor"])
def test_a_state_without_its_step_is_an_error_not_step_one(name):
    """A non-empty parameter state without 'step' (PyTorch's load: KeyError 'step') is
    refused, the optimizer unchanged, not taken as step 1 (bias correction restarted);
    an empty entry (a parameter that never stepped) and SGD's step-less momentum
    buffer still load."""
    params = make_params()
    opt = getattr(optim, name)(params, lr=0.01)
    train(opt, params, 2)
    snap = snapshot(params, opt)
    bad = copy.deepcopy(snap[1])
    del bad["state"][1]["step"]
    with pytest.raises(KeyError, match=f"{name}.load_state_dict: parameter 1: missing "
                                       f"state 'step'") as info:
        opt.load_state_dict(bad)
    assert isinstance(info.value, ValueError)
    assert_unchanged(params, opt, snap)
    bad["state"][1] = {}
    opt.load_state_dict(bad)
    assert opt.state_dict()["state"].get(1, {}).get("step", 0) == 0
    sgd = optim.SGD(params, lr=0.1, momentum=0.9)
    sgd.load_state_dict({"state": {0: {"momentum_buffer": np.ones(SHAPES[0])}, 1: {}},
                         "param_groups": sgd.state_dict()["param_groups"]})
    np.testing.assert_array_equal(sgd.state_dict()["state"][0]["momentum_buffer"], 1.0)


@pytest.mark.parametrize("name", ["Adadelta", "Rprop", "Adam", "SGD"])
def test_a_group_of_empty_parameters_round_trips(name):
    """A group holding only zero-size parameters has no state arrays to save; its state
    dict loads back (nothing to restore)."""
    kwargs = {"SGD": dict(lr=0.1, momentum=0.9)}.get(name, dict(lr=0.1))
    empty, w = Parameter(np.zeros(0)), Parameter(np.ones(2))
    opt = getattr(optim, name)([{"params": [empty]}, {"params": [w]}], **kwargs)
    empty.grad, w.grad = np.zeros(0), np.ones(2)
    opt.step()
    again = getattr(optim, name)([{"params": [empty]}, {"params": [w]}], **kwargs)
    again.load_state_dict(opt.state_dict())
    np.testing.assert_array_equal(again.state_dict()["state"][1][
        next(k for k in again.state_dict()["state"][1] if k != "step")],
        opt.state_dict()["state"][1][next(k for k in opt.state_dict()["state"][1]
                                          if k != "step")])


def test_rprop_maximize_on_a_scalar_parameter_alone():
    """The per-parameter path (another parameter without a gradient) with a 0-d
    parameter, on the reference kernels too."""
    import fastnn
    with fastnn.use_backend("numpy"):
        p, q = Parameter(np.array(1.0, np.float32)), Parameter(np.ones(3, np.float32))
        opt = optim.Rprop([p, q], lr=0.1, maximize=True)
        p.grad, q.grad = np.array(0.5, np.float32), np.ones(3, np.float32)
        opt.step()
        p.grad, q.grad = np.array(0.25, np.float32), None
        opt.step()
        assert p.data == np.float32(1.0 + 0.1 + 0.12)
