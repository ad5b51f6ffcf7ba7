"""Against PyTorch, on every backend in float32 and float64: the public names that no
test compared with their torch counterpart (the coverage audit of 6 Dec 2026): the
functional pooling forms with indices, unpooling, fractional pooling with given
samples, local_response_norm, native_channel_shuffle, the deprecated upsample_*
functions, the in-place activations, multi_head_attention_forward, CircularPad3d and
LazyBatchNorm3d (forward and backward)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from fastnn import nn
from fastnn.nn import functional as F

from conftest import assert_close
from nn_torch_helpers import TORCH_DTYPES

torch.set_num_threads(2)


def _torch_args(values):
    """values with NumPy arrays as torch tensors (copies)."""
    return [torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) else v
            for v in values]


def _assert_outputs(ours, theirs, dtype):
    """ours (an array or tuple of arrays) equals theirs (a tensor or tuple of tensors):
    values to the dtype's tolerance, integer indices exactly."""
    ours = ours if isinstance(ours, tuple) else (ours,)
    theirs = theirs if isinstance(theirs, tuple) else (theirs,)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        b = b.detach().numpy()
        assert np.shape(a) == b.shape
        if b.dtype.kind == "i":
            np.testing.assert_array_equal(a, b)
        else:
            assert np.asarray(a).dtype == b.dtype
            assert_close(a, b, dtype)


# (name, input shape, positional arguments after the input, keywords)
FUNCTIONAL = [
    ("max_pool1d_with_indices", (2, 3, 9), (3,), dict(stride=2, padding=1, dilation=2,
                                                      ceil_mode=True, return_indices=True)),
    ("max_pool1d_with_indices", (3, 8), (2,), {}),
    ("max_pool2d_with_indices", (2, 3, 7, 6), ((2, 3),), dict(stride=(2, 1), padding=1,
                                                              ceil_mode=True,
                                                              return_indices=True)),
    ("max_pool2d_with_indices", (2, 3, 7, 6), (3,), dict(dilation=2, return_indices=True)),
    ("max_pool3d_with_indices", (1, 2, 5, 4, 5), (2,), dict(ceil_mode=True,
                                                            return_indices=True)),
    ("adaptive_max_pool1d", (2, 3, 7), (3,), dict(return_indices=True)),
    ("adaptive_max_pool1d", (3, 7), (4,), {}),
    ("adaptive_max_pool1d_with_indices", (2, 3, 7), (2,), dict(return_indices=True)),
    ("adaptive_max_pool2d_with_indices", (2, 3, 7, 5), ((3, None),),
     dict(return_indices=True)),
    ("adaptive_max_pool3d_with_indices", (1, 2, 5, 4, 3), (2,), dict(return_indices=True)),
    ("lp_pool1d", (2, 3, 8), (3.0, 3), dict(stride=2, ceil_mode=True)),
    ("lp_pool3d", (1, 2, 4, 5, 4), (2.0, 2), {}),
    ("local_response_norm", (2, 5, 4), (3,), dict(alpha=0.1, beta=0.75, k=2.0)),
    ("local_response_norm", (2, 5, 3, 4), (4,), dict(alpha=0.1, beta=0.5)),
    ("local_response_norm", (1, 4, 2, 3, 2), (2,), {}),
    ("native_channel_shuffle", (2, 6, 3, 2), (3,), {}),
    ("upsample_bilinear", (2, 3, 4, 5), (), dict(scale_factor=2)),
    ("upsample_bilinear", (2, 3, 4, 5), (), dict(size=(5, 7))),
    ("upsample_nearest", (2, 3, 4, 5), (), dict(scale_factor=1.5)),
    ("upsample_nearest", (2, 3, 4), (), dict(size=7)),
]


