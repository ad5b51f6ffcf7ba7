"""Property-based tests: every op on every backend against the NumPy reference, on random
shapes (batch 1 and empty batches included where PyTorch accepts them), non-contiguous and
transposed inputs, float32 and float64, random strides and paddings for conv and pooling."""
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import fastnn
from fastnn import ops

from conftest import BACKENDS, assert_close

COMPILED = [b for b in BACKENDS if b != "numpy"] or ["numpy"]
SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])
dtypes = st.sampled_from([np.float32, np.float64])
layouts = st.sampled_from(["contiguous", "transposed", "strided"])


def make(rng, shape, dtype, layout="contiguous", scale=1.0):
    """A random array of `shape` laid out contiguously, as a transpose, or with a stride."""
    if layout == "transposed" and len(shape) >= 2:
        return np.swapaxes((rng.standard_normal(shape[::-1]) * scale).astype(dtype), 0, -1) \
            if len(shape) == 2 else make(rng, shape, dtype)
    if layout == "strided":
        base = (rng.standard_normal(shape[:-1] + (2 * shape[-1],)) * scale).astype(dtype)
        return base[..., ::2]
    return (rng.standard_normal(shape) * scale).astype(dtype)


def both(op, *args, **kwargs):
    """(result on the current backend, result on the reference) for fresh copies of args."""
    copy = lambda v: np.array(v, copy=True) if isinstance(v, np.ndarray) else v  # noqa: E731
    mine = getattr(ops, op)(*[copy(a) for a in args], **{k: copy(v) for k, v in kwargs.items()})
    with fastnn.use_backend("numpy"):
        ref = getattr(ops, op)(*[copy(a) for a in args], **{k: copy(v) for k, v in kwargs.items()})
    return mine, ref


@pytest.fixture(params=COMPILED)
def compiled(request):
    with fastnn.use_backend(request.param):
        yield request.param


ELEMENTWISE = [("relu", {}, "y"), ("leaky_relu", {"negative_slope": 0.05}, "x"),
               ("sigmoid", {}, "y"), ("tanh", {}, "y"), ("gelu", {}, "x"),
               ("sine", {"omega": 3.0}, "x"), ("silu", {}, "x"),
               ("elu", {"alpha": 0.5}, "x"), ("softplus", {"beta": 2.0}, "x"),
               ("hardtanh", {"min_val": -0.5, "max_val": 2.0}, "x"), ("softsign", {}, "x"),
               ("gelu_tanh", {}, "x"), ("mish", {}, "x"),
               ("hardsigmoid", {}, "x"), ("hardswish", {}, "x")]


@SETTINGS
@given(seed=st.integers(0, 2**16), dtype=dtypes, layout=layouts,
       shape=st.lists(st.integers(0, 9), min_size=1, max_size=4).map(tuple),
       which=st.integers(0, len(ELEMENTWISE) - 1))
def test_elementwise_ops(compiled, seed, dtype, layout, shape, which):
    name, params, saved = ELEMENTWISE[which]
    rng = np.random.default_rng(seed)
    x = make(rng, shape, dtype, layout, scale=4.0)
    g = make(rng, shape, dtype)
    y, y_ref = both(name, x, **params)
    assert_close(y, y_ref, dtype)
    s = x if saved == "x" else y_ref
    gi, gi_ref = both(name + "_backward", g, s, **params)
    assert_close(gi, gi_ref, dtype, scale=3.0)


@SETTINGS
@given(seed=st.integers(0, 2**16), dtype=dtypes, layout=layouts, n=st.integers(0, 40),
       fin=st.integers(1, 30), fout=st.integers(1, 30),
       act=st.sampled_from(["identity", "relu", "leaky_relu", "sigmoid", "tanh"]),
       bias=st.booleans())
def test_linear(compiled, seed, dtype, layout, n, fin, fout, act, bias):
    rng = np.random.default_rng(seed)
    x = make(rng, (n, fin), dtype, layout)
    w = make(rng, (fout, fin), dtype, layout)
    b = make(rng, (fout,), dtype) if bias else None
    y, y_ref = both("linear_forward", x, w, b, act, 0.1)
    assert_close(y, y_ref, dtype, scale=fin)
    g = make(rng, (n, fout), dtype)
    gw, gb = np.zeros((fout, fin), dtype), (np.zeros(fout, dtype) if bias else None)
    gw_ref, gb_ref = gw.copy(), (gb.copy() if bias else None)
    gi = ops.linear_backward(g, x, w, y_ref, act, 0.1, gw, gb)
    with fastnn.use_backend("numpy"):
        gi_ref = ops.linear_backward(g, x, w, y_ref, act, 0.1, gw_ref, gb_ref)
    assert_close(gi, gi_ref, dtype, scale=fout)
    assert_close(gw, gw_ref, dtype, scale=max(n, 1))
    if bias:
        assert_close(gb, gb_ref, dtype, scale=max(n, 1))


