"""PyTorch's ``get_worker_info`` for fastnn's in-process DataLoader.

fastnn makes every batch in the calling process, so there are no worker processes:
``get_worker_info()`` is None (as PyTorch's in the main process, or with
``num_workers=0``), except while a DataLoader with ``num_workers > 0`` calls its
``worker_init_fn(0)`` when a pass starts. Then it is a ``WorkerInfo`` for the one
in-process worker: ``id=0``, ``num_workers=1`` (one process reads every sample, so code
that shards a dataset by ``id`` and ``num_workers`` still reads all of it, once),
``dataset`` the loader's dataset, and ``seed`` an int in [0, 2**63) (PyTorch's range)
hashed from the state of the generator the pass shuffles with, as the pass starts (see
``pass_seed``).

An ``IterableDataset`` has nothing to share out by index, so there each of
``num_workers`` workers is played in turn, as PyTorch's processes are: worker ``k`` gets
``WorkerInfo(id=k, num_workers, seed=base + k, dataset=its own deep copy)`` (streams.py's
``worker_copy``) while its ``worker_init_fn``, its ``iter(dataset)``, each of its ``next``
calls and its collate run (see ``fastnn/data/streams.py``).
"""
import contextlib
import dataclasses
import hashlib
import threading

import numpy as np

from .. import random as _random

_local = threading.local()


@dataclasses.dataclass(frozen=True)
class WorkerInfo:
    """The worker a ``worker_init_fn`` runs in: ``id``, ``num_workers``, ``seed`` and
    ``dataset``, read-only (assigning or deleting one raises
    ``dataclasses.FrozenInstanceError``, an AttributeError, as PyTorch's)."""
    id: int
    num_workers: int
    seed: int
    dataset: object


def get_worker_info():
    """The WorkerInfo of the running ``worker_init_fn`` call, else None (the calling
    thread's: a loader iterated in another thread does not show here)."""
    return getattr(_local, "info", None)


def _state_bytes(state):
    """The bytes of a bit generator's state (a dict of ints, strs and arrays)."""
    if isinstance(state, dict):
        return b"".join(k.encode() + b"=" + _state_bytes(state[k]) + b";"
                        for k in sorted(state))
    if isinstance(state, (int, np.integer)):
        value = int(state)
        return value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    if isinstance(state, np.ndarray):
        return state.dtype.str.encode() + state.tobytes()
    return repr(state).encode()


def pass_seed(rng):
    """A worker seed in [0, 2**63) from rng's state (rng: the loader's kept Generator, or
    None for fastnn's global generator), without drawing from it: the shuffle order is
    that of the same loader without a worker_init_fn, and the seed repeats under the same
    loader seed or ``fastnn.manual_seed`` (PassSeed.finish may draw after the pass)."""
    gen = _random.generator() if rng is None else rng
    state = _state_bytes(gen.bit_generator.state)
    digest = hashlib.blake2b(state, digest_size=8, person=b"fastnn.worker").digest()
    return int.from_bytes(digest, "little") >> 1


class PassSeed:
    """The worker seed of one pass (``pass_seed`` of its generator as the pass starts),
    and what ``finish`` does when the pass ends.

    Nothing advances the generator between passes that do not shuffle (no shuffle, an
    IterableDataset) and draw nothing else, and each such pass gave the same seed, so
    augmentation seeded in worker_init_fn repeated every epoch, where PyTorch draws a new
    base seed each pass. ``finish`` draws one number from the generator when the pass
    left it as it found it: the next pass's seed differs, and is still a function of the
    generator's state alone, so a run resumed from ``fastnn.random.get_state()`` (or
    re-seeded) gets the seeds the uninterrupted run got."""

    __slots__ = ("seed", "_generator", "_state")

    def __init__(self, rng):
        self._generator = _random.generator() if rng is None else rng
        self._state = _state_bytes(self._generator.bit_generator.state)
        self.seed = pass_seed(self._generator)

    def finish(self):
        """The pass is over (run out, or its iterator dropped)."""
        if _state_bytes(self._generator.bit_generator.state) == self._state:
            self._generator.random()


@contextlib.contextmanager
def as_worker(info):
    """get_worker_info() returns info (a WorkerInfo, or None: the main process) inside
    the block, and what it returned before after it."""
    saved = getattr(_local, "info", None)
    _local.info = info
    try:
        yield
    finally:
        _local.info = saved


def worker_seed(base, worker_id):
    """Worker worker_id's seed: base + worker_id in [0, 2**63), as PyTorch's base_seed +
    worker_id."""
    return (base + worker_id) % 2 ** 63


def call_worker_init(worker_init_fn, info):
    """worker_init_fn(info.id) with get_worker_info() returning info during the call."""
    with as_worker(info):
        worker_init_fn(info.id)
