/* Small C helpers the Cython kernels inline: vectorizable exp/log/tanh/Phi/sin/cos, the
 * OpenMP thread count, and the counter-based hash behind dropout masks.
 *
 * Kept in C because Cython cannot express the float<->int bit cast that lets GCC
 * vectorize exp (glibc's expf is a scalar call, which made softmax 4x slower). */
#ifndef FASTNN_MATH_H
#define FASTNN_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Hardware FMA (-march=native on x86-64 since 2013). The Cody-Waite reductions below
 * use explicit fmaf so that -fassociative-math cannot fold their split constants;
 * without FMA (FASTNN_NATIVE=0 builds) fmaf would be a scalar libm call, so there the
 * float reductions run in double with ln2 in one constant, which leaves nothing to
 * fold (a plain multiply-add of the split lost up to 67 ulp in exp near |x| = 88 and
 * all of log1p's accuracy near 0: tests/test_cython_kernels.py checks them in either
 * build), the double exp/tanh/sigmoid go to libm (_common.pxd), and sin/cos too. */
#if defined(__FMA__) || defined(FP_FAST_FMA)
#define FNN_HAVE_FMA 1
#else
#define FNN_HAVE_FMA 0
#endif

/* The widest vector instructions the kernels were compiled for: backend_info's "simd"
 * (-march=native picks the building machine's; FASTNN_NATIVE=0 builds x86-64-v2,
 * SSE4.2, where the compiler knows the name, else its default: SSE2 on x86-64). */
#if defined(__AVX512F__)
#define FNN_SIMD "avx512f"
#elif defined(__AVX2__)
#define FNN_SIMD "avx2"
#elif defined(__AVX__)
#define FNN_SIMD "avx"
#elif defined(__SSE4_2__)
#define FNN_SIMD "sse4.2"
#elif defined(__SSE2__)
#define FNN_SIMD "sse2"
#elif defined(__ARM_NEON)
#define FNN_SIMD "neon"
#else
#define FNN_SIMD "none"
#endif

#ifdef _OPENMP
#include <omp.h>
static inline int fnn_openmp_enabled(void) { return 1; }
static inline int fnn_max_threads(void) { return omp_get_max_threads(); }
static inline void fnn_set_num_threads(int n) { omp_set_num_threads(n); }
/* Every thread of the enclosing parallel region waits here. Cython compiles a prange
 * inside `with parallel():` as `omp for nowait`: a phase that reads what the previous
 * one wrote needs this between them (gcc happened to put a barrier after each such
 * loop, for its lastprivate index, which no standard promises). */
static inline void fnn_barrier(void) { _Pragma("omp barrier") }
#else
static inline int fnn_openmp_enabled(void) { return 0; }
static inline int fnn_max_threads(void) { return 1; }
static inline void fnn_set_num_threads(int n) { (void)n; }
static inline void fnn_barrier(void) {}
#endif

/* e^x - 1 reduced: x = n ln2 + r, |r| <= ln2/2, returns e^r - 1 = r + r^2 P(r)
 * (Cephes expf's polynomial) and stores 2^n in *scale. The Cody-Waite reduction is
 * two explicit fmas: under -fassociative-math gcc folds x - n*C1 - n*C2 into
 * x - n*ln2 (one fma left in the generated code) and loses ~4 ulp.
 * Needs -87.3 <= x <= 88.3 so that 2^n is a normal float; with cap set, up to 88.72
 * (n capped at 127, r then runs up to 2 ln2 - ln2/2 above 127.5 ln2 = 88.376: fnn_expf
 * within 5.33 ulp there instead of 1.26, see fnn_expf). The cap costs
 * a compare and a blend per vector, so only fnn_expf, whose argument reaches 88.72,
 * sets it (cap is a constant after inlining). NaN passes through. Returns e^r - 1 +
 * one (one = 0 or 1, a constant after inlining) as r^2 P(r) + (r + one) in one explicit
 * fma: fnn_expf_core's e^r = (e^r - 1) + 1, left to the compiler, was fused in the
 * written order (q + 1) or, under -fassociative-math, as fma(P, r^2, r + 1), which the
 * numba backend's LLVM forms (vmath._exp_nonpos_horner32 now writes it). */
static inline float fnn_expm1_reduced_f(float x, float* scale, int cap, float one) {
    float n = rintf(x * 1.44269504088896341f);
    if (cap)
        n = n > 127.0f ? 127.0f : n;
#if FNN_HAVE_FMA
    float r = fmaf(-n, 0.693359375f, x);
    r = fmaf(-n, -2.12194440e-4f, r);
#else   /* in double: ln2 in one constant, nothing to fold, one rounding to float */
    float r = (float)((double)x - (double)n * 0.69314718055994531);
#endif
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    int32_t bits = ((int32_t)n + 127) << 23;
    memcpy(scale, &bits, sizeof *scale);
#if FNN_HAVE_FMA
    return fmaf(p, r * r, r + one);
#else
    return p * (r * r) + (r + one);
#endif
}

/* log(x) for float, branch-free so loops calling it vectorize (glibc's logf is a scalar
 * call: BCE on 16M values ran at 1.2 GB/s, NumPy's speed). x = 2^e m with m in
 * [sqrt(1/2), sqrt(2)) from the bits (subnormals scaled by 2^23 first), log x =
 * e ln2 + log1p(f), f = m - 1, log1p(f) = f - f^2/2 + f^3 P(f) with P of degree 7 fitted
 * for this file (Lawson-reweighted least squares on Chebyshev nodes, 5.8e-9 relative)
 * and ln2 in two parts. Within 0.9 ulp of log (a sample of 58M positive floats, the
 * subnormals included); log(0) = -inf, log(x < 0) = NaN, log(inf) = inf, NaN
 * propagates. 0.44 ns per value (1 thread, in cache) against 3.3 for logf. The same
 * algorithm and coefficients as the numba backend's vmath.log. */
