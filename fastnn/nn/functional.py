"""``fastnn.nn.functional``: PyTorch's ``torch.nn.functional`` for NumPy arrays, forward only.

For code ported from PyTorch or NumPy that runs models forward (inference, evaluation,
a loss to report)::

    from fastnn.nn import functional as F
    h = F.relu(F.conv2d(x, w, b, padding="same"))
    loss = F.cross_entropy(logits, labels, label_smoothing=0.1)

Each function has PyTorch 2.13's name, parameters, defaults and semantics (dim arguments,
reductions, keyword names), takes NumPy float32/float64 arrays (integer arrays for class
indices and embedding indices) and returns NumPy arrays in the input's dtype; a reduced
loss is a 0-d array (PyTorch's 0-d tensor: ``float(loss)`` or ``loss.item()`` gives the
number). All float arrays of one call share one dtype.

CUDA device arrays (a GPU model's activations and parameters: numba device arrays) run on
the GPU where a cuda kernel computes the function, as in the layers of a model on the GPU:
the activations, softmax, log_softmax, softmin, linear, dropout, conv1d/conv2d (groups 1,
dilation 1, symmetric padding), max/avg pool 1d/2d, batch_norm and layer_norm return
device arrays; cross_entropy, nll_loss, mse_loss, l1_loss, smooth_l1_loss, huber_loss and
the binary cross-entropies run their loss class on the device input and return its value
on the host (a 0-d NumPy array; 'none': a NumPy array), as the loss classes do. Any other
function given a device array raises NotImplementedValueError (a NotImplementedError and a
ValueError) naming it: move the data to the CPU first. A weight, bias or running statistic
on another device than the input (a device array with a NumPy input, a NumPy array but a
0-d one with a device input) is PyTorch's RuntimeError for two devices, naming it. A NumPy
argument never reaches the device checks beyond a type test.

**Forward only**: nothing here keeps what a backward pass would need. To train, use the
layers of ``fastnn.nn`` (explicit ``forward``/``backward``, gradients in ``param.grad``)
or the functional kernels of ``fastnn.ops``, each with its ``*_backward`` twin
(``ops.relu`` / ``ops.relu_backward``, ``ops.conv2d_forward`` / ``ops.conv2d_backward``).

The functions adapt what fastnn already computes: the ops of the current backend
(``fastnn.ops``: activations, softmax, linear, dropout, conv2d, pooling, batch and layer
norm, the fused losses) or, where no op exists, the forward of the matching layer
(adaptive pooling, cosine similarity, pairwise distance, the weighted binary
cross-entropy with logits, KL divergence, and the loss classes of nn.loss, nn.pair_losses
and nn.ctc behind poisson_nll_loss, gaussian_nll_loss, soft_margin_loss,
hinge_embedding_loss, margin_ranking_loss, multilabel_margin_loss,
multilabel_soft_margin_loss, multi_margin_loss, cosine_embedding_loss,
triplet_margin_loss, triplet_margin_with_distance_loss and ctc_loss;
nn.LinearCrossEntropyLoss, around the caller's weights, behind linear_cross_entropy),
nn's padding and embedding max_norm helpers and the reference per-element loss formulas
(``reduction='none'``). Options the ops lack are composed
around them: conv2d's groups run one op call per group, its dilation a kernel spread with
zeros, an even-sized ``padding='same'`` an explicit zero border, a transposed convolution
the convolution of its stride-spread input with the flipped kernel (conv3d: nn's im2col
and one matrix product per group, NumPy); cross_entropy with class
weights, ignored classes or label smoothing is PyTorch's formula over ops.log_softmax.
What has no fastnn counterpart is a few lines of NumPy (one_hot, normalize, embedding's
gather, nll_loss's gather; bilinear, rms_norm, pdist, scaled_dot_product_attention,
gumbel_softmax, affine_grid and grid_sample). The 3-D, adaptive-max, LP and fractional
pools, unpooling, local_response_norm, rrelu's training draw, embedding_bag and
multi_head_attention_forward are the forward of their nn layers; instance_norm is
PyTorch's batch_norm of the (1, N * C, *) view.

Errors: PyTorch's exception type for bad shapes and argument values (RuntimeError,
ValueError, IndexError, AssertionError, NotImplementedError, as ``torch.nn.functional``
raises them), and fastnn's TypeError for a wrong array type or dtype (PyTorch often says
RuntimeError). A RuntimeError, IndexError, AssertionError or NotImplementedError for bad
input is also a ValueError (fastnn.errors' RuntimeValueError, IndexValueError,
AssertionValueError, NotImplementedValueError; a float size's TypeValueError), so
``except ValueError`` catches it too.
The layers' and loss classes' ValueError for the shapes or values of their arrays comes
out as PyTorch's RuntimeError (one that already has PyTorch's type keeps it, a float size's
TypeValueError); the loss classes' own limits stay (targets of 1 and -1 only for
margin_ranking_loss and cosine_embedding_loss, eps > 0 for gaussian_nll_loss, ...).
Where PyTorch warns (an implicit softmax dim, a loss target broadcast against its input,
the deprecated size_average/reduce and reduction='elementwise_mean' (taken as 'mean' where
PyTorch takes it), kl_div's 'mean'), a Python warning says the same.
"""
import contextlib
import functools
import math
import numbers
import warnings

import numpy as np

from .. import device as _device
from .. import ops
from .. import random as _random
from ..backend import current as _current_backend
from ..errors import (AssertionValueError, DtypeError, IndexValueError,
                      NotImplementedValueError, RuntimeValueError, TypeValueError)
from ..kernels.reference import losses as _reference
from ..kernels.window_shapes import window_out_size
from ..validation import (as_contiguous, broadcasts_to, check_flag, check_float_array,
                          check_float_dtype, check_host_float_array, check_int64,
                          check_probabilities, int_items, labels_shape_hint, no_cuda_kernel,
                          on_two_devices, plain_number, tensor_hint)
from .activations import SELU, celu_host, warn_implicit_dim
from .adaptive import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveMaxPool1d,
                       AdaptiveMaxPool2d)
from .attention import AttentionAssertionError, MultiheadAttention
from .conv3d import conv3d_forward
from .ctc import CTCLoss
from .distance import CosineSimilarity, PairwiseDistance
from .dropout import AlphaDropout, FeatureAlphaDropout, warn_deprecated_rank
from .embedding import renorm_rows
from .embedding_bag import EmbeddingBag, index_error
from .module import Parameter
from .fractional_pool import FractionalMaxPool2d, FractionalMaxPool3d
from .grid_sampling import affine_grid, grid_sample
from .host_layers import (GLU, ChannelShuffle, Hardshrink, LocalResponseNorm, PixelShuffle,
                          PixelUnshuffle, RReLU, Softshrink, Tanhshrink, Threshold)
from .linear_cross_entropy import LinearCrossEntropyLoss
from .loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HingeEmbeddingLoss,
                   HuberLoss, L1Loss, MSELoss, NLLLoss, SmoothL1Loss, KLDivLoss,
                   MultiLabelMarginLoss, MultiLabelSoftMarginLoss, MultiMarginLoss,
                   PoissonNLLLoss, SoftMarginLoss,
                   cast_integer_target, deprecated_mean, legacy_reduction, warn_target_size)
from .padding import check_border_input, check_fill_value, pad_forward, wraps_nothing
from .pool3d import (AdaptiveAvgPool3d, AdaptiveMaxPool3d, AvgPool3d, LPPool3d, MaxPool3d,
                     MaxUnpool3d)
from .pooling import LPPool1d, LPPool2d, MaxUnpool1d, MaxUnpool2d, default_stride
from .pair_losses import (CosineEmbeddingLoss, GaussianNLLLoss, MarginRankingLoss,
                          TripletMarginLoss, TripletMarginWithDistanceLoss, _var_shape)
from .unfold import Fold, Unfold
from .upsample import MODE_RANKS, Upsample, along_axis, antialias_matrix

__all__ = [
    "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "sigmoid",
    "tanh", "softplus", "softsign", "hardtanh", "hardsigmoid", "hardswish", "logsigmoid",
    "hardshrink", "softshrink", "tanhshrink", "threshold", "glu", "prelu", "dropout1d",
    "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout", "interpolate",
    "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "unfold", "fold",
    "softmax", "log_softmax", "softmin", "linear", "dropout", "conv1d", "conv2d", "conv3d",
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d",
    "adaptive_avg_pool2d", "batch_norm", "layer_norm", "group_norm", "embedding", "one_hot",
    "pad", "normalize", "cosine_similarity", "pairwise_distance", "cross_entropy",
    "nll_loss", "linear_cross_entropy", "mse_loss", "l1_loss", "smooth_l1_loss",
    "huber_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div",
    "poisson_nll_loss", "gaussian_nll_loss", "soft_margin_loss", "hinge_embedding_loss",
    "margin_ranking_loss", "multilabel_margin_loss", "multilabel_soft_margin_loss",
    "multi_margin_loss", "cosine_embedding_loss", "triplet_margin_loss",
    "triplet_margin_with_distance_loss", "ctc_loss",
]


# ------------------------------------------------------------------------ helpers
def _float(where, name, x, dtype=None, device_ok=False):
    """x checked: a float32/float64 numpy.ndarray (of dtype when given); device_ok: a CUDA
    device array passes too (the functions with cuda kernels). Where it does not, a
    device array gets ``no_cuda_kernel``'s error (checked only once x failed as a NumPy
    array: nothing more on the CPU path)."""
    if device_ok:
        return check_float_array(where, name, x, dtype=dtype, device_ok=True)
    return check_host_float_array(where, name, x, dtype=dtype)


def _one_device(where, gpu, **arrays):
    """The two-device error naming the first of arrays ({name: value or None}) that is
    not on the input's device (gpu: whether the input is a device array); nothing when
    all are. A 0-d NumPy array goes with a device input, as PyTorch's CPU scalar
    tensor goes with CUDA ones."""
    for name, value in arrays.items():
        if (_on_gpu(value) if not gpu else
                type(value) is np.ndarray and value.ndim > 0):
            raise on_two_devices(where, name, gpu)


_on_gpu = _device.is_device_array   # whether x is a CUDA device array


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _ints(where, name, value, n):
    """An int or a sequence of n ints (or of one, repeated) as a tuple of n ints."""
    value = int_items(value)
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(items) == 1:
        items = items * n
    if len(items) != n or not all(_is_int(v) for v in items):
        raise TypeValueError(f"{where}: expected {name} to be an int or a tuple of {n} "
                             f"ints, got {value!r}")
    return check_int64(where, name, items)


def _axis(dim, ndim):
    """dim (an int, negative counting from the end) as an axis of a rank-ndim array, with
    PyTorch's IndexError when out of range (a 0-d array takes dim 0 or -1)."""
    if not _is_int(dim):
        raise TypeValueError(f"expected dim to be an int, got {dim!r}")
    low, high = (-1, 0) if ndim == 0 else (-ndim, ndim - 1)
    if not low <= dim <= high:
        raise IndexValueError(f"Dimension out of range (expected to be in range of [{low}, "
                              f"{high}], but got {dim})")
    return int(dim) % max(ndim, 1)


def _op(op, x, *args, where=None, **kwargs):
    """op(x, *args, **kwargs) of fastnn.ops, an error about x naming it input, the
    function's parameter (fastnn.ops calls it x), and the function (where; op's name by
    default). x is checked again only once op has refused a call, so a good call costs
    nothing more."""
    try:
        return op(x, *args, **kwargs)
    except (TypeError, ValueError):
        named = _input_error(where or op.__name__, x)
        if named is None:   # (op refused something else: its own error stands)
            raise
    raise named from None


def _input_error(where, x):
    """The error _float gives for x as the argument input of where, or None."""
    try:
        _float(where, "input", x, device_ok=True)
    except (TypeError, ValueError) as error:
        return error
    return None


def _elementwise(op, x, inplace, *args, where=None):
    """op(x, *args) of fastnn.ops; inplace=True writes the result into x and returns x
    (PyTorch's in-place variant). where: the function's name in errors (op's by default)."""
    if not inplace:
        return _op(op, x, *args, where=where)
    if isinstance(x, np.ndarray) and x.flags.c_contiguous and x.flags.writeable:
        return _op(op, x, *args, out=x, where=where)
    if _on_gpu(x) and _device.is_contiguous(x):
        return _op(op, x, *args, out=x, where=where)
    _check_writeable(where or op.__name__, x)
    x[...] = _op(op, x, *args, where=where)
    return x


def _check_writeable(where, x):
    """inplace=True on a read-only NumPy array: a ValueError naming the function (NumPy's
    own said 'assignment destination is read-only', after the work)."""
    if isinstance(x, np.ndarray) and not x.flags.writeable:
        raise ValueError(f"{where}: inplace=True writes the result into input, got a "
                         f"read-only array")


def _in_place(x, y, inplace, where):
    """y, or x overwritten with y when inplace (where: the function's name in errors)."""
    if not inplace:
        return y
    _check_writeable(where, x)
    if _on_gpu(x):
        _device.Cuda.copy_into(x, y)
        return x
    x[...] = y
    return x


def _kernel(name, x, where=None):
    """The current backend's kernel ``name`` (the cuda backend's for a device array) and x
    checked (errors naming ``where``, by default name) and C-contiguous, for the few calls
    whose arguments fastnn.ops refuses (softplus with beta <= 0, as LogSigmoid)."""
    x = as_contiguous(_float(where or name, "input", x, device_ok=True))
    backend = _device.kernels("cuda") if _on_gpu(x) else _current_backend()
    return getattr(backend, name), x


# ---------------------------------------------------------------------- activations
def relu(input, inplace=False):
    """max(input, 0), elementwise. input: any shape; output: the same shape (input itself,
    overwritten, with inplace=True)."""
    return _elementwise(ops.relu, input, inplace)


def relu6(input, inplace=False):
    """min(max(input, 0), 6), elementwise (hardtanh(input, 0, 6)). input: any shape."""
    _float("relu6", "input", input, device_ok=True)   # (an error names relu6, not hardtanh)
    return _elementwise(ops.hardtanh, input, inplace, 0.0, 6.0, where="relu6")


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """input where input > 0, else negative_slope * input. input: any shape. An infinite
    or NaN negative_slope (which the leaky_relu kernels refuse) is PyTorch's formula in
    NumPy (0 * inf: NaN)."""
    if _nonfinite(negative_slope):
        x = _float("leaky_relu", "input", input)
        with np.errstate(invalid="ignore"):
            y = np.where(x > 0, x, x * x.dtype.type(negative_slope)).astype(x.dtype, copy=False)
        return _in_place(x, y, inplace, "leaky_relu")
    return _elementwise(ops.leaky_relu, input, inplace, negative_slope)


def elu(input, alpha=1.0, inplace=False):
    """input where input > 0, else alpha * (exp(input) - 1). input: any shape. An
    infinite or NaN alpha (which the elu kernels refuse) is PyTorch's formula in NumPy: 0
    stays 0, below 0 alpha * expm1(input) (-inf for alpha = inf)."""
    if _nonfinite(alpha):
        x = _float("elu", "input", input)
        dt = x.dtype.type
        with np.errstate(over="ignore", invalid="ignore"):
            y = np.where(x >= 0, x, dt(alpha) * np.expm1(x)).astype(x.dtype, copy=False)
        return _in_place(x, y, inplace, "elu")
    return _elementwise(ops.elu, input, inplace, alpha)


def _nonfinite(value):
    """Whether value is a real number that is infinite or NaN."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and not math.isfinite(value))


def _is_nan(value):
    """Whether value is a real number that is NaN."""
    return _nonfinite(value) and math.isnan(value)


def selu(input, inplace=False):
    """scale * elu(input, alpha) with PyTorch's constants (alpha 1.6733, scale 1.0507).
    input: any shape."""
    _float("selu", "input", input, device_ok=True)   # (an error names selu, not elu)
    y = _elementwise(ops.elu, input, inplace, SELU.ALPHA, where="selu")
    if _on_gpu(y):   # (a device array has no arithmetic: as nn.SELU on the GPU)
        return _device.scaled(y, SELU.SCALE)
    y *= y.dtype.type(SELU.SCALE)
    return y


def celu(input, alpha=1.0, inplace=False):
    """input where input > 0, else alpha * (exp(input / alpha) - 1): alpha * elu(input /
    alpha). input: any shape; alpha != 0."""
    if alpha == 0:
        raise RuntimeValueError("celu: ZeroDivisionError: alpha cannot be 0 for CELU")
    x = _float("celu", "input", input, device_ok=True)
    if _on_gpu(x) and alpha != 1.0:   # the host's values, on the device (as nn.CELU's)
        return _in_place(x, _device.namespace_of(x).put(celu(_device.to_host(x), alpha)),
                         inplace, "celu")
    if alpha < 0:  # x / alpha flips the sign: the elu kernels cannot take it
        return _in_place(x, celu_host(x, alpha), inplace, "celu")
    if alpha == 1.0:
        return _elementwise(ops.elu, x, inplace, 1.0, where="celu")
    with np.errstate(over="ignore", invalid="ignore"):   # (alpha tiny or inf)
        y = ops.elu(np.multiply(x, x.dtype.type(1.0 / alpha), out=np.empty_like(x)), 1.0)
        y *= y.dtype.type(alpha)
    # x itself where x >= 0, as PyTorch (nn.CELU's): x / alpha may overflow, and
    # alpha * (x / alpha) is an ulp off for some x (0 stays 0 for an infinite alpha)
    np.copyto(y, x, where=x >= 0)
    return _in_place(x, y, inplace, "celu")


def gelu(input, approximate="none"):
    """input * Phi(input) (the exact erf form), or with approximate='tanh' 0.5 input (1 +
    tanh(sqrt(2 / pi) (input + 0.044715 input^3))). input: any shape."""
    if approximate == "none":
        return _op(ops.gelu, input)
    if approximate == "tanh":
        return _op(ops.gelu_tanh, input, where="gelu")
    raise RuntimeValueError("approximate argument must be either none or tanh.")


def silu(input, inplace=False):
    """input * sigmoid(input) (SiLU, swish). input: any shape."""
    return _elementwise(ops.silu, input, inplace)


def mish(input, inplace=False):
    """input * tanh(softplus(input)). input: any shape."""
    return _elementwise(ops.mish, input, inplace)


def sigmoid(input):
    """1 / (1 + exp(-input)), finite for any input. input: any shape."""
    return _op(ops.sigmoid, input)


def tanh(input):
    """tanh(input). input: any shape."""
    return _op(ops.tanh, input)


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta * input)) / beta, or input where beta * input > threshold.
    input: any shape. beta may be negative, infinite or NaN and threshold NaN, as PyTorch's
    (0 gives inf; the kernel's formula, which fastnn.ops refuses them for)."""
    nan_threshold = _is_nan(threshold)
    if not isinstance(beta, (numbers.Real, np.floating)) or (
            0 < beta < math.inf and not nan_threshold):
        return _op(ops.softplus, input, beta, threshold)
    kernel, x = _kernel("softplus", input)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return kernel(x, float(beta), float(threshold))


def softsign(input):
    """input / (1 + |input|). input: any shape."""
    return _op(ops.softsign, input)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """min(max(input, min_val), max_val). input: any shape; min_val <= max_val. A NaN
    bound (which the hardtanh kernels refuse) gives NaN everywhere, as PyTorch's clamp."""
    if isinstance(min_val, numbers.Real) and isinstance(max_val, numbers.Real) \
            and min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return _hardtanh(input, min_val, max_val, inplace)


def _hardtanh(input, min_val, max_val, inplace):
    """hardtanh without the order check (hardtanh_ has none, as PyTorch's: min_val >
    max_val gives max_val, NaN stays NaN); a NaN bound or an inverted pair is NumPy's
    clamp."""
    if _is_nan(min_val) or _is_nan(max_val) or (
            isinstance(min_val, numbers.Real) and isinstance(max_val, numbers.Real)
            and min_val > max_val):
        x = _float("hardtanh", "input", input)
        dt = x.dtype.type
        y = np.asarray(np.minimum(np.maximum(x, dt(min_val)), dt(max_val)), x.dtype)
        return _in_place(x, y, inplace, "hardtanh")
    return _elementwise(ops.hardtanh, input, inplace, min_val, max_val)


def hardsigmoid(input, inplace=False):
    """min(max(input + 3, 0), 6) / 6. input: any shape."""
    return _elementwise(ops.hardsigmoid, input, inplace)


def hardswish(input, inplace=False):
    """input * min(max(input + 3, 0), 6) / 6. input: any shape."""
    return _elementwise(ops.hardswish, input, inplace)


def logsigmoid(input):
    """log(sigmoid(input)) = -softplus(-input), finite for every finite input (the softplus
    kernel at beta = -1 without threshold, as nn.LogSigmoid). input: any shape."""
    kernel, x = _kernel("softplus", input, "logsigmoid")
    return kernel(x, -1.0, float("inf"))


def _softmax_dim(name, ndim, stacklevel):
    """PyTorch's implicit dim, with its deprecation warning."""
    warn_implicit_dim(name, stacklevel)
    return 0 if ndim in (0, 1, 3) else 1


