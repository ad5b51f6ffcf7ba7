"""Datasets and batch iteration.

``load(name)`` returns (x_train, y_train, x_test, y_test) for 'fashion-mnist',
'mnist', 'cifar10' or 'digits'; ``DataLoader`` iterates over arrays, or a map-style
``Dataset`` (``TensorDataset``, ``Subset``, ``ConcatDataset``, ``random_split``: PyTorch's
``torch.utils.data`` names), in batches, its indices drawn by a sampler
(``SequentialSampler``, ``RandomSampler``, ``SubsetRandomSampler``,
``WeightedRandomSampler``, ``BatchSampler``, or your own ``Sampler``), or an
iterable-style ``IterableDataset`` (``ChainDataset``, ``a + b``) in its own order.
``get_worker_info()`` is None except inside a loader's ``worker_init_fn`` call, where it
is a ``WorkerInfo`` for the one in-process worker (see ``DataLoader``), and, over an
``IterableDataset`` with ``num_workers > 0``, while each worker's copy is read.
"""
from .cifar import CIFARError, load_cifar10, read_batch
from .dataset import (ChainDataset, ConcatDataset, Dataset, IterableDataset, Subset,
                      TensorDataset, default_collate, default_convert, random_split)
from .digits import load_digits
from .download import DownloadError
from .idx import IDXError, parse_idx, read_idx
from .loader import DataLoader
from .mnist import load_fashion_mnist, load_mnist
from .pixels import float_dtype
from .sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler,
                      SubsetRandomSampler, WeightedRandomSampler)
from .worker import WorkerInfo, get_worker_info

DATASETS = {
    "fashion-mnist": load_fashion_mnist,
    "mnist": load_mnist,
    "cifar10": load_cifar10,
    "digits": load_digits,
}

# datasets stored as files (the others ship with a Python package)
_FILE_DATASETS = ("fashion-mnist", "mnist", "cifar10")


def load(name, root=None, download=False, flatten=False, dtype="float32"):
    """Load dataset ``name`` ('fashion-mnist', 'mnist', 'cifar10', 'digits').

    Returns (x_train, y_train, x_test, y_test): float32 images (``dtype="float64"``
    for float64) in [0, 1] of shape
    (N, 28, 28), (N, 3, 32, 32) or (N, 8, 8) (flattened to (N, features) with
    ``flatten=True``), int64 labels of shape (N,). ``root`` and ``download`` apply
    to the file-based datasets.
    """
    key = name.lower().replace("_", "-") if isinstance(name, str) else name
    key = {"fashion": "fashion-mnist", "fashionmnist": "fashion-mnist",
           "cifar-10": "cifar10"}.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    dtype = float_dtype(dtype)
    if key in _FILE_DATASETS:
        return DATASETS[key](root=root, download=download, flatten=flatten, dtype=dtype)
    return DATASETS[key](flatten=flatten, dtype=dtype)


__all__ = ["load", "DATASETS", "DataLoader", "read_idx", "parse_idx", "IDXError",
           "DownloadError", "load_mnist", "load_fashion_mnist", "load_cifar10", "read_batch",
           "CIFARError", "load_digits", "Dataset", "IterableDataset", "ChainDataset",
           "TensorDataset", "Subset", "ConcatDataset",
           "random_split", "default_collate", "default_convert", "Sampler", "SequentialSampler",
           "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler", "BatchSampler",
           "get_worker_info", "WorkerInfo"]
