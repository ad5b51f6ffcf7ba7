"""Linear layer: BLAS for the products, one compiled pass for everything around them.

Forward: ``out = x @ W.T`` by BLAS, then one parallel pass adds the bias and applies
the activation in place; for a short batch of a wide layer BLAS computes the transpose
``W @ x.T`` instead, much faster there (kernels/gemm_shapes.py), and the pass reads it
transposed into out. Backward: one pass computes g = grad_out * act'(y) and adds
g's column sums to grad_bias, then BLAS accumulates grad_weight += g.T @ x and writes
grad_in = g @ W.

The bias gradient is summed by column blocks: each prange iteration owns a block of
columns and walks every row in order, so no two threads touch one grad_bias entry and
every column is summed in the same order whatever the thread count (bitwise identical
results across thread counts, no partial buffers, no merge).
"""
import numpy as np
from numba import prange

from ..gemm_shapes import transposed_forward
from . import blas, vmath
from ._buffers import scratch
from .config import OPTIONS, Kernel, helper


def blas_kernel(fn):
    """A ``Kernel`` that calls BLAS: compiled with the GIL released (``nogil``), as a
    ctypes or SciPy call into BLAS runs, so other Python threads go on meanwhile."""
    return Kernel(fn, {**OPTIONS, "nogil": True})


IDENTITY, RELU, LEAKY_RELU, SIGMOID, TANH = 0, 1, 2, 3, 4
_CODES = {"identity": IDENTITY, "relu": RELU, "leaky_relu": LEAKY_RELU,
          "sigmoid": SIGMOID, "tanh": TANH}
_BLOCK = 64  # columns per prange iteration in the backward pass
_NO_BIAS = {np.dtype(np.float32): np.empty(0, np.float32),
            np.dtype(np.float64): np.empty(0, np.float64)}
# stand-ins for an absent grad_weight / grad_in, and for zt when not transposed
_NO_WEIGHT_GRAD = {dtype: np.empty((0, 0), dtype) for dtype in _NO_BIAS}
_NO_SCRATCH = _NO_WEIGHT_GRAD


@helper
def _bias_activation_row(row, bias, has_bias, act, slope):  # INOUT row (F,); IN bias (F,)
    f = row.shape[0]
    zero = row.dtype.type(0)
    one = row.dtype.type(1)
    s = row.dtype.type(slope)
    lo, hi = vmath.exp_limits(one)   # as the standalone sigmoid: float64's own range
    if has_bias:
        for j in range(f):
            row[j] += bias[j]
    if act == RELU:
        for j in range(f):
            row[j] = zero if row[j] < zero else row[j]
    elif act == LEAKY_RELU:
        for j in range(f):
            row[j] = row[j] if row[j] > zero else row[j] * s
    elif act == SIGMOID:
        # the standalone sigmoid kernel's formula (activations._sigmoid), so a fused
        # Linear+Sigmoid equals the unfused pair bit for bit
        for j in range(f):
            row[j] = one / (one + vmath.exp_core(min(max(-row[j], lo), hi)))
    elif act == TANH:
        for j in range(f):
            row[j] = vmath.tanh(row[j])


@helper
def _activation_grad_rows(grad_out, y, g, bias_block, j0, j1, act, has_bias, slope):
    """g[:, j0:j1] = grad_out * act'(y) on those columns, their sums added to bias_block
    (j1 - j0,) when has_bias. Called with act a constant: see _activation_grad."""
    zero = y.dtype.type(0)
    one = y.dtype.type(1)
    s = y.dtype.type(slope)
    m = j1 - j0
    for i in range(grad_out.shape[0]):
        go = grad_out[i, j0:j1]
        yr = y[i, j0:j1]
        gr = g[i, j0:j1]
        if act == RELU:
            for j in range(m):
                gr[j] = zero if yr[j] <= zero else go[j]  # PyTorch's select
        elif act == LEAKY_RELU:
            for j in range(m):
                gr[j] = go[j] * (one if yr[j] > zero else s)
        elif act == SIGMOID:
            for j in range(m):
                gr[j] = go[j] * yr[j] * (one - yr[j])
        elif act == TANH:
            for j in range(m):
                gr[j] = go[j] * (one - yr[j] * yr[j])
        else:
            for j in range(m):
                gr[j] = go[j]
        if has_bias:
            for j in range(m):
                bias_block[j] += gr[j]



