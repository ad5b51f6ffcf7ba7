"""PyTorch twins of the conv layers and of any Sequential holding them (weights copied)."""
import numpy as np
import torch

from fastnn import nn

from nn_torch_helpers import TORCH_DTYPES, torch_twin


def _copy(tensor, array):
    with torch.no_grad():
        tensor.copy_(torch.from_numpy(np.array(array)))


def conv_twin(layer):
    """A torch module computing what the fastnn layer computes, parameters copied."""
    if isinstance(layer, nn.Sequential):
        return torch.nn.Sequential(*[conv_twin(child) for child in layer])
    if isinstance(layer, nn.Conv2d):
        twin = torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                               layer.stride, layer.padding, bias=layer.bias is not None)
        twin = twin.to(TORCH_DTYPES[layer.weight.data.dtype])
        _copy(twin.weight, layer.weight.data)
        if layer.bias is not None:
            _copy(twin.bias, layer.bias.data)
        return twin
    if isinstance(layer, nn.MaxPool2d):
        return torch.nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)
    if isinstance(layer, nn.AvgPool2d):
        return torch.nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding,
                                  count_include_pad=layer.count_include_pad)
    return torch_twin(layer)


def torch_parameter_grads(twin):
    """name -> gradient array of every torch parameter (names as in state_dict)."""
    return {name: p.grad.numpy() for name, p in twin.named_parameters()}
