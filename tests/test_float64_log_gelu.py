"""float64 log, log1p and GELU on the compiled backends: vectorizable versions
(_fastnn_math.h's fnn_log, fnn_log1p, fnn_log1p_small, fnn_gelu, fnn_gelu_grad; numba's
vmath._log64, _log1p64, _log1p_small64, _gelu64, _gelu_grad64) in place of glibc's
scalar log, log1p and erfc, which held float64 softplus, BCE and GELU at 1.5-1.9x
PyTorch's time. log and log1p against the correctly rounded values (long double) over
every binade, GELU and its slope against mpmath, both tails included (PyTorch's
1 + erf(x / sqrt 2) is only absolutely accurate on the left), the specials against
PyTorch and libm."""
import math

import numpy as np
import pytest

import fastnn
from fastnn import ops
from test_float64_exp import COMPILED, LD, _ulps

pytestmark = pytest.mark.skipif(not COMPILED, reason="no compiled CPU backend")


def _binades(rng, lo, hi, n):
    """n magnitudes spread evenly over the binades 10**lo .. 10**hi."""
    return 10.0 ** rng.uniform(lo, hi, n)


@pytest.fixture(scope="module")
def vmath_loops():
    """numba loops applying vmath's log, log1p, log1p_small (float64: _log64, ...)."""
    pytest.importorskip("numba")
    from numba import njit
    from fastnn.kernels.numba_cpu import vmath

    @njit
    def apply(x, which):
        out = np.empty_like(x)
        for i in range(x.shape[0]):
            if which == 0:
                out[i] = vmath.log(x[i])
            elif which == 1:
                out[i] = vmath.log1p(x[i])
            else:
                out[i] = vmath.log1p_small(x[i])
        return out
    return apply


def test_numba_log_within_1_ulp_and_log1p_within_1_2_over_every_binade(vmath_loops):
    """log1p's worst is where e ln2 and log1p(f) cancel (u = 1 + x just above sqrt 2:
    1.13 ulp at x = 0.4609)."""
    rng = np.random.default_rng(5)
    x = np.concatenate([_binades(rng, -323.5, 308.2, 100_000), rng.uniform(0, 3, 50_000),
                        [5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
                         math.sqrt(0.5), math.sqrt(2), 1.0, 2.0, 0.5]])
    assert _ulps(vmath_loops(x, 0), np.log(x.astype(LD))).max() <= 1
    x1 = np.concatenate([x, -_binades(rng, -323.5, 0, 100_000), rng.uniform(-1, 1, 50_000),
                         [-0.5, math.sqrt(0.5) - 1, math.sqrt(2) - 1, 2.0 ** -53,
                          -2.0 ** -54]])
    assert _ulps(vmath_loops(x1, 1), np.log1p(x1.astype(LD))).max() <= 1.2
    small = np.concatenate([rng.uniform(0, 1, 50_000), _binades(rng, -323.5, 0, 50_000),
                            [0.46088606693378015, 1.0]])
    assert _ulps(vmath_loops(small, 2), np.log1p(small.astype(LD))).max() <= 1.2


def test_numba_log_and_log1p_specials_as_libm(vmath_loops):
    x = np.array([0.0, -0.0, 1.0, -1.0, -2.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324,
                  1e-300, -1e-300, 1.7976931348623157e308])
    with np.errstate(divide="ignore", invalid="ignore"):
        for which, libm in ((0, np.log), (1, np.log1p)):
            got, want = vmath_loops(x, which), libm(x)
            np.testing.assert_array_equal(got, want)
            assert (np.signbit(got) == np.signbit(want))[~np.isnan(want)].all()


def _bce_terms(backend, p, target):
    """-log(p) (target 1) or -log1p(-p) (target 0) per value: BCE of one value at a time."""
    with fastnn.use_backend(backend):
        return np.array([ops.bce_loss(np.array([v]), np.array([target], np.float64))[0]
                         for v in p])


@pytest.mark.parametrize("backend", COMPILED)
def test_bce_takes_log_within_1_ulp_and_log1p_within_1_2(backend):
    """BCE's float64 terms: log(p) and log1p(-p) (not clamped above p = 3.8e-44)."""
    rng = np.random.default_rng(6)
    p = np.concatenate([_binades(rng, -43, 0, 600), rng.uniform(0, 1, 300),
                        [1.0, 0.5, 1 - 2.0 ** -53, 2.0 ** -60]])
    p = p[p <= 1]
    assert _ulps(-_bce_terms(backend, p, 1.0), np.log(p.astype(LD))).max() <= 1
    assert _ulps(-_bce_terms(backend, p[p < 1], 0.0),
                 np.log1p(-p[p < 1].astype(LD))).max() <= 1.2


