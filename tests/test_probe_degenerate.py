"""Every op of the table (linear_* aside) on the numba and cython backends at degenerate and
boundary shapes, against the NumPy reference backend: a dimension of 0, a batch, row or
tensor of one, sizes around the parallel threshold (32768 elements), the row-chunk
boundaries (chunks of 32 rows, at most 32 chunks) and the kernels' block sizes, at 1 and
2 threads, in float32 and float64. Each case checks outputs, gradients, the
accumulated parameter gradients (pre-filled), running statistics, that out= buffers are
what comes back and that inputs are left alone.

What it found: a softmax-cross-entropy over rows of no class gave 0.0 on numpy and cython
but NaN on numba (PyTorch: NaN); the reference backend raised ZeroDivisionError for an
eval-mode BatchNorm with no channel and a reshape error for a conv2d with no output
channel, which numba and cython run; cython's layer_norm_forward leaves save_mean and
save_invstd unwritten for rows of no value. All four are fixed.
"""
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import ops
from fastnn.nn import functional as F

COMPILED = [b for b in ("numba", "cython") if b in fastnn.backends()]
ALL = ["numpy"] + COMPILED
DTYPES = [np.float32, np.float64]
DT_IDS = ["float32", "float64"]


@pytest.fixture(autouse=True)
def _restore_threads():
    before = fastnn.get_num_threads()
    yield
    fastnn.set_num_threads(before)


def _tol(dtype):
    return {"rtol": 2e-4, "atol": 2e-5} if dtype == np.float32 else {"rtol": 1e-9, "atol": 1e-11}


def _check(got, ref, dtype, what):
    """got equals ref: arrays in shape, dtype and value (NaN equal to NaN), numbers within
    tolerance, anything else (flags, None) exactly."""
    if isinstance(ref, np.ndarray):
        assert isinstance(got, np.ndarray), what
        assert (got.shape, got.dtype) == (ref.shape, ref.dtype), what
        close = np.allclose if ref.dtype.kind == "f" else np.array_equal
        kw = {**_tol(dtype), "equal_nan": True} if ref.dtype.kind == "f" else {}
        if not close(got, ref, **kw):  # (assert_allclose only for its message: it is slow)
            np.testing.assert_allclose(got, ref, err_msg=what, **kw)
    elif isinstance(ref, float):
        assert isinstance(got, float), what
        np.testing.assert_allclose(got, ref, err_msg=what, equal_nan=True, **_tol(dtype))
    else:
        assert got == ref, what


_REFERENCE = {}  # (case name, *args) -> the reference backend's results


def _sweep(backend, dtype, case, arg_lists):
    """case(*args), a dict of results, for each args of arg_lists on the reference backend
    (once per args) and on backend: equal. Backend runs at 2 threads, and at 1 where the
    input (args' first tuple, its shape) has 1024 elements or more: a kernel's work can be
    a multiple of its input's size, and below every thread count runs the serial loops."""
    for n_threads in (2, 1):
        fastnn.set_num_threads(n_threads)  # (once per sweep: it costs ~2 ms)
        for args in arg_lists:
            if n_threads == 1 and np.prod(next(a for a in args if isinstance(a, tuple))) < 1024:
                continue
            key = (case.__name__,) + tuple(args)
            if key not in _REFERENCE:
                with fastnn.use_backend("numpy"):
                    _REFERENCE[key] = case(*args)
            with fastnn.use_backend(backend):
                got = case(*args)
            for name, ref in _REFERENCE[key].items():
                _check(got[name], ref, dtype,
                       f"{backend} {n_threads} threads {case.__name__}{args[:-1]} {name}")


def _normal(shape, dtype, seed=0, scale=1.0, shift=0.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale + shift).astype(dtype)


# ------------------------------------------------------------------- activations
# op -> (parameters, backward takes the output y instead of x)
ACTIVATIONS = {
    "relu": ({}, True), "leaky_relu": ({"negative_slope": 0.2}, False),
    "sigmoid": ({}, True), "tanh": ({}, True), "gelu": ({}, False), "gelu_tanh": ({}, False),
    "mish": ({}, False), "sine": ({"omega": 1.5}, False), "silu": ({}, False),
    "elu": ({"alpha": 0.7}, False), "softplus": ({"beta": 2.0, "threshold": 5.0}, False),
    "hardsigmoid": ({}, False), "hardswish": ({}, False), "softsign": ({}, False),
    "hardtanh": ({"min_val": -0.5, "max_val": 2.0}, False),
    "softmax": ({}, True), "log_softmax": ({}, True),
}
ELEMENTWISE_SHAPES = [(0,), (1,), (5, 0), (3, 0, 4), (32767,), (32768,)]
ROW_SHAPES = [(0, 5), (5, 0), (1, 1), (7, 1), (31, 5), (33, 5), (1025, 3), (1, 32769),
              (32769, 1)]


