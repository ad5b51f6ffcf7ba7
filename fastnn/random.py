"""fastnn's global random generator, used by parameter initialisation and dropout.

Like PyTorch, a fresh process starts from a fixed seed (``DEFAULT_SEED``), so two runs
of the same script initialise the same weights; ``manual_seed`` re-seeds it.
Kernels never see this generator: a dropout layer draws an integer seed from it
(``draw_seed``) and hands that to the backend's ``dropout_forward``, so
``manual_seed`` also fixes the dropout masks of a run on a given backend.
"""
import contextlib
import numbers

import numpy as np

DEFAULT_SEED = 0

_generator = np.random.Generator(np.random.PCG64(DEFAULT_SEED))


def manual_seed(seed):
    """Re-seed fastnn's global generator in place and return it. seed: an int >= 0."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"manual_seed: expected a non-negative int, got {seed!r}")
    _generator.bit_generator.state = np.random.PCG64(int(seed)).state
    return _generator


def generator():
    """The global np.random.Generator (the same object for the whole process)."""
    return _generator


def draw_seed():
    """An int in [0, 2**31) for kernels that take a seed (dropout masks)."""
    return int(_generator.integers(0, 2**31 - 1))


def get_state():
    """A copy of the generator's state, for ``set_state``."""
    return _generator.bit_generator.state


def set_state(state):
    """Restore a state returned by ``get_state``."""
    _generator.bit_generator.state = state


@contextlib.contextmanager
def fork(seed):
    """Run a block with the generator re-seeded to ``seed``, then restore its state, so
    code around the block keeps its random sequence (gradcheck uses it to give every
    forward pass the same dropout mask)."""
    saved = get_state()
    manual_seed(seed)
    try:
        yield _generator
    finally:
        set_state(saved)
