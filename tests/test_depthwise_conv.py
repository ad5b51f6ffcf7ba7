"""Depthwise convolution (Conv2d with groups = C_in) on every backend, float32 and
float64: the ops against PyTorch's grouped conv2d and the NumPy reference (strides,
paddings, channel multipliers, odd kernels), the gradients each alone, buffers, thread
counts, bad weights, and the Conv1d/Conv2d layers that route to it."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastnn
from fastnn import nn, ops
import fastnn.kernels.reference as R

from conftest import assert_close

torch.set_num_threads(1)

# (N, C_in, M, H, W, kernel, stride, padding)
CASES = [
    (2, 3, 1, 7, 9, (3, 3), (1, 1), (1, 1)),    # MobileNet's 3x3 'same'
    (1, 4, 2, 5, 6, (3, 2), (2, 1), (0, 1)),    # multiplier 2, stride along H only
    (3, 2, 3, 8, 8, (5, 5), (2, 2), (2, 2)),
    (2, 5, 1, 4, 4, (1, 1), (1, 1), (0, 0)),
    (1, 1, 1, 3, 3, (3, 3), (3, 3), (1, 1)),    # one window
    (2, 8, 1, 6, 5, (3, 3), (2, 3), (1, 0)),
    (2, 3, 2, 4, 7, (2, 4), (1, 1), (2, 3)),    # padding wider than half the kernel
    (1, 2, 1, 1, 9, (1, 3), (1, 1), (0, 1)),    # a 1-row image
    # column stride 2 (rows split into their even and odd columns in one pass): odd
    # width and odd padding, even width and none, and a last column no window reads
    (2, 3, 1, 7, 9, (3, 3), (2, 2), (1, 1)),
    (1, 2, 1, 6, 10, (3, 3), (1, 2), (0, 0)),
    (1, 2, 2, 5, 9, (2, 2), (2, 2), (0, 0)),
]


def tt(a, grad=False):
    return torch.from_numpy(np.array(a, copy=True)).requires_grad_(grad)


def case_arrays(rng, dtype, n, c, m, h, w, k):
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((c * m, 1) + k).astype(dtype)
    bias = rng.standard_normal(c * m).astype(dtype)
    return x, weight, bias


def torch_depthwise(x, weight, bias, stride, padding, g):
    tx, tw, tb = tt(x, True), tt(weight, True), tt(bias, True)
    ty = F.conv2d(tx, tw, tb, stride, padding, groups=x.shape[1])
    ty.backward(tt(g))
    return ty.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:5])))
def test_depthwise_matches_torch(backend, dtype, rng, case):
    n, c, m, h, w, k, stride, padding = case
    x, weight, bias = case_arrays(rng, dtype, n, c, m, h, w, k)
    y = ops.depthwise_conv2d_forward(x, weight, bias, stride, padding)
    g = rng.standard_normal(y.shape).astype(dtype)
    ty, tgx, tgw, tgb = torch_depthwise(x, weight, bias, stride, padding, g)
    scale = np.sqrt(weight[0].size)
    assert y.dtype == dtype and y.shape == ty.shape
    assert_close(y, ty, dtype, scale)
    grad_w = np.ones_like(weight)      # accumulated into: starts at 1, not 0
    grad_b = np.ones_like(bias)
    grad_in = ops.depthwise_conv2d_backward(g, x, weight, stride, padding, grad_w, grad_b)
    assert grad_in.dtype == dtype
    assert_close(grad_in, tgx, dtype, scale)
    assert_close(grad_w - 1, tgw, dtype, scale * np.sqrt(g[:, 0].size))
    assert_close(grad_b - 1, tgb, dtype, np.sqrt(g[:, 0].size))
    # no bias: the same outputs less the bias
    assert_close(ops.depthwise_conv2d_forward(x, weight, None, stride, padding),
                 ty - bias.reshape(-1, 1, 1), dtype, scale)


def test_depthwise_matches_reference_bigger(backend, dtype, rng):
    # large enough for the compiled kernels' parallel loops, several planes a thread
    x, weight, bias = case_arrays(rng, dtype, 6, 24, 2, 20, 18, (3, 3))
    for stride, padding in (((1, 1), (1, 1)), ((2, 2), (1, 1))):
        y = ops.depthwise_conv2d_forward(x, weight, bias, stride, padding)
        assert_close(y, R.depthwise_conv2d_forward(x, weight, bias, stride, padding), dtype, 3)
        g = rng.standard_normal(y.shape).astype(dtype)
        gw, gb = np.zeros_like(weight), np.zeros_like(bias)
        gi = ops.depthwise_conv2d_backward(g, x, weight, stride, padding, gw, gb)
        rw, rb = np.zeros_like(weight), np.zeros_like(bias)
        ri = R.depthwise_conv2d_backward(g, x, weight, stride, padding, rw, rb)
        assert_close(gi, ri, dtype, 3)
        assert_close(gw, rw, dtype, 60)
        assert_close(gb, rb, dtype, 20)


@pytest.mark.parametrize("stride", [(1, 1), (2, 1)])
def test_depthwise_each_gradient_alone(backend, rng, stride):
    x, weight, bias = case_arrays(rng, np.float64, 2, 3, 2, 6, 7, (3, 3))
    g = rng.standard_normal(ops.depthwise_conv2d_forward(x, weight, bias, stride,
                                                         (1, 1)).shape)
    full_w, full_b = np.zeros_like(weight), np.zeros_like(bias)
    full_in = ops.depthwise_conv2d_backward(g, x, weight, stride, (1, 1), full_w, full_b)
    only_w = np.zeros_like(weight)
    assert ops.depthwise_conv2d_backward(g, x, weight, stride, (1, 1), only_w, None,
                                         need_grad_in=False) is None
    np.testing.assert_allclose(only_w, full_w, rtol=1e-12)
    only_b = np.zeros_like(bias)
    assert ops.depthwise_conv2d_backward(g, x, weight, stride, (1, 1), None, only_b,
                                         need_grad_in=False) is None
    np.testing.assert_allclose(only_b, full_b, rtol=1e-12)
    grad_in = np.full_like(x, np.nan)  # written, not accumulated
    assert ops.depthwise_conv2d_backward(g, x, weight, stride, (1, 1),
                                         grad_in=grad_in) is grad_in
    np.testing.assert_allclose(grad_in, full_in, rtol=1e-12)
    assert ops.depthwise_conv2d_backward(g, x, weight, stride, (1, 1), None, None,
                                         need_grad_in=False) is None


def test_depthwise_out_buffer_and_empty_batch(backend, rng):
    x, weight, bias = case_arrays(rng, np.float32, 2, 4, 1, 5, 5, (3, 3))
    out = np.full((2, 4, 5, 5), np.nan, np.float32)
    assert ops.depthwise_conv2d_forward(x, weight, bias, 1, 1, out=out) is out
    np.testing.assert_allclose(out, R.depthwise_conv2d_forward(x, weight, bias, (1, 1),
                                                                (1, 1)), rtol=1e-5,
                               atol=1e-5)
    empty = np.zeros((0, 4, 5, 5), np.float32)
    assert ops.depthwise_conv2d_forward(empty, weight, bias, 1, 1).shape == (0, 4, 5, 5)
    gw, gb = np.ones_like(weight), np.ones_like(bias)
    grad_in = ops.depthwise_conv2d_backward(empty, empty, weight, 1, 1, gw, gb)
    assert grad_in.shape == (0, 4, 5, 5)
    np.testing.assert_array_equal(gw, 1)  # an empty batch adds nothing
    np.testing.assert_array_equal(gb, 1)


@pytest.mark.parametrize("stride", [(1, 1), (2, 2)])
def test_depthwise_same_bits_on_one_and_two_threads(rng, stride):
    x, weight, bias = case_arrays(rng, np.float32, 8, 16, 2, 24, 24, (3, 3))
    g = rng.standard_normal(ops.depthwise_conv2d_forward(x, weight, bias, stride,
                                                         (1, 1)).shape).astype(np.float32)
    previous = fastnn.get_num_threads()
    for name in [b for b in ("numba", "cython") if b in fastnn.backends()]:
        results = []
        for threads in (1, 2):
            fastnn.set_num_threads(threads)
            with fastnn.use_backend(name):
                y = ops.depthwise_conv2d_forward(x, weight, bias, stride, (1, 1))
                gw, gb = np.zeros_like(weight), np.zeros_like(bias)
                gi = ops.depthwise_conv2d_backward(g, x, weight, stride, (1, 1), gw, gb)
            results.append((y, gi, gw, gb))
        fastnn.set_num_threads(previous)
        for one, two in zip(*results):
            np.testing.assert_array_equal(one, two, err_msg=name)


def test_depthwise_rejects_bad_weights():
    x = np.zeros((1, 4, 5, 5), np.float32)
    with pytest.raises(ValueError, match=r"depthwise_conv2d_forward: expected weight of "
                                         r"shape \(M \* 4, 1, kH, kW\)"):
        ops.depthwise_conv2d_forward(x, np.zeros((4, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="depthwise_conv2d_backward: expected weight"):
        ops.depthwise_conv2d_backward(np.zeros((1, 6, 3, 3), np.float32), x,
                                      np.zeros((6, 1, 3, 3), np.float32))
    with pytest.raises(ValueError, match="larger than the padded input"):
        ops.depthwise_conv2d_forward(x, np.zeros((4, 1, 7, 7), np.float32))
    with pytest.raises(ValueError, match="grad_out"):
        ops.depthwise_conv2d_backward(np.zeros((1, 4, 4, 4), np.float32), x,
                                      np.zeros((4, 1, 3, 3), np.float32))


@pytest.mark.parametrize("dims,channels,multiplier,kernel,stride,padding", [
    (2, 6, 1, 3, 1, 1),
    (2, 4, 2, (3, 5), (2, 1), (1, 2)),
    (1, 5, 2, 5, 1, "same"),
    (1, 3, 1, 3, 2, 0),
])
def test_depthwise_layers_match_torch(backend, rng, dims, channels, multiplier, kernel,
                                      stride, padding):
    layer_class = nn.Conv2d if dims == 2 else nn.Conv1d
    torch_class = torch.nn.Conv2d if dims == 2 else torch.nn.Conv1d
    layer = layer_class(channels, channels * multiplier, kernel, stride=stride,
                        padding=padding, groups=channels)
    reference = torch_class(channels, channels * multiplier, kernel, stride=stride,
                            padding=padding, groups=channels)
    with torch.no_grad():
        reference.weight.copy_(tt(layer.weight.data))
        reference.bias.copy_(tt(layer.bias.data))
    shape = (3, channels, 9, 10) if dims == 2 else (3, channels, 17)
    x = rng.standard_normal(shape).astype(np.float32)
    tx = tt(x, True)
    ty = reference(tx)
    y = layer(x)
    assert_close(y, ty.detach().numpy(), np.float32, 3)
    g = rng.standard_normal(y.shape).astype(np.float32)
    ty.backward(tt(g))
    assert_close(layer.backward(g), tx.grad.numpy(), np.float32, 3)
    assert_close(layer.weight.grad, reference.weight.grad.numpy(), np.float32, 30)
    assert_close(layer.bias.grad, reference.bias.grad.numpy(), np.float32, 30)


@pytest.mark.parametrize("where", ["x", "weight", "grad_out"])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("stride,padding", [((1, 1), (1, 1)), ((1, 1), (0, 0)),
                                            ((2, 2), (1, 1)), ((2, 1), (0, 1))])
def test_depthwise_non_finite_values_spread_as_in_torch(backend, rng, where, value, stride,
                                                         padding):
    # PyTorch multiplies the zero padding too (an inf tap or gradient meeting it gives
    # NaN), and nothing else: the stride-1 kernels' columns past W_out must add nothing
    x, weight, bias = case_arrays(rng, np.float64, 2, 3, 2, 5, 6, (3, 2))
    g = rng.standard_normal(ops.depthwise_conv2d_forward(x, weight, bias, stride,
                                                         padding).shape)
    target = {"x": x, "weight": weight, "grad_out": g}[where]
    target[0, 0, 0, -1] = value        # a border cell: next to padding and row ends
    target[-1, -1, target.shape[2] // 2, 0] = value
    with np.errstate(invalid="ignore"):
        ty, tgx, tgw, tgb = torch_depthwise(x, weight, bias, stride, padding, g)
        y = ops.depthwise_conv2d_forward(x, weight, bias, stride, padding)
        gw, gb = np.zeros_like(weight), np.zeros_like(bias)
        gi = ops.depthwise_conv2d_backward(g, x, weight, stride, padding, gw, gb)
    for ours, theirs, name in ((y, ty, "y"), (gi, tgx, "grad_in"), (gw, tgw, "grad_weight"),
                               (gb, tgb, "grad_bias")):
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs), err_msg=name)
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(theirs), err_msg=name)
        finite = np.isfinite(theirs)
        np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-9, atol=1e-9,
                                   err_msg=name)


def test_depthwise_takes_read_only_inputs(backend, rng):
    x, weight, bias = case_arrays(rng, np.float32, 2, 3, 1, 6, 6, (3, 3))
    g = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    for a in (x, weight, bias, g):
        a.flags.writeable = False
    y = ops.depthwise_conv2d_forward(x, weight, bias, 2, 1)
    assert_close(y, R.depthwise_conv2d_forward(x, weight, bias, (2, 2), (1, 1)), np.float32, 3)
    gw = np.zeros_like(weight)
    gi = ops.depthwise_conv2d_backward(g, x, weight, 2, 1, gw)
    ri = R.depthwise_conv2d_backward(g, x, weight, (2, 2), (1, 1), rw := np.zeros_like(gw))
    assert_close(gi, ri, np.float32, 3)
    assert_close(gw, rw, np.float32, 10)
