"""A variational auto-encoder with Gaussian encoder and decoder, backward written out.

Encoder MLP: x (N, D) -> (mu_z, log_sigma_z), each (N, L).
Reparameterisation: z = mu_z + sigma_z * eps, eps ~ N(0, I).
Decoder MLP: z (N, L) -> (mu_x, log_sigma_x), each (N, D).
Loss (negative ELBO), per sample, summed over dimensions and averaged over the batch:
    NLL = ½ log 2π + log σx + (x − μx)² / (2 σx²)
    KL  = −log σz − ½ + ½ (μz² + σz²)
"""
import json
import math
import threading

import numpy as np

from .. import device as _device
from .. import grad_mode as _grad_mode
from .. import nn
from .. import random as _random
from ..validation import (as_contiguous, check_float_array, check_non_negative_int,
                          check_positive_int)
from ..nn.module import (_drop_ended_threads, _note_thread_buffer, backward_in_buffer,
                         checks_sub_forwards, evaluating, records_sub_forwards)
from .mlp import MLP, hidden_widths

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class VAE(nn.Module):
    """VAE(data_dim, latent_dim=2, hidden=(64, 64), activation='tanh', seed=0).

    forward(x, eps=None) -> (loss, nll, kl): the negative ELBO and its two terms (floats,
    batch means), with eps drawn from the module's own generator (seeded by ``seed``) when
    not given; backward() accumulates every parameter's gradient of that loss and returns
    its gradient w.r.t. x, (N, data_dim).
    """

    config_name = "vae"

    def __init__(self, data_dim, latent_dim=2, hidden=(64, 64), activation="tanh", seed=0):
        super().__init__()
        data_dim = check_positive_int("VAE", "data_dim", data_dim)
        latent_dim = check_positive_int("VAE", "latent_dim", latent_dim)
        hidden = hidden_widths("VAE", hidden)
        if seed is not None:   # (None: a fresh seed, as NumPy's default_rng)
            seed = check_non_negative_int("VAE", "seed", seed)
        self.config = dict(data_dim=data_dim, latent_dim=latent_dim, hidden=hidden,
                           activation=activation, seed=seed)
        self.data_dim, self.latent_dim = data_dim, latent_dim
        self.encoder = MLP(data_dim, hidden, 2 * latent_dim, activation=activation)
        self.decoder = MLP(latent_dim, hidden[::-1], 2 * data_dim, activation=activation)
        self._rng = np.random.default_rng(seed)
        self._cache = None
        self._x_on_device = False  # whether the last forward's x was a device array

    @records_sub_forwards   # (sample() or an MLP run since is caught at backward)
    def forward(self, x, eps=None):
        """x: (N, data_dim). eps: (N, latent_dim) noise or None to draw it. Either may be
        a device array (the elementwise terms between the MLPs are computed on the
        host, and backward then returns the gradient w.r.t. x on the device).

        Returns (loss, nll, kl) as floats (batch means of the per-sample sums)."""
        on_device = _device.is_device_array(x)
        x, eps = _device.to_host(x), None if eps is None else _device.to_host(eps)
        check_float_array("VAE", "x", x, ndim=2, shape=(None, self.data_dim))
        n, latent, d = x.shape[0], self.latent_dim, self.data_dim
        if eps is not None:
            check_float_array("VAE", "eps", eps, shape=(n, latent), dtype=x.dtype)
        enc = self._mlp_forward(self.encoder, x)                # (N, 2 latent_dim)
        a = self._step_arrays(n, x.dtype)   # (once the encoder took x and its dtype)
        mu_z, log_sz = enc[:, :latent], enc[:, latent:]
        if eps is None:   # (the values of standard_normal((N, latent_dim)).astype(dtype))
            eps = a.eps64
            self._rng.standard_normal(out=eps)
            if x.dtype != np.float64:
                np.copyto(a.eps, eps)
                eps = a.eps
        # z = mu_z + sigma_z * eps
        sigma_z = np.exp(log_sz, out=a.sigma_z)
        z = np.add(mu_z, np.multiply(sigma_z, eps, out=a.z), out=a.z)
        dec = self._mlp_forward(self.decoder, z)                # (N, 2 data_dim)
        mu_x, log_sx = dec[:, :d], dec[:, d:]
        # inv_var_x = exp(-2 * log_sx)
        inv_var_x = np.exp(np.multiply(-2, log_sx, out=a.inv_var_x), out=a.inv_var_x)
        resid = np.subtract(x, mu_x, out=a.resid)
        # Each expression in the comments below, one ufunc at a time in its order, into
        # C-ordered arrays as its fresh result was: the sums add the same numbers in
        # the same order, so the losses are those of the expressions, bit for bit.
        nll_terms, log_terms = a.work
        kl_terms, squares = a.kl_terms, a.squares
        with np.errstate(invalid="ignore"):  # an empty batch's mean is NaN, as in PyTorch
            # nll_terms = _HALF_LOG_2PI + log_sx + 0.5 * resid ** 2 * inv_var_x
            np.add(_HALF_LOG_2PI, log_sx, out=log_terms)
            np.square(resid, out=nll_terms)
            np.multiply(0.5, nll_terms, out=nll_terms)
            np.multiply(nll_terms, inv_var_x, out=nll_terms)
            np.add(log_terms, nll_terms, out=nll_terms)
            nll = nll_terms.sum() / n
            # kl_terms = -log_sz - 0.5 + 0.5 * (mu_z ** 2 + sigma_z ** 2)
            np.square(sigma_z, out=kl_terms)                    # (sigma_z ** 2 for now)
            np.add(np.square(mu_z, out=squares), kl_terms, out=squares)
            np.multiply(0.5, squares, out=squares)
            np.negative(log_sz, out=kl_terms)
            np.subtract(kl_terms, 0.5, out=kl_terms)
            np.add(kl_terms, squares, out=kl_terms)
            kl = kl_terms.sum() / n
        self._cache = (n, mu_z, sigma_z, eps, resid, inv_var_x)
        self._x_on_device = on_device   # (with the cache: a refused call keeps the last's)
        return float(nll + kl), float(nll), float(kl)

    __call__ = forward

    @checks_sub_forwards
    def backward(self, need_grad_in=True):
        """Accumulate every parameter's gradient of the last forward's loss; returns the
        loss's gradient w.r.t. x, (N, data_dim) (through the encoder and the NLL), where
        that x was, or None with need_grad_in=False, which skips the encoder's input
        product (a training step, whose loop discards it). A second call adds that
        forward's gradient again (as every module's backward, PyTorch's
        ``retain_graph=True``). The returned array is fresh, the caller's to keep."""
        if self._cache is None:
            raise RuntimeError("VAE: backward() called before forward()")
        n, mu_z, sigma_z, eps, resid, inv_var_x = self._cache
        a = self._step_arrays(n, resid.dtype)
        scale = resid.dtype.type(1.0 / max(n, 1))  # an empty batch has nothing to scale
        # Each gradient is worked in a C-ordered array of its own, then the two of each
        # MLP's output are put side by side (NumPy's loops over the column halves of an
        # (N, 2 data_dim) array ran 2.5x slower, through its iterator's copies).
        grad_mu_x, grad_log_sx = a.work
        # grad_mu_x = -resid * inv_var_x * scale
        np.negative(resid, out=grad_mu_x)
        np.multiply(grad_mu_x, inv_var_x, out=grad_mu_x)
        np.multiply(grad_mu_x, scale, out=grad_mu_x)
        # grad_log_sx = (1 - resid ** 2 * inv_var_x) * scale
        np.square(resid, out=grad_log_sx)
        np.multiply(grad_log_sx, inv_var_x, out=grad_log_sx)
        np.subtract(1, grad_log_sx, out=grad_log_sx)
        np.multiply(grad_log_sx, scale, out=grad_log_sx)
        grad_dec = np.concatenate(a.work, axis=1, out=a.grad_dec)
        grad_z = backward_in_buffer(self.decoder, grad_dec, True)   # (N, latent_dim)
        # through z = mu_z + exp(log_sz) * eps, plus the KL term's own gradient
        grad_mu_z, grad_log_sz = a.latent_work
        # grad_mu_z = grad_z + mu_z * scale
        np.add(grad_z, np.multiply(mu_z, scale, out=grad_mu_z), out=grad_mu_z)
        # grad_log_sz = grad_z * sigma_z * eps + (sigma_z ** 2 - 1) * scale
        kl_part = a.squares
        np.square(sigma_z, out=kl_part)
        np.subtract(kl_part, 1, out=kl_part)
        np.multiply(kl_part, scale, out=kl_part)
        np.multiply(grad_z, sigma_z, out=grad_log_sz)
        np.multiply(grad_log_sz, eps, out=grad_log_sz)
        np.add(grad_log_sz, kl_part, out=grad_log_sz)
        grad_enc = np.concatenate(a.latent_work, axis=1, out=a.grad_enc)
        grad_x = backward_in_buffer(self.encoder, grad_enc, need_grad_in)
        if not need_grad_in:
            return None
        grad_x = np.subtract(grad_x, grad_mu_x)  # x also enters the NLL, opposite to mu_x
        return _device.Cuda.put(grad_x) if self._x_on_device else grad_x

    def _step_arrays(self, n, dtype):
        """This thread's _StepArrays for n samples of dtype, kept from step to step (as a
        layer's buffers: one set per thread, made anew when n or the dtype changes).
        Fresh ones on a GPU model (the terms between the MLPs are the host's) and under
        no_grad (nothing is kept between calls there, as a Sequential keeps nothing)."""
        if self._device != "cpu" or not _grad_mode._MODE.enabled:
            return _StepArrays(n, self.latent_dim, self.data_dim, dtype, np.empty)
        slot = ("step_arrays", threading.get_ident())
        arrays = self._scratch.get(slot)
        if arrays is None or arrays.batch != (n, dtype):
            arrays = _StepArrays(n, self.latent_dim, self.data_dim, dtype, _device.Host.empty)
            if self._scratch:
                _drop_ended_threads(self._scratch)
            self._scratch[slot] = arrays
            _note_thread_buffer(self)   # (dropped when the thread ends)
        return arrays

    @staticmethod
    def _mlp_forward(mlp, x):
        """mlp(x): on the host with gradients enabled, its output in the buffer of its
        last layer (read before the next forward overwrites it); with hooks on mlp, on
        the GPU or under no_grad, its public call's fresh array."""
        if (mlp._hooked or mlp._device != "cpu" or type(x) is not np.ndarray
                or not _grad_mode._MODE.enabled):
            return mlp(x)
        mlp.infer_shape(x.shape, x.dtype)  # (the public call's checks, before any layer runs)
        return mlp._run_forward(as_contiguous(x), True)

    def get_extra_state(self):
        """The noise generator's state as a JSON string (state_dict's '_extra_state'), so a
        model loaded from a checkpoint draws the same eps as the saved one would have."""
        return json.dumps(self._rng.bit_generator.state)

    def set_extra_state(self, state):
        """Restore the noise generator from ``get_extra_state``'s string."""
        try:
            parsed = json.loads(state)
            kind = parsed["bit_generator"]
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"VAE.set_extra_state: expected the JSON string of a NumPy "
                             f"generator state, got {state!r:.80} ({exc})") from None
        if kind != type(self._rng.bit_generator).__name__:
            raise ValueError(f"VAE.set_extra_state: a {kind} state does not fit the "
                             f"{type(self._rng.bit_generator).__name__} generator")
        self._rng.bit_generator.state = parsed

    def sample(self, n, rng=None, dtype=None):
        """Draw n points (n, data_dim) from the generative model: z ~ N(0, I),
        x ~ N(mu_x, sigma_x²), computed in the parameters' dtype and returned in ``dtype``
        (default: that dtype).

        rng: a np.random.Generator, or a seed for one; None draws from fastnn's generator
        (``fastnn.manual_seed`` repeats it), as PyTorch's sampling draws from its global
        one. The training noise generator (``seed``) is not touched."""
        n = check_non_negative_int("VAE.sample", "n", n)
        try:
            rng = _random.generator() if rng is None else np.random.default_rng(rng)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"VAE.sample: expected rng to be None, a seed or a "
                            f"np.random.Generator, got {rng!r:.80} ({exc})") from None
        own = self.decoder[0].weight.data.dtype  # the decoder runs in its own dtype
        dtype = own if dtype is None else np.dtype(dtype)
        with evaluating(self):
            z = rng.standard_normal((n, self.latent_dim)).astype(own)
            dec = self.decoder(z)
        mu_x, log_sx = dec[:, :self.data_dim], dec[:, self.data_dim:]
        points = mu_x + np.exp(log_sx) * rng.standard_normal(mu_x.shape).astype(own)
        return points.astype(dtype, copy=False)


