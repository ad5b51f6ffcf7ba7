"""ConvNet and SmallCNN: shapes, forward and backward against a PyTorch copy, save/load."""
import numpy as np
import pytest
import torch

import fastnn
from fastnn import models, nn

from conftest import assert_close
from conv_torch_helpers import conv_twin, torch_parameter_grads

torch.set_num_threads(2)


def compare_with_torch(model, x, rng, scale):
    twin = conv_twin(model)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = twin(tx)
    g = rng.standard_normal(tuple(ty.shape)).astype(x.dtype)
    ty.backward(torch.from_numpy(g))
    y = model.forward(x)
    grad_in = model.backward(g)
    dtype = x.dtype
    assert_close(y, ty.detach().numpy(), dtype, scale)
    assert_close(grad_in, tx.grad.numpy(), dtype, scale)
    grads = torch_parameter_grads(twin)
    for name, param in model.named_parameters():
        assert_close(param.grad, grads[name], dtype, scale, err_msg=name)
    running = dict(twin.named_buffers())
    for name, buf in model.named_buffers():
        assert_close(buf, running[name].numpy(), dtype, scale, err_msg=name)


def test_convnet_layout():
    model = models.ConvNet()
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 256, 512, 512, 512, 512]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model) == 5
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model) == 8
    assert isinstance(model[-1], nn.Linear) and model[-1].in_features == 512
    assert model.config_name == "convnet"
    assert model.config == dict(in_channels=3, input_size=32, num_classes=10, width=1.0)


@pytest.mark.parametrize("input_size", [32, 20])
def test_convnet_small_width_matches_torch(backend, rng, input_size):
    fastnn.manual_seed(0)
    model = models.ConvNet(in_channels=3, input_size=input_size, num_classes=7,
                           width=1 / 16).double()
    x = rng.standard_normal((3, 3, input_size, input_size))
    assert model.forward(x).shape == (3, 7)
    model.zero_grad()
    compare_with_torch(models.ConvNet(3, input_size, 7, 1 / 16).double(), x, rng, 100)


def test_small_cnn_matches_torch(backend, dtype, rng):
    fastnn.manual_seed(1)
    model = models.SmallCNN(channels=(4, 8), hidden=16).to_dtype(dtype)
    x = rng.standard_normal((5, 1, 28, 28)).astype(dtype)
    compare_with_torch(model, x, rng, 100)


def test_small_cnn_defaults_and_eval_mode(rng):
    fastnn.manual_seed(2)
    model = models.SmallCNN()
    assert model.config_name == "cnn"
    assert model.config == dict(in_channels=1, input_size=28, num_classes=10,
                                channels=[32, 64], hidden=128, dropout=0.0)
    assert model[-1].out_features == 10 and model[-3].in_features == 64 * 7 * 7
    x = rng.standard_normal((4, 1, 28, 28)).astype(np.float32)
    model.forward(x)                                 # updates running statistics
    model.eval()
    twin = conv_twin(model).eval()
    assert_close(model.forward(x), twin(torch.from_numpy(x)).detach().numpy(), np.float32, 100)


@pytest.mark.parametrize("make", [
    lambda: models.SmallCNN(channels=(3, 5), hidden=8, dropout=0.25),
    lambda: models.ConvNet(in_channels=1, input_size=16, num_classes=4, width=0.05),
], ids=["cnn", "convnet"])
def test_save_and_load_rebuild_the_model(tmp_path, rng, make):
    model = make()
    size = model.config["input_size"]
    x = rng.standard_normal((2, model.config["in_channels"], size, size)).astype(np.float32)
    model.forward(x)
    model.eval()
    path = tmp_path / "model.npz"
    fastnn.save(model, str(path))
    loaded = fastnn.load(str(path))
    assert type(loaded) is type(model) and loaded.config == model.config
    np.testing.assert_array_equal(loaded.eval().forward(x), model.forward(x))


@pytest.mark.parametrize("make, match", [
    (lambda: models.ConvNet(width=0), r"ConvNet: expected width to be a positive number"),
    (lambda: models.ConvNet(in_channels=0), r"ConvNet: expected in_channels"),
    (lambda: models.SmallCNN(input_size=3), r"SmallCNN: input_size 3 is too small"),
    (lambda: models.SmallCNN(channels=(4,)), r"SmallCNN: expected channels to be a pair"),
])
def test_bad_model_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()
