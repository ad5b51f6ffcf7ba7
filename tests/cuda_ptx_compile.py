"""Compile the CUDA backend's kernels to PTX for compute capability 9.0 with numba's real
CUDA compiler (its typing and NVVM code generation) on a machine without a GPU.

Run by tests/test_cuda_ptx.py in a subprocess: it pretends a device is present so the
backend's modules import, which must not leak into other tests. Exit status 77 when
CUDA's libNVVM is not installed (nothing can be compiled), 0 when every kernel compiled.
Each kernel is compiled for the argument types its launcher passes, in float32 and
float64, with the launch sizes of ``config`` (shared arrays are sized by them); the
float32 versions must not compute in float64 except where FLOAT64_ON_PURPOSE says.
"""
import sys

from numba import cuda, types

# --register-caps: only check the kernels' register caps against their block sizes at
# the launch sizes of the environment (register_caps below), which needs no libNVVM
REGISTER_CAPS = "--register-caps" in sys.argv[1:]

if not REGISTER_CAPS:
    try:
        from numba.cuda.cudadrv.nvvm import NVVM
        NVVM()
    except Exception as exc:  # noqa: BLE001 - any failure to load libNVVM: cannot check
        print(f"libNVVM not available: {exc}")
        sys.exit(77)

import numba.cuda.dispatcher  # noqa: E402

cuda.is_available = lambda: True  # the backend's modules refuse to import without a GPU


class _Device:
    """Device functions compile for the current device's compute capability."""
    compute_capability = (9, 0)


numba.cuda.dispatcher.get_current_device = lambda: _Device()

from fastnn.kernels.cuda import (activations, batchnorm, config, conv, dense,  # noqa: E402
                                 depthwise, device, dropout, gemm, layernorm, losses,
                                 optim)

i64, f64, u64, b = types.int64, types.float64, types.uint64, types.boolean


def arr(dtype, ndim):
    return types.Array(dtype, ndim, "C")


