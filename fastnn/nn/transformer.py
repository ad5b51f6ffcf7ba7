"""PyTorch's TransformerEncoderLayer and TransformerEncoder, built from fastnn's layers
(MultiheadAttention, Linear, LayerNorm, Dropout, ReLU/GELU) with the backward written
out: each sub-layer's backward is called in reverse order of its forward."""
import contextlib
import copy
import numbers
import threading

import numpy as np

from .. import device as _device
from ..errors import IndexValueError, TypeValueError
from ..validation import check_bool, check_number, check_positive_int
from . import activations as _act
from . import init
from .attention import (AttentionAssertionError, AttentionMaskTypeError,
                        AttentionRuntimeError, MultiheadAttention)
from .container import ModuleList
from .dropout import Dropout
from .layernorm import LayerNorm
from .linear import Linear
from .module import (Module, _as_dtype, _is_dtype_like, checks_sub_forwards,
                     records_sub_forwards)


def _functional_activations():
    """fastnn.ops' and fastnn.nn.functional's activation functions (at their defaults)
    -> a layer making the same."""
    from .. import ops
    from . import functional as F
    from . import host_layers as _host
    table = {ops.relu: _act.ReLU, ops.gelu: _act.GELU, ops.gelu_tanh: lambda: _act.GELU("tanh"),
             ops.leaky_relu: _act.LeakyReLU, ops.sigmoid: _act.Sigmoid, ops.tanh: _act.Tanh,
             ops.silu: _act.SiLU, ops.mish: _act.Mish, ops.elu: _act.ELU,
             ops.softplus: _act.Softplus, ops.hardsigmoid: _act.Hardsigmoid,
             ops.hardswish: _act.Hardswish, ops.softsign: _act.Softsign,
             ops.hardtanh: _act.Hardtanh}
    table.update({F.relu: _act.ReLU, F.relu6: _act.ReLU6, F.gelu: _act.GELU,
                  F.leaky_relu: _act.LeakyReLU, F.sigmoid: _act.Sigmoid, F.tanh: _act.Tanh,
                  F.silu: _act.SiLU, F.mish: _act.Mish, F.elu: _act.ELU, F.selu: _act.SELU,
                  F.celu: _act.CELU, F.softplus: _act.Softplus,
                  F.hardsigmoid: _act.Hardsigmoid, F.hardswish: _act.Hardswish,
                  F.softsign: _act.Softsign, F.hardtanh: _act.Hardtanh,
                  F.logsigmoid: _act.LogSigmoid, F.tanhshrink: _host.Tanhshrink,
                  F.softshrink: _host.Softshrink, F.hardshrink: _host.Hardshrink})
    return table


def _activation(name, activation):
    """'relu' / 'gelu' as a layer, a fastnn activation Module as it is, or a fastnn.ops /
    fastnn.nn.functional activation function (F.relu, F.gelu, ...) as its layer. Any
    other callable is a TypeError: PyTorch differentiates it by autograd, fastnn's
    backward needs a layer's."""
    if isinstance(activation, str):
        if activation not in ("relu", "gelu"):
            raise AttentionRuntimeError(f"{name}: activation should be relu/gelu, not "
                                        f"{activation} (activation should be 'relu' or "
                                        f"'gelu', a fastnn activation layer or function)")
        return _act.ReLU() if activation == "relu" else _act.GELU()
    if isinstance(activation, Module):
        return activation
    if callable(activation):
        try:
            layer = _functional_activations().get(activation)
        except TypeError:   # an unhashable callable
            layer = None
        if layer is not None:
            return layer()
        raise TypeError(f"{name}: activation {activation!r} is a plain callable, whose "
                        f"derivative fastnn's backward cannot take (PyTorch uses autograd); "
                        f"pass 'relu', 'gelu', a fastnn activation layer (nn.ReLU(), "
                        f"nn.GELU(), nn.SiLU(), ...) or a fastnn.nn.functional / fastnn.ops "
                        f"activation function (F.relu, F.gelu, fastnn.ops.relu, ...)")
    raise TypeError(f"{name}: expected activation to be 'relu', 'gelu', a fastnn Module or a "
                    f"fastnn.ops activation function, got {activation!r}")


