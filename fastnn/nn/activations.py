"""Activation layers: each calls its backend's kernel pair ``act`` / ``act_backward``.

Every activation takes an input of any shape (Softmax, LogSoftmax: rank >= 1) and returns
an output of the same shape. ``fused_name`` names the activation in ``optable.FUSABLE_ACTIVATIONS``
when ``Sequential`` may fuse it into a preceding Linear (None otherwise).
"""
import numbers
import warnings

import numpy as np

from .. import device as _device
from ..errors import AssertionValueError, IndexValueError, RuntimeValueError, TypeValueError
from ..validation import check_bool, check_number, check_only, check_positive_int, float_of
from . import init as _init
from .module import Module, Parameter, nothing_to_compute


class _Elementwise(Module):
    """An activation y = f(x) whose backward needs either y (saves='y') or x (saves='x')."""

    kernel = None
    saves = "y"
    fused_name = None

    def _args(self):
        """Extra positional kernel arguments after x (negative_slope, omega)."""
        return ()

    def _forward(self, x, buffered):
        out = self._buffer("y", x.shape, x.dtype) if buffered else None
        kernel, args = self.kernel, self._args()
        y = getattr(self._kernels(), kernel)(x, *args, out=out)
        self._saved = y if self.saves == "y" else x
        # (the arguments are attributes a user may set: the backward differentiates this
        # forward's, as PyTorch's graph keeps them)
        self._saved_args = (kernel, args)
        return y

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        out = self._buffer("grad_in", grad_out.shape, grad_out.dtype) if buffered else None
        kernel, args = self.__dict__.get("_saved_args") or (self.kernel, self._args())
        return getattr(self._kernels(), kernel + "_backward")(grad_out, self._saved, *args,
                                                              out=out)

    def _take_inplace(self, inplace):
        """PyTorch's inplace flag, accepted for its code: outputs are fresh arrays either
        way (the input is never overwritten)."""
        self.inplace = check_bool(type(self).__name__, "inplace", inplace)

    def _inplace_repr(self, sep=""):
        return f"{sep}inplace=True" if self.inplace else ""


class _InplaceFlag(_Elementwise):
    """An activation whose only argument is PyTorch's inplace flag."""

    def __init__(self, inplace=False):
        super().__init__()
        self._take_inplace(inplace)

    def extra_repr(self):
        return self._inplace_repr()


class ReLU(_InplaceFlag):
    """y = max(x, 0). Input: any shape. inplace is accepted for PyTorch code: the output
    is a fresh array either way (x is never overwritten)."""

    kernel = "relu"
    fused_name = "relu"


class LeakyReLU(_Elementwise):
    """y = x if x > 0 else negative_slope * x. Input: any shape."""

    kernel = "leaky_relu"
    saves = "x"

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        check_number("LeakyReLU", "negative_slope", negative_slope)
        self.negative_slope = negative_slope   # as given (PyTorch's attribute and repr)
        self._take_inplace(inplace)

    @property
    def fused_name(self):
        # The fused backward reads the slope off the output's sign, which needs slope >= 0.
        return "leaky_relu" if self._args()[0] >= 0 else None

    def _args(self):
        return (float_of(type(self).__name__, "negative_slope", self.negative_slope),)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + self._inplace_repr(", ")


class Sigmoid(_Elementwise):
    """y = 1 / (1 + exp(-x)). Input: any shape."""

    kernel = "sigmoid"
    fused_name = "sigmoid"


class Tanh(_Elementwise):
    """y = tanh(x). Input: any shape."""

    kernel = "tanh"
    fused_name = "tanh"


def _gelu_kernel(approximate):
    """GELU's kernel for approximate ('none' or 'tanh'), PyTorch's errors otherwise."""
    if approximate == "none" or approximate == "tanh":
        return "gelu" if approximate == "none" else "gelu_tanh"
    if not isinstance(approximate, str):   # (PyTorch's TypeError, when called)
        raise TypeValueError(f"GELU: expected approximate to be a str ('none' or 'tanh'), "
                             f"got {approximate!r}")
    try:
        check_only("GELU", "approximate", approximate, ("none", "tanh"))
    except ValueError as e:   # (PyTorch's RuntimeError, when called)
        raise RuntimeValueError(str(e)) from None


