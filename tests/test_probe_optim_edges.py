"""Optimizer edges found by probing fastnn.optim against torch.optim 2.13: decoupled
weight decay keeps an infinite parameter infinite (p *= 1 - lr wd, PyTorch's; p - rate p
made it NaN), Adagrad's state starts at the constructor's initial_accumulator_value
whatever a group says (PyTorch reads its defaults), and the numba AMSGrad maximum keeps
a NaN as torch.maximum does; RAdam's first steps take an infinite gradient as PyTorch's."""
import numpy as np
import pytest
import torch

import fastnn
from fastnn import optim
from fastnn.nn import Parameter

BACKENDS = [b for b in fastnn.backends() if b != "cuda"]


def _assert_steps_as_torchs(name, cls, kwargs, start, grads):
    """Optimizer cls(**kwargs) of fastnn (backend name) and of torch.optim, from the
    parameter start through one step per gradient: the same values, infinite ones (at
    indices 0 and 2) included."""
    tp = torch.tensor(start.copy(), requires_grad=True)
    t_opt = getattr(torch.optim, cls)([tp], **kwargs)
    with fastnn.use_backend(name):
        p = Parameter(start.copy())
        opt = getattr(optim, cls)([p], **kwargs)
        for g in grads:
            p.grad = g.copy()
            opt.step()
            tp.grad = torch.from_numpy(g.copy())
            t_opt.step()
    want = tp.detach().numpy()
    assert np.isinf(want[[0, 2]]).all()
    np.testing.assert_allclose(p.data, want, rtol=1e-6 if start.dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("cls,kwargs", [
    ("AdamW", dict(lr=1e-3)),
    ("Adam", dict(lr=1e-3, weight_decay=0.1, decoupled_weight_decay=True)),
    ("NAdam", dict(lr=1e-3, weight_decay=0.1, decoupled_weight_decay=True)),
    ("RAdam", dict(lr=1e-3, weight_decay=0.1, decoupled_weight_decay=True)),
])
def test_decoupled_weight_decay_keeps_an_infinite_parameter_infinite(name, dtype, cls,
                                                                      kwargs):
    start = np.array([np.inf, 1.0, -np.inf, 2.5], dtype)
    grads = [np.array([1.0, -2.0, 0.5, 3.0], dtype) * (step + 1) for step in range(3)]
    _assert_steps_as_torchs(name, cls, kwargs, start, grads)


@pytest.mark.parametrize("name", BACKENDS)
def test_adagrad_starts_every_group_at_the_constructors_accumulator(name):
    tensors = [torch.ones(2, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    t_opt = torch.optim.Adagrad([{"params": [tensors[0]]},
                                 {"params": [tensors[1]], "initial_accumulator_value": 3.0}],
                                lr=0.1, initial_accumulator_value=0.5)
    with fastnn.use_backend(name):
        params = [Parameter(np.ones(2)) for _ in range(2)]
        opt = optim.Adagrad([{"params": [params[0]]},
                             {"params": [params[1]], "initial_accumulator_value": 3.0}],
                            lr=0.1, initial_accumulator_value=0.5)
        for _ in range(2):
            for p, t in zip(params, tensors):
                p.grad = np.ones(2)
                t.grad = torch.ones(2, dtype=torch.float64)
            opt.step()
            t_opt.step()
    for p, t in zip(params, tensors):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", BACKENDS)
def test_amsgrad_keeps_a_nan_in_its_maximum_as_torch(name):
    tp = torch.ones(3, dtype=torch.float64, requires_grad=True)
    t_opt = torch.optim.Adam([tp], amsgrad=True)
    with fastnn.use_backend(name):
        p = Parameter(np.ones(3))
        opt = optim.Adam([p], amsgrad=True)
        for g in (np.array([np.nan, 1.0, 2.0]), np.array([1.0, 1.0, 2.0])):
            p.grad = g.copy()
            opt.step()
            tp.grad = torch.from_numpy(g.copy())
            t_opt.step()
        got = opt.state_dict()["state"][0]["max_exp_avg_sq"]
    want = t_opt.state_dict()["state"][0]["max_exp_avg_sq"].numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12)    # (NaN where torch's is NaN)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_radam_first_steps_take_an_infinite_gradient_as_torch(name, dtype):
    """RAdam's first steps (rho_t <= 5) move by the first moment alone: its kernel call
    adds no gradient term (0 * inf was NaN where PyTorch gives -inf)."""
    start = np.array([1.0, 1.0, -2.0], dtype)
    grads = [np.array([np.inf, 1.0, -np.inf], dtype)]
    _assert_steps_as_torchs(name, "RAdam", dict(lr=1e-3), start, grads)
