"""Device residency: move a model's state to the GPU and back, and update it there.

``to_device(model)`` rebinds every Parameter's ``.data`` and ``.grad`` and every
registered buffer (BatchNorm's running statistics) to numba device arrays;
``to_host(model)`` brings them back as NumPy arrays. Layer kernel calls pass the
parameters through to the cuda backend's ops, which run on the device arrays in place
(``grad += ...``, running statistics, optimizer updates) without copying them.

``SGD`` and ``Adam`` here keep their state (momentum, moments) on the device and step
each parameter with one in-place kernel: parameters, gradients and optimizer state
never leave the device between steps. (``fastnn.optim``'s optimizers re-home
parameters into flat host buffers and so need host parameters.)

What the nn layers still need for a fully device-resident ``Module`` (device inputs,
device layer buffers, device losses) is listed in the cuda engineer's report; until
then, compose the cuda ops on device arrays directly (see tests/test_cuda_ops.py for a
whole MLP step that way).
"""
import numpy as np
from numba import cuda

from . import config
from . import optim as _optim
from ._common import as_device, is_device  # noqa: F401  (as_device: fastnn.device uses it)


def _module_arrays(model):
    """(module, buffer name, array) for every registered, non-None buffer."""
    for module in model.modules():
        for name, buf in list(module._buffers.items()):
            if buf is not None:
                yield module, name, buf


def _rebind_buffer(module, name, value):
    # Module.__setattr__ accepts only NumPy buffers; the registry entry and the
    # attribute are set directly so layers see the device array.
    module._buffers[name] = value
    object.__setattr__(module, name, value)


def to_device(model):
    """Move parameters (data and grad) and buffers of ``model`` to the GPU; returns it.

    Arrays already on the device are left as they are. Layer scratch buffers are
    dropped (they are reallocated to match on the next call)."""
    for param in model.parameters():
        if not is_device(param.data):
            param.data = cuda.to_device(np.ascontiguousarray(param.data))
        if param.grad is not None and not is_device(param.grad):
            param.grad = cuda.to_device(np.ascontiguousarray(param.grad))
    for module, name, buf in list(_module_arrays(model)):
        if not is_device(buf):
            _rebind_buffer(module, name, cuda.to_device(np.ascontiguousarray(buf)))
    for module in model.modules():
        module._scratch.clear()
    return model


def to_host(model):
    """Bring parameters and buffers of ``model`` back as NumPy arrays; returns it."""
    for param in model.parameters():
        if is_device(param.data):
            param.data = param.data.copy_to_host()
        if param.grad is not None and is_device(param.grad):
            param.grad = param.grad.copy_to_host()
    for module, name, buf in list(_module_arrays(model)):
        if is_device(buf):
            _rebind_buffer(module, name, buf.copy_to_host())
    for module in model.modules():
        module._scratch.clear()
    return model


def is_on_device(model):
    """True when every parameter and buffer of ``model`` is a device array."""
    arrays = [p.data for p in model.parameters()] + [b for _, _, b in _module_arrays(model)]
    return bool(arrays) and all(is_device(a) for a in arrays)


@cuda.jit
def _fill_zero(a):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        a[i] = 0


def fill_zero(a):
    """Set every element of a C-contiguous device array to zero, in place."""
    a = as_device(a)
    if a.size:
        _fill_zero[config.blocks(a.size), config.THREADS](a.reshape(a.size))


def zero_grad(params):
    """Zero each parameter's device gradient in place (one kernel per parameter).

    params: iterable of Parameters whose .grad is a device array."""
    for p in params:
        if p.grad is not None:
            fill_zero(p.grad)


class _DeviceOptimizer:
    """Parameters whose data and grad are device arrays, with device-side state."""

    def __init__(self, params, lr):
        self.params = list(params)
        for i, p in enumerate(self.params):
            if not (is_device(p.data) and is_device(p.grad)):
                raise TypeError(f"{type(self).__name__}: parameter {i} is not on the device; "
                                f"call fastnn.kernels.cuda.device.to_device(model) first")
        if not lr > 0:
            raise ValueError(f"{type(self).__name__}: expected lr > 0, got {lr!r}")
        self.lr = lr

    def _zeros_like(self, p):
        return cuda.to_device(np.zeros(p.data.shape, dtype=p.data.dtype))

    def zero_grad(self):
        zero_grad(self.params)


class SGD(_DeviceOptimizer):
    """PyTorch's SGD (momentum, weight decay, Nesterov) with the velocity on the device."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr)
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, nesterov
        self.velocity = [self._zeros_like(p) if momentum else None for p in self.params]

    def step(self):
        for p, v in zip(self.params, self.velocity):
            _optim.sgd_update(p.data, p.grad, v, self.lr, self.momentum, self.weight_decay,
                              self.nesterov)


class Adam(_DeviceOptimizer):
    """PyTorch's Adam (L2 weight decay) with both moments on the device."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = tuple(betas), eps, weight_decay
        self.exp_avg = [self._zeros_like(p) for p in self.params]
        self.exp_avg_sq = [self._zeros_like(p) for p in self.params]
        self.steps = 0

    def step(self):
        self.steps += 1
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            _optim.adam_update(p.data, p.grad, m, v, self.steps, self.lr, self.betas[0],
                               self.betas[1], self.eps, self.weight_decay)
