"""Parameter initialisation in place, PyTorch's ``torch.nn.init`` functions and formulas.

Each function takes a Parameter (its ``.data`` is filled) or an array, fills it in
place from fastnn's generator (``fastnn.manual_seed`` fixes the draws) and returns it.
A parameter on the GPU is filled on the host and copied over. The random ones take
PyTorch's ``generator`` argument as an ``np.random.Generator`` to draw from instead.
The names without the trailing underscore (``normal``, ``xavier_uniform``, ...) are
PyTorch's deprecated aliases: they warn (FutureWarning) and call the new function.

Fans follow PyTorch: for a weight of shape (out, in, *kernel), fan_in = in * prod(kernel)
and fan_out = out * prod(kernel); a 1-D array has no fans (an error, as in PyTorch).
"""
import math
import numbers
import warnings

import numpy as np

from .. import device as _device
from .. import random as _random
from ..errors import DtypeError, RuntimeValueError
from .module import Parameter

_GAINS = {"linear": 1.0, "identity": 1.0, "conv1d": 1.0, "conv2d": 1.0, "conv3d": 1.0,
          "conv_transpose1d": 1.0, "conv_transpose2d": 1.0, "conv_transpose3d": 1.0,
          "sigmoid": 1.0, "tanh": 5.0 / 3, "relu": math.sqrt(2.0), "selu": 0.75}


# an empty or negative range for a random fill (uniform_'s a > b, normal_'s std < 0)
InitRangeError = RuntimeValueError


def calculate_gain(nonlinearity, param=None):
    """PyTorch's recommended gain for a nonlinearity: 1 (linear, identity, conv1d/2d/3d,
    conv_transpose1d/2d/3d, sigmoid), 5/3
    (tanh), sqrt(2) (relu), sqrt(2 / (1 + slope**2)) (leaky_relu, slope param or 0.01),
    3/4 (selu)."""
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, numbers.Real):
            raise ValueError(f"calculate_gain: negative_slope {slope!r} is not a number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if not isinstance(nonlinearity, str) or nonlinearity not in _GAINS:
        raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; "
                         f"expected one of {sorted(_GAINS) + ['leaky_relu']}")
    return _GAINS[nonlinearity]


def _calculate_fan_in_and_fan_out(array):
    shape = _array(array, "fans").shape
    if len(shape) < 2:
        raise ValueError(f"init: fan in and fan out need an array of at least 2 dimensions, "
                         f"got shape {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fan(array, mode):
    mode = mode.lower() if isinstance(mode, str) else mode  # (PyTorch's: 'FAN_IN' too)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode {mode!r} not supported, expected 'fan_in' or 'fan_out'")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(array)
    return fan_in if mode == "fan_in" else fan_out


_calculate_correct_fan = _fan  # PyTorch's private name, which some user code calls


def reset_affine(weight, bias):
    """PyTorch's reset_parameters of the norm layers, in place: weight 1, bias 0 (either
    may be None)."""
    if weight is not None:
        ones_(weight)
    if bias is not None:
        zeros_(bias)


def reset_fan_in_uniform(weight, bias):
    """PyTorch's reset_parameters of Linear and the convolutions, in place: weight, then
    bias, from U(-b, b), b = 1 / sqrt(fan_in) (kaiming_uniform_ with a = sqrt(5)), fan_in
    = weight.shape[1] times the kernel volume; the draws the constructors make."""
    fan_in, _ = _calculate_fan_in_and_fan_out(weight)
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    uniform_(weight, -bound, bound)
    if bias is not None:
        uniform_(bias, -bound, bound)


# the fills that draw nothing, which PyTorch also runs on integer, bool and complex tensors
_ANY_DTYPE = ("constant_", "zeros_", "ones_", "eye_", "dirac_")


def _array(target, where):
    data = target.data if isinstance(target, Parameter) else target
    kinds = "fcuib" if where in _ANY_DTYPE or where == "fans" else "f"
    what = "an array" if where in _ANY_DTYPE else "a float array"
    if not _device.is_array(data):
        raise TypeError(f"init.{where}: expected a Parameter or {what}, "
                        f"got {type(target).__name__}")
    if np.dtype(data.dtype).kind not in kinds:
        # an array of another dtype: fastnn's DtypeError (a TypeError and a ValueError),
        # also the RuntimeError (NotImplementedError) PyTorch's random fills raise
        raise DtypeError(f"init.{where}: expected a Parameter or {what}, got "
                         f"{type(target).__name__} of dtype {np.dtype(data.dtype)}")
    if where != "fans" and isinstance(data, np.ndarray) and not data.flags.writeable:
        # before anything is drawn (NumPy's 'assignment destination is read-only' came
        # after the draw and named nothing)
        raise ValueError(f"init.{where}: expected a writeable array (the fill is in "
                         f"place), got a read-only one")
    return data


def _fill(target, where, values):
    """Write values (a NumPy array or scalar) into the target's array in place; target."""
    data = _array(target, where)
    if _device.is_device_array(data):
        host = np.empty(data.shape, data.dtype)
        host[...] = values
        _device.namespace_of(data).copy_into(data, host)
    else:
        data[...] = values
    return target


def _shape(target, where):
    return _array(target, where).shape


def _generator(where, generator):
    """The generator to draw from: fastnn's (None) or the caller's np.random.Generator."""
    if generator is None:
        return _random.generator()
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"init.{where}: expected generator to be None or an "
                        f"np.random.Generator, got {type(generator).__name__}")
    return generator


