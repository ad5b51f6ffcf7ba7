"""The vectorizable float32 exp/tanh/gelu/erf of the numba backend against float64 libm."""
import math

import numpy as np
import pytest

pytest.importorskip("numba")
from numba import njit  # noqa: E402
from scipy.special import erfc as scipy_erfc  # noqa: E402

from fastnn.kernels.numba_cpu import vmath  # noqa: E402


@njit
def _apply(x, which):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        if which == 0:
            out[i] = vmath.exp(x[i])
        elif which == 1:
            out[i] = vmath.tanh(x[i])
        else:
            out[i] = vmath.gelu(x[i])
    return out


def _grid():
    rng = np.random.default_rng(0)
    return np.concatenate([np.linspace(-10, 10, 200_001), rng.standard_normal(100_000) * 30,
                           np.array([0.0, -0.0, 1e-30, -1e-30, 1e-7, 85.0, -85.0])]
                          ).astype(np.float32)


def _ulps(actual, expected):
    """|actual - expected| in units of float32's spacing at expected."""
    spacing = np.spacing(np.abs(expected).astype(np.float32)).astype(np.float64)
    return np.abs(actual.astype(np.float64) - expected) / spacing


def test_exp_within_2_ulp_in_the_normal_range():
    x = _grid()
    x = x[(x > -87.3) & (x <= 88.3)]  # (above: test_exp_core_over_its_whole_range)
    assert _ulps(_apply(x, 0), np.exp(x.astype(np.float64))).max() <= 2


def test_tanh_within_4_ulp():
    x = _grid()
    assert _ulps(_apply(x, 1), np.tanh(x.astype(np.float64))).max() <= 4


def _exact_gelu(x):
    x = x.astype(np.float64)
    return x * 0.5 * scipy_erfc(-x / np.sqrt(2))


def test_gelu_within_1e7_plus_one_ulp():
    x = _grid()
    exact = _exact_gelu(x)
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert (np.abs(_apply(x, 2) - exact) / (1e-7 + ulp)).max() <= 1.0


@njit
def _apply_log(x, plus_one):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = vmath.log1p(x[i]) if plus_one else vmath.log(x[i])
    return out


def test_log_within_1_5_ulp_over_every_binade_and_its_edges():
    x = np.arange(1, 0x7F800000, 997, dtype=np.uint32).view(np.float32)  # subnormals too
    assert _ulps(_apply_log(x, False), np.log(x.astype(np.float64))).max() <= 1.5
    edges = _apply_log(np.array([0.0, -0.0, -1.0, np.inf, -np.inf, np.nan], np.float32), False)
    assert list(edges[:2]) == [-np.inf, -np.inf] and np.isnan(edges[2]) and edges[3] == np.inf
    assert np.isnan(edges[4]) and np.isnan(edges[5])


