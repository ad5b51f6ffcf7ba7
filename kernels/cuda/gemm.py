"""Matrix products: cuBLAS through CuPy when available, else a tiled shared-memory GEMM.

``gemm(a, b, c, trans_a, trans_b, accumulate, bias, act, slope)`` computes, on device
arrays, c = act(op(a) @ op(b) [+ c] [+ bias]) with op(a) = a.T when trans_a.
Shapes: op(a): (M, K), op(b): (K, N), c: (M, N), bias: (N,) or None.

The numba GEMM does the bias add and activation in its epilogue (one kernel); the
cuBLAS path runs the product then one fused bias+activation pass (``epilogue``).
cuBLAS is called through CuPy's low-level bindings on the numba arrays' device
pointers (config.GEMM_DIRECT), else through CuPy arrays that view the numba arrays
zero-copy (``__cuda_array_interface__``). Each product is put on the stream numba's
launches use (``numba_stream``), so cuBLAS's and numba's kernels run in order even when
the user made another CuPy stream current or CuPy's cuBLAS handle was left on one.
"""
import math
import warnings

import numpy as np
from numba import cuda

from . import config
from ._common import SIMULATOR, flat
from .activations import sigmoid_scalar
from ._reduce import cached_factory
from .device import fill_zero
from .launch import jit_kernel, numba_stream

ACT_CODES = {"identity": 0, "relu": 1, "leaky_relu": 2, "sigmoid": 3, "tanh": 4}


# Why CuPy is not used although config.GEMM allows it ("" when it is, or not wanted):
# backend_info() shows it beside the numba GEMM.
_CUPY_UNUSABLE = ""


def _load_cupy():
    """CuPy, or None: not installed, not wanted (FASTNN_CUDA_GEMM=numba, the simulator),
    or installed but failing at import (a CuPy built for another CUDA raises its own
    errors, not ImportError), which falls back to the numba GEMM with a warning instead of
    taking the whole cuda backend down; FASTNN_CUDA_GEMM=cublas makes either a failure."""
    global _CUPY_UNUSABLE
    if config.GEMM == "numba" or SIMULATOR:
        return None
    try:
        import cupy
    except ImportError:
        if config.GEMM == "cublas":
            raise
        return None
    except Exception as error:   # noqa: BLE001 (any failure of a broken install)
        if config.GEMM == "cublas":
            raise
        _CUPY_UNUSABLE = f"CuPy failed at import ({type(error).__name__}: {error})"
        warnings.warn(f"fastnn cuda: {_CUPY_UNUSABLE}; using the numba GEMM",
                      RuntimeWarning, stacklevel=2)
        return None
    return cupy


_cupy = _load_cupy()


def _load_cublas_gemm():
    """cupy.cublas.gemm(transa, transb, a, b, out, alpha, beta): out = alpha op(a) op(b)
    + beta out in one cuBLAS call on C-contiguous arrays (None on CuPy without it)."""
    if _cupy is None:
        return None
    try:
        from cupy import cublas
    except ImportError:
        return None
    return getattr(cublas, "gemm", None)


_cublas_gemm = _load_cublas_gemm()


def _load_raw_cublas():
    """(CuPy's cuBLAS bindings, cupy.cuda.device) for calling sgemm/dgemm on raw device
    pointers, or None. Wrapping three numba arrays as CuPy arrays and going through
    cupy.cublas.gemm cost more host time per product than the rest of a Linear layer's
    launches (a training step is bound by host time between its GPU-bound GEMMs)."""
    if _cupy is None or not config.GEMM_DIRECT:
        return None
    try:
        from cupy.cuda import device
        from cupy_backends.cuda.libs import cublas
    except ImportError:
        return None
    return cublas, device


_raw_cublas = _load_raw_cublas()


def _cupy_stream():
    """CuPy's Stream object for ``numba_stream()``: what the CuPy-array path runs under."""
    if numba_stream() == 2:
        return _cupy.cuda.Stream.ptds
    return _cupy.cuda.Stream.null


def _host_scalar(value, dtype):
    """(array kept alive, its address): alpha or beta for cuBLAS's host pointer mode."""
    arr = np.full(1, value, dtype)
    return arr, arr.ctypes.data


_SCALARS = {np.dtype(t): {v: _host_scalar(v, t) for v in (0.0, 1.0)}
            for t in (np.float32, np.float64)}


