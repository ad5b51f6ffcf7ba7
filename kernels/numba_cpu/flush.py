"""Subnormal numbers flushed to zero for the optimizer updates (FTZ and DAZ in MXCSR).

kernels/cython/_flush.h, the Cython backend's twin, says why: a momentum buffer
whose gradient stays 0 decays into subnormal numbers, and an Intel core takes a
microcode assist on every vector instruction that reads or makes one (SGD over 79510
parameters, 6% of them subnormal: 80 us instead of 27). ``flush_begin`` sets FTZ and
DAZ in the calling thread's MXCSR and returns the register as it was; ``flush_end``
puts it back. ``ElementwiseKernel(..., flush_denormals=True)`` runs every block of an
update between the two, on the thread that computes it. Elsewhere than x86-64 both do
nothing.
"""
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from ..streaming import X86_64
from .config import helper

_FTZ_DAZ = 0x8040


def _mxcsr_call(builder, name, slot):
    """Call llvm.x86.sse.{st,ld}mxcsr on the i32 at slot."""
    byte_ptr = ir.IntType(8).as_pointer()
    fnty = ir.FunctionType(ir.VoidType(), [byte_ptr])
    fn = cgutils.get_or_insert_function(builder.module, fnty, name)
    builder.call(fn, [builder.bitcast(slot, byte_ptr)])


@intrinsic
def _mxcsr_set_flush(typingctx):
    """MXCSR |= FTZ | DAZ; returns the register as it was (uint32)."""
    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        slot = cgutils.alloca_once(builder, i32)
        _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", slot)
        old = builder.load(slot)
        builder.store(builder.or_(old, i32(_FTZ_DAZ)), slot)
        _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return old
    return types.uint32(), codegen


@intrinsic
def _mxcsr_restore(typingctx, csr):
    """MXCSR = csr (a uint32 from _mxcsr_set_flush)."""
    if csr != types.uint32:
        return None

    def codegen(context, builder, signature, args):
        slot = cgutils.alloca_once_value(builder, args[0])
        _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return context.get_dummy_value()
    return types.none(csr), codegen


if X86_64:
    @helper
    def flush_begin():
        """Subnormals flushed to zero in this thread; returns the MXCSR to restore."""
        return _mxcsr_set_flush()

    @helper
    def flush_end(csr):
        """This thread's MXCSR back to csr (flush_begin's value)."""
        _mxcsr_restore(csr)
else:
    @helper
    def flush_begin():
        return 0

    @helper
    def flush_end(csr):
        pass
