"""Plain values in a JSON form: how fastnn.nn's layers record their constructor arguments
(``Module``'s ``_init_args``) and how ``fastnn.save`` writes them and the layers' plain
attributes, so ``fastnn.load`` can rebuild a tree of built-in layers without pickle.

Plain: None, bool, int, float, str, NumPy integer/float scalars and dtypes (by name), and
tuples, lists and string-keyed dicts of those. Anything else (arrays, modules,
functions, generators...) is ``NotPlain``.
"""
import numpy as np


class NotPlain(Exception):
    """A value with no plain form; the message names its type ('a numpy.ndarray')."""


def encode(value):
    """value's JSON form (see the module docstring); NotPlain for anything else."""
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind in (tuple, list):
        return {kind.__name__: [encode(v) for v in value]}
    if kind is dict and all(type(k) is str for k in value):
        return {"dict": {k: encode(v) for k, v in value.items()}}
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)
                                       and value is not np.generic):
        try:
            return {"dtype": np.dtype(value).name, "type": isinstance(value, type)}
        except TypeError:
            pass
    elif isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return {"scalar": value.item(), "dtype": value.dtype.name}
    module = "" if kind.__module__ == "builtins" else kind.__module__ + "."
    raise NotPlain(f"a {module}{kind.__qualname__}")


def decode(desc):
    """The value ``encode`` described."""
    if not isinstance(desc, dict):
        return desc
    if "tuple" in desc:
        return tuple(decode(v) for v in desc["tuple"])
    if "list" in desc:
        return [decode(v) for v in desc["list"]]
    if "dict" in desc:
        return {k: decode(v) for k, v in desc["dict"].items()}
    if "scalar" in desc:
        return np.dtype(desc["dtype"]).type(desc["scalar"])
    dtype = np.dtype(desc["dtype"])
    return dtype.type if desc["type"] else dtype
