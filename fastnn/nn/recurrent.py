"""Recurrent layers: PyTorch's RNN, LSTM (with projections too) and GRU (any number of
layers, bidirectional, batch_first, dropout between layers), with an explicit backward
through time.

NumPy on the host: the input projections of a whole sequence are one matrix product a
layer and direction, each time step one product with the hidden state; a GPU model's
arrays go through the host. ``forward(x, hx=None)`` returns (output, h_n) (LSTM:
(output, (h_n, c_n))) as PyTorch's; ``backward(grad_output, grad_hn=None)`` returns
the gradient w.r.t. x, accumulates the parameters' gradients, and leaves the gradient
w.r.t. hx in ``grad_hx`` (LSTM: a pair). A batch of 0 sequences gives empty outputs
and zero gradients, as in PyTorch; a sequence of length 0 is an error, as there.
Sequences of different lengths go in as a PackedSequence (``fastnn.nn.utils.rnn``):
each step then runs the sequences still going (the first batch_sizes[t] of the sorted
batch), so each keeps the state of its own last step; output and the input's gradient
are PackedSequences.

``RNNBase`` and ``RNNCellBase`` are PyTorch's public base classes of the layers and of
the cells (``isinstance(m, nn.RNNBase)``); ``RNNBase(mode, input_size, hidden_size,
...)`` builds a layer of that mode ('RNN_TANH', 'RNN_RELU', 'LSTM' or 'GRU'), the
update rule of each mode living in one ``_Rule`` object the layers and cells share.
"""
import math
import numbers
import warnings

import numpy as np
from scipy.special import expit as _expit

from .. import device as _device
from .. import grad_mode as _grad_mode
from .. import random as _random
from ..errors import IndexValueError, RuntimeValueError
from ..validation import (check_bool, check_float_array, check_number, check_only,
                          check_positive_int)
from . import init
from .module import Module, Parameter, check_kept, kept_for_backward, trains
from .rnn_utils import PackedSequence, _check_batch_sizes


def _sigmoid(a):
    """1 / (1 + e^-a) in a's dtype, overflow-free (SciPy's expit: one ufunc pass where the
    two-branch NumPy form took nine)."""
    return _expit(a)


def _weight_grad(da, x):
    """A weight's gradient (out, in): da^T x, da (rows, out) the gradient w.r.t. the
    product x W^T of x (rows, in). Only a parameter that trains has it computed."""
    return da.T @ x


def _bias_grad(da):
    """A bias's gradient (out,): da (rows, out) summed over its rows in float64 (NumPy
    adds a column's rows one by one, which in float32 drifts over many rows: 2^17 rows,
    1e-5 off, PyTorch's 1e-7)."""
    return da.sum(axis=0, dtype=np.float64)


# How forward got hx, for the backward hooks' grad_input (PyTorch's: one entry per
# positional argument of the call, None for one that is no tensor; so none for hx left
# out or given by keyword, None for hx=None or LSTM's pair given positionally)
_HX_ABSENT, _HX_NO_ARRAY, _HX_ARRAY = 0, 1, 2


def _call_recording_hx(module, x, args, kwargs):
    """module.forward(x, *args, **kwargs) from ``module(...)``, forward knowing how hx
    came (``_hx_entry``)."""
    entry = (_HX_ABSENT if not args else
             _HX_ARRAY if _device.is_array(args[0]) else _HX_NO_ARRAY)
    module.__dict__["_hx_call"] = entry
    try:
        return module.forward(x, *args, **kwargs)
    finally:
        module.__dict__.pop("_hx_call", None)


def _hx_entry(module, hx):
    """How the running forward got hx: as ``module(...)`` recorded it, else (a direct
    ``forward(x, hx)``) absent for None, positional for another."""
    entry = module.__dict__.pop("_hx_call", None)
    if entry is not None:
        return entry
    return (_HX_ABSENT if hx is None else
            _HX_ARRAY if _device.is_array(hx) else _HX_NO_ARRAY)


class _Rule:
    """One time step of a recurrent cell, shared by the sequence layer and the cell of a
    mode: ``gates`` G (the weights are (G * hidden_size, in)), ``has_cell`` (LSTM's
    cell state c next to h), ``step(xp, h, c, w_hh, b_hh) -> (h', c', cache)`` with xp
    the step's input projection x W_ih^T + b_ih, and ``step_back(dh, dc, cache, w_hh) ->
    (grad of xp, grad of the pre-activations h W_hh^T + b_hh, grad of h, grad of c)``."""

    gates, has_cell = 1, False


class _Elman(_Rule):
    """h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act tanh or relu."""

    def __init__(self, relu):
        self.relu = relu

    def step(self, xp, h, c, w_hh, b_hh):
        a = xp + h @ w_hh.T
        if b_hh is not None:
            a += b_hh
        h_new = np.maximum(a, 0) if self.relu else np.tanh(a)
        return h_new, None, (h, h_new)

    def step_back(self, dh, dc, step, w_hh):
        _, h_new = step
        # relu: PyTorch's threshold backward, a select: 0 where h' <= 0, dh elsewhere
        # (a NaN h' passes dh; dh * (h' > 0) gave 0 there, and NaN * 0 where h' <= 0)
        da = (np.where(h_new <= 0, h_new.dtype.type(0), dh) if self.relu
              else dh * (1 - h_new * h_new))
        return da, da, da @ w_hh, None


class _LSTMRule(_Rule):
    """Gates i, f, g, o: c' = f c + i g, h' = o tanh(c')."""

    gates, has_cell = 4, True

    def step(self, xp, h, c, w_hh, b_hh):
        a = xp + h @ w_hh.T
        if b_hh is not None:
            a += b_hh
        i, f, g, o = np.split(a, 4, axis=1)
        i, f, o, g = _sigmoid(i), _sigmoid(f), _sigmoid(o), np.tanh(g)
        c_new = f * c + i * g
        tc = np.tanh(c_new)
        return o * tc, c_new, (h, c, i, f, g, o, tc)

    def step_back(self, dh, dc, step, w_hh):
        _, c, i, f, g, o, tc = step
        do = dh * tc
        dc = dc + dh * o * (1 - tc * tc)
        da = np.concatenate([dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g * g),
                             do * o * (1 - o)], axis=1)
        return da, da, da @ w_hh, dc * f