def _empty_warning(target, where):
    """PyTorch's no-op on an array with a zero-length axis (kaiming_*): True after warning."""
    if 0 in _shape(target, where):
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return True
    return False


def _python_number(value):
    """A NumPy scalar as the Python int or float it holds (others as they are), so that
    comparing it with a dtype's range casts nothing down (np.float32(1) <= 1.8e308
    overflowed NumPy's cast)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return value


def _check_uniform_bounds(a, b, dtype, where):
    """PyTorch's checks of uniform_'s range, in its order: a and b finite numbers
    within the dtype's range (not NaN), a <= b, and b - a within it too (InitRangeError,
    PyTorch's RuntimeError)."""
    big = float(np.finfo(dtype).max)
    a, b = _python_number(a), _python_number(b)
    for name, value in (("from", a), ("to", b)):
        if not -big <= value <= big:
            raise InitRangeError(f"init.{where}: {name}={value!r} is out of bounds for "
                                 f"{np.dtype(dtype).name}")
    if a > b:
        raise InitRangeError(f"init.{where}: expected a <= b, got a={a!r} and b={b!r}")
    if b - a > big:
        raise InitRangeError(f"init.{where}: expected b - a <= {big!r} (the largest "
                             f"{np.dtype(dtype).name}), got a={a!r} and b={b!r}")


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with U(a, b): a <= b, both finite and within the array's dtype, and b - a
    too, as PyTorch requires (its RuntimeError, InitRangeError, otherwise).
    tensor: a Parameter or float array of any shape; returned."""
    data = _array(tensor, "uniform_")
    _check_uniform_bounds(a, b, data.dtype, "uniform_")
    return _fill(tensor, "uniform_",
                 _generator("uniform_", generator).uniform(a, b, data.shape))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with N(mean, std**2) (std >= 0). tensor: a Parameter or float array of any
    shape; returned."""
    shape = _shape(tensor, "normal_")
    if not std >= 0:  # (NaN too, as PyTorch's)
        raise InitRangeError(f"init.normal_: expected std >= 0, got {std!r}")
    return _fill(tensor, "normal_", _generator("normal_", generator).normal(mean, std, shape))


def _check_fill_value(val, dtype, where):
    """The value PyTorch's fill_ writes into an array of dtype: a number (a 0-d array
    too); one the dtype cannot hold is PyTorch's RuntimeError ('value cannot be converted
    ... without overflow'), not an infinity (a finite float beyond a float dtype's
    range) or NumPy's OverflowError (an integer dtype; NaN and infinities included; a
    negative int wraps into an unsigned dtype when its magnitude fits, as PyTorch's two's
    complement), nor a complex value with an imaginary part outside a complex dtype.
    A float is truncated toward 0 into an integer dtype; bool takes any number."""
    if isinstance(val, np.ndarray) and val.ndim == 0:
        val = val[()]
    if isinstance(val, (bool, np.bool_)):
        return bool(val)
    if not isinstance(val, numbers.Number):
        raise TypeError(f"init.{where}: expected val to be a number, got "
                        f"{type(val).__name__}")
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return val

    def overflow():
        return RuntimeValueError(f"init.{where}: value {val!r} cannot be converted to "
                                 f"{dtype.name} without overflow")

    value = val
    if not isinstance(value, numbers.Real) and dtype.kind != "c":
        if value.imag != 0:
            raise overflow()
        value = value.real
    if dtype.kind in "fc":
        big = float(np.finfo(dtype).max)
        parts = (value,) if isinstance(value, numbers.Real) else (value.real, value.imag)
        # (Python numbers, so no NumPy scalar casts big down: exact for any int too)
        parts = [int(v) if isinstance(v, numbers.Integral) else float(v) for v in parts]
        if any(not (isinstance(v, float) and not math.isfinite(v)) and not -big <= v <= big
               for v in parts):
            raise overflow()
        return value
    info = np.iinfo(dtype)
    if isinstance(value, numbers.Integral):
        whole = int(value)
        if info.min <= whole <= info.max:
            return whole
        if dtype.kind == "u" and -info.max <= whole < 0:
            return whole % (info.max + 1)
        raise overflow()
    if math.isfinite(value) and info.min <= value <= info.max:  # (PyTorch's test)
        return int(value)
    raise overflow()


