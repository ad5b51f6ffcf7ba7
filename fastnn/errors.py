"""Exceptions that are two types at once: fastnn's ValueError/TypeError for a bad
argument (its convention, see DESIGN.md) and the type PyTorch raises for the same
mistake, so that code written against either catches them."""


class RuntimeValueError(ValueError, RuntimeError):
    """A bad shape or value for which PyTorch raises RuntimeError."""


class IndexValueError(ValueError, IndexError):
    """A dim out of range for the input's rank, for which PyTorch raises IndexError."""


class TypeValueError(ValueError, TypeError):
    """A size, count or index of the wrong type (a float where an int belongs), for
    which PyTorch raises TypeError."""


class DtypeError(TypeValueError, RuntimeError):
    """An array of a dtype fastnn does not compute in (not float32/float64), arrays of
    one call with mismatched dtypes, or labels/indices that are not integers: bad input
    (ValueError), fastnn's TypeError for a wrong dtype as before, and the RuntimeError
    PyTorch raises for the same mistake ("mat1 and mat2 must have the same dtype")."""


class NotImplementedValueError(ValueError, NotImplementedError):
    """An argument combination PyTorch refuses with NotImplementedError (an interpolate
    mode for another input rank, an unknown padding mode, per_sample_weights outside
    mode='sum'): bad input, not a missing feature. (NotImplementedError is a RuntimeError,
    so ``except RuntimeError`` catches it as well.)"""


class KeyValueError(ValueError, KeyError):
    """A dict argument without a key PyTorch reads from it (an optimizer's parameter
    group without 'params'), for which PyTorch raises KeyError; the message reads as a
    ValueError's (KeyError's own str() would quote it)."""

    __str__ = BaseException.__str__


class AssertionValueError(ValueError, AssertionError):
    """A bad shape or argument that PyTorch asserts against (AssertionError)."""


class AssertionTypeError(TypeError, AssertionError):
    """A bad type that PyTorch asserts against (AssertionError)."""


class MissingKeyError(KeyError, AttributeError):
    """A key a ParameterDict (or ModuleDict) does not have: PyTorch raises
    AttributeError for a ParameterDict."""


class MissingDependencyError(ImportError):
    """An optional package a feature needs is not installed (scikit-learn for the
    digits data set, matplotlib for plots): the CLI reports it in one line."""
