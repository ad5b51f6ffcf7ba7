"""Whether the CPU backends' elementwise kernels prefetch their inputs in software.

The compute-bound elementwise kernels (the transcendental activations and their
backward passes) run each block in sub-tiles, each after asking for its inputs one
block ahead (kernels/numba_cpu/prefetch.py, kernels/cython/_prefetch.h): on the 2-core
Xeon (Emerald Rapids, KVM) the hardware prefetchers did not run far enough ahead of such
a loop, and the requests took tanh-GELU over 16M float32 values 9.7-10 -> 4.0 ms.

On the 2-core AMD EPYC (Zen 4 class, KVM) the same requests slow every such kernel
down: 16M float32 values, 1 thread, process CPU time, the numba blocked variant with
and without them alternated in one process (median of 7): GELU 0.63 -> 0.54 ns a
value, tanh-GELU 0.54 -> 0.41, sigmoid 0.47 -> 0.33, mish 0.64 -> 0.53, softplus
0.72 -> 0.62, GELU's backward 1.05 -> 0.78, tanh-GELU's 1.21 -> 0.88; with 2 threads
(wall, the machine otherwise idle) numba GELU 0.33 -> 0.25 ns a value, its backward
0.67 -> 0.49, sigmoid 0.30 -> 0.25, Cython GELU 0.33 -> 0.24, its backward 0.63 ->
0.43, mish 0.29 -> 0.21. Its hardware prefetchers keep up, and the extra requests only
compete with them. So the kernels prefetch except on AMD CPUs; elsewhere (Intel, and
machines not measured) as before.
"""
import os

from fastnn import mkl_blas as _mkl_blas

_enabled = None


def _from_environment():
    value = os.environ.get("FASTNN_PREFETCH")
    if value is None:
        return _mkl_blas.cpu_vendor() != "AuthenticAMD"
    if value not in ("0", "1"):
        raise ValueError(f"FASTNN_PREFETCH must be 0 or 1, got {value!r}")
    return value == "1"


def enabled():
    """True when the elementwise kernels prefetch their inputs: not on AMD CPUs;
    FASTNN_PREFETCH=1 or 0 says otherwise (read once, at the first call)."""
    global _enabled
    if _enabled is None:
        _enabled = _from_environment()
    return _enabled
