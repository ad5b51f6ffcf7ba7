"""The numba backend's disk cache serves no kernel built from other helper sources
(kernels/numba_cpu/cache_stamp.py): Numba watches only a kernel's own file, and the
kernels inline vmath, blas, select, ... and config's generated loops."""
import ast
import importlib.util
import os
import shutil
import sys

import pytest

numba = pytest.importorskip("numba")

from fastnn.kernels.numba_cpu import cache_stamp, config  # noqa: E402,F401  (config installs it)

BACKEND = os.path.dirname(os.path.abspath(cache_stamp.__file__))
PYTHON_ONLY = {"_buffers", "cache_lock", "cache_stamp"}   # nothing of theirs is compiled

PROBE = "def add_one(x):\n    return x + 1\n"


def _siblings_imported(path):
    """The modules of the backend that the module at path imports (``from . import x``,
    ``from .x import y``, at any depth of the module)."""
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


def test_the_digest_covers_every_module_another_one_imports():
    imported = set()
    for name in os.listdir(BACKEND):
        if name.endswith(".py") and name != "__init__.py":   # (__init__ only re-exports)
            imported |= _siblings_imported(os.path.join(BACKEND, name)) - {name[:-3]}
    assert imported - PYTHON_ONLY == set(cache_stamp.HELPERS)


def test_the_digest_changes_with_any_helper_source(tmp_path):
    for name in cache_stamp.HELPERS:
        shutil.copy(os.path.join(BACKEND, name + ".py"), tmp_path)
    assert cache_stamp.helpers_digest(str(tmp_path)) == cache_stamp.current_digest()
    for name in ("vmath", "select"):
        path = tmp_path / (name + ".py")
        source = path.read_text()
        path.write_text(source + "# an edit\n")
        assert cache_stamp.helpers_digest(str(tmp_path)) != cache_stamp.current_digest()
        path.write_text(source)
    assert cache_stamp.helpers_digest(str(tmp_path)) == cache_stamp.current_digest()


def _probe(directory):
    """A function of a module in a directory named like the backend's (so that its
    cache is stamped as the kernels' are), jitted with the disk cache."""
    path = directory / "numba_cpu" / "stamp_probe.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text(PROBE)
    spec = importlib.util.spec_from_file_location("stamp_probe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.add_one


def _cache_hit(py_func):
    """Whether a fresh dispatcher of py_func loaded its int64 compile from the disk
    cache (else it compiled, and saved)."""
    dispatcher = numba.njit(cache=True)(py_func)
    assert dispatcher(1) == 2
    hits = sum(dispatcher.stats.cache_hits.values())
    misses = sum(dispatcher.stats.cache_misses.values())
    assert hits + misses == 1
    return hits == 1


def test_a_cache_saved_under_other_helper_sources_is_not_loaded(tmp_path, monkeypatch):
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "cache"))
    add_one = _probe(tmp_path)
    digest = cache_stamp.current_digest()
    assert not _cache_hit(add_one)   # compiled and saved
    assert _cache_hit(add_one)       # same sources: loaded
    # as after an edit of vmath.py: the saved kernel is stale
    monkeypatch.setattr(cache_stamp, "_digest", "edited")
    assert not _cache_hit(add_one)
    assert _cache_hit(add_one)       # saved again under the new digest
    # ... and back: the index now holds the edited sources' kernel, not this one
    monkeypatch.setattr(cache_stamp, "_digest", digest)
    assert not _cache_hit(add_one)
    assert _cache_hit(add_one)
    # each save under other sources replaced the stale entry: one data file, not three
    [cache] = os.listdir(tmp_path / "cache")
    saved = sorted(f for f in os.listdir(tmp_path / "cache" / cache) if ".nb" in f)
    base = "stamp_probe.add_one-1.py%d%d" % sys.version_info[:2]
    assert saved == [base + ".1.nbc", base + ".nbi"], saved
