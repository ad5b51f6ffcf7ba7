"""Transcendental functions that LLVM can vectorize, for float32 kernels (and sin/cos
for float64 too).

Without Intel's SVML, Numba lowers ``math.exp`` in a loop to one libm call per
element (~3 ns each here: 4M exps cost 12 ms). The float32 versions below are plain
arithmetic plus one bit cast, so loops over them compile to AVX2/AVX-512 code.
Accuracy: ``exp`` within 2 ulp up to 88.3 and 5.5 above (Cephes ``expf``; 0 below
float32's smallest normal); ``exp_nonpos`` for arguments <= 0 (no upper clamp);
``exp_core`` the same without the special cases, for
kernels that clamp its argument to -87.3 .. 88.72 (one compare and blend less per
element); ``tanh`` a few ulp (E / (E + 2) with E = expm1(2|x|), signed as x:
one exp, one division; the Cython backend's bits); ``log`` within 1.5 ulp
(``log1p`` within 2, down to the tiniest x: log(1 + x) corrected by the rounding of
1 + x, ``one_plus_err``);
``exp_nonpos_horner`` is ``exp_nonpos`` with its polynomial by Horner's rule and
``add_log1p_small(a, x)`` a + ``log1p_small(x)`` rounded once (one explicit fma): the
Cython backend's softplus, the same bits;
``gelu`` (x Phi(x)) within 1e-7 + 1 ulp (the Cython backend's formula);
``gelu_grad`` (Phi(x) + x phi(x)) with Phi within 3e-7 absolute from e**(-x*x/2), one
exp for Phi and the density (the Cython backend's formula).
float64 has versions of its own (glibc's are scalar calls; gradient checks need the
full precision): ``tanh`` (``_tanh64``, the float32 method with a degree-13 expm1)
within 4 ulp of glibc's, the exps (``_exp64`` and its variants on the same reduction)
within 1 ulp of the correctly rounded value down to the subnormals, ``log``/``log1p``
(``_log64``, ``_log1p64``, ``_log1p_small64``) within 1 and 1.13 ulp, ``gelu``
(``_gelu64``) within 4 ulp and within 1 below |x| = 0.4 (a series there), and
``gelu_grad`` (``_gelu_grad64``) within 6 ulp of its larger term, the left tail included
(tests/test_float64_exp.py, tests/test_float64_log_gelu.py); other types go to libm.
NaN propagates through each of them.

``sin_fast``/``cos_fast`` (float32 and float64) are branch-free and valid where
``trig_beyond(x)`` is False (|x| <= 2^20 in float32, 2^17 in float64; NaN is valid);
a loop calls them for a block, ORs ``trig_beyond`` over it and redoes a block that has
such an argument with ``sin``/``cos`` (libm beyond the range). Within 2 ulp. The
reductions are explicit fmas (``_fma``): with fastmath's reassoc LLVM would fold
x - n*C1 - n*C2 into x - n*(C1+C2). The same algorithm as the Cython backend's
``fnn_sinf``/``fnn_cosf``/``fnn_sin``/``fnn_cos`` in kernels/cython/_fastnn_math.h,
where it is described; ``sin_fast(-0)`` is -0.

Kernels call ``vmath.exp(x)`` etc.; the ``overload`` picks the version by type at
compile time.
"""
import math

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload, register_jitable

from .config import OPTIONS as _OPTIONS

_INV_SQRT2 = 1 / math.sqrt(2.0)


@intrinsic
def _float32_from_bits(typingctx, bits):
    """Reinterpret the low 32 bits of an integer as a float32 (no conversion)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        low = args[0]
        if bits.bitwidth > 32:
            low = builder.trunc(low, ir.IntType(32))
        return builder.bitcast(low, ir.FloatType())
    return types.float32(bits), codegen


@intrinsic
def _float_bits(typingctx, x):
    """The bits of a float32 or float64 as an int32 or int64 (no conversion)."""
    if x not in (types.float32, types.float64):
        return None
    width = x.bitwidth

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(width))
    return types.Integer.from_bitwidth(width)(x), codegen


@intrinsic
def _float64_from_bits(typingctx, bits):
    """Reinterpret a 64-bit integer as a float64 (no conversion)."""
    if not (isinstance(bits, types.Integer) and bits.bitwidth == 64):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(bits), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    """a * b + c with one rounding (llvm.fma: one instruction on FMA hardware)."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        ty = context.get_value_type(signature.return_type)
        fn = builder.module.declare_intrinsic("llvm.fma", [ty], ir.FunctionType(ty, [ty] * 3))
        return builder.call(fn, list(args))
    return a(a, b, c), codegen


def exp(x):
    """e**x (Python fallback; compiled code uses the overloads below)."""
    return math.exp(x)


def tanh(x):
    """tanh(x) (Python fallback)."""
    return math.tanh(x)


def log(x):
    """log(x) (Python fallback)."""
    return math.log(x)


def log1p(x):
    """log(1 + x) (Python fallback)."""
    return math.log1p(x)


def log1p_small(x):
    """log(1 + x) to full relative accuracy for 0 <= x <= 1 (Python fallback)."""
    return math.log1p(x)


def exp_nonpos_horner(x):
    """e**x for x <= 0 (Python fallback)."""
    return math.exp(x)


def add_log1p_small(a, x):
    """a + log(1 + x) for 0 <= x <= 1 (Python fallback)."""
    return a + math.log1p(x)


def one_plus_err(x, u):
    """(1 + x) - u exactly, for u = 1 + x as computed and |x| <= 1 (Python fallback):
    log(1 + x) is log(u) + one_plus_err(x, u) to within 6e-8 relative there (log1p's
    correction; float32 BCE's log1p(-p) where t = 0)."""
    return (1.0 - u) + x


def lerp_written(t, a, b):
    """t a + (1 - t) b, computed as written (Python fallback; see _lerp_written)."""
    return t * a + (1.0 - t) * b


def gelu(x):
    """x Phi(x), Phi the standard normal CDF (Python fallback)."""
    return 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))


def gelu_grad(x):
    """d/dx [x Phi(x)] = Phi(x) + x phi(x) (Python fallback)."""
    return (0.5 * math.erfc(-x * _INV_SQRT2)
            + x * math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi))


def exp_core(x):
    """e**x for -87.3 <= x <= 88.72, no special cases (Python fallback); callers clamp."""
    return math.exp(x)


def exp_nonpos(x):
    """e**x for x <= 0 (callers guarantee it; Python fallback)."""
    return math.exp(x)


def expm1_nonpos(x):
    """e**x - 1 for x <= 0, relatively accurate near 0 (Python fallback)."""
    return math.expm1(x)


def exp_limits(one):
    """(lo, hi): the range exp_core takes for one's float type, where e**lo is still
    normal and e**hi finite: (-87, 88) in float32, (-708, 709) in float64 (Python
    fallback: float64's)."""
    return -708.0, 709.0


def sin(x):
    """sin(x) for any x (Python fallback)."""
    return math.sin(x)


