# cython: language_level=3
# distutils: extra_compile_args = -fno-math-errno
"""Batch normalisation forward and backward over (N, C, S) views: S = 1 for
BatchNorm1d's (N, C) input, S = H * W for BatchNorm2d's (N, C, H, W).

Per-channel sums run in double (the backward's (N, C, S) sums add spans of SPAN
values in x's type first). With S == 1 the rows are split into fixed chunks,
each summing every channel into its own row of a partial buffer (four rows added in
x's type per float64 accumulate), merged in chunk order (never a racy += across
threads); with S > 1 each channel is one parallel task (from FUSED_MIN_CHANNELS
channels up, its statistics and its output in the same task). Either way the statistics are
the same bit for bit for any thread count.

Passes over x: training forward 3 (sum, squared deviations, normalise), backward 2
(the two sums, then grad_in). For (N, C) input each call is one parallel region whose
phases are work-shared loops (the static schedule gives a thread the same rows in
every phase, so its later passes read them from its own L2): 256x1024 forward+backward
128 vs 139 us with 2 threads against one region per pass (interleaved A/B; level on
one thread and at 4096 rows). Splitting (N, C) input by channel ranges instead (no
merges) was measured and dropped: each thread then streams half of every row, and
with 2 threads that ran 1.3-1.5x slower from 1024 rows up (forward+backward
1024x1024: 865 vs 706 us; 4096x1024: 6.0 vs 4.7 ms; level at 256 rows).
"""
from cython.parallel cimport parallel, prange
from libc.math cimport sqrt

cimport numpy as cnp

from _common cimport floating, fnn_barrier, fnn_workspace, threads_for, n_chunks, merge_chunks
from _ndarrays cimport float_type, like_data, vector_data_or_null


# Column sums run over a (rows, w) block with row stride ld. Four rows are added
# first in x's type, then once into the float64 accumulator: a quarter of the float64
# read-modify-writes (which bound this loop), and the same grouping (by row index
# only) for any split of the columns, so the bits never depend on the thread count.

cdef inline void _col_sum(const floating* x, Py_ssize_t rows, Py_ssize_t ld, Py_ssize_t w,
                          double* acc) noexcept nogil:
    """acc[j] = sum over rows of x[r, j]. x: (rows, w) with row stride ld; acc: (w,)."""
    cdef Py_ssize_t r = 0, j
    for j in range(w):
        acc[j] = 0
    while r + 4 <= rows:
        for j in range(w):
            acc[j] += <double>((x[j] + x[ld + j]) + (x[2 * ld + j] + x[3 * ld + j]))
        x += 4 * ld
        r += 4
    while r < rows:
        for j in range(w):
            acc[j] += x[j]
        x += ld
        r += 1


cdef inline void _col_sqdev(const floating* x, const floating* mean, Py_ssize_t rows,
                            Py_ssize_t ld, Py_ssize_t w, double* acc) noexcept nogil:
    """acc[j] = sum over rows of (x[r, j] - mean[j])**2 (four rows at a time, as
    _col_sum)."""
    cdef Py_ssize_t r = 0, j
    cdef floating d0, d1, d2, d3
    for j in range(w):
        acc[j] = 0
    while r + 4 <= rows:
        for j in range(w):
            d0 = x[j] - mean[j]
            d1 = x[ld + j] - mean[j]
            d2 = x[2 * ld + j] - mean[j]
            d3 = x[3 * ld + j] - mean[j]
            acc[j] += <double>((d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3))
        x += 4 * ld
        r += 4
    while r < rows:
        for j in range(w):
            d0 = x[j] - mean[j]
            acc[j] += <double>(d0 * d0)
        x += ld
        r += 1


