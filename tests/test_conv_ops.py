"""Conv and pooling ops on every backend, float32 and float64, against PyTorch and the
NumPy reference: odd sizes, strides and paddings, accumulation into gradients, out=
buffers, and the multi-chunk and multi-threaded paths of the compiled kernels."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastnn
from fastnn import ops

from conftest import assert_close

torch.set_num_threads(2)

# (N, C_in, H, W, C_out, kernel, stride, padding)
CONV_CASES = [
    (2, 3, 7, 9, 4, (3, 3), (1, 1), (1, 1)),
    (3, 2, 5, 6, 3, (3, 2), (2, 1), (1, 0)),
    (1, 4, 8, 7, 5, (1, 1), (1, 1), (0, 0)),
    (2, 3, 9, 8, 2, (5, 3), (3, 2), (2, 1)),
    (2, 1, 6, 6, 3, (2, 2), (2, 2), (0, 0)),
    # stride 1 with W_out == W: the one-span im2col/col2im paths, asymmetric kernels
    (2, 3, 6, 7, 4, (3, 5), (1, 1), (1, 2)),
    (2, 2, 7, 5, 3, (5, 3), (1, 1), (1, 1)),
    (2, 2, 3, 1, 3, (3, 3), (1, 1), (1, 1)),
]
# (N, C, H, W, kernel, stride, padding)
POOL_CASES = [
    (2, 3, 7, 9, (3, 3), (2, 2), (1, 1)),
    (1, 2, 6, 5, (2, 3), (1, 2), (1, 1)),
    (2, 2, 9, 8, (3, 2), (3, 1), (0, 1)),
    (3, 1, 4, 4, (2, 2), (2, 2), (0, 0)),
]


def tt(a, grad=False):
    return torch.from_numpy(np.array(a, copy=True)).requires_grad_(grad)


def conv_case(rng, dtype, n, c_in, h, w, c_out, k):
    x = rng.standard_normal((n, c_in, h, w)).astype(dtype)
    weight = rng.standard_normal((c_out, c_in) + k).astype(dtype)
    bias = rng.standard_normal(c_out).astype(dtype)
    return x, weight, bias


def check_conv(dtype, x, weight, bias, stride, padding, rng):
    tx, tw, tb = tt(x, True), tt(weight, True), tt(bias, True)
    ty = F.conv2d(tx, tw, tb, stride, padding)
    g = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(tt(g))
    scale = np.sqrt(weight[0].size)  # sums of that many products
    y = ops.conv2d_forward(x, weight, bias, stride, padding)
    assert y.dtype == dtype and y.shape == tuple(ty.shape)
    assert_close(y, ty.detach().numpy(), dtype, scale)
    grad_w = np.ones_like(weight)      # accumulated into: starts at 1, not 0
    grad_b = np.ones_like(bias)
    grad_in = ops.conv2d_backward(g, x, weight, stride, padding, grad_w, grad_b)
    assert_close(grad_in, tx.grad.numpy(), dtype, scale)
    assert_close(grad_w - 1, tw.grad.numpy(), dtype, scale * np.sqrt(g[:, 0].size))
    assert_close(grad_b - 1, tb.grad.numpy(), dtype, np.sqrt(g[:, 0].size))


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c[:5])))
def test_conv2d_matches_torch(backend, dtype, rng, case):
    n, c_in, h, w, c_out, k, stride, padding = case
    x, weight, bias = conv_case(rng, dtype, n, c_in, h, w, c_out, k)
    check_conv(dtype, x, weight, bias, stride, padding, rng)


@pytest.mark.parametrize("stride", [(1, 1), (2, 3)])
def test_one_pixel_conv2d_runs_as_the_linear_it_is(backend, dtype, rng, stride):
    # (N, C_in, 1, 1) under a 1x1 kernel, no padding: y = x W^T + b. The compiled
    # backends ran it as any conv (columns and outputs a sample and a channel at a time,
    # 2.2-4.3x the NumPy reference); they now give their linear ops' results, bits and all
    n, c_in, c_out = 150, 6, 5
    x, weight, bias = conv_case(rng, dtype, n, c_in, 1, 1, c_out, (1, 1))
    check_conv(dtype, x, weight, bias, stride, (0, 0), rng)
    g = rng.standard_normal((n, c_out, 1, 1)).astype(dtype)
    y = ops.conv2d_forward(x, weight, bias, stride, (0, 0))
    grad_w, grad_b = np.ones_like(weight), np.ones_like(bias)
    grad_in = ops.conv2d_backward(g, x, weight, stride, (0, 0), grad_w, grad_b)
    x2, w2 = x.reshape(n, c_in), weight.reshape(c_out, c_in)
    lin_w, lin_b = np.ones((c_out, c_in), dtype), np.ones_like(bias)
    if fastnn.get_backend() != "numpy":
        np.testing.assert_array_equal(y.reshape(n, c_out), ops.linear_forward(x2, w2, bias))
        lin_in = ops.linear_backward(g.reshape(n, c_out), x2, w2, grad_weight=lin_w,
                                     grad_bias=lin_b)
        np.testing.assert_array_equal(grad_in.reshape(n, c_in), lin_in)
        np.testing.assert_array_equal(grad_w.reshape(c_out, c_in), lin_w)
        np.testing.assert_array_equal(grad_b, lin_b)
    # an out= buffer written in place, no input gradient on request
    out = np.empty((n, c_out, 1, 1), dtype)
    assert ops.conv2d_forward(x, weight, bias, stride, (0, 0), out=out) is out
    np.testing.assert_array_equal(out, y)
    again_w = np.ones_like(weight)
    assert ops.conv2d_backward(g, x, weight, stride, (0, 0), again_w,
                               need_grad_in=False) is None
    np.testing.assert_array_equal(again_w, grad_w)
    # the backend's own kernels given a strided x (ops makes inputs contiguous): the
    # conv kernels, which copy it (numba's linear kernels take C-ordered arrays only)
    kernels = fastnn.backend.load(fastnn.get_backend())
    wide = np.zeros((n, 2 * c_in, 1, 1), dtype)
    wide[:, ::2] = x
    if fastnn.get_backend() != "cython":   # (Cython's conv entries refuse strided x)
        assert_close(kernels.conv2d_forward(wide[:, ::2], weight, bias, stride, (0, 0)), y,
                     dtype, np.sqrt(c_in))


def test_conv2d_many_chunks_and_threads(backend, dtype, rng):
    # 40 samples of 32x24x24 with a 3x3 kernel need several im2col chunks, and each
    # chunk is large enough for the parallel loops.
    x, weight, bias = conv_case(rng, dtype, 40, 32, 24, 24, 4, (3, 3))
    check_conv(dtype, x, weight, bias, (1, 1), (1, 1), rng)


def test_conv2d_groups_of_samples_over_threads(backend, dtype, rng):
    # 4x4 outputs are grouped 8 samples per GEMM: 37 samples make 5 groups, the last
    # one short, split over the threads
    x, weight, bias = conv_case(rng, dtype, 37, 16, 4, 4, 8, (3, 3))
    check_conv(dtype, x, weight, bias, (1, 1), (1, 1), rng)


def test_conv2d_restores_blas_thread_count(backend, rng):
    # the kernels hold SciPy's BLAS at one thread while their own threads call it;
    # concurrent calls from several Python threads must still restore the count
    import threading

    from fastnn.kernels import blas_threads
    if not blas_threads.available():
        pytest.skip("SciPy's BLAS thread count cannot be set here")
    x, weight, bias = conv_case(rng, np.float32, 16, 16, 12, 12, 16, (3, 3))
    g = rng.standard_normal((16, 16, 12, 12)).astype(np.float32)
    previous = fastnn.get_num_threads()
    fastnn.set_num_threads(2)
    try:
        before = blas_threads._get()
        assert before == 2

        def work():
            with fastnn.use_backend(backend):
                for _ in range(5):
                    ops.conv2d_forward(x, weight, bias, (1, 1), (1, 1))
                    ops.conv2d_backward(g, x, weight, (1, 1), (1, 1), np.zeros_like(weight))

        threads = [threading.Thread(target=work) for _ in range(2)]
        for th in threads:
            th.start()
        work()
        for th in threads:
            th.join()
        assert blas_threads._get() == before
    finally:
        fastnn.set_num_threads(previous)


def test_conv_blocks_turn_openmp_nesting_off_and_restore_it(backend, rng):
    # with nesting on (numba's 'omp' layer sets 255), MKL's products inside the conv
    # threads opened teams of their own (4x slower); the block makes it 1 and restores
    from fastnn.kernels import blas_threads
    x, weight, bias = conv_case(rng, np.float32, 16, 16, 12, 12, 16, (3, 3))
    g = rng.standard_normal((16, 16, 12, 12)).astype(np.float32)
    ops.conv2d_forward(x, weight, bias, (1, 1), (1, 1))   # loads the OpenMP runtime
    gomp = blas_threads._openmp()
    if gomp is None:
        pytest.skip("no libgomp in this process")
    previous_threads, previous_levels = fastnn.get_num_threads(), gomp.omp_get_max_active_levels()
    fastnn.set_num_threads(2)
    try:
        results = []
        for levels in (1, 7):
            gomp.omp_set_max_active_levels(levels)
            gw = np.zeros_like(weight)
            results.append((ops.conv2d_forward(x, weight, bias, (1, 1), (1, 1)),
                            ops.conv2d_backward(g, x, weight, (1, 1), (1, 1), gw), gw))
            assert gomp.omp_get_max_active_levels() == levels
        for a, b in zip(*results):
            np.testing.assert_array_equal(a, b)
        with blas_threads.serial_blas():
            assert gomp.omp_get_max_active_levels() == 1
            gomp.omp_set_max_active_levels(5)   # changed meanwhile (numba starting): kept
        assert gomp.omp_get_max_active_levels() == 5
    finally:
        gomp.omp_set_max_active_levels(previous_levels)
        fastnn.set_num_threads(previous_threads)


def test_conv2d_without_blas_thread_control(backend, rng, monkeypatch):
    # another BLAS than OpenBLAS: the kernels keep BLAS's own threads and run their
    # per-sample loop on one thread, with the same results
    from fastnn.kernels import blas_threads
    x, weight, bias = conv_case(rng, np.float64, 12, 8, 10, 10, 6, (3, 3))
    monkeypatch.setattr(blas_threads, "_set", None)
    assert not blas_threads.available()
    check_conv(np.float64, x, weight, bias, (1, 1), (1, 1), rng)


def test_conv2d_one_and_two_threads_agree(backend, rng):
    x, weight, bias = conv_case(rng, np.float64, 6, 8, 12, 12, 6, (3, 3))
    g = rng.standard_normal((6, 6, 6, 6))
    results = []
    for threads in (1, 2):
        previous = fastnn.get_num_threads()
        fastnn.set_num_threads(threads)
        try:
            y = ops.conv2d_forward(x, weight, bias, (2, 2), (1, 1))
            gw, gb = np.zeros_like(weight), np.zeros_like(bias)
            gi = ops.conv2d_backward(g, x, weight, (2, 2), (1, 1), gw, gb)
        finally:
            fastnn.set_num_threads(previous)
        results.append((y, gi, gw, gb))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_conv2d_without_bias_out_buffers_and_no_grad_in(backend, dtype, rng):
    x, weight, _ = conv_case(rng, dtype, 2, 3, 6, 5, 4, (3, 3))
    out = np.full((2, 4, 3, 3), np.nan, dtype=dtype)
    y = ops.conv2d_forward(x, weight, None, (2, 2), (1, 1), out=out)
    assert y is out
    assert_close(y, F.conv2d(tt(x), tt(weight), None, 2, 1).numpy(), dtype, 6)
    g = rng.standard_normal(y.shape).astype(dtype)
    grad_w = np.zeros_like(weight)
    assert ops.conv2d_backward(g, x, weight, (2, 2), (1, 1), grad_weight=grad_w,
                               need_grad_in=False) is None
    with fastnn.use_backend("numpy"):
        expected_w = np.zeros_like(weight)
        expected_in = ops.conv2d_backward(g, x, weight, (2, 2), (1, 1), expected_w)
    assert_close(grad_w, expected_w, dtype, 6)
    grad_in = np.full(x.shape, np.nan, dtype=dtype)
    assert ops.conv2d_backward(g, x, weight, (2, 2), (1, 1), grad_in=grad_in) is grad_in
    assert_close(grad_in, expected_in, dtype, 6)


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "x".join(map(str, c[:4])))
def test_max_pool2d_matches_torch(backend, dtype, rng, case):
    n, c, h, w, k, stride, padding = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    tx = tt(x, True)
    ty, tidx = F.max_pool2d(tx, k, stride, padding, return_indices=True)
    g = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(tt(g))
    y, idx = ops.max_pool2d_forward(x, k, stride, padding)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx, tidx.numpy())
    grad_in = ops.max_pool2d_backward(g, idx, x.shape)
    assert_close(grad_in, tx.grad.numpy(), dtype)


def test_max_pool2d_ties_and_overlaps_sum(backend, dtype):
    # A constant plane: every window's first cell wins, overlapping windows share cells.
    x = np.ones((1, 2, 5, 5), dtype=dtype)
    tx = tt(x, True)
    ty, tidx = F.max_pool2d(tx, 3, 1, 1, return_indices=True)
    ty.backward(torch.ones_like(ty))
    y, idx = ops.max_pool2d_forward(x, (3, 3), (1, 1), (1, 1))
    np.testing.assert_array_equal(idx, tidx.numpy())
    grad_in = ops.max_pool2d_backward(np.ones_like(y), idx, x.shape)
    np.testing.assert_array_equal(grad_in, tx.grad.numpy())


def test_max_pool2d_out_buffers_and_large_input(backend, dtype, rng):
    x = rng.standard_normal((8, 16, 17, 15)).astype(dtype)    # parallel path
    tx = tt(x, True)
    ty = F.max_pool2d(tx, 3, 2, 1)
    ty.backward(torch.ones_like(ty))
    out = np.empty(tuple(ty.shape), dtype=dtype)
    indices = np.empty(tuple(ty.shape), dtype=np.int64)
    y, idx = ops.max_pool2d_forward(x, (3, 3), (2, 2), (1, 1), out=out, indices=indices)
    assert y is out and idx is indices
    np.testing.assert_array_equal(y, ty.detach().numpy())
    grad_in = np.full(x.shape, np.nan, dtype=dtype)
    assert ops.max_pool2d_backward(np.ones_like(y), idx, x.shape, grad_in=grad_in) is grad_in
    assert_close(grad_in, tx.grad.numpy(), dtype)


@pytest.mark.parametrize("count_include_pad", [True, False], ids=["incl_pad", "excl_pad"])
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "x".join(map(str, c[:4])))
def test_avg_pool2d_matches_torch(backend, dtype, rng, case, count_include_pad):
    n, c, h, w, k, stride, padding = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    tx = tt(x, True)
    ty = F.avg_pool2d(tx, k, stride, padding, count_include_pad=count_include_pad)
    g = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(tt(g))
    y = ops.avg_pool2d_forward(x, k, stride, padding, count_include_pad)
    assert_close(y, ty.detach().numpy(), dtype)
    grad_in = ops.avg_pool2d_backward(g, x.shape, k, stride, padding, count_include_pad)
    assert_close(grad_in, tx.grad.numpy(), dtype)


# (N, C, H, W, kernel, stride, padding): each last window runs past the padding in ceil mode
CEIL_CASES = [
    (2, 3, 7, 9, (3, 3), (2, 2), (1, 1)),
    (1, 2, 6, 5, (2, 3), (3, 2), (1, 1)),
    (2, 2, 10, 8, (3, 2), (2, 3), (0, 1)),
    (1, 1, 4, 4, (4, 4), (3, 3), (2, 2)),   # a window that would start in the padding: dropped
]


@pytest.mark.parametrize("case", CEIL_CASES, ids=lambda c: "x".join(map(str, c[:4])))
def test_pooling_ceil_mode_dilation_and_divisor_override_match_torch(backend, dtype, rng, case):
    n, c, h, w, k, stride, padding = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    tx = tt(x, True)
    for ceil, dilation in ((True, (1, 1)), (True, (2, 1)), (False, (1, 3))):
        if dilation[1] * (k[1] - 1) + 1 > w + 2 * padding[1]:
            continue
        tx = tt(x, True)
        ty, tidx = F.max_pool2d(tx, k, stride, padding, dilation, ceil_mode=ceil,
                                return_indices=True)
        g = rng.standard_normal(tuple(ty.shape)).astype(dtype)
        ty.backward(tt(g))
        y, idx = ops.max_pool2d_forward(x, k, stride, padding, ceil_mode=ceil,
                                        dilation=dilation)
        np.testing.assert_array_equal(y, ty.detach().numpy())
        np.testing.assert_array_equal(idx, tidx.numpy())
        assert_close(ops.max_pool2d_backward(g, idx, x.shape), tx.grad.numpy(), dtype)
    for include, divisor, ceil in ((True, None, True), (False, None, True), (True, 5, True),
                                   (False, 2, False)):
        tx = tt(x, True)
        ty = F.avg_pool2d(tx, k, stride, padding, ceil_mode=ceil, count_include_pad=include,
                          divisor_override=divisor)
        g = rng.standard_normal(tuple(ty.shape)).astype(dtype)
        ty.backward(tt(g))
        out = np.full(tuple(ty.shape), np.nan, dtype)
        assert ops.avg_pool2d_forward(x, k, stride, padding, include, out=out, ceil_mode=ceil,
                                      divisor_override=divisor) is out
        assert_close(out, ty.detach().numpy(), dtype)
        grad_in = ops.avg_pool2d_backward(g, x.shape, k, stride, padding, include,
                                          ceil_mode=ceil, divisor_override=divisor)
        assert_close(grad_in, tx.grad.numpy(), dtype)


def test_ceil_mode_window_past_the_padded_input_as_torch(backend, dtype, rng):
    """ceil_mode keeps one window larger than the padded input (PyTorch's rule)."""
    x = rng.standard_normal((1, 2, 1, 2)).astype(dtype)
    for k, stride in (((4, 4), (2, 3)), ((3, 4), (1, 1))):
        tx = tt(x, True)
        ty, tidx = F.max_pool2d(tx, k, stride, (1, 1), ceil_mode=True, return_indices=True)
        ty.backward(torch.ones_like(ty))
        y, idx = ops.max_pool2d_forward(x, k, stride, (1, 1), ceil_mode=True)
        np.testing.assert_array_equal(y, ty.detach().numpy())
        np.testing.assert_array_equal(idx, tidx.numpy())
        assert_close(ops.max_pool2d_backward(np.ones_like(y), idx, x.shape), tx.grad.numpy(),
                     dtype)
        ta = F.avg_pool2d(tt(x), k, stride, (1, 1), ceil_mode=True).numpy()
        assert_close(ops.avg_pool2d_forward(x, k, stride, (1, 1), ceil_mode=True), ta, dtype)
    with pytest.raises(ValueError, match="larger than the padded input"):
        ops.max_pool2d_forward(x, (4, 4), (2, 3), (1, 1))


def test_max_pool2d_index_of_an_all_minus_inf_window_as_torch(backend):
    """A window of only -inf values (dilated taps in the padding, or -inf inputs) points
    at its first tap at or past row 0 and column 0, as PyTorch's kernel."""
    x = np.array([[[[1.0, -np.inf], [-np.inf, -np.inf]]]], np.float32)
    for k, stride, pad, dil in (((2, 2), (1, 1), (1, 1), (3, 3)), ((2, 2), (1, 1), (1, 1),
                                                                  (1, 1))):
        ty, tidx = F.max_pool2d(tt(x), k, stride, pad, dil, return_indices=True)
        y, idx = ops.max_pool2d_forward(x, k, stride, pad, dilation=dil)
        np.testing.assert_array_equal(y, ty.numpy())
        np.testing.assert_array_equal(idx, tidx.numpy())


def test_pooling_ceil_mode_checks_shapes_and_divisor(backend):
    x = np.zeros((1, 1, 7, 7), np.float32)
    with pytest.raises(ValueError, match=r"avg_pool2d_forward: expected divisor_override to be "
                                         r"a positive int, got 0"):
        ops.avg_pool2d_forward(x, (2, 2), (2, 2), divisor_override=0)
    with pytest.raises(ValueError, match=r"avg_pool2d_backward: .*shape \(1, 1, 4, 4\)"):
        ops.avg_pool2d_backward(np.zeros((1, 1, 3, 3), np.float32), x.shape, (2, 2), (2, 2),
                                ceil_mode=True)
    with pytest.raises(ValueError, match=r"max_pool2d_forward: .*\(1, 1, 4, 4\)"):
        ops.max_pool2d_forward(x, (2, 2), (2, 2), out=np.zeros((1, 1, 3, 3), np.float32),
                               ceil_mode=True)


def test_avg_pool2d_large_input_and_out_buffers(backend, dtype, rng):
    x = rng.standard_normal((8, 16, 17, 15)).astype(dtype)
    tx = tt(x, True)
    ty = F.avg_pool2d(tx, 3, 2, 1)
    g = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(tt(g))
    out = np.empty(tuple(ty.shape), dtype=dtype)
    assert ops.avg_pool2d_forward(x, (3, 3), (2, 2), (1, 1), out=out) is out
    assert_close(out, ty.detach().numpy(), dtype)
    grad_in = np.full(x.shape, np.nan, dtype=dtype)
    assert ops.avg_pool2d_backward(g, x.shape, (3, 3), (2, 2), (1, 1), grad_in=grad_in) is grad_in
    assert_close(grad_in, tx.grad.numpy(), dtype)


@pytest.mark.parametrize("shape, k, ceil_mode, divisor", [
    ((3, 4, 8, 8), (2, 2), False, None), ((2, 3, 9, 7), (2, 2), False, None),
    ((2, 3, 9, 7), (2, 2), True, None), ((64, 16, 14, 14), (2, 2), False, None),
    ((2, 2, 11, 10), (3, 2), False, 5), ((2, 3, 7, 9), (3, 3), False, None),
    ((0, 3, 8, 8), (2, 2), False, None), ((2, 3, 1, 8), (2, 2), True, None)])
def test_avg_pool2d_tiling_windows_as_torch(backend, dtype, rng, shape, k, ceil_mode,
                                            divisor):
    """Windows that tile the input (stride = window, no padding: the CPU backends' tiling
    kernels), with the rows and columns no window covers (odd sizes, zeroed in
    grad_in), divisor_override, and ceil mode's window past the edge (the general
    kernel)."""
    x = rng.standard_normal(shape).astype(dtype)
    tx = tt(x, True)
    ty = F.avg_pool2d(tx, k, k, 0, ceil_mode=ceil_mode, divisor_override=divisor)
    g = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(tt(g))
    out = np.full(tuple(ty.shape), np.nan, dtype=dtype)
    assert ops.avg_pool2d_forward(x, k, k, ceil_mode=ceil_mode, divisor_override=divisor,
                                  out=out) is out
    assert_close(out, ty.detach().numpy(), dtype)
    grad_in = np.full(x.shape, np.nan, dtype=dtype)
    assert ops.avg_pool2d_backward(g, x.shape, k, k, ceil_mode=ceil_mode,
                                   divisor_override=divisor, grad_in=grad_in) is grad_in
    assert_close(grad_in, tx.grad.numpy(), dtype)


@pytest.mark.parametrize("shape", [(3, 4, 9, 9), (64, 16, 8, 8), (2, 3, 20, 36)])
@pytest.mark.parametrize("window", [((3, 3), (2, 2), (1, 1), (1, 1)),
                                    ((3, 3), (1, 1), (1, 1), (1, 1)),
                                    ((2, 3), (1, 2), (1, 0), (1, 1)),
                                    ((3, 2), (2, 1), (0, 1), (2, 1))],
                         ids=["3x3s2p1", "3x3s1p1", "2x3", "dilated"])
def test_max_pool2d_general_kernel_with_ties_nans_and_infinities_as_torch(backend, dtype,
                                                                         shape, window):
    # The general kernels scan a window for its maximum and, apart, for its last NaN
    # (numba's _max_pool_fwd, Cython's for output rows under 16 wide; wider ones run
    # Cython's row loop): the winners PyTorch picks, with windows holding several NaNs
    # (the last one wins), a NaN before a larger value, ties (the first one wins),
    # infinities and all -inf windows
    kernel, stride, padding, dilation = window
    rng = np.random.default_rng(11)
    x = rng.integers(-2, 3, shape).astype(dtype)
    flat = x.reshape(-1)
    flat[::7] = np.nan
    flat[2::9] = np.nan
    flat[5::17] = np.inf
    flat[3::5] = -np.inf
    tx = tt(x, True)
    ty, tidx = F.max_pool2d(tx, kernel, stride, padding, dilation, return_indices=True)
    y, idx = ops.max_pool2d_forward(x, kernel, stride, padding, dilation=dilation)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    g = rng.standard_normal(y.shape).astype(dtype)
    ty.backward(tt(g))
    np.testing.assert_array_equal(ops.max_pool2d_backward(g, idx, x.shape), tx.grad.numpy())


def test_max_pool2d_nan_propagates(backend):
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 2] = np.nan
    y, idx = ops.max_pool2d_forward(x, (2, 2), (2, 2))
    assert np.isnan(y[0, 0, 0, 1]) and idx[0, 0, 0, 1] == 1 * 4 + 2
    assert not np.isnan(y[0, 0, 1]).any()


