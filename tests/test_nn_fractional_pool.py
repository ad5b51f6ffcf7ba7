"""FractionalMaxPool2d and FractionalMaxPool3d against PyTorch: with the same
_random_samples the outputs and indices are PyTorch's exactly (ties, NaN and -inf
included), input gradients agree, float32 and float64, batched and unbatched,
output_size and output_ratio; samples drawn from fastnn's generator (reproducible with
manual_seed, PyTorch's result when handed to it); indices into MaxUnpool2d/3d; reprs,
state dicts, a Sequential; the errors PyTorch raises as ValueError / TypeError."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn
from fastnn.nn.fractional_pool import (FractionalMaxPool2d, FractionalMaxPool3d,
                                       fractional_starts)

from conftest import assert_close
from nn_torch_helpers import assert_trains_as_twin

torch.set_num_threads(1)

OURS = {2: FractionalMaxPool2d, 3: FractionalMaxPool3d}
THEIRS = {2: torch.nn.FractionalMaxPool2d, 3: torch.nn.FractionalMaxPool3d}
FASTNN = SimpleNamespace(FractionalMaxPool2d=FractionalMaxPool2d,
                         FractionalMaxPool3d=FractionalMaxPool3d)  # torch.nn's stand-in


def _pair_of_layers(dims, args, kwargs, samples):
    """(fastnn layer, torch layer) of these arguments, both with these samples (or None)."""
    theirs = None if samples is None else torch.from_numpy(samples.copy())
    return (OURS[dims](*args, **kwargs, return_indices=True, _random_samples=samples),
            THEIRS[dims](*args, **kwargs, return_indices=True, _random_samples=theirs))


def _against(layer, twin, x, rng, dtype):
    """Forward (output and indices exactly) and backward (close) of both on x."""
    y, indices = layer(x)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty, t_indices = twin(tx)
    assert y.dtype == dtype and indices.dtype == np.int64
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(indices, t_indices.numpy())
    g = rng.standard_normal(y.shape).astype(dtype)
    ty.backward(torch.from_numpy(g))
    grad = layer.backward(g)
    assert grad.shape == x.shape and grad.dtype == dtype
    assert_close(grad, tx.grad.numpy(), dtype)
    return y, indices


CASES = {2: [((3,), dict(output_size=(5, 4))), (((2, 3),), dict(output_size=4)),
             ((2,), dict(output_ratio=0.5)), (((1, 3),), dict(output_ratio=(0.7, 0.4))),
             ((2,), dict(output_size=(8, 6)))],  # output + kernel - 1 = input: stride 1
         3: [((2,), dict(output_size=(4, 3, 3))), (((3, 1, 2),), dict(output_ratio=0.5)),
             ((1,), dict(output_size=(6, 1, 5))),
             (((2, 2, 3),), dict(output_ratio=(0.6, 0.3, 0.2)))]}
SHAPES = {2: (2, 3, 9, 7), 3: (2, 3, 7, 6, 8)}


@pytest.mark.parametrize("dims,case", [(d, i) for d in (2, 3) for i in range(len(CASES[d]))])
@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
def test_fractional_max_pool_matches_torch_with_given_samples(dtype, rng, dims, case,
                                                               unbatched):
    args, kwargs = CASES[dims][case]
    shape = SHAPES[dims][1:] if unbatched else SHAPES[dims]
    batch = 1 if unbatched else shape[0]
    for ties in (False, True):  # ties: the first maximum of a window, as PyTorch's
        x = (rng.integers(0, 3, shape) if ties else rng.standard_normal(shape)).astype(dtype)
        # more sample rows than the batch is allowed: the first rows serve
        samples = rng.random((batch + 1, 3, dims)).astype(dtype)
        layer, twin = _pair_of_layers(dims, args, kwargs, samples)
        y, indices = _against(layer, twin, x, rng, dtype)
        plain = OURS[dims](*args, **kwargs, _random_samples=samples)
        np.testing.assert_array_equal(plain(x), y)


@pytest.mark.parametrize("dims", [2, 3])
def test_extreme_samples_nan_and_minus_inf_as_torch(dims):
    """Samples 0, just under 1 and outside [0, 1) (PyTorch takes them); a NaN wins its window
    (the last NaN), an all -inf window gives its first cell, as PyTorch's."""
    rng = np.random.default_rng(1)
    shape = SHAPES[dims]
    x = rng.standard_normal(shape)
    x[rng.random(shape) < 0.15] = np.nan
    x[rng.random(shape) < 0.2] = -np.inf
    kwargs = dict(output_size=(4,) * dims)
    for fill in (0.0, np.nextafter(1.0, 0.0), -0.7, 2.5):  # (outside [0, 1): C casts)
        samples = np.full((2, 3, dims), fill)
        for data in (x, np.full(shape, -np.inf)):
            layer, twin = _pair_of_layers(dims, (2,), kwargs, samples)
            y, indices = layer(data)
            ty, t_indices = twin(torch.from_numpy(data))
            np.testing.assert_array_equal(indices, t_indices.numpy())
            np.testing.assert_array_equal(y, ty.numpy())