def cos(x):
    """cos(x) for any x (Python fallback)."""
    return math.cos(x)


def sin_fast(x):
    """sin(x) where not trig_beyond(x) (Python fallback)."""
    return math.sin(x)


def cos_fast(x):
    """cos(x) where not trig_beyond(x) (Python fallback)."""
    return math.cos(x)


def trig_beyond(x):
    """True where sin_fast/cos_fast are not valid (Python fallback)."""
    return abs(x) > (TRIG_MAX_F32 if isinstance(x, np.float32) else TRIG_MAX_F64)


_F = np.float32
_EXP_LO = _F(-87.33654)  # log(smallest normal float32)
_EXP_HI = _F(88.72283)   # log(largest float32)


_LOG2E = _F(1.44269504)
_LN2_1 = _F(0.693359375)       # ln2 in two parts (Cody-Waite): n * _LN2_1 is exact
_LN2_2 = _F(-2.12194440e-4)


#: Cephes expf's P, highest power first: e**r - 1 = r + r*r*P(r) for |r| <= ln2/2
_EXPM1_P32 = tuple(_F(c) for c in (
    1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
    5.0000001201e-1))


@register_jitable(**_OPTIONS)
def _expm1_reduced32(x):
    # x = n ln2 + r, |r| <= ln2/2; returns (e**r - 1, 2**n) with e**r - 1 = r + r*r*P(r)
    # (Cephes expf's polynomial). Needs -87.3 <= x <= 88.72 so that 2**n is a normal
    # float (n capped at 127; above 88.3 r runs up to ln2 and the result is within 5.5
    # ulp instead of 2: 5.33 at 88.72267, every float32 there checked); NaN passes
    # through. P by Horner here: out to r = ln2 Estrin's roundings put a point of a
    # 400k-point grid over the range at 5.05 ulp.
    n = min(np.rint(x * _LOG2E), _F(127.0))
    r = _exp_reduce32(x, n)
    return _horner(_EXPM1_P32, r) * (r * r) + r, _pow2_32(n)


@register_jitable(**_OPTIONS)
def _expm1_reduced_below88(x):
    """_expm1_reduced32 for -87.3 <= x <= 88.3, where n <= 127 without the cap (the
    arguments <= 0 of exp_nonpos and expm1_nonpos, tanh's |2x| <= 18): one min less
    per vector (float32 GELU backward's loop 52 -> 51 instructions on AVX2). P by
    Estrin (_estrin6: three dependent steps, Horner's five), the shorter chain that the
    loops around it wait on: in cache, 1 thread, softplus 1.33 -> 1.26 ns a value."""
    n = np.rint(x * _LOG2E)
    r = _exp_reduce32(x, n)
    return _estrin6(_EXPM1_P32, r) * (r * r) + r, _pow2_32(n)


@register_jitable(**_OPTIONS)
def _exp_reduce32(x, n):
    """r = x - n ln2 for n = rint(x / ln2) (or capped), as two explicit fmas: fastmath's
    reassoc would fold x - n*C1 - n*C2 back into x - n*ln2 and lose ~4 ulp."""
    r = _fma(-n, _LN2_1, x)
    return _fma(-n, _LN2_2, r)


@register_jitable(**_OPTIONS)
def _pow2_32(n):
    """2**n as a float32 for an integral float -126 <= n <= 127, from its bits."""
    return _float32_from_bits((np.int32(n) + 127) << 23)


@register_jitable(**_OPTIONS)
def _exp_core32(x):
    """e**x for -87.3 <= x <= 88.72 (callers clamp): no special cases."""
    q, scale = _expm1_reduced32(x)
    return (q + _F(1.0)) * scale


def _exp32(x):
    # about 1 ulp; 0 below float32's smallest normal, inf above its largest value
    y = _exp_core32(min(max(x, _EXP_LO), _EXP_HI))  # NaN stays NaN
    if x < _EXP_LO:
        y = _F(0.0)
    if x > _EXP_HI:
        y = _F(np.inf)
    return y


def _exp_nonpos32(x):
    # _exp32 without the upper clamps and their selects, for arguments <= 0 (-|z|,
    # -v*v/2): n <= 0 needs no cap either
    q, scale = _expm1_reduced_below88(max(x, _EXP_LO))  # NaN stays NaN
    y = (q + _F(1.0)) * scale
    return _F(0.0) if x < _EXP_LO else y


@register_jitable(**_OPTIONS)
def _exp_nonpos_horner32(x):
    """_exp_nonpos32 with P by Horner's rule, as the Cython backend's fnn_exp_nonpos_f
    (the same bits): softplus's first pass. Its two-pass loop keeps many vectors in
    flight, so it is bound by the FP pipes, not by the chain Estrin's form shortens (as
    GELU's, f82dd42); exp_nonpos keeps Estrin's for its other callers."""
    xc = max(x, _EXP_LO)  # NaN stays NaN
    n = np.rint(xc * _LOG2E)
    r = _exp_reduce32(xc, n)
    # e**r = r**2 P(r) + (r + 1) in one explicit fma, as fnn_expm1_reduced_f: what
    # LLVM formed under reassoc from (q + 1), and gcc under -fassociative-math (the
    # Cython backend's _activations now builds without it)
    y = _fma(_horner(_EXPM1_P32, r), r * r, r + _F(1.0)) * _pow2_32(n)
    return _F(0.0) if x < _EXP_LO else y


@register_jitable(**_OPTIONS)
def _horner(coeffs, x):
    """coeffs[0] x**k + coeffs[1] x**(k-1) + ... + coeffs[k] (a tuple of constants: the
    loop unrolls into k multiply-adds)."""
    p = coeffs[0]
    for i in range(1, len(coeffs)):
        p = p * x + coeffs[i]
    return p


@register_jitable(**_OPTIONS)
def _horner_on(p, coeffs, x):
    """p x**k + coeffs[0] x**(k-1) + ... + coeffs[k-1]: _horner's steps continued from p.
    A polynomial of more than about 16 terms goes in two (_horner, then this): as one
    loop LLVM kept it a loop over the tuple, and the float64 GELU loop scalar (64 ns a
    value against 4)."""
    for i in range(len(coeffs)):
        p = p * x + coeffs[i]
    return p


@register_jitable(**_OPTIONS)
def _estrin11(c, x):
    """The degree-10 polynomial c[0] x**10 + ... + c[10] (11 constants, highest first
    as in ``_horner``) by Estrin's scheme: four dependent steps instead of Horner's ten.
    Kernels built on these are latency-bound (each value's chain is longer than the
    out-of-order window covers), so the shorter chain is the speed: softplus
    1.68 -> 1.44 ns a value (1 thread, in cache, before its two passes)."""
    x2 = x * x
    x4 = x2 * x2
    q0 = (c[10] + c[9] * x) + (c[8] + c[7] * x) * x2
    q1 = (c[6] + c[5] * x) + (c[4] + c[3] * x) * x2
    q2 = (c[2] + c[1] * x) + c[0] * x2
    return (q0 + q1 * x4) + q2 * (x4 * x4)


