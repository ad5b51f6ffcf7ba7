"""Software prefetch for the numba backend's elementwise kernels.

On the 2-core Xeon (Emerald Rapids, KVM) the hardware prefetchers do not run far
enough ahead of a loop that spends a few nanoseconds of arithmetic on each cache line:
tanh-GELU over 16M float32 values took 9.3-9.9 ms, compute (3.4 ms at 2 threads, in
cache) plus the memory time (4.7 ms for ReLU) with little overlap. Asking for the
input 16 KB ahead, a line at a time while the current lines are computed, overlapped
the two: 6.5 -> 4.0 ms in a C loop (kernels/cython/_prefetch.h, the Cython backend's
twin). ``prefetch_lines`` issues those requests; ``ElementwiseKernel``'s parallel
variant calls it for every input array before each sub-tile of a block, except on AMD
CPUs, where the requests slowed the kernels down (kernels/prefetching.py).
"""
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload

from .config import OPTIONS

LINE_BYTES = 64


@intrinsic
def _prefetch(typingctx, a, i):
    """Ask for the cache line holding a[i] (a read, kept in all cache levels: LLVM's
    llvm.prefetch(ptr, rw=0, locality=3, data)). Never faults, so i may run past a's
    end. a: 1-D contiguous float array."""
    if not (isinstance(a, types.Array) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        a_value, i_value = args
        array = context.make_array(a)(context, builder, a_value)
        i_value = context.cast(builder, i_value, signature.args[1], types.intp)
        byte_ptr = ir.IntType(8).as_pointer()
        address = builder.bitcast(builder.gep(array.data, [i_value]), byte_ptr)
        int32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [byte_ptr, int32, int32, int32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", [byte_ptr], fnty)
        builder.call(fn, [address, int32(0), int32(3), int32(1)])
        return context.get_dummy_value()
    return types.none(a, i), codegen


def prefetch_lines(a, start, stop):
    """Prefetch a[start:stop] a cache line at a time (nothing for a scalar a, and
    nothing past a's end)."""


@overload(prefetch_lines, jit_options=OPTIONS, inline="always")
def _prefetch_lines_overload(a, start, stop):
    if isinstance(a, types.Array):
        def impl(a, start, stop):
            step = max(1, LINE_BYTES // a.itemsize)
            for i in range(start, min(stop, a.shape[0]), step):
                _prefetch(a, i)
        return impl
    return lambda a, start, stop: None