class GELU(_Elementwise):
    """y = x * Phi(x) with the exact erf form (PyTorch's default, approximate='none'), or
    0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) with approximate='tanh'.
    Input: any shape."""

    saves = "x"

    def __init__(self, approximate="none"):
        super().__init__()
        _gelu_kernel(approximate)   # (checks it)
        self.approximate = approximate

    @property
    def kernel(self):
        """The kernel of ``approximate``, read at each forward (an attribute a user may
        set, as PyTorch's GELU reads it at each call)."""
        return _gelu_kernel(self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Mish(_InplaceFlag):
    """y = x * tanh(softplus(x)) (Mish). Input: any shape."""

    kernel = "mish"
    saves = "x"


class Sine(_Elementwise):
    """y = sin(omega * x). Input: any shape."""

    kernel = "sine"
    saves = "x"

    def __init__(self, omega=1.0):
        super().__init__()
        check_number("Sine", "omega", omega)
        self.omega = float(omega)

    def _args(self):
        return (self._float("omega"),)

    def extra_repr(self):
        return f"omega={self.omega}"


class SiLU(_InplaceFlag):
    """y = x * sigmoid(x) (SiLU, or swish). Input: any shape."""

    kernel = "silu"
    saves = "x"


class ELU(_Elementwise):
    """y = x if x > 0 else alpha * (exp(x) - 1). Input: any shape."""

    kernel = "elu"
    saves = "x"

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        check_number(type(self).__name__, "alpha", alpha)
        self.alpha = alpha   # as given (PyTorch's attribute and repr)
        self._take_inplace(inplace)

    def _args(self):
        return (float_of(type(self).__name__, "alpha", self.alpha),)

    def extra_repr(self):
        return f"alpha={self.alpha}" + self._inplace_repr(", ")


class SELU(_InplaceFlag):
    """y = scale * (x if x > 0 else alpha * (exp(x) - 1)) with PyTorch's self-normalising
    constants (alpha 1.6733, scale 1.0507): the elu kernels, then the scale applied in
    place to their output (and to the input gradient). Input: any shape."""

    kernel = "elu"
    saves = "x"
    ALPHA = 1.6732632423543772848170429916717
    SCALE = 1.0507009873554804934193349852946

    def _args(self):
        return (self.ALPHA,)

    def _forward(self, x, buffered):
        return _device.scaled(super()._forward(x, buffered), self.SCALE)

    def _backward(self, grad_out, buffered, need_grad_in):
        grad_in = super()._backward(grad_out, buffered, need_grad_in)
        return None if grad_in is None else _device.scaled(grad_in, self.SCALE)


def celu_host(x, alpha):
    """CELU of a host array x for any alpha != 0, PyTorch's formula: x where x > 0, else
    alpha * (exp(x / alpha) - 1) (for alpha < 0 exp grows: -inf far below 0). x: any
    shape; returns x's shape and dtype. A zero stays itself, as PyTorch's (the formula
    gives the same signed zero for a finite alpha, but -inf * 0 = NaN for alpha = -inf)."""
    dt = x.dtype.type
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(x >= 0, x, dt(alpha) * np.expm1(x / dt(alpha))).astype(x.dtype)


def celu_host_slope(x, alpha):
    """d celu(x) / dx: 1 where x > 0, else exp(x / alpha) (a NaN x gives NaN)."""
    dt = x.dtype.type
    with np.errstate(over="ignore"):
        return np.where(x > 0, dt(1), np.exp(x / dt(alpha))).astype(x.dtype)


class CELU(ELU):
    """y = x if x > 0 else alpha * (exp(x / alpha) - 1) (continuously differentiable
    ELU): alpha * elu(x / alpha), the elu kernels on the input scaled by 1 / alpha and
    their output scaled back, x itself kept where x > 0 (alpha = 1 is ELU itself, no
    scaling). A negative alpha
    flips x / alpha's sign, which the elu kernels cannot take: NumPy on the host (a
    device array goes through the host). Input: any shape."""

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__(alpha, inplace)
        if self.alpha == 0:
            raise RuntimeValueError("CELU: alpha cannot be 0")  # (PyTorch: when called)

    def _args(self):
        return (1.0,)

    def _forward(self, x, buffered):
        # (alpha is an attribute a user may set: read at each forward and kept for its
        # backward, as PyTorch's graph keeps it)
        self._alpha = alpha = self._float("alpha")
        if alpha == 0:
            raise RuntimeValueError(f"{self._where()}: alpha cannot be 0")
        if alpha < 0:
            self._saved = host = _device.to_host(x)
            return _device.namespace_of(x).put(celu_host(host, alpha))
        if alpha == 1.0:
            return super()._forward(x, buffered)
        with np.errstate(over="ignore"):  # x / alpha past the float range: x is kept
            scaled = _device.scaled(x, 1.0 / alpha, copy=True)
        y = _device.scaled(super()._forward(scaled, buffered), alpha)
        # x itself where x > 0, as PyTorch: alpha * (x / alpha) is off by an ulp for
        # some x, and inf where x / alpha overflows (on the host: a GPU model keeps
        # alpha * (x / alpha), not worth two copies each way)
        if not _device.is_device_array(y):
            np.copyto(y, x, where=x > 0)
        return y

    def _backward(self, grad_out, buffered, need_grad_in):
        alpha = self.__dict__.get("_alpha", self.alpha)
        if alpha < 0 and need_grad_in:
            g = _device.to_host(grad_out)
            slope = celu_host_slope(self._saved, alpha)
            grad_in = np.multiply(g, slope, dtype=g.dtype, out=np.empty_like(g))  # (0-d too)
            return _device.namespace_of(grad_out).put(grad_in)
        # d/dx alpha elu(x / alpha) = elu'(x / alpha): the saved input is already x / alpha
        return super()._backward(grad_out, buffered, need_grad_in)


class Softplus(_Elementwise):
    """y = log(1 + exp(beta * x)) / beta, or x where beta * x > threshold (PyTorch's
    Softplus: a smooth ReLU, e.g. for a positive standard deviation). Input: any shape."""

    kernel = "softplus"
    saves = "x"

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        check_number("Softplus", "beta", beta)  # any, as PyTorch (0: inf, its value)
        check_number("Softplus", "threshold", threshold, infinite_ok=True)
        self.beta, self.threshold = beta, threshold   # as given (PyTorch's attributes)

    def _args(self):
        name = type(self).__name__
        return (float_of(name, "beta", self.beta), float_of(name, "threshold", self.threshold))

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class Hardsigmoid(_InplaceFlag):
    """y = min(max(x + 3, 0), 6) / 6 (piecewise-linear sigmoid, MobileNetV3). Input: any
    shape."""

    kernel = "hardsigmoid"
    saves = "x"

    def extra_repr(self):
        return ""   # PyTorch's repr leaves inplace out for this layer


class Hardswish(_InplaceFlag):
    """y = x * min(max(x + 3, 0), 6) / 6 (MobileNetV3). Input: any shape."""

    kernel = "hardswish"
    saves = "x"

    def extra_repr(self):
        return ""   # PyTorch's repr leaves inplace out for this layer


class LogSigmoid(_Elementwise):
    """y = log(sigmoid(x)) = -softplus(-x), finite for every finite x: the softplus
    kernels with beta = -1 and no threshold (max(z, 0) + log1p(exp(-|z|)) over -1, and
    the gradient sigmoid(-x)). Input: any shape."""

    kernel = "softplus"
    saves = "x"

    def _args(self):
        return (-1.0, float("inf"))


class Softsign(_Elementwise):
    """y = x / (1 + |x|). Input: any shape."""

    kernel = "softsign"
    saves = "x"


class Hardtanh(_Elementwise):
    """y = min(max(x, min_val), max_val); the gradient is 0 outside (min_val, max_val).
    Input: any shape. inplace is accepted (the output is a fresh array either way)."""

    kernel = "hardtanh"
    saves = "x"

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False, min_value=None,
                 max_value=None):
        super().__init__()
        name = type(self).__name__
        # PyTorch's deprecated names of min_val and max_val, taken with its FutureWarning
        if min_value is not None:
            warnings.warn("keyword argument `min_value` is deprecated and renamed to "
                          "`min_val`", FutureWarning, stacklevel=2)
            min_val = min_value
        if max_value is not None:
            warnings.warn("keyword argument `max_value` is deprecated and renamed to "
                          "`max_val`", FutureWarning, stacklevel=2)
            max_val = max_value
        check_number(name, "min_val", min_val, infinite_ok=True)
        check_number(name, "max_val", max_val, infinite_ok=True)
        if max_val <= min_val:   # PyTorch's module asserts it (its functional form not)
            raise AssertionValueError(f"{name}: expected min_val < max_val, got {min_val} "
                                      f"and {max_val}")
        self.min_val, self.max_val = min_val, max_val   # as given (PyTorch's attributes)
        self._take_inplace(inplace)

    def _args(self):
        name = type(self).__name__
        return (float_of(name, "min_val", self.min_val), float_of(name, "max_val", self.max_val))

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}" + self._inplace_repr(", ")


