"""The few device-array operations ``fastnn.device`` needs beyond the ops: a view of any
device array as a numba device array, and zero-filling in place.

Models move with ``Module.to("cuda")`` (``fastnn/nn/module.py``); their optimizers'
flat buffers follow (``fastnn/optim/flat.py``). Both reach the GPU through
``fastnn.device``'s ``Cuda`` namespace, which calls this module.
"""
from numba import cuda  # noqa: F401  (fastnn.device allocates through it)

from . import config
from ._common import as_device, flat, is_device  # noqa: F401


@cuda.jit
def _fill_zero(a):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        a[i] = 0


def fill_zero(a):
    """Set every element of a C-contiguous device array to zero, in place."""
    a = as_device(a)
    if a.size:
        _fill_zero[config.blocks(a.size), config.THREADS](flat(a))
