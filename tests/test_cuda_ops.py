"""The cuda backend, op by op, against the NumPy reference and PyTorch, float32 and
float64, on small shapes; then host/device staging and device-resident training.

Runs wherever ``numba.cuda.is_available()``: on a real GPU in the main test process,
and on a machine without one under Numba's CUDA simulator, in the subprocess that
tests/test_cuda_sim.py starts (NUMBA_ENABLE_CUDASIM=1, small launch sizes so that
grid-stride loops, multi-block grids and multi-tile GEMMs are all exercised).
"""
import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastnn
from fastnn import optable

from conftest import assert_close, torch_loss
from torch_activations import ACT_TORCH, ACTIVATIONS

if "cuda" not in fastnn.backends():
    pytest.skip("no CUDA device: tests/test_cuda_sim.py runs this file under Numba's "
                "CUDA simulator in a subprocess", allow_module_level=True)

from numba import cuda  # noqa: E402

import fastnn.kernels.cuda as C  # noqa: E402
import fastnn.kernels.reference as R  # noqa: E402
from fastnn.kernels.cuda import config  # noqa: E402

torch.set_num_threads(1)


def t(a, grad=False):
    tensor = torch.from_numpy(np.array(a, copy=True))
    return tensor.requires_grad_(grad) if grad else tensor


def ref(op, *args, **kwargs):
    """The reference op on copies of the arguments (ops write in place)."""
    copy = lambda a: np.array(a, copy=True) if isinstance(a, np.ndarray) else a  # noqa: E731
    return getattr(R, op)(*[copy(a) for a in args], **{k: copy(v) for k, v in kwargs.items()})


# ------------------------------------------------------------------- the table
def test_every_op_with_the_table_signature_and_no_reuse():
    for op in optable.op_names():
        spec = optable.op_signature(op)
        got = inspect.signature(getattr(C, op))
        assert list(got.parameters) == list(spec.parameters), op
        for p in spec.parameters.values():
            assert got.parameters[p.name].default == p.default, f"{op}({p.name}=)"
    assert C.REUSES == {}
    info = fastnn.backend_info("cuda")
    assert info["reuses"] == {} and info["gemm"] in ("cublas", "numba")
    assert info["threads_per_block"] == config.THREADS


# ----------------------------------------------------------------------- dense
@pytest.mark.parametrize("activation", optable.FUSABLE_ACTIVATIONS)
@pytest.mark.parametrize("shape,with_bias", [((1, 3, 2), False), ((7, 13, 5), True)])
def test_linear_forward_backward(dtype, rng, activation, shape, with_bias):
    n, fin, fout = shape
    x = rng.standard_normal((n, fin)).astype(dtype)
    w = (rng.standard_normal((fout, fin)) / np.sqrt(fin)).astype(dtype)
    b = rng.standard_normal(fout).astype(dtype) if with_bias else None
    g = rng.standard_normal((n, fout)).astype(dtype)
    y = C.linear_forward(x, w, b, activation, 0.1)
    xt, wt = t(x, True), t(w, True)
    bt = t(b, True) if with_bias else None
    yt = ACT_TORCH[activation](F.linear(xt, wt, bt))
    yt.backward(t(g))
    assert isinstance(y, np.ndarray) and y.dtype == dtype and y.shape == (n, fout)
    assert_close(y, yt.detach().numpy(), dtype)
    assert_close(y, ref("linear_forward", x, w, b, activation, 0.1), dtype)
    gw = np.ones_like(w)  # accumulated into
    gb = np.ones_like(b) if with_bias else None
    g_copy = g.copy()
    gin = C.linear_backward(g, x, w, y, activation, 0.1, gw, gb)
    np.testing.assert_array_equal(g, g_copy)
    assert_close(gin, xt.grad.numpy(), dtype, scale=fin)
    assert_close(gw - 1, wt.grad.numpy(), dtype, scale=n)
    if with_bias:
        assert_close(gb - 1, bt.grad.numpy(), dtype, scale=n)
    assert C.linear_backward(g, x, w, y, activation, 0.1, None, None,
                             need_grad_in=False) is None


@pytest.mark.parametrize("activation", ["identity", "tanh"])
@pytest.mark.parametrize("direct_rows", [None, 4])
def test_linear_backward_overwrites_when_not_accumulating(dtype, rng, monkeypatch, activation,
                                                          direct_rows):
    """accumulate=False (what a Linear layer passes after zero_grad): stale gradients are
    overwritten, by the one-launch column sums and (direct_rows=4: 9 rows in row blocks) by
    the partial sums' second kernel, and by the GEMM with beta = 0."""
    from fastnn.kernels.cuda import dense
    if direct_rows is not None:
        monkeypatch.setattr(dense, "DIRECT_ROWS", direct_rows)
        monkeypatch.setattr(dense, "ROWS_PER_THREAD", 1)
    n, fin, fout = 9, 6, 5
    x = rng.standard_normal((n, fin)).astype(dtype)
    w = rng.standard_normal((fout, fin)).astype(dtype)
    g = rng.standard_normal((n, fout)).astype(dtype)
    y = ref("linear_forward", x, w, None, activation, 0.1)
    want_w, want_b = np.zeros_like(w), np.zeros(fout, dtype)
    R.linear_backward(g, x, w, y, activation, 0.1, want_w, want_b)
    gw, gb = np.full_like(w, np.nan), np.full(fout, 7.0, dtype)
    C.linear_backward(g, x, w, y, activation, 0.1, gw, gb, accumulate=False)
    assert_close(gw, want_w, dtype, scale=n)
    assert_close(gb, want_b, dtype, scale=n)


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_transposes_tiles_and_grid_stride(dtype, rng, monkeypatch, trans_a, trans_b):
    from fastnn.kernels.cuda import gemm
    monkeypatch.setattr(config, "TILE", 3)  # partial tiles on every edge
    monkeypatch.setattr(config, "MAX_BLOCKS", 2)  # fewer blocks than tiles
    m, k, n = 7, 8, 5
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    dc = cuda.to_device(c0)
    gemm.gemm(cuda.to_device(a), cuda.to_device(b), dc, trans_a, trans_b, accumulate=True)
    expected = (a.T if trans_a else a) @ (b.T if trans_b else b) + c0
    assert_close(dc.copy_to_host(), expected, dtype, scale=k)


class _FakeCublas:
    """CuPy's raw cuBLAS bindings as fastnn calls them, on simulator arrays: records the
    stream each product is put on, and computes sgemm/dgemm with cuBLAS's column-major
    arguments (so the row-major mapping of ``_direct_gemm`` is checked too)."""
    CUBLAS_OP_N, CUBLAS_OP_T, CUBLAS_POINTER_MODE_HOST = 0, 1, 0

    def __init__(self, arrays):
        self.arrays = arrays   # {fake address: simulator device array}
        self.stream = "left on the user's stream"
        self.calls = []

    def setStream(self, handle, stream):
        self.stream = stream

    def setPointerMode(self, handle, mode):
        assert mode == self.CUBLAS_POINTER_MODE_HOST

    def _gemm(self, dtype, handle, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c,
              ldc):
        import ctypes
        self.calls.append(self.stream)
        scalar = lambda p: np.frombuffer(  # noqa: E731
            (ctypes.c_char * dtype.itemsize).from_address(p), dtype)[0]

        def column_major(address, rows, cols, ld):
            flat = self.arrays[address].copy_to_host().ravel()
            return flat[:cols * ld].reshape(cols, ld)[:, :rows].T

        op_a = column_major(a, k, m, lda).T if transa else column_major(a, m, k, lda)
        op_b = column_major(b, n, k, ldb).T if transb else column_major(b, k, n, ldb)
        out = self.arrays[c]
        result = scalar(alpha) * (op_a @ op_b) + scalar(beta) * column_major(c, m, n, ldc)
        out.copy_to_device(np.ascontiguousarray(result.T).reshape(out.shape).astype(dtype))

    def sgemm(self, *args):
        self._gemm(np.dtype(np.float32), *args)

    def dgemm(self, *args):
        self._gemm(np.dtype(np.float64), *args)


class _FakeCupyStream:
    def __init__(self, name, log):
        self.name, self.log = name, log

    def __enter__(self):
        self.log.append(("enter", self.name))

    def __exit__(self, *exc):
        self.log.append(("exit", self.name))


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("per_thread", [False, True])
def test_cublas_products_run_on_numba_s_stream(dtype, rng, monkeypatch, trans_a, trans_b,
                                               per_thread):
    """cuBLAS through CuPy runs on the stream numba launches on (the legacy default
    stream, or the per-thread one), not on the stream CuPy's handle was left on or the
    user's current CuPy stream: otherwise its products race with numba's kernels."""
    from types import SimpleNamespace

    from numba import config as numba_config

    from fastnn.kernels.cuda import gemm
    monkeypatch.setattr(numba_config, "CUDA_PER_THREAD_DEFAULT_STREAM", per_thread,
                        raising=False)
    m, k, n = 5, 4, 3
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    da, db, dc = cuda.to_device(a), cuda.to_device(b), cuda.to_device(c0)
    arrays = {1000: da, 2000: db, 3000: dc}
    fake = _FakeCublas(arrays)
    device = SimpleNamespace(get_cublas_handle=lambda: 77)
    log = []
    streams = SimpleNamespace(null=_FakeCupyStream("null", log),
                              ptds=_FakeCupyStream("ptds", log))
    monkeypatch.setattr(gemm, "_cupy", SimpleNamespace(cuda=SimpleNamespace(Stream=streams)))
    monkeypatch.setattr(gemm, "_raw_cublas", (fake, device))
    monkeypatch.setattr(gemm, "_address", lambda d: next(k for k, v in arrays.items()
                                                         if v is d))
    gemm.gemm(da, db, dc, trans_a, trans_b, accumulate=True)
    assert fake.calls == [2 if per_thread else 0]
    expected = (a.T if trans_a else a) @ (b.T if trans_b else b) + c0
    assert_close(dc.copy_to_host(), expected, dtype, scale=k)

    # the CuPy-array path (FASTNN_CUDA_GEMM_DIRECT=0) runs inside CuPy's stream of it
    def cupy_gemm(*args, **kwargs):
        log.append(("gemm", None))
    monkeypatch.setattr(gemm, "_raw_cublas", None)
    monkeypatch.setattr(gemm, "_cupy_gemm", cupy_gemm)
    gemm.gemm(da, db, dc, trans_a, trans_b)
    name = "ptds" if per_thread else "null"
    assert log == [("enter", name), ("gemm", None), ("exit", name)]


@pytest.mark.parametrize("threads, max_blocks, shape", [(32, 2, (150, 37)), (64, 4, (300, 70)),
                                                      (64, 8, (5, 3)), (32, 2, (0, 4))])
