"""The cuda backend's suites under Numba's CUDA simulator, run as pytest subprocesses
(NUMBA_ENABLE_CUDASIM must be set before numba is imported, so the main test process
stays unaffected), and the compile of every CUDA kernel to PTX (tests/cuda_ptx_compile.py,
a subprocess: it pretends a GPU is present).

The simulator runs a block's threads under the GIL, on one core, for minutes, and the
PTX compile runs numba's CUDA compiler on one core for about a minute; the main suite
leaves the second core idle for much of its time (numba compiles, Python-level tests).
So conftest.py starts these runs when collection ends, at a lower CPU priority than the
suite, and moves the tests that collect their results (tests/test_cuda_sim.py,
tests/test_cuda_ptx.py) to the end of the session: the work fills the idle core instead
of adding its minutes to the suite's. Shorter subprocesses (a simulator script, a process
on the stand-in CUDA driver: seconds each) do the same through a mark on their test
(BACKGROUND_MARK, in_background).

The launch sizes are shrunk in the subprocesses (32 threads per block, BatchNorm's too,
at most 2 blocks, 8 threads per row of the row-wise kernels, 4x4 GEMM tiles) so every
grid-stride loop, multi-block grid, multi-row block and multi-tile product runs.
"""
import functools
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SIM_ENV = {"NUMBA_ENABLE_CUDASIM": "1", "FASTNN_CUDA_THREADS": "32",
           "FASTNN_CUDA_MAX_BLOCKS": "2", "FASTNN_CUDA_BN_THREADS": "32",
           "FASTNN_CUDA_ROW_LANES": "8",
           "FASTNN_CUDA_TILE": "4"}

# The shared conformance suite's tests that are cheap under the simulator: the op table,
# reuse declarations, error checks and edge cases. Its numeric tests at full size (up
# to 256 x 1024) take minutes there; tests/test_cuda_ops.py covers every op on small
# shapes instead.
CONFORMANCE_K = ("cuda and (table or reuse or bad_input or failed_update or non_contiguous "
                 "or out_buffers or constant_feature or extremes or nan_propagates "
                 "or threshold_beyond or far_from_0)")

# {name of the test in tests/test_cuda_sim.py that checks a run: the run's pytest arguments}
SIMULATOR_RUNS = {
    "test_cuda_ops_and_conformance_under_simulator": (
        "tests/test_cuda_ops.py", "tests/test_conformance.py",
        "-k", f"test_cuda_ops or ({CONFORMANCE_K})"),
    "test_models_on_the_gpu_under_simulator": ("tests/test_cuda_modules.py", "-m", "not gpu"),
}

# The launch sizes of the runs of tests/test_probe_cuda_user.py and
# tests/test_probe_cuda_layers.py, smaller still (one block of 8 threads, 8x8 GEMM tiles:
# the simulator starts a Python thread per GPU thread)
USER_SIM_ENV = {"NUMBA_ENABLE_CUDASIM": "1", "FASTNN_CUDA_THREADS": "8",
                "FASTNN_CUDA_MAX_BLOCKS": "1", "FASTNN_CUDA_BN_THREADS": "8",
                "FASTNN_CUDA_ROW_LANES": "8", "FASTNN_CUDA_TILE": "8"}

# {name of the test (of every test of that name, parametrized) that checks a run:
# (python's arguments for the script, the variables it sets in the suite's environment)}
# (-u: the output lines the tests read reach the log whole, not cut by a buffer's flush
# between stderr lines)
SCRIPT_RUNS = {
    "test_every_cuda_kernel_compiles_to_ptx": (("-u", "tests/cuda_ptx_compile.py"), {}),
    "test_cuda_user_check": (("-u", "tests/test_probe_cuda_user.py"), USER_SIM_ENV),
    "test_cuda_layers_check": (("-u", "tests/test_probe_cuda_layers.py"), USER_SIM_ENV),
}

# The tests that collect a run's result, which conftest.py moves to the end
RUN_TESTS = {**SIMULATOR_RUNS, **SCRIPT_RUNS}

