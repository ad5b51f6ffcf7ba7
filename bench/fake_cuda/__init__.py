"""numba's real CUDA path without a GPU, on a stand-in driver (driver.c).

Numba's CUDA simulator runs kernels as Python, with its own arrays and launch code, so it
says nothing of what a training step costs the host on a real GPU: numba's argument
marshalling, the driver calls, fastnn's staging around them. On the H200 (bench/results/
cuda_gpu.json) that host time, not the GPU, set the MLP step's pace. The stand-in driver
keeps device memory in host memory and launches nothing, so numba compiles (with CUDA's
libNVVM) and launches exactly as on a GPU while the kernels cost nothing: the time a step
takes is its host time, and the driver's counters say how many launches, allocations and
copies it made. It serves numba's built-in CUDA target (this project's environment) and
numba-cuda with NVIDIA's cuda-bindings (the GPU machines'; that also needs NVRTC,
``pip install nvidia-cuda-nvrtc-cu12``).

    build(directory) -> path of the built library, or None (no C compiler)
    environment(path) -> the variables that make numba load it (set before numba.cuda
        initialises: in a new process)
    Counters(path) -> the driver's counters, read in the process that loaded it

``python -m bench.fake_cuda.host_time`` measures training steps on it.
"""
import ctypes
import os
import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("driver.c")
COUNTERS = ("launches", "allocs", "frees", "htod", "dtoh", "dtod", "syncs",
            "stream_launches")


def build(directory):
    """Compile driver.c into directory/libcuda.so.1 (kept when newer than the source);
    its path, or None without a C compiler."""
    target = Path(directory) / "libcuda.so.1"
    if target.exists() and target.stat().st_mtime >= SOURCE.stat().st_mtime:
        return target
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", str(target), str(SOURCE),
                    "-ldl"], check=True, capture_output=True)
    return target


def environment(path):
    """Environment variables for a process that should run on the stand-in driver: numba
    loads it (numba's own CUDA target through NUMBA_CUDA_DRIVER, numba-cuda's
    cuda-bindings from the library path), and the GEMM is numba's (CuPy's cuBLAS would
    look for a real GPU)."""
    library_path = os.pathsep.join(filter(None, [str(Path(path).parent),
                                                 os.environ.get("LD_LIBRARY_PATH")]))
    return {"NUMBA_CUDA_DRIVER": str(path), "LD_LIBRARY_PATH": library_path,
            "NUMBA_ENABLE_CUDASIM": "0", "FASTNN_CUDA_GEMM": "numba"}


class Counters:
    """The stand-in driver's counters, in the process that loaded it:
    ``snapshot()`` -> {name: count} for the names in COUNTERS."""

    def __init__(self, path):
        self._lib = ctypes.CDLL(str(path))

    def snapshot(self):
        return {name: ctypes.c_ulonglong.in_dll(self._lib, "fake_" + name).value
                for name in COUNTERS}
