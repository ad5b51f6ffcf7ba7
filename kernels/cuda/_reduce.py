"""Block-wide reductions in shared memory, and kernel factories keyed on launch sizes.

A shared array's size must be a compile-time constant, so kernels that reduce are
built by ``cached_factory`` functions taking ``config.THREADS``: one compile per size.
Reductions run in float64 whatever the data type: sums over a row or a channel stay
accurate in float32 and do not depend on the block size more than rounding.
"""
import functools
import math

import numpy as np
from numba import cuda

from ._common import dmax


@cuda.jit(device=True)
def block_sum(sh, value):
    """Sum of ``value`` over the threads of the block, returned to every thread.

    sh: float64 shared array of blockDim.x entries (blockDim.x a power of two)."""
    t = cuda.threadIdx.x
    sh[t] = value
    cuda.syncthreads()
    s = cuda.blockDim.x // 2
    while s > 0:
        if t < s:
            sh[t] += sh[t + s]
        cuda.syncthreads()
        s //= 2
    total = sh[0]
    cuda.syncthreads()
    return total


@cuda.jit(device=True)
def column_sum(sh, value):
    """Sum of ``value`` over threadIdx.y for each threadIdx.x, returned to every thread.

    sh: float64 shared array (blockDim.y, blockDim.x), blockDim.y a power of two."""
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    sh[ty, tx] = value
    cuda.syncthreads()
    s = cuda.blockDim.y // 2
    while s > 0:
        if ty < s:
            sh[ty, tx] += sh[ty + s, tx]
        cuda.syncthreads()
        s //= 2
    total = sh[0, tx]
    cuda.syncthreads()
    return total


def cached_factory(fn):
    """Memoise a kernel factory on its (hashable) size arguments."""
    return functools.lru_cache(maxsize=None)(fn)


# Row-wise kernels (softmax, softmax-cross-entropy) give each row a group of `lanes`
# consecutive threads (a warp when lanes is 32) instead of a whole block: a row of a
# thousand values keeps every lane busy with ~32 loads per pass, and a reduction over
# the group is log2(lanes) steps instead of log2(blockDim.x). The steps go through
# shared memory with syncthreads (the simulator, which CI runs, has no warp shuffles),
# so every thread of the block must make every call, valid row or not.

@cuda.jit(device=True)
def group_sum(sh, value):
    """Sum of ``value`` over the thread's group, returned to every thread of the group.

    sh: float64 shared array (groups, lanes), lanes a power of two; thread t is lane
    t % lanes of group t // lanes."""
    lanes = sh.shape[1]
    g = cuda.threadIdx.x // lanes
    lane = cuda.threadIdx.x % lanes
    sh[g, lane] = value
    cuda.syncthreads()
    s = lanes // 2
    while s > 0:
        if lane < s:
            sh[g, lane] += sh[g, lane + s]
        cuda.syncthreads()
        s //= 2
    total = sh[g, 0]
    cuda.syncthreads()
    return total


@cuda.jit(device=True)
def group_max(sh, value):
    """Maximum of ``value`` over the thread's group (NaN wins), as ``group_sum``."""
    lanes = sh.shape[1]
    g = cuda.threadIdx.x // lanes
    lane = cuda.threadIdx.x % lanes
    sh[g, lane] = value
    cuda.syncthreads()
    s = lanes // 2
    while s > 0:
        if lane < s:
            other = sh[g, lane + s]
            if other > sh[g, lane] or math.isnan(other):
                sh[g, lane] = other
        cuda.syncthreads()
        s //= 2
    result = sh[g, 0]
    cuda.syncthreads()
    return result


@cuda.jit(device=True)
def _exp_shifted(v, m, neg_inf):
    """exp(v - m) for the online sum, 0 for v = -inf: while every value seen so far is
    -inf, m is -inf too and exp(v - m) would be NaN (a masked logit must add nothing)."""
    return 0.0 if v == neg_inf else math.exp(v - m)


@cuda.jit(device=True)
def row_max_sumexp(sh, x, row, valid, neg_inf):
    """(max, sum of exp(x[row, :] - max)) of one row, read once by the thread's group.

    sh: float64 shared array (groups, lanes) as ``group_sum``; x: (N, C); neg_inf: -inf
    in x's type. Lane l reads columns l, l + lanes, ... four at a time (four loads in
    flight); each lane keeps a running max and rescales its float64 sum when the max
    grows (an online softmax), then the group merges the lanes' (max, sum) pairs.
    Returns the max (float64, a value of x) and the sum (float64), NaN when the row
    holds a NaN. Every thread of the block must call it, valid row or not."""
    lanes = sh.shape[1]
    c = x.shape[1]
    m = neg_inf
    s = np.float64(0.0)
    if valid:
        j = cuda.threadIdx.x % lanes
        while j + 3 * lanes < c:
            v0 = x[row, j]
            v1 = x[row, j + lanes]
            v2 = x[row, j + 2 * lanes]
            v3 = x[row, j + 3 * lanes]
            top = dmax(dmax(v0, v1), dmax(v2, v3))
            if top > m:
                s *= math.exp(m * 1.0 - top)
                m = top
            s += ((_exp_shifted(v0, m, neg_inf) + _exp_shifted(v1, m, neg_inf))
                  + (_exp_shifted(v2, m, neg_inf) + _exp_shifted(v3, m, neg_inf)))
            j += 4 * lanes
        while j < c:
            v = x[row, j]
            if v > m:
                s *= math.exp(m * 1.0 - v)
                m = v
            s += _exp_shifted(v, m, neg_inf)
            j += lanes
    top = group_max(sh, m)
    # a lane that saw no column (C < lanes) holds s = 0 and m = -inf: it adds nothing
    s = group_sum(sh, s * math.exp(m * 1.0 - top) if s != 0.0 else 0.0)
    return top, s
