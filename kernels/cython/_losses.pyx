# cython: language_level=3
# distutils: extra_compile_args = -fno-math-errno
"""Losses with their gradients in one pass: softmax cross-entropy (labels or
probabilities), MSE, BCE and BCE on logits.

Each returns the mean loss as a double; the gradient is written into ``grad``.
Rows (or flat blocks) are split into fixed chunks whose partial losses are merged in
chunk order, so the loss is the same bit for bit for any thread count.
"""
cimport numpy as cnp
from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint64_t
from libc.math cimport INFINITY, NAN
from libc.string cimport memcpy, memmove

from _ndarrays cimport array_data, dim, float_type, values_data
from _common cimport (floating, threads_for, n_chunks, f_exp_upto88, f_log, f_log1p,
                      f_log1p_small, f_one_plus_err, line_tile, overlap, row_max, row_sum,
                      MAX_CHUNKS)

cdef extern from *:
    """
    /* x, opaque to -fassociative-math: a sum cannot be reassociated across it */
    static inline double fnn_opaque(double x) { volatile double v = x; return v; }
    """
    double fnn_opaque(double x) noexcept nogil


cdef inline double _sce_label_row(const floating* x, int64_t t, floating* g, Py_ssize_t c,
                                  floating inv_n) noexcept nogil:
    """Loss of one row and its gradient. x, g: (c,); t: the class label."""
    cdef Py_ssize_t j
    cdef floating m = row_max(x, c), s, scale
    cdef floating xt = x[t]
    for j in range(c):
        g[j] = f_exp_upto88(x[j] - m)   # x - max <= 0: no upper clamp
    s = row_sum(g, c)
    scale = inv_n / s
    for j in range(c):
        g[j] = g[j] * scale
    g[t] -= inv_n
    # m - xt kept whole: reassociated into the row sum as (partial + m) - xt it lost the
    # partial sum where |m| is 1e16 (float64)
    return <double>f_log(s) + fnn_opaque(<double>(m - xt))


cdef inline double _sce_prob_row(const floating* x, const floating* t, floating* g,
                                 Py_ssize_t c, floating inv_n) noexcept nogil:
    """Loss -sum(t * log_softmax(x)) of one row and its gradient. x, t, g: (c,)."""
    cdef Py_ssize_t j, k
    cdef floating m = row_max(x, c), s, inv_s
    cdef double lse, tx, tt
    cdef double acc[8]
    cdef double acc_t[8]
    for j in range(c):
        g[j] = f_exp_upto88(x[j] - m)   # x - max <= 0: no upper clamp
    s = row_sum(g, c)
    lse = <double>f_log(s)
    inv_s = row_sum(t, c) / s  # softmax * sum(t) - t: rows of t need not sum to 1
    for j in range(c):
        g[j] = (g[j] * inv_s - t[j]) * inv_n
    for k in range(8):
        acc[k] = 0
        acc_t[k] = 0
    j = 0
    if floating is float:
        # -log_softmax(x)_j = (m - x_j) + lse, summed against t in eight lanes (m - x_j
        # rounds in float32 before the conversion, which gcc cannot reassociate across)
        while j + 8 <= c:
            for k in range(8):
                acc[k] += <double>t[j + k] * (<double>(m - x[j + k]) + lse)
            j += 8
        tx = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
        while j < c:
            tx += <double>t[j] * (<double>(m - x[j]) + lse)
            j += 1
        return tx
    # float64: sum_j t_j (m - x_j) + lse sum_j t_j, the two sums in eight lanes each and
    # lse added once, after them: added to each m - x_j, gcc's -fassociative-math hoisted
    # m + lse out of the loop and rounded lse away where |m| is 1e12 or more (a row of
    # 1e17s: a loss of 0, not log C)
    while j + 8 <= c:
        for k in range(8):
            acc[k] += t[j + k] * (m - x[j + k])
            acc_t[k] += t[j + k]
        j += 8
    tx = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
    tt = ((acc_t[0] + acc_t[1]) + (acc_t[2] + acc_t[3])) + (
        (acc_t[4] + acc_t[5]) + (acc_t[6] + acc_t[7]))
    while j < c:
        tx += t[j] * (m - x[j])
        tt += t[j]
        j += 1
    return fnn_opaque(tx + lse * tt)   # (the row's loss kept whole in the chunk's sum)


