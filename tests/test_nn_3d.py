"""Conv3d, ConvTranspose3d, MaxPool3d, AvgPool3d, LPPool3d, AdaptiveAvgPool3d,
AdaptiveMaxPool3d and MaxUnpool3d against PyTorch: outputs, input gradients and
parameter gradients for many option combinations, float32 and float64, batched and
unbatched; max-pooling indices exactly (ties and NaN included); reprs, parameter names,
shapes and init; the errors PyTorch raises as ValueError / TypeError."""
import math

import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn

from conftest import assert_close
from nn_torch_helpers import TORCH_DTYPES, assert_trains_as_twin

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")


def _twin(layer, torch_cls, *args, **kwargs):
    """The torch layer of these arguments in the layer's dtype, its parameters copied."""
    twin = torch_cls(*args, **kwargs).to(TORCH_DTYPES[layer.weight.data.dtype])
    with torch.no_grad():
        twin.weight.copy_(torch.from_numpy(layer.weight.data))
        if layer.bias is not None:
            twin.bias.copy_(torch.from_numpy(layer.bias.data))
    return twin


def _against(layer, twin, x, rng, dtype, *extra, scale=10.0):
    """Forward and backward of both on x (and extra forward arguments): outputs, input
    gradients and parameter gradients agree; the fastnn output (a pair with indices)."""
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    t_extra = [torch.from_numpy(e) if isinstance(e, np.ndarray) else e for e in extra]
    ty = twin(tx, *t_extra)
    out = layer(x, *extra)
    y, indices = out if isinstance(out, tuple) else (out, None)
    if isinstance(ty, tuple):
        ty, t_indices = ty
        np.testing.assert_array_equal(indices, t_indices.numpy())
        assert indices.dtype == np.int64
    assert y.shape == tuple(ty.shape) and y.dtype == dtype
    assert_close(y, ty.detach().numpy(), dtype, scale)
    g = rng.standard_normal(y.shape).astype(dtype)
    ty.backward(torch.from_numpy(g))
    grad = layer.backward(g)
    assert grad.shape == x.shape and grad.dtype == dtype
    assert_close(grad, tx.grad.numpy(), dtype, scale)
    for name, param in layer.named_parameters():
        assert_close(param.grad, getattr(twin, name).grad.numpy(), dtype, scale, err_msg=name)
    return out


CONV = [dict(), dict(stride=2, padding=1), dict(stride=(1, 2, 3), padding=(2, 1, 0),
                                                dilation=(2, 1, 2)),
        dict(padding="same"), dict(padding="same", dilation=(2, 1, 1)),
        dict(padding="valid", bias=False), dict(groups=2, padding=1),
        dict(groups=4, stride=2, dilation=2, padding=(2, 1, 1)),
        dict(padding=(1, 1, 2), padding_mode="reflect"),
        dict(padding=1, padding_mode="replicate", stride=2, groups=2),
        dict(padding=(2, 1, 3), padding_mode="circular", dilation=(1, 2, 1)),
        dict(padding="same", padding_mode="circular", bias=False)]


@pytest.mark.parametrize("kwargs", CONV, ids=lambda k: "-".join(f"{a}{v}" for a, v in k.items()))
@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
def test_conv3d_matches_torch(dtype, rng, kwargs, unbatched):
    layer = nn.Conv3d(4, 8, (3, 2, 3), dtype=dtype, **kwargs)
    twin = _twin(layer, torch.nn.Conv3d, 4, 8, (3, 2, 3), **kwargs)
    shape = (4, 5, 6, 7) if unbatched else (2, 4, 5, 6, 7)
    _against(layer, twin, rng.standard_normal(shape).astype(dtype), rng, dtype)
    assert repr(layer) == repr(twin)


DECONV = [dict(), dict(stride=2, padding=1, output_padding=1),
          dict(stride=(1, 2, 3), padding=(1, 0, 2), output_padding=(0, 1, 2)),
          dict(groups=2, dilation=2, stride=2), dict(dilation=3, stride=2, output_padding=2,
                                                     bias=False),
          dict(groups=4, padding=(0, 1, 1), dilation=(1, 2, 1))]


