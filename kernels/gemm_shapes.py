"""Which way round the Linear forward's product runs, for both CPU backends.

``y = x @ W.T`` (N, F) can be computed as written, or as its transpose
``y.T = W @ x.T`` into an (F, N) scratch that the fused bias/activation pass then reads
transposed into y. The two are the same SciPy ``?gemm`` call with the operands swapped,
but OpenBLAS picks its blocking from the shape it is given, and for a short batch of a
wide layer the transposed form is far faster (float32, SciPy's OpenBLAS 0.3.30, 2
threads on the 2-core EPYC, median-ish of 7 runs, microseconds, as written -> transposed):

    batch  32:  784 -> 1024   517 -> 331    1024 -> 1024  1118 -> 469   784 -> 100  61 -> 48
    batch 128:  784 -> 1024  1261 -> 1061   1024 -> 1024  1841 -> 1597  784 -> 100 151 -> 144
    batch 256:  784 -> 1024  2226 -> 2221   1024 -> 1024  3240 -> 3186 (level)
    narrow outputs lose: 1024 -> 10 at batch 128: 41 -> 78; at batch 256: 75 -> 219

(measured with /tmp scripts timing ``scipy.linalg.blas.sgemm`` both ways; the rule below
keeps the transposed form to where it won). Intel MKL (fastnn/mkl_blas.py) on the 2-core
Xeon, same way: batch 32 784 -> 1024 324 -> 246-262, 1024 -> 1024 497-515 -> 333-354,
784 -> 100 50 -> 49; batch 128 and 256 level or 2-8% for the transposed form; so the
rule holds there too, from 128 outputs (TRANSPOSED_MIN_FEATURES_MKL below). The
transpose read in the bias/activation pass costs one extra in-cache pass over y
(N x F <= 128 x F values).
"""

# Kept although, on the EPYC of 1 Dec 2026, linear_forward alone ran 784 -> 100 at batch
# 128 8-10% slower transposed (148 against 161 us, interleaved): the whole training step
# of the 784-100-10 MLP ran 2-4% faster with it (the two rules A/B in one process,
# interleaved; 415-426 against 425-442 us).
TRANSPOSED_MAX_ROWS = 128
TRANSPOSED_MIN_FEATURES = 64


# With Intel MKL computing the product the transposed form only pays for wider layers:
# on the 2-core Emerald Rapids Xeon (2 Dec 2026) the whole 784-100-10 step at batch 128
# ran 1.7-2.0% faster with 784 -> 100 plain (both backends, the two rules A/B in one
# process, interleaved: numba 330 against 336 us, cython 328 against 334), while batch
# 32's 1024-wide layers keep the gains above.
TRANSPOSED_MIN_FEATURES_MKL = 128


def transposed_forward(n, fout, mkl=False):
    """True when the Linear forward of n rows and fout outputs should compute y.T; mkl:
    whether Intel MKL computes the product."""
    min_features = TRANSPOSED_MIN_FEATURES_MKL if mkl else TRANSPOSED_MIN_FEATURES
    return n <= TRANSPOSED_MAX_ROWS and fout >= min_features