def _address(d):
    """Device address of a device array's first element."""
    return d.__cuda_array_interface__["data"][0]


def _direct_gemm(a, b, c, trans_a, trans_b, accumulate):
    """c = op(a) @ op(b) [+ c] in one cuBLAS call on C-contiguous float arrays.

    cuBLAS is column-major: a C-contiguous (r, s) array is its (s, r) transpose there,
    so the call computes c.T (N, M) = op(b).T @ op(a).T with each operand untransposed
    (OP_N) where the row-major product has it plain."""
    cublas, device = _raw_cublas
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    gemm_fn = cublas.sgemm if c.dtype == np.float32 else cublas.dgemm
    scalars = _SCALARS[c.dtype]
    handle = device.get_cublas_handle()
    # CuPy's own routines set the handle's stream to CuPy's current stream and leave it
    # there: a product after the user's `with cupy.cuda.Stream():` would otherwise run
    # on that stream, unordered with numba's kernels (or on a destroyed stream).
    cublas.setStream(handle, numba_stream())
    cublas.setPointerMode(handle, cublas.CUBLAS_POINTER_MODE_HOST)
    gemm_fn(handle, cublas.CUBLAS_OP_T if trans_b else cublas.CUBLAS_OP_N,
            cublas.CUBLAS_OP_T if trans_a else cublas.CUBLAS_OP_N, n, m, k,
            scalars[1.0][1], _address(b), max(1, b.shape[1]), _address(a),
            max(1, a.shape[1]), scalars[1.0 if accumulate else 0.0][1], _address(c), n)


def _cupy_gemm(a, b, c, trans_a, trans_b, accumulate):
    """c = op(a) @ op(b) [+ c] through CuPy arrays viewing the numba arrays zero-copy."""
    ca, cb, cc = _cupy.asarray(a), _cupy.asarray(b), _cupy.asarray(c)
    if _cublas_gemm is not None:  # one cuBLAS call; beta=1 accumulates in place
        _cublas_gemm("T" if trans_a else "N", "T" if trans_b else "N", ca, cb, out=cc,
                     alpha=1.0, beta=1.0 if accumulate else 0.0)
        return
    op_a = ca.T if trans_a else ca
    op_b = cb.T if trans_b else cb
    if accumulate:
        cc += op_a @ op_b
    else:
        _cupy.matmul(op_a, op_b, out=cc)


def _direct_ok(*arrays):
    return all(d.dtype in _SCALARS and d.flags["C_CONTIGUOUS"] for d in arrays)


def engine():
    """'cublas' or 'numba', and a description, for backend_info()."""
    if _cupy is not None:
        how = ("sgemm/dgemm on raw device pointers" if _raw_cublas is not None
               else "CuPy arrays")
        return "cublas", f"cuBLAS through CuPy {_cupy.__version__} (zero-copy, {how})"
    detail = f"numba.cuda tiled shared-memory GEMM ({config.TILE}x{config.TILE} tiles)"
    return "numba", f"{detail}; {_CUPY_UNUSABLE}" if _CUPY_UNUSABLE else detail


@cuda.jit(device=True)
def activate(z, act, slope):
    """The fusable activations by code (ACT_CODES), in z's type."""
    if act == 1:
        return z if z > 0 or z != z else type(z)(0)
    if act == 2:
        return z if z > 0 else z * slope
    if act == 3:
        return sigmoid_scalar(z)
    if act == 4:
        return math.tanh(z)
    return z


@cuda.jit(device=True)
def activation_backward(g, y, act, slope):
    """g * act'(z) from the output y = act(z), in y's type. ReLU's is a select, as
    PyTorch's and the standalone relu_backward: g where y is positive or NaN, 0 where
    y <= 0 even for an infinite or NaN g (a product would give NaN for both)."""
    one = type(y)(1)
    if act == 1:
        return type(g)(0) if y <= 0 else g
    if act == 2:
        return g * (one if y > 0 else slope)
    if act == 3:
        return g * (y * (one - y))
    if act == 4:
        return g * (one - y * y)
    return g


