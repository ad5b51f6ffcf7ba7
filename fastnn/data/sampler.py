"""Samplers, as ``torch.utils.data``'s: which sample indices a ``DataLoader`` reads, in
what order, and how they are grouped into batches.

``SequentialSampler(data_source)``, ``RandomSampler(data_source, replacement=False,
num_samples=None, generator=None)``, ``SubsetRandomSampler(indices, generator=None)``,
``WeightedRandomSampler(weights, num_samples, replacement=True, generator=None)`` and
``BatchSampler(sampler, batch_size, drop_last)``, with PyTorch's arguments, checks and
lengths; subclass ``Sampler`` (``__iter__``, optionally ``__len__``) for your own.

``generator`` is fastnn's: None (each pass seeds a fresh generator with one draw from
fastnn's global generator when the pass starts, so ``fastnn.manual_seed`` repeats the
order and building a sampler draws nothing, as PyTorch's RandomSampler with
``torch.manual_seed``), an int seed, or a ``numpy.random.Generator`` (a seed or a
Generator is kept: each pass continues its stream). The numbers drawn are NumPy's, so a
seed gives a different order than the same seed in PyTorch.
"""
import itertools
import numbers
from typing import Generic, TypeVar

import numpy as np

from .. import random as _random
from ..errors import RuntimeValueError, TypeValueError

T_co = TypeVar("T_co", covariant=True)


