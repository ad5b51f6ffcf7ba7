"""Build: the fastnn package, with kernels/ shipped as fastnn.kernels and the Cython
kernels compiled with OpenMP (falls back to a serial build where OpenMP is missing)."""
import glob
import os
import platform
import sys

import numpy
from Cython.Build import cythonize
from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py as _build_py
from setuptools.extension import Extension


NATIVE = os.environ.get("FASTNN_NATIVE", "1") == "1"


def _compiler_accepts(flags, source="int main(void){return 0;}\n"):
    """True when $CC (default cc) compiles and links ``source`` with ``flags``."""
    import shutil
    import subprocess
    import tempfile
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "t.c")
        with open(src, "w") as f:
            f.write(source)
        result = subprocess.run([cc, *flags, src, "-o", os.path.join(tmp, "t")],
                                capture_output=True)
        return result.returncode == 0


def _portable_arch_flags():
    """The target of a FASTNN_NATIVE=0 build. On x86-64: x86-64-v2 (SSE4.2 and POPCNT,
    every x86-64 CPU since about 2009, NumPy 2.4's own baseline), which has SSE4.1's
    vector rounding, so gcc vectorizes the float32 exp/tanh/sigmoid loops (with baseline
    SSE2 their rintf stayed a scalar call: float32 sigmoid over 128x784 682 us, 298 with
    v2, 71 native on an AVX2 EPYC); no FMA (v2 has none: _fastnn_math.h's fallbacks run,
    and float64 exp, tanh and sigmoid still call libm). Where the compiler lacks the name
    (gcc < 11, clang < 12), and on other machines, the compiler's default target."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return []
    flags = ["-march=x86-64-v2"]
    return flags if _compiler_accepts(flags) else []


PORTABLE_ARCH = [] if NATIVE else _portable_arch_flags()


def _compile_flags():
    # Reassociation lets gcc vectorize reductions (sums over a plane); no -ffinite-math
    # and no -ffast-math, so NaN and inf still propagate as in the numba backend's flags.
    # -fno-math-errno: sqrt(-1) is still NaN, but a loop calling sqrt no longer keeps a
    # scalar libm call for errno's sake (Adam's update ran unvectorized, 2.6x numba's time).
    flags = ["-O3", "-fassociative-math", "-fno-signed-zeros", "-fno-trapping-math",
             "-fno-math-errno"]
    return flags + (["-march=native"] if NATIVE else PORTABLE_ARCH)


# Vector width: gcc's tuning for the AVX-512 Xeons prefers 256-bit vectors (-march=native
# named the 2-core Emerald Rapids VM "rocketlake"), and the numba backend's kernels run
# 512-bit there (kernels/numba_cpu/config.py), so the kernels ask for 512 (ignored
# without AVX-512). Measured on that machine, 256 -> 512 (2 Dec 2026): tanh-GELU over
# 16M float32 values with the input prefetch 50% -> 80-83% of the copy bandwidth, mish
# 47% -> 87-90%; the course depthwise backward (64x32x28x28) 1.55x -> 0.98x numba's
# time on one thread, 1.22x -> 1.03x on two.
_WIDE = ["-mprefer-vector-width=512"]
# 256-bit vectors for the optimizer updates: they stream four arrays (param, grad and two
# state buffers), and when those sit at different offsets from a 64-byte boundary (NumPy's
# large arrays start 16 bytes past a page) each 512-bit access straddles two cache lines:
# Adam over 78400 floats 62-66 us with 512-bit, 29 us with 256-bit, 22-25 us aligned.
_NARROW = {"_optim.pyx": ["-mprefer-vector-width=256"]}


def _vector_width_flags(pyx):
    if not NATIVE:
        return []
    return _NARROW.get(pyx, _WIDE)


# The optimizer updates are elementwise (no sum to vectorize), and their products must
# run in the written order: under -fassociative-math gcc formed (1 - beta2) g g as
# (1 - beta2) (g g), inf in float32 from |g| > 1.8e19 where PyTorch's ((1 - beta2) g) g
# stays finite up to 5.8e20. The elementwise activations too (their sums, softmax's,
# are in _softmax.pyx): under it gcc grouped products differently in a vector loop and
# in its scalar remainder, so a value's bits depended on its place in the array (ELU's
# g a e, the GELU and tanh-GELU slopes, sine's slope: 1 to 110 ulp, float32 and 64).
_ORDERED = {"_optim.pyx": ["-fno-associative-math"],
            "_activations.pyx": ["-fno-associative-math"]}


def _openmp_works():
    """True when the compiler accepts -fopenmp (gcc/clang with libgomp/libomp)."""
    if sys.platform == "win32" or os.environ.get("FASTNN_NO_OPENMP") == "1":
        return False
    return _compiler_accepts(
        ["-fopenmp"],
        "#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n")


OPENMP = _openmp_works()
DEBUG = os.environ.get("FASTNN_CYTHON_DEBUG") == "1"
# The flavour (debug or release, native or portable and its target, OpenMP or serial)
# the generated C files were last made for: cythonize regenerates a .c only when its
# .pyx is newer, and build_ext recompiles an extension only when its .c is, so switching
# flavour must force both (a debug build's C differs; the others change only the
# compiler's flags)
_FLAVOUR_STAMP = os.path.join("kernels", "cython", ".build-flavour")


def _flavour_changed():
    """True when the C files on disk were generated for another flavour (a tree
    without a stamp holds release C files, or none); records this build's flavour."""
    target = "native" if NATIVE else " ".join(["portable"] + PORTABLE_ARCH)
    want = " ".join(("debug" if DEBUG else "release", target,
                     "openmp" if OPENMP else "serial"))
    try:
        with open(_FLAVOUR_STAMP) as f:
            had = f.read().strip()
    except OSError:
        had = "release native openmp"
    try:
        with open(_FLAVOUR_STAMP, "w") as f:
            f.write(want + "\n")
    except OSError:   # (a read-only source tree: nothing generated there either)
        pass
    return had != want


