"""fastnn.ops takes the inputs a NumPy user hands it: read-only arrays on every
backend (the numba backend's two-pass activations once failed to compile for them) and
strided per-channel vectors for the norm ops (the Cython kernels once raised 'ndarray is
not C-contiguous'), with the contiguous inputs' results."""
import numpy as np
import pytest

import fastnn
from fastnn import backend, ops

BACKENDS = backend.backends()
BACKENDS = [name for name in ("numpy", "numba", "cython") if name in BACKENDS]
DTYPES = [np.float32, np.float64]


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("n", [12, 40000])              # serial and parallel variants
@pytest.mark.parametrize("name", BACKENDS)
def test_activations_take_read_only_inputs(name, n, dtype):
    x = np.linspace(-6, 6, n).astype(dtype)
    g = np.cos(x).astype(dtype)
    with fastnn.use_backend(name):
        for op in ("gelu", "softplus", "mish", "silu", "sigmoid", "relu"):
            np.testing.assert_array_equal(getattr(ops, op)(_read_only(x)),
                                          getattr(ops, op)(x), err_msg=op)
            backward = getattr(ops, op + "_backward")
            saved = getattr(ops, op)(x) if op in ("sigmoid", "relu") else x
            np.testing.assert_array_equal(backward(_read_only(g), _read_only(saved)),
                                          backward(g, saved), err_msg=op)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", BACKENDS)
def test_norm_ops_take_strided_vectors(name, dtype):
    rng = np.random.default_rng(0)
    x = rng.random((6, 3)).astype(dtype)

    def strided(v):
        wide = np.empty(2 * v.size, dtype)
        wide[::2] = v
        return wide[::2]

    w, b = np.array([1.5, 0.5, 2.0], dtype), np.array([0.0, 1.0, -1.0], dtype)
    with fastnn.use_backend(name):
        y, mean, invstd = ops.batchnorm_forward(x, strided(w), strided(b), np.zeros(3, dtype),
                                                np.ones(3, dtype))
        want = ops.batchnorm_forward(x, w, b, np.zeros(3, dtype), np.ones(3, dtype))
        np.testing.assert_array_equal(y, want[0])
        grad = ops.batchnorm_backward(np.ones_like(x), x, strided(w), strided(mean),
                                      strided(invstd))
        np.testing.assert_array_equal(grad, ops.batchnorm_backward(np.ones_like(x), x, w,
                                                                   mean, invstd))
        rows = rng.random((4, 3)).astype(dtype)
        y, mean, invstd = ops.layer_norm_forward(rows, strided(w), strided(b))
        want = ops.layer_norm_forward(rows, w, b)
        np.testing.assert_array_equal(y, want[0])
        got = ops.layer_norm_backward(np.ones_like(rows), rows, strided(w), strided(mean),
                                      strided(invstd))
        want = ops.layer_norm_backward(np.ones_like(rows), rows, w, mean, invstd)
        for a, e in zip(got if isinstance(got, tuple) else (got,),
                        want if isinstance(want, tuple) else (want,)):
            np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", BACKENDS)
def test_zero_dimensional_inputs_give_arrays(name, dtype):
    """A 0-d input gives 0-d arrays back, as PyTorch's 0-d tensors, on every backend.
    NumPy arithmetic on 0-d arrays gives NumPy scalars (np.float32), which fastnn.ops
    itself refuses as inputs ('got a NumPy scalar') and no op can write into (out=,
    grad=): the numpy backend handed them back for the losses' gradients and dropout's
    output and input gradient (F.dropout too), every backend for dropout at p = 1 and
    for a loss layer's backward(2.0)."""
    from fastnn import nn
    from fastnn.nn import functional as F
    pred, target = np.array(0.75, dtype), np.array(0.25, dtype)
    with fastnn.use_backend(name):
        loss = nn.MSELoss()
        loss(pred, target)
        got = [ops.mse_loss(pred, target)[1], ops.bce_loss(pred, target)[1],
               ops.bce_with_logits_loss(pred, target)[1],
               ops.smooth_l1_loss(pred, target)[1], *ops.dropout_forward(pred, 0.5, 3),
               *ops.dropout_forward(pred, 1.0, 3), F.dropout(pred, 0.5),
               loss.backward(2.0), ops.dropout_backward(pred, np.array(2.0, dtype))]
    for i, value in enumerate(got):
        assert type(value) is np.ndarray and value.shape == () and value.dtype == dtype, i
    np.testing.assert_array_equal(got[0], 1.0)       # 2 (0.75 - 0.25)
    np.testing.assert_array_equal(got[-2], 2.0)
    np.testing.assert_array_equal(got[-1], 2 * pred)
