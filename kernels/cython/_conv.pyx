# cython: language_level=3
"""Convolution and pooling for the cython backend, each op one call without the GIL.

Algorithm (the same as the numba backend's, chosen by measurement): im2col feeding BLAS
GEMMs, with the batch split over our own OpenMP threads. Samples are taken in groups of
``nb`` (one sample once it has ``GROUP_MIN_COLS`` output positions; more for the small
late layers of ConvNet, so their GEMMs keep >= 128 columns), and each thread runs whole
groups start to finish in its own L2-sized scratch: with ``K = C_in * kH * kW``,
``P = H_out * W_out`` and ``L = nb * P``,

* forward: im2col ``col (K, L)``, then ``y (C_out, L) = W (C_out, K) @ col`` straight
  into the NCHW output (nb == 1; the bias is written first and GEMM adds to it), or into
  a channel-major buffer copied to NCHW with the bias (nb > 1);
* weight gradient: im2col again, ``gw (C_out, K) += g (C_out, L) @ col.T``; thread 0
  accumulates into ``grad_weight``, the others into partials added in thread order;
* input gradient: ``dcol (K, L) = W.T @ g`` into the same scratch, then col2im into the
  group's own samples of ``grad_in`` (no races).

BLAS runs on the calling thread meanwhile (kernels/blas_threads.py): one pool, not two.
Before this, one GEMM per chunk ran on OpenBLAS's threads between our parallel
im2col/col2im loops, and the two pools spun against each other on the 2 cores.
im2col of a stride-1 "same" layer copies each patch row as one span of the image plane
(shifted) and zeroes the wrapped edge columns; col2im adds rows through restrict
pointers (_conv_rows.h) so gcc vectorises them without overlap checks.

Measured (32x64x16x16 -> 128, 3x3 pad 1, forward + backward, ms; the old (a15a2b0)
and new kernels interleaved in one process with PyTorch; 1 thread: CPU time; 2 threads:
wall-clock median, "quiet" = started when the machine was >= 90% idle):

    ==============================  ===========  ==============  ==============
    version                         torch        cython          numba
    ==============================  ===========  ==============  ==============
    before (chunk GEMM), 1 thread   34.9-35.5    47.9-50.3       56.3-56.7
    this design, 1 thread           34.9-35.5    41.5-43.8       45.9-48.3
    before, 2 threads, quiet        25.6         156             148
    this design, 2 threads, quiet   25.6 / 28.2  22.0 / 24.2     24.4 / 26.8
    before, 2 threads, loaded       117          860             589
    this design, 2 threads, loaded  117          108             110
    ==============================  ===========  ==============  ==============

(bench/ at 2 threads, quiet at its start: `pytest bench/test_ops.py -k "conv2d and
large" --benchmark-only`: median cython 1.26x, numba 1.33x PyTorch; target 1.5x.)
SmallCNN step, batch 128, 1 thread (CPU time): torch 102-103, cython 99-118 -> 85-91,
numba 118-159 -> 84-106 ms. With 2 threads the step is held back by OpenBLAS, not by
conv: after each GEMM of the Linear layers its idle worker spins (2^28 cycles by
default) and takes a core from every OpenMP loop that follows (conv2 backward 45 ms
instead of 17, BatchNorm2d backward 12.6 instead of 1.5). Setting
OPENBLAS_THREAD_TIMEOUT=4 before SciPy's OpenBLAS loads took the 2-thread cython step
from 130 to 70 ms and the numba step from 133 to 92 ms (PyTorch 56-58 ms).
Where the time goes (1 thread): the three GEMMs, per sample at ~98 GFLOP/s (OpenBLAS
sgemm on one core here; the big whole-batch GEMMs run 88-93 GFLOP/s on one core), take
38 of the 42 ms; im2col and the bias ~1.3 ms per pass (forward and weight gradient
each run im2col); col2im ~1.4 ms. PyTorch's oneDNN convolution reaches ~106 GFLOP/s on
one core, above what sgemm gives, so the floor of this design is the GEMM time, ~1.1x
PyTorch.
Group size (GROUP_MIN_COLS, 1 thread, fwd+bwd ms for 1 / 64 / 128 / 256 / 512):
32x128x8x8->256: 48 / 46 / 41 / 42 / 46; 32x256x4x4->512: 70 / 52 / 47 / 45 / 47;
32x512x2x2->512: 160 / 31 / 29 / 31 / 34. Direct convolution was measured for small
channel counts and lost (see kernels/numba_cpu/conv.py). Row-major arrays go to the
column-major BLAS as their transposes.
GEMM orientation and blocking on the 2-core AVX-512 EPYC (7 Dec 2026, SciPy's OpenBLAS
0.3.30, SkylakeX kernels; forward only, 1 thread, process CPU time, each variant
interleaved with PyTorch in one process, medians of 5-7 rounds of 3 calls, load 5-10;
GEMMs timed through scipy.linalg.blas.sgemm, 3 runs): the per-sample product used here
ran 89-94 GFLOP/s at C_out 128 and 83-85 at C_out 64, whatever its K (288, 576) and its
m (output positions per call, 128-1024: one sample's 1024 positions as 2 or 4 calls
took 0.96-1.02x the time of one, 15 interleaved rounds, twice). The same
product with the operands swapped (y.T, m = C_out) was level (-4 to +6%), with the
patch matrix stored (P, K) and transposed 19-59% slower, and one whole-batch GEMM
13-48% slower (its patch matrix leaves the cache): the blocking above stays. Whole
forward against PyTorch (torch.nn.functional.conv2d, 1 thread), cython / numba / torch
ms: 32x64x16x16 -> 128 13.6-13.8 / 13.9-14.1 / 16.1-17.3 (0.80-0.86x PyTorch);
32x64x32x32 -> 64 31.1-32.3 / 31.6-32.6 / 22.8-23.2 (1.37-1.43x); 128x32x16x16 -> 64
15.7-16.2 / 16.1-16.2 / 11.7-11.9 (1.33-1.38x). The per-sample GEMMs alone took 90%
(128x32x16x16) to 95% (the others) of the cython time, im2col and the bias the rest,
so the C_out-64 gap is OpenBLAS's sgemm (84 GFLOP/s) against oneDNN's direct
convolution (100-106 GFLOP/s over the whole op). With FASTNN_BLAS=mkl (MKL for these
products, 2 runs) cython ran 1.21-1.30x PyTorch on the C_out-64 shapes (7-11% faster),
numba 1.25-1.53x (mixed); not made the default on AMD here: it moves the Linear products
too, and it was not measured at 2 threads on a quiet machine.

Pooling is parallel over (n, c) planes. Max pooling of output rows at least
_MAX_POOL_ROW_MIN wide, and at least as wide as the window, keeps a running maximum along
each output row with the window positions as the outer loops: the comparisons become
selects (which window element wins is random, so branches mispredict), 1 thread CPU time
128x32x28x28 2x2/2 19.0 -> 6-9 ms (PyTorch 18-20 ms), 32x64x16x16 3x3/2/1 4.2 -> 1.9 ms
(PyTorch 4.2-5.0 ms).
Narrower rows (a VGG net's later stages, 1-16 columns) left that row loop too short to
vectorise: there each output scans its window (_conv_rows.h fnn_max_pool_plane_*,
numba's design; 2x2 windows of stride 2 a kernel of their own), interleaved, 1 thread,
float32, window-scan time over row-loop time: 3x3/2/1 on 64x64x8x8 (4 columns) 0.49,
on 128x16x32x32 (16) 0.79, on 16x32x64x64 (32) 1.00, on 16x8x112x112 (56) 1.22; 3x3
stride 1 on 32x32x16x16 (16) 0.88, on 8x8x64x64 (64) 1.88; global 16x16 and 32x32
windows 0.54-0.68. Small planes skip the per-plane memset/memcpy calls and 3-D
indexing (kernels/window_shapes.py chooses): max-pool backward of planes of at most 64
cells (_max_pool_bwd_small) and average-pool backward of tiling windows as wide as the
plane (_avg_pool_runs_bwd); 1 thread, 1024x256x2x2 float32: 3.4 -> 0.9 and 3.8 -> 1.0 ms.
The commonest windows take loops across an output row's windows, each window's cells
still in its own order (window_shapes.is_2x2_pool, is_3x3s2_pool): 2x2 stride-2
average pools (_avg_pool_2x2_fwd / _bwd: 4.2x / 2.1x at 128x32x28x28, 1 thread) and
3x3 stride-2 and stride-1 max pools (_max_pool_3x3, before the row-width choice above:
2.4-3.4x and 1.5-4.9x)
and average pools (_avg_pool_3x3s2_fwd / _bwd: 5.5-5.8x); their docstrings have the
numbers.
"""
import numpy as np

from fastnn.kernels import blas_threads
from fastnn.kernels.window_shapes import (exact_reciprocal, is_2x2_pool, is_3x3s1_pool,
                                          is_3x3s2_pool, is_global_pool, is_plane_wide_window,
                                          is_small_plane, is_tiling_pool, pool_out_shape)

cimport cython
from cython.parallel cimport prange, threadid
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memcpy, memset

from _blas cimport GemmPair, ilp64_or_blas_gemm, set_gemm_pair
from _common cimport (floating, fnn_workspace, row_sum, thread_stride, thread_workspaces,
                      threads_for)

