"""fastnn.nn.functional against torch.nn.functional: every function's output (shape, dtype,
values) in float32 and float64 on a few shapes and options, the running statistics that
batch_norm updates and the rows embedding renormalises, PyTorch's warnings, and the
errors PyTorch raises (same exception class, except fastnn's TypeError for dtypes). The
core functions also run on every backend."""
import warnings

import numpy as np
import pytest

import fastnn
import fastnn.nn.functional as F_path
from fastnn.nn import functional as F

import torch  # noqa: E402  (after fastnn: see fastnn's OpenMP warning)
import torch.nn.functional as TF  # noqa: E402

from conftest import assert_close

torch.set_num_threads(1)


def _t(a):
    """A torch copy of a NumPy array (None stays None)."""
    return None if a is None else torch.from_numpy(np.array(a, copy=True))


def same(ours, theirs, dtype, scale=1.0):
    """ours (NumPy) equals theirs (a tensor, or a tuple of them) in shape, dtype, values."""
    if isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            same(a, b, dtype, scale)
        return
    expected = theirs.detach().numpy()
    assert isinstance(ours, np.ndarray), type(ours)
    assert ours.shape == expected.shape and ours.dtype == expected.dtype, \
        (ours.shape, ours.dtype, expected.shape, expected.dtype)
    if ours.dtype.kind in "iu":
        np.testing.assert_array_equal(ours, expected)
    else:
        assert_close(ours, expected, dtype, scale)


def test_importable_both_ways_and_documented():
    assert F is F_path and F is fastnn.nn.functional
    assert "forward" in F.__doc__ and "fastnn.ops" in F.__doc__ and "_backward" in F.__doc__
    for name in F.__all__:
        fn = getattr(F, name)
        assert fn.__doc__ and callable(fn), name
        assert hasattr(TF, name), name


ACTIVATIONS = [
    ("relu", {}), ("relu6", {}), ("leaky_relu", {"negative_slope": 0.2}),
    ("elu", {"alpha": 0.7}), ("selu", {}), ("celu", {"alpha": 1.5}), ("gelu", {}),
    ("gelu", {"approximate": "tanh"}), ("silu", {}), ("mish", {}), ("sigmoid", {}),
    ("tanh", {}), ("softplus", {}), ("softplus", {"beta": 2.0, "threshold": 5.0}),
    ("softplus", {"beta": -1.0}), ("softsign", {}), ("hardtanh", {}),
    ("hardtanh", {"min_val": -0.5, "max_val": 2.0}), ("hardsigmoid", {}), ("hardswish", {}),
    ("logsigmoid", {}),
]
INPLACE = {"relu", "relu6", "leaky_relu", "elu", "selu", "celu", "silu", "mish", "hardtanh",
           "hardsigmoid", "hardswish"}


def test_activations(backend, dtype, rng):
    x = (rng.standard_normal((2, 3, 4)) * 6).astype(dtype)
    for name, kwargs in ACTIVATIONS:
        fn, ref = getattr(F, name), getattr(TF, name)
        same(fn(x, **kwargs), ref(_t(x), **kwargs), dtype)
        same(fn(x.transpose(2, 0, 1), **kwargs), ref(_t(x).permute(2, 0, 1), **kwargs), dtype)
        same(fn(np.array(x[0, 0, 0]), **kwargs), ref(_t(x)[0, 0, 0], **kwargs), dtype)  # 0-d
        if name in INPLACE:
            for x2 in (x.copy(), x.copy().transpose(1, 0, 2)):  # contiguous or not
                expected = ref(_t(x2), **kwargs)
                assert fn(x2, inplace=True, **kwargs) is x2
                same(x2, expected, dtype)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "softmin"])
def test_softmax_family(name, dtype, rng):
    fn, ref = getattr(F, name), getattr(TF, name)
    x = (rng.standard_normal((2, 3, 4, 5)) * 4).astype(dtype)
    for dim in (0, 1, -1, 2):
        same(fn(x, dim), ref(_t(x), dim), dtype)
    same(fn(np.array(x[0, 0, 0, 0]), 0), ref(_t(x)[0, 0, 0, 0], 0), dtype)  # 0-d
    other = np.float64 if dtype == np.float32 else np.float32
    same(fn(x, 1, dtype=other), ref(_t(x), 1, dtype=torch.from_numpy(np.zeros(0, other)).dtype),
         other)
    for shape in [(4,), (2, 3), (2, 3, 4), (2, 3, 4, 5)]:  # the implicit dim, warned
        with pytest.warns(UserWarning, match="Implicit dimension choice for " + name):
            ours = fn(x.reshape(-1)[:np.prod(shape)].reshape(shape))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            same(ours, ref(_t(x).reshape(-1)[:np.prod(shape)].reshape(shape)), dtype)
    with pytest.raises(IndexError, match="Dimension out of range"):
        fn(x, 4)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "softmin"])