@pytest.mark.parametrize("direct_rows", [0, 2048])
def test_column_sums_over_row_and_column_blocks(dtype, rng, monkeypatch, threads, max_blocks,
                                                shape, direct_rows):
    """Bias gradients: one launch over all rows (direct_rows 2048), or several row blocks
    (float64 partials added in a second pass); several column blocks, one block, and an
    empty batch."""
    from fastnn.kernels.cuda import dense
    monkeypatch.setattr(config, "THREADS", threads)
    monkeypatch.setattr(config, "MAX_BLOCKS", max_blocks)
    monkeypatch.setattr(dense, "DIRECT_ROWS", direct_rows)
    g = rng.standard_normal(shape).astype(dtype)
    start = rng.standard_normal(shape[1]).astype(dtype)
    out = cuda.to_device(start)
    dense.column_sums_add(cuda.to_device(g), out)
    assert_close(out.copy_to_host(), start + g.sum(axis=0, dtype=np.float64), dtype)


@pytest.mark.parametrize("direct_rows", [0, 1 << 20])
def test_column_sums_of_many_float32_rows_are_summed_in_float64(monkeypatch, direct_rows):
    """The bias gradients (Linear, Conv2d, LayerNorm) of a long float32 batch to the float32
    rounding of the exact sums, as the CPU backends' (222cf5c): each thread's sum is a
    float64. Under the simulator that took an explicit np.float64: NumPy 2 keeps 0.0 + a
    float32 a float32 (16384 rows: 2e-7 off)."""
    import math
    from fastnn.kernels.cuda import dense
    monkeypatch.setattr(dense, "DIRECT_ROWS", direct_rows)
    g = (1 + 0.1 * np.random.default_rng(3).standard_normal((1 << 14, 3))).astype(np.float32)
    exact = np.array([math.fsum(g[:, j].astype(np.float64).tolist()) for j in range(3)])
    out = cuda.to_device(np.zeros(3, np.float32))
    dense.column_sums_add(cuda.to_device(g), out)
    np.testing.assert_allclose(out.copy_to_host(), exact, rtol=7e-8)


@pytest.mark.parametrize("activation, slope", [("relu", 0.0), ("leaky_relu", 0.2),
                                               ("sigmoid", 0.0), ("tanh", 0.0)])
@pytest.mark.parametrize("direct_rows", [0, 2048])
def test_column_sums_with_activation_backward(dtype, rng, monkeypatch, activation, slope,
                                              direct_rows):
    """The Linear backward's fused kernel: g_out = g * act'(y) and out += its column sums."""
    from fastnn.kernels.cuda import dense
    monkeypatch.setattr(config, "MAX_BLOCKS", 3)
    monkeypatch.setattr(dense, "DIRECT_ROWS", direct_rows)
    g = rng.standard_normal((77, 45)).astype(dtype)
    z = rng.standard_normal(g.shape)
    y = {"relu": np.maximum(z, 0), "leaky_relu": np.where(z > 0, z, slope * z),
         "sigmoid": 1 / (1 + np.exp(-z)), "tanh": np.tanh(z)}[activation].astype(dtype)
    act_grad = {"relu": (y > 0) * 1.0, "leaky_relu": np.where(y > 0, 1.0, slope),
                "sigmoid": y * (1.0 - y), "tanh": 1.0 - y * y}[activation]
    expected = (g * act_grad).astype(dtype)
    start = rng.standard_normal(g.shape[1]).astype(dtype)
    out, g_out = cuda.to_device(start), cuda.device_array(g.shape, dtype)
    dense.column_sums_add(cuda.to_device(g), out, cuda.to_device(y), activation, slope, g_out)
    assert_close(g_out.copy_to_host(), expected, dtype)
    assert_close(out.copy_to_host(), start + expected.sum(axis=0, dtype=np.float64), dtype,
                 scale=g.shape[0])


@pytest.mark.parametrize("with_bias", [False, True])
def test_linear_backward_relu_selects_at_nan_and_infinite_gradients(dtype, with_bias):
    """The fused Linear+ReLU backward (with a bias: the column-sums kernel; without: the
    activation-gradient kernel) selects as PyTorch's ReLU backward: grad_out passes where
    y is NaN, and a y of 0 gives 0 even for an infinite grad_out. Fixed: it multiplied by
    (y > 0), so a NaN y gave 0 and inf * 0 gave NaN, unlike the CPU backends."""
    x = np.array([[np.nan, 1.0], [1.0, 2.0], [-1.0, -2.0]], dtype)
    w = np.array([[1.0, 0.5], [-1.0, -0.5], [0.25, 2.0]], dtype)
    b = np.array([0.5, -0.25, 0.0], dtype) if with_bias else None
    g = np.array([[1.5, -2.0, 0.5], [np.inf, -np.inf, 1.0], [2.0, np.nan, -np.inf]], dtype)
    y = C.linear_forward(x, w, b, "relu")
    xt, wt = t(x, True), t(w, True)
    bt = t(b, True) if with_bias else None
    yt = torch.relu(F.linear(xt, wt, bt))
    yt.backward(t(g))
    assert_close(y, yt.detach().numpy(), dtype)
    gw = np.zeros_like(w)
    gb = np.zeros_like(b) if with_bias else None
    gin = C.linear_backward(g, x, w, y, "relu", grad_weight=gw, grad_bias=gb)
    assert_close(gin, xt.grad.numpy(), dtype)
    assert_close(gw, wt.grad.numpy(), dtype)
    if with_bias:
        assert_close(gb, bt.grad.numpy(), dtype)
    with fastnn.use_backend("numpy"):
        assert_close(gin, fastnn.ops.linear_backward(g, x, w, y, "relu"), dtype)


def test_linear_out_buffers_are_used(dtype, rng):
    x = rng.standard_normal((6, 5)).astype(dtype)
    w = rng.standard_normal((3, 5)).astype(dtype)
    out = np.empty((6, 3), dtype)
    assert C.linear_forward(x, w, None, "relu", out=out) is out
    assert_close(out, np.maximum(x @ w.T, 0), dtype)
    gin, scratch = np.empty_like(x), np.empty_like(out)
    res = C.linear_backward(np.ones_like(out), x, w, out, "relu", grad_weight=np.zeros_like(w),
                            grad_in=gin, scratch=scratch)
    assert res is gin
    assert_close(gin, (out > 0).astype(dtype) @ w, dtype)


# ----------------------------------------------------------------- activations
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_forward_backward(dtype, rng, name):
    fn, params, saved = ACTIVATIONS[name]
    x = (rng.standard_normal((3, 4, 5)) * 3).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    y = getattr(C, name)(x, **params)
    xt = t(x, True)
    yt = fn(xt)
    yt.backward(t(g))
    assert y.dtype == dtype and y.shape == x.shape
    assert_close(y, yt.detach().numpy(), dtype)
    grad = getattr(C, name + "_backward")(g, x if saved == "x" else y, **params)
    assert_close(grad, xt.grad.numpy(), dtype, scale=30.0 if name == "sine" else 1.0)
    out = np.empty_like(x)
    assert getattr(C, name)(x, out=out, **params) is out


def test_activations_at_extremes_and_nan(dtype):
    x = np.array([-1e4, -100, -20, -1e-8, 0, 1e-8, 20, 100, 1e4], dtype=dtype)
    for name in ("sigmoid", "tanh", "gelu", "relu", "silu", "elu", "softplus", "hardtanh",
                 "softsign", "gelu_tanh", "mish", "hardsigmoid", "hardswish"):
        y = getattr(C, name)(x, **ACTIVATIONS[name][1])
        assert np.all(np.isfinite(y)), name
        assert_close(y, ACTIVATIONS[name][0](t(x)).numpy(), dtype, err_msg=name)
    xt = t(x, True)
    F.gelu(xt).backward(t(np.ones_like(x)))
    assert_close(C.gelu_backward(np.ones_like(x), x), xt.grad.numpy(), dtype)
    nan = np.array([np.nan, 1.0, -1.0], dtype=dtype)
    for name in ("relu", "sigmoid", "tanh", "gelu", "sine", "silu", "elu", "softplus",
                 "hardtanh", "softsign", "gelu_tanh", "mish", "hardsigmoid", "hardswish"):
        assert np.isnan(getattr(C, name)(nan)[0]), name


# 70 and 300 columns: the rows' four-column loop and its tail, with 8 lanes a row (the
# simulator) and 32 (a GPU)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", [(1, 1), (5, 70), (3, 300)])
def test_softmax_forward_backward(dtype, rng, shape, name):
    """Against torch, with a logit 1e4 (float32: 80) above the rest: log_softmax stays
    finite there, where log(softmax) would not."""
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    x[0, 0] = 1e4 if dtype == np.float64 else 80.0
    g = rng.standard_normal(shape).astype(dtype)
    y = getattr(C, name)(x)
    xt = t(x, True)
    yt = getattr(torch, name)(xt, dim=1)
    yt.backward(t(g))
    assert np.all(np.isfinite(y))
    log = name == "log_softmax"  # values up to |1e4|, and a row sum in its backward
    assert_close(y, yt.detach().numpy(), dtype, scale=(1e4 if dtype == np.float64 else 80)
                 if log else 1.0)
    assert_close(getattr(C, name + "_backward")(g, y), xt.grad.numpy(), dtype,
                 scale=shape[1] if log else 1.0)


# --------------------------------------------------------------------- dropout
def test_dropout_mask_statistics_seed_and_launch_independence(dtype, rng, monkeypatch):
    x = rng.standard_normal((60, 100)).astype(dtype)
    p = 0.3
    y, mask = C.dropout_forward(x, p, seed=1234)
    scale = dtype.type(1 / (1 - p))
    assert set(np.unique(mask)) <= {dtype.type(0), scale}
    assert abs((mask == 0).mean() - p) < 0.03
    assert_close(y, x * mask, dtype)
    assert not np.array_equal(mask, C.dropout_forward(x, p, seed=1235)[1])
    # the mask depends on (seed, index) only, not on how the grid is laid out
    monkeypatch.setattr(config, "THREADS", config.THREADS * 2)
    monkeypatch.setattr(config, "MAX_BLOCKS", 1)
    np.testing.assert_array_equal(C.dropout_forward(x, p, seed=1234)[1], mask)
    g = rng.standard_normal(x.shape).astype(dtype)
    assert_close(C.dropout_backward(g, mask), g * mask, dtype)
    _, keep_all = C.dropout_forward(x, 0.0, seed=1)
    assert np.all(keep_all == 1)


