"""Optimizers: SGD, Adam and AdamW with PyTorch's update rules, one kernel call per flat buffer."""
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .sgd import SGD
from . import lr_scheduler  # noqa: E402 (after Optimizer, which it imports)

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler"]
