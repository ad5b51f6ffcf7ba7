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

import numpy as np

from .. import device as _device
from .. import nn
from .. import random as _random
from ..validation import check_float_array, check_non_negative_int, check_positive_int
from ..nn.module import checks_sub_forwards, evaluating, records_sub_forwards
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
        n, latent = x.shape[0], self.latent_dim
        if eps is not None:
            check_float_array("VAE", "eps", eps, shape=(n, latent), dtype=x.dtype)
        enc = self.encoder(x)
        mu_z, log_sz = enc[:, :latent], enc[:, latent:]
        if eps is None:
            eps = self._rng.standard_normal(mu_z.shape).astype(x.dtype)
        sigma_z = np.exp(log_sz)
        z = mu_z + sigma_z * eps
        dec = self.decoder(z)
        mu_x, log_sx = dec[:, :self.data_dim], dec[:, self.data_dim:]
        inv_var_x = np.exp(-2 * log_sx)
        resid = x - mu_x
        with np.errstate(invalid="ignore"):  # an empty batch's mean is NaN, as in PyTorch
            nll = (_HALF_LOG_2PI + log_sx + 0.5 * resid ** 2 * inv_var_x).sum() / n
            kl = (-log_sz - 0.5 + 0.5 * (mu_z ** 2 + sigma_z ** 2)).sum() / n
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
        ``retain_graph=True``)."""
        if self._cache is None:
            raise RuntimeError("VAE: backward() called before forward()")
        n, mu_z, sigma_z, eps, resid, inv_var_x = self._cache
        scale = resid.dtype.type(1.0 / max(n, 1))  # an empty batch has nothing to scale
        grad_mu_x = -resid * inv_var_x * scale
        grad_log_sx = (1 - resid ** 2 * inv_var_x) * scale
        grad_z = self.decoder.backward(np.concatenate([grad_mu_x, grad_log_sx], axis=1))
        # through z = mu_z + exp(log_sz) * eps, plus the KL term's own gradient
        grad_mu_z = grad_z + mu_z * scale
        grad_log_sz = grad_z * sigma_z * eps + (sigma_z ** 2 - 1) * scale
        grad_x = self.encoder.backward(np.concatenate([grad_mu_z, grad_log_sz], axis=1),
                                       need_grad_in)
        if not need_grad_in:
            return None
        grad_x = grad_x - grad_mu_x  # x also enters the NLL, opposite to mu_x
        return _device.Cuda.put(grad_x) if self._x_on_device else grad_x

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
