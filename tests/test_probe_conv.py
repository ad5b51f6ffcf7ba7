"""Convolution layers and their functional forms against PyTorch, from a randomized probe
(nn.Conv1d/2d/3d, nn.ConvTranspose1d/2d/3d, F.conv*/F.conv_transpose*): 'same' padding of
even kernels, ``forward(x, output_size)`` of the transposed layers, PyTorch's attributes,
the functional 3-D and transposed convolutions and their error types, and a seeded sweep
of random configurations on every CPU backend in float32 and float64."""
import math
import random

import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.nn import functional as F

import torch  # noqa: E402  (after fastnn, as the README asks)

from conftest import assert_close

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")

CPU_BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.backends()]
DTYPES = [np.float32, np.float64]


def _both(name, kwargs, dtype):
    """(fastnn layer, torch float64 layer) of class name with the same weights."""
    twin = getattr(torch.nn, name)(**kwargs, dtype=torch.float64)
    layer = getattr(nn, name)(**kwargs, dtype=dtype)
    layer.weight.data[...] = twin.weight.detach().numpy()
    if twin.bias is not None:
        layer.bias.data[...] = twin.bias.detach().numpy()
    return layer, twin


def _check(name, kwargs, shape, seed=0, forward_kwargs=None, backends=CPU_BACKENDS):
    """Output, input gradient and parameter gradients equal torch's (float32 and float64,
    each backend)."""
    forward_kwargs = forward_kwargs or {}
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    torch.manual_seed(seed)
    _, twin = _both(name, kwargs, np.float64)
    xt = torch.tensor(x, requires_grad=True)
    yt = twin(xt, **forward_kwargs)
    g = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(g))
    for backend in backends:
        for dtype in DTYPES:
            with fastnn.use_backend(backend):
                layer, _ = _both(name, kwargs, dtype)
                layer.weight.data[...] = twin.weight.detach().numpy()
                if twin.bias is not None:
                    layer.bias.data[...] = twin.bias.detach().numpy()
                y = layer(x.astype(dtype), **forward_kwargs)
                assert y.shape == tuple(yt.shape) and y.dtype == dtype
                assert_close(y, yt.detach().numpy(), dtype, 10)
                gx = layer.backward(g.astype(dtype))
                assert gx.shape == shape
                assert_close(gx, xt.grad.numpy(), dtype, 10)
                assert_close(layer.weight.grad, twin.weight.grad.numpy(), dtype, 30)
                if twin.bias is not None:
                    assert_close(layer.bias.grad, twin.bias.grad.numpy(), dtype, 30)


# ------------------------------------------------------------ padding='same', even spans
@pytest.mark.parametrize("name, kwargs, shape", [
    ("Conv1d", dict(in_channels=2, out_channels=3, kernel_size=4), (2, 2, 7)),
    ("Conv1d", dict(in_channels=4, out_channels=4, kernel_size=2, dilation=3, groups=2,
                    padding_mode="circular"), (4, 6)),
    ("Conv2d", dict(in_channels=2, out_channels=3, kernel_size=(2, 3)), (2, 2, 5, 4)),
    ("Conv2d", dict(in_channels=2, out_channels=2, kernel_size=(4, 2), bias=False,
                    padding_mode="reflect"), (1, 2, 6, 5)),
    ("Conv2d", dict(in_channels=3, out_channels=3, kernel_size=2, groups=3,
                    padding_mode="replicate"), (3, 4, 4)),
    ("Conv3d", dict(in_channels=2, out_channels=2, kernel_size=(2, 3, 4)), (1, 2, 3, 4, 5)),
], ids=["conv1d", "conv1d-dilated-circular", "conv2d", "conv2d-reflect",
        "conv2d-depthwise-replicate-unbatched", "conv3d"])
def test_same_padding_with_even_kernel_spans_matches_torch(name, kwargs, shape):
    """PyTorch pads an even span's odd cell after (bottom/right); fastnn refused these."""
    kwargs = dict(kwargs, padding="same")
    _check(name, kwargs, shape)
    layer, twin = _both(name, kwargs, np.float32)
    assert layer.padding == twin.padding == "same"
    assert repr(layer) == repr(twin)


def test_padding_strings_are_kept_as_torch_keeps_them():
    for name in ("Conv1d", "Conv2d", "Conv3d"):
        for padding in ("same", "valid", 1):
            layer, twin = _both(name, dict(in_channels=2, out_channels=2, kernel_size=3,
                                           padding=padding), np.float32)
            assert layer.padding == twin.padding
            assert repr(layer) == repr(twin)
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        nn.Conv1d(2, 2, 4, stride=2, padding="same")
    with pytest.raises(ValueError, match="invalid padding string 'full'"):
        nn.Conv2d(2, 2, 3, padding="full")


