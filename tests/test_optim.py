"""SGD, Adam, AdamW, RMSprop, Adagrad, Adamax, NAdam, RAdam, Adadelta, Rprop and ASGD
trajectories against torch.optim, on every backend in float32 and float64.

Each framework computes the gradient from its own parameters with the same smooth
function, so the two trajectories are compared step by step, not just the first update.
"""
import copy

import numpy as np
import pytest
import torch

import fastnn
from fastnn import ops, optim
from fastnn.nn import Parameter

from conftest import assert_close

try:   # the compiled updates fuse as PyTorch's vectorised add_ where the CPU has FMA
    from numpy._core._multiarray_umath import __cpu_features__ as _CPU
    HAS_FMA = bool(_CPU.get("FMA3"))
except ImportError:
    HAS_FMA = False


def torch_rounding_limit(dtype, reference_ulps):
    """How far a trajectory may end from PyTorch's: 0 for the compiled backends on a CPU
    with FMA (PyTorch's bits), else ``reference_ulps`` units of the dtype's epsilon."""
    if HAS_FMA and fastnn.get_backend() != "numpy":
        return 0.0
    return reference_ulps * float(np.finfo(dtype).eps)

torch.set_num_threads(2)

SHAPES = [(5, 3), (5,), (2, 3, 4), (1,)]
STEPS = 6

SGD_CASES = {
    "plain": dict(lr=0.1),
    "momentum": dict(lr=0.05, momentum=0.9),
    "weight_decay": dict(lr=0.1, weight_decay=0.05),
    "momentum_wd": dict(lr=0.05, momentum=0.8, weight_decay=0.01),
    "nesterov": dict(lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=True),
    "dampening": dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01),
}
ADAM_CASES = {
    "default": dict(),
    "lr": dict(lr=0.05),
    "weight_decay": dict(lr=0.02, weight_decay=0.1),
    "betas_eps": dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01),
    "amsgrad": dict(lr=0.05, amsgrad=True, weight_decay=0.01),
}


def make_params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    offsets = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ours = [Parameter(v) for v in values]
    theirs = [torch.tensor(v.copy(), requires_grad=True) for v in values]
    return ours, theirs, offsets


def fill_grads(ours, theirs, offsets):
    """grad = sin(3 p) + 0.5 p + c, computed by each framework from its own p.

    Written in place as layers do; a parameter whose grad was set to None gets a new array.
    """
    for p, c in zip(ours, offsets):
        g = np.sin(3 * p.data) + p.data.dtype.type(0.5) * p.data + c
        if p.grad is None:
            p.grad = g
        else:
            p.grad[...] = g
    for p, c in zip(theirs, offsets):
        with torch.no_grad():
            p.grad = torch.sin(3 * p) + 0.5 * p + torch.from_numpy(c)


def run_trajectory(name, kwargs, dtype, steps=STEPS, groups=None, with_torch=False):
    """Both optimizers over `steps` steps, the parameters compared after each; returns
    (fastnn parameters, fastnn optimizer), and torch's optimizer third when with_torch."""
    ours, theirs, offsets = make_params(dtype)
    if groups is None:
        opt = getattr(optim, name)(ours, **kwargs)
        ref = getattr(torch.optim, name)(theirs, **kwargs)
    else:
        opt = getattr(optim, name)([dict(g, params=[ours[i] for i in idx])
                                    for idx, g in groups], **kwargs)
        ref = getattr(torch.optim, name)([dict(g, params=[theirs[i] for i in idx])
                                          for idx, g in groups], **kwargs)
    for step in range(steps):
        fill_grads(ours, theirs, offsets)
        opt.step()
        ref.step()
        for i, (p, q) in enumerate(zip(ours, theirs)):
            assert p.data.dtype == dtype
            assert_close(p.data, q.detach().numpy(), dtype,
                         err_msg=f"{name} {kwargs}: parameter {i} after step {step + 1}")
    return (ours, opt, ref) if with_torch else (ours, opt)


@pytest.mark.parametrize("case", list(SGD_CASES))
def test_sgd_matches_torch(backend, dtype, case):
    run_trajectory("SGD", SGD_CASES[case], dtype)


@pytest.mark.parametrize("case", list(ADAM_CASES))
def test_adam_matches_torch(backend, dtype, case):
    run_trajectory("Adam", ADAM_CASES[case], dtype)


ADAMW_CASES = {
    "default": dict(),
    "lr_wd": dict(lr=0.05, weight_decay=0.1),
    "betas_eps": dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.3),
    "no_decay": dict(lr=0.02, weight_decay=0.0),
    "amsgrad": dict(lr=0.05, amsgrad=True),
}


@pytest.mark.parametrize("case", list(ADAMW_CASES))
def test_adamw_matches_torch(backend, dtype, case):
    run_trajectory("AdamW", ADAMW_CASES[case], dtype)


