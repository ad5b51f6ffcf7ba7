"""The Linear layers' and convolutions' matrix products: Fortran ``?gemm`` called by
address from the compiled kernels, so that a whole Linear forward or backward is one
compiled call (the convolutions' library: ``conv_target``).

Which BLAS, best first (the Cython backend's choice, kernels/cython/__init__.py):
Intel MKL's ILP64 ``?gemm_64`` when its wheel is installed (fastnn/mkl_blas.py: it runs
these shapes up to 2.2x faster than OpenBLAS on AVX-512 Xeons), else NumPy's ILP64
OpenBLAS ``?gemm_64_`` when it runs on the kernels' OpenMP pool (fastnn/blas_pool.py;
its sgemm ran the MLPs' products 5-22% faster than SciPy's), else SciPy's LP64
``scipy.linalg.cython_blas``. All three products of a layer go to one library, so
overwriting a gradient equals accumulating into zeros bit for bit; a product with one
row or one column goes to SciPy's ``?gemv`` instead (``gemv``: the Cython kernels'
choice too), both when overwriting and when accumulating.

``gemm`` is a Numba intrinsic: the compiled code passes each argument by reference as
Fortran expects and calls the address it is given. The address is an argument, not a
constant compiled in, so the kernels stay cacheable on disk and follow the library
chosen at run time. Called this way instead of through ctypes or SciPy's f2py wrappers
(Xeon, 2 threads, us, hot, whole linear_forward): the 784-100-10 MLP's 128x100 -> 10
layer 7.6 -> 4.7, its 128x784 -> 100 ReLU layer 81.7 -> 76; a ctypes call costs ~1.2 us
and each pointer 0.5 us, an f2py call 2-3 us, and the layer's elementwise pass took a
dispatch of its own.

A C-contiguous (R, K) array is a column-major (K, R) matrix with leading dimension K:
every product below is written on those transposes and runs without a copy.
"""
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic

from fastnn import blas_pool as _blas_pool
from fastnn import mkl_blas as _mkl_blas

from .config import helper

# (sgemm, dgemm) addresses of SciPy's LP64 BLAS, the fallback
_SCIPY = (get_cython_function_address("scipy.linalg.cython_blas", "sgemm"),
          get_cython_function_address("scipy.linalg.cython_blas", "dgemm"))
# (sgemv, dgemv) addresses of SciPy's LP64 BLAS: the matrix-vector products (``gemv``)
_SCIPY_GEMV = (get_cython_function_address("scipy.linalg.cython_blas", "sgemv"),
               get_cython_function_address("scipy.linalg.cython_blas", "dgemv"))
# what use_numpy_products / use_mkl_products asked for
_numpy_wanted = False
_mkl_wanted = False
# (sgemm, dgemm) ILP64 addresses the products go to (MKL's or NumPy's), or None: SciPy's
_ilp64 = None
_library = "scipy"

N, T = ord("N"), ord("T")   # Fortran's transpose flags


def _choose():
    global _ilp64, _library
    mkl = _mkl_blas.gemm_addresses() if _mkl_wanted else None
    numpy = _blas_pool.numpy_gemm_addresses() if _numpy_wanted else None
    if mkl is not None:
        _ilp64, _library = mkl, "mkl"
    elif numpy is not None:
        _ilp64, _library = numpy, "numpy"
    else:
        _ilp64, _library = None, "scipy"


def use_numpy_products(flag):
    """Products through NumPy's OpenBLAS when flag and it runs on the OpenMP pool
    (``blas_pool.numpy_gemm_addresses()``), unless MKL is in use; else SciPy's."""
    global _numpy_wanted
    _numpy_wanted = bool(flag)
    _choose()


def use_mkl_products(flag):
    """Products through MKL when flag and MKL is in use (``mkl_blas.load()``); else
    as ``use_numpy_products`` says."""
    global _mkl_wanted
    _mkl_wanted = bool(flag)
    _choose()


def library():
    """Which library the products go to: 'mkl', 'numpy' (its ILP64 OpenBLAS) or 'scipy'."""
    return _library


def on_mkl():
    """Whether the products go to Intel MKL."""
    return _library == "mkl"


def target(dtype):
    """(address, ilp64) of the ?gemm that products of dtype (float32 or float64) go to,
    the first two arguments of ``gemm``."""
    if _ilp64 is None:
        return scipy_target(dtype)
    return _ilp64[dtype == np.float64], True


def scipy_target(dtype):
    """``target`` for SciPy's LP64 BLAS, whatever the Linear products use."""
    return _SCIPY[dtype == np.float64], False


def gemv_target(dtype):
    """The address of the ?gemv that ``gemv`` calls for dtype: SciPy's LP64 BLAS, as the
    Cython kernels' matrix-vector products."""
    return _SCIPY_GEMV[dtype == np.float64]


def conv_target(dtype):
    """``target`` for the convolutions' products, which threads of a parallel region
    call at once (the Cython conv kernels' choice): MKL when the Linear products use it
    (on libgomp, a product called from such a thread runs on that thread alone while
    regions cannot nest: kernels/blas_threads.serial_blas turns nesting off), else
    SciPy's BLAS (kernels/blas_threads.py keeps it on the calling thread), never NumPy's
    OpenBLAS (its jobs would start threads of their own there). MKL against SciPy's
    OpenBLAS, 2 threads, forward / backward: 128x32x14x14 -> 64 3x3 4.3-4.9 / 8.5-9.1
    -> 3.6-3.9 / 7.0 ms, 32x64x16x16 -> 128 4.7 / 8.9 -> 4.0 / 7.1 ms."""
    return target(dtype) if on_mkl() else scipy_target(dtype)


