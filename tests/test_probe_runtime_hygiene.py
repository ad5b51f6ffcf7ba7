"""Runtime hygiene, as a probe of DESIGN.md's three runtime promises found it (arrays
handed back stay the caller's, a failed call changes nothing, the thread count is
respected) over every nn module, loss and optimizer on every CPU backend: the defects it
found, pinned here."""
import numpy as np
import pytest

from fastnn import nn

torch = pytest.importorskip("torch")  # (after fastnn: see fastnn's OpenMP warning)


@pytest.mark.parametrize("shape", [(1, 4), (4, 1), (2, 2)])
def test_multi_margin_loss_refuses_a_target_of_two_dimensions_as_pytorch(shape):
    # a (1, N) or (N, 1) target of N labels was flattened and taken silently
    pred = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    target = np.array([1, 2, 3, 0]).reshape(shape)
    with pytest.raises(RuntimeError, match="target tensor should be 1-D"):
        torch.nn.MultiMarginLoss()(torch.tensor(pred), torch.tensor(target))
    with pytest.raises(ValueError, match="target tensor should be 1-D") as caught:
        nn.MultiMarginLoss()(pred, target)
    assert isinstance(caught.value, RuntimeError)
    ours = nn.MultiMarginLoss()(pred, target.reshape(-1))
    theirs = torch.nn.MultiMarginLoss()(torch.tensor(pred), torch.tensor(target.reshape(-1)))
    assert ours == pytest.approx(theirs.item(), rel=1e-6)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_max_unpool_names_a_list_input_as_the_other_layers_do(dims):
    # a list as the input was an AttributeError ('list' object has no attribute 'shape',
    # PyTorch's own is 'no attribute size') that did not name the layer, as DESIGN.md asks
    pool = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}[dims](2, return_indices=True)
    unpool = {1: nn.MaxUnpool1d, 2: nn.MaxUnpool2d, 3: nn.MaxUnpool3d}[dims](2)
    y, indices = pool(np.ones((1, 2) + (4,) * dims, np.float32))
    with pytest.raises(TypeError, match="expected input to be a numpy.ndarray, got list"):
        unpool(y.tolist(), indices)
    assert unpool(y, indices).shape == (1, 2) + (4,) * dims