@SETTINGS
@given(seed=st.integers(0, 2**16), dtype=dtypes, n=st.integers(1, 50), c=st.integers(1, 40),
       scale=st.sampled_from([1.0, 30.0, 1e4]), probs=st.booleans())
def test_softmax_and_cross_entropy(compiled, seed, dtype, n, c, scale, probs):
    rng = np.random.default_rng(seed)
    logits = make(rng, (n, c), dtype, scale=scale)
    y, y_ref = both("softmax", logits)
    assert_close(y, y_ref, dtype)
    log_y, log_y_ref = both("log_softmax", logits)
    assert_close(log_y, log_y_ref, dtype, scale=scale)
    if probs:
        target = rng.random((n, c)).astype(dtype)
        target /= target.sum(axis=1, keepdims=True)
    else:
        target = rng.integers(0, c, n)
    (loss, grad), (loss_ref, grad_ref) = both("softmax_cross_entropy", logits, target)
    assert np.isfinite(loss)
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-4 if dtype == np.float32 else 1e-9,
                               atol=1e-4 if dtype == np.float32 else 1e-9)
    assert_close(grad, grad_ref, dtype)


@SETTINGS
@given(seed=st.integers(0, 2**16), dtype=dtypes, layout=layouts,
       shape=st.lists(st.integers(1, 12), min_size=1, max_size=3).map(tuple))
def test_mse_and_bce(compiled, seed, dtype, layout, shape):
    rng = np.random.default_rng(seed)
    pred, target = make(rng, shape, dtype, layout), make(rng, shape, dtype)
    (loss, grad), (loss_ref, grad_ref) = both("mse_loss", pred, target)
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-5)
    assert_close(grad, grad_ref, dtype)
    p = rng.random(shape).astype(dtype)
    t = (rng.random(shape) > 0.5).astype(dtype)
    (loss, grad), (loss_ref, grad_ref) = both("bce_loss", p, t)
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-5)
    np.testing.assert_allclose(grad, grad_ref, rtol=1e-4, atol=1e-5)
    (loss, grad), (loss_ref, grad_ref) = both("bce_with_logits_loss", pred * 8, p)
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-5)
    assert_close(grad, grad_ref, dtype)
    for beta in (0.0, 0.7):
        (loss, grad), (loss_ref, grad_ref) = both("smooth_l1_loss", pred, target, beta)
        np.testing.assert_allclose(loss, loss_ref, rtol=1e-5)
        assert_close(grad, grad_ref, dtype)


@SETTINGS
@given(seed=st.integers(0, 2**16), dtype=dtypes, n=st.integers(2, 40), c=st.integers(1, 20),
       spatial=st.sampled_from([(), (1, 1), (3, 5)]), training=st.booleans(),
       mean_only=st.booleans())
def test_batchnorm(compiled, seed, dtype, n, c, spatial, training, mean_only):
    rng = np.random.default_rng(seed)
    shape = (n, c) + spatial
    x = make(rng, shape, dtype, scale=3.0) + 1
    w = None if mean_only else make(rng, (c,), dtype)
    b = make(rng, (c,), dtype)
    rm = make(rng, (c,), dtype)
    rv = None if mean_only else rng.random(c).astype(dtype) + 0.5
    rm_ref, rv_ref = rm.copy(), (None if mean_only else rv.copy())
    y, mean, invstd = ops.batchnorm_forward(x, w, b, rm, rv, training, 0.1, 1e-5, mean_only)
    with fastnn.use_backend("numpy"):
        y_ref, mean_ref, invstd_ref = ops.batchnorm_forward(x, w, b, rm_ref, rv_ref, training,
                                                            0.1, 1e-5, mean_only)
    assert_close(y, y_ref, dtype, scale=10)
    assert_close(rm, rm_ref, dtype)
    if not mean_only:
        assert_close(rv, rv_ref, dtype, scale=10)
    g = make(rng, shape, dtype)
    gb, gb_ref = np.zeros(c, dtype), np.zeros(c, dtype)
    gw = None if mean_only else np.zeros(c, dtype)
    gw_ref = None if mean_only else np.zeros(c, dtype)
    gi = ops.batchnorm_backward(g, x, w, mean, invstd, training, mean_only, gw, gb)
    with fastnn.use_backend("numpy"):
        gi_ref = ops.batchnorm_backward(g, x, w, mean_ref, invstd_ref, training, mean_only,
                                        gw_ref, gb_ref)
    assert_close(gi, gi_ref, dtype, scale=10)
    assert_close(gb, gb_ref, dtype, scale=x.size / c)
    if not mean_only:
        assert_close(gw, gw_ref, dtype, scale=x.size / c)