RMSPROP_CASES = {
    "default": dict(),
    "alpha_eps_wd": dict(lr=0.005, alpha=0.9, eps=1e-6, weight_decay=0.05),
    "momentum": dict(lr=0.005, momentum=0.9),
    "centered": dict(lr=0.005, centered=True, weight_decay=0.01),
    "centered_momentum": dict(lr=0.002, alpha=0.95, momentum=0.5, centered=True),
}


@pytest.mark.parametrize("case", list(RMSPROP_CASES))
def test_rmsprop_matches_torch(backend, dtype, case):
    run_trajectory("RMSprop", RMSPROP_CASES[case], dtype)


def test_rmsprop_state_dict_names_and_resume_like_torch(backend):
    """State names as torch's (square_avg, momentum_buffer, grad_avg); a torch state
    dict (tensors as arrays) resumes the same trajectory."""
    kwargs = dict(lr=0.005, momentum=0.9, centered=True)
    ours, theirs, offsets = make_params(np.float64)
    opt = optim.RMSprop(ours, **kwargs)
    ref = torch.optim.RMSprop(theirs, **kwargs)
    for _ in range(3):
        fill_grads(ours, theirs, offsets)
        opt.step()
        ref.step()
    saved = ref.state_dict()
    assert sorted(opt.state_dict()["state"][0]) == sorted(saved["state"][0])
    state = {i: {k: (v.numpy() if torch.is_tensor(v) and v.ndim else int(v))
                 for k, v in entry.items()} for i, entry in saved["state"].items()}
    fresh = optim.RMSprop(ours, **kwargs)
    fresh.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    for _ in range(3):
        fill_grads(ours, theirs, offsets)
        fresh.step()
        ref.step()
    for p, q in zip(ours, theirs):
        assert_close(p.data, q.detach().numpy(), np.float64)
    with pytest.raises(ValueError, match="invalid alpha"):
        optim.RMSprop(ours, alpha=-0.5)
    with pytest.raises(TypeError, match="centered to be a bool"):
        optim.RMSprop(ours, centered="yes")


ADAGRAD_CASES = {
    "default": dict(),
    "lr_decay_wd": dict(lr=0.05, lr_decay=0.1, weight_decay=0.05),
    "initial_eps": dict(lr=0.02, initial_accumulator_value=0.5, eps=1e-6),
}


@pytest.mark.parametrize("case", list(ADAGRAD_CASES))
def test_adagrad_matches_torch(backend, dtype, case):
    run_trajectory("Adagrad", ADAGRAD_CASES[case], dtype)


def test_adagrad_state_names_and_partial_steps_like_torch(backend):
    """State named 'sum' as torch's (a torch state dict resuming the trajectory is in
    test_optim_state.py); a parameter without a gradient for some steps keeps its own
    step count (lr_decay)."""
    kwargs = dict(lr=0.05, lr_decay=0.2, initial_accumulator_value=0.1)
    ours, theirs, offsets = make_params(np.float64)
    opt, ref = optim.Adagrad(ours, **kwargs), torch.optim.Adagrad(theirs, **kwargs)
    for step in range(4):
        fill_grads(ours, theirs, offsets)
        if step == 1:  # parameter 0 sits this step out
            ours[0].grad, theirs[0].grad = None, None
        opt.step()
        ref.step()
    for p, q in zip(ours, theirs):
        assert_close(p.data, q.detach().numpy(), np.float64)
    saved = ref.state_dict()
    assert sorted(opt.state_dict()["state"][1]) == sorted(saved["state"][1]) == ["step", "sum"]
    with pytest.raises(ValueError, match="lr_decay"):
        optim.Adagrad(ours, lr_decay=-1)


@pytest.fixture
def torch_float64_scalars():
    """torch's NAdam keeps mu_product, its ASGD eta and mu in the default dtype, float32,
    as fastnn does: compare against torch at its default dtype (checked here)."""
    assert torch.get_default_dtype() == torch.float32
    yield


ADAM_VARIANT_CASES = {
    "adamax": ("Adamax", dict()),
    "adamax_wd": ("Adamax", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    "nadam": ("NAdam", dict()),
    "nadam_wd": ("NAdam", dict(lr=0.01, weight_decay=0.1, momentum_decay=0.01)),
    "nadam_decoupled": ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    # betas (0.9, 0.9): the rectified steps start at step 6 (rho_t > 5)
    "radam": ("RAdam", dict(lr=0.01, betas=(0.9, 0.9))),
    "radam_wd": ("RAdam", dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)),
    "radam_decoupled": ("RAdam", dict(lr=0.01, betas=(0.9, 0.9), weight_decay=0.1,
                                      decoupled_weight_decay=True)),
}


@pytest.mark.parametrize("case", list(ADAM_VARIANT_CASES))
def test_adam_variants_match_torch(backend, dtype, case, torch_float64_scalars):
    name, kwargs = ADAM_VARIANT_CASES[case]
    run_trajectory(name, kwargs, dtype, steps=10)


