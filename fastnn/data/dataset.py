"""Map-style datasets, as ``torch.utils.data``'s, for ``fastnn.data.DataLoader``.

``Dataset`` (subclass it with ``__len__`` and ``__getitem__``), ``TensorDataset(*arrays)``,
``IterableDataset`` (subclass it with ``__iter__``; ``ChainDataset(datasets)`` or ``a + b``
chains them),
``Subset(dataset, indices)``, ``ConcatDataset(datasets)`` (also ``dataset_a + dataset_b``),
``random_split(dataset, lengths, generator=None)`` and ``default_collate(samples)``, with
PyTorch's behaviour on NumPy arrays: a sample is whatever ``__getitem__`` returns, and
``default_collate`` stacks a list of samples into a batch (arrays stacked on a new first
axis, Python ints into int64 and floats into float64 arrays, tuples and lists of fields
into a list of batched fields (a list subclass keeps its type), dicts key by key, strings
(NumPy's too) left as they come: the list of samples, or the tuple of a tuple's field).
"""
import abc
import bisect
import collections.abc
import copy
import itertools
import math
import numbers
import warnings

import numpy as np

from .. import random as _random
from ..errors import AssertionValueError, IndexValueError, RuntimeValueError
from .sampler import as_generator


class Dataset:
    """Base class of map-style datasets: a subclass defines ``__getitem__(index)`` (one
    sample) and ``__len__()``; ``a + b`` concatenates two datasets."""

    def __getitem__(self, index):
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset, metaclass=abc.ABCMeta):
    """Base class of iterable-style datasets: a subclass defines ``__iter__`` (the samples
    of a pass, in order) and may define ``__len__``; ``a + b`` chains two of them (a
    ChainDataset). A DataLoader reads it in that order (no sampler); with ``num_workers >
    0`` each worker iterates its own copy, and ``fastnn.data.get_worker_info()`` in
    ``__iter__`` tells a copy which share to read. A subclass without ``__iter__`` cannot
    be instantiated (a TypeError, as PyTorch's abstract class)."""

    @abc.abstractmethod
    def __iter__(self):
        raise NotImplementedError("Subclasses of IterableDataset should implement __iter__.")

    def __add__(self, other):
        return ChainDataset([self, other])


def _check_iterable_dataset(dataset):
    if not isinstance(dataset, IterableDataset):
        raise AssertionValueError("ChainDataset only supports IterableDataset")


class ChainDataset(IterableDataset):
    """The samples of several IterableDatasets one after the other, read on the fly;
    ``len`` is the sum of theirs (a TypeError if one has none)."""

    def __init__(self, datasets):
        self.datasets = datasets

    def __iter__(self):
        for dataset in self.datasets:
            _check_iterable_dataset(dataset)
            yield from dataset

    def __len__(self):
        total = 0
        for dataset in self.datasets:
            _check_iterable_dataset(dataset)
            total += len(dataset)
        return total


class TensorDataset(Dataset):
    """Samples ``(a[i] for a in arrays)``: arrays of one length along their first axis
    (views, no copy; ``.tensors`` holds them)."""

    def __init__(self, *tensors):
        arrays = tuple(np.asarray(t) for t in tensors)
        if not arrays:
            raise ValueError("TensorDataset: expected at least one array")
        for i, a in enumerate(arrays):
            if a.ndim == 0:   # (PyTorch's size(0) of a 0-d tensor: an IndexError)
                raise IndexValueError(f"TensorDataset: array {i} is 0-d: it has no first "
                                      f"axis to index samples along")
        if any(a.shape[0] != arrays[0].shape[0] for a in arrays):   # (PyTorch asserts it)
            raise AssertionValueError(f"TensorDataset: size mismatch between tensors (first "
                                      f"axes of the arrays' shapes "
                                      f"{[t.shape for t in arrays]} differ)")
        self.tensors = arrays

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices`` (a sequence of ints), in that order."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices
        # (the DataLoader fetches a batch through __getitems__, which would bypass a
        # subclass's own __getitem__: PyTorch refuses such a subclass too)
        if (type(self).__getitem__ is not Subset.__getitem__
                and type(self).__getitems__ is Subset.__getitems__):
            raise NotImplementedError(
                f"{type(self).__name__} overrides __getitem__ but not __getitems__. When "
                f"subclassing Subset and overriding __getitem__, you must also override "
                f"__getitems__ (e.g. return [self[i] for i in indices]) so that the "
                f"DataLoader uses your __getitem__.")

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices):
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__([self.indices[i] for i in indices])
        return [self.dataset[self.indices[i]] for i in indices]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    """The samples of several datasets one after the other (``cumulative_sizes`` holds
    the running lengths); negative indices count from the end."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise AssertionValueError("ConcatDataset: datasets should not be an empty "
                                      "iterable")   # (PyTorch's AssertionError)
        if any(isinstance(d, IterableDataset) for d in self.datasets):
            raise AssertionValueError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx = len(self) + idx
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        start = self.cumulative_sizes[which - 1] if which > 0 else 0
        return self.datasets[which][idx - start]


def _generator(generator, where):
    """An np.random.Generator: fastnn's (seeded by fastnn.manual_seed) for None, else
    as_generator's (a fresh one seeded with a non-negative int, or the Generator given)."""
    if generator is None:
        return _random.generator()
    return as_generator(generator, where, "generator")


