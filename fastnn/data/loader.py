"""Mini-batch iteration over in-memory arrays or a map-style Dataset."""
import math
import numbers

import numpy as np

from .. import random as _random
from .dataset import (TensorDataset, array_view, default_collate, default_convert,
                      is_dataset)


class _BatchSizeDefault:
    """batch_size not given: 32 over arrays, PyTorch's 1 over a dataset."""

    def __repr__(self):
        return "32 (1 for a dataset)"


_UNSET = _BatchSizeDefault()


def _gather(a, rows):
    """a's rows: a view for a slice, one gathered copy for an index array."""
    return a[rows] if isinstance(rows, slice) else np.take(a, rows, axis=0)


def as_generator(seed):
    """An np.random.Generator from an int seed, None (fresh entropy) or a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"DataLoader: seed (or generator) must be None, an int or a "
                        f"numpy.random.Generator, got {type(seed).__name__}")
    if seed is not None and seed < 0:
        raise ValueError(f"DataLoader: seed must be a non-negative int, got {seed}")
    return np.random.default_rng(None if seed is None else int(seed))


class DataLoader:
    """Iterate over (x, y) in mini-batches.

    x: array of shape (N, ...); y: array of shape (N, ...), a tuple of such arrays,
    or None. Without shuffling, batches are views (slices) of x and y; with
    ``shuffle=True`` each pass draws a new permutation from the generator and
    gathers each batch with one fancy-indexing call (a fresh copy, no Python loop
    over samples). ``seed`` (int or np.random.Generator) makes the sequence of
    permutations reproducible; None draws each pass's seed from fastnn's global
    generator when the pass starts, so a pass after ``fastnn.manual_seed`` repeats and
    building the loader draws nothing, as ``torch.manual_seed`` and a PyTorch
    DataLoader's shuffling. ``drop_last`` (a bool) drops a final batch smaller than
    ``batch_size``. Shuffling no samples is a ValueError, as PyTorch's RandomSampler.

    Each iteration yields ``(x_batch, y_batch)`` (``y_batch`` a tuple when y is a
    tuple), or just ``x_batch`` when y is None.

    As PyTorch's ``DataLoader(dataset, batch_size=1, shuffle=False, ...)``: x may be a
    map-style dataset (``fastnn.data.Dataset``, ``TensorDataset``, ``Subset``, a list of
    samples, or any object with ``__len__`` and ``__getitem__`` that is not an array), y
    then None (or an int, PyTorch's positional batch_size, and then a bool, its
    positional shuffle); batch_size defaults to 1 there.
    Each batch is ``collate_fn(samples)`` (``default_collate``: arrays stacked, a tuple
    sample giving a list of batched fields, as PyTorch's); a TensorDataset, or a Subset of
    one, is gathered with one ``np.take`` per array (slices when not shuffled). Over
    arrays, a ``collate_fn`` given gets the batch's samples, each packed as a batch is
    (``x[i]``, ``(x[i], y[i])`` or ``(x[i], (y1[i], ...))``).
    ``generator`` is PyTorch's name for ``seed``; ``num_workers`` and ``pin_memory``
    are accepted for PyTorch code, and batches are made in the calling process.
    ``.dataset`` is the dataset (over arrays: a TensorDataset of x and y, no copy).
    ``batch_size=None`` turns batching off, as PyTorch's: each sample is yielded as it
    is (``collate_fn(sample)`` when given), one per step (not with ``drop_last``).
    """

    def __init__(self, x, y=None, batch_size=_UNSET, shuffle=False, seed=None,
                 drop_last=False, *, collate_fn=None, num_workers=0, pin_memory=False,
                 generator=None):
        # a list of samples is a dataset, as in PyTorch (not one array), unless targets
        # follow it: DataLoader(list_of_samples[, batch_size]) and DataLoader(x, y)
        positional_batch = isinstance(y, numbers.Integral) and not isinstance(y, bool)
        listed = isinstance(x, list) and (y is None or positional_batch)
        self._dataset = x if is_dataset(x) or listed else None
        if self._dataset is not None:
            if positional_batch:
                if isinstance(batch_size, bool):  # DataLoader(dataset, 64, True): PyTorch's
                    shuffle, batch_size = batch_size, _UNSET  # positional shuffle
                if batch_size is not _UNSET:
                    raise TypeError("DataLoader: got batch_size twice (the second "
                                    "positional argument and batch_size=)")
                y, batch_size = None, y  # DataLoader(dataset, 64), PyTorch's order
            if y is not None:
                raise TypeError(f"DataLoader: a dataset yields its own targets; y must be "
                                f"None with {type(x).__name__}, got {type(y).__name__}")
            batch_size = 1 if batch_size is _UNSET else batch_size
        elif batch_size is _UNSET:
            batch_size = 32
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: collate_fn must be callable, got "
                            f"{type(collate_fn).__name__}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, numbers.Integral) \
                or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use "
                             "num_workers=0 to disable multiprocessing.")
        if generator is not None:
            if seed is not None:
                raise TypeError("DataLoader: pass seed= or generator=, not both")
            seed = generator
        if batch_size is None:   # PyTorch's: no batching, each sample yielded as it is
            if drop_last:
                raise ValueError("batch_size=None option disables auto-batching and is "
                                 "mutually exclusive with drop_last")
        elif isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int or None, got "
                             f"{batch_size!r}")
        self.collate_fn, self.num_workers = collate_fn, int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.batch_size = None if batch_size is None else int(batch_size)
        if not isinstance(drop_last, (bool, np.bool_)):
            raise ValueError(f"drop_last should be a boolean value, but got "
                             f"drop_last={drop_last!r}")
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        # None: each shuffled pass draws its seed from fastnn's generator when it starts
        # (not fresh entropy, and not at construction): a pass after fastnn.manual_seed
        # repeats, and building a loader leaves the generator alone, as PyTorch's
        # RandomSampler with torch.manual_seed
        self.rng = None if seed is None and shuffle else as_generator(seed)
        if self._dataset is None:
            self._set_arrays(x, y)
        if self.shuffle and self.num_samples == 0:   # (PyTorch's RandomSampler refuses it)
            raise ValueError("DataLoader: num_samples should be a positive integer value "
                             "to shuffle, but got num_samples=0")

    def _set_arrays(self, x, y):
        """Keep the array form's x (N, ...) and targets y (None, one array or list, or a
        tuple of arrays), checked to hold N samples each."""
        x = np.asarray(x)
        if x.ndim == 0:
            raise ValueError("DataLoader: x must have a leading sample axis, got a scalar")
        # only a tuple is several targets: a list is one target (e.g. a list of labels)
        self._multi_y = isinstance(y, tuple)
        ys = [np.asarray(a) for a in y] if self._multi_y else ([] if y is None else [np.asarray(y)])
        for a in ys:
            if a.ndim == 0 or a.shape[0] != x.shape[0]:
                raise ValueError(f"DataLoader: x holds {x.shape[0]} samples but a target array "
                                 f"has shape {a.shape}")
        self.x, self._ys, self._has_y = x, ys, y is not None

    @property
    def dataset(self):
        """The dataset iterated over (over arrays: a TensorDataset of x and the targets)."""
        if self._dataset is not None:
            return self._dataset
        return TensorDataset(self.x, *self._ys)

    @property
    def num_samples(self):
        return len(self._dataset) if self._dataset is not None else self.x.shape[0]

    def __len__(self):
        """Number of batches per pass."""
        n, b = self.num_samples, self.batch_size or 1
        return n // b if self.drop_last else math.ceil(n / b)

    def _pack(self, x, ys):
        if not self._has_y:
            return x
        return x, (tuple(ys) if self._multi_y else ys[0])

    def __iter__(self):
        if self._dataset is not None:
            yield from self._iter_dataset()
            return
        for rows in self._batch_rows():
            if self.batch_size is None:   # one sample, as it is (or collate_fn(sample))
                sample = self._samples(rows)[0]
                yield sample if self.collate_fn is None else self.collate_fn(sample)
            elif self.collate_fn is not None:
                yield self.collate_fn(self._samples(rows))
            else:
                yield self._pack(_gather(self.x, rows), [_gather(a, rows) for a in self._ys])

    def _samples(self, rows):
        """The array form's samples at rows (a slice or index array), each packed as a
        batch is: x[i], (x[i], y[i]) or (x[i], (y1[i], y2[i], ...))."""
        indices = range(rows.start, rows.stop) if isinstance(rows, slice) else rows
        return [self._pack(self.x[i], [a[i] for a in self._ys]) for i in indices]

    def _batch_rows(self):
        """Each batch's rows of one pass: slices in order, or runs of a new permutation
        (drawn from the generator) when shuffling."""
        n, b = self.num_samples, self.batch_size or 1
        order = None
        if self.shuffle:
            rng = self.rng if self.rng is not None else as_generator(_random.draw_seed())
            order = rng.permutation(n)
        for start in range(0, len(self) * b, b):
            yield slice(start, min(start + b, n)) if order is None else order[start:start + b]

    def _iter_dataset(self):
        if self.batch_size is None:   # one sample, as it is (or collate_fn(sample))
            for rows in self._batch_rows():
                sample = self._dataset[int(rows.start if isinstance(rows, slice) else rows[0])]
                yield (self.collate_fn or default_convert)(sample)
            return
        view = array_view(self._dataset) if self.collate_fn is None else None
        if view is not None:  # a TensorDataset (or Subset of one): whole-batch gathers
            arrays, index = view
            for rows in self._batch_rows():
                if index is not None:
                    rows = index[rows]
                yield [_gather(a, rows) for a in arrays]
            return
        collate = self.collate_fn or default_collate
        fetch_many = getattr(self._dataset, "__getitems__", None)
        for rows in self._batch_rows():
            rows = (list(range(rows.start, rows.stop)) if isinstance(rows, slice)
                    else rows.tolist())
            samples = (fetch_many(rows) if callable(fetch_many)
                       else [self._dataset[i] for i in rows])
            yield collate(samples)

    def __repr__(self):
        if self._dataset is not None:
            return (f"DataLoader(dataset={type(self._dataset).__name__}, num_samples="
                    f"{self.num_samples}, batch_size={self.batch_size}, shuffle="
                    f"{self.shuffle}, drop_last={self.drop_last})")
        return (f"DataLoader(num_samples={self.num_samples}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last})")