def _along(name, op, input, dim, stacklevel, dtype, negate=False):
    """op (a row kernel of fastnn.ops) along axis dim of input of any rank: the axis moved
    last in a copy unless it already is (a view). dtype: input cast to it first, integer
    and float16 input too (bool but for softmin, whose negation PyTorch refuses), as
    PyTorch's dtype= takes them."""
    if dtype is not None:
        check_float_dtype(name, np.dtype(dtype), "dtype")
        if isinstance(input, np.ndarray) and input.dtype.kind in ("iuf" if negate else "biuf"):
            input = input.astype(dtype, copy=False)   # (a masked array stays refused)
    x = _float(name, "input", input, device_ok=True)
    if dtype is not None:
        if _on_gpu(x):   # (converted through the host: a device array has no astype)
            if x.dtype != np.dtype(dtype):
                x = _device.Cuda.put(_device.to_host(x).astype(dtype))
        else:
            x = x.astype(dtype, copy=False)
    if dim is None:
        dim = _softmax_dim(name, x.ndim, stacklevel + 1)
    axis = _axis(dim, x.ndim)
    if x.ndim == 0:
        return op(_negated(x.reshape(1, 1)) if negate else x.reshape(1, 1)).reshape(())
    rows, shape = _device.rows_along(x, axis)
    return _device.from_rows(op(_negated(rows) if negate else rows), shape, axis)


def _negated(a):
    """-a, a new array where a lives (a device array through the host, as nn.Softmin)."""
    return _device.scaled(a, -1, copy=True) if _on_gpu(a) else -a


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """exp(input) / sum(exp(input)) along dim (any rank; dim=None: PyTorch's deprecated
    implicit choice, 0 for ranks 0, 1 and 3, else 1, with its warning). dtype: cast input to
    it first (np.float32 or np.float64; integer, bool and float16 input too, as PyTorch's).
    Output: input's shape."""
    return _along("softmax", ops.softmax, input, dim, _stacklevel, dtype)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """log(softmax(input, dim)), computed as input - logsumexp (finite where the probability
    underflows). As softmax's arguments; output: input's shape."""
    return _along("log_softmax", ops.log_softmax, input, dim, _stacklevel, dtype)


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    """softmax(-input, dim). As softmax's arguments; output: input's shape."""
    return _along("softmin", ops.softmax, input, dim, _stacklevel, dtype, negate=True)


# ---------------------------------------------------------------------------- linear
def linear(input, weight, bias=None):
    """input @ weight.T + bias.

    input: (*, in_features); weight: (out_features, in_features), or (in_features,) for
    one output (the out axis then dropped); bias: (out_features,), one value (() or
    (1,), broadcast), None, or (2-D weight) any shape that broadcasts to the output's, as
    PyTorch's ((N, out_features), (N, 1), ...: added to the product). Output:
    (*, out_features). One ops.linear_forward call on the (rows, in) view.
    """
    where = "linear"
    x = _float(where, "input", input, device_ok=True)
    gpu = _on_gpu(x)
    _one_device(where, gpu, weight=weight, bias=bias)   # (PyTorch's two devices)
    w = _float(where, "weight", weight, dtype=x.dtype, device_ok=gpu)
    if gpu:   # (reshaped below: C-contiguous device arrays)
        x, w = _device.Cuda.put(x), _device.Cuda.put(w)
    if x.ndim == 0 or w.ndim not in (1, 2):
        raise RuntimeValueError(
            f"{where}: expected input of rank >= 1 and weight of rank 1 or 2, "
            f"got shapes {x.shape} and {w.shape}")
    w2 = w if w.ndim == 2 else w.reshape(1, -1)
    x_shape = tuple(x.shape)   # (a tuple: the simulator's device shapes take no x[-1])
    in_features = x_shape[-1]
    rows = math.prod(x_shape[:-1])
    if w2.shape[1] != in_features:
        raise RuntimeValueError(
            f"mat1 and mat2 shapes cannot be multiplied ({rows}x{in_features} "
            f"and {w2.shape[1]}x{w2.shape[0]})")
    out_features = w2.shape[0]
    out_shape = x_shape[:-1] + ((out_features,) if w.ndim == 2 else ())
    b, added = None, None
    if bias is not None:
        b = _float(where, "bias", bias, dtype=x.dtype, device_ok=gpu)
        if gpu and tuple(b.shape) == (out_features,):
            b = _device.Cuda.put(b)
        elif gpu:   # (broadcast on the host: a device array has no broadcast_to)
            b = _device.to_host(b)
        # (a bias of one value broadcasts over the outputs, as PyTorch's addmm does)
        if gpu and tuple(b.shape) == (out_features,):
            pass
        elif b.shape in (((out_features,), (1, out_features)) if w.ndim == 2 else ()) + (
                (), (1,), (1, 1)):
            # a copy: broadcast_to's view is read-only, another type to numba, whose
            # kernels would compile again for it (fastnn compile covers writeable ones)
            b = np.broadcast_to(b.reshape(-1), (out_features,)).copy()
        elif w.ndim == 2 and broadcasts_to(b.shape, out_shape):
            # any other bias that broadcasts to the output ((N, out), (N, 1), ...), as
            # PyTorch's: added to the op's product
            b, added = None, b
        else:
            raise RuntimeValueError(
                f"{where}: expected bias of shape ({out_features},) or one "
                f"that broadcasts to the output's shape {out_shape}, got "
                f"{b.shape}")
    y = ops.linear_forward(x.reshape(rows, in_features), w2, b).reshape(out_shape)
    if added is not None:
        if gpu:   # (added on the host, as the transformer layers' residuals on the GPU)
            return _device.Cuda.put(np.add(_device.to_host(y), added))
        np.add(y, added, out=y)   # (y: the op's own array)
    return y


# --------------------------------------------------------------------------- dropout
def dropout(input, p=0.5, training=True, inplace=False):
    """Inverted dropout: each element zeroed with probability p, the others scaled by
    1 / (1 - p), when training; input itself when not training or p = 0.

    The mask comes from ops.dropout_forward with a seed drawn from fastnn's generator
    (``fastnn.manual_seed`` makes it reproducible on one backend; masks differ from
    PyTorch's). input: any shape; output: the same shape.
    """
    if not isinstance(p, (numbers.Real, np.floating)) or isinstance(p, bool) \
            or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    training = check_flag("dropout", "training", training)
    x = _float("dropout", "input", input, device_ok=True)
    if not training or p == 0:
        return x
    if p == 1 and _on_gpu(x):
        y = _device.scaled(x, 0.0, copy=True)   # a NaN stays NaN
    elif p == 1:
        y = np.multiply(x, x.dtype.type(0), out=np.empty_like(x))  # a NaN stays NaN
    else:
        y, _ = ops.dropout_forward(x, float(p), _random.draw_seed())
    return _in_place(x, y, inplace, "dropout")


# ------------------------------------------- the host layers' activations and dropouts
# PyTorch's types that fastnn's two-type errors (fastnn.errors) already carry: a
# ValueError that is one of them is raised as it is.
_TORCH_TYPES = (RuntimeError, IndexError, TypeError, AssertionError)


@contextlib.contextmanager
def _runtime_errors():
    """A layer's or loss class's ValueError for its arguments or the shapes or values of
    its arrays as PyTorch's RuntimeError (still a ValueError, fastnn's type); one that
    already has PyTorch's type (a TypeValueError for a float size, an IndexValueError, an
    AssertionValueError, a RuntimeValueError) passes unchanged."""
    try:
        yield
    except ValueError as error:
        if isinstance(error, _TORCH_TYPES):
            raise
        raise RuntimeValueError(str(error)) from None


def _layer_forward(layer, x):
    """layer.forward(x) for a function adapted from a layer: the layer's shape errors
    (ValueError, fastnn's layer convention) as PyTorch's RuntimeError (_runtime_errors)."""
    with _runtime_errors():
        return layer.forward(x)


def hardshrink(input, lambd=0.5):
    """input where |input| > lambd, else 0 (a NaN stays NaN). input: any shape."""
    return Hardshrink(lambd).forward(_float("hardshrink", "input", input))


def softshrink(input, lambd=0.5):
    """input - lambd above lambd, input + lambd below -lambd, 0 between; lambd >= 0.
    input: any shape."""
    if isinstance(lambd, numbers.Real) and lambd < 0:
        raise RuntimeValueError(f"lambda must be greater or equal to 0, but found to be "
                                f"{lambd}.")
    with _runtime_errors():   # (an infinite or NaN lambd: PyTorch's RuntimeError)
        layer = Softshrink(lambd)
    return layer.forward(_float("softshrink", "input", input))


def tanhshrink(input):
    """input - tanh(input). input: any shape."""
    return Tanhshrink().forward(_float("tanhshrink", "input", input))


def threshold(input, threshold, value, inplace=False):
    """input where input > threshold, else value (a NaN stays NaN). input: any shape."""
    x = _float("threshold", "input", input)
    return _in_place(x, Threshold(threshold, value).forward(x), inplace, "threshold")


def glu(input, dim=-1):
    """a * sigmoid(b), a and b the halves of input along dim (even size there): half the
    size along dim."""
    x = _float("glu", "input", input)
    if x.ndim == 0:
        raise RuntimeValueError(
            "glu does not support scalars because halving size must be even")
    axis = _axis(dim, x.ndim)
    if x.shape[axis] % 2:
        raise RuntimeValueError(
            f"Halving dimension must be even, but dimension {axis} is size "
            f"{x.shape[axis]}")
    return GLU(axis).forward(x)


def prelu(input, weight):
    """input where input > 0, else weight * input: weight (1,) one slope, or (C,) one per
    channel of input's axis 1. input: any shape of rank >= 1 (rank >= 2 for C slopes)."""
    where = "prelu"
    x = _float(where, "input", input)
    w = _float(where, "weight", weight, dtype=x.dtype)
    if x.ndim == 0 and w.size != 1:
        raise RuntimeValueError("Not allow zero-dim input tensor.")
    if w.ndim > 1:
        raise RuntimeValueError(
            f"prelu: Expected `weight` to be a scalar or 1D tensor, but got: "
            f"ndim = {w.ndim}")
    channels = x.shape[1] if x.ndim >= 2 else 1
    if w.size != 1 and w.size != channels:
        raise RuntimeValueError(f"Mismatch of parameter numbers and input channel size. Found "
                                f"parameter numbers = {w.size} and channel size = {channels}.")
    slope = w.reshape(()) if w.size == 1 else w.reshape((-1,) + (1,) * (x.ndim - 2))
    return np.where(x > 0, x, slope * x).astype(x.dtype, copy=False)


def _channel_dropout(layer, where, input, training, inplace):
    """layer (an alpha dropout) run in training mode when training, else input itself;
    inplace writes the result into input."""
    training = check_flag(where, "training", training)
    x = _float(where, "input", input)
    if not training:
        return x
    return _in_place(x, _layer_forward(layer, x), inplace, where)


def _dropout_p(p):
    if not isinstance(p, (numbers.Real, np.floating)) or isinstance(p, bool) \
            or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    return float(p)


def _feature_dropout(where, x, p, lead, training, inplace):
    """x times one mask value per index of its first ``lead`` axes (0 with probability p,
    else 1 / (1 - p); the mask from ops.dropout_forward of ones, as nn.Dropout2d's),
    broadcast over the rest; x itself when not training, p = 0 or x empty. Only a draw
    needs x to have ``lead`` axes (as PyTorch's feature dropout: p = 1 is x * 0)."""
    if not training or p == 0 or x.size == 0:
        return x
    shape = x.shape[:lead] + (1,) * (x.ndim - lead)
    if p == 1:
        mask = np.zeros(x.shape[:lead], x.dtype)
    elif x.ndim < lead:
        raise RuntimeValueError("Feature dropout requires at least 2 dimensions in the input")
    else:
        mask, _ = ops.dropout_forward(np.ones(math.prod(shape), x.dtype), p,
                                      _random.draw_seed())
    # (into an array of x's shape: a 0-d product would be a NumPy scalar)
    return _in_place(x, np.multiply(x, mask.reshape(shape), out=np.empty_like(x)), inplace,
                     where)


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Whole channels zeroed with probability p (the others scaled by 1 / (1 - p)) when
    training. input: (N, C, L) or (C, L)."""
    p = _dropout_p(p)
    training = check_flag("dropout1d", "training", training)
    x = _float("dropout1d", "input", input)
    if x.ndim not in (2, 3):
        raise RuntimeValueError(
            f"dropout1d: Expected 2D or 3D input, but received a {x.ndim}D "
            f"input. Note that dropout1d exists to provide channel-wise "
            f"dropout on inputs with 1 spatial dimension, a channel dimension, "
            f"and an optional batch dimension (i.e. 2D or 3D inputs).")
    return _feature_dropout("dropout1d", x, p, x.ndim - 1, training, inplace)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """As dropout1d for (N, C, H, W) input; as PyTorch's, a 3-D input is read as
    (N, C, L), and other ranks (>= 2) drop per (axis 0, axis 1) index with its
    deprecation warning."""
    p = _dropout_p(p)
    training = check_flag("dropout2d", "training", training)
    x = _float("dropout2d", "input", input)
    warn_deprecated_rank("dropout2d", x.ndim, (3, 4), 2)
    return _feature_dropout("dropout2d", x, p, 2, training, inplace)


def dropout3d(input, p=0.5, training=True, inplace=False):
    """As dropout1d for (N, C, D, H, W) or (C, D, H, W) input; other ranks are read as
    unbatched (one mask value per axis-0 index), with PyTorch's deprecation warning."""
    p = _dropout_p(p)
    training = check_flag("dropout3d", "training", training)
    x = _float("dropout3d", "input", input)
    warn_deprecated_rank("dropout3d", x.ndim, (4, 5), 3)
    return _feature_dropout("dropout3d", x, p, 2 if x.ndim == 5 else 1, training, inplace)


def alpha_dropout(input, p=0.5, training=False, inplace=False):
    """SELU-preserving dropout (nn.AlphaDropout's) when training (False by default, as
    PyTorch's). input: any shape."""
    return _channel_dropout(AlphaDropout(_dropout_p(p)), "alpha_dropout", input, training,
                            inplace)


def feature_alpha_dropout(input, p=0.5, training=False, inplace=False):
    """Alpha dropout of whole channels of an (N, C, *) input when training (False by
    default, as PyTorch's)."""
    return _channel_dropout(FeatureAlphaDropout(_dropout_p(p)), "feature_alpha_dropout",
                            input, training, inplace)


# ------------------------------------------------------------------------ resampling
def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resample the spatial axes of (N, C, L), (N, C, H, W) or (N, C, D, H, W) input to
    ``size`` or by ``scale_factor`` (output floor(in * factor)): mode 'nearest',
    'nearest-exact', 'area' (any of the three ranks), 'linear' (3-D), 'bilinear' and
    'bicubic' (4-D) or 'trilinear' (5-D), with PyTorch's indices, weights and
    align_corners (None: False for the interpolating modes); recompute_scale_factor=True
    interpolates as for that output size. The forward of nn.Upsample. antialias=True
    ('bilinear' and 'bicubic', 4-D input) resamples as PyTorch does (Pillow's filters,
    stretched when downscaling), on the host."""
    where = "interpolate"
    x = _float(where, "input", input)
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating "
                             "modes: linear | bilinear | bicubic | trilinear")
    elif align_corners is None:
        align_corners = False
    dims = x.ndim - 2
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is None and scale_factor is None:
        raise ValueError("either size or scale_factor should be defined")
    given = size if size is not None else scale_factor
    if isinstance(given, (tuple, list)) and len(given) != dims:
        raise ValueError(f"Input and {'output size' if size is not None else 'scale_factor'} "
                         f"must have the same number of spatial dimensions, but got input "
                         f"with spatial dimensions of {list(x.shape[2:])} and "
                         f"{'output size' if size is not None else 'scale_factor'} of "
                         f"{given}.")
    if isinstance(size, (tuple, list)) and not all(_is_int(v) for v in size):
        raise TypeError(f"expected size to be one of int or Tuple[int] or Tuple[int, int] or "
                        f"Tuple[int, int, int], but got size with types "
                        f"{[type(v) for v in size]}")
    if recompute_scale_factor and size is not None:
        raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
    out = None
    per_axis = given if isinstance(given, (tuple, list)) else (given,) * dims
    if size is None and (recompute_scale_factor or mode == "area"):
        # PyTorch computes this output size in Python: math.floor's TypeError, ValueError
        # (NaN) or OverflowError (inf) for a bad factor
        [math.floor(float(n) * v) for n, v in zip(x.shape[2:], per_axis)]
    if dims >= 1 and all(isinstance(v, numbers.Real) and math.isfinite(v) for v in per_axis):
        out = [int(v) if size is not None else int(n * float(v))
               for n, v in zip(x.shape[2:], per_axis)]
    if antialias and (mode not in ("bilinear", "bicubic") or x.ndim != 4):
        raise ValueError("Anti-alias option is restricted to bilinear, bicubic, and lanczos "
                         "modes and requires a 4-D tensor as input")
    if x.ndim not in (3, 4, 5) or mode not in MODE_RANKS:
        raise NotImplementedValueError(f"Input Error: Only 3D, 4D and 5D input Tensors "
                                       f"supported (got {x.ndim}D) for the modes: nearest | "
                                       f"linear | bilinear | bicubic | trilinear | area | "
                                       f"nearest-exact (got {mode})")
    if x.ndim not in MODE_RANKS[mode]:
        raise NotImplementedValueError(f"Got {x.ndim}D input, but {mode} mode needs "
                                       f"{MODE_RANKS[mode][0]}D input")
    # (what PyTorch's kernels, called from here on, refuse as arguments)
    if size is not None and not isinstance(size, (tuple, list)) and not _is_int(size):
        raise TypeError(f"interpolate: expected size to be an int or a tuple of ints, got "
                        f"{size!r}")
    if size is None and not all(isinstance(v, numbers.Real) for v in per_axis):
        raise TypeError(f"interpolate: expected scale_factor to be a float or a tuple of "
                        f"floats, got {scale_factor!r}")
    if out is None:
        raise RuntimeValueError("value cannot be converted to type int64_t without overflow")
    if x.shape[1] == 0 and (mode != "area" or x.ndim == 5):
        raise RuntimeValueError(
            f"Non-empty {x.ndim}D data tensor expected but got a tensor with "
            f"sizes {list(x.shape)}")
    # (after the mode's rank, as PyTorch checks them) 'area' is adaptive average pooling,
    # which gives an output size of 0 as an empty output; the other modes refuse it
    if min(x.shape[2:]) > 0 and min(out) == 0 and mode == "area":
        return np.zeros(x.shape[:2] + tuple(out), x.dtype)
    if min(out) <= 0 or min(x.shape[2:]) <= 0:
        raise RuntimeValueError(f"Input and output sizes should be greater than 0, but got "
                                f"input {tuple(x.shape[2:])} output {tuple(out)}")
    layer = Upsample(size, scale_factor, mode, align_corners, recompute_scale_factor)
    if antialias:
        return _antialiased(layer, x)
    return _layer_forward(layer, x)


def _antialiased(layer, x):
    """interpolate(..., antialias=True) of (N, C, H, W) x in the layer's geometry: the
    width resampled first, then the height, as PyTorch's kernel does; an axis whose size
    does not change is left as it is (PyTorch skips it too, whatever the scale factor)."""
    spatial = tuple(x.shape[2:])
    out, factors = layer._geometry(spatial)
    y = _device.to_host(x)
    for axis in (3, 2):
        n, o, f = spatial[axis - 2], out[axis - 2], factors[axis - 2]
        if o != n:
            y = along_axis(y, antialias_matrix(layer.mode, n, o, f, layer.align_corners,
                                               y.dtype), axis)
    return _device.namespace_of(x).put(np.ascontiguousarray(y))


def _int_arguments(where, **values):
    """PyTorch's TypeError for an argument typed int (or a tuple of ints) that is not."""
    for name, value in values.items():
        items = value if isinstance(value, (tuple, list)) else (value,)
        if not all(_is_int(v) for v in int_items(items)):
            raise TypeValueError(f"{where}(): argument '{name}' must be an int or a tuple of "
                                 f"ints, not {value!r}")


def pixel_shuffle(input, upscale_factor):
    """(*, C r^2, H, W) -> (*, C, H r, W r), r = upscale_factor (PyTorch's order)."""
    _int_arguments("pixel_shuffle", upscale_factor=upscale_factor)
    return _window_layer(lambda: PixelShuffle(upscale_factor),
                         _float("pixel_shuffle", "input", input))


def pixel_unshuffle(input, downscale_factor):
    """(*, C, H r, W r) -> (*, C r^2, H, W), the inverse of pixel_shuffle."""
    _int_arguments("pixel_unshuffle", downscale_factor=downscale_factor)
    return _window_layer(lambda: PixelUnshuffle(downscale_factor),
                         _float("pixel_unshuffle", "input", input))