@pytest.mark.parametrize("kwargs", DECONV, ids=lambda k: "-".join(f"{a}{v}" for a, v in k.items()))
@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
def test_conv_transpose3d_matches_torch(dtype, rng, kwargs, unbatched):
    layer = nn.ConvTranspose3d(4, 8, (3, 2, 3), dtype=dtype, **kwargs)
    twin = _twin(layer, torch.nn.ConvTranspose3d, 4, 8, (3, 2, 3), **kwargs)
    shape = (4, 3, 4, 5) if unbatched else (2, 4, 3, 4, 5)
    _against(layer, twin, rng.standard_normal(shape).astype(dtype), rng, dtype)
    assert repr(layer) == repr(twin)


@pytest.mark.parametrize("output_size", [(7, 9, 10), [2, 6, 8, 10, 12], (8, 9, 11)])
def test_conv_transpose3d_output_size_matches_torch(rng, output_size):
    layer = nn.ConvTranspose3d(4, 6, 3, stride=(2, 2, 3), padding=1, dtype=np.float64)
    twin = _twin(layer, torch.nn.ConvTranspose3d, 4, 6, 3, stride=(2, 2, 3), padding=1)
    x = rng.standard_normal((2, 4, 4, 5, 4))
    y = _against(layer, twin, x, rng, np.float64, list(output_size))
    assert y.shape[2:] == tuple(output_size)[-3:]
    with pytest.raises(ValueError, match="valid sizes range from"):
        layer(x, (6, 8, 9))
    with pytest.raises(ValueError):
        twin(torch.from_numpy(x), (6, 8, 9))


def test_conv3d_parameters_init_and_state_dict_as_torch(rng):
    fastnn.manual_seed(3)
    for layer, twin in ((nn.Conv3d(6, 4, (3, 2, 1), groups=2), torch.nn.Conv3d(6, 4, (3, 2, 1),
                                                                                groups=2)),
                        (nn.ConvTranspose3d(6, 4, (3, 2, 1), groups=2),
                         torch.nn.ConvTranspose3d(6, 4, (3, 2, 1), groups=2))):
        names = [(n, p.shape) for n, p in layer.named_parameters()]
        assert names == [(n, tuple(p.shape)) for n, p in twin.named_parameters()]
        assert layer.weight.data.dtype == np.float32
        fan_in = layer.weight.shape[1] * 6  # kaiming_uniform(a=sqrt(5)) as PyTorch's
        bound = 1 / math.sqrt(fan_in)
        for p in (layer.weight.data, layer.bias.data):
            assert np.abs(p).max() <= bound and np.abs(p).max() > 0.5 * bound
        layer.load_state_dict({k: v.numpy() for k, v in twin.state_dict().items()})
        x = rng.standard_normal((1, 6, 4, 4, 4)).astype(np.float32)
        assert_close(layer(x), twin(torch.from_numpy(x)).detach().numpy(), np.float32)
    assert nn.Conv3d(2, 2, 3, bias=False).bias is None
    assert nn.Conv3d(2, 2, 3, dtype=np.float64).weight.data.dtype == np.float64


def test_conv3d_gradients_accumulate_and_need_grad_in_false(rng):
    layer = nn.Conv3d(2, 3, 2, dtype=np.float64)
    x = rng.standard_normal((2, 2, 3, 3, 3))
    g = rng.standard_normal(layer(x).shape)
    layer.backward(g)
    once = layer.weight.grad.copy()
    layer(x)
    assert layer.backward(g, need_grad_in=False) is None
    np.testing.assert_allclose(layer.weight.grad, 2 * once)


POOLS = [((2,), {}), ((3,), dict(stride=2, padding=1)),
         (((3, 2, 2),), dict(stride=(2, 1, 2), padding=(1, 0, 1), dilation=(1, 2, 2),
                             ceil_mode=True)),
         ((3,), dict(stride=2, ceil_mode=True)), ((2,), dict(stride=1, dilation=2, padding=1))]


# MaxPool3d runs the current backend's 2-D kernel on each depth slice, then takes each
# window's slices in order: every host backend
@pytest.mark.parametrize("args,kwargs", POOLS, ids=["k2", "k3s2p1", "mixed", "ceil", "dil2"])
@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
def test_max_pool3d_matches_torch(backend, dtype, rng, args, kwargs, unbatched):
    shape = (3, 7, 6, 5) if unbatched else (2, 3, 7, 6, 5)
    for ties in (False, True):  # ties: the first maximum, as PyTorch's
        x = (rng.integers(0, 3, shape) if ties else rng.standard_normal(shape)).astype(dtype)
        layer = nn.MaxPool3d(*args, **kwargs, return_indices=True)
        twin = torch.nn.MaxPool3d(*args, **kwargs, return_indices=True)
        y, indices = _against(layer, twin, x, rng, dtype)
        plain = nn.MaxPool3d(*args, **kwargs)
        np.testing.assert_array_equal(plain(x), y)
        assert repr(plain) == repr(torch.nn.MaxPool3d(*args, **kwargs))


