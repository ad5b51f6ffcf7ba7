"""Probe of the resampling ops against PyTorch 2.13: padding, interpolation, folding,
adaptive pools (tests of defects the earlier probes missed)."""
import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as TF

from fastnn import nn
from fastnn.nn import functional as F


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
@pytest.mark.parametrize("shape,pad", [((0, 2), (1, 0)), ((4, 0, 3, 3), (0, 3, 1, 2)),
                                       ((2, 4, 5, 0), (1, 3, 0, 2)),
                                       ((1, 0, 2, 2, 2), (1, 1, 1, 1, 1, 1))])
def test_border_pad_refuses_empty_non_batch_dims(mode, shape, pad):
    # PyTorch's reflection and replication pads take an empty batch, no other empty size
    x = np.ones(shape, np.float32)
    with pytest.raises(RuntimeError):
        TF.pad(torch.from_numpy(x), pad, mode=mode)
    with pytest.raises(RuntimeError, match="non-zero"):
        F.pad(x, pad, mode=mode)
    k = len(pad) // 2
    layer = {"reflect": "ReflectionPad", "replicate": "ReplicationPad"}[mode] + f"{k}d"
    with pytest.raises(ValueError, match="non-zero"):
        getattr(nn, layer)(pad).forward(x)


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
def test_border_pad_takes_empty_batch(mode):
    x = np.ones((0, 3, 5), np.float64)
    ours = F.pad(x, (1, 2), mode=mode)
    assert ours.shape == tuple(TF.pad(torch.from_numpy(x), (1, 2), mode=mode).shape)
    assert nn.ReflectionPad1d((1, 2)).forward(x).shape == (0, 3, 8)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("zero_axis", [0, 1])
def test_adaptive_pools_empty_channels(dims, kind, zero_axis):
    # PyTorch: an unbatched input may have no channels (all six pools); a batched one may
    # not for the max pools (the average pools take it)
    for batched in (False, True):
        shape = [2] * batched + [3] + [4] * dims
        shape[zero_axis] = 0
        x = np.ones(shape, np.float32)
        name = f"adaptive_{kind}_pool{dims}d"
        try:
            expected = tuple(getattr(TF, name)(torch.from_numpy(x), 3).shape)
        except RuntimeError:
            with pytest.raises(RuntimeError):
                getattr(F, name)(x, 3)
            with pytest.raises(ValueError):
                getattr(nn, f"Adaptive{kind.title()}Pool{dims}d")(3).forward(x)
            continue
        assert getattr(F, name)(x, 3).shape == expected
        layer = getattr(nn, f"Adaptive{kind.title()}Pool{dims}d")(3)
        assert layer.forward(x).shape == expected
        assert layer.backward(np.ones(expected, np.float32)).shape == x.shape


@pytest.mark.parametrize("dims", [1, 2])
def test_adaptive_avg_pool_shape_error_is_runtime_error(dims):
    x = np.ones((2, 3) + (0,) * dims, np.float32)
    with pytest.raises(RuntimeError):
        getattr(TF, f"adaptive_avg_pool{dims}d")(torch.from_numpy(x), 2)
    with pytest.raises(RuntimeError):
        getattr(F, f"adaptive_avg_pool{dims}d")(x, 2)


