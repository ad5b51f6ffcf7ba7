"""float64 tanh on the compiled backends: a vectorizable E / (E + 2) (numba's
vmath._tanh64, Cython's fnn_tanh) in place of glibc's scalar tanh, which ran at 1.5x
NumPy's time. Checked against glibc (math.tanh) and PyTorch over every binade."""
import math

import numpy as np
import pytest

import fastnn
from fastnn import ops

COMPILED = [b for b in fastnn.backends() if b in ("numba", "cython")]
pytestmark = pytest.mark.skipif(not COMPILED, reason="no compiled CPU backend")


def _values():
    rng = np.random.default_rng(7)
    magnitudes = np.concatenate([
        10.0 ** rng.uniform(-323, 2, 200_000),           # every binade, subnormals too
        rng.uniform(0, 25, 200_000),                      # the exp range and the clamp
        np.abs(rng.standard_normal(200_000)),
        # the reduction's rounding edges (2|x| = (n + 1/2) ln2) and the clamp at 20
        np.array([(k + 0.5) * math.log(2) / 2 for k in range(60)]),
        np.array([0.5 * math.log(3), 19.999999, 20.0, 20.000001, 5e-324, 2.2e-308, 1e-8])])
    return np.concatenate([magnitudes, -magnitudes, [0.0, -0.0]])


@pytest.mark.parametrize("backend", COMPILED)
def test_within_4_ulp_of_glibc_with_its_signs(backend):
    x = _values()
    expected = np.array([math.tanh(v) for v in x])
    with fastnn.use_backend(backend):
        got = ops.tanh(x)
    ulps = np.abs(got - expected) / np.spacing(np.abs(expected))
    assert ulps.max() <= 4, x[np.argmax(ulps)]
    assert np.array_equal(np.signbit(got), np.signbit(x))   # tanh(-0) is -0
    tiny = np.abs(x) < 2.0 ** -26
    np.testing.assert_array_equal(got[tiny], x[tiny])      # tanh x rounds to x there


@pytest.mark.parametrize("backend", COMPILED)
def test_nan_and_infinities(backend):
    x = np.array([np.nan, np.inf, -np.inf, 1e308, -1e308, 21.0, -21.0])
    with fastnn.use_backend(backend):
        got = ops.tanh(x)
    assert math.isnan(got[0]) and list(got[1:]) == [1, -1, 1, -1, 1, -1]


def _runs_the_vectorized_tanh(backend):
    """numba's vmath._tanh64 and Cython's fnn_tanh are one algorithm; a Cython build
    without FMA (FASTNN_NATIVE=0) calls glibc's tanh instead (_common.pxd's f_tanh)."""
    return backend != "cython" or fastnn.backend_info("cython")["fma"]


def test_the_backends_give_the_same_bits_and_agree_with_pytorch():
    torch = pytest.importorskip("torch")
    x = _values()
    expected = torch.tanh(torch.from_numpy(x)).numpy()
    same_bits = []
    for backend in COMPILED:
        with fastnn.use_backend(backend):
            got = ops.tanh(x)
        np.testing.assert_allclose(got, expected, rtol=1e-15, atol=0, err_msg=backend)
        if _runs_the_vectorized_tanh(backend):
            same_bits.append(got)
    for other in same_bits[1:]:
        np.testing.assert_array_equal(other, same_bits[0])


@pytest.mark.parametrize("backend", COMPILED)
def test_the_fused_linear_tanh_uses_it(backend):
    """linear_forward's fused tanh (the dense kernels) matches tanh of the product."""
    rng = np.random.default_rng(3)
    x, weight = rng.standard_normal((64, 40)), rng.standard_normal((33, 40))
    bias = rng.standard_normal(33)
    with fastnn.use_backend(backend):
        fused = ops.linear_forward(x, weight, bias, activation="tanh")
        plain = ops.tanh(ops.linear_forward(x, weight, bias))
    np.testing.assert_array_equal(fused, plain)
    np.testing.assert_allclose(fused, np.tanh(x @ weight.T + bias), rtol=1e-12, atol=1e-13)