def constant_(tensor, val):
    """Fill with val, converted to the array's dtype as PyTorch's fill_: a float
    truncated toward 0 for an integer array; a value the dtype cannot hold (1e40 for
    float32, 300 or NaN for uint8) is PyTorch's RuntimeError (RuntimeValueError).
    tensor: a Parameter or array of any shape and dtype; returned."""
    data = _array(tensor, "constant_")
    return _fill(tensor, "constant_", _check_fill_value(val, data.dtype, "constant_"))


def zeros_(tensor):
    """Fill with 0. tensor: a Parameter or array of any shape and dtype; returned."""
    return _fill(tensor, "zeros_", 0)


def ones_(tensor):
    """Fill with 1. tensor: a Parameter or array of any shape and dtype; returned."""
    return _fill(tensor, "ones_", 1)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Glorot: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)). tensor: a Parameter
    or float array of 2 or more dimensions, (out, in, *kernel) for the fans; returned."""
    _array(tensor, "xavier_uniform_")  # (its dtype and writeability checked by name)
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """Glorot: N(0, std**2), std = gain * sqrt(2 / (fan_in + fan_out)). tensor: as
    xavier_uniform_'s; returned."""
    _array(tensor, "xavier_normal_")  # (its dtype and writeability checked by name)
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He: U(-bound, bound), bound = gain * sqrt(3 / fan) (gain of nonlinearity with
    slope a). PyTorch's Linear/Conv2d default is a = sqrt(5). An array with a
    zero-length axis is left as it is, with PyTorch's warning. tensor: a Parameter or
    float array of 2 or more dimensions, (out, in, *kernel) for the fans (mode
    'fan_in' or 'fan_out'); returned."""
    if _empty_warning(tensor, "kaiming_uniform_"):
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He: N(0, std**2), std = gain / sqrt(fan). An array with a zero-length axis is
    left as it is, with PyTorch's warning. tensor: as kaiming_uniform_'s; returned."""
    if _empty_warning(tensor, "kaiming_normal_"):
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std, generator)


def eye_(tensor):
    """Fill a 2-D array with the identity matrix (ones on the main diagonal, zeros
    elsewhere; a Linear layer then passes as many inputs through as it can). tensor: a
    Parameter or array of shape (rows, cols); returned."""
    shape = _shape(tensor, "eye_")
    if len(shape) != 2:
        raise ValueError(f"init.eye_: Only tensors with 2 dimensions are supported, got "
                         f"shape {shape}")
    return _fill(tensor, "eye_", np.eye(*shape))


