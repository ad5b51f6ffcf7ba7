"""How the 'cython' backend is built and loaded.

The debug build: ``FASTNN_CYTHON_DEBUG=1 python setup.py build_ext --inplace`` turns
Cython's boundscheck, wraparound and initializedcheck back on in every kernel
(setup.py), so an out-of-range index raises IndexError instead of reading or writing
past a buffer. ``backend_info()['debug']`` says which build is loaded; run the suite
against a debug build to catch indexing bugs, then rebuild without the variable.
"""
import glob
import importlib.machinery
import importlib.util
import os
import platform
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn import backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNEL_MODULES = ("_activations", "_batchnorm", "_conv", "_dense", "_depthwise", "_dropout",
                  "_layernorm", "_losses", "_openmp", "_optim", "_softmax")

pytestmark = pytest.mark.skipif("cython" not in fastnn.backends(),
                                reason="the Cython extensions are not built")


def test_every_kernel_family_is_a_compiled_extension():
    """No start-up compile: each family is an ahead-of-time built shared library."""
    for name in KERNEL_MODULES:
        spec = importlib.util.find_spec(f"fastnn.kernels.cython.{name}")
        assert spec is not None, name
        assert isinstance(spec.loader, importlib.machinery.ExtensionFileLoader), name


def test_fresh_process_loads_backend_without_a_compiler():
    """Importing the backend and running an op in a new process loads none of the
    machinery that compiles Cython (pyximport, Cython.Build, the compiler's Main):
    the first op runs on the prebuilt code. (SciPy itself imports the `cython`
    shadow module when it is installed, which compiles nothing.)"""
    code = ("import sys, numpy as np, fastnn\n"
            "from fastnn import backend\n"
            "K = backend.load('cython')\n"
            "K.relu(np.ones(4, np.float32))\n"
            "print(sorted(m for m in sys.modules if m.startswith("
            "('pyximport', 'Cython.Build', 'Cython.Compiler.Main'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


def test_backend_info_reports_the_build():
    info = fastnn.backend.backend_info("cython")
    from fastnn.kernels.cython import _openmp
    assert info["openmp"] == _openmp.openmp_enabled()
    assert info["debug"] == _openmp.bounds_checked()
    assert info["num_threads"] == _openmp.get_max_threads() >= 1
    assert info["fma"] == _openmp.hardware_fma()
    assert info["simd"] in ("avx512f", "avx2", "avx", "sse4.2", "sse2", "neon", "none")
    # the suite may be told which build to expect (Makefile: test-cython-debug and
    # test-cython-portable): a variable the build read, set when the tests run
    if "FASTNN_CYTHON_DEBUG" in os.environ:
        assert info["debug"] == (os.environ["FASTNN_CYTHON_DEBUG"] == "1")
    if "FASTNN_NO_OPENMP" in os.environ:
        assert info["openmp"] == (os.environ["FASTNN_NO_OPENMP"] != "1")
    if os.environ.get("FASTNN_NATIVE") == "0" and platform.machine() == "x86_64":
        assert (info["fma"], info["simd"]) == (False, _portable_simd())


def _portable_simd():
    """What a FASTNN_NATIVE=0 build on x86-64 compiles for: x86-64-v2 (SSE4.2, no FMA)
    where $CC knows that target (gcc >= 11, clang >= 12), else x86-64's baseline."""
    cc = shutil.which(os.environ.get("CC", "cc"))
    knows_v2 = cc is not None and subprocess.run(
        [cc, "-march=x86-64-v2", "-E", "-x", "c", "-"], input="", capture_output=True,
        text=True).returncode == 0
    return "sse4.2" if knows_v2 else "sse2"


def test_set_num_threads_reaches_openmp():
    """fastnn.set_num_threads sets the kernels' OpenMP count; a build without OpenMP
    runs every kernel on the calling thread, and says so: 1 whatever the setting."""
    before = fastnn.threads.get_num_threads()
    try:
        backend.load("cython")
        serial = not fastnn.backend.backend_info("cython")["openmp"]
        fastnn.set_num_threads(1)
        assert fastnn.backend.backend_info("cython")["num_threads"] == 1
        fastnn.set_num_threads(2)
        assert fastnn.backend.backend_info("cython")["num_threads"] == (1 if serial else 2)
        assert fastnn.threads.get_num_threads() == 2   # (numba's loops and BLAS use it)
    finally:
        fastnn.set_num_threads(before)


def _build_openmp_helper(tmp_path, **env):
    """Build kernels/cython/_openmp.pyx alone through setup.py with ``env``, in a tree
    of its own under tmp_path (made on the first call); returns the path of the shared
    object."""
    # a fresh tree: cythonize reuses a generated .c whose .pyx did not change
    src = tmp_path / "kernels" / "cython"
    if not src.exists():
        src.mkdir(parents=True)
        headers = glob.glob(os.path.join(ROOT, "kernels", "cython", "*.h"))
        for name in ["_openmp.pyx", "_common.pxd"] + [os.path.basename(h) for h in headers]:
            shutil.copy(os.path.join(ROOT, "kernels", "cython", name), src / name)
        for name in ("setup.py", "pyproject.toml"):
            shutil.copy(os.path.join(ROOT, name), tmp_path / name)
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", "out"],
                   cwd=tmp_path, env=dict(os.environ, **env), check=True,
                   capture_output=True)
    (so,) = (tmp_path / "out" / "fastnn" / "kernels" / "cython").glob("_openmp*.so")
    return str(so)