def channel_shuffle(input, groups):
    """(N, C, *) with C = groups * k: the channels read as (groups, k) and transposed
    (ShuffleNet's)."""
    _int_arguments("channel_shuffle", groups=groups)
    if groups <= 0:
        raise RuntimeValueError(
            f"Number of groups to divide channels in must be positive. Value "
            f"of groups:{groups}")
    return _layer_forward(ChannelShuffle(groups), _float("channel_shuffle", "input", input))


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """The sliding blocks of (N, C, H, W) (or (C, H, W)) input: (N, C * kH * kW, L), one
    column per window position (im2col, nn.Unfold's forward)."""
    _int_arguments("unfold", kernel_size=kernel_size, dilation=dilation, padding=padding,
                   stride=stride)
    return _window_layer(lambda: Unfold(kernel_size, dilation, padding, stride),
                         _float("unfold", "input", input))


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Blocks (N, C * kH * kW, L) (or unbatched) added back into an (N, C, *output_size)
    image (col2im, nn.Fold's forward)."""
    _int_arguments("fold", output_size=output_size, kernel_size=kernel_size,
                   dilation=dilation, padding=padding, stride=stride)
    return _window_layer(lambda: Fold(output_size, kernel_size, dilation, padding, stride),
                         _float("fold", "input", input))


# ------------------------------------------------------------------------ convolution
def _conv_ints(where, name, value, dims):
    """_ints, with PyTorch's RuntimeError for a sequence of ints of the wrong length."""
    if (isinstance(value, (tuple, list)) and len(value) not in (1, dims)
            and all(_is_int(v) for v in value)):
        raise RuntimeValueError(
            f"expected {name} to be a single integer value or a list of {dims} "
            f"values to match the convolution dimensions, but got "
            f"{name}={list(value)}")
    return _ints(where, name, value, dims)


def _conv_operands(where, dims, input, weight, groups, stride, dilation, device_ok=False):
    """(x, weight, stride, dilation) after the checks every convolution makes (ranks,
    dtypes, groups, stride and dilation); device_ok: device arrays pass (as C-contiguous
    device arrays, both)."""
    x = _float(where, "input", input, device_ok=device_ok)
    if x.ndim not in (dims + 1, dims + 2):
        raise RuntimeValueError(
            f"Expected {dims + 1}D (unbatched) or {dims + 2}D (batched) input "
            f"to {where}, but got input of size: {list(x.shape)}")
    gpu = device_ok and _on_gpu(x)
    if device_ok:
        _one_device(where, gpu, weight=weight)
    w = _float(where, "weight", weight, dtype=x.dtype, device_ok=gpu)
    if gpu:
        x, w = _device.Cuda.put(x), _device.Cuda.put(w)
    if w.ndim != dims + 2:
        raise RuntimeValueError(
            f"{where}: expected weight to be {dims + 2}-D, got shape {w.shape}")
    if not _is_int(groups) or groups < 1:
        raise RuntimeValueError("non-positive groups is not supported")
    if w.shape[0] < groups:
        raise RuntimeValueError(
            f"Given groups={groups}, expected weight to be at least {groups} at "
            f"dimension 0, but got weight of size {list(w.shape)} instead")
    if min(w.shape[2:]) < 1:
        raise RuntimeValueError(f"kernel size should be greater than zero, but got "
                                f"{' x '.join(map(str, w.shape[2:]))}")
    if w.shape[0] % groups:
        raise RuntimeValueError(
            f"Given groups={groups}, expected weight to be divisible by {groups} "
            f"at dimension 0, but got weight of size [{list(w.shape)}] instead")
    stride = _conv_ints(where, "stride", stride, dims)
    dilation = _conv_ints(where, "dilation", dilation, dims)
    if min(stride) < 1:
        raise RuntimeValueError("non-positive stride is not supported")
    if min(dilation) < 1:
        raise RuntimeValueError("dilation should be greater than zero")
    return x, w, stride, dilation


def _conv_bias(where, bias, w, out_channels, dtype, transposed=False, device_ok=False):
    """bias checked: None, or (out_channels,) of dtype; device_ok: the input is a device
    array, and so must bias be (else it must be a NumPy array)."""
    if bias is None:
        return None
    _one_device(where, device_ok, bias=bias)
    b = _float(where, "bias", bias, dtype=dtype, device_ok=device_ok)
    if tuple(b.shape) != (out_channels,):
        raise RuntimeValueError(
            f"Given {'transposed=1, ' if transposed else ''}weight of size "
            f"{list(w.shape)}, expected bias to be 1-dimensional with "
            f"{out_channels} elements, but got bias of size {list(b.shape)} "
            f"instead")
    return b


def _conv(where, dims, input, weight, bias, stride, padding, dilation, groups):
    """The N-d convolution: dims 1 and 2 by ops.conv2d_forward (1-D on an (N, C, 1, L)
    view; groups one call per group, dilation a kernel spread with zeros, an asymmetric
    'same' border (even spans) an explicit zero pad), dims 3 by nn's im2col."""
    x, w, stride, dilation = _conv_operands(where, dims, input, weight, groups, stride,
                                            dilation, device_ok=dims < 3)
    gpu = _on_gpu(x)
    unbatched = x.ndim == dims + 1
    xb = x.reshape((1,) + tuple(x.shape)) if unbatched else x
    c, size = xb.shape[1], tuple(xb.shape)[2:]
    out_channels, group_in = tuple(w.shape)[:2]
    if c != group_in * groups:
        raise RuntimeValueError(
            f"Given groups={groups}, weight of size {list(w.shape)}, expected "
            f"input{list(xb.shape)} to have {group_in * groups} channels, but "
            f"got {c} channels instead")
    b = _conv_bias(where, bias, w, out_channels, x.dtype, device_ok=gpu)
    spans = tuple(d * (k - 1) + 1 for d, k in zip(dilation, w.shape[2:]))
    if isinstance(padding, str):
        if padding == "valid":
            border = ((0, 0),) * dims
        elif padding == "same":
            if max(stride) != 1:
                raise RuntimeValueError(
                    "padding='same' is not supported for strided convolutions")
            border = tuple(((s - 1) // 2, (s - 1) - (s - 1) // 2) for s in spans)
        else:
            raise RuntimeValueError(f"Invalid padding string: {padding!r}")
    else:
        pads = _conv_ints(where, "padding", padding, dims)
        if min(pads) < 0:
            raise RuntimeValueError("negative padding is not supported")
        border = tuple((p, p) for p in pads)
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(size, border))
    if any(s > n for s, n in zip(spans, padded)):
        raise RuntimeValueError(
            f"Calculated padded input size per channel: "
            f"({' x '.join(map(str, padded))}). Kernel size: "
            f"({' x '.join(map(str, spans))}). Kernel size can't be greater "
            f"than actual input size")
    if dims == 3:
        y = conv3d_forward(xb, w, b, stride, border, dilation, groups)[0]
        return y[0] if unbatched else y
    if gpu and (groups != 1 or max(dilation) != 1 or any(lo != hi for lo, hi in border)):
        option = ("groups > 1" if groups != 1 else "dilation > 1" if max(dilation) != 1
                  else "an even-sized padding='same'")
        raise no_cuda_kernel(where, option)
    if dims == 1:  # the 2-D kernels on height-1 views
        xb = xb.reshape(tuple(xb.shape)[:2] + (1,) + tuple(xb.shape)[2:])
        w = w.reshape(tuple(w.shape)[:2] + (1,) + tuple(w.shape)[2:])
        stride, dilation, border = (1,) + stride, (1,) + dilation, ((0, 0),) + border
    if any(lo != hi for lo, hi in border):
        xb = pad_forward(xb, border, "constant")
        border = ((0, 0), (0, 0))
    padding2 = tuple(lo for lo, _ in border)
    if dilation != (1, 1):
        # on the taps the kernel reads (im2col of a depth-1 volume): a kernel spread with
        # zeros would multiply the inputs between its taps by 0, and an inf or NaN there
        # would reach outputs PyTorch keeps finite
        y = conv3d_forward(xb[:, :, None], w[:, :, None], b, (1,) + tuple(stride),
                           ((0, 0),) + tuple(border), (1,) + tuple(dilation), groups)[0]
        y = y[:, :, 0]
    elif groups == 1:
        y = ops.conv2d_forward(xb, w, b, stride, padding2)
    else:
        cin, cout = c // groups, out_channels // groups
        parts = [ops.conv2d_forward(np.ascontiguousarray(xb[:, g * cin:(g + 1) * cin]),
                                    w[g * cout:(g + 1) * cout],
                                    None if b is None else b[g * cout:(g + 1) * cout],
                                    stride, padding2) for g in range(groups)]
        y = np.concatenate(parts, axis=1)
    if dims == 1:
        y = y.reshape(tuple(y.shape)[:2] + tuple(y.shape)[3:])
    return y.reshape(tuple(y.shape)[1:]) if unbatched else y


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D cross-correlation, PyTorch's conv1d.

    input: (N, C_in, L) or unbatched (C_in, L); weight: (C_out, C_in / groups, k); bias:
    (C_out,) or None; stride, padding, dilation: an int or a 1-tuple; padding may be
    'valid' or 'same' (stride 1; an even span pads one more on the right, as PyTorch).
    Output: (N, C_out, L_out), L_out = (L + 2 padding - dilation (k - 1) - 1) // stride + 1
    (without N for an unbatched input). The 2-D kernels on an (N, C, 1, L) view.
    """
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation over NCHW input, PyTorch's conv2d.

    input: (N, C_in, H, W) or unbatched (C_in, H, W); weight: (C_out, C_in / groups, kH,
    kW); bias: (C_out,) or None; stride, padding, dilation: an int or a pair; padding may
    be 'valid' (0) or 'same' (stride 1; output H, W = input H, W; an even dilated kernel
    span pads one more at the bottom/right, as PyTorch). Output: (N, C_out, H_out, W_out),
    H_out = (H + 2 padding - dilation (kH - 1) - 1) // stride + 1 (likewise W_out).
    ops.conv2d_forward; groups > 1 is one call per group, dilation > 1 the kernel spread
    with zeros (its zero taps cost their multiply-adds).
    """
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """3-D cross-correlation over (N, C, D, H, W) input, PyTorch's conv3d.

    input: (N, C_in, D, H, W) or unbatched (C_in, D, H, W); weight: (C_out, C_in / groups,
    kD, kH, kW); bias: (C_out,) or None; stride, padding, dilation: an int or a triple;
    padding may be 'valid' or 'same' (stride 1; an even dilated span pads one more after).
    Output: (N, C_out, D_out, H_out, W_out), D_out = (D + 2 padding - dilation (kD - 1) -
    1) // stride + 1 (likewise H_out, W_out). NumPy on the host: im2col and one matrix
    product per group (nn.Conv3d's).
    """
    return _conv("conv3d", 3, input, weight, bias, stride, padding, dilation, groups)


def _spread(x, stride, before, after):
    """x (N, C, *spatial) with stride - 1 zeros between its values along each spatial axis
    and before / after cells of zero border (a negative count crops instead)."""
    sizes = [(n - 1) * s + 1 for n, s in zip(x.shape[2:], stride)]
    lead = [max(b, 0) for b in before]
    full = np.zeros(x.shape[:2] + tuple(z + b + max(a, 0) for z, b, a in
                                         zip(sizes, lead, after)), x.dtype)
    full[(slice(None),) * 2 + tuple(slice(b, b + z, s) for b, z, s in
                                    zip(lead, sizes, stride))] = x
    crop = tuple(slice(max(-b, 0), n - max(-a, 0)) for b, a, n in
                 zip(before, after, full.shape[2:]))
    return _device.c_contiguous(full[(slice(None),) * 2 + crop])


def _conv_transpose(where, dims, input, weight, bias, stride, padding, output_padding,
                    groups, dilation):
    """The N-d transposed convolution: the convolution (stride 1, the same dilation and
    groups) of x spread by the stride, with d (k - 1) - padding of zero border (plus
    output_padding after), and the flipped kernel, its channel axes swapped per group."""
    x, w, stride, dilation = _conv_operands(where, dims, input, weight, groups, stride,
                                            dilation)
    if isinstance(padding, str):
        raise TypeError(f"{where}(): argument 'padding' must be tuple of ints, not str")
    padding = _conv_ints(where, "padding", padding, dims)
    output_padding = _conv_ints(where, "output_padding", output_padding, dims)
    if min(padding) < 0:
        raise RuntimeValueError("negative padding is not supported")
    if min(output_padding) < 0:
        raise RuntimeValueError("negative output_padding is not supported")
    if any(o >= s and o >= d for o, s, d in zip(output_padding, stride, dilation)):
        raise RuntimeValueError(
            f"output padding must be smaller than either stride or dilation, "
            f"but got output_padding {output_padding}, stride {stride} and "
            f"dilation {dilation}")
    unbatched = x.ndim == dims + 1
    xb = x[None] if unbatched else x
    c, kernel = xb.shape[1], w.shape[2:]
    if c != w.shape[0]:
        raise RuntimeValueError(
            f"Given transposed=1, weight of size {list(w.shape)}, expected "
            f"input{list(xb.shape)} to have {w.shape[0]} channels, but got {c} "
            f"channels instead")
    out_channels = w.shape[1] * groups
    b = _conv_bias(where, bias, w, out_channels, x.dtype, transposed=True)
    lead = [d * (k - 1) - p for d, k, p in zip(dilation, kernel, padding)]
    out = [(n - 1) * s + 1 + 2 * q + o
           - d * (k - 1) for n, s, q, o, d, k in zip(xb.shape[2:], stride, lead,
                                                      output_padding, dilation, kernel)]
    if min(out) < 1:
        raise RuntimeValueError(
            f"Given input size per channel: "
            f"({' x '.join(map(str, xb.shape[2:]))}). Calculated output size "
            f"per channel: ({' x '.join(map(str, out))}). Output size is too "
            f"small")
    flip = (slice(None),) * 3 + (slice(None, None, -1),) * dims
    flipped = np.ascontiguousarray(
        w.reshape((groups, c // groups, w.shape[1]) + kernel).swapaxes(1, 2)[flip]
        .reshape((out_channels, c // groups) + kernel))
    spread = _spread(xb, stride, lead, [q + o for q, o in zip(lead, output_padding)])
    y = _conv(where, dims, spread, flipped, b, 1, 0, dilation, groups)
    return y[0] if unbatched else y


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    """1-D transposed convolution, PyTorch's conv_transpose1d.

    input: (N, C_in, L) or unbatched (C_in, L); weight: (C_in, C_out / groups, k); bias:
    (C_out,) or None; stride, padding, output_padding, dilation: an int or a 1-tuple
    (output_padding below the stride or the dilation). Output: (N, C_out, L_out), L_out =
    (L - 1) stride - 2 padding + dilation (k - 1) + output_padding + 1.
    """
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    """2-D transposed convolution over NCHW input, PyTorch's conv_transpose2d.

    input: (N, C_in, H, W) or unbatched (C_in, H, W); weight: (C_in, C_out / groups, kH,
    kW); bias: (C_out,) or None; stride, padding, output_padding, dilation: an int or a
    pair. Output: (N, C_out, H_out, W_out), H_out = (H - 1) stride - 2 padding + dilation
    (kH - 1) + output_padding + 1 (likewise W_out). conv2d of the spread input.
    """
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    """3-D transposed convolution over (N, C, D, H, W) input, PyTorch's conv_transpose3d.

    input: (N, C_in, D, H, W) or unbatched (C_in, D, H, W); weight: (C_in, C_out / groups,
    kD, kH, kW); bias: (C_out,) or None; stride, padding, output_padding, dilation: an int
    or a triple. Output: (N, C_out, D_out, H_out, W_out), D_out = (D - 1) stride - 2
    padding + dilation (kD - 1) + output_padding + 1 (likewise H_out, W_out). conv3d of
    the spread input (its stride**3 cells cost memory and products with zeros).
    """
    return _conv_transpose("conv_transpose3d", 3, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


# --------------------------------------------------------------------------- pooling
def _pool_ints(where, name, value, dims):
    """_ints for a pooling argument: a sequence of another length than 1 or dims is
    PyTorch's RuntimeError (a non-int its TypeError)."""
    items = int_items(value)
    if isinstance(items, (tuple, list)) and len(items) not in (1, dims):
        raise RuntimeValueError(f"{where}: {name} must either be a single int, or a tuple of "
                                f"{dims} ints, got {value!r}")
    return _ints(where, name, value, dims)


def _pool_args(where, dims, kernel_size, stride, padding, dilation=1):
    """(kernel_size, stride, padding, dilation) as dims-tuples with PyTorch's checks;
    stride None (or empty) is kernel_size."""
    kernel = _pool_ints(where, "kernel_size", kernel_size, dims)
    stride = kernel if default_stride(stride) else _pool_ints(where, "stride", stride, dims)
    padding = _pool_ints(where, "padding", padding, dims)
    dilation = _pool_ints(where, "dilation", dilation, dims)
    if min(kernel) < 1:
        raise RuntimeValueError("kernel_size must be greater than zero")
    if min(stride) < 1:
        raise RuntimeValueError("stride should be greater than zero")
    if min(dilation) < 1:
        raise RuntimeValueError("dilation should be greater than zero")
    if min(padding) < 0:
        raise RuntimeValueError("pad must be non-negative")
    for k, p, d in zip(kernel, padding, dilation):
        if p > k // 2:
            raise RuntimeValueError(
                f"pad should be at most half of effective kernel size, but got "
                f"pad={p}, kernel_size={k} and dilation={d}")
    return kernel, stride, padding, dilation


def _pool(where, dims, input, kernel, stride, padding, dilation, ceil_mode, run):
    """run(x4, kernel2, stride2, padding2, dilation2) on input (N, C, *spatial) or
    unbatched (C, *spatial) as an (N, C, H, W) array (1-D: H = 1, a view); its outputs
    (arrays of the output's shape) shaped back. A device input runs on the GPU (run's
    ops take it there)."""
    x = _float(where, "input", input, device_ok=True)
    if _on_gpu(x):   # (reshaped below: C-contiguous, its shape a tuple)
        x = _device.Cuda.put(x)
    if x.ndim not in (dims + 1, dims + 2) or 0 in tuple(x.shape)[x.ndim - dims - 1:]:
        raise RuntimeValueError(
            f"{where}: non-empty {dims + 1}D or {dims + 2}D (batch mode) tensor "
            f"expected for input, got shape {x.shape}")
    sizes = tuple(x.shape)[x.ndim - dims:]
    out = tuple(window_out_size(n, k, s, p, ceil_mode, d)
                for n, k, s, p, d in zip(sizes, kernel, stride, padding, dilation))
    if min(out) < 1:
        c = x.shape[x.ndim - dims - 1]
        raise RuntimeValueError(f"Given input size: ({'x'.join(map(str, (c,) + sizes))}). "
                                f"Calculated output size: ({'x'.join(map(str, (c,) + out))}). "
                                f"Output size is too small")
    lead = tuple(x.shape)[:x.ndim - dims]
    x4 = x.reshape((math.prod(lead[:-1]),) + lead[-1:] + (1,) * (2 - dims) + sizes)
    if dims == 1:
        kernel, stride, padding, dilation = ((1,) + kernel, (1,) + stride, (0,) + padding,
                                             (1,) + dilation)
    results = run(x4, kernel, stride, padding, dilation)
    return tuple(r.reshape(lead + out) for r in results)


def _max_pool(where, dims, input, kernel_size, stride, padding, dilation, ceil_mode,
              return_indices):
    ceil_mode = check_flag(where, "ceil_mode", ceil_mode)
    kernel, stride, padding, dilation = _pool_args(where, dims, kernel_size, stride, padding,
                                                   dilation)

    def run(x4, k, s, p, d):
        return ops.max_pool2d_forward(x4, k, s, p, ceil_mode=ceil_mode, dilation=d)

    y, indices = _pool(where, dims, input, kernel, stride, padding, dilation, ceil_mode, run)
    return (y, indices) if return_indices else y


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Maximum over windows of (N, C, L) or unbatched (C, L) input; padding (at most half
    the kernel) counts as -inf. kernel_size, stride (None: kernel_size), padding, dilation:
    an int or a 1-tuple. Output (N, C, L_out), L_out = (L + 2 p - d (k - 1) - 1) // s + 1
    (ceil_mode: rounded up, PyTorch's rule); with return_indices, (output, int64 indices of
    the maxima along L)."""
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Maximum over windows of (N, C, H, W) or unbatched (C, H, W) input; padding (at most
    half the kernel) counts as -inf. kernel_size, stride (None: kernel_size), padding,
    dilation: an int or a pair. Output (N, C, H_out, W_out), H_out = (H + 2 p - d (k - 1) -
    1) // s + 1 (ceil_mode: rounded up, PyTorch's rule); with return_indices, (output,
    int64 indices h * W + w of each maximum in its plane, MaxUnpool2d's input)."""
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices)


def _avg_pool(where, dims, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override):
    ceil_mode = check_flag(where, "ceil_mode", ceil_mode)
    count_include_pad = check_flag(where, "count_include_pad", count_include_pad)
    kernel, stride, padding, dilation = _pool_args(where, dims, kernel_size, stride, padding)
    divisor_override = _divisor_override(where, divisor_override)
    # a negative divisor (PyTorch divides by it) is the kernels' positive one, negated
    divisor = None if divisor_override is None else abs(divisor_override)

    def run(x4, k, s, p, d):
        return (ops.avg_pool2d_forward(x4, k, s, p, count_include_pad,
                                       ceil_mode=ceil_mode, divisor_override=divisor),)

    y = _pool(where, dims, input, kernel, stride, padding, dilation, ceil_mode, run)[0]
    if divisor_override is not None and divisor_override < 0:
        # 0 - y, not -y: a window summing to 0 gives +0, as PyTorch's (y: the op's own)
        if _on_gpu(y):   # (through the host: a device array has no arithmetic)
            return _device.Cuda.put(np.subtract(y.dtype.type(0), _device.to_host(y)))
        np.subtract(y.dtype.type(0), y, out=y)
    return y


def _divisor_override(where, value):
    """None, or divisor_override as a non-zero int (negative ones too), with PyTorch's
    TypeError for another type and RuntimeError for 0."""
    if value is None:
        return None
    if not _is_int(value):
        raise TypeValueError(f"{where}(): argument 'divisor_override' must be int, not "
                             f"{type(value).__name__}")
    if value == 0:
        raise RuntimeValueError("divisor must be not zero")
    return int(value)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """Mean over windows of (N, C, L) or unbatched (C, L) input, zero padding (at most half
    the kernel); count_include_pad=False divides by the unpadded cells only. Output
    (N, C, L_out), L_out = (L + 2 p - k) // s + 1 (ceil_mode: rounded up)."""
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Mean over windows of (N, C, H, W) or unbatched (C, H, W) input, zero padding (at most
    half the kernel); count_include_pad=False divides by the unpadded cells only,
    divisor_override (a non-zero int) replaces the divisor. Output (N, C, H_out, W_out),
    H_out = (H + 2 p - k) // s + 1 (ceil_mode: rounded up)."""
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


def adaptive_avg_pool1d(input, output_size):
    """Mean over PyTorch's adaptive windows of (N, C, L) or unbatched (C, L) input, giving
    (N, C, output_size). output_size: an int (or a 1-tuple); 0 gives an empty output, as
    PyTorch's. The forward of nn.AdaptiveAvgPool1d (a pooling op when output_size divides
    L)."""
    return _adaptive_avg(1, input, output_size)


def adaptive_avg_pool2d(input, output_size):
    """Mean over PyTorch's adaptive windows of (N, C, H, W) or unbatched (C, H, W) input,
    giving (N, C, H_out, W_out). output_size: an int or a pair, an entry None keeping that
    input size, an entry 0 giving an empty output (PyTorch's). The forward of
    nn.AdaptiveAvgPool2d (a pooling op when the output sizes divide the input's)."""
    return _adaptive_avg(2, input, output_size)


def _adaptive_avg(dims, input, output_size):
    where = f"adaptive_avg_pool{dims}d"
    _adaptive_size(where, dims, output_size)
    x = _float(where, "input", input)
    empty = _adaptive_empty(where, _ADAPTIVE_AVG[dims], dims, x, output_size, wrap=True)
    if empty is not None:   # (an entry 0: PyTorch's empty output)
        return empty
    return _window_layer(lambda: _ADAPTIVE_AVG[dims](output_size), x)


def _adaptive_size(where, dims, output_size):
    """PyTorch's TypeError for an output_size that is not an int or a tuple of dims ints
    (None entries allowed in the tuple of a 2-D or 3-D pool)."""
    items = int_items(output_size)
    tupled = isinstance(items, (tuple, list))
    if not all(_is_int(v) or (v is None and tupled and dims > 1)
               for v in (items if tupled else (items,))):
        raise TypeValueError(f"{where}(): argument 'output_size' must be an int or a tuple "
                             f"of ints, got {output_size!r}")


def _adaptive_empty(where, layer, dims, input, output_size, indices=False, wrap=False):
    """None when no entry of output_size is 0; else PyTorch's empty output of an adaptive
    pool (and its empty int64 indices when indices), the output shape and the errors the
    layer gives for the other sizes and the input (whose sizes must be positive: the layers
    refuse 0; ``wrap``: its ValueErrors as RuntimeError, as the caller's other path)."""
    sizes = int_items(output_size)
    items = tuple(sizes) if isinstance(sizes, (tuple, list)) else (sizes,) * dims
    zero = [_is_int(v) and v == 0 for v in items]
    if len(items) != dims or not any(zero):
        return None
    x = _float(where, "input", input)
    with _runtime_errors() if wrap else contextlib.nullcontext():
        # (2 for the zeros: the layer checks the input as for a non-empty output; not 1,
        # whose mean shortcut takes inputs of any rank)
        shape = list(layer(tuple(2 if z else v for z, v in zip(zero, items)))
                     .infer_shape(x.shape, x.dtype))
    for axis, z in enumerate(zero):
        if z:
            shape[len(shape) - dims + axis] = 0
    y = np.zeros(shape, x.dtype)
    return (y, np.zeros(shape, np.int64)) if indices else y


# ----------------------------------------------------------------------- normalisation
def _channel_vector(where, name, value, c, dtype, device_ok=False):
    """None, or a (C,) float array of dtype (PyTorch's RuntimeError on another size);
    device_ok: the input is a device array, and so must value be (else a NumPy array)."""
    if value is None:
        return None
    _one_device(where, device_ok, **{name: value})
    v = _float(where, name, value, dtype=dtype, device_ok=device_ok)
    if tuple(v.shape) != (c,):
        raise RuntimeValueError(f"{name} should contain {c} elements not {v.size}")
    return v


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-05):
    """Batch normalisation per channel (axis 1), PyTorch's batch_norm.

    input: (N, C, *) (any rank >= 2); running_mean, running_var: (C,) arrays, or None
    (then training must be True); weight, bias: (C,) or None (1 and 0).
    training=True normalises with the batch's mean and biased variance and, when given,
    updates running_mean and running_var in place (new = (1 - momentum) old + momentum
    batch statistic, the variance unbiased; strided views included, as PyTorch's; a
    read-only array is refused, ValueError); training=False only reads them (any layout,
    read-only ones too) and normalises with them.
    y = (input - mean) / sqrt(var + eps) * weight + bias; output: input's shape.
    ops.batchnorm_forward (a rank other than 2 and 4 on an (N, C, S, 1) view).
    eps must be positive when training, as PyTorch's batch_norm checks (instance_norm
    takes 0, and a constant channel then gives bias, as PyTorch's).
    """
    if not isinstance(eps, bool) and isinstance(eps, (int, float, np.integer, np.floating)):
        if training and eps <= 0:
            raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    if check_flag("batch_norm", "training", training) and (running_mean is None) != (
            running_var is None):
        raise ValueError("running_mean and running_var must either both be None or neither "
                         "be None")
    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum,
                       eps)


def _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps):
    """batch_norm without PyTorch's Python-level check of eps (instance_norm's path)."""
    where = "batch_norm"
    training = check_flag(where, "training", training)
    x = _float(where, "input", input, device_ok=True)
    if x.ndim < 2:
        raise ValueError(f"{where}: expected input of shape (N, C, *), got {x.shape}")
    c, dtype, gpu = x.shape[1], x.dtype, _on_gpu(x)
    if training and x.size // max(c, 1) == 1:  # (an empty input is PyTorch's empty output)
        raise ValueError(f"Expected more than 1 value per channel when training, got input "
                         f"size {x.shape}")
    if not training and (running_mean is None or running_var is None):
        raise RuntimeValueError("running_mean must be defined in evaluation mode")
    running_mean = _channel_vector(where, "running_mean", running_mean, c, dtype, device_ok=gpu)
    running_var = _channel_vector(where, "running_var", running_var, c, dtype, device_ok=gpu)
    weight = _channel_vector(where, "weight", weight, c, dtype, device_ok=gpu)
    bias = _channel_vector(where, "bias", bias, c, dtype, device_ok=gpu)
    if _on_gpu(x):
        return _batch_norm_gpu(x, running_mean, running_var, weight, bias, training,
                               momentum, eps)
    # the kernel takes C-contiguous writeable statistics: eval mode only reads them (a
    # strided or read-only array runs on a copy); training mode writes the caller's arrays
    # (a strided view through a contiguous buffer copied back, as PyTorch updates a view)
    stats = [_running_buffer(where, name, s, training)
             for name, s in (("running_mean", running_mean), ("running_var", running_var))]
    # batch statistics without (one of) the running ones: the kernel updates scratch
    buffers = [np.full(c, fill, dtype) if s is None else s
               for s, fill in zip(stats, (0.0, 1.0))]
    shape = x.shape
    if x.ndim not in (2, 4):
        x = x.reshape(shape[:2] + (math.prod(shape[2:]), 1))
    y, _, _ = ops.batchnorm_forward(
        x, np.ones(c, dtype) if weight is None else weight,
        np.zeros(c, dtype) if bias is None else bias, *buffers,
        training=training, momentum=momentum, eps=eps)
    if training:
        for given, buf in zip((running_mean, running_var), buffers):
            if given is not None and buf is not given:
                given[...] = buf
    return y.reshape(shape)


def _batch_norm_gpu(x, running_mean, running_var, weight, bias, training, momentum, eps):
    """_batch_norm of a device input (checked): ops.batchnorm_forward on the GPU, the
    other arrays moved there; in training mode the running statistics given are updated
    where they live (a host one through a device copy, copied back)."""
    c, dtype, shape = x.shape[1], x.dtype, tuple(x.shape)
    x = _device.Cuda.put(x)   # (reshaped below: C-contiguous)
    if x.ndim not in (2, 4):
        x = x.reshape(shape[:2] + (math.prod(shape[2:]), 1))
    given = (running_mean, running_var)
    stats = [_device.Cuda.zeros(c, dtype) if s is None else _device.Cuda.put(s)
             for s in given]
    if running_var is None:
        _device.Cuda.copy_into(stats[1], np.ones(c, dtype))
    y, _, _ = ops.batchnorm_forward(
        x, np.ones(c, dtype) if weight is None else weight,
        np.zeros(c, dtype) if bias is None else bias, *stats,
        training=training, momentum=momentum, eps=eps)
    if training:
        for s, d in zip(given, stats):
            if s is not None and d is not s:
                _device.namespace_of(s).copy_into(s, d)
    return y.reshape(shape)


def _running_buffer(where, name, stat, training, flag="training"):
    """A running statistic (a checked (C,) array or None) as the kernel takes it: itself
    when C-contiguous and writeable, else a contiguous copy; in training mode (where it is
    updated in place) a read-only one is refused, as there is nothing to write the update
    to (PyTorch has no read-only tensors)."""
    if stat is None or (stat.flags.c_contiguous and stat.flags.writeable):
        return stat
    if training and not stat.flags.writeable:
        raise ValueError(f"{where}: {name} is updated in place when {flag}=True and must "
                         f"be writeable, got a read-only array (pass a writeable copy, or "
                         f"{flag}=False to only read it)")
    return np.array(stat, order="C", copy=True)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-05):
    """Normalise over the trailing dimensions normalized_shape: (input - mean) /
    sqrt(var + eps) * weight + bias, mean and biased variance over those dimensions.

    input: (*, *normalized_shape); normalized_shape: an int or a tuple; weight, bias: of
    shape normalized_shape, or None. Output: input's shape. ops.layer_norm_forward on
    the (rows, prod(normalized_shape)) view.
    """
    where = "layer_norm"
    x = _float(where, "input", input, device_ok=True)
    gpu = _on_gpu(x)
    if gpu:   # (reshaped below: C-contiguous)
        x = _device.Cuda.put(x)
    shape = _trailing_shape(where, x, normalized_shape)
    _one_device(where, gpu, weight=weight, bias=bias)
    vectors = []
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None:
            value = _float(where, name, value, dtype=x.dtype, device_ok=gpu)
            if tuple(value.shape) != shape:
                raise RuntimeValueError(
                    f"Expected {name} to be of same shape as normalized_shape, "
                    f"but got {name} of shape {list(value.shape)} and "
                    f"normalized_shape = {list(shape)}")
            value = value.reshape(-1)
        vectors.append(value)
    d = math.prod(shape)
    if d == 0:   # nothing to normalise: PyTorch's empty output
        return _device.namespace_of(x).empty(x.shape, x.dtype)
    y, _, _ = ops.layer_norm_forward(x.reshape(-1, d), *vectors, eps=eps)
    return y.reshape(x.shape)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-05):
    """Group normalisation: the C channels in num_groups groups, each sample's group
    normalised over its channels and positions, then weight[c] * . + bias[c].

    input: (N, C, *); weight, bias: (C,) or None. Output: input's shape.
    ops.layer_norm_forward on the (N * num_groups, -1) view, then the per-channel affine
    (as nn.GroupNorm).
    """
    where = "group_norm"
    x = _float(where, "input", input)
    if x.ndim < 2:
        raise RuntimeValueError(
            f"Expected at least 2 dimensions for input tensor but received "
            f"{x.ndim}")
    if not _is_int(num_groups) or num_groups < 1:
        raise TypeError(f"{where}: expected num_groups to be a positive int, got "
                        f"{num_groups!r}")
    n, c = x.shape[:2]
    # (PyTorch's _verify_batch_size comes first)
    if n * c // num_groups * math.prod(x.shape[2:]) == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input "
                         f"size {[n * c // num_groups, num_groups, *x.shape[2:]]}")
    if c % num_groups:
        raise RuntimeValueError(f"Expected number of channels in input to be divisible by "
                                f"num_groups, but got input of shape {list(x.shape)} and "
                                f"num_groups={num_groups}")
    affine = []
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None:
            value = _float(where, name, value, dtype=x.dtype)
            if value.shape != (c,):
                raise RuntimeValueError(
                    f"Expected {name} to be a vector of size equal to the "
                    f"number of channels in input, but got {name} of shape "
                    f"{list(value.shape)} and input of shape {list(x.shape)}")
        affine.append(value)
    group_size = c // num_groups * math.prod(x.shape[2:])   # (explicit: x may be empty)
    xhat, _, _ = ops.layer_norm_forward(x.reshape(n * num_groups, group_size), None, None,
                                        eps=eps)
    y = xhat.reshape(n, c, math.prod(x.shape[2:]))
    if affine[0] is not None:
        y *= affine[0][:, None]
    if affine[1] is not None:
        y += affine[1][:, None]
    return y.reshape(x.shape)


# ---------------------------------------------------------------------- embeddings
def _integers(where, name, value):
    if _on_gpu(value):
        raise no_cuda_kernel(where)
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "iu":
        got = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
        raise DtypeError(f"{where}: expected {name} to be an integer numpy.ndarray, got {got}")
    return value


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """The rows of weight at the integer indices input: weight[input].

    input: integer indices of any shape, each in [0, num_embeddings); weight:
    (num_embeddings, embedding_dim). Output: (*input.shape, embedding_dim) in weight's
    dtype. max_norm: the referenced rows whose norm_type-norm exceeds it are first scaled
    to max_norm / (norm + 1e-7) in weight, in place (PyTorch's, by nn.Embedding's
    renorm_rows). padding_idx (checked within range), scale_grad_by_freq and sparse only
    shape gradients: accepted, they change nothing here.
    """
    where = "embedding"
    check_flag(where, "scale_grad_by_freq", scale_grad_by_freq)
    check_flag(where, "sparse", sparse)
    idx = _integers(where, "input", input)
    w = _float(where, "weight", weight)
    if w.ndim != 2:
        raise RuntimeValueError("'weight' must be 2-D")
    num = w.shape[0]
    if padding_idx is not None and not (_is_int(padding_idx) and -num <= padding_idx < num):
        raise AssertionValueError("Padding_idx must be within num_embeddings")
    if idx.size and (idx.min() < 0 or idx.max() >= num):
        raise IndexValueError("index out of range in self")
    if max_norm is not None:
        renorm_rows(w, idx, max_norm, norm_type)
    return np.take(w, idx, axis=0)


def one_hot(tensor, num_classes=-1):
    """One-hot encoding: an int64 array of shape (*tensor.shape, num_classes) with 1 at
    each class index and 0 elsewhere. tensor: integer class indices >= 0; num_classes:
    -1 takes max(tensor) + 1."""
    where = "one_hot"
    t = _integers(where, "tensor", tensor)
    if not _is_int(num_classes):
        raise TypeError(f"{where}: expected num_classes to be an int, got {num_classes!r}")
    if num_classes < -1:
        raise RuntimeValueError(f"{where}: expected num_classes to be -1 or an int >= 0, got "
                                f"{num_classes!r}")
    if num_classes in (-1, 0) and t.size == 0:   # (PyTorch's for 0 too)
        raise RuntimeValueError("Can not infer total number of classes from empty tensor.")
    if num_classes == -1:
        num_classes = int(t.max()) + 1
    if t.size and t.min() < 0:
        raise RuntimeValueError("Class values must be non-negative.")
    if t.size and t.max() >= num_classes:
        raise RuntimeValueError("Class values must be smaller than num_classes.")
    out = np.zeros(t.shape + (int(num_classes),), np.int64)
    np.put_along_axis(out, t.astype(np.int64)[..., None], 1, axis=-1)
    return out


# --------------------------------------------------------------------------- padding
_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def pad(input, pad, mode="constant", value=None):
    """Pad the last len(pad) // 2 dimensions of input: pad = (left, right) for the last,
    then (top, bottom) for the one before, then (front, back); negative entries crop.

    mode: 'constant' (value, default 0, any rank), 'reflect' (the border not repeated;
    padding below the size), 'replicate' (the border repeated) or 'circular' (wrapping;
    padding at most the size); the last three pad the last 1, 2 or 3 dimensions of an
    input of that rank plus 1 or 2, as PyTorch. Output: input's shape with each padded
    size grown by its two entries. np.pad through nn's padding helper.
    """
    where = "pad"
    x = _float(where, "input", input)
    if not isinstance(pad, (tuple, list)) or not all(_is_int(v) for v in pad):
        raise TypeValueError(f"{where}: expected pad to be a tuple of ints, got {pad!r}")
    pad = check_int64(where, "pad", pad)
    if mode not in _PAD_MODES:   # (before the lengths, as PyTorch)
        raise NotImplementedValueError(f"Unrecognised padding mode {mode}")
    if len(pad) % 2:
        raise RuntimeValueError("Padding length must be divisible by 2")
    k = len(pad) // 2
    if k > x.ndim:
        raise RuntimeValueError(f"Padding length should be less than or equal to two times the "
                                f"input dimension but got padding length {len(pad)} and input of "
                                f"dimension {x.ndim}")
    if k == 0 and mode == "constant":
        return x.copy()  # (an empty pad: a copy, of a 0-d input too, as PyTorch's)
    if mode != "constant":
        if value is not None and value != 0:
            raise RuntimeValueError(f'Padding mode "{mode}" doesn\'t take in value argument')
        if k not in (1, 2, 3) or x.ndim not in (k + 1, k + 2):
            raise NotImplementedValueError(
                f"Padding size {len(pad)} is not supported for {x.ndim}D input tensor "
                f"(non-constant padding of the last k dimensions takes input of rank k + 1 "
                f"or k + 2)")
        with _runtime_errors():
            check_border_input(where, mode, x.shape, k)
    sizes = tuple(reversed([(pad[2 * i], pad[2 * i + 1]) for i in range(k)]))
    first = x.ndim - k
    for axis, (n, (before, after)) in enumerate(zip(x.shape[first:], sizes), start=first):
        out = n + before + after
        if mode == "circular" and wraps_nothing(n, before, after):
            continue
        if mode in ("constant", "circular") and n + min(before, 0) + min(after, 0) < 0:
            raise RuntimeValueError(f"{where}: cropping ({before}, {after}) removes more than the "
                                    f"{n} values along dimension {axis}")
        if out < 0:
            raise RuntimeValueError(f"input (size {n} at dimension {axis}) is too small. "
                                    f"Calculated output size: {out}")
        if mode == "reflect" and max(before, after) >= n:
            raise RuntimeValueError(f"Argument #4: Padding size should be less than the "
                                    f"corresponding input dimension, but got: padding ({before}, "
                                    f"{after}) at dimension {axis} of input {list(x.shape)}")
        if mode == "circular" and max(before, after) > n + min(before, 0) + min(after, 0):
            raise RuntimeValueError("Padding value causes wrapping around more than once.")
    outs = [n + b + a for n, (b, a) in zip(x.shape[first:], sizes)]
    if mode in ("reflect", "replicate") and max(outs) < 1:  # (one empty axis is allowed)
        raise RuntimeValueError(f"input (sizes {list(x.shape[first:])}) is too small. Calculated "
                                f"output sizes: {outs}")
    crop = (Ellipsis,) + tuple(slice(max(-b, 0), None if a >= 0 else a) for b, a in sizes)
    grown = tuple((max(b, 0), max(a, 0)) for b, a in sizes)
    value = 0.0 if value is None else value
    if mode == "constant":
        check_fill_value(where, value, x.dtype)
    if mode == "circular":  # PyTorch wraps what is left after cropping
        return pad_forward(x, sizes, mode) if 0 in outs else \
            pad_forward(as_contiguous(x[crop]), grown, mode, value)
    y = pad_forward(x, grown, mode, value)
    if any(b < 0 or a < 0 for b, a in sizes):  # the other modes crop the padded array
        crop = (Ellipsis,) + tuple(slice(max(-b, 0), y.shape[axis] - max(-a, 0))
                                   for axis, (b, a) in enumerate(sizes, start=first))
        y = as_contiguous(np.array(y[crop]))
    return y


# ------------------------------------------------------------------------- distances
def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """input / max(||input||_p, eps), the p-norm taken along dim: an int, a tuple of them
    or None (all dimensions), as PyTorch's. p: a number (inf, -inf and 0 as
    np.linalg.norm's vector orders), 'fro' (2) or 'nuc' (over two dimensions). input: any
    shape with those dimensions; out: an array of input's shape and dtype to write into,
    or None. Output: input's shape."""
    where = "normalize"
    x = _float(where, "input", input)
    if p == "nuc" and not ((isinstance(dim, (tuple, list)) and len(dim) == 2)
                           or (dim is None and x.ndim == 2)):
        raise RuntimeValueError(f"{where}: the nuclear norm takes two dims, got dim={dim!r}")
    if p == "fro" and isinstance(dim, (tuple, list)) and len(dim) > 2:
        raise RuntimeValueError(f"{where}: the Frobenius norm takes one or two dims, got "
                                f"dim={dim!r}")
    axes = _norm_axes(dim, x.ndim)
    if out is not None:
        _float(where, "out", out, dtype=x.dtype)
        if out.shape != x.shape:
            raise RuntimeValueError(
                f"{where}: expected out of shape {x.shape}, got {out.shape}")
        if not out.flags.writeable:   # (NumPy's own error would not name the function)
            raise ValueError(f"{where}: expected out to be writeable, got a read-only array")
    if x.ndim == 0:
        norm = np.abs(x) if p != 0 else (x != 0).astype(x.dtype)
    else:
        for axis in axes:
            _infinite_norm_axis(p, x.shape, axis)
        with np.errstate(over="ignore", invalid="ignore"):   # (inf and NaN as PyTorch's,
            norm = _norm_over(x, p, axes)                     # no warnings)
    denom = np.maximum(norm.astype(x.dtype, copy=False), x.dtype.type(eps))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.divide(x, denom, out=np.empty_like(x) if out is None else out)


def _norm_axes(dim, ndim):
    """normalize's dim as a tuple of axes: None or () for all of them."""
    if dim is None or (isinstance(dim, (tuple, list)) and not dim):
        return tuple(range(ndim))
    axes = tuple(_axis(d, ndim) for d in (dim if isinstance(dim, (tuple, list)) else (dim,)))
    if len(set(axes)) != len(axes):
        raise RuntimeValueError(f"dim {dim} appears multiple times in the list of dims")
    return axes


def _norm_over(x, p, axes):
    """||x||_p over the axes (one vector of their entries), kept as size-1 axes; p 'nuc':
    the nuclear norm of the matrices over two axes."""
    if p == "nuc":
        return np.linalg.norm(x, "nuc", axis=axes, keepdims=True)
    rest = [a for a in range(x.ndim) if a not in axes]
    flat = np.transpose(x, rest + list(axes)).reshape(
        [x.shape[a] for a in rest] + [math.prod(x.shape[a] for a in axes)])
    norm = np.linalg.norm(flat, ord=2.0 if p == "fro" else p, axis=-1)
    return np.expand_dims(norm, axes)


def _broadcast_shape(where, a, b):
    try:
        return np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise RuntimeValueError(f"{where}: the shapes {a.shape} and {b.shape} do not "
                                f"broadcast") from None


def cosine_similarity(x1, x2, dim=1, eps=1e-08):
    """sum(x1 x2) / (max(||x1||, eps) max(||x2||, eps)) along dim.

    x1, x2: shapes that broadcast (0-d ones too). Output: the broadcast shape without dim.
    The forward of nn.CosineSimilarity.
    """
    where = "cosine_similarity"
    a = _float(where, "x1", x1)
    b = _float(where, "x2", x2, dtype=a.dtype)
    shape = _broadcast_shape(where, a, b)
    _axis(dim, len(shape))
    with _runtime_errors():   # (a negative or NaN eps)
        layer = CosineSimilarity(dim, eps)
    return layer.forward(a, b)


def pairwise_distance(x1, x2, p=2.0, eps=1e-06, keepdim=False):
    """||x1 - x2 + eps||_p along the last dimension (keepdim keeps it as size 1).

    x1, x2: (N, D) or (D,), or shapes that broadcast (two 0-d inputs: a 0-d distance,
    keepdim or not, as PyTorch's). Output: the broadcast shape without
    (or, keepdim, with size 1 in) the last dimension. The forward of nn.PairwiseDistance
    for p > 0; p = 0, negative or infinite p by np.linalg.norm's vector orders.
    """
    where = "pairwise_distance"
    keepdim = check_flag(where, "keepdim", keepdim)
    a = _float(where, "x1", x1)
    b = _float(where, "x2", x2, dtype=a.dtype)
    shape = _broadcast_shape(where, a, b)
    if shape:
        _infinite_norm_axis(p, shape, len(shape) - 1)
    if isinstance(p, numbers.Real) and 0 < p < math.inf:
        return PairwiseDistance(p, eps, keepdim).forward(a, b)
    diff = (a - b + a.dtype.type(eps)).reshape(shape or (1,))  # (0-d inputs: one value)
    dist = np.linalg.norm(diff, ord=p, axis=-1, keepdims=keepdim and bool(shape))
    return np.asarray(dist, a.dtype)


def _infinite_norm_axis(p, shape, axis):
    """PyTorch's RuntimeError for an infinite- or negative-order norm over an empty axis
    (no identity for its max, min or sum of inverse powers)."""
    if isinstance(p, numbers.Real) and (math.isinf(p) or p < 0) and shape[axis] == 0:
        raise RuntimeValueError(f"linalg.vector_norm cannot compute the {p} norm on the "
                                f"dimension {axis} because this dimension is empty and the "
                                f"operation does not have an identity")


# --------------------------------------------------------------------------- losses
_REDUCTIONS = ("none", "mean", "sum")


def _reduction(size_average, reduce, reduction, allowed=_REDUCTIONS, legacy=True):
    """PyTorch's reduction, the deprecated size_average/reduce turned into one with its
    warning, and (legacy: the losses PyTorch reduces through _Reduction.get_enum) the
    deprecated 'elementwise_mean' taken as 'mean' with its warning."""
    if size_average is not None or reduce is not None:
        reduction = legacy_reduction(size_average, reduce)
    reduction = deprecated_mean(reduction, legacy)
    if reduction not in allowed:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction


def _scalar(value, dtype):
    """A reduced loss: a 0-d array of dtype (PyTorch's 0-d tensor)."""
    return np.asarray(value, dtype=dtype)


def _reduced(losses, reduction, denominator=None):
    """Per-element losses reduced: 'none' as they are, 'sum', 'mean' (over denominator, by
    default their count; NaN when it is 0). 'none' gives an array even for 0-d inputs
    (NumPy's arithmetic on them gives scalars)."""
    if reduction == "none":
        return np.asarray(losses)
    total = np.sum(losses, dtype=np.float64)
    if reduction == "sum":
        return _scalar(total, losses.dtype)
    count = losses.size if denominator is None else denominator
    with np.errstate(invalid="ignore", divide="ignore"):
        return _scalar(total / np.float64(count), losses.dtype)


def _device_loss(where, loss, input, target):
    """The forward of loss (an nn loss class) on a CUDA device input: its kernels run on
    the GPU, as for a model's loss there, and its value comes back to the host, as the
    loss classes give it: a reduced loss a 0-d NumPy array, 'none' a NumPy array."""
    _float(where, "input", input, device_ok=True)
    with _runtime_errors():
        value = loss.forward(input, target)
    return _scalar(value, input.dtype) if loss.reduction != "none" else np.asarray(value)


def _device_pair(where, input, target, kinds="iub"):
    """(input, target) of an elementwise loss on a device input: a target of another shape
    broadcast with input as _pair does (PyTorch's warning; the broadcast copies made on
    the host: the loss classes take one shape)."""
    x = _float(where, "input", input, device_ok=True)
    if tuple(getattr(target, "shape", ())) == tuple(x.shape):
        return x, target
    t = _float(where, "target", cast_integer_target(_device.to_host(target), x.dtype, kinds),
               dtype=x.dtype)
    warn_target_size(t.shape, tuple(x.shape), 4)
    host = _device.to_host(x)
    shape = _broadcast_shape(where, host, t)
    return (_device.Cuda.put(np.broadcast_to(host, shape)),
            _device.Cuda.put(np.broadcast_to(t, shape)))


def _device_loss_option(where, name, value):
    """An option the loss classes lack given with a device input: an error naming it."""
    if value is not None:
        raise NotImplementedValueError(
            f"{where}: {name} has no CUDA kernel with a CUDA device input; move input and "
            f"target to the CPU first (fastnn.device.to_host(input), "
            f"fastnn.device.to_host(target)) or leave {name} out")


def _op_reduced(op, x, t, reduction, *args, count=None):
    """A loss op's mean as 'mean', or times its count (by default every element) as
    'sum'."""
    count = x.size if count is None else count
    if count == 0 or x.size == 0:
        return _scalar(np.nan if reduction == "mean" else 0.0, x.dtype)
    loss, _ = op(x, t, *args)
    return _scalar(loss * (count if reduction == "sum" else 1), x.dtype)


def _pair(where, input, target, kinds="iub"):
    """(input, target) of one float dtype (an integer or bool target cast to it, as
    PyTorch's; kinds: the NumPy dtype kinds cast), broadcast to one shape with PyTorch's
    warning when their shapes differ, C-contiguous."""
    x = _float(where, "input", input)
    t = _float(where, "target", cast_integer_target(target, x.dtype, kinds), dtype=x.dtype)
    if t.shape != x.shape:
        warn_target_size(t.shape, x.shape, 3)
        shape = _broadcast_shape(where, x, t)
        x, t = np.broadcast_to(x, shape), np.broadcast_to(t, shape)
    return as_contiguous(x), as_contiguous(t)


def _element_weight(where, weight, input):
    """mse/l1/huber's weight: an array of input's shape and dtype."""
    w = _float(where, "weight", weight, dtype=_float(where, "input", input).dtype)
    if w.shape != input.shape:
        raise ValueError("Weights and input must have the same size.")
    return w


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """(input - target)^2 per element, reduced ('mean' over every element, 'sum', 'none':
    the broadcast shape). input, target: shapes that broadcast (a warning when they differ);
    weight: input's shape, multiplies each term ('mean' then divides by sum(weight)).
    ops.mse_loss for 'mean' and 'sum'."""
    reduction = _reduction(size_average, reduce, reduction)
    if _on_gpu(input):
        _device_loss_option("mse_loss", "weight", weight)
        return _device_loss("mse_loss", MSELoss(reduction=reduction),
                            *_device_pair("mse_loss", input, target))
    w = None if weight is None else _element_weight("mse_loss", weight, input)
    x, t = _pair("mse_loss", input, target)
    if w is not None:
        losses = _reference.mse_losses(x, t) * w
        return _reduced(losses, reduction, None if reduction != "mean" else w.sum(
            dtype=np.float64))
    if reduction == "none":
        return _reduced(_reference.mse_losses(x, t), reduction)
    return _op_reduced(ops.mse_loss, x, t, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """|input - target| per element, reduced as mse_loss. input, target: shapes that
    broadcast; weight: input's shape or None, as mse_loss's. ops.smooth_l1_loss at beta = 0
    for 'mean' and 'sum'."""
    reduction = _reduction(size_average, reduce, reduction)
    if _on_gpu(input):
        _device_loss_option("l1_loss", "weight", weight)
        return _device_loss("l1_loss", L1Loss(reduction=reduction),
                            *_device_pair("l1_loss", input, target, "iu"))
    w = None if weight is None else _element_weight("l1_loss", weight, input)
    # an integer target is cast; a bool one is refused, as PyTorch's input - target does
    x, t = _pair("l1_loss", input, target, "iu")
    if w is not None:
        losses = _reference.smooth_l1_losses(x, t, 0.0) * w
        return _reduced(losses, reduction, None if reduction != "mean" else w.sum(
            dtype=np.float64))
    if reduction == "none":
        return _reduced(_reference.smooth_l1_losses(x, t, 0.0), reduction)
    return _op_reduced(ops.smooth_l1_loss, x, t, reduction, 0.0)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean",
                   beta=1.0):
    """0.5 d^2 / beta where |d| < beta, else |d| - beta / 2 (d = input - target), reduced
    as mse_loss (input, target: shapes that broadcast); beta >= 0 (0: the L1 loss; inf: 0
    for every finite d, as PyTorch's). ops.smooth_l1_loss for 'mean' and 'sum' with a
    finite beta."""
    reduction = _reduction(size_average, reduce, reduction)
    if not beta >= 0:   # (NaN too)
        raise RuntimeValueError("smooth_l1_loss does not support negative values for beta.")
    if _on_gpu(input):
        return _device_loss("smooth_l1_loss", SmoothL1Loss(reduction=reduction, beta=beta),
                            *_device_pair("smooth_l1_loss", input, target))
    x, t = _pair("smooth_l1_loss", input, target)
    if reduction == "none" or math.isinf(beta):
        return _reduced(_reference.smooth_l1_losses(x, t, float(beta)), reduction)
    return _op_reduced(ops.smooth_l1_loss, x, t, reduction, float(beta))


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """0.5 d^2 where |d| <= delta, else delta (|d| - delta / 2) (d = input - target):
    delta * smooth_l1_loss(beta=delta). Reduced as mse_loss, except that a weighted 'mean'
    is the plain mean of the weighted terms (PyTorch's). input, target: shapes that
    broadcast; weight: input's shape or None. delta > 0 (inf: 0.5 d^2 for every finite d,
    as PyTorch's)."""
    reduction = _reduction(None, None, reduction)
    if not delta > 0:   # (NaN too)
        raise RuntimeValueError("huber_loss does not support non-positive values for delta.")
    if _on_gpu(input):
        _device_loss_option("huber_loss", "weight", weight)
        return _device_loss("huber_loss", HuberLoss(reduction=reduction, delta=delta),
                            *_device_pair("huber_loss", input, target))
    w = None if weight is None else _element_weight("huber_loss", weight, input)
    x, t = _pair("huber_loss", input, target)
    if math.isinf(delta):   # (delta * smooth_l1 would be inf * 0)
        d = np.abs(x - t)
        with np.errstate(invalid="ignore"):
            losses = np.where(d < delta, x.dtype.type(0.5) * d * d, x.dtype.type(delta) * (
                d - x.dtype.type(0.5 * delta))).astype(x.dtype, copy=False)
        return _reduced(losses if w is None else losses * w, reduction)
    if w is not None or reduction == "none":
        losses = _reference.smooth_l1_losses(x, t, float(delta)) * x.dtype.type(delta)
        return _reduced(losses if w is None else losses * w, reduction)
    loss = _op_reduced(ops.smooth_l1_loss, x, t, reduction, float(delta))
    return _scalar(loss * x.dtype.type(delta), x.dtype)


def _probabilities(name, values):
    """PyTorch's error for BCE's input or target (a NumPy array) outside [0, 1], on every
    path (the weighted and 'none' ones do not reach ops.bce_loss's check). NaN passes, as
    in ops.bce_loss and BCELoss (a diverged network reports a NaN loss), but does not hide
    a value out of range beside it."""
    try:
        check_probabilities("binary_cross_entropy", name, values)
    except RuntimeValueError:
        raise RuntimeValueError(f"all elements of {name} should be between 0 and 1") from None


def _checked_bce_loss(x, t):
    """ops.bce_loss of input and target that binary_cross_entropy has checked (dtype,
    shape, C-contiguous, in [0, 1] with PyTorch's messages): the current backend's kernel
    without ops' own range check, two more passes over each array."""
    loss, grad = _current_backend().bce_loss(x, t)
    return ops.loss_value(loss, x.dtype), grad


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """-(t log(p) + (1 - t) log(1 - p)) per element, the logs clamped at -100 (PyTorch's),
    reduced as mse_loss. input: probabilities p in [0, 1]; target t: input's shape; weight:
    broadcast to it, multiplies each term. ops.bce_loss for unweighted 'mean' and 'sum'."""
    where = "binary_cross_entropy"
    reduction = _reduction(size_average, reduce, reduction)
    if _on_gpu(input):
        return _device_loss(where, BCELoss(weight=weight, reduction=reduction), input, target)
    x = _float(where, "input", input)
    t = _float(where, "target", target, dtype=x.dtype)
    if t.shape != x.shape:
        raise ValueError(f"Using a target size ({t.shape}) that is different to the input "
                         f"size ({x.shape}) is deprecated. Please ensure they have the same "
                         f"size.")
    for name, values in (("input", x), ("target", t)):   # (PyTorch checks both)
        _probabilities(name, values)
    x, t = as_contiguous(x), as_contiguous(t)
    if weight is None and reduction != "none":
        return _op_reduced(_checked_bce_loss, x, t, reduction)
    losses = _reference.bce_losses(x, t)
    if weight is not None:
        w = _float(where, "weight", weight, dtype=x.dtype)
        try:
            losses = losses * np.broadcast_to(w, x.shape)
        except ValueError:
            raise RuntimeValueError(
                f"{where}: weight of shape {w.shape} does not broadcast to "
                f"input's shape {x.shape}") from None
    return _reduced(losses, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None,
                                     reduce=None, reduction="mean", pos_weight=None):
    """Binary cross-entropy of sigmoid(input) against target per element, stable for any
    logit, reduced as mse_loss. input: logits; target: input's shape; weight: broadcast to
    it; pos_weight: the positive term's weight per class (broadcast along the last
    dimension). ops.bce_with_logits_loss without weights; with them the forward of
    nn.BCEWithLogitsLoss."""
    where = "binary_cross_entropy_with_logits"
    reduction = _reduction(size_average, reduce, reduction)
    if _on_gpu(input):
        return _device_loss(where, BCEWithLogitsLoss(weight=weight, reduction=reduction,
                                                     pos_weight=pos_weight), input, target)
    x = _float(where, "input", input)
    t = _float(where, "target", target, dtype=x.dtype)
    if t.shape != x.shape:
        raise ValueError(f"Target size ({t.shape}) must be the same as input size "
                         f"({x.shape})")
    x, t = as_contiguous(x), as_contiguous(t)
    if weight is None and pos_weight is None:
        if reduction == "none":
            return _reduced(_reference.bce_with_logits_losses(x, t), reduction)
        return _op_reduced(ops.bce_with_logits_loss, x, t, reduction)
    for name, value in (("weight", weight), ("pos_weight", pos_weight)):
        if value is not None:
            _broadcast_shape(where, _float(where, name, value, dtype=x.dtype), x)
    if x.size == 0:
        return _reduced(np.zeros(x.shape, x.dtype), reduction)
    losses = BCEWithLogitsLoss(weight=weight, reduction="none",
                               pos_weight=pos_weight).forward(x, t)
    return _reduced(np.asarray(losses, x.dtype), reduction)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """KL divergence terms target (log(target) - input) per element (0 where target is 0),
    or with log_target exp(target) (target - input); input: log-probabilities, target of a
    shape that broadcasts with it. reduction: 'mean' (over every element, with PyTorch's
    warning), 'batchmean' (the sum over input.shape[0], the KL divergence proper), 'sum'
    or 'none'. The forward of nn.KLDivLoss."""
    where = "kl_div"
    log_target = check_flag(where, "log_target", log_target)
    reduction = _reduction(size_average, reduce, reduction, _REDUCTIONS + ("batchmean",))
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and "
                      "the support size.'batchmean' divides only by the batch size, and "
                      "aligns with the KL div math definition.'mean' will be changed to "
                      "behave the same as 'batchmean' in the next major release.",
                      stacklevel=2)
    x = _float(where, "input", input)
    t = _float(where, "target", target, dtype=x.dtype)
    batch = x.shape[0] if x.ndim else 1  # (input's own first size: PyTorch's batchmean)
    shape = _broadcast_shape(where, x, t)
    x = as_contiguous(np.broadcast_to(x, shape))
    t = as_contiguous(np.broadcast_to(t, shape))
    if x.size == 0:
        losses = np.zeros(shape, x.dtype)
    else:
        losses = np.asarray(KLDivLoss(reduction="none", log_target=log_target)
                            .forward(x, t), x.dtype)
    if reduction == "batchmean":
        return _reduced(losses, "mean", batch)
    return _reduced(losses, reduction)