@pytest.mark.parametrize("shape", [(3, 4, 8, 8), (2, 3, 9, 7), (64, 16, 14, 14)])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool2d_2x2_kernel_with_ties_nans_and_infinities_as_torch(backend, dtype, shape,
                                                                     ceil_mode):
    # VGG's 2x2 stride-2 pool runs a kernel of its own on the compiled backends (a tree of
    # selects per window, kernels/window_shapes.is_2x2_pool): the same winners as the
    # window-order scan (first maximum of a tie, last NaN, an inf, all -inf); odd sizes
    # (a last row or column no window reads) and ceil mode (a last row and column of
    # windows past the edge, 2 cells or the corner's 1, which the kernel scans apart)
    rng = np.random.default_rng(7)
    x = rng.integers(-2, 3, shape).astype(dtype)   # many ties
    flat = x.reshape(-1)
    flat[::13] = np.nan
    flat[5::17] = np.inf
    flat[3::11] = -np.inf
    tx = tt(x, True)
    ty, tidx = F.max_pool2d(tx, 2, 2, 0, ceil_mode=ceil_mode, return_indices=True)
    y, idx = ops.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), ceil_mode=ceil_mode)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    g = rng.standard_normal(y.shape).astype(dtype)
    ty.backward(tt(g))
    np.testing.assert_array_equal(ops.max_pool2d_backward(g, idx, x.shape), tx.grad.numpy())


@pytest.mark.parametrize("shape, k, s, p", [((4, 16, 32, 64), 2, 2, 1),
                                            ((8, 16, 32, 64), 5, 1, 2),
                                            ((4, 64, 32, 48), 3, 2, 1)])
def test_max_pool2d_rows_agree_with_the_reference_on_two_threads(backend, shape, k, s, p):
    # Cython's row-loop max pool (output rows of 24 and more) had its window's first and
    # last rows (set through pointers, so not made private by prange) shared by the
    # threads: at 2 threads a border row could take another row's window, giving
    # maxima and indices from outside its plane (39 of 40 calls wrong for the first
    # shape, 0 at 1 thread). Repeated: a race shows in some calls only.
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    with fastnn.use_backend("numpy"):
        want_y, want_i = ops.max_pool2d_forward(x, (k, k), (s, s), (p, p))
    before = fastnn.get_num_threads()
    fastnn.set_num_threads(2)
    try:
        for _ in range(30):
            y, i = ops.max_pool2d_forward(x, (k, k), (s, s), (p, p))
            np.testing.assert_array_equal(y, want_y)
            np.testing.assert_array_equal(i, want_i)
    finally:
        fastnn.set_num_threads(before)
