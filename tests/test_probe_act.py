"""Activations, shape and resampling layers and their functional forms against PyTorch
2.13, at the inputs a randomized probe found wrong: extremes (+-1e4, +-1e38, +-inf,
exact zeros, kink points), large-magnitude softmax rows, clamped norms, 0-d inputs and
PyTorch's resampling index rules (forward and input gradient), on every CPU backend."""
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.nn import functional as F
import torch
import torch.nn.functional as TF

BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.backends()]
DTYPES = [np.float32, np.float64]
SPECIALS = [0.0, -0.0, 1e4, -1e4, 88.0, -88.0, 100.0, -100.0, 1e38, -1e38, 20.0, 3.0, -3.0,
            0.5, -0.5, 1.0, -1.0, 6.0, 0.1]


def _close(ours, theirs, dtype, scale=64):
    """ours (NumPy) equal to theirs (a tensor or array) within scale ulps of the dtype,
    NaN where theirs is NaN, the same infinities; dtype and shape as well."""
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    assert isinstance(ours, np.ndarray) and ours.dtype == dtype
    assert ours.shape == theirs.shape
    a, b = ours.astype(np.float64), np.asarray(theirs, np.float64)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    finite = np.isfinite(b)
    np.testing.assert_array_equal(a[~finite & ~np.isnan(b)], b[~finite & ~np.isnan(b)])
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(a[finite], b[finite], rtol=scale * eps, atol=scale * eps)


