"""Run a short Python script under Numba's CUDA simulator, in a subprocess (the simulator
must be chosen before numba loads), with the small launch sizes the CUDA tests use: in
the background from the end of collection, read by the test at the end of the session
(tests/simulator_runs.py)."""
from simulator_runs import in_background

SIMULATOR_ENV = {"NUMBA_ENABLE_CUDASIM": "1", "FASTNN_CUDA_THREADS": "32",
                 "FASTNN_CUDA_MAX_BLOCKS": "2", "FASTNN_CUDA_BN_THREADS": "32"}

# Script lines that give the script a file path of its own, `path`, in a folder removed
# when it exits
TEMPORARY_PATH = [
    "import atexit, os, shutil, tempfile",
    "folder = tempfile.mkdtemp()",
    "atexit.register(shutil.rmtree, folder)",
    "path = os.path.join(folder, 'gpu.npz')",
]


def simulator_script(lines):
    """The mark of a test that reads the run of the script (lines joined) under the
    simulator (its background_run fixture); the script must print 'ok' last."""
    return in_background(("-c", "\n".join(lines)), SIMULATOR_ENV)


def assert_script_ok(run, timeout=120):
    """The script's run (a BackgroundRun) succeeded and printed 'ok' last."""
    code, output = run.result(timeout=timeout)
    assert code == 0 and output.strip().splitlines()[-1:] == ["ok"], output[-3000:]
