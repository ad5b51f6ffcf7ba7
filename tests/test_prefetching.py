"""Software prefetch of the elementwise kernels' inputs (kernels/prefetching.py): on,
except on AMD CPUs (it slowed them down there); FASTNN_PREFETCH=0/1 says otherwise.
Prefetching never changes a result: each backend's two variants give the same bits."""
import numpy as np
import pytest

from fastnn import backend as registry
from fastnn import mkl_blas
from fastnn.kernels import prefetching


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(prefetching, "_enabled", None)
    monkeypatch.delenv("FASTNN_PREFETCH", raising=False)
    return monkeypatch


@pytest.mark.parametrize("vendor, expected", [("AuthenticAMD", False), ("GenuineIntel", True),
                                              ("", True)])
def test_prefetching_follows_the_cpu_vendor(fresh, vendor, expected):
    fresh.setattr(mkl_blas, "cpu_vendor", lambda: vendor)
    assert prefetching.enabled() is expected


@pytest.mark.parametrize("value, expected", [("0", False), ("1", True)])
def test_environment_overrides_the_vendor(fresh, value, expected):
    fresh.setattr(mkl_blas, "cpu_vendor", lambda: "AuthenticAMD" if expected else "GenuineIntel")
    fresh.setenv("FASTNN_PREFETCH", value)
    assert prefetching.enabled() is expected


def test_environment_value_is_checked(fresh):
    fresh.setenv("FASTNN_PREFETCH", "yes")
    with pytest.raises(ValueError, match="FASTNN_PREFETCH"):
        prefetching.enabled()


def _data(n=100003):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(n) * 6).astype(np.float32)
    x[:5] = [np.nan, np.inf, -np.inf, 0.0, 30.0]
    return x, rng.standard_normal(n).astype(np.float32)


@pytest.mark.skipif("cython" not in registry.backends(), reason="Cython backend not built")
def test_cython_prefetching_switch_keeps_the_bits():
    from fastnn.kernels.cython import _activations
    be = registry.load("cython")
    x, g = _data()
    results = {}
    for on in (True, False):
        _activations.set_prefetching(on)
        results[on] = [be.gelu(x), be.gelu_backward(g, x), be.sigmoid(x), be.mish(x)]
    _activations.set_prefetching(prefetching.enabled())
    for a, b in zip(results[True], results[False]):
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.skipif("numba" not in registry.backends(), reason="numba not installed")
def test_numba_blocked_variant_without_prefetch_keeps_the_bits():
    # the variant this host does not run, compiled here, against the one it runs
    from fastnn.kernels.numba_cpu import activations, config
    kernel = activations._gelu
    other = config._compile_blocked(kernel.serial.py_func, kernel.serial,
                                    prefetch=not prefetching.enabled())
    x, _ = _data()
    expected, got = np.empty_like(x), np.empty_like(x)
    kernel.parallel(x, expected)
    other(x, got)
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