def test_nadam_stays_as_close_to_torch_as_adam_over_300_float32_steps(backend,
                                                                       torch_float64_scalars):
    """NAdam's denominator sqrt(v / (1 - b2^t)) + eps and its two divided terms are
    rounded in PyTorch's order (kernels/moments.py): over 300 float32 steps of 4000
    values it stays about as close to torch.optim.NAdam as Adam to torch.optim.Adam
    (at most 4.8e-7 for Adam, 4.8e-7 for NAdam on the compiled backends, 7.2e-7 on
    NumPy's; with
    sq_scale * sqrt(v) and the terms summed first, NAdam drifted to 5e-6)."""
    rng = np.random.default_rng(11)
    start = rng.standard_normal(4000).astype(np.float32)
    grads = rng.standard_normal((300, 4000)).astype(np.float32)
    for name in ("Adam", "NAdam"):
        ours, theirs = Parameter(start.copy()), torch.nn.Parameter(torch.tensor(start))
        opt = getattr(optim, name)([ours], lr=0.01)
        ref = getattr(torch.optim, name)([theirs], lr=0.01)
        for grad in grads:
            ours.grad, theirs.grad = grad.copy(), torch.tensor(grad)
            opt.step()
            ref.step()
        assert np.abs(ours.data - theirs.detach().numpy()).max() <= 1.5e-6, name


@pytest.mark.parametrize("kwargs", [dict(momentum=0.9), dict(momentum=0.9, nesterov=True),
                                    dict(momentum=0.9, dampening=0.3, weight_decay=0.01)])
def test_sgd_momentum_follows_torch_to_the_rounding_over_200_float32_steps(backend, kwargs):
    """The momentum buffer as PyTorch's buf.mul_(momentum).add_(g, alpha=1 - dampening):
    buf * momentum rounded alone, then the fused add; the compiled backends had fused
    buf * momentum into the add instead and left torch.optim.SGD's float32 trajectory
    from the second step (1.9e-6 apart after 500 steps). On a CPU with FMA the compiled
    backends now give PyTorch's bits; the NumPy reference rounds each product alone."""
    rng = np.random.default_rng(12)
    start = rng.standard_normal(5003).astype(np.float32)
    ours, theirs = Parameter(start.copy()), torch.nn.Parameter(torch.tensor(start))
    opt = optim.SGD([ours], lr=0.01, **kwargs)
    ref = torch.optim.SGD([theirs], lr=0.01, **kwargs)
    for _ in range(200):
        grad = rng.standard_normal(5003).astype(np.float32)
        ours.grad, theirs.grad = grad.copy(), torch.tensor(grad)
        opt.step()
        ref.step()
    apart = np.abs(ours.data - theirs.detach().numpy()).max()
    assert apart <= torch_rounding_limit(np.float32, 25)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_asgd_averaging_follows_torch_to_the_rounding(backend, dtype, torch_float64_scalars):
    """ASGD past t0 (its average moving) with weight decay: PyTorch's
    param.mul_(1 - lambd eta).add_(g, alpha=-eta) fused, ax.add_(param.sub(ax).mul_(mu))
    with the product rounded alone. The Cython kernel had left the fusion to gcc (255 of
    1,000 float32 parameters off after one step) and both compiled kernels fused the
    average's product (ax 15,530 of 100,003 off); on a CPU with FMA they now give
    PyTorch's bits."""
    rng = np.random.default_rng(13)
    start = rng.standard_normal(5003).astype(dtype)
    ours, theirs = Parameter(start.copy()), torch.nn.Parameter(torch.tensor(start))
    kwargs = dict(lr=0.01, t0=3, weight_decay=0.1)
    opt, ref = optim.ASGD([ours], **kwargs), torch.optim.ASGD([theirs], **kwargs)
    for _ in range(30):
        grad = rng.standard_normal(5003).astype(dtype)
        ours.grad, theirs.grad = grad.copy(), torch.tensor(grad)
        opt.step()
        ref.step()
    limit = torch_rounding_limit(dtype, 200)
    assert np.abs(ours.data - theirs.detach().numpy()).max() <= limit
    assert np.abs(opt.state[ours]["ax"] - ref.state[theirs]["ax"].numpy()).max() <= limit


