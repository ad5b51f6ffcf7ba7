"""PyTorch twins of fastnn layers, with the weights copied over, for the nn tests."""
import numpy as np
import torch

from fastnn import nn

from conftest import assert_close

torch.set_num_threads(2)

TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


class _Sine(torch.nn.Module):
    def __init__(self, omega):
        super().__init__()
        self.omega = omega

    def forward(self, x):
        return torch.sin(self.omega * x)


class _Hardsigmoid(torch.nn.Module):
    """PyTorch's Hardsigmoid by its clamp formula: torch.nn.Hardsigmoid's own float64
    gradient multiplies by a float32 1/6 (0.1666666716)."""

    def forward(self, x):
        return torch.clamp(x + 3, 0, 6) / 6


def _copy(tensor, array):
    with torch.no_grad():
        tensor.copy_(torch.from_numpy(np.array(array)))


def torch_twin(layer):
    """A torch.nn.Module computing the same function as the fastnn layer (in float64
    or float32 like its parameters), with parameters and running statistics copied."""
    if isinstance(layer, nn.Sequential):
        return torch.nn.Sequential(*[torch_twin(child) for child in layer])
    if isinstance(layer, nn.Linear):
        twin = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
        twin = twin.to(TORCH_DTYPES[layer.weight.data.dtype])
        _copy(twin.weight, layer.weight.data)
        if layer.bias is not None:
            _copy(twin.bias, layer.bias.data)
        return twin
    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
        cls = torch.nn.BatchNorm1d if isinstance(layer, nn.BatchNorm1d) else torch.nn.BatchNorm2d
        twin = cls(layer.num_features, eps=layer.eps, momentum=layer.momentum)
        twin = twin.to(TORCH_DTYPES[layer.bias.data.dtype])
        _copy(twin.weight, layer.weight.data)
        _copy(twin.bias, layer.bias.data)
        _copy(twin.running_mean, layer.running_mean)
        _copy(twin.running_var, layer.running_var)
        twin.train(layer.training)
        return twin
    simple = {
        nn.ReLU: lambda l: torch.nn.ReLU(),
        nn.LeakyReLU: lambda l: torch.nn.LeakyReLU(l.negative_slope),
        nn.Sigmoid: lambda l: torch.nn.Sigmoid(),
        nn.Tanh: lambda l: torch.nn.Tanh(),
        nn.GELU: lambda l: torch.nn.GELU(approximate=l.approximate),
        nn.SiLU: lambda l: torch.nn.SiLU(),
        nn.ELU: lambda l: torch.nn.ELU(l.alpha),
        nn.SELU: lambda l: torch.nn.SELU(),
        nn.Hardsigmoid: lambda l: _Hardsigmoid(),
        nn.Hardswish: lambda l: torch.nn.Hardswish(),
        nn.CELU: lambda l: torch.nn.CELU(l.alpha),
        nn.Softplus: lambda l: torch.nn.Softplus(l.beta, l.threshold),
        nn.Hardtanh: lambda l: torch.nn.Hardtanh(l.min_val, l.max_val),
        nn.ReLU6: lambda l: torch.nn.ReLU6(),
        nn.Softsign: lambda l: torch.nn.Softsign(),
        nn.Mish: lambda l: torch.nn.Mish(),
        nn.LogSigmoid: lambda l: torch.nn.LogSigmoid(),
        nn.Sine: lambda l: _Sine(l.omega),
        nn.Identity: lambda l: torch.nn.Identity(),
        nn.Softmax: lambda l: torch.nn.Softmax(dim=-1),
        nn.Softmin: lambda l: torch.nn.Softmin(dim=l.dim),
        nn.LogSoftmax: lambda l: torch.nn.LogSoftmax(dim=-1),
        nn.Flatten: lambda l: torch.nn.Flatten(l.start_dim, l.end_dim),
    }
    return simple[type(layer)](layer)


def run_torch(twin, x, grad_out):
    """Forward and backward through the twin: (y, grad_x, {param name: grad})."""
    xt = torch.from_numpy(np.array(x)).requires_grad_(True)
    yt = twin(xt)
    yt.backward(torch.from_numpy(np.array(grad_out)))
    grads = {name: p.grad.numpy() for name, p in twin.named_parameters()}
    return yt.detach().numpy(), xt.grad.numpy(), grads


def assert_trains_as_twin(model, twin, x, rng):
    """model, given its float64 torch twin's state dict: the output of x, then after one
    backward of a random gradient every parameter's gradient, the twin's."""
    model.load_state_dict({k: v.numpy() for k, v in twin.state_dict().items()})
    y = model(x)
    ty = twin(torch.from_numpy(x))
    assert_close(y, ty.detach().numpy(), np.float64)
    g = rng.standard_normal(y.shape)
    model.backward(g)
    ty.backward(torch.from_numpy(g))
    for (name, p), (_, tp) in zip(model.named_parameters(), twin.named_parameters()):
        assert_close(p.grad, tp.grad.numpy(), np.float64, err_msg=name)
