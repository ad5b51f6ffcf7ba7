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


def test_save_keep_vars_parameters_inside_a_general_checkpoint(tmp_path):
    """PyTorch's general checkpoint of a keep_vars state dict ({'model': ...}, or a
    Parameter as a value of its own): the Parameters' values are stored, as at the top
    level. It raised 'cannot store state of type Parameter'."""
    layer = nn.Linear(2, 3)
    fastnn.save({"model": layer.state_dict(keep_vars=True), "w": layer.weight,
                 "both": [layer.bias, 1]}, tmp_path / "c.npz")
    loaded = fastnn.load(tmp_path / "c.npz")
    np.testing.assert_array_equal(loaded["model"]["weight"], layer.weight.data)
    np.testing.assert_array_equal(loaded["model"]["bias"], layer.bias.data)
    np.testing.assert_array_equal(loaded["w"], layer.weight.data)
    assert type(loaded["w"]) is np.ndarray and loaded["both"][1] == 1
    np.testing.assert_array_equal(loaded["both"][0], layer.bias.data)


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


def test_none_keeps_the_slot_as_torch():
    class Heads(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 2)
            self.b = nn.Linear(2, 2)

    class TorchHeads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(2, 2)
            self.b = torch.nn.Linear(2, 2)

    ours, theirs = Heads(), TorchHeads()
    for model, linear in ((ours, nn.Linear), (theirs, torch.nn.Linear)):
        model.a = None
        assert model.a is None
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["b.weight", "b.bias"]
    assert repr(ours).splitlines()[1].strip() == "(a): None"
    ours.a, theirs.a = nn.Linear(2, 3), torch.nn.Linear(2, 3)
    assert list(ours.state_dict()) == list(theirs.state_dict())   # a's place again
    layer, twin = nn.Linear(2, 2), torch.nn.Linear(2, 2)
    layer.weight, twin.weight = None, None
    assert not layer.has_parameters() or [n for n, _ in layer.named_parameters()] == ["bias"]
    layer.weight = nn.Parameter(np.zeros((2, 2), np.float32))
    twin.weight = torch.nn.Parameter(torch.zeros(2, 2))
    assert list(layer.state_dict()) == list(twin.state_dict()) == ["weight", "bias"]
    layer.to(np.float64)
    layer.register_parameter("extra", None)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]


def test_save_and_load_take_file_objects(tmp_path):
    import io
    from fastnn import models
    model = models.MLP(4, [3], 2)
    buffer = io.BytesIO()
    fastnn.save(model, buffer)
    buffer.seek(0)
    again = fastnn.load(buffer)
    for (k, a), (j, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert k == j
        np.testing.assert_array_equal(a, b)
    with open(tmp_path / "m.npz", "wb") as f:
        fastnn.save(model.state_dict(), f)
    with open(tmp_path / "m.npz", "rb") as f:
        assert list(fastnn.load(f)) == list(model.state_dict())
    with pytest.raises(fastnn.io.CheckpointError, match="not an .npz archive"):
        fastnn.load(io.BytesIO(b"not a checkpoint"))


def test_a_checkpoint_at_a_file_objects_position_or_a_clear_error():
    """A stream read from its position: after a header, the checkpoint there loads; with
    another checkpoint written after it, the archive read (zip's, found from the end of
    the file) was the last one, returned silently; now a CheckpointError."""
    import io
    buffer = io.BytesIO()
    buffer.write(b"HEADER")
    fastnn.save({"a": 1}, buffer)
    buffer.seek(6)
    assert dict(fastnn.load(buffer)) == {"a": 1}
    buffer.seek(0, 2)
    fastnn.save({"b": 2}, buffer)
    buffer.seek(6)
    with pytest.raises(fastnn.io.CheckpointError, match="more follows the checkpoint at "
                                                        "the file object's position 6"):
        fastnn.load(buffer)


def test_a_name_has_one_slot():
    module = nn.Module()
    module.add_module("x", None)
    with pytest.raises(KeyError, match="attribute 'x' already exists"):
        module.register_parameter("x", None)
    module.x = nn.Linear(2, 2)
    module.register_buffer("b", None)
    with pytest.raises(KeyError, match="already exists"):
        module.register_parameter("b", None)


def test_append_after_a_layer_set_to_none_keeps_every_layer():
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    setattr(seq, "1", None)
    seq.append(nn.Tanh())
    assert [type(layer).__name__ for layer in seq] == ["Linear", "Linear", "Tanh"]
    assert seq(np.ones((1, 3), np.float32)).shape == (1, 2)


def test_torch_devices_other_than_0_are_refused():
    with pytest.raises(ValueError, match="expected device 'cpu' or 'cuda'"):
        nn.Linear(2, 2).to(torch.device("cuda", 1))


def test_assigned_gradients_are_checked_as_torch():
    p = nn.Parameter(np.zeros((2, 3), np.float32))
    twin = torch.nn.Parameter(torch.zeros(2, 3))
    for bad, error in ((np.zeros((3, 2), np.float32), ValueError),
                       (np.zeros((2, 3), np.float64), TypeError),
                       ([[0.0] * 3] * 2, TypeError)):
        with pytest.raises(RuntimeError if not isinstance(bad, list) else TypeError):
            twin.grad = torch.tensor(bad) if not isinstance(bad, list) else bad
        with pytest.raises(error, match="Parameter.grad"):
            p.grad = bad
        assert p.grad.shape == (2, 3) and p.grad.dtype == np.float32
    p.grad = np.ones((2, 3), np.float32)
    p.grad = None
    assert p.grad is None