@register_jitable(**_OPTIONS)
def _estrin6(c, x):
    """The degree-5 polynomial c[0] x**5 + ... + c[5] by Estrin's scheme (see _estrin11)."""
    x2 = x * x
    return (c[5] + c[4] * x) + (c[3] + c[2] * x) * x2 + (c[1] + c[0] * x) * (x2 * x2)


@register_jitable(**_OPTIONS)
def _estrin8(c, x):
    """The degree-7 polynomial c[0] x**7 + ... + c[7] by Estrin's scheme (see _estrin11):
    three dependent steps instead of Horner's seven."""
    x2 = x * x
    return (((c[7] + c[6] * x) + (c[5] + c[4] * x) * x2)
            + ((c[3] + c[2] * x) + (c[1] + c[0] * x) * x2) * (x2 * x2))


# log1p(f) = f - f*f/2 + f**3 P(f) on f in [sqrt(1/2) - 1, sqrt(2) - 1]: the Cython
# backend's fnn_logf, where the fit is described
_LOG1P_P = tuple(_F(c) for c in (
    -7.634429634e-02, 1.276154965e-01, -1.316019446e-01, 1.420176178e-01, -1.662335694e-01,
    2.000122666e-01, -2.500082254e-01, 3.333333135e-01))
_TINY = _F(1.17549435e-38)  # float32's smallest normal
# the bits of sqrt(1/2) rounded up: m = 2**-e x in [sqrt(1/2), sqrt(2)) is the mantissa
# of x + (1.0 - this) with its exponent replaced by this one's (as _log_split64)
_SQRT_HALF_BITS32 = 0x3F3504F4
_ONE_MINUS_SQRT_HALF = 0x3F800000 - _SQRT_HALF_BITS32  # (bits)


def _log_bits32_ir(builder, x):
    """The bits of float32 x plus (1.0 - sqrt(1/2))'s, as an i32 (wrapping)."""
    i32 = ir.IntType(32)
    return builder.add(builder.bitcast(x, i32), ir.Constant(i32, _ONE_MINUS_SQRT_HALF))


@intrinsic
def _log_mantissa32(typingctx, x):
    """m = 2**-e x in [sqrt(1/2), sqrt(2)) for a positive normal float32 x: the
    mantissa of _log_bits32_ir under sqrt(1/2)'s exponent. In 32-bit integers: Numba
    types int32 arithmetic as int64, and the float32 BCE loop widened every vector of
    bits to two of int64 lanes and back (about 14 instructions a vector of 16 values)."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        bits = _log_bits32_ir(builder, args[0])
        m = builder.add(builder.and_(bits, ir.Constant(i32, 0x007FFFFF)),
                        ir.Constant(i32, _SQRT_HALF_BITS32))
        return builder.bitcast(m, ir.FloatType())
    return types.float32(x), codegen


@intrinsic
def _log_exponent32(typingctx, x):
    """e of _log_mantissa32's x = 2**e m, as a float32 (an int32 -> float conversion)."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        bits = _log_bits32_ir(builder, args[0])
        e = builder.and_(builder.lshr(bits, ir.Constant(i32, 23)), ir.Constant(i32, 0x1FF))
        e = builder.sub(e, ir.Constant(i32, 127))
        return builder.sitofp(e, ir.FloatType())
    return types.float32(x), codegen


@register_jitable(**_OPTIONS)
def _log32(x):
    # x = 2**e m, m in [sqrt(1/2), sqrt(2)) from the bits (subnormals scaled by 2**23
    # first); within 1.5 ulp (0.9 in C); log(0) = -inf, log(x < 0) = NaN, inf and NaN pass through
    # (the split by an integer add, not a compare and two selects on [1, 2), and the
    # polynomial by Estrin, not Horner: each value's chain is shorter, which is the
    # speed of a loop around it: float32 BCE on 16M values, one thread, 35.7 -> 30.5 ms)
    tiny = x < _TINY
    xs = x * _F(8388608.0) if tiny else x
    m = _log_mantissa32(xs)
    e = _log_exponent32(xs) - (_F(23.0) if tiny else _F(0.0))
    f = m - _F(1.0)
    p = _estrin8(_LOG1P_P, f)
    f2 = f * f
    y = _fma(f2 * f, p, _fma(_F(-0.5), f2, e * _LN2_2))
    y = _fma(e, _LN2_1, y + f)
    if not x < _F(np.inf):
        y = x  # inf, NaN
    if not x > _F(0.0):
        y = _F(-np.inf) if x == _F(0.0) else _F(np.nan)
    return y


def _sum_err_ir(builder, a, b, s):
    """(a - s) + b, its two operations without reassoc: the rounding error of s = a + b
    as computed, exactly, where |a| >= |b| (Fast2Sum). Numba's fastmath pass gives its
    flags only to float operations that have none, so these carry nsz alone: under
    reassoc LLVM folds (1 - (1 + x)) + x to 0, written as plain arithmetic or with an
    fma (which gets the flags as a call)."""
    d = builder.fsub(a, s, flags=("nsz",))
    return builder.fadd(d, b, flags=("nsz",))


@intrinsic
def _sum_err(typingctx, a, b, s):
    """(a + b) - s exactly, for s = a + b rounded and |a| >= |b| (_sum_err_ir)."""
    if not (isinstance(a, types.Float) and a == b == s):
        return None

    def codegen(context, builder, signature, args):
        return _sum_err_ir(builder, *args)
    return a(a, b, s), codegen


@intrinsic
def _one_plus_err_exact(typingctx, x, u):
    """(1 - u) + x (_sum_err_ir): exact for u = 1 + x rounded, |x| <= 1 (1 - u is
    exact for u in [0, 2], Sterbenz)."""
    if not (isinstance(x, types.Float) and x == u):
        return None

    def codegen(context, builder, signature, args):
        xv, uv = args
        return _sum_err_ir(builder, ir.Constant(xv.type, 1.0), xv, uv)
    return x(x, u), codegen


@intrinsic
def _lerp_written(typingctx, t, a, b):
    """t a + (1 - t) b in the written order: its operations carry nsz and contract alone
    (numba's fastmath pass flags only those with none). Under reassoc LLVM regrouped BCE's
    t log p + (1 - t) log(1 - p) as t (log p - log(1 - p)) + log(1 - p), which at t = 1
    and p = 1 - 2^-24 is (-6e-8 - 16.6) + 16.6 = 0 for PyTorch's 6e-8."""
    if not (isinstance(t, types.Float) and t == a == b):
        return None

    def codegen(context, builder, signature, args):
        tv, av, bv = args
        flags = ("nsz", "contract")   # an fma, not a regrouping
        s = builder.fsub(ir.Constant(tv.type, 1.0), tv, flags=flags)
        return builder.fadd(builder.fmul(tv, av, flags=flags),
                            builder.fmul(s, bv, flags=flags), flags=flags)
    return t(t, a, b), codegen


