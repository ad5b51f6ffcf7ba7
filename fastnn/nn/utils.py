"""PyTorch's ``torch.nn.utils`` helpers for fastnn modules and Parameters.

* Gradient clipping (``clip_grad_norm_`` = ``get_total_norm`` then
  ``clip_grads_with_norm_``, as PyTorch composes it; ``clip_grad_value_``): in place on
  the ``.grad`` arrays, between ``backward`` and ``optimizer.step()``.
* ``parameters_to_vector`` / ``vector_to_parameters``: the parameters as one flat vector
  and back.
* ``fuse_conv_bn_eval`` / ``fuse_linear_bn_eval`` (and their ``*_weights`` formulas): a
  new convolution or Linear whose output equals the layer followed by an eval-mode
  BatchNorm.
* ``skip_init``: a module built without initialising its parameters and buffers.
* ``rnn``: PyTorch's ``torch.nn.utils.rnn`` (PackedSequence, pack/pad helpers), the
  module ``fastnn.nn.rnn_utils``; ``import fastnn.nn.utils.rnn`` works too.

Arrays on the GPU go through the host here (a copy each way): none of this is the GPU's
hot path.
"""
import copy
import inspect
import math
import sys
import types
import warnings

import numpy as np

from .. import device as _device
from .. import random as _random
from ..errors import AssertionValueError, RuntimeValueError
from . import rnn_utils as rnn
from .module import Module, Parameter

# utils is a module, not a package: registering rnn under its dotted name lets
# ``import fastnn.nn.utils.rnn`` and ``from fastnn.nn.utils.rnn import ...`` find it
sys.modules.setdefault(f"{__name__}.rnn", rnn)


def _live_grads(params):
    """The .grad arrays of params whose PyTorch .grad would not be None: one no backward
    reached since zero_grad is left out without reading it (a read would write its
    zeros and make optimizers step it); a frozen parameter's stale gradient counts, as
    in PyTorch (see ``Parameter._has_grad``)."""
    return [p.grad for p in params if p._has_grad()]


def _parameter_list(where, parameters):
    params = [parameters] if isinstance(parameters, Parameter) else list(parameters)
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(f"{where}: expected Parameters (model.parameters()), got "
                            f"{type(p).__name__}")
    return params


