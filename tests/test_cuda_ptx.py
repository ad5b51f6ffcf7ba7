"""The CUDA kernels through numba's real CUDA compiler, without a GPU.

The simulator (tests/test_cuda_sim.py) runs the kernels as Python: it checks what they
compute, but neither numba's typing of them nor code generation. tests/cuda_ptx_compile.py
compiles every kernel to PTX for compute capability 9.0 (float32 and float64, the
argument types its launcher passes) in a subprocess; it needs CUDA's libNVVM, and the
test is skipped where that is not installed.
"""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_cuda_kernel_compiles_to_ptx():
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "cuda_ptx_compile.py")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    if proc.returncode == 77:
        pytest.skip(output.strip().splitlines()[-1])
    assert proc.returncode == 0, output[-6000:]
    compiled = [line for line in proc.stdout.splitlines() if line.startswith("ok ")]
    assert len(compiled) >= 2 * 39, output[-3000:]
