"""PyTorch's MultiheadAttention with an explicit backward, NumPy on the host (the
products are batched matrix products; a GPU model's arrays go through the host)."""
import math

import numpy as np

from .. import device as _device
from .. import random as _random
from ..errors import AssertionTypeError, AssertionValueError, RuntimeValueError
from ..validation import check_bool, check_float_array, check_number, check_positive_int
from . import init
from .linear import Linear
from .module import Module, Parameter, check_kept, kept_for_backward, trains


# PyTorch's attention asserts its shapes (AssertionError), raises RuntimeError for a
# wrongly shaped attn_mask or is_causal without its mask, and asserts a mask's dtype
AttentionAssertionError = AssertionValueError
AttentionRuntimeError = RuntimeValueError
AttentionMaskTypeError = AssertionTypeError


class NonDynamicallyQuantizableLinear(Linear):
    """The output projection, a Linear (E, E) named as PyTorch's class of it (its repr
    and ``out_proj`` child match PyTorch's, so state dicts keep their keys); the bias
    starts at zero, as PyTorch's MultiheadAttention sets it."""

    def __init__(self, embed_dim, bias, dtype):
        super().__init__(embed_dim, embed_dim, bias=bias, dtype=dtype)
        if self.bias is not None:
            self.bias.data[...] = 0