cdef extern from "_conv_rows.h" nogil:
    void fnn_add_row_f(float* dst, const float* src, Py_ssize_t n)
    void fnn_add_row_d(double* dst, const double* src, Py_ssize_t n)
    void fnn_max_pool_2x2_plane_f(const float* plane, Py_ssize_t h_in, Py_ssize_t w_in,
                                  float* y, int64_t* idx, Py_ssize_t ho, Py_ssize_t wo)
    void fnn_max_pool_2x2_plane_d(const double* plane, Py_ssize_t h_in, Py_ssize_t w_in,
                                  double* y, int64_t* idx, Py_ssize_t ho, Py_ssize_t wo)
    void fnn_window_taps(Py_ssize_t start, Py_ssize_t k, Py_ssize_t d, Py_ssize_t size,
                         Py_ssize_t* lo, Py_ssize_t* hi)
    void fnn_max_pool_plane_f(const float* plane, Py_ssize_t h_in, Py_ssize_t w_in,
                              Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                              Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                              float* y, int64_t* idx, Py_ssize_t ho, Py_ssize_t wo)
    void fnn_max_pool_plane_d(const double* plane, Py_ssize_t h_in, Py_ssize_t w_in,
                              Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                              Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                              double* y, int64_t* idx, Py_ssize_t ho, Py_ssize_t wo)
    float fnn_window_sum_f(const float* plane, Py_ssize_t w_in, Py_ssize_t ha,
                           Py_ssize_t hb, Py_ssize_t wa, Py_ssize_t wb)
    double fnn_window_sum_d(const double* plane, Py_ssize_t w_in, Py_ssize_t ha,
                            Py_ssize_t hb, Py_ssize_t wa, Py_ssize_t wb)
    void fnn_avg_tiles_row_f(const float* rows, Py_ssize_t w_in, Py_ssize_t kh,
                             Py_ssize_t kw, Py_ssize_t wo, float d, float* out)
    void fnn_avg_tiles_row_d(const double* rows, Py_ssize_t w_in, Py_ssize_t kh,
                             Py_ssize_t kw, Py_ssize_t wo, double d, double* out)
    void fnn_avg_planes_f(const float* x, Py_ssize_t planes, Py_ssize_t hw, float d,
                          float* out)
    void fnn_avg_planes_d(const double* x, Py_ssize_t planes, Py_ssize_t hw, double d,
                          double* out)
    Py_ssize_t FNN_PLANE_LANES
    void fnn_avg_2x2_row_f(const float* top, Py_ssize_t w_in, Py_ssize_t wf, Py_ssize_t wo,
                           int edge_row, float d, float d2, float d1, float* out)
    void fnn_avg_2x2_row_d(const double* top, Py_ssize_t w_in, Py_ssize_t wf,
                           Py_ssize_t wo, int edge_row, double d, double d2, double d1,
                           double* out)
    float fnn_unsigned_zero_f(float x)
    double fnn_unsigned_zero_d(double x)
    void fnn_avg_2x2_bwd_row_f(const float* g, Py_ssize_t w_in, Py_ssize_t wf,
                               Py_ssize_t wo, int edge_row, float d, float inv, float d2,
                               float d1, float* top)
    void fnn_avg_2x2_bwd_row_d(const double* g, Py_ssize_t w_in, Py_ssize_t wf,
                               Py_ssize_t wo, int edge_row, double d, double inv,
                               double d2, double d1, double* top)
    void fnn_max_pool_3x3_f(const float* x, Py_ssize_t p0, Py_ssize_t p1, Py_ssize_t h_in,
                            Py_ssize_t w_in, Py_ssize_t s, Py_ssize_t ph, Py_ssize_t pw,
                            float* pad, float* best, int32_t* code, float* y, int64_t* idx,
                            Py_ssize_t ho, Py_ssize_t wo)
    void fnn_max_pool_3x3_d(const double* x, Py_ssize_t p0, Py_ssize_t p1, Py_ssize_t h_in,
                            Py_ssize_t w_in, Py_ssize_t s, Py_ssize_t ph, Py_ssize_t pw,
                            double* pad, double* best, int32_t* code, double* y,
                            int64_t* idx, Py_ssize_t ho, Py_ssize_t wo)
    void fnn_avg_pool_3x3s2_f(const float* x, Py_ssize_t p0, Py_ssize_t p1, Py_ssize_t h_in,
                              Py_ssize_t w_in, Py_ssize_t ph, Py_ssize_t pw, int with_pad,
                              Py_ssize_t divisor, float* pad, float* mean, float* dv,
                              float* y, Py_ssize_t ho, Py_ssize_t wo)
    void fnn_avg_pool_3x3s2_d(const double* x, Py_ssize_t p0, Py_ssize_t p1,
                              Py_ssize_t h_in, Py_ssize_t w_in, Py_ssize_t ph, Py_ssize_t pw,
                              int with_pad, Py_ssize_t divisor, double* pad, double* mean,
                              double* dv, double* y, Py_ssize_t ho, Py_ssize_t wo)
    void fnn_avg_pool_3x3s2_bwd_f(const float* g, Py_ssize_t p0, Py_ssize_t p1,
                                  Py_ssize_t h_in, Py_ssize_t w_in, Py_ssize_t ph,
                                  Py_ssize_t pw, int with_pad, Py_ssize_t divisor,
                                  float* share, float* pad, float* dv, float* gi,
                                  Py_ssize_t ho, Py_ssize_t wo)
    void fnn_avg_pool_3x3s2_bwd_d(const double* g, Py_ssize_t p0, Py_ssize_t p1,
                                  Py_ssize_t h_in, Py_ssize_t w_in, Py_ssize_t ph,
                                  Py_ssize_t pw, int with_pad, Py_ssize_t divisor,
                                  double* share, double* pad, double* dv, double* gi,
                                  Py_ssize_t ho, Py_ssize_t wo)

# Intel MKL's ILP64 ?gemm_64 when the Linear products run on it (set by
# kernels/cython/__init__.py through use_mkl_gemm; NULL: SciPy's cython_blas, kept on
# the calling thread by kernels/blas_threads.py). Called from the threads of a prange,
# MKL (on libgomp, as these kernels) runs each product on its caller's thread: a nested
# region gets no second thread while regions cannot nest, which the same
# blas_threads.serial_blas block ensures (numba's 'omp' layer lets them nest). 2
# threads, forward / backward: 128x32x14x14 -> 64 4.3-4.9 / 8.5-9.1 -> 3.6-3.9 / 7.0 ms,
# 32x64x16x16 -> 128 4.7 / 8.9 -> 4.0 / 7.1 ms (the numba backend, the same products).
cdef GemmPair _gemms
_gemms.sgemm64 = NULL
_gemms.dgemm64 = NULL


def use_mkl_gemm(size_t sgemm_address, size_t dgemm_address):
    """Run the conv products through MKL's ILP64 ?gemm_64 at these addresses (both or
    neither); 0, 0 goes back to SciPy's BLAS."""
    set_gemm_pair(&_gemms, sgemm_address, dgemm_address, "use_mkl_gemm")


def mkl_gemm_in_use():
    """True while the conv products run on MKL (use_mkl_gemm)."""
    return _gemms.sgemm64 != NULL


cdef inline void gemm(char transa, char transb, int m, int n, int k, floating alpha,
                      const floating* a, int lda, const floating* b, int ldb,
                      floating beta, floating* c, int ldc) noexcept nogil:
    """Column-major C = alpha op(A) op(B) + beta C on MKL or SciPy's BLAS."""
    ilp64_or_blas_gemm(&_gemms, transa, transb, m, n, k, alpha, a, lda, b, ldb,
                       beta, c, ldc)


cdef extern from "math.h" nogil:
    double INFINITY

# Most bytes of patch matrix per thread (one group of samples).
cdef Py_ssize_t COL_BYTES = 4 << 20
# Samples are grouped until a group's GEMMs have this many columns; groups of one
# sample (P >= GROUP_MIN_COLS) run their GEMMs straight into/out of the NCHW arrays.
cdef Py_ssize_t GROUP_MIN_COLS = 128


cdef inline Py_ssize_t _first_inside(Py_ssize_t wo, Py_ssize_t sw, Py_ssize_t pw,
                                     Py_ssize_t j) noexcept nogil:
    """First output column whose input column ow * sw - pw + j is >= 0."""
    cdef Py_ssize_t lo = 0
    while lo < wo and lo * sw - pw + j < 0:
        lo = lo + 1
    return lo


cdef inline Py_ssize_t _end_inside(Py_ssize_t lo, Py_ssize_t wo, Py_ssize_t sw, Py_ssize_t pw,
                                   Py_ssize_t j, Py_ssize_t w_in) noexcept nogil:
    """One past the last output column whose input column is < w_in."""
    cdef Py_ssize_t hi = wo
    while hi > lo and (hi - 1) * sw - pw + j >= w_in:
        hi = hi - 1
    return hi


# ---------------------------------------------------------------------- im2col/col2im
cdef inline void _add_row(floating* dst, const floating* src, Py_ssize_t n) noexcept nogil:
    """dst[:n] += src[:n]; the two never overlap."""
    if floating is float:
        fnn_add_row_f(dst, src, n)
    else:
        fnn_add_row_d(dst, src, n)


