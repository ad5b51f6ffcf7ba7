"""Norm, activation and dropout layers against PyTorch 2.13 where a seeded differential
fuzz (forward, backward, running statistics, bad inputs) found them differing."""
import numpy as np
import pytest

from fastnn import nn
from fastnn.errors import RuntimeValueError

torch = pytest.importorskip("torch")

# (layer, keywords, a bad input shape): PyTorch raises RuntimeError for each
BAD_INPUTS = [
    ("BatchNorm1d", {"num_features": 3}, (2, 4)),
    ("BatchNorm1d", {"num_features": 3, "affine": False}, (2, 4, 5)),
    ("BatchNorm2d", {"num_features": 3}, (2, 4, 5, 5)),
    ("BatchNorm3d", {"num_features": 3, "track_running_stats": False}, (2, 4, 2, 2, 2)),
    ("LayerNorm", {"normalized_shape": (3, 4)}, (2, 4, 3)),
    ("LayerNorm", {"normalized_shape": 4, "elementwise_affine": False}, (2, 3)),
    ("GroupNorm", {"num_groups": 2, "num_channels": 4}, (2, 6)),
    ("GroupNorm", {"num_groups": 2, "num_channels": 4, "affine": False}, (4,)),
    ("GroupNorm", {"num_groups": 2, "num_channels": 4, "affine": False}, (2, 5, 3)),
    ("Dropout1d", {"p": 0.5}, (3,)),
    ("Dropout1d", {"p": 0.5}, (2, 3, 4, 5)),
    ("GLU", {"dim": 0}, ()),
]


def _state(layer):
    out = {name: np.array(p.data, copy=True) for name, p in layer.named_parameters()}
    out.update({name: np.array(b, copy=True) for name, b in layer.named_buffers()
                if b is not None})
    out["count"] = getattr(layer, "num_batches_tracked", None)
    return out


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("name, kwargs, shape", BAD_INPUTS)
def test_bad_input_is_torch_runtime_error_and_keeps_state(name, kwargs, shape, train):
    x = np.random.default_rng(0).standard_normal(shape)
    with pytest.raises(RuntimeError):
        getattr(torch.nn, name)(**kwargs).double().train(train)(torch.from_numpy(x))
    layer = getattr(nn, name)(**kwargs).train(train)
    layer.double()
    before = _state(layer)
    with pytest.raises(RuntimeValueError, match=name):
        layer(x)
    after = _state(layer)
    assert before.keys() == after.keys()
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


@pytest.mark.parametrize("name, kwargs, shape", [
    ("BatchNorm1d", {"num_features": 3}, (2,)),
    ("BatchNorm2d", {"num_features": 3}, (2, 3, 4)),
    ("InstanceNorm1d", {"num_features": 3}, (3,)),
])
def test_wrong_rank_stays_torch_value_error(name, kwargs, shape):
    x = np.ones(shape)
    with pytest.raises(ValueError):
        getattr(torch.nn, name)(**kwargs).double()(torch.from_numpy(x))
    with pytest.raises(ValueError, match=name) as info:
        getattr(nn, name)(**kwargs).double()(x)
    assert not isinstance(info.value, RuntimeError)


@pytest.mark.parametrize("name, args", [
    ("BatchNorm1d", (-1,)), ("BatchNorm2d", (-3,)), ("BatchNorm3d", (-2,)),
    ("PReLU", (-1,)), ("GroupNorm", (2, -2)),
    # the same rule for the layers whose weights take their sizes (were bare ValueErrors)
    ("Linear", (-1, 3)), ("Linear", (3, -2)), ("Embedding", (-1, 3)), ("Embedding", (3, -1)),
    ("Conv1d", (-1, 3, 2)), ("Conv2d", (3, -1, 2)), ("Conv3d", (-2, 4, 1)),
    ("ConvTranspose1d", (3, -1, 2)), ("ConvTranspose2d", (-1, 3, 2)),
    ("ConvTranspose3d", (3, -3, 1)),
])
def test_negative_size_is_torch_runtime_error(name, args):
    with pytest.raises(RuntimeError):   # PyTorch: a tensor of a negative dimension
        getattr(torch.nn, name)(*args)
    with pytest.raises(RuntimeValueError, match=name):
        getattr(nn, name)(*args)


@pytest.mark.parametrize("name", ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d"])
def test_dropout_constructor_errors_name_the_layer(name):
    with pytest.raises(ValueError):
        getattr(torch.nn, name)(1.5)
    with pytest.raises(ValueError, match=rf"^{name}: expected p in"):
        getattr(nn, name)(1.5)
    with pytest.raises(TypeError, match=rf"^{name}: expected inplace"):
        getattr(nn, name)(0.5, inplace="yes")
