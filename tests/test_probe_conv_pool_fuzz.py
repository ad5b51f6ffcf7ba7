"""Regression tests from a seeded differential fuzz of the convolution, pooling and
resampling layers against PyTorch (forward and backward, every CPU backend)."""
import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.errors import TypeValueError

torch = pytest.importorskip("torch")

BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.backends()]


@pytest.mark.parametrize("name", ["AdaptiveAvgPool3d", "AdaptiveMaxPool3d"])
@pytest.mark.parametrize("size", [0, (0, 2, 2), (None, 0, None), (2, 1, 0)])
def test_adaptive_3d_layers_output_size_zero_is_empty(name, size):
    # PyTorch's 3-D adaptive pools give an empty output for an entry 0, as the 1-D and 2-D
    # layers and the functional forms already did; the 3-D layers refused it
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4, 3))
    want = getattr(torch.nn, name)(size)(torch.from_numpy(x))
    layer = getattr(nn, name)(size)
    y = layer(x)
    assert y.shape == tuple(want.shape) and y.dtype == x.dtype
    grad = layer.backward(np.ones(y.shape))
    assert grad.shape == x.shape and not grad.any()
    y, idx = getattr(nn, name.replace("Avg", "Max"))(size, return_indices=True)(x[0])
    assert y.shape == idx.shape == tuple(want.shape[1:]) and idx.dtype == np.int64


@pytest.mark.parametrize("name,size", [
    ("AdaptiveAvgPool1d", None), ("AdaptiveMaxPool1d", None), ("AdaptiveAvgPool1d", (None,)),
    ("AdaptiveMaxPool1d", (None,)), ("AdaptiveAvgPool2d", None), ("AdaptiveMaxPool2d", None),
    ("AdaptiveAvgPool3d", None), ("AdaptiveMaxPool3d", None)])
def test_adaptive_layers_refuse_none_output_size(name, size):
    # PyTorch raises TypeError for None as the whole output size (or as the entry of a 1-D
    # pool's); fastnn's layers took it as 'keep the input size'
    d = int(name[-2])
    x = np.zeros((2, 3) + (4,) * d)
    with pytest.raises(TypeError):
        getattr(torch.nn, name)(size)(torch.from_numpy(x))
    with pytest.raises(TypeValueError):
        getattr(nn, name)(size)
    # a None entry of a 2-D or 3-D pool's tuple still keeps that size, as PyTorch's
    if d > 1:
        sizes = (None,) + (2,) * (d - 1)
        want = getattr(torch.nn, name)(sizes)(torch.from_numpy(x))
        assert getattr(nn, name)(sizes)(x).shape == tuple(want.shape)


@pytest.mark.parametrize("kwargs,shape", [
    (dict(size=0), (2, 3, 4)), (dict(size=(0, 3)), (2, 3, 4, 5)),
    (dict(scale_factor=0.1), (2, 3, 4, 5)), (dict(scale_factor=(0.5, 1.0, 2.3)), (2, 1, 1, 1, 4)),
    (dict(scale_factor=0.2, recompute_scale_factor=True), (1, 2, 3))])
@pytest.mark.parametrize("backend", BACKENDS)
def test_upsample_area_to_size_zero_is_empty(kwargs, shape, backend):
    # nn.Upsample(mode='area') is adaptive average pooling: an output size of 0 (given or
    # from the scale factor) is PyTorch's empty output, as F.interpolate already gave; the
    # layer refused it
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    want = torch.nn.Upsample(mode="area", **kwargs)(torch.from_numpy(x))
    with fastnn.use_backend(backend):
        layer = nn.Upsample(mode="area", **kwargs)
        y = layer(x)
        grad = layer.backward(np.ones(y.shape, np.float32))
    assert y.shape == tuple(want.shape) and y.dtype == np.float32
    assert grad.shape == x.shape and grad.dtype == np.float32 and not grad.any()


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "nearest-exact", "bicubic"])
def test_upsample_size_zero_other_modes_is_a_runtime_error(mode):
    x = np.zeros((1, 2, 3, 3))
    with pytest.raises(RuntimeError):
        torch.nn.Upsample(size=(0, 2), mode=mode)(torch.from_numpy(x))
    with pytest.raises(RuntimeError) as info:
        nn.Upsample(size=(0, 2), mode=mode)(x)
    assert isinstance(info.value, ValueError)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # inf and NaN in products