cdef void _im2col(const floating* x, Py_ssize_t nb, Py_ssize_t c_in, Py_ssize_t h_in,
                  Py_ssize_t w_in, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                  Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t ho, Py_ssize_t wo,
                  floating* col) noexcept nogil:
    """x: (nb, C, H, W) IN, one group's samples; col: (C * kh * kw, nb * ho * wo) OUT.
    Serial: the calling thread owns the group.

    With stride 1 and W_out == W (same padding) a patch row is the image plane shifted
    by (i - ph, j - pw): one copy of the whole valid span, then the few edge columns
    the shift wrapped around are zeroed. Otherwise row by row."""
    cdef Py_ssize_t rows = c_in * kh * kw, p = ho * wo, L = nb * ho * wo
    cdef Py_ssize_t r, b, c, i, j, lo, hi, oh, ow, h, oh_lo, oh_hi, d0, d1, shift
    cdef bint flat = sh == 1 and sw == 1 and wo == w_in
    cdef floating* dst
    cdef const floating* src
    for r in range(rows):
        c = r // (kh * kw)
        i = (r // kw) % kh
        j = r % kw
        lo = _first_inside(wo, sw, pw, j)
        hi = _end_inside(lo, wo, sw, pw, j, w_in)
        if flat:
            oh_lo = ph - i if ph > i else 0
            oh_hi = h_in + ph - i if h_in + ph - i < ho else ho
            shift = (i - ph) * w_in + (j - pw)
            for b in range(nb):
                dst = col + r * L + b * p
                if oh_lo >= oh_hi or lo >= hi:
                    memset(dst, 0, p * sizeof(floating))
                    continue
                d0 = oh_lo * wo + lo
                d1 = (oh_hi - 1) * wo + hi
                memset(dst, 0, d0 * sizeof(floating))
                memcpy(dst + d0, x + (b * c_in + c) * h_in * w_in + d0 + shift,
                       (d1 - d0) * sizeof(floating))
                memset(dst + d1, 0, (p - d1) * sizeof(floating))
                # the wrapped columns, column by column down the rows (one strided
                # loop each, not two short loops per output row, as the numba kernel)
                for ow in range(lo):
                    for oh in range(oh_lo, oh_hi):
                        dst[oh * wo + ow] = 0
                for ow in range(hi, wo):
                    for oh in range(oh_lo, oh_hi):
                        dst[oh * wo + ow] = 0
            continue
        for b in range(nb):
            for oh in range(ho):
                h = oh * sh - ph + i
                dst = col + r * L + b * p + oh * wo
                if h < 0 or h >= h_in:
                    memset(dst, 0, wo * sizeof(floating))
                    continue
                src = x + ((b * c_in + c) * h_in + h) * w_in - pw + j
                for ow in range(lo):
                    dst[ow] = 0
                if sw == 1:  # contiguous: a straight copy
                    memcpy(dst + lo, src + lo, (hi - lo) * sizeof(floating))
                else:
                    for ow in range(lo, hi):
                        dst[ow] = src[ow * sw]
                for ow in range(hi, wo):
                    dst[ow] = 0


cdef void _col2im(floating* dcol, Py_ssize_t nb, Py_ssize_t c_in, Py_ssize_t h_in,
                  Py_ssize_t w_in, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                  Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t ho, Py_ssize_t wo,
                  floating* grad_in) noexcept nogil:
    """dcol: (C * kh * kw, nb * ho * wo) IN (scratch: its out-of-image entries are
    zeroed); grad_in: (nb, C, H, W) OUT (overwritten). Serial: the calling thread owns
    the group.

    With stride 1 and W_out == W, as in _im2col, each patch row is added to the plane
    as one span: the entries whose input column falls outside the image (which the
    span would wrap onto the neighbouring row) are zeroed in dcol first."""
    cdef Py_ssize_t p = ho * wo, L = nb * ho * wo
    cdef Py_ssize_t t, b, c, i, j, r, lo, hi, oh, ow, h, oh_lo, oh_hi, d0, d1
    cdef bint flat = sh == 1 and sw == 1 and wo == w_in
    cdef floating* plane
    cdef floating* dst
    cdef floating* src
    for t in range(nb * c_in):
        b = t // c_in
        c = t - b * c_in
        plane = grad_in + t * h_in * w_in
        memset(plane, 0, h_in * w_in * sizeof(floating))
        for i in range(kh):
            for j in range(kw):
                r = (c * kh + i) * kw + j
                lo = _first_inside(wo, sw, pw, j)
                hi = _end_inside(lo, wo, sw, pw, j, w_in)
                if flat:
                    oh_lo = ph - i if ph > i else 0
                    oh_hi = h_in + ph - i if h_in + ph - i < ho else ho
                    if oh_lo >= oh_hi or lo >= hi:
                        continue
                    src = dcol + r * L + b * p
                    for ow in range(lo):   # column by column, as in _im2col
                        for oh in range(oh_lo, oh_hi):
                            src[oh * wo + ow] = 0
                    for ow in range(hi, wo):
                        for oh in range(oh_lo, oh_hi):
                            src[oh * wo + ow] = 0
                    d0 = oh_lo * wo + lo
                    d1 = (oh_hi - 1) * wo + hi
                    _add_row(plane + d0 + (i - ph) * w_in + (j - pw), src + d0, d1 - d0)
                    continue
                for oh in range(ho):
                    h = oh * sh - ph + i
                    if h < 0 or h >= h_in:
                        continue
                    src = dcol + r * L + b * p + oh * wo
                    dst = plane + h * w_in - pw + j
                    if sw == 1:  # unit stride: a vectorised row add (restrict pointers)
                        _add_row(dst + lo, src + lo, hi - lo)
                    else:
                        for ow in range(lo, hi):
                            dst[ow * sw] += src[ow]


# ------------------------------------------------------------------------ conv bodies
cdef inline Py_ssize_t _group(Py_ssize_t n, Py_ssize_t k, Py_ssize_t p,
                              Py_ssize_t itemsize) noexcept nogil:
    """Samples per group: enough for GROUP_MIN_COLS GEMM columns, within COL_BYTES."""
    cdef Py_ssize_t nb = (GROUP_MIN_COLS + p - 1) // p if p > 0 else n
    cdef Py_ssize_t per_sample = k * p * itemsize
    if per_sample > 0 and nb * per_sample > COL_BYTES:
        nb = COL_BYTES // per_sample
    if nb > n:
        nb = n
    return nb if nb > 1 else 1


def _plan_threads(Py_ssize_t n, Py_ssize_t c_in, Py_ssize_t c_out, Py_ssize_t kh,
                  Py_ssize_t kw, Py_ssize_t p, Py_ssize_t itemsize):
    """Threads the conv kernels split the batch over: one per group at most, one for
    work too small for a parallel region."""
    cdef Py_ssize_t k = c_in * kh * kw
    cdef Py_ssize_t nb = _group(n, k, p, itemsize)
    cdef Py_ssize_t groups = (n + nb - 1) // nb
    cdef int t = threads_for(n * p * (k if k > c_out else c_out))
    return int(t if t < groups else max(groups, 1))


cdef void _forward_group(const floating* x, const floating* w, const floating* bias,
                         Py_ssize_t m, Py_ssize_t c_in, Py_ssize_t h_in, Py_ssize_t w_in,
                         Py_ssize_t c_out, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                         Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t ho,
                         Py_ssize_t wo, floating* col, floating* yc,
                         floating* y) noexcept nogil:
    """m samples. x: (m, C_in, H, W) IN; w: (C_out, K) IN; bias: (C_out,) IN;
    y: (m, C_out, H_out, W_out) OUT; col: (K, m * P), yc: (C_out, m * P) scratch."""
    cdef Py_ssize_t p = ho * wo, k = c_in * kh * kw, L = m * p
    cdef Py_ssize_t b, co, q
    cdef floating add
    cdef floating* dst
    _im2col(x, m, c_in, h_in, w_in, kh, kw, sh, sw, ph, pw, ho, wo, col)
    if m == 1:
        # y (C_out, P) = bias + W (C_out, K) @ col (K, P), straight into NCHW
        for co in range(c_out):
            add = bias[co]
            for q in range(p):
                y[co * p + q] = add
        gemm(c"N", c"N", <int>p, <int>c_out, <int>k, 1, col, <int>p, w, <int>k, 1, y,
             <int>p)
        return
    # yc (C_out, L) = W @ col, then to NCHW with the bias
    gemm(c"N", c"N", <int>L, <int>c_out, <int>k, 1, col, <int>L, w, <int>k, 0, yc, <int>L)
    for b in range(m):
        for co in range(c_out):
            add = bias[co]
            dst = y + (b * c_out + co) * p
            for q in range(p):
                dst[q] = yc[co * L + b * p + q] + add


cdef void _backward_group(const floating* grad_out, const floating* x, const floating* w,
                          Py_ssize_t m, Py_ssize_t c_in, Py_ssize_t h_in, Py_ssize_t w_in,
                          Py_ssize_t c_out, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                          Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t ho,
                          Py_ssize_t wo, floating* col, floating* g, floating* gw,
                          floating* grad_in) noexcept nogil:
    """m samples. grad_out: (m, C_out, P) IN; x: (m, C_in, H, W) IN; w: (C_out, K) IN;
    gw: (C_out, K) IN/OUT (+=) or NULL; grad_in: (m, C_in, H, W) OUT or NULL;
    col: (K, m * P), g: (C_out, m * P) scratch (g unused when m == 1)."""
    cdef Py_ssize_t p = ho * wo, k = c_in * kh * kw, L = m * p
    cdef Py_ssize_t b, co, q
    cdef const floating* gsrc = grad_out
    cdef const floating* src
    if m > 1:  # channel-major copy of the group's output gradient
        for b in range(m):
            for co in range(c_out):
                src = grad_out + (b * c_out + co) * p
                for q in range(p):
                    g[co * L + b * p + q] = src[q]
        gsrc = g
    if gw != NULL:
        # gw (C_out, K) += g (C_out, L) @ col.T
        _im2col(x, m, c_in, h_in, w_in, kh, kw, sh, sw, ph, pw, ho, wo, col)
        gemm(c"T", c"N", <int>k, <int>c_out, <int>L, 1, col, <int>L, gsrc, <int>L, 1, gw,
             <int>k)
    if grad_in != NULL:
        # dcol (K, L) = W.T (K, C_out) @ g (C_out, L), into col's buffer, then col2im
        gemm(c"N", c"T", <int>L, <int>k, <int>c_out, 1, gsrc, <int>L, w, <int>k, 0, col,
             <int>L)
        _col2im(col, m, c_in, h_in, w_in, kh, kw, sh, sw, ph, pw, ho, wo, grad_in)


def _forward(const floating[:, :, :, ::1] x,            # IN  (N, C_in, H, W)
             const floating[:, :, :, ::1] weight,       # IN  (C_out, C_in, kH, kW)
             const floating[::1] bias,                  # IN  (C_out,)
             Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
             floating[:, :, :, ::1] y,                  # OUT (N, C_out, H_out, W_out)
             int nthreads):
    cdef Py_ssize_t n = x.shape[0], c_in = x.shape[1], h_in = x.shape[2], w_in = x.shape[3]
    cdef Py_ssize_t c_out = weight.shape[0], kh = weight.shape[2], kw = weight.shape[3]
    cdef Py_ssize_t ho = y.shape[2], wo = y.shape[3], p = ho * wo, k = c_in * kh * kw
    cdef Py_ssize_t nb = _group(n, k, p, sizeof(floating))
    cdef Py_ssize_t groups = (n + nb - 1) // nb
    cdef Py_ssize_t col_size = k * nb * p, yc_size = c_out * nb * p if nb > 1 else 0
    cdef Py_ssize_t gi, n0, m
    cdef int tid
    cdef floating* col
    cdef floating* yc = NULL
    cdef Py_ssize_t x_size = c_in * h_in * w_in
    cdef const floating* xp = NULL
    cdef const floating* wp = NULL
    if n == 0 or c_out == 0 or p == 0:
        return
    if x_size:  # (an empty x or weight has no element 0 to address; nothing reads them)
        xp = &x[0, 0, 0, 0]
    if k:
        wp = &weight[0, 0, 0, 0]
    if nthreads > groups:
        nthreads = <int>groups
    if nthreads < 1:
        nthreads = 1
    with nogil:
        # work buffers kept per thread between calls (_workspace.h)
        col = <floating*>fnn_workspace(0, nthreads * col_size * sizeof(floating))
        if yc_size:
            yc = <floating*>fnn_workspace(1, nthreads * yc_size * sizeof(floating))
        if col == NULL or (yc == NULL and yc_size):
            with gil:
                raise MemoryError("conv2d_forward: cannot allocate the im2col buffer")
        if nthreads == 1:   # no parallel region: see _backward
            for gi in range(groups):
                n0 = gi * nb
                m = nb if n0 + nb <= n else n - n0
                _forward_group(xp + n0 * x_size, wp, &bias[0], m, c_in, h_in,
                               w_in, c_out, kh, kw, sh, sw, ph, pw, ho, wo,
                               col, yc, &y[n0, 0, 0, 0])
        else:
            for gi in prange(groups, schedule="static", num_threads=nthreads):
                tid = threadid()
                n0 = gi * nb
                m = nb if n0 + nb <= n else n - n0
                _forward_group(xp + n0 * x_size, wp, &bias[0], m, c_in, h_in,
                               w_in, c_out, kh, kw, sh, sw, ph, pw, ho, wo,
                               col + tid * col_size, yc + tid * yc_size, &y[n0, 0, 0, 0])


def _backward(const floating[:, :, :, ::1] grad_out,     # IN  (N, C_out, H_out, W_out)
              const floating[:, :, :, ::1] x,            # IN  (N, C_in, H, W)
              const floating[:, :, :, ::1] weight,       # IN  (C_out, C_in, kH, kW)
              Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
              floating[:, :, :, ::1] grad_weight,        # IN/OUT like weight, or None
              floating[::1] grad_bias,                   # IN/OUT (C_out,), or None
              floating[:, :, :, ::1] grad_in,            # OUT (N, C_in, H, W), or None
              int nthreads):
    cdef Py_ssize_t n = x.shape[0], c_in = x.shape[1], h_in = x.shape[2], w_in = x.shape[3]
    cdef Py_ssize_t c_out = weight.shape[0], kh = weight.shape[2], kw = weight.shape[3]
    cdef Py_ssize_t ho = grad_out.shape[2], wo = grad_out.shape[3]
    cdef Py_ssize_t p = ho * wo, k = c_in * kh * kw
    cdef Py_ssize_t nb = _group(n, k, p, sizeof(floating))
    cdef Py_ssize_t groups = (n + nb - 1) // nb
    cdef Py_ssize_t col_size = k * nb * p, g_size = c_out * nb * p if nb > 1 else 0
    cdef Py_ssize_t part_size = c_out * k
    cdef bint want_w = grad_weight is not None, want_b = grad_bias is not None
    cdef bint want_in = grad_in is not None
    cdef Py_ssize_t gi, n0, m, co, b, e
    cdef int tid, t
    cdef floating* col = NULL
    cdef floating* g = NULL
    cdef floating* parts = NULL
    cdef floating* gw = NULL
    cdef floating* gw_t
    cdef floating* gin_t
    cdef floating acc_w
    cdef double acc
    cdef Py_ssize_t x_size = c_in * h_in * w_in
    cdef const floating* gp = NULL
    cdef const floating* xp = NULL
    cdef const floating* wp = NULL
    cdef floating* gip = NULL
    # (an empty array has no element 0 to address; nothing reads or writes it then)
    if n * c_out * p:
        gp = &grad_out[0, 0, 0, 0]
    if n * x_size:
        xp = &x[0, 0, 0, 0]
        if want_in:
            gip = &grad_in[0, 0, 0, 0]
    if c_out * k:
        wp = &weight[0, 0, 0, 0]
    if want_b:
        for co in prange(c_out, nogil=True, schedule="static",
                         num_threads=threads_for(n * c_out * p)):
            acc = 0
            for b in range(n):
                acc = acc + row_sum(gp + (b * c_out + co) * p, p)
            grad_bias[co] += <floating>acc
    if not (want_w or want_in) or n == 0 or p == 0:
        if want_in and p == 0 and gip != NULL:   # no output position: a zero gradient
            memset(gip, 0, n * x_size * sizeof(floating))
        return
    if nthreads > groups:
        nthreads = <int>groups
    if nthreads < 1:
        nthreads = 1
    if want_w and c_out * k:
        gw = &grad_weight[0, 0, 0, 0]
    with nogil:
        # work buffers kept per thread between calls (_workspace.h)
        col = <floating*>fnn_workspace(0, nthreads * col_size * sizeof(floating))
        if g_size:
            g = <floating*>fnn_workspace(1, nthreads * g_size * sizeof(floating))
        if want_w and nthreads > 1:
            # thread 0 accumulates into grad_weight, the others into their own partials
            parts = <floating*>fnn_workspace(2, (nthreads - 1) * part_size * sizeof(floating))
            if parts != NULL:
                memset(parts, 0, (nthreads - 1) * part_size * sizeof(floating))
        if (col == NULL or (g == NULL and g_size)
                or (parts == NULL and want_w and nthreads > 1)):
            with gil:
                raise MemoryError("conv2d_backward: cannot allocate the im2col buffers")
        if nthreads == 1:
            # One thread (one group of samples, as at batch 1): no parallel region, so
            # the GEMMs call BLAS at the top level, where it runs on the pool. Inside even
            # a one-thread region (OpenMP's "if" clause makes one too), BLAS's jobs ran
            # on a nested team of new threads competing with the pool's spinning ones:
            # after a parallel elementwise op, a 32 -> 64 channel 14x14 forward at batch 1
            # took 7.5 ms instead of 0.19, the SmallCNN step 12 ms (PyTorch 2.4 ms).
            for gi in range(groups):
                n0 = gi * nb
                m = nb if n0 + nb <= n else n - n0
                _backward_group(gp + n0 * c_out * p, xp + n0 * x_size, wp, m,
                                c_in, h_in, w_in, c_out, kh, kw, sh, sw, ph, pw, ho, wo,
                                col, g, gw, gip + n0 * x_size if want_in else NULL)
        else:
            for gi in prange(groups, schedule="static", num_threads=nthreads):
                tid = threadid()
                n0 = gi * nb
                m = nb if n0 + nb <= n else n - n0
                gw_t = NULL
                if want_w:
                    gw_t = gw if tid == 0 else parts + (tid - 1) * part_size
                gin_t = gip + n0 * x_size if want_in else NULL
                _backward_group(gp + n0 * c_out * p, xp + n0 * x_size, wp, m,
                                c_in, h_in, w_in, c_out, kh, kw, sh, sw, ph, pw, ho, wo,
                                col + tid * col_size, g + tid * g_size, gw_t, gin_t)
        if parts != NULL:  # merge the partials in thread order
            for e in prange(part_size, schedule="static",
                            num_threads=threads_for(nthreads * part_size)):
                acc_w = gw[e]
                for t in range(nthreads - 1):
                    acc_w = acc_w + parts[t * part_size + e]
                gw[e] = acc_w


# --------------------------------------------------------------------------- pooling
cdef void _max_pool_rows(const floating* plane, floating* yp, int64_t* ip, Py_ssize_t h_in,
                         Py_ssize_t w_in, Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t kh,
                         Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
                         Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw) noexcept nogil:
    """One (H, W) plane's max pool: plane (h_in, w_in) in, yp and ip (ho, wo) out. A
    function of its own so that every variable is local to the calling thread: written
    in _max_pool_fwd's prange body, the window's rows ia, ib (set through pointers,
    which Cython does not make private) were shared by the threads, and a border row
    could scan another row's window (wrong maxima, indices outside the plane)."""
    cdef Py_ssize_t oh, ow, h0, w0, ia, ib, i, hh, j, lo, hi
    cdef floating v
    cdef bint take
    cdef const floating* src
    cdef floating* best
    cdef int64_t* arg
    for oh in range(ho):
        h0 = oh * sh - ph
        fnn_window_taps(h0, kh, dh, h_in, &ia, &ib)
        # the output row is the running maximum; window positions outermost, so the
        # loop over the row vectorises (selects, not branches: which element wins
        # is random) and each output still sees its window in order; the index
        # starts at the window's first cell inside the input (PyTorch's, for a
        # window of -inf)
        best = yp + oh * wo
        arg = ip + oh * wo
        for ow in range(wo):
            w0 = ow * sw - pw
            fnn_window_taps(w0, kw, dw, w_in, &lo, &hi)
            best[ow] = -INFINITY
            arg[ow] = (h0 + ia * dh) * w_in + w0 + lo * dw
        for i in range(ia, ib):
            hh = h0 + i * dh
            for j in range(kw):
                lo = _first_inside(wo, sw, pw, j * dw)
                hi = _end_inside(lo, wo, sw, pw, j * dw, w_in)
                src = plane + hh * w_in - pw + j * dw
                for ow in range(lo, hi):
                    v = src[ow * sw]
                    # PyTorch's rule: first maximum in window order, a NaN wins
                    take = (v > best[ow]) | (v != v)
                    best[ow] = v if take else best[ow]
                    arg[ow] = hh * w_in + ow * sw - pw + j * dw if take else arg[ow]


def _max_pool_fwd(const floating[:, :, :, ::1] x,        # IN  (N, C, H, W)
                  Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                  Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                  floating[:, :, :, ::1] y,              # OUT (N, C, H_out, W_out)
                  int64_t[:, :, :, ::1] indices):      # OUT (N, C, H_out, W_out)
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h_in = x.shape[2], w_in = x.shape[3]
    cdef Py_ssize_t ho = y.shape[2], wo = y.shape[3]
    cdef Py_ssize_t t
    # (an empty array has no element 0 to address; nothing reads or writes it then)
    cdef const floating* xp = &x[0, 0, 0, 0] if n * c * h_in * w_in else NULL
    cdef floating* yp = &y[0, 0, 0, 0] if n * c * ho * wo else NULL
    cdef int64_t* ip = &indices[0, 0, 0, 0] if n * c * ho * wo else NULL
    for t in prange(n * c, nogil=True, schedule="static",
                    num_threads=threads_for(n * c * h_in * w_in)):
        _max_pool_rows(xp + t * h_in * w_in, yp + t * ho * wo, ip + t * ho * wo, h_in, w_in,
                       ho, wo, kh, kw, sh, sw, ph, pw, dh, dw)


# Output rows at least this wide (and as wide as the window) run _max_pool_fwd's row
# loops, the rest _max_pool_planes (the module docstring has the measurements)
_MAX_POOL_ROW_MIN = 24


def _max_pool_planes(const floating[:, :, :, ::1] x,      # IN  (N, C, H, W)
                     Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                     Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                     floating[:, :, :, ::1] y,           # OUT (N, C, H_out, W_out)
                     int64_t[:, :, :, ::1] indices,    # OUT (N, C, H_out, W_out)
                     bint tiles_2x2):
    """_max_pool_fwd a plane at a time, each output scanning its window: for output rows
    too short for its row loop (_conv_rows.h fnn_max_pool_plane_*), and, with
    tiles_2x2, for 2x2 windows of stride 2, no padding, dilation 1 (VGG's pooling:
    fnn_max_pool_2x2_plane_*, a tree of selects per window; 2 threads, 128x32x28x28
    2.41 -> 0.86 ms, 128x64x14x14 2.32 -> 0.78 ms; ceil mode's windows past an odd H or
    W apart, fnn_max_pool_2x2_edges_*)."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h_in = x.shape[2], w_in = x.shape[3]
    cdef Py_ssize_t ho = y.shape[2], wo = y.shape[3]
    cdef Py_ssize_t t
    cdef const floating* xp
    cdef floating* yp
    cdef int64_t* ip
    if n * c * ho * wo == 0:   # (no element 0 to address)
        return
    xp = &x[0, 0, 0, 0] if h_in * w_in else NULL
    yp = &y[0, 0, 0, 0]
    ip = &indices[0, 0, 0, 0]
    for t in prange(n * c, nogil=True, schedule="static",
                    num_threads=threads_for(n * c * h_in * w_in)):
        if floating is float:
            if tiles_2x2:
                fnn_max_pool_2x2_plane_f(xp + t * h_in * w_in, h_in, w_in, yp + t * ho * wo,
                                         ip + t * ho * wo, ho, wo)
            else:
                fnn_max_pool_plane_f(xp + t * h_in * w_in, h_in, w_in, kh, kw, sh, sw, ph,
                                     pw, dh, dw, yp + t * ho * wo, ip + t * ho * wo, ho, wo)
        else:
            if tiles_2x2:
                fnn_max_pool_2x2_plane_d(xp + t * h_in * w_in, h_in, w_in, yp + t * ho * wo,
                                         ip + t * ho * wo, ho, wo)
            else:
                fnn_max_pool_plane_d(xp + t * h_in * w_in, h_in, w_in, kh, kw, sh, sw, ph,
                                     pw, dh, dw, yp + t * ho * wo, ip + t * ho * wo, ho, wo)


def _max_pool_3x3(const floating[:, :, :, ::1] x,      # IN  (N, C, H, W)
                  Py_ssize_t s, Py_ssize_t ph, Py_ssize_t pw,
                  floating[:, :, :, ::1] y,            # OUT (N, C, H_out, W_out)
                  int64_t[:, :, :, ::1] indices):    # OUT (N, C, H_out, W_out)
    """_max_pool_fwd for 3x3 windows of stride s = 2 (ResNet's stem pool,
    window_shapes.is_3x3s2_pool; ceil mode allowed) or 1 (Inception's, is_3x3s1_pool),
    dilation 1, padding 0 or 1: each thread's planes
    split into the stride phases of the padded plane in its scratch, and each plane's
    windows scanned tap by tap in one loop across them, vectorised (_conv_rows.h
    fnn_max_pool_3x3_*, numba's design). 1 thread, float32 normal noise, CPU time,
    _max_pool_planes (or _max_pool_fwd, 56 columns) -> here: 32x64x16x16 pad 1 1.08 ->
    0.31 ms, 16x32x28x28 pad 1 0.79 -> 0.26 ms, 16x8x112x112 pad 1 1.71 -> 0.69 ms,
    64x64x15x15 pad 0 1.78 -> 0.74 ms. (A loop across each output row's windows reading
    a padded copy of the plane at stride 2 did not vectorise, and its selects became
    branches: 3.3 ms for the first.) Stride 1 runs the same loop on the -inf-bordered
    plane itself (fnn_max_pool_3x3_*'s comment). 1 thread, normal noise, padding 1, CPU
    time, interleaved, median of 15 runs of 5 calls, _max_pool_fwd (_max_pool_planes
    under 24 columns) -> here (PyTorch's max_pool2d with indices): float32 32x64x28x28
    12.2 -> 2.5 ms (39), 8x192x28x28 9.1 -> 2.0 ms (29); float64 9.3 -> 5.9 ms (38),
    6.8 -> 4.5 ms (29)."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h_in = x.shape[2], w_in = x.shape[3]
    cdef Py_ssize_t ho = y.shape[2], wo = y.shape[3], planes = n * c
    cdef Py_ssize_t wq = wo + 1 if s == 2 else wo + 2
    cdef Py_ssize_t lanes = ho * wq
    cdef Py_ssize_t pad_stride = thread_stride(
        (4 * (ho + 1) if s == 2 else ho + 2) * wq + wq + 1, sizeof(floating))
    cdef Py_ssize_t best_stride = thread_stride(lanes, sizeof(floating))
    cdef Py_ssize_t code_stride = thread_stride(lanes, sizeof(int32_t))
    cdef int nthreads = threads_for(planes * h_in * w_in)
    cdef int k
    cdef floating* pad
    cdef floating* best
    cdef int32_t* code
    if planes * ho * wo == 0:   # (no element 0 to address)
        return
    if nthreads > planes:
        nthreads = <int>planes
    with nogil:
        if not thread_workspaces(nthreads, pad_stride * sizeof(floating), <void**>&pad,
                                 best_stride * sizeof(floating), <void**>&best,
                                 code_stride * sizeof(int32_t), <void**>&code):
            with gil:
                raise MemoryError("max_pool2d_forward: cannot allocate its scratch")
        for k in prange(nthreads, schedule="static", num_threads=nthreads):
            if floating is float:
                fnn_max_pool_3x3_f(&x[0, 0, 0, 0], k * planes // nthreads,
                                   (k + 1) * planes // nthreads, h_in, w_in, s, ph, pw,
                                   pad + k * pad_stride, best + k * best_stride,
                                   code + k * code_stride, &y[0, 0, 0, 0],
                                   &indices[0, 0, 0, 0], ho, wo)
            else:
                fnn_max_pool_3x3_d(&x[0, 0, 0, 0], k * planes // nthreads,
                                   (k + 1) * planes // nthreads, h_in, w_in, s, ph, pw,
                                   pad + k * pad_stride, best + k * best_stride,
                                   code + k * code_stride, &y[0, 0, 0, 0],
                                   &indices[0, 0, 0, 0], ho, wo)


def _max_pool_bwd(const floating[:, :, ::1] grad_out,    # IN  (N, C, P_out)
                  const int64_t[:, :, ::1] indices,    # IN  (N, C, P_out)
                  floating[:, :, ::1] grad_in):          # OUT (N, C, P_in)
    cdef Py_ssize_t n = grad_in.shape[0], c = grad_in.shape[1], p_in = grad_in.shape[2]
    cdef Py_ssize_t p_out = grad_out.shape[2]
    cdef Py_ssize_t t, b, ch, q, i
    cdef floating* plane
    if n * c * p_in == 0:  # (nothing to write, and no element 0 to address)
        return
    for t in prange(n * c, nogil=True, schedule="static", num_threads=threads_for(n * c * p_in)):
        b = t // c
        ch = t - b * c
        plane = &grad_in[b, ch, 0]
        memset(plane, 0, p_in * sizeof(floating))
        for q in range(p_out):
            # an index outside the plane (PyTorch's for a window wholly in the padding,
            # whose -inf output no input moves) adds nothing
            i = indices[b, ch, q]
            if 0 <= i < p_in:
                plane[i] += grad_out[b, ch, q]


def _max_pool_bwd_small(const floating[::1] grad_out,   # IN  (N C P_out,)
                        const int64_t[::1] indices,     # IN  (N C P_out,)
                        Py_ssize_t p_out, Py_ssize_t p_in,
                        floating[::1] grad_in):         # OUT (N C P_in,)
    """_max_pool_bwd for small planes (window_shapes.is_small_plane): flat pointers, each
    plane zeroed by a loop and scattered into in the same order (the same sums), without
    a memset call and 3-D indexing per plane, which cost more than a 2x2 plane's work."""
    cdef Py_ssize_t planes = grad_in.shape[0] // p_in if p_in else 0
    cdef Py_ssize_t t, q, i
    cdef floating* plane
    cdef const floating* g
    cdef const int64_t* index
    if planes == 0:  # (nothing to write, and no element 0 to address)
        return
    for t in prange(planes, nogil=True, schedule="static",
                    num_threads=threads_for(planes * p_in)):
        plane = &grad_in[0] + t * p_in
        for q in range(p_in):
            plane[q] = 0
        if p_out == 0:
            continue
        g = &grad_out[0] + t * p_out
        index = &indices[0] + t * p_out
        for q in range(p_out):
            i = index[q]
            if 0 <= i < p_in:
                plane[i] += g[q]


cdef inline Py_ssize_t _avg_count(Py_ssize_t h0, Py_ssize_t w0, Py_ssize_t ha,
                                  Py_ssize_t hb, Py_ssize_t wa, Py_ssize_t wb,
                                  Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t h_in,
                                  Py_ssize_t w_in, Py_ssize_t ph, Py_ssize_t pw,
                                  bint count_include_pad, Py_ssize_t divisor) noexcept nogil:
    """The divisor of the window at (h0, w0) (kernels/reference/conv.py's rule): divisor
    when > 0; else its cells inside the padded input (count_include_pad; kH * kW except
    where a ceil-mode window runs past the padding) or inside the input [ha, hb) x [wa, wb)."""
    if divisor > 0:
        return divisor
    if count_include_pad:
        return (min(h0 + kh, h_in + ph) - h0) * (min(w0 + kw, w_in + pw) - w0)
    return (hb - ha) * (wb - wa)


@cython.cdivision(True)  # (IEEE even in the debug build: a window of no cell is 0/0)
def _avg_pool_fwd(const floating[:, :, :, ::1] x,        # IN  (N, C, H, W)
                  Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                  Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad,
                  Py_ssize_t divisor,                    # > 0: divisor_override
                  floating[:, :, :, ::1] y):             # OUT (N, C, H_out, W_out)
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h_in = x.shape[2], w_in = x.shape[3]
    cdef Py_ssize_t ho = y.shape[2], wo = y.shape[3]
    cdef Py_ssize_t t, b, ch, oh, ow, h0, w0, ha, hb, wa, wb, hh, ww, count
    cdef floating acc
    cdef const floating* xp = &x[0, 0, 0, 0] if n * c * h_in * w_in else NULL
    cdef const floating* plane
    for t in prange(n * c, nogil=True, schedule="static",
                    num_threads=threads_for(n * c * h_in * w_in)):
        b = t // c
        ch = t - b * c
        plane = xp + t * h_in * w_in  # (NULL when the plane is empty)
        for oh in range(ho):
            h0 = oh * sh - ph
            ha = h0 if h0 > 0 else 0
            hb = h0 + kh if h0 + kh < h_in else h_in
            for ow in range(wo):
                w0 = ow * sw - pw
                wa = w0 if w0 > 0 else 0
                wb = w0 + kw if w0 + kw < w_in else w_in
                if floating is float:   # (in row-major order: _conv_rows.h)
                    acc = fnn_window_sum_f(plane, w_in, ha, hb, wa, wb)
                else:
                    acc = fnn_window_sum_d(plane, w_in, ha, hb, wa, wb)
                y[b, ch, oh, ow] = acc / _avg_count(h0, w0, ha, hb, wa, wb, kh, kw, h_in,
                                                    w_in, ph, pw, count_include_pad, divisor)


@cython.cdivision(True)  # (IEEE even in the debug build: a window of no cell is 0/0)
def _avg_pool_bwd(const floating[:, :, :, ::1] grad_out,  # IN  (N, C, H_out, W_out)
                  Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                  Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad,
                  Py_ssize_t divisor,                     # > 0: divisor_override
                  floating[:, :, :, ::1] grad_in):        # OUT (N, C, H, W)
    cdef Py_ssize_t n = grad_in.shape[0], c = grad_in.shape[1]
    cdef Py_ssize_t h_in = grad_in.shape[2], w_in = grad_in.shape[3]
    cdef Py_ssize_t ho = grad_out.shape[2], wo = grad_out.shape[3]
    cdef Py_ssize_t t, b, ch, oh, ow, h0, w0, ha, hb, wa, wb, hh, ww, count
    cdef floating share
    cdef floating* plane
    if n * c * h_in * w_in == 0:  # (nothing to write, and no element 0 to address)
        return
    for t in prange(n * c, nogil=True, schedule="static",
                    num_threads=threads_for(n * c * h_in * w_in)):
        b = t // c
        ch = t - b * c
        plane = &grad_in[b, ch, 0, 0]
        memset(plane, 0, h_in * w_in * sizeof(floating))
        for oh in range(ho):
            h0 = oh * sh - ph
            ha = h0 if h0 > 0 else 0
            hb = h0 + kh if h0 + kh < h_in else h_in
            for ow in range(wo):
                w0 = ow * sw - pw
                wa = w0 if w0 > 0 else 0
                wb = w0 + kw if w0 + kw < w_in else w_in
                share = grad_out[b, ch, oh, ow] / _avg_count(
                    h0, w0, ha, hb, wa, wb, kh, kw, h_in, w_in, ph, pw, count_include_pad,
                    divisor)
                for hh in range(ha, hb):
                    for ww in range(wa, wb):
                        plane[hh * w_in + ww] += share


@cython.cdivision(True)
def _avg_pool_tiles_fwd(const floating[:, :, :, ::1] x,  # IN  (N, C, H, W)
                        Py_ssize_t kh, Py_ssize_t kw, double divisor,
                        floating[:, :, :, ::1] y):       # OUT (N, C, H_out, W_out)
    """_avg_pool_fwd for windows that tile x (window_shapes.is_tiling_pool): each output
    row sums its kh input rows, tap by tap, across the row (the window's cells in the
    same order as _avg_pool_fwd's, so the same sums), instead of a loop of kh x kw per
    window. 1 thread, float32 2x2, 128x32x14x14: 1.44 -> 0.87 ms, 64x16x28x28: 1.41 ->
    0.45 ms."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h_in = x.shape[2], w_in = x.shape[3]
    cdef Py_ssize_t ho = y.shape[2], wo = y.shape[3]
    cdef Py_ssize_t t, oh, ow, i, j
    cdef const floating* row
    cdef floating* out
    cdef floating d = <floating>divisor
    if n * c * ho * wo == 0:   # (no element 0 to address)
        return
    for t in prange(n * c, nogil=True, schedule="static",
                    num_threads=threads_for(n * c * h_in * w_in)):
        for oh in range(ho):   # (each window's sum in row-major order: _conv_rows.h)
            out = &y[0, 0, 0, 0] + (t * ho + oh) * wo
            row = &x[0, 0, 0, 0] + (t * h_in + oh * kh) * w_in
            if floating is float:
                fnn_avg_tiles_row_f(row, w_in, kh, kw, wo, d, out)
            else:
                fnn_avg_tiles_row_d(row, w_in, kh, kw, wo, d, out)


@cython.cdivision(True)
def _avg_pool_planes_fwd(const floating[:, :, :, ::1] x,  # IN  (N, C, H, W)
                         double divisor,
                         floating[:, :, :, ::1] y):       # OUT (N, C, 1, 1)
    """_avg_pool_fwd for a global pool (window_shapes.is_global_pool): each plane's cells
    summed in order, FNN_PLANE_LANES planes at a time (_conv_rows.h), a block of planes to
    a thread."""
    cdef Py_ssize_t planes = x.shape[0] * x.shape[1], hw = x.shape[2] * x.shape[3]
    cdef Py_ssize_t blocks = (planes + FNN_PLANE_LANES - 1) // FNN_PLANE_LANES
    cdef Py_ssize_t blk, p, m
    cdef floating d = <floating>divisor
    if planes == 0:   # (no element 0 to address; a window has >= 1 cell)
        return
    for blk in prange(blocks, nogil=True, schedule="static",
                      num_threads=threads_for(planes * hw)):
        p = blk * FNN_PLANE_LANES
        m = planes - p if planes - p < FNN_PLANE_LANES else FNN_PLANE_LANES
        if floating is float:
            fnn_avg_planes_f(&x[0, 0, 0, 0] + p * hw, m, hw, d, &y[0, 0, 0, 0] + p)
        else:
            fnn_avg_planes_d(&x[0, 0, 0, 0] + p * hw, m, hw, d, &y[0, 0, 0, 0] + p)


cdef inline floating _unsigned_zero(floating x) noexcept nogil:
    """x with a zero's sign cleared (_conv_rows.h fnn_unsigned_zero_*): an average pool's
    gradient share as PyTorch's sum into a zeroed gradient gives it, 0 + -0 = +0."""
    if floating is float:
        return fnn_unsigned_zero_f(x)
    return fnn_unsigned_zero_d(x)


@cython.cdivision(True)
def _avg_pool_tiles_bwd(const floating[:, :, :, ::1] grad_out,  # IN  (N, C, H_out, W_out)
                        Py_ssize_t kh, Py_ssize_t kw, double divisor,
                        floating[:, :, :, ::1] grad_in):        # OUT (N, C, H, W)
    """_avg_pool_bwd for windows that tile grad_in: each cell of a window written once
    with its share, a window row's first row at a time and copied to its others, and
    only the cells no window covers (the last rows and columns of an odd size) zeroed,
    instead of a zeroed plane added to window by window. 1 thread, float32 2x2, to
    128x32x14x14: 1.40 -> 0.41 ms, to 64x16x28x28: 1.36 -> 0.28 ms."""
    cdef Py_ssize_t n = grad_in.shape[0], c = grad_in.shape[1]
    cdef Py_ssize_t h_in = grad_in.shape[2], w_in = grad_in.shape[3]
    cdef Py_ssize_t ho = grad_out.shape[2], wo = grad_out.shape[3]
    cdef Py_ssize_t t, oh, ow, i, j, covered = wo * kw
    cdef const floating* g
    cdef floating* row
    cdef floating d = <floating>divisor
    if n * c * h_in * w_in == 0:   # (nothing to write, and no element 0 to address)
        return
    for t in prange(n * c, nogil=True, schedule="static",
                    num_threads=threads_for(n * c * h_in * w_in)):
        for oh in range(ho):
            g = &grad_out[0, 0, 0, 0] + (t * ho + oh) * wo if ho * wo else NULL
            row = &grad_in[0, 0, 0, 0] + (t * h_in + oh * kh) * w_in
            for j in range(kw):
                for ow in range(wo):
                    row[ow * kw + j] = _unsigned_zero(g[ow] / d)
            if covered < w_in:
                memset(row + covered, 0, (w_in - covered) * sizeof(floating))
            for i in range(1, kh):   # the window's other rows: copies of its first
                memcpy(row + i * w_in, row, w_in * sizeof(floating))
        if ho * kh < h_in:
            memset(&grad_in[0, 0, 0, 0] + (t * h_in + ho * kh) * w_in, 0,
                   (h_in - ho * kh) * w_in * sizeof(floating))


@cython.cdivision(True)
def _avg_pool_runs_bwd(const floating[:, :, :, ::1] grad_out,  # IN  (N, C, H_out, 1)
                       Py_ssize_t kh, double divisor,
                       floating[:, :, :, ::1] grad_in):        # OUT (N, C, H, W)
    """_avg_pool_tiles_bwd for tiling windows as wide as the plane (W == kW: a CNN's
    last 2x2 planes pooled to 1x1, window_shapes.is_plane_wide_window): a window's cells
    are one run of kH W cells, each set to its share (the same share, bit for bit), and
    the rows no window covers zeroed, without the per-row memset and memcpy calls that
    cost more than a 2x2 plane's work."""
    cdef Py_ssize_t n = grad_in.shape[0], c = grad_in.shape[1]
    cdef Py_ssize_t h_in = grad_in.shape[2], w_in = grad_in.shape[3]
    cdef Py_ssize_t ho = grad_out.shape[2], run = kh * grad_in.shape[3]
    cdef Py_ssize_t t, oh, q
    cdef floating share
    cdef floating* cells
    cdef floating d = <floating>divisor
    if n * c * h_in * w_in == 0:   # (nothing to write, and no element 0 to address)
        return
    for t in prange(n * c, nogil=True, schedule="static",
                    num_threads=threads_for(n * c * h_in * w_in)):
        cells = &grad_in[0, 0, 0, 0] + t * h_in * w_in
        for oh in range(ho):
            share = _unsigned_zero((&grad_out[0, 0, 0, 0])[t * ho + oh] / d)
            for q in range(run):
                cells[oh * run + q] = share
        for q in range(ho * run, h_in * w_in):
            cells[q] = 0


@cython.cdivision(True)
def _avg_pool_2x2_fwd(const floating[:, :, :, ::1] x,   # IN  (N, C, H, W)
                      double divisor,
                      double edge, double corner,       # ceil mode's windows past the edge
                      floating[:, :, :, ::1] y):        # OUT (N, C, H_out, W_out)
    """_avg_pool_tiles_fwd for 2x2 windows of stride 2 (window_shapes.is_2x2_pool): one
    loop across each output row sums every window's 4 cells in order and divides,
    vectorised across the windows (_conv_rows.h fnn_avg_2x2_row_*), where
    fnn_avg_tiles_row_* passed over the row 4 times and once more to divide. 1 thread,
    float32, CPU time, _avg_pool_tiles_fwd -> here: 16x32x28x28 0.24 -> 0.055 ms,
    128x32x28x28 1.87 -> 0.44 ms. edge, corner: the divisors of ceil mode's 2-cell
    windows past an odd H or W and of its corner window (fnn_avg_2x2_row_*)."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h_in = x.shape[2], w_in = x.shape[3]
    cdef Py_ssize_t ho = y.shape[2], wo = y.shape[3]
    cdef Py_ssize_t hf = min(ho, h_in // 2), wf = min(wo, w_in // 2)   # windows inside x
    cdef Py_ssize_t r, t, oh
    cdef floating d = <floating>divisor, d2 = <floating>edge, d1 = <floating>corner
    if n * c * ho * wo == 0:   # (no element 0 to address)
        return
    for r in prange(n * c * ho, nogil=True, schedule="static",
                    num_threads=threads_for(n * c * h_in * w_in)):
        t = r // ho
        oh = r - t * ho
        if floating is float:
            fnn_avg_2x2_row_f(&x[0, 0, 0, 0] + (t * h_in + 2 * oh) * w_in, w_in, wf, wo,
                              oh >= hf, d, d2, d1, &y[0, 0, 0, 0] + r * wo)
        else:
            fnn_avg_2x2_row_d(&x[0, 0, 0, 0] + (t * h_in + 2 * oh) * w_in, w_in, wf, wo,
                              oh >= hf, d, d2, d1, &y[0, 0, 0, 0] + r * wo)


@cython.cdivision(True)
def _avg_pool_2x2_bwd(const floating[:, :, :, ::1] grad_out,  # IN  (N, C, H_out, W_out)
                      double divisor,
                      double inverse,                          # exact 1 / divisor, or 0
                      double edge, double corner,              # as _avg_pool_2x2_fwd's
                      floating[:, :, :, ::1] grad_in):        # OUT (N, C, H, W)
    """_avg_pool_tiles_bwd for 2x2 windows of stride 2 (window_shapes.is_2x2_pool): one
    loop across each output row writes every window's share into its 4 cells,
    vectorised (_conv_rows.h fnn_avg_2x2_bwd_row_*), the cells no window covers zeroed,
    where _avg_pool_tiles_bwd stored each column of the upper row apart, then copied it
    to the lower. 1 thread, float32, CPU time, _avg_pool_tiles_bwd -> here: to
    16x32x28x28 0.144 -> 0.065 ms, to 128x32x28x28 1.13 -> 0.55 ms (0.90 ms dividing:
    the 14-window rows' last 6 run scalar, where the exact reciprocal's multiply is
    cheaper than a division). Ceil mode's windows past an odd H or W as
    fnn_avg_2x2_bwd_row_*'s."""
    cdef Py_ssize_t n = grad_in.shape[0], c = grad_in.shape[1]
    cdef Py_ssize_t h_in = grad_in.shape[2], w_in = grad_in.shape[3]
    cdef Py_ssize_t ho = grad_out.shape[2], wo = grad_out.shape[3]
    cdef Py_ssize_t hf = min(ho, h_in // 2), wf = min(wo, w_in // 2)   # windows inside
    cdef Py_ssize_t t, oh
    cdef const floating* g
    cdef floating* plane
    cdef floating d = <floating>divisor, inv = <floating>inverse
    cdef floating d2 = <floating>edge, d1 = <floating>corner
    if n * c * h_in * w_in == 0:   # (nothing to write, and no element 0 to address)
        return
    for t in prange(n * c, nogil=True, schedule="static",
                    num_threads=threads_for(n * c * h_in * w_in)):
        plane = &grad_in[0, 0, 0, 0] + t * h_in * w_in
        for oh in range(ho):
            g = &grad_out[0, 0, 0, 0] + (t * ho + oh) * wo
            if floating is float:
                fnn_avg_2x2_bwd_row_f(g, w_in, wf, wo, oh >= hf, d, inv, d2, d1,
                                      plane + 2 * oh * w_in)
            else:
                fnn_avg_2x2_bwd_row_d(g, w_in, wf, wo, oh >= hf, d, inv, d2, d1,
                                      plane + 2 * oh * w_in)
        if 2 * ho < h_in:
            memset(plane + 2 * ho * w_in, 0, (h_in - 2 * ho) * w_in * sizeof(floating))


def _avg_pool_3x3s2_fwd(const floating[:, :, :, ::1] x,   # IN  (N, C, H, W)
                        Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad,
                        Py_ssize_t divisor,                 # > 0: divisor_override
                        floating[:, :, :, ::1] y):          # OUT (N, C, H_out, W_out)
    """_avg_pool_fwd for 3x3 windows of stride 2, padding 0 or 1 (window_shapes.
    is_3x3s2_pool; ceil mode allowed): _max_pool_3x3's stride phases inside a border
    of zeros, each window's 9 taps summed in row-major order in one loop across a
    plane's windows, vectorised (_conv_rows.h fnn_avg_pool_3x3s2_*, numba's design).
    1 thread, float32, CPU time, pad 1, _avg_pool_fwd -> here: 32x64x16x16 1.15 -> 0.21
    ms, 16x32x28x28 0.86 -> 0.15 ms."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h_in = x.shape[2], w_in = x.shape[3]
    cdef Py_ssize_t ho = y.shape[2], wo = y.shape[3], planes = n * c
    cdef Py_ssize_t lanes = ho * (wo + 1)
    cdef Py_ssize_t pad_stride = thread_stride(4 * (ho + 1) * (wo + 1) + wo + 2,
                                               sizeof(floating))
    cdef Py_ssize_t lane_stride = thread_stride(lanes, sizeof(floating))
    cdef int nthreads = threads_for(planes * h_in * w_in)
    cdef int k
    cdef floating* pad
    cdef floating* mean
    cdef floating* dv
    if planes * ho * wo == 0:   # (no element 0 to address)
        return
    if nthreads > planes:
        nthreads = <int>planes
    with nogil:
        if not thread_workspaces(nthreads, pad_stride * sizeof(floating), <void**>&pad,
                                 lane_stride * sizeof(floating), <void**>&mean,
                                 lane_stride * sizeof(floating), <void**>&dv):
            with gil:
                raise MemoryError("avg_pool2d_forward: cannot allocate its scratch")
        for k in prange(nthreads, schedule="static", num_threads=nthreads):
            if floating is float:
                fnn_avg_pool_3x3s2_f(&x[0, 0, 0, 0], k * planes // nthreads,
                                     (k + 1) * planes // nthreads, h_in, w_in, ph, pw,
                                     count_include_pad, divisor, pad + k * pad_stride,
                                     mean + k * lane_stride, dv + k * lane_stride,
                                     &y[0, 0, 0, 0], ho, wo)
            else:
                fnn_avg_pool_3x3s2_d(&x[0, 0, 0, 0], k * planes // nthreads,
                                     (k + 1) * planes // nthreads, h_in, w_in, ph, pw,
                                     count_include_pad, divisor, pad + k * pad_stride,
                                     mean + k * lane_stride, dv + k * lane_stride,
                                     &y[0, 0, 0, 0], ho, wo)


def _avg_pool_3x3s2_bwd(const floating[:, :, :, ::1] grad_out,  # IN  (N, C, H_out, W_out)
                        Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad,
                        Py_ssize_t divisor,                      # > 0: divisor_override
                        floating[:, :, :, ::1] grad_in):         # OUT (N, C, H, W)
    """_avg_pool_bwd for 3x3 windows of stride 2 (as _avg_pool_3x3s2_fwd): each window's
    share to a lane of a zero-bordered scratch, then each cell of the padded plane's
    stride phases gathers its windows' shares in window order (_avg_pool_bwd's), one
    vectorised loop a phase (_conv_rows.h fnn_avg_pool_3x3s2_bwd_*). 1 thread, float32,
    CPU time, pad 1, _avg_pool_bwd -> here: to 32x64x16x16 1.22 -> 0.21 ms, to
    16x32x28x28 0.92 -> 0.16 ms."""
    cdef Py_ssize_t n = grad_in.shape[0], c = grad_in.shape[1]
    cdef Py_ssize_t h_in = grad_in.shape[2], w_in = grad_in.shape[3]
    cdef Py_ssize_t ho = grad_out.shape[2], wo = grad_out.shape[3], planes = n * c
    cdef Py_ssize_t size = (ho + 1) * (wo + 1)
    cdef Py_ssize_t share_stride = thread_stride(size + wo + 2, sizeof(floating))
    cdef Py_ssize_t pad_stride = thread_stride(4 * size, sizeof(floating))
    cdef Py_ssize_t lane_stride = thread_stride(ho * (wo + 1), sizeof(floating))
    cdef int nthreads = threads_for(planes * h_in * w_in)
    cdef int k
    cdef floating* share
    cdef floating* pad
    cdef floating* dv
    if planes * h_in * w_in == 0:   # (nothing to write, and no element 0 to address)
        return
    if ho * wo == 0:
        grad_in[...] = 0
        return
    if nthreads > planes:
        nthreads = <int>planes
    with nogil:
        if not thread_workspaces(nthreads, share_stride * sizeof(floating), <void**>&share,
                                 pad_stride * sizeof(floating), <void**>&pad,
                                 lane_stride * sizeof(floating), <void**>&dv):
            with gil:
                raise MemoryError("avg_pool2d_backward: cannot allocate its scratch")
        for k in prange(nthreads, schedule="static", num_threads=nthreads):
            if floating is float:
                fnn_avg_pool_3x3s2_bwd_f(&grad_out[0, 0, 0, 0], k * planes // nthreads,
                                         (k + 1) * planes // nthreads, h_in, w_in, ph, pw,
                                         count_include_pad, divisor,
                                         share + k * share_stride, pad + k * pad_stride,
                                         dv + k * lane_stride, &grad_in[0, 0, 0, 0], ho, wo)
            else:
                fnn_avg_pool_3x3s2_bwd_d(&grad_out[0, 0, 0, 0], k * planes // nthreads,
                                         (k + 1) * planes // nthreads, h_in, w_in, ph, pw,
                                         count_include_pad, divisor,
                                         share + k * share_stride, pad + k * pad_stride,
                                         dv + k * lane_stride, &grad_in[0, 0, 0, 0], ho, wo)


# ------------------------------------------------------- the op table's entry points
def _threads(xshape, wshape, p, itemsize):
    """Threads for a conv kernel: the batch split over our threads, each calling BLAS
    on one thread; 1 (BLAS keeps its own threads) when SciPy's BLAS thread count
    cannot be set."""
    if not blas_threads.available():
        return 1
    return _plan_threads(xshape[0], xshape[1], wshape[0], wshape[2], wshape[3], p, itemsize)


def conv2d_forward(x, weight, bias=None, stride=(1, 1), padding=(0, 0), out=None):
    """2-D cross-correlation, zero padding.

    x: (N, C_in, H, W); weight: (C_out, C_in, kH, kW); bias: (C_out,) or None;
    out: (N, C_out, H_out, W_out) or None. Returns y: (N, C_out, H_out, W_out).
    """
    n, _, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    if out is None:
        out = np.empty(pool_out_shape((n, c_out, h, w), (kh, kw), stride, padding),
                       dtype=x.dtype)
    if bias is None:
        bias = np.zeros(c_out, dtype=x.dtype)
    t = _threads(x.shape, weight.shape, out.shape[2] * out.shape[3], x.itemsize)
    if t > 1:
        with blas_threads.serial_blas():
            _forward(x, weight, bias, stride[0], stride[1], padding[0], padding[1], out, t)
    else:
        _forward(x, weight, bias, stride[0], stride[1], padding[0], padding[1], out, 1)
    return out


def conv2d_backward(grad_out, x, weight, stride=(1, 1), padding=(0, 0), grad_weight=None,
                    grad_bias=None, grad_in=None, need_grad_in=True):
    """Backward of conv2d_forward.

    grad_out: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_out, C_in, kH, kW);
    grad_weight: like weight, grad_bias: (C_out,), each None or accumulated in place;
    grad_in: (N, C_in, H, W) or None. Returns grad_in, or None if not need_grad_in.
    """
    if need_grad_in and grad_in is None:
        grad_in = np.empty(x.shape, dtype=x.dtype)
    t = _threads(x.shape, weight.shape, grad_out.shape[2] * grad_out.shape[3], x.itemsize)
    args = (grad_out, x, weight, stride[0], stride[1], padding[0], padding[1], grad_weight,
            grad_bias, grad_in if need_grad_in else None)
    if t > 1:
        with blas_threads.serial_blas():
            _backward(*args, t)
    else:
        _backward(*args, 1)
    return grad_in if need_grad_in else None


def max_pool2d_forward(x, kernel_size, stride, padding=(0, 0), out=None, indices=None,
                       ceil_mode=False, dilation=(1, 1)):
    """Max pooling with -inf padding. x: (N, C, H, W); out, indices: (N, C, H_out, W_out)
    or None; ceil_mode, dilation: PyTorch's. Returns (y, indices), indices the int64 flat
    h * W + w of each maximum."""
    shape = pool_out_shape(x.shape, kernel_size, stride, padding, ceil_mode, dilation)
    if out is None:
        out = np.empty(shape, dtype=x.dtype)
    if indices is None:
        indices = np.empty(shape, dtype=np.int64)
    tiles_2x2 = is_2x2_pool(x.shape, shape, kernel_size, stride, padding, dilation)
    if (is_3x3s2_pool(kernel_size, stride, padding, dilation)
            or is_3x3s1_pool(kernel_size, stride, padding, dilation)):
        _max_pool_3x3(x, stride[0], padding[0], padding[1], out, indices)
    elif tiles_2x2 or shape[3] < _MAX_POOL_ROW_MIN or shape[3] < kernel_size[1]:
        _max_pool_planes(x, kernel_size[0], kernel_size[1], stride[0], stride[1], padding[0],
                         padding[1], dilation[0], dilation[1], out, indices, tiles_2x2)
    else:
        _max_pool_fwd(x, kernel_size[0], kernel_size[1], stride[0], stride[1], padding[0],
                      padding[1], dilation[0], dilation[1], out, indices)
    return out, indices


def max_pool2d_backward(grad_out, indices, input_shape, grad_in=None):
    """grad_out, indices: (N, C, H_out, W_out); input_shape: (N, C, H, W).
    Returns grad_in of input_shape with each grad_out value added at its argmax."""
    n, c, h, w = input_shape
    if grad_in is None:
        grad_in = np.empty(tuple(input_shape), dtype=grad_out.dtype)
    p = grad_out.shape[2] * grad_out.shape[3]  # not -1: an empty batch has no size to infer
    if is_small_plane(input_shape):
        _max_pool_bwd_small(grad_out.reshape(-1), indices.reshape(-1), p, h * w,
                            grad_in.reshape(-1))
        return grad_in
    _max_pool_bwd(grad_out.reshape(n, c, p), indices.reshape(n, c, p),
                  grad_in.reshape(n, c, h * w))
    return grad_in


def avg_pool2d_forward(x, kernel_size, stride, padding=(0, 0), count_include_pad=True,
                       out=None, ceil_mode=False, divisor_override=None):
    """Average pooling, zero padding. x: (N, C, H, W). Returns (N, C, H_out, W_out)."""
    if out is None:
        out = np.empty(pool_out_shape(x.shape, kernel_size, stride, padding, ceil_mode),
                       dtype=x.dtype)
    if is_global_pool(x.shape, out.shape, kernel_size, padding):
        _avg_pool_planes_fwd(x, divisor_override or kernel_size[0] * kernel_size[1], out)
        return out
    if is_2x2_pool(x.shape, out.shape, kernel_size, stride, padding):
        _avg_pool_2x2_fwd(x, divisor_override or 4, divisor_override or 2,
                          divisor_override or 1, out)
        return out
    if is_tiling_pool(x.shape, out.shape, kernel_size, stride, padding):
        _avg_pool_tiles_fwd(x, kernel_size[0], kernel_size[1],
                            divisor_override or kernel_size[0] * kernel_size[1], out)
        return out
    if is_3x3s2_pool(kernel_size, stride, padding):
        _avg_pool_3x3s2_fwd(x, padding[0], padding[1], bool(count_include_pad),
                            divisor_override or 0, out)
        return out
    _avg_pool_fwd(x, kernel_size[0], kernel_size[1], stride[0], stride[1], padding[0],
                  padding[1], bool(count_include_pad), divisor_override or 0, out)
    return out


def avg_pool2d_backward(grad_out, input_shape, kernel_size, stride, padding=(0, 0),
                        count_include_pad=True, grad_in=None, ceil_mode=False,
                        divisor_override=None):
    """grad_out: (N, C, H_out, W_out) (its shape gives the output size, so ceil_mode is
    not needed here); input_shape: (N, C, H, W). Returns grad_in."""
    if grad_in is None:
        grad_in = np.empty(tuple(input_shape), dtype=grad_out.dtype)
    tiling = is_tiling_pool(grad_in.shape, grad_out.shape, kernel_size, stride, padding)
    if tiling and is_plane_wide_window(grad_in.shape, kernel_size):
        _avg_pool_runs_bwd(grad_out, kernel_size[0],
                           divisor_override or kernel_size[0] * kernel_size[1], grad_in)
        return grad_in
    if is_2x2_pool(grad_in.shape, grad_out.shape, kernel_size, stride, padding):
        divisor = divisor_override or 4
        _avg_pool_2x2_bwd(grad_out, divisor, exact_reciprocal(divisor, grad_in.dtype),
                          divisor_override or 2, divisor_override or 1, grad_in)
        return grad_in
    if tiling:
        _avg_pool_tiles_bwd(grad_out, kernel_size[0], kernel_size[1],
                            divisor_override or kernel_size[0] * kernel_size[1], grad_in)
        return grad_in
    if is_3x3s2_pool(kernel_size, stride, padding):
        _avg_pool_3x3s2_bwd(grad_out, padding[0], padding[1], bool(count_include_pad),
                            divisor_override or 0, grad_in)
        return grad_in
    _avg_pool_bwd(grad_out, kernel_size[0], kernel_size[1], stride[0], stride[1],
                  padding[0], padding[1], bool(count_include_pad), divisor_override or 0,
                  grad_in)
    return grad_in
