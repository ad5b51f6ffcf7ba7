"""pytest-benchmark configuration of the suite: threads, machine info, warm-up.

Every benchmark calls ``measure(benchmark, fn, **info)``: ``fn`` runs WARMUP times
untimed first (Numba compiles on first call, buffers are first touched), then
pytest-benchmark times it over rounds; the report uses the median.
"""
import json
import math
import os
import time

import pytest

from . import contenders
from .machine import machine_info

WARMUP = 2
MIN_ROUNDS = int(os.environ.get("FASTNN_BENCH_MIN_ROUNDS", 5))
MAX_ROUNDS = 200
MAX_TIME = float(os.environ.get("FASTNN_BENCH_MAX_TIME", 0.5))
MIN_ROUND_TIME = 2e-4


def pytest_configure(config):
    contenders.set_threads(contenders.all_threads())


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["fastnn"] = _machine()


def _machine():
    info = machine_info()
    info["warmup_calls"] = str(WARMUP)
    info["rounds"] = f"{MIN_ROUNDS} to {MAX_ROUNDS}, about {MAX_TIME} s per benchmark"
    return info


def measure(benchmark, fn, group, **info):
    """Warm up ``fn`` (untimed), then time it with pytest-benchmark.

    group: the pytest-benchmark group (rows compared with each other);
    info: stored in the JSON's extra_info (kind, contender, op, size, flops, bytes...).
    Rounds and iterations come from the last warm-up call's time t: each round runs
    ceil(MIN_ROUND_TIME / t) iterations (timer resolution), and there are
    MAX_TIME / round time rounds, at least MIN_ROUNDS and at most MAX_ROUNDS.
    """
    for _ in range(WARMUP - 1):
        fn()
    t0 = time.perf_counter()
    fn()
    t = max(time.perf_counter() - t0, 1e-7)
    iterations = max(1, math.ceil(MIN_ROUND_TIME / t))
    rounds = min(MAX_ROUNDS, max(MIN_ROUNDS, int(MAX_TIME / (t * iterations))))
    benchmark.group = group
    from fastnn import get_num_threads
    benchmark.extra_info.update(info, threads=info.get("threads", get_num_threads()))
    return benchmark.pedantic(fn, rounds=rounds, iterations=iterations)


def backend_or_skip(name):
    """The Backend object, or skip the test naming why (an incomplete backend)."""
    try:
        return contenders.load_backend(name)
    except RuntimeError as err:
        pytest.skip(str(err))


def torch_or_skip():
    if not contenders.torch_available():
        pytest.skip(contenders.TORCH_NOTE)


def contender_or_skip(contender):
    """Skip the test where the contender cannot run: 'torch' without PyTorch, an
    incomplete backend ('student', the NumPy loop, always runs)."""
    if contender == "torch":
        torch_or_skip()
    elif contender != "student":
        backend_or_skip(contender)


# ---------------------------------------------------------- what did not run, and why
_NOT_RUN = []


def pytest_runtest_logreport(report):
    """Record skipped and failed benchmarks so BENCHMARKS.md can list them."""
    if report.skipped and report.when in ("setup", "call"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _NOT_RUN.append({"test": report.nodeid, "status": "skipped",
                         "reason": reason.replace("Skipped: ", "")})
    elif report.failed:
        lines = str(report.longrepr).strip().splitlines()
        _NOT_RUN.append({"test": report.nodeid, "status": "failed",
                         "reason": lines[-1] if lines else "failed"})


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("FASTNN_BENCH_NOT_RUN")
    if path:
        with open(path, "w") as f:
            json.dump(_NOT_RUN, f, indent=1)
