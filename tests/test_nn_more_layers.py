"""Conv1d, MaxPool1d, AvgPool1d, BatchNorm3d and Unflatten against their PyTorch twins
(built by loading the fastnn layer's state dict into the torch layer), on every backend
in float32 and float64."""
import math

import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn

from conftest import assert_close
from nn_torch_helpers import TORCH_DTYPES

torch.set_num_threads(2)


def torch_copy(layer, twin):
    """twin with the fastnn layer's state dict loaded (the keys and shapes must match)."""
    state = {k: torch.from_numpy(np.array(v)) for k, v in layer.state_dict().items()}
    missing, unexpected = twin.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    twin.train(layer.training)
    return twin


def check_against(layer, twin, x, rng, dtype, scale=10.0):
    """Forward and backward through both; outputs, input gradients and parameter
    gradients agree."""
    twin = torch_copy(layer, twin.to(TORCH_DTYPES[np.dtype(dtype)]))
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = twin(tx)
    g = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.from_numpy(g))
    y = layer.forward(x)
    grad_in = layer.backward(g)
    assert y.shape == tuple(ty.shape) and y.dtype == dtype
    assert_close(y, ty.detach().numpy(), dtype, scale)
    assert grad_in.shape == x.shape
    assert_close(grad_in, tx.grad.numpy(), dtype, scale)
    params = dict(layer.named_parameters())
    for name, p in twin.named_parameters():
        assert_close(params[name].grad, p.grad.numpy(), dtype, 30, err_msg=name)
    for name, buf in twin.named_buffers():
        if not name.endswith("num_batches_tracked"):
            assert_close(dict(layer.named_buffers())[name], buf.numpy(), dtype, 10,
                         err_msg=name)


@pytest.mark.parametrize("args", [
    dict(in_channels=3, out_channels=4, kernel_size=3, padding=1),
    dict(in_channels=2, out_channels=5, kernel_size=4, stride=2),
    dict(in_channels=4, out_channels=3, kernel_size=1, bias=False),
    dict(in_channels=2, out_channels=3, kernel_size=5, padding="same"),
    dict(in_channels=2, out_channels=3, kernel_size=(3,), stride=(3,), padding=(2,)),
], ids=["k3pad1", "k4stride2", "k1nobias", "k5same", "tuples"])
def test_conv1d_matches_torch(backend, dtype, rng, args):
    layer = nn.Conv1d(**args).to_dtype(dtype)
    assert layer.weight.shape == (args["out_channels"], args["in_channels"],
                                  layer.kernel_size[0])
    x = rng.standard_normal((3, args["in_channels"], 17)).astype(dtype)
    torch_args = {k: v for k, v in args.items()}
    check_against(layer, torch.nn.Conv1d(**torch_args), x, rng, dtype,
                  math.sqrt(layer.weight.data[0].size))