def as_generator(seed, where="DataLoader", name="seed"):
    """An np.random.Generator from an int seed, None (fresh entropy) or a Generator.
    name: the argument as the caller takes it, in errors."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise generator_type_error(where, name, seed)
    if seed is not None and seed < 0:
        raise ValueError(f"{where}: {name} must be None, a non-negative int seed or a "
                         f"numpy.random.Generator, got {seed}")
    return np.random.default_rng(None if seed is None else int(seed))


def generator_type_error(where, name, value):
    """The TypeError for a generator argument (name) that is none of None, an int seed
    and a numpy.random.Generator. A PyTorch Generator (known by its type: torch is not
    imported) is told why not: its type's bare name, Generator, read as NumPy's."""
    taken = f"{where}: {name} must be None, an int seed or a numpy.random.Generator"
    kind = type(value)
    if kind.__module__.split(".")[0] == "torch" and hasattr(value, "initial_seed"):
        return TypeError(f"{taken}, got a torch.Generator: fastnn draws with NumPy, so no "
                         f"generator reproduces PyTorch's order; pass an int seed (such as "
                         f"its initial_seed()) or np.random.default_rng(seed)")
    qualified = (kind.__qualname__ if kind.__module__ == "builtins"
                 else f"{kind.__module__}.{kind.__qualname__}")
    return TypeError(f"{taken}, got {qualified}")


def _kept_generator(generator, where):
    """None (a generator seeded from fastnn's at each pass), or the Generator to keep."""
    return None if generator is None else as_generator(generator, where, "generator")


def _pass_generator(kept):
    """The generator of one pass: the kept one, or one seeded by a draw from fastnn's
    global generator (one draw per pass, whatever the number of samples)."""
    return kept if kept is not None else np.random.default_rng(_random.draw_seed())


def _is_count(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_flag(value):
    return isinstance(value, (bool, np.bool_))


def _check_count(owner, name, value):
    """PyTorch's ValueError for a sampler's size argument that is not a positive int."""
    if not _is_count(value) or value <= 0:
        raise ValueError(f"{owner}: {name} should be a positive integer value, but got "
                         f"{name}={value!r}")


def _check_flag(owner, name, value):
    """PyTorch's ValueError for a sampler's flag that is not a bool."""
    if not _is_flag(value):
        raise ValueError(f"{owner}: {name} should be a boolean value, but got "
                         f"{name}={value!r}")


class Sampler(Generic[T_co]):
    """Base class of samplers: a subclass defines ``__iter__`` (indices, or lists of
    indices for a batch sampler) and may define ``__len__``. ``Sampler[int]`` subscripts
    as PyTorch's. ``data_source`` (older PyTorch's argument) is accepted and unused."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError


class SequentialSampler(Sampler[int]):
    """``0, 1, ..., len(data_source) - 1`` (the length read when each pass starts)."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)

    def _indices(self):
        return range(len(self.data_source))


class RandomSampler(Sampler[int]):
    """A random permutation of ``range(len(data_source))`` each pass; with
    ``num_samples`` larger than that, whole permutations one after the other, cut at
    ``num_samples``. With ``replacement=True``, ``num_samples`` (default
    ``len(data_source)``) indices drawn uniformly with replacement."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not _is_flag(replacement):
            raise TypeValueError(f"replacement should be a boolean value, but got "
                                 f"replacement={replacement!r}")
        _check_count("RandomSampler", "num_samples", self.num_samples)
        self._rng = _kept_generator(generator, "RandomSampler")

    @property
    def num_samples(self):
        # the data source's size may change between passes, as in PyTorch
        if self._num_samples is None:
            return len(self.data_source)
        return self._num_samples

    def __iter__(self):
        yield from self._indices().tolist()

    def __len__(self):
        return self.num_samples

    def _indices(self):
        n, k = len(self.data_source), int(self.num_samples)
        if n == 0:
            raise RuntimeValueError("RandomSampler: cannot draw indices from an empty "
                                    "data_source")
        rng = _pass_generator(self._rng)
        if self.replacement:
            return rng.integers(0, n, size=k, dtype=np.int64)
        if k == n:   # the common case: one permutation (what DataLoader(shuffle=True) draws)
            return rng.permutation(n)
        runs = [rng.permutation(n) for _ in range(-(-k // n))]
        return np.concatenate(runs)[:k]


class SubsetRandomSampler(Sampler[int]):
    """The elements of ``indices`` (a sequence) in a new random order each pass,
    without replacement."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator
        self._rng = _kept_generator(generator, "SubsetRandomSampler")

    def __iter__(self):
        order = _pass_generator(self._rng).permutation(len(self.indices))
        for i in order.tolist():
            yield self.indices[i]

    def __len__(self):
        return len(self.indices)

    def _indices(self):
        """The pass's indices as one int64 array; None when indices are not integers
        (the loader then iterates, handing the dataset the elements as they are)."""
        kept = np.asarray(self.indices)
        if kept.ndim != 1 or (kept.size and kept.dtype.kind not in "iu"):
            return None
        order = _pass_generator(self._rng).permutation(len(kept))
        return kept.astype(np.int64, copy=False)[order]


class WeightedRandomSampler(Sampler[int]):
    """``num_samples`` indices of ``range(len(weights))``, each drawn with probability
    proportional to its weight (non-negative, not necessarily summing to one). Without
    replacement, an index drawn is not drawn again (successive sampling, as
    ``torch.multinomial``'s; zero-weight indices come last, after every positive one).
    Bad weights (negative, NaN or infinite, summing to 0) and ``num_samples`` above
    ``len(weights)`` without replacement raise a RuntimeValueError (PyTorch's
    RuntimeError) when a pass starts, as PyTorch's do."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        _check_count("WeightedRandomSampler", "num_samples", num_samples)
        _check_flag("WeightedRandomSampler", "replacement", replacement)
        weights = np.array(weights, dtype=np.float64)
        if weights.ndim != 1:
            raise ValueError(f"weights should be a 1d sequence but given weights have "
                             f"shape {tuple(weights.shape)}")
        self.weights = weights
        self.num_samples = int(num_samples)
        self.replacement = bool(replacement)
        self.generator = generator
        self._rng = _kept_generator(generator, "WeightedRandomSampler")

    def __iter__(self):
        yield from self._indices().tolist()

    def __len__(self):
        return self.num_samples

    def _indices(self):
        w, k = np.asarray(self.weights, dtype=np.float64), self.num_samples
        where = "WeightedRandomSampler: invalid multinomial distribution"
        if not np.isfinite(w).all():
            raise RuntimeValueError(f"{where} (encountering probability entry = infinity "
                                    f"or NaN)")
        if (w < 0).any():
            raise RuntimeValueError(f"{where} (encountering probability entry < 0)")
        total = w.sum()
        if not total > 0:
            raise RuntimeValueError(f"{where} (sum of probabilities <= 0)")
        if not self.replacement and k > len(w):
            raise RuntimeValueError(f"WeightedRandomSampler: cannot sample n_sample > "
                                    f"prob_dist.size(-1) samples without replacement "
                                    f"({k} > {len(w)})")
        rng = _pass_generator(self._rng)
        if self.replacement:
            return rng.choice(len(w), size=k, replace=True, p=w / total).astype(np.int64)
        # successive sampling: the k smallest of E_i / w_i (E_i ~ Exp(1)) in increasing
        # order are k draws without replacement; zero weights give inf, last
        with np.errstate(divide="ignore"):
            keys = rng.exponential(size=len(w)) / w
        if k < len(w):   # only the k smallest keys need sorting
            chosen = np.argpartition(keys, k - 1)[:k]
            return chosen[np.lexsort((chosen, keys[chosen]))].astype(np.int64)
        return np.argsort(keys, kind="stable").astype(np.int64)


class InfiniteConstantSampler(Sampler[None]):
    """``None`` forever, with no ``len``: a DataLoader's sampler over an IterableDataset,
    whose samples come from its own iterator (PyTorch's ``_InfiniteConstantSampler``)."""

    def __iter__(self):
        return itertools.repeat(None)


class BatchSampler(Sampler[list]):
    """Lists of ``batch_size`` indices from ``sampler`` (a Sampler or any iterable of
    indices), the last one shorter unless ``drop_last`` drops it."""

    def __init__(self, sampler, batch_size, drop_last):
        _check_count("BatchSampler", "batch_size", batch_size)
        _check_flag("BatchSampler", "drop_last", drop_last)
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.drop_last = bool(drop_last)

    def __iter__(self):
        for batch in self._batches():
            yield (list(range(batch.start, batch.stop)) if isinstance(batch, slice)
                   else batch.tolist() if isinstance(batch, np.ndarray) else batch)

    def __len__(self):
        n, b = len(self.sampler), self.batch_size
        return n // b if self.drop_last else (n + b - 1) // b

    def _batches(self):
        """The pass's batches: slices of a SequentialSampler's run, int64 arrays cut from
        one of fastnn's samplers' index arrays (no Python loop over samples), or lists
        of the sampler's elements as they are for any other iterable."""
        indices = own_indices(self.sampler)
        b = self.batch_size
        if indices is not None:
            n = len(indices)
            stop = n - n % b if self.drop_last else n
            for start in range(0, stop, b):
                if isinstance(indices, range):
                    yield slice(indices.start + start, indices.start + min(start + b, n))
                else:
                    yield indices[start:start + b]
            return
        it = iter(self.sampler)
        while True:
            batch = list(itertools.islice(it, b))
            if not batch or (self.drop_last and len(batch) < b):
                return
            yield batch


_OWN = (SequentialSampler, RandomSampler, SubsetRandomSampler, WeightedRandomSampler)


def own_indices(sampler):
    """One pass of sampler's indices as an int64 array (a range for a SequentialSampler)
    when it is one of fastnn's samplers with its own ``__iter__``, so a loader can cut
    batches without a Python loop over samples; None otherwise (iterate it)."""
    cls = type(sampler)
    for own in _OWN:
        if isinstance(sampler, own):
            if cls.__iter__ is own.__iter__ and cls._indices is own._indices:
                return sampler._indices()
            return None
    return None
