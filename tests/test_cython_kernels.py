"""Cython-specific properties of the 'cython' backend that the conformance suite does
not cover: 1 and 2 threads give the same results, nothing is allocated when every
out=/grad=/scratch= buffer is passed, and both float types keep their dtype.

Correctness against the reference and PyTorch is tests/test_conformance.py's job.
"""
import math
import tracemalloc

import numpy as np
import pytest

import fastnn
from fastnn import backend

pytestmark = pytest.mark.skipif("cython" not in fastnn.backends(),
                                reason="the Cython extensions are not built")

# NumPy reports its array-data allocations to tracemalloc under this domain
# (numpy/_core/include/numpy/ndarraytypes.h: NPY_TRACE_DOMAIN).
NPY_TRACE_DOMAIN = 389047


@pytest.fixture
def K():
    return backend.load("cython")


@pytest.fixture
def threads():
    """Restore the thread count a test changes."""
    before = fastnn.threads.get_num_threads()
    yield fastnn.threads
    fastnn.set_num_threads(before)


def _workload(K, dtype, rng):
    """Every op family at sizes above the kernels' parallel threshold (32768 elements),
    returning every output as a list of arrays and floats."""
    x = rng.standard_normal((256, 300)).astype(dtype)
    w = (rng.standard_normal((200, 300)) * 0.1).astype(dtype)
    b = rng.standard_normal(200).astype(dtype)
    g = rng.standard_normal((256, 200)).astype(dtype)
    labels = rng.integers(0, 300, 256)
    img = rng.standard_normal((8, 16, 20, 20)).astype(dtype)
    narrow = rng.standard_normal((2048, 24)).astype(dtype)  # BatchNorm1d's row-chunk path
    results = []
    y = K.linear_forward(x, w, b, "tanh")
    gw, gb = np.zeros_like(w), np.zeros_like(b)
    gi = K.linear_backward(g, x, w, y, "tanh", grad_weight=gw, grad_bias=gb)
    results += [y, gw, gb, gi]
    results += list(K.softmax_cross_entropy(x, labels))
    results += list(K.softmax_cross_entropy(x, K.softmax(x)))
    results += list(K.mse_loss(x, x[::-1].copy()))
    results += list(K.bce_loss(K.sigmoid(x), K.sigmoid(x[::-1].copy())))
    results += list(K.bce_with_logits_loss(x, K.sigmoid(x[::-1].copy())))
    results += list(K.smooth_l1_loss(x, x[::-1].copy(), 0.5))
    results += list(K.smooth_l1_loss(x, x[::-1].copy(), 0.0))
    results += [K.log_softmax(x), K.log_softmax_backward(x, K.log_softmax(x))]
    results += [K.silu(x), K.silu_backward(x, x), K.elu(x, 0.5), K.elu_backward(x, x, 0.5)]
    results += [K.softplus(x, 2.0, 3.0), K.softplus_backward(x, x, 2.0, 3.0),
                K.hardtanh(x, -0.5, 0.5), K.hardtanh_backward(x, x, -0.5, 0.5),
                K.softsign(x), K.softsign_backward(x, x), K.gelu_tanh(x),
                K.gelu_tanh_backward(x, x), K.mish(x), K.mish_backward(x, x),
                K.hardsigmoid(x), K.hardsigmoid_backward(x, x), K.hardswish(x),
                K.hardswish_backward(x, x)]
    results += [K.softmax(x), K.softmax_backward(x, K.softmax(x)), K.gelu(x),
                K.gelu_backward(x, x), K.leaky_relu_backward(x, x)]
    results += list(K.dropout_forward(x, 0.4, seed=7))
    lw, lb = rng.standard_normal(300).astype(dtype), rng.standard_normal(300).astype(dtype)
    ly, lmean, linv = K.layer_norm_forward(x, lw, lb)
    lgw, lgb = np.zeros(300, dtype), np.zeros(300, dtype)
    results += [ly, lmean, linv, lgw, lgb,
                K.layer_norm_backward(x[::-1].copy(), x, lw, lmean, linv, lgw, lgb)]
    for data in (x, img, narrow):
        c = data.shape[1]
        rm, rv = np.zeros(c, dtype), np.ones(c, dtype)
        wt, bt = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
        out, mean, invstd = K.batchnorm_forward(data, wt, bt, rm, rv)
        gw, gb = np.zeros(c, dtype), np.zeros(c, dtype)
        gin = K.batchnorm_backward(data[::-1].copy(), data, wt, mean, invstd,
                                   grad_weight=gw, grad_bias=gb)
        results += [out, mean, invstd, rm, rv, gw, gb, gin]
    p, v = x.copy(), np.zeros_like(x)
    K.sgd_update(p, x[::-1].copy(), v, 0.1, momentum=0.9, weight_decay=0.01)
    m1, m2 = np.zeros_like(x), np.zeros_like(x)
    q = x.copy()
    K.adam_update(q, x[::-1].copy(), m1, m2, step=3, weight_decay=0.01)
    q2, n1, n2, n3 = x.copy(), np.zeros_like(x), np.zeros_like(x), np.full_like(x, 0.5)
    K.adam_update(q2, x[::-1].copy(), n1, n2, step=3, weight_decay=0.01, max_exp_avg_sq=n3)
    results += [q2, n1, n2, n3]
    r, s, b, a = x.copy(), np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    K.rmsprop_update(r, x[::-1].copy(), s, 0.01, 0.9, 1e-8, 0.01, 0.5, b, a)
    ag_p, ag_s = x.copy(), np.full_like(x, 0.1)
    K.adagrad_update(ag_p, x[::-1].copy(), ag_s, 0.01, 0.01, 1e-8)
    results += [ag_p, ag_s]
    results += [r, s, b, a]
    results += [p, v, q, m1, m2]
    return results


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_one_and_two_threads_agree(K, threads, dtype):
    """Reductions merge fixed chunks in a fixed order and the dropout mask hashes
    (seed, index), so the kernels' own results are identical bit for bit; only
    the GEMMs (BLAS) are compared with a tolerance."""
    fastnn.set_num_threads(1)
    one = _workload(K, dtype, np.random.default_rng(1))
    fastnn.set_num_threads(2)
    serial = not K.module.backend_info()["openmp"]   # (FASTNN_NO_OPENMP=1: BLAS's alone)
    assert K.module.backend_info()["num_threads"] == (1 if serial else 2)
    two = _workload(K, dtype, np.random.default_rng(1))
    assert len(one) == len(two)
    for i, (a, b) in enumerate(zip(one, two)):
        if i < 4:    # the Linear layer's outputs go through BLAS, whose sums a thread
            # split may round differently in float32 (OpenBLAS on AMD Zen)
            np.testing.assert_allclose(a, b, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                       atol=1e-4 if dtype == np.float32 else 1e-12,
                                       err_msg=f"result {i}")
        else:
            np.testing.assert_array_equal(a, b, err_msg=f"result {i}")


