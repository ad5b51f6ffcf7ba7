# cython: language_level=3
# distutils: extra_compile_args = -fno-math-errno
"""Activations and their backward passes, elementwise over flat contiguous arrays (the
row-wise softmax and log-softmax: _softmax.pyx).

Three layers per kernel: a per-block ``nogil`` helper with a plain loop the compiler
vectorizes, a ``prange`` over blocks, and the ``def`` entry point the package
wrapper calls with the arrays themselves and a preallocated ``out``. The elementwise
entries take ndarrays of any shape, not 1-D memoryviews: a fused-type memoryview entry
spent ~5,500 instructions (about 1.5 us) choosing its specialisation and acquiring its
buffers, and its caller two ``reshape(-1)`` more, against a few hundred for the C checks
of ``_ndarrays.values_data``; it is most of a small op's time.
"""
cimport numpy as cnp
from _ndarrays cimport array_data, dim, float_type, values_data
from cython.parallel cimport prange
from libc.string cimport memcpy
from libc.math cimport INFINITY

cdef extern from "_stream.h" nogil:
    int fnn_can_stream()
    void fnn_stream_f(float* dst, const float* src, Py_ssize_t n)
    void fnn_stream_d(double* dst, const double* src, Py_ssize_t n)
    void fnn_stream_fence()

cdef extern from "_prefetch.h" nogil:
    void fnn_prefetch_values(const void* a, Py_ssize_t i, Py_ssize_t m, Py_ssize_t n,
                             Py_ssize_t size)

# Outputs of at least this many bytes are written with streaming stores (_stream.h);
# the package sets it at import from kernels/streaming.py, where it is measured.
cdef Py_ssize_t stream_min_bytes = 2**62
# Whether the compute-bound elementwise ops prefetch their inputs (_unary_part); the
# package sets it at import from kernels/prefetching.py (not on AMD CPUs).
cdef bint prefetching = True

from _common cimport (FNN_HAVE_FMA, floating, fnn_gelu_head_f, fnn_gelu_tail_f, threads_for,
                       f_exp, f_exp_upto88, f_expm1_nonpos, f_log, f_tanh, f_gelu, f_gelu_grad,
                       f_sin, f_cos,
                       f_sin_fast, f_cos_fast, trig_beyond,
                       f_sigmoid, f_log1p_small, line_tile, overlap)

DEF BLOCK = 16384
DEF PREFETCH_TILE = 512  # values per sub-tile, its inputs prefetched PREFETCH_AHEAD ahead first
DEF PREFETCH_AHEAD = 4096 # (_prefetch.h; numba's ELEMENTWISE_BLOCK and PREFETCH_TILE)
DEF STREAM_TILE = 2048  # values per tile of a streamed block (8 KB in float: stays in L1)
DEF TILE = 256          # values per pass of softplus's two-pass loop (its buffer stays in L1)
DEF PASS_TILE = 1024    # values per pass of GELU's and mish's two passes over y (L1-resident)
DEF GELU_TANH_C2 = 1.5957691216057308   # 2 sqrt(2 / pi): 0.5 (1 + tanh(u)) = sigmoid(2u)
DEF GELU_TANH_K = 0.044715

# unary forward ops: y = f(x; a)
cdef enum:
    U_RELU = 0
    U_LEAKY = 1
    U_SIGMOID = 2
    U_TANH = 3
    U_GELU = 4
    U_SINE = 5
    U_SILU = 6
    U_ELU = 7
    U_SOFTPLUS = 8      # a = beta, b = threshold
    U_HARDTANH = 9      # a = min_val, b = max_val
    U_SOFTSIGN = 10
    U_GELU_TANH = 11
    U_MISH = 12
    U_HARDSIGMOID = 13
    U_HARDSWISH = 14

