"""A value's bits do not depend on its place in the array: each elementwise op, its
backward, the elementwise losses' gradients and the optimizer updates give a whole-array
call's bits in one-value calls (x[i:i+1]) and in calls on short slices, bitwise (NaN
where the other has NaN). A value goes through a loop's vector body in one call and its
scalar remainder in the other, and LLVM (or gcc) may compile the same expression
differently in the two: numba's float32 softplus rounded max(z, 0) + x Q(x) twice in its
512-bit body and once in the remainder (b87a35b), numba's tanh-GELU slope multiplied in
a different order in each under reassoc."""
import numpy as np
import pytest

from fastnn import backend as registry

BACKENDS = [name for name in ("numba", "cython") if name in registry.backends()]
pytestmark = pytest.mark.skipif(not BACKENDS, reason="no compiled backend")
DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64],
                                 ids=["float32", "float64"])
N = 331   # 20 * 16 + 11: a remainder in float32 and float64 loops


def _inputs(n, dtype, seed=0):
    """Every branch: near 0, the thresholds (1, 3, 5, 20), exp's limits, large, NaN,
    inf, -0 and subnormals."""
    rng = np.random.default_rng(seed + n)
    parts = [rng.standard_normal(n) * 6, rng.standard_normal(n), rng.uniform(-25, 25, n),
             rng.uniform(-3.2, 3.2, n), np.exp(rng.uniform(-30, 12, n)) * rng.choice([-1, 1], n)]
    pick = rng.integers(0, len(parts), n)
    x = np.choose(pick, parts)
    special = [np.nan, np.inf, -np.inf, 0.0, -0.0, 30.0, -100.0, 20.0, -20.0, 3.0, -3.0, 1.0,
               -1.0, 1e-40, 88.0, -88.0, 700.0, -700.0, 15.0, 1e4, -1e4, 0.5]
    x[rng.choice(n, len(special), replace=False)] = special
    return x.astype(dtype)


def _assert_same_bits(a, b):
    nan = np.isnan(a)
    np.testing.assert_array_equal(nan, np.isnan(b))
    uint = np.uint32 if a.dtype == np.float32 else np.uint64
    np.testing.assert_array_equal(a[~nan].view(uint), b[~nan].view(uint))


def _slices(n):
    """(start, stop) of one-value calls and of slices of 2 ... 40 values at varying
    offsets."""
    return [(i, i + 1) for i in range(n)] + [(o, o + m) for m in range(2, 41)
                                             for o in ((m * 37) % (n - m), n - m)]


UNARY = {
    "relu": lambda be, x: be.relu(x),
    "leaky_relu": lambda be, x: be.leaky_relu(x, 0.2),
    "sigmoid": lambda be, x: be.sigmoid(x),
    "tanh": lambda be, x: be.tanh(x),
    "gelu": lambda be, x: be.gelu(x),
    "gelu_tanh": lambda be, x: be.gelu_tanh(x),
    "mish": lambda be, x: be.mish(x),
    "silu": lambda be, x: be.silu(x),
    "elu": lambda be, x: be.elu(x, 0.7),
    "softplus": lambda be, x: be.softplus(x, 2.0, 5.0),
    "hardsigmoid": lambda be, x: be.hardsigmoid(x),
    "hardswish": lambda be, x: be.hardswish(x),
    "softsign": lambda be, x: be.softsign(x),
    "hardtanh": lambda be, x: be.hardtanh(x, -2.0, 3.0),
    "sine": lambda be, x: be.sine(x, 30.0),
}
BACKWARD = {   # (grad_out, x); relu, sigmoid and tanh take their output y
    "relu": lambda be, g, x: be.relu_backward(g, np.maximum(x, 0)),
    "leaky_relu": lambda be, g, x: be.leaky_relu_backward(g, x, 0.2),
    "sigmoid": lambda be, g, x: be.sigmoid_backward(g, be.sigmoid(x)),
    "tanh": lambda be, g, x: be.tanh_backward(g, be.tanh(x)),
    "gelu": lambda be, g, x: be.gelu_backward(g, x),
    "gelu_tanh": lambda be, g, x: be.gelu_tanh_backward(g, x),
    "mish": lambda be, g, x: be.mish_backward(g, x),
    "silu": lambda be, g, x: be.silu_backward(g, x),
    "elu": lambda be, g, x: be.elu_backward(g, x, 0.7),
    "softplus": lambda be, g, x: be.softplus_backward(g, x, 2.0, 5.0),
    "hardsigmoid": lambda be, g, x: be.hardsigmoid_backward(g, x),
    "hardswish": lambda be, g, x: be.hardswish_backward(g, x),
    "softsign": lambda be, g, x: be.softsign_backward(g, x),
    "hardtanh": lambda be, g, x: be.hardtanh_backward(g, x, -2.0, 3.0),
    "sine": lambda be, g, x: be.sine_backward(g, x, 30.0),
    "dropout": lambda be, g, x: be.dropout_backward(g, (x > 0) * x.dtype.type(1 / 0.7)),
}


