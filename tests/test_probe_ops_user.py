"""fastnn.ops from a NumPy user's side (probe of 3 Dec, against PyTorch 2.13):

* an error that refuses a written array's layout says what it got (its shape and
  strides): 'expected out to be C-contiguous' alone did not, for out=, an update's
  param and max pooling's indices; a NumPy scalar where an array belongs is named as
  one ('got float32' read as an array's dtype);
* what the probe found holding, kept here: arrays an op hands back are never written by
  later calls of any op, and the optimizer updates write parameters and state that are
  views into one flat buffer in place, as torch.optim does, and nothing beside them.
"""
import re

import numpy as np
import pytest

import fastnn
from fastnn import ops

torch = pytest.importorskip("torch")

BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.backends()]
DTYPES = [np.float32, np.float64]


def _transposed(shape, dtype):
    """A writeable F-ordered view of shape (not C-contiguous)."""
    return np.zeros(shape[::-1], dtype).T


def _layout_refusals():
    x = np.ones((3, 4), np.float32)
    x4 = np.ones((1, 1, 4, 4), np.float32)
    state = [np.zeros((4, 3), np.float32) for _ in range(2)]
    return {
        "relu out= transposed": (lambda: ops.relu(x, out=_transposed((3, 4), np.float32)),
                                 "relu", "out", (3, 4), (4, 12)),
        "relu out= broadcast": (lambda: ops.relu(x[0], out=np.broadcast_to(
            np.zeros(1, np.float32), (4,))), "relu", "out", (4,), (0,)),
        "linear grad_weight strided": (lambda: ops.linear_backward(
            np.ones((3, 2), np.float32), x, np.ones((2, 4), np.float32),
            grad_weight=np.zeros((2, 8), np.float32)[:, ::2]),
            "linear_backward", "grad_weight", (2, 4), (32, 8)),
        "adam param transposed": (lambda: ops.adam_update(
            _transposed((4, 3), np.float32), np.ones((4, 3), np.float32), *state, 1),
            "adam_update", "param", (4, 3), (4, 16)),
        "max_pool2d indices strided": (lambda: ops.max_pool2d_forward(
            x4, 2, 2, indices=np.zeros((1, 1, 2, 4), np.int64)[..., ::2]),
            "max_pool2d_forward", "indices", (1, 1, 2, 2), (64, 64, 32, 16)),
    }


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(_layout_refusals()))
def test_a_refused_layout_says_what_it_got(backend, case):
    call, op, name, shape, strides = _layout_refusals()[case]
    with fastnn.use_backend(backend):
        with pytest.raises(ValueError) as info:
            call()
    message = str(info.value)
    assert message.startswith(f"{op}: ") and name in message and "C-contiguous" in message
    assert f"got an array of shape {shape} and strides {strides}" in message


@pytest.mark.parametrize("value", [np.float32(2.5), np.float64(-1.0), np.int64(3)])
def test_a_numpy_scalar_is_named_as_one(value):
    with pytest.raises(TypeError, match=re.escape(
            f"relu: expected x to be a numpy.ndarray, got a NumPy scalar, "
            f"numpy.{type(value).__name__}({value})")):
        ops.relu(value)
    assert ops.relu(np.asarray(value, np.float32)).shape == ()   # as the message says


def _every_op_once(rng, dtype, n, c):
    """(name, array) for every array the ops hand back, on (n, c) data."""
    x = rng.standard_normal((n, c)).astype(dtype)
    g = rng.standard_normal((n, c)).astype(dtype)
    w = rng.standard_normal((4, c)).astype(dtype)
    x4 = rng.standard_normal((n, c, 3, 4)).astype(dtype)
    w4 = rng.standard_normal((2, c, 2, 2)).astype(dtype)
    ones, zeros = np.ones(c, dtype), np.zeros(c, dtype)
    got = []
    for name in ("relu", "sigmoid", "tanh", "gelu", "mish", "silu", "softplus", "softmax",
                 "log_softmax", "hardswish", "elu"):
        y = getattr(ops, name)(x)
        got += [(name, y), (name + "_backward", getattr(ops, name + "_backward")(g, y))]
    y = ops.linear_forward(x, w, np.ones(4, dtype), "relu")
    got += [("linear_forward", y), ("linear_backward", ops.linear_backward(
        np.ones((n, 4), dtype), x, w, y, "relu", grad_weight=np.zeros((4, c), dtype)))]
    got += list(zip(["dropout y", "dropout mask"], ops.dropout_forward(x, 0.5, 3)))
    got += [("softmax_cross_entropy", ops.softmax_cross_entropy(x, rng.integers(0, c, n))[1])]
    for loss in ("mse_loss", "smooth_l1_loss", "bce_with_logits_loss"):
        got += [(loss, getattr(ops, loss)(x, g)[1])]
    bn = ops.batchnorm_forward(x, ones, zeros, zeros.copy(), ones.copy())
    got += list(zip(["bn y", "bn mean", "bn invstd"], bn))
    got += [("batchnorm_backward", ops.batchnorm_backward(g, x, ones, bn[1], bn[2]))]
    ln = ops.layer_norm_forward(x)
    got += list(zip(["ln y", "ln mean", "ln invstd"], ln))
    got += [("layer_norm_backward", ops.layer_norm_backward(g, x, None, ln[1], ln[2]))]
    got += [("conv2d_forward", ops.conv2d_forward(x4, w4)),
            ("conv2d_backward", ops.conv2d_backward(np.ones((n, 2, 2, 3), dtype), x4, w4))]
    pooled, indices = ops.max_pool2d_forward(x4, 2, 1)
    got += [("max_pool2d y", pooled), ("max_pool2d indices", indices),
            ("max_pool2d_backward", ops.max_pool2d_backward(pooled, indices, x4.shape)),
            ("avg_pool2d_forward", ops.avg_pool2d_forward(x4, 2, 1))]
    return got


