"""Convolutional networks: the VGG-style ConvNet and a small CNN for 28x28 images.

Both are ``nn.Sequential`` (so their buffers are reused between steps) and record their
constructor arguments in ``config`` with a ``config_name`` for ``fastnn.save``/``load``.
"""
import math
import numbers

from .. import nn


def _positive_int(model, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{model}: expected {name} to be a positive int, got {value!r}")
    return int(value)


def _conv_block(c_in, c_out):
    """conv 3x3 (padding 1) -> BatchNorm2d -> ReLU: (N, c_in, H, W) -> (N, c_out, H, W)."""
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]


def _pooled(size):
    """Spatial size after MaxPool2d(3, stride=2, padding=1)."""
    return (size + 2 - 3) // 2 + 1


# (output channels of each conv of a stage) for the five stages; a max pool follows each
_CONVNET_STAGES = ((64,), (128,), (256, 256), (512, 512), (512, 512))


class ConvNet(nn.Sequential):
    """VGG-style network: conv3x3-64, maxpool 3x3/2/1, conv-128, pool, conv-256 x2, pool,
    conv-512 x2, pool, conv-512 x2, pool, average pool over what is left, linear.

    Every conv is 3x3 with padding 1 and is followed by BatchNorm2d and ReLU. width
    scales every channel count (at least 1 channel). Input (N, in_channels, input_size,
    input_size); output logits (N, num_classes).
    """

    config_name = "convnet"

    def __init__(self, in_channels=3, input_size=32, num_classes=10, width=1.0):
        in_channels = _positive_int("ConvNet", "in_channels", in_channels)
        input_size = _positive_int("ConvNet", "input_size", input_size)
        num_classes = _positive_int("ConvNet", "num_classes", num_classes)
        if (isinstance(width, bool) or not isinstance(width, numbers.Real) or not width > 0
                or not math.isfinite(width)):
            raise ValueError(f"ConvNet: expected width to be a positive number, got {width!r}")
        layers = []
        channels, size = in_channels, input_size
        for stage in _CONVNET_STAGES:
            for c in stage:
                c_out = max(1, int(round(c * width)))
                layers += _conv_block(channels, c_out)
                channels = c_out
            layers.append(nn.MaxPool2d(3, stride=2, padding=1))
            size = _pooled(size)
        layers += [nn.AvgPool2d(size), nn.Flatten(), nn.Linear(channels, num_classes)]
        super().__init__(*layers)
        self.config = dict(in_channels=in_channels, input_size=input_size,
                           num_classes=num_classes, width=float(width))

    def extra_repr(self):
        c = self.config
        return (f"in_channels={c['in_channels']}, input_size={c['input_size']}, "
                f"num_classes={c['num_classes']}, width={c['width']}")


class SmallCNN(nn.Sequential):
    """Two conv blocks and two linear layers, for 28x28 images (MNIST, Fashion-MNIST).

    conv3x3(in_channels -> channels[0]) -> BatchNorm2d -> ReLU -> maxpool 2,
    conv3x3(channels[0] -> channels[1]) -> BatchNorm2d -> ReLU -> maxpool 2,
    flatten -> Linear(hidden) -> ReLU -> [Dropout(dropout)] -> Linear(num_classes).
    Input (N, in_channels, input_size, input_size); output logits (N, num_classes).
    """

    config_name = "cnn"

    def __init__(self, in_channels=1, input_size=28, num_classes=10, channels=(32, 64),
                 hidden=128, dropout=0.0):
        in_channels = _positive_int("SmallCNN", "in_channels", in_channels)
        input_size = _positive_int("SmallCNN", "input_size", input_size)
        num_classes = _positive_int("SmallCNN", "num_classes", num_classes)
        hidden = _positive_int("SmallCNN", "hidden", hidden)
        if not isinstance(channels, (list, tuple)) or len(channels) != 2:
            raise ValueError(f"SmallCNN: expected channels to be a pair of ints, got {channels!r}")
        c1, c2 = (_positive_int("SmallCNN", "each of channels", c) for c in channels)
        size = input_size // 2 // 2
        if size < 1:
            raise ValueError(f"SmallCNN: input_size {input_size} is too small for two 2x2 pools")
        layers = (_conv_block(in_channels, c1) + [nn.MaxPool2d(2)]
                  + _conv_block(c1, c2) + [nn.MaxPool2d(2)]
                  + [nn.Flatten(), nn.Linear(c2 * size * size, hidden), nn.ReLU()])
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(hidden, num_classes))
        super().__init__(*layers)
        self.config = dict(in_channels=in_channels, input_size=input_size,
                           num_classes=num_classes, channels=[c1, c2], hidden=hidden,
                           dropout=float(dropout))

    def extra_repr(self):
        c = self.config
        return (f"in_channels={c['in_channels']}, input_size={c['input_size']}, "
                f"num_classes={c['num_classes']}, channels={c['channels']}, "
                f"hidden={c['hidden']}")
