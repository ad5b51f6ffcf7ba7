"""Linear layer forward and backward: one GEMM with bias and activation fused (in the
GEMM's epilogue, or one pass after cuBLAS), and a backward of one kernel for act'(y) and
the bias gradient together (column sums of g * act'(y)) and two GEMMs.

x: (N, in); weight: (out, in); bias: (out,); NumPy or device arrays (``_common.Call``).
"""
import numpy as np
from numba import cuda

from . import config
from ._common import Call, dmin, flat
from ._common import scratch as temporary
from ._reduce import cached_factory, column_sum
from .gemm import ACT_CODES, activation_backward, gemm
from .launch import jit_kernel


@jit_kernel
def _act_grad(g, y, act, slope, out):
    """out = g * act'(y), flat arrays."""
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        out[i] = activation_backward(g[i], y[i], act, slope)


# Column sums (bias gradients): blocks of WARP columns x (THREADS / WARP) row groups, so a
# warp reads 32 neighbouring values of one row. Up to DIRECT_ROWS rows (a training batch)
# one launch does it all, each thread keeping four loads in flight (a launch costs more
# host time than such a kernel runs); beyond, each thread sums at most ROWS_PER_THREAD
# rows, blocks along grid axis y write float64 partial sums and a second kernel adds them
# up in a fixed order (deterministic, no atomics). With an activation the kernel also
# does the activation's backward: it sums and writes g * act'(y) (one launch instead of
# two in a Linear backward).
WARP = 32
ROWS_PER_THREAD = 64
DIRECT_ROWS = 2048


@cuda.jit(device=True)
def _grad_value(g, y, g_out, i, j, act, slope):
    """g[i, j], or g[i, j] * act'(y[i, j]) stored in g_out[i, j] when act is not 0."""
    v = g[i, j]
    if act:
        v = activation_backward(v, y[i, j], act, slope)
        g_out[i, j] = v
    return v


@cached_factory
def _column_partials(groups):
    @jit_kernel(threads=WARP * groups)
    def kernel(g, y, act, slope, g_out, row_block, partial, out, direct, accumulate):
        """partial[blockIdx.y, j] (or out[j] += when direct; = when direct and not
        accumulate) = sum of g[i, j] (times act'(y[i, j]), also stored in g_out, when act
        is not 0) over the rows of this block's row range. Block: (WARP, groups) threads."""
        sh = cuda.shared.array((groups, WARP), np.float64)
        rows, cols = g.shape
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        first = cuda.blockIdx.y * row_block
        last = dmin(rows, first + row_block)
        step = 4 * groups
        for base in range(cuda.blockIdx.x * WARP, cols, cuda.gridDim.x * WARP):
            j = base + tx
            # a float64 under the simulator too (NumPy 2 keeps 0.0 + a float32 a float32)
            s = np.float64(0.0)
            if j < cols:
                i = first + ty
                while i + 3 * groups < last:
                    v0 = _grad_value(g, y, g_out, i, j, act, slope)
                    v1 = _grad_value(g, y, g_out, i + groups, j, act, slope)
                    v2 = _grad_value(g, y, g_out, i + 2 * groups, j, act, slope)
                    v3 = _grad_value(g, y, g_out, i + 3 * groups, j, act, slope)
                    s += (v0 + v1) + (v2 + v3)
                    i += step
                while i < last:
                    s += _grad_value(g, y, g_out, i, j, act, slope)
                    i += groups
            total = column_sum(sh, s)
            if ty == 0 and j < cols:
                if direct:
                    if accumulate:
                        out[j] += total
                    else:
                        out[j] = total
                else:
                    partial[cuda.blockIdx.y, j] = total

    return kernel


@jit_kernel
def _add_partials(partial, out, accumulate):
    """out[j] += (= when not accumulate) sum over row blocks of partial[:, j], one thread
    per column."""
    blocks, cols = partial.shape
    for j in range(cuda.grid(1), cols, cuda.gridsize(1)):
        s = 0.0
        for b in range(blocks):
            s += partial[b, j]
        if accumulate:
            out[j] += s
        else:
            out[j] = s


