"""The Linear forward's transposed product (kernels/gemm_shapes.py): for a short batch of
a wide layer both CPU backends compute y.T = W @ x.T into a kept scratch and read it
transposed in the fused bias/activation pass. Same results as the reference on both
sides of the rule's bounds, for any thread count, and no allocation once warm."""
import tracemalloc

import numpy as np
import pytest

import fastnn
from fastnn import backend, optable
from fastnn.kernels import reference
from fastnn.kernels.gemm_shapes import (TRANSPOSED_MAX_ROWS, TRANSPOSED_MIN_FEATURES,
                                        TRANSPOSED_MIN_FEATURES_MKL, transposed_forward)

COMPILED = [name for name in ("numba", "cython") if name in backend.backends()]
if not COMPILED:
    pytest.skip("no compiled CPU backend", allow_module_level=True)


def _layer(seed, n, fin, fout):
    """float32 x (n, fin), w (fout, fin), b (fout,) from one seed."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, fin)).astype(np.float32),
            rng.standard_normal((fout, fin)).astype(np.float32),
            rng.standard_normal(fout).astype(np.float32))


def test_rule_bounds():
    assert transposed_forward(TRANSPOSED_MAX_ROWS, TRANSPOSED_MIN_FEATURES)
    assert not transposed_forward(TRANSPOSED_MAX_ROWS + 1, TRANSPOSED_MIN_FEATURES)
    assert not transposed_forward(TRANSPOSED_MAX_ROWS, TRANSPOSED_MIN_FEATURES - 1)
    # with MKL computing the product, only from TRANSPOSED_MIN_FEATURES_MKL outputs
    assert transposed_forward(TRANSPOSED_MAX_ROWS, TRANSPOSED_MIN_FEATURES_MKL, mkl=True)
    assert not transposed_forward(TRANSPOSED_MAX_ROWS, TRANSPOSED_MIN_FEATURES_MKL - 1,
                                  mkl=True)
    assert not transposed_forward(TRANSPOSED_MAX_ROWS + 1, TRANSPOSED_MIN_FEATURES_MKL,
                                  mkl=True)


@pytest.mark.parametrize("name", COMPILED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 5, 64), (32, 70, 100), (128, 9, 64), (129, 9, 64),
                                   (128, 9, 63), (1, 5, 128), (128, 9, 128), (128, 9, 127),
                                   (64, 784, 128)])
@pytest.mark.parametrize("activation", optable.FUSABLE_ACTIVATIONS)
def test_matches_the_reference_on_both_sides_of_the_rule(name, dtype, shape, activation):
    be = backend.load(name)
    n, fin, fout = shape
    rng = np.random.default_rng(n + fin + fout)
    x = rng.standard_normal((n, fin)).astype(dtype)
    w = (rng.standard_normal((fout, fin)) / np.sqrt(fin)).astype(dtype)
    for b in (rng.standard_normal(fout).astype(dtype), None):
        out = np.full((n, fout), np.nan, dtype)
        y = be.linear_forward(x, w, b, activation, 0.1, out=out)
        assert y is out
        expected = reference.linear_forward(x, w, b, activation, 0.1)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(y, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", COMPILED)
def test_one_and_two_threads_agree(name):
    be = backend.load(name)
    x, w, b = _layer(0, 32, 300, 256)
    before = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(1)
        one = be.linear_forward(x, w, b, "tanh")
        fastnn.set_num_threads(2)
        two = be.linear_forward(x, w, b, "tanh")
    finally:
        fastnn.set_num_threads(before)
    # BLAS may split the 300-long sums between threads (OpenBLAS on AMD Zen does): float32
    # rounding of partial sums up to ~50 then differs by a few 1e-5 near zero outputs
    np.testing.assert_allclose(one, two, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", COMPILED)
def test_no_allocation_once_warm(name):
    be = backend.load(name)
    x, w, b = _layer(1, 32, 100, 128)
    out = np.empty((32, 128), np.float32)
    be.linear_forward(x, w, b, "relu", out=out)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        be.linear_forward(x, w, b, "relu", out=out)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    domain = [tracemalloc.DomainFilter(True, np.lib.tracemalloc_domain)]
    diff = after.filter_traces(domain).compare_to(before.filter_traces(domain), "filename")
    assert sum(s.size_diff for s in diff if s.size_diff > 0) == 0
