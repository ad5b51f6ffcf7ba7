# cython: language_level=3
# distutils: extra_compile_args = -fno-math-errno
"""Inverted dropout with a counter-based mask.

Element i is kept when 24 bits of hash(seed, i) reach p * 2**24, so the mask is a
pure function of (seed, index): the same for any thread count or block split, and
nothing is stored between calls. The backward is ``_activations.binary(B_MUL)``.
"""
cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport ceil
from libc.stdint cimport uint32_t, uint64_t

from _common cimport floating, threads_for, fnn_seed_key, fnn_dropout_bits
from _ndarrays cimport float_type, values_data

DEF BLOCK = 16384


cdef inline void _dropout_block(const floating* x, floating* mask, floating* y,
                                Py_ssize_t start, Py_ssize_t n, uint64_t key,
                                uint32_t threshold, floating scale) noexcept nogil:
    """mask = keep * scale, y = x * mask for elements start .. start + n.
    x, mask, y: (n,) already offset to `start`."""
    cdef Py_ssize_t i
    cdef floating m
    for i in range(n):
        m = scale if fnn_dropout_bits(key, <uint64_t>(start + i)) >= threshold else 0
        mask[i] = m
        y[i] = x[i] * m


cdef void _dropout(const floating* x, floating* mask, floating* out, Py_ssize_t n,
                   uint64_t key, uint32_t threshold, floating scale) noexcept nogil:
    """x, mask, out: (n,), n > 0."""
    cdef Py_ssize_t nblocks = (n + BLOCK - 1) // BLOCK, b, start
    if threads_for(n) == 1:     # no OpenMP region for one thread (~0.6-1 us a call)
        for b in range(nblocks):
            start = b * BLOCK
            _dropout_block(x + start, mask + start, out + start, start,
                           min(<Py_ssize_t>BLOCK, n - start), key, threshold, scale)
        return
    for b in prange(nblocks, schedule="static", num_threads=threads_for(n)):
        start = b * BLOCK
        _dropout_block(x + start, mask + start, out + start, start,
                       min(<Py_ssize_t>BLOCK, n - start), key, threshold, scale)


def dropout_forward(cnp.ndarray x not None, double p, object seed,
                    cnp.ndarray mask not None, cnp.ndarray out not None):
    """x, mask, out: arrays of one float dtype and one size (any shape, read in order),
    C-contiguous (the checks of _ndarrays.pxd, not memoryviews); p in [0, 1); seed:
    any int (taken mod 2**64)."""
    cdef int kind = float_type(x)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    cdef void* xp = values_data(x, kind, n, False, "x")
    cdef void* mp = values_data(mask, kind, n, True, "mask")
    cdef void* yp = values_data(out, kind, n, True, "out")
    cdef uint64_t key = fnn_seed_key(<uint64_t>(int(seed) & 0xFFFFFFFFFFFFFFFF))
    cdef uint32_t threshold = <uint32_t>ceil(p * 16777216.0)
    cdef double scale = 1.0 / (1.0 - p)
    if n == 0:
        return
    if kind == cnp.NPY_FLOAT:
        with nogil:
            _dropout(<const float*>xp, <float*>mp, <float*>yp, n, key, threshold,
                     <float>scale)
    else:
        with nogil:
            _dropout(<const double*>xp, <double*>mp, <double*>yp, n, key, threshold, scale)
