"""Launch configuration of every CUDA kernel, set once.

Kernels with shared memory are built by factories keyed on these numbers, so a test
may patch them small (``config.THREADS = 32``) to exercise multi-block paths: the next
call builds (lazily, on first launch) kernels for the new sizes.
"""
import os

# Each may be overridden by an environment variable read at import
# (FASTNN_CUDA_THREADS, FASTNN_CUDA_MAX_BLOCKS, FASTNN_CUDA_BN_THREADS,
# FASTNN_CUDA_ROW_LANES, FASTNN_CUDA_TILE, FASTNN_CUDA_GEMM, FASTNN_CUDA_GEMM_DIRECT,
# FASTNN_CUDA_LAUNCH):
# the simulator tests run a subprocess with small values.

# Threads per block of 1-D kernels and of the per-row / per-channel reductions.
# A power of two (the shared-memory tree reductions halve it).
THREADS = int(os.environ.get("FASTNN_CUDA_THREADS", 256))

# Grid-stride loops: at most this many blocks per launch; each thread then loops.
MAX_BLOCKS = int(os.environ.get("FASTNN_CUDA_MAX_BLOCKS", 4096))

# Threads per block of the BatchNorm kernels (a power of two, at least 8): their grids
# have only one block per channel (group), so the blocks are large.
BN_THREADS = int(os.environ.get("FASTNN_CUDA_BN_THREADS", 1024))

# Threads per row of the row-wise kernels (softmax, softmax-cross-entropy): a power of
# two, at most THREADS (a block then holds THREADS // ROW_LANES rows).
ROW_LANES = int(os.environ.get("FASTNN_CUDA_ROW_LANES", 32))

# Side of the square shared-memory tiles of the numba.cuda GEMM (TILE x TILE threads).
TILE = int(os.environ.get("FASTNN_CUDA_TILE", 16))

# "auto": cuBLAS through CuPy when CuPy imports (and this is a real GPU), else the
# tiled numba.cuda GEMM. "numba" forces the numba GEMM. Read once at import.
GEMM = os.environ.get("FASTNN_CUDA_GEMM", "auto")

# With cuBLAS: call sgemm/dgemm on the operands' raw device pointers (CuPy's low-level
# bindings) rather than through CuPy arrays and cupy.cublas.gemm; "0" takes the CuPy
# array path. Read once at import.
GEMM_DIRECT = os.environ.get("FASTNN_CUDA_GEMM_DIRECT", "1") != "0"

# How kernels launch (launch.py): "direct" through the driver's cuLaunchKernel once numba
# has compiled them for the arguments' types; "numba" every launch through numba's
# dispatcher; "check" direct, comparing each launch's arguments with numba's (tests).
LAUNCH = os.environ.get("FASTNN_CUDA_LAUNCH", "direct")


def blocks(n, threads=None):
    """Blocks for a grid-stride loop over n items."""
    check()
    threads = threads or THREADS
    return max(1, min(MAX_BLOCKS, (n + threads - 1) // threads))


def check():
    """A ValueError for settings a GPU cannot launch: THREADS at most 512 (the
    row-wise softmax, cross-entropy, layer-norm and pooling kernels use 69-128
    registers a thread for sm_90 (ptxas 13.0; LayerNorm's float64 backward 128, exactly
    a 512-thread block's share, the cap kernels made for more than 256 threads get:
    launch.register_cap), so 1024-thread blocks exceed a block's 65,536 registers),
    BN_THREADS at most 1024 (its kernels carry launch bounds), TILE x TILE at most 1024
    threads (capped likewise), MAX_BLOCKS at most 65,535 (a grid's y limit, where the
    dense kernels put it)."""
    if THREADS < 1 or THREADS & (THREADS - 1) or THREADS > 512:
        raise ValueError(f"fastnn cuda config: THREADS must be a power of two up to 512, "
                         f"got {THREADS}")
    if BN_THREADS < 8 or BN_THREADS & (BN_THREADS - 1) or BN_THREADS > 1024:
        raise ValueError("fastnn cuda config: BN_THREADS must be a power of two from 8 to "
                         f"1024, got {BN_THREADS}")
    if ROW_LANES < 1 or ROW_LANES & (ROW_LANES - 1):
        raise ValueError(f"fastnn cuda config: ROW_LANES must be a power of two, got {ROW_LANES}")
    if not 1 <= TILE <= 32:
        raise ValueError(f"fastnn cuda config: TILE must be from 1 to 32 (TILE x TILE "
                         f"threads a block), got {TILE}")
    if not 1 <= MAX_BLOCKS <= 65535:
        raise ValueError(f"fastnn cuda config: MAX_BLOCKS must be from 1 to 65535, got "
                         f"{MAX_BLOCKS}")
    if LAUNCH not in ("direct", "numba", "check"):
        raise ValueError(f"fastnn cuda config: LAUNCH must be direct, numba or check, got "
                         f"{LAUNCH!r}")


def row_groups():
    """(lanes, rows per block) of the row-wise kernels."""
    check()
    lanes = min(ROW_LANES, THREADS)
    return lanes, THREADS // lanes