def test_rmsprop_and_nadam_kernels_of_the_compiled_backends_round_alike(rng):
    """numba's and Cython's RMSprop give the same bits in every variant (momentum,
    centered, weight decay), each rounding as torch.optim.RMSprop (the momentum buffer's
    buf * momentum alone, then d / avg added; the rest fused as PyTorch's add_, addcmul_
    and lerp_): numba had fused buf * momentum into the add, 24% of the buffer 1 ulp
    apart from Cython's after one step. So do their NAdam/RAdam steps
    (adaptive_moments_update), where numba's reciprocals (arcp) had replaced the
    divisions. (torch's own float32 sqrt is not correctly rounded on every CPU, so the
    two are compared with each other.)"""
    compiled = [name for name in ("numba", "cython") if name in fastnn.backends()]
    if len(compiled) < 2:
        pytest.skip("needs the numba and Cython backends")
    n = 40003   # the parallel path
    for dtype in (np.float32, np.float64):
        arrays = [rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype),
                  rng.random(n).astype(dtype) + 0.5, rng.standard_normal(n).astype(dtype),
                  (0.1 * rng.standard_normal(n)).astype(dtype)]
        for momentum, centered, wd in [(0.9, False, 0.0), (0.0, True, 0.0), (0.5, True, 0.1),
                                       (0.0, False, 0.1)]:
            results = []
            for name in compiled:
                p, g, sq, buf, ga = [a.copy() for a in arrays]
                with fastnn.use_backend(name):
                    for _ in range(3):
                        ops.rmsprop_update(p, g, sq, 1e-2, 0.99, 1e-8, wd, momentum,
                                           buf if momentum else None,
                                           ga if centered else None)
                results.append((p, sq, buf, ga))
            for a, b in zip(*results):
                np.testing.assert_array_equal(a, b, err_msg=f"{dtype} {momentum} {centered}")
        for grad_rate, sq_scale, wd in [(1e-4, 1 / np.sqrt(1 - 0.999 ** 3), 0.0),
                                        (0.0, 1.0, 0.1), (0.0, 0.0, 0.0)]:
            results = []
            for name in compiled:
                p, g, m, v = [a.copy() for a in arrays[:4]]
                with fastnn.use_backend(name):
                    for _ in range(3):
                        ops.adaptive_moments_update(p, g, m, v, 1e-3, grad_rate, 0.9, 0.999,
                                                    sq_scale, 1e-8, wd)
                results.append((p, m, v))
            for a, b in zip(*results):
                np.testing.assert_array_equal(a, b, err_msg=f"{dtype} {grad_rate} {sq_scale}")


def test_radam_default_betas_switch_to_the_rectified_rule(torch_float64_scalars):
    """PyTorch's betas: rho_t passes 5 at step 7; 12 steps cover both rules."""
    run_trajectory("RAdam", dict(lr=0.05), np.float64, steps=12)


def test_nadam_state_dict_resumes_with_its_mu_product(backend, torch_float64_scalars):
    """mu_product is state (a number a parameter, as torch's): a state dict made after
    some steps, loaded into a new optimizer, continues torch's trajectory; a parameter
    that skipped steps keeps its own step count and product, one with no state yet
    starts from a product of 1."""
    kwargs = dict(lr=0.01, momentum_decay=0.05)
    ours, theirs, offsets = make_params(np.float64)
    opt, ref = optim.NAdam(ours, **kwargs), torch.optim.NAdam(theirs, **kwargs)
    for step in range(4):
        fill_grads(ours, theirs, offsets)
        if step == 1:
            ours[2].grad, theirs[2].grad = None, None
        ours[3].grad, theirs[3].grad = None, None   # no state yet when saved
        opt.step()
        ref.step()
    saved = opt.state_dict()
    assert 3 not in saved["state"]
    assert sorted(saved["state"][0]) == sorted(ref.state_dict()["state"][0])
    assert saved["state"][2]["step"] == 3 and saved["state"][0]["step"] == 4
    assert saved["state"][2]["mu_product"] != saved["state"][0]["mu_product"]
    fresh = optim.NAdam(ours, **kwargs)
    fresh.load_state_dict(saved)
    for _ in range(3):
        fill_grads(ours, theirs, offsets)
        fresh.step()
        ref.step()
    for p, q in zip(ours, theirs):
        assert_close(p.data, q.detach().numpy(), np.float64)
    bad = {"state": {0: dict(saved["state"][0], mu_product="x")},
           "param_groups": saved["param_groups"]}
    with pytest.raises(ValueError, match="'mu_product' must be a finite number"):
        fresh.load_state_dict(bad)


@pytest.mark.parametrize("name,kwargs,match", [
    ("NAdam", dict(momentum_decay=-1), "momentum_decay"),
    ("RAdam", dict(decoupled_weight_decay="yes"), "decoupled_weight_decay to be a bool"),
    ("Adamax", dict(betas=(0.9, 1.0)), r"betas\[1\]"),
    ("Adamax", dict(eps=-1e-8), "eps"),
])
def test_adam_variants_refuse_bad_hyperparameters(name, kwargs, match):
    ours, _, _ = make_params(np.float32)
    with pytest.raises((ValueError, TypeError), match=match):
        getattr(optim, name)(ours, **kwargs)


OTHER_CASES = {
    "adadelta": ("Adadelta", dict()),
    "adadelta_options": ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1)),
    "adadelta_maximize": ("Adadelta", dict(lr=0.5, weight_decay=0.05, maximize=True)),
    "rprop": ("Rprop", dict()),
    # from 0.05, both bounds bind: 0.05 * 1.5^2 > 0.1 and 0.05 * 0.3 < 0.02
    "rprop_options": ("Rprop", dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(0.02, 0.1))),
    "rprop_maximize": ("Rprop", dict(lr=0.02, maximize=True)),
    "asgd": ("ASGD", dict()),
    # t0 3: averaging (mu < 1) from step 5; lambd 1e-2: eta decays, p shrinks visibly
    "asgd_options": ("ASGD", dict(lr=0.05, lambd=1e-2, alpha=0.6, t0=3, weight_decay=0.1)),
    "asgd_maximize": ("ASGD", dict(lr=0.02, t0=2.5, maximize=True)),
}


