"""Parameter groups carry keys of their own (a name, a tag) as PyTorch's do: kept by the
constructor and add_param_group, saved by state_dict, restored by load_state_dict and by
fastnn.load of a checkpoint."""
import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn, optim


def _model():
    fastnn.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))


def _train(model, opt, steps=3):
    x = np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3)
    for _ in range(steps):
        opt.zero_grad()
        out = model(x)
        model.backward(np.ones_like(out))
        opt.step()


@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
                                  lambda p: optim.Adam(p, lr=0.01)])
def test_group_keys_round_trip(make, tmp_path):
    model = _model()
    opt = make([{"params": model[0].parameters(), "name": "encoder"},
                {"params": model[2].parameters(), "name": "head", "tags": ["x", 1]}])
    opt.param_groups[0]["added_later"] = 3
    _train(model, opt)
    state = opt.state_dict()
    assert state["param_groups"][1]["name"] == "head"

    again = _model()
    other = make([{"params": again[0].parameters()}, {"params": again[2].parameters()}])
    other.load_state_dict(state)
    assert other.param_groups[0]["name"] == "encoder"
    assert other.param_groups[0]["added_later"] == 3
    assert list(other.param_groups[1]["tags"]) == ["x", 1]

    fastnn.save(model, tmp_path / "ck.npz", optimizer=opt)
    loaded = fastnn.load(tmp_path / "ck.npz", optimizer=other)
    assert loaded is not None and other.param_groups[1]["name"] == "head"


def test_same_trajectory_as_pytorch_with_a_named_group():
    model = _model()
    tmodel = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        for (_, p), (_, q) in zip(model.named_parameters(), tmodel.named_parameters()):
            q.copy_(torch.from_numpy(p.data))
    opt = optim.SGD([{"params": model.parameters(), "name": "all"}], lr=0.1, momentum=0.9)
    topt = torch.optim.SGD([{"params": tmodel.parameters(), "name": "all"}], lr=0.1,
                           momentum=0.9)
    x = np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3)
    for _ in range(3):
        opt.zero_grad()
        model.backward(np.ones_like(model(x)))
        opt.step()
        topt.zero_grad()
        tmodel(torch.from_numpy(x)).sum().backward()
        topt.step()
    for (_, p), (_, q) in zip(model.named_parameters(), tmodel.named_parameters()):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_a_parameter_appended_to_a_group_by_hand_is_named_by_every_entry_point(tmp_path):
    """step() said to use add_param_group(); state_dict(), .state and fastnn.save with
    the optimizer raised a bare KeyError of a Python id."""
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    for edit in ("append_param", "append_group"):
        opt = optim.Adam(model[0].parameters(), lr=1e-3)
        if edit == "append_param":
            opt.param_groups[0]["params"].append(model[2].weight)
        else:
            opt.param_groups.append({**opt.defaults, "params": list(model[2].parameters())})
        for call in (opt.step, opt.state_dict, lambda: opt.state,
                     lambda: fastnn.save(model, tmp_path / "m.npz", optimizer=opt)):
            with pytest.raises(RuntimeError, match="add_param_group"):
                call()
