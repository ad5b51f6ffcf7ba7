"""Mini-batch iteration over in-memory arrays or a map-style Dataset."""
import collections.abc
import multiprocessing
import numbers
import warnings

import numpy as np

from ..errors import AssertionValueError, IndexValueError, TypeValueError
from .dataset import (IterableDataset, TensorDataset, array_view, default_collate,
                      default_convert, is_dataset)
from .sampler import (BatchSampler, InfiniteConstantSampler, RandomSampler,
                      SequentialSampler, as_generator)
from .streams import WorkerStream, round_robin, start_workers, worker_streams
from .worker import PassSeed, WorkerInfo, call_worker_init


class _BatchSizeDefault:
    """batch_size not given: 32 over arrays, PyTorch's 1 over a dataset."""

    def __repr__(self):
        return "32 (1 for a dataset)"


_UNSET = _BatchSizeDefault()


def _gather(a, rows, copy=False):
    """a's rows: a view for a slice (a copy of it when copy), one gathered copy for an
    index array."""
    if isinstance(rows, slice):
        return a[rows].copy() if copy else a[rows]
    return np.take(a, rows, axis=0)


def _gather_all(arrays, rows, copy=False):
    """Each array's rows (one np.take each; copy: slices copied too); an index out of
    range is an IndexValueError (PyTorch's IndexError), as np.take finds it."""
    try:
        return [_gather(a, rows, copy) for a in arrays]
    except IndexError as err:
        raise IndexValueError(f"DataLoader: a sampler's index is out of range for "
                              f"{len(arrays[0])} samples ({err})") from None


def _as_rows(batch, n):
    """A batch of indices (a slice, an int array, or a sampler's list) as a slice or an
    int64 array, for gathering from arrays of n rows."""
    if isinstance(batch, slice):
        if batch.stop <= n:
            return batch
        batch = np.arange(batch.start, batch.stop)   # np.take then says it is out of range
    rows = np.asarray(batch)
    if rows.size == 0:   # (PyTorch's collate fails on it: an IndexError)
        raise IndexValueError("DataLoader: a batch sampler gave an empty batch")
    if rows.ndim != 1 or rows.dtype.kind not in "iu":
        raise IndexValueError(f"DataLoader: a batch's indices into arrays must be a list "
                              f"of ints, got {rows.ndim}-d {rows.dtype} indices")
    return rows.astype(np.int64, copy=False)


