"""One conformance suite for every backend: each op against the NumPy reference and PyTorch,
in float32 and float64. A new backend joins by registering in fastnn.backend.

Conv/pooling ops are covered the same way in tests/test_conv_ops.py.
"""
import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastnn
from fastnn import backend as registry
from fastnn import ops, optable, optim

from conftest import BACKENDS, assert_close, torch_loss
from torch_activations import ACT_TORCH, ACTIVATIONS

torch.set_num_threads(2)


def t(a, grad=False):
    tensor = torch.from_numpy(np.array(a, copy=True))
    return tensor.requires_grad_(grad) if grad else tensor


def run_reference(op, *args, **kwargs):
    """The op on the reference backend, with array arguments copied (ops write in place)."""
    args = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
    kwargs = {k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v
              for k, v in kwargs.items()}
    with fastnn.use_backend("numpy"):
        return getattr(ops, op)(*args, **kwargs), args, kwargs


# ------------------------------------------------------------------ the op table
@pytest.mark.parametrize("name", BACKENDS)
def test_backend_implements_table_with_same_signatures(name):
    b = registry.load(name)
    for op in optable.op_names():
        spec = optable.op_signature(op)
        got = inspect.signature(b.ops[op])
        assert list(got.parameters) == list(spec.parameters), f"{name}.{op} parameters"
        for p in spec.parameters.values():
            assert got.parameters[p.name].default == p.default, f"{name}.{op}({p.name}=) default"


@pytest.mark.parametrize("name", BACKENDS)
def test_backend_reuse_is_declared_and_reported(name):
    b = registry.load(name)
    info = fastnn.backend_info(name)
    assert info["reuses"] == b.reuses
    for op, other in b.reuses.items():
        assert op in optable.op_names()
        assert registry._ALIASES.get(other, other) in registry._BACKEND_MODULES
    if name != "numpy":
        # A compiled backend must compile the hot ops itself.
        hot = optable.OP_FAMILIES["dense"] + optable.OP_FAMILIES["loss"] + \
            optable.OP_FAMILIES["batchnorm"] + optable.OP_FAMILIES["optim"]
        assert not set(hot) & set(b.reuses), f"{name} reuses hot ops {b.reuses}"


def test_every_op_is_documented_with_shapes():
    for op in optable.op_names():
        doc = optable.op_spec(op).__doc__
        assert doc and ("(" in doc or "shape" in doc), op
        assert getattr(ops, op).__doc__ == doc