def _extensions():
    extensions = []
    headers = sorted(glob.glob(os.path.join("kernels", "cython", "*.h")))
    for pyx in sorted(glob.glob(os.path.join("kernels", "cython", "*.pyx"))):
        name = "fastnn.kernels.cython." + os.path.splitext(os.path.basename(pyx))[0]
        extensions.append(Extension(
            name, [pyx], depends=headers,  # a changed C helper rebuilds every extension
            include_dirs=[numpy.get_include(), os.path.join("kernels", "cython")],
            extra_compile_args=(_compile_flags() + _vector_width_flags(os.path.basename(pyx))
                                + _ORDERED.get(os.path.basename(pyx), []))
            + (["-fopenmp"] if OPENMP else []),
            extra_link_args=["-fopenmp"] if OPENMP else [],
            # the debug build fills every work buffer with NaN bytes as it hands it out
            # (_workspace.h), so a kernel reading one before writing it shows in its
            # results instead of reading the last call's values
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
            + ([("FNN_WORKSPACE_POISON", "1")] if DEBUG else []),
        ))
    directives = {"language_level": "3", "boundscheck": DEBUG, "wraparound": DEBUG,
                  "initializedcheck": DEBUG, "cdivision": not DEBUG}
    return cythonize(extensions, compiler_directives=directives, force=_flavour_changed(),
                     compile_time_env={"FASTNN_OPENMP": OPENMP}, quiet=True,
                     include_path=[os.path.join("kernels", "cython")])


# The quick benchmark table (`python -m fastnn bench --quick`, fastnn/bench_cli.py) runs
# from these modules of bench/, which the wheel ships as fastnn._bench; the rest of the
# suite (the pytest-benchmark modules, the report, the stand-in CUDA driver) stays in
# the source tree.
QUICK_BENCH_MODULES = ("__init__", "cases", "ceilings", "contenders", "steps",
                       "student_numpy", "timing")


class build_py(_build_py):
    """setuptools' build_py, keeping only QUICK_BENCH_MODULES of fastnn._bench."""

    def find_package_modules(self, package, package_dir):
        modules = super().find_package_modules(package, package_dir)
        if package == "fastnn._bench":
            modules = [m for m in modules if m[1] in QUICK_BENCH_MODULES]
        return modules


setup(
    packages=find_packages(include=["fastnn", "fastnn.*"]) + [
        "fastnn.kernels", "fastnn.kernels.reference", "fastnn.kernels.numba_cpu",
        "fastnn.kernels.cython", "fastnn.kernels.cuda", "fastnn._bench",
    ],
    package_dir={"fastnn.kernels": "kernels", "fastnn._bench": "bench"},
    # The wheel's data files are these alone: not the rest of the sdist's (MANIFEST.in),
    # such as the generated C files (18 MB) or bench/'s results
    package_data={"fastnn.kernels.cython": ["*.pxd", "*.pyx", "*.h"]},
    include_package_data=False,
    ext_modules=_extensions(),
    cmdclass={"build_ext": build_ext, "build_py": build_py},
)
