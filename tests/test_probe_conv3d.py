"""Probe of the less common conv and pooling layers against PyTorch: cases the earlier
conv/pool tests missed."""
import numpy as np
import pytest
import torch

from fastnn import nn
import fastnn.nn.functional as F

torch.set_num_threads(1)


@pytest.mark.parametrize("p", [float("inf"), -float("inf")])
def test_lp_pool3d_infinite_norm_takes_an_input_smaller_than_the_kernel(p):
    # PyTorch's +-inf LPPool3d is a max_pool3d, which (ceil_mode) takes a depth below the
    # kernel's; avg_pool3d's input >= kernel check does not apply
    x = np.random.default_rng(0).standard_normal((1, 3, 1, 8, 4))
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = torch.nn.LPPool3d(p, (3, 3, 4), (3, 2, 2), ceil_mode=True)(tx)
    layer = nn.LPPool3d(p, (3, 3, 4), (3, 2, 2), ceil_mode=True)
    y = layer(x)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(F.lp_pool3d(x, p, (3, 3, 4), (3, 2, 2), ceil_mode=True),
                                  ty.detach().numpy())
    g = np.random.default_rng(1).standard_normal(y.shape)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(layer.backward(g), tx.grad.numpy())
    with pytest.raises(ValueError):  # a finite p keeps PyTorch's avg_pool3d refusal
        nn.LPPool3d(2, (3, 3, 4), (3, 2, 2), ceil_mode=True)(x)


@pytest.mark.parametrize("name, weight_shape, groups", [
    ("conv1d", (0, 4, 3), 1), ("conv2d", (0, 2, 3, 3), 2), ("conv3d", (0, 2, 3, 3, 3), 2),
    ("conv3d", (1, 4, 3, 3, 3), 2), ("conv2d", (6, 2, 0, 3), 2), ("conv3d", (6, 2, 0, 3, 3), 2),
    ("conv_transpose2d", (4, 3, 0, 3), 2), ("conv_transpose3d", (4, 3, 3, 0, 3), 1)])
def test_functional_conv_refuses_too_few_filters_and_empty_kernels(name, weight_shape, groups):
    # PyTorch: weight.size(0) >= groups and every kernel size > 0, RuntimeError; fastnn
    # returned an empty or made-up output (conv3d: NumPy's reshape error)
    dims = len(weight_shape) - 2
    x = np.random.default_rng(0).standard_normal((2, 4) + (6,) * dims)
    w = np.random.default_rng(1).standard_normal(weight_shape)
    with pytest.raises(RuntimeError):
        getattr(torch.nn.functional, name)(torch.from_numpy(x), torch.from_numpy(w),
                                           groups=groups)
    with pytest.raises(RuntimeError):
        getattr(F, name)(x, w, groups=groups)


@pytest.mark.parametrize("name, dims", [("max_pool1d", 1), ("avg_pool1d", 1),
                                        ("max_pool2d", 2), ("avg_pool2d", 2)])
@pytest.mark.parametrize("arg", ["kernel_size", "stride", "padding"])
def test_functional_pool_wrong_length_tuple_is_runtime_error(name, dims, arg):
    x = np.random.default_rng(0).standard_normal((2, 3) + (8,) * dims)
    kwargs = {"kernel_size": 2, arg: (1,) * (dims + 1)}
    with pytest.raises(RuntimeError):
        getattr(torch.nn.functional, name)(torch.from_numpy(x), **kwargs)
    with pytest.raises(RuntimeError):
        getattr(F, name)(x, **kwargs)


@pytest.mark.parametrize("call", [
    lambda x: F.max_pool3d(x, 2.0), lambda x: F.max_pool3d(x, 2, stride=2.0),
    lambda x: F.max_pool3d(x, 2, padding=1.0), lambda x: F.max_pool3d(x, 2, dilation=1.0),
    lambda x: F.avg_pool3d(x, 2.0), lambda x: F.avg_pool3d(x, 2, padding=1.0),
    lambda x: F.lp_pool3d(x, 2, 2.0), lambda x: F.lp_pool2d(x[0], 2, 2, stride=2.0),
    lambda x: F.lp_pool1d(x[0, 0], 2, 2.0)])
def test_functional_pool_float_size_is_type_error(call):
    # PyTorch's TypeError (the layer's TypeValueError was turned into a RuntimeError)
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6, 6))
    with pytest.raises(TypeError):
        call(x)


@pytest.mark.parametrize("name, args, kwargs", [
    ("MaxPool1d", (3,), dict(stride=2, padding=1, dilation=2)), ("MaxPool1d", ([3],), {}),
    ("MaxPool2d", (3,), {}), ("MaxPool2d", ((3, 2),), dict(padding=1, dilation=(1, 2))),
    ("AvgPool1d", (3,), dict(stride=2, padding=1)), ("AvgPool1d", ([3],), dict(stride=[2])),
    ("AvgPool2d", (3,), dict(divisor_override=2)),
    ("AvgPool2d", ([3, 2],), dict(stride=[1, 1], padding=(1, 0))),
    ("LPPool1d", (2, 3), {}), ("LPPool2d", (2, (3, 2)), dict(stride=1))])
