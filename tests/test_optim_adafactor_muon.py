"""Adafactor and Muon against torch.optim.Adafactor / torch.optim.Muon: trajectories in
float32 and float64 (weight decay, maximize, param groups, skipped gradients, 0-D to
3-D parameters for Adafactor), learning-rate schedulers acting on them, state dicts in
PyTorch's layout (round trips through fastnn, torch and fastnn.save), and errors.

Each framework gets the same gradients each step (random arrays, not a function of the
parameters), so the trajectories are compared after several steps. Muon's Newton-Schulz
iteration runs in bfloat16 in PyTorch and in an emulation here that matches it but for
the order of float32 sums (see fastnn/optim/muon.py): its parameters are compared to a
tolerance of a bfloat16 ulp of the step, its momentum buffers tightly.
"""
import copy
import inspect
import os

import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn
from fastnn.nn import Parameter
from fastnn.optim import lr_scheduler
from fastnn.optim.adafactor import Adafactor
from fastnn.optim.host import Workspace
from fastnn.optim.muon import Muon, zeropower_via_newtonschulz

from conftest import assert_close, tolerance
from simulator_runs import in_background

torch.set_num_threads(2)

ADAFACTOR_SHAPES = [(3, 4), (5,), (), (2, 3, 4), (1, 1)]
MUON_SHAPES = [(3, 4), (5, 3), (4, 4)]


def make_pair(shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    values = [np.asarray(rng.standard_normal(s), dtype=dtype) for s in shapes]
    return ([Parameter(v.copy()) for v in values],
            [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in values])


def set_grads(ours, theirs, rng, skip=()):
    """The same random gradient for both twins; index in skip: no gradient (None)."""
    for i, (p, q) in enumerate(zip(ours, theirs)):
        if i in skip:
            p.grad, q.grad = None, None
            continue
        g = np.asarray(rng.standard_normal(p.data.shape), dtype=p.data.dtype)
        if p.grad is None:
            p.grad = g.copy()
        else:
            p.grad[...] = g
        q.grad = torch.from_numpy(g)


def groups_of(params, split, extra):
    return [{"params": params[:split]}, {"params": params[split:], **extra}]


def as_numpy_state(sd):
    """torch's state dict with tensors as arrays, steps as ints."""
    return {"state": {i: {k: (int(v.item()) if k == "step" else v.numpy().copy())
                          for k, v in e.items()} for i, e in sd["state"].items()},
            "param_groups": copy.deepcopy(sd["param_groups"])}


def as_torch_state(sd):
    """fastnn's state dict with arrays as tensors, steps as float tensors (torch's)."""
    return {"state": {i: {k: (torch.tensor(float(v)) if k == "step"
                              else torch.from_numpy(v.copy())) for k, v in e.items()}
                      for i, e in sd["state"].items()},
            "param_groups": copy.deepcopy(sd["param_groups"])}


def assert_state_like_torch(opt, ref, dtype, buffers_rtol=None):
    """Same param groups and, per parameter, the same state names (in order), steps,
    shapes, dtypes and values."""
    ours, theirs = opt.state_dict(), ref.state_dict()
    assert ours["param_groups"] == theirs["param_groups"]
    assert ours["state"].keys() == theirs["state"].keys()
    for index, entry in theirs["state"].items():
        assert list(ours["state"][index]) == list(entry)
        for name, value in entry.items():
            got = ours["state"][index][name]
            if name == "step":
                assert got == int(value.item())
            else:
                assert got.shape == tuple(value.shape) and got.dtype == dtype
                assert_close(got, value.numpy(), dtype, err_msg=f"{index} {name}")


def assert_params_close(ours, theirs, dtype, atol=0.0):
    rtol, tol = tolerance(dtype)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=rtol, atol=tol + atol)


# ------------------------------------------------------------------ Adafactor
ADAFACTOR_CASES = {
    "default": dict(),
    "wd_maximize": dict(lr=0.05, weight_decay=0.1, maximize=True),
    "eps_d_beta2": dict(lr=0.3, beta2_decay=-0.5, eps=(1e-3, 1e-2), d=1.5, foreach=True),
}


