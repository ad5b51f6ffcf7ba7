"""PyTorch's activations under the ops' names, for the op suites of every backend
(tests/test_conformance.py) and of the cuda kernels (tests/test_cuda_ops.py)."""
import torch
import torch.nn.functional as F

# the activations linear_forward fuses (negative_slope 0.1, as the tests pass it)
ACT_TORCH = {
    "identity": lambda z: z,
    "relu": torch.relu,
    "leaky_relu": lambda z: F.leaky_relu(z, 0.1),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
}

ACTIVATIONS = {
    # name: (torch forward, params, backward takes 'x' or 'y')
    "relu": (torch.relu, {}, "y"),
    "leaky_relu": (lambda z: F.leaky_relu(z, 0.2), {"negative_slope": 0.2}, "x"),
    "sigmoid": (torch.sigmoid, {}, "y"),
    "tanh": (torch.tanh, {}, "y"),
    "gelu": (F.gelu, {}, "x"),
    "silu": (F.silu, {}, "x"),
    "elu": (lambda z: F.elu(z, 0.7), {"alpha": 0.7}, "x"),
    "sine": (lambda z: torch.sin(30.0 * z), {"omega": 30.0}, "x"),
    "softplus": (lambda z: F.softplus(z, 2.0, 5.0), {"beta": 2.0, "threshold": 5.0}, "x"),
    "hardtanh": (lambda z: F.hardtanh(z, -0.5, 2.0), {"min_val": -0.5, "max_val": 2.0}, "x"),
    "softsign": (F.softsign, {}, "x"),
    "gelu_tanh": (lambda z: F.gelu(z, approximate="tanh"), {}, "x"),
    "mish": (F.mish, {}, "x"),
    # PyTorch's own float64 hardsigmoid gradient multiplies by a float32 1/6
    # (0.1666666716); its clamp formula gives the exact one (the edges +-3 are not drawn)
    "hardsigmoid": (lambda z: torch.clamp(z + 3, 0, 6) / 6, {}, "x"),
    "hardswish": (F.hardswish, {}, "x"),
}
