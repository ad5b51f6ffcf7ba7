"""fastnn.nn.functional against torch.nn.functional 2.13 (non-loss functions): the
functions added to cover what course code calls (in-place twins, rrelu, bilinear,
rms_norm, instance_norm, local_response_norm, the 3-D / adaptive-max / LP pools and
unpooling, fractional max pooling, pdist, scaled_dot_product_attention, gumbel_softmax,
affine_grid and grid_sample, the deprecated upsample forms, embedding_bag, conv_tbc),
their values, dtypes, shapes and PyTorch's exception types, and the randomised options of
the older functions probed against torch (activations on non-contiguous input, softmax
dims and dtype, pad's negative pads, interpolate's modes)."""
import warnings

import numpy as np
import pytest

import fastnn
from fastnn.nn import functional as F

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

from conftest import assert_close  # noqa: E402

torch.set_num_threads(1)


def _t(a):
    return None if a is None else torch.from_numpy(np.array(a, copy=True))


def same(ours, theirs, dtype, scale=1.0):
    """ours (NumPy) equals theirs (a tensor or a tuple of them): shape, dtype, values."""
    if isinstance(theirs, (tuple, list)):
        assert isinstance(ours, (tuple, list)) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            same(a, b, dtype, scale)
        return
    expected = theirs.detach().numpy()
    assert isinstance(ours, np.ndarray)
    assert (ours.shape, ours.dtype) == (expected.shape, expected.dtype)
    if expected.dtype.kind in "iub":
        np.testing.assert_array_equal(ours, expected)
    else:
        assert_close(ours, expected, dtype, scale)


def both(name, *args, dtype=np.float32, scale=1.0, **kwargs):
    """F.name and TF.name on copies of the same arguments agree."""
    same(getattr(F, name)(*args, **kwargs), getattr(TF, name)(*map(_t_or, args),
                                                              **{k: _t_or(v) for k, v in
                                                                 kwargs.items()}),
         dtype, scale)


def _t_or(v):
    return _t(v) if isinstance(v, np.ndarray) else v


ADDED = ["relu_", "elu_", "leaky_relu_", "hardtanh_", "celu_", "selu_", "threshold_",
         "rrelu", "rrelu_", "bilinear", "rms_norm", "instance_norm", "local_response_norm",
         "max_pool1d_with_indices", "max_pool2d_with_indices", "max_pool3d",
         "max_pool3d_with_indices", "avg_pool3d", "lp_pool1d", "lp_pool2d", "lp_pool3d",
         "adaptive_avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d",
         "adaptive_max_pool3d", "adaptive_max_pool2d_with_indices", "max_unpool1d",
         "max_unpool2d", "max_unpool3d", "fractional_max_pool2d", "fractional_max_pool3d",
         "pdist", "scaled_dot_product_attention", "gumbel_softmax", "affine_grid",
         "grid_sample", "upsample", "upsample_nearest", "upsample_bilinear",
         "native_channel_shuffle", "embedding_bag", "conv_tbc"]


def test_added_names_exported_documented_and_in_torch():
    for name in ADDED:
        assert name in F.__all__ and getattr(F, name).__doc__, name
        assert hasattr(TF, name) or hasattr(torch, name), name
    assert len(set(F.__all__)) == len(F.__all__)


def test_in_place_twins(backend, dtype, rng):
    x = (rng.standard_normal((3, 5)) * 3).astype(dtype)
    for name, args in (("relu_", ()), ("elu_", (0.5,)), ("leaky_relu_", (0.2,)),
                       ("hardtanh_", (-0.5, 0.7)), ("celu_", (1.3,)), ("selu_", ()),
                       ("threshold_", (0.2, -1.0)), ("rrelu_", (0.1, 0.3))):
        for a in (x.copy(), x.copy().T):  # contiguous or not
            expected = getattr(TF, name, getattr(torch, name, None))(_t(a), *args)
            assert getattr(F, name)(a, *args) is a
            same(a, expected, dtype)


