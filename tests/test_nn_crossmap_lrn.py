"""CrossMapLRN2d (PyTorch's legacy cross-channel LRN) against torch.nn.CrossMapLRN2d:
outputs and input gradients (PyTorch's own backward formula), its window against a slow
obvious version, repr, and the errors."""
import numpy as np
import pytest
import torch

from fastnn.nn.host_layers import CrossMapLRN2d, LocalResponseNorm

from conftest import assert_close

torch.set_num_threads(2)

CASES = [  # (size, alpha, beta, k, input shape)
    (2, 1e-4, 0.75, 1, (2, 3, 4, 5)),
    (3, 0.5, 0.75, 1.0, (2, 6, 3, 3)),
    (4, 0.3, 0.5, 2.0, (1, 7, 2, 3)),
    (5, 1.0, 1.5, 0.5, (3, 9, 2, 2)),
    (5, 0.2, 0.75, 1, (2, 2, 3, 1)),   # fewer channels than the window
    (6, 0.4, 0.25, 1.5, (2, 5, 1, 4)),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_matches_torch_forward_and_backward(dtype, rng, case):
    size, alpha, beta, k, shape = CASES[case]
    ours, theirs = CrossMapLRN2d(size, alpha, beta, k), torch.nn.CrossMapLRN2d(size, alpha,
                                                                             beta, k)
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = theirs(tx)
    y = ours(x)
    assert y.shape == shape and y.dtype == dtype
    assert_close(y, ty.detach().numpy(), dtype)
    g = rng.standard_normal(shape).astype(dtype)
    ty.backward(torch.from_numpy(g))
    grad = ours.backward(g)
    assert grad.dtype == dtype
    assert_close(grad, tx.grad.numpy(), dtype, scale=10)
    assert ours.backward(g, need_grad_in=False) is None


def _naive(x, size, alpha, beta, k):
    """PyTorch's legacy window: channels c - p + 1 .. c + p - 1, p = (size - 1) // 2 + 1,
    plus channel 0 once c >= p (its running sum never takes channel 0 out)."""
    c_total, p = x.shape[1], (size - 1) // 2 + 1
    y = np.empty_like(x)
    for c in range(c_total):
        chans = set(range(max(0, c - p + 1), min(c_total, c + p)))
        if c >= p:
            chans.add(0)
        s = sum(x[:, j] ** 2 for j in chans)
        y[:, c] = x[:, c] * (k + alpha / size * s) ** -beta
    return y


def test_window_against_a_slow_version_and_not_local_response_norm(rng):
    x = rng.standard_normal((2, 8, 2, 3))
    for size in (1, 2, 3, 4, 5, 8, 11):
        y = CrossMapLRN2d(size, 0.7, 0.75, 1.0)(x)
        np.testing.assert_allclose(y, _naive(x, size, 0.7, 0.75, 1.0), rtol=1e-12)
    # not LocalResponseNorm's window (size // 2 before, (size - 1) // 2 after)
    assert not np.allclose(CrossMapLRN2d(3, 0.7)(x), LocalResponseNorm(3, 0.7)(x))
    assert not isinstance(CrossMapLRN2d(3), LocalResponseNorm)


def test_size_one_runs_forward_and_refuses_backward_as_torch(rng):
    x = rng.standard_normal((2, 4, 2, 2))
    ours, theirs = CrossMapLRN2d(1, 0.5), torch.nn.CrossMapLRN2d(1, 0.5)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = theirs(tx)
    assert_close(ours(x), ty.detach().numpy(), np.float64)
    with pytest.raises(RuntimeError):
        ty.sum().backward()
    with pytest.raises(RuntimeError, match="size 1"):
        ours.backward(np.ones_like(x))


def test_empty_batch_and_repr():
    y = CrossMapLRN2d(3)(np.zeros((0, 4, 2, 2), np.float32))
    assert y.shape == (0, 4, 2, 2)
    for args in [(3,), (5, 1e-3, 0.5, 2.0), (4, 1, 1, 3)]:
        assert repr(CrossMapLRN2d(*args)) == repr(torch.nn.CrossMapLRN2d(*args))
    assert repr(LocalResponseNorm(2, 1, 1, 2)) == repr(torch.nn.LocalResponseNorm(2, 1, 1, 2))


def test_bad_arguments_and_inputs():
    layer = CrossMapLRN2d(3)
    for shape in [(4, 3, 3), (1, 2, 3, 3, 3), (2, 3)]:
        with pytest.raises(ValueError, match="4D"):
            layer(np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match="channel"):
        layer(np.zeros((2, 0, 3, 3), np.float32))
    with pytest.raises(TypeError):
        layer(np.zeros((2, 3, 3, 3), np.int64))
    with pytest.raises(ValueError):
        CrossMapLRN2d(0)
    with pytest.raises(TypeError):
        CrossMapLRN2d(3, alpha="0.1")
    with pytest.raises(RuntimeError, match="before forward"):
        CrossMapLRN2d(3).backward(np.zeros((1, 3, 2, 2), np.float32))
    layer(np.zeros((1, 3, 2, 2), np.float32))
    with pytest.raises(TypeError):
        layer.backward(np.zeros((1, 3, 2, 2), np.float64))
    with pytest.raises(ValueError):
        layer.backward(np.zeros((1, 3, 2, 3), np.float32))