def test_max_pool3d_window_with_every_depth_tap_in_the_padding_as_torch(backend, rng):
    # depth 7, padding 1, taps 8 apart: the first window's taps (-1, 7) both miss the
    # input; PyTorch gives it -inf and the index of the past-the-end cell (its backward
    # aborts on that index, so only fastnn's is run: such an index adds nothing)
    x = rng.standard_normal((2, 3, 7, 6, 5))
    kwargs = dict(kernel_size=(2, 1, 2), padding=(1, 0, 1), dilation=(8, 1, 1))
    y, indices = nn.MaxPool3d(**kwargs, return_indices=True)(x)
    ty, t_indices = torch.nn.MaxPool3d(**kwargs, return_indices=True)(torch.from_numpy(x))
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(indices, t_indices.numpy())
    assert np.isneginf(y).all()
    layer = nn.MaxPool3d(**kwargs)
    layer(x)
    np.testing.assert_array_equal(layer.backward(np.ones_like(y)), np.zeros_like(x))


def test_max_pools_pick_nan_and_index_all_minus_inf_windows_as_torch(backend, rng):
    x = rng.standard_normal((2, 2, 6, 5, 7))
    x[rng.random(x.shape) < 0.15] = np.nan
    x[rng.random(x.shape) < 0.1] = -np.inf
    layers = [(nn.MaxPool3d(3, 2, 1, return_indices=True, ceil_mode=True),
               torch.nn.MaxPool3d(3, 2, 1, return_indices=True, ceil_mode=True)),
              (nn.AdaptiveMaxPool3d((4, 3, 5), True), torch.nn.AdaptiveMaxPool3d((4, 3, 5), True)),
              # sizes that divide the input's: MaxPool3d's path on the compiled backends
              (nn.AdaptiveMaxPool3d((3, 5, 1), True), torch.nn.AdaptiveMaxPool3d((3, 5, 1), True)),
              (nn.AdaptiveMaxPool3d(1, True), torch.nn.AdaptiveMaxPool3d(1, True))]
    for data in (x, np.full((1, 1, 3, 4, 3), -np.inf)):
        for layer, twin in layers:
            y, indices = layer(data)
            ty, t_indices = twin(torch.from_numpy(data))
            np.testing.assert_array_equal(indices, t_indices.numpy())
            np.testing.assert_array_equal(y, ty.numpy())


AVG = [((2,), {}), ((3,), dict(stride=2, padding=1)),
       (((3, 2, 2),), dict(stride=(2, 1, 2), padding=(1, 0, 1), ceil_mode=True,
                           count_include_pad=False)),
       ((3,), dict(stride=2, padding=1, ceil_mode=True)),
       ((3,), dict(stride=2, padding=1, divisor_override=5, ceil_mode=True)),
       (((2, 3, 2),), dict(stride=1, padding=(1, 1, 0), count_include_pad=False))]


@pytest.mark.parametrize("args,kwargs", AVG, ids=["k2", "k3s2p1", "mixed", "ceil", "divisor",
                                                  "nopad"])
@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
def test_avg_pool3d_matches_torch(dtype, rng, args, kwargs, unbatched):
    shape = (3, 7, 6, 5) if unbatched else (2, 3, 7, 6, 5)
    layer, twin = nn.AvgPool3d(*args, **kwargs), torch.nn.AvgPool3d(*args, **kwargs)
    _against(layer, twin, rng.standard_normal(shape).astype(dtype), rng, dtype)
    assert repr(layer) == repr(twin)


@pytest.mark.parametrize("args", [(2, 2), (1.5, (3, 2, 2), 2, True), (3, 2, (1, 2, 1)),
                                  (2.0, 3, None, True)], ids=["p2", "p1.5ceil", "p3", "ceil"])
def test_lp_pool3d_matches_torch(dtype, rng, args):
    for shape in ((2, 3, 7, 6, 5), (3, 7, 6, 5)):
        x = rng.standard_normal(shape).astype(dtype)
        if args[0] == 1.5:
            x = np.abs(x) + dtype.type(0.1)  # (a negative input to the power 1.5 is NaN)
        layer, twin = nn.LPPool3d(*args), torch.nn.LPPool3d(*args)
        _against(layer, twin, x, rng, dtype)
        assert repr(layer) == repr(twin)