class _GRURule(_Rule):
    """Gates r, z, n: n = tanh(x_n + r (h W_hn^T + b_hn)), h' = (1 - z) n + z h."""

    gates = 3

    def step(self, xp, h, c, w_hh, b_hh):
        hp = h @ w_hh.T
        if b_hh is not None:
            hp += b_hh
        xr, xz, xn = np.split(xp, 3, axis=1)
        hr, hz, hn = np.split(hp, 3, axis=1)
        r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
        n = np.tanh(xn + r * hn)
        return (1 - z) * n + z * h, None, (h, r, z, n, hn)

    def step_back(self, dh, dc, step, w_hh):
        h, r, z, n, hn = step
        dan = dh * (1 - z) * (1 - n * n)
        dar = dan * hn * r * (1 - r)
        daz = dh * (h - n) * z * (1 - z)
        dax = np.concatenate([dar, daz, dan], axis=1)
        dah = np.concatenate([dar, daz, dan * r], axis=1)
        return dax, dah, dh * z + dah @ w_hh, None


#: PyTorch's RNNBase modes and their update rules
_RULES = {"RNN_TANH": _Elman(relu=False), "RNN_RELU": _Elman(relu=True), "LSTM": _LSTMRule(),
         "GRU": _GRURule()}


def reset_uniform_by_hidden_size(layer):
    """The recurrent layers' and cells' reset_parameters (PyTorch's RNNBase and
    RNNCellBase): every weight and bias, in order, drawn again from U(-1/sqrt(H),
    1/sqrt(H)) in place, H the hidden size."""
    bound = 1.0 / math.sqrt(layer.hidden_size) if layer.hidden_size > 0 else 0.0
    for param in layer.parameters():
        init.uniform_(param, -bound, bound)


class _LiveGrads:
    """Which gradients of a layer and direction's parameters a backward computes:
    ``params`` (W_ih, W_hh, b_ih, b_hh, W_hr, None where absent) and for each a flag,
    False where absent or frozen (PyTorch's backward neither computes nor touches a
    frozen parameter's gradient); ``recurrent``: the recurrent side's pre-activation
    gradient is needed (W_hh's or b_hh's)."""

    def __init__(self, module, layer, suffix):
        self.params = module._params(layer, suffix)
        self.w_ih, self.w_hh, self.b_ih, self.b_hh, self.w_hr = map(trains, self.params)
        self.recurrent = self.w_hh or self.b_hh


#: the error of a layer of two outputs in a Sequential
_TWO_OUTPUTS = ("{where} returns {outputs}, and a Sequential passes one array from layer "
                "to layer: call it in a Module of your own that passes its output on "
                "(PyTorch's Sequential fails at the next layer)")


