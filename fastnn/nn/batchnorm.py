"""Batch normalisation layers (PyTorch's semantics), run by the batchnorm kernels."""
import math

import numpy as np

from .. import device as _device
from .. import ops
from ..errors import RuntimeValueError
from ..validation import check_bool, check_number, check_positive_int, float_of
from .module import BatchCounter, Module, Parameter, live_grad, nothing_to_compute


class _BatchNorm(BatchCounter, Module):
    """Shared body of BatchNorm1d and BatchNorm2d; ``ndim`` is the input rank."""

    ndim = None

    # DESIGN.md's public order: (num_features, eps, momentum, mean_only); PyTorch's
    # affine and track_running_stats by keyword (PyTorch's fourth positional is affine)
    def __init__(self, num_features, eps=1e-5, momentum=0.1, mean_only=False,
                 dtype=np.float32, affine=True, track_running_stats=True, *, bias=True):
        super().__init__()
        name = type(self).__name__
        check_positive_int(name, "num_features", num_features, negative=RuntimeValueError)
        check_number(name, "eps", eps, low=0.0, high=None)
        if momentum is not None:
            check_number(name, "momentum", momentum, low=0.0, high=1.0, high_open=False)
        self.num_features = int(num_features)
        self.eps = eps   # eps and momentum as given (PyTorch's attributes and repr)
        #: None: the running statistics are the cumulative average of every batch's
        #: (PyTorch's rule: factor 1 / num_batches_tracked)
        self.momentum = momentum
        #: training forwards that updated the running statistics (PyTorch's counter): a
        #: host int on any device, in the state dict as a 0-d int64 array
        self.num_batches_tracked = 0
        self.mean_only = bool(mean_only)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        c = self.num_features
        # affine=False: no parameters; the kernels get constant ones and zeros instead
        self.weight = (None if self.mean_only or not self.affine
                       else Parameter(np.ones(c, dtype=dtype)))
        # PyTorch 2.13's bias=False: an affine layer with a weight and no bias
        with_bias = self.affine and check_bool(type(self).__name__, "bias", bias)
        self.bias = Parameter(np.zeros(c, dtype=dtype)) if with_bias else None
        tracked = self.track_running_stats
        self.register_buffer("running_mean", np.zeros(c, dtype=dtype) if tracked else None)
        self.register_buffer("running_var", np.ones(c, dtype=dtype)
                             if tracked and not self.mean_only else None)
        self._ctx = None  # (x, save_mean, save_invstd, batch statistics?) of the last forward

    def _expected_shape(self):
        return {2: "(N, C) or (N, C, L)", 4: "(N, C, H, W)", 5: "(N, C, D, H, W)"}[self.ndim]

    def _ranks(self):
        """The input ranks taken: BatchNorm1d's (N, C) and (N, C, L), BatchNorm2d's 4,
        BatchNorm3d's 5."""
        return (2, 3) if self.ndim == 2 else (self.ndim,)

    def infer_shape(self, shape, dtype):
        where = self._where()
        shape = tuple(shape)
        if len(shape) not in self._ranks() or shape[1] != self.num_features:
            want = self._expected_shape().replace("C", str(self.num_features))
            # PyTorch: a wrong rank is its ValueError, a wrong channel count the
            # RuntimeError of its kernel ("running_mean should contain ... elements")
            error = ValueError if len(shape) not in self._ranks() else RuntimeValueError
            raise error(f"{where}: expected input of shape {want}, got {shape}")
        c = (self.num_features,)
        self._check_params((("weight", self.weight, c), ("bias", self.bias, c),
                            ("running_mean", self.running_mean, c),
                            ("running_var", self.running_var, c)))
        self._check_dtype(dtype, self._param_dtype())
        if not self.mean_only and (self.running_mean is None) != (self.running_var is None):
            # one buffer set to None: PyTorch refuses it (ValueError in training,
            # RuntimeError in eval mode), before the kernel would update the other alone
            raise RuntimeValueError(f"{where}: running_mean and running_var must either "
                                    f"both be None or neither be None")
        if (self._batch_statistics() and float_of(where, "eps", self.eps) <= 0
                and not self.mean_only):
            # PyTorch's check: a constant channel would divide 0 by sqrt(0)
            raise ValueError(f"{where}: eps must be positive when normalising with batch "
                             f"statistics (training), got {self.eps}")
        # one value per channel has no variance; none (an empty batch) runs, as PyTorch.
        # mean_only needs none: one value gives y = x - x + bias = bias (grad_in 0)
        if (self._batch_statistics() and not self.mean_only
                and math.prod(shape) // self.num_features == 1):
            if self.track_running_stats:
                mode, remedy = "training mode (batch statistics)", "a larger batch or eval()"
            else:
                mode, remedy = "batch statistics (track_running_stats=False)", "a larger batch"
            raise ValueError(f"{where}: expected more than 1 value per channel in {mode}, "
                             f"got input of shape {shape}; use {remedy}")
        return shape

    def _batch_statistics(self):
        """Normalise with the batch's statistics: training, or no running statistics.
        As in PyTorch, eval mode uses the running buffers whenever the layer has them,
        whatever ``track_running_stats`` says (set False after construction, it stops
        their updates; eval then uses batch statistics once they are set to None)."""
        return self.training or (self.running_mean is None
                                 and (self.mean_only or self.running_var is None))

    def _param_dtype(self):
        """The dtype of the parameters and buffers (set by .float()/.double()); None for
        a layer that has neither (affine=False, track_running_stats=False): it takes
        either float type."""
        for param in (self.bias, self.weight):
            if param is not None:
                return param.data.dtype
        return None if self.running_mean is None else self.running_mean.dtype

    def _constant(self, key, value, dtype):
        """(C,) array of value where the layer lives, kept until its dtype or device
        changes (the weight and bias of affine=False, scratch running statistics)."""
        buf = self._scratch.get(key)
        if buf is None or buf.dtype != dtype:
            buf = _device.namespace(self._device).put(np.full(self.num_features, value, dtype))
            self._scratch[key] = buf
        return buf

    def _kernel_arrays(self, dtype):
        """(weight, bias, running_mean, running_var) as the kernels take them."""
        weight = None
        if not self.mean_only:
            weight = self.weight.data if self.affine else self._constant("ones", 1, dtype)
        bias = self.bias.data if self.bias is not None else self._constant("zeros", 0, dtype)
        if not self._batch_statistics() or (self.track_running_stats
                                            and self.running_mean is not None):
            return weight, bias, self.running_mean, self.running_var
        # batch statistics only: the kernels' running-statistics update goes to scratch
        return (weight, bias, self._constant("scratch_mean", 0, dtype),
                None if self.mean_only else self._constant("scratch_var", 1, dtype))

    def _forward(self, x, buffered):
        c, dtype = self.num_features, x.dtype
        shape = tuple(x.shape)
        if len(shape) not in (2, 4):  # (N, C, L) or (N, C, D, H, W): the (N, C, H, W)
            x = x.reshape(shape[:2] + (math.prod(shape[2:]), 1))  # kernels on a view
        out = self._buffer("y", x.shape, dtype) if buffered else None
        save_mean = self._buffer("save_mean", (c,), dtype)
        save_invstd = None if self.mean_only else self._buffer("save_invstd", (c,), dtype)
        batch = self._batch_statistics()
        weight, bias, running_mean, running_var = self._kernel_arrays(dtype)
        # (eps and momentum are attributes a user may set: read before the kernel, which
        # updates the running statistics, their errors naming the layer)
        eps = float_of(type(self).__name__, "eps", self.eps)
        momentum = self.momentum
        counted = self.training and self.track_running_stats
        if counted and momentum is None:
            momentum = 1.0 / (self.num_batches_tracked + 1)
        momentum = 0.1 if momentum is None else float_of(type(self).__name__, "momentum",
                                                         momentum)
        # an empty batch with batch statistics: ops' early exit (PyTorch's empty output,
        # running statistics untouched) instead of a kernel's mean over no values
        run = ops.batchnorm_forward if batch and x.size == 0 else \
            self._kernels().batchnorm_forward
        y, save_mean, save_invstd = run(
            x, weight, bias, running_mean, running_var, training=batch,
            momentum=momentum, eps=eps,
            mean_only=self.mean_only, out=out,
            save_mean=save_mean, save_invstd=save_invstd)
        if counted:   # (after the kernel: a call that fails counts nothing)
            self.num_batches_tracked += 1
        self._ctx = (x, save_mean, save_invstd, batch)
        return y if len(shape) == x.ndim else y.reshape(shape)

    def _backward(self, grad_out, buffered, need_grad_in):
        x, save_mean, save_invstd, training = self._ctx
        if nothing_to_compute(need_grad_in, self.weight, self.bias):
            return None   # (all frozen: PyTorch's backward neither computes nor touches them)
        shape = tuple(grad_out.shape)
        grad_out = grad_out.reshape(x.shape) if len(shape) != x.ndim else grad_out
        # The kernel always produces grad_in (its reductions are needed anyway).
        grad_in = self._buffer("grad_in", grad_out.shape, grad_out.dtype) if buffered else None
        weight = self._kernel_arrays(grad_out.dtype)[0]
        run = ops.batchnorm_backward if x.size == 0 else self._kernels().batchnorm_backward
        grad_in = run(
            grad_out, x, weight, save_mean, save_invstd, training=training,
            mean_only=self.mean_only,
            grad_weight=live_grad(self.weight), grad_bias=live_grad(self.bias),
            grad_in=grad_in)
        if not need_grad_in:
            return None
        return grad_in if len(shape) == x.ndim else grad_in.reshape(shape)

    def extra_repr(self):
        """PyTorch's; the mean-only variant (fastnn's own) says so instead."""
        text = f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
        if self.mean_only:
            return text + ", mean_only=True"
        return (text + f", affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) inputs over the batch, per feature, or of (N, C, L)
    inputs over batch and length, per channel (PyTorch's two forms).

    .weight (gamma) and .bias (beta): (C,) parameters; .running_mean, .running_var: (C,)
    buffers updated in training (unbiased variance, PyTorch's momentum rule) and used in
    eval mode; .num_batches_tracked: the training forwards counted (momentum=None's
    divisor), a host int that state_dict gives as a 0-d int64 array after running_var
    (PyTorch's key order; absent with track_running_stats=False). A state dict without
    it (an older checkpoint) loads strictly and leaves the count as it is.
    mean_only=True: y = x - batch mean + bias (no weight, no running_var); having no
    variance to take, it trains on one value per channel too (y = bias, no gradient to
    x), which the full form refuses as PyTorch's.
    bias=False (keyword, PyTorch 2.13's): a weight and no bias.
    """

    ndim = 2


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs over batch and space, per channel."""

    ndim = 4

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float32, *, bias=True):
        super().__init__(num_features, eps=eps, momentum=momentum, mean_only=False,
                         dtype=dtype, affine=affine, track_running_stats=track_running_stats,
                         bias=bias)


class BatchNorm3d(BatchNorm2d):
    """Batch normalisation of (N, C, D, H, W) inputs over batch and volume, per channel
    (the 2-D kernels on an (N, C, D * H * W, 1) view)."""

    ndim = 5
