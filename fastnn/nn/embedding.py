"""Embedding: a lookup table of learned vectors (PyTorch's Embedding)."""
import numbers

import numpy as np

from .. import device as _device
from .. import random as _random
from ..errors import AssertionValueError, DtypeError, IndexValueError, RuntimeValueError
from ..validation import check_bool, check_only, check_number, check_positive_int
from . import init
from .module import Module, Parameter, nothing_to_compute


def embedding_table(where, num_embeddings, embedding_dim, padding_idx, weight, dtype):
    """(the (num_embeddings, embedding_dim) table, padding_idx as an index >= 0 or None):
    weight (the ``_weight`` argument) copied in the dtype, else N(0, 1) draws from
    fastnn's generator with the padding row zeroed (PyTorch's); padding_idx may count
    from the end."""
    if padding_idx is not None:
        if isinstance(padding_idx, bool) or not isinstance(padding_idx, numbers.Integral):
            raise IndexValueError(f"{where}: padding_idx must be an int within "
                                  f"num_embeddings, got {padding_idx!r}")  # (PyTorch's)
        if not -num_embeddings <= padding_idx < num_embeddings:   # (PyTorch asserts)
            raise AssertionValueError(f"{where}: padding_idx must be within num_embeddings, "
                                      f"got {padding_idx!r}")
        padding_idx = int(padding_idx) % num_embeddings
    shape = (num_embeddings, embedding_dim)
    if weight is not None:
        table = np.asarray(_device.to_host(weight), dtype=dtype)
        if table.shape != shape:
            raise ValueError(f"{where}: expected _weight of shape {shape}, got {table.shape}")
    else:
        table = _random.generator().standard_normal(shape).astype(dtype)
        if padding_idx is not None:
            table[padding_idx] = 0
    return table, padding_idx


def check_renorm(where, max_norm, norm_type):
    """max_norm (None, or a number >= 0) and norm_type (a number > 0, inf for the max
    norm), as given: PyTorch keeps them so (its repr shows them as passed)."""
    if max_norm is not None:
        check_number(where, "max_norm", max_norm, 0.0)
    if not (isinstance(norm_type, (int, float, np.integer, np.floating))
            and not isinstance(norm_type, bool) and norm_type > 0):
        raise ValueError(f"{where}: expected norm_type to be a number > 0 (inf for the "
                         f"max norm), got {norm_type!r}")
    return max_norm, norm_type


def renorm_rows(table, indices, max_norm, norm_type):
    """PyTorch's embedding_renorm_, in place: each row of table (num_embeddings, D)
    named in indices (any shape) whose norm_type-norm exceeds max_norm is scaled by
    max_norm / (norm + 1e-7); the norms in float64."""
    rows = np.unique(indices)
    norms = np.linalg.norm(table[rows].astype(np.float64), ord=float(norm_type), axis=1)
    over = norms > max_norm
    scale = max_norm / (norms[over] + 1e-7)
    table[rows[over]] *= scale[:, None].astype(table.dtype)


def renorm_repr(max_norm, norm_type):
    """The max_norm / norm_type part of PyTorch's Embedding and EmbeddingBag reprs."""
    text = "" if max_norm is None else f", max_norm={max_norm}"
    return text + ("" if norm_type == 2 else f", norm_type={norm_type}")


def add_rows(table, idx, rows):
    """table[idx[k]] += rows[k] for every k, repeated indices adding up (np.add.at's
    result): table (V, D), idx (n,) ints in [0, V), rows (n, D). np.add.at's 2-D scatter
    is slow (10-14 ms for 4096 rows of 256 here), so each distinct index's first row goes
    through one fancy-indexed add (4096 distinct of 50,000 rows: 4 ms in all) and
    np.add.at takes the repeats alone."""
    if idx.size == 0:
        return
    distinct, first = np.unique(idx, return_index=True)
    if distinct.size == idx.size:
        table[idx] += rows
        return
    table[idx[first]] += rows[first]
    repeats = np.ones(idx.size, bool)
    repeats[first] = False
    np.add.at(table, idx[repeats], rows[repeats])