def _activation(name, shape, dtype):
    """Forward and backward, allocated and into out= (in place over the input too)."""
    params, from_y = ACTIVATIONS[name]
    x, g = _normal(shape, dtype, 1, 3.0), _normal(shape, dtype, 2)
    x0, g0 = x.copy(), g.copy()
    y = getattr(ops, name)(x, **params)
    out = np.full(shape, 7, dtype)
    y_out = getattr(ops, name)(x, out=out, **params)
    saved = y if from_y else x
    saved0 = saved.copy()
    grad = getattr(ops, name + "_backward")(g, saved, **params)
    g_in_place = g.copy()
    grad_out = getattr(ops, name + "_backward")(g_in_place, saved, out=g_in_place, **params)
    x_in_place = x.copy()
    y_in_place = getattr(ops, name)(x_in_place, out=x_in_place, **params)
    return {"y": y, "y_out": y_out, "grad": grad, "grad_out": grad_out,
            "y_in_place": y_in_place,
            "identity": (y_out is out, grad_out is g_in_place, y_in_place is x_in_place),
            "unmodified": (np.array_equal(x, x0), np.array_equal(g, g0),
                           np.array_equal(saved, saved0))}


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("backend", COMPILED)
def test_activations_at_degenerate_and_threshold_shapes(backend, dtype):
    _sweep(backend, dtype, _activation, [
        (name, shape, dtype) for name in ACTIVATIONS
        for shape in (ROW_SHAPES if name in ("softmax", "log_softmax") else ELEMENTWISE_SHAPES)])


# ------------------------------------------------------------------------ losses
FLAT_LOSSES = {"mse_loss": {}, "smooth_l1_loss": {"beta": 0.5}, "bce_with_logits_loss": {},
               "bce_loss": {}}
LOSS_SHAPES = [(0,), (3, 0), (1,), (1, 1, 1), (8193,), (32767,), (32769,), (8192 * 32 + 1,)]
CE_SHAPES = [(1, 1), (1, 5), (5, 1), (0, 3), (15, 3), (17, 3), (31, 4), (33, 4), (65, 7),
             (1025, 10), (1, 32769)]


def _loss(name, pred, target, dtype):
    """(loss, grad) allocated and into grad= (in place over pred too)."""
    kw = FLAT_LOSSES.get(name, {})
    pred0, target0 = pred.copy(), target.copy()
    loss, grad = getattr(ops, name)(pred, target, **kw)
    buf = np.full(pred.shape, 5, dtype)
    loss_buf, grad_buf = getattr(ops, name)(pred, target, grad=buf, **kw)
    p = pred.copy()
    loss_in_place, grad_in_place = getattr(ops, name)(p, target, grad=p, **kw)
    return {"loss": loss, "grad": grad, "loss_buf": loss_buf, "grad_buf": grad_buf,
            "loss_in_place": loss_in_place, "grad_in_place": grad_in_place,
            "identity": (grad_buf is buf, grad_in_place is p),
            "unmodified": (np.array_equal(pred, pred0), np.array_equal(target, target0))}


