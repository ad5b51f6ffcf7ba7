"""What a wheel and an sdist of fastnn hold, checked without building either (the probe
built both from a fresh clone, installed the wheel into a fresh venv and ran the CLI from
outside the checkout). Pins what it fixed:

* ``python -m fastnn bench --quick`` from an installed wheel said the suite ships with the
  source tree only: the wheel now holds the quick table's modules of bench/ as
  ``fastnn._bench`` (setup.py's QUICK_BENCH_MODULES), and the full run says what to do.
* the sdist lacked bench/fake_cuda/driver.c (MANIFEST.in), so tests/test_cuda_fake_driver.py
  and the report's CUDA host-time rows failed in an unpacked sdist.
* the wheel carried the 10 generated C files (18 MB; include_package_data took the sdist's
  files), and ``project.license`` was the table form setuptools stops accepting in 2027.
* ``make`` on Python 3.9 installed for minutes, then failed on the tests' torch==2.13.0
  (no 3.9 wheels): it now stops at once saying so.
* ``bench --quick`` from a read-only site-packages without a writable home died on its
  copy kernel's cache=True ('no locator available').
"""
import ast
import fnmatch
import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

from fastnn import bench_cli, cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _setup_literal(name):
    """The value of setup.py's top-level assignment ``name`` (a literal)."""
    with open(os.path.join(ROOT, "setup.py")) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name
                                                for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"setup.py has no {name}")


def _setup_keyword(name):
    """The literal value of the ``setup(name=...)`` keyword in setup.py."""
    with open(os.path.join(ROOT, "setup.py")) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            for kw in node.keywords:
                if kw.arg == name:
                    return ast.literal_eval(kw.value)
    raise AssertionError(f"setup() has no {name}=")


def _relative_imports(module):
    """The bench/ modules ``bench/<module>.py`` imports (``from .x import``,
    ``from . import x``), and whether it imports ``bench`` by its absolute name."""
    with open(os.path.join(ROOT, "bench", module + ".py")) as f:
        tree = ast.parse(f.read())
    names, absolute = set(), False
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names |= ({node.module.split(".")[0]} if node.module
                      else {a.name for a in node.names})
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            absolute |= (node.module or "").split(".")[0] == "bench"
        elif isinstance(node, ast.Import):
            absolute |= any(a.name.split(".")[0] == "bench" for a in node.names)
    return names, absolute


def test_wheel_quick_bench_modules_hold_everything_the_quick_table_imports():
    shipped = set(_setup_literal("QUICK_BENCH_MODULES"))
    todo, seen = list(bench_cli.QUICK_IMPORTS) + ["__init__"], set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        names, absolute = _relative_imports(module)
        assert not absolute, f"bench/{module}.py imports 'bench' by name: not in the wheel"
        todo += names
    assert seen <= shipped, f"the wheel's fastnn._bench lacks {sorted(seen - shipped)}"
    assert _setup_keyword("package_dir")["fastnn._bench"] == "bench"


@pytest.fixture
def wheel_layout(tmp_path, monkeypatch):
    """This fastnn as the wheel installs it: no checkout's bench/, and fastnn._bench
    holding QUICK_BENCH_MODULES alone (copied from bench/)."""
    package = tmp_path / "_bench"
    package.mkdir()
    for module in _setup_literal("QUICK_BENCH_MODULES"):
        shutil.copy(os.path.join(ROOT, "bench", module + ".py"), package)
    monkeypatch.setattr(bench_cli, "_checkout_root", lambda: None)
    spec = importlib.util.spec_from_file_location(
        "fastnn._bench", package / "__init__.py", submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "fastnn._bench", module)
    spec.loader.exec_module(module)
    yield "fastnn._bench"
    for name in [n for n in sys.modules if n.startswith("fastnn._bench.")]:
        del sys.modules[name]


