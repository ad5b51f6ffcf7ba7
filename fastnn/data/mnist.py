"""MNIST and Fashion-MNIST from their IDX files.

Files are looked for (plain or ``.gz``) in ``root`` when given, else in
``$FASTNN_DATA``, ``~/.cache/fastnn/<name>`` and ``/usr/share/datasets/<name>``
(Debian's ``dataset-fashion-mnist`` package installs there); in each, also in
torchvision's layout (``MNIST/raw`` or ``FashionMNIST/raw``), so a ``root`` that
torchvision downloaded into is read as it is.
``download=True`` fetches the missing ``.gz`` files from the canonical locations
into ``~/.cache/fastnn/<name>`` (or ``root``).
"""
import os

import numpy as np

from .download import fetch
from .idx import IDXError, read_idx
from .paths import cache_dir, search_dirs, user_path
from .pixels import float_dtype, to_unit_float

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

NUM_CLASSES = 10  # digits 0-9; Fashion-MNIST's ten kinds of article

MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
              "http://yann.lecun.com/exdb/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}

# MD5 digests of the published .gz files (the mirrors serve the same bytes), checked
# after a download; Debian's recompressed Fashion-MNIST files, found, not downloaded,
# have others and are not checked.
MD5 = {
    "mnist": {"train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
              "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
              "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
              "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c"},
    "fashion-mnist": {"train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                      "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
                      "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
                      "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310"},
}

# Where torchvision's MNIST and FashionMNIST(root) keep the IDX files: root/<folder>/raw.
TORCHVISION_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}

# Sizes of the real datasets, checked after a download.
_SPLIT_SIZES = {"train": 60000, "test": 10000}


def _find(directory, stem):
    for candidate in (stem, stem + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def candidate_dirs(name, root=None):
    """The directories searched for dataset ``name``'s files, in order: each of
    ``search_dirs`` and, after it, its torchvision layout ``<dir>/MNIST/raw``."""
    dirs = []
    for directory in search_dirs(name, root):
        dirs += [directory, os.path.join(directory, TORCHVISION_FOLDERS[name], "raw")]
    return dirs


def find_files(name, root=None):
    """Paths of the four IDX files of dataset ``name``, or None if no directory has all.

    Returns a dict with keys 'train_images', 'train_labels', 'test_images',
    'test_labels'; all four come from the same directory.
    """
    for directory in candidate_dirs(name, root):
        found = {key: _find(directory, stem) for key, stem in FILES.items()}
        if all(found.values()):
            return found
    return None


def download_files(name, root=None):
    """Download dataset ``name``'s missing .gz files; returns the four paths (see
    find_files). They go into ``root`` (default ``~/.cache/fastnn/<name>``), or into its
    torchvision folder (``MNIST/raw``) when that holds some of the files and ``root``
    itself none: the files already there are used, the rest fetched beside them."""
    target = user_path(root) if root is not None else os.path.join(cache_dir(), name)
    torchvision = os.path.join(target, TORCHVISION_FOLDERS[name], "raw")
    if (not any(_find(target, stem) for stem in FILES.values())
            and any(_find(torchvision, stem) for stem in FILES.values())):
        target = torchvision
    paths = {}
    for key, stem in FILES.items():
        # a file already there, plain or .gz, is the user's: used as it is, not fetched
        dest = _find(target, stem)
        if dest is None:
            dest = os.path.join(target, stem + ".gz")
            fetch([mirror + stem + ".gz" for mirror in MIRRORS[name]], dest,
                  check=lambda path, split=key.split("_")[0]: _check_download(path, split),
                  md5=MD5[name][stem])
        paths[key] = dest
    return paths


def _check_download(path, split):
    """Raise unless path is an IDX file of the split's size (a download to keep)."""
    header_n = read_idx(path).shape[0]
    if header_n != _SPLIT_SIZES[split]:
        raise IDXError(f"it holds {header_n} items, expected {_SPLIT_SIZES[split]}")


def _load_split(images_path, labels_path, flatten, dtype):
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise IDXError(f"{images_path}: expected uint8 images of shape (N, rows, cols), "
                       f"got {images.dtype} {images.shape}")
    if labels.ndim != 1:
        raise IDXError(f"{labels_path}: expected labels of shape (N,), got {labels.shape}")
    if labels.dtype.kind not in "ui":   # class indices: no silent truncation of floats
        raise IDXError(f"{labels_path}: expected integer class labels, got {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise IDXError(f"{labels_path}: expected class labels >= 0, got {labels.min()}")
    if labels.size and labels.max() >= NUM_CLASSES:  # both datasets have 10 classes
        raise IDXError(f"{labels_path}: expected class labels 0..{NUM_CLASSES - 1} (MNIST "
                       f"and Fashion-MNIST have {NUM_CLASSES} classes), got {labels.max()}")
    if labels.shape[0] != images.shape[0]:
        raise IDXError(f"{images_path} holds {images.shape[0]} images but {labels_path} "
                       f"holds {labels.shape[0]} labels")
    return to_unit_float(images, 255, dtype, flatten), labels.astype(np.int64)


def load_idx_dataset(name, root=None, download=False, flatten=False, dtype=np.float32):
    """Load an MNIST-format dataset (``name`` is 'mnist' or 'fashion-mnist').

    Returns (x_train, y_train, x_test, y_test): x float32 (or ``dtype``: float64) in
    [0, 1], pixel / 255, of shape (N, 28, 28), or (N, 784) with ``flatten=True``;
    y int64 of shape (N,).
    Raises FileNotFoundError (saying where it looked) when the files are absent
    and ``download`` is False.
    """
    if name not in MIRRORS:
        raise ValueError(f"unknown IDX dataset {name!r}; expected one of {sorted(MIRRORS)}")
    float_dtype(dtype)  # checked before any file is read
    paths = find_files(name, root)
    if paths is None:
        if not download:
            looked = "\n  ".join(candidate_dirs(name, root))
            hint = (", set FASTNN_DATA or install Debian's dataset-fashion-mnist package"
                    if name == "fashion-mnist" else " or set FASTNN_DATA")
            raise FileNotFoundError(
                f"{name} not found; looked for {', '.join(FILES.values())} (plain or .gz) in:\n  "
                f"{looked}\nPass download=True (CLI: --download){hint}.")
        paths = download_files(name, root)
    x_train, y_train = _load_split(paths["train_images"], paths["train_labels"], flatten, dtype)
    x_test, y_test = _load_split(paths["test_images"], paths["test_labels"], flatten, dtype)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise IDXError(f"{paths['train_images']} holds images of shape {x_train.shape[1:]} "
                       f"but {paths['test_images']} of shape {x_test.shape[1:]}")
    return x_train, y_train, x_test, y_test


def load_mnist(root=None, download=False, flatten=False, dtype=np.float32):
    """MNIST handwritten digits; see ``load_idx_dataset`` for the returned arrays."""
    return load_idx_dataset("mnist", root, download, flatten, dtype)


def load_fashion_mnist(root=None, download=False, flatten=False, dtype=np.float32):
    """Fashion-MNIST (Zalando article images); see ``load_idx_dataset``."""
    return load_idx_dataset("fashion-mnist", root, download, flatten, dtype)