# ------------------------------------------------------------------------ dense
@pytest.mark.parametrize("activation", optable.FUSABLE_ACTIVATIONS)
@pytest.mark.parametrize("shape", [(1, 3, 2), (7, 13, 5), (64, 96, 33), (48, 40, 80)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_forward_backward(backend, dtype, rng, activation, shape, with_bias):
    n, fin, fout = shape
    x = rng.standard_normal((n, fin)).astype(dtype)
    w = (rng.standard_normal((fout, fin)) / np.sqrt(fin)).astype(dtype)
    b = rng.standard_normal(fout).astype(dtype) if with_bias else None
    g = rng.standard_normal((n, fout)).astype(dtype)
    y = ops.linear_forward(x, w, b, activation, 0.1)

    xt, wt = t(x, True), t(w, True)
    bt = t(b, True) if with_bias else None
    yt = ACT_TORCH[activation](F.linear(xt, wt, bt))
    yt.backward(t(g))
    assert y.dtype == dtype and y.shape == (n, fout)
    assert_close(y, yt.detach().numpy(), dtype)
    assert_close(y, run_reference("linear_forward", x, w, b, activation, 0.1)[0], dtype)

    gw = np.ones_like(w)  # gradients accumulate into what is there
    gb = np.ones_like(b) if with_bias else None
    gin = ops.linear_backward(g, x, w, y, activation, 0.1, gw, gb)
    assert_close(gin, xt.grad.numpy(), dtype, scale=fin)
    assert_close(gw - 1, wt.grad.numpy(), dtype, scale=n)
    if with_bias:
        assert_close(gb - 1, bt.grad.numpy(), dtype, scale=n)


def test_linear_out_buffers_are_used(backend, dtype, rng):
    x = rng.standard_normal((16, 8)).astype(dtype)
    w = rng.standard_normal((4, 8)).astype(dtype)
    b = np.zeros(4, dtype)
    out = np.empty((16, 4), dtype)
    y = ops.linear_forward(x, w, b, "relu", out=out)
    assert y is out
    g = rng.standard_normal((16, 4)).astype(dtype)
    g_copy = g.copy()
    gin, scratch = np.empty_like(x), np.empty_like(g)
    res = ops.linear_backward(g, x, w, y, "relu", 0.01, np.zeros_like(w), np.zeros_like(b),
                              grad_in=gin, scratch=scratch)
    assert res is gin
    np.testing.assert_array_equal(g, g_copy)  # grad_out is not modified
    assert ops.linear_backward(g, x, w, y, "relu", 0.01, np.zeros_like(w), None,
                               need_grad_in=False) is None


# ------------------------------------------------------------------ activations
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("shape", [(1,), (5, 7), (3, 4, 5, 6), (1000, 37)])
def test_activation_forward_backward(backend, dtype, rng, name, shape):
    fn, params, saved = ACTIVATIONS[name]
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    y = getattr(ops, name)(x, **params)
    xt = t(x, True)
    yt = fn(xt)
    yt.backward(t(g))
    assert y.dtype == dtype and y.shape == x.shape
    assert_close(y, yt.detach().numpy(), dtype)
    grad = getattr(ops, name + "_backward")(g, x if saved == "x" else y, **params)
    assert_close(grad, xt.grad.numpy(), dtype, scale=30.0 if name == "sine" else 1.0)
    out = np.empty_like(x)
    assert getattr(ops, name)(x, out=out, **params) is out


def test_activations_at_extremes(backend, dtype):
    x = np.array([-1e4, -100, -20, -1e-8, 0, 1e-8, 20, 100, 1e4], dtype=dtype)
    for name in ("sigmoid", "tanh", "gelu", "relu", "silu", "elu", "softplus", "hardtanh",
                 "softsign", "gelu_tanh", "mish", "hardsigmoid", "hardswish"):
        y = getattr(ops, name)(x, **ACTIVATIONS[name][1])
        expected = ACTIVATIONS[name][0](t(x)).numpy()
        assert np.all(np.isfinite(y)), name
        assert_close(y, expected, dtype, err_msg=name)
    g = np.ones_like(x)
    for name in ("gelu", "silu", "elu", "softplus", "hardtanh", "softsign", "gelu_tanh", "mish",
                 "hardsigmoid", "hardswish"):
        xt = t(x, True)
        ACTIVATIONS[name][0](xt).backward(t(g))
        grad = getattr(ops, name + "_backward")(g, x, **ACTIVATIONS[name][1])
        assert_close(grad, xt.grad.numpy(), dtype, err_msg=name)


def test_gelu_float32_within_1e7_plus_one_ulp_of_exact(backend):
    """float32 GELU on a dense grid against the exact value (float64 erfc): the compiled
    backends' log2-polynomial Phi (_fastnn_math.h, vmath.gelu) including its cut at
    |x| = 5.6, where PyTorch's float32 1 + erf is 0 too."""
    from scipy.special import erfc
    x = np.concatenate([np.linspace(-12, 12, 600_001), [5.6, -5.6, 5.61, -5.61, 1e30, -1e30]]
                       ).astype(np.float32)
    x64 = x.astype(np.float64)
    exact = x64 * 0.5 * erfc(-x64 / np.sqrt(2))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    error = np.abs(ops.gelu(x).astype(np.float64) - exact)
    assert (error / (1e-7 + ulp)).max() <= 1.0


def test_nan_propagates(backend, dtype):
    x = np.array([np.nan, 1.0, -1.0], dtype=dtype)
    for name in ("relu", "sigmoid", "tanh", "gelu", "sine", "silu", "elu", "softplus",
                 "hardtanh", "softsign", "gelu_tanh", "mish", "hardsigmoid", "hardswish"):
        assert np.isnan(getattr(ops, name)(x)[0]), name


def test_bce_loss_nan_propagates(backend, dtype):
    """A NaN probability makes the loss NaN (the op table's rule; PyTorch refuses it), not
    a finite loss from the logs' clamp at -100."""
    loss, grad = ops.bce_loss(np.array([np.nan, 0.3], dtype), np.array([0.5, 1.0], dtype))
    assert np.isnan(loss) and np.isnan(grad[0]) and np.isfinite(grad[1])


@pytest.mark.parametrize("shape", [(3, 2), (3, 2, 2, 1)])
def test_batchnorm_infinite_first_value_extremes(backend, dtype, shape):
    """An infinite value first in a channel (the value the kernels' shifted sums start
    from) gives an infinite mean and running mean, as PyTorch's, not NaN from inf - inf."""
    x = np.arange(float(np.prod(shape)), dtype=dtype).reshape(shape)
    x[0, 0] = np.inf
    rm, rv = np.zeros(2, dtype), np.ones(2, dtype)
    with np.errstate(invalid="ignore"):
        _, mean, _ = ops.batchnorm_forward(x, np.ones(2, dtype), np.zeros(2, dtype), rm, rv,
                                           training=True)
    trm = torch.zeros(2, dtype=t(x).dtype)
    F.batch_norm(t(x), trm, torch.ones(2, dtype=trm.dtype), training=True)
    assert mean[0] == np.inf and rm[0] == np.inf and trm[0].item() == np.inf
    assert np.isfinite(mean[1]) and np.isfinite(rm[1])


@pytest.mark.parametrize("shape", [(0, 3), (0, 3, 2, 2), (2, 3, 0, 2)])
def test_eval_batchnorm_of_no_values_saves_the_running_statistics_extremes(backend, dtype,
                                                                           shape):
    """With no values (an empty batch or empty planes) the eval forward's saved mean and
    invstd are the running statistics', written into the caller's buffers."""
    rm, rv = np.array([1, 2, 3], dtype), np.array([4, 5, 6], dtype)
    save_mean, save_invstd = np.full(3, 7, dtype), np.full(3, 7, dtype)
    y, mean, invstd = ops.batchnorm_forward(np.empty(shape, dtype), np.ones(3, dtype),
                                            np.zeros(3, dtype), rm, rv, training=False,
                                            save_mean=save_mean, save_invstd=save_invstd)
    assert y.shape == shape and mean is save_mean and invstd is save_invstd
    np.testing.assert_array_equal(mean, rm)
    assert_close(invstd, 1 / np.sqrt(rv.astype(np.float64) + 1e-5), dtype)


# PyTorch's CPU activation backwards run a vector loop and a scalar tail for what is left
# (fewer values than two vector registers); at a NaN input the two disagree for ELU,
# Hardswish and Hardtanh (the tail passes grad_out). 64 values, each NaN at the start of
# a block of 8, put every NaN in the vector loop on any CPU (2 AVX-512 float32 registers
# are 32 values): the answer every real tensor gets, and the one fastnn gives at any size.
NAN_EDGE_VALUES = [np.nan, -3.0, 3.0, 0.0, -1.0, 2.0, -5.0, 5.0]


def test_backward_at_nan_input_follows_torch(backend, dtype):
    """Each backward at a NaN input (ELU and Hardswish NaN, Hardsigmoid and Hardtanh 0,
    ReLU grad_out, the smooth ones NaN) and at the edges of its pieces, as PyTorch's
    vectorised CPU kernels; the same answer for a short array."""
    x = np.array(NAN_EDGE_VALUES * 8, dtype=dtype)
    g = np.linspace(0.5, 2.0, x.size).astype(dtype)
    for name, torch_fn in (("elu", F.elu), ("hardswish", F.hardswish), ("silu", F.silu),
                           ("softplus", F.softplus), ("sigmoid", torch.sigmoid),
                           ("tanh", torch.tanh), ("softsign", F.softsign),
                           ("hardsigmoid", F.hardsigmoid), ("relu", F.relu),
                           ("hardtanh", F.hardtanh)):
        xt = t(x, True)
        torch_fn(xt).backward(t(g))
        saved = getattr(ops, name)(x) if name in ("sigmoid", "tanh") else x  # (their output)
        ours = getattr(ops, name + "_backward")(g, saved)
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(xt.grad.numpy()), err_msg=name)
        short = getattr(ops, name + "_backward")(g[:8].copy(), saved[:8].copy())
        np.testing.assert_array_equal(short, ours[:8], err_msg=name)
        # (PyTorch's hardsigmoid gradient uses float32's 1/6 in float64 too)
        assert_close(np.nan_to_num(ours), np.nan_to_num(xt.grad.numpy()), dtype,
                     1e3 if name == "hardsigmoid" else 1.0, err_msg=name)


def test_softplus_keeps_tiny_values_and_hardtanh_its_edges(backend, dtype):
    """softplus far below 0 is exp(beta x) / beta to full relative accuracy (libm log1p,
    not log(1 + e)), as PyTorch's; hardtanh's gradient is 0 at the edges themselves and
    where x is NaN, as PyTorch's vectorised kernel."""
    x = np.array([-80.0, -30.0, -15.0, -3.0, 0.0, 4.9, 5.1], dtype=dtype)
    xt = t(x, True)
    F.softplus(xt).backward(t(np.ones_like(x)))
    y = ops.softplus(x)
    np.testing.assert_allclose(y, F.softplus(t(x)).numpy(), rtol=1e-5 if dtype == np.float32
                               else 1e-12)
    assert_close(ops.softplus_backward(np.ones_like(x), x), xt.grad.numpy(), dtype)
    edges = np.array([-1.0, 1.0, -1.5, 0.3, np.nan] * 32, dtype=dtype)  # (see NAN_EDGE_VALUES)
    et = t(edges, True)
    F.hardtanh(et).backward(t(np.ones_like(edges)))
    np.testing.assert_array_equal(ops.hardtanh_backward(np.ones_like(edges), edges),
                                  et.grad.numpy())
    np.testing.assert_array_equal(ops.hardtanh(edges, 0.0, 6.0), F.relu6(t(edges)).numpy())
    with pytest.raises(ValueError, match="min_val <= max_val"):
        ops.hardtanh(x, 1.0, 0.0)
    with pytest.raises(ValueError, match="beta"):   # (any other beta, as PyTorch's)
        ops.softplus(x, beta=float("nan"))


def test_mish_and_gelu_tanh_far_from_0_and_at_nan(backend, dtype):
    """Both are x itself far above 0 (Mish's ratio is exactly 1 beyond 20, and x times it
    must not round), their gradients exactly 1 there (also at inf: no inf * 0) and ~0 far
    below 0, and NaN in gives NaN out in both directions."""
    x = np.array([25.0, 60.0, 1e4, np.inf], dtype=dtype)
    one = np.ones_like(x)
    for name in ("mish", "gelu_tanh"):
        np.testing.assert_array_equal(getattr(ops, name)(x), x, err_msg=name)
        np.testing.assert_array_equal(getattr(ops, name + "_backward")(one, x), one,
                                      err_msg=name)
        far_below = getattr(ops, name + "_backward")(one[:2], -x[1:3])
        np.testing.assert_allclose(far_below, 0.0, atol=1e-20, err_msg=name)  # mish: -59 e^-60
        nan = np.array([np.nan, 1.0], dtype=dtype)
        assert np.isnan(getattr(ops, name)(nan)[0]), name
        assert np.isnan(getattr(ops, name + "_backward")(np.ones_like(nan), nan)[0]), name


def test_hardsigmoid_and_hardswish_edges_follow_torch(backend):
    """At x = -3 and 3 exactly: hardsigmoid's gradient 0 at both, hardswish's 0 at -3 and
    the full gradient at 3 (PyTorch's edges), in float32 (where torch's 1/6 is exact)."""
    x = np.array([-4.0, -3.0, -2.5, 0.0, 2.5, 3.0, 4.0], dtype=np.float32)
    g = np.full_like(x, 2.0)
    for name in ("hardsigmoid", "hardswish"):
        xt = t(x, True)
        getattr(F, name)(xt).backward(t(g))
        np.testing.assert_allclose(getattr(ops, name)(x), getattr(F, name)(t(x)).numpy(),
                                   rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(getattr(ops, name + "_backward")(g, x), xt.grad.numpy(),
                                   rtol=1e-6, err_msg=name)


def test_softplus_with_a_threshold_beyond_exps_range(backend, dtype):
    """With threshold 1000, beta x up to it is computed, not passed through: exp(beta x)
    overflows there (float32 above 88), and PyTorch's float32 kernel gives inf and a NaN
    gradient; fastnn gives x and 1, as PyTorch in float64 where exp does not overflow."""
    x = np.array([-500.0, -90.0, -1.0, 0.0, 2.0, 90.0, 500.0], dtype=dtype)
    xt = t(x.astype(np.float64), True)
    F.softplus(xt, 1.0, 1000.0).backward(t(np.ones_like(x, dtype=np.float64)))
    expected = F.softplus(t(x.astype(np.float64)), 1.0, 1000.0).numpy()
    y = ops.softplus(x, 1.0, 1000.0)
    assert y.dtype == dtype and np.all(np.isfinite(y))
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-37)
    g = ops.softplus_backward(np.ones_like(x), x, 1.0, 1000.0)
    np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-6, atol=1e-37)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", [(1, 1), (4, 10), (300, 1000)])