@overload(lerp_written, jit_options=_OPTIONS, inline="always")
def _lerp_written_overload(t, a, b):
    if isinstance(t, types.Float) and t == a == b:
        return lambda t, a, b: _lerp_written(t, a, b)
    return None


def _log1p32(x):
    # log(1 + x) = log(u) + err / u for u = 1 + x rounded and err = (1 + x) - u: with
    # err for err / u where |x| <= 1 (below 6e-8 relative), dropped beyond (err / u <
    # 2^-24 there). Full relative accuracy near 0: log(1 - 1e-20) is -1e-20 where
    # _log32(1 - 1e-20) is 0 (BCE's log(1 - p) for a confident p = 1e-7 was 1.19e-7
    # against PyTorch's 1.0e-7). No division (the Cython backend's fnn_log1pf).
    u = _F(1.0) + x
    err = _one_plus_err_exact(x, u)
    return _log32(u) + (err if abs(x) <= _F(1.0) else _F(0.0))


def _log1p_small32(x):
    # log1p to ~2 ulp for 0 <= x <= 1, no log, no division and no select: x Q(x) with
    # Q ~ log1p(x) / x of degree 10 (fitted for this file: Lawson-reweighted least
    # squares for relative error on Chebyshev nodes of [0, 1], 7e-10 before float32
    # rounding). Softplus 0.47 -> 0.37 ns a value (1 thread, in cache) against the
    # 2 atanh(x / (2 + x)) series it replaced, whose division bound the loop.
    return x * _estrin11(_LOG1P_SMALL_Q, x)


@register_jitable(**_OPTIONS)
def _add_log1p_small32(a, x):
    """a + log1p(x) for 0 <= x <= 1 as a + x Q(x) in one explicit fma (the sum rounded
    once), Q by Horner's rule: the Cython backend's (max(z, 0) + f_log1p_small(e) in
    softplus, which gcc fuses), the same bits. Left to contraction, max(z, 0) + x Q(x)
    rounded twice in a vector loop and once in its scalar remainder: LLVM turned the
    add of the select max(z, 0) into a masked add (vmulps, then vaddps {k}) in the
    512-bit body, which no longer fuses with the product, and into vmaxss and
    vfmadd231ss in the remainder, so a value's bits depended on its place in the tile
    (40 of 2000 float32 values an ulp off one-value calls)."""
    return _fma(x, _horner(_LOG1P_SMALL_Q, x), a)


_LOG1P_SMALL_Q = tuple(_F(c) for c in (
    0.002030215924605727, -0.013407406397163868, 0.04147797450423241,
    -0.08244146406650543, 0.12418416887521744, -0.16105683147907257,
    0.19890746474266052, -0.24987269937992096, 0.33332559466362,
    -0.4999998211860657, 1.0))


def _tanh32(x):
    # tanh|x| = E / (E + 2) with E = e**2|x| - 1: one expm1, one division, and no
    # cancellation near 0 (E = 2**n (e**r - 1) + (2**n - 1) is exact in its leading term
    # when n = 0; the explicit fma keeps reassoc from regrouping it as
    # (scale q + scale) - 1), signed as x: tanh(-0) is -0 (E from x itself gave +0 there,
    # the reduction's -0 + +0). |x| is clamped at 9, where E / (E + 2) rounds to 1
    # (tanh 9 = 1 - 3e-8); vminps keeps a NaN. The Cython backend's fnn_tanhf in its
    # order of operations (Horner's polynomial, not _expm1_reduced_below88's Estrin
    # form), which selects 1 above 9 instead: the same bits for all 2**32 float32 inputs
    # (tests/test_signed_zeros.py samples them); the select was 4% slower here than the
    # clamp. 0.34 -> 0.35 ns a value (1 thread, in cache) against the signed form: the
    # abs and the copysign.
    a = min(abs(x), _F(9.0))
    t = a + a
    n = np.rint(t * _LOG2E)
    r = _exp_reduce32(t, n)
    q = _horner(_EXPM1_P32, r) * (r * r) + r
    scale = _pow2_32(n)
    e = _fma(scale, q, scale - _F(1.0))
    return np.copysign(e / (e + _F(2.0)), x)


_LOG2E_64 = 1.4426950408889634
_LN2_HI_64 = 6.93147180369123816490e-01   # ln2's first 32 bits (fdlibm's ln2_hi)
_LN2_LO_64 = 1.90821492927058770002e-10   # ln2 - _LN2_HI_64
#: 1/13!, 1/12!, ..., 1/2!: e**r - 1 = r + r*r*P(r) to 1e-17 relative for |r| <= ln2/2
#: (Taylor's remainder r**14/14! there is 4e-18)
_EXPM1_TAYLOR_64 = tuple(1.0 / math.factorial(k) for k in range(13, 1, -1))


@register_jitable(**_OPTIONS)
def _expm1_reduced64(t):
    # t = n ln2 + r, |r| <= ln2/2 (two explicit fmas, as in _expm1_reduced32); returns
    # (e**r - 1, n) with e**r - 1 = r + r*r*P(r), P Taylor's; NaN passes (into q).
    # Needs |t| <= 2**21 ln2. The Cython backend's fnn_expm1_reduced.
    n = np.rint(t * _LOG2E_64)
    r = _fma(-n, _LN2_HI_64, t)
    r = _fma(-n, _LN2_LO_64, r)
    return _horner(_EXPM1_TAYLOR_64, r) * (r * r) + r, n


@register_jitable(**_OPTIONS)
def _pow2i64(n):
    """2**n for an integer-valued float64 -1022 <= n <= 1023, from the bits of
    n + 1.5 * 2**52, whose low bits are n (two's complement): AVX2 has no packed
    float64 -> int64 conversion, and np.int64(n) made LLVM convert lane by lane (the
    Cython backend's fnn_pow2i)."""
    return _float64_from_bits((_float_bits(n + 6755399441055744.0) + 1023) << 52)


@register_jitable(**_OPTIONS)
def _tanh64(x):
    # The float32 method in double: tanh|x| = E / (E + 2), E = e**2|x| - 1 =
    # 2**n (e**r - 1) + (2**n - 1) (_expm1_reduced64), signed as x (tanh(-0) is -0).
    # |x| > 20 gives +-1 (tanh 20 = 1 - 8e-18), |x| < 2**-26 gives x; NaN passes (the
    # clamp's compare is false for it). Within 4 ulp of glibc's tanh, a scalar call
    # (28 ns a value here, 1.5x the time of NumPy's SIMD tanh). The same algorithm as
    # the Cython backend's fnn_tanh.
    a = abs(x)
    a = 20.0 if a > 20.0 else a
    q, n = _expm1_reduced64(a + a)
    scale = _pow2i64(n)
    e = _fma(scale, q, scale - 1.0)
    # below 2**-26 tanh|x| rounds to |x|, where e + 2 would drop e's 2|x|**2
    y = a if a < 1.4901161193847656e-08 else e / (e + 2.0)
    return np.copysign(y, x)


