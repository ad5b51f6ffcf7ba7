"""fastnn: a NumPy-API neural-network library whose kernels are compiled.

Explicit forward/backward layers (``fastnn.nn``), optimizers (``fastnn.optim``), models
(``fastnn.models``), and the functional kernels (``fastnn.ops``), each run by the current
backend: 'numpy' (the reference), 'numba', 'cython', or 'cuda'.
``import fastnn`` compiles nothing; a backend loads on its first use.
"""
import importlib

from .threads import get_num_threads, limit_blas_spin, limit_openmp_spin, set_num_threads

limit_blas_spin()    # before SciPy's OpenBLAS loads (fastnn/threads.py says why)
limit_openmp_spin()  # before any OpenMP runtime loads (likewise; it may load OpenBLAS)

from .backend import (backend_info, backends, get_backend, set_backend,  # noqa: E402,I100
                      use_backend)

__version__ = "0.1.0"

_LAZY_MODULES = ("nn", "optim", "ops", "models", "data", "optable", "train", "io", "device",
                 "random", "visualize")
_LAZY_ATTRS = {
    "save": ("io", "save"),
    "load": ("io", "load"),
    "gradcheck": ("gradcheck", "gradcheck"),
    "manual_seed": ("random", "manual_seed"),
    "seed": ("random", "seed"),
    "initial_seed": ("random", "initial_seed"),
    "get_rng_state": ("random", "get_rng_state"),
    "set_rng_state": ("random", "set_rng_state"),
    "no_grad": ("grad_mode", "no_grad"),
    "enable_grad": ("grad_mode", "enable_grad"),
    "set_grad_enabled": ("grad_mode", "set_grad_enabled"),
    "inference_mode": ("grad_mode", "inference_mode"),
    "is_grad_enabled": ("grad_mode", "is_grad_enabled"),
}

__all__ = ["backends", "set_backend", "get_backend", "use_backend", "backend_info",
           "set_num_threads", "get_num_threads", *_LAZY_MODULES, *_LAZY_ATTRS]


def __getattr__(name):
    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY_ATTRS:
        module, attr = _LAZY_ATTRS[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'fastnn' has no attribute {name!r}")


def __dir__():
    """The lazy names too, so ``dir(fastnn)`` and tab completion list them."""
    return sorted(set(globals()) | set(__all__))