def _finishing(start, batches):
    """The batches of a pass: start() called when the pass starts gives its PassSeed (or
    None), whose finish() is called when the pass ends (run out or dropped)."""
    seed = start()
    try:
        yield from batches
    finally:
        if seed is not None:
            seed.finish()


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
    positional shuffle, which may be followed by PyTorch's positional sampler,
    batch_sampler and num_workers); batch_size defaults to 1 there.
    Each batch is ``collate_fn(samples)`` (``default_collate``: arrays stacked, a tuple
    sample giving a list of batched fields, as PyTorch's); a TensorDataset, or a Subset of
    one, is gathered with one ``np.take`` per array (slices copied when in order: a
    batch is the caller's, as PyTorch's stacked one). Over
    arrays, a ``collate_fn`` given gets the batch's samples, each packed as a batch is
    (``x[i]``, ``(x[i], y[i])`` or ``(x[i], (y1[i], ...))``).
    ``generator`` is PyTorch's name for ``seed``.
    ``.dataset`` is the dataset (over arrays: a TensorDataset of x and y, no copy).
    ``batch_size=None`` turns batching off, as PyTorch's: each sample is yielded as it
    is (``collate_fn(sample)`` when given), one per step (not with ``drop_last``).

    ``sampler`` (a ``fastnn.data`` Sampler, or any iterable of indices, e.g. a list)
    gives the indices of a pass, batched by ``batch_size``/``drop_last``; it excludes
    ``shuffle``. ``batch_sampler`` (a ``BatchSampler`` or any iterable of lists of
    indices) gives whole batches; it excludes ``batch_size`` (other than 1), ``shuffle``,
    ``sampler`` and ``drop_last``. Both work over arrays and datasets; a TensorDataset and
    the array form still gather each batch with one ``np.take`` per array (fastnn's own
    samplers hand over index arrays, no Python loop over samples). ``.sampler`` and
    ``.batch_sampler`` are set as PyTorch's (a SequentialSampler or RandomSampler, and a
    BatchSampler, when not given); ``len(loader)`` is ``len(batch_sampler)``, or
    ``len(sampler)`` with ``batch_size=None``.

    Batches are made in the calling process: ``num_workers``, ``pin_memory``,
    ``timeout``, ``prefetch_factor``, ``persistent_workers``, ``multiprocessing_context``,
    ``pin_memory_device`` and ``in_order`` are checked as PyTorch checks them and kept as
    attributes, and change nothing else. ``worker_init_fn`` (with ``num_workers > 0``;
    PyTorch never calls it otherwise) is called as ``worker_init_fn(0)`` in the calling
    process when a pass starts, the pass's one worker (with ``persistent_workers=True``:
    only when the first pass starts), so per-worker setup (opening files, seeding) runs
    once before the samples are read; PyTorch calls it in each of ``num_workers`` worker
    processes with ids ``0..num_workers-1``. During that call
    ``fastnn.data.get_worker_info()`` (None elsewhere, as PyTorch's in the main process)
    is a read-only ``WorkerInfo(id=0, num_workers=1, seed, dataset)``: one worker, since
    this one process reads every sample (code that shards by ``num_workers`` reads all of
    them), ``dataset`` this loader's ``.dataset``, and ``seed`` an int in [0, 2**63)
    hashed from the state of the generator the pass shuffles with (``seed``/``generator``
    when given, else fastnn's global generator) as the pass starts, without drawing from
    it: it repeats with the same seed or after ``fastnn.manual_seed``, changes from pass
    to pass as the generator advances, and the shuffle order is that of the same loader
    without a ``worker_init_fn``. (A pass that leaves the generator as it found it, not
    shuffling, draws one number from it when it ends, so the next pass's seed differs.)

    An ``IterableDataset`` (PyTorch's iterable-style dataset) is read in its own order,
    as PyTorch's: each batch the next ``batch_size`` items of ``iter(dataset)`` (the last
    one shorter, or dropped with ``drop_last``; one item at a time, through
    ``default_convert``, with ``batch_size=None``), collated by ``collate_fn``;
    ``shuffle=True``, ``sampler`` and ``batch_sampler`` are ValueErrors, and
    ``len(loader)`` is ``len(dataset)`` in batches (ceil, or floor with ``drop_last``; a
    TypeError when the dataset has no ``len``). With ``num_workers > 0`` fastnn plays
    PyTorch's workers in this process, one after the other: worker ``k`` calls
    ``worker_init_fn(k)`` and iterates its own deep copy of the dataset (a shallow one if
    it cannot be deep-copied), with
    ``get_worker_info()`` its ``WorkerInfo(id=k, num_workers, seed=base + k, dataset=the
    copy)`` meanwhile, so the dataset can read its share; the batches come one from each
    worker in turn, a worker dropping out when its iterator ends (with
    ``persistent_workers=True`` the workers and their copies are kept across passes).
    An exception raised reading the dataset ends the pass there.
    """

    def __init__(self, x, y=None, batch_size=_UNSET, shuffle=False, seed=None,
                 drop_last=False, *, sampler=None, batch_sampler=None, collate_fn=None,
                 num_workers=0, pin_memory=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, prefetch_factor=None,
                 persistent_workers=False, pin_memory_device="", in_order=True):
        # a list (or tuple) of samples is a dataset, as in PyTorch (not one array), unless
        # targets follow it: DataLoader(list_of_samples[, batch_size]) and DataLoader(x,
        # y); so is a dict (samples by key, the sampler's indices its keys, as PyTorch's)
        positional_batch = isinstance(y, numbers.Integral) and not isinstance(y, bool)
        listed = (isinstance(x, (list, tuple, collections.abc.Mapping))
                  and (y is None or positional_batch))
        self._dataset = x if is_dataset(x) or listed else None
        # (an array with an int after it: PyTorch's DataLoader(tensor, 64), batches of x's
        # rows; it was read as x with a target array of shape ())
        if self._dataset is not None or (positional_batch and isinstance(x, np.ndarray)):
            if positional_batch:
                if isinstance(batch_size, bool):
                    # DataLoader(dataset, 64, True[, sampler, batch_sampler, num_workers]):
                    # PyTorch's positional shuffle, and then its sampler, batch_sampler and
                    # num_workers in fastnn's shuffle, seed and drop_last slots, told apart
                    # by type (a seed is never iterable, drop_last never a non-bool int)
                    if shuffle is not False and shuffle is not None \
                            and not isinstance(shuffle, (bool, np.bool_)):
                        if sampler is not None:
                            raise TypeError("DataLoader: got sampler twice (the fourth "
                                            "positional argument and sampler=)")
                        sampler = shuffle
                    if seed is not None and not isinstance(seed, np.random.Generator) \
                            and hasattr(seed, "__iter__"):
                        if batch_sampler is not None:
                            raise TypeError("DataLoader: got batch_sampler twice (the fifth "
                                            "positional argument and batch_sampler=)")
                        seed, batch_sampler = None, seed
                    if isinstance(drop_last, numbers.Integral) and \
                            not isinstance(drop_last, (bool, np.bool_)):
                        if num_workers != 0:
                            raise TypeError("DataLoader: got num_workers twice (the sixth "
                                            "positional argument and num_workers=)")
                        drop_last, num_workers = False, drop_last
                    shuffle, batch_size = bool(batch_size), _UNSET
                if batch_size is not _UNSET:
                    raise TypeError("DataLoader: got batch_size twice (the second "
                                    "positional argument and batch_size=)")
                y, batch_size = None, y  # DataLoader(dataset, 64), PyTorch's order
            if y is not None:
                raise TypeError(f"DataLoader: a dataset yields its own targets; y must be "
                                f"None with {type(x).__name__}, got {type(y).__name__}")
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: collate_fn must be callable, got "
                            f"{type(collate_fn).__name__}")
        self._check_workers(num_workers, timeout, worker_init_fn, prefetch_factor,
                            persistent_workers, multiprocessing_context, pin_memory_device)
        seed_name = "seed"   # (the argument given, in errors)
        if generator is not None:
            if seed is not None:
                raise TypeError("DataLoader: pass seed= or generator=, not both")
            seed, seed_name = generator, "generator"
        self._iterable = isinstance(self._dataset, IterableDataset)
        if self._iterable:
            _check_iterable_options(shuffle, sampler, batch_sampler)
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            # PyTorch's: batch_sampler makes every batch; batch_size may only be its 1
            if (batch_size not in (_UNSET, 1) or shuffle or sampler is not None
                    or drop_last):
                raise ValueError("DataLoader: batch_sampler option is mutually exclusive "
                                 "with batch_size, shuffle, sampler, and drop_last")
            _check_iterable(batch_sampler, "batch_sampler")
            batch_size = None
        elif batch_size is _UNSET:
            batch_size = 1 if self._dataset is not None else 32
        if sampler is not None:
            _check_iterable(sampler, "sampler")
        if batch_size is None:   # PyTorch's: no batching, each sample yielded as it is
            if drop_last:
                raise ValueError("batch_size=None option disables auto-batching and is "
                                 "mutually exclusive with drop_last")
        elif isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int or None, got "
                             f"{batch_size!r}")
        self.collate_fn = collate_fn
        self.pin_memory, self.in_order = bool(pin_memory), bool(in_order)
        self.batch_size = None if batch_size is None else int(batch_size)
        if not isinstance(drop_last, (bool, np.bool_)):
            raise ValueError(f"drop_last should be a boolean value, but got "
                             f"drop_last={drop_last!r}")
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.generator = seed
        # None: each shuffled pass draws its seed from fastnn's generator when it starts
        # (not fresh entropy, and not at construction): a pass after fastnn.manual_seed
        # repeats, and building a loader leaves the generator alone, as PyTorch's
        # RandomSampler with torch.manual_seed
        self.rng = None if seed is None and shuffle else as_generator(seed, name=seed_name)
        # the generator a worker seed is hashed from (None: fastnn's global generator)
        self._worker_rng = None if seed is None else self.rng
        if self._dataset is None:
            self._set_arrays(x, y)
        if self._iterable:   # (PyTorch's: the samples come in the dataset's order)
            sampler = InfiniteConstantSampler()
        elif sampler is None:
            if self.shuffle:   # (PyTorch's RandomSampler refuses no samples)
                if self.num_samples == 0:
                    raise ValueError("DataLoader: num_samples should be a positive integer "
                                     "value to shuffle, but got num_samples=0")
                sampler = RandomSampler(self.dataset, generator=self.rng)
            else:
                sampler = SequentialSampler(self.dataset)
        if batch_sampler is None and self.batch_size is not None:
            batch_sampler = BatchSampler(sampler, self.batch_size, self.drop_last)
        self.sampler, self.batch_sampler = sampler, batch_sampler
        self._initialized_workers = False
        self._workers = None   # an iterable dataset's persistent workers
        self._iterable_len = None   # len(dataset) once len(loader) read it (PyTorch's)
        self._initialized = True

    @property
    def collate_fn(self):
        """The function a batch's samples go through, as PyTorch's attribute: the one
        given, else ``default_collate`` (``default_convert`` when batching is off:
        ``batch_size=None`` without a ``batch_sampler``), which
        ``loader.collate_fn(samples)`` may call. (Without one given, a TensorDataset and
        the array form are gathered whole, the same batches faster, the array form's
        packed as tuples.)"""
        if self._collate is not None:
            return self._collate
        return default_convert if self.batch_sampler is None else default_collate

    @collate_fn.setter
    def collate_fn(self, function):   # (None: the default again)
        self.__dict__["_collate"] = function

    # the batches are planned when the loader is built (its batch_sampler): changing
    # these later would be silently ignored, so it is an error, as in PyTorch
    _FIXED = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset",
              "persistent_workers", "shuffle")

    def __setattr__(self, name, value):
        if name in self._FIXED and self.__dict__.get("_initialized", False):
            raise ValueError(f"{name} attribute should not be set after DataLoader is "
                             f"initialized")
        super().__setattr__(name, value)

    def _check_workers(self, num_workers, timeout, worker_init_fn, prefetch_factor,
                       persistent_workers, multiprocessing_context, pin_memory_device):
        """PyTorch's checks of the multiprocessing options, which are then kept (batches
        are made in the calling process whatever they say)."""
        if isinstance(num_workers, bool) or not isinstance(num_workers, numbers.Integral) \
                or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use "
                             "num_workers=0 to disable multiprocessing.")
        if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
            raise TypeValueError(f"DataLoader: timeout must be a number of seconds, got "
                                 f"{type(timeout).__name__}")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if timeout > 0 and num_workers == 0:
            # PyTorch's single-process iterator asserts it (when the pass starts)
            raise AssertionValueError("DataLoader: timeout > 0 needs num_workers > 0 (as "
                                      "PyTorch's single-process loading requires timeout == 0)")
        if worker_init_fn is not None and not callable(worker_init_fn):
            raise TypeError(f"DataLoader: worker_init_fn must be callable, got "
                            f"{type(worker_init_fn).__name__}")
        if prefetch_factor is not None:
            if num_workers == 0:
                raise ValueError("prefetch_factor option could only be specified in "
                                 "multiprocessing. Let num_workers > 0 to enable "
                                 "multiprocessing, otherwise set prefetch_factor to None.")
            if isinstance(prefetch_factor, bool) or \
                    not isinstance(prefetch_factor, numbers.Integral):
                raise TypeValueError(f"DataLoader: prefetch_factor must be an int, got "
                                     f"{type(prefetch_factor).__name__}")
            if prefetch_factor < 0:
                raise ValueError("prefetch_factor option should be non-negative")
        elif num_workers > 0:
            prefetch_factor = 2
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if multiprocessing_context is not None:
            if num_workers == 0:
                raise ValueError(f"multiprocessing_context can only be used with "
                                 f"multi-process loading (num_workers > 0), but got "
                                 f"num_workers={num_workers}")
            if isinstance(multiprocessing_context, str):
                methods = multiprocessing.get_all_start_methods()
                if multiprocessing_context not in methods:
                    raise ValueError(f"multiprocessing_context option should specify a "
                                     f"valid start method in {methods!r}, but got "
                                     f"multiprocessing_context={multiprocessing_context!r}")
                multiprocessing_context = multiprocessing.get_context(multiprocessing_context)
            if not isinstance(multiprocessing_context, multiprocessing.context.BaseContext):
                raise TypeValueError(f"multiprocessing_context option should be a valid "
                                     f"context object or a string specifying the start "
                                     f"method, but got multiprocessing_context="
                                     f"{multiprocessing_context!r}")
        if not isinstance(pin_memory_device, str):
            raise TypeValueError(f"DataLoader: pin_memory_device must be a str, got "
                                 f"{type(pin_memory_device).__name__}")
        self.num_workers, self.timeout = int(num_workers), timeout
        self.worker_init_fn, self.prefetch_factor = worker_init_fn, prefetch_factor
        self.persistent_workers = bool(persistent_workers)
        self.multiprocessing_context = multiprocessing_context
        self.pin_memory_device = pin_memory_device

    def _set_arrays(self, x, y):
        """Keep the array form's x (N, ...) and targets y (None, one array or list, or a
        tuple of arrays), checked to hold N samples each."""
        x = np.asarray(x)
        if x.ndim == 0:
            raise ValueError("DataLoader: x must have a leading sample axis, got a scalar")
        # only a tuple is several targets: a list is one target (e.g. a list of labels)
        self._multi_y = isinstance(y, tuple)
        ys = ([np.asarray(a) for a in y] if self._multi_y
              else ([] if y is None else [np.asarray(y)]))
        for a in ys:
            if a.ndim == 0 or a.shape[0] != x.shape[0]:
                raise ValueError(f"DataLoader: x holds {x.shape[0]} samples but a target array "
                                 f"has shape {a.shape}")
        self.x, self._ys, self._has_y = x, ys, y is not None
        self._arrays = TensorDataset(x, *ys)

    @property
    def dataset(self):
        """The dataset iterated over (over arrays: a TensorDataset of x and the targets)."""
        if self._dataset is not None:
            return self._dataset
        return self._arrays

    @property
    def num_samples(self):
        """The number of samples in the dataset (a sampler may read fewer or more)."""
        return len(self._dataset) if self._dataset is not None else self.x.shape[0]

    def __len__(self):
        """Number of batches per pass: len(batch_sampler), or len(sampler) unbatched;
        over an IterableDataset, PyTorch's estimate from len(dataset) (a TypeError when
        it has no len): ceil(len / batch_size), floored with drop_last."""
        if self._iterable:
            n = self._iterable_len = len(self._dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        return len(self.sampler)

    def _pack(self, x, ys):
        if not self._has_y:
            return x
        return x, (tuple(ys) if self._multi_y else ys[0])

    def _start_pass(self):
        """worker_init_fn(0) in this process, the pass's one worker (PyTorch's workers
        call it when they start: each pass, or once with persistent_workers). Returns the
        pass's PassSeed (its finish() is called when the pass ends), or None."""
        if self.worker_init_fn is None or self.num_workers == 0:
            return None
        if self.persistent_workers and self._initialized_workers:
            return None
        self._initialized_workers = True
        seed = PassSeed(self._worker_rng)
        info = WorkerInfo(id=0, num_workers=1, seed=seed.seed,
                          dataset=self.dataset)
        call_worker_init(self.worker_init_fn, info)
        return seed

    def __iter__(self):
        """One pass: an iterator of the batches that has ``len`` (the loader's), as
        PyTorch's."""
        if self._iterable:
            return _LoaderIter(self._iterable_batches(), self, self._iterable_len)
        return _LoaderIter(self._batches(), self)

    def _iterable_batches(self):
        """A pass over an IterableDataset (see fastnn/data/streams.py): its iterators
        are made now, when the pass starts, as PyTorch's (num_workers=0: this process's
        one; else each worker's, after its worker_init_fn)."""
        collate = self.collate_fn   # (the given one, else the default for batch_size)
        if self.num_workers == 0:
            streams = [WorkerStream(self._dataset, None)]
        else:
            workers, seed = self._workers, None
            if workers is None:
                seed = PassSeed(self._worker_rng)
                workers = start_workers(self._dataset, self.num_workers, seed.seed,
                                        self.worker_init_fn)
                if self.persistent_workers and all(err is None for _, err in workers):
                    self._workers = workers   # (started once, as PyTorch's)
            streams = worker_streams(workers)
            if seed is not None:
                return _finishing(lambda: seed, round_robin(
                    streams, self.batch_size, self.drop_last, collate))
        return round_robin(streams, self.batch_size, self.drop_last, collate)

    def _batches(self):
        return _finishing(self._start_pass, self._pass_batches())

    def _pass_batches(self):
        if self.batch_sampler is None:   # batch_size=None: one sample per step
            for index in self.sampler:
                yield self._one(index)
            return
        own = isinstance(self.batch_sampler, BatchSampler) and \
            type(self.batch_sampler).__iter__ is BatchSampler.__iter__
        batches = self.batch_sampler._batches() if own else iter(self.batch_sampler)
        if self._dataset is not None:
            yield from self._dataset_batches(batches)
            return
        n = self.x.shape[0]
        for batch in batches:
            rows = _as_rows(batch, n)
            if self._collate is not None:
                yield self._collate(self._samples(rows))
            else:
                gathered = _gather_all([self.x, *self._ys], rows)
                yield self._pack(gathered[0], gathered[1:])

    def _one(self, index):
        """The sample at index, unbatched (batch_size=None)."""
        if self._dataset is not None:
            return self.collate_fn(self._dataset[index])
        n = self.x.shape[0]
        if np.ndim(index):   # a list of indices (a BatchSampler as sampler): their rows,
            gathered = _gather_all([self.x, *self._ys], _as_rows(index, n))  # as x[list]
            sample = self._pack(gathered[0], gathered[1:])
        else:
            i = int(_as_rows([index], n)[0])
            if not -n <= i < n:
                raise IndexValueError(f"DataLoader: a sampler's index {i} is out of range "
                                      f"for {n} samples")
            sample = self._pack(self.x[i], [a[i] for a in self._ys])
        return sample if self._collate is None else self._collate(sample)

    def _samples(self, rows):
        """The array form's samples at rows (a slice or index array), each packed as a
        batch is: x[i], (x[i], y[i]) or (x[i], (y1[i], y2[i], ...))."""
        indices = range(rows.start, rows.stop) if isinstance(rows, slice) else rows
        try:
            return [self._pack(self.x[i], [a[i] for a in self._ys]) for i in indices]
        except IndexError as err:
            raise IndexValueError(f"DataLoader: a sampler's index is out of range for "
                                  f"{self.x.shape[0]} samples ({err})") from None

    def _dataset_batches(self, batches):
        view = array_view(self._dataset) if self._collate is None else None
        if view is not None:  # a TensorDataset (or Subset of one): whole-batch gathers
            arrays, index = view
            n = len(arrays[0]) if index is None else len(index)
            for batch in batches:
                rows = _as_rows(batch, n)
                if index is not None:
                    rows = _gather_all([index], rows)[0]
                # a copy, as PyTorch's default_collate stacks one: a batch changed in
                # place left the dataset's arrays changed (the array form DataLoader(x, y)
                # gives views, as README says)
                yield _gather_all(arrays, rows, copy=True)
            return
        collate = self.collate_fn
        fetch_many = getattr(self._dataset, "__getitems__", None)
        for batch in batches:
            # a sampler's own elements are handed to the dataset as they are (a dataset
            # may take keys other than ints, as in PyTorch)
            rows = (list(range(batch.start, batch.stop)) if isinstance(batch, slice)
                    else batch.tolist() if isinstance(batch, np.ndarray) else list(batch))
            samples = (fetch_many(rows) if callable(fetch_many)
                       else [self._dataset[i] for i in rows])
            yield collate(samples)

    def __repr__(self):
        if self._iterable:
            return (f"DataLoader(dataset={type(self._dataset).__name__}, batch_size="
                    f"{self.batch_size}, drop_last={self.drop_last})")
        if self._dataset is not None:
            return (f"DataLoader(dataset={type(self._dataset).__name__}, num_samples="
                    f"{self.num_samples}, batch_size={self.batch_size}, shuffle="
                    f"{self.shuffle}, drop_last={self.drop_last})")
        return (f"DataLoader(num_samples={self.num_samples}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last})")


