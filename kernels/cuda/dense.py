"""Linear layer forward and backward: one GEMM with bias and activation fused (in the
GEMM's epilogue, or one pass after cuBLAS), and a backward of one elementwise pass for
act'(y), a column-sum kernel for the bias gradient and two GEMMs.

x: (N, in); weight: (out, in); bias: (out,); NumPy or device arrays (``_common.Call``).
"""
from numba import cuda

from . import config
from ._common import Call, flat
from .gemm import ACT_CODES, activation_grad, gemm


@cuda.jit
def _act_grad(g, y, act, slope, out):
    """out = g * act'(y), flat arrays."""
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        out[i] = g[i] * activation_grad(y[i], act, slope)


@cuda.jit
def _column_sums_add(g, out):
    """out[j] += sum_i g[i, j]; g: (rows, cols). One thread per column: neighbouring
    threads read neighbouring addresses, and the order of the sum is fixed."""
    rows, cols = g.shape
    for j in range(cuda.grid(1), cols, cuda.gridsize(1)):
        s = 0.0
        for i in range(rows):
            s += g[i, j]
        out[j] += s


def column_sums_add(g, out):
    """Device arrays g: (rows, cols), out: (cols,) += column sums of g."""
    cols = g.shape[1]
    if cols:
        _column_sums_add[config.blocks(cols), config.THREADS](g, out)


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
                    scratch=None):
    """Backward of linear_forward; accumulates grad_weight (out, in) and grad_bias (out,).

    grad_out, y, scratch: (N, out_features); x, grad_in: (N, in); weight: (out_features, in).
    Returns grad_in = g @ weight with g = grad_out * act'(y), or None if not need_grad_in.
    """
    call = Call(grad_out, x, weight, y, grad_weight, grad_bias, grad_in, scratch)
    dgo, dx, dw = call.arg(grad_out), call.arg(x), call.arg(weight)
    if activation == "identity":
        g = dgo
    else:
        dy = call.arg(y)
        g = call.arg(scratch) if scratch is not None else cuda.device_array_like(dgo)
        if g.size:
            _act_grad[config.blocks(g.size), config.THREADS](
                flat(dgo), flat(dy), ACT_CODES[activation],
                grad_out.dtype.type(negative_slope), flat(g))
    if grad_weight is not None:
        gemm(g, dx, call.inout(grad_weight), trans_a=True, accumulate=True)
    if grad_bias is not None:
        column_sums_add(g, call.inout(grad_bias))
    if not need_grad_in:
        call.sync()
        return None
    din = call.out(grad_in, x.shape, x.dtype)
    gemm(g, dw, din)
    return call.done(din, grad_in)
