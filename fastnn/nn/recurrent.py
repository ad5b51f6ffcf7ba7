"""Recurrent layers: PyTorch's RNN, LSTM and GRU (any number of layers, bidirectional,
batch_first, dropout between layers), with an explicit backward through time.

NumPy on the host: the input projections of a whole sequence are one matrix product a
layer and direction, each time step one product with the hidden state; a GPU model's
arrays go through the host. ``forward(x, hx=None)`` returns (output, h_n) (LSTM:
(output, (h_n, c_n))) as PyTorch's; ``backward(grad_output, grad_hn=None)`` returns
the gradient w.r.t. x, accumulates the parameters' gradients, and leaves the gradient
w.r.t. hx in ``grad_hx`` (LSTM: a pair).
"""
import math

import numpy as np

from .. import device as _device
from .. import random as _random
from ..validation import (check_bool, check_float_array, check_number, check_only,
                          check_positive_int)
from .module import Module, Parameter


def _sigmoid(a):
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype)


class _Recurrent(Module):
    """What RNN, LSTM and GRU share: parameters, shapes, layers and directions, the
    backward through time. A subclass gives ``gates`` (G: weights are (G * H, in)) and the
    cell's ``_step`` / ``_step_back``."""

    gates = 1
    has_cell = False  # LSTM's cell state c next to h

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype=np.float32):
        super().__init__()
        name = type(self).__name__
        self.input_size = check_positive_int(name, "input_size", input_size)
        self.hidden_size = check_positive_int(name, "hidden_size", hidden_size)
        self.num_layers = check_positive_int(name, "num_layers", num_layers)
        self.bias = check_bool(name, "bias", bias)
        self.batch_first = check_bool(name, "batch_first", batch_first)
        self.bidirectional = check_bool(name, "bidirectional", bidirectional)
        check_number(name, "dropout", dropout, 0.0, 1.0, high_open=False)
        self.dropout = float(dropout)
        bound = 1.0 / math.sqrt(self.hidden_size)
        rng = _random.generator()
        gh = self.gates * self.hidden_size
        for layer in range(self.num_layers):
            width = self.input_size if layer == 0 else self.hidden_size * self._directions
            for suffix in self._suffixes():
                shapes = [(f"weight_ih_l{layer}{suffix}", (gh, width)),
                          (f"weight_hh_l{layer}{suffix}", (gh, self.hidden_size))]
                if self.bias:
                    shapes += [(f"bias_ih_l{layer}{suffix}", (gh,)),
                               (f"bias_hh_l{layer}{suffix}", (gh,))]
                for pname, shape in shapes:
                    setattr(self, pname, Parameter(rng.uniform(-bound, bound, shape).astype(dtype)))
        self._ctx = None
        self.grad_hx = None

    @property
    def _directions(self):
        return 2 if self.bidirectional else 1

    def _suffixes(self):
        return ("", "_reverse") if self.bidirectional else ("",)

    def _params(self, layer, suffix):
        """(W_ih, W_hh, b_ih, b_hh) Parameters of a layer and direction (biases None)."""
        get = lambda kind: getattr(self, f"{kind}_l{layer}{suffix}", None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    # ------------------------------------------------------------------ shapes
    def _state_shape(self, n):
        return (self.num_layers * self._directions,) + (() if n is None else (n,)) + (
            self.hidden_size,)

    def _check_input(self, x):
        where = self._where()
        x = check_float_array(where, "input", x, device_ok=True)
        shape = tuple(x.shape)  # (the CUDA simulator's shapes refuse negative indices)
        if len(shape) not in (2, 3) or shape[-1] != self.input_size:
            batched = "(N, L, F)" if self.batch_first else "(L, N, F)"
            raise ValueError(f"{where}: expected input of shape {batched} or (L, F) with "
                             f"F = input_size = {self.input_size}, got {shape}")
        self._check_dtype(x.dtype, self.weight_ih_l0.data.dtype)
        return x

    def _check_state(self, name, h, n, dtype):
        shape = self._state_shape(n)
        h = check_float_array(self._where(), name, h, dtype=dtype, device_ok=True)
        if tuple(h.shape) != shape:
            raise ValueError(f"{self._where()}: expected {name} of shape {shape}, got "
                             f"{tuple(h.shape)}")
        return _device.to_host(h)

    def infer_shape(self, shape, dtype):
        return None  # two outputs: known by running forward

    # ------------------------------------------------------------------ forward
    def __call__(self, x, hx=None):
        return self.forward(x, hx)

    def forward(self, x, hx=None):
        """(output, h_n) (LSTM: (output, (h_n, c_n))) for x (L, N, input_size)
        ((N, L, input_size) with batch_first; (L, input_size) for one sequence) and an
        optional initial state (num_layers * directions, N, hidden_size) (LSTM: a pair)."""
        x = self._check_input(x)
        namespace = _device.namespace_of(x)
        seq = _device.to_host(x)
        unbatched = seq.ndim == 2
        if unbatched:
            seq = seq[:, None]
        elif self.batch_first:
            seq = seq.transpose(1, 0, 2)
        seq = np.ascontiguousarray(seq)
        n, dtype = seq.shape[1], seq.dtype
        h0, c0 = self._initial_state(hx, None if unbatched else n, dtype)
        if unbatched:
            h0, c0 = h0[:, None], (None if c0 is None else c0[:, None])
        inputs, caches, h_n, c_n = seq, [], [], []
        for layer in range(self.num_layers):
            outs = []
            for d, suffix in enumerate(self._suffixes()):
                k = layer * self._directions + d
                out, h_last, c_last, cache = self._run(
                    inputs, h0[k], None if c0 is None else c0[k], layer, suffix, d == 1)
                outs.append(out)
                h_n.append(h_last)
                c_n.append(c_last)
                caches.append(cache)
            output = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=2)
            mask = None
            if self.dropout and self.training and layer < self.num_layers - 1:
                keep = 1.0 - self.dropout
                mask = ((_random.generator().random(output.shape) < keep)
                        / keep).astype(dtype) if keep > 0 else np.zeros_like(output)
                output = output * mask
            caches.append(mask)
            inputs = output
        self._ctx = (caches, seq.shape, unbatched, namespace, hx is not None)
        out = inputs[:, 0] if unbatched else (inputs.transpose(1, 0, 2) if self.batch_first
                                              else inputs)
        put = lambda a: namespace.put(np.ascontiguousarray(a))  # noqa: E731
        h_n = np.stack(h_n)
        h_n = put(h_n[:, 0] if unbatched else h_n)
        if not self.has_cell:
            return put(out), h_n
        c_n = np.stack(c_n)
        return put(out), (h_n, put(c_n[:, 0] if unbatched else c_n))

    def _initial_state(self, hx, n, dtype):
        zeros = np.zeros(self._state_shape(n), dtype)
        if not self.has_cell:
            return (zeros if hx is None else self._check_state("hx", hx, n, dtype)), None
        if hx is None:
            return zeros, zeros.copy()
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise ValueError(f"{self._where()}: expected hx to be a pair (h_0, c_0)")
        return (self._check_state("h_0", hx[0], n, dtype),
                self._check_state("c_0", hx[1], n, dtype))

    def _run(self, seq, h, c, layer, suffix, reverse):
        """One layer and direction over seq (L, N, in): (outputs (L, N, H), h_L, c_L,
        cache for the backward)."""
        w_ih, w_hh, b_ih, b_hh = (None if p is None else _device.to_host(p.data)
                                  for p in self._params(layer, suffix))
        length, n, _ = seq.shape
        projected = seq.reshape(length * n, -1) @ w_ih.T
        if b_ih is not None:
            projected += b_ih
        projected = projected.reshape(length, n, -1)
        outputs = np.empty((length, n, self.hidden_size), seq.dtype)
        steps = []
        order = range(length - 1, -1, -1) if reverse else range(length)
        for t in order:
            h, c, cache = self._step(projected[t], h, c, w_hh, b_hh)
            outputs[t] = h
            steps.append(cache)
        return outputs, h, c, (seq, steps, w_ih, w_hh, layer, suffix, reverse)

    # ------------------------------------------------------------------ backward
    def backward(self, grad_output, grad_hn=None):
        """The gradient w.r.t. the last forward's x, for grad_output (the output's shape)
        and optionally the gradient w.r.t. h_n (LSTM: (grad_h_n, grad_c_n), either may be
        None). Parameter gradients accumulate; ``grad_hx`` gets the gradient w.r.t. the
        initial state (LSTM: a pair)."""
        if self._ctx is None:
            raise RuntimeError(f"{self._where()}: backward called before forward")
        caches, (length, n, _), unbatched, namespace, _ = self._ctx
        g = np.asarray(_device.to_host(grad_output))
        expected = ((length, self._directions * self.hidden_size) if unbatched else
                    ((n, length) if self.batch_first else (length, n))
                    + (self._directions * self.hidden_size,))
        if g.shape != expected:
            raise ValueError(f"{self._where()}: expected grad_output of shape {expected}, got "
                             f"{g.shape}")
        dtype = self.weight_ih_l0.data.dtype
        g = g.astype(dtype, copy=False)
        g = g[:, None] if unbatched else (g.transpose(1, 0, 2) if self.batch_first else g)
        dh_n, dc_n = self._final_state_grads(grad_hn, None if unbatched else n, dtype)
        if unbatched:
            dh_n, dc_n = dh_n[:, None], dc_n[:, None]
        d = self._directions
        grad_h0 = np.zeros_like(dh_n)
        grad_c0 = np.zeros_like(dc_n)
        for layer in range(self.num_layers - 1, -1, -1):
            mask = caches[layer * (d + 1) + d]
            if mask is not None:
                g = g * mask
            grad_in = None
            for k in range(d):
                cache = caches[layer * (d + 1) + k]
                idx = layer * d + k
                part = g[:, :, k * self.hidden_size:(k + 1) * self.hidden_size]
                dx, grad_h0[idx], grad_c0[idx] = self._run_back(part, dh_n[idx], dc_n[idx],
                                                                cache)
                grad_in = dx if grad_in is None else grad_in + dx
            g = grad_in
        if unbatched:
            g, grad_h0, grad_c0 = g[:, 0], grad_h0[:, 0], grad_c0[:, 0]
        elif self.batch_first:
            g = g.transpose(1, 0, 2)
        put = lambda a: namespace.put(np.ascontiguousarray(a))  # noqa: E731
        self.grad_hx = (put(grad_h0), put(grad_c0)) if self.has_cell else put(grad_h0)
        return put(g)

    def _final_state_grads(self, grad_hn, n, dtype):
        shape = self._state_shape(n)
        zeros = np.zeros(shape, dtype)
        pair = grad_hn if self.has_cell and grad_hn is not None else (grad_hn, None)
        if self.has_cell and grad_hn is not None and (
                not isinstance(grad_hn, (tuple, list)) or len(grad_hn) != 2):
            raise ValueError(f"{self._where()}: expected grad_hn to be a pair "
                             f"(grad_h_n, grad_c_n)")
        out = []
        for a in pair:
            if a is None:
                out.append(zeros.copy())
                continue
            a = np.asarray(_device.to_host(a), dtype)
            if a.shape != shape:
                raise ValueError(f"{self._where()}: expected grad_hn of shape {shape}, got "
                                 f"{a.shape}")
            out.append(a)
        return out[0], out[1]

    def _run_back(self, dout, dh, dc, cache):
        """Backward of one ``_run``: (grad of its input seq, grad of h0, grad of c0);
        parameter gradients accumulated."""
        seq, steps, w_ih, w_hh, layer, suffix, reverse = cache
        length, n, _ = seq.shape
        da_x = np.empty((length, n, self.gates * self.hidden_size), seq.dtype)
        grad_w_hh = np.zeros_like(w_hh)
        grad_b_hh = np.zeros(w_hh.shape[0], seq.dtype)
        order = range(length) if reverse else range(length - 1, -1, -1)
        for t, step in zip(order, reversed(steps)):
            dax, dah, dh, dc = self._step_back(dh + dout[t], dc, step, w_hh)
            da_x[t] = dax
            grad_w_hh += dah.T @ step[0]   # step[0]: the h the step started from
            grad_b_hh += dah.sum(axis=0)
        flat = da_x.reshape(length * n, -1)
        p_ih, p_hh, b_ih, b_hh = self._params(layer, suffix)
        grad_w_ih = flat.T @ seq.reshape(length * n, -1)
        for param, value in ((p_ih, grad_w_ih), (p_hh, grad_w_hh),
                             (b_ih, flat.sum(axis=0)), (b_hh, grad_b_hh)):
            if param is not None:
                _device.update_on_host(param.grad, lambda a, v=value: np.add(a, v, out=a))
        dx = (flat @ w_ih).reshape(length, n, -1)
        return dx, dh, (dc if dc is not None else 0)

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if not self.bias:
            text += ", bias=False"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional=True"
        return text


