/* Row helpers of the conv kernels (kernels/cython/_conv.pyx): the pointers are declared
 * restrict (a patch row and an image row never overlap), so gcc vectorises these short
 * loops without the runtime overlap checks it adds to the same loops in Cython. */
#ifndef FASTNN_CONV_ROWS_H
#define FASTNN_CONV_ROWS_H
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

static inline void fnn_add_row_f(float *restrict dst, const float *restrict src, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) dst[i] += src[i];
}

static inline void fnn_add_row_d(double *restrict dst, const double *restrict src, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) dst[i] += src[i];
}

/* `take ? a : b` compiled as a cmov, not a branch: a condition that is true half the
 * time at random (which cell of a window wins) mispredicts as a branch, and gcc's
 * if-conversion keeps a ternary branch-free only when told the odds are even (older
 * compilers: the same select as bit masks, 1.3-1.5x slower). */
#ifndef __has_builtin
#define __has_builtin(x) 0
#endif
#if __has_builtin(__builtin_expect_with_probability)
#define FNN_UNPREDICTABLE_SELECT(take, a, b) \
    (__builtin_expect_with_probability((take), 1, 0.5) ? (a) : (b))
#else
#define FNN_UNPREDICTABLE_SELECT(take, a, b) ((b) ^ (((b) ^ (a)) & -(int64_t)(take)))
#endif

/* (max, index) of a window of cells a, b of plane (in window order), PyTorch's rule:
 * ceil mode's 2x2 windows past an odd H or W, 2 cells inside the plane. */
#define FNN_MAX_PAIR(T, NAME)                                                             \
static inline void NAME(const T *restrict plane, int64_t a, int64_t b, T *restrict y,    \
                        int64_t *restrict idx) {                                          \
    T va = plane[a], vb = plane[b];                                                       \
    T best = vb > va ? vb : va;                                                           \
    int64_t at = vb > va ? b : a;                                                         \
    if (vb != vb) {                                                                       \
        best = vb;                                                                        \
        at = b;                                                                           \
    } else if (va != va) {                                                                \
        best = va;                                                                        \
        at = a;                                                                           \
    }                                                                                     \
    *y = best;                                                                            \
    *idx = at;                                                                            \
}
FNN_MAX_PAIR(float, fnn_max_pair_f)
FNN_MAX_PAIR(double, fnn_max_pair_d)

/* Ceil mode's 2x2 windows past an odd H or W of a plane (FNN_MAX_POOL_2X2_PLANE's, hf x
 * wf windows inside it, ho x wo in all): the last column's (FNN_MAX_PAIR), the last
 * row's and the corner's 1 cell. Out of line: the plane's loop kept as it was. */
#define FNN_MAX_POOL_2X2_EDGES(T, NAME, PAIR)                                             \
static __attribute__((noinline)) void NAME(const T *restrict plane, ptrdiff_t w_in,       \
                                           T *restrict y, int64_t *restrict idx,          \
                                           ptrdiff_t hf, ptrdiff_t wf, ptrdiff_t ho,      \
                                           ptrdiff_t wo) {                                \
    for (ptrdiff_t oh = 0; wo > wf && oh < hf; oh++)                                      \
        PAIR(plane, 2 * (oh * w_in + wf), 2 * (oh * w_in + wf) + w_in, y + oh * wo + wf,  \
             idx + oh * wo + wf);                                                         \
    if (ho > hf) {                                                                        \
        int64_t top = 2 * hf * w_in;                                                      \
        for (ptrdiff_t ow = 0; ow < wf; ow++)                                             \
            PAIR(plane, top + 2 * ow, top + 2 * ow + 1, y + hf * wo + ow,                 \
                 idx + hf * wo + ow);                                                     \
        if (wo > wf) {                                                                    \
            y[hf * wo + wf] = plane[top + 2 * wf];                                        \
            idx[hf * wo + wf] = top + 2 * wf;                                             \
        }                                                                                 \
    }                                                                                     \
}
FNN_MAX_POOL_2X2_EDGES(float, fnn_max_pool_2x2_edges_f, fnn_max_pair_f)
FNN_MAX_POOL_2X2_EDGES(double, fnn_max_pool_2x2_edges_d, fnn_max_pair_d)

/* The windows inside one plane of a 2x2, stride-2 max pool (_conv.pyx
 * _max_pool_planes, through FNN_MAX_POOL_2X2_PLANE): plane (H, W) with W = w_in; y and
 * idx (ho, wo, output rows stride long) get the maxima and their flat indices. Each
 * window is a tree of maxima (upper pair, lower pair, then the two), each
 * a select on one compare (maxss), which picks what the window-order scan does (the
 * first maximum), then the window's last NaN if it holds one: numba's _max_pool_2x2.
 * The indices are arithmetic on the compares (an index plus 0 or 1 times a distance): as
 * ternaries on the compares the maxima's, gcc made one branch of both selects, which the
 * random winners mispredict. 1 thread, float32 normal noise: 128x32x28x28 4.2 -> 2.5 ms,
 * 128x64x14x14 3.4 -> 1.3 ms (the earlier tree selected indices and read the winners'
 * values back from the plane). */