def assert_state_like_torch(opt, ref, dtype):
    """fastnn's state dict holds torch's state: the same parameters, names, step counts,
    arrays (to the dtype's tolerance) and scalar states (eta, mu: the same floats)."""
    ours, theirs = opt.state_dict()["state"], ref.state_dict()["state"]
    assert sorted(ours) == sorted(theirs)
    for index, entry in theirs.items():
        assert sorted(ours[index]) == sorted(entry), index
        for name, value in entry.items():
            got = ours[index][name]
            if name == "step":
                assert got == int(value.item()), (index, name)
            elif value.ndim == 0:  # (0-d arrays, as torch's 0-d tensors)
                assert np.ndim(got) == 0 and float(got) == value.item(), (index, name, got)
            else:
                assert_close(got, value.numpy(), dtype, err_msg=f"{index} {name}")


def torch_state_as_numpy(state_dict):
    """torch's optimizer state dict with its tensors as NumPy arrays, its 0-d ones as
    numbers (steps as ints)."""
    def value(name, v):
        if v.ndim:
            return v.numpy()
        return int(v.item()) if name == "step" else v.item()
    return {"state": {i: {k: value(k, v) for k, v in entry.items()}
                      for i, entry in state_dict["state"].items()},
            "param_groups": state_dict["param_groups"]}


@pytest.mark.parametrize("case", list(OTHER_CASES))
def test_adadelta_rprop_asgd_match_torch(backend, dtype, case, torch_float64_scalars):
    """Ten steps of each option set; the state too (Rprop's step sizes, ASGD's average
    ax, eta and mu)."""
    name, kwargs = OTHER_CASES[case]
    _, opt, ref = run_trajectory(name, kwargs, dtype, steps=10, with_torch=True)
    assert_state_like_torch(opt, ref, dtype)


@pytest.mark.parametrize("name,kwargs", [
    ("Adadelta", dict(lr=0.5, weight_decay=0.01, maximize=True)),
    ("Rprop", dict(lr=0.05, etas=(0.4, 1.3))),
    ("ASGD", dict(lr=0.05, lambd=1e-2, t0=2)),
])
def test_adadelta_rprop_asgd_state_dicts_resume_like_torch(backend, name, kwargs,
                                                           torch_float64_scalars):
    """After partial steps (parameter 2 skips one, parameter 3 has no state yet), the state
    dict is torch's; it and torch's own (tensors as arrays) each resume torch's
    trajectory in a new optimizer, parameter 3 starting its state at its first step."""
    ours, theirs, offsets = make_params(np.float64)
    opt = getattr(optim, name)(ours, **kwargs)
    ref = getattr(torch.optim, name)(theirs, **kwargs)
    for step in range(4):
        fill_grads(ours, theirs, offsets)
        if step == 1:
            ours[2].grad, theirs[2].grad = None, None
        ours[3].grad, theirs[3].grad = None, None
        opt.step()
        ref.step()
    saved = opt.state_dict()
    assert 3 not in saved["state"]
    assert saved["state"][2]["step"] == 3 and saved["state"][0]["step"] == 4
    assert saved["param_groups"][0]["maximize"] == kwargs.get("maximize", False)
    assert_state_like_torch(opt, ref, np.float64)
    clones = [Parameter(p.data.copy()) for p in ours]
    fresh = getattr(optim, name)(ours, lr=0.9)
    fresh.load_state_dict(saved)
    from_torch = getattr(optim, name)(clones)
    from_torch.load_state_dict(torch_state_as_numpy(ref.state_dict()))
    assert from_torch.param_groups[0]["lr"] == kwargs["lr"]
    for _ in range(3):
        fill_grads(ours, theirs, offsets)
        fill_grads(clones, [], offsets)
        fresh.step()
        from_torch.step()
        ref.step()
    for p, c, q in zip(ours, clones, theirs):
        assert_close(p.data, q.detach().numpy(), np.float64)
        assert_close(c.data, q.detach().numpy(), np.float64)
    assert_state_like_torch(fresh, ref, np.float64)


