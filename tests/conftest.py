"""Shared fixtures: every available backend, both float types, dtype-aware tolerances."""
import os

import numpy as np
import pytest

# The Linear products run on Intel MKL where its wheel is installed (fastnn/mkl_blas.py),
# by default on Intel CPUs only: the suite runs them there on any CPU, so that the MKL
# path is tested wherever `make test` runs (FASTNN_BLAS=openblas in the environment still
# tests the OpenBLAS path)
os.environ.setdefault("FASTNN_BLAS", "mkl")

import fastnn  # noqa: E402
import simulator_runs  # noqa: E402

BACKENDS = fastnn.backends()
DTYPES = [np.float32, np.float64]


def tolerance(dtype):
    """(rtol, atol) for comparing a backend against the reference or PyTorch."""
    return (2e-4, 2e-5) if np.dtype(dtype) == np.float32 else (1e-9, 1e-11)


def torch_loss(fn, pred, target):
    """A torch loss function fn(pred, target) on copies of the arrays: (the loss as a
    float, its gradient w.r.t. pred as an array)."""
    import torch
    p = torch.from_numpy(np.array(pred, copy=True)).requires_grad_(True)
    loss = fn(p, torch.from_numpy(np.array(target, copy=True)))
    loss.backward()
    return loss.item(), p.grad.numpy()


def torch_to_numpy(value):
    """value with PyTorch's tensors as NumPy arrays, dicts, lists and tuples kept."""
    import torch
    if isinstance(value, torch.Tensor):
        return value.numpy()
    if isinstance(value, dict):
        return {k: torch_to_numpy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(torch_to_numpy(v) for v in value)
    return value


def assert_close(actual, expected, dtype, scale=1.0, err_msg=""):
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64),
                               np.asarray(expected, dtype=np.float64),
                               rtol=rtol, atol=atol * scale, err_msg=err_msg)


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Runs the test body with each available backend as the current one."""
    with fastnn.use_backend(request.param):
        yield request.param


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.hookimpl(trylast=True)  # after -k/-m deselection: only the runs still selected
def pytest_collection_modifyitems(session, config, items):
    """Start the CUDA-simulator and PTX-compile runs the selected tests need now, and run
    the tests that collect their results last (tests/simulator_runs.py says why)."""
    named = [item for item in items if _run_test_name(item) in simulator_runs.RUN_TESTS]
    marked = [item for item in items if _background_start(item) is not None]
    waiting = named + marked
    if waiting and not config.option.collectonly:
        items[:] = [item for item in items if item not in waiting] + waiting
        config.stash[simulator_runs.RUNS_KEY] = {
            **simulator_runs.start(_run_test_name(item) for item in named),
            **simulator_runs.start_marked(_background_start(item) for item in marked)}


def _run_test_name(item):
    """The test's name without its parameters (the key of simulator_runs.RUN_TESTS)."""
    return getattr(item, "originalname", item.name)


def _background_start(item):
    """The start function of the test's background_run mark, or None without one."""
    mark = item.get_closest_marker(simulator_runs.BACKGROUND_MARK)
    return None if mark is None else mark.args[0]


@pytest.fixture
def background_run(request):
    """The BackgroundRun started for the test's background_run mark (or None, where its
    start gave none; the exception its start raised is raised here)."""
    run = request.config.stash[simulator_runs.RUNS_KEY][_background_start(request.node)]
    if isinstance(run, Exception):
        raise run
    return run


def pytest_unconfigure(config):
    for run in config.stash.get(simulator_runs.RUNS_KEY, {}).values():
        if isinstance(run, simulator_runs.BackgroundRun):
            run.stop()
            run.log.close()