@pytest.mark.parametrize("kind", [np.int64, np.int32, np.uint8, np.float16, np.bool_])
def test_softmax_family_dtype_casts_integer_and_half_input(backend, dtype, name, kind):
    """dtype= casts the input first, as PyTorch's: F.softmax(labels, 1, dtype=np.float32)
    of an integer (or float16, bool) array is the softmax of its values (it was a
    DtypeError, 'expected input of dtype float32 or float64'); softmin of bool stays
    refused, as PyTorch refuses to negate a bool tensor, and softmin of uint8 is that of
    its values (PyTorch's negates in uint8 first, -1 wrapping to 255). Without dtype=
    such input is refused, as before."""
    fn, ref = getattr(F, name), getattr(TF, name)
    x = (np.arange(24).reshape(2, 3, 4) % 5 % (2 if kind is np.bool_ else 5)).astype(kind)
    torch_dtype = torch.from_numpy(np.zeros(0, dtype)).dtype
    if kind is np.bool_ and name == "softmin":
        with pytest.raises(TypeError):
            fn(x, 1, dtype=dtype)
    else:
        for dim in (1, -1):
            ours = fn(x, dim, dtype=dtype)
            assert ours.dtype == dtype
            theirs = x.astype(dtype) if (kind, name) == (np.uint8, "softmin") else x
            same(ours, ref(torch.from_numpy(theirs), dim, dtype=torch_dtype), dtype)
    with pytest.raises(TypeError, match=f"^{name}: expected input of dtype float32"):
        fn(x, 1)


def test_linear(dtype, rng):
    w, b = rng.standard_normal((4, 5)).astype(dtype), rng.standard_normal(4).astype(dtype)
    for shape in [(5,), (3, 5), (2, 3, 5)]:
        x = rng.standard_normal(shape).astype(dtype)
        same(F.linear(x, w, b), TF.linear(_t(x), _t(w), _t(b)), dtype)
        same(F.linear(x, w), TF.linear(_t(x), _t(w)), dtype)
        same(F.linear(x, w[0]), TF.linear(_t(x), _t(w[0])), dtype)  # a 1-D weight


def test_dropout(dtype, rng):
    x = rng.standard_normal((100, 100)).astype(dtype) + 5
    fastnn.manual_seed(3)
    y = F.dropout(x, 0.3)
    fastnn.manual_seed(3)
    np.testing.assert_array_equal(F.dropout(x, 0.3), y)  # fastnn's generator
    kept = y != 0
    assert 0.27 < 1 - kept.mean() < 0.33
    assert_close(y[kept], x[kept] / dtype.type(0.7), dtype)
    assert F.dropout(x, 0.3, training=False) is x and F.dropout(x, 0.0) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0), np.zeros_like(x))
    x2 = x.copy()
    assert F.dropout(x2, 0.5, inplace=True) is x2 and np.mean(x2 == 0) > 0.4
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
            F.dropout(x, p)


CONVS = {  # name: (input shape, weight shape, options)
    "2d-plain": ((2, 3, 7, 6), (4, 3, 3, 3), {}),
    "2d-stride-pad": ((2, 3, 7, 6), (4, 3, 3, 2), dict(stride=(2, 1), padding=(1, 2))),
    "2d-dilation-groups": ((2, 4, 8, 7), (6, 2, 3, 2), dict(dilation=(2, 1), groups=2,
                                                            padding=1)),
    "2d-same-even-unbatched": ((3, 6, 5), (2, 3, 4, 3), dict(padding="same", dilation=(1, 2))),
    "2d-valid-depthwise": ((1, 3, 5, 5), (3, 1, 3, 3), dict(padding="valid", groups=3)),
    "1d-plain": ((2, 3, 9), (4, 3, 3), dict(stride=2, padding=1)),
    "1d-same-dilated-groups": ((2, 4, 9), (2, 2, 2), dict(padding="same", dilation=3,
                                                           groups=2)),
    "1d-unbatched": ((3, 6), (2, 3, 3), {}),
}


