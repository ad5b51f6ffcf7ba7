"""What a probe of PyTorch-migration idioms found: a child's own train() (a frozen
BatchNorm) runs when its parent trains or evals; Module.zero_grad(set_to_none=False)
keeps a parameter no backward reached skipped by optimizers; BatchNorm in eval uses its
running buffers whenever it has them, whatever track_running_stats says now."""
import numpy as np
import pytest

from fastnn import nn, optim

torch = pytest.importorskip("torch")
tnn = torch.nn


class _Frozen(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.bn = nn.BatchNorm1d(3)

    def train(self, mode=True):
        super().train(mode)
        self.bn.eval()
        return self

    def forward(self, x):
        return self.bn(self.fc(x))

    def backward(self, g):
        return self.fc.backward(self.bn.backward(g))


def test_parent_train_and_eval_call_each_childs_own_train():
    model = nn.Sequential(_Frozen(), nn.ReLU())
    model.train()
    assert model.training and model[0].training and model[0].fc.training
    assert not model[0].bn.training
    x = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    model(x)
    np.testing.assert_array_equal(model[0].bn.running_mean, np.zeros(3, np.float32))
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train(True)
    assert [m.training for m in model.modules()] == [True, True, True, False, True]
    with pytest.raises(ValueError, match="boolean"):
        model.train(1)


@pytest.mark.parametrize("momentum, weight_decay", [(0.0, 0.1), (0.9, 0.0), (0.9, 0.1)])
def test_zero_grad_without_none_keeps_an_unreached_parameter_still(momentum, weight_decay):
    heads = {"a": (4, 2), "b": (4, 2)}
    ours = nn.ModuleDict({k: nn.Linear(*s) for k, s in heads.items()})
    theirs = tnn.ModuleDict({k: tnn.Linear(*s) for k, s in heads.items()})
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    opt = optim.SGD(ours.parameters(), lr=0.1, momentum=momentum, weight_decay=weight_decay)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=momentum,
                           weight_decay=weight_decay)
    x = np.ones((2, 4), np.float32)
    g = np.ones((2, 2), np.float32)
    for step in range(4):
        ours.zero_grad(set_to_none=False)
        theirs.zero_grad(set_to_none=False)
        if step == 2:   # zeros first, then zeros again: still no gradient for 'b'
            ours.zero_grad()
            ours.zero_grad(set_to_none=False)
        ours["a"](x)
        ours["a"].backward(g)
        theirs["a"](torch.tensor(x)).backward(torch.tensor(g))
        opt.step()
        topt.step()
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[name], value.numpy(), rtol=1e-6,
                                   atol=1e-7, err_msg=name)
    assert theirs["b"].weight.grad is None
    # a gradient a backward wrote, zeroed without None: stepped (momentum, decay) as torch
    ours["b"](x)
    ours["b"].backward(g)
    theirs["b"](torch.tensor(x)).backward(torch.tensor(g))
    ours.zero_grad(set_to_none=False)
    theirs.zero_grad(set_to_none=False)
    opt.step()
    topt.step()
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[name], value.numpy(), rtol=1e-6,
                                   atol=1e-7, err_msg=name)


@pytest.mark.parametrize("cls", ["BatchNorm1d", "BatchNorm2d"])
def test_batchnorm_eval_uses_its_buffers_after_track_running_stats_is_turned_off(cls):
    rng = np.random.default_rng(0)
    ours, theirs = getattr(nn, cls)(3), getattr(tnn, cls)(3)
    shape = (8, 3) if cls == "BatchNorm1d" else (4, 3, 2, 2)
    for _ in range(3):
        x = (rng.standard_normal(shape) * 2 + 3).astype(np.float32)
        ours(x)
        theirs(torch.tensor(x))
    x = rng.standard_normal(shape).astype(np.float32)
    ours.track_running_stats = theirs.track_running_stats = False
    # training: batch statistics, the buffers no longer updated
    np.testing.assert_allclose(ours(x), theirs(torch.tensor(x)).detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), atol=1e-6)
    ours.eval()
    theirs.eval()
    np.testing.assert_allclose(ours(x), theirs(torch.tensor(x)).detach().numpy(), atol=1e-5)
    ours.running_mean = ours.running_var = None
    theirs.running_mean = theirs.running_var = None
    np.testing.assert_allclose(ours(x), theirs(torch.tensor(x)).detach().numpy(), atol=1e-5)


def test_len_of_a_parameter_is_its_first_dimension_as_torch():
    layer = nn.Linear(4, 3)
    assert len(layer.weight) == len(tnn.Linear(4, 3).weight) == 3
    assert len(layer.bias) == 3
    assert bool(nn.Parameter(np.zeros((0, 2), np.float32)))
    with pytest.raises(TypeError, match="0-d"):
        len(nn.Parameter(np.float32(1.0)))