def _set_activation(layer, name, activation):
    """layer.activation from the argument, as PyTorch keeps it: an activation Module is a
    child (in the repr and modules()); a name or a function is a plain attribute (PyTorch
    stores a function there), here the layer computing it."""
    act = _activation(name, activation)
    if isinstance(activation, Module):
        layer.activation = act
    else:
        object.__setattr__(layer, "activation", act)


def _activation_of(layer):
    """layer.activation, on the layer's device (a plain attribute is not among the
    modules that ``Module.to`` moves)."""
    act = layer.activation
    if isinstance(act, Module) and act._device != layer._device:
        act._scratch.clear()   # as Module.to does for its modules
        object.__setattr__(act, "_out_meta", None)
        object.__setattr__(act, "_device", layer._device)
    return act


def _relu_or_gelu(activation):
    """PyTorch's TransformerEncoderLayer.activation_relu_or_gelu: 1 for ReLU, 2 for GELU
    (any approximate), 0 otherwise."""
    from . import functional as F
    from .. import ops
    if activation in ("relu", F.relu, ops.relu) or isinstance(activation, _act.ReLU):
        return 1
    if activation in ("gelu", F.gelu, ops.gelu) or isinstance(activation, _act.GELU):
        return 2
    return 0


def _copies(where, layer, kind, num_layers):
    if not isinstance(layer, kind):
        raise TypeError(f"{where}: expected a {kind.__name__}, got {type(layer).__name__}")
    if isinstance(num_layers, bool) or not isinstance(num_layers, numbers.Integral):
        raise TypeValueError(f"{where}: expected num_layers to be a non-negative int, got "
                             f"{num_layers!r}")   # (PyTorch's range() TypeError)
    if num_layers < 0:
        raise ValueError(f"{where}: expected num_layers to be a non-negative int, got "
                         f"{num_layers!r}")
    count = int(num_layers)
    return ModuleList([copy.deepcopy(layer) for _ in range(count)]), count


def _check_no_layers(module):
    """PyTorch's encoder and decoder without layers build (their state dict is the
    norm's) but cannot run: its forward reads layers[0] (an IndexError); so does this."""
    if not len(module.layers):
        raise IndexValueError(f"{module._where()}: it has no layers (num_layers=0) to run; "
                              f"PyTorch's forward fails on it too")


def _check_alike(where, first, second, names):
    """Both inputs batched (3-D) or both unbatched (2-D), as PyTorch requires."""
    ndims = tuple(getattr(a, "ndim", None) for a in (first, second))
    if None not in ndims and ndims[0] != ndims[1] and set(ndims) <= {2, 3}:
        raise AttentionAssertionError(f"{where}: expected {names[0]} and {names[1]} both "
                                      f"batched (3-D) or both unbatched (2-D), got "
                                      f"{ndims[0]}-D and {ndims[1]}-D")


def _check_masks(where, **masks):
    """Masks are bool (True: masked) or float (added), as in PyTorch: checked here to
    name the argument before any sub-layer runs."""
    for name, mask in masks.items():
        if mask is None:
            continue
        dt = getattr(mask, "dtype", None)
        kind = np.dtype(dt) if dt is not None else np.asarray(mask).dtype
        if kind != bool and kind.kind != "f":
            raise AttentionMaskTypeError(f"{where}: expected {name} of dtype bool (True: "
                                         f"masked) or float (added to the scores), got "
                                         f"{kind}")


# True while a stack (encoder, decoder, Transformer) runs layers whose arguments it
# checked up front: their own forward then skips the same checks
_CHECKED = threading.local()


@contextlib.contextmanager
def _checked_up_front(part):
    """Run part with its checks skipped when it has check_inputs, which the stack around
    it has just called (a user's module without one checks its own arguments)."""
    outer = getattr(_CHECKED, "on", False)
    _CHECKED.on = hasattr(part, "check_inputs")
    try:
        yield
    finally:
        _CHECKED.on = outer


def _unless_checked(check, *args):
    """check(*args), unless a stack around this call checked these arguments already."""
    if not getattr(_CHECKED, "on", False):
        check(*args)