def test_conv1d_unbatched_and_in_a_sequential(backend, dtype, rng):
    model = nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU(), nn.MaxPool1d(2), nn.Conv1d(4, 3, 3,
                          padding=1), nn.AvgPool1d(3, stride=1, padding=1), nn.Flatten(),
                          nn.Linear(15, 2)).to_dtype(dtype)
    twin = torch.nn.Sequential(torch.nn.Conv1d(2, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool1d(2),
                               torch.nn.Conv1d(4, 3, 3, padding=1),
                               torch.nn.AvgPool1d(3, stride=1, padding=1), torch.nn.Flatten(),
                               torch.nn.Linear(15, 2))
    check_against(model, twin, rng.standard_normal((4, 2, 12)).astype(dtype), rng, dtype)
    one = nn.Conv1d(2, 4, 3).to_dtype(dtype)
    check_against(one, torch.nn.Conv1d(2, 4, 3), rng.standard_normal((2, 9)).astype(dtype),
                  rng, dtype)


@pytest.mark.parametrize("cls,tcls,args", [
    (nn.MaxPool1d, torch.nn.MaxPool1d, dict(kernel_size=3, stride=2, padding=1)),
    (nn.MaxPool1d, torch.nn.MaxPool1d, dict(kernel_size=2)),
    (nn.AvgPool1d, torch.nn.AvgPool1d, dict(kernel_size=3, stride=2, padding=1)),
    (nn.AvgPool1d, torch.nn.AvgPool1d, dict(kernel_size=3, padding=1, count_include_pad=False)),
], ids=["max-k3s2p1", "max-k2", "avg-k3s2p1", "avg-exclude-pad"])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
def test_pool1d_matches_torch(backend, dtype, rng, cls, tcls, args, batched):
    shape = (2, 3, 11) if batched else (3, 11)
    check_against(cls(**args), tcls(**args), rng.standard_normal(shape).astype(dtype), rng,
                  dtype)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batchnorm3d_matches_torch(backend, dtype, rng, training):
    layer = nn.BatchNorm3d(3, momentum=0.2).to_dtype(dtype)
    layer.weight.data[:] = rng.uniform(0.5, 1.5, 3)
    layer.bias.data[:] = rng.standard_normal(3)
    layer.running_var[:] = rng.uniform(0.5, 2.0, 3)
    layer.train(training)
    x = (rng.standard_normal((2, 3, 4, 3, 5)) * 2 + 1).astype(dtype)
    check_against(layer, torch.nn.BatchNorm3d(3, momentum=0.2), x, rng, dtype)


def test_unflatten_is_a_view_and_inverts_flatten(rng):
    layer = nn.Unflatten(1, (3, -1))
    x = rng.standard_normal((2, 12)).astype(np.float32)
    y = layer.forward(x)
    assert y.shape == (2, 3, 4) == tuple(torch.nn.Unflatten(1, (3, -1))(torch.from_numpy(x)).shape)
    np.testing.assert_array_equal(y.reshape(2, 12), x)
    assert layer.backward(np.ones((2, 3, 4), np.float32)).shape == (2, 12)
    model = nn.Sequential(nn.Linear(6, 12), nn.Unflatten(-1, (2, 6)), nn.Flatten(), nn.Linear(12, 1))
    assert model.forward(x[:, :6]).shape == (2, 1)
    assert model.backward(np.ones((2, 1), np.float32)).shape == (2, 6)


@pytest.mark.parametrize("make,shape,match", [
    (lambda: nn.Conv1d(3, 4, 3), (2, 2, 10), r"expected input of shape \(N, 3, L\)"),
    (lambda: nn.Conv1d(3, 4, 3), (2, 3, 4, 4), r"\(N, 3, L\) or \(3, L\)"),
    (lambda: nn.Conv1d(3, 4, 5), (2, 3, 4), "kernel size"),
    (lambda: nn.MaxPool1d(2), (6,), r"\(N, C, L\)"),
    (lambda: nn.BatchNorm3d(3), (2, 3, 4, 4), r"\(N, 3, D, H, W\)"),
    (lambda: nn.Unflatten(1, (3, 5)), (2, 12), "cannot split"),
])
def test_bad_inputs_are_refused(make, shape, match):
    with pytest.raises(ValueError, match=match):
        make().forward(np.zeros(shape, np.float32))


@pytest.mark.parametrize("make,match", [
    (lambda: nn.Conv1d(3, 4, (3, 3)), "kernel_size"),
    (lambda: nn.Conv1d(3, 4, 4, padding="same"), "odd kernel"),
    (lambda: nn.Conv1d(3, 4, 3, dilation=2), "dilation"),
    (lambda: nn.MaxPool1d(2, padding=2), "at most half"),
    (lambda: nn.Unflatten(1, (-1, -1)), "unflattened_size"),
])
def test_bad_arguments_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_conv1d_state_dict_loads_from_torch(rng):
    twin = torch.nn.Conv1d(2, 3, 4)
    layer = nn.Conv1d(2, 3, 4)
    layer.load_state_dict({k: v.detach().numpy() for k, v in twin.state_dict().items()})
    x = rng.standard_normal((1, 2, 8)).astype(np.float32)
    assert_close(layer.forward(x), twin(torch.from_numpy(x)).detach().numpy(), np.float32, 10)
    assert fastnn.nn.Conv1d(2, 3, 4).weight.data.std() > 0