class ReLU6(Hardtanh):
    """y = min(max(x, 0), 6) (MobileNet's activation): Hardtanh(0, 6). Input: any shape."""

    def __init__(self, inplace=False):
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self):
        return self._inplace_repr()


class PReLU(Module):
    """y = x if x > 0 else a * x with a learned slope a (PyTorch's PReLU): one slope
    (num_parameters=1, any input), or one per channel (axis 1 of an (N, C, ...) input).
    ``weight``: the (num_parameters,) slopes, starting at ``init``.

    One slope runs the backend's leaky_relu kernels with it (its value read to the host
    each call); per-channel slopes, and the slopes' gradient (the sum of grad * x where
    x <= 0), are NumPy on the host.
    """

    def __init__(self, num_parameters=1, init=0.25, dtype=np.float32):
        super().__init__()
        check_positive_int("PReLU", "num_parameters", num_parameters,
                           negative=RuntimeValueError)
        check_number("PReLU", "init", init)
        self.num_parameters = int(num_parameters)
        self.init = init   # PyTorch's attribute
        weight = Parameter(np.empty(self.num_parameters, dtype))
        try:  # an init the dtype cannot hold is PyTorch's RuntimeError (was inf)
            _init.constant_(weight, init)
        except RuntimeValueError:
            raise RuntimeValueError(f"PReLU: init {init!r} cannot be converted to "
                                    f"{weight.data.dtype} without overflow") from None
        self.weight = weight
        self._x = None

    def reset_parameters(self):
        """PyTorch's: every slope back to init, in place."""
        _init.constant_(self.weight, self.init)

    def infer_shape(self, shape, dtype):
        shape = tuple(shape)
        if self.num_parameters > 1 and (len(shape) < 2 or shape[1] != self.num_parameters):
            raise RuntimeValueError(f"{self._where()}: expected {self.num_parameters} channels on "
                                    f"axis 1, got input of shape {shape}")
        self._check_dtype(dtype, self.weight.data.dtype)
        return shape

    def _slopes(self, ndim):
        """The slopes on the host, shaped to broadcast against an input of rank ndim."""
        a = _device.to_host(self.weight.data)
        if self.num_parameters == 1:
            return a.reshape(())
        return a.reshape((-1,) + (1,) * (ndim - 2))

    def _forward(self, x, buffered):
        self._x = x
        a = self._slopes(x.ndim)
        if self.num_parameters == 1:
            out = self._buffer("y", x.shape, x.dtype) if buffered else None
            return self._kernels().leaky_relu(x, float(a), out=out)
        host = _device.to_host(x)
        return _device.namespace_of(x).put(np.where(host > 0, host, a * host))

    def _backward(self, grad_out, buffered, need_grad_in):
        if nothing_to_compute(need_grad_in, self.weight):
            return None   # (frozen: PyTorch's backward neither computes nor touches it)
        x = self._x
        a = self._slopes(x.ndim)
        hx, hg = _device.to_host(x), _device.to_host(grad_out)
        if self.weight.requires_grad:   # (a frozen slope's gradient is not computed)
            axes = tuple(i for i in range(hx.ndim) if self.num_parameters == 1 or i != 1)
            # d/da: grad * x where x <= 0 (PyTorch's), summed per slope
            grad_a = np.where(hx > 0, hx.dtype.type(0), hx * hg).sum(axis=axes,
                                                                     dtype=np.float64)
            grad_a = np.asarray(grad_a, hx.dtype).reshape(self.num_parameters)
            _device.update_on_host(self.weight.grad, lambda g: np.add(g, grad_a, out=g))
        if not need_grad_in:
            return None
        if self.num_parameters == 1:
            out = self._buffer("grad_in", grad_out.shape, grad_out.dtype) if buffered else None
            return self._kernels().leaky_relu_backward(grad_out, x, float(a), out=out)
        return _device.namespace_of(grad_out).put(np.where(hx > 0, hg, a * hg))

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