# --------------------------------------------------- transposed: forward(x, output_size)
@pytest.mark.parametrize("name, kwargs, shape, size", [
    ("ConvTranspose1d", dict(in_channels=2, out_channels=3, kernel_size=3, stride=3), (2, 2, 4),
     [12]),
    ("ConvTranspose1d", dict(in_channels=2, out_channels=4, kernel_size=2, stride=2, groups=2,
                             dilation=2, padding=1), (2, 5), [4, 10]),
    ("ConvTranspose2d", dict(in_channels=2, out_channels=3, kernel_size=3, stride=2), (2, 2, 3, 4),
     [8, 9]),
    ("ConvTranspose2d", dict(in_channels=3, out_channels=3, kernel_size=(2, 3), stride=(3, 2),
                             groups=3, bias=False), (3, 2, 2), [3, 6, 6]),
    ("ConvTranspose2d", dict(in_channels=2, out_channels=2, kernel_size=3, stride=2,
                             padding=1), (1, 2, 3, 3), [1, 2, 6, 5]),
    ("ConvTranspose3d", dict(in_channels=2, out_channels=2, kernel_size=2, stride=2), (2, 2, 2, 2),
     [5, 4, 5]),
], ids=["1d", "1d-unbatched-full-size", "2d", "2d-unbatched-grouped", "2d-full-size", "3d"])
def test_transposed_output_size_matches_torch(name, kwargs, shape, size):
    """fastnn's ConvTranspose1d/2d had no output_size argument (TypeError)."""
    _check(name, kwargs, shape, forward_kwargs=dict(output_size=size))


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_transposed_output_size_errors_as_torch(dims):
    name = f"ConvTranspose{dims}d"
    layer, twin = _both(name, dict(in_channels=2, out_channels=2, kernel_size=3, stride=2),
                        np.float32)
    x = np.zeros((1, 2) + (3,) * dims, np.float32)
    for size, message in (([6] * dims, "requested an output size of"),
                          ([9] * dims, "valid sizes range from"),
                          ([7] * (dims + 1), "output_size must have")):
        with pytest.raises(ValueError, match=message):
            twin(torch.zeros(x.shape, dtype=torch.float64), output_size=size)
        with pytest.raises(ValueError, match=message):
            layer(x, output_size=size)
    assert layer(x, output_size=[8] * dims).shape == (1, 2) + (8,) * dims


def test_lazy_transposed_layers_take_output_size():
    for dims in (1, 2):
        layer = getattr(nn, f"LazyConvTranspose{dims}d")(3, 3, stride=2)
        twin = getattr(torch.nn, f"LazyConvTranspose{dims}d")(3, 3, stride=2)
        x = np.zeros((2, 4) + (3,) * dims, np.float32)
        size = [8] * dims
        assert layer(x, output_size=size).shape == tuple(
            twin(torch.zeros(x.shape), output_size=size).shape)


# ----------------------------------------------------------------------- attributes
ATTRIBUTES = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
              "groups", "padding_mode", "output_padding", "transposed")


@pytest.mark.parametrize("name, kwargs", [
    ("Conv1d", dict(kernel_size=3, stride=2, padding=1, dilation=2)),
    ("Conv2d", dict(kernel_size=(3, 2), padding="valid", padding_mode="reflect")),
    ("Conv3d", dict(kernel_size=2, groups=2)),
    ("ConvTranspose1d", dict(kernel_size=3, stride=2, padding=1, output_padding=1,
                             dilation=2)),
    ("ConvTranspose2d", dict(kernel_size=(3, 2), stride=(2, 1), output_padding=(1, 0))),
    ("ConvTranspose3d", dict(kernel_size=2, stride=2, groups=2)),
])
def test_attributes_and_repr_are_torch_s(name, kwargs):
    """ConvTranspose1d held 2-D pairs (kernel_size (1, k), padding (0, p), ...); the
    transposed 1-D/2-D layers had no padding_mode; none had transposed/output_padding
    (Conv*)."""
    layer, twin = _both(name, dict(in_channels=4, out_channels=6, **kwargs), np.float32)
    for attribute in ATTRIBUTES:
        assert getattr(layer, attribute) == getattr(twin, attribute), attribute
    assert repr(layer) == repr(twin)
    assert layer.weight.shape == tuple(twin.weight.shape)


