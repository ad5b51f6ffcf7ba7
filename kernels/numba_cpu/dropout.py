"""Inverted dropout with a counter-based generator.

Element i is kept when hash(seed, i) >= p, where the hash is SplitMix64's finalizer
applied to a Weyl sequence: a pure function of (seed, i). So the mask depends on the
seed and the shape only, never on the thread count or on how the loop is split,
and no generator state is shared between threads.
"""
import numpy as np
from numba import prange

from ..numpy_product import numpy_multiplies
from ._buffers import flat, out_like
from . import config
from .config import elementwise, helper, kernel

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _splitmix64(z):
    """SplitMix64's output function on a Python int (for hashing the seed)."""
    z &= _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


@helper
def _uniform(key, i):
    """A uniform float64 in [0, 1) with 24 random bits, from (key, i)."""
    z = key + np.uint64(i) * np.uint64(_GOLDEN)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return float(z >> np.uint64(40)) * (1.0 / (1 << 24))


@kernel
def _dropout(x, p, key, mask, out):  # IN x (n,); OUT mask, out (n,)
    scale = x.dtype.type(1.0 / (1.0 - p))
    zero = x.dtype.type(0)
    for i in prange(x.shape[0]):
        m = scale if _uniform(key, i) >= p else zero
        mask[i] = m
        out[i] = x[i] * m


@elementwise(streams=True)
def _multiply(a, b, out):  # IN a, b (n,); OUT out (n,)
    for i in prange(a.shape[0]):
        out[i] = a[i] * b[i]


def dropout_forward(x, p, seed, mask=None, out=None):
    """Inverted dropout. x: any shape; p: drop probability in [0, 1); seed: int fixing
    the mask (the same for any thread count). mask, out: same shape as x or None;
    mask gets 0 or 1/(1-p) in x's dtype. Returns (y = x * mask, mask)."""
    mask = out_like(x, mask)
    out = out_like(x, out)
    key = np.uint64(_splitmix64(int(seed) + _GOLDEN))
    _dropout(x.size, flat(x), float(p), key, flat(mask), flat(out))
    return out, mask


def dropout_backward(grad_out, mask, out=None):
    """grad_in = grad_out * mask. grad_out, mask, out: same shape."""
    # the same bits, sooner; `fastnn compile` (its small arrays) still compiles the kernel
    if numpy_multiplies(grad_out.nbytes, grad_out.size) and not config._every_variant:
        return np.multiply(grad_out, mask, out=out)
    out = out_like(grad_out, out)
    _multiply(grad_out.size, flat(grad_out), flat(mask), flat(out))
    return out
