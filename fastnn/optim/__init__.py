"""Optimizers: SGD, Adam and AdamW with PyTorch's update rules, one kernel call per flat buffer."""
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]