def _check_part(part, *args):
    """part.check_inputs(*args), for a sub-layer that has one (a user's replacement of a
    layer or attention need not: it checks its arguments when it runs)."""
    check = getattr(part, "check_inputs", None)
    if check is not None:
        check(*args)


def _check_norm(norm, x):
    """The error norm would raise for an input of x's shape and dtype (a user's norm
    without infer_shape, or None, checks nothing here)."""
    infer = getattr(norm, "infer_shape", None)
    if infer is not None and _device.is_array(x):
        infer(tuple(x.shape), x.dtype)


def _check_first_norm(layer, x):
    """With norm_first the layer's first sub-layer is norm1: its error for a bad x first,
    as PyTorch's."""
    if layer.norm_first:
        _check_norm(layer.norm1, x)


def _placeholder(shape, dtype):
    """A read-only array of this shape and dtype that takes no memory (every element the
    one zero): for running a layer's checks of its input from infer_shape."""
    return np.lib.stride_tricks.as_strided(np.zeros(1, dtype), shape=tuple(shape),
                                           strides=(0,) * len(shape), writeable=False)


def _nested_ok(layer):
    """PyTorch's TransformerEncoder.use_nested_tensor condition on its layer."""
    attn = layer.self_attn
    return (not layer.norm_first and attn.batch_first and attn._qkv_same_embed_dim
            and attn.in_proj_bias is not None and bool(layer.activation_relu_or_gelu)
            and layer.norm1.eps == layer.norm2.eps and attn.num_heads % 2 == 0)


class TransformerEncoderLayer(Module):
    """Self-attention then a feed-forward block, each with dropout, a residual and a
    LayerNorm: post-norm x = norm1(x + sa(x)), x = norm2(x + ff(x)) (norm_first:
    x = x + sa(norm1(x)), x = x + ff(norm2(x))), ff(x) = linear2(dropout(act(linear1(x)))).
    Input (L, N, d_model) ((N, L, d_model) with batch_first; (L, d_model) unbatched).
    forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False) as PyTorch's
    (masks bool or float; is_causal: the hint that src_mask is the causal mask, see
    MultiheadAttention); backward(grad_out) returns the gradient of src. activation:
    'relu', 'gelu', a fastnn activation layer (a child, as PyTorch's module) or a
    fastnn.nn.functional / fastnn.ops activation function (F.relu, F.gelu, ...; a name or
    function is a plain attribute, as PyTorch's function: not in the repr or modules());
    activation_relu_or_gelu as PyTorch's. dropout in [0, 1]. Parameter names as
    PyTorch's (its state dicts load)."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True,
                 dtype=np.float32):
        super().__init__()
        name = "TransformerEncoderLayer"
        d_model = check_positive_int(name, "d_model", d_model)
        dim_feedforward = check_positive_int(name, "dim_feedforward", dim_feedforward)
        check_number(name, "dropout", dropout, 0.0, 1.0, high_open=False)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = check_bool(name, "norm_first", norm_first)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        _set_activation(self, name, activation)
        self.activation_relu_or_gelu = _relu_or_gelu(activation)

    def infer_shape(self, shape, dtype):
        """src's shape, after the checks forward makes of a src of this shape and dtype
        (a Sequential runs them before any of its layers runs)."""
        self.check_inputs(_placeholder(shape, dtype))
        return tuple(shape)

    def __call__(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        return self.forward(src, src_mask, src_key_padding_mask, is_causal)

    def check_inputs(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        """Raise the error forward would raise for these arguments before any sub-layer
        runs: a bad mask then leaves every sub-layer's saved state as it was."""
        _check_masks(self._where(), src_mask=src_mask,
                     src_key_padding_mask=src_key_padding_mask)
        _check_first_norm(self, src)
        _check_part(self.self_attn, src, src, src, src_key_padding_mask, False, src_mask,
                    is_causal)

    @records_sub_forwards
    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        """The layer's output, src's shape: src (L, N, d_model) ((N, L, d_model) with
        batch_first, (L, d_model) unbatched); src_mask (L, L) or (N * nhead, L, L),
        src_key_padding_mask (N, S) ((S,) unbatched), as MultiheadAttention's masks."""
        _unless_checked(self.check_inputs, src, src_mask, src_key_padding_mask, is_causal)
        add, x = _device.added, src
        if self.norm_first:
            x = add(x, self._sa(self.norm1(x), src_mask, src_key_padding_mask, is_causal))
            return add(x, self._ff(self.norm2(x)))
        x = self.norm1(add(x, self._sa(x, src_mask, src_key_padding_mask, is_causal)))
        return self.norm2(add(x, self._ff(x)))

    def _sa(self, x, attn_mask, key_padding_mask, is_causal):
        out, _ = self.self_attn(x, x, x, attn_mask=attn_mask,
                                key_padding_mask=key_padding_mask, need_weights=False,
                                is_causal=is_causal)
        return self.dropout1(out)

    def _ff(self, x):
        return self.dropout2(self.linear2(self.dropout(_activation_of(self)(self.linear1(x)))))

    def _sa_back(self, g):
        return _device.added(*self.self_attn.backward(self.dropout1.backward(g)))

    def _ff_back(self, g):
        g = self.dropout.backward(self.linear2.backward(self.dropout2.backward(g)))
        return self.linear1.backward(_activation_of(self).backward(g))

    @checks_sub_forwards
    def backward(self, grad_out):
        """The gradient of src for grad_out (the output's shape); parameters' gradients
        accumulate."""
        add, g = _device.added, grad_out
        if self.norm_first:
            g = add(g, self.norm2.backward(self._ff_back(g)))
            return add(g, self.norm1.backward(self._sa_back(g)))
        g = self.norm2.backward(g)
        g = add(g, self._ff_back(g))
        g = self.norm1.backward(g)
        return add(g, self._sa_back(g))