@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("geometry", [dict(groups=2, padding=1), dict(dilation=2, padding=3),
                                      dict(groups=2, dilation=2, stride=2, padding=1,
                                           output_padding=1)])
@pytest.mark.parametrize("bad", [np.inf, np.nan])
@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_transpose_grouped_or_dilated_nonfinite_weight_grad(dims, geometry, bad, backend):
    # ConvTranspose1d/2d with groups or dilation took the weight gradient from the
    # forward's spread input, which leaves out the pairs of x with grad_out's zero border:
    # an inf or NaN in x gave finite weight gradients where PyTorch's (and fastnn's own
    # groups=1, dilation=1 path) are NaN
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4) + (5,) * dims)
    x[(0, 0) + (0,) * dims] = bad
    x[(1, 3) + (4,) * dims] = -bad
    theirs = getattr(torch.nn, f"ConvTranspose{dims}d")(4, 6, 3, **geometry).double()
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = theirs(tx)
    g = rng.standard_normal(tuple(ty.shape))
    gx, gw, gb = torch.autograd.grad(ty, [tx, theirs.weight, theirs.bias], torch.from_numpy(g))
    with fastnn.use_backend(backend):
        ours = getattr(nn, f"ConvTranspose{dims}d")(4, 6, 3, dtype=np.float64, **geometry)
        ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
        y = ours(x)
        grad_in = ours.backward(g)
    for got, want in ((y, ty), (grad_in, gx), (ours.weight.grad, gw), (ours.bias.grad, gb)):
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-9, atol=1e-9)
    assert np.isnan(ours.weight.grad).any()


@pytest.mark.parametrize("name,args,shape", [
    ("AdaptiveAvgPool2d", (2,), (2, 3, 0, 4)), ("AdaptiveAvgPool2d", (2,), (1, 2, 3, 4, 5)),
    ("AdaptiveMaxPool2d", (2,), (2, 2)), ("AdaptiveMaxPool2d", (2,), (2, 0, 4, 4)),
    ("AdaptiveAvgPool1d", (2,), (2, 3, 0)), ("AdaptiveMaxPool1d", (2,), (2, 0, 3)),
    ("AdaptiveAvgPool3d", (2,), (2, 3, 0, 4, 4)), ("AdaptiveAvgPool3d", (2,), (1,) * 6),
    ("AdaptiveMaxPool3d", (2,), (2, 3, 4)), ("AdaptiveMaxPool3d", (2,), (2, 0, 4, 4, 4)),
    ("Unfold", (2,), (1, 2, 3, 4, 5)), ("Unfold", (2,), (2, 3, 0, 4))])
def test_adaptive_pool_and_unfold_bad_input_is_a_runtime_error(name, args, shape):
    # PyTorch refuses these inputs with a RuntimeError; the adaptive pools and Unfold
    # raised a bare ValueError (the conv and window pools' RuntimeValueError since ab11824)
    x = np.zeros(shape)
    with pytest.raises(RuntimeError):
        getattr(torch.nn, name)(*args)(torch.from_numpy(x))
    with pytest.raises(RuntimeError) as info:
        getattr(nn, name)(*args)(x)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("dims,shape", [(1, (2, 0, 2)), (1, (2, 2, 0)), (2, (2, 0, 2)),
                                        (2, (1, 2, 0, 3)), (3, (2, 2, 2, 0)),
                                        (3, (2, 0, 2, 2, 2))])
def test_max_unpool_input_with_an_empty_size_is_a_runtime_error(dims, shape):
    # PyTorch's max_unpool refuses an input with a zero size after the first
    # (RuntimeError); fastnn returned an empty output. A zero first size stays empty.
    x, indices = np.ones(shape), np.zeros(shape, np.int64)
    with pytest.raises(RuntimeError):
        getattr(torch.nn.functional, f"max_unpool{dims}d")(
            torch.from_numpy(x), torch.from_numpy(indices), 1)
    for run in (lambda: getattr(nn, f"MaxUnpool{dims}d")(1)(x, indices),
                lambda: getattr(fastnn.nn.functional, f"max_unpool{dims}d")(x, indices, 1)):
        with pytest.raises(RuntimeError) as info:
            run()
        assert isinstance(info.value, ValueError)
    empty = (0, 2) + (2,) * dims
    want = getattr(torch.nn.functional, f"max_unpool{dims}d")(
        torch.ones(empty), torch.zeros(empty, dtype=torch.int64), 1)
    got = getattr(nn, f"MaxUnpool{dims}d")(1)(np.ones(empty), np.zeros(empty, np.int64))
    assert got.shape == tuple(want.shape)


