"""How the MLP step's cost grows: against batch size (1 to 4096), against layer width,
and with 1 against all threads. Each contender's losses over a few steps are first
checked against the numpy backend's, at the size and thread count timed
(steps.check_step, as bench/test_steps.py does)."""

import pytest

from . import contenders, steps
from .conftest import measure, contender_or_skip

BATCHES = (1, 4, 16, 64, 256, 1024, 4096)
WIDTHS = (64, 256, 1024, 2048, 4096)
BATCH_NET = ((784, 1024, 1024, 10), "leaky_relu")
WIDTH_BATCH = 128
THREAD_CONFIG = "mlp 784-1024-1024-10 leaky b256"


@pytest.mark.parametrize("contender", contenders.step_contenders())
@pytest.mark.parametrize("batch", BATCHES)
def test_batch_scaling(benchmark, batch, contender):
    contender_or_skip(contender)
    sizes, act = BATCH_NET
    fn = steps.checked_mlp_step(contender, sizes, act, batch, f"scaling batch {batch}")
    measure(benchmark, fn, f"scaling batch {batch}", kind="scaling-batch", contender=contender,
            op="mlp 784-1024-1024-10 leaky", size=batch, x=batch,
            flops=steps.mlp_step_flops(sizes, batch))


@pytest.mark.parametrize("contender", contenders.step_contenders())
@pytest.mark.parametrize("width", WIDTHS)
def test_width_scaling(benchmark, width, contender):
    contender_or_skip(contender)
    sizes = (784, width, width, 10)
    fn = steps.checked_mlp_step(contender, sizes, "leaky_relu", WIDTH_BATCH,
                                f"scaling width {width}")
    measure(benchmark, fn, f"scaling width {width}", kind="scaling-width", contender=contender,
            op=f"mlp 784-W-W-10 leaky b{WIDTH_BATCH}", size=width, x=width,
            flops=steps.mlp_step_flops(sizes, WIDTH_BATCH))


@pytest.fixture
def threads(request):
    """Run the test with request.param threads everywhere, then restore the suite's count."""
    contenders.set_threads(request.param)
    yield request.param
    contenders.set_threads(contenders.all_threads())


@pytest.mark.parametrize("contender", contenders.step_contenders())
@pytest.mark.parametrize("threads", sorted({1, contenders.all_threads()}), indirect=True)
def test_thread_scaling(benchmark, threads, contender):
    contender_or_skip(contender)
    sizes, act, batch = steps.MLP_CONFIGS[THREAD_CONFIG]
    fn = steps.checked_mlp_step(contender, sizes, act, batch, f"threads {threads}")
    measure(benchmark, fn, f"threads {threads}", kind="scaling-threads", contender=contender,
            op=THREAD_CONFIG, size=threads, x=threads, threads=threads,
            flops=steps.mlp_step_flops(sizes, batch))
