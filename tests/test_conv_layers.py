"""Conv2d, MaxPool2d and AvgPool2d against PyTorch twins on every backend, gradcheck in
float64, PyTorch's initialisation, and clear errors for bad arguments and inputs."""
import inspect
import math

import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn
from fastnn.gradcheck import gradcheck

from conftest import assert_close
from conv_torch_helpers import conv_twin, torch_parameter_grads

torch.set_num_threads(2)


def run_both(layer, x, rng):
    """Forward and backward through the layer and its torch twin; returns both sides."""
    twin = conv_twin(layer)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = twin(tx)
    g = rng.standard_normal(tuple(ty.shape)).astype(x.dtype)
    ty.backward(torch.from_numpy(g))
    y = layer.forward(x)
    grad_in = layer.backward(g)
    return (y, grad_in), (ty.detach().numpy(), tx.grad.numpy()), twin


@pytest.mark.parametrize("args", [
    dict(in_channels=3, out_channels=4, kernel_size=3, padding=1),
    dict(in_channels=2, out_channels=5, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0)),
    dict(in_channels=4, out_channels=3, kernel_size=1, bias=False),
    dict(in_channels=1, out_channels=2, kernel_size=5, stride=3, padding=2),
    dict(in_channels=2, out_channels=3, kernel_size=(3, 5), padding="same"),
    dict(in_channels=2, out_channels=3, kernel_size=3, padding="valid"),
], ids=["3x3pad1", "3x2stride2x1", "1x1nobias", "5x5stride3", "3x5same", "3x3valid"])
def test_conv2d_layer_matches_torch(backend, dtype, rng, args):
    layer = nn.Conv2d(**args).to_dtype(dtype)
    x = rng.standard_normal((3, args["in_channels"], 9, 7)).astype(dtype)
    (y, grad_in), (ty, tgrad), twin = run_both(layer, x, rng)
    scale = math.sqrt(layer.weight.data[0].size)
    assert y.dtype == dtype
    assert_close(y, ty, dtype, scale)
    assert_close(grad_in, tgrad, dtype, scale)
    grads = torch_parameter_grads(twin)
    assert_close(layer.weight.grad, grads["weight"], dtype, 30)
    if layer.bias is not None:
        assert_close(layer.bias.grad, grads["bias"], dtype, 30)


@pytest.mark.parametrize("make", [
    lambda: nn.Conv2d(3, 4, 3, padding=1), lambda: nn.MaxPool2d(3, stride=2, padding=1),
    lambda: nn.AvgPool2d(2),
    lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(0),
                          nn.Linear(36, 2)),
], ids=["conv", "maxpool", "avgpool", "cnn"])
def test_unbatched_input_matches_torch(backend, dtype, rng, make):
    """An unbatched (C, H, W) input, as PyTorch's Conv2d and pooling take it."""
    layer = make().to_dtype(dtype)
    x = rng.standard_normal((3, 8, 8)).astype(dtype)
    (y, grad_in), (ty, tgrad), twin = run_both(layer, x, rng)
    assert y.shape == ty.shape and grad_in.shape == x.shape
    assert_close(y, ty, dtype, 10)
    assert_close(grad_in, tgrad, dtype, 10)
    for name, grad in torch_parameter_grads(twin).items():
        assert_close(dict(layer.named_parameters())[name].grad, grad, dtype, 30)


def test_conv2d_gradients_accumulate_until_zero_grad(backend, rng):
    layer = nn.Conv2d(2, 3, 3, padding=1).double()
    x = rng.standard_normal((2, 2, 5, 5))
    g = rng.standard_normal((2, 3, 5, 5))
    layer.forward(x)
    layer.backward(g)
    once = layer.weight.grad.copy(), layer.bias.grad.copy()
    layer.forward(x)
    layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad, 2 * once[0], rtol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, 2 * once[1], rtol=1e-12)
    layer.zero_grad()
    assert not layer.weight.grad.any() and not layer.bias.grad.any()