# binary backward ops: out = g * f'(s; a), s the saved input or output
cdef enum:
    B_RELU = 0          # s = y
    B_LEAKY = 1         # s = x
    B_SIGMOID = 2       # s = y
    B_TANH = 3          # s = y
    B_GELU = 4          # s = x
    B_SINE = 5          # s = x
    B_MUL = 6           # out = g * s (dropout backward)
    B_SILU = 7          # s = x
    B_ELU = 8           # s = x
    B_SOFTPLUS = 9      # s = x; a = beta, b = threshold
    B_HARDTANH = 10     # s = x; a = min_val, b = max_val
    B_SOFTSIGN = 11     # s = x
    B_GELU_TANH = 12    # s = x
    B_MISH = 13         # s = x
    B_HARDSIGMOID = 14  # s = x
    B_HARDSWISH = 15    # s = x

cdef inline void _unary_block(int op, const floating* x, floating* y, Py_ssize_t n,
                              floating a, floating b) noexcept nogil:
    """y[i] = f(x[i]; a, b) for one block. x, y: (n,); in place allowed."""
    cdef Py_ssize_t i
    cdef floating v, e, zero = 0, one = 1, three = 3, six = 6
    cdef floating c2 = GELU_TANH_C2, k = GELU_TANH_K
    if op == U_RELU:
        for i in range(n):
            y[i] = 0 if x[i] < 0 else x[i]        # NaN stays NaN
    elif op == U_LEAKY:
        for i in range(n):
            y[i] = x[i] if x[i] > 0 else x[i] * a
    elif op == U_SIGMOID:
        for i in range(n):
            y[i] = f_sigmoid(x[i])
    elif op == U_TANH:
        for i in range(n):
            y[i] = f_tanh(x[i])
    elif op == U_GELU:
        if floating is float:
            _gelu_two_pass(x, y, n)
        else:
            for i in range(n):
                y[i] = f_gelu(x[i])
    elif op == U_SINE:
        _sine_block(x, y, n, a)
    elif op == U_SILU:
        for i in range(n):
            y[i] = x[i] * f_sigmoid(x[i])
    elif op == U_ELU:
        for i in range(n):       # both sides computed, then a select: gcc vectorizes it
            v = x[i]             # (typed constants: a literal 0 or 1 is a C double)
            # expm1 of min(v, 0): the positive side is never selected (NaN: not > 0,
            # passes into expm1); expm1, not exp - 1: relative accuracy near 0
            # x itself at +-0 (>=), as PyTorch's ELU for any alpha (a expm1(-0) is +-0
            # as a's sign is, and float's expm1 gives +0 for -0); the one compare shared
            e = a * f_expm1_nonpos(zero if v >= zero else v)
            y[i] = v if v >= zero else e
    elif op == U_SOFTPLUS:
        _softplus_block(x, y, n, a, b)
    elif op == U_HARDSIGMOID:
        for i in range(n):       # selects: NaN stays NaN
            e = x[i] + three
            e = zero if e < zero else e
            e = six if e > six else e
            y[i] = e / six
    elif op == U_HARDSWISH:
        for i in range(n):
            v = x[i]
            e = v + three
            e = zero if e < zero else e
            e = six if e > six else e
            y[i] = v * e / six
    elif op == U_HARDTANH:
        for i in range(n):
            v = x[i]
            y[i] = a if v < a else (b if v > b else v)   # NaN stays NaN
    elif op == U_SOFTSIGN:
        for i in range(n):
            v = x[i]
            e = -v if v < zero else v
            y[i] = v / (one + e)
    elif op == U_GELU_TANH:
        for i in range(n):       # 0.5 v (1 + tanh(u)) = v sigmoid(2u): one exp, one division
            v = x[i]             # 2u = v (c2 + c2 k v^2): the fewest operations in
            y[i] = v * f_sigmoid(v * (c2 + (c2 * k) * (v * v)))   # the written order
    elif op == U_MISH:
        _mish_two_pass(x, y, n)


cdef inline floating _mish_value(floating v, floating e) noexcept nogil:
    """mish(v) given e = exp(v) (_mish_exps': not used beyond 20): v tanh(softplus(v))
    = v m / (m + 2) with m = e (e + 2); exactly v beyond 20."""
    cdef floating two = 2, twenty = 20       # typed: a literal 2 is a C double
    cdef floating z = e * (e + two)
    return v if v > twenty else v * (z / (z + two))