@pytest.mark.filterwarnings("ignore:`nn.functional.upsample")
def test_functional_forms_match_torch(backend, dtype, rng):
    for name, shape, args, kwargs in FUNCTIONAL:   # (one test: a few ms each)
        x = rng.standard_normal(shape).astype(dtype)
        if name.startswith("lp_pool"):
            x = np.abs(x) + 0.1
        _assert_outputs(getattr(F, name)(x.copy(), *args, **kwargs),
                        getattr(TF, name)(torch.from_numpy(x), *args, **kwargs), dtype)


IN_PLACE = [("relu_", ()), ("selu_", ()), ("celu_", (0.5,)), ("elu_", (0.3,)),
            ("leaky_relu_", (0.2,)), ("hardtanh_", (-0.5, 0.7)), ("threshold_", (0.1, 2.0)),
            ("rrelu_", (0.1, 0.3, False))]


def test_in_place_activations_write_their_input_as_torch(backend, dtype, rng):
    for name, args in IN_PLACE:
        x = rng.standard_normal((3, 5)).astype(dtype)
        theirs = torch.from_numpy(x.copy())
        out = getattr(F, name)(x, *args)
        getattr(TF, name)(theirs, *args)
        assert out is x, name
        assert_close(x, theirs.numpy(), dtype, err_msg=name)


@pytest.mark.parametrize("kernel,stride,padding,size,output_size", [
    (3, 2, 1, (7,), None), (3, 2, 1, (8,), (8,)), (2, None, 0, (8,), None),
    (3, 2, 1, (7, 5), None), (3, 2, 1, (8, 6), (8, 6)), (2, 1, 0, (5, 6), None),
    (2, 2, 0, (8, 6), (1, 1, 8, 6)), (2, None, 0, (4, 6, 4), None)])
def test_functional_max_unpool_matches_torch(dtype, rng, kernel, stride, padding,
                                             size, output_size):
    """The indices of torch's pool over an input of size; the flat indices are positions
    in a plane of that size, so the unpooled output has it (the default size, or
    output_size where the pool left cells out)."""
    dims = len(size)
    x = rng.standard_normal((2, 3) + size).astype(dtype)
    pool, unpool = getattr(TF, f"max_pool{dims}d"), f"max_unpool{dims}d"
    y, indices = pool(torch.from_numpy(x), kernel, stride, padding, return_indices=True)
    kwargs = dict(stride=stride, padding=padding, output_size=output_size)
    ours = getattr(F, unpool)(y.numpy().copy(), indices.numpy().copy(), kernel, **kwargs)
    _assert_outputs(ours, getattr(TF, unpool)(y, indices, kernel, **kwargs), dtype)


@pytest.mark.parametrize("dims,kwargs", [
    (2, dict(output_size=(3, 4))), (2, dict(output_ratio=(0.5, 0.5), return_indices=True)),
    (2, dict(output_size=5, return_indices=True)),
    (3, dict(output_size=(2, 3, 2), return_indices=True)), (3, dict(output_ratio=0.6))])
def test_functional_fractional_max_pool_with_samples_matches_torch(dtype, rng, dims, kwargs):
    x = rng.standard_normal((2, 3) + (7, 8, 6)[:dims]).astype(dtype)
    samples = rng.random((2, 3, dims)).astype(dtype)
    name = f"fractional_max_pool{dims}d"
    ours = getattr(F, name)(x.copy(), 2, _random_samples=samples.copy(), **kwargs)
    theirs = getattr(TF, name)(torch.from_numpy(x), 2,
                               _random_samples=torch.from_numpy(samples), **kwargs)
    _assert_outputs(ours, theirs, dtype)
    if kwargs.get("return_indices"):
        _assert_outputs(getattr(F, name + "_with_indices")(
            x.copy(), 2, _random_samples=samples.copy(), **kwargs), theirs, dtype)


@pytest.mark.parametrize("config", [
    dict(), dict(bias_kv=True, add_zero_attn=True), dict(key_padding_mask=True),
    dict(attn_mask="bool", average_attn_weights=False), dict(attn_mask="float"),
    dict(separate=True, need_weights=False), dict(unbatched=True, attn_mask="bool")],
    ids=["plain", "bias_kv-zero_attn", "key_padding", "bool_mask-per_head", "float_mask",
         "separate_proj", "unbatched"])
