"""Layers, containers and losses with explicit forward/backward (PyTorch's semantics)."""
from .activations import GELU, Identity, LeakyReLU, ReLU, Sigmoid, Sine, Softmax, Tanh
from .batchnorm import BatchNorm1d, BatchNorm2d
from .container import Sequential
from .dropout import Dropout
from .flatten import Flatten
from .linear import Linear
from .loss import BCELoss, CrossEntropyLoss, Loss, MSELoss
from .module import Module, Parameter

__all__ = ["Module", "Parameter", "Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU",
           "Sine", "Identity", "Softmax", "Flatten", "Dropout", "BatchNorm1d", "BatchNorm2d",
           "Sequential", "Loss", "MSELoss", "CrossEntropyLoss", "BCELoss"]


def _optional(module, names):
    """Layers of a module that lands with a later issue (conv, pooling): exported once
    the file exists; any other import error is raised as usual."""
    try:
        mod = __import__(f"{__name__}.{module}", fromlist=names)
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{module}":
            raise
        return
    for name in names:
        globals()[name] = getattr(mod, name)
        __all__.append(name)


_optional("conv", ["Conv2d"])
_optional("pooling", ["MaxPool2d", "AvgPool2d"])