cdef inline void _mish_exps(const floating* x, floating* y, Py_ssize_t n) noexcept nogil:
    """y[i] = exp(x[i]), the first pass of mish's forward and backward: right up to
    x = 20 and inf or garbage above 88.3, never used (mish is v there and its slope
    1, selected by the second pass). No clamp min(x, 20): gcc threaded its constant
    through the exp's reduction, a compare and blends for each (as fnn_sigmoidf's)."""
    cdef Py_ssize_t i
    for i in range(n):
        y[i] = f_exp_upto88(x[i])


cdef inline const floating* _input_tile(const floating* x, floating* copy, Py_ssize_t m,
                                        bint in_place) noexcept nogil:
    """x (m values), or copy holding them when the output is x: a two-pass kernel writes
    its output's tile before its second pass reads x's. The same two loops then run in
    place and out of place, so both give the same bits (a separate one-pass loop for
    the in-place case was compiled differently under -fassociative-math: 1-ulp
    differences in mish on AVX-512)."""
    if in_place:
        memcpy(copy, x, m * sizeof(floating))
        return copy
    return x


cdef inline void _mish_two_pass(const floating* x, floating* y, Py_ssize_t n) noexcept nogil:
    """y = mish(x) in two passes per tile of y (the exps, then the rest): in one loop
    each element's exp chain feeds a division, longer than the out-of-order window
    covers. In place allowed (y = x), through _input_tile."""
    cdef floating copy[PASS_TILE]
    cdef const floating* xt
    cdef bint in_place = overlap(x, y, n * sizeof(floating))
    cdef Py_ssize_t t0 = 0, m, i
    while t0 < n:   # the tiles after the first on y's cache lines (line_tile)
        m = line_tile(y + t0, sizeof(floating), n - t0, PASS_TILE)
        xt = _input_tile(x + t0, copy, m, in_place)
        _mish_exps(xt, y + t0, m)
        for i in range(m):
            y[t0 + i] = _mish_value(xt[i], y[t0 + i])
        t0 += m


cdef inline void _gelu_two_pass(const float* x, float* y, Py_ssize_t n) noexcept nogil:
    """y = GELU(x) in two passes per tile of y (fnn_gelu_head_f, then fnn_gelu_tail_f:
    the same bits as fnn_gelu_f; 0.79 -> 0.57 ns a value, 1 thread, in cache), the
    tiles after the first on y's cache lines (line_tile). In place allowed (y = x),
    through _input_tile."""
    cdef float copy[PASS_TILE]
    cdef const float* xt
    cdef bint in_place = overlap(x, y, n * sizeof(float))
    cdef Py_ssize_t t0 = 0, m, i
    while t0 < n:
        m = line_tile(y + t0, sizeof(float), n - t0, PASS_TILE)
        xt = _input_tile(x + t0, copy, m, in_place)
        for i in range(m):
            y[t0 + i] = fnn_gelu_head_f(xt[i])
        for i in range(m):
            y[t0 + i] = fnn_gelu_tail_f(xt[i], y[t0 + i])
        t0 += m