def labels_in_range(cnp.ndarray labels not None, Py_ssize_t num_classes):
    """Whether every value of labels (C-contiguous int64, any shape) lies in
    [0, num_classes): one pass reading them as unsigned (a negative label is then above
    every class count). fastnn.validation.labels_in_range's compiled form: NumPy's max
    reduction behind it cost ~9 us a training step at batch 16 (its machinery evicted
    from the caches by the step's products), this loop a fraction of one."""
    cdef Py_ssize_t n = cnp.PyArray_SIZE(labels), i
    cdef const uint64_t* p = <const uint64_t*>values_data(labels, cnp.NPY_INT64, n, False,
                                                          "labels")
    cdef uint64_t top = 0, v
    if n == 0:
        return True
    if num_classes <= 0:
        return False
    with nogil:
        for i in range(n):
            v = p[i]
            top = v if v > top else top
    return top < <uint64_t>num_classes


cdef double _sce_labels(const floating* logits, const int64_t* target, floating* grad,
                       Py_ssize_t n, Py_ssize_t c) noexcept nogil:
    """The mean loss of softmax_cross_entropy_labels; n, c >= 1."""
    cdef Py_ssize_t nch = n_chunks(n), k, i, r0, r1
    cdef double partial[MAX_CHUNKS]
    cdef double total = 0
    cdef floating inv_n = <floating>(1.0 / n)
    for k in prange(nch, schedule="static", num_threads=threads_for(n * c)):
        r0 = k * n // nch
        r1 = (k + 1) * n // nch
        partial[k] = 0
        for i in range(r0, r1):
            partial[k] += _sce_label_row(logits + i * c, target[i], grad + i * c, c, inv_n)
    for k in range(nch):
        total += partial[k]
    return total / n


def softmax_cross_entropy_labels(cnp.ndarray logits not None, cnp.ndarray target not None,
                                 cnp.ndarray grad not None):
    """logits, grad: (N, C), one float dtype; target: (N,) int64 labels in [0, C); all
    C-contiguous (the checks of _ndarrays.pxd: 1.5 us a call less than memoryviews).
    Returns the mean loss."""
    cdef int kind = float_type(logits)
    cdef Py_ssize_t n = dim(logits, 0, 2, "logits"), c = dim(logits, 1, 2, "logits")
    cdef void* xp = array_data(logits, kind, n, c, False, "logits")
    cdef void* gp = array_data(grad, kind, n, c, True, "grad")
    cdef const int64_t* tp = <const int64_t*>array_data(target, cnp.NPY_INT64, n, -1, False,
                                                        "target")
    cdef double loss
    if n == 0 or c == 0:
        return 0.0
    if kind == cnp.NPY_FLOAT:
        with nogil:
            loss = _sce_labels(<const float*>xp, tp, <float*>gp, n, c)
    else:
        with nogil:
            loss = _sce_labels(<const double*>xp, tp, <double*>gp, n, c)
    return loss


cdef double _sce_probs(const floating* logits, const floating* target, floating* grad,
                      Py_ssize_t n, Py_ssize_t c) noexcept nogil:
    """The mean loss of softmax_cross_entropy_probs; n, c >= 1."""
    cdef Py_ssize_t nch = n_chunks(n), k, i, r0, r1
    cdef double partial[MAX_CHUNKS]
    cdef double total = 0
    cdef floating inv_n = <floating>(1.0 / n)
    for k in prange(nch, schedule="static", num_threads=threads_for(n * c)):
        r0 = k * n // nch
        r1 = (k + 1) * n // nch
        partial[k] = 0
        for i in range(r0, r1):
            partial[k] += _sce_prob_row(logits + i * c, target + i * c, grad + i * c, c,
                                        inv_n)
    for k in range(nch):
        total += partial[k]
    return total / n


def softmax_cross_entropy_probs(cnp.ndarray logits not None, cnp.ndarray target not None,
                                cnp.ndarray grad not None):
    """logits, target, grad: (N, C), one float dtype, C-contiguous; target rows are
    probabilities. Returns the mean loss."""
    cdef int kind = float_type(logits)
    cdef Py_ssize_t n = dim(logits, 0, 2, "logits"), c = dim(logits, 1, 2, "logits")
    cdef void* xp = array_data(logits, kind, n, c, False, "logits")
    cdef void* tp = array_data(target, kind, n, c, False, "target")
    cdef void* gp = array_data(grad, kind, n, c, True, "grad")
    cdef double loss
    if n == 0 or c == 0:
        return 0.0
    if kind == cnp.NPY_FLOAT:
        with nogil:
            loss = _sce_probs(<const float*>xp, <const float*>tp, <float*>gp, n, c)
    else:
        with nogil:
            loss = _sce_probs(<const double*>xp, <const double*>tp, <double*>gp, n, c)
    return loss