# ---------------------------------------------------------------------- losses
@pytest.mark.parametrize("target_kind", ["labels", "probs", "unnormalized"])
@pytest.mark.parametrize("magnitude", [1.0, 1e4])
@pytest.mark.parametrize("n, c", [(7, 40), (3, 300)])
def test_softmax_cross_entropy(dtype, rng, target_kind, magnitude, n, c):
    logits = (rng.standard_normal((n, c)) * magnitude).astype(dtype)
    if target_kind == "labels":
        target = rng.integers(0, c, n)
    else:
        target = rng.random((n, c)).astype(dtype)
        target /= target.sum(axis=1, keepdims=True)
        if target_kind == "unnormalized":  # PyTorch's gradient: softmax * sum(t) - t
            target *= np.linspace(0, 1.5, n, dtype=dtype)[:, None]
    loss, grad = C.softmax_cross_entropy(logits, target)
    lt = t(logits, True)
    expected = F.cross_entropy(lt, t(target))
    expected.backward()
    assert isinstance(loss, float) and np.isfinite(loss)
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(loss, expected.item(), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(loss, ref("softmax_cross_entropy", logits, target)[0],
                               rtol=rtol, atol=rtol)
    assert_close(grad, lt.grad.numpy(), dtype)


def test_cross_entropy_over_many_float32_classes_sums_in_float64():
    """Label smoothing's eps / C over 2^14 classes (probability targets), the loss to the
    float64 sum's accuracy, as the CPU backends' (37b04c9): the kernels' sums are float64.
    Under the simulator that took explicit np.float64 accumulators: NumPy 2 keeps 0.0 + a
    float32 a float32 (7e-6 off; the compiled PTX is the same either way)."""
    c = 1 << 14
    rng = np.random.default_rng(6)
    logits = (0.01 * rng.standard_normal((2, c))).astype(np.float32)
    target = np.full((2, c), 0.1 / c, np.float32)
    target[[0, 1], rng.integers(0, c, 2)] += np.float32(0.9)
    loss, _ = C.softmax_cross_entropy(logits, target)
    exact = F.cross_entropy(t(logits.astype(np.float64)), t(target.astype(np.float64))).item()
    assert abs(loss - exact) <= 5e-7 * exact


def test_softmax_and_cross_entropy_with_masked_logits(dtype, rng):
    """-inf logits (masked classes) add nothing, also when a row or a lane starts with
    them (the online max is -inf until a finite value comes), as in PyTorch."""
    n, c = 4, 300
    logits = rng.standard_normal((n, c)).astype(dtype)
    logits[0, :200] = -np.inf     # every lane's first values masked
    logits[1, ::2] = -np.inf
    logits[2, 5] = -np.inf
    labels = np.array([250, 1, 7, 299])
    lt = t(logits, True)
    expected = F.cross_entropy(lt, t(labels))
    expected.backward()
    loss, grad = C.softmax_cross_entropy(logits, labels)
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(loss, expected.item(), rtol=rtol, atol=rtol)
    assert_close(grad, lt.grad.numpy(), dtype)
    assert_close(C.softmax(logits), torch.softmax(t(logits), dim=1).numpy(), dtype)



def test_rows_of_only_masked_logits_and_sine_of_infinity_give_nan_as_torch(dtype):
    """A row whose logits are all -inf: softmax, log-softmax and cross-entropy give NaN
    (the loss and that row's gradient), and sine (and its gradient) of +-inf is NaN, as
    PyTorch and the CPU backends give. Fixed: under the simulator (Python's math.log
    of 0, math.sin of inf) they raised ValueError('math domain error')."""
    logits = np.array([[-np.inf, -np.inf, -np.inf], [0.5, -np.inf, 2.0]], dtype)
    labels = np.array([1, 2])
    lt = t(logits, True)
    expected = F.cross_entropy(lt, t(labels))
    expected.backward()
    loss, grad = C.softmax_cross_entropy(logits, labels)
    assert np.isnan(loss) and np.isnan(expected.item())
    assert_close(grad, lt.grad.numpy(), dtype)
    probs = np.array([[0.2, 0.3, 0.5], [0.0, 0.0, 1.0]], dtype)
    assert np.isnan(C.softmax_cross_entropy(logits, probs)[0])
    assert_close(C.softmax(logits), torch.softmax(t(logits), dim=1).numpy(), dtype)
    assert_close(C.log_softmax(logits), torch.log_softmax(t(logits), dim=1).numpy(), dtype)
    x = np.array([np.inf, -np.inf, np.nan, 0.5], dtype)
    xt = t(x, True)
    torch.sin(3.0 * xt).backward(t(np.ones_like(x)))
    assert_close(C.sine(x, omega=3.0), torch.sin(3.0 * t(x)).numpy(), dtype)
    assert_close(C.sine_backward(np.ones_like(x), x, omega=3.0), xt.grad.numpy(), dtype)

def test_mse_and_bce_losses(dtype, rng):
    pred = rng.standard_normal((6, 45)).astype(dtype)
    target = rng.standard_normal(pred.shape).astype(dtype)
    loss, grad = C.mse_loss(pred, target)
    expected, expected_grad = torch_loss(F.mse_loss, pred, target)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert_close(grad, expected_grad, dtype)

    prob = rng.random(pred.shape).astype(dtype)
    prob.flat[:4] = [0.0, 1.0, 0.0, 1.0]  # logs clamped at -100 keep these finite
    target = (rng.random(pred.shape) > 0.5).astype(dtype)
    target.flat[:4] = [0.0, 1.0, 1.0, 0.0]
    out = np.empty_like(prob)
    loss, grad = C.bce_loss(prob, target, grad=out)
    expected, expected_grad = torch_loss(F.binary_cross_entropy, prob, target)
    assert grad is out and np.isfinite(loss)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-6)

    logits = (pred * 6).astype(dtype)
    logits.flat[:6] = [1e4, -1e4, 90.0, -90.0, 20.0, -20.0]
    soft = rng.random(pred.shape).astype(dtype)
    loss, grad = C.bce_with_logits_loss(logits, soft)
    expected, expected_grad = torch_loss(F.binary_cross_entropy_with_logits, logits, soft)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert_close(grad, expected_grad, dtype)

    for beta in (0.0, 0.5):
        fn = (lambda p, t: F.smooth_l1_loss(p, t, beta=beta)) if beta else F.l1_loss
        loss, grad = C.smooth_l1_loss(pred, soft, beta)
        expected, expected_grad = torch_loss(fn, pred, soft)
        np.testing.assert_allclose(loss, expected, rtol=1e-5)
        assert_close(grad, expected_grad, dtype)


# ------------------------------------------------------------------- batchnorm
@pytest.mark.parametrize("shape", [(6, 3), (5, 100), (3, 2, 4, 5)])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm(dtype, rng, shape, training):
    c = shape[1]
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    w, b = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    rm, rv = rng.standard_normal(c).astype(dtype), rng.random(c).astype(dtype) + 0.5
    g = rng.standard_normal(shape).astype(dtype)
    rm_t, rv_t = t(rm), t(rv)
    xt, wt, bt = t(x, True), t(w, True), t(b, True)
    yt = F.batch_norm(xt, rm_t, rv_t, wt, bt, training=training, momentum=0.1, eps=1e-5)
    yt.backward(t(g))
    y, mean, invstd = C.batchnorm_forward(x, w, b, rm, rv, training, 0.1, 1e-5)
    assert_close(y, yt.detach().numpy(), dtype, scale=10)
    assert_close(rm, rm_t.numpy(), dtype)  # running statistics copied back in place
    assert_close(rv, rv_t.numpy(), dtype)
    gw, gb = np.zeros_like(w), np.zeros_like(b)
    gin = C.batchnorm_backward(g, x, w, mean, invstd, training, False, gw, gb)
    assert_close(gin, xt.grad.numpy(), dtype, scale=10)
    assert_close(gw, wt.grad.numpy(), dtype, scale=x.size / c)
    assert_close(gb, bt.grad.numpy(), dtype, scale=x.size / c)


@pytest.mark.parametrize("shape", [(6, 3), (3, 3, 2, 2)])
def test_batchnorm_constant_channel_with_eps_zero_as_torch(dtype, rng, shape):
    """eps 0 in training: a constant channel's invstd is 0 (y = bias), as aten's."""
    x = rng.standard_normal(shape).astype(dtype)
    x[:, 1] = 1.5
    w, b = rng.standard_normal(3).astype(dtype), rng.standard_normal(3).astype(dtype)
    ty, _, tinvstd = torch.ops.aten.native_batch_norm(t(x), t(w), t(b), None, None, True,
                                                      0.1, 0.0)
    y, _, invstd = C.batchnorm_forward(x, w, b, np.zeros(3, dtype), np.ones(3, dtype), True,
                                       0.1, 0.0)
    assert invstd[1] == 0 and tinvstd[1].item() == 0
    assert_close(y, ty.numpy(), dtype, scale=10)


@pytest.mark.parametrize("shape", [(6, 3), (6, 3, 2, 2)])
def test_eval_batchnorm_with_a_zero_running_var_and_eps_0_as_torch(dtype, shape):
    """PyTorch's eval form x * scale + (bias - mean * scale): with running_var + eps 0,
    its inf/NaN per element (the (N, C, S) kernel's (x - mean) * inf + bias gave NaN
    only where x == mean, +-inf elsewhere)."""
    x = np.broadcast_to(np.array([-2.0, 0.0, 3.0, 1.0, -1.0, np.inf]).reshape(
        (6, 1) + (1,) * (len(shape) - 2)), shape).astype(dtype)
    w, b = np.array([2.0, -1.0, 0.0], dtype), np.array([0.5, 1.0, -1.0], dtype)
    rm, rv = np.array([0.0, 1.0, 3.0], dtype), np.zeros(3, dtype)
    want = F.batch_norm(t(x), t(rm), t(rv), t(w), t(b), training=False, eps=0.0).numpy()
    y, _, _ = C.batchnorm_forward(x, w, b, rm, rv, False, 0.1, 0.0)
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("shape", [(6, 3), (3, 3, 2, 2)])
@pytest.mark.parametrize("mean_only", [False, True])
def test_eval_batchnorm_gradient_ignores_nonfinite_inputs(dtype, rng, shape, mean_only):
    """Eval mode: grad_in does not read x, so an infinite or NaN x leaves it finite."""
    x = rng.standard_normal(shape).astype(dtype)
    x[1, 0], x[2, 1] = np.inf, np.nan
    w = None if mean_only else rng.standard_normal(3).astype(dtype)
    rm, rv = rng.standard_normal(3).astype(dtype), rng.random(3).astype(dtype) + 0.5
    g = rng.standard_normal(shape).astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    _, mean, invstd = C.batchnorm_forward(x, w, b, rm, None if mean_only else rv, False, 0.1,
                                          1e-5, mean_only)
    gin = C.batchnorm_backward(g, x, w, mean, invstd, False, mean_only, None, None)
    gin_ref = R.batchnorm_backward(g, x, w, mean, invstd, False, mean_only, None, None)
    assert np.isfinite(gin).all()
    assert_close(gin, gin_ref, dtype)