@pytest.mark.parametrize("shapes", [((4,), ()), ((), (4,)), ((), ()), ((2, 3), ())])
def test_cosine_similarity_and_pairwise_distance_take_0d_inputs(shapes):
    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal(s) for s in shapes)
    for keepdim in (False, True):
        for p in (2.0, 1.0, float("inf"), 0.0):
            xt, yt = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
            want = TF.pairwise_distance(xt, yt, p, 1e-6, keepdim)
            got = F.pairwise_distance(x, y, p, 1e-6, keepdim)
            assert got.shape == tuple(want.shape)
            np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-12)
            layer = nn.PairwiseDistance(p, 1e-6, keepdim)
            np.testing.assert_allclose(layer.forward(x, y), want.detach().numpy(), rtol=1e-12)
            if p == 2.0:
                want.sum().backward()
                gx, gy = layer.backward(np.ones(want.shape))
                np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-10)
                np.testing.assert_allclose(gy, yt.grad.numpy(), rtol=1e-10)
    xt, yt = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    want = TF.cosine_similarity(xt, yt, -1)
    want.sum().backward()
    assert F.cosine_similarity(x, y, -1).shape == tuple(want.shape)
    layer = nn.CosineSimilarity(-1)
    np.testing.assert_allclose(layer.forward(x, y), want.detach().numpy(), rtol=1e-12)
    gx, gy = layer.backward(np.ones(want.shape))
    np.testing.assert_allclose(gx, xt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(gy, yt.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("p", [float("inf"), -float("inf")])
@pytest.mark.parametrize("shape,dim", [((3, 0), 1), ((0, 3), 0), ((2, 0, 3), 1), ((0,), 0)])
def test_infinite_norm_over_empty_axis_is_runtime_error(p, shape, dim):
    x = np.ones(shape, np.float32)
    with pytest.raises(RuntimeError):
        TF.normalize(torch.from_numpy(x), p, dim)
    with pytest.raises(RuntimeError, match="empty"):
        F.normalize(x, p, dim)
    if dim == len(shape) - 1:
        with pytest.raises(RuntimeError, match="empty"):
            F.pairwise_distance(x, x, p)


def _same_error(call_torch, call_ours):
    with pytest.raises(Exception) as theirs:
        call_torch()
    with pytest.raises(type(theirs.value)):
        call_ours()


@pytest.mark.parametrize("shape,mode,kwargs", [
    ((1, 2, 4), "nearest", {"scale_factor": float("nan")}),
    ((1, 2, 4), "linear", {"scale_factor": float("inf")}),
    ((1, 2, 4), "bilinear", {"scale_factor": float("nan")}),     # the mode's rank first
    ((1, 2, 4, 4), "area", {"scale_factor": float("nan")}),      # Python's math.floor
    ((1, 2, 4, 4), "area", {"scale_factor": float("inf")}),
    ((1, 2, 4, 4), "nearest", {"scale_factor": float("inf"), "recompute_scale_factor": True}),
    ((1, 2, 4, 4), "nearest", {"size": (2, 2.0)}),
    ((1, 2, 4, 4), "bilinear", {"size": (None, 3)}),
    ((1, 2, 4), "nearest", {"size": 2.5}),
    ((1, 2, 4, 4), "nearest", {"scale_factor": (None, 2)}),
    ((2, 0, 4), "linear", {"size": 3}),
    ((2, 0, 4, 4), "nearest", {"scale_factor": 2}),
    ((0, 0, 4, 4), "bicubic", {"size": 3}),
    ((2, 0, 3, 4, 4), "area", {"size": 2}),
    ((2, 0, 3, 4, 4), "area", {"size": 0}),
])
def test_interpolate_refuses_as_torch(shape, mode, kwargs):
    x = np.ones(shape, np.float32)
    _same_error(lambda: TF.interpolate(torch.from_numpy(x), mode=mode, **kwargs),
                lambda: F.interpolate(x, mode=mode, **kwargs))


@pytest.mark.parametrize("shape,mode", [((2, 0, 4), "area"), ((2, 0, 4, 4), "area"),
                                        ((0, 2, 4, 4), "bilinear"), ((0, 2, 5), "linear")])
def test_interpolate_takes_empty_batch_and_area_channels(shape, mode):
    x = np.ones(shape, np.float32)
    want = TF.interpolate(torch.from_numpy(x), size=3, mode=mode).shape
    assert F.interpolate(x, size=3, mode=mode).shape == tuple(want)


def test_upsample_layer_refuses_no_channels():
    with pytest.raises(ValueError, match="channels"):
        nn.Upsample(size=3, mode="bilinear").forward(np.ones((2, 0, 4, 4), np.float32))
    assert nn.Upsample(size=3, mode="area").forward(
        np.ones((2, 0, 4, 4), np.float32)).shape == (2, 0, 3, 3)


@pytest.mark.parametrize("name,args", [
    ("unfold", ((1, 2, 5, 5), dict(kernel_size=0))),
    ("unfold", ((1, 2, 5, 5), dict(kernel_size=2, stride=0))),
    ("unfold", ((1, 2, 5, 5), dict(kernel_size=2, padding=-1))),
    ("unfold", ((1, 2, 5, 5), dict(kernel_size=(2, 2, 2)))),
    ("unfold", ((1, 2, 5, 5), dict(kernel_size=2.0))),
    ("fold", ((1, 4, 16), dict(output_size=(5, 5), kernel_size=2, stride=0))),
    ("fold", ((1, 4, 16), dict(output_size=(5,), kernel_size=2))),
    ("fold", ((1, 4, 16), dict(output_size=(5, 5), kernel_size=2, dilation=1.5))),
    ("pixel_shuffle", ((1, 4, 2, 2), dict(upscale_factor=0))),
    ("pixel_shuffle", ((1, 4, 2, 2), dict(upscale_factor=2.0))),
    ("pixel_unshuffle", ((1, 4, 2, 2), dict(downscale_factor=-1))),
    ("pixel_unshuffle", ((1, 4, 2, 2), dict(downscale_factor=True))),
    ("channel_shuffle", ((1, 4, 2, 2), dict(groups=2.0))),
])
def test_resampling_argument_errors_as_torch(name, args):
    shape, kwargs = args
    x = np.ones(shape, np.float32)
    _same_error(lambda: getattr(TF, name)(torch.from_numpy(x), **kwargs),
                lambda: getattr(F, name)(x, **kwargs))


@pytest.mark.parametrize("size,pads", [(1, (1, -2)), (2, (-3, 1)), (2, (1, -3)), (3, (-2, -1)),
                                       (4, (-5, 1))])
def test_circular_pad_cropping_to_nothing_gives_empty_output(size, pads):
    # PyTorch takes these (nothing is left to wrap) and gives an empty axis
    x = np.arange(1.0, size + 1).reshape(1, 1, size)
    want = TF.pad(torch.from_numpy(x), pads, mode="circular")
    assert F.pad(x, pads, mode="circular").shape == tuple(want.shape) == (1, 1, 0)
    layer = nn.CircularPad1d(pads)
    assert layer.forward(x).shape == (1, 1, 0)
    np.testing.assert_array_equal(layer.backward(np.zeros((1, 1, 0))), np.zeros_like(x))


def test_circular_pad_still_refuses_reading_past_the_crop():
    x = np.ones((1, 1, 3))
    with pytest.raises(RuntimeError):
        F.pad(x, (1, -4), mode="circular")     # (PyTorch's size mismatch)
    with pytest.raises(RuntimeError):
        F.pad(x, (3, -1), mode="circular")     # (PyTorch reads uninitialised memory)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("output_size", [-1, 2.5, True, "tuple_float", "too_long"])
def test_adaptive_pool_output_size_errors_as_torch(dims, kind, output_size):
    if output_size == "tuple_float":
        output_size = (2.0,) * dims
    elif output_size == "too_long":
        output_size = (3,) * (dims + 1)
    x = np.ones((1, 2) + (5,) * dims, np.float32)
    name = f"adaptive_{kind}_pool{dims}d"
    _same_error(lambda: getattr(TF, name)(torch.from_numpy(x), output_size),
                lambda: getattr(F, name)(x, output_size))


def test_distances_of_extreme_values_warn_no_more_than_torch():
    # inf, NaN and float32 overflow give PyTorch's inf/NaN values, without NumPy's
    # RuntimeWarnings (PyTorch warns nothing)
    x = np.array([[np.nan, np.inf, -np.inf, 0.0], [0, 0, 0, 0], [1e38, 1e38, 3, 4],
                  [1, 2, 3, 4]], np.float32)
    y = x[::-1].copy()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pairs = [(F.normalize(x), TF.normalize(torch.from_numpy(x))),
                 (F.normalize(np.zeros((2, 3)), eps=0.0),
                  TF.normalize(torch.zeros(2, 3, dtype=torch.float64), eps=0.0)),
                 (F.cosine_similarity(x, y), TF.cosine_similarity(torch.from_numpy(x),
                                                                  torch.from_numpy(y))),
                 (F.pdist(x, 0.5), TF.pdist(torch.from_numpy(x), 0.5)),
                 (F.affine_grid(np.full((1, 2, 3), np.inf, np.float32), (1, 1, 2, 2), False),
                  TF.affine_grid(torch.full((1, 2, 3), float("inf")), (1, 1, 2, 2), False))]
        layer = nn.CosineSimilarity()
        layer.forward(x, y)
        layer.backward(np.ones(4, np.float32))
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-6)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_constant_pad_layers_take_non_finite_values(value):
    # ConstantPad2d(1, -inf) pads for a max taken over the padded input (PyTorch takes it)
    x = np.ones((1, 2, 3, 3), np.float32)
    want = tnn.ConstantPad2d(1, value)(torch.from_numpy(x)).numpy()
    layer = nn.ConstantPad2d(1, value)
    np.testing.assert_array_equal(layer.forward(x), want)
    np.testing.assert_array_equal(layer.backward(np.ones_like(want)), np.ones_like(x))


@pytest.mark.parametrize("value", [-1e40, 1e300])
def test_constant_pad_value_overflowing_float32_is_refused(value):
    x = np.ones((1, 2, 3), np.float32)
    with pytest.raises(RuntimeError):
        TF.pad(torch.from_numpy(x), (1, 1), value=value)
    with pytest.raises(RuntimeError, match="overflow"):
        F.pad(x, (1, 1), value=value)
    with pytest.raises(ValueError, match="overflow"):
        nn.ConstantPad1d(1, value).forward(x)
    assert F.pad(x.astype(np.float64), (1, 1), value=value)[0, 0, 0] == value


@pytest.mark.parametrize("labels,num_classes", [(np.array([], np.int64), 0),
                                                (np.zeros((2, 0), np.int64), 0),
                                                (np.array([0, 1]), 2.0),
                                                (np.array([0, 1]), True)])
def test_one_hot_refuses_as_torch(labels, num_classes):
    _same_error(lambda: TF.one_hot(torch.from_numpy(labels), num_classes),
                lambda: F.one_hot(labels, num_classes))


@pytest.mark.parametrize("dim", [None, (), (0, 2), [2, 0], (-1,)])
@pytest.mark.parametrize("p", [2.0, 1.0, float("inf"), 0, "fro"])
def test_normalize_over_several_dims(dim, p):
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    want = TF.normalize(torch.from_numpy(x), p, dim).numpy()
    np.testing.assert_allclose(F.normalize(x, p, dim), want, rtol=1e-12)


def test_normalize_nuclear_norm_and_refusals():
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    want = TF.normalize(torch.from_numpy(x), "nuc", (1, 2)).numpy()
    np.testing.assert_allclose(F.normalize(x, "nuc", (1, 2)), want, rtol=1e-12)
    for p, dim in [(2, (0, 0)), ("fro", (0, 1, 2)), ("nuc", 1), (-1, 1)]:
        arr = x[:, :0] if p == -1 else x     # (a negative order over an empty axis)
        _same_error(lambda: TF.normalize(torch.from_numpy(arr), p, dim),
                    lambda: F.normalize(arr, p, dim))


@pytest.mark.parametrize("p", [float("nan"), -1.0, "fro", None])
def test_pdist_order_errors_as_torch(p):
    x = np.ones((3, 4), np.float32)
    _same_error(lambda: TF.pdist(torch.from_numpy(x), p), lambda: F.pdist(x, p))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rank", [3, 5])
@pytest.mark.parametrize("mode,size,out", [("nearest", 39, 33), ("nearest", 12, 74),
                                           ("nearest-exact", 30, 69),
                                           ("nearest-exact", 30, 29),
                                           ("nearest-exact", 2, 41), ("nearest-exact", 4, 94)])
def test_nearest_1d_3d_indices_as_torch(dtype, rank, mode, size, out):
    # PyTorch's 1-D and 3-D nearest forwards compute the source index in the input's
    # dtype (its generic kernel), with a fused multiply-add for nearest-exact
    x = np.tile(np.arange(float(size)).astype(dtype), (1, 2) + (1,) * (rank - 2))
    shape = (1,) * (rank - 3) + (out,)
    want = TF.interpolate(torch.from_numpy(x), size=shape, mode=mode).numpy()
    np.testing.assert_array_equal(F.interpolate(x, size=shape, mode=mode), want)
    np.testing.assert_array_equal(nn.Upsample(size=shape, mode=mode).forward(x), want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode,size,out", [("nearest", 45, 129), ("nearest", 2, 150),
                                           ("nearest-exact", 30, 140)])
