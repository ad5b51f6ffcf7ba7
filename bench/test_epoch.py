"""One full epoch of Fashion-MNIST (60000 images, MLP 784-100-10, batch 128, shuffled).
Each contender's losses over the epoch's first few batches are first checked against
the numpy backend's (steps.check_epoch: the loop timed, stopped early)."""
import os

import pytest

from . import contenders, steps
from .conftest import WARMUP, contender_or_skip

ROUNDS = int(os.environ.get("FASTNN_BENCH_EPOCH_ROUNDS", 3))
_DATA = {}


def _data():
    if "train" not in _DATA:
        _DATA["train"] = steps.load_fashion_mnist_train()
    return _DATA["train"]


@pytest.mark.parametrize("contender", contenders.step_contenders())
def test_epoch(benchmark, contender):
    contender_or_skip(contender)
    data = _data()
    if data is None:
        pytest.skip("Fashion-MNIST not found (make data, or set FASTNN_DATA)")
    # warm-up: JIT compile and buffers, on a step of the same network
    warm = steps.mlp_step(contender, (784, 100, 10), "relu", 128)
    for _ in range(WARMUP):
        warm()
    if contender != "numpy":   # (the reference)
        steps.check_epoch(contender, data)
    run = steps.epoch_runner(contender, data=data)
    benchmark.group = "epoch fashion-mnist mlp 784-100-10 b128"
    benchmark.extra_info.update(kind="epoch", contender=contender, op="epoch mlp 784-100-10 b128",
                                size="60000", shape="60000x784, 469 batches",
                                threads=contenders.fastnn.get_num_threads(),
                                flops=steps.mlp_step_flops((784, 100, 10), 60000))
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1)