def column_sums_add(g, out, y=None, activation="identity", negative_slope=0.0, g_out=None,
                    accumulate=True):
    """Device arrays g: (rows, cols), out: (cols,) += column sums of g (summed in float64,
    in a fixed order); out = those sums when not accumulate (no fill launch first).

    With y and g_out (rows, cols) and an activation other than identity, the sums are of
    g * act'(y), which are also written to g_out (may not be g)."""
    rows, cols = g.shape
    if not cols:
        return
    config.check()  # column_sum halves blockDim.y: THREADS // WARP a power of two
    code = ACT_CODES[activation] if y is not None else 0
    groups = max(1, config.THREADS // WARP)
    if rows <= DIRECT_ROWS:
        row_blocks, row_block = 1, max(rows, 1)
    else:
        row_block = groups * ROWS_PER_THREAD
        row_blocks = max(1, min(config.MAX_BLOCKS, (rows + row_block - 1) // row_block))
        row_block = (rows + row_blocks - 1) // row_blocks
    col_blocks = max(1, min(config.MAX_BLOCKS // row_blocks, (cols + WARP - 1) // WARP))
    direct = row_blocks == 1
    partial = temporary("column_partials", (1, 1) if direct else (row_blocks, cols), np.float64)
    _column_partials(groups)[(col_blocks, row_blocks), (WARP, groups)](
        g, y if code else g, code, g.dtype.type(negative_slope), g_out if code else g,
        row_block, partial, out, direct, accumulate)
    if not direct:
        _add_partials[config.blocks(cols), config.THREADS](partial, out, accumulate)


def linear_forward(x, weight, bias=None, activation="identity", negative_slope=0.01, out=None):
    """y = act(x @ weight.T + bias).

    x: (N, in); weight: (out_features, in); bias: (out_features,) or None;
    out: (N, out_features) or None. Returns y: (N, out_features).
    """
    call = Call(x, weight, bias, out)
    dx, dw, db = call.arg(x), call.arg(weight), call.arg(bias)
    dy = call.out(out, (x.shape[0], weight.shape[0]), x.dtype)
    gemm(dx, dw, dy, trans_b=True, bias=db, act=activation, slope=negative_slope)
    return call.done(dy, out)


def linear_backward(grad_out, x, weight, y=None, activation="identity", negative_slope=0.01,
                    grad_weight=None, grad_bias=None, grad_in=None, need_grad_in=True,
                    scratch=None, accumulate=True):
    """Backward of linear_forward; accumulates grad_weight (out, in) and grad_bias (out,)
    (overwrites them when not accumulate).

    grad_out, y, scratch: (N, out_features); x, grad_in: (N, in); weight: (out_features, in).
    Returns grad_in = g @ weight with g = grad_out * act'(y), or None if not need_grad_in.
    """
    call = Call(grad_out, x, weight, y, grad_weight, grad_bias, grad_in, scratch)
    dgo, dx, dw = call.arg(grad_out), call.arg(x), call.arg(weight)
    dgb = call.inout(grad_bias)
    if activation == "identity":
        g = dgo
        if dgb is not None:
            column_sums_add(g, dgb, accumulate=accumulate)
    else:
        dy = call.arg(y)
        g = call.arg(scratch) if scratch is not None else temporary("act_grad", dgo.shape,
                                                                     dgo.dtype)
        if dgb is not None:  # act'(y) and the bias gradient in one kernel
            column_sums_add(dgo, dgb, dy, activation, negative_slope, g,
                            accumulate=accumulate)
        elif g.size:
            _act_grad[config.blocks(g.size), config.THREADS](
                flat(dgo), flat(dy), ACT_CODES[activation],
                grad_out.dtype.type(negative_slope), flat(g))
    if grad_weight is not None:
        gemm(g, dx, call.inout(grad_weight), trans_a=True, accumulate=accumulate)
    if not need_grad_in:
        call.sync()
        return None
    din = call.out(grad_in, x.shape, x.dtype)
    gemm(g, dw, din)
    return call.done(din, grad_in)
