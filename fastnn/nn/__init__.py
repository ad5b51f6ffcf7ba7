"""Layers, containers and losses with explicit forward/backward (PyTorch's semantics)."""
from .activations import (ELU, GELU, Identity, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Sine,
                          Softmax, Tanh)
from .batchnorm import BatchNorm1d, BatchNorm2d
from .container import ModuleList, Sequential
from .conv import Conv2d
from .dropout import Dropout
from . import init
from .flatten import Flatten
from .linear import Linear
from .loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss, Loss,
                   MSELoss, NLLLoss, SmoothL1Loss)
from .module import Module, Parameter
from .pooling import AvgPool2d, MaxPool2d
from . import utils

__all__ = ["Module", "Parameter", "Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "SiLU", "ELU",
           "Sine", "Identity", "Softmax", "LogSoftmax", "Flatten", "Dropout", "BatchNorm1d", "BatchNorm2d",
           "Conv2d", "MaxPool2d", "AvgPool2d", "Sequential", "ModuleList", "Loss", "MSELoss",
           "L1Loss", "SmoothL1Loss", "HuberLoss", "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss", "init", "utils"]