@pytest.mark.parametrize("name", ["Rprop", "ASGD"])
def test_state_starts_at_the_lr_of_each_parameters_first_step(backend, name,
                                                             torch_float64_scalars):
    """Rprop's step sizes and ASGD's eta start at the group's lr when a parameter first
    has a gradient, as torch creates its state then: the lr changes every step here
    (a schedule) and parameter 1 joins at the third."""
    ours, theirs, offsets = make_params(np.float64)
    opt = getattr(optim, name)(ours, lr=0.05)
    ref = getattr(torch.optim, name)(theirs, lr=0.05)
    for step in range(5):
        for group in (opt.param_groups[0], ref.param_groups[0]):
            group["lr"] = 0.05 / (step + 1)
        fill_grads(ours, theirs, offsets)
        if step < 2:
            ours[1].grad, theirs[1].grad = None, None
        opt.step()
        ref.step()
        for p, q in zip(ours, theirs):
            assert_close(p.data, q.detach().numpy(), np.float64)
    assert_state_like_torch(opt, ref, np.float64)


def test_asgd_zero_size_parameter_advances_its_eta_and_mu_like_torch(backend,
                                                                     torch_float64_scalars):
    shapes = [(3,), (0, 4), (2,)]
    ours = [Parameter(np.linspace(-1, 1, int(np.prod(s))).reshape(s)) for s in shapes]
    theirs = [torch.tensor(p.data.copy(), requires_grad=True) for p in ours]
    opt = optim.ASGD(ours, lr=0.1, lambd=0.05, t0=1)
    ref = torch.optim.ASGD(theirs, lr=0.1, lambd=0.05, t0=1)
    for step in range(4):
        for p, q in zip(ours, theirs):
            p.grad = np.cos(p.data)  # a new array: re-homed into the flat buffer
            q.grad = torch.cos(q.detach())
        if step == 2:  # the slow path (one parameter without a gradient) too
            ours[2].grad, theirs[2].grad = None, None
        opt.step()
        ref.step()
    for p, q in zip(ours, theirs):
        assert_close(p.data, q.detach().numpy(), np.float64)
    assert_state_like_torch(opt, ref, np.float64)


def test_rprop_param_groups_with_their_own_etas_and_step_sizes(backend, dtype):
    groups = [((0, 2), {}), ((1, 3), {"lr": 0.003, "etas": (0.4, 1.1),
                                      "step_sizes": (1e-4, 0.01)})]
    _, opt = run_trajectory("Rprop", dict(lr=0.05), dtype, groups=groups)
    assert opt.param_groups[1]["etas"] == (0.4, 1.1)


@pytest.mark.parametrize("name,kwargs,error,match", [
    ("Adadelta", dict(rho=1.5), ValueError, r"Adadelta: invalid rho: 1.5"),
    ("Adadelta", dict(lr=-1.0), ValueError, "Adadelta: invalid lr"),
    ("Adadelta", dict(eps=-1e-6), ValueError, "Adadelta: invalid eps"),
    ("Adadelta", dict(maximize="yes"), TypeError, "maximize to be a bool"),
    ("Adadelta", dict(differentiable=True), ValueError, "differentiable=True is not supported"),
    ("Rprop", dict(etas=(1.2, 0.5)), ValueError, r"Rprop: invalid etas: \(1.2, 0.5\)"),
    ("Rprop", dict(etas=(0.5,)), ValueError, "Rprop: invalid etas"),
    ("Rprop", dict(step_sizes=(1e-6, float("inf"))), ValueError, "invalid step_sizes"),
    ("Rprop", dict(step_sizes=("a", 1.0)), TypeError, r"step_sizes\[0\]"),
    ("Rprop", dict(weight_decay=0.1), TypeError, "unexpected keyword argument 'weight_decay'"),
    ("ASGD", dict(lambd=-1e-4), ValueError, "ASGD: invalid lambd"),
    ("ASGD", dict(t0=float("nan")), ValueError, "ASGD: invalid t0"),
    ("ASGD", dict(alpha="x"), TypeError, "alpha to be a real number"),
    ("ASGD", dict(weight_decay=-1.0), ValueError, "ASGD: invalid weight_decay"),
])
def test_adadelta_rprop_asgd_refuse_bad_hyperparameters(name, kwargs, error, match):
    ours, _, _ = make_params(np.float32)
    with pytest.raises(error, match=match):
        getattr(optim, name)(ours, **kwargs)
    # torch's implementation switches, at any value that changes no result
    getattr(optim, name)(ours, foreach=False, capturable=True)


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9)),
                                         ("Adam", dict(lr=0.01)),
                                         ("AdamW", dict(lr=0.01)),
                                         ("RMSprop", dict(lr=0.01, momentum=0.5)),
                                         ("Adagrad", dict(lr=0.05, lr_decay=0.1)),
                                         ("Adamax", dict(lr=0.01)),
                                         ("NAdam", dict(lr=0.01)),
                                         ("RAdam", dict(lr=0.01, betas=(0.9, 0.9))),
                                         ("Adadelta", dict(lr=0.5)),
                                         ("ASGD", dict(lr=0.05, t0=2))])