def test_rrelu(dtype):
    fastnn.manual_seed(0)
    x = np.linspace(-3, 3, 24, dtype=dtype).reshape(4, 6)
    both("rrelu", x, 0.1, 0.3, dtype=dtype)  # eval: slope (lower + upper) / 2
    y = F.rrelu(-np.ones((200, 100), dtype), 0.1, 0.3, training=True)
    slopes = -y
    assert y.dtype == dtype and slopes.min() >= 0.1 and slopes.max() <= 0.3
    assert abs(slopes.mean() - 0.2) < 0.01 and len(np.unique(slopes)) > 1000
    assert (F.rrelu(np.ones(5, dtype), training=True) == 1).all()
    for training in (False, True):
        with pytest.raises(RuntimeError):
            F.rrelu(x, 0.5, 0.2, training=training)


def test_bilinear_and_norms(dtype, rng):
    x1 = rng.standard_normal((2, 3, 4)).astype(dtype)
    x2 = rng.standard_normal((2, 3, 5)).astype(dtype)
    w = rng.standard_normal((6, 4, 5)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    both("bilinear", x1, x2, w, b, dtype=dtype, scale=10)
    both("bilinear", x1[0, 0], x2[0, 0], w, dtype=dtype, scale=10)
    with pytest.raises(RuntimeError):
        F.bilinear(x1, x2[:1], w)
    x = (rng.standard_normal((2, 4, 3, 5)) * 2 + 1).astype(dtype)
    both("rms_norm", x, (3, 5), rng.standard_normal((3, 5)).astype(dtype), eps=1e-3,
         dtype=dtype, scale=10)
    both("rms_norm", x, [5], dtype=dtype, scale=10)  # eps None: the dtype's epsilon
    for size in (1, 2, 3, 5):
        both("local_response_norm", x, size, alpha=0.1, beta=0.6, k=1.5, dtype=dtype,
             scale=10)
    with pytest.raises(ValueError):
        F.local_response_norm(x[0, 0], 2)


def test_instance_norm(dtype, rng):
    x = (rng.standard_normal((3, 4, 5, 2)) * 2 + 0.5).astype(dtype)
    w, b = rng.standard_normal(4).astype(dtype), rng.standard_normal(4).astype(dtype)
    both("instance_norm", x, dtype=dtype, scale=10)
    both("instance_norm", x, weight=w, bias=b, eps=1e-3, dtype=dtype, scale=10)
    for use_input_stats in (True, False):
        rm, rv = rng.standard_normal(4).astype(dtype), rng.uniform(0.5, 2, 4).astype(dtype)
        trm, trv = _t(rm), _t(rv)
        y = F.instance_norm(x, rm, rv, w, b, use_input_stats=use_input_stats, momentum=0.3)
        t = TF.instance_norm(_t(x), trm, trv, _t(w), _t(b),
                             use_input_stats=use_input_stats, momentum=0.3)
        same((y, rm, rv), (t, trm, trv), dtype, 10)
    with pytest.raises(ValueError):  # one spatial element
        F.instance_norm(x[:, :, :1, :1])
    with pytest.raises(ValueError):  # running_mean without running_var
        F.instance_norm(x, np.zeros(4, dtype))


def test_more_pools(dtype, rng):
    x5 = rng.standard_normal((2, 3, 6, 7, 5)).astype(dtype)
    x4, x3 = x5[:, :, 0], x5[:, :, 0, 0]
    both("max_pool3d", x5, 3, 2, 1, ceil_mode=True, return_indices=True, dtype=dtype)
    both("max_pool3d", x5[0], (2, 3, 2), dilation=2, dtype=dtype)
    both("avg_pool3d", x5, 3, 2, 1, ceil_mode=True, count_include_pad=False, dtype=dtype)
    both("avg_pool3d", x5, 2, divisor_override=3, dtype=dtype)
    for name, x in (("lp_pool1d", x3), ("lp_pool2d", x4), ("lp_pool3d", x5)):
        both(name, np.abs(x), 2.0, 2, 1, ceil_mode=True, dtype=dtype, scale=10)
        both(name, x, 3, 2, dtype=dtype, scale=10)
    both("adaptive_avg_pool3d", x5, (4, None, 3), dtype=dtype)
    for name, x in (("adaptive_max_pool1d", x3), ("adaptive_max_pool2d", x4),
                    ("adaptive_max_pool3d", x5)):
        both(name, x, 4, dtype=dtype)
        both(name, x, 3, return_indices=True, dtype=dtype)
    both("adaptive_max_pool2d_with_indices", x4, (4, 2), dtype=dtype)
    both("max_pool2d_with_indices", x4, 3, 2, 1, dtype=dtype)
    both("max_pool1d_with_indices", x3, 2, dtype=dtype)
    both("max_pool3d_with_indices", x5, 2, dtype=dtype)
    for dims, x in ((1, x3), (2, x4), (3, x5)):
        name = f"max_unpool{dims}d"
        even = np.ascontiguousarray(x[(Ellipsis,) + (slice(0, 4),) * dims])
        y, idx = getattr(TF, f"max_pool{dims}d")(_t(even), 2, 2, return_indices=True)
        both(name, y.numpy(), idx.numpy(), 2, dtype=dtype)
        y, idx = getattr(TF, f"max_pool{dims}d")(_t(x), 2, 2, return_indices=True)
        size = x.shape[-dims:]  # (odd sizes: one more than the default)
        both(name, y.numpy(), idx.numpy(), 2, output_size=size, dtype=dtype)
        with pytest.raises(ValueError):
            getattr(F, name)(y.numpy(), idx.numpy(), 2, output_size=(40,) * dims)
    with pytest.raises(ZeroDivisionError):
        F.lp_pool2d(x4, 0, 2)
    with pytest.raises(RuntimeError):
        F.max_pool3d(x5, 2, padding=2)


def test_fractional_max_pool(dtype, rng):
    x = rng.standard_normal((2, 3, 9, 8)).astype(dtype)
    samples = rng.random((2, 3, 2)).astype(dtype)
    both("fractional_max_pool2d", x, 2, output_size=4, _random_samples=samples, dtype=dtype)
    both("fractional_max_pool2d", x, (2, 3), output_ratio=(0.5, 0.5), return_indices=True,
         _random_samples=samples, dtype=dtype)
    both("fractional_max_pool2d", x, 2, output_size=3, output_ratio=0.5,  # size wins
         _random_samples=samples, dtype=dtype)
    x3 = rng.standard_normal((2, 3, 6, 5, 7)).astype(dtype)
    both("fractional_max_pool3d", x3, 2, output_size=(3, 2, 4), return_indices=True,
         _random_samples=rng.random((2, 3, 3)).astype(dtype), dtype=dtype)
    assert F.fractional_max_pool2d(x, 2, output_ratio=0.5).shape == (2, 3, 4, 4)
    with pytest.raises(ValueError):
        F.fractional_max_pool2d(x, 2)


def test_pdist(dtype, rng):
    m = rng.standard_normal((5, 3)).astype(dtype)
    for p in (0, 0.5, 1, 2, 3, float("inf")):
        both("pdist", m, p, dtype=dtype, scale=10)
    both("pdist", m[:1], dtype=dtype)
    with pytest.raises(RuntimeError):
        F.pdist(m, -1)
    with pytest.raises(RuntimeError):
        F.pdist(m[None])


def test_scaled_dot_product_attention(backend, dtype, rng):
    q = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    k = rng.standard_normal((2, 3, 6, 5)).astype(dtype)
    v = rng.standard_normal((2, 3, 6, 2)).astype(dtype)
    both("scaled_dot_product_attention", q, k, v, dtype=dtype, scale=10)
    both("scaled_dot_product_attention", q, k, v, is_causal=True, dtype=dtype, scale=10)
    mask = rng.random((4, 6)) < 0.5
    mask[0] = False  # a query with no key: 0, as PyTorch 2.13
    both("scaled_dot_product_attention", q, k, v, attn_mask=mask, dtype=dtype, scale=10)
    both("scaled_dot_product_attention", q, k, v,
         attn_mask=rng.standard_normal((3, 4, 6)).astype(dtype), dtype=dtype, scale=10)
    both("scaled_dot_product_attention", q[0, 0], k[0, 0], v[0, 0], dtype=dtype, scale=10)
    both("scaled_dot_product_attention", q, k[:, :1], v[:, :1], enable_gqa=True,
         dtype=dtype, scale=10)
    y = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    same(y, TF.scaled_dot_product_attention(_t(q), _t(k), _t(v), scale=0.3), dtype, 10)
    with pytest.raises(RuntimeError):
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=True)
    with pytest.raises(RuntimeError):
        F.scaled_dot_product_attention(q, k[:, :2], v[:, :2])
    fastnn.manual_seed(0)
    ones = np.ones_like(k)
    assert abs(F.scaled_dot_product_attention(q, k, ones, dropout_p=0.5).mean() - 1) < 0.2


