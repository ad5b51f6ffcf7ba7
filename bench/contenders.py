"""Who runs in the benchmarks: every fastnn backend, the student NumPy loop, PyTorch."""
import importlib.util
import os

import fastnn

TORCH_NOTE = "PyTorch is not installed: its column is skipped (pip install torch==2.13.0)"


def torch_available():
    return importlib.util.find_spec("torch") is not None


def backends():
    """fastnn's backends usable here (the CPU ones; 'cuda' too when a GPU is present)."""
    return list(fastnn.backends())


def op_contenders():
    """Contenders of the per-op benchmarks: every backend, then 'torch'."""
    return backends() + ["torch"]


def step_contenders():
    """Contenders of the MLP steps: every backend, the student loop, then 'torch'."""
    return backends() + ["student", "torch"]


def all_threads():
    """The thread count the suite uses: every core (FASTNN_NUM_THREADS/OMP_NUM_THREADS win)."""
    # read from the environment, not fastnn's current setting (a scaling test changes it),
    # as fastnn reads it: OMP_NUM_THREADS=1,1 is 1 thread (its first level), ' 1' too
    from fastnn.threads import _threads_from_env
    for var in ("FASTNN_NUM_THREADS", "OMP_NUM_THREADS"):
        count = _threads_from_env(var)
        if count is not None:
            return count
    return os.cpu_count() or 1


def set_threads(n):
    """Use n threads in fastnn (Numba, OpenMP, BLAS) and in PyTorch."""
    fastnn.set_num_threads(n)
    if torch_available():
        import torch
        torch.set_num_threads(n)


def load_backend(name):
    """fastnn's Backend object, or raise RuntimeError saying why it cannot run."""
    from fastnn import backend
    try:
        return backend.load(name)
    except ImportError as err:  # an incomplete backend (ops still landing)
        raise RuntimeError(f"backend {name!r} cannot load: {err}") from None