cdef inline void _col_grad_sums(const floating* g, const floating* x, const floating* mean,
                                Py_ssize_t rows, Py_ssize_t ld, Py_ssize_t w, double* acc_g,
                                double* acc_gx) noexcept nogil:
    """acc_g[j] = sum of g[:, j]; acc_gx[j] = sum of g[:, j] * (x[:, j] - mean[j]).
    g, x: (rows, w) with row stride ld (four rows at a time, as _col_sum)."""
    cdef Py_ssize_t r = 0, j
    for j in range(w):
        acc_g[j] = 0
        acc_gx[j] = 0
    while r + 4 <= rows:
        for j in range(w):
            acc_g[j] += <double>((g[j] + g[ld + j]) + (g[2 * ld + j] + g[3 * ld + j]))
            acc_gx[j] += <double>((g[j] * (x[j] - mean[j]) + g[ld + j] * (x[ld + j] - mean[j]))
                                  + (g[2 * ld + j] * (x[2 * ld + j] - mean[j])
                                     + g[3 * ld + j] * (x[3 * ld + j] - mean[j])))
        g += 4 * ld
        x += 4 * ld
        r += 4
    while r < rows:
        for j in range(w):
            acc_g[j] += g[j]
            acc_gx[j] += <double>(g[j] * (x[j] - mean[j]))
        g += ld
        x += ld
        r += 1


cdef inline void _affine_row(const floating* x, const floating* mean, const floating* scale,
                             const floating* shift, floating* y, Py_ssize_t c) noexcept nogil:
    """y[j] = (x[j] - mean[j]) * scale[j] + shift[j]. All (c,)."""
    cdef Py_ssize_t j
    for j in range(c):
        y[j] = (x[j] - mean[j]) * scale[j] + shift[j]


cdef inline void _grad_row(const floating* g, const floating* x, const floating* mean,
                           const floating* scale, const floating* k,
                           const floating* mean_g, floating* out, Py_ssize_t c,
                           bint with_x) noexcept nogil:
    """out[j] = (g[j] - mean_g[j] - (x[j] - mean[j]) k[j]) scale[j], PyTorch's form
    (_grad_coefficients). All (c,). Without with_x (k is 0: eval mode, mean-only) x is
    not read, so a non-finite x gives no 0 * inf = NaN."""
    cdef Py_ssize_t j
    if with_x:
        for j in range(c):
            out[j] = (g[j] - mean_g[j] - (x[j] - mean[j]) * k[j]) * scale[j]
    else:
        for j in range(c):
            out[j] = (g[j] - mean_g[j]) * scale[j]


# ------------------------------------------------------------- per-channel helpers

cdef enum:
    FUSED_MIN_CHANNELS = 16   # (N, C, S) forward, backward: a task does a whole channel
    SPAN = 1024     # values per span of _plane_grad_sums (numba: batchnorm._SPAN)


cdef inline void _plane_stats(const floating* x, Py_ssize_t n, Py_ssize_t cs,
                              Py_ssize_t s, bint want_var, double* mean,
                              double* var) noexcept nogil:
    """Mean (and biased variance) of one channel: n planes of s values, stride cs."""
    cdef Py_ssize_t i, k
    cdef double acc = 0, m
    cdef floating mf, d
    for i in range(n):
        for k in range(s):
            acc += x[i * cs + k]
    m = acc / (n * s)
    mean[0] = m
    if not want_var:
        return
    mf = <floating>m
    acc = 0
    for i in range(n):
        for k in range(s):
            d = x[i * cs + k] - mf
            acc += <double>d * <double>d
    var[0] = acc / (n * s)


