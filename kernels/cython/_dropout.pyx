# cython: language_level=3
# distutils: extra_compile_args = -fno-math-errno
"""Inverted dropout with a counter-based mask.

Element i is kept when 24 bits of hash(seed, i) reach p * 2**24, so the mask is a
pure function of (seed, index): the same for any thread count or block split, and
nothing is stored between calls. The backward is ``_activations.binary(B_MUL)``.
"""
from cython.parallel cimport prange
from libc.math cimport ceil
from libc.stdint cimport uint32_t, uint64_t

from _common cimport floating, threads_for, fnn_seed_key, fnn_dropout_bits

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


def dropout_forward(const floating[::1] x, double p, object seed, floating[::1] mask,
                    floating[::1] out):
    """x, mask, out: (n,) flat views; p in [0, 1); seed: any int (taken mod 2**64)."""
    cdef Py_ssize_t n = x.shape[0], nblocks, b, start
    cdef uint64_t key = fnn_seed_key(<uint64_t>(int(seed) & 0xFFFFFFFFFFFFFFFF))
    cdef uint32_t threshold = <uint32_t>ceil(p * 16777216.0)
    cdef floating scale = <floating>(1.0 / (1.0 - p))
    if n == 0:
        return
    nblocks = (n + BLOCK - 1) // BLOCK
    if threads_for(n) == 1:     # no OpenMP region for one thread (~0.6-1 us a call)
        with nogil:
            for b in range(nblocks):
                start = b * BLOCK
                _dropout_block(&x[start], &mask[start], &out[start], start,
                               min(<Py_ssize_t>BLOCK, n - start), key, threshold, scale)
        return
    for b in prange(nblocks, nogil=True, schedule="static", num_threads=threads_for(n)):
        start = b * BLOCK
        _dropout_block(&x[start], &mask[start], &out[start], start,
                       min(<Py_ssize_t>BLOCK, n - start), key, threshold, scale)