@pytest.mark.parametrize("backend", BACKENDS)
def test_arrays_handed_back_are_never_written_by_later_calls_of_any_op(backend):
    rng = np.random.default_rng(0)
    with fastnn.use_backend(backend):
        first = _every_op_once(rng, np.float32, 17, 3)
        kept = [(name, a.copy()) for name, a in first]
        for i, (name, a) in enumerate(first):   # and no two share memory
            assert not any(np.may_share_memory(a, b) for _, b in first[i + 1:]), name
        for dtype, n, c in ((np.float32, 17, 3), (np.float64, 17, 3), (np.float32, 65, 16)):
            _every_op_once(rng, dtype, n, c)
    for (name, a), (_, before) in zip(first, kept):
        np.testing.assert_array_equal(a, before, err_msg=name)


def _flat_views(shape, dtype, count):
    """count C-contiguous views of shape into one zeroed buffer, one value apart."""
    size = int(np.prod(shape))
    flat = np.zeros(count * (size + 1) + 1, dtype)
    return flat, [flat[1 + i * (size + 1):1 + i * (size + 1) + size].reshape(shape)
                  for i in range(count)]


UPDATES = {   # name -> (torch.optim class and options, fastnn step(param, grad, state, step))
    "sgd_nesterov": ((torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)), 1,
                     lambda p, g, s, t: ops.sgd_update(p, g, s[0], 0.1, 0.9, nesterov=True)),
    "adam_amsgrad": ((torch.optim.Adam, dict(lr=0.1, weight_decay=0.01, amsgrad=True)), 3,
                     lambda p, g, s, t: ops.adam_update(p, g, s[0], s[1], t, 0.1,
                                                        weight_decay=0.01,
                                                        max_exp_avg_sq=s[2])),
    "rmsprop_centered": ((torch.optim.RMSprop, dict(lr=0.01, momentum=0.5, centered=True)),
                         3, lambda p, g, s, t: ops.rmsprop_update(
                             p, g, s[0], 0.01, momentum=0.5, momentum_buffer=s[1],
                             grad_avg=s[2])),
    "adagrad": ((torch.optim.Adagrad, dict(lr=0.1)), 1,
                lambda p, g, s, t: ops.adagrad_update(p, g, s[0], 0.1)),
    "adadelta": ((torch.optim.Adadelta, dict(maximize=True)), 2,
                 lambda p, g, s, t: ops.adadelta_update(p, g, s[0], s[1], maximize=True)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("update", list(UPDATES))
def test_updates_of_views_into_one_buffer_match_torch_and_write_only_them(backend, dtype,
                                                                         update):
    (cls, options), n_state, step = UPDATES[update]
    rng = np.random.default_rng(1)
    shape = (17, 3)
    p0 = rng.standard_normal(shape).astype(dtype)
    grads = [rng.standard_normal(shape).astype(dtype) for _ in range(3)]
    tp = torch.from_numpy(p0.copy()).requires_grad_()
    opt = cls([tp], **options)
    flat, (param, *state) = _flat_views(shape, dtype, 1 + n_state)
    param[...] = p0
    with fastnn.use_backend(backend):
        for t, g in enumerate(grads, 1):
            tp.grad = torch.from_numpy(g.copy())
            opt.step()
            # the gradient as a NumPy user may hold it: a negative-stride or F-ordered view
            step(param, np.flip(np.flip(g, 0).copy(), 0) if t % 2 else np.asfortranarray(g),
                 state, t)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12,
                                                                      "atol": 1e-13}
    np.testing.assert_allclose(param, tp.detach().numpy(), **tol)
    outside = np.ones(flat.size, bool)
    for view in [param] + state:
        start = (view.__array_interface__["data"][0]
                 - flat.__array_interface__["data"][0]) // flat.itemsize
        outside[start:start + view.size] = False
    assert not flat[outside].any()