def _probe(so, expression):
    probe = ("import importlib.util as u\n"
             f"s = u.spec_from_file_location('fastnn.kernels.cython._openmp', {so!r})\n"
             "m = u.module_from_spec(s); s.loader.exec_module(m)\n"
             f"print({expression})\n")
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler")
def test_debug_flag_turns_bounds_checks_on(tmp_path):
    """Build the smallest extension through setup.py with FASTNN_CYTHON_DEBUG=1 and
    probe it; the release build this suite runs on is probed in
    test_backend_info_reports_the_build."""
    so = _build_openmp_helper(tmp_path, FASTNN_CYTHON_DEBUG="1")
    assert _probe(so, "m.bounds_checked()") == "True"


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler")
def test_a_portable_serial_build_and_back(tmp_path):
    """FASTNN_NATIVE=0 FASTNN_NO_OPENMP=1 (the Makefile's test-cython-portable build)
    compiles without -march=native (on x86-64: for x86-64-v2, SSE4.2 without FMA,
    whose vector rounding lets the exp/tanh/sigmoid loops vectorize) and serial: the helper
    offers no callback for OpenBLAS (its stub would run jobs that wait on each other
    one after the other), and fastnn/blas_pool.py tells that build from the file alone,
    before loading it. Building again with the defaults in the same tree compiles again:
    neither setting changes a source file, and build_ext alone kept the extension it
    had (setup.py's flavour stamp)."""
    from fastnn import blas_pool
    so = _build_openmp_helper(tmp_path, FASTNN_NATIVE="0", FASTNN_NO_OPENMP="1")
    assert _probe(so, "(m.openmp_enabled(), m.blas_jobs_callback())") == "(False, 0)"
    assert not blas_pool.built_with_openmp(so)
    if platform.machine() == "x86_64":
        expected = (False, _portable_simd())
        assert _probe(so, "(m.hardware_fma(), m.simd())") == repr(expected)
    import fastnn.kernels.cython._openmp as built
    if built.openmp_enabled():
        assert blas_pool.built_with_openmp(built.__file__)
        assert built.blas_jobs_callback() != 0
    serial_build = os.stat(so).st_mtime_ns
    assert _build_openmp_helper(tmp_path, FASTNN_NATIVE="1", FASTNN_NO_OPENMP="0") == so
    assert os.stat(so).st_mtime_ns != serial_build


@pytest.mark.skipif(platform.machine() != "x86_64" or _portable_simd() != "sse4.2",
                    reason="needs x86-64 and a compiler that knows x86-64-v2")
def test_a_portable_build_without_x86_64_v2_keeps_the_baseline(tmp_path):
    """A compiler without the x86-64-v2 target (gcc < 11, clang < 12; here a wrapper
    that refuses the name) builds FASTNN_NATIVE=0 for x86-64's baseline, SSE2. Switching
    between that build and the v2 one compiles again (the flavour stamp names the
    target), as a tree last built portable by a setup.py that knew no v2 needs."""
    refuses_v2 = tmp_path / "cc-without-v2"
    refuses_v2.write_text('#!/bin/sh\ncase "$*" in *x86-64-v2*) exit 1;; esac\n'
                          f'exec {shutil.which(os.environ.get("CC", "cc"))} "$@"\n')
    refuses_v2.chmod(0o755)
    so = _build_openmp_helper(tmp_path, FASTNN_NATIVE="0", FASTNN_NO_OPENMP="1")
    assert _probe(so, "m.simd()") == "sse4.2"
    v2_build = os.stat(so).st_mtime_ns
    assert _build_openmp_helper(tmp_path, FASTNN_NATIVE="0", FASTNN_NO_OPENMP="1",
                                CC=str(refuses_v2)) == so
    assert os.stat(so).st_mtime_ns != v2_build
    assert _probe(so, "(m.hardware_fma(), m.simd())") == "(False, 'sse2')"


def test_debug_build_raises_on_out_of_range_index():
    """Under the debug build a kernel handed a buffer too short raises IndexError; the
    release build has no such check (the ops layer validates shapes instead). A kernel on
    memoryviews: the entries that read ndarray pointers (rows_forward, which this test
    called) refuse a wrong shape with ValueError in both builds."""
    from fastnn.kernels.cython import _conv, _openmp
    if not _openmp.bounds_checked():
        assert fastnn.backend.backend_info("cython")["debug"] is False
        return
    grad_out = np.ones((1, 1, 3), np.float32)
    with pytest.raises(IndexError):   # indices one short of grad_out's 3
        _conv._max_pool_bwd(grad_out, np.zeros((1, 1, 2), np.int64),
                            np.empty((1, 1, 4), np.float32))