def warn_implicit_dim(name, stacklevel):
    """PyTorch's deprecation warning for softmax, log_softmax or softmin (``name``) with
    dim=None."""
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call "
                  f"to include dim=X as an argument.", stacklevel=stacklevel + 1)


class Softmax(_Elementwise):
    """Softmax along axis ``dim`` of an input of any rank (PyTorch's semantics; dim=None
    is PyTorch's implicit choice: axis 0 for 0-D, 1-D and 3-D inputs, 1 otherwise; a 0-D
    input, dim 0 or -1, is one row of one value).

    The row kernels run on the input viewed as (rows, C) when dim is the last axis (no
    copy). Along another axis of a host array (the channels of (N, C, H, W)), NumPy's
    reductions run along it on the input as it lies (``_softmax_along``): the row
    kernels would need the axis moved last in a transposing copy and back, each way,
    which took 2-4 times as long (softmax over the 21 channels of 32x21x64x64: 11.8 ms
    against 6.2); on the GPU the axis is moved.
    """

    kernel = "softmax"

    def __init__(self, dim=None):
        super().__init__()
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, numbers.Integral)):
            raise TypeValueError(f"{type(self).__name__}: expected dim to be an int or None, "
                                 f"got {dim!r}")
        self.dim = None if dim is None else int(dim)
        self._axis_used = None  # the softmax axis of the last forward
        self._along_used = False  # whether it ran _softmax_along

    def extra_repr(self):
        return f"dim={self.dim}"

    def _axis(self, ndim):
        if self.dim is None:
            return 0 if ndim in (0, 1, 3) else 1
        return self.dim + max(ndim, 1) if self.dim < 0 else self.dim

    def infer_shape(self, shape, dtype):
        shape = tuple(shape)
        if not 0 <= self._axis(len(shape)) < max(len(shape), 1):
            raise IndexValueError(f"{self._where()}: dim {self.dim} is out of range for an input "
                                  f"of shape {shape}")
        if self.dim is None:   # PyTorch's warning, each forward
            warn_implicit_dim(self.kernel if type(self) is not Softmin else "softmin", 4)
        return shape

    def _along(self, x, axis):
        """True when the forward runs along axis in place (_softmax_along)."""
        return axis < x.ndim - 1 and type(x) is np.ndarray and x.shape[axis] > 0

    def _forward(self, x, buffered):
        axis = self._axis(x.ndim)
        self._axis_used = axis
        self._along_used = self._along(x, axis)
        if self._along_used:
            self._saved = y = _softmax_along(x, axis, self.kernel == "log_softmax")
            return y
        rows, shape = _device.rows_along(x.reshape(1) if x.ndim == 0 else x, axis)
        y = _device.from_rows(super()._forward(rows, buffered), shape, axis)
        return y.reshape(x.shape)

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        axis = self._axis_used
        if self._along_used:   # (as the forward ran: an ndarray subclass input did not)
            return _softmax_along_backward(grad_out, self._saved, axis,
                                           self.kernel == "log_softmax")
        g = grad_out.reshape(1) if grad_out.ndim == 0 else grad_out
        rows, shape = _device.rows_along(g, axis)
        grad_in = _device.from_rows(super()._backward(rows, buffered, need_grad_in), shape,
                                    axis)
        return grad_in.reshape(grad_out.shape)