cdef inline void _softplus_block(const floating* x, floating* y, Py_ssize_t n,
                                 floating a, floating b) noexcept nogil:
    """y[i] = softplus(x[i]; beta a, threshold b) for one block; in place allowed.
    max(z, 0) + log1p(exp(-|z|)), z = a x: no overflow, exact where exp(z) is tiny,
    vectorized in float (libm's log1p: 26 ns a value); NaN propagates.

    Two passes over each tile of TILE values (the tiles after the first on y's cache
    lines: line_tile): the exps into a stack buffer, then the log1ps. In one loop each
    element's exp polynomial feeds its log1p polynomial, a chain longer than the
    out-of-order window covers: 1.05 ns a value (1 thread, in cache) against 0.76 in
    two passes; 16M floats with 2 threads 9.4 -> 7.1 ms (interleaved), 40-45% ->
    55-59% of the copy bandwidth. GELU and mish split too
    (_gelu_two_pass, _mish_two_pass); sigmoid, SiLU and tanh-GELU (one exp, one
    division) measured level or slower split, so they stay one pass.

    beta = 1 (PyTorch's default) runs a copy of the loops with the constant 1 for a,
    whose multiplies by 1 (z = x a, the result by 1 / a) gcc drops: float32, 1 thread,
    64K values in cache, process CPU time, 2-core AMD EPYC (AVX-512): 0.565 -> 0.51 ns
    a value; 16M values, the bench's share of the copy bandwidth (both builds in one
    process, alternating, 5 rounds of 15 blocks, twice): 2 threads 73.3 / 74.3% ->
    82.9 / 80.6% (the bench report had 67%), 1 thread 41.3 -> 47.1%. The same bits:
    over all 2^32 float32 inputs, in place and not, the old and new builds' outputs
    hash alike (and a float64 sample, betas 0.5, 1 and 2)."""
    cdef floating t[TILE]
    cdef Py_ssize_t t0 = 0, m, i
    cdef floating one = 1, inv_a = one / a
    if a == one:
        while t0 < n:     # the loops below with a = 1: no multiplies
            m = line_tile(y + t0, sizeof(floating), n - t0, TILE)
            for i in range(m):
                t[i] = _softplus_exp(x[t0 + i])
            for i in range(m):
                y[t0 + i] = _softplus_finish(x[t0 + i], x[t0 + i], t[i], b, one)
            t0 += m
    else:
        while t0 < n:
            m = line_tile(y + t0, sizeof(floating), n - t0, TILE)
            for i in range(m):
                t[i] = _softplus_exp(x[t0 + i] * a)
            for i in range(m):
                y[t0 + i] = _softplus_finish(x[t0 + i], x[t0 + i] * a, t[i], b, inv_a)
            t0 += m


cdef inline floating _softplus_exp(floating z) noexcept nogil:
    """exp(-|z|) for softplus's first pass (-|z| as a select: fabs is double)."""
    cdef floating zero = 0
    return f_exp_upto88(-z if z > zero else z)


cdef inline floating _softplus_finish(floating v, floating z, floating e, floating b,
                                      floating inv_a) noexcept nogil:
    """softplus of v (z = beta v) given e = exp(-|z|): v beyond the threshold b, else
    (max(z, 0) + log1p(e)) / beta."""
    cdef floating zero = 0
    return v if z > b else ((z if z > zero else zero) + f_log1p_small(e)) * inv_a


cdef inline void _sine_block(const floating* x, floating* y, Py_ssize_t n,
                             floating a) noexcept nogil:
    """y[i] = sin(a x[i]) for one block; in place allowed. The branch-free sin in a
    loop gcc vectorizes, and libm for the whole block when an argument is beyond its
    range (rare: |a x| > 2^20 in float), so every element gets the same value
    whichever block it is in. When y overwrites x the range is tested first; the loop
    that writes is then the same one either way, so in-place and out-of-place calls give
    the same bits (two different loops had been compiled differently under
    -fassociative-math: 1-ulp differences in half the elements)."""
    cdef Py_ssize_t i
    cdef floating v
    cdef bint beyond = not FNN_HAVE_FMA           # without FMA: libm only
    if not beyond and overlap(x, y, n * sizeof(floating)):
        for i in range(n):                         # x is overwritten: test first
            beyond |= trig_beyond(a * x[i])
    if not beyond:
        for i in range(n):
            v = a * x[i]                           # read once: y may be x
            y[i] = f_sin_fast(v)
            beyond |= trig_beyond(v)
    if beyond:
        for i in range(n):
            y[i] = f_sin(a * x[i])


