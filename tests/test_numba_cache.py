"""`import fastnn` compiles nothing, loading the backend compiles nothing, and a second
process takes compiled kernels from Numba's on-disk cache instead of compiling: plain
kernels, and the generated block loop of an elementwise kernel's parallel variant
(config._compile_blocked)."""
import json
import os
import subprocess
import sys
import tempfile

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


def test_cache_location_for_checkouts_installs_and_read_only_places(tmp_path):
    """An installed package caches in the user's cache (nothing written into
    site-packages); a checkout beside its kernels; a read-only place falls through to
    the next writable one, and with none the kernels compile in memory, no crash."""
    from fastnn.kernels.numba_cpu.config import cache_dir_for
    checkout = tmp_path / "repo" / "kernels" / "numba_cpu"
    installed = tmp_path / "site-packages" / "fastnn" / "kernels" / "numba_cpu"
    for d in (checkout, installed):
        d.mkdir(parents=True)
    (tmp_path / "repo" / "setup.py").write_text("")
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    user = str(tmp_path / "xdg" / "fastnn" / "numba")
    anywhere = lambda path: True  # noqa: E731
    assert cache_dir_for(str(checkout), env, anywhere) == (None, True)
    assert cache_dir_for(str(installed), env, anywhere) == (user, True)
    assert cache_dir_for(str(checkout), dict(env, NUMBA_CACHE_DIR="/x"), anywhere) == (None,
                                                                                       True)
    not_in_tree = lambda path: "__pycache__" not in path  # noqa: E731
    assert cache_dir_for(str(checkout), env, not_in_tree) == (user, True)
    nowhere = lambda path: False  # noqa: E731
    place, caching = cache_dir_for(str(installed), env, nowhere, private=anywhere)
    assert caching and os.path.dirname(place) == tempfile.gettempdir()
    assert os.path.basename(place).startswith("fastnn-numba-")
    assert cache_dir_for(str(installed), env, nowhere, private=nowhere) == (None, False)


def test_a_shared_temporary_cache_must_be_this_users_alone(tmp_path):
    """Numba's cache index files are pickles: a directory in the shared temporary
    directory that another user made, or anyone may write, is not used."""
    from fastnn.kernels.numba_cpu.config import private_dir
    mine = tmp_path / "mine"
    assert private_dir(str(mine)) and (os.stat(mine).st_mode & 0o777) == 0o700
    open_to_all = tmp_path / "open"
    open_to_all.mkdir()
    os.chmod(open_to_all, 0o777)
    assert not private_dir(str(open_to_all))
    (tmp_path / "file").write_text("")
    assert not private_dir(str(tmp_path / "file"))