def test_param_groups_with_their_own_hyperparameters(backend, dtype, name, kwargs,
                                                     torch_float64_scalars):
    groups = [((0, 2), {}), ((1, 3), {"lr": 0.003, "weight_decay": 0.1})]
    _, opt = run_trajectory(name, kwargs, dtype, groups=groups)
    assert [g["lr"] for g in opt.param_groups] == [kwargs["lr"], 0.003]


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9)),
                                         ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.5)),
                                         ("Adam", dict(lr=0.05, weight_decay=0.01)),
                                         ("AdamW", dict(lr=0.05, weight_decay=0.1)),
                                         ("Adam", dict(lr=0.05, amsgrad=True)),
                                         ("RMSprop", dict(lr=0.01, centered=True)),
                                         ("Adamax", dict(lr=0.05, weight_decay=0.01)),
                                         ("NAdam", dict(lr=0.05, weight_decay=0.01)),
                                         ("RAdam", dict(lr=0.05, betas=(0.9, 0.9))),
                                         ("Adadelta", dict(lr=0.5, weight_decay=0.01)),
                                         ("Rprop", dict(lr=0.05)),
                                         ("ASGD", dict(lr=0.05, t0=2))])
def test_parameters_without_grad_are_skipped_like_torch(backend, dtype, name, kwargs,
                                                        torch_float64_scalars):
    ours, theirs, offsets = make_params(dtype)
    opt = getattr(optim, name)(ours, **kwargs)
    ref = getattr(torch.optim, name)(theirs, **kwargs)
    for step in range(STEPS):
        fill_grads(ours, theirs, offsets)
        if step in (1, 2):  # parameter 1 has no gradient for two steps
            ours[1].grad = None
            theirs[1].grad = None
        opt.step()
        ref.step()
        for p, q in zip(ours, theirs):
            assert_close(p.data, q.detach().numpy(), dtype)
    # a grad that comes back is re-homed into the flat buffer
    assert ours[1].grad.base is not None and ours[1].grad.base is ours[0].grad.base


def test_lr_changed_between_steps_is_used(backend, dtype):
    ours, theirs, offsets = make_params(dtype)
    opt = optim.SGD(ours, lr=0.1, momentum=0.5)
    ref = torch.optim.SGD(theirs, lr=0.1, momentum=0.5)
    for step in range(4):
        fill_grads(ours, theirs, offsets)
        opt.step()
        ref.step()
        opt.param_groups[0]["lr"] *= 0.5
        ref.param_groups[0]["lr"] *= 0.5
    for p, q in zip(ours, theirs):
        assert_close(p.data, q.detach().numpy(), dtype)


@pytest.mark.parametrize("name,kwargs", [
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=1e-3)),
    ("Adam", dict(lr=0.01, weight_decay=1e-3)),
])
def test_mlp_training_matches_torch_on_the_same_data(backend, dtype, name, kwargs):
    """The whole loop (forward, cross-entropy, backward, step, zero_grad) on real batches,
    against a PyTorch twin with the same weights: the optimizer through the layers."""
    from fastnn import manual_seed, nn
    from fastnn.models import MLP
    from nn_torch_helpers import torch_twin

    manual_seed(0)
    model = MLP(6, [16, 8], 3, activation="tanh", batchnorm=True).to_dtype(dtype)
    twin = torch_twin(model)
    opt = getattr(optim, name)(model.parameters(), **kwargs)
    ref = getattr(torch.optim, name)(twin.parameters(), **kwargs)
    loss = nn.CrossEntropyLoss()
    rng = np.random.default_rng(1)
    for step in range(STEPS):
        x = rng.standard_normal((32, 6)).astype(dtype)
        y = rng.integers(0, 3, size=32)
        opt.zero_grad()
        loss.forward(model.forward(x), y)
        model.backward(loss.backward())
        opt.step()
        ref.zero_grad()
        torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)),
                                          torch.from_numpy(y)).backward()
        ref.step()
    theirs = dict(twin.named_parameters())
    for key, p in model.named_parameters():
        assert_close(p.data, theirs[key].detach().numpy(), dtype, scale=10,
                     err_msg=f"{name}: {key} after {STEPS} steps")


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
                                         ("Adam", dict(lr=0.05, weight_decay=0.01)),
                                         ("AdamW", dict(lr=0.05)),
                                         ("Rprop", dict(lr=0.05)),
                                         ("ASGD", dict(lr=0.05, t0=2))])