@SETTINGS
@given(seed=st.integers(0, 2**16), dtype=dtypes, n=st.integers(1, 3), cin=st.integers(1, 4),
       cout=st.integers(1, 5), h=st.integers(1, 9), w=st.integers(1, 9),
       k=st.sampled_from([(1, 1), (3, 3), (2, 3), (5, 5)]), stride=st.integers(1, 3),
       padding=st.integers(0, 2), layout=layouts)
def test_conv2d(compiled, seed, dtype, n, cin, cout, h, w, k, stride, padding, layout):
    if k[0] > h + 2 * padding or k[1] > w + 2 * padding:
        with pytest.raises(ValueError, match="larger than the padded input"):
            ops.conv2d_forward(np.zeros((n, cin, h, w), dtype),
                               np.zeros((cout, cin) + k, dtype), None, stride, padding)
        return
    rng = np.random.default_rng(seed)
    x = make(rng, (n, cin, h, w), dtype, layout)
    wt = make(rng, (cout, cin) + k, dtype)
    b = make(rng, (cout,), dtype)
    y, y_ref = both("conv2d_forward", x, wt, b, (stride, stride), (padding, padding))
    assert_close(y, y_ref, dtype, scale=cin * k[0] * k[1])
    g = make(rng, y_ref.shape, dtype)
    gw, gb = np.zeros_like(wt), np.zeros_like(b)
    gw_ref, gb_ref = gw.copy(), gb.copy()
    gi = ops.conv2d_backward(g, x, wt, (stride, stride), (padding, padding), gw, gb)
    with fastnn.use_backend("numpy"):
        gi_ref = ops.conv2d_backward(g, x, wt, (stride, stride), (padding, padding), gw_ref,
                                     gb_ref)
    assert_close(gi, gi_ref, dtype, scale=cout * k[0] * k[1])
    assert_close(gw, gw_ref, dtype, scale=g.size)
    assert_close(gb, gb_ref, dtype, scale=g.size)


@SETTINGS
@given(seed=st.integers(0, 2**16), dtype=dtypes, n=st.integers(1, 3), c=st.integers(1, 4),
       h=st.integers(1, 10), w=st.integers(1, 10), k=st.integers(1, 4),
       stride=st.integers(1, 3), padding=st.integers(0, 2), include_pad=st.booleans(),
       ceil=st.booleans(), divisor=st.sampled_from([None, None, 1, 5]),
       dilation=st.sampled_from([1, 1, 2, 3]))
# dilation 2 gives a 1x1 max-pooling output where the undilated average pooling's is 2x2
@example(seed=0, dtype=np.float32, n=1, c=1, h=1, w=1, k=2, stride=1, padding=1,
         include_pad=False, ceil=False, divisor=None, dilation=2)
def test_pooling(compiled, seed, dtype, n, c, h, w, k, stride, padding, include_pad, ceil,
                 divisor, dilation):
    if padding > k // 2 or k > h + 2 * padding or k > w + 2 * padding:
        return  # PyTorch rejects these too; tested in test_conformance / test_conv*
    rng = np.random.default_rng(seed)
    x = make(rng, (n, c, h, w), dtype)
    window = ((k, k), (stride, stride), (padding, padding))
    if dilation * (k - 1) + 1 > min(h, w) + 2 * padding:
        dilation = 1
    (y, idx), (y_ref, idx_ref) = both("max_pool2d_forward", x, *window, ceil_mode=ceil,
                                      dilation=(dilation, dilation))
    assert_close(y, y_ref, dtype)
    g = make(rng, y_ref.shape, dtype)
    gi, gi_ref = both("max_pool2d_backward", g, idx_ref, x.shape)
    assert_close(gi, gi_ref, dtype)
    a, a_ref = both("avg_pool2d_forward", x, *window, include_pad, ceil_mode=ceil,
                    divisor_override=divisor)
    assert_close(a, a_ref, dtype)
    # avg pooling has no dilation: its output (and so its grad_out) can differ in shape
    # from the dilated max pooling's
    g = make(rng, a_ref.shape, dtype)
    ga, ga_ref = both("avg_pool2d_backward", g, x.shape, *window, include_pad, ceil_mode=ceil,
                      divisor_override=divisor)
    assert_close(ga, ga_ref, dtype)


