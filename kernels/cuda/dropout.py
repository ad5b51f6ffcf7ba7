"""Inverted dropout with a counter-based generator: element i keeps when
hash(seed, i) / 2**32 >= p. The mask depends on the seed and the index only, not on
the launch configuration, so it is reproducible on any GPU (and the simulator).

The hash is MurmurHash3's 32-bit finalizer applied twice with seed-derived keys; every
product is of two 32-bit numbers, so nothing overflows 64-bit unsigned arithmetic.
x, mask, out: any shape, same shape; NumPy or device arrays (``_common.Call``).
"""
import math

import numpy as np
from numba import cuda

from . import config
from ._common import Call, flat
from .launch import jit_kernel

_MASK32 = np.uint64(0xFFFFFFFF)
_C1 = np.uint64(0x85EBCA6B)
_C2 = np.uint64(0xC2B2AE35)
_GOLDEN = np.uint64(0x9E3779B9)
_S16 = np.uint64(16)
_S13 = np.uint64(13)
_S32 = np.uint64(32)


@cuda.jit(device=True)
def _fmix32(h):
    h ^= h >> _S16
    h = (h * _C1) & _MASK32
    h ^= h >> _S13
    h = (h * _C2) & _MASK32
    h ^= h >> _S16
    return h


@cuda.jit(device=True)
def uniform_bits(key_a, key_b, i):
    """A uniform 32-bit number (in a uint64) for index i (uint64) under keys (uint64 <
    2**32); its uniform number in [0, 1) is this / 2**32."""
    lo = i & _MASK32
    hi = i >> _S32
    h = _fmix32(((lo * _GOLDEN) & _MASK32) ^ key_a)
    return _fmix32(h ^ ((hi + key_b) & _MASK32))


@jit_kernel
def _dropout(x, threshold, scale, key_a, key_b, mask, out):
    """Keeps element i when uniform_bits >= threshold = ceil(p 2**32) (that is, when
    bits / 2**32 >= p: integers compared, no floating point)."""
    zero = x.dtype.type(0)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        m = scale if uniform_bits(key_a, key_b, np.uint64(i)) >= threshold else zero
        mask[i] = m
        out[i] = x[i] * m


@jit_kernel
def _multiply(a, b, out):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        out[i] = a[i] * b[i]


def _keys(seed):
    words = np.random.SeedSequence(int(seed)).generate_state(2, dtype=np.uint32)
    return np.uint64(words[0]), np.uint64(words[1])


def dropout_forward(x, p, seed, mask=None, out=None):
    """y = x * mask, mask = (u >= p) / (1 - p), u from the counter-based hash of (seed, i).

    x: any shape; mask, out: same shape as x or None. Returns (y, mask)."""
    call = Call(x, mask, out)
    dx = call.arg(x)
    dmask = call.out(mask, x.shape, x.dtype)
    dout = call.out(out, x.shape, x.dtype)
    if dx.size:
        key_a, key_b = _keys(seed)
        _dropout[config.blocks(dx.size), config.THREADS](
            flat(dx), np.uint64(math.ceil(p * 4294967296.0)), x.dtype.type(1.0 / (1.0 - p)),
            key_a, key_b, flat(dmask),
            flat(dout))
    call.sync()
    return call.result(dout, out), call.result(dmask, mask)


def dropout_backward(grad_out, mask, out=None):
    """grad_in = grad_out * mask. grad_out, mask, out: same shape."""
    call = Call(grad_out, mask, out)
    dg, dm = call.arg(grad_out), call.arg(mask)
    dout = call.out(out, grad_out.shape, grad_out.dtype)
    if dg.size:
        _multiply[config.blocks(dg.size), config.THREADS](flat(dg), flat(dm), flat(dout))
    return call.done(dout, out)
