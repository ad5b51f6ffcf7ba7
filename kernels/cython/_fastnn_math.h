/* Small C helpers the Cython kernels inline: a vectorizable float exp, the OpenMP
 * thread count, and the counter-based hash behind dropout masks.
 *
 * Kept in C because Cython cannot express the float<->int bit cast that lets GCC
 * vectorize exp (glibc's expf is a scalar call, which made softmax 4x slower). */
#ifndef FASTNN_MATH_H
#define FASTNN_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
static inline int fnn_openmp_enabled(void) { return 1; }
static inline int fnn_max_threads(void) { return omp_get_max_threads(); }
static inline void fnn_set_num_threads(int n) { omp_set_num_threads(n); }
#else
static inline int fnn_openmp_enabled(void) { return 0; }
static inline int fnn_max_threads(void) { return 1; }
static inline void fnn_set_num_threads(int n) { (void)n; }
#endif

/* exp(x) for float, branch-free so loops calling it vectorize. Relative error below
 * 2 ulp on the whole range; NaN propagates (no comparison is true for NaN), exp of
 * anything below -87.3 is 0 and above 88.7 is inf. Cody-Waite range reduction
 * x = n ln2 + r, |r| <= ln2/2, then a degree-6 polynomial (Cephes expf). */
static inline float fnn_expf(float x) {
    const float hi = 88.72283f, lo = -87.33654f;
    float xc = x > hi ? hi : x;
    xc = xc < lo ? lo : xc;
    float n = rintf(xc * 1.44269504088896341f);
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = p * scale;
    y = x < lo ? 0.0f : y;
    return x > hi ? INFINITY : y;
}

/* tanh(x) for float, branch-free: (1 - e) / (1 + e) with e = exp(-2|x|), and an odd
 * Taylor polynomial for |x| < 0.125 where 1 - e would cancel. Below 1e-6 relative
 * error against tanh in double; NaN propagates. glibc's tanhf is a scalar call that
 * ran at 1 GB/s here. */
static inline float fnn_tanhf(float x) {
    float ax = fabsf(x);
    float e = fnn_expf(-2.0f * ax);
    float big = (1.0f - e) / (1.0f + e);
    float x2 = x * x;
    float small = ax * (1.0f + x2 * (-0.333333333f + x2 * (0.133333333f
                  + x2 * (-0.0539682540f + x2 * 0.0218694885f))));
    float t = ax < 0.125f ? small : big;
    return copysignf(t, x);
}

/* Phi(x), the standard normal CDF, for float, branch-free: Phi(-|x|) =
 * erfc(|x| / sqrt 2) / 2 from the Chebyshev fit of Numerical Recipes' erfcc
 * (fractional error below 1.2e-7 for every argument, so GELU keeps its relative
 * accuracy in the far negative tail where 1 + erf(x) would cancel). glibc's erff
 * is a scalar call that held GELU to 1 GB/s. */
static inline float fnn_phif(float x) {
    float z = fabsf(x) * 0.70710678118654752f;
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    float lower = 0.5f * t * fnn_expf(p - z * z);      /* Phi(-|x|) */
    return x < 0.0f ? lower : 1.0f - lower;
}

/* 32-bit finaliser of MurmurHash3: a bijection with full avalanche. */
static inline uint32_t fnn_fmix32(uint32_t h) {
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

/* splitmix64 of the seed: two 32-bit keys for fnn_dropout_bits. */
static inline uint64_t fnn_seed_key(uint64_t seed) {
    uint64_t z = seed + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* 24 random bits for element `index` under `key`: a pure function of (seed, index),
 * so the mask is the same whatever the thread count or block split. */
static inline uint32_t fnn_dropout_bits(uint64_t key, uint64_t index) {
    uint32_t h = fnn_fmix32((uint32_t)index ^ (uint32_t)key);
    h = fnn_fmix32(h ^ (uint32_t)(index >> 32) ^ (uint32_t)(key >> 32));
    return h >> 8;
}

#endif
