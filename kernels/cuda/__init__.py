"""The CUDA backend: every op of ``fastnn.optable`` as numba.cuda kernels.

Arrays in, arrays out:

* Given NumPy arrays, an op copies its inputs to the device, runs there, copies the
  results (and every argument it updates in place: accumulated gradients, running
  statistics, optimizer state, ``out=`` buffers) back, and returns NumPy arrays. The
  whole conformance suite and ``fastnn.ops`` work unchanged.
* Given device arrays (numba device arrays, or anything with
  ``__cuda_array_interface__`` such as CuPy arrays; C-contiguous), it stays on the
  device and returns device arrays: no host copies except a loss's scalar.
  ``fastnn.kernels.cuda.device`` moves whole models (parameters, gradients, BatchNorm
  buffers) to and from the device.

Fusions as in the CPU backends: bias and activation inside the GEMM epilogue (or one
pass after cuBLAS), softmax-cross-entropy in one kernel with a warp per row,
BatchNorm with per-channel reductions in shared memory, SGD and Adam in one in-place
pass. Loops are grid-stride; launch sizes come from ``config`` (tests patch them
small). Kernels compile lazily, on their first launch for each argument type.
Matrix products use cuBLAS through CuPy when CuPy is installed, else a tiled
shared-memory GEMM; ``backend_info()`` says which.

Importing this module raises ImportError with the reason when CUDA is unavailable.
"""
from . import config as _config
from . import launch as _launch
from ._common import SIMULATOR as _SIMULATOR
from .activations import (elu, elu_backward, gelu, gelu_backward, gelu_tanh,
                          gelu_tanh_backward, mish, mish_backward, hardsigmoid,
                          hardsigmoid_backward, hardswish, hardswish_backward, hardtanh,
                          hardtanh_backward, leaky_relu, leaky_relu_backward, log_softmax,
                          log_softmax_backward, relu, relu_backward, sigmoid, sigmoid_backward,
                          silu, silu_backward, sine, sine_backward, softmax, softmax_backward,
                          softplus, softplus_backward, softsign, softsign_backward, tanh,
                          tanh_backward)
from .batchnorm import batchnorm_backward, batchnorm_forward
from .conv import (avg_pool2d_backward, avg_pool2d_forward, conv2d_backward, conv2d_forward,
                   max_pool2d_backward, max_pool2d_forward)
from .dense import linear_backward, linear_forward
from .depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward
from .dropout import dropout_backward, dropout_forward
from .gemm import engine as _gemm_engine
from .layernorm import layer_norm_backward, layer_norm_forward
from .losses import (bce_loss, bce_with_logits_loss, mse_loss, smooth_l1_loss,
                     softmax_cross_entropy)
from .optim import (adadelta_update, adagrad_update, adam_update, adamax_update,
                    adaptive_moments_update, asgd_update, rmsprop_update, rprop_update,
                    sgd_update)

# Every op runs on the device here; nothing is taken from another backend.
REUSES = {}


def backend_info():
    """The GEMM engine (cuBLAS via CuPy, or the numba tiled GEMM), the device, the
    launch configuration, how kernels launch and whether this is Numba's CUDA
    simulator."""
    from numba import cuda
    gemm, gemm_detail = _gemm_engine()
    if _SIMULATOR:
        device = "numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
    else:
        dev = cuda.get_current_device()
        name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
        device = f"{name} (compute capability {dev.compute_capability[0]}." \
                 f"{dev.compute_capability[1]})"
    return {"gemm": gemm, "gemm_detail": gemm_detail, "device": device,
            "simulator": _SIMULATOR, "threads_per_block": _config.THREADS,
            "max_blocks": _config.MAX_BLOCKS, "row_lanes": _config.ROW_LANES,
            "bn_threads": _config.BN_THREADS,
            "tile": _config.TILE, "launch": _launch.describe()}