#define FNN_MAX_POOL_2X2_FULL(T, NAME)                                                    \
static inline void NAME(const T *restrict plane, ptrdiff_t w_in, T *restrict y,         \
                        int64_t *restrict idx, ptrdiff_t ho, ptrdiff_t wo,                \
                        ptrdiff_t stride) {                                               \
    for (ptrdiff_t oh = 0; oh < ho; oh++) {                                               \
        for (ptrdiff_t ow = 0; ow < wo; ow++) {                                           \
            int64_t a = 2 * (oh * w_in + ow), b = a + w_in;                               \
            T va = plane[a], vb = plane[a + 1], vc = plane[b], vd = plane[b + 1];         \
            T vu = vb > va ? vb : va, vl = vd > vc ? vd : vc;                             \
            int64_t upper = a + (vb > va), lower = b + (vd > vc);                         \
            T best = vl > vu ? vl : vu;                                                   \
            int64_t at = upper + (lower - upper) * (vl > vu), nan_at = -1;                \
            nan_at = va != va ? a : nan_at;                                               \
            nan_at = vb != vb ? a + 1 : nan_at;                                           \
            nan_at = vc != vc ? b : nan_at;                                               \
            nan_at = vd != vd ? b + 1 : nan_at;                                           \
            if (__builtin_expect(nan_at >= 0, 0)) {                                       \
                best = plane[nan_at];                                                     \
                at = nan_at;                                                              \
            }                                                                             \
            y[oh * stride + ow] = best;                                                   \
            idx[oh * stride + ow] = at;                                                   \
        }                                                                                 \
    }                                                                                     \
}
FNN_MAX_POOL_2X2_FULL(float, fnn_max_pool_2x2_full_f)
FNN_MAX_POOL_2X2_FULL(double, fnn_max_pool_2x2_full_d)

/* The plane (FNN_MAX_POOL_2X2_FULL's windows inside it, hf x wf, output rows wo long),
 * ceil mode's windows past an odd H or W apart: without them the full windows' loop
 * runs with its row length as the output's, as before them (it ran 7-10% slower on
 * hf x wf bounds in rows of wo). */
#define FNN_MAX_POOL_2X2_PLANE(T, NAME, FULL, EDGES)                                      \
static inline void NAME(const T *restrict plane, ptrdiff_t h_in, ptrdiff_t w_in,          \
                        T *restrict y, int64_t *restrict idx, ptrdiff_t ho, ptrdiff_t wo) { \
    ptrdiff_t hf = ho < h_in / 2 ? ho : h_in / 2, wf = wo < w_in / 2 ? wo : w_in / 2;     \
    if (__builtin_expect(ho > hf || wo > wf, 0)) {                                        \
        FULL(plane, w_in, y, idx, hf, wf, wo);                                            \
        EDGES(plane, w_in, y, idx, hf, wf, ho, wo);                                       \
    } else {                                                                              \
        FULL(plane, w_in, y, idx, ho, wo, wo);                                            \
    }                                                                                     \
}
FNN_MAX_POOL_2X2_PLANE(float, fnn_max_pool_2x2_plane_f, fnn_max_pool_2x2_full_f,
                       fnn_max_pool_2x2_edges_f)
FNN_MAX_POOL_2X2_PLANE(double, fnn_max_pool_2x2_plane_d, fnn_max_pool_2x2_full_d,
                       fnn_max_pool_2x2_edges_d)

/* Taps [*lo, *hi) of a window starting at cell `start` (cells start + i d, i < k) that
 * fall inside [0, size). */
static inline void fnn_window_taps(ptrdiff_t start, ptrdiff_t k, ptrdiff_t d, ptrdiff_t size,
                                   ptrdiff_t *lo, ptrdiff_t *hi) {
    ptrdiff_t a, b;
    if (d == 1) {   /* (no divisions: most pooling layers) */
        a = start < 0 ? -start : 0;
        b = size - start < k ? size - start : k;
    } else {
        a = start < 0 ? (d - 1 - start) / d : 0;
        b = start < size ? ((size - 1 - start) / d + 1 < k ? (size - 1 - start) / d + 1 : k) : 0;
    }
    *lo = a;
    *hi = b > a ? b : a;
}

/* One plane of a max pool of any window (_conv.pyx _max_pool_planes): plane (h_in, w_in);
 * y and idx (ho, wo) get each window's maximum and its flat index. Each output scans its
 * window's taps in order for the first maximum (a select on one compare: maxss) and,
 * apart, for the last NaN, which wins if there is one (PyTorch's rule); the index
 * starts at the window's first cell inside the input (PyTorch's, for a window of
 * -inf). The same design as numba's _max_pool_fwd: on one condition, "greater or a
 * NaN", gcc compiled the selects as branches, which the random winners of real data
 * mispredict. */
#define FNN_MAX_POOL_PLANE(T, NAME)                                                       \
static inline void NAME(const T *restrict plane, ptrdiff_t h_in, ptrdiff_t w_in,          \
                        ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,            \
                        ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw,            \
                        T *restrict y, int64_t *restrict idx, ptrdiff_t ho, ptrdiff_t wo) { \
    for (ptrdiff_t oh = 0; oh < ho; oh++) {                                               \
        ptrdiff_t h0 = oh * sh - ph, ia, ib;                                              \
        fnn_window_taps(h0, kh, dh, h_in, &ia, &ib);                                      \
        for (ptrdiff_t ow = 0; ow < wo; ow++) {                                           \
            ptrdiff_t w0 = ow * sw - pw, ja, jb;                                          \
            fnn_window_taps(w0, kw, dw, w_in, &ja, &jb);                                  \
            T best = -(T)INFINITY;                                                        \
            int64_t arg = (h0 + ia * dh) * w_in + w0 + ja * dw, nan_at = -1;              \
            for (ptrdiff_t i = ia; i < ib; i++) {                                         \
                int64_t row = (h0 + i * dh) * w_in + w0;                                  \
                for (ptrdiff_t j = ja; j < jb; j++) {                                     \
                    int64_t cell = row + j * dw;                                          \
                    T v = plane[cell];                                                    \
                    int take = v > best;                                                  \
                    best = v > best ? v : best;                                           \
                    arg = FNN_UNPREDICTABLE_SELECT(take, cell, arg);                      \
                    nan_at = __builtin_expect(v != v, 0) ? cell : nan_at;                 \
                }                                                                         \
            }                                                                             \
            if (nan_at >= 0) {                                                            \
                best = plane[nan_at];                                                     \
                arg = nan_at;                                                             \
            }                                                                             \
            y[oh * wo + ow] = best;                                                       \
            idx[oh * wo + ow] = arg;                                                      \
        }                                                                                 \
    }                                                                                     \
}
FNN_MAX_POOL_PLANE(float, fnn_max_pool_plane_f)
FNN_MAX_POOL_PLANE(double, fnn_max_pool_plane_d)

