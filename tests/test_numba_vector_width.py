"""The numba backend asks LLVM for 512-bit vectors on an AVX-512 CPU (its tuning for
those Xeons prefers 256), by Numba's process-wide target features, only before Numba's
first compile, and never over the user's own NUMBA_CPU_FEATURES or FASTNN_NUMBA_512=0."""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("numba")

_PROBE = """
import json, os, numba
from fastnn.kernels.numba_cpu import config
assert config.info()["vectors_512_bit"] == config.PREFERS_512_BIT
print(json.dumps({"set": config.PREFERS_512_BIT, "features": numba.config.CPU_FEATURES,
                  "env": os.environ.get("NUMBA_CPU_FEATURES")}))
"""


def _probe(first="", **env):
    """_PROBE's result in a fresh process that runs ``first`` before it, with env set and
    neither variable of the parent's environment."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ("NUMBA_CPU_FEATURES", "FASTNN_NUMBA_512")}
    environ.update(env)
    out = subprocess.run([sys.executable, "-c", first + _PROBE], env=environ, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _host_has_avx512():
    from llvmlite import binding as llvm
    return "+avx512f" in llvm.get_host_cpu_features().flatten().split(",")


def test_host_features_without_the_256_bit_preference_on_avx512():
    result = _probe()
    if not _host_has_avx512():
        assert result == {"set": False, "features": None, "env": None}
        return
    assert result["set"] is True
    assert result["features"] == result["env"]
    assert result["features"].endswith(",-prefer-256-bit")
    assert "+avx512f" in result["features"].split(",")


def test_users_features_are_kept():
    result = _probe(NUMBA_CPU_FEATURES="+sse2")
    assert result == {"set": False, "features": "+sse2", "env": "+sse2"}


def test_switched_off_by_environment():
    result = _probe(FASTNN_NUMBA_512="0")
    assert result == {"set": False, "features": None, "env": None}


def test_not_after_numba_has_compiled():
    result = _probe(first="import numba\nnumba.njit(lambda x: x + 1)(1)\n")
    assert result == {"set": False, "features": None, "env": None}