def _class_layout(where, x, target, label_as_1d=True):
    """(input as rows (M, C), labels (M,), the per-element losses' shape) for integer
    targets: input (N, C) and target (N,), input (C,) and target () (or, label_as_1d,
    (1,): losses () either way, as PyTorch's forward without label smoothing takes it),
    or input (N, C, d1, ..., dk) and target (N, d1, ..., dk); PyTorch's errors."""
    if x.ndim == 0:
        raise ValueError(f"{where}: expected input of shape (N, C), (C,) or (N, C, d1, ...), "
                         f"got a 0-d array")
    if x.ndim == 1:
        if target.shape == (1,) and label_as_1d:
            rows, _ = _device.rows_along(x, 0)
            return rows, target, ()
        want = ()
    else:
        if target.ndim == 0 or target.shape[0] != x.shape[0]:
            raise ValueError(f"Expected input batch_size ({x.shape[0]}) to match target "
                             f"batch_size ({target.shape[0] if target.ndim else 0}).")
        want = x.shape[:1] + x.shape[2:]
    if target.shape != want:
        raise RuntimeValueError(f"Expected target size {list(want)}, got {list(target.shape)}"
                                f"{labels_shape_hint(target.shape, want)}")
    rows, _ = _device.rows_along(x, 0 if x.ndim == 1 else 1)
    return rows, target.reshape(-1), want