@SETTINGS
@given(seed=st.integers(0, 2**16), dtype=dtypes, size=st.integers(1, 3000),
       momentum=st.sampled_from([0.0, 0.5, 0.9]), wd=st.sampled_from([0.0, 1e-3]),
       nesterov=st.booleans(), step=st.integers(1, 50))
def test_optimizer_updates(compiled, seed, dtype, size, momentum, wd, nesterov, step):
    nesterov = nesterov and momentum > 0
    rng = np.random.default_rng(seed)
    p, g = make(rng, (size,), dtype), make(rng, (size,), dtype)
    v = make(rng, (size,), dtype) if momentum else None
    p_ref, v_ref = p.copy(), (v.copy() if momentum else None)
    ops.sgd_update(p, g, v, 0.05, momentum, wd, nesterov)
    with fastnn.use_backend("numpy"):
        ops.sgd_update(p_ref, g, v_ref, 0.05, momentum, wd, nesterov)
    assert_close(p, p_ref, dtype)
    m, s = make(rng, (size,), dtype), np.abs(make(rng, (size,), dtype))
    p2, m2, s2 = p.copy(), m.copy(), s.copy()
    ops.adam_update(p, g, m, s, step, 1e-3, 0.9, 0.999, 1e-8, wd)
    with fastnn.use_backend("numpy"):
        ops.adam_update(p2, g, m2, s2, step, 1e-3, 0.9, 0.999, 1e-8, wd)
    assert_close(p, p2, dtype)
    assert_close(m, m2, dtype)
    assert_close(s, s2, dtype)


@SETTINGS
@given(seed=st.integers(0, 2**16), dtype=dtypes, layout=layouts, n=st.integers(0, 30),
       c=st.integers(1, 40), scale=st.sampled_from([1.0, 30.0]))
def test_softmax_backwards(compiled, seed, dtype, layout, n, c, scale):
    rng = np.random.default_rng(seed)
    logits = make(rng, (n, c), dtype, scale=scale)
    g = make(rng, (n, c), dtype, layout)
    with fastnn.use_backend("numpy"):
        y = ops.softmax(logits)
        log_y = ops.log_softmax(logits)
    gi, gi_ref = both("softmax_backward", g, y)
    assert_close(gi, gi_ref, dtype)
    gi, gi_ref = both("log_softmax_backward", g, log_y)
    assert_close(gi, gi_ref, dtype, scale=c)


@SETTINGS
@given(seed=st.integers(0, 2**16), dtype=dtypes, layout=layouts,
       shape=st.lists(st.integers(0, 60), min_size=1, max_size=3).map(tuple),
       p=st.sampled_from([0.0, 0.1, 0.5, 0.9]), mask_seed=st.integers(0, 2**31 - 1))
def test_dropout(compiled, seed, dtype, layout, shape, p, mask_seed):
    """Each backend draws its own mask (masks differ between backends), so the properties:
    values 0 or 1/(1-p) in x's dtype, y = x * mask, the same mask for the same seed, about
    1 - p of the values kept, and the backward is grad_out * mask as the reference's."""
    rng = np.random.default_rng(seed)
    x = make(rng, shape, dtype, layout)
    y, mask = ops.dropout_forward(x, p, mask_seed)
    assert y.shape == x.shape and mask.shape == x.shape
    assert y.dtype == dtype and mask.dtype == dtype
    keep = dtype(1.0 / (1.0 - p))   # as PyTorch: the scale in double, then the dtype
    assert np.all((mask == 0) | (mask == keep))
    np.testing.assert_array_equal(y, x * mask)
    y2, mask2 = ops.dropout_forward(x, p, mask_seed)
    np.testing.assert_array_equal(mask2, mask)
    np.testing.assert_array_equal(y2, y)
    if mask.size >= 2000:
        kept = np.count_nonzero(mask) / mask.size
        assert abs(kept - (1 - p)) < 5 * np.sqrt(p * (1 - p) / mask.size) + 1e-12
    g = make(rng, shape, dtype, layout)
    gi, gi_ref = both("dropout_backward", g, mask)
    np.testing.assert_array_equal(gi, gi_ref)


