"""Whole training steps (forward, softmax-CE, backward, SGD momentum): the MLPs of the
issues and SmallCNN, on every backend, the student NumPy loop and PyTorch. Each
contender's losses over a few steps are first checked against the numpy backend's
(steps.check_step): a step that computes the wrong thing is not timed."""
import pytest

from . import contenders, steps
from .conftest import measure, contender_or_skip


@pytest.mark.parametrize("contender", contenders.step_contenders())
@pytest.mark.parametrize("config", list(steps.MLP_CONFIGS))
def test_mlp_step(benchmark, config, contender):
    contender_or_skip(contender)
    sizes, activation, batch = steps.MLP_CONFIGS[config]
    fn = steps.checked_mlp_step(contender, sizes, activation, batch, config)
    measure(benchmark, fn, config, kind="step", op=config, size=f"b{batch}", contender=contender,
            shape="-".join(map(str, sizes)) + f" {activation} batch {batch}",
            flops=steps.mlp_step_flops(sizes, batch))


# batch 1 as well: one image per step (online learning, the class-visualisation
# experiment) runs every conv as a single group, whose GEMM must reach BLAS outside any
# parallel region (kernels/numba_cpu/conv.py's _run_groups)
@pytest.mark.parametrize("contender", contenders.op_contenders())
@pytest.mark.parametrize("batch", [steps.CNN_BATCH, 1])
def test_cnn_step(benchmark, contender, batch):
    contender_or_skip(contender)
    try:
        model_fn = steps.cnn_step(contender, batch)
    except ImportError as err:
        pytest.skip(f"SmallCNN not available: {err}")
    name = f"SmallCNN b{batch}"
    if contender != "numpy":
        steps.check_step(lambda c: steps.cnn_step(c, batch), contender, name)
    flops = steps.model_step_flops(steps.small_cnn(), (batch, 1, 28, 28))
    measure(benchmark, model_fn, name, kind="step", op=name, size=f"b{batch}",
            contender=contender, shape=f"{batch}x1x28x28", flops=flops)
