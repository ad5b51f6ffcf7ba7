"""Small helpers the op wrappers share: output allocation, flat views, scratch."""
import numpy as np
from numba.core import cgutils, types
from numba.extending import intrinsic

from ..scratch import scratch  # noqa: F401  (re-exported for the kernels)
from .config import helper


def out_like(x, out):
    """``out`` if given, else a new array of x's shape and dtype."""
    return np.empty_like(x) if out is None else out


def flat(a):
    """A 1-D view of a C-contiguous array (no copy)."""
    return a.reshape(-1)


@helper
def overlap(a, b):
    """True when the memory of 1-D contiguous arrays a and b overlaps (compiled code)."""
    pa = a.ctypes.data
    pb = b.ctypes.data
    return pa < pb + b.size * b.itemsize and pb < pa + a.size * a.itemsize


@intrinsic
def copy_into(typingctx, dst, src):
    """dst[:len(src)] = src by memcpy (compiled code). dst, src: 1-D contiguous arrays
    of one dtype, not overlapping, dst at least as long. Numba's slice assignment copies
    a value at a time: 1024 float32 values took 0.28 ns each, memcpy 0.05."""
    if not (isinstance(dst, types.Array) and isinstance(src, types.Array)
            and dst.ndim == 1 and src.ndim == 1 and dst.dtype == src.dtype
            and dst.layout == "C" and src.layout == "C" and dst.mutable):
        return None

    def codegen(context, builder, signature, args):
        d = context.make_array(signature.args[0])(context, builder, args[0])
        s = context.make_array(signature.args[1])(context, builder, args[1])
        itemsize = context.get_abi_sizeof(context.get_data_type(signature.args[1].dtype))
        cgutils.raw_memcpy(builder, d.data, s.data, s.nitems, itemsize)
        return context.get_dummy_value()
    return types.none(dst, src), codegen