@pytest.mark.parametrize("size", [2, (3, None, 2), (4, 5, 3), 1, (7, 6, 5), (7, 3, 1)],
                         ids=["2", "3None2", "overlap", "global", "identity", "tiles"])
@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
def test_adaptive_pool3d_matches_torch(backend, dtype, rng, size, unbatched):
    shape = (3, 7, 6, 5) if unbatched else (2, 3, 7, 6, 5)
    x = rng.standard_normal(shape).astype(dtype)
    layer, twin = nn.AdaptiveAvgPool3d(size), torch.nn.AdaptiveAvgPool3d(size)
    _against(layer, twin, x, rng, dtype)
    assert repr(layer) == repr(twin)
    for ties in (False, True):
        data = rng.integers(0, 3, shape).astype(dtype) if ties else x
        layer = nn.AdaptiveMaxPool3d(size, return_indices=True)
        twin = torch.nn.AdaptiveMaxPool3d(size, return_indices=True)
        _against(layer, twin, data, rng, dtype)
        assert repr(layer) == repr(twin)
    np.testing.assert_array_equal(nn.AdaptiveMaxPool3d(size)(x), layer(x)[0])


@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
def test_max_unpool3d_matches_torch(dtype, rng, unbatched):
    for kwargs, shape, output_size in ((dict(kernel_size=2), (2, 3, 6, 4, 4), None),
                                       (dict(kernel_size=2), (2, 3, 7, 5, 4), (7, 5, 4)),
                                       (dict(kernel_size=3, stride=2, padding=1),
                                        (2, 3, 7, 6, 5), [2, 3, 7, 6, 5])):
        if unbatched:
            shape = shape[1:]
            output_size = output_size if output_size is None else tuple(output_size)[-3:]
        x = rng.standard_normal(shape).astype(dtype)
        y, indices = nn.MaxPool3d(**kwargs, return_indices=True)(x)
        layer, twin = nn.MaxUnpool3d(**kwargs), torch.nn.MaxUnpool3d(**kwargs)
        extra = (indices,) if output_size is None else (indices, output_size)
        z = _against(layer, twin, y, rng, dtype, *extra)
        assert z.shape == shape
        assert repr(layer) == repr(twin)
    with pytest.raises(ValueError, match="invalid output_size"):
        layer(y, indices, (3, 3, 3))
    with pytest.raises(ValueError):
        twin(torch.from_numpy(y), torch.from_numpy(indices), (3, 3, 3))


REPRS = [("Conv3d", (2, 4, 3), {}),
         ("Conv3d", (2, 4, (3, 2, 1)), dict(stride=2, padding=1, dilation=2, groups=2,
                                            bias=False, padding_mode="reflect")),
         ("Conv3d", (2, 4, 3), dict(padding="same")), ("Conv3d", (2, 4, 3), dict(padding="valid")),
         ("ConvTranspose3d", (2, 4, 3), dict(stride=2, padding=1, output_padding=1, groups=2,
                                             dilation=2, bias=False)),
         ("ConvTranspose3d", (2, 4, (1, 2, 3)), {}),
         ("MaxPool3d", (2,), {}), ("MaxPool3d", ((2, 3, 1),), dict(stride=1, padding=(1, 1, 0),
                                                               dilation=2, ceil_mode=True)),
         ("AvgPool3d", (2,), {}), ("AvgPool3d", (3, 2, 1, True, False, 5), {}),
         ("LPPool3d", (2, 3), {}), ("LPPool3d", (1.5, (2, 3, 1), 2, True), {}),
         ("AdaptiveAvgPool3d", ((2, None, 3),), {}), ("AdaptiveMaxPool3d", (2, True), {}),
         ("MaxUnpool3d", (2,), {}), ("MaxUnpool3d", ((2, 3, 1), 1, 0), {})]


def test_reprs_equal_torchs():
    for name, args, kwargs in REPRS:
        assert repr(getattr(nn, name)(*args, **kwargs)) == \
            repr(getattr(torch.nn, name)(*args, **kwargs))


