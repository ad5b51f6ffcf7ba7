/* Row helpers of the conv kernels (kernels/cython/_conv.pyx): the pointers are declared
 * restrict (a patch row and an image row never overlap), so gcc vectorises these short
 * loops without the runtime overlap checks it adds to the same loops in Cython. */
#ifndef FASTNN_CONV_ROWS_H
#define FASTNN_CONV_ROWS_H
#include <stddef.h>

static inline void fnn_add_row_f(float *restrict dst, const float *restrict src, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) dst[i] += src[i];
}

static inline void fnn_add_row_d(double *restrict dst, const double *restrict src, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) dst[i] += src[i];
}

#endif