cdef inline void _sine_backward_block(const floating* g, const floating* s, floating* out,
                                      Py_ssize_t n, floating a) noexcept nogil:
    """out[i] = g[i] a cos(a s[i]) for one block, as _sine_block."""
    cdef Py_ssize_t i
    cdef floating v
    cdef bint beyond = not FNN_HAVE_FMA           # without FMA: libm only
    cdef Py_ssize_t nbytes = n * sizeof(floating)
    if not beyond and (overlap(g, out, nbytes) or overlap(s, out, nbytes)):
        for i in range(n):
            beyond |= trig_beyond(a * s[i])
    if not beyond:
        for i in range(n):
            v = a * s[i]                           # read once: out may be s
            out[i] = g[i] * a * f_cos_fast(v)
            beyond |= trig_beyond(v)
    if beyond:
        for i in range(n):
            out[i] = g[i] * a * f_cos(a * s[i])


cdef inline floating _mish_slope(floating v, floating e) noexcept nogil:
    """d mish / dv at v <= 20 given e = exp(v), with one division: (n (n + 2) +
    4 v e (1 + e)) / (n + 2)^2, n = e (e + 2) (numba's _mish_slope says how)."""
    cdef floating one = 1, two = 2, four = 4
    cdef floating n = e * (e + two)
    cdef floating m = n + two
    return (n * m + four * v * e * (one + e)) / (m * m)


cdef inline void _mish_backward_two_pass(const floating* g, const floating* s, floating* out,
                                         Py_ssize_t n) noexcept nogil:
    """out = g * mish'(s) in two passes per tile of out, as _mish_two_pass; out may be
    g or s (in place)."""
    cdef floating g_copy[PASS_TILE]
    cdef floating s_copy[PASS_TILE]
    cdef const floating* gt
    cdef const floating* st
    cdef bint g_in_place = overlap(g, out, n * sizeof(floating))
    cdef bint s_in_place = overlap(s, out, n * sizeof(floating))
    cdef Py_ssize_t t0, m, i
    cdef floating v, twenty = 20, low = -1e4
    for t0 in range(0, n, PASS_TILE):
        m = min(<Py_ssize_t>PASS_TILE, n - t0)
        gt = _input_tile(g + t0, g_copy, m, g_in_place)
        st = _input_tile(s + t0, s_copy, m, s_in_place)
        _mish_exps(st, out + t0, m)
        for i in range(m):
            v = st[i]
            # below -1e4 the slope is 0 (e = 0), but 4 v of a finite v past -max / 4 is
            # -inf and -inf * e NaN: v is -1e4 there (-inf keeps PyTorch's NaN)
            v = low if (v < low and v > -INFINITY) else v
            out[t0 + i] = gt[i] if st[i] > twenty else gt[i] * _mish_slope(v, out[t0 + i])


