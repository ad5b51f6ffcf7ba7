/* Row helpers of the conv kernels (kernels/cython/_conv.pyx): the pointers are declared
 * restrict (a patch row and an image row never overlap), so gcc vectorises these short
 * loops without the runtime overlap checks it adds to the same loops in Cython. */
#ifndef FASTNN_CONV_ROWS_H
#define FASTNN_CONV_ROWS_H
#include <stddef.h>
#include <stdint.h>

static inline void fnn_add_row_f(float *restrict dst, const float *restrict src, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) dst[i] += src[i];
}

static inline void fnn_add_row_d(double *restrict dst, const double *restrict src, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) dst[i] += src[i];
}

/* One plane of a 2x2, stride-2 max pool (_conv.pyx _max_pool_2x2): plane (H, W) with
 * W = w_in, every window inside it; y and idx (ho, wo) get the maxima and their flat
 * indices. Each window is a tree of selects (upper pair, lower pair, then the two),
 * which picks what the window-order scan does: the first maximum, the last NaN. The selects are index arithmetic (an index plus 0 or 1 times a
 * distance) and read the winner's value back from the plane: gcc turned ternaries, even
 * on the indices, into branches, which the random winners mispredict (128x32x28x28, 2
 * threads: 4.5 ms against 2.4 for the general kernel; 0.86 ms now, numba's 0.88 ms;
 * 128x64x14x14 0.78 ms against numba's 0.48, not isolated further). */
#define FNN_MAX_POOL_2X2_PLANE(T, NAME)                                                   \
static inline void NAME(const T *plane, ptrdiff_t w_in, T *restrict y,                  \
                        int64_t *restrict idx, ptrdiff_t ho, ptrdiff_t wo) {              \
    for (ptrdiff_t oh = 0; oh < ho; oh++) {                                               \
        for (ptrdiff_t ow = 0; ow < wo; ow++) {                                           \
            int64_t a = 2 * (oh * w_in + ow), b = a + w_in;                               \
            T va = plane[a], vb = plane[a + 1], vc = plane[b], vd = plane[b + 1];         \
            int64_t upper = a + ((vb > va) | (vb != vb));                                 \
            int64_t lower = b + ((vd > vc) | (vd != vd));                                 \
            T vu = plane[upper], vl = plane[lower];                                       \
            int64_t best = upper + ((vl > vu) | (vl != vl)) * (lower - upper);            \
            y[oh * wo + ow] = plane[best];                                                \
            idx[oh * wo + ow] = best;                                                     \
        }                                                                                 \
    }                                                                                     \
}
FNN_MAX_POOL_2X2_PLANE(float, fnn_max_pool_2x2_plane_f)
FNN_MAX_POOL_2X2_PLANE(double, fnn_max_pool_2x2_plane_d)

#endif
