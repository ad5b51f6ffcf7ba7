"""fastnn.ops as a NumPy user calls it, against PyTorch 2.13 and the reference backend, at
what a randomized probe of every op found wrong: strided optimizer gradients, read-only
out= buffers, empty training batches in BatchNorm, index dtypes, float64 cross-entropy
with huge logits, ReLU's and Hardsigmoid's backward selections, numba's Hardswish;
plus the layouts, dtypes, out= rules and thread counts every op keeps."""
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import ops

torch = pytest.importorskip("torch")
TF = torch.nn.functional

BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.backends()]
DTYPES = [np.float32, np.float64]

# elementwise op -> (torch function, parameters, backward takes the output y)
ELEMENTWISE = {
    "relu": (TF.relu, {}, True),
    "leaky_relu": (lambda x, negative_slope: TF.leaky_relu(x, negative_slope),
                   {"negative_slope": 0.2}, False),
    "sigmoid": (torch.sigmoid, {}, True),
    "tanh": (torch.tanh, {}, True),
    "gelu": (TF.gelu, {}, False),
    "gelu_tanh": (lambda x: TF.gelu(x, approximate="tanh"), {}, False),
    "silu": (TF.silu, {}, False),
    "mish": (TF.mish, {}, False),
    "elu": (lambda x, alpha: TF.elu(x, alpha), {"alpha": 0.7}, False),
    "softplus": (lambda x, beta, threshold: TF.softplus(x, beta, threshold),
                 {"beta": 2.0, "threshold": 5.0}, False),
    # PyTorch's float64 gradient multiplies by a float32 1/6; fastnn keeps the exact one
    "hardsigmoid": (lambda x: torch.clamp(x + 3, 0, 6) / 6, {}, False),
    "hardswish": (TF.hardswish, {}, False),
    "softsign": (TF.softsign, {}, False),
    "hardtanh": (lambda x, min_val, max_val: TF.hardtanh(x, min_val, max_val),
                 {"min_val": -0.5, "max_val": 2.0}, False),
}


def _tol(dtype):
    return {"rtol": 2e-5, "atol": 2e-6} if dtype == np.float32 else {"rtol": 1e-11,
                                                                    "atol": 1e-12}


def _strided(a, how):
    """A view with a's values in another memory layout."""
    if how == "step":
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    if how == "fortran":
        return np.asfortranarray(a)
    return np.flip(np.flip(a, 0).copy(), 0)  # negative strides


