"""The cuda backend without a GPU: its op suite and model tests under Numba's CUDA
simulator (tests/simulator_runs.py: subprocesses that conftest.py starts when collection
ends; the two tests below, moved to the end of the session, collect their results), and
the clear errors of a machine without CUDA.
"""
import json
import os
import re
import subprocess
import sys

import pytest

import fastnn
from simulator_runs import ROOT, RUNS_KEY, SIM_ENV, in_background

HAS_CUDA = "cuda" in fastnn.backends()


@pytest.fixture
def simulator_runs(request):
    """{test name: BackgroundRun} started by conftest.py for the selected simulator tests."""
    return request.config.stash[RUNS_KEY]


def _result(simulator_runs, name):
    code, output = simulator_runs[name].result()
    assert code is not None and code >= 0, \
        f"the simulator run was stopped after 900 s:\n{output[-3000:]}"
    return code, output


def _failures(output, size=6000):
    """What a failed run printed about its failures: its FAILURES section (the warnings
    summary after it filled the last 6000 characters, which hid the assertion), else
    the tail."""
    start = output.find("= FAILURES =")
    if start < 0:
        return output[-size:]
    end = output.find("warnings summary", start)
    return output[start:end if end > start else None][:size] + "\n...\n" + output[-1000:]


def _counts(output):
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|error)",
                                                   output)}


def test_cuda_ops_and_conformance_under_simulator(simulator_runs):
    code, output = _result(simulator_runs, "test_cuda_ops_and_conformance_under_simulator")
    counts = _counts(output)
    assert code == 0, _failures(output)
    assert counts.get("passed", 0) >= 120, output[-3000:]
    assert not counts.get("failed") and not counts.get("skipped"), output[-3000:]


def test_models_on_the_gpu_under_simulator(simulator_runs):
    """Module.to('cuda') with layers, losses, optimizers and fit (tests/test_cuda_modules.py)."""
    code, output = _result(simulator_runs, "test_models_on_the_gpu_under_simulator")
    counts = _counts(output)
    assert code == 0, _failures(output)
    assert counts.get("passed", 0) >= 10, output[-3000:]
    assert not counts.get("failed") and not counts.get("skipped"), output[-3000:]


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
def test_without_cuda_the_backend_is_absent_with_a_clear_error():
    assert "cuda" not in fastnn.backends()
    with pytest.raises(ValueError, match="backend 'cuda' is not available here"):
        fastnn.set_backend("cuda")
    code = ("import fastnn.kernels.cuda\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "ImportError: fastnn's cuda backend needs a CUDA GPU" in proc.stderr
    assert "NUMBA_ENABLE_CUDASIM=1" in proc.stderr


@in_background(("-u", "-c", "import fastnn, json\n"
                "assert 'cuda' in fastnn.backends()\n"
                "print(json.dumps(fastnn.backend_info('cuda')))\n"), SIM_ENV)
def test_simulator_backend_info_names_the_gemm_and_device(background_run):
    code, output = background_run.result(timeout=120)
    assert code == 0, output
    info = json.loads([line for line in output.splitlines() if line.startswith("{")][-1])
    assert info["gemm"] == "numba" and "tiled shared-memory" in info["gemm_detail"]
    assert info["simulator"] is True and info["tile"] == 4 and info["threads_per_block"] == 32
    assert info["row_lanes"] == 8 and info["bn_threads"] == 32
    assert info["launch"] == "numba's CUDA simulator"
    assert info["reuses"] == {}


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_gpu_mlp_trains_on_digits_with_device_resident_parameters():
    """On a real GPU: the digits MLP moved with ``to("cuda")`` and trained through the layer
    API and ``fastnn.optim`` (device batches) reaches the CPU accuracy."""
    import numpy as np
    from numba import cuda
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    train, test = order[:1400], order[1400:]
    model = fastnn.models.MLP(64, [128], 10, activation="relu").to("cuda")
    opt = fastnn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = fastnn.nn.CrossEntropyLoss()
    for _ in range(20):
        for start in range(0, len(train), 64):
            idx = train[start:start + 64]
            opt.zero_grad()
            loss_fn(model(cuda.to_device(x[idx])), y[idx])
            model.backward(loss_fn.backward(), need_grad_in=False)
            opt.step()
    model.eval()
    logits = model(x[test])  # NumPy in, NumPy out
    assert isinstance(logits, np.ndarray)
    assert (logits.argmax(axis=1) == y[test]).mean() >= 0.95