def _softmax_along(x, axis, log):
    """softmax (log: log_softmax) of the host array x along axis, the reference kernels'
    formulas (kernels/reference/activations.py) with the axis as given; x: any shape."""
    with np.errstate(invalid="ignore"):   # (inf - inf: NaN, as in the row kernels)
        shifted = np.subtract(x, x.max(axis=axis, keepdims=True))
    if log:
        shifted -= np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        return shifted
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=axis, keepdims=True)
    return shifted


def _softmax_along_backward(grad_out, y, axis, log):
    """The gradient of _softmax_along given its output y: y (g - sum(g y)), or for the
    log-softmax g - exp(y) sum(g), sums along axis."""
    if log:
        return np.subtract(grad_out, np.exp(y) * grad_out.sum(axis=axis, keepdims=True))
    return np.multiply(y, grad_out - (grad_out * y).sum(axis=axis, keepdims=True))


class LogSoftmax(Softmax):
    """log(softmax(x)) along axis dim (as Softmax's), computed as x - logsumexp(x)
    (finite where the probability underflows); pair it with NLLLoss."""

    kernel = "log_softmax"


class Softmin(Softmax):
    """softmax(-x) along axis dim (as Softmax's): the softmax kernels on the negated
    input (one extra pass each way; a device array's negation goes through the host)."""

    def _forward(self, x, buffered):
        return super()._forward(_device.scaled(x, -1, copy=True), buffered)

    def _backward(self, grad_out, buffered, need_grad_in):
        grad_in = super()._backward(grad_out, buffered, need_grad_in)
        return None if grad_in is None else _device.scaled(grad_in, -1)


class Identity(Module):
    """y = x (the same array). Input: any shape. Any arguments are ignored (PyTorch's)."""

    fused_name = "identity"

    def __init__(self, *args, **kwargs):
        super().__init__()

    @property
    def passthrough(self):
        return True

    def _forward(self, x, buffered):
        return x

    def _backward(self, grad_out, buffered, need_grad_in):
        return grad_out if need_grad_in else None