def _numpy_bytes_allocated(fn):
    """Bytes of NumPy array data allocated while fn() runs (and still alive or not)."""
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        fn()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    only_numpy = [tracemalloc.DomainFilter(True, NPY_TRACE_DOMAIN)]
    diff = after.filter_traces(only_numpy).compare_to(before.filter_traces(only_numpy),
                                                      "filename")
    return sum(stat.size_diff for stat in diff if stat.size_diff > 0)


def test_numpy_tracks_allocations_in_the_domain_we_filter():
    """Guards the test below against passing vacuously."""
    assert _numpy_bytes_allocated(lambda: np.empty(1 << 16)) == 0   # freed at once
    keep = []
    assert _numpy_bytes_allocated(lambda: keep.append(np.ones(1 << 16))) >= 8 << 16


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_no_array_allocated_when_buffers_are_passed(K, dtype):
    rng = np.random.default_rng(0)
    n, fin, fout = 64, 300, 200
    x = rng.standard_normal((n, fin)).astype(dtype)
    w = rng.standard_normal((fout, fin)).astype(dtype)
    b = rng.standard_normal(fout).astype(dtype)
    y, g, scratch = (np.empty((n, fout), dtype) for _ in range(3))
    gw, gb, gi = np.zeros_like(w), np.zeros_like(b), np.empty_like(x)
    labels = rng.integers(0, fin, n)
    grad, out, mask = (np.empty_like(x) for _ in range(3))
    c = fin
    rm, rv, wt, bt = np.zeros(c, dtype), np.ones(c, dtype), np.ones(c, dtype), np.zeros(c, dtype)
    sm, si, bgw, bgb = (np.zeros(c, dtype) for _ in range(4))
    lsm, lsi = np.zeros(n, dtype), np.zeros(n, dtype)
    v, m1, m2 = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    scratch_vmax = np.zeros_like(w)
    g[...] = 1

    def step():
        K.linear_forward(x, w, b, "leaky_relu", out=y)
        K.linear_backward(g, x, w, y, "leaky_relu", grad_weight=gw, grad_bias=gb,
                          grad_in=gi, scratch=scratch)
        K.relu(x, out=out)
        K.relu_backward(x, out, out=out)
        K.gelu(x, out=out)
        K.gelu_backward(x, x, out=out)
        K.silu(x, out=out)
        K.elu_backward(x, x, 0.5, out=out)
        K.softplus(x, out=out)
        K.hardtanh_backward(x, x, out=out)
        K.softsign(x, out=out)
        K.gelu_tanh_backward(x, x, out=out)
        K.mish(x, out=out)
        K.mish_backward(x, x, out=out)
        K.hardswish(x, out=out)
        K.hardsigmoid_backward(x, x, out=out)
        K.softmax(x, out=out)
        K.softmax_backward(x, out, out=grad)
        K.log_softmax(x, out=out)
        K.log_softmax_backward(x, out, out=grad)
        K.softmax_cross_entropy(x, labels, grad=grad)
        K.mse_loss(x, out, grad=grad)
        K.bce_loss(K.sigmoid(x, out=out), out, grad=grad)
        K.dropout_forward(x, 0.5, 3, mask=mask, out=out)
        K.dropout_backward(x, mask, out=out)
        K.batchnorm_forward(x, wt, bt, rm, rv, out=out, save_mean=sm, save_invstd=si)
        K.batchnorm_backward(x, x, wt, sm, si, grad_weight=bgw, grad_bias=bgb, grad_in=grad)
        K.layer_norm_forward(x, wt, bt, out=out, save_mean=lsm, save_invstd=lsi)
        K.layer_norm_backward(x, x, wt, lsm, lsi, grad_weight=bgw, grad_bias=bgb, grad_in=grad)
        K.sgd_update(w, gw, v, 0.01, momentum=0.9)
        K.adam_update(w, gw, m1, m2, 1)
        K.adam_update(w, gw, m1, m2, 2, max_exp_avg_sq=scratch_vmax)
        K.rmsprop_update(w, gw, m1, 0.01, 0.9, 1e-8, 0.0, 0.5, m2)
        K.adagrad_update(w, gw, m1, 0.01)

    step()   # first call may import or cache something; the steady state is what counts
    assert _numpy_bytes_allocated(step) == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_outputs_keep_the_input_dtype(K, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 6)).astype(dtype)
    w = rng.standard_normal((4, 6)).astype(dtype)
    arrays = [K.linear_forward(x, w), K.linear_backward(np.ones((5, 4), dtype), x, w),
              K.softmax_cross_entropy(x, np.arange(5))[1], K.gelu(x),
              K.dropout_forward(x, 0.5, 1)[1], K.batchnorm_forward(
                  x, np.ones(6, dtype), np.zeros(6, dtype), np.zeros(6, dtype),
                  np.ones(6, dtype))[0]]
    assert all(a.dtype == dtype for a in arrays)
    assert isinstance(K.mse_loss(x, x)[0], float)