def test_a_3d_model_trains_as_torchs(rng):
    """A Sequential of the new layers (Sequential checks every shape first, asks for no
    input gradient of the first layer), loaded from PyTorch's state dict."""
    twin = torch.nn.Sequential(
        torch.nn.Conv3d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool3d(2),
        torch.nn.ConvTranspose3d(4, 4, 2, stride=2, groups=2), torch.nn.AvgPool3d(3, 2, 1),
        torch.nn.LPPool3d(2, 2, ceil_mode=True), torch.nn.AdaptiveMaxPool3d((2, 1, 2)),
        torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3)).double()
    model = nn.Sequential(
        nn.Conv3d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool3d(2),
        nn.ConvTranspose3d(4, 4, 2, stride=2, groups=2), nn.AvgPool3d(3, 2, 1),
        nn.LPPool3d(2, 2, ceil_mode=True), nn.AdaptiveMaxPool3d((2, 1, 2)),
        nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, 3)).double()
    assert_trains_as_twin(model, twin, rng.standard_normal((2, 2, 6, 7, 8)), rng)


def _both_raise(error, match, ours, theirs):
    with pytest.raises(error, match=match):
        ours()
    with pytest.raises(Exception):
        theirs()


def test_bad_inputs_raise_as_torch():
    x = np.zeros((1, 3, 4, 4, 4), np.float32)
    tx = torch.from_numpy(x)
    conv, tconv = nn.Conv3d(2, 4, 3), torch.nn.Conv3d(2, 4, 3)
    _both_raise(ValueError, r"expected input of shape \(N, 2, D, H, W\)", lambda: conv(x),
                lambda: tconv(tx))
    deconv, tdeconv = nn.ConvTranspose3d(2, 4, 3), torch.nn.ConvTranspose3d(2, 4, 3)
    _both_raise(ValueError, "expected input of shape", lambda: deconv(x), lambda: tdeconv(tx))
    small = np.zeros((1, 2, 4, 2, 4), np.float32)
    _both_raise(ValueError, "larger than the padded input", lambda: conv(small),
                lambda: tconv(torch.from_numpy(small)))
    dilated = nn.Conv3d(2, 4, 3, dilation=(1, 1, 3), padding=1)
    _both_raise(ValueError, "larger than the padded input", lambda: dilated(x[:, :2]),
                lambda: torch.nn.Conv3d(2, 4, 3, dilation=(1, 1, 3), padding=1)(tx[:, :2]))
    for pool, tpool in ((nn.MaxPool3d(3), torch.nn.MaxPool3d(3)),
                        (nn.AvgPool3d(3), torch.nn.AvgPool3d(3)),
                        (nn.LPPool3d(2, 3), torch.nn.LPPool3d(2, 3))):
        _both_raise(ValueError, "larger than the padded input", lambda: pool(small),
                    lambda: tpool(torch.from_numpy(small)))
    avg, tavg = nn.AvgPool3d(3, 1, 1), torch.nn.AvgPool3d(3, 1, 1)  # unpadded input < kernel
    two = np.zeros((1, 2, 2, 4, 4), np.float32)
    _both_raise(ValueError, "smaller than the kernel", lambda: avg(two),
                lambda: tavg(torch.from_numpy(two)))
    assert nn.MaxPool3d(3, 1, 1)(two).shape == tuple(
        torch.nn.MaxPool3d(3, 1, 1)(torch.from_numpy(two)).shape)
    shrink, tshrink = (nn.ConvTranspose3d(2, 2, 1, padding=1),
                       torch.nn.ConvTranspose3d(2, 2, 1, padding=1))
    one = np.zeros((1, 2, 1, 3, 3), np.float32)
    _both_raise(ValueError, "would have size", lambda: shrink(one),
                lambda: tshrink(torch.from_numpy(one)))
    reflect = nn.Conv3d(2, 2, 3, padding=2, padding_mode="reflect")
    flat = np.zeros((1, 2, 2, 5, 5), np.float32)
    _both_raise(ValueError, "reflection padding", lambda: reflect(flat),
                lambda: torch.nn.Conv3d(2, 2, 3, padding=2, padding_mode="reflect")(
                    torch.from_numpy(flat)))
    with pytest.raises(TypeError, match="does not match"):
        conv(np.zeros((1, 2, 4, 4, 4)))  # float64 into float32 parameters
    with pytest.raises(TypeError):
        nn.MaxPool3d(2)(np.zeros((1, 2, 4, 4, 4), np.int64))
    for layer in (nn.MaxPool3d(2), nn.AvgPool3d(2), nn.AdaptiveAvgPool3d(2), conv):
        with pytest.raises(ValueError, match="expected input of"):
            layer(np.zeros((2, 4, 4), np.float32))
    with pytest.raises(ValueError, match="non-zero"):
        nn.AdaptiveMaxPool3d(2)(np.zeros((1, 2, 0, 3, 3), np.float32))
    with pytest.raises(TypeError, match="integer indices"):
        nn.MaxUnpool3d(2)(np.zeros((1, 1, 2, 2, 2)), np.zeros((1, 1, 2, 2, 2)))