def dirac_(tensor, groups=1):
    """Fill a 3-, 4- or 5-D convolution weight (out, in, *kernel) with the Dirac delta:
    zeros but a 1 at the kernel's centre (index size // 2 along each kernel axis)
    joining output channel d of each of the groups to input channel d, for d below
    min(out / groups, in), so the convolution passes its input channels through.
    tensor: a Parameter or array of that shape; returned."""
    shape = _shape(tensor, "dirac_")
    if len(shape) not in (3, 4, 5):
        raise ValueError(f"init.dirac_: Only tensors with 3, 4, or 5 dimensions are "
                         f"supported, got shape {shape}")
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
        raise ValueError(f"init.dirac_: expected groups to be a positive int, got {groups!r}")
    if shape[0] % groups:
        raise ValueError(f"init.dirac_: dim 0 must be divisible by groups, got dim 0 of "
                         f"size {shape[0]} and groups {groups}")
    per_group = shape[0] // groups
    channels = np.arange(min(per_group, shape[1]))
    values = np.zeros(shape)
    centre = tuple(size // 2 for size in shape[2:])
    for g in range(int(groups)):
        values[(g * per_group + channels, channels) + centre] = 1
    return _fill(tensor, "dirac_", values)


def orthogonal_(tensor, gain=1, generator=None):
    """Fill with a (semi-)orthogonal matrix times gain (Saxe et al. 2013): the array seen
    as (rows, cols) = (shape[0], the product of the rest) gets orthonormal rows (rows <=
    cols) or columns (rows >= cols), the Q of the QR factorisation of a standard normal
    draw with its signs fixed by R's diagonal (uniform over the orthogonal group).
    The factorisation runs in float64 whatever the array's dtype. tensor: a Parameter
    or float array of 2 or more dimensions; returned."""
    shape = _shape(tensor, "orthogonal_")
    if len(shape) < 2:
        raise ValueError(f"init.orthogonal_: Only tensors with 2 or more dimensions are "
                         f"supported, got shape {shape}")
    rows = shape[0]
    cols = math.prod(shape[1:])
    if rows * cols == 0:
        return tensor
    flat = _generator("orthogonal_", generator).standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, "orthogonal_", (q * gain).reshape(shape))


def sparse_(tensor, sparsity, std=0.01, generator=None):
    """Fill a 2-D array with N(0, std**2) values and then zeros at ceil(sparsity * rows)
    randomly chosen rows of each column (Martens 2010); sparsity >= 1 zeros every row.
    tensor: a Parameter or float array of shape (rows, cols); returned."""
    shape = _shape(tensor, "sparse_")
    if len(shape) != 2:
        raise ValueError(f"init.sparse_: Only tensors with 2 dimensions are supported, got "
                         f"shape {shape}")
    if isinstance(sparsity, bool) or not isinstance(sparsity, numbers.Real) \
            or math.isnan(sparsity) or sparsity < 0:
        raise ValueError(f"init.sparse_: expected sparsity to be a number >= 0, got "
                         f"{sparsity!r}")
    if not std >= 0:  # (NaN too, as PyTorch's normal_; NumPy's 'scale < 0' otherwise)
        raise InitRangeError(f"init.sparse_: expected std >= 0, got {std!r}")
    rows, cols = shape
    zeros = min(math.ceil(sparsity * rows), rows)
    gen = _generator("sparse_", generator)
    values = gen.normal(0.0, std, shape)
    if zeros and cols:
        # each column's first `zeros` rows of a random permutation of the rows
        picked = np.argsort(gen.random(shape), axis=0)[:zeros]
        np.put_along_axis(values, picked, 0.0, axis=0)
    return _fill(tensor, "sparse_", values)


def _norm_cdf(x):
    return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0


