"""The CPU backends' small-plane kernels, chosen by shape in kernels/window_shapes.py:
average-pool backward of windows as wide as the plane (is_plane_wide_window), max-pool
backward of planes of at most SMALL_PLANE_MAX_CELLS cells (is_small_plane), and the
direct depthwise kernels of planes of at most DEPTHWISE_DIRECT_MAX_CELLS cells
(is_direct_depthwise). Each case asserts which kernel its shape selects, then checks
the op against PyTorch and the NumPy reference, both dtypes, on the shapes at either
side of each boundary."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastnn
from fastnn import ops
from fastnn.kernels import window_shapes as ws

from conftest import assert_close

torch.set_num_threads(1)

COMPILED = [b for b in ("numba", "cython") if b in fastnn.backends()]


@pytest.fixture(params=COMPILED)
def compiled(request):
    with fastnn.use_backend(request.param):
        yield request.param


def reference(fn, *args, **kwargs):
    with fastnn.use_backend("numpy"):
        return fn(*args, **kwargs)


def test_selection_boundaries():
    assert ws.is_small_plane((1, 1, 8, 8)) and not ws.is_small_plane((1, 1, 5, 13))
    assert ws.is_small_plane((3, 2, 1, 1))
    assert ws.is_plane_wide_window((1, 1, 2, 2), (2, 2))
    assert not ws.is_plane_wide_window((1, 1, 2, 4), (2, 2))
    assert ws.is_direct_depthwise((1, 1, 2, 2)) and ws.is_direct_depthwise((1, 1, 1, 4))
    assert not ws.is_direct_depthwise((1, 1, 1, 5)) and not ws.is_direct_depthwise((1, 1, 2, 3))
    assert not ws.is_direct_depthwise((1, 1, 0, 3))   # an empty plane: the phase kernels
    cells = ws.tap_cells((1, 2), (1, 2), (3, 3), (1, 1), (1, 1)).reshape(2, 3, 3)
    np.testing.assert_array_equal(cells[0], [[-1, -1, -1], [-1, 0, 1], [-1, -1, -1]])
    np.testing.assert_array_equal(cells[1], [[-1, -1, -1], [0, 1, -1], [-1, -1, -1]])


# (input shape, kernel, divisor_override): W == kW takes the plane-wide kernel; the
# last rows no window covers (5 rows, kH 2) are zeroed; (2, 4) with kW 2 is the
# tiling kernel's, at the boundary
AVG_CASES = [((64, 48, 2, 2), (2, 2), None), ((5, 7, 1, 1), (1, 1), None),
             ((6, 5, 4, 2), (2, 2), None), ((3, 4, 5, 2), (2, 2), None),
             ((4, 3, 3, 3), (3, 3), None), ((7, 2, 6, 3), (3, 3), 5),
             ((4, 3, 2, 4), (2, 2), None)]


@pytest.mark.parametrize("case", AVG_CASES, ids=str)
def test_avg_pool_backward_plane_wide_windows(compiled, dtype, case):
    shape, kernel, divisor = case
    assert ws.is_tiling_pool(shape, ws.pool_out_shape(shape, kernel, kernel, (0, 0)), kernel,
                             kernel, (0, 0))
    assert ws.is_plane_wide_window(shape, kernel) == (shape[3] == kernel[1])
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    y = ops.avg_pool2d_forward(x, kernel, kernel, divisor_override=divisor)
    g = rng.standard_normal(y.shape).astype(dtype)
    gi = np.full(shape, np.nan, dtype)   # every cell must be written
    got = ops.avg_pool2d_backward(g, shape, kernel, kernel, grad_in=gi,
                                  divisor_override=divisor)
    assert got is gi
    np.testing.assert_array_equal(got, reference(ops.avg_pool2d_backward, g, shape, kernel,
                                                 kernel, divisor_override=divisor))
    tx = torch.tensor(x, requires_grad=True)
    F.avg_pool2d(tx, kernel, kernel, divisor_override=divisor).backward(torch.tensor(g))
    assert_close(got, tx.grad.numpy(), dtype)


# (input shape, kernel, stride, padding, ceil_mode): overlapping windows (a cell the
# maximum of several: sums), a window wholly in the padding is impossible here but
# ceil-mode windows run past the edge; 8x8 (64 cells) the last small plane, 5x13 the
# first general one
MAX_CASES = [((64, 48, 2, 2), 2, 2, 0, False), ((9, 5, 1, 1), 1, 1, 0, False),
             ((6, 7, 3, 3), 2, 1, 1, False), ((5, 4, 4, 4), 3, 2, 1, True),
             ((3, 6, 2, 5), (2, 3), (1, 2), (1, 1), True), ((4, 3, 8, 8), 3, 2, 1, False),
             ((4, 3, 5, 13), 3, 2, 1, False)]


@pytest.mark.parametrize("case", MAX_CASES, ids=str)
def test_max_pool_backward_small_planes(compiled, dtype, case):
    shape, kernel, stride, padding, ceil_mode = case
    assert ws.is_small_plane(shape) == (shape[2] * shape[3] <= 64)
    rng = np.random.default_rng(1)
    x = rng.integers(-2, 3, shape).astype(dtype)   # ties: one cell the max of windows
    y, idx = ops.max_pool2d_forward(x, kernel, stride, padding, ceil_mode=ceil_mode)
    g = rng.standard_normal(y.shape).astype(dtype)
    gi = np.full(shape, np.nan, dtype)
    got = ops.max_pool2d_backward(g, idx, shape, grad_in=gi)
    assert got is gi
    assert_close(got, reference(ops.max_pool2d_backward, g, idx, shape), dtype)
    tx = torch.tensor(x, requires_grad=True)
    F.max_pool2d(tx, kernel, stride, padding, ceil_mode=ceil_mode).backward(torch.tensor(g))
    assert_close(got, tx.grad.numpy(), dtype)


# (N, C_in, M, H, W, kernel, stride, padding): 1x1 and 2x2 planes (a CNN's last
# stages), kernels as big as the padded plane, strides, multipliers, wide padding;
# (1, 5) and (2, 3) are the first planes the phase kernels take again
DW_CASES = [(64, 48, 1, 1, 1, (3, 3), (1, 1), (1, 1)), (8, 16, 1, 2, 2, (3, 3), (1, 1), (1, 1)),
            (5, 6, 2, 1, 1, (3, 3), (1, 1), (1, 1)), (4, 5, 1, 2, 2, (3, 3), (2, 2), (1, 1)),
            (3, 4, 3, 1, 4, (1, 3), (1, 2), (0, 1)), (3, 4, 1, 4, 1, (4, 1), (1, 1), (1, 0)),
            (2, 3, 1, 2, 2, (4, 4), (1, 1), (1, 1)), (2, 3, 2, 1, 2, (2, 3), (1, 1), (2, 2)),
            (3, 4, 1, 1, 5, (3, 3), (1, 1), (1, 1)), (3, 4, 2, 2, 3, (3, 3), (2, 1), (1, 1))]


def torch_depthwise(x, weight, bias, stride, padding, g):
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
    ty = F.conv2d(tx, tw, tb, stride, padding, groups=x.shape[1])
    ty.backward(torch.tensor(g))
    return ty.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()


@pytest.mark.parametrize("case", DW_CASES, ids=lambda c: "x".join(map(str, c[:5])))
def test_depthwise_direct_small_planes(compiled, dtype, case):
    n, c, m, h, w, kernel, stride, padding = case
    assert ws.is_direct_depthwise((n, c, h, w)) == (h * w <= 4)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((c * m, 1) + kernel).astype(dtype)
    bias = rng.standard_normal(c * m).astype(dtype)
    y = ops.depthwise_conv2d_forward(x, weight, bias, stride, padding)
    g = rng.standard_normal(y.shape).astype(dtype)
    gw = np.zeros_like(weight)
    gb = np.zeros_like(bias)
    gi = ops.depthwise_conv2d_backward(g, x, weight, stride, padding, gw, gb,
                                       np.full(x.shape, np.nan, dtype))
    ty, tgi, tgw, tgb = torch_depthwise(x, weight, bias, stride, padding, g)
    ry = reference(ops.depthwise_conv2d_forward, x, weight, bias, stride, padding)
    rgw, rgb = np.zeros_like(weight), np.zeros_like(bias)
    rgi = reference(ops.depthwise_conv2d_backward, g, x, weight, stride, padding, rgw, rgb)
    for got, want_torch, want_ref in ((y, ty, ry), (gi, tgi, rgi), (gw, tgw, rgw),
                                      (gb, tgb, rgb)):
        assert_close(got, want_torch, dtype, scale=n)
        assert_close(got, want_ref, dtype, scale=n)
    # accumulated into, and each gradient alone
    gw2 = gw.copy()
    assert ops.depthwise_conv2d_backward(g, x, weight, stride, padding, grad_weight=gw2,
                                         need_grad_in=False) is None
    assert_close(gw2, 2 * rgw, dtype, scale=n)
    assert_close(ops.depthwise_conv2d_backward(g, x, weight, stride, padding), rgi, dtype)


def test_depthwise_direct_infinite_tap_over_padding_gives_nan(compiled):
    # a 1x1 plane, 3x3 padding 1: eight taps read the zero padding, so an infinite one
    # makes its output NaN and its weight gradient NaN where a gradient meets it, as
    # in PyTorch
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 1, 1))
    weight = rng.standard_normal((3, 1, 3, 3))
    weight[1, 0, 0, 2] = np.inf
    g = rng.standard_normal((2, 3, 1, 1))
    y = ops.depthwise_conv2d_forward(x, weight, None, (1, 1), (1, 1))
    gw = np.zeros_like(weight)
    gi = ops.depthwise_conv2d_backward(g, x, weight, (1, 1), (1, 1), gw)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(weight, requires_grad=True)
    ty = F.conv2d(tx, tw, None, 1, 1, groups=3)
    ty.backward(torch.tensor(g))
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ty.detach().numpy()))
    assert np.isnan(y[:, 1]).all() and np.isfinite(y[:, [0, 2]]).all()
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(gi, tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gw, tw.grad.numpy(), rtol=1e-12)
