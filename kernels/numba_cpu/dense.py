"""Linear layer: each forward and each backward one compiled call, BLAS for the
products (called by address: blas.py) and one pass for everything around them.

Forward: ``out = x @ W.T`` by BLAS, then one parallel pass adds the bias and applies
the activation in place; for a short batch of a wide layer BLAS computes the transpose
``W @ x.T`` instead, much faster there (kernels/gemm_shapes.py), and the pass reads it
transposed into out. Backward: one pass computes g = grad_out * act'(y) and the column
sums of g for grad_bias, then BLAS accumulates grad_weight += g.T @ x and writes
grad_in = g @ W.

The bias gradient is summed by row chunks whose number depends on N alone (chunks.py's
``n_chunks``), each chunk into its own partial, the partials added in chunk order:
bitwise identical results for any thread count.
"""
import numpy as np
from numba import prange

from ..gemm_shapes import transposed_forward
from . import blas, vmath
from . import _buffers
from .chunks import MAX_CHUNKS, chunk_rows, n_chunks
from .config import OPTIONS, Kernel, helper


def blas_kernel(fn):
    """A ``Kernel`` that calls BLAS: compiled with the GIL released (``nogil``), as a
    ctypes or SciPy call into BLAS runs, so other Python threads go on meanwhile."""
    return Kernel(fn, {**OPTIONS, "nogil": True})


IDENTITY, RELU, LEAKY_RELU, SIGMOID, TANH = 0, 1, 2, 3, 4
_CODES = {"identity": IDENTITY, "relu": RELU, "leaky_relu": LEAKY_RELU,
          "sigmoid": SIGMOID, "tanh": TANH}
_NO_BIAS = {np.dtype(np.float32): np.empty(0, np.float32),
            np.dtype(np.float64): np.empty(0, np.float64)}
# the stand-in for an absent 2-D array: grad_weight, grad_in, y and g for identity, zt
# when not transposed
_NO_MATRIX = {dtype: np.empty((0, 0), dtype) for dtype in _NO_BIAS}
# the bias partials without a bias: a row of nothing for each chunk
_NO_PARTIAL = {dtype: np.empty((MAX_CHUNKS, 0), dtype) for dtype in _NO_BIAS}


@helper
def _bias_activation_row(z, i, bias, has_bias, act, slope):
    # INOUT z (N, F): row i; IN bias (F,). 2-D indexing, not a view of the row (see
    # _activation_grad_rows)
    f = z.shape[1]
    zero = z.dtype.type(0)
    one = z.dtype.type(1)
    s = z.dtype.type(slope)
    lo, hi = vmath.exp_limits(one)   # as the standalone sigmoid: float64's own range
    if has_bias:
        for j in range(f):
            z[i, j] += bias[j]
    if act == RELU:
        for j in range(f):
            z[i, j] = zero if z[i, j] < zero else z[i, j]
    elif act == LEAKY_RELU:
        for j in range(f):
            z[i, j] = z[i, j] if z[i, j] > zero else z[i, j] * s
    elif act == SIGMOID:
        # the standalone sigmoid kernel's formula (activations._sigmoid), so a fused
        # Linear+Sigmoid equals the unfused pair bit for bit
        for j in range(f):
            v = -z[i, j]
            r = one / (one + vmath.exp_core(min(max(v, lo), hi)))
            z[i, j] = zero if v > hi else r
    elif act == TANH:
        for j in range(f):
            z[i, j] = vmath.tanh(z[i, j])