@pytest.mark.parametrize("shape", [(9, 2), (9, 2, 1)])
@pytest.mark.parametrize("where", ["grad_out", "weight"])
def test_training_batchnorm_gradient_of_an_infinity_as_torch(dtype, shape, where):
    """An infinite grad_out or weight in training mode: PyTorch's infinities and NaNs
    row by row, from the (N, C) kernel as from the (N, C, L) one; the (N, C) kernel's
    folded form a g + b x + d made the whole channel NaN."""
    rng = np.random.default_rng(1)  # values where the folded form's NaNs differed
    x = rng.standard_normal(shape[:2]).astype(dtype).reshape(shape)
    g = rng.standard_normal(shape[:2]).astype(dtype).reshape(shape)
    w, b = rng.standard_normal(2).astype(dtype), np.zeros(2, dtype)
    if where == "grad_out":
        g[1, 0] = np.inf
    else:
        w[0] = -np.inf
    _, mean, invstd = R.batchnorm_forward(x, w, b, np.zeros(2, dtype), np.ones(2, dtype))
    gin = C.batchnorm_backward(g, x, w, mean, invstd)
    xt, wt = t(x, True), t(w, True)
    F.batch_norm(xt, None, None, wt, t(b), True, 0.1, 1e-5).backward(t(g))
    want = xt.grad.numpy()
    assert np.isinf(want).any()
    np.testing.assert_array_equal(np.isnan(gin), np.isnan(want))
    infinite = np.isinf(want)
    np.testing.assert_array_equal(gin[infinite], want[infinite])
    finite = np.isfinite(want)
    assert_close(gin[finite], want[finite], dtype)


def _torch_training_batch_norm(x, w, b):
    """PyTorch's training output ((x - mean) * invstd) * weight + bias: F.batch_norm on a
    view of x that is not contiguous (its TensorIterator kernel, the form of PyTorch's
    CUDA kernel; for a contiguous input its CPU kernel folds into x * alpha + (bias -
    mean * alpha) with FMAs)."""
    xt = torch.from_numpy(np.asfortranarray(x))
    assert not xt.is_contiguous()
    return F.batch_norm(xt, None, None, t(w), t(b), True, 0.1, 1e-5).numpy()


def _far_from_0(shape, offset, step):
    """float64 offset + k * step for random integers k (0 <= k < 64) in every channel:
    with N = 8 and step at least 8 ulps of offset the sums and the mean are exact, so
    (x - mean) is exact where x * scale + (bias - mean * scale) cancels."""
    k = np.random.default_rng(2).integers(0, 64, shape[:2]).reshape(shape)
    return offset + k * step


@pytest.mark.parametrize("shape", [(8, 2), (8, 2, 1)])
@pytest.mark.parametrize("dtype,case", [(np.float32, "infinite weight"),
                                        (np.float64, "infinite weight"),
                                        (np.float64, "far from 0"),
                                        (np.float64, "overflowing fold")])
def test_training_batchnorm_forward_in_torchs_form(dtype, shape, case):
    """Training output (x - mean) * invstd * weight + bias, as PyTorch's, from the (N, C)
    kernel as from the (N, C, L) one. Its fold x * scale + (bias - mean * scale) gave
    NaN where x and -mean have one sign (an infinite weight; PyTorch's +-inf), rounding
    off by 4e-9 where |mean| >> std, and inf - inf = NaN where x * scale overflows and
    (x - mean) * scale does not (float64 only: the kernel computes in float64, where
    float32 values neither overflow nor round off)."""
    rng = np.random.default_rng(1)
    w, b = rng.standard_normal(2).astype(dtype), rng.standard_normal(2).astype(dtype)
    if case == "infinite weight":
        x = (rng.standard_normal(shape[:2]) + 1).astype(dtype).reshape(shape)
        w[0] = np.inf
    elif case == "far from 0":
        x = _far_from_0(shape, 2.0 ** 27, 0.25)
    else:
        x = _far_from_0(shape, 2.0 ** 60, 2.0 ** 11)
        w *= 2.0 ** 1000
    want = _torch_training_batch_norm(x, w, b)
    rm, rv = np.zeros(2, dtype), np.ones(2, dtype)
    y, _, _ = C.batchnorm_forward(x, w, b, rm, rv, True, 0.1, 1e-5)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    infinite = np.isinf(want)
    np.testing.assert_array_equal(y[infinite], want[infinite])
    finite = np.isfinite(want)
    assert finite.any()
    assert_close(y[finite], want[finite], dtype)


@pytest.mark.parametrize("shape", [(8, 2), (8, 2, 1)])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_mean_only_forward_subtracts_the_mean_first(shape, training):
    """mean_only: (x - mean) + bias, the reference's and the CPU backends' order; the
    kernels' x + (bias - mean) rounded bias - mean (|mean| = 2**27: 6e-9 off)."""
    dtype = np.float64
    x = _far_from_0(shape, -2.0 ** 27, 0.25)
    b = np.array([0.1, -0.3])
    rm = np.array([-2.0 ** 27 - 3.0, -2.0 ** 27 + 1.0]) if not training else np.zeros(2)
    y, _, _ = C.batchnorm_forward(x, None, b, rm.copy(), None, training, 0.1, 1e-5, True)
    want, _, _ = R.batchnorm_forward(x, None, b, rm.copy(), None, training, 0.1, 1e-5,
                                     True)
    assert_close(y, want, dtype)


@pytest.mark.parametrize("shape", [(6, 3), (5, 100), (3, 1)])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(dtype, rng, shape, affine):
    """Rows of every length against PyTorch; the gradients' column sums on device arrays
    too (host gradients are copied back in place)."""
    d = shape[1]
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    w = rng.standard_normal(d).astype(dtype) if affine else None
    b = rng.standard_normal(d).astype(dtype) if affine else None
    g = rng.standard_normal(shape).astype(dtype)
    xt = t(x, True)
    wt, bt = (t(w, True), t(b, True)) if affine else (None, None)
    yt = F.layer_norm(xt, (d,), wt, bt, 1e-5)
    yt.backward(t(g))
    y, mean, invstd = C.layer_norm_forward(x, w, b, 1e-5)
    assert_close(y, yt.detach().numpy(), dtype, scale=10)
    gw = np.zeros(d, dtype) if affine else None
    gb = np.zeros(d, dtype) if affine else None
    gin = C.layer_norm_backward(g, x, w, mean, invstd, gw, gb)
    assert_close(gin, xt.grad.numpy(), dtype, scale=100)
    if affine:
        assert_close(gw, wt.grad.numpy(), dtype, scale=shape[0])
        assert_close(gb, bt.grad.numpy(), dtype, scale=shape[0])
        dgw = cuda.to_device(np.zeros(d, dtype))
        dgi = C.layer_norm_backward(cuda.to_device(g), cuda.to_device(x), cuda.to_device(w),
                                    cuda.to_device(mean), cuda.to_device(invstd), dgw, None)
        assert_close(dgw.copy_to_host(), gw, dtype)
        assert_close(dgi.copy_to_host(), gin, dtype)


