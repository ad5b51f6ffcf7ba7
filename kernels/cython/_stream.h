/* Non-temporal ("streaming") stores for outputs far larger than the caches.
 *
 * An ordinary store first reads the destination line into the cache (read for
 * ownership), so y = f(x) over arrays that live in memory moves 3n bytes for the 2n it
 * needs; a streaming store writes whole lines to memory without reading them, as glibc's
 * memcpy does above its non_temporal_threshold. The stored lines are not cached, which
 * only pays when the output is too large to be read back from a cache anyway, so the
 * kernels stream only above a size threshold.
 *
 * fnn_stream_f / fnn_stream_d copy n values from src (an L1-resident tile) to dst: the
 * head up to dst's first vector-aligned address and the tail with ordinary stores, the
 * rest with aligned streaming stores of the widest vector the build has. fnn_stream_fence
 * orders them before later stores (an sfence; the OpenMP barrier after the loop orders
 * them for the other threads). Without SSE2 (not x86-64) they are plain copies. */
#ifndef FASTNN_STREAM_H
#define FASTNN_STREAM_H

#include <stddef.h>
#include <stdint.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define FNN_STREAM_BYTES 64
#define FNN_STREAM_STORE_F(p, q) _mm512_stream_ps((p), _mm512_loadu_ps(q))
#define FNN_STREAM_STORE_D(p, q) _mm512_stream_pd((p), _mm512_loadu_pd(q))
#elif defined(__AVX__)
#include <immintrin.h>
#define FNN_STREAM_BYTES 32
#define FNN_STREAM_STORE_F(p, q) _mm256_stream_ps((p), _mm256_loadu_ps(q))
#define FNN_STREAM_STORE_D(p, q) _mm256_stream_pd((p), _mm256_loadu_pd(q))
#elif defined(__SSE2__)
#include <emmintrin.h>
#define FNN_STREAM_BYTES 16
#define FNN_STREAM_STORE_F(p, q) _mm_stream_ps((p), _mm_loadu_ps(q))
#define FNN_STREAM_STORE_D(p, q) _mm_stream_pd((p), _mm_loadu_pd(q))
#endif

static inline int fnn_can_stream(void) {
#ifdef FNN_STREAM_BYTES
    return 1;
#else
    return 0;
#endif
}

static inline void fnn_stream_f(float* dst, const float* src, ptrdiff_t n) {
    ptrdiff_t i = 0;
#ifdef FNN_STREAM_BYTES
    const ptrdiff_t step = FNN_STREAM_BYTES / sizeof(float);
    for (; i < n && ((uintptr_t)(dst + i) % FNN_STREAM_BYTES); i++)
        dst[i] = src[i];
    for (; i + step <= n; i += step)
        FNN_STREAM_STORE_F(dst + i, src + i);
#endif
    for (; i < n; i++)
        dst[i] = src[i];
}

static inline void fnn_stream_d(double* dst, const double* src, ptrdiff_t n) {
    ptrdiff_t i = 0;
#ifdef FNN_STREAM_BYTES
    const ptrdiff_t step = FNN_STREAM_BYTES / sizeof(double);
    for (; i < n && ((uintptr_t)(dst + i) % FNN_STREAM_BYTES); i++)
        dst[i] = src[i];
    for (; i + step <= n; i += step)
        FNN_STREAM_STORE_D(dst + i, src + i);
#endif
    for (; i < n; i++)
        dst[i] = src[i];
}

static inline void fnn_stream_fence(void) {
#ifdef FNN_STREAM_BYTES
    _mm_sfence();
#endif
}

#endif