@pytest.mark.parametrize("case", list(CONVS))
def test_conv(case, dtype, rng):
    xs, ws, options = CONVS[case]
    x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    fn, ref = (F.conv1d, TF.conv1d) if len(ws) == 3 else (F.conv2d, TF.conv2d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch's note on an even 'same' kernel's copy
        expected = ref(_t(x), _t(w), _t(b), **options), ref(_t(x), _t(w), **options)
    same(fn(x, w, b, **options), expected[0], dtype, scale=10)
    same(fn(x, w, **options), expected[1], dtype, scale=10)


def test_pooling(dtype, rng):
    x = rng.standard_normal((2, 3, 7, 6)).astype(dtype)
    x1 = x[:, :, 0].copy()
    for options in [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                    dict(kernel_size=(3, 2), stride=(2, 1), dilation=(2, 1), ceil_mode=True)]:
        same(F.max_pool2d(x, **options, return_indices=True),
             TF.max_pool2d(_t(x), **options, return_indices=True), dtype)
        same(F.max_pool2d(x[0], **options), TF.max_pool2d(_t(x)[0], **options), dtype)
        opts1 = {k: v[0] if isinstance(v, tuple) else v for k, v in options.items()}
        same(F.max_pool1d(x1, **opts1, return_indices=True),
             TF.max_pool1d(_t(x1), **opts1, return_indices=True), dtype)
    for options in [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1,
                                              count_include_pad=False, ceil_mode=True)]:
        same(F.avg_pool2d(x, **options), TF.avg_pool2d(_t(x), **options), dtype)
        same(F.avg_pool1d(x1, **options), TF.avg_pool1d(_t(x1), **options), dtype)
        same(F.avg_pool1d(x1[0], **options), TF.avg_pool1d(_t(x1)[0], **options), dtype)
    same(F.avg_pool2d(x, 3, 2, 1, divisor_override=4),
         TF.avg_pool2d(_t(x), 3, 2, 1, divisor_override=4), dtype)
    for size in [1, (7, 3), (4, None), (5, 4)]:  # tiling windows, then overlapping ones
        same(F.adaptive_avg_pool2d(x, size), TF.adaptive_avg_pool2d(_t(x), size), dtype)
    for size in [3, 4]:
        same(F.adaptive_avg_pool1d(x1, size), TF.adaptive_avg_pool1d(_t(x1), size), dtype)


def test_batch_norm(dtype, rng):
    for shape in [(4, 3), (4, 3, 5), (2, 3, 4, 5), (2, 3, 2, 2, 3)]:
        x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
        mean, var = rng.standard_normal(3).astype(dtype), (rng.random(3) + 0.5).astype(dtype)
        w, b = rng.standard_normal(3).astype(dtype), rng.standard_normal(3).astype(dtype)
        for training in (True, False):
            ours_stats, torch_stats = (mean.copy(), var.copy()), (_t(mean), _t(var))
            same(F.batch_norm(x, *ours_stats, w, b, training, 0.3, 1e-3),
                 TF.batch_norm(_t(x), *torch_stats, _t(w), _t(b), training, 0.3, 1e-3),
                 dtype, scale=10)
            same(ours_stats, torch_stats, dtype)  # updated in place when training
        same(F.batch_norm(x, None, None, training=True),
             TF.batch_norm(_t(x), None, None, training=True), dtype, scale=10)


def test_layer_and_group_norm(dtype, rng):
    x = (rng.standard_normal((2, 6, 3, 4)) * 3 + 2).astype(dtype)
    for shape in [4, (3, 4), (6, 3, 4)]:
        dims = (shape,) if isinstance(shape, int) else shape
        w, b = rng.standard_normal(dims).astype(dtype), rng.standard_normal(dims).astype(dtype)
        same(F.layer_norm(x, shape, w, b, 1e-4), TF.layer_norm(_t(x), dims, _t(w), _t(b), 1e-4),
             dtype, scale=10)
        same(F.layer_norm(x, shape), TF.layer_norm(_t(x), dims), dtype, scale=10)
    w, b = rng.standard_normal(6).astype(dtype), rng.standard_normal(6).astype(dtype)
    for groups in (1, 2, 6):
        same(F.group_norm(x, groups, w, b), TF.group_norm(_t(x), groups, _t(w), _t(b)), dtype,
             scale=10)
        same(F.group_norm(x[:, :, 0], groups, w), TF.group_norm(_t(x)[:, :, 0], groups, _t(w)),
             dtype, scale=10)


