# cython: language_level=3
"""Shared declarations of the Cython kernels: the fused float type (defined once),
the math helpers that pick the float or double libm routine, and work-splitting.

Everything here is a ctypedef or an inline function, so cimporting it adds no
runtime import.
"""
from libc.math cimport (exp, expf, expm1, fma, log, log1p, tanh as c_tanh,
                        erfc, sin, sinf, cos, cosf, sqrt, sqrtf, fabs, fabsf)
from libc.stdint cimport uint32_t, uint64_t

cdef extern from "_workspace.h" nogil:
    # a work buffer kept per calling thread between calls (see the header); NULL when
    # out of memory. Never freed by the caller.
    void* fnn_workspace(int slot, size_t nbytes)

cdef extern from "_fastnn_math.h" nogil:
    int fnn_max_threads()
    void fnn_barrier()   # an OpenMP barrier: between the phases of a parallel() block
    float fnn_expf(float x)
    float fnn_exp_nonpos_f(float x)  # x <= 88.3 (or NaN): one clamp fewer than fnn_expf
    float fnn_expm1_nonpos_f(float x)  # e^x - 1 for x <= 0, accurate near 0
    float fnn_logf(float x)
    float fnn_log1pf(float x)
    float fnn_one_plus_err_f(float x, float u)  # (1 + x) - u for u = 1 + x, |x| <= 1
    float fnn_tanhf(float x)
    double fnn_tanh(double x)       # needs FNN_HAVE_FMA (f_tanh checks), as the next four
    double fnn_exp(double x)
    double fnn_exp_upto709(double x)   # x <= 709 (or NaN): one clamp fewer than fnn_exp
    double fnn_expm1_nonpos(double x)  # e^x - 1 for x <= 0, accurate near 0
    double fnn_sigmoid(double x)
    double fnn_log(double x)
    double fnn_log1p(double x)
    double fnn_log1p_small(double x)   # 0 <= x <= 1 (or NaN)
    double fnn_gelu(double x)
    double fnn_gelu_grad(double x)
    float fnn_sigmoidf(float x)
    float fnn_gelu_f(float x)
    float fnn_gelu_head_f(float x)
    float fnn_gelu_tail_f(float x, float head)
    float fnn_gelu_gradf(float x)
    float fnn_sinf(float x)          # the branch-free sin/cos: valid where not trig_beyond
    float fnn_cosf(float x)
    double fnn_sin(double x)
    double fnn_cos(double x)
    float FNN_TRIG_MAX_F
    int FNN_HAVE_FMA
    double FNN_TRIG_MAX_D
    uint64_t fnn_seed_key(uint64_t seed)
    uint32_t fnn_dropout_bits(uint64_t key, uint64_t index)

ctypedef fused floating:
    float
    double

# Activation codes shared by _dense and _activations (the op table's names map here).
cdef enum:
    ACT_IDENTITY = 0
    ACT_RELU = 1
    ACT_LEAKY_RELU = 2
    ACT_SIGMOID = 3
    ACT_TANH = 4

# Work below this many elements runs on one thread: a parallel region costs more.
cdef enum:
    PARALLEL_MIN = 32768

# Row reductions split the rows into at most MAX_CHUNKS fixed chunks, a function of
# the row count only, and merge the chunk partials in order: the result is the same
# bit for bit whatever the thread count.
cdef enum:
    MAX_CHUNKS = 32
    CHUNK_MIN_ROWS = 32


cdef inline bint overlap(const void* p, const void* q, Py_ssize_t nbytes) noexcept nogil:
    """Whether the nbytes from p and the nbytes from q share memory."""
    cdef const char* a = <const char*>p
    cdef const char* b = <const char*>q
    return a < b + nbytes and b < a + nbytes