class RNNBase(Module):
    """The base class of RNN, LSTM and GRU (PyTorch's ``nn.RNNBase``): parameters,
    shapes, layers and directions, the forward and the backward through time, for the
    update rule of ``mode``: 'RNN_TANH', 'RNN_RELU', 'LSTM' or 'GRU' (another is a
    ValueError, as PyTorch's). ``RNNBase(mode, input_size, hidden_size, num_layers=1,
    bias=True, batch_first=False, dropout=0.0, bidirectional=False, proj_size=0)``
    takes PyTorch's arguments in PyTorch's order, and its parameters are those of the
    mode's layer; unlike PyTorch's (which leaves forward to the subclasses) it runs as
    that layer too. With ``proj_size`` P > 0 (LSTM only, a ValueError for the other
    modes) each step's h is projected, h_t = raw h_t W_hr^T with W_hr (P, hidden_size):
    h, the outputs and the recurrent weights' second axis have size P (``_out_size``),
    c keeps hidden_size."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, proj_size=0,
                 dtype=np.float32):
        super().__init__()
        name = type(self).__name__
        if not isinstance(mode, str) or mode not in _RULES:
            raise ValueError(f"{name}: Unrecognized RNN mode: {mode!r} (expected one of "
                             f"{', '.join(map(repr, _RULES))})")
        self.mode = mode
        self.input_size = check_positive_int(name, "input_size", input_size)
        self.hidden_size = check_positive_int(name, "hidden_size", hidden_size)
        if (isinstance(proj_size, bool) or not isinstance(proj_size, numbers.Integral)
                or not 0 <= proj_size < self.hidden_size):
            raise ValueError(f"{name}: expected proj_size to be an int in [0, hidden_size = "
                             f"{self.hidden_size}) (0: no projection), got {proj_size!r}")
        if proj_size and mode != "LSTM":
            raise ValueError(f"{name}: proj_size argument is only supported for LSTM, not "
                             f"RNN or GRU (mode {mode!r}), got proj_size={proj_size}")
        self.proj_size = int(proj_size)
        self.num_layers = check_positive_int(name, "num_layers", num_layers)
        self.bias = check_bool(name, "bias", bias)
        self.batch_first = check_bool(name, "batch_first", batch_first)
        self.bidirectional = check_bool(name, "bidirectional", bidirectional)
        check_number(name, "dropout", dropout, 0.0, 1.0, high_open=False)
        self.dropout = float(dropout)
        if self.dropout and self.num_layers == 1:
            warnings.warn(f"{name}: dropout is applied between stacked layers only, so "
                          f"dropout={self.dropout} does nothing with num_layers=1 (PyTorch "
                          f"warns the same)", UserWarning, stacklevel=3)
        bound = 1.0 / math.sqrt(self.hidden_size)
        rng = _random.generator()
        gh, out = self.gates * self.hidden_size, self._out_size
        for layer in range(self.num_layers):
            width = self.input_size if layer == 0 else out * self._directions
            for suffix in self._suffixes():  # PyTorch's order (its state dict's keys)
                shapes = [(f"weight_ih_l{layer}{suffix}", (gh, width)),
                          (f"weight_hh_l{layer}{suffix}", (gh, out))]
                if self.bias:
                    shapes += [(f"bias_ih_l{layer}{suffix}", (gh,)),
                               (f"bias_hh_l{layer}{suffix}", (gh,))]
                if self.proj_size:
                    shapes += [(f"weight_hr_l{layer}{suffix}", (self.proj_size,
                                                                self.hidden_size))]
                for pname, shape in shapes:
                    setattr(self, pname,
                            Parameter(rng.uniform(-bound, bound, shape).astype(dtype)))
        self._ctx = None
        self.grad_hx = None

    @property
    def _rule(self):
        return _RULES[self.mode]

    @property
    def gates(self):
        """G: the weights are (G * hidden_size, in) (4 for LSTM, 3 for GRU, 1 for RNN)."""
        return self._rule.gates

    @property
    def has_cell(self):
        """True for LSTM: a cell state c next to h."""
        return self._rule.has_cell

    def _step(self, xp, h, c, w_hh, b_hh):
        return self._rule.step(xp, h, c, w_hh, b_hh)

    def _step_back(self, dh, dc, step, w_hh):
        return self._rule.step_back(dh, dc, step, w_hh)

    @property
    def all_weights(self):
        """The parameters of each layer and direction, in PyTorch's order (W_ih, W_hh,
        b_ih, b_hh, W_hr where present), as PyTorch's ``all_weights``."""
        return [[p for p in self._params(layer, suffix) if p is not None]
                for layer in range(self.num_layers) for suffix in self._suffixes()]

    def flatten_parameters(self):
        """Nothing to do (PyTorch's compacts the weights for cuDNN; on the CPU it does
        nothing either)."""

    @property
    def _directions(self):
        return 2 if self.bidirectional else 1

    def _suffixes(self):
        return ("", "_reverse") if self.bidirectional else ("",)

    @property
    def _out_size(self):
        """The size of h and of each direction's output: proj_size, or hidden_size."""
        return self.proj_size or self.hidden_size

    def _params(self, layer, suffix):
        """(W_ih, W_hh, b_ih, b_hh, W_hr) Parameters of a layer and direction (None where
        absent: biases with bias=False, W_hr without a projection)."""
        get = lambda kind: getattr(self, f"{kind}_l{layer}{suffix}", None)  # noqa: E731
        return (get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"),
                get("weight_hr"))

    # ------------------------------------------------------------------ shapes
    def _state_shape(self, n, size=None):
        """(num_layers * directions, [n,] size), size the h's (default) or c's."""
        return (self.num_layers * self._directions,) + (() if n is None else (n,)) + (
            self._out_size if size is None else size,)

    def _check_input(self, x):
        where = self._where()
        x = check_float_array(where, "input", x, device_ok=True)
        shape = tuple(x.shape)  # (the CUDA simulator's shapes refuse negative indices)
        if len(shape) not in (2, 3) or shape[-1] != self.input_size:
            # PyTorch's types: a ValueError for the rank, a RuntimeError for the features
            batched = "(N, L, F)" if self.batch_first else "(L, N, F)"
            error = RuntimeValueError if len(shape) in (2, 3) else ValueError
            raise error(f"{where}: expected input of shape {batched} or (L, F) with "
                        f"F = input_size = {self.input_size}, got {shape}")
        if shape[1 if len(shape) == 3 and self.batch_first else 0] == 0:
            raise RuntimeValueError(f"{where}: expected a sequence length L larger than 0, "
                                    f"got input of shape {shape}")
        self._check_dtype(x.dtype, self.weight_ih_l0.data.dtype)
        return x

    def _check_state(self, name, h, shape, dtype):
        h = check_float_array(self._where(), name, h, dtype=dtype, device_ok=True)
        if tuple(h.shape) != shape:   # (PyTorch's RuntimeError, its rank's too)
            raise RuntimeValueError(f"{self._where()}: expected {name} of shape {shape}, got "
                                    f"{tuple(h.shape)}")
        return _device.to_host(h)

    reset_parameters = reset_uniform_by_hidden_size

    def infer_shape(self, shape, dtype):
        # (only a Sequential asks, before any of its layers runs: the layer's forward is
        # its own) two outputs, and a Sequential passes one array from layer to layer
        raise TypeError(_TWO_OUTPUTS.format(where=self._where(), outputs="(output, h_n)"))

    # ------------------------------------------------------------------ forward
    def __call__(self, input, *args, **kwargs):
        return _call_recording_hx(self, input, args, kwargs)

    def forward(self, input, hx=None):
        """(output, h_n) (LSTM: (output, (h_n, c_n))) for x (L, N, input_size)
        ((N, L, input_size) with batch_first; (L, input_size) for one sequence; L >= 1,
        N >= 0) and an optional initial state (num_layers * directions, N, hidden_size)
        (LSTM: a pair (h_0, c_0); h_0's last axis proj_size when it is > 0). output is
        (L, N, directions * H) (batch_first: (N, L, ...)), H = proj_size or hidden_size;
        h_n (and c_n) as the initial state; None for it means zeros.

        x may be a PackedSequence (``fastnn.nn.utils.rnn``; batch_first does not apply):
        output is then a PackedSequence of the same batch_sizes and indices, h_n (and
        c_n) hold each sequence's state after its own last step (the reverse direction
        starts at each sequence's last element), and hx and h_n follow the batch order
        the sequences had before packing, as PyTorch's."""
        x = input   # (PyTorch's argument name)
        if isinstance(x, PackedSequence):
            return self._forward_packed(x, hx)
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
        inputs, caches, h_n, c_n = self._layers(seq, h0, c0, self._run)
        self._ctx = kept_for_backward((caches, seq.shape, unbatched, namespace,
                                       _hx_entry(self, hx)))
        out = inputs[:, 0] if unbatched else (inputs.transpose(1, 0, 2) if self.batch_first
                                              else inputs)
        put = namespace.put
        h_n = np.stack(h_n)
        h_n = put(h_n[:, 0] if unbatched else h_n)
        if not self.has_cell:
            return put(out), h_n
        c_n = np.stack(c_n)
        return put(out), (h_n, put(c_n[:, 0] if unbatched else c_n))

    def _layers(self, seq, h0, c0, run):
        """Every layer and direction over seq (the first layer's input; its last axis the
        features), ``run(inputs, h, c, layer, suffix, reverse)`` one of them (``_run`` or
        ``_run_packed``), with dropout between the layers in training mode: (the last
        layer's output, the caches and dropout masks, the h_n and c_n of each layer and
        direction)."""
        inputs, caches, h_n, c_n = seq, [], [], []
        for layer in range(self.num_layers):
            outs = []
            for d, suffix in enumerate(self._suffixes()):
                k = layer * self._directions + d
                out, h_last, c_last, cache = run(
                    inputs, h0[k], None if c0 is None else c0[k], layer, suffix, d == 1)
                outs.append(out)
                h_n.append(h_last)
                c_n.append(c_last)
                caches.append(cache)
            output = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=-1)
            mask = None
            if self.dropout and self.training and layer < self.num_layers - 1:
                keep = 1.0 - self.dropout
                mask = ((_random.generator().random(output.shape) < keep)
                        / keep).astype(seq.dtype) if keep > 0 else np.zeros_like(output)
                output = output * mask
            caches.append(mask)
            inputs = output
        return inputs, caches, h_n, c_n

    def _forward_packed(self, packed, hx):
        """``forward`` for a PackedSequence (see there)."""
        where = self._where()
        sizes = _check_batch_sizes(where, packed)
        x = check_float_array(where, "input.data", packed.data, device_ok=True)
        if len(x.shape) != 2 or x.shape[1] != self.input_size:   # (PyTorch's RuntimeError)
            raise RuntimeValueError(f"{where}: expected a PackedSequence whose data has shape "
                                    f"(sum of lengths, input_size = {self.input_size}), got "
                                    f"{tuple(x.shape)}")
        self._check_dtype(x.dtype, self.weight_ih_l0.data.dtype)
        namespace = _device.namespace_of(x)
        data = np.ascontiguousarray(_device.to_host(x))
        h0, c0 = self._initial_state(hx, int(sizes[0]), data.dtype)
        order, back = (None if i is None else np.asarray(_device.to_host(i))
                       for i in (packed.sorted_indices, packed.unsorted_indices))
        if order is not None:   # hx is in the caller's order, the packed batch sorted
            h0, c0 = h0[:, order], (None if c0 is None else c0[:, order])
        run = lambda *args: self._run_packed(sizes, *args)  # noqa: E731
        output, caches, h_n, c_n = self._layers(data, h0, c0, run)
        self._ctx = kept_for_backward(_PackedContext(caches, sizes, packed, order, back,
                                                     namespace))
        put = lambda a: namespace.put(a if back is None else a[:, back])  # noqa: E731
        out = PackedSequence(namespace.put(output), packed.batch_sizes, packed.sorted_indices,
                             packed.unsorted_indices)
        h_n = put(np.stack(h_n))
        return (out, (h_n, put(np.stack(c_n)))) if self.has_cell else (out, h_n)

    def _initial_state(self, hx, n, dtype):
        h_shape, c_shape = self._state_shape(n), self._state_shape(n, self.hidden_size)
        if not self.has_cell:
            return (np.zeros(h_shape, dtype) if hx is None
                    else self._check_state("hx", hx, h_shape, dtype)), None
        if hx is None:
            return np.zeros(h_shape, dtype), np.zeros(c_shape, dtype)
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise ValueError(f"{self._where()}: expected hx to be a pair (h_0, c_0)")
        return (self._check_state("h_0", hx[0], h_shape, dtype),
                self._check_state("c_0", hx[1], c_shape, dtype))

    def _host_params(self, layer, suffix):
        """``_params``' values as host arrays (None where absent)."""
        return tuple(None if p is None else _device.to_host(p.data)
                     for p in self._params(layer, suffix))

    def _run(self, seq, h, c, layer, suffix, reverse):
        """One layer and direction over seq (L, N, in): (outputs (L, N, H), h_L, c_L,
        cache for the backward), H = ``_out_size``. Sizes are explicit: N may be 0."""
        w_ih, w_hh, b_ih, b_hh, w_hr = self._host_params(layer, suffix)
        length, n, width = seq.shape
        gh = w_ih.shape[0]
        projected = seq.reshape(length * n, width) @ w_ih.T
        if b_ih is not None:
            projected += b_ih
        projected = projected.reshape(length, n, gh)
        outputs = np.empty((length, n, self._out_size), seq.dtype)
        steps = []   # (the cell's cache, the h before the projection or None)
        order = range(length - 1, -1, -1) if reverse else range(length)
        for t in order:
            h, c, cache = self._step(projected[t], h, c, w_hh, b_hh)
            raw = None
            if w_hr is not None:
                raw, h = h, h @ w_hr.T
            outputs[t] = h
            steps.append((cache, raw))
        return outputs, h, c, (seq, steps, w_ih, w_hh, w_hr, layer, suffix, reverse)

    def _run_packed(self, sizes, data, h, c, layer, suffix, reverse):
        """``_run`` over packed steps: data (S, in) the steps of sequences sorted by
        decreasing length, step after step, sizes[t] of them running at step t; h (N, H)
        (and c) the sorted batch's initial state. Step t updates the first sizes[t]
        rows only, so a finished sequence keeps the state of its last step, and in
        reverse a sequence starts at its own last step from its initial state.
        Returns (outputs (S, H), h, c, cache)."""
        w_ih, w_hh, b_ih, b_hh, w_hr = self._host_params(layer, suffix)
        projected = data @ w_ih.T
        if b_ih is not None:
            projected += b_ih
        outputs = np.empty((data.shape[0], self._out_size), data.dtype)
        steps, spans = [], _step_spans(sizes)
        for t in (range(sizes.size - 1, -1, -1) if reverse else range(sizes.size)):
            rows, b = spans[t]
            h_b, c_b, cache = self._step(projected[rows], h[:b], None if c is None else c[:b],
                                         w_hh, b_hh)
            raw = None
            if w_hr is not None:
                raw, h_b = h_b, h_b @ w_hr.T
            outputs[rows] = h_b
            h, c = _over_rows(h_b, h), (None if c is None else _over_rows(c_b, c))
            steps.append((cache, raw))
        return outputs, h, c, (data, sizes, steps, w_ih, w_hh, w_hr, layer, suffix, reverse)

    # ------------------------------------------------------------------ backward
    def _hook_grad_outputs(self, args, kwargs):
        """The backward hooks see PyTorch's (grad_output, grad_h_n): grad_h_n (given by
        keyword or left out) is the second entry, None when not given; LSTM's is None
        always, as PyTorch's (its (h_n, c_n) output is a pair, no tensor: its hooks see no
        gradient there), and the pair given reaches backward as it is."""
        if len(args) == 1:
            args = (args[0], kwargs.pop("grad_hn", None))
        if self.has_cell and len(args) == 2 and args[1] is not None:
            pair = args[1]
            return (args[0], None), lambda grads: (grads[0], pair)
        return args, None

    def _hook_grad_inputs(self):
        """The backward hooks see PyTorch's grad_input: (grad_x,) when forward got no hx
        (or hx by keyword), (grad_x, grad_hx) when it got hx positionally, (grad_x, None)
        for hx=None or LSTM's pair (no tensor); a hook's grad_hx replaces ``grad_hx``.
        After a PackedSequence forward: (result,) (PyTorch runs no full backward hook
        there, the input being no tensor)."""
        ctx = getattr(self, "_ctx", None)
        if not isinstance(ctx, tuple) or len(ctx) != 5:
            return None
        if ctx[4] == _HX_ABSENT:
            return (lambda result: (result,)), (lambda result, grads: grads[0])
        if ctx[4] == _HX_NO_ARRAY:
            return (lambda result: (result, None)), (lambda result, grads: grads[0])

        def from_hook(result, grads):
            self.grad_hx = grads[1]
            return grads[0]
        return (lambda result: (result, self.grad_hx)), from_hook

    def backward(self, grad_output, grad_hn=None):
        """The gradient w.r.t. the last forward's x (x's shape), for grad_output, the
        gradient w.r.t. output (its shape), and optionally grad_hn, the gradient w.r.t.
        h_n (its shape; LSTM: a pair (grad_h_n, grad_c_n), either may be None). None
        stands for zeros: ``backward(None, grad_h_n)`` when the loss uses h_n only (as
        autograd leaves output's gradient out). The gradients have the parameters' dtype
        (another is a TypeError, as for every layer). Parameter gradients accumulate;
        ``grad_hx`` gets the gradient w.r.t. the initial state (LSTM: a pair).

        After a PackedSequence forward, grad_output is a PackedSequence like the output
        (or its data, (sum of lengths, directions * H)), grad_hn and grad_hx follow the
        caller's batch order, and the result is a PackedSequence like the input, its
        data the gradient w.r.t. the input's data (PyTorch's gradient of packed.data;
        ``pad_packed_sequence`` of it: the gradient w.r.t. the padded input)."""
        check_kept(self, self._ctx)
        if isinstance(self._ctx, _PackedContext):
            return self._backward_packed(grad_output, grad_hn)
        caches, (length, n, _), unbatched, namespace, _ = self._ctx
        dtype = self.weight_ih_l0.data.dtype
        width = self._directions * self._out_size
        expected = ((length, width) if unbatched else
                    ((n, length) if self.batch_first else (length, n)) + (width,))
        if grad_output is None:
            g = np.zeros(expected, dtype)
        else:
            g = _device.to_host(check_float_array(self._where(), "grad_output", grad_output,
                                                  dtype=dtype, device_ok=True))
        if g.shape != expected:
            raise RuntimeValueError(f"{self._where()}: expected grad_output of shape "
                                    f"{expected}, got {g.shape}")
        g = g[:, None] if unbatched else (g.transpose(1, 0, 2) if self.batch_first else g)
        dh_n, dc_n = self._final_state_grads(grad_hn, None if unbatched else n, dtype)
        if unbatched:
            dh_n, dc_n = dh_n[:, None], dc_n[:, None]
        g, grad_h0, grad_c0 = self._layers_back(g, caches, dh_n, dc_n, self._run_back)
        if unbatched:
            g, grad_h0, grad_c0 = g[:, 0], grad_h0[:, 0], grad_c0[:, 0]
        elif self.batch_first:
            g = g.transpose(1, 0, 2)
        put = namespace.put
        self.grad_hx = (put(grad_h0), put(grad_c0)) if self.has_cell else put(grad_h0)
        return put(g)

    def _layers_back(self, g, caches, dh_n, dc_n, run_back):
        """Backward of ``_layers``: g the gradient w.r.t. its output, dh_n and dc_n
        w.r.t. the final states, ``run_back(dout, dh, dc, cache)`` the backward of its
        ``run``: (the gradient w.r.t. seq, grad_h0, grad_c0)."""
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
                part = g[..., k * self._out_size:(k + 1) * self._out_size]
                dx, grad_h0[idx], grad_c0[idx] = run_back(part, dh_n[idx], dc_n[idx], cache)
                grad_in = dx if grad_in is None else grad_in + dx
            g = grad_in
        return g, grad_h0, grad_c0

    def _backward_packed(self, grad_output, grad_hn):
        """``backward`` after a PackedSequence forward (see there)."""
        ctx, where = self._ctx, self._where()
        dtype = self.weight_ih_l0.data.dtype
        expected = (ctx.packed.data.shape[0], self._directions * self._out_size)
        if isinstance(grad_output, PackedSequence):
            same = (np.array_equal(_check_batch_sizes(where, grad_output), ctx.sizes)
                    and _same_indices(grad_output.sorted_indices, ctx.packed.sorted_indices))
            if not same:
                raise ValueError(f"{where}: expected grad_output packed as the output (same "
                                 f"batch_sizes and sorted_indices)")
            grad_output = grad_output.data
        if grad_output is None:
            g = np.zeros(expected, dtype)
        else:
            g = _device.to_host(check_float_array(where, "grad_output", grad_output,
                                                  dtype=dtype, device_ok=True))
        if g.shape != expected:
            raise RuntimeValueError(f"{where}: expected grad_output of shape {expected} (the "
                                    f"packed output's data), got {g.shape}")
        dh_n, dc_n = self._final_state_grads(grad_hn, int(ctx.sizes[0]), dtype)
        if ctx.order is not None:
            dh_n, dc_n = dh_n[:, ctx.order], dc_n[:, ctx.order]
        g, grad_h0, grad_c0 = self._layers_back(g, ctx.caches, dh_n, dc_n,
                                                self._run_packed_back)
        put = lambda a: ctx.namespace.put(  # noqa: E731
            a if ctx.back is None else a[:, ctx.back])
        self.grad_hx = (put(grad_h0), put(grad_c0)) if self.has_cell else put(grad_h0)
        packed = ctx.packed
        return PackedSequence(ctx.namespace.put(g), packed.batch_sizes, packed.sorted_indices,
                              packed.unsorted_indices)

    def _final_state_grads(self, grad_hn, n, dtype):
        """(grad of h_n, grad of c_n) on the host, zeros for None (c's: RNN and GRU)."""
        shapes = (self._state_shape(n), self._state_shape(n, self.hidden_size))
        if self.has_cell and grad_hn is not None and (
                not isinstance(grad_hn, (tuple, list)) or len(grad_hn) != 2):
            raise ValueError(f"{self._where()}: expected grad_hn to be a pair "
                             f"(grad_h_n, grad_c_n)")
        pair = grad_hn if self.has_cell and grad_hn is not None else (grad_hn, None)
        names = ("grad_h_n", "grad_c_n") if self.has_cell else ("grad_hn", None)
        out = []
        for a, shape, name in zip(pair, shapes, names):
            if a is None:
                out.append(np.zeros(shape, dtype))
                continue
            a = check_float_array(self._where(), name, a, dtype=dtype, device_ok=True)
            if tuple(a.shape) != shape:   # (PyTorch's RuntimeError "Mismatch in shape")
                raise RuntimeValueError(f"{self._where()}: expected {name} of shape {shape}, "
                                        f"got {tuple(a.shape)}")
            out.append(_device.to_host(a))
        return out[0], out[1]

    def _run_back(self, dout, dh, dc, cache):
        """Backward of one ``_run``: (grad of its input seq, grad of h0, grad of c0);
        parameter gradients accumulated. dout (L, N, H) and dh (N, H), H = ``_out_size``:
        the gradients w.r.t. the (projected) outputs and h_L."""
        seq, steps, w_ih, w_hh, w_hr, layer, suffix, reverse = cache
        length, n, width = seq.shape
        gh = w_ih.shape[0]
        live = _LiveGrads(self, layer, suffix)
        da_x = np.empty((length, n, gh), seq.dtype)
        # the recurrent side's gradient and the h each step started from (step[0]), kept
        # per step for one product over all steps after the loop: W_hh's gradient as
        # one (G H, L N) @ (L N, H) GEMM, not L small ones inside the sequential loop
        h_prev = np.empty((length, n, w_hh.shape[1]), seq.dtype) if live.w_hh else None
        da_h = None   # da_x itself where the rule's two gradients are one (LSTM, RNN)
        grad_w_hr = np.zeros_like(w_hr) if live.w_hr else None
        order = range(length) if reverse else range(length - 1, -1, -1)
        for t, (step, raw) in zip(order, reversed(steps)):
            dh = dh + dout[t]
            if w_hr is not None:   # h = raw W_hr^T
                if grad_w_hr is not None:
                    grad_w_hr += _weight_grad(dh, raw)
                dh = dh @ w_hr
            dax, dah, dh, dc = self._step_back(dh, dc, step, w_hh)
            da_x[t] = dax
            if h_prev is not None:
                h_prev[t] = step[0]
            if dah is not dax and live.recurrent:
                if da_h is None:
                    da_h = np.empty_like(da_x)
                da_h[t] = dah
        recurrent = (da_x if da_h is None else da_h).reshape(length * n, gh)
        grad_w_hh = (_weight_grad(recurrent, h_prev.reshape(length * n, w_hh.shape[1]))
                     if live.w_hh else None)
        grad_b_hh = _bias_grad(recurrent) if live.b_hh else None
        flat = da_x.reshape(length * n, gh)
        dx = self._input_side_back(flat, seq.reshape(length * n, width), w_ih, grad_w_hh,
                                   grad_b_hh, grad_w_hr, live)
        return dx.reshape(length, n, width), dh, (dc if dc is not None else 0)

    @staticmethod
    def _input_side_back(da_x, inputs, w_ih, grad_w_hh, grad_b_hh, grad_w_hr, live):
        """Accumulates a layer and direction's parameter gradients, given da_x (rows, G H)
        the gradient w.r.t. the input projections of inputs (rows, in) and the recurrent
        side's sums (None for a frozen parameter), ``live`` its ``_LiveGrads``; returns
        the gradient w.r.t. inputs (rows, in)."""
        p_ih, p_hh, b_ih, b_hh, p_hr = live.params
        grad_b_ih = _bias_grad(da_x) if live.b_ih else None
        grad_w_ih = _weight_grad(da_x, inputs) if live.w_ih else None
        for param, value in ((p_ih, grad_w_ih), (p_hh, grad_w_hh), (b_ih, grad_b_ih),
                             (b_hh, grad_b_hh), (p_hr, grad_w_hr)):
            if value is not None:   # (None: frozen or absent, its .grad left untouched)
                _device.update_on_host(param.grad, lambda a, v=value: np.add(a, v, out=a))
        return da_x @ w_ih

    def _run_packed_back(self, dout, dh, dc, cache):
        """Backward of one ``_run_packed``: (grad of its data (S, in), grad of h0, grad of
        c0); parameter gradients accumulated. dout (S, H) and dh (N, H): the gradients
        w.r.t. the outputs and the final h of the sorted batch. A sequence's rows of dh
        wait, untouched, until the backward reaches its last step (forward) or pass on
        to h0 from its last step (reverse), mirroring the forward's row updates."""
        data, sizes, steps, w_ih, w_hh, w_hr, layer, suffix, reverse = cache
        gh = w_ih.shape[0]
        live = _LiveGrads(self, layer, suffix)
        da_x = np.empty((data.shape[0], gh), data.dtype)
        h_prev = (np.empty((data.shape[0], w_hh.shape[1]), data.dtype)   # as in _run_back
                  if live.w_hh else None)
        da_h = None
        grad_w_hr = np.zeros_like(w_hr) if live.w_hr else None
        spans = _step_spans(sizes)
        order = range(sizes.size) if reverse else range(sizes.size - 1, -1, -1)
        for t, (step, raw) in zip(order, reversed(steps)):
            rows, b = spans[t]
            dh_b = dh[:b] + dout[rows]
            if w_hr is not None:
                if grad_w_hr is not None:
                    grad_w_hr += _weight_grad(dh_b, raw)
                dh_b = dh_b @ w_hr
            dax, dah, dh_b, dc_b = self._step_back(dh_b, dc[:b], step, w_hh)
            da_x[rows] = dax
            if h_prev is not None:
                h_prev[rows] = step[0]
            if dah is not dax and live.recurrent:
                if da_h is None:
                    da_h = np.empty_like(da_x)
                da_h[rows] = dah
            dh = _over_rows(dh_b, dh)
            if dc_b is not None:
                dc = _over_rows(dc_b, dc)
        recurrent = da_x if da_h is None else da_h
        dx = self._input_side_back(
            da_x, data, w_ih, _weight_grad(recurrent, h_prev) if live.w_hh else None,
            _bias_grad(recurrent) if live.b_hh else None, grad_w_hr, live)
        return dx, dh, (dc if self.has_cell else 0)

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            text += f", proj_size={self.proj_size}"
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