def test_log1p_within_2_ulp_down_to_tiny_values():
    """log1p(x) = log(u) + ((1 + x) - u) for u = 1 + x rounded: relative accuracy near
    0 (log(1 + x) alone was 0 for |x| < 2^-25 and 19% off at x = -1e-7, which made
    float32 BCE's log(1 - p) of a confident p off PyTorch's log1p)."""
    tiny = 2.0 ** -np.arange(1, 150)
    x = np.concatenate([np.linspace(-0.9999, 4, 100_001), tiny, -tiny,
                        [1e-7, -1e-7, 1e-20, -1e-20, 1e30, 3e38]]).astype(np.float32)
    exact = np.log1p(x.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert (np.abs(_apply_log(x, True) - exact) / ulp).max() <= 2.0
    edges = _apply_log(np.array([-1.0, np.inf, np.nan, -2.0], np.float32), True)
    assert edges[0] == -np.inf and edges[1] == np.inf and np.isnan(edges[2:]).all()


@njit
def _apply_log1p_small(x):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = vmath.log1p_small(x[i])
    return out


def test_log1p_small_within_2_5_ulp_on_0_to_1_and_tiny_values():
    """softplus's log1p(e**-|z|): relative accuracy down to the smallest normals."""
    x = np.concatenate([np.linspace(0, 1, 200_001),
                        2.0 ** -np.arange(1, 127)]).astype(np.float32)
    exact = np.log1p(x.astype(np.float64))
    assert _apply_log1p_small(x)[0] == 0.0
    assert _ulps(_apply_log1p_small(x)[1:], exact[1:]).max() <= 2.5


def test_edges_nan_and_infinities():
    x = np.array([np.nan, np.inf, -np.inf, -100.0, 100.0], np.float32)
    e = _apply(x, 0)
    assert math.isnan(e[0]) and e[1] == np.inf and e[2] == 0 and e[3] == 0 and e[4] == np.inf
    t = _apply(x, 1)
    assert math.isnan(t[0]) and list(t[1:]) == [1, -1, -1, 1]
    f = _apply(x, 2)  # gelu: -inf * Phi(-inf) is -inf * 0 (NaN), as PyTorch's
    assert math.isnan(f[0]) and f[1] == np.inf and math.isnan(f[2]) and list(f[3:]) == [0, 100]
    assert np.signbit(f[3])


def test_float64_exp_within_1_ulp_of_libm():
    """float64 exp is vmath._exp64 (tests/test_float64_exp.py has its full range; GELU's
    float64 version is in tests/test_float64_log_gelu.py)."""
    x = np.linspace(-20, 20, 1001)
    expected = np.array([math.exp(v) for v in x])
    assert (np.abs(_apply(x, 0) - expected) / np.spacing(expected)).max() <= 1


@njit
def _apply_core(x):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = vmath.exp_core(x[i])
    return out


@njit
def _apply_gelu_grad(x):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = vmath.gelu_grad(x[i])
    return out


def test_float64_exp_core_over_its_whole_range():
    """exp_core in float64 takes exp_limits' -708 .. 709 (2**n normal): within 1 ulp."""
    x = np.concatenate([np.linspace(-708, 709, 400_001), [-708.0, 709.0, 0.0, -0.0]])
    y = _apply_core(x)
    expected = np.array([math.exp(v) for v in x])
    assert (np.abs(y - expected) / np.spacing(expected)).max() <= 1


def _float32s_from(lo, hi):
    """Every float32 from lo to hi (both > 0), in order."""
    return np.arange(np.float32(lo).view(np.int32), np.float32(hi).view(np.int32) + 1,
                     dtype=np.int32).view(np.float32)


def test_exp_core_over_its_whole_range():
    """exp_core has no special cases: -87.3 .. 88.72 (up to float32's largest value).
    Within 2 ulp up to 88.3; above, 2**n stops at 2**127 and the polynomial runs on
    r up to ln2 instead of ln2/2: within 5.5 ulp, checked at every float32 there (55k
    of them; 5.33 at 88.72267, and 60 above 5 in 88.719 .. 88.7228, which the grid
    misses)."""
    top = _float32s_from(88.3, vmath._EXP_HI)
    x = np.concatenate([np.linspace(-87.3, 88.3, 400_001).astype(np.float32), top])
    y = _apply_core(x)
    assert np.isfinite(y).all()
    ulps = _ulps(y, np.exp(x.astype(np.float64)))
    assert ulps[x <= 88.3].max() <= 2
    assert ulps.max() <= 5.5
    # exp: exp_core's result up to its clamp
    assert _ulps(_apply(top, 0), np.exp(top.astype(np.float64))).max() <= 5.5


def test_gelu_grad_within_3e7_absolute_of_phi_plus_the_density_term():
    """float32: Phi from the A&S-form fit given e**(-x*x/2) (within 3e-7 absolute), the
    density term from the same exp."""
    x32 = _grid()
    x = x32.astype(np.float64)
    exact = 0.5 * scipy_erfc(-x / np.sqrt(2)) + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
    assert np.abs(_apply_gelu_grad(x32) - exact).max() < 3e-7


@njit
def _row_max(x):
    return vmath.row_max(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_max_every_length_and_position(dtype):
    rng = np.random.default_rng(4)
    for c in list(range(1, 20)) + [1000, 1003]:
        for where in {0, c // 2, c - 1}:
            x = rng.standard_normal(c).astype(dtype)
            x[where] = 10.0
            assert _row_max(x) == 10.0
    assert _row_max(np.empty(0, dtype)) == -np.inf
    x = np.array([1.0, np.nan, 3.0, -1.0] * 5, dtype)
    assert _row_max(x) == 3.0   # NaN skipped here; softmax's exp(x - max) propagates it


@njit
def _apply_softplus_parts(x, a):
    e = np.empty_like(x)
    s = np.empty_like(x)
    for i in range(x.shape[0]):
        e[i] = vmath.exp_nonpos_horner(x[i])
        s[i] = vmath.add_log1p_small(a[i], e[i])
    return e, s


def test_softplus_parts_exp_nonpos_horner_and_add_log1p_small():
    """softplus's passes (the Cython backend's forms): exp_nonpos_horner within 2 ulp on
    -87.3 .. 0 (0 below, NaN through), a + log1p(x) within 2.5 ulp of log1p at a = 0
    and within 1.5 ulp of the sum beyond."""
    x = np.concatenate([np.linspace(-87.3, 0, 400_001), -(2.0 ** -np.arange(1, 40)),
                        [-0.0, -87.5, -100.0, -np.inf, np.nan]]).astype(np.float32)
    e, s = _apply_softplus_parts(x, np.zeros_like(x))
    exact_e = np.exp(x[:-5].astype(np.float64))
    assert _ulps(e[:-5], exact_e).max() <= 2
    assert e[-5] == 1 and list(e[-4:-1]) == [0, 0, 0] and np.isnan(e[-1])
    exact_s = np.log1p(e[:-1].astype(np.float64))
    assert _ulps(s[:-1], exact_s).max() <= 2.5 and np.isnan(s[-1])
    a = np.abs(np.random.default_rng(3).standard_normal(x.size) * 10).astype(np.float32)
    _, s = _apply_softplus_parts(x, a)
    exact_s = a[:-1] + np.log1p(e[:-1].astype(np.float64))
    assert _ulps(s[:-1], exact_s).max() <= 1.5
