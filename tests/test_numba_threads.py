"""The numba backend's kernels give bitwise-identical results with 1 and 2 threads.

Every reduction (bias gradient, BatchNorm sums, losses) is split by column, channel or
fixed-size chunk, never by thread, so the thread count cannot change the summation
order. Sizes are above config.PARALLEL_MIN so the parallel kernels run. The matrix
products go to OpenBLAS, which splits its work by thread count: those outputs agree
to rounding, not bitwise.
"""
import numpy as np
import pytest

import fastnn
from fastnn import backend as registry
from fastnn.threads import get_num_threads

pytest.importorskip("numba")
import numba  # noqa: E402

pytestmark = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                                reason="needs at least 2 Numba threads")


@pytest.fixture(scope="module")
def nb():
    return registry.load("numba")


def _with_threads(n, fn):
    before = get_num_threads()
    fastnn.set_num_threads(n)
    try:
        assert numba.get_num_threads() == n
        return fn()
    finally:
        fastnn.set_num_threads(before)


def _inputs(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((300, 257)).astype(dtype),
        "w": (rng.standard_normal((190, 257)) * 0.1).astype(dtype),
        "b": rng.standard_normal(190).astype(dtype),
        "g": rng.standard_normal((300, 190)).astype(dtype),
        "labels": rng.integers(0, 190, 300),
        "img": rng.standard_normal((8, 6, 20, 20)).astype(dtype),
        "gimg": rng.standard_normal((8, 6, 20, 20)).astype(dtype),
    }


def _run_all(nb, d):
    """Every non-conv op on inputs big enough for the parallel path; all outputs."""
    out = {}
    x = d["x"]
    blas = {}  # outputs of BLAS products: OpenBLAS splits work by thread count
    for act in ("relu", "leaky_relu", "sigmoid", "tanh"):
        y = nb.linear_forward(x, d["w"], d["b"], act)
        y_fixed = d["y " + act]  # the same forward output in both runs
        gw, gb = np.zeros_like(d["w"]), np.zeros_like(d["b"])
        gi = nb.linear_backward(d["g"], x, d["w"], y_fixed, act, grad_weight=gw, grad_bias=gb)
        out[f"linear {act} grad_bias"] = gb
        blas[f"linear {act}"] = (y, gw, gi)
    for name in ("relu", "sigmoid", "tanh", "gelu", "sine", "leaky_relu", "silu", "elu",
                 "softplus", "hardtanh", "softsign", "gelu_tanh", "mish",
                 "hardsigmoid", "hardswish"):
        out[name] = getattr(nb, name)(x)
        backward_arg = x if name in ("gelu", "sine", "leaky_relu", "silu", "elu", "softplus",
                                     "hardtanh", "softsign", "gelu_tanh", "mish", "hardsigmoid",
                                     "hardswish") else out[name]
        out[name + "_backward"] = getattr(nb, name + "_backward")(x, backward_arg)
    out["softmax"] = nb.softmax(x)
    out["softmax_backward"] = nb.softmax_backward(x, out["softmax"])
    out["log_softmax"] = nb.log_softmax(x)
    out["log_softmax_backward"] = nb.log_softmax_backward(x, out["log_softmax"])
    out["ce labels"] = nb.softmax_cross_entropy(d["g"], d["labels"])
    probs = nb.softmax(d["g"])
    out["ce probs"] = nb.softmax_cross_entropy(d["g"], probs)
    out["mse"] = nb.mse_loss(x, x[::-1].copy())
    out["bce"] = nb.bce_loss(nb.sigmoid(x), nb.sigmoid(x[::-1].copy()))
    out["bce logits"] = nb.bce_with_logits_loss(x, nb.sigmoid(x[::-1].copy()))
    out["smooth l1"] = nb.smooth_l1_loss(x, x[::-1].copy(), 0.5)
    out["l1"] = nb.smooth_l1_loss(x, x[::-1].copy(), 0.0)
    out["dropout"] = nb.dropout_forward(x, 0.3, 7)
    narrow = np.ascontiguousarray(np.concatenate([x[:, :20]] * 8))  # (2400, 20): row chunks
    for data, grad in ((x, np.ascontiguousarray(x[::-1])), (d["img"], d["gimg"]),
                       (narrow, np.ascontiguousarray(narrow[::-1]))):
        c = data.shape[1]
        for mean_only in (False, True):
            w = None if mean_only else np.linspace(0.5, 2, c).astype(data.dtype)
            rm = np.zeros(c, data.dtype)
            rv = None if mean_only else np.ones(c, data.dtype)
            y, sm, si = nb.batchnorm_forward(data, w, np.zeros(c, data.dtype), rm, rv,
                                             mean_only=mean_only)
            gw = None if mean_only else np.zeros(c, data.dtype)
            gb = np.zeros(c, data.dtype)
            gi = nb.batchnorm_backward(grad, data, w, sm, si, mean_only=mean_only,
                                       grad_weight=gw, grad_bias=gb)
            out[f"batchnorm {data.shape} mean_only={mean_only}"] = (y, sm, si, rm, rv, gw, gb, gi)
    for data, grad in ((x, np.ascontiguousarray(x[::-1])),
                       (narrow, np.ascontiguousarray(narrow[::-1]))):
        d_ = data.shape[1]
        w = np.linspace(0.5, 2, d_).astype(data.dtype)
        y, sm, si = nb.layer_norm_forward(data, w, np.zeros(d_, data.dtype))
        gw, gb = np.zeros(d_, data.dtype), np.zeros(d_, data.dtype)
        gi = nb.layer_norm_backward(grad, data, w, sm, si, gw, gb)
        out[f"layer_norm {data.shape}"] = (y, sm, si, gw, gb, gi)
    p, g = x.copy(), d["x"][::-1].copy()
    v = np.zeros_like(p)
    nb.sgd_update(p, g, v, 0.1, 0.9, 1e-4, True)
    m1, m2 = np.zeros_like(p), np.zeros_like(p)
    p2 = x.copy()
    nb.adam_update(p2, g, m1, m2, 3, weight_decay=0.01)
    p4, m3, m4, m5 = x.copy(), np.zeros_like(x), np.zeros_like(x), np.ones_like(x)
    nb.adam_update(p4, g, m3, m4, 3, weight_decay=0.01, max_exp_avg_sq=m5)
    out["amsgrad"] = (p4, m3, m4, m5)
    out["sgd"], out["adam"] = (p, v), (p2, m1, m2)
    p3, s3, b3, a3 = x.copy(), np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    nb.rmsprop_update(p3, g, s3, 0.01, 0.9, 1e-8, 0.01, 0.5, b3, a3)
    out["rmsprop"] = (p3, s3, b3, a3)
    p4, s4 = x.copy(), np.full_like(x, 0.1)
    nb.adagrad_update(p4, g, s4, 0.01, 0.01, 1e-8)
    out["adagrad"] = (p4, s4)
    p5, m6, u6 = x.copy(), np.zeros_like(x), np.zeros_like(x)
    nb.adamax_update(p5, g, m6, u6, 3, 0.01, weight_decay=0.01)
    out["adamax"] = (p5, m6, u6)
    p6, m7, v7 = x.copy(), np.zeros_like(x), np.zeros_like(x)
    nb.adaptive_moments_update(p6, g, m7, v7, 0.01, 0.002, sq_scale=1.5, weight_decay=0.01)
    out["adaptive_moments"] = (p6, m7, v7)
    p7, s8, a8 = x.copy(), np.zeros_like(x), np.full_like(x, 0.01)
    nb.adadelta_update(p7, g, s8, a8, 0.5, 0.8, weight_decay=0.01, maximize=True)
    out["adadelta"] = (p7, s8, a8)
    p8, prev, size = x.copy(), np.ascontiguousarray(x[::-1]), np.full_like(x, 0.01)
    nb.rprop_update(p8, g, prev, size, 0.3, 1.6, 0.004, 0.05)
    out["rprop"] = (p8, prev, size)
    for mu in (1.0, 0.25):
        p9, ax = x.copy(), np.ascontiguousarray(x[::-1])
        nb.asgd_update(p9, g, ax, 0.05, mu, 1e-2, 0.01)
        out[f"asgd mu={mu}"] = (p9, ax)
    return out, blas


