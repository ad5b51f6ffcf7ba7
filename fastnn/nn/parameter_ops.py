"""Array arithmetic on ``Parameter`` for code ported from PyTorch, where a parameter is a
tensor: ``p.item()``, ``p[0, :]``, ``p.T``, ``p.tolist()``, ``float(p)``, ``int(p)``, ``2 * p``,
``x @ p.T + b`` (results are NumPy arrays of the values, as PyTorch's are plain tensors),
and the in-place forms ``p -= lr * p.grad``, ``p += ...``, ``p *= ...``, ``p /= ...``
and ``p[...] = v``, which change ``p.data`` in place (the same array, so an optimizer's
flat buffer stays attached) and keep ``p`` a Parameter. Without them Python fell back to
``p = p - ...``: the loop variable of PyTorch's hand-written SGD update (``for param in
model.parameters(): param -= learning_rate * param.grad``) became a new array and the
model never changed.

The methods a user reaches for on an array or a tensor are there too, with NumPy's
meaning where NumPy has the name (``ARRAY_METHODS``: ``p.mean()``, ``p.std()`` (ddof 0),
``p.max(axis=0)``, ``p.reshape(-1)``, ``p.copy()``...; the reductions also take
PyTorch's ``dim=`` and ``keepdim=`` where both libraries mean the same), and PyTorch's
where only PyTorch has it: ``p.abs()``, ``p.t()``, ``p.view(...)``, ``p.norm(...)``,
``p.transpose(0, 1)`` (two axes swap, as PyTorch's; other calls are NumPy's),
``p.clamp(...)``, the comparisons ``p > 0`` (NumPy bool arrays) and the in-place
``add_``/``sub_`` (with ``alpha``), ``mul_``, ``div_``, ``clamp_``, ``uniform_`` and
``normal_``, which return the Parameter. Results are NumPy arrays: views of ``data``
on the CPU where NumPy's method gives one (``p.reshape(-1)[0] = 1`` writes the
parameter, as PyTorch's view), computed from a host copy for a parameter on the GPU.
"""
import operator

import numpy as np

from .. import device as _device
from ..errors import RuntimeValueError


def _values(other):
    """A Parameter's values or a device array on the host; anything else as given."""
    if isinstance(other, ParameterArithmetic):
        return other.numpy()
    return _device.to_host(other) if _device.is_device_array(other) else other


def _binary(op, reflected=False):
    if reflected:
        def method(self, other):
            return op(_values(other), self.numpy())
    else:
        def method(self, other):
            return op(self.numpy(), _values(other))
    return method


def _inplace(ufunc):
    def method(self, other):
        other = _values(other)
        # same_kind casting: a float64 update of float32 data stays float32, as PyTorch's
        _device.update_on_host(self.data, lambda d: ufunc(d, other, out=d))
        return self
    return method


#: NumPy ndarray methods a Parameter answers with NumPy's meaning, on its values
ARRAY_METHODS = ("all", "any", "argmax", "argmin", "argsort", "astype", "clip", "copy",
                 "cumprod", "cumsum", "dot", "flatten", "max", "mean", "min", "nonzero",
                 "prod", "ravel", "repeat", "reshape", "round", "squeeze", "std", "sum",
                 "swapaxes", "var")
#: those of them that also take PyTorch's dim= and keepdim= for NumPy's axis= and
#: keepdims=, where the two libraries' methods mean the same (not max/min, whose dim=
#: gives PyTorch (values, indices), nor std/var, whose PyTorch default is unbiased)
_DIM_METHODS = frozenset(("all", "any", "argmax", "argmin", "cumprod", "cumsum", "mean",
                          "prod", "sum"))


#: what PyTorch's dim= means for the NumPy methods that do not take it
_NOT_DIM = {
    "max": "PyTorch's max(dim=) gives (values, indices): p.max(axis=d) gives the values, "
           "p.argmax(axis=d) the indices",
    "min": "PyTorch's min(dim=) gives (values, indices): p.min(axis=d) gives the values, "
           "p.argmin(axis=d) the indices",
    "std": "PyTorch's std(dim=) is unbiased: p.std(axis=d, ddof=1) is it (NumPy's default "
           "ddof is 0)",
    "var": "PyTorch's var(dim=) is unbiased: p.var(axis=d, ddof=1) is it (NumPy's default "
           "ddof is 0)",
}