def test_one_dimensional_errors_name_one_dimensional_shapes():
    with pytest.raises(ValueError, match=r"kernel size \(4,\) is larger than the padded "
                                         r"input \(1,\) of an input of shape \(1, 2, 1\)"):
        nn.Conv1d(2, 2, 4)(np.zeros((1, 2, 1), np.float32))
    with pytest.raises(ValueError, match=r"input of shape \(1, 2\) would have size \(0,\)"):
        nn.ConvTranspose1d(1, 2, 1, stride=3, padding=2, dilation=2)(
            np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match=r"output padding must be smaller than either "
                                         r"stride or dilation, got output_padding \(2,\)"):
        nn.ConvTranspose1d(1, 2, 3, stride=2, output_padding=2)(np.zeros((1, 1, 3),
                                                                           np.float32))
    with pytest.raises(ValueError, match="ConvTranspose1d: padding_mode='reflect'"):
        nn.ConvTranspose1d(1, 2, 3, padding_mode="reflect")


def test_default_initialisation_is_kaiming_uniform_as_torch():
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias, fan_in from the weight's
    second axis times the kernel volume (the transposed layers: out_channels / groups)."""
    for name, kernel in (("Conv1d", 3), ("Conv2d", (3, 2)), ("Conv3d", 2),
                         ("ConvTranspose1d", 3), ("ConvTranspose2d", (3, 2)),
                         ("ConvTranspose3d", 2)):
        layer = getattr(nn, name)(12, 24, kernel, groups=3)
        twin = getattr(torch.nn, name)(12, 24, kernel, groups=3)
        bound = 1 / math.sqrt(twin.weight.shape[1] * math.prod(twin.weight.shape[2:]))
        w, b = layer.weight.data, layer.bias.data
        assert w.shape == tuple(twin.weight.shape) and w.dtype == np.float32
        assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
        assert np.abs(w).max() > 0.9 * bound
        assert abs(w.std() - bound / math.sqrt(3)) < 0.15 * bound


# ---------------------------------------------------------------- functional forms
@pytest.mark.parametrize("fname, w_shape, x_shape, kwargs", [
    ("conv3d", (4, 1, 2, 3, 2), (2, 2, 5, 6, 4), dict(stride=(1, 2, 1), padding=1, groups=2,
                                                      dilation=(2, 1, 1))),
    ("conv3d", (3, 2, 2, 2, 3), (2, 4, 5, 4), dict(padding="same")),
    ("conv_transpose1d", (4, 3, 3), (2, 4, 5), dict(stride=2, padding=1, output_padding=1)),
    ("conv_transpose1d", (4, 1, 2), (4, 6), dict(groups=4, dilation=3, padding=2)),
    ("conv_transpose2d", (2, 3, 3, 2), (2, 2, 4, 3), dict(stride=(2, 3), output_padding=(1, 2),
                                                          padding=(1, 0))),
    ("conv_transpose2d", (4, 2, 2, 3), (4, 3, 3), dict(groups=2, dilation=2, stride=2,
                                                       output_padding=1)),
    ("conv_transpose3d", (2, 2, 2, 3, 2), (1, 2, 3, 2, 3), dict(stride=2, padding=(0, 1, 0),
                                                                 output_padding=(1, 0, 1))),
], ids=["conv3d", "conv3d-same-unbatched", "ct1d", "ct1d-depthwise-unbatched", "ct2d",
        "ct2d-grouped-dilated-unbatched", "ct3d"])
def test_functional_conv3d_and_transposed_convs_match_torch(fname, w_shape, x_shape, kwargs):
    """F.conv3d and F.conv_transpose1d/2d/3d were missing."""
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    out_channels = w_shape[1] * kwargs.get("groups", 1) if "transpose" in fname else w_shape[0]
    b = rng.standard_normal(out_channels)
    expected = getattr(torch.nn.functional, fname)(torch.tensor(x), torch.tensor(w),
                                                   torch.tensor(b), **kwargs).numpy()
    for backend in CPU_BACKENDS:
        for dtype in DTYPES:
            with fastnn.use_backend(backend):
                y = getattr(F, fname)(x.astype(dtype), w.astype(dtype), b.astype(dtype),
                                      **kwargs)
            assert y.shape == expected.shape and y.dtype == dtype
            assert_close(y, expected, dtype, 10)
    assert fname in F.__all__


@pytest.mark.parametrize("call", [
    lambda f, x: f.conv_transpose2d(x, np.zeros((5, 3, 3, 3))),          # channels
    lambda f, x: f.conv_transpose2d(x, np.zeros((4, 3, 3, 3)), groups=3),  # groups
    lambda f, x: f.conv_transpose2d(x, np.zeros((4, 3, 3, 3)), groups=0),
    lambda f, x: f.conv_transpose2d(x, np.zeros((4, 3, 3, 3)), stride=2, output_padding=2),
    lambda f, x: f.conv_transpose2d(x, np.zeros((4, 3, 3, 3)), padding=4),  # output < 1
    lambda f, x: f.conv_transpose2d(x, np.zeros((4, 3, 3, 3)), padding=-1),
    lambda f, x: f.conv_transpose2d(x, np.zeros((4, 3, 3, 3)), output_padding=-1),
    lambda f, x: f.conv_transpose2d(x, np.zeros((4, 3, 3, 3)), np.zeros(2)),  # bias
    lambda f, x: f.conv_transpose2d(x[0, 0], np.zeros((4, 3, 3, 3))),      # rank
    lambda f, x: f.conv_transpose2d(x, np.zeros((4, 3, 3, 3)), padding="same"),
    lambda f, x: f.conv_transpose1d(x[0], np.zeros((4, 3, 3))),
    lambda f, x: f.conv3d(x[None], np.zeros((3, 3, 1, 3, 3))),            # channels
    lambda f, x: f.conv3d(x[None], np.zeros((3, 2, 1, 3, 3)), groups=2),   # groups
    lambda f, x: f.conv3d(x[None], np.zeros((3, 2, 1, 9, 3))),            # kernel too big
    lambda f, x: f.conv3d(x[None], np.zeros((3, 2, 1, 3, 3)), stride=2, padding="same"),
    lambda f, x: f.conv2d(x, np.zeros((3, 4, 3, 3)), stride=(1, 1, 1)),
], ids=["channels", "groups", "groups0", "output-padding", "too-small", "negative-padding",
        "negative-output-padding", "bias", "rank", "padding-string", "1d-channels",
        "3d-channels", "3d-groups", "3d-kernel", "3d-same-strided", "stride-length"])
def test_functional_errors_have_torch_s_types(call):
    x = np.random.default_rng(0).standard_normal((2, 4, 5, 5))
    with pytest.raises(Exception) as expected:
        call(_TorchF, torch.tensor(x))
    with pytest.raises(type(expected.value)):
        call(F, x)


class _TorchF:
    """torch.nn.functional taking NumPy weights (the calls above are written once)."""

    def __getattr__(self, name):
        fn = getattr(torch.nn.functional, name)

        def call(x, w, b=None, **kwargs):
            return fn(x, torch.tensor(w), None if b is None else torch.tensor(b), **kwargs)
        return call


_TorchF = _TorchF()


# ------------------------------------------------------------------- a random sweep
def _random_config(r):
    dims, transposed = r.choice([1, 2, 3]), r.random() < 0.45
    groups = r.choice([1, 1, 2, 3])
    cin, cout = groups * r.randint(1, 2), groups * r.randint(1, 2)
    kernel = tuple(r.randint(1, 3) for _ in range(dims))
    stride = tuple(r.randint(1, 2) for _ in range(dims))
    dilation = tuple(r.randint(1, 2) for _ in range(dims))
    kwargs = dict(in_channels=cin, out_channels=cout, kernel_size=kernel, stride=stride,
                  dilation=dilation, groups=groups, bias=r.random() < 0.7)
    if transposed:
        kwargs["padding"] = tuple(r.randint(0, 1) for _ in range(dims))
        kwargs["output_padding"] = tuple(r.randint(0, max(s, d) - 1)
                                         for s, d in zip(stride, dilation))
    else:
        kwargs["padding_mode"] = r.choice(["zeros", "reflect", "replicate", "circular"])
        kwargs["padding"] = ("same" if stride == (1,) * dims and r.random() < 0.3
                             else tuple(r.randint(0, 1) for _ in range(dims)))
    size = 3 if dims == 3 else 5
    shape = ((r.choice([1, 2]),) if r.random() < 0.8 else ()) + (cin,) + tuple(
        r.randint(size - 1, size + 1) for _ in range(dims))
    name = f"{'ConvTranspose' if transposed else 'Conv'}{dims}d"
    return name, kwargs, shape


@pytest.mark.parametrize("seed", range(8))
def test_random_configurations_match_torch(seed):
    """Random geometry, groups, padding modes, batched or not: values and gradients on
    every CPU backend (the 3-D layers are NumPy on the host: one backend)."""
    r = random.Random(seed)
    checked = 0
    while checked < 4:
        name, kwargs, shape = _random_config(r)
        layer, twin = _both(name, kwargs, np.float64)
        try:  # a kernel past the padded input, a reflection as wide as it, ...
            twin(torch.zeros(shape, dtype=torch.float64))
        except RuntimeError:
            with pytest.raises(ValueError):
                layer(np.zeros(shape))
            continue
        backends = CPU_BACKENDS if not name.endswith("3d") else CPU_BACKENDS[:1]
        _check(name, kwargs, shape, seed=seed * 10 + checked, backends=backends)
        checked += 1


@pytest.mark.parametrize("make,shape", [
    (lambda m: m.MaxPool1d(2, padding=1), (1, 3, 0)),
    (lambda m: m.MaxPool2d(2, padding=1), (1, 3, 4, 0)),
    (lambda m: m.AvgPool2d(3, 2, 1, ceil_mode=True), (1, 3, 7, 0)),
    (lambda m: m.LPPool2d(1, 1, 3), (0, 5, 5)),
    (lambda m: m.MaxPool3d(2), (1, 0, 4, 4, 4)),
    (lambda m: m.Conv1d(3, 3, 4, padding="same"), (1, 3, 0)),
    (lambda m: m.Conv3d(1, 1, 1, padding=2), (1, 1, 1, 7, 0)),
    (lambda m: m.ConvTranspose1d(2, 1, 3), (1, 2, 0)),
    (lambda m: m.ConvTranspose2d(2, 1, 3), (1, 2, 0, 3)),
    (lambda m: m.ConvTranspose3d(1, 1, 2), (1, 1, 0, 2, 2)),
    (lambda m: m.Unfold(1, padding=2), (1, 1, 0)),
    (lambda m: m.Unfold(2), (2, 0, 4, 4)),
    (lambda m: m.Fold((3, 3), (2, 2)), (2, 0, 4)),
])
@pytest.mark.parametrize("backend", fastnn.backends())
def test_empty_spatial_inputs_are_refused_as_by_torch(backend, make, shape):
    """Only the batch may be empty: an empty image (or no channels for a pool) has no
    windows, and padding alone had made up outputs (-inf windows, bias-only volumes, or
    on cython a ConvTranspose output of uninitialised memory)."""
    x = np.zeros(shape, np.float32)
    with pytest.raises(RuntimeError):
        make(torch.nn)(torch.from_numpy(x))
    with fastnn.use_backend(backend), pytest.raises(ValueError, match="non-zero"):
        make(nn)(x)


@pytest.mark.parametrize("make,shape", [
    (lambda m: m.MaxPool2d(2), (0, 3, 4, 4)), (lambda m: m.Conv2d(3, 2, 3), (0, 3, 5, 5)),
    (lambda m: m.ConvTranspose2d(2, 1, 3), (0, 2, 3, 3)),
    (lambda m: m.Conv3d(1, 1, 1), (0, 1, 2, 2, 2)), (lambda m: m.AvgPool3d(2), (0, 1, 2, 2, 2)),
    (lambda m: m.Unfold(2), (0, 1, 3, 3))])
def test_empty_batches_still_run(make, shape):
    x = np.zeros(shape, np.float32)
    want = make(torch.nn)(torch.from_numpy(x))
    layer = make(nn)
    y = layer(x)
    assert y.shape == tuple(want.shape)
    assert layer.backward(np.zeros(y.shape, np.float32)).shape == shape


@pytest.mark.parametrize("cls,shape", [("MaxUnpool1d", (0, 2, 3)), ("MaxUnpool2d", (0, 2, 3, 3)),
                                       ("MaxUnpool3d", (0, 1, 2, 2, 2))])
def test_max_unpool_backward_of_an_empty_batch(cls, shape):
    x, indices = np.zeros(shape), np.zeros(shape, np.int64)
    xt = torch.tensor(x, requires_grad=True)
    want = getattr(torch.nn, cls)(2)(xt, torch.from_numpy(indices))
    want.backward(torch.ones_like(want))
    layer = getattr(nn, cls)(2)
    y = layer(x, indices)
    assert y.shape == tuple(want.shape)
    assert layer.backward(np.ones(y.shape)).shape == tuple(xt.grad.shape)


def test_one_dimensional_pools_name_the_callers_input_shape():
    x = np.zeros((2, 1, 4), np.float32)
    for layer in (nn.MaxPool1d(5), nn.AvgPool1d(5), nn.LPPool1d(2, 5), nn.Conv1d(1, 1, 5)):
        with pytest.raises(ValueError, match=r"kernel size \(5,\) is larger than the padded "
                                             r"input \(4,\) of an input of shape \(2, 1, 4\)"):
            layer(x)