def _class_weight(where, weight, c, dtype):
    if weight is None:
        return None
    w = _float(where, "weight", weight, dtype=dtype)
    if w.shape != (c,):
        raise RuntimeValueError(
            f"weight tensor should be defined either for all {c} classes or no "
            f"classes but got weight tensor of shape: {list(w.shape)}")
    return w


def _nll_rows(log_prob, labels, weight, ignore_index, reduction, loss_shape):
    """PyTorch's nll_loss of log-probabilities (M, C) at labels (M,): -weight[y] *
    log_prob[y] per row (0 where y == ignore_index), 'mean' over the summed weight of the
    rows counted (NaN when none is)."""
    m, c = log_prob.shape
    kept = labels != ignore_index
    bad = labels[kept & ((labels < 0) | (labels >= c))]
    if bad.size:
        raise IndexValueError(f"Target {bad[0]} is out of bounds.")
    if c == 0:   # no class: every label is ignore_index (checked above), nothing picked
        coef = picked = np.zeros(m, log_prob.dtype)
    else:
        safe = np.where(kept, labels, 0)
        w = np.ones(c, log_prob.dtype) if weight is None else weight
        coef = np.where(kept, w[safe], log_prob.dtype.type(0))
        picked = log_prob[np.arange(m), safe]
    losses = np.where(kept, -coef * picked, log_prob.dtype.type(0)).astype(log_prob.dtype)
    if reduction == "none":
        return losses.reshape(loss_shape)
    return _reduced(losses, reduction, coef.sum(dtype=np.float64))


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None,
                         reduction="mean", ignore_index=None, label_smoothing=0.0,
                         options=None):
    """cross_entropy(linear(input, linear_weight, linear_bias), target), PyTorch 2.13's,
    computed by nn.LinearCrossEntropyLoss around the given weights (in row chunks: the
    (N, C) logits are never held whole).

    input: (N, in_features) or one sample (in_features,); linear_weight (C, in_features)
    or (C, d1, ..., dk, in_features) (the K-dimensional loss, batched input only);
    linear_bias: (C,) / (C, d1, ..., dk) or None; target: integer classes (N,), () or
    (N, d1, ..., dk), or class probabilities of the logits' shape (N, C, d1, ..., dk)
    ((C,) unbatched). weight (C,), reduction, label_smoothing as cross_entropy's;
    ignore_index None (-100 for classes; not allowed with probabilities). options:
    PyTorch's chunking options, None only (fastnn always chunks). Output: a 0-d array
    ('mean', 'sum') or target's shape without C ('none'), in input's dtype.
    """
    where = "linear_cross_entropy"
    reduction = _reduction(None, None, reduction)
    x = _float(where, "input", input)
    w = _float(where, "linear_weight", linear_weight, dtype=x.dtype)
    if x.ndim not in (1, 2):
        raise RuntimeValueError(f"expected input with dimensionality 1 or 2, got {x.ndim}")
    if w.ndim < 2:
        raise RuntimeValueError(f"expected linear_weight with dimensionality at least 2, got "
                                f"{w.ndim}")
    if x.shape[-1] != w.shape[-1]:
        raise RuntimeValueError(f"expected equal input and linear_weight last dimensions "
                                f"(in_features), got {x.shape[-1]} and {w.shape[-1]}, "
                                f"respectively")
    b = None if linear_bias is None else _float(where, "linear_bias", linear_bias,
                                                dtype=x.dtype)
    if b is not None and b.shape != w.shape[:-1]:
        raise RuntimeValueError(f"expected linear_bias shape {w.shape[:-1]}, got {b.shape}")
    if isinstance(target, np.ndarray) and target.dtype.kind in "iu" and _is_int(
            -100 if ignore_index is None else ignore_index):   # (cross_entropy's IndexError)
        ignore = -100 if ignore_index is None else ignore_index
        bad = target[(target != ignore) & ((target < 0) | (target >= w.shape[0]))]
        if bad.size:
            raise IndexValueError(f"Target {bad.flat[0]} is out of bounds.")
    with _runtime_errors():
        loss = LinearCrossEntropyLoss.around(
            w, b, where=where, reduction=reduction, weight=weight, ignore_index=ignore_index,
            label_smoothing=label_smoothing, options=options).eval()
        value = loss.forward(x, target)
    return np.asarray(value, x.dtype)