# ------------------------------------------------------------- elementwise sweep
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_ops_match_torch_in_any_layout(backend, dtype, name):
    tf, params, from_y = ELEMENTWISE[name]
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((6, 3, 5)) * 3).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty = tf(tx, **params)
    ty.backward(torch.from_numpy(g))
    with fastnn.use_backend(backend):
        y = getattr(ops, name)(x, **params)
        saved = y if from_y else x
        grad = getattr(ops, name + "_backward")(g, saved, **params)
        np.testing.assert_allclose(y, ty.detach().numpy(), **_tol(dtype))
        np.testing.assert_allclose(grad, tx.grad.numpy(), **_tol(dtype))
        assert y.dtype == dtype and grad.dtype == dtype
        for how in ("step", "fortran", "negative"):
            xs, gs = _strided(x, how), _strided(g, how)
            np.testing.assert_array_equal(getattr(ops, name)(xs, **params), y)
            ss = _strided(saved, how)
            np.testing.assert_array_equal(getattr(ops, name + "_backward")(gs, ss, **params),
                                          grad)
            np.testing.assert_array_equal(xs, x)  # inputs are never written
        # 0-d in, 0-d out; an empty batch runs
        assert getattr(ops, name)(x.reshape(-1)[:1].reshape(()), **params).shape == ()
        assert getattr(ops, name)(x[:0], **params).shape == (0, 3, 5)
        # in place over the input is allowed and gives the same values
        inplace = x.copy()
        assert getattr(ops, name)(inplace, out=inplace, **params) is inplace
        np.testing.assert_array_equal(inplace, y)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad, error", [
    (np.ones((2, 3), np.int64), TypeError), (np.ones((2, 3), bool), TypeError),
    (np.ones((2, 3), np.float16), TypeError), ([[1.0, 2.0]], TypeError),
])
def test_non_float_inputs_are_refused_with_the_op_name(backend, bad, error):
    with fastnn.use_backend(backend):
        with pytest.raises(error, match="relu"):
            ops.relu(bad)
        with pytest.raises(error, match="mse_loss"):
            ops.mse_loss(bad, np.ones((2, 3), np.float32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_buffers_wrong_dtype_shape_layout_or_overlapping_are_refused(backend):
    x = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
    w = np.ones((3, 6), np.float32)
    with fastnn.use_backend(backend):
        with pytest.raises(TypeError, match="linear_forward"):
            ops.linear_forward(x, w, out=np.empty((4, 3), np.float64))
        with pytest.raises(ValueError, match="linear_forward"):
            ops.linear_forward(x, w, out=np.empty((4, 4), np.float32))
        with pytest.raises(ValueError, match="C-contiguous"):
            ops.linear_forward(x, w, out=np.empty((4, 6), np.float32)[:, ::2])
        block = np.zeros((5, 6), np.float32)
        block[1:] = x
        with pytest.raises(ValueError, match="shares memory"):  # partly over its input
            ops.relu(block[1:], out=block[:-1])
        with pytest.raises(ValueError, match="shares memory"):
            ops.softmax_cross_entropy(x, np.zeros(4, np.int64), grad=x)


# ----------------------------------------------------------------- read-only arrays
@pytest.mark.parametrize("backend", BACKENDS)
def test_read_only_written_arrays_are_clear_errors_and_read_only_inputs_work(backend):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    w = rng.standard_normal((3, 6)).astype(np.float32)
    frozen = np.empty((4, 3), np.float32)
    frozen.setflags(write=False)
    param = np.ones(5, np.float32)
    param.setflags(write=False)
    with fastnn.use_backend(backend):
        with pytest.raises(ValueError, match="linear_forward: expected out to be writeable"):
            ops.linear_forward(x, w, out=frozen)
        with pytest.raises(ValueError, match="sgd_update: param .* writeable"):
            ops.sgd_update(param, np.ones(5, np.float32), None, 0.1)
        rm = np.zeros(6, np.float32)
        rm.setflags(write=False)
        with pytest.raises(ValueError, match="batchnorm_forward: expected running_mean"):
            ops.batchnorm_forward(x, np.ones(6, np.float32), np.zeros(6, np.float32), rm,
                                  np.ones(6, np.float32))
        x.setflags(write=False)
        w.setflags(write=False)
        y = ops.linear_forward(x, w, activation="relu")
        np.testing.assert_allclose(y, np.maximum(x @ w.T, 0), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------- optimizers
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_optimizer_updates_take_a_strided_grad(backend, dtype):
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal((5, 4)).astype(dtype)
    grad = rng.standard_normal((5, 4)).astype(dtype)
    with fastnn.use_backend(backend):
        results = []
        for g in (grad, np.asfortranarray(grad), _strided(grad, "step"), grad.T.copy().T):
            p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
            ops.adam_update(p, g, m, v, 1, lr=0.01)
            vel = np.zeros_like(p0)
            ops.sgd_update(p, g, vel, 0.1, momentum=0.9)
            results.append(p)
            np.testing.assert_array_equal(g, grad)
        for r in results[1:]:
            np.testing.assert_array_equal(r, results[0])
        with pytest.raises(ValueError, match="sgd_update: param is updated in place"):
            ops.sgd_update(np.asfortranarray(p0.copy()), grad, None, 0.1)
        with pytest.raises(ValueError, match="adam_update: expected exp_avg to be C-contig"):
            ops.adam_update(p0.copy(), grad, np.asfortranarray(np.zeros_like(p0)),
                            np.zeros_like(p0), 1)
        with pytest.raises(ValueError, match=r"sgd_update: expected grad of shape \(5, 4\)"):
            ops.sgd_update(p0.copy(), grad[:, :3], None, 0.1)


# ----------------------------------------------------------------------- batchnorm
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(0, 3), (0, 3, 4, 5), (2, 3, 0, 5)])
def test_batchnorm_training_on_an_empty_batch_is_pytorchs(backend, shape):
    x = np.zeros(shape, np.float32)
    rm, rv = np.full(3, 5.0, np.float32), np.full(3, 2.0, np.float32)
    weight, bias = np.ones(3, np.float32), np.zeros(3, np.float32)
    t_rm, t_rv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
    ty = TF.batch_norm(torch.from_numpy(x), t_rm, t_rv, torch.from_numpy(weight),
                       torch.from_numpy(bias), True, 0.1, 1e-5)
    with fastnn.use_backend(backend), warnings.catch_warnings():
        warnings.simplefilter("error")
        y, save_mean, save_invstd = ops.batchnorm_forward(x, weight, bias, rm, rv)
        assert y.shape == tuple(ty.shape) and y.dtype == np.float32
        np.testing.assert_array_equal(rm, t_rm.numpy())  # running statistics untouched
        np.testing.assert_array_equal(rv, t_rv.numpy())
        gw, gb = np.ones(3, np.float32), np.ones(3, np.float32)
        grad_in = ops.batchnorm_backward(x, x, weight, save_mean, save_invstd,
                                         grad_weight=gw, grad_bias=gb)
        assert grad_in.shape == shape
        np.testing.assert_array_equal(gw, 1)  # nothing accumulated
        np.testing.assert_array_equal(gb, 1)
        with pytest.raises(ValueError, match="more than one value per channel"):
            ops.batchnorm_forward(np.zeros((1, 3), np.float32), weight, bias, rm, rv)


# ------------------------------------------------------------- pooling and labels
@pytest.mark.parametrize("backend", BACKENDS)
def test_pooling_indices_dtype_is_a_type_error_and_shape_a_value_error(backend):
    x = np.random.default_rng(4).standard_normal((2, 3, 6, 6)).astype(np.float32)
    with fastnn.use_backend(backend):
        y, idx = ops.max_pool2d_forward(x, 2, 2)
        with pytest.raises(TypeError, match="max_pool2d_backward: expected indices"):
            ops.max_pool2d_backward(y, idx.astype(np.int32), x.shape)
        with pytest.raises(TypeError, match="max_pool2d_backward: expected indices"):
            ops.max_pool2d_backward(y, idx.tolist(), x.shape)
        with pytest.raises(ValueError, match=r"expected indices of shape \(2, 3, 3, 3\)"):
            ops.max_pool2d_backward(y, idx[:1], x.shape)
        with pytest.raises(TypeError, match="max_pool2d_forward"):
            ops.max_pool2d_forward(x, 2, 2, indices=np.empty(y.shape, np.float32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_entropy_targets_of_other_ranks_and_label_dtypes(backend):
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((6, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 6)
    with fastnn.use_backend(backend):
        loss, grad = ops.softmax_cross_entropy(logits, labels)
        for dt in (np.int32, np.uint8):
            other, other_grad = ops.softmax_cross_entropy(logits, labels.astype(dt))
            assert other == loss
            np.testing.assert_array_equal(other_grad, grad)
        with pytest.raises(ValueError, match=r"target of shape \(6,\).*got \(1, 6, 4\)"):
            ops.softmax_cross_entropy(logits, np.ones((1, 6, 4), np.float32))
        with pytest.raises(TypeError, match="integer class labels"):
            ops.softmax_cross_entropy(logits, labels.astype(np.float32))
        with pytest.raises(ValueError, match="labels out of range"):
            ops.softmax_cross_entropy(logits, np.array([0, 1, 2, 3, 4, 0]))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("big", [1e8, 1e16, 1e30])
def test_float64_cross_entropy_with_huge_logits_keeps_every_row(backend, big):
    # fastmath/-fassociative-math folded x_label - max into the running sum as
    # (sum + x_label) - max, which lost the other rows' losses where |max| is large
    rng = np.random.default_rng(6)
    logits = rng.standard_normal((8, 4))
    labels = rng.integers(0, 4, 8)
    for i in (1, 3, 5):
        logits[i, labels[i]] = big
    tx = torch.from_numpy(logits.copy()).requires_grad_()
    want = TF.cross_entropy(tx, torch.from_numpy(labels))
    want.backward()
    with fastnn.use_backend(backend):
        loss, grad = ops.softmax_cross_entropy(logits, labels)
    assert loss == pytest.approx(want.item(), rel=1e-13)
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-12, atol=1e-15)


# ------------------------------------------------------- selections as PyTorch's
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_backward_selects_as_pytorch_also_fused_in_linear(backend, dtype):
    # threshold_backward: y <= 0 gives 0 whatever grad_out is; a NaN y passes grad_out
    x = np.array([[1.0, 2.0], [3.0, -1.0]], dtype)
    weight = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], dtype)
    y = np.array([[np.nan, 0.0, 1.0], [0.0, 2.0, np.nan]], dtype)
    g = np.array([[1.0, np.inf, 1.0], [np.nan, 1.0, 2.0]], dtype)
    want = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 2.0]], dtype)
    with fastnn.use_backend(backend), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        np.testing.assert_array_equal(ops.relu_backward(g, y), want)
        gw, gb = np.zeros_like(weight), np.zeros(3, dtype)
        grad_in = ops.linear_backward(g, x, weight, y, "relu", grad_weight=gw, grad_bias=gb)
    np.testing.assert_array_equal(gb, want.sum(0))
    np.testing.assert_array_equal(gw, want.T @ x)
    np.testing.assert_array_equal(grad_in, want @ weight)
    tx = torch.tensor([np.nan, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    TF.relu(tx).backward(torch.tensor([0.75, np.inf, 0.5], dtype=torch.float64))
    np.testing.assert_array_equal(tx.grad.numpy(), [0.75, 0.0, 0.5])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_hardsigmoid_backward_selects_zero_outside_as_pytorch(backend, dtype):
    # PyTorch selects 0 outside (-3, 3), so an infinite grad_out there gives 0, not NaN.
    # Inside, float64 keeps the exact 1/6 (PyTorch's multiplies by a float32 1/6, 3e-8
    # off; tests/test_conformance.py pins the exact one)
    x = np.array([-4.0, -3.0, -2.9999, -1.0, 0.0, 1.2345678, 2.5, 3.0, 100.0, np.nan], dtype)
    g = np.array([1.0, np.inf, 1.2345678, -0.3, 7.0, 1e30, 0.1, np.nan, np.inf, 1.0], dtype)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    TF.hardsigmoid(tx).backward(torch.from_numpy(g.copy()))
    inside = (x > -3) & (x < 3)
    with fastnn.use_backend(backend):
        got = ops.hardsigmoid_backward(g, x)
    np.testing.assert_array_equal(got[~inside], 0)
    np.testing.assert_array_equal(got[inside], g[inside] * dtype(1 / 6))
    np.testing.assert_allclose(got, tx.grad.numpy(), rtol=1e-7, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_hardswish_is_pytorchs_bit_for_bit_at_any_thread_count(backend, dtype):
    # numba computed v t * (1/6): 1 ulp off PyTorch's v t / 6 for a third of the inputs
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.uniform(-5, 5, 40000), rng.uniform(3, 1e6, 100)]).astype(dtype)
    want = TF.hardswish(torch.from_numpy(x)).numpy()
    before = fastnn.get_num_threads()
    try:
        with fastnn.use_backend(backend):
            for threads in (1, 2):
                fastnn.set_num_threads(threads)
                np.testing.assert_array_equal(ops.hardswish(x), want)
                np.testing.assert_array_equal(ops.hardswish(x[:1000]), want[:1000])
    finally:
        fastnn.set_num_threads(before)


# ----------------------------------------------------------------- thread counts
@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_parallel_sizes_give_the_same_bits_for_one_and_two_threads(backend):
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((4096, 12)) * 3).astype(np.float32)
    labels = rng.integers(0, 12, 4096)
    target = rng.standard_normal(x.shape).astype(np.float32)
    before = fastnn.get_num_threads()
    runs = []
    try:
        with fastnn.use_backend(backend):
            for threads in (1, 2):
                fastnn.set_num_threads(threads)
                runs.append([ops.gelu(x), ops.softmax(x), ops.log_softmax(x),
                             *ops.softmax_cross_entropy(x, labels)[1:],
                             ops.softmax_cross_entropy(x, labels)[0],
                             *ops.mse_loss(x, target), *ops.smooth_l1_loss(x, target),
                             ops.dropout_forward(x, 0.3, 11)[1]])
    finally:
        fastnn.set_num_threads(before)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------- a second probe of fastnn.ops (Dec 2026)
