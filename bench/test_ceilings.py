"""The machine's ceilings, in the same run: sgemm GFLOP/s and copy bandwidth."""
import pytest

from . import ceilings
from .conftest import measure


@pytest.mark.parametrize("library", ceilings.gemm_libraries())
def test_gemm(benchmark, library):
    fn, flops = ceilings.gemm_runner(library=library)
    contender = "numpy BLAS" if library == "numpy" else "MKL"
    measure(benchmark, fn, "ceiling", kind="ceiling", op="sgemm", contender=contender,
            shape=f"{ceilings.GEMM_N}x{ceilings.GEMM_N} @ {ceilings.GEMM_N}x{ceilings.GEMM_N}",
            flops=flops)


@pytest.mark.parametrize("method", ["numba", "numpy"])
def test_copy(benchmark, method):
    fn, moved = ceilings.copy_runner(method=method)
    label = "numba prange copy" if method == "numba" else "np.copyto (1 thread)"
    measure(benchmark, fn, "ceiling", kind="ceiling", op=f"copy-{method}", contender=label,
            shape=f"{ceilings.COPY_BYTES // 2**20} MB float32", bytes=moved)
