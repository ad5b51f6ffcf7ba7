"""Ready-made networks. Each records its constructor arguments in ``config`` and a
``config_name`` so ``fastnn.save``/``fastnn.load`` can rebuild it."""
from .convnet import ConvNet, SmallCNN
from .mlp import MLP
from .multitask import MultiTaskLoss, MultiTaskNet
from .vae import VAE

__all__ = ["MLP", "MultiTaskNet", "MultiTaskLoss", "VAE", "ConvNet", "SmallCNN"]
