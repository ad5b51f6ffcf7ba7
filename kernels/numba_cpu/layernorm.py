"""Layer normalisation forward and backward over (N, D) rows.

Each row's statistics (float64 sums) and output or grad_in come from one task, so a
row's result never depends on the thread count. The backward is one pass over g and x:
rows go in fixed chunks (BatchNorm's, chunks.py: a function of N only), each chunk also
summing its rows' g * xhat and g into its own partial (the weight and bias gradients, in
x's type), in the same loop as the row's two sums, and the partials are added in chunk
order in float64: the same bits for any thread count. (Column blocks walking every row
instead read memory with a stride: 2.8 ms for 4096x1024 against 1.2 ms for the row pass.)
The backward's row sums run in x's type, as PyTorch's: this loop is compute-bound, and
float64 sums (a conversion per term) took it from 1.66 to 2.0 ms at 4096x1024.
A missing weight is a vector of ones in the backward; in the forward optional weight
and bias are empty arrays plus a flag, tested outside the inner loops.
"""
import numpy as np
from numba import prange

from ._buffers import scratch
from .chunks import chunk_rows, n_chunks
from .config import kernel, serial_kernel
_NONE = {np.dtype(np.float32): np.empty(0, np.float32),
         np.dtype(np.float64): np.empty(0, np.float64)}


@kernel
def _forward(x, weight, bias, has_weight, has_bias, eps, out, save_mean, save_invstd):
    # IN x (N, D), weight, bias (D,) or empty; OUT out (N, D), save_mean, save_invstd (N,)
    n, d = x.shape
    for i in prange(n):
        row = x[i]
        s = 0.0
        for j in range(d):
            s += row[j]
        mean = x.dtype.type(s / d)
        q = 0.0
        for j in range(d):
            v = np.float64(row[j] - mean)
            q += v * v
        inv = x.dtype.type(1.0 / np.sqrt(q / d + eps))
        save_mean[i] = mean
        save_invstd[i] = inv
        o = out[i]
        if has_weight and has_bias:  # one loop per case (PyTorch's default is the first)
            for j in range(d):
                o[j] = (row[j] - mean) * inv * weight[j] + bias[j]
        elif has_weight:
            for j in range(d):
                o[j] = (row[j] - mean) * inv * weight[j]
        elif has_bias:
            for j in range(d):
                o[j] = (row[j] - mean) * inv + bias[j]
        else:
            for j in range(d):
                o[j] = (row[j] - mean) * inv


@kernel
def _backward(g, x, weight, save_mean, save_invstd, grad_in, partial, want_params):
    # IN g, x (N, D), weight (D,) (ones for no weight), save_mean, save_invstd (N,);
    # OUT grad_in (N, D), partial (chunks, 2, D) in x's type: each chunk's column sums
    # of g * xhat and of g
    n, d = x.shape
    nch = partial.shape[0]
    zero = x.dtype.type(0)
    for k in prange(nch):
        r0, r1 = chunk_rows(k, nch, n)
        pw = partial[k, 0]
        pb = partial[k, 1]
        if want_params:
            for j in range(d):
                pw[j] = zero
                pb[j] = zero
        for i in range(r0, r1):
            gr = g[i]
            xr = x[i]
            mean = save_mean[i]
            inv = save_invstd[i]
            a = zero
            b = zero
            if want_params:
                for j in range(d):
                    gv = gr[j]
                    xh = (xr[j] - mean) * inv
                    gx = gv * weight[j]
                    a += gx
                    b += gx * xh
                    pw[j] += gv * xh
                    pb[j] += gv
            else:
                for j in range(d):
                    gx = gr[j] * weight[j]
                    a += gx
                    b += gx * ((xr[j] - mean) * inv)
            ma = x.dtype.type(a / d)
            mb = x.dtype.type(b / d)
            gi = grad_in[i]
            for j in range(d):
                gi[j] = inv * (gr[j] * weight[j] - ma - (xr[j] - mean) * inv * mb)


@serial_kernel
def _add_partials(partial, grad_weight, grad_bias, has_weight, has_bias):
    # IN partial (chunks, 2, D); INOUT grad_weight, grad_bias (D,) or empty
    nch, _, d = partial.shape
    for j in range(d):
        sw = 0.0
        sb = 0.0
        for k in range(nch):  # in chunk order, in float64: the same bits for any thread count
            sw += partial[k, 0, j]
            sb += partial[k, 1, j]
        if has_weight:
            grad_weight[j] += sw
        if has_bias:
            grad_bias[j] += sb


def layer_norm_forward(x, weight=None, bias=None, eps=1e-5, out=None, save_mean=None,
                       save_invstd=None):
    """Layer normalisation of each row. x, out: (N, D); weight, bias: (D,) or None;
    save_mean, save_invstd: (N,) or None. Returns (y, save_mean, save_invstd)."""
    n = x.shape[0]
    out = np.empty_like(x) if out is None else out
    save_mean = np.empty(n, x.dtype) if save_mean is None else save_mean
    save_invstd = np.empty(n, x.dtype) if save_invstd is None else save_invstd
    none = _NONE[x.dtype]
    _forward(x.size, x, none if weight is None else weight, none if bias is None else bias,
             weight is not None, bias is not None, float(eps), out, save_mean, save_invstd)
    return out, save_mean, save_invstd


def layer_norm_backward(grad_out, x, weight, save_mean, save_invstd, grad_weight=None,
                        grad_bias=None, grad_in=None):
    """Backward of layer_norm_forward; accumulates grad_weight, grad_bias (D,) and
    returns grad_in (N, D)."""
    n, d = x.shape
    none = _NONE[x.dtype]
    if weight is None:
        weight = scratch("layer_norm_ones", (d,), x.dtype)
        weight.fill(1)
    want = grad_weight is not None or grad_bias is not None
    partial = scratch("layer_norm_partial", (n_chunks(n), 2, d) if want else (1, 2, 0),
                      x.dtype)
    grad_in = np.empty_like(x) if grad_in is None else grad_in
    _backward(x.size, grad_out, x, weight, save_mean, save_invstd, grad_in, partial, want)
    if want:
        _add_partials(partial, none if grad_weight is None else grad_weight,
                      none if grad_bias is None else grad_bias, grad_weight is not None,
                      grad_bias is not None)
    return grad_in