@DTYPES
@pytest.mark.parametrize("op", UNARY)
@pytest.mark.parametrize("name", BACKENDS)
def test_forward_bits_do_not_depend_on_place(name, op, dtype):
    be, f = registry.load(name), UNARY[op]
    x = _inputs(N, dtype)
    whole = f(be, x)
    for start, stop in _slices(N):
        _assert_same_bits(f(be, x[start:stop]), whole[start:stop])


@DTYPES
@pytest.mark.parametrize("op", BACKWARD)
@pytest.mark.parametrize("name", BACKENDS)
def test_backward_bits_do_not_depend_on_place(name, op, dtype):
    # failed before: numba's tanh-GELU slope (float32 and float64; under reassoc LLVM
    # multiplied v c2 by (1 + 3 k v^2) first in the 512-bit body, by s first in the
    # remainder), and the Cython backend's GELU, tanh-GELU, ELU (alpha != 1) and sine
    # slopes (gcc's vector loop and remainder grouped the products differently under
    # -fassociative-math; GELU's float64 v c -+ g fused in one only)
    be, f = registry.load(name), BACKWARD[op]
    x = _inputs(N, dtype)
    g = _inputs(N, dtype, seed=7)
    g[~np.isfinite(g)] = 1.5
    whole = f(be, g, x)
    for start, stop in _slices(N):
        _assert_same_bits(f(be, g[start:stop], x[start:stop]), whole[start:stop])


LOSSES = {
    "mse": lambda be, p, t: be.mse_loss(p, t),
    "bce": lambda be, p, t: be.bce_loss(p, t),
    "bce_with_logits": lambda be, p, t: be.bce_with_logits_loss(p, t),
    "smooth_l1": lambda be, p, t: be.smooth_l1_loss(p, t, 0.3),
}


@DTYPES
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("name", BACKENDS)
def test_loss_gradient_bits_do_not_depend_on_place(name, loss, dtype):
    # the gradient of a mean depends on n: the same values rolled through every place
    # near the end (the remainder) instead of one-value calls
    be, f = registry.load(name), LOSSES[loss]
    rng = np.random.default_rng(2)
    if loss.startswith("bce"):
        t = rng.uniform(0, 1, N).astype(dtype)
        p = rng.uniform(0, 1, N).astype(dtype) if loss == "bce" else _inputs(N, dtype)
    else:
        p = _inputs(N, dtype)
        t = (p * 0.7 + rng.standard_normal(N)).astype(dtype)
        t[np.isnan(t)] = 0
    whole = f(be, p, t)[1].copy()
    for k in range(1, 24):
        _assert_same_bits(np.roll(f(be, np.roll(p, k), np.roll(t, k))[1], -k), whole)