@pytest.mark.parametrize("case", list(ADAFACTOR_CASES))
def test_adafactor_matches_torch(dtype, case):
    """Six steps over 2-D, 1-D, 0-D, 3-D and (1, 1) parameters in two groups (the
    second with its own lr), parameter 1 without a gradient at step 2 and parameter 4
    at the first three: parameters and state (step, row_var/col_var or variance)."""
    kwargs = ADAFACTOR_CASES[case]
    ours, theirs = make_pair(ADAFACTOR_SHAPES, dtype)
    opt = Adafactor(groups_of(ours, 3, {"lr": 0.02}), **kwargs)
    ref = torch.optim.Adafactor(groups_of(theirs, 3, {"lr": 0.02}), **kwargs)
    rng = np.random.default_rng(1)
    for step in range(6):
        set_grads(ours, theirs, rng, skip=({1} if step == 2 else set()) | (
            {4} if step < 3 else set()))
        opt.step()
        ref.step()
    assert_params_close(ours, theirs, dtype)
    assert_state_like_torch(opt, ref, dtype)
    assert opt.state_dict()["state"][4]["step"] == 3


def test_adafactor_eps1_none_follows_the_groups_first_dtype():
    """eps1=None is the machine epsilon of the group's first parameter with a gradient,
    for all its parameters (torch's loop fills it once): a float64 parameter after a
    float32 one uses float32's. Tiny gradients make eps1 matter."""
    values = [np.full((2, 3), 0.5, np.float32), np.linspace(-1, 1, 4)]
    ours = [Parameter(v.copy()) for v in values]
    theirs = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in values]
    opt, ref = Adafactor(ours, lr=0.1), torch.optim.Adafactor(theirs, lr=0.1)
    for step in range(3):
        for p, q in zip(ours, theirs):
            g = np.full(p.data.shape, 1e-9 * (step + 1), p.data.dtype)
            p.grad[...] = g
            q.grad = torch.from_numpy(g.copy())
        opt.step()
        ref.step()
    assert_close(ours[0].data, theirs[0].detach().numpy(), np.float32)
    assert_close(ours[1].data, theirs[1].detach().numpy(), np.float64)


# ----------------------------------------------------------------------- Muon
MUON_CASES = {
    "default": dict(lr=0.02),
    "plain_momentum_rms": dict(lr=0.05, weight_decay=0.01, nesterov=False, momentum=0.5,
                               adjust_lr_fn="match_rms_adamw"),
    "coefficients": dict(lr=0.03, weight_decay=0.0, momentum=0.9, ns_steps=3,
                         ns_coefficients=(3.0, -3.2, 1.2), eps=1e-3,
                         adjust_lr_fn="original"),
}


def muon_atol(ours, lr, steps):
    """A bfloat16 ulp (2^-8 of elements below 1) of each step's largest scaled lr."""
    ratio = max(max(1.0, (p.data.shape[0] / p.data.shape[1]) ** 0.5,
                    0.2 * max(p.data.shape) ** 0.5) for p in ours)
    return 2.0 ** -8 * lr * ratio * steps


@pytest.mark.parametrize("case", list(MUON_CASES))
def test_muon_matches_torch(dtype, case):
    """Five steps over wide, tall and square matrices in two groups, parameter 1
    without a gradient at step 1: parameters and momentum buffers."""
    kwargs = MUON_CASES[case]
    ours, theirs = make_pair(MUON_SHAPES, dtype, seed=2)
    opt = Muon(groups_of(ours, 2, {"weight_decay": 0.2}), **kwargs)
    ref = torch.optim.Muon(groups_of(theirs, 2, {"weight_decay": 0.2}), **kwargs)
    rng = np.random.default_rng(3)
    for step in range(5):
        set_grads(ours, theirs, rng, skip={1} if step == 1 else ())
        opt.step()
        ref.step()
    assert_params_close(ours, theirs, dtype, atol=muon_atol(ours, kwargs["lr"], 5))
    assert_state_like_torch(opt, ref, dtype)