def test_softmax_forward_backward(backend, dtype, rng, shape, name):
    """Against torch, with a logit 1e4 (float32: 80) above the rest: log_softmax stays
    finite there, where log(softmax) would not."""
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    x[0, 0] = 1e4 if dtype == np.float64 else 80.0
    g = rng.standard_normal(shape).astype(dtype)
    y = getattr(ops, name)(x)
    xt = t(x, True)
    yt = getattr(torch, name)(xt, dim=1)
    yt.backward(t(g))
    assert np.all(np.isfinite(y))
    log = name == "log_softmax"  # values up to |1e4|, and a row sum in its backward
    assert_close(y, yt.detach().numpy(), dtype, scale=(1e4 if dtype == np.float64 else 80)
                 if log else 1.0)
    assert_close(getattr(ops, name + "_backward")(g, y), xt.grad.numpy(), dtype,
                 scale=shape[1] if log else 1.0)


# ---------------------------------------------------------------------- dropout
@pytest.mark.parametrize("p", [0.0, 0.3, 0.9])
def test_dropout(backend, dtype, rng, p):
    x = rng.standard_normal((200, 500)).astype(dtype)
    y, mask = ops.dropout_forward(x, p, seed=1234)
    scale = dtype.type(1 / (1 - p))
    assert set(np.unique(mask)) <= {dtype.type(0), scale}
    assert abs((mask == 0).mean() - p) < 0.01
    assert_close(y, x * mask, dtype)
    y2, mask2 = ops.dropout_forward(x, p, seed=1234)
    np.testing.assert_array_equal(mask, mask2)  # same seed, same mask
    if p:
        _, mask3 = ops.dropout_forward(x, p, seed=1235)
        assert not np.array_equal(mask, mask3)
    g = rng.standard_normal(x.shape).astype(dtype)
    assert_close(ops.dropout_backward(g, mask), g * mask, dtype)


