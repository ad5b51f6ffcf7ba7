"""A DataLoader's pass over an iterable-style dataset, as PyTorch's.

PyTorch reads an ``IterableDataset`` with no sampler: each batch is the next
``batch_size`` items of ``iter(dataset)`` (the last one shorter, or dropped with
``drop_last``), or each item alone with ``batch_size=None``. With ``num_workers > 0``
every worker process iterates its own copy of the dataset (``get_worker_info()`` tells
the copy which worker it is in, so it can read its share) and the loader takes one batch
from each worker in turn, a worker dropping out when its iterator ends. fastnn plays
those workers one after the other in the calling process: the batches, their order and
what ``get_worker_info()`` says are PyTorch's.
"""
import copy
import itertools

import numpy as np

from .worker import WorkerInfo, as_worker, call_worker_init, worker_seed

_END = object()   # a worker's stream is spent


class WorkerStream:
    """One worker's reading of a pass: its iterator of ``dataset``, made (and read, and
    its batches collated) with ``get_worker_info()`` returning ``info`` (None: the main
    process, num_workers=0). ``error``: an exception raised making the iterator (or in
    ``worker_init_fn``), raised again at this worker's first fetch, as PyTorch reports a
    worker's failed start when the loader asks that worker for its first batch."""

    def __init__(self, dataset, info, error=None):
        self.info, self.error, self.iterator, self.ended = info, error, None, False
        if error is None:
            with as_worker(info):
                self.iterator = iter(dataset)

    def fetch(self, batch_size, drop_last, collate):
        """The worker's next batch: collate(items), items the next batch_size items
        (collate(item) of the next one with batch_size None); _END once the iterator is
        spent, or with drop_last when fewer than batch_size are left."""
        if self.error is not None:
            error, self.error, self.ended = self.error, None, True
            raise error
        if self.ended:
            return _END
        with as_worker(self.info):
            if batch_size is None:
                item = next(self.iterator, _END)
                if item is _END:
                    self.ended = True
                    return _END
                return collate(item)
            items = list(itertools.islice(self.iterator, batch_size))
            if len(items) < batch_size:
                self.ended = True
                if not items or drop_last:
                    return _END
            return collate(items)


def worker_copy(dataset):
    """A worker's own copy of dataset, as a worker process has: a deep copy, so what one
    worker's iteration changes in place (a file list it shuffles with the pass's shared
    seed, then shards; a counter) is seen neither by the other workers nor in the
    caller's dataset. (A shallow copy shared those lists: with the shuffle-then-shard
    pattern, PyTorch gives every sample once and fastnn gave some twice, others never.)
    Read-only NumPy arrays in it (an np.memmap opened with mode 'r', arrays whose
    flags.writeable is False) are shared, as a forked worker shares its pages: no worker
    can change them, and a deep copy read a memmap's whole file into memory. A dataset
    that cannot be deep-copied (an open file, a generator) gets a shallow copy, what
    fastnn gave every dataset before."""
    memo = {}
    _share_read_only_arrays(dataset, memo, depth=4)
    try:
        return copy.deepcopy(dataset, memo)
    except Exception:   # (what a member's __reduce_ex__ raises: TypeError, a Queue's
        return copy.copy(dataset)   # RuntimeError, a ctypes pointer's ValueError...)


def _share_read_only_arrays(value, memo, depth):
    """Enter each read-only ndarray reachable from value (through containers and
    instance attributes, depth levels down) in deepcopy's memo as its own copy."""
    if isinstance(value, np.ndarray):
        if not value.flags.writeable:
            memo[id(value)] = value
        return
    if depth == 0:
        return
    if isinstance(value, dict):
        items = value.values()
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    else:
        items = getattr(value, "__dict__", {}).values()
    for item in items:
        _share_read_only_arrays(item, memo, depth - 1)


def start_workers(dataset, num_workers, base_seed, worker_init_fn):
    """The WorkerInfo of each of num_workers workers (id k, seed base_seed + k, dataset
    its own copy of dataset, worker_copy) and the exception (or None)
    worker_init_fn(k) raised, called as each worker starts."""
    workers = []
    for k in range(num_workers):
        info = WorkerInfo(id=k, num_workers=num_workers, seed=worker_seed(base_seed, k),
                          dataset=worker_copy(dataset))
        error = None
        if worker_init_fn is not None:
            try:
                call_worker_init(worker_init_fn, info)
            except Exception as err:   # (raised at the worker's first fetch)
                error = err
        workers.append((info, error))
    return workers


def worker_streams(workers):
    """A WorkerStream over each worker's dataset copy (workers from start_workers); an
    error starting one is kept for its first fetch."""
    streams = []
    for info, error in workers:
        if error is None:
            try:
                streams.append(WorkerStream(info.dataset, info))
                continue
            except Exception as err:
                error = err
        streams.append(WorkerStream(None, info, error))
    return streams


def round_robin(streams, batch_size, drop_last, collate):
    """The streams' batches in turn (stream 0's first, stream 1's first, ..., then their
    second ones), a stream dropping out when it is spent: PyTorch's in-order multi-worker
    loader's order. An exception a stream raises ends the pass."""
    active = list(streams)
    while active:
        for stream in tuple(active):
            batch = stream.fetch(batch_size, drop_last, collate)
            if batch is _END:
                active.remove(stream)
            else:
                yield batch