@helper
def _activation_grad_rows(grad_out, y, g, sums, r0, r1, act, has_bias, slope):
    """g[r0:r1] = grad_out * act'(y) on those rows, and sums (F,) = their column sums
    when has_bias (for identity: of grad_out, and g is not touched). Called with act a
    constant: see _activation_grad_chunk."""
    zero = y.dtype.type(0)
    one = y.dtype.type(1)
    s = y.dtype.type(slope)
    f = grad_out.shape[1]
    if has_bias:
        for j in range(f):
            sums[j] = zero
    # 2-D indexing, not a view of each row, whose reference counting dominated narrow
    # rows: the bias sums of 1024 rows of 10 values took 15 us with views, 4.7 indexed
    for i in range(r0, r1):
        if act == RELU:
            for j in range(f):
                g[i, j] = zero if y[i, j] <= zero else grad_out[i, j]  # PyTorch's select
        elif act == LEAKY_RELU:
            for j in range(f):
                g[i, j] = grad_out[i, j] * (one if y[i, j] > zero else s)
        elif act == SIGMOID:
            for j in range(f):
                g[i, j] = grad_out[i, j] * y[i, j] * (one - y[i, j])
        elif act == TANH:
            for j in range(f):
                g[i, j] = grad_out[i, j] * (one - y[i, j] * y[i, j])
        if has_bias:
            if act == IDENTITY:
                for j in range(f):
                    sums[j] += grad_out[i, j]
            else:
                for j in range(f):
                    sums[j] += g[i, j]


@helper
def _activation_grad_chunk(grad_out, y, act, slope, g, sums, has_bias, r0, r1):
    """_activation_grad_rows with act a constant in each call: with the activation
    tested inside the row loop, 128x100 took 8.1 us instead of 3.4-3.6."""
    if act == RELU:
        _activation_grad_rows(grad_out, y, g, sums, r0, r1, RELU, has_bias, slope)
    elif act == LEAKY_RELU:
        _activation_grad_rows(grad_out, y, g, sums, r0, r1, LEAKY_RELU, has_bias, slope)
    elif act == SIGMOID:
        _activation_grad_rows(grad_out, y, g, sums, r0, r1, SIGMOID, has_bias, slope)
    elif act == TANH:
        _activation_grad_rows(grad_out, y, g, sums, r0, r1, TANH, has_bias, slope)
    else:
        _activation_grad_rows(grad_out, y, g, sums, r0, r1, IDENTITY, has_bias, slope)


@blas_kernel
def _linear_forward(gemm, ilp64, gemv, x, weight, bias, has_bias, act, slope, out,
                    transposed, zt):
    # IN x (N, K), weight (F, K), bias (F,); OUT out (N, F); zt (F, N) scratch when
    # transposed. gemm, ilp64: blas.target; gemv: blas.gemv_target
    n, k = x.shape
    f = weight.shape[0]
    if k > 0 and (n == 1 or f == 1):
        # a matrix-vector product: gemv, as the Cython kernel (gemm packs a whole matrix
        # for one column: 784 -> 100 at batch 1, 1 thread, 21 -> 7 us a call)
        if n == 1:
            # out (F,) = weight (F, K) @ x (K,), weight column-major (K, F)
            blas.gemv(gemv, blas.T, k, f, weight, k, x, 0.0, out)
        else:
            # out (N,) = x (N, K) @ weight (K,), x column-major (K, N)
            blas.gemv(gemv, blas.T, k, n, x, k, weight, 0.0, out)
    elif transposed:
        # column-major zt.T (N, F) = x (N, K) @ weight.T (K, F)
        blas.gemm(gemm, ilp64, blas.T, blas.N, n, f, k, x, k, weight, k, 0.0, zt, n)
        for i in prange(n):
            for j in range(f):
                out[i, j] = zt[j, i]
            _bias_activation_row(out, i, bias, has_bias, act, slope)
        return
    else:
        # column-major out.T (F, N) = weight (F, K) @ x.T (K, N)
        blas.gemm(gemm, ilp64, blas.T, blas.N, f, n, k, weight, k, x, k, 0.0, out, f)
    if has_bias or act != IDENTITY:
        for i in prange(n):
            _bias_activation_row(out, i, bias, has_bias, act, slope)