def test_multi_head_attention_forward_matches_torch(backend, dtype, rng, config):
    E, H, L, S, N = 4, 2, 3, 5, 2
    rand = lambda *shape: rng.standard_normal(shape).astype(dtype)  # noqa: E731
    batch = () if config.get("unbatched") else (N,)
    kdim = 3 if config.get("separate") else E
    q, k, v = rand(L, *batch, E), rand(S, *batch, kdim), rand(S, *batch, kdim)
    bias_kv = config.get("bias_kv")
    args = [q, k, v, E, H, None if config.get("separate") else rand(3 * E, E), rand(3 * E),
            rand(1, 1, E) if bias_kv else None, rand(1, 1, E) if bias_kv else None,
            bool(config.get("add_zero_attn")), 0.0, rand(E, E), rand(E)]
    kwargs = dict(training=False, need_weights=config.get("need_weights", True),
                  average_attn_weights=config.get("average_attn_weights", True))
    if config.get("key_padding_mask"):
        kwargs["key_padding_mask"] = np.array([[False] * 4 + [True], [False, True] * 2 + [False]])
    if config.get("attn_mask") == "bool":
        kwargs["attn_mask"] = np.triu(np.ones((L, S), bool), 2)
    elif config.get("attn_mask") == "float":
        kwargs["attn_mask"] = rand(L, S)
    if config.get("separate"):
        kwargs.update(use_separate_proj_weight=True, q_proj_weight=rand(E, E),
                      k_proj_weight=rand(E, kdim), v_proj_weight=rand(E, kdim))
    ours = F.multi_head_attention_forward(*args, **kwargs)
    theirs = TF.multi_head_attention_forward(
        *_torch_args(args), **dict(zip(kwargs, _torch_args(kwargs.values()))))
    assert (ours[1] is None) == (theirs[1] is None)
    _assert_outputs(ours[0] if ours[1] is None else ours,
                    theirs[0] if theirs[1] is None else theirs, dtype)


def _forward_backward_as_torch(layer, twin, x, rng, dtype):
    """One training forward and backward through both: outputs, input gradients,
    parameter gradients and buffers agree."""
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    y, yt = layer(x.copy()), twin(xt)
    assert_close(y, yt.detach().numpy(), dtype)
    g = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(torch.from_numpy(g.copy()))
    assert_close(layer.backward(g), xt.grad.numpy(), dtype)
    theirs = dict(twin.named_parameters())
    for name, p in layer.named_parameters():
        assert_close(p.grad, theirs[name].grad.numpy(), dtype)
    buffers = dict(twin.named_buffers())
    for name, b in layer.named_buffers():
        assert_close(b, buffers[name].numpy(), dtype)


@pytest.mark.parametrize("padding", [1, (1, 0, 2, 1, 0, 2)])
def test_circular_pad3d_matches_torch(dtype, rng, padding):
    x = rng.standard_normal((2, 2, 3, 4, 3)).astype(dtype)
    _forward_backward_as_torch(nn.CircularPad3d(padding), torch.nn.CircularPad3d(padding),
                               x, rng, dtype)


def test_lazy_batchnorm3d_matches_torch(dtype, rng):
    """(BatchNorm3d, which it becomes, is tested on every backend in
    test_nn_more_layers.py; momentum None: the cumulative average over both batches)"""
    layer = nn.LazyBatchNorm3d(momentum=None, dtype=dtype)
    twin = torch.nn.LazyBatchNorm3d(momentum=None, dtype=TORCH_DTYPES[np.dtype(dtype)])
    for _ in range(2):
        x = rng.standard_normal((2, 3, 2, 3, 2)).astype(dtype) * 2 + 1
        _forward_backward_as_torch(layer, twin, x, rng, dtype)
    assert type(layer) is nn.BatchNorm3d