@register_jitable(**_OPTIONS)
def _exp_split64(x, cap, scale):
    # scale e**x as fma(s1, q, s1) * s2, s1 = scale 2**clamp(n, -1000, 1023), 2**n =
    # s1 s2 / scale: one rounding where n >= -1000, a second (to the subnormal grid)
    # below; x clamped at -800 (scale e**x rounds to 0 for |scale| < 2**78) and, with
    # cap, at 709.79 (inf): no selects. Within 1 ulp of the correctly rounded value
    # (scale 1); the Cython backend's fnn_exp_core, where it is described. glibc's exp
    # is a scalar call that kept the float64 loops unvectorized.
    c = -800.0 if x < -800.0 else x       # NaN stays NaN
    if cap:
        c = 709.79 if c > 709.79 else c
    q, n = _expm1_reduced64(c)
    n1 = -1000.0 if n < -1000.0 else n
    if cap:
        n1 = 1023.0 if n1 > 1023.0 else n1
    s1 = scale * _pow2i64(n1)
    return _fma(s1, q, s1) * _pow2i64(n - n1)


@register_jitable(**_OPTIONS)
def _exp64(x):
    return _exp_split64(x, True, 1.0)


@register_jitable(**_OPTIONS)
def _exp_nonpos64(x):
    # for x <= 709 (its callers' are <= 0) or NaN: no upper clamp
    return _exp_split64(x, False, 1.0)


@register_jitable(**_OPTIONS)
def _exp_core64(x):
    """e**x for -708 <= x <= 709 (exp_limits: callers clamp): 2**n normal, one scale."""
    q, n = _expm1_reduced64(x)
    scale = _pow2i64(n)
    return _fma(scale, q, scale)


@register_jitable(**_OPTIONS)
def _expm1_nonpos64(x):
    # 2**n (e**r - 1) + (2**n - 1) for x <= 0, x clamped at -40 (e**x - 1 rounds to -1
    # there); signed as x: the reduction makes -0 into +0, where ELU keeps -0
    q, n = _expm1_reduced64(-40.0 if x < -40.0 else x)
    scale = _pow2i64(n)
    return np.copysign(_fma(scale, q, scale - 1.0), x)


_SQRT_HALF_BITS = 0x3FE6A09E667F3BCD   # the bits of sqrt(1/2) rounded down
#: log1p(f) = 2 atanh(s) = f - s (f - z Q(z)), s = f / (2 + f), z = s*s <= 0.0295: Q
#: ~ 2/3 + 2z/5 + 2z**2/7 + ... of degree 6 (highest first), the Cython backend's
#: fnn_log_reduced, where the fit is described
_LOG_Q64 = (0.146197699976859, 0.15331449513690837, 0.18182897434294676,
            0.22222211018704668, 0.2857142862670216, 0.39999999999897856,
            0.666666666666667)


@register_jitable(**_OPTIONS)
def _log_split64(u):
    """(e, m, 2**-e) for u = 2**e m, m in [sqrt(1/2), sqrt(2)), u positive, normal and
    finite: e from the bits, to float64 through int32 (AVX2 converts int32 lanes, not
    int64), 2**-e from the integer (0 for e = 1023, 1024): the Cython backend's
    fnn_log_split, where the reasons are."""
    t = _float_bits(u) + (0x3FF0000000000000 - _SQRT_HALF_BITS)
    biased = (t >> 52) & 0xFFF                          # 0 .. 2047: e + 1023
    m = _float64_from_bits((t & 0x000FFFFFFFFFFFFF) + _SQRT_HALF_BITS)
    neg = 2046 - biased                                 # 1023 - e
    return (np.float64(np.int32(biased) - np.int32(1023)), m,
            _float64_from_bits((0 if neg < 0 else neg) << 52))


@register_jitable(**_OPTIONS)
def _log_reduced64(e, f):
    """e ln2 + log1p(f) for an integer-valued e and f in [sqrt(1/2) - 1, sqrt(2) - 1]:
    the Cython backend's fnn_log_reduced."""
    s = f / (2.0 + f)
    z = s * s
    r = z * _horner(_LOG_Q64, z)
    # explicit fmas: reassoc regrouped e ln2_hi + (f - (s (f - r) - e ln2_lo)) into
    # e (ln2_hi + ln2_lo) + ..., which rounds e ln2 (1.8 ulp where log x is near 1)
    return _fma(e, _LN2_HI_64, f - _fma(s, f - r, -(e * _LN2_LO_64)))


@register_jitable(**_OPTIONS)
def _log64(x):
    # subnormals scaled by 2**54 first; log(0) = -inf, log(x < 0) = NaN, inf and NaN
    # pass. Within 1 ulp (tests/test_float64_log_gelu.py).
    tiny = x < 2.2250738585072014e-308
    e, m, _ = _log_split64(x * 18014398509481984.0 if tiny else x)
    y = _log_reduced64(e - (54.0 if tiny else 0.0), m - 1.0)
    y = y if x < np.inf else x                          # inf, NaN
    if not x > 0.0:
        y = -np.inf if x == 0.0 else np.nan
    return y


@register_jitable(**_OPTIONS)
def _log1p_from64(u, err):
    """log(u + err) for u = 1 + x rounded (u >= 2**-53 finite) and err its rounding
    error: f = m - 1 + err 2**-e is x itself where e = 0 (full relative accuracy near 0)."""
    e, m, inv_scale = _log_split64(u)
    # an explicit fma: reassociated, (m - 1) + err 2**-e can become (m + err 2**-e) - 1,
    # which drops err (gcc does so in the Cython backend's)
    return _log_reduced64(e, _fma(err, inv_scale, m - 1.0))


@register_jitable(**_OPTIONS)
def _log1p64(x):
    # log(1 + x) within 1 ulp; the error of u = 1 + x exact by Fast2Sum of max(x, 1)
    # and min(x, 1); log1p(-1) = -inf, below NaN; inf and NaN pass; signed as x
    # (log1p(-0) = -0)
    u = 1.0 + x
    y = _log1p_from64(u, _sum_err(max(x, 1.0), min(x, 1.0), u))
    y = y if u < np.inf else u                          # inf, NaN
    if not x > -1.0:
        y = -np.inf if x == -1.0 else np.nan
    return np.copysign(y, x)


@register_jitable(**_OPTIONS)
def _log1p_small64(x):
    # log(1 + x) for 0 <= x <= 1 (softplus's log1p(e**-|z|)), without _log1p64's
    # special cases; NaN passes
    u = 1.0 + x
    return _log1p_from64(u, _one_plus_err_exact(x, u))