@helper
def _activation_grad_block(grad_out, y, act, slope, g, grad_bias, has_bias, j0, j1):
    """_activation_grad_rows on columns j0:j1 with act a constant in each call: with the
    activation tested inside the row loop, 128x100 took 8.1 us instead of 3.4-3.6."""
    bias_block = grad_bias[j0:j1]
    if act == RELU:
        _activation_grad_rows(grad_out, y, g, bias_block, j0, j1, RELU, has_bias, slope)
    elif act == LEAKY_RELU:
        _activation_grad_rows(grad_out, y, g, bias_block, j0, j1, LEAKY_RELU, has_bias, slope)
    elif act == SIGMOID:
        _activation_grad_rows(grad_out, y, g, bias_block, j0, j1, SIGMOID, has_bias, slope)
    elif act == TANH:
        _activation_grad_rows(grad_out, y, g, bias_block, j0, j1, TANH, has_bias, slope)
    else:
        _activation_grad_rows(grad_out, y, g, bias_block, j0, j1, IDENTITY, has_bias, slope)


@helper
def _add_column_sums(a, out, j0, j1):  # IN a (N, F); INOUT out (F,): out[j0:j1] += sums
    out_block = out[j0:j1]
    for i in range(a.shape[0]):
        row = a[i, j0:j1]
        for j in range(j1 - j0):
            out_block[j] += row[j]


@blas_kernel
def _linear_forward(gemm, ilp64, x, weight, bias, has_bias, act, slope, out, transposed,
                    zt):
    # IN x (N, K), weight (F, K), bias (F,); OUT out (N, F); zt (F, N) scratch when
    # transposed. gemm, ilp64: blas.target
    n, k = x.shape
    f = weight.shape[0]
    if transposed:
        # column-major zt.T (N, F) = x (N, K) @ weight.T (K, F)
        blas.gemm(gemm, ilp64, blas.T, blas.N, n, f, k, x, k, weight, k, 0.0, zt, n)
        for i in prange(n):
            row = out[i]
            for j in range(f):
                row[j] = zt[j, i]
            _bias_activation_row(row, bias, has_bias, act, slope)
        return
    # column-major out.T (F, N) = weight (F, K) @ x.T (K, N)
    blas.gemm(gemm, ilp64, blas.T, blas.N, f, n, k, weight, k, x, k, 0.0, out, f)
    if has_bias or act != IDENTITY:
        for i in prange(n):
            _bias_activation_row(out[i], bias, has_bias, act, slope)


