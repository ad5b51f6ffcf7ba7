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
kernels = [activations._relu.serial, losses._softmax_ce.serial,
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


BITS_SCRIPT = r"""
import sys
import numpy as np
from fastnn import backend
nb = backend.load("numba")
rng = np.random.default_rng(0)
n = 2000
out = {}
for dt in (np.float32, np.float64):
    p, g, m = (rng.standard_normal(n).astype(dt) for _ in range(3))
    v, u = (np.abs(rng.standard_normal(n)).astype(dt) for _ in range(2))
    nb.adaptive_moments_update(p, g, m, v, 1e-3, 1e-4, 0.9, 0.999, 1.3, 1e-8, 0.1)  # NAdam, L2
    a, b = (np.abs(rng.standard_normal(n)).astype(dt) for _ in range(2))
    q = rng.standard_normal(n).astype(dt)
    nb.adadelta_update(q, g, a, b, 1.0, 0.9, 1e-6, 0.1)
    out.update({f"{dt.__name__}_{k}": x for k, x in
                dict(p=p, m=m, v=v, q=q, a=a, b=b).items()})
x = rng.standard_normal((512, 8, 36))   # float64 batch norm, the parallel (parfor) variant
mean, invstd = np.empty(8), np.empty(8)
out["bn_y"] = nb.batchnorm_forward(x, np.ones(8), np.zeros(8), np.zeros(8), np.ones(8),
                                   save_mean=mean, save_invstd=invstd)[0]
out["bn_mean"], out["bn_invstd"] = mean, invstd
np.savez(sys.argv[1], **out)
"""


def test_kernels_loaded_from_the_cache_give_the_bits_of_a_fresh_compile(tmp_path):
    """The process that compiles a kernel and one that loads it from the disk cache run
    the same machine code: Numba links a callee into its caller as a weak copy that the
    caller's optimization changes, and the compiling process bound it to the callee's
    own compile (config._own_copies_of_callees). NAdam's and Adadelta's second moments
    (1 ulp on ~30% of values) and batch norm's float64 statistics differed."""
    import numpy as np
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    runs = []
    for name in ("cold", "warm"):
        path = tmp_path / (name + ".npz")
        done = subprocess.run([sys.executable, "-c", BITS_SCRIPT, str(path)], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        runs.append(np.load(path))
    cold, warm = runs
    assert sorted(cold.files) == sorted(warm.files)
    differ = [k for k in cold.files if cold[k].tobytes() != warm[k].tobytes()]
    assert not differ, differ
    torch = pytest.importorskip("torch")
    # the values are PyTorch's order: v.mul_(beta2).addcmul_(g', g', value=1 - beta2)
    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64):
        p, g, _ = (rng.standard_normal(2000).astype(dt) for _ in range(3))
        v = np.abs(rng.standard_normal(2000)).astype(dt)
        rng.standard_normal((3, 2000))  # u, a, b
        rng.standard_normal(2000)       # q
        gd = torch.tensor(g).add(torch.tensor(p), alpha=0.1)
        want = torch.tensor(v).mul_(0.999).addcmul_(gd, gd, value=1 - 0.999).numpy()
        assert (cold[dt.__name__ + "_v"] == want).mean() > 0.99


def test_the_backend_refuses_a_second_name_that_would_poison_the_cache():
    """From the repository root ``kernels`` is importable as a top-level package too.
    Kernels compiled under that name were saved in the shared disk cache naming
    ``kernels.numba_cpu`` modules, and every later fastnn process run from anywhere else
    failed loading them (ModuleNotFoundError: No module named 'kernels'); the backend is
    now an ImportError under any name but fastnn.kernels.numba_cpu."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", "import kernels.numba_cpu"], cwd=root,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert "ImportError: the numba backend is fastnn.kernels.numba_cpu" in done.stderr, done.stderr
    done = subprocess.run([sys.executable, "-c", "import fastnn.kernels.numba_cpu"], cwd=root,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