@pytest.mark.parametrize("layer", [
    lambda: nn.MaxPool2d(3, stride=2, padding=1),
    lambda: nn.MaxPool2d((2, 3), stride=(1, 2)),
    lambda: nn.MaxPool2d(2),
    lambda: nn.AvgPool2d(3, stride=2, padding=1),
    lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
    lambda: nn.AvgPool2d((2, 3), stride=1, padding=(1, 0)),
], ids=["max3s2p1", "max2x3", "max2", "avg3s2p1", "avg3s2p1_excl", "avg2x3"])
def test_pooling_layers_match_torch(backend, dtype, rng, layer):
    layer = layer()
    x = rng.standard_normal((2, 3, 9, 8)).astype(dtype)
    (y, grad_in), (ty, tgrad), _ = run_both(layer, x, rng)
    assert y.dtype == dtype
    assert_close(y, ty, dtype)
    assert_close(grad_in, tgrad, dtype)


@pytest.mark.parametrize("make", [
    lambda: nn.Conv2d(2, 3, 3, padding=1),
    lambda: nn.Conv2d(2, 2, (2, 3), stride=(2, 1), padding=(0, 1)),
    lambda: nn.MaxPool2d(3, stride=2, padding=1),
    lambda: nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=False),
    lambda: nn.AvgPool2d(3, stride=2, padding=1),
], ids=["conv3x3", "conv2x3", "maxpool", "avgpool_excl", "avgpool"])
def test_gradcheck_float64(backend, make):
    fastnn.manual_seed(3)
    layer = make()
    x = np.random.default_rng(1).standard_normal((2, 2, 5, 4))
    assert gradcheck(layer, x)


def test_conv2d_init_follows_pytorch():
    fastnn.manual_seed(0)
    layer = nn.Conv2d(16, 32, 3)
    bound = 1 / math.sqrt(16 * 9)
    assert layer.weight.data.shape == (32, 16, 3, 3) and layer.bias.data.shape == (32,)
    assert layer.weight.data.dtype == np.float32
    for p in (layer.weight.data, layer.bias.data):
        assert np.abs(p).max() <= bound
    # a uniform's standard deviation is bound / sqrt(3)
    assert abs(layer.weight.data.std() - bound / math.sqrt(3)) < 0.05 * bound
    fastnn.manual_seed(0)
    np.testing.assert_array_equal(nn.Conv2d(16, 32, 3).weight.data, layer.weight.data)


def test_layers_inside_sequential_reuse_buffers_without_aliasing(backend, rng):
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(4, 4, 3), nn.AvgPool2d(2), nn.Flatten(),
                          nn.Linear(4, 3))
    twin = conv_twin(model).double()
    model.double()
    outputs = []
    for _ in range(2):
        x = rng.standard_normal((4, 1, 10, 10))
        tx = torch.from_numpy(x.copy()).requires_grad_(True)
        ty = twin(tx)
        g = rng.standard_normal(tuple(ty.shape))
        ty.backward(torch.from_numpy(g))
        y = model.forward(x)
        grad_in = model.backward(g)
        assert_close(y, ty.detach().numpy(), np.float64, 10)
        assert_close(grad_in, tx.grad.numpy(), np.float64, 10)
        outputs.append((y, y.copy(), grad_in, grad_in.copy()))
    for y, y_copy, gi, gi_copy in outputs:       # returned arrays are the caller's
        np.testing.assert_array_equal(y, y_copy)
        np.testing.assert_array_equal(gi, gi_copy)
    grads = torch_parameter_grads(twin)
    assert_close(model[0].weight.grad, grads["0.weight"], np.float64, 100)
    assert_close(model[4].weight.grad, grads["4.weight"], np.float64, 100)


def test_repr_and_state_dict_names():
    layer = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
    assert repr(layer) == ("Conv2d(3, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), "
                           "bias=False)")
    assert list(layer.state_dict()) == ["weight"]
    assert repr(nn.MaxPool2d(3, 2, 1)) == \
        "MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)"
    assert nn.AvgPool2d(2).stride == 2  # PyTorch keeps the arguments as given
    assert list(nn.MaxPool2d(2).parameters()) == []


