"""Streaming (non-temporal) stores for the numba backend's elementwise kernels.

LLVM only emits a non-temporal store for an instruction carrying ``!nontemporal``
metadata, and its loop vectorizer refuses such a store unless it is aligned to the
vector's size, which a loop over a NumPy array cannot promise; so ``stream_store`` copies
an L1-resident tile to its destination with the head (up to the first 64-byte boundary)
and the tail stored plainly and every whole 64-byte line in between written by
``_stream_line``: one vector load from the tile and one aligned non-temporal vector
store (a single ``vmovntps zmm`` with AVX-512, two or four narrower ones otherwise).
``fence`` orders the streamed lines before anything the thread stores later.
kernels/streaming.py says when the backends stream, and why.
"""
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from .config import helper

LINE_BYTES = 64


@intrinsic
def _stream_line(typingctx, dst, i, src, j):
    """dst[i : i + 64 / itemsize] = src[j : ...] as one non-temporal store; dst[i] must
    sit on a 64-byte boundary. dst, src: 1-D contiguous arrays of one float dtype."""
    if not (isinstance(dst, types.Array) and isinstance(src, types.Array)
            and dst.dtype == src.dtype and isinstance(dst.dtype, types.Float)
            and isinstance(i, types.Integer) and isinstance(j, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        dst_value, i_value, src_value, j_value = args
        element = context.get_data_type(dst.dtype)
        lanes = LINE_BYTES // (dst.dtype.bitwidth // 8)
        vector_ptr = ir.VectorType(element, lanes).as_pointer()
        dst_array = context.make_array(dst)(context, builder, dst_value)
        src_array = context.make_array(src)(context, builder, src_value)
        i_value = context.cast(builder, i_value, signature.args[1], types.intp)
        j_value = context.cast(builder, j_value, signature.args[3], types.intp)
        source = builder.bitcast(builder.gep(src_array.data, [j_value]), vector_ptr)
        target = builder.bitcast(builder.gep(dst_array.data, [i_value]), vector_ptr)
        line = builder.load(source, align=dst.dtype.bitwidth // 8)
        store = builder.store(line, target, align=LINE_BYTES)
        store.set_metadata("nontemporal", builder.module.add_metadata(
            [ir.Constant(ir.IntType(32), 1)]))
        return context.get_dummy_value()
    return types.none(dst, i, src, j), codegen


@intrinsic
def fence(typingctx):
    """A sequentially consistent fence (mfence on x86): orders the streaming stores
    before later stores, which plain x86 ordering does not do for them."""
    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()
    return types.none(), codegen


@helper
def stream_store(dst, src):
    """dst[:m] = src[:m], m = len(src), with streaming stores for dst's whole 64-byte
    lines. dst: (>= m,) contiguous; src: (m,) contiguous, same dtype (an L1 tile)."""
    m = src.shape[0]
    size = dst.itemsize
    lanes = LINE_BYTES // size
    address = dst.ctypes.data
    head = m
    if address % size == 0:
        head = min(m, ((LINE_BYTES - address % LINE_BYTES) % LINE_BYTES) // size)
    for k in range(head):
        dst[k] = src[k]
    i = head
    while i + lanes <= m:
        _stream_line(dst, i, src, i)
        i += lanes
    for k in range(i, m):
        dst[k] = src[k]