@intrinsic
def _fortran_gemm(typingctx, address, ilp64, trans_a, trans_b, m, n, k, a, lda, b, ldb,
                  beta, c, ldc):
    """Call the Fortran ?gemm at ``address``: column-major c (m, n) = op(a) @ op(b) +
    beta c, alpha 1. ilp64: its integers are 64-bit (else 32-bit); trans_a, trans_b: N
    or T; a, b, c: C-contiguous arrays of one dtype, passed by their data pointers."""
    # C-contiguous arrays only: the data pointer is all BLAS is given (a strided array
    # is refused when its kernel compiles, as the Cython kernels' entries refuse it)
    if not all(isinstance(t, types.Array) and t.layout == "C" for t in (a, b, c)):
        return None
    sig = types.void(address, ilp64, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc)

    def codegen(context, builder, signature, args):
        tys = signature.args
        byte_ptr = ir.IntType(8).as_pointer()

        def by_reference(i, to):   # a stack slot holding argument i cast to type to
            value = context.cast(builder, args[i], tys[i], to)
            return builder.bitcast(cgutils.alloca_once_value(builder, value), byte_ptr)

        wide = context.cast(builder, args[1], tys[1], types.boolean)

        def integer(i):
            return builder.select(wide, by_reference(i, types.int64),
                                  by_reference(i, types.int32))

        def data(i):
            array = context.make_array(tys[i])(context, builder, args[i])
            return builder.bitcast(array.data, byte_ptr)

        dtype = tys[12].dtype
        one = context.get_constant(dtype, 1)
        alpha = builder.bitcast(cgutils.alloca_once_value(builder, one), byte_ptr)
        function_type = ir.FunctionType(ir.VoidType(), [byte_ptr] * 13)
        function = builder.inttoptr(context.cast(builder, args[0], tys[0], types.intp),
                                    function_type.as_pointer())
        builder.call(function, [
            by_reference(2, types.uint8), by_reference(3, types.uint8), integer(4),
            integer(5), integer(6), alpha, data(7), integer(8), data(9), integer(10),
            by_reference(11, dtype), data(12), integer(13)])
        return context.get_dummy_value()
    return sig, codegen


@helper
def gemm(address, ilp64, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc):
    """Column-major c (m, n) = op(a) (m, k) @ op(b) (k, n) + beta c through the ?gemm
    of ``target``; beta 0 or 1. a, b, c: C-contiguous arrays of c's dtype read as the
    column-major matrices with leading dimensions lda, ldb, ldc. An empty c is left
    alone; with k = 0 c becomes beta c (BLAS's own rule, without handing it the
    leading dimensions of 0 it refuses)."""
    if m == 0 or n == 0:
        return
    if k == 0:
        if beta == 0:
            c[:] = 0
        return
    _fortran_gemm(address, ilp64, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc)


@intrinsic
def _fortran_gemv(typingctx, address, trans, m, n, a, lda, x, beta, y):
    """Call the LP64 Fortran ?gemv at ``address``: column-major y = op(a) @ x + beta y,
    a (m, n), alpha 1, unit strides. a, x, y: C-contiguous arrays of one dtype, passed
    by their data pointers."""
    if not all(isinstance(t, types.Array) and t.layout == "C" for t in (a, x, y)):
        return None
    sig = types.void(address, trans, m, n, a, lda, x, beta, y)

    def codegen(context, builder, signature, args):
        tys = signature.args
        byte_ptr = ir.IntType(8).as_pointer()

        def by_reference(value):
            return builder.bitcast(cgutils.alloca_once_value(builder, value), byte_ptr)

        def cast(i, to):
            return by_reference(context.cast(builder, args[i], tys[i], to))

        def data(i):
            array = context.make_array(tys[i])(context, builder, args[i])
            return builder.bitcast(array.data, byte_ptr)

        dtype = tys[8].dtype
        alpha = by_reference(context.get_constant(dtype, 1))
        inc = by_reference(context.get_constant(types.int32, 1))
        function_type = ir.FunctionType(ir.VoidType(), [byte_ptr] * 11)
        function = builder.inttoptr(context.cast(builder, args[0], tys[0], types.intp),
                                    function_type.as_pointer())
        builder.call(function, [
            cast(1, types.uint8), cast(2, types.int32), cast(3, types.int32), alpha,
            data(4), cast(5, types.int32), data(6), inc, cast(7, dtype), data(8), inc])
        return context.get_dummy_value()
    return sig, codegen


@helper
def gemv(address, trans, m, n, a, lda, x, beta, y):
    """Column-major y = op(a) @ x + beta y, a (m, n) with leading dimension lda >= max(1,
    m), through the ?gemv at ``address`` (``gemv_target``); beta 0 (y not read) or 1.
    For a product with one row or one column, where gemm packs a whole matrix for it
    (784 -> 100 at batch 1: 21 -> 7 us a Linear forward, 1 thread). m, n < 2**31.
    With no inner dimension (n for N, m for T) y becomes beta y: BLAS's ?gemv returns
    at once when m or n is 0, leaving y unwritten even with beta 0."""
    if m == 0 or n == 0:
        if beta == 0:
            y[:] = 0
        return
    _fortran_gemv(address, trans, m, n, a, lda, x, beta, y)