def _ignore_index(where, value):
    """ignore_index as an int: PyTorch's TypeError for any other type (a float was
    truncated, inf overflowed)."""
    if not _is_int(value):
        raise TypeValueError(f"{where}(): argument 'ignore_index' must be int, not "
                             f"{type(value).__name__}")
    return int(value)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log-likelihood: -weight[y] * input[y] for each sample's class y, reduced
    ('mean' divides by the summed weight of the samples counted; 'none': target's shape).

    input: log-probabilities (N, C), one sample (C,), or (N, C, d1, ..., dk); target:
    integer classes (N,), () or (N, d1, ..., dk) in [0, C), those equal to ignore_index
    skipped; weight: (C,) or None.
    """
    where = "nll_loss"
    reduction = _reduction(size_average, reduce, reduction)
    ignore_index = _ignore_index(where, ignore_index)
    if _on_gpu(input):
        return _device_loss(where, NLLLoss(weight=weight, ignore_index=ignore_index,
                                           reduction=reduction), input, target)
    x = _float(where, "input", input)
    labels = _integers(where, "target", target)
    rows, flat, loss_shape = _class_layout(where, x, labels)
    w = _class_weight(where, weight, rows.shape[1], x.dtype)
    return _nll_rows(rows, flat, w, int(ignore_index), reduction, loss_shape)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0):
    """Cross-entropy of softmax(input) along the class dimension (1, or 0 for one sample).

    input: logits (N, C), one sample (C,), or (N, C, d1, ..., dk). target: integer classes
    of shape (N,), () or (N, d1, ..., dk) in [0, C) (those equal to ignore_index skipped),
    or class probabilities of input's shape (rows need not sum to 1; ignore_index must
    then be negative). weight: (C,) class weights or None; label_smoothing: eps in [0, 1],
    the target mixed with the uniform distribution. reduction: 'mean' (classes: over the
    summed weight of the samples counted; probabilities: over the samples), 'sum', or
    'none' (one loss per sample: target's shape for classes, input's without C for
    probabilities). The fused ops.softmax_cross_entropy for the plain 'mean' and 'sum';
    otherwise ops.log_softmax and PyTorch's formulas (nll_loss plus the smoothing term).
    """
    where = "cross_entropy"
    reduction = _reduction(size_average, reduce, reduction)
    ignore_index = _ignore_index(where, ignore_index)
    x = _float(where, "input", input, device_ok=True)
    if not isinstance(label_smoothing, numbers.Real) or not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeValueError(f"label_smoothing must be between 0.0 and 1.0. Got: "
                                f"{label_smoothing}")
    eps = float(label_smoothing)
    if _on_gpu(x):
        return _device_loss(where, CrossEntropyLoss(
            weight=weight, ignore_index=ignore_index, reduction=reduction,
            label_smoothing=eps), x, target)
    _one_device(where, False, target=target)   # (as the loss classes: PyTorch's error)
    if not isinstance(target, np.ndarray):
        raise TypeError(f"{where}: expected target to be a numpy.ndarray, got "
                        f"{type(target).__name__}{tensor_hint(target)}")
    if x.ndim == 0:
        raise ValueError(f"{where}: expected input of shape (N, C), (C,) or (N, C, d1, ...), "
                         f"got a 0-d array")
    axis = 0 if x.ndim == 1 else 1
    c = x.shape[axis]
    w = _class_weight(where, weight, c, x.dtype)
    if target.dtype.kind == "f" and target.shape == x.shape:
        t = _float(where, "target", target, dtype=x.dtype)
        if ignore_index >= 0:
            raise RuntimeValueError("ignore_index is not supported for floating point target")
        rows, _ = _device.rows_along(x, axis)
        probs, _ = _device.rows_along(t, axis)
        loss_shape = x.shape[:axis] + x.shape[axis + 1:]
        if w is None and eps == 0 and reduction != "none":
            return _op_reduced(ops.softmax_cross_entropy, rows, probs, reduction,
                               count=rows.shape[0])
        if eps:
            probs = probs * x.dtype.type(1 - eps) + x.dtype.type(eps / c)
        if w is not None:
            probs = probs * w
        losses = -(ops.log_softmax(rows) * probs).sum(axis=1)
        return _reduced(losses.astype(x.dtype, copy=False), reduction).reshape(
            loss_shape if reduction == "none" else ())
    if target.dtype.kind == "f":
        raise DtypeError(f"{where}: expected target to be integer classes of shape "
                         f"{x.shape[:axis] + x.shape[axis + 1:]} or probabilities of input's "
                         f"shape {x.shape}, got {target.dtype} of shape {target.shape}")
    if target.dtype.kind in "iu" and target.shape == x.shape:   # one-hot rows of integers
        raise DtypeError(f"Expected floating point type for target with class probabilities, "
                         f"got {target.dtype} (y.astype(np.float32) is the probabilities, "
                         f"y.argmax({axis}) the class labels)")
    rows, flat, loss_shape = _class_layout(where, x, _integers(where, "target", target),
                                           label_as_1d=not eps)
    ignored = np.any(flat == ignore_index)
    if w is None and eps == 0 and reduction != "none" and not ignored and rows.shape[0]:
        bad = flat[(flat < 0) | (flat >= c)]
        if bad.size:
            raise IndexValueError(f"Target {bad[0]} is out of bounds.")
        return _op_reduced(ops.softmax_cross_entropy, rows, flat, reduction,
                           count=rows.shape[0])
    log_prob = ops.log_softmax(rows)
    nll = _nll_rows(log_prob, flat, w, int(ignore_index), reduction, loss_shape)
    if not eps:
        return nll
    # PyTorch's smoothing term: -sum_c weight[c] log_prob[c] per sample, / C, mixed in
    kept = flat != ignore_index
    smooth = -(log_prob if w is None else log_prob * w).sum(axis=1)
    smooth = np.where(kept, smooth, x.dtype.type(0)).astype(x.dtype)
    if reduction == "none":
        smooth = smooth.reshape(loss_shape)
    elif reduction == "sum":
        smooth = smooth.sum(dtype=np.float64)
    else:
        count = (kept.sum() if w is None
                 else w[np.where(kept, flat, 0)][kept].sum(dtype=np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            smooth = smooth.sum(dtype=np.float64) / np.float64(count)
    # (inf - inf over a zero weight, and no class at all: PyTorch's NaN)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((1 - eps) * np.asarray(nll, np.float64)
                          + smooth * (np.float64(eps) / c), x.dtype)


# ---------------------------------------------------- losses of nn's loss classes
# Each is the forward of its nn loss class (fastnn.nn.loss, pair_losses, ctc), the
# value returned as the losses above return theirs: a 0-d array ('mean', 'sum') or the
# per-sample losses ('none'), in the input's dtype.
def _class_loss(loss, dtype, *arrays):
    """loss.forward(*arrays) as a 0-d array or the 'none' losses, in dtype."""
    with _runtime_errors():
        value = loss.forward(*arrays)
    return np.asarray(value, dtype)


def _empty(shape, dtype, reduction, fill=0.0):
    """The loss of empty inputs (which the loss classes refuse) as PyTorch's: 'mean' NaN,
    'sum' 0, 'none' the losses' (empty) shape filled with fill."""
    return _reduced(np.full(shape, fill, dtype), reduction)


def _broadcast(where, input, target, to_input=False):
    """(input, target) of one float dtype broadcast to one shape (silently, as PyTorch's
    poisson, soft-margin and hinge losses broadcast; to_input: input's shape, target
    broadcast to it), C-contiguous; an integer or bool target is cast to input's dtype."""
    x = _float(where, "input", input)
    t = _float(where, "target", cast_integer_target(target, x.dtype), dtype=x.dtype)
    shape = _broadcast_shape(where, x, t)
    if to_input and shape != x.shape:
        raise RuntimeValueError(f"output with shape {list(x.shape)} doesn't match the broadcast "
                                f"shape {list(shape)}")
    return (as_contiguous(np.broadcast_to(x, shape)),
            as_contiguous(np.broadcast_to(t, shape)))


def _floats(where, names, arrays, integer_target=False, kinds="iub"):
    """arrays checked: float arrays of the first one's dtype; integer_target: the last
    (a target or labels) may be an integer array (bool too, unless kinds leaves "b"
    out), cast to that dtype."""
    first = _float(where, names[0], arrays[0])
    rest = list(arrays[1:])
    if integer_target:
        rest[-1] = cast_integer_target(rest[-1], first.dtype, kinds)
    return [first] + [_float(where, name, a, dtype=first.dtype)
                      for name, a in zip(names[1:], rest)]


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-08,
                     reduce=None, reduction="mean"):
    """Poisson negative log-likelihood per element: exp(input) - target * input (log_input:
    input is the log-rate) or input - target * log(input + eps); full adds Stirling's
    target log(target) - target + log(2 pi target) / 2 where target > 1. input, target:
    shapes that broadcast; reduced as mse_loss. The forward of nn.PoissonNLLLoss (whose
    eps must be > 0 without log_input)."""
    where = "poisson_nll_loss"
    reduction = _reduction(size_average, reduce, reduction, legacy=False)
    # (eps plays no part with log_input, where PyTorch takes any; nn.PoissonNLLLoss's > 0)
    loss = PoissonNLLLoss(log_input, full, eps=1e-08 if log_input is True else eps,
                          reduction=reduction)
    x, t = _broadcast(where, input, target)
    if x.size == 0:
        return _empty(x.shape, x.dtype, reduction)
    return _class_loss(loss, x.dtype, x, t)


def gaussian_nll_loss(input, target, var, full=False, eps=1e-06, reduction="mean"):
    """Gaussian negative log-likelihood per element: 0.5 (log v + (input - target)^2 / v),
    v = max(var, eps) (+ 0.5 log(2 pi) when full), reduced over every element ('none':
    the broadcast shape).

    target: a shape that broadcasts with input's (an integer one is cast to input's dtype);
    var: input's shape, input.shape[:-1], input's shape with one axis of 1, or a Python
    float for every element; no negative entry (ValueError, as a var of any other shape).
    The forward of nn.GaussianNLLLoss (whose eps must be > 0).
    """
    where = "gaussian_nll_loss"
    x = _float(where, "input", input)
    # an integer target is cast to input's dtype, as PyTorch's (a bool one is refused)
    t = _float(where, "target", cast_integer_target(target, x.dtype, "iu"), dtype=x.dtype)
    if isinstance(var, float):
        if var < 0:
            raise ValueError("var has negative entry/entries")
    else:
        v = _float(where, "var", var, dtype=x.dtype)
        if np.any(v < 0):
            raise ValueError("var has negative entry/entries")
        _var_shape(where, x.shape, v.shape)
    reduction = _reduction(None, None, reduction, legacy=False)
    loss = GaussianNLLLoss(bool(full), eps, reduction)
    _broadcast_shape(where, x, t)
    with np.errstate(invalid="ignore", divide="ignore"):  # (an empty 'mean': NaN)
        losses = _class_loss(loss, x.dtype, x, t, var)
    # (nn.GaussianNLLLoss gives 0-d inputs' 'none' loss the shape (1,))
    return losses.reshape(()) if x.ndim == t.ndim == 0 else losses


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """log(1 + exp(-target * input)) per element (the two-class logistic loss, target
    1 or -1); target: broadcast to input's shape; reduced as mse_loss. The forward of
    nn.SoftMarginLoss."""
    reduction = _reduction(size_average, reduce, reduction)
    x, t = _broadcast("soft_margin_loss", input, target, to_input=True)
    if x.size == 0:
        return _empty(x.shape, x.dtype, reduction)
    return _class_loss(SoftMarginLoss(reduction=reduction), x.dtype, x, t)


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None,
                         reduction="mean"):
    """input where target is 1, max(0, margin - input) where it is -1 (both terms for any
    other target, as PyTorch's) per element; input, target: shapes that broadcast; reduced
    as mse_loss. The forward of nn.HingeEmbeddingLoss."""
    reduction = _reduction(size_average, reduce, reduction)
    loss = HingeEmbeddingLoss(margin, reduction=reduction)
    x, t = _broadcast("hinge_embedding_loss", input, target)
    if x.size == 0:
        return _empty(x.shape, x.dtype, reduction)
    return _class_loss(loss, x.dtype, x, t)


def margin_ranking_loss(input1, input2, target, margin=0, size_average=None, reduce=None,
                        reduction="mean"):
    """max(0, -target (input1 - input2) + margin) per element: input1, input2, target (1
    where input1 should rank higher, -1 where input2 should) of one rank, broadcasting;
    reduced as mse_loss. The forward of nn.MarginRankingLoss (which refuses targets other
    than 1 and -1)."""
    reduction = _reduction(size_average, reduce, reduction)
    arrays = _floats("margin_ranking_loss", ("input1", "input2", "target"),
                     (input1, input2, target), integer_target=True)
    loss = MarginRankingLoss(margin, reduction=reduction)
    return _class_loss(loss, arrays[0].dtype, *arrays)


def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Multi-label hinge loss: per sample, over each listed label j and each class i not
    listed, sum max(0, 1 - (input[j] - input[i])) / C; reduced over the samples ('none':
    (N,), or () for one sample).

    input: (N, C) scores, (C,) or a 0-d score; target: integer class indices of input's
    shape, each row's labels first and ended by -1 (a row without -1 uses all C), every
    entry in [-1, C). The forward of nn.MultiLabelMarginLoss.
    """
    where = "multilabel_margin_loss"
    reduction = _reduction(size_average, reduce, reduction)
    x = _float(where, "input", input)
    y = _integers(where, "target", target)
    if x.ndim == 2 and x.shape[0] == 0 < x.shape[1] and y.shape == x.shape:
        return _empty((0,), x.dtype, reduction)  # (PyTorch's own: an uninitialised value)
    return _class_loss(MultiLabelMarginLoss(reduction=reduction), x.dtype, x, y)


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction="mean"):
    """Multi-label one-vs-all logistic loss: per sample -mean_c weight[c] (t log
    sigmoid(x) + (1 - t) log sigmoid(-x)) over the classes (input's last dimension), then
    the reduction over the samples ('none': input's shape without C).

    input: (N, C) logits, (C,) or (N, ..., C); target: 1 for each label present, 0
    otherwise, of a shape that broadcasts with input's; weight: None, or any shape that
    broadcasts with input's ((C,), (N, C), (1, C), ...), multiplied into each label's term
    (a target or weight that enlarges input's shape gives PyTorch's result: the terms of
    the broadcast shape summed over its axis input.ndim - 1, over C). The forward of
    nn.MultiLabelSoftMarginLoss.
    """
    where = "multilabel_soft_margin_loss"
    reduction = _reduction(size_average, reduce, reduction, legacy=False)
    # (an integer target cast; a bool one refused, as PyTorch's 1 - target does)
    x, t = _floats(where, ("input", "target"), (input, target), integer_target=True,
                   kinds="iu")
    w = None if weight is None else _float(where, "weight", weight, dtype=x.dtype)
    if x.ndim == 0:
        raise IndexValueError("Dimension specified as -1 but tensor has no dimensions")
    shape = _broadcast_shape(where, x, t)
    if w is not None:
        # PyTorch multiplies the weight into the loss terms: any shape that broadcasts with
        # input's, one that enlarges it giving those terms (and the losses) its shape
        try:
            shape = np.broadcast_shapes(shape, w.shape)
        except ValueError:
            raise RuntimeValueError(f"{where}: weight of shape {w.shape} does not broadcast with "
                                    f"input's shape {x.shape}") from None
    if shape != x.shape:   # (a target or weight that enlarges input's shape) PyTorch's
        # formula as it is: the terms times the weight, summed over axis input.ndim - 1 of
        # their shape, over input.shape[-1]
        with np.errstate(invalid="ignore", divide="ignore"):
            terms = MultiLabelSoftMarginLoss.label_terms(x, t) * (1 if w is None else w)
            losses = terms.sum(axis=x.ndim - 1) / x.dtype.type(x.shape[-1])
        return _reduced(np.asarray(losses, x.dtype), reduction)
    t = np.broadcast_to(t, x.shape)
    x, t = as_contiguous(x), as_contiguous(t)
    if x.size == 0:  # (no class: each sample's mean NaN)
        return _empty(x.shape[:-1], x.dtype, reduction, np.nan if x.shape[-1] == 0 else 0.0)
    return _class_loss(MultiLabelSoftMarginLoss(w, reduction=reduction), x.dtype, x, t)


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None,
                      reduce=None, reduction="mean"):
    """Multi-class hinge loss: per sample sum over i != y of weight[y] max(0, margin -
    input[y] + input[i])^p / C, y the sample's class; reduced over the samples ('none':
    target's shape).

    input: (N, C) scores, (C,) or a 0-d score; target: integer classes (N,) in [0, C)
    (or () for one sample); p: 1 or 2; weight: (C,) or None. The forward of
    nn.MultiMarginLoss.
    """
    where = "multi_margin_loss"
    reduction = _reduction(size_average, reduce, reduction)
    if p != 1 and p != 2:
        raise ValueError("only p == 1 and p == 2 supported")
    x = _float(where, "input", input)
    w = None if weight is None else _float(where, "weight", weight, dtype=x.dtype)
    if w is not None and w.ndim != 1:
        raise ValueError("weight must be one-dimensional")
    y = _integers(where, "target", target)
    if x.ndim > 2 or (x.ndim and x.shape[-1] == 0):
        raise RuntimeValueError(f"Expected non-empty vector or matrix with optional 0-dim batch "
                                f"size, but got: {list(x.shape)}")
    n = x.shape[0] if x.ndim == 2 else 1
    if y.size != n or y.ndim > 1:
        raise RuntimeValueError(f"{where}: target tensor should be 1-D with size equal to the "
                                f"number of input samples (batch size). Expected target size "
                                f"[{n}], but got {list(y.shape)}.")
    loss = MultiMarginLoss(int(p), margin, w, reduction=reduction)
    if n == 0:
        return _empty((0,), x.dtype, reduction)  # (PyTorch's own: an uninitialised value)
    losses = _class_loss(loss, x.dtype, x.reshape(x.shape or (1,)), y.reshape(n))
    return losses.reshape(y.shape) if reduction == "none" else losses


def cosine_embedding_loss(input1, input2, target, margin=0, size_average=None, reduce=None,
                          reduction="mean"):
    """1 - cos(input1, input2) where target is 1, max(0, cos(input1, input2) - margin)
    where it is -1, per sample: input1, input2 (N, D) (or (D,); broadcasting), target (N,)
    (or ()); reduced over the samples. The forward of nn.CosineEmbeddingLoss (which takes
    margin in [-1, 1], targets 1 and -1, and one feature size D)."""
    reduction = _reduction(size_average, reduce, reduction)
    arrays = _floats("cosine_embedding_loss", ("input1", "input2", "target"),
                     (input1, input2, target), integer_target=True)
    loss = CosineEmbeddingLoss(margin, reduction=reduction)
    return _class_loss(loss, arrays[0].dtype, *arrays)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-06, swap=False,
                        size_average=None, reduce=None, reduction="mean"):
    """max(d(a, p) - d(a, n) + margin, 0) per sample, d(u, v) = pairwise_distance(u, v, p,
    eps) along the last dimension; swap: d(p, n) replaces d(a, n) where smaller.

    anchor, positive, negative: (N, D), (D,) or (N, ..., D), of one rank, broadcasting
    (0-d: one-element vectors); margin > 0. The forward of nn.TripletMarginLoss for
    1 <= p < inf, else of nn.TripletMarginWithDistanceLoss with an nn.PairwiseDistance(p,
    eps) (eps >= 0 either way).
    """
    where = "triplet_margin_loss"
    reduction = _reduction(size_average, reduce, reduction)
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    if not isinstance(swap, bool):
        raise TypeError(f"{where}: expected swap to be a bool, got {swap!r}")
    arrays = _floats(where, ("anchor", "positive", "negative"), (anchor, positive, negative))
    scalar = all(a.ndim == 0 for a in arrays)
    if isinstance(p, numbers.Real) and 1 <= p < math.inf:
        loss = TripletMarginLoss(margin, p, eps, swap, reduction=reduction)
    else:
        loss = TripletMarginWithDistanceLoss(distance_function=PairwiseDistance(p, eps),
                                             margin=margin, swap=swap, reduction=reduction)
    losses = _class_loss(loss, arrays[0].dtype, *(a.reshape(1) if scalar else a
                                                  for a in arrays))
    return losses.reshape(()) if scalar else losses


class _ForwardOnly:
    """A plain distance callable as TripletMarginWithDistanceLoss takes one (a module with
    a backward): the functional loss runs forward only, so its backward is never called."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, x1, x2):
        return self.fn(x1, x2)

    def backward(self, grad):
        raise NotImplementedError("a distance function of F.triplet_margin_with_distance_loss "
                                  "has no backward: use nn.TripletMarginWithDistanceLoss")

    def __repr__(self):
        return repr(self.fn)


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None,
                                      margin=1.0, swap=False, reduction="mean"):
    """max(d(a, p) - d(a, n) + margin, 0) for a distance d of your choice; swap: d(p, n)
    replaces d(a, n) where smaller.

    distance_function: None for pairwise_distance (p = 2, eps = 1e-6), or any callable of
    two arrays returning their distances (a NumPy function, an nn module); anchor,
    positive, negative: arrays of one rank whose shapes broadcast, each pair passed to it
    as given; margin > 0. 'none': the distances' shape. The forward of
    nn.TripletMarginWithDistanceLoss (errors raised by distance_function pass unchanged).
    """
    where = "triplet_margin_with_distance_loss"
    reduction = _reduction(None, None, reduction, legacy=False)
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    arrays = _floats(where, ("anchor", "positive", "negative"), (anchor, positive, negative))
    a, p, n = (x.ndim for x in arrays)
    if not a == p == n:
        raise RuntimeValueError(
            f"The anchor, positive, and negative tensors are expected to have "
            f"the same number of dimensions, but got: anchor {a}D, positive "
            f"{p}D, and negative {n}D inputs")
    try:
        np.broadcast_shapes(*(x.shape for x in arrays))
    except ValueError:
        raise RuntimeValueError(
            f"{where}: anchor, positive and negative of shapes "
            f"{', '.join(str(x.shape) for x in arrays)} do not broadcast") from None
    fn = distance_function
    scalar = fn is None and a == 0  # (pairwise_distance of 0-d arrays: one-element vectors)
    if fn is not None and callable(fn) and not callable(getattr(fn, "backward", None)):
        fn = _ForwardOnly(fn)
    loss = TripletMarginWithDistanceLoss(distance_function=fn, margin=margin, swap=bool(swap),
                                         reduction=reduction)
    value = loss.forward(*(x.reshape(1) if scalar else x for x in arrays))
    return np.asarray(value, arrays[0].dtype).reshape(() if scalar else np.shape(value))


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean",
             zero_infinity=False):
    """Connectionist temporal classification loss: -log p(target | log_probs) summed over
    the alignments, per sequence; 'mean' divides each by its target length (at least 1)
    before the mean over the batch, 'none' gives (N,) (or () unbatched).

    log_probs: (T, N, C) log-probabilities (log_softmax along C) or (T, C) unbatched;
    targets: integer classes, padded (N, S) or concatenated (sum(target_lengths),);
    input_lengths, target_lengths: N integers each (arrays or sequences; an int
    unbatched), input lengths <= T; blank: the blank's class; zero_infinity: an impossible
    alignment (loss inf) counts 0. The forward of nn.CTCLoss.
    """
    where = "ctc_loss"
    reduction = _reduction(None, None, reduction)
    lp = _float(where, "log_probs", log_probs)
    if not _is_int(blank):
        raise TypeValueError(f"{where}: expected blank to be an int, got {blank!r}")
    with _runtime_errors():  # (PyTorch: "blank must be in label range")
        loss = CTCLoss(blank, reduction, zero_infinity)
    return _class_loss(loss, lp.dtype, lp, targets, input_lengths, target_lengths)