def test_frozen_parameters_are_left_alone_like_torch(backend, dtype, name, kwargs,
                                                     torch_float64_scalars):
    """requires_grad False (set before or between steps, then cleared): the optimizer
    skips the parameter and its state, as torch skips a tensor without a gradient."""
    ours, theirs, offsets = make_params(dtype)
    opt = getattr(optim, name)(ours, **kwargs)
    ref = getattr(torch.optim, name)(theirs, **kwargs)
    ours[2].requires_grad_(False)
    for step in range(STEPS):
        if step == 2:
            ours[0].requires_grad = False
        if step == 4:
            ours[0].requires_grad = True
        fill_grads(ours, theirs, offsets)
        for p, q in zip(ours, theirs):
            if not p.requires_grad:
                q.grad = None
        frozen = ours[2].data.copy()
        opt.step()
        ref.step()
        np.testing.assert_array_equal(ours[2].data, frozen)
        for p, q in zip(ours, theirs):
            assert_close(p.data, q.detach().numpy(), dtype)


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: optim.Adam(ps, lr=0.1)])
def test_weights_tied_through_data_are_refused_not_untied(make):
    # `c.weight.data = a.weight.data` ties two Parameters' values (PyTorch's optimizers
    # then update the one tensor twice); the flat buffers copy each parameter into a
    # slot of its own, which untied them without a word (they then trained apart).
    # Now a clear error, at construction or at the step after such a rebinding; a
    # tied Parameter (`c.weight = a.weight`) and a view of a parameter's own slot are fine.
    from fastnn import nn
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    a, c = nn.Linear(4, 4), nn.Linear(4, 4)
    c.weight.data = a.weight.data
    with pytest.raises(ValueError, match=r"parameters 0 and 2 share the memory"):
        make(list(a.parameters()) + list(c.parameters()))
    with pytest.raises(ValueError, match=r"parameters 1 and 2 share the memory"):  # across groups
        make([{"params": list(c.parameters())[::-1]}, {"params": list(a.parameters())}])
    a, c = nn.Linear(4, 4), nn.Linear(4, 4)
    opt = make(list(a.parameters()) + list(c.parameters()))
    y = c(a(x))
    a.backward(c.backward(np.ones_like(y)))
    opt.step()
    a.weight.data = a.weight.data.reshape(4, 4)   # a view of its own slot: still its own
    opt.step()
    c.weight.data = a.weight.data
    kept = c.weight.data.copy()
    with pytest.raises(ValueError, match=r"parameters 0 and 2 share the memory"):
        opt.step()
    np.testing.assert_array_equal(a.weight.data, kept)
    a, d = nn.Linear(4, 4), nn.Linear(4, 4)
    opt = make(list(a.parameters()))
    d.weight.data = a.weight.data      # a's slot of the installed group
    with pytest.raises(ValueError, match=r"parameters 0 and 2 share the memory"):
        opt.add_param_group({"params": list(d.parameters())})
    assert len(opt.param_groups) == 1
    m = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    m[2].weight = m[0].weight
    opt = make(m.parameters())
    y = m(x)
    m.backward(np.ones_like(y))
    opt.step()
    assert m[2].weight is m[0].weight


HUGE = 10 ** 400   # an int no float holds

@pytest.mark.parametrize("name,kwargs,arg", [
    ("SGD", dict(lr=HUGE), "lr"), ("SGD", dict(momentum=HUGE), "momentum"),
    ("SGD", dict(weight_decay=HUGE), "weight_decay"), ("SGD", dict(dampening=HUGE), "dampening"),
    ("Adam", dict(betas=(0.9, HUGE)), r"betas\[1\]"), ("AdamW", dict(eps=HUGE), "eps"),
    ("Adamax", dict(lr=HUGE), "lr"), ("NAdam", dict(momentum_decay=HUGE), "momentum_decay"),
    ("RAdam", dict(weight_decay=HUGE), "weight_decay"),
    ("Adagrad", dict(initial_accumulator_value=HUGE), "initial_accumulator_value"),
    ("Adadelta", dict(rho=HUGE), "rho"), ("RMSprop", dict(alpha=HUGE), "alpha"),
    ("Rprop", dict(etas=(0.5, HUGE)), r"etas\[1\]"), ("ASGD", dict(t0=HUGE), "t0"),
    ("LBFGS", dict(tolerance_change=HUGE), "tolerance_change"),
    ("Adafactor", dict(d=HUGE), "d"), ("Muon", dict(lr=HUGE), "lr"),
    ("Muon", dict(ns_coefficients=(HUGE, 1.0, 1.0)), r"ns_coefficients\[0\]"),
])
def test_an_int_no_float_holds_is_a_value_error_naming_the_optimizer(name, kwargs, arg):
    """float() of it raised OverflowError at construction, naming neither."""
    params = [Parameter(np.ones((3, 3), np.float32))]
    with pytest.raises(ValueError, match=f"{name}: expected {arg} to be a number a float "
                                         f"can hold"):
        getattr(optim, name)(params, **kwargs)


@pytest.mark.parametrize("name", ["SGD", "Adam", "Adafactor"])
def test_an_int_lr_no_float_holds_set_between_steps_changes_nothing(name):
    p = Parameter(np.ones(3, np.float32))
    p.grad = np.ones(3, np.float32)
    opt = getattr(optim, name)([p], lr=0.1)
    opt.step()
    data, state = p.data.copy(), copy.deepcopy(opt.state_dict())
    opt.param_groups[0]["lr"] = HUGE
    with pytest.raises(ValueError, match=f"{name}: expected lr to be a number a float"):
        opt.step()
    opt.param_groups[0]["lr"] = 0.1
    np.testing.assert_array_equal(p.data, data)
    assert repr(opt.state_dict()) == repr(state)