/* Average pooling's window sums (_conv.pyx _avg_pool_fwd, _avg_pool_tiles_fwd): each
 * window's cells added one by one from 0 in row-major order, PyTorch's order and the
 * reference's and numba's, so that a float32 window near the max overflows to the same
 * inf (or NaN) as theirs. The build's -fassociative-math let gcc split such sums into
 * vector partial sums (another order: other infs, NaN for +-inf halves), so these
 * functions are compiled without it (gcc's optimize attribute, clang's pragma); the
 * tiles' row still vectorises across its windows, each one's sum in order. */
#if defined(__GNUC__) && !defined(__clang__)
#define FNN_IN_ORDER __attribute__((optimize("no-associative-math")))
#define FNN_IN_ORDER_SIGNED \
    __attribute__((optimize("no-associative-math", "signed-zeros")))
#else
#define FNN_IN_ORDER
#define FNN_IN_ORDER_SIGNED
#endif
#if defined(__clang__)
#define FNN_IN_ORDER_BODY _Pragma("clang fp reassociate(off)")
#else
#define FNN_IN_ORDER_BODY
#endif

/* The sum of plane's rows [ha, hb) x columns [wa, wb) (row length w_in). */
#define FNN_WINDOW_SUM(T, NAME)                                                           \
static FNN_IN_ORDER T NAME(const T *plane, ptrdiff_t w_in, ptrdiff_t ha, ptrdiff_t hb,    \
                           ptrdiff_t wa, ptrdiff_t wb) {                                  \
    FNN_IN_ORDER_BODY                                                                     \
    T acc = 0;                                                                            \
    for (ptrdiff_t hh = ha; hh < hb; hh++)                                                \
        for (ptrdiff_t ww = wa; ww < wb; ww++)                                            \
            acc = acc + plane[hh * w_in + ww];                                            \
    return acc;                                                                           \
}
FNN_WINDOW_SUM(float, fnn_window_sum_f)
FNN_WINDOW_SUM(double, fnn_window_sum_d)

/* One output row of windows that tile the input: rows, the kh input rows (length w_in)
 * of the windows; out[ow] = the sum of window ow (kh x kw from column ow * kw) / d. */
#define FNN_AVG_TILES_ROW(T, NAME)                                                        \
static FNN_IN_ORDER void NAME(const T *restrict rows, ptrdiff_t w_in, ptrdiff_t kh,       \
                              ptrdiff_t kw, ptrdiff_t wo, T d, T *restrict out) {         \
    FNN_IN_ORDER_BODY                                                                     \
    for (ptrdiff_t ow = 0; ow < wo; ow++) out[ow] = 0;                                    \
    for (ptrdiff_t i = 0; i < kh; i++)                                                    \
        for (ptrdiff_t j = 0; j < kw; j++)                                                \
            for (ptrdiff_t ow = 0; ow < wo; ow++)                                         \
                out[ow] = out[ow] + rows[i * w_in + ow * kw + j];                         \
    for (ptrdiff_t ow = 0; ow < wo; ow++) out[ow] = out[ow] / d;                          \
}
FNN_AVG_TILES_ROW(float, fnn_avg_tiles_row_f)
FNN_AVG_TILES_ROW(double, fnn_avg_tiles_row_d)

/* Global average pooling: out[p] = the sum of plane p's hw cells (planes of hw cells one
 * after another, p < planes) / d. Each plane's cells are added in order from 0 (as
 * FNN_WINDOW_SUM's) but FNN_PLANE_LANES planes at a time, one accumulator each: a single
 * in-order chain is bound by the add's latency (1 thread, 64x64x8x8 float32: 0.12 ->
 * 0.18-0.31 ms), independent chains keep the adds' throughput (0.054 ms). */
#define FNN_PLANE_LANES 8
#define FNN_AVG_PLANES(T, NAME)                                                           \
static FNN_IN_ORDER void NAME(const T *restrict x, ptrdiff_t planes, ptrdiff_t hw, T d,   \
                              T *restrict out) {                                          \
    FNN_IN_ORDER_BODY                                                                     \
    ptrdiff_t p = 0;                                                                      \
    for (; p + FNN_PLANE_LANES <= planes; p += FNN_PLANE_LANES) {                         \
        T acc[FNN_PLANE_LANES] = {0};                                                     \
        const T *base = x + p * hw;                                                       \
        for (ptrdiff_t q = 0; q < hw; q++)                                                \
            for (int l = 0; l < FNN_PLANE_LANES; l++)                                     \
                acc[l] = acc[l] + base[l * hw + q];                                       \
        for (int l = 0; l < FNN_PLANE_LANES; l++) out[p + l] = acc[l] / d;                \
    }                                                                                     \
    for (; p < planes; p++) {                                                             \
        T acc = 0;                                                                        \
        for (ptrdiff_t q = 0; q < hw; q++) acc = acc + x[p * hw + q];                     \
        out[p] = acc / d;                                                                 \
    }                                                                                     \
}
FNN_AVG_PLANES(float, fnn_avg_planes_f)
FNN_AVG_PLANES(double, fnn_avg_planes_d)