@cached_factory
def _tiled(tile):
    @jit_kernel(threads=tile * tile)   # (1024-thread blocks at TILE 32)
    def gemm(a, b, c, trans_a, trans_b, accumulate, bias, has_bias, act, slope):
        """Grid-stride over output tiles; each tile walks K in tile-wide steps through
        shared memory. Accumulates in float64."""
        sa = cuda.shared.array((tile, tile), np.float64)
        sb = cuda.shared.array((tile, tile), np.float64)
        m, n = c.shape
        k_dim = a.shape[0] if trans_a else a.shape[1]
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tiles_n = (n + tile - 1) // tile
        tiles = ((m + tile - 1) // tile) * tiles_n
        for tile_id in range(cuda.blockIdx.x, tiles, cuda.gridDim.x):
            row0 = (tile_id // tiles_n) * tile
            col0 = (tile_id % tiles_n) * tile
            row = row0 + ty
            col = col0 + tx
            acc = np.float64(0.0)
            for k0 in range(0, k_dim, tile):
                # Neighbouring threads (tx) always read neighbouring addresses; a
                # transposed operand is stored transposed into its tile instead.
                if trans_a:  # sa[r, k] = a[k0 + k, row0 + r]
                    if k0 + ty < k_dim and row0 + tx < m:
                        sa[tx, ty] = a[k0 + ty, row0 + tx]
                    else:
                        sa[tx, ty] = 0.0
                elif row < m and k0 + tx < k_dim:
                    sa[ty, tx] = a[row, k0 + tx]
                else:
                    sa[ty, tx] = 0.0
                if trans_b:  # sb[k, c] = b[col0 + c, k0 + k]
                    if col0 + ty < n and k0 + tx < k_dim:
                        sb[tx, ty] = b[col0 + ty, k0 + tx]
                    else:
                        sb[tx, ty] = 0.0
                elif k0 + ty < k_dim and col < n:
                    sb[ty, tx] = b[k0 + ty, col]
                else:
                    sb[ty, tx] = 0.0
                cuda.syncthreads()
                for kk in range(tile):
                    acc += sa[ty, kk] * sb[kk, tx]
                cuda.syncthreads()
            if row < m and col < n:
                if accumulate:
                    acc += c[row, col]
                if has_bias:
                    acc += bias[col]
                c[row, col] = activate(acc, act, slope)

    return gemm


@jit_kernel
def _epilogue(c, bias, has_bias, act, slope, n_cols):
    """c (flat, rows of n_cols) = act(c + bias[col])."""
    for i in range(cuda.grid(1), c.size, cuda.gridsize(1)):
        z = c[i]
        if has_bias:
            z += bias[i % n_cols]
        c[i] = activate(z, act, slope)


_dummies = {}


def dummy(dtype):
    """A one-element device array standing in for a None array argument."""
    key = np.dtype(dtype)
    if key not in _dummies:
        _dummies[key] = cuda.to_device(np.zeros(1, dtype=key))
    return _dummies[key]


def gemm(a, b, c, trans_a=False, trans_b=False, accumulate=False, bias=None,
         act="identity", slope=0.0):
    """c = act(op(a) @ op(b) [+ c] [+ bias]) on device arrays; returns c."""
    m, n = c.shape
    if m == 0 or n == 0:
        return c
    code = ACT_CODES[act]
    slope = c.dtype.type(slope)
    has_bias = bias is not None
    bias = bias if has_bias else dummy(c.dtype)
    k = a.shape[0] if trans_a else a.shape[1]
    if _cupy is not None and k == 0:  # an empty sum; cuBLAS rejects CuPy's leading dim 0
        if not accumulate:
            fill_zero(c)
    elif _raw_cublas is not None and _direct_ok(a, b, c):
        _direct_gemm(a, b, c, trans_a, trans_b, accumulate)
    elif _cupy is not None:
        with _cupy_stream():   # CuPy runs on its current stream, maybe the user's
            _cupy_gemm(a, b, c, trans_a, trans_b, accumulate)
    if _cupy is not None:
        if has_bias or code:
            _epilogue[config.blocks(c.size), config.THREADS](flat(c), bias, has_bias, code,
                                                             slope, n)
        return c
    config.check()  # TILE x TILE threads a block: at most 1024
    tile = config.TILE
    tiles = ((m + tile - 1) // tile) * ((n + tile - 1) // tile)
    _tiled(tile)[max(1, min(config.MAX_BLOCKS, tiles)), (tile, tile)](
        a, b, c, trans_a, trans_b, accumulate, bias, has_bias, code, slope)
    return c