@register_jitable(**_OPTIONS)
def _phi_with_gauss32(x, gauss):
    # Phi(-|x|) = erfc(a) / 2 at a = |x| / sqrt2, erfc(a) = t P(t) e**(-a*a) with
    # t = 1 / (1 + 0.4 a): the form of Abramowitz & Stegun 7.1.26 with one more term,
    # fitted so that |error of erfc| (1 + |x|) < 6e-8 (the Cython backend's
    # fnn_phi_gauss_f, where the fit is described); Phi(x) within 3e-7 absolute.
    t = _F(1.0) / (_F(1.0) + _F(0.4 * _INV_SQRT2) * abs(x))
    p = _F(-0.20266447961330414)
    p = p * t + _F(0.7190840244293213)
    p = p * t + _F(-0.3872245252132416)
    p = p * t + _F(0.4815819561481476)
    p = p * t + _F(0.1564340740442276)
    p = p * t + _F(0.23278889060020447)
    lower = _F(0.5) * p * t * gauss
    return lower if x < _F(0.0) else _F(1.0) - lower


#: Phi(-u) e**(u*u/2) (u + 5) ~ P(t), t = (u - 5) / (u + 5), of degree 22 on u in
#: [0, 40] (highest first): the Cython backend's fnn_phi_lower_parts, where the fit is
#: described
_MILLS_P64 = (
    -3.226519943291505e-10, 1.38202650428851e-09, 7.964774611771557e-09,
    -8.15098334613302e-09, -6.597958674406453e-08, 4.0704218695965814e-08,
    4.328032247806487e-07, -3.3541706730244235e-07, -2.768882247264133e-06,
    3.980334751319876e-06, 1.6681008207379443e-05, -4.97626418073607e-05,
    -5.937566559989966e-05, 0.0005448990312220193, -0.0007978694095330904,
    -0.002993376766485708, 0.020795066800980613, -0.06911863870658273,
    0.1650203661703307, -0.31353315667129583, 0.4953056159699774,
    -0.6653825028900567, 0.769193049750063)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


@register_jitable(**_OPTIONS)
def _phi_lower_parts64(x):
    # (v, w, g, c): v = x clamped to [-40, 40] (Phi(-40) = 0 in float64), Phi(-|v|) =
    # e**w g and the density phi(v) = e**w c, w = -h/2 for h = v*v rounded; g and c
    # carry the factor e**(-l/2) = 1 - l/2 of h's rounding l = v*v - h (an fma), so that
    # the tail keeps its relative accuracy (e**(-v*v/2) of a rounded v*v is off by up to
    # 2e-13 there). The Cython backend's fnn_phi_lower_parts, where the fit is described.
    v = -40.0 if x < -40.0 else x                      # NaN stays NaN
    v = 40.0 if v > 40.0 else v
    u = abs(v)
    h = u * u
    tail = 1.0 - 0.5 * _fma(u, u, -h)
    r = 1.0 / (u + 5.0)
    t = (u - 5.0) * r
    g = _horner_on(_horner(_MILLS_P64[:12], t), _MILLS_P64[12:], t) * r
    return v, -0.5 * h, g * tail, _INV_SQRT_2PI * tail


#: (Phi(x) - 1/2) / x = sum of (-1)**k z**k / (2**k k! (2k + 1)) / sqrt(2 pi) over
#: k = 9 ... 0 (highest first), z = x*x: Taylor's, its remainder below 2**-60 of
#: x Phi(x) for |x| < 0.4 (mpmath at 40 digits); the Cython backend's fnn_gelu_small
_PHI_ODD64 = (
    -1.1301171641619213e-10, 2.2735298243728065e-09, -4.122667414862689e-08,
    6.659693516316651e-07, -9.444656259503615e-06, 0.00011543468761615529,
    -0.0011873282154804543, 0.009973557010035817, -0.06649038006690544,
    0.3989422804014327)
_GELU_SMALL64 = 0.4


@register_jitable(**_OPTIONS)
def _gelu_small64(x):
    # x Phi(x) = x (1/2 + x S(x*x)) for |x| < 0.4, where Phi(-|x|) from the exp and
    # the Mills ratio is off by up to 6 of its ulps (x S is under a third of 1/2 there:
    # within 1 ulp). Signed as x: -0 at -0.
    return x * (0.5 + x * _horner(_PHI_ODD64, x * x))


@register_jitable(**_OPTIONS)
def _gelu64(x):
    # x Phi(x): e**w (v g) below 0 (the exp's own scaling, no product after it to
    # round a second time where the result is subnormal), x (1 - e**w g) above, the
    # series near 0; inf at inf, NaN at -inf and NaN (PyTorch's)
    v, w, g, _ = _phi_lower_parts64(x)
    lower = _exp_split64(w, False, v * g if x < 0.0 else g)
    y = lower if x < 0.0 else x * (1.0 - lower)
    y = _gelu_small64(x) if abs(x) < _GELU_SMALL64 else y
    return y if x > -np.inf else np.nan


@register_jitable(**_OPTIONS)
def _gelu_grad64(x):
    # Phi(x) + x phi(x) = [x >= 0] + e**w (v c -+ g); NaN at +-inf, +0 where the
    # (negative) value rounds to 0, below -38.67 (PyTorch's 0 + -0; nsz drops our + 0)
    v, w, g, c = _phi_lower_parts64(x)
    # v c -+ g as one explicit fma, as the Cython backend's fnn_gelu_grad (whose gcc
    # fused it in a loop's remainder only)
    y = _exp_split64(w, False, _fma(v, c, g if x < 0.0 else -g))
    y = y + (0.0 if x < 0.0 else 1.0)
    y = 0.0 if x < -38.674766957173425 else y
    return y if abs(x) < np.inf else np.nan


def _gelu_grad32(x):
    # Phi(x) + x phi(x), one exp for both (_phi_with_gauss32)
    e = exp_nonpos(_F(-0.5) * x * x)
    return _phi_with_gauss32(x, e) + x * e * _F(_INV_SQRT_2PI)


# Phi(-u) = 2**P(u) on [0, 5.6], P of degree 10 in u - 1 (~log2 Phi(-u)), 2**r of
# degree 5: the Cython backend's fnn_phi_lower_f, where the fit is described. No
# division and no Gaussian: GELU's forward ran 0.57 -> 0.47 ns per value (1 thread, in
# cache) against _phi_with_gauss32 with its exp. Both polynomials by Horner's rule, in
# the Cython backend's order (the same bits there): the two-pass kernel keeps many
# values in flight, so it is bound by the FP pipes, not by the chain that Estrin's form
# shortens, and Horner's has fewer operations and no register copies (AMD EPYC, AVX-512,
# 1 thread, 32767 values in cache, CPU time: 0.51 -> 0.43 ns a value).
_PHI_LOWER_LOG2 = tuple(_F(c) for c in (
    -1.653284087e-08, 3.642024069e-07, -3.242114644e-06, 1.267593598e-05,
    1.703953785e-05, -5.801857915e-04, 4.754908383e-03, -2.811893634e-02,
    -5.777262449e-01, -2.200304747e+00, -2.656033039e+00))
_EXP2_REDUCED = tuple(_F(c) for c in (
    1.327646663e-03, 9.675540961e-03, 5.550713465e-02, 2.402212024e-01, 6.931469440e-01,
    1.000000119e+00))
_PHI_CUT = _F(5.6)