/* x with a zero's sign cleared (-0 -> +0, every other value's bits kept; UT: the
 * unsigned integer of x's width): the average pools' gradient shares, which PyTorch (and
 * the reference) add into a zeroed gradient, 0 + -0 = +0 (_conv.pyx
 * _avg_pool_tiles_bwd, _avg_pool_runs_bwd), and under clang the window sums from 0
 * (FNN_ZERO_SIGN). Done on the bits: under -fno-signed-zeros
 * gcc folds x + 0 to x. A macro, for the FNN_IN_ORDER functions too, into which gcc
 * does not inline a function of other optimize options. */
#define FNN_UNSIGNED_ZERO(UT, x) (__extension__ ({                                        \
    __typeof__(x) v_ = (x);                                                               \
    UT u_;                                                                                \
    memcpy(&u_, &v_, sizeof u_);                                                          \
    u_ = (u_ << 1) ? u_ : 0;                                                              \
    memcpy(&v_, &u_, sizeof u_);                                                          \
    v_; }))

static inline float fnn_unsigned_zero_f(float x) {
    return FNN_UNSIGNED_ZERO(uint32_t, x);
}

static inline double fnn_unsigned_zero_d(double x) {
    return FNN_UNSIGNED_ZERO(uint64_t, x);
}

/* A sum from 0 (or share) in a function compiled with signed zeros (FNN_IN_ORDER_SIGNED):
 * x itself under gcc, whose attribute keeps 0 + -0 = +0; the bits' sign cleared
 * elsewhere (clang has no such attribute). */
#if defined(__GNUC__) && !defined(__clang__)
#define FNN_ZERO_SIGN(UT, x) (x)
#else
#define FNN_ZERO_SIGN(UT, x) FNN_UNSIGNED_ZERO(UT, x)
#endif

/* One output row of 2x2 windows of stride 2 (_conv.pyx _avg_pool_2x2_fwd): top, the
 * windows' upper input row (the lower one w_in further); out[ow] = the sum of window
 * ow's 4 cells in row-major order from 0 (FNN_WINDOW_SUM's order) / d, for the wf
 * windows inside the input. One loop across the row: gcc vectorises it across the
 * windows (stride-2 loads de-interleaved), each window's sum still one chain in order.
 * Ceil mode's windows past an odd H or W: a last window (wo > wf) of the last column's
 * 2 cells, divided by d2; the last output row (edge_row: top is the last input row)
 * of 2-cell windows / d2 and its corner's 1 / d1. Compiled with signed zeros
 * (FNN_IN_ORDER_SIGNED, FNN_ZERO_SIGN): a window of -0s averages to +0, as PyTorch's sum
 * from 0 (the build's -fno-signed-zeros folded 0 + x to x: -0). The add from 0 that
 * this keeps: 1 thread, float32, interleaved, 16x32x28x28 0.0713 -> 0.0725 ms,
 * 128x32x28x28 0.469 -> 0.477 (an fma by an exact 1 / d with +0 in place of the add
 * and the division measured slower here, 0.0766 and 0.480). */
#define FNN_AVG_2X2_ROW(T, UT, NAME)                                                      \
static FNN_IN_ORDER_SIGNED void NAME(const T *restrict top, ptrdiff_t w_in, ptrdiff_t wf, \
                              ptrdiff_t wo, int edge_row, T d, T d2, T d1,                \
                              T *restrict out) {                                          \
    FNN_IN_ORDER_BODY                                                                     \
    const T *restrict bottom = top + w_in;                                                \
    if (edge_row) {                                                                       \
        for (ptrdiff_t ow = 0; ow < wf; ow++) {                                           \
            T acc = 0;                                                                    \
            acc = acc + top[2 * ow];                                                      \
            acc = acc + top[2 * ow + 1];                                                  \
            out[ow] = FNN_ZERO_SIGN(UT, acc) / d2;                                        \
        }                                                                                 \
        if (wo > wf) {                                                                    \
            T acc = 0;                                                                    \
            acc = acc + top[2 * wf];                                                      \
            out[wf] = FNN_ZERO_SIGN(UT, acc) / d1;                                        \
        }                                                                                 \
        return;                                                                           \
    }                                                                                     \
    if (wo > wf) {                                                                        \
        T acc = 0;                                                                        \
        acc = acc + top[2 * wf];                                                          \
        acc = acc + bottom[2 * wf];                                                       \
        out[wf] = FNN_ZERO_SIGN(UT, acc) / d2;                                            \
    }                                                                                     \
    for (ptrdiff_t ow = 0; ow < wf; ow++) {                                               \
        T acc = 0;                                                                        \
        acc = acc + top[2 * ow];                                                          \
        acc = acc + top[2 * ow + 1];                                                      \
        acc = acc + bottom[2 * ow];                                                       \
        acc = acc + bottom[2 * ow + 1];                                                   \
        out[ow] = FNN_ZERO_SIGN(UT, acc) / d;                                             \
    }                                                                                     \
}
FNN_AVG_2X2_ROW(float, uint32_t, fnn_avg_2x2_row_f)
FNN_AVG_2X2_ROW(double, uint64_t, fnn_avg_2x2_row_d)


/* The gradient of one output row of 2x2 windows of stride 2 (_conv.pyx
 * _avg_pool_2x2_bwd): g, the row's output gradient; top, the upper input row of its
 * windows (the lower one w_in further), both rows' every cell written: window ow's 4
 * cells get g[ow] / d (g[ow] * inv, the same bits, where inv > 0: window_shapes.py
 * exact_reciprocal) for the wf windows inside the input, the columns no window covers
 * (an odd width's last) 0. */