# ----------------------------------------------------------------------- losses
@pytest.mark.parametrize("shape", [(1, 2), (7, 10), (257, 1000)])
@pytest.mark.parametrize("target_kind", ["labels", "probs"])
@pytest.mark.parametrize("magnitude", [1.0, 1e4])
def test_softmax_cross_entropy(backend, dtype, rng, shape, target_kind, magnitude):
    n, c = shape
    logits = (rng.standard_normal(shape) * magnitude).astype(dtype)
    if target_kind == "labels":
        target = rng.integers(0, c, n)
    else:
        target = rng.random(shape).astype(dtype)
        target /= target.sum(axis=1, keepdims=True)
    loss, grad = ops.softmax_cross_entropy(logits, target)
    lt = t(logits, True)
    expected = F.cross_entropy(lt, t(target))
    expected.backward()
    assert isinstance(loss, float) and np.isfinite(loss)
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(loss, expected.item(), rtol=rtol, atol=rtol)
    assert_close(grad, lt.grad.numpy(), dtype)
    ref_loss = run_reference("softmax_cross_entropy", logits, target)[0][0]
    np.testing.assert_allclose(loss, ref_loss, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("shape", [(1,), (6, 5), (128, 784)])
def test_mse_loss(backend, dtype, rng, shape):
    pred = rng.standard_normal(shape).astype(dtype)
    target = rng.standard_normal(shape).astype(dtype)
    loss, grad = ops.mse_loss(pred, target)
    expected, expected_grad = torch_loss(F.mse_loss, pred, target)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert_close(grad, expected_grad, dtype)


@pytest.mark.parametrize("shape", [(6, 5), (128, 784)])
def test_bce_loss(backend, dtype, rng, shape):
    pred = rng.random(shape).astype(dtype)
    pred.flat[:4] = [0.0, 1.0, 0.0, 1.0]  # exact 0 and 1 stay finite (logs clamped at -100)
    target = (rng.random(shape) > 0.5).astype(dtype)
    target.flat[:4] = [0.0, 1.0, 1.0, 0.0]
    loss, grad = ops.bce_loss(pred, target)
    expected, expected_grad = torch_loss(F.binary_cross_entropy, pred, target)
    assert np.isfinite(loss)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    # at pred of exactly 0 or 1 the gradient is ~1e12 / N: compare relatively
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(6, 5), (128, 784)])
def test_bce_with_logits_loss(backend, dtype, rng, shape):
    """PyTorch's loss and gradient, soft targets, and logits far past where a float32
    sigmoid rounds to 0 or 1 (the loss grows linearly there, the gradient is -t or 1 - t)."""
    logits = (rng.standard_normal(shape) * 6).astype(dtype)
    logits.flat[:8] = [1e4, -1e4, 90.0, -90.0, 20.0, -20.0, 0.0, -0.0]
    target = rng.random(shape).astype(dtype)
    target.flat[:8] = [0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.5, 1.0]
    loss, grad = ops.bce_with_logits_loss(logits, target)
    expected, expected_grad = torch_loss(F.binary_cross_entropy_with_logits, logits, target)
    assert np.isfinite(loss) and grad.dtype == dtype
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert_close(grad, expected_grad, dtype)
    out = np.empty_like(logits)
    assert ops.bce_with_logits_loss(logits, target, grad=out)[1] is out


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("shape", [(6, 5), (128, 784)])
def test_smooth_l1_loss(backend, dtype, rng, shape, beta):
    """PyTorch's smooth_l1_loss (l1_loss at beta 0): loss and gradient, with differences of
    exactly 0 and exactly beta, and NaN as PyTorch takes it (L1: gradient 0; else NaN)."""
    pred = (rng.standard_normal(shape) * 2).astype(dtype)
    target = rng.standard_normal(shape).astype(dtype)
    pred.flat[0] = target.flat[0]
    pred.flat[1] = target.flat[1] + dtype.type(beta)
    fn = (lambda p, t: F.smooth_l1_loss(p, t, beta=beta)) if beta else F.l1_loss
    loss, grad = ops.smooth_l1_loss(pred, target, beta)
    expected, expected_grad = torch_loss(fn, pred, target)
    assert grad.dtype == dtype
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert_close(grad, expected_grad, dtype)
    out = np.empty_like(pred)
    assert ops.smooth_l1_loss(pred, target, beta, grad=out)[1] is out
    pred.flat[2] = np.nan
    loss, grad = ops.smooth_l1_loss(pred, target, beta)
    _, expected_grad = torch_loss(fn, pred, target)
    assert np.isnan(loss)
    np.testing.assert_array_equal(np.isnan(grad), np.isnan(expected_grad))


def test_cross_entropy_with_targets_that_do_not_sum_to_one(backend, dtype, rng):
    """PyTorch's loss and gradient, (softmax * sum(t) - t) / N, for rows summing to 0.3,
    1.5 and 0 as well as to 1."""
    logits = (rng.standard_normal((4, 37)) * 3).astype(dtype)
    target = rng.random((4, 37)).astype(dtype)
    target /= target.sum(1, keepdims=True)
    target[1] *= 0.3
    target[2] *= 1.5
    target[3] = 0
    loss, grad = ops.softmax_cross_entropy(logits, target)
    expected, expected_grad = torch_loss(F.cross_entropy, logits, target)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert_close(grad, expected_grad, dtype)


def test_bce_loss_soft_targets_and_extreme_probabilities(backend, dtype, rng):
    """The compiled float32 logs (vectorized, not libm) over every scale of p, subnormal
    and 1 - 2**-24 included, with soft targets; against float64 PyTorch."""
    pred = np.concatenate([10.0 ** rng.uniform(-44, 0, 4000),
                           1 - 10.0 ** rng.uniform(-7.2, 0, 4000),
                           [1e-45, 1e-39, 1.2e-38, 2.0 ** -24, 1 - 2.0 ** -24, 0.5]]).astype(dtype)
    target = rng.random(pred.shape).astype(dtype)
    loss, grad = ops.bce_loss(pred, target)
    pt = t(pred.astype(np.float64), True)
    expected = F.binary_cross_entropy(pt, t(target.astype(np.float64)))
    expected.backward()
    np.testing.assert_allclose(loss, expected.item(), rtol=1e-6)
    np.testing.assert_allclose(grad, pt.grad.numpy(), rtol=1e-5, atol=1e-6)


# -------------------------------------------------------------------- batchnorm
@pytest.mark.parametrize("shape", [(2, 3), (64, 33), (256, 1024), (4, 3, 5, 7)])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm(backend, dtype, rng, shape, training):
    c = shape[1]
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    w = rng.standard_normal(c).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    rm = rng.standard_normal(c).astype(dtype)
    rv = rng.random(c).astype(dtype) + 0.5
    g = rng.standard_normal(shape).astype(dtype)
    rm_t, rv_t = t(rm), t(rv)
    xt, wt, bt = t(x, True), t(w, True), t(b, True)
    yt = F.batch_norm(xt, rm_t, rv_t, wt, bt, training=training, momentum=0.1, eps=1e-5)
    yt.backward(t(g))

    y, mean, invstd = ops.batchnorm_forward(x, w, b, rm, rv, training, 0.1, 1e-5)
    assert_close(y, yt.detach().numpy(), dtype, scale=10)
    assert_close(rm, rm_t.numpy(), dtype)
    assert_close(rv, rv_t.numpy(), dtype)
    gw, gb = np.zeros_like(w), np.zeros_like(b)
    gin = ops.batchnorm_backward(g, x, w, mean, invstd, training, False, gw, gb)
    assert_close(gin, xt.grad.numpy(), dtype, scale=10)
    assert_close(gw, wt.grad.numpy(), dtype, scale=np.prod(shape) / c)
    assert_close(gb, bt.grad.numpy(), dtype, scale=np.prod(shape) / c)


@pytest.mark.parametrize("shape", [(5, 4), (128, 100), (3, 2, 4, 4)])
def test_batchnorm_mean_only(backend, dtype, rng, shape):
    c = shape[1]
    axes = (0,) if len(shape) == 2 else (0, 2, 3)
    view = (1, c) + (1,) * (len(shape) - 2)
    x = rng.standard_normal(shape).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    rm = np.zeros(c, dtype)
    g = rng.standard_normal(shape).astype(dtype)
    xt, bt = t(x, True), t(b, True)
    yt = xt - xt.mean(dim=axes, keepdim=True) + bt.reshape(view)
    yt.backward(t(g))
    y, mean, invstd = ops.batchnorm_forward(x, None, b, rm, None, True, 0.1, 1e-5, True)
    assert invstd is None
    assert_close(y, yt.detach().numpy(), dtype)
    assert_close(rm, 0.1 * x.mean(axis=axes), dtype)
    gb = np.zeros_like(b)
    gin = ops.batchnorm_backward(g, x, None, mean, None, True, True, None, gb)
    assert_close(gin, xt.grad.numpy(), dtype)
    assert_close(gb, bt.grad.numpy(), dtype, scale=x.size / c)
    y_eval, _, _ = ops.batchnorm_forward(x, None, b, rm, None, False, 0.1, 1e-5, True)
    assert_close(y_eval, x - rm.reshape(view) + b.reshape(view), dtype)


