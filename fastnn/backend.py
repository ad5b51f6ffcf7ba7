"""The backend registry: which implementations of the op table exist, and which is current.

A backend is a module under ``fastnn.kernels`` that defines one function per op of
``fastnn.optable`` (same name, same parameters and defaults). A backend that reuses
another backend's implementation of an op says so in its module-level ``REUSES``
dict (``{"op_name": "reference"}``); nothing falls back silently, and
``backend_info()`` lists every reuse.

Backend modules are imported lazily: ``import fastnn`` compiles and imports nothing
heavy; the first op call on a backend imports it.
"""
import contextlib
import contextvars
import importlib
import importlib.util
import os
import threading

from . import optable

# name -> module path, in order of preference for the default CPU backend
# (decided by bench/: see README "Performance", "Default backend").
_BACKEND_MODULES = {
    "cython": "fastnn.kernels.cython",
    "numba": "fastnn.kernels.numba_cpu",
    "numpy": "fastnn.kernels.reference",
    "cuda": "fastnn.kernels.cuda",
}
_CPU_PREFERENCE = ("cython", "numba", "numpy")
# REUSES may name the reference backend by its folder name too
_ALIASES = {"reference": "numpy"}

_loaded = {}
_current = contextvars.ContextVar("fastnn_backend", default=None)  # use_backend blocks
# the open use_backend blocks of this context, innermost last: (block, its token of
# _current). Per context, so a thread or an asyncio task leaves only its own entries
# (kept per thread, two tasks sharing one block object reset each other's tokens:
# ValueError "created in a different Context").
_entries = contextvars.ContextVar("fastnn_backend_entries", default=())
_process_default = None  # set_backend / FASTNN_BACKEND / fastest available


class Backend:
    """One implementation of the op table: attribute access gives the op function."""

    def __init__(self, name, module):
        self.name = name
        self.module = module
        self.reuses = dict(getattr(module, "REUSES", {}))
        self.ops = {}
        for op in optable.op_names():
            if op in self.reuses:
                other = _ALIASES.get(self.reuses[op], self.reuses[op])
                self.ops[op] = getattr(load(other).module, op)
            elif hasattr(module, op):
                self.ops[op] = getattr(module, op)
            else:
                raise ImportError(
                    f"backend {name!r} ({module.__name__}) does not implement op {op!r} "
                    f"and does not declare it in REUSES")
        for op, fn in self.ops.items():
            setattr(self, op, fn)

    def __repr__(self):
        return f"<fastnn backend {self.name!r}>"


def _available(name):
    if name == "numpy":
        return True
    if name == "numba":
        return importlib.util.find_spec("numba") is not None
    if name == "cython":
        try:
            return importlib.util.find_spec("fastnn.kernels.cython._dense") is not None
        except ImportError:  # the package's __init__ raises when the extensions are unbuilt
            return False
    if name == "cuda":
        if importlib.util.find_spec("numba") is None:
            return False
        try:
            from numba import cuda
            return bool(cuda.is_available())
        except Exception:  # a broken driver means no CUDA backend, not a crash
            return False
    return False


def backends():
    """Names of the backends usable in this process, e.g. ['numpy', 'numba', 'cython']."""
    names = ["numpy"] + [n for n in ("numba", "cython", "cuda") if _available(n)]
    return names


def _check_name(name):
    if not isinstance(name, str) or name not in _BACKEND_MODULES:
        raise ValueError(
            f"unknown backend {name!r}; expected one of {sorted(_BACKEND_MODULES)}")
    if not _available(name):
        raise ValueError(
            f"backend {name!r} is not available here; available: {backends()}")


def load(name):
    """The Backend object for ``name``, importing its module on first use."""
    if name not in _loaded:
        _check_name(name)
        module = importlib.import_module(_BACKEND_MODULES[name])
        _loaded[name] = Backend(name, module)
    return _loaded[name]


def default_backend_name():
    env = os.environ.get("FASTNN_BACKEND")
    if env:
        try:
            _check_name(env)
        except ValueError as error:  # say where the name came from
            raise ValueError(f"FASTNN_BACKEND: {error}") from None
        return env
    for name in _CPU_PREFERENCE:
        if _available(name):
            return name
    return "numpy"


def get_backend():
    """Name of the current backend: the innermost ``use_backend`` block's, else the
    process-wide one that ``set_backend`` (or FASTNN_BACKEND) chose."""
    name = _current.get()
    if name is not None:
        return name
    global _process_default
    if _process_default is None:
        _process_default = default_backend_name()
    return _process_default


def current():
    """The current Backend object (what layers and ``fastnn.ops`` call): load's, in one
    lookup where the backend is loaded, as for every op."""
    name = get_backend()
    backend = _loaded.get(name)
    return backend if backend is not None else load(name)


def set_backend(name):
    """Make ``name`` the backend of the whole process (every thread); a ``use_backend``
    block still overrides it inside the block."""
    global _process_default
    _check_name(name)
    _process_default = name


class use_backend(contextlib.ContextDecorator):
    """Context manager (a decorator too): run the block with backend ``name``, then
    restore; ``as`` gives the backend. A class, not a generator: contextlib's
    generator machinery cost ~3 us a block, and the benchmarks' training step at batch 16
    (~200 us) runs in one."""

    def __init__(self, name):
        _check_name(name)
        self.name = name

    def __enter__(self):
        token = _current.set(self.name)
        try:
            backend = load(self.name)
        except BaseException:
            _current.reset(token)
            raise
        # the same object may be entered again, in one thread or task or in several
        _entries.set(_entries.get() + ((self, token),))
        return backend

    def __exit__(self, *exc_info):
        entries = _entries.get()
        at = len(entries) - 1
        while at >= 0 and entries[at][0] is not self:
            at -= 1
        if at < 0:
            raise RuntimeError("use_backend: leaving a block that this thread or task did "
                               "not enter (entered in another context)")
        _entries.set(entries[:at] + entries[at + 1:])
        _current.reset(entries[at][1])
        return False

    def _recreate_cm(self):
        return type(self)(self.name)   # (a decorated function's call: its own object)


def backend_info(name=None):
    """A dict describing backend ``name`` (None: the current one, ``get_backend()``): its
    'name', 'module' and 'reuses' (the ops it takes from another backend), and what the
    backend's module adds (numba and cython: 'blas', 'blas_threads', their thread and
    build settings)."""
    backend = load(get_backend() if name is None else name)
    info = {"name": backend.name, "module": backend.module.__name__,
            "reuses": dict(backend.reuses)}
    extra = getattr(backend.module, "backend_info", None)
    if callable(extra):
        info.update(extra())
    return info
