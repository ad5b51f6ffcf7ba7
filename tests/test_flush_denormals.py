"""The compiled CPU backends' optimizer updates run with subnormal numbers flushed to
zero (kernels/cython/_flush.h, kernels/numba_cpu/flush.py): a momentum buffer decaying
into subnormals must become 0, normal values must match the reference, and every
thread's floating-point control register must be back as it was afterwards (a kernel
after an update still makes subnormals, as NumPy and PyTorch do)."""
import numpy as np
import pytest

from fastnn import backend
from fastnn.kernels import reference

BACKENDS = [name for name in ("numba", "cython") if name in backend.backends()]
TINY = {np.float32: np.finfo(np.float32).tiny, np.float64: np.finfo(np.float64).tiny}
# below the numba backend's parallel minimum (32768) and above it, with a ragged block
SIZES = [1000, 8 * 4096 + 1001]


def _state(n, dtype, seed=0):
    """param, grad, velocity (n,): every third velocity subnormal with a zero gradient
    (a dead unit's weights), the rest normal."""
    rng = np.random.default_rng(seed)
    param = rng.standard_normal(n).astype(dtype)
    grad = (rng.standard_normal(n) * 1e-3).astype(dtype)
    velocity = (rng.standard_normal(n) * 1e-3).astype(dtype)
    dead = np.arange(n) % 3 == 0
    velocity[dead] = TINY[dtype] / 4
    grad[dead] = 0
    return param, grad, velocity, dead


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_sgd_momentum_flushes_subnormal_velocity(name, dtype, n):
    be = backend.load(name)
    param, grad, velocity, dead = _state(n, dtype)
    ref_param, ref_velocity = param.copy(), velocity.copy()
    reference.sgd_update(ref_param, grad, ref_velocity, lr=0.1, momentum=0.9)
    assert np.all(ref_velocity[dead] != 0)        # NumPy keeps the subnormals
    be.sgd_update(param, grad, velocity, lr=0.1, momentum=0.9)
    assert np.all(velocity[dead] == 0)
    np.testing.assert_array_equal(param[dead], ref_param[dead])
    # (momentum * v + g may be one fused rounding, where NumPy rounds twice)
    np.testing.assert_allclose(velocity[~dead], ref_velocity[~dead], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(param[~dead], ref_param[~dead], rtol=1e-6)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("n", SIZES)
def test_adam_flushes_subnormal_moments(name, n):
    be = backend.load(name)
    param, grad, exp_avg, dead = _state(n, np.float32)
    exp_avg_sq = np.abs(exp_avg) * exp_avg.dtype.type(1e-3)
    exp_avg_sq[dead] = TINY[np.float32] / 8
    be.adam_update(param, grad, exp_avg, exp_avg_sq, step=3)
    assert np.all(exp_avg[dead] == 0) and np.all(exp_avg_sq[dead] == 0)
    assert np.all(np.isfinite(param))


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("n", SIZES)
def test_control_register_restored_after_an_update(name, n):
    """After an update on every thread, a kernel and NumPy still make subnormals:
    leaky_relu(-1e-37) with slope 0.01 is -1e-39 (flushed it would be -0)."""
    be = backend.load(name)
    param, grad, velocity, _ = _state(n, np.float32)
    be.sgd_update(param, grad, velocity, lr=0.1, momentum=0.9)
    x = np.full(n, -1e-37, np.float32)
    y = be.leaky_relu(x, 0.01)
    assert np.all(y < 0)
    assert np.float32(1e-37) * np.float32(0.01) > 0