@pytest.mark.parametrize("backend", COMPILED)
def test_softplus_within_2_ulp(backend):
    """log1p(e) of e = exp(-|x|) in (0, 1] (and + x above 0): the exp's ulp and the
    log1p's; full relative accuracy down to where e^x is subnormal."""
    rng = np.random.default_rng(7)
    m = _binades(rng, -300, math.log10(20), 100_000)
    x = np.concatenate([m, -m, -rng.uniform(20, 745, 20_000), [0.0, 20.0, -20.0]])
    with fastnn.use_backend(backend):
        got = ops.softplus(x)
    x = x.astype(LD)
    assert _ulps(got, np.log1p(np.exp(x))).max() <= 2


def _gelu_reference(x):
    """x Phi(x) and Phi(x) + x phi(x), and the larger term of the latter, to 25 digits."""
    import mpmath as mp
    with mp.workdps(25):
        rows = []
        for v in x:
            t = mp.mpf(float(v))
            phi, density = mp.ncdf(t), mp.npdf(t)
            rows.append((float(t * phi), float(phi + t * density),
                         float(max(phi, abs(t * density)))))
    return np.array(rows).T


def _gelu_arguments():
    rng = np.random.default_rng(8)
    m = _binades(rng, -300, math.log10(40), 3_000)
    near_0 = rng.uniform(-0.5, 0.5, 2_000)   # the series's range and its edge, 0.4
    return np.concatenate([rng.uniform(-39, 39, 3_000), rng.standard_normal(2_000) * 3,
                           m, -m, near_0,
                           [-38.5, -37.5, -8.3, -5.0, -0.75, 0.75, 5.0, 39.0, 0.4, -0.4,
                            np.nextafter(0.4, 0), np.nextafter(-0.4, 0)]])


@pytest.mark.parametrize("backend", COMPILED)
def test_gelu_and_its_slope_within_4_ulp_both_tails_included(backend):
    """GELU within 4 ulp of x Phi(x), relatively in the left tail down to the
    subnormals, and within 1 below |x| = 0.4, where x (1/2 + x S(x*x)) replaces Phi(-|x|)
    from the exp and the Mills ratio (5-6 ulp at x = 0.03, -0.135, -0.336 before: 1/2
    +- Phi(-|x|) at the bottom of its binade); the slope within 6 ulp of its larger term
    (it crosses 0 at x = -0.75)."""
    pytest.importorskip("mpmath")
    x = _gelu_arguments()
    gelu, slope, scale = _gelu_reference(x)
    with fastnn.use_backend(backend):
        got = ops.gelu(x)
        got_slope = ops.gelu_backward(np.ones_like(x), x)
    ulps = _ulps(got, gelu.astype(LD))
    assert ulps[np.abs(x) < 0.4].max() <= 1, x[np.argmax(np.where(np.abs(x) < 0.4, ulps, 0))]
    assert ulps.max() <= 4, x[np.argmax(ulps)]
    assert np.count_nonzero((got < 0) & (got > -2.2250738585072014e-308)) > 10
    spacing = np.maximum(np.spacing(scale), 5e-324)
    assert (np.abs(got_slope - slope) / spacing).max() <= 6


def _specials():
    return np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e308, -1e308, 800.0, -800.0,
                     40.0, -40.0, 38.7, -38.7, 1e-310, -1e-310, 5e-324, -5e-324])


def test_gelu_near_0_the_same_bits_on_both_backends():
    """The series below |x| = 0.4 (fnn_gelu_small, vmath._gelu_small64) written alike:
    the compiled backends agree to the bit there, as beyond it."""
    if len(COMPILED) < 2:
        pytest.skip("one compiled backend")
    x = np.random.default_rng(9).uniform(-0.45, 0.45, 20_000)
    got = []
    for b in COMPILED:
        with fastnn.use_backend(b):
            got.append(ops.gelu(x))
    np.testing.assert_array_equal(got[0], got[1])


@pytest.mark.parametrize("backend", COMPILED)
def test_gelu_specials_as_pytorch(backend):
    torch = pytest.importorskip("torch")
    x = _specials()
    xt = torch.from_numpy(x)
    with fastnn.use_backend(backend):
        got = [ops.gelu(x), ops.gelu_backward(np.ones_like(x), x)]
    want = [torch.nn.functional.gelu(xt).numpy(),
            torch.ops.aten.gelu_backward(torch.ones_like(xt), xt).numpy()]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
        number = ~np.isnan(w)
        np.testing.assert_array_equal(np.signbit(g[number]), np.signbit(w[number]))
