"""Conv2d forward and backward on the im2col/col2im paths other than stride-1 'same'
(strided, 'valid', 1x1 stride 2, mixed strides), every backend exactly equal to the NumPy
reference and to PyTorch on integer-valued data (every product and partial sum is an
integer below 2**24, so any order of additions gives the same float32 bits).

Guards the numba kernels' flat-index im2col/col2im loops for these paths (they
replaced row slices and views, 2-5x faster): a wrong column, row or zero shows up as an
exact mismatch."""
import numpy as np
import pytest
import torch

import fastnn
from fastnn import backend

# (N, C_in, H, W, C_out, kernel, stride, padding)
CASES = [
    (3, 4, 9, 9, 5, (3, 3), (2, 2), (1, 1)),     # stride 2, 'same'-style padding
    (2, 3, 12, 12, 4, (5, 5), (1, 1), (0, 0)),   # 'valid' 5x5 (LeNet)
    (2, 6, 8, 8, 3, (1, 1), (2, 2), (0, 0)),     # 1x1 stride 2 (a ResNet shortcut)
    (2, 2, 7, 10, 3, (3, 2), (2, 1), (1, 1)),    # row stride 2, column stride 1
    (2, 2, 10, 7, 3, (2, 3), (1, 3), (0, 2)),    # column stride 3, wide padding
    (1, 3, 20, 20, 2, (3, 3), (1, 1), (0, 0)),   # one sample of over 128 columns
    (5, 1, 6, 6, 2, (4, 4), (2, 2), (2, 2)),     # padding past the image
]


def _ints(rng, shape, low, high):
    return rng.integers(low, high, size=shape).astype(np.float32)


@pytest.mark.parametrize("name", [b for b in ("numba", "cython") if b in fastnn.backends()])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_strided_conv_exact(name, case):
    n, c_in, h, w, c_out, k, stride, padding = case
    rng = np.random.default_rng(7)
    x = _ints(rng, (n, c_in, h, w), -3, 4)
    weight = _ints(rng, (c_out, c_in) + k, -2, 3)
    bias = _ints(rng, (c_out,), -5, 6)
    ref, ours = backend.load("numpy"), backend.load(name)
    y_ref = ref.conv2d_forward(x, weight, bias, stride, padding)
    y = ours.conv2d_forward(x, weight, bias, stride, padding)
    t = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(weight),
                                   torch.from_numpy(bias), stride, padding).numpy()
    np.testing.assert_array_equal(y_ref, t)
    np.testing.assert_array_equal(y, t)
    g = _ints(rng, y.shape, -2, 3)
    results = []
    for kernels in (ref, ours):
        gw = np.ones_like(weight)   # accumulated into
        gb = np.ones_like(bias)
        gi = np.full_like(x, 9.0)   # overwritten
        out = kernels.conv2d_backward(g, x, weight, stride, padding, gw, gb, gi)
        results.append((out, gw, gb))
    tx = torch.from_numpy(x).requires_grad_(True)
    tw = torch.from_numpy(weight).requires_grad_(True)
    tb = torch.from_numpy(bias).requires_grad_(True)
    torch.nn.functional.conv2d(tx, tw, tb, stride, padding).backward(torch.from_numpy(g))
    expected = (tx.grad.numpy(), tw.grad.numpy() + 1, tb.grad.numpy() + 1)
    for got in results:
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)