def test_bad_arguments_raise_as_torch():
    cases = [(lambda m: m.Conv3d(3, 4, 3, groups=2), "divisible by groups"),
             (lambda m: m.Conv3d(4, 3, 3, groups=2), "divisible by groups"),
             (lambda m: m.Conv3d(2, 2, 3, padding="full"), "padding string"),
             (lambda m: m.Conv3d(2, 2, 3, stride=2, padding="same"), "strided"),
             (lambda m: m.Conv3d(2, 2, 3, padding_mode="mirror"), "padding_mode"),
             (lambda m: m.ConvTranspose3d(2, 2, 3, padding_mode="reflect"), "padding_mode"),
             (lambda m: m.ConvTranspose3d(2, 2, 3, groups=3), "divisible by groups")]
    for build, match in cases:
        with pytest.raises(ValueError, match=match):
            build(nn)
        with pytest.raises(ValueError):
            build(torch.nn)
    # PyTorch raises these when it runs the layer (RuntimeError), fastnn when it is built
    x = torch.zeros(1, 1, 5, 5, 5)
    # (output_padding, as PyTorch's, when the forward that uses it runs)
    with pytest.raises(ValueError, match="output padding must be smaller"):
        nn.ConvTranspose3d(1, 1, 3, output_padding=1)(np.zeros((1, 1, 5, 5, 5), np.float32))
    with pytest.raises(RuntimeError):
        torch.nn.ConvTranspose3d(1, 1, 3, output_padding=1)(x)
    for build, match in ((lambda m: m.MaxPool3d(2, padding=2), "half of kernel size"),
                         (lambda m: m.AvgPool3d(3, padding=2), "half of kernel size"),
                         (lambda m: m.AdaptiveAvgPool3d((2, 2)), "output_size")):
        with pytest.raises(ValueError, match=match):
            build(nn)
        with pytest.raises(RuntimeError):
            build(torch.nn)(x)
    for bad in (dict(kernel_size=0), dict(kernel_size=(2, 2)), dict(kernel_size=2, stride=0)):
        with pytest.raises(ValueError):
            nn.MaxPool3d(**bad)
        with pytest.raises(ValueError):
            nn.Conv3d(1, 1, **bad)
    with pytest.raises(ValueError, match="norm_type"):
        nn.LPPool3d(0, 2)
    with pytest.raises(ValueError, match="divisor_override"):
        nn.AvgPool3d(2, divisor_override=0)


def test_conv_transpose3d_unbatched_output_size_with_the_channel_entry():
    """An unbatched (C, D, H, W) input takes output_size of 3 or 4 entries (PyTorch's)."""
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    twin = torch.nn.ConvTranspose3d(2, 3, 2, stride=2).double()
    layer = nn.ConvTranspose3d(2, 3, 2, stride=2).to_dtype(np.float64)
    layer.load_state_dict({k: v.detach().numpy() for k, v in twin.state_dict().items()})
    y = layer(x, [3, 7, 8, 11])
    np.testing.assert_allclose(y, twin(torch.from_numpy(x), [3, 7, 8, 11]).detach().numpy())
    with pytest.raises(ValueError, match="3 or 5 elements"):
        layer(x[None], [3, 7, 8, 11])


def test_lppool3d_nan_windows_give_nan_gradients_as_torch():
    """The 2-D layers' rule (one shared helper): a window whose power-mean is NaN passes
    NaN back, an all-zero window 0."""
    for x, p in [([1.0, np.nan], 2), ([1.0, -1.0], 0.5), ([0.0, 0.0], 2), ([-1.0, 2.0], 3)]:
        x = np.array(x).reshape(1, 1, 1, 1, 2)
        tx = torch.tensor(x, requires_grad=True)
        torch.nn.LPPool3d(p, (1, 1, 2))(tx).backward(torch.ones(1, 1, 1, 1, 1,
                                                                dtype=torch.float64))
        layer = nn.LPPool3d(p, (1, 1, 2))
        layer(x)
        np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 1, 1, 1))),
                                      tx.grad.numpy())