class RNN(_Recurrent):
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act tanh (or
    'relu'). Weights (hidden_size, in) and (hidden_size, hidden_size) per layer."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, dtype=np.float32):
        check_only("RNN", "nonlinearity", nonlinearity, ("tanh", "relu"))
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype)
        self.nonlinearity = nonlinearity

    def _step(self, xp, h, c, w_hh, b_hh):
        a = xp + h @ w_hh.T
        if b_hh is not None:
            a += b_hh
        h_new = np.tanh(a) if self.nonlinearity == "tanh" else np.maximum(a, 0)
        return h_new, None, (h, h_new)

    def _step_back(self, dh, dc, step, w_hh):
        _, h_new = step
        da = dh * (1 - h_new * h_new) if self.nonlinearity == "tanh" else dh * (h_new > 0)
        return da, da, da @ w_hh, None


class LSTM(_Recurrent):
    """Long short-term memory: gates i, f, g, o (PyTorch's order in the (4 H, in)
    weights): c_t = f c_{t-1} + i g, h_t = o tanh(c_t). PyTorch's proj_size is taken at
    its default (0) only."""

    gates, has_cell = 4, True

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, dtype=np.float32):
        check_only("LSTM", "proj_size", proj_size, (0,))
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype)

    def _step(self, xp, h, c, w_hh, b_hh):
        a = xp + h @ w_hh.T
        if b_hh is not None:
            a += b_hh
        i, f, g, o = np.split(a, 4, axis=1)
        i, f, o, g = _sigmoid(i), _sigmoid(f), _sigmoid(o), np.tanh(g)
        c_new = f * c + i * g
        tc = np.tanh(c_new)
        return o * tc, c_new, (h, c, i, f, g, o, tc)

    def _step_back(self, dh, dc, step, w_hh):
        _, c, i, f, g, o, tc = step
        do = dh * tc
        dc = dc + dh * o * (1 - tc * tc)
        da = np.concatenate([dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g * g),
                             do * o * (1 - o)], axis=1)
        return da, da, da @ w_hh, dc * f