def test_gumbel_softmax(dtype):
    fastnn.manual_seed(0)
    logits = np.tile(np.log(np.array([0.1, 0.2, 0.7], dtype)), (20000, 1))
    hard = F.gumbel_softmax(logits, tau=0.5, hard=True)
    assert hard.dtype == dtype and set(np.unique(hard)) <= {0.0, 1.0}
    assert (hard.sum(axis=1) == 1).all()
    np.testing.assert_allclose(hard.mean(axis=0), [0.1, 0.2, 0.7], atol=0.015)
    soft = F.gumbel_softmax(logits.T, tau=2.0, dim=0)
    expected = TF.gumbel_softmax(_t(logits.T), tau=2.0, dim=0).numpy()
    np.testing.assert_allclose(soft.sum(axis=0), 1, atol=1e-5)
    np.testing.assert_allclose(soft.mean(axis=1), expected.mean(axis=1), atol=0.01)


@pytest.mark.parametrize("align_corners", [False, True])
def test_affine_grid_and_grid_sample(dtype, rng, align_corners):
    theta = (np.eye(2, 3) + rng.standard_normal((2, 2, 3)) * 0.5).astype(dtype)
    both("affine_grid", theta, (2, 3, 5, 4), align_corners=align_corners, dtype=dtype)
    theta3 = (np.eye(3, 4) + rng.standard_normal((2, 3, 4)) * 0.5).astype(dtype)
    both("affine_grid", theta3, (2, 3, 3, 4, 2), align_corners=align_corners, dtype=dtype)
    x = rng.standard_normal((2, 3, 5, 6)).astype(dtype)
    grid = rng.uniform(-1.4, 1.4, (2, 4, 7, 2)).astype(dtype)
    x3 = rng.standard_normal((2, 2, 4, 3, 5)).astype(dtype)
    grid3 = rng.uniform(-1.4, 1.4, (2, 2, 3, 4, 3)).astype(dtype)
    for mode in ("bilinear", "nearest", "bicubic"):
        for padding_mode in ("zeros", "border", "reflection"):
            kwargs = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
            both("grid_sample", x, grid, dtype=dtype, scale=20, **kwargs)
            if mode != "bicubic":
                both("grid_sample", x3, grid3, dtype=dtype, scale=20, **kwargs)
    with pytest.warns(UserWarning, match="align_corners"):
        F.grid_sample(x, grid)
    with pytest.raises(ValueError):
        F.grid_sample(x, grid, mode="area", align_corners=False)
    with pytest.raises(RuntimeError):
        F.grid_sample(x3, grid3, mode="bicubic", align_corners=False)
    with pytest.raises(ValueError):
        F.affine_grid(theta3, (2, 3, 5, 4), align_corners=False)


