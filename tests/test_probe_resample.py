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
