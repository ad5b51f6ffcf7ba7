"""A variational auto-encoder with a Gaussian encoder and a Gaussian or Bernoulli decoder,
backward written out.

Encoder MLP: x (N, D) -> (mu_z, log_sigma_z), each (N, L).
Reparameterisation: z = mu_z + sigma_z * eps, eps ~ N(0, I).
Decoder MLP: z (N, L) -> (mu_x, log_sigma_x), each (N, D) (likelihood 'gaussian'), or
logits l (N, D) (likelihood 'bernoulli', for intensities in [0, 1] such as images).
Loss (negative ELBO), per sample, summed over dimensions and averaged over the batch:
    NLL = ½ log 2π + log σx + (x − μx)² / (2 σx²)       (gaussian)
    NLL = max(l, 0) − l x + log(1 + exp(−|l|))          (bernoulli: BCE with logits)
    KL  = −log σz − ½ + ½ (μz² + σz²)
"""
import functools
import json
import math
import threading

import numpy as np

from .. import device as _device
from .. import grad_mode as _grad_mode
from .. import nn
from .. import ops
from .. import random as _random
from ..validation import (as_contiguous, check_float_array, check_non_negative_int,
                          check_number, check_positive_int)
from ..nn.module import (_drop_ended_threads, _note_thread_buffer, backward_in_buffer,
                         checks_sub_forwards, evaluating, records_sub_forwards)
from .mlp import MLP, check_activation, hidden_widths

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
LIKELIHOODS = ("gaussian", "bernoulli")


def _silent_overflow(method):
    """method with NumPy's overflow and invalid-value warnings off: a diverging model's
    exp overflows to inf (inf * 0 is NaN) silently, as PyTorch's ops do, and the caller
    (the `vae` command's 'training diverged' error) tells of it; those warnings had
    reached the terminal above that one-line error. (A fresh errstate each call: one
    instance may not be entered twice at once, by two threads.)"""
    @functools.wraps(method)
    def quiet(*args, **kwargs):
        with np.errstate(over="ignore", invalid="ignore"):
            return method(*args, **kwargs)
    return quiet


