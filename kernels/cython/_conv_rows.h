/* Row helpers of the conv kernels (kernels/cython/_conv.pyx): the pointers are declared
 * restrict (a patch row and an image row never overlap), so gcc vectorises these short
 * loops without the runtime overlap checks it adds to the same loops in Cython. */
#ifndef FASTNN_CONV_ROWS_H
#define FASTNN_CONV_ROWS_H
#include <stddef.h>
#include <stdint.h>
#include <math.h>

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

/* One plane of a 2x2, stride-2 max pool (_conv.pyx _max_pool_planes): plane (H, W) with
 * W = w_in, every window inside it; y and idx (ho, wo) get the maxima and their flat
 * indices. Each window is a tree of maxima (upper pair, lower pair, then the two), each
 * a select on one compare (maxss), which picks what the window-order scan does (the
 * first maximum), then the window's last NaN if it holds one: numba's _max_pool_2x2.
 * The indices are arithmetic on the compares (an index plus 0 or 1 times a distance): as
 * ternaries on the compares the maxima's, gcc made one branch of both selects, which the
 * random winners mispredict. 1 thread, float32 normal noise: 128x32x28x28 4.2 -> 2.5 ms,
 * 128x64x14x14 3.4 -> 1.3 ms (the earlier tree selected indices and read the winners'
 * values back from the plane). */
#define FNN_MAX_POOL_2X2_PLANE(T, NAME)                                                   \
static inline void NAME(const T *restrict plane, ptrdiff_t w_in, T *restrict y,         \
                        int64_t *restrict idx, ptrdiff_t ho, ptrdiff_t wo) {              \
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
            y[oh * wo + ow] = best;                                                       \
            idx[oh * wo + ow] = at;                                                       \
        }                                                                                 \
    }                                                                                     \
}
FNN_MAX_POOL_2X2_PLANE(float, fnn_max_pool_2x2_plane_f)
FNN_MAX_POOL_2X2_PLANE(double, fnn_max_pool_2x2_plane_d)

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

#endif