@blas_kernel
def _linear_backward(gemm, ilp64, grad_out, x, weight, y, act, slope, g, grad_weight,
                     has_weight_grad, grad_bias, has_bias, accumulate, grad_in, need_grad_in,
                     block):
    # IN grad_out, y (N, F), x (N, K), weight (F, K); OUT g (N, F) (grad_out itself for
    # 'identity'), grad_in (N, K); INOUT grad_weight (F, K), grad_bias (F,)
    # Columns are summed in blocks: each prange iteration owns a block of columns and
    # walks every row in order, so no two threads touch one grad_bias entry and every
    # column is summed in the same order whatever the thread count. Rows are sliced to
    # the block so every inner loop starts at 0: Numba then knows the index is
    # non-negative, drops its wraparound check and LLVM vectorizes.
    n, k = x.shape
    f = weight.shape[0]
    if has_bias and not accumulate:
        grad_bias[:] = 0
    if act != IDENTITY:
        for b in prange((f + block - 1) // block):
            j0 = b * block
            _activation_grad_block(grad_out, y, act, slope, g, grad_bias, has_bias, j0,
                                   min(f, j0 + block))
    elif has_bias:
        for b in prange((f + block - 1) // block):
            j0 = b * block
            _add_column_sums(g, grad_bias, j0, min(f, j0 + block))
    if has_weight_grad:
        # column-major grad_weight.T (K, F) = x.T (K, N) @ g (N, F) [+ grad_weight.T]
        blas.gemm(gemm, ilp64, blas.N, blas.T, k, f, n, x, k, g, f,
                  1.0 if accumulate else 0.0, grad_weight, k)
    if need_grad_in:
        # column-major grad_in.T (K, N) = weight.T (K, F) @ g.T (F, N)
        blas.gemm(gemm, ilp64, blas.N, blas.N, k, n, f, weight, k, g, f, 0.0, grad_in, k)


def _contiguous(a):
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _written(out, result):
    """result, copied into out first when the kernel wrote a contiguous copy of it."""
    if result is not out:
        out[...] = result
    return out


def linear_forward(x, weight, bias=None, activation="identity", negative_slope=0.01, out=None):
    """y = act(x @ weight.T + bias), bias add and activation fused.

    x: (N, in); weight: (out_features, in); bias: (out_features,) or None;
    activation: one of FUSABLE_ACTIVATIONS; out: (N, out_features) or None.
    Returns y: (N, out_features).
    """
    n, fout = x.shape[0], weight.shape[0]
    x, weight = _contiguous(x), _contiguous(weight)
    y = np.empty((n, fout), dtype=x.dtype) if out is None else _contiguous(out)
    has_bias = bias is not None
    bias_arg = _contiguous(bias) if has_bias else _NO_BIAS[x.dtype]
    transposed = bool(n and fout and transposed_forward(n, fout, blas.on_mkl()))
    zt = scratch("linear_forward_t", (fout, n), x.dtype) if transposed else _NO_SCRATCH[x.dtype]
    _linear_forward(y.size, *blas.target(x.dtype), x, weight, bias_arg, has_bias,
                    _CODES[activation], float(negative_slope), y, transposed, zt)
    return y if out is None else _written(out, y)


def linear_backward(grad_out, x, weight, y=None, activation="identity", negative_slope=0.01,
                    grad_weight=None, grad_bias=None, grad_in=None, need_grad_in=True,
                    scratch=None, accumulate=True):
    """Backward of ``linear_forward``.

    grad_out: (N, out_features), not modified; x: (N, in); weight: (out_features, in);
    y: (N, out_features), the forward output (unused for 'identity');
    grad_weight: (out_features, in) and grad_bias: (out_features,) or None, accumulated
    (overwritten when not accumulate);
    grad_in: (N, in) or None, written; scratch: (N, out_features) buffer for
    g = grad_out * act'(y), or None. Returns grad_in = g @ weight, or None.
    """
    act = _CODES[activation]
    dtype = x.dtype
    grad_out, x, weight = _contiguous(grad_out), _contiguous(x), _contiguous(weight)
    if act == IDENTITY:
        # g is grad_out itself, which the kernel's (untaken) activation branch would
        # write: a read-only one is copied so that it compiles
        g = grad_out if grad_out.flags.writeable else grad_out.copy()
        y = g
    else:
        g = np.empty_like(grad_out) if scratch is None else _contiguous(scratch)
        y = _contiguous(y)
    gw = _NO_WEIGHT_GRAD[dtype] if grad_weight is None else _contiguous(grad_weight)
    gb = _NO_BIAS[dtype] if grad_bias is None else _contiguous(grad_bias)
    if need_grad_in:
        gi = np.empty_like(x) if grad_in is None else _contiguous(grad_in)
    else:
        gi = _NO_WEIGHT_GRAD[dtype]
    _linear_backward(g.size, *blas.target(dtype), grad_out, x, weight, y, act,
                     float(negative_slope), g, gw, grad_weight is not None, gb,
                     grad_bias is not None, bool(accumulate), gi, bool(need_grad_in), _BLOCK)
    if grad_weight is not None:
        _written(grad_weight, gw)
    if grad_bias is not None:
        _written(grad_bias, gb)
    if not need_grad_in:
        return None
    return gi if grad_in is None else _written(grad_in, gi)