cdef inline void _plane_grad_sums(const floating* g, const floating* x, floating mean,
                                  Py_ssize_t n, Py_ssize_t cs, Py_ssize_t s,
                                  double* sum_g, double* sum_gx) noexcept nogil:
    """The sums of g and g * (x - mean) over one channel: n planes of s values, stride
    cs. Each plane is summed in spans of SPAN values in x's type, each span's total
    added in double (as PyTorch's float accumulators, but short: a span's error is a
    1024-term sum's, split over the vector's lanes): a double conversion and add per
    value made this loop compute-bound (32x128x16x16, 2 threads, numba's same loop: 191
    -> 152 us)."""
    cdef Py_ssize_t i, k, k0, k1
    cdef double ag = 0, agx = 0
    cdef floating pg, pgx
    cdef const floating* gr
    cdef const floating* xr
    for i in range(n):
        gr = g + i * cs
        xr = x + i * cs
        k0 = 0
        while k0 < s:
            k1 = min(k0 + SPAN, s)
            pg = 0
            pgx = 0
            for k in range(k0, k1):
                pg = pg + gr[k]
                pgx = pgx + gr[k] * (xr[k] - mean)
            ag += pg
            agx += pgx
            k0 = k1
    sum_g[0] = ag
    sum_gx[0] = agx


cdef inline void _affine_plane(const floating* x, floating mean, floating scale,
                               floating shift, floating* y, Py_ssize_t s) noexcept nogil:
    """y = (x - mean) * scale + shift over one (n, c) plane of s values."""
    cdef Py_ssize_t k
    for k in range(s):
        y[k] = (x[k] - mean) * scale + shift


cdef inline void _grad_plane(const floating* g, const floating* x, floating mean,
                             floating scale, floating k, floating mean_g, floating* out,
                             Py_ssize_t s, bint with_x) noexcept nogil:
    """_grad_row for one plane of s values of a channel."""
    cdef Py_ssize_t i
    if with_x:
        for i in range(s):
            out[i] = (g[i] - mean_g - (x[i] - mean) * k) * scale
    else:
        for i in range(s):
            out[i] = (g[i] - mean_g) * scale


# ------------------------------------------------------------------- statistics

cdef void _plane_batch_stats(const floating* x, Py_ssize_t n, Py_ssize_t c, Py_ssize_t s,
                             bint want_var, double* mean, double* var,
                             floating* meanf) noexcept nogil:
    """Statistics of (N, C, S) input, a parallel task per channel. mean, var: (c,)
    double; meanf: (c,) the mean in x's type."""
    cdef Py_ssize_t j
    for j in prange(c, schedule="static", num_threads=threads_for(n * c * s)):
        _plane_stats(x + j * s, n, c * s, s, want_var, mean + j, var + j)
        meanf[j] = <floating>mean[j]


