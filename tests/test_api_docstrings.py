"""The public API's docstrings against the code, as help() shows them: every public
function and class has one; a signature a docstring writes out in full
(``Adam(params, lr=1e-3, ...)``, ``forward(query, key, value, key_padding_mask=None,
...)``) gives the real parameters with their real defaults; a forward or backward whose
signature is not its base class's has a docstring of its own (help() showed Module's
'Output of the layer for input x' for MultiheadAttention.forward, say); Parameter's
properties say what they hold (.data showed operator.attrgetter's docstring); and every
op of the table names each of its parameters (the project's rule: shapes for every
array argument)."""
import ast
import importlib
import inspect
import re

import pytest

import fastnn
from fastnn import nn, ops

# modules with __all__, then the ones whose public names are their dir()
_MODULES = ("fastnn", "fastnn.nn", "fastnn.nn.functional", "fastnn.optim",
            "fastnn.optim.lr_scheduler", "fastnn.ops", "fastnn.data", "fastnn.models",
            "fastnn.device", "fastnn.random", "fastnn.io", "fastnn.train",
            "fastnn.visualize", "fastnn.nn.init", "fastnn.nn.utils", "fastnn.gradcheck")


def _public_objects():
    """(dotted name, object) of each public function and class fastnn defines, once."""
    seen = {}
    for module_name in _MODULES:
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None)
        if names is None:
            names = [n for n in dir(module) if not n.startswith("_")]
        for name in names:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if not (getattr(obj, "__module__", "") or "").startswith("fastnn"):
                continue   # (NumPy, the standard library re-exported)
            seen.setdefault(id(obj), (f"{module_name}.{name}", obj))
    return list(seen.values())


_OBJECTS = _public_objects()


def _own_doc(obj):
    return (obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__) or ""


def test_every_public_function_and_class_has_a_docstring():
    assert len(_OBJECTS) > 400
    missing = [name for name, obj in _OBJECTS if not _own_doc(obj).strip()]
    assert not missing, missing


def _written_signatures(doc, name):
    """(positional names, keywords) of each ``name(...)`` written in doc whose arguments
    parse as a call with bare names for its positional ones (a bare ``*`` dropped)."""
    for match in re.finditer(r"(?<![\w.])" + re.escape(name) + r"\(", doc):
        depth, end = 1, match.end()
        while end < len(doc) and depth:
            depth += {"(": 1, ")": -1}.get(doc[end], 0)
            end += 1
        text = re.sub(r",\s*[*/]\s*(?=,)", "", doc[match.end():end - 1].replace("\n", " "))
        try:
            call = ast.parse(f"f({text})", mode="eval").body
        except SyntaxError:
            continue
        if all(isinstance(a, ast.Name) for a in call.args):
            yield [a.id for a in call.args], call.keywords


def _same_default(written, real):
    if isinstance(written, bool) or isinstance(real, bool):
        return written is real
    return type(written) is type(real) and written == real or (
        isinstance(written, (int, float)) and isinstance(real, (int, float))
        and written == real)


def _documented_callables():
    for name, obj in _OBJECTS:
        yield name, obj.__name__, obj, inspect.getdoc(obj) or ""
        if inspect.isclass(obj):
            for method in ("forward", "backward", "step"):
                if hasattr(obj, method):
                    yield name, method, getattr(obj, method), inspect.getdoc(obj) or ""


def test_signatures_written_in_docstrings_are_the_real_ones():
    """A written call that lists the parameters in their order with keywords is a
    signature: its defaults must be the real ones (an example call, which skips
    parameters or passes values positionally, is left alone)."""
    checked, wrong = 0, []
    for where, name, fn, doc in _documented_callables():
        try:
            params = [p for p in inspect.signature(fn).parameters.values()
                      if p.name != "self" and p.kind not in (p.VAR_POSITIONAL,
                                                             p.VAR_KEYWORD)]
        except (TypeError, ValueError):
            continue
        order = [p.name for p in params]
        for positional, keywords in _written_signatures(doc, name):
            written = positional + [k.arg for k in keywords]
            if not keywords or written != order[:len(written)]:
                continue
            checked += 1
            defaults = {p.name: p.default for p in params}
            for keyword in keywords:
                try:
                    value = ast.literal_eval(keyword.value)
                except ValueError:
                    continue   # (an expression such as 1 / 3)
                if not _same_default(value, defaults[keyword.arg]):
                    wrong.append(f"{where}: {name}(... {keyword.arg}={value!r}) but the "
                                 f"default is {defaults[keyword.arg]!r}")
    assert checked >= 25   # (the optimizers, the attention and Transformer forwards...)
    assert not wrong, "\n".join(wrong)


def _layer_classes():
    for name, obj in _OBJECTS:
        if inspect.isclass(obj) and issubclass(obj, (nn.Module, nn.Loss)):
            yield obj


@pytest.mark.parametrize("method", ["forward", "backward"])
def test_forward_and_backward_with_their_own_signature_have_their_own_docstring(method):
    """help() falls back on the base class's docstring, which describes the base's
    arguments: a method that takes others must say what it takes."""
    undocumented = set()
    for cls in _layer_classes():
        owner = next(k for k in cls.__mro__ if method in k.__dict__)
        if owner in (nn.Module, nn.Loss) or owner.__dict__[method].__doc__:
            continue
        base = nn.Loss if issubclass(cls, nn.Loss) else nn.Module
        if (inspect.signature(getattr(owner, method))
                != inspect.signature(getattr(base, method))):
            undocumented.add(f"{owner.__qualname__}.{method}")
    assert not undocumented, sorted(undocumented)


@pytest.mark.parametrize("prop", ["data", "grad", "requires_grad", "shape", "dtype",
                                  "ndim", "device"])
def test_parameter_properties_have_docstrings(prop):
    doc = inspect.getattr_static(nn.Parameter, prop).__doc__ or ""
    assert doc.strip() and "attrgetter" not in doc


@pytest.mark.parametrize("name", [n for n in ops.__all__ if callable(getattr(ops, n))])
def test_every_op_names_each_of_its_parameters(name):
    fn = getattr(ops, name)
    doc = fn.__doc__ or ""
    unnamed = [p for p in inspect.signature(fn).parameters
               if not re.search(r"(?<![\w.])" + re.escape(p) + r"(?!\w)", doc)]
    assert not unnamed, f"ops.{name}'s docstring does not name {unnamed}"


def test_module_helpers_have_docstrings():
    """The traversal methods a user calls (help(model.children)) say what they give."""
    for method in ("children", "buffers", "parameters", "modules", "named_children"):
        assert (getattr(nn.Module, method).__doc__ or "").strip(), method
    assert fastnn.backend_info.__doc__ and "name" in fastnn.backend_info.__doc__