def random_split(dataset, lengths, generator=None):
    """Split ``dataset`` at random into ``Subset``s of the given lengths (ints summing to
    ``len(dataset)``, or fractions summing to 1, floored with the remainder handed out
    one sample at a time from the first split, as PyTorch's). ``generator``: None
    (fastnn's generator, which ``fastnn.manual_seed`` seeds), an int seed or a
    numpy.random.Generator (the draws are NumPy's: a torch.Generator is refused, as no
    generator here gives PyTorch's split)."""
    lengths = list(lengths)
    n = len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            counts.append(int(math.floor(n * frac)))
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        for i, length in enumerate(counts):
            if length == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an "
                              f"empty dataset.", stacklevel=2)
        lengths = counts
    if any(isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 0
           for k in lengths):
        raise ValueError(f"random_split: lengths must be non-negative ints or fractions "
                         f"summing to 1, got {lengths}")
    if sum(lengths) != n:
        raise ValueError("Sum of input lengths does not equal the length of the input "
                         "dataset!")
    order = _generator(generator, "random_split").permutation(n).tolist()
    return [Subset(dataset, order[end - k:end])
            for end, k in zip(itertools.accumulate(lengths), lengths)]


#: NumPy dtype kinds PyTorch's default_collate refuses in arrays (strings, bytes,
#: objects, void) or cannot make a tensor of (datetimes, timedeltas)
_NOT_COLLATED = frozenset("SaUOVMm")