@pytest.mark.filterwarnings("ignore:.*invalid value encountered:RuntimeWarning")
def test_layer_norm_of_empty_rows_saves_nan_statistics(dtype):
    # D = 0: each row's mean and invstd are NaN, as the reference's (the kernel was
    # skipped for an empty x, and the saved statistics came back from unwritten device
    # memory into the caller's buffers, sentinels here)
    mean, invstd = np.full(5, 7.0, dtype), np.full(5, 7.0, dtype)
    y, m, s = C.layer_norm_forward(np.empty((5, 0), dtype), None, None, 1e-5, None,
                                   mean, invstd)
    assert y.shape == (5, 0) and m is mean and s is invstd
    assert np.isnan(mean).all() and np.isnan(invstd).all()


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 2)])
def test_norms_with_eps_zero_over_constant_values_give_an_infinite_invstd(dtype, shape):
    """eps=0 over values whose variance is 0: LayerNorm's constant row (1 / sqrt(0) =
    inf, so NaN outputs, as PyTorch's) and eval-mode BatchNorm's channels with a
    running_var of 0 (an infinite invstd). Fixed: the simulator raised ZeroDivisionError
    from Python's 1.0 / math.sqrt(0.0), where a GPU gives inf."""
    x = np.ones(shape, dtype)
    x[0, 0] = 3.0   # one channel (BatchNorm), the first row (LayerNorm) not constant
    rows = x.reshape(shape[0], -1)
    y, _, invstd = C.layer_norm_forward(rows, None, None, eps=0.0)
    expected = F.layer_norm(t(rows), (rows.shape[1],), eps=0.0).numpy()
    assert_close(y, expected, dtype)
    assert np.isinf(invstd[1:]).all()
    c = shape[1]
    running_mean, running_var = np.zeros(c, dtype), np.array([0.0, 0.0, 4.0], dtype)
    y, _, invstd = C.batchnorm_forward(x, np.ones(c, dtype), np.zeros(c, dtype),
                                       running_mean.copy(), running_var.copy(),
                                       training=False, eps=0.0)
    expected = ref("batchnorm_forward", x, np.ones(c, dtype), np.zeros(c, dtype),
                   running_mean, running_var, training=False, eps=0.0)[0]
    assert_close(invstd, [np.inf, np.inf, 0.5], dtype)
    assert_close(y[:, 2], expected[:, 2], dtype)
    # an infinite invstd: inf (the reference's (x - mean) * invstd) or NaN (x * invstd
    # - mean * invstd, PyTorch's CPU kernel for 4-D inputs), never a finite value
    assert not np.isfinite(y[:, :2]).any()


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_mean_only_matches_reference(dtype, rng, training):
    x = rng.standard_normal((2, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    rm = rng.standard_normal(3).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    rm_ref = rm.copy()
    y, mean, invstd = C.batchnorm_forward(x, None, b, rm, None, training, 0.1, 1e-5, True)
    y_ref, mean_ref, _ = R.batchnorm_forward(x, None, b, rm_ref, None, training, 0.1, 1e-5,
                                             True)
    assert invstd is None
    assert_close(y, y_ref, dtype)
    assert_close(rm, rm_ref, dtype)
    gb, gb_ref = np.zeros_like(b), np.zeros_like(b)
    gin = C.batchnorm_backward(g, x, None, mean, None, training, True, None, gb)
    gin_ref = R.batchnorm_backward(g, x, None, mean_ref, None, training, True, None, gb_ref)
    assert_close(gin, gin_ref, dtype)
    assert_close(gb, gb_ref, dtype, scale=x.size / 3)


@pytest.mark.parametrize("threads,max_blocks", [(64, 1), (128, 2)])
def test_batchnorm_2d_block_shapes(dtype, rng, monkeypatch, threads, max_blocks):
    """The (N, C) kernels with several rows per block (a shared-memory reduction over
    threadIdx.y), more than four rows per thread (the unrolled loops and their tails)
    and fewer blocks than channel groups (grid-stride)."""
    monkeypatch.setattr(config, "BN_THREADS", threads)
    monkeypatch.setattr(config, "MAX_BLOCKS", max_blocks)
    x = (rng.standard_normal((75, 70)) * 2 + 1).astype(dtype)
    w, b = rng.standard_normal(70).astype(dtype), rng.standard_normal(70).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    for mean_only in (False, True):
        weight = None if mean_only else w
        rm, rv = np.zeros(70, dtype), None if mean_only else np.ones(70, dtype)
        rm_ref, rv_ref = rm.copy(), None if mean_only else rv.copy()
        y, mean, invstd = C.batchnorm_forward(x, weight, b, rm, rv, True, 0.1, 1e-5, mean_only)
        y_ref, mean_ref, invstd_ref = R.batchnorm_forward(x, weight, b, rm_ref, rv_ref, True,
                                                          0.1, 1e-5, mean_only)
        assert_close(y, y_ref, dtype, scale=10)
        assert_close(rm, rm_ref, dtype)
        gb, gb_ref = np.zeros_like(b), np.zeros_like(b)
        gin = C.batchnorm_backward(g, x, weight, mean, invstd, True, mean_only, None, gb)
        gin_ref = R.batchnorm_backward(g, x, weight, mean_ref, invstd_ref, True, mean_only,
                                       None, gb_ref)
        assert_close(gin, gin_ref, dtype, scale=10)
        assert_close(gb, gb_ref, dtype, scale=10)


def test_batchnorm_constant_feature_is_finite(dtype):
    x = np.ones((8, 3), dtype)
    w, b = np.ones(3, dtype), np.zeros(3, dtype)
    y, mean, invstd = C.batchnorm_forward(x, w, b, np.zeros(3, dtype), np.ones(3, dtype))
    assert np.all(np.isfinite(y)) and np.allclose(y, 0)
    assert np.all(np.isfinite(C.batchnorm_backward(np.ones_like(x), x, w, mean, invstd)))


# ------------------------------------------------------------------ optimizers
@pytest.mark.parametrize("momentum,weight_decay,nesterov",
                         [(0.0, 0.0, False), (0.9, 1e-2, False), (0.9, 1e-2, True)])
def test_sgd_update_matches_torch(dtype, rng, momentum, weight_decay, nesterov):
    p = rng.standard_normal(100).astype(dtype)
    pt = t(p, True)
    opt = torch.optim.SGD([pt], lr=0.1, momentum=momentum, weight_decay=weight_decay,
                          nesterov=nesterov)
    velocity = np.zeros_like(p) if momentum else None
    for _ in range(3):
        grad = rng.standard_normal(p.shape).astype(dtype)
        assert C.sgd_update(p, grad, velocity, 0.1, momentum, weight_decay, nesterov) is None
        pt.grad = t(grad)
        opt.step()
    assert_close(p, pt.detach().numpy(), dtype)


@pytest.mark.parametrize("momentum, centered", [(0.0, False), (0.9, True)])
def test_rmsprop_update_matches_torch(dtype, rng, momentum, centered):
    p = rng.standard_normal(300).astype(dtype)
    pt = t(p, True)
    opt = torch.optim.RMSprop([pt], lr=1e-2, alpha=0.9, eps=1e-6, weight_decay=0.01,
                              momentum=momentum, centered=centered)
    square_avg = np.zeros_like(p)
    buf = np.zeros_like(p) if momentum else None
    grad_avg = np.zeros_like(p) if centered else None
    for _ in range(3):
        grad = rng.standard_normal(p.shape).astype(dtype)
        C.rmsprop_update(p, grad, square_avg, 1e-2, 0.9, 1e-6, 0.01, momentum, buf, grad_avg)
        pt.grad = t(grad)
        opt.step()
    assert_close(p, pt.detach().numpy(), dtype)


def test_centered_rmsprop_with_a_negative_variance_steps_to_nan_as_torch(dtype):
    """square_avg < grad_avg**2 (a loaded state, or rounding): a NaN step as on a GPU and
    in PyTorch; under the simulator the kernel's math.sqrt raised ValueError."""
    p, grad = np.array([1.0, 2.0], dtype), np.array([0.5, -0.2], dtype)
    square_avg, grad_avg = np.array([0.01, 0.5], dtype), np.array([0.3, 0.1], dtype)
    pt = t(p, True)
    opt = torch.optim.RMSprop([pt], lr=1e-2, alpha=0.99, centered=True)
    opt.state[pt] = {"step": torch.tensor(0.0), "square_avg": t(square_avg),
                     "grad_avg": t(grad_avg)}
    pt.grad = t(grad)
    opt.step()
    C.rmsprop_update(p, grad, square_avg, 1e-2, 0.99, 1e-8, grad_avg=grad_avg)
    assert np.isnan(p[0]) and np.isnan(pt.detach().numpy()[0])
    assert_close(p[1:], pt.detach().numpy()[1:], dtype)


def test_adagrad_update_matches_torch(dtype, rng):
    p = rng.standard_normal(300).astype(dtype)
    pt = t(p, True)
    opt = torch.optim.Adagrad([pt], lr=1e-2, weight_decay=0.01, eps=1e-8)
    state_sum = np.zeros_like(p)
    for _ in range(3):
        grad = rng.standard_normal(p.shape).astype(dtype)
        C.adagrad_update(p, grad, state_sum, 1e-2, 0.01, 1e-8)
        pt.grad = t(grad)
        opt.step()
    assert_close(p, pt.detach().numpy(), dtype)


def test_adamax_and_adaptive_moments_updates_match_torch(dtype, rng):
    """Adamax against torch's; the NAdam/RAdam op with RAdam's rates (both of its rules:
    betas (0.9, 0.9) rectify from step 6) against torch's RAdam."""
    from fastnn import optim
    p = rng.standard_normal(300).astype(dtype)
    q = p.copy()
    pt, qt = t(p, True), t(q, True)
    adamax = torch.optim.Adamax([pt], lr=1e-2, weight_decay=0.01)
    radam = torch.optim.RAdam([qt], lr=1e-2, betas=(0.9, 0.9), weight_decay=0.01)
    m, u, m2, v2 = (np.zeros_like(p) for _ in range(4))
    for step in range(1, 8):
        grad = rng.standard_normal(p.shape).astype(dtype)
        C.adamax_update(p, grad, m, u, step, 1e-2, 0.9, 0.999, 1e-8, 0.01)
        avg_rate, sq_scale, eps = optim.RAdam.rates(1e-2, 0.9, 0.9, 1e-8, step)
        C.adaptive_moments_update(q, grad, m2, v2, avg_rate, 0.0, 0.9, 0.9, sq_scale, eps, 0.01)
        pt.grad, qt.grad = t(grad), t(grad)
        adamax.step()
        radam.step()
    assert_close(p, pt.detach().numpy(), dtype)
    assert_close(q, qt.detach().numpy(), dtype)


def test_radam_first_step_with_an_infinite_gradient_as_torch(dtype):
    """grad_rate 0 (RAdam): no gradient term, so an inf gradient gives torch's -inf."""
    from fastnn import optim
    q = np.array([1.0, 1.0, -2.0], dtype)
    grad = np.array([np.inf, 1.0, -np.inf], dtype)
    qt = t(q, True)
    radam = torch.optim.RAdam([qt], lr=1e-3)
    m, v = np.zeros_like(q), np.zeros_like(q)
    avg_rate, sq_scale, eps = optim.RAdam.rates(1e-3, 0.9, 0.999, 1e-8, 1)
    C.adaptive_moments_update(q, grad, m, v, avg_rate, 0.0, 0.9, 0.999, sq_scale, eps, 0.0)
    qt.grad = t(grad)
    radam.step()
    assert np.isinf(q[[0, 2]]).all()
    assert_close(q, qt.detach().numpy(), dtype)


# the simulator's NumPy scalars warn on inf * 0, in its own threads (np.errstate is per thread)
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_adadelta_rprop_asgd_updates_match_torch(dtype, rng):
    """Each op against its torch optimizer: Adadelta maximizing with weight decay; Rprop
    with both clamps binding and, at step 3, NaN and inf gradients (torch.sign(NaN) is
    0); ASGD at the eta and mu of optim.ASGD.rates, averaging from step 3 (t0 1; torch
    with float64 scalars, as fastnn's)."""
    from fastnn import optim
    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        p = rng.standard_normal(300).astype(dtype)
        q, r = p.copy(), p.copy()
        pt, qt, rt = t(p, True), t(q, True), t(r, True)
        adadelta = torch.optim.Adadelta([pt], lr=0.5, rho=0.8, weight_decay=0.01,
                                        maximize=True, foreach=False)
        rprop = torch.optim.Rprop([qt], lr=0.01, etas=(0.3, 1.6), step_sizes=(0.004, 0.05),
                                  foreach=False)
        asgd = torch.optim.ASGD([rt], lr=0.05, lambd=1e-2, t0=1, weight_decay=0.01,
                                foreach=False)
        square_avg, acc_delta, prev, ax = (np.zeros_like(p) for _ in range(4))
        size, eta, mu = np.full_like(p, 0.01), 0.05, 1.0
        for step in range(1, 7):
            grad = rng.standard_normal(p.shape).astype(dtype)
            rgrad = grad.copy()
            if step == 3:
                rgrad[:3] = [np.nan, np.inf, -np.inf]
            C.adadelta_update(p, grad, square_avg, acc_delta, 0.5, 0.8, 1e-6, 0.01, True)
            C.rprop_update(q, rgrad, prev, size, 0.3, 1.6, 0.004, 0.05, False)
            C.asgd_update(r, grad, ax, eta, mu, 1e-2, 0.01, False)
            eta, mu = optim.ASGD.rates(0.05, 1e-2, 0.75, 1, step)
            pt.grad, qt.grad, rt.grad = t(grad), t(rgrad), t(grad)
            for opt in (adadelta, rprop, asgd):
                opt.step()
        assert_close(p, pt.detach().numpy(), dtype)
        assert_close(acc_delta, adadelta.state[pt]["acc_delta"].numpy(), dtype)
        assert_close(q, qt.detach().numpy(), dtype)
        assert_close(size, rprop.state[qt]["step_size"].numpy(), dtype)
        assert size.min() == dtype.type(0.004) and size.max() == dtype.type(0.05)
        assert_close(r, rt.detach().numpy(), dtype)
        assert_close(ax, asgd.state[rt]["ax"].numpy(), dtype)
        assert mu == asgd.state[rt]["mu"].item() < 1
    finally:
        torch.set_default_dtype(saved)


# the simulator's NumPy scalars warn on inf - inf, in its own threads
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("beta1", [0.9, 0.3])
def test_first_moment_is_torch_lerp_with_nonfinite_gradients(dtype, rng, beta1):
    """adam_update (AMSGrad), adamax_update and adaptive_moments_update (RAdam's first
    steps) against torch's Adam, Adamax and RAdam with inf, -inf and NaN gradients: the
    first moment is torch's exp_avg.lerp_(g, 1 - beta1), both of its forms (beta1 0.3:
    weight 0.7), so an infinite moment turns NaN on the next finite gradient."""
    from fastnn import optim
    n = 70  # three blocks of 32 threads in a grid of at most 2: grid-stride
    grads = rng.standard_normal((3, n)).astype(dtype)
    grads[0, [0, 1, 40]] = [np.inf, -np.inf, np.inf]
    grads[1, [2, 3, 69]] = [np.nan, np.inf, -np.inf]
    start = rng.standard_normal(n).astype(dtype)
    params = [start.copy() for _ in range(3)]
    twins = [t(start, True) for _ in range(3)]
    refs = [torch.optim.Adam([twins[0]], lr=1e-2, betas=(beta1, 0.99), amsgrad=True),
            torch.optim.Adamax([twins[1]], lr=1e-2, betas=(beta1, 0.99)),
            torch.optim.RAdam([twins[2]], lr=1e-2, betas=(beta1, 0.999))]
    state = [[np.zeros_like(start) for _ in range(3)] for _ in range(3)]
    for step in range(1, 4):
        g = grads[step - 1]
        (m, v, vmax), (m1, u, _), (m2, v2, _) = state
        C.adam_update(params[0], g, m, v, step, 1e-2, beta1, 0.99, 1e-8, 0.0, vmax)
        C.adamax_update(params[1], g, m1, u, step, 1e-2, beta1, 0.99, 1e-8, 0.0)
        avg_rate, sq_scale, eps = optim.RAdam.rates(1e-2, beta1, 0.999, 1e-8, step)
        C.adaptive_moments_update(params[2], g, m2, v2, avg_rate, 0.0, beta1, 0.999,
                                  sq_scale, eps, 0.0)
        for twin, reference in zip(twins, refs):
            twin.grad = t(g)
            reference.step()
        for p, (avg, _, _), twin, reference in zip(params, state, twins, refs):
            assert_close(avg, reference.state[twin]["exp_avg"].numpy(), dtype)
            assert_close(p, twin.detach().numpy(), dtype)
    assert np.isnan(state[0][0][[0, 1, 3, 40]]).all()


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_update_matches_torch(dtype, rng, amsgrad):
    p = rng.standard_normal(100).astype(dtype)
    pt = t(p, True)
    opt = torch.optim.Adam([pt], lr=1e-2, betas=(0.8, 0.99), eps=1e-7, weight_decay=0.01,
                           amsgrad=amsgrad)
    m, v = np.zeros_like(p), np.zeros_like(p)
    vmax = np.zeros_like(p) if amsgrad else None
    for step in range(1, 4):
        grad = (rng.standard_normal(p.shape) / step).astype(dtype)
        C.adam_update(p, grad, m, v, step, 1e-2, 0.8, 0.99, 1e-7, 0.01, vmax)
        pt.grad = t(grad)
        opt.step()
    assert_close(p, pt.detach().numpy(), dtype)


# ------------------------------------------------------------ conv and pooling
@pytest.mark.parametrize("stride,padding,kernel", [((1, 1), (1, 1), (3, 3)),
                                                   ((2, 1), (0, 2), (2, 3))])
def test_conv2d_forward_backward(dtype, rng, stride, padding, kernel):
    x = rng.standard_normal((2, 3, 6, 5)).astype(dtype)
    w = rng.standard_normal((4, 3) + kernel).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    xt, wt, bt = t(x, True), t(w, True), t(b, True)
    yt = F.conv2d(xt, wt, bt, stride=stride, padding=padding)
    g = rng.standard_normal(tuple(yt.shape)).astype(dtype)
    yt.backward(t(g))
    y = C.conv2d_forward(x, w, b, stride, padding)
    assert_close(y, yt.detach().numpy(), dtype, scale=10)
    gw, gb = np.ones_like(w), np.ones_like(b)
    gin = C.conv2d_backward(g, x, w, stride, padding, gw, gb)
    assert_close(gin, xt.grad.numpy(), dtype, scale=10)
    assert_close(gw - 1, wt.grad.numpy(), dtype, scale=30)
    assert_close(gb - 1, bt.grad.numpy(), dtype, scale=30)
    assert C.conv2d_backward(g, x, w, stride, padding, None, None, need_grad_in=False) is None


def test_conv2d_backward_without_output_channels(dtype, rng):
    # C_out = 0: the input gradient is zeros, as the reference's (the patch width was
    # weight.size // C_out: ZeroDivisionError)
    x = rng.standard_normal((2, 3, 5, 3)).astype(dtype)
    w = np.empty((0, 3, 2, 1), dtype)
    g = np.empty((2, 0, 4, 3), dtype)
    gin = C.conv2d_backward(g, x, w, (1, 1), (0, 0), np.empty_like(w), np.empty(0, dtype),
                            np.full_like(x, np.nan))
    np.testing.assert_array_equal(gin, np.zeros_like(x))
    assert C.conv2d_backward(g, x, w, (1, 1), (0, 0), np.empty_like(w), None,
                             need_grad_in=False) is None


@pytest.mark.parametrize("multiplier,stride,padding,kernel", [(1, (1, 1), (1, 1), (3, 3)),
                                                              (2, (2, 1), (0, 2), (2, 3))])
def test_depthwise_conv2d_forward_backward(dtype, rng, multiplier, stride, padding, kernel):
    # (small: the weight gradient's block reductions are slow under the simulator)
    x = rng.standard_normal((2, 2, 5, 4)).astype(dtype)
    w = rng.standard_normal((2 * multiplier, 1) + kernel).astype(dtype)
    b = rng.standard_normal(2 * multiplier).astype(dtype)
    xt, wt, bt = t(x, True), t(w, True), t(b, True)
    yt = F.conv2d(xt, wt, bt, stride=stride, padding=padding, groups=2)
    g = rng.standard_normal(tuple(yt.shape)).astype(dtype)
    yt.backward(t(g))
    y = C.depthwise_conv2d_forward(x, w, b, stride, padding)
    assert_close(y, yt.detach().numpy(), dtype, scale=10)
    assert_close(C.depthwise_conv2d_forward(x, w, None, stride, padding),
                 R.depthwise_conv2d_forward(x, w, None, stride, padding), dtype, scale=10)
    gw, gb = np.ones_like(w), np.ones_like(b)
    gin = C.depthwise_conv2d_backward(g, x, w, stride, padding, gw, gb)
    assert_close(gin, xt.grad.numpy(), dtype, scale=10)
    assert_close(gw - 1, wt.grad.numpy(), dtype, scale=30)
    assert_close(gb - 1, bt.grad.numpy(), dtype, scale=30)
    only_b = np.zeros_like(b)
    assert C.depthwise_conv2d_backward(g, x, w, stride, padding, None, only_b,
                                       need_grad_in=False) is None
    assert_close(only_b, bt.grad.numpy(), dtype, scale=30)


@pytest.mark.filterwarnings("ignore:.*invalid value encountered:RuntimeWarning")
def test_depthwise_conv2d_multiplies_the_padding_as_torch(rng):
    # an infinite tap or gradient meeting the zero padding gives NaN (PyTorch's product)
    x = rng.standard_normal((1, 2, 3, 4))
    w = rng.standard_normal((2, 1, 2, 3))
    w[0, 0, 0, 0] = np.inf
    stride, padding = (2, 2), (1, 1)
    with np.errstate(invalid="ignore"):  # (the simulator's threads warn regardless)
        y = C.depthwise_conv2d_forward(x, w, None, stride, padding)
        g = np.ones_like(y)
        g[0, 1, 0, -1] = np.inf
        gw = np.zeros_like(w)
        C.depthwise_conv2d_backward(g, x, w, stride, padding, gw, None, need_grad_in=False)
        y_ref = R.depthwise_conv2d_forward(x, w, None, stride, padding)
        gw_ref = np.zeros_like(w)
        R.depthwise_conv2d_backward(g, x, w, stride, padding, gw_ref, None, need_grad_in=False)
    assert np.isnan(y_ref).any() and np.isnan(gw_ref).any()
    np.testing.assert_allclose(y, y_ref, rtol=1e-12)      # NaN where the reference has it
    np.testing.assert_allclose(gw, gw_ref, rtol=1e-12)


@pytest.mark.parametrize("kernel,stride,padding,ceil,dilation", [
    ((3, 3), (2, 2), (1, 1), False, (1, 1)),
    ((2, 3), (1, 2), (0, 1), False, (2, 1)),
    ((3, 2), (2, 3), (1, 1), True, (1, 2))])
def test_pooling_forward_backward(dtype, rng, kernel, stride, padding, ceil, dilation):
    """ceil_mode=True on 7x6: the last windows run past the padding in both axes; the
    dilation is max pooling's."""
    x = rng.standard_normal((2, 3, 7, 6)).astype(dtype)
    xt = t(x, True)
    yt, idx_t = F.max_pool2d(xt, kernel, stride, padding, dilation, return_indices=True,
                             ceil_mode=ceil)
    g_max = rng.standard_normal(tuple(yt.shape)).astype(dtype)
    yt.backward(t(g_max))
    y, idx = C.max_pool2d_forward(x, kernel, stride, padding, ceil_mode=ceil,
                                  dilation=dilation)
    assert_close(y, yt.detach().numpy(), dtype)
    np.testing.assert_array_equal(idx, idx_t.numpy())
    assert idx.dtype == np.int64
    assert_close(C.max_pool2d_backward(g_max, idx, x.shape), xt.grad.numpy(), dtype)
    for include, divisor in ((True, None), (False, None), (True, 5)):
        xt = t(x, True)
        yt = F.avg_pool2d(xt, kernel, stride, padding, count_include_pad=include,
                          ceil_mode=ceil, divisor_override=divisor)
        g = rng.standard_normal(tuple(yt.shape)).astype(dtype)
        yt.backward(t(g))
        y = C.avg_pool2d_forward(x, kernel, stride, padding, include, ceil_mode=ceil,
                                 divisor_override=divisor)
        assert_close(y, yt.detach().numpy(), dtype)
        gin = C.avg_pool2d_backward(g, x.shape, kernel, stride, padding, include,
                                    ceil_mode=ceil, divisor_override=divisor)
        assert_close(gin, xt.grad.numpy(), dtype)



def test_max_pool_takes_the_last_nan_of_a_window_as_torch(dtype):
    """A window holding two NaNs: the index (and so the gradient) goes to the last one, as
    PyTorch's kernels (which take every NaN they meet) and the CPU backends. Fixed: the
    cuda kernel kept the first."""
    x = np.array([[[[1.0, np.nan, 2.0], [np.inf, 0.5, -np.inf], [np.nan, 3.0, 1.0]]]], dtype)
    xt = t(x, True)
    yt, idx_t = F.max_pool2d(xt, 3, 1, 1, return_indices=True)
    g = np.arange(1.0, 10.0, dtype=dtype).reshape(yt.shape)
    yt.backward(t(g))
    y, idx = C.max_pool2d_forward(x, (3, 3), (1, 1), (1, 1))
    np.testing.assert_array_equal(idx, idx_t.numpy())
    assert_close(y, yt.detach().numpy(), dtype)
    assert_close(C.max_pool2d_backward(g, idx, x.shape), xt.grad.numpy(), dtype)


def test_max_pool_indices_of_windows_with_no_input_cell_as_torch(dtype):
    """A dilated window wholly in the padding (H = 1, taps at rows -1 and 1) and windows
    of -inf: the indices PyTorch gives, those of the windows' first taps at or past row
    and column 0, outside the plane for the former. Fixed: the cuda kernel gave -1."""
    x = np.full((1, 2, 1, 3), -np.inf, dtype)
    x[0, 1] = [2.0, -1.0, 0.5]
    for kernel, stride, padding, dilation in [((2, 5), (3, 1), (1, 2), (2, 1)),
                                              ((2, 3), (1, 2), (1, 1), (2, 2))]:
        yt, idx_t = F.max_pool2d(t(x), kernel, stride, padding, dilation,
                                 return_indices=True)
        y, idx = C.max_pool2d_forward(x, kernel, stride, padding, dilation=dilation)
        np.testing.assert_array_equal(idx, idx_t.numpy())
        np.testing.assert_array_equal(y, yt.numpy())

# ------------------------------------------------- host and device array modes
def test_device_arrays_in_device_arrays_out(rng):
    x = rng.standard_normal((5, 4)).astype(np.float32)
    w = rng.standard_normal((3, 4)).astype(np.float32)
    gw = np.zeros_like(w)
    dx, dw, dgw = cuda.to_device(x), cuda.to_device(w), cuda.to_device(gw)
    dy = C.linear_forward(dx, dw, None, "tanh")
    assert not isinstance(dy, np.ndarray) and dy.shape == (5, 3)
    y = dy.copy_to_host()
    assert_close(y, np.tanh(x @ w.T), np.float32)
    dgin = C.linear_backward(cuda.to_device(np.ones_like(y)), dx, dw, dy, "tanh",
                             grad_weight=dgw)
    assert not isinstance(dgin, np.ndarray)
    # accumulated in place on the device; the host array is untouched
    assert_close(dgw.copy_to_host(), (1 - y * y).T @ x, np.float32)
    assert np.all(gw == 0)
    # a host out= buffer still receives the result of a device call
    out = np.empty((5, 3), np.float32)
    assert C.relu(dy, out=out) is out
    assert_close(out, np.maximum(y, 0), np.float32)


def test_empty_batches(dtype):
    x = np.empty((0, 4), dtype)
    assert C.relu(x).shape == (0, 4)
    assert C.linear_forward(x, np.ones((3, 4), dtype)).shape == (0, 3)
    loss, grad = C.mse_loss(x, x)
    assert loss == 0.0 and grad.shape == (0, 4)


def test_layer_api_on_host_arrays_matches_numpy_backend(rng):
    """A model trained through the layer API with --backend cuda (NumPy arrays in and
    out of every op) follows the numpy backend's trajectory."""
    x = rng.standard_normal((10, 12))
    labels = rng.integers(0, 4, 10)
    results = []
    for name in ("numpy", "cuda"):
        with fastnn.use_backend(name):
            model = fastnn.models.MLP(12, [9], 4, activation="tanh", batchnorm=True)
            model.double()
            if name == "cuda":
                model.load_state_dict(results[0][1])
            start = model.state_dict()
            opt = fastnn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            loss_fn = fastnn.nn.CrossEntropyLoss()
            for _ in range(2):
                opt.zero_grad()
                loss = loss_fn(model(x), labels)
                model.backward(loss_fn.backward())
                opt.step()
            results.append((loss, start, model.state_dict()))
    (loss_np, _, state_np), (loss_cuda, _, state_cuda) = results
    np.testing.assert_allclose(loss_cuda, loss_np, rtol=1e-10)
    for key in state_np:
        assert_close(state_cuda[key], state_np[key], np.float64, err_msg=key)


def test_device_resident_training_step_matches_numpy(rng):
    """An MLP step (Linear+ReLU, Linear, softmax-CE, backward, SGD with momentum) run by
    the cuda ops on device arrays, parameters and optimizer state resident: three steps
    agree with the same model trained by the numpy backend's layer API, and only the
    loss scalars leave the device."""
    dtype = np.float64
    xs = [rng.standard_normal((8, 12)) for _ in range(3)]
    ys = [rng.integers(0, 4, 8) for _ in range(3)]
    with fastnn.use_backend("numpy"):
        model = fastnn.models.MLP(12, [9], 4, activation="relu").double()
        twin = fastnn.models.MLP(12, [9], 4, activation="relu").double()
        twin.load_state_dict(model.state_dict())
        opt = fastnn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        loss_fn = fastnn.nn.CrossEntropyLoss()
        host_losses = []
        for x, y in zip(xs, ys):
            opt.zero_grad()
            host_losses.append(loss_fn(model(x), y))
            model.backward(loss_fn.backward())
            opt.step()

    twin.to("cuda")
    (w1, b1), (w2, b2) = [(m.weight, m.bias) for m in twin.modules()
                          if type(m).__name__ == "Linear"]
    dopt = fastnn.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    device_losses = []
    for x, y in zip(xs, ys):
        dx, dy = cuda.to_device(x), cuda.to_device(y)  # the batch: the only host->device copy
        dopt.zero_grad()
        h = C.linear_forward(dx, w1.data, b1.data, "relu")
        logits = C.linear_forward(h, w2.data, b2.data)
        loss, grad = C.softmax_cross_entropy(logits, dy)
        device_losses.append(loss)
        gh = C.linear_backward(grad, h, w2.data, grad_weight=w2.grad, grad_bias=b2.grad)
        C.linear_backward(gh, dx, w1.data, h, "relu", grad_weight=w1.grad, grad_bias=b1.grad,
                          need_grad_in=False)
        dopt.step()
        assert all(not isinstance(p.data, np.ndarray) for p in twin.parameters())
    np.testing.assert_allclose(device_losses, host_losses, rtol=1e-10)
    twin.to("cpu")
    for key, value in twin.state_dict().items():
        assert_close(value, model.state_dict()[key], dtype, err_msg=key)


def test_functional_ops_run_on_the_gpu_for_device_arrays(rng):
    """fastnn.ops given device arrays runs the cuda backend (whatever the current backend)
    and returns device arrays; its checks hold for device arrays too."""
    from fastnn import ops
    x, w, b = rng.standard_normal((6, 5)), rng.standard_normal((4, 5)), rng.standard_normal(4)
    labels = np.array([0, 3, 1, 2, 3, 0])
    with fastnn.use_backend("numpy"):
        y_host = ops.linear_forward(x, w, b, "relu")
        loss_host, grad_host = ops.softmax_cross_entropy(y_host, labels)
        dy = ops.linear_forward(cuda.to_device(x), cuda.to_device(w), cuda.to_device(b), "relu")
        assert not isinstance(dy, np.ndarray)
        assert_close(dy.copy_to_host(), y_host, np.float64)
        loss, dgrad = ops.softmax_cross_entropy(dy, labels)  # host labels are copied over
        np.testing.assert_allclose(loss, loss_host, rtol=1e-12)
        assert_close(dgrad.copy_to_host(), grad_host, np.float64)
        out = cuda.device_array((6, 4), np.float64)
        assert ops.relu(dy, out=out) is out
        param, grad = cuda.to_device(w.copy()), cuda.to_device(np.ones_like(w))
        ops.sgd_update(param, grad, None, lr=0.5)
        assert_close(param.copy_to_host(), w - 0.5, np.float64)
        with pytest.raises(ValueError, match="labels out of range"):
            ops.softmax_cross_entropy(dy, cuda.to_device(labels + 1))
        strided = ops.relu(cuda.to_device(x)[:, ::2])   # copied on the device, as NumPy's
        assert_close(strided.copy_to_host(), np.maximum(x[:, ::2], 0), np.float64)
        with pytest.raises(ValueError, match="expected out of shape"):
            ops.relu(dy, out=cuda.device_array((6, 5), np.float64))


def test_op_temporaries_are_reused_per_thread():
    """Temporaries (im2col columns, partial sums) come from one buffer per name, dtype and
    thread, grown on demand, instead of an allocation per call."""
    import threading
    from fastnn.kernels.cuda._common import scratch
    a = scratch("test_buffer", (3, 4), np.float32)
    a.copy_to_device(np.arange(12, dtype=np.float32).reshape(3, 4))
    b = scratch("test_buffer", (2, 2), np.float32)  # smaller: a view of the same memory
    np.testing.assert_array_equal(b.copy_to_host(), [[0, 1], [2, 3]])
    assert scratch("test_buffer", (2, 2), np.float64).dtype == np.float64
    assert scratch("test_buffer", (5, 5), np.float32).shape == (5, 5)  # grown
    other = []
    thread = threading.Thread(target=lambda: other.append(
        scratch("test_buffer", (2, 2), np.float32)))
    thread.start()
    thread.join()
    other[0].copy_to_device(np.full((2, 2), -1, np.float32))
    assert np.all(scratch("test_buffer", (2, 2), np.float32).copy_to_host() != -1)


# ------------------------------------------------------- strided device inputs, out= overlap
@pytest.mark.parametrize("shape,index", [((7,), np.s_[::2]), ((6, 9), np.s_[:, ::2]),
                                         ((4, 6, 5), np.s_[1:, ::2, ::-1]),
                                         ((3, 4, 5, 6), np.s_[:, 1::2, :, ::3]),
                                         ((2, 3, 2, 3, 2), np.s_[:, :, :, :, ::-1])])
def test_strided_device_arrays_copied_on_device(shape, index):
    from fastnn.kernels.cuda.device import contiguous_copy
    host = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    copy = contiguous_copy(cuda.to_device(host)[index])
    np.testing.assert_array_equal(copy.copy_to_host(), host[index])


def test_reversed_and_strided_device_arrays_reach_the_host(monkeypatch):
    """numba's copy_to_host on a GPU refuses negative strides (NotImplementedError: 'D->H
    copy not implemented for negative strides'), which the simulator's copies: made so
    here in both. Reversed views of any rank reach the host through a gather on the
    device, and a strided array an out= of its shape (numba's refused other strides)."""
    from fastnn import device as fd
    from fastnn.kernels.cuda._common import to_host
    from fastnn.kernels.cuda.device import contiguous_copy
    host = np.random.default_rng(0).standard_normal((2, 3, 2, 3, 2)).astype(np.float32)
    d = cuda.to_device(host)
    copy_to_host = type(d).copy_to_host

    def gpu_copy_to_host(self, *args, **kwargs):
        if any(s < 0 for s in self.strides):
            raise NotImplementedError("D->H copy not implemented for negative strides")
        return copy_to_host(self, *args, **kwargs)

    monkeypatch.setattr(type(d), "copy_to_host", gpu_copy_to_host)
    # (no Ellipsis: numba's device arrays on a GPU refuse it, TypeError, where the
    # simulator's, which index a NumPy array, take it)
    for index in (np.s_[:, :, :, :, ::-1], np.s_[::-1, :, 1:, ::2], np.s_[0, ::-1, 0]):
        np.testing.assert_array_equal(contiguous_copy(d[index]).copy_to_host(), host[index])
        np.testing.assert_array_equal(to_host(d[index]), host[index])
        np.testing.assert_array_equal(fd.to_host(d[index]), host[index])
    out = np.zeros((2, 3, 2, 3), np.float32)
    assert to_host(d[:, :, :, :, 1], out) is out
    np.testing.assert_array_equal(out, host[..., 1])


def test_ops_take_strided_device_arrays():
    """as NumPy inputs: a strided device array is copied (it was refused)"""
    from fastnn import ops
    host = np.linspace(-2, 2, 96, dtype=np.float32).reshape(8, 12)
    x = cuda.to_device(host)
    w = np.arange(18, dtype=np.float32).reshape(3, 6) / 10
    with fastnn.use_backend("cuda"):
        relu = ops.relu(x[:, ::2]).copy_to_host()
        linear = ops.linear_forward(x[:, ::2], cuda.to_device(w), None).copy_to_host()
        loss, grad = ops.softmax_cross_entropy(x[::2], np.zeros(4, np.int64))
    np.testing.assert_array_equal(relu, np.maximum(host[:, ::2], 0))
    np.testing.assert_allclose(linear, host[:, ::2] @ w.T, rtol=1e-5, atol=1e-5)
    want = F.cross_entropy(t(host[::2], True), torch.zeros(4, dtype=torch.int64))
    want.backward()
    assert loss == pytest.approx(want.item(), rel=1e-5)


def test_device_out_overlapping_an_input_refused():
    from fastnn import ops
    x = cuda.to_device(np.ones((4, 8), np.float32))
    w = cuda.to_device(np.ones((8, 8), np.float32))
    with fastnn.use_backend("cuda"):
        with pytest.raises(ValueError, match="out shares memory with x"):
            ops.linear_forward(x, w, None, out=x)
        assert ops.relu(x, out=x) is not None   # elementwise in place stays allowed


@pytest.mark.parametrize("name,value", [("THREADS", 1024), ("THREADS", 48), ("BN_THREADS", 2048),
                                        ("TILE", 33), ("MAX_BLOCKS", 65536)])
def test_config_refuses_what_a_gpu_cannot_launch(monkeypatch, name, value):
    """1024-thread blocks of the register-heavy row kernels exceed a block's registers;
    2048 threads, a 33 x 33 tile or 65,536 blocks along y exceed the hardware's limits
    (the simulator runs them all)."""
    monkeypatch.setattr(config, name, value)
    with pytest.raises(ValueError, match=name):
        config.check()


def test_reductions_refuse_a_block_size_they_cannot_halve(monkeypatch, rng):
    """The shared-memory tree reductions halve the block (column sums of a bias
    gradient over THREADS // 32 rows of threads, depthwise's weight gradient over
    THREADS): with 96 threads a block they dropped a third of the sum without an error
    (no launch of theirs reached config.check); and the numba GEMM launched a 33 x 33
    tile, which a GPU refuses and the simulator runs."""
    x = rng.standard_normal((5, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((3, 1, 3, 3)).astype(np.float32)
    g = rng.standard_normal((5, 3, 4, 4)).astype(np.float32)
    rows = rng.standard_normal((40, 7)).astype(np.float32)
    monkeypatch.setattr(config, "THREADS", 96)
    with pytest.raises(ValueError, match="THREADS"):
        C.linear_backward(rows, rows, np.ones((7, 7), np.float32),
                          grad_bias=np.zeros(7, np.float32), need_grad_in=False)
    with pytest.raises(ValueError, match="THREADS"):
        C.depthwise_conv2d_backward(g, x, w, grad_weight=np.zeros_like(w), need_grad_in=False)
    monkeypatch.setattr(config, "THREADS", 32)
    monkeypatch.setattr(config, "TILE", 33)
    from fastnn.kernels.cuda import gemm
    monkeypatch.setattr(gemm, "_cupy", None)  # the numba GEMM, also where CuPy is
    monkeypatch.setattr(gemm, "_raw_cublas", None)
    a = cuda.to_device(rows)
    with pytest.raises(ValueError, match="TILE"):
        gemm.gemm(a, a, cuda.device_array((40, 40), np.float32), trans_b=True)


def test_launch_sizes_of_large_shapes_stay_inside_a_gpus_limits(monkeypatch, rng):
    """Every kernel launch the ops make for large shapes, recorded instead of run (no
    kernel runs, nothing is compared), at the default launch configuration: at most 1024
    threads a block (x, y <= 1024, z <= 64), a grid of at most 2**31 - 1 blocks along x
    and 65,535 along y and z, and the block sizes the reductions halve powers of two.
    The simulator runs any of these, so only this check shows a launcher that outgrows
    them."""
    from fastnn.kernels.cuda import dense, gemm, launch
    for name, value in (("THREADS", 256), ("MAX_BLOCKS", 4096), ("BN_THREADS", 1024),
                        ("ROW_LANES", 32), ("TILE", 16)):
        monkeypatch.setattr(config, name, value)
    launches = []

    def record(kernel, launch_config):
        launches.append((getattr(kernel, "__name__", repr(kernel)), launch_config))
        return lambda *args: None

    monkeypatch.setattr(type(C.activations._relu), "__getitem__", record)
    monkeypatch.setattr(gemm, "_cupy", None)   # the tiled GEMM, also where CuPy is
    monkeypatch.setattr(gemm, "_raw_cublas", None)
    f = np.float32
    rows = 300_000   # beyond dense.DIRECT_ROWS: partial column sums along grid y
    tall = np.zeros((rows, 3), f)
    C.relu(np.zeros(1 << 22, f))
    C.linear_backward(tall, tall, np.zeros((3, 3), f), grad_weight=np.zeros((3, 3), f),
                      grad_bias=np.zeros(3, f))
    C.linear_forward(np.zeros((3000, 4), f), np.zeros((3000, 4), f), np.zeros(3000, f))
    C.softmax(tall)
    C.softmax_cross_entropy(tall, np.zeros(rows, np.int64))
    C.layer_norm_forward(tall)
    wide = np.zeros((4, 100_000), f)
    ones = np.ones(100_000, f)
    C.batchnorm_forward(wide, ones, ones, ones.copy(), ones.copy())
    C.batchnorm_backward(wide, wide, ones, ones, ones, grad_weight=ones.copy(),
                         grad_bias=ones.copy())
    planes = np.zeros((2, 70_000, 2, 2), f)
    C.batchnorm_forward(planes, ones[:70_000], ones[:70_000], ones[:70_000].copy(),
                        ones[:70_000].copy())
    C.depthwise_conv2d_backward(np.zeros((2, 70_000, 1, 1), f), planes,
                                np.zeros((70_000, 1, 2, 2), f),
                                grad_weight=np.zeros((70_000, 1, 2, 2), f),
                                grad_bias=np.zeros(70_000, f))
    assert len(launches) >= 14, launches
    for name, (grid, block) in launches:
        gx, gy, gz = launch._dims(grid)
        bx, by, bz = launch._dims(block)
        assert bx <= 1024 and by <= 1024 and bz <= 64 and bx * by * bz <= 1024, (name, block)
        assert 1 <= gx < 2 ** 31 and 1 <= gy <= 65535 and 1 <= gz <= 65535, (name, grid)
        # blocks the tree reductions halve: powers of two along x and y
        assert bx & (bx - 1) == 0 and by & (by - 1) == 0, (name, block)
    assert any(launch._dims(grid)[1] > 1 for _, (grid, _) in launches), \
        "no launch used grid y (dense's partial column sums)"
    assert dense.DIRECT_ROWS < rows


class _BrokenCuPyFinder:
    """A CuPy that fails at import with its own error, not ImportError (a wheel built
    for another CUDA)."""

    def find_spec(self, name, path=None, target=None):
        if name == "cupy" or name.startswith("cupy."):
            raise RuntimeError("CUDA driver version is insufficient for CUDA runtime")
        return None


def test_a_broken_cupy_falls_back_to_the_numba_gemm_with_a_warning(monkeypatch):
    import sys

    from fastnn.kernels.cuda import gemm
    monkeypatch.setattr(gemm, "SIMULATOR", False)
    monkeypatch.setattr(gemm, "_CUPY_UNUSABLE", "")
    monkeypatch.setattr(config, "GEMM", "auto")
    for name in [n for n in sys.modules if n == "cupy" or n.startswith("cupy.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_BrokenCuPyFinder()] + sys.meta_path)
    with pytest.warns(RuntimeWarning, match="CuPy failed at import.*numba GEMM"):
        assert gemm._load_cupy() is None
    assert "insufficient" in gemm._CUPY_UNUSABLE
    monkeypatch.setattr(config, "GEMM", "cublas")   # asked for cuBLAS: the failure stands
    with pytest.raises(RuntimeError, match="insufficient"):
        gemm._load_cupy()
