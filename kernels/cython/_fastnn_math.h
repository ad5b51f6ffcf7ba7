/* Small C helpers the Cython kernels inline: vectorizable exp/tanh/Phi/sin/cos, the OpenMP
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

/* sin and cos, branch-free so loops calling them vectorize (glibc's sinf/cosf are
 * scalar calls: the sine op ran at 1 GB/s). Valid for |x| <= FNN_TRIG_MAX_F (float)
 * and FNN_TRIG_MAX_D (double); callers send larger arguments, and inf, to libm
 * (see _activations.pyx). NaN propagates.
 *
 * Range reduction (Cody-Waite) with the constant split in parts, each step an
 * explicit fma: the modules are built with -fassociative-math, under which gcc folds
 * x - n*C1 - n*C2 into x - n*(C1+C2) and loses the split (measured: one fma left).
 * Without hardware FMA (FASTNN_NATIVE=0 builds) fma is a scalar libm call, so there
 * the range is empty and the kernels call libm's sin/cos.
 * float: k = rint(x/pi - h), h = 0 for sin and 1/2 for cos, r = x - (k+h) pi with pi
 * in three float parts (C1 = pi rounded; where r is small, x - k C1 is exact), so
 * |r| <= pi/2 and sin x = (-1)^k sin r, cos x = (-1)^(k+1) sin r: one odd degree-9
 * polynomial (minimax for relative error on [0, pi/2], fitted for this file: 6e-9)
 * and a sign, no select. Within 2 ulp of the correctly rounded result.
 * double: n = rint(x 2/pi), r = x - n pi/2 with pi/2 in four parts of 33 bits (the
 * split of fdlibm's __ieee754_rem_pio2), fdlibm's degree-13/14 sin and cos kernels,
 * picked by quadrant with arithmetic. Within 2 ulp. */
#if defined(__FMA__) || defined(FP_FAST_FMA)
#define FNN_HAVE_FMA 1
#else
#define FNN_HAVE_FMA 0
#endif

#if FNN_HAVE_FMA
#define FNN_TRIG_MAX_F 1048576.0f          /* 2^20 */
#define FNN_TRIG_MAX_D 131072.0            /* 2^17 */
#else                                      /* every argument but 0 and NaN goes to libm */
#define FNN_TRIG_MAX_F 0.0f
#define FNN_TRIG_MAX_D 0.0
#endif
#define FNN_PI_1 3.1415927410e+00f         /* pi rounded to float */
#define FNN_PI_2 -8.7422776573e-08f        /* pi - FNN_PI_1, rounded */
#define FNN_PI_3 -3.4302490200e-15f        /* pi - FNN_PI_1 - FNN_PI_2, rounded */
#define FNN_2_OVER_PI 0.63661977236758134308
#define FNN_PIO2_1  1.57079632673412561417e+00   /* pi/2, first 33 bits */
#define FNN_PIO2_2  6.07710050630396597660e-11   /* next 33 bits */
#define FNN_PIO2_3  2.02226624871116645580e-21   /* next 33 bits */
#define FNN_PIO2_3T 8.47842766036889956997e-32   /* pi/2 - P1 - P2 - P3 */

/* sin(x) (h = 0) or cos(x) (h = 0.5) for |x| <= FNN_TRIG_MAX_F. */
static inline float fnn_sincosf(float x, float h) {
    float k = rintf(x * 0.318309886183790672f - h);
    float m = k + h;
    float r = fmaf(-m, FNN_PI_1, x);
    r = fmaf(-m, FNN_PI_2, r);
    r = fmaf(-m, FNN_PI_3, r);
    float z = r * r;
    float p = 2.60578212873952e-06f;
    p = p * z - 1.98096036911010742e-04f;
    p = p * z + 8.33306647837162018e-03f;
    p = p * z - 1.66666597127914429e-01f;
    p = p * z * r + r;
    float q = k + 2.0f * h;                  /* sin x = (-1)^q sin r */
    float odd = q - 2.0f * floorf(q * 0.5f); /* 0 or 1 */
    return p - 2.0f * odd * p;
}

/* quadrant q (an integer-valued double): v = sin r or cos r as q is even or odd,
 * negated when q mod 4 is 2 or 3. */
static inline double fnn_quadrant_d(double q, double s, double c) {
    double h = q * 0.5;
    double v = h != floor(h) ? c : s;
    double m4 = q - 4.0 * floor(q * 0.25);
    return m4 >= 2.0 ? -v : v;
}

/* sin(x) (shift 0) or cos(x) (shift 1) for |x| <= FNN_TRIG_MAX_D. */
static inline double fnn_sincos(double x, double shift) {
    double n = rint(x * FNN_2_OVER_PI);
    double r = fma(-n, FNN_PIO2_1, x);
    r = fma(-n, FNN_PIO2_2, r);
    r = fma(-n, FNN_PIO2_3, r);
    r = fma(-n, FNN_PIO2_3T, r);
    double z = r * r;
    double s = 1.58969099521155010221e-10;
    s = s * z - 2.50507602534068634195e-08;
    s = s * z + 2.75573137070700676789e-06;
    s = s * z - 1.98412698298579493134e-04;
    s = s * z + 8.33333333332248946124e-03;
    s = s * z - 1.66666666666666324348e-01;
    s = s * z * r + r;
    double c = -1.13596475577881948265e-11;
    c = c * z + 2.08757232129817482790e-09;
    c = c * z - 2.75573143513906633035e-07;
    c = c * z + 2.48015872894767294178e-05;
    c = c * z - 1.38888888888741095749e-03;
    c = c * z + 4.16666666666666019037e-02;
    double hz = 0.5 * z;
    double w = 1.0 - hz;
    c = w + (((1.0 - w) - hz) + z * z * c);
    return fnn_quadrant_d(n + shift, s, c);
}

static inline float fnn_sinf(float x) { return fnn_sincosf(x, 0.0f); }
static inline float fnn_cosf(float x) { return fnn_sincosf(x, 0.5f); }
static inline double fnn_sin(double x) { return fnn_sincos(x, 0.0); }
static inline double fnn_cos(double x) { return fnn_sincos(x, 1.0); }

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
