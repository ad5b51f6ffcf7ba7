"""GroupNorm and InstanceNorm1d/2d/3d (PyTorch's semantics), run by the layer_norm
kernels: each (sample, group) is one row of an (N * groups, C / groups * spatial) view.
"""
import math
import warnings

import numpy as np

from .. import device as _device
from .. import grad_mode as _grad_mode
from ..errors import RuntimeValueError
from ..validation import check_bool, check_number, check_positive_int
from . import init
from .module import BatchCounter, Module, Parameter, live_grad, nothing_to_compute


class _GroupedNorm(Module):
    """Normalise x (N, C, *) over each sample's channel groups and all spatial positions:
    y = (x - mean) / sqrt(var + eps) * weight[c] + bias[c] (biased variance). The
    normalisation is the backend's layer_norm kernels on the (N * G, C / G * spatial)
    view (no copy), on the GPU too; the per-channel scale and shift (weight, bias of
    shape (C,)) and their gradients are the backend's batchnorm kernels in eval mode
    with mean 0 and deviation 1 (one fused pass each way; NumPy on the host for a device
    array). The same in training and eval mode."""

    dims = None  # spatial rank of InstanceNorm{1,2,3}d; None: GroupNorm, any rank >= 2

    def reset_parameters(self):
        """PyTorch's: weight 1 and bias 0 (where present), in place."""
        init.reset_affine(self.weight, self.bias)

    def _setup(self, num_channels, groups, eps, affine, bias, dtype):
        """Set the channels, groups, eps and the (C,) affine parameters."""
        name = type(self).__name__
        self._channels, self._groups = num_channels, groups
        check_number(name, "eps", eps, low=0.0, high=None)
        self.eps = float(eps)
        self.affine = check_bool(name, "affine", affine)
        with_bias = self.affine and check_bool(name, "bias", bias)
        self.weight = Parameter(np.ones(num_channels, dtype)) if self.affine else None
        self.bias = Parameter(np.zeros(num_channels, dtype)) if with_bias else None
        self._ctx = None

    def infer_shape(self, shape, dtype):
        shape = tuple(shape)
        if self.dims is None:
            ok = len(shape) >= 2 and shape[1] == self._channels
            wanted = f"(N, {self._channels}, *)"
        else:
            batched = len(shape) == self.dims + 2
            ok = len(shape) in (self.dims + 1, self.dims + 2) and \
                self._channels_ok(shape[1 if batched else 0])
            spatial = ", ".join({1: "L", 2: "HW", 3: "DHW"}[self.dims])
            wanted = f"(N, {self._channels}, {spatial}) or ({self._channels}, {spatial})"
        if not ok:
            # PyTorch: GroupNorm's kernel refuses a rank below 2 or another channel count
            # with a RuntimeError; InstanceNorm's rank check is a ValueError
            error = RuntimeValueError if self.dims is None else ValueError
            raise error(f"{self._where()}: expected input of shape {wanted}, got {shape}")
        c = (self._channels,)
        self._check_params((("weight", self.weight, c), ("bias", self.bias, c))
                           + self._statistics_entries(c))
        self._check_dtype(dtype, None if self.weight is None else self.weight.data.dtype)
        self._check_statistics(shape)
        return shape

    def _channels_ok(self, channels):
        """Whether an input of this many channels is taken (InstanceNorm's rule)."""
        return channels == self._channels

    def _statistics_entries(self, c):
        """(name, array, shape c) of the running statistics _check_params checks with
        the parameters (InstanceNorm's; GroupNorm has none)."""
        return ()

    def _check_statistics(self, shape):
        """PyTorch's refusal of statistics over a single value (ValueError)."""

    def _groups_of(self, channels):
        """The groups an input of this many channels is normalised in."""
        return self._groups

    def _forward(self, x, buffered):
        return self._normalized(x, buffered, self._float("eps"))[0]

    def _normalized(self, x, buffered, eps):
        """(the forward's output, ctx): ctx = (rows, xhat, save_mean, save_invstd, (N, C)),
        what the backward reads (kept in _ctx), for InstanceNorm's forward to read on:
        another thread's forward of this layer may replace _ctx, or under no_grad drop it,
        meanwhile. eps: the layer's, read by the caller (``_float``)."""
        shape = tuple(x.shape)
        full = shape if self.dims is None or len(shape) == self.dims + 2 else (1,) + shape
        n, c = full[:2]
        g = self._groups_of(c)
        # explicit sizes: -1 cannot be inferred for an empty batch
        rows = x.reshape(n * g, c // g * math.prod(full[2:]))
        out = self._buffer("y", rows.shape, x.dtype) if buffered else None
        xhat, save_mean, save_invstd = self._kernels().layer_norm_forward(
            rows, None, None, eps, out=out,
            save_mean=self._buffer("save_mean", (n * g,), x.dtype),
            save_invstd=self._buffer("save_invstd", (n * g,), x.dtype))
        self._ctx = ctx = (rows, xhat, save_mean, save_invstd, (n, c))
        if not self.affine:
            return xhat.reshape(shape), ctx
        spatial = rows.shape[1] * g // c
        if not _device.is_device_array(x):
            return self._affine_forward(xhat, (n, c, spatial), buffered, shape), ctx
        h = _device.to_host(xhat).reshape(n, c, spatial)
        y = h * self.weight.numpy()[:, None]
        if self.bias is not None:
            y += self.bias.numpy()[:, None]
        return _device.namespace_of(x).put(y.reshape(shape)), ctx

    def _identity_statistics(self, c, dtype):
        """(zeros, ones) of shape (C,): the mean and inverse deviation (or variance) under
        which the batchnorm kernels in eval mode are the per-channel affine alone."""
        key = ("identity statistics", c, np.dtype(dtype))
        pair = self._scratch.get(key)
        if pair is None:
            pair = self._scratch[key] = (np.zeros(c, dtype), np.ones(c, dtype))
        return pair

    def _affine_forward(self, xhat, ncs, buffered, shape):
        """xhat * weight[c] + bias[c] on the host in one compiled pass: the backend's
        batchnorm_forward in eval mode with mean 0, variance 1 and eps 0 (the NumPy
        multiply and add read and wrote the (N, C, S) array twice more)."""
        n, c, s = ncs
        zeros, ones = self._identity_statistics(c, xhat.dtype)
        bias = self.bias.data if self.bias is not None else zeros
        # (under no_grad a Sequential lends xhat its output array ("y"); an own buffer
        # here would keep an output-sized array after the pass: a fresh one, freed as
        # the pass goes on)
        out = (self._buffer("y_affine", (n, c, s, 1), xhat.dtype)
               if buffered and _grad_mode._MODE.enabled else None)
        y, _, _ = self._kernels().batchnorm_forward(
            xhat.reshape(n, c, s, 1), self.weight.data, bias, zeros, ones, training=False,
            eps=0.0, out=out)
        return y.reshape(shape)

    def _affine_backward(self, grad_out, xhat, ncs, buffered):
        """(grad_out * weight[c]) as the rows' gradient, with weight.grad += sum of
        grad_out * xhat and bias.grad += sum of grad_out per channel, in one compiled
        pass: the backend's batchnorm_backward in eval mode with mean 0 and inverse
        deviation 1 (NumPy's float64 einsum and sums were 4x PyTorch's time)."""
        n, c, s = ncs
        zeros, ones = self._identity_statistics(c, xhat.dtype)
        out = self._buffer("grad_affine", (n, c, s, 1), xhat.dtype) if buffered else None
        return self._kernels().batchnorm_backward(
            grad_out.reshape(n, c, s, 1), xhat.reshape(n, c, s, 1), self.weight.data, zeros,
            ones, training=False, grad_weight=live_grad(self.weight),
            grad_bias=live_grad(self.bias), grad_in=out)

    def _accumulate_affine_grads(self, g, xhat):
        """weight.grad += sum of g * xhat, bias.grad += sum of g, per channel; g, xhat:
        (N, C, S) on the host; a frozen one's neither computed nor touched."""
        if self.weight.requires_grad:
            grad_w = np.einsum("ncs,ncs->c", g, xhat, dtype=np.float64).astype(g.dtype)
            _device.update_on_host(self.weight.grad, lambda a: np.add(a, grad_w, out=a))
        if live_grad(self.bias) is not None:
            grad_b = g.sum(axis=(0, 2), dtype=np.float64).astype(g.dtype)
            _device.update_on_host(self.bias.grad, lambda a: np.add(a, grad_b, out=a))

    def _backward(self, grad_out, buffered, need_grad_in):
        if nothing_to_compute(need_grad_in, self.weight, self.bias):
            return None   # (all frozen: PyTorch's backward neither computes nor touches them)
        rows, xhat, save_mean, save_invstd, (n, c) = self._ctx
        shape = tuple(grad_out.shape)
        grad_rows = grad_out.reshape(rows.shape)
        spatial = rows.shape[1] * self._groups_of(c) // c
        if self.affine and not _device.is_device_array(grad_out):
            grad_rows = self._affine_backward(grad_out, xhat, (n, c, spatial), buffered)
            if not need_grad_in:
                return None
            grad_rows = grad_rows.reshape(rows.shape)
        elif self.affine:
            g = _device.to_host(grad_out).reshape(n, c, spatial)
            self._accumulate_affine_grads(g, _device.to_host(xhat).reshape(n, c, spatial))
            if not need_grad_in:
                return None
            scaled = (g * self.weight.numpy()[:, None]).reshape(rows.shape)
            grad_rows = _device.namespace_of(grad_out).put(scaled)
        if not need_grad_in:
            return None
        grad_in = self._buffer("grad_in", rows.shape, rows.dtype) if buffered else None
        grad_in = self._kernels().layer_norm_backward(grad_rows, rows, None, save_mean,
                                                      save_invstd, grad_in=grad_in)
        return grad_in.reshape(shape)


class GroupNorm(_GroupedNorm):
    """Group normalisation (Wu & He): the C channels in num_groups groups, each sample's
    group normalised over its channels and positions, then a per-channel affine (weight
    ones, bias zeros, with affine=True; bias=False drops the bias). Input (N, C, *),
    output the same shape."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, dtype=np.float32, *,
                 bias=True):
        super().__init__()
        self.num_groups = check_positive_int("GroupNorm", "num_groups", num_groups)
        self.num_channels = check_positive_int("GroupNorm", "num_channels", num_channels,
                                               negative=RuntimeValueError)
        if self.num_channels % self.num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible "
                             f"by num_groups ({num_groups})")
        self._setup(self.num_channels, self.num_groups, eps, affine, bias, dtype)

    def _check_statistics(self, shape):
        """As PyTorch (in training and eval mode): N * C / G * spatial values in all,
        more than 1."""
        if math.prod(shape) // self.num_groups == 1:
            raise ValueError(f"{self._where()}: expected more than 1 value per channel "
                             f"group over the batch, got input of shape {shape}")

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class _InstanceNorm(BatchCounter, _GroupedNorm):
    """Instance normalisation: each sample's channel normalised over its positions, with a
    per-channel affine when affine=True (default False). Input (N, C, *spatial) or
    unbatched (C, *spatial); output the same shape.

    track_running_stats=True (PyTorch's option; default False) keeps running_mean and
    running_var (C,): each training forward moves them by momentum towards the batch's
    average of the instances' means and unbiased variances (momentum None leaves them
    where they are, as PyTorch's instance norm takes it as 0), and eval mode normalises
    with them, a per-channel affine as BatchNorm's eval (NumPy on the host). With
    track_running_stats the state dict also holds PyTorch's num_batches_tracked (a 0-d
    int64 array that instance norm never moves) after running_var.

    As PyTorch's, the running statistics are used (eval mode with
    track_running_stats) or moved (otherwise) whenever the layer has them: set to None,
    training leaves them out and eval mode with track_running_stats is a RuntimeError;
    track_running_stats set False after construction normalises with the input's
    statistics and still moves them in training.

    An input whose channels are not num_features is normalised all the same, with
    PyTorch's UserWarning, when the layer has neither affine parameters nor running
    statistics (num_features is then unused); otherwise it is a ValueError
    (RuntimeError too with running statistics, as PyTorch's)."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False,
                 track_running_stats=False, dtype=np.float32, *, bias=True):
        super().__init__()
        name = type(self).__name__
        self.num_features = check_positive_int(name, "num_features", num_features)
        if momentum is not None:  # unused without running statistics, kept as PyTorch
            check_number(name, "momentum", momentum, low=0.0, high=1.0, high_open=False)
        self.momentum = None if momentum is None else float(momentum)
        self.track_running_stats = check_bool(name, "track_running_stats",
                                              track_running_stats)
        self._setup(self.num_features, self.num_features, eps, affine, bias, dtype)
        c, tracked = self.num_features, self.track_running_stats
        self.register_buffer("running_mean", np.zeros(c, dtype) if tracked else None)
        self.register_buffer("running_var", np.ones(c, dtype) if tracked else None)
        #: PyTorch's counter, which instance norm never moves (in the state dict, as
        #: PyTorch's, when track_running_stats)
        self.num_batches_tracked = 0
        self._eval_ctx = None

    def _has_running(self):
        """Whether the layer holds both running statistics (None after a user set them
        so)."""
        return self.running_mean is not None and self.running_var is not None

    def _input_statistics(self):
        """PyTorch's use_input_stats: normalise with the input's own statistics."""
        return self.training or not self.track_running_stats

    def _channels_ok(self, channels):
        """As PyTorch: any channel count without per-channel parameters or statistics;
        with running statistics (and no affine) another count is PyTorch's
        RuntimeError."""
        if channels == self._channels or not (self.affine or self._has_running()):
            return True
        if not self.affine:
            raise RuntimeValueError(f"{self._where()}: expected input of {self._channels} "
                                    f"channels (running_mean and running_var have "
                                    f"{self._channels} elements), got {channels}")
        return False

    def _groups_of(self, channels):
        return channels   # (one group per channel, num_features or not)

    def _statistics_entries(self, c):
        return (("running_mean", self.running_mean, c), ("running_var", self.running_var, c))

    def _check_statistics(self, shape):
        """As PyTorch: statistics of the input (training, or no running statistics)
        need more than 1 spatial position; eval mode with track_running_stats needs the
        running statistics."""
        if not self._input_statistics() and not self._has_running():
            raise RuntimeValueError(f"{self._where()}: Expected running_mean and "
                                    f"running_var to be defined when use_input_stats is "
                                    f"false (eval mode with track_running_stats=True)")
        if self._input_statistics() and math.prod(shape[len(shape) - self.dims:]) == 1:
            raise ValueError(f"{self._where()}: expected more than 1 spatial element for "
                             f"instance statistics (training mode or no running "
                             f"statistics), got input of shape {shape}")

    def _forward(self, x, buffered):
        axis = x.ndim - self.dims - 1
        if x.shape[axis] != self._channels:
            warnings.warn(f"{self._where()}: input's size at dim={axis} does not match "
                          f"num_features. You can silence this warning by not passing in "
                          f"num_features, which is not used because affine=False",
                          UserWarning)
        # (eps and momentum are attributes a user may set: read at each forward)
        eps = self._float("eps")
        if not self._input_statistics():
            return self._forward_running(x, eps)
        momentum = self._float("momentum", none=True) if self._has_running() else None
        self._eval_ctx = None
        y, ctx = self._normalized(x, buffered, eps)
        if eps == 0:
            self._constant_instances(y, ctx)
        if self._has_running():
            self._update_running(ctx, eps, momentum)
        return y

    def _constant_instances(self, y, ctx):
        """With eps 0, PyTorch's instance norm (a batch norm) takes 1 / sqrt(var + eps) as
        0 for an instance of variance 0: its xhat is 0, its output the bias (0 without)
        and its input gradient 0, where the layer_norm kernels' inf invstd gives NaN.
        save_invstd, xhat and y (the forward's output) are changed so, in place (ctx:
        what ``_normalized`` gave with y)."""
        rows, xhat, save_mean, save_invstd, (n, c) = ctx
        dead = np.isinf(_device.to_host(save_invstd))
        if not dead.any():
            return

        def zero(a):
            a.reshape(dead.size, -1)[dead] = 0
        _device.update_on_host(save_invstd, zero)
        _device.update_on_host(xhat, zero)   # (y itself without affine: a view of it)
        if self.affine:
            shift = (np.zeros(c, y.dtype) if self.bias is None
                     else _device.to_host(self.bias.data))
            rows_shift = np.tile(shift, n)[dead][:, None]

            def fill(a):
                a.reshape(dead.size, -1)[dead] = rows_shift
            _device.update_on_host(y, fill)

    def _update_running(self, ctx, eps, momentum):
        """Move the running statistics towards this batch's instance statistics (ctx:
        what ``_normalized`` gave) by momentum (None: not at all)."""
        rows, _, save_mean, save_invstd, (n, c) = ctx
        if n == 0:  # an empty batch has no instance statistics: leave the running ones
            return
        count = rows.shape[1]
        mean = _device.to_host(save_mean).reshape(n, c).astype(np.float64)
        if _device.is_device_array(rows):
            invstd = _device.to_host(save_invstd).reshape(n, c).astype(np.float64)
            var = (1.0 / (invstd * invstd) - eps) * count / max(count - 1, 1)
        else:   # from the input itself: 1 / invstd^2 - eps loses a variance far below eps
            var = rows.var(axis=1, ddof=1, dtype=np.float64).reshape(n, c)
        # PyTorch's instance norm takes momentum None as 0: the statistics stay put
        m = 0.0 if momentum is None else momentum
        for name, batch in (("running_mean", mean), ("running_var", var)):
            buf = getattr(self, name)
            _device.update_on_host(buf, lambda a, b=batch: np.copyto(
                a, (1 - m) * a + m * b.mean(axis=0), casting="unsafe"))

    def _forward_running(self, x, eps):
        """Eval mode with running statistics: y = (x - running_mean) * scale + bias."""
        host = _device.to_host(x)
        shape = tuple(host.shape)
        full = host.reshape((1,) + shape if len(shape) == self.dims + 1 else shape)
        n, c = full.shape[:2]
        dt = host.dtype
        invstd = (1.0 / np.sqrt(_device.to_host(self.running_var).astype(np.float64)
                                + eps)).astype(dt)
        xhat = ((full.reshape(n, c, math.prod(full.shape[2:]))
                 - _device.to_host(self.running_mean)[:, None]) * invstd[:, None])
        y = xhat
        if self.affine:
            y = xhat * self.weight.numpy()[:, None]
            if self.bias is not None:
                y = y + self.bias.numpy()[:, None]
        self._eval_ctx = (xhat, invstd, (n, c))
        return _device.namespace_of(x).put(_device.c_contiguous(y.reshape(shape), dt))

    def _backward(self, grad_out, buffered, need_grad_in):
        if self._eval_ctx is None:
            return super()._backward(grad_out, buffered, need_grad_in)
        if nothing_to_compute(need_grad_in, self.weight, self.bias):
            return None   # (all frozen: PyTorch's backward neither computes nor touches them)
        xhat, invstd, (n, c) = self._eval_ctx
        g = _device.to_host(grad_out)
        shape = tuple(g.shape)
        g3 = g.reshape(xhat.shape)
        scale = invstd
        if self.affine:
            self._accumulate_affine_grads(g3, xhat)
            scale = invstd * self.weight.numpy()
        if not need_grad_in:
            return None
        grad = (g3 * scale[:, None]).reshape(shape)
        return _device.namespace_of(grad_out).put(_device.c_contiguous(grad, g.dtype))

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class InstanceNorm1d(_InstanceNorm):
    dims = 1
    __doc__ = _InstanceNorm.__doc__


class InstanceNorm2d(_InstanceNorm):
    dims = 2
    __doc__ = _InstanceNorm.__doc__


class InstanceNorm3d(_InstanceNorm):
    dims = 3
    __doc__ = _InstanceNorm.__doc__
