"""Mini-batch iteration over in-memory arrays."""
import math

import numpy as np


def as_generator(seed):
    """An np.random.Generator from an int seed, None (fresh entropy) or a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


class DataLoader:
    """Iterate over (x, y) in mini-batches.

    x: array of shape (N, ...); y: array of shape (N, ...), a tuple of such arrays,
    or None. Without shuffling, batches are views (slices) of x and y; with
    ``shuffle=True`` each pass draws a new permutation from the generator and
    gathers each batch with one fancy-indexing call (a fresh copy, no Python loop
    over samples). ``seed`` (int, None or np.random.Generator) makes the sequence of
    permutations reproducible. ``drop_last`` drops a final batch smaller than
    ``batch_size``.

    Each iteration yields ``(x_batch, y_batch)`` (``y_batch`` a tuple when y is a
    tuple), or just ``x_batch`` when y is None.
    """

    def __init__(self, x, y=None, batch_size=32, shuffle=False, seed=None, drop_last=False):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
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
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.rng = as_generator(seed)

    @property
    def num_samples(self):
        return self.x.shape[0]

    def __len__(self):
        """Number of batches per pass."""
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else math.ceil(n / b)

    def _pack(self, x, ys):
        if not self._has_y:
            return x
        return x, (tuple(ys) if self._multi_y else ys[0])

    def __iter__(self):
        n, b = self.num_samples, self.batch_size
        stop = len(self) * b
        if not self.shuffle:
            for start in range(0, stop, b):
                end = min(start + b, n)
                yield self._pack(self.x[start:end], [a[start:end] for a in self._ys])
            return
        order = self.rng.permutation(n)
        for start in range(0, stop, b):
            index = order[start:start + b]
            yield self._pack(np.take(self.x, index, axis=0),
                             [np.take(a, index, axis=0) for a in self._ys])

    def __repr__(self):
        return (f"DataLoader(num_samples={self.num_samples}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last})")