def test_upsample_embedding_bag_conv_tbc(dtype, rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        both("upsample", x, scale_factor=2, mode="bilinear", dtype=dtype)
        both("upsample_nearest", x, size=(7, 3), dtype=dtype)
        both("upsample_bilinear", x, scale_factor=1.5, dtype=dtype, scale=10)
    with pytest.warns(UserWarning, match="deprecated"):
        F.upsample_nearest(x, scale_factor=2)
    both("native_channel_shuffle", x, 3, dtype=dtype)
    w = rng.standard_normal((8, 3)).astype(dtype)
    idx = rng.integers(0, 8, 10)
    offsets = np.array([0, 3, 3, 7])
    for mode in ("sum", "mean", "max"):
        both("embedding_bag", idx.reshape(2, 5), w, mode=mode, dtype=dtype)
        both("embedding_bag", idx, w, offsets, mode=mode, padding_idx=int(idx[0]),
             dtype=dtype)
    both("embedding_bag", idx, w, offsets, mode="sum",
         per_sample_weights=rng.standard_normal(10).astype(dtype), dtype=dtype)
    w2, tw = w.copy(), _t(w)
    same(F.embedding_bag(idx.reshape(2, 5), w2, max_norm=1.0),
         TF.embedding_bag(_t(idx.reshape(2, 5)), tw, max_norm=1.0), dtype)
    same(w2, tw, dtype)  # the referenced rows renormalised in place
    with pytest.raises(RuntimeError):
        F.embedding_bag(idx.reshape(2, 5) + 8, w)
    with pytest.raises(ValueError):
        F.embedding_bag(idx.reshape(2, 5), w, mode="min")
    xt = rng.standard_normal((7, 2, 3)).astype(dtype)
    for pad in (0, 2):
        both("conv_tbc", xt, rng.standard_normal((3, 3, 4)).astype(dtype),
             rng.standard_normal(4).astype(dtype), pad, dtype=dtype, scale=10)


# ------------------------------------------------------- older functions, randomised
ACTIVATIONS = [("relu", {}), ("hardtanh", {"min_val": -2.0, "max_val": 0.5}),
               ("softplus", {"beta": 0.5, "threshold": 3}), ("gelu", {"approximate": "tanh"}),
               ("celu", {"alpha": -0.5}), ("leaky_relu", {"negative_slope": -0.2}),
               ("threshold", {"threshold": 0.1, "value": -3.0}), ("softshrink", {"lambd": 0.3}),
               ("logsigmoid", {}), ("mish", {}), ("hardswish", {}), ("tanhshrink", {})]


def test_older_functions_randomised(backend, dtype):
    rng = np.random.default_rng(11)
    for _ in range(3):
        shape = tuple(int(v) for v in rng.integers(1, 5, rng.integers(2, 5)))
        x = (rng.standard_normal(shape) * 5).astype(dtype).swapaxes(0, -1)  # not contiguous
        for name, kwargs in ACTIVATIONS:
            both(name, x, dtype=dtype, **kwargs)
        for fn in ("softmax", "log_softmax", "softmin"):
            for dim in range(-x.ndim, x.ndim):
                both(fn, x, dim=dim, dtype=dtype)
            same(getattr(F, fn)(x, dim=-1, dtype=np.float64),
                 getattr(TF, fn)(_t(x), dim=-1, dtype=torch.float64), np.float64)
        pads = tuple(int(v) for v in rng.integers(-1, 3, 4))
        y = (rng.standard_normal((2, 3, 4, 5)) * 5).astype(dtype)
        for mode in ("constant", "reflect", "replicate", "circular"):
            both("pad", y, pads, mode=mode, dtype=dtype)
    x = rng.standard_normal((2, 3, 5, 4)).astype(dtype)
    for mode, extra in (("nearest", {}), ("nearest-exact", {}), ("area", {}),
                        ("bilinear", {"align_corners": True}), ("bicubic", {})):
        both("interpolate", x, scale_factor=(1.7, 0.6), mode=mode, dtype=dtype, scale=10,
             **extra)
        both("interpolate", x, size=(3, 7), mode=mode, dtype=dtype, scale=10, **extra)