def _truncated_standard_normal(gen, size, lo, hi):
    """size draws of N(0, 1) conditioned on [lo, hi] (lo < hi, either may be infinite),
    exactly, by rejection from the proposal that suits the interval: the normal itself
    when it keeps more than 30% of its draws (PyTorch's rule); otherwise the uniform on
    [lo, hi] under the density's peak (PyTorch's other proposal) where that accepts at
    least 30%, else (a wide interval out in one tail) the exponential proposal of
    Robert (1995), shifted to the bound nearer 0, which accepts at least ~60%."""
    out = np.empty(size)
    pending = np.arange(size)
    mass = _norm_cdf(hi) - _norm_cdf(lo)
    mode = max(lo, min(0.0, hi))
    width = hi - lo
    uniform_rate = 0.0  # the uniform proposal's acceptance rate, by the midpoint rule
    if math.isfinite(width):
        z = lo + width * (np.arange(64) + 0.5) / 64
        with np.errstate(over="ignore"):
            uniform_rate = float(np.exp(-0.5 * (z * z - mode * mode)).mean())
    if mass > 0.3:
        def draw(n):
            return gen.standard_normal(n), None  # None: kept when inside [lo, hi]
    elif uniform_rate >= 0.3:
        def draw(n):
            z = gen.uniform(lo, hi, n)
            return z, np.log(gen.random(n)) <= -0.5 * (z * z - mode * mode)
    else:
        sign, edge, far = (1.0, lo, hi) if lo >= 0 else (-1.0, -hi, -lo)
        rate = (edge + math.sqrt(edge * edge + 4.0)) / 2.0

        def draw(n):
            z = edge + gen.exponential(1.0 / rate, n)
            accept = np.log(gen.random(n)) <= -0.5 * (z - rate) ** 2
            return sign * z, accept & (z <= far)
    while pending.size:
        z, accept = draw(pending.size)
        inside = (z >= lo) & (z <= hi)
        accept = inside if accept is None else accept & inside
        out[pending[accept]] = z[accept]
        pending = pending[~accept]
    return out


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Fill with N(mean, std**2) truncated to [a, b]: the normal's draws conditioned on
    lying in [a, b] (bounds taken in the array's dtype, so every stored value lies in
    them), exact also far out in a tail. Warns, as PyTorch does, when mean is more than
    2 std outside [a, b]; a == b fills with a. A NaN bound, a > b, or [a, b] wholly
    beyond the dtype's range is PyTorch's RuntimeError (InitRangeError). tensor: a
    Parameter or float array of any shape; returned."""
    where = "trunc_normal_"
    data = _array(tensor, where)
    for name, value in (("mean", mean), ("std", std), ("a", a), ("b", b)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"init.{where}: expected {name} to be a number, got {value!r}")
        if math.isnan(value):  # (a NaN bound: PyTorch's RuntimeError 'out of bounds')
            error = InitRangeError if name in ("a", "b") else ValueError
            raise error(f"init.{where}: expected {name} to be a number, got {value!r}")
    mean, std, a, b = (_python_number(v) for v in (mean, std, a, b))
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise ValueError(f"init.{where}: expected a finite mean and a finite std > 0, got "
                         f"mean {mean!r} and std {std!r}")
    if a > b:
        raise InitRangeError(f"init.{where}: expected a <= b, got a={a!r} and b={b!r}")
    big = float(np.finfo(data.dtype).max)
    if a > big or b < -big:  # every value beyond the dtype (it stored infinities)
        raise InitRangeError(f"init.{where}: [a, b] = [{a!r}, {b!r}] lies outside the "
                             f"range of {np.dtype(data.dtype).name}")
    if (mean < a - 2 * std) or (mean > b + 2 * std):
        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
                      "The distribution of values may be incorrect.", stacklevel=2)
    gen = _generator(where, generator)
    dtype = np.dtype(data.dtype).type
    # (a bound beyond the dtype's range is an infinite one there, without NumPy's
    # overflow warning)
    lo = -math.inf if a < -big else float(dtype(a))
    hi = math.inf if b > big else float(dtype(b))
    if lo == hi:
        return _fill(tensor, where, lo)
    z = _truncated_standard_normal(gen, math.prod(data.shape), (lo - mean) / std,
                                   (hi - mean) / std)
    # rounding to the dtype is monotone, so this clip changes nothing but the last ulp
    # that mean + std * z may spill over a bound
    values = np.clip(mean + std * z, lo, hi).astype(dtype)
    return _fill(tensor, where, values.reshape(data.shape))


def _make_deprecate(method):
    """PyTorch's deprecated alias of method without its trailing underscore."""
    new_name = method.__name__
    old_name = new_name[:-1]

    def deprecated_init(*args, **kwargs):
        warnings.warn(f"`nn.init.{old_name}` is now deprecated in favor of "
                      f"`nn.init.{new_name}`.", FutureWarning, stacklevel=2)
        return method(*args, **kwargs)

    deprecated_init.__doc__ = (f"{old_name}(...)\n\nDeprecated in favor of "
                               f"``{new_name}`` (a FutureWarning, then the same call).")
    deprecated_init.__name__ = deprecated_init.__qualname__ = old_name
    return deprecated_init


uniform = _make_deprecate(uniform_)
normal = _make_deprecate(normal_)
constant = _make_deprecate(constant_)
eye = _make_deprecate(eye_)
dirac = _make_deprecate(dirac_)
xavier_uniform = _make_deprecate(xavier_uniform_)
xavier_normal = _make_deprecate(xavier_normal_)
kaiming_uniform = _make_deprecate(kaiming_uniform_)
kaiming_normal = _make_deprecate(kaiming_normal_)
orthogonal = _make_deprecate(orthogonal_)
sparse = _make_deprecate(sparse_)