cdef inline void _merge_columns(double* partial, Py_ssize_t nch, Py_ssize_t ld,
                                Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """partial[0, j] = sum over chunks k of partial[k, j] for j0 <= j < j1, added in
    chunk order. partial: (nch, ld)."""
    cdef Py_ssize_t k, j
    for k in range(1, nch):
        for j in range(j0, j1):
            partial[j] += partial[k * ld + j]


cdef void _channel_params(const double* mean, const double* var, const floating* weight,
                          const floating* bias, floating* running_mean,
                          floating* running_var, bint training, double momentum, double eps,
                          double m_count, Py_ssize_t j0, Py_ssize_t j1,
                          floating* save_mean, floating* save_invstd, floating* scale,
                          floating* shift) noexcept nogil:
    """Per channel j0 <= j < j1: the saved statistics, y = (x - mean) * scale + shift's scale and
    shift (shift = bias, or bias - mean * scale in eval with var), and the
    running-statistics update (unbiased variance). var, weight,
    running_var and save_invstd are NULL when mean_only; weight, bias and the
    running buffers may be NULL where the op table allows None."""
    cdef Py_ssize_t j
    cdef double invstd
    for j in range(j0, j1):
        save_mean[j] = <floating>mean[j]
        scale[j] = 1
        if var != NULL:
            # PyTorch's: with eps 0 a constant channel's invstd is 0 (y = bias), not inf
            if training and var[j] == 0 and eps == 0:
                invstd = 0
            else:
                invstd = 1.0 / sqrt(var[j] + eps)
            save_invstd[j] = <floating>invstd
            scale[j] = <floating>invstd * (weight[j] if weight != NULL else 1)
        shift[j] = bias[j] if bias != NULL else 0
        if var != NULL and not training:
            # PyTorch's eval form y = x * scale + (bias - mean * scale) (_forward zeroes
            # the mean the rows subtract): where var + eps is 0 its inf scale gives
            # PyTorch's inf/NaN per element, which (x - mean) * inf + bias does not
            shift[j] = <floating>(shift[j] - mean[j] * <double>scale[j])
        if training and running_mean != NULL:
            running_mean[j] = <floating>((1 - momentum) * running_mean[j] + momentum * mean[j])
            if var != NULL and running_var != NULL:
                running_var[j] = <floating>((1 - momentum) * running_var[j] + momentum
                                            * var[j] * m_count / max(m_count - 1, 1.0))


cdef void _grad_coefficients(const double* sum_g, const double* sum_gx,
                             const floating* weight, const floating* save_invstd,
                             bint training, bint need_sums, double m_count, Py_ssize_t j0,
                             Py_ssize_t j1, floating* grad_weight, floating* grad_bias,
                             floating* scale, floating* k,
                             floating* mean_g) noexcept nogil:
    """grad_in = (grad_out - mean_g - (x - mean) * k) * scale for channels j0 <= j < j1
    (PyTorch's form: k = mean(grad_out * x_hat) * invstd, scale = weight * invstd; eval:
    mean_g and k 0), and the parameter gradients accumulated. weight, save_invstd and
    grad_weight are NULL when mean_only; grad_weight and grad_bias may be NULL. All
    (c,). Not the fold a * grad_out + b * (x - mean) + d it equals: with an infinite
    weight (or grad_out) a, b and d are infinite, and the fold's sum is NaN in every
    row of the channel where PyTorch's form gives +-inf in most rows. The same
    expressions as numba's _grad_coefficients."""
    cdef Py_ssize_t j
    cdef double w, inv, inv_n = 1.0 / m_count
    for j in range(j0, j1):
        inv = save_invstd[j] if save_invstd != NULL else 1.0
        w = weight[j] if weight != NULL else 1.0
        if need_sums:
            if grad_bias != NULL:
                grad_bias[j] += <floating>sum_g[j]
            if grad_weight != NULL:
                grad_weight[j] += <floating>(sum_gx[j] * inv)
        scale[j] = <floating>(w * inv)
        k[j] = 0
        mean_g[j] = 0
        if training:
            mean_g[j] = <floating>(sum_g[j] * inv_n)
            if save_invstd != NULL:
                k[j] = <floating>(sum_gx[j] * inv * inv * inv_n)


# ------------------------------------------------------------ (N, C) in one region
# Each call is one parallel region whose phases are work-shared loops: row chunks
# (sums), channel blocks (merge in chunk order, per-channel coefficients), row chunks
# again (the output). The static schedule hands a thread the same row chunks in every
# phase, so the second pass over its rows reads them from its own L2 cache.

cdef enum:
    CHANNEL_BLOCK = 128


cdef void _forward_rows(const floating* x, floating* out, Py_ssize_t n, Py_ssize_t c,
                        bint training, bint want_var, double* mean, double* var,
                        floating* meanf, double* partial, const floating* wp,
                        const floating* bp, floating* rm, floating* rv, double momentum,
                        double eps, floating* save_mean, floating* si, floating* scale,
                        floating* shift) noexcept nogil:
    """x, out: (n, c); mean, var: (c,) double (filled here when training, given
    otherwise); meanf, scale, shift: (c,) scratch; partial: (n_chunks(n), c) scratch;
    the rest as _channel_params."""
    cdef Py_ssize_t nch = n_chunks(n), nblk = (c + CHANNEL_BLOCK - 1) // CHANNEL_BLOCK
    cdef Py_ssize_t k, i, blk, j, j0, j1
    cdef double count = <double>n
    # each phase reads what the one before wrote: fnn_barrier between them (the
    # work-shared loops of a parallel() block end without one)
    with parallel(num_threads=threads_for(n * c)):
        if training:
            for k in prange(nch, schedule="static"):
                _col_sum(x + (k * n // nch) * c, (k + 1) * n // nch - k * n // nch, c, c,
                         partial + k * c)
            fnn_barrier()
            for blk in prange(nblk, schedule="static"):
                j0 = blk * CHANNEL_BLOCK
                j1 = min(j0 + CHANNEL_BLOCK, c)
                _merge_columns(partial, nch, c, j0, j1)
                for j in range(j0, j1):
                    mean[j] = partial[j] / count
                    meanf[j] = <floating>mean[j]
            fnn_barrier()
            if want_var:
                for k in prange(nch, schedule="static"):
                    _col_sqdev(x + (k * n // nch) * c, meanf, (k + 1) * n // nch - k * n // nch,
                               c, c, partial + k * c)
                fnn_barrier()
                for blk in prange(nblk, schedule="static"):
                    j0 = blk * CHANNEL_BLOCK
                    j1 = min(j0 + CHANNEL_BLOCK, c)
                    _merge_columns(partial, nch, c, j0, j1)
                    for j in range(j0, j1):
                        var[j] = partial[j] / count
                fnn_barrier()
        for blk in prange(nblk, schedule="static"):
            j0 = blk * CHANNEL_BLOCK
            j1 = min(j0 + CHANNEL_BLOCK, c)
            _channel_params(mean, var if want_var else NULL, wp, bp, rm, rv, training,
                            momentum, eps, count, j0, j1, save_mean, si, scale, shift)
        fnn_barrier()
        for k in prange(nch, schedule="static"):
            for i in range(k * n // nch, (k + 1) * n // nch):
                _affine_row(x + i * c, meanf, scale, shift, out + i * c, c)


cdef void _backward_rows(const floating* g, const floating* x, floating* gi, Py_ssize_t n,
                         Py_ssize_t c, const floating* save_mean, const floating* wp,
                         const floating* si, bint training, bint need_sums,
                         floating* gw, floating* gb, double* partial, floating* scale,
                         floating* k, floating* mean_g) noexcept nogil:
    """g, x, gi: (n, c) (gi NULL when grad_in is not wanted); partial: (n_chunks(n),
    2, c) scratch; scale, k, mean_g: (c,) scratch; the rest as _grad_coefficients."""
    cdef Py_ssize_t nch = n_chunks(n), nblk = (c + CHANNEL_BLOCK - 1) // CHANNEL_BLOCK
    cdef Py_ssize_t ch, i, blk, j0, j1
    with parallel(num_threads=threads_for(n * c)):   # (fnn_barrier: as _forward_rows)
        if need_sums:
            for ch in prange(nch, schedule="static"):
                _col_grad_sums(g + (ch * n // nch) * c, x + (ch * n // nch) * c,
                               save_mean, (ch + 1) * n // nch - ch * n // nch, c, c,
                               partial + 2 * ch * c, partial + (2 * ch + 1) * c)
            fnn_barrier()
        for blk in prange(nblk, schedule="static"):
            j0 = blk * CHANNEL_BLOCK
            j1 = min(j0 + CHANNEL_BLOCK, c)
            if need_sums:
                _merge_columns(partial, nch, 2 * c, j0, j1)
                _merge_columns(partial, nch, 2 * c, c + j0, c + j1)
            _grad_coefficients(partial, partial + c, wp, si, training, need_sums,
                               <double>n, j0, j1, gw, gb, scale, k, mean_g)
        fnn_barrier()
        if gi != NULL:
            for ch in prange(nch, schedule="static"):
                for i in range(ch * n // nch, (ch + 1) * n // nch):
                    _grad_row(g + i * c, x + i * c, save_mean, scale, k, mean_g,
                              gi + i * c, c, training and si != NULL)


# ------------------------------------------------------------------------- ops

cdef void _forward(const floating* xp, floating* yp, Py_ssize_t n, Py_ssize_t c,
                   Py_ssize_t s, bint training, bint want_var, double* mean, double* var,
                   floating* meanf, double* partial, const floating* wp,
                   const floating* bp, floating* rm, floating* rv, double momentum,
                   double eps, floating* save_mean, floating* si, floating* scale,
                   floating* shift) noexcept nogil:
    """x, out: (n, c, s); the rest as _forward_rows."""
    cdef Py_ssize_t j, i, p
    if not training:
        for j in range(c):
            mean[j] = rm[j]
            meanf[j] = rm[j]
            if want_var:
                var[j] = rv[j]
                meanf[j] = 0   # (the mean is in _channel_params' eval shift)
    if s == 1:
        _forward_rows(xp, yp, n, c, training, want_var, mean, var, meanf, partial, wp, bp,
                      rm, rv, momentum, eps, save_mean, si, scale, shift)
    elif c >= FUSED_MIN_CHANNELS:
        # a channel's statistics and output in one task: the second read of its
        # planes finds them in the thread's L2 (32x128x16x16, 2 threads: 264-288
        # -> 246 us)
        for j in prange(c, schedule="static", num_threads=threads_for(n * c * s)):
            if training:
                _plane_stats(xp + j * s, n, c * s, s, want_var, mean + j, var + j)
                meanf[j] = <floating>mean[j]
            _channel_params(mean, var if want_var else NULL, wp, bp, rm, rv, training,
                            momentum, eps, <double>(n * s), j, j + 1, save_mean,
                            si, scale, shift)
            for i in range(n):
                _affine_plane(xp + (i * c + j) * s, meanf[j], scale[j], shift[j],
                              yp + (i * c + j) * s, s)
    else:
        # fewer channels: the output split by planes keeps both threads busy
        if training:
            _plane_batch_stats(xp, n, c, s, want_var, mean, var, meanf)
        _channel_params(mean, var if want_var else NULL, wp, bp, rm, rv, training,
                        momentum, eps, <double>(n * s), 0, c, save_mean, si, scale, shift)
        for p in prange(n * c, schedule="static", num_threads=threads_for(n * c * s)):
            _affine_plane(xp + p * s, meanf[p % c], scale[p % c], shift[p % c],
                          yp + p * s, s)


cdef void _backward(const floating* gp, const floating* xp, floating* gi, Py_ssize_t n,
                    Py_ssize_t c, Py_ssize_t s, const floating* save_mean,
                    const floating* wp, const floating* si, bint training,
                    bint need_sums, floating* gw, floating* gb, double* sum_g,
                    double* sum_gx, double* partial, floating* scale, floating* k,
                    floating* mean_g) noexcept nogil:
    """g, x, gi: (n, c, s) (gi NULL when grad_in is not wanted); sum_g, sum_gx: (c,)
    scratch; the rest as _backward_rows."""
    cdef Py_ssize_t j, i, p
    if s == 1:
        _backward_rows(gp, xp, gi, n, c, save_mean, wp, si, training, need_sums, gw, gb,
                       partial, scale, k, mean_g)
    elif c >= FUSED_MIN_CHANNELS and gi != NULL:
        # a channel's sums, coefficients and grad_in in one task: the second read of
        # its planes finds them in the thread's L2 (with the span sums, 32x128x16x16,
        # 2 threads: 377-416 -> 284 us, PyTorch 268-312 us)
        for j in prange(c, schedule="static", num_threads=threads_for(n * c * s)):
            if need_sums:
                _plane_grad_sums(gp + j * s, xp + j * s, save_mean[j], n, c * s, s,
                                 sum_g + j, sum_gx + j)
            _grad_coefficients(sum_g, sum_gx, wp, si, training, need_sums,
                               <double>(n * s), j, j + 1, gw, gb, scale, k, mean_g)
            for i in range(n):
                _grad_plane(gp + (i * c + j) * s, xp + (i * c + j) * s, save_mean[j],
                            scale[j], k[j], mean_g[j], gi + (i * c + j) * s, s,
                            training and si != NULL)
    else:
        if need_sums:
            for j in prange(c, schedule="static", num_threads=threads_for(n * c * s)):
                _plane_grad_sums(gp + j * s, xp + j * s, save_mean[j], n, c * s, s,
                                 sum_g + j, sum_gx + j)
        _grad_coefficients(sum_g, sum_gx, wp, si, training, need_sums, <double>(n * s),
                           0, c, gw, gb, scale, k, mean_g)
        # fewer channels than FUSED_MIN_CHANNELS: grad_in split by planes, which keeps
        # both threads busy when c is 1 or 3
        if gi != NULL:
            for p in prange(n * c, schedule="static", num_threads=threads_for(n * c * s)):
                _grad_plane(gp + p * s, xp + p * s, save_mean[p % c], scale[p % c],
                            k[p % c], mean_g[p % c], gi + p * s, s,
                            training and si != NULL)


# The entries take the ndarrays themselves (_ndarrays.pxd: the checks the fused
# memoryviews made, in C, and the shapes too), of shape (N, C) or (N, C, *spatial)
# read as (N, C, S).

cdef Py_ssize_t _planes(cnp.ndarray x, Py_ssize_t* c, Py_ssize_t* s) except -1:
    """x's N, with C and S (the product of the dimensions after the second) in c, s."""
    cdef int axis, ndim = cnp.PyArray_NDIM(x)
    if ndim < 2:
        raise ValueError(f"expected x of shape (N, C, ...), got {(<object>x).shape}")
    c[0] = cnp.PyArray_DIM(x, 1)
    s[0] = 1
    for axis in range(2, ndim):
        s[0] *= cnp.PyArray_DIM(x, axis)
    return cnp.PyArray_DIM(x, 0)


def batchnorm_forward(cnp.ndarray x not None, cnp.ndarray weight, cnp.ndarray bias,
                      cnp.ndarray running_mean, cnp.ndarray running_var, bint training,
                      double momentum, double eps, bint mean_only, cnp.ndarray out not None,
                      cnp.ndarray save_mean not None, cnp.ndarray save_invstd):
    """x, out: (N, C, *spatial); weight, bias, running_mean, running_var, save_mean,
    save_invstd: (C,), each possibly None as the op table allows (weight,
    running_var and save_invstd are ignored when mean_only). One float dtype,
    C-contiguous."""
    cdef int kind = float_type(x)
    cdef Py_ssize_t c, s, n = _planes(x, &c, &s)
    cdef size_t size = 4 if kind == cnp.NPY_FLOAT else 8
    cdef bint want_var = not mean_only
    cdef void* xp = like_data(x, x, kind, False, "x")
    cdef void* yp = like_data(out, x, kind, True, "out")
    cdef void* wp = vector_data_or_null(weight if want_var else None, kind, c, False,
                                        "weight")
    cdef void* bp = vector_data_or_null(bias, kind, c, False, "bias")
    cdef void* rm = vector_data_or_null(running_mean, kind, c, True, "running_mean")
    cdef void* rv = vector_data_or_null(running_var if want_var else None, kind, c, True,
                                        "running_var")
    cdef void* sm = vector_data_or_null(save_mean, kind, c, True, "save_mean")
    cdef void* si = NULL
    cdef double* mean
    cdef void* meanf
    if want_var:
        if save_invstd is None:
            raise ValueError("batchnorm_forward: save_invstd is needed unless mean_only")
        si = vector_data_or_null(save_invstd, kind, c, True, "save_invstd")
    if not training and (rm == NULL or (want_var and rv == NULL)):
        raise ValueError("batchnorm_forward: eval mode needs running_mean and running_var")
    if c == 0:
        return
    # work buffers kept per thread between calls (_workspace.h)
    mean = <double*>fnn_workspace(0, (2 * c + 2 * n_chunks(n) * c) * sizeof(double))
    meanf = fnn_workspace(1, 3 * c * size)
    if mean == NULL or meanf == NULL:
        raise MemoryError("batchnorm_forward: no memory for the statistics")
    if kind == cnp.NPY_FLOAT:
        with nogil:
            _forward(<const float*>xp, <float*>yp, n, c, s, training, want_var, mean,
                     mean + c, <float*>meanf, mean + 2 * c, <const float*>wp,
                     <const float*>bp, <float*>rm, <float*>rv, momentum, eps,
                     <float*>sm, <float*>si, <float*>meanf + c, <float*>meanf + 2 * c)
    else:
        with nogil:
            _forward(<const double*>xp, <double*>yp, n, c, s, training, want_var, mean,
                     mean + c, <double*>meanf, mean + 2 * c, <const double*>wp,
                     <const double*>bp, <double*>rm, <double*>rv, momentum, eps,
                     <double*>sm, <double*>si, <double*>meanf + c, <double*>meanf + 2 * c)


def batchnorm_backward(cnp.ndarray grad_out not None, cnp.ndarray x not None,
                       cnp.ndarray weight, cnp.ndarray save_mean not None,
                       cnp.ndarray save_invstd, bint training, bint mean_only,
                       cnp.ndarray grad_weight, cnp.ndarray grad_bias,
                       cnp.ndarray grad_in):
    """grad_out, x, grad_in: (N, C, *spatial); weight, save_mean, save_invstd,
    grad_weight, grad_bias: (C,) (weight, save_invstd and grad_weight ignored when
    mean_only; the gradients may be None). grad_weight and grad_bias are
    accumulated; grad_in, when given, is written. One float dtype, C-contiguous."""
    cdef int kind = float_type(x)
    cdef Py_ssize_t c, s, n = _planes(x, &c, &s)
    cdef size_t size = 4 if kind == cnp.NPY_FLOAT else 8
    cdef void* gp = like_data(grad_out, x, kind, False, "grad_out")
    cdef void* xp = like_data(x, x, kind, False, "x")
    cdef void* sm = vector_data_or_null(save_mean, kind, c, False, "save_mean")
    cdef void* wp = NULL
    cdef void* si = NULL
    cdef void* gw = NULL
    cdef void* gb = vector_data_or_null(grad_bias, kind, c, True, "grad_bias")
    cdef void* gi = NULL
    cdef bint need_sums = training or grad_weight is not None or grad_bias is not None
    cdef Py_ssize_t nch = n_chunks(n)
    cdef double* sum_g
    cdef void* a
    if not mean_only:
        if save_invstd is None:
            raise ValueError("batchnorm_backward: save_invstd is needed unless mean_only")
        wp = vector_data_or_null(weight, kind, c, False, "weight")
        si = vector_data_or_null(save_invstd, kind, c, False, "save_invstd")
        gw = vector_data_or_null(grad_weight, kind, c, True, "grad_weight")
    else:
        need_sums = training or grad_bias is not None
    if grad_in is not None:
        gi = like_data(grad_in, x, kind, True, "grad_in")
    if c == 0:
        return
    sum_g = <double*>fnn_workspace(0, (2 * c + 2 * nch * c) * sizeof(double))
    a = fnn_workspace(1, 3 * c * size)
    if sum_g == NULL or a == NULL:
        raise MemoryError("batchnorm_backward: no memory for the reductions")
    if kind == cnp.NPY_FLOAT:
        with nogil:
            _backward(<const float*>gp, <const float*>xp, <float*>gi, n, c, s,
                      <const float*>sm, <const float*>wp, <const float*>si, training,
                      need_sums, <float*>gw, <float*>gb, sum_g, sum_g + c, sum_g + 2 * c,
                      <float*>a, <float*>a + c, <float*>a + 2 * c)
    else:
        with nogil:
            _backward(<const double*>gp, <const double*>xp, <double*>gi, n, c, s,
                      <const double*>sm, <const double*>wp, <const double*>si, training,
                      need_sums, <double*>gw, <double*>gb, sum_g, sum_g + c,
                      sum_g + 2 * c, <double*>a, <double*>a + c, <double*>a + 2 * c)