def test_window_starts_are_computed_in_the_inputs_dtype_as_torchs():
    """float32 samples step through float32 arithmetic (PyTorch's scalar_t): here one
    channel's starts differ from a float64 computation, and PyTorch's are the float32 ones."""
    width = np.random.default_rng(5).random(32).astype(np.float32)
    samples = np.stack([width, np.zeros_like(width)], axis=-1)[None]  # [0]: the width's
    assert (fractional_starts(width, 55, 54, 1)
            != fractional_starts(width.astype(np.float64), 55, 54, 1)).any()
    x = np.broadcast_to(np.arange(55, dtype=np.float32), (1, 32, 1, 55)).copy()
    layer, twin = _pair_of_layers(2, ((1, 1),), dict(output_size=(1, 54)), samples)
    indices = layer(x)[1]
    np.testing.assert_array_equal(indices, twin(torch.from_numpy(x))[1].numpy())
    np.testing.assert_array_equal(indices[0, :, 0], fractional_starts(width, 55, 54, 1))

@pytest.mark.parametrize("dims", [2, 3])
def test_drawn_samples_come_from_fastnns_generator(dims):
    rng = np.random.default_rng(2)
    shape = SHAPES[dims]
    layer = OURS[dims](2, output_ratio=0.5, return_indices=True)
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal(shape).astype(dtype)
        fastnn.manual_seed(7)
        y, indices = layer(x)
        samples = layer._last_samples
        assert samples.shape == (2, 3, dims) and samples.dtype == dtype
        assert samples.min() >= 0 and samples.max() < 1
        fastnn.manual_seed(7)
        np.testing.assert_array_equal(layer(x)[1], indices)  # reproducible
        layer(x)  # each call draws anew
        assert not np.array_equal(layer._last_samples, samples)
        twin = THEIRS[dims](2, output_ratio=0.5, return_indices=True,
                            _random_samples=torch.from_numpy(samples))
        ty, t_indices = twin(torch.from_numpy(x))
        np.testing.assert_array_equal(y, ty.numpy())
        np.testing.assert_array_equal(indices, t_indices.numpy())
        y = layer(x[0])[0]  # unbatched: one row of samples
        assert y.shape == tuple(ty.shape[1:]) and layer._last_samples.shape == (1, 3, dims)


def test_indices_feed_max_unpool_as_torchs(dtype, rng):
    cases = [(2, (2, 3, 9, 7), dict(output_size=(5, 4)), 2),
             (2, (3, 8, 8), dict(output_ratio=0.5), 2),
             (3, (2, 2, 7, 6, 5), dict(output_size=(3, 3, 2)), 2)]
    for dims, shape, kwargs, unpool_kernel in cases:
        x = rng.standard_normal(shape).astype(dtype)
        y, indices = OURS[dims](2, **kwargs, return_indices=True)(x)
        unpool = (nn.MaxUnpool2d if dims == 2 else nn.MaxUnpool3d)(unpool_kernel)
        twin = (torch.nn.MaxUnpool2d if dims == 2 else torch.nn.MaxUnpool3d)(unpool_kernel)
        z = unpool(y, indices, shape[-dims:])
        ty = torch.from_numpy(y.copy()).requires_grad_(True)
        tz = twin(ty, torch.from_numpy(indices), shape[-dims:])
        assert z.shape == shape
        np.testing.assert_array_equal(z, tz.detach().numpy())
        g = rng.standard_normal(z.shape).astype(dtype)
        tz.backward(torch.from_numpy(g))
        np.testing.assert_array_equal(unpool.backward(g), ty.grad.numpy())


def test_empty_outputs_and_batches_as_torch():
    x = np.random.default_rng(3).standard_normal((2, 3, 7, 6)).astype(np.float32)
    for layer, twin, data in (
            (FractionalMaxPool2d(3, output_size=(0, 2)),
             torch.nn.FractionalMaxPool2d(3, output_size=(0, 2)), x),
            (FractionalMaxPool2d(3, output_ratio=0.1),
             torch.nn.FractionalMaxPool2d(3, output_ratio=0.1), x),
            (FractionalMaxPool3d(2, output_size=(2, 1, 1)),
             torch.nn.FractionalMaxPool3d(2, output_size=(2, 1, 1)), np.zeros((0, 2, 4, 3, 3)))):
        y = layer(data)
        assert y.shape == tuple(twin(torch.from_numpy(data)).shape)
        grad = layer.backward(np.zeros_like(y))
        assert grad.shape == data.shape and not grad.any()