def test_bench_quick_runs_from_the_wheels_modules(wheel_layout, monkeypatch, capsys):
    """The CLI path of a wheel user, on a tiny table: one MLP step, one op, numpy only."""
    from fastnn._bench import ceilings, contenders, steps
    monkeypatch.setattr(bench_cli, "QUICK_OPS", (("relu", "course"),))
    monkeypatch.setattr(bench_cli, "QUICK_MAX_TIME", 0.001)
    monkeypatch.setattr(steps, "MLP_CONFIGS", {"mlp 16-8-4 relu b8": ((16, 8, 4), "relu", 8)})
    monkeypatch.setattr(ceilings, "measure_gemm_gflops", lambda *a, **k: 100.0)
    monkeypatch.setattr(ceilings, "measure_copy_gbps", lambda *a, **k: 10.0)
    monkeypatch.setattr(contenders, "backends", lambda: ["numpy"])
    monkeypatch.setattr(contenders, "set_threads", lambda n: None)
    monkeypatch.setattr(contenders, "torch_available", lambda: False)
    assert cli.main(["bench", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "mlp 16-8-4 relu b8" in out and "relu[course]" in out
    assert "not measured" not in out      # the student loop and the op ran from the copy
    assert sys.modules["fastnn._bench.steps"] is steps


def test_full_bench_from_a_wheel_says_what_to_do(wheel_layout, capsys):
    for argv in (["bench"], ["bench", "-k", "relu"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert "make bench" in err and "pip install -e ." in err and "--quick" in err


def _manifest_matches(path, lines):
    """Whether MANIFEST.in's include / recursive-include lines take ``path``."""
    for line in lines:
        words = line.split()
        if words[0] == "include":
            if any(fnmatch.fnmatch(path, p) for p in words[1:]):
                return True
        elif words[0] == "recursive-include":
            top = words[1].rstrip("/") + "/"
            if path.startswith(top) and any(fnmatch.fnmatch(os.path.basename(path), p)
                                            for p in words[2:]):
                return True
        else:
            raise AssertionError(f"MANIFEST.in: this test reads no {words[0]!r} lines")
    return False


def _tracked(*paths):
    try:
        out = subprocess.run(["git", "ls-files", "--", *paths], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (an unpacked sdist): nothing to compare it with")
    return out.split()


def test_sdist_manifest_takes_what_make_test_demo_and_bench_need():
    with open(os.path.join(ROOT, "MANIFEST.in")) as f:
        lines = [ln for ln in (raw.strip() for raw in f) if ln and not ln.startswith("#")]
    files = _tracked("bench", "tests", "docs", "Makefile", "BENCHMARKS.md", "LICENSE")
    assert "bench/fake_cuda/driver.c" in files
    missing = [p for p in files if not _manifest_matches(p, lines)]
    assert not missing, f"MANIFEST.in leaves out of the sdist: {missing}"


def test_wheel_package_data_takes_the_cython_headers_and_not_the_generated_c():
    patterns = _setup_keyword("package_data")["fastnn.kernels.cython"]
    headers = [os.path.basename(p) for p in _tracked("kernels/cython")
               if p.endswith((".pxd", ".h", ".pyx"))]
    assert headers and all(any(fnmatch.fnmatch(h, p) for p in patterns) for h in headers)
    assert not any(fnmatch.fnmatch("_dense.c", p) for p in patterns)
    assert _setup_keyword("include_package_data") is False


def test_pyproject_license_is_an_spdx_string_with_a_setuptools_that_reads_it():
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)
    assert project["project"]["license"] == "MIT"
    assert project["project"]["license-files"] == ["LICENSE"]
    assert "setuptools>=77" in project["build-system"]["requires"]   # (SPDX strings: 77)


def _makefile_python_check():
    """The Python snippet Makefile's install recipe runs with the venv's python."""
    with open(os.path.join(ROOT, "Makefile")) as f:
        line = next(ln for ln in f if "sys.version_info" in ln)
    return line.split("-c '", 1)[1].rsplit("'", 1)[0].replace("$(VENV)", ".venv")


def test_make_stops_at_once_on_a_python_the_tests_torch_pin_has_no_wheels_for(monkeypatch):
    """`make demo` on Python 3.9 (requires-python allows it) installed for minutes, then
    failed in pip's resolver: the test extra's torch==2.13.0 has no 3.9 wheels."""
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        assert "torch==2.13.0" in tomllib.load(f)["project"]["optional-dependencies"]["test"]
    check = _makefile_python_check()
    with pytest.raises(SystemExit) as stop:
        exec(check, {})
    assert stop.value.code is False    # this Python (3.10 or newer) passes: status 0
    monkeypatch.setattr(sys, "version_info", (3, 9, 18, "final", 0))
    with pytest.raises(SystemExit) as stop:
        exec(check, {})
    assert "Python 3.10 or newer" in str(stop.value.code)
    assert "3.9" in str(stop.value.code) and "pip install ." in str(stop.value.code)


def test_quick_copy_kernel_caches_where_fastnns_kernels_do(monkeypatch):
    """From a wheel in a read-only site-packages with no writable home, `bench --quick`
    died in its copy ceiling: its kernel asked numba for cache=True, and numba had no
    directory to put it ('cannot cache function ... no locator available')."""
    from numba.core.caching import NullCache

    from fastnn.kernels.numba_cpu import config
    bench_cli._import_bench()
    from bench import ceilings
    monkeypatch.setitem(config.OPTIONS, "cache", False)   # fastnn found nowhere to cache
    assert isinstance(ceilings._numba_copy()._cache, NullCache)
    monkeypatch.setitem(config.OPTIONS, "cache", True)
    assert not isinstance(ceilings._numba_copy()._cache, NullCache)


def test_demo_without_fashion_mnist_says_how_a_wheel_user_gets_it(monkeypatch, capsys,
                                                                   tmp_path):
    """The demo's fallback named only `make data`, which a wheel's user does not have."""
    from fastnn.data import mnist
    monkeypatch.setattr(mnist, "find_files", lambda *a, **k: None)
    ran = []
    monkeypatch.setattr(cli, "run_train", lambda args: ran.append(args.dataset) or 0)
    assert cli.main(["demo", "--epochs", "1", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert ran == ["digits"]
    assert "download=True" in out and "dataset-fashion-mnist" in out and "make data" in out