def test_pool_attributes_keep_the_arguments_as_pytorch(name, args, kwargs):
    # PyTorch's MaxPool1d/2d and AvgPool2d keep kernel_size, stride, padding, dilation as
    # given (AvgPool1d as 1-tuples); fastnn held them as n-tuples (MaxPool2d(3).kernel_size
    # was (3, 3), not 3)
    ours, theirs = getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    for attr in ("kernel_size", "stride", "padding", "dilation"):
        if hasattr(theirs, attr):
            assert getattr(ours, attr) == getattr(theirs, attr), attr
            assert type(getattr(ours, attr)) is type(getattr(theirs, attr)), attr
    assert repr(ours) == repr(theirs)
    x = np.random.default_rng(0).standard_normal((2, 3) + (9,) * int(name[-2]))
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = theirs(tx)
    y = ours(x)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    ty.backward(torch.ones_like(ty))
    np.testing.assert_allclose(ours.backward(np.ones_like(y)), tx.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("output_size", ["float", "float_full", "numpy"])
def test_conv_transpose_output_size_of_floats_is_type_error(dims, output_size):
    # PyTorch: a float output size makes a float output_padding, a TypeError; fastnn
    # took 10.0 as 10 (an array of ints stays accepted)
    x = np.random.default_rng(0).standard_normal((2, 2) + (4,) * dims).astype(np.float32)
    size = {"float": (10.0,) * dims, "float_full": (2.0, 3.0) + (10.0,) * dims,
            "numpy": np.full(dims, 10)}[output_size]
    layer = getattr(nn, f"ConvTranspose{dims}d")(2, 3, 3, stride=2)
    twin = getattr(torch.nn, f"ConvTranspose{dims}d")(2, 3, 3, stride=2)
    if output_size == "numpy":
        assert layer(x, output_size=size).shape == tuple(
            twin(torch.from_numpy(x), output_size=list(size)).shape)
        return
    with pytest.raises(TypeError):
        twin(torch.from_numpy(x), output_size=size)
    with pytest.raises(TypeError):
        layer(x, output_size=size)


def _input_error_cases():
    x2, x3 = np.zeros((2, 2, 2, 5), np.float32), np.zeros((2, 2, 2, 5, 5), np.float32)
    x1 = np.zeros((2, 2, 2), np.float32)
    indices = np.full((2, 2, 1, 2), 50, np.int64)
    return [
        ("Conv1d", (3, 4, 3), {}, (x1,)), ("Conv1d", (2, 4, 3), {}, (x1,)),
        ("Conv2d", (3, 4, 3), {}, (x2,)), ("Conv2d", (2, 4, 3), {}, (x2,)),
        ("Conv2d", (2, 4, 3), dict(groups=2, dilation=2), (x2,)),
        ("Conv2d", (2, 4, 3), dict(padding=2, padding_mode="reflect"), (x2,)),
        ("Conv2d", (2, 4, 3), dict(padding=3, padding_mode="circular"), (x2,)),
        ("Conv3d", (2, 4, 3), {}, (x3,)), ("Conv3d", (3, 4, 3), {}, (x3,)),
        ("ConvTranspose1d", (3, 4, 3), {}, (x1,)), ("ConvTranspose2d", (2, 4, 3),
                                                    dict(padding=3), (x2,)),
        ("ConvTranspose3d", (2, 4, 3), dict(padding=(3, 1, 1)), (x3,)),
        ("ConvTranspose2d", (2, 4, 3), dict(stride=2, output_padding=2), (x2,)),
        ("MaxPool1d", (3,), {}, (x1,)), ("MaxPool2d", (3,), {}, (x2,)),
        ("MaxPool3d", (3,), {}, (x3,)), ("AvgPool2d", (3,), {}, (x2,)),
        ("AvgPool3d", (3,), {}, (x3,)), ("LPPool2d", (2, 3), {}, (x2,)),
        ("MaxPool3d", (2,), {}, (x2[0, 0],)),
        ("MaxUnpool2d", (2,), {}, (x2[:, :, :1, :2], indices)),
    ]


@pytest.mark.parametrize("case", _input_error_cases(), ids=lambda c: c[0])
def test_input_errors_are_also_pytorchs_runtime_error(case):
    # a layer's refusal of its input (channels, rank, a kernel larger than the padded
    # input, an output of size < 1, a reflection/circular border too wide, an unpool
    # index out of range) is a ValueError (fastnn's) and PyTorch's RuntimeError
    name, args, kwargs, inputs = case
    with pytest.raises(RuntimeError):
        getattr(torch.nn, name)(*args, **kwargs)(*map(torch.from_numpy, inputs))
    layer = getattr(nn, name)(*args, **kwargs)
    with pytest.raises(RuntimeError) as info:
        layer(*inputs)
    assert isinstance(info.value, ValueError)