DEF FLAT_CHUNK = 8192
# values per tile of the BCE blocks (L1-resident): BCE over 16M float32 values took
# 0.8-0.9x the time of 512-value tiles (interleaved, 5 repeats; 1024 0.9-1.0x, 2048
# 0.9-1.1x); BCE with logits level
DEF LOSS_TILE = 256


cdef inline double _mse_block(const floating* p, const floating* t, floating* g,
                              Py_ssize_t n, floating scale) noexcept nogil:
    """Sum of (p - t)**2 over one block (squares in double), and g = scale * (p - t).
    p, t, g: (n,). One loop: the build's -fassociative-math lets gcc vectorize the
    double sum (the three passes with eight hand-made lanes this replaces ran 1.4-1.6x
    slower than the numba backend's single loop on 16M values)."""
    cdef Py_ssize_t j
    cdef double s = 0
    cdef floating d
    for j in range(n):
        d = p[j] - t[j]
        s += <double>d * <double>d
        g[j] = d * scale
    return s


cdef inline floating _bce_grad(floating p, floating t, floating inv_size) noexcept nogil:
    """BCE's gradient of one value: (p - t) / max(p (1 - p), tiny) * inv_size, tiny
    PyTorch's floor of p (1 - p), 1e-12 rounded to a float32 (in double too)."""
    cdef floating one = 1, tiny = <floating><float>1e-12
    cdef floating den = p * (one - p)
    den = tiny if den < tiny else den
    return (p - t) / den * inv_size


cdef inline floating _bce_binary_term(floating p, floating t) noexcept nogil:
    """-log(p) where t = 1, else -log1p(-p) (as f_log(q) + f_one_plus_err(-p, q),
    q = 1 - p: f_log1p without its select for |x| > 1), the log clamped at -100: the
    term of a 0/1 target."""
    cdef floating zero = 0, one = 1, lo = -100
    cdef floating q = one - p
    cdef floating lp = f_log(p if t == one else q) + (zero if t == one else f_one_plus_err(-p, q))
    return -(lo if lp < lo else lp)


cdef inline void _bce_soft_tile(const floating* p, const floating* t, floating* g,
                                floating* terms, Py_ssize_t n,
                                floating inv_size) noexcept nogil:
    """terms = -(t log(p) + (1 - t) log1p(-p)), both logs clamped at -100 (NaN passes
    through), and the gradient, for any targets; g may be p or t (each value is read
    before its own gradient is stored). p, t, g, terms: (n,). The terms and the gradient
    in one loop: the terms alone in a loop of their own came out of gcc's
    -fassociative-math 1 ulp apart on some values."""
    cdef Py_ssize_t j
    cdef floating lp, l1p, q, one = 1, lo = -100
    for j in range(n):
        lp = f_log(p[j])
        lp = lo if lp < lo else lp
        if floating is float:                  # log1p(-p) for p in [0, 1], as above
            q = one - p[j]
            l1p = f_log(q) + f_one_plus_err(-p[j], q)
        else:
            l1p = f_log1p(-p[j])
        l1p = lo if l1p < lo else l1p
        terms[j] = -(t[j] * lp + (one - t[j]) * l1p)
        g[j] = _bce_grad(p[j], t[j], inv_size)


cdef inline void _bce_soft_padded(const floating* p, const floating* t, floating* g,
                                  floating* terms, Py_ssize_t n,
                                  floating inv_size) noexcept nogil:
    """_bce_soft_tile on copies of p and t padded to a whole number of 16 values, so
    that every value runs in the loop's vector body: a tile's length (n <= LOSS_TILE)
    moves with the arrays' offsets from a line (_tiled_block), and gcc's shorter copies
    of the loop rounded some float32 terms apart from its vector body (the loss 8e-11
    apart by grad's offset). g may be p or t (copied before g is written)."""
    cdef floating ps[LOSS_TILE + 16]
    cdef floating ts[LOSS_TILE + 16]
    cdef floating gs[LOSS_TILE + 16]
    cdef floating ws[LOSS_TILE + 16]
    cdef Py_ssize_t j, padded = (n + 15) // 16 * 16
    memcpy(ps, p, n * sizeof(floating))
    memcpy(ts, t, n * sizeof(floating))
    for j in range(n, padded):
        ps[j] = <floating>0.5
        ts[j] = 0
    _bce_soft_tile(ps, ts, gs, ws, padded, inv_size)
    memcpy(terms, ws, n * sizeof(floating))
    memcpy(g, gs, n * sizeof(floating))