@blas_kernel
def _linear_backward(gemm, ilp64, gemv, grad_out, x, weight, y, act, slope, g, grad_weight,
                     has_weight_grad, grad_bias, has_bias, partial, accumulate, grad_in,
                     need_grad_in):
    # IN grad_out, y (N, F), x (N, K), weight (F, K); OUT g (N, F) (unused for
    # 'identity', whose g is grad_out), grad_in (N, K); INOUT grad_weight (F, K),
    # grad_bias (F,); partial (n_chunks(N), F) scratch for the bias sums
    # Rows go in n_chunks(N) chunks, a function of N alone, each summing its columns
    # into its own row of partial; the partials are added in chunk order, so the bias
    # gradient has the same bits for any thread count. (Column blocks that each walk
    # every row, which need no partials, ran 256x1024 at 61-88 us against 25 us.)
    n, k = x.shape
    f = weight.shape[0]
    if act != IDENTITY or has_bias:
        nch = n_chunks(n)
        for c in prange(nch):
            r0, r1 = chunk_rows(c, nch, n)
            _activation_grad_chunk(grad_out, y, act, slope, g, partial[c], has_bias, r0, r1)
        if has_bias:
            if not accumulate:
                grad_bias[:] = 0
            for c in range(nch):
                sums = partial[c]
                for j in range(f):
                    grad_bias[j] += sums[j]
    d = grad_out if act == IDENTITY else g   # the gradient of x @ W.T + b
    # matrix-vector products go to gemv, as in the forward (an empty batch to gemm,
    # which zeroes an overwritten grad_weight)
    if has_weight_grad:
        if f == 1 and k > 0 and n > 0:
            # grad_weight (K,) = x.T (K, N) @ d (N,) [+ grad_weight]
            blas.gemv(gemv, blas.N, k, n, x, k, d, 1.0 if accumulate else 0.0,
                      grad_weight)
        else:
            # column-major grad_weight.T (K, F) = x.T (K, N) @ d (N, F) [+ grad_weight.T]
            blas.gemm(gemm, ilp64, blas.N, blas.T, k, f, n, x, k, d, f,
                      1.0 if accumulate else 0.0, grad_weight, k)
    if need_grad_in:
        if n == 1 and k > 0:
            # grad_in (K,) = weight.T (K, F) @ d (F,)
            blas.gemv(gemv, blas.N, k, f, weight, k, d, 0.0, grad_in)
        else:
            # column-major grad_in.T (K, N) = weight.T (K, F) @ d.T (F, N)
            blas.gemm(gemm, ilp64, blas.N, blas.N, k, n, f, weight, k, d, f, 0.0,
                      grad_in, k)


def linear_forward(x, weight, bias=None, activation="identity", negative_slope=0.01, out=None):
    """y = act(x @ weight.T + bias), bias add and activation fused.

    x: (N, in); weight: (out_features, in); bias: (out_features,) or None;
    activation: one of FUSABLE_ACTIVATIONS; out: (N, out_features) or None.
    Returns y: (N, out_features).
    """
    n, fout = x.shape[0], weight.shape[0]
    if out is None:
        out = np.empty((n, fout), dtype=x.dtype)
    has_bias = bias is not None
    # (one row goes to gemv, untransposed)
    transposed = bool(n > 1 and fout and transposed_forward(n, fout, blas.on_mkl()))
    zt = (_buffers.scratch("linear_forward_t", (fout, n), x.dtype) if transposed
          else _NO_MATRIX[x.dtype])
    _linear_forward(out.size, *blas.target(x.dtype), blas.gemv_target(x.dtype), x, weight,
                    bias if has_bias else _NO_BIAS[x.dtype], has_bias, _CODES[activation],
                    float(negative_slope), out, transposed, zt)
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
    dtype = x.dtype
    if act == IDENTITY:
        g = y = _NO_MATRIX[dtype]
    else:
        g = np.empty_like(grad_out) if scratch is None else scratch
    if need_grad_in and grad_in is None:
        grad_in = np.empty_like(x)
    chunks = n_chunks.py_func(grad_out.shape[0])
    partial = (_buffers.scratch("linear_bias_partial", (chunks, grad_out.shape[1]), dtype)
               if grad_bias is not None else _NO_PARTIAL[dtype])
    # one chunk runs serially whatever its size (no work for a second thread)
    _linear_backward(grad_out.size if chunks > 1 else 0, *blas.target(dtype),
                     blas.gemv_target(dtype), grad_out, x, weight, y, act,
                     float(negative_slope), g,
                     _NO_MATRIX[dtype] if grad_weight is None else grad_weight,
                     grad_weight is not None,
                     _NO_BIAS[dtype] if grad_bias is None else grad_bias,
                     grad_bias is not None, partial, bool(accumulate),
                     grad_in if need_grad_in else _NO_MATRIX[dtype], bool(need_grad_in))
    return grad_in if need_grad_in else None
