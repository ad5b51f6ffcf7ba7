"""The Numba backend: every op of ``fastnn.optable`` compiled with ``@njit(parallel=True,
cache=True)`` and ``prange``, one module per op family.

Importing this module compiles nothing: kernels compile on first call, or load from
the on-disk cache (``__pycache__`` next to each module) in later processes.
Conventions (fastmath flags, threading layer, serial/parallel split) live in
``config.py``.
"""
if __name__ != "fastnn.kernels.numba_cpu":
    # Imported as a top-level ``kernels`` (the repository root on sys.path). Numba's disk
    # cache is keyed by the source file, so both names share it, and each kernel compiled
    # here would be saved naming ``kernels.numba_cpu`` modules: every later fastnn process
    # loading it, where no top-level ``kernels`` exists, fails with ModuleNotFoundError.
    raise ImportError(f"the numba backend is fastnn.kernels.numba_cpu, not {__name__}: import "
                      "it as fastnn.kernels.numba_cpu (or fastnn.backend.load('numba')), so "
                      "that the kernels it caches on disk load in every process")
from fastnn import blas_pool as _blas_pool
from fastnn import threads as _threads

from . import blas as _blas
from . import config as _config
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
from ..pixel_conv import route_one_pixel

# a conv of 1x1 planes under a 1x1 kernel is a Linear (kernels/pixel_conv.py)
conv2d_forward, conv2d_backward = route_one_pixel(conv2d_forward, conv2d_backward,
                                                  linear_forward, linear_backward)
from .depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward
from .dropout import dropout_backward, dropout_forward
from .layernorm import layer_norm_backward, layer_norm_forward
from .losses import (bce_loss, bce_with_logits_loss, mse_loss, smooth_l1_loss,
                     softmax_cross_entropy)
from .optim import (adadelta_update, adagrad_update, adam_update, adamax_update,
                    adaptive_moments_update, asgd_update, rmsprop_update, rprop_update,
                    sgd_update)

# Every op is implemented here; nothing is taken from another backend.
REUSES = {}

_threads.apply_num_threads()
# SciPy's OpenBLAS (the dense products) runs its threads on the OpenMP pool of the
# parallel loops (fastnn/blas_pool.py)
_blas_pool.use_openmp_pool()
_blas.use_numpy_products(True)  # when NumPy's OpenBLAS is on the pool
_blas.use_mkl_products(True)    # when MKL is installed (fastnn/mkl_blas.py): it goes first
_threads.warn_if_spin_too_late("numba")


def backend_info():
    """Threading layer, fastmath flags, thread counts and cache location."""
    return _config.info()
