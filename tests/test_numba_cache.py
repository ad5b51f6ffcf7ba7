"""`import fastnn` compiles nothing, loading the backend compiles nothing, and a second
process takes compiled kernels from Numba's on-disk cache instead of compiling: plain
kernels, and the generated block loop of an elementwise kernel's parallel variant
(config._compile_blocked)."""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("numba")

SCRIPT = r"""
import json, sys
import numpy as np
import fastnn
imported_numba = "numba" in sys.modules
from fastnn import backend
nb = backend.load("numba")
from fastnn.kernels.numba_cpu import activations, losses
kernels = [activations._relu.serial, losses._softmax_ce_labels.serial,
           activations._sigmoid.parallel]
compiled_at_load = sum(len(k.signatures) for k in kernels)
nb.relu(np.ones(10, np.float32))
nb.sigmoid(np.ones(40000, np.float32))  # above PARALLEL_MIN: the blocked variant
nb.softmax_cross_entropy(np.ones((4, 3), np.float32), np.zeros(4, np.int64))
print(json.dumps({
    "imported_numba": imported_numba,
    "compiled_at_load": compiled_at_load,
    "hits": sum(sum(k.stats.cache_hits.values()) for k in kernels),
    "misses": sum(sum(k.stats.cache_misses.values()) for k in kernels),
}))
"""


def _run(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_compiles_nothing_and_second_process_hits_cache(tmp_path):
    first = _run(tmp_path)
    assert not first["imported_numba"], "import fastnn imported numba"
    assert first["compiled_at_load"] == 0, "loading the numba backend compiled kernels"
    assert first["misses"] == 3 and first["hits"] == 0  # empty cache: compiled and saved
    second = _run(tmp_path)
    assert second["hits"] == 3 and second["misses"] == 0, second
