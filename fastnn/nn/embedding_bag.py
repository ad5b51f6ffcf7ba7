"""EmbeddingBag: the sum, mean or max of bags of embedding rows (PyTorch's EmbeddingBag),
NumPy on the host (a GPU model's table comes to the host and its gradient goes back)."""
import numpy as np

from .. import device as _device
from ..errors import (AssertionValueError, DtypeError, IndexValueError,
                      NotImplementedValueError, RuntimeValueError)
from ..validation import check_bool, check_float_array, check_only, check_positive_int
from .embedding import Embedding, check_renorm, embedding_table, renorm_repr, renorm_rows
from .module import Module, Parameter, check_kept, kept_for_backward, nothing_to_compute

MODES = ("sum", "mean", "max")


class EmbeddingBag(Module):
    """One vector per bag of indices: the sum, mean or max (per dimension) of the bag's
    rows of weight, without building the (indices, embedding_dim) lookup in between.

    ``bag(input, offsets=None, per_sample_weights=None)``:

    * input (B, N) integer indices: B bags of N indices each (offsets must be None); or
      1-D input with 1-D offsets, the start of each bag in input (offsets[0] == 0,
      non-decreasing, at most len(input)): bag i is input[offsets[i]:offsets[i + 1]],
      the last one running to the end of input; with include_last_offset=True offsets has
      one more entry, the end of the last bag (CSR style; entries past it belong to no
      bag). Indices lie in [0, num_embeddings) (an IndexError otherwise; PyTorch's is a
      RuntimeError).
    * per_sample_weights: input's shape, the weight's dtype, mode='sum' only (as
      PyTorch): each row is scaled by its weight before the sum.

    Output (B, embedding_dim) in the weight's dtype. Entries equal to padding_idx are left
    out of their bag (a 'mean' divides by the other entries' count); an empty bag (or one
    of padding only) gives zeros. 'max' takes the first of equal maxima (PyTorch's CPU
    rule) and sends each output element's gradient to that row.

    ``backward(grad_out)`` accumulates weight.grad (nothing for padding_idx) and returns
    None (indices have no gradient), or with per_sample_weights their gradient (input's
    shape; 0 for padding and entries in no bag).

    PyTorch's options: max_norm (rows of the indices in input whose norm_type-norm exceeds
    it are rescaled in place to max_norm / (norm + 1e-7), before the lookup, as PyTorch's
    embedding_renorm_), scale_grad_by_freq (each entry's gradient divided by the count of
    its index in input: the documented rule, which PyTorch's CUDA kernels follow; PyTorch
    2.13's CPU kernel divides some rows by another index's count, pytorch/pytorch#190063;
    not with 'max', as PyTorch), mode, padding_idx, include_last_offset, _weight and
    ``from_pretrained``. sparse=True (PyTorch's sparse gradient) is refused. Weight
    N(0, 1) as PyTorch's, the padding row zeroed (not in a _weight given).
    """

    takes_indices = True

    def __init__(self, num_embeddings, embedding_dim, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, mode="mean", sparse=False, _weight=None,
                 include_last_offset=False, padding_idx=None, dtype=np.float32):
        super().__init__()
        name = "EmbeddingBag"
        self.num_embeddings = check_positive_int(name, "num_embeddings", num_embeddings)
        self.embedding_dim = check_positive_int(name, "embedding_dim", embedding_dim)
        max_norm, norm_type = check_renorm(name, max_norm, norm_type)
        if mode not in MODES:
            raise ValueError(f"{name}: expected mode 'sum', 'mean' or 'max', got {mode!r}")
        scale_grad_by_freq = check_bool(name, "scale_grad_by_freq", scale_grad_by_freq)
        if scale_grad_by_freq and mode == "max":
            raise ValueError(f"{name}: max mode does not support scaling the gradient by the "
                             f"frequency")
        check_only(name, "sparse", sparse, (False,))
        self.sparse = False
        self.include_last_offset = check_bool(name, "include_last_offset", include_last_offset)
        weight, padding_idx = embedding_table(name, self.num_embeddings, self.embedding_dim,
                                              padding_idx, _weight, dtype)
        self.max_norm, self.norm_type = max_norm, norm_type
        self.scale_grad_by_freq, self.mode, self.padding_idx = (scale_grad_by_freq, mode,
                                                                padding_idx)
        self.weight = Parameter(weight)
        self._ctx = None

    reset_parameters = Embedding.reset_parameters  # (N(0, 1), the padding row zeroed)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, max_norm=None, norm_type=2.0,
                        scale_grad_by_freq=False, mode="mean", sparse=False,
                        include_last_offset=False, padding_idx=None):
        """An EmbeddingBag holding these (num_embeddings, embedding_dim) vectors as they
        are (frozen by default: requires_grad False), as PyTorch's."""
        array = np.asarray(_device.to_host(embeddings))
        if array.ndim != 2:
            raise AssertionValueError(f"EmbeddingBag.from_pretrained: expected a 2-D array, "
                                      f"got shape {array.shape}")
        dtype = array.dtype if array.dtype in (np.float32, np.float64) else np.float32
        bag = cls(array.shape[0], array.shape[1], max_norm=max_norm, norm_type=norm_type,
                  scale_grad_by_freq=scale_grad_by_freq, mode=mode, sparse=sparse,
                  _weight=array, include_last_offset=include_last_offset,
                  padding_idx=padding_idx, dtype=dtype)
        bag.weight.requires_grad = not freeze
        return bag

    # --------------------------------------------------------------- forward
    def forward(self, input, offsets=None, per_sample_weights=None):
        """(B, embedding_dim) bag vectors (see the class docstring)."""
        where = self._where()
        if not _device.is_array(input) or input.dtype.kind not in "iu":
            got = input.dtype if _device.is_array(input) else type(input).__name__
            raise DtypeError(f"{where}: expected integer indices as a numpy.ndarray, got {got}")
        caller = _device.namespace_of(input)
        if self._device == "cpu":
            self._arrive("input", input)   # a device array for a host model: its error
        x = _device.to_host(input)
        weights = None
        if per_sample_weights is not None:
            if self.mode != "sum":
                raise NotImplementedValueError(
                    f"{where}: per_sample_weights is only supported for mode='sum' (got "
                    f"mode={self.mode!r}), as in PyTorch")
            weights = check_float_array(where, "per_sample_weights", per_sample_weights,
                                        dtype=self.weight.data.dtype, device_ok=True)
            if tuple(weights.shape) != x.shape:
                raise ValueError(f"{where}: expected per_sample_weights of input's shape "
                                 f"{tuple(x.shape)}, got {tuple(weights.shape)}")
            weights = _device.to_host(weights).reshape(-1)
        y = self._bag_forward(x, offsets, weights, caller)
        object.__setattr__(self, "_out_meta", kept_for_backward((y.shape, y.dtype)))
        return caller.put(y)

    def infer_shape(self, shape, dtype):
        """(B, embedding_dim) for (B, N) indices: the form a Sequential can run (1-D
        indices need offsets: call the layer itself)."""
        if np.dtype(dtype).kind not in "iu":
            raise DtypeError(f"{self._where()}: expected integer indices, got {dtype}")
        if len(shape) != 2:
            raise ValueError(f"{self._where()}: expected (B, N) indices (bags of N) here, got "
                             f"shape {tuple(shape)}; 1-D indices need offsets: "
                             f"bag(input, offsets)")
        return (shape[0], self.embedding_dim)

    def output_dtype(self, dtype):
        return self.weight.data.dtype

    def _forward(self, x, buffered):
        y = self._bag_forward(_device.to_host(x), None, None, _device.Host)
        return _device.namespace(self._device).put(y)

    def _bags(self, where, x, offsets):
        """(indices (M,) in [0, num_embeddings), bag of each (M,), -1 for none; B)."""
        if x.ndim == 2:
            if offsets is not None:
                raise ValueError(f"{where}: if input is 2-D, offsets has to be None (each row "
                                 f"is a bag), got offsets of type {type(offsets).__name__}")
            b, size = x.shape
            bag = np.repeat(np.arange(b), size)
        elif x.ndim == 1:
            if offsets is None or not _device.is_array(offsets) or offsets.ndim != 1:
                raise ValueError(f"{where}: offsets has to be a 1-D integer array with 1-D "
                                 f"input, got {type(offsets).__name__}")
            if offsets.dtype.kind not in "iu":
                raise DtypeError(f"{where}: expected integer offsets, got {offsets.dtype}")
            starts = _device.to_host(offsets).astype(np.int64)
            m = x.shape[0]
            if self.include_last_offset and starts.size == 0:
                raise ValueError(f"{where}: include_last_offset=True needs at least one "
                                 f"offset (the end of the last bag)")
            if starts.size and starts[0] != 0:
                raise ValueError(f"{where}: offsets[0] has to be 0 (the first bag starts at "
                                 f"position 0), got {starts[0]}")
            if np.any(np.diff(starts) < 0):
                raise ValueError(f"{where}: expected non-decreasing offsets, got {starts}")
            if starts.size and starts[-1] > m:
                raise ValueError(f"{where}: offsets[-1] can not be greater than input's "
                                 f"length {m}, got {starts[-1]}")
            ends = (starts[1:] if self.include_last_offset or not starts.size
                    else np.append(starts[1:], m))
            b = ends.size
            bag = np.full(m, -1, np.int64)
            bag[:ends[-1] if b else 0] = np.repeat(np.arange(b), ends - starts[:b])
        else:
            raise ValueError(f"{where}: input has to be 1-D or 2-D, got shape {x.shape}")
        idx = x.reshape(-1).astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_embeddings):
            raise index_error(idx, self.num_embeddings, self.max_norm)(
                f"{where}: indices out of range [0, {self.num_embeddings}): min "
                f"{idx.min()}, max {idx.max()}")
        return idx, bag, b

    def _bag_forward(self, x, offsets, weights, caller):
        where = self._where()
        idx, bag, b = self._bags(where, x, offsets)
        # (max_norm and norm_type are attributes a user may set: read at each forward)
        max_norm, norm_type = self._float("max_norm", none=True), self._float("norm_type")
        if max_norm is not None and idx.size:
            _device.update_on_host(self.weight.data, lambda w: renorm_rows(
                w, idx, max_norm, norm_type))
        table = _device.to_host(self.weight.data)
        kept = bag >= 0
        if self.padding_idx is not None:
            kept &= idx != self.padding_idx
        ki, kb = idx[kept], bag[kept]   # kb ascending: each bag's entries one run
        counts = np.bincount(kb, minlength=b)
        ctx = dict(ki=ki, kb=kb, kept=kept, idx=idx, counts=counts, weights=weights,
                   shape=x.shape, caller=caller, bags=b)
        out = np.zeros((b, self.embedding_dim), table.dtype)
        if self.mode == "max":
            if ki.size:
                rows = table[ki]
                starts = np.flatnonzero(np.r_[True, kb[1:] != kb[:-1]])
                argmax = _first_max(rows, starts)
                ctx.update(groups=kb[starts], max_rows=ki[argmax])
                out[kb[starts]] = rows[argmax, np.arange(self.embedding_dim)]
        else:
            scale = None if weights is None else weights[kept]
            out = _matrix(scale, ki, counts, (b, self.num_embeddings), table.dtype) @ table
            if self.mode == "mean":
                nonempty = counts > 0
                out[nonempty] /= counts[nonempty].astype(table.dtype)[:, None]
            if weights is not None:   # the rows their gradient needs
                ctx["rows"] = table[ki]
        self._ctx = kept_for_backward(ctx)
        return _device.c_contiguous(out, table.dtype)

    # -------------------------------------------------------------- backward
    def backward(self, grad_out):
        """Accumulate weight.grad for grad_out (B, embedding_dim); None, or the gradient
        of per_sample_weights when the forward had them."""
        check_kept(self, self._out_meta)   # (set with _ctx, by the same forward)
        shape, dtype = self._out_meta
        check_float_array(self._where(), "grad_out", grad_out, dtype=dtype, device_ok=True)
        if tuple(grad_out.shape) != shape:
            raise RuntimeValueError(f"{self._where()}: expected grad_out of shape {shape} "
                                    f"(the shape of the last forward output), got "
                                    f"{tuple(grad_out.shape)}")
        return self._bag_backward(_device.to_host(grad_out))

    def _backward(self, grad_out, buffered, need_grad_in):
        if nothing_to_compute(False, self.weight):
            return None   # (frozen: PyTorch's backward neither computes nor touches it)
        self._bag_backward(_device.to_host(grad_out))
        return None

    def _bag_backward(self, g):
        ctx = self._ctx
        ki, kb, d, n = ctx["ki"], ctx["kb"], self.embedding_dim, self.num_embeddings
        if not self.weight.requires_grad:   # (frozen: neither computed nor touched)
            pass
        elif self.mode == "max":
            if ki.size:
                flat = (ctx["max_rows"] * d + np.arange(d)).reshape(-1)
                total = np.bincount(flat, weights=g[ctx["groups"]].reshape(-1),
                                    minlength=n * d).reshape(n, d).astype(g.dtype)
                _device.update_on_host(self.weight.grad, lambda w: np.add(w, total, out=w))
        elif ki.size:
            scale = np.ones(ki.size, g.dtype)
            if ctx["weights"] is not None:
                scale = scale * ctx["weights"][ctx["kept"]]
            if self.mode == "mean":
                scale = scale / ctx["counts"][kb].astype(g.dtype)
            if self.scale_grad_by_freq:
                scale = scale / np.bincount(ctx["idx"])[ki].astype(g.dtype)
            # weight.grad[ki[e]] += scale[e] g[kb[e]] for each entry e: one sparse product
            total = _matrix(scale, ki, ctx["counts"], (ctx["bags"], n), g.dtype).T @ g
            _device.update_on_host(self.weight.grad,
                                   lambda w: np.add(w, np.asarray(total, g.dtype), out=w))
        if ctx["weights"] is None:
            return None
        grad_w = np.zeros(ctx["kept"].shape, g.dtype)
        grad_w[ctx["kept"]] = (g[kb] * ctx["rows"]).sum(axis=1)
        return ctx["caller"].put(grad_w.reshape(ctx["shape"]))

    def extra_repr(self):
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        text += renorm_repr(self.max_norm, self.norm_type)
        if self.scale_grad_by_freq:
            text += ", scale_grad_by_freq=True"
        text += f", mode={self.mode!r}"
        return text + ("" if self.padding_idx is None else f", padding_idx={self.padding_idx}")