def kernels(t):
    """(name, kernel, argument types) for element type t."""
    np_name = str(t)
    a1, a2, a3, a4 = arr(t, 1), arr(t, 2), arr(t, 3), arr(t, 4)
    geometry = (i64,) * 6  # kernel height and width, strides, paddings
    lanes, _ = config.row_groups()
    softmax_fwd, softmax_bwd = activations._softmax_kernels(config.THREADS, lanes, np_name)
    log_fwd, log_bwd = activations._softmax_kernels(config.THREADS, lanes, np_name, True)
    ln_fwd, ln_bwd = layernorm._layer_norm_kernels(config.THREADS, lanes, np_name)
    bn2d = batchnorm._kernels2d(config.BN_THREADS)
    bn3d = batchnorm._kernels(config.BN_THREADS)
    bn_fwd = lambda x: (x, a1, a1, a1, a1, b, f64, f64, b, x, a1, a1)  # noqa: E731
    bn_bwd = lambda x: (x, x, a1, a1, a1, b, b, a1, b, a1, b, x)  # noqa: E731
    yield from [
        ("relu", activations._relu, (a1, a1)),
        ("relu_backward", activations._relu_backward, (a1, a1, a1)),
        ("leaky_relu", activations._leaky_relu, (a1, t, a1)),
        ("leaky_relu_backward", activations._leaky_relu_backward, (a1, a1, t, a1)),
        ("sigmoid", activations._sigmoid, (a1, a1)),
        ("sigmoid_backward", activations._sigmoid_backward, (a1, a1, a1)),
        ("tanh", activations._tanh, (a1, a1)),
        ("tanh_backward", activations._tanh_backward, (a1, a1, a1)),
        ("gelu", activations._gelu, (a1, a1)),
        ("gelu_backward", activations._gelu_backward, (a1, a1, a1)),
        ("silu", activations._silu, (a1, a1)),
        ("silu_backward", activations._silu_backward, (a1, a1, a1)),
        ("elu", activations._elu, (a1, t, a1)),
        ("elu_backward", activations._elu_backward, (a1, a1, t, a1)),
        ("softplus", activations._softplus, (a1, t, t, a1)),
        ("softplus_backward", activations._softplus_backward, (a1, a1, t, t, a1)),
        ("softsign", activations._softsign, (a1, a1)),
        ("gelu_tanh", activations._gelu_tanh, (a1, a1)),
        ("gelu_tanh_backward", activations._gelu_tanh_backward, (a1, a1, a1)),
        ("mish", activations._mish, (a1, a1)),
        ("hardsigmoid", activations._hardsigmoid, (a1, a1)),
        ("hardsigmoid_backward", activations._hardsigmoid_backward, (a1, a1, a1)),
        ("hardswish", activations._hardswish, (a1, a1)),
        ("hardswish_backward", activations._hardswish_backward, (a1, a1, a1)),
        ("mish_backward", activations._mish_backward, (a1, a1, a1)),
        ("softsign_backward", activations._softsign_backward, (a1, a1, a1)),
        ("hardtanh", activations._hardtanh, (a1, t, t, a1)),
        ("hardtanh_backward", activations._hardtanh_backward, (a1, a1, t, t, a1)),
        ("sine", activations._sine, (a1, t, a1)),
        ("sine_backward", activations._sine_backward, (a1, a1, t, a1)),
        ("softmax forward", softmax_fwd, (a2, a2)),
        ("softmax backward", softmax_bwd, (a2, a2, a2)),
        ("log-softmax forward", log_fwd, (a2, a2)),
        ("log-softmax backward", log_bwd, (a2, a2, a2)),
        ("softmax-CE", losses._cross_entropy_kernel(config.THREADS, lanes, np_name),
         (a2, arr(i64, 1), a2, b, a2, arr(f64, 1))),
        ("mse", losses._mse, (a1, a1, t, a1, arr(f64, 1))),
        ("bce", losses._bce, (a1, a1, t, a1, arr(f64, 1))),
        ("bce with logits", losses._bce_logits, (a1, a1, t, a1, arr(f64, 1))),
        ("smooth l1", losses._smooth_l1, (a1, a1, t, t, a1, arr(f64, 1))),
        ("column sums (+ act')", dense._column_partials(max(1, config.THREADS // dense.WARP)),
         (a2, a2, i64, t, a2, i64, arr(f64, 2), a1, b, b)),
        ("add partials", dense._add_partials, (arr(f64, 2), a1, b)),
        ("act grad", dense._act_grad, (a1, a1, i64, t, a1)),
        ("gemm epilogue", gemm._epilogue, (a1, a1, b, i64, t, i64)),
        ("fill zero", device._fill_zero, (a1,)),
        # contiguous copies of strided device arrays (layout "A")
        *[(f"gather {nd}-D", device._GATHERS[nd], (types.Array(t, nd, "A"), a1))
          for nd in (1, 2, 3, 4)],
        ("gemm tiled", gemm._tiled(config.TILE), (a2, a2, a2, b, b, b, a1, b, i64, t)),
        ("BatchNorm (N, C) forward", bn2d[0], bn_fwd(a2)),
        ("BatchNorm (N, C) backward", bn2d[1], bn_bwd(a2)),
        ("BatchNorm (N, C, S) forward", bn3d[0], bn_fwd(a3)),
        ("BatchNorm (N, C, S) backward", bn3d[1], bn_bwd(a3)),
        ("LayerNorm forward", ln_fwd, (a2, a1, a1, b, b, f64, a2, a1, a1)),
        ("LayerNorm backward", ln_bwd, (a2, a2, a1, b, a1, a1, a2, a2, b)),
        ("im2col", conv._im2col, (a4, *geometry, i64, i64, a2)),
        ("col2im", conv._col2im, (a2, *geometry, i64, i64, a4)),
        ("rows to NCHW", conv._rows_to_nchw, (a2, a4)),
        ("NCHW to rows", conv._nchw_to_rows, (a4, a2)),
        ("max pool", conv._max_pool, (a4, *geometry, i64, i64, a4, arr(i64, 4))),
        ("max pool backward", conv._max_pool_backward, (a2, arr(i64, 2), a2)),
        ("avg pool", conv._avg_pool, (a4, *geometry, b, i64, a4)),
        ("avg pool backward", conv._avg_pool_backward, (a4, *geometry, b, i64, a4)),
        ("depthwise conv", depthwise._forward, (a4, a4, a1, b, *geometry[2:], a4)),
        ("depthwise conv input grad", depthwise._input_grad, (a4, a4, *geometry[2:], a4)),
        ("depthwise conv param grads", depthwise._param_grads(config.THREADS),
         (a4, a4, *geometry, b, b, a4, a1)),
        ("dropout", dropout._dropout, (a1, u64, t, u64, u64, a1, a1)),
        ("dropout backward", dropout._multiply, (a1, a1, a1)),
        ("sgd", optim._sgd, (a1, a1, a1, b, t, t, t, b, t)),
        ("adam", optim._adam, (a1, a1, a1, a1, a1, b, b, t, t, t, t, t, t, t)),
        ("rmsprop", optim._rmsprop, (a1, a1, a1, a1, b, a1, b, t, t, t, t, t, t)),
        ("adagrad", optim._adagrad, (a1, a1, a1, t, t, t)),
        ("adamax", optim._adamax, (a1, a1, a1, a1, t, b, t, t, t, t)),
        ("adaptive moments", optim._adaptive_moments, (a1, a1, a1, a1, t, t, b, *(t,) * 7)),
        ("adadelta", optim._adadelta, (a1, a1, a1, a1, t, t, t, t, t, t)),
        ("rprop", optim._rprop, (a1, a1, a1, a1, t, t, t, t, t)),
        ("asgd", optim._asgd, (a1, a1, a1, t, t, t, t, t, b)),
    ]


# Kernels whose float32 versions do float64 arithmetic on purpose: the reductions (row,
# channel and loss sums, the tiled GEMM's accumulator, col2im's overlapping adds: see
# kernels/cuda/_reduce.py) and sine (libdevice's sinf reduces huge arguments in float64).
# Every other float32 kernel must compute in float32: a Python float or int literal in a
# float32 expression makes numba compute it in float64 (1/64 of the float32 rate on most
# GPUs), so those kernels take their constants as x.dtype.type(c) or type(z)(c).
FLOAT64_ON_PURPOSE = {
    "softmax forward", "softmax backward", "log-softmax forward", "log-softmax backward",
    "softmax-CE", "mse", "bce", "bce with logits", "smooth l1", "column sums (+ act')",
    "add partials", "gemm tiled", "BatchNorm (N, C) forward", "BatchNorm (N, C) backward",
    "BatchNorm (N, C, S) forward", "BatchNorm (N, C, S) backward", "LayerNorm forward",
    "LayerNorm backward", "col2im", "sine", "sine_backward", "depthwise conv param grads"}


def float64_instructions(ptx):
    """The PTX instructions that compute on, load or convert to float64 (register
    declarations and parameter loads aside)."""
    return [line.strip() for line in ptx.splitlines()
            if ".f64" in line and not line.strip().startswith((".reg", "ld.param", "//"))]


def register_caps():
    """Whether every kernel can launch with the block it gets under this process's
    config (tests/test_cuda_ptx.py runs it at the largest config.check() admits: THREADS
    512, BN_THREADS 1024, TILE 32): a block of T threads launches only if T times the
    registers a thread was given fit a multiprocessor's 65,536. That count comes from
    the compiler that links the kernel on the GPU (the driver's PTX JIT or nvJitLink),
    not from a ptxas here, and may be up to 255 where the kernel carries no cap (numba's
    max_registers). Prints a line per kernel; returns 1 if any can fail to launch."""
    failed = 0
    for t in (types.float32, types.float64):
        for name, kernel, _ in kernels(t):
            threads = (config.BN_THREADS if name.startswith("BatchNorm")
                       else config.TILE ** 2 if name == "gemm tiled" else config.THREADS)
            cap = kernel.dispatcher.targetoptions.get("max_registers") or 255
            if cap * threads > 65536:
                failed += 1
                print(f"FAILED {name} [{t}]: {threads} threads a block, up to {cap} "
                      f"registers a thread: over a block's 65,536")
            else:
                print(f"fits {name} [{t}]: {threads} threads a block, at most {cap} "
                      f"registers a thread")
    return 1 if failed else 0


def main():
    if REGISTER_CAPS:
        return register_caps()
    failed = 0
    for t in (types.float32, types.float64):
        for name, kernel, sig in kernels(t):
            try:
                ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))
            except Exception as exc:  # noqa: BLE001 - report every kernel, then fail
                failed += 1
                print(f"FAILED {name} [{t}]: {type(exc).__name__}: {exc}")
                continue
            wide = float64_instructions(ptx) if t == types.float32 else []
            if wide and name not in FLOAT64_ON_PURPOSE:
                failed += 1
                print(f"FAILED {name} [{t}]: {len(wide)} float64 instructions, e.g. "
                      + "; ".join(wide[:4]))
            else:
                print(f"ok {name} [{t}]")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