def _positive(where, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or math.isnan(value) or value < 0:
        raise ValueError(f"{where}: expected {name} to be a number >= 0, got {value!r}")
    return float(value)


def _norm_order(where, norm_type):
    """norm_type as a float, any but NaN as PyTorch's vector norms take (negative orders
    too: -inf is the smallest magnitude); PyTorch's 'inf' (a string float() reads) too."""
    if isinstance(norm_type, str):
        try:
            norm_type = float(norm_type)
        except ValueError:
            pass
    if isinstance(norm_type, bool) or not isinstance(
            norm_type, (int, float, np.integer, np.floating)) or math.isnan(norm_type):
        raise ValueError(f"{where}: expected norm_type to be a number, got {norm_type!r}")
    return float(norm_type)


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The norm_type-norm of the arrays taken together, as a float (np.float64, so
    ``.item()`` works as on PyTorch's 0-d tensor): the norm of their
    norms (inf: the largest magnitude, -inf the smallest, a negative p the sum of
    |x| ** p to the 1/p; order 0 counts the arrays with a nonzero element, as
    PyTorch's does), summed in float64. tensors: an array, a Parameter (its
    values) or an iterable of them, e.g. ``[p.grad for p in model.parameters()]``; none
    gives 0.0. error_if_nonfinite: a RuntimeError when the norm is NaN or infinite.
    foreach is accepted for PyTorch code and changes nothing."""
    where = "get_total_norm"
    return _total_norm(where, _array_list(where, tensors), _norm_order(where, norm_type),
                       error_if_nonfinite)


def _total_norm(where, arrays, norm_type, error_if_nonfinite):
    """get_total_norm of a list of arrays and a checked order; its errors name where
    (the function the user called: clip_grad_norm_ computes its total here too)."""
    if not arrays:
        return np.float64(0.0)
    if (math.isinf(norm_type) or norm_type < 0) and any(math.prod(a.shape) == 0
                                                        for a in arrays):
        raise RuntimeValueError(
            f"{where}: the {norm_type} norm of an empty array is undefined "
            f"(a max or min over no elements, or a negative order's sum "
            f"of no inverse powers), as in PyTorch; drop the zero-size "
            f"arrays")
    with np.errstate(divide="ignore"):  # a negative order's 0 ** p = inf: a 0 norm
        if norm_type == 2.0:
            norms = [_two_norm(_device.to_host(a).ravel()) for a in arrays]
        else:
            norms = [np.linalg.norm(_device.to_host(a).ravel().astype(np.float64),
                                    ord=norm_type) for a in arrays]
        total = np.float64(np.linalg.norm(np.array(norms), ord=norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeValueError(
            f"{where}: the total norm of order {norm_type} of the gradients is non-finite "
            f"({total}), so it cannot be clipped; pass error_if_nonfinite=False to clip "
            f"anyway")
    return total


def _two_norm(flat):
    """The 2-norm of a 1-D array: BLAS's dot in its own type (PyTorch's norm also sums a
    float32 gradient in float32; a float64 copy of each made clip_grad_norm_ 1.6x
    PyTorch's time), again in float64 where that sum overflowed, underflowed or met a
    NaN."""
    if flat.dtype.kind == "f" and flat.dtype.itemsize >= 4:
        total = float(np.dot(flat, flat))
        if math.isfinite(total) and (total > 1e-30 or not flat.any()):
            return math.sqrt(total)
    return float(np.linalg.norm(flat.astype(np.float64)))


def _array_list(where, tensors):
    """The arrays of an array, a Parameter, or an iterable of them (Parameters: .data)."""
    if isinstance(tensors, Parameter) or _device.is_array(tensors):
        tensors = [tensors]
    elif isinstance(tensors, (str, bytes)) or not hasattr(tensors, "__iter__"):
        raise TypeError(f"{where}: expected an array, a Parameter or an iterable of them, "
                        f"got {type(tensors).__name__}")
    arrays = []
    for t in tensors:
        data = t.data if isinstance(t, Parameter) else t
        if not _device.is_array(data):
            raise TypeError(f"{where}: expected arrays or Parameters, got "
                            f"{type(t).__name__}")
        arrays.append(data)
    return arrays


def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    """Scale every gradient by max_norm / (total_norm + 1e-6) when that is below 1 (or
    NaN: a NaN or infinite total turns the gradients to NaN, as in PyTorch), in place,
    with total_norm given (``get_total_norm`` of the gradients, or any norm the caller
    computed). Returns None. foreach is accepted for PyTorch code and changes nothing."""
    where = "clip_grads_with_norm_"
    params = _parameter_list(where, parameters)
    grads = _live_grads(params)
    max_norm = _positive(where, "max_norm", max_norm)
    total_norm = _total_value(where, total_norm)
    if not grads:
        return None
    coef = max_norm / (total_norm + 1e-6)
    if coef < 1.0 or math.isnan(coef):
        with np.errstate(invalid="ignore"):  # an infinite element times 0: NaN, as torch
            for g in grads:
                _device.scaled(g, coef)
    return None


def _total_value(where, total_norm):
    """total_norm (a number or a one-element array) as a float: >= 0, inf or NaN."""
    if _device.is_array(total_norm) or isinstance(total_norm, np.generic):
        host = np.asarray(_device.to_host(total_norm))
        if host.size != 1 or host.dtype.kind not in "fiu":
            raise TypeError(f"{where}: expected total_norm to be a number, got an array of "
                            f"shape {host.shape} and dtype {host.dtype}")
        total_norm = float(host.reshape(()))
    if isinstance(total_norm, bool) or not isinstance(total_norm, (int, float)) \
            or total_norm < 0:
        raise ValueError(f"{where}: expected total_norm to be a number >= 0 (or NaN), got "
                         f"{total_norm!r}")
    return float(total_norm)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                    foreach=None):
    """Scale every gradient by max_norm / (total_norm + 1e-6) when that is below 1, where
    total_norm is the norm_type-norm of all gradients taken together (inf: the largest
    magnitude; a NaN or infinite total turns the gradients to NaN, as in PyTorch).
    Returns total_norm (an np.float64, a float with ``.item()``) before clipping.
    error_if_nonfinite: raise RuntimeError, changing nothing, when total_norm is NaN or
    infinite. foreach is accepted for PyTorch code and changes nothing. PyTorch's
    composition: ``get_total_norm`` of the gradients, then ``clip_grads_with_norm_``."""
    where = "clip_grad_norm_"
    is_generator = isinstance(parameters, types.GeneratorType)
    params = _parameter_list(where, parameters)
    if is_generator and not params:
        warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.",
                      stacklevel=2)
    grads = _live_grads(params)
    max_norm = _positive(where, "max_norm", max_norm)
    norm_type = _norm_order(where, norm_type)
    if not grads:
        return np.float64(0.0)
    total = _total_norm(where, grads, norm_type, error_if_nonfinite)
    clip_grads_with_norm_(params, max_norm, total, foreach)
    return total


def clip_grad_norm(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                   foreach=None):
    """PyTorch's deprecated name of ``clip_grad_norm_`` (a FutureWarning, then the call)."""
    warnings.warn("`nn.utils.clip_grad_norm` is now deprecated in favor of "
                  "`nn.utils.clip_grad_norm_`.", FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient element to [-clip_value, clip_value], in place."""
    where = "clip_grad_value_"
    params = _parameter_list(where, parameters)
    grads = _live_grads(params)
    clip_value = _positive(where, "clip_value", clip_value)
    for g in grads:
        if _device.is_device_array(g):
            _device.namespace_of(g).copy_into(
                g, np.clip(_device.to_host(g), -clip_value, clip_value))
        else:
            np.clip(g, -clip_value, clip_value, out=g)


# ---------------------------------------------------------------- flat vectors
# no parameters to flatten: PyTorch 2.13's ValueError, its earlier RuntimeError
_EmptyError = RuntimeValueError


def _flat_arrays(where, parameters):
    """(the arrays of an iterable of Parameters or arrays, 'cpu' or 'cuda'); a
    TypeError when they live in both places (PyTorch's check)."""
    if isinstance(parameters, Parameter) or _device.is_array(parameters) \
            or not hasattr(parameters, "__iter__"):
        raise TypeError(f"{where}: expected an iterable of Parameters (model.parameters()), "
                        f"got {type(parameters).__name__}")
    arrays = _array_list(where, parameters)
    places = {_device.device_of(a) for a in arrays}
    if len(places) > 1:
        raise TypeError(f"{where}: Found two parameters on different devices, this is "
                        f"currently not supported.")
    return arrays, (places.pop() if places else "cpu")


def parameters_to_vector(parameters):
    """The parameters' values flattened (C order) and joined into one new 1-D array, in
    order: float64 if any of them is, on their device. parameters: an iterable of
    Parameters (or arrays), all on one device."""
    where = "parameters_to_vector"
    arrays, place = _flat_arrays(where, parameters)
    if not arrays:  # torch.cat's ValueError in PyTorch 2.13 (a RuntimeError before)
        raise _EmptyError(f"{where}: expected a non-empty iterable of parameters")
    vec = np.concatenate([_device.to_host(a).ravel() for a in arrays])
    return _device.namespace(place).put(vec) if place == "cuda" else vec


def vector_to_parameters(vec, parameters):
    """Copy consecutive slices of the 1-D array vec into the parameters, in order, each
    reshaped to its parameter (``parameters_to_vector``'s inverse). Unlike PyTorch, which
    rebinds each ``param.data`` to a view of vec, the values are written into the
    parameters' own arrays (their dtype and device kept), so an optimizer built on them
    still updates them; vec may live on either device. vec must hold exactly as many
    elements as the parameters (checked before anything is written)."""
    where = "vector_to_parameters"
    if isinstance(vec, Parameter):
        vec = vec.data
    if not _device.is_array(vec):
        raise TypeError(f"{where}: expected an array, but got: {type(vec).__name__}")
    if np.dtype(vec.dtype).kind != "f" or len(vec.shape) != 1:
        raise TypeError(f"{where}: expected a 1-D float array, got shape {tuple(vec.shape)} "
                        f"and dtype {vec.dtype}")
    arrays, _ = _flat_arrays(where, parameters)
    total = sum(math.prod(a.shape) for a in arrays)
    if total != vec.shape[0]:
        raise RuntimeValueError(f"{where}: the parameters hold {total} elements but vec has "
                                f"{vec.shape[0]}")
    host = _device.to_host(vec)
    pointer = 0
    for a in arrays:
        n = math.prod(a.shape)
        piece = host[pointer:pointer + n].reshape(a.shape)
        if _device.is_device_array(a):
            _device.namespace_of(a).copy_into(a, _device.c_contiguous(piece, dtype=a.dtype))
        else:
            a[...] = piece
        pointer += n


# ---------------------------------------------------------------------- fusion
def _host_values(x):
    """The values of a Parameter or an array as a NumPy array (None stays None)."""
    if x is None:
        return None
    return _device.to_host(x.data if isinstance(x, Parameter) else x)


def _fused_parameter(values, like, requires_grad):
    """A new Parameter of values, on the device of the array `like`."""
    param = Parameter(values, requires_grad=requires_grad)
    if _device.is_device_array(like):
        param._rebind_data(_device.to_device(param.data))
        param.grad = _device.Cuda.zeros(param.data.shape, param.data.dtype)
    return param


def _requires_grad(x):
    """PyTorch's fused parameters take requires_grad from the original Parameter; an
    absent one or a plain array (tensor) gives False."""
    return bool(x.requires_grad) if isinstance(x, Parameter) else False


def fuse_conv_bn_weights(conv_w, conv_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b, transpose=False):
    """(weight, bias) Parameters of a convolution equal to the convolution (weight conv_w,
    bias conv_b or None) followed by an eval-mode BatchNorm (running mean bn_rm and
    variance bn_rv, eps bn_eps, weight bn_w and bias bn_b, each None for ones/zeros):
    weight = conv_w * bn_w / sqrt(bn_rv + eps) along the output channels (axis 0, or
    axis 1 with transpose for a transposed convolution's (in, out, ...) weight), bias =
    (conv_b - bn_rm) * bn_w / sqrt(bn_rv + eps) + bn_b. PyTorch's formula and dtypes (the
    weight's, the bias's), on conv_w's device."""
    w, b, rm, inv_std, scale, shift, weight_dtype, bias_dtype = _bn_terms(
        conv_w, conv_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b)
    axis = 1 if transpose else 0
    channel_scale = scale * inv_std
    if w.ndim < 2 or channel_scale.shape[0] not in (1, w.shape[axis]):
        raise RuntimeValueError(
            f"fuse_conv_bn_weights: the BatchNorm's {channel_scale.shape[0]} channels do "
            f"not match axis {axis} of the convolution weight of shape {w.shape}"
            + ("" if transpose else " (a transposed convolution needs transpose=True)"))
    shape = [1] * w.ndim
    shape[axis] = -1
    fused_w = (w * channel_scale.reshape(shape)).astype(weight_dtype)
    fused_b = ((b - rm) * inv_std * scale + shift).astype(bias_dtype)
    return (_fused_parameter(fused_w, _raw(conv_w), _requires_grad(conv_w)),
            _fused_parameter(fused_b, _raw(conv_w), _requires_grad(conv_b)))


def _bn_terms(layer_w, layer_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b):
    """What both fusions start from, as host arrays: (the layer's weight, its bias (zeros
    when None), the running mean, 1 / sqrt(running var + eps), the BatchNorm's weight
    (ones when None) and bias (zeros when None), the fused weight's dtype, the fused
    bias's dtype (the layer bias's, else the weight's))."""
    w, b = _host_values(layer_w), _host_values(layer_b)
    rm, rv = _host_values(bn_rm), _host_values(bn_rv)
    bias_dtype = b.dtype if b is not None else w.dtype
    if b is None:
        b = np.zeros_like(rm)
    scale = _host_values(bn_w) if bn_w is not None else np.ones_like(rm)
    shift = _host_values(bn_b) if bn_b is not None else np.zeros_like(rm)
    return w, b, rm, 1.0 / np.sqrt(rv + bn_eps), scale, shift, w.dtype, bias_dtype


def _raw(x):
    return x.data if isinstance(x, Parameter) else x


def fuse_linear_bn_weights(linear_w, linear_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b):
    """(weight, bias) Parameters of a Linear layer equal to the Linear (weight linear_w,
    bias linear_b or None) followed by an eval-mode BatchNorm over its output features:
    weight = linear_w * (bn_w / sqrt(bn_rv + eps))[:, None], bias = (linear_b - bn_rm) *
    bn_w / sqrt(bn_rv + eps) + bn_b. PyTorch's formula and dtypes, on linear_w's device;
    a BatchNorm of one feature broadcasts over every output (the bias then has one
    element when linear_b is None, as PyTorch's)."""
    w, b, rm, inv_std, bn_w, bn_b, weight_dtype, bias_dtype = _bn_terms(
        linear_w, linear_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b)
    scale = bn_w * inv_std
    if w.ndim != 2 or scale.shape[0] not in (1, w.shape[0]):
        raise RuntimeValueError(f"fuse_linear_bn_weights: the BatchNorm's {scale.shape[0]} "
                                f"features do not match the Linear weight of shape {w.shape}")
    fused_w = w * scale[:, None].astype(weight_dtype)
    fused_b = ((b - rm) * scale + bn_b).astype(bias_dtype)
    return (_fused_parameter(fused_w, _raw(linear_w), _requires_grad(linear_w)),
            _fused_parameter(fused_b, _raw(linear_w), _requires_grad(linear_b)))


def _check_fusable(layer, bn):
    if layer.training or bn.training:
        raise AssertionValueError("Fusion only for eval!")
    if getattr(bn, "running_mean", None) is None or getattr(bn, "running_var", None) is None:
        raise AssertionValueError("bn.running_mean and bn.running_var must not be None")


def _fresh_copy(module):
    """A deep copy of a module for fusion, on the host: its own weight and bias (about to
    be replaced) and the caches of its last forward are left out, and arrays on the GPU
    are copied through the host (device arrays are not deep-copied; ``_finish_fused``
    moves the copy back)."""
    memo = {id(module.weight): None, id(module.bias): None}
    for m in module.modules():
        for param in m._parameters.values():
            if param is not None and id(param) not in memo:
                twin = Parameter(_device.to_host(param.data), param.requires_grad)
                twin.grad = None if param.grad is None else _device.host_copy(param.grad)
                memo[id(param)] = twin
        memo[id(m._scratch)] = {}
        for name, value in vars(m).items():
            if name in ("_parameters", "_buffers", "_modules", "_scratch",
                        "_batch_count_array") or id(value) in memo:
                continue
            if name.startswith("_") and _holds_arrays(value):
                memo[id(value)] = None  # the inputs and outputs of the last forward
            elif _device.is_device_array(value):
                memo[id(value)] = _device.to_host(value)  # buffers and the like
    fresh = copy.deepcopy(module, memo)
    fresh._parameters.pop("weight", None)
    fresh._parameters.pop("bias", None)
    for m in fresh.modules():
        object.__setattr__(m, "_out_meta", None)
        object.__setattr__(m, "_device", "cpu")
    return fresh


def _holds_arrays(value):
    if _device.is_array(value):
        return True
    return isinstance(value, (tuple, list)) and any(_holds_arrays(v) for v in value)


def _finish_fused(fused, source, weight, bias):
    object.__setattr__(fused, "weight", None)
    object.__setattr__(fused, "bias", None)
    fused.weight, fused.bias = weight, bias
    if source.device == "cuda":
        fused.to("cuda")
    return fused


def fuse_conv_bn_eval(conv, bn, transpose=False):
    """A new convolution (a copy of conv: Conv1d/2d/3d, or a ConvTranspose with
    transpose=True) whose output equals ``bn(conv(x))`` in eval mode, with a bias even
    when conv has none. Both must be in eval mode and bn must keep running statistics
    (AssertionError otherwise, as PyTorch's); conv and bn are left as they are."""
    _check_fusable(conv, bn)
    weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean,
                                        bn.running_var, bn.eps, bn.weight, bn.bias,
                                        transpose)
    return _finish_fused(_fresh_copy(conv), conv, weight, bias)


def fuse_linear_bn_eval(linear, bn):
    """A new Linear (a copy of linear) whose output equals ``bn(linear(x))`` in eval mode,
    with a bias even when linear has none. Both must be in eval mode, bn must keep
    running statistics and have linear.out_features features or one (AssertionError
    otherwise, as PyTorch's); linear and bn are left as they are."""
    _check_fusable(linear, bn)
    if linear.out_features != bn.num_features and bn.num_features != 1:
        raise AssertionValueError(
            f"To fuse, linear.out_features == bn.num_features or "
            f"bn.num_features == 1, got linear.out_features="
            f"{linear.out_features} and bn.num_features={bn.num_features}")
    weight, bias = fuse_linear_bn_weights(linear.weight, linear.bias, bn.running_mean,
                                          bn.running_var, bn.eps, bn.weight, bn.bias)
    if bias.shape[0] != linear.out_features:  # one BatchNorm feature, no Linear bias
        bias = Parameter(np.broadcast_to(bias.numpy(), (linear.out_features,)),
                         requires_grad=bias.requires_grad)
    return _finish_fused(_fresh_copy(linear), linear, weight, bias)


# ------------------------------------------------------------------- skip_init
def skip_init(module_cls, *args, **kwargs):
    """An instance of module_cls(*args, **kwargs) whose parameters and buffers are left
    uninitialised (new ``np.empty`` arrays, of their shapes and dtypes, as PyTorch's
    ``torch.empty``), for code that initialises them itself. fastnn's generator is not
    advanced: the constructor's own draws go to a throwaway state (their cost is still
    paid). device: 'cpu' or 'cuda' (where the module ends up), passed on to a
    constructor that takes it, otherwise applied with ``to`` after."""
    if not (isinstance(module_cls, type) and issubclass(module_cls, Module)):
        raise RuntimeValueError(f"Expected a Module; got {module_cls}")
    device = None
    try:
        takes_device = "device" in inspect.signature(module_cls).parameters
    except (TypeError, ValueError):
        takes_device = False
    if not takes_device and "device" in kwargs:
        device = _device.check_device("skip_init", kwargs.pop("device"))
    with _random.fork(_random.DEFAULT_SEED):
        module = module_cls(*args, **kwargs)
    seen = set()
    for m in module.modules():
        ns = _device.namespace(m.device)
        for param in m._parameters.values():
            if param is not None and id(param) not in seen:
                seen.add(id(param))
                param._rebind_data(_empty(ns, param.data))
        for name, buf in list(m._buffers.items()):
            if buf is not None:
                m._buffers[name] = _empty(ns, buf)
                object.__setattr__(m, name, m._buffers[name])
        m._scratch.clear()
    if device is not None:
        module.to(device)
    return module


def _empty(ns, like):
    """An uninitialised array of like's shape and dtype, where like lives."""
    if ns is _device.Host:
        return np.empty(like.shape, like.dtype)
    return ns.empty(like.shape, like.dtype)
