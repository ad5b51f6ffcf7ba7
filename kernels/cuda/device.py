"""The few device-array operations ``fastnn.device`` needs beyond the ops: a view of any
device array as a numba device array, copies between host and device, zero-filling in
place, and a contiguous copy of a strided array.

Models move with ``Module.to("cuda")`` (``fastnn/nn/module.py``); their optimizers'
flat buffers follow (``fastnn/optim/flat.py``). Both reach the GPU through
``fastnn.device``'s ``Cuda`` namespace, which calls this module.
"""
import numpy as np
from numba import cuda  # noqa: F401  (fastnn.device allocates through it)

from . import config
from ._common import as_device, copy_into, flat, is_device, to_device, to_host  # noqa: F401
from .launch import jit_kernel


@jit_kernel
def _fill_zero(a):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        a[i] = 0


def fill_zero(a):
    """Set every element of a C-contiguous device array to zero, in place."""
    a = as_device(a)
    if a.size:
        _fill_zero[config.blocks(a.size), config.THREADS](flat(a))


@jit_kernel
def _gather1(a, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = a[i]


@jit_kernel
def _gather2(a, out):
    cols = a.shape[1]
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        r = i // cols
        out[i] = a[r, i - r * cols]


@jit_kernel
def _gather3(a, out):
    d1, d2 = a.shape[1], a.shape[2]
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        r = i // d2
        k = i - r * d2
        p = r // d1
        out[i] = a[p, r - p * d1, k]


@jit_kernel
def _gather4(a, out):
    d1, d2, d3 = a.shape[1], a.shape[2], a.shape[3]
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        r = i // d3
        l = i - r * d3
        q = r // d2
        k = r - q * d2
        p = q // d1
        out[i] = a[p, q - p * d1, k, l]


_GATHERS = {1: _gather1, 2: _gather2, 3: _gather3, 4: _gather4}


def _gather_into(a, out):
    """out (C-contiguous, a's shape) = strided a, on the device: one gather launch for 1
    to 4 dimensions, one for each index of the leading axes beyond."""
    if a.ndim > 4:
        for i in range(a.shape[0]):
            _gather_into(a[i], out[i])
    elif a.size:
        _GATHERS[a.ndim][config.blocks(a.size), config.THREADS](a, flat(out))


def contiguous_copy(a):
    """A C-contiguous device copy of a strided device array (a gather on the device, as
    NumPy's ascontiguousarray; more than 4 dimensions: a launch per 4-D sub-array, since
    numba's copy to the host refuses the negative strides a reversed view has). Any shape
    in, the same shape out."""
    a = as_device(a)
    out = cuda.device_array(a.shape, dtype=a.dtype)
    if a.ndim == 0:
        copy_into(out, a)
    else:
        _gather_into(a, out)
    return out