def index_error(idx, num_embeddings, max_norm):
    """PyTorch's type for indices outside [0, num_embeddings): with max_norm its renorm
    selects each row first, which wraps an index in [-num_embeddings, 0) and fails
    (IndexError) only outside [-num_embeddings, num_embeddings); otherwise, as without
    max_norm, the bag kernel's check fails (RuntimeError)."""
    if max_norm is not None and (idx.min() < -num_embeddings or idx.max() >= num_embeddings):
        return IndexValueError
    return RuntimeValueError


def _first_max(rows, starts):
    """(G, D) positions in rows of each segment's maximum per column, PyTorch's CPU rule:
    the running maximum replaced only by a greater value, so the first of equal maxima,
    NaN where the segment starts with NaN, later NaNs passed over."""
    k = rows.shape[0]
    seg = np.repeat(np.arange(starts.size), np.diff(np.append(starts, k)))
    with np.errstate(invalid="ignore"):
        best = np.fmax.reduceat(rows, starts, axis=0)
        pos = np.where(rows == best[seg], np.arange(k)[:, None], k)
    first = np.minimum.reduceat(pos, starts, axis=0)
    return np.where(np.isnan(rows[starts]), starts[:, None], first)


def _matrix(values, columns, counts, shape, dtype):
    """The (bags, num_embeddings) sparse matrix with values (None: ones) at row kb,
    column ki of each kept entry (rows given by their counts, columns repeated where an
    index repeats): the bag sums are it times the table, weight.grad's update its
    transpose times grad_out."""
    from scipy import sparse   # (a dependency of fastnn; imported when first needed)
    data = np.ones(columns.size, dtype) if values is None else values.astype(dtype)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return sparse.csr_matrix((data, columns, indptr), shape=shape)