def _with_specials(rng, shape, dtype, kinks=()):
    x = rng.standard_normal(shape) * rng.choice([0.5, 3.0, 30.0], size=shape)
    flat = x.reshape(-1)
    values = SPECIALS + list(kinks)
    idx = rng.choice(flat.size, size=min(flat.size // 2, len(values)), replace=False)
    flat[idx] = rng.choice(values, size=idx.size)
    return x.astype(dtype)


def _layer_vs_torch(layer, twin, x, rng, dtype, scale=64):
    """Forward and input gradient of a fastnn layer against its torch twin."""
    y = layer(x.copy())
    g = rng.standard_normal(y.shape).astype(dtype)
    grad = layer.backward(g.copy())
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty = twin(tx)
    ty.backward(torch.from_numpy(g))
    _close(y, ty, dtype, scale)
    _close(grad, tx.grad, dtype, scale)


# (fastnn layer, torch layer, kink points); finite inputs (PyTorch's own NaN and
# infinity gradients differ between its vectorised and scalar loops)
ACTIVATIONS = [
    (lambda: nn.ReLU(), lambda: torch.nn.ReLU(), ()),
    (lambda: nn.ReLU6(), lambda: torch.nn.ReLU6(), (6.0,)),
    (lambda: nn.LeakyReLU(-0.2), lambda: torch.nn.LeakyReLU(-0.2), ()),
    (lambda: nn.ELU(0.5), lambda: torch.nn.ELU(0.5), ()),
    (lambda: nn.SELU(), lambda: torch.nn.SELU(), ()),
    (lambda: nn.CELU(2.0), lambda: torch.nn.CELU(2.0), ()),
    (lambda: nn.CELU(-0.5), lambda: torch.nn.CELU(-0.5), ()),
    (lambda: nn.GELU(), lambda: torch.nn.GELU(), ()),
    (lambda: nn.GELU("tanh"), lambda: torch.nn.GELU(approximate="tanh"), ()),
    (lambda: nn.SiLU(), lambda: torch.nn.SiLU(), ()),
    (lambda: nn.Mish(), lambda: torch.nn.Mish(), ()),
    (lambda: nn.Softplus(2.0, 3.0), lambda: torch.nn.Softplus(2.0, 3.0), (1.5,)),
    (lambda: nn.Softsign(), lambda: torch.nn.Softsign(), ()),
    (lambda: nn.Tanh(), lambda: torch.nn.Tanh(), ()),
    (lambda: nn.Sigmoid(), lambda: torch.nn.Sigmoid(), ()),
    (lambda: nn.Hardtanh(-2.0, 3.0), lambda: torch.nn.Hardtanh(-2.0, 3.0), (-2.0, 3.0)),
    (lambda: nn.Hardswish(), lambda: torch.nn.Hardswish(), ()),
    (lambda: nn.Hardshrink(), lambda: torch.nn.Hardshrink(), ()),
    (lambda: nn.Softshrink(1.5), lambda: torch.nn.Softshrink(1.5), (1.5, -1.5)),
    (lambda: nn.Tanhshrink(), lambda: torch.nn.Tanhshrink(), ()),
    (lambda: nn.Threshold(0.1, 20.0), lambda: torch.nn.Threshold(0.1, 20.0), ()),
    (lambda: nn.LogSigmoid(), lambda: torch.nn.LogSigmoid(), ()),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_sweep_with_extremes_matches_torch(backend, dtype):
    rng = np.random.default_rng(0)
    for make, make_twin, kinks in ACTIVATIONS:
        x = _with_specials(rng, (4, 9), dtype, kinks)
        if dtype == np.float32:  # 1e38 * 6 overflows torch's float32 hardswish
            x = np.where(np.abs(x) > 1e30, dtype(1e4), x).astype(dtype)
        with fastnn.use_backend(backend):
            _layer_vs_torch(make(), make_twin().to(torch.float64 if dtype == np.float64 else
                                                   torch.float32), x, rng, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_silu_and_tanh_gelu_far_below_zero(backend, dtype):
    """x * sigmoid(z) underflows to -0 far below 0 (it was x / (1 + e^88): -0.6 at
    -1e38) and -inf gives NaN, as PyTorch's product."""
    x = np.array([-1e38, -1e30, -1e4, -100.0, -np.inf, 2.0], dtype)
    g = np.ones_like(x)
    with fastnn.use_backend(backend), np.errstate(all="ignore"):
        for layer, twin in ((nn.SiLU(), torch.nn.SiLU()),
                            (nn.GELU("tanh"), torch.nn.GELU(approximate="tanh"))):
            y = layer(x)
            grad = layer.backward(g)
            tx = torch.from_numpy(x.copy()).requires_grad_()
            ty = twin(tx)
            ty.backward(torch.from_numpy(g))
            _close(y, ty, dtype)
            assert np.all(np.abs(y[:4]) < 1e-30) and np.isnan(y[4])
            if isinstance(layer, nn.SiLU):  # (torch's tanh-GELU gradient overflows to NaN)
                _close(grad, tx.grad, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("big", [710.0, 1e4, -1e38])
def test_log_softmax_keeps_precision_for_large_logits(backend, dtype, big):
    """(x - max) - log(sum): x - (max + log(sum)) rounded log 2 to -0.69336 at 1e4."""
    x = np.array([[big, big, big - 3.0, 0.5], [big, big, big, big]], dtype)
    with fastnn.use_backend(backend):
        layer = nn.LogSoftmax(dim=1)
        _layer_vs_torch(layer, torch.nn.LogSoftmax(dim=1), x, np.random.default_rng(1), dtype,
                        scale=8)
        _close(F.log_softmax(x, dim=0), TF.log_softmax(torch.from_numpy(x), dim=0), dtype, 8)


@pytest.mark.parametrize("dtype", DTYPES)
def test_celu_with_negative_alpha(dtype):
    """alpha < 0: x where x > 0, else alpha (exp(x / alpha) - 1) (it was alpha elu(x /
    alpha), which flips the sides)."""
    x = np.array([-30.0, -2.0, -0.5, 0.0, 0.4, 3.0, 1e4, -np.inf, np.inf], dtype)
    rng = np.random.default_rng(2)
    for backend in BACKENDS:
        with fastnn.use_backend(backend):
            _layer_vs_torch(nn.CELU(-0.5), torch.nn.CELU(-0.5), x, rng, dtype)
            _close(F.celu(x, -0.5), TF.celu(torch.from_numpy(x), -0.5), dtype)
    xi = x.copy()
    assert F.celu(xi, -2.0, inplace=True) is xi
    _close(xi, TF.celu(torch.from_numpy(x), -2.0), dtype)


@pytest.mark.parametrize("cls", ["Softmax", "LogSoftmax", "Softmin"])
@pytest.mark.parametrize("dim", [None, 0, -1])
def test_softmax_family_takes_a_0d_input(cls, dim):
    x = np.array(1.5, np.float64)
    layer, twin = getattr(nn, cls)(dim), getattr(torch.nn, cls)(dim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _layer_vs_torch(layer, twin, x, np.random.default_rng(3), np.float64)
    with pytest.raises(ValueError, match="out of range"):
        getattr(nn, cls)(1)(x)


@pytest.mark.parametrize("dims", [(0, 0), (0, -1), (-1, -1)])
def test_flatten_of_a_0d_input(dims):
    layer = nn.Flatten(*dims)
    y = layer(np.array(2.0, np.float32))
    assert y.shape == tuple(torch.nn.Flatten(*dims)(torch.tensor(2.0)).shape) == (1,)
    assert layer.backward(np.ones(1, np.float32)).shape == ()
    with pytest.raises(ValueError, match="cannot flatten"):
        nn.Flatten()(np.array(2.0, np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [1e-8, 0.5])
def test_cosine_similarity_gradient_through_clamped_norms(dtype, eps):
    """PyTorch clamps the norms' values outside autograd: the gradient through a norm is
    x / ||x|| (0 for a zero x) even where the norm was clamped at eps."""
    rng = np.random.default_rng(4)
    a = rng.standard_normal((6, 4)).astype(dtype)
    b = rng.standard_normal((6, 4)).astype(dtype)
    a[0], b[1], a[2], b[3] = 0, 0, 1e-3, 0.1
    layer = nn.CosineSimilarity(1, eps)
    y = layer(a, b)
    g = rng.standard_normal(6).astype(dtype)
    ga, gb = layer.backward(g)
    ta, tb = (torch.from_numpy(v.copy()).requires_grad_() for v in (a, b))
    ty = torch.nn.CosineSimilarity(1, eps)(ta, tb)
    ty.backward(torch.from_numpy(g))
    _close(y, ty, dtype)
    _close(ga, ta.grad, dtype)
    _close(gb, tb.grad, dtype)
    # broadcast along dim: one row repeated, its norm clamped
    c = np.full((3, 1), 0.05, dtype)
    x = rng.standard_normal((2, 3, 4)).astype(dtype)
    _layer_vs_torch_pair(nn.CosineSimilarity(2, eps), torch.nn.CosineSimilarity(2, eps),
                         x, c, rng, dtype)


def _layer_vs_torch_pair(layer, twin, a, b, rng, dtype):
    y = layer(a, b)
    g = rng.standard_normal(y.shape).astype(dtype)
    grads = layer.backward(g)
    ta, tb = (torch.from_numpy(v.copy()).requires_grad_() for v in (a, b))
    twin(ta, tb).backward(torch.from_numpy(g))
    _close(grads[0], ta.grad, dtype)
    _close(grads[1], tb.grad, dtype)


@pytest.mark.parametrize("p", [2.0, float("inf"), -float("inf"), 1.0])
def test_pairwise_distance_gradients_keep_the_dtype(p):
    rng = np.random.default_rng(5)
    a = rng.standard_normal((4, 5)).astype(np.float32)
    b = rng.standard_normal((1, 5)).astype(np.float32)
    _layer_vs_torch_pair(nn.PairwiseDistance(p), torch.nn.PairwiseDistance(p), a, b, rng,
                         np.float32)
    if p == 2.0:  # a NaN entry makes its row's distance, and whole gradient row, NaN
        a[1, 2] = np.nan
        _layer_vs_torch_pair(nn.PairwiseDistance(p), torch.nn.PairwiseDistance(p), a, b, rng,
                             np.float32)


UPSAMPLE_CASES = [
    ((2, 3, 3), dict(scale_factor=1.3333)),              # 1-D: out == in, no shortcut fwd
    ((2, 3, 2), dict(scale_factor=2.2)),                 # 1-D: out == 2 in
    ((2, 3, 4, 3), dict(scale_factor=1.3333)),           # 2-D: shortcut for W 3 -> 3
    ((1, 2, 2, 3, 4), dict(scale_factor=(1.5, 2.0, 0.7))),
    ((1, 2, 2, 3, 4), dict(size=(3, 5, 2))),
    ((2, 3, 5), dict(scale_factor=1.7, mode="nearest-exact")),
    ((2, 3, 4, 5), dict(size=(7, 3), mode="nearest-exact")),
    ((1, 2, 2, 3, 4), dict(scale_factor=1.5, mode="nearest-exact")),
    ((2, 3, 3, 2), dict(scale_factor=(0.5, 1.3333), mode="bilinear")),  # W copies
    ((2, 3, 5), dict(scale_factor=1.3333, mode="linear", recompute_scale_factor=True)),
    ((2, 2, 4, 5), dict(scale_factor=1.7, mode="bicubic")),
    ((2, 2, 4, 5), dict(size=(3, 8), mode="bicubic", align_corners=True)),
    ((2, 2, 2, 2), dict(scale_factor=(1.3333, 1.0), mode="bicubic")),  # PyTorch's bwd copy
    ((1, 2, 2, 3, 4), dict(scale_factor=(2.0, 1.5, 0.5), mode="trilinear")),
    ((1, 2, 2, 3, 4), dict(size=(3, 3, 7), mode="trilinear", align_corners=True)),
    ((2, 3, 7), dict(size=3, mode="area")),
    ((2, 3, 5, 7), dict(scale_factor=0.6, mode="area")),
    ((1, 2, 4, 3, 5), dict(size=(2, 5, 3), mode="area")),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kwargs", UPSAMPLE_CASES,
                         ids=[f"{len(s) - 2}d-{k.get('mode', 'nearest')}-{i}"
                              for i, (s, k) in enumerate(UPSAMPLE_CASES)])
def test_upsample_modes_match_torch(dtype, shape, kwargs):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape).astype(dtype)
    layer, twin = nn.Upsample(**kwargs), torch.nn.Upsample(**kwargs)
    _layer_vs_torch(layer, twin, x, rng, dtype)
    assert repr(layer) == repr(twin)
    _close(F.interpolate(x, **kwargs), TF.interpolate(torch.from_numpy(x), **kwargs), dtype)


@pytest.mark.parametrize("kwargs,shape,error", [
    (dict(scale_factor=2, align_corners=True), (1, 1, 4, 4), ValueError),
    (dict(scale_factor=2, size=3), (1, 1, 4, 4), ValueError),
    (dict(), (1, 1, 4, 4), ValueError),
    (dict(size=(3, 4, 5)), (1, 1, 4, 4), ValueError),
    (dict(size=3, recompute_scale_factor=True), (1, 1, 4, 4), ValueError),
    (dict(scale_factor=2, mode="bilinear"), (1, 1, 4), NotImplementedError),
    (dict(scale_factor=2, mode="cubic"), (1, 1, 4, 4), NotImplementedError),
    (dict(scale_factor=2), (1, 4), NotImplementedError),
    (dict(scale_factor=0.1), (1, 1, 4, 4), RuntimeError),
    (dict(scale_factor=2, antialias=True), (1, 1, 4, 4), ValueError),
])
def test_interpolate_errors_as_torch(kwargs, shape, error):
    x = np.zeros(shape, np.float32)
    with pytest.raises(error):
        TF.interpolate(torch.from_numpy(x), **kwargs)
    with pytest.raises(error):
        F.interpolate(x, **kwargs)


def test_upsample_rejects_the_wrong_rank_for_its_mode():
    with pytest.raises(ValueError, match="mode 'trilinear' expects a 5-D input"):
        nn.Upsample(scale_factor=2, mode="trilinear")(np.zeros((1, 1, 2, 2), np.float32))
    with pytest.raises(ValueError, match="recompute_scale_factor is not meaningful"):
        nn.Upsample(size=3, recompute_scale_factor=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_new_functional_forms_match_torch(dtype):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 4, 3, 6)).astype(dtype)
    x.reshape(-1)[:4] = [np.nan, 0.5, -0.5, 0.0]
    t = torch.from_numpy(x)
    for name, args in [("hardshrink", (1.0,)), ("softshrink", (0.5,)), ("tanhshrink", ()),
                       ("threshold", (0.1, 20.0)), ("glu", (1,)), ("pixel_shuffle", (2,)),
                       ("pixel_unshuffle", (3,)), ("channel_shuffle", (2,)),
                       ("unfold", ((2, 3),))]:
        _close(getattr(F, name)(x, *args), getattr(TF, name)(t, *args), dtype)
    for w in (np.array([0.3], dtype), np.array([0.1, -0.2, 0.3, 0.4], dtype)):
        _close(F.prelu(x, w), TF.prelu(t, torch.from_numpy(w)), dtype)
    cols = TF.unfold(t, 2, padding=1, stride=2)
    _close(F.fold(cols.numpy(), (3, 6), 2, padding=1, stride=2),
           TF.fold(cols, (3, 6), 2, padding=1, stride=2), dtype)
    for call, error in [(lambda m, a: m.glu(a, 2), RuntimeError),
                        (lambda m, a: m.glu(a, 4), IndexError),
                        (lambda m, a: m.softshrink(a, -1.0), RuntimeError),
                        (lambda m, a: m.pixel_shuffle(a, 3), RuntimeError),
                        (lambda m, a: m.channel_shuffle(a, 3), RuntimeError),
                        (lambda m, a: m.unfold(a, 7), RuntimeError)]:
        with pytest.raises(error):
            call(TF, t)
        with pytest.raises(error):
            call(F, x)


def test_functional_channel_dropouts():
    fastnn.manual_seed(0)
    x = np.ones((200, 30, 3, 3), np.float32)
    for fn, a in ((F.dropout1d, x.reshape(200, 30, 9)), (F.dropout2d, x),
                  (F.dropout3d, x.reshape(200, 30, 3, 3, 1))):
        y = fn(a, 0.3)
        blocks = y.reshape(200, 30, -1)
        dropped = (blocks == 0).all(-1)
        assert (dropped | (blocks == np.float32(1 / 0.7)).all(-1)).all()  # whole channels
        assert abs(dropped.mean() - 0.3) < 0.03
        assert fn(a, 0.3, training=False) is a
        assert (fn(a, 1.0) == 0).all()
    with pytest.raises(RuntimeError, match="Expected 2D or 3D input"):
        F.dropout1d(x, 0.5)
    with pytest.raises(ValueError, match="dropout probability"):
        F.dropout2d(x, 1.5)
    # alpha dropouts default to training=False, as PyTorch's
    assert F.alpha_dropout(x) is x and F.feature_alpha_dropout(x) is x
    y = F.feature_alpha_dropout(x, 0.5, training=True).reshape(200, 30, -1)
    assert (y == y[..., :1]).all()  # one value per channel


@pytest.mark.parametrize("name,args,shape", [
    ("ZeroPad2d", ((-1, 2, 0, -2),), (2, 3, 4, 5)),
    ("ConstantPad1d", ((2, -3), 1.5), (3, 6)),
    ("ReflectionPad1d", ((-1, 2),), (2, 3, 5)),
    ("ReflectionPad2d", (-1,), (1, 2, 4, 5)),
    ("ReplicationPad3d", ((1, -2, -1, 2, 0, -1),), (1, 2, 3, 4, 5)),
    ("CircularPad1d", ((2, -1),), (2, 3, 4)),
    ("CircularPad2d", ((-1, 2, 1, -1),), (2, 3, 4, 5)),
])
def test_padding_layers_crop_with_negative_padding(name, args, shape):
    """A negative padding crops (PyTorch's; it was rejected): after padding the other
    side, or before the wrap for circular; the cropped values get a 0 gradient."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal(shape)
    _layer_vs_torch(getattr(nn, name)(*args), getattr(torch.nn, name)(*args), x, rng,
                    np.float64)


def test_pad_allows_one_empty_axis_for_reflect_and_replicate():
    x = np.zeros((1, 1, 3, 3))
    for mode in ("reflect", "replicate"):
        assert F.pad(x, (0, -3, 0, 0), mode=mode).shape == (1, 1, 3, 0)
        for pad in ((0, -3, -3, 0),):
            with pytest.raises(RuntimeError):
                TF.pad(torch.from_numpy(x), pad, mode=mode)
            with pytest.raises(RuntimeError, match="too small"):
                F.pad(x, pad, mode=mode)
        with pytest.raises(ValueError, match="too small"):
            getattr(nn, "ReflectionPad1d" if mode == "reflect" else "ReplicationPad1d")(
                (0, -3))(x[0])
