"""Optimizers: SGD, Adam, AdamW, RMSprop and Adagrad with PyTorch's update rules, one kernel
call per flat buffer."""
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD
from . import lr_scheduler  # noqa: E402 (after Optimizer, which it imports)

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]