def test_batchnorm_constant_feature_is_finite(backend, dtype):
    x = np.ones((8, 3), dtype)
    w, b = np.ones(3, dtype), np.zeros(3, dtype)
    y, mean, invstd = ops.batchnorm_forward(x, w, b, np.zeros(3, dtype), np.ones(3, dtype))
    assert np.all(np.isfinite(y)) and np.allclose(y, 0)
    gin = ops.batchnorm_backward(np.ones_like(x), x, w, mean, invstd)
    assert np.all(np.isfinite(gin))


# (9, 2): the (N, C) kernels; (9, 2, 3, 1): the (N, C, L) ones; (4, 17, 2, 1): the
# Cython backend's one task per channel (from 16 channels)
@pytest.mark.parametrize("shape", [(9, 2), (9, 2, 3, 1), (4, 17, 2, 1)])
@pytest.mark.parametrize("where", ["grad_out", "weight", "x"])
def test_training_batchnorm_gradient_of_a_nonfinite_value_as_torch(backend, dtype,
                                                                  shape, where):
    """One inf in grad_out, an infinite weight or a NaN in x, in training mode:
    PyTorch's NaNs and infinities element by element. The CPU kernels' folded form
    a * grad_out + b * (x - mean) + d (a = weight * invstd) made a channel of infinite
    weight NaN in every row, where PyTorch's (grad_out - mean_g - (x - mean) * k) *
    weight * invstd gives +-inf."""
    rng = np.random.default_rng(1)
    c = shape[1]
    x, g = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    w, b = rng.standard_normal(c).astype(dtype), np.zeros(c, dtype)
    first = (1, 0) + (0,) * (len(shape) - 2)
    if where == "grad_out":
        g[first] = np.inf
    elif where == "weight":
        w[0] = -np.inf
    else:
        x[first] = np.nan
    with np.errstate(invalid="ignore"):
        _, mean, invstd = ops.batchnorm_forward(x, w, b, np.zeros(c, dtype),
                                                np.ones(c, dtype))
        gin = ops.batchnorm_backward(g, x, w, mean, invstd)
    xt, wt = t(x, True), t(w, True)
    F.batch_norm(xt, None, None, wt, t(b), True, 0.1, 1e-5).backward(t(g))
    want = xt.grad.numpy()
    assert not np.isfinite(want[:, 0]).any() and np.isfinite(want[:, 1]).all()
    np.testing.assert_array_equal(np.isnan(gin), np.isnan(want))
    infinite = np.isinf(want)
    np.testing.assert_array_equal(gin[infinite], want[infinite])
    finite = np.isfinite(want)
    assert_close(gin[finite], want[finite], dtype, scale=10)


# -------------------------------------------------------------------- layernorm
@pytest.mark.parametrize("shape", [(2, 3), (64, 33), (256, 1024), (40, 1), (1000, 40)])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(backend, dtype, rng, shape, affine):
    """Against PyTorch's F.layer_norm and the reference: output, statistics, gradients."""
    d = shape[1]
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    w = rng.standard_normal(d).astype(dtype) if affine else None
    b = rng.standard_normal(d).astype(dtype) if affine else None
    g = rng.standard_normal(shape).astype(dtype)
    xt = t(x, True)
    wt, bt = (t(w, True), t(b, True)) if affine else (None, None)
    yt = F.layer_norm(xt, (d,), wt, bt, 1e-5)
    yt.backward(t(g))
    y, mean, invstd = ops.layer_norm_forward(x, w, b, 1e-5)
    assert_close(y, yt.detach().numpy(), dtype, scale=10)
    (ref_y, ref_mean, ref_invstd), _, _ = run_reference("layer_norm_forward", x, w, b, 1e-5)
    assert_close(mean, ref_mean, dtype)
    assert_close(invstd, ref_invstd, dtype, scale=10)
    gw = np.zeros(d, dtype) if affine else None
    gb = np.zeros(d, dtype) if affine else None
    gin = ops.layer_norm_backward(g, x, w, mean, invstd, gw, gb)
    assert_close(gin, xt.grad.numpy(), dtype, scale=100 if d == 1 else 10)
    if affine:
        assert_close(gw, wt.grad.numpy(), dtype, scale=shape[0])
        assert_close(gb, bt.grad.numpy(), dtype, scale=shape[0])