#define FNN_AVG_2X2_BWD_FULL(T, NAME)                                                     \
static inline void NAME(const T *restrict g, ptrdiff_t w_in, ptrdiff_t wo, T d, T inv,    \
                        T *restrict top) {                                                \
    T *restrict bottom = top + w_in;                                                      \
    for (ptrdiff_t ow = 0; ow < wo; ow++) {                                               \
        T share = inv > 0 ? g[ow] * inv : g[ow] / d;                                      \
        top[2 * ow] = share;                                                              \
        top[2 * ow + 1] = share;                                                          \
        bottom[2 * ow] = share;                                                           \
        bottom[2 * ow + 1] = share;                                                       \
    }                                                                                     \
    for (ptrdiff_t q = 2 * wo; q < w_in; q++) {                                           \
        top[q] = 0;                                                                       \
        bottom[q] = 0;                                                                    \
    }                                                                                     \
}
FNN_AVG_2X2_BWD_FULL(float, fnn_avg_2x2_bwd_full_f)
FNN_AVG_2X2_BWD_FULL(double, fnn_avg_2x2_bwd_full_d)

/* The same, with ceil mode's windows past an odd H or W (wo > wf windows, or edge_row:
 * top the last input row, no lower one), as FNN_AVG_2X2_ROW's: their cells get g[ow] /
 * d2, the corner's g[wf] / d1 (set after the full windows' row, whose zeros they
 * replace). */
#define FNN_AVG_2X2_BWD_ROW(T, NAME, FULL)                                                \
static inline void NAME(const T *restrict g, ptrdiff_t w_in, ptrdiff_t wf, ptrdiff_t wo,  \
                        int edge_row, T d, T inv, T d2, T d1, T *restrict top) {          \
    if (!edge_row) {                                                                      \
        FULL(g, w_in, wf, d, inv, top);                                                   \
        if (wo > wf) {                                                                    \
            T share = g[wf] / d2;                                                         \
            top[2 * wf] = share;                                                          \
            top[2 * wf + w_in] = share;                                                   \
        }                                                                                 \
        return;                                                                           \
    }                                                                                     \
    for (ptrdiff_t ow = 0; ow < wf; ow++) {                                               \
        T share = g[ow] / d2;                                                             \
        top[2 * ow] = share;                                                              \
        top[2 * ow + 1] = share;                                                          \
    }                                                                                     \
    if (wo > wf)                                                                          \
        top[2 * wf] = g[wf] / d1;                                                         \
    for (ptrdiff_t q = 2 * wo < w_in ? 2 * wo : w_in; q < w_in; q++)                      \
        top[q] = 0;                                                                       \
}
FNN_AVG_2X2_BWD_ROW(float, fnn_avg_2x2_bwd_row_f, fnn_avg_2x2_bwd_full_f)
FNN_AVG_2X2_BWD_ROW(double, fnn_avg_2x2_bwd_row_d, fnn_avg_2x2_bwd_full_d)

/* A 3x3, stride-2 max pool (_conv.pyx _max_pool_3x3) of planes p0 .. p1 - 1 of x (h_in
 * x w_in each), padding ph, pw (0 or 1): y and idx (ho x wo a plane) get each window's
 * maximum and its flat index (numba's _max_pool_3x3). Each plane is split into the 4
 * stride phases of the padded plane (even/odd rows x even/odd columns, hq x wq each,
 * hq = ho + 1, wq = wo + 1, inside a border of -inf: the padding, and what a ceil-mode
 * window reads past the edge), where tap (i, j) of every window lies at one offset from
 * the window's lane q = oh wq + ow (a column of junk lanes, ow = wo, between rows). One
 * loop over the plane's lanes takes each window's 9 taps in order, a select on "greater
 * or a NaN" each (PyTorch's rule: the first maximum, the last NaN over it), vectorised
 * across the windows, into best and code (scratch, ho wq each: the winner, its offset
 * from the window's first cell); the outputs are copied from there. A -inf cell never
 * wins, so the border changes no result; a window that nothing won (all its cells
 * -inf) gets its first cell inside the input, as fnn_max_pool_plane_*'s. pad: 4 hq wq +
 * wq + 1 values (the junk lanes' last taps read past the phases). Stride s = 1 takes
 * the same loop on the -inf-bordered plane itself (fnn_pad_plane_*: hq = ho + 2 rows
 * of wq = wo + 2, two columns of junk lanes between rows; pad: hq wq + wq + 1 values),
 * tap (i, j) at i wq + j from the lane. */
/* The 3x3 stride-2 pools' layout: rows x cols cells of plane (row length w_in) copied
 * into the 4 stride-2 phases of the padded plane (padding ph, pw), hq x wq each at
 * pad + (2 a + b) hq wq for phase (a, b) (even/odd rows x even/odd columns); the rest of
 * pad (its border) is left as it is. */
#define FNN_SPLIT_PHASES(T, NAME)                                                         \
static inline void NAME(const T *restrict plane, ptrdiff_t w_in, ptrdiff_t rows,          \
                        ptrdiff_t cols, ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t hq,         \
                        ptrdiff_t wq, T *restrict pad) {                                  \
    ptrdiff_t size = hq * wq;                                                             \
    for (ptrdiff_t r = 0; r < rows; r++) {                                                \
        /* input column 2 k goes to column phase pw at k, 2 k + 1 to 1 - pw at k + pw */  \
        ptrdiff_t rr = r + ph, row = ((rr & 1) * 2 * hq + (rr >> 1)) * wq;                \
        T *restrict even = pad + row + pw * size;                                         \
        T *restrict odd = pad + row + (1 - pw) * size + pw;                               \
        const T *restrict src = plane + r * w_in;                                         \
        for (ptrdiff_t c = 0; c < cols >> 1; c++) {                                       \
            even[c] = src[2 * c];                                                         \
            odd[c] = src[2 * c + 1];                                                      \
        }                                                                                 \
        if (cols & 1)                                                                     \
            even[cols >> 1] = src[cols - 1];                                              \
    }                                                                                     \
}
FNN_SPLIT_PHASES(float, fnn_split_phases_f)
FNN_SPLIT_PHASES(double, fnn_split_phases_d)