@pytest.mark.parametrize("make, x, match", [
    (lambda: nn.Conv2d(3, 4, 3), np.zeros((2, 3, 5)),
     r"Conv2d\(3, 4.*expected input of shape \(N, 3, H, W\) or \(3, H, W\), got \(2, 3, 5\)"),
    (lambda: nn.Conv2d(3, 4, 3), np.zeros((2, 2, 5, 5), np.float32),
     r"expected input of shape \(N, 3, H, W\)"),
    (lambda: nn.Conv2d(3, 4, 3), np.zeros((2, 3, 5, 5)), r"dtype float64 does not match"),
    (lambda: nn.Conv2d(3, 4, 5, padding=1), np.zeros((1, 3, 2, 9), np.float32),
     r"kernel size \(5, 5\) is larger than the padded input \(4, 11\)"),
    (lambda: nn.MaxPool2d(3), np.zeros((3, 5), np.float32),
     r"MaxPool2d.*expected input of shape \(N, C, H, W\) or \(C, H, W\)"),
    (lambda: nn.AvgPool2d(4), np.zeros((1, 1, 3, 8), np.float32),
     r"AvgPool2d.*larger than the padded input"),
    (lambda: nn.MaxPool2d(2), np.zeros((1, 1, 4, 4), np.int32), r"float32 or float64"),
])
def test_bad_inputs_raise_clear_errors(make, x, match):
    layer = make()
    before = {k: v.copy() for k, v in layer.state_dict().items()}
    with pytest.raises((ValueError, TypeError), match=match):
        layer.forward(x)
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("make, match", [
    (lambda: nn.Conv2d(0, 4, 3), r"Conv2d: expected in_channels to be a positive int"),
    (lambda: nn.Conv2d(3, 4, 0), r"Conv2d: expected kernel_size to be an int >= 1"),
    (lambda: nn.Conv2d(3, 4, (3, 3, 3)), r"kernel_size"),
    (lambda: nn.Conv2d(3, 4, 3, stride=0), r"stride"),
    (lambda: nn.Conv2d(3, 4, 3, padding=-1), r"padding to be an int >= 0"),
    (lambda: nn.Conv2d(3, 4, 3, stride=2, padding="same"),
     r"padding='same' is not supported for strided convolutions"),
    (lambda: nn.Conv2d(3, 4, 3, padding="full"), r"invalid padding string 'full'"),
    (lambda: nn.MaxPool2d(3, padding=2), r"MaxPool2d: padding \(2, 2\) must be at most half"),
    (lambda: nn.AvgPool2d(2, stride=1.5), r"AvgPool2d: expected stride"),
])
def test_bad_arguments_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("conv, lazy", [(nn.Conv2d, nn.LazyConv2d), (nn.Conv1d, nn.LazyConv1d)])
def test_a_bool_is_the_bias_by_position_only(conv, lazy):
    # DESIGN.md's Conv2d(in, out, k, stride, padding, bias): a bool in sixth place (fifth
    # for the lazy layers, which have no in_channels) is the bias
    assert conv(3, 8, 3, 1, 1, False).bias is None
    assert conv(3, 8, 3, 1, 1, True).bias is not None and conv(3, 8, 3, 1, 1, True).dilation \
        == conv(3, 8, 3).dilation
    layer = lazy(8, 3, 1, 1, False)
    layer(np.zeros((1, 2) + (5,) * len(layer.kernel_size), np.float32))
    assert layer.bias is None
    # by keyword dilation=<bool> is no bias: an error (PyTorch takes it as dilation 1 or 0;
    # 0 fails at its forward), and a bias given twice one too
    for value in (False, True):
        with pytest.raises(TypeError, match="expected dilation to be an int"):
            conv(3, 8, 3, dilation=value)
        with pytest.raises(TypeError, match="expected dilation to be an int"):
            lazy(8, 3, dilation=value)
    with pytest.raises(TypeError, match="got the bias twice"):
        conv(3, 8, 3, 1, 1, False, bias=True)
    with pytest.raises(TypeError, match="got the bias twice"):
        conv(3, 8, 3, 1, 1, False, 1, True)
    # the signature shows PyTorch's names
    assert list(inspect.signature(conv).parameters)[:8] == [
        "in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
        "groups", "bias"]