def test_layer_norm_buffers_in_place_and_constant_rows(backend, dtype, rng):
    """out= over x, the caller's statistics buffers, accumulation into the gradients, and
    a constant row (variance 0) stays finite."""
    x = rng.standard_normal((50, 700)).astype(dtype)
    x[3] = 2.5
    expected, _, _ = run_reference("layer_norm_forward", x, None, None, 1e-5)[0]
    mean, invstd = np.empty(50, dtype), np.empty(50, dtype)
    work = x.copy()
    y, m, s = ops.layer_norm_forward(work, None, None, 1e-5, out=work, save_mean=mean,
                                     save_invstd=invstd)
    assert y is work and m is mean and s is invstd
    assert_close(y, expected, dtype, scale=10)
    assert np.all(np.isfinite(y)) and np.all(y[3] == 0)
    w = np.ones(700, dtype)
    gw, gb = np.ones(700, dtype), np.ones(700, dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    gi = np.empty_like(x)
    assert ops.layer_norm_backward(g, x, w, mean, invstd, gw, gb, grad_in=gi) is gi
    assert np.all(np.isfinite(gi))
    assert_close(gb, 1 + g.sum(0, dtype=np.float64), dtype, scale=50)
    with pytest.raises(ValueError, match="layer_norm_forward"):
        ops.layer_norm_forward(x, np.ones(3, dtype))


# ------------------------------------------------------------------- optimizers
@pytest.mark.parametrize("momentum,weight_decay,nesterov",
                         [(0.0, 0.0, False), (0.9, 0.0, False), (0.9, 1e-2, False),
                          (0.9, 1e-2, True)])
def test_sgd_update_matches_torch(backend, dtype, rng, momentum, weight_decay, nesterov):
    p = rng.standard_normal(1000).astype(dtype)
    pt = t(p, True)
    opt = torch.optim.SGD([pt], lr=0.1, momentum=momentum, weight_decay=weight_decay,
                          nesterov=nesterov)
    velocity = np.zeros_like(p)
    for _ in range(5):
        grad = rng.standard_normal(p.shape).astype(dtype)
        ops.sgd_update(p, grad, velocity, 0.1, momentum, weight_decay, nesterov)
        pt.grad = t(grad)
        opt.step()
    assert_close(p, pt.detach().numpy(), dtype)
    if not momentum or nesterov:
        return
    # dampening: PyTorch's first step is undamped (v = g), so the caller passes 0 there
    opt = torch.optim.SGD([pt], lr=0.1, momentum=momentum, dampening=0.4,
                          weight_decay=weight_decay)
    velocity[...] = 0
    for step in range(4):
        grad = rng.standard_normal(p.shape).astype(dtype)
        ops.sgd_update(p, grad, velocity, 0.1, momentum, weight_decay, False,
                       0.0 if step == 0 else 0.4)
        pt.grad = t(grad)
        opt.step()
    assert_close(p, pt.detach().numpy(), dtype)


@pytest.mark.parametrize("weight_decay, amsgrad", [(0.0, False), (0.01, False), (0.01, True)])
def test_adam_update_matches_torch(backend, dtype, rng, weight_decay, amsgrad):
    p = rng.standard_normal(1000).astype(dtype)
    pt = t(p, True)
    opt = torch.optim.Adam([pt], lr=1e-2, betas=(0.8, 0.99), eps=1e-7, weight_decay=weight_decay,
                           amsgrad=amsgrad)
    m, v = np.zeros_like(p), np.zeros_like(p)
    vmax = np.zeros_like(p) if amsgrad else None
    for step in range(1, 6):
        # shrinking gradients, so the running maximum of v differs from v
        grad = (rng.standard_normal(p.shape) / step).astype(dtype)
        ops.adam_update(p, grad, m, v, step, 1e-2, 0.8, 0.99, 1e-7, weight_decay, vmax)
        pt.grad = t(grad)
        opt.step()
    assert_close(p, pt.detach().numpy(), dtype)


@pytest.mark.parametrize("momentum, centered, weight_decay",
                         [(0.0, False, 0.0), (0.9, False, 0.01), (0.0, True, 0.0),
                          (0.5, True, 0.01)])
def test_rmsprop_update_matches_torch(backend, dtype, rng, momentum, centered, weight_decay):
    p = rng.standard_normal(1000).astype(dtype)
    pt = t(p, True)
    opt = torch.optim.RMSprop([pt], lr=1e-2, alpha=0.9, eps=1e-6, weight_decay=weight_decay,
                              momentum=momentum, centered=centered)
    square_avg = np.zeros_like(p)
    buf = np.zeros_like(p) if momentum else None
    grad_avg = np.zeros_like(p) if centered else None
    for _ in range(5):
        grad = rng.standard_normal(p.shape).astype(dtype)
        ops.rmsprop_update(p, grad, square_avg, 1e-2, 0.9, 1e-6, weight_decay, momentum, buf,
                           grad_avg)
        pt.grad = t(grad)
        opt.step()
    assert_close(p, pt.detach().numpy(), dtype)
    assert_close(square_avg, opt.state[pt]["square_avg"].numpy(), dtype)


@pytest.mark.parametrize("lr_decay, weight_decay", [(0.0, 0.0), (0.1, 0.01)])
def test_adagrad_update_matches_torch(backend, dtype, rng, lr_decay, weight_decay):
    """The op at the step's decayed rate, against torch.optim.Adagrad (40000 values: the
    compiled backends' parallel path)."""
    p = rng.standard_normal(40000).astype(dtype)
    pt = t(p, True)
    opt = torch.optim.Adagrad([pt], lr=1e-2, lr_decay=lr_decay, weight_decay=weight_decay,
                              initial_accumulator_value=0.1, eps=1e-8)
    state_sum = np.full_like(p, 0.1)
    for step in range(1, 6):
        grad = rng.standard_normal(p.shape).astype(dtype)
        ops.adagrad_update(p, grad, state_sum, 1e-2 / (1 + (step - 1) * lr_decay),
                           weight_decay, 1e-8)
        pt.grad = t(grad)
        opt.step()
    assert_close(p, pt.detach().numpy(), dtype)
    assert_close(state_sum, opt.state[pt]["sum"].numpy(), dtype, scale=10)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adamax_update_matches_torch(backend, dtype, rng, weight_decay):
    """40000 values: the compiled backends' parallel path; shrinking gradients, so the
    running maximum u is not just |g|."""
    p = rng.standard_normal(40000).astype(dtype)
    pt = t(p, True)
    opt = torch.optim.Adamax([pt], lr=1e-2, betas=(0.8, 0.99), eps=1e-7,
                             weight_decay=weight_decay)
    m, u = np.zeros_like(p), np.zeros_like(p)
    for step in range(1, 6):
        grad = (rng.standard_normal(p.shape) / step).astype(dtype)
        ops.adamax_update(p, grad, m, u, step, 1e-2, 0.8, 0.99, 1e-7, weight_decay)
        pt.grad = t(grad)
        opt.step()
    assert_close(p, pt.detach().numpy(), dtype)
    assert_close(u, opt.state[pt]["exp_inf"].numpy(), dtype)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adaptive_moments_update_is_torch_nadam_and_radam(backend, dtype, rng, weight_decay):
    """The op with NAdam's rates follows torch.optim.NAdam, with RAdam's (both of its
    rules) torch.optim.RAdam (40000 values, float64 scalars in torch's NAdam)."""
    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for kind in ("NAdam", "RAdam"):
            p = rng.standard_normal(40000).astype(dtype)
            pt = t(p, True)
            betas = (0.8, 0.9)
            opt = getattr(torch.optim, kind)([pt], lr=1e-2, betas=betas, eps=1e-7,
                                             weight_decay=weight_decay)
            m, v, product = np.zeros_like(p), np.zeros_like(p), 1.0
            for step in range(1, 9):
                grad = rng.standard_normal(p.shape).astype(dtype)
                if kind == "NAdam":
                    mu = 0.8 * (1 - 0.5 * 0.96 ** (step * 4e-3))
                    mu_next = 0.8 * (1 - 0.5 * 0.96 ** ((step + 1) * 4e-3))
                    product *= mu
                    ops.adaptive_moments_update(
                        p, grad, m, v, 1e-2 * mu_next / (1 - product * mu_next),
                        1e-2 * (1 - mu) / (1 - product), 0.8, 0.9,
                        1 / np.sqrt(1 - 0.9 ** step), 1e-7, weight_decay)
                else:
                    avg_rate, sq_scale, eps = optim.RAdam.rates(1e-2, 0.8, 0.9, 1e-7, step)
                    ops.adaptive_moments_update(p, grad, m, v, avg_rate, 0.0, 0.8, 0.9,
                                                sq_scale, eps, weight_decay)
                pt.grad = t(grad)
                opt.step()
            assert_close(p, pt.detach().numpy(), dtype, err_msg=kind)
            assert_close(v, opt.state[pt]["exp_avg_sq"].numpy(), dtype)
    finally:
        torch.set_default_dtype(saved)


def test_adaptive_moments_update_takes_any_sq_scale(backend, dtype, rng):
    """An sq_scale whose 1 / sq_scale^2 is no normal number of the dtype (or whose
    square is 0 in float64, which raised ZeroDivisionError) takes the product form
    sq_scale * sqrt(v), one that is 0 in the dtype eps alone (the reference had given
    0 * inf = NaN where v overflowed): the step agrees with that, and no division turns
    0 / 0 or inf / inf, even with v = 0 or inf. (Every sq_scale finite in the dtype.)"""
    for sq_scale in (1e-170, 1e-30, 1e-19, 1e19, 1e30, 1e200):
        with np.errstate(over="ignore"):
            scale = float(np.dtype(dtype).type(sq_scale))
        if scale == np.inf:
            continue   # (1e200 in float32)
        p0 = rng.standard_normal(64).astype(dtype)
        grad = rng.standard_normal(64).astype(dtype)
        grad[0] = 0
        p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
        v[1] = np.inf
        ops.adaptive_moments_update(p, grad, m, v, 1e-3, 1e-4, 0.9, 0.999, sq_scale, 1e-8)
        g = grad.astype(np.float64)
        v_ref = 0.001 * g * g
        v_ref[1] = np.inf
        denom = scale * np.sqrt(v_ref) + 1e-8 if scale else np.full_like(g, 1e-8)
        assert not np.isnan(p).any(), sq_scale
        np.testing.assert_allclose(p - p0, -(1e-4 * g + 1e-3 * 0.1 * g) / denom, rtol=1e-3,
                                   atol=1e-5, err_msg=str(sq_scale))


@pytest.mark.parametrize("weight_decay,maximize", [(0.0, False), (0.01, True)])
def test_adadelta_update_matches_torch(backend, dtype, rng, weight_decay, maximize):
    """40000 values: the compiled backends' parallel path; the reference backend's step
    too."""
    p = rng.standard_normal(40000).astype(dtype)
    pt = t(p, True)
    opt = torch.optim.Adadelta([pt], lr=0.5, rho=0.8, eps=1e-5, weight_decay=weight_decay,
                               maximize=maximize, foreach=False)
    square_avg, acc_delta = np.zeros_like(p), np.zeros_like(p)
    for _ in range(5):
        grad = rng.standard_normal(p.shape).astype(dtype)
        args = (grad, square_avg, acc_delta, 0.5, 0.8, 1e-5, weight_decay, maximize)
        _, expected, _ = run_reference("adadelta_update", p, *args)
        ops.adadelta_update(p, *args)
        for got, want in zip((p, square_avg, acc_delta), expected[:1] + expected[2:4]):
            assert_close(got, want, dtype)
        pt.grad = t(grad)
        opt.step()
    assert_close(p, pt.detach().numpy(), dtype)
    assert_close(square_avg, opt.state[pt]["square_avg"].numpy(), dtype)
    assert_close(acc_delta, opt.state[pt]["acc_delta"].numpy(), dtype)


@pytest.mark.parametrize("maximize", [False, True])
def test_rprop_update_matches_torch(backend, dtype, rng, maximize):
    """Sign changes and both clamps (step sizes in [0.004, 0.05] from 0.01, etas 0.3 and
    1.6), zero gradients, and NaN and inf ones as torch's: torch.sign(NaN) is 0, so a
    NaN gradient moves neither its parameter nor its step size (prev keeps it for a
    step), an infinite one steps by -sign(g) * step_size. 40000 values; the reference
    backend's step too."""
    p = rng.standard_normal(40000).astype(dtype)
    pt = t(p, True)
    opt = torch.optim.Rprop([pt], lr=0.01, etas=(0.3, 1.6), step_sizes=(0.004, 0.05),
                            maximize=maximize, foreach=False)
    prev, size = np.zeros_like(p), np.full_like(p, 0.01)
    for step in range(6):
        grad = rng.standard_normal(p.shape).astype(dtype)
        grad[:100] = 0
        if step == 3:
            grad[100:103] = [np.nan, np.inf, -np.inf]
        args = (grad, prev, size, 0.3, 1.6, 0.004, 0.05, maximize)
        with np.errstate(invalid="ignore"):
            _, expected, _ = run_reference("rprop_update", p, *args)
            ops.rprop_update(p, *args)
        for got, want in zip((p, prev, size), expected[:1] + expected[2:4]):
            assert_close(got, want, dtype)
        pt.grad = t(grad)
        opt.step()
        if step == 3:
            assert np.isnan(prev[100]) and np.isinf(prev[101])
    assert np.isfinite(p).all() and np.isfinite(size).all()
    assert_close(p, pt.detach().numpy(), dtype)
    assert_close(prev, opt.state[pt]["prev"].numpy(), dtype)
    assert_close(size, opt.state[pt]["step_size"].numpy(), dtype)
    finite = np.isfinite(size)
    assert size[finite].min() == dtype.type(0.004) and size[finite].max() == dtype.type(0.05)


@pytest.mark.parametrize("weight_decay,maximize", [(0.0, False), (0.01, True)])
def test_asgd_update_is_torch_asgd(backend, dtype, rng, weight_decay, maximize):
    """The op at the eta and mu of optim.ASGD.rates follows torch.optim.ASGD (float64
    scalars, as fastnn's): t0 2, so ax is a copy of p for four steps, then an average.
    40000 values; the reference backend's step too."""
    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        p = rng.standard_normal(40000).astype(dtype)
        pt = t(p, True)
        opt = torch.optim.ASGD([pt], lr=0.05, lambd=1e-2, alpha=0.75, t0=2,
                               weight_decay=weight_decay, maximize=maximize, foreach=False)
        ax, eta, mu = np.zeros_like(p), 0.05, 1.0
        for step in range(1, 8):
            grad = rng.standard_normal(p.shape).astype(dtype)
            args = (grad, ax, eta, mu, 1e-2, weight_decay, maximize)
            _, expected, _ = run_reference("asgd_update", p, *args)
            ops.asgd_update(p, *args)
            assert_close(p, expected[0], dtype)
            assert_close(ax, expected[2], dtype)
            eta, mu = optim.ASGD.rates(0.05, 1e-2, 0.75, 2, step)
            pt.grad = t(grad)
            opt.step()
        assert mu == 0.2 and not np.array_equal(ax, p)
        assert eta == opt.state[pt]["eta"].item() and mu == opt.state[pt]["mu"].item()
        assert_close(p, pt.detach().numpy(), dtype)
        assert_close(ax, opt.state[pt]["ax"].numpy(), dtype)
    finally:
        torch.set_default_dtype(saved)


# ------------------------------------------------------------------- bad input
BAD_CALLS = [
    (lambda: ops.linear_forward(np.ones((2, 3), np.float32), np.ones((4, 5), np.float32)),
     ValueError, "linear_forward.*3 features"),
    (lambda: ops.linear_forward(np.ones((2, 3), np.float32), np.ones((4, 3), np.float64)),
     TypeError, "linear_forward.*dtype mismatch"),
    (lambda: ops.relu(np.ones(3, np.int32)), TypeError, "relu.*float32 or float64.*int32"),
    (lambda: ops.relu([1.0, 2.0]), TypeError, "relu.*numpy.ndarray"),
    (lambda: ops.softmax_cross_entropy(np.ones((2, 3), np.float32), np.array([0, 3])),
     ValueError, "labels out of range"),
    (lambda: ops.softmax_cross_entropy(np.ones((2, 3), np.float32), np.array([0, -1])),
     ValueError, "labels out of range"),
    (lambda: ops.batchnorm_forward(np.ones((1, 3), np.float32), np.ones(3, np.float32),
                                   np.zeros(3, np.float32), np.zeros(3, np.float32),
                                   np.ones(3, np.float32)),
     ValueError, "more than one value per channel"),
    (lambda: ops.sgd_update(np.ones(3), np.ones(3), None, lr=-0.1),
     ValueError, "sgd_update.*lr"),
    (lambda: ops.adamax_update(np.ones(3), np.ones(3), np.ones(3), np.ones(2), 1),
     ValueError, "adamax_update.*exp_inf"),
    (lambda: ops.adamax_update(np.ones(3), np.ones(3), np.ones(3), np.ones(3), 0),
     ValueError, "adamax_update: expected step to be an int in"),
    (lambda: ops.adaptive_moments_update(np.ones(3), np.ones(3), np.ones(3), np.ones(3), -1.0),
     ValueError, r"adaptive_moments_update: expected avg_rate in \[0.0, inf\)"),
    (lambda: ops.adadelta_update(np.ones(3), np.ones(3), np.ones(3), np.ones(3), rho=1.5),
     ValueError, r"adadelta_update: expected rho in \[0.0, 1.0\]"),
    (lambda: ops.adadelta_update(np.ones(3), np.ones(3), np.ones(3), np.ones(3), maximize=1),
     TypeError, "adadelta_update: expected maximize to be a bool"),
    (lambda: ops.rprop_update(np.ones(3), np.ones(3), np.ones(3), np.ones(3), etaminus=1.5),
     ValueError, r"rprop_update: expected etaminus in \(0.0, 1.0\)"),
    (lambda: (lambda a: ops.rprop_update(np.ones(3), np.ones(3), a, a))(np.ones(3)),
     ValueError, "rprop_update: prev shares memory with step_size"),
    (lambda: ops.asgd_update(np.ones(3), np.ones(3), np.ones(3), 0.1, 1.5),
     ValueError, r"asgd_update: expected mu in \[0.0, 1.0\]"),
    (lambda: ops.asgd_update(np.ones(3), np.ones(3), np.ones(4), 0.1, 1.0),
     ValueError, "asgd_update.*ax"),
    (lambda: ops.dropout_forward(np.ones(3), 1.5, 0), ValueError, "dropout_forward.*p"),
    (lambda: ops.mse_loss(np.ones(3), np.ones(4)), ValueError, "mse_loss.*shape"),
]


@pytest.mark.parametrize("call,error,match", BAD_CALLS)
def test_bad_input_raises_clear_error(backend, call, error, match):
    with pytest.raises(error, match=match):
        call()


def _overlapping_calls():
    x = np.arange(16.0).reshape(4, 4)
    img = np.arange(50.0).reshape(1, 2, 5, 5)
    labels = np.array([0, 3, 1, 2])
    return [
        ("linear_forward out=x", lambda: ops.linear_forward(x, np.eye(4), out=x)),
        ("linear_forward out=weight", lambda: (lambda w: ops.linear_forward(x, w, out=w))(
            np.eye(4))),
        ("linear_backward grad_in=grad_out", lambda: (lambda g: ops.linear_backward(
            g, x, np.eye(4), grad_in=g))(np.ones((4, 4)))),
        ("softmax_cross_entropy grad=logits", lambda: (lambda lg: ops.softmax_cross_entropy(
            lg, labels, grad=lg))(x.copy())),
        ("max_pool2d_forward out=x", lambda: (lambda a: ops.max_pool2d_forward(
            a, 3, 1, 1, out=a))(img.copy())),
        ("avg_pool2d_forward out=x", lambda: (lambda a: ops.avg_pool2d_forward(
            a, 3, 1, 1, out=a))(img.copy())),
        ("dropout_forward mask=x", lambda: (lambda a: ops.dropout_forward(
            a, 0.5, 1, mask=a))(x.copy())),
        ("sgd_update velocity=grad", lambda: (lambda g: ops.sgd_update(
            x.copy(), g, g, 0.1, 0.9))(np.ones((4, 4)))),
        ("relu out partly over x", lambda: (lambda a: ops.relu(a[:3], out=a[1:]))(
            np.ones((4, 4)))),
    ]


@pytest.mark.parametrize("case", range(9))
def test_overlapping_out_raises_and_in_place_elementwise_works(backend, case):
    """An out= array that shares memory with another argument is refused, as PyTorch
    refuses overlapping out= tensors (the compiled kernels gave silently wrong results);
    an elementwise op may still write over its own input."""
    label, call = _overlapping_calls()[case]
    with pytest.raises(ValueError, match="shares memory"):
        call()
    x = np.linspace(-2, 2, 12).reshape(3, 4)
    expected = ops.gelu(x)
    assert ops.gelu(x, out=x) is x
    np.testing.assert_array_equal(x, expected)


def test_empty_batches_run_through_layers_and_losses_give_nan(backend):
    """N = 0 (and no classes for softmax) as PyTorch: empty outputs and gradients, NaN
    for the mean of no losses (pooling backward and eval-mode BatchNorm raised reshape
    errors from inside the kernels)."""
    from fastnn import nn
    layers = [(nn.MaxPool2d(2), (0, 2, 4, 4)), (nn.AvgPool2d(2), (0, 2, 4, 4)),
              (nn.BatchNorm1d(3).eval(), (0, 3)), (nn.BatchNorm2d(3).eval(), (0, 3, 2, 2)),
              (nn.Softmax(), (3, 0)), (nn.LogSoftmax(), (3, 0)),
              (nn.Conv2d(2, 3, 3, padding=1), (0, 2, 5, 5)),
              (nn.Linear(4, 3), (0, 4))]
    for layer, shape in layers:
        y = layer(np.zeros(shape, np.float32))
        assert layer.backward(np.zeros(y.shape, np.float32)).shape == shape, layer
    losses = [ops.softmax_cross_entropy(np.zeros((0, 3)), np.zeros(0, np.int64)),
              ops.mse_loss(np.zeros((0, 2)), np.zeros((0, 2))),
              ops.bce_loss(np.zeros(0), np.zeros(0)),
              ops.bce_with_logits_loss(np.zeros(0), np.zeros(0)),
              ops.smooth_l1_loss(np.zeros(0), np.zeros(0))]
    for loss, grad in losses:
        assert np.isnan(loss) and grad.size == 0


def test_unknown_backend_name():
    with pytest.raises(ValueError, match="unknown backend 'tensorflow'"):
        fastnn.set_backend("tensorflow")
    with pytest.raises(ValueError, match="unknown backend"):
        with fastnn.use_backend("nope"):
            pass


def test_failed_update_leaves_parameters_unchanged(backend):
    p = np.ones(4)
    v = np.zeros(4)
    with pytest.raises(ValueError):
        ops.sgd_update(p, np.ones(4), v, lr=0.1, momentum=-0.5)
    np.testing.assert_array_equal(p, 1.0)
    np.testing.assert_array_equal(v, 0.0)


def test_non_contiguous_inputs(backend, dtype, rng):
    x = rng.standard_normal((20, 10)).astype(dtype)
    assert_close(ops.tanh(x.T), np.tanh(x.T), dtype)
    w = rng.standard_normal((10, 5)).astype(dtype)
    assert_close(ops.linear_forward(x, w.T), x @ w, dtype)
