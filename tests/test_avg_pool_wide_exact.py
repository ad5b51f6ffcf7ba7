"""Average pooling with windows wider than the tiling kernels take (global pooling,
AdaptiveAvgPool2d(1) on a feature map, 4x4 and 5x5 windows, padding, divisor_override),
every backend exactly equal to PyTorch on integer-valued data whose window sums and
shares are exact in float32 (counts that are powers of two, or a divisor_override that
is), so any order of additions gives the same bits.

Guards the numba kernels' flat-index loops over each window (they replaced 4-D
indexing, 2-4x faster for a global pool)."""
import numpy as np
import pytest
import torch

import fastnn
from fastnn import backend, nn

BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.backends()]

# (N, C, H, W, kernel, stride, padding, count_include_pad, divisor_override)
CASES = [
    (3, 5, 8, 8, (8, 8), (8, 8), (0, 0), True, None),      # global pool
    (2, 3, 16, 16, (16, 16), (16, 16), (0, 0), True, None),
    (2, 4, 9, 12, (4, 4), (4, 4), (0, 0), True, None),     # leftover rows and columns
    (2, 2, 10, 9, (4, 4), (2, 3), (2, 1), True, None),     # overlapping, padded
    (2, 2, 11, 7, (5, 5), (3, 2), (2, 2), False, 8),       # a divisor_override
    (1, 3, 6, 6, (4, 2), (1, 2), (2, 0), True, None),
]


def _ints(rng, shape, low, high):
    return rng.integers(low, high, size=shape).astype(np.float32)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_wide_avg_pool_exact(name, case):
    n, c, h, w, k, stride, padding, include, divisor = case
    rng = np.random.default_rng(3)
    x = _ints(rng, (n, c, h, w), -8, 9)
    kernels = backend.load(name)
    y = kernels.avg_pool2d_forward(x, k, stride, padding, include,
                                   divisor_override=divisor)
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = torch.nn.functional.avg_pool2d(tx, k, stride, padding, count_include_pad=include,
                                        divisor_override=divisor)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    area = k[0] * k[1] if divisor is None else divisor   # (a power of two in every case
    g = _ints(rng, y.shape, -3, 4) * area                # where windows keep their area)
    if not include:
        g = g * 3 * 5 * 7   # (every count a window can have, times a power of two)
    grad_in = np.full_like(x, 5.0)   # overwritten
    out = kernels.avg_pool2d_backward(g, x.shape, k, stride, padding, include,
                                      grad_in=grad_in, divisor_override=divisor)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(out, tx.grad.numpy())


@pytest.mark.parametrize("name", BACKENDS)
def test_adaptive_global_pool_layer_exact(name):
    """AdaptiveAvgPool2d(1) on an 8x8 map (the avg_pool2d kernels with an 8x8 window),
    forward and backward through the layer, as PyTorch's to the bit."""
    rng = np.random.default_rng(4)
    x = _ints(rng, (4, 6, 8, 8), -10, 11)
    g = _ints(rng, (4, 6, 1, 1), -4, 5) * 64
    with fastnn.use_backend(name):
        layer = nn.AdaptiveAvgPool2d(1)
        y = layer(x)
        grad_in = layer.backward(g)
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = torch.nn.functional.adaptive_avg_pool2d(tx, 1)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(grad_in, tx.grad.numpy())


# values near float32's max: a window's (or a cell's gradient's) sum overflows, to +inf,
# -inf or NaN by the order of its additions
_HUGE = np.array([3e38, -3e38, 2.5e38, -1e38, 1e38, 0.0], np.float32)
OVERFLOWING = {
    "1d_k3s1p1": (lambda m: m.AvgPool1d(3, 1, 1), (2, 3, 9)),
    "1d_k4s1p2_exclude_pad": (lambda m: m.AvgPool1d(4, 1, 2, count_include_pad=False),
                              (2, 3, 9)),
    "2d_k2": (lambda m: m.AvgPool2d(2), (2, 3, 6, 6)),
    "2d_k3s1p1": (lambda m: m.AvgPool2d(3, 1, 1), (2, 3, 6, 6)),
    "2d_k3s2p1_ceil": (lambda m: m.AvgPool2d(3, 2, 1, ceil_mode=True), (2, 3, 7, 7)),
    "2d_global": (lambda m: m.AvgPool2d(6), (2, 3, 6, 6)),
    # more planes than a block of the compiled kernels' global sums (8), and a remainder
    # (not AdaptiveAvgPool2d(1): PyTorch takes that as a mean(), in another order)
    "2d_global_planes": (lambda m: m.AvgPool2d(7), (3, 5, 7, 7)),
    "3d_global": (lambda m: m.AvgPool3d((2, 3, 3)), (2, 5, 2, 3, 3)),
    "2d_divisor": (lambda m: m.AvgPool2d(3, 1, divisor_override=2), (2, 3, 6, 6)),
    "adaptive_1d_tiling": (lambda m: m.AdaptiveAvgPool1d(2), (2, 3, 8)),
}


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("case", OVERFLOWING)
def test_overflowing_float32_avg_pools_agree_with_the_reference_and_torch(name, case):
    """Each window summed from 0 in row-major order, each cell's gradient from 0 over its
    windows in row-major order, in float32 (PyTorch CPU's order): the NumPy reference's
    two-axis sum and tap-order scatter, numba's reassociated sums and float64 shares and
    Cython's vectorised sums (-fassociative-math) overflowed differently (inf against
    NaN, +inf against -inf, a float64 share's finite sum)."""
    make, shape = OVERFLOWING[case]
    rng = np.random.default_rng(5)
    x = _HUGE[rng.integers(0, len(_HUGE), shape)]
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = make(torch.nn)(tx)
    g = _HUGE[rng.integers(0, len(_HUGE), tuple(ty.shape))]
    ty.backward(torch.from_numpy(g))
    with np.errstate(over="ignore", invalid="ignore"), fastnn.use_backend(name):
        layer = make(nn)
        y = layer(x)
        grad_in = layer.backward(g)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(grad_in, tx.grad.numpy())
