"""PyTorch's MultiheadAttention with an explicit backward, NumPy on the host (the
products are batched matrix products; a GPU model's arrays go through the host)."""
import math

import numpy as np

from .. import device as _device
from .. import random as _random
from ..validation import (check_bool, check_float_array, check_number, check_only,
                          check_positive_int)
from .module import Module, Parameter


class _OutProj(Module):
    """The output projection's parameters (weight (E, E), bias (E,)), a child named
    ``out_proj`` as PyTorch's, so state dicts keep its keys."""

    def __init__(self, embed_dim, bias, dtype):
        super().__init__()
        bound = 1.0 / math.sqrt(embed_dim)
        rng = _random.generator()
        self.weight = Parameter(rng.uniform(-bound, bound, (embed_dim, embed_dim)).astype(dtype))
        self.bias = Parameter(np.zeros(embed_dim, dtype)) if bias else None

    def extra_repr(self):
        e = self.weight.data.shape[0]
        return f"in_features={e}, out_features={e}, bias={self.bias is not None}"


class MultiheadAttention(Module):
    """softmax(Q K^T / sqrt(d) + mask) V over ``num_heads`` heads of size d = embed_dim /
    num_heads, Q, K, V the projections of query, key and value by ``in_proj_weight``
    (3 E, E) and ``in_proj_bias``, the heads concatenated and projected by ``out_proj``.

    forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True) -> (attn_output, attn_weights or None): query (L, N, E),
    key and value (S, N, E) ((N, L, E) with batch_first; (L, E) unbatched);
    key_padding_mask (N, S) (True: ignored key, or a float added); attn_mask (L, S) or
    (N * num_heads, L, S) (bool: True masks, or float: added); attn_weights (N, L, S)
    averaged over heads, or (N, num_heads, L, S). dropout drops attention weights in
    training mode (fastnn's generator). backward(grad_output) returns (grad_query,
    grad_key, grad_value) and accumulates the parameters' gradients (PyTorch's
    initialisation: xavier_uniform in_proj_weight, zero biases). kdim, vdim, add_bias_kv,
    add_zero_attn are taken at their defaults only.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
                 add_zero_attn=False, kdim=None, vdim=None, batch_first=False,
                 dtype=np.float32):
        super().__init__()
        name = "MultiheadAttention"
        self.embed_dim = check_positive_int(name, "embed_dim", embed_dim)
        self.num_heads = check_positive_int(name, "num_heads", num_heads)
        if self.embed_dim % self.num_heads:
            raise ValueError(f"{name}: embed_dim ({embed_dim}) must be divisible by "
                             f"num_heads ({num_heads})")
        check_number(name, "dropout", dropout, 0.0, 1.0)
        check_only(name, "add_bias_kv", add_bias_kv, (False,))
        check_only(name, "add_zero_attn", add_zero_attn, (False,))
        check_only(name, "kdim", kdim, (None, embed_dim))
        check_only(name, "vdim", vdim, (None, embed_dim))
        self.dropout = float(dropout)
        self.batch_first = check_bool(name, "batch_first", batch_first)
        self.head_dim = self.embed_dim // self.num_heads
        e = self.embed_dim
        bound = math.sqrt(6.0 / (e + 3 * e))   # xavier_uniform on (3 E, E)
        rng = _random.generator()
        self.in_proj_weight = Parameter(rng.uniform(-bound, bound, (3 * e, e)).astype(dtype))
        self.in_proj_bias = Parameter(np.zeros(3 * e, dtype)) if bias else None
        self.out_proj = _OutProj(e, bias, dtype)
        self._ctx = None

    def infer_shape(self, shape, dtype):
        return None

    def __call__(self, query, key, value, **kwargs):
        return self.forward(query, key, value, **kwargs)

    # ------------------------------------------------------------------ forward
    def _seq(self, where, name, x, dtype):
        x = check_float_array(where, name, x, dtype=dtype, device_ok=True)
        shape = tuple(x.shape)
        if len(shape) not in (2, 3) or shape[-1] != self.embed_dim:
            layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
            raise ValueError(f"{where}: expected {name} of shape {layout} or (L, E) with "
                             f"E = {self.embed_dim}, got {shape}")
        x = _device.to_host(x)
        if x.ndim == 2:
            return x[None]
        return x if self.batch_first else x.transpose(1, 0, 2)   # (N, L, E)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        where = self._where()
        check_only(where, "is_causal", is_causal, (False,))
        query_arr = check_float_array(where, "query", query, device_ok=True)
        self._check_dtype(query_arr.dtype, self.in_proj_weight.data.dtype)
        dtype = query_arr.dtype
        unbatched = query_arr.ndim == 2
        q_in, k_in, v_in = (self._seq(where, n, a, dtype) for n, a in
                            (("query", query), ("key", key), ("value", value)))
        n, length, e = q_in.shape
        source = k_in.shape[1]
        if k_in.shape != v_in.shape or k_in.shape[0] != n or k_in.ndim != q_in.ndim:
            raise ValueError(f"{where}: expected key and value of one shape with query's "
                             f"batch, got {q_in.shape}, {k_in.shape}, {v_in.shape}")
        w = _device.to_host(self.in_proj_weight.data)
        b = (None if self.in_proj_bias is None else _device.to_host(self.in_proj_bias.data))
        projected = []
        for i, x in enumerate((q_in, k_in, v_in)):
            p = x @ w[i * e:(i + 1) * e].T
            if b is not None:
                p += b[i * e:(i + 1) * e]
            projected.append(p)
        h, d = self.num_heads, self.head_dim
        heads = [p.reshape(n, -1, h, d).transpose(0, 2, 1, 3) for p in projected]  # (N, h, ., d)
        q, k, v = heads
        scores = (q @ k.transpose(0, 1, 3, 2)) * dtype.type(1.0 / math.sqrt(d))
        scores = scores + self._mask(where, attn_mask, key_padding_mask, n, length, source,
                                     dtype, unbatched)
        scores -= scores.max(axis=-1, keepdims=True)
        weights = np.exp(scores)
        weights /= weights.sum(axis=-1, keepdims=True)
        dropped = weights
        drop_mask = None
        if self.dropout and self.training:
            keep = 1.0 - self.dropout
            drop_mask = ((_random.generator().random(weights.shape) < keep) / keep).astype(dtype)
            dropped = weights * drop_mask
        heads_out = dropped @ v                                              # (N, h, L, d)
        concat = heads_out.transpose(0, 2, 1, 3).reshape(n, length, e)
        wo = _device.to_host(self.out_proj.weight.data)
        out = concat @ wo.T
        if self.out_proj.bias is not None:
            out += _device.to_host(self.out_proj.bias.data)
        namespace = _device.namespace_of(query_arr)
        self._ctx = (q_in, k_in, v_in, q, k, v, weights, drop_mask, concat, unbatched,
                     namespace)
        out = self._layout(out, unbatched)
        attn = None
        if need_weights:  # (after dropout, as PyTorch's)
            attn = dropped.mean(axis=1) if average_attn_weights else dropped
            attn = attn[0] if unbatched else attn
            attn = namespace.put(np.ascontiguousarray(attn))
        return namespace.put(np.ascontiguousarray(out)), attn

    def _layout(self, x, unbatched):
        """(N, L, E) as the caller's layout."""
        if unbatched:
            return x[0]
        return x if self.batch_first else x.transpose(1, 0, 2)

    def _mask(self, where, attn_mask, key_padding_mask, n, length, source, dtype, unbatched):
        """The additive mask (broadcast to (N, h, L, S)): -inf where masked."""
        total = np.zeros((1, 1, 1, 1), dtype)
        if attn_mask is not None:
            m = np.asarray(_device.to_host(attn_mask))
            if m.shape == (length, source):
                m = m[None, None]
            elif m.shape == (n * self.num_heads, length, source):
                m = m.reshape(n, self.num_heads, length, source)
            else:
                raise ValueError(f"{where}: expected attn_mask of shape {(length, source)} or "
                                 f"{(n * self.num_heads, length, source)}, got {m.shape}")
            total = total + self._additive(m, dtype)
        if key_padding_mask is not None:
            m = np.asarray(_device.to_host(key_padding_mask))
            expected = (source,) if unbatched else (n, source)
            if m.shape != expected:
                raise ValueError(f"{where}: expected key_padding_mask of shape {expected}, "
                                 f"got {m.shape}")
            total = total + self._additive(m.reshape(n, 1, 1, source), dtype)
        return total

    @staticmethod
    def _additive(mask, dtype):
        if mask.dtype == bool:
            return np.where(mask, dtype.type(-np.inf), dtype.type(0))
        return mask.astype(dtype)

    # ------------------------------------------------------------------ backward
    def backward(self, grad_output):
        """(grad_query, grad_key, grad_value) for grad_output (attn_output's shape); the
        parameters' gradients accumulate. The attention weights' output has no gradient
        input here (as in most uses, where only attn_output feeds the loss)."""
        if self._ctx is None:
            raise RuntimeError(f"{self._where()}: backward called before forward")
        q_in, k_in, v_in, q, k, v, weights, drop_mask, concat, unbatched, namespace = self._ctx
        n, length, e = q_in.shape
        g = np.asarray(_device.to_host(grad_output), q_in.dtype)
        expected = tuple(self._layout(np.empty((n, length, e)), unbatched).shape)
        if g.shape != expected:
            raise ValueError(f"{self._where()}: expected grad_output of shape {expected}, got "
                             f"{g.shape}")
        g = g[None] if unbatched else (g if self.batch_first else g.transpose(1, 0, 2))
        h, d = self.num_heads, self.head_dim
        wo = _device.to_host(self.out_proj.weight.data)
        flat_g = g.reshape(-1, e)
        self._accumulate(self.out_proj.weight, flat_g.T @ concat.reshape(-1, e))
        if self.out_proj.bias is not None:
            self._accumulate(self.out_proj.bias, flat_g.sum(axis=0))
        d_heads = (g @ wo).reshape(n, length, h, d).transpose(0, 2, 1, 3)    # (N, h, L, d)
        dropped = weights if drop_mask is None else weights * drop_mask
        dv = dropped.transpose(0, 1, 3, 2) @ d_heads
        d_dropped = d_heads @ v.transpose(0, 1, 3, 2)
        d_weights = d_dropped if drop_mask is None else d_dropped * drop_mask
        d_scores = weights * (d_weights - (d_weights * weights).sum(axis=-1, keepdims=True))
        d_scores = d_scores * q_in.dtype.type(1.0 / math.sqrt(d))
        dq = d_scores @ k
        dk = d_scores.transpose(0, 1, 3, 2) @ q
        w = _device.to_host(self.in_proj_weight.data)
        grad_w = np.zeros_like(w)
        grad_b = np.zeros(3 * e, w.dtype)
        grads_in = []
        for i, (dh, x) in enumerate(((dq, q_in), (dk, k_in), (dv, v_in))):
            dp = dh.transpose(0, 2, 1, 3).reshape(-1, e)                     # (N * len, E)
            grad_w[i * e:(i + 1) * e] = dp.T @ x.reshape(-1, e)
            grad_b[i * e:(i + 1) * e] = dp.sum(axis=0)
            grads_in.append((dp @ w[i * e:(i + 1) * e]).reshape(x.shape))
        self._accumulate(self.in_proj_weight, grad_w)
        if self.in_proj_bias is not None:
            self._accumulate(self.in_proj_bias, grad_b)
        return tuple(namespace.put(np.ascontiguousarray(self._layout(gi, unbatched)))
                     for gi in grads_in)

    @staticmethod
    def _accumulate(param, value):
        _device.update_on_host(param.grad, lambda a: np.add(a, value, out=a))

    def extra_repr(self):
        return ""