def _flat_loss(name, shape, dtype):
    rng = np.random.default_rng(3)
    pred = rng.standard_normal(shape).astype(dtype)
    target = rng.standard_normal(shape).astype(dtype)
    if name == "bce_loss":
        pred = rng.uniform(0, 1, shape).astype(dtype)
    if name.startswith("bce"):
        target = (target > 0).astype(dtype)
    return _loss(name, pred, target, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("backend", COMPILED)
def test_losses_at_degenerate_and_threshold_shapes(backend, dtype):
    _sweep(backend, dtype, _flat_loss,
           [(name, shape, dtype) for name in FLAT_LOSSES for shape in LOSS_SHAPES])
    _sweep(backend, dtype, _cross_entropy,
           [(shape, soft, dtype) for shape in CE_SHAPES for soft in (False, True)])


def _cross_entropy(shape, soft, dtype):
    rng = np.random.default_rng(4)
    logits = (rng.standard_normal(shape) * 3).astype(dtype)
    target = (rng.uniform(0, 1, shape).astype(dtype) if soft
              else rng.integers(0, shape[1], shape[0]).astype(np.int64))
    logits0 = logits.copy()
    loss, grad = ops.softmax_cross_entropy(logits, target)
    buf = np.full(shape, 5, dtype)
    loss_buf, grad_buf = ops.softmax_cross_entropy(logits, target, grad=buf)
    return {"loss": loss, "grad": grad, "loss_buf": loss_buf, "grad_buf": grad_buf,
            "identity": grad_buf is buf, "unmodified": np.array_equal(logits, logits0)}


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("backend", ALL)
def test_cross_entropy_over_rows_of_no_class_is_nan_as_pytorch(backend, dtype):
    # was 0.0 on numpy and cython, NaN on numba. A loss over no logits is NaN: PyTorch
    # 2.13's F.cross_entropy(torch.zeros(3, 0), torch.zeros(3, 0)), fastnn's functional
    # cross_entropy and every other loss of fastnn.ops
    logits, target = np.zeros((3, 0), dtype), np.zeros((3, 0), dtype)
    buf = np.zeros((3, 0), dtype)
    with fastnn.use_backend(backend):
        loss, grad = ops.softmax_cross_entropy(logits, target)
        loss_buf, grad_buf = ops.softmax_cross_entropy(logits, target, grad=buf)
        functional = F.cross_entropy(logits, target)
    assert np.isnan(functional) and np.isnan(loss) and np.isnan(loss_buf)
    assert grad.shape == (3, 0) and grad.dtype == dtype and grad_buf is buf


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_of_labels_over_no_class_is_pytorchs(reduction, smoothing):
    """With no class every label must be ignore_index; PyTorch 2.13 gives NaN for the
    mean, and for the smoothing term's division by C (an IndexError in NumPy's
    indexing, and a ZeroDivisionError, before)."""
    torch = pytest.importorskip("torch")
    for logits, labels in ((np.zeros((2, 0)), np.array([-100, -100])),
                           (np.zeros((0,)), np.array(-100))):
        want = torch.nn.functional.cross_entropy(
            torch.from_numpy(logits), torch.from_numpy(labels), reduction=reduction,
            label_smoothing=smoothing).numpy()
        got = F.cross_entropy(logits, labels, reduction=reduction, label_smoothing=smoothing)
        assert np.shape(got) == want.shape
        np.testing.assert_array_equal(got, want)
    want = torch.nn.functional.nll_loss(torch.zeros(2, 0, dtype=torch.float64),
                                        torch.tensor([-100, -100]), reduction=reduction)
    np.testing.assert_array_equal(F.nll_loss(np.zeros((2, 0)), np.array([-100, -100]),
                                             reduction=reduction), want.numpy())
    with pytest.raises(IndexError, match="Target 0 is out of bounds"):
        F.cross_entropy(np.zeros((2, 0)), np.array([-100, 0]), label_smoothing=smoothing)


# --------------------------------------------------------------------- batchnorm
BATCHNORM_SHAPES = [(2, 3), (1, 3), (0, 3), (4, 0), (0, 0), (2, 1), (31, 5), (33, 5), (65, 3),
                    (1025, 3), (4, 129), (2, 3, 1, 1), (1, 3, 1, 2), (0, 3, 2, 2),
                    (2, 0, 3, 3), (2, 3, 0, 4), (31, 2, 4, 4), (2, 3, 128, 128)]


def _batchnorm(shape, training, mean_only, outs, dtype):
    """Forward then backward; running statistics and parameter gradients pre-filled."""
    c = shape[1]
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    w = None if mean_only else rng.uniform(0.5, 1.5, c).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    running_mean = rng.standard_normal(c).astype(dtype)
    running_var = None if mean_only else rng.uniform(0.5, 2, c).astype(dtype)
    grad_w = None if mean_only else np.full(c, 0.25, dtype)
    grad_b = np.full(c, -0.5, dtype)
    x0, g0 = x.copy(), g.copy()
    bufs = {}
    if outs:
        bufs = {"out": np.full(shape, 9, dtype), "save_mean": np.full(c, 9, dtype),
                "save_invstd": None if mean_only else np.full(c, 9, dtype)}
    y, mean, invstd = ops.batchnorm_forward(x, w, b, running_mean, running_var, training,
                                            0.3, 1e-3, mean_only, **bufs)
    grad_in_buf = np.full(shape, 9, dtype) if outs else None
    grad_in = ops.batchnorm_backward(g, x, w, mean, invstd, training, mean_only, grad_w,
                                     grad_b, grad_in_buf)
    identity = (y is bufs["out"], mean is bufs["save_mean"], grad_in is grad_in_buf,
                mean_only or invstd is bufs["save_invstd"]) if outs else ()
    return {"y": y, "mean": mean, "invstd": invstd, "running_mean": running_mean,
            "running_var": running_var, "grad_in": grad_in, "grad_w": grad_w,
            "grad_b": grad_b, "identity": identity,
            "unmodified": (np.array_equal(x, x0), np.array_equal(g, g0))}


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("backend", COMPILED)
def test_batchnorm_at_degenerate_and_chunk_shapes(backend, dtype):
    # out= buffers in each mode once (outs = training != mean_only); no training batch of
    # one value per channel but mean-only ones (an error for the full form, tested
    # elsewhere)
    _sweep(backend, dtype, _batchnorm, [
        (shape, training, mean_only, training != mean_only, dtype)
        for shape in BATCHNORM_SHAPES for training in (True, False)
        for mean_only in (False, True)
        if not (training and not mean_only and shape[0] * int(np.prod(shape[2:])) == 1)])


@pytest.mark.parametrize("shape", [(4, 0), (2, 0, 3, 3)])
@pytest.mark.parametrize("backend", ALL)
def test_eval_batchnorm_with_no_channel_runs(backend, shape):
    # the reference backend raised ZeroDivisionError (count = x.size // C); PyTorch's
    # F.batch_norm(torch.zeros(4, 0), torch.zeros(0), torch.ones(0)) gives a (4, 0) output
    x = np.zeros(shape, np.float32)
    none = np.zeros(0, np.float32)
    with fastnn.use_backend(backend):
        y, mean, invstd = ops.batchnorm_forward(x, none, none, none.copy(), none.copy(),
                                                training=False)
        grad_in = ops.batchnorm_backward(x, x, none, mean, invstd, training=False,
                                         grad_weight=none.copy(), grad_bias=none.copy())
    assert y.shape == grad_in.shape == shape and mean.shape == invstd.shape == (0,)


# --------------------------------------------------------------------- layernorm
LAYER_NORM_SHAPES = [(1, 1), (1, 5), (5, 1), (0, 4), (0, 0), (31, 7), (33, 7), (63, 9), (65, 9),
                     (1025, 3), (1025, 33), (1, 32769), (32769, 1)]


def _layer_norm(shape, affine, outs, dtype):
    n, d = shape
    rng = np.random.default_rng(6)
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    w = rng.uniform(0.5, 1.5, d).astype(dtype) if affine else None
    b = rng.standard_normal(d).astype(dtype) if affine else None
    grad_w, grad_b = np.full(d, 0.25, dtype), np.full(d, -0.5, dtype)
    x0, g0 = x.copy(), g.copy()
    bufs = {}
    if outs:
        bufs = {"out": np.full(shape, 9, dtype), "save_mean": np.full(n, 9, dtype),
                "save_invstd": np.full(n, 9, dtype)}
    y, mean, invstd = ops.layer_norm_forward(x, w, b, 1e-3, **bufs)
    grad_in_buf = np.full(shape, 9, dtype) if outs else None
    grad_in = ops.layer_norm_backward(g, x, w, mean, invstd, grad_w, grad_b, grad_in_buf)
    identity = (y is bufs["out"], mean is bufs["save_mean"], invstd is bufs["save_invstd"],
                grad_in is grad_in_buf) if outs else ()
    return {"y": y, "mean": mean, "invstd": invstd, "grad_in": grad_in, "grad_w": grad_w,
            "grad_b": grad_b, "identity": identity,
            "unmodified": (np.array_equal(x, x0), np.array_equal(g, g0))}


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")  # (NumPy's, at D = 0)
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("backend", COMPILED)
def test_layer_norm_at_degenerate_and_chunk_shapes(backend, dtype):
    _sweep(backend, dtype, _layer_norm, [(shape, affine, affine, dtype)
                                         for shape in LAYER_NORM_SHAPES
                                         for affine in (True, False)])


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("backend", ALL)
def test_layer_norm_rows_of_no_value_save_nan_statistics(backend, dtype):
    """Fixed: cython's layer_norm_forward returned early when D == 0 and left save_mean and
    save_invstd unwritten (np.empty garbage, or the caller's buffer)."""
    save_mean, save_invstd = np.full(4, 9, dtype), np.full(4, 9, dtype)
    with fastnn.use_backend(backend), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (NumPy's mean of an empty row)
        y, mean, invstd = ops.layer_norm_forward(np.zeros((4, 0), dtype), save_mean=save_mean,
                                                 save_invstd=save_invstd)
    assert y.shape == (4, 0) and mean is save_mean and invstd is save_invstd
    assert np.isnan(mean).all() and np.isnan(invstd).all()


# ----------------------------------------------------------------------- dropout
DROPOUT_SHAPES = [(0,), (1,), (0, 3), (3, 0), (1, 1), (7,), (16385,), (32767,), (32769,),
                  (1025, 33)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("backend", ALL)
def test_dropout_masks_at_degenerate_shapes(backend, dtype):
    for shape in DROPOUT_SHAPES:
        for p in (0.0, 0.3, 0.999):
            x = _normal(shape, dtype, 7, shift=3.0)
            x0, masks = x.copy(), []
            for n_threads in (1, 2):
                fastnn.set_num_threads(n_threads)
                with fastnn.use_backend(backend):
                    y, mask = ops.dropout_forward(x, p, 123)
                    mask_buf, out = np.full(shape, 5, dtype), np.full(shape, 5, dtype)
                    y2, mask2 = ops.dropout_forward(x, p, 123, mask=mask_buf, out=out)
                    grad_buf = np.full(shape, 5, dtype)
                    grad = ops.dropout_backward(np.ones(shape, dtype), mask, out=grad_buf)
                assert y2 is out and mask2 is mask_buf and grad is grad_buf
                assert mask.dtype == y.dtype == dtype and mask.shape == y.shape == shape
                assert np.isin(mask, [0, dtype(1 / (1 - p))]).all()
                assert p or (mask == 1).all()
                np.testing.assert_array_equal(y, x * mask)
                np.testing.assert_array_equal(mask2, mask)
                np.testing.assert_array_equal(grad, mask)
                np.testing.assert_array_equal(x, x0)
                masks.append(mask)
            np.testing.assert_array_equal(masks[0], masks[1])  # any thread count
            if x.size > 10000:
                assert abs((masks[0] == 0).mean() - p) < 0.02


# -------------------------------------------------------------------- conv, pool
CONV_CASES = [  # x shape, weight shape, stride, padding
    ((0, 2, 5, 5), (3, 2, 3, 3), 1, 0), ((2, 0, 5, 5), (3, 0, 3, 3), 1, 0),
    ((2, 3, 5, 5), (0, 3, 3, 3), 1, 0), ((1, 1, 1, 1), (1, 1, 1, 1), 1, 0),
    ((2, 3, 4, 5), (2, 3, 4, 5), 1, 0), ((2, 3, 3, 3), (2, 3, 3, 3), (5, 7), 0),
    ((2, 3, 3, 3), (2, 3, 2, 2), 4, 1), ((1, 2, 1, 1), (2, 2, 3, 3), 1, 1),
    ((2, 2, 0, 3), (2, 2, 2, 1), 1, (1, 0)), ((2, 3, 2, 7), (4, 3, 1, 3), (2, 3), (0, 2)),
    ((33, 2, 6, 6), (2, 2, 1, 1), 2, 0), ((3, 4, 20, 21), (5, 4, 3, 3), 1, 1),
]


def _conv(x_shape, w_shape, stride, padding, bias, dtype):
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
    x0, w0 = x.copy(), w.copy()
    y = ops.conv2d_forward(x, w, b, stride, padding)
    out = np.full(y.shape, 9, dtype)
    y_out = ops.conv2d_forward(x, w, b, stride, padding, out=out)
    g = rng.standard_normal(y.shape).astype(dtype)
    grad_w, grad_w2 = np.full(w_shape, 0.25, dtype), np.full(w_shape, 0.25, dtype)
    grad_b = np.full(w_shape[0], -0.5, dtype) if bias else None
    grad_in_buf = np.full(x_shape, 9, dtype)
    grad_in = ops.conv2d_backward(g, x, w, stride, padding, grad_w, grad_b, grad_in_buf)
    no_grad_in = ops.conv2d_backward(g, x, w, stride, padding, grad_w2, need_grad_in=False)
    return {"y": y, "y_out": y_out, "grad_in": grad_in, "grad_w": grad_w, "grad_b": grad_b,
            "grad_w2": grad_w2, "identity": (y_out is out, grad_in is grad_in_buf),
            "no_grad_in": no_grad_in,
            "unmodified": (np.array_equal(x, x0), np.array_equal(w, w0))}


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("backend", COMPILED)
def test_conv2d_at_degenerate_shapes(backend, dtype):
    _sweep(backend, dtype, _conv,
           [(*case, bias, dtype) for case in CONV_CASES for bias in (True, False)])


@pytest.mark.parametrize("backend", ALL)
def test_conv2d_with_no_output_channel(backend):
    # the reference backend's reshape(c_out, -1) failed ("cannot reshape array of size 0");
    # numba and cython give an empty output and a zero input gradient (PyTorch refuses
    # such a weight, so the expected values are the gradient of an empty sum)
    x, w = _normal((2, 3, 5, 5), np.float64, 9), np.zeros((0, 3, 3, 3))
    grad_w, grad_b = np.zeros((0, 3, 3, 3)), np.zeros(0)
    with fastnn.use_backend(backend):
        y = ops.conv2d_forward(x, w, np.zeros(0), 1, 1)
        grad_in = ops.conv2d_backward(y, x, w, 1, 1, grad_w, grad_b)
    assert y.shape == (2, 0, 5, 5)
    np.testing.assert_array_equal(grad_in, np.zeros_like(x))


POOL_CASES = [  # x shape, kernel, stride, padding
    ((0, 2, 4, 4), 2, 2, 0), ((2, 0, 4, 4), 2, 2, 0), ((1, 1, 1, 1), 1, 1, 0),
    ((1, 1, 1, 1), 1, 5, 0), ((2, 3, 5, 4), (5, 4), 1, 0), ((2, 3, 3, 3), 3, 7, 1),
    ((2, 3, 3, 3), 2, 5, 1), ((1, 2, 1, 6), (1, 2), (1, 3), (0, 1)), ((2, 3, 5, 5), 2, 3, 1),
    ((33, 4, 16, 16), 2, 2, 0), ((2, 3, 65, 63), 3, 2, 1), ((2, 1, 0, 4), 2, 1, 1),
]


def _pool(x_shape, kernel, stride, padding, ceil_mode, divisor, dtype):
    x = _normal(x_shape, dtype, 10)
    x0 = x.copy()
    y, idx = ops.max_pool2d_forward(x, kernel, stride, padding, ceil_mode=ceil_mode)
    out, idx_buf = np.full(y.shape, 9, dtype), np.full(y.shape, 9, np.int64)
    y_out, idx_out = ops.max_pool2d_forward(x, kernel, stride, padding, out=out,
                                            indices=idx_buf, ceil_mode=ceil_mode)
    g = _normal(y.shape, dtype, 11)
    grad_buf = np.full(x_shape, 9, dtype)
    grad = ops.max_pool2d_backward(g, idx, x_shape, grad_in=grad_buf)
    result = {"y": y, "idx": idx, "y_out": y_out, "idx_out": idx_out, "grad": grad,
              "identity": (y_out is out, idx_out is idx_buf, grad is grad_buf)}
    with np.errstate(all="ignore"):  # (a window wholly in the padding averages no cell)
        for include in (True, False):
            kw = {"count_include_pad": include, "ceil_mode": ceil_mode,
                  "divisor_override": divisor}
            avg_buf, avg_grad_buf = np.full(y.shape, 9, dtype), np.full(x_shape, 9, dtype)
            result[f"avg{include}"] = ops.avg_pool2d_forward(x, kernel, stride, padding,
                                                             out=avg_buf, **kw)
            result[f"avg_grad{include}"] = ops.avg_pool2d_backward(
                g, x_shape, kernel, stride, padding, grad_in=avg_grad_buf, **kw)
            result[f"avg_identity{include}"] = (result[f"avg{include}"] is avg_buf,
                                                result[f"avg_grad{include}"] is avg_grad_buf)
    result["unmodified"] = np.array_equal(x, x0)
    return result


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("backend", COMPILED)
def test_pooling_at_degenerate_shapes(backend, dtype):
    _sweep(backend, dtype, _pool, [
        (*case, ceil_mode, divisor, dtype) for case in POOL_CASES
        for ceil_mode, divisor in ((False, None), (True, None), (False, 3))])


# -------------------------------------------------------------------- optimizers
# op -> variants of (state arrays: name, positive?), keyword arguments (a "+" or "" string
# stands for a state array passed by keyword, positive or not)
OPTIMIZERS = {
    "sgd_update": [([("velocity", False)], {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
                   ([("velocity", False)], {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
                   ([(None, False)], {"lr": 0.1, "weight_decay": 0.1})],
    "adam_update": [([("m", False), ("v", True), ("step", 3)], {"lr": 0.01, "weight_decay": 0.1}),
                    ([("m", False), ("v", True), ("step", 1)],
                     {"lr": 0.01, "max_exp_avg_sq": "+"})],
    "rmsprop_update": [([("v", True)], {"lr": 0.01}),
                       ([("v", True)], {"lr": 0.01, "momentum": 0.9, "momentum_buffer": "",
                                        "weight_decay": 0.1})],
    "adagrad_update": [([("s", True)], {"lr": 0.01, "weight_decay": 0.1})],
    "adamax_update": [([("m", False), ("u", True), ("step", 2)], {"lr": 0.01,
                                                                   "weight_decay": 0.1})],
    "adaptive_moments_update": [([("m", False), ("v", True)],
                                 {"avg_rate": 0.01, "grad_rate": 0.02, "sq_scale": 1.3}),
                                ([("m", False), ("v", True)],
                                 {"avg_rate": 0.01, "sq_scale": 0.0, "eps": 1.0})],
    "adadelta_update": [([("v", True), ("d", True)], {"weight_decay": 0.1, "maximize": True})],
    "rprop_update": [([("prev", False), ("step_size", True)], {"maximize": True})],
    "asgd_update": [([("ax", False)], {"eta": 0.01, "mu": 1.0}),
                    ([("ax", False)], {"eta": 0.01, "mu": 0.3, "weight_decay": 0.1})],
}
PARAM_SHAPES = [(0,), (0, 3), (1,), (32767,), (32768,)]


def _optimizer_step(name, variant, shape, dtype):
    """One update; returns param and every state array after it."""
    states, kwargs = OPTIMIZERS[name][variant]
    rng = np.random.default_rng(12)

    def state(positive):
        a = rng.standard_normal(shape).astype(dtype)
        return np.abs(a) + dtype(0.1) if positive else a
    param, grad = state(False), state(False)
    grad0 = grad.copy()
    args = [param, grad]
    for label, how in states:
        args.append(None if label is None else how if label == "step" else state(how))
    kwargs = {k: state(v == "+") if isinstance(v, str) else v for k, v in kwargs.items()}
    returned = getattr(ops, name)(*args, **kwargs)
    arrays = [a for a in args if isinstance(a, np.ndarray) and a is not grad]
    arrays += [v for v in kwargs.values() if isinstance(v, np.ndarray)]
    return {**{f"array{i}": a for i, a in enumerate(arrays)}, "returned": returned,
            "unmodified": np.array_equal(grad, grad0)}


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("backend", COMPILED)
def test_optimizer_updates_on_empty_and_threshold_params(backend, dtype):
    _sweep(backend, dtype, _optimizer_step, [
        (name, variant, shape, dtype) for name, variants in OPTIMIZERS.items()
        for variant in range(len(variants)) for shape in PARAM_SHAPES])


@pytest.mark.skipif("cython" not in fastnn.backends(), reason="needs the cython backend")
def test_a_first_cython_conv_with_no_input_channels_in_a_fresh_process():
    """A thread's first call asking the work buffers for 0 bytes (C_in = 0: an empty
    im2col matrix) got NULL back, reported as a MemoryError; later calls reused an
    earlier buffer, so only a fresh thread (or process) met it."""
    from subprocess_helpers import run_python
    proc = run_python("""
        import numpy as np, fastnn
        from fastnn import ops
        fastnn.set_backend("cython")
        y = ops.conv2d_forward(np.ones((2, 0, 5, 5)), np.ones((3, 0, 3, 3)), np.arange(3.0))
        assert y.shape == (2, 3, 3, 3) and np.all(y == np.arange(3.0)[:, None, None])
        print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