static inline float fnn_logf(float x) {
    int tiny = x < 1.17549435e-38f;
    float xs = tiny ? x * 8388608.0f : x;
    uint32_t bits;
    memcpy(&bits, &xs, sizeof bits);
    /* m = 2^-e x in [sqrt(1/2), sqrt(2)): the mantissa of x + (1.0 - sqrt(1/2)) (bits,
     * sqrt(1/2) rounded up) under sqrt(1/2)'s exponent, an integer add instead of a
     * compare and two selects on [1, 2); the polynomial by Estrin, not Horner: each
     * value's chain is shorter, which is the speed of a loop around it (as vmath.log) */
    bits += 0x3f800000u - 0x3f3504f4u;
    uint32_t mbits = (bits & 0x007fffffu) + 0x3f3504f4u;
    float m;
    memcpy(&m, &mbits, sizeof m);
    float e = (float)((int32_t)(bits >> 23) - 127) - (tiny ? 23.0f : 0.0f);
    float f = m - 1.0f;
    float f2 = f * f;
    float p = ((3.333333135e-01f - 2.500082254e-01f * f)
               + (2.000122666e-01f - 1.662335694e-01f * f) * f2)
              + ((1.420176178e-01f - 1.316019446e-01f * f)
                 + (1.276154965e-01f - 7.634429634e-02f * f) * f2) * (f2 * f2);
#if FNN_HAVE_FMA
    float y = fmaf(f2 * f, p, fmaf(-0.5f, f2, e * -2.12194440e-4f));
    y = fmaf(e, 0.693359375f, y + f);
#else   /* e ln2 in double, ln2 in one constant: nothing to fold */
    float y = (float)((double)e * 0.69314718055994531 + (double)f
                      + (double)(f2 * f * p - 0.5f * f2));
#endif
    y = x < INFINITY ? y : x;
    return x > 0.0f ? y : (x == 0.0f ? -INFINITY : NAN);
}

/* The rounding error of u = 1 + x (u as computed): (1 + x) - u exactly, for |x| <= 1
 * (1 - u is exact, and so is its sum with x: Fast2Sum). 1 - u is an explicit fmaf so
 * that -fassociative-math cannot fold (1 - (1 + x)) + x to 0 (gcc 12 does, written as
 * plain arithmetic; without FMA, FASTNN_NATIVE=0 builds, the error is taken in double). */
static inline float fnn_one_plus_err_f(float x, float u) {
#if FNN_HAVE_FMA
    return fmaf(-1.0f, u, 1.0f) + x;
#else
    /* (1 + x) - u in double, where every order of the three terms is exact once
     * |x| >= 2^-25 (x's last bit is then 2^-48 or more), as gcc may reorder them (it
     * made x - (u - 1) into this); below, u is 1 and the error x itself. */
    return fabsf(x) < 2.98023224e-8f ? x : (float)(((double)x + 1.0) - (double)u);
#endif
}

/* log(1 + x) for float: fnn_logf(u) of u = 1 + x plus the rounding error of u where
 * |x| <= 1 (log(1 + x) = log u + err / u, and err (1 / u - 1) is below 6e-8 relative
 * there; beyond, err / u < 2^-24 is below the log's own error): full relative accuracy
 * near 0 (log(1 - 1e-20) is -1e-20, not log(1) = 0: BCE's log(1 - p) term for a
 * confident p = 1e-7 was 1.19e-7 against PyTorch's 1.0e-7). Within 2.3 ulp (fnn_logf's
 * 0.9 ulp of log u can be two of log1p's near 0; -1 to 4 and +-2^-k measured), no
 * division. */
static inline float fnn_log1pf(float x) {
    float u = 1.0f + x;
    float err = fnn_one_plus_err_f(x, u);
    return fnn_logf(u) + (fabsf(x) <= 1.0f ? err : 0.0f);
}

/* e^x for -87.3 <= x <= 88.3 (callers clamp), no special cases; with cap, up to 88.72. */
static inline float fnn_expf_core(float x, int cap) {
    float scale;
    return fnn_expm1_reduced_f(x, &scale, cap, 1.0f) * scale;
}

/* exp(x) for float, branch-free so loops calling it vectorize. NaN propagates (no
 * comparison is true for NaN), exp of anything below -87.3 is 0 and above 88.7 is inf:
 * selects on the result, with no clamp of x (the core's value out there is garbage,
 * never selected): gcc threaded the two-sided clamp's constants through the reduction,
 * compares and blends for each (as in fnn_sigmoidf). */
static inline float fnn_expf(float x) {
    const float hi = 88.72283f, lo = -87.33654f;
    float y = fnn_expf_core(x, 1);
    y = x < lo ? 0.0f : y;
    return x > hi ? INFINITY : y;
}

/* e^x for x <= 88.3 (garbage above: mish's first pass sends any x and uses the result
 * up to 20, the other callers' arguments are <= 1): 0 selected below -87.3, with
 * no clamp of x (outside fnn_expf_core's range its value is garbage, never selected):
 * gcc threaded a clamp's constant through the reduction, a compare and blends for
 * each (as in fnn_sigmoidf). NaN propagates. */
static inline float fnn_exp_nonpos_f(float x) {
    const float lo = -87.33654f;
    float y = fnn_expf_core(x, 0);
    return x < lo ? 0.0f : y;
}

/* e^x - 1 for x <= 0 (ELU's negative side), branch-free: 2^n (e^r - 1) + (2^n - 1),
 * exact in its leading term where n = 0, so full relative accuracy near 0 (e^x - 1
 * computed as exp then minus 1 flushed x > -3e-8 to 0); -1 selected below -87.3, x not
 * clamped (as fnn_exp_nonpos_f). NaN propagates. */