def _flatten(value):
    if isinstance(value, tuple):
        return [a for v in value for a in _flatten(v)]
    return [value]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_one_and_two_threads_bitwise_equal(nb, dtype):
    d = _inputs(dtype)
    for act in ("relu", "leaky_relu", "sigmoid", "tanh"):
        d["y " + act] = nb.linear_forward(d["x"], d["w"], d["b"], act)
    one, blas_one = _with_threads(1, lambda: _run_all(nb, d))
    two, blas_two = _with_threads(2, lambda: _run_all(nb, d))
    # OpenBLAS may split a product's sums between threads (on AMD Zen it does): float32
    # partial sums of 300 products then round differently, a few 1e-5 near zero outputs
    rtol, atol = (1e-5, 1e-4) if dtype == np.float32 else (1e-12, 1e-12)
    for name in blas_one:
        for a, b in zip(blas_one[name], blas_two[name]):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=name)
    assert one.keys() == two.keys()
    for name in one:
        for a, b in zip(_flatten(one[name]), _flatten(two[name])):
            if a is None:
                assert b is None, name
            elif isinstance(a, float):
                assert a == b, name
            else:
                np.testing.assert_array_equal(a, b, err_msg=name)


def test_set_num_threads_reaches_numba_in_another_python_thread(nb):
    """Numba's thread count is per calling thread; the backend applies fastnn's
    setting in whichever thread runs a parallel kernel."""
    import threading
    seen = []
    x = np.ones(1 << 16, np.float32)

    def work():
        nb.relu(x)
        seen.append(numba.get_num_threads())
    _with_threads(1, lambda: (lambda t: (t.start(), t.join()))(threading.Thread(target=work)))
    assert seen == [1]