cdef inline void _bce_tile(const floating* p, const floating* t, floating* g,
                           floating* terms, Py_ssize_t n, floating inv_size) noexcept nogil:
    """BCE's terms over one tile and their gradient. p, t, g: (n,). In float,
    where every target of the tile is 0 or 1 (binary labels, the usual case) one log a
    value, log(p) where t = 1 and log1p(-p) where t = 0: the same bits as the two-log
    form t log p + (1 - t) log1p(-p) (its other product is 0 times a finite clamped
    log; both take log1p(-p) as f_log(q) + f_one_plus_err(-p, q), q = 1 - p) at about
    half its cost. log1p(-p), not log(1 - p): 1 - p rounds, and a confident p = 1e-7
    gave 1.19e-7 for PyTorch's 1.0e-7 (1e-20: 0). terms: an L1 scratch of n values
    (_tiled_block sums them).

    float with g apart from p and t runs one loop: the one-log terms, the gradient and
    whether every target is 0 or 1, the two-log loop run after it where one is not. The
    targets were checked in a pass of their own first (kept for g = p or t, in place,
    where the gradient overwrites what the two-log terms read): at 16M values it read
    them from memory apart from the loop using them (the numba backend's _bce_tile does
    the same)."""
    cdef Py_ssize_t j
    cdef floating zero = 0, one = 1
    # double: always the two logs, log1p(-p) by libm
    cdef int soft = floating is double
    if not soft and not (overlap(g, p, n * sizeof(floating))
                         or overlap(g, t, n * sizeof(floating))):
        for j in range(n):
            soft |= (t[j] != zero) & (t[j] != one)
            terms[j] = _bce_binary_term(p[j], t[j])
            g[j] = _bce_grad(p[j], t[j], inv_size)
        if soft:   # (the gradient again, as the two-log loop writes it)
            _bce_soft_padded(p, t, g, terms, n, inv_size)
        return
    for j in range(n):   # (before any store: g may be t itself)
        soft |= (t[j] != zero) & (t[j] != one)
    # g may be p or t (in place): each value is read before its own gradient is stored
    if soft and floating is float:
        _bce_soft_padded(p, t, g, terms, n, inv_size)
    elif soft:   # (double: LOSS_TILE pieces from the block's start, _tiled_block)
        _bce_soft_tile(p, t, g, terms, n, inv_size)
    else:
        for j in range(n):
            terms[j] = _bce_binary_term(p[j], t[j])
            g[j] = _bce_grad(p[j], t[j], inv_size)


cdef inline double _terms_sum(const floating* terms, Py_ssize_t n) noexcept nogil:
    """Sum of n float terms in double, in a loop of its own over an L1 tile."""
    cdef Py_ssize_t j
    cdef double s = 0
    for j in range(n):
        s += <double>terms[j]
    return s


cdef inline void _bce_logits_tile(const floating* x, const floating* t, floating* g,
                                  floating* terms, Py_ssize_t n,
                                  floating inv_size) noexcept nogil:
    """The terms (1 - t) x - min(x, 0) + log1p(exp(-|x|)) (PyTorch's (1 - t) x - log
    sigmoid(x)) over one tile and the gradient g = (sigmoid(x) - t) * inv_size, sigmoid
    from the same exp. x, t, g: (n,); terms: an L1 scratch of n values (_tiled_block
    sums them). The linear part as (1 - t) x for x >= 0 and -t x below, so that no two
    large terms of opposite sign meet (reassociated, they cancel against the running
    sum);
    x = -inf gives PyTorch's (1 - t)(-inf) + inf: NaN for t <= 1 (and a NaN t), inf for
    t > 1 (-t x there)."""
    cdef Py_ssize_t j
    cdef floating xj, e, r, lin, zero = 0, one = 1
    cdef floating lowest = -INFINITY, nan = NAN
    for j in range(n):
        xj = x[j]
        e = f_exp_upto88(-xj if xj >= zero else xj)   # exp(-|x|) in (0, 1]; NaN passes
        r = one / (one + e)
        lin = (one - t[j]) * xj if xj >= zero else -(t[j] * xj)
        lin = lin if (xj > lowest) | (t[j] > one) else nan   # (| not or: gcc vectorizes)
        # log1p of e in (0, 1]: softplus's polynomial, no log and no division
        terms[j] = lin + f_log1p_small(e)
        g[j] = ((r if xj >= zero else e * r) - t[j]) * inv_size   # (x, t read above)