def default_collate(batch):
    """A batch from a list of samples, as PyTorch's ``default_collate`` on NumPy data."""
    elem = batch[0]
    if isinstance(elem, (np.ndarray, np.generic)) and not isinstance(elem, (str, bytes)) \
            and elem.dtype.kind in _NOT_COLLATED:
        # (PyTorch's: strings and objects refused, datetimes no tensor takes)
        raise TypeError(f"default_collate: batch must contain arrays, numbers, dicts or "
                        f"lists; found {elem.dtype}")
    if isinstance(elem, np.ndarray):
        shapes = [np.shape(sample) for sample in batch]
        if any(shape != elem.shape for shape in shapes):   # (PyTorch's torch.stack error)
            other = next(i for i, shape in enumerate(shapes) if shape != elem.shape)
            raise RuntimeValueError(
                f"stack expects each tensor to be equal size, but got "
                f"{list(elem.shape)} at entry 0 and {list(shapes[other])} at "
                f"entry {other}")
        return np.stack(batch)
    if isinstance(elem, (str, bytes)):   # (np.str_ and np.bytes_ too, as PyTorch's)
        return batch
    if isinstance(elem, np.generic):
        return np.array(batch)
    if isinstance(elem, (int, float)):   # (bool too; not a Fraction: PyTorch refuses it)
        # PyTorch's: a float first sample gives float64; an int (or bool) first sample
        # gives torch.tensor(batch)'s inference from every sample: bool, int64, or the
        # default float32 ([1, 2.5]; the first sample alone truncated 2.5 to 2)
        if all(isinstance(v, bool) for v in batch):
            return np.array(batch, dtype=bool)
        if all(isinstance(v, numbers.Integral) for v in batch):
            return np.array(batch, dtype=np.int64)
        return np.array(batch, dtype=np.float32 if isinstance(elem, numbers.Integral)
                        else np.float64)
    if isinstance(elem, collections.abc.Mapping):
        return _like_mapping(elem, {key: default_collate([d[key] for d in batch])
                                    for key in elem})
    # a field of sequence samples is collated from the tuple zip gives, as PyTorch's (a
    # field of strings stays that tuple)
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple
        return type(elem)(*(default_collate(s) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(sample) != size for sample in batch):
            raise RuntimeValueError("each element in list of batch should be of equal size")
        fields = [default_collate(s) for s in zip(*batch)]
        return fields if isinstance(elem, tuple) else _like_sequence(elem, fields)
    raise TypeError(f"default_collate: batch must contain arrays, numbers, dicts or lists; "
                    f"found {type(elem).__name__}")


def _like_mapping(sample, values):
    """values (a dict) in the sample's own mapping type where it can be made (a
    defaultdict keeps its factory), else as a dict: what PyTorch's collate does."""
    try:
        clone = copy.copy(sample)
        clone.update(values)
        return clone
    except (TypeError, AttributeError):
        try:
            return type(sample)(values)
        except TypeError:
            return values


def _like_sequence(sample, values):
    """values (a list) in the sample's own sequence type, as PyTorch's collate makes it: a
    copy of a mutable sequence with its items replaced, another type built from the list,
    else the list."""
    try:
        if isinstance(sample, collections.abc.MutableSequence):
            clone = copy.copy(sample)
            for i, value in enumerate(values):
                clone[i] = value
            return clone
        return type(sample)(values)
    except TypeError:
        return values


def default_convert(sample):
    """A sample as PyTorch's ``default_convert`` gives it when batching is off
    (``DataLoader(batch_size=None)``): tuples become lists, recursively through dicts,
    lists and namedtuples; arrays, numbers and strings stay as they are."""
    if isinstance(sample, (str, bytes, np.ndarray, np.generic)):
        return sample
    if isinstance(sample, collections.abc.Mapping):
        return _like_mapping(sample, {key: default_convert(sample[key]) for key in sample})
    if isinstance(sample, tuple) and hasattr(sample, "_fields"):  # a namedtuple
        return type(sample)(*(default_convert(field) for field in sample))
    if isinstance(sample, tuple):
        return [default_convert(field) for field in sample]
    if isinstance(sample, collections.abc.Sequence):
        try:
            return type(sample)([default_convert(field) for field in sample])
        except TypeError:
            return [default_convert(field) for field in sample]
    return sample


def is_dataset(obj):
    """True for a map-style dataset: a Dataset, or another object with __len__ and
    __getitem__ that is not array-like (an array, list or tuple is data, not a dataset)."""
    if isinstance(obj, Dataset):
        return True
    return (hasattr(obj, "__getitem__") and hasattr(obj, "__len__")
            and not hasattr(obj, "__array__") and not hasattr(obj, "__array_interface__")
            and not isinstance(obj, (list, tuple, str, bytes, collections.abc.Mapping)))


def array_view(dataset):
    """(arrays, index) when every sample of dataset is ``tuple(a[index[i]] for a in
    arrays)`` (a TensorDataset, or Subsets of one; index None for all rows in order), so
    a batch can be gathered with one ``np.take`` per array; None otherwise."""
    if type(dataset) is TensorDataset:
        return dataset.tensors, None
    if type(dataset) is Subset:
        inner = array_view(dataset.dataset)
        if inner is None:
            return None
        arrays, index = inner
        mine = np.asarray(dataset.indices)
        if mine.ndim != 1 or (mine.size and mine.dtype.kind not in "iu"):
            return None
        mine = mine.astype(np.int64)
        n = len(arrays[0]) if index is None else len(index)
        if len(mine) and (mine.min() < -n or mine.max() >= n):
            return None  # out of range: __getitem__ raises when that sample is reached
        mine = np.where(mine < 0, mine + n, mine)
        return arrays, (mine if index is None else np.take(index, mine))
    return None
