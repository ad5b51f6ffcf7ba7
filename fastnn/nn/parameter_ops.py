"""Array arithmetic on ``Parameter`` for code ported from PyTorch, where a parameter is a
tensor: ``p.item()``, ``p[0, :]``, ``p.T``, ``p.tolist()``, ``float(p)``, ``int(p)``, ``2 * p``,
``x @ p.T + b`` (results are NumPy arrays of the values, as PyTorch's are plain tensors),
and the in-place forms ``p -= lr * p.grad``, ``p += ...``, ``p *= ...``, ``p /= ...``
and ``p[...] = v``, which change ``p.data`` in place (the same array, so an optimizer's
flat buffer stays attached) and keep ``p`` a Parameter. Without them Python fell back to
``p = p - ...``: the loop variable of PyTorch's hand-written SGD update (``for param in
model.parameters(): param -= learning_rate * param.grad``) became a new array and the
model never changed.
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
        """The values at index (a view of ``data`` on the CPU, as PyTorch's view)."""
        return self.data[index]

    def __setitem__(self, index, value):
        """Write value into ``data`` at index, in place."""
        value = _values(value)
        _device.update_on_host(self.data, lambda d: d.__setitem__(index, value))

    @property
    def T(self):
        """The transposed values (a view of ``data`` on the CPU)."""
        return self.data.T

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