class _PackedContext:
    """What a PackedSequence forward keeps for its backward: the layers' caches, the
    batch_sizes (int64), the input PackedSequence, its sorted and unsorted indices as
    host arrays (or None) and the namespace of its data."""

    def __init__(self, caches, sizes, packed, order, back, namespace):
        self.caches, self.sizes, self.packed = caches, sizes, packed
        self.order, self.back, self.namespace = order, back, namespace


def _step_spans(sizes):
    """For each step t of a packed sequence: (the slice of its rows in data, sizes[t])."""
    ends = np.cumsum(sizes).tolist()
    return [(slice(end - b, end), b) for end, b in zip(ends, sizes.tolist())]


def _over_rows(head, full):
    """full with its first len(head) rows replaced by head (a new array; full itself
    may be cached by a step and stays as it was)."""
    if head.shape[0] == full.shape[0]:
        return head
    return np.concatenate([head, full[head.shape[0]:]])


def _same_indices(a, b):
    """True when two sorted_indices (arrays or None) are the same permutation."""
    if a is None or b is None:
        return a is None and b is None
    return np.array_equal(_device.to_host(a), _device.to_host(b))


class RNN(RNNBase):
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act tanh (or
    'relu': mode 'RNN_RELU'). Weights (hidden_size, in) and (hidden_size, hidden_size)
    per layer."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, dtype=np.float32,
                 proj_size=0):
        check_only("RNN", "nonlinearity", nonlinearity, ("tanh", "relu"))
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory: gates i, f, g, o (PyTorch's order in the (4 H, in)
    weights): c_t = f c_{t-1} + i g, h_t = o tanh(c_t). With proj_size P (0 < P <
    hidden_size), PyTorch's LSTM with projections: h_t = (o tanh(c_t)) W_hr^T, W_hr
    ``weight_hr_l{k}{suffix}`` (P, hidden_size); h_0, h_n, weight_hh (4 H, P) and the
    outputs (directions * P) have size P, c keeps hidden_size, layer k > 0 reads
    directions * P features."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, dtype=np.float32):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, dtype)