cdef inline void _binary_block(int op, const floating* g, const floating* s, floating* out,
                               Py_ssize_t n, floating a, floating b) noexcept nogil:
    """out[i] = g[i] * f'(s[i]; a, b) for one block. g, s, out: (n,)."""
    cdef Py_ssize_t i
    cdef floating v, z, e, one = 1, zero = 0, three = 3, bound = 100
    cdef floating sixth = <floating>(1.0 / 6), half = <floating>0.5
    cdef floating c2 = GELU_TANH_C2, k = GELU_TANH_K
    if op == B_RELU:
        for i in range(n):
            out[i] = 0 if s[i] <= 0 else g[i]  # NaN y passes g, as PyTorch's
    elif op == B_LEAKY:
        for i in range(n):
            out[i] = g[i] if s[i] > 0 else g[i] * a
    elif op == B_SIGMOID:
        for i in range(n):
            out[i] = g[i] * s[i] * (one - s[i])
    elif op == B_TANH:
        for i in range(n):
            out[i] = g[i] * (one - s[i] * s[i])
    elif op == B_GELU:
        for i in range(n):
            out[i] = g[i] * f_gelu_grad(s[i])
    elif op == B_SINE:
        _sine_backward_block(g, s, out, n, a)
    elif op == B_MUL:
        for i in range(n):
            out[i] = g[i] * s[i]
    elif op == B_SILU:
        for i in range(n):
            v = f_sigmoid(s[i])
            # below -1e4 the sigmoid is 0 and so the slope: x held there, so that no
            # reassociated product makes g x = inf of a finite x (times 0: NaN); -inf
            # keeps PyTorch's NaN
            z = s[i]
            z = -1e4 if (z < -1e4 and z > -INFINITY) else z
            out[i] = g[i] * v * (one + z * (one - v))
    elif op == B_ELU:
        for i in range(n):       # both sides computed, then a select, as U_ELU
            v = s[i]
            e = f_exp_upto88(zero if v > zero else v)   # min(s, 0), as U_ELU
            if floating is double:
                # e^x rounds to 0 below ln 2^-1075: that 0 selected, so that no
                # reassociated product (g a fma(s1, q, s1)) 2^-k makes an infinite g
                # times e^x = 0 (x = -inf, or below -745.13) inf instead of PyTorch's
                # inf * 0 = NaN (the float32 exp selects its 0 below -87.3 itself)
                e = zero if v < -745.1332191019412 else e
            v = g[i] * a * e
            out[i] = g[i] if s[i] > zero else v       # NaN: exp's NaN, PyTorch's CPU select
    elif op == B_SOFTPLUS:
        for i in range(n):
            z = s[i] * a         # sigmoid(z): no inf / inf whatever the threshold
            out[i] = g[i] if z > b else g[i] * f_sigmoid(z)
    elif op == B_GELU_TANH:
        for i in range(n):       # beyond |100| the slope is 1 or 0 (s (1 - s) is 0 there),
            v = s[i]             # selected after, where x^3 may overflow into inf * 0:
            z = v * v            # (written in the order to run: no reassociation here)
            e = f_sigmoid(v * (c2 + (c2 * k) * z))
            e = e + ((c2 * v) * (one + (three * k) * z) * e) * (one - e)
            # selects on the slope, not a clamp of v: gcc threaded the clamp's constants
            # through the formula, compares and blends for each (the AVX2 loop 70 -> 52
            # instructions a vector); NaN passes both
            e = one if v > bound else e
            out[i] = g[i] * (zero if v < -bound else e)
    elif op == B_MISH:           # beyond 20 the slope is 1 (and inf gives 1, not inf * 0)
        _mish_backward_two_pass(g, s, out, n)
    elif op == B_HARDSIGMOID:
        for i in range(n):       # (| not "or": a short-circuit branch keeps gcc's loop scalar)
            v = s[i]
            out[i] = g[i] * sixth if ((v > -three) & (v < three)) else zero
    elif op == B_HARDSWISH:
        for i in range(n):       # g read unconditionally: a load under the select was a
            v = s[i]             # masked load (vmaskmovps), 1.35x numba on 16M values
            e = g[i]
            out[i] = zero if v <= -three else (e if v >= three else e * (v / three + half))
    elif op == B_SOFTSIGN:
        for i in range(n):
            v = -s[i] if s[i] < zero else s[i]
            v = one + v
            out[i] = g[i] / (v * v)
    elif op == B_HARDTANH:
        for i in range(n):       # PyTorch's CPU test: 0 at the edges and where s is NaN
            # (& not "and": a short-circuit branch kept gcc's loop scalar, 10x numba's time)
            out[i] = g[i] if ((s[i] > a) & (s[i] < b)) else zero


cdef inline void _stream(floating* dst, const floating* src, Py_ssize_t n) noexcept nogil:
    if floating is float:
        fnn_stream_f(dst, src, n)
    else:
        fnn_stream_d(dst, src, n)


cdef inline bint _streams(Py_ssize_t n, Py_ssize_t itemsize) noexcept nogil:
    """True when an output of n values is large enough for streaming stores."""
    return fnn_can_stream() and n * itemsize >= stream_min_bytes


cdef inline bint _unary_streams(int op) noexcept nogil:
    """The memory-bound forward ops (a few arithmetic operations a value), which stream
    large outputs; the transcendental ones are compute-bound here, and measured level or
    slower streamed (the tile's burst of stores stalls the next tile's arithmetic)."""
    return (op == U_RELU or op == U_LEAKY or op == U_HARDTANH or op == U_HARDSIGMOID
            or op == U_HARDSWISH or op == U_SOFTSIGN)


