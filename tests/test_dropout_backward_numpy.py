"""Dropout's backward, grad_out * mask, rounds the same in any loop: where a compiled
backend's kernel would run on one thread and not stream its output, both CPU backends
leave it to np.multiply, the faster there (kernels/numpy_product.py), and keep their
parallel kernels for the rest."""
import numpy as np
import pytest

import fastnn
from fastnn import backend
from fastnn.kernels import numpy_product

COMPILED = [name for name in ("numba", "cython") if name in backend.backends()]


def _break_kernel(name, monkeypatch):
    """Make the backend's compiled product raise, so a call that reaches it says so."""
    def kernel(*args, **kwargs):
        raise AssertionError("the compiled product ran")
    if name == "numba":
        from fastnn.kernels.numba_cpu import dropout
        monkeypatch.setattr(dropout, "_multiply", kernel)
    else:
        from fastnn.kernels import cython
        monkeypatch.setattr(cython, "_binary", kernel)


@pytest.fixture
def threads():
    old = fastnn.get_num_threads()
    yield fastnn.set_num_threads
    fastnn.set_num_threads(old)


@pytest.mark.parametrize("name", COMPILED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_one_thread_products_go_to_numpy_with_its_bits(name, dtype, monkeypatch, threads):
    rng = np.random.default_rng(3)
    be = backend.load(name)
    _break_kernel(name, monkeypatch)
    threads(2)
    g = rng.standard_normal((32, 100)).astype(dtype)          # below the parallel size
    mask = (rng.random(g.shape) > 0.3).astype(dtype) / dtype(0.7)
    np.testing.assert_array_equal(be.dropout_backward(g, mask), g * mask)
    out = np.empty_like(g)
    assert be.dropout_backward(g, mask, out=out) is out
    np.testing.assert_array_equal(out, g * mask)
    big = rng.standard_normal((128, 784)).astype(dtype)       # parallel size
    big_mask = (rng.random(big.shape) > 0.3).astype(dtype) / dtype(0.7)
    with pytest.raises(AssertionError, match="compiled product ran"):
        be.dropout_backward(big, big_mask)                    # 2 threads: the kernel's
    threads(1)
    np.testing.assert_array_equal(be.dropout_backward(big, big_mask), big * big_mask)


def test_the_rule_follows_size_threads_and_streaming(threads):
    threads(2)
    assert numpy_product.numpy_multiplies(4 * 32767, 32767)
    assert not numpy_product.numpy_multiplies(4 * 32768, 32768)
    threads(1)
    assert numpy_product.numpy_multiplies(4 * 32768, 32768)
    from fastnn.kernels import streaming
    old = streaming.set_min_bytes(0)       # streamed outputs stay with the kernels
    try:
        assert not numpy_product.numpy_multiplies(4 * 32768, 32768)
    finally:
        streaming.set_min_bytes(old)


def test_parallel_min_is_the_numba_backends():
    from fastnn.kernels.numba_cpu import config
    assert numpy_product.PARALLEL_MIN == config.PARALLEL_MIN


@pytest.mark.skipif("numba" not in backend.backends(), reason="needs the numba backend")
def test_fastnn_compile_still_compiles_the_numba_product():
    # `fastnn compile` runs each op on small arrays, which go to NumPy: it must still
    # compile the kernel that larger arrays run
    import numba
    from fastnn.kernels.numba_cpu import config, dropout
    g = np.ones(6, np.float32)
    with config.compiling_every_variant():
        np.testing.assert_array_equal(dropout.dropout_backward(g, g * 2), g * 2)
    array = numba.typeof(g)
    for variant, prefix in dropout._multiply.variants():
        assert (*map(numba.typeof, prefix), array, array, array) in variant.signatures