@register_jitable(**_OPTIONS)
def _phi_lower_log2_32(u):
    """log2 Phi(-u) for u >= 0, u taken as 5.6 beyond it: the first half of Phi(-u),
    whose second is _phi_lower_from_log2_32."""
    return _horner(_PHI_LOWER_LOG2, min(u, _PHI_CUT) - _F(1.0))  # in [-26.5, -1]


@register_jitable(**_OPTIONS)
def _phi_lower_from_log2_32(u, p):
    """Phi(-u) for u >= 0 given p = _phi_lower_log2_32(u): 2**p; 0 beyond 5.6
    (Phi(-5.6) = 1e-8; PyTorch's float32 1 + erf is 0)."""
    n = np.rint(p)              # 2**n is a normal float
    q = _horner(_EXP2_REDUCED, p - n)
    lower = q * _float32_from_bits((np.int32(n) + 127) << 23)
    return _F(0.0) if u > _PHI_CUT else lower


@register_jitable(**_OPTIONS)
def _gelu_tail32(x, p):
    lower = _phi_lower_from_log2_32(abs(x), p)
    return x * (lower if x < _F(0.0) else _F(1.0) - lower)  # NaN stays NaN


def _gelu32(x):
    return _gelu_tail32(x, _phi_lower_log2_32(abs(x)))


def gelu_head(x):
    """The first half of gelu(x), for kernels that run it in two passes over a tile
    (each half's dependency chain then fits the out-of-order window): in float32
    log2 Phi(-|x|), in float64 gelu(x) itself (Python fallback)."""
    return gelu(x)


def gelu_tail(x, head):
    """gelu(x) given head = gelu_head(x) (Python fallback)."""
    return head


@overload(gelu_head, jit_options=_OPTIONS)
def _gelu_head_overload(x):
    if x == types.float32:
        return lambda x: _phi_lower_log2_32(abs(x))
    return lambda x: gelu(x)


@overload(gelu_tail, jit_options=_OPTIONS)
def _gelu_tail_overload(x, head):
    if x == types.float32:
        return lambda x, head: _gelu_tail32(x, head)
    return lambda x, head: head


def _expm1_nonpos32(x):
    # 2**n (e**r - 1) + (2**n - 1): exact in its leading term where n = 0, so full
    # relative accuracy near 0 (exp(x) - 1 flushed x > -3e-8 to 0); -1 below -87.3;
    # NaN passes. The explicit fma keeps fastmath from regrouping it as
    # (scale q + scale) - 1, which cancels near 0 (as fnn_tanhf's in the Cython header).
    q, scale = _expm1_reduced_below88(max(x, _EXP_LO))
    e = _fma(scale, q, scale - _F(1.0))
    return _F(-1.0) if x < _EXP_LO else e


def _fast(fn, fast32, libm, fast64=None, inline="never"):
    """Compile ``fn(x)`` as ``fast32`` for float32 arguments, ``fast64`` (where given) for
    float64 ones, and ``libm`` for others."""
    def typer(x):
        if x == types.float32:
            return fast32
        return fast64 if fast64 is not None and x == types.float64 else libm
    overload(fn, jit_options=_OPTIONS, inline=inline)(typer)


# float64 exp too: glibc's is a scalar call (float64 sigmoid 2.2x PyTorch's time)
_fast(exp, _exp32, lambda x: math.exp(x), _exp64)
_fast(exp_core, _exp_core32, lambda x: math.exp(x), _exp_core64)
_fast(exp_nonpos, _exp_nonpos32, lambda x: math.exp(x), _exp_nonpos64)
_fast(expm1_nonpos, _expm1_nonpos32, lambda x: math.expm1(x), _expm1_nonpos64)
# (and float64 tanh too: glibc's is a scalar call 1.5x slower than NumPy's SIMD one)
_fast(tanh, _tanh32, lambda x: math.tanh(x), _tanh64)
# float64 log and log1p too: glibc's are scalar calls (float64 softplus 1.6x PyTorch's
# time, 26 ns a value in log1p)
_fast(log, _log32, lambda x: math.log(x), _log64)
_fast(log1p, _log1p32, lambda x: math.log1p(x), _log1p64)
# inlined in numba's IR: as a call LLVM kept it out of line and the loop scalar (7 ns a
# value against 0.65 ns)
_fast(log1p_small, _log1p_small32, lambda x: math.log1p(x), _log1p_small64,
      inline="always")
# float64 GELU and its slope too: glibc's erf and erfc are scalar calls (1.5-1.8x
# PyTorch's time), and 1 + erf loses the relative accuracy of the left tail
_fast(gelu, _gelu32, lambda x: 0.5 * x * math.erfc(-x * _INV_SQRT2), _gelu64)
_fast(gelu_grad, _gelu_grad32,
      lambda x: (0.5 * math.erfc(-x * _INV_SQRT2)
                 + x * _INV_SQRT_2PI * math.exp(-0.5 * x * x)),
      _gelu_grad64)


_fast(exp_nonpos_horner, _exp_nonpos_horner32, lambda x: math.exp(x), _exp_nonpos64)


@overload(add_log1p_small, jit_options=_OPTIONS, inline="always")
def _add_log1p_small_overload(a, x):
    if a == x == types.float32:
        return lambda a, x: _add_log1p_small32(a, x)
    if a == x == types.float64:   # its log1p ends in an fma: nothing to contract
        return lambda a, x: a + _log1p_small64(x)
    return None


@overload(one_plus_err, jit_options=_OPTIONS, inline="always")
def _one_plus_err_overload(x, u):
    if isinstance(x, types.Float) and x == u:
        return lambda x, u: _one_plus_err_exact(x, u)
    return None


@overload(exp_limits, jit_options=_OPTIONS, inline="always")
def _exp_limits_overload(one):
    if one == types.float32:
        return lambda one: (_F(-87.0), _F(88.0))
    return lambda one: (-708.0, 709.0)


# ---------------------------------------------------------------- row maximum
@register_jitable(inline="always", **_OPTIONS)
def row_max(r):
    """Largest value of a 1-D array (-inf when empty; a NaN is skipped here and
    propagates through exp(x - max) later). Eight independent running maxima: a
    single max(m, x) chain does not vectorize without fastmath's nnan and runs at
    one element per compare latency (4096x1000 rows: 2.1 ms against 0.6 ms)."""
    c = r.shape[0]
    if c == 0:
        return r.dtype.type(-np.inf)
    if c <= 32:
        # a short row (10 classes) in one chain: the eight maxima and their merge cost
        # 20 ns a row there (softmax-CE 128x10 6.7 -> 4.1 us; level at 32 columns)
        m = r[0]
        for k in range(1, c):
            m = r[k] if r[k] > m else m
        return m
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = r[0]
    j = 0
    while j + 8 <= c:
        v = r[j:j + 8]
        m0 = v[0] if v[0] > m0 else m0
        m1 = v[1] if v[1] > m1 else m1
        m2 = v[2] if v[2] > m2 else m2
        m3 = v[3] if v[3] > m3 else m3
        m4 = v[4] if v[4] > m4 else m4
        m5 = v[5] if v[5] > m5 else m5
        m6 = v[6] if v[6] > m6 else m6
        m7 = v[7] if v[7] > m7 else m7
        j += 8
    m01 = m1 if m1 > m0 else m0
    m23 = m3 if m3 > m2 else m2
    m45 = m5 if m5 > m4 else m4
    m67 = m7 if m7 > m6 else m6
    m03 = m23 if m23 > m01 else m01
    m47 = m67 if m67 > m45 else m45
    m = m47 if m47 > m03 else m03
    for k in range(j, c):
        m = r[k] if r[k] > m else m
    return m