# The mark of the other tests that read a subprocess run in the background
# (pytest.mark.background_run.with_args(start): start is a function, which a mark called
# with it alone would decorate; made by in_background or given a start of its own):
# conftest.py calls start() -> BackgroundRun once for every start of the selected tests
# when collection ends, moves those tests to the end too, and the background_run fixture
# gives each its run
BACKGROUND_MARK = "background_run"

# Where conftest.py keeps {test name or start function: BackgroundRun} (config.stash)
RUNS_KEY = pytest.StashKey()

# How much lower than the suite's the background runs' CPU priority is (os.nice)
NICENESS = 10


class BackgroundRun:
    """One started Python subprocess (python followed by args, in env) and the file its
    output, stdout and stderr, goes to (a file, not a pipe: a full pipe would stall the
    run)."""

    def __init__(self, args, env):
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, text=True,
            preexec_fn=(lambda: os.nice(NICENESS)) if hasattr(os, "nice") else None)

    def result(self, timeout=900):
        """(exit status, output) once the run ends; the status is None when it was
        stopped after timeout seconds."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            self.log.seek(0)
            return None, self.log.read()
        self.log.seek(0)
        return self.proc.returncode, self.log.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def simulator_run(*args):
    """A BackgroundRun of pytest with args under the simulator."""
    env = dict(os.environ, **SIM_ENV)
    env.pop("FASTNN_BACKEND", None)
    return BackgroundRun(["-m", "pytest", "-q", "-p", "no:cacheprovider", *args], env)


def script_run(args, variables):
    """A BackgroundRun of python with args, variables set; a run under the simulator
    chooses its own backend (FASTNN_BACKEND unset, unless variables set it)."""
    env = dict(os.environ, **variables)
    if variables.get("NUMBA_ENABLE_CUDASIM") == "1" and "FASTNN_BACKEND" not in variables:
        env.pop("FASTNN_BACKEND", None)
    return BackgroundRun(args, env)


def in_background(args, variables):
    """The mark of a test that reads script_run(args, variables) (its background_run
    fixture), started when collection ends."""
    return pytest.mark.background_run.with_args(
        functools.partial(script_run, tuple(args), dict(variables)))


def start(names):
    """{name: BackgroundRun} for the SIMULATOR_RUNS and SCRIPT_RUNS named, started now."""
    return {name: simulator_run(*SIMULATOR_RUNS[name]) if name in SIMULATOR_RUNS
            else script_run(*SCRIPT_RUNS[name]) for name in set(names)}


def start_marked(starts):
    """{start: its BackgroundRun, or the exception it raised} for the background_run
    marks' start functions, each called once, now (a start that fails, a stand-in driver
    that does not build, fails the tests that read its run, not the collection)."""
    runs = {}
    for start in dict.fromkeys(starts):
        try:
            runs[start] = start()
        except Exception as exc:  # noqa: BLE001 - raised again in those tests
            runs[start] = exc
    return runs


# ---------------------------------- scripts of check_* functions (tests/test_probe_cuda_*.py)

def run_checks(namespace, names=()):
    """{check name: None, or 'ErrorType: message' and the end of its traceback} for the
    check_* functions of namespace (a module's globals(), in definition order), or for
    those named; the numba backend current (the host twins' backend). A script run prints
    it as its last line of JSON."""
    import traceback

    import fastnn
    fastnn.set_backend("numba")
    results = {}
    for name, check in list(namespace.items()):
        if name.startswith("check_") and callable(check) and (not names or name in names):
            try:
                check()
                results[name] = None
            except Exception as e:  # noqa: BLE001 - reported to the pytest side
                results[name] = f"{type(e).__name__}: {e}\n{traceback.format_exc()[-1500:]}"
    return results


def read_check_run(request, name, timeout=300):
    """The {check name: None or its error} that SCRIPT_RUNS[name]'s run printed (started
    in the background by conftest.py when collection ends)."""
    if importlib.util.find_spec("numba") is None:
        pytest.skip("numba is not installed")
    code, output = request.config.stash[RUNS_KEY][name].result(timeout=timeout)
    assert code == 0, output[-3000:]
    return json.loads([line for line in output.splitlines() if line.startswith("{")][-1])
