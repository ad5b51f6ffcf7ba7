"""nn.utils.clip_grad_norm_ and clip_grad_value_ against torch.nn.utils."""
import numpy as np
import pytest
import torch

from fastnn import nn

from conftest import assert_close


def _twins(rng, dtype, scale):
    """A small model with gradients, and torch parameters holding the same gradients."""
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).to_dtype(dtype)
    tparams = []
    for p in model.parameters():
        p.grad[...] = rng.standard_normal(p.shape) * scale
        t = torch.nn.Parameter(torch.from_numpy(p.data.copy()))
        t.grad = torch.from_numpy(p.grad.copy())
        tparams.append(t)
    return model, tparams


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3, float("inf"), 0])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(dtype, rng, norm_type, max_norm):
    model, tparams = _twins(rng, dtype, scale=2.0)
    total = nn.utils.clip_grad_norm_(model.parameters(), max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    assert_close(total, expected.item(), dtype, scale=10)
    for p, t in zip(model.parameters(), tparams):
        assert p.grad.dtype == dtype
        assert_close(p.grad, t.grad.numpy(), dtype)


def test_clip_grad_value_and_single_parameter(dtype, rng):
    model, tparams = _twins(rng, dtype, scale=3.0)
    nn.utils.clip_grad_value_(model.parameters(), 1.5)
    torch.nn.utils.clip_grad_value_(tparams, 1.5)
    for p, t in zip(model.parameters(), tparams):
        np.testing.assert_array_equal(p.grad, t.grad.numpy())
    weight = model[0].weight  # a single Parameter, as torch takes a single tensor
    norm_before = float(np.linalg.norm(weight.grad.astype(np.float64)))
    assert nn.utils.clip_grad_norm_(weight, 0.1) == pytest.approx(norm_before, rel=1e-6)
    assert np.linalg.norm(weight.grad) == pytest.approx(0.1, rel=1e-4)


def test_clip_grad_norm_errors_name_clip_grad_norm_():
    """clip_grad_norm_ computes its total as get_total_norm does, and its errors said
    'get_total_norm: ...', a function the user never called."""
    params = [nn.Parameter(np.zeros(3)), nn.Parameter(np.zeros((2, 0)))]
    params[0].grad, params[1].grad = np.array([np.inf, 1.0, 0.0]), np.zeros((2, 0))
    with pytest.raises(RuntimeError, match=r"^clip_grad_norm_: the total norm of order 2\.0 "
                                           r"of the gradients is non-finite"):
        nn.utils.clip_grad_norm_(params[:1], 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError,
                       match=r"^clip_grad_norm_: the inf norm of an empty array"):
        nn.utils.clip_grad_norm_(params, 1.0, norm_type="inf")
    with pytest.raises(RuntimeError, match=r"^get_total_norm: the total norm of order 2\.0"):
        nn.utils.get_total_norm([params[0].grad], error_if_nonfinite=True)


def test_nonfinite_norm(rng):
    model, tparams = _twins(rng, np.float64, scale=1.0)
    model[0].weight.grad[0, 0] = np.inf
    before = [p.grad.copy() for p in model.parameters()]
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(model.parameters(), 1.0, error_if_nonfinite=True)
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.grad, b)
    tparams[0].grad[0, 0] = float("inf")
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    torch.nn.utils.clip_grad_norm_(tparams, 1.0)
    for p, t in zip(model.parameters(), tparams):
        np.testing.assert_array_equal(p.grad, t.grad.numpy())  # NaN and zeros alike


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_norm to be a number >= 0"):
        nn.utils.clip_grad_norm_(nn.Linear(2, 2).parameters(), -1.0)
    with pytest.raises(TypeError, match="expected Parameters"):
        nn.utils.clip_grad_value_([np.zeros(3)], 1.0)


@pytest.mark.parametrize("scale", [1e20, 1e-25, 0.0, 1.0])
def test_float32_two_norm_is_exact_beyond_float32_squares(scale):
    # the float32 dot product overflows (squares past 3.4e38) or underflows (below
    # 1e-45): the sum is taken again in float64, so the norm stays the float64 one
    # (PyTorch 2.13's float32 norm is inf at 1e20 and 0 at 1e-25 here)
    g = (np.linspace(-1, 1, 1000) * scale).astype(np.float32)
    wide = g.astype(np.float64)
    exact = np.sqrt(np.sum(wide ** 2) + np.sum(wide[:10] ** 2))
    ours = nn.utils.get_total_norm([g, g[:10]])
    np.testing.assert_allclose(ours, exact, rtol=1e-6)
    if scale == 1.0:
        theirs = torch.nn.utils.get_total_norm([torch.from_numpy(g), torch.from_numpy(g[:10])])
        np.testing.assert_allclose(ours, theirs.item(), rtol=1e-6)


def _frozen_twins(rng):
    """A trained Linear(3, 2) and torch's, backward run, then the weight frozen (its
    gradient stale, as PyTorch keeps it), and a Linear frozen before its backward, whose
    gradient a backward never makes (PyTorch's None)."""
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2)).to_dtype(np.float64)
    model[1].requires_grad_(False)
    twin = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 2)).double()
    twin[1].requires_grad_(False)
    with torch.no_grad():
        for p, t in zip(model.parameters(), twin.parameters()):
            t.copy_(torch.from_numpy(p.data))
    x = rng.standard_normal((4, 3)) * 5
    model.backward(np.ones_like(model(x)))
    twin(torch.from_numpy(x)).sum().backward()
    model[0].weight.requires_grad = False
    twin[0].weight.requires_grad_(False)
    return model, twin


@pytest.mark.parametrize("clip", ["norm", "value"])
def test_a_frozen_parameters_stale_gradient_is_clipped_as_torch(rng, clip):
    """PyTorch counts every gradient that is not None, frozen or not: a parameter frozen
    after its backward is in the norm and is scaled (unfrozen, it keeps the clipped
    values); one frozen before any backward has none."""
    model, twin = _frozen_twins(rng)
    if clip == "norm":
        total = nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        assert total == pytest.approx(
            torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.5).item(), rel=1e-12)
    else:
        nn.utils.clip_grad_value_(model.parameters(), 0.5)
        torch.nn.utils.clip_grad_value_(twin.parameters(), 0.5)
    model[0].weight.requires_grad = True
    twin[0].weight.requires_grad_(True)
    assert_close(model[0].weight.grad, twin[0].weight.grad.numpy(), np.float64)
    assert_close(model[0].bias.grad, twin[0].bias.grad.numpy(), np.float64)
    assert twin[1].weight.grad is None and model[1].weight._no_grad_yet()