def test_embedding_and_one_hot(dtype, rng):
    w = rng.standard_normal((6, 4)).astype(dtype)
    idx = np.array([[0, 5, 2], [2, 2, 1]])
    same(F.embedding(idx, w), TF.embedding(_t(idx), _t(w)), dtype)
    same(F.embedding(np.array(idx[0, 0]), w, padding_idx=-1),
         TF.embedding(_t(idx)[0, 0], _t(w), -1), dtype)
    ours_w, torch_w = w.copy(), _t(w)
    same(F.embedding(idx, ours_w, max_norm=1.0, norm_type=1.0),
         TF.embedding(_t(idx), torch_w, max_norm=1.0, norm_type=1.0), dtype)
    same(ours_w, torch_w, dtype)  # the referenced rows renormalised in place
    for num_classes in (-1, 7):
        same(F.one_hot(idx, num_classes), TF.one_hot(_t(idx), num_classes), dtype)


def test_pad(dtype, rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    cases = [((1, 2), "constant", 1.5), ((1, 2, 0, 3, 1, 1, 2, 0), "constant", None),
             ((-1, 2, 3, -2), "constant", None), ((3, 1, 2, 3), "reflect", None),
             ((1, 2, 2, 0), "replicate", None), ((-1, 2, 1, 1), "replicate", None),
             ((2, 3, 1, 4), "circular", None), ((-1, 2, 1, -2), "circular", None),
             ((1, 1, 2, 1, 1, 0), "circular", None), ((0, 2, 1, 1, 0, 1), "reflect", None)]
    for pads, mode, value in cases:
        same(F.pad(x, pads, mode, value), TF.pad(_t(x), pads, mode, value), dtype)
    for mode in ("reflect", "replicate", "circular"):  # the last dimension of 2-D, 3-D input
        for a in (x[0], x[0, 0]):
            same(F.pad(a, (2, 1), mode), TF.pad(_t(a), (2, 1), mode), dtype)


def test_distances(dtype, rng):
    x = rng.standard_normal((3, 4, 5)).astype(dtype)
    for p, dim in [(2.0, 1), (1.0, -1), (float("inf"), 0), (3.0, 2)]:
        same(F.normalize(x, p, dim), TF.normalize(_t(x), p, dim), dtype)
    out = np.empty_like(x)
    assert F.normalize(x, out=out) is out
    same(out, TF.normalize(_t(x)), dtype)
    y = rng.standard_normal((3, 1, 5)).astype(dtype)
    for dim in (0, 2, -1):
        same(F.cosine_similarity(x, y, dim), TF.cosine_similarity(_t(x), _t(y), dim), dtype)
    a, b = x[0], rng.standard_normal(5).astype(dtype)
    for p in (2.0, 1.0, 3.0, float("inf"), 0.0):
        for keepdim in (False, True):
            same(F.pairwise_distance(a, b, p, keepdim=keepdim),
                 TF.pairwise_distance(_t(a), _t(b), p, keepdim=keepdim), dtype)


REDUCTIONS = ["mean", "sum", "none"]


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_and_binary_losses(reduction, dtype, rng):
    x, t = rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal((3, 4)).astype(dtype)
    w = rng.random((3, 4)).astype(dtype)
    r = dict(reduction=reduction)
    for name, options in [("mse_loss", {}), ("mse_loss", dict(weight=w)), ("l1_loss", {}),
                          ("l1_loss", dict(weight=w)), ("smooth_l1_loss", dict(beta=0.5)),
                          ("smooth_l1_loss", dict(beta=0.0)), ("huber_loss", dict(delta=0.7)),
                          ("huber_loss", dict(delta=2.0, weight=w))]:
        tw = {k: _t(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
        same(getattr(F, name)(x, t, **r, **options),
             getattr(TF, name)(_t(x), _t(t), **r, **tw), dtype, scale=10)
    p, y = rng.random((3, 4)).astype(dtype), (rng.random((3, 4)) < 0.5).astype(dtype)
    p[0, 0], p[0, 1] = 0, 1  # logs clamped at -100
    for weight in (None, w[0]):
        same(F.binary_cross_entropy(p, y, weight, **r),
             TF.binary_cross_entropy(_t(p), _t(y), _t(weight), **r), dtype, scale=10)
    logits = (x * 20).astype(dtype)
    pos = (rng.random(4) * 3).astype(dtype)
    for weight, pos_weight in [(None, None), (w, None), (None, pos), (w[0], pos)]:
        same(F.binary_cross_entropy_with_logits(logits, y, weight, **r, pos_weight=pos_weight),
             TF.binary_cross_entropy_with_logits(_t(logits), _t(y), _t(weight), **r,
                                                 pos_weight=_t(pos_weight)), dtype, scale=10)
    log_p = np.log(rng.random((3, 4)) + 0.01).astype(dtype)
    q = (rng.random((3, 4)) * (rng.random((3, 4)) < 0.8)).astype(dtype)  # zeros included
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 'mean' warns (tested below)
        for target, log_target in [(q, False), (log_p[::-1].copy(), True)]:
            for red in (reduction, "batchmean"):
                same(F.kl_div(log_p, target, reduction=red, log_target=log_target),
                     TF.kl_div(_t(log_p), _t(target), reduction=red, log_target=log_target),
                     dtype, scale=10)


def test_loss_warnings(dtype, rng):
    x, t = rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal((3, 1)).astype(dtype)
    with pytest.warns(UserWarning, match="target size"):
        ours = F.mse_loss(x, t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        same(ours, TF.mse_loss(_t(x), _t(t)), dtype)
        expected = TF.l1_loss(_t(x), _t(x[::-1].copy()), size_average=False)
    with pytest.warns(UserWarning, match="reduction='sum'"):
        same(F.l1_loss(x, x[::-1].copy(), size_average=False), expected, dtype, scale=10)
    with pytest.warns(UserWarning, match="batchmean"):
        F.kl_div(x, np.abs(x))


CLASS_CASES = {  # name: (input shape, target: 'labels' or 'probs', options)
    "labels": ((5, 4), "labels", {}),
    "weight-ignore": ((5, 4), "labels", dict(weight=True, ignore_index=2)),
    "smoothing-weight-ignore": ((6, 4), "labels", dict(weight=True, ignore_index=1,
                                                       label_smoothing=0.2)),
    "kdim-smoothing": ((2, 4, 3, 2), "labels", dict(label_smoothing=0.1)),
    "unbatched": ((4,), "labels", dict(weight=True)),
    "probs": ((5, 4), "probs", {}),
    "probs-kdim-weight-smoothing": ((2, 4, 3), "probs", dict(weight=True, label_smoothing=0.3)),
}


@pytest.mark.parametrize("case", list(CLASS_CASES))
def test_cross_entropy_and_nll(case, dtype, rng):
    shape, kind, options = CLASS_CASES[case]
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    class_axis = 0 if len(shape) == 1 else 1
    c = shape[class_axis]
    if kind == "probs":
        target = rng.random(shape).astype(dtype)
    else:
        target = rng.integers(0, c, shape[:class_axis] + shape[class_axis + 1:])
        target.reshape(-1)[::3] = options.get("ignore_index", -100)
    ours_opts, torch_opts = dict(options), dict(options)
    if options.get("weight"):
        weight = (rng.random(c) + 0.2).astype(dtype)
        ours_opts["weight"], torch_opts["weight"] = weight, _t(weight)
    for reduction in REDUCTIONS:
        same(F.cross_entropy(x, target, **ours_opts, reduction=reduction),
             TF.cross_entropy(_t(x), _t(target), **torch_opts, reduction=reduction), dtype,
             scale=10)
        if kind == "labels":
            log_p = F.log_softmax(x, class_axis)
            ours_opts.pop("label_smoothing", None), torch_opts.pop("label_smoothing", None)
            same(F.nll_loss(log_p, target, **ours_opts, reduction=reduction),
                 TF.nll_loss(_t(log_p), _t(target), **torch_opts, reduction=reduction), dtype,
                 scale=10)


def test_core_functions_on_every_backend(backend, dtype, rng):
    x = rng.standard_normal((2, 3, 6, 5)).astype(dtype)
    w, b = rng.standard_normal((4, 3, 3, 3)).astype(dtype), rng.standard_normal(4).astype(dtype)
    same(F.relu(x), TF.relu(_t(x)), dtype)
    same(F.softmax(x, 1), TF.softmax(_t(x), 1), dtype)
    same(F.conv2d(x, w, b, padding=1), TF.conv2d(_t(x), _t(w), _t(b), padding=1), dtype,
         scale=10)
    same(F.max_pool2d(x, 2, return_indices=True), TF.max_pool2d(_t(x), 2, return_indices=True),
         dtype)
    mean, var = np.zeros(3, dtype), np.ones(3, dtype)
    same(F.batch_norm(x, mean, var, training=True),
         TF.batch_norm(_t(x), torch.zeros(3, dtype=_t(x).dtype), torch.ones(3, dtype=_t(x).dtype),
                       training=True), dtype, scale=10)
    flat = x.reshape(6, -1)
    lw = rng.standard_normal((5, flat.shape[1])).astype(dtype)
    same(F.linear(flat, lw, b[:1].repeat(5)), TF.linear(_t(flat), _t(lw), _t(b[:1].repeat(5))),
         dtype, scale=10)
    labels = np.array([0, 4, 2, 1, 3, 3])
    logits = flat[:, :5].copy()
    same(F.cross_entropy(logits, labels), TF.cross_entropy(_t(logits), _t(labels)), dtype)
    same(F.cross_entropy(logits, labels, reduction="sum"),
         TF.cross_entropy(_t(logits), _t(labels), reduction="sum"), dtype, scale=10)


def _errors(rng):
    """(our call, PyTorch's call or None, exception class, message pattern)."""
    x = rng.standard_normal((2, 3)).astype(np.float32)
    img = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    w3 = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    emb = rng.standard_normal((5, 3)).astype(np.float32)
    tt = _t
    return [
        (lambda: F.gelu(x, "erf"), lambda: TF.gelu(tt(x), approximate="erf"), RuntimeError,
         "approximate"),
        (lambda: F.celu(x, 0.0), lambda: TF.celu(tt(x), 0.0), RuntimeError, "alpha"),
        (lambda: F.hardtanh(x, 1.0, -1.0), lambda: TF.hardtanh(tt(x), 1.0, -1.0), ValueError,
         "min_val"),
        (lambda: F.softmax(x, 2), lambda: TF.softmax(tt(x), 2), IndexError, "out of range"),
        (lambda: F.linear(x, np.ones((4, 5), np.float32)),
         lambda: TF.linear(tt(x), torch.ones(4, 5)), RuntimeError, "cannot be multiplied"),
        (lambda: F.conv2d(img[:, :2], w3), lambda: TF.conv2d(tt(img)[:, :2], tt(w3)),
         RuntimeError, "channels"),
        (lambda: F.conv2d(img[:, :, :2, :2], w3), lambda: TF.conv2d(tt(img)[:, :, :2, :2], tt(w3)),
         RuntimeError, "Kernel size can't be greater"),
        (lambda: F.conv2d(img, w3, stride=2, padding="same"),
         lambda: TF.conv2d(tt(img), tt(w3), stride=2, padding="same"), RuntimeError, "strided"),
        (lambda: F.conv2d(img, w3, groups=3), lambda: TF.conv2d(tt(img), tt(w3), groups=3),
         RuntimeError, "divisible"),
        (lambda: F.conv2d(x, w3), lambda: TF.conv2d(tt(x), tt(w3)), RuntimeError, "3D"),
        (lambda: F.conv2d(img, w3, np.ones(3, np.float32)),
         lambda: TF.conv2d(tt(img), tt(w3), torch.ones(3)), RuntimeError, "bias"),
        (lambda: F.max_pool2d(img, 3, padding=2), lambda: TF.max_pool2d(tt(img), 3, padding=2),
         RuntimeError, "pad should be at most half"),
        (lambda: F.avg_pool2d(img[:, :, :2, :2], 3),
         lambda: TF.avg_pool2d(tt(img)[:, :, :2, :2], 3), RuntimeError,
         "Output size is too small"),
        (lambda: F.batch_norm(x[:1], None, None, training=True),
         lambda: TF.batch_norm(tt(x)[:1], None, None, training=True), ValueError,
         "more than 1 value per channel"),
        (lambda: F.batch_norm(x, None, None), lambda: TF.batch_norm(tt(x), None, None),
         RuntimeError, "running_mean must be defined"),
        (lambda: F.batch_norm(x, np.zeros(4, np.float32), np.ones(3, np.float32)),
         lambda: TF.batch_norm(tt(x), torch.zeros(4), torch.ones(3)), RuntimeError, "3 elements"),
        (lambda: F.layer_norm(img, (7,)), lambda: TF.layer_norm(tt(img), (7,)), RuntimeError,
         "normalized_shape"),
        (lambda: F.group_norm(img, 2), lambda: TF.group_norm(tt(img), 2), RuntimeError,
         "divisible by num_groups"),
        (lambda: F.embedding(np.array([5]), emb), lambda: TF.embedding(torch.tensor([5]), tt(emb)),
         IndexError, "index out of range"),
        (lambda: F.embedding(np.array([-1]), emb),
         lambda: TF.embedding(torch.tensor([-1]), tt(emb)), IndexError, "index out of range"),
        (lambda: F.embedding(np.array([1]), emb, padding_idx=5),
         lambda: TF.embedding(torch.tensor([1]), tt(emb), padding_idx=5), AssertionError,
         "Padding_idx"),
        (lambda: F.one_hot(np.array([3]), 3), lambda: TF.one_hot(torch.tensor([3]), 3),
         RuntimeError, "smaller than num_classes"),
        (lambda: F.one_hot(np.array([-1])), lambda: TF.one_hot(torch.tensor([-1])), RuntimeError,
         "non-negative"),
        (lambda: F.pad(x, (1,)), lambda: TF.pad(tt(x), (1,)), RuntimeError, "divisible by 2"),
        (lambda: F.pad(img[0], (8, 1), "reflect"), lambda: TF.pad(tt(img)[0], (8, 1), "reflect"),
         RuntimeError, "Padding size should be less"),
        (lambda: F.pad(img[0], (9, 1), "circular"), lambda: TF.pad(tt(img)[0], (9, 1), "circular"),
         RuntimeError, "wrapping around"),
        (lambda: F.pad(x[0], (1, 1), "replicate"), lambda: TF.pad(tt(x)[0], (1, 1), "replicate"),
         NotImplementedError, "not supported"),
        (lambda: F.pad(x, (1, 1), "wrap"), lambda: TF.pad(tt(x), (1, 1), "wrap"),
         NotImplementedError, "Unrecognised padding mode"),
        (lambda: F.normalize(x, dim=2), lambda: TF.normalize(tt(x), dim=2), IndexError,
         "out of range"),
        (lambda: F.cosine_similarity(x, x[:1, :2]),
         lambda: TF.cosine_similarity(tt(x), tt(x)[:1, :2]), RuntimeError, "broadcast"),
        (lambda: F.cross_entropy(x, np.array([0, 3])),
         lambda: TF.cross_entropy(tt(x), torch.tensor([0, 3])), IndexError, "out of bounds"),
        (lambda: F.cross_entropy(x, np.array([0, 1, 1])),
         lambda: TF.cross_entropy(tt(x), torch.tensor([0, 1, 1])), ValueError, "batch_size"),
        (lambda: F.cross_entropy(x, np.array([0, 1]), label_smoothing=1.5),
         lambda: TF.cross_entropy(tt(x), torch.tensor([0, 1]), label_smoothing=1.5),
         RuntimeError, "label_smoothing"),
        (lambda: F.cross_entropy(x, np.abs(x), ignore_index=1),
         lambda: TF.cross_entropy(tt(x), tt(np.abs(x)), ignore_index=1), RuntimeError,
         "ignore_index"),
        (lambda: F.cross_entropy(x, np.array([0, 1]), weight=np.ones(4, np.float32)),
         lambda: TF.cross_entropy(tt(x), torch.tensor([0, 1]), weight=torch.ones(4)),
         RuntimeError, "weight tensor"),
        (lambda: F.nll_loss(x, np.array([0, 1]), reduction="avg"),
         lambda: TF.nll_loss(tt(x), torch.tensor([0, 1]), reduction="avg"), ValueError,
         "not a valid value for reduction"),
        (lambda: F.mse_loss(x, x, weight=x[0]), lambda: TF.mse_loss(tt(x), tt(x), weight=tt(x[0])),
         ValueError, "same size"),
        (lambda: F.smooth_l1_loss(x, x, beta=-1.0),
         lambda: TF.smooth_l1_loss(tt(x), tt(x), beta=-1.0), RuntimeError, "beta"),
        (lambda: F.huber_loss(x, x, delta=0.0), lambda: TF.huber_loss(tt(x), tt(x), delta=0.0),
         RuntimeError, "delta"),
        (lambda: F.binary_cross_entropy(x, x), lambda: TF.binary_cross_entropy(tt(x), tt(x)),
         RuntimeError, "between 0 and 1"),
        (lambda: F.binary_cross_entropy_with_logits(x, x[0]),
         lambda: TF.binary_cross_entropy_with_logits(tt(x), tt(x[0])), ValueError,
         "must be the same as input size"),
        # fastnn's TypeError where the dtype or array type is wrong
        (lambda: F.relu(np.array([1, -1])), None, TypeError, "float32 or float64"),
        (lambda: F.linear(x, x.astype(np.float64)), None, TypeError, "dtype mismatch"),
        (lambda: F.embedding(np.array([1.0]), emb), None, TypeError, "integer"),
        (lambda: F.nll_loss(x, np.array([0.0, 1.0])), None, TypeError, "integer"),
        (lambda: F.sigmoid([1.0, 2.0]), None, TypeError, "numpy.ndarray"),
    ]


def test_errors_as_pytorch_raises_them(rng):
    for ours, theirs, exc, match in _errors(rng):
        if theirs is not None:
            with pytest.raises(exc):
                theirs()
        with pytest.raises(exc, match=match):
            ours()


def test_failed_calls_leave_arrays_as_they_were(rng):
    x = rng.standard_normal((1, 3)).astype(np.float32)
    mean, var = np.zeros(3, np.float32), np.ones(3, np.float32)
    with pytest.raises(ValueError):
        F.batch_norm(x, mean, var, training=True)
    np.testing.assert_array_equal(mean, 0)
    np.testing.assert_array_equal(var, 1)
    emb = rng.standard_normal((5, 3)).astype(np.float32) * 10
    saved = emb.copy()
    with pytest.raises(IndexError):
        F.embedding(np.array([0, 7]), emb, max_norm=1.0)
    np.testing.assert_array_equal(emb, saved)


_X4 = np.random.default_rng(7).standard_normal((2, 4, 3, 3)).astype(np.float32)
_GRID = np.zeros((2, 3, 3, 2), np.float32)
_THETA = np.zeros((2, 2, 3), np.float32)

# (call, flag name): PyTorch's C++ argument parser takes only a bool for these flags, so
# 1 or 'yes' is a TypeError there, and fastnn refuses them too rather than read them as
# truthy (np.bool_ is a bool to both).
_STRICT_FLAGS = [
    (lambda m, x, v: m.max_pool1d(x[0], 2, ceil_mode=v), "ceil_mode"),
    (lambda m, x, v: m.max_pool2d(x, 2, ceil_mode=v), "ceil_mode"),
    (lambda m, x, v: m.max_pool3d(x, 1, ceil_mode=v), "ceil_mode"),
    (lambda m, x, v: m.avg_pool2d(x, 2, ceil_mode=v), "ceil_mode"),
    (lambda m, x, v: m.avg_pool2d(x, 2, count_include_pad=v), "count_include_pad"),
    (lambda m, x, v: m.avg_pool3d(x, 1, count_include_pad=v), "count_include_pad"),
    (lambda m, x, v: m.lp_pool2d(x, 2, 2, ceil_mode=v), "ceil_mode"),
    (lambda m, x, v: m.batch_norm(x, None, None, training=v), "training"),
    (lambda m, x, v: m.instance_norm(x, use_input_stats=v), "use_input_stats"),
    (lambda m, x, v: m.pairwise_distance(x, x, keepdim=v), "keepdim"),
    (lambda m, x, v: m.kl_div(x, x, reduction="sum", log_target=v), "log_target"),
    (lambda m, x, v: m.dropout(x, 0.5, training=v), "training"),
    (lambda m, x, v: m.dropout1d(x[0], 0.5, training=v), "training"),
    (lambda m, x, v: m.dropout2d(x, 0.5, training=v), "training"),
    (lambda m, x, v: m.dropout3d(x, 0.5, training=v), "training"),
    (lambda m, x, v: m.alpha_dropout(x, 0.5, training=v), "training"),
    (lambda m, x, v: m.feature_alpha_dropout(x, 0.5, training=v), "training"),
    (lambda m, x, v: m.rrelu(x, training=v), "training"),
    (lambda m, x, v: m.grid_sample(x, _GRID if m is F else _t(_GRID), align_corners=v),
     "align_corners"),
    (lambda m, x, v: m.affine_grid(_THETA if m is F else _t(_THETA), (2, 4, 3, 3),
                                   align_corners=v), "align_corners"),
    (lambda m, x, v: m.embedding(np.array([0]) if m is F else torch.tensor([0]), x[0, :, :, 0],
                                 scale_grad_by_freq=v), "scale_grad_by_freq"),
    (lambda m, x, v: m.embedding(np.array([0]) if m is F else torch.tensor([0]), x[0, :, :, 0],
                                 sparse=v), "sparse"),
    (lambda m, x, v: m.embedding_bag(np.array([1, 2]) if m is F else torch.tensor([1, 2]),
                                     x[0, :, :, 0],
                                     np.array([0]) if m is F else torch.tensor([0]),
                                     include_last_offset=v), "include_last_offset"),
]


@pytest.mark.parametrize("call, flag", _STRICT_FLAGS)
@pytest.mark.parametrize("value", [1, "yes"])
def test_flags_take_only_bools_as_torch(call, flag, value):
    with pytest.raises(TypeError):
        call(TF, _t(_X4), value)
    with pytest.raises(TypeError, match=f"expected {flag} to be a bool"):
        call(F, _X4.copy(), value)
    for ok in (True, np.True_):     # a bool still works (np.bool_ too)
        call(F, _X4.copy(), ok)