REQUIRED_STATE = {
    "adam_update": lambda p, g, s: ops.adam_update(p, g, s, None, 1),
    "adamax_update": lambda p, g, s: ops.adamax_update(p, g, None, s, 1),
    "adaptive_moments_update": lambda p, g, s: ops.adaptive_moments_update(p, g, s, None, 0.1),
    "rmsprop_update": lambda p, g, s: ops.rmsprop_update(p, g, None),
    "adagrad_update": lambda p, g, s: ops.adagrad_update(p, g, None),
    "adadelta_update": lambda p, g, s: ops.adadelta_update(p, g, s, None),
    "rprop_update": lambda p, g, s: ops.rprop_update(p, g, None, s),
    "asgd_update": lambda p, g, s: ops.asgd_update(p, g, None, 0.1, 1.0),
}


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("op", list(REQUIRED_STATE))
def test_a_missing_optimizer_state_buffer_is_a_clear_error_and_changes_nothing(backend_name,
                                                                              op):
    p, g, s = np.ones(5, np.float32), np.ones(5, np.float32), np.zeros(5, np.float32)
    with fastnn.use_backend(backend_name):
        with pytest.raises(ValueError, match=f"{op}: .* is required"):
            REQUIRED_STATE[op](p, g, s)
    assert np.all(p == 1) and np.all(s == 0)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_centered_rmsprop_with_an_overflowing_square_as_torch(backend_name):
    """square_avg overflows to inf and so would grad_avg**2: the variance stays inf (as a
    fused multiply-add computes it), so the step is 0, not NaN, on every backend."""
    grad = np.array([1e30, 1.0], np.float32)
    tp = torch.ones(2, requires_grad=True)
    opt = torch.optim.RMSprop([tp], lr=0.01, centered=True)
    tp.grad = torch.from_numpy(grad.copy())
    opt.step()
    p, sq, ga = np.ones(2, np.float32), np.zeros(2, np.float32), np.zeros(2, np.float32)
    with fastnn.use_backend(backend_name):
        ops.rmsprop_update(p, grad, sq, 0.01, grad_avg=ga)
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-6)
    assert p[0] == 1


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_step_and_seed_ranges_are_checked(backend_name):
    p, g = np.ones(3, np.float32), np.ones(3, np.float32)
    m, v = np.zeros(3, np.float32), np.zeros(3, np.float32)
    x = np.ones(64, np.float32)
    with fastnn.use_backend(backend_name):
        ops.adam_update(p, g, m, v, 2 ** 63 - 1)  # the largest step count: runs
        for op in (ops.adam_update, ops.adamax_update):
            with pytest.raises(ValueError, match=r"step to be an int in \[1, 2\*\*63 - 1\]"):
                op(p, g, m, v, 2 ** 63)
        ops.dropout_forward(x, 0.5, 2 ** 64 - 1)
        with pytest.raises(ValueError, match=r"seed in \[0, 2\*\*64\)"):
            ops.dropout_forward(x, 0.5, 2 ** 64)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_ints_past_the_kernels_number_types_are_refused_before_anything_is_written(
        backend_name):
    """An int hyper-parameter no float holds passed as 'finite': the kernels' conversion
    raised OverflowError, the numpy backend's after writing velocity, the Adam moments or
    the running statistics; a stride past int64 was a numba TypingError."""
    p, g, vel = np.ones(3), np.ones(3), np.full(3, 0.5)
    m, v = np.full(3, 0.5), np.full(3, 0.5)
    x = np.random.default_rng(0).standard_normal((4, 3))
    rm, rv = np.zeros(3), np.ones(3)
    img, w = np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3))
    huge = 10 ** 400
    with fastnn.use_backend(backend_name):
        for call, name in ((lambda: ops.sgd_update(p, g, vel, huge, momentum=0.9), "lr"),
                           (lambda: ops.adam_update(p, g, m, v, 1, lr=huge), "lr"),
                           (lambda: ops.batchnorm_forward(x, np.ones(3), np.zeros(3), rm, rv,
                                                          eps=huge), "eps"),
                           (lambda: ops.hardtanh(x, -huge, 1.0), "min_val")):
            with pytest.raises(ValueError, match=f"expected {name} to be a number a float "
                                                 f"can hold"):
                call()
        for call in (lambda: ops.conv2d_forward(img, w, stride=2 ** 70),
                     lambda: ops.max_pool2d_forward(img, 2, (1, 2 ** 63)),
                     lambda: ops.avg_pool2d_backward(np.ones((1, 2, 1, 1)), img.shape, 2,
                                                     2 ** 70)):
            with pytest.raises(ValueError, match="expected stride to be ints within int64"):
                call()
    assert np.all(p == 1) and np.all(vel == 0.5) and np.all(m == 0.5) and np.all(v == 0.5)
    assert np.all(rm == 0) and np.all(rv == 1)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_flags_take_bools_only_as_torch(backend_name):
    """A string flag ('eval', 'no') was read as True; NumPy bools are bools."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    w, b = np.ones(3, np.float32), np.zeros(3, np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    lw = rng.standard_normal((2, 3)).astype(np.float32)
    g = np.ones((4, 2), np.float32)
    img = rng.standard_normal((1, 1, 4, 4)).astype(np.float32)
    cw = rng.standard_normal((1, 1, 3, 3)).astype(np.float32)
    calls = {
        "training": lambda v: ops.batchnorm_forward(x, w, b, rm, rv, training=v),
        "mean_only": lambda v: ops.batchnorm_forward(x, None, b, rm, None, mean_only=v),
        "need_grad_in": lambda v: ops.linear_backward(g, x, lw, need_grad_in=v),
        "accumulate": lambda v: ops.linear_backward(g, x, lw, accumulate=v),
        "ceil_mode": lambda v: ops.max_pool2d_forward(img, (2, 2), (2, 2), ceil_mode=v),
        "count_include_pad": lambda v: ops.avg_pool2d_forward(img, (2, 2), (2, 2), (1, 1),
                                                              count_include_pad=v),
        "nesterov": lambda v: ops.sgd_update(np.ones(3), np.ones(3), np.zeros(3), 0.1,
                                             momentum=0.9, nesterov=v),
    }
    with fastnn.use_backend(backend_name):
        for name, call in calls.items():
            for bad in ("eval", 1, None):
                with pytest.raises(TypeError, match=f"expected {name} to be a bool"):
                    call(bad)
            call(np.bool_(name == "mean_only"))  # (mean_only False needs a weight)
        conv_g = np.ones((1, 1, 2, 2), np.float32)
        with pytest.raises(TypeError, match="expected need_grad_in to be a bool"):
            ops.conv2d_backward(conv_g, img, cw, need_grad_in="no")
        assert ops.conv2d_backward(conv_g, img, cw, need_grad_in=np.bool_(False)) is None


def test_integer_two_dimensional_targets_are_refused_as_labels():
    # PyTorch: "multi-target not supported" for (N, 1) labels; probabilities are floats
    logits = np.zeros((4, 3), np.float32)
    for target in (np.zeros((4, 1), np.int64), np.zeros((4, 3), np.int32)):
        with pytest.raises(ValueError, match=r"got integer labels of shape \(4, \d\)"):
            fastnn.ops.softmax_cross_entropy(logits, target)