@pytest.mark.parametrize("pad", [(1,), (1, 1, 1, 1, 1, 1, 1, 1)])
def test_pad_unknown_mode_is_checked_before_the_pad_length(pad):
    # PyTorch refuses an unknown mode (NotImplementedError) before it looks at the pad's
    # length; F.pad raised its RuntimeError for the length first
    x = np.ones((2, 2, 3))
    with pytest.raises(NotImplementedError):
        torch.nn.functional.pad(torch.from_numpy(x), pad, mode="bogus")
    with pytest.raises(NotImplementedError) as info:
        fastnn.nn.functional.pad(x, pad, mode="bogus")
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "bilinear", "bicubic"])
@pytest.mark.parametrize("factor", [float("inf"), float("nan"), 1e30])
def test_upsample_scale_factor_without_an_int64_size_is_a_runtime_error(mode, factor):
    # PyTorch's kernels take floor(size * scale_factor) as an int64 and raise RuntimeError
    # when it has none (F.interpolate already did); the layer raised Python's
    # OverflowError / ValueError of int()
    x = np.ones((1, 2, 3, 3))
    with pytest.raises(RuntimeError):
        torch.nn.Upsample(scale_factor=factor, mode=mode)(torch.from_numpy(x))
    with pytest.raises(RuntimeError) as info:
        nn.Upsample(scale_factor=factor, mode=mode)(x)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("name,size,shape", [
    ("AdaptiveAvgPool2d", 1, (3, 4)), ("AdaptiveAvgPool2d", 1, (2, 3, 4, 5, 6)),
    ("AdaptiveAvgPool2d", (1, 1), (1, 2, 3, 4, 5, 2)),
    ("AdaptiveAvgPool2d", (None, 1), (2, 3, 4, 1, 6)),
    ("AdaptiveAvgPool2d", 1, (2, 3, 0, 4)), ("AdaptiveAvgPool3d", 1, (3, 4, 5)),
    ("AdaptiveAvgPool3d", 1, (2, 3, 4, 5, 6, 2)), ("AdaptiveAvgPool3d", 1, (2, 0, 3, 3, 3))])