# ---------------------------------------------------------------- sin and cos
TRIG_MAX_F32 = 1048576.0   # 2**20
TRIG_MAX_F64 = 131072.0    # 2**17
_TRIG_MAX_32 = _F(TRIG_MAX_F32)
_PI_1 = _F(3.1415927410e+00)      # pi rounded to float32
_PI_2 = _F(-8.7422776573e-08)     # pi - _PI_1, rounded
_PI_3 = _F(-3.4302490200e-15)     # pi - _PI_1 - _PI_2, rounded
_INV_PI = _F(0.318309886183790672)
_PIO2_1 = 1.57079632673412561417e+00    # pi/2, first 33 bits
_PIO2_2 = 6.07710050630396597660e-11    # next 33 bits
_PIO2_3 = 2.02226624871116645580e-21    # next 33 bits
_PIO2_3T = 8.47842766036889956997e-32   # pi/2 - P1 - P2 - P3


_SIGN32 = np.int32(-0x80000000)
_SIGN64 = np.int64(-0x8000000000000000)


@register_jitable(**_OPTIONS)
def _sin_poly32(r):
    # sin r for |r| <= pi/2: degree-9 odd minimax polynomial (relative 6e-9).
    z = r * r
    p = _F(2.60578212873952e-06)
    p = p * z - _F(1.98096036911010742e-04)
    p = p * z + _F(8.33306647837162018e-03)
    p = p * z - _F(1.66666597127914429e-01)
    return p * z * r + r


@register_jitable(**_OPTIONS)
def _cos32(x):
    # cos x: x = (k + 1/2) pi + r, |r| <= pi/2, and cos x = (-1)**(k + 1) sin r.
    k = np.rint(x * _INV_PI - _F(0.5))
    m = k + _F(0.5)
    r = _fma(-m, _PI_1, x)
    r = _fma(-m, _PI_2, r)
    r = _fma(-m, _PI_3, r)
    p = _sin_poly32(r)
    q = k + _F(1.0)
    odd = q - _F(2.0) * np.floor(q * _F(0.5))
    return p - _F(2.0) * odd * p


@register_jitable(**_OPTIONS)
def _sin32(x):
    # sin x, -0 at -0 (as PyTorch): sin |x| with x's sign and the parity of the integer
    # k XORed into its bits, as the Cython backend's fnn_sinf (which says why). Every
    # other value bit for bit as _cos32's steps with 0 for 1/2 (the form before
    # d9fb05e), NaN's sign too, and faster.
    xb = _float_bits(x)
    a = abs(x)
    k = np.rint(a * _INV_PI)
    r = _fma(k, -_PI_1, a)
    r = _fma(k, -_PI_2, r)
    r = _fma(k, -_PI_3, r)
    flip = (np.int32(k) << 31) ^ (xb & _SIGN32)
    return _float32_from_bits(_float_bits(_sin_poly32(r)) ^ flip)


@register_jitable(**_OPTIONS)
def _sin_cos_reduced64(x, n):
    # (sin r, cos r) for r = x - n pi/2, |r| <= pi/4 (fdlibm's kernels).
    r = _fma(-n, _PIO2_1, x)
    r = _fma(-n, _PIO2_2, r)
    r = _fma(-n, _PIO2_3, r)
    r = _fma(-n, _PIO2_3T, r)
    z = r * r
    s = 1.58969099521155010221e-10
    s = s * z - 2.50507602534068634195e-08
    s = s * z + 2.75573137070700676789e-06
    s = s * z - 1.98412698298579493134e-04
    s = s * z + 8.33333333332248946124e-03
    s = s * z - 1.66666666666666324348e-01
    s = s * z * r + r
    c = -1.13596475577881948265e-11
    c = c * z + 2.08757232129817482790e-09
    c = c * z - 2.75573143513906633035e-07
    c = c * z + 2.48015872894767294178e-05
    c = c * z - 1.38888888888741095749e-03
    c = c * z + 4.16666666666666019037e-02
    c = (1.0 - 0.5 * z) + z * z * c
    return s, c


@register_jitable(**_OPTIONS)
def _cos64(x):
    # cos x: x = n pi/2 + r, |r| <= pi/4; sin r or cos r picked and signed by the
    # quadrant n + 1, with arithmetic.
    n = np.rint(x * 0.63661977236758134308)
    s, c = _sin_cos_reduced64(x, n)
    q = n + 1.0
    half = q * 0.5
    v = c if half != np.floor(half) else s
    m4 = q - 4.0 * np.floor(q * 0.25)
    return -v if m4 >= 2.0 else v


@register_jitable(**_OPTIONS)
def _sin64(x):
    # sin x, -0 at -0, as _sin32 (the Cython backend's fnn_sin): on |x|, cos r where the
    # integer n is odd, x's sign XOR bit 1 of n. Bit for bit _cos64's steps with
    # quadrant n for n + 1 (the form before d9fb05e) elsewhere.
    xb = _float_bits(x)
    a = abs(x)
    n = np.rint(a * 0.63661977236758134308)
    s, c = _sin_cos_reduced64(a, n)
    q = np.int64(np.int32(n))
    v = c if (q & 1) != 0 else s
    flip = ((q & 2) << 62) ^ (xb & _SIGN64)
    return _float64_from_bits(_float_bits(v) ^ flip)


@overload(sin_fast, jit_options=_OPTIONS)
def _sin_fast_overload(x):
    if x == types.float32:
        return lambda x: _sin32(x)
    if x == types.float64:
        return lambda x: _sin64(x)


@overload(cos_fast, jit_options=_OPTIONS)
def _cos_fast_overload(x):
    if x == types.float32:
        return lambda x: _cos32(x)
    if x == types.float64:
        return lambda x: _cos64(x)


@overload(trig_beyond, jit_options=_OPTIONS)
def _trig_beyond_overload(x):
    if x == types.float32:
        return lambda x: abs(x) > _TRIG_MAX_32
    if x == types.float64:
        return lambda x: abs(x) > TRIG_MAX_F64


@overload(sin, jit_options=_OPTIONS)
def _sin_overload(x):
    if isinstance(x, types.Float):
        return lambda x: math.sin(x) if trig_beyond(x) else sin_fast(x)


@overload(cos, jit_options=_OPTIONS)
def _cos_overload(x):
    if isinstance(x, types.Float):
        return lambda x: math.cos(x) if trig_beyond(x) else cos_fast(x)
