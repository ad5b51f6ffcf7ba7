"""GroupNorm / InstanceNorm's per-channel affine runs as the batchnorm kernels in eval mode
(mean 0, deviation 1): forward, input and parameter gradients against PyTorch on every
backend, gradients accumulating over two backwards, with and without bias."""
import numpy as np
import pytest
import torch

from fastnn import nn

CASES = [("GroupNorm", (2, 4), (3, 4, 5), True), ("GroupNorm", (4, 8), (2, 8, 3, 3), True),
         ("GroupNorm", (1, 3), (2, 3), False), ("GroupNorm", (3, 3), (2, 3, 2, 2, 2), True),
         ("InstanceNorm2d", (3,), (2, 3, 4, 5), None), ("InstanceNorm1d", (3,), (3, 6), None)]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_matches_torch_with_the_affine_in_the_batchnorm_kernels(backend, dtype, case):
    cls, args, shape, bias = case
    options = {"bias": bias} if bias is not None else {"affine": True}
    layer = getattr(nn, cls)(*args, dtype=dtype, **options)
    ref = getattr(torch.nn, cls)(*args, **options).to(getattr(torch, np.dtype(dtype).name))
    rng = np.random.default_rng(1)
    for p in layer.parameters():
        p.data[...] = rng.standard_normal(p.data.shape)
    ref.load_state_dict({k: torch.tensor(v) for k, v in layer.state_dict().items()},
                        strict=False)
    x = rng.standard_normal(shape).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    tol = dict(rtol=1e-9, atol=1e-10) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    for _ in range(2):
        y, ty = layer(x), ref(tx)
        np.testing.assert_allclose(y, ty.detach().numpy(), **tol)
        g = rng.standard_normal(y.shape).astype(dtype)
        tx.grad = None
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(layer.backward(g), tx.grad.numpy(), **tol)
    for p, tp in zip(layer.parameters(), ref.parameters()):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), **tol)


def test_inside_a_sequential_training_follows_torch(backend):
    # (a Sequential runs its layers with reused output and gradient buffers)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, dtype=np.float64),
                          nn.GroupNorm(2, 4, dtype=np.float64), nn.ReLU(), nn.Flatten(),
                          nn.Linear(64, 3, dtype=np.float64))
    ref = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.GroupNorm(2, 4),
                              torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(64, 3))
    ref = ref.double()
    ref.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    rng = np.random.default_rng(2)
    for step in range(3):
        x = rng.standard_normal((5, 2, 4, 4))
        g = rng.standard_normal((5, 3))
        y = model(x)
        ref.zero_grad()
        ty = ref(torch.tensor(x))
        ty.backward(torch.tensor(g))
        model.zero_grad()
        model.backward(g)
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
        for p, tp in zip(model.parameters(), ref.parameters()):
            np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-9, atol=1e-11)
            p.data -= 0.1 * p.grad
            with torch.no_grad():
                tp -= 0.1 * tp.grad