/* The 3x3 stride-1 max pool's layout: the h_in x w_in plane copied into pad, rows wq
 * long, its cell (r, c) at (r + ph) wq + c + pw; the rest of pad (its border) is left
 * as it is. */
#define FNN_PAD_PLANE(T, NAME)                                                            \
static inline void NAME(const T *restrict plane, ptrdiff_t h_in, ptrdiff_t w_in,          \
                        ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t wq, T *restrict pad) {      \
    for (ptrdiff_t r = 0; r < h_in; r++)                                                  \
        memcpy(pad + (r + ph) * wq + pw, plane + r * w_in, w_in * sizeof(T));             \
}
FNN_PAD_PLANE(float, fnn_pad_plane_f)
FNN_PAD_PLANE(double, fnn_pad_plane_d)

/* dv[oh wq + ow] = the divisor of 3x3 stride-2 window (oh, ow) (_conv.pyx _avg_count's
 * rule: divisor when > 0, else its cells inside the padded input (include) or inside
 * the input), 1 in the junk lanes (ow = wo); ho x wq lanes, wq = wo + 1. */
#define FNN_LANE_DIVISORS(T, NAME)                                                        \
static inline void NAME(ptrdiff_t h_in, ptrdiff_t w_in, ptrdiff_t ph, ptrdiff_t pw,       \
                        int include, ptrdiff_t divisor, ptrdiff_t ho, ptrdiff_t wo,       \
                        T *restrict dv) {                                                 \
    for (ptrdiff_t oh = 0; oh < ho; oh++) {                                               \
        ptrdiff_t h0 = 2 * oh - ph, ha = h0 > 0 ? h0 : 0;                                 \
        ptrdiff_t hb = h0 + 3 < h_in ? h0 + 3 : h_in;                                     \
        ptrdiff_t hp = (h0 + 3 < h_in + ph ? h0 + 3 : h_in + ph) - h0;                    \
        for (ptrdiff_t ow = 0; ow <= wo; ow++) {                                          \
            ptrdiff_t w0 = 2 * ow - pw, wa = w0 > 0 ? w0 : 0;                             \
            ptrdiff_t wb = w0 + 3 < w_in ? w0 + 3 : w_in;                                 \
            ptrdiff_t wp = (w0 + 3 < w_in + pw ? w0 + 3 : w_in + pw) - w0;                \
            ptrdiff_t d = divisor > 0 ? divisor : include ? hp * wp : (hb - ha) * (wb - wa); \
            dv[oh * (wo + 1) + ow] = ow == wo ? (T)1 : (T)d;                              \
        }                                                                                 \
    }                                                                                     \
}
FNN_LANE_DIVISORS(float, fnn_lane_divisors_f)
FNN_LANE_DIVISORS(double, fnn_lane_divisors_d)

/* A 3x3, stride-2 average pool (_conv.pyx _avg_pool_3x3s2_fwd) of planes p0 .. p1 - 1
 * of x (h_in x w_in each), padding ph, pw (0 or 1): fnn_max_pool_3x3_*'s stride-2 layout
 * inside a border of zeros, one loop over a plane's lanes sums each window's 9 taps in
 * row-major order from 0 (FNN_WINDOW_SUM's order) and divides by the lane's divisor,
 * vectorised across the windows. The padded cells add zeros FNN_WINDOW_SUM skips: a sum
 * from +0 is never -0 and v + 0 is v (inf, NaN too), so the sums are the same, bit for
 * bit. A window of -0s averages to -0 here (-fno-signed-zeros folds the sum's 0 + x),
 * where PyTorch's and the other backends' give +0: signed zeros here (FNN_IN_ORDER_SIGNED),
 * or the sum's sign cleared on the bits, cost 6% (1 thread, float32, interleaved,
 * 16x32x28x28 0.145 -> 0.153 ms, 128x32x28x28 1.04 -> 1.10-1.12), the division moved
 * into the copy out 23%. pad: 4 hq wq + wq + 1 values; mean, dv: ho wq each. */