class Embedding(Module):
    """y = weight[indices]: the row of each integer index.

    weight: (num_embeddings, embedding_dim), drawn N(0, 1) as PyTorch's; padding_idx:
    a row kept at zeros whose gradient stays zero. Input: integer indices of any shape
    in [0, num_embeddings) (an IndexError otherwise, as PyTorch's); output (*, embedding_dim)
    in the weight's dtype. backward adds each output row's gradient to its index's row of
    weight.grad (``add_rows``, on the host) and returns None: indices have no gradient. A
    GPU model's lookup goes through the host. In a Sequential it must come first (it takes
    indices, not floats).

    PyTorch's max_norm: each forward first rescales, in place, the rows of the indices
    whose norm_type-norm exceeds it to max_norm / (norm + 1e-7) (embedding_renorm_; not
    differentiated, as in PyTorch). scale_grad_by_freq: each row's gradient divided by
    the count of its index in the last forward's input. sparse=True (PyTorch's sparse
    gradient) is refused: weight.grad is a dense array.
    """

    takes_indices = True

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None,
                 norm_type=2.0, scale_grad_by_freq=False, sparse=False, _weight=None,
                 _freeze=False, dtype=np.float32):
        super().__init__()
        for name, value in (("num_embeddings", num_embeddings),
                            ("embedding_dim", embedding_dim)):
            check_positive_int("Embedding", name, value, RuntimeValueError)
        self.max_norm, self.norm_type = check_renorm("Embedding", max_norm, norm_type)
        self.scale_grad_by_freq = check_bool("Embedding", "scale_grad_by_freq",
                                             scale_grad_by_freq)
        check_only("Embedding", "sparse", sparse, (False,))
        self.sparse = False
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        weight, self.padding_idx = embedding_table("Embedding", self.num_embeddings,
                                                   self.embedding_dim, padding_idx, _weight,
                                                   dtype)
        self.weight = Parameter(weight, requires_grad=not _freeze)
        self._indices = None

    def reset_parameters(self):
        """PyTorch's: weight drawn N(0, 1) again, the padding_idx row zeroed, in place."""
        host = _random.generator().standard_normal(self.weight.data.shape)
        if self.padding_idx is not None:
            host[self.padding_idx] = 0
        init._fill(self.weight, "reset_parameters", host)   # (on its device, in its dtype)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None,
                        norm_type=2.0, scale_grad_by_freq=False, sparse=False):
        """An Embedding holding these (num_embeddings, embedding_dim) vectors (frozen by
        default), with PyTorch's arguments."""
        array = np.asarray(_device.to_host(embeddings))
        if array.ndim != 2:
            raise AssertionValueError(f"Embedding.from_pretrained: expected a 2-D array, got "
                                      f"shape {array.shape}")
        dtype = array.dtype if array.dtype in (np.float32, np.float64) else np.float32
        return cls(array.shape[0], array.shape[1], padding_idx=padding_idx,
                   max_norm=max_norm, norm_type=norm_type,
                   scale_grad_by_freq=scale_grad_by_freq, sparse=sparse, _weight=array,
                   _freeze=freeze, dtype=dtype)

    def output_dtype(self, dtype):
        """The dtype of the output for an input of dtype: the weight's."""
        return self.weight.data.dtype

    def infer_shape(self, shape, dtype):
        if np.dtype(dtype).kind not in "iu":
            raise DtypeError(f"{self._where()}: expected integer indices, got {dtype}")
        return tuple(shape) + (self.embedding_dim,)

    def _checked_indices(self, x):
        host = _device.to_host(x)
        if host.size and (host.min() < 0 or host.max() >= self.num_embeddings):
            raise IndexValueError(
                f"{self._where()}: indices out of range [0, "
                f"{self.num_embeddings}): min {host.min()}, max {host.max()}")
        return host

    def _forward(self, x, buffered):
        idx = self._checked_indices(x)
        # (max_norm and norm_type are attributes a user may set: read at each forward)
        max_norm, norm_type = self._float("max_norm", none=True), self._float("norm_type")
        self._indices = idx
        if max_norm is not None and idx.size:
            _device.update_on_host(self.weight.data, lambda w: renorm_rows(
                w, idx, max_norm, norm_type))
        weight = _device.to_host(self.weight.data)
        shape = tuple(idx.shape) + (self.embedding_dim,)
        if _device.is_device_array(self.weight.data):
            return _device.namespace_of(self.weight.data).put(weight[idx])
        out = self._buffer("y", shape, weight.dtype) if buffered else np.empty(shape, weight.dtype)
        # (the indices are checked above: mode='raise' would take them into a temporary
        # and copy that into out)
        np.take(weight, idx, axis=0, out=out, mode="clip")
        return out

    def _backward(self, grad_out, buffered, need_grad_in):
        if nothing_to_compute(False, self.weight):
            return None   # (frozen: PyTorch's backward neither computes nor touches it)
        idx = self._indices.reshape(-1) % self.num_embeddings
        g = _device.to_host(grad_out).reshape(-1, self.embedding_dim)
        if self.scale_grad_by_freq and idx.size:
            counts = np.bincount(idx, minlength=self.num_embeddings)
            g = g / counts[idx].astype(g.dtype)[:, None]
        if self.padding_idx is not None:
            keep = idx != self.padding_idx
            idx, g = idx[keep], g[keep]
        _device.update_on_host(self.weight.grad, lambda w: add_rows(w, idx, g))
        return None

    def extra_repr(self):
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            text += f", padding_idx={self.padding_idx}"
        text += renorm_repr(self.max_norm, self.norm_type)
        return text + (", scale_grad_by_freq=True" if self.scale_grad_by_freq else "")
