"""When the CPU backends leave dropout's backward, an elementwise product, to NumPy.

grad_out * mask rounds the same in any loop, so ``np.multiply`` gives a compiled
kernel's bits exactly. Where that kernel would run on one thread (fewer than
``PARALLEL_MIN`` values, or one thread set) and would not stream its output
(kernels/streaming.py), NumPy's SIMD loop, reached without a call into compiled code,
is the faster of the two. Measured interleaved against ``np.multiply`` on the 2-core
Xeon, float32, 1 thread (time / NumPy's): 1x10 numba 3.1x, Cython 1.5x; 32x100 2.3x and
1.3x; 128x784 1.2-1.4x and 1.0x; at 2 threads the parallel kernels win from 128x784 on
(0.8-1.0x), so they keep those sizes.
"""
from fastnn import threads

from . import streaming

# the size from which both backends' elementwise loops run in parallel (numba:
# config.PARALLEL_MIN; Cython: _common.pxd's PARALLEL_MIN)
PARALLEL_MIN = 1 << 15


def numpy_multiplies(out_nbytes, size):
    """True when np.multiply should compute a product of size values into out_nbytes
    bytes instead of the backend's kernel."""
    if size < PARALLEL_MIN:
        return True
    return threads.get_num_threads() == 1 and out_nbytes < streaming.min_bytes()