def test_reprs_state_dicts_and_attributes_as_torch():
    samples = np.random.default_rng(4).random((1, 2, 2)).astype(np.float32)
    for args, kwargs in (((2,), dict(output_size=3)), ((3,), dict(output_ratio=0.5)),
                         (((2, 1),), dict(output_size=(3, 4), _random_samples=samples))):
        theirs = dict(kwargs)
        if "_random_samples" in kwargs:
            theirs["_random_samples"] = torch.from_numpy(samples)
        layer, twin = FractionalMaxPool2d(*args, **kwargs), torch.nn.FractionalMaxPool2d(
            *args, **theirs)
        assert repr(layer) == repr(twin)
        assert list(layer.state_dict()) == list(twin.state_dict())
        for name in ("kernel_size", "output_size", "output_ratio", "return_indices"):
            assert getattr(layer, name) == getattr(twin, name), name
    assert repr(FractionalMaxPool3d(2, output_ratio=0.5)) == repr(
        torch.nn.FractionalMaxPool3d(2, output_ratio=0.5))
    assert FractionalMaxPool3d((1, 2, 3), output_size=2).output_size == (2, 2, 2)
    # a state dict of PyTorch's loads, and the loaded samples steer the windows
    twin = torch.nn.FractionalMaxPool3d(2, output_size=2, return_indices=True,
                                        _random_samples=torch.rand(1, 2, 3, dtype=torch.float64))
    layer = FractionalMaxPool3d(2, output_size=2, return_indices=True,
                                _random_samples=np.zeros((1, 2, 3)))
    layer.load_state_dict({k: v.numpy() for k, v in twin.state_dict().items()})
    x = np.random.default_rng(5).standard_normal((2, 6, 5, 4))
    np.testing.assert_array_equal(layer(x)[1], twin(torch.from_numpy(x))[1].numpy())
    layer.float()  # the samples follow the module's dtype
    assert layer._random_samples.dtype == np.float32 and layer(x.astype(np.float32))[0].dtype \
        == np.float32


def test_a_model_with_fractional_pooling_trains_as_torchs(rng):
    samples = rng.random((2, 4, 2))
    twin = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(),
        torch.nn.FractionalMaxPool2d(2, output_size=(4, 3),
                                     _random_samples=torch.from_numpy(samples)),
        torch.nn.Flatten(), torch.nn.Linear(48, 3)).double()
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(),
        FractionalMaxPool2d(2, output_size=(4, 3), _random_samples=samples),
        nn.Flatten(), nn.Linear(48, 3)).double()
    assert_trains_as_twin(model, twin, rng.standard_normal((2, 2, 7, 6)), rng)
    layer = model[2]
    layer(rng.standard_normal((2, 4, 7, 6)))
    assert layer.backward(np.ones((2, 4, 4, 3)), need_grad_in=False) is None


def _both_raise(error, match, ours, theirs):
    with pytest.raises(error, match=match):
        ours()
    with pytest.raises(Exception):
        theirs()


def test_bad_arguments_raise_as_torch():
    for dims in (2, 3):
        for kwargs, match in ((dict(), "either an output size"),
                              (dict(output_size=2, output_ratio=0.5), "only one of"),
                              (dict(output_ratio=1.0), "between 0 and 1"),
                              (dict(output_ratio=0), "between 0 and 1"),
                              (dict(output_ratio=(0.5,) * (dims - 1) + (1.5,)),
                               "between 0 and 1"),
                              (dict(output_ratio=-0.2), "between 0 and 1")):
            _both_raise(ValueError, match, lambda: OURS[dims](2, **kwargs),
                        lambda: THEIRS[dims](2, **kwargs))
    _both_raise(ValueError, "kernel_size", lambda: FractionalMaxPool3d(0, output_size=2),
                lambda: torch.nn.FractionalMaxPool3d(0, output_size=2))
    _both_raise(ValueError, "kernel_size", lambda: FractionalMaxPool3d((2, 0, 1), output_size=2),
                lambda: torch.nn.FractionalMaxPool3d((2, 0, 1), output_size=2))
    x = torch.zeros(1, 1, 8, 8)
    for build, match in ((lambda m: m.FractionalMaxPool2d((2, 3, 4), output_size=2), "kernel"),
                         (lambda m: m.FractionalMaxPool2d(2, output_size=(2, 3, 4)),
                          "output_size"),
                         (lambda m: m.FractionalMaxPool2d(2, output_ratio=(0.2, 0.3, 0.4)),
                          "output_ratio")):
        _both_raise(ValueError, match, lambda: build(FASTNN), lambda: build(torch.nn)(x))
    with pytest.raises(ValueError, match="output_size"):
        FractionalMaxPool2d(2, output_size=-1)
    with pytest.raises(TypeError, match="return_indices"):
        FractionalMaxPool2d(2, output_size=2, return_indices="yes")
    with pytest.raises(TypeError, match="output_ratio"):
        FractionalMaxPool2d(2, output_ratio="half")
    with pytest.raises(TypeError, match="_random_samples"):
        FractionalMaxPool2d(2, output_size=2, _random_samples=[[[0.5, 0.5]]])
    with pytest.raises(ValueError, match=r"\(N, C, 3\)"):
        FractionalMaxPool3d(2, output_size=2, _random_samples=np.zeros((1, 1, 2)))