def test_float32_and_float64_runs_agree(K):
    """The same inputs in both precisions give the same answers to float32 accuracy:
    the float32 path (fast exp and tanh, float accumulators) is not a different op."""
    rng = np.random.default_rng(0)
    x64 = rng.standard_normal((300, 257)) * 4
    x32 = x64.astype(np.float32)
    for op in (K.sigmoid, K.tanh, K.gelu, K.softmax):
        np.testing.assert_allclose(op(x32), op(x64), rtol=2e-6, atol=2e-7, err_msg=op.__name__)
    # x - logsumexp(x) cancels near 0: float32's error is relative to |x| (up to ~20 here)
    np.testing.assert_allclose(K.log_softmax(x32), K.log_softmax(x64), rtol=2e-6, atol=1e-5)
    labels = rng.integers(0, 257, 300)
    l32, g32 = K.softmax_cross_entropy(x32, labels)
    l64, g64 = K.softmax_cross_entropy(x64, labels)
    assert l32 == pytest.approx(l64, rel=1e-6)
    np.testing.assert_allclose(g32, g64, rtol=1e-5, atol=1e-9)


def test_fast_float_exp_and_tanh_edges(K):
    """The vectorizable float32 exp/tanh in _fastnn_math.h at the edges of their range."""
    x = np.array([-np.inf, -1e4, -88.0, -87.0, -1e-8, 0.0, 1e-8, 0.1, 0.124, 0.126, 20.0,
                  88.0, 89.0, np.inf, np.nan], np.float32)
    with np.errstate(over="ignore"):
        want_sig = 1 / (1 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(K.sigmoid(x), want_sig, rtol=2e-7, atol=1e-37)
    np.testing.assert_allclose(K.tanh(x), np.tanh(x.astype(np.float64)), rtol=3e-7)
    big = np.array([[0.0, 1e4, -1e4]], np.float32)
    np.testing.assert_array_equal(K.softmax(big), [[0.0, 1.0, 0.0]])


def test_float32_exp_keeps_its_accuracy_at_large_arguments(K):
    """fnn_expf's reduction x - n ln2 (ln2 split in two, the parts held apart by fmaf,
    or in double in a build without FMA: FASTNN_NATIVE=0) through the sigmoid, whose
    e^-x runs up to x = 87: within 4 ulp of the float64 value in either build. The
    portable build's plain multiply-add of the split, which -fassociative-math folded,
    was 67 ulp off at x = -72."""
    x = np.linspace(-87.0, 30.0, 100_001, dtype=np.float32)
    exact = 1 / (1 + np.exp(-x.astype(np.float64)))
    ulps = np.abs(K.sigmoid(x) - exact) / np.spacing(exact.astype(np.float32))
    assert ulps.max() <= 4, x[np.argmax(ulps)]


def _float32s_from(lo, hi):
    """Every float32 from lo to hi (both > 0), in order."""
    return np.arange(np.float32(lo).view(np.int32), np.float32(hi).view(np.int32) + 1,
                     dtype=np.int32).view(np.float32)


def test_float32_exp_over_its_whole_range(K):
    """fnn_expf, through log_softmax's backward (g - exp(y) sum(g): a column of g = 0
    beside one of g = -1 gets exp(y) itself). Within 1.3 ulp of exp up to 127.5 ln2 =
    88.376; above, 2^n stops at 2^127 and the polynomial runs on r up to 3 ln2 / 2:
    within 5.4 ulp, checked at every float32 there (45k; 5.33 at 88.72267: over every
    float32 of -87.34 .. 88.72 in C, 1.26 and 5.33, in either build). 0 below -87.34,
    inf above 88.72, NaN propagates."""
    top = _float32s_from(88.376, 88.72283)
    grid = np.linspace(-87.33654, 88.376, 200_001).astype(np.float32)
    edges = np.float32([-np.inf, -1e30, -87.34, 88.723, 1e30, np.inf, np.nan])
    y = np.concatenate([grid, top, edges])
    ys = np.stack([np.full_like(y, -np.inf), y], axis=1)
    g = np.stack([np.full_like(y, -1.0), np.zeros_like(y)], axis=1)
    e = K.log_softmax_backward(g, ys)[:, 1]
    exact = np.exp(y[:-len(edges)].astype(np.float64))
    ulps = np.abs(e[:-len(edges)] - exact) / np.spacing(exact.astype(np.float32))
    assert ulps[:len(grid)].max() <= 1.3, grid[np.argmax(ulps[:len(grid)])]
    assert ulps.max() <= 5.4, y[np.argmax(ulps)]
    np.testing.assert_array_equal(e[-len(edges):], [0, 0, 0, np.inf, np.inf, np.inf, np.nan])


@pytest.mark.parametrize("target", [0.0, 1e-30])   # the one-log loop and the two-log one
def test_float32_bce_log1p_keeps_its_accuracy_near_zero(K, target):
    """BCE's log1p(-p) in float32 is log(1 - p) plus the rounding error of 1 - p
    (fnn_one_plus_err_f: an fmaf, or double arithmetic in a build without FMA): full
    relative accuracy for a confident p in either build. The portable build's error
    term folded to 0 under -fassociative-math: -log1p(-1e-7) gave 1.19e-7, and
    p = 1e-20 a loss of 0."""
    for p in (1e-20, 2.0 ** -26, 3e-8, 1e-7, 2.0 ** -20, 1e-3, 0.25):
        loss, _ = K.bce_loss(np.float32([p]), np.float32([target]))
        p = float(np.float32(p))
        expected = -(target * math.log(p) + (1 - target) * math.log1p(-p))
        assert loss == pytest.approx(expected, rel=3e-7, abs=0), p


def test_work_buffers_are_each_threads_own():
    """The kernels keep their work buffers per calling thread (_workspace.h): four
    Python threads running convolutions, BatchNorm, LayerNorm and Linear backward of
    different shapes at once get what each gets alone, bit for bit, and so does a
    thread started after they have exited (their buffers freed)."""
    import threading

    from fastnn import ops

    def work(seed):
        rng = np.random.default_rng(seed)
        n, c = 3 + seed, 4 + 2 * seed
        x = rng.standard_normal((n, c, 9, 9)).astype(np.float32)
        w = rng.standard_normal((c + 1, c, 3, 3)).astype(np.float32)
        y = ops.conv2d_forward(x, w, None, padding=1)
        grads = ops.conv2d_backward(np.ones_like(y), x, w, padding=1)
        flat = rng.standard_normal((n * 8, c * 5)).astype(np.float32)
        ones = np.ones(c * 5, np.float32)
        bn = ops.batchnorm_forward(flat, ones, 0 * ones, 0 * ones, ones.copy())
        bn_grads = ops.batchnorm_backward(np.ones_like(flat), flat, ones, bn[1], bn[2],
                                          grad_weight=0 * ones, grad_bias=0 * ones)
        ln = ops.layer_norm_forward(flat)
        ln_grads = ops.layer_norm_backward(np.ones_like(flat), flat, ones, ln[1], ln[2],
                                           grad_weight=0 * ones, grad_bias=0 * ones)
        lin_bias = np.zeros(c, np.float32)
        lin = ops.linear_backward(np.ascontiguousarray(flat[:, :c]),
                                  np.ascontiguousarray(flat[:, c:3 * c]),
                                  np.ones((c, 2 * c), np.float32),
                                  grad_weight=np.zeros((c, 2 * c), np.float32),
                                  grad_bias=lin_bias)
        out = []
        for a in (y, grads, bn, bn_grads, ln, ln_grads, lin, lin_bias):
            out += [np.array(v) for v in (a if isinstance(a, tuple) else (a,))
                    if v is not None]
        return out

    with fastnn.use_backend("cython"):
        alone = [work(s) for s in range(4)]
        for _ in range(3):
            got = [None] * 4

            def run(s):
                with fastnn.use_backend("cython"):
                    got[s] = [work(s) for _ in range(5)][-1]

            threads = [threading.Thread(target=run, args=(s,)) for s in range(4)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            for s in range(4):
                assert len(got[s]) == len(alone[s])
                for a, b in zip(got[s], alone[s]):
                    np.testing.assert_array_equal(a, b)


def test_gemm_pointer_setters_take_both_addresses_or_neither():
    # the Linear and conv modules each hold a GemmPair (kernels/cython/_blas.pxd): a
    # half-set pair would send one dtype's products to a library the other never sees
    from fastnn.kernels.cython import _conv, _dense
    for setter, in_use in ((_conv.use_mkl_gemm, _conv.mkl_gemm_in_use),
                           (_dense.use_ilp64_gemm, _dense.ilp64_gemm_in_use)):
        before = in_use()
        with pytest.raises(ValueError, match="both addresses or neither"):
            setter(1, 0)
        with pytest.raises(ValueError, match="both addresses or neither"):
            setter(0, 1)
        assert in_use() == before   # a refused call changes nothing


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_entries_take_arrays_of_any_shape_and_refuse_what_they_cannot_read(dtype):
    # _activations.unary/binary read raw pointers of whole arrays (not 1-D memoryviews,
    # whose dispatch was most of a small op's time): they must still refuse every array
    # they would misread or write where they may not, before writing anything
    from fastnn.kernels.cython import _activations
    K = backend.load("cython")
    relu, relu_grad = 0, 0   # U_RELU, B_RELU
    x = np.array([[-1.5, 2.0, 0.0], [3.0, -0.5, 4.0]], dtype=dtype)
    out = np.full_like(x, 7)
    _activations.unary(relu, x, out)
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    grad = np.full_like(x, 7)
    _activations.binary(relu_grad, x, out, grad)
    np.testing.assert_array_equal(grad, np.where(out > 0, x, 0))
    np.testing.assert_array_equal(K.relu(np.asarray(dtype(-2.0))), 0)   # 0-d
    other = np.float64 if dtype == np.float32 else np.float32
    bad = [(TypeError, x.astype(np.int64), np.empty((2, 3), np.int64)),
           (TypeError, x, np.empty((2, 3), other)),
           (ValueError, x, np.empty((7,), dtype)),
           (ValueError, np.asfortranarray(x), np.empty((2, 3), dtype)),
           (ValueError, x[:, ::2], np.empty((2, 2), dtype)),
           (ValueError, x, np.empty((2, 3), dtype)[:, ::-1])]
    readonly = np.full((2, 3), 7, dtype)
    readonly.flags.writeable = False
    bad.append((ValueError, x, readonly))
    for error, a, b in bad:
        before = b.copy()
        with pytest.raises(error):
            _activations.unary(relu, a, b)
        with pytest.raises(error):
            _activations.binary(relu_grad, a, a, b)
        np.testing.assert_array_equal(b, before)
    with pytest.raises(ValueError):   # saved of another size
        _activations.binary(relu_grad, x, np.empty(5, dtype), np.empty_like(x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_loss_and_update_entries_check_the_arrays_they_read(dtype):
    # _dense, softmax_cross_entropy_labels, sgd_update and adam_update read raw pointers
    # (_ndarrays.pxd), not memoryviews: an array of the wrong dtype, shape or layout, or
    # a read-only output, is refused before anything is written; the shapes the
    # memoryviews never compared (weight against x, out against both) are checked too
    from fastnn.kernels.cython import _dense, _losses, _optim
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in ((4, 3), (5, 3), (5,)))
    out = np.empty((4, 5), dtype)
    _dense.linear_forward(x, w, b, 1, 0.01, out)   # ACT_RELU
    np.testing.assert_allclose(out, np.maximum(x @ w.T + b, 0), rtol=1e-5, atol=1e-6)
    readonly = np.empty((4, 5), dtype)
    readonly.flags.writeable = False
    other = np.float64 if dtype == np.float32 else np.float32
    bad_forward = [(TypeError, (x, w.astype(other), b, out)),
                   (ValueError, (x, w[:, :2].copy(), b, out)),        # in_features
                   (ValueError, (x, w, b[:4].copy(), out)),           # bias length
                   (ValueError, (x, w, b, np.empty((4, 6), dtype))),  # out shape
                   (ValueError, (x, np.asfortranarray(w), b, out)),
                   (ValueError, (x, w, b, readonly)),
                   (ValueError, (x.reshape(-1), w, b, out))]
    for error, (xa, wa, ba, oa) in bad_forward:
        before = oa.copy()
        with pytest.raises(error):
            _dense.linear_forward(xa, wa, ba, 0, 0.01, oa)
        np.testing.assert_array_equal(oa, before)
    g = rng.standard_normal((4, 5)).astype(dtype)
    gw, gb, gi = np.zeros((5, 3), dtype), np.zeros(5, dtype), np.empty((4, 3), dtype)
    _dense.linear_backward(g, x, w, None, 0, 0.01, gw, gb, gi, None, False)
    np.testing.assert_allclose(gw, g.T @ x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gb, g.sum(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gi, g @ w, rtol=1e-5, atol=1e-6)
    for kwargs in ({"grad_out": g[:3].copy()}, {"gw": np.zeros((3, 5), dtype)},
                   {"gi": np.empty((4, 3), other)}, {"act": 1}):   # relu without y
        args = dict(grad_out=g, gw=gw.copy(), gi=gi.copy(), act=0)
        args.update(kwargs)
        kept = args["gw"].copy()
        with pytest.raises((TypeError, ValueError)):
            _dense.linear_backward(args["grad_out"], x, w, None, args["act"], 0.01,
                                   args["gw"], None, args["gi"], None, False)
        np.testing.assert_array_equal(args["gw"], kept)
    logits, labels, grad = x.copy(), np.array([0, 2, 1, 0]), np.empty((4, 3), dtype)
    loss = _losses.softmax_cross_entropy_labels(logits, labels, grad)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(loss, -np.log(p[np.arange(4), labels]).mean(), rtol=1e-5)
    for error, args in ((TypeError, (logits, labels.astype(np.int32), grad)),
                        (ValueError, (logits, labels[:3].copy(), grad)),
                        (ValueError, (logits, labels, np.empty((3, 4), dtype)))):
        with pytest.raises(error):
            _losses.softmax_cross_entropy_labels(*args)
    # the updates take arrays of any shape with one size (a bucket's views, a 2-D weight)
    param, velocity = w.copy(), np.zeros((5, 3), dtype)
    _optim.sgd_update(param, gw, velocity, 0.1, 0.9, 0.0, False)
    np.testing.assert_allclose(param, w - dtype(0.1) * gw, rtol=1e-6)
    for error, args in ((ValueError, (param, gw[:4], velocity)),
                        (TypeError, (param, gw.astype(other), velocity)),
                        (ValueError, (param, gw, None)),            # momentum, no buffer
                        (ValueError, (param.T, gw, velocity))):     # strided
        kept = param.copy()
        with pytest.raises(error):
            _optim.sgd_update(*args, 0.1, 0.9, 0.0, False)
        np.testing.assert_array_equal(param, kept)
    m, v = np.zeros_like(param), np.zeros_like(param)
    _optim.adam_update(param, gw, m, v, 1, 1e-3, 0.9, 0.999, 1e-8, 0.0)
    with pytest.raises(ValueError):
        _optim.adam_update(param, gw, m, v[:2], 2, 1e-3, 0.9, 0.999, 1e-8, 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchnorm_entries_take_any_rank_and_refuse_what_they_cannot_read(dtype):
    # _batchnorm's entries read raw pointers (_ndarrays.pxd) of (N, C, *spatial) arrays,
    # not (N, C, S) memoryviews: every rank the layers use gives the reference's
    # result, and a wrong dtype, shape, layout or a read-only output is refused before
    # anything (output, running statistics, gradients) is written
    from fastnn.kernels.cython import _batchnorm
    ref = backend.load("numpy")
    rng = np.random.default_rng(0)
    for shape in ((6, 5), (6, 5, 7), (6, 5, 3, 4)):
        x = rng.standard_normal(shape).astype(dtype)
        g = rng.standard_normal(shape).astype(dtype)
        c = shape[1]
        w, b = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
        for mean_only in (False, True):
            stats = [np.zeros(c, dtype), np.ones(c, dtype)]
            want = ref.batchnorm_forward(x, w, b, stats[0].copy(), stats[1].copy(), True,
                                         0.1, 1e-5, mean_only)
            out, sm, si = np.empty_like(x), np.empty(c, dtype), np.empty(c, dtype)
            _batchnorm.batchnorm_forward(x, w, b, stats[0], stats[1], True, 0.1, 1e-5,
                                         mean_only, out, sm, None if mean_only else si)
            tol = dict(rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(out, want[0], **tol)
            np.testing.assert_allclose(sm, want[1], **tol)
            np.testing.assert_allclose(stats[0], 0.1 * want[1], **tol)
            grads = np.zeros(c, dtype), np.zeros(c, dtype), np.empty_like(x)
            want_g = ref.batchnorm_backward(g, x, w, want[1], want[2], True, mean_only,
                                            np.zeros(c, dtype), np.zeros(c, dtype))
            _batchnorm.batchnorm_backward(g, x, w, sm, None if mean_only else si, True,
                                          mean_only, *grads)
            np.testing.assert_allclose(grads[2], want_g, **tol)
            np.testing.assert_allclose(grads[1], g.sum(axis=(0,) + tuple(range(2, x.ndim))),
                                       **tol)
    x = rng.standard_normal((4, 3, 2)).astype(dtype)
    c, other = 3, (np.float64 if dtype == np.float32 else np.float32)
    readonly = np.empty_like(x)
    readonly.flags.writeable = False

    def forward_args(**change):
        args = dict(x=x, weight=np.ones(c, dtype), bias=np.zeros(c, dtype),
                    running_mean=np.zeros(c, dtype), running_var=np.ones(c, dtype),
                    out=np.full_like(x, 7), save_mean=np.empty(c, dtype),
                    save_invstd=np.empty(c, dtype))
        args.update(change)
        return args

    bad = [(TypeError, dict(weight=np.ones(c, other))),
           (TypeError, dict(out=np.empty(x.shape, other))),
           (ValueError, dict(out=np.empty((4, 3, 3), dtype))),          # out shape
           (ValueError, dict(out=np.empty((4, 6), dtype))),             # out rank
           (ValueError, dict(bias=np.zeros(c + 1, dtype))),              # channels
           (ValueError, dict(running_var=np.ones((c, 1), dtype))),
           (ValueError, dict(x=np.asfortranarray(x))),
           (ValueError, dict(out=readonly)),
           (ValueError, dict(save_invstd=None)),
           (ValueError, dict(x=x.reshape(-1), out=np.empty(x.size, dtype)))]
    for error, change in bad:
        args = forward_args(**change)
        kept = {k: v.copy() for k, v in args.items() if k != "x" and v is not None}
        with pytest.raises(error):
            _batchnorm.batchnorm_forward(args["x"], args["weight"], args["bias"],
                                         args["running_mean"], args["running_var"], True,
                                         0.1, 1e-5, False, args["out"], args["save_mean"],
                                         args["save_invstd"])
        for k, v in kept.items():
            np.testing.assert_array_equal(args[k], v, err_msg=k)
    with pytest.raises(ValueError, match="eval mode"):
        _batchnorm.batchnorm_forward(x, None, None, None, None, False, 0.1, 1e-5, False,
                                     np.empty_like(x), np.empty(c, dtype), np.empty(c, dtype))
    sm, si = np.zeros(c, dtype), np.ones(c, dtype)
    for error, g, gw, gi in ((ValueError, x[:, :2].copy(), None, None),       # grad_out
                             (TypeError, x, np.zeros(c, other), None),
                             (ValueError, x, np.zeros(c + 1, dtype), None),
                             (ValueError, x, None, readonly),
                             (ValueError, x, None, np.empty((4, 3), dtype))):
        gb = np.zeros(c, dtype)
        with pytest.raises(error):
            _batchnorm.batchnorm_backward(g, x, np.ones(c, dtype), sm, si, True, False,
                                          gw, gb, gi)
        np.testing.assert_array_equal(gb, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_hands_blas_a_long_batch_in_pieces(dtype):
    # BLAS takes 32-bit sizes, so a batch of 2^31 rows or more is handed over in pieces
    # of at most _dense._blas_rows rows (before, the row count was cut to 32 bits: rows
    # left unwritten, no error). Lowering the limit to 3 rows reaches every piece-wise
    # path (gemv for one output, gemm, grad_w added over the pieces) with small arrays.
    from fastnn.kernels.cython import _dense
    rng = np.random.default_rng(1)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12)
    previous = _dense._set_blas_rows(3)
    try:
        for n, fin, fout in ((10, 4, 5), (10, 4, 1), (7, 1, 3), (3, 2, 2), (1, 3, 4),
                             (8, 0, 3)):
            x = rng.standard_normal((n, fin)).astype(dtype)
            w = rng.standard_normal((fout, fin)).astype(dtype)
            b = rng.standard_normal(fout).astype(dtype)
            g = rng.standard_normal((n, fout)).astype(dtype)
            for transposed in (None, np.empty((fout, n), dtype)):
                out = np.full((n, fout), np.nan, dtype)
                _dense.linear_forward(x, w, b, 0, 0.01, out, transposed)
                np.testing.assert_allclose(out, x @ w.T + b, **tol)
            for accumulate in (True, False):
                gw = np.ones((fout, fin), dtype)
                gb = np.ones(fout, dtype)
                gi = np.full((n, fin), np.nan, dtype)
                _dense.linear_backward(g, x, w, None, 0, 0.01, gw, gb, gi, None, accumulate)
                np.testing.assert_allclose(gw, g.T @ x + accumulate, **tol)
                np.testing.assert_allclose(gb, g.sum(0) + accumulate, **tol)
                np.testing.assert_allclose(gi, g @ w, **tol)
    finally:
        _dense._set_blas_rows(previous)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_entry_takes_any_shape_and_refuses_what_it_cannot_read(dtype):
    # _dropout.dropout_forward reads raw pointers (_ndarrays.pxd), not 1-D memoryviews of
    # reshapes: arrays of any shape give the mask of their flat view, and a wrong dtype,
    # size, layout or a read-only output is refused before anything is written
    from fastnn.kernels.cython import _dropout
    x = np.random.default_rng(0).standard_normal((6, 5, 4)).astype(dtype)
    mask, out = np.full_like(x, 7), np.full_like(x, 7)
    _dropout.dropout_forward(x, 0.25, 11, mask, out)
    flat_mask, flat_out = np.empty(x.size, dtype), np.empty(x.size, dtype)
    _dropout.dropout_forward(x.reshape(-1), 0.25, 11, flat_mask, flat_out)
    np.testing.assert_array_equal(mask.reshape(-1), flat_mask)
    np.testing.assert_array_equal(out, x * mask)
    assert set(np.unique(mask)) <= {0, dtype(1 / 0.75)}
    readonly = np.empty_like(x)
    readonly.flags.writeable = False
    other = np.float64 if dtype == np.float32 else np.float32
    for error, m, o in ((TypeError, np.empty(x.shape, other), out),
                        (ValueError, np.empty(x.size - 1, dtype), out),
                        (ValueError, mask, np.empty((5, 6, 4), dtype)[:, ::-1]),
                        (ValueError, mask, readonly)):
        kept = m.copy(), o.copy()
        with pytest.raises(error):
            _dropout.dropout_forward(x, 0.25, 11, m, o)
        np.testing.assert_array_equal(m, kept[0])
        np.testing.assert_array_equal(o, kept[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layernorm_entries_check_the_arrays_they_read(dtype):
    # _layernorm's entries read raw pointers (_ndarrays.pxd), not memoryviews: the
    # reference's results, and a wrong dtype, shape, layout or a read-only output
    # refused before anything is written
    from fastnn.kernels.cython import _layernorm
    ref = backend.load("numpy")
    rng = np.random.default_rng(2)
    x, g = (rng.standard_normal((5, 7)).astype(dtype) for _ in range(2))
    w, b = (rng.standard_normal(7).astype(dtype) for _ in range(2))
    tol = dict(rtol=1e-5, atol=1e-5)
    for weight, bias in ((w, b), (None, None)):
        want = ref.layer_norm_forward(x, weight, bias, 1e-5)
        out, sm, si = np.empty_like(x), np.empty(5, dtype), np.empty(5, dtype)
        _layernorm.layer_norm_forward(x, weight, bias, 1e-5, out, sm, si)
        for got, expected in zip((out, sm, si), want):
            np.testing.assert_allclose(got, expected, **tol)
        gw, gb = np.ones(7, dtype), np.ones(7, dtype)
        want_gi = ref.layer_norm_backward(g, x, weight, sm, si, gw.copy(), gb.copy())
        gi = np.empty_like(x)
        _layernorm.layer_norm_backward(g, x, weight, sm, si, gw, gb, gi)
        np.testing.assert_allclose(gi, want_gi, **tol)
        np.testing.assert_allclose(gb, 1 + g.sum(0), **tol)
    readonly = np.empty_like(x)
    readonly.flags.writeable = False
    other = np.float64 if dtype == np.float32 else np.float32
    for error, change in ((TypeError, dict(weight=w.astype(other))),
                          (ValueError, dict(bias=b[:6].copy())),
                          (ValueError, dict(out=np.empty((5, 6), dtype))),
                          (ValueError, dict(out=readonly)),
                          (ValueError, dict(save_mean=np.empty(4, dtype))),
                          (ValueError, dict(x=np.asfortranarray(x)))):
        args = dict(x=x, weight=w, bias=b, out=np.full_like(x, 7),
                    save_mean=np.full(5, 7, dtype), save_invstd=np.full(5, 7, dtype))
        args.update(change)
        with pytest.raises(error):
            _layernorm.layer_norm_forward(args["x"], args["weight"], args["bias"], 1e-5,
                                          args["out"], args["save_mean"], args["save_invstd"])
        if args["out"] is not readonly and args["out"].shape == x.shape:
            np.testing.assert_array_equal(args["out"], 7)
        np.testing.assert_array_equal(args["save_invstd"], 7)
    gb = np.zeros(7, dtype)
    for bad in (dict(grad_out=g[:4].copy()), dict(grad_in=readonly),
                dict(grad_in=np.empty((5, 7), other))):
        args = dict(grad_out=g, grad_in=np.empty_like(x))
        args.update(bad)
        with pytest.raises((TypeError, ValueError)):
            _layernorm.layer_norm_backward(args["grad_out"], x, w, sm, si, None, gb,
                                           args["grad_in"])
        np.testing.assert_array_equal(gb, 0)


def test_compiled_label_range_check_agrees_with_numpys():
    # fastnn.validation.labels_in_range runs the extension's loop (NumPy's max reduction
    # behind it was ~9 us of a batch-16 training step); it must answer as the NumPy
    # formula does, negatives and the class count itself included
    from fastnn import validation
    from fastnn.kernels.cython import _losses
    assert validation._compiled_labels_in_range() is _losses.labels_in_range
    rng = np.random.default_rng(0)
    cases = [np.zeros(0, np.int64), np.array([0]), np.array([9]), np.array([10]),
             np.array([-1]), np.array([np.iinfo(np.int64).min]),
             np.array([np.iinfo(np.int64).max]), rng.integers(0, 10, (3, 5))]
    cases += [rng.integers(-2, 12, n) for n in (1, 7, 64, 1000)]
    for labels in cases:
        for classes in (0, 1, 10, 11):
            expected = labels.size == 0 or int(labels.view(np.uint64).max()) < classes
            assert _losses.labels_in_range(labels, classes) == expected, (labels, classes)
    with pytest.raises(TypeError):
        _losses.labels_in_range(np.zeros(3, np.int32), 10)
    with pytest.raises(ValueError):
        _losses.labels_in_range(np.zeros((4, 4), np.int64)[:, ::2], 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_loss_entries_take_any_shape_and_refuse_a_mismatch(dtype):
    # mse, bce, bce-with-logits, smooth-L1 and the probability cross-entropy read raw
    # pointers (_ndarrays.pxd): arrays of any shape with one size and dtype; a target of
    # another size (which the 1-D memoryviews read past the end of) or dtype, a strided
    # array or a read-only gradient is refused before the gradient is written
    from fastnn.kernels.cython import _losses
    rng = np.random.default_rng(1)
    pred = rng.uniform(0.1, 0.9, (3, 4)).astype(dtype)
    target = rng.uniform(0, 1, (3, 4)).astype(dtype)
    grad = np.empty_like(pred)
    assert np.isclose(_losses.mse_loss(pred, target, grad), ((pred - target) ** 2).mean())
    np.testing.assert_allclose(grad, 2 * (pred - target) / pred.size, rtol=1e-5)
    other = np.float64 if dtype == np.float32 else np.float32
    readonly = np.empty_like(pred)
    readonly.flags.writeable = False
    bad = [(ValueError, (pred, target[:2], grad)), (TypeError, (pred, target.astype(other), grad)),
           (ValueError, (pred, np.asfortranarray(target), grad)),
           (ValueError, (pred, target, readonly))]
    for entry in (_losses.mse_loss, _losses.bce_loss, _losses.bce_with_logits_loss):
        for error, args in bad:
            kept = args[2].copy()
            with pytest.raises(error):
                entry(*args)
            np.testing.assert_array_equal(args[2], kept)
    with pytest.raises(ValueError):
        _losses.smooth_l1_loss(pred, target[:2], 1.0, grad)
    probs = target / target.sum(1, keepdims=True)
    loss = _losses.softmax_cross_entropy_probs(pred, probs, grad)
    logp = pred - np.log(np.exp(pred).sum(1, keepdims=True))
    assert np.isclose(loss, -(probs * logp).sum(1).mean(), rtol=1e-5)
    with pytest.raises(ValueError):
        _losses.softmax_cross_entropy_probs(pred, probs[:, :3].copy(), grad)


def test_softmax_row_entries_check_shapes_and_may_write_in_place():
    # rows_forward / rows_backward read raw pointers: out of another shape, dtype or
    # layout is refused before anything is written; out may be x itself (in place)
    from fastnn.kernels.cython import _softmax
    x = np.random.default_rng(2).standard_normal((5, 4)).astype(np.float32)
    expected = np.exp(x) / np.exp(x).sum(1, keepdims=True)
    y = x.copy()
    _softmax.rows_forward(0, y, y)
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    for out, error in ((np.empty((4, 5), np.float32), ValueError),
                       (np.empty((5, 4), np.float64), TypeError),
                       (np.empty((5, 8), np.float32)[:, ::2], ValueError)):
        kept = out.copy()
        with pytest.raises(error):
            _softmax.rows_forward(0, x, out)
        with pytest.raises(error):
            _softmax.rows_backward(0, x, y, out)
        np.testing.assert_array_equal(out, kept)
    with pytest.raises(ValueError):
        _softmax.rows_backward(0, x[:4].copy(), y, np.empty_like(y))


# each _optim entry that reads raw pointers: its state arrays' names, then its numbers
_OPTIM_ENTRIES = {
    "adagrad_update": (("state_sum",), (0.01, 0.1, 1e-10)),
    "rmsprop_update": (("square_avg", "grad_avg", "momentum_buffer"),
                       (0.01, 0.99, 1e-8, 0.1, 0.9)),
    "adamax_update": (("exp_avg", "exp_inf"), (3, 2e-3, 0.9, 0.999, 1e-8, 0.1)),
    "adaptive_moments_update": (("exp_avg", "exp_avg_sq"),
                                (0.01, 0.02, 0.9, 0.999, 1.0, 1.0, 1e-8, 0.1)),
    "adadelta_update": (("square_avg", "acc_delta"), (1.0, 0.9, 1e-6, 0.1, False)),
    "rprop_update": (("prev", "step_size"), (0.5, 1.2, 1e-6, 50.0, False)),
    "asgd_update": (("ax",), (0.01, 0.5, 1e-4, 0.1, False)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(_OPTIM_ENTRIES))
def test_optimizer_entries_take_any_shape_and_refuse_what_they_cannot_read(name, dtype):
    # the _optim entries read raw pointers (_ndarrays.pxd), not 1-D memoryviews of
    # reshapes: arrays of any shape update as their flat views do, and a wrong dtype,
    # size, layout or a read-only state array is refused before anything is written
    from fastnn.kernels.cython import _optim
    entry = getattr(_optim, name)
    states, numbers = _OPTIM_ENTRIES[name]
    rng = np.random.default_rng(5)
    shape = (3, 4, 5)
    param, grad, *state = (rng.random(shape).astype(dtype) + 0.5
                           for _ in range(2 + len(states)))
    flat = [a.reshape(-1).copy() for a in (param, grad, *state)]
    before = param.copy()
    entry(param, grad, *state, *numbers)
    entry(*flat, *numbers)
    for shaped, plain in zip((param, *state), (flat[0], *flat[2:])):
        np.testing.assert_array_equal(shaped.reshape(-1), plain)
    assert not np.array_equal(param, before)
    readonly = state[0].copy()
    readonly.flags.writeable = False
    other = np.float64 if dtype == np.float32 else np.float32
    for error, bad in ((TypeError, state[0].astype(other)),
                       (ValueError, np.ones(param.size - 1, dtype)),
                       (ValueError, np.ones((5, 4, 3), dtype).transpose()),
                       (ValueError, readonly)):
        kept = [a.copy() for a in (param, *state)]
        with pytest.raises(error):
            entry(param, grad, bad, *state[1:], *numbers)
        for a, b in zip((param, *state), kept):
            np.testing.assert_array_equal(a, b)
