"""SGD's first momentum step (v = g, no dampening) is the first step taken with momentum
on, as PyTorch's: momentum switched on after some plain steps, and off and on again."""
import numpy as np
import pytest
import torch

from fastnn import nn, optim


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_momentum_switched_on_later_and_off_again(backend, dtype):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(5).astype(dtype)
    grads = rng.standard_normal((8, 5)).astype(dtype)
    p = nn.Parameter(w0.copy())
    q = torch.tensor(w0.copy(), requires_grad=True)
    opt = optim.SGD([p], lr=0.1, dampening=0.5)
    topt = torch.optim.SGD([q], lr=0.1, dampening=0.5)
    schedule = [0.0, 0.0, 0.9, 0.9, 0.0, 0.9, 0.5, 0.5]
    for g, momentum in zip(grads, schedule):
        opt.param_groups[0]["momentum"] = momentum
        topt.param_groups[0]["momentum"] = momentum
        p.grad[...] = g
        q.grad = torch.tensor(g)
        opt.step()
        topt.step()
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(opt.state_dict()["state"][0]["momentum_buffer"],
                               topt.state_dict()["state"][0]["momentum_buffer"].numpy(),
                               rtol=1e-6, atol=1e-6)