#define FNN_AVG_POOL_3X3S2(T, NAME, SPLIT, DIVISORS)                                      \
static FNN_IN_ORDER void NAME(const T *restrict x, ptrdiff_t p0, ptrdiff_t p1,            \
                              ptrdiff_t h_in, ptrdiff_t w_in, ptrdiff_t ph, ptrdiff_t pw, \
                              int include, ptrdiff_t divisor, T *restrict pad,            \
                              T *restrict mean, T *restrict dv, T *restrict y,            \
                              ptrdiff_t ho, ptrdiff_t wo) {                               \
    FNN_IN_ORDER_BODY                                                                     \
    ptrdiff_t hq = ho + 1, wq = wo + 1, size = hq * wq, lanes = ho * wq;                  \
    ptrdiff_t rows = h_in < 2 * hq - ph ? h_in : 2 * hq - ph;                             \
    ptrdiff_t cols = w_in < 2 * wq - pw ? w_in : 2 * wq - pw;                             \
    const T *restrict p00 = pad, *restrict p01 = pad + size;                              \
    const T *restrict p10 = pad + 2 * size, *restrict p11 = pad + 3 * size;               \
    for (ptrdiff_t q = 0; q < 4 * size + wq + 1; q++) pad[q] = 0;                         \
    DIVISORS(h_in, w_in, ph, pw, include, divisor, ho, wo, dv);                           \
    for (ptrdiff_t t = p0; t < p1; t++) {                                                 \
        SPLIT(x + t * h_in * w_in, w_in, rows, cols, ph, pw, hq, wq, pad);               \
        for (ptrdiff_t q = 0; q < lanes; q++) {                                           \
            T acc = 0;                                                                    \
            acc = acc + p00[q];                                                           \
            acc = acc + p01[q];                                                           \
            acc = acc + p00[q + 1];                                                       \
            acc = acc + p10[q];                                                           \
            acc = acc + p11[q];                                                           \
            acc = acc + p10[q + 1];                                                       \
            acc = acc + p00[q + wq];                                                      \
            acc = acc + p01[q + wq];                                                      \
            acc = acc + p00[q + wq + 1];                                                  \
            mean[q] = acc / dv[q];                                                        \
        }                                                                                 \
        T *restrict yp = y + t * ho * wo;                                                 \
        for (ptrdiff_t oh = 0; oh < ho; oh++)                                             \
            for (ptrdiff_t ow = 0; ow < wo; ow++)                                         \
                yp[oh * wo + ow] = mean[oh * wq + ow];                                    \
    }                                                                                     \
}
FNN_AVG_POOL_3X3S2(float, fnn_avg_pool_3x3s2_f, fnn_split_phases_f, fnn_lane_divisors_f)
FNN_AVG_POOL_3X3S2(double, fnn_avg_pool_3x3s2_d, fnn_split_phases_d, fnn_lane_divisors_d)

/* Its gradient (_conv.pyx _avg_pool_3x3s2_bwd) into planes p0 .. p1 - 1 of gi: each
 * window's share (g / its divisor) to lane q of share + wq + 1 (the lanes before, the
 * junk lanes and the row after zero); each cell of the padded plane's 4 stride phases
 * then gathers the shares of the windows over it in window order, as _avg_pool_bwd's
 * scatter adds them (phase (0, 0): up-left, up, left, own; (0, 1): up, own; (1, 0):
 * left, own; (1, 1): own), from 0, one loop a phase; the input's cells are copied out
 * (the rows and columns no window reaches zeroed). Zero shares change no sum. The
 * sums from 0 make a -0 share +0, as _avg_pool_bwd's (PyTorch's) 0 + -0: gcc compiles
 * this function with signed zeros (FNN_IN_ORDER_SIGNED; the build's -fno-signed-zeros
 * folded 0 + x to x, measured free: 1 thread, 32x64x16x16 and 16x32x28x28, float32),
 * elsewhere (clang) the shares' zeros are made +0 on the bits (FNN_ZERO_SIGN).
 * share: wq + 1 + hq wq values; pad: 4 hq wq; dv: ho wq. */
#define FNN_AVG_POOL_3X3S2_BWD(T, UT, NAME, DIVISORS)                                     \
static FNN_IN_ORDER_SIGNED void NAME(const T *restrict g, ptrdiff_t p0, ptrdiff_t p1,     \
                              ptrdiff_t h_in, ptrdiff_t w_in, ptrdiff_t ph, ptrdiff_t pw, \
                              int include, ptrdiff_t divisor, T *restrict share,          \
                              T *restrict pad, T *restrict dv, T *restrict gi,            \
                              ptrdiff_t ho, ptrdiff_t wo) {                               \
    FNN_IN_ORDER_BODY                                                                     \
    ptrdiff_t hq = ho + 1, wq = wo + 1, size = hq * wq, base = wq + 1;                    \
    ptrdiff_t rows = h_in < 2 * hq - ph ? h_in : 2 * hq - ph;                             \
    ptrdiff_t cols = w_in < 2 * wq - pw ? w_in : 2 * wq - pw;                             \
    T *restrict s = share + base;                                                         \
    for (ptrdiff_t q = 0; q < base + size; q++) share[q] = 0;                             \
    DIVISORS(h_in, w_in, ph, pw, include, divisor, ho, wo, dv);                           \
    for (ptrdiff_t t = p0; t < p1; t++) {                                                 \
        const T *restrict gp = g + t * ho * wo;                                           \
        for (ptrdiff_t oh = 0; oh < ho; oh++)                                             \
            for (ptrdiff_t ow = 0; ow < wo; ow++)                                         \
                s[oh * wq + ow] = FNN_ZERO_SIGN(UT, gp[oh * wo + ow] / dv[oh * wq + ow]);\
        for (ptrdiff_t m = 0; m < size; m++) {                                            \
            T acc = 0;                                                                    \
            acc = acc + s[m - wq - 1];                                                    \
            acc = acc + s[m - wq];                                                        \
            acc = acc + s[m - 1];                                                         \
            acc = acc + s[m];                                                             \
            pad[m] = acc;                                                                 \
        }                                                                                 \
        for (ptrdiff_t m = 0; m < size; m++) {                                            \
            T acc = 0;                                                                    \
            acc = acc + s[m - wq];                                                        \
            pad[size + m] = acc + s[m];                                                   \
        }                                                                                 \
        for (ptrdiff_t m = 0; m < size; m++) {                                            \
            T acc = 0;                                                                    \
            acc = acc + s[m - 1];                                                         \
            pad[2 * size + m] = acc + s[m];                                               \
        }                                                                                 \
        for (ptrdiff_t m = 0; m < size; m++) pad[3 * size + m] = (T)0 + s[m];             \
        T *restrict plane = gi + t * h_in * w_in;                                         \
        for (ptrdiff_t r = 0; r < rows; r++) {                                            \
            ptrdiff_t rr = r + ph, row = ((rr & 1) * 2 * hq + (rr >> 1)) * wq;            \
            const T *restrict even = pad + row + pw * size;                               \
            const T *restrict odd = pad + row + (1 - pw) * size + pw;                     \
            T *restrict dst = plane + r * w_in;                                           \
            for (ptrdiff_t c = 0; c < cols >> 1; c++) {                                   \
                dst[2 * c] = even[c];                                                     \
                dst[2 * c + 1] = odd[c];                                                  \
            }                                                                             \
            if (cols & 1)                                                                 \
                dst[cols - 1] = even[cols >> 1];                                          \
            for (ptrdiff_t c = cols; c < w_in; c++) dst[c] = 0;                           \
        }                                                                                 \
        for (ptrdiff_t q = rows * w_in; q < h_in * w_in; q++) plane[q] = 0;               \
    }                                                                                     \
}
FNN_AVG_POOL_3X3S2_BWD(float, uint32_t, fnn_avg_pool_3x3s2_bwd_f, fnn_lane_divisors_f)
FNN_AVG_POOL_3X3S2_BWD(double, uint64_t, fnn_avg_pool_3x3s2_bwd_d, fnn_lane_divisors_d)

