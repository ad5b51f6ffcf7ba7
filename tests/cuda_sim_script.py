"""Run a short Python script under Numba's CUDA simulator, in a subprocess (the simulator
must be chosen before numba loads), with the small launch sizes the CUDA tests use."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIMULATOR_ENV = {"NUMBA_ENABLE_CUDASIM": "1", "FASTNN_CUDA_THREADS": "32",
                 "FASTNN_CUDA_MAX_BLOCKS": "2", "FASTNN_CUDA_BN_THREADS": "32"}


def assert_script_ok(lines, *argv, timeout=120):
    """Run the script (lines joined) with argv under the simulator; it must print 'ok'."""
    env = dict(os.environ, **SIMULATOR_ENV)
    env.pop("FASTNN_BACKEND", None)
    done = subprocess.run([sys.executable, "-c", "\n".join(lines), *map(str, argv)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