class TransformerEncoder(Module):
    """``num_layers`` copies of ``encoder_layer`` (named layers.0, layers.1, ... as
    PyTorch's), then ``norm`` when given. forward(src, mask=None,
    src_key_padding_mask=None, is_causal=None) (is_causal None: False, which gives the
    same values as PyTorch's detection of a causal mask); backward(grad_out) -> gradient
    of src. num_layers=0 builds (its state dict is the norm's) but, as PyTorch's, cannot
    run forward (IndexError). enable_nested_tensor, use_nested_tensor (PyTorch's rule) and
    mask_check are kept as attributes; with them PyTorch's inference under no_grad (eval,
    batch_first, a left-aligned src_key_padding_mask) zeroes the padded positions, while
    fastnn computes them as PyTorch's differentiable path does."""

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True,
                 mask_check=True):
        super().__init__()
        self.layers, self.num_layers = _copies("TransformerEncoder", encoder_layer,
                                               TransformerEncoderLayer, num_layers)
        self.norm = norm
        # PyTorch's switches of its nested-tensor inference path, kept as attributes (no
        # effect: fastnn computes every position, as PyTorch does with grad enabled)
        self.enable_nested_tensor = enable_nested_tensor
        self.use_nested_tensor = bool(enable_nested_tensor) and _nested_ok(encoder_layer)
        self.mask_check = mask_check

    def infer_shape(self, shape, dtype):
        """src's shape, after the checks forward makes of a src of this shape and dtype."""
        self.check_inputs(_placeholder(shape, dtype))
        return tuple(shape)

    def __call__(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        return self.forward(src, mask, src_key_padding_mask, is_causal)

    def check_inputs(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        """Raise the error forward would raise for these arguments before any layer runs."""
        _check_no_layers(self)
        _check_masks(self._where(), mask=mask, src_key_padding_mask=src_key_padding_mask)
        for layer in self.layers:
            _check_part(layer, src, mask, src_key_padding_mask, bool(is_causal))
        _check_norm(self.norm, src)   # (every layer keeps the shape)

    @records_sub_forwards
    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        """The last layer's output (then norm's), src's shape; src and the masks as
        TransformerEncoderLayer.forward's (mask is its src_mask)."""
        _unless_checked(self.check_inputs, src, mask, src_key_padding_mask, is_causal)
        x = src
        for layer in self.layers:
            with _checked_up_front(layer):   # (check_inputs checked every layer)
                # keywords, as PyTorch's (a with_kwargs forward pre-hook sees them so)
                x = layer(x, src_mask=mask, is_causal=bool(is_causal),
                          src_key_padding_mask=src_key_padding_mask)
        return x if self.norm is None else self.norm(x)

    @checks_sub_forwards
    def backward(self, grad_out):
        """The gradient of src for grad_out (the output's shape); parameters' gradients
        accumulate."""
        g = grad_out if self.norm is None else self.norm.backward(grad_out)
        for layer in reversed(list(self.layers)):
            g = layer.backward(g)
        return g


class TransformerDecoderLayer(Module):
    """Self-attention over tgt, attention from tgt to ``memory`` (the encoder's output),
    then the feed-forward block, each with dropout, a residual and a LayerNorm (post-norm
    or norm_first, as TransformerEncoderLayer). forward(tgt, memory, tgt_mask=None,
    memory_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None,
    tgt_is_causal=False, memory_is_causal=False) as PyTorch's (tgt and memory both
    batched or both unbatched; the hints as TransformerEncoderLayer's is_causal);
    backward(grad_out) returns (grad_tgt, grad_memory). Parameter names as PyTorch's
    (self_attn, multihead_attn, linear1, linear2, norm1..3). activation as
    TransformerEncoderLayer's; a copy of a layer whose activation is a Module (the
    layers of TransformerDecoder and Transformer, deepcopy, pickle) computes relu, as
    PyTorch's (see __setstate__)."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True,
                 dtype=np.float32):
        super().__init__()
        name = "TransformerDecoderLayer"
        d_model = check_positive_int(name, "d_model", d_model)
        dim_feedforward = check_positive_int(name, "dim_feedforward", dim_feedforward)
        check_number(name, "dropout", dropout, 0.0, 1.0, high_open=False)
        attention = dict(dropout=dropout, bias=bias, batch_first=batch_first, dtype=dtype)
        self.self_attn = MultiheadAttention(d_model, nhead, **attention)
        self.multihead_attn = MultiheadAttention(d_model, nhead, **attention)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = check_bool(name, "norm_first", norm_first)
        for i in (1, 2, 3):
            setattr(self, f"norm{i}", LayerNorm(d_model, eps=layer_norm_eps, bias=bias,
                                                dtype=dtype))
        for i in (1, 2, 3):
            setattr(self, f"dropout{i}", Dropout(dropout))
        _set_activation(self, name, activation)

    def __setstate__(self, state):
        # PyTorch's TransformerDecoderLayer.__setstate__ sets activation to relu when its
        # __dict__ has none, which is the case for an activation Module (a child): every
        # copy of such a layer (TransformerDecoder's and Transformer's clones, deepcopy,
        # pickle) computes relu, its repr still naming the module. The same here, so that
        # weights copied from such a PyTorch model give its outputs.
        super().__setstate__(state)
        if "activation" in self._modules:
            object.__setattr__(self, "activation", _act.ReLU())

    def infer_shape(self, shape, dtype):
        return None

    def __call__(self, tgt, memory, tgt_mask=None, memory_mask=None,
                 tgt_key_padding_mask=None, memory_key_padding_mask=None, tgt_is_causal=False,
                 memory_is_causal=False):
        return self.forward(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask,
                            memory_key_padding_mask, tgt_is_causal, memory_is_causal)

    def check_inputs(self, tgt, memory, tgt_mask=None, memory_mask=None,
                     tgt_key_padding_mask=None, memory_key_padding_mask=None,
                     tgt_is_causal=False, memory_is_causal=False):
        """Raise the error forward would raise for these arguments before any sub-layer
        runs: memory or a mask that fails the cross-attention then leaves the
        self-attention's and norms' saved state as it was."""
        where = self._where()
        _check_alike(where, tgt, memory, ("tgt", "memory"))
        _check_masks(where, tgt_mask=tgt_mask, memory_mask=memory_mask,
                     tgt_key_padding_mask=tgt_key_padding_mask,
                     memory_key_padding_mask=memory_key_padding_mask)
        _check_first_norm(self, tgt)
        # (each attention's query has tgt's shape and dtype, whatever ran before it)
        _check_part(self.self_attn, tgt, tgt, tgt, tgt_key_padding_mask, False, tgt_mask,
                    tgt_is_causal)
        _check_part(self.multihead_attn, tgt, memory, memory, memory_key_padding_mask, False,
                    memory_mask, memory_is_causal)

    @records_sub_forwards
    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        """The layer's output, tgt's shape: tgt (T, N, d_model) and memory (S, N, d_model)
        ((N, T, d_model), (N, S, d_model) with batch_first; no N unbatched); tgt_mask
        (T, T), memory_mask (T, S) (or with N * nhead in front), tgt_key_padding_mask
        (N, T), memory_key_padding_mask (N, S), as MultiheadAttention's masks."""
        _unless_checked(self.check_inputs, tgt, memory, tgt_mask, memory_mask,
                        tgt_key_padding_mask, memory_key_padding_mask, tgt_is_causal,
                        memory_is_causal)
        add, x = _device.added, tgt
        sa = lambda y: self._sa(y, tgt_mask, tgt_key_padding_mask, tgt_is_causal)  # noqa: E731
        ca = lambda y: self._ca(y, memory, memory_mask, memory_key_padding_mask,  # noqa: E731
                                memory_is_causal)
        if self.norm_first:
            x = add(x, sa(self.norm1(x)))
            x = add(x, ca(self.norm2(x)))
            return add(x, self._ff(self.norm3(x)))
        x = self.norm1(add(x, sa(x)))
        x = self.norm2(add(x, ca(x)))
        return self.norm3(add(x, self._ff(x)))

    def _sa(self, x, mask, padding, is_causal):
        out, _ = self.self_attn(x, x, x, attn_mask=mask, key_padding_mask=padding,
                                need_weights=False, is_causal=is_causal)
        return self.dropout1(out)

    def _ca(self, x, memory, mask, padding, is_causal):
        out, _ = self.multihead_attn(x, memory, memory, attn_mask=mask,
                                     key_padding_mask=padding, need_weights=False,
                                     is_causal=is_causal)
        return self.dropout2(out)

    def _ff(self, x):
        return self.dropout3(self.linear2(self.dropout(_activation_of(self)(self.linear1(x)))))

    @checks_sub_forwards
    def backward(self, grad_out):
        """(grad_tgt, grad_memory) for grad_out (the output's shape); parameters'
        gradients accumulate."""
        add, g = _device.added, grad_out

        def ff_back(h):
            h = self.dropout.backward(self.linear2.backward(self.dropout3.backward(h)))
            return self.linear1.backward(_activation_of(self).backward(h))

        def ca_back(h):
            dq, dk, dv = self.multihead_attn.backward(self.dropout2.backward(h))
            return dq, add(dk, dv)

        def sa_back(h):
            return add(*self.self_attn.backward(self.dropout1.backward(h)))
        if self.norm_first:
            g = add(g, self.norm3.backward(ff_back(g)))
            dq, grad_memory = ca_back(g)
            g = add(g, self.norm2.backward(dq))
            return add(g, self.norm1.backward(sa_back(g))), grad_memory
        g = self.norm3.backward(g)
        g = add(g, ff_back(g))
        g = self.norm2.backward(g)
        dq, grad_memory = ca_back(g)
        g = self.norm1.backward(add(g, dq))
        return add(g, sa_back(g)), grad_memory


class TransformerDecoder(Module):
    """``num_layers`` copies of ``decoder_layer`` (layers.0, ...), each attending to the
    same memory, then ``norm`` when given. forward(tgt, memory, tgt_mask=None,
    memory_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None,
    tgt_is_causal=None, memory_is_causal=False); backward(grad_out) -> (grad_tgt,
    grad_memory), memory's summed over the layers. num_layers=0: as TransformerEncoder's
    (builds, forward is an IndexError, as PyTorch's)."""

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        self.layers, self.num_layers = _copies("TransformerDecoder", decoder_layer,
                                               TransformerDecoderLayer, num_layers)
        self.norm = norm

    def infer_shape(self, shape, dtype):
        return None

    def __call__(self, tgt, memory, tgt_mask=None, memory_mask=None,
                 tgt_key_padding_mask=None, memory_key_padding_mask=None, tgt_is_causal=None,
                 memory_is_causal=False):
        return self.forward(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask,
                            memory_key_padding_mask, tgt_is_causal, memory_is_causal)

    def check_inputs(self, tgt, memory, tgt_mask=None, memory_mask=None,
                     tgt_key_padding_mask=None, memory_key_padding_mask=None,
                     tgt_is_causal=None, memory_is_causal=False):
        """Raise the error forward would raise for these arguments before any layer runs."""
        where = self._where()
        _check_no_layers(self)
        _check_alike(where, tgt, memory, ("tgt", "memory"))
        _check_masks(where, tgt_mask=tgt_mask, memory_mask=memory_mask,
                     tgt_key_padding_mask=tgt_key_padding_mask,
                     memory_key_padding_mask=memory_key_padding_mask)
        for layer in self.layers:
            _check_part(layer, tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask,
                        memory_key_padding_mask, bool(tgt_is_causal), memory_is_causal)
        _check_norm(self.norm, tgt)   # (every layer keeps the shape)

    @records_sub_forwards
    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        """The last layer's output (then norm's), tgt's shape; the arguments as
        TransformerDecoderLayer.forward's."""
        _unless_checked(self.check_inputs, tgt, memory, tgt_mask, memory_mask,
                        tgt_key_padding_mask, memory_key_padding_mask, tgt_is_causal,
                        memory_is_causal)
        x = tgt
        for layer in self.layers:
            with _checked_up_front(layer):   # (check_inputs checked every layer)
                x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                          tgt_key_padding_mask=tgt_key_padding_mask,
                          memory_key_padding_mask=memory_key_padding_mask,
                          tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal)
        return x if self.norm is None else self.norm(x)

    @checks_sub_forwards
    def backward(self, grad_out):
        """(grad_tgt, grad_memory) for grad_out (the output's shape), grad_memory summed
        over the layers; parameters' gradients accumulate."""
        g = grad_out if self.norm is None else self.norm.backward(grad_out)
        grad_memory = None
        for layer in reversed(list(self.layers)):
            g, gm = layer.backward(g)
            grad_memory = gm if grad_memory is None else _device.added(grad_memory, gm)
        return g, grad_memory


class Transformer(Module):
    """PyTorch's encoder-decoder Transformer: ``encoder`` (num_encoder_layers
    TransformerEncoderLayers and a final LayerNorm) reads src, ``decoder``
    (num_decoder_layers TransformerDecoderLayers and a final LayerNorm) reads tgt and
    the encoder's output. Matrices start xavier_uniform, as PyTorch's. forward(src, tgt,
    src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
    tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None,
    tgt_is_causal=None, memory_is_causal=False) (src and tgt both batched, of one batch
    size, or both unbatched, d_model features); backward(grad_out) -> (grad_src,
    grad_tgt). ``generate_square_subsequent_mask(n)``: the causal mask."""

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
                 dim_feedforward=2048, dropout=0.1, activation="relu", custom_encoder=None,
                 custom_decoder=None, layer_norm_eps=1e-5, batch_first=False,
                 norm_first=False, bias=True, dtype=np.float32):
        super().__init__()
        layer = dict(dim_feedforward=dim_feedforward, dropout=dropout, activation=activation,
                     layer_norm_eps=layer_norm_eps, batch_first=batch_first,
                     norm_first=norm_first, bias=bias, dtype=dtype)
        norm = lambda: LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)  # noqa: E731
        self.encoder = custom_encoder if custom_encoder is not None else TransformerEncoder(
            TransformerEncoderLayer(d_model, nhead, **layer), num_encoder_layers, norm())
        self.decoder = custom_decoder if custom_decoder is not None else TransformerDecoder(
            TransformerDecoderLayer(d_model, nhead, **layer), num_decoder_layers, norm())
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        self._reset_parameters()

    def _reset_parameters(self):
        """PyTorch's: every parameter of more than one dimension xavier_uniform, in
        place (the constructor's last step)."""
        for p in self.parameters():
            if p.data.ndim > 1:
                init.xavier_uniform_(p)

    @staticmethod
    def generate_square_subsequent_mask(sz, device=None, dtype=None):
        """(sz, sz) float mask: -inf above the diagonal (a position sees itself and the
        ones before), 0 elsewhere. PyTorch's arguments: device 'cpu' or 'cuda' (None:
        the host), dtype float32 (None) or float64; a dtype in device's place is taken
        as the dtype, as ``Module.to`` does."""
        if device is not None and dtype is None and _is_dtype_like(device):
            device, dtype = None, device
        where = "Transformer.generate_square_subsequent_mask"
        place = "cpu" if device is None else _device.check_device(where, device)
        dtype = np.float32 if dtype is None else _as_dtype(dtype)
        mask = np.triu(np.full((sz, sz), -np.inf, dtype), 1)
        return _device.namespace(place).put(mask)

    def infer_shape(self, shape, dtype):
        return None

    def __call__(self, src, tgt, *args, **kwargs):
        return self.forward(src, tgt, *args, **kwargs)

    @records_sub_forwards
    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
                src_key_padding_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        """The decoder's output, tgt's shape, for src (S, N, d_model) and tgt (T, N,
        d_model) ((N, S, d_model), (N, T, d_model) with batch_first; no N unbatched); the
        masks as TransformerEncoderLayer's (src) and TransformerDecoderLayer's (tgt,
        memory)."""
        where = self._where()
        # PyTorch's order: the batch (src 3-D) and the features (RuntimeError), then the
        # ranks (its attention's AssertionError)
        shapes = tuple(tuple(getattr(a, "shape", ())) for a in (src, tgt))
        if len(shapes[0]) == 3:
            axis = 0 if self.batch_first else 1
            if len(shapes[1]) > axis and shapes[0][axis] != shapes[1][axis]:
                raise AttentionRuntimeError(f"{where}: expected src and tgt of one batch "
                                            f"size, got {shapes[0]} and {shapes[1]}")
        if any(shape and shape[-1] != self.d_model for shape in shapes):
            raise AttentionRuntimeError(f"{where}: expected src and tgt of d_model = "
                                        f"{self.d_model} features, got {shapes[0]} and "
                                        f"{shapes[1]}")
        _check_alike(where, src, tgt, ("src", "tgt"))
        _check_masks(where, src_mask=src_mask, tgt_mask=tgt_mask, memory_mask=memory_mask,
                     src_key_padding_mask=src_key_padding_mask,
                     tgt_key_padding_mask=tgt_key_padding_mask,
                     memory_key_padding_mask=memory_key_padding_mask)
        _check_part(self.encoder, src, src_mask, src_key_padding_mask, src_is_causal)
        if type(self.encoder) is not TransformerEncoder:
            # a custom encoder's memory need not have src's shape: the decoder checks its
            # arguments when it runs
            memory = self.encoder(src, src_mask, src_key_padding_mask, src_is_causal)
            return self.decoder(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask,
                                memory_key_padding_mask, tgt_is_causal, memory_is_causal)
        # the built-in encoder's memory has src's shape: the decoder's arguments checked
        # too before the encoder runs, and neither checks them again
        _check_part(self.decoder, tgt, src, tgt_mask, memory_mask, tgt_key_padding_mask,
                    memory_key_padding_mask, tgt_is_causal, memory_is_causal)
        with _checked_up_front(self.encoder):
            memory = self.encoder(src, src_mask, src_key_padding_mask, src_is_causal)
        with _checked_up_front(self.decoder):
            return self.decoder(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask,
                                memory_key_padding_mask, tgt_is_causal, memory_is_causal)

    @checks_sub_forwards
    def backward(self, grad_out):
        """(grad_src, grad_tgt) for grad_out; parameters' gradients accumulate."""
        grad_tgt, grad_memory = self.decoder.backward(grad_out)
        return self.encoder.backward(grad_memory), grad_tgt