@SETTINGS
@given(seed=st.integers(0, 2**16), dtype=dtypes, layout=layouts, n=st.integers(0, 20),
       d=st.integers(1, 40), affine=st.booleans(), scale=st.sampled_from([1.0, 100.0]))
def test_layer_norm(compiled, seed, dtype, layout, n, d, affine, scale):
    rng = np.random.default_rng(seed)
    x = make(rng, (n, d), dtype, layout, scale=scale) + 3
    w = make(rng, (d,), dtype) if affine else None
    b = make(rng, (d,), dtype) if affine else None
    (y, mean, invstd), (y_ref, mean_ref, invstd_ref) = both("layer_norm_forward", x, w, b)
    assert_close(y, y_ref, dtype, scale=10)
    assert_close(mean, mean_ref, dtype, scale=scale)
    np.testing.assert_allclose(invstd, invstd_ref, rtol=1e-4 if dtype == np.float32 else 1e-9)
    g = make(rng, (n, d), dtype, layout)
    gw = make(rng, (d,), dtype) if affine else None   # accumulated into
    gb = make(rng, (d,), dtype) if affine else None
    gw_ref = None if gw is None else gw.copy()
    gb_ref = None if gb is None else gb.copy()
    gi = ops.layer_norm_backward(g, x, w, mean_ref, invstd_ref, gw, gb)
    with fastnn.use_backend("numpy"):
        gi_ref = ops.layer_norm_backward(g, x, w, mean_ref, invstd_ref, gw_ref, gb_ref)
    assert_close(gi, gi_ref, dtype, scale=10)
    if affine:
        assert_close(gw, gw_ref, dtype, scale=max(n, 1) * 10)
        assert_close(gb, gb_ref, dtype, scale=max(n, 1))


@SETTINGS
@given(seed=st.integers(0, 2**16), dtype=dtypes, n=st.integers(1, 3), cin=st.integers(1, 4),
       mult=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
       k=st.sampled_from([(1, 1), (3, 3), (2, 3), (5, 5)]), stride=st.integers(1, 3),
       padding=st.integers(0, 2), layout=layouts, bias=st.booleans())
def test_depthwise_conv2d(compiled, seed, dtype, n, cin, mult, h, w, k, stride, padding,
                          layout, bias):
    cout = cin * mult
    window = ((stride, stride), (padding, padding))
    if k[0] > h + 2 * padding or k[1] > w + 2 * padding:
        with pytest.raises(ValueError, match="larger than the padded input"):
            ops.depthwise_conv2d_forward(np.zeros((n, cin, h, w), dtype),
                                         np.zeros((cout, 1) + k, dtype), None, *window)
        return
    rng = np.random.default_rng(seed)
    x = make(rng, (n, cin, h, w), dtype, layout)
    wt = make(rng, (cout, 1) + k, dtype)
    b = make(rng, (cout,), dtype) if bias else None
    y, y_ref = both("depthwise_conv2d_forward", x, wt, b, *window)
    assert_close(y, y_ref, dtype, scale=k[0] * k[1])
    g = make(rng, y_ref.shape, dtype)
    gw, gb = make(rng, wt.shape, dtype), (make(rng, (cout,), dtype) if bias else None)
    gw_ref, gb_ref = gw.copy(), (None if gb is None else gb.copy())
    gi = ops.depthwise_conv2d_backward(g, x, wt, *window, gw, gb)
    with fastnn.use_backend("numpy"):
        gi_ref = ops.depthwise_conv2d_backward(g, x, wt, *window, gw_ref, gb_ref)
    assert_close(gi, gi_ref, dtype, scale=mult * k[0] * k[1])
    assert_close(gw, gw_ref, dtype, scale=g.size)
    if bias:
        assert_close(gb, gb_ref, dtype, scale=g.size)