class GRU(_Recurrent):
    """Gated recurrent unit: gates r, z, n (PyTorch's order): r = sigmoid(x_r + h_r),
    z = sigmoid(x_z + h_z), n = tanh(x_n + r (h W_hn^T + b_hn)), h_t = (1 - z) n + z h."""

    gates = 3

    def _step(self, xp, h, c, w_hh, b_hh):
        hp = h @ w_hh.T
        if b_hh is not None:
            hp += b_hh
        xr, xz, xn = np.split(xp, 3, axis=1)
        hr, hz, hn = np.split(hp, 3, axis=1)
        r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
        n = np.tanh(xn + r * hn)
        return (1 - z) * n + z * h, None, (h, r, z, n, hn)

    def _step_back(self, dh, dc, step, w_hh):
        h, r, z, n, hn = step
        dan = dh * (1 - z) * (1 - n * n)
        dar = dan * hn * r * (1 - r)
        daz = dh * (h - n) * z * (1 - z)
        dax = np.concatenate([dar, daz, dan], axis=1)
        dah = np.concatenate([dar, daz, dan * r], axis=1)
        return dax, dah, dh * z + dah @ w_hh, None


class _Cell(Module):
    """One time step as a layer (PyTorch's RNNCell, LSTMCell, GRUCell), the update rule
    of the matching sequence layer (``rule``). Each forward in training mode keeps what
    its backward needs on a stack: call backward once per forward, in reverse order
    (backward through time by hand); backward returns (grad_input, grad_hx). Eval mode
    keeps nothing; ``clear_history()`` drops forwards that will not be taken back."""

    rule = None

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float32):
        super().__init__()
        name = type(self).__name__
        self.input_size = check_positive_int(name, "input_size", input_size)
        self.hidden_size = check_positive_int(name, "hidden_size", hidden_size)
        self.bias = check_bool(name, "bias", bias)
        bound = 1.0 / math.sqrt(self.hidden_size)
        rng = _random.generator()
        gh = self.rule.gates * self.hidden_size
        shapes = [("weight_ih", (gh, self.input_size)), ("weight_hh", (gh, self.hidden_size))]
        if self.bias:
            shapes += [("bias_ih", (gh,)), ("bias_hh", (gh,))]
        for pname, shape in shapes:
            setattr(self, pname, Parameter(rng.uniform(-bound, bound, shape).astype(dtype)))
        self._stack = []

    def infer_shape(self, shape, dtype):
        return None

    def __call__(self, x, hx=None):
        return self.forward(x, hx)

    def clear_history(self):
        """Forget the forwards not taken back yet (e.g. after a truncated BPTT window)."""
        self._stack.clear()

    def _host(self, name):
        p = getattr(self, name, None)
        return None if p is None else _device.to_host(p.data)

    def forward(self, x, hx=None):
        """h' for x (N, input_size) or (input_size,) and hx (N, hidden_size) (None:
        zeros; LSTMCell: a pair (h, c), returning (h', c'))."""
        where = self._where()
        x = check_float_array(where, "input", x, device_ok=True)
        shape = tuple(x.shape)
        if len(shape) not in (1, 2) or shape[-1] != self.input_size:
            raise ValueError(f"{where}: expected input of shape (N, {self.input_size}) or "
                             f"({self.input_size},), got {shape}")
        self._check_dtype(x.dtype, self.weight_ih.data.dtype)
        namespace = _device.namespace_of(x)
        host = _device.to_host(x).reshape((-1, self.input_size))
        states = self._states(hx, shape[:-1], x.dtype)
        h, c = (s.reshape(host.shape[0], self.hidden_size) if s is not None else None
                for s in states)
        xp = host @ self._host("weight_ih").T
        if self.bias:
            xp += self._host("bias_ih")
        h_new, c_new, cache = self.rule._step(self, xp, h, c, self._host("weight_hh"),
                                              self._host("bias_hh"))
        if self.training:
            self._stack.append((host, cache, shape[:-1], namespace))
        put = lambda a: namespace.put(np.ascontiguousarray(  # noqa: E731
            a.reshape(shape[:-1] + (self.hidden_size,))))
        return (put(h_new), put(c_new)) if self.rule.has_cell else put(h_new)

    def _states(self, hx, lead, dtype):
        shape = lead + (self.hidden_size,)
        if hx is None:
            zeros = np.zeros(shape, dtype)
            return zeros, (zeros.copy() if self.rule.has_cell else None)
        parts = hx if self.rule.has_cell else (hx,)
        if self.rule.has_cell and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise ValueError(f"{self._where()}: expected hx to be a pair (h, c)")
        out = []
        for name, h in zip(("h", "c"), parts):
            h = check_float_array(self._where(), name, h, dtype=dtype, device_ok=True)
            if tuple(h.shape) != shape:
                raise ValueError(f"{self._where()}: expected {name} of shape {shape}, got "
                                 f"{tuple(h.shape)}")
            out.append(_device.to_host(h))
        return out[0], (out[1] if self.rule.has_cell else None)

    def backward(self, grad):
        """(grad_input, grad_hx) of the latest forward not yet taken back, for grad, the
        gradient w.r.t. its h' (LSTMCell: (grad_h, grad_c), either may be None)."""
        if not self._stack:
            raise RuntimeError(f"{self._where()}: backward called with no forward left to "
                               f"take back (one backward per training-mode forward)")
        host, cache, lead, namespace = self._stack[-1]
        shape = lead + (self.hidden_size,)
        parts = grad if self.rule.has_cell else (grad, None)
        if self.rule.has_cell and (not isinstance(grad, (tuple, list)) or len(grad) != 2):
            raise ValueError(f"{self._where()}: expected grad to be a pair (grad_h, grad_c)")
        dtype = host.dtype
        flat = []
        for g in parts:
            if g is None:
                flat.append(np.zeros((host.shape[0], self.hidden_size), dtype))
                continue
            g = np.asarray(_device.to_host(g), dtype)
            if g.shape != shape:
                raise ValueError(f"{self._where()}: expected grad of shape {shape}, got "
                                 f"{g.shape}")
            flat.append(g.reshape(host.shape[0], self.hidden_size))
        self._stack.pop()
        w_hh = self._host("weight_hh")
        dax, dah, dh, dc = self.rule._step_back(self, flat[0], flat[1], cache, w_hh)
        grads = [("weight_ih", dax.T @ host), ("weight_hh", dah.T @ cache[0])]
        if self.bias:
            grads += [("bias_ih", dax.sum(axis=0)), ("bias_hh", dah.sum(axis=0))]
        for pname, value in grads:
            _device.update_on_host(getattr(self, pname).grad,
                                   lambda a, v=value: np.add(a, v, out=a))
        put = lambda a, n: namespace.put(np.ascontiguousarray(  # noqa: E731
            a.reshape(lead + (n,))))
        grad_x = put(dax @ self._host("weight_ih"), self.input_size)
        if self.rule.has_cell:
            return grad_x, (put(dh, self.hidden_size), put(dc, self.hidden_size))
        return grad_x, put(dh, self.hidden_size)

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(_Cell):
    """h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act tanh (or 'relu')."""

    rule = RNN

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh",
                 dtype=np.float32):
        check_only("RNNCell", "nonlinearity", nonlinearity, ("tanh", "relu"))
        super().__init__(input_size, hidden_size, bias, dtype)
        self.nonlinearity = nonlinearity

    def extra_repr(self):
        return super().extra_repr() + (", nonlinearity=relu"
                                       if self.nonlinearity == "relu" else "")


class LSTMCell(_Cell):
    """One LSTM step: (h', c') from x and (h, c) (gates i, f, g, o)."""

    rule = LSTM


class GRUCell(_Cell):
    """One GRU step: h' from x and h (gates r, z, n)."""

    rule = GRU