def test_newton_schulz_is_torchs_bfloat16_iteration():
    """The emulated bfloat16 iteration against torch's, wide, tall and square, float32
    and float64 input: bfloat16 values (exactly representable), within a bfloat16 ulp,
    nearly all elements bit for bit."""
    from torch.optim._muon import _zeropower_via_newtonschulz
    rng = np.random.default_rng(4)
    work = Workspace()
    exact = total = 0
    for shape, dtype, scale in [((3, 5), np.float32, 1.0), ((6, 2), np.float64, 1e-3),
                                ((4, 4), np.float32, 50.0), ((7, 3), np.float64, 1.0)]:
        g = np.asarray(rng.standard_normal(shape) * scale, dtype=dtype)
        want = _zeropower_via_newtonschulz(torch.from_numpy(g), (3.4445, -4.775, 2.0315),
                                           5, 1e-7).float().numpy()
        got = zeropower_via_newtonschulz(g, (3.4445, -4.775, 2.0315), 5, 1e-7, work)
        assert got.shape == shape and got.dtype == np.float32
        assert np.array_equal(got.view(np.uint32) & 0xFFFF, np.zeros(shape, np.uint32))
        np.testing.assert_allclose(got, want, rtol=0, atol=2.0 ** -7)
        exact += np.count_nonzero(got == want)
        total += got.size
    assert exact >= 0.9 * total


def test_muon_only_takes_2d_parameters():
    """torch's error, at construction (nothing re-homed) and in add_param_group."""
    params = [Parameter(np.zeros((3, 4))), Parameter(np.zeros(5))]
    before = [(p.data, p.grad) for p in params]
    with pytest.raises(ValueError, match=r"Muon only supports 2D parameters whereas we "
                                         r"found a parameter with size: \(5,\)"):
        Muon(params)
    assert all(p.data is d and p.grad is g for p, (d, g) in zip(params, before))
    opt = Muon(params[:1])
    with pytest.raises(ValueError, match=r"size: \(2, 2, 2\)"):
        opt.add_param_group({"params": [Parameter(np.zeros((2, 2, 2)))]})
    with pytest.raises(ValueError, match=r"size: \(\)"):
        Muon([Parameter(np.zeros(()))])
    assert len(opt.param_groups) == 1


# ----------------------------------------------------------------- schedulers
def test_schedulers_act_on_them_as_on_torchs():
    """StepLR on Adafactor (the lr caps rho_t and scales the decay), OneCycleLR on Muon
    (lr and momentum cycled): the groups' values and the trajectories match torch's."""
    ours, theirs = make_pair(ADAFACTOR_SHAPES[:3], np.float64)
    opt = Adafactor(ours, lr=0.2, weight_decay=0.1)
    ref = torch.optim.Adafactor(theirs, lr=0.2, weight_decay=0.1)
    sched = lr_scheduler.StepLR(opt, step_size=2, gamma=0.3)
    tsched = torch.optim.lr_scheduler.StepLR(ref, step_size=2, gamma=0.3)
    m_ours, m_theirs = make_pair(MUON_SHAPES[:2], np.float64, seed=5)
    muon = Muon(m_ours)
    tmuon = torch.optim.Muon(m_theirs)
    cycle = lr_scheduler.OneCycleLR(muon, max_lr=0.05, total_steps=8)
    tcycle = torch.optim.lr_scheduler.OneCycleLR(tmuon, max_lr=0.05, total_steps=8)
    rng = np.random.default_rng(6)
    for _ in range(6):
        set_grads(ours, theirs, rng)
        set_grads(m_ours, m_theirs, rng)
        for o in (opt, ref, muon, tmuon):
            o.step()
        for s in (sched, tsched, cycle, tcycle):
            s.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(ref.param_groups[0]["lr"])
        for key in ("lr", "momentum"):
            assert muon.param_groups[0][key] == pytest.approx(tmuon.param_groups[0][key])
    assert_params_close(ours, theirs, np.float64)
    assert_params_close(m_ours, m_theirs, np.float64, atol=muon_atol(m_ours, 0.05, 6))
    assert_state_like_torch(muon, tmuon, np.float64)