# ===================================================== more of torch.nn.functional
# In-place twins, the 3-D and adaptive-max pools, unpooling, the remaining norms,
# attention and sampling grids: the forward of the matching layer where fastnn has one,
# else a few lines of NumPy.
__all__ += [
    "relu_", "elu_", "leaky_relu_", "hardtanh_", "celu_", "selu_", "threshold_", "rrelu",
    "rrelu_", "bilinear", "rms_norm", "instance_norm", "local_response_norm",
    "max_pool1d_with_indices", "max_pool2d_with_indices", "max_pool3d",
    "max_pool3d_with_indices", "avg_pool3d", "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "adaptive_avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d",
    "adaptive_max_pool3d", "adaptive_max_pool1d_with_indices",
    "adaptive_max_pool2d_with_indices", "adaptive_max_pool3d_with_indices",
    "max_unpool1d", "max_unpool2d", "max_unpool3d", "fractional_max_pool2d",
    "fractional_max_pool3d", "fractional_max_pool2d_with_indices",
    "fractional_max_pool3d_with_indices", "pdist", "scaled_dot_product_attention",
    "multi_head_attention_forward",
    "gumbel_softmax", "affine_grid", "grid_sample", "upsample", "upsample_nearest",
    "upsample_bilinear", "native_channel_shuffle", "embedding_bag", "conv_tbc",
]


def relu_(input):
    """relu(input, inplace=True): input overwritten and returned."""
    return relu(input, inplace=True)


def elu_(input, alpha=1.0):
    """elu(input, alpha, inplace=True)."""
    return elu(input, alpha, inplace=True)


def leaky_relu_(input, negative_slope=0.01):
    """leaky_relu(input, negative_slope, inplace=True)."""
    return leaky_relu(input, negative_slope, inplace=True)


def hardtanh_(input, min_val=-1.0, max_val=1.0):
    """hardtanh(input, min_val, max_val, inplace=True), without its min_val <= max_val
    check (as PyTorch's: min_val > max_val gives max_val)."""
    return _hardtanh(input, min_val, max_val, inplace=True)


def celu_(input, alpha=1.0):
    """celu(input, alpha, inplace=True)."""
    return celu(input, alpha, inplace=True)


def selu_(input):
    """selu(input, inplace=True)."""
    return selu(input, inplace=True)


_threshold = threshold  # (threshold_'s argument of that name hides the function)


def threshold_(input, threshold, value):
    """threshold(input, threshold, value, inplace=True)."""
    return _threshold(input, threshold, value, inplace=True)


def rrelu(input, lower=1.0 / 8, upper=1.0 / 3, training=False, inplace=False):
    """Randomized leaky ReLU: training, each element x <= 0 times its own slope drawn
    uniformly from [lower, upper] (fastnn's generator); not training, leaky_relu of slope
    (lower + upper) / 2 (a bool bound its number, 0 or 1: lower=upper=True is slope 1,
    where PyTorch's eval slope is 0.5, its bools added as bools). input: any shape."""
    training = check_flag("rrelu", "training", training)
    x = _float("rrelu", "input", input)
    lower, upper = _rrelu_bound("lower", lower), _rrelu_bound("upper", upper)
    if lower > upper:
        raise RuntimeValueError("Lower bound should be less than or equal to the upper bound")
    for name, bound in (("lower", lower), ("upper", upper)):
        if _nonfinite(bound):
            raise RuntimeValueError(f"rrelu: {name} bound must be finite, got {bound}")
    if not training:
        return leaky_relu(x, (lower + upper) / 2, inplace=inplace)
    layer = RReLU(lower, upper)
    return _in_place(x, _layer_forward(layer, x), inplace, "rrelu")


def _rrelu_bound(name, value):
    """rrelu's lower or upper as a Python number: a number or a 0-d real array (PyTorch
    takes a 0-d tensor as its number and refuses any other tensor)."""
    value = plain_number(value)
    if not isinstance(value, numbers.Real):
        raise TypeError(f"rrelu: expected {name} to be a number, got {value!r}")
    return float(value)


def rrelu_(input, lower=1.0 / 8, upper=1.0 / 3, training=False):
    """rrelu(input, lower, upper, training, inplace=True)."""
    return rrelu(input, lower, upper, training, inplace=True)


def bilinear(input1, input2, weight, bias=None):
    """y[..., o] = input1 @ weight[o] @ input2 + bias[o].

    input1: (*, in1); input2: (*, in2), the same leading dimensions; weight
    (out, in1, in2); bias (out,) or None. Output: (*, out)."""
    where = "bilinear"
    a = _float(where, "input1", input1)
    b = _float(where, "input2", input2, dtype=a.dtype)
    w = _float(where, "weight", weight, dtype=a.dtype)
    if a.ndim == 0 or b.ndim == 0 or a.shape[:-1] != b.shape[:-1]:
        raise RuntimeValueError(f"bilinear(): input batch dimensions do not match: got "
                                f"{list(a.shape[:-1])} and {list(b.shape[:-1])}")
    if w.ndim != 3 or w.shape[1:] != (a.shape[-1], b.shape[-1]):
        raise RuntimeValueError(f"bilinear(): expected weight of shape (out, {a.shape[-1]}, "
                                f"{b.shape[-1]}), got {w.shape}")
    # contiguous: einsum sums a strided operand in another order (other bits)
    rows1 = as_contiguous(a).reshape(-1, a.shape[-1])
    rows2 = as_contiguous(b).reshape(-1, b.shape[-1])
    t = (rows1 @ as_contiguous(w).transpose(1, 0, 2).reshape(w.shape[1], -1)).reshape(
        rows1.shape[0], w.shape[0], w.shape[2])
    y = np.einsum("noj,nj->no", t, rows2)
    if bias is not None:
        bv = _float(where, "bias", bias, dtype=a.dtype)
        if bv.shape != (w.shape[0],):
            raise RuntimeValueError(f"bilinear(): expected bias of shape ({w.shape[0]},), got "
                                    f"{bv.shape}")
        y += bv
    return _device.c_contiguous(y.reshape(a.shape[:-1] + (w.shape[0],)), a.dtype)


# -------------------------------------------------------------- more normalisation
def _nonempty_normalized_shape(shape):
    """Refuse an empty normalized_shape, as PyTorch's layer_norm and rms_norm do."""
    if not shape:
        raise RuntimeValueError("Expected normalized_shape to be at least 1-dimensional, "
                                "i.e., containing at least one element, but got "
                                "normalized_shape = []")


def _trailing_shape(where, x, normalized_shape):
    """normalized_shape as a tuple of ints matching x's trailing dimensions."""
    normalized_shape = int_items(normalized_shape)
    shape = tuple(normalized_shape) if isinstance(normalized_shape, (tuple, list)) \
        else (normalized_shape,)
    if not all(_is_int(v) for v in shape):
        raise TypeError(f"{where}: expected normalized_shape to be an int or a tuple of "
                        f"ints, got {normalized_shape!r}")
    _nonempty_normalized_shape(shape)
    shape = tuple(int(v) for v in shape)
    if x.ndim < len(shape) or tuple(x.shape)[x.ndim - len(shape):] != shape:
        raise RuntimeValueError(
            f"Given normalized_shape={list(shape)}, expected input with shape "
            f"[*, {', '.join(map(str, shape))}], but got input of size"
            f"{list(x.shape)}")
    return shape


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """input / sqrt(mean(input^2) + eps) * weight over the trailing normalized_shape
    (eps None: the dtype's machine epsilon). weight: normalized_shape or None.
    Output: input's shape."""
    where = "rms_norm"
    x = _float(where, "input", input)
    shape = _trailing_shape(where, x, normalized_shape)
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    eps = np.finfo(x.dtype).eps if eps is None else eps
    if math.prod(shape) == 0:   # no features: an empty output (NumPy's empty mean warns)
        y = x.copy()
    else:
        with np.errstate(divide="ignore", invalid="ignore"):   # (zeros with eps 0: NaN)
            inv = 1 / np.sqrt(np.mean(x * x, axis=axes, keepdims=True) + x.dtype.type(eps))
            y = x * inv.astype(x.dtype, copy=False)
    if weight is not None:
        w = _float(where, "weight", weight, dtype=x.dtype)
        if w.shape != shape:
            raise RuntimeValueError(
                f"Expected weight to be of same shape as normalized_shape, "
                f"but got weight of shape {list(w.shape)} and "
                f"normalized_shape = {list(shape)}")
        y *= w
    return _device.c_contiguous(y, x.dtype)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-05):
    """Each sample's channel normalised over its positions, then weight[c] * . + bias[c].

    input: (N, C, *); running_mean, running_var: (C,) or None; use_input_stats=True
    (more than one position per instance) normalises with each instance's own statistics
    and, when given, moves the running statistics (in place, strided views too; read-only
    ones are refused) towards the batch's average of the instances' means and unbiased
    variances; False normalises with the running ones (only read). PyTorch's rule:
    batch_norm of the (1, N * C, *) view with the running statistics repeated N times.
    Output: input's shape."""
    where = "instance_norm"
    use_input_stats = check_flag(where, "use_input_stats", use_input_stats)
    x = _float(where, "input", input)
    if use_input_stats and math.prod(x.shape[2:]) == 1:
        raise ValueError(f"Expected more than 1 spatial element when training, got input "
                         f"size {list(x.shape)}")
    if x.ndim < 2:
        raise IndexValueError(
            "Dimension out of range (expected to be in range of [-1, 0], but "
            "got 1)")
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must either both be None or neither "
                         "be None")
    n, c = x.shape[:2]
    stats = [_channel_vector(where, name, v, c, x.dtype)
             for name, v in (("running_mean", running_mean), ("running_var", running_var))]
    for name, s in zip(("running_mean", "running_var"), stats):
        _running_buffer(where, name, s, use_input_stats, "use_input_stats")  # (refusals)
    affine = [_channel_vector(where, name, v, c, x.dtype)
              for name, v in (("weight", weight), ("bias", bias))]
    tiled = [None if s is None else np.tile(s, n) for s in stats]
    y = _batch_norm(x.reshape((1, n * c) + x.shape[2:]), *tiled,
                    *(None if a is None else np.tile(a, n) for a in affine),
                    use_input_stats, momentum, eps)
    if use_input_stats:
        for s, t in zip(stats, tiled):
            if s is not None:
                s[...] = t.reshape(n, c).mean(axis=0)
    return y.reshape(x.shape)


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """input / (k + alpha / size * sum of input^2 over the size channels around each
    one)^beta, across axis 1 of (N, C, *) input (nn.LocalResponseNorm's forward)."""
    x = _float("local_response_norm", "input", input)
    if x.ndim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality input (got {x.ndim} "
                         f"dimensions)")
    if x.size == 0:
        return x
    with _runtime_errors():
        layer = LocalResponseNorm(size, alpha, beta, k)
    return _layer_forward(layer, x)


# ---------------------------------------------------------------- more pooling
def _window_layer(make, x):
    """make() (a pooling, folding or shuffling layer) run on x: its ValueErrors, from the
    arguments or the input, as PyTorch's RuntimeError; a TypeValueError (a float size)
    stays PyTorch's TypeError (_runtime_errors)."""
    with _runtime_errors():
        layer = make()
    return _layer_forward(layer, x)


def _stride(stride):
    """None for PyTorch's 'no stride' (None or an empty sequence): the kernel size."""
    return None if default_stride(stride) else stride


def _pooled(where, dims, input):
    """input checked as (N, C, *dims spatial) or (C, *dims spatial)."""
    x = _float(where, "input", input)
    if x.ndim not in (dims + 1, dims + 2):
        raise RuntimeValueError(f"{where}: non-empty {dims + 1}D or {dims + 2}D (batch mode) "
                                f"tensor expected for input, got shape {x.shape}")
    return x


def max_pool1d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False, return_indices=False):
    """max_pool1d(..., return_indices=True): (output, int64 indices)."""
    return max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False, return_indices=False):
    """max_pool2d(..., return_indices=True): (output, int64 indices)."""
    return max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Maximum over windows of (N, C, D, H, W) or unbatched (C, D, H, W) input (padding
    at most half the kernel, counting as -inf); with return_indices, (output, int64 flat
    indices d * H * W + h * W + w). nn.MaxPool3d's forward."""
    ceil_mode = check_flag("max_pool3d", "ceil_mode", ceil_mode)
    x = _pooled("max_pool3d", 3, input)
    return _window_layer(lambda: MaxPool3d(kernel_size, _stride(stride), padding, dilation,
                                           bool(return_indices), ceil_mode), x)


def max_pool3d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False, return_indices=False):
    """max_pool3d(..., return_indices=True): (output, int64 indices)."""
    return max_pool3d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Mean over windows of (N, C, D, H, W) or unbatched (C, D, H, W) input, zero
    padding; count_include_pad=False divides by the unpadded cells only,
    divisor_override replaces the divisor. nn.AvgPool3d's forward."""
    ceil_mode = check_flag("avg_pool3d", "ceil_mode", ceil_mode)
    count_include_pad = check_flag("avg_pool3d", "count_include_pad", count_include_pad)
    divisor_override = _divisor_override("avg_pool3d", divisor_override)
    x = _pooled("avg_pool3d", 3, input)
    return _window_layer(lambda: AvgPool3d(kernel_size, _stride(stride), padding,
                                           ceil_mode, count_include_pad,
                                           divisor_override), x)


_LP_POOLS = {1: LPPool1d, 2: LPPool2d, 3: LPPool3d}