@DTYPES
@pytest.mark.parametrize("soft", [False, True], ids=["binary", "soft"])
@pytest.mark.parametrize("name", BACKENDS)
def test_bce_bits_do_not_depend_on_the_offset_from_a_cache_line(name, soft, dtype):
    """BCE's loss and gradient bits with pred, target and grad at every offset from a
    64-byte line, in place and out of place: the Cython backend's pieces start on
    grad's lines (kernels/cython/_losses.pyx, _tiled_block), so a value's piece, and the
    loop copy gcc runs it in, moves with the offset; the sum's tiles must not."""
    be = registry.load(name)
    rng = np.random.default_rng(3)
    n = 3000   # (20000: numba and Cython are parallel past 32768 and chunk alike)
    p = rng.uniform(0, 1, n).astype(dtype)
    p[:4] = [0, 1, 1e-7, 0.5]
    t = (rng.uniform(0, 1, n) if soft else rng.random(n) < 0.5).astype(dtype)
    per = 64 // p.itemsize
    buf = np.zeros(3 * n + 4 * per, dtype)
    line = (-buf.ctypes.data % 64) // p.itemsize
    want = None
    for off in range(per):
        a = buf[line + off:line + off + n]
        b = buf[line + n + per:line + 2 * n + per]
        for grad in ("apart", "pred", "target"):
            a[:] = p
            b[:] = t
            g = {"apart": buf[line + 2 * n + 2 * per + off:line + 3 * n + 2 * per + off],
                 "pred": a, "target": b}[grad]
            loss, out = be.bce_loss(a, b, grad=g)
            if want is None:
                want = (np.float64(loss), out.copy())
            assert np.float64(loss).tobytes() == want[0].tobytes(), (off, grad)
            _assert_same_bits(out, want[1])


UPDATES = {   # (number of state buffers, update in place)
    "sgd momentum": (1, lambda be, p, g, v: be.sgd_update(p, g, v, 0.1, 0.9, 0.01, True)),
    "adam amsgrad": (3, lambda be, p, g, m, v, mx: be.adam_update(
        p, g, m, v, 3, 1e-3, 0.9, 0.999, 1e-8, 0.01, mx)),
    "adamax": (2, lambda be, p, g, m, v: be.adamax_update(p, g, m, v, 3, 2e-3, 0.9, 0.999,
                                                          1e-8, 0.01)),
    "rmsprop centered": (3, lambda be, p, g, s, b, ga: be.rmsprop_update(
        p, g, s, 1e-2, 0.99, 1e-8, 0.01, 0.9, b, ga)),
    "adagrad": (1, lambda be, p, g, s: be.adagrad_update(p, g, s, 1e-2, 0.01, 1e-10)),
    "adadelta": (2, lambda be, p, g, s, a: be.adadelta_update(p, g, s, a, 1.0, 0.9, 1e-6,
                                                              0.01, False)),
    "asgd": (1, lambda be, p, g, ax: be.asgd_update(p, g, ax, 0.01, 0.5, 1e-4, 0.01, False)),
}


@DTYPES
@pytest.mark.parametrize("update", UPDATES)
@pytest.mark.parametrize("name", BACKENDS)
def test_update_bits_do_not_depend_on_place(name, update, dtype):
    be, (states, f) = registry.load(name), UPDATES[update]
    n = 203
    rng = np.random.default_rng(3)
    param = _inputs(n, dtype)
    param[~np.isfinite(param)] = 0.5
    grad = _inputs(n, dtype, seed=7)
    grad[~np.isfinite(grad)] = 1.5
    state = [np.abs(rng.standard_normal(n)).astype(dtype) for _ in range(states)]
    whole = [param.copy()] + [s.copy() for s in state]
    f(be, whole[0], grad, *whole[1:])
    for start, stop in _slices(n):
        part = [a[start:stop].copy() for a in [param] + state]
        f(be, part[0], grad[start:stop].copy(), *part[1:])
        for a, b in zip(part, whole):
            _assert_same_bits(a, b[start:stop])