cdef inline bint _binary_streams(int op) noexcept nogil:
    """The memory-bound backward ops, as _unary_streams."""
    return (op == B_RELU or op == B_LEAKY or op == B_SIGMOID or op == B_TANH or op == B_MUL
            or op == B_HARDTANH or op == B_HARDSIGMOID or op == B_HARDSWISH
            or op == B_SOFTSIGN)


cdef void _unary_block_streamed(int op, const floating* x, floating* y, Py_ssize_t n,
                                floating a, floating b) noexcept nogil:
    """_unary_block into an L1 tile, streamed out to y a tile at a time."""
    cdef floating tile[STREAM_TILE]
    cdef Py_ssize_t t0, m
    for t0 in range(0, n, STREAM_TILE):
        m = min(<Py_ssize_t>STREAM_TILE, n - t0)
        _unary_block(op, x + t0, tile, m, a, b)
        _stream(y + t0, tile, m)
    fnn_stream_fence()


cdef void _binary_block_streamed(int op, const floating* g, const floating* s,
                                 floating* out, Py_ssize_t n, floating a,
                                 floating b) noexcept nogil:
    """_binary_block into an L1 tile, streamed out to out a tile at a time."""
    cdef floating tile[STREAM_TILE]
    cdef Py_ssize_t t0, m
    for t0 in range(0, n, STREAM_TILE):
        m = min(<Py_ssize_t>STREAM_TILE, n - t0)
        _binary_block(op, g + t0, s + t0, tile, m, a, b)
        _stream(out + t0, tile, m)
    fnn_stream_fence()


cdef void _unary_part(int op, const floating* x, floating* y, Py_ssize_t start,
                      Py_ssize_t m, Py_ssize_t n, floating a, floating b) noexcept nogil:
    """y[start : start + m] = f(x[...]) of (n,) arrays: _unary_block, for the compute-bound
    ops in sub-tiles of PREFETCH_TILE values, each after prefetching its input
    PREFETCH_AHEAD values ahead (_prefetch.h says why), unless prefetching is off (AMD
    CPUs: kernels/prefetching.py)."""
    cdef Py_ssize_t t0, k
    if _unary_streams(op) or not prefetching:
        _unary_block(op, x + start, y + start, m, a, b)
        return
    for t0 in range(start, start + m, PREFETCH_TILE):
        k = min(<Py_ssize_t>PREFETCH_TILE, start + m - t0)
        fnn_prefetch_values(x, t0 + PREFETCH_AHEAD, k, n, sizeof(floating))
        _unary_block(op, x + t0, y + t0, k, a, b)


cdef void _binary_part(int op, const floating* g, const floating* s, floating* out,
                       Py_ssize_t start, Py_ssize_t m, Py_ssize_t n, floating a,
                       floating b) noexcept nogil:
    """_binary_block on [start, start + m) of (n,) arrays, prefetching as _unary_part."""
    cdef Py_ssize_t t0, k
    if _binary_streams(op) or not prefetching:
        _binary_block(op, g + start, s + start, out + start, m, a, b)
        return
    for t0 in range(start, start + m, PREFETCH_TILE):
        k = min(<Py_ssize_t>PREFETCH_TILE, start + m - t0)
        fnn_prefetch_values(g, t0 + PREFETCH_AHEAD, k, n, sizeof(floating))
        fnn_prefetch_values(s, t0 + PREFETCH_AHEAD, k, n, sizeof(floating))
        _binary_block(op, g + t0, s + t0, out + t0, k, a, b)