class _StepArrays:
    """The host arrays of one VAE step that no caller sees, for N samples of one dtype
    (the MLPs keep their outputs and input gradients in their layers' buffers). What
    forward keeps for backward (sigma_z, eps, resid, inv_var_x) stays until the next
    forward; backward's own arrays are rewritten by a second backward, with the same
    values. The gradient backward returns is a fresh array, the caller's.

    eps64 (N, latent_dim) float64: the noise as drawn; eps (N, latent_dim): in dtype
    sigma_z, z (N, latent_dim); kl_terms, squares (N, latent_dim): the KL's terms
    inv_var_x, resid (N, data_dim)
    work (2, N, data_dim): the NLL's terms in forward, (grad_mu_x, grad_log_sx) in backward
    grad_dec (N, 2 data_dim): [grad_mu_x | grad_log_sx], the decoder's output gradient
    latent_work (2, N, latent_dim): (grad_mu_z, grad_log_sz)
    grad_enc (N, 2 latent_dim): [grad_mu_z | grad_log_sz], the encoder's output gradient
    """

    def __init__(self, n, latent, data, dtype, empty):
        self.batch = (n, np.dtype(dtype))
        self.eps64 = empty((n, latent), np.float64)
        self.eps, self.sigma_z, self.z, self.kl_terms, self.squares = (
            empty((n, latent), dtype) for _ in range(5))
        self.inv_var_x, self.resid = empty((n, data), dtype), empty((n, data), dtype)
        self.work = empty((2, n, data), dtype)
        self.grad_dec = empty((n, 2 * data), dtype)
        self.latent_work = empty((2, n, latent), dtype)
        self.grad_enc = empty((n, 2 * latent), dtype)