def test_nearest_2d_large_outputs_as_torch(dtype, mode, size, out):
    # PyTorch's 2-D forward leaves its vectorised kernel (float32 indices) for its
    # generic one (the input's dtype) once output height + width exceeds 128
    x = np.tile(np.arange(float(size)).astype(dtype), (1, 2, 3, 1))
    want = TF.interpolate(torch.from_numpy(x), size=(3, out), mode=mode).numpy()
    np.testing.assert_array_equal(F.interpolate(x, size=(3, out), mode=mode), want)


@pytest.mark.parametrize("eps", [-1.0, float("nan"), float("inf"), -0.0])
def test_distance_eps_as_torch(eps):
    # PairwiseDistance adds any eps (PyTorch's); CosineSimilarity takes an infinite eps
    # and refuses a negative or NaN one (RuntimeError from F)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    x[0, 0] = np.inf
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        want = TF.pairwise_distance(torch.from_numpy(x), torch.from_numpy(y), 2, eps).numpy()
        np.testing.assert_allclose(F.pairwise_distance(x, y, 2, eps), want, rtol=1e-12)
        np.testing.assert_allclose(nn.PairwiseDistance(2, eps).forward(x, y), want, rtol=1e-12)
        try:
            want = TF.cosine_similarity(torch.from_numpy(x), torch.from_numpy(y), 1, eps).numpy()
        except RuntimeError:
            with pytest.raises(RuntimeError):
                F.cosine_similarity(x, y, 1, eps)
            return
        np.testing.assert_allclose(F.cosine_similarity(x, y, 1, eps), want, rtol=1e-12)
