"""Variable-length sequences for the recurrent layers: PyTorch's ``torch.nn.utils.rnn``,
reachable as ``fastnn.nn.utils.rnn`` (``from fastnn.nn.utils import rnn`` and ``import
fastnn.nn.utils.rnn`` work too).

A batch of sequences of different lengths travels as a ``PackedSequence(data,
batch_sizes, sorted_indices, unsorted_indices)``, a named tuple of NumPy arrays: the
sequences sorted by decreasing length, their time steps stacked step after step in
``data`` (sum of lengths, *), ``batch_sizes[t]`` the number of sequences still running
at step t (int64, on the host), ``sorted_indices`` the sort (None when the batch came
sorted) and ``unsorted_indices`` its inverse. ``pack_padded_sequence(input, lengths,
batch_first=False, enforce_sorted=True)`` and ``pack_sequence(sequences,
enforce_sorted=True)`` build one, ``pad_packed_sequence(sequence, batch_first=False,
padding_value=0.0, total_length=None)`` gives back the padded array and the lengths in
the caller's order, ``pad_sequence(sequences, batch_first=False, padding_value=0.0,
padding_side='right')`` pads a list, ``unpad_sequence`` and ``unpack_sequence`` give the
list back. RNN, LSTM and GRU take a PackedSequence as input and return one, with h_n
(and c_n) each sequence's state after its own last step; their explicit backward takes
the output's gradient as a PackedSequence (or its ``data``) and returns the input's as
a PackedSequence (its ``data`` the gradient w.r.t. the packed input's ``data``). Since
packing and padding are each other's backward, ``pad_packed_sequence(grad, ...)`` turns
that into the gradient w.r.t. the padded input (zeros at the padding), and
``pack_padded_sequence(grad, lengths, ...)`` turns the gradient w.r.t. a padded output
into a packed one. Bad input raises PyTorch's error types and messages (a RuntimeError
for unsorted lengths with enforce_sorted=True or a length <= 0); where PyTorch reads past
the input or truncates silently (a length longer than the padded input, a fractional
length) this is an error too. Device arrays go through the host.
"""
import collections
import collections.abc
import numbers

import numpy as np

from .. import device as _device
from ..errors import AssertionValueError, IndexValueError, RuntimeValueError
from ..validation import check_bool, tensor_hint
from .padding import check_fill_value

__all__ = ["PackedSequence", "invert_permutation", "pack_padded_sequence",
           "pad_packed_sequence", "pad_sequence", "unpad_sequence", "pack_sequence",
           "unpack_sequence"]

_Fields = collections.namedtuple("PackedSequence_", ["data", "batch_sizes", "sorted_indices",
                                                     "unsorted_indices"])


class PackedSequence(_Fields):
    """A packed batch of variable-length sequences (PyTorch's ``PackedSequence``): data
    (sum of lengths, *) the steps of the length-sorted sequences, step after step;
    batch_sizes (max length,) int64, how many sequences run at each step;
    sorted_indices (N,) int64 or None, the sort of the caller's batch; unsorted_indices
    its inverse (computed when not given). Build one with ``pack_padded_sequence`` or
    ``pack_sequence``; ``PackedSequence((data, batch_sizes))`` is accepted too, as in
    PyTorch."""

    __slots__ = ()

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        if batch_sizes is None:
            if not (isinstance(data, (list, tuple)) and len(data) == 2):
                raise AssertionValueError("Expected data to be a list or tuple of length 2")
            data, batch_sizes = data
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs):
        """A PackedSequence with data converted to a dtype and/or moved to 'cpu' or
        'cuda' (``to(np.float64)``, ``to('cuda')``, ``to(device=..., dtype=...)``);
        self when nothing changes, as PyTorch's. batch_sizes and the indices stay on
        the host."""
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        if kwargs:
            raise TypeError(f"PackedSequence.to: unexpected keyword {next(iter(kwargs))!r}")
        for arg in args:
            if isinstance(arg, str) and (arg in _device.DEVICES or arg.startswith("cuda")):
                device = arg
            else:
                dtype = arg
        data = self.data
        if dtype is not None and np.dtype(dtype) != data.dtype:
            host = _device.to_host(data).astype(dtype)
            data = _device.namespace_of(data).put(host)
        if device is not None:
            device = _device.check_device("PackedSequence.to", device)
            if _device.device_of(data) != device:
                data = _device.namespace(device).put(data)
        if data is self.data:
            return self
        return type(self)(data, self.batch_sizes, self.sorted_indices, self.unsorted_indices)

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def long(self):
        return self.to(np.int64)

    def int(self):
        return self.to(np.int32)

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    @property
    def is_cuda(self):
        """True when data is a device array."""
        return _device.is_device_array(self.data)


def invert_permutation(permutation):
    """The inverse of a permutation (N,) of 0..N-1 (None stays None): out[p[i]] = i."""
    if permutation is None:
        return None
    permutation = np.asarray(permutation)
    out = np.empty_like(permutation)
    out[permutation] = np.arange(permutation.size, dtype=permutation.dtype)
    return out