@pytest.mark.parametrize("backend", BACKENDS)
def test_adaptive_avg_pool_to_ones_is_a_mean_of_any_rank(name, size, shape, backend):
    # PyTorch's adaptive average pooling to an output of ones is a mean over the last
    # axes of an input of any rank;
    # an empty axis gives NaN. fastnn refused the ranks its pooling kernels do not take
    # (AdaptiveAvgPool2d(1) on video frames (N, T, C, H, W), say)
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_(True)
    want = getattr(torch.nn, name)(size)(tx)
    g = np.random.default_rng(4).standard_normal(tuple(want.shape)).astype(np.float32)
    want_grad = torch.autograd.grad(want, tx, torch.from_numpy(g))[0] if want.numel() else None
    with fastnn.use_backend(backend):
        layer = getattr(nn, name)(size)
        y = layer(x)
        grad = layer.backward(g)
        assert getattr(fastnn.nn.functional, name.replace("AdaptiveAvgPool", "adaptive_avg_pool"))(
            x, size).shape == y.shape
    np.testing.assert_allclose(y, want.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert y.dtype == np.float32 and grad.shape == x.shape and grad.dtype == np.float32
    if want_grad is not None:
        np.testing.assert_allclose(grad, want_grad.numpy(), rtol=1e-5, atol=1e-6)
    # other output sizes (and the max pools) keep PyTorch's RuntimeError for these ranks
    if len(shape) not in ((3, 4) if name.endswith("2d") else (4, 5)):
        with pytest.raises(RuntimeError):
            getattr(nn, name.replace("Avg", "Max"))(1)(x)
        with pytest.raises(RuntimeError):
            getattr(nn, name)(2)(x)


@pytest.mark.parametrize("shape", [(2, 3, 0), (3, 0), (0, 3, 0), (2, 0, 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_adaptive_avg_pool1d_to_one_of_an_empty_length_is_nan(shape, dtype, backend):
    # PyTorch's adaptive_avg_pool1d runs its 2-D pool on (N, C, 1, L), whose mean shortcut
    # for an output of ones gives NaN for L = 0 (a zero gradient); fastnn raised its
    # RuntimeError about (N, C, H, W) with H, W > 0
    x = np.zeros(shape, dtype)
    want = torch.nn.AdaptiveAvgPool1d(1)(torch.from_numpy(x))
    with fastnn.use_backend(backend):
        layer = nn.AdaptiveAvgPool1d(1)
        y = layer(x)
        grad = layer.backward(np.ones(y.shape, dtype))
        functional = fastnn.nn.functional.adaptive_avg_pool1d(x, 1)
    assert y.shape == tuple(want.shape) == functional.shape and y.dtype == dtype
    np.testing.assert_array_equal(y, want.numpy())   # (NaN where there are rows)
    assert grad.shape == shape and grad.dtype == dtype
    with pytest.raises(RuntimeError):   # other sizes keep PyTorch's RuntimeError
        nn.AdaptiveAvgPool1d(2)(x)


@pytest.mark.parametrize("fn,size,shape", [("adaptive_avg_pool2d", 0, (3, 2, 1, 1, 2)),
                                           ("adaptive_avg_pool2d", (0, 2), (2, 3, 4, 5, 6)),
                                           ("adaptive_avg_pool3d", 0, (1, 2, 3, 4, 5, 6))])
def test_adaptive_avg_pool_functional_output_zero_keeps_the_rank_check(fn, size, shape):
    # an output size of 0 is an empty output for the ranks PyTorch's kernels take, and its
    # RuntimeError for the others (the mean shortcut of output 1 does not apply)
    x = np.ones(shape)
    with pytest.raises(RuntimeError):
        getattr(torch.nn.functional, fn)(torch.from_numpy(x), size)
    with pytest.raises(RuntimeError):
        getattr(fastnn.nn.functional, fn)(x, size)


@pytest.mark.parametrize("dims,shape", [(1, (2, 2, 2, 4)), (1, (4,)), (2, (2, 4)),
                                        (2, (1, 2, 2, 4, 4)), (3, (2, 4, 4))])
@pytest.mark.parametrize("padding_mode", ["reflect", "replicate", "circular"])
def test_conv_padding_mode_wrong_rank_is_not_implemented(dims, shape, padding_mode):
    # PyTorch pads first (F.pad), whose NotImplementedError refuses the rank; fastnn gave
    # its RuntimeError ('zeros' padding and a wrong channel count stay RuntimeError)
    x = np.ones(shape, np.float32)
    with pytest.raises(NotImplementedError):
        getattr(torch.nn, f"Conv{dims}d")(2, 2, 1, padding=1, padding_mode=padding_mode)(
            torch.from_numpy(x))
    with pytest.raises(NotImplementedError) as info:
        getattr(nn, f"Conv{dims}d")(2, 2, 1, padding=1, padding_mode=padding_mode)(x)
    assert isinstance(info.value, ValueError)
    with pytest.raises(RuntimeError) as info:
        getattr(nn, f"Conv{dims}d")(2, 2, 1, padding=1)(x)
    assert not isinstance(info.value, NotImplementedError)


@pytest.mark.parametrize("name,kwargs", [
    ("Conv2d", dict(in_channels=2, out_channels=2, kernel_size=-1)),
    ("Conv1d", dict(in_channels=2, out_channels=2, kernel_size=3, stride=0)),
    ("Conv3d", dict(in_channels=2, out_channels=2, kernel_size=(1, 2))),
    ("ConvTranspose2d", dict(in_channels=2, out_channels=2, kernel_size=(-1, 1))),
    ("MaxPool2d", dict(kernel_size=2, stride=(0, 1))), ("MaxPool1d", dict(kernel_size=(1, 2, 3))),
    ("AvgPool3d", dict(kernel_size=2, padding=-1)), ("LPPool2d", dict(norm_type=2, kernel_size=0)),
    ("Unfold", dict(kernel_size=2, dilation=0)),
    ("Fold", dict(output_size=4, kernel_size=2, padding=-1))])
def test_window_sizes_out_of_range_are_runtime_errors(name, kwargs):
    # a kernel size, stride, padding or dilation out of range (or a tuple of another
    # length) is PyTorch's RuntimeError, at construction (a tensor of a negative size) or
    # at the call; fastnn's constructors raised a bare ValueError
    d = int(name[-2]) if name[-2].isdigit() else 2
    x = np.ones((1, 2) + (4,) * d) if name != "Fold" else np.ones((1, 8, 9))
    with pytest.raises(RuntimeError):
        getattr(torch.nn, name)(**kwargs)(torch.from_numpy(x))
    with pytest.raises(RuntimeError) as info:
        getattr(nn, name)(**kwargs)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("name,args,kwargs,shape", [
    ("Conv2d", (3, 4, 3), dict(stride=(2,), padding=(1,), dilation=(2,)), (2, 3, 7, 6)),
    ("Conv3d", (3, 4, 2), dict(stride=[2], padding=np.array([1])), (2, 3, 4, 5, 3)),
    ("ConvTranspose2d", (3, 4, 3), dict(stride=(2,), padding=(1,), output_padding=(1,),
                                        dilation=(2,)), (2, 3, 4, 5)),
    ("ConvTranspose3d", (3, 4, 2), dict(stride=(2,), output_padding=(1,)), (3, 3, 2, 4)),
    ("MaxPool2d", ((3,),), dict(stride=(2,), padding=(1,), dilation=(2,)), (2, 3, 7, 6)),
    ("MaxPool2d", (2,), dict(stride=()), (2, 3, 6, 5)),
    ("AvgPool2d", ((3,),), dict(stride=(2,), padding=(1,)), (3, 7, 6)),
    ("MaxPool3d", ((2,),), dict(padding=(1,)), (2, 3, 4, 5, 3)),
    ("AvgPool3d", (2,), dict(stride=[]), (2, 3, 4, 5, 4)),
    ("LPPool2d", (2, 2), dict(stride=(1,)), (2, 3, 5, 4)),
    ("LPPool3d", (2, 2), dict(stride=()), (2, 3, 4, 4, 4))])
@pytest.mark.parametrize("backend", BACKENDS)
def test_window_layers_take_a_one_element_tuple_for_every_axis(name, args, kwargs, shape,
                                                               backend):
    # PyTorch's conv and pooling kernels expand a one-element stride, padding, dilation,
    # output padding (and a pool's kernel size) to every axis, and take an empty stride
    # as the kernel size, as fastnn's functional forms did; the layers refused them
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape)
    theirs = getattr(torch.nn, name)(*args, **kwargs).double()
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = theirs(tx)
    g = rng.standard_normal(tuple(ty.shape))
    params = list(theirs.parameters())
    want = torch.autograd.grad(ty, [tx] + params, torch.from_numpy(g))
    with fastnn.use_backend(backend):
        extra = dict(dtype=np.float64) if "Conv" in name else {}
        ours = getattr(nn, name)(*args, **kwargs, **extra)
        if params:
            ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
        y = ours(x)
        got = [ours.backward(g)] + [p.grad for p in ours.parameters()]
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,args,kwargs", [
    ("Conv2d", (3, 4, (3,)), {}),
    ("Conv2d", (3, 4, 3), dict(padding=(1,), padding_mode="reflect")),
    ("Conv3d", (3, 4, 3), dict(padding=(1,), padding_mode="circular")),
    ("LPPool2d", (2, (2,)), {}), ("LPPool3d", (2, (2,)), {})])
def test_one_element_tuples_pytorch_refuses_stay_refused(name, args, kwargs):
    # a conv's kernel size (the weight's shape), the padding of another padding mode (the
    # border is padded by the tuple as given) and an LPPool's kernel size (unpacked into
    # its sizes) take no one-element tuple in PyTorch
    d = int(name[-2])
    x = np.ones((1, 3) + (5,) * d)
    with pytest.raises((RuntimeError, ValueError, NotImplementedError)):
        getattr(torch.nn, name)(*args, **kwargs)(torch.from_numpy(x))
    with pytest.raises(ValueError):
        getattr(nn, name)(*args, **kwargs)(x)


@pytest.mark.parametrize("name,args,kwargs", [
    ("max_pool3d", ((2,),), dict(stride=(1,), padding=(1,))),
    ("avg_pool3d", (3,), dict(stride=(2,), padding=(1,))),
    ("lp_pool2d", (2, 2), dict(stride=(1,))), ("lp_pool3d", (1.5, 2), dict(stride=(1,)))])
def test_functional_3d_and_lp_pools_take_one_element_tuples(name, args, kwargs):
    # these functional pools run the layers, which refused what PyTorch expands
    x = np.abs(np.random.default_rng(6).standard_normal((2, 3, 5, 4, 6)))
    x = x if "3d" in name else x[:, :, 0]
    want = getattr(torch.nn.functional, name)(torch.from_numpy(x), *args, **kwargs)
    got = getattr(fastnn.nn.functional, name)(x, *args, **kwargs)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-12)