cdef void unary_map(int op, const floating* x, floating* y, Py_ssize_t n,
                    floating a, floating b) noexcept nogil:
    """Parallel driver: blocks of BLOCK elements, contiguous per thread."""
    cdef Py_ssize_t nblocks = (n + BLOCK - 1) // BLOCK, blk, start
    if _unary_streams(op) and _streams(n, sizeof(floating)):
        for blk in prange(nblocks, nogil=True, schedule="static", num_threads=threads_for(n)):
            start = blk * BLOCK
            _unary_block_streamed(op, x + start, y + start,
                                  min(<Py_ssize_t>BLOCK, n - start), a, b)
        return
    # one thread: a plain loop, no OpenMP region (one costs ~0.6-1 us even for one thread)
    if threads_for(n) == 1:
        for blk in range(nblocks):
            start = blk * BLOCK
            _unary_part(op, x, y, start, min(<Py_ssize_t>BLOCK, n - start), n, a, b)
        return
    for blk in prange(nblocks, nogil=True, schedule="static", num_threads=threads_for(n)):
        start = blk * BLOCK
        _unary_part(op, x, y, start, min(<Py_ssize_t>BLOCK, n - start), n, a, b)


cdef void binary_map(int op, const floating* g, const floating* s, floating* out,
                     Py_ssize_t n, floating a, floating b) noexcept nogil:
    cdef Py_ssize_t nblocks = (n + BLOCK - 1) // BLOCK, blk, start
    if _binary_streams(op) and _streams(n, sizeof(floating)):
        for blk in prange(nblocks, nogil=True, schedule="static", num_threads=threads_for(n)):
            start = blk * BLOCK
            _binary_block_streamed(op, g + start, s + start, out + start,
                                   min(<Py_ssize_t>BLOCK, n - start), a, b)
        return
    # one thread: a plain loop, no OpenMP region (one costs ~0.6-1 us even for one thread)
    if threads_for(n) == 1:
        for blk in range(nblocks):
            start = blk * BLOCK
            _binary_part(op, g, s, out, start, min(<Py_ssize_t>BLOCK, n - start), n, a, b)
        return
    for blk in prange(nblocks, nogil=True, schedule="static", num_threads=threads_for(n)):
        start = blk * BLOCK
        _binary_part(op, g, s, out, start, min(<Py_ssize_t>BLOCK, n - start), n, a, b)


# ------------------------------------------------------------------ entry points
# unary, binary: the op's arrays as they are (C-contiguous, any shape); the row-wise
# ops: (N, C) views.

def set_prefetching(bint on):
    """Whether the compute-bound elementwise ops prefetch their inputs (_unary_part)."""
    global prefetching
    prefetching = on


def set_stream_min_bytes(Py_ssize_t nbytes):
    """Write outputs of at least nbytes with streaming stores (elementwise maps only)."""
    global stream_min_bytes
    stream_min_bytes = nbytes


def unary(int op, cnp.ndarray x not None, cnp.ndarray out not None, double a=0.0,
          double b=0.0):
    """out = op(x; a, b). x, out: C-contiguous, one float dtype, one size (any shapes)."""
    cdef int kind = float_type(x)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    cdef void* xp = values_data(x, kind, n, False, "x")
    cdef void* yp = values_data(out, kind, n, True, "out")
    if n == 0:
        return
    if kind == cnp.NPY_FLOAT:
        with nogil:
            unary_map(op, <const float*>xp, <float*>yp, n, <float>a, <float>b)
    else:
        with nogil:
            unary_map(op, <const double*>xp, <double*>yp, n, a, b)


def binary(int op, cnp.ndarray grad_out not None, cnp.ndarray saved not None,
           cnp.ndarray out not None, double a=0.0, double b=0.0):
    """out = op'(grad_out, saved; a, b). grad_out, saved, out: C-contiguous, one float
    dtype, one size (any shapes)."""
    cdef int kind = float_type(grad_out)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(grad_out)
    cdef void* gp = values_data(grad_out, kind, n, False, "grad_out")
    cdef void* sp = values_data(saved, kind, n, False, "saved")
    cdef void* yp = values_data(out, kind, n, True, "out")
    if n == 0:
        return
    if kind == cnp.NPY_FLOAT:
        with nogil:
            binary_map(op, <const float*>gp, <const float*>sp, <float*>yp, n, <float>a,
                       <float>b)
    else:
        with nogil:
            binary_map(op, <const double*>gp, <const double*>sp, <double*>yp, n, a, b)
