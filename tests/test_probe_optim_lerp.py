"""Adam's first moment is PyTorch's exp_avg.lerp_(g, 1 - beta1) on every backend (Adam,
AdamW, AMSGrad, NAdam, RAdam, Adamax): an infinite first moment turns NaN on the next
finite gradient (inf + w (g - inf)), as PyTorch's, where b1 m + (1 - b1) g kept it
infinite; with beta1 < 0.5 (lerp's other branch, g - (g - m)(1 - w)) an infinite
gradient on a zero moment is NaN at once. Parameters and state against torch.optim after
each step, gradients with inf, -inf and NaN at chosen steps among ordinary ones."""
import numpy as np
import pytest

import fastnn
from fastnn import optim
from fastnn.nn import Parameter

from conftest import assert_close

torch = pytest.importorskip("torch")

CASES = [
    ("Adam", {}), ("Adam", dict(amsgrad=True, weight_decay=0.05)),
    ("Adam", dict(betas=(0.3, 0.99), maximize=True)), ("AdamW", dict(lr=0.02)),
    ("NAdam", {}), ("NAdam", dict(betas=(0.3, 0.99))), ("RAdam", {}),
    ("RAdam", dict(betas=(0.3, 0.9), decoupled_weight_decay=True, weight_decay=0.1)),
    ("Adamax", {}), ("Adamax", dict(betas=(0.3, 0.99), weight_decay=0.1)),
]
# (step, index, value): each non-finite value in its own element, at the start, middle
# and end of 40000 values (the compiled kernels' parallel paths and their tails)
EVENTS = [(0, 0, np.inf), (0, 1, -np.inf), (1, 2, np.nan), (2, 20000, np.inf),
          (3, 39999, -np.inf), (0, 3, np.inf), (1, 3, np.inf), (1, 4, np.inf),
          (2, 4, -np.inf)]
STEPS = 6


def gradients(dtype):
    rng = np.random.default_rng(7)
    grads = rng.standard_normal((STEPS, 40000)) * np.exp(rng.uniform(-6, 2, 40000))
    for step, index, value in EVENTS:
        grads[step, index] = value
    return grads.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name,options", CASES,
                         ids=[f"{n}-{'-'.join(o) or 'plain'}" for n, o in CASES])
def test_first_moment_propagates_nonfinite_values_as_torch(backend, name, options, dtype):
    grads = gradients(dtype)
    start = np.random.default_rng(8).standard_normal(40000).astype(dtype)
    twin = torch.nn.Parameter(torch.tensor(start))
    reference = getattr(torch.optim, name)([twin], **options)
    param = Parameter(start.copy())
    optimizer = getattr(optim, name)([param], **options)
    with np.errstate(invalid="ignore", over="ignore"):
        for step in range(STEPS):
            twin.grad = torch.tensor(grads[step])
            reference.step()
            param.grad = grads[step].copy()
            optimizer.step()
            want = reference.state[twin]
            got = optimizer.state[param]
            # assert_allclose: NaN where torch's is NaN, the same infinities, else close
            assert_close(got["exp_avg"], want["exp_avg"].numpy(), dtype,
                         err_msg=f"exp_avg, step {step + 1}")
            assert_close(param.data, twin.detach().numpy(), dtype,
                         err_msg=f"param, step {step + 1}")
    assert np.isnan(got["exp_avg"][[0, 1, 3, 4, 20000]]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("beta1", [0.9, 0.3, 0.5, 0.0])
def test_adam_update_first_moment_is_torch_lerp(backend, beta1, dtype):
    """The kernel against torch.lerp on moments and gradients of every kind (finite,
    +-inf, NaN, huge of both signs): the same NaNs and infinities, finite values close.
    beta1 0.5: the weight at the branch point (lerp's second form); beta1 0: weight 1,
    g + 0 (g - m), NaN for an infinite m, as torch's."""
    big = np.finfo(dtype).max / 2
    values = np.array([0.0, 1.5, -2.0, np.inf, -np.inf, np.nan, big, -big], dtype)
    m0, g = (a.ravel() for a in np.meshgrid(values, values))
    m = m0.copy()
    param, v = np.zeros_like(g), np.ones_like(g)
    with np.errstate(invalid="ignore", over="ignore"):
        fastnn.ops.adam_update(param, g, m, v, 1, 1e-3, beta1, 0.999, 1e-8, 0.0)
    want = torch.tensor(m0).lerp_(torch.tensor(g), 1 - beta1).numpy()
    assert_close(m, want, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("op", ["adam", "amsgrad", "adaptive_moments"])
def test_second_moment_rounds_as_torch(backend, op, dtype):
    """v = b2 v + (1 - b2) g g rounds as PyTorch's v.mul_(b2).addcmul_(g, g, value=1 - b2):
    b2 v alone, then (1 - b2) g times g added (fused where the CPU has FMA, as PyTorch's
    vectorised addcmul). The Cython kernels fused b2 v instead: a quarter of the values a
    unit in the last place off. Without FMA the separately rounded form is 0.2% off."""
    rng = np.random.default_rng(3)
    g = rng.standard_normal(4096).astype(dtype)
    v = np.abs(rng.standard_normal(4096)).astype(dtype)
    want = torch.tensor(v).mul_(0.999).addcmul_(torch.tensor(g), torch.tensor(g),
                                                value=1 - 0.999).numpy()
    param, m = np.zeros_like(g), np.zeros_like(g)
    if op != "adaptive_moments":
        vmax = np.zeros_like(g) if op == "amsgrad" else None
        fastnn.ops.adam_update(param, g, m, v, 1, 1e-3, 0.9, 0.999, 1e-8, 0.0, vmax)
    else:
        fastnn.ops.adaptive_moments_update(param, g, m, v, 1e-3, 0.0, 0.9, 0.999, 1.0, 1e-8)
    assert np.mean(v == want) >= 0.99