cdef enum FlatLoss:
    MSE = 0
    BCE = 1
    BCE_LOGITS = 2
    SMOOTH_L1 = 3


cdef inline double _tiled_block(FlatLoss kind, const floating* p, const floating* t,
                                floating* g, Py_ssize_t n, floating inv_size) noexcept nogil:
    """Sum of the BCE (kind BCE) or BCE-with-logits (BCE_LOGITS) terms over one block and
    their gradient. p, t, g: (n,). The tile functions compute the terms into an L1
    scratch a piece at a time, summed in double in tiles of LOSS_TILE values from the
    block's start, not in the loop that computes them (16M float32 logits 50% -> 70%
    of the copy bandwidth, against 60% summed in the loop; 4 Dec 2026): the sum's tiles
    do not depend on where the arrays lie, so in place (g = p or t) and out of place
    give the same bits.

    float32 BCE's pieces after the first start on g's cache lines (line_tile; p's and
    t's too where they sit at g's offset from a line, as NumPy's large arrays do), each
    piece checking its own targets (soft ones in _bce_soft_padded): gcc's BCE loop
    reads p from memory five times a 512-bit vector, and reads straddling two lines
    cost it more than numba's loop. 16M float32 values 16 bytes past a line, 1 thread,
    process CPU time, interleaved (7 Dec 2026): 1.38 -> 1.0 ns a value (numba's 1.0);
    64K in cache 0.82 -> 0.84. BCE with logits keeps LOSS_TILE pieces from the block's
    start: on lines it ran 1.13 -> 0.88, but gcc contracts its gradient's e r - t into
    an fma in some of the loop's copies (vector body, shorter tails) and not in others,
    so a value's gradient moved 1 ulp with the array's offset from a line
    (test_position_independent_bits)."""
    cdef floating terms[2 * LOSS_TILE]
    cdef Py_ssize_t t0 = 0, m, have = 0, k
    cdef double s = 0
    while t0 < n:
        if kind == BCE and floating is float:
            m = line_tile(g + t0, sizeof(floating), n - t0, LOSS_TILE)
        else:
            m = min(<Py_ssize_t>LOSS_TILE, n - t0)
        if kind == BCE:
            _bce_tile(p + t0, t + t0, g + t0, terms + have, m, inv_size)
        else:
            _bce_logits_tile(p + t0, t + t0, g + t0, terms + have, m, inv_size)
        have += m
        t0 += m
        while have >= LOSS_TILE or (t0 == n and have > 0):   # (have < 2 LOSS_TILE)
            k = min(have, <Py_ssize_t>LOSS_TILE)
            s += _terms_sum(terms, k)
            if have > k:   # (BCE: the head of the next tile, under a line of values)
                memmove(terms, terms + k, (have - k) * sizeof(floating))
            have -= k
    return s


cdef inline double _smooth_l1_block(const floating* p, const floating* t, floating* g,
                                    Py_ssize_t n, floating inv_size,
                                    double beta) noexcept nogil:
    """Sum of smooth-L1 terms (L1 at beta = 0) over one block and the gradient
    g = (d / beta where |d| < beta, else sign(d)) * inv_size. p, t, g: (n,).
    For beta > 0 in the select-free form gcc vectorizes (with the if/else form it wrote
    scalar code with a branch, 15x slower): with c = min(|d|, beta) the term is
    c (|d| - c / 2) / beta, and the gradient clamp(d / beta, -1, 1)."""
    cdef Py_ssize_t j
    cdef floating d, ad, c, r, zero = 0, one = 1
    cdef floating b = <floating>beta, half = <floating>0.5
    cdef floating inv_b = <floating>(1.0 / beta if beta else 0.0)
    cdef double s = 0
    if beta == 0:
        for j in range(n):
            d = p[j] - t[j]
            s += <double>(d if d >= zero else -d)
            # sign(d): 0 for d = 0 and for NaN, as PyTorch's L1 gradient
            g[j] = inv_size * (<floating>(d > zero) - <floating>(d < zero))
        return s
    for j in range(n):
        d = p[j] - t[j]
        ad = d if d >= zero else -d
        c = ad if ad < b else b                  # NaN: b, and the term stays NaN
        s += <double>(c * (ad - half * c) * inv_b)
        r = d * inv_b
        r = one if r > one else r                # NaN passes both: NaN, as PyTorch
        r = -one if r < -one else r
        g[j] = r * inv_size
    return s


