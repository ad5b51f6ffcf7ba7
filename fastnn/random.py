"""fastnn's random generator, used by parameter initialisation and dropout.

Like PyTorch, a fresh process starts from a fixed seed (``DEFAULT_SEED``), so two runs
of the same script initialise the same weights; ``manual_seed`` re-seeds it.
Kernels never see this generator: a dropout layer draws an integer seed from it
(``draw_seed``) and hands that to the backend's ``dropout_forward``, so
``manual_seed`` also fixes the dropout masks of a run on a given backend.

There is one generator per thread (each starts from ``DEFAULT_SEED``; ``manual_seed``
seeds the calling thread's), so models built and trained in parallel threads draw
the same numbers as they would one after the other.
"""
import contextlib
import numbers
import secrets
import threading

import numpy as np

DEFAULT_SEED = 0

_local = threading.local()


def generator():
    """The calling thread's np.random.Generator (the same object for the thread's life)."""
    gen = getattr(_local, "generator", None)
    if gen is None:
        gen = _local.generator = np.random.Generator(np.random.PCG64(DEFAULT_SEED))
    return gen


def manual_seed(seed):
    """Re-seed the calling thread's generator in place and return it. seed: an int >= 0."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"manual_seed: expected a non-negative int, got {seed!r}")
    gen = generator()
    gen.bit_generator.state = np.random.PCG64(int(seed)).state
    _local.initial_seed = int(seed)
    return gen


def seed():
    """Re-seed the calling thread's generator from fresh OS entropy and return that seed
    (``torch.seed``): an int in [0, 2**63)."""
    fresh = secrets.randbits(63)
    manual_seed(fresh)
    return fresh


def initial_seed():
    """The seed the calling thread's generator started from: the last ``manual_seed`` /
    ``seed`` value in this thread, else ``DEFAULT_SEED`` (``torch.initial_seed``)."""
    return getattr(_local, "initial_seed", DEFAULT_SEED)


def draw_seed():
    """An int in [0, 2**31) for kernels that take a seed (dropout masks)."""
    return int(generator().integers(0, 2**31 - 1))


def get_state():
    """A copy of the generator's state, for ``set_state``."""
    return generator().bit_generator.state


def set_state(state):
    """Restore a state returned by ``get_state``."""
    generator().bit_generator.state = state


def get_rng_state():
    """``get_state`` by PyTorch's name (``torch.get_rng_state``; the state is the NumPy
    generator's dict here, a ByteTensor there)."""
    return get_state()


def set_rng_state(new_state):
    """``set_state`` by PyTorch's name and argument (``torch.set_rng_state(new_state)``)."""
    set_state(new_state)


@contextlib.contextmanager
def fork_rng(devices=None, enabled=True):
    """Run a block, then put the calling thread's generator (and ``initial_seed``) back as
    they were before it (``torch.random.fork_rng``): the block's draws and seeds do not
    move the sequence around it. ``enabled=False`` runs the block and restores nothing.
    ``devices`` is accepted for PyTorch's signature and ignored: the cuda backend draws
    its dropout seeds from this same generator."""
    if not enabled:
        yield
        return
    saved, saved_seed = get_state(), initial_seed()
    try:
        yield
    finally:
        set_state(saved)
        _local.initial_seed = saved_seed


@contextlib.contextmanager
def fork(seed):
    """Run a block with the generator re-seeded to ``seed``, then restore its state, so
    code around the block keeps its random sequence (gradcheck uses it to give every
    forward pass the same dropout mask)."""
    with fork_rng():
        yield manual_seed(seed)
