"""The vectorized sin/cos behind the sine op of both compiled CPU backends (numba's
vmath.sin_fast, Cython's fnn_sinf/fnn_sin) against libm, in float32 and float64:
ulp error over wide argument ranges including the worst cases near multiples of pi/2,
arguments beyond the fast range (libm fallback), inf/NaN, and in-place calls.

sine(x, omega=1) is sin(x); sine_backward(ones, x, omega=1) is cos(x).
"""
import math

import numpy as np
import pytest

import fastnn
from fastnn import backend

BACKENDS = [b for b in ("numba", "cython") if b in fastnn.backends()]
pytestmark = pytest.mark.skipif(not BACKENDS, reason="no compiled CPU backend")

# The fast range of each float type (kernels/cython/_fastnn_math.h, numba_cpu/vmath.py).
FAST_MAX = {np.float32: 2.0 ** 20, np.float64: 2.0 ** 17}
MAX_ULP = 4


def _grid(dtype, n_random):
    """Arguments from 0 up to the end of the fast range, plus the dtype's neighbours
    of multiples of pi/2 and pi/4 (where the range reduction cancels)."""
    rng = np.random.default_rng(0)
    top = FAST_MAX[dtype]
    k = np.arange(-40000, 40000, dtype=np.float64)
    centres = np.concatenate([k * (np.pi / 2), k * (np.pi / 2) + np.pi / 4,
                              rng.uniform(-top, top, 2000) // (np.pi / 2) * (np.pi / 2)]
                             ).astype(dtype)
    parts = [np.linspace(-10, 10, n_random), rng.standard_normal(n_random) * 100,
             rng.uniform(-top, top, n_random),
             np.exp(rng.uniform(-90, np.log(top), n_random)) * rng.choice([-1, 1], n_random),
             np.array([0.0, -0.0, 1e-30, 1e-40, top, -top])]
    x = np.concatenate([np.concatenate(parts).astype(dtype), centres,
                        np.nextafter(centres, dtype(np.inf)),
                        np.nextafter(centres, dtype(-np.inf))])
    assert np.abs(x).max() <= top
    return x


def _exact(fn, x):
    """fn(x) to within float64 rounding: libm in float64 for float32 arguments,
    math.sin/cos (glibc, < 1 ulp) one by one for float64 arguments."""
    if x.dtype == np.float32:
        return getattr(np, fn)(x.astype(np.float64))
    return np.array([getattr(math, fn)(v) for v in x.tolist()])


def _ulps(actual, exact, dtype):
    spacing = np.spacing(np.abs(exact).astype(dtype)).astype(np.float64)
    return np.abs(actual.astype(np.float64) - exact) / spacing


def _sin(be, x, **kw):
    return be.sine(x, omega=1.0, **kw)


def _cos(be, x, **kw):
    return be.sine_backward(np.ones_like(x), x, omega=1.0, **kw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", BACKENDS)
def test_sin_and_cos_within_a_few_ulp_over_the_fast_range(name, dtype):
    be = backend.load(name)
    x = _grid(dtype, 200_000 if dtype == np.float32 else 20_000)
    for fn, op in (("sin", _sin), ("cos", _cos)):
        ulps = _ulps(op(be, x), _exact(fn, x), dtype)
        assert ulps.max() <= MAX_ULP, (fn, x[ulps.argmax()], ulps.max())
        assert ulps.mean() < 0.5, (fn, ulps.mean())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", BACKENDS)
def test_arguments_beyond_the_fast_range_use_libm(name, dtype):
    """One block holding a few huge arguments among ordinary ones: the huge ones get
    libm's value, the ordinary ones the same bits as in a block without huge ones."""
    be = backend.load(name)
    rng = np.random.default_rng(1)
    x = rng.uniform(-100, 100, 100_000).astype(dtype)       # parallel path: > 32768
    clean_sin, clean_cos = _sin(be, x), _cos(be, x)
    big = np.array([FAST_MAX[dtype] * 1.5, -1e7, 3e38, np.inf, -np.inf, np.nan], dtype)
    where = np.array([5, 17, 40_000, 40_001, 99_998, 99_999])
    x[where] = big
    s, c = _sin(be, x), _cos(be, x)
    others = np.setdiff1d(np.arange(x.size), where)
    np.testing.assert_array_equal(s[others], clean_sin[others])
    np.testing.assert_array_equal(c[others], clean_cos[others])
    for fn, got in (("sin", s), ("cos", c)):
        finite = np.isfinite(big)
        ulps = _ulps(got[where][finite], _exact(fn, big[finite]), dtype)
        assert ulps.max() <= 1, (fn, ulps)
        assert np.isnan(got[where][~finite]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("with_big", [False, True])
def test_in_place_calls_match_out_of_place(name, dtype, with_big):
    be = backend.load(name)
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(70_000) * 30).astype(dtype)
    g = rng.standard_normal(70_000).astype(dtype)
    if with_big:
        x[[3, 50_000]] = FAST_MAX[dtype] * 4
    want_y = be.sine(x, omega=3.0)
    want_g = be.sine_backward(g, x, omega=3.0)
    y = x.copy()
    be.sine(y, omega=3.0, out=y)
    np.testing.assert_array_equal(y, want_y)
    gi = g.copy()
    be.sine_backward(gi, x, omega=3.0, out=gi)
    np.testing.assert_array_equal(gi, want_g)
    xi = x.copy()
    be.sine_backward(g, xi, omega=3.0, out=xi)
    np.testing.assert_array_equal(xi, want_g)


@pytest.mark.parametrize("name", BACKENDS)
def test_omega_scales_the_argument_in_the_array_dtype(name):
    """sin(omega * x) with omega * x rounded to float32 first, as the reference does."""
    be = backend.load(name)
    x = np.random.default_rng(3).standard_normal(50_000).astype(np.float32)
    arg = x * np.float32(30.0)
    ulps = _ulps(be.sine(x, omega=30.0), np.sin(arg.astype(np.float64)), np.float32)
    assert ulps.max() <= MAX_ULP