def _lp_pool(dims, input, norm_type, kernel_size, stride, ceil_mode):
    ceil_mode = check_flag(f"lp_pool{dims}d", "ceil_mode", ceil_mode)
    x = _pooled(f"lp_pool{dims}d", dims, input)
    if isinstance(norm_type, numbers.Real) and norm_type == 0:
        raise ZeroDivisionError("float division by zero")  # PyTorch's 1 / norm_type
    return _window_layer(lambda: _LP_POOLS[dims](norm_type, kernel_size, _stride(stride),
                                                 ceil_mode), x)


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """(sum of input^p over each window)^(1/p) of (N, C, L) or (C, L) input, as
    PyTorch computes it (nn.LPPool1d's forward). norm_type: p."""
    return _lp_pool(1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """lp_pool1d over the windows of (N, C, H, W) or (C, H, W) input."""
    return _lp_pool(2, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """lp_pool1d over the windows of (N, C, D, H, W) or (C, D, H, W) input."""
    return _lp_pool(3, input, norm_type, kernel_size, stride, ceil_mode)


def adaptive_avg_pool3d(input, output_size):
    """Mean over PyTorch's adaptive windows of (N, C, D, H, W) or (C, D, H, W) input:
    (N, C, *output_size); an entry None keeps that input size, an entry 0 gives an empty
    output (PyTorch's)."""
    return _adaptive_avg(3, input, output_size)


_ADAPTIVE_AVG = {1: AdaptiveAvgPool1d, 2: AdaptiveAvgPool2d, 3: AdaptiveAvgPool3d}
_ADAPTIVE_MAX = {1: AdaptiveMaxPool1d, 2: AdaptiveMaxPool2d, 3: AdaptiveMaxPool3d}


def _adaptive_max(dims, input, output_size, return_indices):
    where = f"adaptive_max_pool{dims}d"
    x = _float(where, "input", input)
    _adaptive_size(where, dims, output_size)
    empty = _adaptive_empty(where, _ADAPTIVE_MAX[dims], dims, x, output_size,
                            bool(return_indices), wrap=True)
    if empty is not None:   # (an entry 0: PyTorch's empty output and indices)
        return empty
    return _window_layer(lambda: _ADAPTIVE_MAX[dims](output_size, bool(return_indices)), x)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """Maximum over PyTorch's adaptive windows of (N, C, L) or (C, L) input; with
    return_indices, (output, int64 indices along L)."""
    return _adaptive_max(1, input, output_size, return_indices)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """adaptive_max_pool1d over (N, C, H, W) or (C, H, W) input (flat h * W + w
    indices)."""
    return _adaptive_max(2, input, output_size, return_indices)


def adaptive_max_pool3d(input, output_size, return_indices=False):
    """adaptive_max_pool1d over (N, C, D, H, W) or (C, D, H, W) input."""
    return _adaptive_max(3, input, output_size, return_indices)


def adaptive_max_pool1d_with_indices(input, output_size, return_indices=False):
    """adaptive_max_pool1d(..., return_indices=True)."""
    return _adaptive_max(1, input, output_size, True)


def adaptive_max_pool2d_with_indices(input, output_size, return_indices=False):
    """adaptive_max_pool2d(..., return_indices=True)."""
    return _adaptive_max(2, input, output_size, True)


def adaptive_max_pool3d_with_indices(input, output_size, return_indices=False):
    """adaptive_max_pool3d(..., return_indices=True)."""
    return _adaptive_max(3, input, output_size, True)


_UNPOOLS = {1: MaxUnpool1d, 2: MaxUnpool2d, 3: MaxUnpool3d}


def _max_unpool(dims, input, indices, kernel_size, stride, padding, output_size):
    x = _float(f"max_unpool{dims}d", "input", input)
    with _runtime_errors():
        layer = _UNPOOLS[dims](kernel_size, _stride(stride), padding)
    if output_size is not None:  # PyTorch's ValueError for a wrong output_size
        sizes = tuple(output_size)[2:] if len(output_size) == dims + 2 else tuple(output_size)
        if len(sizes) != dims:
            raise ValueError(f"output_size should be a sequence containing {dims} or "
                             f"{dims + 2} elements, but it has a length of "
                             f"'{len(output_size)}'")
        for d, (n, k, s, p, v) in enumerate(zip(x.shape[x.ndim - dims:], layer.kernel_size,
                                                layer.stride, layer.padding, sizes)):
            default = (n - 1) * s + k - 2 * p
            if not default - s < v < default + s:
                raise ValueError(f'invalid output_size "{output_size}" (dim {d} must be '
                                 f'between {default - s} and {default + s})')
    with _runtime_errors():
        return layer.forward(x, indices, output_size)


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The partial inverse of max_pool1d: each value of (N, C, L_in) (or unbatched
    (C, L_in)) input put at its index of a zero (N, C, L) output, L = (L_in - 1) stride -
    2 padding + kernel_size or output_size. indices: integers of input's shape (max_pool1d's
    return_indices output)."""
    return _max_unpool(1, input, indices, kernel_size, stride, padding, output_size)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """max_unpool1d for (N, C, H_in, W_in) (or (C, H_in, W_in)) input and max_pool2d's
    flat indices h * W + w (input's shape): an (N, C, H, W) output."""
    return _max_unpool(2, input, indices, kernel_size, stride, padding, output_size)


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """max_unpool1d for (N, C, D_in, H_in, W_in) (or unbatched) input and max_pool3d's
    flat indices d * H * W + h * W + w (input's shape): an (N, C, D, H, W) output."""
    return _max_unpool(3, input, indices, kernel_size, stride, padding, output_size)


_FRACTIONAL = {2: FractionalMaxPool2d, 3: FractionalMaxPool3d}


def _fractional(dims, input, kernel_size, output_size, output_ratio, return_indices,
                _random_samples):
    x = _float(f"fractional_max_pool{dims}d", "input", input)
    if output_size is None and output_ratio is None:
        raise ValueError(f"fractional_max_pool{dims}d requires specifying either an "
                         f"output_size or an output_ratio")
    if output_size is not None:  # PyTorch's: output_size wins
        output_ratio = None
    return _window_layer(lambda: _FRACTIONAL[dims](kernel_size, output_size, output_ratio,
                                                   bool(return_indices), _random_samples), x)


def fractional_max_pool2d(input, kernel_size, output_size=None, output_ratio=None,
                          return_indices=False, _random_samples=None):
    """Maximum over kernel_size windows of (N, C, H, W) or (C, H, W) input at
    pseudo-random fractional steps to output_size (or int(size * output_ratio));
    _random_samples (N, C, 2) in [0, 1) fix the steps, else drawn from fastnn's
    generator. nn.FractionalMaxPool2d's forward."""
    return _fractional(2, input, kernel_size, output_size, output_ratio, return_indices,
                       _random_samples)


def fractional_max_pool3d(input, kernel_size, output_size=None, output_ratio=None,
                          return_indices=False, _random_samples=None):
    """fractional_max_pool2d for (N, C, D, H, W) or (C, D, H, W) input (samples
    (N, C, 3))."""
    return _fractional(3, input, kernel_size, output_size, output_ratio, return_indices,
                       _random_samples)


def fractional_max_pool2d_with_indices(input, kernel_size, output_size=None,
                                       output_ratio=None, return_indices=False,
                                       _random_samples=None):
    """fractional_max_pool2d(..., return_indices=True)."""
    return _fractional(2, input, kernel_size, output_size, output_ratio, True,
                       _random_samples)


def fractional_max_pool3d_with_indices(input, kernel_size, output_size=None,
                                       output_ratio=None, return_indices=False,
                                       _random_samples=None):
    """fractional_max_pool3d(..., return_indices=True)."""
    return _fractional(3, input, kernel_size, output_size, output_ratio, True,
                       _random_samples)


# ---------------------------------------------------------------- more distances
def pdist(input, p=2):
    """The p-norm distances between the rows of (N, M) input, pairs i < j in row-major
    order: (N (N - 1) / 2,). p >= 0 (0 counts the differing entries, inf the largest)."""
    where = "pdist"
    x = _float(where, "input", input)
    if x.ndim != 2:
        raise RuntimeValueError(f"pdist only supports 2D tensors, got: {x.ndim}D")
    if not isinstance(p, numbers.Real):
        raise TypeError(f"pdist(): argument 'p' must be a number, not {type(p).__name__}")
    if not p >= 0:   # (NaN too)
        raise RuntimeValueError("pdist only supports non-negative p values")
    i, j = np.triu_indices(x.shape[0], 1)
    diff = x[i] - x[j]
    if diff.shape[1] == 0:
        return np.zeros(len(i), x.dtype)
    with np.errstate(over="ignore", invalid="ignore"):   # (inf and NaN as PyTorch's)
        return np.asarray(np.linalg.norm(diff, ord=p, axis=1), x.dtype)


# -------------------------------------------------------------------- attention
def _attention_bias(where, attn_mask, is_causal, shape, dtype):
    """The additive mask of attention scores of this shape (..., L, S): 0 where a key
    takes part, -inf where not (a boolean mask's False, the causal mask's upper
    triangle), or a float mask as given; None for none."""
    if is_causal:
        if attn_mask is not None:
            raise RuntimeValueError("_scaled_dot_product_attention: Explicit attn_mask should "
                                    "not be set when is_causal=True")
        attn_mask = np.tril(np.ones(shape[-2:], bool))
    if attn_mask is None:
        return None
    if not isinstance(attn_mask, np.ndarray):
        raise TypeError(f"{where}: expected attn_mask to be a numpy.ndarray, got "
                        f"{type(attn_mask).__name__}{tensor_hint(attn_mask)}")
    try:
        fits = np.broadcast_shapes(attn_mask.shape, shape) == tuple(shape)
    except ValueError:
        fits = False
    if not fits:   # PyTorch adds the mask in place: it cannot grow the weights
        raise RuntimeValueError(f"{where}: attn_mask of shape {attn_mask.shape} does not "
                                f"broadcast to the attention weights {shape}")
    if attn_mask.dtype == bool:
        return np.where(attn_mask, dtype.type(0), dtype.type(-np.inf))
    return _float(where, "attn_mask", attn_mask, dtype=dtype)


def _gqa_heads(where, q, k, v):
    """key and value with their heads (axis -3) repeated to query's, PyTorch's
    enable_gqa: unless all three have as many heads, key's and value's must divide
    query's (RuntimeError); an input without a heads axis is an IndexError."""
    if min(q.ndim, k.ndim, v.ndim) < 3:
        raise IndexValueError(f"{where}: enable_gqa needs a heads axis (-3) in query, key and "
                              f"value, got {q.shape}, {k.shape} and {v.shape}")
    heads, k_heads, v_heads = q.shape[-3], k.shape[-3], v.shape[-3]
    if heads == k_heads == v_heads:
        return k, v
    if k_heads == 0 or v_heads == 0 or heads % k_heads or heads % v_heads:
        raise RuntimeValueError(f"{where}: the query heads {heads} are not a multiple of the "
                                f"key and value heads {k_heads}, {v_heads}")
    return (np.repeat(k, heads // k_heads, axis=-3),
            np.repeat(v, heads // v_heads, axis=-3))


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False):
    """softmax(query key^T * scale + mask) value, PyTorch's math.

    query (*, L, E), key (*, S, E), value (*, S, Ev), leading dimensions broadcasting
    (enable_gqa: key and value heads, axis -3, repeated to query's); attn_mask: a boolean
    array (True: take part) or a float array added to the scores, broadcasting to
    (*, L, S); is_causal: the lower-triangular mask (top-left aligned); scale: None for
    1 / sqrt(E); dropout_p: the weights' dropout (always applied when > 0, as PyTorch's).
    A query whose keys are all masked gets 0. Output (*, L, Ev).
    """
    where = "scaled_dot_product_attention"
    is_causal = check_flag(where, "is_causal", is_causal)
    enable_gqa = check_flag(where, "enable_gqa", enable_gqa)
    q = _float(where, "query", query)
    k = _float(where, "key", key, dtype=q.dtype)
    v = _float(where, "value", value, dtype=q.dtype)
    if min(q.ndim, k.ndim, v.ndim) < 2 or q.shape[-1] != k.shape[-1] \
            or k.shape[-2] != v.shape[-2]:
        raise RuntimeValueError(f"{where}: expected query (*, L, E), key (*, S, E) and value "
                                f"(*, S, Ev), got {q.shape}, {k.shape} and {v.shape}")
    if enable_gqa:
        k, v = _gqa_heads(where, q, k, v)
    dt = q.dtype.type
    # (E = 0: every score is an empty sum, 0, whatever the scale)
    factor = dt((1 / math.sqrt(q.shape[-1]) if q.shape[-1] else 1.0) if scale is None
                else scale)
    try:
        scores = (q * factor) @ np.swapaxes(k, -1, -2)
        np.broadcast_shapes(scores.shape[:-2], v.shape[:-2])
    except ValueError:
        raise RuntimeValueError(f"{where}: the leading dimensions of query {q.shape}, key "
                                f"{k.shape} and value {v.shape} do not broadcast") from None
    bias = _attention_bias(where, attn_mask, is_causal, scores.shape, q.dtype)
    if bias is not None:
        scores = scores + bias
    shape = scores.shape
    if shape[-1] == 0 or scores.size == 0:   # no keys (S = 0): every output row is 0
        weights = np.zeros(shape, q.dtype)
    else:
        rows = np.ascontiguousarray(scores.reshape(-1, shape[-1]))
        dead = np.isneginf(rows).all(axis=1)
        rows[dead] = 0
        weights = ops.softmax(rows)
        weights[dead] = 0
        weights = weights.reshape(shape)
    if dropout_p > 0:
        with _runtime_errors():   # (p > 1: PyTorch's RuntimeError here, not F.dropout's)
            weights = dropout(weights, dropout_p, training=True)
    return _device.c_contiguous(weights @ v, q.dtype)


def _attention_weight(where, name, value, shape, dtype):
    """A weight or bias of multi_head_attention_forward checked: shape and dtype (a
    wrong shape is PyTorch's RuntimeError from its product)."""
    w = _float(where, name, value, dtype=dtype)
    if w.shape != shape:
        raise RuntimeValueError(f"{where}: expected {name} of shape {shape}, got {w.shape}")
    return w


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads,
                                 in_proj_weight, in_proj_bias, bias_k, bias_v,
                                 add_zero_attn, dropout_p, out_proj_weight, out_proj_bias,
                                 training=True, key_padding_mask=None, need_weights=True,
                                 attn_mask=None, use_separate_proj_weight=False,
                                 q_proj_weight=None, k_proj_weight=None, v_proj_weight=None,
                                 static_k=None, static_v=None, average_attn_weights=True,
                                 is_causal=False):
    """nn.MultiheadAttention's forward with the weights given: (attn_output,
    attn_weights or None), as PyTorch's.

    query (L, N, E), key (S, N, kdim), value (S, N, vdim), or unbatched (L, E), (S, kdim),
    (S, vdim); in_proj_weight (3 E, E) (use_separate_proj_weight: q_proj_weight (E, E),
    k_proj_weight (E, kdim), v_proj_weight (E, vdim) instead); in_proj_bias (3 E,) or
    None; bias_k, bias_v (1, 1, E) or both None; out_proj_weight (E, E), out_proj_bias
    (E,) or None. Masks, need_weights, average_attn_weights and is_causal as
    nn.MultiheadAttention.forward's; dropout_p drops attention weights when training
    (fastnn's generator). static_k and static_v (keys and values given already
    projected) are not supported by fastnn (NotImplementedError).
    """
    where = "multi_head_attention_forward"
    if static_k is not None or static_v is not None:
        raise NotImplementedError(f"{where}: static_k and static_v are not supported by "
                                  f"fastnn")
    q = _float(where, "query", query)
    dt = q.dtype
    e = q.shape[-1] if q.ndim else None
    if e != embed_dim_to_check:
        raise AttentionAssertionError(f"{where}: was expecting embedding dimension of "
                                      f"{embed_dim_to_check}, but got {e}")
    if (bias_k is None) != (bias_v is None):
        raise AttentionAssertionError(f"{where}: expected bias_k and bias_v both given or "
                                      f"both None")
    check_flag(where, "use_separate_proj_weight", use_separate_proj_weight)
    if use_separate_proj_weight:
        if q_proj_weight is None or k_proj_weight is None or v_proj_weight is None:
            raise AttentionAssertionError(f"{where}: use_separate_proj_weight is True but "
                                          f"q_proj_weight, k_proj_weight or v_proj_weight "
                                          f"is None")
        k_w = _float(where, "k_proj_weight", k_proj_weight, dtype=dt)
        v_w = _float(where, "v_proj_weight", v_proj_weight, dtype=dt)
        kdim = k_w.shape[-1] if k_w.ndim == 2 else e
        vdim = v_w.shape[-1] if v_w.ndim == 2 else e
        weights = [_attention_weight(where, n, w, (e, f), dt) for n, w, f in
                   (("q_proj_weight", q_proj_weight, e), ("k_proj_weight", k_w, kdim),
                    ("v_proj_weight", v_w, vdim))]
    else:
        if in_proj_weight is None:
            raise AttentionAssertionError(f"{where}: use_separate_proj_weight is False but "
                                          f"in_proj_weight is None")
        kdim = vdim = e
        weights = np.split(_attention_weight(where, "in_proj_weight", in_proj_weight,
                                             (3 * e, e), dt), 3)
    with _random.fork(0):   # (the layer's own initialisation, overwritten below, draws)
        layer = MultiheadAttention(e, num_heads, dropout=dropout_p,
                                   add_bias_kv=bias_k is not None,
                                   add_zero_attn=add_zero_attn, kdim=kdim, vdim=vdim,
                                   dtype=dt)
    layer.train(check_flag(where, "training", training))
    if layer._qkv_same_embed_dim:
        layer.in_proj_weight.data[...] = np.concatenate(weights)
    else:
        for part, w in zip("qkv", weights):
            getattr(layer, f"{part}_proj_weight").data[...] = w
    layer.out_proj.weight.data[...] = _attention_weight(where, "out_proj_weight",
                                                        out_proj_weight, (e, e), dt)
    for name, given, shape, owner, attr in (
            ("in_proj_bias", in_proj_bias, (3 * e,), layer, "in_proj_bias"),
            ("out_proj_bias", out_proj_bias, (e,), layer.out_proj, "bias"),
            ("bias_k", bias_k, (1, 1, e), layer, "bias_k"),
            ("bias_v", bias_v, (1, 1, e), layer, "bias_v")):
        if given is None:
            setattr(owner, attr, None)
        else:
            getattr(owner, attr).data[...] = _attention_weight(where, name, given, shape, dt)
    return layer.forward(query, key, value, key_padding_mask=key_padding_mask,
                         need_weights=need_weights, attn_mask=attn_mask,
                         average_attn_weights=average_attn_weights, is_causal=is_causal)


def gumbel_softmax(logits, tau=1, hard=False, eps=1e-10, dim=-1):
    """softmax((logits + g) / tau, dim) with g Gumbel(0, 1) noise from fastnn's generator;
    hard=True returns the one-hot of its argmax (PyTorch's straight-through value).
    logits: any shape; output: the same shape."""
    where = "gumbel_softmax"
    if eps != 1e-10:
        warnings.warn("`eps` parameter is deprecated and has no effect.", stacklevel=2)
    x = _float(where, "logits", logits)
    axis = _axis(dim, x.ndim)
    gumbels = -np.log(_random.generator().exponential(size=x.shape)).astype(x.dtype)
    soft = softmax(np.asarray((x + gumbels) / x.dtype.type(tau)), dim=axis)   # (0-d too)
    if not hard:
        return soft
    if soft.ndim == 0:   # one value: its own argmax
        return np.asarray(np.ones_like(soft) - soft + soft)
    index = np.expand_dims(np.argmax(soft, axis=axis), axis)
    one_hot_ = np.zeros_like(soft)
    np.put_along_axis(one_hot_, index, 1, axis=axis)
    return one_hot_ - soft + soft


# ------------------------------------------------ deprecated resampling, misc
def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """interpolate(...), with PyTorch's deprecation warning."""
    warnings.warn("`nn.functional.upsample` is deprecated. Use `nn.functional.interpolate` "
                  "instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    """interpolate(input, size, scale_factor, mode='nearest'), with PyTorch's deprecation
    warning."""
    warnings.warn("`nn.functional.upsample_nearest` is deprecated. Use "
                  "`nn.functional.interpolate` instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    """interpolate(input, size, scale_factor, mode='bilinear', align_corners=True), with
    PyTorch's deprecation warning."""
    warnings.warn("`nn.functional.upsample_bilinear` is deprecated. Use "
                  "`nn.functional.interpolate` instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


def native_channel_shuffle(input, groups):
    """channel_shuffle(input, groups)."""
    return channel_shuffle(input, groups)


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2,
                  scale_grad_by_freq=False, mode="mean", sparse=False, per_sample_weights=None,
                  include_last_offset=False, padding_idx=None):
    """The sum, mean or max of each bag's rows of weight (num_embeddings, D): bags the
    rows of (B, N) input, or 1-D input cut at offsets (include_last_offset: offsets also
    ends the last bag); per_sample_weights (input's shape, mode 'sum') scale the rows;
    padding_idx entries are left out; max_norm renormalises the referenced rows of weight
    in place first. Output (B, D) in weight's dtype (nn.EmbeddingBag's forward)."""
    where = "embedding_bag"
    include_last_offset = check_flag(where, "include_last_offset", include_last_offset)
    check_flag(where, "scale_grad_by_freq", scale_grad_by_freq)
    check_flag(where, "sparse", sparse)
    idx = _integers(where, "input", input)
    w = _float(where, "weight", weight)
    if w.ndim != 2:
        raise ValueError(f"weight has to be a 2D Tensor, but got Tensor of dimension {w.ndim}")
    if idx.ndim == 2 and offsets is not None:
        raise ValueError("if input is 2D, then offsets has to be None, as input is treated "
                         "is a mini-batch of fixed length sequences.")
    if idx.ndim == 1 and offsets is None:
        raise ValueError("offsets has to be a 1D Tensor but got None")
    if idx.ndim not in (1, 2):
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension "
                         f"{idx.ndim}")
    if mode not in ("sum", "mean", "max"):
        raise ValueError("mode has to be one of sum, mean or max")
    if mode == "max" and scale_grad_by_freq:
        raise ValueError("max mode does not support scaling the gradient by the frequency")
    if mode == "max" and sparse:
        raise ValueError("max mode does not support sparse weights")
    if idx.size and (idx.min() < 0 or idx.max() >= w.shape[0]):
        raise index_error(idx, w.shape[0], max_norm)(
            f"embedding_bag: an index lies outside [0, {w.shape[0]})")
    if padding_idx is not None:   # (checked here: the layer's own check is an assertion)
        if not _is_int(padding_idx):
            raise TypeValueError(f"embedding_bag(): argument 'padding_idx' must be int, not "
                                 f"{type(padding_idx).__name__}")
        if not -w.shape[0] <= padding_idx < w.shape[0]:
            raise RuntimeValueError(f"embedding_bag: padding_idx must be within the number of "
                                    f"embeddings, -{w.shape[0]} through {w.shape[0] - 1}, "
                                    f"but got {padding_idx}")
    with _runtime_errors():
        bag = EmbeddingBag(w.shape[0], w.shape[1], mode=mode, _weight=w,
                           include_last_offset=include_last_offset,
                           padding_idx=padding_idx, dtype=w.dtype)
        # (set past the constructor's checks: PyTorch's functional takes any norm_type)
        bag.max_norm, bag.norm_type = max_norm, norm_type
        out = bag.forward(idx, offsets, per_sample_weights)
    if max_norm is not None:   # weight's rows as the bag's copy, once the call is checked
        renorm_rows(w, idx, max_norm, norm_type)
    return out


def conv_tbc(input, weight, bias, pad=0):
    """A 1-D convolution of time-batch-channel input (T, B, C_in) with weight
    (k, C_in, C_out) and bias (C_out,), zero padding pad at both ends of T: output
    (T + 2 pad - k + 1, B, C_out)."""
    where = "conv_tbc"
    x = _float(where, "input", input)
    w = _float(where, "weight", weight, dtype=x.dtype)
    if x.ndim != 3 or w.ndim != 3 or w.shape[1] != x.shape[2]:
        raise RuntimeValueError(
            f"{where}: expected input (T, B, C_in) and weight (k, C_in, C_out), "
            f"got {x.shape} and {w.shape}")
    if _is_int(pad) and x.shape[0] + 2 * int(pad) - w.shape[0] + 1 == 0:
        # an output of no time steps, as PyTorch's (conv1d refuses a kernel longer than
        # its padded input)
        b = _float(where, "bias", bias, dtype=x.dtype)
        if b.shape != (w.shape[2],):
            raise RuntimeValueError(f"{where}: expected bias of shape ({w.shape[2]},), got "
                                    f"{b.shape}")
        return np.zeros((0, x.shape[1], w.shape[2]), x.dtype)
    y = conv1d(np.ascontiguousarray(x.transpose(1, 2, 0)),
               np.ascontiguousarray(w.transpose(2, 1, 0)), bias, padding=pad)
    return _device.c_contiguous(y.transpose(2, 0, 1))


# --------------------------------------------------------------- Parameters as arrays
def _taking_parameters(fn):
    """fn taking a Parameter wherever it takes an array, as its values (``.data``, the
    same array: an in-place function writes the parameter): ``F.linear(x, layer.weight,
    layer.bias)``, ``F.conv2d(x, conv.weight)`` as with PyTorch, whose parameters are
    tensors (it was a TypeError, 'expected weight to be a numpy.ndarray, got
    Parameter')."""
    @functools.wraps(fn)
    def taking_parameters(*args, **kwargs):
        if any(isinstance(a, Parameter) for a in args):
            args = tuple(a.data if isinstance(a, Parameter) else a for a in args)
        if kwargs and any(isinstance(v, Parameter) for v in kwargs.values()):
            kwargs = {k: v.data if isinstance(v, Parameter) else v for k, v in kwargs.items()}
        return fn(*args, **kwargs)
    return taking_parameters


for _name in __all__:
    globals()[_name] = _taking_parameters(globals()[_name])
del _name