#define FNN_TAKE(T, v, at)                                                                \
    do {                                                                                  \
        T v_ = (v);                                                                       \
        int take_ = (v_ > b) | (v_ != v_);                                                \
        b = take_ ? v_ : b;                                                               \
        k = take_ ? (at) : k;                                                             \
    } while (0)
#define FNN_MAX_POOL_3X3(T, NAME, SPLIT, PAD)                                             \
static inline void NAME(const T *restrict x, ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t h_in,  \
                        ptrdiff_t w_in, ptrdiff_t s, ptrdiff_t ph, ptrdiff_t pw,          \
                        T *restrict pad, T *restrict best, int32_t *restrict code,        \
                        T *restrict y, int64_t *restrict idx, ptrdiff_t ho, ptrdiff_t wo) { \
    ptrdiff_t hq = s == 2 ? ho + 1 : ho + 2, wq = s == 2 ? wo + 1 : wo + 2;               \
    ptrdiff_t size = hq * wq, lanes = ho * wq;                                            \
    ptrdiff_t rows = h_in < 2 * hq - ph ? h_in : 2 * hq - ph;                             \
    ptrdiff_t cols = w_in < 2 * wq - pw ? w_in : 2 * wq - pw;                             \
    int32_t o1 = (int32_t)w_in, o2 = 2 * (int32_t)w_in;                                   \
    /* tap (i, j) of lane q at t_ij[q]: the phases (stride 2), or the plane (stride 1) */ \
    const T *restrict t00 = pad, *restrict t01, *restrict t02 = pad + 1 + (s == 1);       \
    const T *restrict t10, *restrict t11, *restrict t12, *restrict t20 = pad + 2 * wq / s; \
    const T *restrict t21, *restrict t22 = t20 + 1 + (s == 1);                            \
    if (s == 2) {                                                                         \
        t01 = pad + size, t10 = pad + 2 * size, t11 = pad + 3 * size;                     \
        t12 = t10 + 1, t21 = t01 + wq;                                                    \
    } else {                                                                              \
        t01 = pad + 1, t10 = pad + wq, t11 = t10 + 1, t12 = t10 + 2, t21 = t20 + 1;       \
    }                                                                                     \
    for (ptrdiff_t q = 0; q < (s == 2 ? 4 : 1) * size + wq + 1; q++) pad[q] = -(T)INFINITY; \
    for (ptrdiff_t t = p0; t < p1; t++) {                                                 \
        if (s == 2)                                                                       \
            SPLIT(x + t * h_in * w_in, w_in, rows, cols, ph, pw, hq, wq, pad);           \
        else                                                                              \
            PAD(x + t * h_in * w_in, h_in, w_in, ph, pw, wq, pad);                        \
        for (ptrdiff_t q = 0; q < lanes; q++) {                                           \
            T b = -(T)INFINITY;                                                           \
            int32_t k = -1;                                                               \
            FNN_TAKE(T, t00[q], 0);                                                       \
            FNN_TAKE(T, t01[q], 1);                                                       \
            FNN_TAKE(T, t02[q], 2);                                                       \
            FNN_TAKE(T, t10[q], o1);                                                      \
            FNN_TAKE(T, t11[q], o1 + 1);                                                  \
            FNN_TAKE(T, t12[q], o1 + 2);                                                  \
            FNN_TAKE(T, t20[q], o2);                                                      \
            FNN_TAKE(T, t21[q], o2 + 1);                                                  \
            FNN_TAKE(T, t22[q], o2 + 2);                                                  \
            best[q] = b;                                                                  \
            code[q] = k;                                                                  \
        }                                                                                 \
        T *restrict yp = y + t * ho * wo;                                                 \
        int64_t *restrict ip = idx + t * ho * wo;                                         \
        for (ptrdiff_t oh = 0; oh < ho; oh++) {                                           \
            int64_t h0 = s * oh - ph;                                                     \
            for (ptrdiff_t ow = 0; ow < wo; ow++) {                                       \
                int64_t w0 = s * ow - pw;                                                 \
                int32_t k = code[oh * wq + ow];                                           \
                yp[oh * wo + ow] = best[oh * wq + ow];                                    \
                ip[oh * wo + ow] = k >= 0 ? h0 * w_in + w0 + k                            \
                    : (h0 > 0 ? h0 : 0) * w_in + (w0 > 0 ? w0 : 0);                       \
            }                                                                             \
        }                                                                                 \
    }                                                                                     \
}
FNN_MAX_POOL_3X3(float, fnn_max_pool_3x3_f, fnn_split_phases_f, fnn_pad_plane_f)
FNN_MAX_POOL_3X3(double, fnn_max_pool_3x3_d, fnn_split_phases_d, fnn_pad_plane_d)
#undef FNN_TAKE

#endif
