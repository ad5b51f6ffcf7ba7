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
from .config import helper, kernel

IDENTITY, RELU, LEAKY_RELU, SIGMOID, TANH = 0, 1, 2, 3, 4
_CODES = {"identity": IDENTITY, "relu": RELU, "leaky_relu": LEAKY_RELU,
          "sigmoid": SIGMOID, "tanh": TANH}
_BLOCK = 64  # columns per prange iteration in the backward pass
_NO_BIAS = {np.dtype(np.float32): np.empty(0, np.float32),
            np.dtype(np.float64): np.empty(0, np.float64)}


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


@kernel
def _bias_activation(z, bias, has_bias, act, slope):  # INOUT z (N, F); IN bias (F,)
    for i in prange(z.shape[0]):
        _bias_activation_row(z[i], bias, has_bias, act, slope)


@kernel
def _bias_activation_transposed(zt, bias, has_bias, act, slope, out):
    # IN zt (F, N) = (x @ W.T).T, bias (F,); OUT out (N, F)
    f, n = zt.shape
    for i in prange(n):
        row = out[i]
        for j in range(f):
            row[j] = zt[j, i]
        _bias_activation_row(row, bias, has_bias, act, slope)


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


@kernel
def _activation_grad(grad_out, y, act, slope, g, grad_bias, has_bias, block):
    # IN grad_out, y (N, F); OUT g (N, F); INOUT grad_bias (F,) (+= column sums of g)
    # Rows are sliced to the block so every inner loop starts at 0: Numba then knows
    # the index is non-negative, drops its wraparound check and LLVM vectorizes. One
    # row loop per activation (the helper inlined with act a constant): with the
    # activation tested inside the row loop, 128x100 took 8.1 us instead of 3.4-3.6.
    n, f = grad_out.shape
    for b in prange((f + block - 1) // block):
        j0 = b * block
        j1 = min(f, j0 + block)
        bias_block = grad_bias[j0:j1]
        if act == RELU:
            _activation_grad_rows(grad_out, y, g, bias_block, j0, j1, RELU, has_bias, slope)
        elif act == LEAKY_RELU:
            _activation_grad_rows(grad_out, y, g, bias_block, j0, j1, LEAKY_RELU, has_bias,
                                  slope)
        elif act == SIGMOID:
            _activation_grad_rows(grad_out, y, g, bias_block, j0, j1, SIGMOID, has_bias,
                                  slope)
        elif act == TANH:
            _activation_grad_rows(grad_out, y, g, bias_block, j0, j1, TANH, has_bias, slope)
        else:
            _activation_grad_rows(grad_out, y, g, bias_block, j0, j1, IDENTITY, has_bias,
                                  slope)


@kernel
def _column_sums(a, out, block):  # IN a (N, F); INOUT out (F,) += a.sum(0)
    n, f = a.shape
    for b in prange((f + block - 1) // block):
        j0 = b * block
        j1 = min(f, j0 + block)
        out_block = out[j0:j1]
        for i in range(n):
            row = a[i, j0:j1]
            for j in range(j1 - j0):
                out_block[j] += row[j]


def linear_forward(x, weight, bias=None, activation="identity", negative_slope=0.01, out=None):
    """y = act(x @ weight.T + bias), bias add and activation fused.

    x: (N, in); weight: (out_features, in); bias: (out_features,) or None;
    activation: one of FUSABLE_ACTIVATIONS; out: (N, out_features) or None.
    Returns y: (N, out_features).
    """
    n, fout = x.shape[0], weight.shape[0]
    if out is None:
        out = np.empty((n, fout), dtype=x.dtype)
    act = _CODES[activation]
    has_bias = bias is not None
    bias_arg = bias if has_bias else _NO_BIAS[x.dtype]
    mkl = blas.on_mkl(n * x.shape[1] * fout, x, weight)
    if n and fout and transposed_forward(n, fout, mkl):  # y.T = W @ x.T (gemm_shapes.py)
        zt = scratch("linear_forward_t", (fout, n), x.dtype)
        blas.matmul_nt(weight, x, zt)
        _bias_activation_transposed(out.size, zt, bias_arg, has_bias, act,
                                    float(negative_slope), out)
        return out
    blas.matmul_nt(x, weight, out)
    if has_bias or act != IDENTITY:
        _bias_activation(out.size, out, bias_arg, has_bias, act, float(negative_slope))
    return out


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
    has_bias = grad_bias is not None
    if has_bias and not accumulate:
        grad_bias[...] = 0      # (out_features,): the column sums below add into it
    if act == IDENTITY:
        g = grad_out
        if has_bias:
            _column_sums(g.size, g, grad_bias, _BLOCK)
    else:
        g = np.empty_like(grad_out) if scratch is None else scratch
        _activation_grad(g.size, grad_out, y, act, float(negative_slope), g,
                         grad_bias if has_bias else _NO_BIAS[x.dtype], has_bias, _BLOCK)
    if grad_weight is not None:
        blas.matmul_tn(g, x, grad_weight, accumulate)
    if not need_grad_in:
        return None
    if grad_in is None:
        grad_in = np.empty_like(x)
    return blas.matmul_nn(g, weight, grad_in)