# ---------------------------------------------------------------- state dicts
OPTIMIZERS = {
    "Adafactor": (Adafactor, ADAFACTOR_SHAPES, dict(lr=0.05, weight_decay=0.1,
                                                    maximize=True)),
    "Muon": (Muon, MUON_SHAPES, dict(lr=0.02, nesterov=False)),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_state_dicts_round_trip_through_fastnn_torch_and_save(tmp_path, name):
    """After partial steps (parameter 1 joins at step 2), the state dict resumes the
    trajectory bitwise in a new optimizer, in one loaded from fastnn.save's .npz, and in
    torch (ours as tensors); torch's (as arrays) resumes torch's trajectory here."""
    cls, shapes, kwargs = OPTIMIZERS[name]
    tcls = getattr(torch.optim, name)
    ours, theirs = make_pair(shapes, np.float64, seed=7)
    opt, ref = cls(ours, **kwargs), tcls(theirs, **kwargs)
    rng = np.random.default_rng(8)
    for step in range(3):
        set_grads(ours, theirs, rng, skip={1} if step < 2 else ())
        opt.step()
        ref.step()
    saved = opt.state_dict()
    assert saved["param_groups"] == ref.state_dict()["param_groups"]
    if name == "Adafactor":
        assert saved["state"][1]["step"] == 1 and saved["state"][0]["step"] == 3

    twins = [[Parameter(p.data.copy()) for p in ours] for _ in range(3)]
    fresh = cls(twins[0], lr=0.5)
    fresh.load_state_dict(copy.deepcopy(saved))
    assert fresh.param_groups[0]["lr"] == kwargs["lr"]
    model = nn.ParameterList(twins[1])
    restored = cls(twins[1])
    fastnn.save(model, tmp_path / "ckpt.npz", optimizer=opt)
    fastnn.io.load_checkpoint(tmp_path / "ckpt.npz", model=model, optimizer=restored)
    from_torch = cls(twins[2])
    from_torch.load_state_dict(as_numpy_state(ref.state_dict()))
    back = [torch.nn.Parameter(torch.from_numpy(p.data.copy())) for p in ours]
    tback = tcls(back)
    tback.load_state_dict(as_torch_state(saved))

    grads = [[np.asarray(rng.standard_normal(s), dtype=np.float64) for s in shapes]
             for _ in range(3)]
    for step_grads in grads:
        for params in [ours, *twins]:
            for p, g in zip(params, step_grads):
                p.grad[...] = g
        for params in (theirs, back):
            for q, g in zip(params, step_grads):
                q.grad = torch.from_numpy(g.copy())
        for o in (opt, fresh, restored, from_torch, ref, tback):
            o.step()
    for twin in twins[:2]:
        for p, q in zip(ours, twin):
            assert np.array_equal(p.data, q.data)
    atol = muon_atol(ours, kwargs["lr"], 6) if name == "Muon" else 0.0
    assert_params_close(ours, back, np.float64, atol=atol)
    assert_params_close(twins[2], theirs, np.float64, atol=atol)
    assert_state_like_torch(from_torch, ref, np.float64)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_bad_state_dicts_raise_and_change_nothing(name):
    cls, shapes, kwargs = OPTIMIZERS[name]
    ours, _ = make_pair(shapes, np.float64)
    opt = cls(ours, **kwargs)
    rng = np.random.default_rng(9)
    for p in ours:
        p.grad[...] = rng.standard_normal(p.data.shape)
    opt.step()
    before = copy.deepcopy(opt.state_dict())

    def broken(change):
        sd = copy.deepcopy(before)
        change(sd["state"][0])
        return sd

    first = "row_var" if name == "Adafactor" else "momentum_buffer"
    bad = [
        broken(lambda e: e.__setitem__(first, np.zeros((9, 9)))),
        broken(lambda e: e.__setitem__(first, e[first].astype(np.int64))),
        broken(lambda e: e.__setitem__("exp_avg", e[first])),
        broken(lambda e: e.pop(first)) if name == "Adafactor" else
        broken(lambda e: e.__setitem__("step", 1)),
        dict(before, state={7: before["state"][0]}),
        dict(before, param_groups=[dict(before["param_groups"][0], lr=-1.0)]),
    ]
    if name == "Adafactor":
        bad += [broken(lambda e: e.__setitem__("step", -1)),
                broken(lambda e: e.__setitem__("step", 1.5)),
                broken(lambda e: e.__setitem__("variance", np.zeros((3, 4))))]
    for sd in bad:
        with pytest.raises(ValueError, match=rf"{name}"):
            opt.load_state_dict(sd)
        now = opt.state_dict()
        assert now["param_groups"] == before["param_groups"]
        for index, entry in before["state"].items():
            for key, value in entry.items():
                assert np.array_equal(now["state"][index][key], value)


def test_torch_float_step_tensors_load():
    """torch keeps Adafactor's step as a float tensor: a 0-d float array loads."""
    ours, theirs = make_pair(ADAFACTOR_SHAPES[:2], np.float32)
    ref = torch.optim.Adafactor(theirs)
    set_grads(ours, theirs, np.random.default_rng(10))
    ref.step()
    sd = ref.state_dict()
    opt = Adafactor(ours)
    opt.load_state_dict({"state": {i: {k: v.numpy() for k, v in e.items()}
                                   for i, e in sd["state"].items()},
                         "param_groups": sd["param_groups"]})
    assert opt.state_dict()["state"][1]["step"] == 1


# --------------------------------------------------------------------- errors
HYPER_ERRORS = [
    (Adafactor, dict(lr=-1.0), ValueError, r"Learning rate should be >= 0 but is: -1.0"),
    (Adafactor, dict(lr=float("nan")), ValueError, r"invalid lr: nan"),
    (Adafactor, dict(beta2_decay=0.5), ValueError, r"beta2_decay should be <= 0 but is: 0.5"),
    (Adafactor, dict(eps=(-1.0, 1e-3)), ValueError, r"epsilon1 should be >= 0 but is: -1.0"),
    (Adafactor, dict(eps=(None, -1.0)), ValueError, r"epsilon2 should be >= 0 but is: -1.0"),
    (Adafactor, dict(eps=1e-3), ValueError, r"invalid eps"),
    (Adafactor, dict(d=0.5), ValueError, r"Clipping threshold d should be >= 1 but is: 0.5"),
    (Adafactor, dict(weight_decay=-0.1), ValueError, r"weight_decay should be >= 0"),
    (Adafactor, dict(maximize="yes"), TypeError, r"maximize to be a bool"),
    (Adafactor, dict(lr="0.1"), TypeError, r"lr to be a real number"),
    (Adafactor, dict(fused=True), TypeError, r"unexpected keyword argument 'fused'"),
    (Muon, dict(lr=-1.0), ValueError, r"Learning rate should be >= 0 but is: -1.0"),
    (Muon, dict(momentum=-0.1), ValueError, r"momentum should be >= 0 but is: -0.1"),
    (Muon, dict(weight_decay=-1.0), ValueError, r"weight decay should be >= 0 but is"),
    (Muon, dict(adjust_lr_fn="foo"), ValueError,
     r"Adjust learning rate function foo is not supported"),
    (Muon, dict(ns_steps=100), ValueError, r"Number of steps must be less than 100"),
    (Muon, dict(ns_steps=2.0), TypeError, r"ns_steps to be an int"),
    (Muon, dict(ns_coefficients=(1.0, 2.0)), ValueError,
     r"Coefficients must be a tuple of exactly 3 values"),
    (Muon, dict(nesterov="yes"), TypeError, r"nesterov to be a bool"),
    (Muon, dict(foreach=True), TypeError, r"unexpected keyword argument 'foreach'"),
]


def test_hyperparameter_errors_are_torchs_and_change_nothing():
    for cls, kwargs, error, message in HYPER_ERRORS:
        params = [Parameter(np.zeros((3, 4)))]
        before = (params[0].data, params[0].grad)
        with pytest.raises(error, match=message):
            cls(params, **kwargs)
        assert (params[0].data, params[0].grad) == before, (cls, kwargs)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_bad_value_set_between_steps_raises_at_step_and_changes_nothing(name):
    cls, shapes, kwargs = OPTIMIZERS[name]
    ours, _ = make_pair(shapes, np.float32)
    opt = cls(ours, **kwargs)
    for p in ours:
        p.grad[...] = 1.0
    opt.step()
    values, state = [p.data.copy() for p in ours], copy.deepcopy(opt.state_dict())
    opt.param_groups[0]["lr"] = -0.5
    with pytest.raises(ValueError, match="Learning rate should be >= 0"):
        opt.step()
    assert all(np.array_equal(p.data, v) for p, v in zip(ours, values))
    now = opt.state_dict()["state"]
    for index, entry in state["state"].items():
        for key, value in entry.items():
            assert np.array_equal(now[index][key], value)


def test_repr_groups_frozen_parameters_and_reused_scratch():
    """repr and param-group keys are torch's; a frozen parameter is skipped (no state);
    the second step allocates no new scratch."""
    ours, theirs = make_pair([(3, 4), (2, 3)], np.float32)
    for cls in (Adafactor, Muon):
        tcls = getattr(torch.optim, cls.__name__)
        opt, ref = cls(ours), tcls(theirs)
        assert repr(opt) == repr(ref)
        ours[1].requires_grad = False
        for p in ours:
            p.grad[...] = 0.5
        opt.step()
        scratch = {k: id(v) for k, v in opt._work._buffers.items()}
        opt.step()
        assert {k: id(v) for k, v in opt._work._buffers.items()} == scratch
        assert list(opt.state_dict()["state"]) == [0]
        ours[1].requires_grad = True


# ------------------------------------------------------------------------ GPU
HAS_CUDA = "cuda" in fastnn.backends()
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def gpu_parameters_run():
    """Parameters on the GPU: data and gradients go through host scratch, state stays
    on the host, and the trajectory is the host twin's exactly. (Needs no torch: the
    simulator test runs it in a subprocess.)"""
    from fastnn import device as fdevice
    from fastnn.optim.adafactor import Adafactor
    from fastnn.optim.muon import Muon
    for cls, kwargs in ((Adafactor, dict(weight_decay=0.1, maximize=True)),
                        (Muon, dict(lr=0.02))):
        fastnn.manual_seed(0)
        host = nn.Linear(4, 3).double()
        gpu = nn.Linear(4, 3).double()
        gpu.load_state_dict(host.state_dict())
        gpu.to("cuda")
        runs = []
        for model in (host, gpu):
            params = list(model.parameters())[:1 if cls is Muon else 2]
            opt = cls(params, **kwargs)
            for step in range(3):
                for i, p in enumerate(params):
                    g = np.cos(np.arange(p.data.size) * (i + 1.0) + step)
                    fdevice.namespace_of(p.grad).copy_into(p.grad, g.reshape(p.data.shape))
                opt.step()
            runs.append(([fdevice.host_copy(p.data) for p in params], opt.state_dict()))
        for a, b in zip(runs[0][0], runs[1][0]):
            assert np.array_equal(a, b), cls
        for index, entry in runs[0][1]["state"].items():
            for key, value in entry.items():
                assert np.array_equal(runs[1][1]["state"][index][key], value), (cls, key)
        assert all(fdevice.is_device_array(p.data) for p in gpu.parameters())


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA backend here")
def test_gpu_parameters_match_the_host():
    gpu_parameters_run()


# gpu_parameters_run as a script under the simulator, run in the background from the end
# of collection (tests/simulator_runs.py)
GPU_SCRIPT = "\n".join(["import numpy as np", "import fastnn", "from fastnn import nn",
                        inspect.getsource(gpu_parameters_run), "gpu_parameters_run()",
                        "print('gpu runs ok')"])


@pytest.mark.skipif(SIMULATOR, reason="already under the simulator")
@in_background(("-c", GPU_SCRIPT), {"NUMBA_ENABLE_CUDASIM": "1", "FASTNN_CUDA_THREADS": "32",
                                    "FASTNN_CUDA_MAX_BLOCKS": "2"})
def test_gpu_parameters_under_the_cuda_simulator(background_run):
    code, output = background_run.result(timeout=300)
    assert code == 0 and "gpu runs ok" in output, output[-4000:]