def test_bad_inputs_raise_as_torch():
    x = np.zeros((2, 3, 7, 6), np.float32)
    tx = torch.from_numpy(x)
    # 2-D: output + kernel - 1 <= input; 3-D (PyTorch's stricter check): < input
    _both_raise(ValueError, "needs an input H of at least 8",
                lambda: FractionalMaxPool2d(3, output_size=(6, 4))(x),
                lambda: torch.nn.FractionalMaxPool2d(3, output_size=(6, 4))(tx))
    _both_raise(ValueError, "needs an input W of at least 7",
                lambda: FractionalMaxPool2d(3, output_size=(5, 5))(x),
                lambda: torch.nn.FractionalMaxPool2d(3, output_size=(5, 5))(tx))
    assert FractionalMaxPool2d(3, output_size=(5, 4))(x).shape == (2, 3, 5, 4)
    v = np.zeros((1, 2, 7, 6, 5), np.float32)
    tv = torch.from_numpy(v)
    _both_raise(ValueError, "needs an input T of more than 7",
                lambda: FractionalMaxPool3d(3, output_size=(5, 3, 2))(v),
                lambda: torch.nn.FractionalMaxPool3d(3, output_size=(5, 3, 2))(tv))
    _both_raise(ValueError, "needs an input W of more than 5",
                lambda: FractionalMaxPool3d(3, output_size=(4, 3, 3))(v),
                lambda: torch.nn.FractionalMaxPool3d(3, output_size=(4, 3, 3))(tv))
    _both_raise(ValueError, "needs an input",  # ratio sizes are checked too
                lambda: FractionalMaxPool2d(5, output_ratio=0.9)(x),
                lambda: torch.nn.FractionalMaxPool2d(5, output_ratio=0.9)(tx))
    for bad in (np.zeros((1, 2, 3, 7, 6), np.float32), np.zeros((7, 6), np.float32),
                np.zeros((2, 0, 7, 6), np.float32)):
        _both_raise(ValueError, "expected input of shape",
                    lambda: FractionalMaxPool2d(2, output_size=2)(bad),
                    lambda: torch.nn.FractionalMaxPool2d(2, output_size=2)(
                        torch.from_numpy(bad)))
    _both_raise(ValueError, "expected input of shape",
                lambda: FractionalMaxPool3d(2, output_size=2)(x[0]),
                lambda: torch.nn.FractionalMaxPool3d(2, output_size=2)(tx[0]))
    with pytest.raises(TypeError, match="float32 or float64"):
        FractionalMaxPool2d(2, output_size=2)(np.zeros((2, 3, 7, 6), np.int64))
    # _random_samples checks (PyTorch's, at forward)
    for samples, error, match in ((np.zeros((2, 3, 2)), TypeError, "do not match"),
                                  (np.zeros((1, 3, 2), np.float32), ValueError, "N >= 2"),
                                  (np.zeros((2, 4, 2), np.float32), ValueError, "N >= 2, 3")):
        _both_raise(error, match,
                    lambda: FractionalMaxPool2d(2, output_size=2, _random_samples=samples)(x),
                    lambda: torch.nn.FractionalMaxPool2d(
                        2, output_size=2, _random_samples=torch.from_numpy(samples))(tx))
    layer = FractionalMaxPool2d(2, output_size=2, _random_samples=np.zeros((2, 3, 2), np.float32))
    layer._random_samples = np.zeros((2, 3), np.float32)  # replaced after construction
    with pytest.raises(ValueError, match=r"\(N, C, 2\)"):
        layer(x)
    with pytest.raises(RuntimeError, match="before forward"):
        FractionalMaxPool2d(2, output_size=2).backward(np.zeros((2, 3, 2, 2), np.float32))