def _both_in_place(op, arrays, *args, **kwargs):
    """Runs an in-place update op on copies of `arrays` on the current backend and on the
    reference; returns (the current backend's arrays, the reference's)."""
    mine = [None if a is None else a.copy() for a in arrays]
    ref = [None if a is None else a.copy() for a in arrays]
    getattr(ops, op)(*mine, *args, **kwargs)
    with fastnn.use_backend("numpy"):
        getattr(ops, op)(*ref, *args, **kwargs)
    return mine, ref


@SETTINGS
@given(seed=st.integers(0, 2**16), dtype=dtypes, size=st.integers(1, 5000),
       wd=st.sampled_from([0.0, 1e-2]), flag=st.booleans(), step=st.integers(1, 50),
       momentum=st.sampled_from([0.0, 0.9]))
def test_more_optimizer_updates(compiled, seed, dtype, size, wd, flag, step, momentum):
    """The optimizer updates beyond SGD and Adam, every state array against the
    reference's (flag: RMSprop centered, Adadelta/Rprop/ASGD maximize)."""
    rng = np.random.default_rng(seed)
    p, g = make(rng, (size,), dtype), make(rng, (size,), dtype)
    positive = lambda: np.abs(make(rng, (size,), dtype)) + dtype(0.1)  # noqa: E731
    cases = [
        ("rmsprop_update", [p, g, positive(), make(rng, (size,), dtype) if momentum else None,
                            make(rng, (size,), dtype) * dtype(0.1) if flag else None],
         dict(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=wd, momentum=momentum)),
        ("adagrad_update", [p, g, positive()], dict(lr=0.05, weight_decay=wd, eps=1e-10)),
        ("adamax_update", [p, g, make(rng, (size,), dtype), positive()],
         dict(step=step, lr=0.002, weight_decay=wd)),
        ("adaptive_moments_update", [p, g, make(rng, (size,), dtype), positive()],
         dict(avg_rate=1e-3, grad_rate=2e-4 if flag else 0.0, sq_scale=1.5, weight_decay=wd)),
        ("adadelta_update", [p, g, positive(), positive()],
         dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=wd, maximize=flag)),
        ("rprop_update", [p, g, make(rng, (size,), dtype), positive() * dtype(0.01)],
         dict(maximize=flag)),
        ("asgd_update", [p, g, make(rng, (size,), dtype)],
         dict(eta=0.01, mu=1.0 if step == 1 else 1.0 / step, lambd=1e-4, weight_decay=wd,
              maximize=flag)),
    ]
    for op, arrays, kwargs in cases:
        if op == "rmsprop_update":   # momentum_buffer and grad_avg are keyword arguments
            arrays, extra = arrays[:3], dict(momentum_buffer=arrays[3], grad_avg=arrays[4])
            kwargs = dict(kwargs, **{k: v.copy() for k, v in extra.items() if v is not None})
            ref_kwargs = dict(kwargs, **{k: v.copy() for k, v in extra.items()
                                         if v is not None})
            mine, ref = [a.copy() for a in arrays], [a.copy() for a in arrays]
            ops.rmsprop_update(*mine, **kwargs)
            with fastnn.use_backend("numpy"):
                ops.rmsprop_update(*ref, **ref_kwargs)
            mine += [kwargs[k] for k in ("momentum_buffer", "grad_avg") if k in kwargs]
            ref += [ref_kwargs[k] for k in ("momentum_buffer", "grad_avg") if k in kwargs]
        elif op == "adamax_update":
            mine, ref = _both_in_place(op, arrays, kwargs.pop("step"), **kwargs)
        else:
            mine, ref = _both_in_place(op, arrays, **kwargs)
        for i, (a, a_ref) in enumerate(zip(mine, ref)):
            assert_close(a, a_ref, dtype, err_msg=f"{op}: array {i}")


def test_every_op_of_the_table_has_a_property_test():
    """Each op of fastnn.optable is called in this file (an activation's backward through
    ELEMENTWISE's name + '_backward')."""
    import inspect
    import re
    import sys
    from fastnn import optable
    source = inspect.getsource(sys.modules[__name__])
    elementwise = {name for name, _, _ in ELEMENTWISE}
    missing = [op for ops_ in optable.OP_FAMILIES.values() for op in ops_
               if not re.search(rf"\b{op}\b", source)
               and not (op.endswith("_backward") and op[:-len("_backward")] in elementwise)]
    assert missing == []