class _LoaderIter:
    """A pass over a DataLoader: the batches of a generator, with ``len`` the loader's
    number of batches (PyTorch's ``len(iter(loader))``; over an IterableDataset a
    TypeError, as PyTorch's, whose sampler there has no len). ``reported``: the
    IterableDataset's len when len(loader) was read before the pass, as PyTorch's, which
    then warns once more batches than that have come."""

    __slots__ = ("_batches", "_loader", "_reported", "_yielded")

    def __init__(self, batches, loader, reported=None):
        self._batches, self._loader = batches, loader
        self._reported, self._yielded = reported, 0

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self._batches)
        self._yielded += 1
        if self._reported is not None and self._yielded > self._reported:
            _warn_past_len(self._loader, self._reported, self._yielded)
        return batch

    def __len__(self):
        if self._loader._iterable:
            return len(self._loader.sampler)
        return len(self._loader)


def _warn_past_len(loader, reported, yielded):
    """PyTorch's warning: an IterableDataset gave more batches than its len said."""
    message = (f"Length of IterableDataset {loader.dataset} was reported to be {reported} "
               f"(when accessing len(dataloader)), but {yielded} samples have been "
               f"fetched. ")
    if loader.num_workers > 0:
        message += ("For multiprocessing data-loading, this could be caused by not "
                    "properly configuring the IterableDataset replica at each worker "
                    "(see get_worker_info()).")
    warnings.warn(message, stacklevel=3)


def _check_iterable_options(shuffle, sampler, batch_sampler):
    """PyTorch's ValueErrors: an IterableDataset takes no shuffle, sampler or
    batch_sampler (its samples come in its own order)."""
    if shuffle not in (False, None):
        raise ValueError(f"DataLoader with IterableDataset: expected unspecified shuffle "
                         f"option, but got shuffle={shuffle}")
    if sampler is not None:
        raise ValueError(f"DataLoader with IterableDataset: expected unspecified sampler "
                         f"option, but got sampler={sampler}")
    if batch_sampler is not None:
        raise ValueError(f"DataLoader with IterableDataset: expected unspecified "
                         f"batch_sampler option, but got batch_sampler={batch_sampler}")


def _check_iterable(obj, name):
    """PyTorch takes any iterable as a sampler (a list of indices, a Sampler)."""
    if not (hasattr(obj, "__iter__") or hasattr(obj, "__getitem__")):
        raise TypeValueError(f"DataLoader: {name} must be an iterable of indices (a "
                             f"Sampler, a list), got {type(obj).__name__}")
