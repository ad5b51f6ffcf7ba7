"""Linear products that are matrix-vector products: one row (batch 1, the input-image
optimisation's step, single-sample inference) or one output feature (a regression or
binary head). The Cython backend runs them through gemv and the numba backend keeps
batch-1 weight gradients on BLAS; both must match PyTorch, write every output (also with
no input features or no output features, where gemv would write nothing), and overwrite
exactly what accumulating onto zeros gives."""
import numpy as np
import pytest
import torch

import fastnn
from fastnn import backend, ops

BACKENDS = [name for name in ("numpy", "numba", "cython") if name in backend.backends()]
SHAPES = [(1, 784, 100), (1, 1, 1), (1, 5, 1), (7, 33, 1), (64, 128, 1), (1, 0, 4),
          (3, 0, 1), (2, 9, 3), (1, 5, 0), (3, 4, 0)]


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{n}x{i}->{o}" for n, i, o in SHAPES])
@pytest.mark.parametrize("activation", ["identity", "relu"])
def test_vector_shaped_products_match_torch(name, dtype, shape, activation):
    n, fin, fout = shape
    rng = np.random.default_rng(n * 1000 + fin * 10 + fout)
    x = rng.standard_normal((n, fin)).astype(dtype)
    w = rng.standard_normal((fout, fin)).astype(dtype)
    b = rng.standard_normal(fout).astype(dtype)
    g = rng.standard_normal((n, fout)).astype(dtype)
    tx, tw, tb = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, w, b))
    ty = tx @ tw.T + tb
    if activation == "relu":
        ty = torch.relu(ty)
    ty.backward(torch.from_numpy(g))
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    with fastnn.use_backend(name):
        y = np.full((n, fout), np.nan, dtype)  # NaN where a kernel would leave it unwritten
        ops.linear_forward(x, w, b, activation, out=y)
        np.testing.assert_allclose(y, ty.detach().numpy(), **tol)
        gw, gb = np.zeros_like(w), np.zeros_like(b)
        gi = np.full_like(x, np.nan)
        ops.linear_backward(g, x, w, y, activation, grad_weight=gw, grad_bias=gb, grad_in=gi)
        np.testing.assert_allclose(gw, tw.grad.numpy(), **tol)
        np.testing.assert_allclose(gb, tb.grad.numpy(), **tol)
        np.testing.assert_allclose(gi, tx.grad.numpy(), **tol)
        gw2, gb2 = np.full_like(w, np.nan), np.full_like(b, np.nan)
        ops.linear_backward(g, x, w, y, activation, grad_weight=gw2, grad_bias=gb2,
                            accumulate=False, need_grad_in=False)
        np.testing.assert_array_equal(gw2, gw)
        np.testing.assert_array_equal(gb2, gb)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_numba_matrix_vector_products_are_scipys_gemv(dtype):
    """The numba backend runs one-row and one-output Linear products through SciPy's
    ?gemv, as the Cython backend does: the same bits as that gemv called directly
    (gemm, which it called before, packs the whole weight for one row: 784 -> 1024 at
    batch 1, 1 thread, took 306 us against NumPy's 103 and gemv's 77)."""
    from scipy.linalg import blas as scipy_blas
    gemv = scipy_blas.sgemv if dtype == np.float32 else scipy_blas.dgemv
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 784)).astype(dtype)
    w = rng.standard_normal((100, 784)).astype(dtype)
    g = rng.standard_normal((1, 100)).astype(dtype)
    xs = rng.standard_normal((64, 784)).astype(dtype)   # a batch, into one output
    head = rng.standard_normal((1, 784)).astype(dtype)
    gs = rng.standard_normal((64, 1)).astype(dtype)
    with fastnn.use_backend("numba"):
        y = ops.linear_forward(x, w)
        gi = ops.linear_backward(g, x, w, grad_weight=np.zeros_like(w))
        ys = ops.linear_forward(xs, head)
        gw = np.zeros_like(head)
        ops.linear_backward(gs, xs, head, grad_weight=gw, need_grad_in=False)
    # (a C-ordered (R, K) array transposed is the Fortran (K, R) matrix BLAS reads)
    np.testing.assert_array_equal(y[0], gemv(1.0, w.T, x[0], trans=1))
    np.testing.assert_array_equal(gi[0], gemv(1.0, w.T, g[0]))
    np.testing.assert_array_equal(ys[:, 0], gemv(1.0, xs.T, head[0], trans=1))
    np.testing.assert_array_equal(gw[0], gemv(1.0, xs.T, gs[:, 0].copy()))
