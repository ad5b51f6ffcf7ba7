"""Streaming stores for large elementwise outputs (kernels/streaming.py): both compiled
backends compute each block into an L1 tile and stream it out when the output reaches
the threshold. The streamed path must give the plain path's bits on every element,
whatever the output's alignment (head and tail stored plainly), the length (a ragged
last block and tile), the thread count, and in place; the threshold follows
``streaming.set_min_bytes`` and ``FASTNN_STREAM_MIN_BYTES``."""
import numpy as np
import pytest

import fastnn
from fastnn import backend
from fastnn.kernels import streaming
from subprocess_helpers import run_python

BACKENDS = [name for name in ("numba", "cython") if name in backend.backends()]

# the ops that stream (memory-bound), and transcendental ones that must not change either
STREAMED = ["relu", "leaky_relu", "hardtanh", "hardsigmoid", "hardswish", "softsign"]
PLAIN = ["sigmoid", "gelu", "softplus", "mish"]
N = 8 * 4096 + 1001   # over the numba backend's parallel minimum (32768), ragged blocks


@pytest.fixture
def always_stream():
    previous = streaming.set_min_bytes(0)
    yield
    streaming.set_min_bytes(previous)


def _both_paths(call):
    """(streamed result, plain result) of call(), which must return a fresh array."""
    previous = streaming.set_min_bytes(0)
    try:
        streamed = call()
        streaming.set_min_bytes(1 << 62)
        plain = call()
    finally:
        streaming.set_min_bytes(previous)
    return streamed, plain


def _inputs(dtype, n=N, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n + 40) * 4).astype(dtype)
    x[:6] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 3.0]
    g = rng.standard_normal(n + 40).astype(dtype)
    return x, g


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("offset", [0, 1, 5])
@pytest.mark.parametrize("name", BACKENDS)
def test_streamed_outputs_equal_plain_ones(name, offset, dtype):
    from fastnn.kernels.numba_cpu import config
    assert N >= config.PARALLEL_MIN    # else numba runs its serial loop, which never streams
    be = backend.load(name)
    x, g = _inputs(dtype)
    x, g = x[offset:offset + N], g[offset:offset + N]   # inputs and outputs off alignment
    for op in STREAMED + PLAIN:
        def forward():
            out = np.empty(N + 16, dtype)[offset:offset + N]
            return getattr(be, op)(x, out=out)

        def backward():
            out = np.empty(N + 16, dtype)[offset:offset + N]
            return getattr(be, op + "_backward")(g, x, out=out)

        for call in (forward, backward):
            streamed, plain = _both_paths(call)
            np.testing.assert_array_equal(streamed, plain, err_msg=f"{name} {op}")
    mask = np.where(x > 0, 2.0, 0.0).astype(dtype)      # dropout's backward: g * mask
    streamed, plain = _both_paths(lambda: be.dropout_backward(g, mask))
    np.testing.assert_array_equal(streamed, plain)
    np.testing.assert_array_equal(streamed, g * mask)


@pytest.mark.parametrize("name", BACKENDS)
def test_streamed_outputs_are_right(name, always_stream):
    be = backend.load(name)
    x, g = _inputs(np.float32)
    x, g = x[:N], g[:N]
    np.testing.assert_array_equal(be.relu(x), np.where(x < 0, 0, x))
    y = np.where(x < 0, 0, x)
    np.testing.assert_array_equal(be.relu_backward(g, be.relu(x)), np.where(y <= 0, 0, g))
    np.testing.assert_allclose(be.hardtanh(x, -0.5, 0.75), np.clip(x, -0.5, 0.75))
    slope = np.where(x > 0, 1, 0.1).astype(np.float32)
    np.testing.assert_allclose(be.leaky_relu_backward(g, x, 0.1, out=np.empty_like(g)),
                               g * slope, rtol=1e-6)


@pytest.mark.parametrize("name", BACKENDS)
def test_streamed_in_place_equals_out_of_place(name, always_stream):
    be = backend.load(name)
    x, g = _inputs(np.float32)
    x, g = x[:N], g[:N]
    for op in STREAMED:
        inplace = x.copy()
        getattr(be, op)(inplace, out=inplace)
        np.testing.assert_array_equal(inplace, getattr(be, op)(x), err_msg=op)
        grad = g.copy()
        getattr(be, op + "_backward")(grad, x, out=grad)
        np.testing.assert_array_equal(grad, getattr(be, op + "_backward")(g, x), err_msg=op)


@pytest.mark.parametrize("name", BACKENDS)
def test_streamed_outputs_agree_across_thread_counts(name, always_stream):
    be = backend.load(name)
    x, g = _inputs(np.float64, n=5 * N)
    before = fastnn.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            fastnn.set_num_threads(threads)
            results.append((be.relu(x), be.hardswish_backward(g, x)))
    finally:
        fastnn.set_num_threads(before)
    for relu, hardswish_backward in results[1:]:
        np.testing.assert_array_equal(relu, results[0][0])
        np.testing.assert_array_equal(hardswish_backward, results[0][1])


def test_the_threshold_is_set_validated_and_restored():
    default = streaming.min_bytes()
    assert streaming.set_min_bytes(1234) == default
    assert streaming.min_bytes() == 1234
    streaming.set_min_bytes(None)
    assert streaming.min_bytes() == default
    for bad in (-1, 2.5, "big"):
        with pytest.raises(ValueError):
            streaming.set_min_bytes(bad)
    assert streaming.min_bytes() == default


def test_the_environment_sets_the_threshold_and_bad_values_are_errors():
    code = """
        import numpy as np, fastnn
        from fastnn.kernels import streaming
        print(streaming.min_bytes())
        """
    proc = run_python(code, FASTNN_STREAM_MIN_BYTES="4096")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["4096"]
    proc = run_python(code, FASTNN_STREAM_MIN_BYTES="lots")
    assert proc.returncode != 0
    assert "FASTNN_STREAM_MIN_BYTES must be an integer" in proc.stderr


@pytest.mark.skipif("numba" not in BACKENDS, reason="numba is not installed")
def test_numba_runs_its_streamed_variant_past_the_threshold_only():
    from fastnn.kernels.numba_cpu import activations
    be = backend.load("numba")
    x = np.linspace(-1, 1, N, dtype=np.float32)
    kernel = activations._softsign
    calls = []
    streamed = kernel.streamed
    kernel.streamed = lambda *args: calls.append(args[0]) or streamed(*args)
    try:
        previous = streaming.set_min_bytes(x.nbytes + 1)
        be.softsign(x)
        assert calls == []
        streaming.set_min_bytes(x.nbytes)
        np.testing.assert_allclose(be.softsign(x), x / (1 + np.abs(x)), rtol=1e-6)
        assert calls == [fastnn.get_num_threads()]
        assert activations._sigmoid.streamed is None   # compute-bound: never streams
    finally:
        kernel.streamed = streamed
        streaming.set_min_bytes(previous)