cdef inline double _flat_block(FlatLoss kind, const floating* p, const floating* t,
                               floating* g, Py_ssize_t n, floating scale,
                               double beta) noexcept nogil:
    if kind == MSE:
        return _mse_block(p, t, g, n, scale)
    if kind == SMOOTH_L1:
        return _smooth_l1_block(p, t, g, n, scale, beta)
    return _tiled_block(kind, p, t, g, n, scale)


cdef double _flat_mean(FlatLoss kind, const floating* pred, const floating* target,
                       floating* grad, Py_ssize_t n, floating scale,
                       double beta) noexcept nogil:
    """The mean of an elementwise loss over n >= 1 values, its gradient times scale
    written into grad: blocks of FLAT_CHUNK in at most MAX_CHUNKS fixed chunks, the chunk
    sums added in order (the same bits for any thread count)."""
    cdef Py_ssize_t nblocks = (n + FLAT_CHUNK - 1) // FLAT_CHUNK, b, start
    cdef Py_ssize_t nch = min(nblocks, <Py_ssize_t>MAX_CHUNKS), k, b0, b1
    cdef double partial[MAX_CHUNKS]
    cdef double total = 0
    for k in prange(nch, schedule="static", num_threads=threads_for(n)):
        b0 = k * nblocks // nch
        b1 = (k + 1) * nblocks // nch
        partial[k] = 0
        for b in range(b0, b1):
            start = b * FLAT_CHUNK
            partial[k] += _flat_block(kind, pred + start, target + start, grad + start,
                                      min(<Py_ssize_t>FLAT_CHUNK, n - start), scale, beta)
    for k in range(nch):
        total += partial[k]
    return total / n


cdef double _flat_loss(FlatLoss kind, cnp.ndarray pred, cnp.ndarray target,
                       cnp.ndarray grad, double numerator, double beta=0) except *:
    """_flat_mean over pred's values (any shape; target and grad of its dtype and size,
    all C-contiguous: the checks of _ndarrays.pxd), the gradient scaled by
    numerator / size."""
    cdef int dtype = float_type(pred)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(pred)
    cdef void* p = values_data(pred, dtype, n, False, "pred")
    cdef void* t = values_data(target, dtype, n, False, "target")
    cdef void* g = values_data(grad, dtype, n, True, "grad")
    cdef double scale = numerator / max(n, 1)
    cdef double loss
    if n == 0:
        return 0.0
    if dtype == cnp.NPY_FLOAT:
        with nogil:
            loss = _flat_mean(kind, <const float*>p, <const float*>t, <float*>g, n,
                              <float>scale, beta)
    else:
        with nogil:
            loss = _flat_mean(kind, <const double*>p, <const double*>t, <double*>g, n,
                              scale, beta)
    return loss


def mse_loss(cnp.ndarray pred not None, cnp.ndarray target not None,
             cnp.ndarray grad not None):
    """pred, target, grad: one float dtype and size, C-contiguous (any shape). Returns the
    mean squared error."""
    return _flat_loss(MSE, pred, target, grad, 2.0)


def bce_loss(cnp.ndarray pred not None, cnp.ndarray target not None,
             cnp.ndarray grad not None):
    """pred, target, grad: as mse_loss's. Returns the mean binary cross-entropy."""
    return _flat_loss(BCE, pred, target, grad, 1.0)


def bce_with_logits_loss(cnp.ndarray logits not None, cnp.ndarray target not None,
                         cnp.ndarray grad not None):
    """logits, target, grad: as mse_loss's. Returns the mean binary cross-entropy of
    sigmoid(logits)."""
    return _flat_loss(BCE_LOGITS, logits, target, grad, 1.0)


def smooth_l1_loss(cnp.ndarray pred not None, cnp.ndarray target not None, double beta,
                   cnp.ndarray grad not None):
    """pred, target, grad: as mse_loss's. Returns the mean smooth-L1 loss (L1 at
    beta = 0)."""
    return _flat_loss(SMOOTH_L1, pred, target, grad, 1.0, beta)