class VAE(nn.Module):
    """VAE(data_dim, latent_dim=2, hidden=(64, 64), activation='tanh', seed=0,
    likelihood='gaussian').

    forward(x, eps=None, kl_weight=1.0) -> (loss, nll, kl): the negative ELBO and its two
    terms (floats, batch means), with eps drawn from the module's own generator (seeded by
    ``seed``) when not given; backward() accumulates every parameter's gradient of that
    loss and returns its gradient w.r.t. x, (N, data_dim). kl_weight β makes the loss
    nll + β kl (KL warm-up; kl is returned unweighted).

    likelihood: 'gaussian' (the decoder gives mu_x and a learned log sigma_x per
    dimension) or 'bernoulli' (it gives data_dim logits, and the NLL is the summed binary
    cross-entropy with logits against x, PyTorch's binary_cross_entropy_with_logits with
    reduction='sum' over N: the decoder of image VAEs, x the pixel intensities in [0, 1];
    as there, any target is taken).
    """

    config_name = "vae"

    def __init__(self, data_dim, latent_dim=2, hidden=(64, 64), activation="tanh", seed=0,
                 likelihood="gaussian"):
        super().__init__()
        if not isinstance(likelihood, str) or likelihood not in LIKELIHOODS:
            raise ValueError(f"VAE: expected likelihood 'gaussian' or 'bernoulli', got "
                             f"{likelihood!r:.80}")
        data_dim = check_positive_int("VAE", "data_dim", data_dim)
        latent_dim = check_positive_int("VAE", "latent_dim", latent_dim)
        hidden = hidden_widths("VAE", hidden)
        check_activation("VAE", activation)
        if seed is not None:   # (None: a fresh seed, as NumPy's default_rng)
            seed = check_non_negative_int("VAE", "seed", seed, int64=False)
        self.config = dict(data_dim=data_dim, latent_dim=latent_dim, hidden=hidden,
                           activation=activation, seed=seed, likelihood=likelihood)
        self.data_dim, self.latent_dim = data_dim, latent_dim
        self.likelihood = likelihood
        self._bernoulli = likelihood == "bernoulli"
        self.encoder = MLP(data_dim, hidden, 2 * latent_dim, activation=activation)
        outputs = data_dim if self._bernoulli else 2 * data_dim
        self.decoder = MLP(latent_dim, hidden[::-1], outputs, activation=activation)
        self._rng = np.random.default_rng(seed)
        self._cache = None
        self._x_on_device = False  # whether the last forward's x was a device array

    @records_sub_forwards   # (sample() or an MLP run since is caught at backward)
    @_silent_overflow
    def forward(self, x, eps=None, kl_weight=1.0):
        """x: (N, data_dim). eps: (N, latent_dim) noise or None to draw it. Either may be
        a device array (the elementwise terms between the MLPs are computed on the
        host, and backward then returns the gradient w.r.t. x on the device).
        kl_weight: β >= 0, the KL term's weight in the loss (and in backward's gradient).

        Returns (loss, nll, kl) as floats (batch means of the per-sample sums): loss is
        nll + β kl, kl unweighted."""
        check_number("VAE", "kl_weight", kl_weight, low=0)
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
        dec = self._mlp_forward(self.decoder, z)   # (N, 2 data_dim), bernoulli (N, data_dim)
        if self._bernoulli:
            # the fused kernel's mean over N data_dim terms, and its gradient
            # (sigmoid(logits) - x) / (N data_dim), kept for backward
            mean, logit_grad = ops.bce_with_logits_loss(dec, x, grad=a.logit_grad)
            nll, kept = mean * d, (dec, logit_grad)   # (NaN for an empty batch, as PyTorch's)
        else:
            nll, kept = self._gaussian_nll(x, dec, a, n)
        # Each expression in the comments below, one ufunc at a time in its order, into
        # C-ordered arrays as its fresh result was: the sums add the same numbers in
        # the same order, so the losses are those of the expressions, bit for bit.
        kl_terms, squares = a.kl_terms, a.squares
        with np.errstate(invalid="ignore"):  # an empty batch's mean is NaN, as in PyTorch
            # kl_terms = -log_sz - 0.5 + 0.5 * (mu_z ** 2 + sigma_z ** 2)
            np.square(sigma_z, out=kl_terms)                    # (sigma_z ** 2 for now)
            np.add(np.square(mu_z, out=squares), kl_terms, out=squares)
            np.multiply(0.5, squares, out=squares)
            np.negative(log_sz, out=kl_terms)
            np.subtract(kl_terms, 0.5, out=kl_terms)
            np.add(kl_terms, squares, out=kl_terms)
            kl = kl_terms.sum() / n
        self._cache = (n, mu_z, sigma_z, eps, kept, kl_weight)
        self._x_on_device = on_device   # (with the cache: a refused call keeps the last's)
        loss = nll + kl if kl_weight == 1 else nll + kl_weight * kl   # (β 1: bit for bit)
        return float(loss), float(nll), float(kl)

    __call__ = forward

    def _gaussian_nll(self, x, dec, a, n):
        """The Gaussian NLL (a NumPy scalar, summed over data_dim, the batch's mean) of x
        (N, data_dim) under dec = [mu_x | log_sx] (N, 2 data_dim), and what backward
        keeps of it: (resid, inv_var_x), each (N, data_dim)."""
        mu_x, log_sx = dec[:, :self.data_dim], dec[:, self.data_dim:]
        # inv_var_x = exp(-2 * log_sx)
        inv_var_x = np.exp(np.multiply(-2, log_sx, out=a.inv_var_x), out=a.inv_var_x)
        resid = np.subtract(x, mu_x, out=a.resid)
        # as forward's KL: one ufunc at a time, the expression's losses bit for bit
        nll_terms, log_terms = a.work
        with np.errstate(invalid="ignore"):  # an empty batch's mean is NaN, as in PyTorch
            # nll_terms = _HALF_LOG_2PI + log_sx + 0.5 * resid ** 2 * inv_var_x
            np.add(_HALF_LOG_2PI, log_sx, out=log_terms)
            np.square(resid, out=nll_terms)
            np.multiply(0.5, nll_terms, out=nll_terms)
            np.multiply(nll_terms, inv_var_x, out=nll_terms)
            np.add(log_terms, nll_terms, out=nll_terms)
            return nll_terms.sum() / n, (resid, inv_var_x)

    @checks_sub_forwards
    @_silent_overflow
    def backward(self, need_grad_in=True):
        """Accumulate every parameter's gradient of the last forward's loss; returns the
        loss's gradient w.r.t. x, (N, data_dim) (through the encoder and the NLL), where
        that x was, or None with need_grad_in=False, which skips the encoder's input
        product (a training step, whose loop discards it). A second call adds that
        forward's gradient again (as every module's backward, PyTorch's
        ``retain_graph=True``). The returned array is fresh, the caller's to keep."""
        if self._cache is None:
            raise RuntimeError("VAE: backward() called before forward()")
        n, mu_z, sigma_z, eps, kept, kl_weight = self._cache
        a = self._step_arrays(n, sigma_z.dtype)
        scale = sigma_z.dtype.type(1.0 / max(n, 1))  # an empty batch has nothing to scale
        kl_scale = sigma_z.dtype.type(kl_weight / max(n, 1))   # the KL terms' scale
        if self._bernoulli:
            # the kernel's gradient of the mean over N data_dim terms, to that of the
            # sum over data_dim: (sigmoid(logits) - x) / N
            # (from the cache: on a GPU model each call's step arrays are fresh ones)
            logits, logit_grad = kept
            grad_dec = np.multiply(logit_grad, self.data_dim, out=a.grad_dec)
            # x is the NLL's target too: d/dx of its terms is -logits (taken before the
            # decoder's backward, while its output is sure to be this forward's)
            if need_grad_in:
                grad_x_nll = np.multiply(logits, -scale, out=a.grad_x_nll)
        else:
            grad_dec, grad_mu_x = self._gaussian_grads(kept, a, scale)
        grad_z = backward_in_buffer(self.decoder, grad_dec, True)   # (N, latent_dim)
        # through z = mu_z + exp(log_sz) * eps, plus the KL term's own gradient
        grad_mu_z, grad_log_sz = a.latent_work
        # grad_mu_z = grad_z + mu_z * kl_scale
        np.add(grad_z, np.multiply(mu_z, kl_scale, out=grad_mu_z), out=grad_mu_z)
        # grad_log_sz = grad_z * sigma_z * eps + (sigma_z ** 2 - 1) * kl_scale
        kl_part = a.squares
        np.square(sigma_z, out=kl_part)
        np.subtract(kl_part, 1, out=kl_part)
        np.multiply(kl_part, kl_scale, out=kl_part)
        np.multiply(grad_z, sigma_z, out=grad_log_sz)
        np.multiply(grad_log_sz, eps, out=grad_log_sz)
        np.add(grad_log_sz, kl_part, out=grad_log_sz)
        grad_enc = np.concatenate(a.latent_work, axis=1, out=a.grad_enc)
        grad_x = backward_in_buffer(self.encoder, grad_enc, need_grad_in)
        if not need_grad_in:
            return None
        if self._bernoulli:
            return self._to_x_device(np.add(grad_x, grad_x_nll))
        grad_x = np.subtract(grad_x, grad_mu_x)  # x also enters the NLL, opposite to mu_x
        return self._to_x_device(grad_x)

    def _to_x_device(self, grad_x):
        """grad_x (fresh, on the host) where the last forward's x was."""
        return _device.Cuda.put(grad_x) if self._x_on_device else grad_x

    @staticmethod
    def _gaussian_grads(kept, a, scale):
        """(the Gaussian NLL's gradient w.r.t. the decoder's output [mu_x | log_sx],
        (N, 2 data_dim); its gradient w.r.t. mu_x, (N, data_dim)) from forward's kept
        (resid, inv_var_x)."""
        resid, inv_var_x = kept
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
        return grad_dec, grad_mu_x

    def _step_arrays(self, n, dtype):
        """This thread's _StepArrays for n samples of dtype, kept from step to step (as a
        layer's buffers: one set per thread, made anew when n or the dtype changes).
        Fresh ones on a GPU model (the terms between the MLPs are the host's) and under
        no_grad (nothing is kept between calls there, as a Sequential keeps nothing)."""
        if self._device != "cpu" or not _grad_mode._MODE.enabled:
            return _StepArrays(n, self.latent_dim, self.data_dim, dtype, np.empty,
                               self._bernoulli)
        slot = ("step_arrays", threading.get_ident())
        arrays = self._scratch.get(slot)
        if arrays is None or arrays.batch != (n, dtype):
            arrays = _StepArrays(n, self.latent_dim, self.data_dim, dtype, _device.Host.empty,
                                 self._bernoulli)
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

    @_silent_overflow
    def sample(self, n, rng=None, dtype=None):
        """Draw n points (n, data_dim) from the generative model: z ~ N(0, I),
        x ~ N(mu_x, sigma_x²) (gaussian), or for likelihood 'bernoulli' the pixel
        probabilities sigmoid(logits) at z (the mean image, as image VAEs show samples),
        computed in the parameters' dtype and returned in ``dtype`` (default: that dtype).

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
        if self._bernoulli:
            return self._decoded_mean(dec).astype(dtype, copy=False)
        mu_x, log_sx = dec[:, :self.data_dim], dec[:, self.data_dim:]
        points = mu_x + np.exp(log_sx) * rng.standard_normal(mu_x.shape).astype(own)
        return points.astype(dtype, copy=False)

    def reconstruct(self, x):
        """The decoder's mean at the encoder's mean, no noise drawn: x (N, data_dim) ->
        (N, data_dim), mu_x (gaussian) or the probabilities sigmoid(logits) (bernoulli),
        a fresh host array in the parameters' dtype, computed in eval mode."""
        x = _device.to_host(x)
        check_float_array("VAE.reconstruct", "x", x, ndim=2, shape=(None, self.data_dim))
        with evaluating(self):
            mu_z = self.encoder(x)[:, :self.latent_dim]
            return self._decoded_mean(self.decoder(np.ascontiguousarray(mu_z)))

    def _decoded_mean(self, dec):
        """The mean of p(x | z) from the decoder's output dec (N, outputs): a fresh
        (N, data_dim) host array."""
        dec = _device.to_host(dec)
        if self._bernoulli:
            return ops.sigmoid(np.ascontiguousarray(dec))
        return dec[:, :self.data_dim].copy()


