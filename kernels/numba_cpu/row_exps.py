"""The exps of the row kernels (softmax, softmax cross-entropy): e**(x - max) of each row
of a block, computed out of line.

As the inner loop of a row loop, LLVM rematerialized each polynomial coefficient of the
exp from the constant pool every vector (a 64-bit address and a broadcast load each,
under the JIT's large code model: float64 ~70 instructions a vector against gcc's ~40),
and inlined into Numba's parallel function it reloads them too (see
config.call_outlined). Here the exps are a loop of a function of their own, called
through config.call_outlined: one flat loop over a block of narrow rows (their x - max
stored first), one call per row from WIDE values (a call per 10-wide row cost 15%).
Each value is exp_nonpos(x - max) as before: the same bits.
"""
from . import vmath
from .config import call_outlined, helper, serial_kernel

# values per block of rows handed to one outlined call by the row kernels' pranges
ROW_BLOCK = 1024
# rows of at least WIDE values take a call of their own for their exps
WIDE = 128


@helper
def rows_per_block(c):
    """Rows of C values in a block of about ROW_BLOCK values (at least one)."""
    return max(1, ROW_BLOCK // max(c, 1))


@serial_kernel
def _exp_nonpos_in_place(a):  # INOUT a (m,) <= 0: a -> e**a
    for k in range(a.shape[0]):
        a[k] = vmath.exp_nonpos(a[k])


@serial_kernel
def _exp_shifted(x, shift, out):  # IN x (m,) <= shift; OUT out (m,) = e**(x - shift)
    for k in range(x.shape[0]):
        out[k] = vmath.exp_nonpos(x[k] - shift)


@serial_kernel  # not inlined in Numba's IR: with row_max inlined twice in one function
def narrow_exps(x, out):   # Numba warned (NumbaIRAssumptionWarning: 'not in scope')
    """out = e**(x - max(x)) row by row, for rows narrower than WIDE: x - max stored, then
    one flat exp loop over the block. x, out: (m, C) C-contiguous; out may be x."""
    m, c = x.shape
    for i in range(m):
        mx = vmath.row_max(x[i])
        for j in range(c):
            out[i, j] = x[i, j] - mx
    call_outlined(_exp_nonpos_in_place, (out.reshape(m * c),))


@serial_kernel  # (not inlined in Numba's IR either)
def row_exps(x, mx, out):
    """out = e**(x - mx) for one row of WIDE values or more. x, out: (C,)."""
    call_outlined(_exp_shifted, (x, mx, out))
