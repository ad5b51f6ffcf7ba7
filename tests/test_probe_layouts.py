"""Found by probing layers with inputs and gradients in unusual memory layouts: a
layer's results are those of a C-contiguous copy of the same values, bit for bit. A
np.memmap input took another path than an ndarray (Softmax along a leading axis ran the
row kernels instead of NumPy's reductions) and an unaligned array (a float view at an odd
byte offset of a buffer) went through NumPy's non-BLAS matmul loop; each rounded
differently. Both are now passed on as an aligned plain ndarray."""
import copy

import numpy as np
import pytest

import fastnn
from fastnn import nn


def _memmap(a, tmp_path):
    m = np.memmap(tmp_path / "a.bin", dtype=a.dtype, mode="w+", shape=a.shape)
    m[...] = a
    m.flush()
    return np.memmap(tmp_path / "a.bin", dtype=a.dtype, mode="r", shape=a.shape)


def _unaligned(a, tmp_path):
    buf = bytearray(a.nbytes + 1)
    u = np.frombuffer(buf, a.dtype, count=a.size, offset=1).reshape(a.shape)
    u[...] = a
    assert not u.flags.aligned
    return u


def _run(layer, x, g):
    y = layer(x)
    return y, layer.backward(g), [p.grad.copy() for p in layer.parameters()]


@pytest.mark.parametrize("make", [_memmap, _unaligned])
@pytest.mark.parametrize("which", ["x", "g"])
@pytest.mark.parametrize("layer,shape", [
    (lambda: nn.Softmax(dim=0), (4, 5)),
    (lambda: nn.LogSoftmax(dim=1), (2, 4, 3)),
    (lambda: nn.Linear(1, 3), (4, 1)),
    (lambda: nn.Linear(5, 3), (4, 5)),
    (lambda: nn.Conv2d(2, 3, 3, padding=1), (2, 2, 4, 5)),
], ids=["softmax0", "logsoftmax1", "linear1", "linear", "conv2d"])
def test_memmap_and_unaligned_arrays_give_the_contiguous_results(
        backend, dtype, make, which, layer, shape, tmp_path):
    rng = np.random.default_rng(0)
    fastnn.manual_seed(0)
    base = layer().to_dtype(dtype)
    x = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(copy.deepcopy(base)(x).shape).astype(dtype)
    expected = _run(copy.deepcopy(base), x, g)
    odd = make(x if which == "x" else g, tmp_path)
    got = _run(copy.deepcopy(base), *((odd, g) if which == "x" else (x, odd)))
    for e, a in zip(expected[:2], got[:2]):
        assert type(a) is np.ndarray
        np.testing.assert_array_equal(a, e)
    for e, a in zip(expected[2], got[2]):
        np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("name", ["relu", "tanh", "softmax", "gelu"])
def test_an_op_runs_in_place_on_a_memmap(backend, name, tmp_path):
    """out= the very memmap passed as x is the op in place (as for an ndarray), not an
    overlap: x reaches the kernel as a plain view of the same memory."""
    from fastnn import ops
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    expected = getattr(ops, name)(x)
    m = np.memmap(tmp_path / "x.bin", dtype=np.float32, mode="w+", shape=x.shape)
    m[...] = x
    assert getattr(ops, name)(m, out=m) is m
    np.testing.assert_array_equal(m, expected)


@pytest.mark.parametrize("into", ["grad_out", "x"])
def test_gelu_tanh_backward_in_place_equals_out_of_place(backend, dtype, into):
    """numba's tanh-GELU backward gave 1-ulp differences (a third of the values) when
    out= was grad_out or x; it now runs as the out-of-place call does."""
    from fastnn import ops
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((7, 301)) * 4).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    expected = ops.gelu_tanh_backward(g, x)
    args = {"grad_out": g.copy(), "x": x.copy()}
    ops.gelu_tanh_backward(args["grad_out"], args["x"], out=args[into])
    np.testing.assert_array_equal(args[into], expected)


@pytest.mark.parametrize("layout", ["transposed", "step"])
def test_bilinear_gives_a_strided_input_the_contiguous_results(dtype, layout):
    """Bilinear's einsum contracted a strided x2 in another order than a contiguous one
    (1-ulp differences); its inputs are made contiguous first."""
    rng = np.random.default_rng(0)
    x1 = rng.standard_normal((3, 4)).astype(dtype)
    x2 = rng.standard_normal((3, 5)).astype(dtype)
    odd = (np.asfortranarray(x2) if layout == "transposed"
           else np.repeat(x2, 2, axis=1)[:, ::2])
    fastnn.manual_seed(0)
    layer = nn.Bilinear(4, 5, 2).to_dtype(dtype)
    other = copy.deepcopy(layer)
    np.testing.assert_array_equal(other(x1, odd), layer(x1, x2))


@pytest.mark.parametrize("which", [1, 2])
def test_functional_bilinear_gives_strided_operands_the_contiguous_results(which):
    """F.bilinear, as nn.Bilinear: a strided input2 (or weight) gave 1-ulp differences."""
    from fastnn.nn import functional as F
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s) for s in ((4, 5), (4, 3), (2, 5, 3))]
    expected = F.bilinear(*args)
    args[which] = np.asfortranarray(args[which])
    np.testing.assert_array_equal(F.bilinear(*args), expected)