cdef inline Py_ssize_t line_tile(const void* y, Py_ssize_t itemsize, Py_ssize_t left,
                                 Py_ssize_t tile) noexcept nogil:
    """Values in the tile of an output that starts at y, left values before its end:
    tile where y starts a 64-byte line, else up to the end of that line, so that the
    tiles after it start on lines (NumPy's large arrays start 16 bytes past one, and
    512-bit accesses that straddle two lines cost: 16M float32 values, 1 thread, CPU
    time, x and y both 16 bytes past a line against both on a line: GELU 0.47 / 0.41 ns
    a value, softplus 0.58 / 0.52, mish 0.47 / 0.37; BCE 1.38 / 0.97 in _losses.pyx).
    The numba backend's _tile_stop."""
    cdef Py_ssize_t ahead = (64 - <size_t>y % 64) % 64 // itemsize
    return min(left, ahead if ahead > 0 else tile)


cdef inline int threads_for(Py_ssize_t work) noexcept nogil:
    """Threads worth starting for `work` elements of streaming work."""
    if work < PARALLEL_MIN:
        return 1
    return fnn_max_threads()


cdef inline Py_ssize_t thread_stride(Py_ssize_t values, Py_ssize_t itemsize) noexcept nogil:
    """Values between two threads' parts of one scratch buffer holding `values` values
    of `itemsize` bytes per thread: a page more than needed, rounded to pages, so no two
    threads' parts share a 4 KB page (the L2 streamer prefetches within a page: one
    thread's stores pulled in the lines the other was writing). kernels/scratch.py's
    thread_stride has the measurements."""
    return ((values * itemsize + 4095) // 4096 * 4096 + 4096) // itemsize


cdef inline bint thread_workspaces(int nthreads, size_t bytes0, void** p0, size_t bytes1,
                                   void** p1, size_t bytes2=0, void** p2=NULL) noexcept nogil:
    """Workspace slots 0, 1 (and 2 where p2 is given) as nthreads per-thread buffers of
    bytes0, bytes1 (bytes2) bytes each, a thread's part at k * its thread_stride: the
    buffers into *p0, *p1 (*p2), kept per thread between calls (_workspace.h). False
    where one cannot be allocated."""
    p0[0] = fnn_workspace(0, nthreads * bytes0)
    p1[0] = fnn_workspace(1, nthreads * bytes1)
    if p2 != NULL:
        p2[0] = fnn_workspace(2, nthreads * bytes2)
    return p0[0] != NULL and p1[0] != NULL and (p2 == NULL or p2[0] != NULL)


cdef inline Py_ssize_t n_chunks(Py_ssize_t rows) noexcept nogil:
    """Number of row chunks for a reduction over `rows` rows (>= 1)."""
    cdef Py_ssize_t k = rows // CHUNK_MIN_ROWS
    if k < 1:
        return 1
    if k > MAX_CHUNKS:
        return MAX_CHUNKS
    return k


cdef inline floating f_exp(floating x) noexcept nogil:
    """The vectorizable exp (_fastnn_math.h); libm's in double without hardware FMA."""
    if floating is float:
        return fnn_expf(x)
    else:
        return fnn_exp(x) if FNN_HAVE_FMA else exp(x)


cdef inline floating f_exp_upto88(floating x) noexcept nogil:
    """exp(x) for x <= 88 (NaN propagates; inf or garbage above, which mish's first
    pass never uses): fnn_expf without its upper clamp and cap (softplus: 7.7 -> 5.8 ms
    on 16M floats)."""
    if floating is float:
        return fnn_exp_nonpos_f(x)
    else:
        return fnn_exp_upto709(x) if FNN_HAVE_FMA else exp(x)


cdef inline floating f_expm1_nonpos(floating x) noexcept nogil:
    """e^x - 1 for x <= 0 (NaN propagates), relatively accurate near 0."""
    if floating is float:
        return fnn_expm1_nonpos_f(x)
    else:
        return fnn_expm1_nonpos(x) if FNN_HAVE_FMA else expm1(x)


cdef inline floating f_log(floating x) noexcept nogil:
    """The vectorizable fnn_logf/fnn_log (within 0.9 ulp); libm's in double
    without hardware FMA."""
    if floating is float:
        return fnn_logf(x)
    else:
        return fnn_log(x) if FNN_HAVE_FMA else log(x)


cdef inline floating f_log1p(floating x) noexcept nogil:
    """log(1 + x) corrected by the rounding of 1 + x: full relative accuracy near 0
    (fnn_log1pf, fnn_log1p: within 2.3 and 1.13 ulp); libm's in double without hardware
    FMA."""
    if floating is float:
        return fnn_log1pf(x)
    else:
        return fnn_log1p(x) if FNN_HAVE_FMA else log1p(x)


cdef inline floating f_one_plus_err(floating x, floating u) noexcept nogil:
    """(1 + x) - u exactly for u = 1 + x as computed, |x| <= 1: log(1 + x) is
    f_log(u) + f_one_plus_err(x, u) to within 6e-8 relative (f_log1p's correction).
    An explicit fma (1 - u), which -fassociative-math cannot fold with the sum."""
    if floating is float:
        return fnn_one_plus_err_f(x, u)
    else:
        return fma(-1.0, u, 1.0) + x


cdef inline floating f_log1p_small(floating x) noexcept nogil:
    """log(1 + x) to full relative accuracy for 0 <= x <= 1. float: x Q(x), Q of degree
    10 (vmath's _log1p_small32, where the fit is described; ~2 ulp, no division, so
    softplus's loop is not bound by the divider); double: fnn_log1p_small (within 1.13
    ulp; libm's without hardware FMA)."""
    cdef float p
    if floating is float:
        p = <float>0.002030215924605727
        p = p * x + <float>-0.013407406397163868
        p = p * x + <float>0.04147797450423241
        p = p * x + <float>-0.08244146406650543
        p = p * x + <float>0.12418416887521744
        p = p * x + <float>-0.16105683147907257
        p = p * x + <float>0.19890746474266052
        p = p * x + <float>-0.24987269937992096
        p = p * x + <float>0.33332559466362
        p = p * x + <float>-0.4999998211860657
        p = p * x + <float>1.0
        return x * p
    else:
        return fnn_log1p_small(x) if FNN_HAVE_FMA else log1p(x)


cdef inline floating f_tanh(floating x) noexcept nogil:
    if floating is float:
        return fnn_tanhf(x)
    elif FNN_HAVE_FMA:
        return fnn_tanh(x)
    else:   # (without hardware FMA fnn_tanh's fma would be a libm call.) Below 2^-26
        # tanh x rounds to x; glibc's tanh, -t / (t + 2) of t = expm1(-2|x|), is an ulp
        # off there for some x (0.5% of tests/test_float64_tanh.py's values)
        return x if fabs(x) < 1.4901161193847656e-08 else c_tanh(x)


cdef inline floating f_gelu(floating x) noexcept nogil:
    """x Phi(x) with Phi the standard normal CDF: float from a polynomial for log2 Phi
    (_fastnn_math.h, within 1e-7 + 1 ulp), double from fnn_gelu (within 1 ulp below
    |x| = 0.4, 4 beyond, the left tail included; libm's erfc without hardware FMA)."""
    if floating is float:
        return fnn_gelu_f(x)
    elif FNN_HAVE_FMA:
        return fnn_gelu(x)
    else:
        return x * 0.5 * erfc(-x * 0.70710678118654752440)


cdef inline floating f_gelu_grad(floating x) noexcept nogil:
    """d/dx [x Phi(x)] = Phi(x) + x e^(-x^2/2) / sqrt(2 pi)."""
    if floating is float:
        return fnn_gelu_gradf(x)
    elif FNN_HAVE_FMA:
        return fnn_gelu_grad(x)
    else:
        return (0.5 * erfc(-x * 0.70710678118654752440)
                + x * 0.39894228040143267794 * exp(-0.5 * x * x))


cdef inline floating f_sin(floating x) noexcept nogil:
    """sin(x) for any x: the vectorizable version within its range, else libm."""
    if floating is float:
        return fnn_sinf(x) if fabsf(x) <= FNN_TRIG_MAX_F else sinf(x)
    else:
        return fnn_sin(x) if fabs(x) <= FNN_TRIG_MAX_D else sin(x)


cdef inline floating f_cos(floating x) noexcept nogil:
    """cos(x) for any x: the vectorizable version within its range, else libm."""
    if floating is float:
        return fnn_cosf(x) if fabsf(x) <= FNN_TRIG_MAX_F else cosf(x)
    else:
        return fnn_cos(x) if fabs(x) <= FNN_TRIG_MAX_D else cos(x)


# Loops that call the branch-free sin/cos directly vectorize; an argument v with
# trig_beyond(v) (|v| beyond the range, or inf) must be recomputed with f_sin/f_cos.
cdef inline floating f_sin_fast(floating x) noexcept nogil:
    if floating is float:
        return fnn_sinf(x)
    else:
        return fnn_sin(x)


cdef inline floating f_cos_fast(floating x) noexcept nogil:
    if floating is float:
        return fnn_cosf(x)
    else:
        return fnn_cos(x)


cdef inline bint trig_beyond(floating v) noexcept nogil:
    """True where f_sin_fast/f_cos_fast are not valid (NaN is valid: it propagates)."""
    if floating is float:
        return fabsf(v) > FNN_TRIG_MAX_F
    else:
        return fabs(v) > FNN_TRIG_MAX_D


cdef inline floating f_sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline floating f_sigmoid(floating x) noexcept nogil:
    """1 / (1 + exp(-x)); in double exp of -|x| only, so nothing overflows."""
    cdef floating e
    if floating is float:
        return fnn_sigmoidf(x)
    elif FNN_HAVE_FMA:
        return fnn_sigmoid(x)
    else:
        e = exp(-x if x >= 0 else x)
        return 1 / (1 + e) if x >= 0 else e / (1 + e)


# Horizontal reductions over one contiguous row. Eight independent accumulators let
# the compiler keep eight lanes in flight (strict IEEE order forbids it from
# reassociating a single running sum); the lanes are merged in a fixed order.
cdef inline floating row_sum(const floating* x, Py_ssize_t n) noexcept nogil:
    cdef floating acc[8]
    cdef Py_ssize_t j = 0, k
    for k in range(8):
        acc[k] = 0
    while j + 8 <= n:
        for k in range(8):
            acc[k] += x[j + k]
        j += 8
    cdef floating s = (((acc[0] + acc[1]) + (acc[2] + acc[3]))
                       + ((acc[4] + acc[5]) + (acc[6] + acc[7])))
    while j < n:
        s += x[j]
        j += 1
    return s


cdef inline floating row_dot(const floating* x, const floating* y, Py_ssize_t n) noexcept nogil:
    cdef floating acc[8]
    cdef Py_ssize_t j = 0, k
    for k in range(8):
        acc[k] = 0
    while j + 8 <= n:
        for k in range(8):
            acc[k] += x[j + k] * y[j + k]
        j += 8
    cdef floating s = (((acc[0] + acc[1]) + (acc[2] + acc[3]))
                       + ((acc[4] + acc[5]) + (acc[6] + acc[7])))
    while j < n:
        s += x[j] * y[j]
        j += 1
    return s


cdef inline floating row_max(const floating* x, Py_ssize_t n) noexcept nogil:
    """Max of a non-empty row (a NaN is skipped here but propagates through exp later)."""
    cdef floating acc[8]
    cdef Py_ssize_t j = 0, k
    for k in range(8):
        acc[k] = x[0]
    while j + 8 <= n:
        for k in range(8):
            acc[k] = x[j + k] if x[j + k] > acc[k] else acc[k]
        j += 8
    cdef floating m = acc[0]
    for k in range(1, 8):
        m = acc[k] if acc[k] > m else m
    while j < n:
        m = x[j] if x[j] > m else m
        j += 1
    return m


cdef inline void merge_chunks(double* partial, Py_ssize_t nch, Py_ssize_t c) noexcept nogil:
    """partial[0, j] = sum over chunks k of partial[k, j], added in chunk order.
    partial: (nch, c). Row by row, so the adds run along contiguous j (vectorized)."""
    cdef Py_ssize_t k, j
    for k in range(1, nch):
        for j in range(c):
            partial[j] += partial[k * c + j]
