"""The CUDA kernels through numba's real CUDA compiler, without a GPU.

The simulator (tests/test_cuda_sim.py) runs the kernels as Python: it checks what they
compute, but neither numba's typing of them nor code generation. tests/cuda_ptx_compile.py
compiles every kernel to PTX for compute capability 9.0 (float32 and float64, the
argument types its launcher passes) in a subprocess; it needs CUDA's libNVVM, and the
test is skipped where that is not installed. With --register-caps it checks, without
libNVVM, that each kernel can launch with its block at the largest launch sizes.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulator_runs import RUNS_KEY

ROOT = Path(__file__).resolve().parents[1]


def test_every_cuda_kernel_compiles_to_ptx(request):
    """The compile runs in the background from the end of collection (conftest.py and
    tests/simulator_runs.py), and this test, moved to the end of the session, reads its
    result."""
    code, output = request.config.stash[RUNS_KEY]["test_every_cuda_kernel_compiles_to_ptx"
                                                  ].result(timeout=600)
    assert code is not None, f"the compile was stopped after 600 s:\n{output[-3000:]}"
    if code == 77:
        pytest.skip(output.strip().splitlines()[-1])
    assert code == 0, output[-6000:]
    compiled = [line for line in output.splitlines() if line.startswith("ok ")]
    assert len(compiled) >= 2 * 39, output[-3000:]


def test_every_cuda_kernel_launches_at_the_largest_block_sizes():
    """THREADS 512, BN_THREADS 1024 and TILE 32 (the most config.check() admits): each
    kernel carries a register cap that lets such a block fit a multiprocessor's 65,536
    registers, whatever the GPU's linker allocates. Before, every kernel but BatchNorm's
    and the depthwise weight gradient's had none: a 512-thread launch of one given more
    than 128 registers fails on a GPU (ptxas 13.0 gives LayerNorm's float64 backward 128
    without a cap, 140 with -maxrregcount=255), which the simulator cannot show."""
    env = dict(os.environ, FASTNN_CUDA_THREADS="512", FASTNN_CUDA_BN_THREADS="1024",
               FASTNN_CUDA_TILE="32")
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "cuda_ptx_compile.py"),
                           "--register-caps"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert len([line for line in proc.stdout.splitlines()
                if line.startswith("fits ")]) >= 2 * 39, output[-3000:]
