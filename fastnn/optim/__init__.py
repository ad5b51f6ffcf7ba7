"""Optimizers: SGD, Adam, AdamW and RMSprop with PyTorch's update rules, one kernel call per
flat buffer."""
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD
from . import lr_scheduler  # noqa: E402 (after Optimizer, which it imports)

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "lr_scheduler"]