# ------------------------------------------------------------------ helpers
def _host(where, name, x, min_ndim, rank_error=IndexValueError):
    """(x as a host array, the namespace it came from); a rank below min_ndim raises
    rank_error (PyTorch's type for the caller)."""
    if not _device.is_array(x):
        raise TypeError(f"{where}: expected {name} to be a numpy.ndarray, got "
                        f"{type(x).__name__}{tensor_hint(x)}")
    if x.ndim < min_ndim:
        raise rank_error(f"{where}: expected {name} with at least {min_ndim} dimensions, "
                         f"got shape {tuple(x.shape)}")
    return _device.to_host(x), _device.namespace_of(x)


def _as_lengths(where, lengths):
    """lengths (a list or an array of integers; integer-valued floats too, as PyTorch
    reads them) as a 1-D int64 host array."""
    if _device.is_device_array(lengths):
        lengths = _device.to_host(lengths)
    try:
        values = np.asarray(lengths)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{where}: expected lengths to be a list or array of ints, got "
                        f"{lengths!r}") from err
    if values.dtype.kind not in "biuf":
        raise TypeError(f"{where}: expected lengths to be a list or array of ints, got "
                        f"{lengths!r}")
    if values.ndim != 1:
        raise RuntimeValueError(
            f"{where}: 'lengths' argument should be a 1D CPU int64 tensor, but "
            f"got {values.ndim}D (shape {values.shape})")
    out = values.astype(np.int64)
    if values.dtype.kind == "f" and not np.array_equal(out, values):
        raise ValueError(f"{where}: expected integer lengths, got {values.tolist()} (PyTorch "
                         f"would truncate them silently)")
    return out


def _check_batch_sizes(where, packed):
    """A PackedSequence's batch_sizes as int64, checked against its data: positive,
    non-increasing, summing to len(data)."""
    if not isinstance(packed, PackedSequence):
        raise TypeError(f"{where}: expected a PackedSequence, got {type(packed).__name__}")
    sizes = np.asarray(_device.to_host(packed.batch_sizes))
    if sizes.ndim != 1 or sizes.size == 0 or sizes.dtype.kind not in "iu":
        raise ValueError(f"{where}: expected batch_sizes to be a non-empty 1-D integer array, "
                         f"got {sizes!r}")
    sizes = sizes.astype(np.int64)
    rows = packed.data.shape[0] if packed.data.ndim else 0
    if sizes[-1] < 1 or np.any(np.diff(sizes) > 0) or sizes.sum() != rows:
        raise ValueError(f"{where}: expected positive, non-increasing batch_sizes summing to "
                         f"len(data) = {rows}, got {sizes.tolist()} (build PackedSequences "
                         f"with pack_padded_sequence or pack_sequence)")
    return sizes


def _fill_value(where, value, dtype):
    """padding_value checked against the padded array's dtype (padding.check_fill_value:
    PyTorch's checked conversion), a bool dtype's as a bool."""
    value = check_fill_value(where, value, dtype, "padding_value")
    return bool(value) if np.dtype(dtype).kind == "b" else value


def _time_major(x, batch_first):
    return x.swapaxes(0, 1) if batch_first else x