class MultiheadAttention(Module):
    """softmax(Q K^T / sqrt(d) + mask) V over ``num_heads`` heads of size d = embed_dim /
    num_heads, Q, K, V the projections of query, key and value by ``in_proj_weight``
    (3 E, E) and ``in_proj_bias`` (3 E,), the heads concatenated and projected by
    ``out_proj``. With kdim or vdim other than E, key and value have kdim and vdim
    features and the projections are ``q_proj_weight`` (E, E), ``k_proj_weight``
    (E, kdim), ``v_proj_weight`` (E, vdim) (``in_proj_weight`` is None), as PyTorch's.
    add_bias_kv appends one learnt key ``bias_k`` and value ``bias_v`` (1, 1, E) to the
    projected keys and values; add_zero_attn then one zero key and value to every head
    (masks get a column of zeros for each: those keys are never masked).

    forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False) -> (attn_output, attn_weights or None):
    query (L, N, E), key (S, N, kdim) and value (S, N, vdim) ((N, L, E) with
    batch_first; (L, E) unbatched, all three alike); key_padding_mask (N, S) ((S,)
    unbatched; bool: True ignores the key, or float: added); attn_mask (L, S) or
    (N * num_heads, L, S) (bool: True masks, or float: added); other mask dtypes are a
    TypeError, as in PyTorch. is_causal=True is PyTorch's hint that attn_mask is the
    causal mask (an attn_mask is required): without key_padding_mask and with
    need_weights=False the causal mask (key j hidden from query i for j > i) is used in
    its place, as PyTorch's scaled_dot_product_attention path does; otherwise attn_mask.
    attn_weights (N, L, S) averaged over heads, or (N, num_heads, L, S) (after
    dropout). A query whose keys are all masked gets NaN weights and output with
    need_weights=True, and zero weights (output out_proj.bias, zero gradients) with
    need_weights=False, PyTorch's two paths. dropout (0 to 1) drops attention weights in
    training mode (fastnn's generator). backward(grad_output) returns (grad_query,
    grad_key, grad_value) and accumulates the parameters' gradients. PyTorch's
    initialisation: xavier_uniform projection weights, xavier_normal bias_k and bias_v,
    zero biases.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
                 add_zero_attn=False, kdim=None, vdim=None, batch_first=False,
                 dtype=np.float32):
        super().__init__()
        name = "MultiheadAttention"
        self.embed_dim = check_positive_int(name, "embed_dim", embed_dim)
        self.num_heads = check_positive_int(name, "num_heads", num_heads)
        if self.embed_dim % self.num_heads:
            raise AttentionAssertionError(
                f"{name}: embed_dim must be divisible by num_heads: embed_dim ({embed_dim}) "
                f"must be divisible by num_heads ({num_heads}) to split it into heads")
        check_number(name, "dropout", dropout, 0.0, 1.0, high_open=False)
        e = self.embed_dim
        self.kdim = e if kdim is None else check_positive_int(name, "kdim", kdim)
        self.vdim = e if vdim is None else check_positive_int(name, "vdim", vdim)
        self._qkv_same_embed_dim = self.kdim == e and self.vdim == e
        add_bias_kv = check_bool(name, "add_bias_kv", add_bias_kv)
        self.add_zero_attn = check_bool(name, "add_zero_attn", add_zero_attn)
        self.dropout = float(dropout)
        self.batch_first = check_bool(name, "batch_first", batch_first)
        self.head_dim = e // self.num_heads
        if self._qkv_same_embed_dim:
            bound = math.sqrt(6.0 / (e + 3 * e))   # xavier_uniform on (3 E, E)
            rng = _random.generator()
            self.in_proj_weight = Parameter(rng.uniform(-bound, bound, (3 * e, e)).astype(dtype))
            self.q_proj_weight = self.k_proj_weight = self.v_proj_weight = None
        else:
            for part, features in (("q", e), ("k", self.kdim), ("v", self.vdim)):
                weight = init.xavier_uniform_(Parameter(np.empty((e, features), dtype)))
                setattr(self, f"{part}_proj_weight", weight)
            self.in_proj_weight = None
        self.in_proj_bias = Parameter(np.zeros(3 * e, dtype)) if bias else None
        self.out_proj = NonDynamicallyQuantizableLinear(e, bias, dtype)
        self.bias_k = self.bias_v = None
        if add_bias_kv:
            self.bias_k = init.xavier_normal_(Parameter(np.empty((1, 1, e), dtype)))
            self.bias_v = init.xavier_normal_(Parameter(np.empty((1, 1, e), dtype)))
        self._ctx = None

    def _reset_parameters(self):
        """PyTorch's: the projection weights xavier_uniform again, the biases 0, bias_k
        and bias_v xavier_normal, in place."""
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for weight in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(weight)
        for bias in (self.in_proj_bias, self.out_proj.bias):
            if bias is not None:
                init.zeros_(bias)
        for bias in (self.bias_k, self.bias_v):
            if bias is not None:
                init.xavier_normal_(bias)

    def infer_shape(self, shape, dtype):
        return None

    def _where(self):
        # (its repr, PyTorch's, shows only the out_proj child)
        return f"{type(self).__name__}(embed_dim={self.embed_dim}, num_heads={self.num_heads})"

    def __call__(self, query, key, value, *args, **kwargs):
        return self.forward(query, key, value, *args, **kwargs)

    def _proj_weights(self):
        """The host (E, E), (E, kdim), (E, vdim) weights projecting query, key, value."""
        if self._qkv_same_embed_dim:
            w, e = _device.to_host(self.in_proj_weight.data), self.embed_dim
            return [w[i * e:(i + 1) * e] for i in range(3)]
        return [_device.to_host(p.data) for p in (self.q_proj_weight, self.k_proj_weight,
                                                   self.v_proj_weight)]

    # ------------------------------------------------------------------ forward
    def _seq(self, where, name, x, dtype, features):
        """x checked (2-D or 3-D, ``features`` last unless None), on the host, as given."""
        x = check_float_array(where, name, x, dtype=dtype, device_ok=True)
        shape = tuple(x.shape)
        if len(shape) not in (2, 3) or features is not None and shape[-1] != features:
            layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
            raise AttentionAssertionError(f"{where}: expected {name} of shape {layout} or "
                                          f"(L, E) with E = {features}, got {shape}")
        return _device.to_host(x)

    def _batched(self, x):
        """(N, L, E) from the caller's layout."""
        if x.ndim == 2:
            return x[None]
        return x if self.batch_first else x.transpose(1, 0, 2)

    def check_inputs(self, query, key, value, key_padding_mask=None, need_weights=True,
                     attn_mask=None, is_causal=False):
        """Raise the error forward would raise for these arguments, computing and
        keeping nothing (a layer that runs this one after others checks first, so that a
        bad argument leaves every sub-layer as it was)."""
        self._prepare(query, key, value, key_padding_mask, need_weights, attn_mask,
                      is_causal)

    def _prepare(self, query, key, value, key_padding_mask, need_weights, attn_mask,
                 is_causal):
        """forward's checked arguments: (query as given, q_in, k_in, v_in as (N, len, E)
        host arrays, unbatched, the additive mask or None)."""
        where = self._where()
        query_arr = check_float_array(where, "query", query, device_ok=True)
        self._check_dtype(query_arr.dtype, self.out_proj.weight.data.dtype)
        dtype = query_arr.dtype
        # one in-projection weight (no kdim/vdim): PyTorch asserts key and value alike,
        # then its projection of key fails (RuntimeError) on key's features
        packed = self._qkv_same_embed_dim
        q_in, k_in, v_in = (self._seq(where, n, a, dtype, f) for n, a, f in
                            (("query", query, self.embed_dim),
                             ("key", key, None if packed else self.kdim),
                             ("value", value, None if packed else self.vdim)))
        ndims = (q_in.ndim, k_in.ndim, v_in.ndim)
        if len(set(ndims)) > 1:
            raise AttentionAssertionError(
                f"{where}: expected query, key and value all batched (3-D) or all "
                f"unbatched (2-D), got {ndims[0]}-D, {ndims[1]}-D and {ndims[2]}-D")
        if packed and (k_in.shape[-1], v_in.shape[-1]) != (self.embed_dim,) * 2:
            error = (AttentionRuntimeError if k_in.shape == v_in.shape else
                     AttentionAssertionError)
            layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
            raise error(f"{where}: expected key and value of shape {layout} or (L, E) with "
                        f"E = {self.embed_dim}, got {tuple(k_in.shape)} and "
                        f"{tuple(v_in.shape)}")
        unbatched = q_in.ndim == 2
        shapes = (tuple(q_in.shape), tuple(k_in.shape), tuple(v_in.shape))
        q_in, k_in, v_in = (self._batched(x) for x in (q_in, k_in, v_in))
        n, length, e = q_in.shape
        source = k_in.shape[1]
        if k_in.shape[:2] != v_in.shape[:2] or k_in.shape[0] != n:
            # PyTorch asserts key and value alike, and fails a reshape on another batch
            error = (AttentionAssertionError if k_in.shape[:2] != v_in.shape[:2] else
                     AttentionRuntimeError)
            raise error(f"{where}: expected key and value of one length with query's batch, "
                        f"got query {shapes[0]}, key {shapes[1]}, value {shapes[2]}")
        mask = self._mask(where, attn_mask, key_padding_mask, n, length, source, dtype,
                          unbatched)
        extra = int(self.bias_k is not None) + int(self.add_zero_attn)
        keys = source + extra
        if is_causal:
            if attn_mask is None:
                raise AttentionRuntimeError(
                    f"{where}: is_causal=True is a hint that attn_mask is the "
                    f"causal mask and needs that attn_mask, as PyTorch's "
                    f"(Transformer.generate_square_subsequent_mask makes one)")
            if key_padding_mask is None and not need_weights:   # PyTorch's SDPA path
                mask = np.triu(np.full((length, keys), -np.inf, dtype), 1)
                extra = 0
        if mask is not None and extra:   # the appended keys are never masked
            mask = np.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, extra)])
        return query_arr, q_in, k_in, v_in, unbatched, mask

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        """(attn_output, attn_weights or None): attn_output of query's shape (L, N, E)
        ((N, L, E) with batch_first, (L, E) unbatched), attn_weights (N, L, S) or, with
        average_attn_weights=False, (N, num_heads, L, S) (no N unbatched); key (S, N,
        kdim), value (S, N, vdim) and the masks as the class docstring says."""
        query_arr, q_in, k_in, v_in, unbatched, mask = self._prepare(
            query, key, value, key_padding_mask, need_weights, attn_mask, is_causal)
        dtype = query_arr.dtype
        n, length, e = q_in.shape
        projected = []
        bias = (None if self.in_proj_bias is None else _device.to_host(self.in_proj_bias.data))
        for i, (x, w) in enumerate(zip((q_in, k_in, v_in), self._proj_weights())):
            p = x @ w.T
            if bias is not None:
                p += bias[i * e:(i + 1) * e]
            projected.append(p)
        if self.bias_k is not None:
            for i, param in ((1, self.bias_k), (2, self.bias_v)):
                row = np.broadcast_to(_device.to_host(param.data), (n, 1, e))
                projected[i] = np.concatenate([projected[i], row], axis=1)
        h, d = self.num_heads, self.head_dim
        q, k, v = (p.reshape(n, p.shape[1], h, d).transpose(0, 2, 1, 3)      # (N, h, ., d)
                   for p in projected)
        if self.add_zero_attn:
            zeros = np.zeros((n, h, 1, d), dtype)
            k, v = np.concatenate([k, zeros], axis=2), np.concatenate([v, zeros], axis=2)
        scores = (q @ k.transpose(0, 1, 3, 2)) * dtype.type(1.0 / math.sqrt(d))
        if mask is not None:
            scores += mask
        weights = self._softmax(scores, zero_masked_rows=not need_weights)
        dropped = weights
        drop_mask = None
        if self.dropout and self.training:
            keep = 1.0 - self.dropout
            scale = 1.0 / keep if keep else 0.0
            drop_mask = ((_random.generator().random(weights.shape) < keep) * scale).astype(dtype)
            dropped = weights * drop_mask
        heads_out = dropped @ v                                              # (N, h, L, d)
        concat = heads_out.transpose(0, 2, 1, 3).reshape(n, length, e)
        wo = _device.to_host(self.out_proj.weight.data)
        out = concat @ wo.T
        if self.out_proj.bias is not None:
            out += _device.to_host(self.out_proj.bias.data)
        namespace = _device.namespace_of(query_arr)
        self._ctx = kept_for_backward((q_in, k_in, v_in, q, k, v, weights, drop_mask, concat,
                                       unbatched, namespace))
        out = self._layout(out, unbatched)
        attn = None
        if need_weights:  # (after dropout, as PyTorch's)
            attn = dropped.mean(axis=1) if average_attn_weights else dropped
            attn = attn[0] if unbatched else attn
            attn = namespace.put(attn)
        return namespace.put(out), attn

    @staticmethod
    def _softmax(scores, zero_masked_rows):
        """Softmax over the last axis of scores (overwritten). A row of -inf only (every
        key masked) is NaN, or zeros with zero_masked_rows (PyTorch's
        scaled_dot_product_attention); no keys at all give an empty row."""
        if scores.shape[-1] == 0:
            return scores
        peak = scores.max(axis=-1, keepdims=True)
        dead = None
        if zero_masked_rows:
            dead = peak == -np.inf
            if dead.any():
                peak[dead] = 0
            else:
                dead = None
        with np.errstate(invalid="ignore"):   # -inf - -inf: NaN, meant
            scores -= peak
        weights = np.exp(scores, out=scores)
        total = weights.sum(axis=-1, keepdims=True)
        if dead is not None:
            total[dead] = 1   # exp(-inf) = 0 everywhere: the row stays zeros
        weights /= total
        return weights

    def _layout(self, x, unbatched):
        """(N, L, E) as the caller's layout."""
        if unbatched:
            return x[0]
        return x if self.batch_first else x.transpose(1, 0, 2)

    def _mask(self, where, attn_mask, key_padding_mask, n, length, source, dtype, unbatched):
        """The additive mask (broadcast to (N, h, L, S)): -inf where masked; None
        without masks."""
        total = None
        if attn_mask is not None:
            m = self._mask_values(where, "attn_mask", attn_mask, dtype)
            if m.shape == (length, source):
                m = m[None, None]
            elif m.shape == (n * self.num_heads, length, source):
                m = m.reshape(n, self.num_heads, length, source)
            else:   # PyTorch: RuntimeError for a 2-D or 3-D mask, else AssertionError
                # (which its shape check also raises for unbatched input's 3-D mask)
                runtime = m.ndim == 2 or (m.ndim == 3 and not unbatched)
                error = AttentionRuntimeError if runtime else AttentionAssertionError
                raise error(f"{where}: expected attn_mask of shape {(length, source)} or "
                            f"{(n * self.num_heads, length, source)}, got {m.shape}")
            total = m
        if key_padding_mask is not None:
            m = self._mask_values(where, "key_padding_mask", key_padding_mask, dtype)
            expected = (source,) if unbatched else (n, source)
            if m.shape != expected:
                raise AttentionAssertionError(f"{where}: expected key_padding_mask of shape "
                                              f"{expected}, got {m.shape}")
            m = m.reshape(n, 1, 1, source)
            total = m if total is None else total + m
        return total

    @staticmethod
    def _mask_values(where, name, mask, dtype):
        """A bool mask as 0 / -inf, a float mask as it is, in dtype; other dtypes (integer
        masks) are a TypeError, as in PyTorch."""
        m = np.asarray(_device.to_host(mask))
        if m.dtype == bool:
            return np.where(m, dtype.type(-np.inf), dtype.type(0))
        if m.dtype.kind != "f":
            raise AttentionMaskTypeError(f"{where}: expected {name} of dtype bool (True: "
                                         f"masked) or float (added to the scores), got "
                                         f"{m.dtype}")
        return m.astype(dtype)

    # ------------------------------------------------------------------ backward
    def _hook_grad_outputs(self, args, kwargs):
        """The backward hooks see PyTorch's (grad_attn_output, None): the attention
        weights' output (None with need_weights=False) takes no gradient here."""
        if len(args) != 1:
            return args, None
        return (args[0], None), self._grad_output_only

    def _grad_output_only(self, grads):
        if grads[1] is not None:
            raise RuntimeValueError(f"{self._where()}: a backward pre-hook returned a "
                                    f"gradient for attn_output_weights; fastnn's backward "
                                    f"takes the gradient w.r.t. attn_output only (give None "
                                    f"there)")
        return grads[:1]

    def backward(self, grad_output):
        """(grad_query, grad_key, grad_value) for grad_output (attn_output's shape); the
        parameters' gradients accumulate. The attention weights' output has no gradient
        input here (as in most uses, where only attn_output feeds the loss)."""
        check_kept(self, self._ctx)
        q_in, k_in, v_in, q, k, v, weights, drop_mask, concat, unbatched, namespace = self._ctx
        n, length, e = q_in.shape
        g = _device.to_host(check_float_array(self._where(), "grad_output", grad_output,
                                              dtype=q_in.dtype, device_ok=True))
        expected = tuple(self._layout(np.empty((n, length, e)), unbatched).shape)
        if g.shape != expected:
            raise RuntimeValueError(f"{self._where()}: expected grad_output of shape "
                                    f"{expected}, got {g.shape}")
        g = g[None] if unbatched else (g if self.batch_first else g.transpose(1, 0, 2))
        h, d = self.num_heads, self.head_dim
        wo = _device.to_host(self.out_proj.weight.data)
        flat_g = g.reshape(-1, e)
        self._accumulate(self.out_proj.weight, lambda: flat_g.T @ concat.reshape(-1, e))
        # the bias sums in float64: NumPy adds a column's rows one by one, which in
        # float32 drifts over N * L rows (2^17: 5e-6 off, PyTorch's 7e-8)
        self._accumulate(self.out_proj.bias, lambda: flat_g.sum(axis=0, dtype=np.float64))
        d_heads = (g @ wo).reshape(n, length, h, d).transpose(0, 2, 1, 3)    # (N, h, L, d)
        dropped = weights if drop_mask is None else weights * drop_mask
        dv = dropped.transpose(0, 1, 3, 2) @ d_heads
        d_dropped = d_heads @ v.transpose(0, 1, 3, 2)
        d_weights = d_dropped if drop_mask is None else d_dropped * drop_mask
        d_scores = weights * (d_weights - (d_weights * weights).sum(axis=-1, keepdims=True))
        d_scores = d_scores * q_in.dtype.type(1.0 / math.sqrt(d))
        dq = d_scores @ k
        dk = d_scores.transpose(0, 1, 3, 2) @ q
        if self.add_zero_attn:   # the zero key and value are constants
            dk, dv = dk[:, :, :-1], dv[:, :, :-1]
        dq, dk, dv = (dh.transpose(0, 2, 1, 3).reshape(n, dh.shape[2], e)   # (N, len, E)
                      for dh in (dq, dk, dv))
        if self.bias_k is not None:
            for param, d_last in ((self.bias_k, dk[:, -1]), (self.bias_v, dv[:, -1])):
                self._accumulate(param, lambda d=d_last: d.sum(axis=0, dtype=np.float64)
                                 .reshape(1, 1, e))
            dk, dv = dk[:, :-1], dv[:, :-1]
        dps = [dp.reshape(-1, e) for dp in (dq, dk, dv)]                     # (N * len, E)
        inputs = (q_in, k_in, v_in)
        weight_grads = [lambda dp=dp, x=x: dp.T @ x.reshape(-1, x.shape[-1])
                        for dp, x in zip(dps, inputs)]
        if self._qkv_same_embed_dim:
            self._accumulate(self.in_proj_weight,
                             lambda: np.concatenate([grad() for grad in weight_grads]))
        else:
            for param, grad in zip((self.q_proj_weight, self.k_proj_weight,
                                    self.v_proj_weight), weight_grads):
                self._accumulate(param, grad)
        self._accumulate(self.in_proj_bias, lambda: np.concatenate(
            [dp.sum(axis=0, dtype=np.float64) for dp in dps]))
        return tuple(namespace.put(self._layout((dp @ w).reshape(x.shape), unbatched))
                     for dp, x, w in zip(dps, inputs, self._proj_weights()))

    @staticmethod
    def _accumulate(param, gradient):
        """param.grad += gradient(), the gradient computed only for a param that trains: a
        frozen one's (or an absent one's, None) is neither computed nor touched
        (PyTorch's)."""
        if trains(param):
            value = gradient()
            _device.update_on_host(param.grad, lambda a: np.add(a, value, out=a))

    def extra_repr(self):
        return ""