static inline float fnn_expm1_nonpos_f(float x) {
    const float lo = -87.33654f;
    float scale;
    float q = fnn_expm1_reduced_f(x, &scale, 0, 0.0f);
#if FNN_HAVE_FMA
    float e = fmaf(scale, q, scale - 1.0f);   /* explicit: see fnn_tanhf */
#else
    float e = scale == 1.0f ? q : scale * q + (scale - 1.0f);
#endif
    return x < lo ? -1.0f : e;
}

/* 1 / (1 + e^-x) for float: 1 for x > 87 (what -x clamped to fnn_expf_core's range
 * gave), and 0 below x = -88 (PyTorch's 0 at -inf; the exact value is below 6e-39
 * there); one exp and one division, no select on the sign. NaN propagates. The range
 * bounds are selects on the result, not a clamp of -x: gcc threaded the clamp's
 * constants through the exp's reduction, compares, mask ops and blends for each (the
 * AVX2 sigmoid loop 36 -> 28 instructions a vector); the exp of -x outside the range is
 * garbage, never selected. */
static inline float fnn_sigmoidf(float x) {
    float v = -x;
    float s = 1.0f / (1.0f + fnn_expf_core(v, 0));
    s = v < -87.0f ? 1.0f : s;
    return v > 88.0f ? 0.0f : s;
}

/* tanh(x) for float: E / (E + 2) with E = e^2x - 1 = 2^n (e^r - 1) + (2^n - 1), which
 * keeps full relative accuracy near 0 (n = 0 there) without a separate polynomial;
 * |x| > 9 gives +-1 (tanh 9 = 1 - 3e-8). One exp-sized polynomial, one division, the
 * sign copied from x; within 4 ulp. NaN propagates. glibc's tanhf is a scalar call
 * that ran at 1 GB/s here. */
static inline float fnn_tanhf(float x) {
    /* tanh(|x|) signed as x (tanh(-0) is -0). |x| > 9 is a select of 1 after the
     * division (what the clamp |x| <= 9 gave: E / (E + 2) at 9 rounds to 1), not a
     * clamp of |x|: gcc threaded the clamp's constant through the reduction, a compare
     * and a blend for each product of it; outside its range the exp is garbage, never
     * selected. NaN passes the select. */
    float a = fabsf(x);
    float scale;
    float q = fnn_expm1_reduced_f(a + a, &scale, 0, 0.0f);
    /* an explicit fma: under -fassociative-math gcc rewrote scale*q + (scale - 1) as
     * (scale*q + scale) - 1, which cancels to 0 for tiny x (tanh(1e-8) gave 0) */
#if FNN_HAVE_FMA
    float e = fmaf(scale, q, scale - 1.0f);
#else
    float e = scale == 1.0f ? q : scale * q + (scale - 1.0f);  /* exact q where n = 0 */
#endif
    return copysignf(a > 9.0f ? 1.0f : e / (e + 2.0f), x);
}

/* e^t - 1 reduced, for double: t = n ln2 + r (fdlibm's ln2 in two parts, explicit fmas:
 * see fnn_expm1_reduced_f), |r| <= ln2/2, returns e^r - 1 = r + r^2 P(r) with P Taylor's
 * 1/13! ... 1/2! (its remainder r^14/14! is 4e-18 for |r| <= ln2/2) and stores n (an
 * integer-valued double) in *n. Needs |t| <= 2^21 ln2 (n C1 exact); NaN passes through
 * (to the result, not to n's use as an exponent). Shared by fnn_tanh and fnn_exp. */
static inline double fnn_expm1_reduced(double t, double* n) {
    double k = rint(t * 1.4426950408889634);
    double r = fma(-k, 6.93147180369123816490e-01, t);
    r = fma(-k, 1.90821492927058770002e-10, r);
    double p = 1.6059043836821613e-10;        /* 1/13! */
    p = p * r + 2.08767569878681e-09;         /* 1/12! */
    p = p * r + 2.505210838544172e-08;
    p = p * r + 2.755731922398589e-07;
    p = p * r + 2.7557319223985893e-06;
    p = p * r + 2.48015873015873e-05;
    p = p * r + 0.0001984126984126984;
    p = p * r + 0.001388888888888889;
    p = p * r + 0.008333333333333333;
    p = p * r + 0.041666666666666664;
    p = p * r + 0.16666666666666666;
    p = p * r + 0.5;                          /* 1/2! */
    *n = k;
    return p * (r * r) + r;
}

/* 2^n for an integer-valued double -1022 <= n <= 1023, from the bits of n + 1.5 * 2^52,
 * whose low bits are n (two's complement): AVX2 has no packed double -> int64
 * conversion, and (int64_t)n kept gcc's loop scalar. */
