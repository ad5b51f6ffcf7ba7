"""Whole training steps (forward, softmax-CE, backward, SGD momentum): the MLPs of the
issues and SmallCNN, on every backend, the student NumPy loop and PyTorch."""
import pytest

from . import contenders, steps
from .conftest import backend_or_skip, measure, torch_or_skip


def _prepare(contender):
    if contender == "torch":
        torch_or_skip()
    elif contender != "student":
        backend_or_skip(contender)


@pytest.mark.parametrize("contender", contenders.step_contenders())
@pytest.mark.parametrize("config", list(steps.MLP_CONFIGS))
def test_mlp_step(benchmark, config, contender):
    _prepare(contender)
    sizes, activation, batch = steps.MLP_CONFIGS[config]
    fn = steps.mlp_step(contender, sizes, activation, batch)
    measure(benchmark, fn, config, kind="step", op=config, size=f"b{batch}", contender=contender,
            shape="-".join(map(str, sizes)) + f" {activation} batch {batch}",
            flops=steps.mlp_step_flops(sizes, batch))


@pytest.mark.parametrize("contender", contenders.op_contenders())
def test_cnn_step(benchmark, contender):
    _prepare(contender)
    try:
        model_fn = steps.cnn_step(contender)
    except ImportError as err:
        pytest.skip(f"SmallCNN not available: {err}")
    name = f"SmallCNN b{steps.CNN_BATCH}"
    flops = steps.model_step_flops(steps.small_cnn(), (steps.CNN_BATCH, 1, 28, 28))
    measure(benchmark, model_fn, name, kind="step", op=name, size=f"b{steps.CNN_BATCH}",
            contender=contender, shape=f"{steps.CNN_BATCH}x1x28x28", flops=flops)