class _StepArrays:
    """The host arrays of one VAE step that no caller sees, for N samples of one dtype
    (the MLPs keep their outputs and input gradients in their layers' buffers). What
    forward keeps for backward (sigma_z, eps, resid, inv_var_x) stays until the next
    forward; backward's own arrays are rewritten by a second backward, with the same
    values. The gradient backward returns is a fresh array, the caller's.

    eps64 (N, latent_dim) float64: the noise as drawn; eps (N, latent_dim): in dtype
    sigma_z, z (N, latent_dim); kl_terms, squares (N, latent_dim): the KL's terms
    gaussian: inv_var_x, resid (N, data_dim)
    work (2, N, data_dim): the NLL's terms in forward, (grad_mu_x, grad_log_sx) in backward
    grad_dec (N, 2 data_dim): [grad_mu_x | grad_log_sx], the decoder's output gradient
    bernoulli: logit_grad (N, data_dim): the BCE kernel's gradient of its mean, forward's
    grad_dec (N, data_dim): the decoder's output gradient; grad_x_nll (N, data_dim): the
    NLL's gradient w.r.t. x (its target)
    latent_work (2, N, latent_dim): (grad_mu_z, grad_log_sz)
    grad_enc (N, 2 latent_dim): [grad_mu_z | grad_log_sz], the encoder's output gradient
    """

    def __init__(self, n, latent, data, dtype, empty, bernoulli=False):
        self.batch = (n, np.dtype(dtype))
        self.eps64 = empty((n, latent), np.float64)
        self.eps, self.sigma_z, self.z, self.kl_terms, self.squares = (
            empty((n, latent), dtype) for _ in range(5))
        if bernoulli:
            self.logit_grad, self.grad_dec, self.grad_x_nll = (
                empty((n, data), dtype) for _ in range(3))
        else:
            self.inv_var_x, self.resid = empty((n, data), dtype), empty((n, data), dtype)
            self.work = empty((2, n, data), dtype)
            self.grad_dec = empty((n, 2 * data), dtype)
        self.latent_work = empty((2, n, latent), dtype)
        self.grad_enc = empty((n, 2 * latent), dtype)
