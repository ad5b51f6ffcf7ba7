"""The CPU backends' vectorised pooling kernels, chosen by shape in
kernels/window_shapes.py: average pooling of 2x2 windows of stride 2 (is_2x2_pool:
_avg_pool_2x2_fwd / _avg_pool_2x2_bwd) and max and average pooling of 3x3 windows of
stride 2 (is_3x3s2_pool: _max_pool_3x3, _avg_pool_3x3s2_fwd / _bwd) and max pooling of
3x3 windows of stride 1 (is_3x3s1_pool: _max_pool_3x3). Each runs its loop across the
windows of an output row or plane; these pin that the result is the same, bit for bit, as
the general kernel's (which scans window by window) and PyTorch's: each window's sum one
chain in row-major order (float32 values near 3e38 overflow to the same inf or NaN), the
first maximum of a tie, the last NaN, a window of -inf cells, ceil mode, odd sizes, both dtypes."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastnn
from fastnn import backend
from fastnn.kernels import window_shapes as ws

COMPILED = [b for b in ("numba", "cython") if b in fastnn.backends()]

# values near float32's max: a window's sum overflows to +inf, -inf or NaN by the order
# of its additions
_HUGE = np.array([3e38, -3e38, 2.5e38, -1e38, 1e38, 0.0, 1.5, -2.0])


def _max_pool_input(rng, shape, dtype):
    """Small integers (many ties) with NaN, +inf and -inf cells, in runs of -inf that
    fill windows (their index: the window's first cell inside the input)."""
    x = rng.integers(-2, 3, shape).astype(dtype)
    flat = x.reshape(-1)
    flat[::13] = np.nan
    flat[5::17] = np.inf
    flat[3::7] = -np.inf
    flat[4::7] = -np.inf
    return x


def _general(name):
    """(avg forward, avg backward) of the backend's general kernels, as functions of the
    arrays (2x2/2 average pools)."""
    if name == "numba":
        from fastnn.kernels.numba_cpu import conv
        return (lambda x, d, y: conv._avg_pool_fwd(x.size, x, 2, 2, 2, 2, 0, 0, True, d, y),
                lambda g, d, gi: conv._avg_pool_bwd(gi.size, g, 2, 2, 2, 2, 0, 0, True, d, gi))
    from fastnn.kernels.cython import _conv
    return (lambda x, d, y: _conv._avg_pool_fwd(x, 2, 2, 2, 2, 0, 0, True, d, y),
            lambda g, d, gi: _conv._avg_pool_bwd(g, 2, 2, 2, 2, 0, 0, True, d, gi))


def _general_max(name, k, stride):
    """The backend's general max-pool kernel for k x k windows of the given stride, as a
    function (x, padding, y, indices)."""
    if name == "numba":
        from fastnn.kernels.numba_cpu import conv
        return lambda x, p, y, i: conv._max_pool_fwd(x.size, x, k, k, stride, stride, p[0],
                                                     p[1], 1, 1, y, i)
    from fastnn.kernels.cython import _conv
    return lambda x, p, y, i: _conv._max_pool_planes(x, k, k, stride, stride, p[0], p[1],
                                                     1, 1, y, i, False)


def test_selection():
    assert ws.is_2x2_pool((1, 1, 7, 9), (1, 1, 3, 4), (2, 2), (2, 2), (0, 0))
    assert ws.is_2x2_pool((1, 1, 7, 9), (1, 1, 4, 5), (2, 2), (2, 2), (0, 0))  # ceil
    assert not ws.is_2x2_pool((1, 1, 7, 9), (1, 1, 4, 5), (2, 2), (2, 2), (1, 1))
    assert ws.is_3x3s2_pool((3, 3), (2, 2), (1, 1))
    assert ws.is_3x3s2_pool((3, 3), (2, 2), (0, 1))
    assert not ws.is_3x3s2_pool((3, 3), (2, 2), (1, 1), (2, 2))
    assert not ws.is_3x3s2_pool((3, 3), (1, 1), (1, 1))
    assert not ws.is_3x3s2_pool((2, 3), (2, 2), (0, 0))
    assert ws.is_3x3s1_pool((3, 3), (1, 1), (1, 1))
    assert ws.is_3x3s1_pool((3, 3), (1, 1), (0, 1))
    assert not ws.is_3x3s1_pool((3, 3), (1, 1), (1, 1), (2, 2))
    assert not ws.is_3x3s1_pool((3, 3), (2, 2), (1, 1))
    assert not ws.is_3x3s1_pool((3, 3), (1, 2), (1, 1))
    assert not ws.is_3x3s1_pool((3, 3), (1, 1), (2, 2))


def test_exact_reciprocal():
    # a multiply by 1 / d gives g / d's bits only where 1 / d is exact and normal
    assert ws.exact_reciprocal(4.0, np.float32) == 0.25
    assert ws.exact_reciprocal(8.0, np.float64) == 0.125
    assert ws.exact_reciprocal(3.0, np.float64) == 0.0
    assert ws.exact_reciprocal(2.0 ** 127, np.float32) == 0.0   # (subnormal in float32)
    assert ws.exact_reciprocal(2.0 ** 127, np.float64) == 2.0 ** -127


# (input shape, ceil_mode) of 2x2 pools in ceil mode on odd sizes: a last row and column
# of windows past the edge, one cell high or wide (2 cells, the corner 1); odd height or
# width only, rows of 15 windows (numba's backward: junk past the row), planes of 1 to 3
# cells a side, planes past the parallel threshold
CEIL_2X2_CASES = [((2, 3, 15, 15), True), ((2, 3, 7, 8), True), ((3, 2, 8, 9), True),
                  ((2, 2, 1, 1), True), ((2, 2, 3, 1), True), ((2, 2, 3, 3), True),
                  ((2, 3, 5, 31), True), ((64, 16, 15, 15), True)]

# (input shape, ceil_mode): odd sizes (a last row or column no window covers), ceil mode
# with even sizes (the same windows), a plane of one window, rows of 12, 14 and 17
# windows (numba's backward runs 16 or 32 at a time, the junk past the row end
# rewritten after), planes past the parallel threshold
AVG_CASES = [((2, 3, 6, 6), False), ((2, 3, 7, 9), False), ((3, 2, 8, 10), True),
             ((4, 5, 2, 4), False), ((2, 3, 5, 35), False), ((3, 4, 9, 25), False),
             ((64, 16, 28, 28), False)] + CEIL_2X2_CASES


@pytest.mark.parametrize("name", COMPILED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", AVG_CASES, ids=str)
@pytest.mark.parametrize("divisor", [None, 3, 8])
def test_avg_pool_2x2_as_the_general_kernel_and_torch(name, dtype, case, divisor):
    shape, ceil_mode = case
    kernels = backend.load(name)
    fwd, bwd = _general(name)
    rng = np.random.default_rng(1)
    huge = dtype == np.float32 and divisor is None
    x = (_HUGE[rng.integers(0, len(_HUGE), shape)] if huge
         else rng.standard_normal(shape)).astype(dtype)
    y = kernels.avg_pool2d_forward(x, (2, 2), (2, 2), ceil_mode=ceil_mode,
                                   divisor_override=divisor)
    assert ws.is_2x2_pool(x.shape, y.shape, (2, 2), (2, 2), (0, 0))
    want = np.empty_like(y)
    with np.errstate(over="ignore", invalid="ignore"):
        fwd(x, divisor or 0, want)
    np.testing.assert_array_equal(y, want)
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = F.avg_pool2d(tx, 2, 2, ceil_mode=ceil_mode, divisor_override=divisor)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    g = (_HUGE[rng.integers(0, len(_HUGE), y.shape)] if huge
         else rng.standard_normal(y.shape)).astype(dtype)
    gi = np.full(shape, np.nan, dtype)   # every cell must be written
    got = kernels.avg_pool2d_backward(g, shape, (2, 2), (2, 2), grad_in=gi,
                                      ceil_mode=ceil_mode, divisor_override=divisor)
    assert got is gi
    want = np.empty_like(gi)
    bwd(g, divisor or 0, want)
    np.testing.assert_array_equal(got, want)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(got, tx.grad.numpy())


@pytest.mark.parametrize("name", COMPILED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CEIL_2X2_CASES + [((2, 3, 7, 9), False)], ids=str)
def test_max_pool_2x2_as_the_general_kernel_and_torch(name, dtype, case):
    """Ties (the first maximum), NaN (the last), +-inf, windows of -inf only and ceil
    mode's windows of 2 cells and 1 past the edge; the backward's scatter to them."""
    shape, ceil_mode = case
    kernels = backend.load(name)
    rng = np.random.default_rng(9)
    x = _max_pool_input(rng, shape, dtype)
    flat = x.reshape(-1)
    flat[6::19] = 3e38
    y, idx = kernels.max_pool2d_forward(x, (2, 2), (2, 2), ceil_mode=ceil_mode)
    assert ws.is_2x2_pool(x.shape, y.shape, (2, 2), (2, 2), (0, 0))
    want_y, want_i = np.empty_like(y), np.empty_like(idx)
    _general_max(name, 2, 2)(x, (0, 0), want_y, want_i)
    np.testing.assert_array_equal(y.view(np.uint8), want_y.view(np.uint8))  # NaN payloads
    np.testing.assert_array_equal(idx, want_i)
    tx = torch.from_numpy(x).requires_grad_(True)
    ty, tidx = F.max_pool2d(tx, 2, 2, ceil_mode=ceil_mode, return_indices=True)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    g = rng.standard_normal(y.shape).astype(dtype)
    gi = np.full(shape, np.nan, dtype)   # every cell must be written
    got = kernels.max_pool2d_backward(g, idx, shape, grad_in=gi)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(got, tx.grad.numpy())


# (input shape, padding, ceil_mode): ResNet's stem pool, no padding, one side padded,
# ceil mode past the edge, odd and even sizes, planes of 1 to 3 cells a side, rows
# wider than a vector and more planes than the blocks the work is split into
MAX_CASES = [((2, 3, 16, 16), (1, 1), False), ((2, 3, 15, 17), (1, 1), False),
             ((2, 3, 15, 17), (0, 0), False), ((2, 3, 14, 9), (0, 0), True),
             ((3, 2, 7, 8), (1, 0), True), ((2, 2, 1, 1), (1, 1), False),
             ((2, 2, 2, 3), (1, 1), True), ((2, 2, 3, 3), (0, 0), False),
             ((1, 2, 9, 50), (1, 1), False), ((40, 5, 8, 8), (1, 1), True)]


@pytest.mark.parametrize("name", COMPILED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", MAX_CASES, ids=str)
def test_max_pool_3x3s2_as_the_general_kernel_and_torch(name, dtype, case):
    shape, padding, ceil_mode = case
    kernels = backend.load(name)
    general = _general_max(name, 3, 2)
    rng = np.random.default_rng(2)
    x = _max_pool_input(rng, shape, dtype)
    assert ws.is_3x3s2_pool((3, 3), (2, 2), padding)
    y, idx = kernels.max_pool2d_forward(x, (3, 3), (2, 2), padding, ceil_mode=ceil_mode)
    want_y, want_i = np.empty_like(y), np.empty_like(idx)
    general(x, padding, want_y, want_i)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(idx, want_i)
    ty, tidx = F.max_pool2d(torch.from_numpy(x), 3, 2, padding, ceil_mode=ceil_mode,
                            return_indices=True)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    # NaN payloads: the window's last NaN itself
    np.testing.assert_array_equal(y.view(np.uint8), want_y.view(np.uint8))


@pytest.mark.parametrize("name", COMPILED)
@pytest.mark.parametrize("stride", [2, 1])
def test_max_pool_3x3_on_two_threads(name, stride):
    """The planes split over the threads, each with its own padded scratch plane."""
    x = np.random.default_rng(3).standard_normal((8, 64, 16, 16)).astype(np.float32)
    kernels = backend.load(name)
    general = _general_max(name, 3, stride)
    want_y = np.empty((8, 64, 16 // stride, 16 // stride), np.float32)
    want_i = np.empty(want_y.shape, np.int64)
    general(x, (1, 1), want_y, want_i)
    before = fastnn.get_num_threads()
    fastnn.set_num_threads(2)
    try:
        for _ in range(5):
            y, i = kernels.max_pool2d_forward(x, (3, 3), (stride, stride), (1, 1))
            np.testing.assert_array_equal(y, want_y)
            np.testing.assert_array_equal(i, want_i)
    finally:
        fastnn.set_num_threads(before)


# (input shape, padding) for 3x3 stride-1 max pools (is_3x3s1_pool): Inception's 28x28
# pad 1, no padding, one side padded, odd sizes, planes of 1 to 3 cells a side, rows
# wider than a vector, more planes than the blocks the work is split into
MAX_S1_CASES = [((2, 3, 28, 28), (1, 1)), ((2, 3, 15, 17), (1, 1)), ((2, 3, 15, 17), (0, 0)),
                ((3, 2, 7, 8), (1, 0)), ((3, 2, 8, 7), (0, 1)), ((2, 2, 1, 1), (1, 1)),
                ((2, 2, 2, 3), (1, 1)), ((2, 2, 3, 3), (0, 0)), ((1, 2, 9, 50), (1, 1)),
                ((40, 5, 8, 8), (1, 1))]


@pytest.mark.parametrize("name", COMPILED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", MAX_S1_CASES, ids=str)
def test_max_pool_3x3s1_as_the_general_kernel_and_torch(name, dtype, case):
    """Values, indices (ties: the first maximum; the last NaN; a window of -inf: its
    first cell inside the input) and the backward's scatter to them."""
    shape, padding = case
    kernels = backend.load(name)
    rng = np.random.default_rng(8)
    x = _max_pool_input(rng, shape, dtype)
    flat = x.reshape(-1)
    flat[6::19] = 3e38       # (float32's max is 3.4e38)
    flat[8::23] = -3e38
    assert ws.is_3x3s1_pool((3, 3), (1, 1), padding)
    y, idx = kernels.max_pool2d_forward(x, (3, 3), (1, 1), padding, ceil_mode=True)
    want_y, want_i = np.empty_like(y), np.empty_like(idx)
    _general_max(name, 3, 1)(x, padding, want_y, want_i)
    np.testing.assert_array_equal(y.view(np.uint8), want_y.view(np.uint8))  # NaN payloads
    np.testing.assert_array_equal(idx, want_i)
    tx = torch.from_numpy(x).requires_grad_(True)
    ty, tidx = F.max_pool2d(tx, 3, 1, padding, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    g = rng.standard_normal(y.shape).astype(dtype)
    gi = np.full(shape, np.nan, dtype)   # every cell must be written
    got = kernels.max_pool2d_backward(g, idx, shape, grad_in=gi)
    assert got is gi
    ty.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(got, tx.grad.numpy())


# (input shape, padding, ceil_mode) for 3x3 stride-2 average pools (is_3x3s2_pool): the
# benchmark's 16x16 pad 1, odd and even sizes, one side padded, ceil mode past the edge
# (a window with a cell past the padding: count_include_pad's divisor then < 9), planes
# of 1 to 3 cells a side, rows wider than a vector, more planes than blocks
AVG3_CASES = [((2, 3, 16, 16), (1, 1), False), ((2, 3, 15, 17), (1, 1), True),
              ((2, 3, 15, 17), (0, 0), False), ((2, 3, 14, 9), (0, 0), True),
              ((3, 2, 8, 7), (1, 0), True), ((3, 2, 7, 8), (0, 1), False),
              ((2, 2, 1, 1), (1, 1), False), ((2, 2, 2, 3), (1, 1), True),
              ((2, 2, 3, 3), (0, 0), False), ((1, 2, 9, 50), (1, 1), False),
              ((40, 5, 8, 8), (1, 1), True)]


def _general_avg(name, padding, include, divisor):
    """(forward, backward) of the backend's general average-pool kernels for 3x3/2."""
    (ph, pw), d = padding, divisor or 0
    if name == "numba":
        from fastnn.kernels.numba_cpu import conv
        return (lambda x, y: conv._avg_pool_fwd(x.size, x, 3, 3, 2, 2, ph, pw, include, d, y),
                lambda g, gi: conv._avg_pool_bwd(gi.size, g, 3, 3, 2, 2, ph, pw, include, d,
                                                 gi))
    from fastnn.kernels.cython import _conv
    return (lambda x, y: _conv._avg_pool_fwd(x, 3, 3, 2, 2, ph, pw, include, d, y),
            lambda g, gi: _conv._avg_pool_bwd(g, 3, 3, 2, 2, ph, pw, include, d, gi))


@pytest.mark.parametrize("name", COMPILED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", AVG3_CASES, ids=str)
@pytest.mark.parametrize("include, divisor", [(True, None), (False, None), (True, 5)])
def test_avg_pool_3x3s2_as_the_general_kernel_and_torch(name, dtype, case, include,
                                                         divisor):
    shape, padding, ceil_mode = case
    kernels = backend.load(name)
    fwd, bwd = _general_avg(name, padding, include, divisor)
    rng = np.random.default_rng(4)
    huge = dtype == np.float32 and divisor is None
    x = (_HUGE[rng.integers(0, len(_HUGE), shape)] if huge
         else rng.standard_normal(shape)).astype(dtype)
    assert ws.is_3x3s2_pool((3, 3), (2, 2), padding)
    y = kernels.avg_pool2d_forward(x, (3, 3), (2, 2), padding, count_include_pad=include,
                                   ceil_mode=ceil_mode, divisor_override=divisor)
    want = np.empty_like(y)
    with np.errstate(over="ignore", invalid="ignore"):
        fwd(x, want)
    np.testing.assert_array_equal(y, want)
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = F.avg_pool2d(tx, 3, 2, padding, ceil_mode=ceil_mode, count_include_pad=include,
                      divisor_override=divisor)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    g = (_HUGE[rng.integers(0, len(_HUGE), y.shape)] if huge
         else rng.standard_normal(y.shape)).astype(dtype)
    gi = np.full(shape, np.nan, dtype)   # every cell must be written
    got = kernels.avg_pool2d_backward(g, shape, (3, 3), (2, 2), padding,
                                      count_include_pad=include, grad_in=gi,
                                      ceil_mode=ceil_mode, divisor_override=divisor)
    assert got is gi
    want = np.empty_like(gi)
    with np.errstate(over="ignore", invalid="ignore"):
        bwd(g, want)
    np.testing.assert_array_equal(got, want)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(got, tx.grad.numpy())


@pytest.mark.parametrize("name", COMPILED)
def test_avg_pool_3x3s2_on_two_threads(name):
    """The planes split over the threads, each with its own scratch."""
    x = np.random.default_rng(5).standard_normal((8, 64, 16, 16)).astype(np.float32)
    g = np.random.default_rng(6).standard_normal((8, 64, 8, 8)).astype(np.float32)
    kernels = backend.load(name)
    fwd, bwd = _general_avg(name, (1, 1), True, None)
    want_y, want_g = np.empty_like(g), np.empty_like(x)
    fwd(x, want_y)
    bwd(g, want_g)
    before = fastnn.get_num_threads()
    fastnn.set_num_threads(2)
    try:
        for _ in range(5):
            np.testing.assert_array_equal(
                kernels.avg_pool2d_forward(x, (3, 3), (2, 2), (1, 1)), want_y)
            np.testing.assert_array_equal(
                kernels.avg_pool2d_backward(g, x.shape, (3, 3), (2, 2), (1, 1)), want_g)
    finally:
        fastnn.set_num_threads(before)


# (shape, kernel, stride, padding, ceil_mode): the tiling kernels (3x3/3, 2x3/2x3, the
# uncovered edge), the plane-wide runs (2x2 and 3x3 planes) and the 3x3/2 ones (ceil
# mode); the 2x2/2 kernels still give -0 (a fix cost them 4-9%, 1 thread)
SIGNED_ZERO_CASES = [((2, 3, 9, 9), 3, 3, 0, False), ((2, 3, 10, 11), 3, 3, 0, False),
                     ((2, 3, 6, 7), (2, 3), (2, 3), 0, False), ((4, 5, 2, 2), 2, 2, 0, False),
                     ((4, 5, 3, 3), 3, 3, 0, False), ((2, 3, 10, 10), 3, 2, 1, True),
                     ((2, 3, 9, 9), 3, 2, 0, False)]


@pytest.mark.parametrize("name", COMPILED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", SIGNED_ZERO_CASES, ids=str)
def test_avg_pool_backward_zero_signs_as_torch(name, dtype, case):
    """A -0 output gradient (and one whose share underflows to -0) gives +0, PyTorch's 0 +
    -0 into its zeroed gradient, where the kernels wrote the share itself; every other
    value the same."""
    shape, k, s, p, ceil = case
    rng = np.random.default_rng(3)
    x = torch.zeros(shape, dtype=torch.from_numpy(np.zeros(1, dtype)).dtype,
                    requires_grad=True)
    y = F.avg_pool2d(x, k, s, p, ceil)
    g = rng.standard_normal(tuple(y.shape)).astype(dtype)
    g.reshape(-1)[::2] = -0.0
    g.reshape(-1)[1::6] = -np.finfo(dtype).smallest_subnormal
    y.backward(torch.from_numpy(g))
    want = x.grad.numpy()
    with fastnn.use_backend(name):
        got = fastnn.ops.avg_pool2d_backward(g, shape, k, s, p, ceil_mode=ceil)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