class GRU(RNNBase):
    """Gated recurrent unit: gates r, z, n (PyTorch's order): r = sigmoid(x_r + h_r),
    z = sigmoid(x_z + h_z), n = tanh(x_n + r (h W_hn^T + b_hn)), h_t = (1 - z) n + z h."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype=np.float32, proj_size=0):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, dtype)


class RNNCellBase(Module):
    """The base class of the cells (PyTorch's ``nn.RNNCellBase``): one time step as a
    layer (RNNCell, LSTMCell, GRUCell), the update rule of the matching sequence layer
    (``_rule``). ``RNNCellBase(input_size, hidden_size, bias, num_chunks)`` makes the
    weights (num_chunks * hidden_size, input_size) and (num_chunks * hidden_size,
    hidden_size) and the biases, as PyTorch's; it has no update rule of its own, so its
    forward is a NotImplementedError, as PyTorch's.

    Each forward in training mode keeps what its backward needs on a stack: call
    backward once per forward, in reverse order (backward through time by hand);
    backward returns (grad_input, grad_hx). Eval mode keeps nothing; ``clear_history()``
    drops forwards that will not be taken back."""

    _rule = None

    def __init__(self, input_size, hidden_size, bias, num_chunks, dtype=np.float32):
        super().__init__()
        name = type(self).__name__
        self.input_size = check_positive_int(name, "input_size", input_size)
        self.hidden_size = check_positive_int(name, "hidden_size", hidden_size)
        self.bias = check_bool(name, "bias", bias)
        bound = 1.0 / math.sqrt(self.hidden_size)
        rng = _random.generator()
        gh = check_positive_int(name, "num_chunks", num_chunks) * self.hidden_size
        shapes = [("weight_ih", (gh, self.input_size)), ("weight_hh", (gh, self.hidden_size))]
        if self.bias:
            shapes += [("bias_ih", (gh,)), ("bias_hh", (gh,))]
        for pname, shape in shapes:
            setattr(self, pname, Parameter(rng.uniform(-bound, bound, shape).astype(dtype)))
        self._stack = []

    reset_parameters = reset_uniform_by_hidden_size

    def infer_shape(self, shape, dtype):
        return None

    def __call__(self, input, *args, **kwargs):
        return _call_recording_hx(self, input, args, kwargs)

    def clear_history(self):
        """Forget the forwards not taken back yet (e.g. after a truncated BPTT window)."""
        self._stack.clear()

    def _host(self, name):
        p = getattr(self, name, None)
        return None if p is None else _device.to_host(p.data)

    def forward(self, input, hx=None):
        """h' for x (N, input_size) or (input_size,) and hx (N, hidden_size) (None:
        zeros; LSTMCell: a pair (h, c), returning (h', c'))."""
        x, where = input, self._where()
        if self._rule is None:
            raise NotImplementedError(f"{where}: RNNCellBase has no update rule of its own; "
                                      f"use RNNCell, LSTMCell or GRUCell")
        x = check_float_array(where, "input", x, device_ok=True)
        shape = tuple(x.shape)
        # PyTorch's types: the input's and hx's ranks are ValueErrors, checked first; the
        # sizes RuntimeErrors (IndexError for a 1-D state of batched input's N entries)
        if len(shape) not in (1, 2):
            raise ValueError(f"{where}: expected input of shape (N, {self.input_size}) or "
                             f"({self.input_size},), got {shape}")
        parts = hx if self._rule.has_cell and isinstance(hx, (tuple, list)) else (hx,)
        for name, h in zip(("h", "c") if self._rule.has_cell else ("hx",), parts):
            if h is not None and _device.is_array(h) and h.ndim not in (1, 2):
                raise ValueError(f"{where}: expected {name} to be 1-D or 2-D, got "
                                 f"{h.ndim}-D")
        if shape[-1] != self.input_size:
            raise RuntimeValueError(f"{where}: expected input of shape (N, {self.input_size}) "
                                    f"or ({self.input_size},), got {shape}")
        self._check_dtype(x.dtype, self.weight_ih.data.dtype)
        namespace = _device.namespace_of(x)
        host = _device.to_host(x).reshape((-1, self.input_size))
        states = self._states(hx, shape[:-1], x.dtype)
        h, c = (s.reshape(host.shape[0], self.hidden_size) if s is not None else None
                for s in states)
        xp = host @ self._host("weight_ih").T
        if self.bias:
            xp += self._host("bias_ih")
        h_new, c_new, cache = self._rule.step(xp, h, c, self._host("weight_hh"),
                                              self._host("bias_hh"))
        if self.training and _grad_mode._MODE.enabled:  # (no_grad: nothing to take back)
            self._stack.append((host, cache, shape[:-1], namespace, _hx_entry(self, hx)))
        put = lambda a: namespace.put(  # noqa: E731
            a.reshape(shape[:-1] + (self.hidden_size,)))
        return (put(h_new), put(c_new)) if self._rule.has_cell else put(h_new)

    def _states(self, hx, lead, dtype):
        shape = lead + (self.hidden_size,)
        if hx is None:
            zeros = np.zeros(shape, dtype)
            return zeros, (zeros.copy() if self._rule.has_cell else None)
        parts = hx if self._rule.has_cell else (hx,)
        if self._rule.has_cell and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise ValueError(f"{self._where()}: expected hx to be a pair (h, c)")
        out = []
        for name, h in zip(("h", "c"), parts):
            h = check_float_array(self._where(), name, h, dtype=dtype, device_ok=True)
            if tuple(h.shape) != shape:
                error = (IndexValueError if len(lead) == 1 and h.ndim == 1
                         and h.shape[0] == lead[0] else RuntimeValueError)
                raise error(f"{self._where()}: expected {name} of shape {shape}, got "
                            f"{tuple(h.shape)}")
            out.append(_device.to_host(h))
        return out[0], (out[1] if self._rule.has_cell else None)

    def _hook_grad_outputs(self, args, kwargs):
        """LSTMCell's backward hooks see PyTorch's (grad_h, grad_c), not the pair as one
        entry; the other cells' see (grad,)."""
        if (self._rule.has_cell and len(args) == 1 and isinstance(args[0], (tuple, list))
                and len(args[0]) == 2):
            return tuple(args[0]), lambda grads: (tuple(grads),)
        return args, None

    def _hook_grad_inputs(self):
        """The backward hooks see PyTorch's grad_input: (grad_input,) when the forward
        being taken back got no hx (or hx by keyword), (grad_input, grad_hx) when it got
        hx positionally, (grad_input, None) for hx=None or LSTMCell's pair (no tensor);
        backward still returns (grad_input, grad_hx), with a hook's replacements."""
        if not self._stack:
            return None
        entry = self._stack[-1][4]
        if entry == _HX_ABSENT:
            return (lambda result: result[:1]), (lambda result, grads: (grads[0], result[1]))
        if entry == _HX_NO_ARRAY:
            return ((lambda result: (result[0], None)),
                    (lambda result, grads: (grads[0], result[1])))
        return (lambda result: result), (lambda result, grads: tuple(grads))

    def backward(self, grad):
        """(grad_input, grad_hx) of the latest forward not yet taken back, for grad, the
        gradient w.r.t. its h' (LSTMCell: (grad_h, grad_c), either may be None), of the
        parameters' dtype (another is a TypeError, as for every layer)."""
        if not self._stack:
            raise RuntimeError(f"{self._where()}: backward called with no forward left to "
                               f"take back (one backward per training-mode forward)")
        host, cache, lead, namespace, _ = self._stack[-1]
        shape = lead + (self.hidden_size,)
        parts = grad if self._rule.has_cell else (grad, None)
        if self._rule.has_cell and (not isinstance(grad, (tuple, list)) or len(grad) != 2):
            raise ValueError(f"{self._where()}: expected grad to be a pair (grad_h, grad_c)")
        dtype = host.dtype
        flat = []
        names = ("grad_h", "grad_c") if self._rule.has_cell else ("grad", None)
        for g, name in zip(parts, names):
            if g is None:
                flat.append(np.zeros((host.shape[0], self.hidden_size), dtype))
                continue
            g = check_float_array(self._where(), name, g, dtype=dtype, device_ok=True)
            if tuple(g.shape) != shape:
                raise ValueError(f"{self._where()}: expected {name} of shape {shape}, got "
                                 f"{tuple(g.shape)}")
            flat.append(_device.to_host(g).reshape(host.shape[0], self.hidden_size))
        self._stack.pop()
        w_hh = self._host("weight_hh")
        dax, dah, dh, dc = self._rule.step_back(flat[0], flat[1], cache, w_hh)
        grads = (("weight_ih", lambda: _weight_grad(dax, host)),
                 ("weight_hh", lambda: _weight_grad(dah, cache[0])),
                 ("bias_ih", lambda: _bias_grad(dax)), ("bias_hh", lambda: _bias_grad(dah)))
        for pname, value in grads:
            param = getattr(self, pname, None)
            if trains(param):   # (a frozen one's neither computed nor touched, as PyTorch's)
                _device.update_on_host(param.grad, lambda a, v=value(): np.add(a, v, out=a))
        put = lambda a, n: namespace.put(a.reshape(lead + (n,)))  # noqa: E731
        grad_x = put(dax @ self._host("weight_ih"), self.input_size)
        if self._rule.has_cell:
            return grad_x, (put(dh, self.hidden_size), put(dc, self.hidden_size))
        return grad_x, put(dh, self.hidden_size)

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(RNNCellBase):
    """h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act tanh (or 'relu')."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh",
                 dtype=np.float32):
        try:
            check_only("RNNCell", "nonlinearity", nonlinearity, ("tanh", "relu"))
        except ValueError as e:   # (PyTorch's RuntimeError, when called; RNN's is a ValueError)
            raise RuntimeValueError(str(e)) from None
        super().__init__(input_size, hidden_size, bias, 1, dtype)
        self.nonlinearity = nonlinearity

    @property
    def _rule(self):
        return _RULES["RNN_RELU" if self.nonlinearity == "relu" else "RNN_TANH"]

    def extra_repr(self):
        return super().extra_repr() + (", nonlinearity=relu"
                                       if self.nonlinearity == "relu" else "")


class LSTMCell(RNNCellBase):
    """One LSTM step: (h', c') from x and (h, c) (gates i, f, g, o)."""

    _rule = _RULES["LSTM"]

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float32):
        super().__init__(input_size, hidden_size, bias, 4, dtype)

    def infer_shape(self, shape, dtype):
        raise TypeError(_TWO_OUTPUTS.format(where=self._where(), outputs="(h', c')"))


class GRUCell(RNNCellBase):
    """One GRU step: h' from x and h (gates r, z, n)."""

    _rule = _RULES["GRU"]

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float32):
        super().__init__(input_size, hidden_size, bias, 3, dtype)