def _array_method(name):
    takes_dim = name in _DIM_METHODS

    def method(self, *args, **kwargs):
        if "dim" in kwargs or "keepdim" in kwargs:
            if not takes_dim:
                raise TypeError(f"Parameter.{name} is NumPy's ndarray.{name} (axis=, "
                                f"keepdims=), which takes no dim= or keepdim="
                                + (f": {_NOT_DIM[name]}" if name in _NOT_DIM else ""))
            kwargs = {_NUMPY_KEYWORDS.get(k, k): v for k, v in kwargs.items()}
        return getattr(self.numpy(), name)(*args, **kwargs)
    method.__name__ = method.__qualname__ = name
    method.__doc__ = (f"NumPy's ndarray.{name} of the values (``p.numpy().{name}(...)``)"
                      + (", dim= and keepdim= taken for axis= and keepdims=." if takes_dim
                         else "."))
    return method


_NUMPY_KEYWORDS = {"dim": "axis", "keepdim": "keepdims"}


class ParameterArithmetic:
    """Mixin of Parameter: NumPy arithmetic on its values (see the module docstring)."""

    __slots__ = ()

    __add__, __radd__ = _binary(operator.add), _binary(operator.add, True)
    __sub__, __rsub__ = _binary(operator.sub), _binary(operator.sub, True)
    __mul__, __rmul__ = _binary(operator.mul), _binary(operator.mul, True)
    __truediv__, __rtruediv__ = _binary(operator.truediv), _binary(operator.truediv, True)
    __pow__, __rpow__ = _binary(operator.pow), _binary(operator.pow, True)
    __matmul__, __rmatmul__ = _binary(operator.matmul), _binary(operator.matmul, True)
    __iadd__, __isub__ = _inplace(np.add), _inplace(np.subtract)
    __imul__, __itruediv__ = _inplace(np.multiply), _inplace(np.true_divide)

    def __neg__(self):
        return -self.numpy()

    def __pos__(self):
        return +self.numpy()

    def __abs__(self):
        return abs(self.numpy())

    def __getitem__(self, index):
        """The values at index: a view of ``data`` on the CPU, as PyTorch's view; NumPy
        values from a host copy on the GPU (a device array's slice has no arithmetic)."""
        return self.numpy()[index]

    def __setitem__(self, index, value):
        """Write value into ``data`` at index, in place."""
        value = _values(value)
        _device.update_on_host(self.data, lambda d: d.__setitem__(index, value))

    @property
    def T(self):
        """The transposed values (a view of ``data`` on the CPU, NumPy values on the
        GPU)."""
        return self.numpy().T

    def item(self):
        """The value of a one-element parameter as a Python float."""
        values = self.numpy()
        if values.size != 1:   # (PyTorch's RuntimeError)
            raise RuntimeValueError(f"a Parameter with {values.size} elements cannot be "
                                    f"converted to a Python number")
        return values.item()

    def _only_value(self):
        values = self.numpy()
        if values.size != 1:   # (PyTorch's float(tensor), int(tensor): a ValueError)
            raise ValueError("only one element parameters can be converted to Python "
                             "scalars")
        return values.item()

    def __float__(self):
        return float(self._only_value())

    def __int__(self):
        """int(p) of a one-element parameter: its value truncated toward zero, as
        PyTorch's int(tensor) (NaN and inf raise Python's own errors)."""
        return int(self._only_value())

    def tolist(self):
        """The values as (nested) Python lists."""
        return self.numpy().tolist()

    # (== and != stay identity: parameters are looked up in lists and dicts)
    __lt__, __le__ = _binary(operator.lt), _binary(operator.le)
    __gt__, __ge__ = _binary(operator.gt), _binary(operator.ge)

    @property
    def nbytes(self):
        return self.data.nbytes

    @property
    def itemsize(self):
        return self.data.dtype.itemsize

    def abs(self):
        """|values| (PyTorch's ``abs()``; ``abs(p)`` too)."""
        return abs(self.numpy())

    def transpose(self, *axes):
        """The values with their axes permuted, NumPy's ``transpose(axes)`` (none given:
        reversed), except that two axes swap those two, as PyTorch's ``transpose(0, 1)``
        (NumPy's would read them as the whole permutation: the identity of a 2-D
        parameter, an error for any other). A view of ``data`` on the CPU."""
        values = self.numpy()
        if len(axes) == 2 and all(isinstance(a, (int, np.integer)) for a in axes):
            return values.swapaxes(*axes)
        return values.transpose(*axes)

    def t(self):
        """The transposed values of a parameter of at most 2 dimensions (PyTorch's
        ``t()``: a view of ``data`` on the CPU)."""
        if self.ndim > 2:   # (PyTorch's RuntimeError)
            raise RuntimeValueError(f"t() expects a parameter of at most 2 dimensions, "
                                    f"got {self.ndim}")
        return self.numpy().T

    def view(self, *shape):
        """The values in another shape (PyTorch's ``view(2, -1)`` or ``view((2, -1))``: a
        view of ``data`` on the CPU); ``view(dtype)`` reinterprets their bytes, as both
        NumPy's and PyTorch's."""
        values = self.numpy()
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer, tuple, list)):
            return values.view(shape[0])
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) \
            else shape
        view = values.view()
        view.shape = shape   # (never a copy: data is C-contiguous)
        return view

    def clamp(self, min=None, max=None):
        """The values clipped to [min, max] (PyTorch's ``clamp``; NumPy's ``clip``)."""
        return np.clip(self.numpy(), min, max)

    def norm(self, p="fro", dim=None, keepdim=False):
        """PyTorch's ``norm()``: the p-norm of the values as one vector, or along dim (an
        int or a tuple); p a number, inf, -inf or 'fro' (2). Returns a NumPy scalar or
        array of the parameter's dtype."""
        values = self.numpy()
        if isinstance(p, str):
            if p != "fro":   # (PyTorch's 'nuc' and others: left to torch.linalg)
                raise ValueError(f"norm: expected p to be a number or 'fro', got {p!r}")
            p = 2
        if isinstance(dim, list):
            dim = tuple(dim)
        magnitude = np.abs(values)
        if p == np.inf:
            result = magnitude.max(axis=dim, keepdims=keepdim)
        elif p == -np.inf:
            result = magnitude.min(axis=dim, keepdims=keepdim)
        elif p == 0:
            result = np.count_nonzero(values, axis=dim, keepdims=keepdim)
        elif p == 1:
            result = magnitude.sum(axis=dim, keepdims=keepdim)
        elif p == 2:
            result = np.sqrt(np.sum(magnitude * magnitude, axis=dim, keepdims=keepdim))
        else:
            result = np.sum(magnitude ** p, axis=dim, keepdims=keepdim) ** (1.0 / p)
        return np.asarray(result, dtype=values.dtype)[()]

    def add_(self, other, alpha=1):
        """values += alpha * other, in place (PyTorch's ``add_``); self."""
        other = _values(other)
        return self.__iadd__(other if alpha == 1 else np.multiply(other, alpha))

    def sub_(self, other, alpha=1):
        """values -= alpha * other, in place (PyTorch's ``sub_``); self."""
        other = _values(other)
        return self.__isub__(other if alpha == 1 else np.multiply(other, alpha))

    def mul_(self, other):
        """values *= other, in place; self."""
        return self.__imul__(other)

    def div_(self, other):
        """values /= other, in place; self."""
        return self.__itruediv__(other)

    def clamp_(self, min=None, max=None):
        """The values clipped to [min, max] in place (PyTorch's ``clamp_``); self."""
        if min is None and max is None:   # (PyTorch's RuntimeError)
            raise RuntimeValueError("clamp_: at least one of min or max must not be None")
        _device.update_on_host(self.data, lambda d: np.clip(d, min, max, out=d))
        return self

    def uniform_(self, a=0.0, b=1.0, generator=None):
        """Fill with U(a, b) from fastnn's seeded generator, in place (PyTorch's
        ``uniform_``, ``nn.init.uniform_``); self."""
        from . import init   # (init imports the module that imports this one)
        init.uniform_(self, a, b, generator=generator)
        return self

    def normal_(self, mean=0.0, std=1.0, generator=None):
        """Fill with N(mean, std**2) from fastnn's seeded generator, in place; self."""
        from . import init
        init.normal_(self, mean, std, generator=generator)
        return self


for _name in ARRAY_METHODS:
    setattr(ParameterArithmetic, _name, _array_method(_name))
del _name