BEYOND_INT64 = 2 ** 70

@pytest.mark.parametrize("make,layer,arg", [
    (lambda: nn.Conv1d(1, 1, 3, stride=BEYOND_INT64), "Conv1d", "stride"),
    (lambda: nn.Conv2d(1, 1, 3, padding=(0, BEYOND_INT64)), "Conv2d", "padding"),
    (lambda: nn.Conv3d(1, 1, 3, dilation=BEYOND_INT64), "Conv3d", "dilation"),
    (lambda: nn.ConvTranspose2d(1, 1, BEYOND_INT64), "ConvTranspose2d", "kernel_size"),
    (lambda: nn.ConvTranspose3d(1, 1, 3, padding=BEYOND_INT64), "ConvTranspose3d", "padding"),
    (lambda: nn.MaxPool2d(2, BEYOND_INT64), "MaxPool2d", "stride"),
    (lambda: nn.MaxPool2d(2, 2, BEYOND_INT64), "MaxPool2d", "padding"),
    (lambda: nn.AvgPool1d(2, BEYOND_INT64), "AvgPool1d", "stride"),
    (lambda: nn.AvgPool3d(2, BEYOND_INT64), "AvgPool3d", "stride"),
    (lambda: nn.LPPool2d(2, BEYOND_INT64), "LPPool2d", "kernel_size"),
    (lambda: nn.MaxUnpool2d(2, BEYOND_INT64), "MaxUnpool2d", "stride"),
    (lambda: nn.FractionalMaxPool2d(2, output_size=BEYOND_INT64), "FractionalMaxPool2d",
     "output_size"),
    (lambda: nn.AdaptiveAvgPool2d((None, BEYOND_INT64)), "AdaptiveAvgPool2d", "output_size"),
    (lambda: nn.AdaptiveMaxPool3d(BEYOND_INT64), "AdaptiveMaxPool3d", "output_size"),
    (lambda: nn.Unfold(2, stride=BEYOND_INT64), "Unfold", "stride"),
    (lambda: nn.Fold(BEYOND_INT64, 2), "Fold", "output_size"),
    (lambda: nn.ZeroPad2d(BEYOND_INT64), "ZeroPad2d", "padding"),
    (lambda: nn.ReflectionPad1d((0, BEYOND_INT64)), "ReflectionPad1d", "padding"),
    (lambda: nn.Upsample(size=(2, BEYOND_INT64)), "Upsample", "size"),
])
def test_sizes_beyond_int64_are_refused_at_construction(make, layer, arg):
    """They were taken, and the forward raised OverflowError, numpy's 'Maximum allowed
    dimension exceeded' or a numba TypingError (Unfold's stride ran); PyTorch's forward
    raises TypeError or ValueError, both of which catch the error."""
    with pytest.raises(ValueError, match=f"{layer}: expected {arg} to be ints within "
                                         f"int64") as info:
        make()
    assert isinstance(info.value, TypeError)


def test_functional_sizes_beyond_int64_are_refused_before_the_kernels():
    x = np.ones((1, 1, 8, 8), np.float32)
    for call, where, arg in (
            (lambda: nn.functional.pad(x, (BEYOND_INT64, 0)), "pad", "pad"),
            (lambda: nn.functional.conv_transpose2d(x, np.ones((1, 1, 3, 3), np.float32),
                                                    stride=BEYOND_INT64),
             "conv_transpose2d", "stride")):
        with pytest.raises(TypeError, match=f"{where}: expected {arg} to be ints within "
                                            f"int64"):
            call()