# ------------------------------------------------------------------ packing
def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """The PackedSequence of a padded batch input (T, N, *) ((N, T, *) with
    batch_first) whose sequence i has lengths[i] steps (1 <= lengths[i] <= T). With
    enforce_sorted the lengths must be non-increasing (a RuntimeError otherwise);
    enforce_sorted=False sorts the batch (stable, longest first) and records the order
    in sorted_indices. input may have any dtype (labels too)."""
    where = "pack_padded_sequence"
    check_bool(where, "batch_first", batch_first)
    check_bool(where, "enforce_sorted", enforce_sorted)
    lengths = _as_lengths(where, lengths)
    x, namespace = _host(where, "input", input, 2)
    x = _time_major(x, batch_first)
    if x.size == 0:
        raise RuntimeValueError(f"{where}: Cannot pack empty tensors.")
    if lengths.size != x.shape[1]:
        raise RuntimeValueError(
            f"{where}: Expected `len(lengths)` to be equal to batch_size, but "
            f"got {lengths.size} (batch_size={x.shape[1]})")
    sorted_indices = None
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            raise RuntimeValueError(
                f"{where}: `lengths` array must be sorted in decreasing order when "
                f"`enforce_sorted` is True. You can pass `enforce_sorted=False` to "
                f"pack_padded_sequence and/or pack_sequence to sidestep this requirement if "
                f"you do not need ONNX exportability.")
    else:
        sorted_indices = np.argsort(-lengths, kind="stable")
        lengths = lengths[sorted_indices]
        x = x[:, sorted_indices]
    if lengths[-1] <= 0:
        raise RuntimeValueError(
            f"{where}: Length of all samples has to be greater than 0, but "
            f"found an element in 'lengths' that is <= 0")
    if lengths[0] > x.shape[0]:
        raise RuntimeValueError(
            f"{where}: found a length {lengths[0]} longer than the padded "
            f"input's {x.shape[0]} time steps (shape {tuple(input.shape)})")
    steps = np.arange(lengths[0])
    running = steps[:, None] < lengths[None, :]          # (T', N): step t of sequence i
    data = x[:lengths[0]][running]                       # step-major, sorted batch minor
    batch_sizes = running.sum(axis=1).astype(np.int64)
    return PackedSequence(namespace.put(data), batch_sizes, sorted_indices, None)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """(padded, lengths): the padded batch (T, N, *) ((N, T, *) with batch_first) of a
    PackedSequence, padding_value after each sequence's end, T its longest length or
    total_length (which may not be shorter: a ValueError), in the order the batch had
    before packing; lengths (N,) int64 in that order."""
    where = "pad_packed_sequence"
    check_bool(where, "batch_first", batch_first)
    sizes = _check_batch_sizes(where, sequence)
    data, namespace = _host(where, "sequence.data", sequence.data, 1)
    longest = sizes.size
    if total_length is not None:
        if isinstance(total_length, bool) or not isinstance(total_length, numbers.Integral):
            raise TypeError(f"{where}: expected total_length to be an int or None, got "
                            f"{total_length!r}")
        if total_length < longest:
            raise ValueError(
                f"{where}: Expected total_length to be at least the length of the longest "
                f"sequence in input, but got total_length={total_length} and max sequence length "
                f"being {longest}")
        longest = int(total_length)
    padding_value = _fill_value(where, padding_value, data.dtype)
    n = int(sizes[0])
    lengths = (np.arange(n)[None, :] < sizes[:, None]).sum(axis=0).astype(np.int64)
    padded = np.full((longest, n) + data.shape[1:], padding_value, dtype=data.dtype)
    running = np.arange(longest)[:, None] < lengths[None, :]
    padded[running] = data
    if sequence.unsorted_indices is not None:
        order = np.asarray(_device.to_host(sequence.unsorted_indices))
        padded, lengths = padded[:, order], lengths[order]
    return namespace.put(_time_major(padded, batch_first)), lengths


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """The sequences (each (L_i, *)) stacked into (T, N, *) ((N, T, *) with
    batch_first), T the longest L_i, padding_value filling each after its end
    (padding_side='left': before its start). The output has the first sequence's
    trailing shape and dtype (the others are broadcast and cast into it, as PyTorch's
    copy); an array is taken as the list of its rows."""
    where = "pad_sequence"
    if isinstance(sequences, (str, bytes)) or not isinstance(sequences, collections.abc.Iterable):
        raise RuntimeValueError(
            f"pad_sequence: Expected iterable for input sequences, but got arg "
            f"of type: {type(sequences)}")
    check_bool(where, "batch_first", batch_first)
    sequences = tuple(sequences)
    if not sequences:
        raise RuntimeValueError(f"{where}: received an empty list of sequences")
    if padding_side not in ("left", "right"):
        raise RuntimeValueError(
            f"{where}: Expected padding_side to be one of left or right, but "
            f"got {padding_side}.")
    hosts = [_host(where, f"sequences[{i}]", s, 1, RuntimeValueError)[0]
             for i, s in enumerate(sequences)]
    first = hosts[0]
    padding_value = _fill_value(where, padding_value, first.dtype)
    longest = max(h.shape[0] for h in hosts)
    padded = np.full((len(hosts), longest) + first.shape[1:], padding_value, dtype=first.dtype)
    for i, h in enumerate(hosts):
        span = slice(0, h.shape[0]) if padding_side == "right" else slice(
            longest - h.shape[0], longest)
        try:
            padded[i, span] = h
        except ValueError as err:
            raise RuntimeValueError(
                f"{where}: sequence {i} of shape {h.shape} does not fit the "
                f"first's trailing shape {first.shape[1:]}") from err
    out = padded if batch_first else padded.swapaxes(0, 1)
    return _device.namespace_of(sequences[0]).put(out)


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    """The list of sequences (each (lengths[i], *), a copy) of a padded batch (T, N, *)
    ((N, T, *) with batch_first); the inverse of ``pad_sequence`` (right padding)."""
    where = "unpad_sequence"
    check_bool(where, "batch_first", batch_first)
    x, namespace = _host(where, "padded_sequences", padded_sequences, 2)
    x = x if batch_first else x.swapaxes(0, 1)
    lengths = _as_lengths(where, lengths)
    if lengths.size != x.shape[0]:
        raise ValueError(f"{where}: expected one length per sequence ({x.shape[0]}), got "
                         f"{lengths.size}")
    if lengths.size and (lengths.min() < 0 or lengths.max() > x.shape[1]):
        raise ValueError(f"{where}: expected lengths in [0, {x.shape[1]}] (the padded length), "
                         f"got {lengths.tolist()}")
    return [namespace.put(np.array(seq[:length])) for seq, length in zip(x, lengths)]


def pack_sequence(sequences, enforce_sorted=True):
    """``pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=...)``:
    the PackedSequence of a list of sequences (each (L_i, *))."""
    if isinstance(sequences, collections.abc.Iterable):
        sequences = tuple(sequences)   # read twice below
    padded = pad_sequence(sequences)
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(padded, lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences):
    """The list of sequences (each (L_i, *)) of a PackedSequence, in the order they had
    before packing; the inverse of ``pack_sequence``."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