static inline double fnn_pow2i(double n) {
    double shifted = n + 6755399441055744.0;
    uint64_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    bits = (bits + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return scale;
}

/* scale e^x for double, x <= 709 (NaN passes) or, with cap, any x: 2^n (1 + q) scale
 * as fma(s1, q, s1) s2 with s1 = scale 2^clamp(n, -1000, 1023), 2^n scale = s1 s2: s2
 * is 1 where n >= -1000 (one rounding, the fma's), 2 at the top binade (exact), and
 * 2^-1 ... 2^-154 below (the fma's result is normal, and the product rounds it once
 * more, to the subnormal grid where the result is subnormal; s1 = 2^-1022 would have
 * rounded twice). x is clamped below at -800, where scale e^x rounds to 0 for
 * |scale| < 2^78; with cap, above at 709.79, where it overflows to inf: no selects.
 * The scale goes in before the rounding rather than in a product after it, which
 * would round a subnormal result twice (and which reassociation may regroup: x Phi(x)
 * for x = -37.8 was 4e-11 off in numba's LLVM as x (g e^w), g e^w subnormal). Within
 * 0.96 ulp of the correctly rounded e^x (scale 1: tests/test_float64_exp.py). glibc's
 * exp is a scalar call that kept the float64 sigmoid, SiLU, ELU, mish... loops
 * unvectorized: sigmoid of 128x784 values 1030 -> 228 us, 1 thread. Needs hardware FMA
 * (_common.pxd's f_exp* call libm without it). */
static inline double fnn_exp_scaled(double x, int cap, double scale) {
    double c = x < -800.0 ? -800.0 : x;
    if (cap)
        c = c > 709.79 ? 709.79 : c;
    double n;
    double q = fnn_expm1_reduced(c, &n);
    double n1 = n < -1000.0 ? -1000.0 : n;
    if (cap)
        n1 = n1 > 1023.0 ? 1023.0 : n1;
    double s1 = scale * fnn_pow2i(n1);
    /* the product by s2 apart from the fma: rounding (1 + q) s1 s2 once, to the
     * subnormal grid; s1 s2 first would round 2^n itself */
    return fma(s1, q, s1) * fnn_pow2i(n - n1);
}

static inline double fnn_exp_core(double x, int cap) {
    return fnn_exp_scaled(x, cap, 1.0);
}

/* e^x for any double x; NaN propagates, exp(-inf) = 0, exp(inf) = inf, exp(-0) = 1. */
static inline double fnn_exp(double x) {
    return fnn_exp_core(x, 1);
}

/* e^x for x <= 709 (the callers' arguments are <= 20) or NaN: one clamp fewer. */
static inline double fnn_exp_upto709(double x) {
    return fnn_exp_core(x, 0);
}

/* e^x - 1 for double x <= 0 (ELU's negative side): 2^n (e^r - 1) + (2^n - 1), exact in
 * its leading term where n = 0, so full relative accuracy near 0; x clamped at -40,
 * where e^x - 1 rounds to -1; +-0 at +-0. NaN propagates. Within 2 ulp of glibc's expm1. */
static inline double fnn_expm1_nonpos(double x) {
    double n;
    double q = fnn_expm1_reduced(x < -40.0 ? -40.0 : x, &n);
    double scale = fnn_pow2i(n);
    /* signed as x (e <= 0 for x <= 0): the reduction turns x = -0 into r = +0
     * (-0 + +0), where PyTorch's ELU keeps -0 */
    return copysign(fma(scale, q, scale - 1.0), x);    /* an explicit fma: see fnn_tanhf */
}

/* 1 / (1 + e^-x) for double: e = e^-|x| (never overflows), then 1 / (1 + e) or
 * e / (1 + e) by x's sign, one division; 0.5 at +-0, 1 at inf, 0 at -inf. NaN
 * propagates. */
static inline double fnn_sigmoid(double x) {
    double e = fnn_exp_upto709(x > 0.0 ? -x : x);   /* -|x| as a select: NaN stays */
    return (x >= 0.0 ? 1.0 : e) / (1.0 + e);
}

/* tanh(x) for double, fnn_tanhf's method: E / (E + 2) with E = e^2|x| - 1 =
 * 2^n (e^r - 1) + (2^n - 1) (fnn_expm1_reduced, 0 <= n <= 58); signed as x. |x| > 20
 * gives +-1 (tanh 20 = 1 - 8e-18), |x| < 2^-26 gives x.
 * Within 4 ulp of glibc's tanh, a scalar call 1.5x slower than NumPy's SIMD tanh here.
 * NaN propagates. Needs hardware FMA (f_tanh calls libm without it). The same
 * algorithm as the numba backend's vmath._tanh64. */
static inline double fnn_tanh(double x) {
    double a = fabs(x);
    a = a > 20.0 ? 20.0 : a;
    double n;
    double q = fnn_expm1_reduced(a + a, &n);
    double scale = fnn_pow2i(n);
    double e = fma(scale, q, scale - 1.0);    /* explicit: see fnn_tanhf */
    /* below 2^-26 tanh|x| rounds to |x| (x^3/3 is under half an ulp), where e + 2 would
     * drop e's 2|x|^2 and leave |x| + |x|^2 */
    double y = a < 1.4901161193847656e-08 ? a : e / (e + 2.0);
    return copysign(y, x);
}

/* log for double, fnn_logf's method: x = 2^e m, m in [sqrt(1/2), sqrt(2)) from the bits
 * (fnn_log_split), log x = e ln2 + log1p(f), f = m - 1, log1p(f) = 2 atanh(s) =
 * f - s (f - z Q(z)) with s = f / (2 + f), z = s^2 <= 0.0295 and Q ~ (2 atanh(s) - 2s) /
 * (s z) = 2/3 + 2z/5 + ... of degree 6, fitted for this file (Lawson-reweighted least
 * squares for relative error on Chebyshev nodes of [0, 0.0295], in mpmath: 4.6e-16, and
 * Q's share of the result is below z/3, 1e-2); ln2 in fdlibm's two parts (e ln2_hi
 * exact). log within 0.9 ulp, log1p within 1.13 (where e ln2 and log1p(f) cancel, u just
 * above sqrt 2; tests/test_float64_log_gelu.py). glibc's
 * log and log1p are scalar calls: float64 softplus ran at 1.5x PyTorch's time. One
 * division, no table. Needs hardware FMA (its callers in _common.pxd check). The same
 * algorithm and coefficients as the numba backend's vmath._log64. */

/* e and m of a positive, normal, finite u = 2^e m, and 2^-e (0 for e = 1023, 1024):
 * the bits of u + (1 - sqrt(1/2)) put m's exponent field on e's. e goes to a double
 * through int32 (AVX2 converts int32 lanes, not int64), and 2^-e comes from the
 * integer: with e from the bits of 2^52 + e + 1023 less that constant, and 2^-e as
 * fnn_pow2i(-e), -fassociative-math folded the constants on either side of e into one
 * that a double cannot hold (2^-0 came out 2, log1p(-3e-80) 1e-16). */
static inline double fnn_log_split(double u, double* m, double* inv_scale) {
    uint64_t t;
    memcpy(&t, &u, sizeof t);
    t += 0x3ff0000000000000ull - 0x3fe6a09e667f3bcdull;   /* 1 - the bits of sqrt(1/2) */
    int32_t biased = (int32_t)(t >> 52);                  /* e + 1023 */
    int64_t neg = 2046 - (int64_t)biased;                 /* 1023 - e */
    uint64_t ibits = (uint64_t)(neg < 0 ? 0 : neg) << 52;
    uint64_t mbits = (t & 0x000fffffffffffffull) + 0x3fe6a09e667f3bcdull;
    memcpy(m, &mbits, sizeof *m);
    memcpy(inv_scale, &ibits, sizeof *inv_scale);
    return (double)(biased - 1023);
}

/* e ln2 + log1p(f) for an integer-valued e and f in [sqrt(1/2) - 1, sqrt(2) - 1]. */
static inline double fnn_log_reduced(double e, double f) {
    double s = f / (2.0 + f);
    double z = s * s;
    double q = 0.146197699976859;
    q = q * z + 0.15331449513690837;
    q = q * z + 0.18182897434294676;
    q = q * z + 0.22222211018704668;
    q = q * z + 0.2857142862670216;
    q = q * z + 0.39999999999897856;
    q = q * z + 0.666666666666667;
    double r = z * q;
    /* explicit fmas: reassociated, e ln2_hi + (f - (s (f - r) - e ln2_lo)) became
     * e (ln2_hi + ln2_lo) + ... in numba's LLVM, which rounds e ln2 (1.8 ulp where log x
     * is near 1) */
    return fma(e, 6.93147180369123816490e-01,
               f - fma(s, f - r, -(e * 1.90821492927058770002e-10)));
}

/* log(x) for double: subnormals scaled by 2^54 first; log(0) = -inf, log(x < 0) = NaN,
 * log(inf) = inf, NaN propagates. */
static inline double fnn_log(double x) {
    int tiny = x < 2.2250738585072014e-308;
    double m, unused;
    double e = fnn_log_split(tiny ? x * 18014398509481984.0 : x, &m, &unused);
    double y = fnn_log_reduced(tiny ? e - 54.0 : e, m - 1.0);
    y = x < INFINITY ? y : x;
    return x > 0.0 ? y : (x == 0.0 ? -INFINITY : NAN);
}

/* log(u + err) for u = 1 + x rounded (finite, >= 2^-53) and err = (1 + x) - u: f =
 * m - 1 + err 2^-e is x itself where e = 0, so log1p keeps full relative accuracy near
 * 0; elsewhere err moves the result by up to 1.4 ulp. */
static inline double fnn_log1p_from(double u, double err) {
    double m, inv_scale;
    double e = fnn_log_split(u, &m, &inv_scale);
    /* an explicit fma: reassociated, (m - 1) + err 2^-e became (m + err 2^-e) - 1,
     * which drops err (log1p(1e-80) came out 0) */
    return fnn_log_reduced(e, fma(err, inv_scale, m - 1.0));
}

/* The rounding error (1 + x) - u of u = 1 + x, exactly: (max(x, 1) - u) + min(x, 1)
 * (Fast2Sum), 1 - u an explicit fma as in fnn_one_plus_err_f. */
static inline double fnn_one_plus_err(double x, double u) {
    double hi = x > 1.0 ? x : 1.0, lo = x > 1.0 ? 1.0 : x;
    return fma(-1.0, u, hi) + lo;
}

/* log(1 + x) for double; log1p(-1) = -inf, below NaN, inf and NaN propagate, signed as
 * x (log1p(-0) = -0). */
static inline double fnn_log1p(double x) {
    double u = 1.0 + x;
    double y = fnn_log1p_from(u, fnn_one_plus_err(x, u));
    y = u < INFINITY ? y : u;
    y = x > -1.0 ? y : (x == -1.0 ? -INFINITY : NAN);
    return copysign(y, x);
}

/* log(1 + x) for 0 <= x <= 1 (softplus's log1p(e^-|z|)): fnn_log1p without its
 * special cases. NaN propagates. */
static inline double fnn_log1p_small(double x) {
    double u = 1.0 + x;
    return fnn_log1p_from(u, fma(-1.0, u, 1.0) + x);   /* (Fast2Sum, x <= 1) */
}

/* Phi(x), the standard normal CDF, for float, given e = e^(-x^2/2) (GELU's backward
 * needs e for the density too: one exp for both). Phi(-|x|) = erfc(a) / 2 at
 * a = |x| / sqrt 2, with erfc(a) = t P(t) e^(-a^2), t = 1 / (1 + 0.4 a), P of degree 5:
 * the form of Abramowitz & Stegun 7.1.26 with one more term, coefficients fitted for
 * this file (Lawson's minimax on a in [0, 10]) so that |error of erfc| (1 + |x|) is
 * below 6e-8: GELU's x Phi(x) is within 3e-8 absolute. In the far negative tail the
 * error is absolute, not relative, as 1 + erf(x / sqrt 2) in float32 (the reference,
 * PyTorch). Replaced a 10-term erfc fit that kept relative accuracy there but made
 * GELU compute-bound (0.93 ns per element against 0.6 here, 1 thread, in cache).
 * glibc's erff is a scalar call that held GELU to 1 GB/s. GELU's backward uses it (the
 * forward, fnn_gelu_f, needs no Gaussian); the same formula as the numba backend's
 * vmath.phi_with_gauss. */
static inline float fnn_phi_gauss_f(float x, float e) {
    float a = fabsf(x) * 0.70710678118654752f;
    float t = 1.0f / (1.0f + 0.4f * a);
    float p = -0.20266447961330414f;
    p = p * t + 0.7190840244293213f;
    p = p * t - 0.3872245252132416f;
    p = p * t + 0.4815819561481476f;
    p = p * t + 0.1564340740442276f;
    p = p * t + 0.23278889060020447f;
    float lower = 0.5f * p * t * e;                 /* Phi(-|x|) */
    return x < 0.0f ? lower : 1.0f - lower;
}

/* e^(-x^2/2) for float, 0 where it underflows */
static inline float fnn_gauss_unnormed_f(float x) {
    return fnn_exp_nonpos_f(-0.5f * x * x);
}

/* Phi(-u) for float u = |x| >= 0, without a division or a Gaussian: 2^P(u) with
 * P(u) ~ log2 Phi(-u) a polynomial of degree 10 in v = u - 1 on [0, 5.6] (fitted for
 * this file: least squares on Chebyshev nodes, reweighted (Lawson) toward the minimax,
 * 2.2e-7 absolute in log2), and 2^r on r in [-1/2, 1/2] of degree 5 (7.5e-8 relative).
 * Beyond u = 5.6, 0: Phi(-5.6) = 1e-8, and PyTorch's float32 1 + erf(x / sqrt 2) is 0
 * there too. GELU's forward calls it: 15 multiply-adds against the 12, the multiplies
 * and the division of fnn_phi_gauss_f with its exp, whose multiply pipes bound the
 * loop (0.52 -> 0.44 ns per value, 1 thread, in cache). x Phi(x) from it is within
 * 1e-7 + 1 ulp of the exact value (tests/test_cython_kernels.py); relative to Phi(-u)
 * within 1.2e-6 for u < 5. The same coefficients as the numba backend's vmath.gelu. */
static inline float fnn_phi_lower_log2_f(float u) {   /* P(u): the first half */
    float v = (u < 5.6f ? u : 5.6f) - 1.0f;
    float p = -1.653284087e-08f;
    p = p * v + 3.642024069e-07f;
    p = p * v - 3.242114644e-06f;
    p = p * v + 1.267593598e-05f;
    p = p * v + 1.703953785e-05f;
    p = p * v - 5.801857915e-04f;
    p = p * v + 4.754908383e-03f;
    p = p * v - 2.811893634e-02f;
    p = p * v - 5.777262449e-01f;
    p = p * v - 2.200304747e+00f;
    return p * v - 2.656033039e+00f;   /* P in [-26.5, -1]: 2^n a normal float */
}

static inline float fnn_phi_lower_from_log2_f(float u, float p) {   /* 2^P(u) */
    float n = rintf(p);
    float r = p - n;
    float q = 1.327646663e-03f;
    q = q * r + 9.675540961e-03f;
    q = q * r + 5.550713465e-02f;
    q = q * r + 2.402212024e-01f;
    q = q * r + 6.931469440e-01f;
    q = q * r + 1.000000119e+00f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return u > 5.6f ? 0.0f : q * scale;
}

static inline float fnn_phi_lower_f(float u) {
    return fnn_phi_lower_from_log2_f(u, fnn_phi_lower_log2_f(u));
}

/* GELU in two halves, for loops that run them in two passes over a tile (each
 * half's dependency chain then fits the out-of-order window; 0.79 -> 0.57 ns a value,
 * 1 thread, in cache): the head log2 Phi(-|x|), the tail x Phi(x) from it. */
static inline float fnn_gelu_head_f(float x) {
    return fnn_phi_lower_log2_f(fabsf(x));
}

static inline float fnn_gelu_tail_f(float x, float head) {
    float lower = fnn_phi_lower_from_log2_f(fabsf(x), head);
    return x * (x < 0.0f ? lower : 1.0f - lower);
}

/* x Phi(x), GELU, for float; NaN propagates through the final product */
static inline float fnn_gelu_f(float x) {
    return fnn_gelu_tail_f(x, fnn_gelu_head_f(x));
}

/* d/dx [x Phi(x)] = Phi(x) + x e^(-x^2/2) / sqrt(2 pi) for float: one exp */
static inline float fnn_gelu_gradf(float x) {
    float e = fnn_gauss_unnormed_f(x);
    return fnn_phi_gauss_f(x, e) + x * e * 0.39894228040143267794f;
}

/* GELU in float64, x Phi(x), and its slope Phi(x) + x phi(x), from the parts of Phi(-u)
 * = e^w g and phi(u) = e^w c for u = |v|, v = x clamped to [-40, 40] (Phi(-40) = 0 in
 * float64), w = -h/2 with h = u^2 rounded. g = M(u) e^(-l/2), M(u) = Phi(-u) e^(u^2/2),
 * and c = e^(-l/2) / sqrt(2 pi), e^(-l/2) = 1 - l/2 for h's rounding error l = u^2 - h
 * (an fma): a rounded u^2 alone puts up to 2e-13 relative error in the tail (as libm's
 * erfc(-x / sqrt 2) of a rounded x / sqrt 2 does, 700 ulp at x = -37), and Phi's
 * relative accuracy there is all of x Phi(x)'s. M(u) = P(t) / (u + 5) with t = (u - 5)
 * / (u + 5) in [-1, 0.78]: one division and P of degree 22, fitted for this file
 * (Lawson-reweighted least squares for the relative error of M(u) (u + 5) on 142
 * Chebyshev nodes in t, mpmath at 40 digits: 6.2e-18; P's coefficients include the 1 /
 * sqrt(2 pi) of Phi; K = 5 took the fewest terms of 3 ... 7). No branch, no table: one
 * exp (fnn_exp_scaled, which takes the factor before its last rounding, for the results
 * below 2^-1022). GELU within 4 ulp of the exact value down to the subnormals (within 1
 * below |x| = 0.4, fnn_gelu_small's range: Phi(-|x|) near 1/2 is off by up to 6 of its
 * own ulps there, which this path gave x Phi(x) too); the slope within 6 ulp of its
 * larger term (it crosses 0 at x = -0.75). PyTorch's
 * float64 1 + erf(x / sqrt 2) is absolutely, not relatively, accurate in the left tail
 * (0 below x = -8.3). glibc's erfc is a scalar call (GELU 1.75x PyTorch's time). Needs
 * hardware FMA (f_gelu checks). The same algorithm and coefficients as the numba
 * backend's vmath._gelu64. */
static inline double fnn_phi_lower_parts(double x, double* w, double* g, double* c) {
    double v = x < -40.0 ? -40.0 : x;
    v = v > 40.0 ? 40.0 : v;
    double u = fabs(v);
    double h = u * u;
    double tail = 1.0 - 0.5 * fma(u, u, -h);
    double r = 1.0 / (u + 5.0);
    double t = (u - 5.0) * r;
    double p = -3.226519943291505e-10;
    p = p * t + 1.38202650428851e-09;
    p = p * t + 7.964774611771557e-09;
    p = p * t - 8.15098334613302e-09;
    p = p * t - 6.597958674406453e-08;
    p = p * t + 4.0704218695965814e-08;
    p = p * t + 4.328032247806487e-07;
    p = p * t - 3.3541706730244235e-07;
    p = p * t - 2.768882247264133e-06;
    p = p * t + 3.980334751319876e-06;
    p = p * t + 1.6681008207379443e-05;
    p = p * t - 4.97626418073607e-05;
    p = p * t - 5.937566559989966e-05;
    p = p * t + 0.0005448990312220193;
    p = p * t - 0.0007978694095330904;
    p = p * t - 0.002993376766485708;
    p = p * t + 0.020795066800980613;
    p = p * t - 0.06911863870658273;
    p = p * t + 0.1650203661703307;
    p = p * t - 0.31353315667129583;
    p = p * t + 0.4953056159699774;
    p = p * t - 0.6653825028900567;
    p = p * t + 0.769193049750063;
    *w = -0.5 * h;
    *g = p * r * tail;
    *c = 0.39894228040143267794 * tail;
    return v;
}

/* x Phi(x) = x (1/2 + x S(x^2)) for |x| < 0.4, S(z) = sum of (-1)^k z^k /
 * (2^k k! (2k + 1)) / sqrt(2 pi) over k = 0 ... 9 (Taylor's, its remainder below 2^-60
 * of x Phi(x) there): Phi(-|x|) from the exp and the Mills ratio is off by up to 6 of
 * its ulps for |x| < 0.4, where x S is under a third of 1/2 (within 1 ulp here). Signed
 * as x (-0 at -0). The numba backend's vmath._gelu_small64. */
static inline double fnn_gelu_small(double x) {
    double z = x * x;
    double s = -1.1301171641619213e-10;
    s = s * z + 2.2735298243728065e-09;
    s = s * z - 4.122667414862689e-08;
    s = s * z + 6.659693516316651e-07;
    s = s * z - 9.444656259503615e-06;
    s = s * z + 0.00011543468761615529;
    s = s * z - 0.0011873282154804543;
    s = s * z + 0.009973557010035817;
    s = s * z - 0.06649038006690544;
    s = s * z + 0.3989422804014327;
    return x * (0.5 + x * s);
}

/* x Phi(x) for double: e^w (v g) below 0, x (1 - e^w g) above, fnn_gelu_small for
 * |x| < 0.4; inf at inf, NaN at -inf (PyTorch's) and NaN. */
static inline double fnn_gelu(double x) {
    double w, g, c;
    double v = fnn_phi_lower_parts(x, &w, &g, &c);
    double lower = fnn_exp_scaled(w, 0, x < 0.0 ? v * g : g);
    double y = x < 0.0 ? lower : x * (1.0 - lower);
    y = fabs(x) < 0.4 ? fnn_gelu_small(x) : y;
    return x > -INFINITY ? y : NAN;
}

/* Phi(x) + x phi(x) = [x >= 0] + e^w (v c -+ g) for double; NaN at +-inf, +0 where the
 * (negative) value rounds to 0, below x = -38.67 (PyTorch's 0 + -0: ours is a -0 that
 * -fno-signed-zeros keeps from the + 0). */
static inline double fnn_gelu_grad(double x) {
    double w, g, c;
    double v = fnn_phi_lower_parts(x, &w, &g, &c);
    /* v c -+ g as one explicit fma: left to contraction, gcc fused it in the scalar
     * remainder but not in the vector loop (the select), an ulp or more apart by
     * place (numba's _gelu_grad64 has the same fma) */
    double y = fnn_exp_scaled(w, 0, fma(v, c, x < 0.0 ? g : -g)) + (x < 0.0 ? 0.0 : 1.0);
    y = x < -38.674766957173425 ? 0.0 : y;
    return fabs(x) < INFINITY ? y : NAN;
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
 * float: sin takes k = rint(|x|/pi), r = |x| - k pi, cos k = rint(x/pi - 1/2), r = x -
 * (k + 1/2) pi, with pi in three float parts (C1 = pi rounded; where r is small, x -
 * k C1 is exact), so |r| <= pi/2 and sin |x| = (-1)^k sin r, cos x = (-1)^(k+1) sin r:
 * one odd degree-9 polynomial (minimax for relative error on [0, pi/2], fitted for
 * this file: 6e-9) and a sign, no select. Within 2 ulp of the correctly rounded result.
 * double: n = rint(x 2/pi) (sin: of |x|), r = x - n pi/2 with pi/2 in four parts of
 * 33 bits (the split of fdlibm's __ieee754_rem_pio2), fdlibm's degree-13/14 sin and cos
 * kernels, picked by quadrant. Within 2 ulp.
 * sin (both types) puts x's sign and the quadrant's into the result's bits: -0 at -0
 * (as PyTorch); cos picks and signs with arithmetic. */

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

/* p(r) = sin r for |r| <= pi/2: the odd degree-9 polynomial. */
static inline float fnn_sin_poly_f(float r) {
    float z = r * r;
    float p = 2.60578212873952e-06f;
    p = p * z - 1.98096036911010742e-04f;
    p = p * z + 8.33306647837162018e-03f;
    p = p * z - 1.66666597127914429e-01f;
    return p * z * r + r;
}

/* cos(x) for |x| <= FNN_TRIG_MAX_F: x = (k + 1/2) pi + r, cos x = (-1)^(k+1) sin r. */
static inline float fnn_cosf(float x) {
    float k = rintf(x * 0.318309886183790672f - 0.5f);
    float m = k + 0.5f;
    float r = fmaf(-m, FNN_PI_1, x);
    r = fmaf(-m, FNN_PI_2, r);
    r = fmaf(-m, FNN_PI_3, r);
    float p = fnn_sin_poly_f(r);
    float q = k + 1.0f;                      /* cos x = (-1)^q sin r */
    float odd = q - 2.0f * floorf(q * 0.5f); /* 0 or 1 */
    return p - 2.0f * odd * p;
}

/* sin(x) for |x| <= FNN_TRIG_MAX_F, -0 at -0 (as PyTorch): sin |x| with x's sign and
 * k's parity XORed into the bits, k an integer (NaN converts to 0x80000000: even).
 * The reduction of x itself lost -0 (r = -0 - (+-0 pi_i) is +0 in one of the three
 * steps whatever k's sign, as pi_1 > 0 > pi_2, pi_3); this form gives it for free and
 * is faster (64K in cache, 1 thread: 0.25 -> 0.22 ns a value). Every other value bit
 * for bit as that reduction of x (cos's steps with 0 for 1/2, the form before
 * d9fb05e), NaN's sign too: sin is odd in each step (rint, the fmas and the
 * polynomial), and the fmas take k with -pi_i (libm's fmaf, the x86-64-v2 build's,
 * returns the product's NaN: -k's sign flipped it). */
static inline float fnn_sinf(float x) {
    uint32_t xb, pb;
    memcpy(&xb, &x, sizeof xb);
    float a = fabsf(x);
    float k = rintf(a * 0.318309886183790672f);
    float r = fmaf(k, -(FNN_PI_1), a);
    r = fmaf(k, -(FNN_PI_2), r);
    r = fmaf(k, -(FNN_PI_3), r);
    float p = fnn_sin_poly_f(r);
    memcpy(&pb, &p, sizeof pb);
    pb ^= ((uint32_t)(int32_t)k << 31) ^ (xb & 0x80000000u);
    memcpy(&p, &pb, sizeof p);
    return p;
}

/* quadrant q (an integer-valued double): v = sin r or cos r as q is even or odd,
 * negated when q mod 4 is 2 or 3. */
static inline double fnn_quadrant_d(double q, double s, double c) {
    double h = q * 0.5;
    double v = h != floor(h) ? c : s;
    double m4 = q - 4.0 * floor(q * 0.25);
    return m4 >= 2.0 ? -v : v;
}

/* s = sin r (returned) and *c = cos r for r = x - n pi/2, |r| <= pi/4. */
static inline double fnn_sin_cos_reduced(double x, double n, double* cos_r) {
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
    *cos_r = w + (((1.0 - w) - hz) + z * z * c);
    return s;
}

/* cos(x) for |x| <= FNN_TRIG_MAX_D: sin r or cos r of r = x - n pi/2, picked and
 * signed by the quadrant n + 1. */
static inline double fnn_cos(double x) {
    double n = rint(x * FNN_2_OVER_PI);
    double c;
    double s = fnn_sin_cos_reduced(x, n, &c);
    return fnn_quadrant_d(n + 1.0, s, c);
}

/* sin(x) for |x| <= FNN_TRIG_MAX_D, -0 at -0, as fnn_sinf: on |x|, n an integer
 * (NaN: 0), cos r where n is odd, the sign x's XOR bit 1 of n. Every other value bit
 * for bit as that reduction of x (fnn_cos's quadrant n for n + 1, the form before
 * d9fb05e), NaN's sign too (here the fmas keep -n: the old form's NaN signs under
 * libm's fma); faster (64K in cache: 0.98 -> 0.84 ns a value). */
static inline double fnn_sin(double x) {
    uint64_t xb, vb;
    memcpy(&xb, &x, sizeof xb);
    double a = fabs(x);
    double n = rint(a * FNN_2_OVER_PI);
    double c;
    double s = fnn_sin_cos_reduced(a, n, &c);
    uint64_t q = (uint32_t)(int32_t)n;
    double v = (q & 1) ? c : s;
    memcpy(&vb, &v, sizeof vb);
    vb ^= ((q & 2) << 62) ^ (xb & 0x8000000000000000ull);
    memcpy(&v, &vb, sizeof v);
    return v;
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
