"""Found by probing the Module API and fastnn.save against PyTorch: load_state_dict
takes torch Parameters (requires_grad) and bfloat16 tensors as torch's does; fastnn.save
refuses what it could not give back (keys naming one stored array twice, a '.npy'
ending, object arrays) and stores a keep_vars state dict; Module.to/cuda take PyTorch's
other arguments (non_blocking, memory_format, an array, 'cpu:0', a torch.device)."""
import numpy as np
import pytest

import fastnn
from fastnn import nn

import torch  # noqa: E402  (after fastnn)


def test_load_state_dict_takes_torch_parameters_and_bfloat16():
    twin = torch.nn.Linear(3, 2)
    for state, tol in ((dict(twin.named_parameters()), 0), (twin.state_dict(keep_vars=True), 0),
                       ({k: v.bfloat16() for k, v in twin.state_dict().items()}, 1e-2)):
        layer = nn.Linear(3, 2)
        layer.load_state_dict(state)
        assert layer.weight.data.dtype == np.float32
        np.testing.assert_allclose(layer.weight.data, twin.weight.detach().numpy(), atol=tol)
        np.testing.assert_allclose(layer.bias.data, twin.bias.detach().numpy(), atol=tol)


@pytest.mark.parametrize("state, error, match", [
    ({"a/b": np.zeros(2), "a": {"b": np.ones(3)}}, ValueError, "two arrays would be stored"),
    ({"w.npy": np.zeros(2), "w": np.ones(3)}, ValueError, "ends in '.npy'"),
    ({"classes": np.array(["cat", "dog"], dtype=object)}, TypeError, "Python objects"),
])
def test_save_refuses_what_it_could_not_give_back(tmp_path, state, error, match):
    path = tmp_path / "c.npz"
    with pytest.raises(error, match=match):
        fastnn.save(state, path)
    assert not path.exists()


def test_save_a_keep_vars_state_dict(tmp_path):
    layer = nn.Linear(2, 3)
    fastnn.save(layer.state_dict(keep_vars=True), tmp_path / "c.npz")
    loaded = fastnn.load(tmp_path / "c.npz")
    assert list(loaded) == ["weight", "bias"]
    np.testing.assert_array_equal(loaded["weight"], layer.weight.data)


def test_to_takes_pytorch_arguments():
    layer = nn.Linear(2, 2)
    assert layer.to("cpu", non_blocking=True) is layer
    assert layer.to(memory_format=torch.channels_last) is layer
    assert layer.to(np.zeros(2)).weight.dtype == np.float64      # an array's dtype
    assert layer.to("cpu:0", dtype=np.float32).weight.dtype == np.float32
    assert layer.to(torch.device("cpu")) is layer
    for device in (1, "cuda:1", torch.device("cuda", 1)):
        with pytest.raises(ValueError, match="one GPU, device 0"):
            layer.cuda(device)
